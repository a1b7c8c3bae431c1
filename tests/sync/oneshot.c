/* SPDX-License-Identifier: MIT */
/* Oneshot: send/receive by hand and across tasks, sender or receiver gone,
 * dropping the receive future in every state, misuse, allocation faults. */
#include "sync_test.h"

TEST(oneshot_send_then_recv)
{
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;
    weft_oneshot_recv r;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int v = 0, res = 1;

    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    ASSERT(!weft_oneshot_tx_is_closed(tx));
    ASSERT_OK(weft_oneshot_send(tx, &(int){ 42 }));
    weft_oneshot_recv_init(&r, rx, &v);
    ASSERT_EQ(WEFT_READY, weft_oneshot_recv_poll(&r, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(42, v);
    v = 0;                                          /* again: same answer, dst untouched */
    ASSERT_EQ(WEFT_READY, weft_oneshot_recv_poll(&r, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(0, v);
    weft_oneshot_recv_drop(&r);
    weft_oneshot_recv_drop(&r);                     /* idempotent */
    ASSERT_EQ(-EPIPE, weft_oneshot_try_recv(rx, &v)); /* taken already */
    weft_oneshot_rx_drop(rx);
}

TEST(oneshot_pending_then_send_wakes)
{
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;
    weft_oneshot_recv r;
    cwaker c = { 0 };
    weft_waker w = cw_waker(&c);
    weft_context cx = weft_context_from_waker(&w);
    int v = 0, res = 1;

    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    ASSERT_EQ(-EAGAIN, weft_oneshot_try_recv(rx, &v));
    weft_oneshot_recv_init(&r, rx, &v);
    ASSERT_EQ(WEFT_PENDING, weft_oneshot_recv_poll(&r, &cx, &res));
    ASSERT_EQ(WEFT_PENDING, weft_oneshot_recv_poll(&r, &cx, &res));
    ASSERT_EQ(0, cw_wakes(&c));
    ASSERT_OK(weft_oneshot_send(tx, &(int){ 7 }));
    ASSERT_EQ(1, cw_wakes(&c));
    ASSERT_EQ(WEFT_READY, weft_oneshot_recv_poll(&r, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(7, v);
    weft_oneshot_recv_drop(&r);
    weft_oneshot_rx_drop(rx);
    ASSERT_CW_BALANCED(&c);
}

TEST(oneshot_sender_dropped_gives_epipe)
{
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;
    weft_oneshot_recv r;
    cwaker c = { 0 };
    weft_waker w = cw_waker(&c);
    weft_context cx = weft_context_from_waker(&w);
    int v = 0, res = 1;

    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    weft_oneshot_recv_init(&r, rx, &v);
    ASSERT_EQ(WEFT_PENDING, weft_oneshot_recv_poll(&r, &cx, &res));
    weft_oneshot_tx_drop(tx);
    ASSERT_EQ(1, cw_wakes(&c));
    ASSERT_EQ(WEFT_READY, weft_oneshot_recv_poll(&r, &cx, &res));
    ASSERT_EQ(-EPIPE, res);
    weft_oneshot_recv_drop(&r);
    ASSERT_EQ(-EPIPE, weft_oneshot_try_recv(rx, &v));
    weft_oneshot_rx_drop(rx);
    ASSERT_CW_BALANCED(&c);
}

TEST(oneshot_receiver_dropped_send_epipe)
{
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;

    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    weft_oneshot_rx_drop(rx);
    ASSERT(weft_oneshot_tx_is_closed(tx));
    ASSERT_EQ(-EPIPE, weft_oneshot_send(tx, &(int){ 1 }));
}

/* A receive dropped while pending loses nothing: the value arrives later and
 * the next receive gets it; the dropped one's waker is released, not woken. */
TEST(oneshot_recv_dropped_pending_loses_nothing)
{
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;
    weft_oneshot_recv r;
    cwaker c = { 0 };
    weft_waker w = cw_waker(&c);
    weft_context cx = weft_context_from_waker(&w);
    int v = 0, res = 1;

    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    weft_oneshot_recv_init(&r, rx, &v);
    weft_oneshot_recv_drop(&r);                     /* never polled */
    weft_oneshot_recv_init(&r, rx, &v);
    ASSERT_EQ(WEFT_PENDING, weft_oneshot_recv_poll(&r, &cx, &res));
    weft_oneshot_recv_drop(&r);                     /* pending */
    ASSERT_CW_BALANCED(&c);
    ASSERT_OK(weft_oneshot_send(tx, &(int){ 9 }));
    ASSERT_EQ(0, cw_wakes(&c));
    weft_oneshot_recv_init(&r, rx, &v);
    ASSERT_EQ(WEFT_READY, weft_oneshot_recv_poll(&r, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(9, v);
    weft_oneshot_recv_drop(&r);
    weft_oneshot_rx_drop(rx);
}

/* Woken but not polled again, then dropped: the value stays for try_recv. */
TEST(oneshot_recv_dropped_woken_loses_nothing)
{
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;
    weft_oneshot_recv r;
    cwaker c = { 0 };
    weft_waker w = cw_waker(&c);
    weft_context cx = weft_context_from_waker(&w);
    int v = 0, res = 1;

    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    weft_oneshot_recv_init(&r, rx, &v);
    ASSERT_EQ(WEFT_PENDING, weft_oneshot_recv_poll(&r, &cx, &res));
    ASSERT_OK(weft_oneshot_send(tx, &(int){ 5 }));
    ASSERT_EQ(1, cw_wakes(&c));
    weft_oneshot_recv_drop(&r);
    ASSERT_OK(weft_oneshot_try_recv(rx, &v));
    ASSERT_EQ(5, v);
    weft_oneshot_rx_drop(rx);
    ASSERT_CW_BALANCED(&c);
}

/* Zero-size oneshot: a bare completion signal. */
TEST(oneshot_zero_size_signal)
{
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;

    ASSERT_OK(weft_oneshot_new(&tx, &rx, 0));
    ASSERT_EQ(-EAGAIN, weft_oneshot_try_recv(rx, NULL));
    ASSERT_OK(weft_oneshot_send(tx, NULL));
    ASSERT_OK(weft_oneshot_try_recv(rx, NULL));
    weft_oneshot_rx_drop(rx);
}

/* Across threads: a task awaits the value a plain thread sends. */
typedef struct os_waiter {
    weft_async co;
    weft_oneshot_rx *rx;
    weft_oneshot_recv r;
    int v, res;
} os_waiter;

static atomic_int os_polled;

static weft_poll os_waiter_poll(os_waiter *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    weft_oneshot_recv_init(&f->r, f->rx, &f->v);
    atomic_store(&os_polled, 1);
    WEFT_AWAIT(&f->co, weft_oneshot_recv_poll(&f->r, cx, &f->res));
    *(int *)out = f->res == 0 ? f->v : f->res;
    WEFT_END(&f->co);
}

static void os_waiter_drop(os_waiter *f)
{
    weft_oneshot_recv_drop(&f->r);
    weft_oneshot_rx_drop(f->rx);
}

WEFT_DEFINE_FUTURE(os_waiter, os_waiter_poll, os_waiter_drop, int);

TEST(oneshot_across_tasks)
{
    weft_runtime *rt = st_runtime(2);
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;
    weft_join *j;
    int out = 0;

    for (int round = 0; round < 2; round++) {
        atomic_store(&os_polled, 0);
        ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
        ASSERT_OK(weft_spawn(rt, &os_waiter_future, &(os_waiter){ .rx = rx }, &j));
        ST_WAIT_UNTIL(atomic_load(&os_polled));
        if (round == 0)
            ASSERT_OK(weft_oneshot_send(tx, &(int){ 1234 }));
        else
            weft_oneshot_tx_drop(tx);
        ASSERT_OK(weft_join_wait(j, &out));
        ASSERT_EQ(round == 0 ? 1234 : -EPIPE, out);
        weft_join_drop(j);
    }
    weft_runtime_free(rt);
}

TEST(oneshot_misuse)
{
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;
    weft_oneshot_recv r;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = 0, v;

    ASSERT_EQ(-EINVAL, weft_oneshot_new(NULL, &rx, 4));
    ASSERT_EQ(-EINVAL, weft_oneshot_new(&tx, NULL, 4));
    ASSERT_EQ(-EINVAL, weft_oneshot_new(&tx, &rx, WEFT_FUTURE_MAX_SIZE + 1));
    ASSERT_EQ(-EINVAL, weft_oneshot_send(NULL, &v));
    ASSERT_EQ(-EINVAL, weft_oneshot_try_recv(NULL, &v));
    weft_oneshot_tx_drop(NULL);
    weft_oneshot_rx_drop(NULL);
    ASSERT(!weft_oneshot_tx_is_closed(NULL));
    weft_oneshot_recv_init(&r, NULL, &v);
    ASSERT_EQ(WEFT_READY, weft_oneshot_recv_poll(&r, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_oneshot_recv_drop(&r);
    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    ASSERT_EQ(-EINVAL, weft_oneshot_try_recv(rx, NULL));
    ASSERT_EQ(-EINVAL, weft_oneshot_send(tx, NULL)); /* sender released anyway */
    ASSERT_EQ(-EPIPE, weft_oneshot_try_recv(rx, &v));
    weft_oneshot_rx_drop(rx);
}

TEST(oneshot_alloc_fault)
{
    weft_oneshot_tx *tx = NULL;
    weft_oneshot_rx *rx = NULL;

    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_oneshot_new(&tx, &rx, 16));
    ASSERT(tx == NULL && rx == NULL);
    ASSERT_EQ(0, harness_live());
    harness_fail_alloc_at(0);
    ASSERT_OK(weft_oneshot_new(&tx, &rx, 16));
    weft_oneshot_tx_drop(tx);
    weft_oneshot_rx_drop(rx);
}
