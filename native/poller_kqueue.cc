// kqueue backend (FreeBSD, macOS), written against the FreeBSD kqueue(2) manual and reviewed line
// by line against poller_epoll.cc. CI runs it on Linux over libkqueue (npm run test:kqueue), which
// emulates kqueue on epoll; docs/platforms.md says what that run proves and what it cannot.
//
// Differences from epoll that shape this file:
// - read and write interest are two filters (EVFILT_READ, EVFILT_WRITE), so one watcher may need
//   two changelist entries and may deliver two events in one batch;
// - the whole changelist goes to the kernel in one kevent() call; EV_RECEIPT makes the kernel report
//   each entry's result, so a refused change reaches its own watcher;
// - a knote, once added, is switched with EV_DISABLE/EV_ENABLE, never deleted and added again:
//   enabling allocates nothing, so pausing and resuming cannot fail (an add can: ENOMEM, limits);
// - EV_DISPATCH is the oneshot: the filter stays registered but disabled until EV_ENABLE;
// - closing an fd drops its knotes, but Remove() still deletes them first so that a change queued
//   for that fd number can never reach a socket that later reuses it (and libkqueue, which cannot
//   see a close, must be told);
// - there is no EPOLLEXCLUSIVE: a listener shared by several loops wakes them all and the losers
//   get EAGAIN from accept, which costs a syscall, not correctness;
// - timers, the inbox's waker and child exits are kernel events of the kqueue itself (EVFILT_TIMER,
//   EVFILT_USER, EVFILT_PROC), not fds: Register/Modify/Unregister below.
#if defined(IAPP_KQUEUE)
#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <mutex>
#include <new>
#include <sys/event.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include "faults.h"
#include "poller.h"
#include "sys.h"

#if defined(LIBKQUEUE_HAS_POLLABLE_FD)
// Exported by libkqueue (its own tests use it) but not declared in its header: blocks until the
// monitor thread has freed every kqueue already closed.
extern "C" void libkqueue_drain_pending_close(void);
#endif

namespace iapp {

namespace {
constexpr int kMaxEvents = 512;  // what one Wait() can return (the loop asks for kBatch = 512)
constexpr size_t kEntriesPerWatcher = 5;  // a mode change: two deletes, two adds, a disable
// Changes per kevent() call. FreeBSD takes any number, but libkqueue returns at most 512
// entries per call (MAX_KEVENT), receipts included, and stops with EFAULT past them.
constexpr size_t kSubmitMax = 512;

uint16_t AddFlags(uint32_t want) {
  uint16_t f = EV_ADD;
  if (want & kEdge) f |= EV_CLEAR;
  if (want & kOneshot) f |= EV_DISPATCH;
  return f;
}
}  // namespace

int KeventChange(int kq, uintptr_t ident, int16_t filter, uint16_t flags, uint32_t fflags, int64_t data, void* udata) {
  struct kevent k;
  EV_SET(&k, ident, filter, flags, fflags, data, udata);
  timespec zero{0, 0};
  // No room for events: a refused change is returned by kevent() itself.
  int r;
  do r = kevent(kq, &k, 1, nullptr, 0, &zero);
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : 0;
}

void PollerProcessInit() {
#if defined(LIBKQUEUE_HAS_POLLABLE_FD)
  // Libkqueue opens process-wide descriptors with the first kqueue (its monitor's epoll and an
  // eventfd) and keeps them until exit. Opening them when the addon loads keeps them out of the
  // counts of whichever loop, and test, happens to come first.
  static std::once_flag once;
  std::call_once(once, [] {
    int kq = kqueue();
    if (kq >= 0) {
      close(kq);
      libkqueue_drain_pending_close();
    }
  });
#endif
}

int Poller::Open() {
  try {
    out_.resize(kMaxEvents);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  fd_ = kqueue();
  if (fd_ < 0) return -errno;
  // kqueue descriptors are not inherited by fork(), but they are by exec() without CLOEXEC. Set
  // on its own: SetNonblockCloexec() stops at a failed F_SETFL, and a kqueue answers FIONBIO with
  // ENOTTY. O_NONBLOCK is not needed here (every kevent() call passes a timeout); uv_poll_init
  // sets it for libuv.
  fcntl(fd_, F_SETFD, FD_CLOEXEC);
#if defined(LIBKQUEUE_HAS_POLLABLE_FD)
  // Over libkqueue the kqueue descriptor is the write end of a pipe and never polls readable:
  // libuv watches the epoll descriptor behind it, readable exactly when kevent() has events.
  poll_fd_ = libkqueue_pollable_fd(fd_);
  if (poll_fd_ < 0) {
    const int err = errno;
    Close();
    return -err;
  }
#else
  poll_fd_ = fd_;
#endif
  return 0;
}

void Poller::Close() {
  if (fd_ >= 0) {
    SysClose(fd_);
#if defined(LIBKQUEUE_HAS_POLLABLE_FD)
    // Libkqueue frees a closed kqueue (its epoll fd, its pipe's other end, every knote's
    // timerfd, eventfd or pidfd) on its monitor thread, later. FreeBSD frees it in close():
    // wait here, so that a closed loop has closed every descriptor, as there.
    libkqueue_drain_pending_close();
#endif
  }
  fd_ = poll_fd_ = -1;
  changes_.clear();
}

void Poller::Reserve(size_t n) {
  const size_t cap = ReserveChanges(n);
  if (cap == 0) return;
  // Flush() fills these for every queued watcher: with room for all of them it allocates nothing.
  kev_.reserve(kEntriesPerWatcher * cap);
  entry_.reserve(kEntriesPerWatcher * cap);
  rcpt_.resize(kSubmitMax);
  refused_.reserve(cap);
}

int Poller::Remove(Watcher* w) {
  Dequeue(w);
  const uint8_t knotes = w->knotes;
  w->knotes = 0;
  w->armed = 0;
  if (knotes == 0 || fd_ < 0) return 0;
  struct kevent k[2];
  int n = 0;
  if (knotes & kWantRead) EV_SET(&k[n++], w->fd, EVFILT_READ, EV_DELETE | EV_RECEIPT, 0, 0, w);
  if (knotes & kWantWrite) EV_SET(&k[n++], w->fd, EVFILT_WRITE, EV_DELETE | EV_RECEIPT, 0, 0, w);
  struct kevent res[2];
  timespec zero{0, 0};
  // With EV_RECEIPT every entry comes back; ENOENT (already gone) and EBADF (fd already closed,
  // which dropped its filters) are not failures here, as in the epoll backend.
  int r = kevent(fd_, k, n, res, n, &zero);
  if (r < 0) return -errno;
  for (int i = 0; i < r; ++i)
    if ((res[i].flags & EV_ERROR) && res[i].data != 0 && res[i].data != ENOENT && res[i].data != EBADF)
      return -static_cast<int>(res[i].data);
  return 0;
}

void Poller::Queue(Watcher* w, int16_t filter, uint16_t flags) {
  struct kevent k;
  EV_SET(&k, w->fd, filter, flags | EV_RECEIPT, 0, 0, w);
  kev_.push_back(k);  // within the capacity Reserve() made
  entry_.push_back(Entry{w, static_cast<uint8_t>(filter == EVFILT_READ ? kWantRead : kWantWrite), (flags & EV_ADD) != 0});
}

// Appends the watcher's changes to kev_; returns the number of entries that add a knote.
int Poller::Apply(Watcher* w) {
  const uint32_t io = kWantRead | kWantWrite, mode = kEdge | kOneshot;
  const uint32_t want = w->want;
  int adds = 0;
  // EV_ADD on a registered filter keeps the EV_CLEAR/EV_DISPATCH of the first EV_ADD (FreeBSD's
  // kqueue_register never rewrites kn_flags): a mode change means delete and add again.
  if (w->knotes != 0 && (want & io) && ((w->armed ^ want) & mode)) {
    if (w->knotes & kWantRead) Queue(w, EVFILT_READ, EV_DELETE);
    if (w->knotes & kWantWrite) Queue(w, EVFILT_WRITE, EV_DELETE);
    w->knotes = 0;
    w->armed = 0;
  }
  const bool rearm = w->armed & kNeedsRearm;
  const bool both = (want & kBothFilters) && (want & io);
  uint32_t enabled = 0;
  for (int16_t filter : {static_cast<int16_t>(EVFILT_READ), static_cast<int16_t>(EVFILT_WRITE)}) {
    const uint8_t bit = filter == EVFILT_READ ? kWantRead : kWantWrite;
    const bool on = want & bit;
    if (!(w->knotes & bit)) {
      if (on || both) {
        // The one step that may fail. A filter added only so that it exists is disabled by the
        // next entry of the same call, before the kernel can report anything: libkqueue mishandles
        // EV_ADD | EV_DISABLE (it leaves the fd in its epoll set, where a second filter of the
        // same fd then fails with EEXIST).
        Queue(w, filter, AddFlags(want));
        if (!on) Queue(w, filter, EV_DISABLE);
        w->knotes |= bit;
        ++adds;
      }
    } else if (on && (!(w->armed & bit) || rearm)) {
      Queue(w, filter, EV_ENABLE);
    } else if (!on && (w->armed & bit)) {
      Queue(w, filter, EV_DISABLE);
    }
    if (on) enabled |= bit;
  }
  // The mode bits are the knotes' own while any exists, enabled or not (with nothing wanted,
  // the ones they were added with).
  const uint32_t modes = (want & io) ? want & mode : w->armed & mode;
  w->armed = enabled | (w->knotes != 0 ? modes : 0);
  return adds;
}

void Poller::Refused(Watcher* w, int err) {
  for (const auto& r : refused_)
    if (r.first == w) return;  // one report per watcher
  refused_.push_back({w, err});
}

int Poller::ApplyNow(Watcher* w) {
  Dequeue(w);
  if (fd_ < 0) return -EBADF;
  // kev_ and the rest are free between flushes: this watcher's entries alone, submitted now, and
  // a refusal returned rather than reported.
  kev_.clear();
  entry_.clear();
  refused_.clear();
  Build(w);
  Submit();
  const int err = refused_.empty() ? 0 : refused_[0].second;
  refused_.clear();
  return -err;
}

void Poller::Build(Watcher* w) {
  const uint8_t knotes = w->knotes;
  const uint32_t armed = w->armed;
  const size_t first = kev_.size();
  if (Apply(w) == 0) return;
  // An injected refusal, where a real kernel can refuse: a new knote. Enabling and disabling one
  // that exists cannot fail, and is never made to.
  if (const int injected = Fault(kFaultPollCtl)) {
    kev_.resize(first);
    entry_.resize(first);
    w->knotes = knotes;
    w->armed = armed;
    Refused(w, injected);
  }
}

void Poller::Submit() {
  if (rcpt_.size() < kSubmitMax) rcpt_.resize(kSubmitMax);  // only if Reserve() was skipped
  // One kevent() call per kSubmitMax changes (one for all of them, nearly always), results in
  // order (EV_RECEIPT).
  for (size_t at = 0; at < kev_.size(); at += kSubmitMax) {
    const int n = static_cast<int>(kev_.size() - at < kSubmitMax ? kev_.size() - at : kSubmitMax);
    timespec zero{0, 0};
    int r;
    do r = kevent(fd_, kev_.data() + at, n, rcpt_.data(), n, &zero);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      // Refused as a whole: nothing is known to be registered.
      const int err = errno;
      for (size_t i = at; i < at + static_cast<size_t>(n); ++i) {
        const Entry& e = entry_[i];
        if (e.add) e.w->knotes &= static_cast<uint8_t>(~e.bit);
        e.w->armed &= ~static_cast<uint32_t>(e.bit);
        Refused(e.w, err);
      }
      continue;
    }
    Receipts(at, r < n ? r : n);
  }
}

void Poller::Receipts(size_t at, int n) {
  for (int i = 0; i < n; ++i) {
    const struct kevent& k = rcpt_[i];
    if (!(k.flags & EV_ERROR) || k.data == 0) continue;
    const Entry& e = entry_[at + static_cast<size_t>(i)];
    // Only an add can be refused. Enabling, disabling or deleting a knote that exists cannot fail
    // (FreeBSD could only say ENOENT, for a knote that is gone with its fd), so those receipts
    // are not read: libkqueue answers EV_ENABLE | EV_RECEIPT on a socket with an error from its
    // modify path after it has enabled the knote (the stale errno, often EAGAIN).
    if (!e.add) continue;
    e.w->knotes &= static_cast<uint8_t>(~e.bit);
    e.w->armed &= ~static_cast<uint32_t>(e.bit);
    Refused(e.w, static_cast<int>(k.data));
  }
}

void Poller::Flush() {
  if (changes_.empty() || fd_ < 0) return;
  flushing_.swap(changes_);
  kev_.clear();
  entry_.clear();
  refused_.clear();
  for (Watcher* w : flushing_) {
    if (!w->queued) continue;  // removed while queued
    w->queued = false;
    Build(w);
  }
  flushing_.clear();
  Submit();
  // Reported after the batch went in: a handler that closes other watchers then removes what
  // the kernel has, not entries of this batch still to come.
  for (const auto& r : refused_)
    if (!r.first->dead) r.first->OnPollError(r.second);
  refused_.clear();
}

int Poller::Wait(PollEvent* out, int max, int timeout_ms) {
  Flush();
  if (max > kMaxEvents) max = kMaxEvents;
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  int n = kevent(fd_, nullptr, 0, out_.data(), max, timeout_ms < 0 ? nullptr : &ts);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  for (int i = 0; i < n; ++i) {
    const struct kevent& k = out_[i];
    Watcher* w = static_cast<Watcher*>(k.udata);
    uint32_t bits = 0;
    if (k.filter == EVFILT_READ || k.filter == EVFILT_WRITE) {
      bits = k.filter == EVFILT_READ ? kReadable : kWritable;
      if (k.flags & EV_EOF) {
        bits |= kHangup;
        // fflags holds the socket's error on EOF (0 for a clean end).
        if (k.fflags != 0) {
          bits |= kError;
          w->so_error = static_cast<int32_t>(k.fflags);
        }
      }
      if (w->want & kOneshot) w->armed |= kNeedsRearm;
    } else {
      bits = kReadable;  // a timer expired, the waker was triggered, a process exited
    }
    if (k.flags & EV_ERROR) bits |= kError;
    out[i] = PollEvent{w, bits};
  }
  return n;
}

int Poller::Register(Watcher* w, int16_t filter, uintptr_t ident, uint16_t flags, uint32_t fflags, int64_t data) {
  if (fd_ < 0) return -EBADF;
  if (const int injected = Fault(kFaultPollCtl)) return -injected;
  return KeventChange(fd_, ident, filter, flags | EV_ADD, fflags, data, w);
}

int Poller::Modify(Watcher* w, int16_t filter, uintptr_t ident, uint16_t flags, uint32_t fflags, int64_t data) {
  return fd_ < 0 ? -EBADF : KeventChange(fd_, ident, filter, flags, fflags, data, w);
}

int Poller::Unregister(int16_t filter, uintptr_t ident) {
  if (fd_ < 0) return 0;  // closing the kqueue dropped it
  const int r = KeventChange(fd_, ident, filter, EV_DELETE, 0, 0, nullptr);
  return r == -ENOENT ? 0 : r;
}

}  // namespace iapp
#endif  // IAPP_KQUEUE
