#include "loop.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <poll.h>

#include <algorithm>

#include "dialer.h"
#include "errors.h"
#include "file.h"
#include "idle.h"
#include "socket.h"
#include "sys.h"

namespace iapp {

namespace {
constexpr int kBatch = 512;           // events per epoll_wait/kevent
constexpr int kMaxRounds = 8;         // polls per turn at most
constexpr int kMaxVisits = kBatch * kMaxRounds;  // the turn's backstop when the clock is not asked
constexpr size_t kControlPoll = 64;  // control watchers polled per turn while a backlog waits
#if defined(IAPP_KQUEUE)
constexpr bool kInboxInPoller = true;  // the inbox's waker is an EVFILT_USER of the poller
#else
constexpr bool kInboxInPoller = false;  // an eventfd libuv watches apart from the poller
#endif
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
  // Counted from open to close, not by object life: a closed loop's JS wrapper (and the native
  // object with it) waits for the garbage collector, which a leak check must not.
  g_live[kLiveLoop].fetch_add(1, std::memory_order_relaxed);
  counted_ = true;
  return 0;
}

void Loop::Close(size_t held) {
  if (counted_) g_live[kLiveLoop].fetch_sub(1, std::memory_order_relaxed);
  counted_ = false;
  if (closed_) return;
  closed_ = true;
  // Messages taken from the inbox that JS has not run (records not yet delivered, and those JS
  // held) are dropped with the loop: they count in the exit notice.
  size_t undelivered = held;
  for (size_t i = 0; i < pending_.size(); i += kRecordStride) {
    if (pending_[i] != kRecMessage) continue;
    const int type = static_cast<int>(pending_[i + 2]);
    if (type == kMsgPost || type == kMsgCall || type == kMsgBroadcast) ++undelivered;
  }
  CloseInbox(undelivered);
  timers_.Close();
  if (files_) files_->Close();
  idle_.reset();  // before the sockets it watches go
  for (auto& [id, h] : handles_) {
    poller_.Remove(h);
    h->dead = true;
    h->Abandon();
    retired_.push_back(h);
  }
  handles_.clear();
  // After the handles: their sockets are abandoned without calling back, and each dialer frees
  // its timer slot.
  dialers_.clear();
  backlog_.clear();
  backlog_head_ = 0;
  for (Watcher* w : control_) w->control_at = -1;
  control_.clear();
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
  // Inside a drain (JS called close() while events were delivered), the arena's handle scope is
  // below N-API frames still on the stack: the drain closes it on its way out.
  if (draining_) arena_ = nullptr;
  else ReleaseArena();
  for (napi_ref* r : {&callback_, &records_ref_}) {
    if (*r) napi_delete_reference(env_, *r);
    *r = nullptr;
  }
  if (async_) napi_async_destroy(env_, async_);
  async_ = nullptr;
  arena_ = nullptr;
  records_ = nullptr;
}

FileIo* Loop::files(int* err) {
  if (files_) return files_.get();
  if (closed_) {
    *err = EBADF;
    return nullptr;
  }
  auto io = std::unique_ptr<FileIo>(new (std::nothrow) FileIo(this));
  int r = io ? io->Open() : -ENOMEM;
  if (r < 0) {
    *err = -r;
    return nullptr;
  }
  files_ = std::move(io);
  return files_.get();
}

void Loop::RestoreReserveFd() {
  if (reserve_fd_ < 0 && !closed_) reserve_fd_ = OpenReserveFd();
}

void Loop::Register(Handle* h) {
  h->id = next_id_++;
  handles_.emplace(h->id, h);
  NotePriority(h->priority);
  // Every registered watcher can have one queued change: with room for all of them, pausing,
  // resuming or re-arming a watcher never allocates.
  poller_.Reserve(handles_.size() + 8);
}

Handle* Loop::Find(uint64_t id) const {
  auto it = handles_.find(id);
  return it == handles_.end() ? nullptr : it->second;
}

void Loop::Retire(Handle* h) {
  if (h->dead) return;
  h->dead = true;
  SetControl(h, false);
  poller_.Remove(h);
  handles_.erase(h->id);
  retired_.push_back(h);
  WantPrepare();
}

void Loop::FreeRetired() {
  if (retired_.empty()) return;
  // The backlog must not outlive what it points to: retired watchers are all marked dead.
  if (backlogged()) {
    backlog_.erase(backlog_.begin(), backlog_.begin() + backlog_head_);
    backlog_head_ = 0;
    backlog_.erase(std::remove_if(backlog_.begin(), backlog_.end(),
                                  [](const ReadyItem& it) { return it.watcher->dead; }),
                   backlog_.end());
  }
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
    for (size_t i = 0; i < n; ++i) {
      const double k = pending_[i * kRecordStride];
      if (k == kRecArena || k == kRecMsgArena || k == kRecBlob) ++narenas;
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
}

void Loop::Drain() {
  if (closed_ || stopping_) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env_, &scope) != napi_ok) return Stop();
  ++stats_.wakeups;
  draining_ = true;
  try {
    Turn();
  } catch (...) {
    // Nothing in the drain path throws by design (allocation failure aside): never unwind into
    // libuv.
    Stop();
  }
  turn_deadline_ = visit_deadline_ = kNoDeadline;
  ReleaseArena();
  draining_ = false;
  napi_close_handle_scope(env_, scope);
}

// One turn of the loop: libuv saw the poller readable and called Drain(). Everything native the
// loop does for ready watchers happens here, in this order, and the turn ends by handing the
// records to JS in one call and returning to libuv, which then runs Node's timers, immediates
// and other handles before it polls again.
//
// The budget: native work that is always ready (a pushing socket is always writable, a busy sink
// always readable) must not keep the turn going. A turn visits ready watchers until it has spent
// turn_budget_ns_ of native work or made kMaxVisits visits. A visit stops after a quarter of the
// budget (the primitive asks VisitSpent() after every syscall, so it overruns by at most one
// call), so a turn serves several watchers. The watchers a turn did not visit become the
// backlog, which the next turn starts with, before it polls again. Readiness is
// level-triggered: a watcher left ready keeps the poller readable, so libuv comes back at once.
// Nothing is lost, and every ready watcher is visited once before any is visited twice.
//
// Priorities: a turn gathers expired timers and pending messages first, then the backlog or
// freshly polled events, and sorts them by priority (once any priority other than 0 is in use).
// So a timer or message of higher priority than the backlog runs before more of it, in the very
// next turn. Timers and messages are never held back by the budget, and their records go to JS
// before the native work that follows them; the time their handlers take is not counted as
// native work.
void Loop::Turn() {
  uint64_t now = turn_budget_ns_ > 0 ? MonotonicNs() : 0;
  turn_deadline_ = turn_budget_ns_ > 0 ? now + turn_budget_ns_ : kNoDeadline;
  const uint64_t share = turn_budget_ns_ / kVisitShare;
  int visits = 0;
  bool spent = false;
  for (int round = 0; round < kMaxRounds && !spent && !closed_ && !stopping_; ++round) {
    // 1. Gather: due timers, messages, then the control set (with a backlog) or the poller's
    // ready events (without).
    int fetched = 0;
    // With epoll, messages that come during the turn wake libuv on the inbox's own fd; with
    // kqueue their event is one of the poller's, maybe past this batch: look at the inbox in every
    // round, so a message still goes before more of the bulk work behind it.
    const bool backlog = Gather(round == 0 || kInboxInPoller, &fetched);
    if (fetched < 0) {
      CountError(-fetched);
      break;
    }
    // 2. Order: a control message or timer can go before a thousand bulk reads. The backlog is in
    // order already (what is left of an ordered batch).
    if (mixed_priorities_)
      std::stable_sort(items_.begin(), items_.end(),
                       [](const ReadyItem& a, const ReadyItem& b) { return a.priority > b.priority; });
    // 3. Dispatch items_ merged with the backlog by priority (on ties, items_ first: timers,
    // messages and control before older bulk work). Records of timers and messages go to JS
    // before the native work that follows them (that is what a busy loop must not keep waiting).
    // Once the budget is spent, fetched events join the backlog, polled control watchers are
    // polled again next turn, and timers and messages are still dispatched.
    bool urgent = false;
    size_t i = 0;
    while (!closed_ && !stopping_) {
      const bool have_item = i < items_.size();
      const bool have_back = !spent && backlogged();
      if (!have_item && !have_back) break;
      const bool take_item = have_item && (!have_back || items_[i].priority >= backlog_[backlog_head_].priority);
      const ReadyItem it = take_item ? items_[i++] : backlog_[backlog_head_++];
      if (it.kind != ReadyItem::kWatcher) {
        Dispatch(it);
        urgent = true;
        continue;
      }
      if (spent) {
        if (!backlog) backlog_.push_back(it);
        continue;
      }
      // Dead, or visited since this event was seen (a control poll got to it first): served.
      if (it.watcher->dead || it.watcher->visited > it.seq) continue;
      if (urgent) {
        urgent = false;
        Deliver();
        if (closed_ || stopping_) break;
        if (turn_deadline_ != kNoDeadline) {
          const uint64_t after = MonotonicNs();
          turn_deadline_ += after - now;  // handlers' time is not native work
          now = after;
        }
      }
      ++visits;
      it.watcher->visited = ++visit_seq_;
      if (turn_deadline_ != kNoDeadline) visit_deadline_ = std::min(turn_deadline_, now + share);
      Dispatch(it);
      if (turn_deadline_ != kNoDeadline) now = MonotonicNs();
      spent = visits >= kMaxVisits || now >= turn_deadline_;
      // Between two events, never inside one: JS may close sockets (retired, still valid
      // memory) or the whole loop (then the rest of this batch is dropped unread).
      if (ArenaFull()) {
        Deliver();
        ReleaseArena();
      }
    }
    if (!backlogged()) {
      backlog_.clear();
      backlog_head_ = 0;
    }
    FreeRetired();
    // After a backlog, poll for what else is ready; after a short batch, nothing else is.
    if (!backlog && fetched < kBatch) break;
  }
  if (closed_) {
    backlog_.clear();
    backlog_head_ = 0;
  }
  if (spent) ++stats_.turns_cut;
  // 4. Hand everything to JS in one call (more if it does not fit one records array). What the
  // handlers start themselves (a sendFile, say) is not the turn's native work.
  turn_deadline_ = visit_deadline_ = kNoDeadline;
  Deliver();
  // The arena's data is in JS now: let it go (JS keeps what it still holds), and size the next
  // one for a turn like this one.
  ReleaseArena();
  arena_hint_ = drain_bytes_;
  drain_bytes_ = 0;
  // 5. Submit the interest changes the turn and its handlers made.
  if (!closed_) {
    FreeRetired();
    poller_.Flush();
  }
}

bool Loop::Gather(bool inbox, int* fetched) {
  items_.clear();
  timers_.Apply();  // what JS armed since the last round, before anything can expire
  for (int c = 0; c < 2; ++c) {
    if (!timers_.Due(c)) continue;
    expired_.clear();
    timers_.Expire(c, &expired_);
    for (const ExpiredTimer& t : expired_) items_.push_back(ReadyItem{t.priority, ReadyItem::kTimer, 0, nullptr, t, 0});
  }
  bool inbox_item = inbox && inbox_ != nullptr && inbox_->Pending();
  if (inbox_item) items_.push_back(ReadyItem{inbox_priority_, ReadyItem::kInbox, 0, nullptr, {}, 0});
  if (backlogged()) {
    PollControl();
    return true;
  }
  const int n = poller_.Wait(events_.data(), kBatch, 0);
  *fetched = n;
  for (int i = 0; i < n; ++i) {
    Watcher* w = events_[i].watcher;
    if (w == &inbox_event_) {
      // kqueue's inbox waker: a message the gauge did not show yet when this turn looked.
      if (!inbox_item && inbox_ != nullptr) items_.push_back(ReadyItem{inbox_priority_, ReadyItem::kInbox, 0, nullptr, {}, 0});
      inbox_item = true;
    } else if (timers_.IsTimerWatcher(w)) {
      // Timers were taken from the heap above; this reads the kernel timer and catches what
      // became due since, and a jump of the system clock.
      const int clock = timers_.ClockOf(w);
      if (timers_.Consume(clock)) timers_.ClockJumped();
      expired_.clear();
      timers_.Expire(clock, &expired_);
      for (const ExpiredTimer& t : expired_) items_.push_back(ReadyItem{t.priority, ReadyItem::kTimer, 0, nullptr, t, 0});
    } else {
      items_.push_back(ReadyItem{w->priority, ReadyItem::kWatcher, events_[i].events, w, {}, visit_seq_});
    }
  }
  return false;
}

uint64_t Loop::StartDialer(DialSpec&& spec, int* err) {
  if (closed_) {
    *err = EBADF;
    return 0;
  }
  const uint64_t id = next_id_++;
  auto d = Dialer::Start(this, std::move(spec), id, err);
  if (!d) return 0;
  dialers_.push_back(std::move(d));
  return id;
}

IdleWatch* Loop::idle() {
  if (!idle_) idle_.reset(new IdleWatch(this));
  return idle_.get();
}

Dialer* Loop::FindDialer(uint64_t id) const {
  for (const auto& d : dialers_)
    if (d->id == id) return d.get();
  return nullptr;
}

void Loop::SetControl(Watcher* w, bool on) {
  if (on == (w->control_at >= 0)) return;
  if (on) {
    w->control_at = static_cast<int32_t>(control_.size());
    control_.push_back(w);
    if (control_fds_.capacity() < kControlPoll) control_fds_.reserve(kControlPoll);  // PollControl() never allocates
    return;
  }
  Watcher* last = control_.back();
  control_[w->control_at] = last;
  last->control_at = w->control_at;
  control_.pop_back();
  w->control_at = -1;
}

void Loop::PollControl() {
  // At most kControlPoll per turn, in rotation: a client with thousands of connects in flight
  // pays a bounded poll per turn, and each of them is checked within a few turns.
  const size_t n = control_.size() < kControlPoll ? control_.size() : kControlPoll;
  if (n == 0) return;
  if (control_next_ >= control_.size()) control_next_ = 0;
  control_fds_.clear();
  bool no_fd = false;
  for (size_t k = 0, at = control_next_; k < n; ++k, at = at + 1 == control_.size() ? 0 : at + 1) {
    const Watcher* w = control_[at];
    const int fd = w->ControlFd();
    short ev = 0;
    if (w->want & kWantRead) ev |= POLLIN;
    if (w->want & kWantWrite) ev |= POLLOUT;
    control_fds_.push_back(pollfd{ev != 0 ? fd : -1, ev, 0});  // -1: ignored (paused, or no fd)
    if (fd < 0) no_fd = true;
  }
  const size_t first = control_next_;
  control_next_ = (control_next_ + n) % control_.size();
  // EINTR, ENOMEM: later. Watchers without an fd are looked at anyway.
  if (poll(control_fds_.data(), control_fds_.size(), 0) <= 0 && !no_fd) return;
  for (size_t k = 0; k < n; ++k) {
    Watcher* w = control_[(first + k) % control_.size()];
    const short r = control_fds_[k].revents;
    uint32_t bits = 0;
    if (control_fds_[k].fd < 0 && w->ControlFd() < 0) {
      bits = w->PollWithoutFd();  // a kernel event that is not an fd's (kqueue's EVFILT_PROC)
    } else if (r != 0 && !(r & POLLNVAL)) {
      if (r & POLLIN) bits |= kReadable;
      if (r & POLLOUT) bits |= kWritable;
      if (r & POLLHUP) bits |= kHangup;
      if (r & POLLERR) bits |= kError;
    }
    if (bits == 0) continue;
    items_.push_back(ReadyItem{w->priority, ReadyItem::kWatcher, bits, w, {}, visit_seq_});
  }
}

void Loop::Dispatch(const ReadyItem& it) {
  switch (it.kind) {
    case ReadyItem::kWatcher:
      if (!it.watcher->dead) it.watcher->OnEvent(it.events);
      break;
    case ReadyItem::kTimer:
      FireTimer(it.timer);
      break;
    case ReadyItem::kInbox:
      if (inbox_ != nullptr) DrainInbox();
      break;
  }
}

void Loop::FireTimer(const ExpiredTimer& t) {
  // A native owner's timer (a dialer's tick) runs here, as a visit: it gets a visit's share of
  // the turn's budget (VisitSpent()). JavaScript's timers get a record.
  if (TimerOwner* owner = timers_.OwnerOf(t.slot)) {
    if (turn_deadline_ != kNoDeadline) visit_deadline_ = std::min(turn_deadline_, MonotonicNs() + turn_budget_ns_ / kVisitShare);
    owner->OnTimer(t.expirations);
    visit_deadline_ = kNoDeadline;
    return;
  }
  double* v = Emit(kRecTimer, static_cast<uint64_t>(t.slot));
  v[0] = t.gen;
  v[1] = t.expirations;
}

void Loop::ExpireDue() {
  for (int c = 0; c < 2; ++c) {
    if (!timers_.Due(c)) continue;
    expired_.clear();
    timers_.Expire(c, &expired_);
    if (mixed_priorities_)
      std::stable_sort(expired_.begin(), expired_.end(),
                       [](const ExpiredTimer& a, const ExpiredTimer& b) { return a.priority > b.priority; });
    for (const ExpiredTimer& t : expired_) FireTimer(t);
  }
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

}  // namespace iapp

namespace iapp {

void Loop::QuietClosed() {
  if (quiet_open_ > 0) --quiet_open_;
  if (quiet_open_ == 0 && quiet_wait_) {
    quiet_wait_ = false;
    Emit(kRecQuietDone, 0);
  }
}

std::vector<Handle*> Loop::QuietSockets() const {
  // Collected first: ending or destroying a socket retires it from handles_.
  std::vector<Handle*> out;
  out.reserve(quiet_open_);
  for (const auto& [id, h] : handles_)
    if (h->kind == Handle::Kind::kSocket && static_cast<Socket*>(h)->quiet()) out.push_back(h);
  return out;
}

size_t Loop::EndQuiet() {
  for (Handle* h : QuietSockets()) static_cast<Socket*>(h)->End();
  return quiet_open_;
}

size_t Loop::DestroyQuiet(size_t* unsent) {
  auto all = QuietSockets();
  for (Handle* h : all) *unsent += static_cast<Socket*>(h)->Destroy(true);
  return all.size();
}

size_t Loop::WaitQuiet() {
  quiet_wait_ = quiet_open_ > 0;
  return quiet_open_;
}

std::shared_ptr<const std::vector<uint8_t>> Loop::SharedBuffer(const uint8_t* p, size_t n) {
  if (!shared_buf_ || shared_buf_->size() != n || memcmp(shared_buf_->data(), p, n) != 0)
    shared_buf_ = std::make_shared<const std::vector<uint8_t>>(p, p + n);
  return shared_buf_;
}

}  // namespace iapp

namespace iapp {

int Loop::Attach(std::shared_ptr<Group> group, uint32_t group_id, int32_t self) {
  if (closed_) return -EBADF;
  if (inbox_ != nullptr || self < 0 || self >= group->size()) return -EINVAL;
  inbox_ = group->inbox(self);
  group_ = std::move(group);
  group_id_ = group_id;
  self_ = self;
#if defined(IAPP_KQUEUE)
  // Senders trigger an EVFILT_USER knote on this loop's kqueue (EV_CLEAR: fetching the event
  // resets it), so a message wakes the loop through the poller, like any other event.
  const uintptr_t ident = reinterpret_cast<uintptr_t>(&inbox_event_);
  int r = poller_.Register(&inbox_event_, EVFILT_USER, ident, EV_CLEAR, 0, 0);
  if (r == 0) inbox_->BindWaker(poller_.kqueue_fd(), ident, &inbox_event_);
#else
  int r = UvWatchInbox(uv_, inbox_->wake_fd(), [](void* arg) { static_cast<Loop*>(arg)->OnInbox(); });
#endif
  if (r != 0) {
    inbox_.reset();
    group_.reset();
    self_ = -1;
    return r;
  }
  group_->Attached(self_, true);
  // Messages posted before we attached are waiting: the waker is already set, and the poller
  // reports it on the next wait.
  return 0;
}

void Loop::Announce() {
  if (group_ == nullptr) return;
  MsgHeader h{0, kMsgStarted, 0, 0, self_, 0, 0};
  group_->Notify(h, false);
}

int Loop::Post(int32_t target, MsgHeader h, const uint8_t* payload, bool bounded) {
  if (group_ == nullptr || target < 0 || target >= group_->size()) return -3;
  h.from = self_;
  int r = group_->inbox(target)->Push(h, payload, bounded);
  if (r == Inbox::kOk) ++stats_.messages_out;
  return r;
}

namespace {
// Total time one prepare hook may spend polling, so libuv's timers and our own sockets still get
// their turn under a steady stream of messages.
constexpr uint64_t kBusyPollCapNs = 1000000;
}  // namespace

void Loop::BusyPoll() {
  inbox_active_ = false;
  inbox_->SetPolling(true);
  const uint64_t start = MonotonicNs();
  uint64_t deadline = start + busy_poll_ns_;
  for (;;) {
    uint64_t now = MonotonicNs();
    if (now >= deadline || now - start >= kBusyPollCapNs) {
      if (!inbox_->SetPolling(false)) return;
      // A message came as we stopped. Past the cap, let libuv run first: signal ourselves.
      if (now - start >= kBusyPollCapNs) return inbox_->Wake();
      inbox_->SetPolling(true);
    }
    const bool message = inbox_->Pending();
    // Timers keep their time while we poll: what handlers armed is applied, what is due fires.
    timers_.Apply();
    const bool due = timers_.Due(kMonotonic) || timers_.Due(kRealtime);
    if (!message && !due) {
      for (int i = 0; i < 32; ++i) CpuRelax();
      continue;
    }
    if (message) DrainInbox();
    inbox_active_ = false;
    ExpireDue();
    Deliver();
    if (closed_ || stopping_) {
      if (inbox_ != nullptr) inbox_->SetPolling(false);
      return;
    }
    FreeRetired();
    poller_.Flush();
    if (message) deadline = MonotonicNs() + busy_poll_ns_;
  }
}

int Loop::PostBatch(int32_t target, const uint8_t* data, size_t len, size_t count) {
  if (group_ == nullptr || target < 0 || target >= group_->size()) return -3;
  int r = group_->inbox(target)->PushBatch(data, len, count);
  if (r == Inbox::kOk) stats_.messages_out += count;
  return r;
}

void Loop::OnInbox() {
  if (inbox_ != nullptr) inbox_->ConsumeWake(true);
  // With priorities in use, messages are one more kind of ready item: the drain takes them with
  // whatever else is ready, in priority order. Without, they need no look at the poller (one
  // syscall less per message wake); ready sockets get their own wake from libuv.
  if (mixed_priorities_) return Drain();
  if (closed_ || stopping_) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env_, &scope) != napi_ok) return Stop();
  ++stats_.wakeups;
  draining_ = true;
  try {
    timers_.Apply();
    if (inbox_ != nullptr) DrainInbox();
    Deliver();
    if (!closed_) {
      FreeRetired();
      poller_.Flush();
    }
  } catch (...) {
    Stop();
  }
  draining_ = false;
  napi_close_handle_scope(env_, scope);
}

void Loop::TimersChanged() {
  if (uv_ != nullptr) UvWatchPrepareAlways(uv_, timers_.allocated() > 0);
}

void Loop::DrainInbox() {
  if (inbox_ == nullptr || stopping_) return;
  inbox_->ConsumeWake();
  size_t n = inbox_->Take(&take_buf_, &waiters_buf_);
  // Senders refused while the inbox was full may try again: it is empty now.
  for (int32_t w : waiters_buf_) {
    MsgHeader h{0, kMsgSpace, 0, 0, self_, 0, 0};
    group_->inbox(w)->Push(h, nullptr, false);
  }
  if (n == 0) return;
  if (busy_poll_ns_ > 0) {
    inbox_active_ = true;
    WantPrepare();
  }
  // Payloads are copied once more, into one JS Buffer per take; handlers get views of it.
  size_t total = 0;
  for (size_t at = 0; at < take_buf_.size();) {
    auto* h = reinterpret_cast<const MsgHeader*>(take_buf_.data() + at);
    if (h->type != kMsgCancelled) total += h->len;
    at += sizeof(MsgHeader) + ((static_cast<size_t>(h->len) + 7) & ~static_cast<size_t>(7));
  }
  uint8_t* arena = nullptr;
  if (total > 0) {
    void* data = nullptr;
    napi_value buf;
    napi_ref ref;
    if (napi_create_buffer(env_, total, &data, &buf) != napi_ok ||
        napi_create_reference(env_, buf, 1, &ref) != napi_ok) {
      // No JS buffer for them (the env is stopping, or memory ran out): these messages cannot
      // be handled. Deliver or die: close the inbox, count them as dropped, so senders learn it
      // and calls to this thread reject.
      CloseInbox(n);
      return Stop();
    }
    arenas_.push_back(ref);
    Emit(kRecMsgArena, 0);
    arena = static_cast<uint8_t*>(data);
  }
  size_t off = 0;
  for (size_t at = 0; at < take_buf_.size();) {
    auto* h = reinterpret_cast<const MsgHeader*>(take_buf_.data() + at);
    if (h->type != kMsgCancelled) {
      if (h->len > 0) memcpy(arena + off, take_buf_.data() + at + sizeof(MsgHeader), h->len);
      double* v = Emit(kRecMessage, static_cast<uint64_t>(h->from));
      v[0] = h->type;
      v[1] = h->seq;
      v[2] = h->name;
      v[3] = static_cast<double>(off);
      v[4] = h->len;
      v[5] = h->flags;
      off += h->len;
      ++stats_.messages_in;
    }
    at += sizeof(MsgHeader) + ((static_cast<size_t>(h->len) + 7) & ~static_cast<size_t>(7));
  }
  // A long log is not kept around after a burst.
  if (take_buf_.capacity() > (4u << 20)) std::vector<uint8_t>().swap(take_buf_);
}

void Loop::CloseInbox(size_t undelivered) {
  if (inbox_ == nullptr) return;
  size_t dropped = inbox_->Close() + undelivered;
#if defined(IAPP_KQUEUE)
  poller_.Unregister(EVFILT_USER, reinterpret_cast<uintptr_t>(&inbox_event_));  // no sender triggers it now
#endif
  group_->Attached(self_, false);
  // Deliver or die: everyone learns that this endpoint is gone (pending calls to it reject), and
  // how many of its messages were never handled.
  MsgHeader h{0, kMsgExited, 0, 0, self_, 0, static_cast<double>(dropped)};
  group_->Notify(h, true);
  inbox_.reset();
  group_.reset();
}

}  // namespace iapp
