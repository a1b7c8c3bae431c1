/* SPDX-License-Identifier: MIT */
/* The seed's demo, line for line, on weft.
 *
 *   let toy = Toy::new();                          weft_runtime_new(&rt, 4 workers)
 *   for i in 1..=20 {                              for (i = 1; i <= 20; i++)
 *       toy.spawn(async move {                         weft_spawn_detached(rt, demo)
 *           let ret = FakeIO::new(i).await;              WEFT_AWAIT(fake_io_poll(...))
 *           println!("{:?}: {:?}", thread, ret);         printf(worker, ret)
 *       })
 *   }
 *   toy.run(4);                                    weft_runtime_run(rt)
 *
 * FakeIO is a future that starts a thread which sleeps for a while, then sets
 * `finished` and wakes the task. Unlike the seed, it starts that thread on
 * its first poll only (the seed starts one on every poll). Task i sleeps
 * i x 100 ms; `--seconds` gives the seed's i seconds.
 *
 * `--timer` awaits weft's timer (weft_sleep) instead: no thread per task.
 * `--tasks N` runs N tasks (task i sleeps ((i - 1) % 20 + 1) x 100 ms) and
 * prints a summary instead of a line per task; compare
 *     fakeio --tasks 10000          (a thread per task)
 *     fakeio --tasks 10000 --timer  (the timer wheel)
 * for the threads, time and lateness each needs. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft.h"

static bool quiet;            /* --tasks N: a summary instead of a line per task */

/* ---- FakeIO: the seed's future ------------------------------------------------ */
typedef struct fake_io {
    atomic_bool finished;
    bool started;             /* the thread exists (first poll happened) */
    unsigned duration_ms;
    pthread_t thread;
    weft_waker waker;         /* handed to the thread, which wakes it */
} fake_io;

static void fake_io_init(fake_io *io, unsigned duration_ms)
{
    memset(io, 0, sizeof(*io));
    atomic_init(&io->finished, false);
    io->duration_ms = duration_ms;
}

static void *fake_io_thread(void *arg)
{
    fake_io *io = arg;
    struct timespec ts = { io->duration_ms / 1000, (io->duration_ms % 1000) * 1000000L };
    weft_waker w = io->waker;

    nanosleep(&ts, NULL);
    /* release: pairs with the acquire in fake_io_poll() */
    atomic_store_explicit(&io->finished, true, memory_order_release);
    weft_waker_wake(&w);      /* consumes the thread's reference */
    return NULL;
}

/* Output: the duration, in ms. */
static weft_poll fake_io_poll(fake_io *io, weft_context *cx, unsigned *out)
{
    if (atomic_load_explicit(&io->finished, memory_order_acquire)) {
        *out = io->duration_ms;
        return WEFT_READY;
    }
    if (!io->started) {
        io->waker = weft_waker_clone(weft_context_waker(cx));
        if (pthread_create(&io->thread, NULL, fake_io_thread, io) != 0) {
            weft_waker_drop(&io->waker);
            *out = 0;         /* no thread: report "done" at once */
            return WEFT_READY;
        }
        io->started = true;
    }
    return WEFT_PENDING;
}

static void fake_io_drop(fake_io *io)
{
    if (io->started) {
        pthread_join(io->thread, NULL);   /* it has woken us (or will now) */
        io->started = false;
    }
}

/* ---- The async block of the seed's main ------------------------------------------ */
typedef struct demo {
    weft_async co;
    unsigned i;
    unsigned ms_per_step;
    fake_io io;
    unsigned ret;
} demo;

static weft_poll demo_poll(demo *d, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&d->co);
    fake_io_init(&d->io, d->i * d->ms_per_step);
    WEFT_AWAIT(&d->co, fake_io_poll(&d->io, cx, &d->ret));
    if (!quiet)
        printf("%s: %u ms\n", weft_worker_name(), d->ret);
    WEFT_END(&d->co);
}

static void demo_drop(demo *d)
{
    fake_io_drop(&d->io);
}

WEFT_DEFINE_FUTURE_VOID(demo, demo_poll, demo_drop);

/* ---- The same task on weft's timer, with lateness recorded ----------------------- */
static _Atomic uint64_t worst_late_ms;

typedef struct demo_timer {
    weft_async co;
    unsigned i;
    unsigned ms;
    weft_sleep sleep;
} demo_timer;

static weft_poll demo_timer_poll(demo_timer *d, weft_context *cx, void *out)
{
    uint64_t late, prev;

    (void)out;
    WEFT_BEGIN(&d->co);
    weft_sleep_init(&d->sleep, d->ms);
    WEFT_AWAIT(&d->co, weft_sleep_poll(&d->sleep, cx));
    late = weft_now_ms() - weft_sleep_deadline(&d->sleep);
    prev = atomic_load(&worst_late_ms);
    while (late > prev && !atomic_compare_exchange_weak(&worst_late_ms, &prev, late))
        ;
    if (!quiet)
        printf("%s: %u ms\n", weft_worker_name(), d->ms);
    WEFT_END(&d->co);
}

static void demo_timer_drop(demo_timer *d)
{
    weft_sleep_drop(&d->sleep);
}

WEFT_DEFINE_FUTURE_VOID(demo_timer, demo_timer_poll, demo_timer_drop);

/* Peak thread count of this process, sampled every millisecond. */
static atomic_int peak_threads;
static atomic_bool sampling;

static int threads_now(void)
{
    char line[128];
    int n = 0;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

static void *sampler(void *arg)
{
    struct timespec ms = { 0, 1000000 };

    (void)arg;
    while (atomic_load(&sampling)) {
        int n = threads_now();

        if (n > atomic_load(&peak_threads))
            atomic_store(&peak_threads, n);
        nanosleep(&ms, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    weft_runtime *rt;
    unsigned step = 100, tasks = 20;
    bool timer = false;
    struct timespec t0, t1;
    pthread_t sample;
    int err;

    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--seconds") == 0)
            step = 1000;
        else if (strcmp(argv[a], "--timer") == 0)
            timer = true;
        else if (strcmp(argv[a], "--tasks") == 0 && a + 1 < argc)
            tasks = (unsigned)strtoul(argv[++a], NULL, 10);
        else {
            fprintf(stderr, "usage: fakeio [--seconds] [--timer] [--tasks N]\n");
            return 2;
        }
    }
    quiet = tasks > 20;
    setvbuf(stdout, NULL, _IOLBF, 0);
    atomic_store(&sampling, true);
    pthread_create(&sample, NULL, sampler, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);

    err = weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 4 });
    if (err < 0) {
        fprintf(stderr, "weft_runtime_new: %s\n", weft_strerror(err));
        return 1;
    }
    for (unsigned i = 1; i <= tasks; i++) {
        unsigned k = tasks > 20 ? (i - 1) % 20 + 1 : i;

        err = timer ? weft_spawn_detached(rt, &demo_timer_future,
                                          &(demo_timer){ .i = i, .ms = k * step })
                    : weft_spawn_detached(rt, &demo_future,
                                          &(demo){ .i = k, .ms_per_step = step });
        if (err < 0) {
            fprintf(stderr, "weft_spawn_detached: %s\n", weft_strerror(err));
            return 1;
        }
    }
    err = weft_runtime_run(rt);       /* the seed's toy.run(4) */
    weft_runtime_free(rt);

    clock_gettime(CLOCK_MONOTONIC, &t1);
    atomic_store(&sampling, false);
    pthread_join(sample, NULL);
    printf("all %u tasks done in %.0f ms (longest sleep: %u ms), %s, peak threads %d",
           tasks, (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
           (tasks > 20 ? 20 : tasks) * step, timer ? "weft timer" : "a thread per FakeIO",
           atomic_load(&peak_threads));
    if (timer)
        printf(", worst lateness %llu ms", (unsigned long long)atomic_load(&worst_late_ms));
    printf("\n");
    return err < 0;
}
