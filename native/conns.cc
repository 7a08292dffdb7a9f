#include "conns.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__linux__) || defined(__APPLE__)
#include <sys/random.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <new>

#include "sys.h"

namespace iapp {

namespace {

// The table of connections by source address: a fixed array of buckets, each with its own lock
// and a few entries. An address always hashes to the same bucket (SipHash with a random key per
// block, so nobody outside can aim many addresses at one bucket), and each process of a fleet
// keeps its own entry there, so the parent can give back what a dead child held. An entry whose
// count is 0 is free. A bucket with no free entry refuses the connection. The table has at least
// as many buckets as the total bound allows connections (4096 at least, 2^18 at most), so a bucket
// holds one address on average and 11 in one is a rare event (docs/security.md has the figures).
struct AddrEntry {
  uint8_t addr[16];  // IPv6, or IPv4 mapped (::ffff:a.b.c.d); IPv6 cut to its /64
  uint32_t count;
  uint16_t slot;  // the process slot that holds these connections
  uint16_t unused;
};
constexpr int kBucketEntries = 10;
struct AddrBucket {
  std::atomic<uint32_t> lock;  // as ConnCounts::lock: 0 free, else the holder's slot + 1
  uint32_t unused;
  AddrEntry entries[kBucketEntries];
};
constexpr uint32_t kMinBuckets = 4096;     // 1 MiB of address space; pages made on first touch
constexpr uint32_t kMaxBuckets = 1u << 18;  // 64 MiB
constexpr size_t kPage = 4096;
static_assert((sizeof(AddrBucket) * kMinBuckets) % kPage == 0, "the table fills whole pages");

// Buckets for a total bound: a power of two (a bucket is the hash's low bits) at least the bound.
uint32_t BucketsFor(int64_t max_total) {
  uint32_t n = kMinBuckets;
  while (n < kMaxBuckets && static_cast<int64_t>(n) < max_total) n <<= 1;
  return n;
}

// A table and its size, published together; never freed (a Take may still be reading one that
// a later SetConnLimits replaced: a few MiB of address space, once per change of bounds).
struct Table {
  AddrBucket* buckets;
  uint32_t count;
  // The table this one replaced. Never freed (a loop thread may still be counting in it), but
  // kept reachable: a bounded, deliberate allocation, not a leak.
  Table* previous = nullptr;
};

ConnCounts g_own;
std::atomic<ConnCounts*> g_conns{&g_own};
std::atomic<Table*> g_table{nullptr};
std::atomic<int> g_slot{0};
// Lock-free atomics are address-free, so they work across processes in shared memory.
static_assert(std::atomic<int64_t>::is_always_lock_free, "shared counters need lock-free atomics");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "shared locks need lock-free atomics");

// A spin lock in memory several processes share (a pthread mutex there would need
// PTHREAD_PROCESS_SHARED and robust-mutex support that macOS lacks). Held for a few dozen loads
// and stores, never across a syscall; a holder preempted meanwhile is waited for with
// sched_yield. `me` is the holder's slot + 1. `dead`, when not 0, is a holder that died with the
// lock: it is taken from it (ReclaimConns).
void Lock(std::atomic<uint32_t>& l, uint32_t me, uint32_t dead = 0) {
  for (unsigned spins = 0;; ++spins) {
    uint32_t v = l.load(std::memory_order_relaxed);
    if ((v == 0 || (dead != 0 && v == dead)) &&
        l.compare_exchange_weak(v, me, std::memory_order_acquire, std::memory_order_relaxed))
      return;
    if (spins < 128) CpuRelax();
    else sched_yield();
  }
}
void Unlock(std::atomic<uint32_t>& l) { l.store(0, std::memory_order_release); }

uint32_t Me() { return static_cast<uint32_t>(g_slot.load(std::memory_order_relaxed)) + 1; }

uint64_t Rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

// SipHash-2-4 (Aumasson and Bernstein): a keyed hash whose outputs an attacker who does not know
// the key cannot steer, so source addresses cannot be chosen to crowd one bucket.
uint64_t SipHash24(const uint64_t key[2], const uint8_t* m, size_t len) {
  uint64_t v0 = 0x736f6d6570736575ULL ^ key[0];
  uint64_t v1 = 0x646f72616e646f6dULL ^ key[1];
  uint64_t v2 = 0x6c7967656e657261ULL ^ key[0];
  uint64_t v3 = 0x7465646279746573ULL ^ key[1];
  auto round = [&] {
    v0 += v1;
    v1 = Rotl(v1, 13);
    v1 ^= v0;
    v0 = Rotl(v0, 32);
    v2 += v3;
    v3 = Rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = Rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = Rotl(v1, 17);
    v1 ^= v2;
    v2 = Rotl(v2, 32);
  };
  const size_t whole = len - len % 8;
  for (size_t i = 0; i < whole; i += 8) {
    uint64_t w = 0;
    for (int k = 0; k < 8; ++k) w |= static_cast<uint64_t>(m[i + k]) << (8 * k);  // little-endian
    v3 ^= w;
    round();
    round();
    v0 ^= w;
  }
  uint64_t last = static_cast<uint64_t>(len) << 56;
  for (size_t k = 0; k < len % 8; ++k) last |= static_cast<uint64_t>(m[whole + k]) << (8 * k);
  v3 ^= last;
  round();
  round();
  v0 ^= last;
  v2 ^= 0xff;
  for (int r = 0; r < 4; ++r) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

void NewKey(uint64_t key[2]) {
  uint64_t k[2] = {0, 0};
  if (getentropy(k, sizeof k) != 0 || (k[0] == 0 && k[1] == 0)) {
    // No entropy source (it does not happen on supported systems): still differs per run.
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    k[0] = static_cast<uint64_t>(ts.tv_nsec) * 0x9e3779b97f4a7c15ULL ^ static_cast<uint64_t>(getpid());
    k[1] = (static_cast<uint64_t>(ts.tv_sec) * 0xbf58476d1ce4e5b9ULL ^ MonotonicNs()) | 1;
  }
  key[0] = k[0];
  key[1] = k[1];
}

// The table key of a peer: false for what has no IP address (Unix sockets). IPv6 addresses are
// cut to their /64: a host or a LAN routinely holds a whole /64, so counting single addresses would
// let one client pass the bound by changing the low bits.
bool AddrKey(const sockaddr* peer, socklen_t len, uint8_t out[16]) {
  if (peer == nullptr) return false;
  if (peer->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, &reinterpret_cast<const sockaddr_in*>(peer)->sin_addr, 4);
    return true;
  }
  if (peer->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    const uint8_t* a = reinterpret_cast<const sockaddr_in6*>(peer)->sin6_addr.s6_addr;
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, kMapped, 12) == 0) {
      memcpy(out, a, 16);  // an IPv4 client of a dual-stack socket: the same key as over IPv4
    } else {
      memcpy(out, a, 8);
      memset(out + 8, 0, 8);
    }
    return true;
  }
  return false;
}

int MakeAnonymousFile() {
#if defined(__linux__)
  int fd = memfd_create("iapp-connections", 0);  // no MFD_CLOEXEC: children inherit it
  return fd < 0 ? -errno : fd;
#elif defined(__FreeBSD__)
  int fd = shm_open(SHM_ANON, O_RDWR, 0600);
  if (fd < 0) return -errno;
  int fl = fcntl(fd, F_GETFD);
  if (fl >= 0) fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
  return fd;
#else
  // macOS: a named object, unlinked at once, so only the fds keep it.
  char name[64];
  snprintf(name, sizeof name, "/iapp-conns-%d-%ld", getpid(), static_cast<long>(random()));
  int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return -errno;
  shm_unlink(name);
  return fd;
#endif
}

// Maps the block behind fd (a header page, then the table, whose size the file's says): 0 or
// -errno. *out is its header.
int Map(int fd, ConnCounts** out) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  if (st.st_size <= static_cast<off_t>(kPage)) return -EINVAL;
  const size_t table = static_cast<size_t>(st.st_size) - kPage;
  const size_t buckets = table / sizeof(AddrBucket);
  if (table % sizeof(AddrBucket) != 0 || buckets < kMinBuckets || buckets > kMaxBuckets || (buckets & (buckets - 1)) != 0)
    return -EINVAL;
  auto* t = new (std::nothrow) Table();
  if (t == nullptr) return -ENOMEM;
  void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    delete t;
    return -errno;
  }
  *out = static_cast<ConnCounts*>(p);
  // Stays mapped for the life of the process: loops may count into it until the very end.
  t->buckets = reinterpret_cast<AddrBucket*>(static_cast<char*>(p) + kPage);
  t->count = static_cast<uint32_t>(buckets);
  t->previous = g_table.exchange(t, std::memory_order_acq_rel);
  g_conns.store(*out, std::memory_order_release);
  return 0;
}
}  // namespace

ConnCounts* ProcessConns() { return g_conns.load(std::memory_order_acquire); }

int CreateSharedConns() {
  ConnCounts* was = ProcessConns();
  if (was->open.load(std::memory_order_relaxed) > 0) return -EBUSY;
  int fd = MakeAnonymousFile();
  if (fd < 0) return fd;
  // Sized for the total bound set so far; zero-filled, its pages made on first touch.
  const size_t bytes = kPage + sizeof(AddrBucket) * BucketsFor(was->max_total.load(std::memory_order_relaxed));
  if (ftruncate(fd, static_cast<off_t>(bytes)) < 0) {
    int e = errno;
    SysClose(fd);
    return -e;
  }
  ConnCounts* c = nullptr;
  int r = Map(fd, &c);
  if (r < 0) {
    SysClose(fd);
    return r;
  }
  // The bounds set so far carry over; the key is the block's own, read by every process.
  NewKey(c->hash_key);
  c->max_total.store(was->max_total.load(std::memory_order_relaxed), std::memory_order_relaxed);
  c->max_per_addr.store(was->max_per_addr.load(std::memory_order_relaxed), std::memory_order_release);
  return fd;
}

int AttachSharedConns(int fd, int slot) {
  if (slot <= 0 || slot >= kConnSlots) return -EINVAL;
  if (ProcessConns()->open.load(std::memory_order_relaxed) > 0) return -EBUSY;
  ConnCounts* c = nullptr;
  g_slot.store(slot, std::memory_order_relaxed);
  int r = Map(fd, &c);
  if (r < 0) g_slot.store(0, std::memory_order_relaxed);
  return r;
}

int SetConnLimits(int64_t max_total, int64_t max_per_addr) {
  ConnCounts* c = ProcessConns();
  if (c->open.load(std::memory_order_relaxed) > 0) return -EBUSY;
  const Table* now = g_table.load(std::memory_order_acquire);
  const uint32_t want = BucketsFor(max_total);
  if (max_per_addr > 0 && c == &g_own && (now == nullptr || now->count < want)) {
    // A process on its own: a private table, sized for the bound (a shared block brings its own,
    // sized when it was made). Untouched pages cost nothing.
    const size_t bytes = sizeof(AddrBucket) * want;
    auto* t = new (std::nothrow) Table();
    if (t == nullptr) return -ENOMEM;
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      delete t;
      return -errno;
    }
    t->buckets = static_cast<AddrBucket*>(p);
    t->count = want;
    t->previous = g_table.exchange(t, std::memory_order_acq_rel);
  }
  if (c->hash_key[0] == 0 && c->hash_key[1] == 0) NewKey(c->hash_key);
  c->max_total.store(max_total, std::memory_order_relaxed);
  c->max_per_addr.store(max_per_addr, std::memory_order_release);
  return 0;
}

void ReclaimConns(int slot) {
  if (slot <= 0 || slot >= kConnSlots) return;
  ConnCounts* c = ProcessConns();
  const uint32_t dead = static_cast<uint32_t>(slot) + 1;
  Lock(c->lock, Me(), dead);
  c->by_slot[slot] = 0;
  // Recomputed rather than decremented: exact even if the process died between its two updates.
  int64_t sum = 0;
  for (int i = 0; i < kConnSlots; ++i) sum += c->by_slot[i];
  c->admitted = sum;
  Unlock(c->lock);
  const Table* table = g_table.load(std::memory_order_acquire);
  if (table == nullptr || c->max_per_addr.load(std::memory_order_acquire) == 0) return;
  for (uint32_t b = 0; b < table->count; ++b) {
    AddrBucket& bk = table->buckets[b];
    Lock(bk.lock, Me(), dead);
    // An entry it was filling when it died has its slot (and count 0 or 1): freed either way.
    for (AddrEntry& e : bk.entries)
      if (e.slot == slot) e.count = 0;
    Unlock(bk.lock);
  }
}

AdmitResult Admission::Take(const sockaddr* peer, socklen_t len) {
  ConnCounts* c = ProcessConns();
  const int64_t max_addr = c->max_per_addr.load(std::memory_order_acquire);
  const int64_t max_total = c->max_total.load(std::memory_order_relaxed);
  if (max_total == 0 && max_addr == 0) return kAdmitted;
  const int slot = g_slot.load(std::memory_order_relaxed);
  if (max_total > 0) {
    Lock(c->lock, Me());
    const bool full = c->admitted >= max_total;
    if (!full) {
      ++c->admitted;
      ++c->by_slot[slot];
    }
    Unlock(c->lock);
    if (full) {
      c->refused_total.fetch_add(1, std::memory_order_relaxed);
      return kRefusedTotal;
    }
    counted_ = true;
  }
  uint8_t key[16];
  const Table* table = g_table.load(std::memory_order_acquire);
  if (max_addr > 0 && table != nullptr && AddrKey(peer, len, key)) {
    const uint32_t b = static_cast<uint32_t>(SipHash24(c->hash_key, key, sizeof key)) & (table->count - 1);
    AddrBucket& bk = table->buckets[b];
    Lock(bk.lock, Me());
    int64_t from_addr = 0;
    int mine = -1, free = -1;
    for (int i = 0; i < kBucketEntries; ++i) {
      const AddrEntry& e = bk.entries[i];
      if (e.count == 0) {
        if (free < 0) free = i;
        continue;
      }
      if (memcmp(e.addr, key, sizeof key) != 0) continue;
      from_addr += e.count;  // every process's entry for this address
      if (e.slot == slot) mine = i;
    }
    int at = -1;
    if (from_addr < max_addr) {
      if (mine >= 0) {
        at = mine;
      } else if (free >= 0) {
        at = free;
        memcpy(bk.entries[at].addr, key, sizeof key);
        bk.entries[at].slot = static_cast<uint16_t>(slot);
      }
    }
    if (at >= 0) ++bk.entries[at].count;
    Unlock(bk.lock);
    if (at < 0) {
      c->refused_addr.fetch_add(1, std::memory_order_relaxed);
      Release();  // the place under the total bound taken above
      return kRefusedAddr;
    }
    slot_ = static_cast<int32_t>(b * kBucketEntries + static_cast<uint32_t>(at));
    table_ = table;
  }
  return kAdmitted;
}

void Admission::Release() {
  if (!counted_ && slot_ < 0) return;
  ConnCounts* c = ProcessConns();
  if (counted_) {
    const int slot = g_slot.load(std::memory_order_relaxed);
    Lock(c->lock, Me());
    --c->admitted;
    --c->by_slot[slot];
    Unlock(c->lock);
  }
  if (slot_ >= 0) {
    // The table it was counted in (a bound changed since may have published another).
    AddrBucket& bk = static_cast<const Table*>(table_)->buckets[slot_ / kBucketEntries];
    AddrEntry& e = bk.entries[slot_ % kBucketEntries];
    Lock(bk.lock, Me());
    if (e.count > 0) --e.count;
    Unlock(bk.lock);
  }
  Forget();
}

}  // namespace iapp
