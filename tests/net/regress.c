/* SPDX-License-Identifier: MIT */
/* Regressions found while testing sockets.
 *
 * lifo_task_woken_by_io_look_not_stranded: a worker that looks at epoll
 * without waiting (every GLOBAL_INTERVAL polls, in next_local()) wakes the
 * ready task into its LIFO slot; when the run queues are empty then,
 * next_local() returned NULL, park() (which ignores LIFO slots) went to
 * sleep in epoll_wait with no limit, and the task was never run: the event
 * had been consumed (edge-triggered). On a current-thread runtime nobody
 * else looks at the slot. Which look catches the event depends on the
 * tick count, so the test tries 130 alignments (the interval is 61).
 *
 * udp_error_reported_once_then_reads_wait: a connected UDP socket that gets
 * an ICMP "port unreachable" is reported EPOLLERR, which the reactor keeps
 * (sticky) so that every later call sees it. recv returns ECONNREFUSED once
 * (the error is consumed), then EAGAIN; but the sticky ERR bit stayed set,
 * so the read went straight back to recv, forever, inside one poll: the
 * task never yielded and a timeout around it never fired. EAGAIN now
 * clears the sticky bits of its direction (found with FIFOs, issue 11). */
#include "net_test.h"

static weft_socket *ra;
static int rraw;

typedef struct rd1 {
    weft_async co;
    weft_io_op op;
    ssize_t n;
    char c;
} rd1;

static weft_poll rd1_poll(rd1 *b, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&b->co);
    weft_read_init(&b->op, ra, &b->c, 1);
    WEFT_AWAIT(&b->co, weft_io_op_poll(&b->op, cx, &b->n));
    ASSERT_EQ(1, b->n);
    WEFT_END(&b->co);
}

static void rd1_drop(rd1 *b)
{
    weft_io_op_drop(&b->op);
}

WEFT_DEFINE_FUTURE_VOID(rd1, rd1_poll, rd1_drop);

typedef struct yielder {
    weft_async co;
    int j, i;
    weft_yield y;
} yielder;

static weft_poll yielder_poll(yielder *r, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&r->co);
    ASSERT_OK(weft_spawn_detached(weft_runtime_current(), &rd1_future, &(rd1){ 0 }));
    WEFT_YIELD(&r->co, &r->y, cx);                 /* the reader waits now */
    ASSERT_EQ(1, write(rraw, "x", 1));            /* its event waits in epoll */
    for (r->i = 0; r->i < r->j; r->i++)
        WEFT_YIELD(&r->co, &r->y, cx);
    WEFT_END(&r->co);
}

WEFT_DEFINE_FUTURE_VOID(yielder, yielder_poll, NULL);

static weft_runtime *grt;
static int finished;

static void *runner(void *p)
{
    (void)p;
    ASSERT_OK(weft_runtime_run(grt));
    __atomic_store_n(&finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

TEST(lifo_task_woken_by_io_look_not_stranded)
{
    for (int j = 0; j < 130; j++) {
        pthread_t th;
        int sv[2];

        grt = nt_runtime(true);
        ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
        ASSERT_OK(weft_socket_adopt(grt, sv[0], &ra));
        rraw = sv[1];
        ASSERT_OK(weft_spawn_detached(grt, &yielder_future, &(yielder){ .j = j }));
        __atomic_store_n(&finished, 0, __ATOMIC_RELAXED);
        ASSERT_EQ(0, pthread_create(&th, NULL, runner, NULL));
        if (!harness_wait_flag(&finished, 10000))
            harness_fail(__FILE__, __LINE__,
                         "after %d yields: weft_runtime_run() still waits after 10 s; the "
                         "reader was woken into the LIFO slot and stranded", j);
        ASSERT_EQ(0, pthread_join(th, NULL));
        ASSERT_OK(weft_socket_close(ra));
        close(rraw);
        weft_runtime_free(grt);
    }
}

typedef struct udp_err {
    weft_async co;
    weft_socket *s;
    weft_io_op op;
    weft_timeout t;
    weft_sleep nap;
    ssize_t n;
    int err;
    char buf[8];
} udp_err;

static weft_poll udp_err_poll(udp_err *u, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&u->co);
    weft_write_init(&u->op, u->s, "x", 1);
    WEFT_AWAIT(&u->co, weft_io_op_poll(&u->op, cx, &u->n));
    ASSERT_EQ(1, u->n);
    /* the ICMP error arrives; its event is dispatched while the task naps
     * (so the reactor holds ERR when the reads come) */
    weft_sleep_init(&u->nap, 30);
    WEFT_AWAIT(&u->co, weft_sleep_poll(&u->nap, cx));
    weft_sleep_drop(&u->nap);
    /* the error is reported once */
    weft_read_init(&u->op, u->s, u->buf, sizeof(u->buf));
    weft_timeout_init(&u->t, &weft_io_op_future, &u->op, NT_WATCHDOG_MS);
    WEFT_AWAIT(&u->co, weft_timeout_poll(&u->t, cx, &u->err, &u->n));
    weft_timeout_drop(&u->t);
    ASSERT_OK(u->err);
    ASSERT_EQ(-ECONNREFUSED, u->n);
    /* then nothing comes: the read waits (and the timeout fires) */
    weft_read_init(&u->op, u->s, u->buf, sizeof(u->buf));
    weft_timeout_init(&u->t, &weft_io_op_future, &u->op, 50);
    WEFT_AWAIT(&u->co, weft_timeout_poll(&u->t, cx, &u->err, &u->n));
    weft_timeout_drop(&u->t);
    ASSERT_EQ(-ETIMEDOUT, u->err);
    WEFT_END(&u->co);
}

static void udp_err_drop(udp_err *u)
{
    weft_sleep_drop(&u->nap);
    weft_timeout_drop(&u->t);
    weft_io_op_drop(&u->op);
}

WEFT_DEFINE_FUTURE_VOID(udp_err, udp_err_poll, udp_err_drop);

TEST(udp_error_reported_once_then_reads_wait)
{
    for (int current = 0; current < 2; current++) {
        weft_runtime *rt = nt_runtime(current);
        struct sockaddr_storage a, gone;
        socklen_t len, glen = sizeof(gone);
        weft_socket *s, *tmp;
        udp_err u;

        /* a port nobody listens on: bound a moment ago, then closed */
        ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &a, &len));
        ASSERT_OK(weft_udp_bind(rt, (struct sockaddr *)&a, len, &tmp));
        ASSERT_OK(weft_socket_local_addr(tmp, &gone, &glen));
        ASSERT_OK(weft_socket_close(tmp));
        ASSERT_OK(weft_udp_bind(rt, (struct sockaddr *)&a, len, &s));
        ASSERT_OK(weft_udp_connect(s, (struct sockaddr *)&gone, glen));
        memset(&u, 0, sizeof(u));
        u.s = s;
        ASSERT_OK(weft_block_on(rt, &udp_err_future, &u, NULL));
        ASSERT_OK(weft_socket_close(s));
        weft_runtime_free(rt);
    }
}
