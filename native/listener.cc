#include "listener.h"

#include <cerrno>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "syscalls.h"
#include "sys.h"

namespace iapp {

namespace {

constexpr int kAcceptBatch = 128;  // accepts per readiness event, then let other fds run

// Process-wide: loops are threads of one process, and a listening address is a process-wide thing.
// - A shared listener is one socket: the first loop creates it, the others get a dup() of it,
//   each loop owning its dup. The socket closes when the last loop closes its dup.
// - With SO_REUSEPORT and port 0, the first loop's ephemeral port is recorded, so the other loops
//   of the same group bind the same port instead of each getting its own.
struct Entry {
  int fd = -1;  // the shared socket (shared mode only)
  int port = 0;
  int refs = 0;
  bool unlink_path = false;
};
std::mutex registry_mu;
std::map<std::string, Entry>& Registry() {
  static auto* m = new std::map<std::string, Entry>();  // never destroyed: threads may outlive exit
  return *m;
}

int BindAndListen(const ListenSpec& spec, const SockAddr& addr, bool reuseport, int* sys) {
  int fd = SysSocket(addr.family(), SOCK_STREAM);
  if (fd < 0) {
    *sys = kSysSocket;
    return fd;
  }
  int r = 0;
  if (addr.family() != AF_UNIX) {
    r = SetReuse(fd, reuseport);
    if (r == 0 && addr.family() == AF_INET6)
      r = SetSockOptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, spec.v6only ? 1 : 0);
    if (r < 0) {
      *sys = kSysSetsockopt;
      SysClose(fd);
      return r;
    }
  }
  fd = BindOrClose(fd, reinterpret_cast<const sockaddr*>(&addr.ss), addr.len);
  if (fd < 0) {
    *sys = kSysBind;
    return fd;
  }
  if (addr.family() == AF_UNIX && spec.path_mode >= 0 && chmod(spec.path.c_str(), static_cast<mode_t>(spec.path_mode)) < 0) {
    // Between bind and listen nobody can connect yet (connect gets ECONNREFUSED), so no client
    // ever reaches the socket under the umask's mode. bind made the file: take it back.
    r = -errno;
    *sys = kSysChmod;
    SysClose(fd);
    unlink(spec.path.c_str());
    return r;
  }
  if ((r = SysListen(fd, spec.backlog)) < 0) {
    *sys = kSysListen;
    SysClose(fd);
    if (addr.family() == AF_UNIX) unlink(spec.path.c_str());  // the file bind made, never left behind
    return r;
  }
  return fd;
}

// An inherited socket must be a listening stream socket; each loop works on its own dup of it,
// watched with EPOLLEXCLUSIVE like a shared listener. The inherited fd itself is left open.
int AdoptListening(int inherited, int* sys) {
  *sys = kSysSetsockopt;
  const int type = SysSockType(inherited);
  if (type < 0) return type;
  if (type != SOCK_STREAM) return -EPROTOTYPE;
  if (SysSockListening(inherited) == 0) {
    *sys = kSysListen;
    return -EINVAL;
  }
  *sys = kSysSocket;
  return SysDupNonblock(inherited);
}

}  // namespace

int OpenListeningSocket(const ListenSpec& spec, int* sys) {
  SockAddr addr;
  int r = spec.path.empty() ? MakeInetAddr(spec.host, spec.port, &addr) : MakeUnixAddr(spec.path, &addr);
  if (r < 0) {
    *sys = kSysBind;
    return r;
  }
  return BindAndListen(spec, addr, false, sys);
}

int BindGroupPort(const std::string& key, int (*bind_fn)(void* ctx, int port), void* ctx) {
  std::lock_guard<std::mutex> lock(registry_mu);
  auto it = Registry().find(key);
  int fd = bind_fn(ctx, it == Registry().end() ? 0 : it->second.port);
  if (fd < 0) return fd;
  if (it != Registry().end()) {
    ++it->second.refs;
  } else {
    sockaddr_storage ss;
    unsigned len = sizeof ss;
    SysSockName(fd, false, &ss, &len);
    std::string h;
    int port = 0;
    DescribeAddr(reinterpret_cast<sockaddr*>(&ss), len, &h, &port);
    Registry()[key] = Entry{-1, port, 1, false};
  }
  return fd;
}

void ReleaseGroupPort(const std::string& key) {
  std::lock_guard<std::mutex> lock(registry_mu);
  auto it = Registry().find(key);
  if (it != Registry().end() && --it->second.refs <= 0) Registry().erase(it);
}

namespace {
struct ReuseportCtx {
  const ListenSpec* spec;
  int* sys;
};
int BindReuseport(void* ctx, int port) {
  auto* c = static_cast<ReuseportCtx*>(ctx);
  SockAddr addr;
  int r = MakeInetAddr(c->spec->host, port != 0 ? port : c->spec->port, &addr);
  if (r < 0) {
    *c->sys = kSysBind;
    return r;
  }
  return BindAndListen(*c->spec, addr, true, c->sys);
}

// A shared listener is one socket per group and address: the first loop binds it and keeps the
// original in the registry; every loop (the first too) works on its own dup.
int OpenShared(const ListenSpec& spec, const SockAddr& addr, const std::string& key, int* sys) {
  std::lock_guard<std::mutex> lock(registry_mu);
  auto it = Registry().find(key);
  int base;
  if (it != Registry().end()) {
    base = it->second.fd;
  } else {
    base = BindAndListen(spec, addr, false, sys);
    if (base < 0) return base;
  }
  int fd = SysDupNonblock(base);
  if (fd < 0) {
    *sys = kSysSocket;
    if (it == Registry().end()) SysClose(base);
    return fd;
  }
  if (it != Registry().end()) ++it->second.refs;
  else Registry()[key] = Entry{base, 0, 1, !spec.path.empty()};
  return fd;
}
}  // namespace

Listener* Listener::Open(Loop* loop, const ListenSpec& spec, int* err, int* sys) {
  ListenSpec s = spec;
  SockAddr addr;
  std::string key;
  int fd;
  if (spec.fd >= 0) {
    fd = AdoptListening(spec.fd, sys);
    s.shared = true;
    s.path.clear();  // the path belongs to whoever made the socket: never unlink it
  } else {
    int r = spec.path.empty() ? MakeInetAddr(spec.host, spec.port, &addr) : MakeUnixAddr(spec.path, &addr);
    if (r < 0) {
      *err = -r;
      *sys = kSysBind;
      return nullptr;
    }
    const bool is_unix = !spec.path.empty();
    if (spec.shared || is_unix) {
      s.shared = true;
      key = "shared|" + spec.group + "|" + (is_unix ? spec.path : spec.host + "|" + std::to_string(spec.port));
      fd = OpenShared(s, addr, key, sys);
    } else if (spec.port == 0) {
      // Port 0 with SO_REUSEPORT: the group's first loop gets a port, the others join it.
      key = "port0|" + spec.group + "|" + spec.host;
      ReuseportCtx ctx{&spec, sys};
      fd = BindGroupPort(key, BindReuseport, &ctx);
    } else {
      fd = BindAndListen(spec, addr, true, sys);
    }
  }
  if (fd < 0) {
    *err = -fd;
    return nullptr;
  }
  auto* l = new Listener(loop, s);
  l->fd = fd;
  l->registry_key_ = key;
  unsigned local_len = sizeof l->local_.ss;
  SysSockName(fd, false, &l->local_.ss, &local_len);
  l->local_.len = local_len;
  if (!s.path.empty()) l->local_ = addr;  // getsockname of a Unix socket may omit the path on some systems
  l->priority = static_cast<int8_t>(spec.socket.priority);
  loop->Register(l);
  loop->SetControl(l, true);
  l->want = kWantRead | (s.shared ? static_cast<uint32_t>(kExclusive) : 0u);
  loop->poller().Update(l);
  return l;
}

void Listener::OnEvent(uint32_t events) {
  for (int i = 0; i < kAcceptBatch; ++i) {
    sockaddr_storage peer;
    unsigned peer_len = sizeof peer;
    int c = SysAccept(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len);
    if (c >= 0) {
      // The connection bounds are checked before a socket exists: one over them costs an accept
      // and a reset, never a record, a JS call or a buffer.
      Admission admission;
      const AdmitResult admitted = admission.Take(reinterpret_cast<const sockaddr*>(&peer), peer_len);
      if (admitted != kAdmitted) {
        CloseWithReset(c);  // the client sees ECONNRESET at once rather than a connection that hangs
        ++(admitted == kRefusedTotal ? loop_->stats().refused_total : loop_->stats().refused_addr);
        if (loop_->VisitSpent()) return;
        continue;
      }
      Socket* s = Socket::Adopt(loop_, c, false, spec_.socket, local_.family() == AF_UNIX ? 0 : 1);
      s->Admit(std::move(admission));
      ++loop_->stats().accepted;
      if (!spec_.socket.quiet) loop_->Emit(kRecAccept, id)[0] = static_cast<double>(s->id);
      if (loop_->VisitSpent()) return;  // still readable: the next turn accepts the rest
      continue;
    }
    const int err = -c;
    if (err == EAGAIN || err == EWOULDBLOCK) return;
    // The connection went away before we took it, or a transient network error the next accept
    // will not see: count it and carry on.
    if (err == ECONNABORTED || err == EPROTO || err == EPERM || err == ENETDOWN ||
        err == ENOPROTOOPT || err == EHOSTDOWN ||
#ifdef ENONET  // Linux only: FreeBSD and macOS have no ENONET
        err == ENONET ||
#endif
        err == EHOSTUNREACH || err == EOPNOTSUPP || err == ENETUNREACH) {
      loop_->CountError(err);
      continue;
    }
    // EMFILE, ENFILE, ENOBUFS, ENOMEM and anything unexpected: do not spin on a level-triggered
    // listener that will stay readable.
    return OnExhausted(err);
  }
}

void Listener::OnExhausted(int err) {
  loop_->CountError(err);
  loop_->RestoreReserveFd();  // if an earlier EMFILE kept it from being reopened
  size_t shed = 0;
  if (spec_.shed && (err == EMFILE || err == ENFILE)) {
    // The reserve-fd technique: give back the fd held in reserve, take the oldest pending
    // connection and close it at once so its client fails fast instead of waiting in the backlog.
    int reserve = loop_->TakeReserveFd();
    if (reserve >= 0) {
      SysClose(reserve);
      int c = SysAccept(fd, nullptr, nullptr);
      if (c >= 0) {
        CloseWithReset(c);
        ++shed;
      }
      loop_->RestoreReserveFd();
    }
  }
  loop_->stats().accept_shed += shed;
  ++loop_->stats().accept_paused;
  // Pending connections wait in the kernel's backlog; JS resumes the listener after a backoff.
  Pause();
  double* v = loop_->Emit(kRecListenPaused, id);
  v[0] = err;
  v[1] = static_cast<double>(shed);
}

void Listener::OnPollError(int err) {
  // The kernel would not watch this listener (ENOMEM, ENOSPC): treat like exhaustion, retry later.
  OnExhausted(err);
}

void Listener::Pause() {
  if (dead || paused_) return;
  paused_ = true;
  want &= ~kWantRead;
  loop_->poller().Update(this);
}

void Listener::Resume() {
  if (dead || !paused_) return;
  paused_ = false;
  want |= kWantRead;
  loop_->poller().Update(this);
}

void Listener::Release() {
  if (registry_key_.empty()) {
    if (!spec_.path.empty()) unlink(spec_.path.c_str());
    return;
  }
  std::lock_guard<std::mutex> lock(registry_mu);
  auto it = Registry().find(registry_key_);
  if (it == Registry().end()) return;
  if (--it->second.refs > 0) return;
  if (it->second.fd >= 0) SysClose(it->second.fd);
  if (it->second.unlink_path) unlink(spec_.path.c_str());
  Registry().erase(it);
}

void Listener::Close() {
  if (dead) return;
  loop_->Retire(this);
  SysClose(fd);
  fd = -1;
  Release();
}

void Listener::Abandon() {
  if (fd >= 0) SysClose(fd);
  fd = -1;
  Release();
}

}  // namespace iapp
