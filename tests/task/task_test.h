/* SPDX-License-Identifier: MIT */
/* Helpers shared by the task-layer tests (header only: every .c under tests/
 * is its own binary). Everything here is static inline so that a test file
 * that uses only part of it compiles without unused-function warnings. */
#ifndef WEFT_TESTS_TASK_TEST_H
#define WEFT_TESTS_TASK_TEST_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "harness.h"
#include "weft.h"

/* Watchdog for every wait below: far above anything a passing run needs,
 * so correctness never depends on timing; only a hang trips it. */
#define TT_WATCHDOG_NS ((uint64_t)30 * 1000 * 1000 * 1000)

static inline void tt_pause(unsigned *spins)
{
    if (++*spins < 64) {
        sched_yield();
    } else {
        struct timespec ts = { 0, 20 * 1000 };   /* 20 us */

        nanosleep(&ts, NULL);
    }
}

/* Wait (on any thread) until `cond` holds; fail the test if it never does. */
#define TT_WAIT_UNTIL(cond)                                                   \
    do {                                                                      \
        uint64_t tt_end_ = harness_now_ns() + TT_WATCHDOG_NS;                 \
        unsigned tt_spins_ = 0;                                               \
        while (!(cond)) {                                                     \
            if (harness_now_ns() > tt_end_)                                   \
                harness_fail(__FILE__, __LINE__, "watchdog: %s never held",   \
                             #cond);                                          \
            tt_pause(&tt_spins_);                                             \
        }                                                                     \
    } while (0)

static inline pthread_t tt_thread_start(void *(*fn)(void *), void *arg)
{
    pthread_t th;

    if (pthread_create(&th, NULL, fn, arg) != 0)
        harness_fail(__FILE__, __LINE__, "pthread_create failed");
    return th;
}

static inline void tt_thread_join(pthread_t th)
{
    if (pthread_join(th, NULL) != 0)
        harness_fail(__FILE__, __LINE__, "pthread_join failed");
}

static inline weft_runtime *tt_runtime(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = NULL;
    int err = weft_runtime_new(&rt, &(weft_runtime_options){
                                        .flavor = flavor, .workers = workers });

    if (err != 0)
        harness_fail(__FILE__, __LINE__, "weft_runtime_new: %s", weft_strerror(err));
    return rt;
}

/* ---- A blocker: occupies one worker until released ------------------------
 * Spawn it on a one-worker runtime and wait for tt_blocker_entered: from then
 * on nothing else runs there, so tasks spawned or woken meanwhile wait in the
 * queue, not yet polled. */
static atomic_int tt_blocker_entered;
static atomic_int tt_blocker_go;

typedef struct tt_blocker {
    int unused;
} tt_blocker;

static inline weft_poll tt_blocker_poll(tt_blocker *b, weft_context *cx, void *out)
{
    (void)b;
    (void)cx;
    (void)out;
    atomic_store(&tt_blocker_entered, 1);
    TT_WAIT_UNTIL(atomic_load(&tt_blocker_go));
    return WEFT_READY;
}

static inline weft_poll tt_blocker_poll_thunk(void *self, weft_context *cx, void *out)
{
    return tt_blocker_poll(self, cx, out);
}

static const weft_future_type tt_blocker_future = {
    tt_blocker_poll_thunk, NULL, sizeof(tt_blocker), _Alignof(tt_blocker), 0, 1,
    "tt_blocker"
};

/* Spawn a blocker (detached) and wait until it holds the worker. */
static inline void tt_block_worker(weft_runtime *rt)
{
    atomic_store(&tt_blocker_entered, 0);
    atomic_store(&tt_blocker_go, 0);
    if (weft_spawn_detached(rt, &tt_blocker_future, &(tt_blocker){ 0 }) != 0)
        harness_fail(__FILE__, __LINE__, "spawn blocker");
    TT_WAIT_UNTIL(atomic_load(&tt_blocker_entered));
}

static inline void tt_release_worker(void)
{
    atomic_store(&tt_blocker_go, 1);
}

#endif
