// A UDP socket owned by one loop: a native sink (recvmmsg, counting datagrams and bytes) and a
// native pusher (sendmmsg of one buffer, again and again while writable), for load generation
// and measurement without JS per datagram.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "addr.h"
#include "loop.h"

namespace iapp {

struct UdpSpec {
  std::string host;          // bind address (numeric); empty with fd
  int port = 0;
  int fd = -1;               // adopt this inherited datagram socket instead of binding
  std::string group;         // loops binding port 0 with the same group share one port
  std::string peer_host;     // connect() to this peer when set
  int peer_port = 0;
  bool sink = false;         // start draining at once
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

  void SetSink(bool on);
  void Push(std::shared_ptr<const std::vector<uint8_t>> buf);
  void StopPush();
  // One datagram now: bytes sent or -errno (EAGAIN when the socket buffer is full).
  long Send(const uint8_t* p, size_t n);
  void Close();

  uint64_t datagrams_in = 0, bytes_in = 0, datagrams_out = 0, bytes_out = 0;

 private:
  Udp(Loop* loop) : Handle(loop, Kind::kUdp) {}
  void Rearm();
  void Drain();
  void PushMore();
  void Release();

  bool sink_ = false;
  std::shared_ptr<const std::vector<uint8_t>> push_;
  std::string group_key_;
};

}  // namespace iapp
