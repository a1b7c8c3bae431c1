/* SPDX-License-Identifier: MIT */
/* Zero-length operations (issue 9, item 8).
 *
 * On a stream socket, weft_read / weft_read_exact / weft_write /
 * weft_write_all of 0 bytes complete at once with 0 (as read(2) and tokio's
 * read of an empty buffer do), whatever the socket's readiness: before the
 * fix, a read of 0 on an idle connection whose readiness bit had been
 * cleared by an earlier short read parked until the peer sent something,
 * and then returned 0 (which means end of stream), and a write of 0 on a
 * full send buffer parked until it drained. Each is wrapped in a timeout
 * that fails the test if it waits.
 *
 * On a UDP socket a zero-length datagram is a real datagram: send_to of 0
 * bytes sends one and recv_from of 0 bytes receives (and consumes) one, or
 * waits for one. */
#include "net_test.h"

#define WAIT_MS 2000u                 /* "at once": far below this */
#define SHORT_MS 50u                  /* long enough to see a pending write */


static weft_socket *sa, *sb;

typedef struct zero_main {
    weft_async co;
    weft_io_op op;
    weft_timeout t;
    ssize_t n;
    int err;
    char buf[16];
} zero_main;

typedef zero_main zero_read;          /* two futures on one state struct */
typedef zero_main zero_write;

/* Await `op` (set up by the caller) under a timeout of `ms`: m->err is the
 * timeout's result, m->n the operation's. */
#define AWAIT_TIMED(m, cx, ms)                                                \
    do {                                                                      \
        (m)->n = -12345;                                                      \
        weft_timeout_init(&(m)->t, &weft_io_op_future, &(m)->op, (ms));       \
        WEFT_AWAIT(&(m)->co, weft_timeout_poll(&(m)->t, cx, &(m)->err, &(m)->n)); \
        weft_timeout_drop(&(m)->t);                                           \
    } while (0)

static weft_poll zero_read_poll(zero_read *m, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&m->co);
    /* a short read (1 of 16 bytes) marks a's read side drained */
    weft_write_all_init(&m->op, sb, "x", 1);
    AWAIT_TIMED(m, cx, WAIT_MS);
    ASSERT_OK(m->err);
    ASSERT_EQ(1, m->n);
    weft_read_init(&m->op, sa, m->buf, sizeof(m->buf));
    AWAIT_TIMED(m, cx, WAIT_MS);
    ASSERT_OK(m->err);
    ASSERT_EQ(1, m->n);

    /* nothing more comes: zero-length reads still complete at once */
    weft_read_init(&m->op, sa, m->buf, 0);
    AWAIT_TIMED(m, cx, WAIT_MS);
    ASSERT_OK(m->err);
    ASSERT_EQ(0, m->n);
    weft_read_exact_init(&m->op, sa, m->buf, 0);
    AWAIT_TIMED(m, cx, WAIT_MS);
    ASSERT_OK(m->err);
    ASSERT_EQ(0, m->n);
    weft_read_init(&m->op, sa, NULL, 0);       /* no buffer needed */
    AWAIT_TIMED(m, cx, WAIT_MS);
    ASSERT_OK(m->err);
    ASSERT_EQ(0, m->n);

    /* and they took nothing: the next byte is still there for a real read */
    weft_write_all_init(&m->op, sb, "y", 1);
    AWAIT_TIMED(m, cx, WAIT_MS);
    ASSERT_EQ(1, m->n);
    weft_read_init(&m->op, sa, m->buf, sizeof(m->buf));
    AWAIT_TIMED(m, cx, WAIT_MS);
    ASSERT_OK(m->err);
    ASSERT_EQ(1, m->n);
    ASSERT_EQ('y', m->buf[0]);
    WEFT_END(&m->co);
}

static void zero_main_drop(zero_main *m)
{
    weft_timeout_drop(&m->t);
    weft_io_op_drop(&m->op);
}

WEFT_DEFINE_FUTURE_VOID(zero_read, zero_read_poll, zero_main_drop);

static void run_pair(bool current, const weft_future_type *type)
{
    weft_runtime *rt = nt_runtime(current);
    zero_main m;

    nt_tcp_pair(rt, &sa, &sb);
    nt_small_buffers(weft_socket_fd(sa));
    memset(&m, 0, sizeof(m));
    ASSERT_OK(weft_block_on(rt, type, &m, NULL));
    ASSERT_OK(weft_socket_close(sa));
    ASSERT_OK(weft_socket_close(sb));
    weft_runtime_free(rt);
}

TEST(read_zero_on_idle_stream_returns_at_once)
{
    run_pair(false, &zero_read_future);
    run_pair(true, &zero_read_future);
}

static char big[1 << 20];

static weft_poll zero_write_poll(zero_write *m, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&m->co);
    /* fill a's send buffer (b never reads) until a write waits: its write
     * side is marked drained */
    for (;;) {
        weft_write_init(&m->op, sa, big, sizeof(big));
        AWAIT_TIMED(m, cx, SHORT_MS);
        if (m->err == -ETIMEDOUT)
            break;
        ASSERT_OK(m->err);
        ASSERT(m->n > 0);
    }
    weft_write_init(&m->op, sa, big, 0);
    AWAIT_TIMED(m, cx, WAIT_MS);
    ASSERT_OK(m->err);
    ASSERT_EQ(0, m->n);
    weft_write_all_init(&m->op, sa, NULL, 0);
    AWAIT_TIMED(m, cx, WAIT_MS);
    ASSERT_OK(m->err);
    ASSERT_EQ(0, m->n);
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE_VOID(zero_write, zero_write_poll, zero_main_drop);

TEST(write_zero_on_full_stream_returns_at_once)
{
    run_pair(false, &zero_write_future);
    run_pair(true, &zero_write_future);
}

/* Zero-length operations on a closed socket still report the close. */
TEST(zero_len_on_closed_socket_is_ebadf)
{
    weft_runtime *rt = nt_runtime(true);
    weft_socket *a, *b;
    weft_io_op op;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    ssize_t n = 0;
    weft_poll p = WEFT_PENDING;

    nt_tcp_pair(rt, &a, &b);
    weft_read_init(&op, a, NULL, 0);
    ASSERT_OK(weft_socket_close(a));
    for (int i = 0; i < 4 && p == WEFT_PENDING; i++)
        p = weft_io_op_poll(&op, &cx, &n);
    ASSERT_EQ(WEFT_READY, p);
    ASSERT_EQ(-EBADF, n);
    weft_io_op_drop(&op);
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}

/* UDP keeps the system's meaning: an empty datagram is sent, and a
 * zero-length receive takes it (and waits while none is queued). */
typedef struct udp_main {
    weft_async co;
    weft_io_op op;
    weft_timeout t;
    ssize_t n;
    int err;
    struct sockaddr_storage to, from;
    socklen_t tolen, fromlen;
    char buf[8];
} udp_main;

static weft_socket *ua, *ub;

static weft_poll udp_main_poll(udp_main *m, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&m->co);
    /* nothing queued: a zero-length receive waits */
    weft_recv_from_init(&m->op, ub, m->buf, 0, NULL, NULL);
    AWAIT_TIMED(m, cx, SHORT_MS);
    ASSERT_EQ(-ETIMEDOUT, m->err);
    /* an empty datagram, then a one-byte one */
    weft_send_to_init(&m->op, ua, m->buf, 0, (struct sockaddr *)&m->to, m->tolen);
    AWAIT_TIMED(m, cx, WAIT_MS);
    ASSERT_OK(m->err);
    ASSERT_EQ(0, m->n);
    weft_send_to_init(&m->op, ua, "z", 1, (struct sockaddr *)&m->to, m->tolen);
    AWAIT_TIMED(m, cx, WAIT_MS);
    ASSERT_OK(m->err);
    ASSERT_EQ(1, m->n);
    /* the zero-length receive takes the empty datagram... */
    m->fromlen = sizeof(m->from);
    weft_recv_from_init(&m->op, ub, m->buf, 0, &m->from, &m->fromlen);
    AWAIT_TIMED(m, cx, WAIT_MS);
    ASSERT_OK(m->err);
    ASSERT_EQ(0, m->n);
    ASSERT_EQ(AF_INET, m->from.ss_family);
    /* ...and only it */
    weft_recv_from_init(&m->op, ub, m->buf, sizeof(m->buf), NULL, NULL);
    AWAIT_TIMED(m, cx, WAIT_MS);
    ASSERT_OK(m->err);
    ASSERT_EQ(1, m->n);
    ASSERT_EQ('z', m->buf[0]);
    WEFT_END(&m->co);
}

static void udp_main_drop(udp_main *m)
{
    weft_timeout_drop(&m->t);
    weft_io_op_drop(&m->op);
}

WEFT_DEFINE_FUTURE_VOID(udp_main, udp_main_poll, udp_main_drop);

TEST(udp_zero_len_datagram_is_a_datagram)
{
    for (int current = 0; current < 2; current++) {
        weft_runtime *rt = nt_runtime(current);
        struct sockaddr_storage a;
        socklen_t len;
        udp_main m;

        memset(&m, 0, sizeof(m));
        ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &a, &len));
        ASSERT_OK(weft_udp_bind(rt, (struct sockaddr *)&a, len, &ua));
        ASSERT_OK(weft_udp_bind(rt, (struct sockaddr *)&a, len, &ub));
        m.tolen = sizeof(m.to);
        ASSERT_OK(weft_socket_local_addr(ub, &m.to, &m.tolen));
        ASSERT_OK(weft_block_on(rt, &udp_main_future, &m, NULL));
        ASSERT_OK(weft_socket_close(ua));
        ASSERT_OK(weft_socket_close(ub));
        weft_runtime_free(rt);
    }
}
