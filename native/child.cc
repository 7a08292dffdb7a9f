#include "child.h"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(IAPP_KQUEUE)
#include <sys/event.h>
#else
#include <sys/timerfd.h>
#endif

#include "platform.h"
#include "sys.h"

extern char** environ;

namespace iapp {

namespace {
constexpr long kPollNs = 20 * 1000 * 1000;  // how often a polling watch looks at its child
#if defined(IAPP_KQUEUE)
constexpr int64_t kParkNs = 86400LL * 1000000000;  // the reserved timer, until it is needed
#else
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
int PidfdOpen(pid_t pid) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return -errno;
  fcntl(fd, F_SETFD, FD_CLOEXEC);  // pidfds are close-on-exec already; kept explicit
  return fd;
}
#endif
}  // namespace

#if defined(IAPP_KQUEUE)

ChildWatch* ChildWatch::Reserve(Loop* loop, int priority, int* err, const char** sys) {
  *sys = "kevent";
  auto* w = new ChildWatch(loop);
  // The reserved timer: registered now (the step that may fail), parked a day away, and turned
  // into a 20 ms period only if the EVFILT_PROC knote is refused at attach. Changing a knote that
  // exists allocates nothing, so that cannot fail.
  int r = loop->poller().Register(w, EVFILT_TIMER, reinterpret_cast<uintptr_t>(w), 0, NOTE_NSECONDS, kParkNs);
  if (r < 0) {
    *err = -r;
    delete w;
    return nullptr;
  }
  w->timer_knote_ = true;
  w->priority = static_cast<int8_t>(priority);
  loop->Register(w);
  loop->SetControl(w, true);
  return w;
}

bool ChildWatch::Attach(pid_t pid) {
  pid_ = pid;
  // The exit status stays for waitpid(): NOTE_EXIT does not reap (FreeBSD, macOS, libkqueue).
  int r = loop_->poller().Register(this, EVFILT_PROC, static_cast<uintptr_t>(pid), 0, NOTE_EXIT, 0);
  if (r == 0) {
    proc_knote_ = true;
    return true;
  }
  if (r == -ESRCH) {
    // No such process (or already reaped; a zombie child still has its pid): that is the answer,
    // delivered like an exit, as with a pidfd.
    Report(-1, 0, ESRCH);
    return true;
  }
  StartPolling();
  return false;
}

void ChildWatch::StartPolling() {
  polling_ = true;
  loop_->poller().Modify(this, EVFILT_TIMER, reinterpret_cast<uintptr_t>(this), EV_ADD, NOTE_NSECONDS, kPollNs);
}

uint32_t ChildWatch::PollWithoutFd() {
  if (pid_ < 0) return 0;
  siginfo_t info{};
  // WNOWAIT: only look; the visit that follows reaps it.
  if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) < 0)
    return errno == ECHILD ? static_cast<uint32_t>(kReadable) : 0u;
  return info.si_pid != 0 ? static_cast<uint32_t>(kReadable) : 0u;
}

void ChildWatch::OnEvent(uint32_t) { Check(); }

void ChildWatch::Close() {
  if (dead) return;
  loop_->Retire(this);
  if (proc_knote_) loop_->poller().Unregister(EVFILT_PROC, static_cast<uintptr_t>(pid_));  // gone after NOTE_EXIT
  if (timer_knote_) loop_->poller().Unregister(EVFILT_TIMER, reinterpret_cast<uintptr_t>(this));
  proc_knote_ = timer_knote_ = false;
}

void ChildWatch::Abandon() {
  // The loop is closing: its kqueue, closed next, takes both knotes with it.
  proc_knote_ = timer_knote_ = false;
}

#else  // epoll

ChildWatch* ChildWatch::Reserve(Loop* loop, int priority, int* err, const char** sys) {
  // The reserved timer: a timerfd, registered now (the steps that may fail), armed only if the
  // child's exit cannot be watched at attach time.
  int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    *sys = "timerfd_create";
    return nullptr;
  }
  auto* w = new ChildWatch(loop);
  w->fd = fd;
  w->want = kWantRead;
  if (int r = loop->poller().ApplyNow(w); r < 0) {
    SysClose(fd);
    delete w;
    *err = -r;
    *sys = "epoll_ctl";
    return nullptr;
  }
  w->priority = static_cast<int8_t>(priority);
  loop->Register(w);
  loop->SetControl(w, true);
  return w;
}

bool ChildWatch::Attach(pid_t pid) {
  pid_ = pid;
  int pfd = PidfdOpen(pid);
  if (pfd == -ESRCH) {
    // No such process (or already reaped): that is the answer, delivered like an exit.
    Report(-1, 0, ESRCH);
    return true;
  }
  if (pfd >= 0) {
    pidfd_.fd = pfd;
    pidfd_.want = kWantRead;
    pidfd_.priority = priority;
    if (loop_->poller().ApplyNow(&pidfd_) == 0) return true;
    ClosePidfd();  // refused (ENOMEM, max_user_watches): the reserved timer polls instead
  }
  StartPolling();
  return false;
}

void ChildWatch::StartPolling() {
  polling_ = true;
  itimerspec its{};
  its.it_value.tv_nsec = kPollNs;
  its.it_interval.tv_nsec = kPollNs;
  timerfd_settime(fd, 0, &its, nullptr);  // valid arguments on an fd we own: cannot fail
}

void ChildWatch::OnEvent(uint32_t) {
  if (polling_) {
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof n);
    (void)r;
  }
  Check();
}

void ChildWatch::ClosePidfd() {
  if (pidfd_.fd < 0) return;
  loop_->poller().Remove(&pidfd_);
  SysClose(pidfd_.fd);
  pidfd_.fd = -1;
}

void ChildWatch::Close() {
  if (dead) return;
  // A pidfd event still in a fetched batch must find its watcher dead (it is freed with this).
  pidfd_.dead = true;
  ClosePidfd();
  loop_->Retire(this);
  if (fd >= 0) SysClose(fd);
  fd = -1;
}

void ChildWatch::Abandon() {
  pidfd_.dead = true;
  if (pidfd_.fd >= 0) SysClose(pidfd_.fd);
  pidfd_.fd = -1;
  if (fd >= 0) SysClose(fd);
  fd = -1;
}

#endif

void ChildWatch::Check() {
  int status = 0;
  pid_t r;
  do r = waitpid(pid_, &status, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0) return;  // still running (a polling watch looks again later)
  if (r < 0) return Report(-1, 0, errno);  // ECHILD: not our child, or reaped by someone else
  if (WIFEXITED(status)) return Report(WEXITSTATUS(status), 0, 0);
  if (WIFSIGNALED(status)) return Report(-1, WTERMSIG(status), 0);
}

void ChildWatch::Report(int code, int signal, int err) {
  if (dead) return;
  double* v = loop_->Emit(kRecChild, id);
  v[0] = code;
  v[1] = signal;
  v[2] = err;
  Close();
}

int SpawnChild(const std::string& file, const std::vector<std::string>& argv,
               const std::vector<std::string>* envp, const std::string& cwd, int stdio) {
  std::vector<char*> av;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  std::vector<char*> ev;
  if (envp != nullptr) {
    for (const auto& e : *envp) ev.push_back(const_cast<char*>(e.c_str()));
    ev.push_back(nullptr);
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  if (posix_spawn_file_actions_init(&fa) != 0) return -ENOMEM;
  if (posix_spawnattr_init(&attr) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return -ENOMEM;
  }
  int r = 0;
  if (stdio == 1)
    for (int i = 0; i < 3 && r == 0; ++i)
      r = posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
  // glibc 2.29 and FreeBSD 13.1 have it (FreeBSD's: review only); elsewhere (macOS) cwd is ENOSYS.
#if (defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))) || \
    (defined(__FreeBSD__) && __FreeBSD_version >= 1301000)
  if (r == 0 && !cwd.empty()) r = posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
#else
  if (r == 0 && !cwd.empty()) r = ENOSYS;
#endif
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  if (r == 0) r = posix_spawnattr_setsigmask(&attr, &none);
  if (r == 0) r = posix_spawnattr_setsigdefault(&attr, &all);
  if (r == 0) r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  if (r == 0) r = posix_spawnp(&pid, file.c_str(), &fa, &attr, av.data(), envp != nullptr ? ev.data() : environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return r != 0 ? -r : pid;
}

}  // namespace iapp
