// SPDX-License-Identifier: MIT
/* The lent reference (src/task/task.c): the first clone of a task's own
 * waker made during its poll takes over the poll's reference instead of
 * taking one more. Every way the poll can end, and every way the clone can
 * go (woken by value, dropped, kept past the task's end, on the polling
 * thread or another one, during the poll or after it), must leave the
 * count exact: the task is polled as often as it was woken, its future is
 * dropped once, and its cell is freed once the last reference is gone (a
 * dump no longer lists it; ASan would see a leak or a use after free). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "task_test.h"

enum mode {
    SELF_WAKE_BY_VALUE,     /* clone, wake it by value in the poll: requeued */
    THREAD_WAKES_MID_POLL,  /* clone, another thread wakes it by value mid-poll */
    THREAD_DROPS_MID_POLL,  /* clone, another thread drops it mid-poll; a 2nd clone kept */
    KEEP_AND_COMPLETE,      /* clone kept past the task's end */
    KEEP_AND_YIELD,         /* clone kept, then a yield (the entry needs a reference) */
    KEEP_AND_ABORT,         /* clone kept, the task aborted during its poll */
    TWO_CLONES,             /* the second clone takes a reference of its own */
};

static weft_waker kept[2];
static weft_join *self_join;
static atomic_int handoff;              /* 1: a clone is in `passed`; 2: consumed */
static weft_waker passed;
static atomic_long polls, drops;
static atomic_int kept_ready;           /* kept[0] is set (the waker thread's cue) */

typedef struct lender {
    enum mode mode;
    weft_yield y;
    bool yielding;
} lender;

static void *consumer_main(void *arg)
{
    bool wake = arg != NULL;

    TT_WAIT_UNTIL(atomic_load(&handoff) == 1);
    if (wake)
        weft_waker_wake(&passed);
    else
        weft_waker_drop(&passed);
    atomic_store(&handoff, 2);
    return NULL;
}

/* Wakes kept[0] by value once the poll has left it (the only way the task
 * is woken again in THREAD_DROPS_MID_POLL and TWO_CLONES). */
static void *waker_main(void *arg)
{
    (void)arg;
    TT_WAIT_UNTIL(atomic_load(&kept_ready) == 1);
    weft_waker_wake(&kept[0]);
    return NULL;
}

static weft_poll lender_poll(lender *l, weft_context *cx, void *out)
{
    const weft_waker *me = weft_context_waker(cx);
    long n = atomic_fetch_add(&polls, 1);
    weft_waker w;

    (void)out;
    if (l->yielding) {
        if (weft_yield_poll(&l->y, cx) == WEFT_PENDING)
            return WEFT_PENDING;
        return WEFT_READY;
    }
    switch (l->mode) {
    case SELF_WAKE_BY_VALUE:
        if (n >= 3)
            return WEFT_READY;
        w = weft_waker_clone(me);
        weft_waker_wake(&w);                 /* our own reference, consumed */
        return WEFT_PENDING;
    case THREAD_WAKES_MID_POLL:
    case THREAD_DROPS_MID_POLL:
        if (n >= 1)
            return WEFT_READY;
        if (l->mode == THREAD_DROPS_MID_POLL) {
            kept[0] = weft_waker_clone(me);  /* lent: the one the test wakes */
            atomic_store(&kept_ready, 1);
        }
        passed = weft_waker_clone(me);
        atomic_store(&handoff, 1);
        TT_WAIT_UNTIL(atomic_load(&handoff) == 2);   /* consumed while we poll */
        return WEFT_PENDING;
    case KEEP_AND_COMPLETE:
        kept[0] = weft_waker_clone(me);
        return WEFT_READY;
    case KEEP_AND_YIELD:
        kept[0] = weft_waker_clone(me);
        l->yielding = true;
        weft_yield_init(&l->y);
        return weft_yield_poll(&l->y, cx);   /* a yield entry: PENDING */
    case KEEP_AND_ABORT:
        kept[0] = weft_waker_clone(me);
        weft_join_abort(self_join);          /* acted on when this poll ends */
        return WEFT_PENDING;
    case TWO_CLONES:
        if (n >= 1)
            return WEFT_READY;
        kept[0] = weft_waker_clone(me);
        kept[1] = weft_waker_clone(me);
        atomic_store(&kept_ready, 1);
        return WEFT_PENDING;
    }
    return WEFT_READY;
}

static void lender_drop(lender *l)
{
    (void)l;
    atomic_fetch_add(&drops, 1);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(lender, lender_poll, lender_drop);

static int count_task(const weft_task_info *ti, void *arg)
{
    (void)ti;
    ++*(int *)arg;
    return 0;
}

/* Tasks still listed (a cell not freed holds a reference nobody has). */
static int live_tasks(weft_runtime *rt)
{
    int n = 0;

    ASSERT_OK(weft_runtime_tasks(rt, count_task, &n));
    return n;
}

static void run_mode(enum mode mode, weft_flavor flavor)
{
    weft_runtime *rt = tt_runtime(flavor, flavor == WEFT_CURRENT_THREAD ? 0 : 2);
    pthread_t th = 0, wth = 0;
    bool thread = mode == THREAD_WAKES_MID_POLL || mode == THREAD_DROPS_MID_POLL;
    bool waker = mode == THREAD_DROPS_MID_POLL || mode == TWO_CLONES;
    int r;

    kept[0] = kept[1] = WEFT_WAKER_EMPTY;
    atomic_store(&handoff, 0);
    atomic_store(&polls, 0);
    atomic_store(&drops, 0);
    atomic_store(&kept_ready, 0);
    if (waker)
        wth = tt_thread_start(waker_main, NULL);
    if (thread)
        th = tt_thread_start(consumer_main, mode == THREAD_WAKES_MID_POLL ? (void *)1 : NULL);
    ASSERT_OK(weft_spawn(rt, &lender_future, &(lender){ .mode = mode }, &self_join));
    if (flavor == WEFT_CURRENT_THREAD) {
        ASSERT_OK(weft_runtime_run(rt));     /* until it completed */
        r = weft_join_try(self_join, NULL);
    } else {
        r = weft_join_wait(self_join, NULL);
    }
    ASSERT_EQ(mode == KEEP_AND_ABORT ? -ECANCELED : 0, r);
    if (thread)
        tt_thread_join(th);
    if (waker)
        tt_thread_join(wth);
    ASSERT_EQ(1, atomic_load(&drops));
    switch (mode) {
    case SELF_WAKE_BY_VALUE: ASSERT_EQ(4, atomic_load(&polls)); break;
    case KEEP_AND_COMPLETE:
    case KEEP_AND_ABORT: ASSERT_EQ(1, atomic_load(&polls)); break;
    default: ASSERT_EQ(2, atomic_load(&polls)); break;
    }
    weft_join_drop(self_join);
    /* the wakers kept past the end: a wake is a no-op, the drop frees */
    for (int i = 0; i < 2; i++) {
        if (kept[i].vtable) {
            weft_waker_wake_by_ref(&kept[i]);
            ASSERT_EQ(1, live_tasks(rt));   /* the waker holds the cell */
            weft_waker_drop(&kept[i]);
        }
    }
    /* freed: no reference left over (a worker drops its own just after
     * the join sees the completion: wait for it; a reference too many
     * trips the watchdog) */
    TT_WAIT_UNTIL(live_tasks(rt) == 0);
    weft_runtime_free(rt);
    ASSERT_EQ(1, atomic_load(&drops));
}

TEST(self_wake_by_value_requeues_multi_thread)
{
    run_mode(SELF_WAKE_BY_VALUE, WEFT_MULTI_THREAD);
}

TEST(self_wake_by_value_requeues_current_thread)
{
    run_mode(SELF_WAKE_BY_VALUE, WEFT_CURRENT_THREAD);
}

TEST(a_wake_by_value_from_another_thread_mid_poll_multi_thread)
{
    run_mode(THREAD_WAKES_MID_POLL, WEFT_MULTI_THREAD);
}

TEST(a_wake_by_value_from_another_thread_mid_poll_current_thread)
{
    run_mode(THREAD_WAKES_MID_POLL, WEFT_CURRENT_THREAD);
}

TEST(a_drop_from_another_thread_mid_poll_multi_thread)
{
    run_mode(THREAD_DROPS_MID_POLL, WEFT_MULTI_THREAD);
}

TEST(a_drop_from_another_thread_mid_poll_current_thread)
{
    run_mode(THREAD_DROPS_MID_POLL, WEFT_CURRENT_THREAD);
}

TEST(a_clone_kept_past_completion_multi_thread)
{
    run_mode(KEEP_AND_COMPLETE, WEFT_MULTI_THREAD);
}

TEST(a_clone_kept_past_completion_current_thread)
{
    run_mode(KEEP_AND_COMPLETE, WEFT_CURRENT_THREAD);
}

TEST(a_clone_kept_across_a_yield_multi_thread)
{
    run_mode(KEEP_AND_YIELD, WEFT_MULTI_THREAD);
}

TEST(a_clone_kept_across_a_yield_current_thread)
{
    run_mode(KEEP_AND_YIELD, WEFT_CURRENT_THREAD);
}

TEST(a_clone_kept_across_an_abort_multi_thread)
{
    run_mode(KEEP_AND_ABORT, WEFT_MULTI_THREAD);
}

TEST(a_clone_kept_across_an_abort_current_thread)
{
    run_mode(KEEP_AND_ABORT, WEFT_CURRENT_THREAD);
}

TEST(two_clones_in_one_poll_multi_thread)
{
    run_mode(TWO_CLONES, WEFT_MULTI_THREAD);
}

TEST(two_clones_in_one_poll_current_thread)
{
    run_mode(TWO_CLONES, WEFT_CURRENT_THREAD);
}
