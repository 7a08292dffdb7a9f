#include "sys.h"

#include "faults.h"
#include "platform.h"

#include <cerrno>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __APPLE__
#include <limits.h>  // OPEN_MAX
#endif
#if defined(IAPP_WAKER_EVENTFD)
#include <sys/eventfd.h>
#endif
#if defined(__linux__)
#include <sys/sendfile.h>
#else
#include <sys/uio.h>
#endif

namespace iapp {

namespace {
inline int Neg(int r) { return r < 0 ? -errno : r; }

// Calls again while a signal interrupts the call: its result, or -errno.
template <typename Call>
auto Retry(Call call) -> decltype(call()) {
  decltype(call()) r;
  do r = call();
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : r;
}
}  // namespace

int SysClose(int fd) {
  // Linux and FreeBSD release the fd even when close() reports EINTR; retrying could close an fd
  // another thread has just been given.
  return Neg(close(fd));
}

int SetNonblockCloexec(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
  int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) return -errno;
  return 0;
}

int SysSocket(int family, int type) {
#if defined(IAPP_HAVE_ACCEPT4)
  return Neg(socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
#else
  int fd = socket(family, type, 0);
  if (fd < 0) return -errno;
  int r = SetNonblockCloexec(fd);
  if (r < 0) {
    close(fd);
    return r;
  }
  return fd;
#endif
}

int SysAccept(int fd, sockaddr* addr, unsigned* len) {
  if (int e = Fault(kFaultAccept)) return -e;
  socklen_t l = len ? *len : 0;
#if defined(IAPP_HAVE_ACCEPT4)
  int c;
  do c = accept4(fd, addr, len ? &l : nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (c < 0 && errno == EINTR);
  if (c < 0) return -errno;
#else
  int c;
  do c = accept(fd, addr, len ? &l : nullptr);
  while (c < 0 && errno == EINTR);
  if (c < 0) return -errno;
  int r = SetNonblockCloexec(c);
  if (r < 0) {
    close(c);
    return r;
  }
#endif
  if (len) *len = l;
  return c;
}

ssize_t SysSendv(int fd, const iovec* iov, int iovcnt) {
  if (int e = Fault(kFaultSend)) return -e;
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = iovcnt;
#ifdef MSG_NOSIGNAL
  const int flags = MSG_NOSIGNAL;
#else
  const int flags = 0;  // SO_NOSIGPIPE is set on the socket instead
#endif
  return Retry([&] { return sendmsg(fd, &msg, flags); });
}

ssize_t SysRecv(int fd, void* buf, size_t len) {
  if (int e = Fault(kFaultRecv)) return -e;
  return SysRecvPlain(fd, buf, len);
}

ssize_t SysDiscard(int fd, size_t len, bool trunc_ok) {
  if (int e = Fault(kFaultRecv)) return -e;
  ssize_t n;
#if defined(IAPP_HAVE_MSG_TRUNC)
  if (trunc_ok) {
    do n = recv(fd, nullptr, len, MSG_TRUNC);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
  }
#endif
  static thread_local char scratch[256 * 1024];
  if (len > sizeof scratch) len = sizeof scratch;
  do n = recv(fd, scratch, len, 0);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

int SysSockError(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -errno;
  return -err;
}

int SetSockOptInt(int fd, int level, int name, int value) {
  return Neg(setsockopt(fd, level, name, &value, sizeof value));
}

int BindOrClose(int fd, const sockaddr* addr, unsigned len) {
  if (bind(fd, addr, len) == 0) return fd;
  int r = -errno;
  SysClose(fd);
  return r;
}

int SysBind(int fd, const sockaddr* addr, unsigned len) { return Neg(bind(fd, addr, len)); }

int SysConnect(int fd, const sockaddr* addr, unsigned len) {
  return Retry([&] { return connect(fd, addr, len); });
}

int SysListen(int fd, int backlog) { return Neg(listen(fd, backlog)); }

int SysShutdownWrite(int fd) { return Neg(shutdown(fd, SHUT_WR)); }

int SysSockName(int fd, bool peer, sockaddr_storage* ss, unsigned* len) {
  socklen_t l = *len;
  int r = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(ss), &l) : getsockname(fd, reinterpret_cast<sockaddr*>(ss), &l);
  *len = l;
  return Neg(r);
}

ssize_t SysSendFlags(int fd, const void* buf, size_t len, int flags) {
  return Retry([&] { return send(fd, buf, len, flags); });
}

ssize_t SysRecvPlain(int fd, void* buf, size_t len) {
  return Retry([&] { return recv(fd, buf, len, 0); });
}

#if defined(IAPP_HAVE_SPLICE)
ssize_t SysSplice(int in, int out, size_t len) {
  return Retry([&] { return splice(in, nullptr, out, nullptr, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK); });
}
#endif

int SysSockType(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ? -errno : type;
}

int SysSockListening(int fd) {
#ifdef SO_ACCEPTCONN
  int listening = 0;
  socklen_t len = sizeof listening;
  return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ? -errno : listening != 0;
#else
  return -ENOPROTOOPT;
#endif
}

int SysDupNonblock(int fd) {
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return -errno;
  SetNonblockCloexec(dup);  // F_SETFL on a fresh socket fd: nothing to fail on
  return dup;
}

int SetReuse(int fd, bool reuseport) {
  int r = SetSockOptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (r < 0 || !reuseport) return r;
#if defined(SO_REUSEPORT_LB)
  // Not compiled or run in CI: written to FreeBSD's setsockopt(2). Only FreeBSD defines it, and
  // there plain SO_REUSEPORT lets sockets share a port without spreading connections among them.
  return SetSockOptInt(fd, SOL_SOCKET, SO_REUSEPORT_LB, 1);
#elif defined(SO_REUSEPORT)
  return SetSockOptInt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
#else
  return 0;
#endif
}

int CloseWithReset(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  return SysClose(fd);
}

int OpenReserveFd() {
  return Neg(open("/dev/null", O_RDONLY | O_CLOEXEC));
}

int OpenWaker(int* rd, int* wr) {
#if defined(IAPP_WAKER_EVENTFD)
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return -errno;
  *rd = *wr = fd;
#else
  // A pipe works on every kqueue platform (macOS has no eventfd) and costs one write per burst,
  // not per event: only the empty -> non-empty edge signals.
  int p[2];
  if (pipe(p) < 0) return -errno;
  SetNonblockCloexec(p[0]);
  SetNonblockCloexec(p[1]);
  *rd = p[0];
  *wr = p[1];
#endif
  return 0;
}

void SignalWaker(int wr) {
#if defined(IAPP_WAKER_EVENTFD)
  uint64_t one = 1;
  ssize_t r = write(wr, &one, sizeof one);
#else
  char one = 1;
  ssize_t r = write(wr, &one, 1);
#endif
  // A full counter (or pipe) is already readable, so a failed write loses no wake: the result is
  // ignored on purpose. Injection replaces it after the real write to show exactly that.
  if (int e = Fault(kFaultWaker)) r = -e;
  (void)r;
}

void DrainWaker(int rd) {
#if defined(IAPP_WAKER_EVENTFD)
  uint64_t n;
  ssize_t r = read(rd, &n, sizeof n);
#else
  char buf[256];
  ssize_t r;
  while ((r = read(rd, buf, sizeof buf)) == static_cast<ssize_t>(sizeof buf)) {
  }
#endif
  (void)r;
}

void CloseWaker(int rd, int wr) {
  if (rd >= 0) SysClose(rd);
  if (wr >= 0 && wr != rd) SysClose(wr);
}

ssize_t SysSendFile(int out, int in, uint64_t* off, size_t len, bool nodisk) {
  if (int e = Fault(kFaultSendfile)) return -e;
#if defined(__linux__)
  (void)nodisk;  // Linux's sendfile has no such flag: it reads what is not cached itself
  off_t o = static_cast<off_t>(*off);
  ssize_t n;
  do n = sendfile(out, in, &o, len);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  *off = static_cast<uint64_t>(o);
  return n;
#elif defined(__FreeBSD__)
  // Not compiled or run in CI: written to FreeBSD's sendfile(2). The file comes first, the
  // socket second; *sbytes says what was sent even when the call fails (EAGAIN on a full
  // non-blocking socket, EBUSY under SF_NODISKIO once a page is not cached, EINTR).
  off_t sent = 0;
  int r = sendfile(in, out, static_cast<off_t>(*off), len, nullptr, &sent, nodisk ? SF_NODISKIO : 0);
  *off += static_cast<uint64_t>(sent);
  if (r < 0 && sent > 0) return sent;  // the rest at the next call, which says why it stopped
  if (r < 0) return errno == EINTR ? -EAGAIN : -errno;
  return sent;
#else  // macOS: len in, bytes sent out
  (void)nodisk;
  off_t n = static_cast<off_t>(len);
  int r = sendfile(in, out, static_cast<off_t>(*off), &n, nullptr, 0);
  *off += static_cast<uint64_t>(n);
  if (r < 0 && n == 0) return errno == EINTR ? -EAGAIN : -errno;
  return n;
#endif
}

}  // namespace iapp

namespace iapp {

int SysRecvMmsg(int fd, mmsghdr* msgs, int n) {
  if (int e = Fault(kFaultRecv)) return -e;
  return SysRecvMmsgPlain(fd, msgs, n);
}

int SysRecvMmsgPlain(int fd, mmsghdr* msgs, int n) {
#if defined(IAPP_HAVE_MMSG)
  return Retry([&] { return recvmmsg(fd, msgs, static_cast<unsigned>(n), MSG_DONTWAIT, nullptr); });
#else
  for (int i = 0; i < n; ++i) {
    ssize_t r;
    do r = recvmsg(fd, &msgs[i].msg_hdr, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0) return i > 0 ? i : -errno;
    msgs[i].msg_len = static_cast<unsigned>(r);
  }
  return n;
#endif
}

int SysSendMmsg(int fd, mmsghdr* msgs, int n) {
  if (int e = Fault(kFaultSend)) return -e;
  return SysSendMmsgPlain(fd, msgs, n);
}

int SysSendMmsgPlain(int fd, mmsghdr* msgs, int n) {
#if defined(IAPP_HAVE_MMSG)
  return Retry([&] { return sendmmsg(fd, msgs, static_cast<unsigned>(n), MSG_DONTWAIT); });
#else
  for (int i = 0; i < n; ++i) {
    ssize_t r;
    do r = sendmsg(fd, &msgs[i].msg_hdr, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0) return i > 0 ? i : -errno;
    msgs[i].msg_len = static_cast<unsigned>(r);
  }
  return n;
#endif
}

}  // namespace iapp

namespace iapp {

int SysSocketKind(int fd, int* family) {
  *family = 0;
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) return errno == ENOTSOCK ? 0 : -errno;
  sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) == 0) *family = ss.ss_family;
  if (type == SOCK_DGRAM) return 4;
  if (type != SOCK_STREAM) return 0;
  if (SysSockListening(fd) == 1) return 1;
  sl = sizeof ss;
  return getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &sl) == 0 ? 2 : 3;
}

namespace {
int64_t Limit(rlim_t v) { return v == RLIM_INFINITY ? -1 : static_cast<int64_t>(v); }
}  // namespace

int RaiseFileLimit(int64_t* before, int64_t* soft, int64_t* hard) {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return -errno;
  *before = Limit(rl.rlim_cur);
  if (rl.rlim_cur != rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
#ifdef __APPLE__
    // macOS refuses a soft limit above OPEN_MAX even when the hard limit is "unlimited".
    if (want.rlim_cur > OPEN_MAX) want.rlim_cur = OPEN_MAX;
#endif
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  *soft = Limit(rl.rlim_cur);
  *hard = Limit(rl.rlim_max);
  return 0;
}

}  // namespace iapp
