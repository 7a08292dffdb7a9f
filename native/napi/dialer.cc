// Dialers: connections opened natively at a rate, held, cycled or pushing (the load generator).
#include "../addr.h"
#include "../dialer.h"
#include "../socket.h"
#include "slice.h"

namespace iapp {
// Named, not anonymous: NativeLoop::Bind<F> instantiates one thunk per function, and thunks of
// same-named functions in anonymous namespaces of different slices would be merged by the linker.
namespace dialer_js {

// dial({ targets: [{ host, port } | { path }], sources: [address], first, stride, count,
//        rate, then, chunk?, timeoutMs, noDelay, highWaterMark, priority }) -> dialer id
Napi::Value Dial(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  DialSpec spec;
  auto targets = o.Get("targets").As<Napi::Array>();
  for (uint32_t i = 0; i < targets.Length(); ++i) {
    Napi::Object t = targets.Get(i).As<Napi::Object>();
    const std::string path = Str(t, "path");
    const std::string host = Str(t, "host");
    const int port = static_cast<int>(Num(t, "port", 0));
    SockAddr a;
    int r = path.empty() ? MakeInetAddr(host, port, &a) : MakeUnixAddr(path, &a);
    if (r < 0) ThrowSysError(env, -r, "connect", path.empty() ? host + ":" + std::to_string(port) : path);
    spec.targets.push_back(a);
  }
  auto sources = o.Get("sources").As<Napi::Array>();
  for (uint32_t i = 0; i < sources.Length(); ++i) {
    const std::string host = sources.Get(i).As<Napi::String>().Utf8Value();
    SockAddr a;
    int r = MakeInetAddr(host, 0, &a);
    if (r < 0) ThrowSysError(env, -r, "bind", host);
    spec.sources.push_back(a);
  }
  spec.first = static_cast<uint64_t>(Num(o, "first", 0));
  spec.stride = static_cast<uint64_t>(Num(o, "stride", 1));
  spec.count = static_cast<size_t>(Num(o, "count", 1));
  spec.rate = Num(o, "rate", 0);
  spec.then = static_cast<int>(Num(o, "then", kDialHold));
  spec.timeout_ns = static_cast<int64_t>(Num(o, "timeoutMs", 10000) * 1e6);
  if (spec.then == kDialPush) {
    auto u8 = o.Get("chunk").As<Napi::Uint8Array>();
    spec.chunk = self.raw()->SharedBuffer(u8.Data(), u8.ByteLength());
  }
  spec.socket = SockOpts(o);
  int err = 0;
  uint64_t id = self.L(env)->StartDialer(std::move(spec), &err);
  if (id == 0) ThrowSysError(env, err, "dial", "starting a dialer");
  return Napi::Number::New(env, static_cast<double>(id));
}

// The dialer named by info[0], or null (unknown, or the loop is closed).
Dialer* FindDialer(NativeLoop& self, const Napi::CallbackInfo& info) {
  return self.closed() ? nullptr : self.raw()->FindDialer(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue()));
}

// dialerStats(id) -> { established, failed, dropped, cycled, open, connecting, peak, rampNs,
// bytesIn, bytesOut, errors: { errno: count } }, or undefined once the loop is closed
Napi::Value Stats(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Dialer* d = FindDialer(self, info);
  if (d == nullptr) return env.Undefined();
  const DialStats s = d->Stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("established", static_cast<double>(s.established));
  o.Set("failed", static_cast<double>(s.failed));
  o.Set("dropped", static_cast<double>(s.dropped));
  o.Set("cycled", static_cast<double>(s.cycled));
  o.Set("open", static_cast<double>(s.open));
  o.Set("connecting", static_cast<double>(s.connecting));
  o.Set("peak", static_cast<double>(s.peak));
  o.Set("rampNs", static_cast<double>(s.ramp_ns));
  o.Set("bytesIn", static_cast<double>(s.bytes_in));
  o.Set("bytesOut", static_cast<double>(s.bytes_out));
  Napi::Object errors = Napi::Object::New(env);
  for (const auto& [err, count] : s.errors) errors.Set(std::to_string(err), static_cast<double>(count));
  o.Set("errors", errors);
  return o;
}

Napi::Value Stop(NativeLoop& self, const Napi::CallbackInfo& info) {
  if (Dialer* d = FindDialer(self, info)) d->Stop();
  return info.Env().Undefined();
}

Napi::Value Close(NativeLoop& self, const Napi::CallbackInfo& info) {
  if (Dialer* d = FindDialer(self, info)) d->Close();
  return info.Env().Undefined();
}

}  // namespace dialer_js

void DialerSlice(Slice& s) {
  using namespace dialer_js;
  s.Method<Dial>("dial");
  s.Method<Stats>("dialerStats");
  s.Method<Stop>("dialerStop");
  s.Method<Close>("dialerClose");
}

}  // namespace iapp
