/* SPDX-License-Identifier: MIT */
/* timeout over any future, and interval ticks. */
#define _GNU_SOURCE
#include <stdatomic.h>

#include "harness.h"
#include "weft.h"

static atomic_int inner_drops, inner_polls;

/* A future that becomes ready after `ms` (its own sleep), output 7. */
typedef struct slow {
    weft_sleep s;
    bool started;
    uint64_t ms;
} slow;

static weft_poll slow_poll(slow *f, weft_context *cx, void *out)
{
    atomic_fetch_add(&inner_polls, 1);
    if (!f->started) {
        weft_sleep_init(&f->s, f->ms);
        f->started = true;
    }
    if (weft_sleep_poll(&f->s, cx) == WEFT_PENDING)
        return WEFT_PENDING;
    *(int *)out = 7;
    return WEFT_READY;
}

static void slow_drop(slow *f)
{
    atomic_fetch_add(&inner_drops, 1);
    if (f->started)
        weft_sleep_drop(&f->s);
}

WEFT_DEFINE_FUTURE(slow, slow_poll, slow_drop, int);

typedef struct guarded {
    weft_async co;
    slow inner;
    weft_timeout t;
    uint64_t limit;
    int result, value;
} guarded;

static weft_poll guarded_poll(guarded *g, weft_context *cx, void *out)
{
    WEFT_BEGIN(&g->co);
    weft_timeout_init(&g->t, &slow_future, &g->inner, g->limit);
    WEFT_AWAIT(&g->co, weft_timeout_poll(&g->t, cx, &g->result, &g->value));
    ((int *)out)[0] = g->result;
    ((int *)out)[1] = g->value;
    WEFT_END(&g->co);
}

static void guarded_drop(guarded *g)
{
    if (g->co.line != 0)
        weft_timeout_drop(&g->t);
}

typedef struct pair {
    int a, b;
} pair;

WEFT_DEFINE_FUTURE(guarded, guarded_poll, guarded_drop, pair);

static pair run_guarded(uint64_t inner_ms, uint64_t limit)
{
    weft_runtime *rt;
    pair out = { 1, 1 };

    atomic_store(&inner_drops, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_block_on(rt, &guarded_future,
                            &(guarded){ .inner = { .ms = inner_ms }, .limit = limit }, &out));
    weft_runtime_free(rt);
    ASSERT_EQ(1, atomic_load(&inner_drops));        /* dropped exactly once */
    return out;
}

TEST(timeout_passes_output_when_inner_is_faster)
{
    pair p = run_guarded(5, 5000);

    ASSERT_EQ(0, p.a);
    ASSERT_EQ(7, p.b);
}

TEST(timeout_reports_etimedout_and_drops_inner)
{
    uint64_t t0 = weft_now_ms();
    pair p = run_guarded(60000, 20);

    ASSERT_EQ(-ETIMEDOUT, p.a);
    ASSERT_EQ(0, p.b);                              /* output untouched */
    ASSERT(weft_now_ms() >= t0 + 20);               /* not early */
    ASSERT(weft_now_ms() < t0 + 30000);             /* watchdog */
}

TEST(timeout_dropped_while_pending_drops_inner_once)
{
    weft_runtime *rt;
    weft_join *j;

    atomic_store(&inner_drops, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_spawn(rt, &guarded_future,
                         &(guarded){ .inner = { .ms = 60000 }, .limit = 60000 }, &j));
    while (atomic_load(&inner_polls) == 0)
        ;
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
    weft_join_drop(j);
    weft_runtime_free(rt);
    ASSERT_EQ(1, atomic_load(&inner_drops));
}

TEST(timeout_misuse)
{
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);
    weft_timeout t;
    int r = 0;

    ASSERT_EQ(WEFT_READY, weft_timeout_poll(NULL, &cx, &r, NULL));
    ASSERT_EQ(-EINVAL, r);
    weft_timeout_init(&t, NULL, NULL, 10);
    ASSERT_EQ(WEFT_READY, weft_timeout_poll(&t, &cx, &r, NULL));
    ASSERT_EQ(-EINVAL, r);
    weft_timeout_drop(&t);
    weft_timeout_drop(NULL);
}

/* Interval: ticks on a grid, never early; a stall reports missed ticks. */
typedef struct ticker {
    weft_async co;
    weft_interval iv;
    int ticks;
    uint64_t start, missed, total_missed, stall_ms;
    int early;
} ticker;

static weft_poll ticker_poll(ticker *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    f->start = weft_now_ms();
    weft_interval_init(&f->iv, 10);
    for (f->ticks = 0; f->ticks < 10; f->ticks++) {
        WEFT_AWAIT(&f->co, weft_interval_tick(&f->iv, cx, &f->missed));
        f->total_missed += f->missed;
        if (weft_now_ms() < f->start + 10 * (uint64_t)(f->ticks + 1 + f->total_missed))
            f->early++;
        if (f->ticks == 3 && f->stall_ms) {           /* hog the worker */
            uint64_t until = weft_now_ms() + f->stall_ms;

            while (weft_now_ms() < until)
                ;
        }
    }
    *(ticker *)out = *f;
    WEFT_END(&f->co);
}

static void ticker_drop(ticker *f)
{
    weft_interval_drop(&f->iv);
}

WEFT_DEFINE_FUTURE(ticker, ticker_poll, ticker_drop, ticker);

TEST(interval_ticks_never_early)
{
    weft_runtime *rt;
    ticker out;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    ASSERT_OK(weft_block_on(rt, &ticker_future, &(ticker){ .stall_ms = 0 }, &out));
    weft_runtime_free(rt);
    ASSERT_EQ(10, out.ticks);
    ASSERT_EQ(0, out.early);
    ASSERT(weft_now_ms() >= out.start + 100);
}

TEST(interval_skips_missed_ticks)
{
    weft_runtime *rt;
    ticker out;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_block_on(rt, &ticker_future, &(ticker){ .stall_ms = 55 }, &out));
    weft_runtime_free(rt);
    ASSERT_EQ(10, out.ticks);
    ASSERT_EQ(0, out.early);
    ASSERT(out.total_missed >= 4);      /* a 55 ms stall spans at least 4 ticks */
}
