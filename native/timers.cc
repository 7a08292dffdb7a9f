#include "timers.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <new>
#include <unistd.h>
#if defined(IAPP_KQUEUE)
#include <sys/event.h>
#else
#include <sys/timerfd.h>
#endif

#include "loop.h"
#include "sys.h"

namespace iapp {

#if defined(IAPP_KQUEUE)
// Each clock has one EVFILT_TIMER knote, registered when its first timer is allocated (the step
// that may fail: FreeBSD limits timers per user, kern.kq_calloutmax) and then only modified:
// EV_ADD on a knote that exists sets its new expiry (FreeBSD 12+'s filt_timertouch, macOS,
// libkqueue's timerfd_settime) and allocates nothing, so arming cannot fail. A clock with nothing
// armed is parked a day away rather than disabled: libkqueue closes a disabled timer's timerfd
// and opens a new one to enable it, which could fail.
namespace {
// Absolute expiries where the platform has them: FreeBSD 12+ (NOTE_ABSTIME), macOS and libkqueue
// (NOTE_ABSOLUTE, on the realtime clock).
#if defined(NOTE_ABSTIME)
constexpr uint32_t kNoteAbs = NOTE_ABSTIME;
#elif defined(NOTE_ABSOLUTE)
constexpr uint32_t kNoteAbs = NOTE_ABSOLUTE;
#else
constexpr uint32_t kNoteAbs = 0;  // none: realtime timers are armed relative, with the recheck below
#endif
constexpr int64_t kParkNs = 86400LL * 1000000000;
// FreeBSD converts an absolute expiry to its uptime clock when it is armed (and so does macOS, as
// far as its sources say), so a step of the system clock does not move it, and there is no event
// for a step (Linux has TFD_TIMER_CANCEL_ON_SET). A realtime kernel timer is therefore set at most
// this far ahead: a jump is noticed within it, at the price of one wake-up per second while a
// realtime timer further away is armed. Libkqueue's absolute timers follow the clock; this code
// runs there as it does on FreeBSD.
constexpr int64_t kRealtimeRecheckNs = 1000000000;
}  // namespace
#endif

TimerSet::TimerSet(Loop* loop) : loop_(loop) {
  for (int b = 0; b < kWheel; ++b) head_[b] = tail_[b] = -1;
}

TimerSet::~TimerSet() {
  Close();
  std::free(chunks_);
}

void TimerSet::Close() {
  for (int c = 0; c < 2; ++c) {
#if defined(IAPP_KQUEUE)
    if (registered_[c]) loop_->poller().Unregister(EVFILT_TIMER, reinterpret_cast<uintptr_t>(&fds_[c]));
    registered_[c] = false;
#endif
    if (fds_[c].fd >= 0) {
      loop_->poller().Remove(&fds_[c]);
      SysClose(fds_[c].fd);
    }
    fds_[c].fd = -1;
  }
}

int TimerSet::Reserve(size_t n) {
  if (n <= slots_.size()) return 0;
  try {
    slots_.reserve(n);
    free_.reserve(n);
    // Twice the slots: stale entries fill the other half before Compact() runs (see timers.h).
    ReserveMonotonic(2 * (n + owned_.size()));
    heap_[1].reserve(2 * n);
    while (slots_.size() < n) slots_.emplace_back();
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  return 0;
}

int TimerSet::OpenFd(int clock) {
#if defined(IAPP_KQUEUE)
  if (registered_[clock]) return 0;
  // The realtime knote takes the absolute form from the start: libkqueue re-creates the timerfd
  // when a knote switches between the two.
  const uint32_t fflags = NOTE_NSECONDS | (clock == kRealtime ? kNoteAbs : 0);
  const int64_t data = (fflags & kNoteAbs) ? Now(kRealtime) - realtime_offset_ + kParkNs : kParkNs;
  int r = loop_->poller().Register(&fds_[clock], EVFILT_TIMER, reinterpret_cast<uintptr_t>(&fds_[clock]), 0, fflags, data);
  if (r < 0) return r;
  registered_[clock] = true;
  kernel_at_[clock] = -1;
  return 0;
#else
  if (fds_[clock].fd >= 0) return 0;
  int fd = timerfd_create(clock == kRealtime ? CLOCK_REALTIME : CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  failed_syscall_ = "timerfd_create";
  if (fd < 0) return -errno;
  failed_syscall_ = "epoll_ctl";
  fds_[clock].fd = fd;
  fds_[clock].want = kWantRead;
  // Now, not at the next flush: a timerfd the poller refused would leave every timer of this
  // clock silent, so the allocation that opened it must fail instead.
  if (int r = loop_->poller().ApplyNow(&fds_[clock]); r < 0) {
    SysClose(fd);
    fds_[clock].fd = -1;
    fds_[clock].want = 0;
    return r;
  }
  return 0;
#endif
}

int TimerSet::Alloc(int clock, int priority) {
  if (clock != kMonotonic && clock != kRealtime) return -EINVAL;
  int r = OpenFd(clock);
  if (r < 0) return r;
  int32_t slot = -1;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    for (size_t i = allocated_; i < slots_.size(); ++i)
      if (!slots_[i].used) {
        slot = static_cast<int32_t>(i);
        break;
      }
    if (slot < 0) return -ENOSPC;  // the caller reserves capacity first
  }
  Slot& s = slots_[static_cast<size_t>(slot)];
  s = Fresh(s);
  s.used = true;
  s.clock = static_cast<int8_t>(clock);
  s.priority = static_cast<int8_t>(priority);
  ++allocated_;
  return slot;
}

int TimerSet::AllocOwned(TimerOwner* owner) {
  // Owned slots have their own numbers (from kOwnedBase): JavaScript sizes its arrays by its own
  // slots and never sees these.
  int r = OpenFd(kMonotonic);
  if (r < 0) return r;
  size_t k = 0;
  while (k < owned_.size() && owned_[k].used) ++k;
  try {
    if (k == owned_.size()) owned_.emplace_back();
    // Room for every slot, JS's and owned: arming never reallocates.
    ReserveMonotonic(2 * (slots_.size() + owned_.size()));
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  owned_[k] = Fresh(owned_[k]);
  owned_[k].used = true;
  owned_[k].owner = owner;
  return kOwnedBase + static_cast<int>(k);
}

void TimerSet::ArmOwned(int slot, int64_t delay_ns, int64_t period_ns) {
  Slot& s = At(slot);
  s.period = period_ns > 0 ? period_ns : 0;
  // Ties with JS timers due at the same instant: the native tick goes first (order 0).
  Arm(slot, Now(s.clock) + (delay_ns > 0 ? delay_ns : 0), 0);
  ArmKernel(s.clock);
}

void TimerSet::DisarmOwned(int slot) {
  Disarm(slot);
  ArmKernel(At(slot).clock);
}

void TimerSet::FreeOwned(int slot) {
  if (slot < kOwnedBase || static_cast<size_t>(slot - kOwnedBase) >= owned_.size()) return;
  DisarmOwned(slot);
  At(slot) = Fresh(At(slot));
}

void TimerSet::Free(int slot) {
  if (slot < 0 || static_cast<size_t>(slot) >= slots_.size() || !slots_[slot].used) return;
  Disarm(slot);
  slots_[slot].used = false;
  --allocated_;
  free_.push_back(slot);  // within the capacity reserved for it
  ArmKernel(slots_[slot].clock);
}

int64_t TimerSet::Now(int clock) const {
  timespec ts;
  clock_gettime(clock == kRealtime ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts);
  int64_t ns = static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  return clock == kRealtime ? ns + realtime_offset_ : ns;
}

void TimerSet::SiftUp(std::vector<Entry>& h, size_t i) {
  const Entry e = h[i];
  while (i > 0) {
    const size_t p = (i - 1) / 4;
    if (!Before(e, h[p])) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = e;
}

// The earliest of node i's children, or 0 when it has none (the root is no one's child).
size_t TimerSet::MinChild(const std::vector<Entry>& h, size_t i) {
  const size_t first = 4 * i + 1;
  const size_t n = h.size();
  if (first >= n) return 0;
  if (first + 4 <= n) {
    // A big heap misses the cache at every level: fetch the grandchildren while these four are
    // compared, and compare them in two independent pairs rather than one chain.
    if (16 * i + 5 < n) {
      const char* g = reinterpret_cast<const char*>(&h[16 * i + 5]);
      for (size_t b = 0; b < 16 * sizeof(Entry); b += 64) __builtin_prefetch(g + b);
    }
    const size_t a = Before(h[first + 1], h[first]) ? first + 1 : first;
    const size_t b = Before(h[first + 3], h[first + 2]) ? first + 3 : first + 2;
    return Before(h[b], h[a]) ? b : a;
  }
  const size_t end = n;
  size_t c = first;
  for (size_t k = first + 1; k < end; ++k)
    if (Before(h[k], h[c])) c = k;
  return c;
}

void TimerSet::SiftDown(std::vector<Entry>& h, size_t i) {
  const Entry e = h[i];
  for (;;) {
    const size_t c = MinChild(h, i);
    if (c == 0 || !Before(h[c], e)) break;
    h[i] = h[c];
    i = c;
  }
  h[i] = e;
}

void TimerSet::PopTop(std::vector<Entry>& h) {
  const Entry last = h.back();
  h.pop_back();
  if (h.empty()) return;
  // The hole at the top goes down along the smaller children to a leaf, then `last` (a late
  // deadline, as a heap's last entry mostly is) comes up from there: one comparison per level
  // fewer than sifting `last` down from the top, and it rarely rises far.
  size_t i = 0;
  for (size_t c; (c = MinChild(h, i)) != 0; i = c) h[i] = h[c];
  h[i] = last;
  SiftUp(h, i);
}

void TimerSet::ReserveMonotonic(size_t cap) {
  if (cap <= room_) return;
  heap_[kMonotonic].reserve(cap);
  run_.reserve(cap);
  const size_t chunks = cap / kChunk + kWheel + 1;
  free_chunks_.reserve(chunks);
  if (chunks > chunk_cap_) {
    // Chunk is trivially copyable: realloc moves it; its new pages stay untouched until used.
    void* p = std::realloc(chunks_, chunks * sizeof(Chunk));
    if (p == nullptr) throw std::bad_alloc();
    chunks_ = static_cast<Chunk*>(p);
    chunk_cap_ = chunks;
  }
  room_ = cap;
}

void TimerSet::Insert(int clock, const Entry& e) {
  if (clock == kMonotonic) {
    const int64_t tick = e.deadline >> kTickShift;
    if (tick >= cur_tick_ && tick - cur_tick_ < kWheel) {
      Append(tick, e);
      return;
    }
  }
  auto& h = heap_[clock];
  h.push_back(e);  // within the capacity: never reallocates
  SiftUp(h, h.size() - 1);
}

void TimerSet::Append(int64_t tick, const Entry& e) {
  const int b = static_cast<int>(tick & (kWheel - 1));
  int32_t c = tail_[b];
  if (c < 0 || chunks_[c].n == kChunk) {
    int32_t k;
    if (!free_chunks_.empty()) {
      k = free_chunks_.back();
      free_chunks_.pop_back();
    } else {
      k = static_cast<int32_t>(chunk_hwm_++);  // below chunk_cap_: see timers.h
    }
    chunks_[k].next = -1;
    chunks_[k].n = 0;
    if (c < 0) {
      head_[b] = k;
      bits_[b >> 6] |= uint64_t{1} << (b & 63);
    } else {
      chunks_[c].next = k;
    }
    tail_[b] = k;
    c = k;
  }
  chunks_[c].e[chunks_[c].n++] = e;
  ++wheel_n_;
  if (tick < first_tick_) first_tick_ = tick;
}

void TimerSet::FreeChain(int32_t c) {
  while (c >= 0) {
    free_chunks_.push_back(c);  // within its reserve: never more than chunk_cap_ chunks
    c = chunks_[c].next;
  }
}

int64_t TimerSet::FirstTick() const {
  if (wheel_n_ == 0) return kNever;
  // Every non-empty bucket's tick is within kWheel of cur_tick_: this finds one.
  for (int64_t t = cur_tick_;;) {
    const int b = static_cast<int>(t & (kWheel - 1));
    const uint64_t w = bits_[b >> 6] >> (b & 63);
    if (w != 0) return t + __builtin_ctzll(w);
    t += 64 - (b & 63);
  }
}

void TimerSet::Pull() {
  const int64_t tick = first_tick_;
  const int b = static_cast<int>(tick & (kWheel - 1));
  if (run_pos_ > 0) {
    run_.erase(run_.begin(), run_.begin() + static_cast<ptrdiff_t>(run_pos_));
    run_pos_ = 0;
  }
  // Everything in the run is from earlier ticks: the bucket, sorted, goes after it.
  const size_t from = run_.size();
  for (int32_t c = head_[b]; c >= 0; c = chunks_[c].next) {
    const Chunk& k = chunks_[c];
    for (int32_t i = 0; i < k.n; ++i)
      if (Live(k.e[i])) run_.push_back(k.e[i]);  // within room_: never reallocates
    wheel_n_ -= static_cast<size_t>(k.n);
  }
  FreeChain(head_[b]);
  head_[b] = tail_[b] = -1;
  bits_[b >> 6] &= ~(uint64_t{1} << (b & 63));
  cur_tick_ = tick + 1;
  first_tick_ = FirstTick();
  // Timers armed together with one delay arrive in order already.
  const auto first = run_.begin() + static_cast<ptrdiff_t>(from);
  if (!std::is_sorted(first, run_.end(), Before)) std::sort(first, run_.end(), Before);
}

const TimerSet::Entry* TimerSet::Earliest(int clock, bool* in_run) {
  CleanTop(clock);
  auto& h = heap_[clock];
  *in_run = false;
  if (clock != kMonotonic) return h.empty() ? nullptr : &h[0];
  for (;;) {
    while (run_pos_ < run_.size() && !Live(run_[run_pos_])) ++run_pos_;
    const Entry* r = run_pos_ < run_.size() ? &run_[run_pos_] : nullptr;
    const Entry* t = h.empty() ? nullptr : &h[0];
    const Entry* m = r == nullptr ? t : t == nullptr ? r : Before(*t, *r) ? t : r;
    // The earliest bucket's entries are due no sooner than its tick starts: while that could be
    // before the earliest found, the bucket is pulled (its stale entries dropped on the way).
    if (first_tick_ != kNever && (m == nullptr || (first_tick_ << kTickShift) <= m->deadline)) {
      Pull();
      continue;
    }
    *in_run = m != nullptr && m == r;
    return m;
  }
}

void TimerSet::Arm(int32_t slot, int64_t deadline, double order) {
  Slot& s = At(slot);
  if (!s.armed) ++live_[s.clock];
  s.armed = true;
  ++s.arming;  // an entry of an earlier arming is stale from now on
  if (s.clock == kMonotonic ? StoredMonotonic() >= room_ : heap_[s.clock].size() == heap_[s.clock].capacity()) Compact(s.clock);
  Insert(s.clock, Entry{deadline, order, slot, s.arming});
}

void TimerSet::Disarm(int32_t slot) {
  Slot& s = At(slot);
  if (!s.armed) return;
  s.armed = false;
  --live_[s.clock];
}

void TimerSet::CleanTop(int clock) {
  auto& h = heap_[clock];
  while (!h.empty() && !Live(h[0])) PopTop(h);
}

void TimerSet::Compact(int clock) {
  auto& h = heap_[clock];
  if (clock == kMonotonic) {
    size_t k = 0;
    for (size_t i = run_pos_; i < run_.size(); ++i)
      if (Live(run_[i])) run_[k++] = run_[i];
    run_.resize(k);  // shrinks: keeps the capacity
    run_pos_ = 0;
    wheel_n_ = 0;
    for (int b = 0; b < kWheel; ++b) {
      if (head_[b] < 0) continue;
      // Live entries move forward along the bucket's own chain, in order; the chunks left over
      // at its end are freed. Only the tail stays short of kChunk.
      int32_t wc = head_[b];
      int32_t wi = 0;
      size_t kept = 0;
      for (int32_t rc = head_[b]; rc >= 0; rc = chunks_[rc].next) {
        const int32_t n = chunks_[rc].n;
        for (int32_t i = 0; i < n; ++i) {
          const Entry e = chunks_[rc].e[i];
          if (!Live(e)) continue;
          if (wi == kChunk) {
            wc = chunks_[wc].next;
            wi = 0;
          }
          chunks_[wc].e[wi++] = e;
          ++kept;
        }
      }
      if (kept == 0) {
        FreeChain(head_[b]);
        head_[b] = tail_[b] = -1;
        bits_[b >> 6] &= ~(uint64_t{1} << (b & 63));
        continue;
      }
      chunks_[wc].n = wi;
      FreeChain(chunks_[wc].next);
      chunks_[wc].next = -1;
      tail_[b] = wc;
      wheel_n_ += kept;
    }
    first_tick_ = FirstTick();
  }
  size_t n = 0;
  for (size_t i = 0; i < h.size(); ++i)
    if (Live(h[i])) h[n++] = h[i];
  h.resize(n);  // shrinks: keeps the capacity
  for (size_t i = n / 4 + 1; i-- > 0;)
    if (i < n) SiftDown(h, i);
}

void TimerSet::Apply() {
  if (views_.dirty == nullptr) return;
  const int32_t n = views_.dirty[0];
  if (n == 0) return;
  bool touched[2] = {false, false};
  const int64_t now[2] = {Now(kMonotonic), Now(kRealtime)};
  // An empty wheel starts again at the current tick, or just past the run's last entry, so that
  // near deadlines land in it. (A non-empty one moves on only by pulling its buckets.)
  if (wheel_n_ == 0) {
    const int64_t tick = now[kMonotonic] >> kTickShift;
    const int64_t past_run = run_pos_ < run_.size() ? (run_.back().deadline >> kTickShift) + 1 : 0;
    cur_tick_ = tick > past_run ? tick : past_run;
  }
  for (int32_t k = 0; k < n; ++k) {
    const int32_t slot = views_.dirty[1 + k];
    if (slot < 0 || static_cast<size_t>(slot) >= slots_.size()) continue;
    views_.flags[slot] = 0;
    Slot& s = slots_[slot];
    if (!s.used) continue;
    touched[s.clock] = true;
    if (views_.ctl[2 * slot] == 0) {
      Disarm(slot);
      continue;
    }
    const double rel = views_.rel[slot];
    const int64_t deadline = std::isnan(rel) ? views_.abs[slot] : now[s.clock] + static_cast<int64_t>(rel);
    const double period = views_.period[slot];
    s.period = period > 0 ? static_cast<int64_t>(period) : 0;
    s.gen = views_.ctl[2 * slot + 1];
    Arm(slot, deadline, views_.order[slot]);
  }
  views_.dirty[0] = 0;
  for (int c = 0; c < 2; ++c)
    if (touched[c]) ArmKernel(c);
}

void TimerSet::ArmKernel(int clock) {
  bool in_run;
  const Entry* first = Earliest(clock, &in_run);
  earliest_[clock] = first == nullptr ? kNever : first->deadline;
#if defined(IAPP_KQUEUE)
  if (!registered_[clock]) return;
  const int64_t at = first == nullptr ? -1 : first->deadline;
  if (at == kernel_at_[clock]) return;
  kernel_at_[clock] = at;
  const int64_t now = Now(clock);
  int64_t delay = at < 0 ? kParkNs : at - now;
  if (delay < 1) delay = 1;  // due already: at once (0 is not a valid period)
  if (clock == kRealtime && at >= 0 && delay > kRealtimeRecheckNs) delay = kRealtimeRecheckNs;
  const uint32_t fflags = NOTE_NSECONDS | (clock == kRealtime ? kNoteAbs : 0);
  // The kernel's realtime clock has no test offset (TestJump).
  const int64_t data = (fflags & kNoteAbs) ? now + delay - realtime_offset_ : delay;
  // Modifies the knote OpenFd() registered: cannot fail (see the top of this file).
  loop_->poller().Modify(&fds_[clock], EVFILT_TIMER, reinterpret_cast<uintptr_t>(&fds_[clock]), EV_ADD, fflags, data);
#else
  if (fds_[clock].fd < 0) return;
  int64_t at = first == nullptr ? -1 : first->deadline - (clock == kRealtime ? realtime_offset_ : 0);
  if (at == kernel_at_[clock]) return;
  itimerspec its{};
  if (at >= 0) {
    const int64_t v = at > 0 ? at : 1;  // a zero it_value would disarm
    its.it_value.tv_sec = static_cast<time_t>(v / 1000000000);
    its.it_value.tv_nsec = static_cast<long>(v % 1000000000);
  }
  int flags = TFD_TIMER_ABSTIME;
  if (clock == kRealtime) flags |= TFD_TIMER_CANCEL_ON_SET;
  if (timerfd_settime(fds_[clock].fd, flags, &its, nullptr) < 0) {
    // ECANCELED: the clock was set since the last read; the fd is readable and the drain will
    // re-evaluate. Nothing else can fail with valid arguments.
    kernel_at_[clock] = -2;
    return;
  }
  kernel_at_[clock] = at;
#endif
}

bool TimerSet::Consume(int clock) {
#if defined(IAPP_KQUEUE)
  // Nothing to read. A relative knote would fire again after the same delay: it must be set
  // again, and a realtime one re-checked (it may have fired for the recheck, not the deadline).
  kernel_at_[clock] = -2;
  return false;
#else
  uint64_t n;
  ssize_t r = read(fds_[clock].fd, &n, sizeof n);
  if (r < 0 && errno == ECANCELED) {
    kernel_at_[clock] = -2;  // must be set again
    return true;
  }
  return false;
#endif
}

void TimerSet::Expire(int clock, std::vector<ExpiredTimer>* out) {
  auto& h = heap_[clock];
  const int64_t now = Now(clock);
  for (;;) {
    bool in_run;
    const Entry* first = Earliest(clock, &in_run);  // live: stale entries were dropped
    if (first == nullptr || first->deadline > now) break;
    const Entry top = *first;
    if (in_run)
      ++run_pos_;
    else
      PopTop(h);
    const int32_t slot = top.slot;
    Slot& s = At(slot);
    double expirations = 1;
    if (s.period > 0) {
      const int64_t missed = (now - top.deadline) / s.period;
      expirations = static_cast<double>(missed + 1);
      // The same arming and order, at its next deadline: takes the room the old entry left.
      Insert(clock, Entry{top.deadline + (missed + 1) * s.period, top.order, slot, top.arming});
    } else {
      s.armed = false;
      --live_[clock];
      if (s.owner == nullptr && views_.ctl != nullptr && views_.ctl[2 * slot + 1] == s.gen) views_.ctl[2 * slot] = 0;
    }
    out->push_back(ExpiredTimer{slot, s.gen, s.priority, expirations});
  }
  ArmKernel(clock);
}

void TimerSet::ClockJumped() {
  // Deadlines on the realtime clock are instants: they stay, and the kernel timer is set again
  // from the new "now". What became due is expired by the caller's Expire().
  kernel_at_[kRealtime] = -2;
  ArmKernel(kRealtime);
}

void TimerSet::TestJump(int64_t ns) {
  realtime_offset_ += ns;
  ClockJumped();
}

}  // namespace iapp
