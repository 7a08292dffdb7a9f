/*
 * client.h: what the C client references (fetch.c, push.c) share, on top of common.h: their
 * `--name VALUE` flags and usage errors, the descriptor budget for N connections, the numeric
 * target address, starting a non-blocking connect on an epoll set and reading how it ended, and
 * this process's CPU time. Each program sets `prog` and `usage_text` first thing in main().
 */
#ifndef IAPP_BENCH_CLIENT_H
#define IAPP_BENCH_CLIENT_H

#include <netdb.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

/* The program's flags, shown after a usage error ("usage: <usage_text>"). */
static const char *usage_text = "";

/* A bad command line: says what is wrong and how it is used, exit 2. */
static inline void usage_error(const char *msg) {
    if (msg) fprintf(stderr, "%s: %s\n", prog, msg);
    fprintf(stderr, "usage: %s\n", usage_text);
    exit(2);
}

/*
 * Walks the `--name VALUE` pairs of the command line, calling take(name, value) for each; a flag
 * without a value, or one take() does not know (it returns 0), is a usage error.
 */
static inline void each_flag(int argc, char **argv, int (*take)(const char *name, const char *value)) {
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage_error("missing value after an option");
        const char *name = argv[i], *value = argv[++i];
        if (!take(name, value)) usage_error("unknown option");
    }
}

/* A duration flag: seconds above 0, at most a day, or a usage error naming the flag. */
static inline double parse_seconds(const char *s, const char *name) {
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v > 0) || v > 86400) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s must be seconds > 0", name);
        usage_error(msg);
    }
    return v;
}

/*
 * Raises the open-file limit for `conns` connections and returns it (the size of per-fd tables);
 * exits 2 when they cannot fit in it.
 */
static inline size_t fd_limit_for(long conns) {
    size_t maxfd = raise_nofile((size_t)conns + 64);
    if ((size_t)conns + 16 > maxfd) {
        fprintf(stderr, "%s: --conns %ld needs more descriptors than the open-file limit (%zu)\n", prog, conns, maxfd);
        exit(2);
    }
    return maxfd;
}

/* The numeric address of --host and --port (no name lookups), or exit 2. */
static inline struct addrinfo *numeric_address(const char *host, const char *port) {
    struct addrinfo hints = {0}, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "%s: bad --host %s: %s\n", prog, host, gai_strerror(gai));
        exit(2);
    }
    return ai;
}

/*
 * Starts a non-blocking connect to `ai`, registered on `ep` for `events`. Returns its fd (below
 * `maxfd`), or -1 with the error reported once: the caller counts it as failed.
 */
static inline int start_connect(const struct addrinfo *ai, int ep, uint32_t events, size_t maxfd) {
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        report_once("socket", errno);
        return -1;
    }
    if ((size_t)fd >= maxfd) {
        report_once("socket", EMFILE);
        close(fd);
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        report_once("connect", errno);
        close(fd);
        return -1;
    }
    struct epoll_event ev = {.events = events};
    ev.data.fd = fd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        report_once("epoll_ctl", errno);
        close(fd);
        return -1;
    }
    return fd;
}

/* How a connect started by start_connect() ended, once its socket is ready: 0 or an errno. */
static inline int connect_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    return err;
}

/* This process's user + system CPU time so far, in seconds. */
static inline double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

#endif
