// The N-API boundary, one slice per primitive. Each slice (napi/<primitive>.cc) turns JS
// arguments into calls on the native core and results back into JS values; logic lives below,
// in the core. A slice adds its methods to the NativeLoop class and its process-wide functions to
// the module; napi/module.cc runs every slice named in IAPP_SLICES at load time. Only this folder
// includes napi.h (the loop's delivery, deliver.cc, uses the C API).
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include <sys/uio.h>

#include "errors.h"
#include "../loop.h"

namespace iapp {

struct ListenSpec;
struct SocketOptions;
class FileIo;

// One NativeLoop per loop thread: owns the native Loop; handles are named by integer ids.
class NativeLoop : public Napi::ObjectWrap<NativeLoop> {
 public:
  using Method = Napi::Value (*)(NativeLoop&, const Napi::CallbackInfo&);
  using Methods = std::vector<Napi::ClassPropertyDescriptor<NativeLoop>>;

  static Napi::Function Define(Napi::Env env, Methods methods);
  NativeLoop(const Napi::CallbackInfo& info);

  // A method slot for a slice's free function: a member thunk is what ObjectWrap can name.
  template <Method F>
  static Napi::ClassPropertyDescriptor<NativeLoop> Bind(const char* name) {
    return InstanceMethod<&NativeLoop::Thunk<F>>(name);
  }

  // The loop, or a thrown EBADF once it is closed.
  Loop* L(Napi::Env env);
  // The loop even when closed: for calls that are harmless no-ops then.
  Loop* raw() { return loop_.get(); }
  bool closed() const { return loop_->closed(); }

  // The handle named by info[0] if it is of kind T::kKind, else null (also once closed).
  template <typename T>
  T* Find(const Napi::CallbackInfo& info) {
    if (loop_->closed()) return nullptr;
    Handle* h = loop_->Find(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue()));
    return h != nullptr && h->kind == T::kKind ? static_cast<T*>(h) : nullptr;
  }
  // The same, or a thrown EBADF "<what> is closed".
  template <typename T>
  T* Get(const Napi::CallbackInfo& info, const char* what) {
    L(info.Env());
    T* h = Find<T>(info);
    if (h == nullptr) ThrowSysError(info.Env(), EBADF, what, std::string(what) + " is closed");
    return h;
  }
  // The loop's files, made on first use; throws if the disk engine cannot start.
  FileIo* Files(Napi::Env env);

  // The timer slice's typed arrays: the native side reads them, so they must outlive their views.
  std::vector<Napi::Reference<Napi::Value>> timer_refs;

 private:
  template <Method F>
  Napi::Value Thunk(const Napi::CallbackInfo& info) {
    return F(*this, info);
  }
  std::unique_ptr<Loop> loop_;
};

// What a slice registers into.
struct Slice {
  Napi::Env env;
  Napi::Object exports;
  NativeLoop::Methods methods;

  template <NativeLoop::Method F>
  void Method(const char* name) {
    methods.push_back(NativeLoop::Bind<F>(name));
  }
  void Function(const char* name, Napi::Function::Callback f) { exports.Set(name, Napi::Function::New(env, f, name)); }
};

// Every slice, in registration order. Adding a primitive: write napi/<name>.cc defining
// `void <Name>Slice(Slice&)`, add it to binding.gyp, and add X(<Name>) here.
#define IAPP_SLICES(X) \
  X(Loop)              \
  X(Listener)          \
  X(Socket)            \
  X(Pipe)              \
  X(Udp)               \
  X(Dialer)            \
  X(File)              \
  X(Messaging)         \
  X(Timer)             \
  X(Child)             \
  X(Faults)            \
  X(Process)

#define IAPP_DECLARE_SLICE(name) void name##Slice(Slice& s);
IAPP_SLICES(IAPP_DECLARE_SLICE)
#undef IAPP_DECLARE_SLICE

// Argument helpers shared by the slices (napi/args.cc).
std::string Str(const Napi::Object& o, const char* k);
double Num(const Napi::Object& o, const char* k, double dflt);
bool Bool(const Napi::Object& o, const char* k, bool dflt);
SocketOptions SockOpts(const Napi::Object& o);
ListenSpec ListenSpecOf(const Napi::Object& o);
// A length or offset from JS: a negative number means "to the end" (UINT64_MAX).
uint64_t U64(const Napi::Value& v);
std::vector<iovec> Iovecs(const Napi::Value& v);
// { address, port, family } of fd's local or peer address; empty if it has none.
Napi::Object DescribeLocalPeer(Napi::Env env, int fd, bool peer);
// A payload argument as bytes; null if not a typed array. Throws RangeError past 2 GiB.
const uint8_t* Payload(Napi::Env env, const Napi::Value& v, uint32_t* len);

}  // namespace iapp
