// Counts of live native objects, process-wide, so tests (and users chasing a leak) can check
// that everything made was also released. A counter is one relaxed atomic add per object life.
#pragma once
#include <atomic>
#include <cstdint>

namespace iapp {

enum LiveKind {
  kLiveLoop,
  kLiveSocket,
  kLiveListener,
  kLiveUdp,
  kLiveChild,
  kLiveFile,
  kLivePipe,
  kLiveGroup,
  kLiveCount,
};

extern const char* const kLiveNames[kLiveCount];
extern std::atomic<int64_t> g_live[kLiveCount];

// A member that counts its owner: made and destroyed with it, copied as a new object.
template <LiveKind K>
struct Live {
  Live() { g_live[K].fetch_add(1, std::memory_order_relaxed); }
  Live(const Live&) : Live() {}
  Live& operator=(const Live&) { return *this; }
  ~Live() { g_live[K].fetch_sub(1, std::memory_order_relaxed); }
};

}  // namespace iapp
