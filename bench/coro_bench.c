/* SPDX-License-Identifier: MIT */
/* coro_bench: what a stackful coroutine costs next to a future task, with
 * weft's public API only. Prints, medians of 5 runs:
 *   switch   one task yielding N times on one worker, a coroutine and an
 *            async function: the difference per yield is the coroutine's
 *            switch pair (suspend + resume) and its bookkeeping;
 *   yield    1,000 tasks yielding in a loop on W workers, per yield;
 *   spawn    spawn + join of a trivial task, awaited one at a time by a
 *            driver task, and in a batch (spawn all from main, then join).
 * Usage: coro_bench [workers (2)] [scale (1.0)] [only]
 * `only` (switch, yield, spawn or batch; switch-future or switch-co for one
 * side of switch) runs that part alone: for callgrind, whose instructions
 * per yield are the difference of two scales' totals (docs/coro.md). */
#define _POSIX_C_SOURCE 200809L
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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

#define RUNS 5

/* run this part? (`only` NULL: all; "switch" covers switch-future and
 * switch-co) */
#define ON(part) (!only || !strncmp(only, part, strlen(part)))

static double median(double *v)
{
    qsort(v, RUNS, sizeof(*v), cmp_double);
    return v[RUNS / 2];
}

static void check(int err, const char *what)
{
    if (err < 0) {
        fprintf(stderr, "coro_bench: %s: %s\n", what, weft_strerror(err));
        exit(1);
    }
}

/* ---- yielders ---------------------------------------------------------------- */
typedef struct fut_yielder {
    weft_async co;
    unsigned n, i;
    weft_yield y;
} fut_yielder;

static weft_poll fut_yielder_poll(fut_yielder *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < f->n; f->i++)
        WEFT_YIELD(&f->co, &f->y, cx);
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(fut_yielder, fut_yielder_poll, NULL);

static int co_yielder(void *arg)
{
    unsigned n = (unsigned)(uintptr_t)arg;

    for (unsigned i = 0; i < n; i++)
        weft_co_yield();
    return 0;
}

/* ns per yield: `tasks` tasks of `n` yields each, on `rt` */
static double yield_run(weft_runtime *rt, bool coro, unsigned tasks, unsigned n)
{
    uint64_t t0 = now_ns();

    for (unsigned i = 0; i < tasks; i++) {
        if (coro)
            check(weft_go_detached(rt, co_yielder, (void *)(uintptr_t)n), "go");
        else
            check(weft_spawn_detached(rt, &fut_yielder_future, &(fut_yielder){ .n = n }),
                  "spawn");
    }
    check(weft_runtime_run(rt), "run");
    return (double)(now_ns() - t0) / ((double)tasks * n);
}

/* ---- spawn + join ------------------------------------------------------------- */
typedef struct fut_trivial {
    int unused;
} fut_trivial;

static weft_poll fut_trivial_poll(fut_trivial *f, weft_context *cx, void *out)
{
    (void)f;
    (void)cx;
    *(int *)out = 1;
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_STATIC(fut_trivial, fut_trivial_poll, NULL, int);

static int co_trivial(void *arg)
{
    (void)arg;
    return 1;
}

struct driver {
    weft_runtime *rt;
    unsigned n;
    bool coro;
};

/* a coroutine spawning one child at a time and awaiting its join */
static int driver(void *arg)
{
    struct driver *d = arg;

    for (unsigned i = 0; i < d->n; i++) {
        weft_join *j;
        int out;

        if (d->coro)
            check(weft_go(d->rt, co_trivial, NULL, &j), "go");
        else
            check(weft_spawn(d->rt, &fut_trivial_future, &(fut_trivial){ 0 }, &j), "spawn");
        check(weft_co_join(j, &out), "join");
        weft_join_drop(j);
    }
    return 0;
}

static double spawn_one_at_a_time(weft_runtime *rt, bool coro, unsigned n)
{
    struct driver d = { rt, n, coro };
    uint64_t t0 = now_ns();
    int out;

    check(weft_co_block_on(rt, driver, &d, NULL, &out), "block_on");
    return (double)(now_ns() - t0) / n;
}

static double spawn_batch(weft_runtime *rt, bool coro, unsigned n, weft_join **js)
{
    uint64_t t0 = now_ns();

    for (unsigned i = 0; i < n; i++) {
        if (coro)
            check(weft_go(rt, co_trivial, NULL, &js[i]), "go");
        else
            check(weft_spawn(rt, &fut_trivial_future, &(fut_trivial){ 0 }, &js[i]), "spawn");
    }
    for (unsigned i = 0; i < n; i++) {
        check(weft_join_wait(js[i], NULL), "join");
        weft_join_drop(js[i]);
    }
    return (double)(now_ns() - t0) / n;
}

int main(int argc, char **argv)
{
    unsigned workers = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
    double scale = argc > 2 ? atof(argv[2]) : 1.0;
    const char *only = argc > 3 ? argv[3] : NULL;
    unsigned n_switch = (unsigned)(2000000 * scale), n_yield = (unsigned)(1000 * scale);
    unsigned n_spawn = (unsigned)(200000 * scale);
    double a[RUNS], b[RUNS], fut, co;
    weft_runtime *rt1, *rt;
    weft_join **js;

    if (workers == 0 || n_switch == 0 || n_yield == 0 || n_spawn == 0 ||
        (only && strcmp(only, "switch") && strcmp(only, "switch-future") &&
         strcmp(only, "switch-co") && strcmp(only, "yield") && strcmp(only, "spawn") &&
         strcmp(only, "batch"))) {
        fprintf(stderr, "usage: coro_bench [workers >= 1] [scale > 0] "
                        "[switch|switch-future|switch-co|yield|spawn|batch]\n");
        return 2;
    }
    js = malloc(n_spawn * sizeof(*js));
    check(js ? 0 : -ENOMEM, "malloc");
    check(weft_runtime_new(&rt1, &(weft_runtime_options){ .workers = 1 }), "runtime");
    check(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = workers }), "runtime");
    printf("coro_bench: %u workers, medians of %d runs\n", workers, RUNS);

    /* a side left out (only=switch-future, switch-co) prints 0 */
    if (ON("switch")) {
        bool f_on = !only || strcmp(only, "switch-co"), c_on = !only || strcmp(only, "switch-future");

        for (int r = 0; r < RUNS; r++) {
            a[r] = f_on ? yield_run(rt1, false, 1, n_switch) : 0;
            b[r] = c_on ? yield_run(rt1, true, 1, n_switch) : 0;
        }
        fut = median(a);
        co = median(b);
        printf("switch:  one task yielding on 1 worker: future %.1f ns, coroutine %.1f ns per"
               " yield -> switch (suspend+resume) %.1f ns\n", fut, co, co - fut);
    }

    if (ON("yield")) {
        for (int r = 0; r < RUNS; r++) {
            a[r] = yield_run(rt, false, 1000, n_yield);
            b[r] = yield_run(rt, true, 1000, n_yield);
        }
        fut = median(a);
        co = median(b);
        printf("yield:   1,000 tasks x %u yields: future %.1f ns, coroutine %.1f ns per yield"
               " (%.2fx)\n", n_yield, fut, co, co / fut);
    }

    if (ON("spawn")) {
        for (int r = 0; r < RUNS; r++) {
            a[r] = spawn_one_at_a_time(rt, false, n_spawn / 4);
            b[r] = spawn_one_at_a_time(rt, true, n_spawn / 4);
        }
        fut = median(a);
        co = median(b);
        printf("spawn:   spawn+join one at a time from a task: future %.1f ns, coroutine %.1f ns"
               " (%.2fx)\n", fut, co, co / fut);
    }

    if (ON("batch")) {
        for (int r = 0; r < RUNS; r++) {
            a[r] = spawn_batch(rt, false, n_spawn, js);
            b[r] = spawn_batch(rt, true, n_spawn, js);
        }
        fut = median(a);
        co = median(b);
        printf("batch:   spawn %u from main, then join all: future %.1f ns, coroutine %.1f ns"
               " per task (%.2fx)\n", n_spawn, fut, co, co / fut);
    }

    weft_runtime_free(rt);
    weft_runtime_free(rt1);
    free(js);
    return 0;
}
