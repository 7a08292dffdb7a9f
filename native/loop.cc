#include "loop.h"

#include <cerrno>
#include <cstring>

#include "errors.h"
#include "sys.h"

namespace iapp {

namespace {
constexpr int kBatch = 512;           // events per epoll_wait/kevent
constexpr int kMaxRounds = 8;         // waits per drain before returning to libuv (fairness)
constexpr size_t kArenaSize = 256 * 1024;
constexpr size_t kArenaMinFree = 16 * 1024;

void ReleaseCleanup(void* arg);
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

Loop::Loop(Napi::Env env, Napi::Function callback, Napi::Float64Array records)
    : env_(env), records_(records.Data()) {
  napi_value name;
  if (napi_create_reference(env_, callback, 1, &callback_) != napi_ok ||
      napi_create_reference(env_, records, 1, &records_ref_) != napi_ok ||
      napi_create_string_utf8(env_, "iapp:loop", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env_, nullptr, name, &async_) != napi_ok)
    throw Napi::Error::New(env, "iapp: cannot set up the loop's references");
  events_.resize(kBatch);
  pending_.reserve(kRecordStride * 256);
}

Loop::~Loop() { Close(); }

static void OnReady(void* arg) { static_cast<Loop*>(arg)->Drain(); }
static void OnPrepareHook(void* arg) { static_cast<Loop*>(arg)->Prepare(); }

int Loop::Open() {
  int r = poller_.Open();
  if (r < 0) return r;
  poller_.SetOnChange([](void* arg) { static_cast<Loop*>(arg)->WantPrepare(); }, this);
  int err = 0;
  uv_ = UvWatchStart(env_, poller_.fd(), UvHooks{OnReady, OnPrepareHook, this}, &err);
  if (uv_ == nullptr) {
    poller_.Close();
    return err;
  }
  reserve_fd_ = OpenReserveFd();  // best effort: without it, EMFILE only pauses the listener
  cleanup_ = new CleanupCtx();
  cleanup_->loop = this;
  if (napi_add_async_cleanup_hook(env_, OnEnvTeardown, cleanup_, &cleanup_->handle) != napi_ok)
    cleanup_->handle = nullptr;
  return 0;
}

void Loop::Close() {
  if (closed_) return;
  closed_ = true;
  for (auto& [id, h] : handles_) {
    poller_.Remove(h);
    h->dead = true;
    h->Abandon();
    retired_.push_back(h);
  }
  handles_.clear();
  for (Handle* h : retired_) delete h;
  retired_.clear();
  poller_.Close();
  if (reserve_fd_ >= 0) SysClose(reserve_fd_);
  reserve_fd_ = -1;
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
  for (napi_ref* r : {&arena_ref_, &callback_, &records_ref_}) {
    if (*r) napi_delete_reference(env_, *r);
    *r = nullptr;
  }
  if (async_) napi_async_destroy(env_, async_);
  async_ = nullptr;
  arena_ = nullptr;
  records_ = nullptr;
}

void Loop::RestoreReserveFd() {
  if (reserve_fd_ < 0 && !closed_) reserve_fd_ = OpenReserveFd();
}

void Loop::Register(Handle* h) {
  h->id = next_id_++;
  handles_.emplace(h->id, h);
}

Handle* Loop::Find(uint64_t id) const {
  auto it = handles_.find(id);
  return it == handles_.end() ? nullptr : it->second;
}

void Loop::Retire(Handle* h) {
  if (h->dead) return;
  h->dead = true;
  poller_.Remove(h);
  handles_.erase(h->id);
  retired_.push_back(h);
  WantPrepare();
}

void Loop::FreeRetired() {
  if (retired_.empty()) return;
  std::vector<Handle*> batch;
  batch.swap(retired_);
  for (Handle* h : batch) delete h;
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
  if (arena_ == nullptr || arena_size_ - arena_used_ < kArenaMinFree) {
    // JS keeps slices of earlier arenas alive for as long as it needs them; we only ever append.
    void* data = nullptr;
    napi_value buf;
    napi_ref current, announced;
    if (napi_create_buffer(env_, kArenaSize, &data, &buf) != napi_ok ||
        napi_create_reference(env_, buf, 1, &current) != napi_ok) {
      Stop();
      return nullptr;
    }
    if (napi_create_reference(env_, buf, 1, &announced) != napi_ok) {
      napi_delete_reference(env_, current);
      Stop();
      return nullptr;
    }
    if (arena_ref_) napi_delete_reference(env_, arena_ref_);
    arena_ref_ = current;
    arenas_.push_back(announced);
    arena_ = static_cast<uint8_t*>(data);
    arena_size_ = kArenaSize;
    arena_used_ = 0;
    Emit(kRecArena, 0);
  }
  size_t free = arena_size_ - arena_used_;
  *got = want < free ? want : free;
  return arena_ + arena_used_;
}

void Loop::ArenaCommit(uint64_t id, uint8_t* at, size_t n) {
  const double off = static_cast<double>(at - arena_);
  arena_used_ += n;
  // Consecutive reads of one socket into one arena are contiguous: extend the last record.
  size_t sz = pending_.size();
  if (sz >= static_cast<size_t>(kRecordStride)) {
    double* last = &pending_[sz - kRecordStride];
    if (last[0] == kRecData && last[1] == static_cast<double>(id) && last[2] + last[3] == off) {
      last[3] += static_cast<double>(n);
      return;
    }
  }
  double* v = Emit(kRecData, id);
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
    for (size_t i = 0; i < n; ++i)
      if (pending_[i * kRecordStride] == kRecArena) ++narenas;
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
}

void Loop::Drain() {
  if (closed_ || stopping_) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env_, &scope) != napi_ok) return Stop();
  ++stats_.wakeups;
  try {
    for (int round = 0; round < kMaxRounds && !closed_ && !stopping_; ++round) {
      int n = poller_.Wait(events_.data(), kBatch, 0);
      if (n < 0) {
        CountError(-n);
        break;
      }
      for (int i = 0; i < n; ++i) {
        Watcher* w = events_[i].watcher;
        if (!w->dead) w->OnEvent(events_[i].events);
      }
      FreeRetired();
      if (n < kBatch) break;
    }
    Deliver();
    if (!closed_) {
      FreeRetired();
      poller_.Flush();
    }
  } catch (...) {
    // Nothing in the drain path throws by design (allocation failure aside): never unwind into
    // libuv.
    Stop();
  }
  napi_close_handle_scope(env_, scope);
}

void Loop::Prepare() {
  if (closed_ || stopping_) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env_, &scope) != napi_ok) return Stop();
  try {
    // Until nothing is left: a refused change can emit a record, and delivering can queue
    // changes. libuv does not look at prepare handles when it computes how long to block, so
    // anything left here would wait for an unrelated wake.
    for (int i = 0; i < 16 && !closed_ && !stopping_ && (poller_.HasChanges() || !pending_.empty());
         ++i) {
      poller_.Flush();
      Deliver();
    }
    if (!closed_) FreeRetired();
  } catch (...) {
    Stop();
  }
  napi_close_handle_scope(env_, scope);
}

}  // namespace iapp
