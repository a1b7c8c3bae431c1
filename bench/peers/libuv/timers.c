/* SPDX-License-Identifier: MIT */
/* The timer benchmarks W6 and W7 on libuv (see bench/weft_time.c for their
 * definitions). libuv has no tasks: a "task" here is one heap-allocated
 * uv_timer_t on a single loop (the one thread), whose callback plays the
 * woken task's part and then closes and frees it.
 *
 *     weft-peer-libuv-time <W6|W7> [scale]
 *
 * W6: 100,000 timers, each due a pseudo-random 1..1000 ms after it is
 * started (fixed-seed LCG, the same sequence as every peer); the callback
 * records its lateness, wake instant - deadline, on CLOCK_MONOTONIC
 * (uv_hrtime). W7: 1,000,000 timers of 5 s; reports (peak RSS - RSS before
 * starting them) / timers.
 *
 * libuv's timers have millisecond resolution against the loop's cached time
 * (uv_now); each timeout is computed from a fresh uv_update_time() and
 * rounded up, so a timer never fires before its deadline.
 *
 * Prints one line, "RESULT <W6|W7> libuv key=value ..." (the same keys as
 * weft-bench-time), and exits non-zero when a timer did not fire. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#define W6_TIMERS 100000
#define W7_TIMERS 1000000
#define W7_SLEEP_MS 5000

/* W6: the timer and what its callback needs */
struct w6_timer {
    uv_timer_t timer;
    uint64_t deadline_ns;
    size_t index;
};

static int64_t *lateness_ns;
static size_t fired;

static uint64_t cpu_ns(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

static uint64_t proc_status_kb(const char *key)
{
    char line[256];
    size_t len = strlen(key);
    uint64_t kb = 0;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, len) == 0 && line[len] == ':') {
            kb = strtoull(line + len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static uint64_t lcg_state = 42;

static uint64_t next_duration_ms(void)
{
    lcg_state = lcg_state * 6364136223846793005u + 1442695040888963407u;
    return 1 + (lcg_state >> 33) % 1000;
}

static void free_handle(uv_handle_t *h)
{
    free(h);      /* the handle is the first member of what was allocated */
}

static void w6_fire(uv_timer_t *t)
{
    struct w6_timer *w = (struct w6_timer *)t;

    lateness_ns[w->index] = (int64_t)(uv_hrtime() - w->deadline_ns);
    fired++;
    uv_close((uv_handle_t *)t, free_handle);
}

static void w7_fire(uv_timer_t *t)
{
    fired++;
    uv_close((uv_handle_t *)t, free_handle);
}

/* Start `t` to fire at deadline_ns (CLOCK_MONOTONIC), never before it. */
static void start_until(uv_loop_t *loop, uv_timer_t *t, uv_timer_cb cb, uint64_t deadline_ns)
{
    uint64_t due_ms = (deadline_ns + 999999u) / 1000000u, now;

    uv_update_time(loop);
    now = uv_now(loop);
    if (uv_timer_start(t, cb, due_ms > now ? due_ms - now : 0, 0) != 0)
        abort();
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    uv_loop_t loop;
    double scale = 1.0;
    uint64_t t0, cpu0, rss0, wall, spawn, cpu, peak, check = 0;
    size_t n;
    int w;

    if (argc < 2 || argc > 3 || (strcmp(argv[1], "W6") != 0 && strcmp(argv[1], "W7") != 0) ||
        (argc == 3 && (scale = strtod(argv[2], NULL)) <= 0)) {
        fputs("usage: weft-peer-libuv-time <W6|W7> [scale]\n", stderr);
        return 2;
    }
    w = argv[1][1] - '0';
    n = (size_t)((w == 6 ? W6_TIMERS : W7_TIMERS) * scale);
    if (n == 0)
        n = 1;
    if (w == 6 && (lateness_ns = calloc(n, sizeof(*lateness_ns))) == NULL)
        return 1;
    if (uv_loop_init(&loop) != 0)
        return 1;

    rss0 = proc_status_kb("VmRSS");
    cpu0 = cpu_ns();
    t0 = uv_hrtime();
    for (size_t i = 0; i < n; i++) {
        uint64_t ms = w == 6 ? next_duration_ms() : W7_SLEEP_MS;
        uint64_t deadline = uv_hrtime() + ms * 1000000u;

        check += ms;
        if (w == 6) {
            struct w6_timer *t = malloc(sizeof(*t));

            if (t == NULL || uv_timer_init(&loop, &t->timer) != 0)
                abort();
            t->deadline_ns = deadline;
            t->index = i;
            start_until(&loop, &t->timer, w6_fire, deadline);
        } else {
            uv_timer_t *t = malloc(sizeof(*t));

            if (t == NULL || uv_timer_init(&loop, t) != 0)
                abort();
            start_until(&loop, t, w7_fire, deadline);
        }
    }
    spawn = uv_hrtime() - t0;    /* nothing fires before uv_run: none woke during it */
    uv_run(&loop, UV_RUN_DEFAULT);
    wall = uv_hrtime() - t0;
    cpu = cpu_ns() - cpu0;
    peak = proc_status_kb("VmHWM");
    uv_loop_close(&loop);
    if (fired != n) {
        fprintf(stderr, "%s libuv: check failed: %zu of %zu timers fired\n", argv[1], fired, n);
        return 1;
    }
    if (w == 6) {
        int64_t sum = 0;

        qsort(lateness_ns, n, sizeof(*lateness_ns), cmp_i64);
        for (size_t i = 0; i < n; i++)
            sum += lateness_ns[i];
        printf("RESULT W6 libuv tasks=%zu check=%llu wall_ms=%.3f spawn_ms=%.3f late_max_ms=%.3f "
               "late_p99_ms=%.3f late_mean_ms=%.3f late_min_ms=%.3f cpu_ms=%.3f "
               "rss_peak_kb=%llu rss_base_kb=%llu\n",
               n, (unsigned long long)check, wall / 1e6, spawn / 1e6, lateness_ns[n - 1] / 1e6,
               lateness_ns[(n * 99 + 99) / 100 - 1] / 1e6, (double)sum / (double)n / 1e6,
               lateness_ns[0] / 1e6, cpu / 1e6, (unsigned long long)peak,
               (unsigned long long)rss0);
        free(lateness_ns);
    } else {
        printf("RESULT W7 libuv tasks=%zu wall_ms=%.3f spawn_ms=%.3f woke_during_spawn=0 "
               "rss_per_task_b=%.1f cpu_ms=%.3f rss_peak_kb=%llu rss_base_kb=%llu\n",
               n, wall / 1e6, spawn / 1e6, ((double)peak - (double)rss0) * 1024.0 / (double)n, cpu / 1e6,
               (unsigned long long)peak, (unsigned long long)rss0);
    }
    return 0;
}
