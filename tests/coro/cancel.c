/* SPDX-License-Identifier: MIT */
/* Cancelling coroutines (libdill's rule): an abort makes the parked await
 * return -ECANCELED and every later blocking call return -ECANCELED at
 * once; fn runs to its end; the awaited futures are dropped; the stack is
 * released; nothing leaks. Also: abort before the first poll (fn still
 * runs, cancelled from the start), runtime shutdown while parked, group
 * cancel and group failure. */
#include "coro_test.h"

#include <string.h>
#include <unistd.h>

/* What a cancelled coroutine saw. */
struct seen {
    atomic_int started;
    atomic_int parked_result;     /* the await it was parked in */
    atomic_int later_sleep;       /* a blocking call after the abort */
    atomic_int later_yield;
    atomic_int later_recv;
    atomic_int flagged;           /* weft_co_cancelled() after the abort */
    atomic_int cancelled_at_start;
    atomic_int finished;
    atomic_int drops;             /* of the awaited future */
};

static struct seen seen;

/* A future that never completes; counts its drops. */
typedef struct forever {
    int unused;
} forever;

static weft_poll forever_poll(forever *f, weft_context *cx, void *out)
{
    (void)f;
    (void)cx;
    (void)out;
    return WEFT_PENDING;
}

static void forever_drop(forever *f)
{
    (void)f;
    atomic_fetch_add(&seen.drops, 1);
}

WEFT_DEFINE_FUTURE_STATIC(forever, forever_poll, forever_drop, int);

static int parks_forever(void *arg)
{
    weft_chan *ch = arg;
    forever f = { 0 };
    uint64_t t0;
    int v;

    atomic_store(&seen.cancelled_at_start, weft_co_cancelled());
    atomic_fetch_add(&seen.started, 1);
    atomic_store(&seen.parked_result, weft_co_await(&forever_future, &f, &v));
    t0 = weft_now_ms();
    atomic_store(&seen.later_sleep, weft_co_sleep(60 * 1000));
    atomic_store(&seen.later_yield, weft_co_yield());
    if (ch)
        atomic_store(&seen.later_recv, weft_co_chan_recv(ch, &v));
    ASSERT(weft_now_ms() - t0 < 5000);        /* none of them waited */
    atomic_store(&seen.flagged, weft_co_cancelled());
    atomic_fetch_add(&seen.finished, 1);
    return 5;
}

static void seen_reset(void)
{
    memset(&seen, 0, sizeof(seen));
}

static void assert_cancelled_run(int n, bool at_start)
{
    ASSERT_EQ(n, atomic_load(&seen.started));
    ASSERT_EQ(n, atomic_load(&seen.finished));
    ASSERT_EQ(n, atomic_load(&seen.drops));
    ASSERT_EQ(-ECANCELED, atomic_load(&seen.parked_result));
    ASSERT_EQ(-ECANCELED, atomic_load(&seen.later_sleep));
    ASSERT_EQ(-ECANCELED, atomic_load(&seen.later_yield));
    ASSERT_EQ(1, atomic_load(&seen.flagged));
    ASSERT_EQ(at_start, atomic_load(&seen.cancelled_at_start));
}

TEST(abort_while_parked)
{
    weft_runtime *rt = ct_runtime(2);
    weft_chan *ch;
    weft_join *j;
    int out = 0;

    seen_reset();
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    ASSERT_OK(weft_go(rt, parks_forever, ch, &j));
    while (atomic_load(&seen.started) == 0)
        usleep(1000);
    usleep(5000);
    ASSERT_EQ(0, atomic_load(&seen.finished));
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &out));
    assert_cancelled_run(1, false);
    ASSERT_EQ(-ECANCELED, atomic_load(&seen.later_recv));
    weft_join_drop(j);
    weft_chan_drop(ch);
    CT_FREE(rt);
}

TEST(abort_many_while_parked)
{
    weft_runtime *rt = ct_runtime(4);
    int n = (int)harness_scale(500);
    weft_join **js = calloc((size_t)n, sizeof(*js));

    seen_reset();
    ASSERT(js != NULL);
    for (int i = 0; i < n; i++)
        ASSERT_OK(weft_go(rt, parks_forever, NULL, &js[i]));
    /* abort some while they start, the rest once parked */
    for (int i = 0; i < n; i += 2)
        weft_join_abort(js[i]);
    while (atomic_load(&seen.started) < n)
        usleep(1000);
    for (int i = 1; i < n; i += 2)
        weft_join_abort(js[i]);
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(-ECANCELED, weft_join_wait(js[i], NULL));
        weft_join_drop(js[i]);
    }
    ASSERT_EQ(n, atomic_load(&seen.finished));
    ASSERT_EQ(n, atomic_load(&seen.drops));
    free(js);
    CT_FREE(rt);
}

/* Aborted while yielding: a yielding coroutine is always queued, so the
 * abort is acted on when its entry is popped, and the drop resumes it in
 * weft_co_yield (its own path, not the generic await): that yield returns
 * -ECANCELED, never 0 with the coroutine cancelled, and so does every later
 * one, at once. */
struct yield_seen {
    atomic_int yields;
    atomic_int aborted;              /* every abort has been made */
    atomic_int ok_while_cancelled;   /* a yield that returned 0 after the abort */
    atomic_int first_err;
    atomic_int later;
    atomic_int done;
};

static struct yield_seen yseen;

static int yields_forever(void *arg)
{
    int err;

    (void)arg;
    for (;;) {
        /* a yield begun once every abort was made must not return 0 (one
         * begun before may: the abort then comes at the next call, or at
         * weft_co_cancelled(), which may say true right after a yield
         * returned 0: audit 8) */
        int after = atomic_load(&yseen.aborted);

        err = weft_co_yield();
        if (err < 0)
            break;
        if (after)
            atomic_fetch_add(&yseen.ok_while_cancelled, 1);
        atomic_fetch_add(&yseen.yields, 1);
    }
    atomic_store(&yseen.first_err, err);
    atomic_store(&yseen.later, weft_co_yield());
    atomic_fetch_add(&yseen.done, 1);
    return 0;
}

TEST(abort_while_yielding)
{
    weft_runtime *rt = ct_runtime(2);
    int n = (int)harness_scale(40);
    weft_join **js = calloc((size_t)n, sizeof(*js));

    memset(&yseen, 0, sizeof(yseen));
    ASSERT(js != NULL);
    for (int i = 0; i < n; i++)
        ASSERT_OK(weft_go(rt, yields_forever, NULL, &js[i]));
    while (atomic_load(&yseen.yields) < 50 * n)
        usleep(1000);
    for (int i = 0; i < n; i++)
        weft_join_abort(js[i]);
    atomic_store(&yseen.aborted, 1);
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(-ECANCELED, weft_join_wait(js[i], NULL));
        weft_join_drop(js[i]);
    }
    ASSERT_EQ(n, atomic_load(&yseen.done));
    ASSERT_EQ(0, atomic_load(&yseen.ok_while_cancelled));
    ASSERT_EQ(-ECANCELED, atomic_load(&yseen.first_err));
    ASSERT_EQ(-ECANCELED, atomic_load(&yseen.later));
    free(js);
    CT_FREE(rt);
}

/* Aborted before its first poll (a current-thread runtime runs nothing
 * until run()): fn still runs, with every blocking call cancelled. */
TEST(abort_before_start)
{
    weft_runtime *rt = ct_current_thread();
    weft_join *j;

    seen_reset();
    ASSERT_OK(weft_go(rt, parks_forever, NULL, &j));
    weft_join_abort(j);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(-ECANCELED, weft_join_try(j, NULL));
    assert_cancelled_run(1, true);
    weft_join_drop(j);
    CT_FREE(rt);
}

/* Shutdown cancels parked coroutines (their drop runs on the thread that
 * shuts the runtime down) and ones never started. */
TEST(shutdown_while_parked)
{
    weft_runtime *rt = ct_runtime(2);
    weft_chan *ch;
    int n = (int)harness_scale(200);

    seen_reset();
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    for (int i = 0; i < n; i++)
        ASSERT_OK(weft_go_detached(rt, parks_forever, ch));
    while (atomic_load(&seen.started) < n)
        usleep(1000);
    CT_FREE(rt);
    assert_cancelled_run(n, false);
    ASSERT_EQ(-ECANCELED, atomic_load(&seen.later_recv));
    weft_chan_drop(ch);

    /* never started */
    seen_reset();
    rt = ct_current_thread();
    for (int i = 0; i < 10; i++)
        ASSERT_OK(weft_go_detached(rt, parks_forever, NULL));
    CT_FREE(rt);
    assert_cancelled_run(10, true);
}

/* Groups: cancel aborts every coroutine child. */
TEST(group_cancel)
{
    weft_runtime *rt = ct_runtime(2);
    weft_group *g;
    int n = (int)harness_scale(100);

    seen_reset();
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    for (int i = 0; i < n; i++)
        ASSERT_OK(weft_go_group(g, parks_forever, NULL, NULL));
    while (atomic_load(&seen.started) < n)
        usleep(1000);
    weft_group_cancel(g);
    ASSERT_EQ(-ECANCELED, weft_go_group(g, parks_forever, NULL, NULL));
    ASSERT_EQ(-ECANCELED, weft_group_join(g));
    ASSERT_OK(weft_group_free(g));
    assert_cancelled_run(n, false);
    CT_FREE(rt);
}

/* Fails once the 10 siblings have started (checked weft_co_cancelled() at
 * their start): waiting a fixed 10 ms instead let a loaded machine (TSan,
 * 2 CPUs) start a sibling only after the cancel, which then saw itself
 * cancelled at its start (5 runs in 12 failed so at load 11). */
static int fails_soon(void *arg)
{
    (void)arg;
    while (atomic_load(&seen.started) < 10) {
        if (weft_co_sleep(1) < 0)
            return 0;
    }
    if (weft_co_sleep(10) < 0)
        return 0;
    return -EIO;
}

/* A coroutine returning a negative int fails the group, which cancels the
 * parked siblings. */
TEST(group_failure_cancels_siblings)
{
    weft_runtime *rt = ct_runtime(2);
    weft_group *g;

    seen_reset();
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_CANCEL_ON_FAILURE));
    for (int i = 0; i < 10; i++)
        ASSERT_OK(weft_go_group(g, parks_forever, NULL, NULL));
    ASSERT_OK(weft_go_group(g, fails_soon, NULL, NULL));
    ASSERT_EQ(-EIO, weft_group_join(g));
    ASSERT_OK(weft_group_free(g));
    assert_cancelled_run(10, false);
    CT_FREE(rt);
}

/* A coroutine aborted while it waits on a join: the joined task runs on and
 * the handle stays usable. */
static int joins_forever(void *arg)
{
    int err = weft_co_join(arg, NULL);

    atomic_store(&seen.parked_result, err);
    atomic_store(&seen.flagged, weft_co_cancelled());
    return 0;
}

TEST(abort_while_joining)
{
    weft_runtime *rt = ct_runtime(2);
    weft_join *inner, *outer;
    int out = 0;

    seen_reset();
    ASSERT_OK(weft_go(rt, parks_forever, NULL, &inner));
    ASSERT_OK(weft_go(rt, joins_forever, inner, &outer));
    usleep(10000);
    weft_join_abort(outer);
    ASSERT_EQ(-ECANCELED, weft_join_wait(outer, NULL));
    ASSERT_EQ(-ECANCELED, atomic_load(&seen.parked_result));
    ASSERT_EQ(1, atomic_load(&seen.flagged));
    ASSERT(!weft_join_is_complete(inner));
    weft_join_abort(inner);
    ASSERT_EQ(-ECANCELED, weft_join_wait(inner, &out));
    weft_join_drop(inner);
    weft_join_drop(outer);
    CT_FREE(rt);
}
