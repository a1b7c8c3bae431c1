/* SPDX-License-Identifier: MIT */
/* Audit 9 of weft/coro.h: the blocking-style calls at the edges of their
 * arguments and contexts (huge sleeps, cancelled barrier and semaphore
 * waits, block_on from a worker, calls from a future task). */
#include "coro_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#define WAIT_MS 20000u

static void wait_flag(atomic_int *f)
{
    uint64_t t0 = weft_now_ms();

    while (atomic_load(f) == 0) {
        ASSERT(weft_now_ms() - t0 < WAIT_MS);
        usleep(1000);
    }
}

/* ---- a sleep of UINT64_MAX ms parks until aborted, it never wraps ----------- */
typedef struct sleep_ctx {
    atomic_int parked, done, result;
} sleep_ctx;

static int sleep_forever(void *arg)
{
    sleep_ctx *c = arg;

    atomic_store(&c->parked, 1);
    atomic_store(&c->result, weft_co_sleep(UINT64_MAX));
    atomic_store(&c->done, 1);
    return 0;
}

TEST(a_sleep_of_uint64_max_ms_parks_until_the_abort)
{
    weft_runtime *rt = ct_runtime(2);
    sleep_ctx c;
    weft_join *j;
    int out = 1;

    memset(&c, 0, sizeof(c));
    ASSERT_OK(weft_go(rt, sleep_forever, &c, &j));
    wait_flag(&c.parked);
    usleep(20000);
    ASSERT_EQ(0, atomic_load(&c.done));
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &out));
    ASSERT_EQ(1, atomic_load(&c.done));
    ASSERT_EQ(-ECANCELED, atomic_load(&c.result));
    weft_join_drop(j);
    CT_FREE(rt);
}

/* ---- a cancelled coroutine's barrier wait does not count as an arrival ----- */
typedef struct bar_ctx {
    weft_barrier *b;
    atomic_int result, done;
} bar_ctx;

static int bar_cancelled(void *arg)
{
    bar_ctx *c = arg;

    while (!weft_co_cancelled())
        weft_co_yield();
    atomic_store(&c->result, weft_co_barrier_wait(c->b));
    atomic_store(&c->done, 1);
    return 0;
}

TEST(a_cancelled_coroutines_barrier_wait_leaves_no_arrival)
{
    weft_runtime *rt = ct_runtime(2);
    bar_ctx c;
    weft_join *j;

    memset(&c, 0, sizeof(c));
    ASSERT_OK(weft_barrier_new(&c.b, 2));
    ASSERT_OK(weft_go(rt, bar_cancelled, &c, &j));
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
    ASSERT_EQ(-ECANCELED, atomic_load(&c.result));
    ASSERT_EQ(0, weft_barrier_waiting(c.b));
    weft_join_drop(j);
    weft_barrier_free(c.b);
    CT_FREE(rt);
}

/* ---- semaphore: n above the maximum is -EINVAL, not a wait for ever --------- */
typedef struct sem_ctx {
    weft_sem *s;
    int big, zero, null_sem, null_mutex;
} sem_ctx;

static int sem_edges(void *arg)
{
    sem_ctx *c = arg;

    c->big = weft_co_sem_acquire(c->s, WEFT_SEM_MAX_PERMITS + 1);
    c->zero = weft_co_sem_acquire(c->s, 0);
    c->null_sem = weft_co_sem_acquire(NULL, 1);
    c->null_mutex = weft_co_mutex_lock(NULL);
    return 0;
}

TEST(sem_acquire_above_the_maximum_and_null_objects_are_einval_in_a_coroutine)
{
    weft_runtime *rt = ct_runtime(1);
    sem_ctx c;
    weft_join *j;

    memset(&c, 0, sizeof(c));
    ASSERT_OK(weft_sem_new(&c.s, 0));
    ASSERT_OK(weft_go(rt, sem_edges, &c, &j));
    ASSERT_OK(weft_join_wait(j, NULL));
    ASSERT_EQ(-EINVAL, c.big);
    ASSERT_EQ(0, c.zero);
    ASSERT_EQ(-EINVAL, c.null_sem);
    ASSERT_EQ(-EINVAL, c.null_mutex);
    weft_join_drop(j);
    weft_sem_free(c.s);
    CT_FREE(rt);
}

/* ---- weft_co_block_on from a worker (a coroutine): refused, no deadlock ----- */
static int trivial(void *arg)
{
    (void)arg;
    return 7;
}

typedef struct bo_ctx {
    weft_runtime *other;
    int r, res;
} bo_ctx;

static int block_on_inside(void *arg)
{
    bo_ctx *c = arg;

    c->res = -1;
    c->r = weft_co_block_on(c->other, trivial, NULL, NULL, &c->res);
    return 0;
}

TEST(co_block_on_from_a_coroutine_is_refused_without_blocking_the_worker)
{
    weft_runtime *rt = ct_runtime(1);
    weft_runtime *other = ct_current_thread();
    bo_ctx c = { other, 1, 1 };
    weft_join *j;

    ASSERT_OK(weft_go(rt, block_on_inside, &c, &j));
    ASSERT_OK(weft_join_wait(j, NULL));
    printf("block_on from a coroutine: %d (res %d)\n", c.r, c.res);
    ASSERT(c.r < 0);
    weft_join_drop(j);
    weft_runtime_free(other);
    CT_FREE(rt);
}

/* ---- calls from a future task (a worker, not a coroutine) ------------------ */
typedef struct fut_probe {
    int fd;
    atomic_int *ran;
} fut_probe;

static weft_poll fut_probe_poll(fut_probe *f, weft_context *cx, void *out)
{
    weft_mutex *m = NULL;
    weft_socket *s = (weft_socket *)1;
    struct sockaddr_in sa;

    (void)cx;
    (void)out;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(9);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_OK(weft_mutex_new(&m));
    ASSERT_EQ(-EINVAL, weft_co_sleep(1));
    ASSERT_EQ(-EINVAL, weft_co_yield());
    ASSERT_EQ(-EINVAL, weft_co_mutex_lock(m));
    ASSERT_EQ(0, weft_mutex_try_lock(m));        /* the failed lock took nothing */
    ASSERT_EQ(-EINVAL, weft_co_fs_close(f->fd));
    ASSERT_EQ(-EINVAL, weft_co_connect(NULL, (struct sockaddr *)&sa, sizeof(sa), 0, &s));
    ASSERT(s == (weft_socket *)1);
    ASSERT(!weft_co_cancelled());
    ASSERT(!weft_co_is_coroutine());
    ASSERT(weft_co_name() == NULL);
    ASSERT_EQ(0, weft_co_deadline_set(123));
    ASSERT_EQ(0, weft_co_deadline());
    weft_mutex_free(m);
    atomic_store(f->ran, 1);
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_STATIC(fut_probe, fut_probe_poll, NULL, void);

TEST(blocking_style_calls_from_a_future_task_are_einval_and_do_nothing)
{
    weft_runtime *rt = ct_runtime(1);
    atomic_int ran = 0;
    fut_probe f;
    weft_join *j;
    int fds[2];

    ASSERT_EQ(0, pipe(fds));
    f.fd = fds[0];
    f.ran = &ran;
    ASSERT_OK(weft_spawn(rt, &fut_probe_future, &f, &j));
    ASSERT_OK(weft_join_wait(j, NULL));
    ASSERT_EQ(1, atomic_load(&ran));
    weft_join_drop(j);
    CT_FREE(rt);
    ASSERT_EQ(0, close(fds[0]));        /* still open: fs_close did nothing */
    close(fds[1]);
}
