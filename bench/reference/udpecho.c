/*
 * udpecho.c: a C UDP request/response load client, the load for bench/udp.mjs.
 *
 *   udpecho --host H --port P --sockets S --window K --size B --duration SEC
 *
 * (SEC may have a fraction.)
 *
 * S sockets, each connect()ed to H:P so that the kernel hands it only the server's answers, each
 * keeping K datagrams of B bytes outstanding. Every answer sends the next datagram on its socket:
 * a closed loop, so the client can never outrun the server and the server's receive queue holds
 * at most S*K datagrams (pick S*K below what its SO_RCVBUF holds, or the queue drops them).
 *
 * UDP loses datagrams, and a socket whose datagrams are all lost would wait for ever: a socket
 * that has heard nothing for 100 ms writes its window off and sends K again (a refill). The first
 * 4 bytes of each datagram carry the socket's window generation, bumped at every refill, so that
 * answers to a written-off window that arrive after all (a server descheduled for 100 ms on a busy
 * machine) are counted but do not send again: the window never grows past K.
 *
 * One thread, level-triggered epoll, recvmmsg/sendmmsg in batches of up to 64. SIGINT/SIGTERM
 * (through a signalfd, no work in a handler) end the run early; the counts so far are printed.
 *
 * Prints one JSON object on stdout:
 *
 *   {"responses":R,"sent":N,"seconds":S,"perS":R/S,"refills":L,"late":A,"sendShort":W,
 *    "recvErrors":E,"cpuS":C,"waitS":D,"sockets":S,"window":K,"size":B}
 *
 * responses counts answers received (late ones included), sent the datagrams sent, seconds runs
 * from the first send to the end, refills the windows written off, late the answers to them,
 * sendShort the datagrams sendmmsg would not take at once (sent later), recvErrors failed
 * receives (ECONNREFUSED: the server is gone), cpuS this process's user+system CPU, waitS the
 * seconds of the run it was runnable but not running (another process had its CPU; -1: unknown).
 * A server that counts the datagrams it received must land in [responses, sent].
 * Exit status: 0 if any answer came, 1 if none did, 2 for bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common.h"

#define BATCH 64
#define MAX_SOCKETS 4096
#define MAX_WINDOW 65536
#define MAX_SIZE 65507 /* 65535 - 8 (UDP header) - 20 (IPv4 header) */
#define MIN_SIZE 4     /* room for the window generation */
#define LOST_S 0.100
#define SCAN_S 0.010 /* how often silent sockets and unsent datagrams are looked at */

struct sock {
    int fd;
    uint32_t gen;   /* window generation, in every datagram this socket sends */
    long inflight;  /* datagrams of the current generation not answered yet */
    long owed;      /* answered but not yet sent again: sendmmsg took fewer */
    double last_rx; /* last answer of the current generation, or last (re)fill */
    unsigned char *payload;
};

static void usage(const char *msg) {
    if (msg) fprintf(stderr, "%s: %s\n", prog, msg);
    fprintf(stderr, "usage: %s --host H --port P --sockets S --window K --size B --duration SEC\n", prog);
    exit(2);
}

/* Seconds, fractions allowed (a harness's short warm-up run), 0.1..3600. */
static double parse_seconds(const char *v) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || errno || !(d >= 0.1 && d <= 3600)) {
        fprintf(stderr, "%s: --duration must be seconds in 0.1..3600 (got '%s')\n", prog, v);
        exit(2);
    }
    return d;
}

/*
 * Seconds this process has been runnable but not running (the second field of
 * /proc/self/schedstat, ns), or -1: a client that waited for its CPU let the server idle.
 */
static double run_delay_s(void) {
    FILE *f = fopen("/proc/self/schedstat", "r");
    unsigned long long run, wait;
    int ok = f && fscanf(f, "%llu %llu", &run, &wait) == 2;
    if (f) fclose(f);
    return ok ? wait / 1e9 : -1;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static long long sent, responses, refills, late, send_short, recv_errors;
static size_t size;

/* Sends up to n datagrams of the socket's current generation; returns how many went. */
static long send_n(struct sock *s, long n) {
    struct mmsghdr msgs[BATCH];
    struct iovec iov = {.iov_base = s->payload, .iov_len = size};
    long done = 0;
    memcpy(s->payload, &s->gen, sizeof s->gen);
    while (done < n) {
        int k = n - done < BATCH ? (int)(n - done) : BATCH;
        memset(msgs, 0, sizeof(struct mmsghdr) * k);
        for (int i = 0; i < k; i++) {
            msgs[i].msg_hdr.msg_iov = &iov; /* sendmmsg only reads it: one iovec serves all */
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(s->fd, msgs, k, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR) continue;
            /* a full send buffer, or the ICMP error of a server that went away: try later */
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) report_once("sendmmsg", errno);
            break;
        }
        done += r;
        if (r < k) break;
    }
    sent += done;
    s->inflight += done;
    if (done < n) send_short += n - done;
    return done;
}

/* Writes the socket's window off and sends a fresh one. */
static void refill(struct sock *s, long window, double t) {
    s->gen++;
    s->inflight = 0;
    s->owed = 0;
    s->last_rx = t;
    long n = send_n(s, window);
    s->owed = window - n;
}

int main(int argc, char **argv) {
    prog = "udpecho";
    const char *host = NULL, *port = NULL;
    long nsock = 0, window = 0;
    double duration = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage("every option takes a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = v;
        else if (!strcmp(a, "--sockets")) nsock = parse_ll(v, "--sockets", 1, MAX_SOCKETS);
        else if (!strcmp(a, "--window")) window = parse_ll(v, "--window", 1, MAX_WINDOW);
        else if (!strcmp(a, "--size")) size = parse_ll(v, "--size", MIN_SIZE, MAX_SIZE);
        else if (!strcmp(a, "--duration")) duration = parse_seconds(v);
        else usage("unknown option");
    }
    if (!host || !port || !nsock || !window || !size || !duration) usage("--host, --port, --sockets, --window, --size and --duration are all required");
    parse_ll(port, "--port", 1, 65535);
    raise_nofile(1 << 20);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV}, *ai;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai) {
        fprintf(stderr, "%s: --host %s: %s\n", prog, host, gai_strerror(gai));
        exit(2);
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    int sfd = term_signalfd();
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) != 0) die("epoll_ctl(signalfd)");

    struct sock *socks = calloc(nsock, sizeof *socks);
    unsigned char *rxbuf = malloc((size_t)BATCH * size);
    if (!socks || !rxbuf) die("malloc");
    for (long i = 0; i < nsock; i++) {
        struct sock *s = &socks[i];
        s->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0) die("socket");
        if (connect(s->fd, ai->ai_addr, ai->ai_addrlen) != 0) die("connect");
        s->payload = calloc(1, size);
        if (!s->payload) die("malloc");
        ev.events = EPOLLIN;
        ev.data.u64 = (uint64_t)i;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) != 0) die("epoll_ctl");
    }
    freeaddrinfo(ai);

    struct mmsghdr msgs[BATCH];
    struct iovec iovs[BATCH];
    struct epoll_event events[256];
    /* recvmmsg writes only msg_len and msg_flags: the headers are set up once */
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        iovs[i].iov_base = rxbuf + (size_t)i * size;
        iovs[i].iov_len = size;
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    double delay0 = run_delay_s();
    double t0 = now_s(), end = t0 + duration, t = t0, last_scan = t0;
    for (long i = 0; i < nsock; i++) refill(&socks[i], window, t0);
    refills = 0; /* the first fill is no refill */
    int stop = 0;

    while (!stop && t < end) {
        double wait_s = end - t < SCAN_S ? end - t : SCAN_S;
        int n = epoll_wait(ep, events, 256, (int)(wait_s * 1000) + 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        t = now_s();
        if (t >= end) break; /* answers after the end would stretch seconds: not counted */
        for (int e = 0; e < n; e++) {
            if (events[e].data.u64 == UINT64_MAX) {
                stop = 1;
                break;
            }
            struct sock *s = &socks[events[e].data.u64];
            int r = recvmmsg(s->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
                recv_errors++;
                report_once("recvmmsg", errno);
                continue;
            }
            long fresh = 0;
            for (int i = 0; i < r; i++) {
                uint32_t gen;
                if (msgs[i].msg_len < sizeof gen) continue; /* not ours: neither counted nor answered */
                responses++;
                memcpy(&gen, iovs[i].iov_base, sizeof gen);
                if (gen == s->gen) fresh++;
                else late++;
            }
            if (fresh) {
                s->inflight -= fresh;
                s->last_rx = t;
                long want = fresh + s->owed;
                s->owed = want - send_n(s, want);
            }
        }
        if (t - last_scan >= SCAN_S) {
            last_scan = t;
            for (long i = 0; i < nsock; i++) {
                struct sock *s = &socks[i];
                if (t - s->last_rx >= LOST_S) {
                    refills++;
                    refill(s, window, t);
                } else if (s->owed) {
                    s->owed -= send_n(s, s->owed);
                }
            }
        }
    }
    double secs = (t < end ? t : end) - t0;
    if (secs <= 0) secs = 1e-9;
    double cpu = cpu_s();
    double delay1 = run_delay_s();
    double waited = delay0 >= 0 && delay1 >= 0 ? delay1 - delay0 : -1;
    printf("{\"responses\":%lld,\"sent\":%lld,\"seconds\":%.6f,\"perS\":%.1f,\"refills\":%lld,\"late\":%lld,"
           "\"sendShort\":%lld,\"recvErrors\":%lld,\"cpuS\":%.3f,\"waitS\":%.3f,\"sockets\":%ld,\"window\":%ld,\"size\":%zu}\n",
           responses, sent, secs, responses / secs, refills, late, send_short, recv_errors, cpu, waited, nsock, window, size);
    fflush(stdout);
    for (long i = 0; i < nsock; i++) close(socks[i].fd);
    return responses > 0 ? 0 : 1;
}
