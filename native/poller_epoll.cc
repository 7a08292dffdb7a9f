// epoll backend (Linux). Reviewed line by line against poller_kqueue.cc: keep the two in step.
#if !defined(IAPP_KQUEUE)
#include <algorithm>
#include <cerrno>
#include <sys/epoll.h>
#include <unistd.h>

#include "faults.h"
#include "poller.h"
#include "sys.h"

namespace iapp {

int Poller::Open() {
  fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (fd_ < 0) return -errno;
  poll_fd_ = fd_;
  return 0;
}

void Poller::Close() {
  if (fd_ >= 0) SysClose(fd_);
  fd_ = poll_fd_ = -1;
  changes_.clear();
}

void Poller::Reserve(size_t n) { ReserveChanges(n); }

int Poller::Remove(Watcher* w) {
  Dequeue(w);
  if (!w->armed || fd_ < 0) return 0;
  w->armed = 0;
  epoll_event unused{};
  int r = epoll_ctl(fd_, EPOLL_CTL_DEL, w->fd, &unused);
  return r < 0 && errno != ENOENT && errno != EBADF ? -errno : 0;
}

int Poller::Apply(Watcher* w) {
  const uint32_t io = w->want & (kWantRead | kWantWrite);
  if (io == 0) {
    // Nothing wanted: leave the interest list entirely. An entry with no events would still
    // report EPOLLHUP/EPOLLERR, level-triggered, on every wait.
    if (!w->armed) return 0;
    w->armed = 0;
    epoll_event unused{};
    return epoll_ctl(fd_, EPOLL_CTL_DEL, w->fd, &unused) < 0 && errno != ENOENT ? -errno : 0;
  }
  if (w->armed == w->want) return 0;
  epoll_event e{};
  e.data.ptr = w;
  if (w->want & kWantRead) e.events |= EPOLLIN;
  if (w->want & kWantWrite) e.events |= EPOLLOUT;
  if (w->want & kEdge) e.events |= EPOLLET;
  if (w->want & kOneshot) e.events |= EPOLLONESHOT;
  int op = w->armed ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (w->want & kExclusive) {
    // EPOLLEXCLUSIVE is accepted by ADD only: a change means delete and add again.
    e.events |= EPOLLEXCLUSIVE;
    if (w->armed) {
      epoll_event unused{};
      epoll_ctl(fd_, EPOLL_CTL_DEL, w->fd, &unused);
      w->armed = 0;
    }
    op = EPOLL_CTL_ADD;
  }
  const int injected = Fault(kFaultPollCtl);
  if (injected != 0 || epoll_ctl(fd_, op, w->fd, &e) < 0) {
    int err = injected != 0 ? injected : errno;
    // A failed ADD leaves nothing registered; a failed MOD leaves the old registration, which
    // Remove() must still delete.
    if (op == EPOLL_CTL_ADD) w->armed = 0;
    return -err;
  }
  w->armed = w->want;
  return 0;
}

int Poller::ApplyNow(Watcher* w) {
  Dequeue(w);
  return fd_ < 0 ? -EBADF : Apply(w);
}

void Poller::Flush() {
  if (changes_.empty() || fd_ < 0) return;
  // epoll has no batched control call: coalescing is what saves syscalls here (a watcher changed
  // many times since the last flush costs one epoll_ctl, or none if it is back where it was).
  flushing_.swap(changes_);
  for (Watcher* w : flushing_) {
    if (!w->queued) continue;  // removed while queued
    w->queued = false;
    int r = Apply(w);
    if (r < 0) w->OnPollError(-r);
  }
  flushing_.clear();
}

int Poller::Wait(PollEvent* out, int max, int timeout_ms) {
  Flush();
  if (ev_.size() < static_cast<size_t>(max)) ev_.resize(max);
  int n = epoll_wait(fd_, ev_.data(), max, timeout_ms);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  for (int i = 0; i < n; ++i) {
    Watcher* w = static_cast<Watcher*>(ev_[i].data.ptr);
    const uint32_t e = ev_[i].events;
    uint32_t bits = 0;
    if (e & EPOLLIN) bits |= kReadable;
    if (e & EPOLLOUT) bits |= kWritable;
    if (e & (EPOLLHUP | EPOLLRDHUP)) bits |= kHangup;
    if (e & EPOLLERR) bits |= kError;
    if (w->want & kOneshot) w->armed |= kNeedsRearm;
    out[i] = PollEvent{w, bits};
  }
  return n;
}

}  // namespace iapp
#endif  // !IAPP_KQUEUE
