// Stream sockets: connect, write, end, destroy, options, counters, push, sendFile, moving a
// socket between loops, and the quiet sockets of a sink.
#include <sys/socket.h>

#include "../addr.h"
#include "../file.h"
#include "../handoff.h"
#include "../idle.h"
#include "../socket.h"
#include "../sys.h"
#include "slice.h"

namespace iapp {
// Named, not anonymous: NativeLoop::Bind<F> instantiates one thunk per function, and thunks of
// same-named functions in anonymous namespaces of different slices would be merged by the linker.
namespace socket_js {

// Socket::WriteState's refusal as an error: the only wording of it. TS turns EBADF and EPIPE
// into ERR_SOCKET_CLOSED (src/socket.ts, #refused).
[[noreturn]] void ThrowRefused(Napi::Env env, int r, const char* syscall, const char* op) {
  const std::string o(op);
  ThrowSysError(env, -r, syscall,
                r == -EPIPE ? o + " after end()"
                : r == -EBUSY && std::string(syscall) == "sendfile" ? o + ": the socket is pushing or being piped into"
                : r == -EBUSY ? o + ": a pipe writes into this socket: the bytes would land mid-stream"
                              : o + " on a closed socket");
}

Napi::Value Connect(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  std::string path = Str(o, "path");
  std::string host = Str(o, "host");
  int port = static_cast<int>(Num(o, "port", 0));
  std::string target = path.empty() ? host + ":" + std::to_string(port) : path;
  SockAddr remote, local;
  int r = path.empty() ? MakeInetAddr(host, port, &remote) : MakeUnixAddr(path, &remote);
  if (r < 0) ThrowSysError(env, -r, "connect", target);
  std::string lhost = Str(o, "localAddress");
  bool has_local = !lhost.empty();
  if (has_local) {
    r = MakeInetAddr(lhost, static_cast<int>(Num(o, "localPort", 0)), &local);
    if (r < 0) ThrowSysError(env, -r, "bind", lhost);
  }
  int err = 0, sys = 0;
  Socket* s = Socket::Connect(self.L(env), remote, has_local ? &local : nullptr, SockOpts(o), &err, &sys);
  if (s == nullptr) ThrowSysError(env, err, SyscallName(sys), target);
  return Napi::Number::New(env, static_cast<double>(s->id));
}

Napi::Value WriteResult(Napi::Env env, int r) {
  if (r < 0) ThrowRefused(env, r, "write", "write");
  return Napi::Boolean::New(env, r == 1);
}

Socket::WriteOp WriteOpOf(const Napi::CallbackInfo& info) {
  return info.Length() > 2 && info[2].ToBoolean() ? Socket::kWriteFeed : Socket::kWriteBytes;
}

// write(id, chunk: Uint8Array, feed?) -> writable. `feed`: a held pipe's early bytes (pipe.ts).
Napi::Value Write(NativeLoop& self, const Napi::CallbackInfo& info) {
  Socket* s = self.Get<Socket>(info, "socket");
  auto u8 = info[1].As<Napi::Uint8Array>();
  iovec iov{u8.Data(), u8.ByteLength()};
  return WriteResult(info.Env(), s->Write(&iov, 1, WriteOpOf(info)));
}

// writev(id, chunks: Uint8Array[], feed?) -> writable
Napi::Value Writev(NativeLoop& self, const Napi::CallbackInfo& info) {
  Socket* s = self.Get<Socket>(info, "socket");
  std::vector<iovec> iov = Iovecs(info[1]);
  return WriteResult(info.Env(), s->Write(iov.data(), static_cast<int>(iov.size()), WriteOpOf(info)));
}

Napi::Value End(NativeLoop& self, const Napi::CallbackInfo& info) {
  if (Socket* s = self.Find<Socket>(info)) s->End();
  return info.Env().Undefined();
}

// destroy(id, reset) -> bytes queued and not sent (0 if already closed)
Napi::Value Destroy(NativeLoop& self, const Napi::CallbackInfo& info) {
  Socket* s = self.Find<Socket>(info);
  size_t unsent = s ? s->Destroy(info[1].ToBoolean()) : 0;
  return Napi::Number::New(info.Env(), static_cast<double>(unsent));
}

Napi::Value SetReadMode(NativeLoop& self, const Napi::CallbackInfo& info) {
  if (Socket* s = self.Find<Socket>(info)) s->SetReadMode(info[1].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Value SetNoDelay(NativeLoop& self, const Napi::CallbackInfo& info) {
  Socket* s = self.Get<Socket>(info, "socket");
  int r = s->SetNoDelay(info[1].ToBoolean());
  if (r < 0 && r != -EOPNOTSUPP && r != -ENOPROTOOPT) ThrowSysError(info.Env(), -r, "setsockopt", "TCP_NODELAY");
  return info.Env().Undefined();
}

// setIdleTimeout(id, ms): 0 stops it
Napi::Value SetIdleTimeout(NativeLoop& self, const Napi::CallbackInfo& info) {
  Socket* s = self.Get<Socket>(info, "socket");
  const int64_t ns = static_cast<int64_t>(info[1].As<Napi::Number>().DoubleValue() * 1e6);
  int r = self.raw()->idle()->Set(s, ns);
  if (r < 0)
    ThrowSysError(info.Env(), -r, r == -ENOSYS ? "timer" : "setIdleTimeout",
                  r == -ENOSYS ? "idle timeouts need loop timers (timerfd) in this version" : "socket idle timeout");
  s->idle_timeout_ns = ns > 0 ? ns : 0;
  return info.Env().Undefined();
}

// setKeepAlive(id, on, idleS, intervalS, count)
Napi::Value SetKeepAlive(NativeLoop& self, const Napi::CallbackInfo& info) {
  Socket* s = self.Get<Socket>(info, "socket");
  int r = s->SetKeepAlive(info[1].ToBoolean(), info[2].As<Napi::Number>().Int32Value(),
                          info[3].As<Napi::Number>().Int32Value(), info[4].As<Napi::Number>().Int32Value());
  if (r < 0)
    ThrowSysError(info.Env(), -r, "setsockopt", r == -EOPNOTSUPP ? "TCP keepalive (a Unix socket has none)" : "TCP keepalive");
  return info.Env().Undefined();
}

Napi::Value SetHighWater(NativeLoop& self, const Napi::CallbackInfo& info) {
  self.Get<Socket>(info, "socket")->SetHighWater(static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue()));
  return info.Env().Undefined();
}

// socketCounters(id, out: Float64Array(3)) -> fills [bytesIn, bytesOut, queued]; false if closed
Napi::Value SocketCounters(NativeLoop& self, const Napi::CallbackInfo& info) {
  Socket* s = self.Find<Socket>(info);
  if (s == nullptr) return Napi::Boolean::New(info.Env(), false);
  double* out = info[1].As<Napi::Float64Array>().Data();
  out[0] = static_cast<double>(s->bytes_in());
  out[1] = static_cast<double>(s->bytes_out());
  out[2] = static_cast<double>(s->queued());
  return Napi::Boolean::New(info.Env(), true);
}

// push(id, chunk): send chunk repeatedly while writable, until end/destroy
Napi::Value Push(NativeLoop& self, const Napi::CallbackInfo& info) {
  Socket* s = self.Get<Socket>(info, "socket");
  auto u8 = info[1].As<Napi::Uint8Array>();
  int r = s->Push(self.raw()->SharedBuffer(u8.Data(), u8.ByteLength()));
  if (r < 0) ThrowRefused(info.Env(), r, "push", "push");
  return info.Env().Undefined();
}

// sendFile(socket, file, offset, length | -1, req): a kRecSendFile record reports the result.
Napi::Value SendFile(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Socket* s = self.Get<Socket>(info, "socket");
  std::shared_ptr<FileRef> f = self.Files(env)->Find(U64(info[1]));
  if (!f) ThrowSysError(env, EBADF, "sendfile", "sendFile: the file is closed");
  int r = s->SendFile(std::move(f), U64(info[2]), U64(info[3]), info[4].As<Napi::Number>().DoubleValue());
  if (r < 0) ThrowRefused(env, r, "sendfile", "sendFile");
  return env.Undefined();
}

// checkSendFile(socket): throws what sendFile would for the socket's write state, so that it is
// reported before the file and range are looked at.
Napi::Value CheckSendFile(NativeLoop& self, const Napi::CallbackInfo& info) {
  int r = self.Get<Socket>(info, "socket")->WriteState(Socket::kWriteFile);
  if (r < 0) ThrowRefused(info.Env(), r, "sendfile", "sendFile");
  return info.Env().Undefined();
}

// endQuiet() -> quiet sockets still open; when > 0 a quiet-done record follows their closing
Napi::Value EndQuiet(NativeLoop& self, const Napi::CallbackInfo& info) {
  Loop* loop = self.raw();
  if (loop->closed()) return Napi::Number::New(info.Env(), 0);
  loop->EndQuiet();
  return Napi::Number::New(info.Env(), static_cast<double>(loop->WaitQuiet()));
}

// destroyQuiet() -> { count, unsent }
Napi::Value DestroyQuiet(NativeLoop& self, const Napi::CallbackInfo& info) {
  size_t unsent = 0, count = self.closed() ? 0 : self.raw()->DestroyQuiet(&unsent);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("count", static_cast<double>(count));
  o.Set("unsent", static_cast<double>(unsent));
  return o;
}

// detach(socketId) -> token
Napi::Value Detach(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Socket* s = self.Get<Socket>(info, "socket");
  std::unique_ptr<DetachedSocket> d;
  int r;
  try {
    d = std::make_unique<DetachedSocket>();
    r = s->Detach(d.get());
  } catch (const std::bad_alloc&) {
    r = -ENOMEM;  // nothing was moved: the socket stays on this loop
  }
  if (r < 0)
    ThrowSysError(env, -r, "detach",
                  r == -ENOTCONN ? "the socket is still connecting"
                  : r == -EBUSY ? "the socket is pushing (push() cannot move between loops)"
                                : "the socket cannot be detached");
  return Napi::Number::New(env, StoreDetached(self.raw()->group_id(), std::move(d)));
}

// adopt(token, mode) -> socket id
Napi::Value Adopt(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Loop* loop = self.L(env);
  auto d = TakeDetached(info[0].As<Napi::Number>().DoubleValue());
  if (d == nullptr) ThrowSysError(env, ENOENT, "adopt", "unknown socket token (already adopted, or its runtime closed)");
  Socket* s = nullptr;
  try {
    s = Socket::Restore(loop, std::move(*d), info[1].As<Napi::Number>().Int32Value());
  } catch (const std::bad_alloc&) {
    if (d->fd >= 0) CloseWithReset(d->fd);  // cannot be served here: the peer sees a reset
    ThrowSysError(env, ENOMEM, "adopt", "no memory to adopt the socket; it was reset");
  }
  return Napi::Number::New(env, static_cast<double>(s->id));
}

// adoptFd(fd, socketOptions) -> socket id: a connected stream socket accepted elsewhere.
Napi::Value AdoptFd(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = info[0].As<Napi::Number>().Int32Value();
  int err = 0;
  Socket* s = Socket::AdoptFd(self.L(env), fd, SockOpts(info[1].As<Napi::Object>()), &err);
  if (s == nullptr)
    ThrowSysError(env, err, "adopt",
                  "fd " + std::to_string(fd) +
                      (err == ENOTCONN ? " is a stream socket that is not connected"
                       : err == EINVAL ? " is not a connected stream socket (listening? datagram? listen on it instead)"
                                       : ""));
  return Napi::Number::New(env, static_cast<double>(s->id));
}

}  // namespace socket_js

void SocketSlice(Slice& s) {
  using namespace socket_js;
  s.Method<Connect>("connect");
  s.Method<Write>("write");
  s.Method<Writev>("writev");
  s.Method<End>("end");
  s.Method<Destroy>("destroy");
  s.Method<SetReadMode>("setReadMode");
  s.Method<SetNoDelay>("setNoDelay");
  s.Method<SetIdleTimeout>("setIdleTimeout");
  s.Method<SetKeepAlive>("setKeepAlive");
  s.Method<SetHighWater>("setHighWaterMark");
  s.Method<SocketCounters>("socketCounters");
  s.Method<Push>("push");
  s.Method<SendFile>("sendFile");
  s.Method<CheckSendFile>("checkSendFile");
  s.Method<EndQuiet>("endQuiet");
  s.Method<DestroyQuiet>("destroyQuiet");
  s.Method<Detach>("detach");
  s.Method<Adopt>("adopt");
  s.Method<AdoptFd>("adoptFd");
  Napi::Object modes = Napi::Object::New(s.env);
  modes.Set("Paused", static_cast<double>(kReadPaused));
  modes.Set("Data", static_cast<double>(kReadData));
  modes.Set("Sink", static_cast<double>(kReadSink));
  modes.Set("Lent", static_cast<double>(kReadLent));
  modes.Freeze();
  s.exports.Set("readModes", modes);
}

}  // namespace iapp
