/* SPDX-License-Identifier: MIT */
/* TCP on loopback: an echo round trip through read, read_exact, write and
 * write_all (both flavours), the TCP_NODELAY / SO_REUSEADDR setters,
 * half-close, peer resets (RST) under a pending read and a pending write,
 * refused connections and a connect to a non-routable address. */
#include "net_test.h"

#include <time.h>

/* ---- a writer task: write_all of a buffer, output the result --------------- */
typedef struct writer {
    weft_async co;
    weft_socket *s;
    const void *buf;
    size_t n;
    weft_io_op op;
    ssize_t r;
} writer;

static weft_poll writer_poll(writer *w, weft_context *cx, ssize_t *out)
{
    WEFT_BEGIN(&w->co);
    weft_write_all_init(&w->op, w->s, w->buf, w->n);
    WEFT_AWAIT(&w->co, weft_io_op_poll(&w->op, cx, &w->r));
    *out = w->r;
    WEFT_END(&w->co);
}

static void writer_drop(writer *w)
{
    weft_io_op_drop(&w->op);
}

WEFT_DEFINE_FUTURE(writer, writer_poll, writer_drop, ssize_t);

/* ---- a reader task: one read, output its result ------------------------------- */
typedef struct reader {
    weft_async co;
    weft_socket *s;
    weft_io_op op;
    ssize_t r;
    char buf[256];
} reader;

static weft_poll reader_poll(reader *rd, weft_context *cx, ssize_t *out)
{
    WEFT_BEGIN(&rd->co);
    weft_read_init(&rd->op, rd->s, rd->buf, sizeof(rd->buf));
    WEFT_AWAIT(&rd->co, weft_io_op_poll(&rd->op, cx, &rd->r));
    *out = rd->r;
    WEFT_END(&rd->co);
}

static void reader_drop(reader *rd)
{
    weft_io_op_drop(&rd->op);
}

WEFT_DEFINE_FUTURE(reader, reader_poll, reader_drop, ssize_t);

/* ---- echo round trip ---------------------------------------------------------------- */
#define BIG (4u << 20)

typedef struct echo_main {
    weft_async co;
    weft_socket *l, *c;
    struct sockaddr_storage addr, peer;
    socklen_t len, plen;
    weft_join *acc_j, *wr_j;
    weft_connect conn;
    weft_io_op op;
    int err, jr, acc_out;
    ssize_t n, wr_out;
    size_t got;
    char small[64];
    unsigned char *big, *back;
} echo_main;

static weft_poll echo_main_poll(echo_main *m, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&m->co);
    nt_listen(weft_runtime_current(), &m->l, &m->addr, &m->len);
    ASSERT_OK(weft_spawn(weft_runtime_current(), &nt_acceptor_future,
                         &(nt_acceptor){ .l = m->l, .count = 1 }, &m->acc_j));
    weft_connect_init(&m->conn, NULL, (struct sockaddr *)&m->addr, m->len, 0, &m->c);
    WEFT_AWAIT(&m->co, weft_connect_poll(&m->conn, cx, &m->err));
    ASSERT_OK(m->err);
    weft_io_op_drop(&m->conn);

    /* the addresses: the peer is the listener */
    m->plen = sizeof(m->peer);
    ASSERT_OK(weft_socket_peer_addr(m->c, &m->peer, &m->plen));
    ASSERT_EQ(sizeof(struct sockaddr_in), m->plen);
    ASSERT_EQ(((struct sockaddr_in *)&m->addr)->sin_port,
              ((struct sockaddr_in *)&m->peer)->sin_port);
    m->plen = sizeof(m->peer);
    ASSERT_OK(weft_socket_local_addr(m->c, &m->peer, &m->plen));
    ASSERT(((struct sockaddr_in *)&m->peer)->sin_port != 0);

    /* setters: connect turned TCP_NODELAY on */
    ASSERT_EQ(1, nt_getsockopt_int(m->c, IPPROTO_TCP, TCP_NODELAY) != 0);
    ASSERT_OK(weft_socket_set_nodelay(m->c, false));
    ASSERT_EQ(0, nt_getsockopt_int(m->c, IPPROTO_TCP, TCP_NODELAY));
    ASSERT_OK(weft_socket_set_nodelay(m->c, true));
    ASSERT(nt_getsockopt_int(m->c, IPPROTO_TCP, TCP_NODELAY) != 0);
    ASSERT(nt_getsockopt_int(m->l, SOL_SOCKET, SO_REUSEADDR) != 0);   /* listen sets it */
    ASSERT_OK(weft_socket_set_reuseaddr(m->c, true));
    ASSERT(nt_getsockopt_int(m->c, SOL_SOCKET, SO_REUSEADDR) != 0);
    ASSERT_OK(weft_socket_set_reuseaddr(m->c, false));
    ASSERT_EQ(0, nt_getsockopt_int(m->c, SOL_SOCKET, SO_REUSEADDR));

    /* a small message: write, then read until it is all back */
    weft_write_init(&m->op, m->c, "hello, weft", 11);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(11, m->n);
    for (m->got = 0; m->got < 11; m->got += (size_t)m->n) {
        weft_read_init(&m->op, m->c, m->small + m->got, sizeof(m->small) - m->got);
        WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
        ASSERT(m->n > 0);
    }
    ASSERT_EQ(11, m->got);
    ASSERT_EQ(0, memcmp(m->small, "hello, weft", 11));

    /* a zero-length write is not an error */
    weft_write_init(&m->op, m->c, "", 0);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(0, m->n);

    /* 4 MiB: one task writes while this one reads (a split stream) */
    m->big = malloc(BIG);
    m->back = malloc(BIG);
    ASSERT(m->big && m->back);
    nt_fill(m->big, BIG, 7);
    ASSERT_OK(weft_spawn(weft_runtime_current(), &writer_future,
                         &(writer){ .s = m->c, .buf = m->big, .n = BIG }, &m->wr_j));
    weft_read_exact_init(&m->op, m->c, m->back, BIG);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(BIG, m->n);
    ASSERT_EQ(BIG, weft_io_op_moved(&m->op));
    ASSERT_EQ(BIG, nt_check(m->back, BIG, 7, 0));
    WEFT_AWAIT(&m->co, weft_join_poll(m->wr_j, cx, &m->jr, &m->wr_out));
    ASSERT_OK(m->jr);
    ASSERT_EQ(BIG, m->wr_out);
    weft_join_drop(m->wr_j);
    free(m->big);
    free(m->back);

    /* half-close ours: the server sees end of stream and closes; we read 0 */
    ASSERT_OK(weft_socket_shutdown(m->c, SHUT_WR));
    weft_read_init(&m->op, m->c, m->small, sizeof(m->small));
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(0, m->n);
    ASSERT_OK(weft_socket_close(m->c));
    WEFT_AWAIT(&m->co, weft_join_poll(m->acc_j, cx, &m->jr, &m->acc_out));
    ASSERT_OK(m->jr);
    ASSERT_OK(m->acc_out);
    weft_join_drop(m->acc_j);
    ASSERT_OK(weft_socket_close(m->l));
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE_VOID(echo_main, echo_main_poll, NULL);

static void echo_round_trip(bool current)
{
    nt_echo_reset();
    nt_run(current, &echo_main_future, &(echo_main){ 0 });
    ASSERT_EQ(0, atomic_load(&nt_echo_errors));
    ASSERT_EQ(11 + BIG, atomic_load(&nt_echo_bytes));
    ASSERT_EQ(0, atomic_load(&nt_echo_live));
}

TEST(echo_round_trip_multi_thread)
{
    echo_round_trip(false);
}

TEST(echo_round_trip_current_thread)
{
    echo_round_trip(true);
}

/* ---- half-close: the server reads to EOF, then replies ------------------------ */
#define REQ (256u << 10)
#define REPLY (100u << 10)

typedef struct hc_server {
    weft_async co;
    weft_socket *l, *s;
    weft_accept acc;
    weft_io_op op;
    int err;
    ssize_t n;
    size_t total;
    unsigned char buf[8192];
    unsigned char *reply;
} hc_server;

static weft_poll hc_server_poll(hc_server *h, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&h->co);
    weft_accept_init(&h->acc, h->l, &h->s, NULL, NULL);
    WEFT_AWAIT(&h->co, weft_accept_poll(&h->acc, cx, &h->err));
    ASSERT_OK(h->err);
    for (;;) {
        weft_read_init(&h->op, h->s, h->buf, sizeof(h->buf));
        WEFT_AWAIT(&h->co, weft_io_op_poll(&h->op, cx, &h->n));
        ASSERT(h->n >= 0);
        if (h->n == 0)
            break;
        ASSERT_EQ(h->n, nt_check(h->buf, (size_t)h->n, 11, h->total));
        h->total += (size_t)h->n;
    }
    ASSERT_EQ(REQ, h->total);
    /* end of stream seen: our direction is still open */
    h->reply = malloc(REPLY);
    ASSERT(h->reply);
    nt_fill(h->reply, REPLY, 12);
    weft_write_all_init(&h->op, h->s, h->reply, REPLY);
    WEFT_AWAIT(&h->co, weft_io_op_poll(&h->op, cx, &h->n));
    ASSERT_EQ(REPLY, h->n);
    free(h->reply);
    ASSERT_OK(weft_socket_close(h->s));
    WEFT_END(&h->co);
}

WEFT_DEFINE_FUTURE_VOID(hc_server, hc_server_poll, NULL);

typedef struct hc_main {
    weft_async co;
    weft_socket *l, *c;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_join *j;
    weft_connect conn;
    weft_io_op op;
    int err, jr;
    ssize_t n;
    unsigned char *req, *back;
} hc_main;

static weft_poll hc_main_poll(hc_main *m, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&m->co);
    nt_listen(weft_runtime_current(), &m->l, &m->addr, &m->len);
    ASSERT_OK(weft_spawn(weft_runtime_current(), &hc_server_future, &(hc_server){ .l = m->l },
                         &m->j));
    weft_connect_init(&m->conn, NULL, (struct sockaddr *)&m->addr, m->len, 0, &m->c);
    WEFT_AWAIT(&m->co, weft_connect_poll(&m->conn, cx, &m->err));
    ASSERT_OK(m->err);
    m->req = malloc(REQ);
    m->back = malloc(REPLY);
    ASSERT(m->req && m->back);
    nt_fill(m->req, REQ, 11);
    weft_write_all_init(&m->op, m->c, m->req, REQ);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(REQ, m->n);
    ASSERT_OK(weft_socket_shutdown(m->c, SHUT_WR));
    weft_read_exact_init(&m->op, m->c, m->back, REPLY);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(REPLY, m->n);
    ASSERT_EQ(REPLY, nt_check(m->back, REPLY, 12, 0));
    /* then end of stream: read gives 0, and read_exact -EPIPE with 0 moved */
    weft_read_init(&m->op, m->c, m->back, REPLY);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(0, m->n);
    weft_read_exact_init(&m->op, m->c, m->back, 10);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(-EPIPE, m->n);
    ASSERT_EQ(0, weft_io_op_moved(&m->op));
    free(m->req);
    free(m->back);
    WEFT_AWAIT(&m->co, weft_join_poll(m->j, cx, &m->jr, NULL));
    ASSERT_OK(m->jr);
    weft_join_drop(m->j);
    ASSERT_OK(weft_socket_close(m->c));
    ASSERT_OK(weft_socket_close(m->l));
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE_VOID(hc_main, hc_main_poll, NULL);

TEST(half_close_server_replies_after_eof)
{
    nt_run(false, &hc_main_future, &(hc_main){ 0 });
}

TEST(half_close_server_replies_after_eof_current_thread)
{
    nt_run(true, &hc_main_future, &(hc_main){ 0 });
}

/* read_exact that meets end of stream part-way: -EPIPE, moved tells how much */
typedef struct short_main {
    weft_async co;
    weft_socket *l, *c, *s;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_connect conn;
    weft_accept acc;
    weft_io_op op;
    int err;
    ssize_t n;
    char buf[32];
} short_main;

static weft_poll short_main_poll(short_main *m, weft_context *cx, void *out)
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
    weft_write_all_init(&m->op, m->s, "abcde", 5);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(5, m->n);
    ASSERT_OK(weft_socket_close(m->s));
    weft_read_exact_init(&m->op, m->c, m->buf, 20);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(-EPIPE, m->n);
    ASSERT_EQ(5, weft_io_op_moved(&m->op));
    ASSERT_EQ(0, memcmp(m->buf, "abcde", 5));
    ASSERT_OK(weft_socket_close(m->c));
    ASSERT_OK(weft_socket_close(m->l));
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE_VOID(short_main, short_main_poll, NULL);

TEST(read_exact_short_stream_gives_epipe_and_moved)
{
    nt_run(false, &short_main_future, &(short_main){ 0 });
}

/* ---- peer reset ------------------------------------------------------------------- */
typedef struct rst_main {
    weft_async co;
    bool pending_write;               /* else a pending read meets the RST */
    weft_socket *l, *c, *s;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_connect conn;
    weft_accept acc;
    weft_io_op op;
    weft_join *j;
    weft_sleep nap;
    int err, jr;
    ssize_t n, r;
    unsigned char *big;
} rst_main;

static weft_poll rst_main_poll(rst_main *m, weft_context *cx, void *out)
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
    if (m->pending_write) {
        /* 64 MiB into a peer that never reads: pending after a few KiB */
        nt_small_buffers(weft_socket_fd(m->s));
        nt_small_buffers(weft_socket_fd(m->c));
        m->big = calloc(1, 64u << 20);
        ASSERT(m->big);
        ASSERT_OK(weft_spawn(weft_runtime_current(), &writer_future,
                             &(writer){ .s = m->s, .buf = m->big, .n = 64u << 20 }, &m->j));
    } else {
        ASSERT_OK(weft_spawn(weft_runtime_current(), &reader_future, &(reader){ .s = m->s },
                             &m->j));
    }
    /* give the task time to wait (either order must work) */
    weft_sleep_init(&m->nap, 20);
    WEFT_AWAIT(&m->co, weft_sleep_poll(&m->nap, cx));
    weft_sleep_drop(&m->nap);
    {
        struct linger lg = { 1, 0 };

        ASSERT_OK(weft_socket_setopt(m->c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
    }
    ASSERT_OK(weft_socket_close(m->c));           /* RST */
    WEFT_AWAIT(&m->co, weft_join_poll(m->j, cx, &m->jr, &m->r));
    ASSERT_OK(m->jr);
    weft_join_drop(m->j);
    free(m->big);
    if (m->pending_write) {
        if (m->r != -ECONNRESET && m->r != -EPIPE)
            harness_fail(__FILE__, __LINE__, "write_all after RST: %zd (%s)", m->r,
                         weft_strerror((int)m->r));
    } else {
        if (m->r != -ECONNRESET && m->r != 0)
            harness_fail(__FILE__, __LINE__, "read after RST: %zd (%s)", m->r,
                         weft_strerror((int)m->r));
        /* the connection is dead either way: a write fails without SIGPIPE */
        weft_write_init(&m->op, m->s, "x", 1);
        WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
        if (m->n != -EPIPE && m->n != -ECONNRESET)
            harness_fail(__FILE__, __LINE__, "write after RST: %zd (%s)", m->n,
                         weft_strerror((int)m->n));
    }
    /* later reads keep answering (no crash, no hang) */
    weft_read_init(&m->op, m->s, &m->err, 1);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT(m->n == 0 || m->n == -ECONNRESET);
    ASSERT_OK(weft_socket_close(m->s));
    ASSERT_OK(weft_socket_close(m->l));
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE_VOID(rst_main, rst_main_poll, NULL);

TEST(peer_reset_wakes_pending_read)
{
    nt_run(false, &rst_main_future, &(rst_main){ .pending_write = false });
}

TEST(peer_reset_fails_pending_write_all)
{
    nt_run(false, &rst_main_future, &(rst_main){ .pending_write = true });
}

TEST(peer_reset_current_thread)
{
    nt_run(true, &rst_main_future, &(rst_main){ .pending_write = false });
    nt_run(true, &rst_main_future, &(rst_main){ .pending_write = true });
}

/* ---- refused, unreachable ---------------------------------------------------------- */
typedef struct conn_main {
    weft_async co;
    struct sockaddr_storage addr;
    socklen_t len;
    uint64_t timeout_ms, t0, elapsed;
    weft_connect conn;
    weft_socket *c;
    int err;
} conn_main;

static weft_poll conn_main_poll(conn_main *m, weft_context *cx, int *out)
{
    WEFT_BEGIN(&m->co);
    m->t0 = weft_now_ms();
    weft_connect_init(&m->conn, NULL, (struct sockaddr *)&m->addr, m->len, m->timeout_ms,
                      &m->c);
    WEFT_AWAIT(&m->co, weft_connect_poll(&m->conn, cx, &m->err));
    m->elapsed = weft_now_ms() - m->t0;
    weft_io_op_drop(&m->conn);
    if (m->err == 0)
        weft_socket_close(m->c);
    *out = m->err;
    WEFT_END(&m->co);
}

static void conn_main_drop(conn_main *m)
{
    weft_io_op_drop(&m->conn);
}

WEFT_DEFINE_FUTURE(conn_main, conn_main_poll, conn_main_drop, int);

/* A port that refuses: bound, never listening, held until the end. */
static int closed_port(struct sockaddr_storage *addr, socklen_t *len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ASSERT(fd >= 0);
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, addr, len));
    ASSERT_EQ(0, bind(fd, (struct sockaddr *)addr, *len));
    *len = sizeof(*addr);
    ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)addr, len));
    return fd;
}

static void refused(bool current)
{
    weft_runtime *rt = nt_runtime(current);
    conn_main m = { 0 };
    int fd = closed_port(&m.addr, &m.len), err = 1;

    ASSERT_OK(weft_block_on(rt, &conn_main_future, &m, &err));
    ASSERT_EQ(-ECONNREFUSED, err);
    m.timeout_ms = 5000;                  /* a limit does not change the answer */
    ASSERT_OK(weft_block_on(rt, &conn_main_future, &m, &err));
    ASSERT_EQ(-ECONNREFUSED, err);
    weft_runtime_free(rt);
    close(fd);
}

TEST(connect_refused_multi_thread)
{
    refused(false);
}

TEST(connect_refused_current_thread)
{
    refused(true);
}

static void unroutable(bool current)
{
    weft_runtime *rt = nt_runtime(current);
    conn_main m = { .timeout_ms = 200 };
    uint64_t t0 = weft_now_ms();
    int err = 1;

    ASSERT_OK(weft_addr_ip("10.255.255.1", 9, &m.addr, &m.len));
    ASSERT_OK(weft_block_on(rt, &conn_main_future, &m, &err));
    weft_runtime_free(rt);
    if (err == -ENETUNREACH || err == -EHOSTUNREACH || err == -EACCES || err == -EPERM ||
        err == -ECONNREFUSED) {
        printf("skip: connect to 10.255.255.1 answered at once: %s\n", weft_strerror(err));
        return;
    }
    if (err == 0) {
        /* a sandbox whose network accepts every connection (a proxy): the
         * deterministic timeout is in timeout.c (a full listen queue) */
        printf("skip: connect to 10.255.255.1 succeeded (intercepting network)\n");
        return;
    }
    ASSERT_EQ(-ETIMEDOUT, err);
    ASSERT(weft_now_ms() - t0 >= 200);            /* timers never fire early */
    ASSERT_LE(NT_WATCHDOG_MS, weft_now_ms() - t0);
}

TEST(connect_unroutable_times_out)
{
    unroutable(false);
}

TEST(connect_unroutable_times_out_current_thread)
{
    unroutable(true);
}
