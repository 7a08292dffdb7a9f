// One native loop per loop thread: a poller, the handles registered on it (by integer id), and
// the batch of events JS must see, delivered in one call per drain.
#pragma once
#include <node_api.h>  // the C API only: delivery is raw, status-checked N-API (deliver.cc)

#include <cstdint>
#include <map>
#include <poll.h>
#include <memory>
#include <unordered_map>
#include <vector>

#include "conns.h"
#include "inbox.h"
#include "sys.h"
#include "live.h"
#include "poller.h"
#include "timers.h"
#include "uv_glue.h"

namespace iapp {

class Loop;
class FileIo;
class Dialer;
class IdleWatch;
struct DialSpec;
struct CleanupCtx;

// One unit of work a turn found ready: a watcher's event, an expired timer, or the inbox.
struct ReadyItem {
  enum Kind : uint8_t { kWatcher, kTimer, kInbox };
  int8_t priority;
  Kind kind;
  uint32_t events;
  Watcher* watcher;
  ExpiredTimer timer;
  uint64_t seq;  // the loop's visit count when the event was seen (see Watcher::visited)
};

// Event records handed to JS: kRecordStride doubles each, [kind, id, v0..v5]. The addon exports
// the kinds (`recordKinds`, napi/process.cc); src/native.ts's `Rec` is pinned to them by
// test/native-constants.test.ts.
#define IAPP_RECORD_KINDS(X)                                                                   \
  X(Accept, 1)        /* id: listener, v0: new socket id */                                    \
  X(Connect, 2)       /* id: socket */                                                         \
  X(Data, 3)          /* id: socket, v0: offset in the current arena, v1: length */           \
  X(End, 4)           /* id: socket (peer half-closed), v0: 1 if JS must end it */             \
  X(Drain, 5)         /* id: socket (write queue emptied after write() returned false) */     \
  X(Close, 6)         /* id: socket, v0: errno, v1: syscall, v2: unsent, v3: bytes in, v4: out */ \
  X(ListenPaused, 7)  /* id: listener, v0: errno, v1: connections shed */                      \
  X(Arena, 8)         /* the next arena of the batch becomes current */                        \
  X(QuietDone, 9)     /* the last quiet socket closed after WaitQuiet() */                     \
  /* id: sender's endpoint, v0: MsgType, v1: seq, v2: name, v3: offset in the current message  \
     arena, v4: length, v5: payload flags */                                                   \
  X(Message, 10)                                                                               \
  X(MsgArena, 11)     /* the next arena of the batch holds the following messages' payloads */ \
  X(Detached, 12)     /* id: socket; every record of it read before detach() came before this */ \
  X(Timer, 13)        /* id: timer slot, v0: generation, v1: expirations */                    \
  X(Child, 14)        /* id: child watch, v0: exit code (-1 if killed), v1: signal, v2: errno */ \
  /* id: request, v0: result (bytes, file id, or -errno), v1: syscall; after a stat v2: size,  \
     v3: mtime (ms), v4: mode, v5: bytes allocated */                                          \
  X(File, 15)                                                                                  \
  X(SendFile, 16)     /* id: socket, v0: request, v1: bytes sent, v2: errno, v3: syscall */    \
  /* id: pipe, v0: bytes moved, v1: errno, v2: syscall, v3: bytes read and lost, v4: src, v5: dst */ \
  X(Pipe, 17)                                                                                  \
  X(PipeHeld, 18)     /* id: pipe; every data record of its source emitted before came first */ \
  X(Dialer, 19)       /* id: dialer, v0: 1 when close() has ended its last connection */       \
  X(Blob, 20)         /* the next blob of the batch holds the following datagrams */           \
  /* id: UDP socket, v0: offset in the current blob, v1: length, v2: family (4 or 6), v3: port, \
     v4: IPv4 address (u32) or the offset of the 16 IPv6 address bytes in the blob */          \
  X(Datagram, 21)                                                                              \
  X(UdpDrain, 22)     /* id: UDP socket; its send queue emptied after a send reported backpressure */ \
  X(LentArena, 23)    /* the loop's lent arena, announced once: JS keeps it for LentData records */ \
  X(LentData, 24)     /* id: socket, v0: offset in the lent arena, v1: length; valid during this call */

enum RecordKind : int {
#define IAPP_RECORD_ENUM(name, value) kRec##name = value,
  IAPP_RECORD_KINDS(IAPP_RECORD_ENUM)
#undef IAPP_RECORD_ENUM
};
constexpr int kRecordStride = 8;
constexpr int kRecordCapacity = 4096;  // records per call into JS

// A registered fd with an id JS can name. Ids are never reused within a loop, so a stale id held
// by JS can only miss, never hit another socket.
class Handle : public Watcher {
 public:
  enum class Kind { kSocket, kListener, kUdp, kChild };
  Handle(Loop* loop, Kind kind) : kind(kind), loop_(loop) { g_live[LiveOf(kind)].fetch_add(1, std::memory_order_relaxed); }
  ~Handle() override { g_live[LiveOf(kind)].fetch_sub(1, std::memory_order_relaxed); }
  const Kind kind;
  uint64_t id = 0;
  // Closes the fd now without telling JS (the loop is going away).
  virtual void Abandon() = 0;

 protected:
  Loop* loop_;

 private:
  static LiveKind LiveOf(Kind k) {
    return k == Kind::kSocket ? kLiveSocket : k == Kind::kListener ? kLiveListener : k == Kind::kUdp ? kLiveUdp : kLiveChild;
  }
};

struct LoopStats {
  uint64_t bytes_in = 0, bytes_out = 0;
  uint64_t accepted = 0, connected = 0, closed = 0;
  uint64_t accept_paused = 0, accept_shed = 0;
  // Accepted and reset at once because a connection bound was reached (conns.h): the total, or
  // the bound per source address.
  uint64_t refused_total = 0, refused_addr = 0;
  uint64_t drains = 0, wakeups = 0;
  uint64_t datagrams_in = 0, datagrams_out = 0;
  uint64_t messages_in = 0, messages_out = 0;
  uint64_t detached = 0, adopted = 0;
  uint64_t turns_cut = 0;  // turns that spent their budget and left ready work for the next one
  uint64_t read_aheads = 0;  // sendFile ranges read ahead on the pool (SF_NODISKIO said: not cached)
  uint64_t connections = 0, peak_connections = 0;  // established now, and most at once
  std::map<int, uint64_t> errors;  // errno -> count
};

class Loop {
 public:
  explicit Loop(napi_env env);
  ~Loop();
  // Where records go: onBatch(count, arenas?) and the Float64Array `records` (whose data is
  // `data`). False if a reference or the async context cannot be made.
  bool BindJs(napi_value callback, napi_value records, double* data);
  int Open();    // 0 or a negative errno / libuv error
  // Abandons every handle, closes the poller; idempotent. `held`: messages JS took and will not
  // run, counted as dropped in the exit notice.
  void Close(size_t held = 0);
  bool closed() const { return closed_; }

  Poller& poller() { return poller_; }
  LoopStats& stats() { return stats_; }
  void CountError(int err) { ++stats_.errors[err]; }
  // An established connection opened or closed on this loop: counted here and for the process.
  void ConnOpened() {
    if (++stats_.connections > stats_.peak_connections) stats_.peak_connections = stats_.connections;
    ConnCounts* p = ProcessConns();
    RaisePeak(p->peak, p->open.fetch_add(1, std::memory_order_relaxed) + 1);
  }
  void ConnClosed() {
    --stats_.connections;
    ProcessConns()->open.fetch_sub(1, std::memory_order_relaxed);
  }
  size_t handle_count() const { return handles_.size(); }

  void Register(Handle* h);          // assigns h->id; the loop owns h from here
  Handle* Find(uint64_t id) const;
  // Unregisters h and removes it from the poller. h is freed at the next safe point (never
  // while a fetched batch may still hold its pointer). The caller has closed or will close h->fd.
  void Retire(Handle* h);

  // Appends a record and returns its six value slots, zeroed.
  double* Emit(int kind, uint64_t id);
  // Space for a data read of up to `want` bytes in the current arena (a JS Buffer). Null when
  // the env can no longer make Buffers (it is being torn down): the caller must not read then.
  uint8_t* ArenaReserve(size_t want, size_t* got);
  // Records that `n` bytes were read into the space ArenaReserve returned, for socket `id`.
  void ArenaCommit(uint64_t id, uint8_t* at, size_t n);
  // The same for the lent arena (kReadLent): one Buffer per loop, read into again once every
  // record pointing into it has gone to JS. Null when it is full of undelivered data (the socket
  // is read again after the drain) or when the env is stopping.
  uint8_t* LentReserve(size_t want, size_t* got);
  void LentCommit(uint64_t id, uint8_t* at, size_t n);

  // The fd kept in reserve for EMFILE on accept (see Listener::OnExhausted); -1 if none.
  int TakeReserveFd() {
    int fd = reserve_fd_;
    reserve_fd_ = -1;
    return fd;
  }
  void RestoreReserveFd();

  // Quiet sockets (SocketOptions::quiet): never seen by JS, ended or destroyed in bulk at shutdown.
  void QuietOpened() { ++quiet_open_; }
  void QuietClosed();
  size_t quiet_open() const { return quiet_open_; }
  size_t EndQuiet();      // ends every quiet socket after its queue flushes; returns how many stay open
  size_t DestroyQuiet(size_t* unsent);  // resets every quiet socket; returns how many there were
  // Emits kRecQuietDone when the count reaches zero. Returns the count now (no record if 0).
  size_t WaitQuiet();

  // A JS Buffer of n bytes for records that follow (kRecBlob): handed to JS with the batch. Null
  // when the env can no longer make Buffers (it is being torn down).
  uint8_t* NewBlob(size_t n);

  // A copy of p[0..n) shared by everyone who asks for the same bytes: pushing sockets of a load
  // generator all send one buffer, not one copy each.
  std::shared_ptr<const std::vector<uint8_t>> SharedBuffer(const uint8_t* p, size_t n);

  // Messaging (see inbox.h). Attach makes this loop endpoint `self` of the group: 0 or -errno.
  int Attach(std::shared_ptr<Group> group, uint32_t group_id, int32_t self);
  // Tells the membership topic's subscribers that this endpoint takes messages now.
  void Announce();
  bool attached() const { return inbox_ != nullptr; }
  int32_t self() const { return self_; }
  uint32_t group_id() const { return group_id_; }
  Group* group() const { return group_.get(); }
  // Inbox::PushResult (kNoEndpoint for a target that is not in the group).
  int Post(int32_t target, MsgHeader h, const uint8_t* payload, bool bounded);
  int PostBatch(int32_t target, const uint8_t* data, size_t len, size_t count);
  // Posts h (as a broadcast of topic h.name) to every subscriber of the topic; returns how many
  // it reached and appends to *full those whose inbox was full. Unbounded broadcasts (forwarded
  // signals) go into full inboxes too.
  size_t Broadcast(MsgHeader h, const uint8_t* payload, bool bounded, std::vector<int32_t>* full);
  // Joins or leaves a topic; the membership topic's subscribers are told when that changed.
  void Subscribe(uint32_t topic, bool on);
  std::shared_ptr<Group> group_ref() const { return group_; }
  void DrainInbox();
  void OnInbox();  // libuv: the inbox's waker fired
  // After inbox activity, poll the inbox for up to `ns` before libuv sleeps (0: never). Trades
  // CPU for the latency of a thread wake-up.
  void SetBusyPoll(uint64_t ns) { busy_poll_ns_ = ns; }
  TimerSet& timers() { return timers_; }
  // The loop's files and disk jobs, made on first use; null (with *err) if that failed.
  FileIo* files(int* err);
  FileIo* files_if_open() const { return files_.get(); }
  // Arming is a store by JS: the prepare hook applies it, so it runs before every block while
  // any timer is allocated.
  void TimersChanged();
  void SetInboxPriority(int p) {
    inbox_priority_ = static_cast<int8_t>(p);
    NotePriority(p);
  }
  // Sorting a batch by priority is skipped until some watcher has a priority other than 0.
  void NotePriority(int p) {
    if (p != 0) mixed_priorities_ = true;
  }
  // Native work one turn may do before it returns to libuv (see Turn()), in ns; 0: no limit.
  void SetTurnBudget(uint64_t ns) { turn_budget_ns_ = ns; }
  uint64_t turn_budget() const { return turn_budget_ns_; }
  // True once the running visit (one watcher's event in a turn) has had its share: a quarter of
  // the turn's budget, or what is left of it. A primitive that loops over syscalls in one visit
  // (push, flush, sink and data reads, splice, sendfile, accept, datagram batches) asks after
  // each call and stops, still ready, to be visited again: a visit always makes progress, a turn
  // serves several watchers, and none overruns by more than one call. Always false outside the
  // turn's native work: what JS handlers start themselves keeps its own per-call limits.
  bool VisitSpent() const { return visit_deadline_ != kNoDeadline && MonotonicNs() >= visit_deadline_; }
  // Whether this loop alone keeps its thread alive (the main thread's endpoint does not).
  void SetRef(bool on) {
    if (uv_ != nullptr) UvWatchRef(uv_, on);
  }

  // The sockets' idle timeouts (idle.h), made on first use. Never null while the loop is open.
  IdleWatch* idle();

  // Dialers (dialer.h): started with an id from the handles' id space; 0 and *err on failure.
  uint64_t StartDialer(DialSpec&& spec, int* err);
  Dialer* FindDialer(uint64_t id) const;

  // The control set: watchers whose events start or end something (listeners, connecting
  // sockets, disk completions, child exits), few and cheap to serve. While a backlog of bulk work
  // waits, every turn checks them with one poll(2) before the backlog, so a new connection or a
  // finished read does not wait for a whole round of busy sockets. Cannot fail once reserved.
  void SetControl(Watcher* w, bool on);
  // Makes the prepare hook run before libuv next blocks (to flush changes and deliver records).
  void WantPrepare();

  // libuv callbacks
  void Drain();
  // A wake from libuv: `body` runs inside a handle scope, counted as a wakeup and flagged as
  // draining, and never unwinds into libuv; `after` runs once it is done, still inside the scope.
  template <typename Body, typename After>
  void Woken(Body&& body, After&& after);
  void Prepare();

  static constexpr uint64_t kDefaultTurnBudgetNs = 500000;
  static constexpr int kPollBatch = 512;  // events per epoll_wait/kevent
  static constexpr int kVisitShare = 4;  // a visit takes at most 1/kVisitShare of the budget

 private:
  static constexpr uint64_t kNoDeadline = UINT64_MAX;
  void Turn();
  bool Gather(bool inbox, int* fetched);
  void Dispatch(const ReadyItem& it);
  bool counted_ = false;  // in g_live[kLiveLoop]: opened and not yet closed
  void Deliver();
  void ExpireDue();  // emits the timers due now (outside a drain)
  void FireTimer(const ExpiredTimer& t);
  void CloseInbox(size_t undelivered = 0);
  void FreeRetired();
  void ReleaseArena();
  bool ArenaFull() const;
  bool LentFull() const;
  // A data record (kRecData or kRecLentData) for `n` bytes at `off`, merged into the last one
  // when it is the same socket's and ends there.
  void EmitData(int kind, uint64_t id, double off, size_t n);
  // The env refused an N-API call (it is stopping: worker.terminate(), process exit). Stop
  // watching the poller; the env's cleanup hook closes everything. Data stays in the kernel.
  void Stop();
  void HookTeardown();  // the env-teardown hook that closes the loop with its env
  void ReleaseJs();     // Close()'s N-API half
  // A JS Buffer of n bytes for the messages that follow (kRecMsgArena); null if none can be made.
  uint8_t* NewMessageArena(size_t n);

  // Raw N-API from here on: the drain path runs from libuv, where a failing call must become a
  // status we check, never a C++ exception (node-addon-api would even abort building one while
  // the env is stopping).
  napi_env env_;
  napi_ref callback_ = nullptr;
  napi_ref records_ref_ = nullptr;
  double* records_ = nullptr;
  napi_async_context async_ = nullptr;
  bool stopping_ = false;
  Poller poller_;
  UvWatch* uv_ = nullptr;
  struct CleanupCtx* cleanup_ = nullptr;  // shared with the env-teardown hook
  bool closed_ = false;
  int reserve_fd_ = -1;
  bool delivering_ = false;
  bool draining_ = false;

  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, Handle*> handles_;
  std::vector<Handle*> retired_;
  std::vector<PollEvent> events_;

  std::vector<double> pending_;                 // records not yet delivered
  std::vector<napi_ref> arenas_;   // arenas announced by pending kRecArena records
  napi_handle_scope arena_scope_ = nullptr;  // keeps the arena being filled alive
  uint8_t* arena_ = nullptr;
  size_t arena_size_ = 0, arena_used_ = 0;
  bool arena_undelivered_ = false;  // records point into the arena and have not gone to JS
  size_t drain_bytes_ = 0;          // read into arenas during this drain
  size_t arena_hint_ = 0;           // ... during the previous one
  napi_ref lent_ref_ = nullptr;     // the lent arena (a persistent reference: it lives with the loop)
  uint8_t* lent_ = nullptr;
  size_t lent_used_ = 0;

  std::shared_ptr<Group> group_;
  std::shared_ptr<Inbox> inbox_;
  // kqueue: the udata of the inbox's EVFILT_USER knote; its events become the turn's inbox item.
  class InboxEvent : public Watcher {
   public:
    void OnEvent(uint32_t) override {}
    void OnPollError(int) override {}
  };
  InboxEvent inbox_event_;
  uint32_t group_id_ = 0;
  int32_t self_ = -1;
  std::vector<uint8_t> take_buf_;
  uint64_t busy_poll_ns_ = 0;
  TimerSet timers_{this};
  std::unique_ptr<FileIo> files_;
  int8_t inbox_priority_ = 0;
  bool mixed_priorities_ = false;
  std::vector<ReadyItem> items_;
  // Watcher events a turn fetched and could not visit before its budget ran out, in order, from
  // backlog_head_ on: the next turns take them before polling again (they are level-triggered
  // and still ready, or a visit finds EAGAIN), so every ready watcher is visited once before any
  // is visited twice. Each watcher is in it at most once (only fetched events enter it).
  std::vector<ReadyItem> backlog_;
  size_t backlog_head_ = 0;
  bool backlogged() const { return backlog_head_ < backlog_.size(); }
  uint64_t visit_seq_ = 0;
  std::vector<std::unique_ptr<Dialer>> dialers_;
  std::unique_ptr<IdleWatch> idle_;
  std::vector<Watcher*> control_;
  std::vector<::pollfd> control_fds_;
  size_t control_next_ = 0;  // where the next control poll starts (it takes kControlPoll at most)
  void PollControl();
  uint64_t turn_budget_ns_ = kDefaultTurnBudgetNs;
  uint64_t turn_deadline_ = kNoDeadline;
  uint64_t visit_deadline_ = kNoDeadline;
  std::vector<ExpiredTimer> expired_;
  bool inbox_active_ = false;
  void BusyPoll();
  std::vector<int32_t> waiters_buf_;

  LoopStats stats_;
  std::shared_ptr<const std::vector<uint8_t>> shared_buf_;
  size_t quiet_open_ = 0;
  bool quiet_wait_ = false;
  std::vector<Handle*> QuietSockets() const;
};

}  // namespace iapp
