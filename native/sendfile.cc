// sendFile: file ranges queued on a socket, sent with sendfile(2) when their turn comes.
//
// A loop thread must never wait for a disk. Linux's sendfile(2) reads what is not cached inside
// the call (a cost iapp accepts there: it has no non-blocking form). FreeBSD's has one:
// SF_NODISKIO makes it return EBUSY instead of starting disk I/O for pages not in the cache. The
// socket then hands that range to the disk pool, which reads it into the cache, and stops writing
// until the pool is done (ReadAheadDone); sendfile then finds the pages cached. Should the cache
// have let them go again by then, the retry at that same offset is made without SF_NODISKIO, so
// a range is read ahead at most once per attempt and the transfer always progresses.
//
// The FreeBSD call itself cannot be compiled on Linux and is not run in CI (sys.cc, written to
// the FreeBSD manual). Everything after the EBUSY is: injecting EBUSY at the sendfile fault site
// takes this path on every build (test/faults.test.ts).
#include <cerrno>
#include <sys/uio.h>
#include <unistd.h>

#include "syscalls.h"
#include "faults.h"
#include "file.h"
#include "socket.h"
#include "sys.h"

namespace iapp {

int Socket::SendFile(std::shared_ptr<FileRef> file, uint64_t offset, uint64_t length, double req) {
  if (int r = WriteState(kWriteFile)) return r;
  Chunk c{nullptr, 0, 0, 0, std::move(file), offset, length, 0, req};
  queue_.reserve(queue_.size() + 1);  // may throw before anything changed
  queue_.push_back(std::move(c));
  ++files_queued_;
  if (!connecting_ && Flush() < 0) return 0;  // failed: the record says so
  if (!dead) Rearm();
  return 0;
}

int Socket::SendFileHead(size_t* budget_left) {
  if (reading_ahead_) return 0;
  Chunk& c = queue_[qhead_];
  size_t& budget = *budget_left;
  bool at_end = false;  // a range "to the end" reached it
  while (c.fsent < c.flen && budget > 0) {
    const uint64_t start = c.foff + c.fsent;
    uint64_t at = start;
    const uint64_t rest = c.flen - c.fsent;
    const size_t want = rest < budget ? static_cast<size_t>(rest) : budget;
    // Without SF_NODISKIO only where the pool has just read this very offset ahead.
    ssize_t n = c.copy ? -EINVAL : SysSendFile(fd, c.file->fd, &at, want, c.ahead_at != start);
    if ((n == -EINVAL || n == -ENOSYS || n == -EOPNOTSUPP) && (c.copy || c.fsent == 0)) {
      // A file sendfile cannot read (procfs, some FUSE filesystems): pread and send instead.
      c.copy = true;
      n = SendFileCopy(c, want);
    }
    if (n == -EBUSY) {
      // Not in the page cache (SF_NODISKIO): the pool reads it; this socket waits for that.
      if (StartReadAhead(c, start, want) == 0) return 0;
      c.ahead_at = start;  // no read-ahead to be had: the next call waits for the disk itself
      continue;
    }
    if (n == -EAGAIN || n == -EWOULDBLOCK) return 0;
    if (n < 0) {
      Fail(static_cast<int>(-n), kSysSendfile);
      return static_cast<int>(n);
    }
    if (n == 0) {
      if (c.flen == UINT64_MAX) {
        at_end = true;
        break;
      }
      // The file ended before the range did (truncated meanwhile?): the peer would wait for
      // bytes that will never come, so the socket fails rather than go on out of step.
      Fail(ENODATA, kSysSendfile);
      return -ENODATA;
    }
    c.fsent += static_cast<uint64_t>(n);
    budget -= static_cast<size_t>(n);
    CountOut(static_cast<size_t>(n));
    if (loop_->VisitSpent()) break;
  }
  if (c.fsent < c.flen && !at_end) return 0;  // budget or turn spent: more at the next event
  double* v = loop_->Emit(kRecSendFile, id);
  v[0] = c.req;
  v[1] = static_cast<double>(c.fsent);
  --files_queued_;
  PopHead();
  return 1;
}

int Socket::StartReadAhead(Chunk& c, uint64_t at, size_t len) {
  FileIo* io = loop_->files_if_open();
  if (io == nullptr) return -EBADF;
  int r = io->ReadAhead(c.file, at, len, id);
  if (r < 0) return r;
  reading_ahead_ = true;
  ++loop_->stats().read_aheads;
  Rearm();  // stops asking for writability meanwhile: the queue cannot move
  return 0;
}

void Socket::ReadAheadDone(uint64_t offset) {
  if (dead || !reading_ahead_) return;
  reading_ahead_ = false;
  if (qhead_ < queue_.size() && queue_[qhead_].file) queue_[qhead_].ahead_at = offset;
  Rearm();
}

ssize_t Socket::SendFileCopy(const Chunk& c, size_t want) {
  uint8_t buf[64 * 1024];
  ssize_t n;
  do n = pread(c.file->fd, buf, want < sizeof buf ? want : sizeof buf, static_cast<off_t>(c.foff + c.fsent));
  while (n < 0 && errno == EINTR);
  if (n <= 0) return n < 0 ? -errno : 0;
  // What the socket does not take now is read again next time (pread at the same offset).
  iovec iov{buf, static_cast<size_t>(n)};
  return SysSendv(fd, &iov, 1);
}

}  // namespace iapp
