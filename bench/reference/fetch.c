/*
 * fetch.c: a C download client for bench/sendfile.mjs: connects, discards what the server sends
 * until it ends, and counts.
 *
 *   fetch --host 127.0.0.1 --port P --conns N [--expect BYTES] [--timeout SEC]
 *
 * Opens N non-blocking connections (all connects issued first, then one level-triggered epoll
 * loop) and sends nothing. Every readable socket is drained with recv(MSG_TRUNC | MSG_DONTWAIT)
 * (on Linux TCP this discards the bytes without copying them to user space) until EAGAIN, EOF or
 * an error; at EOF the socket is closed. It ends when every connection has ended or failed, or
 * after --timeout seconds (default 120), and prints one JSON line:
 *
 *   {"rxBytes":N,"connected":C,"failed":F,"eofs":E,"broken":B,"short":S,"minConn":a,"maxConn":b,
 *    "durationS":D,"firstByteS":T,"cpuS":U,"timedOut":0|1}
 *
 * rxBytes: bytes received on all connections; eofs: connections that ended cleanly (EOF);
 * broken: connections that failed after connecting (ECONNRESET, ...); short: with --expect,
 * connections that ended with other than BYTES bytes; minConn/maxConn: bytes of the
 * connections with the fewest and the most; durationS: from the first connect to the last EOF
 * (or failure); firstByteS: from the first connect to the first byte; cpuS: this process's
 * user+system CPU time.
 * Exit status: 0 if every connection ended cleanly (and, with --expect, with BYTES bytes), 1
 * otherwise, 2 for bad arguments.
 */
#define _GNU_SOURCE
#include "client.h"

#define MAX_EVENTS 1024
#define TRUNC_LEN (1 << 20)

enum { ST_FREE = 0, ST_CONNECTING, ST_CONNECTED };

static const char *host = "127.0.0.1", *port = NULL;
static long conns = 1;
static long long expect = -1;
static double timeout = 120;

static int take_flag(const char *o, const char *v) {
    if (!strcmp(o, "--host")) host = v;
    else if (!strcmp(o, "--port")) { parse_ll(v, "--port", 1, 65535); port = v; }
    else if (!strcmp(o, "--conns")) conns = (long)parse_ll(v, "--conns", 1, 100000);
    else if (!strcmp(o, "--expect")) expect = parse_ll(v, "--expect", 0, (long long)1 << 50);
    else if (!strcmp(o, "--timeout")) timeout = parse_seconds(v, "--timeout");
    else return 0;
    return 1;
}

int main(int argc, char **argv) {
    prog = "fetch";
    usage_text = "fetch --host ADDR --port P --conns N [--expect BYTES] [--timeout SEC]";
    each_flag(argc, argv, take_flag);
    if (!port) usage_error("--port is required");

    signal(SIGPIPE, SIG_IGN);

    size_t maxfd = fd_limit_for(conns);
    unsigned char *state = calloc(maxfd, 1);
    uint64_t *got = calloc(maxfd, sizeof(uint64_t));
    if (!state || !got) {
        perror("fetch: calloc");
        return 1;
    }

    struct addrinfo *ai = numeric_address(host, port);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");

    uint64_t rx = 0, min_conn = UINT64_MAX, max_conn = 0;
    long connected = 0, failed = 0, eofs = 0, broken = 0, shorts = 0, open_now = 0;
    int timed_out = 0;
    double t0 = now_s(), t_first = -1, t_last = t0;
    for (long i = 0; i < conns; i++) {
        /* EPOLLOUT reports the connect; EPOLLIN the data. */
        int fd = start_connect(ai, ep, EPOLLIN | EPOLLOUT, maxfd);
        if (fd < 0) {
            failed++;
            continue;
        }
        state[fd] = ST_CONNECTING;
        open_now++;
    }
    freeaddrinfo(ai);

    double deadline = t0 + timeout;
    struct epoll_event *events = malloc(sizeof(struct epoll_event) * MAX_EVENTS);
    if (!events) {
        perror("fetch: malloc");
        return 1;
    }
    while (open_now > 0) {
        double t = now_s();
        if (t >= deadline) {
            timed_out = 1;
            fprintf(stderr, "fetch: %ld connection(s) still open after %.0f s\n", open_now, timeout);
            break;
        }
        int n = epoll_wait(ep, events, MAX_EVENTS, (int)((deadline - t) * 1000) + 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("fetch: epoll_wait");
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
                /* From now on only reads matter. */
                struct epoll_event ev = {.events = EPOLLIN};
                ev.data.fd = fd;
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
            }
            if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
            int end = 0, bad = 0;
            for (;;) {
                ssize_t r = recv(fd, NULL, TRUNC_LEN, MSG_TRUNC | MSG_DONTWAIT);
                if (r > 0) {
                    if (t_first < 0) t_first = now_s();
                    rx += (uint64_t)r;
                    got[fd] += (uint64_t)r;
                    if (r < TRUNC_LEN) break;
                    continue;
                }
                if (r == 0) end = 1;
                else if (errno == EINTR) continue;
                else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                    report_once("recv", errno);
                    bad = 1;
                }
                break;
            }
            if (end || bad) {
                if (end) eofs++;
                else broken++;
                if (got[fd] < min_conn) min_conn = got[fd];
                if (got[fd] > max_conn) max_conn = got[fd];
                if (expect >= 0 && got[fd] != (uint64_t)expect) shorts++;
                got[fd] = 0;
                state[fd] = ST_FREE;
                open_now--;
                close(fd);
                t_last = now_s();
            }
        }
    }
    /* Connections still open (timed out) count with what they got so far. */
    for (size_t fd = 0; fd < maxfd; fd++) {
        if (state[fd] == ST_FREE) continue;
        if (state[fd] == ST_CONNECTED) {
            if (got[fd] < min_conn) min_conn = got[fd];
            if (got[fd] > max_conn) max_conn = got[fd];
            if (expect >= 0 && got[fd] != (uint64_t)expect) shorts++;
        }
        close((int)fd);
    }
    if (min_conn == UINT64_MAX) min_conn = 0;
    close(ep);
    free(events);
    free(state);
    free(got);

    double cpu = cpu_seconds();
    printf("{\"rxBytes\":%llu,\"connected\":%ld,\"failed\":%ld,\"eofs\":%ld,\"broken\":%ld,\"short\":%ld,"
           "\"minConn\":%llu,\"maxConn\":%llu,\"durationS\":%.6f,\"firstByteS\":%.6f,\"cpuS\":%.6f,\"timedOut\":%d}\n",
           (unsigned long long)rx, connected, failed, eofs, broken, shorts, (unsigned long long)min_conn,
           (unsigned long long)max_conn, t_last - t0, t_first < 0 ? -1.0 : t_first - t0, cpu, timed_out);
    fflush(stdout);
    return (eofs == conns && shorts == 0 && !timed_out) ? 0 : 1;
}
