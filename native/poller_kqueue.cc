// kqueue backend (FreeBSD, macOS), written against the FreeBSD kqueue(2) manual and reviewed line
// by line against poller_epoll.cc. CI runs on Linux only: this file is compiled and exercised on a
// BSD or a Mac, never in CI.
//
// Differences from epoll that shape this file:
// - read and write interest are two filters (EVFILT_READ, EVFILT_WRITE), so one watcher may need
//   two changelist entries and may deliver two events in one batch;
// - the whole changelist goes to the kernel in one kevent() call; EV_RECEIPT makes the kernel report
//   each entry's result, so a refused change reaches its own watcher;
// - EV_DISPATCH is the oneshot: the filter stays registered but disabled until EV_ENABLE/EV_ADD;
// - closing an fd drops its knotes, but Remove() still deletes them first so that a change queued
//   for that fd number can never reach a socket that later reuses it;
// - there is no EPOLLEXCLUSIVE: a listener shared by several loops wakes them all and the losers
//   get EAGAIN from accept, which costs a syscall, not correctness.
#if defined(IAPP_KQUEUE)
#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <sys/event.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include "poller.h"
#include "sys.h"

namespace iapp {

namespace {
struct kevent MakeChange(const Watcher* w, int16_t filter, uint16_t flags) {
  struct kevent k;
  EV_SET(&k, w->fd, filter, flags | EV_RECEIPT, 0, 0, const_cast<Watcher*>(w));
  return k;
}
uint16_t AddFlags(uint32_t want) {
  uint16_t f = EV_ADD | EV_ENABLE;
  if (want & kEdge) f |= EV_CLEAR;
  if (want & kOneshot) f |= EV_DISPATCH;
  return f;
}
}  // namespace

Poller::~Poller() { Close(); }

int Poller::Open() {
  fd_ = kqueue();
  if (fd_ < 0) return -errno;
  // kqueue descriptors are not inherited by fork(), but they are by exec() without CLOEXEC. Set
  // on its own: SetNonblockCloexec() stops at a failed F_SETFL, and a kqueue answers FIONBIO with
  // ENOTTY. O_NONBLOCK is not needed here (every kevent() call passes a timeout); uv_poll_init
  // sets it for libuv.
  fcntl(fd_, F_SETFD, FD_CLOEXEC);
  return 0;
}

void Poller::Close() {
  if (fd_ >= 0) SysClose(fd_);
  fd_ = -1;
  changes_.clear();
}

void Poller::Update(Watcher* w) {
  if (w->queued || w->dead) return;
  w->queued = true;
  changes_.push_back(w);
  if (changes_.size() == 1 && on_change_) on_change_(on_change_arg_);
}

int Poller::Remove(Watcher* w) {
  if (w->queued) {
    w->queued = false;
    auto it = std::find(changes_.begin(), changes_.end(), w);
    if (it != changes_.end()) changes_.erase(it);
  }
  if (!w->armed || fd_ < 0) return 0;
  struct kevent k[2];
  int n = 0;
  if (w->armed & kWantRead) k[n++] = MakeChange(w, EVFILT_READ, EV_DELETE);
  if (w->armed & kWantWrite) k[n++] = MakeChange(w, EVFILT_WRITE, EV_DELETE);
  w->armed = 0;
  struct kevent res[2];
  timespec zero{0, 0};
  // With EV_RECEIPT every entry comes back; ENOENT (already gone) and EBADF (fd already closed,
  // which dropped its filters) are not failures here, as in the epoll backend.
  int r = kevent(fd_, k, n, res, n, &zero);
  if (r < 0) return -errno;
  for (int i = 0; i < r; ++i)
    if ((res[i].flags & EV_ERROR) && res[i].data != 0 && res[i].data != ENOENT &&
        res[i].data != EBADF)
      return -static_cast<int>(res[i].data);
  return 0;
}

// Appends the watcher's changes to kev_. Returns the number of entries added.
int Poller::Apply(Watcher* w) {
  const uint32_t want = w->want;
  const uint32_t armed = w->armed;
  const bool rearm = armed & kNeedsRearm;
  // EV_ADD on a filter that is already registered updates udata and re-enables it, but keeps the
  // EV_CLEAR/EV_DISPATCH of the first EV_ADD (FreeBSD's kqueue_register never rewrites kn_flags):
  // a mode change means delete and add again. A change to the other filter or to kExclusive (no-op
  // here) leaves a registered filter alone.
  const bool remode = (armed ^ want) & (kEdge | kOneshot);
  int added = 0;
  for (int16_t filter : {static_cast<int16_t>(EVFILT_READ), static_cast<int16_t>(EVFILT_WRITE)}) {
    const uint32_t bit = filter == EVFILT_READ ? kWantRead : kWantWrite;
    const bool on = want & bit;
    const bool was = armed & bit;
    if (on && was && remode) {
      kev_.push_back(MakeChange(w, filter, EV_DELETE));
      ++added;
    }
    if (on && (!was || rearm || remode)) {
      kev_.push_back(MakeChange(w, filter, AddFlags(want)));
      ++added;
    } else if (!on && was) {
      kev_.push_back(MakeChange(w, filter, EV_DELETE));
      ++added;
    }
  }
  w->armed = want & (kWantRead | kWantWrite) ? want : 0;
  return added;
}

int Poller::ApplyNow(Watcher* w) {
  if (w->queued) {
    w->queued = false;
    auto it = std::find(changes_.begin(), changes_.end(), w);
    if (it != changes_.end()) changes_.erase(it);
  }
  if (fd_ < 0) return -EBADF;
  std::vector<struct kevent> saved;
  saved.swap(kev_);
  const int n = Apply(w);
  int err = 0;
  if (n > 0) {
    timespec zero{0, 0};
    int r = kevent(fd_, kev_.data(), n, kev_.data(), n, &zero);
    if (r < 0) err = errno;
    for (int i = 0; i < r && err == 0; ++i)
      if ((kev_[i].flags & EV_ERROR) && kev_[i].data != 0 && kev_[i].data != ENOENT)
        err = static_cast<int>(kev_[i].data);
  }
  if (err != 0) w->armed = 0;
  kev_.swap(saved);
  return -err;
}

void Poller::Flush() {
  if (changes_.empty() || fd_ < 0) return;
  flushing_.swap(changes_);
  kev_.clear();
  for (Watcher* w : flushing_) {
    if (!w->queued) continue;
    w->queued = false;
    Apply(w);
  }
  flushing_.clear();
  if (kev_.empty()) return;
  // One kevent() call for every pending change: results come back in place (EV_RECEIPT).
  const int n = static_cast<int>(kev_.size());
  timespec zero{0, 0};
  int r = kevent(fd_, kev_.data(), n, kev_.data(), n, &zero);
  if (r < 0) {
    int err = errno;
    // The call failed as a whole: every watcher in it is unregistered as far as we know.
    std::vector<Watcher*> failed;
    for (int i = 0; i < n; ++i) failed.push_back(static_cast<Watcher*>(kev_[i].udata));
    failed.erase(std::unique(failed.begin(), failed.end()), failed.end());
    for (Watcher* w : failed) {
      w->armed = 0;
      if (!w->dead) w->OnPollError(err);
    }
    return;
  }
  Watcher* last = nullptr;
  for (int i = 0; i < r; ++i) {
    const struct kevent& k = kev_[i];
    if (!(k.flags & EV_ERROR) || k.data == 0 || k.data == ENOENT) continue;
    Watcher* w = static_cast<Watcher*>(k.udata);
    if (w == last || w->dead) continue;  // one report per watcher
    last = w;
    w->armed = 0;
    w->OnPollError(static_cast<int>(k.data));
  }
}

int Poller::Wait(PollEvent* out, int max, int timeout_ms) {
  Flush();
  if (kev_.size() < static_cast<size_t>(max)) kev_.resize(max);
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  int n = kevent(fd_, nullptr, 0, kev_.data(), max, timeout_ms < 0 ? nullptr : &ts);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  for (int i = 0; i < n; ++i) {
    const struct kevent& k = kev_[i];
    Watcher* w = static_cast<Watcher*>(k.udata);
    uint32_t bits = 0;
    if (k.filter == EVFILT_READ) bits |= kReadable;
    if (k.filter == EVFILT_WRITE) bits |= kWritable;
    if (k.flags & EV_EOF) {
      bits |= kHangup;
      if (k.fflags != 0) bits |= kError;  // fflags holds the socket error on EOF
    }
    if (k.flags & EV_ERROR) bits |= kError;
    if (w->want & kOneshot) w->armed |= kNeedsRearm;
    out[i] = PollEvent{w, bits};
  }
  return n;
}

}  // namespace iapp
#endif  // IAPP_KQUEUE
