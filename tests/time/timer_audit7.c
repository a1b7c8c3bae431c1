/* SPDX-License-Identifier: MIT */
/* Audit 7 of weft/timer.h: the edges. A sleep of 0 ms is due at once (ready
 * at its first poll, by hand and on a runtime, without the wheel), as is a
 * timeout of 0 ms over a pending future. */
#define _GNU_SOURCE
#include "../sched/sched_test.h"

/* timer.h: "Sleep `ms` milliseconds from now"; a sleep is "ready once its
 * deadline has passed": 0 ms from now has passed at once. The deadline was
 * rounded up to the next whole millisecond, so a sleep of 0 waited for up
 * to 1 ms (by hand: never ready at its first poll, unless the clock stood
 * on a millisecond exactly). */
TEST(sleep_zero_ms_is_ready_at_its_first_poll)
{
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);

    for (int i = 0; i < 1000; i++) {
        weft_sleep s;
        uint64_t before = weft_now_ms();

        weft_sleep_init(&s, 0);
        ASSERT(weft_sleep_deadline(&s) >= before);
        ASSERT(weft_sleep_deadline(&s) <= weft_now_ms());
        if (weft_sleep_poll(&s, &cx) != WEFT_READY)
            harness_fail(__FILE__, __LINE__, "round %d: a sleep of 0 ms is pending", i);
        ASSERT_EQ(WEFT_READY, weft_sleep_poll(&s, &cx));
        weft_sleep_drop(&s);
    }
}

/* A 1 ms sleep is never early, still: its deadline is at least 1 ms of
 * real time away. */
TEST(sleep_one_ms_is_never_early)
{
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);

    for (int i = 0; i < 50; i++) {
        weft_sleep s;
        uint64_t t0 = harness_now_ns();

        weft_sleep_init(&s, 1);
        while (weft_sleep_poll(&s, &cx) == WEFT_PENDING)
            ;
        ASSERT(harness_now_ns() - t0 >= 1000000u);
        weft_sleep_drop(&s);
    }
}

/* A pending future under a timeout of 0 ms: -ETIMEDOUT at the first poll,
 * the inner future dropped once. */
typedef struct never {
    int *drops;
} never;

static weft_poll never_poll(never *n, weft_context *cx, void *out)
{
    (void)n;
    (void)cx;
    (void)out;
    return WEFT_PENDING;
}

static void never_drop(never *n)
{
    (*n->drops)++;
}
WEFT_DEFINE_FUTURE_STATIC(never, never_poll, never_drop, int);

TEST(timeout_zero_ms_times_out_at_its_first_poll)
{
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);

    for (int i = 0; i < 1000; i++) {
        int drops = 0, r = 1, out = -1;
        never inner = { &drops };
        weft_timeout t;

        weft_timeout_init(&t, &never_future, &inner, 0);
        if (weft_timeout_poll(&t, &cx, &r, &out) != WEFT_READY)
            harness_fail(__FILE__, __LINE__, "round %d: a timeout of 0 ms is pending", i);
        ASSERT_EQ(-ETIMEDOUT, r);
        ASSERT_EQ(-1, out);
        ASSERT_EQ(1, drops);
        weft_timeout_drop(&t);
        ASSERT_EQ(1, drops);
    }
}

/* On a runtime: a task awaiting sleeps of 0 ms in a row never registers a
 * timer (timers_registered stays 0) and finishes. */
typedef struct zeros {
    weft_async co;
    weft_sleep s;
    int i;
} zeros;

static weft_poll zeros_poll(zeros *z, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&z->co);
    for (z->i = 0; z->i < 100; z->i++) {
        weft_sleep_init(&z->s, 0);
        WEFT_AWAIT(&z->co, weft_sleep_poll(&z->s, cx));
        weft_sleep_drop(&z->s);
    }
    WEFT_END(&z->co);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(zeros, zeros_poll, NULL);

TEST(sleeps_of_zero_ms_never_reach_the_wheel)
{
    weft_runtime *rt;
    weft_metrics m = { .size = sizeof(m) };

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_block_on(rt, &zeros_future, &(zeros){ 0 }, NULL));
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(0, m.timers_registered);
    weft_runtime_free(rt);
}

/* ---- re-arming a pending sleep: drop, then init again ---------------------------- */
typedef struct rearm {
    weft_async co;
    weft_sleep s;
    weft_yield y;
    int i, fired;
} rearm;

static weft_poll rearm_poll(rearm *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < 300; f->i++) {
        /* a far deadline, registered, then moved near (a "reset") */
        weft_sleep_init(&f->s, 100000);
        if (weft_sleep_poll(&f->s, cx) == WEFT_READY)
            harness_fail(__FILE__, __LINE__, "a 100 s sleep is ready");
        WEFT_YIELD(&f->co, &f->y, cx);
        weft_sleep_drop(&f->s);
        weft_sleep_init(&f->s, (uint64_t)(f->i % 3));
        WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
        weft_sleep_drop(&f->s);
        f->fired++;
    }
    WEFT_END(&f->co);
}

static void rearm_drop(rearm *f)
{
    weft_sleep_drop(&f->s);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(rearm, rearm_poll, rearm_drop);

/* timer.h has no reset: a pending sleep is moved by dropping it (which
 * removes its timer) and initialising it again. Done 300 times on each of
 * four tasks across two workers: every re-armed sleep fires, the wheel is
 * empty after, and the counts add up (registered = fired + cancelled). */
TEST(sleep_rearmed_by_drop_and_init_while_pending)
{
    weft_runtime *rt;
    weft_metrics m = { .size = sizeof(m) };
    weft_join *j[4];

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    for (int k = 0; k < 4; k++)
        ASSERT_OK(weft_spawn(rt, &rearm_future, &(rearm){ 0 }, &j[k]));
    for (int k = 0; k < 4; k++) {
        ASSERT_OK(weft_join_wait(j[k], NULL));
        weft_join_drop(j[k]);
    }
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(0, m.timers_armed);
    ASSERT_EQ(m.timers_registered, m.timers_fired + m.timers_cancelled);
    ASSERT(m.timers_cancelled >= 4 * 300);
    weft_runtime_free(rt);
}
