// Established connections, open now and most at once, counted where a connection starts and ends
// (native/socket.cc), so a peak is exact rather than sampled. Per loop they live in LoopStats;
// here is the block every loop of the process also counts into. Several processes of one program
// (--procs) can share one block: the parent makes a page, each child maps it before its loops
// open anything, and the parent reads the whole fleet's figures from it.
#pragma once
#include <atomic>
#include <cstdint>

namespace iapp {

struct ConnCounts {
  std::atomic<int64_t> open{0};
  std::atomic<int64_t> peak{0};
};

// The block of this process (its own, or the shared page once attached).
ConnCounts* ProcessConns();

inline void RaisePeak(std::atomic<int64_t>& peak, int64_t now) {
  int64_t p = peak.load(std::memory_order_relaxed);
  while (now > p && !peak.compare_exchange_weak(p, now, std::memory_order_relaxed)) {
  }
}

// A new shared block: an fd (close-on-exec off, so a child can inherit it) of a zeroed page that
// this process counts into from now on too, or -errno. EBUSY once a connection is open.
int CreateSharedConns();
// Counts into the block behind `fd` from now on: 0 or -errno (EBUSY once a connection is open,
// EINVAL for an fd that is no such block).
int AttachSharedConns(int fd);

}  // namespace iapp
