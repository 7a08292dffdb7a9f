#include "udp.h"

#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "syscalls.h"
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
    *sys = kSysSetsockopt;
    const int type = SysSockType(spec.fd);
    if (type != SOCK_DGRAM) {
      *err = type < 0 ? -type : EPROTOTYPE;
      return nullptr;
    }
    *sys = kSysSocket;
    fd = SysDupNonblock(spec.fd);
    if (fd < 0) {
      *err = -fd;
      return nullptr;
    }
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
    if (r == 0) r = SysConnect(fd, reinterpret_cast<const sockaddr*>(&peer.ss), peer.len);
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
  u->high_water_ = spec.high_water;
  loop->Register(u);
  u->SetRead(spec.read);
  return u;
}

void Udp::Rearm() {
  if (dead) return;
  uint32_t w = kBothFilters | (read_ != kUdpPaused ? kWantRead : 0u) | (push_ || queued() > 0 ? kWantWrite : 0u);
  if (w != want) {
    want = w;
    loop_->poller().Update(this);
  }
}

void Udp::SetRead(int mode) {
  read_ = mode;
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
    if (read_ == kUdpJs) ++send_errors;  // as DrainToJs counts the same error read from the socket
    loop_->CountError(so_error);
    so_error = 0;
  }
  if (events & (kReadable | kError)) {
    if (read_ == kUdpSink) Drain();
    else if (read_ == kUdpJs) DrainToJs();
  }
  if (dead) return;
  if (events & kWritable) {
    if (queued() > 0) FlushQueue();
    if (!dead && push_ && queued() == 0) PushMore();
  }
  if (!dead) Rearm();
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
    int n = SysRecvMmsgPlain(fd, msgs, kBatch);
    if (n < 0) {
      if (n == -EAGAIN || n == -EWOULDBLOCK) return;
      loop_->CountError(-n);  // e.g. ECONNREFUSED from an ICMP error: the socket stays usable
      return;
    }
    for (int i = 0; i < n; ++i) bytes_in += msgs[i].msg_len;
    for (int i = 0; i < n; ++i) st.bytes_in += msgs[i].msg_len;
    datagrams_in += n;
    st.datagrams_in += n;
    if (n < kBatch || loop_->VisitSpent()) return;
#else
    for (int i = 0; i < kBatch; ++i) {
      ssize_t r = SysRecvPlain(fd, scratch, kMaxDatagram);
      if (r < 0) {
        if (r != -EAGAIN && r != -EWOULDBLOCK) loop_->CountError(static_cast<int>(-r));
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

namespace {
constexpr int kJsBatch = 32;  // datagrams per recvmmsg for JS: one buffer and one record each
// recvmmsg needs room for a whole datagram per message: a per-thread scratch of kJsBatch slots of
// 64 KiB, whose untouched pages stay unallocated (a slot holding 100 bytes touches one page).
uint8_t* JsScratch() {
  static thread_local std::unique_ptr<uint8_t[]> buf(new uint8_t[kJsBatch * kMaxDatagram]);
  return buf.get();
}
}  // namespace

void Udp::DrainToJs() {
  LoopStats& st = loop_->stats();
  uint8_t* scratch = JsScratch();
  for (int round = 0; round < kRounds; ++round) {
    mmsghdr msgs[kJsBatch];
    iovec iov[kJsBatch];
    sockaddr_storage from[kJsBatch];
    for (int i = 0; i < kJsBatch; ++i) {
      iov[i] = iovec{scratch + static_cast<size_t>(i) * kMaxDatagram, kMaxDatagram};
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    const int n = SysRecvMmsg(fd, msgs, kJsBatch);
    if (n < 0) {
      if (n != -EAGAIN && n != -EWOULDBLOCK && n != -EINTR) {
        // An ICMP error for an earlier send (ECONNREFUSED...): counted; the socket goes on.
        ++send_errors;
        loop_->CountError(-n);
      }
      return;
    }
    // One buffer for the batch, IPv6 senders' addresses after the payloads.
    size_t total = 0;
    for (int i = 0; i < n; ++i) total += msgs[i].msg_len + (from[i].ss_family == AF_INET6 ? 16 : 0);
    uint8_t* blob = loop_->NewBlob(total);
    if (blob == nullptr) return;  // the env is stopping: these are lost with it
    size_t at = 0;
    for (int i = 0; i < n; ++i) {
      const size_t len = msgs[i].msg_len;
      memcpy(blob + at, iov[i].iov_base, len);
      double* v = loop_->Emit(kRecDatagram, id);
      v[0] = static_cast<double>(at);
      v[1] = static_cast<double>(len);
      at += len;
      if (from[i].ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&from[i]);
        v[2] = 4;
        v[3] = ntohs(a->sin_port);
        v[4] = ntohl(a->sin_addr.s_addr);
      } else if (from[i].ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&from[i]);
        v[2] = 6;
        v[3] = ntohs(a->sin6_port);
        v[4] = static_cast<double>(at);  // the 16 address bytes, in the blob
        memcpy(blob + at, &a->sin6_addr, 16);
        at += 16;
      }
      bytes_in += len;
      st.bytes_in += len;
    }
    datagrams_in += n;
    st.datagrams_in += n;
    if (n < kJsBatch || loop_->VisitSpent()) return;
  }
}

int Udp::SendBatch(const uint8_t* p, size_t len, size_t count) {
  if (dead) return -EBADF;
  // Check the whole batch first: a malformed one queues nothing.
  size_t at = 0;
  for (size_t k = 0; k < count; ++k) {
    if (len - at < kUdpHeader) return -EINVAL;
    uint32_t n;
    memcpy(&n, p + at, 4);
    if (n > kMaxDatagram || len - at - kUdpHeader < n) return -EINVAL;
    at += kUdpHeader + n;
  }
  if (at != len) return -EINVAL;
  if (outq_head_ == outq_.size()) {
    outq_.clear();
    outq_head_ = 0;
  }
  outq_.insert(outq_.end(), p, p + len);
  FlushQueue();
  Rearm();
  if (queued() >= high_water_) {
    need_drain_ = true;
    return 0;
  }
  return 1;
}

void Udp::FlushQueue() {
  LoopStats& st = loop_->stats();
  while (queued() > 0) {
    mmsghdr msgs[kBatch];
    iovec iov[kBatch];
    sockaddr_storage to[kBatch];
    int cnt = 0;
    for (size_t at = outq_head_; at < outq_.size() && cnt < kBatch; ++cnt) {
      const uint8_t* h = outq_.data() + at;
      uint32_t n;
      uint16_t port;
      memcpy(&n, h, 4);
      memcpy(&port, h + 6, 2);
      memset(&msgs[cnt].msg_hdr, 0, sizeof msgs[cnt].msg_hdr);
      iov[cnt] = iovec{const_cast<uint8_t*>(h + kUdpHeader), n};
      msgs[cnt].msg_hdr.msg_iov = &iov[cnt];
      msgs[cnt].msg_hdr.msg_iovlen = 1;
      if (h[4] == 4) {
        auto* a = reinterpret_cast<sockaddr_in*>(&to[cnt]);
        memset(a, 0, sizeof *a);
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        memcpy(&a->sin_addr, h + 8, 4);
        msgs[cnt].msg_hdr.msg_name = a;
        msgs[cnt].msg_hdr.msg_namelen = sizeof *a;
      } else if (h[4] == 6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&to[cnt]);
        memset(a, 0, sizeof *a);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        memcpy(&a->sin6_addr, h + 8, 16);
        msgs[cnt].msg_hdr.msg_name = a;
        msgs[cnt].msg_hdr.msg_namelen = sizeof *a;
      }
      at += kUdpHeader + n;
    }
    const int sent = SysSendMmsg(fd, msgs, cnt);
    if (sent == -EAGAIN || sent == -EWOULDBLOCK || sent == -ENOBUFS) break;  // writable later
    // A datagram the kernel refuses (EMSGSIZE, ENETUNREACH, ECONNREFUSED after an ICMP error) is
    // counted and dropped, as the network would drop it: the ones after it still go.
    const int done = sent < 0 ? 1 : sent;
    if (sent < 0) {
      ++send_errors;
      loop_->CountError(-sent);
    }
    for (int i = 0; i < done; ++i) {
      const size_t n = iov[i].iov_len;
      outq_head_ += kUdpHeader + n;
      if (sent >= 0) {
        ++datagrams_out;
        ++st.datagrams_out;
        bytes_out += n;
        st.bytes_out += n;
      }
    }
    if (loop_->VisitSpent()) break;
  }
  if (queued() == 0) {
    outq_.clear();
    outq_head_ = 0;
    if (need_drain_) {
      need_drain_ = false;
      loop_->Emit(kRecUdpDrain, id);
    }
  } else if (outq_head_ > (1u << 20) && outq_head_ * 2 > outq_.size()) {
    // A queue that never empties must not grow without bound: drop the sent prefix.
    outq_.erase(outq_.begin(), outq_.begin() + static_cast<long>(outq_head_));
    outq_head_ = 0;
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
    int n = SysSendMmsgPlain(fd, msgs, kBatch);
    if (n < 0) {
      if (n == -EAGAIN || n == -EWOULDBLOCK || n == -ENOBUFS) return;
      loop_->CountError(-n);  // ECONNREFUSED: the peer's port was closed; keep trying
      return;
    }
    datagrams_out += n;
    st.datagrams_out += n;
    bytes_out += static_cast<uint64_t>(n) * len;
    st.bytes_out += static_cast<uint64_t>(n) * len;
    if (n < kBatch) {
      // sendmmsg drops the error of the message that stopped it (ECONNREFUSED after an ICMP
      // port-unreachable, for one): one plain send says what it was, or sends one more.
      ssize_t r = SysSendFlags(fd, push_->data(), len, MSG_DONTWAIT);
      if (r >= 0) {
        ++datagrams_out;
        ++st.datagrams_out;
        bytes_out += r;
        st.bytes_out += r;
      } else if (r != -EAGAIN && r != -EWOULDBLOCK && r != -ENOBUFS) {
        loop_->CountError(static_cast<int>(-r));
      }
      return;
    }
    if (loop_->VisitSpent()) return;
#else
    for (int i = 0; i < kBatch; ++i) {
      ssize_t r = SysSendFlags(fd, push_->data(), len, 0);
      if (r < 0) {
        if (r != -EAGAIN && r != -EWOULDBLOCK && r != -ENOBUFS) loop_->CountError(static_cast<int>(-r));
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
  ssize_t r = SysSendFlags(fd, p, n, 0);
  if (r < 0) return r;
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
  outq_.clear();
  outq_head_ = 0;
  Release();
}

void Udp::Abandon() {
  if (fd >= 0) SysClose(fd);
  fd = -1;
  Release();
}

}  // namespace iapp
