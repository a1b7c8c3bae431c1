// SPDX-License-Identifier: MIT
/* weft/core.h's promises that earlier suites leave out: the version calls
 * agree with the macros, weft_strerror() takes either sign, the async
 * macros after WEFT_END, and the waker protocol as seen by a caller that
 * polls weft's futures by hand with a waker of its own: every reference a
 * future clones is given back (dropped or consumed by a wake) by the time
 * it is READY or dropped, and a wake comes from whatever thread completes
 * the wait. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

TEST(version_calls_match_the_macros)
{
    char buf[64];

    ASSERT_EQ((unsigned)WEFT_VERSION_HEX, weft_version());
    ASSERT(strcmp(WEFT_VERSION_STRING, weft_version_string()) == 0);
    snprintf(buf, sizeof(buf), "%d.%d.%d", WEFT_VERSION_MAJOR, WEFT_VERSION_MINOR,
             WEFT_VERSION_PATCH);
    ASSERT(strcmp(buf, weft_version_string()) == 0);
    ASSERT(weft_version_string() == weft_version_string());   /* static */
}

TEST(strerror_takes_either_sign_and_never_fails)
{
    static const int codes[] = { EINVAL, ENOMEM, ECANCELED, ESHUTDOWN, EAGAIN, ETIMEDOUT,
                                 EPIPE, EDEADLK, EOVERFLOW, -WEFT_EAI_NONAME,
                                 -WEFT_EAI_AGAIN, -WEFT_EAI_FAIL, 5101, 5102, 5103,
                                 EBADF, ECONNRESET };

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const char *a = weft_strerror(codes[i]), *b = weft_strerror(-codes[i]);

        ASSERT(a != NULL && b != NULL);
        ASSERT(strcmp(a, b) == 0);
        ASSERT(strcmp(a, "unknown error") != 0);
    }
    ASSERT(weft_strerror(INT_MIN) != NULL);
    ASSERT(weft_strerror(INT_MAX) != NULL);
    ASSERT(strcmp(weft_strerror(INT_MAX), weft_strerror(-INT_MAX)) == 0);
}

/* ---- the async macros -------------------------------------------------------- */
typedef struct twice { weft_async co; int runs; int after; weft_yield y; } twice;
static weft_poll twice_poll(twice *f, weft_context *cx)
{
    WEFT_BEGIN(&f->co);
    f->runs++;
    WEFT_YIELD(&f->co, &f->y, cx);
    f->after++;
    if (f->after > 0)
        break;                        /* a break finishes the function */
    f->after += 100;                  /* never reached */
    WEFT_END(&f->co);
}

TEST(async_after_end_runs_nothing)
{
    weft_waker w = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&w);
    twice f = { { 0 }, 0, 0, { false } };

    ASSERT_EQ(WEFT_PENDING, twice_poll(&f, &cx));
    ASSERT(!WEFT_ASYNC_IS_DONE(&f.co));
    ASSERT_EQ(WEFT_READY, twice_poll(&f, &cx));
    ASSERT(WEFT_ASYNC_IS_DONE(&f.co));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(WEFT_READY, twice_poll(&f, &cx));
    ASSERT_EQ(1, f.runs);
    ASSERT_EQ(1, f.after);
    ASSERT(weft_coop_proceed(&cx));  /* outside a worker: always true */
}

/* ---- a counting waker ------------------------------------------------------------ */
static atomic_long cw_refs;           /* references out (clones not given back) */
static atomic_long cw_wakes;
static weft_waker cw_clone(const void *d);
static void cw_wake(const void *d)
{
    (void)d;
    atomic_fetch_add(&cw_wakes, 1);
    atomic_fetch_sub(&cw_refs, 1);
}
static void cw_wake_by_ref(const void *d)
{
    (void)d;
    atomic_fetch_add(&cw_wakes, 1);
}
static void cw_drop(const void *d)
{
    (void)d;
    atomic_fetch_sub(&cw_refs, 1);
}
static const weft_waker_vtable cw_vt = { cw_clone, cw_wake, cw_wake_by_ref, cw_drop };
static weft_waker cw_clone(const void *d)
{
    atomic_fetch_add(&cw_refs, 1);
    return (weft_waker){ d, &cw_vt };
}
static int cw_token;
static weft_waker cw_waker = { &cw_token, &cw_vt };

static void cw_reset(void)
{
    atomic_store(&cw_refs, 0);
    atomic_store(&cw_wakes, 0);
}

/* Wait (bounded: a hang is a failure) for a wake to come. */
static void cw_wait_wake(long n)
{
    for (int i = 0; i < 200000 && atomic_load(&cw_wakes) < n; i++)
        usleep(100);
    ASSERT(atomic_load(&cw_wakes) >= n);
}

TEST(yield_by_hand_balances_references)
{
    weft_context cx = weft_context_from_waker(&cw_waker);
    weft_yield y;

    cw_reset();
    weft_yield_init(&y);
    ASSERT_EQ(WEFT_PENDING, weft_yield_poll(&y, &cx));
    ASSERT(atomic_load(&cw_wakes) >= 1);
    ASSERT_EQ(WEFT_READY, weft_yield_poll(&y, &cx));
    weft_yield_drop(&y);
    ASSERT_EQ(0, atomic_load(&cw_refs));
}

/* Sync futures polled by hand: pending, woken by the other side, ready; or
 * pending and dropped. Either way no reference is left behind. */
TEST(sync_futures_by_hand_give_back_every_reference)
{
    weft_context cx = weft_context_from_waker(&cw_waker);
    weft_chan *ch = NULL;
    weft_mutex *m = NULL;
    weft_notify *n = NULL;
    weft_oneshot_tx *tx = NULL;
    weft_oneshot_rx *rx = NULL;
    int v = 0, res = -1;

    cw_reset();
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    {
        weft_chan_recv r;

        weft_chan_recv_init(&r, ch, &v);
        ASSERT_EQ(WEFT_PENDING, weft_chan_recv_poll(&r, &cx, &res));
        ASSERT_EQ(WEFT_PENDING, weft_chan_recv_poll(&r, &cx, &res));   /* same waker again */
        ASSERT_OK(weft_chan_try_send(ch, &(int){ 4 }));
        cw_wait_wake(1);
        ASSERT_EQ(WEFT_READY, weft_chan_recv_poll(&r, &cx, &res));
        ASSERT_EQ(0, res);
        ASSERT_EQ(4, v);
        weft_chan_recv_drop(&r);
        ASSERT_EQ(0, atomic_load(&cw_refs));
        weft_chan_recv_init(&r, ch, &v);
        ASSERT_EQ(WEFT_PENDING, weft_chan_recv_poll(&r, &cx, &res));
        weft_chan_recv_drop(&r);
        ASSERT_EQ(0, atomic_load(&cw_refs));
    }
    weft_chan_drop(ch);

    ASSERT_OK(weft_mutex_new(&m));
    ASSERT_OK(weft_mutex_try_lock(m));
    {
        weft_mutex_lock l;

        weft_mutex_lock_init(&l, m);
        ASSERT_EQ(WEFT_PENDING, weft_mutex_lock_poll(&l, &cx, &res));
        weft_mutex_lock_drop(&l);
        ASSERT_EQ(0, atomic_load(&cw_refs));
        weft_mutex_lock_init(&l, m);
        ASSERT_EQ(WEFT_PENDING, weft_mutex_lock_poll(&l, &cx, &res));
        atomic_store(&cw_wakes, 0);
        ASSERT_OK(weft_mutex_unlock(m));
        cw_wait_wake(1);
        ASSERT_EQ(WEFT_READY, weft_mutex_lock_poll(&l, &cx, &res));
        ASSERT_EQ(0, res);
        weft_mutex_lock_drop(&l);
        ASSERT_OK(weft_mutex_unlock(m));
        ASSERT_EQ(0, atomic_load(&cw_refs));
    }
    weft_mutex_free(m);

    ASSERT_OK(weft_notify_new(&n));
    {
        weft_notify_wait w;

        weft_notify_wait_init(&w, n);
        ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&w, &cx, &res));
        atomic_store(&cw_wakes, 0);
        weft_notify_one(n);
        cw_wait_wake(1);
        ASSERT_EQ(WEFT_READY, weft_notify_wait_poll(&w, &cx, &res));
        weft_notify_wait_drop(&w);
        ASSERT_EQ(0, atomic_load(&cw_refs));
    }
    weft_notify_free(n);

    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    {
        weft_oneshot_recv r;

        weft_oneshot_recv_init(&r, rx, &v);
        ASSERT_EQ(WEFT_PENDING, weft_oneshot_recv_poll(&r, &cx, &res));
        atomic_store(&cw_wakes, 0);
        weft_oneshot_tx_drop(tx);       /* closed without a value */
        cw_wait_wake(1);
        ASSERT_EQ(WEFT_READY, weft_oneshot_recv_poll(&r, &cx, &res));
        ASSERT_EQ(-EPIPE, res);
        weft_oneshot_recv_drop(&r);
        ASSERT_EQ(0, atomic_load(&cw_refs));
    }
    weft_oneshot_rx_drop(rx);
}

/* A task's join polled by hand from a plain thread: the worker that
 * completes the task wakes this thread's waker, and every reference comes
 * back, also when the handle is polled with a different waker later. */
typedef struct slow5 { weft_async co; weft_sleep s; } slow5;
static weft_poll slow5_poll(slow5 *f, weft_context *cx, int *out)
{
    WEFT_BEGIN(&f->co);
    weft_sleep_init(&f->s, 5);
    WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
    weft_sleep_drop(&f->s);
    *out = 17;
    WEFT_END(&f->co);
}
static void slow5_drop(slow5 *f)
{
    if (f->co.line != 0 && !WEFT_ASYNC_IS_DONE(&f->co))
        weft_sleep_drop(&f->s);
}
WEFT_DEFINE_FUTURE_STATIC(slow5, slow5_poll, slow5_drop, int);

TEST(join_by_hand_from_a_plain_thread)
{
    weft_runtime *rt = NULL;
    weft_context cx = weft_context_from_waker(&cw_waker);
    weft_waker noop = weft_waker_noop();
    weft_context ncx = weft_context_from_waker(&noop);
    slow5 f = { { 0 }, { 0 } };
    weft_join *j = NULL;
    int res = -1, out = 0;

    cw_reset();
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_spawn(rt, &slow5_future, &f, &j));
    if (weft_join_poll(j, &cx, &res, &out) == WEFT_PENDING) {
        cw_wait_wake(1);
        ASSERT_EQ(WEFT_READY, weft_join_poll(j, &ncx, &res, &out));
    }
    ASSERT_EQ(0, res);
    ASSERT_EQ(17, out);
    weft_join_drop(j);
    weft_runtime_free(rt);
    ASSERT_EQ(0, atomic_load(&cw_refs));

    /* pending, then the handle is dropped while still waiting */
    cw_reset();
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    memset(&f, 0, sizeof(f));
    ASSERT_OK(weft_spawn(rt, &slow5_future, &f, &j));
    (void)weft_join_poll(j, &cx, &res, &out);
    weft_join_drop(j);
    weft_runtime_free(rt);
    ASSERT_EQ(0, atomic_load(&cw_refs));
}

/* The blocking pool's join by hand: woken from the pool thread. */
static void *blk5(void *arg)
{
    usleep(2000);
    return arg;
}

TEST(blocking_join_by_hand_balances_references)
{
    weft_context cx = weft_context_from_waker(&cw_waker);
    weft_blocking_pool *pool = NULL;
    weft_blocking_job *job = NULL;
    weft_blocking_join bj;
    void *ret = NULL;
    int res = -1;

    cw_reset();
    ASSERT_OK(weft_blocking_pool_new(&pool, NULL));
    ASSERT_OK(weft_blocking_spawn(pool, blk5, &cw_token, &job));
    weft_blocking_join_init(&bj, job, &ret);
    if (weft_blocking_join_poll(&bj, &cx, &res) == WEFT_PENDING) {
        cw_wait_wake(1);
        ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&bj, &cx, &res));
    }
    ASSERT_EQ(0, res);
    ASSERT(ret == &cw_token);
    weft_blocking_join_drop(&bj);
    ASSERT_EQ(0, atomic_load(&cw_refs));

    /* pending and dropped: the reference comes back at the drop */
    weft_blocking_job_drop(job);
    ASSERT_OK(weft_blocking_spawn(pool, blk5, NULL, &job));
    weft_blocking_join_init(&bj, job, &ret);
    (void)weft_blocking_join_poll(&bj, &cx, &res);
    weft_blocking_join_drop(&bj);
    ASSERT_OK(weft_blocking_job_wait(job, NULL));
    weft_blocking_job_drop(job);
    weft_blocking_pool_free(pool);
    ASSERT_EQ(0, atomic_load(&cw_refs));
}
