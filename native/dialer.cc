#include "dialer.h"

#include <cerrno>

#include "loop.h"
#include "sys.h"

namespace iapp {

namespace {
// Connects per refill: each is a socket(), a connect() that runs the handshake on loopback, and a
// registration (~20-30 µs together). A refill in a turn stops when its visit's share of the budget
// is spent; this bounds one outside a turn. When more may open, the next refill is due at once
// (the next turn).
constexpr int kDialBatch = 256;
constexpr int64_t kTickNs = 10000000;  // while connecting or short of tokens: the pacing tick
}  // namespace

std::unique_ptr<Dialer> Dialer::Start(Loop* loop, DialSpec&& spec, uint64_t id, int* err) {
  std::unique_ptr<Dialer> d(new Dialer(loop, std::move(spec), id));
  d->spec_.socket.quiet = true;  // no JavaScript per connection
  d->spec_.socket.read_mode = kReadSink;
  int slot = loop->timers().AllocOwned(d.get());
  if (slot < 0) {
    *err = -slot;
    return nullptr;
  }
  d->slot_ = slot;
  d->start_ns_ = d->last_ns_ = MonotonicNs();
  d->Schedule(0);  // the first connections open in the next turn, not inside this JS call
  return d;
}

Dialer::~Dialer() {
  if (slot_ >= 0) loop_->timers().FreeOwned(slot_);
  // The loop is closing: its sockets are gone (abandoned) or going; none may call back.
  for (Socket* s : live_) s->dialer = nullptr;
}

void Dialer::Schedule(int64_t delay_ns) {
  const int64_t at = MonotonicNs() + delay_ns;
  if (scheduled_at_ >= 0 && scheduled_at_ <= at) return;  // sooner already
  scheduled_at_ = at;
  loop_->timers().ArmOwned(slot_, delay_ns, 0);
}

void Dialer::OnTimer(double) {
  scheduled_at_ = -1;
  if (stopped_) return;
  const int64_t now = MonotonicNs();
  TimeOutConnects(now);
  Refill();
  if (stopped_) return;
  // Come back for the next connect deadline and, while short of connections, the next tokens.
  if (!deadlines_.empty()) Schedule(deadlines_.front().second - now);
  if (live_.size() < spec_.count) Schedule(kTickNs);
}

void Dialer::TimeOutConnects(int64_t now) {
  while (!deadlines_.empty() && deadlines_.front().second <= now) {
    const uint64_t sid = deadlines_.front().first;
    deadlines_.pop_front();
    Handle* h = loop_->Find(sid);
    if (h == nullptr || h->kind != Handle::Kind::kSocket) continue;
    auto* s = static_cast<Socket*>(h);
    if (s->dialer == this && s->connecting()) s->ConnectTimedOut();
  }
}

void Dialer::Refill() {
  const int64_t now = MonotonicNs();
  if (spec_.rate > 0) {
    // Up to a second's worth at once: a thread held back (by other processes, say) catches up.
    const double burst = spec_.rate > 1 ? spec_.rate : 1;
    tokens_ += static_cast<double>(now - last_ns_) * spec_.rate / 1e9;
    if (tokens_ > burst) tokens_ = burst;
  }
  last_ns_ = now;
  int opened = 0;
  while (!stopped_ && live_.size() < spec_.count && (spec_.rate <= 0 || tokens_ >= 1)) {
    if (opened == kDialBatch || (opened > 0 && loop_->VisitSpent())) return Schedule(0);  // the rest next turn
    if (spec_.rate > 0) tokens_ -= 1;
    // Refused at once (EMFILE, EADDRNOTAVAIL...): try again at the next tick, not every turn.
    if (!OpenOne()) return Schedule(kTickNs);
    ++opened;
  }
}

bool Dialer::OpenOne() {
  const uint64_t k = spec_.first + seq_++ * spec_.stride;
  const size_t nt = spec_.targets.size();
  const SockAddr& target = spec_.targets[k % nt];
  const SockAddr* source = spec_.sources.empty() ? nullptr : &spec_.sources[(k / nt) % spec_.sources.size()];
  int err = 0, sys = 0;
  Socket* s = Socket::Connect(loop_, target, source, spec_.socket, &err, &sys);
  if (s == nullptr) {
    // Refused at once (EADDRNOTAVAIL, EMFILE, ECONNREFUSED on a Unix path...): a failed attempt;
    // the token is spent, so a target that refuses everything is not hammered faster than rate.
    ++st_.failed;
    ++st_.errors[err];
    loop_->CountError(err);
    return false;
  }
  s->dialer = this;
  s->dial_at = static_cast<int32_t>(live_.size());
  live_.push_back(s);
  ++st_.connecting;
  if (spec_.timeout_ns > 0) deadlines_.emplace_back(s->id, MonotonicNs() + spec_.timeout_ns);
  return true;
}

void Dialer::OnEstablished(Socket* s) {
  --st_.connecting;
  ++st_.open;
  ++st_.established;
  if (st_.open > st_.peak) st_.peak = st_.open;
  if (st_.ramp_ns < 0 && spec_.then != kDialEnd && static_cast<size_t>(st_.open) == spec_.count)
    st_.ramp_ns = MonotonicNs() - start_ns_;
  if (closing_) {
    s->End();
    return;
  }
  if (spec_.then == kDialPush) s->Push(spec_.chunk);
  else if (spec_.then == kDialEnd) s->End();
}

void Dialer::Untrack(Socket* s) {
  Socket* last = live_.back();
  live_[s->dial_at] = last;
  last->dial_at = s->dial_at;
  live_.pop_back();
  s->dial_at = -1;
  s->dialer = nullptr;
}

void Dialer::OnClosed(Socket* s, int err, bool established) {
  st_.bytes_in += s->bytes_in();
  st_.bytes_out += s->bytes_out();
  Untrack(s);
  if (!established) {
    --st_.connecting;
    // err 0: closed while connecting by the dialer or the loop closing, not a failure.
    if (err != 0) {
      ++st_.failed;
      ++st_.errors[err];
    }
  } else {
    --st_.open;
    if (err != 0) ++st_.errors[err];
    if (spec_.then == kDialEnd && err == 0) ++st_.cycled;
    else if (!stopped_) ++st_.dropped;
  }
  if (closing_ && live_.empty()) {
    loop_->Emit(kRecDialer, id)[0] = 1;
    return;
  }
  // Its place opens again: refill in the next turn (not from inside another socket's close).
  if (!stopped_) Schedule(0);
}

void Dialer::Stop() {
  stopped_ = true;
  if (scheduled_at_ >= 0) loop_->timers().DisarmOwned(slot_);
  scheduled_at_ = -1;
}

void Dialer::Close() {
  if (closing_) return;
  Stop();
  closing_ = true;
  if (live_.empty()) {
    loop_->Emit(kRecDialer, id)[0] = 1;
    return;
  }
  // Ending may close a socket at once (and untrack it): work on a copy.
  std::vector<Socket*> all(live_);
  for (Socket* s : all) {
    if (s->connecting()) s->Destroy(false);
    else s->End();
  }
}

DialStats Dialer::Stats() const {
  DialStats out = st_;
  for (const Socket* s : live_) {
    out.bytes_in += s->bytes_in();
    out.bytes_out += s->bytes_out();
  }
  return out;
}

}  // namespace iapp
