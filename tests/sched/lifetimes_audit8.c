/* SPDX-License-Identifier: MIT */
/* Audit 8 of weft/sched.h: the runtime's memory against the threads still
 * inside its calls. weft_runtime_run() from one thread while another frees
 * the runtime: run returns -ESHUTDOWN "once the shutdown has run their
 * drops", but it read and unlocked the runtime's lock after the free had
 * released it when nothing else (a live task, a join handle) held the
 * runtime's memory. */
#define _GNU_SOURCE
#include "sched_test.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "weft.h"

typedef struct pending8 {
    atomic_int *drops;
} pending8;

static weft_poll pending8_poll(pending8 *p, weft_context *cx, void *out)
{
    (void)p;
    (void)cx;
    (void)out;
    return WEFT_PENDING;                 /* until the shutdown cancels it */
}

static void pending8_drop(pending8 *p)
{
    atomic_fetch_add(p->drops, 1);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(pending8, pending8_poll, pending8_drop);

typedef struct runner8 {
    weft_runtime *rt;
    atomic_int tid;                      /* set just before the call */
    int result;
} runner8;

static void *runner8_main(void *arg)
{
    runner8 *r = arg;

    atomic_store(&r->tid, (int)syscall(SYS_gettid));
    r->result = weft_runtime_run(r->rt);
    return NULL;
}

/* The runner is asleep: it has entered weft_runtime_run() (nothing between
 * its tid store and the call sleeps) and waits there. */
static bool asleep(int tid)
{
    char path[64], buf[256], *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    p = strrchr(buf, ')');               /* the name may hold anything */
    return p && p[1] == ' ' && p[2] == 'S';
}

/* sched.h: weft_runtime_run() "returns once the shutdown has run their
 * drops" when another thread shuts the runtime down; free shuts down and
 * releases. A runner inside run while another thread frees a runtime whose
 * only task was detached (no join handle, no waker keeps its memory): run
 * returns -ESHUTDOWN and the runtime's memory is released after it, not
 * under it (ASan: heap-use-after-free on the run lock without the fix; the
 * plain build sees the freed memory scribbled over). */
static void run_while_freed(weft_flavor flavor, unsigned workers)
{
    int rounds = (int)harness_scale(200);

    for (int round = 0; round < rounds; round++) {
        weft_runtime *rt;
        atomic_int drops = 0;
        runner8 r = { .result = 1 };
        pthread_t th;
        void *scribble[64];

        ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = flavor,
                                                                 .workers = workers }));
        ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .mask = WEFT_LINTS_OFF }));
        ASSERT_OK(weft_spawn_detached(rt, &pending8_future, &(pending8){ .drops = &drops }));
        r.rt = rt;
        START_THREAD(&th, runner8_main, &r);
        WAIT_AT_LEAST(&r.tid, 1, WATCHDOG_MS, "runner start");
        {
            uint64_t end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);

            while (!asleep(atomic_load(&r.tid))) {     /* inside run, waiting */
                if (harness_now_ns() > end)
                    harness_fail(__FILE__, __LINE__, "the runner never waited");
                sched_yield();
            }
        }
        weft_runtime_free(rt);
        /* reuse what the free released, scribbled over */
        for (int i = 0; i < 64; i++) {
            scribble[i] = malloc(64 + 64 * (size_t)(i % 16));
            ASSERT(scribble[i] != NULL);
            memset(scribble[i], 0xff, 64 + 64 * (size_t)(i % 16));
        }
        JOIN_THREAD_WITHIN(th, WATCHDOG_MS, "weft_runtime_run");
        for (int i = 0; i < 64; i++)
            free(scribble[i]);
        ASSERT_EQ(1, atomic_load(&drops));
        ASSERT_EQ(-ESHUTDOWN, r.result);
    }
    ASSERT_EQ(0, harness_live());
}

TEST(run_returns_while_another_thread_frees_the_runtime_multi_thread)
{
    run_while_freed(WEFT_MULTI_THREAD, 1);
}

TEST(run_returns_while_another_thread_frees_the_runtime_current_thread)
{
    run_while_freed(WEFT_CURRENT_THREAD, 0);
}

/* ---- a shutdown waiting for another thread's free --------------------------------- */
typedef struct gated8 {
    atomic_int *in_drop, *go;
} gated8;

static weft_poll gated8_poll(gated8 *g, weft_context *cx, void *out)
{
    (void)g;
    (void)cx;
    (void)out;
    return WEFT_PENDING;
}

/* The shutdown's drop: holds the shutdown (the free) until the test lets it go. */
static void gated8_drop(gated8 *g)
{
    atomic_store(g->in_drop, 1);
    while (!atomic_load(g->go))
        sched_yield();
}

WEFT_DEFINE_FUTURE_VOID_STATIC(gated8, gated8_poll, gated8_drop);

typedef struct shutter8 {
    weft_runtime *rt;
    atomic_int tid;
    int result;
} shutter8;

static void *shutter8_main(void *arg)
{
    shutter8 *s = arg;

    atomic_store(&s->tid, (int)syscall(SYS_gettid));
    s->result = weft_runtime_shutdown(s->rt);
    return NULL;
}

typedef struct freer8 {
    weft_runtime *rt;
} freer8;

static void *freer8_main(void *arg)
{
    weft_runtime_free(((freer8 *)arg)->rt);
    return NULL;
}

/* sched.h: shutdown is idempotent; a second call while another thread's
 * shutdown runs waits for it ("done, or another thread is at it") and
 * returns 0. Here the first is a free: its shutdown releases the runtime
 * as soon as it is done, while the second call still waits inside (it read
 * shutdown_done and unlocked the run lock of freed memory without the fix:
 * ASan heap-use-after-free). */
static void shutdown_while_freed(weft_flavor flavor, unsigned workers)
{
    int rounds = (int)harness_scale(50);

    for (int round = 0; round < rounds; round++) {
        weft_runtime *rt;
        atomic_int in_drop = 0, go = 0;
        shutter8 s = { .result = 1 };
        freer8 f;
        pthread_t ts, tf;

        ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = flavor,
                                                                 .workers = workers }));
        ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .mask = WEFT_LINTS_OFF }));
        ASSERT_OK(weft_spawn_detached(rt, &gated8_future,
                                      &(gated8){ .in_drop = &in_drop, .go = &go }));
        f.rt = rt;
        s.rt = rt;
        START_THREAD(&tf, freer8_main, &f);
        WAIT_AT_LEAST(&in_drop, 1, WATCHDOG_MS, "the free's shutdown in a drop");
        START_THREAD(&ts, shutter8_main, &s);
        WAIT_AT_LEAST(&s.tid, 1, WATCHDOG_MS, "shutter start");
        {
            uint64_t end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);

            while (!asleep(atomic_load(&s.tid))) {     /* waits for the first */
                if (harness_now_ns() > end)
                    harness_fail(__FILE__, __LINE__, "the second shutdown never waited");
                sched_yield();
            }
        }
        atomic_store(&go, 1);
        JOIN_THREAD_WITHIN(tf, WATCHDOG_MS, "weft_runtime_free");
        JOIN_THREAD_WITHIN(ts, WATCHDOG_MS, "weft_runtime_shutdown");
        ASSERT_EQ(0, s.result);
    }
    ASSERT_EQ(0, harness_live());
}

TEST(shutdown_waiting_for_another_threads_free_returns_multi_thread)
{
    shutdown_while_freed(WEFT_MULTI_THREAD, 1);
}

TEST(shutdown_waiting_for_another_threads_free_returns_current_thread)
{
    shutdown_while_freed(WEFT_CURRENT_THREAD, 0);
}
