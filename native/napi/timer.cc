// Timers: JS arms them by storing into shared typed arrays; these calls only allocate, free and
// read the clocks.
#include "slice.h"

namespace iapp {
// Named, not anonymous: NativeLoop::Bind<F> instantiates one thunk per function, and thunks of
// same-named functions in anonymous namespaces of different slices would be merged by the linker.
namespace timer_js {

// timerViews(rel: Float64Array, abs: BigInt64Array, period: Float64Array, ctl: Int32Array,
// dirty: Int32Array, flags: Uint8Array, order: Float64Array): the arrays JS arms timers in, for
// `rel.length` timers. Throws ENOMEM if the native side cannot make room for that many.
Napi::Value Views(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Loop* loop = self.L(env);
  auto rel = info[0].As<Napi::Float64Array>();
  auto abs = info[1].As<Napi::TypedArrayOf<int64_t>>();
  auto period = info[2].As<Napi::Float64Array>();
  auto ctl = info[3].As<Napi::Int32Array>();
  auto dirty = info[4].As<Napi::Int32Array>();
  auto flags = info[5].As<Napi::Uint8Array>();
  auto order = info[6].As<Napi::Float64Array>();
  const size_t cap = rel.ElementLength();
  if (abs.ElementLength() < cap || period.ElementLength() < cap || ctl.ElementLength() < 2 * cap ||
      dirty.ElementLength() < cap + 1 || flags.ElementLength() < cap || order.ElementLength() < cap)
    throw Napi::RangeError::New(env, "timer arrays too small");
  int r = loop->timers().Reserve(cap);
  if (r < 0) ThrowSysError(env, -r, "timer", "making room for timers");
  self.timer_refs.clear();
  for (size_t i = 0; i < 7; ++i) self.timer_refs.push_back(Napi::Persistent(info[i]));
  TimerViews v;
  v.rel = rel.Data();
  v.abs = abs.Data();
  v.period = period.Data();
  v.ctl = ctl.Data();
  v.dirty = dirty.Data();
  v.flags = flags.Data();
  v.order = order.Data();
  v.capacity = cap;
  loop->timers().SetViews(v);
  return env.Undefined();
}

// timerAlloc(clock, priority, out: Int32Array) -> count: up to out.length timers in one call,
// their slots written to `out` (JS keeps the ones it does not need yet for its next timers).
// Throws only when not even one could be allocated.
Napi::Value Alloc(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Loop* loop = self.L(env);
  const int clock = info[0].As<Napi::Number>().Int32Value();
  const int prio = info[1].As<Napi::Number>().Int32Value();
  auto out = info[2].As<Napi::Int32Array>();
  size_t n = 0;
  int r = 0;
  for (; n < out.ElementLength(); ++n) {
    r = loop->timers().Alloc(clock, prio);
    if (r < 0) break;
    out[n] = r;
  }
  if (n == 0) ThrowSysError(env, -r, loop->timers().failed_syscall(), "allocating a timer");
  loop->NotePriority(prio);
  loop->TimersChanged();
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value Free(NativeLoop& self, const Napi::CallbackInfo& info) {
  if (!self.closed()) {
    self.raw()->timers().Free(info[0].As<Napi::Number>().Int32Value());
    self.raw()->TimersChanged();
  }
  return info.Env().Undefined();
}

// now(clock) -> bigint ns
Napi::Value Now(NativeLoop& self, const Napi::CallbackInfo& info) {
  return Napi::BigInt::New(info.Env(), self.raw()->timers().Now(info[0].As<Napi::Number>().Int32Value()));
}

// testClockJump(ns: bigint): test hook, see TimerSet::TestJump.
Napi::Value TestClockJump(NativeLoop& self, const Napi::CallbackInfo& info) {
  bool lossless;
  int64_t ns = info[0].As<Napi::BigInt>().Int64Value(&lossless);
  if (!self.closed()) {
    self.raw()->timers().TestJump(ns);
    self.raw()->WantPrepare();
  }
  return info.Env().Undefined();
}

}  // namespace timer_js

void TimerSlice(Slice& s) {
  using namespace timer_js;
  s.Method<Views>("timerViews");
  s.Method<Alloc>("timerAlloc");
  s.Method<Free>("timerFree");
  s.Method<Now>("now");
  s.Method<TestClockJump>("testClockJump");
}

}  // namespace iapp
