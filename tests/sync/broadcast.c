/* SPDX-License-Identifier: MIT */
/* Broadcast channel: every receiver sees every message in order, late
 * subscribers see only later ones, lag reported with the exact count then
 * continuing from the oldest kept, close drains then -EPIPE, receive
 * futures dropped in every state, N receiver tasks x M messages (exact
 * sequence without lag; exact accounting with lag), misuse, allocation
 * faults. */
#include <string.h>

#include "sync_test.h"
#include "weft/chan.h"

#define CX(name, cw)                                                          \
    weft_waker name##_w = cw_waker(cw);                                       \
    weft_context name = weft_context_from_waker(&name##_w)

TEST(bcast_every_receiver_sees_every_message)
{
    weft_bcast *b;
    weft_bcast_rx *r1, *r2, *late;
    int v, out = -1;
    uint64_t missed = 0;

    ASSERT_OK(weft_bcast_new(&b, sizeof(int), 4));
    ASSERT_OK(weft_bcast_rx_new(&r1, b));
    ASSERT_OK(weft_bcast_rx_new(&r2, b));
    ASSERT_EQ(-EAGAIN, weft_bcast_try_recv(r1, &out, &missed));
    for (v = 1; v <= 3; v++)
        ASSERT_OK(weft_bcast_send(b, &v));
    ASSERT_OK(weft_bcast_rx_new(&late, b));
    for (v = 1; v <= 3; v++) {
        ASSERT_OK(weft_bcast_try_recv(r1, &out, &missed));
        ASSERT_EQ(v, out);
    }
    ASSERT_EQ(-EAGAIN, weft_bcast_try_recv(r1, &out, &missed));
    ASSERT_EQ(-EAGAIN, weft_bcast_try_recv(late, &out, &missed)); /* joined after */
    v = 4;
    ASSERT_OK(weft_bcast_send(b, &v));
    for (v = 1; v <= 4; v++) {
        ASSERT_OK(weft_bcast_try_recv(r2, &out, NULL));
        ASSERT_EQ(v, out);
    }
    ASSERT_OK(weft_bcast_try_recv(r1, &out, NULL));
    ASSERT_EQ(4, out);
    ASSERT_OK(weft_bcast_try_recv(late, &out, NULL));
    ASSERT_EQ(4, out);
    ASSERT_EQ(0, missed);                               /* untouched without lag */
    weft_bcast_rx_drop(r1);
    weft_bcast_rx_drop(r2);
    weft_bcast_rx_drop(late);
    weft_bcast_drop(b);
}

/* 10 messages through a ring of 4: a receiver that read nothing missed 6,
 * then gets 6..9; one that read 3 missed 3, then gets 6..9; a receive
 * future reports the lag the same way. */
TEST(bcast_lag_reports_exact_missed_count)
{
    weft_bcast *b;
    weft_bcast_rx *r0, *r3, *rf;
    weft_bcast_recv f;
    cwaker c = { 0 };
    CX(cx, &c);
    int out = -1, res;
    uint64_t missed = 0;

    ASSERT_OK(weft_bcast_new(&b, sizeof(int), 4));
    ASSERT_OK(weft_bcast_rx_new(&r0, b));
    ASSERT_OK(weft_bcast_rx_new(&r3, b));
    ASSERT_OK(weft_bcast_rx_new(&rf, b));
    weft_bcast_recv_init(&f, rf, &out, &missed);
    ASSERT_EQ(WEFT_PENDING, weft_bcast_recv_poll(&f, &cx, &res));
    for (int v = 0; v < 10; v++) {
        ASSERT_OK(weft_bcast_send(b, &v));
        if (v < 3) {
            ASSERT_OK(weft_bcast_try_recv(r3, &out, &missed));
            ASSERT_EQ(v, out);
        }
    }
    ASSERT_EQ(1, cw_wakes(&c));
    ASSERT_EQ(-EOVERFLOW, weft_bcast_try_recv(r0, &out, &missed));
    ASSERT_EQ(6, missed);
    ASSERT_EQ(-EOVERFLOW, weft_bcast_try_recv(r3, &out, &missed));
    ASSERT_EQ(3, missed);
    for (int v = 6; v < 10; v++) {
        ASSERT_OK(weft_bcast_try_recv(r0, &out, &missed));
        ASSERT_EQ(v, out);
        ASSERT_OK(weft_bcast_try_recv(r3, &out, &missed));
        ASSERT_EQ(v, out);
    }
    ASSERT_EQ(-EAGAIN, weft_bcast_try_recv(r0, &out, &missed));
    missed = 0;
    ASSERT_EQ(WEFT_READY, weft_bcast_recv_poll(&f, &cx, &res));
    ASSERT_EQ(-EOVERFLOW, res);
    ASSERT_EQ(6, missed);
    weft_bcast_recv_drop(&f);
    weft_bcast_recv_init(&f, rf, &out, &missed);
    ASSERT_EQ(WEFT_READY, weft_bcast_recv_poll(&f, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(6, out);
    weft_bcast_recv_drop(&f);
    weft_bcast_recv_init(&f, rf, &out, NULL);           /* lag without a counter */
    for (int v = 10; v < 20; v++)
        ASSERT_OK(weft_bcast_send(b, &v));
    ASSERT_EQ(WEFT_READY, weft_bcast_recv_poll(&f, &cx, &res));
    ASSERT_EQ(-EOVERFLOW, res);
    weft_bcast_recv_drop(&f);
    weft_bcast_rx_drop(r0);
    weft_bcast_rx_drop(r3);
    weft_bcast_rx_drop(rf);
    ASSERT_CW_BALANCED(&c);
    weft_bcast_drop(b);
}

/* Close: receivers drain what they have not read (a lag still reported),
 * then -EPIPE; a waiting future is woken with -EPIPE; sends fail; the
 * receivers keep the object alive after the sender is dropped. */
TEST(bcast_close_drains_then_epipe)
{
    weft_bcast *b;
    weft_bcast_rx *ra, *rb, *rw;
    weft_bcast_recv f;
    cwaker c = { 0 };
    CX(cx, &c);
    int out = 0, res;
    uint64_t missed = 0;

    ASSERT_OK(weft_bcast_new(&b, sizeof(int), 2));
    ASSERT_OK(weft_bcast_rx_new(&ra, b));
    ASSERT_OK(weft_bcast_rx_new(&rb, b));
    ASSERT_OK(weft_bcast_rx_new(&rw, b));
    weft_bcast_recv_init(&f, rw, &out, &missed);
    ASSERT_EQ(WEFT_PENDING, weft_bcast_recv_poll(&f, &cx, &res));
    for (int v = 0; v < 2; v++)
        ASSERT_OK(weft_bcast_send(b, &v));
    ASSERT_EQ(WEFT_READY, weft_bcast_recv_poll(&f, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(0, out);
    weft_bcast_recv_drop(&f);
    ASSERT_OK(weft_bcast_try_recv(rw, &out, &missed));
    ASSERT_EQ(1, out);
    weft_bcast_recv_init(&f, rw, &out, &missed);
    ASSERT_EQ(WEFT_PENDING, weft_bcast_recv_poll(&f, &cx, &res));
    ASSERT_OK(weft_bcast_try_recv(rb, &out, &missed));  /* rb read 0 */
    for (int v = 2; v < 5; v++)                         /* ring keeps 3, 4 */
        ASSERT_OK(weft_bcast_send(b, &v));
    weft_bcast_drop(b);                                 /* closes */
    ASSERT_EQ(-EOVERFLOW, weft_bcast_try_recv(ra, &out, &missed));
    ASSERT_EQ(3, missed);
    ASSERT_EQ(-EOVERFLOW, weft_bcast_try_recv(rb, &out, &missed));
    ASSERT_EQ(2, missed);
    for (int v = 3; v < 5; v++) {
        ASSERT_OK(weft_bcast_try_recv(ra, &out, &missed));
        ASSERT_EQ(v, out);
        ASSERT_OK(weft_bcast_try_recv(rb, &out, &missed));
        ASSERT_EQ(v, out);
    }
    ASSERT_EQ(-EPIPE, weft_bcast_try_recv(ra, &out, &missed));
    ASSERT_EQ(-EPIPE, weft_bcast_try_recv(rb, &out, &missed));
    /* the waiting future was woken by the sends and by close: it drains too */
    ASSERT_EQ(WEFT_READY, weft_bcast_recv_poll(&f, &cx, &res));
    ASSERT_EQ(-EOVERFLOW, res);
    ASSERT_EQ(1, missed);
    weft_bcast_recv_drop(&f);
    for (int v = 3; v < 5; v++) {
        weft_bcast_recv_init(&f, rw, &out, &missed);
        ASSERT_EQ(WEFT_READY, weft_bcast_recv_poll(&f, &cx, &res));
        ASSERT_OK(res);
        ASSERT_EQ(v, out);
        weft_bcast_recv_drop(&f);
    }
    weft_bcast_recv_init(&f, rw, &out, &missed);
    ASSERT_EQ(WEFT_READY, weft_bcast_recv_poll(&f, &cx, &res));
    ASSERT_EQ(-EPIPE, res);
    weft_bcast_recv_drop(&f);
    weft_bcast_rx_drop(ra);
    weft_bcast_rx_drop(rb);
    weft_bcast_rx_drop(rw);
    ASSERT_CW_BALANCED(&c);
}

/* A pending close wakes every waiter (more than one wake batch). */
TEST(bcast_close_wakes_every_waiter)
{
    enum { N = 40 };
    weft_bcast *b;
    weft_bcast_rx *rx[N];
    weft_bcast_recv f[N];
    cwaker c = { 0 };
    CX(cx, &c);
    int out[N], res;

    ASSERT_OK(weft_bcast_new(&b, sizeof(int), 1));
    for (int i = 0; i < N; i++) {
        ASSERT_OK(weft_bcast_rx_new(&rx[i], b));
        weft_bcast_recv_init(&f[i], rx[i], &out[i], NULL);
        ASSERT_EQ(WEFT_PENDING, weft_bcast_recv_poll(&f[i], &cx, &res));
    }
    weft_bcast_close(b);
    weft_bcast_close(b);
    ASSERT_EQ(N, cw_wakes(&c));
    ASSERT_EQ(-EPIPE, weft_bcast_send(b, &res));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(WEFT_READY, weft_bcast_recv_poll(&f[i], &cx, &res));
        ASSERT_EQ(-EPIPE, res);
        weft_bcast_recv_drop(&f[i]);
        weft_bcast_rx_drop(rx[i]);
    }
    ASSERT_CW_BALANCED(&c);
    weft_bcast_drop(b);
}

/* Dropped in every state (never polled, pending, woken not polled): the
 * receiver's position does not move; the next receive gets the message. */
TEST(bcast_recv_dropped_in_every_state_loses_nothing)
{
    enum { N = 40 };
    weft_bcast *b;
    weft_bcast_rx *rx[N];
    weft_bcast_recv f[N];
    cwaker c = { 0 };
    CX(cx, &c);
    int out[N], res, v = 42;

    ASSERT_OK(weft_bcast_new(&b, sizeof(int), 2));
    for (int i = 0; i < N; i++) {
        ASSERT_OK(weft_bcast_rx_new(&rx[i], b));
        weft_bcast_recv_init(&f[i], rx[i], &out[i], NULL);
        if (i % 3 != 0)
            ASSERT_EQ(WEFT_PENDING, weft_bcast_recv_poll(&f[i], &cx, &res));
    }
    for (int i = 0; i < N; i += 6)
        weft_bcast_recv_drop(&f[i]);                    /* never polled */
    for (int i = 1; i < N; i += 6)
        weft_bcast_recv_drop(&f[i]);                    /* pending */
    ASSERT_OK(weft_bcast_send(b, &v));
    ASSERT_EQ(N - (N + 2) / 3 - (N + 4) / 6, cw_wakes(&c));
    for (int i = 2; i < N; i += 6)
        weft_bcast_recv_drop(&f[i]);                    /* woken, not polled */
    for (int i = 0; i < N; i++) {
        weft_bcast_recv_drop(&f[i]);
        out[i] = 0;
        weft_bcast_recv_init(&f[i], rx[i], &out[i], NULL);
        ASSERT_EQ(WEFT_READY, weft_bcast_recv_poll(&f[i], &cx, &res));
        ASSERT_OK(res);
        ASSERT_EQ(42, out[i]);
        weft_bcast_recv_drop(&f[i]);
        weft_bcast_rx_drop(rx[i]);
    }
    ASSERT_CW_BALANCED(&c);
    weft_bcast_drop(b);
}

/* ---- N receiver tasks x M messages from a plain thread ------------------------------ */
#define NRX 8

struct bc_shared {
    weft_bcast *b;
    unsigned m;
    atomic_int fail, done;
    atomic_llong lagged, received;
};

static void *bc_sender(void *arg)
{
    struct bc_shared *sh = arg;

    for (unsigned i = 0; i < sh->m; i++) {
        if (weft_bcast_send(sh->b, &i) != 0)
            atomic_fetch_add(&sh->fail, 1);
        if (i % 128 == 0)
            sched_yield();
    }
    weft_bcast_drop(sh->b);                             /* closes */
    return NULL;
}

typedef struct bc_reader {
    weft_async co;
    struct bc_shared *sh;
    weft_bcast_rx *rx;
    unsigned expect, v;
    uint64_t missed;
    long long lagged, received;
    int res;
    weft_bcast_recv r;
} bc_reader;

static weft_poll bc_reader_poll(bc_reader *u, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&u->co);
    for (;;) {
        weft_bcast_recv_init(&u->r, u->rx, &u->v, &u->missed);
        WEFT_AWAIT(&u->co, weft_bcast_recv_poll(&u->r, cx, &u->res));
        weft_bcast_recv_drop(&u->r);
        if (u->res == 0) {
            if (u->v != u->expect)                   /* out of order, or lost */
                atomic_fetch_add(&u->sh->fail, 1);
            u->expect++;
            u->received++;
        } else if (u->res == -EOVERFLOW) {
            if (u->missed == 0)
                atomic_fetch_add(&u->sh->fail, 1);
            u->expect += (unsigned)u->missed;        /* exactly those were lost */
            u->lagged += (long long)u->missed;
        } else {
            break;
        }
    }
    if (u->res != -EPIPE || u->expect != u->sh->m)  /* drained to the end */
        atomic_fetch_add(&u->sh->fail, 1);
    atomic_fetch_add(&u->sh->lagged, u->lagged);
    atomic_fetch_add(&u->sh->received, u->received);
    atomic_fetch_add(&u->sh->done, 1);
    WEFT_END(&u->co);
}

static void bc_reader_drop(bc_reader *u)
{
    weft_bcast_recv_drop(&u->r);
    weft_bcast_rx_drop(u->rx);
}

WEFT_DEFINE_FUTURE_VOID(bc_reader, bc_reader_poll, bc_reader_drop);

static void bc_run(struct bc_shared *sh, size_t cap)
{
    weft_runtime *rt = st_runtime(2);
    pthread_t th;

    ASSERT_OK(weft_bcast_new(&sh->b, sizeof(unsigned), cap));
    for (int r = 0; r < NRX; r++) {
        bc_reader init = { .sh = sh };

        ASSERT_OK(weft_bcast_rx_new(&init.rx, sh->b));
        ASSERT_OK(weft_spawn_detached(rt, &bc_reader_future, &init));
    }
    ASSERT_EQ(0, pthread_create(&th, NULL, bc_sender, sh));
    ASSERT_OK(weft_runtime_run(rt));
    pthread_join(th, NULL);
    weft_runtime_free(rt);
    ASSERT_EQ(0, atomic_load(&sh->fail));
    ASSERT_EQ(NRX, atomic_load(&sh->done));
    ASSERT_EQ((long long)NRX * sh->m, atomic_load(&sh->received) + atomic_load(&sh->lagged));
}

/* A ring as large as the stream: nobody lags, every receiver gets exactly
 * 0..M-1 in order, then -EPIPE. */
TEST(bcast_tasks_exact_sequence)
{
    struct bc_shared sh;

    memset(&sh, 0, sizeof(sh));
    sh.m = (unsigned)harness_scale(50000);
    bc_run(&sh, sh.m);
    ASSERT_EQ(0, atomic_load(&sh.lagged));
    ASSERT_EQ((long long)NRX * sh.m, atomic_load(&sh.received));
}

/* A ring of 8 and a fast sender: receivers lag, and every message is
 * accounted for exactly once (received, or counted as missed). */
TEST(bcast_tasks_lag_accounting_exact)
{
    struct bc_shared sh;

    memset(&sh, 0, sizeof(sh));
    sh.m = (unsigned)harness_scale(200000);
    bc_run(&sh, 8);
    printf("%lld received, %lld missed\n", atomic_load(&sh.received), atomic_load(&sh.lagged));
}

TEST(bcast_misuse_and_alloc_fault)
{
    weft_bcast *b = NULL;
    weft_bcast_rx *rx = NULL;
    weft_bcast_recv f;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int v = 0, res = 0;

    ASSERT_EQ(-EINVAL, weft_bcast_new(NULL, sizeof(int), 4));
    ASSERT_EQ(-EINVAL, weft_bcast_new(&b, 0, 4));
    ASSERT_EQ(-EINVAL, weft_bcast_new(&b, sizeof(int), 0));
    ASSERT_EQ(-EINVAL, weft_bcast_new(&b, SIZE_MAX / 2, 4));
    ASSERT(b == NULL);
    ASSERT_EQ(-EINVAL, weft_bcast_send(NULL, &v));
    ASSERT_EQ(-EINVAL, weft_bcast_rx_new(&rx, NULL));
    ASSERT_EQ(-EINVAL, weft_bcast_try_recv(NULL, &v, NULL));
    weft_bcast_close(NULL);
    weft_bcast_drop(NULL);
    weft_bcast_rx_drop(NULL);
    weft_bcast_recv_init(&f, NULL, &v, NULL);
    ASSERT_EQ(WEFT_READY, weft_bcast_recv_poll(&f, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_bcast_recv_drop(&f);
    ASSERT_OK(weft_bcast_new(&b, sizeof(int), 4));
    ASSERT_EQ(-EINVAL, weft_bcast_send(b, NULL));
    ASSERT_EQ(-EINVAL, weft_bcast_rx_new(NULL, b));
    ASSERT_OK(weft_bcast_rx_new(&rx, b));
    ASSERT_EQ(-EINVAL, weft_bcast_try_recv(rx, NULL, NULL));
    res = 0;
    weft_bcast_recv_init(&f, rx, NULL, NULL);
    ASSERT_EQ(WEFT_READY, weft_bcast_recv_poll(&f, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_bcast_recv_drop(&f);
    weft_bcast_rx_drop(rx);
    rx = NULL;
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_bcast_rx_new(&rx, b));
    ASSERT(rx == NULL);
    harness_fail_alloc_at(0);
    weft_bcast_drop(b);
    b = NULL;
    ASSERT_EQ(0, harness_live());
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_bcast_new(&b, sizeof(int), 4));
    ASSERT(b == NULL);
    ASSERT_EQ(0, harness_live());
    harness_fail_alloc_at(0);
}
