/* SPDX-License-Identifier: MIT */
/* Parking and unparking: no wake-up from another thread is ever lost.
 *
 *  - ping rounds: a task goes pending (its waker kept by a plain thread);
 *    the thread waits until the task has counted its poll, then wakes it;
 *    round after round, so the worker parks and is unparked every time.
 *    Each round has its own watchdog: a lost wake-up leaves the worker
 *    asleep and the round stuck. 1, 2 and 4 workers and the current-thread
 *    flavour (driven by weft_block_on() on the main thread).
 *  - many foreign threads waking many tasks, sleeping now and then so that
 *    the workers park in between: every wake must lead to exactly one poll.
 *  - many threads waking one task at once: wakes may merge, but after each
 *    wake the task must be polled again (a poll that starts after it). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

/* One round needs microseconds; this only catches a lost wake-up. */
#define ROUND_WATCHDOG_NS ((uint64_t)10 * 1000 * 1000 * 1000)

static weft_runtime *pk_runtime(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = flavor,
                                                             .workers = workers }));
    return rt;
}

/* Wait until *v >= target; fail when one wait lasts longer than the round
 * watchdog. Spins a little, then yields the CPU (the worker may need it). */
static void wait_at_least(atomic_long *v, long target, const char *what, long round)
{
    uint64_t end = 0;
    unsigned spins = 0;

    while (atomic_load(v) < target) {
        if (++spins < 128)
            continue;
        if (end == 0)
            end = harness_now_ns() + ROUND_WATCHDOG_NS;
        else if (harness_now_ns() > end)
            harness_fail(__FILE__, __LINE__, "watchdog: %s: round %ld stuck at %ld of %ld "
                         "(a lost wake-up?)", what, round, atomic_load(v), target);
        if (spins < 4096)
            sched_yield();
        else
            usleep(20);
    }
}

static unsigned long long parks_of(weft_runtime *rt)
{
    unsigned long long parks = 0;

    for (unsigned i = 0; i < weft_runtime_workers(rt); i++) {
        weft_worker_metrics m;

        ASSERT_OK(weft_runtime_worker_metrics(rt, i, &m));
        parks += m.parks;
    }
    return parks;
}

/* ======================================================================
 * Ping rounds. Each round costs a park and an unpark (5-15 us on the 2-core
 * development machine): the scheduler issue's 1,000,000 rounds take 5-20 s
 * per flavour there, so each flavour runs PING_ROUNDS (1,200,000 over the
 * four); raise it for a soak run.
 * ====================================================================== */
#define PING_ROUNDS 300000
static atomic_long pr_polls;
static weft_waker pr_waker;
static long pr_rounds;

typedef struct pr_task {
    int unused;
} pr_task;

static weft_poll pr_task_poll(pr_task *t, weft_context *cx, void *out)
{
    long p;

    (void)t;
    /* the waker is kept before the poll is counted: the thread that sees
     * the count finds the waker there */
    if (atomic_load(&pr_polls) == 0)
        pr_waker = weft_waker_clone(weft_context_waker(cx));
    p = atomic_fetch_add(&pr_polls, 1) + 1;
    if (p == pr_rounds + 1) {
        *(long *)out = p;
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

WEFT_DEFINE_FUTURE(pr_task, pr_task_poll, NULL, long);

/* The foreign side: wake once per poll, each after the poll was counted. */
static void *pr_waker_thread(void *arg)
{
    (void)arg;
    for (long i = 1; i <= pr_rounds; i++) {
        wait_at_least(&pr_polls, i, "ping round", i);
        if (atomic_load(&pr_polls) != i)
            harness_fail(__FILE__, __LINE__, "round %ld: %ld polls for %ld wakes", i,
                         atomic_load(&pr_polls), i - 1);
        if (i % 2) {
            weft_waker_wake_by_ref(&pr_waker);
        } else {
            weft_waker w = weft_waker_clone(&pr_waker);

            weft_waker_wake(&w);
        }
    }
    return NULL;
}

static void ping_rounds(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = pk_runtime(flavor, workers);
    uint64_t t0 = harness_now_ns();
    long out = 0;

    atomic_store(&pr_polls, 0);
    pr_waker = WEFT_WAKER_EMPTY;
    pr_rounds = (long)harness_scale(PING_ROUNDS);
    if (flavor == WEFT_CURRENT_THREAD) {
        pthread_t th;

        /* this thread drives the runtime; the wakes come from another */
        ASSERT_EQ(0, pthread_create(&th, NULL, pr_waker_thread, NULL));
        ASSERT_OK(weft_block_on(rt, &pr_task_future, &(pr_task){ 0 }, &out));
        ASSERT_EQ(0, pthread_join(th, NULL));
    } else {
        weft_join *j;

        ASSERT_OK(weft_spawn(rt, &pr_task_future, &(pr_task){ 0 }, &j));
        pr_waker_thread(NULL);                  /* this thread is the foreign one */
        ASSERT_OK(weft_join_wait(j, &out));
        weft_join_drop(j);
    }
    ASSERT_EQ(pr_rounds + 1, out);
    ASSERT_EQ(pr_rounds + 1, atomic_load(&pr_polls));
    printf("%ld rounds in %.0f ms, %llu parks\n", pr_rounds,
           (double)(harness_now_ns() - t0) / 1e6, parks_of(rt));
    weft_runtime_free(rt);
    weft_waker_drop(&pr_waker);
}

TEST(ping_rounds_one_worker)
{
    ping_rounds(WEFT_MULTI_THREAD, 1);
}

TEST(ping_rounds_two_workers)
{
    ping_rounds(WEFT_MULTI_THREAD, 2);
}

TEST(ping_rounds_four_workers)
{
    ping_rounds(WEFT_MULTI_THREAD, 4);
}

TEST(ping_rounds_current_thread)
{
    ping_rounds(WEFT_CURRENT_THREAD, 0);
}

/* ======================================================================
 * Many foreign threads, many tasks. Thread j owns tasks j, j+T, ...; in
 * each round it waits until each of its tasks has counted the previous
 * wake's poll, then wakes it again. Now and then it sleeps 1 ms, so that
 * the workers run out of work and park. At the end every task must have
 * been polled exactly rounds+1 times: one poll per wake, none lost.
 * ====================================================================== */
#define MF_THREADS 4
#define MF_TASKS 64

static atomic_long mf_polls[MF_TASKS];
static weft_waker mf_wakers[MF_TASKS];
static long mf_rounds;

typedef struct mf_task {
    int i;
} mf_task;

static weft_poll mf_task_poll(mf_task *t, weft_context *cx, void *out)
{
    long p;

    (void)out;
    if (atomic_load(&mf_polls[t->i]) == 0)
        mf_wakers[t->i] = weft_waker_clone(weft_context_waker(cx));
    p = atomic_fetch_add(&mf_polls[t->i], 1) + 1;
    return p == mf_rounds + 1 ? WEFT_READY : WEFT_PENDING;
}

WEFT_DEFINE_FUTURE_VOID(mf_task, mf_task_poll, NULL);

static void *mf_thread(void *arg)
{
    int j = (int)(intptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(j + 1);

    for (long r = 1; r <= mf_rounds; r++) {
        for (int i = j; i < MF_TASKS; i += MF_THREADS) {
            wait_at_least(&mf_polls[i], r, "foreign wakes of many tasks", r);
            if (atomic_load(&mf_polls[i]) != r)
                harness_fail(__FILE__, __LINE__, "task %d: %ld polls after %ld wakes", i,
                             atomic_load(&mf_polls[i]), r - 1);
            if ((r + i) % 3)
                weft_waker_wake_by_ref(&mf_wakers[i]);
            else {
                weft_waker w = weft_waker_clone(&mf_wakers[i]);

                weft_waker_wake(&w);
            }
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if (rng % 64 == 0)
            usleep(1000);                      /* let the workers park */
    }
    return NULL;
}

static void many_wakers(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = pk_runtime(flavor, workers);
    pthread_t th[MF_THREADS];
    uint64_t t0 = harness_now_ns();

    mf_rounds = (long)harness_scale(2000);
    for (int i = 0; i < MF_TASKS; i++) {
        atomic_store(&mf_polls[i], 0);
        mf_wakers[i] = WEFT_WAKER_EMPTY;
        ASSERT_OK(weft_spawn_detached(rt, &mf_task_future, &(mf_task){ i }));
    }
    for (int j = 0; j < MF_THREADS; j++)
        ASSERT_EQ(0, pthread_create(&th[j], NULL, mf_thread, (void *)(intptr_t)j));
    /* current-thread: this thread runs the tasks meanwhile */
    ASSERT_OK(weft_runtime_run(rt));
    for (int j = 0; j < MF_THREADS; j++)
        ASSERT_EQ(0, pthread_join(th[j], NULL));
    for (int i = 0; i < MF_TASKS; i++)
        ASSERT_EQ(mf_rounds + 1, atomic_load(&mf_polls[i]));
    printf("%d threads woke %d tasks %ld times each in %.0f ms; %llu parks\n", MF_THREADS,
           MF_TASKS, mf_rounds, (double)(harness_now_ns() - t0) / 1e6, parks_of(rt));
    weft_runtime_free(rt);
    for (int i = 0; i < MF_TASKS; i++)
        weft_waker_drop(&mf_wakers[i]);
}

TEST(many_foreign_wakers_one_worker)
{
    many_wakers(WEFT_MULTI_THREAD, 1);
}

TEST(many_foreign_wakers_two_workers)
{
    many_wakers(WEFT_MULTI_THREAD, 2);
}

TEST(many_foreign_wakers_four_workers)
{
    many_wakers(WEFT_MULTI_THREAD, 4);
}

TEST(many_foreign_wakers_current_thread)
{
    many_wakers(WEFT_CURRENT_THREAD, 0);
}

/* ======================================================================
 * Many threads wake one task at the same time. Each wake is numbered
 * (a ticket taken just before it); every poll records the newest ticket
 * issued when it began. After its wake a thread waits until a poll has
 * begun after its ticket: wakes may merge, but none may be lost.
 * ====================================================================== */
#define CW_THREADS 4

static atomic_long cw_ticket;          /* tickets issued */
static atomic_long cw_seen;            /* newest ticket a poll began after */
static atomic_long cw_task_polls;
static atomic_int cw_finish;
static weft_waker cw_waker;
static atomic_int cw_ready;
static long cw_per_thread;

typedef struct cw_task {
    int unused;
} cw_task;

static weft_poll cw_task_poll(cw_task *t, weft_context *cx, void *out)
{
    long seen = atomic_load(&cw_ticket);

    (void)t, (void)out;
    if (atomic_load(&cw_ready) == 0) {
        cw_waker = weft_waker_clone(weft_context_waker(cx));
        atomic_store(&cw_ready, 1);
    }
    atomic_fetch_add(&cw_task_polls, 1);
    if (atomic_load(&cw_finish))
        return WEFT_READY;
    /* publish the ticket this poll began after: the wakes before it are
     * served by this poll */
    for (long prev = atomic_load(&cw_seen); prev < seen;)
        if (atomic_compare_exchange_weak(&cw_seen, &prev, seen))
            break;
    return WEFT_PENDING;
}

WEFT_DEFINE_FUTURE_VOID(cw_task, cw_task_poll, NULL);

static void *cw_thread(void *arg)
{
    (void)arg;
    for (long k = 0; k < cw_per_thread; k++) {
        long mine = atomic_fetch_add(&cw_ticket, 1) + 1;

        weft_waker_wake_by_ref(&cw_waker);
        wait_at_least(&cw_seen, mine, "a poll after a concurrent wake", k);
        if (k % 256 == 255)
            usleep(500);                       /* let the workers park */
    }
    return NULL;
}

/* Starts the wakers once the task has been polled, then finishes it. */
static void *cw_coordinator(void *arg)
{
    pthread_t th[CW_THREADS];
    (void)arg;
    wait_at_least(&cw_task_polls, 1, "the first poll", 0);
    for (int i = 0; i < CW_THREADS; i++)
        ASSERT_EQ(0, pthread_create(&th[i], NULL, cw_thread, NULL));
    for (int i = 0; i < CW_THREADS; i++)
        ASSERT_EQ(0, pthread_join(th[i], NULL));
    atomic_store(&cw_finish, 1);
    weft_waker_wake_by_ref(&cw_waker);
    return NULL;
}

static void concurrent_wakes(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = pk_runtime(flavor, workers);
    pthread_t co;
    weft_join *j = NULL;
    uint64_t t0 = harness_now_ns();

    atomic_store(&cw_ticket, 0);
    atomic_store(&cw_seen, 0);
    atomic_store(&cw_task_polls, 0);
    atomic_store(&cw_finish, 0);
    atomic_store(&cw_ready, 0);
    cw_waker = WEFT_WAKER_EMPTY;
    cw_per_thread = (long)harness_scale(10000);
    ASSERT_OK(weft_spawn(rt, &cw_task_future, &(cw_task){ 0 }, &j));
    ASSERT_EQ(0, pthread_create(&co, NULL, cw_coordinator, NULL));
    ASSERT_OK(weft_runtime_run(rt));          /* current-thread: runs it here */
    ASSERT_EQ(0, pthread_join(co, NULL));
    ASSERT_OK(weft_join_try(j, NULL));
    weft_join_drop(j);
    ASSERT(atomic_load(&cw_task_polls) >= 2);
    /* one poll per wake at most, plus the first */
    ASSERT_LE(CW_THREADS * cw_per_thread + 2, atomic_load(&cw_task_polls));
    printf("%d threads x %ld wakes: %ld polls in %.0f ms; %llu parks\n", CW_THREADS,
           cw_per_thread, atomic_load(&cw_task_polls), (double)(harness_now_ns() - t0) / 1e6,
           parks_of(rt));
    weft_runtime_free(rt);
    weft_waker_drop(&cw_waker);
}

TEST(concurrent_wakes_of_one_task_one_worker)
{
    concurrent_wakes(WEFT_MULTI_THREAD, 1);
}

TEST(concurrent_wakes_of_one_task_two_workers)
{
    concurrent_wakes(WEFT_MULTI_THREAD, 2);
}

TEST(concurrent_wakes_of_one_task_four_workers)
{
    concurrent_wakes(WEFT_MULTI_THREAD, 4);
}

TEST(concurrent_wakes_of_one_task_current_thread)
{
    concurrent_wakes(WEFT_CURRENT_THREAD, 0);
}
