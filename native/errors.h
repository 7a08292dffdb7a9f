// Errors crossing into JS. Native code never throws anything but an IappError built by the JS
// factory registered at load time (src/errors.ts), so every error a user sees has the same class,
// `code`, `errno` and `syscall`, and a message that says what to do.
#pragma once
#include <napi.h>
#include <string>

namespace iapp {

// Syscall names, indexed by the small integer carried in event records. Mirrored in src/native.ts.
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

struct AddonData {
  Napi::FunctionReference error_factory;  // (errno: number, syscall: string, context: string) => Error
};

void SetErrorFactory(Napi::Env env, Napi::Function f);
// Builds an IappError for a positive errno value.
Napi::Value MakeSysError(Napi::Env env, int err, const char* syscall, const std::string& context);
// Throws it (as a C++ exception that node-addon-api turns into a JS throw at the boundary).
[[noreturn]] void ThrowSysError(Napi::Env env, int err, const char* syscall,
                                const std::string& context);

}  // namespace iapp
