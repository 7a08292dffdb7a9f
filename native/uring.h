// File I/O through io_uring on raw syscalls (no liburing), for one loop thread. Completions are
// signalled on an eventfd the loop polls like any other fd. Where the kernel refuses a ring (not
// Linux, too old, seccomp, kernel.io_uring_disabled, RLIMIT_MEMLOCK), Open() fails and the caller
// falls back to its thread pool.
#pragma once
#include "platform.h"
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

struct io_uring_sqe;
struct io_uring_cqe;

namespace iapp {

struct UringCompletion {
  uint64_t user_data;
  int32_t res;  // bytes or -errno
};

class Uring {
 public:
  Uring() = default;
  ~Uring();  // closes without waiting: call WaitAll first if anything may be in flight
  Uring(const Uring&) = delete;
  Uring& operator=(const Uring&) = delete;

  // entries: SQ size (rounded up to a power of two by the kernel). 0 or -errno; ENOSYS, EPERM and
  // ENOMEM mean the kernel refuses, and ENOSYS also a kernel older than 5.6 (no IORING_OP_READ,
  // or completions may be dropped on CQ overflow).
  int Open(unsigned entries);
  bool open() const { return ring_fd_ >= 0; }
  // Non-blocking, close-on-exec; readable when completions may be ready. -1 if not open.
  int event_fd() const { return event_fd_; }
  // Signals the eventfd as a completion would (the loop then comes back to submit what is left).
  void Kick();

  // Queue one operation; nothing reaches the kernel until Submit(). False when not open, when the
  // SQ is full, or when the CQ could not hold one more completion (queued + in flight would exceed
  // it): the caller keeps the operation and retries after Reap. Buffers and iovecs must live until
  // the completion is reaped.
  bool Read(int fd, void* buf, uint32_t len, uint64_t offset, uint64_t user_data);
  bool Write(int fd, const void* buf, uint32_t len, uint64_t offset, uint64_t user_data);
  bool Readv(int fd, const iovec* iov, unsigned n, uint64_t offset, uint64_t user_data);
  bool Writev(int fd, const iovec* iov, unsigned n, uint64_t offset, uint64_t user_data);
  bool Fsync(int fd, bool datasync, uint64_t user_data);

  // Number submitted (0 when nothing was queued, or on EAGAIN/EBUSY, which leave the entries
  // queued for the next call) or -errno.
  int Submit();
  // Copies up to `max` completions out of the CQ, after draining the eventfd. No syscall unless
  // the kernel had to hold completions back (CQ overflow). If completions remain, the eventfd is
  // signalled again so the loop comes back for them.
  size_t Reap(UringCompletion* out, size_t max);
  // Submitted and not yet reaped.
  size_t in_flight() const { return in_flight_; }
  // Queued and not yet taken by the kernel.
  unsigned queued() const;
  // After Submit() failed for good: takes back every entry the kernel has not taken (their
  // user_data into *out), so the caller can do them another way. Not for SQPOLL rings.
  void DropQueued(std::vector<uint64_t>* out);
  // Submits what is queued, then blocks until everything submitted has completed and been reaped
  // into `sink`, so that no kernel write lands in memory freed after the loop closes.
  void WaitAll(std::vector<UringCompletion>* sink);
  void Close();  // unmaps, closes the ring fd and the eventfd; idempotent

 private:
  int ring_fd_ = -1;
  int event_fd_ = -1;
  size_t in_flight_ = 0;
#if defined(IAPP_HAVE_IO_URING)
  bool Prep(uint8_t op, int fd, const void* addr, uint32_t len, uint64_t off, uint32_t op_flags,
            uint64_t user_data);

  void* sq_ring_ = nullptr;
  size_t sq_ring_size_ = 0;
  void* cq_ring_ = nullptr;  // == sq_ring_ with IORING_FEAT_SINGLE_MMAP
  size_t cq_ring_size_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  size_t sqes_size_ = 0;
  io_uring_cqe* cqes_ = nullptr;
  unsigned* sq_head_ = nullptr;  // written by the kernel
  unsigned* sq_tail_ = nullptr;
  unsigned* sq_flags_ = nullptr;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;  // written by the kernel
  unsigned sq_mask_ = 0, sq_entries_ = 0, cq_mask_ = 0, cq_entries_ = 0;
  unsigned sq_local_tail_ = 0;  // published to *sq_tail_ by Submit()
#endif
};

}  // namespace iapp
