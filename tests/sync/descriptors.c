/* SPDX-License-Identifier: MIT */
/* Ready-made descriptors (issue 9, item 17): every leaf future of timer.h,
 * lock.h and chan.h (and the waits and combinators of group.h) composes
 * through weft_timeout and weft_select with the descriptor weft ships, no
 * WEFT_DEFINE_FUTURE of the user's own. For each: a ready one wins a select
 * against a pending one of the same type (which is dropped: its object is
 * usable again afterwards), and a ready one passes through a timeout. */
#define _GNU_SOURCE                   /* usleep */
#include <string.h>
#include <unistd.h>

#include "sync_test.h"
#include "weft/group.h"

#define CX(name)                                                              \
    weft_waker name##_w = weft_waker_noop();                                  \
    weft_context name = weft_context_from_waker(&name##_w)

/* Select {pending, ready} by hand: the ready one (index 1) wins; outputs go
 * to out0 / out1. */
static void select_pair(const weft_future_type *ty, void *pending, void *ready, void *out0,
                        void *out1)
{
    weft_future_ref refs[2] = {
        { ty, pending, out0, 0 },
        { ty, ready, out1, 0 },
    };
    weft_select s;
    int res = -1;

    CX(cx);
    ASSERT(ty != NULL && ty->poll != NULL && ty->drop != NULL && ty->name != NULL);
    weft_select_init(&s, refs, 2);
    ASSERT_EQ(WEFT_READY, weft_select_poll(&s, &cx, &res));
    ASSERT_EQ(1, res);
    weft_select_drop(&s);
}

/* A ready future through a timeout, by hand: the inner result. */
static int through_timeout(const weft_future_type *ty, void *fut, void *out)
{
    weft_timeout t;
    int res = 1;

    CX(cx);
    weft_timeout_init(&t, ty, fut, 10000);
    ASSERT_EQ(WEFT_READY, weft_timeout_poll(&t, &cx, &res, out));
    weft_timeout_drop(&t);
    return res;
}

TEST(descriptors_have_the_right_shapes)
{
    struct {
        const weft_future_type *ty;
        size_t size, out;
    } d[] = {
        { &weft_sleep_future, sizeof(weft_sleep), 0 },
        { &weft_interval_future, sizeof(weft_interval), sizeof(uint64_t) },
        { &weft_notify_wait_future, sizeof(weft_notify_wait), sizeof(int) },
        { &weft_sem_acquire_future, sizeof(weft_sem_acquire), sizeof(int) },
        { &weft_mutex_lock_future, sizeof(weft_mutex_lock), sizeof(int) },
        { &weft_rwlock_read_future, sizeof(weft_rwlock_read), sizeof(int) },
        { &weft_rwlock_write_future, sizeof(weft_rwlock_write), sizeof(int) },
        { &weft_barrier_wait_future, sizeof(weft_barrier_wait), sizeof(int) },
        { &weft_oneshot_recv_future, sizeof(weft_oneshot_recv), sizeof(int) },
        { &weft_chan_send_future, sizeof(weft_chan_send), sizeof(int) },
        { &weft_chan_recv_future, sizeof(weft_chan_recv), sizeof(int) },
        { &weft_watch_changed_future, sizeof(weft_watch_changed), sizeof(int) },
        { &weft_bcast_recv_future, sizeof(weft_bcast_recv), sizeof(int) },
        { &weft_cancel_wait_future, sizeof(weft_cancel_wait), sizeof(int) },
        { &weft_group_wait_future, sizeof(weft_group_wait), sizeof(int) },
        { &weft_join_all_future, sizeof(weft_join_all), sizeof(int) },
        { &weft_select_future, sizeof(weft_select), sizeof(int) },
        { &weft_race_future, sizeof(weft_race), sizeof(int) },
    };

    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
        ASSERT(d[i].ty->poll && d[i].ty->drop && d[i].ty->name);
        ASSERT_EQ(d[i].size, d[i].ty->size);
        ASSERT_EQ(d[i].out, d[i].ty->output_size);
        ASSERT(d[i].ty->align >= 1 && d[i].ty->output_align >= 1);
        ASSERT(strncmp(d[i].ty->name, "weft_", 5) == 0);
    }
}

TEST(timer_descriptors_compose)
{
    weft_sleep s0, s1;
    weft_interval i0, i1;
    uint64_t m0 = 7, m1 = 7;
    weft_timeout t;
    int res = 1;

    CX(cx);
    /* sleep: one that never ends loses to one already due */
    weft_sleep_until_init(&s0, UINT64_MAX);
    weft_sleep_until_init(&s1, 0);
    select_pair(&weft_sleep_future, &s0, &s1, NULL, NULL);
    weft_sleep_until_init(&s1, 0);
    ASSERT_OK(through_timeout(&weft_sleep_future, &s1, NULL));
    /* interval: a tick of 1 ms beats a tick of forever */
    weft_interval_init(&i0, UINT64_MAX);
    weft_interval_init(&i1, 1);
    usleep(3000);
    select_pair(&weft_interval_future, &i0, &i1, &m0, &m1);
    ASSERT_EQ(7, m0);                               /* the loser wrote nothing */
    ASSERT(m1 < 1000);
    /* through a timeout, polled until the next tick (by hand: no timers) */
    weft_interval_init(&i1, 1);
    weft_timeout_init(&t, &weft_interval_future, &i1, 10000);
    for (int k = 0; weft_timeout_poll(&t, &cx, &res, &m1) == WEFT_PENDING; k++) {
        ASSERT(k < 5000);
        usleep(1000);
    }
    ASSERT_OK(res);
    weft_timeout_drop(&t);
    /* a sleep that never ends as the inner future of an expiring timeout */
    weft_sleep_until_init(&s0, UINT64_MAX);
    weft_timeout_init(&t, &weft_sleep_future, &s0, 0);
    usleep(3000);
    ASSERT_EQ(WEFT_READY, weft_timeout_poll(&t, &cx, &res, NULL));
    ASSERT_EQ(-ETIMEDOUT, res);
    weft_timeout_drop(&t);
}

TEST(lock_descriptors_compose)
{
    weft_notify *n0, *n1;
    weft_sem *sem;
    weft_mutex *m0, *m1;
    weft_rwlock *rw0, *rw1;
    weft_barrier *b0, *b1;
    int o0 = 99, o1 = 99;

    ASSERT_OK(weft_notify_new(&n0));
    ASSERT_OK(weft_notify_new(&n1));
    {
        weft_notify_wait w0, w1;

        weft_notify_one(n1);                        /* a permit: w1 is ready */
        weft_notify_wait_init(&w0, n0);
        weft_notify_wait_init(&w1, n1);
        select_pair(&weft_notify_wait_future, &w0, &w1, &o0, &o1);
        ASSERT_EQ(0, o1);
        weft_notify_one(n0);
        weft_notify_wait_init(&w0, n0);
        ASSERT_OK(through_timeout(&weft_notify_wait_future, &w0, &o0));
        ASSERT_EQ(0, o0);
    }
    ASSERT_OK(weft_sem_new(&sem, 1));
    {
        weft_sem_acquire a0, a1;

        weft_sem_acquire_init(&a0, sem, 2);         /* more than there are */
        weft_sem_acquire_init(&a1, sem, 1);
        o1 = 99;
        /* FIFO: the pending a0 would hold a1 back, so a1 goes first here */
        {
            weft_future_ref refs[2] = { { &weft_sem_acquire_future, &a1, &o1, 0 },
                                        { &weft_sem_acquire_future, &a0, &o0, 0 } };
            weft_select s;
            int res = -1;

            CX(cx);
            weft_select_init(&s, refs, 2);
            ASSERT_EQ(WEFT_READY, weft_select_poll(&s, &cx, &res));
            ASSERT_EQ(0, res);
            ASSERT_EQ(0, o1);
            weft_select_drop(&s);
        }
        ASSERT_OK(weft_sem_release(sem, 1));
        weft_sem_acquire_init(&a0, sem, 1);
        ASSERT_OK(through_timeout(&weft_sem_acquire_future, &a0, &o0));
        ASSERT_OK(weft_sem_release(sem, 1));
        ASSERT_EQ(1, (int)weft_sem_available(sem));
    }
    ASSERT_OK(weft_mutex_new(&m0));
    ASSERT_OK(weft_mutex_new(&m1));
    {
        weft_mutex_lock l0, l1;

        ASSERT_OK(weft_mutex_try_lock(m0));         /* l0 must wait */
        weft_mutex_lock_init(&l0, m0);
        weft_mutex_lock_init(&l1, m1);
        select_pair(&weft_mutex_lock_future, &l0, &l1, &o0, &o1);
        ASSERT_OK(weft_mutex_unlock(m1));           /* l1 won: we hold m1 */
        ASSERT_OK(weft_mutex_unlock(m0));           /* l0 left the line */
        ASSERT_OK(weft_mutex_try_lock(m0));
        ASSERT_OK(weft_mutex_unlock(m0));
        weft_mutex_lock_init(&l1, m1);
        ASSERT_OK(through_timeout(&weft_mutex_lock_future, &l1, &o1));
        ASSERT_OK(weft_mutex_unlock(m1));
    }
    ASSERT_OK(weft_rwlock_new(&rw0));
    ASSERT_OK(weft_rwlock_new(&rw1));
    {
        weft_rwlock_read r0, r1;
        weft_rwlock_write w0, w1;

        ASSERT_OK(weft_rwlock_try_write(rw0));
        weft_rwlock_read_init(&r0, rw0);
        weft_rwlock_read_init(&r1, rw1);
        select_pair(&weft_rwlock_read_future, &r0, &r1, &o0, &o1);
        ASSERT_OK(weft_rwlock_unlock_read(rw1));
        weft_rwlock_write_init(&w0, rw0);
        weft_rwlock_write_init(&w1, rw1);
        select_pair(&weft_rwlock_write_future, &w0, &w1, &o0, &o1);
        ASSERT_OK(weft_rwlock_unlock_write(rw1));
        ASSERT_OK(weft_rwlock_unlock_write(rw0));
        weft_rwlock_read_init(&r0, rw0);
        ASSERT_OK(through_timeout(&weft_rwlock_read_future, &r0, &o0));
        ASSERT_OK(weft_rwlock_unlock_read(rw0));
        weft_rwlock_write_init(&w0, rw0);
        ASSERT_OK(through_timeout(&weft_rwlock_write_future, &w0, &o0));
        ASSERT_OK(weft_rwlock_unlock_write(rw0));
    }
    ASSERT_OK(weft_barrier_new(&b0, 2));
    ASSERT_OK(weft_barrier_new(&b1, 1));
    {
        weft_barrier_wait w0, w1;

        weft_barrier_wait_init(&w0, b0);
        weft_barrier_wait_init(&w1, b1);
        select_pair(&weft_barrier_wait_future, &w0, &w1, &o0, &o1);
        ASSERT_EQ(WEFT_BARRIER_LEADER, o1);
        ASSERT_EQ(0, (int)weft_barrier_waiting(b0)); /* w0's arrival taken back */
        weft_barrier_wait_init(&w1, b1);
        ASSERT_OK(through_timeout(&weft_barrier_wait_future, &w1, &o1));
        ASSERT_EQ(WEFT_BARRIER_LEADER, o1);
    }
    weft_barrier_free(b0);
    weft_barrier_free(b1);
    weft_rwlock_free(rw0);
    weft_rwlock_free(rw1);
    weft_mutex_free(m0);
    weft_mutex_free(m1);
    weft_sem_free(sem);
    weft_notify_free(n0);
    weft_notify_free(n1);
}

TEST(chan_descriptors_compose)
{
    int o0 = 99, o1 = 99, v0 = 0, v1 = 0;

    {
        weft_oneshot_tx *tx0, *tx1;
        weft_oneshot_rx *rx0, *rx1;
        weft_oneshot_recv r0, r1;

        ASSERT_OK(weft_oneshot_new(&tx0, &rx0, sizeof(int)));
        ASSERT_OK(weft_oneshot_new(&tx1, &rx1, sizeof(int)));
        ASSERT_OK(weft_oneshot_send(tx1, &(int){ 5 }));
        weft_oneshot_recv_init(&r0, rx0, &v0);
        weft_oneshot_recv_init(&r1, rx1, &v1);
        select_pair(&weft_oneshot_recv_future, &r0, &r1, &o0, &o1);
        ASSERT_EQ(0, o1);
        ASSERT_EQ(5, v1);
        ASSERT_OK(weft_oneshot_send(tx0, &(int){ 6 }));   /* r0 lost nothing */
        weft_oneshot_recv_init(&r0, rx0, &v0);
        ASSERT_OK(through_timeout(&weft_oneshot_recv_future, &r0, &o0));
        ASSERT_EQ(6, v0);
        weft_oneshot_rx_drop(rx0);
        weft_oneshot_rx_drop(rx1);
    }
    {
        weft_chan *full, *empty;
        weft_chan_send s0, s1;
        weft_chan_recv r0, r1;
        int m = 1;

        ASSERT_OK(weft_chan_new(&full, sizeof(int), 1));
        ASSERT_OK(weft_chan_new(&empty, sizeof(int), 1));
        ASSERT_OK(weft_chan_try_send(full, &m));
        m = 2;
        weft_chan_send_init(&s0, full, &m);
        weft_chan_send_init(&s1, empty, &m);
        select_pair(&weft_chan_send_future, &s0, &s1, &o0, &o1);   /* empty <- 2 */
        ASSERT_EQ(0, o1);
        /* now `empty` holds 2, `full` holds 1: receive from a drained one
         * loses to a non-empty one */
        ASSERT_OK(weft_chan_try_recv(full, &v0));
        ASSERT_EQ(1, v0);
        weft_chan_recv_init(&r0, full, &v0);
        weft_chan_recv_init(&r1, empty, &v1);
        select_pair(&weft_chan_recv_future, &r0, &r1, &o0, &o1);
        ASSERT_EQ(2, v1);
        m = 3;
        weft_chan_send_init(&s0, full, &m);
        ASSERT_OK(through_timeout(&weft_chan_send_future, &s0, &o0));
        weft_chan_recv_init(&r0, full, &v0);
        ASSERT_OK(through_timeout(&weft_chan_recv_future, &r0, &o0));
        ASSERT_EQ(3, v0);
        weft_chan_drop(full);
        weft_chan_drop(empty);
    }
    {
        weft_watch *w;
        weft_watch_rx *rx0, *rx1;
        weft_watch_changed c0, c1;

        ASSERT_OK(weft_watch_new(&w, sizeof(int), &(int){ 0 }));
        ASSERT_OK(weft_watch_rx_new(&rx1, w));
        ASSERT_OK(weft_watch_send(w, &(int){ 8 }));
        ASSERT_OK(weft_watch_rx_new(&rx0, w));     /* has seen 8 already */
        weft_watch_changed_init(&c0, rx0, &v0);
        weft_watch_changed_init(&c1, rx1, &v1);
        select_pair(&weft_watch_changed_future, &c0, &c1, &o0, &o1);
        ASSERT_EQ(8, v1);
        ASSERT_OK(weft_watch_send(w, &(int){ 9 }));
        weft_watch_changed_init(&c0, rx0, &v0);
        ASSERT_OK(through_timeout(&weft_watch_changed_future, &c0, &o0));
        ASSERT_EQ(9, v0);
        weft_watch_rx_drop(rx0);
        weft_watch_rx_drop(rx1);
        weft_watch_drop(w);
    }
    {
        weft_bcast *b;
        weft_bcast_rx *rx0, *rx1;
        weft_bcast_recv r0, r1;
        uint64_t missed = 0;

        ASSERT_OK(weft_bcast_new(&b, sizeof(int), 4));
        ASSERT_OK(weft_bcast_rx_new(&rx1, b));
        ASSERT_OK(weft_bcast_send(b, &(int){ 11 }));
        ASSERT_OK(weft_bcast_rx_new(&rx0, b));     /* sees only later ones */
        weft_bcast_recv_init(&r0, rx0, &v0, &missed);
        weft_bcast_recv_init(&r1, rx1, &v1, &missed);
        select_pair(&weft_bcast_recv_future, &r0, &r1, &o0, &o1);
        ASSERT_EQ(11, v1);
        ASSERT_OK(weft_bcast_send(b, &(int){ 12 }));
        weft_bcast_recv_init(&r0, rx0, &v0, &missed);
        ASSERT_OK(through_timeout(&weft_bcast_recv_future, &r0, &o0));
        ASSERT_EQ(12, v0);
        weft_bcast_rx_drop(rx0);
        weft_bcast_rx_drop(rx1);
        weft_bcast_drop(b);
    }
}

TEST(group_descriptors_compose)
{
    weft_runtime *rt = st_runtime(1);
    weft_cancel *t0, *t1;
    weft_group *g;
    weft_chan *ch;
    int o0 = 99, o1 = 99, v0 = 0, v1 = 0, m = 4;

    ASSERT_OK(weft_cancel_new(&t0));
    ASSERT_OK(weft_cancel_new(&t1));
    weft_cancel_cancel(t1);
    {
        weft_cancel_wait w0, w1;

        weft_cancel_wait_init(&w0, t0);
        weft_cancel_wait_init(&w1, t1);
        select_pair(&weft_cancel_wait_future, &w0, &w1, &o0, &o1);
        ASSERT_EQ(0, o1);
    }
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    {
        weft_group_wait gw;

        weft_group_wait_init(&gw, g);               /* empty: ready at once */
        ASSERT_OK(through_timeout(&weft_group_wait_future, &gw, &o0));
        ASSERT_EQ(0, o0);
    }
    /* combinators nest: select { join_all { recv, recv }, cancel wait } */
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 2));
    ASSERT_OK(weft_chan_try_send(ch, &m));
    ASSERT_OK(weft_chan_try_send(ch, &m));
    {
        weft_chan_recv r0, r1;
        int rr0 = 1, rr1 = 1, jres = 1, sres = -1;
        weft_future_ref inner[2] = { { &weft_chan_recv_future, &r0, &rr0, 0 },
                                     { &weft_chan_recv_future, &r1, &rr1, 0 } };
        weft_join_all ja;
        weft_cancel_wait cw;
        weft_future_ref outer[2] = { { &weft_cancel_wait_future, &cw, &o0, 0 },
                                     { &weft_join_all_future, &ja, &jres, 0 } };
        weft_select s;

        CX(cx);
        weft_chan_recv_init(&r0, ch, &v0);
        weft_chan_recv_init(&r1, ch, &v1);
        weft_join_all_init(&ja, inner, 2);
        weft_cancel_wait_init(&cw, t0);             /* never cancelled */
        weft_select_init(&s, outer, 2);
        ASSERT_EQ(WEFT_READY, weft_select_poll(&s, &cx, &sres));
        ASSERT_EQ(1, sres);
        ASSERT_EQ(0, jres);
        ASSERT_EQ(4, v0);
        ASSERT_EQ(4, v1);
        weft_select_drop(&s);
    }
    weft_chan_drop(ch);
    ASSERT_OK(weft_group_free(g));
    weft_cancel_drop(t0);
    weft_cancel_drop(t1);
    weft_runtime_free(rt);
}

/* On a runtime: a timed receive (weft_timeout over weft_chan_recv_future)
 * gets a message sent by a plain thread in time, and times out on an empty
 * channel; a select between a receive and a sleep, both ready-made. */
typedef struct timed {
    weft_async co;
    weft_chan *ch;
    uint64_t ms;
    weft_chan_recv r;
    weft_timeout t;
    int msg, rres, tres;
} timed;

static weft_poll timed_poll(timed *t, weft_context *cx, void *out)
{
    WEFT_BEGIN(&t->co);
    weft_chan_recv_init(&t->r, t->ch, &t->msg);
    weft_timeout_init(&t->t, &weft_chan_recv_future, &t->r, t->ms);
    WEFT_AWAIT(&t->co, weft_timeout_poll(&t->t, cx, &t->tres, &t->rres));
    weft_timeout_drop(&t->t);
    *(int *)out = t->tres < 0 ? t->tres : t->msg;
    WEFT_END(&t->co);
}

static void timed_drop(timed *t)
{
    weft_timeout_drop(&t->t);
}

WEFT_DEFINE_FUTURE(timed, timed_poll, timed_drop, int);

typedef struct recv_or_sleep {
    weft_async co;
    weft_chan *ch;
    weft_chan_recv r;
    weft_sleep s;
    weft_future_ref refs[2];
    weft_select sel;
    int msg, rres, res;
} recv_or_sleep;

static weft_poll ros_poll(recv_or_sleep *t, weft_context *cx, void *out)
{
    WEFT_BEGIN(&t->co);
    weft_chan_recv_init(&t->r, t->ch, &t->msg);
    weft_sleep_init(&t->s, 20);
    t->refs[0] = (weft_future_ref){ &weft_chan_recv_future, &t->r, &t->rres, 0 };
    t->refs[1] = (weft_future_ref){ &weft_sleep_future, &t->s, NULL, 0 };
    weft_select_init(&t->sel, t->refs, 2);
    WEFT_AWAIT(&t->co, weft_select_poll(&t->sel, cx, &t->res));
    weft_select_drop(&t->sel);
    *(int *)out = t->res;
    WEFT_END(&t->co);
}

static void ros_drop(recv_or_sleep *t)
{
    weft_select_drop(&t->sel);
}

WEFT_DEFINE_FUTURE(recv_or_sleep, ros_poll, ros_drop, int);

TEST(timed_receive_on_runtime)
{
    weft_runtime *rt = st_runtime(2);
    weft_chan *ch;
    weft_join *j;
    int out = 0, m = 31;

    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 4));
    ASSERT_OK(weft_spawn(rt, &timed_future, &(timed){ .ch = ch, .ms = 10000 }, &j));
    usleep(5000);
    ASSERT_OK(weft_chan_try_send(ch, &m));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(31, out);
    weft_join_drop(j);
    ASSERT_OK(weft_spawn(rt, &timed_future, &(timed){ .ch = ch, .ms = 10 }, &j));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(-ETIMEDOUT, out);
    weft_join_drop(j);
    ASSERT_OK(weft_spawn(rt, &recv_or_sleep_future, &(recv_or_sleep){ .ch = ch }, &j));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(1, out);                              /* the sleep won */
    weft_join_drop(j);
    ASSERT_OK(weft_chan_try_send(ch, &m));
    ASSERT_OK(weft_spawn(rt, &recv_or_sleep_future, &(recv_or_sleep){ .ch = ch }, &j));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(0, out);                              /* the receive won */
    weft_join_drop(j);
    weft_runtime_free(rt);
    weft_chan_drop(ch);
}
