// Messages between the runtime's threads: joining the group, posts, batches, cancel, topics,
// the shared gauges senders read, and the process-wide groups and interned names.
#include "../handoff.h"
#include "../inbox.h"
#include "slice.h"

namespace iapp {
// Named, not anonymous: NativeLoop::Bind<F> instantiates one thunk per function, and thunks of
// same-named functions in anonymous namespaces of different slices would be merged by the linker.
namespace messaging_js {

// attach(groupId, self): this loop becomes endpoint `self` of the runtime's group.
Napi::Value Attach(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t gid = info[0].As<Napi::Number>().Uint32Value();
  auto group = FindGroup(gid);
  if (group == nullptr) ThrowSysError(env, ENOENT, "attach", "the runtime's message group is gone");
  int r = self.L(env)->Attach(std::move(group), gid, info[1].As<Napi::Number>().Int32Value());
  if (r < 0) ThrowSysError(env, -r, "attach", "joining the runtime's message group");
  return env.Undefined();
}

Napi::Value Announce(NativeLoop& self, const Napi::CallbackInfo& info) {
  if (!self.closed()) self.raw()->Announce();
  return info.Env().Undefined();
}

Napi::Value SetBusyPoll(NativeLoop& self, const Napi::CallbackInfo& info) {
  self.raw()->SetBusyPoll(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue() * 1000));
  return info.Env().Undefined();
}

Napi::Value SetInboxPriority(NativeLoop& self, const Napi::CallbackInfo& info) {
  self.raw()->SetInboxPriority(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// Open and in a group: what every send needs.
Loop* Attached(NativeLoop& self) { return self.closed() || !self.raw()->attached() ? nullptr : self.raw(); }

// post(target, type, name, seq, flags, payload?: Uint8Array, bounded) -> a PushResult
// (postResults). Hot path: no exceptions, no allocation but the copy.
Napi::Value Post(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Loop* loop = Attached(self);
  if (loop == nullptr) return Napi::Number::New(env, Inbox::kClosed);
  MsgHeader h{};
  h.type = static_cast<uint8_t>(info[1].As<Napi::Number>().Uint32Value());
  h.name = info[2].As<Napi::Number>().Uint32Value();
  h.seq = info[3].As<Napi::Number>().DoubleValue();
  h.flags = static_cast<uint8_t>(info[4].As<Napi::Number>().Uint32Value());
  const uint8_t* data = Payload(env, info[5], &h.len);
  return Napi::Number::New(env, loop->Post(info[0].As<Napi::Number>().Int32Value(), h, data, info[6].ToBoolean()));
}

// postBatch(target, staging: Uint8Array, length, count) -> a PushResult (postResults)
Napi::Value PostBatch(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Loop* loop = Attached(self);
  if (loop == nullptr) return Napi::Number::New(env, Inbox::kClosed);
  auto u8 = info[1].As<Napi::Uint8Array>();
  size_t len = static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue());
  if (len > u8.ByteLength()) throw Napi::RangeError::New(env, "staging length past its buffer");
  int r = loop->PostBatch(info[0].As<Napi::Number>().Int32Value(), u8.Data(), len,
                          static_cast<size_t>(info[3].As<Napi::Number>().DoubleValue()));
  return Napi::Number::New(env, r);
}

// gauges() -> ArrayBuffer over the group's int32 [pending messages, pending bytes] per
// endpoint, read by senders with Atomics.load to check the bound without a native call. The
// buffer keeps the gauge block alive, not the group.
Napi::Value Gauges(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Loop* loop = self.raw();
  if (!loop->attached()) ThrowSysError(env, EBADF, "gauges", "the loop is not attached");
  auto* keep = new std::shared_ptr<int32_t>(loop->group()->gauges());
  napi_value ab;
  napi_status st = napi_create_external_arraybuffer(
      env, keep->get(), loop->group()->gauges_bytes(),
      [](napi_env, void*, void* hint) { delete static_cast<std::shared_ptr<int32_t>*>(hint); }, keep, &ab);
  if (st != napi_ok) {
    delete keep;
    ThrowSysError(env, ENOMEM, "gauges", "cannot share the inbox gauges");
  }
  return Napi::Value(env, ab);
}

// cancel(target, seq) -> removed before it ran
Napi::Value Cancel(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Loop* loop = Attached(self);
  if (loop == nullptr) return Napi::Boolean::New(env, false);
  int32_t target = info[0].As<Napi::Number>().Int32Value();
  if (target < 0 || target >= loop->group()->size()) return Napi::Boolean::New(env, false);
  return Napi::Boolean::New(env, loop->group()->inbox(target)->Cancel(loop->self(), info[1].As<Napi::Number>().DoubleValue()));
}

// subscribe(topic, on): announced to the membership topic's subscribers.
Napi::Value Subscribe(NativeLoop& self, const Napi::CallbackInfo& info) {
  if (Loop* loop = Attached(self)) loop->Subscribe(info[0].As<Napi::Number>().Uint32Value(), info[1].ToBoolean());
  return info.Env().Undefined();
}

// broadcast(topic, seq, flags, payload?, out, bounded) -> endpoints whose inbox was full (not
// reached); fills out[0] with the number reached.
Napi::Value Broadcast(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array skipped = Napi::Array::New(env);
  Loop* loop = Attached(self);
  if (loop == nullptr) return skipped;
  MsgHeader h{};
  h.name = info[0].As<Napi::Number>().Uint32Value();
  h.seq = info[1].As<Napi::Number>().DoubleValue();
  h.flags = static_cast<uint8_t>(info[2].As<Napi::Number>().Uint32Value());
  const uint8_t* data = Payload(env, info[3], &h.len);
  auto out = info[4].As<Napi::Float64Array>();
  const bool bounded = !info[5].IsBoolean() || info[5].As<Napi::Boolean>().Value();
  std::vector<int32_t> full;
  out[0] = static_cast<double>(loop->Broadcast(h, data, bounded, &full));
  for (uint32_t k = 0; k < full.size(); ++k) skipped.Set(k, full[k]);
  return skipped;
}

Napi::Value Members(NativeLoop& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env);
  Loop* loop = Attached(self);
  if (loop == nullptr) return a;
  uint32_t k = 0;
  for (int32_t m : loop->group()->Members()) a.Set(k++, m);
  return a;
}

// createGroup(size, maxMessages, maxBytes) -> id
Napi::Value CreateGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = std::make_shared<Group>(info[0].As<Napi::Number>().Int32Value(),
                                   static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue()),
                                   static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue()));
  int r = g->Open();
  if (r < 0) ThrowSysError(env, -r, "eventfd", "making the loops' inboxes");  // kqueue: cannot fail
  return Napi::Number::New(env, RegisterGroup(std::move(g)));
}

// releaseGroup(id) -> sockets handed off but never adopted (now closed)
Napi::Value ReleaseGroupJs(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  ReleaseGroup(id);
  return Napi::Number::New(info.Env(), static_cast<double>(CloseDetached(id)));
}

Napi::Value InternJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Intern(info[0].As<Napi::String>().Utf8Value()));
}

Napi::Value InternedNameJs(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), InternedName(info[0].As<Napi::Number>().Uint32Value()));
}

}  // namespace messaging_js

void MessagingSlice(Slice& s) {
  using namespace messaging_js;
  s.Method<Attach>("attach");
  s.Method<Announce>("announce");
  s.Method<SetBusyPoll>("setBusyPoll");
  s.Method<SetInboxPriority>("setInboxPriority");
  s.Method<Post>("post");
  s.Method<PostBatch>("postBatch");
  s.Method<Gauges>("gauges");
  s.Method<Cancel>("cancel");
  s.Method<Subscribe>("subscribe");
  s.Method<Broadcast>("broadcast");
  s.Method<Members>("members");
  s.Function("createGroup", CreateGroup);
  s.Function("releaseGroup", ReleaseGroupJs);
  s.Function("intern", InternJs);
  s.Function("internedName", InternedNameJs);
  Napi::Object results = Napi::Object::New(s.env);
  results.Set("ok", static_cast<double>(Inbox::kOk));
  results.Set("full", static_cast<double>(Inbox::kFull));
  results.Set("exited", static_cast<double>(Inbox::kClosed));
  results.Set("noEndpoint", static_cast<double>(Inbox::kNoEndpoint));
  results.Set("noMemory", static_cast<double>(Inbox::kNoMemory));
  results.Freeze();
  s.exports.Set("postResults", results);
}

}  // namespace iapp
