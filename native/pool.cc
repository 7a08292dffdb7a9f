#include "pool.h"

#include <cerrno>
#include <fcntl.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

#include "sys.h"

namespace iapp {

DoneQueue::~DoneQueue() {
  if (wake_wr_ >= 0 && wake_wr_ != wake_rd_) SysClose(wake_wr_);
  if (wake_rd_ >= 0) SysClose(wake_rd_);
}

int DoneQueue::Open() {
#if defined(__linux__)
  wake_rd_ = wake_wr_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  return wake_rd_ < 0 ? -errno : 0;
#else
  int p[2];
  if (pipe(p) < 0) return -errno;
  SetNonblockCloexec(p[0]);
  SetNonblockCloexec(p[1]);
  wake_rd_ = p[0];
  wake_wr_ = p[1];
  return 0;
#endif
}

void DoneQueue::Push(DiskJob* job) {
  bool wake;
  {
    std::lock_guard<std::mutex> lk(mu_);
    wake = done_.empty();
    done_.push_back(job);
  }
  if (wake) {
    // Only the empty -> non-empty edge writes the waker; a full counter or pipe already wakes.
#if defined(__linux__)
    uint64_t one = 1;
    ssize_t r = write(wake_wr_, &one, sizeof one);
#else
    char one = 1;
    ssize_t r = write(wake_wr_, &one, 1);
#endif
    (void)r;
  }
  if (in_flight_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    std::lock_guard<std::mutex> lk(mu_);
    idle_.notify_all();
  }
}

void DoneQueue::Take(std::vector<DiskJob*>* out) {
  char buf[64];
  while (read(wake_rd_, buf, sizeof buf) > 0) {
  }
  std::lock_guard<std::mutex> lk(mu_);
  out->swap(done_);
}

void DoneQueue::WaitIdle() {
  std::unique_lock<std::mutex> lk(mu_);
  idle_.wait(lk, [this] { return in_flight_.load(std::memory_order_acquire) == 0; });
}

DiskPool& DiskPool::Get() {
  // Never destroyed: pool threads may still be parked in Work() when the process exits.
  static DiskPool* pool = new DiskPool();
  return *pool;
}

void DiskPool::SetMaxThreads(int n) {
  std::lock_guard<std::mutex> lk(mu_);
  if (n >= 1) max_threads_ = n;
}

int DiskPool::Submit(std::shared_ptr<DoneQueue> done, DiskJob* job) {
  std::unique_lock<std::mutex> lk(mu_);
  // A thread per queued job up to the limit: disks (and the page cache) serve several requests
  // at once, and a job that blocks long must not hold up the others.
  const size_t waiting = queue_.size() - head_;
  if (idle_ <= static_cast<int>(waiting) && threads_ < max_threads_) {
    try {
      std::thread(&DiskPool::Work, this).detach();
      ++threads_;
    } catch (const std::system_error&) {
      if (threads_ == 0) return -EAGAIN;  // nobody would ever run it
    }
  }
  try {
    queue_.push_back(Item{done, job});
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  done->in_flight_.fetch_add(1, std::memory_order_acq_rel);
  lk.unlock();
  ready_.notify_one();
  return 0;
}

void DiskPool::Work() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    ++idle_;
    ready_.wait(lk, [this] { return head_ < queue_.size(); });
    --idle_;
    Item it = std::move(queue_[head_]);
    if (++head_ == queue_.size()) {
      queue_.clear();
      head_ = 0;
    }
    lk.unlock();
    it.job->Run();
    it.done->Push(it.job);
    it.done.reset();
    lk.lock();
  }
}

}  // namespace iapp
