#include "inbox.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <unistd.h>

#include "faults.h"
#include "sys.h"
#if defined(IAPP_KQUEUE)
#include <sys/event.h>

#include "poller.h"
#endif

namespace iapp {

namespace {
constexpr size_t Pad8(size_t n) { return (n + 7) & ~static_cast<size_t>(7); }
}  // namespace

Inbox::Inbox(size_t max_messages, size_t max_bytes)
    : max_messages_(max_messages), max_bytes_(max_bytes) {}

Inbox::~Inbox() { CloseWaker(wake_rd_, wake_wr_); }

#if defined(IAPP_KQUEUE)
int Inbox::Open() { return 0; }

void Inbox::BindWaker(int kq, uintptr_t ident, void* udata) {
  std::lock_guard<std::mutex> lock(wake_mu_);
  wake_kq_ = kq;
  wake_ident_ = ident;
  wake_udata_ = udata;
  if (wake_unbound_) KeventChange(kq, ident, EVFILT_USER, 0, NOTE_TRIGGER, 0, udata);
  wake_unbound_ = false;
}
#else
int Inbox::Open() { return OpenWaker(&wake_rd_, &wake_wr_); }
#endif

int Inbox::Push(const MsgHeader& h, const uint8_t* payload, bool bounded) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return kClosed;
    const size_t need = sizeof(MsgHeader) + Pad8(h.len);
    // A message larger than the byte bound still goes into an empty inbox: refusing it forever
    // would be worse than a queue briefly past its bound.
    if (bounded && count_ > 0 &&
        (count_ >= max_messages_ || log_.size() + need > max_bytes_)) {
      if (std::find(waiters_.begin(), waiters_.end(), h.from) == waiters_.end())
        waiters_.push_back(h.from);
      return kFull;
    }
    const size_t at = log_.size();
    try {
      log_.resize(at + need);
    } catch (const std::bad_alloc&) {
      return kNoMemory;
    }
    memcpy(log_.data() + at, &h, sizeof h);
    if (h.len > 0) memcpy(log_.data() + at + sizeof h, payload, h.len);
    ++count_;
    Publish();
    wake = !wake_pending_ && !polling_;
    wake_pending_ = true;
    if (wake) __atomic_store_n(&wake_written_, true, __ATOMIC_RELAXED);
  }
  if (wake) Wake();
  return kOk;
}

int Inbox::PushBatch(const uint8_t* data, size_t len, size_t count) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return kClosed;
    try {
      log_.insert(log_.end(), data, data + len);
    } catch (const std::bad_alloc&) {
      return kNoMemory;
    }
    count_ += count;
    Publish();
    wake = !wake_pending_ && !polling_;
    wake_pending_ = true;
    if (wake) __atomic_store_n(&wake_written_, true, __ATOMIC_RELAXED);
  }
  if (wake) Wake();
  return kOk;
}

void Inbox::Wake() {
  __atomic_store_n(&wake_written_, true, __ATOMIC_RELEASE);
#if defined(IAPP_KQUEUE)
  std::lock_guard<std::mutex> lock(wake_mu_);
  if (wake_kq_ < 0) {
    wake_unbound_ = true;  // not attached yet (or closed): BindWaker passes it on
    return;
  }
  // Triggering a knote that exists allocates nothing; as with a full eventfd, a failure could not
  // lose the wake, so the result is ignored (injection replaces it, after the real call).
  int r = KeventChange(wake_kq_, wake_ident_, EVFILT_USER, 0, NOTE_TRIGGER, 0, wake_udata_);
  if (int e = Fault(kFaultWaker)) r = -e;
  (void)r;
#else
  // The waker's fd lives as long as this inbox, which the caller holds.
  SignalWaker(wake_wr_);
#endif
}

bool Inbox::Cancel(int32_t from, double seq) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t at = 0; at < log_.size();) {
    auto* h = reinterpret_cast<MsgHeader*>(log_.data() + at);
    if (h->from == from && h->seq == seq && h->type == kMsgPost) {
      h->type = kMsgCancelled;
      return true;
    }
    at += sizeof(MsgHeader) + Pad8(h->len);
  }
  return false;
}

bool Inbox::SetPolling(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  polling_ = on;
  return !on && count_ > 0;
}

void Inbox::ConsumeWake(bool always) {
  // Reading before Take() never loses a wake: a message whose signal this read consumed was
  // pushed (and counted) before the signal was written, so the Take() that follows gets it. A
  // signal written after a Take() that already took its message leaves the fd readable with
  // nothing pending: the next read (always = true) clears it.
  if (!__atomic_exchange_n(&wake_written_, false, __ATOMIC_ACQ_REL) && !always) return;
#if !defined(IAPP_KQUEUE)
  DrainWaker(wake_rd_);  // EVFILT_USER is EV_CLEAR: fetching its event reset it
#endif
}

size_t Inbox::Take(std::vector<uint8_t>* out, std::vector<int32_t>* waiters) {
  out->clear();
  waiters->clear();
  std::lock_guard<std::mutex> lock(mu_);
  // Swapping keeps both buffers' capacity: a steady stream allocates nothing.
  out->swap(log_);
  waiters->swap(waiters_);
  size_t n = count_;
  count_ = 0;
  Publish();
  wake_pending_ = false;
  return n;
}

size_t Inbox::Close() {
  size_t n;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    n = count_;
    count_ = 0;
    std::vector<uint8_t>().swap(log_);
    Publish();
    waiters_.clear();
  }
#if defined(IAPP_KQUEUE)
  std::lock_guard<std::mutex> lock(wake_mu_);
  wake_kq_ = -1;
#endif
  return n;
}

Group::Group(int size, size_t max_messages, size_t max_bytes)
    : gauges_(new int32_t[static_cast<size_t>(size) * 2](), std::default_delete<int32_t[]>()),
      attached_(size, false) {
  for (int i = 0; i < size; ++i) {
    inboxes_.push_back(std::make_shared<Inbox>(max_messages, max_bytes));
    inboxes_.back()->SetGauge(gauges_, gauges_.get() + static_cast<size_t>(i) * 2);
  }
}

int Group::Open() {
  for (auto& in : inboxes_) {
    int r = in->Open();
    if (r < 0) return r;
  }
  return 0;
}

void Group::Notify(const MsgHeader& h, bool everyone) {
  if (everyone) {
    for (int i = 0; i < size(); ++i)
      if (i != h.from) inboxes_[i]->Push(h, nullptr, false);
    return;
  }
  for (int32_t who : Subscribers(Intern(kMembershipTopic)))
    if (who != h.from) inboxes_[who]->Push(h, nullptr, false);
}

bool Group::Subscribe(uint32_t topic, int32_t who) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& v = topics_[topic];
  if (std::find(v.begin(), v.end(), who) != v.end()) return false;
  v.push_back(who);
  return true;
}

bool Group::Unsubscribe(uint32_t topic, int32_t who) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = topics_.find(topic);
  if (it == topics_.end()) return false;
  auto pos = std::find(it->second.begin(), it->second.end(), who);
  if (pos == it->second.end()) return false;
  it->second.erase(pos);
  return true;
}

std::vector<int32_t> Group::Subscribers(uint32_t topic) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = topics_.find(topic);
  return it == topics_.end() ? std::vector<int32_t>() : it->second;
}

void Group::Attached(int32_t who, bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  attached_[static_cast<size_t>(who)] = on;
  if (!on)
    for (auto& [topic, v] : topics_) v.erase(std::remove(v.begin(), v.end(), who), v.end());
}

std::vector<int32_t> Group::Members() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int32_t> out;
  for (size_t i = 0; i < attached_.size(); ++i)
    if (attached_[i]) out.push_back(static_cast<int32_t>(i));
  return out;
}

namespace {
std::mutex g_mu;
uint32_t g_next_group = 1;
std::unordered_map<uint32_t, std::shared_ptr<Group>>* g_groups;
std::unordered_map<std::string, uint32_t>* g_names;
std::vector<std::string>* g_name_list;

// Leaked on purpose: worker threads may still look names up while the process exits, after
// static destructors would have run.
void InitGlobals() {
  if (g_groups == nullptr) {
    g_groups = new std::unordered_map<uint32_t, std::shared_ptr<Group>>();
    g_names = new std::unordered_map<std::string, uint32_t>();
    g_name_list = new std::vector<std::string>();
  }
}
}  // namespace

uint32_t RegisterGroup(std::shared_ptr<Group> g) {
  std::lock_guard<std::mutex> lock(g_mu);
  InitGlobals();
  uint32_t id = g_next_group++;
  (*g_groups)[id] = std::move(g);
  return id;
}

std::shared_ptr<Group> FindGroup(uint32_t id) {
  std::lock_guard<std::mutex> lock(g_mu);
  InitGlobals();
  auto it = g_groups->find(id);
  return it == g_groups->end() ? nullptr : it->second;
}

void ReleaseGroup(uint32_t id) {
  std::lock_guard<std::mutex> lock(g_mu);
  InitGlobals();
  g_groups->erase(id);
}

uint32_t Intern(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_mu);
  InitGlobals();
  auto it = g_names->find(name);
  if (it != g_names->end()) return it->second;
  uint32_t id = static_cast<uint32_t>(g_name_list->size()) + 1;
  g_name_list->push_back(name);
  g_names->emplace(name, id);
  return id;
}

std::string InternedName(uint32_t id) {
  std::lock_guard<std::mutex> lock(g_mu);
  InitGlobals();
  return id >= 1 && id <= g_name_list->size() ? (*g_name_list)[id - 1] : std::string();
}

}  // namespace iapp
