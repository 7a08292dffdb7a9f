// Child process watches. Reserve (may fail: it allocates the watch and a kernel timer), then
// attach a pid (cannot fail): the exit is delivered on the loop as one record.
//
// With epoll a pidfd wakes the loop when the child exits; the reserved timer is a timerfd,
// registered with epoll when reserved. With kqueue an EVFILT_PROC knote with NOTE_EXIT does; the
// reserved timer is an EVFILT_TIMER knote, registered parked. If the kernel refuses the pidfd, its
// registration or the knote at attach time (old kernel, no fd or memory left at that moment), the
// watch polls the child with the timer it reserved and registered, so attach never fails.
//
// On FreeBSD a process descriptor (pdfork(2), EVFILT_PROCDESC) would tie the watch to the child
// when it is made, with nothing to register after the fork. iapp spawns with posix_spawn, which
// takes no process descriptor, so it watches the pid: safe, because the pid cannot be reused
// before this watch reaps the child (nothing else may reap it; see Attach).
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "loop.h"

namespace iapp {

class ChildWatch : public Handle {
 public:
  static constexpr Kind kKind = Kind::kChild;
  // Null with *err (positive errno) and *sys (the call) if the watch or its timer cannot be had.
  static ChildWatch* Reserve(Loop* loop, int priority, int* err, const char** sys);
  // Watches `pid`, which must be a child of this process that nothing else reaps. Cannot fail;
  // returns true if the kernel watches the exit (pidfd, EVFILT_PROC), false if the watch polls.
  bool Attach(pid_t pid);
  void OnEvent(uint32_t events) override;
  void OnPollError(int err) override { Report(-1, 0, err); }
  void Abandon() override;
  void Close();  // stops watching (the child is not reaped then)
#if defined(IAPP_KQUEUE)
  // No fd to poll(2) while a backlog waits: whether the child has exited, without reaping it.
  uint32_t PollWithoutFd() override;
#else
  int ControlFd() const override { return pidfd_.fd >= 0 ? pidfd_.fd : fd; }
#endif

 private:
  explicit ChildWatch(Loop* loop) : Handle(loop, Kind::kChild) {}
  void Check();  // reaps the child if it exited
  void Report(int code, int signal, int err);
  void StartPolling();
  pid_t pid_ = -1;
  bool polling_ = false;
#if defined(IAPP_KQUEUE)
  bool proc_knote_ = false;   // the EVFILT_PROC knote exists
  bool timer_knote_ = false;  // the reserved EVFILT_TIMER knote exists
#else
  // The pidfd, watched apart from the reserved timerfd (this watch's own fd), which stays
  // registered: falling back to it needs no new registration.
  class Pidfd : public Watcher {
   public:
    explicit Pidfd(ChildWatch* owner) : owner_(owner) {}
    void OnEvent(uint32_t) override { owner_->Check(); }
    void OnPollError(int) override {}  // registered with ApplyNow, whose result Attach reads
   private:
    ChildWatch* owner_;
  };
  Pidfd pidfd_{this};
  void ClosePidfd();
#endif
};

// posix_spawnp with a clean signal mask and default dispositions (Node ignores SIGPIPE, which a
// child would otherwise inherit). stdio: 0 inherit, 1 /dev/null. Returns the pid or -errno.
int SpawnChild(const std::string& file, const std::vector<std::string>& argv,
               const std::vector<std::string>* envp, const std::string& cwd, int stdio);

}  // namespace iapp
