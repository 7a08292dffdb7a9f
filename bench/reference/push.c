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
#include "client.h"

#define MAX_SIZE (16 * 1024 * 1024)
#define MAX_EVENTS 1024

static char buf[MAX_SIZE];

enum { ST_FREE = 0, ST_CONNECTING, ST_CONNECTED };

static const char *host = "127.0.0.1", *port = NULL;
static long conns = 1, size = 65536;
static double duration = 5;

static int take_flag(const char *o, const char *v) {
    if (!strcmp(o, "--host")) host = v;
    else if (!strcmp(o, "--port")) { parse_ll(v, "--port", 1, 65535); port = v; }
    else if (!strcmp(o, "--conns")) conns = parse_ll(v, "--conns", 1, 1000000);
    else if (!strcmp(o, "--size")) size = parse_ll(v, "--size", 1, MAX_SIZE);
    else if (!strcmp(o, "--duration")) duration = parse_seconds(v, "--duration");
    else return 0;
    return 1;
}

int main(int argc, char **argv) {
    prog = "push";
    usage_text = "push --host ADDR --port P --conns N --size BYTES --duration SEC";
    each_flag(argc, argv, take_flag);
    if (!port) usage_error("--port is required");

    signal(SIGPIPE, SIG_IGN);

    size_t maxfd = fd_limit_for(conns);
    unsigned char *state = calloc(maxfd, 1);
    if (!state) {
        perror("push: calloc");
        return 1;
    }
    /* Touch the pages the writes read from, so that they are real memory, not the zero page. */
    for (long i = 0; i < size; i++) buf[i] = (char)('a' + i % 26);

    struct addrinfo *ai = numeric_address(host, port);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");

    uint64_t tx = 0;
    long connected = 0, failed = 0, broken = 0, open_now = 0;
    double t0 = now_s();
    for (long i = 0; i < conns; i++) {
        int fd = start_connect(ai, ep, EPOLLOUT, maxfd);
        if (fd < 0) {
            failed++;
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
                int err = connect_error(fd);
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

    double cpu = cpu_seconds();
    printf("{\"txBytes\":%llu,\"connected\":%ld,\"failed\":%ld,\"broken\":%ld,\"durationS\":%.6f,\"cpuS\":%.6f}\n",
           (unsigned long long)tx, connected, failed, broken, t_last - t0, cpu);
    fflush(stdout);
    if (connected == 0) {
        fprintf(stderr, "push: no connection succeeded\n");
        return 1;
    }
    return 0;
}
