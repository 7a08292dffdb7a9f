// Child processes: spawn, and watches that are reserved (may fail) before they are attached to a
// pid (cannot fail).
#include "../child.h"
#include "slice.h"

namespace iapp {
// Named, not anonymous: NativeLoop::Bind<F> instantiates one thunk per function, and thunks of
// same-named functions in anonymous namespaces of different slices would be merged by the linker.
namespace child_js {

// childReserve(priority) -> watch id
Napi::Value Reserve(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int err = 0;
  const char* sys = "";
  ChildWatch* w = ChildWatch::Reserve(self.L(env), info[0].As<Napi::Number>().Int32Value(), &err, &sys);
  if (w == nullptr) ThrowSysError(env, err, sys, "reserving a child watch");
  return Napi::Number::New(env, static_cast<double>(w->id));
}

// childAttach(id, pid) -> true when the kernel watches the exit (pidfd, EVFILT_PROC), false when
// polling. Cannot fail.
Napi::Value Attach(NativeLoop& self, const Napi::CallbackInfo& info) {
  ChildWatch* w = self.Find<ChildWatch>(info);
  bool pidfd = w != nullptr && w->Attach(static_cast<pid_t>(info[1].As<Napi::Number>().Int32Value()));
  return Napi::Boolean::New(info.Env(), pidfd);
}

Napi::Value Close(NativeLoop& self, const Napi::CallbackInfo& info) {
  if (ChildWatch* w = self.Find<ChildWatch>(info)) w->Close();
  return info.Env().Undefined();
}

// spawn(file, args[], env[] | undefined, cwd, stdio) -> pid
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string file = info[0].As<Napi::String>().Utf8Value();
  std::vector<std::string> argv{file};
  auto args = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < args.Length(); ++i) argv.push_back(args.Get(i).As<Napi::String>().Utf8Value());
  std::vector<std::string> envs;
  bool has_env = info[2].IsArray();
  if (has_env) {
    auto e = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < e.Length(); ++i) envs.push_back(e.Get(i).As<Napi::String>().Utf8Value());
  }
  std::string cwd = info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : std::string();
  int r = SpawnChild(file, argv, has_env ? &envs : nullptr, cwd, info[4].As<Napi::Number>().Int32Value());
  if (r < 0) ThrowSysError(env, -r, "posix_spawn", file);
  return Napi::Number::New(env, r);
}

}  // namespace child_js

void ChildSlice(Slice& s) {
  using namespace child_js;
  s.Method<Reserve>("childReserve");
  s.Method<Attach>("childAttach");
  s.Method<Close>("childClose");
  s.Function("spawn", Spawn);
}

}  // namespace iapp
