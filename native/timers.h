// Timers of one loop: a heap per clock, a wheel for the monotonic clock's near deadlines, and one
// kernel timer per clock (a timerfd with epoll, an EVFILT_TIMER with kqueue: see timers.cc),
// whatever the number of timers.
//
// Allocate, then arm (Dasynq's rule). Allocating a timer reserves everything it will ever need:
// its slot, its room among its clock's entries, the kernel timer of its clock. Arming and disarming
// are plain stores by JavaScript into arrays shared with this class (no native call, no
// allocation, nothing that can fail); the loop applies them before it next waits.
#pragma once
#include <climits>
#include <cstdint>
#include <vector>

#include "poller.h"

namespace iapp {

class Loop;

enum Clock : int { kMonotonic = 0, kRealtime = 1 };

// The arrays JavaScript writes (src/timer.ts), per slot. Pointers into JS ArrayBuffers the loop
// keeps referenced; replaced (never resized in place) when the capacity grows.
struct TimerViews {
  double* rel = nullptr;     // armed after this many ns from now; NaN: use abs
  int64_t* abs = nullptr;    // armed at this instant of the timer's clock (ns)
  double* period = nullptr;  // ns between expirations; 0: once
  double* order = nullptr;   // when it was armed (a per-loop count): ties between equal deadlines
  int32_t* ctl = nullptr;    // [2 * slot] state (0 disarmed, 1 armed), [2 * slot + 1] generation
  int32_t* dirty = nullptr;  // [0] count, then slots whose arming changed
  uint8_t* flags = nullptr;  // 1 while the slot is in the dirty list
  size_t capacity = 0;
};

// A native owner of a timer slot (a dialer's pacing tick): its expirations call OnTimer on the
// loop thread instead of going to JavaScript as records.
class TimerOwner {
 public:
  virtual ~TimerOwner() = default;
  virtual void OnTimer(double expirations) = 0;
};

struct ExpiredTimer {
  int32_t slot;
  int32_t gen;
  int8_t priority;
  double expirations;
};

class TimerSet {
 public:
  explicit TimerSet(Loop* loop);
  // It owns raw chunk storage: never copied.
  TimerSet(const TimerSet&) = delete;
  TimerSet& operator=(const TimerSet&) = delete;
  ~TimerSet();
  // Makes slot capacity for `n` timers (the JS arrays must cover it): 0 or -ENOMEM.
  int Reserve(size_t n);
  void SetViews(const TimerViews& v) { views_ = v; }
  size_t capacity() const { return slots_.size(); }
  // Allocates a timer: its slot (>= 0) or -errno (ENOMEM, or the kernel timer's creation error).
  // Which call failed when Alloc() returned an error.
  const char* failed_syscall() const { return failed_syscall_; }
  int Alloc(int clock, int priority);
  void Free(int slot);
  // A slot owned natively: reserved and allocated at once (the step that can fail, -errno), then
  // armed and disarmed from native code, which cannot fail. Free() releases it.
  // A monotonic slot owned natively (a dialer's pacing tick): allocated (the step that can fail,
  // -errno), then armed and disarmed from native code, which cannot fail; its expirations call
  // the owner's OnTimer instead of going to JavaScript. FreeOwned() releases it.
  int AllocOwned(TimerOwner* owner);
  void ArmOwned(int slot, int64_t delay_ns, int64_t period_ns);
  void DisarmOwned(int slot);
  void FreeOwned(int slot);
  TimerOwner* OwnerOf(int slot) const { return slot >= kOwnedBase ? owned_[slot - kOwnedBase].owner : nullptr; }
  size_t allocated() const { return allocated_; }
  size_t armed() const { return live_[0] + live_[1]; }

  // Applies what JavaScript armed or disarmed since the last call, and sets the kernel timers.
  void Apply();
  // Appends the timers due now (periodic ones re-armed) to *out.
  void Expire(int clock, std::vector<ExpiredTimer>* out);
  // The system clock was set: realtime deadlines are instants, so they stay, but what is due and
  // when the kernel must wake us are computed again. Called on ECANCELED from the realtime
  // timerfd, and by the test hook below.
  void ClockJumped();
  // Test only: moves this loop's view of the realtime clock by `ns` and runs ClockJumped().
  void TestJump(int64_t ns);
  int64_t Now(int clock) const;
  // True if the earliest timer of `clock` is due: the loop then expires it without waiting for
  // the kernel timer (a timer armed for now costs no timerfd round trip).
  // (ArmKernel, which ends every change, records the earliest live deadline.)
  bool Due(int clock) const { return earliest_[clock] != kNever && earliest_[clock] <= Now(clock); }
  bool IsTimerWatcher(const Watcher* w) const { return w == &fds_[0] || w == &fds_[1]; }
  int ClockOf(const Watcher* w) const { return w == &fds_[1] ? kRealtime : kMonotonic; }
  // Reads the kernel timer after it fired; returns true if the realtime clock jumped.
  bool Consume(int clock);
  void Close();

 private:
#if defined(IAPP_KQUEUE)
  const char* failed_syscall_ = "kevent";
  bool registered_[2] = {false, false};  // the clock's EVFILT_TIMER knote exists
#else
  const char* failed_syscall_ = "timerfd_create";
#endif
  struct Slot {
    int64_t period = 0;
    uint32_t arming = 0;  // counts armings: only the heap entry carrying the latest one is live
    bool armed = false;
    int32_t gen = 0;
    int8_t clock = 0;
    int8_t priority = 0;
    bool used = false;
    TimerOwner* owner = nullptr;
  };
  // Heap entries carry their keys, so sifting touches only the heap array (100,000 timers:
  // comparisons that chased slots missed the cache on every step). Nothing points back into the
  // heap either: a disarmed or re-armed timer leaves its old entry behind, recognised as stale
  // by its `arming` when it reaches the top, and dropped there or by Compact(). Sifting then
  // writes nowhere but the heap.
  struct Entry {
    int64_t deadline;
    double order;  // arming order: equal deadlines fire in the order they were armed
    int32_t slot;
    uint32_t arming;
  };
  // The kernel timer's watcher: a timerfd (epoll), or the udata of an EVFILT_TIMER (kqueue).
  class Fd : public Watcher {
   public:
    void OnEvent(uint32_t) override {}
    void OnPollError(int) override {}
  };
  static bool Before(const Entry& a, const Entry& b) {
    return a.deadline != b.deadline ? a.deadline < b.deadline : a.order < b.order;
  }
  // A 4-ary heap: half the levels of a binary one, and a node's children share cache lines.
  static void SiftUp(std::vector<Entry>& h, size_t i);
  static void SiftDown(std::vector<Entry>& h, size_t i);
  static void PopTop(std::vector<Entry>& h);
  static size_t MinChild(const std::vector<Entry>& h, size_t i);
  // A slot made ready for a new timer. Its arming count goes on: entries of the slot's earlier
  // timer may still be in the heap, and must never match an arming of the new one.
  static Slot Fresh(const Slot& old) {
    Slot s;
    s.arming = old.arming;
    return s;
  }
  bool Live(const Entry& e) { const Slot& s = At(e.slot); return s.armed && s.arming == e.arming; }
  // The monotonic clock's near timers: a wheel of kWheel buckets of 2^kTickShift ns (about 1 ms)
  // ticks, covering the ticks from cur_tick_ on. Arming appends to its tick's bucket (a chain of
  // chunks of contiguous entries); the earliest bucket, once needed, is moved into run_ and
  // sorted there in one go, and expires from its front. An entry that belongs to no bucket (a
  // tick before cur_tick_, already pulled, or beyond the wheel) goes to the heap, as every
  // realtime one does; expiry takes the earlier of the run's front and the heap's top, so the
  // order stays exact by (deadline, order) whatever holds an entry. A bucket is pulled before its
  // first possible deadline could be the earliest, so the earliest live deadline is always that
  // of the run's front or the heap's top.
  static constexpr int kTickShift = 20;
  static constexpr int kWheel = 256;
  static constexpr int kChunk = 64;
  static constexpr int64_t kNever = INT64_MAX;
  struct Chunk {
    Entry e[kChunk];
    int32_t next;  // the bucket's next chunk, -1 at its tail
    int32_t n;     // entries used: kChunk in every chunk but the tail
  };
  // Room for `cap` monotonic entries (heap, wheel and run together): throws std::bad_alloc.
  void ReserveMonotonic(size_t cap);
  size_t StoredMonotonic() const { return heap_[kMonotonic].size() + wheel_n_ + (run_.size() - run_pos_); }
  void Insert(int clock, const Entry& e);  // into a bucket or the heap; never allocates
  void Append(int64_t tick, const Entry& e);
  void FreeChain(int32_t c);
  void Pull();  // moves the earliest bucket into run_, sorted
  int64_t FirstTick() const;  // the earliest non-empty bucket's tick, or kNever
  // Drops stale entries from the fronts and pulls what must be pulled: the earliest live entry
  // (nullptr if none), and whether it is the run's front (else the heap's top).
  const Entry* Earliest(int clock, bool* in_run);
  void Arm(int32_t slot, int64_t deadline, double order);  // arms or re-arms
  void Disarm(int32_t slot);
  // Drops stale entries from the heap's top.
  void CleanTop(int clock);
  // Drops every stale entry (heap, wheel and run) and rebuilds the heap: when an arming finds the
  // clock's room full. There is room for twice the timers of the clock, so this runs at most once
  // per that many re-armings.
  void Compact(int clock);
  void ArmKernel(int clock);
  int OpenFd(int clock);

  static constexpr int kOwnedBase = 1 << 30;
  Slot& At(int32_t slot) { return slot >= kOwnedBase ? owned_[slot - kOwnedBase] : slots_[slot]; }

  Loop* loop_;
  TimerViews views_;
  std::vector<Slot> slots_;
  std::vector<Slot> owned_;
  std::vector<int32_t> free_;
  std::vector<Entry> heap_[2];
  size_t live_[2] = {0, 0};  // armed timers per clock (the heap also holds stale entries)
  int64_t earliest_[2] = {kNever, kNever};  // the earliest live deadline, as of the last ArmKernel
  // The wheel (monotonic only). Chunks are raw storage (malloc'd, so untouched pages cost no RSS),
  // reserved for the most entries the clock's room allows: a bucket's chain has full chunks but
  // its tail, so that is room / kChunk + kWheel chunks.
  Chunk* chunks_ = nullptr;
  size_t chunk_cap_ = 0;
  size_t chunk_hwm_ = 0;  // chunks ever used; those below it that are free are in free_chunks_
  std::vector<int32_t> free_chunks_;
  int32_t head_[kWheel];
  int32_t tail_[kWheel];
  uint64_t bits_[kWheel / 64] = {};  // non-empty buckets
  int64_t cur_tick_ = 0;             // buckets hold ticks cur_tick_ .. cur_tick_ + kWheel - 1
  int64_t first_tick_ = kNever;      // FirstTick(), kept up to date
  size_t wheel_n_ = 0;               // entries in buckets, stale ones included
  std::vector<Entry> run_;           // pulled entries, sorted; expired from run_pos_ on
  size_t run_pos_ = 0;
  size_t room_ = 0;                  // monotonic entries there is room for
  size_t allocated_ = 0;
  Fd fds_[2];
  int64_t kernel_at_[2] = {-1, -1};  // what the kernel timer is set to (-1: disarmed)
  int64_t realtime_offset_ = 0;      // test hook only
};

}  // namespace iapp
