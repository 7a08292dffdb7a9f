#include "pool.h"

#include "faults.h"

#include <cerrno>
#include <system_error>
#include <thread>
#include <unistd.h>
#if defined(__linux__)
#endif

#include "sys.h"

namespace iapp {

DoneQueue::~DoneQueue() { CloseWaker(wake_rd_, wake_wr_); }

int DoneQueue::Open() { return OpenWaker(&wake_rd_, &wake_wr_); }

void DoneQueue::Push(DiskJob* job) {
  bool wake;
  {
    std::lock_guard<std::mutex> lk(mu_);
    wake = done_.empty();
    done_.push_back(job);
  }
  if (wake) SignalWaker(wake_wr_);  // only the empty -> non-empty edge needs a wake
  if (in_flight_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    std::lock_guard<std::mutex> lk(mu_);
    idle_.notify_all();
  }
}

void DoneQueue::Take(std::vector<DiskJob*>* out) {
  // Cleared before taking: a job pushed after this read either is taken below or wakes again.
  DrainWaker(wake_rd_);
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
      if (int e = Fault(kFaultThread)) throw std::system_error(e, std::generic_category());
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

void DiskPool::Withdraw(DoneQueue* done, std::vector<DiskJob*>* out) {
  std::lock_guard<std::mutex> lk(mu_);
  size_t keep = head_;
  for (size_t i = head_; i < queue_.size(); ++i) {
    if (queue_[i].done.get() == done) {
      out->push_back(queue_[i].job);
      done->in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    } else {
      queue_[keep++] = std::move(queue_[i]);
    }
  }
  queue_.resize(keep);
  if (head_ == queue_.size()) {
    queue_.clear();
    head_ = 0;
  }
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
