/*
 * sink.c: a single-threaded epoll TCP sink, the C reference for bench/sink.mjs.
 *
 *   sink [--host 127.0.0.1]... [--port P] [--mode read|trunc] [--ring-mb M]
 *
 * read:  read() into a 256 KiB buffer.
 *        With --ring-mb M, each read lands just after the previous one in a ring of M MiB, as
 *        reads into fresh arenas do in a garbage-collected program: the memory written was last
 *        touched M MiB ago, so with M beyond the caches every read writes cold memory.
 * trunc: recv(fd, NULL, 1 MiB, MSG_TRUNC | MSG_DONTWAIT): on Linux TCP this discards the bytes
 *        without copying them to user space.
 *
 * Level-triggered epoll; the listener is non-blocking and drained with accept4 on every wake;
 * each readable socket is read until a short read or EAGAIN (level triggering brings it back if
 * more arrived). A peer's EOF or error closes the socket.
 *
 * --host may be given up to 16 times: the sink listens on every address, on one port (with
 * --port 0, the one the kernel picked for the first address). A client spreading its connects
 * over several destination addresses gets an ephemeral-port range per address (bench/connects.mjs).
 *
 * Protocol shared by every bench server: once listening, print `READY <port>` on stdout; on
 * SIGTERM or SIGINT print `{"rxBytes":N,"accepted":A}` on stdout and exit 0.
 * Signals are taken through a signalfd in the epoll set, so no work happens in a handler.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#define READ_BUF (256 * 1024)
#define TRUNC_LEN (1 << 20)
#define MAX_EVENTS 256
#define MAX_HOSTS 16
#define BIND_TRIES 20

static char buf[READ_BUF];
static char *ring;
static size_t ring_len, ring_at;

static void usage(const char *msg) {
    if (msg) fprintf(stderr, "sink: %s\n", msg);
    fprintf(stderr, "usage: sink [--host ADDR]... [--port P] [--mode read|trunc] [--ring-mb M]\n");
    exit(2);
}

/*
 * A non-blocking listener on host:port; -1 with errno EADDRINUSE if the port is taken there, exits
 * on any other error.
 */
static int listen_on(const char *host, const char *port) {
    struct addrinfo hints = {0}, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "sink: bad --host %s: %s\n", host, gai_strerror(gai));
        exit(2);
    }
    int lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) die("setsockopt(SO_REUSEADDR)");
    if (bind(lfd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int err = errno;
        freeaddrinfo(ai);
        close(lfd);
        if (err == EADDRINUSE) return errno = err, -1;
        fprintf(stderr, "sink: bind %s:%s: %s\n", host, port, strerror(err));
        exit(1);
    }
    freeaddrinfo(ai);
    if (listen(lfd, 4096) != 0) die("listen");
    return lfd;
}

static int is_listener(int fd, const int *lfds, int n) {
    for (int i = 0; i < n; i++)
        if (lfds[i] == fd) return 1;
    return 0;
}

int main(int argc, char **argv) {
    prog = "sink";
    const char *hosts[MAX_HOSTS], *port = "0";
    int nhosts = 0;
    int trunc_mode = 0;
    long ring_mb = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage("missing value after an option");
        if (!strcmp(argv[i], "--host")) {
            if (nhosts == MAX_HOSTS) usage("at most 16 --host");
            hosts[nhosts++] = argv[++i];
        } else if (!strcmp(argv[i], "--port")) port = argv[++i];
        else if (!strcmp(argv[i], "--mode")) {
            const char *m = argv[++i];
            if (!strcmp(m, "read")) trunc_mode = 0;
            else if (!strcmp(m, "trunc")) trunc_mode = 1;
            else usage("--mode must be read or trunc");
        } else if (!strcmp(argv[i], "--ring-mb")) {
            char *e;
            ring_mb = strtol(argv[++i], &e, 10);
            if (*e != '\0' || ring_mb < 1 || ring_mb > 4096) usage("--ring-mb must be 1..4096");
        } else usage("unknown option");
    }
    char *end;
    long pnum = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || pnum < 0 || pnum > 65535) usage("--port must be 0..65535");
    if (nhosts == 0) hosts[nhosts++] = "127.0.0.1";
    if (ring_mb) {
        ring_len = (size_t)ring_mb << 20;
        ring = malloc(ring_len);
        if (!ring) die("malloc ring");
        memset(ring, 0, ring_len); /* fault it in now: the cost measured is the cache's, not the page faults' */
    }

    /* As many fds as the hard limit allows. */
    size_t maxfd = raise_nofile(1 << 20);
    /* open[fd] marks accepted sockets, so that all are closed on exit. */
    unsigned char *open_fds = calloc(maxfd, 1);
    if (!open_fds) die("calloc");

    /* The first address fixes the port; the others take the same one. When the kernel picked it
     * and it is taken on another address, start over with a new pick. */
    int lfds[MAX_HOSTS], bound_port = -1;
    for (int attempt = 0; bound_port < 0; attempt++) {
        lfds[0] = listen_on(hosts[0], port);
        if (lfds[0] < 0) {
            fprintf(stderr, "sink: bind %s:%s: %s\n", hosts[0], port, strerror(errno));
            return 1;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(lfds[0], (struct sockaddr *)&ss, &sl) != 0) die("getsockname");
        int p0 = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port);
        char pstr[8];
        snprintf(pstr, sizeof pstr, "%d", p0);
        int h = 1;
        for (; h < nhosts; h++) {
            lfds[h] = listen_on(hosts[h], pstr);
            if (lfds[h] < 0) break;
        }
        if (h == nhosts) {
            bound_port = p0;
            break;
        }
        for (int k = 0; k < h; k++) close(lfds[k]);
        if (pnum != 0 || attempt + 1 >= BIND_TRIES) {
            fprintf(stderr, "sink: bind %s:%s: %s\n", hosts[h], pstr, strerror(EADDRINUSE));
            return 1;
        }
    }

    int sfd = term_signalfd();

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN};
    for (int h = 0; h < nhosts; h++) {
        ev.data.fd = lfds[h];
        if (epoll_ctl(ep, EPOLL_CTL_ADD, lfds[h], &ev) != 0) die("epoll_ctl(listener)");
    }
    ev.data.fd = sfd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) != 0) die("epoll_ctl(signalfd)");

    printf("READY %d\n", bound_port);
    fflush(stdout);

    uint64_t rx = 0, accepted = 0;
    int listening = 1; /* 0 while the listeners are out of the set after EMFILE/ENFILE */
    int warned_emfile = 0;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == sfd) {
                struct signalfd_siginfo si;
                if (read(sfd, &si, sizeof si) != (ssize_t)sizeof si) continue;
                printf("{\"rxBytes\":%llu,\"accepted\":%llu}\n", (unsigned long long)rx, (unsigned long long)accepted);
                fflush(stdout);
                for (size_t f = 0; f < maxfd; f++)
                    if (open_fds[f]) close((int)f);
                free(open_fds);
                for (int h = 0; h < nhosts; h++) close(lfds[h]);
                close(sfd);
                close(ep);
                return 0;
            }
            if (is_listener(fd, lfds, nhosts)) {
                for (;;) {
                    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) {
                        if (errno == EINTR || errno == ECONNABORTED) continue;
                        if (errno == EMFILE || errno == ENFILE) {
                            /* Level triggering would spin: leave the listeners out until a
                             * connection closes and frees a descriptor. */
                            if (!warned_emfile) {
                                fprintf(stderr, "sink: accept4: %s (pausing accepts until a connection closes)\n", strerror(errno));
                                warned_emfile = 1;
                            }
                            for (int h = 0; h < nhosts; h++) epoll_ctl(ep, EPOLL_CTL_DEL, lfds[h], NULL);
                            listening = 0;
                        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                            fprintf(stderr, "sink: accept4: %s\n", strerror(errno));
                        }
                        break;
                    }
                    struct epoll_event cev = {.events = EPOLLIN};
                    cev.data.fd = c;
                    if ((size_t)c >= maxfd || epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) != 0) {
                        fprintf(stderr, "sink: cannot watch fd %d: %s\n", c, strerror(errno));
                        close(c);
                        continue;
                    }
                    open_fds[c] = 1;
                    accepted++;
                }
                continue;
            }
            /* A connection: read until a short read, EAGAIN, EOF or an error. */
            int closeit = 0;
            for (;;) {
                ssize_t r;
                size_t want;
                if (trunc_mode) {
                    want = TRUNC_LEN;
                    r = recv(fd, NULL, want, MSG_TRUNC | MSG_DONTWAIT);
                } else {
                    want = READ_BUF;
                    if (ring) {
                        if (ring_len - ring_at < READ_BUF) ring_at = 0;
                        r = read(fd, ring + ring_at, want);
                        if (r > 0) ring_at += (size_t)r;
                    } else {
                        r = read(fd, buf, want);
                    }
                }
                if (r > 0) {
                    rx += (uint64_t)r;
                    if ((size_t)r < want) break;
                    continue;
                }
                if (r == 0) {
                    closeit = 1;
                } else if (errno == EINTR) {
                    continue;
                } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                    if (errno != ECONNRESET) fprintf(stderr, "sink: read fd %d: %s\n", fd, strerror(errno));
                    closeit = 1;
                }
                break;
            }
            if (closeit) {
                close(fd); /* also removes it from the epoll set */
                open_fds[fd] = 0;
                if (!listening) {
                    struct epoll_event lev = {.events = EPOLLIN};
                    listening = 1;
                    for (int h = 0; h < nhosts; h++) {
                        lev.data.fd = lfds[h];
                        if (epoll_ctl(ep, EPOLL_CTL_ADD, lfds[h], &lev) != 0 && errno != EEXIST) listening = 0;
                    }
                }
            }
        }
    }
}
