/* SPDX-License-Identifier: MIT */
/* The bounded channel's lock-free ring (src/sync/chan.c): laps at every
 * capacity, plain threads on the try_ paths, close racing sends (a send that
 * returned 0 is received, one that returned -EPIPE is not), waiters parking
 * against finishers on other threads (a lost wake-up hangs the test), and
 * waiting futures aborted on bounded channels. Run under TSan too. */
#include <string.h>

#include "sync_test.h"

/* Single thread: FIFO across many laps at small, odd capacities; full and
 * empty reported exactly; len follows; close drains, then -EPIPE. */
TEST(chan_ring_laps_at_every_capacity)
{
    for (size_t cap = 1; cap <= 9; cap++) {
        weft_chan *ch;
        uint64_t next_in = 0, next_out = 0, v;

        ASSERT_OK(weft_chan_new(&ch, sizeof(uint64_t), cap));
        for (int round = 0; round < 200; round++) {
            size_t fill = (size_t)round * 7 % (cap + 1), len = weft_chan_len(ch);

            while (len < fill) {
                ASSERT_OK(weft_chan_try_send(ch, &next_in));
                next_in++;
                ASSERT_EQ(++len, weft_chan_len(ch));
            }
            if (len == cap)
                ASSERT_EQ(-EAGAIN, weft_chan_try_send(ch, &v));
            while (len > fill / 2) {
                ASSERT_OK(weft_chan_try_recv(ch, &v));
                ASSERT_EQ(next_out, v);
                next_out++;
                ASSERT_EQ(--len, weft_chan_len(ch));
            }
            if (len == 0)
                ASSERT_EQ(-EAGAIN, weft_chan_try_recv(ch, &v));
        }
        weft_chan_close(ch);
        ASSERT_EQ(-EPIPE, weft_chan_try_send(ch, &v));
        while (next_out < next_in) {
            ASSERT_OK(weft_chan_try_recv(ch, &v));
            ASSERT_EQ(next_out, v);
            next_out++;
        }
        ASSERT_EQ(-EPIPE, weft_chan_try_recv(ch, &v));
        ASSERT_EQ(0, weft_chan_len(ch));
        weft_chan_drop(ch);
    }
}

/* Every message size around the small-ring limit (a ring of up to 48
 * bytes lives in the line of the receivers' end, with its tail next to its
 * head; a larger one has its tail on a line of its own) at capacities 1 to
 * 6: FIFO and every byte intact across laps, full and empty exact, close
 * drains then -EPIPE, on both layouts and at the boundary between them. */
TEST(chan_ring_small_and_large_layouts)
{
    static const size_t sizes[] = { 1, 4, 7, 8, 12, 16, 24, 32, 40, 41, 48, 56 };
    unsigned char in[64], out[64];

    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        for (size_t cap = 1; cap <= 6; cap++) {
            size_t size = sizes[si];
            unsigned sent = 0, got = 0;
            weft_chan *ch;

            ASSERT_OK(weft_chan_new(&ch, size, cap));
            for (int round = 0; round < 40; round++) {
                size_t fill = (size_t)round * 5 % (cap + 1);

                while (weft_chan_len(ch) < fill) {
                    for (size_t b = 0; b < size; b++)
                        in[b] = (unsigned char)(sent * 31 + b * 7 + size);
                    ASSERT_OK(weft_chan_try_send(ch, in));
                    sent++;
                }
                if (weft_chan_len(ch) == cap)
                    ASSERT_EQ(-EAGAIN, weft_chan_try_send(ch, in));
                while (weft_chan_len(ch) > fill / 2) {
                    memset(out, 0xee, sizeof(out));
                    ASSERT_OK(weft_chan_try_recv(ch, out));
                    for (size_t b = 0; b < size; b++)
                        ASSERT_EQ((unsigned char)(got * 31 + b * 7 + size), out[b]);
                    ASSERT_EQ(0xee, out[size]);        /* nothing past the message */
                    got++;
                }
                if (weft_chan_len(ch) == 0)
                    ASSERT_EQ(-EAGAIN, weft_chan_try_recv(ch, out));
            }
            for (size_t b = 0; b < size; b++)
                in[b] = (unsigned char)(sent * 31 + b * 7 + size);
            if (weft_chan_len(ch) < cap) {
                ASSERT_OK(weft_chan_try_send(ch, in));
                sent++;
            }
            weft_chan_close(ch);
            ASSERT(weft_chan_is_closed(ch));
            ASSERT_EQ(-EPIPE, weft_chan_try_send(ch, in));
            while (got < sent) {
                ASSERT_OK(weft_chan_try_recv(ch, out));
                ASSERT_EQ((unsigned char)(got * 31 + size), out[0]);
                got++;
            }
            ASSERT_EQ(-EPIPE, weft_chan_try_recv(ch, out));
            ASSERT_EQ(0, weft_chan_len(ch));
            weft_chan_drop(ch);
        }
    }
}

/* Messages larger than a word, at a capacity that is not a power of two:
 * every byte survives the ring. */
TEST(chan_ring_large_messages)
{
    struct big {
        unsigned char b[37];
    } in, out;
    weft_chan *ch;

    ASSERT_OK(weft_chan_new(&ch, sizeof(struct big), 5));
    for (int i = 0; i < 100; i++) {
        memset(in.b, i, sizeof(in.b));
        in.b[0] = (unsigned char)(i + 1);
        ASSERT_OK(weft_chan_try_send(ch, &in));
        if (i % 3 != 2)
            continue;
        for (int k = 0; k < 3; k++) {
            ASSERT_OK(weft_chan_try_recv(ch, &out));
            ASSERT_EQ(i - 2 + k + 1, out.b[0]);
            for (size_t j = 1; j < sizeof(out.b); j++)
                ASSERT_EQ((unsigned char)(i - 2 + k), out.b[j]);
        }
    }
    weft_chan_drop(ch);
}

/* ---- Plain threads on the try_ paths ----------------------------------------- */
#define TP 3                      /* producer threads */
#define TC 3                      /* consumer threads */

struct tshared {
    weft_chan *ch;
    uint32_t per_producer;
    atomic_int producers_left;
    atomic_ullong count, sum, xr;
    atomic_int order_bad, fail;
};

struct targ {
    struct tshared *sh;
    uint32_t id;
};

static void *try_producer(void *p)
{
    struct targ *a = p;
    struct tshared *sh = a->sh;

    for (uint32_t i = 0; i < sh->per_producer; i++) {
        uint64_t m = (uint64_t)a->id << 32 | i;
        int err;

        while ((err = weft_chan_try_send(sh->ch, &m)) == -EAGAIN)
            sched_yield();
        if (err != 0)
            atomic_fetch_add(&sh->fail, 1);
    }
    if (atomic_fetch_sub(&sh->producers_left, 1) == 1)
        weft_chan_close(sh->ch);
    return NULL;
}

static void *try_consumer(void *p)
{
    struct tshared *sh = ((struct targ *)p)->sh;
    int64_t last[TP];
    unsigned long long count = 0, sum = 0, xr = 0;
    uint64_t m;
    int err;

    for (int i = 0; i < TP; i++)
        last[i] = -1;
    for (;;) {
        err = weft_chan_try_recv(sh->ch, &m);
        if (err == -EAGAIN) {
            sched_yield();
            continue;
        }
        if (err != 0)
            break;
        if ((m >> 32) >= TP || (int64_t)(uint32_t)m <= last[m >> 32])
            atomic_fetch_add(&sh->order_bad, 1);
        else
            last[m >> 32] = (uint32_t)m;
        count++;
        sum += (uint32_t)m;
        xr ^= m;
    }
    if (err != -EPIPE)
        atomic_fetch_add(&sh->fail, 1);
    atomic_fetch_add(&sh->count, count);
    atomic_fetch_add(&sh->sum, sum);
    atomic_fetch_xor(&sh->xr, xr);
    return NULL;
}

/* 3 sender threads x 3 receiver threads, try_ only, at capacities 1, 3
 * and 64: each message once, in order per sender; the last sender closes
 * and the receivers drain, then get -EPIPE. */
TEST(chan_threads_try_mpmc_drain_on_close)
{
    const size_t caps[] = { 1, 3, 64 };

    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        struct tshared sh;
        struct targ pa[TP], ca[TC];
        pthread_t pt[TP], ct[TC];
        unsigned long long want_sum, want_xr = 0;

        memset(&sh, 0, sizeof(sh));
        sh.per_producer = (uint32_t)harness_scale(60000);
        atomic_store(&sh.producers_left, TP);
        ASSERT_OK(weft_chan_new(&sh.ch, sizeof(uint64_t), caps[c]));
        for (uint32_t i = 0; i < TC; i++) {
            ca[i] = (struct targ){ &sh, i };
            ASSERT_OK(pthread_create(&ct[i], NULL, try_consumer, &ca[i]));
        }
        for (uint32_t i = 0; i < TP; i++) {
            pa[i] = (struct targ){ &sh, i };
            ASSERT_OK(pthread_create(&pt[i], NULL, try_producer, &pa[i]));
        }
        for (int i = 0; i < TP; i++)
            pthread_join(pt[i], NULL);
        for (int i = 0; i < TC; i++)
            pthread_join(ct[i], NULL);
        want_sum = (unsigned long long)TP * sh.per_producer * (sh.per_producer - 1) / 2;
        for (uint32_t p = 0; p < TP; p++)
            for (uint32_t i = 0; i < sh.per_producer; i++)
                want_xr ^= (uint64_t)p << 32 | i;
        ASSERT_EQ(0, atomic_load(&sh.fail));
        ASSERT_EQ(0, atomic_load(&sh.order_bad));
        ASSERT_EQ((unsigned long long)TP * sh.per_producer, atomic_load(&sh.count));
        ASSERT_EQ(want_sum, atomic_load(&sh.sum));
        ASSERT_EQ(want_xr, atomic_load(&sh.xr));
        weft_chan_drop(sh.ch);
    }
}

/* ---- Close racing sends ---------------------------------------------------------- */
struct race {
    weft_chan *ch;
    atomic_int go;
    atomic_ullong sent_ok, sent_sum;
};

static void *racing_sender(void *p)
{
    struct race *r = p;
    unsigned long long ok = 0, sum = 0;

    while (!atomic_load(&r->go))
        ;
    for (uint64_t v = 1;; v++) {
        int err = weft_chan_try_send(r->ch, &v);

        if (err == -EPIPE)
            break;
        if (err == 0) {
            ok++;
            sum += v;
        } else {
            sched_yield();
        }
    }
    atomic_fetch_add(&r->sent_ok, ok);
    atomic_fetch_add(&r->sent_sum, sum);
    return NULL;
}

static void *racing_receiver(void *p)
{
    struct race *r = p;
    unsigned long long got = 0, sum = 0;
    uint64_t v;
    int err;

    while (!atomic_load(&r->go))
        ;
    while ((err = weft_chan_try_recv(r->ch, &v)) != -EPIPE) {
        if (err == 0) {
            got++;
            sum += v;
        } else {
            sched_yield();
        }
    }
    /* -EPIPE is final: nothing may show up afterwards */
    if (weft_chan_try_recv(r->ch, &v) != -EPIPE)
        got = 1ULL << 60;
    atomic_fetch_sub(&r->sent_ok, got);
    atomic_fetch_sub(&r->sent_sum, sum);
    return NULL;
}

/* Two senders and one receiver race a close on a 2-slot ring: every send
 * that returned 0 is received before -EPIPE, and nothing else is. */
TEST(chan_close_races_sends_loses_nothing)
{
    unsigned rounds = (unsigned)harness_scale(400);

    for (unsigned round = 0; round < rounds; round++) {
        struct race r;
        pthread_t s1, s2, rv;

        memset(&r, 0, sizeof(r));
        ASSERT_OK(weft_chan_new(&r.ch, sizeof(uint64_t), 2));
        ASSERT_OK(pthread_create(&s1, NULL, racing_sender, &r));
        ASSERT_OK(pthread_create(&s2, NULL, racing_sender, &r));
        ASSERT_OK(pthread_create(&rv, NULL, racing_receiver, &r));
        atomic_store(&r.go, 1);
        for (unsigned spin = round % 50; spin; spin--)
            sched_yield();
        weft_chan_close(r.ch);
        pthread_join(s1, NULL);
        pthread_join(s2, NULL);
        pthread_join(rv, NULL);
        ASSERT_EQ(0, atomic_load(&r.sent_ok));    /* sent - received */
        ASSERT_EQ(0, atomic_load(&r.sent_sum));
        weft_chan_drop(r.ch);
    }
}

/* ---- Tasks: parkers against finishers on other threads ----------------------------- */
typedef struct pp_task {
    weft_async co;
    weft_chan *in, *out;          /* borrowed */
    uint64_t v, n, i, off;
    int res;
    atomic_int *fail;
    weft_chan_recv r;
    weft_chan_send s;
} pp_task;

/* Receive n values from `in`, which must be off, off + 1, ..., and send
 * each, plus one, to `out` (NULL: only check them). Every await on a
 * capacity-1 ring parks often. */
static weft_poll pp_task_poll(pp_task *t, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&t->co);
    for (t->i = 0; t->i < t->n; t->i++) {
        weft_chan_recv_init(&t->r, t->in, &t->v);
        WEFT_AWAIT(&t->co, weft_chan_recv_poll(&t->r, cx, &t->res));
        weft_chan_recv_drop(&t->r);
        if (t->res != 0 || t->v != t->i + t->off) {
            atomic_fetch_add(t->fail, 1);
            break;
        }
        if (t->out == NULL)
            continue;
        t->v++;
        weft_chan_send_init(&t->s, t->out, &t->v);
        WEFT_AWAIT(&t->co, weft_chan_send_poll(&t->s, cx, &t->res));
        weft_chan_send_drop(&t->s);
        if (t->res != 0) {
            atomic_fetch_add(t->fail, 1);
            break;
        }
    }
    WEFT_END(&t->co);
}

static void pp_task_drop(pp_task *t)
{
    weft_chan_recv_drop(&t->r);
    weft_chan_send_drop(&t->s);
}

WEFT_DEFINE_FUTURE_VOID(pp_task, pp_task_poll, pp_task_drop);

struct feeder {
    weft_chan *ch;
    uint64_t n;
};

static void *feeder_thread(void *p)
{
    struct feeder *f = p;

    for (uint64_t i = 0; i < f->n; i++)
        while (weft_chan_try_send(f->ch, &i) == -EAGAIN)
            sched_yield();
    return NULL;
}

/* A plain thread feeds a capacity-1 ring; a task relays each value to a
 * second capacity-1 ring; another task checks them. Both tasks park on
 * almost every await, against finishers on other threads: a lost wake-up
 * hangs (the test's timeout). */
TEST(chan_parkers_and_finishers_no_lost_wakeup)
{
    weft_runtime *rt = st_runtime(2);
    weft_chan *a, *b;
    atomic_int fail = 0;
    struct feeder f;
    pthread_t th;
    uint64_t n = harness_scale(200000);

    ASSERT_OK(weft_chan_new(&a, sizeof(uint64_t), 1));
    ASSERT_OK(weft_chan_new(&b, sizeof(uint64_t), 1));
    ASSERT_OK(weft_spawn_detached(rt, &pp_task_future,
                                  &(pp_task){ .in = a, .out = b, .n = n, .fail = &fail }));
    ASSERT_OK(weft_spawn_detached(rt, &pp_task_future,
                                  &(pp_task){ .in = b, .n = n, .off = 1, .fail = &fail }));
    f = (struct feeder){ a, n };
    ASSERT_OK(pthread_create(&th, NULL, feeder_thread, &f));
    pthread_join(th, NULL);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&fail));
    ASSERT_EQ(0, weft_chan_len(a));
    ASSERT_EQ(0, weft_chan_len(b));
    weft_chan_drop(a);
    weft_chan_drop(b);
    weft_runtime_free(rt);
}

/* Receivers that are tasks, senders that are plain threads (and the other
 * way round), on one small ring: every message arrives exactly once. */
typedef struct rx_task {
    weft_async co;
    weft_chan *ch;
    uint64_t v;
    int res;
    atomic_ullong *count, *sum;
    weft_chan_recv r;
} rx_task;

static weft_poll rx_task_poll(rx_task *t, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&t->co);
    for (;;) {
        weft_chan_recv_init(&t->r, t->ch, &t->v);
        WEFT_AWAIT(&t->co, weft_chan_recv_poll(&t->r, cx, &t->res));
        weft_chan_recv_drop(&t->r);
        if (t->res != 0)
            break;
        atomic_fetch_add(t->count, 1);
        atomic_fetch_add(t->sum, t->v);
    }
    WEFT_END(&t->co);
}

static void rx_task_drop(rx_task *t)
{
    weft_chan_recv_drop(&t->r);
}

WEFT_DEFINE_FUTURE_VOID(rx_task, rx_task_poll, rx_task_drop);

TEST(chan_thread_senders_task_receivers)
{
    weft_runtime *rt = st_runtime(2);
    weft_chan *ch;
    atomic_ullong count = 0, sum = 0;
    struct feeder f[2];
    pthread_t th[2];
    uint64_t n = harness_scale(100000);

    ASSERT_OK(weft_chan_new(&ch, sizeof(uint64_t), 3));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(weft_spawn_detached(rt, &rx_task_future,
                                      &(rx_task){ .ch = ch, .count = &count, .sum = &sum }));
    for (int i = 0; i < 2; i++) {
        f[i] = (struct feeder){ ch, n };
        ASSERT_OK(pthread_create(&th[i], NULL, feeder_thread, &f[i]));
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    weft_chan_close(ch);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(2 * n, atomic_load(&count));
    ASSERT_EQ(n * (n - 1), atomic_load(&sum));
    weft_chan_drop(ch);
    weft_runtime_free(rt);
}

/* ---- Waiting futures aborted on bounded rings -------------------------------------- */
typedef struct one_op {
    weft_async co;
    weft_chan *ch;                /* own reference */
    bool send;
    int v, res;
    atomic_int *polled;
    weft_chan_send s;
    weft_chan_recv r;
} one_op;

static weft_poll one_op_poll(one_op *t, weft_context *cx, void *out)
{
    WEFT_BEGIN(&t->co);
    atomic_fetch_add(t->polled, 1);
    if (t->send) {
        weft_chan_send_init(&t->s, t->ch, &t->v);
        WEFT_AWAIT(&t->co, weft_chan_send_poll(&t->s, cx, &t->res));
    } else {
        weft_chan_recv_init(&t->r, t->ch, &t->v);
        WEFT_AWAIT(&t->co, weft_chan_recv_poll(&t->r, cx, &t->res));
    }
    *(int *)out = t->res == 0 ? t->v : t->res;
    WEFT_END(&t->co);
}

static void one_op_drop(one_op *t)
{
    weft_chan_send_drop(&t->s);
    weft_chan_recv_drop(&t->r);
    weft_chan_drop(t->ch);
}

WEFT_DEFINE_FUTURE(one_op, one_op_poll, one_op_drop, int);

/* Senders wait on a full 2-slot ring while some are aborted and the main
 * thread receives: a message is in the channel (or received) exactly when
 * its sender completed with 0; aborted ones sent nothing and kept no slot.
 * Then the same for receivers on an empty ring fed by the main thread. */
TEST(chan_bounded_abort_waiters_loses_nothing)
{
    weft_runtime *rt = st_runtime(2);
    unsigned rounds = (unsigned)harness_scale(200);

    for (unsigned round = 0; round < rounds; round++) {
        enum { N = 8 };
        weft_chan *ch;
        weft_join *j[N];
        atomic_int polled = 0;
        long long sent = 0, got = 0;
        int out, v, err;
        bool send = round % 2 == 0;

        ASSERT_OK(weft_chan_new(&ch, sizeof(int), 2));
        if (send) {
            ASSERT_OK(weft_chan_try_send(ch, &(int){ 1 }));
            ASSERT_OK(weft_chan_try_send(ch, &(int){ 2 }));
            sent = 3;
        }
        for (int i = 0; i < N; i++)
            ASSERT_OK(weft_spawn(rt, &one_op_future,
                                 &(one_op){ .ch = weft_chan_clone(ch), .send = send,
                                            .v = 100 + i, .polled = &polled },
                                 &j[i]));
        if (round % 4 < 2)
            ST_WAIT_UNTIL(atomic_load(&polled) == N);
        for (int i = 0; i < N; i++) {
            if (send) {
                while ((err = weft_chan_try_recv(ch, &v)) == -EAGAIN)
                    sched_yield();
                ASSERT_OK(err);
                got += v;
            } else {
                v = 1000 + i;
                while ((err = weft_chan_try_send(ch, &v)) == -EAGAIN)
                    sched_yield();
                ASSERT_OK(err);
                sent += v;
            }
            if (i % 2)
                weft_join_abort(j[(i + round) % N]);
            if (i == N / 2 + 1)
                break;             /* leave some waiting: the close ends them */
        }
        weft_chan_close(ch);
        for (int i = 0; i < N; i++) {
            err = weft_join_wait(j[i], &out);
            if (err == 0 && out >= 0) {
                if (send)
                    sent += 100 + i;       /* queued: its message is in ch */
                else
                    got += out;
            } else if (err == 0) {
                ASSERT_EQ(-EPIPE, out);
            } else {
                ASSERT_EQ(-ECANCELED, err);
            }
            weft_join_drop(j[i]);
        }
        while ((err = weft_chan_try_recv(ch, &v)) == 0)
            got += v;
        ASSERT_EQ(-EPIPE, err);
        ASSERT_EQ(sent, got);
        weft_chan_drop(ch);
    }
    weft_runtime_free(rt);
}
