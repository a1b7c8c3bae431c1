/* SPDX-License-Identifier: MIT */
/* Audit 7 of weft/lock.h and weft/chan.h: a pending future dropped on one
 * thread while another thread hands it what it waits for (the grant must
 * survive); counts across threads (broadcast lag accounting, watch
 * versions); the barrier's arrival taken back while the last party
 * arrives. */
#include "sync_test.h"
#include <stdlib.h>
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

/* ---- close racing every kind of sender and receiver -------------------------------- */
#define MX_SENDERS 6            /* 0-2: threads (send_wait), 3-5: tasks (futures) */
#define MX_PER ((uint64_t)harness_scale(3000))
typedef struct mixed {
    weft_chan *ch;
    atomic_int sent_ok[MX_SENDERS];      /* values 0 .. sent_ok-1 were sent */
    atomic_int last_rc[MX_SENDERS];
    unsigned char *seen;                 /* [sender * MX_PER + seq] */
    atomic_int dup, received;
} mixed;

static void mx_saw(mixed *m, uint64_t v)
{
    uint64_t id = v >> 32, seq = v & 0xffffffffu;

    if (id >= MX_SENDERS || seq >= MX_PER) {
        atomic_fetch_add(&m->dup, 1000);
        return;
    }
    if (__atomic_exchange_n(&m->seen[id * MX_PER + seq], 1, __ATOMIC_RELAXED))
        atomic_fetch_add(&m->dup, 1);
    atomic_fetch_add(&m->received, 1);
}

typedef struct mx_thread {
    mixed *m;
    int id;
} mx_thread;

static void *mx_send_main(void *arg)
{
    mx_thread *t = arg;

    for (uint64_t i = 0; i < MX_PER; i++) {
        uint64_t v = ((uint64_t)t->id << 32) | i;
        int r = weft_chan_send_wait(t->m->ch, &v);

        atomic_store(&t->m->last_rc[t->id], r);
        if (r != 0)
            break;
        atomic_store(&t->m->sent_ok[t->id], (int)i + 1);
    }
    return NULL;
}

static void *mx_recv_main(void *arg)
{
    mixed *m = arg;
    uint64_t v;

    while (weft_chan_recv_wait(m->ch, &v) == 0)
        mx_saw(m, v);
    return NULL;
}

typedef struct mx_task_send {
    weft_async co;
    mixed *m;
    int id;
    uint64_t i, v;
    int r;
    weft_chan_send s;
} mx_task_send;

static weft_poll mx_task_send_poll(mx_task_send *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < MX_PER; f->i++) {
        f->v = ((uint64_t)f->id << 32) | f->i;
        weft_chan_send_init(&f->s, f->m->ch, &f->v);
        WEFT_AWAIT(&f->co, weft_chan_send_poll(&f->s, cx, &f->r));
        weft_chan_send_drop(&f->s);
        atomic_store(&f->m->last_rc[f->id], f->r);
        if (f->r != 0)
            break;
        atomic_store(&f->m->sent_ok[f->id], (int)f->i + 1);
    }
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(mx_task_send, mx_task_send_poll, NULL);

typedef struct mx_task_recv {
    weft_async co;
    mixed *m;
    uint64_t v;
    int r;
    weft_chan_recv rcv;
} mx_task_recv;

static weft_poll mx_task_recv_poll(mx_task_recv *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (;;) {
        weft_chan_recv_init(&f->rcv, f->m->ch, &f->v);
        WEFT_AWAIT(&f->co, weft_chan_recv_poll(&f->rcv, cx, &f->r));
        weft_chan_recv_drop(&f->rcv);
        if (f->r != 0)
            break;
        mx_saw(f->m, f->v);
    }
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(mx_task_recv, mx_task_recv_poll, NULL);

static void close_races_everyone(size_t cap)
{
    weft_runtime *rt = st_runtime(2);
    mixed m;
    mx_thread st[3];
    pthread_t sth[3], rth[2];
    weft_join *jt[5];
    int total = 0;

    memset(&m, 0, sizeof(m));
    m.seen = calloc(MX_SENDERS * MX_PER, 1);
    ASSERT(m.seen != NULL);
    ASSERT_OK(weft_chan_new(&m.ch, sizeof(uint64_t), cap));
    for (int i = 0; i < 3; i++) {
        st[i] = (mx_thread){ &m, i };
        ASSERT_EQ(0, pthread_create(&sth[i], NULL, mx_send_main, &st[i]));
    }
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(0, pthread_create(&rth[i], NULL, mx_recv_main, &m));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_spawn(rt, &mx_task_send_future, &(mx_task_send){ .m = &m, .id = 3 + i },
                             &jt[i]));
    for (int i = 0; i < 2; i++)
        ASSERT_OK(weft_spawn(rt, &mx_task_recv_future, &(mx_task_recv){ .m = &m }, &jt[3 + i]));
    /* close once a third of the messages went through */
    ST_WAIT_UNTIL(atomic_load(&m.received) >= (int)(MX_SENDERS * MX_PER / 3));
    weft_chan_close(m.ch);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, pthread_join(sth[i], NULL));
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(0, pthread_join(rth[i], NULL));
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(weft_join_wait(jt[i], NULL));
        weft_join_drop(jt[i]);
    }
    ASSERT_EQ(0, weft_chan_len(m.ch));
    ASSERT_EQ(0, atomic_load(&m.dup));
    for (int i = 0; i < MX_SENDERS; i++) {
        int ok = atomic_load(&m.sent_ok[i]);

        total += ok;
        /* every value a sender was told was sent arrived, and no other */
        for (uint64_t s = 0; s < MX_PER; s++)
            if (m.seen[i * MX_PER + s] != (s < (uint64_t)ok))
                harness_fail(__FILE__, __LINE__, "cap %zu sender %d value %llu: sent %d, seen %d",
                             cap, i, (unsigned long long)s, s < (uint64_t)ok,
                             m.seen[i * MX_PER + s]);
        if (ok < (int)MX_PER)
            ASSERT_EQ(-EPIPE, atomic_load(&m.last_rc[i]));
    }
    ASSERT_EQ(total, atomic_load(&m.received));
    weft_chan_drop(m.ch);
    free(m.seen);
    weft_runtime_free(rt);
}

TEST(chan_close_races_blocking_and_task_senders_and_receivers_cap_1)
{
    close_races_everyone(1);
}

TEST(chan_close_races_blocking_and_task_senders_and_receivers_cap_7)
{
    close_races_everyone(7);
}

TEST(chan_close_races_blocking_and_task_senders_and_receivers_unbounded)
{
    close_races_everyone(0);
}
