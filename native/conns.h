// Established connections, open now and most at once, counted where a connection starts and ends
// (native/socket.cc), so a peak is exact rather than sampled. Per loop they live in LoopStats;
// here is the block every loop of the process also counts into. Several processes of one program
// (--procs) can share one block: the parent makes it, each child maps it before its loops open
// anything, and the parent reads the whole fleet's figures from it.
//
// The same block bounds the connections listeners accept (admission): at most `max_total` at once
// and at most `max_per_addr` from one source address, over every loop of every process sharing the
// block. The bounds are exact, not sampled: a connection is admitted or refused under a lock in the
// shared memory itself, right after accept(2) and before the socket exists, and gives its place
// back when it closes. A refused connection is reset at once and counted.
#pragma once
#include <sys/socket.h>

#include <atomic>
#include <cstdint>

namespace iapp {

// Process slots of a shared block: 0 for a process on its own (or a fleet's parent), 1 + the
// process index for a fleet's children (--procs is at most 256).
constexpr int kConnSlots = 258;

struct ConnCounts {
  std::atomic<int64_t> open{0};
  std::atomic<int64_t> peak{0};
  // Admission. The bounds are set before any connection is open; 0 is no bound.
  std::atomic<int64_t> max_total{0};
  std::atomic<int64_t> max_per_addr{0};
  std::atomic<uint64_t> refused_total{0};  // refused because max_total were open
  std::atomic<uint64_t> refused_addr{0};   // refused because max_per_addr were open from that address
  // Guards `admitted` and `by_slot`: 0 when free, else the holder's slot + 1, so the parent can
  // take it back from a process that died holding it (ReclaimConns).
  std::atomic<uint32_t> lock{0};
  int64_t admitted = 0;            // connections counted against max_total now
  int64_t by_slot[kConnSlots] = {};  // ... by process slot: what a dead process held
  uint64_t hash_key[2] = {0, 0};   // SipHash key of the address table (random, per block)
};
static_assert(sizeof(ConnCounts) <= 4096, "the header is one page");

// The block of this process (its own, or the shared page once attached).
ConnCounts* ProcessConns();

inline void RaisePeak(std::atomic<int64_t>& peak, int64_t now) {
  int64_t p = peak.load(std::memory_order_relaxed);
  while (now > p && !peak.compare_exchange_weak(p, now, std::memory_order_relaxed)) {
  }
}

// A new shared block: an fd (close-on-exec off, so a child can inherit it) of zeroed memory that
// this process counts into from now on too (carrying over the bounds set so far), or -errno. EBUSY
// once a connection is open.
int CreateSharedConns();
// Counts into the block behind `fd` from now on, as process slot `slot` (1..kConnSlots-1): 0 or
// -errno (EBUSY once a connection is open, EINVAL for an fd that is no such block or a bad slot).
int AttachSharedConns(int fd, int slot);
// Sets the bounds (0: none) for the whole block: 0, -EBUSY while a connection is open (the counts
// would not include it), -ENOMEM if the address table cannot be had.
int SetConnLimits(int64_t max_total, int64_t max_per_addr);
// The parent of a fleet, after process slot `slot` has died: gives back every place it held
// (and the locks it held, if it died holding one). Cannot fail.
void ReclaimConns(int slot);

enum AdmitResult : int { kAdmitted = 0, kRefusedTotal = 1, kRefusedAddr = 2 };

// A connection's place under the bounds, given back when it closes (or when it is destroyed
// without closing). Move-only; an empty one holds nothing.
class Admission {
 public:
  Admission() = default;
  Admission(Admission&& o) noexcept : counted_(o.counted_), slot_(o.slot_), table_(o.table_) { o.Forget(); }
  Admission& operator=(Admission&& o) noexcept {
    if (this != &o) {
      Release();
      counted_ = o.counted_;
      slot_ = o.slot_;
      table_ = o.table_;
      o.Forget();
    }
    return *this;
  }
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;
  ~Admission() { Release(); }

  // Asks for a place for a connection from `peer` (null or not IP: only the total bound
  // applies). kAdmitted (this then holds the place), or why not (this holds nothing). Without
  // bounds it touches nothing shared.
  AdmitResult Take(const sockaddr* peer, socklen_t len);
  void Release();

 private:
  void Forget() {
    counted_ = false;
    slot_ = -1;
    table_ = nullptr;
  }
  bool counted_ = false;  // counted in admitted / by_slot
  int32_t slot_ = -1;     // index of its entry in the address table
  const void* table_ = nullptr;  // that table (conns.cc)
};

}  // namespace iapp
