#include "file.h"

#include <atomic>
#include <cerrno>
#include <climits>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "syscalls.h"
#include "faults.h"
#include "loop.h"
#include "platform.h"
#include "socket.h"
#include "sys.h"

namespace iapp {

namespace {
std::atomic<int> g_engine{kEngineAuto};
constexpr unsigned kRingEntries = 256;  // operations in flight on one loop's ring
}  // namespace

void SetDiskEngine(int engine) { g_engine.store(engine, std::memory_order_relaxed); }
int DiskEngineSetting() { return g_engine.load(std::memory_order_relaxed); }

FileRef::~FileRef() {
  if (fd >= 0) SysClose(fd);
}

void AdvanceIov(std::vector<iovec>& iov, size_t* i, size_t n) {
  while (n > 0 && *i < iov.size()) {
    if (n >= iov[*i].iov_len) {
      n -= iov[*i].iov_len;
      ++*i;
    } else {
      iov[*i].iov_base = static_cast<char*>(iov[*i].iov_base) + n;
      iov[*i].iov_len -= n;
      n = 0;
    }
  }
  while (*i < iov.size() && iov[*i].iov_len == 0) ++*i;
}

namespace {
constexpr size_t kCopyBuf = 1 << 20;  // the read/write fallback of copy
constexpr uint64_t kCopyChunk = 64 << 20;  // per copy_file_range call, so a close can cut in

}  // namespace

class FileIo::Job : public DiskJob {
 public:
  FileOp op;
  double req = 0;
  std::shared_ptr<FileRef> file, dst;
  std::string path;
  int flags = 0, mode = 0;
  std::vector<iovec> iov;
  uint64_t off = 0, off2 = 0, len = 0;
  bool datasync = false;
  bool regular = false;  // open: what it opened
  const std::atomic<bool>* cancel = nullptr;  // the loop is closing: stop between chunks
  bool Cancelled() {
    if (cancel == nullptr || !cancel->load(std::memory_order_relaxed)) return false;
    result = -ECANCELED;
    return true;
  }
  int64_t result = 0;  // bytes, a new fd, or -errno
  uint64_t base = 0;   // bytes the ring moved before handing the rest to the pool
  int sys = kSysNone;
  struct stat st {};

  void Run() override {
    switch (op) {
      case kFileOpen: {
        // Non-blocking: opening a FIFO must not wait for its other end (it would hold a pool
        // thread, and the loop's close, forever). Regular files ignore the flag.
        int fd;
        if (file) {  // beneath a directory: the kernel (or our walk) keeps the lookup inside it
          int s = kSysOpenat;
          fd = OpenBeneath(file->fd, path.c_str(), flags | O_NONBLOCK, mode, &s);
          result = fd;
          sys = fd < 0 ? s : kSysNone;
        } else {
          do fd = open(path.c_str(), flags | O_CLOEXEC | O_NONBLOCK, mode);
          while (fd < 0 && errno == EINTR);
          Set(fd, kSysOpen);
        }
        if (fd >= 0 && fstat(fd, &st) == 0)
          regular = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
        break;
      }
      case kFileClose:
        Set(close(file->fd), kSysClose);
        file->fd = -1;  // released even on EINTR or EIO (Linux, FreeBSD)
        break;
      case kFileStat:
        Set(fstat(file->fd, &st), kSysFstat);
        break;
      case kFileTruncate:
        Set(ftruncate(file->fd, static_cast<off_t>(off)), kSysFtruncate);
        break;
      case kFileRead:
      case kFileWrite:
        Transfer(op == kFileWrite);
        break;
      case kFileSync:
        if (int e = Fault(kFaultDisk)) {
          result = -e;
          sys = kSysFsync;
          break;
        }
#if defined(__APPLE__)
        Set(fsync(file->fd), kSysFsync);
#else
        Set(datasync ? fdatasync(file->fd) : fsync(file->fd), kSysFsync);
#endif
        break;
      case kFileCopy:
        Copy();
        break;
      case kFileReadAhead:
        ReadAhead();
        break;
    }
  }

 private:
  void Set(int r, int s) {
    result = r < 0 ? -errno : r;
    if (r < 0) sys = s;
  }
  // The whole of iov at `off`: reads stop early only at end of file; a short write continues.
  void Transfer(bool write) {
    size_t i = 0;
    uint64_t done = 0;
    AdvanceIov(iov, &i, 0);
    while (i < iov.size()) {
      if (done > 0 && Cancelled()) return;
      const int cnt = static_cast<int>(iov.size() - i < static_cast<size_t>(kIovLimit) ? iov.size() - i : kIovLimit);
      const off_t at = static_cast<off_t>(off + done);
      const int injected = Fault(kFaultDisk);
      ssize_t n = injected != 0 ? (errno = injected, -1)
                  : write       ? pwritev(file->fd, &iov[i], cnt, at)
                                : preadv(file->fd, &iov[i], cnt, at);
      if (n < 0) {
        if (errno == EINTR) continue;
        result = -errno;
        sys = write ? kSysPwrite : kSysPread;
        return;
      }
      if (n == 0) {
        if (!write) break;  // end of file
        result = -EIO;      // a regular file never takes 0 bytes
        sys = kSysPwrite;
        return;
      }
      done += static_cast<uint64_t>(n);
      AdvanceIov(iov, &i, static_cast<size_t>(n));
    }
    result = static_cast<int64_t>(base + done);
  }
  // Reads the range and throws the bytes away: what matters is that the pages are cached.
  void ReadAhead() {
    std::unique_ptr<char[]> buf(new (std::nothrow) char[kCopyBuf]);
    if (!buf) return;  // then sendfile waits for the disk itself
    for (uint64_t done = 0; done < len && !Cancelled();) {
      const size_t want = len - done < kCopyBuf ? static_cast<size_t>(len - done) : kCopyBuf;
      ssize_t n = pread(file->fd, buf.get(), want, static_cast<off_t>(off + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // an error is sendfile's to report, when it meets it
      done += static_cast<uint64_t>(n);
    }
  }
  void Copy() {
    uint64_t done = 0;
#if defined(IAPP_HAVE_COPY_FILE_RANGE)
    bool fallback = false;
    while (done < len) {
      if (Cancelled()) return;
      off_t a = static_cast<off_t>(off + done), b = static_cast<off_t>(off2 + done);
      const uint64_t want = len - done < kCopyChunk ? len - done : kCopyChunk;
      ssize_t n = copy_file_range(file->fd, &a, dst->fd, &b, want, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        // Across filesystems on older kernels, on special files, or where the syscall is
        // missing: the plain loop below copies the rest.
        if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
            errno == EPERM) {
          fallback = true;
          break;
        }
        result = -errno;
        sys = kSysCopyFileRange;
        return;
      }
      if (n == 0) {
        // End of src, or a file whose size lies (procfs, sysfs: copy_file_range copies nothing
        // from them): the plain loop settles which.
        if (done == 0) fallback = true;
        break;
      }
      done += static_cast<uint64_t>(n);
    }
    if (!fallback) {
      result = static_cast<int64_t>(done);
      return;
    }
#endif
    std::unique_ptr<char[]> buf(new (std::nothrow) char[kCopyBuf]);
    if (!buf) {
      result = -ENOMEM;
      sys = kSysCopyFileRange;
      return;
    }
    while (done < len) {
      if (Cancelled()) return;
      const size_t want = len - done < kCopyBuf ? static_cast<size_t>(len - done) : kCopyBuf;
      ssize_t n = pread(file->fd, buf.get(), want, static_cast<off_t>(off + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        result = -errno;
        sys = kSysPread;
        return;
      }
      if (n == 0) break;
      for (ssize_t w = 0; w < n;) {
        ssize_t m = pwrite(dst->fd, buf.get() + w, static_cast<size_t>(n - w),
                           static_cast<off_t>(off2 + done + static_cast<uint64_t>(w)));
        if (m < 0 && errno == EINTR) continue;
        if (m <= 0) {
          result = m < 0 ? -errno : -EIO;
          sys = kSysPwrite;
          return;
        }
        w += m;
      }
      done += static_cast<uint64_t>(n);
    }
    result = static_cast<int64_t>(done);
  }
};

int FileIo::Open() {
  auto q = std::make_shared<DoneQueue>();
  int r = q->Open();
  if (r < 0) return r;
  const int engine = g_engine.load(std::memory_order_relaxed);
  if (engine != kEnginePool) {
    auto ring = std::unique_ptr<Uring>(new (std::nothrow) Uring());
    int rr = ring ? ring->Open(kRingEntries) : -ENOMEM;
    if (rr == 0) {
      ring_ = std::move(ring);
      ring_waker_.fd = ring_->event_fd();
      ring_waker_.want = kWantRead;
      loop_->poller().Update(&ring_waker_);
      loop_->SetControl(&ring_waker_, true);
    } else if (engine == kEngineUring) {
      return rr;  // asked for explicitly: say why not
    }
  }
  done_ = std::move(q);
  waker_.fd = done_->wake_fd();
  waker_.want = kWantRead;
  loop_->poller().Update(&waker_);
  loop_->SetControl(&waker_, true);
  return 0;
}

void FileIo::ToPool(std::unique_ptr<RingOp> op) {
  const int sys = op->kind == kFileWrite ? kSysPwrite : op->kind == kFileRead ? kSysPread : kSysFsync;
  Job* job = new (std::nothrow) Job();
  if (job == nullptr) return Emit(op->req, -ENOMEM, sys);
  job->op = op->kind;
  job->req = op->req;
  job->file = std::move(op->file);
  job->datasync = op->datasync;
  if (op->i < op->iov.size())
    job->iov.assign(op->iov.begin() + static_cast<std::ptrdiff_t>(op->i), op->iov.end());
  job->off = op->off + op->done;
  job->base = op->done;
  int r = Start(job);
  if (r < 0) Emit(op->req, r, sys);
}

int FileIo::Transfer(FileOp kind, double req, uint64_t file, std::vector<iovec> iov, uint64_t offset) {
  std::shared_ptr<FileRef> ref = Find(file);
  if (!ref) return -EBADF;
  if (ring_ && !closed_ && broken_ == 0 && ref->regular) {
    auto* op = new (std::nothrow) RingOp();
    if (op == nullptr) return -ENOMEM;
    op->kind = kind;
    op->req = req;
    op->file = ref;
    op->iov = std::move(iov);
    op->off = offset;
    AdvanceIov(op->iov, &op->i, 0);
    if (op->i == op->iov.size() && kind != kFileSync) {  // nothing to move
      Emit(req, 0, kSysNone);
      delete op;
      return 0;
    }
    if (Queue(op)) return 0;
    iov = std::move(op->iov);  // full: the pool does it
    delete op;
  }
  Job* job = new (std::nothrow) Job();
  if (job == nullptr) return -ENOMEM;
  job->op = kind;
  job->req = req;
  job->file = std::move(ref);
  job->iov = std::move(iov);
  job->off = offset;
  return Start(job);
}

void FileIo::Close() {
  if (closed_) return;
  closed_ = true;
  if (done_) {
    // Jobs not started need not run; long ones stop between chunks; those still running read or
    // write buffers JS owns: wait for them before JS may free those.
    done_->cancelled.store(true, std::memory_order_relaxed);
    DiskPool::Get().Withdraw(done_.get(), &taken_);
    done_->WaitIdle();
    std::vector<DiskJob*> finished;
    done_->Take(&finished);
    taken_.insert(taken_.end(), finished.begin(), finished.end());
    for (DiskJob* j : taken_) {
      auto* job = static_cast<Job*>(j);
      if (job->op == kFileOpen && job->result >= 0) SysClose(static_cast<int>(job->result));
      delete job;
    }
    taken_.clear();
    loop_->poller().Remove(&waker_);
    loop_->SetControl(&waker_, false);
    waker_.fd = -1;
  }
  if (ring_) {
    // The same for the ring: what the kernel has not taken is dropped, what it has may still
    // write into JS buffers.
    std::vector<uint64_t> unsent;
    ring_->DropQueued(&unsent);
    for (uint64_t ud : unsent) delete reinterpret_cast<RingOp*>(static_cast<uintptr_t>(ud));
    std::vector<UringCompletion> rest;
    ring_->WaitAll(&rest);
    for (const UringCompletion& c : rest) delete reinterpret_cast<RingOp*>(static_cast<uintptr_t>(c.user_data));
    loop_->poller().Remove(&ring_waker_);
    loop_->SetControl(&ring_waker_, false);
    ring_waker_.fd = -1;
    ring_->Close();
  }
  files_.clear();
}

std::shared_ptr<FileRef> FileIo::Find(uint64_t file) const {
  auto it = files_.find(file);
  return it == files_.end() ? nullptr : it->second;
}

int FileIo::Start(Job* job) {
  if (done_) job->cancel = &done_->cancelled;
  int r = closed_ ? -EBADF : broken_ != 0 ? -broken_ : DiskPool::Get().Submit(done_, job);
  if (r < 0) delete job;
  return r;
}

void FileIo::Complete() {
  done_->Take(&taken_);
  for (DiskJob* j : taken_) Finish(static_cast<Job*>(j));
  taken_.clear();
}

void FileIo::Finish(Job* job) {
  std::unique_ptr<Job> owned(job);
  if (job->op == kFileReadAhead) {
    // The socket that asked may have closed meanwhile: then nobody waits.
    Handle* h = loop_->Find(static_cast<uint64_t>(job->req));
    if (h != nullptr && h->kind == Handle::Kind::kSocket) static_cast<Socket*>(h)->ReadAheadDone(job->off);
    return;
  }
  if (job->op == kFileOpen && job->result >= 0) {
    const uint64_t id = next_id_++;
    std::shared_ptr<FileRef> ref;
    try {
      ref = std::make_shared<FileRef>(static_cast<int>(job->result), job->regular);
    } catch (const std::bad_alloc&) {
      SysClose(static_cast<int>(job->result));
    }
    try {
      if (ref) files_.emplace(id, ref);
      job->result = ref ? static_cast<int64_t>(id) : -ENOMEM;
    } catch (const std::bad_alloc&) {
      job->result = -ENOMEM;  // ref's destructor closes the fd, once
    }
    if (job->result < 0) job->sys = kSysOpen;
  }
  double* v = loop_->Emit(kRecFile, static_cast<uint64_t>(job->req));
  v[0] = static_cast<double>(job->result);
  v[1] = job->sys;
  if (job->op == kFileStat && job->result >= 0) {
    v[2] = static_cast<double>(job->st.st_size);
#if defined(__APPLE__)
    v[3] = job->st.st_mtimespec.tv_sec * 1e3 + job->st.st_mtimespec.tv_nsec / 1e6;
#else
    v[3] = job->st.st_mtim.tv_sec * 1e3 + job->st.st_mtim.tv_nsec / 1e6;
#endif
    v[4] = job->st.st_mode;
    v[5] = static_cast<double>(job->st.st_blocks) * 512;
  }
}

void FileIo::Emit(double req, int64_t result, int sys) {
  double* v = loop_->Emit(kRecFile, static_cast<uint64_t>(req));
  v[0] = static_cast<double>(result);
  v[1] = sys;
}

namespace {
template <typename J>
J* NewJob() {
  return new (std::nothrow) J();
}
}  // namespace

#define IAPP_NEW_JOB(job, kind)          \
  Job* job = NewJob<Job>();              \
  if (job == nullptr) return -ENOMEM;    \
  job->op = kind;                        \
  job->req = req

int FileIo::OpenFile(double req, std::string path, int flags, int mode, uint64_t beneath) {
  std::shared_ptr<FileRef> dir;
  if (beneath != 0) {
    dir = Find(beneath);  // held by the job: closing the directory meanwhile cannot reuse its fd
    if (!dir) return -EBADF;
  }
  IAPP_NEW_JOB(job, kFileOpen);
  job->file = std::move(dir);
  job->path = std::move(path);
  job->flags = flags;
  job->mode = mode;
  return Start(job);
}

int FileIo::CloseFile(double req, uint64_t file) {
  auto it = files_.find(file);
  if (it == files_.end()) return -EBADF;
  std::shared_ptr<FileRef> ref = std::move(it->second);
  files_.erase(it);
  IAPP_NEW_JOB(job, kFileClose);
  if (ref.use_count() > 1) {
    // A transfer still holds it: the last holder closes it. Report success now.
    job->result = 0;
    Finish(job);
    return 0;
  }
  job->file = std::move(ref);
  return Start(job);
}

#define IAPP_FILE_JOB(job, kind)                 \
  std::shared_ptr<FileRef> ref = Find(file);     \
  if (!ref) return -EBADF;                       \
  IAPP_NEW_JOB(job, kind);                       \
  job->file = std::move(ref)

int FileIo::Stat(double req, uint64_t file) {
  IAPP_FILE_JOB(job, kFileStat);
  return Start(job);
}

int FileIo::Truncate(double req, uint64_t file, uint64_t length) {
  IAPP_FILE_JOB(job, kFileTruncate);
  job->off = length;
  return Start(job);
}

int FileIo::Read(double req, uint64_t file, std::vector<iovec> iov, uint64_t offset) {
  return Transfer(kFileRead, req, file, std::move(iov), offset);
}

int FileIo::Write(double req, uint64_t file, std::vector<iovec> iov, uint64_t offset) {
  return Transfer(kFileWrite, req, file, std::move(iov), offset);
}

int FileIo::Sync(double req, uint64_t file, bool datasync) {
  std::shared_ptr<FileRef> found = Find(file);
  if (ring_ && !closed_ && broken_ == 0 && found && found->regular) {
    std::shared_ptr<FileRef> ref = std::move(found);
    auto* op = new (std::nothrow) RingOp();
    if (op == nullptr) return -ENOMEM;
    op->kind = kFileSync;
    op->req = req;
    op->file = std::move(ref);
    op->datasync = datasync;
    if (Queue(op)) return 0;
    delete op;
  }
  IAPP_FILE_JOB(job, kFileSync);
  job->datasync = datasync;
  return Start(job);
}

int FileIo::ReadAhead(std::shared_ptr<FileRef> file, uint64_t offset, uint64_t length, uint64_t socket) {
  Job* job = NewJob<Job>();
  if (job == nullptr) return -ENOMEM;
  job->op = kFileReadAhead;
  job->req = static_cast<double>(socket);
  job->file = std::move(file);
  job->off = offset;
  job->len = length;
  return Start(job);
}

int FileIo::Copy(double req, uint64_t src, uint64_t dst, uint64_t src_off, uint64_t dst_off,
                 uint64_t length) {
  std::shared_ptr<FileRef> d = Find(dst);
  if (!d) return -EBADF;
  // Within one file, overlapping ranges would read what the copy has just written.
  if (src == dst && (length == UINT64_MAX || (src_off < dst_off + length && dst_off < src_off + length)))
    return -EINVAL;
  uint64_t file = src;
  IAPP_FILE_JOB(job, kFileCopy);
  job->dst = std::move(d);
  job->off = src_off;
  job->off2 = dst_off;
  job->len = length;
  return Start(job);
}

}  // namespace iapp
