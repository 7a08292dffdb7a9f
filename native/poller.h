// The poller: one epoll (Linux) or kqueue (FreeBSD, macOS) instance behind one small interface.
//
// Interest changes are queued on the watcher and submitted together by Flush(), which the loop
// calls right before it waits (and libuv's prepare phase calls before the thread sleeps). A
// watcher changed many times between two flushes costs at most one kernel call (epoll) or one
// changelist entry per filter (kqueue, where the whole list is one kevent() call).
#pragma once
#include <cstdint>
#include <vector>

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
};

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
  int fd() const { return fd_; }
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
  // Makes room for `n` queued changes, so that Update() never allocates (called when a watcher
  // is registered: the one step allowed to fail). May throw std::bad_alloc.
  void Reserve(size_t n) {
    if (changes_.capacity() >= n) return;
    const size_t cap = n > 2 * changes_.capacity() ? n : 2 * changes_.capacity();  // amortized
    changes_.reserve(cap);
    flushing_.reserve(cap);
  }
  // Flushes, then waits up to timeout_ms (0: poll) for at most `max` events. Returns the number of
  // events or -errno.
  int Wait(PollEvent* out, int max, int timeout_ms);
  void Close();

 private:
  int Apply(Watcher* w);  // one watcher's change: 0 or -errno
  int fd_ = -1;
  void (*on_change_)(void*) = nullptr;
  void* on_change_arg_ = nullptr;
  std::vector<Watcher*> changes_;
  std::vector<Watcher*> flushing_;
#if defined(IAPP_KQUEUE)
  std::vector<struct kevent> kev_;
#else
  std::vector<epoll_event> ev_;
#endif
};

// Marks an oneshot watcher as needing re-arming after its event fired.
constexpr uint32_t kNeedsRearm = 1u << 31;

}  // namespace iapp
