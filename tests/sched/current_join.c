/* SPDX-License-Identifier: MIT */
/* weft_join_wait() on a current-thread runtime, whose tasks run only while
 * a thread drives it (is inside weft_runtime_run() or weft_block_on()):
 *  - with no driver it returns -EDEADLK at once instead of waiting for ever
 *    (the README's demo with WEFT_CURRENT_THREAD), and the task is not
 *    harmed: run it later and the same handle gives its output;
 *  - a waiter blocked while a driver runs is woken with -EDEADLK when the
 *    driver leaves with the task unfinished;
 *  - a task polled by the driver that calls it does not hang (-EINVAL).
 * Every wait runs on a helper thread with a watchdog: a hang fails. */
#define _GNU_SOURCE
#include "sched_test.h"

static atomic_int polls, drops;
static atomic_int stop_root;

/* Pending for ever (keeps its waker, never woken), or READY at once. */
typedef struct idle {
    bool ready;
    bool polled;
    weft_waker w;
} idle;

static weft_poll idle_poll(idle *f, weft_context *cx, void *out)
{
    atomic_fetch_add(&polls, 1);
    if (f->ready) {
        *(int *)out = 42;
        return WEFT_READY;
    }
    if (!f->polled) {
        f->polled = true;
        f->w = weft_waker_clone(weft_context_waker(cx));
    }
    return WEFT_PENDING;
}

static void idle_drop(idle *f)
{
    weft_waker_drop(&f->w);
    atomic_fetch_add(&drops, 1);
}

WEFT_DEFINE_FUTURE(idle, idle_poll, idle_drop, int);

/* A root for block_on: yields until stop_root is set. */
typedef struct spinner {
    weft_async co;
    weft_yield y;
} spinner;

static weft_poll spinner_poll(spinner *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    while (!atomic_load(&stop_root))
        WEFT_YIELD(&f->co, &f->y, cx);
    WEFT_END(&f->co);
}

WEFT_DEFINE_FUTURE(spinner, spinner_poll, NULL, void);

struct waiter {
    weft_runtime *rt;
    weft_join *j;
    atomic_int started;
    int result;
    int out;
};

static void *wait_thread(void *p)
{
    struct waiter *w = p;

    atomic_store(&w->started, 1);
    w->result = weft_join_wait(w->j, &w->out);
    return NULL;
}

static void *block_on_thread(void *p)
{
    struct waiter *w = p;

    w->result = weft_block_on(w->rt, &spinner_future, &(spinner){ 0 }, NULL);
    return NULL;
}

static weft_runtime *new_current(void)
{
    weft_runtime *rt;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    return rt;
}

static void reset(void)
{
    atomic_store(&polls, 0);
    atomic_store(&drops, 0);
    atomic_store(&stop_root, 0);
}

TEST(join_wait_without_driver_returns_edeadlk)
{
    weft_runtime *rt = new_current();
    struct waiter w = { .rt = rt, .out = 777, .result = 1 };
    pthread_t th;
    int out = 0;

    reset();
    ASSERT_OK(weft_spawn(rt, &idle_future, &(idle){ .ready = true }, &w.j));
    START_THREAD(&th, wait_thread, &w);
    JOIN_THREAD_WITHIN(th, WATCHDOG_MS, "weft_join_wait on a runtime nobody drives");
    ASSERT_EQ(-EDEADLK, w.result);
    ASSERT_EQ(777, w.out);
    ASSERT_EQ(0, atomic_load(&polls));       /* untouched: it runs later */
    ASSERT(!weft_join_is_complete(w.j));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_join_wait(w.j, &out));    /* driven: the output */
    ASSERT_EQ(42, out);
    weft_join_drop(w.j);
    weft_runtime_free(rt);
    ASSERT_EQ(1, atomic_load(&drops));
}

TEST(join_wait_woken_with_edeadlk_when_driver_leaves)
{
    weft_runtime *rt = new_current();
    struct waiter w = { .rt = rt, .out = 777, .result = 1 };
    struct waiter d = { .rt = rt, .result = 1 };
    pthread_t th, dt;

    reset();
    ASSERT_OK(weft_spawn(rt, &idle_future, &(idle){ .ready = false }, &w.j));
    START_THREAD(&dt, block_on_thread, &d);  /* drives until stop_root */
    WAIT_AT_LEAST(&polls, 1, WATCHDOG_MS, "task polled by the driver");
    START_THREAD(&th, wait_thread, &w);
    WAIT_AT_LEAST(&w.started, 1, WATCHDOG_MS, "waiter start");
    sleep_ms(20);                            /* likely blocked by now; either
                                              * way the answer is -EDEADLK */
    atomic_store(&stop_root, 1);             /* the driver leaves */
    JOIN_THREAD_WITHIN(dt, WATCHDOG_MS, "weft_block_on");
    ASSERT_OK(d.result);
    JOIN_THREAD_WITHIN(th, WATCHDOG_MS, "weft_join_wait after the driver left");
    ASSERT_EQ(-EDEADLK, w.result);
    ASSERT_EQ(777, w.out);
    ASSERT(!weft_join_is_complete(w.j));
    weft_runtime_free(rt);                   /* cancels it */
    ASSERT_EQ(-ECANCELED, weft_join_wait(w.j, NULL));
    weft_join_drop(w.j);
    ASSERT_EQ(1, atomic_load(&drops));
}

/* Inside a task polled by block_on on a current-thread runtime: waiting for
 * a sibling on the driving thread itself would never end. */
static weft_join *sib_join;
static int inner_result;

typedef struct inner {
    int unused;
} inner;

static weft_poll inner_poll(inner *f, weft_context *cx, void *out)
{
    (void)f;
    (void)cx;
    (void)out;
    inner_result = weft_join_wait(sib_join, NULL);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(inner, inner_poll, NULL, void);

static void *inner_block_on_thread(void *p)
{
    struct waiter *w = p;

    w->result = weft_block_on(w->rt, &inner_future, &(inner){ 0 }, NULL);
    return NULL;
}

TEST(join_wait_on_the_driving_thread_does_not_hang)
{
    weft_runtime *rt = new_current();
    struct waiter d = { .rt = rt, .result = 1 };
    pthread_t dt;

    reset();
    inner_result = 1;
    ASSERT_OK(weft_spawn(rt, &idle_future, &(idle){ .ready = false }, &sib_join));
    START_THREAD(&dt, inner_block_on_thread, &d);
    JOIN_THREAD_WITHIN(dt, WATCHDOG_MS, "weft_join_wait inside a task polled by block_on");
    ASSERT_OK(d.result);
    ASSERT_EQ(-EINVAL, inner_result);
    weft_runtime_free(rt);
    weft_join_drop(sib_join);
    ASSERT_EQ(1, atomic_load(&drops));
}
