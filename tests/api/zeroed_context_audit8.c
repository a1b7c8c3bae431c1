/* SPDX-License-Identifier: MIT */
/* Audit 8: a zeroed weft_context (no waker) handed to the futures of
 * weft/lock.h, weft/chan.h and weft/group.h, and to weft_yield_poll().
 * Every one of them that would park dereferenced the missing waker
 * (SIGSEGV); weft_join_poll() alone answered -EINVAL. Now each answers
 * READY with -EINVAL and changes nothing: the same future then works with
 * a proper context. */
#include "../sync/sync_test.h"
#include <string.h>

#include "weft/group.h"

/* Poll `f` (a future of type `ty` set up to wait) with a zeroed context
 * and with a NULL one: READY, -EINVAL, nothing changed; then with a real
 * waker: still pending (it was never consumed). Drops it. */
static void check_bad_cx(const weft_future_type *ty, void *f, cwaker *c)
{
    weft_context zero;
    weft_waker wk = cw_waker(c);
    weft_context cx = weft_context_from_waker(&wk);
    int res;

    memset(&zero, 0, sizeof(zero));
    res = 1;
    ASSERT_EQ(WEFT_READY, ty->poll(f, &zero, &res));
    ASSERT_EQ(-EINVAL, res);
    res = 1;
    ASSERT_EQ(WEFT_READY, ty->poll(f, NULL, &res));
    ASSERT_EQ(-EINVAL, res);
    if (ty->poll(f, &cx, &res) != WEFT_PENDING)
        harness_fail(__FILE__, __LINE__, "%s: no longer waiting after a bad context",
                     ty->name);
    /* and once more without a waker, now that it is parked */
    res = 1;
    ASSERT_EQ(WEFT_READY, ty->poll(f, &zero, &res));
    ASSERT_EQ(-EINVAL, res);
    ty->drop(f);
    ASSERT_CW_BALANCED(c);
}

TEST(zeroed_context_is_einval_for_every_sync_future)
{
    weft_runtime *rt = st_runtime(1);
    cwaker c = { 0 };
    int d = 0;
    weft_chan *ch, *full;
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;
    weft_notify *n;
    weft_sem *s;
    weft_mutex *m;
    weft_rwlock *rw;
    weft_barrier *b;
    weft_cancel *t;
    weft_watch *w;
    weft_watch_rx *wrx;
    weft_bcast *bc;
    weft_bcast_rx *brx;
    weft_group *g;

    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .mask = WEFT_LINTS_OFF }));
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    ASSERT_OK(weft_chan_new(&full, sizeof(int), 1));
    ASSERT_OK(weft_chan_try_send(full, &d));
    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    ASSERT_OK(weft_notify_new(&n));
    ASSERT_OK(weft_sem_new(&s, 0));
    ASSERT_OK(weft_mutex_new(&m));
    ASSERT_OK(weft_mutex_try_lock(m));
    ASSERT_OK(weft_rwlock_new(&rw));
    ASSERT_OK(weft_rwlock_try_write(rw));
    ASSERT_OK(weft_barrier_new(&b, 2));
    ASSERT_OK(weft_cancel_new(&t));
    ASSERT_OK(weft_watch_new(&w, sizeof(int), &d));
    ASSERT_OK(weft_watch_rx_new(&wrx, w));
    ASSERT_OK(weft_bcast_new(&bc, sizeof(int), 1));
    ASSERT_OK(weft_bcast_rx_new(&brx, bc));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));

    {
        weft_chan_recv f;

        weft_chan_recv_init(&f, ch, &d);
        check_bad_cx(&weft_chan_recv_future, &f, &c);
    }
    {
        weft_chan_send f;

        weft_chan_send_init(&f, full, &d);
        check_bad_cx(&weft_chan_send_future, &f, &c);
    }
    {
        weft_oneshot_recv f;

        weft_oneshot_recv_init(&f, rx, &d);
        check_bad_cx(&weft_oneshot_recv_future, &f, &c);
    }
    {
        weft_notify_wait f;

        weft_notify_wait_init(&f, n);
        check_bad_cx(&weft_notify_wait_future, &f, &c);
    }
    {
        weft_sem_acquire f;

        weft_sem_acquire_init(&f, s, 1);
        check_bad_cx(&weft_sem_acquire_future, &f, &c);
    }
    {
        weft_mutex_lock f;

        weft_mutex_lock_init(&f, m);
        check_bad_cx(&weft_mutex_lock_future, &f, &c);
    }
    {
        weft_rwlock_read f;

        weft_rwlock_read_init(&f, rw);
        check_bad_cx(&weft_rwlock_read_future, &f, &c);
    }
    {
        weft_rwlock_write f;

        weft_rwlock_write_init(&f, rw);
        check_bad_cx(&weft_rwlock_write_future, &f, &c);
    }
    {
        weft_barrier_wait f;

        weft_barrier_wait_init(&f, b);
        check_bad_cx(&weft_barrier_wait_future, &f, &c);
        ASSERT_EQ(0, weft_barrier_waiting(b));     /* the bad polls never arrived */
    }
    {
        weft_cancel_wait f;

        weft_cancel_wait_init(&f, t);
        check_bad_cx(&weft_cancel_wait_future, &f, &c);
    }
    {
        weft_watch_changed f;

        weft_watch_changed_init(&f, wrx, &d);
        check_bad_cx(&weft_watch_changed_future, &f, &c);
    }
    {
        weft_bcast_recv f;

        weft_bcast_recv_init(&f, brx, &d, NULL);
        check_bad_cx(&weft_bcast_recv_future, &f, &c);
    }

    weft_group_free(g);
    weft_bcast_rx_drop(brx);
    weft_bcast_drop(bc);
    weft_watch_rx_drop(wrx);
    weft_watch_drop(w);
    weft_cancel_drop(t);
    weft_barrier_free(b);
    weft_rwlock_free(rw);
    weft_mutex_free(m);
    weft_sem_free(s);
    weft_notify_free(n);
    weft_oneshot_tx_drop(tx);
    weft_oneshot_rx_drop(rx);
    weft_chan_drop(full);
    weft_chan_drop(ch);
    weft_runtime_free(rt);
}

typedef struct forever8 {
    int unused;
} forever8;

static weft_poll forever8_poll(forever8 *f, weft_context *cx, void *out)
{
    (void)f;
    (void)cx;
    (void)out;
    return WEFT_PENDING;
}

WEFT_DEFINE_FUTURE_STATIC(forever8, forever8_poll, NULL, int);

TEST(zeroed_context_is_einval_for_group_wait_drain_and_combinators)
{
    weft_runtime *rt = st_runtime(1);
    cwaker c = { 0 };
    weft_group *g;
    weft_cancel *t;
    int r0 = 0, r1 = 0;

    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .mask = WEFT_LINTS_OFF }));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_group_spawn(g, &forever8_future, &(forever8){ 0 }));
    ASSERT_OK(weft_cancel_new(&t));
    {
        weft_group_wait f;

        weft_group_wait_init(&f, g);
        check_bad_cx(&weft_group_wait_future, &f, &c);
    }
    {
        weft_group_drain f;

        weft_group_drain_init(&f, g, 1000000);
        check_bad_cx(&weft_group_drain_future, &f, &c);
    }
    {
        weft_cancel_wait w0, w1;
        weft_future_ref refs[2] = {
            { &weft_cancel_wait_future, &w0, &r0, 0 },
            { &weft_cancel_wait_future, &w1, &r1, 0 },
        };
        weft_select s;
        weft_join_all ja;

        weft_cancel_wait_init(&w0, t);
        weft_cancel_wait_init(&w1, t);
        weft_select_init(&s, refs, 2);
        check_bad_cx(&weft_select_future, &s, &c);
        weft_cancel_wait_init(&w0, t);
        weft_cancel_wait_init(&w1, t);
        weft_join_all_init(&ja, refs, 2);
        check_bad_cx(&weft_join_all_future, &ja, &c);
    }
    {
        weft_cancel_wait ws[2];
        weft_race r;

        weft_cancel_wait_init(&ws[0], t);
        weft_cancel_wait_init(&ws[1], t);
        weft_race_init(&r, &weft_cancel_wait_future, ws, 2, &r0);
        check_bad_cx(&weft_race_future, &r, &c);
    }
    ASSERT(!weft_group_is_cancelled(g));
    ASSERT_EQ(1, weft_group_live(g));
    weft_cancel_drop(t);
    weft_group_cancel(g);
    ASSERT_EQ(-ECANCELED, weft_group_join(g));
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
}

TEST(zeroed_context_yield_is_ready_and_does_nothing)
{
    weft_context zero;
    weft_yield y;

    memset(&zero, 0, sizeof(zero));
    weft_yield_init(&y);
    ASSERT_EQ(WEFT_READY, weft_yield_poll(&y, &zero));
    weft_yield_drop(&y);
}
