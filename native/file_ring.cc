// Reads, writes and syncs on the loop's io_uring: queued during a turn, submitted in one call
// before the loop sleeps, reaped when the ring's eventfd fires. What the ring cannot take goes
// to the pool (FileIo::ToPool, file.cc).
#include <cerrno>

#include "faults.h"
#include "file.h"
#include "loop.h"
#include "syscalls.h"

namespace iapp {

bool FileIo::Queue(RingOp* op) {
  if (!ring_) return false;
  const uint64_t ud = reinterpret_cast<uintptr_t>(op);
  const int fd = op->file->fd;
  bool ok;
  if (op->kind == kFileSync) {
    ok = ring_->Fsync(fd, op->datasync, ud);
  } else {
    const unsigned n = static_cast<unsigned>(op->iov.size() - op->i);
    if (n > static_cast<unsigned>(kIovLimit)) return false;
    ok = op->kind == kFileWrite ? ring_->Writev(fd, &op->iov[op->i], n, op->off + op->done, ud)
                                : ring_->Readv(fd, &op->iov[op->i], n, op->off + op->done, ud);
  }
  if (ok && !ring_queued_) {
    ring_queued_ = true;
    loop_->WantPrepare();
  }
  return ok;
}

void FileIo::SubmitRing() {
  if (!ring_queued_ || !ring_) return;
  ring_queued_ = false;
  int r = ring_->Submit();
  if (r < 0) {
    // The kernel took none of them and will not: the pool does them instead.
    std::vector<uint64_t> back;
    ring_->DropQueued(&back);
    for (uint64_t ud : back) ToPool(std::unique_ptr<RingOp>(reinterpret_cast<RingOp*>(static_cast<uintptr_t>(ud))));
    return;
  }
  if (ring_->queued() > 0) {
    // Not all taken (EAGAIN, EBUSY, a short count): again at the next wake, which the ring's
    // own eventfd makes now (libuv does not wait for prepare hooks).
    ring_queued_ = true;
    ring_->Kick();
  }
}

void FileIo::ReapRing() {
  UringCompletion c[64];
  for (;;) {
    const size_t n = ring_->Reap(c, 64);
    for (size_t k = 0; k < n; ++k) {
      std::unique_ptr<RingOp> op(reinterpret_cast<RingOp*>(static_cast<uintptr_t>(c[k].user_data)));
      // An injected fault replaces what the kernel answered (a write has then landed, as it may
      // have before a real EIO).
      const int injected = Fault(kFaultDisk);
      const int32_t res = injected != 0 ? -injected : c[k].res;
      const int sys = op->kind == kFileWrite ? kSysPwrite : op->kind == kFileRead ? kSysPread : kSysFsync;
      if (res < 0) {
        Emit(op->req, res, sys);
        continue;
      }
      if (op->kind == kFileSync) {
        Emit(op->req, 0, kSysNone);
        continue;
      }
      if (res == 0) {  // end of file (a write that takes nothing is an error)
        if (op->kind == kFileWrite) Emit(op->req, -EIO, sys);
        else Emit(op->req, static_cast<int64_t>(op->done), kSysNone);
        continue;
      }
      op->done += static_cast<uint64_t>(res);
      AdvanceIov(op->iov, &op->i, static_cast<size_t>(res));
      if (op->i == op->iov.size()) {
        Emit(op->req, static_cast<int64_t>(op->done), kSysNone);
        continue;
      }
      if (Queue(op.get())) {
        op.release();
        continue;
      }
      ToPool(std::move(op));  // the ring is full: the pool finishes the rest
    }
    if (n < 64) break;
  }
  SubmitRing();
}

}  // namespace iapp
