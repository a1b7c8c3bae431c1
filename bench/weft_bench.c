/* weft's side of the scheduler benchmarks W1-W5 (bench/peers/ has the same
 * workloads on tokio and Go). One workload per run:
 *
 *     weft-bench <W1..W5> <mt<workers>|ct> [scale] [chan]   (mt2: 2 workers)
 *
 * `chan` runs W4 on weft's MPMC channel (weft_chan) instead of the minimal
 * capacity-1 channel below. Prints `RESULT <workload> weft-<flavour> <ns
 * per op>` and exits non-zero
 * when the workload's own check fails. `scale` multiplies the task count
 * (never below 1); per-task iterations stay fixed. Only the workload is
 * timed, not building the runtime. */
#define _GNU_SOURCE
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

/* ---- A minimal capacity-1 channel (the channel issue brings real ones) -------
 * Each side's waker stays registered while that side's task is the same
 * (will_wake), and the other side wakes it by reference only while it is
 * waiting: no waker clone and drop per message. */
typedef struct chan1 {
    spin lock;
    bool full;                /* ->lock */
    size_t value;             /* ->lock */
    weft_waker rx, tx;        /* ->lock: registered wakers */
    bool rx_waiting, tx_waiting;   /* ->lock: the side is pending on us */
} chan1;

static void chan1_drop(chan1 *ch)
{
    weft_waker_drop(&ch->rx);
    weft_waker_drop(&ch->tx);
}

/* Register cx's waker in *slot unless it is there already; ->lock held. The
 * replaced waker is handed back to drop outside the lock. */
static weft_waker park_waker(weft_waker *slot, weft_context *cx)
{
    weft_waker old = WEFT_WAKER_EMPTY;

    if (!weft_waker_will_wake(slot, weft_context_waker(cx))) {
        old = *slot;
        *slot = weft_waker_clone(weft_context_waker(cx));
    }
    return old;
}

static weft_poll chan1_send(chan1 *ch, weft_context *cx, size_t v)
{
    weft_waker old;
    bool wake;

    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    spin_lock(&ch->lock);
    if (ch->full) {
        old = park_waker(&ch->tx, cx);
        ch->tx_waiting = true;
        spin_unlock(&ch->lock);
        weft_waker_drop(&old);
        return WEFT_PENDING;
    }
    ch->value = v;
    ch->full = true;
    wake = ch->rx_waiting;
    ch->rx_waiting = false;
    /* the receiver's waker stays registered; waking it under the lock keeps
     * it from being replaced meanwhile (the wake only queues the task) */
    if (wake)
        weft_waker_wake_by_ref(&ch->rx);
    spin_unlock(&ch->lock);
    return WEFT_READY;
}

static weft_poll chan1_recv(chan1 *ch, weft_context *cx, size_t *v)
{
    weft_waker old;
    bool wake;

    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    spin_lock(&ch->lock);
    if (!ch->full) {
        old = park_waker(&ch->rx, cx);
        ch->rx_waiting = true;
        spin_unlock(&ch->lock);
        weft_waker_drop(&old);
        return WEFT_PENDING;
    }
    *v = ch->value;
    ch->full = false;
    wake = ch->tx_waiting;
    ch->tx_waiting = false;
    if (wake)
        weft_waker_wake_by_ref(&ch->tx);
    spin_unlock(&ch->lock);
    return WEFT_READY;
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

typedef struct pinger {
    weft_async co;
    chan1 *to_pong, *from_pong;
    unsigned i;
    size_t v;
} pinger;

static weft_poll pinger_poll(pinger *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < ROUND_TRIPS; f->i++) {
        WEFT_AWAIT(&f->co, chan1_send(f->to_pong, cx, f->v));
        WEFT_AWAIT(&f->co, chan1_recv(f->from_pong, cx, &f->v));
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
    chan1 *from_ping, *to_ping;
    unsigned i;
    size_t last;
} ponger;

static weft_poll ponger_poll(ponger *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < ROUND_TRIPS; f->i++) {
        WEFT_AWAIT(&f->co, chan1_recv(f->from_ping, cx, &f->last));
        WEFT_AWAIT(&f->co, chan1_send(f->to_ping, cx, f->last + 1));
    }
    if (f->last == 2 * ROUND_TRIPS - 2)
        atomic_fetch_add_explicit(&shared.count, 1, memory_order_relaxed);
    shared_finish();
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_VOID(ponger, ponger_poll, NULL);

/* W4 on weft's own MPMC channel (weft_chan, capacity 1) instead of the
 * minimal chan1: `weft-bench W4 <flavour> [scale] chan` */
typedef struct pinger2 {
    weft_async co;
    weft_chan *to_pong, *from_pong;
    unsigned i;
    size_t v;
    int res;
    weft_chan_send s;
    weft_chan_recv r;
} pinger2;

static weft_poll pinger2_poll(pinger2 *f, weft_context *cx, void *out)
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
WEFT_DEFINE_FUTURE_VOID(pinger2, pinger2_poll, NULL);

typedef struct ponger2 {
    weft_async co;
    weft_chan *from_ping, *to_ping;
    unsigned i;
    size_t last, next;
    int res;
    weft_chan_send s;
    weft_chan_recv r;
} ponger2;

static weft_poll ponger2_poll(ponger2 *f, weft_context *cx, void *out)
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
WEFT_DEFINE_FUTURE_VOID(ponger2, ponger2_poll, NULL);

static bool use_weft_chan;

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
enum workload { W1 = 1, W2, W3, W4, W5 };

typedef struct root {
    weft_async co;
    enum workload w;
    size_t n;
    uint64_t start;
    chan1 *chans;
    weft_chan **wchans;
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
        for (size_t i = 0; use_weft_chan && i < r->n; i++) {
            weft_chan *a, *b;

            if (weft_chan_new(&a, sizeof(size_t), 1) < 0 || weft_chan_new(&b, sizeof(size_t), 1) < 0 ||
                weft_spawn_detached(rt, &pinger2_future, &(pinger2){ .to_pong = a, .from_pong = b }) < 0 ||
                weft_spawn_detached(rt, &ponger2_future, &(ponger2){ .from_ping = weft_chan_clone(a), .to_ping = weft_chan_clone(b) }) < 0)
                abort();
            r->wchans[2 * i] = a;
            r->wchans[2 * i + 1] = b;
        }
        for (size_t i = 0; !use_weft_chan && i < r->n; i++) {
            chan1 *a = &r->chans[2 * i], *b = &r->chans[2 * i + 1];

            if (weft_spawn_detached(rt, &pinger_future, &(pinger){ .to_pong = a, .from_pong = b }) < 0 ||
                weft_spawn_detached(rt, &ponger_future, &(ponger){ .from_ping = a, .to_ping = b }) < 0)
                abort();
        }
        break;
    case W5:
        if (weft_spawn_detached(rt, &link_future, &(link){ r->n }) < 0)
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
    fputs("usage: weft-bench <W1|W2|W3|W4|W5> <mt<workers>|ct> [scale]\n", stderr);
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
    chan1 *chans = NULL;
    weft_chan **wchans = NULL;
    int err;

    if (argc == 5 && strcmp(argv[4], "chan") == 0) {
        use_weft_chan = true;
        argc = 4;
    }
    if (argc < 3 || argc > 4 || strlen(argv[1]) != 2 || argv[1][0] != 'W' ||
        argv[1][1] < '1' || argv[1][1] > '5')
        return usage();
    w = (enum workload)(argv[1][1] - '0');
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
    n = (size_t)((w == W3 ? YIELD_TASKS : w == W4 ? PAIRS : SPAWNS) * scale);
    if (n == 0)
        n = 1;
    shared_reset(w == W4 ? 2 * n : n);
    if (w == W4 && ((chans = calloc(2 * n, sizeof(*chans))) == NULL ||
                    (wchans = calloc(2 * n, sizeof(*wchans))) == NULL))
        return 1;

    err = weft_runtime_new(&rt, &opt);
    if (err < 0) {
        fprintf(stderr, "weft_runtime_new: %s\n", weft_strerror(err));
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
                            &(root){ .w = w, .n = n, .chans = chans, .wchans = wchans }, &ns);
    }
    weft_runtime_free(rt);
    if (err < 0) {
        fprintf(stderr, "weft_block_on: %s\n", weft_strerror(err));
        return 1;
    }
    for (size_t i = 0; chans && i < 2 * n; i++)
        chan1_drop(&chans[i]);
    for (size_t i = 0; use_weft_chan && wchans && i < 2 * n; i++) {
        weft_chan_drop(wchans[i]);    /* the pinger's reference ... */
        weft_chan_drop(wchans[i]);    /* ... and the ponger's clone */
    }
    free(chans);
    free(wchans);

    switch (w) {
    case W3:
        ops = want = n * YIELDS_PER_TASK;
        break;
    case W4:
        ops = n * ROUND_TRIPS * 2;
        want = 2 * n;
        break;
    default:
        ops = want = n;
        break;
    }
    if (atomic_load(&shared.count) != want) {
        fprintf(stderr, "%s %s: check failed: count %zu, want %zu\n", argv[1], name,
                atomic_load(&shared.count), want);
        return 1;
    }
    printf("RESULT %s %s %.1f\n", argv[1], name, (double)ns / (double)ops);
    return 0;
}
