// The loop's N-API glue: references to JS, the arenas data is read into, the one call per turn
// that hands records to JS, and the libuv entry points that open a handle scope around a turn.
// Raw N-API (node_api.h) only: a failing call is a status we check, never a C++ exception.
#include <cstring>

#include "loop.h"

#include "file.h"

namespace iapp {

namespace {
// Arenas: reads land in a JS Buffer held only by a handle scope (never a persistent reference:
// that would let it survive scavenges into the old generation, where only a major GC frees it).
// When an arena is full, what was read into it is delivered and the arena is let go, so at most
// one arena per loop is pinned by us and dead arenas die young. Its size follows what the last
// drain read, so small-message loads do not allocate 256 KiB per wake.
constexpr size_t kArenaMax = 256 * 1024;
constexpr size_t kArenaMin = 16 * 1024;
constexpr size_t kArenaMinFree = 4 * 1024;
}  // namespace

// Shared by the loop and the env-teardown hook. When the env goes away while the loop is open
// (worker.terminate(), process exit), the hook closes the loop; either way the hook is removed
// only once libuv has released our handles, so Node waits for them before closing its loop.
struct CleanupCtx {
  napi_async_cleanup_hook_handle handle = nullptr;
  Loop* loop = nullptr;  // null once the loop has started closing
};

namespace {
void ReleaseCleanup(void* arg) {
  auto* ctx = static_cast<CleanupCtx*>(arg);
  if (ctx->handle) napi_remove_async_cleanup_hook(ctx->handle);
  delete ctx;
}
void OnEnvTeardown(napi_async_cleanup_hook_handle, void* arg) {
  auto* ctx = static_cast<CleanupCtx*>(arg);
  if (ctx->loop) ctx->loop->Close();  // ends in ReleaseCleanup(ctx)
}
}  // namespace

bool Loop::BindJs(napi_value callback, napi_value records, double* data) {
  records_ = data;
  napi_value name;
  return napi_create_reference(env_, callback, 1, &callback_) == napi_ok &&
         napi_create_reference(env_, records, 1, &records_ref_) == napi_ok &&
         napi_create_string_utf8(env_, "iapp:loop", NAPI_AUTO_LENGTH, &name) == napi_ok &&
         napi_async_init(env_, nullptr, name, &async_) == napi_ok;
}

void Loop::HookTeardown() {
  cleanup_ = new CleanupCtx();
  cleanup_->loop = this;
  if (napi_add_async_cleanup_hook(env_, OnEnvTeardown, cleanup_, &cleanup_->handle) != napi_ok)
    cleanup_->handle = nullptr;
}

// The JS side of Close(): the libuv watch, references, arenas and the async context.
void Loop::ReleaseJs() {
  if (uv_ != nullptr) {
    cleanup_->loop = nullptr;
    UvWatchClose(uv_, ReleaseCleanup, cleanup_);
    uv_ = nullptr;
    cleanup_ = nullptr;
  }
  pending_.clear();
  // Deleting references and the async context does not run JS: allowed during teardown too.
  for (napi_ref r : arenas_) napi_delete_reference(env_, r);
  arenas_.clear();
  // Inside a drain (JS called close() while events were delivered), the arena's handle scope is
  // below N-API frames still on the stack: the drain closes it on its way out.
  if (draining_) arena_ = nullptr;
  else ReleaseArena();
  for (napi_ref* r : {&callback_, &records_ref_}) {
    if (*r) napi_delete_reference(env_, *r);
    *r = nullptr;
  }
  if (lent_ref_) napi_delete_reference(env_, lent_ref_);
  lent_ref_ = nullptr;
  lent_ = nullptr;
  lent_used_ = 0;
  if (async_) napi_async_destroy(env_, async_);
  async_ = nullptr;
  arena_ = nullptr;
  records_ = nullptr;
}

double* Loop::Emit(int kind, uint64_t id) {
  size_t at = pending_.size();
  pending_.resize(at + kRecordStride, 0.0);
  double* r = &pending_[at];
  r[0] = kind;
  r[1] = static_cast<double>(id);
  if (!delivering_) WantPrepare();
  return r + 2;
}

uint8_t* Loop::ArenaReserve(size_t want, size_t* got) {
  if (stopping_) return nullptr;
  if (arena_ != nullptr && arena_size_ - arena_used_ < kArenaMinFree) {
    // Full. Its data must reach JS before it is let go; the drain does that between events, and
    // the socket, still readable, is read again on the next wait.
    if (arena_undelivered_) return nullptr;
    ReleaseArena();
  }
  if (arena_ == nullptr) {
    size_t size = kArenaMin;
    while (size < arena_hint_ && size < kArenaMax) size *= 2;
    void* data = nullptr;
    napi_value buf;
    napi_ref announced;
    if (napi_open_handle_scope(env_, &arena_scope_) != napi_ok) {
      arena_scope_ = nullptr;
      Stop();
      return nullptr;
    }
    if (napi_create_buffer(env_, size, &data, &buf) != napi_ok ||
        napi_create_reference(env_, buf, 1, &announced) != napi_ok) {
      ReleaseArena();
      Stop();
      return nullptr;
    }
    arenas_.push_back(announced);  // deleted as soon as the records go to JS
    arena_ = static_cast<uint8_t*>(data);
    arena_size_ = size;
    arena_used_ = 0;
    Emit(kRecArena, 0);
  }
  size_t free = arena_size_ - arena_used_;
  *got = want < free ? want : free;
  return arena_ + arena_used_;
}

uint8_t* Loop::NewBlob(size_t n) {
  if (stopping_) return nullptr;
  void* data = nullptr;
  napi_value buf;
  napi_ref ref;
  if (napi_create_buffer(env_, n > 0 ? n : 1, &data, &buf) != napi_ok ||
      napi_create_reference(env_, buf, 1, &ref) != napi_ok) {
    Stop();
    return nullptr;
  }
  arenas_.push_back(ref);  // deleted as soon as the records go to JS
  Emit(kRecBlob, 0);
  return static_cast<uint8_t*>(data);
}

uint8_t* Loop::LentReserve(size_t want, size_t* got) {
  if (stopping_) return nullptr;
  if (lent_ == nullptr) {
    void* data = nullptr;
    napi_value buf;
    napi_ref announced;
    if (napi_create_buffer(env_, kArenaMax, &data, &buf) != napi_ok ||
        napi_create_reference(env_, buf, 1, &lent_ref_) != napi_ok) {
      lent_ref_ = nullptr;
      Stop();
      return nullptr;
    }
    if (napi_create_reference(env_, buf, 1, &announced) != napi_ok) {
      Stop();
      return nullptr;
    }
    lent_ = static_cast<uint8_t*>(data);
    lent_used_ = 0;
    arenas_.push_back(announced);  // JS keeps it from this record on
    Emit(kRecLentArena, 0);
  }
  // Full: what was read into it goes to JS (the turn delivers between events), then it is
  // read into again; the socket stays readable meanwhile.
  if (kArenaMax - lent_used_ < kArenaMinFree) return nullptr;
  const size_t free = kArenaMax - lent_used_;
  *got = want < free ? want : free;
  return lent_ + lent_used_;
}

void Loop::LentCommit(uint64_t id, uint8_t* at, size_t n) {
  const double off = static_cast<double>(at - lent_);
  lent_used_ += n;
  EmitData(kRecLentData, id, off, n);
}

bool Loop::LentFull() const {
  return lent_ != nullptr && kArenaMax - lent_used_ < kArenaMinFree;
}

void Loop::ReleaseArena() {
  if (arena_scope_ != nullptr) napi_close_handle_scope(env_, arena_scope_);
  arena_scope_ = nullptr;
  arena_ = nullptr;
  arena_size_ = arena_used_ = 0;
}

bool Loop::ArenaFull() const {
  return arena_ != nullptr && arena_undelivered_ && arena_size_ - arena_used_ < kArenaMinFree;
}

void Loop::ArenaCommit(uint64_t id, uint8_t* at, size_t n) {
  const double off = static_cast<double>(at - arena_);
  arena_used_ += n;
  drain_bytes_ += n;
  arena_undelivered_ = true;
  EmitData(kRecData, id, off, n);
}

void Loop::EmitData(int kind, uint64_t id, double off, size_t n) {
  // Consecutive reads of one socket into one arena are contiguous: extend the last record.
  size_t sz = pending_.size();
  if (sz >= static_cast<size_t>(kRecordStride)) {
    double* last = &pending_[sz - kRecordStride];
    if (last[0] == kind && last[1] == static_cast<double>(id) && last[2] + last[3] == off) {
      last[3] += static_cast<double>(n);
      return;
    }
  }
  double* v = Emit(kind, id);
  v[0] = off;
  v[1] = static_cast<double>(n);
}

void Loop::WantPrepare() {
  if (uv_ != nullptr) UvWatchWantPrepare(uv_);
}

void Loop::Stop() {
  if (stopping_) return;
  stopping_ = true;
  if (uv_ != nullptr) UvWatchPause(uv_);
}

void Loop::Deliver() {
  // JS may call back into the loop (write, destroy, ...) and so add records while we deliver:
  // they are picked up by the next turn of this loop, never lost and never reordered.
  while (!pending_.empty() && !closed_ && !stopping_) {
    const size_t total = pending_.size() / kRecordStride;
    const size_t n = total < static_cast<size_t>(kRecordCapacity) ? total : kRecordCapacity;
    size_t narenas = 0;
    for (size_t i = 0; i < n; ++i) {
      const double k = pending_[i * kRecordStride];
      if (k == kRecArena || k == kRecMsgArena || k == kRecBlob || k == kRecLentArena) ++narenas;
    }
    napi_value fn, recv, argv[2], result;
    bool ok = napi_get_reference_value(env_, callback_, &fn) == napi_ok &&
              napi_get_global(env_, &recv) == napi_ok &&
              napi_create_double(env_, static_cast<double>(n), &argv[0]) == napi_ok;
    if (ok && narenas > 0) {
      ok = napi_create_array_with_length(env_, narenas, &argv[1]) == napi_ok;
      for (size_t i = 0; ok && i < narenas; ++i) {
        napi_value a;
        ok = napi_get_reference_value(env_, arenas_[i], &a) == napi_ok &&
             napi_set_element(env_, argv[1], static_cast<uint32_t>(i), a) == napi_ok;
      }
    } else if (ok) {
      ok = napi_get_undefined(env_, &argv[1]) == napi_ok;
    }
    if (!ok) return Stop();
    memcpy(records_, pending_.data(), n * kRecordStride * sizeof(double));
    pending_.erase(pending_.begin(), pending_.begin() + n * kRecordStride);
    for (size_t i = 0; i < narenas; ++i) napi_delete_reference(env_, arenas_[i]);
    arenas_.erase(arenas_.begin(), arenas_.begin() + narenas);
    ++stats_.drains;
    arena_undelivered_ = false;
    delivering_ = true;
    napi_status st = napi_make_callback(env_, async_, recv, fn, 2, argv, &result);
    delivering_ = false;
    if (st != napi_ok) {
      bool pending = false;
      napi_value exc;
      if (napi_is_exception_pending(env_, &pending) == napi_ok && pending &&
          napi_get_and_clear_last_exception(env_, &exc) == napi_ok) {
        // The JS side catches handler errors itself; reaching here is a bug in iapp's JS. Hand it
        // to the thread's uncaughtException machinery, which reports the thread as failed.
        napi_fatal_exception(env_, exc);
      }
      return Stop();
    }
  }
  // Every record that pointed into the lent arena has been handled: it is free again. (Only
  // when all went: a batch over kRecordCapacity leaves some for the next round of this loop.)
  if (pending_.empty()) lent_used_ = 0;
}

template <typename Body, typename After>
void Loop::Woken(Body&& body, After&& after) {
  if (closed_ || stopping_) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env_, &scope) != napi_ok) return Stop();
  ++stats_.wakeups;
  draining_ = true;
  try {
    body();
  } catch (...) {
    // Nothing in the drain path throws by design (allocation failure aside): never unwind into
    // libuv.
    Stop();
  }
  after();
  draining_ = false;
  napi_close_handle_scope(env_, scope);
}

void Loop::Drain() {
  Woken([this] { Turn(); },
        [this] {
          turn_deadline_ = visit_deadline_ = kNoDeadline;
          ReleaseArena();
        });
}


uint8_t* Loop::NewMessageArena(size_t n) {
  if (stopping_) return nullptr;
  void* data = nullptr;
  napi_value buf;
  napi_ref ref;
  if (napi_create_buffer(env_, n, &data, &buf) != napi_ok || napi_create_reference(env_, buf, 1, &ref) != napi_ok)
    return nullptr;
  arenas_.push_back(ref);
  Emit(kRecMsgArena, 0);
  return static_cast<uint8_t*>(data);
}

void Loop::Prepare() {
  if (closed_ || stopping_) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env_, &scope) != napi_ok) return Stop();
  try {
    // Until nothing is left: a refused change can emit a record, delivering can queue changes
    // or arm timers, and timers already due (armed for now, or the loop was busy) go out here
    // with no timerfd round trip. libuv does not look at prepare handles when it computes how
    // long to block, so anything left here would wait for an unrelated wake.
    for (int i = 0; i < 16 && !closed_ && !stopping_; ++i) {
      if (files_) files_->SubmitRing();
      timers_.Apply();
      ExpireDue();
      if (!poller_.HasChanges() && pending_.empty()) break;
      poller_.Flush();
      Deliver();
    }
    // What the last delivery armed: the kernel timers must be set before libuv sleeps.
    if (!closed_ && !stopping_) timers_.Apply();
    if (!closed_) FreeRetired();
    // Polling the inbox is for an idle loop: with a backlog, sockets are waiting for this thread.
    if (inbox_active_ && !backlogged() && !closed_ && !stopping_) {
      BusyPoll();
      if (!closed_ && !stopping_) timers_.Apply();  // set the kernel timers before libuv sleeps
    }
  } catch (...) {
    Stop();
  }
  napi_close_handle_scope(env_, scope);
}

void Loop::OnInbox() {
  if (inbox_ != nullptr) inbox_->ConsumeWake(true);
  // With priorities in use, messages are one more kind of ready item: the drain takes them with
  // whatever else is ready, in priority order. Without, they need no look at the poller (one
  // syscall less per message wake); ready sockets get their own wake from libuv.
  if (mixed_priorities_) return Drain();
  Woken(
      [this] {
        timers_.Apply();
        if (inbox_ != nullptr) DrainInbox();
        Deliver();
        if (!closed_) {
          FreeRetired();
          poller_.Flush();
        }
      },
      [] {});
}

}  // namespace iapp
