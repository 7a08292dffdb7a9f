// Process-wide functions and constants: file limits, the error factory, connection counts and
// bounds shared by a fleet, live native objects, and what JS must agree on with native code
// (record kinds, syscall names, build facts).
#include "../conns.h"
#include "../live.h"
#include "../platform.h"
#include "../pool.h"
#include "../sys.h"
#include "slice.h"

namespace iapp {
// Named, not anonymous: NativeLoop::Bind<F> instantiates one thunk per function, and thunks of
// same-named functions in anonymous namespaces of different slices would be merged by the linker.
namespace process_js {

// raiseFileLimit() -> { before, soft, hard } (-1: unlimited)
Napi::Value RaiseFileLimitJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t before, soft, hard;
  int r = RaiseFileLimit(&before, &soft, &hard);
  if (r < 0) ThrowSysError(env, -r, "getrlimit", "RLIMIT_NOFILE");
  Napi::Object o = Napi::Object::New(env);
  o.Set("before", static_cast<double>(before));
  o.Set("soft", static_cast<double>(soft));
  o.Set("hard", static_cast<double>(hard));
  return o;
}

Napi::Value SetErrorFactoryJs(const Napi::CallbackInfo& info) {
  SetErrorFactory(info.Env(), info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

// connections() -> { open, peak, ... }: established connections of every loop of this process (or
// of every process sharing its block), now and most at once, and the bounds on them.
Napi::Value Connections(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  ConnCounts* c = ProcessConns();
  out.Set("open", static_cast<double>(c->open.load(std::memory_order_relaxed)));
  out.Set("peak", static_cast<double>(c->peak.load(std::memory_order_relaxed)));
  out.Set("maxConnections", static_cast<double>(c->max_total.load(std::memory_order_relaxed)));
  out.Set("maxPerAddress", static_cast<double>(c->max_per_addr.load(std::memory_order_relaxed)));
  out.Set("refusedMaxConnections", static_cast<double>(c->refused_total.load(std::memory_order_relaxed)));
  out.Set("refusedPerAddress", static_cast<double>(c->refused_addr.load(std::memory_order_relaxed)));
  return out;
}

// setConnectionLimits(total, perAddress): bounds on accepted connections (0: none) for every
// process sharing this block. Throws EBUSY while a connection is open.
Napi::Value SetConnectionLimits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int r = SetConnLimits(static_cast<int64_t>(info[0].As<Napi::Number>().DoubleValue()),
                              static_cast<int64_t>(info[1].As<Napi::Number>().DoubleValue()));
  if (r < 0)
    ThrowSysError(env, -r, "setConnectionLimits",
                  r == -EBUSY ? "connections are open: set the bounds before listening (they count every connection from the first)"
                              : "the table of connections by address");
  return env.Undefined();
}

// reclaimConnections(slot): a fleet's parent gives back what a dead child process held.
Napi::Value ReclaimConnections(const Napi::CallbackInfo& info) {
  ReclaimConns(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// shareConnections(fd?) -> fd: without an fd, makes a block other processes can map (the fd to
// pass them) and counts into it; with one, counts into that block from now on.
Napi::Value ShareConnections(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const bool make = info.Length() < 1 || info[0].IsUndefined();
  int r = make ? CreateSharedConns()
               : AttachSharedConns(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value());
  if (r < 0) ThrowSysError(env, -r, make ? "memfd_create" : "mmap", "sharing the connection counts between processes");
  return Napi::Number::New(env, make ? r : info[0].As<Napi::Number>().Int32Value());
}

// liveHandles() -> { loops, sockets, ..., diskThreads }: native objects alive, process-wide.
Napi::Value LiveHandles(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  for (int i = 0; i < kLiveCount; ++i)
    out.Set(kLiveNames[i], Napi::Number::New(info.Env(), static_cast<double>(g_live[i].load(std::memory_order_relaxed))));
  out.Set("diskThreads", Napi::Number::New(info.Env(), DiskPool::Get().threads()));
  return out;
}

// What this build runs on: the poller, and which fast calls it uses (native/platform.h).
Napi::Object BuildInfo(Napi::Env env) {
  Napi::Object b = Napi::Object::New(env);
#if defined(IAPP_KQUEUE)
  b.Set("poller", "kqueue");
#else
  b.Set("poller", "epoll");
#endif
#if defined(LIBKQUEUE_HAS_POLLABLE_FD)
  b.Set("libkqueue", true);
#else
  b.Set("libkqueue", false);
#endif
#if defined(IAPP_PORTABLE)
  b.Set("portable", true);
#else
  b.Set("portable", false);
#endif
  Napi::Object calls = Napi::Object::New(env);
#if defined(IAPP_HAVE_MSG_TRUNC)
  calls.Set("msgTrunc", true);
#else
  calls.Set("msgTrunc", false);
#endif
#if defined(IAPP_HAVE_SPLICE)
  calls.Set("splice", true);
#else
  calls.Set("splice", false);
#endif
#if defined(IAPP_HAVE_IO_URING)
  calls.Set("ioUring", true);
#else
  calls.Set("ioUring", false);
#endif
#if defined(IAPP_HAVE_COPY_FILE_RANGE)
  calls.Set("copyFileRange", true);
#else
  calls.Set("copyFileRange", false);
#endif
#if defined(IAPP_HAVE_MMSG)
  calls.Set("mmsg", true);
#else
  calls.Set("mmsg", false);
#endif
  b.Set("calls", calls);
  b.Set("pollctl", SyscallName(kSysPollCtl));
  return b;
}

}  // namespace process_js

void ProcessSlice(Slice& s) {
  using namespace process_js;
  Napi::Env env = s.env;
  s.Function("raiseFileLimit", RaiseFileLimitJs);
  s.Function("setErrorFactory", SetErrorFactoryJs);
  s.Function("connections", Connections);
  s.Function("setConnectionLimits", SetConnectionLimits);
  s.Function("reclaimConnections", ReclaimConnections);
  s.Function("shareConnections", ShareConnections);
  s.Function("liveHandles", LiveHandles);
  Napi::Array names = Napi::Array::New(env, kSysCount);
  for (int i = 0; i < kSysCount; ++i) names.Set(i, SyscallName(i));
  s.exports.Set("syscallNames", names);
  Napi::Object kinds = Napi::Object::New(env);
#define IAPP_RECORD_EXPORT(name, value) kinds.Set(#name, static_cast<double>(kRec##name));
  IAPP_RECORD_KINDS(IAPP_RECORD_EXPORT)
#undef IAPP_RECORD_EXPORT
  kinds.Freeze();
  s.exports.Set("recordKinds", kinds);
  Napi::Object c = Napi::Object::New(env);
  c.Set("recordStride", kRecordStride);
  c.Set("defaultTurnBudgetUs", static_cast<double>(Loop::kDefaultTurnBudgetNs) / 1000);
  c.Set("recordCapacity", kRecordCapacity);
  s.exports.Set("constants", c);
  s.exports.Set("build", BuildInfo(env));
}

}  // namespace iapp
