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
 * tick count, so the test tries 130 alignments (the interval is 61). */
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
