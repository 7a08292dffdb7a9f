// Syscall wrappers. Every function returns >= 0 on success or -errno on failure, so callers never
// read errno after another call may have changed it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <sys/types.h>
#include <sys/uio.h>

struct sockaddr;
struct sockaddr_storage;
#if defined(__APPLE__)
#include <sys/socket.h>
// macOS has no recvmmsg/sendmmsg: the same shape, filled one message at a time (sys.cc).
struct mmsghdr {
  struct msghdr msg_hdr;
  unsigned int msg_len;
};
#else
struct mmsghdr;
#endif

namespace iapp {

// A hint to the CPU inside a spin-wait loop (another thread or process is about to let go).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

int SysClose(int fd);
int SetNonblockCloexec(int fd);
// A non-blocking, close-on-exec socket.
int SysSocket(int family, int type);
// accept4 where the platform has it, accept + fcntl elsewhere; the result is non-blocking and
// close-on-exec.
int SysAccept(int fd, sockaddr* addr, unsigned* len);
ssize_t SysSendv(int fd, const iovec* iov, int iovcnt);
ssize_t SysRecv(int fd, void* buf, size_t len);
// Receives and throws away up to len bytes. On Linux TCP, MSG_TRUNC discards without copying;
// elsewhere the bytes land in a per-thread scratch buffer.
ssize_t SysDiscard(int fd, size_t len, bool trunc_ok);
int SysSockError(int fd);
int SetSockOptInt(int fd, int level, int name, int value);
// SO_REUSEADDR, and with `reuseport` the option that lets several sockets bind one address and
// spreads the load among them (SO_REUSEPORT; SO_REUSEPORT_LB on FreeBSD, where plain
// SO_REUSEPORT does not spread). 0 or -errno.
int SetReuse(int fd, bool reuseport);
// bind(); on failure closes fd. Returns fd or -errno.
int BindOrClose(int fd, const sockaddr* addr, unsigned len);
int SysBind(int fd, const sockaddr* addr, unsigned len);     // 0 or -errno
// connect() past EINTR: 0, or -errno (-EINPROGRESS for a non-blocking connect under way).
int SysConnect(int fd, const sockaddr* addr, unsigned len);
int SysListen(int fd, int backlog);                          // 0 or -errno
int SysShutdownWrite(int fd);                                // shutdown(SHUT_WR): 0 or -errno
// The local (or, with `peer`, remote) address of a socket into *ss, *len: 0 or -errno.
int SysSockName(int fd, bool peer, sockaddr_storage* ss, unsigned* len);
// One send(2) or recv(2) past EINTR, with no fault site: the UDP paths that have no mmsg batch
// (datagrams sent or sunk one at a time). Bytes, or -errno.
ssize_t SysSendFlags(int fd, const void* buf, size_t len, int flags);
ssize_t SysRecvPlain(int fd, void* buf, size_t len);
// splice(2) between a socket and a pipe, non-blocking, past EINTR: bytes or -errno. Only where
// the platform has it (IAPP_HAVE_SPLICE); callers check Fault(kFaultSplice) first.
ssize_t SysSplice(int in, int out, size_t len);
// A close that sends RST instead of FIN (SO_LINGER with a zero timeout).
int CloseWithReset(int fd);
// SO_TYPE of a socket (SOCK_STREAM, SOCK_DGRAM, ...), or -errno (ENOTSOCK: not a socket).
int SysSockType(int fd);
// SO_ACCEPTCONN: 1 listening, 0 not, -errno if the system cannot say.
int SysSockListening(int fd);
// A non-blocking, close-on-exec duplicate of an inherited fd (which stays open as it was): the
// new fd, or -errno.
int SysDupNonblock(int fd);
// What kind of socket an inherited fd is: 0 not a socket, 1 listening stream, 2 connected stream,
// 3 other stream (not connected, not listening), 4 datagram; -errno when fd is not open.
int SysSocketKind(int fd, int* family);
// Raises RLIMIT_NOFILE's soft limit to the hard limit where the process may. Fills the soft limit
// before, and soft and hard after (-1: unlimited). 0, or -errno if the limit cannot be read.
int RaiseFileLimit(int64_t* before, int64_t* soft, int64_t* hard);
// An fd held in reserve so that EMFILE on accept can still take one connection off the backlog.
int OpenReserveFd();

// A waker another thread writes to wake a loop: an eventfd on Linux (rd == wr), a non-blocking
// pipe elsewhere. OpenWaker: 0 or -errno. Signal never fails in a way that loses the wake (a full
// counter or pipe is already readable). Drain clears it.
int OpenWaker(int* rd, int* wr);
void SignalWaker(int wr);
void DrainWaker(int rd);
void CloseWaker(int rd, int wr);

// Receives or sends up to n datagrams in one call (recvmmsg/sendmmsg; one recvmsg/sendmsg at a
// time where the platform has none), non-blocking. The messages done, or -errno when the first
// failed (a later failure ends the batch short, as sendmmsg does).
int SysRecvMmsg(int fd, mmsghdr* msgs, int n);
int SysSendMmsg(int fd, mmsghdr* msgs, int n);
// The same with no fault site: a UDP socket's native sink and push (not what faults.h covers).
int SysRecvMmsgPlain(int fd, mmsghdr* msgs, int n);
int SysSendMmsgPlain(int fd, mmsghdr* msgs, int n);

// Sends up to len bytes of file `in` from *off to socket `out` (sendfile(2); the BSD forms
// elsewhere) and advances *off. Returns the bytes sent (0 at end of file) or -errno; a partial
// send before EAGAIN returns what was sent. `nodisk`: on FreeBSD, SF_NODISKIO, so that pages not
// in the cache give -EBUSY instead of a wait for the disk (see sendfile.cc); ignored elsewhere.
ssize_t SysSendFile(int out, int in, uint64_t* off, size_t len, bool nodisk);

constexpr int kIovMax = 1024;

// CLOCK_MONOTONIC in nanoseconds (a vDSO read on Linux and FreeBSD: tens of ns, no syscall).
inline uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace iapp
