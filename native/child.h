// Child process watches. Reserve (may fail: it allocates the watch and an fd), then attach a pid
// (cannot fail): the exit is delivered on the loop as one record. On Linux a pidfd wakes the loop
// when the child exits; if the kernel refuses a pidfd (old kernel, no fd left at that moment), the
// watch polls the child with the timerfd it reserved, so attach still never fails.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "loop.h"

namespace iapp {

class ChildWatch : public Handle {
 public:
  static constexpr Kind kKind = Kind::kChild;
  // Null with *err (positive errno) if the watch or its fd cannot be had.
  static ChildWatch* Reserve(Loop* loop, int priority, int* err);
  // Watches `pid`, which must be a child of this process that nothing else reaps. Cannot fail;
  // returns true if the kernel gave a pidfd, false if the watch polls.
  bool Attach(pid_t pid);
  void OnEvent(uint32_t events) override;
  void OnPollError(int err) override { Report(-1, 0, err); }
  void Abandon() override;
  void Close();  // stops watching (the child is not reaped then)

 private:
  explicit ChildWatch(Loop* loop) : Handle(loop, Kind::kChild) {}
  void Check();  // reaps the child if it exited
  void Report(int code, int signal, int err);
  pid_t pid_ = -1;
  bool polling_ = false;
};

// posix_spawnp with a clean signal mask and default dispositions (Node ignores SIGPIPE, which a
// child would otherwise inherit). stdio: 0 inherit, 1 /dev/null. Returns the pid or -errno.
int SpawnChild(const std::string& file, const std::vector<std::string>& argv,
               const std::vector<std::string>* envp, const std::string& cwd, int stdio);

}  // namespace iapp
