/*
 * pingpong.c: the C floor of bench/messaging.mjs's round-trip case: two threads of one process
 * waking each other through eventfd + epoll, no JavaScript and no payload.
 *
 *   pingpong --duration SEC [--warmup-s SEC] [--case rtt]
 *
 * (SEC may have a fraction; --case takes only rtt, so the harness can pass what it passes the
 * other systems.)
 *
 * Each thread has its own epoll fd with its own eventfd registered (EPOLLIN, level-triggered).
 * The ping thread (main) reads the monotonic clock, writes the pong thread's eventfd, waits in
 * epoll_wait for its own, reads it and records the round trip; the pong thread waits in
 * epoll_wait, reads its eventfd and writes the ping thread's back. One round trip in flight.
 * Warm-up for --warmup-s seconds (no samples), then --duration seconds of samples (at most
 * MAX_SAMPLES, as bench/peers/messageport.mjs); p50/p99 the same way as there (sorted samples,
 * index floor(p * n)).
 *
 * Prints one JSON line on stdout, the fields of bench/peers/messageport.mjs's rtt case:
 *
 *   {"system":"c-eventfd","case":"rtt","count","seconds","p50Us","p99Us","meanUs","minUs",
 *    "maxUs","cpuS","cores","cpuTotalS"}
 *
 * cpuS: this process's user+system CPU (both threads) over warm-up and samples, cores = cpuS per
 * second of them; cpuTotalS: its CPU from start to the report. A wait of WAIT_MS without the other
 * thread's wake-up ends the run (exit 1), so a lost wake-up cannot hang the harness.
 * Exit status: 0 with the line printed, 1 on a failed system call, 2 for bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common.h"

#define MAX_SAMPLES 4000000
#define WAIT_MS 10000

struct side {
    int efd; /* this thread's eventfd: the other thread writes it to wake this one */
    int ep;  /* this thread's epoll fd, watching efd */
};

static struct side ping_side = {-1, -1}, pong_side = {-1, -1};
static atomic_int stop; /* set before the last write to the pong thread: exit, do not answer */

static void usage(const char *msg) {
    if (msg) fprintf(stderr, "%s: %s\n", prog, msg);
    fprintf(stderr, "usage: %s --duration SEC [--warmup-s SEC] [--case rtt]\n", prog);
    exit(2);
}

/* Seconds, fractions allowed, in lo..3600. */
static double parse_seconds(const char *v, const char *name, double lo) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || errno || !(d >= lo && d <= 3600)) {
        fprintf(stderr, "%s: %s must be seconds in %g..3600 (got '%s')\n", prog, name, lo, v);
        exit(2);
    }
    return d;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void make_side(struct side *s) {
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->efd < 0) die("eventfd");
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    if (s->ep < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->efd};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->efd, &ev) != 0) die("epoll_ctl");
}

static void close_side(struct side *s) {
    if (s->ep >= 0 && close(s->ep) != 0) die("close");
    if (s->efd >= 0 && close(s->efd) != 0) die("close");
    s->ep = s->efd = -1;
}

/* Wakes the thread that owns `efd`. */
static void wake(int efd) {
    uint64_t one = 1;
    ssize_t n;
    while ((n = write(efd, &one, sizeof one)) < 0 && errno == EINTR) {
    }
    if (n != (ssize_t)sizeof one) die("write(eventfd)");
}

/* Blocks in epoll_wait until this side's eventfd is written, then reads (resets) it. */
static void wait_woken(const struct side *s, const char *who) {
    for (;;) {
        struct epoll_event ev;
        int n = epoll_wait(s->ep, &ev, 1, WAIT_MS);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        if (n == 0) {
            fprintf(stderr, "%s: %s thread: no wake-up within %d ms\n", prog, who, WAIT_MS);
            exit(1);
        }
        uint64_t v;
        if (read(s->efd, &v, sizeof v) == (ssize_t)sizeof v) return;
        if (errno != EAGAIN && errno != EINTR) die("read(eventfd)");
    }
}

static void *pong(void *arg) {
    (void)arg;
    for (;;) {
        wait_woken(&pong_side, "pong");
        if (atomic_load_explicit(&stop, memory_order_acquire)) return NULL;
        wake(ping_side.efd);
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    prog = "pingpong";
    double duration = 0, warm = 0.3;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage("every option takes a value");
        if (!strcmp(a, "--duration")) duration = parse_seconds(v, "--duration", 0.001);
        else if (!strcmp(a, "--warmup-s")) warm = parse_seconds(v, "--warmup-s", 0);
        else if (!strcmp(a, "--case")) {
            if (strcmp(v, "rtt")) usage("--case: only rtt (a ping-pong has no one-way case)");
        } else usage(NULL);
    }
    if (!duration) usage("--duration is required");

    uint64_t *samples = malloc(MAX_SAMPLES * sizeof *samples);
    if (!samples) die("malloc");
    make_side(&ping_side);
    make_side(&pong_side);
    pthread_t thr;
    int rc = pthread_create(&thr, NULL, pong, NULL);
    if (rc != 0) {
        errno = rc;
        die("pthread_create");
    }

    double cpu0 = cpu_s();
    uint64_t warm_end = now_ns() + (uint64_t)(warm * 1e9), t_measure = 0, end = UINT64_MAX, t, now;
    size_t count = 0;
    for (;;) {
        t = now_ns();
        wake(pong_side.efd);
        wait_woken(&ping_side, "ping");
        now = now_ns();
        if (t_measure) {
            samples[count++] = now - t;
            if (now >= end || count >= MAX_SAMPLES) break;
        } else if (now >= warm_end) {
            t_measure = now;
            end = now + (uint64_t)(duration * 1e9);
        }
    }
    double seconds = (now - t_measure) / 1e9;
    atomic_store_explicit(&stop, 1, memory_order_release);
    wake(pong_side.efd);
    rc = pthread_join(thr, NULL);
    if (rc != 0) {
        errno = rc;
        die("pthread_join");
    }
    double cpu = cpu_s() - cpu0;
    close_side(&ping_side);
    close_side(&pong_side);

    qsort(samples, count, sizeof *samples, cmp_u64);
    double sum = 0;
    for (size_t i = 0; i < count; i++) sum += (double)samples[i];
#define Q(p) (samples[(size_t)((p) * count) < count - 1 ? (size_t)((p) * count) : count - 1] / 1e3)
    printf("{\"system\":\"c-eventfd\",\"case\":\"rtt\",\"count\":%zu,\"seconds\":%.6f,\"p50Us\":%.3f,\"p99Us\":%.3f,\"meanUs\":%.3f,"
           "\"minUs\":%.3f,\"maxUs\":%.3f,\"cpuS\":%.6f,\"cores\":%.4f,\"cpuTotalS\":%.6f}\n",
           count, seconds, Q(0.5), Q(0.99), sum / count / 1e3, samples[0] / 1e3, samples[count - 1] / 1e3, cpu, cpu / (seconds + warm),
           cpu_s());
    free(samples);
    return 0;
}
