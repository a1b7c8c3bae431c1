/* SPDX-License-Identifier: MIT */
/* Channels: FIFO order, bounded and unbounded, close, wakes, dropping every
 * waiting future in every state, misuse, allocation faults, and a loss-free
 * MPMC stress on a multi-thread runtime. */
#include <string.h>

#include "sync_test.h"

#define CX(name, cw)                                                          \
    weft_waker name##_w = cw_waker(cw);                                       \
    weft_context name = weft_context_from_waker(&name##_w)

TEST(chan_fifo_try)
{
    weft_chan *ch;
    int v;

    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 4));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(weft_chan_try_send(ch, &i));
    ASSERT_EQ(-EAGAIN, weft_chan_try_send(ch, &(int){ 9 }));
    ASSERT_EQ(4, weft_chan_len(ch));
    for (int round = 0; round < 10; round++) {      /* wrap the ring */
        ASSERT_OK(weft_chan_try_recv(ch, &v));
        ASSERT_EQ(round, v);
        v = round + 4;
        ASSERT_OK(weft_chan_try_send(ch, &v));
    }
    for (int i = 10; i < 14; i++) {
        ASSERT_OK(weft_chan_try_recv(ch, &v));
        ASSERT_EQ(i, v);
    }
    ASSERT_EQ(-EAGAIN, weft_chan_try_recv(ch, &v));
    weft_chan_drop(ch);
}

TEST(chan_close_drains_then_reports_epipe)
{
    weft_chan *ch;
    int in = 7, out = 0;

    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    ASSERT_OK(weft_chan_try_send(ch, &in));
    ASSERT(!weft_chan_is_closed(ch));
    weft_chan_close(ch);
    weft_chan_close(ch);                             /* idempotent */
    ASSERT(weft_chan_is_closed(ch));
    ASSERT_EQ(-EPIPE, weft_chan_try_send(ch, &in));
    ASSERT_OK(weft_chan_try_recv(ch, &out));         /* queued data survives close */
    ASSERT_EQ(7, out);
    ASSERT_EQ(-EPIPE, weft_chan_try_recv(ch, &out));
    weft_chan_drop(ch);
}

/* Unbounded: grows while wrapped; the last drop frees queued messages. */
TEST(chan_unbounded_grows_in_order)
{
    weft_chan *ch;
    uint64_t v, next_in = 0, next_out = 0;

    ASSERT_OK(weft_chan_new(&ch, sizeof(uint64_t), 0));
    for (int round = 0; round < 12; round++) {
        for (int i = 0; i < 37 * round + 5; i++, next_in++)
            ASSERT_OK(weft_chan_try_send(ch, &next_in));
        for (int i = 0; i < 29 * round + 3; i++, next_out++) {
            ASSERT_OK(weft_chan_try_recv(ch, &v));
            ASSERT_EQ(next_out, v);
        }
    }
    ASSERT_EQ(next_in - next_out, weft_chan_len(ch));
    ASSERT(weft_chan_clone(ch) == ch);
    weft_chan_drop(ch);
    weft_chan_drop(ch);                              /* frees what is queued */
}

TEST(chan_recv_pending_woken_by_send)
{
    weft_chan *ch;
    weft_chan_recv r;
    cwaker c = { 0 };
    CX(cx, &c);
    int v = 0, res = 1;

    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 2));
    weft_chan_recv_init(&r, ch, &v);
    ASSERT_EQ(WEFT_PENDING, weft_chan_recv_poll(&r, &cx, &res));
    ASSERT_EQ(WEFT_PENDING, weft_chan_recv_poll(&r, &cx, &res)); /* spurious */
    ASSERT_EQ(1, atomic_load(&c.clones));            /* same waker kept */
    ASSERT_OK(weft_chan_try_send(ch, &(int){ 3 }));
    ASSERT_EQ(1, cw_wakes(&c));
    ASSERT_EQ(WEFT_READY, weft_chan_recv_poll(&r, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(3, v);
    ASSERT_EQ(WEFT_READY, weft_chan_recv_poll(&r, &cx, &res)); /* same answer */
    ASSERT_OK(res);
    weft_chan_recv_drop(&r);
    weft_chan_recv_drop(&r);
    ASSERT_CW_BALANCED(&c);
    weft_chan_drop(ch);
}

TEST(chan_send_pending_woken_by_recv)
{
    weft_chan *ch;
    weft_chan_send s;
    cwaker c = { 0 };
    CX(cx, &c);
    int v = 0, res = 1, msg = 11;

    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    ASSERT_OK(weft_chan_try_send(ch, &(int){ 10 }));
    weft_chan_send_init(&s, ch, &msg);
    ASSERT_EQ(WEFT_PENDING, weft_chan_send_poll(&s, &cx, &res));
    ASSERT_OK(weft_chan_try_recv(ch, &v));
    ASSERT_EQ(10, v);
    ASSERT_EQ(1, cw_wakes(&c));
    ASSERT_EQ(WEFT_READY, weft_chan_send_poll(&s, &cx, &res));
    ASSERT_OK(res);
    weft_chan_send_drop(&s);
    ASSERT_OK(weft_chan_try_recv(ch, &v));
    ASSERT_EQ(11, v);
    ASSERT_CW_BALANCED(&c);
    weft_chan_drop(ch);
}

/* Close while senders and receivers wait (by hand): every waiter is woken;
 * senders get -EPIPE and send nothing; receivers drain, then -EPIPE. */
TEST(chan_close_wakes_waiters_by_hand)
{
    weft_chan *full, *empty;
    weft_chan_send s[3];
    weft_chan_recv r[3];
    cwaker cs = { 0 }, cr = { 0 };
    CX(cxs, &cs);
    CX(cxr, &cr);
    int v[3], res, msg = 1;

    ASSERT_OK(weft_chan_new(&full, sizeof(int), 1));
    ASSERT_OK(weft_chan_new(&empty, sizeof(int), 1));
    ASSERT_OK(weft_chan_try_send(full, &(int){ 99 }));
    for (int i = 0; i < 3; i++) {
        weft_chan_send_init(&s[i], full, &msg);
        ASSERT_EQ(WEFT_PENDING, weft_chan_send_poll(&s[i], &cxs, &res));
        weft_chan_recv_init(&r[i], empty, &v[i]);
        ASSERT_EQ(WEFT_PENDING, weft_chan_recv_poll(&r[i], &cxr, &res));
    }
    weft_chan_close(full);
    weft_chan_close(empty);
    ASSERT_EQ(3, cw_wakes(&cs));
    ASSERT_EQ(3, cw_wakes(&cr));
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(WEFT_READY, weft_chan_send_poll(&s[i], &cxs, &res));
        ASSERT_EQ(-EPIPE, res);
        ASSERT_EQ(WEFT_READY, weft_chan_recv_poll(&r[i], &cxr, &res));
        ASSERT_EQ(-EPIPE, res);
        weft_chan_send_drop(&s[i]);
        weft_chan_recv_drop(&r[i]);
    }
    ASSERT_EQ(1, weft_chan_len(full));               /* nothing was added */
    ASSERT_OK(weft_chan_try_recv(full, &res));
    ASSERT_EQ(99, res);
    ASSERT_CW_BALANCED(&cs);
    ASSERT_CW_BALANCED(&cr);
    weft_chan_drop(full);
    weft_chan_drop(empty);
}

/* Receivers dropped in every state: never polled, pending, woken but not
 * polled. A woken one that is dropped passes its wake to the next waiter,
 * and no message is taken by a dropped future. */
TEST(chan_recv_dropped_in_every_state_loses_nothing)
{
    weft_chan *ch;
    weft_chan_recv r0, r1, r2, r3;
    cwaker c1 = { 0 }, c2 = { 0 }, c3 = { 0 };
    CX(cx1, &c1);
    CX(cx2, &c2);
    CX(cx3, &c3);
    int v = 0, res;

    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 4));
    weft_chan_recv_init(&r0, ch, &v);
    weft_chan_recv_drop(&r0);                        /* never polled */
    weft_chan_recv_init(&r1, ch, &v);
    weft_chan_recv_init(&r2, ch, &v);
    weft_chan_recv_init(&r3, ch, &v);
    ASSERT_EQ(WEFT_PENDING, weft_chan_recv_poll(&r1, &cx1, &res));
    ASSERT_EQ(WEFT_PENDING, weft_chan_recv_poll(&r2, &cx2, &res));
    ASSERT_EQ(WEFT_PENDING, weft_chan_recv_poll(&r3, &cx3, &res));
    weft_chan_recv_drop(&r2);                        /* pending: just leaves */
    ASSERT_OK(weft_chan_try_send(ch, &(int){ 5 }));
    ASSERT_EQ(1, cw_wakes(&c1));                     /* the oldest */
    ASSERT_EQ(0, cw_wakes(&c3));
    weft_chan_recv_drop(&r1);                        /* woken, not polled */
    ASSERT_EQ(1, cw_wakes(&c3));                     /* the wake passed on */
    ASSERT_EQ(1, weft_chan_len(ch));                 /* and the message stayed */
    ASSERT_EQ(WEFT_READY, weft_chan_recv_poll(&r3, &cx3, &res));
    ASSERT_OK(res);
    ASSERT_EQ(5, v);
    weft_chan_recv_drop(&r3);
    ASSERT_EQ(0, weft_chan_len(ch));
    ASSERT_CW_BALANCED(&c1);
    ASSERT_CW_BALANCED(&c2);
    ASSERT_CW_BALANCED(&c3);
    weft_chan_drop(ch);
}

/* Senders dropped in every state keep no slot and send nothing. */
TEST(chan_send_dropped_in_every_state_keeps_no_slot)
{
    weft_chan *ch;
    weft_chan_send s0, s1, s2, s3;
    cwaker c1 = { 0 }, c2 = { 0 }, c3 = { 0 };
    CX(cx1, &c1);
    CX(cx2, &c2);
    CX(cx3, &c3);
    int v = 0, res, m1 = 1, m2 = 2, m3 = 3;

    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    ASSERT_OK(weft_chan_try_send(ch, &(int){ 0 }));
    weft_chan_send_init(&s0, ch, &m1);
    weft_chan_send_drop(&s0);                        /* never polled */
    weft_chan_send_init(&s1, ch, &m1);
    weft_chan_send_init(&s2, ch, &m2);
    weft_chan_send_init(&s3, ch, &m3);
    ASSERT_EQ(WEFT_PENDING, weft_chan_send_poll(&s1, &cx1, &res));
    ASSERT_EQ(WEFT_PENDING, weft_chan_send_poll(&s2, &cx2, &res));
    ASSERT_EQ(WEFT_PENDING, weft_chan_send_poll(&s3, &cx3, &res));
    weft_chan_send_drop(&s2);                        /* pending */
    ASSERT_OK(weft_chan_try_recv(ch, &v));           /* frees the slot */
    ASSERT_EQ(0, v);
    ASSERT_EQ(1, cw_wakes(&c1));
    weft_chan_send_drop(&s1);                        /* woken, not polled */
    ASSERT_EQ(1, cw_wakes(&c3));                     /* the slot's wake passed on */
    ASSERT_EQ(0, weft_chan_len(ch));
    ASSERT_EQ(WEFT_READY, weft_chan_send_poll(&s3, &cx3, &res));
    ASSERT_OK(res);
    weft_chan_send_drop(&s3);
    ASSERT_OK(weft_chan_try_recv(ch, &v));
    ASSERT_EQ(3, v);                                 /* only s3's message */
    ASSERT_EQ(-EAGAIN, weft_chan_try_recv(ch, &v));
    ASSERT_CW_BALANCED(&c1);
    ASSERT_CW_BALANCED(&c2);
    ASSERT_CW_BALANCED(&c3);
    weft_chan_drop(ch);
}

/* A try_recv that barges in takes the message a woken receiver was woken
 * for; the woken one waits again, at the front, and gets the next one. */
TEST(chan_woken_receiver_that_lost_the_race_keeps_its_turn)
{
    weft_chan *ch;
    weft_chan_recv r1, r2;
    cwaker c1 = { 0 }, c2 = { 0 };
    CX(cx1, &c1);
    CX(cx2, &c2);
    int v1 = 0, v2 = 0, v, res;

    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 0));
    weft_chan_recv_init(&r1, ch, &v1);
    weft_chan_recv_init(&r2, ch, &v2);
    ASSERT_EQ(WEFT_PENDING, weft_chan_recv_poll(&r1, &cx1, &res));
    ASSERT_EQ(WEFT_PENDING, weft_chan_recv_poll(&r2, &cx2, &res));
    ASSERT_OK(weft_chan_try_send(ch, &(int){ 1 }));
    ASSERT_EQ(1, cw_wakes(&c1));
    ASSERT_OK(weft_chan_try_recv(ch, &v));           /* barges in */
    ASSERT_EQ(WEFT_PENDING, weft_chan_recv_poll(&r1, &cx1, &res));
    ASSERT_OK(weft_chan_try_send(ch, &(int){ 2 }));
    ASSERT_EQ(2, cw_wakes(&c1));                     /* still first in line */
    ASSERT_EQ(0, cw_wakes(&c2));
    ASSERT_EQ(WEFT_READY, weft_chan_recv_poll(&r1, &cx1, &res));
    ASSERT_EQ(2, v1);
    weft_chan_recv_drop(&r1);
    weft_chan_recv_drop(&r2);
    ASSERT_CW_BALANCED(&c1);
    ASSERT_CW_BALANCED(&c2);
    weft_chan_drop(ch);
}

TEST(chan_misuse)
{
    weft_chan *ch;
    weft_chan_send s;
    weft_chan_recv r;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int v = 0, res = 0;

    ASSERT_EQ(-EINVAL, weft_chan_new(NULL, 4, 1));
    ASSERT_EQ(-EINVAL, weft_chan_new(&ch, 0, 1));
    ASSERT_EQ(-EINVAL, weft_chan_new(&ch, 0, 0));
    ASSERT_EQ(-EINVAL, weft_chan_new(&ch, SIZE_MAX, 1));
    ASSERT_EQ(-EINVAL, weft_chan_new(&ch, 1024, SIZE_MAX / 512));
    ASSERT_EQ(-EINVAL, weft_chan_try_send(NULL, &v));
    ASSERT_EQ(-EINVAL, weft_chan_try_recv(NULL, &v));
    ASSERT(weft_chan_clone(NULL) == NULL);
    weft_chan_drop(NULL);
    weft_chan_close(NULL);
    ASSERT(!weft_chan_is_closed(NULL));
    ASSERT_EQ(0, weft_chan_len(NULL));
    weft_chan_send_init(&s, NULL, &v);
    ASSERT_EQ(WEFT_READY, weft_chan_send_poll(&s, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_chan_send_drop(&s);
    weft_chan_recv_init(&r, NULL, &v);
    res = 0;
    ASSERT_EQ(WEFT_READY, weft_chan_recv_poll(&r, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_chan_recv_drop(&r);
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    ASSERT_EQ(-EINVAL, weft_chan_try_send(ch, NULL));
    ASSERT_EQ(-EINVAL, weft_chan_try_recv(ch, NULL));
    weft_chan_send_init(&s, ch, NULL);
    res = 0;
    ASSERT_EQ(WEFT_READY, weft_chan_send_poll(&s, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_chan_send_drop(&s);
    weft_chan_recv_init(&r, ch, NULL);
    res = 0;
    ASSERT_EQ(WEFT_READY, weft_chan_recv_poll(&r, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_chan_recv_drop(&r);
    memset(&r, 0, sizeof(r));                        /* zeroed: drop is a no-op */
    weft_chan_recv_drop(&r);
    weft_chan_drop(ch);
}

TEST(chan_alloc_faults)
{
    weft_chan *ch = NULL;
    int v = 0;

    for (size_t cap = 0; cap < 2; cap++) {
        harness_fail_alloc_at(1);
        ASSERT_EQ(-ENOMEM, weft_chan_new(&ch, sizeof(int), cap));
        ASSERT(ch == NULL);
        ASSERT_EQ(0, harness_live());
    }
    /* an unbounded channel that cannot grow refuses the message, keeps the
     * ones it has, and works again once memory is back */
    harness_fail_alloc_at(0);
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 0));
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_chan_try_send(ch, &v));
    ASSERT_EQ(0, weft_chan_len(ch));
    harness_fail_alloc_at(0);
    for (v = 0; v < 16; v++)
        ASSERT_OK(weft_chan_try_send(ch, &v));
    harness_fail_alloc_at(1);                        /* the doubling fails */
    ASSERT_EQ(-ENOMEM, weft_chan_try_send(ch, &v));
    {
        weft_chan_send s;
        weft_waker nw = weft_waker_noop();
        weft_context cx = weft_context_from_waker(&nw);
        int res = 0;

        harness_fail_alloc_at(1);
        weft_chan_send_init(&s, ch, &v);
        ASSERT_EQ(WEFT_READY, weft_chan_send_poll(&s, &cx, &res));
        ASSERT_EQ(-ENOMEM, res);
        weft_chan_send_drop(&s);
    }
    harness_fail_alloc_at(0);
    ASSERT_EQ(16, weft_chan_len(ch));
    ASSERT_OK(weft_chan_try_send(ch, &v));
    for (int i = 0; i <= 16; i++) {
        ASSERT_OK(weft_chan_try_recv(ch, &v));
        ASSERT_EQ(i, v);
    }
    weft_chan_drop(ch);
}

/* ======================================================================
 * Tasks: producers and consumers on a multi-thread runtime.
 * ====================================================================== */
typedef struct msg {
    uint32_t producer, seq;
} msg;

#define NPROD 4
#define NCONS 4

struct stress {
    weft_chan *ch;
    uint32_t per_producer;
    atomic_int producers_left;
    atomic_ullong count[NPROD];   /* per producer */
    atomic_ullong sum[NPROD];     /* of seq, per producer */
    atomic_ullong xr;             /* xor of (producer << 32 | seq) */
    atomic_int order_bad;         /* a consumer saw a producer's seqs out of order */
    atomic_int send_fail;
    atomic_int recv_fail;         /* a receive ended with something else than -EPIPE */
};

typedef struct producer {
    weft_async co;
    struct stress *st;
    weft_chan *ch;                /* own reference */
    uint32_t id, i;
    msg m;
    int res;
    weft_chan_send s;
} producer;

static weft_poll producer_poll(producer *p, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&p->co);
    for (p->i = 0; p->i < p->st->per_producer; p->i++) {
        p->m = (msg){ p->id, p->i };
        weft_chan_send_init(&p->s, p->ch, &p->m);
        WEFT_AWAIT(&p->co, weft_chan_send_poll(&p->s, cx, &p->res));
        weft_chan_send_drop(&p->s);
        if (p->res != 0)
            atomic_fetch_add(&p->st->send_fail, 1);
    }
    if (atomic_fetch_sub(&p->st->producers_left, 1) == 1)
        weft_chan_close(p->ch);
    WEFT_END(&p->co);
}

static void producer_drop(producer *p)
{
    weft_chan_send_drop(&p->s);
    weft_chan_drop(p->ch);
}

WEFT_DEFINE_FUTURE_VOID(producer, producer_poll, producer_drop);

typedef struct consumer {
    weft_async co;
    struct stress *st;
    weft_chan *ch;                /* own reference */
    msg m;
    int res;
    int64_t last[NPROD];
    unsigned long long count[NPROD], sum[NPROD], xr;
    weft_chan_recv r;
} consumer;

static weft_poll consumer_poll(consumer *c, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&c->co);
    for (int i = 0; i < NPROD; i++)
        c->last[i] = -1;
    for (;;) {
        weft_chan_recv_init(&c->r, c->ch, &c->m);
        WEFT_AWAIT(&c->co, weft_chan_recv_poll(&c->r, cx, &c->res));
        weft_chan_recv_drop(&c->r);
        if (c->res != 0)
            break;
        if (c->m.producer >= NPROD || (int64_t)c->m.seq <= c->last[c->m.producer]) {
            atomic_fetch_add(&c->st->order_bad, 1);
            continue;
        }
        c->last[c->m.producer] = c->m.seq;
        c->count[c->m.producer]++;
        c->sum[c->m.producer] += c->m.seq;
        c->xr ^= (uint64_t)c->m.producer << 32 | c->m.seq;
    }
    if (c->res != -EPIPE)
        atomic_fetch_add(&c->st->recv_fail, 1);
    for (int i = 0; i < NPROD; i++) {
        atomic_fetch_add(&c->st->count[i], c->count[i]);
        atomic_fetch_add(&c->st->sum[i], c->sum[i]);
    }
    atomic_fetch_xor(&c->st->xr, c->xr);
    WEFT_END(&c->co);
}

static void consumer_drop(consumer *c)
{
    weft_chan_recv_drop(&c->r);
    weft_chan_drop(c->ch);
}

WEFT_DEFINE_FUTURE_VOID(consumer, consumer_poll, consumer_drop);

/* 4 producers x 4 consumers, 1,000,000 messages from each producer (scaled
 * down under sanitizers), on two workers: the exact multiset sent is
 * received, in order per producer. */
static void mpmc_stress_on(weft_runtime *rt, size_t cap)
{
    struct stress st;
    unsigned long long want_sum, want_xr = 0;

    memset(&st, 0, sizeof(st));
    st.per_producer = (uint32_t)harness_scale(1000000);
    atomic_store(&st.producers_left, NPROD);
    ASSERT_OK(weft_chan_new(&st.ch, sizeof(msg), cap));
    for (uint32_t i = 0; i < NCONS; i++)
        ASSERT_OK(weft_spawn_detached(rt, &consumer_future,
                                      &(consumer){ .st = &st, .ch = weft_chan_clone(st.ch) }));
    for (uint32_t i = 0; i < NPROD; i++)
        ASSERT_OK(weft_spawn_detached(rt, &producer_future,
                                      &(producer){ .st = &st, .id = i,
                                                   .ch = weft_chan_clone(st.ch) }));
    ASSERT_OK(weft_runtime_run(rt));
    want_sum = (unsigned long long)st.per_producer * (st.per_producer - 1) / 2;
    for (uint32_t p = 0; p < NPROD; p++) {
        ASSERT_EQ(st.per_producer, atomic_load(&st.count[p]));
        ASSERT_EQ(want_sum, atomic_load(&st.sum[p]));
        for (uint32_t i = 0; i < st.per_producer; i++)
            want_xr ^= (uint64_t)p << 32 | i;
    }
    ASSERT_EQ(want_xr, atomic_load(&st.xr));
    ASSERT_EQ(0, atomic_load(&st.order_bad));
    ASSERT_EQ(0, atomic_load(&st.send_fail));
    ASSERT_EQ(0, atomic_load(&st.recv_fail));
    ASSERT_EQ(0, weft_chan_len(st.ch));
    weft_chan_drop(st.ch);
    weft_runtime_free(rt);
}

static void mpmc_stress(size_t cap)
{
    mpmc_stress_on(st_runtime(2), cap);
}

TEST(chan_stress_mpmc_bounded_16)
{
    mpmc_stress(16);
}

/* The same on a current-thread runtime (every wake comes from the thread
 * that polls). */
TEST(chan_stress_mpmc_current_thread)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    mpmc_stress_on(rt, 8);
}

TEST(chan_stress_mpmc_bounded_1)
{
    mpmc_stress(1);
}

TEST(chan_stress_mpmc_unbounded)
{
    mpmc_stress(0);
}

/* Close while senders and receivers wait, on a runtime: a full channel with
 * waiting senders, an empty one with waiting receivers; close both from a
 * plain thread; every task finishes with -EPIPE and nothing is lost. */
typedef struct waiter_task {
    weft_async co;
    weft_chan *ch;                /* own reference */
    bool send;
    int v, res;
    atomic_int *polled;
    weft_chan_send s;
    weft_chan_recv r;
} waiter_task;

static weft_poll waiter_task_poll(waiter_task *t, weft_context *cx, void *out)
{
    WEFT_BEGIN(&t->co);
    if (t->send) {
        weft_chan_send_init(&t->s, t->ch, &t->v);
        atomic_fetch_add(t->polled, 1);
        WEFT_AWAIT(&t->co, weft_chan_send_poll(&t->s, cx, &t->res));
    } else {
        weft_chan_recv_init(&t->r, t->ch, &t->v);
        atomic_fetch_add(t->polled, 1);
        WEFT_AWAIT(&t->co, weft_chan_recv_poll(&t->r, cx, &t->res));
    }
    *(int *)out = t->res == 0 && !t->send ? t->v : t->res;
    WEFT_END(&t->co);
}

static void waiter_task_drop(waiter_task *t)
{
    weft_chan_send_drop(&t->s);
    weft_chan_recv_drop(&t->r);
    weft_chan_drop(t->ch);
}

WEFT_DEFINE_FUTURE(waiter_task, waiter_task_poll, waiter_task_drop, int);

TEST(chan_close_while_tasks_wait)
{
    weft_runtime *rt = st_runtime(2);
    weft_chan *full, *empty;
    weft_join *j[16];
    atomic_int polled = 0;
    int out, v;

    ASSERT_OK(weft_chan_new(&full, sizeof(int), 2));
    ASSERT_OK(weft_chan_new(&empty, sizeof(int), 2));
    ASSERT_OK(weft_chan_try_send(full, &(int){ 1 }));
    ASSERT_OK(weft_chan_try_send(full, &(int){ 2 }));
    for (int i = 0; i < 16; i++) {
        bool send = i % 2 == 0;

        ASSERT_OK(weft_spawn(rt, &waiter_task_future,
                             &(waiter_task){ .ch = weft_chan_clone(send ? full : empty),
                                             .send = send, .v = 100 + i,
                                             .polled = &polled },
                             &j[i]));
    }
    ST_WAIT_UNTIL(atomic_load(&polled) == 16);
    /* all 16 are parked or about to be: their waits end only by close */
    weft_chan_close(full);
    weft_chan_close(empty);
    for (int i = 0; i < 16; i++) {
        ASSERT_OK(weft_join_wait(j[i], &out));
        ASSERT_EQ(-EPIPE, out);
        weft_join_drop(j[i]);
    }
    ASSERT_OK(weft_chan_try_recv(full, &v));
    ASSERT_EQ(1, v);
    ASSERT_OK(weft_chan_try_recv(full, &v));
    ASSERT_EQ(2, v);
    ASSERT_EQ(-EPIPE, weft_chan_try_recv(full, &v));
    weft_chan_drop(full);
    weft_chan_drop(empty);
    weft_runtime_free(rt);
}

/* Receivers aborted while messages arrive, on a runtime: each message ends
 * up received by exactly one task or left in the channel, and the tasks that
 * are not aborted all get one (a wake handed to an aborted task is passed
 * on). */
TEST(chan_abort_waiting_receivers_loses_nothing)
{
    weft_runtime *rt = st_runtime(2);
    unsigned rounds = (unsigned)harness_scale(300);

    for (unsigned round = 0; round < rounds; round++) {
        enum { N = 8 };
        weft_chan *ch;
        weft_join *j[N];
        atomic_int polled = 0;
        long long sent = 0, got = 0;
        int out, v, err;

        ASSERT_OK(weft_chan_new(&ch, sizeof(int), 0));
        for (int i = 0; i < N; i++)
            ASSERT_OK(weft_spawn(rt, &waiter_task_future,
                                 &(waiter_task){ .ch = weft_chan_clone(ch), .polled = &polled },
                                 &j[i]));
        if (round % 2)
            ST_WAIT_UNTIL(atomic_load(&polled) == N);
        for (int i = 0; i < N; i++) {
            v = 1000 + i;
            ASSERT_OK(weft_chan_try_send(ch, &v));
            sent += v;
            if (i % 2)
                weft_join_abort(j[(i + round) % N]);
        }
        for (int i = 0; i < N; i++) {
            err = weft_join_wait(j[i], &out);
            if (err == 0) {
                ASSERT_LE(1000 + N - 1, out);
                ASSERT_LE(out, 1000);
                got += out;
            } else {
                ASSERT_EQ(-ECANCELED, err);
                ASSERT(((i - (int)round) % N + N) % N % 2 == 1); /* only aborted ones */
            }
            weft_join_drop(j[i]);
        }
        while (weft_chan_try_recv(ch, &v) == 0)
            got += v;
        ASSERT_EQ(sent, got);
        weft_chan_drop(ch);
    }
    weft_runtime_free(rt);
}

/* Random cancellation by hand: futures of both kinds started, polled,
 * dropped and woken in random order against a small bounded channel; every
 * message sent is received exactly once, and no waiter with something to do
 * is left without a wake. Fixed seed, printed on failure. */
#define RC_SLOTS 8
TEST(chan_random_cancel_property)
{
    const uint64_t seed0 = st_seed(0x5eed0c4a11ULL);
    uint64_t seed = seed0;
    weft_chan *ch;
    struct {
        bool live, send;
        weft_chan_send s;
        weft_chan_recv r;
        int msg, got;
        cwaker c;
        int seen;                 /* wakes seen before the last poll */
        bool polled;
    } sl[RC_SLOTS];
    unsigned long long sent_sum = 0, recv_sum = 0, sent_n = 0, recv_n = 0;
    int next_msg = 1, steps = (int)harness_scale(200000);

    memset(sl, 0, sizeof(sl));
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 3));
    for (int step = 0; step < steps; step++) {
        int i = (int)(st_rand(&seed) % RC_SLOTS), op = (int)(st_rand(&seed) % 8);
        weft_waker w = cw_waker(&sl[i].c);
        weft_context cx = weft_context_from_waker(&w);
        int res = 0, v;
        weft_poll p;

        if (!sl[i].live) {
            sl[i].live = true;
            sl[i].send = st_rand(&seed) & 1;
            sl[i].seen = cw_wakes(&sl[i].c);
            sl[i].polled = false;
            if (sl[i].send) {
                sl[i].msg = next_msg++;
                weft_chan_send_init(&sl[i].s, ch, &sl[i].msg);
            } else {
                weft_chan_recv_init(&sl[i].r, ch, &sl[i].got);
            }
            continue;
        }
        if (op == 0) {                               /* cancel */
            if (sl[i].send)
                weft_chan_send_drop(&sl[i].s);
            else
                weft_chan_recv_drop(&sl[i].r);
            sl[i].live = false;
            continue;
        }
        if (op == 1) {                               /* a try_ from outside */
            if (st_rand(&seed) & 1) {
                v = next_msg;
                if (weft_chan_try_send(ch, &v) == 0) {
                    next_msg++;
                    sent_sum += (unsigned)v;
                    sent_n++;
                }
            } else if (weft_chan_try_recv(ch, &v) == 0) {
                recv_sum += (unsigned)v;
                recv_n++;
            }
            continue;
        }
        sl[i].seen = cw_wakes(&sl[i].c);
        sl[i].polled = true;
        p = sl[i].send ? weft_chan_send_poll(&sl[i].s, &cx, &res)
                       : weft_chan_recv_poll(&sl[i].r, &cx, &res);
        if (p == WEFT_READY) {
            if (res != 0)
                harness_fail(__FILE__, __LINE__, "seed %#llx step %d: result %d",
                             (unsigned long long)seed0, step, res);
            if (sl[i].send) {
                sent_sum += (unsigned)sl[i].msg;
                sent_n++;
                weft_chan_send_drop(&sl[i].s);
            } else {
                recv_sum += (unsigned)sl[i].got;
                recv_n++;
                weft_chan_recv_drop(&sl[i].r);
            }
            sl[i].live = false;
        }
    }
    /* Drain: only woken futures are polled; while messages remain and a
     * receiver waits, somebody must have been woken. */
    for (int i = 0; i < RC_SLOTS; i++)
        if (sl[i].live && sl[i].send) {
            weft_chan_send_drop(&sl[i].s);
            sl[i].live = false;
        }
    for (;;) {
        bool any_live = false, any_woken = false;

        for (int i = 0; i < RC_SLOTS; i++) {
            weft_waker w = cw_waker(&sl[i].c);
            weft_context cx = weft_context_from_waker(&w);
            int res = 0;

            if (!sl[i].live)
                continue;
            any_live = true;
            if (sl[i].polled && cw_wakes(&sl[i].c) == sl[i].seen)
                continue;
            any_woken = true;
            sl[i].seen = cw_wakes(&sl[i].c);
            sl[i].polled = true;
            if (weft_chan_recv_poll(&sl[i].r, &cx, &res) == WEFT_READY) {
                ASSERT_OK(res);
                recv_sum += (unsigned)sl[i].got;
                recv_n++;
                weft_chan_recv_drop(&sl[i].r);
                sl[i].live = false;
            }
        }
        if (!any_live || !any_woken) {
            if (any_live && weft_chan_len(ch) > 0)
                harness_fail(__FILE__, __LINE__,
                             "seed %#llx: %zu messages queued, receivers wait, no wake",
                             (unsigned long long)seed0, weft_chan_len(ch));
            break;
        }
    }
    for (int i = 0; i < RC_SLOTS; i++)
        if (sl[i].live)
            weft_chan_recv_drop(&sl[i].r);
    {
        int v;

        while (weft_chan_try_recv(ch, &v) == 0) {
            recv_sum += (unsigned)v;
            recv_n++;
        }
    }
    if (sent_n != recv_n || sent_sum != recv_sum)
        harness_fail(__FILE__, __LINE__, "seed %#llx: sent %llu (sum %llu), received %llu (sum %llu)",
                     (unsigned long long)seed0, sent_n, sent_sum, recv_n, recv_sum);
    ASSERT_LE(sent_n, (unsigned long long)steps / 50);  /* it did exercise the channel */
    for (int i = 0; i < RC_SLOTS; i++)
        ASSERT_CW_BALANCED(&sl[i].c);
    weft_chan_drop(ch);
}
