// Messages between threads. Every endpoint of a runtime (each loop thread, and the main thread)
// has an inbox: a multi-producer queue that senders on any thread append to directly, under a
// short lock, and a waker that the owning loop polls: an eventfd with epoll (watched by libuv
// directly), an EVFILT_USER event on the owner's kqueue with kqueue (no fd at all). A
// sender wakes the owner only when the inbox goes from empty to non-empty, so a burst costs one
// wake, and the owner takes everything pending in one swap.
//
// Inboxes are made with their group, before any thread starts, so a message posted to a thread
// that has not attached yet simply waits for it. An inbox outlives its loop while senders hold it:
// once closed, posts to it fail (ERR_THREAD_EXITED) instead of touching freed memory.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "live.h"

namespace iapp {

// Message types; mirrored in src/messaging.ts.
enum MsgType : uint8_t {
  kMsgCancelled = 0,  // a post removed by cancel() before the owner took it
  kMsgPost = 1,
  kMsgCall = 2,
  kMsgReply = 3,
  kMsgReplyError = 4,
  kMsgBroadcast = 5,
  kMsgSpace = 6,        // the sender's target drained its inbox after refusing this sender
  kMsgStarted = 7,      // membership: `from` attached
  kMsgExited = 8,       // membership: `from` closed; seq = messages it never handled
  kMsgSubscribed = 9,   // membership: `from` subscribed to topic `name`
  kMsgUnsubscribed = 10,
};

struct MsgHeader {
  uint32_t len;    // payload bytes that follow (padded to 8 in the log)
  uint8_t type;
  uint8_t flags;   // payload encoding, opaque to native code
  uint16_t reserved;
  int32_t from;    // sender's endpoint index
  uint32_t name;   // interned handler name or topic
  double seq;      // sender's sequence number (calls: the call id)
};
static_assert(sizeof(MsgHeader) == 24, "MsgHeader is packed into the log");

class Inbox {
 public:
  // Exported to JS as `postResults` (napi/messaging.cc); kNoEndpoint is the loop's (a target
  // outside the group).
  enum PushResult { kOk = 0, kFull = -1, kClosed = -2, kNoEndpoint = -3, kNoMemory = -4 };
  Inbox(size_t max_messages, size_t max_bytes);
  ~Inbox();
  int Open();  // makes the waker (epoll: an eventfd; kqueue: nothing until BindWaker): 0 or -errno
  int wake_fd() const { return wake_rd_; }
#if defined(IAPP_KQUEUE)
  // The owner's EVFILT_USER knote, which Wake() triggers from any thread: set by the loop that
  // attaches (a wake that came before is passed on at once), cleared by Close(), after which no
  // sender touches that kqueue.
  void BindWaker(int kq, uintptr_t ident, void* udata);
#endif

  // Appends a message. `bounded` messages are refused past the bound (and the sender is told when
  // space frees up); replies and system messages are not.
  int Push(const MsgHeader& h, const uint8_t* payload, bool bounded);
  // Appends `count` messages already laid out as in the log (headers and padded payloads), from
  // one sender's staging buffer. Not bounded: the sender checked the bound before staging them.
  int PushBatch(const uint8_t* data, size_t len, size_t count);
  // Where this inbox publishes its pending messages and bytes for senders to read (relaxed).
  void SetGauge(std::shared_ptr<int32_t> block, int32_t* gauge) {
    gauge_block_ = std::move(block);
    gauge_ = gauge;
  }
  // Marks the sender's post `seq` cancelled if the owner has not taken it yet.
  bool Cancel(int32_t from, double seq);
  // Takes everything pending: swaps the log into *out (whose old contents are discarded) and
  // returns the senders that were refused since the last take.
  size_t Take(std::vector<uint8_t>* out, std::vector<int32_t>* waiters);
  // Refuses every later push; returns how many messages were pending (never handled).
  size_t Close();
  // Called by the owner before Take(): resets the waker if a sender set it. `always`: read it
  // whatever the flag says (libuv reported it readable: a sender may have written it after a
  // Take() already emptied the inbox, and a level-triggered fd left set would spin the loop).
  void ConsumeWake(bool always = false);
  // The owner polls the inbox (busy polling): senders then skip the waker's syscall. Turning it
  // off returns true if messages arrived meanwhile, which the owner must then take itself.
  bool SetPolling(bool on);
  // Signals the waker (the owner will take what is pending on its next turn).
  void Wake();
  // A racy peek for busy polling: true if messages are probably pending.
  bool Pending() const { return gauge_ != nullptr && __atomic_load_n(&gauge_[0], __ATOMIC_RELAXED) > 0; }

 private:
  std::mutex mu_;
  std::vector<uint8_t> log_;
  size_t count_ = 0;
  bool closed_ = false;
  bool wake_pending_ = false;  // a sender has signalled (or, while polling_, would have)
  bool polling_ = false;
  bool wake_written_ = false;  // the waker fd holds a signal to consume (atomic: read unlocked)
  std::vector<int32_t> waiters_;
  const size_t max_messages_, max_bytes_;
  std::shared_ptr<int32_t> gauge_block_;
  int32_t* gauge_ = nullptr;
  // A closed inbox shows -1 messages: senders refuse at once (ERR_THREAD_EXITED), without waiting
  // for the exit notice.
  void Publish() {
    if (gauge_ == nullptr) return;
    __atomic_store_n(&gauge_[0], closed_ ? -1 : static_cast<int32_t>(count_), __ATOMIC_RELAXED);
    __atomic_store_n(&gauge_[1], static_cast<int32_t>(log_.size() > 0x7fffffff ? 0x7fffffff : log_.size()), __ATOMIC_RELAXED);
  }
  int wake_rd_ = -1, wake_wr_ = -1;  // the same fd for an eventfd
#if defined(IAPP_KQUEUE)
  // Held while triggering: Close() waits for a sender's trigger to finish before the owner may
  // close its kqueue (whose number another thread could then be given).
  std::mutex wake_mu_;
  int wake_kq_ = -1;
  uintptr_t wake_ident_ = 0;
  void* wake_udata_ = nullptr;  // the knote's udata: a trigger sets it again (BSD and libkqueue)
  bool wake_unbound_ = false;   // a wake came before BindWaker
#endif
};

// The endpoints of one runtime: loops 0..n-2 and the main thread (n-1), and who subscribed to what.
class Group {
  Live<kLiveGroup> live_;

 public:
  Group(int size, size_t max_messages, size_t max_bytes);
  int Open();  // 0 or -errno
  int size() const { return static_cast<int>(inboxes_.size()); }
  std::shared_ptr<Inbox> inbox(int i) const { return inboxes_[static_cast<size_t>(i)]; }

  // Sends a system message to every endpoint (except `from`), or to the membership topic's
  // subscribers only.
  void Notify(const MsgHeader& h, bool everyone);
  // Returns true if this made `who` a new subscriber of `topic`.
  bool Subscribe(uint32_t topic, int32_t who);
  bool Unsubscribe(uint32_t topic, int32_t who);
  std::vector<int32_t> Subscribers(uint32_t topic);
  void Attached(int32_t who, bool on);
  std::vector<int32_t> Members();
  // Two int32 per endpoint: pending messages and bytes (what Inbox::Publish writes).
  // Shared with JS as an external ArrayBuffer, which must not keep the inboxes (and their fds)
  // alive until a garbage collection: the block is owned apart from the group.
  std::shared_ptr<int32_t> gauges() const { return gauges_; }
  size_t gauges_bytes() const { return inboxes_.size() * 2 * sizeof(int32_t); }

 private:
  std::shared_ptr<int32_t> gauges_;
  std::vector<std::shared_ptr<Inbox>> inboxes_;
  std::mutex mu_;
  std::unordered_map<uint32_t, std::vector<int32_t>> topics_;
  std::vector<bool> attached_;
};

// Process-wide registry, so a loop thread can find its runtime's group by id.
uint32_t RegisterGroup(std::shared_ptr<Group> g);
std::shared_ptr<Group> FindGroup(uint32_t id);
void ReleaseGroup(uint32_t id);

// Names and topics travel as small integers, the same in every thread of the process.
uint32_t Intern(const std::string& name);
std::string InternedName(uint32_t id);

// The topic of membership notifications (threads starting and exiting, subscriptions).
constexpr const char* kMembershipTopic = "iapp:membership";

}  // namespace iapp
