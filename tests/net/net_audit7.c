/* SPDX-License-Identifier: MIT */
/* Seventh audit of weft/net.h (public API only), as a hostile peer and a
 * careless user: a reset in the middle of read_exact, a half-close then a
 * write, IPv6 end to end, a connect future made off a worker with a NULL
 * runtime, a thousand connections dropped in random order, accepts
 * dropped while connections arrive. Registered for both backends (epoll,
 * and again as uring.net.net_audit7.* with WEFT_IO_BACKEND=uring). Every
 * operation runs as a bare task joined from the test's thread; a hang
 * shows as the ctest timeout. */
#include "net_test.h"

#include <signal.h>
#include <stdlib.h>

static int join_int(weft_join *j)
{
    int n = -12345;

    ASSERT_OK(weft_join_wait(j, &n));
    weft_join_drop(j);
    return n;
}

/* Reset (RST) instead of FIN when fd is closed. */
static void close_with_reset(int fd)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };

    ASSERT_EQ(0, setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
    close(fd);
}

/* A read_exact task that reports its progress as well as its output. */
typedef struct exact_task {
    weft_async co;
    weft_io_op op;
    ssize_t n;
    size_t moved;
} exact_task;

static weft_poll exact_task_poll(exact_task *t, weft_context *cx, ssize_t *out)
{
    WEFT_BEGIN(&t->co);
    WEFT_AWAIT(&t->co, weft_io_op_poll(&t->op, cx, &t->n));
    t->moved = weft_io_op_moved(&t->op);
    /* the output packs both: moved in the high bits, the result below */
    *out = t->n < 0 ? (ssize_t)(t->moved << 16) | (ssize_t)(-t->n) : t->n;
    WEFT_END(&t->co);
}

static void exact_task_drop(exact_task *t)
{
    weft_io_op_drop(&t->op);
}

WEFT_DEFINE_FUTURE(exact_task, exact_task_poll, exact_task_drop, ssize_t);

/* net.h: read_exact's "Output: len, or -errno ... weft_io_op_moved() tells
 * how many came": a peer that sends part, then resets. The bytes it sent
 * before the reset are either all reported in moved (and in buf), with
 * -ECONNRESET, never silently lost or double-counted. */
TEST(reset_mid_read_exact_reports_econnreset_and_moved)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr;
    socklen_t len;
    weft_socket *l, *s = NULL;
    weft_io_op acc;
    weft_join *j;
    unsigned char part[100], buf[1000];
    int fd;
    ssize_t out;
    exact_task t = { 0 };

    nt_fill(part, sizeof(part), 7);
    memset(buf, 0, sizeof(buf));
    nt_listen(rt, &l, &addr, &len);
    fd = nt_raw_connect(&addr, len);
    weft_accept_init(&acc, l, &s, NULL, NULL);
    ASSERT_OK(weft_spawn(rt, &weft_accept_future, &acc, &j));
    ASSERT_OK(join_int(j));
    weft_read_exact_init(&t.op, s, buf, sizeof(buf));
    ASSERT_OK(weft_spawn(rt, &exact_task_future, &t, &j));
    nt_raw_write_all(fd, part, sizeof(part));
    usleep(20000);                   /* let it take the part (not needed) */
    close_with_reset(fd);
    out = nt_join_op(j);
    ASSERT(out > 0 && out != (ssize_t)sizeof(buf)); /* an error, not the len */
    ASSERT_EQ(ECONNRESET, (int)(out & 0xffff));
    /* whatever was taken is in buf, in order, and no more than was sent */
    ASSERT_LE(sizeof(part), (size_t)(out >> 16));
    ASSERT_EQ((size_t)(out >> 16), nt_check(buf, (size_t)(out >> 16), 7, 0));
    ASSERT_OK(weft_socket_close(s));
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
}

/* Half-close: after weft_socket_shutdown(SHUT_WR) a write is -EPIPE (and
 * no SIGPIPE: the default action would kill this process), the peer
 * reads end of stream, and reading our side still works. */
TEST(write_after_own_half_close_is_epipe_without_sigpipe)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a, *b;
    weft_io_op op;
    char buf[16];

    signal(SIGPIPE, SIG_DFL);
    nt_tcp_pair(rt, &a, &b);
    ASSERT_OK(weft_socket_shutdown(a, SHUT_WR));
    weft_write_init(&op, a, "x", 1);
    ASSERT_EQ(-EPIPE, nt_join_op(nt_spawn_op(rt, &op)));
    weft_write_all_init(&op, a, "xyz", 3);
    ASSERT_EQ(-EPIPE, nt_join_op(nt_spawn_op(rt, &op)));
    weft_read_init(&op, b, buf, sizeof(buf));
    ASSERT_EQ(0, nt_join_op(nt_spawn_op(rt, &op)));
    weft_write_all_init(&op, b, "back", 4);
    ASSERT_EQ(4, nt_join_op(nt_spawn_op(rt, &op)));
    weft_read_exact_init(&op, a, buf, 4);
    ASSERT_EQ(4, nt_join_op(nt_spawn_op(rt, &op)));
    ASSERT_EQ(0, memcmp(buf, "back", 4));
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}

/* A write to a socket whose peer closed (with unread data: it resets) is
 * an error (-EPIPE or -ECONNRESET) and never raises SIGPIPE. */
TEST(write_to_a_closed_peer_never_raises_sigpipe)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr;
    socklen_t len;
    weft_socket *l, *s = NULL;
    weft_io_op op;
    weft_join *j;
    int fd;
    ssize_t r = 0;
    static char data[65536];

    signal(SIGPIPE, SIG_DFL);
    nt_listen(rt, &l, &addr, &len);
    fd = nt_raw_connect(&addr, len);
    weft_accept_init(&op, l, &s, NULL, NULL);
    ASSERT_OK(weft_spawn(rt, &weft_accept_future, &op, &j));
    ASSERT_OK(join_int(j));
    nt_raw_write_all(fd, "unread", 6);
    close(fd);                       /* unread bytes: the kernel resets */
    for (int i = 0; i < 1000 && r >= 0; i++) {
        weft_write_all_init(&op, s, data, sizeof(data));
        r = nt_join_op(nt_spawn_op(rt, &op));
    }
    ASSERT(r == -EPIPE || r == -ECONNRESET);
    ASSERT_OK(weft_socket_close(s));
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
}

/* IPv6 end to end: listen on ::1, connect by address and by name
 * (connect_host of the literal), accept; the addresses are AF_INET6 with
 * sockaddr_in6's length; bytes flow both ways. */
TEST(ipv6_loopback_end_to_end)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr, peer, local;
    socklen_t len, peerlen = sizeof(peer), locallen = sizeof(local);
    weft_socket *l, *c = NULL, *s = NULL, *c2 = NULL, *s2 = NULL;
    weft_io_op op, acc;
    weft_connect_host ch;
    weft_join *jc, *ja;
    char buf[8];
    int err;

    ASSERT_OK(weft_addr_ip("::1", 0, &addr, &len));
    err = weft_listen(rt, (struct sockaddr *)&addr, len, 0, &l);
    if (err == -EADDRNOTAVAIL || err == -EAFNOSUPPORT) {
        weft_runtime_free(rt);
        harness_skip("no IPv6 loopback on this machine");
    }
    ASSERT_OK(err);
    len = sizeof(addr);
    ASSERT_OK(weft_socket_local_addr(l, &addr, &len));
    ASSERT_EQ(sizeof(struct sockaddr_in6), len);
    weft_connect_init(&op, rt, (struct sockaddr *)&addr, len, 0, &c);
    ASSERT_OK(weft_spawn(rt, &weft_connect_future, &op, &jc));
    weft_accept_init(&acc, l, &s, &peer, &peerlen);
    ASSERT_OK(weft_spawn(rt, &weft_accept_future, &acc, &ja));
    ASSERT_OK(join_int(jc));
    ASSERT_OK(join_int(ja));
    ASSERT_EQ(AF_INET6, peer.ss_family);
    ASSERT_EQ(sizeof(struct sockaddr_in6), peerlen);
    ASSERT_OK(weft_socket_local_addr(c, &local, &locallen));
    ASSERT_EQ(((struct sockaddr_in6 *)&local)->sin6_port,
              ((struct sockaddr_in6 *)&peer)->sin6_port);
    weft_write_all_init(&op, c, "six", 3);
    ASSERT_EQ(3, nt_join_op(nt_spawn_op(rt, &op)));
    weft_read_exact_init(&op, s, buf, 3);
    ASSERT_EQ(3, nt_join_op(nt_spawn_op(rt, &op)));
    ASSERT_EQ(0, memcmp(buf, "six", 3));

    weft_connect_host_init(&ch, rt, "::1", ntohs(((struct sockaddr_in6 *)&addr)->sin6_port), 0,
                           &c2);
    ASSERT_OK(weft_spawn(rt, &weft_connect_host_future, &ch, &jc));
    weft_accept_init(&acc, l, &s2, NULL, NULL);
    ASSERT_OK(weft_spawn(rt, &weft_accept_future, &acc, &ja));
    ASSERT_OK(join_int(jc));
    ASSERT_OK(join_int(ja));
    peerlen = sizeof(peer);
    ASSERT_OK(weft_socket_peer_addr(c2, &peer, &peerlen));
    ASSERT_EQ(AF_INET6, peer.ss_family);
    ASSERT_OK(weft_socket_close(c2));
    ASSERT_OK(weft_socket_close(s2));
    ASSERT_OK(weft_socket_close(c));
    ASSERT_OK(weft_socket_close(s));
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
}

/* net.h, weft_connect_init: "`rt` as above (NULL: the polling task's)".
 * A connect future made on a plain thread with rt NULL, then spawned on a
 * runtime, connects with that runtime. */
TEST(connect_with_null_runtime_made_off_a_worker)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr;
    socklen_t len;
    weft_socket *l, *c = NULL, *s = NULL;
    weft_io_op op, acc;
    weft_join *jc, *ja;

    nt_listen(rt, &l, &addr, &len);
    weft_connect_init(&op, NULL, (struct sockaddr *)&addr, len, 0, &c);
    ASSERT_OK(weft_spawn(rt, &weft_connect_future, &op, &jc));
    weft_accept_init(&acc, l, &s, NULL, NULL);
    ASSERT_OK(weft_spawn(rt, &weft_accept_future, &acc, &ja));
    ASSERT_OK(join_int(jc));
    ASSERT(c != NULL);
    ASSERT_OK(join_int(ja));
    ASSERT_OK(weft_socket_close(c));
    ASSERT_OK(weft_socket_close(s));
    /* dropped unpolled, or polled where there is no task: nothing left
     * open, nothing written to *out */
    {
        int base = nt_count_fds(), r = 1;
        weft_socket *c2 = NULL;

        weft_connect_init(&op, NULL, (struct sockaddr *)&addr, len, 50, &c2);
        weft_io_op_drop(&op);
        weft_io_op_drop(&op);
        ASSERT_EQ(base, nt_count_fds());
        weft_connect_init(&op, NULL, (struct sockaddr *)&addr, len, 0, &c2);
        ASSERT_EQ(WEFT_READY, weft_connect_poll(&op, NULL, &r));
        ASSERT_EQ(-EINVAL, r);
        weft_io_op_drop(&op);
        ASSERT_EQ(base, nt_count_fds());
        ASSERT(c2 == NULL);
    }
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
}

/* recv_from with a `from` but no `fromlen` (a careless caller): a clear
 * error or the datagram, never a crash; and no datagram is lost to it. */
TEST(recv_from_with_from_but_null_fromlen)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr, from;
    socklen_t len;
    weft_socket *u, *v;
    weft_io_op op;
    char buf[16];
    ssize_t r;

    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &addr, &len));
    ASSERT_OK(weft_udp_bind(rt, (struct sockaddr *)&addr, len, &u));
    ASSERT_OK(weft_udp_bind(rt, (struct sockaddr *)&addr, len, &v));
    len = sizeof(addr);
    ASSERT_OK(weft_socket_local_addr(u, &addr, &len));
    weft_send_to_init(&op, v, "dgram", 5, (struct sockaddr *)&addr, len);
    ASSERT_EQ(5, nt_join_op(nt_spawn_op(rt, &op)));
    weft_recv_from_init(&op, u, buf, sizeof(buf), &from, NULL);
    r = nt_join_op(nt_spawn_op(rt, &op));
    if (r < 0) {
        ASSERT_EQ(-EINVAL, r);
        /* refused before the system call: the datagram is still there */
        weft_recv_from_init(&op, u, buf, sizeof(buf), NULL, NULL);
        r = nt_join_op(nt_spawn_op(rt, &op));
    }
    ASSERT_EQ(5, r);
    ASSERT_EQ(0, memcmp(buf, "dgram", 5));
    ASSERT_OK(weft_socket_close(u));
    ASSERT_OK(weft_socket_close(v));
    weft_runtime_free(rt);
}

/* ---- a thousand connections, dropped in random order ------------------------------- */
/* A task that accepts `n` connections into an array. */
typedef struct accept_n {
    weft_async co;
    weft_socket *l;
    weft_socket **out;
    int n, i, err;
    weft_io_op acc;
} accept_n;

static weft_poll accept_n_poll(accept_n *a, weft_context *cx, int *out)
{
    WEFT_BEGIN(&a->co);
    for (a->i = 0; a->i < a->n; a->i++) {
        weft_accept_init(&a->acc, a->l, &a->out[a->i], NULL, NULL);
        WEFT_AWAIT(&a->co, weft_accept_poll(&a->acc, cx, &a->err));
        if (a->err < 0)
            break;
    }
    *out = a->err < 0 ? a->err : a->i;
    WEFT_END(&a->co);
}

static void accept_n_drop(accept_n *a)
{
    weft_io_op_drop(&a->acc);
}

WEFT_DEFINE_FUTURE(accept_n, accept_n_poll, accept_n_drop, int);

/* 1,000 clients connect, are accepted, and are closed in random order
 * (server side and client side interleaved, some with a reset), some with
 * a read pending on them; every read ends (0, -ECONNRESET or -EBADF) and
 * the process holds as many descriptors as before. */
TEST(thousand_connections_dropped_in_random_order)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr;
    socklen_t len;
    weft_socket *l;
    int n = (int)harness_scale(1000), base, *fds;
    weft_socket **ss;
    weft_join *ja, **jr;
    int *order;
    weft_io_op op;
    char buf[4];
    struct rlimit rl;

    ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur < (rlim_t)(2 * n + 64)) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)(2 * n + 64) ? rl.rlim_max : (rlim_t)(2 * n + 64);
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)(2 * n + 64))
            n = (int)(rl.rlim_cur - 64) / 2;
    }
    fds = calloc((size_t)n, sizeof(int));
    ss = calloc((size_t)n, sizeof(*ss));
    jr = calloc((size_t)n, sizeof(*jr));
    order = calloc((size_t)(2 * n), sizeof(int));
    ASSERT(fds && ss && jr && order);
    srand(12345);
    nt_listen(rt, &l, &addr, &len);
    base = nt_count_fds();
    ASSERT_OK(weft_spawn(rt, &accept_n_future, &(accept_n){ .l = l, .out = ss, .n = n }, &ja));
    for (int i = 0; i < n; i++)
        fds[i] = nt_raw_connect(&addr, len);
    ASSERT_EQ(n, join_int(ja));
    /* a read pending on every third server socket */
    for (int i = 0; i < n; i += 3) {
        weft_read_init(&op, ss[i], buf, sizeof(buf));
        jr[i] = nt_spawn_op(rt, &op);
    }
    for (int i = 0; i < 2 * n; i++)
        order[i] = i;
    for (int i = 2 * n - 1; i > 0; i--) {
        int k = rand() % (i + 1), t = order[i];

        order[i] = order[k];
        order[k] = t;
    }
    for (int i = 0; i < 2 * n; i++) {
        int k = order[i] >> 1;

        if (order[i] & 1) {
            ASSERT_OK(weft_socket_close(ss[k]));
        } else if (k % 2) {
            close_with_reset(fds[k]);
        } else {
            close(fds[k]);
        }
    }
    for (int i = 0; i < n; i += 3) {
        ssize_t r = nt_join_op(jr[i]);

        ASSERT(r == 0 || r == -ECONNRESET || r == -EBADF);
    }
    ASSERT_EQ(base, nt_count_fds());
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
    free(fds);
    free(ss);
    free(jr);
    free(order);
}

/* ---- accepts dropped while connections arrive ------------------------------------- */
/* One accept per poll until dropped: a task that each time round makes a
 * fresh accept, polls it once or twice, and drops it. */
typedef struct flaky_acceptor {
    weft_async co;
    weft_socket *l;
    weft_socket **out;
    atomic_int *count;
    int n, r;
    unsigned round;
    weft_io_op acc;
    weft_sleep nap;
} flaky_acceptor;

static weft_poll flaky_acceptor_poll(flaky_acceptor *a, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&a->co);
    while (atomic_load(a->count) < a->n) {
        a->round++;
        weft_accept_init(&a->acc, a->l, &a->out[atomic_load(a->count)], NULL, NULL);
        if (weft_accept_poll(&a->acc, cx, &a->r) == WEFT_READY) {
            ASSERT_OK(a->r);
            atomic_fetch_add(a->count, 1);
            continue;
        }
        /* pending: give up on it after a moment, as a timeout would */
        weft_sleep_init(&a->nap, a->round % 3);
        WEFT_AWAIT(&a->co, weft_sleep_poll(&a->nap, cx));
        weft_sleep_drop(&a->nap);
        if (weft_accept_poll(&a->acc, cx, &a->r) == WEFT_READY) {
            ASSERT_OK(a->r);
            atomic_fetch_add(a->count, 1);
        }
        weft_io_op_drop(&a->acc);
    }
    WEFT_END(&a->co);
}

static void flaky_acceptor_drop(flaky_acceptor *a)
{
    weft_io_op_drop(&a->acc);
    weft_sleep_drop(&a->nap);
}

WEFT_DEFINE_FUTURE_VOID(flaky_acceptor, flaky_acceptor_poll, flaky_acceptor_drop);

/* net.h, accept: "dropping it loses no connection". Clients connect one
 * by one from a thread while the server keeps dropping its accepts: every
 * connection is accepted exactly once, and after closing everything the
 * descriptor count is back where it was. */
TEST(accepts_dropped_while_connections_arrive_lose_nothing)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr;
    socklen_t len;
    weft_socket *l;
    int n = (int)harness_scale(300), base;
    int *fds = calloc((size_t)n, sizeof(int));
    weft_socket **ss = calloc((size_t)n, sizeof(*ss));
    atomic_int count = 0;
    weft_join *j;

    ASSERT(fds && ss);
    nt_listen(rt, &l, &addr, &len);
    base = nt_count_fds();
    ASSERT_OK(weft_spawn(rt, &flaky_acceptor_future,
                         &(flaky_acceptor){ .l = l, .out = ss, .count = &count, .n = n }, &j));
    for (int i = 0; i < n; i++) {
        fds[i] = nt_raw_connect(&addr, len);
        if (i % 7 == 0)
            usleep(500);
    }
    ASSERT_OK(weft_join_wait(j, NULL));
    weft_join_drop(j);
    ASSERT_EQ(n, atomic_load(&count));
    /* each accepted socket is one of ours: its peer is a distinct client */
    for (int i = 0; i < n; i++) {
        struct sockaddr_storage p;
        socklen_t pl = sizeof(p);

        ASSERT_OK(weft_socket_peer_addr(ss[i], &p, &pl));
        ASSERT_OK(weft_socket_close(ss[i]));
        close(fds[i]);
    }
    ASSERT_EQ(base, nt_count_fds());
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
    free(fds);
    free(ss);
}

/* A second read on a socket whose peer reset: the error is reported, and
 * later reads do not hang (0 or an error at once). */
TEST(reads_after_a_reset_do_not_hang)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr;
    socklen_t len;
    weft_socket *l, *s = NULL;
    weft_io_op op;
    weft_join *j;
    char buf[8];
    int fd;
    ssize_t r;

    nt_listen(rt, &l, &addr, &len);
    fd = nt_raw_connect(&addr, len);
    weft_accept_init(&op, l, &s, NULL, NULL);
    ASSERT_OK(weft_spawn(rt, &weft_accept_future, &op, &j));
    ASSERT_OK(join_int(j));
    weft_read_init(&op, s, buf, sizeof(buf));
    j = nt_spawn_op(rt, &op);
    usleep(10000);
    close_with_reset(fd);
    ASSERT_EQ(-ECONNRESET, nt_join_op(j));
    for (int i = 0; i < 3; i++) {
        weft_read_init(&op, s, buf, sizeof(buf));
        r = nt_join_op(nt_spawn_op(rt, &op));
        ASSERT(r <= 0);
        weft_write_init(&op, s, "x", 1);
        r = nt_join_op(nt_spawn_op(rt, &op));
        ASSERT(r < 0);
    }
    ASSERT_OK(weft_socket_close(s));
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
}

/* A Unix listener whose backlog is full: a connect cannot wait for room
 * (the system queues nothing and tells no one when room comes), so it
 * reports -EAGAIN at once instead of hanging until its limit (or for ever
 * without one), and leaves nothing open. */
TEST(unix_connect_to_a_full_backlog_is_eagain_not_a_hang)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr;
    socklen_t len;
    weft_socket *l, *c = (weft_socket *)0x1;
    weft_io_op op;
    weft_join *j;
    int r = 1, n = 0, fds[64], base;
    char path[64];

    snprintf(path, sizeof(path), "/tmp/weft-audit7-%d.sock", (int)getpid());
    unlink(path);
    ASSERT_OK(weft_addr_unix(path, &addr, &len));
    ASSERT_OK(weft_listen(rt, (struct sockaddr *)&addr, len, 1, &l));
    for (; n < 64; n++) {
        fds[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ASSERT(fds[n] >= 0);
        if (connect(fds[n], (struct sockaddr *)&addr, len) < 0) {
            ASSERT_EQ(EAGAIN, errno);
            close(fds[n]);
            break;
        }
    }
    ASSERT(n < 64);
    base = nt_count_fds();
    /* a limit far above "at once", so that a hang fails as -ETIMEDOUT */
    weft_connect_init(&op, rt, (struct sockaddr *)&addr, len, 20000, &c);
    ASSERT_OK(weft_spawn(rt, &weft_connect_future, &op, &j));
    ASSERT_OK(weft_join_wait(j, &r));
    weft_join_drop(j);
    ASSERT_EQ(-EAGAIN, r);
    ASSERT(c == (weft_socket *)0x1);
    ASSERT_EQ(base, nt_count_fds());
    /* room again: the next connect goes through */
    {
        weft_socket *s = NULL;
        weft_io_op acc;

        weft_accept_init(&acc, l, &s, NULL, NULL);
        ASSERT_OK(weft_spawn(rt, &weft_accept_future, &acc, &j));
        ASSERT_OK(join_int(j));
        ASSERT_OK(weft_socket_close(s));
        weft_connect_init(&op, rt, (struct sockaddr *)&addr, len, 20000, &c);
        ASSERT_OK(weft_spawn(rt, &weft_connect_future, &op, &j));
        ASSERT_OK(join_int(j));
        ASSERT_OK(weft_socket_close(c));
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    ASSERT_OK(weft_socket_close(l));
    unlink(path);
    weft_runtime_free(rt);
}

/* accept with a `peer` but no `peerlen` (a careless caller): accept4(2)
 * would take the connection and then fail with -EFAULT, closing it. A
 * clear -EINVAL before the call instead, and the connection is still
 * there for the next accept. */
TEST(accept_with_peer_but_null_peerlen_loses_no_connection)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr, peer;
    socklen_t len;
    weft_socket *l, *s = NULL;
    weft_io_op op;
    weft_join *j;
    int fd, r;
    char buf[4];

    nt_listen(rt, &l, &addr, &len);
    fd = nt_raw_connect(&addr, len);
    nt_raw_write_all(fd, "ping", 4);
    weft_accept_init(&op, l, &s, &peer, NULL);
    ASSERT_OK(weft_spawn(rt, &weft_accept_future, &op, &j));
    r = join_int(j);
    if (r < 0) {
        ASSERT_EQ(-EINVAL, r);
        ASSERT(s == NULL);
        weft_accept_init(&op, l, &s, NULL, NULL);
        ASSERT_OK(weft_spawn(rt, &weft_accept_future, &op, &j));
        r = join_int(j);
    }
    ASSERT_OK(r);
    weft_read_exact_init(&op, s, buf, 4);
    ASSERT_EQ(4, nt_join_op(nt_spawn_op(rt, &op)));
    ASSERT_EQ(0, memcmp(buf, "ping", 4));
    ASSERT_OK(weft_socket_close(s));
    close(fd);
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
}
