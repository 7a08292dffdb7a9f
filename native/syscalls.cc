#include "syscalls.h"

namespace iapp {

const char* SyscallName(int sys) {
  static const char* const names[kSysCount] = {"",       "read",   "write",      "connect",
                                               "accept", "shutdown", "poll",     "socket",
                                               "bind",   "listen", "setsockopt", "open", "pread", "pwrite", "fsync",
                                               "fstat", "ftruncate", "close", "sendfile", "splice",
                                               "copy_file_range", "pipe",
#if defined(IAPP_KQUEUE)
                                               "kevent",
#else
                                               "epoll_ctl",
#endif
                                               "idle",
                                               "openat2", "openat", "readlinkat", "chmod",
  };
  return sys >= 0 && sys < kSysCount ? names[sys] : "";
}

}  // namespace iapp
