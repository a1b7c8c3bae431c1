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
 * i x 100 ms; `--seconds` gives the seed's i seconds. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "weft.h"

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
    printf("%s: %u ms\n", weft_worker_name(), d->ret);
    WEFT_END(&d->co);
}

static void demo_drop(demo *d)
{
    fake_io_drop(&d->io);
}

WEFT_DEFINE_FUTURE_VOID(demo, demo_poll, demo_drop);

int main(int argc, char **argv)
{
    weft_runtime *rt;
    unsigned step = 100;
    struct timespec t0, t1;
    int err;

    if (argc > 1 && strcmp(argv[1], "--seconds") == 0)
        step = 1000;
    setvbuf(stdout, NULL, _IOLBF, 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);

    err = weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 4 });
    if (err < 0) {
        fprintf(stderr, "weft_runtime_new: %s\n", weft_strerror(err));
        return 1;
    }
    for (unsigned i = 1; i <= 20; i++) {
        err = weft_spawn_detached(rt, &demo_future, &(demo){ .i = i, .ms_per_step = step });
        if (err < 0) {
            fprintf(stderr, "weft_spawn_detached: %s\n", weft_strerror(err));
            return 1;
        }
    }
    err = weft_runtime_run(rt);       /* the seed's toy.run(4) */
    weft_runtime_free(rt);

    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("all 20 tasks done in %.0f ms (longest sleep: %u ms)\n",
           (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6, 20 * step);
    return err < 0;
}
