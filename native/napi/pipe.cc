// Pipes: one socket's input moved into another natively (splice where there is one).
#include "../pipe.h"
#include "../socket.h"
#include "slice.h"

namespace iapp {
// Named, not anonymous: NativeLoop::Bind<F> instantiates one thunk per function, and thunks of
// same-named functions in anonymous namespaces of different slices would be merged by the linker.
namespace pipe_js {

// pipe(src, dst, id, halfOpen): moves src's input into dst natively; a kRecPipe record ends it.
Napi::Value Start(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Socket* src = self.Get<Socket>(info, "socket");
  Loop* loop = self.L(env);
  Handle* h = loop->Find(U64(info[1]));
  if (h == nullptr || h->kind != Handle::Kind::kSocket) ThrowSysError(env, EBADF, "pipe", "pipe: the destination socket is closed");
  auto* dst = static_cast<Socket*>(h);
  int err = 0, sys = 0;
  Pipe* p = Pipe::Start(loop, src, dst, info[2].As<Napi::Number>().DoubleValue(), &err, &sys);
  if (p == nullptr)
    ThrowSysError(env, err, SyscallName(sys),
                  err == EBUSY ? "pipe: a socket is already piped, pushing, connecting, or the destination has ended"
                  : err == EPIPE ? "pipe: the source has already ended" : "pipe");
  if (info[3].ToBoolean()) {
    src->AllowHalfOpen();
    dst->AllowHalfOpen();
  }
  return env.Undefined();
}

// pipeGo(src, id): JS has passed on what src had delivered; the held pipe starts moving.
Napi::Value Go(NativeLoop& self, const Napi::CallbackInfo& info) {
  Socket* src = self.Find<Socket>(info);
  if (src != nullptr && src->pipe_out != nullptr && src->pipe_out->held() &&
      src->pipe_out->id() == info[1].As<Napi::Number>().DoubleValue())
    src->pipe_out->Go();
  return info.Env().Undefined();
}

}  // namespace pipe_js

void PipeSlice(Slice& s) {
  using namespace pipe_js;
  s.Method<Start>("pipe");
  s.Method<Go>("pipeGo");
}

}  // namespace iapp
