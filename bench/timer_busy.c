/* SPDX-License-Identifier: MIT */
/* A 1 ms sleeper beside a CPU hog, with and without other processes
 * competing for the CPUs (issue 13, item 3). Public API only.
 *
 *     weft-bench-timer-busy [iters] [hog_us] [burners] [workers]
 *
 * One runtime of `workers` workers (default 2) runs two tasks: the hog
 * burns `hog_us` microseconds of CPU (default 200) and yields, over and
 * over; the sleeper sleeps 1 ms `iters` times (default 500) and records
 * each wake-up's lateness, wake instant - deadline (the deadline is the
 * sleep's own, a whole millisecond on CLOCK_MONOTONIC: weft's timers never
 * fire early). This runs twice: alone, then beside `burners` child
 * processes (default: one per online CPU) that spin until killed.
 *
 * Prints one line per run:
 *   RESULT timer_busy burners=.. workers=.. hog_us=.. iters=.. late_median_us=..
 *          late_p99_us=.. late_max_us=.. over_10ms=.. hog_polls=.. wall_ms=..
 * The figures are printed, never asserted (tests/time/busy.c asserts
 * generous bounds on the same setup). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"

#define MAX_ITERS 100000
#define MAX_BURNERS 64

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static atomic_bool stop;
static _Atomic uint64_t hog_polls;
static uint64_t late_ns[MAX_ITERS];

static void burn(unsigned us)
{
    uint64_t until = now_ns() + (uint64_t)us * 1000u;

    atomic_fetch_add_explicit(&hog_polls, 1, memory_order_relaxed);
    while (now_ns() < until)
        ;
}

typedef struct hog {
    weft_async co;
    unsigned us;
    weft_yield y;
} hog;

static weft_poll hog_poll(hog *h, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&h->co);
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        burn(h->us);                          /* burn the CPU, then yield */
        WEFT_YIELD(&h->co, &h->y, cx);
    }
    WEFT_END(&h->co);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(hog, hog_poll, NULL);

typedef struct sleeper {
    weft_async co;
    unsigned i, n;
    weft_sleep s;
} sleeper;

static weft_poll sleeper_poll(sleeper *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < f->n; f->i++) {
        weft_sleep_init(&f->s, 1);
        WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
        {
            uint64_t deadline = weft_sleep_deadline(&f->s) * 1000000u, now = now_ns();

            late_ns[f->i] = now > deadline ? now - deadline : 0;
        }
    }
    atomic_store_explicit(&stop, true, memory_order_relaxed);
    WEFT_END(&f->co);
}

static void sleeper_drop(sleeper *f)
{
    weft_sleep_drop(&f->s);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(sleeper, sleeper_poll, sleeper_drop);

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Children that spin until killed: other processes competing for the CPUs. */
static unsigned start_burners(pid_t *pids, unsigned n)
{
    unsigned started = 0;

    for (unsigned i = 0; i < n; i++) {
        pid_t p = fork();

        if (p == 0) {
            volatile unsigned long x = 0;

            for (;;)
                x++;
        }
        if (p > 0)
            pids[started++] = p;
    }
    return started;
}

static void stop_burners(pid_t *pids, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
    for (unsigned i = 0; i < n; i++)
        waitpid(pids[i], NULL, 0);
}

static int run_once(unsigned iters, unsigned hog_us, unsigned burners, unsigned workers)
{
    pid_t pids[MAX_BURNERS];
    unsigned nb, over = 0;
    weft_runtime *rt;
    uint64_t t0;
    int err;

    nb = start_burners(pids, burners); /* before any thread: fork stays simple */
    atomic_store(&stop, false);
    atomic_store(&hog_polls, 0);
    err = weft_runtime_new(&rt, &(weft_runtime_options){ .workers = workers });
    if (err < 0) {
        stop_burners(pids, nb);
        fprintf(stderr, "weft_runtime_new: %s\n", weft_strerror(err));
        return 1;
    }
    t0 = now_ns();
    weft_spawn_detached(rt, &hog_future, &(hog){ .us = hog_us });
    weft_spawn_detached(rt, &sleeper_future, &(sleeper){ .n = iters });
    weft_runtime_run(rt);
    t0 = now_ns() - t0;
    weft_runtime_free(rt);
    stop_burners(pids, nb);
    for (unsigned i = 0; i < iters; i++)
        over += late_ns[i] > 10000000u;
    qsort(late_ns, iters, sizeof(late_ns[0]), cmp_u64);
    printf("RESULT timer_busy burners=%u workers=%u hog_us=%u iters=%u late_median_us=%llu "
           "late_p99_us=%llu late_max_us=%llu over_10ms=%u hog_polls=%llu wall_ms=%llu\n",
           nb, workers, hog_us, iters, (unsigned long long)late_ns[iters / 2] / 1000,
           (unsigned long long)late_ns[iters - 1 - iters / 100] / 1000,
           (unsigned long long)late_ns[iters - 1] / 1000, over,
           (unsigned long long)atomic_load(&hog_polls), (unsigned long long)t0 / 1000000u);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned iters = argc > 1 ? (unsigned)atoi(argv[1]) : 500;
    unsigned hog_us = argc > 2 ? (unsigned)atoi(argv[2]) : 200;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned burners = argc > 3 ? (unsigned)atoi(argv[3]) : ncpu > 0 ? (unsigned)ncpu : 2;
    unsigned workers = argc > 4 ? (unsigned)atoi(argv[4]) : 2;

    if (iters < 1 || iters > MAX_ITERS || burners > MAX_BURNERS || workers < 1) {
        fprintf(stderr, "usage: %s [iters 1..%d] [hog_us] [burners 0..%d] [workers]\n", argv[0],
                MAX_ITERS, MAX_BURNERS);
        return 2;
    }
    if (run_once(iters, hog_us, 0, workers) || run_once(iters, hog_us, burners, workers))
        return 1;
    return 0;
}
