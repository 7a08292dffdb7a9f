// The disk pool: a few process-wide threads that run blocking file work (open, pread, pwrite,
// fsync, copy_file_range) so that no loop thread ever waits on a disk. A finished job goes back
// to the queue of the loop that submitted it, which wakes through its poller and completes the
// job on its own thread.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace iapp {

class DiskJob {
 public:
  virtual ~DiskJob() = default;
  virtual void Run() = 0;  // on a pool thread: syscalls only, no N-API, no loop state
};

// Finished jobs of one loop. Pool threads push; the loop takes them when its waker fires.
class DoneQueue {
 public:
  ~DoneQueue();
  int Open();  // makes the waker: 0 or -errno
  int wake_fd() const { return wake_rd_; }
  void Push(DiskJob* job);            // pool thread
  void Take(std::vector<DiskJob*>* out);  // loop thread; also clears the waker
  // Blocks until no job of this queue is still running (at loop close, so that no pool thread
  // writes into memory JS is about to free).
  void WaitIdle();
  size_t in_flight() const { return in_flight_.load(std::memory_order_acquire); }
  // Set at loop close: long jobs (copies, big transfers) stop between chunks.
  std::atomic<bool> cancelled{false};

 private:
  friend class DiskPool;
  std::mutex mu_;
  std::condition_variable idle_;
  std::vector<DiskJob*> done_;
  std::atomic<size_t> in_flight_{0};
  int wake_rd_ = -1, wake_wr_ = -1;  // the same fd for an eventfd
};

class DiskPool {
 public:
  static DiskPool& Get();
  // The most threads the pool may start (it starts them as work arrives). Process-wide.
  void SetMaxThreads(int n);
  int max_threads() const { return max_threads_; }
  // Threads started so far (they stay until the process exits, parked when idle).
  int threads() {
    std::lock_guard<std::mutex> lk(mu_);
    return threads_;
  }
  // Queues job to run and then be pushed onto `done`. 0, or -EAGAIN if no thread could be
  // started (the job is not queued; the caller still owns it).
  int Submit(std::shared_ptr<DoneQueue> done, DiskJob* job);
  // Takes back the jobs of `done` no thread has started (into *out): at loop close they need
  // not run, and the close need not wait for them.
  void Withdraw(DoneQueue* done, std::vector<DiskJob*>* out);

 private:
  struct Item {
    std::shared_ptr<DoneQueue> done;
    DiskJob* job;
  };
  void Work();
  std::mutex mu_;
  std::condition_variable ready_;
  std::vector<Item> queue_;
  size_t head_ = 0;
  int threads_ = 0, idle_ = 0, max_threads_ = 4;
};

}  // namespace iapp
