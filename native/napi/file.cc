// Files: each call starts one disk job and returns at once; a kRecFile record with the request
// number `req` (info[0]) brings the result. Offsets and lengths arrive as exact integers
// (checked in src/file.ts); -1 as a length means "to the end". Also the process-wide disk
// settings and the confinement of opens beneath a directory.
#include "../beneath.h"
#include "../file.h"
#include "../pool.h"
#include "slice.h"

namespace iapp {
// Named, not anonymous: NativeLoop::Bind<F> instantiates one thunk per function, and thunks of
// same-named functions in anonymous namespaces of different slices would be merged by the linker.
namespace file_js {

Napi::Value Started(Napi::Env env, int r, const char* sys, const char* what) {
  if (r < 0) ThrowSysError(env, -r, sys, r == -EBADF ? std::string(what) + ": the file is closed" : what);
  return env.Undefined();
}

double Req(const Napi::CallbackInfo& info) { return info[0].As<Napi::Number>().DoubleValue(); }

// fileOpen(req, path, flags, mode, beneath): beneath is 0 or the id of an open directory.
Napi::Value Open(NativeLoop& self, const Napi::CallbackInfo& info) {
  std::string path = info[1].As<Napi::String>().Utf8Value();
  const uint64_t beneath = info.Length() > 4 ? U64(info[4]) : 0;
  return Started(info.Env(),
                 self.Files(info.Env())->OpenFile(Req(info), path, info[2].As<Napi::Number>().Int32Value(),
                                                  info[3].As<Napi::Number>().Int32Value(), beneath),
                 beneath != 0 ? "openat" : "open", path.c_str());
}

Napi::Value Close(NativeLoop& self, const Napi::CallbackInfo& info) {
  return Started(info.Env(), self.Files(info.Env())->CloseFile(Req(info), U64(info[1])), "close", "close");
}

Napi::Value Stat(NativeLoop& self, const Napi::CallbackInfo& info) {
  return Started(info.Env(), self.Files(info.Env())->Stat(Req(info), U64(info[1])), "fstat", "stat");
}

Napi::Value Truncate(NativeLoop& self, const Napi::CallbackInfo& info) {
  return Started(info.Env(), self.Files(info.Env())->Truncate(Req(info), U64(info[1]), U64(info[2])), "ftruncate",
                 "truncate");
}

Napi::Value Read(NativeLoop& self, const Napi::CallbackInfo& info) {
  return Started(info.Env(), self.Files(info.Env())->Read(Req(info), U64(info[1]), Iovecs(info[2]), U64(info[3])),
                 "pread", "read");
}

Napi::Value Write(NativeLoop& self, const Napi::CallbackInfo& info) {
  return Started(info.Env(), self.Files(info.Env())->Write(Req(info), U64(info[1]), Iovecs(info[2]), U64(info[3])),
                 "pwrite", "write");
}

Napi::Value Sync(NativeLoop& self, const Napi::CallbackInfo& info) {
  return Started(info.Env(), self.Files(info.Env())->Sync(Req(info), U64(info[1]), info[2].ToBoolean()), "fsync",
                 "sync");
}

// fileCopy(req, src, dst, srcOffset, dstOffset, length | -1)
Napi::Value Copy(NativeLoop& self, const Napi::CallbackInfo& info) {
  return Started(info.Env(),
                 self.Files(info.Env())->Copy(Req(info), U64(info[1]), U64(info[2]), U64(info[3]), U64(info[4]),
                                              U64(info[5])),
                 "copy_file_range", "copyFile (overlapping ranges of one file are refused)");
}

// diskEngine() -> 'io_uring' | 'pool': what runs this loop's reads, writes and syncs.
Napi::Value Engine(NativeLoop& self, const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), self.Files(info.Env())->uses_ring() ? "io_uring" : "pool");
}

// setDiskEngine(0 auto | 1 pool | 2 io_uring): for loops whose files are set up from now on.
Napi::Value SetEngine(const Napi::CallbackInfo& info) {
  SetDiskEngine(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// setDiskThreads(n): the most threads the process-wide disk pool may start.
Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  DiskPool::Get().SetMaxThreads(info[0].As<Napi::Number>().Int32Value());
  return Napi::Number::New(info.Env(), DiskPool::Get().max_threads());
}

// setConfinement(walk: boolean): opens beneath a directory use the portable walk from now on
// (true), or the kernel's primitive where there is one (false). Process-wide.
Napi::Value SetConfinementJs(const Napi::CallbackInfo& info) {
  SetConfinement(info[0].ToBoolean() ? kConfineWalk : kConfineAuto);
  return info.Env().Undefined();
}

// confinement() -> "openat2" | "O_RESOLVE_BENEATH" | "walk": what opens beneath a directory use.
Napi::Value ConfinementJs(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), ConfinementName()); }

}  // namespace file_js

void FileSlice(Slice& s) {
  using namespace file_js;
  s.Method<Open>("fileOpen");
  s.Method<Close>("fileClose");
  s.Method<Stat>("fileStat");
  s.Method<Truncate>("fileTruncate");
  s.Method<Read>("fileRead");
  s.Method<Write>("fileWrite");
  s.Method<Sync>("fileSync");
  s.Method<Copy>("fileCopy");
  s.Method<Engine>("diskEngine");
  s.Function("setDiskEngine", SetEngine);
  s.Function("setDiskThreads", SetThreads);
  s.Function("setConfinement", SetConfinementJs);
  s.Function("confinement", ConfinementJs);
}

}  // namespace iapp
