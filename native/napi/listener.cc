// Listeners: listen, pause/resume/close, announce; and the process-wide listening sockets a
// fleet's parent makes once and hands to its children.
#include <sys/socket.h>

#include "../listener.h"
#include "../sys.h"
#include "slice.h"

namespace iapp {
// Named, not anonymous: NativeLoop::Bind<F> instantiates one thunk per function, and thunks of
// same-named functions in anonymous namespaces of different slices would be merged by the linker.
namespace listener_js {

// listen(spec) -> { id, address, port, family }
Napi::Value Listen(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ListenSpec spec = ListenSpecOf(info[0].As<Napi::Object>());
  int err = 0, sys = 0;
  Listener* l = Listener::Open(self.L(env), spec, &err, &sys);
  if (l == nullptr)
    ThrowSysError(env, err, SyscallName(sys),
                  spec.fd >= 0 ? "inherited fd " + std::to_string(spec.fd)
                  : spec.path.empty() ? spec.host + ":" + std::to_string(spec.port) : spec.path);
  Napi::Object res = DescribeLocalPeer(env, l->fd, false);
  if (!spec.path.empty()) res.Set("address", spec.path);
  res.Set("id", static_cast<double>(l->id));
  return res;
}

Napi::Value PauseListener(NativeLoop& self, const Napi::CallbackInfo& info) {
  self.Get<Listener>(info, "listener")->Pause();
  return info.Env().Undefined();
}

Napi::Value ResumeListener(NativeLoop& self, const Napi::CallbackInfo& info) {
  self.Get<Listener>(info, "listener")->Resume();
  return info.Env().Undefined();
}

Napi::Value CloseListener(NativeLoop& self, const Napi::CallbackInfo& info) {
  if (auto* l = self.Find<Listener>(info)) l->Close();
  return info.Env().Undefined();
}

Napi::Value SetAnnounce(NativeLoop& self, const Napi::CallbackInfo& info) {
  if (auto* l = self.Find<Listener>(info)) l->SetAnnounce(info[1].ToBoolean());
  return info.Env().Undefined();
}

// listenSocket({ host, port, path, backlog, ipv6Only }) -> { fd, address, port, family }
Napi::Value ListenSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ListenSpec spec = ListenSpecOf(info[0].As<Napi::Object>());
  int sys = 0;
  int fd = OpenListeningSocket(spec, &sys);
  if (fd < 0)
    ThrowSysError(env, -fd, SyscallName(sys), spec.path.empty() ? spec.host + ":" + std::to_string(spec.port) : spec.path);
  Napi::Object res = DescribeLocalPeer(env, fd, false);
  if (!spec.path.empty()) res.Set("address", spec.path);
  res.Set("fd", fd);
  return res;
}

// closeFd(fd): closes an fd listenSocket made (this process's copy only).
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  SysClose(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// socketKind(fd) -> { kind: 'listening' | 'connected' | 'stream' | 'datagram' | 'other', family }
// for an inherited fd (what socket activation passed), or throws EBADF.
Napi::Value SocketKind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int family = 0;
  const int k = SysSocketKind(info[0].As<Napi::Number>().Int32Value(), &family);
  if (k < 0) ThrowSysError(env, -k, "getsockopt", "fd " + std::to_string(info[0].As<Napi::Number>().Int32Value()));
  static const char* const kinds[] = {"other", "listening", "connected", "stream", "datagram"};
  Napi::Object out = Napi::Object::New(env);
  out.Set("kind", kinds[k]);
  out.Set("family", family == AF_INET ? "IPv4" : family == AF_INET6 ? "IPv6" : family == AF_UNIX ? "unix" : "other");
  return out;
}

}  // namespace listener_js

void ListenerSlice(Slice& s) {
  using namespace listener_js;
  s.Method<Listen>("listen");
  s.Method<PauseListener>("pauseListener");
  s.Method<ResumeListener>("resumeListener");
  s.Method<CloseListener>("closeListener");
  s.Method<SetAnnounce>("setAnnounce");
  s.Function("listenSocket", ListenSocket);
  s.Function("closeFd", CloseFd);
  s.Function("socketKind", SocketKind);
}

}  // namespace iapp
