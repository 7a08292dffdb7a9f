// A UDP socket owned by one loop: datagrams to and from JavaScript in batches (recvmmsg into one
// buffer per batch, one record each with its sender; sends staged by JS and handed over in one
// call, sent with sendmmsg and queued under a high-water mark), a native sink (recvmmsg, counting
// datagrams and bytes) and a native pusher (sendmmsg of one buffer again and again while
// writable), for load generation and measurement without JS per datagram.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "addr.h"
#include "loop.h"

namespace iapp {

enum UdpRead : int { kUdpPaused = 0, kUdpSink = 1, kUdpJs = 2 };

// A datagram in a send batch (staged by JS, and queued natively): a header, then the payload.
//   [0..3] payload length (u32, native order)  [4] family: 0 the connected peer, 4 or 6
//   [5] 0  [6..7] port (u16, native order)  [8..23] address (IPv4 in the first 4 bytes)
constexpr size_t kUdpHeader = 24;

struct UdpSpec {
  std::string host;          // bind address (numeric); empty with fd
  int port = 0;
  int fd = -1;               // adopt this inherited datagram socket instead of binding
  std::string group;         // loops binding port 0 with the same group share one port
  std::string peer_host;     // connect() to this peer when set
  int peer_port = 0;
  int read = kUdpPaused;     // what to do with what arrives
  size_t high_water = 1 << 20;  // queued send bytes at which sends report backpressure
};

class Udp : public Handle {
 public:
  static constexpr Kind kKind = Kind::kUdp;
  // Binds (SO_REUSEPORT, so every loop can bind the same address) or adopts spec.fd, then
  // connects if a peer is given. Null with *err (positive) and *sys on failure.
  static Udp* Open(Loop* loop, const UdpSpec& spec, int* err, int* sys);

  void OnEvent(uint32_t events) override;
  void OnPollError(int err) override { loop_->CountError(err); }
  void Abandon() override;

  void SetRead(int mode);
  // Sends a batch of `count` datagrams (kUdpHeader records) now as far as the socket takes them,
  // queueing the rest in order. 1 while the queue is under the high-water mark; 0 when it is at
  // or over it (a kRecUdpDrain record follows once it has emptied); -EINVAL for a malformed batch.
  int SendBatch(const uint8_t* p, size_t len, size_t count);
  void Push(std::shared_ptr<const std::vector<uint8_t>> buf);
  void StopPush();
  // One datagram now: bytes sent or -errno (EAGAIN when the socket buffer is full).
  long Send(const uint8_t* p, size_t n);
  void Close();

  uint64_t datagrams_in = 0, bytes_in = 0, datagrams_out = 0, bytes_out = 0;
  uint64_t send_errors = 0;   // datagrams the kernel refused (counted by errno in the loop's stats)
  size_t queued() const { return outq_.size() - outq_head_; }

 private:
  Udp(Loop* loop) : Handle(loop, Kind::kUdp) {}
  void Rearm();
  void Drain();
  void DrainToJs();
  void PushMore();
  void FlushQueue();
  void Release();

  int read_ = kUdpPaused;
  std::vector<uint8_t> outq_;  // kUdpHeader records not sent yet, from outq_head_ on
  size_t outq_head_ = 0;
  size_t high_water_ = 1 << 20;
  bool need_drain_ = false;
  std::shared_ptr<const std::vector<uint8_t>> push_;
  std::string group_key_;
};

}  // namespace iapp
