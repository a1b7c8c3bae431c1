// SPDX-License-Identifier: MIT
/* A fifth look at weft/coro.h's promises (public API only, apart from
 * coro_test.h's helpers): stack size bounds at every entry point, names,
 * the weft_co_* calls from a future task (a worker that is not a
 * coroutine), joins across futures and coroutines both ways, detach after
 * finish, nested awaits. */
#include "coro_test.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static int ret_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

static atomic_int ran;
static int count_run(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
    return 0;
}

/* Stack sizes out of range are -EINVAL at every entry point that takes
 * options, and fn never runs; the bounds themselves are accepted. */
TEST(stack_size_bounds_everywhere)
{
    weft_runtime *rt = ct_runtime(2);
    weft_group *g = NULL;
    weft_join *j = NULL;
    int res = -1;
    static const size_t bad[] = { 1, WEFT_CO_STACK_MIN - 1, WEFT_CO_STACK_MAX + 1, SIZE_MAX,
                                  SIZE_MAX - 4095 };

    atomic_store(&ran, 0);
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        weft_go_options o = { .stack_size = bad[i], .name = "bad" };

        j = (weft_join *)0x1;
        ASSERT_EQ(-EINVAL, weft_go_opt(rt, count_run, NULL, &o, &j));
        ASSERT_EQ((weft_join *)0x1, j);
        ASSERT_EQ(-EINVAL, weft_go_opt(rt, count_run, NULL, &o, NULL));
        ASSERT_EQ(-EINVAL, weft_go_group(g, count_run, NULL, &o));
        ASSERT_EQ(-EINVAL, weft_co_block_on(rt, count_run, NULL, &o, &res));
    }
    ASSERT_OK(weft_group_join(g));
    ASSERT_EQ(0, atomic_load(&ran));
    {
        weft_go_options lo = { .stack_size = WEFT_CO_STACK_MIN };
        weft_go_options hi = { .stack_size = WEFT_CO_STACK_MAX };
        weft_go_options odd = { .stack_size = WEFT_CO_STACK_MIN + 1 };

        ASSERT_OK(weft_go_opt(rt, ret_arg, (void *)(intptr_t)7, &lo, &j));
        ASSERT_OK(weft_join_wait(j, &res));
        ASSERT_EQ(7, res);
        weft_join_drop(j);
        ASSERT_OK(weft_go_opt(rt, ret_arg, (void *)(intptr_t)8, &hi, &j));
        ASSERT_OK(weft_join_wait(j, &res));
        ASSERT_EQ(8, res);
        weft_join_drop(j);
        ASSERT_OK(weft_co_block_on(rt, ret_arg, (void *)(intptr_t)9, &odd, &res));
        ASSERT_EQ(9, res);
        ASSERT_OK(weft_go_group(g, count_run, NULL, &lo));
        ASSERT_OK(weft_group_join(g));
        ASSERT_EQ(1, atomic_load(&ran));
    }
    ASSERT_OK(weft_group_free(g));
    CT_FREE(rt);
}

/* weft_co_name(): the very string given (not copied), "coroutine" for a
 * NULL name, NULL outside a coroutine. */
static const char the_name[] = "audit5-name";
static int name_body(void *arg)
{
    const char **seen = arg;

    seen[0] = weft_co_name();
    if (weft_co_sleep(1) < 0)
        return -1;
    seen[1] = weft_co_name();            /* after a park, maybe elsewhere */
    return weft_co_is_coroutine() ? 1 : 0;
}

TEST(names_are_the_given_pointer)
{
    weft_runtime *rt = ct_runtime(2);
    const char *seen[2] = { NULL, NULL };
    int res = -1;

    ASSERT(weft_co_name() == NULL);
    ASSERT(!weft_co_is_coroutine());
    ASSERT(!weft_co_cancelled());
    ASSERT_OK(weft_co_block_on(rt, name_body, seen, &(weft_go_options){ .name = the_name },
                               &res));
    ASSERT_EQ(1, res);
    ASSERT(seen[0] == the_name);
    ASSERT(seen[1] == the_name);
    seen[0] = seen[1] = NULL;
    ASSERT_OK(weft_co_block_on(rt, name_body, seen, &(weft_go_options){ .name = NULL }, &res));
    ASSERT(seen[0] != NULL && strcmp(seen[0], "coroutine") == 0);
    ASSERT(seen[1] != NULL && strcmp(seen[1], "coroutine") == 0);
    ASSERT_OK(weft_co_block_on(rt, name_body, seen, NULL, &res));
    ASSERT(strcmp(seen[0], "coroutine") == 0);
    CT_FREE(rt);
}

/* From a future task (on a worker, not a coroutine) every weft_co_* call
 * is -EINVAL (an await drops its future), the queries say "not a
 * coroutine", and weft_co_block_on() is refused (a worker). */
typedef struct never5 { int pad; } never5;
static atomic_int never5_drops;
static weft_poll never5_poll(never5 *n, weft_context *cx, int *out)
{
    (void)n; (void)cx; (void)out;
    return WEFT_PENDING;
}
static void never5_drop(never5 *n)
{
    (void)n;
    atomic_fetch_add(&never5_drops, 1);
}
WEFT_DEFINE_FUTURE_STATIC(never5, never5_poll, never5_drop, int);

typedef struct from_task { int dummy; } from_task;
static weft_poll from_task_poll(from_task *f, weft_context *cx, int *out)
{
    never5 n = { 0 };
    int o = 0, res = 0, bad = 0;
    weft_join *j = NULL;

    (void)f; (void)cx;
    if (weft_co_is_coroutine() || weft_co_cancelled() || weft_co_name() != NULL)
        bad |= 1;
    if (weft_co_sleep(1) != -EINVAL || weft_co_yield() != -EINVAL)
        bad |= 2;
    if (weft_co_await(&never5_future, &n, &o) != -EINVAL || atomic_load(&never5_drops) != 1)
        bad |= 4;
    if (weft_co_await(NULL, &n, &o) != -EINVAL || atomic_load(&never5_drops) != 1)
        bad |= 8;
    if (weft_co_block_on(weft_runtime_current(), ret_arg, NULL, NULL, &res) != -EINVAL)
        bad |= 16;
    if (weft_co_deadline_set(5) != 0 || weft_co_deadline() != 0)
        bad |= 32;
    if (weft_go(weft_runtime_current(), ret_arg, (void *)(intptr_t)3, &j) != 0)
        bad |= 64;
    else {
        if (weft_co_join(j, &res) != -EINVAL)
            bad |= 128;
        weft_join_drop(j);
    }
    *out = bad;
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_STATIC(from_task, from_task_poll, NULL, int);

TEST(co_calls_from_a_future_task_are_einval)
{
    weft_runtime *rt = ct_runtime(2);
    from_task f = { 0 };
    weft_join *j = NULL;
    int res = -1;

    atomic_store(&never5_drops, 0);
    ASSERT_OK(weft_spawn(rt, &from_task_future, &f, &j));
    ASSERT_OK(weft_join_wait(j, &res));
    ASSERT_EQ(0, res);
    weft_join_drop(j);
    CT_FREE(rt);
}

/* A future awaits a coroutine's join; a coroutine awaits a future's join
 * and another coroutine's join; detach (drop) after finish. */
typedef struct await_co {
    weft_async co;
    weft_join *j;
    int res;
} await_co;
static weft_poll await_co_poll(await_co *f, weft_context *cx, int *out)
{
    WEFT_BEGIN(&f->co);
    WEFT_AWAIT(&f->co, weft_join_poll(f->j, cx, &f->res, out));
    WEFT_END(&f->co);
}
static void await_co_drop(await_co *f)
{
    weft_join_drop(f->j);
}
WEFT_DEFINE_FUTURE_STATIC(await_co, await_co_poll, await_co_drop, int);

static int sleeper(void *arg)
{
    if (weft_co_sleep(2) < 0)
        return -1;
    return (int)(intptr_t)arg;
}

static int joiner(void *arg)
{
    weft_join *j = arg;
    int out = -1, err;

    err = weft_co_join(j, &out);
    if (err < 0)
        return err;
    /* the handle stays valid: a second join gives the same output */
    err = weft_co_join(j, &out);
    weft_join_drop(j);
    return err < 0 ? err : out + 1000;
}

typedef struct plain5 { weft_yield y; bool started; } plain5;
static weft_poll plain5_poll(plain5 *f, weft_context *cx, int *out)
{
    if (weft_yield_poll(&f->y, cx) == WEFT_PENDING)
        return WEFT_PENDING;
    *out = 55;
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_STATIC(plain5, plain5_poll, NULL, int);

TEST(joins_across_futures_and_coroutines)
{
    weft_runtime *rt = ct_runtime(2);
    weft_join *cj = NULL, *fj = NULL, *outer = NULL;
    await_co a = { 0 };
    plain5 p;
    int res = -1;

    /* a future joins a coroutine */
    ASSERT_OK(weft_go(rt, sleeper, (void *)(intptr_t)41, &cj));
    a.j = cj;
    ASSERT_OK(weft_spawn(rt, &await_co_future, &a, &outer));
    ASSERT_OK(weft_join_wait(outer, &res));
    ASSERT_EQ(41, res);
    weft_join_drop(outer);

    /* a coroutine joins a future task */
    weft_yield_init(&p.y);
    ASSERT_OK(weft_spawn(rt, &plain5_future, &p, &fj));
    ASSERT_OK(weft_go(rt, joiner, fj, &outer));
    ASSERT_OK(weft_join_wait(outer, &res));
    ASSERT_EQ(1055, res);
    weft_join_drop(outer);

    /* a coroutine joins a coroutine */
    ASSERT_OK(weft_go(rt, sleeper, (void *)(intptr_t)9, &cj));
    ASSERT_OK(weft_go(rt, joiner, cj, &outer));
    ASSERT_OK(weft_join_wait(outer, &res));
    ASSERT_EQ(1009, res);
    weft_join_drop(outer);

    /* detach after finish: the output is read, the handle dropped late */
    ASSERT_OK(weft_go(rt, ret_arg, (void *)(intptr_t)5, &cj));
    ASSERT_OK(weft_join_wait(cj, &res));
    ASSERT(weft_join_is_complete(cj));
    ASSERT_OK(weft_join_try(cj, &res));
    ASSERT_EQ(5, res);
    weft_join_abort(cj);                 /* after the end: a no-op */
    ASSERT_OK(weft_join_try(cj, &res));
    ASSERT_EQ(5, res);
    weft_join_drop(cj);
    CT_FREE(rt);
}

/* Nested awaits: a coroutine awaits an async function that awaits another
 * coroutine's join and a yield; the outputs come through every level. */
typedef struct nest5 {
    weft_async co;
    weft_yield y;
    weft_join *j;
    int res;
} nest5;
static weft_poll nest5_poll(nest5 *f, weft_context *cx, int *out)
{
    WEFT_BEGIN(&f->co);
    WEFT_YIELD(&f->co, &f->y, cx);
    WEFT_AWAIT(&f->co, weft_join_poll(f->j, cx, &f->res, out));
    *out += 100;
    WEFT_YIELD(&f->co, &f->y, cx);
    WEFT_END(&f->co);
}
static void nest5_drop(nest5 *f)
{
    weft_join_drop(f->j);
}
WEFT_DEFINE_FUTURE_STATIC(nest5, nest5_poll, nest5_drop, int);

static int nester(void *arg)
{
    weft_runtime *rt = arg;
    nest5 n = { 0 };
    int out = -1, err;

    err = weft_go(rt, sleeper, (void *)(intptr_t)4, &n.j);
    if (err < 0)
        return err;
    err = weft_co_await(&nest5_future, &n, &out);
    return err < 0 ? err : out;
}

TEST(nested_awaits_carry_outputs)
{
    weft_runtime *rt = ct_runtime(2);
    int res = -1;

    ASSERT_OK(weft_co_block_on(rt, nester, rt, NULL, &res));
    ASSERT_EQ(104, res);
    CT_FREE(rt);
}

/* Aborting a finished coroutine, and after its handle's join: no change. */
TEST(abort_after_finish_keeps_the_output)
{
    weft_runtime *rt = ct_runtime(1);
    weft_join *j = NULL;
    int res = -1;

    ASSERT_OK(weft_go(rt, ret_arg, (void *)(intptr_t)-3, &j));
    ASSERT_OK(weft_join_wait(j, &res));
    ASSERT_EQ(-3, res);
    weft_join_abort(j);
    res = 0;
    ASSERT_OK(weft_join_wait(j, &res));
    ASSERT_EQ(-3, res);
    weft_join_drop(j);
    CT_FREE(rt);
}

/* Absurd time limits mean "no limit in practice", never "already passed":
 * an await with a limit of UINT64_MAX ms, a deadline of UINT64_MAX, a sleep
 * of UINT64_MAX ms that only an abort ends. */
typedef struct later5 { int polls; } later5;
static weft_poll later5_poll(later5 *f, weft_context *cx, int *out)
{
    if (f->polls++ < 3) {
        weft_waker_wake_by_ref(weft_context_waker(cx));
        return WEFT_PENDING;
    }
    *out = 77;
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_STATIC(later5, later5_poll, NULL, int);

static int huge_limits_body(void *arg)
{
    later5 f = { 0 };
    int out = 0, err;

    (void)arg;
    err = weft_co_await_timeout(&later5_future, &f, &out, UINT64_MAX);
    if (err != 0 || out != 77)
        return 1;
    f.polls = 0;
    out = 0;
    err = weft_co_await_timeout(&later5_future, &f, &out, UINT64_MAX / 2 + 1);
    if (err != 0 || out != 77)
        return 2;
    if (weft_co_deadline_set(UINT64_MAX) != 0)
        return 3;
    f.polls = 0;
    out = 0;
    err = weft_co_await(&later5_future, &f, &out);
    if (err != 0 || out != 77)
        return 4;
    if (weft_co_sleep(1) != 0)
        return 5;
    weft_co_deadline_set(0);
    return 0;
}

TEST(huge_time_limits_never_expire_at_once)
{
    weft_runtime *rt = ct_runtime(2);
    int res = -1;

    ASSERT_OK(weft_co_block_on(rt, huge_limits_body, NULL, NULL, &res));
    ASSERT_EQ(0, res);
    CT_FREE(rt);
}

static atomic_int long_sleep_started;
static int long_sleeper(void *arg)
{
    int err;

    (void)arg;
    atomic_store(&long_sleep_started, 1);
    err = weft_co_sleep(UINT64_MAX);
    return err == -ECANCELED ? 0 : 1;
}

TEST(endless_sleep_ends_by_abort)
{
    weft_runtime *rt = ct_runtime(2);
    weft_join *j = NULL;
    int res = -1;

    atomic_store(&long_sleep_started, 0);
    ASSERT_OK(weft_go(rt, long_sleeper, NULL, &j));
    ASSERT(harness_wait_flag((volatile int *)&long_sleep_started, 20000));
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &res));
    weft_join_drop(j);
    CT_FREE(rt);
}

/* weft_co_blocking on an explicit pool: -ESHUTDOWN once the pool is shut
 * down (fn never runs); -ECANCELED when a shutdown cancels the job while
 * it is queued (fn never runs, and weft_co_cancelled() says it was not
 * this coroutine's abort). */
static atomic_int gate5, blk_started, blk_ran_late;
static void *hold_job(void *arg)
{
    atomic_store(&blk_started, 1);
    while (!atomic_load(&gate5))
        usleep(200);
    return arg;
}
static void *late_job(void *arg)
{
    atomic_fetch_add(&blk_ran_late, 1);
    return arg;
}

struct blk_env {
    weft_blocking_pool *pool;
    atomic_int queued;
    int err, cancelled;
};

static int queued_blocking(void *arg)
{
    struct blk_env *e = arg;
    void *ret = (void *)0x5;

    atomic_store(&e->queued, 1);
    e->err = weft_co_blocking(e->pool, late_job, NULL, &ret);
    e->cancelled = weft_co_cancelled();
    return ret == (void *)0x5 ? 0 : 1;     /* *ret untouched on failure */
}

TEST(co_blocking_on_a_shut_down_pool)
{
    weft_runtime *rt = ct_runtime(2);
    struct blk_env e = { 0 };
    weft_blocking_job *holder = NULL;
    weft_join *j = NULL;
    int res = -1;

    atomic_store(&gate5, 0);
    atomic_store(&blk_started, 0);
    atomic_store(&blk_ran_late, 0);
    ASSERT_OK(weft_blocking_pool_new(&e.pool, &(weft_blocking_options){ .max_threads = 1 }));
    ASSERT_OK(weft_blocking_spawn(e.pool, hold_job, NULL, &holder));
    ASSERT(harness_wait_flag((volatile int *)&blk_started, 20000));
    ASSERT_OK(weft_go(rt, queued_blocking, &e, &j));
    ASSERT(harness_wait_flag((volatile int *)&e.queued, 20000));
    /* the coroutine's job is queued behind the holder, or about to be */
    for (int i = 0; i < 50; i++)
        usleep(1000);
    ASSERT_EQ(1, weft_blocking_pool_shutdown(e.pool, 0));   /* the holder runs on */
    ASSERT_OK(weft_join_wait(j, &res));
    weft_join_drop(j);
    ASSERT_EQ(0, res);
    ASSERT(e.err == -ECANCELED || e.err == -ESHUTDOWN);
    ASSERT_EQ(0, e.cancelled);
    atomic_store(&gate5, 1);
    ASSERT_OK(weft_blocking_job_wait(holder, NULL));
    weft_blocking_job_drop(holder);
    /* on the shut-down pool: refused */
    e.err = 0;
    atomic_store(&e.queued, 0);
    ASSERT_OK(weft_co_block_on(rt, queued_blocking, &e, NULL, &res));
    ASSERT_EQ(0, res);
    ASSERT_EQ(-ESHUTDOWN, e.err);
    ASSERT_EQ(0, atomic_load(&blk_ran_late));
    weft_blocking_pool_free(e.pool);
    CT_FREE(rt);
}

/* "fn always runs": coroutines spawned into a group that is cancelled
 * before they are polled (on a current-thread runtime nobody drives yet)
 * each run exactly once, and every blocking call in them is -ECANCELED;
 * a spawn into the cancelled group is -ECANCELED and fn never runs. */
static atomic_int group_runs, group_cancel_seen;
static int group_child(void *arg)
{
    (void)arg;
    atomic_fetch_add(&group_runs, 1);
    if (weft_co_sleep(1) == -ECANCELED && weft_co_yield() == -ECANCELED &&
        weft_co_cancelled())
        atomic_fetch_add(&group_cancel_seen, 1);
    return -ECANCELED;
}

TEST(group_cancelled_before_start_runs_each_fn_once)
{
    weft_runtime *rt = ct_current_thread();
    weft_group *g = NULL;

    atomic_store(&group_runs, 0);
    atomic_store(&group_cancel_seen, 0);
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    for (int i = 0; i < 5; i++)
        ASSERT_OK(weft_go_group(g, group_child, NULL, NULL));
    weft_group_cancel(g);
    ASSERT_EQ(-ECANCELED, weft_go_group(g, group_child, NULL, NULL));
    {
        /* drive the runtime until no child is live (group.h: a
         * current-thread runtime's children need a driver) */
        weft_group_wait w;
        int gres = 0;

        weft_group_wait_init(&w, g);
        ASSERT_OK(weft_block_on(rt, &weft_group_wait_future, &w, &gres));
        ASSERT_EQ(-ECANCELED, gres);
    }
    ASSERT_OK(weft_group_free(g));
    ASSERT_EQ(5, atomic_load(&group_runs));
    ASSERT_EQ(5, atomic_load(&group_cancel_seen));
    CT_FREE(rt);
}

/* On a shut-down runtime every spawn is -ESHUTDOWN, fn is never called and
 * no stack stays mapped (CT_FREE checks). */
TEST(spawns_on_a_shut_down_runtime_never_call_fn)
{
    weft_runtime *rt = ct_runtime(1);
    weft_group *g = NULL;
    weft_join *j = (weft_join *)0x1;
    int res = 12345;

    atomic_store(&ran, 0);
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(-ESHUTDOWN, weft_go(rt, count_run, NULL, &j));
    ASSERT((weft_join *)0x1 == j);
    ASSERT_EQ(-ESHUTDOWN, weft_go_detached(rt, count_run, NULL));
    ASSERT_EQ(-ESHUTDOWN, weft_go_opt(rt, count_run, NULL,
                                      &(weft_go_options){ .stack_size = WEFT_CO_STACK_MAX }, NULL));
    ASSERT(weft_go_group(g, count_run, NULL, NULL) < 0);
    ASSERT(weft_co_block_on(rt, count_run, NULL, NULL, &res) < 0);
    ASSERT_EQ(12345, res);
    ASSERT_EQ(0, atomic_load(&ran));
    ASSERT_OK(weft_group_free(g));
    CT_FREE(rt);
}
