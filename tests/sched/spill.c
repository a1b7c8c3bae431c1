/* SPDX-License-Identifier: MIT */
/* Spill lists (src/sched/schedule.c, "Spill lists"): what overflows a
 * worker's full local queue stays with that worker, in its spill list, not
 * in the shared inject queue. These check what that must not break: every
 * spilled task runs, even while the local queue stays full (the periodic
 * look serves the list); a worker stuck in a long poll does not hold its
 * spilled tasks back (searching workers steal from the list); shutdown
 * drops what is spilled; and the metrics count spilled tasks as the
 * worker's queue, not the inject queue's. Built twice, as every scheduler
 * test: with the library's local queue and with one of 4 slots (smallq). */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "weft.h"

#ifndef WEFT_LOCAL_QUEUE_CAP
#define WEFT_LOCAL_QUEUE_CAP 256      /* the library's default (sched/queue.h) */
#endif

/* Enough children to overflow the local queue several times. */
#define SPILL_CHILDREN (4 * WEFT_LOCAL_QUEUE_CAP + 5)

/* Generous: each of these takes milliseconds when weft works. */
#define SP_WATCHDOG_NS ((uint64_t)20 * 1000 * 1000 * 1000)

static weft_runtime *sp_runtime(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = flavor,
                                                             .workers = workers }));
    return rt;
}

static atomic_int sp_failed;
static atomic_int sp_started, sp_done;
static atomic_int sp_parent_worker, sp_parent_polling;
static atomic_llong sp_inject_depth, sp_local_depth;

/* ======================================================================
 * One poll spawns more children than the local queue holds: the overflow
 * stays with the worker (inject queue empty, local depth counts all).
 * ====================================================================== */
typedef struct sp_nop {
    int unused;
} sp_nop;

static weft_poll sp_nop_poll(sp_nop *c, weft_context *cx, void *out)
{
    (void)c, (void)cx, (void)out;
    atomic_fetch_add(&sp_done, 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(sp_nop, sp_nop_poll, NULL);

typedef struct sp_depth_parent {
    int n;
} sp_depth_parent;

static weft_poll sp_depth_parent_poll(sp_depth_parent *p, weft_context *cx, void *out)
{
    weft_metrics m = { .size = sizeof(m) };
    weft_worker_metrics wm;
    weft_runtime *rt = weft_runtime_current();

    (void)cx, (void)out;
    for (int i = 0; i < p->n; i++)
        if (weft_spawn_detached(rt, &sp_nop_future, &(sp_nop){ 0 }) != 0)
            atomic_store(&sp_failed, 1);
    if (weft_runtime_metrics(rt, &m) != 0 ||
        weft_runtime_worker_metrics(rt, (unsigned)weft_worker_index(), &wm) != 0) {
        atomic_store(&sp_failed, 2);
        return WEFT_READY;
    }
    atomic_store(&sp_inject_depth, (long long)m.inject_queue_depth);
    atomic_store(&sp_local_depth, (long long)wm.local_queue_depth);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(sp_depth_parent, sp_depth_parent_poll, NULL);

static void depth_case(weft_runtime *rt)
{
    weft_worker_metrics wm;

    atomic_store(&sp_failed, 0);
    atomic_store(&sp_done, 0);
    atomic_store(&sp_inject_depth, -1);
    atomic_store(&sp_local_depth, -1);
    ASSERT_OK(weft_spawn_detached(rt, &sp_depth_parent_future,
                                  &(sp_depth_parent){ SPILL_CHILDREN }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&sp_failed));
    ASSERT_EQ(SPILL_CHILDREN, atomic_load(&sp_done));
    /* nothing went to the shared queue; the worker's queue holds every
     * child but the one in its LIFO slot */
    ASSERT_EQ(0, atomic_load(&sp_inject_depth));
    ASSERT_EQ(SPILL_CHILDREN - 1, atomic_load(&sp_local_depth));
    ASSERT_OK(weft_runtime_worker_metrics(rt, 0, &wm));
    ASSERT(wm.overflows >= 1);
    ASSERT_EQ(0, wm.local_queue_depth);
    weft_runtime_free(rt);
}

TEST(overflow_stays_with_its_worker_one_worker)
{
    depth_case(sp_runtime(WEFT_MULTI_THREAD, 1));
}

TEST(overflow_stays_with_its_worker_current_thread)
{
    depth_case(sp_runtime(WEFT_CURRENT_THREAD, 0));
}

/* ======================================================================
 * Spilled tasks run while the local queue stays full: each child yields
 * until every child has started. The local queue is refilled by every
 * yield, so it never empties; only the periodic look at the spill list
 * reaches the spilled children (else: the watchdog).
 * ====================================================================== */
typedef struct sp_yielder {
    weft_async co;
    weft_yield y;
    uint64_t give_up;
} sp_yielder;

static weft_poll sp_yielder_poll(sp_yielder *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    atomic_fetch_add(&sp_started, 1);
    while (atomic_load(&sp_started) < SPILL_CHILDREN) {
        if (harness_now_ns() > f->give_up) {
            atomic_store(&sp_failed, 3);   /* some child never started */
            break;
        }
        WEFT_YIELD(&f->co, &f->y, cx);
    }
    atomic_fetch_add(&sp_done, 1);
    WEFT_END(&f->co);
}

WEFT_DEFINE_FUTURE_VOID(sp_yielder, sp_yielder_poll, NULL);

typedef struct sp_yield_parent {
    int unused;
} sp_yield_parent;

static weft_poll sp_yield_parent_poll(sp_yield_parent *p, weft_context *cx, void *out)
{
    uint64_t give_up = harness_now_ns() + SP_WATCHDOG_NS;

    (void)p, (void)cx, (void)out;
    for (int i = 0; i < SPILL_CHILDREN; i++)
        if (weft_spawn_detached(weft_runtime_current(), &sp_yielder_future,
                                &(sp_yielder){ .give_up = give_up }) != 0)
            atomic_store(&sp_failed, 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(sp_yield_parent, sp_yield_parent_poll, NULL);

static void full_queue_case(weft_runtime *rt)
{
    atomic_store(&sp_failed, 0);
    atomic_store(&sp_started, 0);
    atomic_store(&sp_done, 0);
    ASSERT_OK(weft_spawn_detached(rt, &sp_yield_parent_future, &(sp_yield_parent){ 0 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&sp_failed));
    ASSERT_EQ(SPILL_CHILDREN, atomic_load(&sp_started));
    ASSERT_EQ(SPILL_CHILDREN, atomic_load(&sp_done));
    weft_runtime_free(rt);
}

TEST(spilled_tasks_run_while_the_local_queue_stays_full_one_worker)
{
    full_queue_case(sp_runtime(WEFT_MULTI_THREAD, 1));
}

TEST(spilled_tasks_run_while_the_local_queue_stays_full_current_thread)
{
    full_queue_case(sp_runtime(WEFT_CURRENT_THREAD, 0));
}

TEST(spilled_tasks_run_while_the_local_queue_stays_full_two_workers)
{
    full_queue_case(sp_runtime(WEFT_MULTI_THREAD, 2));
}

/* ======================================================================
 * A worker stuck in one long poll, its local queue full and more spilled:
 * the other worker must run them all (steal from the queue, then from the
 * spill list), or the stuck poll never ends (until its watchdog).
 * ====================================================================== */
typedef struct sp_counted {
    int unused;
} sp_counted;

static weft_poll sp_counted_poll(sp_counted *c, weft_context *cx, void *out)
{
    (void)c, (void)cx, (void)out;
    if (atomic_load(&sp_parent_polling) && weft_worker_index() == atomic_load(&sp_parent_worker))
        atomic_store(&sp_failed, 4);      /* ran on the stuck worker? */
    atomic_fetch_add(&sp_done, 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(sp_counted, sp_counted_poll, NULL);

typedef struct sp_block_parent {
    int unused;
} sp_block_parent;

static weft_poll sp_block_parent_poll(sp_block_parent *p, weft_context *cx, void *out)
{
    uint64_t end = harness_now_ns() + SP_WATCHDOG_NS;

    (void)p, (void)cx, (void)out;
    atomic_store(&sp_parent_worker, weft_worker_index());
    atomic_store(&sp_parent_polling, 1);
    for (int i = 0; i < SPILL_CHILDREN; i++)
        if (weft_spawn_detached(weft_runtime_current(), &sp_counted_future, &(sp_counted){ 0 }) !=
            0)
            atomic_store(&sp_failed, 1);
    /* every child but the one in our LIFO slot (the watcher may take that
     * one too, or leave it for after this poll) */
    while (atomic_load(&sp_done) < SPILL_CHILDREN - 1) {
        if (harness_now_ns() > end) {
            atomic_store(&sp_failed, 5);
            break;
        }
        sched_yield();
    }
    atomic_store(&sp_parent_polling, 0);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(sp_block_parent, sp_block_parent_poll, NULL);

TEST(spilled_tasks_of_a_stuck_worker_are_stolen_two_workers)
{
    weft_runtime *rt = sp_runtime(WEFT_MULTI_THREAD, 2);
    weft_metrics m = { .size = sizeof(m) };

    atomic_store(&sp_failed, 0);
    atomic_store(&sp_done, 0);
    atomic_store(&sp_parent_worker, -2);
    ASSERT_OK(weft_spawn_detached(rt, &sp_block_parent_future, &(sp_block_parent){ 0 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&sp_failed));
    ASSERT_EQ(SPILL_CHILDREN, atomic_load(&sp_done));
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT(m.steals >= 2);                /* the queue, then the list */
    weft_runtime_free(rt);
}

/* ======================================================================
 * Shutdown drops spilled tasks: block_on returns with children queued and
 * spilled (the one in the LIFO slot runs right after the root, in the
 * same round); freeing the runtime drops the rest, unpolled, leaking
 * nothing.
 * ====================================================================== */
typedef struct sp_spawn_root {
    int unused;
} sp_spawn_root;

static weft_poll sp_spawn_root_poll(sp_spawn_root *r, weft_context *cx, void *out)
{
    (void)r, (void)cx, (void)out;
    for (int i = 0; i < SPILL_CHILDREN; i++)
        if (weft_spawn_detached(weft_runtime_current(), &sp_nop_future, &(sp_nop){ 0 }) != 0)
            atomic_store(&sp_failed, 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(sp_spawn_root, sp_spawn_root_poll, NULL);

TEST(shutdown_drops_spilled_tasks_current_thread)
{
    long live0 = harness_live();
    weft_runtime *rt = sp_runtime(WEFT_CURRENT_THREAD, 0);
    weft_metrics m = { .size = sizeof(m) };
    int ran;

    atomic_store(&sp_failed, 0);
    atomic_store(&sp_done, 0);
    ASSERT_OK(weft_block_on(rt, &sp_spawn_root_future, &(sp_spawn_root){ 0 }, NULL));
    ran = atomic_load(&sp_done);
    ASSERT(ran <= 1);                     /* at most the LIFO slot's child */
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(SPILL_CHILDREN - ran, m.tasks_live);
    ASSERT_EQ(SPILL_CHILDREN - 1, m.local_queue_depth);   /* queue + spill list */
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(0, m.tasks_live);
    ASSERT_EQ(0, m.local_queue_depth);
    ASSERT_EQ(ran, atomic_load(&sp_done));   /* dropped, never polled */
    weft_runtime_free(rt);
    ASSERT_EQ(0, atomic_load(&sp_failed));
    ASSERT_EQ(live0, harness_live());
}
