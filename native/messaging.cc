// Messaging on the loop's side: joining the runtime's group, posting and broadcasting into other
// endpoints' inboxes, draining this loop's own inbox into records, and busy-polling it.
#include <cerrno>
#include <cstring>

#include "loop.h"
#include "sys.h"

namespace iapp {

int Loop::Attach(std::shared_ptr<Group> group, uint32_t group_id, int32_t self) {
  if (closed_) return -EBADF;
  if (inbox_ != nullptr || self < 0 || self >= group->size()) return -EINVAL;
  inbox_ = group->inbox(self);
  group_ = std::move(group);
  group_id_ = group_id;
  self_ = self;
#if defined(IAPP_KQUEUE)
  // Senders trigger an EVFILT_USER knote on this loop's kqueue (EV_CLEAR: fetching the event
  // resets it), so a message wakes the loop through the poller, like any other event.
  const uintptr_t ident = reinterpret_cast<uintptr_t>(&inbox_event_);
  int r = poller_.Register(&inbox_event_, EVFILT_USER, ident, EV_CLEAR, 0, 0);
  if (r == 0) inbox_->BindWaker(poller_.kqueue_fd(), ident, &inbox_event_);
#else
  int r = UvWatchInbox(uv_, inbox_->wake_fd(), [](void* arg) { static_cast<Loop*>(arg)->OnInbox(); });
#endif
  if (r != 0) {
    inbox_.reset();
    group_.reset();
    self_ = -1;
    return r;
  }
  group_->Attached(self_, true);
  // Messages posted before we attached are waiting: the waker is already set, and the poller
  // reports it on the next wait.
  return 0;
}

void Loop::Announce() {
  if (group_ == nullptr) return;
  MsgHeader h{0, kMsgStarted, 0, 0, self_, 0, 0};
  group_->Notify(h, false);
}

int Loop::Post(int32_t target, MsgHeader h, const uint8_t* payload, bool bounded) {
  if (group_ == nullptr || target < 0 || target >= group_->size()) return Inbox::kNoEndpoint;
  h.from = self_;
  int r = group_->inbox(target)->Push(h, payload, bounded);
  if (r == Inbox::kOk) ++stats_.messages_out;
  return r;
}

int Loop::PostBatch(int32_t target, const uint8_t* data, size_t len, size_t count) {
  if (group_ == nullptr || target < 0 || target >= group_->size()) return Inbox::kNoEndpoint;
  int r = group_->inbox(target)->PushBatch(data, len, count);
  if (r == Inbox::kOk) stats_.messages_out += count;
  return r;
}


void Loop::Subscribe(uint32_t topic, bool on) {
  if (group_ == nullptr) return;
  if (on ? group_->Subscribe(topic, self_) : group_->Unsubscribe(topic, self_)) {
    MsgHeader h{0, static_cast<uint8_t>(on ? kMsgSubscribed : kMsgUnsubscribed), 0, 0, self_, topic, 0};
    group_->Notify(h, false);
  }
}

size_t Loop::Broadcast(MsgHeader h, const uint8_t* payload, bool bounded, std::vector<int32_t>* full) {
  if (group_ == nullptr) return 0;
  h.type = kMsgBroadcast;
  size_t reached = 0;
  for (int32_t who : group_->Subscribers(h.name)) {
    int r = Post(who, h, payload, bounded);
    if (r == Inbox::kOk) ++reached;
    else if (r == Inbox::kFull) full->push_back(who);
  }
  return reached;
}


namespace {
// Total time one prepare hook may spend polling, so libuv's timers and our own sockets still get
// their turn under a steady stream of messages.
constexpr uint64_t kBusyPollCapNs = 1000000;
}  // namespace

void Loop::BusyPoll() {
  inbox_active_ = false;
  inbox_->SetPolling(true);
  const uint64_t start = MonotonicNs();
  uint64_t deadline = start + busy_poll_ns_;
  for (;;) {
    uint64_t now = MonotonicNs();
    if (now >= deadline || now - start >= kBusyPollCapNs) {
      if (!inbox_->SetPolling(false)) return;
      // A message came as we stopped. Past the cap, let libuv run first: signal ourselves.
      if (now - start >= kBusyPollCapNs) return inbox_->Wake();
      inbox_->SetPolling(true);
    }
    const bool message = inbox_->Pending();
    // Timers keep their time while we poll: what handlers armed is applied, what is due fires.
    timers_.Apply();
    const bool due = timers_.Due(kMonotonic) || timers_.Due(kRealtime);
    if (!message && !due) {
      for (int i = 0; i < 32; ++i) CpuRelax();
      continue;
    }
    if (message) DrainInbox();
    inbox_active_ = false;
    ExpireDue();
    Deliver();
    if (closed_ || stopping_) {
      if (inbox_ != nullptr) inbox_->SetPolling(false);
      return;
    }
    FreeRetired();
    poller_.Flush();
    if (message) deadline = MonotonicNs() + busy_poll_ns_;
  }
}

void Loop::DrainInbox() {
  if (inbox_ == nullptr || stopping_) return;
  inbox_->ConsumeWake();
  size_t n = inbox_->Take(&take_buf_, &waiters_buf_);
  // Senders refused while the inbox was full may try again: it is empty now.
  for (int32_t w : waiters_buf_) {
    MsgHeader h{0, kMsgSpace, 0, 0, self_, 0, 0};
    group_->inbox(w)->Push(h, nullptr, false);
  }
  if (n == 0) return;
  if (busy_poll_ns_ > 0) {
    inbox_active_ = true;
    WantPrepare();
  }
  // Payloads are copied once more, into one JS Buffer per take; handlers get views of it.
  size_t total = 0;
  for (size_t at = 0; at < take_buf_.size();) {
    auto* h = reinterpret_cast<const MsgHeader*>(take_buf_.data() + at);
    if (h->type != kMsgCancelled) total += h->len;
    at += sizeof(MsgHeader) + ((static_cast<size_t>(h->len) + 7) & ~static_cast<size_t>(7));
  }
  uint8_t* arena = nullptr;
  if (total > 0) {
    arena = NewMessageArena(total);
    if (arena == nullptr) {
      // No JS buffer for them (the env is stopping, or memory ran out): these messages cannot
      // be handled. Deliver or die: close the inbox, count them as dropped, so senders learn it
      // and calls to this thread reject.
      CloseInbox(n);
      return Stop();
    }
  }
  size_t off = 0;
  for (size_t at = 0; at < take_buf_.size();) {
    auto* h = reinterpret_cast<const MsgHeader*>(take_buf_.data() + at);
    if (h->type != kMsgCancelled) {
      if (h->len > 0) memcpy(arena + off, take_buf_.data() + at + sizeof(MsgHeader), h->len);
      double* v = Emit(kRecMessage, static_cast<uint64_t>(h->from));
      v[0] = h->type;
      v[1] = h->seq;
      v[2] = h->name;
      v[3] = static_cast<double>(off);
      v[4] = h->len;
      v[5] = h->flags;
      off += h->len;
      ++stats_.messages_in;
    }
    at += sizeof(MsgHeader) + ((static_cast<size_t>(h->len) + 7) & ~static_cast<size_t>(7));
  }
  // A long log is not kept around after a burst.
  if (take_buf_.capacity() > (4u << 20)) std::vector<uint8_t>().swap(take_buf_);
}

void Loop::CloseInbox(size_t undelivered) {
  if (inbox_ == nullptr) return;
  size_t dropped = inbox_->Close() + undelivered;
#if defined(IAPP_KQUEUE)
  poller_.Unregister(EVFILT_USER, reinterpret_cast<uintptr_t>(&inbox_event_));  // no sender triggers it now
#endif
  group_->Attached(self_, false);
  // Deliver or die: everyone learns that this endpoint is gone (pending calls to it reject), and
  // how many of its messages were never handled.
  MsgHeader h{0, kMsgExited, 0, 0, self_, 0, static_cast<double>(dropped)};
  group_->Notify(h, true);
  inbox_.reset();
  group_.reset();
}

}  // namespace iapp
