// Files on a loop: open/close/stat/truncate, reads and writes at offsets, fsync and file-to-file
// copy. Every blocking call runs on the disk pool (pool.h); its result comes back to the owning
// loop as a kRecFile record, batched with the loop's other events.
#pragma once
#include <sys/uio.h>

#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "live.h"
#include "poller.h"
#include "pool.h"
#include "uring.h"

namespace iapp {

class Loop;

// The most iovecs one readv/writev takes.
#ifndef IOV_MAX
constexpr int kIovLimit = 1024;
#else
constexpr int kIovLimit = IOV_MAX;
#endif
// Drops n bytes from the front of iov[*i..], and the entries that become empty.
void AdvanceIov(std::vector<iovec>& iov, size_t* i, size_t n);

// An open file descriptor shared by the file table and the operations using it (a pool job, a
// sendFile queued on a socket): the last holder closes it, so closing a File while a transfer
// still reads from it cannot make the transfer read another file that reused the number.
struct FileRef {
  FileRef(int f, bool reg) : fd(f), regular(reg) {}
  ~FileRef();
  FileRef(const FileRef&) = delete;
  FileRef& operator=(const FileRef&) = delete;
  Live<kLiveFile> live;
  int fd;
  // A regular file or block device: reads and writes finish. Others (FIFOs, terminals) are
  // opened non-blocking and never go to the ring, so nothing waits on them forever.
  bool regular;
};

// Which engine runs a loop's reads, writes and syncs: io_uring where the kernel allows a ring
// (auto), or always the thread pool. Open, stat, truncate, close and copies use the pool.
enum DiskEngine : int { kEngineAuto = 0, kEnginePool = 1, kEngineUring = 2 };
// The engine loops opened from now on use (process-wide).
void SetDiskEngine(int engine);
int DiskEngineSetting();

enum FileOp : int { kFileOpen, kFileClose, kFileStat, kFileTruncate, kFileRead, kFileWrite,
                    kFileSync, kFileCopy, kFileReadAhead };

class FileIo {
 public:
  explicit FileIo(Loop* loop) : loop_(loop) {}
  ~FileIo() { Close(); }
  int Open();    // 0 or -errno (kEngineUring without a ring: the ring's error)
  void Close();  // waits for running jobs, closes every file; idempotent

  // Each starts one operation and returns 0, or -errno if it could not be started (then no
  // record follows). `req` comes back as the record's id.
  // `beneath`: 0, or the id of an open directory of this loop that `path` must resolve beneath
  // (beneath.h); EBADF if it is not open here.
  int OpenFile(double req, std::string path, int flags, int mode, uint64_t beneath = 0);
  int CloseFile(double req, uint64_t file);
  int Stat(double req, uint64_t file);
  int Truncate(double req, uint64_t file, uint64_t length);
  // The iovecs point into JS buffers the caller keeps alive until the record arrives.
  int Read(double req, uint64_t file, std::vector<iovec> iov, uint64_t offset);
  int Write(double req, uint64_t file, std::vector<iovec> iov, uint64_t offset);
  int Sync(double req, uint64_t file, bool datasync);
  // length UINT64_MAX: up to the end of src.
  int Copy(double req, uint64_t src, uint64_t dst, uint64_t src_off, uint64_t dst_off,
           uint64_t length);
  // Reads [offset, offset + length) of `file` on the pool, into the page cache, and then calls
  // ReadAheadDone(offset) on socket `socket` if it is still open (no record for JS). 0 or -errno.
  int ReadAhead(std::shared_ptr<FileRef> file, uint64_t offset, uint64_t length, uint64_t socket);

  std::shared_ptr<FileRef> Find(uint64_t file) const;
  bool uses_ring() const { return ring_ != nullptr; }
  // Hands the operations queued on the ring to the kernel (the loop calls it before it sleeps,
  // so the reads of one turn go in one syscall).
  void SubmitRing();
  size_t open_files() const { return files_.size(); }
  // Operations started and not completed (on the ring: once submitted).
  size_t in_flight() const { return (done_ ? done_->in_flight() : 0) + (ring_ ? ring_->in_flight() : 0); }

 private:
  class Job;
  // A read, write or sync on the ring. A short read or write goes on from where it stopped.
  struct RingOp {
    FileOp kind;
    double req;
    std::shared_ptr<FileRef> file;
    std::vector<iovec> iov;
    size_t i = 0;  // first iovec not yet done
    uint64_t off = 0, done = 0;
    bool datasync = false;
  };
  class Waker : public Watcher {
   public:
    Waker(FileIo* io, bool ring) : io_(io), ring_(ring) {}
    void OnEvent(uint32_t) override {
      if (ring_) io_->ReapRing();
      else io_->Complete();
    }
    void OnPollError(int err) override { io_->broken_ = err; }
   private:
    FileIo* io_;
    bool ring_;
  };
  int Start(Job* job);
  void Complete();
  void Finish(Job* job);
  void Emit(double req, int64_t result, int sys);
  // Queues a read, write or sync on the ring; false (nothing queued) when there is no ring or it
  // is full, and the pool takes the operation instead.
  bool Queue(RingOp* op);
  int Transfer(FileOp kind, double req, uint64_t file, std::vector<iovec> iov, uint64_t offset);
  void ReapRing();
  void ToPool(std::unique_ptr<RingOp> op);

  Loop* loop_;
  friend class Waker;
  int broken_ = 0;  // the kernel refused to watch a waker: every operation fails with this
  Waker waker_{this, false};
  Waker ring_waker_{this, true};
  std::unique_ptr<Uring> ring_;
  bool ring_queued_ = false;
  std::shared_ptr<DoneQueue> done_;
  std::unordered_map<uint64_t, std::shared_ptr<FileRef>> files_;
  uint64_t next_id_ = 1;
  bool closed_ = false;
  std::vector<DiskJob*> taken_;
};

}  // namespace iapp
