// A connected stream socket (TCP or Unix) owned by one loop: reads delivered to JS in batches or
// discarded natively, writes queued and flushed with sendmsg/writev.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "addr.h"
#include "conns.h"
#include "sys.h"
#include "syscalls.h"
#include "loop.h"

namespace iapp {

struct FileRef;
class Pipe;
class Dialer;

// kReadLent: as kReadData, but read into the loop's one lent arena, which is read into again once
// the records went to JS (socket.onData(fn, { borrow: true })): memory the cache still holds.
enum ReadMode : int { kReadPaused = 0, kReadData = 1, kReadSink = 2, kReadLent = 3 };

struct SocketOptions {
  int read_mode = kReadData;
  bool no_delay = true;
  bool allow_half_open = false;
  size_t high_water = 256 * 1024;
  // Never announced to JS: a socket accepted straight into a native sink. It emits no records;
  // the loop counts it and can end or destroy all such sockets at shutdown.
  bool quiet = false;
  // SO_RCVLOWAT: the kernel wakes the loop only once this many bytes are queued (or at EOF, or
  // when the window would stall). 0 leaves the kernel's default (1 byte).
  int rcvlowat = 0;
  // Dispatch priority of the socket's events within a drained batch (higher first).
  int priority = 0;
  // Closed with ETIMEDOUT (syscall "idle") after this long with no byte either way; 0: never.
  int64_t idle_timeout_ns = 0;
  // TCP keepalive: probes after keepalive_idle_s of silence (0: the system's idle time); off when
  // keepalive is false.
  bool keepalive = false;
  int keepalive_idle_s = 0;
};

// A socket between two loops: what detach() took from one loop for adopt() on another.
struct DetachedSocket {
  int fd = -1;
  SocketOptions opts;
  bool inet = false, rd_eof = false, end_requested = false, wr_shut = false, need_drain = false;
  bool nodelay_pending = false;
  int64_t idle_timeout_ns = 0;
  std::vector<uint8_t> unsent;  // the write queue, in order
  uint64_t bytes_in = 0, bytes_out = 0;
  Admission admission;  // its place under the connection bounds goes with it (or back, if dropped)
};

// Bytes of file ranges one socket sends per event, however many are queued (sendfile.cc).
constexpr size_t kSendFileBudget = 4 << 20;

class Socket : public Handle {
 public:
  static constexpr Kind kKind = Kind::kSocket;
  // Takes ownership of fd, registers with the loop and starts watching. `inet`: 1 for TCP, 0 for a
  // Unix socket, -1 to ask the fd (a caller that knows saves the getsockname).
  static Socket* Adopt(Loop* loop, int fd, bool connecting, const SocketOptions& opts, int inet = -1);
  // Non-blocking connect. On failure returns null with *err (positive errno) and *sys set.
  static Socket* Connect(Loop* loop, const SockAddr& remote, const SockAddr* local,
                         const SocketOptions& opts, int* err, int* sys);

  void OnEvent(uint32_t events) override;
  void OnPollError(int err) override { Fail(err, kSysPollCtl); }
  void Abandon() override;

  // Hands the fd and its state (queued bytes, counters) to *out and retires this socket without
  // closing the fd; a kRecDetached record follows every record already emitted for it. 0, or
  // -errno: EBADF (closed), ENOTCONN (still connecting), EBUSY (pushing), EINVAL (quiet).
  int Detach(DetachedSocket* out);
  // Takes a connected stream socket another process accepted (inetd, systemd's Accept=yes): the
  // fd is this socket's from now on, closed with it. Null with *err: ENOTSOCK, EINVAL (listening
  // or not a stream), ENOTCONN (not connected).
  static Socket* AdoptFd(Loop* loop, int fd, const SocketOptions& opts, int* err);
  // Registers a detached socket on `loop`, reading in `read_mode`.
  static Socket* Restore(Loop* loop, DetachedSocket&& d, int read_mode);

  // Whether JS may still put bytes into this socket, decided here and nowhere else (TS maps the
  // answer to its errors in one place). 0, or -EBADF (closed), -EPIPE (ended or shut down),
  // -EBUSY (a pipe writes into it; for a file range also: it is pushing). A held pipe (its
  // source's early bytes still in JS) takes writes marked kWriteFeed, which carry those bytes.
  enum WriteOp { kWriteBytes, kWriteFeed, kWritePush, kWriteFile };
  int WriteState(WriteOp op) const;

  // Queues and tries to send. Returns 1 if below the high-water mark, 0 if the caller should wait
  // for drain (or the send failed: the socket is then closing and its close record counts the
  // bytes as unsent), or WriteState's refusal.
  int Write(const iovec* iov, int n, WriteOp op = kWriteBytes);
  int End();                       // half-close once the queue is flushed; 0 or -errno
  size_t Destroy(bool reset);      // closes now; returns the queued bytes that were not sent
  void SetReadMode(int mode);
  int SetNoDelay(bool on);
  void SetHighWater(size_t n) { opts_.high_water = n; }
  // Sends `buf` again and again whenever writable (after anything queued), with no JS per write,
  // until End() or Destroy(). The buffer is shared with the loop's other pushing sockets.
  // 0, or WriteState's refusal.
  int Push(std::shared_ptr<const std::vector<uint8_t>> buf);
  // Queues `length` bytes of `file` from `offset` (UINT64_MAX: to its end) after everything
  // queued before, sent with sendfile(2) when their turn comes. A kRecSendFile record for `req`
  // reports the bytes sent, and the error if the socket failed or the file was shorter than
  // asked (ENODATA). 0, or WriteState's refusal.
  int SendFile(std::shared_ptr<FileRef> file, uint64_t offset, uint64_t length, double req);
  // The disk pool has read ahead the range from `offset` that sendfile found uncached (FreeBSD's
  // SF_NODISKIO, see sendfile.cc): sending goes on.
  void ReadAheadDone(uint64_t offset);

  // Its place under the connection bounds (conns.h), given back when it closes.
  void Admit(Admission&& a) { admission_ = std::move(a); }

  // A dialer's connection (dialer.h): told when it is established and when it closes.
  Dialer* dialer = nullptr;
  int32_t dial_at = -1;  // index in the dialer's list
  void ConnectTimedOut() { Fail(ETIMEDOUT, kSysConnect); }
  // Idle timeout (idle.h): the index in the loop's watch list, and what the watch calls.
  int32_t idle_at = -1;
  int64_t idle_timeout_ns = 0;
  void IdleTimedOut() { Fail(ETIMEDOUT, kSysIdle); }
  // TCP keepalive probes after `idle_s` of silence, every `interval_s`, `count` of them (0: the
  // system's value for each). 0 or -errno.
  int SetKeepAlive(bool on, int idle_s, int interval_s, int count);

  // Pipe glue (pipe.cc): a socket is the source and/or the destination of at most one pipe
  // each. The pipe moves the bytes; the socket keeps its counters and its close record.
  Pipe* pipe_out = nullptr;
  Pipe* pipe_in = nullptr;
  bool connecting() const { return connecting_; }
  bool rd_eof() const { return rd_eof_; }
  bool queue_empty() const { return qhead_ == queue_.size(); }
  // Can take a pipe's output: not pushing, ending or shut (queued bytes go first).
  bool open_writer() const { return !push_ && !end_requested_ && !wr_shut_; }
  void CountIn(size_t n);
  void CountOut(size_t n);
  void PipeEof();           // the pipe read end of file from this socket
  void PipeEnd() { End(); }  // the pipe has delivered everything: half-close
  void PipeFail(int err, int sys) { Fail(err, sys); }
  void PipeDetached();  // the pipe is gone: do what waited for it (an end), poll again
  void Rearm();
  void AllowHalfOpen() { opts_.allow_half_open = true; }
  // TCP_NODELAY is set when the socket first sends, not when it opens: a socket that never writes
  // (a sink's, a connect-and-close client's) costs one setsockopt less.
  void WillWrite() {
    if (!nodelay_pending_) return;
    nodelay_pending_ = false;
    SetSockOptInt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  }


  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }
  size_t queued() const { return queued_; }
  bool quiet() const { return opts_.quiet; }

 private:
  Socket(Loop* loop, int fd, bool connecting, const SocketOptions& opts);
  void OnConnected();
  void Established();
  void OnReadable();
  void OnWritable();
  void OnEof();
  // Sends queued bytes (file ranges up to kFileBudget per call): 0, or -errno after failing.
  int Flush();
  void MaybeShutdown();
  void Enqueue(const uint8_t* p, size_t n);
  int PushMore();               // sends from the push buffer: 0, or -errno after failing the socket
  bool WantsWrite() const {
    // While the pool reads ahead the head range, nothing can be sent (the queue is in order).
    return (qhead_ < queue_.size() && !reading_ahead_) || (push_ && !end_requested_) || PipeWantsWrite();
  }
  bool PipeWantsRead() const;
  bool PipeWantsWrite() const;
  // 1 when the head range is done, 0 to wait, -errno after failing; spends from *budget.
  int SendFileHead(size_t* budget);
  void PopHead();
  // Closes the fd and tells JS why. err: positive errno or 0 for a clean close.
  void Finish(int err, int sys, bool reset);
  void Fail(int err, int sys) { Finish(err, sys, false); }

  // Bytes (data) or a file range (file): len is the byte count, off how much has gone.
  struct Chunk {
    std::unique_ptr<uint8_t[]> data;
    size_t cap, len, off;
    std::shared_ptr<FileRef> file;
    uint64_t foff = 0, flen = 0, fsent = 0;
    double req = 0;
    bool copy = false;  // sendfile refused this file: pread and send
    uint64_t ahead_at = UINT64_MAX;  // where the pool last read ahead (see sendfile.cc)
  };
  ssize_t SendFileCopy(const Chunk& c, size_t want);  // bytes sent, 0 at end of file, or -errno
  // Hands [at, at + len) of the head range to the pool to read into the page cache: 0, or -errno
  // (then the caller sends without SF_NODISKIO, waiting for the disk once).
  int StartReadAhead(Chunk& c, uint64_t at, size_t len);
  bool reading_ahead_ = false;

  SocketOptions opts_;
  bool connecting_;
  bool inet_ = false;  // TCP (not a Unix socket)
  bool rd_eof_ = false;
  bool established_ = false;  // counted as an open connection (Loop::ConnOpened)
  bool nodelay_pending_ = false;  // see WillWrite()
  bool end_requested_ = false;
  bool wr_shut_ = false;
  bool need_drain_ = false;
  // A vector and a head index rather than std::deque: libstdc++'s deque allocates ~600 bytes even
  // when empty, and most sockets of a sink or an idle server never queue anything.
  std::vector<Chunk> queue_;
  size_t qhead_ = 0;
  size_t queued_ = 0;  // bytes in data chunks (what the high-water mark and `unsent` count)
  size_t files_queued_ = 0;
  std::shared_ptr<const std::vector<uint8_t>> push_;
  size_t push_off_ = 0;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
  Admission admission_;
};

}  // namespace iapp
