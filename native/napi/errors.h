// Errors crossing into JS. Native code never throws anything but an IappError built by the JS
// factory registered at load time (src/errors.ts), so every error a user sees has the same class,
// `code`, `errno` and `syscall`, and a message that says what to do.
#pragma once
#include <napi.h>
#include <string>

#include "../syscalls.h"

namespace iapp {

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
