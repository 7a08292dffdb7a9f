/*
 * connect.c: a C connect loop, the reference for bench/connects.mjs.
 *
 *   connect [--host 127.0.0.1]... --port P --mode churn|hold --inflight K [--count N] [--duration SEC]
 *
 * One thread, level-triggered epoll, non-blocking connect(). With several --host (up to 16), the
 * connects go to them round-robin, all on port P, as iapp-clt spreads over repeated --target:
 * each destination address has an ephemeral-port range of its own.
 *
 * churn: K places, each cycling through connect -> established -> shutdown(SHUT_WR) (as iapp-clt's
 *        end() does) -> the server's FIN (read() returns 0) -> close() -> the next connect. So at
 *        most K connections are connecting or waiting for the server's close at once, the bound
 *        iapp-clt's --conns puts on --mode connect. After SEC seconds no new connect starts; the
 *        ones under way finish (at most 5 s more), so that every connection the server accepted
 *        is counted and the server's accept count reconciles exactly. With --count N, no new
 *        connect starts after N either.
 * hold:  opens N connections with at most K connecting at once and keeps them; stops when all N
 *        are established, or at SEC seconds. Failed connects are not retried.
 *
 * Prints one JSON object on stdout:
 *
 *   {"mode":M,"connects":C,"seconds":S,"perS":R,"failed":F,"errors":{"ECONNREFUSED":n,...},
 *    "cpuS":U[,"established":E]}
 *
 * connects counts established connections; seconds runs from the first connect() to the last
 * close (churn) or the last connection established (hold); perS = connects / seconds; failed
 * counts connects that did not establish and connections that broke before the server's FIN,
 * errors the same by errno name; cpuS is this process's user+system CPU over those seconds;
 * established (hold) is how many were open at the end.
 * Exit status: 0 if anything connected, 1 if nothing did, 2 for bad arguments.
 *
 * A careful client's syscalls per churned connection: socket, connect, epoll_ctl(ADD), shutdown,
 * epoll_ctl(MOD), read, close, plus its share of epoll_wait. A successful connect is known from
 * EPOLLOUT without EPOLLERR, so SO_ERROR is read only when the connect failed.
 * SIGINT/SIGTERM (through a signalfd, no work in a handler) stop the run early; the counts so
 * far are printed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define MAX_EVENTS 1024
#define DRAIN_S 5.0
#define MAX_ERRNO 4096
#define MAX_HOSTS 16
#define GIVE_UP 1000 /* failures before the first success that end the run */

enum { ST_FREE = 0, ST_CONNECTING, ST_CLOSING, ST_HELD };

static void usage(const char *msg) {
    if (msg) fprintf(stderr, "connect: %s\n", msg);
    fprintf(stderr, "usage: connect [--host ADDR]... --port P --mode churn|hold --inflight K [--count N] [--duration SEC]\n");
    exit(2);
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Failures by errno, for the "errors" object. */
static long err_count[MAX_ERRNO];
static long failed;

static void count_error(int err) {
    failed++;
    if (err > 0 && err < MAX_ERRNO) err_count[err]++;
}

static const char *errno_name(int err) {
    const char *n = strerrorname_np(err);
    return n ? n : "EUNKNOWN";
}

static struct addrinfo *targets[MAX_HOSTS];
static int ntargets;
static unsigned next_target;
static int ep;
static unsigned char *state;
static size_t maxfd;

/* Starts one non-blocking connect; returns 1 if it is under way, 0 if it failed at once. */
static int start_connect(void) {
    const struct addrinfo *target = targets[next_target++ % ntargets];
    int fd = socket(target->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        count_error(errno);
        return 0;
    }
    if ((size_t)fd >= maxfd) {
        close(fd);
        count_error(EMFILE);
        return 0;
    }
    if (connect(fd, target->ai_addr, target->ai_addrlen) != 0 && errno != EINPROGRESS) {
        count_error(errno);
        close(fd);
        return 0;
    }
    struct epoll_event ev = {.events = EPOLLOUT};
    ev.data.fd = fd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl(ADD)");
    state[fd] = ST_CONNECTING;
    return 1;
}

static void close_fd(int fd) {
    state[fd] = ST_FREE;
    close(fd); /* also leaves the epoll set */
}

int main(int argc, char **argv) {
    prog = "connect";
    const char *hosts[MAX_HOSTS], *port = NULL, *mode = NULL;
    int nhosts = 0;
    long inflight = 0, count = 0;
    double duration = 10;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage("missing value after an option");
        const char *o = argv[i], *v = argv[++i];
        if (!strcmp(o, "--host")) {
            if (nhosts == MAX_HOSTS) usage("at most 16 --host");
            hosts[nhosts++] = v;
        } else if (!strcmp(o, "--port")) { parse_ll(v, "--port", 1, 65535); port = v; }
        else if (!strcmp(o, "--mode")) mode = v;
        else if (!strcmp(o, "--inflight")) inflight = parse_ll(v, "--inflight", 1, 1000000);
        else if (!strcmp(o, "--count")) count = parse_ll(v, "--count", 1, 10000000);
        else if (!strcmp(o, "--duration")) {
            char *end;
            duration = strtod(v, &end);
            if (*v == '\0' || *end != '\0' || !(duration > 0) || duration > 86400) usage("--duration must be seconds > 0");
        } else usage("unknown option");
    }
    if (!port) usage("--port is required");
    if (!mode || (strcmp(mode, "churn") && strcmp(mode, "hold"))) usage("--mode must be churn or hold");
    if (!inflight) usage("--inflight is required");
    if (nhosts == 0) hosts[nhosts++] = "127.0.0.1";
    int hold = !strcmp(mode, "hold");
    if (hold && !count) usage("--mode hold needs --count");

    signal(SIGPIPE, SIG_IGN);

    long open_max = hold ? count : inflight;
    maxfd = raise_nofile((size_t)open_max + 64);
    if ((size_t)open_max + 16 > maxfd) {
        fprintf(stderr, "connect: %ld connections need more descriptors than the open-file limit (%zu)\n", open_max, maxfd);
        return 2;
    }
    state = calloc(maxfd, 1);
    if (!state) die("calloc");

    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    for (; ntargets < nhosts; ntargets++) {
        int gai = getaddrinfo(hosts[ntargets], port, &hints, &targets[ntargets]);
        if (gai != 0) {
            fprintf(stderr, "connect: bad --host %s: %s\n", hosts[ntargets], gai_strerror(gai));
            return 2;
        }
    }

    int sfd = term_signalfd();
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct epoll_event sev = {.events = EPOLLIN};
    sev.data.fd = sfd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev) != 0) die("epoll_ctl(signalfd)");

    long connects = 0, connecting = 0, closing = 0, started = 0;
    double cpu0 = cpu_s(), t0 = now_s(), t_end = t0;
    /* No new connect starts after `deadline`; the run ends at `stop_at` at the latest. */
    double deadline = t0 + duration, stop_at = deadline + (hold ? 0 : DRAIN_S);
    int opening = 1;
    struct epoll_event events[MAX_EVENTS];
    char scratch[512];
    for (;;) {
        /* Fill the free places. A connect that fails at once (EADDRNOTAVAIL when the ephemeral
         * ports run out) leaves its place empty: try again after a millisecond, not in a spin. */
        int backoff = 0;
        if (opening && count && started >= count) opening = 0;
        if (opening && connects == 0 && failed >= GIVE_UP) opening = 0; /* nothing listens there */
        while (opening && connecting + closing < inflight && (!count || started < count)) {
            started++;
            if (!start_connect()) {
                backoff = 1;
                break;
            }
            connecting++;
        }
        if (!opening && connecting + closing == 0) break;
        double t = now_s();
        if (opening && t >= deadline) opening = 0;
        if (t >= stop_at) break;
        int timeout_ms = backoff ? 1 : (int)(((opening ? deadline : stop_at) - t) * 1000) + 1;
        int n = epoll_wait(ep, events, MAX_EVENTS, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        int progressed = 0; /* a connection was established or closed in this batch */
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            uint32_t e = events[i].events;
            if (fd == sfd) {
                struct signalfd_siginfo si;
                if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) opening = 0, stop_at = 0;
                continue;
            }
            if (state[fd] == ST_CONNECTING) {
                connecting--;
                if (e & (EPOLLERR | EPOLLHUP)) {
                    int err = 0;
                    socklen_t el = sizeof err;
                    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
                    count_error(err ? err : ECONNABORTED);
                    close_fd(fd);
                    continue;
                }
                connects++;
                progressed = 1;
                if (hold) {
                    /* Idle from now on: out of the set, so that it costs nothing. */
                    if (epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL) != 0) die("epoll_ctl(DEL)");
                    state[fd] = ST_HELD;
                    continue;
                }
                if (shutdown(fd, SHUT_WR) != 0) {
                    count_error(errno);
                    close_fd(fd);
                    continue;
                }
                struct epoll_event ev = {.events = EPOLLIN};
                ev.data.fd = fd;
                if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) != 0) die("epoll_ctl(MOD)");
                state[fd] = ST_CLOSING;
                closing++;
            } else if (state[fd] == ST_CLOSING) {
                ssize_t r = read(fd, scratch, sizeof scratch);
                if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR))) continue;
                if (r < 0) count_error(errno); /* reset instead of the FIN */
                closing--;
                close_fd(fd);
                progressed = 1;
            }
        }
        /* Once per batch, not per event: the clock read is not free under every hypervisor. */
        if (progressed) t_end = now_s();
    }
    double cpu = cpu_s() - cpu0;
    double secs = t_end - t0;

    printf("{\"mode\":\"%s\",\"connects\":%ld,\"seconds\":%.6f,\"perS\":%.1f,\"failed\":%ld,\"errors\":{", mode, connects, secs,
           secs > 0 ? connects / secs : 0.0, failed);
    const char *sep = "";
    for (int err = 1; err < MAX_ERRNO; err++) {
        if (!err_count[err]) continue;
        printf("%s\"%s\":%ld", sep, errno_name(err), err_count[err]);
        sep = ",";
    }
    printf("},\"cpuS\":%.6f", cpu);
    if (hold) {
        long held = 0;
        for (size_t fd = 0; fd < maxfd; fd++) held += state[fd] == ST_HELD;
        printf(",\"established\":%ld", held);
    }
    printf("}\n");
    fflush(stdout);

    for (size_t fd = 0; fd < maxfd; fd++)
        if (state[fd] != ST_FREE) close((int)fd);
    close(ep);
    close(sfd);
    for (int h = 0; h < ntargets; h++) freeaddrinfo(targets[h]);
    free(state);
    if (connects == 0) {
        fprintf(stderr, "connect: no connection succeeded\n");
        return 1;
    }
    return 0;
}
