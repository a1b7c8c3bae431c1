/* SPDX-License-Identifier: MIT */
/* Audit 7 of weft/lock.h and weft/chan.h: a pending future dropped on one
 * thread while another thread hands it what it waits for (the grant must
 * survive); counts across threads (broadcast lag accounting, watch
 * versions); the barrier's arrival taken back while the last party
 * arrives. */
#include "sync_test.h"
#include <string.h>

/* Two threads meet at a spin barrier, then run their halves at once:
 * round i runs a(i) on this thread and b(i) on another, both released
 * together, then check(i) once both are done (check sets up round i + 1). */
typedef struct race2 {
    atomic_int phase;             /* i + 1: round i may start */
    atomic_int arrived;           /* 2 per round */
    atomic_int b_done;            /* rounds b finished */
    int rounds;
    void (*a)(void *ctx, int round);
    void (*b)(void *ctx, int round);
    void (*check)(void *ctx, int round);
    void *ctx;
} race2;

static void race_meet(race2 *r, int round)
{
    atomic_fetch_add(&r->arrived, 1);
    ST_WAIT_UNTIL(atomic_load(&r->arrived) >= 2 * (round + 1));
}

static void *race_b_main(void *arg)
{
    race2 *r = arg;

    for (int i = 0; i < r->rounds; i++) {
        ST_WAIT_UNTIL(atomic_load(&r->phase) > i);
        race_meet(r, i);
        r->b(r->ctx, i);
        atomic_store(&r->b_done, i + 1);
    }
    return NULL;
}

static void race_run(race2 *r)
{
    pthread_t th;

    atomic_store(&r->phase, 0);
    atomic_store(&r->arrived, 0);
    atomic_store(&r->b_done, 0);
    ASSERT_EQ(0, pthread_create(&th, NULL, race_b_main, r));
    for (int i = 0; i < r->rounds; i++) {
        atomic_store(&r->phase, i + 1);
        race_meet(r, i);
        r->a(r->ctx, i);
        ST_WAIT_UNTIL(atomic_load(&r->b_done) > i);
        r->check(r->ctx, i);
    }
    ASSERT_EQ(0, pthread_join(th, NULL));
}

#define ROUNDS ((int)harness_scale(3000))

/* ---- notify: notify_one racing the drop of the one pending wait ---------------- */
typedef struct notify_ctx {
    weft_notify *n;
    weft_notify_wait w;
    cwaker c;
} notify_ctx;

static void notify_setup(notify_ctx *x)
{
    weft_waker wk = cw_waker(&x->c);
    weft_context cx = weft_context_from_waker(&wk);
    int res = 1;

    weft_notify_wait_init(&x->w, x->n);
    ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&x->w, &cx, &res));
}

static void notify_a(void *ctx, int round)
{
    notify_ctx *x = ctx;

    (void)round;
    weft_notify_wait_drop(&x->w);
}

static void notify_b(void *ctx, int round)
{
    (void)round;
    weft_notify_one(((notify_ctx *)ctx)->n);
}

static void notify_check(void *ctx, int round)
{
    notify_ctx *x = ctx;
    weft_notify_wait w2;
    weft_waker wk = cw_waker(&x->c);
    weft_context cx = weft_context_from_waker(&wk);
    int res = 1;

    /* the notification went to the dropped wait or was stored: either way
     * it passes on, so a fresh wait completes at once */
    weft_notify_wait_init(&w2, x->n);
    if (weft_notify_wait_poll(&w2, &cx, &res) != WEFT_READY)
        harness_fail(__FILE__, __LINE__, "round %d: notify_one lost with its waiter", round);
    ASSERT_EQ(0, res);
    weft_notify_wait_drop(&w2);
    ASSERT_CW_BALANCED(&x->c);
    if (round + 1 < ROUNDS)
        notify_setup(x);
}

/* lock.h, notify: "if a notify_one had already chosen it, the notification
 * passes on to the next waiter (or becomes the stored permit)" - also when
 * the choice and the drop happen at once on two threads. */
TEST(notify_one_racing_the_drop_of_its_waiter_is_not_lost)
{
    notify_ctx x = { 0 };
    race2 r = { .rounds = ROUNDS, .a = notify_a, .b = notify_b, .check = notify_check, .ctx = &x };

    ASSERT_OK(weft_notify_new(&x.n));
    notify_setup(&x);
    race_run(&r);
    weft_notify_free(x.n);
}

/* ---- semaphore: release racing the drop of the pending acquire ----------------- */
typedef struct sem_ctx {
    weft_sem *s;
    weft_sem_acquire a;
    cwaker c;
} sem_ctx;

static void sem_setup(sem_ctx *x)
{
    weft_waker wk = cw_waker(&x->c);
    weft_context cx = weft_context_from_waker(&wk);
    int res = 1;

    weft_sem_acquire_init(&x->a, x->s, 2);
    ASSERT_EQ(WEFT_PENDING, weft_sem_acquire_poll(&x->a, &cx, &res));
}

static void sem_a(void *ctx, int round)
{
    (void)round;
    weft_sem_acquire_drop(&((sem_ctx *)ctx)->a);
}

static void sem_b(void *ctx, int round)
{
    (void)round;
    ASSERT_OK(weft_sem_release(((sem_ctx *)ctx)->s, 2));
}

static void sem_check(void *ctx, int round)
{
    sem_ctx *x = ctx;

    if (weft_sem_available(x->s) != 2)
        harness_fail(__FILE__, __LINE__, "round %d: %zu permits free, 2 expected", round,
                     weft_sem_available(x->s));
    ASSERT_OK(weft_sem_try_acquire(x->s, 2));
    ASSERT_CW_BALANCED(&x->c);
    if (round + 1 < ROUNDS)
        sem_setup(x);
}

TEST(sem_release_racing_the_drop_of_its_acquire_conserves_permits)
{
    sem_ctx x = { 0 };
    race2 r = { .rounds = ROUNDS, .a = sem_a, .b = sem_b, .check = sem_check, .ctx = &x };

    ASSERT_OK(weft_sem_new(&x.s, 0));
    sem_setup(&x);
    race_run(&r);
    weft_sem_free(x.s);
}

/* ---- channel: try_send racing the drop of the pending receive ------------------ */
typedef struct chan_ctx {
    weft_chan *ch;
    weft_chan_recv r;
    int dst;
    cwaker c;
} chan_ctx;

static void chan_setup(chan_ctx *x)
{
    weft_waker wk = cw_waker(&x->c);
    weft_context cx = weft_context_from_waker(&wk);
    int res = 1;

    weft_chan_recv_init(&x->r, x->ch, &x->dst);
    ASSERT_EQ(WEFT_PENDING, weft_chan_recv_poll(&x->r, &cx, &res));
}

static void chan_a(void *ctx, int round)
{
    (void)round;
    weft_chan_recv_drop(&((chan_ctx *)ctx)->r);
}

static void chan_b(void *ctx, int round)
{
    ASSERT_OK(weft_chan_try_send(((chan_ctx *)ctx)->ch, &round));
}

static void chan_check(void *ctx, int round)
{
    chan_ctx *x = ctx;
    int v = -1;

    ASSERT_OK(weft_chan_try_recv(x->ch, &v));
    ASSERT_EQ(round, v);
    ASSERT_EQ(-EAGAIN, weft_chan_try_recv(x->ch, &v));
    ASSERT_CW_BALANCED(&x->c);
    if (round + 1 < ROUNDS)
        chan_setup(x);
}

TEST(chan_send_racing_the_drop_of_its_receive_loses_nothing)
{
    chan_ctx x = { 0 };
    race2 r = { .rounds = ROUNDS, .a = chan_a, .b = chan_b, .check = chan_check, .ctx = &x };

    ASSERT_OK(weft_chan_new(&x.ch, sizeof(int), 1));
    chan_setup(&x);
    race_run(&r);
    weft_chan_drop(x.ch);
}

/* ---- rwlock: unlock_write racing the drop of a pending writer ------------------ */
typedef struct rw_ctx {
    weft_rwlock *rw;
    weft_rwlock_write w;
    cwaker c;
} rw_ctx;

static void rw_setup(rw_ctx *x)
{
    weft_waker wk = cw_waker(&x->c);
    weft_context cx = weft_context_from_waker(&wk);
    int res = 1;

    ASSERT_OK(weft_rwlock_try_write(x->rw));
    weft_rwlock_write_init(&x->w, x->rw);
    ASSERT_EQ(WEFT_PENDING, weft_rwlock_write_poll(&x->w, &cx, &res));
}

static void rw_a(void *ctx, int round)
{
    (void)round;
    weft_rwlock_write_drop(&((rw_ctx *)ctx)->w);
}

static void rw_b(void *ctx, int round)
{
    (void)round;
    ASSERT_OK(weft_rwlock_unlock_write(((rw_ctx *)ctx)->rw));
}

static void rw_check(void *ctx, int round)
{
    rw_ctx *x = ctx;

    if (weft_rwlock_try_read(x->rw) != 0)
        harness_fail(__FILE__, __LINE__, "round %d: lock not free after the race", round);
    ASSERT_OK(weft_rwlock_unlock_read(x->rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_read(x->rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_write(x->rw));
    ASSERT_CW_BALANCED(&x->c);
    if (round + 1 < ROUNDS)
        rw_setup(x);
}

TEST(rwlock_unlock_racing_the_drop_of_a_waiting_writer_frees_the_lock)
{
    rw_ctx x = { 0 };
    race2 r = { .rounds = ROUNDS, .a = rw_a, .b = rw_b, .check = rw_check, .ctx = &x };

    ASSERT_OK(weft_rwlock_new(&x.rw));
    rw_setup(&x);
    race_run(&r);
    weft_rwlock_free(x.rw);
}

/* ---- barrier: an arrival taken back while the last party arrives --------------- */
typedef struct bar_ctx {
    weft_barrier *b;
    weft_barrier_wait w1, w2;
    int res2;
    weft_poll p2;
    cwaker c;
} bar_ctx;

static void bar_setup(bar_ctx *x)
{
    weft_waker wk = cw_waker(&x->c);
    weft_context cx = weft_context_from_waker(&wk);
    int res = 1;

    weft_barrier_wait_init(&x->w1, x->b);
    ASSERT_EQ(WEFT_PENDING, weft_barrier_wait_poll(&x->w1, &cx, &res));
    ASSERT_EQ(1, weft_barrier_waiting(x->b));
    weft_barrier_wait_init(&x->w2, x->b);
}

static void bar_a(void *ctx, int round)
{
    (void)round;
    weft_barrier_wait_drop(&((bar_ctx *)ctx)->w1);
}

static void bar_b(void *ctx, int round)
{
    bar_ctx *x = ctx;
    weft_waker wk = cw_waker(&x->c);
    weft_context cx = weft_context_from_waker(&wk);

    (void)round;
    x->res2 = 99;
    x->p2 = weft_barrier_wait_poll(&x->w2, &cx, &x->res2);
}

static void bar_check(void *ctx, int round)
{
    bar_ctx *x = ctx;

    if (x->p2 == WEFT_READY) {
        /* w2 completed the generation with w1 still in it: the leader */
        ASSERT_EQ(WEFT_BARRIER_LEADER, x->res2);
        ASSERT_EQ(0, weft_barrier_waiting(x->b));
    } else {
        /* w1's arrival was taken back first: w2 waits alone */
        ASSERT_EQ(1, weft_barrier_waiting(x->b));
        weft_barrier_wait_drop(&x->w2);
        if (weft_barrier_waiting(x->b) != 0)
            harness_fail(__FILE__, __LINE__, "round %d: %zu waiting after both left", round,
                         weft_barrier_waiting(x->b));
    }
    weft_barrier_wait_drop(&x->w2);
    ASSERT_CW_BALANCED(&x->c);
    if (round + 1 < ROUNDS)
        bar_setup(x);
}

TEST(barrier_arrival_taken_back_while_the_last_party_arrives)
{
    bar_ctx x = { 0 };
    race2 r = { .rounds = ROUNDS, .a = bar_a, .b = bar_b, .check = bar_check, .ctx = &x };

    ASSERT_OK(weft_barrier_new(&x.b, 2));
    bar_setup(&x);
    race_run(&r);
    weft_barrier_free(x.b);
}

/* ---- broadcast: lag accounting exact with senders on three threads ------------- */
#define BC_SENDS 20000
typedef struct bc_sender {
    weft_bcast *b;
    int id;
    int sent;
} bc_sender;

static void *bc_send_main(void *arg)
{
    bc_sender *s = arg;

    for (int i = 0; i < (int)harness_scale(BC_SENDS); i++) {
        uint64_t v = ((uint64_t)s->id << 32) | (uint64_t)i;

        ASSERT_OK(weft_bcast_send(s->b, &v));
        s->sent++;
    }
    return NULL;
}

typedef struct bc_recv {
    weft_bcast_rx *rx;
    uint64_t got, missed;
    int last[3];
    atomic_int *done;
} bc_recv;

static void *bc_recv_main(void *arg)
{
    bc_recv *r = arg;

    for (int i = 0; i < 3; i++)
        r->last[i] = -1;
    for (;;) {
        uint64_t v = 0, m = 0;
        int e = weft_bcast_try_recv(r->rx, &v, &m);

        if (e == 0) {
            int id = (int)(v >> 32), seq = (int)(v & 0xffffffffu);

            ASSERT(id >= 0 && id < 3);
            if (seq <= r->last[id])
                harness_fail(__FILE__, __LINE__, "sender %d: %d after %d", id, seq,
                             r->last[id]);
            r->last[id] = seq;
            r->got++;
        } else if (e == -EOVERFLOW) {
            ASSERT(m > 0);
            r->missed += m;
        } else if (e == -EAGAIN) {
            sched_yield();
        } else {
            ASSERT_EQ(-EPIPE, e);
            break;
        }
    }
    return NULL;
}

TEST(bcast_received_plus_missed_is_sent_with_three_sending_threads)
{
    weft_bcast *b;
    bc_sender s[3];
    bc_recv r[2];
    pthread_t st[3], rt[2];
    uint64_t total = 0;

    ASSERT_OK(weft_bcast_new(&b, sizeof(uint64_t), 7));
    for (int i = 0; i < 2; i++) {
        r[i] = (bc_recv){ 0 };
        ASSERT_OK(weft_bcast_rx_new(&r[i].rx, b));
        ASSERT_EQ(0, pthread_create(&rt[i], NULL, bc_recv_main, &r[i]));
    }
    for (int i = 0; i < 3; i++) {
        s[i] = (bc_sender){ b, i, 0 };
        ASSERT_EQ(0, pthread_create(&st[i], NULL, bc_send_main, &s[i]));
    }
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(0, pthread_join(st[i], NULL));
        total += (uint64_t)s[i].sent;
    }
    weft_bcast_close(b);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(0, pthread_join(rt[i], NULL));
        if (r[i].got + r[i].missed != total)
            harness_fail(__FILE__, __LINE__, "receiver %d: %llu got + %llu missed != %llu sent",
                         i, (unsigned long long)r[i].got, (unsigned long long)r[i].missed,
                         (unsigned long long)total);
        weft_bcast_rx_drop(r[i].rx);
    }
    weft_bcast_drop(b);
}

/* ---- watch: the version counts every send, from any number of threads ---------- */
static void *watch_send_main(void *arg)
{
    weft_watch *w = arg;

    for (int i = 0; i < (int)harness_scale(20000); i++) {
        uint64_t v = (uint64_t)i;

        ASSERT_OK(weft_watch_send(w, &v));
    }
    return NULL;
}

TEST(watch_version_counts_sends_from_three_threads)
{
    weft_watch *w;
    weft_watch_rx *rx;
    pthread_t th[3];
    uint64_t zero = 0, v = 1;

    ASSERT_OK(weft_watch_new(&w, sizeof(uint64_t), &zero));
    ASSERT_OK(weft_watch_rx_new(&rx, w));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, pthread_create(&th[i], NULL, watch_send_main, w));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, pthread_join(th[i], NULL));
    ASSERT_EQ(3 * harness_scale(20000), weft_watch_version(w));
    ASSERT_EQ(1, weft_watch_has_changed(rx));
    ASSERT_OK(weft_watch_get(rx, &v));
    ASSERT_EQ(harness_scale(20000) - 1, v);
    weft_watch_drop(w);
    ASSERT_EQ(1, weft_watch_has_changed(rx));    /* the last value not seen yet */
    weft_watch_rx_drop(rx);
}
