/*
 * push.c: a C load client for bench/sink.mjs.
 *
 *   push --host 127.0.0.1 --port P --conns N --size S --duration SEC
 *
 * Opens N non-blocking connections (all connects issued first, then one level-triggered epoll
 * loop). Whenever a socket is writable it gets exactly one write() of S bytes from a static
 * buffer: one write per socket per readiness event. After SEC seconds it stops, closes every
 * socket (the kernel still delivers what is queued) and prints one JSON line:
 *
 *   {"txBytes":N,"connected":C,"failed":F,"broken":B,"durationS":D,"cpuS":U}
 *
 * txBytes counts bytes accepted by write(); failed counts connections that never connected;
 * broken counts connected sockets that failed later (EPIPE, ECONNRESET); durationS runs from the
 * first connect to the end of the last write; cpuS is this process's user+system CPU time.
 * Exit status: 0 if at least one connection connected, 1 if none did, 2 for bad arguments.
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define MAX_SIZE (16 * 1024 * 1024)
#define MAX_EVENTS 1024

static char buf[MAX_SIZE];

enum { ST_FREE = 0, ST_CONNECTING, ST_CONNECTED };

static void usage(const char *msg) {
    if (msg) fprintf(stderr, "push: %s\n", msg);
    fprintf(stderr, "usage: push --host ADDR --port P --conns N --size BYTES --duration SEC\n");
    exit(2);
}

int main(int argc, char **argv) {
    prog = "push";
    const char *host = "127.0.0.1", *port = NULL;
    long conns = 1, size = 65536;
    double duration = 5;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage("missing value after an option");
        const char *o = argv[i], *v = argv[++i];
        if (!strcmp(o, "--host")) host = v;
        else if (!strcmp(o, "--port")) { parse_ll(v, "--port", 1, 65535); port = v; }
        else if (!strcmp(o, "--conns")) conns = parse_ll(v, "--conns", 1, 1000000);
        else if (!strcmp(o, "--size")) size = parse_ll(v, "--size", 1, MAX_SIZE);
        else if (!strcmp(o, "--duration")) {
            char *end;
            duration = strtod(v, &end);
            if (*v == '\0' || *end != '\0' || !(duration > 0) || duration > 86400) usage("--duration must be seconds > 0");
        } else usage("unknown option");
    }
    if (!port) usage("--port is required");

    signal(SIGPIPE, SIG_IGN);

    size_t maxfd = raise_nofile((size_t)conns + 64);
    if ((size_t)conns + 16 > maxfd) {
        fprintf(stderr, "push: --conns %ld needs more descriptors than the open-file limit (%zu)\n", conns, maxfd);
        return 2;
    }
    unsigned char *state = calloc(maxfd, 1);
    if (!state) {
        perror("push: calloc");
        return 1;
    }
    /* Touch the pages the writes read from, so that they are real memory, not the zero page. */
    for (long i = 0; i < size; i++) buf[i] = (char)('a' + i % 26);

    struct addrinfo hints = {0}, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "push: bad --host %s: %s\n", host, gai_strerror(gai));
        return 2;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("push: epoll_create1");
        return 1;
    }

    uint64_t tx = 0;
    long connected = 0, failed = 0, broken = 0, open_now = 0;
    double t0 = now_s();
    for (long i = 0; i < conns; i++) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            report_once("socket", errno);
            failed++;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            report_once("connect", errno);
            failed++;
            close(fd);
            continue;
        }
        struct epoll_event ev = {.events = EPOLLOUT};
        ev.data.fd = fd;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            report_once("epoll_ctl", errno);
            failed++;
            close(fd);
            continue;
        }
        state[fd] = ST_CONNECTING;
        open_now++;
    }
    freeaddrinfo(ai);

    double deadline = t0 + duration, t_last = t0;
    struct epoll_event *events = malloc(sizeof(struct epoll_event) * MAX_EVENTS);
    if (!events) {
        perror("push: malloc");
        return 1;
    }
    while (open_now > 0) {
        double t = now_s();
        if (t >= deadline) break;
        int timeout_ms = (int)((deadline - t) * 1000) + 1;
        int n = epoll_wait(ep, events, MAX_EVENTS, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("push: epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (state[fd] == ST_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof err;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
                if (err) {
                    report_once("connect", err);
                    failed++;
                    state[fd] = ST_FREE;
                    open_now--;
                    close(fd);
                    continue;
                }
                state[fd] = ST_CONNECTED;
                connected++;
            }
            ssize_t w = write(fd, buf, (size_t)size);
            if (w > 0) {
                tx += (uint64_t)w;
            } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                report_once("write", errno);
                broken++;
                state[fd] = ST_FREE;
                open_now--;
                close(fd);
            }
            /* Check the clock now and then within a large batch, too. */
            if ((i & 255) == 255 && now_s() >= deadline) break;
        }
        t_last = now_s();
    }
    if (t_last < t0) t_last = t0;

    for (size_t fd = 0; fd < maxfd; fd++)
        if (state[fd] != ST_FREE) close((int)fd);
    close(ep);
    free(events);
    free(state);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("{\"txBytes\":%llu,\"connected\":%ld,\"failed\":%ld,\"broken\":%ld,\"durationS\":%.6f,\"cpuS\":%.6f}\n",
           (unsigned long long)tx, connected, failed, broken, t_last - t0, cpu);
    fflush(stdout);
    if (connected == 0) {
        fprintf(stderr, "push: no connection succeeded\n");
        return 1;
    }
    return 0;
}
