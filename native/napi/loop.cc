// The NativeLoop object and what belongs to the loop as a whole: stats, turn budget, ref, close.
#include "../file.h"
#include "slice.h"

namespace iapp {

Napi::Function NativeLoop::Define(Napi::Env env, Methods methods) { return DefineClass(env, "NativeLoop", methods); }

// new NativeLoop(onBatch: (count, arenas?) => void, records: Float64Array)
NativeLoop::NativeLoop(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeLoop>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction() || !info[1].IsTypedArray())
    throw Napi::TypeError::New(env, "NativeLoop(onBatch, records) expects a function and a Float64Array");
  auto records = info[1].As<Napi::Float64Array>();
  if (records.ElementLength() < static_cast<size_t>(kRecordCapacity * kRecordStride))
    throw Napi::RangeError::New(env, "records array too small");
  loop_ = std::make_unique<Loop>(env);
  if (!loop_->BindJs(info[0], records, records.Data()))
    throw Napi::Error::New(env, "iapp: cannot set up the loop's references");
  int r = loop_->Open();
#if defined(IAPP_KQUEUE)
  const char* create = "kqueue";
#else
  const char* create = "epoll_create1";
#endif
  if (r < 0) ThrowSysError(env, -r, create, "creating the loop's poller");
}

Loop* NativeLoop::L(Napi::Env env) {
  if (loop_->closed()) ThrowSysError(env, EBADF, "loop", "the loop is closed");
  return loop_.get();
}

FileIo* NativeLoop::Files(Napi::Env env) {
  int err = 0;
  FileIo* io = L(env)->files(&err);
  if (io == nullptr) {
    if (DiskEngineSetting() == kEngineUring)
      ThrowSysError(env, err, "io_uring_setup",
                    "diskEngine 'io_uring' needs a kernel that allows io_uring ('auto' falls back to the pool)");
    ThrowSysError(env, err, "eventfd", "cannot set up the loop's disk completions");
  }
  return io;
}

// Named, not anonymous: NativeLoop::Bind<F> instantiates one thunk per function, and thunks of
// same-named functions in anonymous namespaces of different slices would be merged by the linker.
namespace loop_js {

Napi::Value Stats(NativeLoop& self, const Napi::CallbackInfo& info) {
  Loop* loop = self.raw();
  if (!loop->closed()) loop->timers().Apply();  // count what JS armed in this very turn
  Napi::Env env = info.Env();
  const LoopStats& s = loop->stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("bytesIn", static_cast<double>(s.bytes_in));
  o.Set("bytesOut", static_cast<double>(s.bytes_out));
  o.Set("accepted", static_cast<double>(s.accepted));
  o.Set("connected", static_cast<double>(s.connected));
  o.Set("closed", static_cast<double>(s.closed));
  o.Set("acceptPaused", static_cast<double>(s.accept_paused));
  o.Set("acceptShed", static_cast<double>(s.accept_shed));
  o.Set("refusedMaxConnections", static_cast<double>(s.refused_total));
  o.Set("refusedPerAddress", static_cast<double>(s.refused_addr));
  o.Set("wakeups", static_cast<double>(s.wakeups));
  o.Set("jsCalls", static_cast<double>(s.drains));
  o.Set("datagramsIn", static_cast<double>(s.datagrams_in));
  o.Set("datagramsOut", static_cast<double>(s.datagrams_out));
  o.Set("messagesIn", static_cast<double>(s.messages_in));
  o.Set("messagesOut", static_cast<double>(s.messages_out));
  o.Set("detached", static_cast<double>(s.detached));
  o.Set("adopted", static_cast<double>(s.adopted));
  o.Set("turnsCut", static_cast<double>(s.turns_cut));
  o.Set("readAheads", static_cast<double>(s.read_aheads));
  o.Set("connections", static_cast<double>(s.connections));
  o.Set("peakConnections", static_cast<double>(s.peak_connections));
  o.Set("timers", static_cast<double>(loop->timers().allocated()));
  o.Set("timersArmed", static_cast<double>(loop->timers().armed()));
  o.Set("handles", static_cast<double>(loop->handle_count()));
  o.Set("quietSockets", static_cast<double>(loop->quiet_open()));
  const FileIo* io = loop->files_if_open();
  o.Set("filesOpen", static_cast<double>(io ? io->open_files() : 0));
  o.Set("diskPending", static_cast<double>(io ? io->in_flight() : 0));
  Napi::Object errors = Napi::Object::New(env);
  for (const auto& [err, count] : s.errors) errors.Set(std::to_string(err), static_cast<double>(count));
  o.Set("errors", errors);
  return o;
}

// setTurnBudget(us): native work per loop turn before returning to libuv; 0 for no limit.
Napi::Value SetTurnBudget(NativeLoop& self, const Napi::CallbackInfo& info) {
  self.raw()->SetTurnBudget(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue() * 1000));
  return info.Env().Undefined();
}

Napi::Value SetRef(NativeLoop& self, const Napi::CallbackInfo& info) {
  self.raw()->SetRef(info[0].ToBoolean());
  return info.Env().Undefined();
}

// addresses(id) -> { local, remote? } of any handle
Napi::Value Addresses(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Handle* h = self.L(env)->Find(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue()));
  Napi::Object o = Napi::Object::New(env);
  if (h == nullptr) return o;
  o.Set("local", DescribeLocalPeer(env, h->fd, false));
  if (h->kind == Handle::Kind::kSocket) o.Set("remote", DescribeLocalPeer(env, h->fd, true));
  return o;
}

// close(heldMessages?)
Napi::Value Close(NativeLoop& self, const Napi::CallbackInfo& info) {
  self.raw()->Close(info[0].IsNumber() ? static_cast<size_t>(info[0].As<Napi::Number>().DoubleValue()) : 0);
  return info.Env().Undefined();
}

}  // namespace loop_js

void LoopSlice(Slice& s) {
  using namespace loop_js;
  s.Method<Stats>("stats");
  s.Method<SetTurnBudget>("setTurnBudget");
  s.Method<SetRef>("setRef");
  s.Method<Addresses>("addresses");
  s.Method<Close>("close");
}

}  // namespace iapp
