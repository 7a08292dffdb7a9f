// Syscall names, as small integers: event records carry them to JS, which reads the names from
// the addon's `syscallNames`. No N-API here: the core includes this, not errors.h.
#pragma once

namespace iapp {

enum Syscall : int {
  kSysNone = 0,
  kSysRead,
  kSysWrite,
  kSysConnect,
  kSysAccept,
  kSysShutdown,
  kSysPoll,
  kSysSocket,
  kSysBind,
  kSysListen,
  kSysSetsockopt,
  kSysOpen,
  kSysPread,
  kSysPwrite,
  kSysFsync,
  kSysFstat,
  kSysFtruncate,
  kSysClose,
  kSysSendfile,
  kSysSplice,
  kSysCopyFileRange,
  kSysPipe,
  kSysPollCtl,  // epoll_ctl / kevent refused to watch an fd
  kSysIdle,     // no byte either way for the socket's idle timeout
  kSysOpenat2,
  kSysOpenat,
  kSysReadlinkat,
  kSysChmod,
  kSysCount
};
const char* SyscallName(int sys);

}  // namespace iapp
