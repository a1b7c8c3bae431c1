// SPDX-License-Identifier: MIT
/* lock.h's common rule, which chan.h, group.h and net.h take over: "A
 * future whose init got a NULL object (or that was zeroed or dropped)
 * completes at once with -EINVAL", *_drop "is valid in every state (zeroed,
 * never polled, pending, woken but not polled again, complete) and
 * idempotent", and "polling after READY returns READY again with the same
 * result". Every future of those headers, zeroed (memset 0) and dropped
 * after a real init, polled by hand. Public headers only. */
#include <errno.h>
#include <string.h>

#include "harness.h"
#include <weft/blocking.h>
#include <weft/bufio.h>
#include <weft/chan.h>
#include <weft/group.h>
#include <weft/lock.h>
#include <weft/net.h>
#include <weft/process.h>
#include <weft/signal.h>

static weft_context cx_noop(weft_waker *w)
{
    *w = weft_waker_noop();
    return weft_context_from_waker(w);
}

/* Zeroed: poll twice (-EINVAL both times), drop twice. */
#define ZEROED(T, POLL, DROP)                                                 \
    do {                                                                      \
        T f_;                                                                 \
        int r_ = 12345;                                                       \
        memset(&f_, 0, sizeof(f_));                                           \
        ASSERT_EQ(WEFT_READY, POLL(&f_, &cx, &r_));                           \
        ASSERT_EQ(-EINVAL, r_);                                               \
        r_ = 12345;                                                           \
        ASSERT_EQ(WEFT_READY, POLL(&f_, &cx, &r_));                           \
        ASSERT_EQ(-EINVAL, r_);                                               \
        DROP(&f_);                                                            \
        DROP(&f_);                                                            \
    } while (0)

/* Dropped after a real init (never polled): poll gives -EINVAL. */
#define DROPPED(f, POLL, DROP)                                                \
    do {                                                                      \
        int r_ = 12345;                                                       \
        DROP(&(f));                                                           \
        ASSERT_EQ(WEFT_READY, POLL(&(f), &cx, &r_));                          \
        ASSERT_EQ(-EINVAL, r_);                                               \
        DROP(&(f));                                                           \
    } while (0)

TEST(zeroed_sync_futures_complete_with_einval)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);

    ZEROED(weft_notify_wait, weft_notify_wait_poll, weft_notify_wait_drop);
    ZEROED(weft_sem_acquire, weft_sem_acquire_poll, weft_sem_acquire_drop);
    ZEROED(weft_mutex_lock, weft_mutex_lock_poll, weft_mutex_lock_drop);
    ZEROED(weft_rwlock_read, weft_rwlock_read_poll, weft_rwlock_read_drop);
    ZEROED(weft_rwlock_write, weft_rwlock_write_poll, weft_rwlock_write_drop);
    ZEROED(weft_barrier_wait, weft_barrier_wait_poll, weft_barrier_wait_drop);
    ZEROED(weft_oneshot_recv, weft_oneshot_recv_poll, weft_oneshot_recv_drop);
    ZEROED(weft_chan_send, weft_chan_send_poll, weft_chan_send_drop);
    ZEROED(weft_chan_recv, weft_chan_recv_poll, weft_chan_recv_drop);
    ZEROED(weft_watch_changed, weft_watch_changed_poll, weft_watch_changed_drop);
    ZEROED(weft_bcast_recv, weft_bcast_recv_poll, weft_bcast_recv_drop);
}

TEST(zeroed_group_futures_complete_with_einval)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);

    ZEROED(weft_cancel_wait, weft_cancel_wait_poll, weft_cancel_wait_drop);
    ZEROED(weft_group_wait, weft_group_wait_poll, weft_group_wait_drop);
    ZEROED(weft_group_drain, weft_group_drain_poll, weft_group_drain_drop);
    ZEROED(weft_signal_recv, weft_signal_recv_poll, weft_signal_recv_drop);
}

/* The combinators zeroed: before the fix a zeroed join_all completed with
 * 0 and a zeroed select or race stayed PENDING for ever (no child to
 * wake it: a hang). */
TEST(zeroed_join_all_completes_with_einval)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);

    ZEROED(weft_join_all, weft_join_all_poll, weft_join_all_drop);
}

TEST(zeroed_select_completes_with_einval)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);

    ZEROED(weft_select, weft_select_poll, weft_select_drop);
}

TEST(zeroed_race_completes_with_einval)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);

    ZEROED(weft_race, weft_race_poll, weft_race_drop);
}

TEST(dropped_sync_futures_complete_with_einval)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);
    weft_notify *n;
    weft_sem *s;
    weft_mutex *m;
    weft_rwlock *rw;
    weft_barrier *b;
    weft_chan *ch;
    weft_oneshot_tx *tx;
    weft_oneshot_rx *orx;
    weft_watch *w;
    weft_watch_rx *wrx;
    weft_bcast *bc;
    weft_bcast_rx *brx;
    weft_cancel *tok;
    int v = 0;

    ASSERT_OK(weft_notify_new(&n));
    ASSERT_OK(weft_sem_new(&s, 0));
    ASSERT_OK(weft_mutex_new(&m));
    ASSERT_OK(weft_rwlock_new(&rw));
    ASSERT_OK(weft_barrier_new(&b, 2));
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    ASSERT_OK(weft_oneshot_new(&tx, &orx, sizeof(int)));
    ASSERT_OK(weft_watch_new(&w, sizeof(int), &v));
    ASSERT_OK(weft_watch_rx_new(&wrx, w));
    ASSERT_OK(weft_bcast_new(&bc, sizeof(int), 2));
    ASSERT_OK(weft_bcast_rx_new(&brx, bc));
    ASSERT_OK(weft_cancel_new(&tok));
    {
        weft_notify_wait f;
        weft_notify_wait_init(&f, n);
        DROPPED(f, weft_notify_wait_poll, weft_notify_wait_drop);
    }
    {
        weft_sem_acquire f;
        weft_sem_acquire_init(&f, s, 1);
        DROPPED(f, weft_sem_acquire_poll, weft_sem_acquire_drop);
    }
    {
        weft_mutex_lock f;
        weft_mutex_lock_init(&f, m);
        DROPPED(f, weft_mutex_lock_poll, weft_mutex_lock_drop);
    }
    {
        weft_rwlock_read f;
        weft_rwlock_read_init(&f, rw);
        DROPPED(f, weft_rwlock_read_poll, weft_rwlock_read_drop);
    }
    {
        weft_rwlock_write f;
        weft_rwlock_write_init(&f, rw);
        DROPPED(f, weft_rwlock_write_poll, weft_rwlock_write_drop);
    }
    {
        weft_barrier_wait f;
        weft_barrier_wait_init(&f, b);
        DROPPED(f, weft_barrier_wait_poll, weft_barrier_wait_drop);
        ASSERT_EQ(0, weft_barrier_waiting(b));      /* a dropped wait arrived nowhere */
    }
    {
        weft_oneshot_recv f;
        weft_oneshot_recv_init(&f, orx, &v);
        DROPPED(f, weft_oneshot_recv_poll, weft_oneshot_recv_drop);
    }
    {
        weft_chan_send f;
        weft_chan_send_init(&f, ch, &v);
        DROPPED(f, weft_chan_send_poll, weft_chan_send_drop);
        ASSERT_EQ(0, weft_chan_len(ch));            /* sent nothing */
    }
    {
        weft_chan_recv f;
        weft_chan_recv_init(&f, ch, &v);
        DROPPED(f, weft_chan_recv_poll, weft_chan_recv_drop);
    }
    {
        weft_watch_changed f;
        weft_watch_changed_init(&f, wrx, &v);
        DROPPED(f, weft_watch_changed_poll, weft_watch_changed_drop);
    }
    {
        weft_bcast_recv f;
        weft_bcast_recv_init(&f, brx, &v, NULL);
        DROPPED(f, weft_bcast_recv_poll, weft_bcast_recv_drop);
    }
    {
        weft_cancel_wait f;
        weft_cancel_wait_init(&f, tok);
        DROPPED(f, weft_cancel_wait_poll, weft_cancel_wait_drop);
    }
    /* and after READY: the same result again, then -EINVAL once dropped */
    {
        weft_sem_acquire f;
        int r = 1;

        ASSERT_OK(weft_sem_release(s, 1));
        weft_sem_acquire_init(&f, s, 1);
        ASSERT_EQ(WEFT_READY, weft_sem_acquire_poll(&f, &cx, &r));
        ASSERT_OK(r);
        r = 1;
        ASSERT_EQ(WEFT_READY, weft_sem_acquire_poll(&f, &cx, &r));
        ASSERT_OK(r);
        ASSERT_EQ(0, weft_sem_available(s));        /* taken once */
        DROPPED(f, weft_sem_acquire_poll, weft_sem_acquire_drop);
        ASSERT_EQ(0, weft_sem_available(s));        /* drop after READY gives nothing back */
    }
    weft_cancel_drop(tok);
    weft_bcast_rx_drop(brx);
    weft_bcast_drop(bc);
    weft_watch_rx_drop(wrx);
    weft_watch_drop(w);
    weft_oneshot_tx_drop(tx);
    weft_oneshot_rx_drop(orx);
    weft_chan_drop(ch);
    weft_barrier_free(b);
    weft_rwlock_free(rw);
    weft_mutex_free(m);
    weft_sem_free(s);
    weft_notify_free(n);
}

/* group.h's combinators: dropped after init they own nothing more. */
TEST(dropped_group_futures_complete_with_einval)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);
    weft_cancel *tok;

    ASSERT_OK(weft_cancel_new(&tok));
    {
        weft_cancel_wait cw;
        weft_future_ref ref = { .type = &weft_cancel_wait_future, .future = &cw };
        weft_join_all ja;
        int out = 0;

        ref.out = &out;
        weft_cancel_wait_init(&cw, tok);
        weft_join_all_init(&ja, &ref, 1);
        DROPPED(ja, weft_join_all_poll, weft_join_all_drop);
    }
    {
        weft_cancel_wait cw;
        weft_future_ref ref = { .type = &weft_cancel_wait_future, .future = &cw };
        weft_select sel;
        int out = 0;

        ref.out = &out;
        weft_cancel_wait_init(&cw, tok);
        weft_select_init(&sel, &ref, 1);
        DROPPED(sel, weft_select_poll, weft_select_drop);
    }
    {
        weft_cancel_wait cw[2];
        weft_race race;
        int out = 0;

        weft_cancel_wait_init(&cw[0], tok);
        weft_cancel_wait_init(&cw[1], tok);
        weft_race_init(&race, &weft_cancel_wait_future, cw, 2, &out);
        DROPPED(race, weft_race_poll, weft_race_drop);
    }
    weft_cancel_drop(tok);
}

/* net.h: "The common rules of weft/lock.h apply" -- a zeroed socket future
 * completes at once (with an error: -EINVAL, or -EBADF, net.h's answer for
 * a handle that names no socket) and never waits or crashes. */
TEST(zeroed_net_futures_complete_at_once)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);
    weft_io_op op;
    weft_connect_host ch;
    weft_resolve rs;
    ssize_t n = 12345;
    int r = 12345;

    memset(&op, 0, sizeof(op));
    ASSERT_EQ(WEFT_READY, weft_io_op_poll(&op, &cx, &n));
    ASSERT(n == -EINVAL || n == -EBADF);
    weft_io_op_drop(&op);
    weft_io_op_drop(&op);
    memset(&op, 0, sizeof(op));
    ASSERT_EQ(WEFT_READY, weft_accept_poll(&op, &cx, &r));
    ASSERT(r == -EINVAL || r == -EBADF);
    weft_io_op_drop(&op);
    memset(&op, 0, sizeof(op));
    r = 12345;
    ASSERT_EQ(WEFT_READY, weft_connect_poll(&op, &cx, &r));
    ASSERT(r == -EINVAL || r == -EBADF);
    weft_io_op_drop(&op);
    memset(&ch, 0, sizeof(ch));
    r = 12345;
    ASSERT_EQ(WEFT_READY, weft_connect_host_poll(&ch, &cx, &r));
    ASSERT_EQ(-EINVAL, r);
    weft_connect_host_drop(&ch);
    weft_connect_host_drop(&ch);
    memset(&rs, 0, sizeof(rs));
    r = 12345;
    ASSERT_EQ(WEFT_READY, weft_resolve_poll(&rs, &cx, &r));
    ASSERT_EQ(-EINVAL, r);
    weft_resolve_drop(&rs);
    weft_resolve_drop(&rs);
}

/* The other layers' futures zeroed: never a crash (core rule: bad input is
 * a clear negative errno). Before the fix a zeroed bufio read future
 * dereferenced its NULL reader (SIGSEGV) and a zeroed write future
 * reported success (0). */
TEST(zeroed_bufio_blocking_process_futures_never_crash)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);
    ssize_t n;
    int r;

    {
        weft_bufread f;

        memset(&f, 0, sizeof(f));
        n = 12345;
        ASSERT_EQ(WEFT_READY, weft_bufread_poll(&f, &cx, &n));
        ASSERT_EQ(-EINVAL, n);
        weft_bufread_drop(&f);
        weft_bufread_drop(&f);
    }
    {
        weft_bufwrite f;

        memset(&f, 0, sizeof(f));
        n = 12345;
        ASSERT_EQ(WEFT_READY, weft_bufwrite_poll(&f, &cx, &n));
        ASSERT_EQ(-EINVAL, n);
        weft_bufwrite_drop(&f);
        weft_bufwrite_drop(&f);
    }
    {
        weft_copy f;

        memset(&f, 0, sizeof(f));
        n = 12345;
        ASSERT_EQ(WEFT_READY, weft_copy_poll(&f, &cx, &n));
        ASSERT(n == -EINVAL || n == -EBADF);
        weft_copy_drop(&f);
        weft_copy_drop(&f);
    }
    {
        weft_process_wait f;

        memset(&f, 0, sizeof(f));
        r = 12345;
        ASSERT_EQ(WEFT_READY, weft_process_wait_poll(&f, &cx, &r));
        ASSERT_EQ(-EINVAL, r);
        weft_process_wait_drop(&f);
        weft_process_wait_drop(&f);
    }
    {
        weft_blocking_join f;

        memset(&f, 0, sizeof(f));
        r = 12345;
        ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&f, &cx, &r));
        ASSERT_EQ(-EINVAL, r);
        weft_blocking_join_drop(&f);
        weft_blocking_join_drop(&f);
    }
    {
        weft_fs_op f;

        memset(&f, 0, sizeof(f));
        n = 12345;
        ASSERT_EQ(WEFT_READY, weft_fs_poll(&f, &cx, &n));
        ASSERT_EQ(-EINVAL, n);
        weft_fs_drop(&f);
        weft_fs_drop(&f);
    }
}
