// The loop's turn: gathering ready work, ordering it, visiting watchers within a budget, and the
// handle table. Delivery to JS is in deliver.cc, messages in messaging.cc.
#include "loop.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <poll.h>

#include <algorithm>

#include "dialer.h"
#include "file.h"
#include "idle.h"
#include "socket.h"
#include "sys.h"

namespace iapp {

namespace {
constexpr int kBatch = Loop::kPollBatch;
constexpr int kMaxRounds = 8;         // polls per turn at most
constexpr int kMaxVisits = kBatch * kMaxRounds;  // the turn's backstop when the clock is not asked
constexpr size_t kControlPoll = 64;  // control watchers polled per turn while a backlog waits
#if defined(IAPP_KQUEUE)
constexpr bool kInboxInPoller = true;  // the inbox's waker is an EVFILT_USER of the poller
#else
constexpr bool kInboxInPoller = false;  // an eventfd libuv watches apart from the poller
#endif
}  // namespace

// libuv calls these (uv_glue.cc): the poller is readable, or libuv is about to block.
static void OnReady(void* arg) { static_cast<Loop*>(arg)->Drain(); }
static void OnPrepareHook(void* arg) { static_cast<Loop*>(arg)->Prepare(); }

Loop::Loop(napi_env env) : env_(env) {
  events_.resize(kPollBatch);
  pending_.reserve(kRecordStride * 256);
}

Loop::~Loop() { Close(); }

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
  HookTeardown();
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
  ReleaseJs();
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
      if (ArenaFull() || LentFull()) {
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

void Loop::TimersChanged() {
  if (uv_ != nullptr) UvWatchPrepareAlways(uv_, timers_.allocated() > 0);
}

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
