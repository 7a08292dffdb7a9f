// The addon's entry point: runs every slice (napi/slice.h, IAPP_SLICES) into the NativeLoop class
// and the module's exports.
#include "../faults.h"
#include "../poller.h"
#include "slice.h"

namespace iapp {
namespace {

#if defined(IAPP_TEST_LEAK)
// Only in the build `node scripts/valgrind.mjs --prove-leak` (and test-asan's --prove-leak) make:
// 64 bytes allocated and dropped at every load, so the leak checks can be shown to fire. Never
// defined in a normal build.
__attribute__((noinline)) void LeakOnPurpose() {
  char* volatile p = static_cast<char*>(malloc(64));
  p[0] = 1;
}
#endif

}  // namespace
}  // namespace iapp

Napi::Object InitIapp(Napi::Env env, Napi::Object exports) {
  using namespace iapp;
#if defined(IAPP_TEST_LEAK)
  LeakOnPurpose();
#endif
  // Each worker thread loads the addon into its own env: per-thread state lives here, not in
  // globals.
  env.SetInstanceData(new AddonData());
#if defined(IAPP_KQUEUE)
  PollerProcessInit();
#endif
  Slice slice{env, exports, {}};
#define IAPP_RUN_SLICE(name) name##Slice(slice);
  IAPP_SLICES(IAPP_RUN_SLICE)
#undef IAPP_RUN_SLICE
  exports.Set("NativeLoop", NativeLoop::Define(env, std::move(slice.methods)));
  return exports;
}

NODE_API_MODULE(iapp, InitIapp)
