/* SPDX-License-Identifier: MIT */
/* Handing the search on: N tasks spawned from outside onto N workers, each
 * spinning (yielding the CPU) until all N are running at once, so every
 * worker must end up with one. Regression test: a last searcher that found
 * work at park time went back to work without waking anyone, and the
 * remaining tasks sat in the inject queue while the other workers slept
 * (seen once in ~15 full runs, at round 34 of a loop under load). */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>

#include "harness.h"
#include "weft.h"

#define WATCHDOG_MS 10000u

static atomic_int arrived, stalled;

typedef struct meet {
    int n;
} meet;

static weft_poll meet_poll(meet *m, weft_context *cx, void *out)
{
    uint64_t end = weft_now_ms() + WATCHDOG_MS;

    (void)cx, (void)out;
    atomic_fetch_add(&arrived, 1);
    while (atomic_load(&arrived) < m->n) {
        if (weft_now_ms() > end) {
            atomic_store(&stalled, 1);
            break;
        }
        sched_yield();
    }
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(meet, meet_poll, NULL);

static void meet_rounds(int n, size_t rounds)
{
    for (size_t r = 0; r < rounds; r++) {
        weft_runtime *rt;

        atomic_store(&arrived, 0);
        atomic_store(&stalled, 0);
        ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = (unsigned)n }));
        for (int i = 0; i < n; i++)
            ASSERT_OK(weft_spawn_detached(rt, &meet_future, &(meet){ n }));
        ASSERT_OK(weft_runtime_run(rt));
        weft_runtime_free(rt);
        if (atomic_load(&stalled))
            harness_fail(__FILE__, __LINE__, "round %zu: only %d of %d tasks ran at once", r,
                         atomic_load(&arrived), n);
    }
}

TEST(every_worker_gets_a_task_4)
{
    meet_rounds(4, harness_scale(200));
}

TEST(every_worker_gets_a_task_12)
{
    meet_rounds(12, harness_scale(100));
}
