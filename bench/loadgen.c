/* SPDX-License-Identifier: MIT */
/* weft-loadgen: the load of the TCP echo benchmark (W9), in plain C.
 *
 *   weft-loadgen [--host A] [--port N] [--conns N] [--msgs N] [--size N]
 *                [--threads N] [--timeout S]
 *
 * Opens `conns` connections (default 100) to an echo server. Each connection
 * sends `msgs` messages (default 10,000) of `size` bytes (default 64), and
 * waits for the whole echo of one before it sends the next, so each
 * connection has exactly one message in flight. The connections are spread
 * over `threads` threads (default 1), each with its own epoll loop; one
 * thread keeps the load generator's share of a small machine small.
 *
 * Every echo is checked byte for byte (each message carries its connection
 * and sequence number). On success it prints one line and exits 0:
 *
 *   RESULT echo conns=100 msgs=10000 size=64 msgs_per_s=F p50_us=F p99_us=F
 *          max_us=F elapsed_s=F                                (one line)
 *
 * msgs_per_s is all round trips over the wall time from the first send to the
 * last echo; p50/p99/max are over every round trip of every connection.
 * Failures (connect, a closed or reset connection, a wrong echo, no progress
 * for `timeout` seconds, default 60) print a line to stderr and exit 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct opts {
    const char *host;
    int port;
    long conns;
    long msgs;
    long size;
    long threads;
    long timeout_s;
};

struct conn {
    int fd;
    long id;
    long seq;                  /* message being sent or awaited */
    size_t sent;               /* bytes of it written */
    size_t got;                /* bytes of its echo read */
    uint64_t t0;               /* when its first byte went out, ns */
    unsigned char *out;        /* the message */
    unsigned char *in;         /* its echo */
    float *rtt;                /* msgs round trips, µs */
    bool want_out;             /* EPOLLOUT armed after a short write */
};

struct worker {
    pthread_t thread;
    const struct opts *o;
    struct conn *conns;
    long n;                    /* connections of this thread */
    const char *error;         /* first failure, static text */
    int error_errno;
    long error_conn;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The message: connection id, sequence number, then a pattern of both. */
static void fill_msg(struct conn *c, size_t size)
{
    uint32_t head[2] = { (uint32_t)c->id, (uint32_t)c->seq };
    size_t i;

    for (i = 0; i < size; i++)
        c->out[i] = (unsigned char)(c->id * 31 + c->seq * 7 + i);
    memcpy(c->out, head, size < sizeof(head) ? size : sizeof(head));
}

static int fail(struct worker *w, struct conn *c, const char *what, int err)
{
    if (w->error == NULL) {
        w->error = what;
        w->error_errno = err;
        w->error_conn = c != NULL ? c->id : -1;
    }
    return -1;
}

static int set_events(struct worker *w, int ep, struct conn *c, bool want_out)
{
    struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c };

    if (c->want_out == want_out)
        return 0;
    c->want_out = want_out;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        return fail(w, c, "epoll_ctl", errno);
    return 0;
}

/* Writes what is left of the current message. 0: all written or the socket is
 * full (EPOLLOUT armed); -1: failed. */
static int conn_write(struct worker *w, int ep, struct conn *c)
{
    size_t size = (size_t)w->o->size;

    while (c->sent < size) {
        ssize_t n = send(c->fd, c->out + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return set_events(w, ep, c, true);
            return fail(w, c, "send", errno);
        }
        c->sent += (size_t)n;
    }
    return set_events(w, ep, c, false);
}

static int conn_start_msg(struct worker *w, int ep, struct conn *c)
{
    fill_msg(c, (size_t)w->o->size);
    c->sent = 0;
    c->got = 0;
    c->t0 = now_ns();
    return conn_write(w, ep, c);
}

/* Reads echo bytes; on a full echo, checks it, records the round trip and
 * sends the next message. Returns 1 when this connection is done, 0 to keep
 * going, -1 on failure. */
static int conn_read(struct worker *w, int ep, struct conn *c)
{
    size_t size = (size_t)w->o->size;

    for (;;) {
        ssize_t n;

        if (c->got == size) {
            uint64_t t1 = now_ns();

            if (memcmp(c->in, c->out, size) != 0)
                return fail(w, c, "echo differs from the message sent", 0);
            c->rtt[c->seq] = (float)((double)(t1 - c->t0) / 1000.0);
            if (++c->seq == w->o->msgs)
                return 1;
            /* One message in flight: its echo cannot have come yet (and
             * the epoll registration is level-triggered, so bytes that
             * come later are reported by the next epoll_wait). No recv()
             * that would only say EAGAIN. */
            return conn_start_msg(w, ep, c) < 0 ? -1 : 0;
        }
        n = recv(c->fd, c->in + c->got, size - c->got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return fail(w, c, "recv", errno);
        }
        if (n == 0)
            return fail(w, c, "server closed the connection", 0);
        c->got += (size_t)n;
        /* a short read took all there was (a stream socket): the rest of
         * the echo comes with a later event, level-triggered */
        if (c->got < size)
            return 0;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[64];
    long i, left = w->n;
    int ep;

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        fail(w, NULL, "epoll_create1", errno);
        return NULL;
    }
    for (i = 0; i < w->n; i++) {
        struct conn *c = &w->conns[i];
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
            fail(w, c, "epoll_ctl", errno);
            goto out;
        }
        if (conn_start_msg(w, ep, c) < 0)
            goto out;
    }
    while (left > 0) {
        int n = epoll_wait(ep, evs, 64, (int)(w->o->timeout_s * 1000));

        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail(w, NULL, "epoll_wait", errno);
            goto out;
        }
        if (n == 0) {
            fail(w, NULL, "no echo for --timeout seconds", 0);
            goto out;
        }
        for (i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            int r;

            if (c->seq == w->o->msgs)
                continue;                       /* done; only a late event */
            if ((evs[i].events & EPOLLOUT) && conn_write(w, ep, c) < 0)
                goto out;
            r = conn_read(w, ep, c);
            if (r < 0)
                goto out;
            if (r == 1) {
                left--;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            }
        }
    }
out:
    close(ep);
    return NULL;
}

static int connect_one(const struct opts *o, const struct sockaddr_in *sa, int *out)
{
    int one = 1, fd, tries;

    for (tries = 0;; tries++) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
            break;
        /* a server that is just starting, or a full accept queue: retry a bit */
        if ((errno == ECONNREFUSED || errno == EAGAIN || errno == ETIMEDOUT) && tries < 50) {
            close(fd);
            usleep(20000);
            continue;
        }
        close(fd);
        return -errno;
    }
    (void)o;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    *out = fd;
    return 0;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const float *v, size_t n, double p)
{
    size_t k = (size_t)((p / 100.0) * (double)n + 0.999999);

    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

static void usage(FILE *f)
{
    fprintf(f, "usage: weft-loadgen [--host A] [--port N] [--conns N] [--msgs N] "
               "[--size N] [--threads N] [--timeout S]\n"
               "  defaults: --host 127.0.0.1 --port 7000 --conns 100 --msgs 10000 "
               "--size 64 --threads 1 --timeout 60\n");
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = { "127.0.0.1", 7000, 100, 10000, 64, 1, 60 };
    struct sockaddr_in sa = { .sin_family = AF_INET };
    struct worker *ws;
    struct conn *conns;
    unsigned char *bufs;
    float *rtt;
    size_t total;
    uint64_t t_start, t_end;
    long i, port = o.port;
    int rc = 0;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        long *dst = NULL, lo = 1, hi = 1000000000;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--host") == 0) {
            o.host = argv[++i];
            continue;
        }
        if (strcmp(a, "--port") == 0)
            dst = &port, hi = 65535;
        else if (strcmp(a, "--conns") == 0)
            dst = &o.conns, hi = 100000;
        else if (strcmp(a, "--msgs") == 0)
            dst = &o.msgs;
        else if (strcmp(a, "--size") == 0)
            dst = &o.size, hi = 1 << 24;
        else if (strcmp(a, "--threads") == 0)
            dst = &o.threads, hi = 1024;
        else if (strcmp(a, "--timeout") == 0)
            dst = &o.timeout_s, hi = 86400;
        if (dst == NULL || parse_long(argv[i + 1], lo, hi, dst) < 0) {
            fprintf(stderr, "weft-loadgen: bad option '%s %s'\n", a, argv[i + 1]);
            usage(stderr);
            return 2;
        }
        i++;
    }
    o.port = (int)port;
    if (o.threads > o.conns)
        o.threads = o.conns;
    if (inet_pton(AF_INET, o.host, &sa.sin_addr) != 1) {
        fprintf(stderr, "weft-loadgen: --host wants an IPv4 address, got '%s'\n", o.host);
        return 2;
    }
    sa.sin_port = htons((uint16_t)o.port);
    if ((unsigned long)o.conns * (unsigned long)o.msgs > 500000000ul) {
        fprintf(stderr, "weft-loadgen: conns * msgs is too many round trips to record\n");
        return 2;
    }

    total = (size_t)o.conns * (size_t)o.msgs;
    conns = calloc((size_t)o.conns, sizeof(*conns));
    bufs = malloc((size_t)o.conns * 2 * (size_t)o.size);
    rtt = malloc(total * sizeof(*rtt));
    ws = calloc((size_t)o.threads, sizeof(*ws));
    if (conns == NULL || bufs == NULL || rtt == NULL || ws == NULL) {
        fprintf(stderr, "weft-loadgen: out of memory\n");
        o.conns = 0;
        rc = 1;
        goto out;
    }
    for (i = 0; i < o.conns; i++) {
        struct conn *c = &conns[i];
        int err = connect_one(&o, &sa, &c->fd);

        if (err < 0) {
            fprintf(stderr, "weft-loadgen: connect to %s:%d (connection %ld): %s\n",
                    o.host, o.port, i, strerror(-err));
            o.conns = i;                        /* close the ones opened */
            rc = 1;
            goto out;
        }
        c->id = i;
        c->out = bufs + (size_t)i * 2 * (size_t)o.size;
        c->in = c->out + o.size;
        c->rtt = rtt + (size_t)i * (size_t)o.msgs;
    }

    t_start = now_ns();
    for (i = 0; i < o.threads; i++) {
        long first = o.conns * i / o.threads, end = o.conns * (i + 1) / o.threads;
        int err;

        ws[i].o = &o;
        ws[i].conns = conns + first;
        ws[i].n = end - first;
        err = pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);
        if (err != 0) {
            fprintf(stderr, "weft-loadgen: pthread_create: %s\n", strerror(err));
            exit(1);                            /* threads already running */
        }
    }
    for (i = 0; i < o.threads; i++)
        pthread_join(ws[i].thread, NULL);
    t_end = now_ns();

    for (i = 0; i < o.threads; i++) {
        if (ws[i].error != NULL) {
            fprintf(stderr, "weft-loadgen: thread %ld, connection %ld: %s%s%s\n", i,
                    ws[i].error_conn, ws[i].error, ws[i].error_errno ? ": " : "",
                    ws[i].error_errno ? strerror(ws[i].error_errno) : "");
            rc = 1;
        }
    }
    if (rc == 0) {
        double secs = (double)(t_end - t_start) / 1e9;

        qsort(rtt, total, sizeof(*rtt), cmp_float);
        printf("RESULT echo conns=%ld msgs=%ld size=%ld msgs_per_s=%.1f p50_us=%.1f "
               "p99_us=%.1f max_us=%.1f elapsed_s=%.3f\n",
               o.conns, o.msgs, o.size, (double)total / secs, pct(rtt, total, 50),
               pct(rtt, total, 99), (double)rtt[total - 1], secs);
    }
out:
    for (i = 0; i < o.conns; i++)
        close(conns[i].fd);
    free(ws);
    free(rtt);
    free(bufs);
    free(conns);
    return rc;
}
