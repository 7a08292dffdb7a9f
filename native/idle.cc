#include "idle.h"

#include <algorithm>
#include <cerrno>

#include "syscalls.h"
#include "loop.h"
#include "socket.h"
#include "sys.h"

namespace iapp {

namespace {
constexpr int64_t kMinInterval = 10000000;    // 10 ms
constexpr int64_t kMaxInterval = 1000000000;  // 1 s
}  // namespace

IdleWatch::~IdleWatch() {
  if (slot_ >= 0) loop_->timers().FreeOwned(slot_);
  for (Entry& e : watched_) e.socket->idle_at = -1;
}

int IdleWatch::Set(Socket* s, int64_t timeout_ns) {
  if (timeout_ns <= 0) {
    Forget(s);
    return 0;
  }
  if (slot_ < 0) {
    int slot = loop_->timers().AllocOwned(this);
    if (slot < 0) return slot;
    slot_ = slot;
  }
  const uint64_t moved = s->bytes_in() + s->bytes_out();
  if (s->idle_at >= 0) {
    Entry& e = watched_[static_cast<size_t>(s->idle_at)];
    e.timeout_ns = timeout_ns;
    e.since = MonotonicNs();  // a new timeout counts from now
    e.seen = moved;
  } else {
    try {
      watched_.push_back(Entry{s, timeout_ns, moved, static_cast<int64_t>(MonotonicNs())});
    } catch (const std::bad_alloc&) {
      return -ENOMEM;
    }
    s->idle_at = static_cast<int32_t>(watched_.size() - 1);
  }
  Rearm();
  return 0;
}

void IdleWatch::Forget(Socket* s) {
  if (s->idle_at < 0) return;
  const size_t at = static_cast<size_t>(s->idle_at);
  watched_[at] = watched_.back();
  watched_[at].socket->idle_at = static_cast<int32_t>(at);
  watched_.pop_back();
  s->idle_at = -1;
  if (watched_.empty() && slot_ >= 0) {
    loop_->timers().DisarmOwned(slot_);
    interval_ns_ = 0;
  }
}

void IdleWatch::Rearm() {
  int64_t shortest = INT64_MAX;
  for (const Entry& e : watched_) shortest = std::min(shortest, e.timeout_ns);
  const int64_t interval = std::clamp(shortest / 4, kMinInterval, kMaxInterval);
  if (interval == interval_ns_) return;
  interval_ns_ = interval;
  loop_->timers().ArmOwned(slot_, interval, interval);
}

void IdleWatch::OnTimer(double) {
  const int64_t now = MonotonicNs();
  // Closing a socket makes it Forget() itself (a swap with the last entry): walk backwards.
  for (size_t i = watched_.size(); i-- > 0;) {
    if (i >= watched_.size()) continue;
    Entry& e = watched_[i];
    const uint64_t moved = e.socket->bytes_in() + e.socket->bytes_out();
    if (moved != e.seen) {
      e.seen = moved;
      e.since = now;
    } else if (now - e.since >= e.timeout_ns) {
      e.socket->IdleTimedOut();
    }
  }
}

}  // namespace iapp
