// Reading JS arguments into the core's specs, shared by the slices.
#include <sys/socket.h>

#include "../addr.h"
#include "../listener.h"
#include "../socket.h"
#include "slice.h"

namespace iapp {

std::string Str(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}
double Num(const Napi::Object& o, const char* k, double dflt) {
  Napi::Value v = o.Get(k);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : dflt;
}
bool Bool(const Napi::Object& o, const char* k, bool dflt) {
  Napi::Value v = o.Get(k);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : dflt;
}

SocketOptions SockOpts(const Napi::Object& o) {
  SocketOptions s;
  s.read_mode = static_cast<int>(Num(o, "mode", kReadData));
  s.no_delay = Bool(o, "noDelay", true);
  s.allow_half_open = Bool(o, "allowHalfOpen", false);
  s.high_water = static_cast<size_t>(Num(o, "highWaterMark", 256 * 1024));
  s.quiet = Bool(o, "quiet", false);
  s.rcvlowat = static_cast<int>(Num(o, "lowWaterMark", 0));
  s.priority = static_cast<int>(Num(o, "priority", 0));
  s.idle_timeout_ns = static_cast<int64_t>(Num(o, "idleTimeout", 0) * 1e6);
  s.keepalive = Bool(o, "keepAlive", false);
  s.keepalive_idle_s = static_cast<int>(Num(o, "keepAliveIdleS", 0));
  return s;
}

ListenSpec ListenSpecOf(const Napi::Object& o) {
  ListenSpec spec;
  spec.host = Str(o, "host");
  spec.port = static_cast<int>(Num(o, "port", 0));
  spec.path = Str(o, "path");
  spec.path_mode = static_cast<int>(Num(o, "permissions", -1));
  spec.backlog = static_cast<int>(Num(o, "backlog", 4096));
  spec.shared = Bool(o, "shared", false);
  spec.v6only = Bool(o, "ipv6Only", false);
  spec.shed = Bool(o, "shed", false);
  spec.group = Str(o, "group");
  spec.fd = static_cast<int>(Num(o, "fd", -1));
  spec.socket = SockOpts(o);
  return spec;
}

uint64_t U64(const Napi::Value& v) {
  double d = v.As<Napi::Number>().DoubleValue();
  return d < 0 ? UINT64_MAX : static_cast<uint64_t>(d);
}

std::vector<iovec> Iovecs(const Napi::Value& v) {
  auto arr = v.As<Napi::Array>();
  std::vector<iovec> iov(arr.Length());
  for (uint32_t i = 0; i < iov.size(); ++i) {
    auto u8 = arr.Get(i).As<Napi::Uint8Array>();
    iov[i] = iovec{u8.Data(), u8.ByteLength()};
  }
  return iov;
}

Napi::Object DescribeLocalPeer(Napi::Env env, int fd, bool peer) {
  Napi::Object o = Napi::Object::New(env);
  std::string host;
  int port, family;
  if (!SocketAddress(fd, peer, &host, &port, &family)) return o;
  o.Set("address", host);
  o.Set("port", port);
  o.Set("family", family == AF_INET ? "IPv4" : family == AF_INET6 ? "IPv6" : "unix");
  return o;
}

const uint8_t* Payload(Napi::Env env, const Napi::Value& v, uint32_t* len) {
  *len = 0;
  if (!v.IsTypedArray()) return nullptr;
  auto u8 = v.As<Napi::Uint8Array>();
  // MsgHeader::len is 32 bits, and a signed read of it on the far side must stay positive.
  if (u8.ByteLength() > 0x7fffffffu) throw Napi::RangeError::New(env, "a message payload is limited to 2 GiB");
  *len = static_cast<uint32_t>(u8.ByteLength());
  return u8.Data();
}

}  // namespace iapp
