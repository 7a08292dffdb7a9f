#include "pipe.h"

#include "faults.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "syscalls.h"
#include "loop.h"
#include "socket.h"
#include "sys.h"

namespace iapp {

namespace {
constexpr size_t kPipeSize = 256 * 1024;  // bytes held between the two sockets, per direction
constexpr size_t kBudget = 4 << 20;       // bytes read per pump, so one pipe cannot hog the loop
// The call an error is reported with: splice, or the recv/send of the buffered fallback.
#if defined(IAPP_HAVE_SPLICE)
constexpr int kSysIn = kSysSplice, kSysOut = kSysSplice;
#else
constexpr int kSysIn = kSysRead, kSysOut = kSysWrite;
#endif
}  // namespace

Pipe* Pipe::Start(Loop* loop, Socket* src, Socket* dst, double id, int* err, int* sys) {
  *sys = kSysPipe;
  if (src->pipe_out != nullptr || dst->pipe_in != nullptr || !dst->open_writer() ||
      src->rd_eof() || src->connecting() || dst->connecting()) {
    *err = src->rd_eof() ? EPIPE : EBUSY;
    return nullptr;
  }
  auto* p = new (std::nothrow) Pipe(loop, src, dst, id);
  if (p == nullptr) {
    *err = ENOMEM;
    return nullptr;
  }
#if defined(IAPP_HAVE_SPLICE)
  if (pipe2(p->p_, O_NONBLOCK | O_CLOEXEC) < 0) {
    *err = errno;
    delete p;
    return nullptr;
  }
  // A bigger pipe means fewer splices per MB; the kernel may refuse (pipe-user-pages limits),
  // and then the default (16 pages) still works.
  fcntl(p->p_[1], F_SETPIPE_SZ, static_cast<int>(kPipeSize));
  int sz = fcntl(p->p_[1], F_GETPIPE_SZ);
  p->cap_ = sz > 0 ? static_cast<size_t>(sz) : 65536;
#else
  p->buf_.reset(new (std::nothrow) uint8_t[kPipeSize]);
  if (!p->buf_) {
    *err = ENOMEM;
    delete p;
    return nullptr;
  }
  p->cap_ = kPipeSize;
#endif
  p->src_id_ = src->id;
  p->dst_id_ = dst->id;
  src->pipe_out = p;
  dst->pipe_in = p;
  // The pipe decides when src is read (not while held); the data mode's arena is not used.
  dst->WillWrite();
  src->Rearm();
  dst->Rearm();
  loop->Emit(kRecPipeHeld, static_cast<uint64_t>(id));
  return p;
}

void Pipe::Go() {
  held_ = false;
  Pump();
}

Pipe::~Pipe() {
#if defined(IAPP_HAVE_SPLICE)
  for (int fd : p_)
    if (fd >= 0) SysClose(fd);
#endif
}

bool Pipe::WantsRead() const {
  // While dst is blocked, reading src would only find the pipe full and spin.
  return !held_ && !src_eof_ && (buffered_ == 0 || !dst_blocked_) && buffered_ < cap_;
}

bool Pipe::WantsWrite() const { return buffered_ > 0; }

ssize_t Pipe::In(size_t n) {
#if defined(IAPP_HAVE_SPLICE)
  if (int e = Fault(kFaultSplice)) return -e;
  return SysSplice(src_->fd, p_[1], n);
#else
  if (int e = Fault(kFaultSplice)) return -e;  // the site covers the pipe's calls on every build
  if (buffered_ == 0) rd_ = 0;
  const size_t end = rd_ + buffered_;
  if (end == cap_) return -EAGAIN;  // the tail is full; Out() frees it
  return SysRecv(src_->fd, buf_.get() + end, n < cap_ - end ? n : cap_ - end);
#endif
}

ssize_t Pipe::Out(size_t n) {
#if defined(IAPP_HAVE_SPLICE)
  if (int e = Fault(kFaultSplice)) return -e;
  return SysSplice(p_[0], dst_->fd, n);
#else
  if (int e = Fault(kFaultSplice)) return -e;
  iovec iov{buf_.get() + rd_, n};
  ssize_t r = SysSendv(dst_->fd, &iov, 1);
  if (r > 0) rd_ += static_cast<size_t>(r);
  return r;
#endif
}

void Pipe::Pump() {
  if (held_) return;
  size_t budget = kBudget;
  for (;;) {
    bool progress = false;
    if (buffered_ > 0) {
      if (!dst_->queue_empty()) {
        dst_blocked_ = true;  // bytes written before the pipe started go first
      } else {
        ssize_t n = Out(buffered_);
        if (n > 0) {
          buffered_ -= static_cast<size_t>(n);
          moved_ += static_cast<uint64_t>(n);
          dst_->CountOut(static_cast<size_t>(n));
          dst_blocked_ = false;
          progress = true;
        } else if (n == -EAGAIN || n == -EWOULDBLOCK) {
          dst_blocked_ = true;
        } else {
          // dst's close reaches SocketClosed, which reports the pipe and deletes this.
          return dst_->PipeFail(static_cast<int>(n < 0 ? -n : EIO), kSysOut);
        }
      }
    }
    if (buffered_ == 0 && src_eof_) {
      Socket* d = dst_;
      Done(0, kSysNone);
      return d->PipeEnd();  // everything is through: half-close dst
    }
    if (!src_eof_ && budget > 0 && buffered_ < cap_ && !(dst_blocked_ && buffered_ > 0)) {
      ssize_t n = In(cap_ - buffered_ < budget ? cap_ - buffered_ : budget);
      if (n > 0) {
        buffered_ += static_cast<size_t>(n);
        src_->CountIn(static_cast<size_t>(n));
        budget -= static_cast<size_t>(n) < budget ? static_cast<size_t>(n) : budget;
        progress = true;
      } else if (n == 0 && src_->so_error != 0) {
        // A reset kqueue reported with the event (see Socket::OnEof).
        return src_->PipeFail(-TakeSocketError(src_), kSysIn);
      } else if (n == 0) {
        src_eof_ = true;
        Socket* s = src_;
        s->pipe_out = nullptr;  // unlinked first: its end may close it
        src_ = nullptr;
        s->PipeEof();
        progress = true;
      } else if (n != -EAGAIN && n != -EWOULDBLOCK) {
        return src_->PipeFail(static_cast<int>(-n), kSysIn);
      }
    }
    if (!progress) break;
    // The turn's budget is spent: readiness brings the pipe back, unless all that is left is to
    // finish (src ended, nothing buffered), which no event would ever trigger.
    if (loop_->VisitSpent() && !(src_eof_ && buffered_ == 0)) break;
  }
  if (src_ != nullptr) src_->Rearm();
  dst_->Rearm();
}

void Pipe::Unlink() {
  if (src_ != nullptr && src_->pipe_out == this) src_->pipe_out = nullptr;
  if (dst_ != nullptr && dst_->pipe_in == this) dst_->pipe_in = nullptr;
}

void Pipe::Done(int err, int sys) {
  Unlink();
  double* v = loop_->Emit(kRecPipe, static_cast<uint64_t>(id_));
  v[0] = static_cast<double>(moved_);
  v[1] = err;
  v[2] = sys;
  v[3] = static_cast<double>(buffered_);
  v[4] = static_cast<double>(src_id_);
  v[5] = static_cast<double>(dst_id_);
  Socket* s = src_;
  Socket* d = dst_;
  delete this;
  // The sockets go on without the pipe: an end requested meanwhile happens now.
  if (s != nullptr && !s->dead) s->PipeDetached();
  if (d != nullptr && !d->dead) d->PipeDetached();
}

void Pipe::SocketClosed(Socket* s, int err, int sys) {
  // (src is unlinked at its end of file, so a src closing here had more to give.) Closed by destroy() (err 0) before the pipe was through: the transfer was cut short.
  if (s == src_) src_ = nullptr;
  if (s == dst_) dst_ = nullptr;
  if (s->pipe_out == this) s->pipe_out = nullptr;
  if (s->pipe_in == this) s->pipe_in = nullptr;
  Done(err != 0 ? err : ECANCELED, err != 0 ? sys : kSysIn);
}

void Pipe::Abandon() {
  Unlink();
  delete this;
}

}  // namespace iapp
