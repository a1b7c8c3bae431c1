// SPDX-License-Identifier: MIT
/* Audit 7 of weft/coro.h, edges of single calls: a biased weft_co_chan_select
 * (a closed channel at index 0, the same channel twice), a lagging
 * broadcast receiver, a watch closed with a value not yet seen, deadlines
 * at the ends of time; second and third calls on one object (a join
 * handle, a oneshot, a token, a group, a barrier, a notify permit); and a
 * current-thread runtime freed with coroutines parked in it (each fn runs
 * to its end on the freeing thread). */
#include "coro_test.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 20000u

/* ---- edges of the select, watch, broadcast and deadline calls ------------------------ */
typedef struct edge_ctx {
    int bad;
} edge_ctx;

#define EXPECT_EQ(want, call)                                                 \
    do {                                                                      \
        long w_ = (long)(want), r_ = (long)(call);                            \
        if (w_ != r_) {                                                       \
            fprintf(stderr, "%s:%d: %s returned %ld, not %ld\n", __FILE__,    \
                    __LINE__, #call, r_, w_);                                 \
            e->bad++;                                                         \
        }                                                                     \
    } while (0)

static int edge_body(void *arg)
{
    edge_ctx *e = arg;
    weft_chan *ch[2];
    weft_chan *same[2];
    int d0 = 0, d1 = 0, v = 0;
    void *dsts[2] = { &d0, &d1 };
    size_t which = 99;
    weft_bcast *bc;
    weft_bcast_rx *brx;
    uint64_t missed = 0;
    weft_watch *wt;
    weft_watch_rx *wrx;

    /* biased: a closed, empty channel at index 0 beats a message at 1 */
    ASSERT_OK(weft_chan_new(&ch[0], sizeof(int), 2));
    ASSERT_OK(weft_chan_new(&ch[1], sizeof(int), 2));
    weft_chan_close(ch[0]);
    ASSERT_OK(weft_chan_try_send(ch[1], &(int){ 11 }));
    EXPECT_EQ(-EPIPE, weft_co_chan_select(ch, dsts, 2, &which));
    EXPECT_EQ(0, which);
    EXPECT_EQ(1, weft_chan_len(ch[1]));           /* the loser took nothing */
    /* the same channel twice, one message: taken once, by index 0 */
    same[0] = same[1] = ch[1];
    which = 99;
    EXPECT_EQ(0, weft_co_chan_select(same, dsts, 2, &which));
    EXPECT_EQ(0, which);
    EXPECT_EQ(11, d0);
    EXPECT_EQ(0, weft_chan_len(ch[1]));
    weft_chan_drop(ch[0]);
    weft_chan_drop(ch[1]);

    /* a lagging broadcast receiver: told once, then the oldest kept */
    ASSERT_OK(weft_bcast_new(&bc, sizeof(int), 2));
    ASSERT_OK(weft_bcast_rx_new(&brx, bc));
    for (int i = 1; i <= 5; i++)
        ASSERT_OK(weft_bcast_send(bc, &i));
    EXPECT_EQ(-EOVERFLOW, weft_co_bcast_recv(brx, &v, &missed));
    EXPECT_EQ(3, missed);
    EXPECT_EQ(0, weft_co_bcast_recv(brx, &v, &missed));
    EXPECT_EQ(4, v);
    EXPECT_EQ(0, weft_co_bcast_recv(brx, &v, NULL));
    EXPECT_EQ(5, v);
    weft_bcast_drop(bc);                          /* closed and drained */
    EXPECT_EQ(-EPIPE, weft_co_bcast_recv(brx, &v, NULL));
    weft_bcast_rx_drop(brx);

    /* a watch closed with a value not seen yet: that value first, then -EPIPE */
    ASSERT_OK(weft_watch_new(&wt, sizeof(int), &(int){ 0 }));
    ASSERT_OK(weft_watch_rx_new(&wrx, wt));
    ASSERT_OK(weft_watch_send(wt, &(int){ 8 }));
    weft_watch_drop(wt);
    EXPECT_EQ(0, weft_co_watch_changed(wrx, &v));
    EXPECT_EQ(8, v);
    EXPECT_EQ(-EPIPE, weft_co_watch_changed(wrx, &v));
    weft_watch_rx_drop(wrx);

    /* a deadline at the end of time never fires; one of 0 is none */
    weft_co_deadline_set(UINT64_MAX);
    EXPECT_EQ(0, weft_co_sleep(5));
    weft_co_deadline_set(0);
    EXPECT_EQ(0, weft_co_sleep(1));
    return 0;
}

TEST(select_watch_broadcast_and_deadline_edges)
{
    weft_runtime *rt = ct_runtime(2);
    edge_ctx e = { 0 };
    int out = -1;

    ASSERT_OK(weft_co_block_on(rt, edge_body, &e, NULL, &out));
    ASSERT_EQ(0, e.bad);
    CT_FREE(rt);
}

/* ---- second and third calls on the same object ------------------------------------- */
static int returns_21(void *arg)
{
    (void)arg;
    return 21;
}

static int twice_body(void *arg)
{
    edge_ctx *e = arg;
    weft_join *j = NULL;
    int out = 0, v = 0;
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;
    weft_cancel *tok;
    weft_group *g;
    weft_barrier *bar;
    weft_notify *nt;

    ASSERT_OK(weft_go(weft_runtime_current(), returns_21, NULL, &j));
    EXPECT_EQ(0, weft_co_join(j, &out));
    EXPECT_EQ(21, out);
    out = 0;
    EXPECT_EQ(0, weft_co_join(j, &out));           /* the handle stays valid */
    EXPECT_EQ(21, out);
    weft_join_drop(j);

    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    ASSERT_OK(weft_oneshot_send(tx, &(int){ 4 }));
    EXPECT_EQ(0, weft_co_oneshot_recv(rx, &v));
    EXPECT_EQ(4, v);
    EXPECT_EQ(-EPIPE, weft_co_oneshot_recv(rx, &v));   /* taken, sender gone */
    weft_oneshot_rx_drop(rx);

    ASSERT_OK(weft_cancel_new(&tok));
    weft_cancel_cancel(tok);
    EXPECT_EQ(0, weft_co_cancel_wait(tok));
    EXPECT_EQ(0, weft_co_cancel_wait(tok));
    weft_cancel_drop(tok);

    ASSERT_OK(weft_group_new(&g, weft_runtime_current(), WEFT_GROUP_WAIT_ALL));
    EXPECT_EQ(0, weft_co_group_wait(g));           /* empty: at once */
    ASSERT_OK(weft_go_group(g, returns_21, NULL, NULL));
    EXPECT_EQ(0, weft_co_group_wait(g));
    EXPECT_EQ(0, weft_co_group_wait(g));
    ASSERT_OK(weft_group_free(g));

    ASSERT_OK(weft_barrier_new(&bar, 1));
    for (int i = 0; i < 3; i++)                    /* one party: leads each round */
        EXPECT_EQ(WEFT_BARRIER_LEADER, weft_co_barrier_wait(bar));
    weft_barrier_free(bar);

    ASSERT_OK(weft_notify_new(&nt));
    weft_notify_one(nt);
    weft_notify_one(nt);                           /* one permit, not two */
    EXPECT_EQ(0, weft_co_notify_wait(nt));
    weft_co_deadline_set(weft_now_ms() + 20);
    EXPECT_EQ(-ETIMEDOUT, weft_co_notify_wait(nt));
    weft_co_deadline_set(0);
    weft_notify_free(nt);
    return 0;
}

TEST(second_and_third_calls)
{
    weft_runtime *rt = ct_runtime(2);
    edge_ctx e = { 0 };
    int out = -1;

    ASSERT_OK(weft_co_block_on(rt, twice_body, &e, NULL, &out));
    ASSERT_EQ(0, e.bad);
    CT_FREE(rt);
}

/* ---- a current-thread runtime freed with coroutines parked in it --------------------- */
static atomic_int ct_ended, ct_hold;

static void *ct_held(void *arg)
{
    uint64_t until = weft_now_ms() + WAIT_MS;

    while (!atomic_load(&ct_hold) && weft_now_ms() < until)
        usleep(1000);
    return arg;
}

static int ct_parker(void *arg)
{
    int kind = (int)(intptr_t)arg, r = 0, v;
    static weft_chan *ch;

    switch (kind) {
    case 0:
        r = weft_co_sleep(10u * 60 * 1000);
        break;
    case 1:
        if (weft_chan_new(&ch, sizeof(int), 1) < 0)
            return -1;
        r = weft_co_chan_recv(ch, &v);
        weft_chan_drop(ch);
        break;
    case 2:
        r = weft_co_blocking(NULL, ct_held, NULL, NULL);
        break;
    }
    if (r == -ECANCELED && weft_co_sleep(1) == -ECANCELED && weft_co_cancelled())
        atomic_fetch_add(&ct_ended, 1);
    return r;
}

TEST(current_thread_runtime_freed_with_coroutines_parked)
{
    weft_runtime *rt = ct_current_thread();
    weft_sleep s;
    uint64_t until;

    atomic_store(&ct_ended, 0);
    atomic_store(&ct_hold, 0);
    for (int k = 0; k < 3; k++)
        ASSERT_OK(weft_go_detached(rt, ct_parker, (void *)(intptr_t)k));
    weft_sleep_init(&s, 30);                       /* drive it: they all park */
    ASSERT_OK(weft_block_on(rt, &weft_sleep_future, &s, NULL));
    ASSERT_EQ(0, atomic_load(&ct_ended));
    CT_FREE(rt);                                   /* each fn ends on this thread */
    ASSERT_EQ(3, atomic_load(&ct_ended));
    atomic_store(&ct_hold, 1);                     /* the detached job ends later */
    until = weft_now_ms() + WAIT_MS;
    while (harness_count_threads("weft-b") > 0) {
        ASSERT(weft_now_ms() < until);
        usleep(1000);
    }
}

/* ---- abort and shutdown while parked with a deadline set ----------------------------
 * A deadline registers a sleep of its own on the coroutine's stack (in the
 * timer wheel) while the call waits; an abort or a shutdown must take it
 * out again (ASan: no use of the freed wheel, nothing left). */
static atomic_int dl_ended, dl_parked;

static int parked_with_deadline(void *arg)
{
    weft_chan *ch = arg;
    int v, r;

    weft_co_deadline_set(weft_now_ms() + 10u * 60 * 1000);
    atomic_fetch_add(&dl_parked, 1);
    r = ch ? weft_co_chan_recv(ch, &v) : weft_co_sleep(20u * 60 * 1000);
    if (r == -ECANCELED && weft_co_sleep(1) == -ECANCELED)
        atomic_fetch_add(&dl_ended, 1);
    return r;
}

static void deadline_then(int how)
{
    weft_runtime *rt = how == 2 ? ct_current_thread() : ct_runtime(2);
    weft_chan *ch = NULL;
    weft_join *j[4];
    uint64_t until = weft_now_ms() + WAIT_MS;
    int out;

    atomic_store(&dl_ended, 0);
    atomic_store(&dl_parked, 0);
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(weft_go(rt, parked_with_deadline, i % 2 ? ch : NULL, &j[i]));
    if (how == 2) {
        weft_sleep s;

        weft_sleep_init(&s, 20);
        ASSERT_OK(weft_block_on(rt, &weft_sleep_future, &s, NULL));
    }
    while (atomic_load(&dl_parked) < 4) {
        ASSERT(weft_now_ms() < until);
        usleep(1000);
    }
    usleep(10000);
    if (how == 0) {
        for (int i = 0; i < 4; i++)
            weft_join_abort(j[i]);
        for (int i = 0; i < 4; i++)
            ASSERT_EQ(-ECANCELED, weft_join_wait(j[i], &out));
    } else {
        ASSERT_OK(weft_runtime_shutdown(rt));
        for (int i = 0; i < 4; i++)
            ASSERT_EQ(-ECANCELED, weft_join_try(j[i], &out));
    }
    ASSERT_EQ(4, atomic_load(&dl_ended));
    for (int i = 0; i < 4; i++)
        weft_join_drop(j[i]);
    weft_chan_drop(ch);
    CT_FREE(rt);
}

TEST(abort_while_parked_with_a_deadline)
{
    deadline_then(0);
}

TEST(shutdown_while_parked_with_a_deadline)
{
    deadline_then(1);
}

TEST(current_thread_shutdown_while_parked_with_a_deadline)
{
    deadline_then(2);
}

/* ---- weft_co_await with a NULL future or a NULL out ----------------------------------
 * coro.h: a NULL future is -EINVAL, nothing dropped; a NULL `out` is room of
 * weft's, the output thrown away -- never a crash from a future that
 * writes its output through `out` as given (a small output and one past
 * the 64 bytes kept on the stack, which are allocated). */
typedef struct writes_int { int polls; } writes_int;
static atomic_int wi_drops;
static weft_poll writes_int_poll(writes_int *f, weft_context *cx, int *out)
{
    (void)cx;
    f->polls++;
    *out = 5;
    return WEFT_READY;
}
static void writes_int_drop(writes_int *f)
{
    (void)f;
    atomic_fetch_add(&wi_drops, 1);
}
WEFT_DEFINE_FUTURE_STATIC(writes_int, writes_int_poll, writes_int_drop, int);

typedef struct big_out { char bytes[300]; } big_out;
typedef struct writes_big { int polls; } writes_big;
static weft_poll writes_big_poll(writes_big *f, weft_context *cx, big_out *out)
{
    (void)cx;
    f->polls++;
    memset(out->bytes, 0x5a, sizeof(out->bytes));
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_STATIC(writes_big, writes_big_poll, NULL, big_out);

static int null_out_body(void *arg)
{
    edge_ctx *e = arg;
    writes_int f = { 0 };
    writes_big g = { 0 };
    int out = 0;

    atomic_store(&wi_drops, 0);
    EXPECT_EQ(-EINVAL, weft_co_await(&writes_int_future, NULL, &out));
    EXPECT_EQ(-EINVAL, weft_co_await_timeout(&writes_int_future, NULL, &out, 1000));
    EXPECT_EQ(0, atomic_load(&wi_drops));         /* nothing to drop */
    EXPECT_EQ(0, weft_co_await(&writes_int_future, &f, NULL));
    EXPECT_EQ(0, weft_co_await_timeout(&writes_int_future, &f, NULL, 1000));
    EXPECT_EQ(2, f.polls);
    EXPECT_EQ(2, atomic_load(&wi_drops));
    EXPECT_EQ(0, weft_co_await(&writes_big_future, &g, NULL));
    EXPECT_EQ(0, weft_co_await_timeout(&writes_big_future, &g, NULL, 1000));
    EXPECT_EQ(2, g.polls);
    return 0;
}

TEST(await_with_a_null_future_or_out)
{
    weft_runtime *rt = ct_runtime(1);
    edge_ctx e = { 0 };
    int out = -1;

    ASSERT_OK(weft_co_block_on(rt, null_out_body, &e, NULL, &out));
    ASSERT_EQ(0, e.bad);
    CT_FREE(rt);
}

/* ---- shutdown while coroutines yield in a loop ---------------------------------------
 * A yield parks only for a moment (the task is queued again at once); a
 * runtime shut down meanwhile still cancels each: its yield returns
 * -ECANCELED, every later call too, and fn returns. */
static atomic_int y_started, y_done, y_first, y_later;

static int yield_loop(void *arg)
{
    int err;

    (void)arg;
    atomic_fetch_add(&y_started, 1);
    while ((err = weft_co_yield()) == 0)
        ;
    atomic_store(&y_first, err);
    atomic_store(&y_later, weft_co_sleep(1) == -ECANCELED ? weft_co_yield() : -1);
    atomic_fetch_add(&y_done, 1);
    return 0;
}

TEST(shutdown_while_coroutines_yield)
{
    weft_runtime *rt = ct_runtime(2);
    enum { K = 6 };
    weft_join *j[K];
    uint64_t until = weft_now_ms() + WAIT_MS;
    int out;

    atomic_store(&y_started, 0);
    atomic_store(&y_done, 0);
    for (int i = 0; i < K; i++)
        ASSERT_OK(weft_go(rt, yield_loop, NULL, &j[i]));
    while (atomic_load(&y_started) < K) {
        ASSERT(weft_now_ms() < until);
        usleep(1000);
    }
    usleep(5000);
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(K, atomic_load(&y_done));
    ASSERT_EQ(-ECANCELED, atomic_load(&y_first));
    ASSERT_EQ(-ECANCELED, atomic_load(&y_later));
    for (int i = 0; i < K; i++) {
        ASSERT_EQ(-ECANCELED, weft_join_try(j[i], &out));
        weft_join_drop(j[i]);
    }
    CT_FREE(rt);
}

/* ---- allocations that fail inside a coroutine's calls --------------------------------
 * weft_co_chan_select over more than 8 channels allocates its futures, and
 * weft_co_await with a NULL `out` for an output past 64 bytes allocates
 * room for it: when that allocation fails, -ENOMEM, nothing received,
 * *which untouched, the future dropped unpolled; the next call works. */
static atomic_int big_drops;
typedef struct big_drop { int polls; } big_drop;
static weft_poll big_drop_poll(big_drop *f, weft_context *cx, big_out *out)
{
    (void)cx;
    f->polls++;
    memset(out->bytes, 1, sizeof(out->bytes));
    return WEFT_READY;
}
static void big_drop_drop(big_drop *f)
{
    (void)f;
    atomic_fetch_add(&big_drops, 1);
}
WEFT_DEFINE_FUTURE_STATIC(big_drop, big_drop_poll, big_drop_drop, big_out);

static int alloc_body(void *arg)
{
    edge_ctx *e = arg;
    weft_chan *ch[10];
    int d[10];
    void *dsts[10];
    size_t which = 99;
    big_drop b = { 0 };

    for (int i = 0; i < 10; i++) {
        ASSERT_OK(weft_chan_new(&ch[i], sizeof(int), 1));
        ASSERT_OK(weft_chan_try_send(ch[i], &i));
        dsts[i] = &d[i];
    }
    atomic_store(&big_drops, 0);
    harness_fail_alloc_at(1);
    EXPECT_EQ(-ENOMEM, weft_co_chan_select(ch, dsts, 10, &which));
    harness_fail_alloc_at(1);
    EXPECT_EQ(-ENOMEM, weft_co_await(&big_drop_future, &b, NULL));
    harness_fail_alloc_at(0);
    EXPECT_EQ(99, which);
    EXPECT_EQ(0, b.polls);
    EXPECT_EQ(1, atomic_load(&big_drops));
    for (int i = 0; i < 10; i++)
        EXPECT_EQ(1, weft_chan_len(ch[i]));
    /* every channel is ready: the lowest index wins, except under
     * WEFT_STRESS, whose refusals make a ready receive wait a round */
    EXPECT_EQ(0, weft_co_chan_select(ch, dsts, 10, &which));
    if (!harness_stress())
        EXPECT_EQ(0, which);
    if (which < 10) {
        EXPECT_EQ((long)which, d[which]);
        EXPECT_EQ(0, weft_chan_len(ch[which]));
    } else {
        e->bad++;
    }
    EXPECT_EQ(0, weft_co_await(&big_drop_future, &b, NULL));
    EXPECT_EQ(1, b.polls);
    for (int i = 0; i < 10; i++)
        weft_chan_drop(ch[i]);
    return 0;
}

TEST(allocation_failures_in_calls)
{
    weft_runtime *rt = ct_runtime(1);
    edge_ctx e = { 0 };
    int out = -1;

    ASSERT_OK(weft_co_block_on(rt, alloc_body, &e, NULL, &out));
    ASSERT_EQ(0, e.bad);
    CT_FREE(rt);
}
