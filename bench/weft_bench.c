/* SPDX-License-Identifier: MIT */
/* weft's side of the scheduler benchmarks W1-W5 and the sync-layer
 * benchmarks C1, C4, M1 (bench/peers/ has the same workloads on tokio and Go).
 * One workload per run:
 *
 *     weft-bench <W1..W5|C1|C4|M1> <mt<workers>|ct> [scale]   (mt2: 2 workers)
 *
 * C1, C4: channel throughput, 1 producer/1 consumer and 4/4, on one weft_chan
 * bounded to 1024 messages, 10,000,000 messages in all (op = one message).
 * M1: 1,000 tasks each lock and unlock one weft_mutex 1,000 times, bumping a
 * counter it protects (op = one lock/unlock pair).
 *
 * W4: pairs of tasks pass a counter over two weft_chan bounded to 1 message
 * (the public API only, as every workload here). Prints `RESULT <workload>
 * weft-<flavour> <ns per op>` and exits non-zero when the workload's own
 * check fails. `scale` multiplies the task count
 * (never below 1; C1/C4: the message count); per-task iterations stay fixed. Only the workload is
 * timed, not building the runtime. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft.h"

#define SPAWNS 1000000
#define YIELD_TASKS 1000
#define YIELDS_PER_TASK 1000
#define PAIRS 1000
#define ROUND_TRIPS 1000
#define MESSAGES 10000000
#define CHAN_CAP 1024
#define LOCK_TASKS 1000
#define LOCKS_PER_TASK 1000

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- A tiny spinlock for the bench's own little structures ----------------- */
typedef struct spin {
    atomic_flag f;
} spin;

static void spin_lock(spin *s)
{
    while (atomic_flag_test_and_set_explicit(&s->f, memory_order_acquire))
        ;
}

static void spin_unlock(spin *s)
{
    atomic_flag_clear_explicit(&s->f, memory_order_release);
}

/* ---- Completion tracking: the task that takes `remaining` to 0 signals ------ */
static struct {
    atomic_size_t count;
    atomic_size_t remaining;
    atomic_bool fired;
    spin lock;
    weft_waker waiter;        /* ->lock */
} shared;

static void shared_reset(size_t tasks)
{
    atomic_store(&shared.count, 0);
    atomic_store(&shared.remaining, tasks);
    atomic_store(&shared.fired, false);
    shared.waiter = WEFT_WAKER_EMPTY;
}

static void shared_signal(void)
{
    weft_waker w;

    atomic_store_explicit(&shared.fired, true, memory_order_release);
    spin_lock(&shared.lock);
    w = shared.waiter;
    shared.waiter = WEFT_WAKER_EMPTY;
    spin_unlock(&shared.lock);
    weft_waker_wake(&w);
}

static void shared_finish(void)
{
    if (atomic_fetch_sub_explicit(&shared.remaining, 1, memory_order_acq_rel) == 1)
        shared_signal();
}

/* Await the signal. */
static weft_poll shared_wait(weft_context *cx)
{
    weft_waker old;

    if (atomic_load_explicit(&shared.fired, memory_order_acquire))
        return WEFT_READY;
    spin_lock(&shared.lock);
    old = shared.waiter;
    shared.waiter = weft_waker_clone(weft_context_waker(cx));
    spin_unlock(&shared.lock);
    weft_waker_drop(&old);
    return atomic_load_explicit(&shared.fired, memory_order_acquire) ? WEFT_READY : WEFT_PENDING;
}

/* ---- The leaf tasks ---------------------------------------------------------------- */
typedef struct bump {
    char unused;
} bump;

static weft_poll bump_poll(bump *b, weft_context *cx, void *out)
{
    (void)b, (void)cx, (void)out;
    atomic_fetch_add_explicit(&shared.count, 1, memory_order_relaxed);
    shared_finish();
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_VOID(bump, bump_poll, NULL);

typedef struct yielder {
    weft_async co;
    unsigned i;
    weft_yield y;
} yielder;

static weft_poll yielder_poll(yielder *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    /* count locally (f->i), publish once: the shared counter must not be
     * what is measured */
    for (f->i = 0; f->i < YIELDS_PER_TASK; f->i++)
        WEFT_YIELD(&f->co, &f->y, cx);
    atomic_fetch_add_explicit(&shared.count, f->i, memory_order_relaxed);
    shared_finish();
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_VOID(yielder, yielder_poll, NULL);

/* W4: a pinger and a ponger pass a counter back and forth over two
 * weft_chan of capacity 1; each message is a fresh send or receive future,
 * as `ch.send(v).await` / `ch.recv().await` are in the peers. */
typedef struct pinger {
    weft_async co;
    weft_chan *to_pong, *from_pong;
    unsigned i;
    size_t v;
    int res;
    weft_chan_send s;
    weft_chan_recv r;
} pinger;

static weft_poll pinger_poll(pinger *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < ROUND_TRIPS; f->i++) {
        weft_chan_send_init(&f->s, f->to_pong, &f->v);
        WEFT_AWAIT(&f->co, weft_chan_send_poll(&f->s, cx, &f->res));
        weft_chan_send_drop(&f->s);
        weft_chan_recv_init(&f->r, f->from_pong, &f->v);
        WEFT_AWAIT(&f->co, weft_chan_recv_poll(&f->r, cx, &f->res));
        weft_chan_recv_drop(&f->r);
        f->v++;
    }
    if (f->v == 2 * ROUND_TRIPS)
        atomic_fetch_add_explicit(&shared.count, 1, memory_order_relaxed);
    shared_finish();
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_VOID(pinger, pinger_poll, NULL);

typedef struct ponger {
    weft_async co;
    weft_chan *from_ping, *to_ping;
    unsigned i;
    size_t last, next;
    int res;
    weft_chan_send s;
    weft_chan_recv r;
} ponger;

static weft_poll ponger_poll(ponger *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < ROUND_TRIPS; f->i++) {
        weft_chan_recv_init(&f->r, f->from_ping, &f->last);
        WEFT_AWAIT(&f->co, weft_chan_recv_poll(&f->r, cx, &f->res));
        weft_chan_recv_drop(&f->r);
        f->next = f->last + 1;
        weft_chan_send_init(&f->s, f->to_ping, &f->next);
        WEFT_AWAIT(&f->co, weft_chan_send_poll(&f->s, cx, &f->res));
        weft_chan_send_drop(&f->s);
    }
    if (f->last == 2 * ROUND_TRIPS - 2)
        atomic_fetch_add_explicit(&shared.count, 1, memory_order_relaxed);
    shared_finish();
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_VOID(ponger, ponger_poll, NULL);

/* ---- C1, C4: channel throughput on one bounded weft_chan --------------------
 * Each producer sends the values [first, end) in order; the last producer to
 * finish closes the channel, and each consumer receives until -EPIPE (closed
 * and drained), then publishes how many messages it got and their sum. Every
 * task holds its own reference to the channel and drops it at its end. */
static struct {
    atomic_size_t producers_left;
    atomic_uint_least64_t sum;    /* consumers' checksums, added up */
    atomic_bool failed;           /* a send or receive got an unexpected error */
} sync_bench;

typedef struct producer {
    weft_async co;
    weft_chan *ch;
    uint64_t next, end;
    int res;
    weft_chan_send s;
} producer;

static weft_poll producer_poll(producer *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (; f->next < f->end; f->next++) {
        weft_chan_send_init(&f->s, f->ch, &f->next);
        WEFT_AWAIT(&f->co, weft_chan_send_poll(&f->s, cx, &f->res));
        weft_chan_send_drop(&f->s);
        if (f->res != 0) {
            atomic_store(&sync_bench.failed, true);
            break;
        }
    }
    if (atomic_fetch_sub_explicit(&sync_bench.producers_left, 1, memory_order_acq_rel) == 1)
        weft_chan_close(f->ch);
    weft_chan_drop(f->ch);
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_VOID(producer, producer_poll, NULL);

typedef struct consumer {
    weft_async co;
    weft_chan *ch;
    uint64_t v, count, sum;
    int res;
    weft_chan_recv r;
} consumer;

static weft_poll consumer_poll(consumer *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (;;) {
        weft_chan_recv_init(&f->r, f->ch, &f->v);
        WEFT_AWAIT(&f->co, weft_chan_recv_poll(&f->r, cx, &f->res));
        weft_chan_recv_drop(&f->r);
        if (f->res != 0)
            break;
        f->count++;
        f->sum += f->v;
    }
    if (f->res != -EPIPE)
        atomic_store(&sync_bench.failed, true);
    atomic_fetch_add_explicit(&shared.count, f->count, memory_order_relaxed);
    atomic_fetch_add_explicit(&sync_bench.sum, f->sum, memory_order_relaxed);
    weft_chan_drop(f->ch);
    shared_finish();
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_VOID(consumer, consumer_poll, NULL);

/* ---- M1: mutex contention ----------------------------------------------------
 * Each task locks the mutex LOCKS_PER_TASK times and bumps a plain counter
 * under it; the check is that no increment was lost. */
static uint64_t locked_counter;   /* guarded by the weft_mutex */

typedef struct locker {
    weft_async co;
    weft_mutex *m;
    unsigned i;
    int res;
    weft_mutex_lock l;
} locker;

static weft_poll locker_poll(locker *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < LOCKS_PER_TASK; f->i++) {
        weft_mutex_lock_init(&f->l, f->m);
        WEFT_AWAIT(&f->co, weft_mutex_lock_poll(&f->l, cx, &f->res));
        weft_mutex_lock_drop(&f->l);
        if (f->res != 0) {
            atomic_store(&sync_bench.failed, true);
            break;
        }
        locked_counter++;
        if (weft_mutex_unlock(f->m) != 0) {
            atomic_store(&sync_bench.failed, true);
            break;
        }
    }
    shared_finish();
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_VOID(locker, locker_poll, NULL);

typedef struct link {
    size_t left;
} link;

static weft_poll link_poll(link *f, weft_context *cx, void *out);
WEFT_DEFINE_FUTURE_VOID(link, link_poll, NULL);

static weft_poll link_poll(link *f, weft_context *cx, void *out)
{
    (void)cx, (void)out;
    atomic_fetch_add_explicit(&shared.count, 1, memory_order_relaxed);
    if (f->left > 1) {
        if (weft_spawn_detached(weft_runtime_current(), &link_future,
                                &(link){ f->left - 1 }) < 0)
            abort();
    } else {
        shared_signal();
    }
    return WEFT_READY;
}

/* ---- The roots: each runs one workload inside the runtime, output = ns ------- */
enum workload { W1 = 1, W2, W3, W4, W5, C1, C4, M1 };

typedef struct root {
    weft_async co;
    enum workload w;
    size_t n;
    uint64_t start;
    weft_chan **wchans;
    size_t tasks;              /* C1, C4: producers = consumers */
    weft_mutex *mutex;         /* M1 */
} root;

static weft_poll root_poll(root *r, weft_context *cx, void *out)
{
    weft_runtime *rt = weft_runtime_current();

    WEFT_BEGIN(&r->co);
    r->start = now_ns();
    switch (r->w) {
    case W1:
        for (size_t i = 0; i < r->n; i++)
            if (weft_spawn_detached(rt, &bump_future, &(bump){ 0 }) < 0)
                abort();
        break;
    case W3:
        for (size_t i = 0; i < r->n; i++)
            if (weft_spawn_detached(rt, &yielder_future, &(yielder){ .i = 0 }) < 0)
                abort();
        break;
    case W4:
        for (size_t i = 0; i < r->n; i++) {
            weft_chan *a, *b;

            if (weft_chan_new(&a, sizeof(size_t), 1) < 0 || weft_chan_new(&b, sizeof(size_t), 1) < 0 ||
                weft_spawn_detached(rt, &pinger_future, &(pinger){ .to_pong = a, .from_pong = b }) < 0 ||
                weft_spawn_detached(rt, &ponger_future, &(ponger){ .from_ping = weft_chan_clone(a), .to_ping = weft_chan_clone(b) }) < 0)
                abort();
            r->wchans[2 * i] = a;
            r->wchans[2 * i + 1] = b;
        }
        break;
    case W5:
        if (weft_spawn_detached(rt, &link_future, &(link){ r->n }) < 0)
            abort();
        break;
    case C1:
    case C4: {
        weft_chan *ch;
        size_t per = r->n / r->tasks;

        if (weft_chan_new(&ch, sizeof(uint64_t), CHAN_CAP) < 0)
            abort();
        for (size_t i = 0; i < r->tasks; i++)
            if (weft_spawn_detached(rt, &consumer_future,
                                    &(consumer){ .ch = weft_chan_clone(ch) }) < 0)
                abort();
        for (size_t i = 0; i < r->tasks; i++)
            if (weft_spawn_detached(rt, &producer_future,
                                    &(producer){ .ch = weft_chan_clone(ch),
                                                 .next = 1 + i * per,
                                                 .end = 1 + (i + 1) * per }) < 0)
                abort();
        weft_chan_drop(ch);
        break;
    }
    case M1:
        for (size_t i = 0; i < r->n; i++)
            if (weft_spawn_detached(rt, &locker_future, &(locker){ .m = r->mutex }) < 0)
                abort();
        break;
    case W2:
        break;                 /* the spawner thread does the work */
    }
    WEFT_AWAIT(&r->co, shared_wait(cx));
    *(uint64_t *)out = now_ns() - r->start;
    WEFT_END(&r->co);
}
WEFT_DEFINE_FUTURE(root, root_poll, NULL, uint64_t);

struct spawner {
    weft_runtime *rt;
    size_t n;
};

static void *spawner_main(void *arg)
{
    struct spawner *s = arg;

    for (size_t i = 0; i < s->n; i++)
        if (weft_spawn_detached(s->rt, &bump_future, &(bump){ 0 }) < 0)
            abort();
    return NULL;
}

static int usage(void)
{
    fputs("usage: weft-bench <W1|W2|W3|W4|W5|C1|C4|M1> <mt<workers>|ct> [scale]\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    weft_runtime_options opt = { 0 };
    char name_buf[32];
    const char *name;
    double scale = 1.0;
    enum workload w;
    size_t n, ops, want;
    uint64_t ns = 0;
    weft_runtime *rt;
    weft_chan **wchans = NULL;
    weft_mutex *mutex = NULL;
    size_t tasks = 0;
    uint64_t want_sum = 0;
    int err;

    if (argc < 3 || argc > 4)
        return usage();
    if (strcmp(argv[1], "C1") == 0)
        w = C1;
    else if (strcmp(argv[1], "C4") == 0)
        w = C4;
    else if (strcmp(argv[1], "M1") == 0)
        w = M1;
    else if (strlen(argv[1]) == 2 && argv[1][0] == 'W' && argv[1][1] >= '1' && argv[1][1] <= '5')
        w = (enum workload)(argv[1][1] - '0');
    else
        return usage();
    if (strncmp(argv[2], "mt", 2) == 0 && atoi(argv[2] + 2) > 0) {
        opt.workers = (unsigned)atoi(argv[2] + 2);
        snprintf(name_buf, sizeof(name_buf), "weft-mt%u", opt.workers);
        name = name_buf;
    } else if (strcmp(argv[2], "ct") == 0) {
        opt.flavor = WEFT_CURRENT_THREAD;
        name = "weft-ct";
    } else {
        return usage();
    }
    if (argc == 4 && (scale = strtod(argv[3], NULL)) <= 0)
        return usage();
    switch (w) {
    case W3: n = (size_t)(YIELD_TASKS * scale); break;
    case W4: n = (size_t)(PAIRS * scale); break;
    case C1:
    case C4: n = (size_t)(MESSAGES * scale); break;
    case M1: n = (size_t)(LOCK_TASKS * scale); break;
    default: n = (size_t)(SPAWNS * scale); break;
    }
    if (n == 0)
        n = 1;
    if (w == C1 || w == C4) {
        /* every producer sends the same number: round down to a multiple */
        tasks = w == C1 ? 1 : 4;
        n = n < tasks ? tasks : n - n % tasks;
        want_sum = (uint64_t)n * ((uint64_t)n + 1) / 2;   /* 1 + 2 + ... + n */
        atomic_store(&sync_bench.producers_left, tasks);
    }
    shared_reset(w == W4 ? 2 * n : w == C1 || w == C4 ? tasks : n);
    if (w == M1 && weft_mutex_new(&mutex) < 0)
        return 1;
    if (w == W4 && (wchans = calloc(2 * n, sizeof(*wchans))) == NULL)
        return 1;

    err = weft_runtime_new(&rt, &opt);
    if (err < 0) {
        fprintf(stderr, "weft_runtime_new: %s\n", weft_strerror(err));
        return 1;
    }
    /* WEFT_BENCH_TRACE=1: the same run with a timeline recording (weft/trace.h),
     * to measure what recording costs (docs/trace.md) */
    if (getenv("WEFT_BENCH_TRACE") && atoi(getenv("WEFT_BENCH_TRACE")) > 0 &&
        (err = weft_trace_start(rt, 0)) < 0) {
        fprintf(stderr, "weft_trace_start: %s\n", weft_strerror(err));
        return 1;
    }
    if (w == W2) {
        struct spawner s = { rt, n };
        pthread_t th;
        uint64_t t0 = now_ns();

        if (pthread_create(&th, NULL, spawner_main, &s) != 0)
            return 1;
        err = weft_block_on(rt, &root_future, &(root){ .w = W2 }, &ns);
        ns = now_ns() - t0;
        pthread_join(th, NULL);
    } else {
        err = weft_block_on(rt, &root_future,
                            &(root){ .w = w, .n = n, .wchans = wchans,
                                     .tasks = tasks, .mutex = mutex }, &ns);
    }
    /* WEFT_BENCH_METRICS=1: the scheduler's counters after the run, on
     * stderr (how often workers stole, overflowed, parked) */
    if (getenv("WEFT_BENCH_METRICS") && atoi(getenv("WEFT_BENCH_METRICS")) > 0) {
        weft_metrics m = { .size = sizeof(m) };

        if (weft_runtime_metrics(rt, &m) == 0)
            fprintf(stderr, "METRICS polls %llu lifo_polls %llu steals %llu overflows %llu "
                    "parks %llu budget_yields %llu\n", m.polls, m.lifo_polls, m.steals,
                    m.overflows, m.parks, m.budget_yields);
    }
    weft_runtime_free(rt);
    if (err < 0) {
        fprintf(stderr, "weft_block_on: %s\n", weft_strerror(err));
        return 1;
    }
    for (size_t i = 0; wchans && i < 2 * n; i++) {
        weft_chan_drop(wchans[i]);    /* the pinger's reference ... */
        weft_chan_drop(wchans[i]);    /* ... and the ponger's clone */
    }
    free(wchans);
    weft_mutex_free(mutex);

    switch (w) {
    case W3:
        ops = want = n * YIELDS_PER_TASK;
        break;
    case W4:
        ops = n * ROUND_TRIPS * 2;
        want = 2 * n;
        break;
    case M1:
        ops = want = n * LOCKS_PER_TASK;
        atomic_store(&shared.count, (size_t)locked_counter);
        break;
    default:
        ops = want = n;
        break;
    }
    if (atomic_load(&sync_bench.failed)) {
        fprintf(stderr, "%s %s: check failed: a channel or mutex operation failed\n",
                argv[1], name);
        return 1;
    }
    if (atomic_load(&shared.count) != want) {
        fprintf(stderr, "%s %s: check failed: count %zu, want %zu\n", argv[1], name,
                atomic_load(&shared.count), want);
        return 1;
    }
    if ((w == C1 || w == C4) && atomic_load(&sync_bench.sum) != want_sum) {
        fprintf(stderr, "%s %s: check failed: checksum %llu, want %llu\n", argv[1], name,
                (unsigned long long)atomic_load(&sync_bench.sum), (unsigned long long)want_sum);
        return 1;
    }
    printf("RESULT %s %s %.1f\n", argv[1], name, (double)ns / (double)ops);
    return 0;
}
