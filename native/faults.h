// Fault injection: makes chosen syscalls fail with a chosen errno at a chosen rate, so tests can
// show what the library does when the world misbehaves. Off unless a spec is set (src/faults.ts
// parses IAPP_FAULTS); when off, a site costs one relaxed load and a branch. The spec is
// process-wide: every loop thread and the disk pool see it.
#pragma once
#include <atomic>
#include <cstdint>
#include <vector>

namespace iapp {

enum FaultSite {
  kFaultAccept,    // accept4: as if the kernel refused the connection waiting in the backlog
  kFaultRecv,      // recv on sockets (data, sink, pipe fallback), recvmmsg of UDP to JS
  kFaultSend,      // sendmsg on sockets (writes, pushes, the sendfile pread fallback), UDP sends
  kFaultSendfile,  // sendfile(2)
  kFaultSplice,    // a pipe's calls, both halves: splice(2), or recv/send where there is no splice
  kFaultPollCtl,   // epoll_ctl ADD/MOD; kevent changes that add a knote (enabling one cannot fail)
  kFaultWaker,     // the eventfd write or EVFILT_USER trigger that wakes another loop (it still happens)
  kFaultThread,    // creating a disk pool thread or a loop thread
  kFaultDisk,      // file reads, writes and syncs, on the pool or io_uring (the result replaced)
  kFaultSiteCount,
};

extern const char* const kFaultSites[kFaultSiteCount];
extern std::atomic<bool> g_faults_on;

// The errno to inject at this call, or 0.
int FaultRoll(FaultSite site);
inline int Fault(FaultSite site) {
  return g_faults_on.load(std::memory_order_relaxed) ? FaultRoll(site) : 0;
}

struct FaultEntry {
  FaultSite site;
  int err;
  double rate;   // probability per call, 0..1
  uint64_t max;  // most injections by this entry; 0: no limit
  uint64_t after;  // calls at this site let through before the entry applies
};

constexpr int kMaxFaultEntries = 16;

// Replaces the whole spec (empty: off) and zeroes the counts. Returns false if there are too
// many entries. Meant to be called while nothing runs a fault site, or at least tolerates it: a
// call racing a change sees the old entry or the new one.
bool SetFaults(const std::vector<FaultEntry>& entries);
// Injections so far, per site.
uint64_t FaultCount(FaultSite site);

}  // namespace iapp
