/* SPDX-License-Identifier: MIT */
/* Deadlines near the end of the clock (issue 9, item 6): a huge period or
 * duration means "never", not "now + x wrapped into the past". An interval
 * of UINT64_MAX ms used to tick at once and then in a busy loop; its
 * catch-up sum wrapped the same way. Sleep and timeout durations and the
 * wheel's own arithmetic saturate too. */
#define _GNU_SOURCE                   /* usleep */
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "harness.h"
#include "time/wheel.h"
#include "weft.h"

#define CX(name)                                                              \
    weft_waker name##_w = weft_waker_noop();                                  \
    weft_context name = weft_context_from_waker(&name##_w)

/* By hand (no runtime): a tick due far past the clock's range is pending. */
TEST(interval_huge_period_never_ticks)
{
    uint64_t now = weft_now_ms();
    const uint64_t periods[] = {
        UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - now + 1, UINT64_MAX - now / 2,
        (uint64_t)1 << 63,
    };

    CX(cx);
    for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
        weft_interval iv;
        uint64_t missed = 77;

        weft_interval_init(&iv, periods[i]);
        for (int k = 0; k < 3; k++)
            if (weft_interval_tick(&iv, &cx, &missed) != WEFT_PENDING)
                harness_fail(__FILE__, __LINE__, "period %llu ticked (poll %d)",
                             (unsigned long long)periods[i], k);
        ASSERT_EQ(77, missed);
        weft_interval_drop(&iv);
    }
}

/* The catch-up sum after a tick: next + period past the clock's range means
 * no more ticks (it used to wrap into the past and tick again at once). The
 * test moves the private schedule to "due now", as if the clock had run for
 * the whole period. */
TEST(interval_catch_up_saturates)
{
    const uint64_t periods[] = { UINT64_MAX, UINT64_MAX - 10, (uint64_t)1 << 63 | 1 };

    CX(cx);
    for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
        weft_interval iv;
        uint64_t missed = 77;

        weft_interval_init(&iv, periods[i]);
        iv.next = weft_now_ms() - 1;                /* white box: the tick is due */
        iv.armed = false;
        ASSERT_EQ(WEFT_READY, weft_interval_tick(&iv, &cx, &missed));
        ASSERT_EQ(0, missed);
        for (int k = 0; k < 3; k++)
            if (weft_interval_tick(&iv, &cx, &missed) != WEFT_PENDING)
                harness_fail(__FILE__, __LINE__, "period %llu ticked again (poll %d)",
                             (unsigned long long)periods[i], k);
        weft_interval_drop(&iv);
    }
}

/* On a runtime: an interval of UINT64_MAX against a 50 ms sleep; the sleep
 * wins, and the task is polled a handful of times, not in a busy loop. */
typedef struct vs {
    bool started;
    atomic_int *polls;
    uint64_t period;
    weft_interval iv;
    weft_sleep s;
    uint64_t missed;
    int which;                 /* 0: the tick, 1: the sleep */
} vs;

static weft_poll vs_poll(vs *v, weft_context *cx, void *out)
{
    atomic_fetch_add(v->polls, 1);
    if (!v->started) {
        weft_interval_init(&v->iv, v->period);
        weft_sleep_init(&v->s, 50);
        v->started = true;
    }
    for (;;) {
        if (weft_interval_tick(&v->iv, cx, &v->missed) == WEFT_READY) {
            v->which = 0;
            break;
        }
        if (weft_sleep_poll(&v->s, cx) == WEFT_READY) {
            v->which = 1;
            break;
        }
        return WEFT_PENDING;
    }
    weft_interval_drop(&v->iv);
    weft_sleep_drop(&v->s);
    *(int *)out = v->which;
    return WEFT_READY;
}

static void vs_drop(vs *v)
{
    weft_interval_drop(&v->iv);
    weft_sleep_drop(&v->s);
}

WEFT_DEFINE_FUTURE(vs, vs_poll, vs_drop, int);

TEST(interval_huge_period_on_runtime_neither_fires_nor_spins)
{
    weft_runtime *rt;
    const uint64_t periods[] = { UINT64_MAX, UINT64_MAX - weft_now_ms() + 5 };

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
        atomic_int polls = 0;
        weft_join *j;
        int which = -1;

        ASSERT_OK(weft_spawn(rt, &vs_future, &(vs){ .polls = &polls, .period = periods[i] },
                             &j));
        ASSERT_OK(weft_join_wait(j, &which));
        weft_join_drop(j);
        ASSERT_EQ(1, which);                        /* never early */
        ASSERT_LE(harness_stress() ? 20 : 6, atomic_load(&polls));   /* no busy loop */
    }
    weft_runtime_free(rt);
}

/* Sleep and timeout durations past the clock's range: pending, no spin. */
typedef struct never {
    int unused;
} never;

static weft_poll never_poll(never *n, weft_context *cx, void *out)
{
    (void)n;
    (void)cx;
    (void)out;
    return WEFT_PENDING;       /* nobody wakes it: fine for a timeout's inner */
}

WEFT_DEFINE_FUTURE(never, never_poll, NULL, int);

typedef struct huge {
    bool started;
    atomic_int *polls;
    uint64_t ms;
    weft_sleep big, small;
    never inner;
    weft_timeout t;
    int tres, iout;
    int which;
} huge;

static weft_poll huge_poll(huge *h, weft_context *cx, void *out)
{
    atomic_fetch_add(h->polls, 1);
    if (!h->started) {
        weft_sleep_init(&h->big, h->ms);
        weft_timeout_init(&h->t, &never_future, &h->inner, h->ms);
        weft_sleep_init(&h->small, 50);
        h->started = true;
    }
    for (;;) {
        if (weft_sleep_poll(&h->big, cx) == WEFT_READY) {
            h->which = 0;
            break;
        }
        if (weft_timeout_poll(&h->t, cx, &h->tres, &h->iout) == WEFT_READY) {
            h->which = 2;
            break;
        }
        if (weft_sleep_poll(&h->small, cx) == WEFT_READY) {
            h->which = 1;
            break;
        }
        return WEFT_PENDING;
    }
    weft_sleep_drop(&h->big);
    weft_timeout_drop(&h->t);
    weft_sleep_drop(&h->small);
    *(int *)out = h->which;
    return WEFT_READY;
}

static void huge_drop(huge *h)
{
    weft_sleep_drop(&h->big);
    weft_timeout_drop(&h->t);
    weft_sleep_drop(&h->small);
}

WEFT_DEFINE_FUTURE(huge, huge_poll, huge_drop, int);

TEST(sleep_and_timeout_huge_durations_never_fire)
{
    weft_runtime *rt;
    const uint64_t durations[] = { UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - weft_now_ms() + 5 };

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        atomic_int polls = 0;
        weft_join *j;
        int which = -1;

        ASSERT_OK(weft_spawn(rt, &huge_future, &(huge){ .polls = &polls, .ms = durations[i] },
                             &j));
        ASSERT_OK(weft_join_wait(j, &which));
        weft_join_drop(j);
        ASSERT_EQ(1, which);
        ASSERT_LE(harness_stress() ? 20 : 6, atomic_load(&polls));
    }
    weft_runtime_free(rt);
}

/* The wheel itself, with its time near the end of the clock: deadlines at
 * and near UINT64_MAX are kept (not due), and its next-deadline hint never
 * wraps below its time. */
TEST(wheel_near_end_of_clock)
{
    static struct weft__wheel w;
    static struct weft__timer t[3];
    struct weft__timer *due[4];
    const uint64_t base = UINT64_MAX - ((uint64_t)1 << 20);

    weft__wheel_init(&w, base);
    t[0].deadline = UINT64_MAX;
    t[1].deadline = UINT64_MAX - 1;
    t[2].deadline = base + 100;
    for (int i = 0; i < 3; i++) {
        t[i].waker = WEFT_WAKER_EMPTY;
        ASSERT(weft__wheel_insert(&w, &t[i]));
    }
    ASSERT(weft__wheel_next(&w) >= base);
    ASSERT_EQ(0, weft__wheel_advance(&w, base + 99, due, 4));
    ASSERT_EQ(1, weft__wheel_advance(&w, base + 100, due, 4));
    ASSERT(due[0] == &t[2]);
    for (uint64_t k = 1; k < 64; k++) {
        uint64_t now = base + 101 + (k << 14);

        ASSERT_EQ(0, weft__wheel_advance(&w, now, due, 4));
        ASSERT(weft__wheel_next(&w) >= now);
    }
    ASSERT_EQ(0, weft__wheel_advance(&w, UINT64_MAX - 2, due, 4));
    ASSERT_EQ(1, weft__wheel_advance(&w, UINT64_MAX - 1, due, 4));
    ASSERT(due[0] == &t[1]);
    ASSERT_EQ(2, (int)w.count + 1);
    weft__wheel_remove(&w, &t[0]);
    ASSERT_EQ(0, (int)w.count);
}
