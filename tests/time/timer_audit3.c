/* SPDX-License-Identifier: MIT */
/* Third audit of weft/timer.h: the promises measured finer than the
 * millisecond clock (an interval's first tick "one period after init",
 * "never early"), sleeps and timeouts at 0 and in the past, the saturated
 * deadline, and an interval re-armed after a drop. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>

#include "harness.h"
#include "weft.h"

/* ---- interval: never early, at nanosecond resolution ---------------------- */
typedef struct early_ticker {
    weft_async co;
    weft_interval iv;
    uint64_t period, expect, t0, k;   /* init's period; the real one */
    int ticks, early;
} early_ticker;

static weft_poll early_ticker_poll(early_ticker *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    for (f->ticks = 0; f->ticks < 20; f->ticks++) {
        /* the time is read before init: a tick must come one full period
         * later (and the k-th k periods later), whatever the fraction of
         * the millisecond init ran in */
        f->t0 = harness_now_ns();
        weft_interval_init(&f->iv, f->period);
        for (f->k = 1; f->k <= 2; f->k++) {
            WEFT_AWAIT(&f->co, weft_interval_tick(&f->iv, cx, NULL));
            if (harness_now_ns() - f->t0 < f->k * f->expect * 1000000u)
                f->early++;
        }
        weft_interval_drop(&f->iv);
    }
    *(int *)out = f->early;
    WEFT_END(&f->co);
}

static void early_ticker_drop(early_ticker *f)
{
    weft_interval_drop(&f->iv);
}

WEFT_DEFINE_FUTURE_STATIC(early_ticker, early_ticker_poll, early_ticker_drop, int);

static void check_interval_never_early(uint64_t period, uint64_t expect, bool current)
{
    weft_runtime *rt;
    weft_runtime_options o = { .flavor = current ? WEFT_CURRENT_THREAD : WEFT_MULTI_THREAD,
                               .workers = current ? 0 : 1 };
    int early = -1;

    ASSERT_OK(weft_runtime_new(&rt, &o));
    ASSERT_OK(weft_block_on(rt, &early_ticker_future, &(early_ticker){ .period = period, .expect = expect },
                            &early));
    weft_runtime_free(rt);
    ASSERT_EQ(0, early);
}

/* timer.h: "the first one period after init ... Never early" */
TEST(interval_first_tick_never_early_period_1)
{
    check_interval_never_early(1, 1, true);
}

TEST(interval_first_tick_never_early_period_3_multi_thread)
{
    check_interval_never_early(3, 3, false);
}

/* period 0 is treated as 1: never a tick before a full millisecond */
TEST(interval_period_zero_is_one_ms)
{
    check_interval_never_early(0, 1, true);
}

/* ---- sleeps at 0, in the past, saturated ----------------------------------- */
typedef struct past_sleeper {
    weft_async co;
    weft_sleep s;
    int polls;
} past_sleeper;

static weft_poll past_sleeper_poll(past_sleeper *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    weft_sleep_until_init(&f->s, 0);                /* long past */
    f->polls++;
    WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
    weft_sleep_drop(&f->s);
    weft_sleep_until_init(&f->s, weft_now_ms());    /* now: due */
    f->polls++;
    WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
    weft_sleep_drop(&f->s);
    *(int *)out = f->polls;
    WEFT_END(&f->co);
}

static void past_sleeper_drop(past_sleeper *f)
{
    weft_sleep_drop(&f->s);
}

WEFT_DEFINE_FUTURE_STATIC(past_sleeper, past_sleeper_poll, past_sleeper_drop, int);

TEST(sleep_until_past_or_now_is_ready_at_first_poll)
{
    weft_runtime *rt;
    int polls = 0;

    if (harness_stress())
        harness_skip("counts polls; WEFT_STRESS adds some");
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    ASSERT_OK(weft_block_on(rt, &past_sleeper_future, &(past_sleeper){ 0 }, &polls));
    weft_runtime_free(rt);
    ASSERT_EQ(2, polls);
}

TEST(sleep_deadline_saturates_and_is_reported)
{
    weft_sleep s;
    uint64_t now = weft_now_ms();

    weft_sleep_init(&s, UINT64_MAX);
    ASSERT(weft_sleep_deadline(&s) == UINT64_MAX);
    weft_sleep_drop(&s);
    weft_sleep_init(&s, UINT64_MAX - now / 2);       /* now + ms above the range */
    ASSERT(weft_sleep_deadline(&s) == UINT64_MAX);
    weft_sleep_drop(&s);
    weft_sleep_init(&s, 50);
    ASSERT(weft_sleep_deadline(&s) >= now + 50);
    weft_sleep_drop(&s);
    weft_sleep_drop(&s);                             /* idempotent */
    ASSERT_EQ(0, weft_sleep_deadline(NULL));
}

/* ---- timeout at 0 ---------------------------------------------------------------- */
typedef struct never {
    int *drops;
    int *polls;
} never;

static weft_poll never_poll(never *f, weft_context *cx, void *out)
{
    (void)cx, (void)out;
    if (f->polls)
        (*f->polls)++;
    return WEFT_PENDING;
}

static void never_drop(never *f)
{
    (*f->drops)++;
}

WEFT_DEFINE_FUTURE_STATIC(never, never_poll, never_drop, int);

typedef struct at_once {
    int *drops;
} at_once;

static weft_poll at_once_poll(at_once *f, weft_context *cx, void *out)
{
    (void)f, (void)cx;
    *(int *)out = 77;
    return WEFT_READY;
}

static void at_once_drop(at_once *f)
{
    (*f->drops)++;
}

WEFT_DEFINE_FUTURE_STATIC(at_once, at_once_poll, at_once_drop, int);

typedef struct zero_timeouts {
    weft_async co;
    int drops_never, drops_ready, r1, r2, out2, out1;
    never n;
    at_once a;
    weft_timeout t1, t2;
} zero_timeouts;

static weft_poll zero_timeouts_poll(zero_timeouts *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    f->n.drops = &f->drops_never;
    f->out1 = -1;
    weft_timeout_init(&f->t1, &never_future, &f->n, 0);
    WEFT_AWAIT(&f->co, weft_timeout_poll(&f->t1, cx, &f->r1, &f->out1));
    weft_timeout_drop(&f->t1);
    weft_timeout_drop(&f->t1);
    f->a.drops = &f->drops_ready;
    weft_timeout_init(&f->t2, &at_once_future, &f->a, 0);
    WEFT_AWAIT(&f->co, weft_timeout_poll(&f->t2, cx, &f->r2, &f->out2));
    weft_timeout_drop(&f->t2);
    *(zero_timeouts *)out = *f;
    WEFT_END(&f->co);
}

WEFT_DEFINE_FUTURE_STATIC(zero_timeouts, zero_timeouts_poll, NULL, zero_timeouts);

/* timer.h: ms 0 times a pending inner future out (dropped exactly once,
 * `out` untouched); a ready inner future wins even at a deadline of 0 */
TEST(timeout_zero_ms)
{
    weft_runtime *rt;
    zero_timeouts z;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    ASSERT_OK(weft_block_on(rt, &zero_timeouts_future, &(zero_timeouts){ 0 }, &z));
    weft_runtime_free(rt);
    ASSERT_EQ(-ETIMEDOUT, z.r1);
    ASSERT_EQ(1, z.drops_never);
    ASSERT_EQ(-1, z.out1);
    ASSERT_EQ(0, z.r2);
    ASSERT_EQ(77, z.out2);
    ASSERT_EQ(1, z.drops_ready);
}

/* ---- interval: a drop keeps the grid ------------------------------------------ */
typedef struct regrid {
    weft_async co;
    weft_interval iv;
    weft_sleep s;
    uint64_t t0, missed;
    int early;
} regrid;

static weft_poll regrid_poll(regrid *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    f->t0 = harness_now_ns();
    weft_interval_init(&f->iv, 20);
    /* poll once (arms the tick), then drop it: a later tick re-arms on the
     * same grid, so it still comes no earlier than t0 + 20 ms */
    {
        weft_poll p = weft_interval_tick(&f->iv, cx, &f->missed);

        ASSERT_EQ(WEFT_PENDING, p);
    }
    weft_interval_drop(&f->iv);
    weft_interval_drop(&f->iv);
    WEFT_AWAIT(&f->co, weft_interval_tick(&f->iv, cx, &f->missed));
    if (harness_now_ns() - f->t0 < 20u * 1000000u)
        f->early++;
    /* stall 75 ms: at least 2 grid points pass unseen (a lower bound only:
     * a loaded machine makes every tick later, never fewer missed) */
    weft_sleep_init(&f->s, 75);
    WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
    weft_sleep_drop(&f->s);
    WEFT_AWAIT(&f->co, weft_interval_tick(&f->iv, cx, &f->missed));
    ASSERT(f->missed >= 2);
    *(int *)out = f->early;
    WEFT_END(&f->co);
}

static void regrid_drop(regrid *f)
{
    weft_interval_drop(&f->iv);
    weft_sleep_drop(&f->s);
}

WEFT_DEFINE_FUTURE_STATIC(regrid, regrid_poll, regrid_drop, int);

TEST(interval_drop_keeps_the_grid)
{
    weft_runtime *rt;
    int early = -1;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    ASSERT_OK(weft_block_on(rt, &regrid_future, &(regrid){ 0 }, &early));
    weft_runtime_free(rt);
    ASSERT_EQ(0, early);
}

/* A timeout polled after weft_timeout_drop() must not poll the inner future
 * it has dropped (a use after drop): it completes with -EINVAL, `out`
 * untouched, as lock.h's futures do once dropped. */
TEST(timeout_polled_after_drop_is_einval_and_polls_nothing)
{
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int drops = 0, polls = 0, r = 1, out = -1;
    never n = { &drops, &polls };
    weft_timeout t;

    weft_timeout_init(&t, &never_future, &n, 60000);
    ASSERT_EQ(WEFT_PENDING, weft_timeout_poll(&t, &cx, &r, &out));
    ASSERT_EQ(1, polls);
    weft_timeout_drop(&t);
    ASSERT_EQ(1, drops);
    ASSERT_EQ(WEFT_READY, weft_timeout_poll(&t, &cx, &r, &out));
    ASSERT_EQ(-EINVAL, r);
    ASSERT_EQ(-1, out);
    ASSERT_EQ(1, polls);                             /* the dropped inner: never again */
    weft_timeout_drop(&t);
    ASSERT_EQ(1, drops);                             /* dropped exactly once */
}

/* timer.h: "period 0 is treated as 1" -- also for an interval that was
 * zeroed rather than initialised (period 0 in the struct): ticking it must
 * not divide by zero (SIGFPE before the fix). Polled by hand: its sleep is
 * due at once (deadline 0). */
TEST(zeroed_interval_ticks_without_dividing_by_zero)
{
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    weft_interval iv;
    uint64_t missed = 0;

    memset(&iv, 0, sizeof(iv));
    ASSERT_EQ(WEFT_READY, weft_interval_tick(&iv, &cx, &missed));
    ASSERT(missed > 0);                             /* the grid from 0: all missed */
    weft_interval_drop(&iv);
    weft_interval_drop(&iv);
}

