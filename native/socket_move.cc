// A socket moving between loops (detach here, adopt there), and connected sockets adopted from
// an fd accepted elsewhere.
#include "socket.h"

#include <cerrno>
#include <sys/socket.h>

#include "idle.h"
#include "sys.h"

namespace iapp {

int Socket::Detach(DetachedSocket* out) {
  if (dead) return -EBADF;
  if (connecting_) return -ENOTCONN;
  if (push_ || files_queued_ > 0 || pipe_in != nullptr || pipe_out != nullptr) return -EBUSY;
  if (opts_.quiet) return -EINVAL;
  out->fd = fd;
  out->opts = opts_;
  out->inet = inet_;
  out->nodelay_pending = nodelay_pending_;
  out->idle_timeout_ns = idle_timeout_ns;
  if (idle_at >= 0) loop_->idle()->Forget(this);
  out->rd_eof = rd_eof_;
  out->end_requested = end_requested_;
  out->wr_shut = wr_shut_;
  out->need_drain = need_drain_;
  out->unsent.reserve(queued_);
  for (size_t i = qhead_; i < queue_.size(); ++i) {
    const Chunk& c = queue_[i];
    out->unsent.insert(out->unsent.end(), c.data.get() + c.off, c.data.get() + c.len);
  }
  out->bytes_in = bytes_in_;
  out->bytes_out = bytes_out_;
  out->admission = std::move(admission_);
  ++loop_->stats().detached;
  if (established_) loop_->ConnClosed();  // the adopting loop counts it from here
  established_ = false;
  loop_->Emit(kRecDetached, id);
  loop_->Retire(this);  // out of this loop's poller before another loop registers the fd
  fd = -1;
  queue_.clear();
  qhead_ = 0;
  queued_ = 0;
  return 0;
}

Socket* Socket::AdoptFd(Loop* loop, int fd, const SocketOptions& opts, int* err) {
  int family = 0;
  const int kind = SysSocketKind(fd, &family);
  if (kind != 2) {
    *err = kind < 0 ? -kind : kind == 0 ? ENOTSOCK : kind == 3 ? ENOTCONN : EINVAL;
    return nullptr;
  }
  if (int r = SetNonblockCloexec(fd); r < 0) {
    *err = -r;
    return nullptr;
  }
  return Adopt(loop, fd, false, opts, family == AF_UNIX ? 0 : 1);
}

Socket* Socket::Restore(Loop* loop, DetachedSocket&& d, int read_mode) {
  SocketOptions opts = d.opts;
  opts.read_mode = read_mode;
  auto* s = new Socket(loop, d.fd, false, opts);
  s->inet_ = d.inet;
  s->nodelay_pending_ = d.nodelay_pending;
  s->idle_timeout_ns = d.idle_timeout_ns;
  s->rd_eof_ = d.rd_eof;
  s->end_requested_ = d.end_requested;
  s->wr_shut_ = d.wr_shut;
  s->need_drain_ = d.need_drain;
  s->bytes_in_ = d.bytes_in;
  s->bytes_out_ = d.bytes_out;
  s->admission_ = std::move(d.admission);
  s->Enqueue(d.unsent.data(), d.unsent.size());
  s->priority = static_cast<int8_t>(opts.priority);
  loop->Register(s);
  s->Established();
  d.fd = -1;  // the socket owns it from here
  ++loop->stats().adopted;
  // The idle timeout goes with it; a new loop that cannot watch it (no timer) keeps the socket.
  if (s->idle_timeout_ns > 0 && loop->idle()->Set(s, s->idle_timeout_ns) < 0) s->idle_timeout_ns = 0;
  // The old loop told its JS that the peer had ended; the adopting side must hear it too, or it
  // would wait for data that will never come.
  if (s->rd_eof_ && !opts.quiet) loop->Emit(kRecEnd, s->id);
  s->MaybeShutdown();
  if (!s->dead) s->Rearm();
  return s;
}

}  // namespace iapp
