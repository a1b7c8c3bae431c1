/* SPDX-License-Identifier: MIT */
/* The bounded channel's handoff to a woken future (src/sync/chan.c: a
 * woken send or receive takes its slot or message without the lock). Many
 * producer and consumer tasks on rings of capacity 1 and 2, whose futures
 * are often dropped right after a wake (while WOKEN: the wake must be passed
 * on) and re-made, with the channel closed at the end or in the middle.
 * Every message a send completed with 0 is received exactly once, in each
 * producer's order; nothing else is; a lost wake-up hangs (the timeout).
 * Run under TSan too. */
#include <string.h>

#include "sync_test.h"

enum { HP = 3, HC = 3, HQ = 2 };  /* producer, consumer, quitter tasks */

/* A wide message: the value, then two words derived from it, so that a
 * torn or mixed copy shows. A channel of words runs the paths chan.c
 * compiles for word-sized messages; a wide one the general paths. */
enum { WIDE = 3 };

static void wide_fill(uint64_t m[WIDE], uint64_t v)
{
    m[0] = v;
    m[1] = ~v;
    m[2] = v * 3 + 1;
}

static bool wide_ok(const uint64_t m[WIDE], size_t words)
{
    return words == 1 || (m[1] == ~m[0] && m[2] == m[0] * 3 + 1);
}

struct hshared {
    weft_chan *ch;                /* borrowed by every task */
    size_t words;                 /* message size in uint64_t: 1, or WIDE */
    atomic_ullong sent, sent_sum, got, got_sum;
    atomic_int producers_left, fail, cancels;
    bool close_at_end;
};

/* ---- Producers: send (id << 32 | seq), seq = 0, 1, ...; sometimes drop the
 * send future when re-polled (after a wake or a yield) and make it anew. */
typedef struct hprod {
    struct hshared *sh;
    uint64_t id, seq, n, v, rng;
    uint64_t m[WIDE];             /* the message: m[0] = v (words == 1: alone) */
    bool active;
    weft_chan_send s;
} hprod;

static weft_poll hprod_poll(hprod *t, weft_context *cx, void *out)
{
    struct hshared *sh = t->sh;
    int res;

    (void)out;
    while (t->seq < t->n) {
        if (!t->active) {
            t->v = t->id << 32 | t->seq;
            wide_fill(t->m, t->v);
            weft_chan_send_init(&t->s, sh->ch, t->m);
            t->active = true;
        } else if (st_rand(&t->rng) % 3 == 0) {
            /* cancel mid-handoff: nothing may be sent, no wake lost */
            weft_chan_send_drop(&t->s);
            atomic_fetch_add(&sh->cancels, 1);
            weft_chan_send_init(&t->s, sh->ch, t->m);
        }
        if (weft_chan_send_poll(&t->s, cx, &res) == WEFT_PENDING)
            return WEFT_PENDING;
        weft_chan_send_drop(&t->s);
        t->active = false;
        if (res == -EPIPE)
            break;
        if (res != 0) {
            atomic_fetch_add(&sh->fail, 1);
            break;
        }
        atomic_fetch_add(&sh->sent, 1);
        atomic_fetch_add(&sh->sent_sum, t->v);
        t->seq++;
    }
    if (atomic_fetch_sub(&sh->producers_left, 1) == 1 && sh->close_at_end)
        weft_chan_close(sh->ch);
    return WEFT_READY;
}

static void hprod_drop(hprod *t)
{
    if (t->active)
        weft_chan_send_drop(&t->s);
}

WEFT_DEFINE_FUTURE_VOID(hprod, hprod_poll, hprod_drop);

/* ---- Consumers: receive until -EPIPE; check each producer's order; sometimes
 * drop the receive future when re-polled and make it anew. */
typedef struct hcons {
    struct hshared *sh;
    uint64_t v, rng;
    uint64_t m[WIDE];             /* the message received (m[0]: the value) */
    uint64_t next[HP];            /* lowest seq still allowed per producer */
    uint64_t quit_after, received; /* quit_after > 0: a quitter (below) */
    bool active;
    weft_chan_recv r;
} hcons;

static weft_poll hcons_poll(hcons *t, weft_context *cx, void *out)
{
    struct hshared *sh = t->sh;
    uint64_t id, seq;
    int res;

    (void)out;
    for (;;) {
        if (!t->active) {
            weft_chan_recv_init(&t->r, sh->ch, t->m);
            t->active = true;
        } else if (t->quit_after && t->received >= t->quit_after) {
            /* a quitter: re-polled (most likely woken for a message), it
             * drops its receive and goes for good; the wake must go on to
             * another receiver, or the message is stranded (a hang) */
            weft_chan_recv_drop(&t->r);
            t->active = false;
            atomic_fetch_add(&sh->cancels, 1);
            return WEFT_READY;
        } else if (st_rand(&t->rng) % 3 == 0) {
            /* cancel mid-handoff: no message may be taken, none stranded */
            weft_chan_recv_drop(&t->r);
            atomic_fetch_add(&sh->cancels, 1);
            weft_chan_recv_init(&t->r, sh->ch, t->m);
        }
        if (weft_chan_recv_poll(&t->r, cx, &res) == WEFT_PENDING)
            return WEFT_PENDING;
        weft_chan_recv_drop(&t->r);
        t->active = false;
        if (res == -EPIPE)
            return WEFT_READY;
        t->v = t->m[0];
        id = t->v >> 32;
        seq = t->v & 0xffffffffu;
        if (res != 0 || id >= HP || seq < t->next[id] || !wide_ok(t->m, sh->words)) {
            atomic_fetch_add(&sh->fail, 1);
            weft_chan_close(sh->ch);      /* fail now, not by the timeout */
            return WEFT_READY;
        }
        t->next[id] = seq + 1;
        t->received++;
        atomic_fetch_add(&sh->got, 1);
        atomic_fetch_add(&sh->got_sum, t->v);
    }
}

static void hcons_drop(hcons *t)
{
    if (t->active)
        weft_chan_recv_drop(&t->r);
}

WEFT_DEFINE_FUTURE_VOID(hcons, hcons_poll, hcons_drop);

/* One run: HP producers, HC consumers and HQ quitters (consumers that drop a
 * pending receive and end after a few messages) on a ring of `cap`; closed
 * by the last producer, or by the main thread while they still send. */
static void handoff_run_words(size_t cap, uint64_t per_producer, bool close_midway,
                              uint64_t seed, size_t words)
{
    weft_runtime *rt = st_runtime(2);
    struct hshared sh;
    uint64_t v[WIDE];
    int err;

    memset(&sh, 0, sizeof(sh));
    sh.words = words;
    ASSERT_OK(weft_chan_new(&sh.ch, words * sizeof(uint64_t), cap));
    atomic_init(&sh.producers_left, HP);
    sh.close_at_end = !close_midway;
    for (int i = 0; i < HC; i++)
        ASSERT_OK(weft_spawn_detached(rt, &hcons_future,
                                      &(hcons){ .sh = &sh, .rng = seed + 101 + (uint64_t)i }));
    for (int i = 0; i < HQ; i++)
        ASSERT_OK(weft_spawn_detached(rt, &hcons_future,
                                      &(hcons){ .sh = &sh, .rng = seed + 201 + (uint64_t)i,
                                                .quit_after = 1 + (seed + (uint64_t)i) % 64 }));
    for (int i = 0; i < HP; i++)
        ASSERT_OK(weft_spawn_detached(rt, &hprod_future,
                                      &(hprod){ .sh = &sh, .id = (uint64_t)i, .n = per_producer,
                                                .rng = seed + 1 + (uint64_t)i }));
    if (close_midway) {
        /* close while sends and receives are in flight */
        ST_WAIT_UNTIL(atomic_load(&sh.got) >= per_producer / 2 ||
                      atomic_load(&sh.producers_left) == 0);
        weft_chan_close(sh.ch);
    }
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&sh.fail));
    /* consumers drained it: nothing left, closed */
    ASSERT_EQ(-EPIPE, (err = weft_chan_try_recv(sh.ch, v)));
    ASSERT_EQ(atomic_load(&sh.sent), atomic_load(&sh.got));
    ASSERT_EQ(atomic_load(&sh.sent_sum), atomic_load(&sh.got_sum));
    if (!close_midway)
        ASSERT_EQ(HP * per_producer, atomic_load(&sh.got));
    ASSERT_NE(0, atomic_load(&sh.cancels));
    weft_chan_drop(sh.ch);
    weft_runtime_free(rt);
}

static void handoff_run(size_t cap, uint64_t per_producer, bool close_midway, uint64_t seed)
{
    handoff_run_words(cap, per_producer, close_midway, seed, 1);
}

/* Capacity 1 and 2, closed by the last producer: every message arrives, in
 * each producer's order, exactly once, although about a third of the
 * re-polled futures are dropped (many of them WOKEN). */
TEST(chan_handoff_mpmc_cancels_loses_nothing)
{
    uint64_t n = harness_scale(100000), seed = st_seed(1);

    handoff_run(1, n, false, seed);
    handoff_run(2, n, false, seed + 1000);
}

/* The same, closed by another thread in the middle: what a send completed
 * with 0 is received, nothing else is, and nobody hangs. */
TEST(chan_handoff_close_races_loses_nothing)
{
    unsigned rounds = (unsigned)harness_scale(50);
    uint64_t seed = st_seed(7);

    for (unsigned i = 0; i < rounds; i++)
        handoff_run(1 + i % 2, harness_scale(20000), true, seed + 17 * i);
}

/* The same two runs with messages of three words: the general paths (the
 * copy through memcpy), where the two above run the word-sized ones; each
 * message arrives whole. */
TEST(chan_handoff_wide_messages_loses_nothing)
{
    uint64_t n = harness_scale(50000), seed = st_seed(11);

    handoff_run_words(1, n, false, seed, WIDE);
    handoff_run_words(2, n, false, seed + 1000, WIDE);
    handoff_run_words(1, harness_scale(20000), true, seed + 2000, WIDE);
}

/* One waiting receiver, one waiting sender, capacity 1 (W4's pattern),
 * across two workers: a counter goes around pairs of tasks; each hop is a
 * handoff to a woken future. */
typedef struct hpong {
    weft_async co;
    weft_chan *in, *out;          /* borrowed */
    uint64_t v, i, n;
    int res;
    bool first;
    atomic_int *fail;
    weft_chan_recv r;
    weft_chan_send s;
} hpong;

static weft_poll hpong_poll(hpong *t, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&t->co);
    for (t->i = 0; t->i < t->n; t->i++) {
        if (!t->first || t->i > 0) {
            weft_chan_recv_init(&t->r, t->in, &t->v);
            WEFT_AWAIT(&t->co, weft_chan_recv_poll(&t->r, cx, &t->res));
            weft_chan_recv_drop(&t->r);
            if (t->res != 0 || t->v != 2 * t->i - (t->first ? 1 : 0)) {
                atomic_fetch_add(t->fail, 1);
                break;
            }
            t->v++;
        }
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

static void hpong_drop(hpong *t)
{
    weft_chan_recv_drop(&t->r);
    weft_chan_send_drop(&t->s);
}

WEFT_DEFINE_FUTURE_VOID(hpong, hpong_poll, hpong_drop);

TEST(chan_handoff_ping_pong_pairs)
{
    enum { PAIRS = 8 };
    weft_runtime *rt = st_runtime(2);
    weft_chan *a[PAIRS], *b[PAIRS];
    atomic_int fail = 0;
    uint64_t n = harness_scale(50000), v;

    for (int i = 0; i < PAIRS; i++) {
        ASSERT_OK(weft_chan_new(&a[i], sizeof(uint64_t), 1));
        ASSERT_OK(weft_chan_new(&b[i], sizeof(uint64_t), 1));
        /* the pinger sends 0, 2, 4, ...; the ponger answers 1, 3, 5, ... */
        ASSERT_OK(weft_spawn_detached(rt, &hpong_future,
                                      &(hpong){ .in = b[i], .out = a[i], .n = n, .first = true,
                                                .fail = &fail }));
        ASSERT_OK(weft_spawn_detached(rt, &hpong_future,
                                      &(hpong){ .in = a[i], .out = b[i], .n = n, .fail = &fail }));
    }
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&fail));
    for (int i = 0; i < PAIRS; i++) {
        ASSERT_EQ(-EAGAIN, weft_chan_try_recv(a[i], &v));
        ASSERT_OK(weft_chan_try_recv(b[i], &v));    /* the ponger's last answer */
        ASSERT_EQ(2 * n - 1, v);
        weft_chan_drop(a[i]);
        weft_chan_drop(b[i]);
    }
    weft_runtime_free(rt);
}

/* ---- Waiting flags left raised (chan.c: flag_raise(), chan_notify_locked()) --
 * A plain thread plays W4's pattern against tasks with the try_ forms, so
 * that every one of its operations is a lock-free finisher racing a park:
 *   - it sends i on `a` and waits for i back on `b`: the relay task parks
 *     on `a` with the receive flag still raised from its previous wake
 *     (no store), and on nothing else;
 *   - meanwhile a producer task fills `c` (capacity 1), parking as a sender
 *     on the send flag still raised, and the thread takes one message of
 *     `c` per round, a finisher for that park.
 * A stale flag lowered at the wrong time, or a park that trusted a flag it
 * should have raised, loses a wake: the thread's watchdog reports it (the
 * task never answers, or `c` never refills) instead of a hang. */
struct stale_shared {
    weft_chan *a, *b, *c;
    uint64_t n;
    atomic_int fail;
};

typedef struct stale_prod {
    weft_async co;
    struct stale_shared *sh;
    uint64_t i, v;
    int res;
    weft_chan_send s;
} stale_prod;

static weft_poll stale_prod_poll(stale_prod *t, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&t->co);
    for (t->i = 0; t->i < t->sh->n; t->i++) {
        t->v = t->i;
        weft_chan_send_init(&t->s, t->sh->c, &t->v);
        WEFT_AWAIT(&t->co, weft_chan_send_poll(&t->s, cx, &t->res));
        weft_chan_send_drop(&t->s);
        if (t->res != 0) {
            atomic_fetch_add(&t->sh->fail, 1);
            break;
        }
    }
    WEFT_END(&t->co);
}

static void stale_prod_drop(stale_prod *t)
{
    weft_chan_send_drop(&t->s);
}

WEFT_DEFINE_FUTURE_VOID(stale_prod, stale_prod_poll, stale_prod_drop);

/* Receive i on a, check it, send it back on b. */
typedef struct stale_relay {
    weft_async co;
    struct stale_shared *sh;
    uint64_t i, v;
    int res;
    weft_chan_recv r;
    weft_chan_send s;
} stale_relay;

static weft_poll stale_relay_poll(stale_relay *t, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&t->co);
    for (t->i = 0; t->i < t->sh->n; t->i++) {
        weft_chan_recv_init(&t->r, t->sh->a, &t->v);
        WEFT_AWAIT(&t->co, weft_chan_recv_poll(&t->r, cx, &t->res));
        weft_chan_recv_drop(&t->r);
        if (t->res != 0 || t->v != t->i) {
            atomic_fetch_add(&t->sh->fail, 1);
            break;
        }
        weft_chan_send_init(&t->s, t->sh->b, &t->v);
        WEFT_AWAIT(&t->co, weft_chan_send_poll(&t->s, cx, &t->res));
        weft_chan_send_drop(&t->s);
        if (t->res != 0) {
            atomic_fetch_add(&t->sh->fail, 1);
            break;
        }
    }
    WEFT_END(&t->co);
}

static void stale_relay_drop(stale_relay *t)
{
    weft_chan_recv_drop(&t->r);
    weft_chan_send_drop(&t->s);
}

WEFT_DEFINE_FUTURE_VOID(stale_relay, stale_relay_poll, stale_relay_drop);

/* Spin on a try_ operation until it stops saying -EAGAIN; a hang fails. */
#define STALE_RETRY(expr, rc)                                                  \
    do {                                                                      \
        uint64_t end_ = harness_now_ns() + ST_WATCHDOG_NS;                    \
        while (((rc) = (expr)) == -EAGAIN) {                                  \
            if (harness_now_ns() > end_)                                      \
                harness_fail(__FILE__, __LINE__, "watchdog: lost wake-up (%s)", \
                             #expr);                                          \
            sched_yield();                                                    \
        }                                                                     \
    } while (0)

static void *stale_thread(void *p)
{
    struct stale_shared *sh = p;
    uint64_t v, next_c = 0;
    int rc;

    for (uint64_t i = 0; i < sh->n; i++) {
        STALE_RETRY(weft_chan_try_send(sh->a, &i), rc);
        if (rc != 0)
            atomic_fetch_add(&sh->fail, 1);
        STALE_RETRY(weft_chan_try_recv(sh->b, &v), rc);
        if (rc != 0 || v != i)
            atomic_fetch_add(&sh->fail, 1);
        STALE_RETRY(weft_chan_try_recv(sh->c, &v), rc);
        if (rc != 0 || v != next_c++)
            atomic_fetch_add(&sh->fail, 1);
    }
    return NULL;
}

TEST(chan_stale_flags_thread_finishers_no_lost_wakeup)
{
    weft_runtime *rt = st_runtime(2);
    struct stale_shared sh = { .n = harness_scale(100000) };
    pthread_t th;
    uint64_t v;

    ASSERT_OK(weft_chan_new(&sh.a, sizeof(uint64_t), 1));
    ASSERT_OK(weft_chan_new(&sh.b, sizeof(uint64_t), 1));
    ASSERT_OK(weft_chan_new(&sh.c, sizeof(uint64_t), 1));
    ASSERT_OK(weft_spawn_detached(rt, &stale_relay_future, &(stale_relay){ .sh = &sh }));
    ASSERT_OK(weft_spawn_detached(rt, &stale_prod_future, &(stale_prod){ .sh = &sh }));
    ASSERT_OK(pthread_create(&th, NULL, stale_thread, &sh));
    pthread_join(th, NULL);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&sh.fail));
    ASSERT_EQ(-EAGAIN, weft_chan_try_recv(sh.a, &v));
    ASSERT_EQ(-EAGAIN, weft_chan_try_recv(sh.b, &v));
    ASSERT_EQ(-EAGAIN, weft_chan_try_recv(sh.c, &v));
    weft_chan_drop(sh.a);
    weft_chan_drop(sh.b);
    weft_chan_drop(sh.c);
    weft_runtime_free(rt);
}

/* ---- A fresh future's park (chan_future.c: chan_park_fresh()) --------------
 * Fresh sends and receives on one ring of capacity 1, several of each, so
 * that most of them find it full (empty) with the flag raised and park
 * through the short path, while others change the flag (a lowering when a
 * list empties, a raise by a parker that saw it low) between a fresh
 * future's read of the flag and its lock: then the short path must give
 * way to the locked one. A plain thread closes the channel midway, racing
 * the parks: none may park after close. Every message a send completed
 * with 0 is received exactly once and in each sender's order; a park that
 * trusted a stale or closed flag loses a wake, and the test hangs into its
 * watchdog instead. Run under TSan too. */
enum { FP_SENDERS = 2, FP_RECEIVERS = 3 };

struct fp_shared {
    weft_chan *ch;
    uint64_t n;                   /* messages each sender tries */
    atomic_uint_least64_t sent, received;
    atomic_int fail;
};

typedef struct fp_sender {
    weft_async co;
    struct fp_shared *sh;
    uint64_t id, k, v;
    int res;
    weft_chan_send s;
} fp_sender;

static weft_poll fp_sender_poll(fp_sender *t, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&t->co);
    for (t->k = 0; t->k < t->sh->n; t->k++) {
        t->v = t->id << 32 | t->k;
        weft_chan_send_init(&t->s, t->sh->ch, &t->v);
        WEFT_AWAIT(&t->co, weft_chan_send_poll(&t->s, cx, &t->res));
        weft_chan_send_drop(&t->s);
        if (t->res == -EPIPE)
            break;
        if (t->res != 0) {
            atomic_fetch_add(&t->sh->fail, 1);
            break;
        }
        atomic_fetch_add(&t->sh->sent, 1);
    }
    WEFT_END(&t->co);
}

static void fp_sender_drop(fp_sender *t)
{
    weft_chan_send_drop(&t->s);
}

WEFT_DEFINE_FUTURE_VOID(fp_sender, fp_sender_poll, fp_sender_drop);

typedef struct fp_receiver {
    weft_async co;
    struct fp_shared *sh;
    uint64_t v, next[FP_SENDERS];  /* the next k allowed from each sender */
    int res;
    weft_chan_recv r;
} fp_receiver;

static weft_poll fp_receiver_poll(fp_receiver *t, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&t->co);
    for (;;) {
        weft_chan_recv_init(&t->r, t->sh->ch, &t->v);
        WEFT_AWAIT(&t->co, weft_chan_recv_poll(&t->r, cx, &t->res));
        weft_chan_recv_drop(&t->r);
        if (t->res == -EPIPE)
            break;
        if (t->res != 0 || (t->v >> 32) >= FP_SENDERS ||
            (t->v & 0xffffffffu) < t->next[t->v >> 32]) {
            atomic_fetch_add(&t->sh->fail, 1);
            break;
        }
        t->next[t->v >> 32] = (t->v & 0xffffffffu) + 1;
        atomic_fetch_add(&t->sh->received, 1);
    }
    WEFT_END(&t->co);
}

static void fp_receiver_drop(fp_receiver *t)
{
    weft_chan_recv_drop(&t->r);
}

WEFT_DEFINE_FUTURE_VOID(fp_receiver, fp_receiver_poll, fp_receiver_drop);

static void *fp_closer(void *p)
{
    struct fp_shared *sh = p;

    /* close once about half of what the senders try has gone through */
    ST_WAIT_UNTIL(atomic_load(&sh->received) >= sh->n * FP_SENDERS / 2 ||
                  atomic_load(&sh->fail) != 0);
    weft_chan_close(sh->ch);
    return NULL;
}

static void fp_run(unsigned workers)
{
    weft_runtime *rt = st_runtime(workers);
    struct fp_shared sh = { .n = harness_scale(40000) };
    pthread_t th;
    uint64_t v;

    ASSERT_OK(weft_chan_new(&sh.ch, sizeof(uint64_t), 1));
    for (uint64_t i = 0; i < FP_SENDERS; i++)
        ASSERT_OK(weft_spawn_detached(rt, &fp_sender_future, &(fp_sender){ .sh = &sh, .id = i }));
    for (int i = 0; i < FP_RECEIVERS; i++)
        ASSERT_OK(weft_spawn_detached(rt, &fp_receiver_future, &(fp_receiver){ .sh = &sh }));
    ASSERT_OK(pthread_create(&th, NULL, fp_closer, &sh));
    ASSERT_OK(weft_runtime_run(rt));
    pthread_join(th, NULL);
    ASSERT_EQ(0, atomic_load(&sh.fail));
    ASSERT_EQ(atomic_load(&sh.sent), atomic_load(&sh.received));
    ASSERT_EQ(-EPIPE, weft_chan_try_recv(sh.ch, &v));
    weft_chan_drop(sh.ch);
    weft_runtime_free(rt);
}

TEST(chan_fresh_parks_race_flags_and_close)
{
    fp_run(2);
    fp_run(1);
}

/* The same park against a plain thread that answers at once: it sends i
 * on `a` (try_send: a lock-free finisher) as soon as it has i - 1 back on
 * `b`, spinning without yielding, so that its claim and its look at the
 * receive flag often land between the relay's fresh attempt on `a` and
 * its lock. A relay that parks on a flag lowered meanwhile (by this very
 * finisher, finding the list still empty) keeps a message it never gets:
 * the thread's watchdog reports it. */
struct spin_shared {
    weft_chan *a, *b;
    uint64_t n;
    atomic_int fail;
};

static void *spin_thread(void *p)
{
    struct spin_shared *sh = p;
    uint64_t v;
    int rc;

    for (uint64_t i = 0; i < sh->n; i++) {
        STALE_RETRY(weft_chan_try_send(sh->a, &i), rc);
        if (rc != 0)
            atomic_fetch_add(&sh->fail, 1);
        /* spin, then yield: answer at once when the relay is running */
        for (unsigned k = 0; (rc = weft_chan_try_recv(sh->b, &v)) == -EAGAIN && k < 20000; k++)
            ;
        if (rc == -EAGAIN)
            STALE_RETRY(weft_chan_try_recv(sh->b, &v), rc);
        if (rc != 0 || v != i)
            atomic_fetch_add(&sh->fail, 1);
    }
    return NULL;
}

TEST(chan_fresh_park_against_spinning_finisher)
{
    weft_runtime *rt = st_runtime(1);
    struct stale_shared relay_sh = { .n = harness_scale(50000) };
    struct spin_shared sh = { .n = relay_sh.n };
    pthread_t th;
    uint64_t v;

    ASSERT_OK(weft_chan_new(&sh.a, sizeof(uint64_t), 1));
    ASSERT_OK(weft_chan_new(&sh.b, sizeof(uint64_t), 1));
    relay_sh.a = sh.a;
    relay_sh.b = sh.b;
    ASSERT_OK(weft_spawn_detached(rt, &stale_relay_future, &(stale_relay){ .sh = &relay_sh }));
    ASSERT_OK(pthread_create(&th, NULL, spin_thread, &sh));
    pthread_join(th, NULL);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&sh.fail));
    ASSERT_EQ(0, atomic_load(&relay_sh.fail));
    ASSERT_EQ(-EAGAIN, weft_chan_try_recv(sh.a, &v));
    ASSERT_EQ(-EAGAIN, weft_chan_try_recv(sh.b, &v));
    weft_chan_drop(sh.a);
    weft_chan_drop(sh.b);
    weft_runtime_free(rt);
}
