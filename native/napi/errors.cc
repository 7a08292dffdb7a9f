#include "errors.h"

#include <cstring>

namespace iapp {

void SetErrorFactory(Napi::Env env, Napi::Function f) {
  AddonData* d = env.GetInstanceData<AddonData>();
  d->error_factory = Napi::Persistent(f);
}

Napi::Value MakeSysError(Napi::Env env, int err, const char* syscall, const std::string& context) {
  AddonData* d = env.GetInstanceData<AddonData>();
  if (d == nullptr || d->error_factory.IsEmpty()) {
    // Only reachable if the addon is used without src/native.ts: still a proper Error.
    Napi::Error e = Napi::Error::New(env, std::string(syscall) + " failed: " + strerror(err) +
                                              (context.empty() ? "" : " (" + context + ")"));
    e.Set("errno", Napi::Number::New(env, -err));
    e.Set("syscall", Napi::String::New(env, syscall));
    return e.Value();
  }
  return d->error_factory.Call({Napi::Number::New(env, err), Napi::String::New(env, syscall),
                                Napi::String::New(env, context)});
}

void ThrowSysError(Napi::Env env, int err, const char* syscall, const std::string& context) {
  throw Napi::Error(env, MakeSysError(env, err, syscall, context));
}

}  // namespace iapp
