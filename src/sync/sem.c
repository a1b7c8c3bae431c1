/* SPDX-License-Identifier: MIT */
/* Counting semaphore, strictly FIFO, with a lock-free fast path.
 *
 * Permits are handed out at release time, under the lock: release() adds to
 * the free count and then grants the head of the line while it fits
 * (`grant`), moving those permits into the waiter (WOKEN, why = GRANT). The
 * waiter observes the grant when polled. A fresh acquire or try_acquire never
 * takes permits while anyone waits, so nobody overtakes the head. Dropping a
 * future gives back exactly what it holds: a WAITING one leaves the line
 * (which may let those behind it through: grant again); a granted one
 * releases its permits (to the next in line).
 *
 * The free count, the CLOSED flag and a WAITERS flag share one atomic word
 * (sem.h), so that nobody takes ->lock (a spinlock, waitq.h) while nobody
 * waits:
 *
 *   transition                by                        lock  condition (checked in the same CAS)
 *   take n     free -= n      try_acquire, first poll   no    !WAITERS, !CLOSED, free >= n
 *   give n     free += n      release                   no    !WAITERS, free + n <= max
 *   give n     free += n      release, granted drop     yes   !WAITERS (the line emptied)
 *   park       |= WAITERS     first poll, slow path     yes   !CLOSED, and free < n or
 *                                                             WAITERS already
 *   grant      store          release, drop, grant      yes   WAITERS: free + given - granted,
 *                                                             WAITERS cleared if the line empties
 *   close      |= CLOSED      close                     yes
 *   line empty &= ~WAITERS    close                     yes
 *
 * Invariants (at every release of ->lock):
 *   I1  WAITERS is set exactly when the line is not empty. It changes only
 *       under ->lock, together with the line.
 *   I2  While WAITERS is set the word changes only under ->lock: both fast
 *       paths fail on it (try_acquire: -EAGAIN, FIFO; release: takes the
 *       lock). So the grant reads a stable count and writes the result
 *       with a plain store; a contended mutex's unlock, which hands its
 *       permit straight to the next waiter, leaves the word as it was.
 *   I3  While WAITERS is set, the head asks for more than is free (grant
 *       runs after every addition made under the lock).
 *   I4  The free count never exceeds max. A release that would pass it is
 *       refused; permits given back by a granted acquire dropped before it
 *       saw its grant are clamped to it (sem_grant_unlock()): while granted
 *       they were not free, so a release (any caller may release) may have
 *       filled their room meanwhile; the excess is discarded, as a release
 *       of it would have been refused. Without the clamp a mutex could be
 *       held twice and the ceiling check (max - free) would wrap.
 * No lost wake-up: a waiter parks with one CAS that reads the free count
 * and sets WAITERS. A release whose CAS comes earlier in the word's
 * modification order is seen by that CAS (the acquirer takes the permits
 * instead of parking, unless someone is ahead of it, who is then granted
 * first: I3); a release whose CAS comes later sees WAITERS (I2) and grants
 * under the lock, which it can only take after the waiter is linked.
 *
 * A waiter learns of its grant without the lock: waitq_wake() stores WOKEN
 * last, with release, after `why`; the owner's acquire load of it
 * (waiter_is_woken()) then owns the node again (unlinked, waker moved out).
 *
 * Memory order: a fast take is an acquire CAS, a fast give a release CAS
 * (pairing with each other, as a lock and an unlock); RMWs and stores under
 * ->lock are acq_rel / release, so they pair with the fast paths; a grant
 * is handed over through WOKEN (release/acquire), which orders the
 * releaser's critical section before the waiter's. */
#include <string.h>

#include "sync/sem.h"
#include "util/alloc.h"

static inline size_t sem_free(size_t st)
{
    return st >> SEM_SHIFT;
}

int weft__sem_init(struct weft_sem *s, size_t permits, size_t max)
{
    memset(s, 0, sizeof(*s));
    spin_init(&s->lock);
    /* relaxed: not yet shared; publishing the object is the caller's business */
    atomic_init(&s->state, permits << SEM_SHIFT);
    s->max = max;
    return 0;
}

void weft__sem_destroy(struct weft_sem *s)
{
    (void)s;
    assert(waitq_empty(&s->q));
}

WEFT_API int weft_sem_new(weft_sem **out, size_t permits)
{
    struct weft_sem *s;

    if (out == NULL || permits > WEFT_SEM_MAX_PERMITS)
        return -EINVAL;
    s = weft__malloc(sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    if (weft__sem_init(s, permits, WEFT_SEM_MAX_PERMITS) < 0) {
        weft__free(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

WEFT_API void weft_sem_free(weft_sem *s)
{
    if (s == NULL)
        return;
    weft__sem_destroy(s);
    weft__free(s);
}

/* The fast take: 0 with n permits taken, -EPIPE closed, -EAGAIN when fewer
 * than n are free or someone waits (FIFO). No lock. */
static int sem_try_take(struct weft_sem *s, size_t n)
{
    /* relaxed: only a first guess; the CAS below re-checks it */
    size_t cur = atomic_load_explicit(&s->state, memory_order_relaxed);

    for (;;) {
        if (cur & SEM_CLOSED)
            return -EPIPE;
        if ((cur & SEM_WAITERS) || sem_free(cur) < n)
            return -EAGAIN;
        if (atomic_compare_exchange_weak_explicit(&s->state, &cur, cur - (n << SEM_SHIFT),
                memory_order_acquire,  /* pairs: the release CAS of a give (fast
                                        * or under ->lock): we take the lock after
                                        * the previous holder's unlock */
                memory_order_relaxed)) /* failed: retry with the new cur */
            return 0;
    }
}

/* Clear WAITERS once the line is empty (I1). ->lock held. */
static void sem_sync_waiters(struct weft_sem *s)
{
    if (waitq_empty(&s->q))
        /* acq_rel: as every RMW under ->lock (pairs with the fast paths);
         * from now on they may run again */
        atomic_fetch_and_explicit(&s->state, ~SEM_WAITERS, memory_order_acq_rel);
}

/* Add `add` permits (the caller checked that they fit under max) and hand
 * free permits to the head of the line while it fits, then unlock. ->lock
 * held on entry, released on return; wakes after unlocking (in batches,
 * relocking in between: the state is consistent at every unlock).
 *
 * With WAITERS set the word is ours (I2): the new free count is computed
 * on the side and stored once, so a hand-over that uses up exactly what
 * was added (a contended mutex's unlock) changes nothing in the word. */
static void sem_grant_unlock(struct weft_sem *s, size_t add)
{
    struct wake_batch b;

    for (;;) {
        /* relaxed: WAITERS set, the word changes only under ->lock (I2);
         * clear, we only use the flag and add with an RMW */
        size_t cur = atomic_load_explicit(&s->state, memory_order_relaxed);
        size_t avail, next;
        weft_sync_waiter *w;
        bool more;

        if (!(cur & SEM_WAITERS)) {
            /* the line is empty (I1): fast paths may run, so add with an
             * RMW, clamped to max (I4) in the same CAS */
            while (add) {
                size_t room = s->max - sem_free(cur), n = add < room ? add : room;

                if (n == 0)
                    break;
                if (atomic_compare_exchange_weak_explicit(&s->state, &cur,
                        cur + (n << SEM_SHIFT),
                        memory_order_release,  /* pairs with the acquire CAS
                                                * of a fast take */
                        memory_order_relaxed)) /* failed: retry with the new cur */
                    break;
            }
            spin_unlock(&s->lock);
            return;
        }
        wake_batch_init(&b);
        /* I4: never above max (the word is stable here, I2) */
        if (add > s->max - sem_free(cur))
            add = s->max - sem_free(cur);
        avail = sem_free(cur) + add;
        add = 0;
        while ((w = s->q.first) != NULL && w->n <= avail && !wake_batch_full(&b)) {
            avail -= w->n;
            waitq_wake(&s->q, w, WHY_GRANT, &b);
        }
        more = w != NULL && w->n <= avail;
        next = avail << SEM_SHIFT | (cur & SEM_CLOSED) | (waitq_empty(&s->q) ? 0 : SEM_WAITERS);
        if (next != cur)
            /* release: a plain store is enough, nobody else writes the word
             * while WAITERS is set (I2); pairs with the acquire CAS of a
             * fast take once WAITERS is cleared here */
            atomic_store_explicit(&s->state, next, memory_order_release);
        spin_unlock(&s->lock);
        wake_batch_run(&b);
        if (!more)
            return;
        spin_lock(&s->lock);
    }
}

WEFT_API int weft_sem_try_acquire(weft_sem *s, size_t n)
{
    if (s == NULL)
        return -EINVAL;
    return sem_try_take(s, n);
}

/* Add n permits (n <= max), under ->lock or not: 0, or -EINVAL when the
 * total would exceed max. Without the lock it gives up (-EAGAIN) as soon as
 * it sees WAITERS: the caller then takes the lock and grants. */
static int sem_give(struct weft_sem *s, size_t n, bool locked)
{
    /* relaxed: only a first guess; the CAS below re-checks it */
    size_t cur = atomic_load_explicit(&s->state, memory_order_relaxed);

    for (;;) {
        if (n > s->max - sem_free(cur))
            return -EINVAL;
        if (!locked && (cur & SEM_WAITERS))
            return -EAGAIN;
        if (atomic_compare_exchange_weak_explicit(&s->state, &cur, cur + (n << SEM_SHIFT),
                memory_order_acq_rel,  /* release: pairs with the acquire CAS of a
                                        * fast take (our critical section happens
                                        * before the next holder's); acquire: as
                                        * every RMW under ->lock */
                memory_order_relaxed)) /* failed: retry with the new cur */
            return 0;
    }
}

WEFT_API int weft_sem_release(weft_sem *s, size_t n)
{
    size_t cur;
    int err;

    if (s == NULL || n > s->max)
        return -EINVAL;
    err = sem_give(s, n, false);
    if (err != -EAGAIN)
        return err;                        /* nobody waits: done, no lock */
    spin_lock(&s->lock);
    /* relaxed: with WAITERS set the word is stable under ->lock (I2);
     * without, sem_give() re-checks it in its CAS */
    cur = atomic_load_explicit(&s->state, memory_order_relaxed);
    if (!(cur & SEM_WAITERS)) {
        err = sem_give(s, n, true);        /* the line emptied meanwhile */
        spin_unlock(&s->lock);
        return err;
    }
    if (n > s->max - sem_free(cur)) {
        spin_unlock(&s->lock);
        return -EINVAL;
    }
    sem_grant_unlock(s, n);
    return 0;
}

WEFT_API void weft_sem_close(weft_sem *s)
{
    struct wake_batch b;
    bool more;

    wake_batch_init(&b);
    if (s == NULL)
        return;
    spin_lock(&s->lock);
    /* acq_rel: as every RMW under ->lock; fast takes fail from now on */
    atomic_fetch_or_explicit(&s->state, SEM_CLOSED, memory_order_acq_rel);
    do {
        /* nobody parks once closed, so the line only shrinks */
        while (!wake_batch_full(&b) && !waitq_empty(&s->q))
            waitq_wake_one(&s->q, WHY_CLOSED, &b);
        more = !waitq_empty(&s->q);
        sem_sync_waiters(s);
        spin_unlock(&s->lock);
        wake_batch_run(&b);
        if (more)
            spin_lock(&s->lock);
    } while (more);
}

WEFT_API size_t weft_sem_available(const weft_sem *s)
{
    if (s == NULL)
        return 0;
    /* relaxed: a snapshot, ordered with nothing */
    return sem_free(atomic_load_explicit(&s->state, memory_order_relaxed));
}

/* ---- Acquire future --------------------------------------------------------- */
WEFT_API void weft_sem_acquire_init(weft_sem_acquire *a, weft_sem *s, size_t n)
{
    if (a == NULL)
        return;
    a->sem = s;
    a->result = 0;
    waiter_reset(&a->w);
    a->w.n = n;
}

/* First poll that could not take the permits without the lock: take them
 * now, or set WAITERS in the same CAS and join the line. 0, -EPIPE, or
 * -EAGAIN (the caller parks). ->lock held. */
static int sem_take_or_wait(struct weft_sem *s, size_t n)
{
    /* relaxed: only a first guess; the CAS below re-checks it */
    size_t cur = atomic_load_explicit(&s->state, memory_order_relaxed);
    size_t next;

    for (;;) {
        if (cur & SEM_CLOSED)
            return -EPIPE;
        if (!(cur & SEM_WAITERS) && sem_free(cur) >= n)
            next = cur - (n << SEM_SHIFT);
        else if (!(cur & SEM_WAITERS))
            next = cur | SEM_WAITERS;
        else
            return -EAGAIN;                /* WAITERS set already: the word is ours (I2) */
        if (atomic_compare_exchange_weak_explicit(&s->state, &cur, next,
                memory_order_acq_rel,      /* as every RMW under ->lock: acquire pairs
                                            * with a fast give, release with a fast take */
                memory_order_relaxed))     /* failed: retry with the new cur */
            return next & SEM_WAITERS ? -EAGAIN : 0;
    }
}

WEFT_API weft_poll weft_sem_acquire_poll(weft_sem_acquire *a, weft_context *cx, int *result)
{
    struct weft_sem *s;
    weft_waker old = WEFT_WAKER_EMPTY;
    int ret = 0;

    if (a == NULL || result == NULL) {   /* misuse: -EINVAL if it can be told */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    s = a->sem;
    if (s == NULL || cx == NULL || cx->waker == NULL || a->w.n > s->max) {
        *result = -EINVAL;
        return WEFT_READY;
    }
    if (a->w.owner == O_DONE) {
        *result = a->result;
        return WEFT_READY;
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;               /* the task was woken already */
    if (a->w.owner == O_IDLE) {
        /* never parked: no notifier can reach the node; try without the lock */
        ret = sem_try_take(s, a->w.n);
        if (ret != -EAGAIN) {
            a->w.state = W_DONE;
            a->w.owner = O_DONE;
            a->result = ret;
            *result = ret;
            return WEFT_READY;
        }
        ret = 0;
    } else if (waiter_is_woken(&a->w)) {
        /* granted (or closed) and unlinked: the notifier is done with the
         * node, and moved its waker out; nothing to do under the lock */
        ret = a->w.why == WHY_GRANT ? 0 : -EPIPE;
        a->w.state = W_DONE;
        a->w.why = WHY_NONE;
        a->w.owner = O_DONE;
        assert(a->w.waker.vtable == NULL);
        a->result = ret;
        *result = ret;
        return WEFT_READY;
    }
    spin_lock(&s->lock);
    if (a->w.state == W_WOKEN) {
        ret = a->w.why == WHY_GRANT ? 0 : -EPIPE;
    } else if (a->w.state == W_IDLE && (ret = sem_take_or_wait(s, a->w.n)) != -EAGAIN) {
        /* taken (0) or closed (-EPIPE) */
    } else {
        /* IDLE with WAITERS now set (I1: we link ourselves before unlocking),
         * or WAITING already */
        old = waitq_park(&s->q, &a->w, cx, false);
        spin_unlock(&s->lock);
        weft_waker_drop(&old);
        return WEFT_PENDING;
    }
    old = waitq_finish(&s->q, &a->w);
    spin_unlock(&s->lock);
    weft_waker_drop(&old);
    a->result = ret;
    *result = ret;
    return WEFT_READY;
}

WEFT_API void weft_sem_acquire_drop(weft_sem_acquire *a)
{
    struct weft_sem *s;
    weft_waker old;

    if (a == NULL || a->sem == NULL)
        return;
    s = a->sem;
    if (a->w.owner == O_PARKED) {
        size_t back = 0;

        spin_lock(&s->lock);
        if (a->w.state == W_WOKEN && a->w.why == WHY_GRANT)
            back = a->w.n;                 /* handed to us, never observed: given
                                            * back up to max (I4) */
        old = waitq_finish(&s->q, &a->w);
        /* give them back; we may also have been the head holding the others
         * back: grant again (and clear WAITERS if the line is now empty) */
        sem_grant_unlock(s, back);
        weft_waker_drop(&old);
    }
    a->w.owner = O_DONE;
    a->sem = NULL;
}
