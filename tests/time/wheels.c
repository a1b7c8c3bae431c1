/* SPDX-License-Identifier: MIT */
/* A timer wheel per worker (src/sched/park.c, "Timers"): a timer stays in
 * the wheel of the worker that armed it, whoever cancels it (another
 * worker's task, a foreign thread) and wherever its task runs next; every
 * wheel is driven by whichever worker looks; shutdown cancels what is left
 * in each. The metrics sum the wheels: registered = fired + cancelled +
 * armed at every quiet point. Bounds are watchdogs (the machine is shared). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#define WATCHDOG_MS 30000u
#define SLOTS 2000

/* A hang is a failure: each test arms this first (a test takes well under
 * a second; a timer that never fires would hang it). */
static void *watchdog_main(void *arg)
{
    (void)arg;
    sleep(40);
    fprintf(stderr, "watchdog: still running after 40 s (a timer that never fired?)\n");
    _exit(1);
}

static void watchdog(void)
{
    pthread_t th;

    ASSERT_OK(pthread_create(&th, NULL, watchdog_main, NULL));
    ASSERT_OK(pthread_detach(th));
}

static weft_metrics metrics(weft_runtime *rt)
{
    weft_metrics m;

    memset(&m, 0, sizeof(m));
    m.size = sizeof(m);
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    return m;
}

/* ---- Cancelled elsewhere --------------------------------------------------
 * An armer polls a sleep that lives in the test's memory once, and
 * completes at once (the wheel keeps a waker of a completed task: firing
 * it is a no-op). Then the sleeps are dropped: half by a foreign thread,
 * half by a task on whatever worker, while some of them (1..20 ms) fire. */
static weft_sleep slots[SLOTS];
static atomic_int armed[SLOTS];
static atomic_int narmed;

typedef struct armer {
    int i;
    uint64_t ms;
} armer;

static weft_poll armer_poll(armer *f, weft_context *cx, void *out)
{
    (void)out;
    weft_sleep_init(&slots[f->i], f->ms);
    if (weft_sleep_poll(&slots[f->i], cx) == WEFT_PENDING)
        atomic_store(&armed[f->i], 1);
    else
        atomic_store(&armed[f->i], 2);   /* ready at once (a loaded machine) */
    atomic_fetch_add(&narmed, 1);
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_VOID_STATIC(armer, armer_poll, NULL);

typedef struct canceller {
    int from, step, n;
} canceller;

static weft_poll canceller_poll(canceller *f, weft_context *cx, void *out)
{
    (void)out;
    (void)cx;
    for (int i = f->from; i < f->n; i += f->step)
        weft_sleep_drop(&slots[i]);
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_VOID_STATIC(canceller, canceller_poll, NULL);

static void *foreign_cancel(void *arg)
{
    int n = *(int *)arg;

    for (int i = 0; i < n; i += 2)
        weft_sleep_drop(&slots[i]);
    return NULL;
}

static void cancel_elsewhere(unsigned workers, int rounds)
{
    int n = (int)harness_scale(SLOTS);
    uint64_t seed = 7;
    weft_runtime *rt;

    if (n < 8)
        n = 8;
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = workers }));
    for (int r = 0; r < rounds; r++) {
        pthread_t th;
        weft_join *j;
        weft_metrics m;
        uint64_t t0 = weft_now_ms();

        atomic_store(&narmed, 0);
        for (int i = 0; i < n; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            /* a quarter fire soon (racing the drops), the rest later */
            ASSERT_OK(weft_spawn_detached(rt, &armer_future,
                                          &(armer){ i, i % 4 ? 60000 : 1 + (seed >> 33) % 20 }));
        }
        while (atomic_load(&narmed) < n)
            ASSERT(weft_now_ms() - t0 < WATCHDOG_MS);
        usleep((useconds_t)(r % 3) * 8000);   /* let some of the short ones fire */
        ASSERT_OK(pthread_create(&th, NULL, foreign_cancel, &n));
        ASSERT_OK(weft_spawn(rt, &canceller_future, &(canceller){ 1, 2, n }, &j));
        ASSERT_OK(weft_join_wait(j, NULL));
        weft_join_drop(j);
        ASSERT_OK(pthread_join(th, NULL));
        m = metrics(rt);
        ASSERT_EQ(0, (long long)m.timers_armed);
        ASSERT_EQ((long long)m.timers_registered, (long long)(m.timers_fired + m.timers_cancelled));
        /* the long ones (3 in 4) cannot have fired */
        ASSERT(m.timers_cancelled >= (unsigned long long)(r + 1) * (unsigned long long)(n * 3 / 4));
    }
    weft_runtime_free(rt);
}

TEST(timer_cancelled_by_other_worker_and_foreign_thread)
{
    watchdog();
    cancel_elsewhere(4, harness_stress() ? 2 : 5);
}

TEST(timer_cancelled_elsewhere_two_workers)
{
    watchdog();
    cancel_elsewhere(2, 3);
}

/* ---- Migration ------------------------------------------------------------
 * A task arms a sleep, then yields between polls of it, so that it is
 * stolen and polled on other workers while its timer stays in the first
 * worker's wheel (each poll there replaces the waker under that wheel's
 * lock). Every sleep fires, never early. */
static atomic_int migrated_done, migrated_early;

typedef struct wanderer {
    weft_async co;
    uint64_t ms, deadline;
    weft_sleep s;
    weft_yield y;
} wanderer;

static weft_poll wanderer_poll(wanderer *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    weft_sleep_init(&f->s, f->ms);
    f->deadline = weft_sleep_deadline(&f->s);
    while (weft_sleep_poll(&f->s, cx) == WEFT_PENDING) {
        weft_yield_init(&f->y);
        WEFT_AWAIT(&f->co, weft_yield_poll(&f->y, cx));
    }
    if (weft_now_ms() < f->deadline)
        atomic_fetch_add(&migrated_early, 1);
    weft_sleep_drop(&f->s);
    atomic_fetch_add(&migrated_done, 1);
    WEFT_END(&f->co);
}

static void wanderer_drop(wanderer *f)
{
    weft_sleep_drop(&f->s);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(wanderer, wanderer_poll, wanderer_drop);

typedef struct waiter {
    weft_async co;
    uint64_t ms, deadline;
    weft_sleep s;
} waiter;

static weft_poll waiter_poll(waiter *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    weft_sleep_init(&f->s, f->ms);
    f->deadline = weft_sleep_deadline(&f->s);
    WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
    if (weft_now_ms() < f->deadline)
        atomic_fetch_add(&migrated_early, 1);
    atomic_fetch_add(&migrated_done, 1);
    WEFT_END(&f->co);
}

static void waiter_drop(waiter *f)
{
    weft_sleep_drop(&f->s);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(waiter, waiter_poll, waiter_drop);

TEST(timers_follow_no_task_across_workers)
{
    int n = (int)harness_scale(200);
    weft_runtime *rt;
    weft_metrics m;
    uint64_t t0 = weft_now_ms();

    watchdog();
    atomic_store(&migrated_done, 0);
    atomic_store(&migrated_early, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 4 }));
    for (int i = 0; i < n; i++) {
        ASSERT_OK(weft_spawn_detached(rt, &wanderer_future, &(wanderer){ .ms = 5 + i % 30 }));
        /* and plain sleepers, armed wherever they land, woken wherever the
         * driver runs */
        ASSERT_OK(weft_spawn_detached(rt, &waiter_future, &(waiter){ .ms = 1 + i % 50 }));
    }
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT(weft_now_ms() - t0 < WATCHDOG_MS);
    ASSERT_EQ(2 * n, atomic_load(&migrated_done));
    ASSERT_EQ(0, atomic_load(&migrated_early));
    m = metrics(rt);
    ASSERT_EQ(0, (long long)m.timers_armed);
    ASSERT_EQ((long long)m.timers_registered, (long long)(m.timers_fired + m.timers_cancelled));
    weft_runtime_free(rt);
}

/* ---- Shutdown -------------------------------------------------------------
 * Timers armed in every worker's wheel when the runtime is freed: each
 * task's drop cancels its timer (leaks and use-after-free are the ASan
 * build's to find). */
TEST(shutdown_with_timers_armed_in_every_wheel)
{
    int n = (int)harness_scale(4000);
    weft_runtime *rt;
    uint64_t t0 = weft_now_ms();

    watchdog();
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 4 }));
    for (int i = 0; i < n; i++)
        ASSERT_OK(weft_spawn_detached(rt, &waiter_future, &(waiter){ .ms = 60000 + (uint64_t)i }));
    while (metrics(rt).timers_armed < (unsigned long long)n)
        ASSERT(weft_now_ms() - t0 < WATCHDOG_MS);
    ASSERT_EQ(n, (long long)metrics(rt).timers_registered);
    weft_runtime_free(rt);
}

/* ---- A cancelled earliest timer -------------------------------------------
 * A cancel leaves the wheel's next-deadline hint where it was (a lower
 * bound): the later timer must still fire, on time, and not early. */
typedef struct two {
    weft_async co;
    weft_sleep a, b;
    uint64_t deadline, woke;
} two;

static weft_poll two_poll(two *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    weft_sleep_init(&f->a, 20);
    weft_sleep_init(&f->b, 80);
    f->deadline = weft_sleep_deadline(&f->b);
    ASSERT_EQ(WEFT_PENDING, weft_sleep_poll(&f->b, cx));
    ASSERT_EQ(WEFT_PENDING, weft_sleep_poll(&f->a, cx));
    weft_sleep_drop(&f->a);           /* the earliest, cancelled: b stays armed */
    WEFT_AWAIT(&f->co, weft_sleep_poll(&f->b, cx));
    f->woke = weft_now_ms();
    ASSERT(f->woke >= f->deadline);
    *(uint64_t *)out = f->woke - f->deadline;
    WEFT_END(&f->co);
}

static void two_drop(two *f)
{
    weft_sleep_drop(&f->a);
    weft_sleep_drop(&f->b);
}
WEFT_DEFINE_FUTURE_STATIC(two, two_poll, two_drop, uint64_t);

TEST(cancelled_earliest_timer_leaves_the_next_one_on_time)
{

    static const weft_runtime_options opts[] = { { .workers = 1 }, { .workers = 3 },
                                                 { .flavor = WEFT_CURRENT_THREAD } };

    watchdog();

    for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
        weft_runtime *rt;
        uint64_t late = 0;

        ASSERT_OK(weft_runtime_new(&rt, &opts[k]));
        ASSERT_OK(weft_block_on(rt, &two_future, &(two){ 0 }, &late));
        printf("flavour %zu: the 80 ms sleep woke %llu ms late\n", k, (unsigned long long)late);
        ASSERT(late < WATCHDOG_MS);
        ASSERT_EQ(0, (long long)metrics(rt).timers_armed);
        weft_runtime_free(rt);
    }
}

/* ---- A worker stuck in a long poll holds nobody's timers ------------------
 * A task arms a 20 ms sleep on its worker, then spawns a task that blocks
 * that worker for a second (it runs next, from the LIFO slot, on the same
 * worker). The timer sits in the stuck worker's wheel: another worker must
 * fire it, and the sleeper then runs there. */
static atomic_int blocker_ran;

typedef struct blocker {
    int unused;
} blocker;

static weft_poll blocker_poll(blocker *f, weft_context *cx, void *out)
{
    (void)f;
    (void)cx;
    (void)out;
    usleep(1000 * 1000);              /* a blocking call in a task: the bug we survive */
    atomic_store(&blocker_ran, 1);
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_VOID_STATIC(blocker, blocker_poll, NULL);

typedef struct armed_then_stuck {
    weft_async co;
    weft_sleep s;
    uint64_t deadline;
} armed_then_stuck;

static weft_poll armed_then_stuck_poll(armed_then_stuck *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    weft_sleep_init(&f->s, 20);
    f->deadline = weft_sleep_deadline(&f->s);
    if (weft_sleep_poll(&f->s, cx) == WEFT_PENDING)
        ASSERT_OK(weft_spawn_detached(weft_runtime_current(), &blocker_future, &(blocker){ 0 }));
    WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
    *(uint64_t *)out = weft_now_ms() - f->deadline;
    WEFT_END(&f->co);
}

static void armed_then_stuck_drop(armed_then_stuck *f)
{
    weft_sleep_drop(&f->s);
}
WEFT_DEFINE_FUTURE_STATIC(armed_then_stuck, armed_then_stuck_poll, armed_then_stuck_drop,
                          uint64_t);

TEST(timer_of_a_stuck_worker_fires_elsewhere)
{
    weft_runtime *rt;
    weft_join *j;
    uint64_t late = 0;

    watchdog();
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_spawn(rt, &armed_then_stuck_future, &(armed_then_stuck){ 0 }, &j));
    ASSERT_OK(weft_join_wait(j, &late));
    weft_join_drop(j);
    printf("the stuck worker's timer fired %llu ms late (its worker blocked 1,000 ms; "
           "blocker done: %d)\n", (unsigned long long)late, atomic_load(&blocker_ran));
    ASSERT(late < 500);               /* without another driver: ~980 */
    weft_runtime_free(rt);
}
