#include "conns.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "sys.h"

namespace iapp {

namespace {
ConnCounts g_own;
std::atomic<ConnCounts*> g_conns{&g_own};
constexpr size_t kPage = 4096;
static_assert(sizeof(ConnCounts) <= kPage, "one page");
// Lock-free atomics are address-free, so they work across processes in shared memory.
static_assert(std::atomic<int64_t>::is_always_lock_free, "shared counters need lock-free atomics");

int MakeAnonymousFile() {
#if defined(__linux__)
  int fd = memfd_create("iapp-connections", 0);  // no MFD_CLOEXEC: children inherit it
  return fd < 0 ? -errno : fd;
#elif defined(__FreeBSD__)
  int fd = shm_open(SHM_ANON, O_RDWR, 0600);
  if (fd < 0) return -errno;
  int fl = fcntl(fd, F_GETFD);
  if (fl >= 0) fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
  return fd;
#else
  // macOS: a named object, unlinked at once, so only the fds keep it.
  char name[64];
  snprintf(name, sizeof name, "/iapp-conns-%d-%ld", getpid(), static_cast<long>(random()));
  int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return -errno;
  shm_unlink(name);
  return fd;
#endif
}

int Map(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  if (st.st_size != static_cast<off_t>(kPage)) return -EINVAL;
  void* p = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return -errno;
  // Stays mapped for the life of the process: loops may count into it until the very end.
  g_conns.store(static_cast<ConnCounts*>(p), std::memory_order_release);
  return 0;
}
}  // namespace

ConnCounts* ProcessConns() { return g_conns.load(std::memory_order_acquire); }

int CreateSharedConns() {
  if (ProcessConns()->open.load(std::memory_order_relaxed) > 0) return -EBUSY;
  int fd = MakeAnonymousFile();
  if (fd < 0) return fd;
  if (ftruncate(fd, kPage) < 0) {  // zero-filled
    int e = errno;
    SysClose(fd);
    return -e;
  }
  int r = Map(fd);
  if (r < 0) {
    SysClose(fd);
    return r;
  }
  return fd;
}

int AttachSharedConns(int fd) {
  if (ProcessConns()->open.load(std::memory_order_relaxed) > 0) return -EBUSY;
  return Map(fd);
}

}  // namespace iapp
