/* SPDX-License-Identifier: MIT */
/* Dropping pending socket futures frees everything (the harness counts)
 * and loses nothing: a read dropped while pending, then a new read gets
 * every byte; a read_exact dropped part-way keeps its bytes in the buffer;
 * an accept dropped while pending leaves the connection for the next one; a
 * pending or never-polled connect dropped closes its socket. Also a task
 * aborted while it reads, and a runtime freed with tasks waiting on I/O. */
#include "net_test.h"

#define DBYTES (64u << 10)

typedef struct drop_main {
    weft_async co;
    weft_socket *l, *c, *s, *x;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_connect conn;
    weft_accept acc;
    weft_io_op op;
    weft_yield y;
    int err, i, tries;
    ssize_t n;
    unsigned char out[DBYTES], back[DBYTES];
} drop_main;

static weft_poll drop_main_poll(drop_main *m, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&m->co);
    nt_listen(weft_runtime_current(), &m->l, &m->addr, &m->len);

    /* accepts dropped while pending: the connection waits for the next */
    for (m->i = 0; m->i < 50; m->i++) {
        weft_accept_init(&m->acc, m->l, &m->x, NULL, NULL);
        ASSERT_EQ(WEFT_PENDING, weft_accept_poll(&m->acc, cx, &m->err));
        weft_io_op_drop(&m->acc);
        weft_io_op_drop(&m->acc);
    }
    weft_connect_init(&m->conn, NULL, (struct sockaddr *)&m->addr, m->len, 0, &m->c);
    WEFT_AWAIT(&m->co, weft_connect_poll(&m->conn, cx, &m->err));
    ASSERT_OK(m->err);
    weft_accept_init(&m->acc, m->l, &m->s, NULL, NULL);
    WEFT_AWAIT(&m->co, weft_accept_poll(&m->acc, cx, &m->err));
    ASSERT_OK(m->err);

    /* reads dropped while pending */
    for (m->i = 0; m->i < 100; m->i++) {
        weft_read_init(&m->op, m->c, m->back, sizeof(m->back));
        ASSERT_EQ(WEFT_PENDING, weft_io_op_poll(&m->op, cx, &m->n));
        weft_io_op_drop(&m->op);
    }
    /* a read_exact dropped part-way: its bytes are in the buffer */
    nt_fill(m->out, DBYTES, 44);
    weft_write_all_init(&m->op, m->s, m->out, 100);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(100, m->n);
    weft_read_exact_init(&m->op, m->c, m->back, 1000);
    for (m->tries = 0;; m->tries++) {
        ASSERT_EQ(WEFT_PENDING, weft_io_op_poll(&m->op, cx, &m->n));
        if (weft_io_op_moved(&m->op) == 100)
            break;
        ASSERT(m->tries < 100000);
        WEFT_YIELD(&m->co, &m->y, cx);
    }
    weft_io_op_drop(&m->op);
    ASSERT_EQ(100, weft_io_op_moved(&m->op));
    ASSERT_EQ(100, nt_check(m->back, 100, 44, 0));
    /* the rest, after more dropped reads, comes whole and in order */
    for (m->i = 0; m->i < 10; m->i++) {
        weft_read_init(&m->op, m->c, m->back, sizeof(m->back));
        ASSERT_EQ(WEFT_PENDING, weft_io_op_poll(&m->op, cx, &m->n));
        weft_io_op_drop(&m->op);
    }
    weft_write_all_init(&m->op, m->s, m->out + 100, DBYTES - 100);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(DBYTES - 100, m->n);
    memset(m->back, 0, sizeof(m->back));
    weft_read_exact_init(&m->op, m->c, m->back + 100, DBYTES - 100);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(DBYTES - 100, m->n);
    ASSERT_EQ(DBYTES - 100, nt_check(m->back + 100, DBYTES - 100, 44, 100));

    /* a write dropped before its first poll writes nothing */
    weft_write_all_init(&m->op, m->s, "never", 5);
    weft_io_op_drop(&m->op);
    ASSERT_EQ(WEFT_READY, weft_io_op_poll(&m->op, cx, &m->n));   /* a dropped op is done */
    weft_write_all_init(&m->op, m->s, "Z", 1);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(1, m->n);
    weft_read_init(&m->op, m->c, m->back, sizeof(m->back));
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(1, m->n);
    ASSERT_EQ('Z', m->back[0]);

    /* connects dropped before their first poll (the listener queues them) */
    for (m->i = 0; m->i < 20; m->i++) {
        weft_connect_init(&m->conn, NULL, (struct sockaddr *)&m->addr, m->len, 0, &m->x);
        weft_io_op_drop(&m->conn);
        weft_io_op_drop(&m->conn);
    }
    ASSERT_OK(weft_socket_close(m->c));
    ASSERT_OK(weft_socket_close(m->s));
    ASSERT_OK(weft_socket_close(m->l));
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE_VOID(drop_main, drop_main_poll, NULL);

static void dropped(bool current)
{
    int before = nt_count_fds();
    drop_main *m = calloc(1, sizeof(*m));

    ASSERT(m);
    nt_run(current, &drop_main_future, m);
    free(m);
    ASSERT_EQ(before, nt_count_fds());
}

TEST(dropped_accept_read_write_connect_lose_nothing)
{
    dropped(false);
}

TEST(dropped_accept_read_write_connect_lose_nothing_current_thread)
{
    dropped(true);
}

/* A connect dropped while its SYN waits (the listener's queue is full). */
typedef struct pconn {
    weft_async co;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_connect conn;
    weft_socket *c;
    weft_sleep nap;
    int err, i;
} pconn;

static weft_poll pconn_poll(pconn *p, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&p->co);
    for (p->i = 0; p->i < 20; p->i++) {
        weft_connect_init(&p->conn, NULL, (struct sockaddr *)&p->addr, p->len,
                          p->i % 2 ? 60000 : 0, &p->c);
        ASSERT_EQ(WEFT_PENDING, weft_connect_poll(&p->conn, cx, &p->err));
        weft_sleep_init(&p->nap, 1);
        WEFT_AWAIT(&p->co, weft_sleep_poll(&p->nap, cx));
        weft_sleep_drop(&p->nap);
        weft_io_op_drop(&p->conn);
    }
    WEFT_END(&p->co);
}

WEFT_DEFINE_FUTURE_VOID(pconn, pconn_poll, NULL);

TEST(dropped_pending_connect_closes_its_socket)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *l;
    pconn p = { 0 };
    int fds[MAX_FILL], n, before;

    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &p.addr, &p.len));
    ASSERT_OK(weft_listen(rt, (struct sockaddr *)&p.addr, p.len, 1, &l));
    p.len = sizeof(p.addr);
    ASSERT_OK(weft_socket_local_addr(l, &p.addr, &p.len));
    n = nt_fill_accept_queue(weft_socket_fd(l), &p.addr, p.len, fds);
    before = nt_count_fds();
    ASSERT_OK(weft_block_on(rt, &pconn_future, &p, NULL));
    ASSERT_EQ(before, nt_count_fds());
    for (int i = 0; i < n; i++)
        close(fds[i]);
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
}

/* ---- a task aborted while it reads; a runtime freed under waiting tasks ------- */
static int reading;

typedef struct rtask {
    weft_socket *s, *x;
    bool owns;                        /* close s in drop */
    bool accept;                      /* s is a listener: accept instead */
    weft_io_op op;
    bool started;
    char buf[16];
} rtask;

static weft_poll rtask_poll(rtask *t, weft_context *cx, void *out)
{
    ssize_t n;
    int err;
    weft_poll p;

    (void)out;
    if (!t->started) {
        if (t->accept)
            weft_accept_init(&t->op, t->s, &t->x, NULL, NULL);
        else
            weft_read_init(&t->op, t->s, t->buf, sizeof(t->buf));
        t->started = true;
    }
    p = t->accept ? weft_accept_poll(&t->op, cx, &err) : weft_io_op_poll(&t->op, cx, &n);
    if (p == WEFT_PENDING) {
        __atomic_store_n(&reading, 1, __ATOMIC_RELEASE);
        return WEFT_PENDING;
    }
    ASSERT(!"the reader got something");
    return WEFT_READY;
}

static void rtask_drop(rtask *t)
{
    weft_io_op_drop(&t->op);
    if (t->owns)
        weft_socket_close(t->s);
}

WEFT_DEFINE_FUTURE_VOID(rtask, rtask_poll, rtask_drop);

typedef struct readall {
    weft_async co;
    weft_socket *s;
    weft_io_op op;
    ssize_t n;
    char buf[5];
} readall;

static weft_poll readall_poll(readall *r, weft_context *cx, ssize_t *out)
{
    WEFT_BEGIN(&r->co);
    weft_read_exact_init(&r->op, r->s, r->buf, 5);
    WEFT_AWAIT(&r->co, weft_io_op_poll(&r->op, cx, &r->n));
    if (r->n == 5 && memcmp(r->buf, "after", 5) != 0)
        r->n = -EILSEQ;
    *out = r->n;
    WEFT_END(&r->co);
}

static void readall_drop(readall *r)
{
    weft_io_op_drop(&r->op);
}

WEFT_DEFINE_FUTURE(readall, readall_poll, readall_drop, ssize_t);

static void raw_pair(weft_runtime *rt, weft_socket **a, int *raw)
{
    int sv[2];

    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    ASSERT_OK(weft_socket_adopt(rt, sv[0], a));
    *raw = sv[1];
}

TEST(aborted_reader_loses_no_bytes)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a;
    weft_join *j;
    int raw;
    ssize_t n = 0;

    raw_pair(rt, &a, &raw);
    __atomic_store_n(&reading, 0, __ATOMIC_RELAXED);
    ASSERT_OK(weft_spawn(rt, &rtask_future, &(rtask){ .s = a }, &j));
    ASSERT(harness_wait_flag(&reading, NT_WATCHDOG_MS));
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
    weft_join_drop(j);
    nt_raw_write_all(raw, "after", 5);
    ASSERT_OK(weft_block_on(rt, &readall_future, &(readall){ .s = a }, &n));
    ASSERT_EQ(5, n);
    ASSERT_OK(weft_socket_close(a));
    close(raw);
    weft_runtime_free(rt);
}

TEST(runtime_freed_under_tasks_waiting_on_io)
{
    int before = nt_count_fds();

    for (int current = 0; current < 2; current++) {
        weft_runtime *rt = nt_runtime(current);
        weft_socket *a, *b, *l;
        struct sockaddr_storage addr;
        socklen_t len;
        int raw1, raw2;

        raw_pair(rt, &a, &raw1);
        raw_pair(rt, &b, &raw2);
        nt_listen(rt, &l, &addr, &len);
        __atomic_store_n(&reading, 0, __ATOMIC_RELAXED);
        ASSERT_OK(weft_spawn_detached(rt, &rtask_future, &(rtask){ .s = a, .owns = true }));
        ASSERT_OK(weft_spawn_detached(rt, &rtask_future, &(rtask){ .s = b, .owns = true }));
        ASSERT_OK(weft_spawn_detached(rt, &rtask_future,
                                      &(rtask){ .s = l, .owns = true, .accept = true }));
        if (!current)
            ASSERT(harness_wait_flag(&reading, NT_WATCHDOG_MS));
        weft_runtime_free(rt);            /* cancels them: their drops close a, b, l */
        close(raw1);
        close(raw2);
    }
    ASSERT_EQ(before, nt_count_fds());
}
