// The N-API surface: one NativeLoop object per loop thread, addressed by integer handle ids, and a
// few process-wide functions. Kept thin: argument unpacking and error conversion only.
#include <napi.h>

#include <cerrno>
#include <sys/resource.h>
#ifdef __APPLE__
#include <limits.h>  // OPEN_MAX
#endif
#include <sys/socket.h>
#include <vector>

#include "addr.h"
#include "beneath.h"
#include "child.h"
#include "errors.h"
#include "faults.h"
#include "file.h"
#include "conns.h"
#include "dialer.h"
#include "idle.h"
#include "live.h"
#include "handoff.h"
#include "inbox.h"
#include "listener.h"
#include "pool.h"
#include "loop.h"
#include "socket.h"
#include "pipe.h"
#include "platform.h"
#include "sys.h"
#include "udp.h"

namespace iapp {
namespace {

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
Napi::Object DescribeLocalPeer(Napi::Env env, int fd, bool peer) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  Napi::Object o = Napi::Object::New(env);
  int r = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
               : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (r < 0) return o;
  std::string host;
  int port;
  DescribeAddr(reinterpret_cast<sockaddr*>(&ss), len, &host, &port);
  o.Set("address", host);
  o.Set("port", port);
  o.Set("family", ss.ss_family == AF_INET ? "IPv4" : ss.ss_family == AF_INET6 ? "IPv6" : "unix");
  return o;
}

class NativeLoop : public Napi::ObjectWrap<NativeLoop> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeLoop",
                       {
                           InstanceMethod<&NativeLoop::Listen>("listen"),
                           InstanceMethod<&NativeLoop::Connect>("connect"),
                           InstanceMethod<&NativeLoop::Write>("write"),
                           InstanceMethod<&NativeLoop::Writev>("writev"),
                           InstanceMethod<&NativeLoop::End>("end"),
                           InstanceMethod<&NativeLoop::Destroy>("destroy"),
                           InstanceMethod<&NativeLoop::SetReadMode>("setReadMode"),
                           InstanceMethod<&NativeLoop::SetNoDelay>("setNoDelay"),
                           InstanceMethod<&NativeLoop::SetHighWater>("setHighWaterMark"),
                           InstanceMethod<&NativeLoop::SocketCounters>("socketCounters"),
                           InstanceMethod<&NativeLoop::Addresses>("addresses"),
                           InstanceMethod<&NativeLoop::PauseListener>("pauseListener"),
                           InstanceMethod<&NativeLoop::ResumeListener>("resumeListener"),
                           InstanceMethod<&NativeLoop::CloseListener>("closeListener"),
                           InstanceMethod<&NativeLoop::Push>("push"),
                           InstanceMethod<&NativeLoop::SetAnnounce>("setAnnounce"),
                           InstanceMethod<&NativeLoop::EndQuiet>("endQuiet"),
                           InstanceMethod<&NativeLoop::DestroyQuiet>("destroyQuiet"),
                           InstanceMethod<&NativeLoop::Udp>("udp"),
                           InstanceMethod<&NativeLoop::UdpRead>("udpRead"),
                           InstanceMethod<&NativeLoop::UdpSendBatch>("udpSendBatch"),
                           InstanceMethod<&NativeLoop::UdpPackAddress>("udpPackAddress"),
                           InstanceMethod<&NativeLoop::UdpPush>("udpPush"),
                           InstanceMethod<&NativeLoop::UdpSend>("udpSend"),
                           InstanceMethod<&NativeLoop::UdpCounters>("udpCounters"),
                           InstanceMethod<&NativeLoop::UdpClose>("udpClose"),
                           InstanceMethod<&NativeLoop::Attach>("attach"),
                           InstanceMethod<&NativeLoop::Announce>("announce"),
                           InstanceMethod<&NativeLoop::SetBusyPoll>("setBusyPoll"),
                           InstanceMethod<&NativeLoop::SetTurnBudget>("setTurnBudget"),
                           InstanceMethod<&NativeLoop::SetRef>("setRef"),
                           InstanceMethod<&NativeLoop::ChildReserve>("childReserve"),
                           InstanceMethod<&NativeLoop::ChildAttach>("childAttach"),
                           InstanceMethod<&NativeLoop::ChildClose>("childClose"),
                           InstanceMethod<&NativeLoop::TimerViewsJs>("timerViews"),
                           InstanceMethod<&NativeLoop::TimerAlloc>("timerAlloc"),
                           InstanceMethod<&NativeLoop::TimerFree>("timerFree"),
                           InstanceMethod<&NativeLoop::Now>("now"),
                           InstanceMethod<&NativeLoop::TestClockJump>("testClockJump"),
                           InstanceMethod<&NativeLoop::SetInboxPriority>("setInboxPriority"),
                           InstanceMethod<&NativeLoop::Post>("post"),
                           InstanceMethod<&NativeLoop::Cancel>("cancel"),
                           InstanceMethod<&NativeLoop::PostBatch>("postBatch"),
                           InstanceMethod<&NativeLoop::Gauges>("gauges"),
                           InstanceMethod<&NativeLoop::Subscribe>("subscribe"),
                           InstanceMethod<&NativeLoop::Broadcast>("broadcast"),
                           InstanceMethod<&NativeLoop::Members>("members"),
                           InstanceMethod<&NativeLoop::Detach>("detach"),
                           InstanceMethod<&NativeLoop::Adopt>("adopt"),
                           InstanceMethod<&NativeLoop::SetIdleTimeout>("setIdleTimeout"),
                           InstanceMethod<&NativeLoop::SetKeepAlive>("setKeepAlive"),
                           InstanceMethod<&NativeLoop::AdoptFd>("adoptFd"),
                           InstanceMethod<&NativeLoop::FileOpen>("fileOpen"),
                           InstanceMethod<&NativeLoop::FileClose>("fileClose"),
                           InstanceMethod<&NativeLoop::FileStat>("fileStat"),
                           InstanceMethod<&NativeLoop::FileTruncate>("fileTruncate"),
                           InstanceMethod<&NativeLoop::FileRead>("fileRead"),
                           InstanceMethod<&NativeLoop::FileWrite>("fileWrite"),
                           InstanceMethod<&NativeLoop::FileSync>("fileSync"),
                           InstanceMethod<&NativeLoop::FileCopy>("fileCopy"),
                           InstanceMethod<&NativeLoop::DiskEngineJs>("diskEngine"),
                           InstanceMethod<&NativeLoop::SendFile>("sendFile"),
                           InstanceMethod<&NativeLoop::PipeJs>("pipe"),
                           InstanceMethod<&NativeLoop::PipeGo>("pipeGo"),
                           InstanceMethod<&NativeLoop::Dial>("dial"),
                           InstanceMethod<&NativeLoop::DialerStats>("dialerStats"),
                           InstanceMethod<&NativeLoop::DialerStop>("dialerStop"),
                           InstanceMethod<&NativeLoop::DialerClose>("dialerClose"),
                           InstanceMethod<&NativeLoop::Stats>("stats"),
                           InstanceMethod<&NativeLoop::Close>("close"),
                       });
  }

  // new NativeLoop(onBatch: (count, arenas?) => void, records: Float64Array)
  NativeLoop(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeLoop>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction() || !info[1].IsTypedArray())
      throw Napi::TypeError::New(env, "NativeLoop(onBatch, records) expects a function and a Float64Array");
    auto records = info[1].As<Napi::Float64Array>();
    if (records.ElementLength() < static_cast<size_t>(kRecordCapacity * kRecordStride))
      throw Napi::RangeError::New(env, "records array too small");
    loop_ = std::make_unique<Loop>(env, info[0].As<Napi::Function>(), records);
    int r = loop_->Open();
#if defined(IAPP_KQUEUE)
    const char* create = "kqueue";
#else
    const char* create = "epoll_create1";
#endif
    if (r < 0) ThrowSysError(env, -r, create, "creating the loop's poller");
  }

 private:
  Loop* L(Napi::Env env) {
    if (loop_->closed()) ThrowSysError(env, EBADF, "loop", "the loop is closed");
    return loop_.get();
  }
  // The handle named by info[0] if it is of kind T::kKind, else null.
  template <typename T>
  T* Find(const Napi::CallbackInfo& info) {
    if (loop_->closed()) return nullptr;
    uint64_t id = static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue());
    Handle* h = loop_->Find(id);
    return h != nullptr && h->kind == T::kKind ? static_cast<T*>(h) : nullptr;
  }
  template <typename T>
  T* Get(const Napi::CallbackInfo& info, const char* what) {
    L(info.Env());
    T* h = Find<T>(info);
    if (h == nullptr) ThrowSysError(info.Env(), EBADF, what, std::string(what) + " is closed");
    return h;
  }
  Socket* FindSocket(const Napi::CallbackInfo& info) { return Find<Socket>(info); }

  Napi::Value Listen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ListenSpec spec = ListenSpecOf(info[0].As<Napi::Object>());
    int err = 0, sys = 0;
    Listener* l = Listener::Open(L(env), spec, &err, &sys);
    if (l == nullptr)
      ThrowSysError(env, err, SyscallName(sys),
                    spec.fd >= 0 ? "inherited fd " + std::to_string(spec.fd)
                    : spec.path.empty() ? spec.host + ":" + std::to_string(spec.port) : spec.path);
    Napi::Object res = DescribeLocalPeer(env, l->fd, false);
    if (!spec.path.empty()) res.Set("address", spec.path);
    res.Set("id", static_cast<double>(l->id));
    return res;
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
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
    Socket* s = Socket::Connect(L(env), remote, has_local ? &local : nullptr, SockOpts(o), &err, &sys);
    if (s == nullptr) ThrowSysError(env, err, SyscallName(sys), target);
    return Napi::Number::New(env, static_cast<double>(s->id));
  }

  Napi::Value WriteResult(Napi::Env env, int r) {
    if (r < 0)
      ThrowSysError(env, -r, "write",
                    r == -EPIPE ? "write after end()"
                    : r == -EBUSY ? "a pipe writes into this socket: its bytes would land mid-stream"
                                  : "write to a closed socket");
    return Napi::Boolean::New(env, r == 1);
  }

  // write(id, chunk: Uint8Array) -> writable
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Socket* s = Get<Socket>(info, "socket");
    auto u8 = info[1].As<Napi::Uint8Array>();
    iovec iov{u8.Data(), u8.ByteLength()};
    return WriteResult(info.Env(), s->Write(&iov, 1));
  }

  // writev(id, chunks: Uint8Array[]) -> writable
  Napi::Value Writev(const Napi::CallbackInfo& info) {
    Socket* s = Get<Socket>(info, "socket");
    auto arr = info[1].As<Napi::Array>();
    uint32_t n = arr.Length();
    std::vector<iovec> iov(n);
    for (uint32_t i = 0; i < n; ++i) {
      auto u8 = arr.Get(i).As<Napi::Uint8Array>();
      iov[i] = iovec{u8.Data(), u8.ByteLength()};
    }
    return WriteResult(info.Env(), s->Write(iov.data(), static_cast<int>(n)));
  }

  Napi::Value End(const Napi::CallbackInfo& info) {
    Socket* s = FindSocket(info);
    if (s != nullptr) s->End();
    return info.Env().Undefined();
  }

  // destroy(id, reset) -> bytes queued and not sent (0 if already closed)
  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    Socket* s = FindSocket(info);
    size_t unsent = s ? s->Destroy(info[1].ToBoolean()) : 0;
    return Napi::Number::New(info.Env(), static_cast<double>(unsent));
  }

  Napi::Value SetReadMode(const Napi::CallbackInfo& info) {
    Socket* s = FindSocket(info);
    if (s) s->SetReadMode(info[1].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  }

  Napi::Value SetNoDelay(const Napi::CallbackInfo& info) {
    Socket* s = Get<Socket>(info, "socket");
    int r = s->SetNoDelay(info[1].ToBoolean());
    if (r < 0 && r != -EOPNOTSUPP && r != -ENOPROTOOPT) ThrowSysError(info.Env(), -r, "setsockopt", "TCP_NODELAY");
    return info.Env().Undefined();
  }

  // setIdleTimeout(id, ms): 0 stops it
  Napi::Value SetIdleTimeout(const Napi::CallbackInfo& info) {
    Socket* s = Get<Socket>(info, "socket");
    const int64_t ns = static_cast<int64_t>(info[1].As<Napi::Number>().DoubleValue() * 1e6);
    int r = loop_->idle()->Set(s, ns);
    if (r < 0) ThrowSysError(info.Env(), -r, r == -ENOSYS ? "timer" : "setIdleTimeout", r == -ENOSYS ? "idle timeouts need loop timers (timerfd) in this version" : "socket idle timeout");
    s->idle_timeout_ns = ns > 0 ? ns : 0;
    return info.Env().Undefined();
  }
  // setKeepAlive(id, on, idleS, intervalS, count)
  Napi::Value SetKeepAlive(const Napi::CallbackInfo& info) {
    Socket* s = Get<Socket>(info, "socket");
    int r = s->SetKeepAlive(info[1].ToBoolean(), info[2].As<Napi::Number>().Int32Value(), info[3].As<Napi::Number>().Int32Value(),
                            info[4].As<Napi::Number>().Int32Value());
    if (r < 0) ThrowSysError(info.Env(), -r, "setsockopt", r == -EOPNOTSUPP ? "TCP keepalive (a Unix socket has none)" : "TCP keepalive");
    return info.Env().Undefined();
  }

  Napi::Value SetHighWater(const Napi::CallbackInfo& info) {
    Socket* s = Get<Socket>(info, "socket");
    s->SetHighWater(static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue()));
    return info.Env().Undefined();
  }

  // socketCounters(id, out: Float64Array(3)) -> fills [bytesIn, bytesOut, queued]; false if closed
  Napi::Value SocketCounters(const Napi::CallbackInfo& info) {
    Socket* s = FindSocket(info);
    if (s == nullptr) return Napi::Boolean::New(info.Env(), false);
    double* out = info[1].As<Napi::Float64Array>().Data();
    out[0] = static_cast<double>(s->bytes_in());
    out[1] = static_cast<double>(s->bytes_out());
    out[2] = static_cast<double>(s->queued());
    return Napi::Boolean::New(info.Env(), true);
  }

  Napi::Value Addresses(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Handle* h = L(env)->Find(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue()));
    Napi::Object o = Napi::Object::New(env);
    if (h == nullptr) return o;
    o.Set("local", DescribeLocalPeer(env, h->fd, false));
    if (h->kind == Handle::Kind::kSocket) o.Set("remote", DescribeLocalPeer(env, h->fd, true));
    return o;
  }

  Napi::Value PauseListener(const Napi::CallbackInfo& info) {
    Get<Listener>(info, "listener")->Pause();
    return info.Env().Undefined();
  }
  Napi::Value ResumeListener(const Napi::CallbackInfo& info) {
    Get<Listener>(info, "listener")->Resume();
    return info.Env().Undefined();
  }
  Napi::Value CloseListener(const Napi::CallbackInfo& info) {
    if (auto* l = Find<Listener>(info)) l->Close();
    return info.Env().Undefined();
  }

  Napi::Value SetAnnounce(const Napi::CallbackInfo& info) {
    if (auto* l = Find<Listener>(info)) l->SetAnnounce(info[1].ToBoolean());
    return info.Env().Undefined();
  }
  // endQuiet() -> quiet sockets still open; when > 0 a quiet-done record follows their closing
  Napi::Value EndQuiet(const Napi::CallbackInfo& info) {
    if (loop_->closed()) return Napi::Number::New(info.Env(), 0);
    loop_->EndQuiet();
    return Napi::Number::New(info.Env(), static_cast<double>(loop_->WaitQuiet()));
  }
  // destroyQuiet() -> { count, unsent }
  Napi::Value DestroyQuiet(const Napi::CallbackInfo& info) {
    size_t unsent = 0, count = loop_->closed() ? 0 : loop_->DestroyQuiet(&unsent);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("count", static_cast<double>(count));
    o.Set("unsent", static_cast<double>(unsent));
    return o;
  }

  // push(id, chunk): send chunk repeatedly while writable, until end/destroy
  Napi::Value Push(const Napi::CallbackInfo& info) {
    Socket* s = Get<Socket>(info, "socket");
    auto u8 = info[1].As<Napi::Uint8Array>();
    if (s->Push(loop_->SharedBuffer(u8.Data(), u8.ByteLength())) < 0)
      ThrowSysError(info.Env(), EBUSY, "push", "a pipe writes into this socket");
    return info.Env().Undefined();
  }

  // udp({ host, port, fd, group, peerHost, peerPort, sink }) -> { id, address, port, family }
  Napi::Value Udp(const Napi::CallbackInfo& info) {
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
    iapp::Udp* u = iapp::Udp::Open(L(env), spec, &err, &sys);
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
  Napi::Value UdpRead(const Napi::CallbackInfo& info) {
    if (auto* u = Find<iapp::Udp>(info)) u->SetRead(info[1].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  }
  // udpSendBatch(id, staging: Uint8Array, length, count) -> 1 under the high-water mark, 0 at it
  Napi::Value UdpSendBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* u = Get<iapp::Udp>(info, "UDP socket");
    auto u8 = info[1].As<Napi::Uint8Array>();
    size_t len = static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue());
    if (len > u8.ByteLength()) throw Napi::RangeError::New(env, "staging length past its buffer");
    int r = u->SendBatch(u8.Data(), len, static_cast<size_t>(info[3].As<Napi::Number>().DoubleValue()));
    if (r < 0) ThrowSysError(env, -r, "sendmmsg", "a malformed batch of datagrams");
    return Napi::Number::New(env, r);
  }
  // udpPackAddress(host) -> Uint8Array(16) of a numeric IPv4/IPv6 address (inet_pton), or null
  Napi::Value UdpPackAddress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    SockAddr a;
    if (MakeInetAddr(info[0].As<Napi::String>().Utf8Value(), 0, &a) < 0) return env.Null();
    auto out = Napi::Uint8Array::New(env, 16);
    if (a.family() == AF_INET) memcpy(out.Data(), &reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_addr, 4);
    else memcpy(out.Data(), &reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_addr, 16);
    return out;
  }
  // udpPush(id, chunk | null): push chunk as datagrams while writable; null stops
  Napi::Value UdpPush(const Napi::CallbackInfo& info) {
    auto* u = Get<iapp::Udp>(info, "UDP socket");
    if (info[1].IsTypedArray()) {
      auto u8 = info[1].As<Napi::Uint8Array>();
      u->Push(loop_->SharedBuffer(u8.Data(), u8.ByteLength()));
    } else {
      u->StopPush();
    }
    return info.Env().Undefined();
  }
  // udpSend(id, chunk) -> true if sent, false if the socket buffer is full (EAGAIN)
  Napi::Value UdpSend(const Napi::CallbackInfo& info) {
    auto* u = Get<iapp::Udp>(info, "UDP socket");
    auto u8 = info[1].As<Napi::Uint8Array>();
    long r = u->Send(u8.Data(), u8.ByteLength());
    if (r == -EAGAIN || r == -EWOULDBLOCK || r == -ENOBUFS) return Napi::Boolean::New(info.Env(), false);
    if (r < 0) ThrowSysError(info.Env(), static_cast<int>(-r), "send", "UDP datagram");
    return Napi::Boolean::New(info.Env(), true);
  }
  // udpCounters(id, out: Float64Array(5)) -> [datagramsIn, bytesIn, datagramsOut, bytesOut, sendErrors]
  Napi::Value UdpCounters(const Napi::CallbackInfo& info) {
    auto* u = Find<iapp::Udp>(info);
    if (u == nullptr) return Napi::Boolean::New(info.Env(), false);
    double* out = info[1].As<Napi::Float64Array>().Data();
    out[0] = static_cast<double>(u->datagrams_in);
    out[1] = static_cast<double>(u->bytes_in);
    out[2] = static_cast<double>(u->datagrams_out);
    out[3] = static_cast<double>(u->bytes_out);
    out[4] = static_cast<double>(u->send_errors);
    return Napi::Boolean::New(info.Env(), true);
  }
  Napi::Value UdpClose(const Napi::CallbackInfo& info) {
    if (auto* u = Find<iapp::Udp>(info)) u->Close();
    return info.Env().Undefined();
  }

  // dial({ targets: [{ host, port } | { path }], sources: [address], first, stride, count,
  //        rate, then, chunk?, timeoutMs, noDelay, highWaterMark, priority }) -> dialer id
  Napi::Value Dial(const Napi::CallbackInfo& info) {
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
      spec.chunk = loop_->SharedBuffer(u8.Data(), u8.ByteLength());
    }
    spec.socket = SockOpts(o);
    int err = 0;
    uint64_t id = L(env)->StartDialer(std::move(spec), &err);
    if (id == 0) ThrowSysError(env, err, "dial", "starting a dialer");
    return Napi::Number::New(env, static_cast<double>(id));
  }

  // dialerStats(id) -> { established, failed, dropped, cycled, open, connecting, peak, rampNs,
  // bytesIn, bytesOut, errors: { errno: count } }, or undefined once the loop is closed
  Napi::Value DialerStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Dialer* d = FindDialer(info);
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

  // The dialer named by info[0], or null (unknown, or the loop is closed).
  Dialer* FindDialer(const Napi::CallbackInfo& info) {
    return loop_->closed() ? nullptr : loop_->FindDialer(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue()));
  }
  Napi::Value DialerStop(const Napi::CallbackInfo& info) {
    if (Dialer* d = FindDialer(info)) d->Stop();
    return info.Env().Undefined();
  }
  Napi::Value DialerClose(const Napi::CallbackInfo& info) {
    if (Dialer* d = FindDialer(info)) d->Close();
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    if (!loop_->closed()) loop_->timers().Apply();  // count what JS armed in this very turn
    Napi::Env env = info.Env();
    const LoopStats& s = loop_->stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("bytesIn", static_cast<double>(s.bytes_in));
    o.Set("bytesOut", static_cast<double>(s.bytes_out));
    o.Set("accepted", static_cast<double>(s.accepted));
    o.Set("connected", static_cast<double>(s.connected));
    o.Set("closed", static_cast<double>(s.closed));
    o.Set("acceptPaused", static_cast<double>(s.accept_paused));
    o.Set("acceptShed", static_cast<double>(s.accept_shed));
    o.Set("refusedMaxConnections", static_cast<double>(s.refused_total));
    o.Set("refusedPerAddress", static_cast<double>(s.refused_addr));
    o.Set("wakeups", static_cast<double>(s.wakeups));
    o.Set("jsCalls", static_cast<double>(s.drains));
    o.Set("datagramsIn", static_cast<double>(s.datagrams_in));
    o.Set("datagramsOut", static_cast<double>(s.datagrams_out));
    o.Set("messagesIn", static_cast<double>(s.messages_in));
    o.Set("messagesOut", static_cast<double>(s.messages_out));
    o.Set("detached", static_cast<double>(s.detached));
    o.Set("adopted", static_cast<double>(s.adopted));
    o.Set("turnsCut", static_cast<double>(s.turns_cut));
    o.Set("readAheads", static_cast<double>(s.read_aheads));
    o.Set("connections", static_cast<double>(s.connections));
    o.Set("peakConnections", static_cast<double>(s.peak_connections));
    o.Set("timers", static_cast<double>(loop_->timers().allocated()));
    o.Set("timersArmed", static_cast<double>(loop_->timers().armed()));
    o.Set("handles", static_cast<double>(loop_->handle_count()));
    o.Set("quietSockets", static_cast<double>(loop_->quiet_open()));
    const FileIo* io = loop_->files_if_open();
    o.Set("filesOpen", static_cast<double>(io ? io->open_files() : 0));
    o.Set("diskPending", static_cast<double>(io ? io->in_flight() : 0));
    Napi::Object errors = Napi::Object::New(env);
    for (const auto& [err, count] : s.errors) errors.Set(std::to_string(err), static_cast<double>(count));
    o.Set("errors", errors);
    return o;
  }

  // attach(groupId, self): this loop becomes endpoint `self` of the runtime's group.
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t gid = info[0].As<Napi::Number>().Uint32Value();
    auto group = FindGroup(gid);
    if (group == nullptr) ThrowSysError(env, ENOENT, "attach", "the runtime's message group is gone");
    int r = L(env)->Attach(std::move(group), gid, info[1].As<Napi::Number>().Int32Value());
    if (r < 0) ThrowSysError(env, -r, "attach", "joining the runtime's message group");
    return env.Undefined();
  }

  Napi::Value SetBusyPoll(const Napi::CallbackInfo& info) {
    loop_->SetBusyPoll(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue() * 1000));
    return info.Env().Undefined();
  }

  // setTurnBudget(us): native work per loop turn before returning to libuv; 0 for no limit.
  Napi::Value SetTurnBudget(const Napi::CallbackInfo& info) {
    loop_->SetTurnBudget(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue() * 1000));
    return info.Env().Undefined();
  }

  // childReserve(priority) -> watch id
  Napi::Value ChildReserve(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int err = 0;
    const char* sys = "";
    ChildWatch* w = ChildWatch::Reserve(L(env), info[0].As<Napi::Number>().Int32Value(), &err, &sys);
    if (w == nullptr) ThrowSysError(env, err, sys, "reserving a child watch");
    return Napi::Number::New(env, static_cast<double>(w->id));
  }

  // childAttach(id, pid) -> true when the kernel watches the exit (pidfd, EVFILT_PROC), false when
  // polling. Cannot fail.
  Napi::Value ChildAttach(const Napi::CallbackInfo& info) {
    ChildWatch* w = Find<ChildWatch>(info);
    bool pidfd = w != nullptr && w->Attach(static_cast<pid_t>(info[1].As<Napi::Number>().Int32Value()));
    return Napi::Boolean::New(info.Env(), pidfd);
  }

  Napi::Value ChildClose(const Napi::CallbackInfo& info) {
    ChildWatch* w = Find<ChildWatch>(info);
    if (w != nullptr) w->Close();
    return info.Env().Undefined();
  }

  // timerViews(rel: Float64Array, abs: BigInt64Array, period: Float64Array, ctl: Int32Array,
  // dirty: Int32Array, flags: Uint8Array, order: Float64Array): the arrays JS arms timers in, for `rel.length` timers.
  // Throws ENOMEM if the native side cannot make room for that many.
  Napi::Value TimerViewsJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Loop* loop = L(env);
    auto rel = info[0].As<Napi::Float64Array>();
    auto abs = info[1].As<Napi::TypedArrayOf<int64_t>>();
    auto period = info[2].As<Napi::Float64Array>();
    auto ctl = info[3].As<Napi::Int32Array>();
    auto dirty = info[4].As<Napi::Int32Array>();
    auto flags = info[5].As<Napi::Uint8Array>();
    auto order = info[6].As<Napi::Float64Array>();
    const size_t cap = rel.ElementLength();
    if (abs.ElementLength() < cap || period.ElementLength() < cap || ctl.ElementLength() < 2 * cap ||
        dirty.ElementLength() < cap + 1 || flags.ElementLength() < cap || order.ElementLength() < cap)
      throw Napi::RangeError::New(env, "timer arrays too small");
    int r = loop->timers().Reserve(cap);
    if (r < 0) ThrowSysError(env, -r, "timer", "making room for timers");
    timer_refs_.clear();
    for (size_t i = 0; i < 7; ++i) timer_refs_.push_back(Napi::Persistent(info[i]));
    TimerViews v;
    v.rel = rel.Data();
    v.abs = abs.Data();
    v.period = period.Data();
    v.ctl = ctl.Data();
    v.dirty = dirty.Data();
    v.flags = flags.Data();
    v.order = order.Data();
    v.capacity = cap;
    loop->timers().SetViews(v);
    return env.Undefined();
  }

  // timerAlloc(clock, priority) -> slot
  Napi::Value TimerAlloc(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Loop* loop = L(env);
    int prio = info[1].As<Napi::Number>().Int32Value();
    int r = loop->timers().Alloc(info[0].As<Napi::Number>().Int32Value(), prio);
    if (r < 0) ThrowSysError(env, -r, loop->timers().failed_syscall(), "allocating a timer");
    loop->NotePriority(prio);
    loop->TimersChanged();
    return Napi::Number::New(env, r);
  }

  Napi::Value TimerFree(const Napi::CallbackInfo& info) {
    if (!loop_->closed()) {
      loop_->timers().Free(info[0].As<Napi::Number>().Int32Value());
      loop_->TimersChanged();
    }
    return info.Env().Undefined();
  }

  // now(clock) -> bigint ns
  Napi::Value Now(const Napi::CallbackInfo& info) {
    return Napi::BigInt::New(info.Env(), loop_->timers().Now(info[0].As<Napi::Number>().Int32Value()));
  }

  // testClockJump(ns: bigint): test hook, see TimerSet::TestJump.
  Napi::Value TestClockJump(const Napi::CallbackInfo& info) {
    bool lossless;
    int64_t ns = info[0].As<Napi::BigInt>().Int64Value(&lossless);
    if (!loop_->closed()) {
      loop_->timers().TestJump(ns);
      loop_->WantPrepare();
    }
    return info.Env().Undefined();
  }

  Napi::Value SetInboxPriority(const Napi::CallbackInfo& info) {
    loop_->SetInboxPriority(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  }

  Napi::Value SetRef(const Napi::CallbackInfo& info) {
    loop_->SetRef(info[0].ToBoolean());
    return info.Env().Undefined();
  }

  Napi::Value Announce(const Napi::CallbackInfo& info) {
    if (!loop_->closed()) loop_->Announce();
    return info.Env().Undefined();
  }

  // post(target, type, name, seq, flags, payload?: Uint8Array, bounded) -> 0 | -1 full |
  // -2 exited | -3 no such endpoint. Hot path: no exceptions, no allocation but the copy.
  Napi::Value Post(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (loop_->closed() || !loop_->attached()) return Napi::Number::New(env, -2);
    MsgHeader h{};
    h.type = static_cast<uint8_t>(info[1].As<Napi::Number>().Uint32Value());
    h.name = info[2].As<Napi::Number>().Uint32Value();
    h.seq = info[3].As<Napi::Number>().DoubleValue();
    h.flags = static_cast<uint8_t>(info[4].As<Napi::Number>().Uint32Value());
    const uint8_t* data = nullptr;
    if (info[5].IsTypedArray()) {
      auto u8 = info[5].As<Napi::Uint8Array>();
      if (u8.ByteLength() > 0x7fffffffu)
        throw Napi::RangeError::New(env, "a message payload is limited to 2 GiB");
      data = u8.Data();
      h.len = static_cast<uint32_t>(u8.ByteLength());
    }
    int r = loop_->Post(info[0].As<Napi::Number>().Int32Value(), h, data, info[6].ToBoolean());
    return Napi::Number::New(env, r);
  }

  // postBatch(target, staging: Uint8Array, length, count) -> 0 | -2 exited | -3
  Napi::Value PostBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (loop_->closed() || !loop_->attached()) return Napi::Number::New(env, -2);
    auto u8 = info[1].As<Napi::Uint8Array>();
    size_t len = static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue());
    if (len > u8.ByteLength()) throw Napi::RangeError::New(env, "staging length past its buffer");
    int r = loop_->PostBatch(info[0].As<Napi::Number>().Int32Value(), u8.Data(), len,
                             static_cast<size_t>(info[3].As<Napi::Number>().DoubleValue()));
    return Napi::Number::New(env, r);
  }

  // gauges() -> ArrayBuffer over the group's int32 [pending messages, pending bytes] per
  // endpoint, read by senders with Atomics.load to check the bound without a native call. The
  // buffer keeps the gauge block alive, not the group.
  Napi::Value Gauges(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!loop_->attached()) ThrowSysError(env, EBADF, "gauges", "the loop is not attached");
    auto* keep = new std::shared_ptr<int32_t>(loop_->group()->gauges());
    napi_value ab;
    napi_status st = napi_create_external_arraybuffer(
        env, keep->get(), loop_->group()->gauges_bytes(),
        [](napi_env, void*, void* hint) { delete static_cast<std::shared_ptr<int32_t>*>(hint); }, keep, &ab);
    if (st != napi_ok) {
      delete keep;
      ThrowSysError(env, ENOMEM, "gauges", "cannot share the inbox gauges");
    }
    return Napi::Value(env, ab);
  }

  // cancel(target, seq) -> removed before it ran
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (loop_->closed() || !loop_->attached()) return Napi::Boolean::New(env, false);
    int32_t target = info[0].As<Napi::Number>().Int32Value();
    if (target < 0 || target >= loop_->group()->size()) return Napi::Boolean::New(env, false);
    return Napi::Boolean::New(
        env, loop_->group()->inbox(target)->Cancel(loop_->self(), info[1].As<Napi::Number>().DoubleValue()));
  }

  // subscribe(topic, on): announced to the membership topic's subscribers.
  Napi::Value Subscribe(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (loop_->closed() || !loop_->attached()) return env.Undefined();
    uint32_t topic = info[0].As<Napi::Number>().Uint32Value();
    bool on = info[1].ToBoolean();
    Group* g = loop_->group();
    if (on ? g->Subscribe(topic, loop_->self()) : g->Unsubscribe(topic, loop_->self())) {
      MsgHeader h{0, static_cast<uint8_t>(on ? kMsgSubscribed : kMsgUnsubscribed), 0, 0, loop_->self(), topic, 0};
      g->Notify(h, false);
    }
    return env.Undefined();
  }

  // broadcast(topic, seq, flags, payload?, out, bounded) -> endpoints whose inbox was full (not
  // reached); fills out[0] with the number reached. Unbounded broadcasts (forwarded signals) go
  // into full inboxes too.
  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array skipped = Napi::Array::New(env);
    if (loop_->closed() || !loop_->attached()) return skipped;
    MsgHeader h{};
    h.type = kMsgBroadcast;
    h.name = info[0].As<Napi::Number>().Uint32Value();
    h.seq = info[1].As<Napi::Number>().DoubleValue();
    h.flags = static_cast<uint8_t>(info[2].As<Napi::Number>().Uint32Value());
    const uint8_t* data = nullptr;
    if (info[3].IsTypedArray()) {
      auto u8 = info[3].As<Napi::Uint8Array>();
      if (u8.ByteLength() > 0x7fffffffu)
        throw Napi::RangeError::New(env, "a message payload is limited to 2 GiB");
      data = u8.Data();
      h.len = static_cast<uint32_t>(u8.ByteLength());
    }
    auto out = info[4].As<Napi::Float64Array>();
    const bool bounded = !info[5].IsBoolean() || info[5].As<Napi::Boolean>().Value();
    double reached = 0;
    uint32_t k = 0;
    for (int32_t who : loop_->group()->Subscribers(h.name)) {
      int r = loop_->Post(who, h, data, bounded);
      if (r == Inbox::kOk) ++reached;
      else if (r == Inbox::kFull) skipped.Set(k++, who);
    }
    out[0] = reached;
    return skipped;
  }

  Napi::Value Members(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array a = Napi::Array::New(env);
    if (loop_->closed() || !loop_->attached()) return a;
    uint32_t k = 0;
    for (int32_t m : loop_->group()->Members()) a.Set(k++, m);
    return a;
  }

  // detach(socketId) -> token
  Napi::Value Detach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Socket* s = Get<Socket>(info, "socket");
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
    return Napi::Number::New(env, StoreDetached(loop_->group_id(), std::move(d)));
  }

  // adopt(token, mode) -> socket id
  Napi::Value Adopt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Loop* loop = L(env);
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
  Napi::Value AdoptFd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int fd = info[0].As<Napi::Number>().Int32Value();
    int err = 0;
    Socket* s = Socket::AdoptFd(L(env), fd, SockOpts(info[1].As<Napi::Object>()), &err);
    if (s == nullptr)
      ThrowSysError(env, err, "adopt",
                    "fd " + std::to_string(fd) +
                        (err == ENOTCONN ? " is a stream socket that is not connected"
                         : err == EINVAL ? " is not a connected stream socket (listening? datagram? listen on it instead)"
                                         : ""));
    return Napi::Number::New(env, static_cast<double>(s->id));
  }

  // Files: each call starts one disk job and returns at once; a kRecFile record with the request
  // number `req` (info[0]) brings the result. Offsets and lengths arrive as exact integers
  // (checked in src/file.ts); -1 as a length means "to the end".
  FileIo* Files(Napi::Env env) {
    int err = 0;
    FileIo* io = L(env)->files(&err);
    if (io == nullptr) {
      if (DiskEngineSetting() == kEngineUring)
        ThrowSysError(env, err, "io_uring_setup",
                      "diskEngine 'io_uring' needs a kernel that allows io_uring ('auto' falls back to the pool)");
      ThrowSysError(env, err, "eventfd", "cannot set up the loop's disk completions");
    }
    return io;
  }
  static uint64_t U64(const Napi::Value& v) {
    double d = v.As<Napi::Number>().DoubleValue();
    return d < 0 ? UINT64_MAX : static_cast<uint64_t>(d);
  }
  static std::vector<iovec> Iovecs(const Napi::Value& v) {
    auto arr = v.As<Napi::Array>();
    std::vector<iovec> iov(arr.Length());
    for (uint32_t i = 0; i < iov.size(); ++i) {
      auto u8 = arr.Get(i).As<Napi::Uint8Array>();
      iov[i] = iovec{u8.Data(), u8.ByteLength()};
    }
    return iov;
  }
  Napi::Value Started(Napi::Env env, int r, const char* sys, const char* what) {
    if (r < 0)
      ThrowSysError(env, -r, sys, r == -EBADF ? std::string(what) + ": the file is closed" : what);
    return env.Undefined();
  }
  // fileOpen(req, path, flags, mode, beneath): beneath is 0 or the id of an open directory.
  Napi::Value FileOpen(const Napi::CallbackInfo& info) {
    std::string path = info[1].As<Napi::String>().Utf8Value();
    const uint64_t beneath = info.Length() > 4 ? U64(info[4]) : 0;
    return Started(info.Env(),
                   Files(info.Env())->OpenFile(info[0].As<Napi::Number>().DoubleValue(), path,
                                               info[2].As<Napi::Number>().Int32Value(),
                                               info[3].As<Napi::Number>().Int32Value(), beneath),
                   beneath != 0 ? "openat" : "open", path.c_str());
  }
  Napi::Value FileClose(const Napi::CallbackInfo& info) {
    return Started(info.Env(), Files(info.Env())->CloseFile(info[0].As<Napi::Number>().DoubleValue(), U64(info[1])),
                   "close", "close");
  }
  Napi::Value FileStat(const Napi::CallbackInfo& info) {
    return Started(info.Env(), Files(info.Env())->Stat(info[0].As<Napi::Number>().DoubleValue(), U64(info[1])),
                   "fstat", "stat");
  }
  Napi::Value FileTruncate(const Napi::CallbackInfo& info) {
    return Started(info.Env(),
                   Files(info.Env())->Truncate(info[0].As<Napi::Number>().DoubleValue(), U64(info[1]), U64(info[2])),
                   "ftruncate", "truncate");
  }
  Napi::Value FileRead(const Napi::CallbackInfo& info) {
    return Started(info.Env(),
                   Files(info.Env())->Read(info[0].As<Napi::Number>().DoubleValue(), U64(info[1]),
                                           Iovecs(info[2]), U64(info[3])),
                   "pread", "read");
  }
  Napi::Value FileWrite(const Napi::CallbackInfo& info) {
    return Started(info.Env(),
                   Files(info.Env())->Write(info[0].As<Napi::Number>().DoubleValue(), U64(info[1]),
                                            Iovecs(info[2]), U64(info[3])),
                   "pwrite", "write");
  }
  Napi::Value FileSync(const Napi::CallbackInfo& info) {
    return Started(info.Env(),
                   Files(info.Env())->Sync(info[0].As<Napi::Number>().DoubleValue(), U64(info[1]), info[2].ToBoolean()),
                   "fsync", "sync");
  }
  // fileCopy(req, src, dst, srcOffset, dstOffset, length | -1)
  Napi::Value FileCopy(const Napi::CallbackInfo& info) {
    return Started(info.Env(),
                   Files(info.Env())->Copy(info[0].As<Napi::Number>().DoubleValue(), U64(info[1]), U64(info[2]),
                                           U64(info[3]), U64(info[4]), U64(info[5])),
                   "copy_file_range", "copyFile (overlapping ranges of one file are refused)");
  }

  // diskEngine() -> 'io_uring' | 'pool': what runs this loop's reads, writes and syncs.
  Napi::Value DiskEngineJs(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), Files(info.Env())->uses_ring() ? "io_uring" : "pool");
  }

  // sendFile(socket, file, offset, length | -1, req): a kRecSendFile record reports the result.
  Napi::Value SendFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Socket* s = Get<Socket>(info, "socket");
    std::shared_ptr<FileRef> f = Files(env)->Find(U64(info[1]));
    if (!f) ThrowSysError(env, EBADF, "sendfile", "sendFile: the file is closed");
    int r = s->SendFile(std::move(f), U64(info[2]), U64(info[3]), info[4].As<Napi::Number>().DoubleValue());
    if (r < 0)
      ThrowSysError(env, -r, "sendfile",
                    r == -EBUSY ? "sendFile: the socket is pushing or being piped into"
                    : r == -EPIPE ? "sendFile after end()" : "sendFile on a closed socket");
    return env.Undefined();
  }

  // pipe(src, dst, id, halfOpen): moves src's input into dst natively; a kRecPipe record ends it.
  Napi::Value PipeJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Socket* src = Get<Socket>(info, "socket");
    Loop* loop = L(env);
    Handle* h = loop->Find(U64(info[1]));
    if (h == nullptr || h->kind != Handle::Kind::kSocket) ThrowSysError(env, EBADF, "pipe", "pipe: the destination socket is closed");
    auto* dst = static_cast<Socket*>(h);
    int err = 0, sys = 0;
    Pipe* p = Pipe::Start(loop, src, dst, info[2].As<Napi::Number>().DoubleValue(), &err, &sys);
    if (p == nullptr)
      ThrowSysError(env, err, SyscallName(sys),
                    err == EBUSY ? "pipe: a socket is already piped, pushing, connecting, or the destination has ended"
                    : err == EPIPE ? "pipe: the source has already ended" : "pipe");
    if (info[3].ToBoolean()) {
      src->AllowHalfOpen();
      dst->AllowHalfOpen();
    }
    return env.Undefined();
  }

  // pipeGo(src, id): JS has passed on what src had delivered; the held pipe starts moving.
  Napi::Value PipeGo(const Napi::CallbackInfo& info) {
    Socket* src = Find<Socket>(info);
    if (src != nullptr && src->pipe_out != nullptr && src->pipe_out->held() &&
        src->pipe_out->id() == info[1].As<Napi::Number>().DoubleValue())
      src->pipe_out->Go();
    return info.Env().Undefined();
  }

  // close(heldMessages?)
  Napi::Value Close(const Napi::CallbackInfo& info) {
    loop_->Close(info[0].IsNumber() ? static_cast<size_t>(info[0].As<Napi::Number>().DoubleValue()) : 0);
    return info.Env().Undefined();
  }

  std::unique_ptr<Loop> loop_;
  std::vector<Napi::Reference<Napi::Value>> timer_refs_;
};

// Raises RLIMIT_NOFILE's soft limit to the hard limit. Returns { before, soft, hard }.
Napi::Value RaiseFileLimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) ThrowSysError(env, errno, "getrlimit", "RLIMIT_NOFILE");
  const double before = rl.rlim_cur == RLIM_INFINITY ? -1 : static_cast<double>(rl.rlim_cur);
  if (rl.rlim_cur != rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
#ifdef __APPLE__
    // macOS refuses a soft limit above OPEN_MAX even when the hard limit is "unlimited".
    if (want.rlim_cur > OPEN_MAX) want.rlim_cur = OPEN_MAX;
#endif
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("before", before);
  o.Set("soft", rl.rlim_cur == RLIM_INFINITY ? -1 : static_cast<double>(rl.rlim_cur));
  o.Set("hard", rl.rlim_max == RLIM_INFINITY ? -1 : static_cast<double>(rl.rlim_max));
  return o;
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

// spawn(file, args[], env[] | undefined, cwd, stdio) -> pid
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string file = info[0].As<Napi::String>().Utf8Value();
  std::vector<std::string> argv{file};
  auto args = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < args.Length(); ++i) argv.push_back(args.Get(i).As<Napi::String>().Utf8Value());
  std::vector<std::string> envs;
  bool has_env = info[2].IsArray();
  if (has_env) {
    auto e = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < e.Length(); ++i) envs.push_back(e.Get(i).As<Napi::String>().Utf8Value());
  }
  std::string cwd = info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : std::string();
  int r = SpawnChild(file, argv, has_env ? &envs : nullptr, cwd, info[4].As<Napi::Number>().Int32Value());
  if (r < 0) ThrowSysError(env, -r, "posix_spawn", file);
  return Napi::Number::New(env, r);
}

// createGroup(size, maxMessages, maxBytes) -> id
// setDiskEngine(0 auto | 1 pool | 2 io_uring): for loops whose files are set up from now on.
Napi::Value SetDiskEngineJs(const Napi::CallbackInfo& info) {
  SetDiskEngine(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// setDiskThreads(n): the most threads the process-wide disk pool may start.
Napi::Value SetDiskThreads(const Napi::CallbackInfo& info) {
  DiskPool::Get().SetMaxThreads(info[0].As<Napi::Number>().Int32Value());
  return Napi::Number::New(info.Env(), DiskPool::Get().max_threads());
}

Napi::Value CreateGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = std::make_shared<Group>(info[0].As<Napi::Number>().Int32Value(),
                                   static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue()),
                                   static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue()));
  int r = g->Open();
  if (r < 0) ThrowSysError(env, -r, "eventfd", "making the loops' inboxes");  // kqueue: cannot fail
  return Napi::Number::New(env, RegisterGroup(std::move(g)));
}

// releaseGroup(id) -> sockets handed off but never adopted (now closed)
Napi::Value ReleaseGroupJs(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  ReleaseGroup(id);
  return Napi::Number::New(info.Env(), static_cast<double>(CloseDetached(id)));
}

Napi::Value InternJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Intern(info[0].As<Napi::String>().Utf8Value()));
}

Napi::Value InternedNameJs(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), InternedName(info[0].As<Napi::Number>().Uint32Value()));
}

// setFaults([[site, errno, rate, max, after], ...]): replaces the fault injection spec (src/faults.ts
// checks it). Returns false if there are too many entries.
Napi::Value SetFaultsJs(const Napi::CallbackInfo& info) {
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<FaultEntry> entries;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Array e = a.Get(i).As<Napi::Array>();
    const int site = e.Get(0u).As<Napi::Number>().Int32Value();
    if (site < 0 || site >= kFaultSiteCount) return Napi::Boolean::New(info.Env(), false);
    entries.push_back(FaultEntry{static_cast<FaultSite>(site), e.Get(1u).As<Napi::Number>().Int32Value(),
                                 e.Get(2u).As<Napi::Number>().DoubleValue(),
                                 static_cast<uint64_t>(e.Get(3u).As<Napi::Number>().DoubleValue()),
                                 static_cast<uint64_t>(e.Get(4u).As<Napi::Number>().DoubleValue())});
  }
  return Napi::Boolean::New(info.Env(), SetFaults(entries));
}

// faultCounts() -> injections per site, in kFaultSites order.
Napi::Value FaultCountsJs(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env(), kFaultSiteCount);
  for (int i = 0; i < kFaultSiteCount; ++i)
    out.Set(i, Napi::Number::New(info.Env(), static_cast<double>(FaultCount(static_cast<FaultSite>(i)))));
  return out;
}

// fault(site) -> the errno to inject at a site JS owns (starting a loop thread), or 0.
Napi::Value FaultJs(const Napi::CallbackInfo& info) {
  const int site = info[0].As<Napi::Number>().Int32Value();
  return Napi::Number::New(info.Env(), site >= 0 && site < kFaultSiteCount ? Fault(static_cast<FaultSite>(site)) : 0);
}

// socketKind(fd) -> { kind: 'listening' | 'connected' | 'stream' | 'datagram' | 'other', family }
// for an inherited fd (what socket activation passed), or throws EBADF.
Napi::Value SocketKindJs(const Napi::CallbackInfo& info) {
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

// connections() -> { open, peak }: established connections of every loop of this process (or of
// every process sharing its block), now and most at once.
Napi::Value ConnectionsJs(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  ConnCounts* c = ProcessConns();
  out.Set("open", static_cast<double>(c->open.load(std::memory_order_relaxed)));
  out.Set("peak", static_cast<double>(c->peak.load(std::memory_order_relaxed)));
  out.Set("maxConnections", static_cast<double>(c->max_total.load(std::memory_order_relaxed)));
  out.Set("maxPerAddress", static_cast<double>(c->max_per_addr.load(std::memory_order_relaxed)));
  out.Set("refusedMaxConnections", static_cast<double>(c->refused_total.load(std::memory_order_relaxed)));
  out.Set("refusedPerAddress", static_cast<double>(c->refused_addr.load(std::memory_order_relaxed)));
  return out;
}

// setConnectionLimits(total, perAddress): bounds on accepted connections (0: none) for every
// process sharing this block. Throws EBUSY while a connection is open.
Napi::Value SetConnectionLimitsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int r = SetConnLimits(static_cast<int64_t>(info[0].As<Napi::Number>().DoubleValue()),
                              static_cast<int64_t>(info[1].As<Napi::Number>().DoubleValue()));
  if (r < 0)
    ThrowSysError(env, -r, "setConnectionLimits",
                  r == -EBUSY ? "connections are open: set the bounds before listening (they count every connection from the first)"
                              : "the table of connections by address");
  return env.Undefined();
}

// reclaimConnections(slot): a fleet's parent gives back what a dead child process held.
Napi::Value ReclaimConnectionsJs(const Napi::CallbackInfo& info) {
  ReclaimConns(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// shareConnections(fd?) -> fd: without an fd, makes a block other processes can map (the fd to
// pass them) and counts into it; with one, counts into that block from now on.
Napi::Value ShareConnectionsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const bool make = info.Length() < 1 || info[0].IsUndefined();
  int r = make ? CreateSharedConns()
               : AttachSharedConns(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value());
  if (r < 0) ThrowSysError(env, -r, make ? "memfd_create" : "mmap", "sharing the connection counts between processes");
  return Napi::Number::New(env, make ? r : info[0].As<Napi::Number>().Int32Value());
}

// liveHandles() -> { loops, sockets, ..., diskThreads }: native objects alive, process-wide.
Napi::Value LiveHandlesJs(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  for (int i = 0; i < kLiveCount; ++i)
    out.Set(kLiveNames[i], Napi::Number::New(info.Env(), static_cast<double>(g_live[i].load(std::memory_order_relaxed))));
  out.Set("diskThreads", Napi::Number::New(info.Env(), DiskPool::Get().threads()));
  return out;
}

// setConfinement(walk: boolean): opens beneath a directory use the portable walk from now on
// (true), or the kernel's primitive where there is one (false). Process-wide.
Napi::Value SetConfinementJs(const Napi::CallbackInfo& info) {
  SetConfinement(info[0].ToBoolean() ? kConfineWalk : kConfineAuto);
  return info.Env().Undefined();
}

// confinement() -> "openat2" | "O_RESOLVE_BENEATH" | "walk": what opens beneath a directory use.
Napi::Value ConfinementJs(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), ConfinementName());
}

// What this build runs on: the poller, and which fast calls it uses (native/platform.h).
Napi::Object BuildInfo(Napi::Env env) {
  Napi::Object b = Napi::Object::New(env);
#if defined(IAPP_KQUEUE)
  b.Set("poller", "kqueue");
#else
  b.Set("poller", "epoll");
#endif
#if defined(LIBKQUEUE_HAS_POLLABLE_FD)
  b.Set("libkqueue", true);
#else
  b.Set("libkqueue", false);
#endif
#if defined(IAPP_PORTABLE)
  b.Set("portable", true);
#else
  b.Set("portable", false);
#endif
  Napi::Object calls = Napi::Object::New(env);
#if defined(IAPP_HAVE_MSG_TRUNC)
  calls.Set("msgTrunc", true);
#else
  calls.Set("msgTrunc", false);
#endif
#if defined(IAPP_HAVE_SPLICE)
  calls.Set("splice", true);
#else
  calls.Set("splice", false);
#endif
#if defined(IAPP_HAVE_IO_URING)
  calls.Set("ioUring", true);
#else
  calls.Set("ioUring", false);
#endif
#if defined(IAPP_HAVE_COPY_FILE_RANGE)
  calls.Set("copyFileRange", true);
#else
  calls.Set("copyFileRange", false);
#endif
#if defined(IAPP_HAVE_MMSG)
  calls.Set("mmsg", true);
#else
  calls.Set("mmsg", false);
#endif
  b.Set("calls", calls);
  b.Set("pollctl", SyscallName(kSysPollCtl));
  return b;
}

Napi::Value SetErrorFactoryJs(const Napi::CallbackInfo& info) {
  SetErrorFactory(info.Env(), info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

#if defined(IAPP_TEST_LEAK)
// Only in the build `node scripts/valgrind.mjs --prove-leak` (and test-asan's --prove-leak) make:
// 64 bytes allocated and dropped at every load, so the leak checks can be shown to fire. Never
// defined in a normal build.
__attribute__((noinline)) void LeakOnPurpose() {
  char* volatile p = static_cast<char*>(malloc(64));
  p[0] = 1;
}
#endif

}  // namespace
}  // namespace iapp

Napi::Object InitIapp(Napi::Env env, Napi::Object exports) {
  using namespace iapp;
#if defined(IAPP_TEST_LEAK)
  LeakOnPurpose();
#endif
  // Each worker thread loads the addon into its own env: per-thread state lives here, not in
  // globals.
  env.SetInstanceData(new AddonData());
#if defined(IAPP_KQUEUE)
  PollerProcessInit();
#endif
  exports.Set("NativeLoop", NativeLoop::Define(env));
  exports.Set("raiseFileLimit", Napi::Function::New(env, RaiseFileLimit));
  exports.Set("setErrorFactory", Napi::Function::New(env, SetErrorFactoryJs));
  exports.Set("listenSocket", Napi::Function::New(env, ListenSocket));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("createGroup", Napi::Function::New(env, CreateGroup));
  exports.Set("setDiskThreads", Napi::Function::New(env, SetDiskThreads));
  exports.Set("setDiskEngine", Napi::Function::New(env, SetDiskEngineJs));
  exports.Set("spawn", Napi::Function::New(env, Spawn));
  exports.Set("releaseGroup", Napi::Function::New(env, ReleaseGroupJs));
  exports.Set("intern", Napi::Function::New(env, InternJs));
  exports.Set("internedName", Napi::Function::New(env, InternedNameJs));
  exports.Set("setFaults", Napi::Function::New(env, SetFaultsJs));
  exports.Set("faultCounts", Napi::Function::New(env, FaultCountsJs));
  exports.Set("fault", Napi::Function::New(env, FaultJs));
  Napi::Array sites = Napi::Array::New(env, kFaultSiteCount);
  for (int i = 0; i < kFaultSiteCount; ++i) sites.Set(i, kFaultSites[i]);
  exports.Set("faultSites", sites);
  exports.Set("liveHandles", Napi::Function::New(env, LiveHandlesJs));
  exports.Set("setConfinement", Napi::Function::New(env, SetConfinementJs));
  exports.Set("confinement", Napi::Function::New(env, ConfinementJs));
  exports.Set("connections", Napi::Function::New(env, ConnectionsJs));
  exports.Set("socketKind", Napi::Function::New(env, SocketKindJs));
  exports.Set("shareConnections", Napi::Function::New(env, ShareConnectionsJs));
  exports.Set("setConnectionLimits", Napi::Function::New(env, SetConnectionLimitsJs));
  exports.Set("reclaimConnections", Napi::Function::New(env, ReclaimConnectionsJs));
  Napi::Array names = Napi::Array::New(env, kSysCount);
  for (int i = 0; i < kSysCount; ++i) names.Set(i, SyscallName(i));
  exports.Set("syscallNames", names);
  Napi::Object c = Napi::Object::New(env);
  c.Set("recordStride", kRecordStride);
  c.Set("defaultTurnBudgetUs", static_cast<double>(Loop::kDefaultTurnBudgetNs) / 1000);
  c.Set("recordCapacity", kRecordCapacity);
  exports.Set("constants", c);
  exports.Set("build", BuildInfo(env));
  return exports;
}

NODE_API_MODULE(iapp, InitIapp)
