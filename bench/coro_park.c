/* SPDX-License-Identifier: MIT */
/* coro_park: memory and time of many coroutines parked at once (docs/coro.md,
 * "Stacks at scale"). Spawns N coroutines that each sleep for an hour, waits
 * until all are parked, and prints the resident memory they added (VmRSS
 * before and after, from /proc/self/status), the process's memory-map
 * entries (/proc/self/maps lines: guarded stacks take two each, slab stacks
 * share one per slab), and the time to spawn and park them; then shuts the
 * runtime down (every sleep returns -ECANCELED) and times that.
 * Usage: coro_park [count (100000)] [stack bytes (16384)] [workers (2)]
 * Set WEFT_CO_GUARD_MAX=0 to take every stack from slabs. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <weft.h>

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long rss_kib(void)
{
    char line[256];
    long v = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    fclose(f);
    return v;
}

static long map_entries(void)
{
    char line[512];
    long n = 0;
    FILE *f = fopen("/proc/self/maps", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strchr(line, '\n'))
            n++;
    fclose(f);
    return n;
}

static atomic_long parked, cancelled;

static int sleeper(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&parked, 1, memory_order_relaxed);
    if (weft_co_sleep(3600 * 1000) == -ECANCELED)
        atomic_fetch_add_explicit(&cancelled, 1, memory_order_relaxed);
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    size_t stack = argc > 2 ? (size_t)atol(argv[2]) : 16384;
    unsigned workers = argc > 3 ? (unsigned)atoi(argv[3]) : 2;
    weft_go_options opt = { .stack_size = stack, .name = "sleeper" };
    weft_runtime *rt;
    long rss0, rss1, maps0, maps1;
    uint64_t t0, t1, t2;
    int err;

    if (n <= 0 || workers == 0) {
        fprintf(stderr, "usage: coro_park [count] [stack bytes] [workers]\n");
        return 2;
    }
    err = weft_runtime_new(&rt, &(weft_runtime_options){ .workers = workers });
    if (err < 0) {
        fprintf(stderr, "coro_park: runtime: %s\n", weft_strerror(err));
        return 1;
    }
    rss0 = rss_kib();
    maps0 = map_entries();
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        err = weft_go_opt(rt, sleeper, NULL, &opt, NULL);
        if (err < 0) {
            fprintf(stderr, "coro_park: weft_go #%ld: %s\n", i, weft_strerror(err));
            return 1;
        }
    }
    while (atomic_load(&parked) < n) {
        struct timespec ts = { 0, 1000000 };

        nanosleep(&ts, NULL);
    }
    t1 = now_ns();
    {
        struct timespec ts = { 0, 100000000 };   /* let the last ones park */

        nanosleep(&ts, NULL);
    }
    rss1 = rss_kib();
    maps1 = map_entries();
    printf("coro_park: %ld coroutines, %zu-byte stacks, %u workers\n", n, stack, workers);
    printf("  spawn+park: %.0f ns per coroutine (%.2f s)\n",
           (double)(t1 - t0) / (double)n, (double)(t1 - t0) / 1e9);
    printf("  RSS: %ld -> %ld KiB: %.2f KiB per parked coroutine\n", rss0, rss1,
           (double)(rss1 - rss0) / (double)n);
    printf("  memory-map entries: %ld -> %ld\n", maps0, maps1);
    t2 = now_ns();
    weft_runtime_free(rt);
    printf("  shutdown (each sleep returns -ECANCELED): %.0f ns per coroutine; cancelled %ld\n",
           (double)(now_ns() - t2) / (double)n, atomic_load(&cancelled));
    return atomic_load(&cancelled) == n ? 0 : 1;
}
