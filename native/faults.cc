#include "faults.h"

#include <thread>

namespace iapp {

const char* const kFaultSites[kFaultSiteCount] = {
    "accept", "recv", "send", "sendfile", "splice", "pollctl", "waker", "thread", "disk",
};

std::atomic<bool> g_faults_on{false};

namespace {

// Every field is atomic so that a change from the main thread is never a data race with a loop
// thread rolling the dice (sanitizers would say so, rightly).
struct Slot {
  std::atomic<int> site{-1};
  std::atomic<int> err{0};
  std::atomic<uint64_t> threshold{0};  // inject when a 32-bit draw is below this (2^32: always)
  std::atomic<uint64_t> max{0};
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> skip{0};
};

Slot g_slots[kMaxFaultEntries];
std::atomic<int> g_used{0};
std::atomic<uint64_t> g_counts[kFaultSiteCount];

uint32_t Draw() {
  // xorshift per thread: cheap, no lock, and no shared state for threads to fight over.
  thread_local uint64_t s = 0x9e3779b97f4a7c15ull ^ std::hash<std::thread::id>{}(std::this_thread::get_id());
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return static_cast<uint32_t>(s >> 32);
}

}  // namespace

int FaultRoll(FaultSite site) {
  const int used = g_used.load(std::memory_order_acquire);
  int chosen = 0;
  for (int i = 0; i < used; ++i) {
    Slot& e = g_slots[i];
    if (e.site.load(std::memory_order_relaxed) != site) continue;
    // Every rule of the site counts every call toward its `after`, whichever rule injects.
    uint64_t k = e.skip.load(std::memory_order_relaxed);
    while (k > 0 && !e.skip.compare_exchange_weak(k, k - 1, std::memory_order_relaxed)) {
    }
    if (k > 0 || chosen != 0) continue;
    const uint64_t t = e.threshold.load(std::memory_order_relaxed);
    if (t == 0 || Draw() >= t) continue;
    const uint64_t max = e.max.load(std::memory_order_relaxed);
    if (max != 0) {
      uint64_t h = e.hits.load(std::memory_order_relaxed);
      do {
        if (h >= max) break;
      } while (!e.hits.compare_exchange_weak(h, h + 1, std::memory_order_relaxed));
      if (h >= max) continue;
    } else {
      e.hits.fetch_add(1, std::memory_order_relaxed);
    }
    chosen = e.err.load(std::memory_order_relaxed);
  }
  if (chosen != 0) g_counts[site].fetch_add(1, std::memory_order_relaxed);
  return chosen;
}

bool SetFaults(const std::vector<FaultEntry>& entries) {
  if (entries.size() > static_cast<size_t>(kMaxFaultEntries)) return false;
  g_faults_on.store(false, std::memory_order_relaxed);
  g_used.store(0, std::memory_order_release);
  int n = 0;
  for (const FaultEntry& f : entries) {
    Slot& e = g_slots[n++];
    e.site.store(f.site, std::memory_order_relaxed);
    e.err.store(f.err, std::memory_order_relaxed);
    const double r = f.rate <= 0 ? 0 : f.rate >= 1 ? 1 : f.rate;
    e.threshold.store(static_cast<uint64_t>(r * 4294967296.0), std::memory_order_relaxed);
    e.max.store(f.max, std::memory_order_relaxed);
    e.hits.store(0, std::memory_order_relaxed);
    e.skip.store(f.after, std::memory_order_relaxed);
  }
  for (auto& c : g_counts) c.store(0, std::memory_order_relaxed);
  g_used.store(n, std::memory_order_release);
  g_faults_on.store(n > 0, std::memory_order_release);
  return true;
}

uint64_t FaultCount(FaultSite site) { return g_counts[site].load(std::memory_order_relaxed); }

}  // namespace iapp
