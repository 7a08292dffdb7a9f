// The poller: one epoll (Linux) or kqueue (FreeBSD, macOS) instance behind one small interface.
//
// Interest changes are queued on the watcher and submitted together by Flush(), which the loop
// calls right before it waits (and libuv's prepare phase calls before the thread sleeps). A
// watcher changed many times between two flushes costs at most one kernel call (epoll) or one
// changelist entry per filter (kqueue, where the whole list is one kevent() call).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "sys.h"

#if defined(IAPP_KQUEUE)
#include <sys/event.h>
#else
#include <sys/epoll.h>
#endif

namespace iapp {

// Interest and mode bits of Watcher::want.
enum : uint32_t {
  kWantRead = 1u << 0,
  kWantWrite = 1u << 1,
  kEdge = 1u << 2,       // edge-triggered (EPOLLET / EV_CLEAR)
  kOneshot = 1u << 3,    // disarmed after one event until Update() (EPOLLONESHOT / EV_DISPATCH)
  kExclusive = 1u << 4,  // wake one of the pollers sharing this file (EPOLLEXCLUSIVE; no-op on kqueue)
  // kqueue: the first registration adds both filters, the one not wanted yet disabled, so that
  // later interest changes are EV_ENABLE/EV_DISABLE only and cannot fail (sockets, whose write
  // interest comes and goes with every full send buffer). No-op on epoll, where EPOLL_CTL_MOD
  // allocates nothing.
  kBothFilters = 1u << 5,
};

// Readiness bits handed to Watcher::OnEvent.
enum : uint32_t {
  kReadable = 1u << 0,
  kWritable = 1u << 1,
  kHangup = 1u << 2,  // peer closed (EPOLLHUP/EPOLLRDHUP, EV_EOF)
  kError = 1u << 3,   // error pending on the fd (EPOLLERR, EV_ERROR)
};

class Watcher {
 public:
  virtual ~Watcher() = default;
  // Called with the readiness bits of one event. The watcher may close itself from here.
  virtual void OnEvent(uint32_t events) = 0;
  // The kernel refused to register the watcher (e.g. ENOMEM, ENOSPC): it will get no events.
  virtual void OnPollError(int err) = 0;

  int fd = -1;
  uint32_t want = 0;     // what the watcher asks for
  uint32_t armed = 0;    // what the kernel has; kNotArmed bits mean "needs re-arming"
  bool queued = false;   // in the poller's change list
  bool dead = false;     // closed: events still in a fetched batch must be ignored
  // Within one drained batch, events of higher-priority watchers are dispatched first.
  int8_t priority = 0;
  // Index in the loop's control set (Loop::SetControl), -1 when not in it.
  int32_t control_at = -1;
  // The loop's visit count at this watcher's last visit: a queued event older than it was served.
  uint64_t visited = 0;
  // kqueue: the filters that have a knote, enabled or not (kWantRead, kWantWrite).
  uint8_t knotes = 0;
  // kqueue: the socket error an EV_EOF event carried in fflags (0: none). Libkqueue reads SO_ERROR
  // to report it, which clears it on Linux, so the socket itself no longer has it; FreeBSD leaves
  // it in the socket as well. Consumed by TakeSocketError().
  int32_t so_error = 0;
  // What the loop's control poll looks at while a backlog waits (Loop::PollControl): this fd with
  // poll(2), or, for a watcher with none (a child watch on kqueue's EVFILT_PROC), PollWithoutFd():
  // readiness bits if its event has happened.
  virtual int ControlFd() const { return fd; }
  virtual uint32_t PollWithoutFd() { return 0; }
};

// The error pending on a socket watcher: the one its last event carried (kqueue), else SO_ERROR.
// As -errno, or 0.
inline int TakeSocketError(Watcher* w) {
  if (w->so_error != 0) {
    const int e = w->so_error;
    w->so_error = 0;
    return -e;
  }
  return SysSockError(w->fd);
}

struct PollEvent {
  Watcher* watcher;
  uint32_t events;
};

class Poller {
 public:
  Poller() = default;
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;
  ~Poller();

  int Open();  // 0 or -errno
  // The descriptor to watch for readiness (libuv polls it): the kqueue itself, except over
  // libkqueue on Linux, whose kqueue descriptor never polls readable (see poller_kqueue.cc).
  int fd() const { return poll_fd_; }
  // Called when the first change is queued after a flush, so the owner can schedule one.
  void SetOnChange(void (*fn)(void*), void* arg) {
    on_change_ = fn;
    on_change_arg_ = arg;
  }
  // Queues the watcher's current `want` for the next Flush(). Cannot fail; allocates only when
  // the change list grows past its high-water mark.
  void Update(Watcher* w);
  // Removes the watcher from the kernel now (before its fd is closed: a dup'ed fd would otherwise
  // keep delivering events for a freed watcher). Returns 0 or -errno.
  int Remove(Watcher* w);
  // Submits the watcher's current `want` now, for a registration whose failure the caller must
  // report itself (a loop-wide fd such as a timerfd, which has nobody to tell later). 0 or -errno.
  int ApplyNow(Watcher* w);
  // Submits queued changes. A watcher whose change the kernel refuses gets OnPollError(err).
  void Flush();
  bool HasChanges() const { return !changes_.empty(); }
  // Makes room for `n` queued changes, so that Update() and Flush() never allocate (called when
  // a watcher is registered: the one step allowed to fail). May throw std::bad_alloc.
  void Reserve(size_t n);
  // Flushes, then waits up to timeout_ms (0: poll) for at most `max` events. Returns the number of
  // events or -errno.
  int Wait(PollEvent* out, int max, int timeout_ms);
  void Close();

#if defined(IAPP_KQUEUE)
  // Kernel events that are not an fd's readiness (EVFILT_TIMER, EVFILT_USER, EVFILT_PROC), for
  // watcher w (the event's udata), each submitted at once in one kevent() call: 0 or -errno.
  // Register() adds a knote: the step that may fail (a per-user limit on timers, ESRCH for a
  // process, ENOMEM), and where the pollctl fault is injected. Modify() changes a knote that
  // exists (new timer data, EV_ENABLE, EV_DISABLE, NOTE_TRIGGER), which allocates nothing.
  int Register(Watcher* w, int16_t filter, uintptr_t ident, uint16_t flags, uint32_t fflags, int64_t data);
  int Modify(Watcher* w, int16_t filter, uintptr_t ident, uint16_t flags, uint32_t fflags, int64_t data);
  // Deletes a knote Register() added (ENOENT, already gone, is not an error): 0 or -errno.
  int Unregister(int16_t filter, uintptr_t ident);
  // The kqueue descriptor kevent() takes (fd() is what to poll, which differs over libkqueue).
  int kqueue_fd() const { return fd_; }
#endif

 private:
  int Apply(Watcher* w);  // one watcher's change (epoll: 0 or -errno; kqueue: entries queued)
  // Shared by the backends (poller.cc): drops w from the queued changes; grows the change lists
  // to hold n watchers, returning the new capacity (0 if they had room already).
  void Dequeue(Watcher* w);
  size_t ReserveChanges(size_t n);
  int fd_ = -1;
  int poll_fd_ = -1;
  void (*on_change_)(void*) = nullptr;
  void* on_change_arg_ = nullptr;
  std::vector<Watcher*> changes_;
  std::vector<Watcher*> flushing_;
#if defined(IAPP_KQUEUE)
  // What one entry of kev_ does, to read its receipt: whose it is, which filter, and whether it
  // adds a knote (a refused add leaves no knote; a refused enable leaves the filter off).
  struct Entry {
    Watcher* w;
    uint8_t bit;  // kWantRead or kWantWrite
    bool add;
  };
  void Queue(Watcher* w, int16_t filter, uint16_t flags);  // appends one change to kev_ and entry_
  void Build(Watcher* w);   // Apply(), or an injected refusal of its adds
  void Submit();            // kev_ to the kernel; what it refuses goes to refused_
  void Receipts(size_t at, int n);  // reads the receipts of kev_[at, at + n)
  void Refused(Watcher* w, int err);  // a watcher the kernel (or an injected fault) refused
  std::vector<struct kevent> kev_;   // the changes of one Flush()
  std::vector<Entry> entry_;         // beside kev_
  std::vector<struct kevent> rcpt_;  // their receipts (EV_RECEIPT)
  std::vector<struct kevent> out_;   // the events Wait() fetches
  std::vector<std::pair<Watcher*, int>> refused_;  // reported once the batch is submitted
#else
  std::vector<epoll_event> ev_;
#endif
};

#if defined(IAPP_KQUEUE)
// One kevent() change on a kqueue, with its receipt: 0 or -errno. Safe from any thread (an inbox
// sender triggers the owner's EVFILT_USER with it).
int KeventChange(int kq, uintptr_t ident, int16_t filter, uint16_t flags, uint32_t fflags, int64_t data, void* udata);
// Process-wide set-up libkqueue needs before the first loop (see poller_kqueue.cc); no-op elsewhere.
void PollerProcessInit();
#endif

// Marks an oneshot watcher as needing re-arming after its event fired.
constexpr uint32_t kNeedsRearm = 1u << 31;

}  // namespace iapp
