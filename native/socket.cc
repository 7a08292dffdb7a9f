#include "socket.h"

#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "syscalls.h"
#include "dialer.h"
#include "file.h"
#include "idle.h"
#include "pipe.h"
#include "sys.h"

namespace iapp {

namespace {
// One read into the arena: as large as an arena, as the C read() sink reads. Each recv() that
// frees receive space can send a window update whose ACK makes this CPU push the peer's next
// segments (loopback, in softirq): fewer, larger reads leave more of that work to the sender.
constexpr size_t kDataReadMax = 256 * 1024;
constexpr size_t kDataBudget = 256 * 1024;     // per socket per event, so one socket cannot hog
constexpr size_t kSinkReadMax = 1 << 20;       // MSG_TRUNC discards this much per call
constexpr size_t kSinkBudget = 16 << 20;
constexpr size_t kChunkMin = 16 * 1024;        // small queued writes share chunks
constexpr size_t kPushBudget = 4 << 20;        // pushed bytes per socket per event

bool IsInet(int fd) {
  sockaddr_storage ss;
  unsigned len = sizeof ss;
  if (SysSockName(fd, false, &ss, &len) < 0) return false;
  return ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
}
}  // namespace

Socket::Socket(Loop* loop, int fd, bool connecting, const SocketOptions& opts)
    : Handle(loop, Kind::kSocket), opts_(opts), connecting_(connecting) {
  this->fd = fd;
}

Socket* Socket::Adopt(Loop* loop, int fd, bool connecting, const SocketOptions& opts, int inet_hint) {
#ifdef SO_NOSIGPIPE
  SetSockOptInt(fd, SOL_SOCKET, SO_NOSIGPIPE, 1);
#endif
  const bool inet = inet_hint >= 0 ? inet_hint == 1 : IsInet(fd);
  // Fewer wakes per GB: on loopback the sender's core runs the receiver's wake-up, so a reader
  // woken for every segment slows its peer (measured: one stream into a sink went 1.3 -> 5.7 GB/s
  // with 256 KiB).
  if (opts.rcvlowat > 0) SetSockOptInt(fd, SOL_SOCKET, SO_RCVLOWAT, opts.rcvlowat);
  auto* s = new Socket(loop, fd, connecting, opts);
  s->inet_ = inet;
  s->nodelay_pending_ = opts.no_delay && inet;
  s->priority = static_cast<int8_t>(opts.priority);
  loop->Register(s);
  if (opts.quiet) loop->QuietOpened();
  if (connecting) loop->SetControl(s, true);
  else s->Established();
  // Best effort at accept time (nobody to throw to): a refusal is counted.
  if (opts.keepalive && inet) {
    if (int r = s->SetKeepAlive(true, opts.keepalive_idle_s, 0, 0); r < 0) loop->CountError(-r);
  }
  if (opts.idle_timeout_ns > 0) {
    s->idle_timeout_ns = opts.idle_timeout_ns;
    if (int r = loop->idle()->Set(s, opts.idle_timeout_ns); r < 0) loop->CountError(-r);
  }
  s->Rearm();
  return s;
}

Socket* Socket::Connect(Loop* loop, const SockAddr& remote, const SockAddr* local,
                        const SocketOptions& opts, int* err, int* sys) {
  int fd = SysSocket(remote.family(), SOCK_STREAM);
  if (fd < 0) {
    *err = -fd;
    *sys = kSysSocket;
    return nullptr;
  }
  if (local != nullptr) {
#ifdef IP_BIND_ADDRESS_NO_PORT
    // Binding only the address lets the kernel pick the port at connect time, per destination,
    // so one source address is not limited to one ephemeral range in total.
    if (reinterpret_cast<const sockaddr_in*>(&local->ss)->sin_port == 0)
      SetSockOptInt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1);
#endif
    if (int r = SysBind(fd, reinterpret_cast<const sockaddr*>(&local->ss), local->len); r < 0) {
      *err = -r;
      *sys = kSysBind;
      SysClose(fd);
      return nullptr;
    }
  }
  int r = SysConnect(fd, reinterpret_cast<const sockaddr*>(&remote.ss), remote.len);
  if (r < 0 && r != -EINPROGRESS) {
    *err = -r;
    *sys = kSysConnect;
    SysClose(fd);
    return nullptr;
  }
  // Even an immediate success is reported through writability, so the connect event always
  // arrives from the loop, after connect() has returned the id to JS.
  return Adopt(loop, fd, true, opts, remote.family() == AF_UNIX ? 0 : 1);
}

void Socket::Rearm() {
  if (dead) return;
  uint32_t want = kBothFilters;
  if (connecting_) {
    want |= kWantWrite;
  } else {
    if (!rd_eof_ && (pipe_out != nullptr ? PipeWantsRead() : opts_.read_mode != kReadPaused))
      want |= kWantRead;
    if (WantsWrite()) want |= kWantWrite;
  }
  if (want != this->want) {
    this->want = want;
    loop_->poller().Update(this);
  }
}

void Socket::OnEvent(uint32_t ev) {
  if (connecting_) {
    // Writable with no error or hang-up is a completed connect (epoll, kqueue and poll(2) all
    // report a failed one with an error or EOF): SO_ERROR is read only then.
    if (!(ev & (kError | kHangup))) {
      if (ev & kWritable) OnConnected();
      return;
    }
    int e = -TakeSocketError(this);
    if (e != 0) Fail(e, kSysConnect);
    else OnConnected();
    return;
  }
  if ((ev & kError) && !(ev & kReadable)) {
    int e = -TakeSocketError(this);
    if (e != 0) {
      Fail(e, kSysPoll);
      return;
    }
  }
  if ((ev & (kReadable | kHangup | kError)) && (want & kWantRead)) {
    if (pipe_out != nullptr) pipe_out->Pump();
    else OnReadable();
    if (dead) return;
  }
  if (ev & kWritable) OnWritable();
}

void Socket::Established() {
  established_ = true;
  loop_->ConnOpened();
}

void Socket::OnConnected() {
  connecting_ = false;
  loop_->SetControl(this, false);
  ++loop_->stats().connected;
  Established();
  if (!opts_.quiet) loop_->Emit(kRecConnect, id);
  if (qhead_ < queue_.size()) {
    if (Flush() < 0) return;
  }
  MaybeShutdown();
  if (!dead) Rearm();
  if (!dead && dialer != nullptr) dialer->OnEstablished(this);
}

int Socket::WriteState(WriteOp op) const {
  if (dead) return -EBADF;
  if (end_requested_ || wr_shut_) return -EPIPE;
  // Into a running pipe's stream a write would land at an arbitrary point. A held pipe takes
  // the bytes its source had delivered to JS: those go first.
  if (pipe_in != nullptr && !(op == kWriteFeed && pipe_in->held())) return -EBUSY;
  // A file range queued behind a push would never get its turn.
  if (op == kWriteFile && push_) return -EBUSY;
  return 0;
}

int Socket::Push(std::shared_ptr<const std::vector<uint8_t>> buf) {
  if (int r = WriteState(kWritePush)) return r;
  if (buf->empty()) return 0;
  push_ = std::move(buf);
  push_off_ = 0;
  Rearm();
  return 0;
}

int Socket::PushMore() {
  WillWrite();
  LoopStats& st = loop_->stats();
  const uint8_t* base = push_->data();
  const size_t len = push_->size();
  size_t budget = kPushBudget;
  while (budget > 0) {
    iovec iov{const_cast<uint8_t*>(base + push_off_), len - push_off_};
    ssize_t w = SysSendv(fd, &iov, 1);
    if (w == -EAGAIN || w == -EWOULDBLOCK) return 0;
    if (w < 0) {
      Fail(static_cast<int>(-w), kSysWrite);
      return static_cast<int>(w);
    }
    bytes_out_ += w;
    st.bytes_out += w;
    // A partial send continues where it stopped, so the stream is the buffer repeated exactly.
    push_off_ = (push_off_ + static_cast<size_t>(w)) % len;
    budget -= static_cast<size_t>(w) < budget ? w : budget;
    if (static_cast<size_t>(w) < iov.iov_len) return 0;  // the kernel buffer is full
    if (loop_->VisitSpent()) return 0;  // still writable: the next turn goes on
  }
  return 0;
}

void Socket::OnReadable() {
  LoopStats& st = loop_->stats();
  if (opts_.read_mode == kReadSink) {
    size_t budget = kSinkBudget;
    while (budget > 0) {
      // MSG_TRUNC discards without copying on TCP only; a Unix socket would copy into NULL.
      ssize_t n = SysDiscard(fd, kSinkReadMax, inet_);
      if (n > 0) {
        bytes_in_ += n;
        st.bytes_in += n;
        budget -= static_cast<size_t>(n) < budget ? n : budget;
        // A short read means the receive queue is empty: skip the EAGAIN round trip.
        if (static_cast<size_t>(n) < kSinkReadMax || loop_->VisitSpent()) return;
        continue;
      }
      if (n == 0) return OnEof();
      if (n == -EAGAIN || n == -EWOULDBLOCK) return;
      return Fail(static_cast<int>(-n), kSysRead);
    }
    return;
  }
  size_t budget = kDataBudget;
  while (budget > 0 && (opts_.read_mode == kReadData || opts_.read_mode == kReadLent)) {
    const bool lent = opts_.read_mode == kReadLent;
    const size_t want = kDataReadMax < budget ? kDataReadMax : budget;
    size_t room = 0;
    uint8_t* at = lent ? loop_->LentReserve(want, &room) : loop_->ArenaReserve(want, &room);
    // The env is stopping, or the arena is full of data JS has not had yet: leave the rest in
    // the kernel (level-triggered: it is read again after the turn's delivery).
    if (at == nullptr) return;
    ssize_t n = SysRecv(fd, at, room);
    if (n > 0) {
      bytes_in_ += n;
      st.bytes_in += n;
      if (lent) loop_->LentCommit(id, at, static_cast<size_t>(n));
      else loop_->ArenaCommit(id, at, static_cast<size_t>(n));
      budget -= static_cast<size_t>(n) < budget ? n : budget;
      if (static_cast<size_t>(n) < room || loop_->VisitSpent()) return;
      continue;
    }
    if (n == 0) return OnEof();
    if (n == -EAGAIN || n == -EWOULDBLOCK) return;
    return Fail(static_cast<int>(-n), kSysRead);
  }
}

void Socket::OnEof() {
  // A reset that kqueue reported with the event (EV_EOF, the error in fflags): over libkqueue,
  // reading SO_ERROR to report it cleared it, so recv() then found a plain end of stream.
  if (so_error != 0) return Fail(-TakeSocketError(this), kSysRead);
  rd_eof_ = true;
  if (opts_.quiet) {
    if (!opts_.allow_half_open) end_requested_ = true;
  } else {
    // Without half-open, JS ends the socket after its end handler: the data read with the FIN is
    // still on its way to JS in this batch, and the replies written to it must go out before the
    // FIN. Ending here would refuse them.
    loop_->Emit(kRecEnd, id)[0] = opts_.allow_half_open ? 0 : 1;
  }
  MaybeShutdown();
  if (!dead) Rearm();
}

void Socket::MaybeShutdown() {
  // A pipe feeding this socket still has bytes to deliver: it ends the socket when done.
  if (dead || connecting_ || !end_requested_ || qhead_ < queue_.size() || pipe_in != nullptr) return;
  if (!wr_shut_) {
    if (int r = SysShutdownWrite(fd); r < 0 && r != -ENOTCONN) return Fail(-r, kSysShutdown);
    wr_shut_ = true;
  }
  if (rd_eof_) Finish(0, kSysNone, false);
}

void Socket::Enqueue(const uint8_t* p, size_t n) {
  if (n == 0) return;
  if (queue_.size() > qhead_) {
    Chunk& last = queue_.back();
    size_t room = last.cap - last.len;
    if (room >= n) {
      memcpy(last.data.get() + last.len, p, n);
      last.len += n;
      queued_ += n;
      return;
    }
  }
  size_t cap = n < kChunkMin ? kChunkMin : n;
  Chunk c{std::unique_ptr<uint8_t[]>(new uint8_t[cap]), cap, n, 0, nullptr};
  memcpy(c.data.get(), p, n);
  queue_.push_back(std::move(c));
  queued_ += n;
}

int Socket::Write(const iovec* iov, int n, WriteOp op) {
  if (int r = WriteState(op)) return r;
  WillWrite();
  int i = 0;
  size_t skip = 0;  // bytes of iov[i] already sent
  if (qhead_ == queue_.size() && !connecting_) {
    // Fast path: send straight from the caller's buffers; only what the kernel refuses is copied.
    while (i < n) {
      int cnt = n - i < kIovMax ? n - i : kIovMax;
      ssize_t w = SysSendv(fd, iov + i, cnt);
      if (w == -EAGAIN || w == -EWOULDBLOCK) break;
      if (w < 0) {
        // Queue what this call could not send, so the close record counts it as unsent.
        for (; i < n; ++i, skip = 0)
          Enqueue(static_cast<const uint8_t*>(iov[i].iov_base) + skip, iov[i].iov_len - skip);
        Fail(static_cast<int>(-w), kSysWrite);
        return 0;
      }
      bytes_out_ += w;
      loop_->stats().bytes_out += w;
      size_t left = static_cast<size_t>(w);
      while (i < n && left >= iov[i].iov_len) left -= iov[i++].iov_len;
      skip = left;
      if (i < n && skip > 0) break;  // partial: the kernel buffer is full
    }
  }
  for (; i < n; ++i, skip = 0)
    Enqueue(static_cast<const uint8_t*>(iov[i].iov_base) + skip, iov[i].iov_len - skip);
  if (qhead_ < queue_.size()) Rearm();
  if (queued_ >= opts_.high_water) {
    need_drain_ = true;
    return 0;
  }
  return 1;
}

void Socket::PopHead() {
  queue_[qhead_].data.reset();
  queue_[qhead_].file.reset();
  if (++qhead_ == queue_.size()) {
    queue_.clear();
    qhead_ = 0;
  } else if (qhead_ >= 64 && qhead_ * 2 >= queue_.size()) {
    // A queue that never empties must not grow without bound: drop the sent prefix.
    queue_.erase(queue_.begin(), queue_.begin() + qhead_);
    qhead_ = 0;
  }
}

int Socket::Flush() {
  WillWrite();
  iovec iov[kIovMax];
  size_t file_budget = kSendFileBudget;  // per socket per event, however many ranges are queued
  while (qhead_ < queue_.size()) {
    if (queue_[qhead_].file) {
      int r = SendFileHead(&file_budget);
      if (r <= 0) return r;
      continue;
    }
    int cnt = 0;
    for (auto it = queue_.begin() + qhead_; it != queue_.end() && !it->file && cnt < kIovMax;
         ++it, ++cnt) {
      iov[cnt].iov_base = it->data.get() + it->off;
      iov[cnt].iov_len = it->len - it->off;
    }
    ssize_t w = SysSendv(fd, iov, cnt);
    if (w == -EAGAIN || w == -EWOULDBLOCK) return 0;
    if (w < 0) {
      Fail(static_cast<int>(-w), kSysWrite);
      return static_cast<int>(w);
    }
    bytes_out_ += w;
    loop_->stats().bytes_out += w;
    queued_ -= w;
    size_t left = static_cast<size_t>(w);
    while (left > 0) {
      Chunk& c = queue_[qhead_];
      size_t rest = c.len - c.off;
      if (left >= rest) {
        left -= rest;
        PopHead();
      } else {
        c.off += left;
        left = 0;
      }
    }
    if (loop_->VisitSpent()) return 0;  // the rest at the next writable event
  }
  return 0;
}

void Socket::CountIn(size_t n) {
  bytes_in_ += n;
  loop_->stats().bytes_in += n;
}

void Socket::CountOut(size_t n) {
  bytes_out_ += n;
  loop_->stats().bytes_out += n;
}

void Socket::PipeEof() {
  rd_eof_ = true;
  if (!opts_.quiet) loop_->Emit(kRecEnd, id);
  if (!opts_.allow_half_open) end_requested_ = true;
  MaybeShutdown();
  if (!dead) Rearm();
}

void Socket::PipeDetached() {
  MaybeShutdown();
  if (!dead) Rearm();
}

bool Socket::PipeWantsRead() const { return pipe_out->WantsRead(); }
bool Socket::PipeWantsWrite() const { return pipe_in != nullptr && pipe_in->WantsWrite(); }

void Socket::OnWritable() {
  if (Flush() < 0) return;
  if (qhead_ == queue_.size() && pipe_in != nullptr) {
    pipe_in->Pump();
    if (dead) return;
  }
  if (qhead_ == queue_.size() && push_ && !end_requested_ && PushMore() < 0) return;
  if (qhead_ == queue_.size()) {
    if (need_drain_) {
      need_drain_ = false;
      if (!opts_.quiet) loop_->Emit(kRecDrain, id);
    }
    MaybeShutdown();
  }
  if (!dead) Rearm();
}

int Socket::End() {
  if (dead) return -EBADF;
  end_requested_ = true;  // also stops pushing
  push_.reset();
  MaybeShutdown();
  if (!dead) Rearm();
  return 0;
}

void Socket::SetReadMode(int mode) {
  if (dead) return;
  opts_.read_mode = mode;
  Rearm();
}

int Socket::SetKeepAlive(bool on, int idle_s, int interval_s, int count) {
  if (dead) return -EBADF;
  if (!inet_) return on ? -EOPNOTSUPP : 0;
  int r = SetSockOptInt(fd, SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0);
  if (r < 0 || !on) return r;
#if defined(TCP_KEEPIDLE)
  if (idle_s > 0 && (r = SetSockOptInt(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s)) < 0) return r;
#elif defined(TCP_KEEPALIVE)  // macOS names the idle time so
  if (idle_s > 0 && (r = SetSockOptInt(fd, IPPROTO_TCP, TCP_KEEPALIVE, idle_s)) < 0) return r;
#endif
#if defined(TCP_KEEPINTVL)
  if (interval_s > 0 && (r = SetSockOptInt(fd, IPPROTO_TCP, TCP_KEEPINTVL, interval_s)) < 0) return r;
#endif
#if defined(TCP_KEEPCNT)
  if (count > 0 && (r = SetSockOptInt(fd, IPPROTO_TCP, TCP_KEEPCNT, count)) < 0) return r;
#endif
  return 0;
}

int Socket::SetNoDelay(bool on) {
  if (dead) return -EBADF;
  nodelay_pending_ = false;  // the application decides from here
  return SetSockOptInt(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

size_t Socket::Destroy(bool reset) {
  size_t unsent = queued_;
  if (!dead) Finish(0, kSysNone, reset);
  return unsent;
}

void Socket::Finish(int err, int sys, bool reset) {
  if (dead) return;
  LoopStats& st = loop_->stats();
  ++st.closed;
  if (err != 0) loop_->CountError(err);
  // File ranges not yet sent, and pipes through this socket, end with it (before its close).
  for (size_t i = qhead_; i < queue_.size() && files_queued_ > 0; ++i) {
    if (!queue_[i].file) continue;
    double* v = loop_->Emit(kRecSendFile, id);
    v[0] = queue_[i].req;
    v[1] = static_cast<double>(queue_[i].fsent);
    v[2] = err != 0 ? err : ECANCELED;
    v[3] = err != 0 ? sys : kSysSendfile;
    --files_queued_;
  }
  if (pipe_out != nullptr) pipe_out->SocketClosed(this, err, sys);
  if (pipe_in != nullptr) pipe_in->SocketClosed(this, err, sys);
  if (opts_.quiet) {
    loop_->QuietClosed();
  } else {
    double* v = loop_->Emit(kRecClose, id);
    v[0] = err;
    v[1] = sys;
    v[2] = static_cast<double>(queued_);
    v[3] = static_cast<double>(bytes_in_);
    v[4] = static_cast<double>(bytes_out_);
  }
  if (idle_at >= 0) loop_->idle()->Forget(this);
  const bool was_established = established_;
  if (established_) loop_->ConnClosed();
  established_ = false;
  if (dialer != nullptr) dialer->OnClosed(this, err, was_established);
  loop_->Retire(this);  // removes from the poller before the fd number can be reused
  if (reset) CloseWithReset(fd); else SysClose(fd);
  fd = -1;
  admission_.Release();  // after the close: the bound never sees one more connection than it allows
  queue_.clear();
  qhead_ = 0;
  push_.reset();
}

void Socket::Abandon() {
  if (established_) loop_->ConnClosed();
  established_ = false;
  if (pipe_out != nullptr) pipe_out->Abandon();
  if (pipe_in != nullptr) pipe_in->Abandon();
  if (fd >= 0) SysClose(fd);
  fd = -1;
  admission_.Release();
}

}  // namespace iapp
