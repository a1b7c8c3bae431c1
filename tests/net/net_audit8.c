// SPDX-License-Identifier: MIT
/* Eighth audit of weft/net.h (public API only): adopting a descriptor that
 * a live handle owns already, ... Registered for both backends (epoll, and
 * again as uring.net.net_audit8.* with WEFT_IO_BACKEND=uring). Every
 * operation runs as a bare task joined from the test's thread; a hang
 * shows as the ctest timeout. */
#include "net_test.h"
#include "acc_timed.h"

#include <signal.h>
#include <stdlib.h>

/* net.h: weft_socket_adopt() closes the descriptor on failure; stream.h:
 * -EEXIST is "the descriptor is registered with this reactor already", and
 * such a descriptor belongs to the handle that registered it. Adopting it
 * a second time must fail without closing it under that handle: else the
 * first handle's calls fail with -EBADF, and its close later closes the
 * number again, which by then may be somebody else's descriptor. */
TEST(adopting_an_owned_socket_again_leaves_it_to_its_owner)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a, *b, *again = NULL;
    weft_io_op op;
    char buf[8];
    int fd;

    nt_tcp_pair(rt, &a, &b);
    fd = weft_socket_fd(a);
    ASSERT(fd >= 0);
    ASSERT_EQ(-EEXIST, weft_socket_adopt(rt, fd, &again));
    ASSERT(again == NULL);
    ASSERT(fcntl(fd, F_GETFD) >= 0);          /* still open */
    ASSERT_EQ(fd, weft_socket_fd(a));
    weft_write_all_init(&op, a, "ping", 4);
    ASSERT_EQ(4, nt_join_op(nt_spawn_op(rt, &op)));
    weft_read_exact_init(&op, b, buf, 4);
    ASSERT_EQ(4, nt_join_op(nt_spawn_op(rt, &op)));
    ASSERT_EQ(0, memcmp(buf, "ping", 4));
    weft_write_all_init(&op, b, "pong", 4);
    ASSERT_EQ(4, nt_join_op(nt_spawn_op(rt, &op)));
    weft_read_exact_init(&op, a, buf, 4);
    ASSERT_EQ(4, nt_join_op(nt_spawn_op(rt, &op)));
    ASSERT_EQ(0, memcmp(buf, "pong", 4));
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}

/* ---- connect_addrs: each attempt's share of the time ------------------------------- */
typedef struct dialer {
    weft_connect_host c;
    weft_socket **s;                  /* the caller's (the task holds a copy of us) */
    const weft_addrinfo *addrs;
    size_t n;
    uint64_t ms;
    bool init;
} dialer;

static weft_poll dialer_poll(dialer *d, weft_context *cx, int *out)
{
    if (!d->init) {
        weft_connect_addrs_init(&d->c, NULL, d->addrs, d->n, d->ms, d->s);
        d->init = true;
    }
    return weft_connect_host_poll(&d->c, cx, out);
}

static void dialer_drop(dialer *d)
{
    if (d->init)
        weft_connect_host_drop(&d->c);
}

WEFT_DEFINE_FUTURE(dialer, dialer_poll, dialer_drop, int);

/* net.h, connect_host: "With a limit, each attempt gets an equal share of
 * the time left, but at least 2 s (or all that is left), so that one
 * unreachable address cannot use up the time of those after it". The
 * first address never answers (a listener whose accept queue is full drops
 * our SYN), the second listens. With 4 s for both, the first attempt gets
 * 2 s and the second connects; with 1.5 s (under 2 s), the first takes all
 * of it: -ETIMEDOUT, the second never tried. */
TEST(connect_addrs_gives_each_attempt_its_share)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage a, b;
    socklen_t alen, blen;
    weft_socket *full, *good, *peer = NULL, *s = NULL;
    weft_addrinfo addrs[2];
    int fds[MAX_FILL], n, err = 12345;
    weft_io_op acc;
    dialer d;

    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &a, &alen));
    ASSERT_OK(weft_listen(rt, (struct sockaddr *)&a, alen, 1, &full));
    alen = sizeof(a);
    ASSERT_OK(weft_socket_local_addr(full, &a, &alen));
    n = nt_fill_accept_queue(weft_socket_fd(full), &a, alen, fds);
    nt_listen(rt, &good, &b, &blen);
    memset(addrs, 0, sizeof(addrs));
    addrs[0].addr = a;
    addrs[0].len = alen;
    addrs[1].addr = b;
    addrs[1].len = blen;

    d = (dialer){ .addrs = addrs, .n = 2, .ms = 4000, .s = &s };
    ASSERT_OK(weft_block_on(rt, &dialer_future, &d, &err));
    ASSERT_EQ(0, err);
    ASSERT(s != NULL);
    weft_accept_init(&acc, good, &peer, NULL, NULL);
    {
        weft_join *j;
        int r = -1;

        ASSERT_OK(weft_spawn(rt, &weft_accept_future, &acc, &j));
        ASSERT_OK(weft_join_wait(j, &r));
        weft_join_drop(j);
        ASSERT_OK(r);
    }
    ASSERT_OK(weft_socket_close(peer));
    ASSERT_OK(weft_socket_close(s));

    s = NULL;
    d = (dialer){ .addrs = addrs, .n = 2, .ms = 1500, .s = &s };
    ASSERT_OK(weft_block_on(rt, &dialer_future, &d, &err));
    ASSERT_EQ(-ETIMEDOUT, err);
    ASSERT(s == NULL);

    for (int i = 0; i < n; i++)
        close(fds[i]);
    ASSERT_OK(weft_socket_close(full));
    ASSERT_OK(weft_socket_close(good));
    weft_runtime_free(rt);
}

/* ---- the wrong operation for the socket ---------------------------------------------- */
static int accept_result(weft_runtime *rt, weft_socket *l)
{
    weft_io_op a;
    weft_socket *s = NULL;
    weft_join *j;
    int r = 12345;

    weft_accept_init(&a, l, &s, NULL, NULL);
    ASSERT_OK(weft_spawn(rt, &weft_accept_future, &a, &j));
    ASSERT_OK(weft_join_wait(j, &r));
    weft_join_drop(j);
    ASSERT(r < 0 ? s == NULL : true);
    return r;
}

/* A read or write on a listener, an accept on a connected socket or a UDP
 * socket: each completes at once with the system's negative errno (never a
 * wait, never SIGPIPE), on either backend, and the sockets stay usable. */
TEST(wrong_operations_fail_at_once)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr;
    socklen_t len;
    weft_socket *l, *a, *b, *u;
    weft_io_op op;
    char buf[8];
    ssize_t n;

    signal(SIGPIPE, SIG_DFL);
    nt_listen(rt, &l, &addr, &len);
    weft_read_init(&op, l, buf, sizeof(buf));
    n = nt_join_op(nt_spawn_op(rt, &op));
    ASSERT(n < 0);
    weft_write_init(&op, l, "x", 1);
    n = nt_join_op(nt_spawn_op(rt, &op));
    ASSERT(n < 0);
    nt_tcp_pair(rt, &a, &b);
    ASSERT_EQ(-EINVAL, accept_result(rt, a));
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &addr, &len));
    ASSERT_OK(weft_udp_bind(rt, (struct sockaddr *)&addr, len, &u));
    ASSERT_EQ(-EOPNOTSUPP, accept_result(rt, u));
    /* all still work */
    weft_write_all_init(&op, a, "ok", 2);
    ASSERT_EQ(2, nt_join_op(nt_spawn_op(rt, &op)));
    weft_read_exact_init(&op, b, buf, 2);
    ASSERT_EQ(2, nt_join_op(nt_spawn_op(rt, &op)));
    ASSERT_OK(weft_socket_close(u));
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
}

/* weft_addr_ip(): numeric hosts only, no brackets, no port, no scope. */
TEST(addr_ip_literal_forms)
{
    struct sockaddr_storage a;
    socklen_t len = 0;

    ASSERT_OK(weft_addr_ip("::ffff:127.0.0.1", 443, &a, &len));
    ASSERT_EQ(AF_INET6, a.ss_family);
    ASSERT_EQ(sizeof(struct sockaddr_in6), len);
    ASSERT_EQ(443, ntohs(((struct sockaddr_in6 *)&a)->sin6_port));
    ASSERT_OK(weft_addr_ip("::", 1, &a, &len));
    ASSERT_EQ(AF_INET6, a.ss_family);
    ASSERT_OK(weft_addr_ip("", 2, &a, &len));
    ASSERT_EQ(AF_INET, a.ss_family);
    ASSERT_EQ(INADDR_ANY, ntohl(((struct sockaddr_in *)&a)->sin_addr.s_addr));
    ASSERT_EQ(2, ntohs(((struct sockaddr_in *)&a)->sin_port));
    ASSERT_EQ(-EINVAL, weft_addr_ip("[::1]", 1, &a, &len));
    ASSERT_EQ(-EINVAL, weft_addr_ip("[::1]:80", 1, &a, &len));
    ASSERT_EQ(-EINVAL, weft_addr_ip("127.0.0.1:80", 1, &a, &len));
    ASSERT_EQ(-EINVAL, weft_addr_ip(" 127.0.0.1", 1, &a, &len));
    ASSERT_EQ(-EINVAL, weft_addr_ip("127.1", 1, &a, &len));
    ASSERT_EQ(-EINVAL, weft_addr_ip("localhost", 1, &a, &len));
    ASSERT_EQ(-EINVAL, weft_addr_ip("::1", 1, NULL, &len));
    ASSERT_EQ(-EINVAL, weft_addr_ip("::1", 1, &a, NULL));
}

/* A recv_from under a time limit: its result, or -ETIMEDOUT. */
typedef struct recv_timed {
    weft_socket *s;
    char buf[16];
    uint64_t ms;
    weft_io_op op;
    weft_timeout t;
    bool init;
    ssize_t n;
} recv_timed;

static weft_poll recv_timed_poll(recv_timed *f, weft_context *cx, ssize_t *out)
{
    int err = 0;

    if (!f->init) {
        weft_recv_from_init(&f->op, f->s, f->buf, sizeof(f->buf), NULL, NULL);
        weft_timeout_init(&f->t, &weft_io_op_future, &f->op, f->ms);
        f->init = true;
    }
    if (weft_timeout_poll(&f->t, cx, &err, &f->n) == WEFT_PENDING)
        return WEFT_PENDING;
    *out = err ? err : f->n;
    return WEFT_READY;
}

static void recv_timed_drop(recv_timed *f)
{
    if (f->init)
        weft_timeout_drop(&f->t);
}

WEFT_DEFINE_FUTURE(recv_timed, recv_timed_poll, recv_timed_drop, ssize_t);

/* net.h (since this audit): a shutdown makes a stream socket's reads see
 * end of stream, but the system reports no end for datagrams: a UDP
 * socket's receive goes on waiting after weft_socket_shutdown() (which
 * says -ENOTCONN when the socket is not connected): pinned here, on both
 * backends, so that the header's advice (abort or time out a UDP
 * receiver) stays true. */
TEST(udp_receive_keeps_waiting_after_shutdown)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr, peer;
    socklen_t len, plen;
    weft_socket *u, *c;
    ssize_t n = 12345;

    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &addr, &len));
    ASSERT_OK(weft_udp_bind(rt, (struct sockaddr *)&addr, len, &u));
    ASSERT_EQ(-ENOTCONN, weft_socket_shutdown(u, SHUT_RDWR));
    ASSERT_OK(weft_block_on(rt, &recv_timed_future, &(recv_timed){ .s = u, .ms = 100 }, &n));
    ASSERT_EQ(-ETIMEDOUT, n);
    /* connected: the shutdown works, the receive waits all the same */
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &peer, &plen));
    ASSERT_OK(weft_udp_bind(rt, (struct sockaddr *)&peer, plen, &c));
    plen = sizeof(peer);
    ASSERT_OK(weft_socket_local_addr(c, &peer, &plen));
    ASSERT_OK(weft_udp_connect(c, (struct sockaddr *)&peer, plen));
    ASSERT_OK(weft_socket_shutdown(c, SHUT_RDWR));
    n = 12345;
    ASSERT_OK(weft_block_on(rt, &recv_timed_future, &(recv_timed){ .s = c, .ms = 100 }, &n));
    ASSERT_EQ(-ETIMEDOUT, n);
    ASSERT_OK(weft_socket_close(u));
    ASSERT_OK(weft_socket_close(c));
    weft_runtime_free(rt);
}

/* To stop an accepting task without closing the listener under it (net.h,
 * "Concurrency"): weft_socket_shutdown(l, SHUT_RDWR) ends its accept, which
 * completes with the system's error (-EINVAL: not listening any more)
 * instead of waiting for ever, on both backends. */
TEST(shutdown_of_a_listener_ends_a_waiting_accept)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr;
    socklen_t len;
    weft_socket *l;
    weft_join *j;
    int r = 12345;

    nt_listen(rt, &l, &addr, &len);
    ASSERT_OK(weft_spawn(rt, &acc_timed_future, &(acc_timed){ .l = l, .ms = NT_WATCHDOG_MS },
                         &j));
    usleep(20000);                   /* most likely waiting by now; either way: */
    ASSERT_OK(weft_socket_shutdown(l, SHUT_RDWR));
    ASSERT_OK(weft_join_wait(j, &r));
    weft_join_drop(j);
    ASSERT_EQ(-EINVAL, r);
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
}
