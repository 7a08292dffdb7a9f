// Linked into the ASan test build of the addon only (scripts/test-asan.mjs), never into the
// library. LeakSanitizer runs with leak_check_at_exit=0, because its check at the exit of a big
// process that never frees its heap (tsc, vitest: over a thousand blocks V8 keeps) takes minutes.
// This makes the check at exit only in the processes that loaded iapp, which are the ones whose
// leaks can be ours.
#include <sanitizer/lsan_interface.h>

#include <cstdlib>

namespace {
struct LeakCheckAtExit {
  LeakCheckAtExit() { std::atexit([] { __lsan_do_recoverable_leak_check(); }); }
};
const LeakCheckAtExit registered;
}  // namespace
