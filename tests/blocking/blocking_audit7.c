// SPDX-License-Identifier: MIT
/* Audit 7 of weft/blocking.h, from coroutines (weft/coro.h):
 *   - a saturated pool (max_threads 2) fed by eight coroutines with
 *     weft_co_blocking(), half of them aborted while their jobs run or wait:
 *     never more than two jobs at once; an aborted call returns -ECANCELED
 *     at once and its job is detached, not withdrawn (coro.h: "fn may
 *     still be running or not started yet"), so every fn runs exactly once;
 *     the others return fn's value;
 *   - weft_blocking_job_wait() from a coroutine (a worker) is -EINVAL;
 *   - a weft_blocking_join awaited by a coroutine that is aborted loses
 *     nothing: the job runs on and its result stays with the handle. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#define WAIT_MS 20000u
#define N 8

static atomic_int gate, running, max_running, runs;

static void *gated(void *arg)
{
    int now = atomic_fetch_add(&running, 1) + 1;
    int m = atomic_load(&max_running);
    uint64_t until = weft_now_ms() + WAIT_MS;

    while (now > m && !atomic_compare_exchange_weak(&max_running, &m, now))
        ;
    while (!atomic_load(&gate) && weft_now_ms() < until)
        usleep(1000);
    atomic_fetch_sub(&running, 1);
    atomic_fetch_add(&runs, 1);
    return arg;
}

typedef struct caller {
    weft_blocking_pool *pool;
    intptr_t id;
    atomic_int started;
    int err;
    bool cancelled;
    void *ret;
} caller;

static int call_pool(void *arg)
{
    caller *c = arg;

    c->ret = (void *)-1;
    atomic_store(&c->started, 1);
    c->err = weft_co_blocking(c->pool, gated, (void *)c->id, &c->ret);
    c->cancelled = weft_co_cancelled();
    return 0;
}

TEST(saturated_pool_from_coroutines_with_aborts)
{
    weft_runtime *rt = NULL;
    weft_blocking_pool *pool = NULL;
    static caller cs[N];
    weft_join *js[N];
    uint64_t until;

    atomic_store(&gate, 0);
    atomic_store(&running, 0);
    atomic_store(&max_running, 0);
    atomic_store(&runs, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_blocking_pool_new(&pool, &(weft_blocking_options){ .max_threads = 2 }));
    for (int i = 0; i < N; i++) {
        cs[i] = (caller){ .pool = pool, .id = 100 + i };
        ASSERT_OK(weft_go(rt, call_pool, &cs[i], &js[i]));
    }
    for (int i = 0; i < N; i++)
        ASSERT(harness_wait_flag((volatile int *)&cs[i].started, WAIT_MS));
    until = weft_now_ms() + WAIT_MS;
    while (atomic_load(&running) < 2) {          /* the pool is full */
        ASSERT(weft_now_ms() < until);
        usleep(1000);
    }
    usleep(10000);
    for (int i = 0; i < N; i += 2)               /* half: running or queued */
        weft_join_abort(js[i]);
    for (int i = 0; i < N; i += 2) {
        ASSERT_EQ(-ECANCELED, weft_join_wait(js[i], NULL));
        ASSERT_EQ(-ECANCELED, cs[i].err);
        ASSERT(cs[i].cancelled);
        ASSERT(cs[i].ret == (void *)-1);         /* *ret untouched */
    }
    atomic_store(&gate, 1);
    for (int i = 1; i < N; i += 2) {
        ASSERT_OK(weft_join_wait(js[i], NULL));
        ASSERT_EQ(0, cs[i].err);
        ASSERT(!cs[i].cancelled);
        ASSERT(cs[i].ret == (void *)(intptr_t)(100 + i));
    }
    for (int i = 0; i < N; i++)
        weft_join_drop(js[i]);
    /* detached jobs of the aborted calls still run, each once */
    until = weft_now_ms() + WAIT_MS;
    while (atomic_load(&runs) < N) {
        ASSERT(weft_now_ms() < until);
        usleep(1000);
    }
    ASSERT_EQ(0, weft_blocking_pool_shutdown(pool, WEFT_BLOCKING_FOREVER));
    ASSERT_EQ(N, atomic_load(&runs));
    ASSERT(atomic_load(&max_running) <= 2);
    weft_blocking_pool_free(pool);
    weft_runtime_free(rt);
}

/* ---- job_wait on a worker; a join future dropped by an abort ---------------------- */
typedef struct joiner {
    weft_blocking_job *job;
    weft_blocking_join jn;
    void *ret;
    int res, err, wait_err;
    atomic_int parked;
} joiner;

static weft_poll join_poll(void *self, weft_context *cx, void *out)
{
    joiner *j = self;

    (void)out;
    return weft_blocking_join_poll(&j->jn, cx, &j->res);
}

static void join_drop(void *self)
{
    weft_blocking_join_drop(&((joiner *)self)->jn);
}

static int awaits_the_job(void *arg)
{
    joiner *j = arg;

    j->wait_err = weft_blocking_job_wait(j->job, NULL);     /* on a worker: refused */
    weft_blocking_join_init(&j->jn, j->job, &j->ret);
    j->res = 12345;
    atomic_store(&j->parked, 1);
    j->err = weft_co_await_fn(join_poll, join_drop, j, NULL);
    return 0;
}

TEST(join_future_dropped_by_an_abort_loses_nothing)
{
    weft_runtime *rt = NULL;
    weft_blocking_pool *pool = NULL;
    joiner j = { 0 };
    weft_join *h = NULL;
    void *ret = NULL;

    atomic_store(&gate, 0);
    atomic_store(&runs, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_blocking_pool_new(&pool, NULL));
    ASSERT_OK(weft_blocking_spawn(pool, gated, (void *)(intptr_t)77, &j.job));
    ASSERT_OK(weft_go(rt, awaits_the_job, &j, &h));
    ASSERT(harness_wait_flag((volatile int *)&j.parked, WAIT_MS));
    usleep(5000);
    weft_join_abort(h);
    ASSERT_EQ(-ECANCELED, weft_join_wait(h, NULL));
    weft_join_drop(h);
    ASSERT_EQ(-EINVAL, j.wait_err);
    ASSERT_EQ(-ECANCELED, j.err);
    ASSERT_EQ(12345, j.res);                      /* the join did not complete */
    ASSERT(!weft_blocking_job_is_complete(j.job));
    atomic_store(&gate, 1);
    ASSERT_OK(weft_blocking_job_wait(j.job, &ret));
    ASSERT(ret == (void *)(intptr_t)77);
    ASSERT_OK(weft_blocking_job_try(j.job, &ret));   /* and again */
    ASSERT(ret == (void *)(intptr_t)77);
    weft_blocking_job_drop(j.job);
    weft_blocking_pool_free(pool);
    weft_runtime_free(rt);
}
