#include "udp.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errors.h"
#include "listener.h"
#include "platform.h"
#include "sys.h"

namespace iapp {

namespace {
constexpr int kBatch = 64;                // datagrams per recvmmsg/sendmmsg
constexpr int kRounds = 16;               // batches per readiness event, then let other fds run
constexpr size_t kMaxDatagram = 65536;

// Datagrams are discarded: every message of a batch lands in the same per-thread scratch space.
uint8_t* Scratch() {
  static thread_local std::unique_ptr<uint8_t[]> buf(new uint8_t[kMaxDatagram]);
  return buf.get();
}

struct BindCtx {
  const UdpSpec* spec;
  int* sys;
};

int BindUdp(void* ctx, int port) {
  auto* c = static_cast<BindCtx*>(ctx);
  SockAddr addr;
  int r = MakeInetAddr(c->spec->host, port != 0 ? port : c->spec->port, &addr);
  if (r < 0) {
    *c->sys = kSysBind;
    return r;
  }
  int fd = SysSocket(addr.family(), SOCK_DGRAM);
  if (fd < 0) {
    *c->sys = kSysSocket;
    return fd;
  }
  r = SetReuse(fd, true);
  if (r < 0) {
    *c->sys = kSysSetsockopt;
    SysClose(fd);
    return r;
  }
  fd = BindOrClose(fd, reinterpret_cast<const sockaddr*>(&addr.ss), addr.len);
  if (fd < 0) *c->sys = kSysBind;
  return fd;
}
}  // namespace

Udp* Udp::Open(Loop* loop, const UdpSpec& spec, int* err, int* sys) {
  int fd;
  std::string key;
  if (spec.fd >= 0) {
    int type = 0;
    socklen_t len = sizeof type;
    *sys = kSysSetsockopt;
    if (getsockopt(spec.fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
      *err = errno;
      return nullptr;
    }
    if (type != SOCK_DGRAM) {
      *err = EPROTOTYPE;
      return nullptr;
    }
    *sys = kSysSocket;
    fd = fcntl(spec.fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      *err = errno;
      return nullptr;
    }
    SetNonblockCloexec(fd);
  } else {
    BindCtx ctx{&spec, sys};
    if (spec.port == 0 && spec.peer_host.empty()) {
      key = "udp0|" + spec.group + "|" + spec.host;
      fd = BindGroupPort(key, BindUdp, &ctx);
    } else {
      fd = BindUdp(&ctx, spec.port);
    }
    if (fd < 0) {
      *err = -fd;
      return nullptr;
    }
  }
  if (!spec.peer_host.empty()) {
    SockAddr peer;
    int r = MakeInetAddr(spec.peer_host, spec.peer_port, &peer);
    if (r == 0 && connect(fd, reinterpret_cast<const sockaddr*>(&peer.ss), peer.len) < 0) r = -errno;
    if (r < 0) {
      *err = -r;
      *sys = kSysConnect;
      SysClose(fd);
      if (!key.empty()) ReleaseGroupPort(key);
      return nullptr;
    }
  }
  auto* u = new Udp(loop);
  u->fd = fd;
  u->group_key_ = key;
  loop->Register(u);
  u->SetSink(spec.sink);
  return u;
}

void Udp::Rearm() {
  if (dead) return;
  uint32_t w = kBothFilters | (sink_ ? kWantRead : 0u) | (push_ ? kWantWrite : 0u);
  if (w != want) {
    want = w;
    loop_->poller().Update(this);
  }
}

void Udp::SetSink(bool on) {
  sink_ = on;
  Rearm();
}

void Udp::Push(std::shared_ptr<const std::vector<uint8_t>> buf) {
  if (dead || buf->empty() || buf->size() > kMaxDatagram) return;
  push_ = std::move(buf);
  Rearm();
}

void Udp::StopPush() {
  push_.reset();
  Rearm();
}

void Udp::OnEvent(uint32_t events) {
  // The error of an ICMP message (ECONNREFUSED from a closed port) as kqueue reported it: over
  // libkqueue the socket has no longer got it (see Watcher::so_error), so no recv or send will.
  if (so_error != 0) {
    loop_->CountError(so_error);
    so_error = 0;
  }
  if ((events & (kReadable | kError)) && sink_) Drain();
  if (dead) return;
  if ((events & kWritable) && push_) PushMore();
}

void Udp::Drain() {
  LoopStats& st = loop_->stats();
  uint8_t* scratch = Scratch();
  for (int round = 0; round < kRounds; ++round) {
#if defined(IAPP_HAVE_MMSG)
    mmsghdr msgs[kBatch];
    iovec iov[kBatch];
    for (int i = 0; i < kBatch; ++i) {
      iov[i] = iovec{scratch, kMaxDatagram};
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      loop_->CountError(errno);  // e.g. ECONNREFUSED from an ICMP error: the socket stays usable
      return;
    }
    for (int i = 0; i < n; ++i) bytes_in += msgs[i].msg_len;
    for (int i = 0; i < n; ++i) st.bytes_in += msgs[i].msg_len;
    datagrams_in += n;
    st.datagrams_in += n;
    if (n < kBatch || loop_->VisitSpent()) return;
#else
    for (int i = 0; i < kBatch; ++i) {
      ssize_t r = recv(fd, scratch, kMaxDatagram, 0);
      if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) loop_->CountError(errno);
        return;
      }
      bytes_in += r;
      st.bytes_in += r;
      ++datagrams_in;
      ++st.datagrams_in;
    }
    if (loop_->VisitSpent()) return;
#endif
  }
}

void Udp::PushMore() {
  LoopStats& st = loop_->stats();
  const size_t len = push_->size();
  for (int round = 0; round < kRounds; ++round) {
#if defined(IAPP_HAVE_MMSG)
    mmsghdr msgs[kBatch];
    iovec iov{const_cast<uint8_t*>(push_->data()), len};
    for (int i = 0; i < kBatch; ++i) {
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov;
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = sendmmsg(fd, msgs, kBatch, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ENOBUFS) return;
      loop_->CountError(errno);  // ECONNREFUSED: the peer's port was closed; keep trying
      return;
    }
    datagrams_out += n;
    st.datagrams_out += n;
    bytes_out += static_cast<uint64_t>(n) * len;
    st.bytes_out += static_cast<uint64_t>(n) * len;
    if (n < kBatch) {
      // sendmmsg drops the error of the message that stopped it (ECONNREFUSED after an ICMP
      // port-unreachable, for one): one plain send says what it was, or sends one more.
      ssize_t r = send(fd, push_->data(), len, MSG_DONTWAIT);
      if (r >= 0) {
        ++datagrams_out;
        ++st.datagrams_out;
        bytes_out += r;
        st.bytes_out += r;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ENOBUFS) {
        loop_->CountError(errno);
      }
      return;
    }
    if (loop_->VisitSpent()) return;
#else
    for (int i = 0; i < kBatch; ++i) {
      ssize_t r = send(fd, push_->data(), len, 0);
      if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ENOBUFS)
          loop_->CountError(errno);
        return;
      }
      ++datagrams_out;
      ++st.datagrams_out;
      bytes_out += r;
      st.bytes_out += r;
    }
    if (loop_->VisitSpent()) return;
#endif
  }
}

long Udp::Send(const uint8_t* p, size_t n) {
  if (dead) return -EBADF;
  ssize_t r;
  do r = send(fd, p, n, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  ++datagrams_out;
  ++loop_->stats().datagrams_out;
  bytes_out += r;
  loop_->stats().bytes_out += r;
  return r;
}

void Udp::Release() {
  if (!group_key_.empty()) ReleaseGroupPort(group_key_);
  group_key_.clear();
}

void Udp::Close() {
  if (dead) return;
  loop_->Retire(this);
  SysClose(fd);
  fd = -1;
  push_.reset();
  Release();
}

void Udp::Abandon() {
  if (fd >= 0) SysClose(fd);
  fd = -1;
  Release();
}

}  // namespace iapp
