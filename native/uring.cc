#include "uring.h"

#include <cerrno>

#include "platform.h"

#if defined(IAPP_HAVE_IO_URING)
#include <fcntl.h>
#include <linux/io_uring.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace iapp {

namespace {

int Enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags) {
  long r = syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, nullptr, 0);
  return r < 0 ? -errno : static_cast<int>(r);
}

void* Map(int fd, size_t size, uint64_t off) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, off);
  return p == MAP_FAILED ? nullptr : p;
}

template <typename T>
T* At(void* base, uint32_t off) { return reinterpret_cast<T*>(static_cast<char*>(base) + off); }

}  // namespace

Uring::~Uring() { Close(); }

int Uring::Open(unsigned entries) {
  if (open()) return -EBUSY;
  io_uring_params p;
  memset(&p, 0, sizeof p);
  int fd = static_cast<int>(syscall(__NR_io_uring_setup, entries, &p));
  if (fd < 0) return -errno;
  ring_fd_ = fd;
  // The kernel already makes it close-on-exec; set here so the guarantee does not rest on that.
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  // Without NODROP a CQ overflow loses completions (WaitAll would never finish); RW_CUR_POS came
  // with IORING_OP_READ/WRITE in 5.6.
  if ((p.features & (IORING_FEAT_NODROP | IORING_FEAT_RW_CUR_POS)) !=
      (IORING_FEAT_NODROP | IORING_FEAT_RW_CUR_POS)) {
    Close();
    return -ENOSYS;
  }
  sq_ring_size_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  cq_ring_size_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
  const bool single = p.features & IORING_FEAT_SINGLE_MMAP;
  if (single && cq_ring_size_ > sq_ring_size_) sq_ring_size_ = cq_ring_size_;
  sqes_size_ = p.sq_entries * sizeof(io_uring_sqe);
  int err = 0;
  if (!(sq_ring_ = Map(fd, sq_ring_size_, IORING_OFF_SQ_RING)) ||
      !(cq_ring_ = single ? sq_ring_ : Map(fd, cq_ring_size_, IORING_OFF_CQ_RING)) ||
      !(sqes_ = static_cast<io_uring_sqe*>(Map(fd, sqes_size_, IORING_OFF_SQES)))) {
    err = -errno;
  } else if ((event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
    err = -errno;
  } else if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_EVENTFD, &event_fd_, 1) < 0) {
    err = -errno;
  }
  if (err < 0) {
    Close();
    return err;
  }
  sq_head_ = At<unsigned>(sq_ring_, p.sq_off.head);
  sq_tail_ = At<unsigned>(sq_ring_, p.sq_off.tail);
  sq_flags_ = At<unsigned>(sq_ring_, p.sq_off.flags);
  sq_mask_ = *At<unsigned>(sq_ring_, p.sq_off.ring_mask);
  sq_entries_ = p.sq_entries;
  cq_head_ = At<unsigned>(cq_ring_, p.cq_off.head);
  cq_tail_ = At<unsigned>(cq_ring_, p.cq_off.tail);
  cq_mask_ = *At<unsigned>(cq_ring_, p.cq_off.ring_mask);
  cq_entries_ = p.cq_entries;
  cqes_ = At<io_uring_cqe>(cq_ring_, p.cq_off.cqes);
  // SQE i always sits in slot i, so the indirection array is filled once and never touched again.
  unsigned* array = At<unsigned>(sq_ring_, p.sq_off.array);
  for (unsigned i = 0; i < sq_entries_; ++i) array[i] = i;
  sq_local_tail_ = *sq_tail_;
  return 0;
}

unsigned Uring::queued() const {
  return sq_local_tail_ - __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE);
}

bool Uring::Prep(uint8_t op, int fd, const void* addr, uint32_t len, uint64_t off,
                 uint32_t op_flags, uint64_t user_data) {
  if (!open()) return false;
  const unsigned waiting = queued();
  // Capping at the CQ size as well means the CQ never overflows while the caller keeps reaping.
  if (waiting >= sq_entries_ || waiting + in_flight_ >= cq_entries_) return false;
  io_uring_sqe* sqe = &sqes_[sq_local_tail_ & sq_mask_];
  memset(sqe, 0, sizeof *sqe);
  sqe->opcode = op;
  sqe->fd = fd;
  sqe->addr = reinterpret_cast<uintptr_t>(addr);
  sqe->len = len;
  sqe->off = off;
  sqe->fsync_flags = op_flags;  // shares a union with rw_flags, 0 for reads and writes
  sqe->user_data = user_data;
  ++sq_local_tail_;
  return true;
}

bool Uring::Read(int fd, void* buf, uint32_t len, uint64_t offset, uint64_t user_data) {
  return Prep(IORING_OP_READ, fd, buf, len, offset, 0, user_data);
}
bool Uring::Write(int fd, const void* buf, uint32_t len, uint64_t offset, uint64_t user_data) {
  return Prep(IORING_OP_WRITE, fd, buf, len, offset, 0, user_data);
}
bool Uring::Readv(int fd, const iovec* iov, unsigned n, uint64_t offset, uint64_t user_data) {
  return Prep(IORING_OP_READV, fd, iov, n, offset, 0, user_data);
}
bool Uring::Writev(int fd, const iovec* iov, unsigned n, uint64_t offset, uint64_t user_data) {
  return Prep(IORING_OP_WRITEV, fd, iov, n, offset, 0, user_data);
}
bool Uring::Fsync(int fd, bool datasync, uint64_t user_data) {
  return Prep(IORING_OP_FSYNC, fd, nullptr, 0, 0, datasync ? IORING_FSYNC_DATASYNC : 0, user_data);
}

void Uring::DropQueued(std::vector<uint64_t>* out) {
  if (!open()) return;
  const unsigned head = __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE);
  for (unsigned i = head; i != sq_local_tail_; ++i) out->push_back(sqes_[i & sq_mask_].user_data);
  sq_local_tail_ = head;
  __atomic_store_n(sq_tail_, head, __ATOMIC_RELEASE);
}

int Uring::Submit() {
  if (!open()) return -EBADF;
  const unsigned pending = queued();
  if (pending == 0) return 0;
  __atomic_store_n(sq_tail_, sq_local_tail_, __ATOMIC_RELEASE);
  int r;
  while ((r = Enter(ring_fd_, pending, 0, 0)) == -EINTR) {
  }
  // A count short of `pending` means an SQE failed to prepare: it was consumed (its error comes
  // as a completion) and the ones after it stay queued.
  if (r >= 0) in_flight_ += r;
  return r == -EAGAIN || r == -EBUSY ? 0 : r;
}

size_t Uring::Reap(UringCompletion* out, size_t max) {
  if (!open() || max == 0) return 0;
  // Drained before reading the CQ: a completion posted after this signals again.
  uint64_t count;
  (void)!read(event_fd_, &count, sizeof count);
  size_t n = 0;
  bool more = false;
  for (bool flushed = false;; flushed = true) {
    unsigned head = __atomic_load_n(cq_head_, __ATOMIC_RELAXED);
    const unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
    for (; n < max && head != tail; ++head) {
      const io_uring_cqe& cqe = cqes_[head & cq_mask_];
      out[n++] = UringCompletion{cqe.user_data, cqe.res};
    }
    __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
    const bool overflow = __atomic_load_n(sq_flags_, __ATOMIC_ACQUIRE) & IORING_SQ_CQ_OVERFLOW;
    more = head != tail || overflow;
    if (n == max || !overflow || flushed) break;
    // The kernel holds completions that did not fit; this moves them into the room just made.
    Enter(ring_fd_, 0, 0, IORING_ENTER_GETEVENTS);
  }
  in_flight_ -= n < in_flight_ ? n : in_flight_;
  if (more) {
    const uint64_t one = 1;
    (void)!write(event_fd_, &one, sizeof one);
  }
  return n;
}

void Uring::WaitAll(std::vector<UringCompletion>* sink) {
  if (!open()) return;
  Submit();
  UringCompletion batch[64];
  while (in_flight_ > 0) {
    size_t n = Reap(batch, 64);
    sink->insert(sink->end(), batch, batch + n);
    if (n > 0) continue;
    int r = Enter(ring_fd_, 0, 1, IORING_ENTER_GETEVENTS);
    // Anything else means the ring cannot wait at all; spinning would not help.
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) break;
  }
}

void Uring::Kick() {
  const uint64_t one = 1;
  (void)!write(event_fd_, &one, sizeof one);
}

void Uring::Close() {
  if (sqes_) munmap(sqes_, sqes_size_);
  if (cq_ring_ && cq_ring_ != sq_ring_) munmap(cq_ring_, cq_ring_size_);
  if (sq_ring_) munmap(sq_ring_, sq_ring_size_);
  // Closing the ring fd unregisters the eventfd.
  if (ring_fd_ >= 0) close(ring_fd_);
  if (event_fd_ >= 0) close(event_fd_);
  ring_fd_ = event_fd_ = -1;
  sq_ring_ = cq_ring_ = nullptr;
  sqes_ = nullptr;
  in_flight_ = 0;
}

}  // namespace iapp

#else  // !IAPP_HAVE_IO_URING

namespace iapp {

Uring::~Uring() {}
int Uring::Open(unsigned) { return -ENOSYS; }
bool Uring::Read(int, void*, uint32_t, uint64_t, uint64_t) { return false; }
bool Uring::Write(int, const void*, uint32_t, uint64_t, uint64_t) { return false; }
bool Uring::Readv(int, const iovec*, unsigned, uint64_t, uint64_t) { return false; }
bool Uring::Writev(int, const iovec*, unsigned, uint64_t, uint64_t) { return false; }
bool Uring::Fsync(int, bool, uint64_t) { return false; }
int Uring::Submit() { return -EBADF; }
unsigned Uring::queued() const { return 0; }
void Uring::DropQueued(std::vector<uint64_t>*) {}
size_t Uring::Reap(UringCompletion*, size_t) { return 0; }
void Uring::WaitAll(std::vector<UringCompletion>*) {}
void Uring::Close() {}
void Uring::Kick() {}

}  // namespace iapp

#endif
