// Fault injection: the spec tests set, the counts they read, and the sites' names.
#include "../faults.h"
#include "slice.h"

namespace iapp {
// Named, not anonymous: NativeLoop::Bind<F> instantiates one thunk per function, and thunks of
// same-named functions in anonymous namespaces of different slices would be merged by the linker.
namespace faults_js {

// setFaults([[site, errno, rate, max, after], ...]): replaces the fault injection spec (src/faults.ts
// checks it). Returns false if there are too many entries.
Napi::Value Set(const Napi::CallbackInfo& info) {
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<FaultEntry> entries;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Array e = a.Get(i).As<Napi::Array>();
    const int site = e.Get(0u).As<Napi::Number>().Int32Value();
    if (site < 0 || site >= kFaultSiteCount) return Napi::Boolean::New(info.Env(), false);
    entries.push_back(FaultEntry{static_cast<FaultSite>(site), e.Get(1u).As<Napi::Number>().Int32Value(),
                                 e.Get(2u).As<Napi::Number>().DoubleValue(),
                                 static_cast<uint64_t>(e.Get(3u).As<Napi::Number>().DoubleValue()),
                                 static_cast<uint64_t>(e.Get(4u).As<Napi::Number>().DoubleValue())});
  }
  return Napi::Boolean::New(info.Env(), SetFaults(entries));
}

// faultCounts() -> injections per site, in kFaultSites order.
Napi::Value Counts(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env(), kFaultSiteCount);
  for (int i = 0; i < kFaultSiteCount; ++i)
    out.Set(i, Napi::Number::New(info.Env(), static_cast<double>(FaultCount(static_cast<FaultSite>(i)))));
  return out;
}

// fault(site) -> the errno to inject at a site JS owns (starting a loop thread), or 0.
Napi::Value One(const Napi::CallbackInfo& info) {
  const int site = info[0].As<Napi::Number>().Int32Value();
  return Napi::Number::New(info.Env(), site >= 0 && site < kFaultSiteCount ? Fault(static_cast<FaultSite>(site)) : 0);
}

}  // namespace faults_js

void FaultsSlice(Slice& s) {
  using namespace faults_js;
  s.Function("setFaults", Set);
  s.Function("faultCounts", Counts);
  s.Function("fault", One);
  Napi::Array sites = Napi::Array::New(s.env, kFaultSiteCount);
  for (int i = 0; i < kFaultSiteCount; ++i) sites.Set(i, kFaultSites[i]);
  s.exports.Set("faultSites", sites);
}

}  // namespace iapp
