/* SPDX-License-Identifier: MIT */
/* Shared pieces of the socket tests: runtimes, a loopback listener, an echo
 * server task, byte patterns, descriptor counting and blocking raw peers.
 * Everything is static (each test file is its own binary). */
#ifndef WEFT_NET_TEST_H
#define WEFT_NET_TEST_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#define NT_UNUSED __attribute__((unused))
#define NT_WATCHDOG_MS 30000u     /* generous: the machine is shared */

/* A 2-worker multi-thread runtime, or a current-thread one.
 * WEFT_TEST_WORKERS=N (by hand, not in ctest): N workers instead of 2 (1:
 * the one-issuer io_uring ring of io/uring.h). */
static NT_UNUSED weft_runtime *nt_runtime(bool current)
{
    weft_runtime *rt;
    const char *nw = getenv("WEFT_TEST_WORKERS");
    weft_runtime_options opt = { .flavor = current ? WEFT_CURRENT_THREAD : WEFT_MULTI_THREAD,
                                 .workers = current ? 0 : nw ? (unsigned)atoi(nw) : 2 };

    ASSERT_OK(weft_runtime_new(&rt, &opt));
    return rt;
}

/* Drive `init` as a root task, then whatever it left running, then free. */
static NT_UNUSED void nt_run(bool current, const weft_future_type *type, const void *init)
{
    weft_runtime *rt = nt_runtime(current);

    ASSERT_OK(weft_block_on(rt, type, init, NULL));
    ASSERT_OK(weft_runtime_run(rt));
    weft_runtime_free(rt);
}

/* An I/O future (set up by the caller) spawned on rt, and its result once
 * joined (the handle is dropped). */
static NT_UNUSED weft_join *nt_spawn_op(weft_runtime *rt, const weft_io_op *op)
{
    weft_join *j = NULL;

    ASSERT_OK(weft_spawn(rt, &weft_io_op_future, op, &j));
    return j;
}

static NT_UNUSED ssize_t nt_join_op(weft_join *j)
{
    ssize_t n = -12345;

    ASSERT_OK(weft_join_wait(j, &n));
    weft_join_drop(j);
    return n;
}

/* A loopback listener on a free port; its address (port filled in). */
static NT_UNUSED void nt_listen(weft_runtime *rt, weft_socket **l, struct sockaddr_storage *addr,
                                socklen_t *len)
{
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, addr, len));
    ASSERT_OK(weft_listen(rt, (struct sockaddr *)addr, *len, 0, l));
    *len = sizeof(*addr);
    ASSERT_OK(weft_socket_local_addr(*l, addr, len));
    ASSERT(((struct sockaddr_in *)addr)->sin_port != 0);
}

/* Byte i of the pattern of stream `seed`: distinct streams differ. */
static NT_UNUSED unsigned char nt_byte(uint32_t seed, size_t i)
{
    uint64_t x = (uint64_t)seed * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull;

    x ^= x >> 29;
    return (unsigned char)(x ^ (x >> 8));
}

static NT_UNUSED void nt_fill(void *buf, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        ((unsigned char *)buf)[i] = nt_byte(seed, i);
}

/* The first offset where buf differs from the pattern, or n. */
static NT_UNUSED size_t nt_check(const void *buf, size_t n, uint32_t seed, size_t off)
{
    for (size_t i = 0; i < n; i++)
        if (((const unsigned char *)buf)[i] != nt_byte(seed, off + i))
            return i;
    return n;
}

/* Entries of /proc/self/fd (the directory's own descriptor excluded). */
static NT_UNUSED int nt_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    ASSERT(d != NULL);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

/* A blocking raw TCP/Unix client connected to addr (the kernel completes the
 * handshake from the listen queue: no accept needed). */
static NT_UNUSED int nt_raw_connect(const struct sockaddr_storage *addr, socklen_t len)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ASSERT(fd >= 0);
    ASSERT_EQ(0, connect(fd, (const struct sockaddr *)addr, len));
    return fd;
}

/* A connected TCP pair made with plain system calls, adopted into rt. */
static NT_UNUSED void nt_tcp_pair(weft_runtime *rt, weft_socket **a, weft_socket **b)
{
    struct sockaddr_storage addr;
    socklen_t len;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c, s;

    ASSERT(l >= 0);
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &addr, &len));
    ASSERT_EQ(0, bind(l, (struct sockaddr *)&addr, len));
    ASSERT_EQ(0, listen(l, 1));
    len = sizeof(addr);
    ASSERT_EQ(0, getsockname(l, (struct sockaddr *)&addr, &len));
    c = nt_raw_connect(&addr, len);
    s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ASSERT(s >= 0);
    close(l);
    ASSERT_OK(weft_socket_adopt(rt, c, a));
    ASSERT_OK(weft_socket_adopt(rt, s, b));
}

static NT_UNUSED void nt_raw_write_all(int fd, const void *buf, size_t n)
{
    while (n) {
        ssize_t r = send(fd, buf, n, MSG_NOSIGNAL);

        ASSERT(r > 0);
        buf = (const char *)buf + r;
        n -= (size_t)r;
    }
}

static NT_UNUSED int nt_getsockopt_int(weft_socket *s, int level, int name)
{
    int v = -1, fd = weft_socket_fd(s);
    socklen_t l = sizeof(v);

    ASSERT(fd >= 0);
    ASSERT_EQ(0, getsockopt(fd, level, name, &v, &l));
    return v;
}

/* Kernel buffers of `v` bytes. Below the loopback MSS (64 KiB) a stream
 * that must still flow crawls on the persist timer: only for writers that
 * are meant to block. */
static NT_UNUSED void nt_buffers(int fd, int v)
{
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
}

/* Small kernel buffers, so that a writer blocks after a few kilobytes. */
static NT_UNUSED void nt_small_buffers(int fd)
{
    int v = 4096;

    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
}

#define MAX_FILL 32

/* Accept queue of a listening TCP socket: its length, and the most it holds
 * before the kernel drops SYNs (TCP_INFO reports them in unacked / sacked). */
static NT_UNUSED unsigned nt_acceptq(int lfd, unsigned *max)
{
    struct tcp_info ti;
    socklen_t l = sizeof(ti);

    memset(&ti, 0, sizeof(ti));
    ASSERT_EQ(0, getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &l));
    *max = ti.tcpi_sacked;
    return ti.tcpi_unacked;
}

/* Raw connects to the listener `lfd` at addr until its accept queue is
 * full (nobody accepts): a later connect's SYN is dropped, so that connect
 * stays pending. Returns how many (descriptors in fds, at most MAX_FILL). */
static NT_UNUSED int nt_fill_accept_queue(int lfd, const struct sockaddr_storage *addr,
                                          socklen_t len, int *fds)
{
    unsigned max, q;

    for (int i = 0; i < MAX_FILL; i++) {
        struct pollfd p;
        uint64_t end = harness_now_ns() + NT_WATCHDOG_MS * 1000000ull;

        q = nt_acceptq(lfd, &max);
        if (q > max)
            return i;
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ASSERT(fds[i] >= 0);
        if (connect(fds[i], (const struct sockaddr *)addr, len) < 0) {
            ASSERT_EQ(EINPROGRESS, errno);
            p = (struct pollfd){ .fd = fds[i], .events = POLLOUT };
            ASSERT_EQ(1, poll(&p, 1, (int)NT_WATCHDOG_MS));
        }
        /* the server side counts it once the handshake's last ACK is in */
        while (nt_acceptq(lfd, &max) == q) {
            ASSERT(harness_now_ns() < end);
            usleep(1000);
        }
    }
    ASSERT(!"the accept queue never filled");
    return -1;
}

/* ---- An echo connection: read and write back until end of stream ------------ */
static atomic_int nt_echo_live, nt_echo_peak, nt_echo_errors;
static atomic_llong nt_echo_bytes;

typedef struct nt_echo {
    weft_async co;
    weft_socket *s;
    weft_io_op op;
    ssize_t n;
    char buf[4096];
} nt_echo;

static weft_poll nt_echo_poll(nt_echo *e, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&e->co);
    {
        int live = atomic_fetch_add(&nt_echo_live, 1) + 1, peak = atomic_load(&nt_echo_peak);

        while (live > peak && !atomic_compare_exchange_weak(&nt_echo_peak, &peak, live))
            ;
    }
    for (;;) {
        weft_read_init(&e->op, e->s, e->buf, sizeof(e->buf));
        WEFT_AWAIT(&e->co, weft_io_op_poll(&e->op, cx, &e->n));
        if (e->n <= 0)
            break;
        atomic_fetch_add(&nt_echo_bytes, e->n);
        weft_write_all_init(&e->op, e->s, e->buf, (size_t)e->n);
        WEFT_AWAIT(&e->co, weft_io_op_poll(&e->op, cx, &e->n));
        if (e->n < 0)
            break;
    }
    if (e->n < 0)
        atomic_fetch_add(&nt_echo_errors, 1);
    atomic_fetch_sub(&nt_echo_live, 1);
    weft_io_op_drop(&e->op);
    weft_socket_close(e->s);
    e->s = NULL;
    WEFT_END(&e->co);
}

static void nt_echo_drop(nt_echo *e)
{
    weft_io_op_drop(&e->op);
    if (e->s) {
        atomic_fetch_sub(&nt_echo_live, 1);
        weft_socket_close(e->s);
    }
}

WEFT_DEFINE_FUTURE_VOID(nt_echo, nt_echo_poll, nt_echo_drop);

/* Accept `count` connections from `l`, an echo task for each (detached).
 * Output: 0, or the first accept error. The listener stays the caller's. */
typedef struct nt_acceptor {
    weft_async co;
    weft_socket *l;
    int count, done, err;
    weft_accept acc;
    weft_socket *c;
} nt_acceptor;

static weft_poll nt_acceptor_poll(nt_acceptor *a, weft_context *cx, int *out)
{
    WEFT_BEGIN(&a->co);
    for (a->done = 0; a->done < a->count; a->done++) {
        weft_accept_init(&a->acc, a->l, &a->c, NULL, NULL);
        WEFT_AWAIT(&a->co, weft_accept_poll(&a->acc, cx, &a->err));
        if (a->err < 0)
            break;
        ASSERT_OK(weft_spawn_detached(weft_runtime_current(), &nt_echo_future,
                                      &(nt_echo){ .s = a->c }));
    }
    *out = a->err;
    WEFT_END(&a->co);
}

static void nt_acceptor_drop(nt_acceptor *a)
{
    weft_io_op_drop(&a->acc);
}

WEFT_DEFINE_FUTURE(nt_acceptor, nt_acceptor_poll, nt_acceptor_drop, int);

static NT_UNUSED void nt_echo_reset(void)
{
    atomic_store(&nt_echo_live, 0);
    atomic_store(&nt_echo_peak, 0);
    atomic_store(&nt_echo_errors, 0);
    atomic_store(&nt_echo_bytes, 0);
}

#endif
