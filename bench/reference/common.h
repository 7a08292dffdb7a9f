/*
 * common.h: what the C reference programs in bench/reference/ share. Each program is one file
 * that includes this after defining _GNU_SOURCE and setting `prog` first thing in main(): the
 * program's name in its messages, fatal errors, integer flags, the monotonic clock, raising the
 * open-file limit, and SIGTERM/SIGINT as a file descriptor (so no work happens in a handler).
 */
#ifndef IAPP_BENCH_COMMON_H
#define IAPP_BENCH_COMMON_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>

static const char *prog = "reference";

/* A system call that must not fail did: say which and why, exit 1. */
static inline void die(const char *what) {
    fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
    exit(1);
}

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An integer flag in lo..hi, or a usage error (exit 2) naming the flag. */
static inline long long parse_ll(const char *s, const char *name, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno || v < lo || v > hi) {
        fprintf(stderr, "%s: %s must be an integer in %lld..%lld (got '%s')\n", prog, name, lo, hi, s);
        exit(2);
    }
    return v;
}

/*
 * Raises RLIMIT_NOFILE's soft limit to the hard one; returns how many descriptors this process may
 * have, or `unlimited` when there is no limit.
 */
static inline size_t raise_nofile(size_t unlimited) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) die("getrlimit");
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) fprintf(stderr, "%s: setrlimit(NOFILE): %s\n", prog, strerror(errno));
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0) die("getrlimit");
    }
    return rl.rlim_cur == RLIM_INFINITY ? unlimited : (size_t)rl.rlim_cur;
}

/* SIGTERM and SIGINT, blocked, as a non-blocking signalfd to watch with the other fds. */
static inline int term_signalfd(void) {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) die("sigprocmask");
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) die("signalfd");
    return sfd;
}

/* Prints an errno once per distinct value, so that 1000 refused connects make one line. */
static inline void report_once(const char *what, int err) {
    static int seen[4096];
    if (err > 0 && err < 4096) {
        if (seen[err]) return;
        seen[err] = 1;
    }
    fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(err));
}

#endif
