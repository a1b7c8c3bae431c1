/* SPDX-License-Identifier: MIT */
/* Audit 9 of weft/lock.h: counts at their limits, wrong unlocks of a
 * read-write lock while a writer waits or holds a grant it has not seen,
 * a barrier of one, notify's single stored permit, and the plain-thread
 * waits called from a coroutine. */
#include "sync_test.h"

#include <string.h>

static weft_context cx_of(weft_waker *w)
{
    return (weft_context){ .waker = w };
}

TEST(semaphore_counts_at_the_ceiling_refuse_what_would_pass_it_and_keep_the_rest)
{
    weft_sem *s;

    ASSERT_EQ(-EINVAL, weft_sem_new(&s, WEFT_SEM_MAX_PERMITS + 1));
    ASSERT_OK(weft_sem_new(&s, WEFT_SEM_MAX_PERMITS));
    ASSERT_EQ(-EINVAL, weft_sem_release(s, 1));
    ASSERT_EQ(-EINVAL, weft_sem_release(s, SIZE_MAX));
    ASSERT_EQ(WEFT_SEM_MAX_PERMITS, weft_sem_available(s));
    ASSERT_OK(weft_sem_try_acquire(s, WEFT_SEM_MAX_PERMITS));
    ASSERT_EQ(-EAGAIN, weft_sem_try_acquire(s, 1));
    ASSERT_OK(weft_sem_try_acquire(s, 0));
    ASSERT_EQ(-EINVAL, weft_sem_release(s, SIZE_MAX));      /* n above the maximum */
    ASSERT_EQ(0, weft_sem_available(s));
    ASSERT_OK(weft_sem_release(s, WEFT_SEM_MAX_PERMITS));
    weft_sem_close(s);
    ASSERT_EQ(-EPIPE, weft_sem_try_acquire(s, 1));
    ASSERT_EQ(-EPIPE, weft_sem_acquire_wait(s, 1));
    ASSERT_EQ(-EINVAL, weft_sem_acquire_wait(s, WEFT_SEM_MAX_PERMITS + 1));
    ASSERT_OK(weft_sem_release(s, 0));                      /* allowed after close */
    weft_sem_free(s);
}

TEST(rwlock_wrong_unlocks_are_refused_while_a_writer_waits_and_while_it_holds_an_unseen_grant)
{
    cwaker c = { 0 };
    weft_waker wk = cw_waker(&c);
    weft_context cx = cx_of(&wk);
    weft_rwlock *rw;
    weft_rwlock_write wf;
    int r = 9;

    ASSERT_OK(weft_rwlock_new(&rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_read(rw));        /* unlocked */
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_write(rw));
    ASSERT_OK(weft_rwlock_try_read(rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_write(rw));       /* read-locked */
    weft_rwlock_write_init(&wf, rw);
    ASSERT_EQ(WEFT_PENDING, weft_rwlock_write_poll(&wf, &cx, &r));
    ASSERT_EQ(-EAGAIN, weft_rwlock_try_read(rw));           /* FIFO: the writer first */
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_write(rw));       /* a writer waits, none holds */
    ASSERT_OK(weft_rwlock_unlock_read(rw));                 /* hands it to the writer */
    ASSERT_EQ(1, cw_wakes(&c));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_read(rw));        /* granted, not yet seen */
    ASSERT_EQ(WEFT_READY, weft_rwlock_write_poll(&wf, &cx, &r));
    ASSERT_EQ(0, r);
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_read(rw));        /* write-locked */
    ASSERT_OK(weft_rwlock_unlock_write(rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_write(rw));
    weft_rwlock_write_drop(&wf);                            /* after READY: no unlock */
    ASSERT_OK(weft_rwlock_try_write(rw));
    ASSERT_OK(weft_rwlock_unlock_write(rw));
    weft_rwlock_free(rw);
    ASSERT_CW_BALANCED(&c);
}

TEST(a_barrier_of_one_makes_every_wait_the_leader_at_once)
{
    cwaker c = { 0 };
    weft_waker wk = cw_waker(&c);
    weft_context cx = cx_of(&wk);
    weft_barrier *b;
    weft_barrier_wait bw;
    int r;

    ASSERT_EQ(-EINVAL, weft_barrier_new(&b, 0));
    ASSERT_OK(weft_barrier_new(&b, 1));
    for (int i = 0; i < 3; i++) {
        r = 9;
        weft_barrier_wait_init(&bw, b);
        ASSERT_EQ(WEFT_READY, weft_barrier_wait_poll(&bw, &cx, &r));
        ASSERT_EQ(WEFT_BARRIER_LEADER, r);
        weft_barrier_wait_drop(&bw);
        ASSERT_EQ(0, weft_barrier_waiting(b));
    }
    weft_barrier_free(b);
    ASSERT_CW_BALANCED(&c);
}

TEST(notify_one_twice_before_any_wait_stores_one_permit_and_notify_all_skips_later_waits)
{
    cwaker c = { 0 };
    weft_waker wk = cw_waker(&c);
    weft_context cx = cx_of(&wk);
    weft_notify *n;
    weft_notify_wait w1, w2, w3;
    int r = 9;

    ASSERT_OK(weft_notify_new(&n));
    weft_notify_one(n);
    weft_notify_one(n);
    weft_notify_wait_init(&w1, n);
    weft_notify_wait_init(&w2, n);
    ASSERT_EQ(WEFT_READY, weft_notify_wait_poll(&w1, &cx, &r));
    ASSERT_EQ(0, r);
    ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&w2, &cx, &r));
    weft_notify_all(n);
    weft_notify_wait_init(&w3, n);
    ASSERT_EQ(WEFT_READY, weft_notify_wait_poll(&w2, &cx, &r));
    ASSERT_EQ(0, r);
    ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&w3, &cx, &r));
    weft_notify_wait_drop(&w1);
    weft_notify_wait_drop(&w2);
    weft_notify_wait_drop(&w3);
    weft_notify_wait_drop(&w3);                             /* idempotent */
    weft_notify_free(n);
    ASSERT_CW_BALANCED(&c);
}

/* ---- the plain-thread waits from a coroutine: -EDEADLK, nothing taken ------ */
typedef struct cw_ctx {
    weft_sem *s;
    weft_mutex *m;
    int r1, r2;
} cw_ctx;

static int plain_waits(void *arg)
{
    cw_ctx *c = arg;

    c->r1 = weft_sem_acquire_wait(c->s, 1);
    c->r2 = weft_mutex_lock_wait(c->m);
    return 0;
}

TEST(plain_thread_waits_called_in_a_coroutine_are_edeadlk_and_take_nothing)
{
    weft_runtime *rt = st_runtime(1);
    cw_ctx c;
    weft_join *j;

    memset(&c, 0, sizeof(c));
    ASSERT_OK(weft_sem_new(&c.s, 1));
    ASSERT_OK(weft_mutex_new(&c.m));
    ASSERT_OK(weft_go(rt, plain_waits, &c, &j));
    ASSERT_OK(weft_join_wait(j, NULL));
    ASSERT_EQ(-EDEADLK, c.r1);
    ASSERT_EQ(-EDEADLK, c.r2);
    ASSERT_EQ(1, weft_sem_available(c.s));
    ASSERT_OK(weft_mutex_try_lock(c.m));
    ASSERT_OK(weft_mutex_unlock(c.m));
    weft_join_drop(j);
    weft_sem_free(c.s);
    weft_mutex_free(c.m);
    weft_runtime_free(rt);
}
