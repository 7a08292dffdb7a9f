// Idle timeouts of a loop's sockets: a socket that moved no byte either way for its timeout is
// closed with ETIMEDOUT (syscall "idle"). No clock is read on the data path: a sweep on an owned
// loop timer compares each watched socket's byte counters with what it saw the sweep before, so
// the timeout is exact to one sweep interval (a quarter of the shortest timeout, 10 ms to 1 s).
#pragma once
#include <cstdint>
#include <vector>

#include "timers.h"

namespace iapp {

class Loop;
class Socket;

class IdleWatch : public TimerOwner {
 public:
  explicit IdleWatch(Loop* loop) : loop_(loop) {}
  ~IdleWatch() override;
  // Watches s with `timeout_ns` (0 stops watching). 0 or -errno (the sweep's timer could not be
  // allocated: ENOMEM; ENOSYS where loop timers are not available).
  int Set(Socket* s, int64_t timeout_ns);
  // s is closing: stop watching it. Cannot fail.
  void Forget(Socket* s);
  void OnTimer(double expirations) override;

 private:
  void Rearm();
  struct Entry {
    Socket* socket;
    int64_t timeout_ns;
    uint64_t seen;  // bytes in + out at the last sweep
    int64_t since;  // when they last changed
  };
  Loop* loop_;
  std::vector<Entry> watched_;
  int slot_ = -1;
  int64_t interval_ns_ = 0;
};

}  // namespace iapp
