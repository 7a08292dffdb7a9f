// A dialer keeps `count` connections to a set of targets, opened natively at `rate` per second
// (a token bucket refilled by an owned loop timer), each doing one thing once established: hold
// (stay idle), push (send one buffer again and again) or end (half-close at once; when the server
// has closed it, the next one opens). A connection that closes is replaced. No JavaScript runs
// per connection: they are quiet sockets, and JavaScript reads the dialer's counters. It is what
// a load generator needs to open and keep tens of thousands of connections, or to measure
// connects per second, at the speed of a C client.
#pragma once
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "addr.h"
#include "socket.h"
#include "timers.h"

namespace iapp {

class Loop;

enum DialThen : int { kDialHold = 0, kDialPush = 1, kDialEnd = 2 };

struct DialSpec {
  std::vector<SockAddr> targets;
  std::vector<SockAddr> sources;  // local addresses to bind (port 0); empty: the kernel's choice
  // Connection i of this dialer uses (source, target) pair number first + i * stride, spread as
  // target = k % targets, source = (k / targets) % sources: several dialers (threads) that share
  // one sequence interleave over the pairs.
  uint64_t first = 0, stride = 1;
  size_t count = 1;
  double rate = 0;  // new connections per second; 0: as fast as they open
  int then = kDialHold;
  std::shared_ptr<const std::vector<uint8_t>> chunk;  // kDialPush
  int64_t timeout_ns = 10000000000;                     // connect timeout; 0: the kernel's
  SocketOptions socket;
};

struct DialStats {
  uint64_t established = 0;  // connections that completed their connect
  uint64_t failed = 0;       // connect attempts that failed (errors has why)
  uint64_t dropped = 0;      // established connections that closed before the dialer ended them
  uint64_t cycled = 0;       // end: connections ended and then closed by the server
  uint64_t bytes_in = 0, bytes_out = 0;
  int64_t open = 0, connecting = 0, peak = 0;
  int64_t ramp_ns = -1;  // from the start until `count` were open at once (not for end)
  std::map<int, uint64_t> errors;
};

class Dialer : public TimerOwner {
 public:
  // Allocates its timer (the step that can fail: 0 or -errno in *err) and starts opening.
  static std::unique_ptr<Dialer> Start(Loop* loop, DialSpec&& spec, uint64_t id, int* err);
  ~Dialer() override;
  const uint64_t id;

  void OnTimer(double expirations) override;
  void OnEstablished(Socket* s);
  // `err`: 0 for a clean close; `established`: whether the connect had completed.
  void OnClosed(Socket* s, int err, bool established);
  // Opens no more connections (the loop's own close ends them: they are quiet sockets).
  void Stop();
  // Stop(), then end every connection (those still connecting are closed); a kRecDialer record
  // follows once the last has closed.
  void Close();
  DialStats Stats() const;

 private:
  Dialer(Loop* loop, DialSpec&& spec, uint64_t id) : id(id), loop_(loop), spec_(std::move(spec)) {}
  void Refill();
  bool OpenOne();  // false when the connect was refused at once
  void TimeOutConnects(int64_t now);
  void Schedule(int64_t delay_ns);
  void Untrack(Socket* s);

  Loop* loop_;
  DialSpec spec_;
  int slot_ = -1;
  int64_t scheduled_at_ = -1;  // when the timer is due, -1 when disarmed
  double tokens_ = 1;
  int64_t last_ns_ = 0, start_ns_ = 0;
  uint64_t seq_ = 0;
  std::vector<Socket*> live_;  // connecting and established; Socket::dial_at is the index
  std::deque<std::pair<uint64_t, int64_t>> deadlines_;  // (socket id, connect deadline), in order
  bool stopped_ = false, closing_ = false;
  DialStats st_;
};

}  // namespace iapp
