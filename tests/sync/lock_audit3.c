/* SPDX-License-Identifier: MIT */
/* Third audit of weft/lock.h: the permit ceiling (WEFT_SEM_MAX_PERMITS)
 * against every way permits come back (a release, a granted acquire that is
 * dropped unobserved), the mutex and rwlock unlock checks that rest on it,
 * FIFO try_acquire of 0, notify's permit next to notify_all, barrier of one
 * party, and the blocking forms' argument checks. Futures are polled by
 * hand with counting wakers. */
#include "sync_test.h"

/* lock.h: WEFT_SEM_MAX_PERMITS is "the most permits a semaphore can hold";
 * weft_sem_release: "-EINVAL (... the total would exceed
 * WEFT_SEM_MAX_PERMITS: nothing is added)". An acquire dropped after its
 * grant gives its permits back: that must not lift the total above the
 * ceiling either (else the count passes max, and the next release's check,
 * max - free, wraps and lets anything in). */
TEST(sem_granted_acquire_dropped_never_exceeds_the_ceiling)
{
    weft_sem *s;
    weft_sem_acquire a;
    cwaker c = { 0 };
    weft_waker w = cw_waker(&c);
    weft_context cx = weft_context_from_waker(&w);
    int res = 1;

    ASSERT_OK(weft_sem_new(&s, 0));
    weft_sem_acquire_init(&a, s, 5);
    ASSERT_EQ(WEFT_PENDING, weft_sem_acquire_poll(&a, &cx, &res));
    ASSERT_OK(weft_sem_release(s, 5));              /* handed to a */
    ASSERT_EQ(1, cw_wakes(&c));
    ASSERT_EQ(0, weft_sem_available(s));
    ASSERT_OK(weft_sem_release(s, WEFT_SEM_MAX_PERMITS)); /* a's 5 are not free */
    ASSERT(weft_sem_available(s) == WEFT_SEM_MAX_PERMITS);
    weft_sem_acquire_drop(&a);                      /* gives its 5 back */
    ASSERT(weft_sem_available(s) <= WEFT_SEM_MAX_PERMITS);
    ASSERT_EQ(-EINVAL, weft_sem_release(s, 1));
    ASSERT(weft_sem_available(s) <= WEFT_SEM_MAX_PERMITS);
    ASSERT_OK(weft_sem_try_acquire(s, WEFT_SEM_MAX_PERMITS));
    ASSERT_EQ(0, weft_sem_available(s));
    ASSERT_EQ(-EAGAIN, weft_sem_try_acquire(s, 1));
    weft_sem_free(s);
    ASSERT_CW_BALANCED(&c);
}

/* The same with another waiter behind the dropped one: the permits given
 * back go to it, and the total still never passes the ceiling. */
TEST(sem_granted_acquire_dropped_with_waiter_behind_never_exceeds_the_ceiling)
{
    weft_sem *s;
    weft_sem_acquire a, b;
    cwaker c = { 0 };
    weft_waker w = cw_waker(&c);
    weft_context cx = weft_context_from_waker(&w);
    int res = 1;

    ASSERT_OK(weft_sem_new(&s, 0));
    weft_sem_acquire_init(&a, s, 5);
    weft_sem_acquire_init(&b, s, WEFT_SEM_MAX_PERMITS);
    ASSERT_EQ(WEFT_PENDING, weft_sem_acquire_poll(&a, &cx, &res));
    ASSERT_EQ(WEFT_PENDING, weft_sem_acquire_poll(&b, &cx, &res));
    ASSERT_OK(weft_sem_release(s, 5));              /* a granted; b waits */
    ASSERT_OK(weft_sem_release(s, WEFT_SEM_MAX_PERMITS - 1)); /* b still short */
    weft_sem_acquire_drop(&a);                      /* 5 back: b can have MAX */
    ASSERT_EQ(WEFT_READY, weft_sem_acquire_poll(&b, &cx, &res));
    ASSERT_OK(res);
    ASSERT(weft_sem_available(s) <= WEFT_SEM_MAX_PERMITS);
    ASSERT_EQ(0, weft_sem_available(s));           /* MAX free at most, all to b */
    weft_sem_acquire_drop(&b);
    ASSERT_OK(weft_sem_release(s, WEFT_SEM_MAX_PERMITS));
    ASSERT_EQ(-EINVAL, weft_sem_release(s, 1));
    weft_sem_free(s);
    ASSERT_CW_BALANCED(&c);
}

/* A mutex holds one permit at most: a lock handed to a future, unlocked by
 * someone else (any thread may unlock), then the future dropped unobserved
 * must leave one lock, not two. */
TEST(mutex_never_holds_two_permits)
{
    weft_mutex *m;
    weft_mutex_lock l;
    cwaker c = { 0 };
    weft_waker w = cw_waker(&c);
    weft_context cx = weft_context_from_waker(&w);
    int res = 1;

    ASSERT_OK(weft_mutex_new(&m));
    ASSERT_OK(weft_mutex_try_lock(m));
    weft_mutex_lock_init(&l, m);
    ASSERT_EQ(WEFT_PENDING, weft_mutex_lock_poll(&l, &cx, &res));
    ASSERT_OK(weft_mutex_unlock(m));                /* handed to l */
    ASSERT_OK(weft_mutex_unlock(m));                /* l's lock, unlocked by another */
    weft_mutex_lock_drop(&l);                       /* would unlock it once more */
    ASSERT_OK(weft_mutex_try_lock(m));
    ASSERT_EQ(-EAGAIN, weft_mutex_try_lock(m));     /* mutual exclusion */
    ASSERT_OK(weft_mutex_unlock(m));
    ASSERT_EQ(-EINVAL, weft_mutex_unlock(m));       /* not locked */
    weft_mutex_free(m);
    ASSERT_CW_BALANCED(&c);
}

/* The same for the rwlock's writer: never more than every permit. */
TEST(rwlock_write_grant_dropped_after_unlock_keeps_one_writer)
{
    weft_rwlock *rw;
    weft_rwlock_write f;
    cwaker c = { 0 };
    weft_waker w = cw_waker(&c);
    weft_context cx = weft_context_from_waker(&w);
    int res = 1;

    ASSERT_OK(weft_rwlock_new(&rw));
    ASSERT_OK(weft_rwlock_try_read(rw));
    weft_rwlock_write_init(&f, rw);
    ASSERT_EQ(WEFT_PENDING, weft_rwlock_write_poll(&f, &cx, &res));
    ASSERT_OK(weft_rwlock_unlock_read(rw));         /* handed to f */
    ASSERT_OK(weft_rwlock_unlock_write(rw));        /* f's lock, unlocked by another */
    weft_rwlock_write_drop(&f);
    ASSERT_OK(weft_rwlock_try_write(rw));
    ASSERT_EQ(-EAGAIN, weft_rwlock_try_write(rw));
    ASSERT_EQ(-EAGAIN, weft_rwlock_try_read(rw));
    ASSERT_OK(weft_rwlock_unlock_write(rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_write(rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_read(rw));
    weft_rwlock_free(rw);
    ASSERT_CW_BALANCED(&c);
}

/* rwlock unlock misuse: the wrong unlock for the way it is held. */
TEST(rwlock_wrong_unlocks_are_refused)
{
    weft_rwlock *rw;

    ASSERT_OK(weft_rwlock_new(&rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_read(rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_write(rw));
    ASSERT_OK(weft_rwlock_try_write(rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_read(rw));
    ASSERT_EQ(-EAGAIN, weft_rwlock_try_read(rw));
    ASSERT_OK(weft_rwlock_unlock_write(rw));
    ASSERT_OK(weft_rwlock_try_read(rw));
    ASSERT_OK(weft_rwlock_try_read(rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_write(rw));
    ASSERT_EQ(-EAGAIN, weft_rwlock_try_write(rw));
    ASSERT_OK(weft_rwlock_unlock_read(rw));
    ASSERT_OK(weft_rwlock_unlock_read(rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_read(rw));
    weft_rwlock_free(rw);
}

/* lock.h: try_acquire is -EAGAIN "when fewer than n are free or an acquire
 * is already waiting (FIFO: even for n == 0)"; n above the ceiling is
 * -EINVAL for the future and the blocking form. */
TEST(sem_try_acquire_zero_and_absurd_counts)
{
    weft_sem *s;
    weft_sem_acquire a;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = 1;

    ASSERT_EQ(-EINVAL, weft_sem_new(&s, WEFT_SEM_MAX_PERMITS + 1));
    ASSERT_OK(weft_sem_new(&s, 1));
    ASSERT_OK(weft_sem_try_acquire(s, 0));
    ASSERT_EQ(-EAGAIN, weft_sem_try_acquire(s, 2));
    weft_sem_acquire_init(&a, s, 2);
    ASSERT_EQ(WEFT_PENDING, weft_sem_acquire_poll(&a, &cx, &res));
    ASSERT_EQ(-EAGAIN, weft_sem_try_acquire(s, 0));
    ASSERT_EQ(-EAGAIN, weft_sem_try_acquire(s, 1)); /* one free, but a is first */
    ASSERT_EQ(-EINVAL, weft_sem_release(s, SIZE_MAX));
    ASSERT_EQ(-EINVAL, weft_sem_release(s, WEFT_SEM_MAX_PERMITS));
    ASSERT_OK(weft_sem_release(s, 1));
    ASSERT_EQ(WEFT_READY, weft_sem_acquire_poll(&a, &cx, &res));
    ASSERT_OK(res);
    weft_sem_acquire_drop(&a);
    ASSERT_OK(weft_sem_try_acquire(s, 0));
    weft_sem_acquire_init(&a, s, WEFT_SEM_MAX_PERMITS + 1);
    ASSERT_EQ(WEFT_READY, weft_sem_acquire_poll(&a, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_sem_acquire_drop(&a);
    ASSERT_EQ(-EINVAL, weft_sem_acquire_wait(s, WEFT_SEM_MAX_PERMITS + 1));
    ASSERT_EQ(-EINVAL, weft_sem_acquire_wait(NULL, 1));
    ASSERT_EQ(-EINVAL, weft_mutex_lock_wait(NULL));
    weft_sem_close(s);
    ASSERT_EQ(-EPIPE, weft_sem_acquire_wait(s, 0));
    ASSERT_EQ(-EPIPE, weft_sem_try_acquire(s, 0));
    ASSERT_OK(weft_sem_release(s, 2));              /* allowed after close */
    ASSERT_EQ(2, weft_sem_available(s));
    weft_sem_free(s);
}

/* notify: a wait initialised before a notify_all completes through it and
 * leaves the stored permit of an earlier notify_one to the next wait. */
TEST(notify_permit_survives_a_notify_all_wait)
{
    weft_notify *n;
    weft_notify_wait w1, w2, w3;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = 1;

    ASSERT_OK(weft_notify_new(&n));
    weft_notify_wait_init(&w1, n);
    weft_notify_one(n);                             /* nobody parked: a permit */
    weft_notify_one(n);                             /* still one permit */
    weft_notify_all(n);
    ASSERT_EQ(WEFT_READY, weft_notify_wait_poll(&w1, &cx, &res));
    ASSERT_OK(res);
    weft_notify_wait_init(&w2, n);
    ASSERT_EQ(WEFT_READY, weft_notify_wait_poll(&w2, &cx, &res));  /* the permit */
    weft_notify_wait_init(&w3, n);
    ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&w3, &cx, &res)); /* only one */
    weft_notify_wait_drop(&w1);
    weft_notify_wait_drop(&w2);
    weft_notify_wait_drop(&w3);
    weft_notify_free(n);
}

/* barrier of one party: every wait is its generation's leader at once. */
TEST(barrier_of_one_party)
{
    weft_barrier *b;
    weft_barrier_wait w;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = 0;

    ASSERT_EQ(-EINVAL, weft_barrier_new(&b, 0));
    ASSERT_OK(weft_barrier_new(&b, 1));
    for (int i = 0; i < 3; i++) {
        weft_barrier_wait_init(&w, b);
        ASSERT_EQ(WEFT_READY, weft_barrier_wait_poll(&w, &cx, &res));
        ASSERT_EQ(WEFT_BARRIER_LEADER, res);
        weft_barrier_wait_drop(&w);
        ASSERT_EQ(0, weft_barrier_waiting(b));
    }
    weft_barrier_free(b);
}
