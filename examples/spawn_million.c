/* SPDX-License-Identifier: MIT */
/* Spawn 1,000,000 tiny tasks, run them to completion, print the time per
 * task. Usage: spawn_million [tasks] [workers]. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "weft.h"

static atomic_ulong done;

typedef struct bump {
    int unused;
} bump;

static weft_poll bump_poll(bump *b, weft_context *cx, void *out)
{
    (void)b, (void)cx, (void)out;
    atomic_fetch_add_explicit(&done, 1, memory_order_relaxed);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(bump, bump_poll, NULL);

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    unsigned workers = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 2;
    weft_runtime *rt;
    double t0, t1;
    int err;

    err = weft_runtime_new(&rt, &(weft_runtime_options){ .workers = workers });
    if (err < 0) {
        fprintf(stderr, "weft_runtime_new: %s\n", weft_strerror(err));
        return 1;
    }
    t0 = now();
    for (unsigned long i = 0; i < n; i++) {
        err = weft_spawn_detached(rt, &bump_future, &(bump){ 0 });
        if (err < 0) {
            fprintf(stderr, "spawn %lu: %s\n", i, weft_strerror(err));
            return 1;
        }
    }
    weft_runtime_run(rt);
    t1 = now();
    weft_runtime_free(rt);
    if (atomic_load(&done) != n) {
        fprintf(stderr, "completed %lu of %lu tasks\n", atomic_load(&done), n);
        return 1;
    }
    printf("%lu tasks on %u workers: %.1f ns per spawn+complete\n", n, workers,
           (t1 - t0) * 1e9 / (double)n);
    return 0;
}
