/* SPDX-License-Identifier: MIT */
/* weft_timeout over every kind of socket future (read, read_exact,
 * write_all on a peer that never reads, accept, connect, recv_from): each
 * gives -ETIMEDOUT, and the socket is usable afterwards with nothing lost
 * or repeated. The connect timeout uses a listener whose accept queue is
 * full (the kernel drops SYNs then), so it needs no network. */
#include "net_test.h"


#define SHORT_MS 50
#define LONG_MS NT_WATCHDOG_MS

enum { K_READ, K_READ_EXACT, K_WRITE_ALL, K_ACCEPT, K_RECV_FROM };

#define WA_BYTES (8u << 20)

/* Drain a socket to end of stream, checking pattern 21; output the count. */
typedef struct drain {
    weft_async co;
    weft_socket *s;
    weft_io_op op;
    ssize_t n;
    size_t total;
    unsigned char buf[16384];
} drain;

static weft_poll drain_poll(drain *d, weft_context *cx, size_t *out)
{
    WEFT_BEGIN(&d->co);
    for (;;) {
        weft_read_init(&d->op, d->s, d->buf, sizeof(d->buf));
        WEFT_AWAIT(&d->co, weft_io_op_poll(&d->op, cx, &d->n));
        ASSERT(d->n >= 0);
        if (d->n == 0)
            break;
        ASSERT_EQ(d->n, nt_check(d->buf, (size_t)d->n, 21, d->total));
        d->total += (size_t)d->n;
    }
    *out = d->total;
    WEFT_END(&d->co);
}

static void drain_drop(drain *d)
{
    weft_io_op_drop(&d->op);
}

WEFT_DEFINE_FUTURE(drain, drain_poll, drain_drop, size_t);

typedef struct tmo_main {
    weft_async co;
    int kind;
    weft_socket *l, *c, *s, *u1, *u2, *extra;
    struct sockaddr_storage addr, u1addr, from;
    socklen_t len, u1len, fromlen;
    weft_connect conn;
    weft_accept acc;
    weft_io_op inner, op;
    weft_timeout t;
    weft_join *j;
    int err, jr, ires;
    ssize_t n;
    size_t moved, drained;
    uint64_t t0;
    char buf[64];
    unsigned char *big;
} tmo_main;

static weft_poll tmo_main_poll(tmo_main *m, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&m->co);
    nt_listen(weft_runtime_current(), &m->l, &m->addr, &m->len);
    weft_connect_init(&m->conn, NULL, (struct sockaddr *)&m->addr, m->len, 0, &m->c);
    WEFT_AWAIT(&m->co, weft_connect_poll(&m->conn, cx, &m->err));
    ASSERT_OK(m->err);
    weft_accept_init(&m->acc, m->l, &m->s, NULL, NULL);
    WEFT_AWAIT(&m->co, weft_accept_poll(&m->acc, cx, &m->err));
    ASSERT_OK(m->err);
    m->t0 = weft_now_ms();

    if (m->kind == K_READ) {
        weft_read_init(&m->inner, m->c, m->buf, sizeof(m->buf));
        weft_timeout_init(&m->t, &weft_io_op_future, &m->inner, SHORT_MS);
        WEFT_AWAIT(&m->co, weft_timeout_poll(&m->t, cx, &m->err, &m->n));
        ASSERT_EQ(-ETIMEDOUT, m->err);
        weft_timeout_drop(&m->t);
        ASSERT(weft_now_ms() - m->t0 >= SHORT_MS);
        /* the data sent afterwards comes through */
        weft_write_all_init(&m->op, m->s, "late", 4);
        WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
        ASSERT_EQ(4, m->n);
        weft_read_exact_init(&m->inner, m->c, m->buf, 4);
        weft_timeout_init(&m->t, &weft_io_op_future, &m->inner, LONG_MS);
        WEFT_AWAIT(&m->co, weft_timeout_poll(&m->t, cx, &m->err, &m->n));
        ASSERT_OK(m->err);
        ASSERT_EQ(4, m->n);
        ASSERT_EQ(0, memcmp(m->buf, "late", 4));
        weft_timeout_drop(&m->t);
    }

    if (m->kind == K_READ_EXACT) {
        weft_write_all_init(&m->op, m->s, "abc", 3);
        WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
        ASSERT_EQ(3, m->n);
        weft_read_exact_init(&m->inner, m->c, m->buf, 10);
        weft_timeout_init(&m->t, &weft_io_op_future, &m->inner, SHORT_MS);
        WEFT_AWAIT(&m->co, weft_timeout_poll(&m->t, cx, &m->err, &m->n));
        ASSERT_EQ(-ETIMEDOUT, m->err);
        weft_timeout_drop(&m->t);
        /* the part that came is in the buffer; the rest is still to come */
        m->moved = weft_io_op_moved(&m->inner);
        ASSERT(m->moved <= 3);
        weft_write_all_init(&m->op, m->s, "defghij", 7);
        WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
        ASSERT_EQ(7, m->n);
        weft_read_exact_init(&m->op, m->c, m->buf + m->moved, 10 - m->moved);
        WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
        ASSERT_EQ(10 - m->moved, m->n);
        ASSERT_EQ(0, memcmp(m->buf, "abcdefghij", 10));
    }

    if (m->kind == K_WRITE_ALL) {
        /* the peer does not read: write_all stops at the limit part-way */
        nt_buffers(weft_socket_fd(m->c), 128 << 10);
        nt_buffers(weft_socket_fd(m->s), 128 << 10);
        m->big = malloc(WA_BYTES);
        ASSERT(m->big);
        nt_fill(m->big, WA_BYTES, 21);
        weft_write_all_init(&m->inner, m->c, m->big, WA_BYTES);
        weft_timeout_init(&m->t, &weft_io_op_future, &m->inner, SHORT_MS);
        WEFT_AWAIT(&m->co, weft_timeout_poll(&m->t, cx, &m->err, &m->n));
        ASSERT_EQ(-ETIMEDOUT, m->err);
        weft_timeout_drop(&m->t);
        m->moved = weft_io_op_moved(&m->inner);
        ASSERT(m->moved < WA_BYTES);
        /* now the peer reads; the rest goes out; it gets every byte once */
        ASSERT_OK(weft_spawn(weft_runtime_current(), &drain_future, &(drain){ .s = m->s },
                             &m->j));
        weft_write_all_init(&m->op, m->c, m->big + m->moved, WA_BYTES - m->moved);
        WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
        ASSERT_EQ(WA_BYTES - m->moved, m->n);
        ASSERT_OK(weft_socket_shutdown(m->c, SHUT_WR));
        WEFT_AWAIT(&m->co, weft_join_poll(m->j, cx, &m->jr, &m->drained));
        ASSERT_OK(m->jr);
        ASSERT_EQ(WA_BYTES, m->drained);
        weft_join_drop(m->j);
        free(m->big);
    }

    if (m->kind == K_ACCEPT) {
        weft_accept_init(&m->inner, m->l, &m->extra, NULL, NULL);
        weft_timeout_init(&m->t, &weft_accept_future, &m->inner, SHORT_MS);
        WEFT_AWAIT(&m->co, weft_timeout_poll(&m->t, cx, &m->err, &m->ires));
        ASSERT_EQ(-ETIMEDOUT, m->err);
        weft_timeout_drop(&m->t);
        /* the listener still accepts */
        weft_connect_init(&m->conn, NULL, (struct sockaddr *)&m->addr, m->len, 0, &m->u1);
        WEFT_AWAIT(&m->co, weft_connect_poll(&m->conn, cx, &m->err));
        ASSERT_OK(m->err);
        weft_accept_init(&m->inner, m->l, &m->extra, NULL, NULL);
        weft_timeout_init(&m->t, &weft_accept_future, &m->inner, LONG_MS);
        WEFT_AWAIT(&m->co, weft_timeout_poll(&m->t, cx, &m->err, &m->ires));
        ASSERT_OK(m->err);
        ASSERT_OK(m->ires);
        weft_timeout_drop(&m->t);
        ASSERT_OK(weft_socket_close(m->extra));
        ASSERT_OK(weft_socket_close(m->u1));
    }

    if (m->kind == K_RECV_FROM) {
        ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &m->u1addr, &m->u1len));
        ASSERT_OK(weft_udp_bind(NULL, (struct sockaddr *)&m->u1addr, m->u1len, &m->u1));
        ASSERT_OK(weft_udp_bind(NULL, (struct sockaddr *)&m->u1addr, m->u1len, &m->u2));
        m->u1len = sizeof(m->u1addr);
        ASSERT_OK(weft_socket_local_addr(m->u1, &m->u1addr, &m->u1len));
        m->fromlen = sizeof(m->from);
        weft_recv_from_init(&m->inner, m->u1, m->buf, sizeof(m->buf), &m->from, &m->fromlen);
        weft_timeout_init(&m->t, &weft_io_op_future, &m->inner, SHORT_MS);
        WEFT_AWAIT(&m->co, weft_timeout_poll(&m->t, cx, &m->err, &m->n));
        ASSERT_EQ(-ETIMEDOUT, m->err);
        weft_timeout_drop(&m->t);
        weft_send_to_init(&m->op, m->u2, "dgram", 5, (struct sockaddr *)&m->u1addr, m->u1len);
        WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
        ASSERT_EQ(5, m->n);
        m->fromlen = sizeof(m->from);
        weft_recv_from_init(&m->inner, m->u1, m->buf, sizeof(m->buf), &m->from, &m->fromlen);
        weft_timeout_init(&m->t, &weft_io_op_future, &m->inner, LONG_MS);
        WEFT_AWAIT(&m->co, weft_timeout_poll(&m->t, cx, &m->err, &m->n));
        ASSERT_OK(m->err);
        ASSERT_EQ(5, m->n);
        ASSERT_EQ(0, memcmp(m->buf, "dgram", 5));
        ASSERT_EQ(sizeof(struct sockaddr_in), m->fromlen);
        weft_timeout_drop(&m->t);
        ASSERT_OK(weft_socket_close(m->u1));
        ASSERT_OK(weft_socket_close(m->u2));
    }

    ASSERT_LE(NT_WATCHDOG_MS, weft_now_ms() - m->t0);
    ASSERT_OK(weft_socket_close(m->c));
    ASSERT_OK(weft_socket_close(m->s));
    ASSERT_OK(weft_socket_close(m->l));
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE_VOID(tmo_main, tmo_main_poll, NULL);

TEST(timeout_read_then_usable)
{
    nt_run(false, &tmo_main_future, &(tmo_main){ .kind = K_READ });
}

TEST(timeout_read_then_usable_current_thread)
{
    nt_run(true, &tmo_main_future, &(tmo_main){ .kind = K_READ });
}

TEST(timeout_read_exact_keeps_partial_bytes)
{
    nt_run(false, &tmo_main_future, &(tmo_main){ .kind = K_READ_EXACT });
}

TEST(timeout_write_all_to_peer_that_never_reads)
{
    nt_run(false, &tmo_main_future, &(tmo_main){ .kind = K_WRITE_ALL });
}

TEST(timeout_write_all_current_thread)
{
    nt_run(true, &tmo_main_future, &(tmo_main){ .kind = K_WRITE_ALL });
}

TEST(timeout_accept_then_usable)
{
    nt_run(false, &tmo_main_future, &(tmo_main){ .kind = K_ACCEPT });
}

TEST(timeout_recv_from_then_usable)
{
    nt_run(false, &tmo_main_future, &(tmo_main){ .kind = K_RECV_FROM });
}

/* ---- connect: a listener with a full accept queue drops our SYN ------------------ */
typedef struct ctmo_main {
    weft_async co;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_connect inner;
    weft_timeout t;
    weft_socket *c;
    int err, ires;
} ctmo_main;

static weft_poll ctmo_main_poll(ctmo_main *m, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&m->co);
    /* weft_timeout over the connect future */
    weft_connect_init(&m->inner, NULL, (struct sockaddr *)&m->addr, m->len, 0, &m->c);
    weft_timeout_init(&m->t, &weft_connect_future, &m->inner, SHORT_MS);
    WEFT_AWAIT(&m->co, weft_timeout_poll(&m->t, cx, &m->err, &m->ires));
    ASSERT_EQ(-ETIMEDOUT, m->err);
    weft_timeout_drop(&m->t);
    /* and connect's own limit */
    weft_connect_init(&m->inner, NULL, (struct sockaddr *)&m->addr, m->len, SHORT_MS, &m->c);
    WEFT_AWAIT(&m->co, weft_connect_poll(&m->inner, cx, &m->err));
    ASSERT_EQ(-ETIMEDOUT, m->err);
    weft_io_op_drop(&m->inner);
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE_VOID(ctmo_main, ctmo_main_poll, NULL);

static void connect_timeout(bool current)
{
    weft_runtime *rt = nt_runtime(current);
    weft_socket *l;
    ctmo_main m = { 0 };
    int fds[MAX_FILL], n, before;

    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &m.addr, &m.len));
    ASSERT_OK(weft_listen(rt, (struct sockaddr *)&m.addr, m.len, 1, &l));
    m.len = sizeof(m.addr);
    ASSERT_OK(weft_socket_local_addr(l, &m.addr, &m.len));
    n = nt_fill_accept_queue(weft_socket_fd(l), &m.addr, m.len, fds);
    before = nt_count_fds();
    ASSERT_OK(weft_block_on(rt, &ctmo_main_future, &m, NULL));
    ASSERT_EQ(before, nt_count_fds());          /* the timed-out sockets are closed */
    for (int i = 0; i < n; i++)
        close(fds[i]);
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
}

TEST(timeout_connect_on_full_accept_queue)
{
    connect_timeout(false);
}

TEST(timeout_connect_on_full_accept_queue_current_thread)
{
    connect_timeout(true);
}
