#include "file.h"

#include <cerrno>
#include <climits>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "loop.h"
#include "sys.h"

namespace iapp {

FileRef::~FileRef() {
  if (fd >= 0) SysClose(fd);
}

namespace {
constexpr size_t kCopyBuf = 1 << 20;  // the read/write fallback of copy
#ifndef IOV_MAX
constexpr int kIovLimit = 1024;
#else
constexpr int kIovLimit = IOV_MAX;
#endif

// Drops n bytes from the front of iov[*i..].
void Advance(std::vector<iovec>& iov, size_t* i, size_t n) {
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
  int64_t result = 0;  // bytes, a new fd, or -errno
  int sys = kSysNone;
  struct stat st {};

  void Run() override {
    switch (op) {
      case kFileOpen: {
        int fd;
        do fd = open(path.c_str(), flags | O_CLOEXEC, mode);
        while (fd < 0 && errno == EINTR);
        Set(fd, kSysOpen);
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
#if defined(__APPLE__)
        Set(fsync(file->fd), kSysFsync);
#else
        Set(datasync ? fdatasync(file->fd) : fsync(file->fd), kSysFsync);
#endif
        break;
      case kFileCopy:
        Copy();
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
    Advance(iov, &i, 0);
    while (i < iov.size()) {
      const int cnt = static_cast<int>(iov.size() - i < static_cast<size_t>(kIovLimit) ? iov.size() - i : kIovLimit);
      const off_t at = static_cast<off_t>(off + done);
      ssize_t n = write ? pwritev(file->fd, &iov[i], cnt, at) : preadv(file->fd, &iov[i], cnt, at);
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
      Advance(iov, &i, static_cast<size_t>(n));
    }
    result = static_cast<int64_t>(done);
  }
  void Copy() {
    uint64_t done = 0;
#if defined(__linux__)
    bool fallback = false;
    while (done < len) {
      loff_t a = static_cast<loff_t>(off + done), b = static_cast<loff_t>(off2 + done);
      const uint64_t want = len - done < (1u << 30) ? len - done : (1u << 30);
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
      if (n == 0) break;  // end of src
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
  done_ = std::move(q);
  waker_.fd = done_->wake_fd();
  waker_.want = kWantRead;
  loop_->poller().Update(&waker_);
  return 0;
}

void FileIo::Close() {
  if (closed_) return;
  closed_ = true;
  if (done_) {
    // Jobs still running read or write buffers JS owns: wait for them before JS may free those.
    done_->WaitIdle();
    done_->Take(&taken_);
    for (DiskJob* j : taken_) {
      auto* job = static_cast<Job*>(j);
      if (job->op == kFileOpen && job->result >= 0) SysClose(static_cast<int>(job->result));
      delete job;
    }
    taken_.clear();
    loop_->poller().Remove(&waker_);
    waker_.fd = -1;
  }
  files_.clear();
}

std::shared_ptr<FileRef> FileIo::Find(uint64_t file) const {
  auto it = files_.find(file);
  return it == files_.end() ? nullptr : it->second;
}

int FileIo::Start(Job* job) {
  int r = closed_ ? -EBADF : DiskPool::Get().Submit(done_, job);
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
  if (job->op == kFileOpen && job->result >= 0) {
    const uint64_t id = next_id_++;
    try {
      files_.emplace(id, std::make_shared<FileRef>(static_cast<int>(job->result)));
      job->result = static_cast<int64_t>(id);
    } catch (const std::bad_alloc&) {
      SysClose(static_cast<int>(job->result));
      job->result = -ENOMEM;
      job->sys = kSysOpen;
    }
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

int FileIo::OpenFile(double req, std::string path, int flags, int mode) {
  IAPP_NEW_JOB(job, kFileOpen);
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
  IAPP_FILE_JOB(job, kFileRead);
  job->iov = std::move(iov);
  job->off = offset;
  return Start(job);
}

int FileIo::Write(double req, uint64_t file, std::vector<iovec> iov, uint64_t offset) {
  IAPP_FILE_JOB(job, kFileWrite);
  job->iov = std::move(iov);
  job->off = offset;
  return Start(job);
}

int FileIo::Sync(double req, uint64_t file, bool datasync) {
  IAPP_FILE_JOB(job, kFileSync);
  job->datasync = datasync;
  return Start(job);
}

int FileIo::Copy(double req, uint64_t src, uint64_t dst, uint64_t src_off, uint64_t dst_off,
                 uint64_t length) {
  std::shared_ptr<FileRef> d = Find(dst);
  if (!d) return -EBADF;
  uint64_t file = src;
  IAPP_FILE_JOB(job, kFileCopy);
  job->dst = std::move(d);
  job->off = src_off;
  job->off2 = dst_off;
  job->len = length;
  return Start(job);
}

}  // namespace iapp
