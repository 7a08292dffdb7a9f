#include "beneath.h"

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <fcntl.h>
#include <new>
#include <string>
#include <unistd.h>
#include <vector>

#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include "syscalls.h"
#include "sys.h"

namespace iapp {

namespace {

// Symlinks one lookup may follow before it fails with ELOOP: Linux's own limit (MAXSYMLINKS), so
// the walk and openat2 give up on the same trees.
constexpr int kMaxLinks = 40;

std::atomic<int> g_how{kConfineAuto};

#if defined(__linux__) && !defined(SYS_openat2) && (defined(__x86_64__) || defined(__aarch64__))
// Older C library headers: the number is 437 in the table every architecture shares since 5.1.
#define SYS_openat2 437
#endif

#if defined(__linux__) && defined(SYS_openat2)
#define IAPP_HAVE_OPENAT2 1
// struct open_how of linux/openat2.h (version 0, 24 bytes), which older C libraries do not
// declare: the kernel reads its size from the call, so this layout is the ABI.
struct OpenHow {
  uint64_t flags;
  uint64_t mode;
  uint64_t resolve;
};
static_assert(sizeof(OpenHow) == 24, "open_how version 0");
constexpr uint64_t kResolveNoMagicLinks = 0x02;  // RESOLVE_NO_MAGICLINKS: no /proc/self/fd/N jumps
constexpr uint64_t kResolveBeneath = 0x08;       // RESOLVE_BENEATH: never above dirfd

// 0 not asked yet, 1 usable, -1 refused (ENOSYS before Linux 5.6; EPERM from seccomp filters
// that predate the call, as older container runtimes install). Cached: asked once per process.
std::atomic<int> g_openat2{0};

long Openat2(int dirfd, const char* path, int flags, int mode) {
  // The kernel refuses a mode without O_CREAT or O_TMPFILE (EINVAL), unlike openat.
#ifdef O_TMPFILE
  const bool creates = (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
#else
  const bool creates = (flags & O_CREAT) != 0;
#endif
  OpenHow how{static_cast<uint64_t>(static_cast<unsigned>(flags)), creates ? static_cast<uint64_t>(mode) : 0,
              kResolveBeneath | kResolveNoMagicLinks};
  return syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

bool Openat2Usable() {
  const int known = g_openat2.load(std::memory_order_relaxed);
  if (known != 0) return known > 0;
  // "." beneath the working directory as an O_PATH fd needs no permission and cannot leave:
  // only a kernel or filter that refuses the call itself makes it fail with these codes.
  const long fd = Openat2(AT_FDCWD, ".", O_PATH | O_CLOEXEC, 0);
  const int e = fd < 0 ? errno : 0;
  if (fd >= 0) SysClose(static_cast<int>(fd));
  const bool refused = e == ENOSYS || e == EPERM || e == EINVAL || e == E2BIG;
  g_openat2.store(refused ? -1 : 1, std::memory_order_relaxed);
  return !refused;
}
#endif

// How the walk opens a directory it passes through: without read permission where the system
// allows (a directory with only x set can be traversed, as in the kernel's own lookup).
#if defined(O_PATH)
constexpr int kDirOpen = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
#elif defined(O_SEARCH)
constexpr int kDirOpen = O_SEARCH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
#else
constexpr int kDirOpen = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
#endif

// Pushes the components of `text` onto `todo` so that the first is on top; empty ones (`//`)
// are dropped. "." is kept: it names nothing, but a name before it must be a directory
// ("a.txt/." is ENOTDIR, as in the kernel). A trailing slash on the text makes *dir true (the
// last component must be a directory).
void PushComponents(std::vector<std::string>* todo, const std::string& text, bool* dir) {
  if (dir != nullptr && !text.empty() && text.back() == '/') *dir = true;
  std::vector<std::string> parts;
  size_t at = 0;
  while (at <= text.size()) {
    size_t slash = text.find('/', at);
    if (slash == std::string::npos) slash = text.size();
    if (slash > at) parts.push_back(text.substr(at, slash - at));
    at = slash + 1;
  }
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo->push_back(std::move(*it));
}

// The directories the walk went down through, so that `..` goes back up our own path and never
// through the kernel's (which could lead above the root after a rename).
struct DirStack {
  std::vector<int> fds;
  DirStack() = default;
  DirStack(const DirStack&) = delete;
  DirStack& operator=(const DirStack&) = delete;
  ~DirStack() {
    for (int fd : fds) SysClose(fd);
  }
};

int Walk(int root, const char* path, int flags, int mode, int* sys) {
  std::vector<std::string> todo;  // components still to resolve, the next on top
  bool want_dir = false;
  PushComponents(&todo, path, &want_dir);
  DirStack dirs;
  int links = 0;
  for (;;) {
    const int here = dirs.fds.empty() ? root : dirs.fds.back();
    if (todo.empty()) {
      // Nothing left to look up (".", or a path ending in ".."): the directory reached itself.
      int fd;
      do fd = openat(here, ".", flags | (want_dir ? O_DIRECTORY : 0), mode);
      while (fd < 0 && errno == EINTR);
      if (fd >= 0) return fd;
      *sys = kSysOpenat;
      return -errno;
    }
    std::string name = std::move(todo.back());
    todo.pop_back();
    if (name == ".") continue;  // `here` is a directory already
    if (name == "..") {
      if (dirs.fds.empty()) {  // above the root
        *sys = kSysOpenat;
        return -EXDEV;
      }
      SysClose(dirs.fds.back());
      dirs.fds.pop_back();
      continue;
    }
    const bool last = todo.empty();
    int fd;
    do fd = last ? openat(here, name.c_str(), flags | O_NOFOLLOW | (want_dir ? O_DIRECTORY : 0), mode)
                 : openat(here, name.c_str(), kDirOpen);
    while (fd < 0 && errno == EINTR);
    if (fd >= 0) {
      if (last) return fd;
      try {
        dirs.fds.push_back(fd);
      } catch (const std::bad_alloc&) {
        SysClose(fd);
        throw;  // OpenBeneath answers ENOMEM; the stack closes the others as it unwinds
      }
      continue;
    }
    // O_NOFOLLOW met a symlink: ELOOP (Linux, macOS), EMLINK (FreeBSD), or ENOTDIR (Linux, an
    // O_PATH | O_DIRECTORY open of a link). Read it and resolve it ourselves.
    const int e = errno;
    if (e != ELOOP && e != EMLINK && e != ENOTDIR) {
      *sys = kSysOpenat;
      return -e;
    }
    char target[PATH_MAX];
    const ssize_t n = readlinkat(here, name.c_str(), target, sizeof target);
    if (n < 0) {
      if (errno == EINVAL) {  // not a link after all: the open's own error stands
        *sys = kSysOpenat;
        return -e;
      }
      *sys = kSysReadlinkat;
      return -errno;
    }
    *sys = kSysOpenat;
    if (static_cast<size_t>(n) >= sizeof target) return -ENAMETOOLONG;
    if (++links > kMaxLinks) return -ELOOP;
    if (n == 0) return -ENOENT;
    // An absolute link starts from the filesystem's root, which is above ours.
    if (target[0] == '/') return -EXDEV;
    // The link's components take its place, ahead of what was left after it.
    PushComponents(&todo, std::string(target, static_cast<size_t>(n)), last ? &want_dir : nullptr);
  }
}

}  // namespace

void SetConfinement(int how) { g_how.store(how, std::memory_order_relaxed); }

const char* ConfinementName() {
  if (g_how.load(std::memory_order_relaxed) == kConfineWalk) return "walk";
#if defined(IAPP_HAVE_OPENAT2)
  return Openat2Usable() ? "openat2" : "walk";
#elif defined(O_RESOLVE_BENEATH)
  return "O_RESOLVE_BENEATH";
#else
  return "walk";
#endif
}

int OpenBeneath(int dirfd, const char* path, int flags, int mode, int* sys) {
  flags |= O_CLOEXEC;
  if (path[0] == '/') {  // what RESOLVE_BENEATH answers for an absolute path, on every platform
    *sys = kSysOpenat;
    return -EXDEV;
  }
  const bool kernel = g_how.load(std::memory_order_relaxed) == kConfineAuto;
#if defined(IAPP_HAVE_OPENAT2)
  if (kernel && Openat2Usable()) {
    for (int tries = 0;; ++tries) {
      const long fd = Openat2(dirfd, path, flags, mode);
      if (fd >= 0) return static_cast<int>(fd);
      const int e = errno;
      if (e == EINTR) continue;
      // EAGAIN: a rename or mount elsewhere raced the lookup of a `..`, and the kernel could not
      // prove it stayed beneath: it asks the caller to try again. Bounded: an attacker renaming
      // in a loop gets EAGAIN (a 500), never a way out.
      if (e == EAGAIN && tries < 16) continue;
      *sys = kSysOpenat2;
      return -e;
    }
  }
#elif defined(O_RESOLVE_BENEATH)
  if (kernel) {
    int fd;
    do fd = openat(dirfd, path, flags | O_RESOLVE_BENEATH, mode);
    while (fd < 0 && errno == EINTR);
    if (fd >= 0) return fd;
    int e = errno;
#ifdef ENOTCAPABLE
    if (e == ENOTCAPABLE) e = EXDEV;  // FreeBSD's word for "outside": one code on every platform
#endif
    *sys = kSysOpenat;
    return -e;
  }
#else
  (void)kernel;
#endif
  try {
    return Walk(dirfd, path, flags, mode, sys);
  } catch (const std::bad_alloc&) {
    *sys = kSysOpenat;
    return -ENOMEM;
  }
}

}  // namespace iapp
