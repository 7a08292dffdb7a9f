// UDP sockets: open, read modes, batched and single sends, pushing, counters, close.
#include <cstring>
#include <netinet/in.h>

#include "../addr.h"
#include "../udp.h"
#include "slice.h"

namespace iapp {
// Named, not anonymous: NativeLoop::Bind<F> instantiates one thunk per function, and thunks of
// same-named functions in anonymous namespaces of different slices would be merged by the linker.
namespace udp_js {

// udp({ host, port, fd, group, peerHost, peerPort, read, highWaterMark }) -> { id, address, port, family }
Napi::Value Open(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  UdpSpec spec;
  spec.host = Str(o, "host");
  spec.port = static_cast<int>(Num(o, "port", 0));
  spec.fd = static_cast<int>(Num(o, "fd", -1));
  spec.group = Str(o, "group");
  spec.peer_host = Str(o, "peerHost");
  spec.peer_port = static_cast<int>(Num(o, "peerPort", 0));
  spec.read = static_cast<int>(Num(o, "read", kUdpPaused));
  spec.high_water = static_cast<size_t>(Num(o, "highWaterMark", 1 << 20));
  int err = 0, sys = 0;
  Udp* u = Udp::Open(self.L(env), spec, &err, &sys);
  if (u == nullptr) {
    std::string what = spec.fd >= 0 ? "inherited fd " + std::to_string(spec.fd)
                       : sys == kSysConnect ? spec.peer_host + ":" + std::to_string(spec.peer_port)
                       : spec.host + ":" + std::to_string(spec.port);
    ThrowSysError(env, err, SyscallName(sys), what);
  }
  Napi::Object res = DescribeLocalPeer(env, u->fd, false);
  res.Set("id", static_cast<double>(u->id));
  return res;
}

// udpRead(id, mode): 0 paused, 1 native sink, 2 datagrams to JS
Napi::Value Read(NativeLoop& self, const Napi::CallbackInfo& info) {
  if (auto* u = self.Find<Udp>(info)) u->SetRead(info[1].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// udpSendBatch(id, staging: Uint8Array, length, count) -> 1 under the high-water mark, 0 at it
Napi::Value SendBatch(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* u = self.Get<Udp>(info, "UDP socket");
  auto u8 = info[1].As<Napi::Uint8Array>();
  size_t len = static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue());
  if (len > u8.ByteLength()) throw Napi::RangeError::New(env, "staging length past its buffer");
  int r = u->SendBatch(u8.Data(), len, static_cast<size_t>(info[3].As<Napi::Number>().DoubleValue()));
  if (r < 0) ThrowSysError(env, -r, "sendmmsg", "a malformed batch of datagrams");
  return Napi::Number::New(env, r);
}

// udpPackAddress(host) -> Uint8Array(16) of a numeric IPv4/IPv6 address (inet_pton), or null
Napi::Value PackAddress(NativeLoop&, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SockAddr a;
  if (MakeInetAddr(info[0].As<Napi::String>().Utf8Value(), 0, &a) < 0) return env.Null();
  auto out = Napi::Uint8Array::New(env, 16);
  if (a.family() == AF_INET) memcpy(out.Data(), &reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_addr, 4);
  else memcpy(out.Data(), &reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_addr, 16);
  return out;
}

// udpPush(id, chunk | null): push chunk as datagrams while writable; null stops
Napi::Value Push(NativeLoop& self, const Napi::CallbackInfo& info) {
  auto* u = self.Get<Udp>(info, "UDP socket");
  if (info[1].IsTypedArray()) {
    auto u8 = info[1].As<Napi::Uint8Array>();
    u->Push(self.raw()->SharedBuffer(u8.Data(), u8.ByteLength()));
  } else {
    u->StopPush();
  }
  return info.Env().Undefined();
}

// udpSend(id, chunk) -> true if sent, false if the socket buffer is full (EAGAIN)
Napi::Value Send(NativeLoop& self, const Napi::CallbackInfo& info) {
  auto* u = self.Get<Udp>(info, "UDP socket");
  auto u8 = info[1].As<Napi::Uint8Array>();
  long r = u->Send(u8.Data(), u8.ByteLength());
  if (r == -EAGAIN || r == -EWOULDBLOCK || r == -ENOBUFS) return Napi::Boolean::New(info.Env(), false);
  if (r < 0) ThrowSysError(info.Env(), static_cast<int>(-r), "send", "UDP datagram");
  return Napi::Boolean::New(info.Env(), true);
}

// udpCounters(id, out: Float64Array(5)) -> [datagramsIn, bytesIn, datagramsOut, bytesOut, sendErrors]
Napi::Value Counters(NativeLoop& self, const Napi::CallbackInfo& info) {
  auto* u = self.Find<Udp>(info);
  if (u == nullptr) return Napi::Boolean::New(info.Env(), false);
  double* out = info[1].As<Napi::Float64Array>().Data();
  out[0] = static_cast<double>(u->datagrams_in);
  out[1] = static_cast<double>(u->bytes_in);
  out[2] = static_cast<double>(u->datagrams_out);
  out[3] = static_cast<double>(u->bytes_out);
  out[4] = static_cast<double>(u->send_errors);
  return Napi::Boolean::New(info.Env(), true);
}

Napi::Value Close(NativeLoop& self, const Napi::CallbackInfo& info) {
  if (auto* u = self.Find<Udp>(info)) u->Close();
  return info.Env().Undefined();
}

}  // namespace udp_js

void UdpSlice(Slice& s) {
  using namespace udp_js;
  s.Method<Open>("udp");
  s.Method<Read>("udpRead");
  s.Method<SendBatch>("udpSendBatch");
  s.Method<PackAddress>("udpPackAddress");
  s.Method<Push>("udpPush");
  s.Method<Send>("udpSend");
  s.Method<Counters>("udpCounters");
  s.Method<Close>("udpClose");
}

}  // namespace iapp
