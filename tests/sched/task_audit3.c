/* SPDX-License-Identifier: MIT */
/* Third audit of weft/task.h and weft/sched.h: a join handle read after its
 * runtime was freed (output kept, or -ECANCELED), read many times and by
 * every call, an abort after completion that changes nothing, spawns and
 * block_on after shutdown (nothing dropped, *join untouched), and the
 * runtime options refused with *out untouched. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "harness.h"
#include "weft.h"

static atomic_int drops;

typedef struct answer {
    int value;
} answer;

static weft_poll answer_poll(answer *f, weft_context *cx, void *out)
{
    (void)cx;
    *(int *)out = f->value;
    return WEFT_READY;
}

static void answer_drop(answer *f)
{
    (void)f;
    atomic_fetch_add(&drops, 1);
}

WEFT_DEFINE_FUTURE_STATIC(answer, answer_poll, answer_drop, int);

typedef struct forever {
    int unused;
} forever;

static weft_poll forever_poll(forever *f, weft_context *cx, void *out)
{
    (void)f, (void)cx, (void)out;
    return WEFT_PENDING;
}

static void forever_drop(forever *f)
{
    (void)f;
    atomic_fetch_add(&drops, 1);
}

WEFT_DEFINE_FUTURE_STATIC(forever, forever_poll, forever_drop, int);

static void wait_complete(weft_join *j)
{
    uint64_t end = harness_now_ns() + 30ull * 1000 * 1000 * 1000;

    while (!weft_join_is_complete(j)) {
        if (harness_now_ns() > end)
            harness_fail(__FILE__, __LINE__, "watchdog: task never completed");
        sched_yield();
    }
}

/* task.h: the handle outlives the runtime; its answer does not change. */
TEST(join_handles_read_after_runtime_free)
{
    weft_runtime *rt;
    weft_join *done, *never;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int out = 0, res = 1;

    atomic_store(&drops, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_spawn(rt, &answer_future, &(answer){ 42 }, &done));
    ASSERT_OK(weft_spawn(rt, &forever_future, &(forever){ 0 }, &never));
    wait_complete(done);
    weft_join_abort(done);                          /* completed: changes nothing */
    weft_join_abort(done);
    weft_runtime_free(rt);
    ASSERT_EQ(2, atomic_load(&drops));              /* each future dropped once */
    for (int i = 0; i < 2; i++) {
        out = 0;
        ASSERT_OK(weft_join_wait(done, &out));
        ASSERT_EQ(42, out);
        out = 0;
        ASSERT_OK(weft_join_try(done, &out));
        ASSERT_EQ(42, out);
        out = 0;
        ASSERT_EQ(WEFT_READY, weft_join_poll(done, &cx, &res, &out));
        ASSERT_OK(res);
        ASSERT_EQ(42, out);
        ASSERT_OK(weft_join_wait(done, NULL));
        ASSERT(weft_join_is_complete(done));

        out = 7;
        ASSERT_EQ(-ECANCELED, weft_join_wait(never, &out));
        ASSERT_EQ(-ECANCELED, weft_join_try(never, &out));
        ASSERT_EQ(WEFT_READY, weft_join_poll(never, &cx, &res, &out));
        ASSERT_EQ(-ECANCELED, res);
        ASSERT_EQ(7, out);                          /* untouched */
        ASSERT(weft_join_is_complete(never));
        weft_join_abort(never);
    }
    weft_join_drop(done);
    weft_join_drop(never);
    ASSERT_EQ(2, atomic_load(&drops));
}

/* sched.h: after shutdown, spawn and block_on report -ESHUTDOWN; the future
 * is not dropped (it was never moved into weft) and *join is untouched. */
TEST(spawn_and_block_on_after_shutdown)
{
    weft_runtime *rt;
    weft_join *j = (weft_join *)0x1;
    int out = 5;

    atomic_store(&drops, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_OK(weft_runtime_shutdown(rt));           /* idempotent */
    ASSERT_EQ(-ESHUTDOWN, weft_spawn(rt, &answer_future, &(answer){ 1 }, &j));
    ASSERT(j == (weft_join *)0x1);
    ASSERT_EQ(-ESHUTDOWN, weft_spawn_detached(rt, &answer_future, &(answer){ 1 }));
    ASSERT_EQ(-ESHUTDOWN, weft_block_on(rt, &answer_future, &(answer){ 1 }, &out));
    ASSERT_EQ(5, out);
    ASSERT_EQ(-ESHUTDOWN, weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&drops));
    ASSERT_EQ(0, weft_runtime_active_tasks(rt));
    weft_runtime_free(rt);
}

/* sched.h: bad options are -EINVAL and leave *out untouched. */
TEST(runtime_options_refused_leave_out_untouched)
{
    weft_runtime *rt = (weft_runtime *)0x1;
    const weft_runtime_options bad[] = {
        { .workers = WEFT_MAX_WORKERS + 1 },
        { .flavor = WEFT_CURRENT_THREAD, .workers = 1 },
        { .flavor = (weft_flavor)7 },
        { .io_backend = (weft_io_backend)9 },
        { .coro_stack_size = 1024 },
        { .coro_stack_size = ((size_t)1 << 30) + 1 + 4096 },
        { .blocking_threads = 1u << 30 },
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = weft_runtime_new(&rt, &bad[i]);

        if (r != -EINVAL)
            harness_fail(__FILE__, __LINE__, "options %zu: %d", i, r);
        ASSERT(rt == (weft_runtime *)0x1);
    }
    ASSERT_EQ(-EINVAL, weft_runtime_new(NULL, NULL));
    ASSERT_EQ(0u, weft_runtime_workers(NULL));
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    {
        weft_worker_metrics m;

        ASSERT_EQ(2u, weft_runtime_workers(rt));
        ASSERT_OK(weft_runtime_worker_metrics(rt, 1, &m));
        ASSERT_EQ(-EINVAL, weft_runtime_worker_metrics(rt, 2, &m));
        ASSERT_EQ(-EINVAL, weft_runtime_worker_metrics(rt, 0, NULL));
    }
    ASSERT_EQ(-1, weft_worker_index());
    ASSERT(weft_worker_name() == NULL);
    ASSERT(weft_runtime_current() == NULL);
    weft_runtime_free(rt);
}

/* A long thread name prefix is cut to what Linux keeps (15 characters),
 * never refused; the prefix is what is cut, so the index survives. */
TEST(long_thread_name_prefix_is_cut)
{
    weft_runtime *rt;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){
        .workers = 2, .thread_name_prefix = "audit3-a-very-long-prefix-" }));
    {
        uint64_t end = harness_now_ns() + 30ull * 1000 * 1000 * 1000;

        while (harness_count_threads("audit3-a-very-0") + harness_count_threads("audit3-a-very-1")
               < 2) {
            if (harness_now_ns() > end)
                harness_fail(__FILE__, __LINE__, "workers not named from the prefix");
            sched_yield();
        }
    }
    weft_runtime_free(rt);
}
