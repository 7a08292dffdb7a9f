// Which system calls this build uses, decided in one place. The backend (IAPP_EPOLL or
// IAPP_KQUEUE) decides everything that touches the poller (timers, child watches, wakers,
// pause/resume); this file decides the fast calls that one OS has and the others do without.
//
// IAPP_PORTABLE (the kqueue build npm run test:kqueue makes on Linux) takes the portable fallback
// of every Linux-only fast call, so that each fallback runs in CI and not only on a BSD or a Mac.
// docs/platforms.md has the whole table.
#pragma once

#if defined(__FreeBSD__)
#include <sys/param.h>  // __FreeBSD_version
#endif

#if defined(__linux__) && !defined(IAPP_PORTABLE)
// The sink discards with recv(MSG_TRUNC) on TCP: no copy at all. Elsewhere (FreeBSD's TCP ignores
// MSG_TRUNC) the bytes land in a per-thread scratch buffer.
#define IAPP_HAVE_MSG_TRUNC 1
// Pipes and proxies move bytes socket -> kernel pipe -> socket with splice(2); elsewhere through
// a buffer with recv/send.
#define IAPP_HAVE_SPLICE 1
// File reads, writes and syncs on io_uring where the kernel allows a ring; elsewhere the pool.
#define IAPP_HAVE_IO_URING 1
#endif

#if (defined(__linux__) && !defined(IAPP_PORTABLE)) || (defined(__FreeBSD__) && __FreeBSD_version >= 1300000)
// copyFile in the kernel (Linux 4.5+, FreeBSD 13+); elsewhere pread/pwrite through a buffer.
#define IAPP_HAVE_COPY_FILE_RANGE 1
#endif

#if (defined(__linux__) || defined(__FreeBSD__)) && !defined(IAPP_PORTABLE)
// Datagram batches in one call (recvmmsg/sendmmsg: Linux, FreeBSD 11+); elsewhere one per call.
#define IAPP_HAVE_MMSG 1
// accept4 and SOCK_NONBLOCK | SOCK_CLOEXEC; elsewhere (macOS) accept or socket, then fcntl.
#define IAPP_HAVE_ACCEPT4 1
#endif

#if defined(__linux__) && !defined(IAPP_KQUEUE)
// A loop's disk-completion waker is an eventfd with epoll; with kqueue a pipe, as on FreeBSD and
// macOS (the inbox's waker is EVFILT_USER there, see inbox.h).
#define IAPP_WAKER_EVENTFD 1
#endif
