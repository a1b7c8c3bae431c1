/* SPDX-License-Identifier: MIT */
/* weft_runtime_workers() and weft_runtime_worker_metrics(): argument
 * checks, and each counter moving when (and only when) its event must have
 * happened: polls, steals, overflows, parks, forced yields, LIFO polls,
 * stranded LIFO tasks taken, local queue depth. Each workload is built so
 * that the event is certain, not merely likely (a blocked worker, a queue
 * filled past its capacity in one poll), with watchdogs for the waits. */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#ifndef WEFT_LOCAL_QUEUE_CAP
#define WEFT_LOCAL_QUEUE_CAP 256      /* the library's default (sched/queue.h) */
#endif

#define MT_WATCHDOG_NS ((uint64_t)20 * 1000 * 1000 * 1000)

#define MT_WAIT_UNTIL(cond, what)                                             \
    do {                                                                      \
        uint64_t mt_end_ = harness_now_ns() + MT_WATCHDOG_NS;                 \
        unsigned mt_spins_ = 0;                                               \
        while (!(cond)) {                                                     \
            if (harness_now_ns() > mt_end_)                                   \
                harness_fail(__FILE__, __LINE__, "watchdog: %s", (what));     \
            if (++mt_spins_ < 64)                                             \
                sched_yield();                                                \
            else                                                              \
                usleep(100);                                                  \
        }                                                                     \
    } while (0)

static weft_runtime *mt_runtime(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = flavor,
                                                             .workers = workers }));
    return rt;
}

static weft_worker_metrics mt_get(const weft_runtime *rt, unsigned i)
{
    weft_worker_metrics m;

    memset(&m, 0xa5, sizeof(m));
    ASSERT_OK(weft_runtime_worker_metrics(rt, i, &m));
    return m;
}

static weft_worker_metrics mt_sum(const weft_runtime *rt)
{
    weft_worker_metrics s;

    memset(&s, 0, sizeof(s));
    for (unsigned i = 0; i < weft_runtime_workers(rt); i++) {
        weft_worker_metrics m = mt_get(rt, i);

        s.polls += m.polls;
        s.steals += m.steals;
        s.overflows += m.overflows;
        s.parks += m.parks;
        s.forced_yields += m.forced_yields;
        s.lifo_polls += m.lifo_polls;
        s.stranded_taken += m.stranded_taken;
        s.local_queue_depth += m.local_queue_depth;
    }
    return s;
}

static void busy_us(unsigned us)
{
    uint64_t end = harness_now_ns() + (uint64_t)us * 1000u;

    while (harness_now_ns() < end)
        ;
}

/* ======================================================================
 * Arguments
 * ====================================================================== */
TEST(workers_counts_slots)
{
    weft_runtime *rt;

    ASSERT_EQ(0, weft_runtime_workers(NULL));
    rt = mt_runtime(WEFT_MULTI_THREAD, 3);
    ASSERT_EQ(3, weft_runtime_workers(rt));
    weft_runtime_free(rt);
    rt = mt_runtime(WEFT_MULTI_THREAD, 1);
    ASSERT_EQ(1, weft_runtime_workers(rt));
    weft_runtime_free(rt);
    rt = mt_runtime(WEFT_CURRENT_THREAD, 0);
    ASSERT_EQ(1, weft_runtime_workers(rt));
    weft_runtime_free(rt);
    /* 0 workers: one per online CPU */
    rt = mt_runtime(WEFT_MULTI_THREAD, 0);
    ASSERT_EQ(sysconf(_SC_NPROCESSORS_ONLN) > WEFT_MAX_WORKERS ? WEFT_MAX_WORKERS
                                                                : sysconf(_SC_NPROCESSORS_ONLN),
              weft_runtime_workers(rt));
    weft_runtime_free(rt);
}

static void bad_arguments(weft_runtime *rt)
{
    unsigned n = weft_runtime_workers(rt);
    weft_worker_metrics m, untouched;

    memset(&m, 0x5a, sizeof(m));
    untouched = m;
    ASSERT_EQ(-EINVAL, weft_runtime_worker_metrics(NULL, 0, &m));
    ASSERT_EQ(-EINVAL, weft_runtime_worker_metrics(rt, 0, NULL));
    ASSERT_EQ(-EINVAL, weft_runtime_worker_metrics(NULL, 0, NULL));
    ASSERT_EQ(-EINVAL, weft_runtime_worker_metrics(rt, n, &m));
    ASSERT_EQ(-EINVAL, weft_runtime_worker_metrics(rt, n + 1, &m));
    ASSERT_EQ(-EINVAL, weft_runtime_worker_metrics(rt, UINT_MAX, &m));
    /* a failed call leaves *out alone */
    ASSERT_EQ(0, memcmp(&m, &untouched, sizeof(m)));
    for (unsigned i = 0; i < n; i++)
        ASSERT_OK(weft_runtime_worker_metrics(rt, i, &m));
}

TEST(metrics_rejects_null_and_out_of_range)
{
    weft_runtime *rt = mt_runtime(WEFT_MULTI_THREAD, 2);

    bad_arguments(rt);
    weft_runtime_free(rt);
    rt = mt_runtime(WEFT_CURRENT_THREAD, 0);
    bad_arguments(rt);
    weft_runtime_free(rt);
}

/* Fresh runtimes have run nothing: every counter but parks is 0. */
TEST(metrics_start_at_zero)
{
    weft_runtime *rts[2] = { mt_runtime(WEFT_MULTI_THREAD, 3), mt_runtime(WEFT_CURRENT_THREAD, 0) };

    for (int k = 0; k < 2; k++) {
        for (unsigned i = 0; i < weft_runtime_workers(rts[k]); i++) {
            weft_worker_metrics m = mt_get(rts[k], i);

            ASSERT_EQ(0, m.polls);
            ASSERT_EQ(0, m.steals);
            ASSERT_EQ(0, m.overflows);
            ASSERT_EQ(0, m.forced_yields);
            ASSERT_EQ(0, m.lifo_polls);
            ASSERT_EQ(0, m.stranded_taken);
            ASSERT_EQ(0, m.local_queue_depth);
        }
        weft_runtime_free(rts[k]);
    }
}

/* ======================================================================
 * polls: the workers count at least every poll the tasks count.
 * ====================================================================== */
#define PT_TASKS 1000
#define PT_YIELDS 5

static atomic_long pt_polls;

typedef struct poll_counter {
    weft_async co;
    int i;
    weft_yield y;
} poll_counter;

static weft_poll poll_counter_poll(poll_counter *p, weft_context *cx, void *out)
{
    (void)out;
    atomic_fetch_add(&pt_polls, 1);
    WEFT_BEGIN(&p->co);
    for (p->i = 0; p->i < PT_YIELDS; p->i++)
        WEFT_YIELD(&p->co, &p->y, cx);
    WEFT_END(&p->co);
}

WEFT_DEFINE_FUTURE_VOID(poll_counter, poll_counter_poll, NULL);

/* Spawns the tasks from inside, so that some go through the LIFO slot and
 * the local queues too. */
typedef struct pt_spawner {
    int n;
} pt_spawner;

static weft_poll pt_spawner_poll(pt_spawner *s, weft_context *cx, void *out)
{
    (void)cx, (void)out;
    for (int i = 0; i < s->n; i++)
        if (weft_spawn_detached(weft_runtime_current(), &poll_counter_future,
                                &(poll_counter){ .i = 0 }) != 0)
            atomic_store(&pt_polls, -1000000000L);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(pt_spawner, pt_spawner_poll, NULL);

static void polls_case(weft_runtime *rt)
{
    weft_worker_metrics s;
    long counted;

    atomic_store(&pt_polls, 0);
    for (int i = 0; i < PT_TASKS / 2; i++)
        ASSERT_OK(weft_spawn_detached(rt, &poll_counter_future, &(poll_counter){ .i = 0 }));
    ASSERT_OK(weft_spawn_detached(rt, &pt_spawner_future, &(pt_spawner){ PT_TASKS / 2 }));
    ASSERT_OK(weft_runtime_run(rt));
    counted = atomic_load(&pt_polls);
    ASSERT_EQ((long)PT_TASKS * (PT_YIELDS + 1), counted);
    s = mt_sum(rt);
    /* + 1: the spawner's poll */
    ASSERT(s.polls >= (unsigned long long)counted + 1);
    printf("%u workers: %llu polls counted by the workers, %ld by the tasks\n",
           weft_runtime_workers(rt), s.polls, counted);
    weft_runtime_free(rt);
}

TEST(polls_cover_every_poll_one_worker)
{
    polls_case(mt_runtime(WEFT_MULTI_THREAD, 1));
}

TEST(polls_cover_every_poll_two_workers)
{
    polls_case(mt_runtime(WEFT_MULTI_THREAD, 2));
}

TEST(polls_cover_every_poll_four_workers)
{
    polls_case(mt_runtime(WEFT_MULTI_THREAD, 4));
}

TEST(polls_cover_every_poll_current_thread)
{
    polls_case(mt_runtime(WEFT_CURRENT_THREAD, 0));
}

/* ======================================================================
 * steals
 * ====================================================================== */
/* Certain: on 2 workers, a task spawns CAP children (one goes to its LIFO
 * slot, the other CAP-1 fill its local queue without overflowing) and then
 * blocks its worker until one child has run elsewhere. The other worker
 * can only get one by stealing from that local queue (or by taking the
 * LIFO slot's task: then it steals the rest next). */
static atomic_int st_ran_elsewhere;
static atomic_int st_blocker_worker;
static atomic_int st_failed;
static atomic_int st_children_done;

typedef struct st_child {
    int unused;
} st_child;

static weft_poll st_child_poll(st_child *c, weft_context *cx, void *out)
{
    (void)c, (void)cx, (void)out;
    if (weft_worker_index() != atomic_load(&st_blocker_worker))
        atomic_store(&st_ran_elsewhere, 1);
    busy_us(20);
    atomic_fetch_add(&st_children_done, 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(st_child, st_child_poll, NULL);

typedef struct st_parent {
    int n;
    bool block;               /* until a child ran on another worker */
} st_parent;

static weft_poll st_parent_poll(st_parent *p, weft_context *cx, void *out)
{
    uint64_t end = harness_now_ns() + MT_WATCHDOG_NS;

    (void)cx, (void)out;
    atomic_store(&st_blocker_worker, weft_worker_index());
    for (int i = 0; i < p->n; i++)
        if (weft_spawn_detached(weft_runtime_current(), &st_child_future, &(st_child){ 0 }) != 0)
            atomic_store(&st_failed, 1);
    while (p->block && !atomic_load(&st_ran_elsewhere))
        if (harness_now_ns() > end) {
            atomic_store(&st_failed, 2);
            break;
        }
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(st_parent, st_parent_poll, NULL);

TEST(steals_counted_when_a_blocked_workers_queue_is_stolen)
{
    int rounds = 5;

    for (int r = 0; r < rounds; r++) {
        weft_runtime *rt = mt_runtime(WEFT_MULTI_THREAD, 2);
        weft_worker_metrics s, other;

        atomic_store(&st_ran_elsewhere, 0);
        atomic_store(&st_failed, 0);
        atomic_store(&st_children_done, 0);
        atomic_store(&st_blocker_worker, -1);
        ASSERT_OK(weft_spawn_detached(rt, &st_parent_future,
                                      &(st_parent){ WEFT_LOCAL_QUEUE_CAP, true }));
        ASSERT_OK(weft_runtime_run(rt));
        ASSERT_EQ(0, atomic_load(&st_failed));
        ASSERT_EQ(WEFT_LOCAL_QUEUE_CAP, atomic_load(&st_children_done));
        s = mt_sum(rt);
        other = mt_get(rt, 1 - (unsigned)atomic_load(&st_blocker_worker));
        /* the local queue never overflowed, so its tasks reached the
         * other worker by stealing */
        ASSERT_EQ(0, s.overflows);
        ASSERT(other.steals >= 1);
        weft_runtime_free(rt);
    }
}

/* The workload of the issue: one task spawns many children that each take
 * a while (20 us); the other worker must steal some. The spawner keeps
 * spawning in batches until a steal shows in the metrics (a watchdog bounds
 * it), so the verdict does not hang on how the OS schedules threads. */
#define WS_BATCH (WEFT_LOCAL_QUEUE_CAP / 2 < 64 ? WEFT_LOCAL_QUEUE_CAP / 2 : 64)
static atomic_int ws_batches;
static atomic_int ws_spawned;

typedef struct ws_spawner {
    weft_async co;
    weft_yield y;
    uint64_t give_up;
} ws_spawner;

static weft_poll ws_spawner_poll(ws_spawner *s, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&s->co);
    s->give_up = harness_now_ns() + MT_WATCHDOG_NS;
    for (;;) {
        weft_runtime *rt;                /* set on every pass: an await follows */
        weft_worker_metrics m0, m1;

        rt = weft_runtime_current();
        if (weft_runtime_worker_metrics(rt, 0, &m0) != 0 ||
            weft_runtime_worker_metrics(rt, 1, &m1) != 0) {
            atomic_store(&st_failed, 3);
            break;
        }
        if (m0.steals + m1.steals > 0 || harness_now_ns() > s->give_up)
            break;
        atomic_fetch_add(&ws_batches, 1);
        /* a batch that fits the local queue (the 4-slot test build): the
         * other worker steals from the queue itself, not from its spill
         * list */
        for (int i = 0; i < WS_BATCH; i++) {
            if (weft_spawn_detached(rt, &st_child_future, &(st_child){ 0 }) != 0)
                atomic_store(&st_failed, 1);
            else
                atomic_fetch_add(&ws_spawned, 1);
        }
        WEFT_YIELD(&s->co, &s->y, cx);
    }
    WEFT_END(&s->co);
}

WEFT_DEFINE_FUTURE_VOID(ws_spawner, ws_spawner_poll, NULL);

TEST(steals_counted_under_a_spawning_workload)
{
    weft_runtime *rt = mt_runtime(WEFT_MULTI_THREAD, 2);
    weft_worker_metrics s;

    atomic_store(&st_failed, 0);
    atomic_store(&ws_batches, 0);
    atomic_store(&ws_spawned, 0);
    atomic_store(&st_children_done, 0);
    atomic_store(&st_blocker_worker, -1);
    ASSERT_OK(weft_spawn_detached(rt, &ws_spawner_future, &(ws_spawner){ .co = { 0 } }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&st_failed));
    s = mt_sum(rt);
    printf("%d batches of %d: steals %llu, overflows %llu, polls %llu\n",
           atomic_load(&ws_batches), WS_BATCH, s.steals, s.overflows, s.polls);
    ASSERT(s.steals > 0);
    ASSERT_EQ(atomic_load(&ws_spawned), atomic_load(&st_children_done));
    weft_runtime_free(rt);
}

/* ======================================================================
 * overflows: one poll spawns more than a local queue holds.
 * ====================================================================== */
static void overflow_case(weft_runtime *rt, int n)
{
    weft_worker_metrics m;

    atomic_store(&st_failed, 0);
    atomic_store(&st_children_done, 0);
    atomic_store(&st_blocker_worker, -1);
    ASSERT_OK(weft_spawn_detached(rt, &st_parent_future, &(st_parent){ n, false }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&st_failed));
    ASSERT_EQ(n, atomic_load(&st_children_done));
    m = mt_get(rt, 0);
    printf("%d spawned in one poll (queue of %d): %llu overflows\n", n, WEFT_LOCAL_QUEUE_CAP,
           m.overflows);
    ASSERT(m.overflows >= 1);
    weft_runtime_free(rt);
}

/* One worker: nobody steals, so the queue is certain to fill: the first
 * child goes to the LIFO slot, CAP more fill the queue, the next overflows. */
TEST(overflows_counted_one_worker)
{
    overflow_case(mt_runtime(WEFT_MULTI_THREAD, 1), WEFT_LOCAL_QUEUE_CAP + 2);
}

TEST(overflows_counted_current_thread)
{
    overflow_case(mt_runtime(WEFT_CURRENT_THREAD, 0), WEFT_LOCAL_QUEUE_CAP + 2);
}

TEST(overflows_counted_many_one_worker)
{
    overflow_case(mt_runtime(WEFT_MULTI_THREAD, 1), 4 * WEFT_LOCAL_QUEUE_CAP + 1);
}

/* Within capacity: no overflow. */
TEST(no_overflow_within_capacity)
{
    weft_runtime *rt = mt_runtime(WEFT_MULTI_THREAD, 1);

    atomic_store(&st_failed, 0);
    atomic_store(&st_children_done, 0);
    ASSERT_OK(weft_spawn_detached(rt, &st_parent_future,
                                  &(st_parent){ WEFT_LOCAL_QUEUE_CAP, false }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(WEFT_LOCAL_QUEUE_CAP, atomic_load(&st_children_done));
    ASSERT_EQ(0, mt_get(rt, 0).overflows);
    weft_runtime_free(rt);
}

/* ======================================================================
 * parks
 * ====================================================================== */
typedef struct nop {
    int unused;
} nop;

static weft_poll nop_poll(nop *n, weft_context *cx, void *out)
{
    (void)n, (void)cx, (void)out;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(nop, nop_poll, NULL);

static bool all_parked(const weft_runtime *rt, const unsigned long long *before)
{
    for (unsigned i = 0; i < weft_runtime_workers(rt); i++)
        if (mt_get(rt, i).parks <= before[i])
            return false;
    return true;
}

TEST(parks_counted_after_idling)
{
    weft_runtime *rt = mt_runtime(WEFT_MULTI_THREAD, 3);
    unsigned long long before[3] = { 0, 0, 0 };

    /* idle from the start: every worker parks */
    MT_WAIT_UNTIL(all_parked(rt, before), "idle workers never parked");
    /* work, then idle again: they park again */
    for (unsigned i = 0; i < 3; i++)
        before[i] = mt_get(rt, i).parks;
    for (int i = 0; i < 100; i++)
        ASSERT_OK(weft_spawn_detached(rt, &nop_future, &(nop){ 0 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT(mt_sum(rt).polls >= 100);
    MT_WAIT_UNTIL(mt_sum(rt).parks > before[0] + before[1] + before[2],
                  "workers never parked after the work");
    weft_runtime_free(rt);
}

/* Current-thread: the driver parks while its root task waits for a wake
 * from another thread; that thread wakes it only once the park shows in
 * the metrics (read from a foreign thread, as the API allows). */
static weft_waker pk_waker;
static atomic_int pk_registered;
static atomic_int pk_go;
static weft_runtime *pk_rt;

typedef struct pk_root {
    int unused;
} pk_root;

static weft_poll pk_root_poll(pk_root *r, weft_context *cx, void *out)
{
    (void)r, (void)out;
    if (atomic_load(&pk_go))
        return WEFT_READY;
    if (!atomic_load(&pk_registered)) {
        pk_waker = weft_waker_clone(weft_context_waker(cx));
        atomic_store(&pk_registered, 1);
    }
    return WEFT_PENDING;
}

WEFT_DEFINE_FUTURE_VOID(pk_root, pk_root_poll, NULL);

static void *pk_thread(void *arg)
{
    (void)arg;
    MT_WAIT_UNTIL(atomic_load(&pk_registered), "root task never polled");
    MT_WAIT_UNTIL(mt_get(pk_rt, 0).parks >= 1, "current-thread driver never parked");
    atomic_store(&pk_go, 1);
    weft_waker_wake_by_ref(&pk_waker);
    return NULL;
}

TEST(parks_counted_current_thread)
{
    pthread_t th;

    pk_rt = mt_runtime(WEFT_CURRENT_THREAD, 0);
    pk_waker = WEFT_WAKER_EMPTY;
    atomic_store(&pk_registered, 0);
    atomic_store(&pk_go, 0);
    ASSERT_EQ(0, mt_get(pk_rt, 0).parks);       /* no thread drives it yet */
    ASSERT_EQ(0, pthread_create(&th, NULL, pk_thread, NULL));
    ASSERT_OK(weft_block_on(pk_rt, &pk_root_future, &(pk_root){ 0 }, NULL));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT(mt_get(pk_rt, 0).parks >= 1);
    weft_runtime_free(pk_rt);
    weft_waker_drop(&pk_waker);
}

/* ======================================================================
 * forced_yields, lifo_polls, local_queue_depth
 * ====================================================================== */
typedef struct always_ready_loop {
    weft_async co;
    long i, n;
} always_ready_loop;

static weft_poll ready_leaf(weft_context *cx)
{
    return weft_coop_proceed(cx) ? WEFT_READY : WEFT_PENDING;
}

static weft_poll always_ready_loop_poll(always_ready_loop *a, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&a->co);
    for (a->i = 0; a->i < a->n; a->i++)
        WEFT_AWAIT(&a->co, ready_leaf(cx));
    WEFT_END(&a->co);
}

WEFT_DEFINE_FUTURE_VOID(always_ready_loop, always_ready_loop_poll, NULL);

static void forced_yields_case(weft_runtime *rt)
{
    weft_worker_metrics m;
    long n = 100000;

    ASSERT_OK(weft_spawn_detached(rt, &always_ready_loop_future,
                                  &(always_ready_loop){ .n = n }));
    ASSERT_OK(weft_runtime_run(rt));
    m = mt_get(rt, 0);
    /* a budget of any size below n forces at least one yield; with the
     * design's 128 it is n / 129 of them */
    printf("%ld always-ready operations: %llu forced yields, %llu polls\n", n,
           m.forced_yields, m.polls);
    ASSERT(m.forced_yields >= 1);
    ASSERT_EQ(m.forced_yields + 1, m.polls);   /* every poll but the last cut short */
    weft_runtime_free(rt);
}

TEST(forced_yields_counted_one_worker)
{
    forced_yields_case(mt_runtime(WEFT_MULTI_THREAD, 1));
}

TEST(forced_yields_counted_current_thread)
{
    forced_yields_case(mt_runtime(WEFT_CURRENT_THREAD, 0));
}

/* A pair on one worker waking each other: the woken one runs from the
 * LIFO slot. */
static weft_waker lp_w[2];
static atomic_long lp_rounds;

typedef struct lp_pinger {
    int me;
    long n;
} lp_pinger;

static weft_poll lp_pinger_poll(lp_pinger *p, weft_context *cx, void *out)
{
    (void)out;
    /* one worker: both run on the same thread, no lock needed */
    weft_waker_drop(&lp_w[p->me]);
    if (atomic_fetch_add(&lp_rounds, 1) >= p->n) {
        weft_waker_wake(&lp_w[1 - p->me]);
        return WEFT_READY;
    }
    lp_w[p->me] = weft_waker_clone(weft_context_waker(cx));
    weft_waker_wake(&lp_w[1 - p->me]);
    return WEFT_PENDING;
}

WEFT_DEFINE_FUTURE_VOID(lp_pinger, lp_pinger_poll, NULL);

static void lifo_case(weft_runtime *rt)
{
    weft_worker_metrics m;

    lp_w[0] = lp_w[1] = WEFT_WAKER_EMPTY;
    atomic_store(&lp_rounds, 0);
    ASSERT_OK(weft_spawn_detached(rt, &lp_pinger_future, &(lp_pinger){ 0, 1000 }));
    ASSERT_OK(weft_spawn_detached(rt, &lp_pinger_future, &(lp_pinger){ 1, 1000 }));
    ASSERT_OK(weft_runtime_run(rt));
    m = mt_get(rt, 0);
    printf("ping-pong: %llu polls, %llu from the LIFO slot\n", m.polls, m.lifo_polls);
    ASSERT(m.lifo_polls > 0);
    ASSERT(m.lifo_polls < m.polls);
    ASSERT_EQ(0, m.stranded_taken);            /* one worker: nobody to take it */
    weft_runtime_free(rt);
    weft_waker_drop(&lp_w[0]);
    weft_waker_drop(&lp_w[1]);
}

TEST(lifo_polls_counted_one_worker)
{
    lifo_case(mt_runtime(WEFT_MULTI_THREAD, 1));
}

TEST(lifo_polls_counted_current_thread)
{
    lifo_case(mt_runtime(WEFT_CURRENT_THREAD, 0));
}

/* On one worker, a task spawns k children (the last in the LIFO slot, the
 * others queued locally) and reads its own worker's queue depth. */
static atomic_llong qd_seen;

typedef struct qd_parent {
    int k;
} qd_parent;

static weft_poll qd_parent_poll(qd_parent *p, weft_context *cx, void *out)
{
    weft_worker_metrics m;

    (void)cx, (void)out;
    for (int i = 0; i < p->k; i++)
        if (weft_spawn_detached(weft_runtime_current(), &nop_future, &(nop){ 0 }) != 0)
            atomic_store(&qd_seen, -2);
    if (weft_runtime_worker_metrics(weft_runtime_current(), (unsigned)weft_worker_index(), &m))
        atomic_store(&qd_seen, -3);
    else
        atomic_store(&qd_seen, (long long)m.local_queue_depth);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(qd_parent, qd_parent_poll, NULL);

static void depth_case(weft_runtime *rt, int k)
{
    atomic_store(&qd_seen, -1);
    ASSERT_OK(weft_spawn_detached(rt, &qd_parent_future, &(qd_parent){ k }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(k - 1, atomic_load(&qd_seen));
    ASSERT_EQ(0, mt_get(rt, 0).local_queue_depth);
    weft_runtime_free(rt);
}

TEST(local_queue_depth_one_worker)
{
    for (int k = 1; k <= WEFT_LOCAL_QUEUE_CAP + 1 && k <= 64; k++)
        depth_case(mt_runtime(WEFT_MULTI_THREAD, 1), k);
}

TEST(local_queue_depth_current_thread)
{
    for (int k = 1; k <= WEFT_LOCAL_QUEUE_CAP + 1 && k <= 64; k++)
        depth_case(mt_runtime(WEFT_CURRENT_THREAD, 0), k);
}
