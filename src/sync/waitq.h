/* SPDX-License-Identifier: MIT */
/* Wait lists of the sync layer (internal).
 *
 * Every sync object keeps its waiting futures in a FIFO of weft_sync_waiter
 * nodes that live inside the futures (intrusive, as musl's and libuv's
 * waiters): awaiting never allocates. The list and every field of a node are
 * guarded by the object's lock.
 *
 * A node moves through these states (all under ->lock):
 *
 *   IDLE ──park──► WAITING ──wake (by a notifier)──► WOKEN ──poll──► DONE
 *     ▲                │                               │
 *     └────────────────┴──────── poll/drop ────────────┘ (drop: pass the wake on)
 *
 * WOKEN means "unlinked and owed a poll": the notifier has moved the node's
 * waker out and will wake it after unlocking. The node's `why` says what the
 * wake carries (a grant of permits, a close, a notify), so that a future
 * dropped while WOKEN can give back exactly what it was handed. Wakers are
 * never called under the lock: they are collected in a wake_batch and woken
 * after unlocking. */
#ifndef WEFT_SYNC_WAITQ_H
#define WEFT_SYNC_WAITQ_H

#include <assert.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "weft/chan.h"

enum {
    W_IDLE = 0,        /* not linked; zeroed futures start here */
    W_WAITING,         /* linked in the wait list, waker stored */
    W_WOKEN,           /* unlinked by a notifier, not yet polled */
    W_DONE,            /* completed or dropped */
};

/* `owner`: what the future's owner knows without the lock (the shared
 * `state` may change from WAITING to WOKEN under it at any time). */
enum {
    O_IDLE = 0,        /* never parked since init */
    O_PARKED,          /* parked: state is WAITING or WOKEN */
    O_DONE,            /* completed or dropped: no notifier can reach it */
};

enum {
    WHY_NONE = 0,
    WHY_READY,         /* channel: try again (message or room may be there) */
    WHY_CLOSED,        /* the object was closed */
    WHY_GRANT,         /* semaphore: w->n permits now belong to this waiter */
    WHY_ONE,           /* notify_one chose this waiter */
    WHY_ALL,           /* notify_all */
};

/* The futures users embed stay small: a waiter node fits a cache line. */
_Static_assert(sizeof(weft_sync_waiter) <= 64, "waiter node fits a cache line");
_Static_assert(sizeof(weft_chan_recv) <= 96 && sizeof(weft_chan_send) <= 96,
               "channel futures stay small");

struct weft__waitq {
    weft_sync_waiter *first, *last;
};

static inline bool waitq_empty(const struct weft__waitq *q)
{
    return q->first == NULL;
}

static inline void waitq_push_back(struct weft__waitq *q, weft_sync_waiter *w)
{
    w->next = NULL;
    w->prev = q->last;
    if (q->last)
        q->last->next = w;
    else
        q->first = w;
    q->last = w;
}

static inline void waitq_push_front(struct weft__waitq *q, weft_sync_waiter *w)
{
    w->prev = NULL;
    w->next = q->first;
    if (q->first)
        q->first->prev = w;
    else
        q->last = w;
    q->first = w;
}

static inline void waitq_remove(struct weft__waitq *q, weft_sync_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        q->first = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->last = w->prev;
    w->prev = w->next = NULL;
}

/* Wakers collected under a lock, woken after it is released. */
#define WAKE_BATCH 32

struct wake_batch {
    unsigned n;
    weft_waker w[WAKE_BATCH];
};

/* Start an empty batch. Only `n` is set: `= { 0 }` would clear all 512
 * bytes on every operation, which costs more than a fast-path operation. */
static inline void wake_batch_init(struct wake_batch *b)
{
    b->n = 0;
}

static inline bool wake_batch_full(const struct wake_batch *b)
{
    return b->n == WAKE_BATCH;
}

/* Wake and empty the batch; call it without the lock. */
static inline void wake_batch_run(struct wake_batch *b)
{
    for (unsigned i = 0; i < b->n; i++)
        weft_waker_wake(&b->w[i]);
    b->n = 0;
}

/* Unlink waiter `w` (WAITING) as WOKEN for `why` and return its waker, to
 * be woken after unlocking (waitq_wake(): into `b`, which must have room).
 * ->lock held.
 *
 * WOKEN is stored last, with release: an owner that reads it with
 * waiter_is_woken() may then use `why` and the node without the lock (no
 * notifier touches an unlinked node). Every other write of `state` is made
 * by the owner itself, so this is the only store that can race with that
 * read. */
static inline weft_waker waitq_unlink_woken(struct weft__waitq *q, weft_sync_waiter *w,
                                            unsigned why)
{
    weft_waker waker = w->waker;

    waitq_remove(q, w);
    w->why = (unsigned char)why;
    w->waker = WEFT_WAKER_EMPTY;
    /* release: pairs with the acquire load in waiter_is_woken() */
    __atomic_store_n(&w->state, (unsigned char)W_WOKEN, __ATOMIC_RELEASE);
    return waker;
}

static inline void waitq_wake(struct weft__waitq *q, weft_sync_waiter *w, unsigned why,
                              struct wake_batch *b)
{
    b->w[b->n] = waitq_unlink_woken(q, w, why);
    b->n++;
}

/* Without the lock, by the owner of a parked node: true when a notifier has
 * unlinked it as WOKEN; `why` may then be read and the node finished
 * without the lock (its waker was moved out). False: ask again under the
 * lock. */
static inline bool waiter_is_woken(const weft_sync_waiter *w)
{
    /* acquire: pairs with the release store in waitq_wake() */
    return __atomic_load_n(&w->state, __ATOMIC_ACQUIRE) == W_WOKEN;
}

/* Wake the oldest waiter, if any. ->lock held; `b` must have room. */
static inline void waitq_wake_one(struct weft__waitq *q, unsigned why, struct wake_batch *b)
{
    if (q->first)
        waitq_wake(q, q->first, why, b);
}

/* *dst = weft_waker_clone(src), stored a field at a time. Written as that
 * one assignment (or as two plain field stores), gcc -O3 pairs the clone's
 * two return registers into one 16-byte store through the stack: two
 * 8-byte stores reloaded as one 16-byte value, which the store buffer
 * cannot forward, so the load waits for both stores to reach the cache
 * (perf, W4 on 1 worker: two thirds of ring_recv_locked()'s samples fell
 * there, the park of every message). */
static inline void waker_store_clone(weft_waker *dst, const weft_waker *src)
{
    if (src->vtable) {
        weft_waker nw = src->vtable->clone(src->data);

        dst->data = nw.data;
        /* a compiler barrier: keeps the vectorizer from pairing the two
         * stores (through the stack) again */
        __asm__ volatile("" ::: "memory");
        dst->vtable = nw.vtable;
    } else {
        dst->data = NULL;
        dst->vtable = NULL;
    }
}

/* Park `w` (IDLE, WOKEN or WAITING) with cx's waker: link it if it is not
 * linked (at the front when `front`), and store a clone of the waker unless
 * the stored one wakes the same task. Returns the waker it replaced, to be
 * dropped after unlocking. ->lock held. */
static inline weft_waker waitq_park(struct weft__waitq *q, weft_sync_waiter *w,
                                    weft_context *cx, bool front)
{
    weft_waker old = WEFT_WAKER_EMPTY;

    if (w->state != W_WAITING) {
        if (front)
            waitq_push_front(q, w);
        else
            waitq_push_back(q, w);
        w->state = W_WAITING;
        w->why = WHY_NONE;
    }
    w->owner = O_PARKED;
    if (!weft_waker_will_wake(&w->waker, weft_context_waker(cx))) {
        old = w->waker;
        waker_store_clone(&w->waker, weft_context_waker(cx));
    }
    return old;
}

/* Take `w` out of the list if it is there and mark it DONE; returns its
 * waker, to be dropped after unlocking. ->lock held. */
static inline weft_waker waitq_finish(struct weft__waitq *q, weft_sync_waiter *w)
{
    weft_waker old = w->waker;

    if (w->state == W_WAITING)
        waitq_remove(q, w);
    w->state = W_DONE;
    w->why = WHY_NONE;
    w->owner = O_DONE;
    w->waker = WEFT_WAKER_EMPTY;
    return old;
}

static inline void waiter_reset(weft_sync_waiter *w)
{
    w->prev = w->next = NULL;
    w->waker = WEFT_WAKER_EMPTY;
    w->n = 0;
    w->gen = 0;
    w->state = W_IDLE;
    w->why = WHY_NONE;
    w->owner = O_IDLE;
}

/* A mutex per object (prefer a mutex until a benchmark shows need). */
static inline void sync_lock(pthread_mutex_t *m)
{
    int err = pthread_mutex_lock(m);

    (void)err;
    assert(err == 0);
}

static inline void sync_unlock(pthread_mutex_t *m)
{
    int err = pthread_mutex_unlock(m);

    (void)err;
    assert(err == 0);
}

/* A test-and-test-and-set spinlock, for objects whose common paths are
 * lock-free and that lock only to link or wake a waiter: the semaphore
 * (hence the mutex and the rwlock). Held for a few dozen instructions,
 * never across a waker call or an allocation. A waiter that spins too long
 * yields its CPU, so a holder preempted by the OS still gets to run.
 * Against a pthread mutex it saves the call and the RMW of every unlock:
 * M1 (contended weft_mutex, 2 workers) went from 121 to 92 ns per
 * lock/unlock. The channel uses it too: its C1/C4 lock rarely, but W4
 * (ping-pong over capacity-1 channels) locks twice per message, and the
 * mutex pair was ~106 of its ~984 instructions per message (callgrind). */
typedef _Atomic unsigned char weft__spinlock;

#define SPIN_YIELD_AFTER 64

static inline void spin_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline void spin_init(weft__spinlock *l)
{
    /* relaxed (atomic_init): not yet shared */
    atomic_init(l, 0);
}

/* The contended part of spin_lock(), out of line: the caller's frame then
 * needs no registers kept across a sched_yield() call, which is most of
 * the cost of a short locked section (W4 locks twice per message). */
static __attribute__((noinline, cold)) void spin_lock_contended(weft__spinlock *l)
{
    unsigned spins = 0;

    do {
        /* relaxed: only waits for a 0; the exchange below re-checks it */
        while (atomic_load_explicit(l, memory_order_relaxed)) {
            if (++spins < SPIN_YIELD_AFTER)
                spin_relax();
            else
                sched_yield();
        }
        /* acquire: pairs with the release store in spin_unlock() */
    } while (atomic_exchange_explicit(l, 1, memory_order_acquire));
}

static inline void spin_lock(weft__spinlock *l)
{
    /* acquire: pairs with the release store in spin_unlock() */
    if (__builtin_expect(atomic_exchange_explicit(l, 1, memory_order_acquire), 0))
        spin_lock_contended(l);
}

static inline void spin_unlock(weft__spinlock *l)
{
    /* release: pairs with the acquire exchange in spin_lock() */
    atomic_store_explicit(l, 0, memory_order_release);
}

#endif
