/* SPDX-License-Identifier: MIT */
/* The per-worker local run queue: a bounded ring that one thread (its owner)
 * pushes to and pops from, and that other workers steal half of.
 *
 * State:  head = (steal << 32) | real      tail (u32, written by the owner only)
 *         slots [steal, real)   being copied out by one stealer right now
 *         slots [real, tail)    queued, poppable and stealable
 * steal == real when no steal is in progress. Indices wrap at 2^32; slot i is
 * buf[i % CAP].
 *
 * Who may run concurrently:
 *                 push   pop    steal_into (as source)
 *   owner          -      -      yes
 *   other workers  yes    yes    one at a time (steal != real makes the rest
 *                                back off)
 *
 * Invariants:
 *  I1  only the owner writes tail and the slots; it writes slot i only while
 *      i - steal < CAP, so a slot a stealer is copying is never overwritten;
 *  I2  a task is taken exactly once: pop and steal both advance `real` with a
 *      CAS on head, so each index in [real, tail) goes to one winner;
 *  I3  a stealer first claims [real, real+n) (real advances, steal stays),
 *      copies, then sets steal = real (releasing the slots to the owner).
 * Orders: the owner's tail store is a release (slot contents before it);
 * pops and steals load tail with acquire and CAS head with acq_rel. */
#ifndef WEFT_SCHED_QUEUE_H
#define WEFT_SCHED_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "task/task.h"

#ifndef WEFT_LOCAL_QUEUE_CAP
#define WEFT_LOCAL_QUEUE_CAP 256      /* a power of two; tests shrink it */
#endif
#define LQ_CAP ((uint32_t)WEFT_LOCAL_QUEUE_CAP)
#define LQ_MASK (LQ_CAP - 1)

_Static_assert((WEFT_LOCAL_QUEUE_CAP & (WEFT_LOCAL_QUEUE_CAP - 1)) == 0 &&
                   WEFT_LOCAL_QUEUE_CAP >= 2,
               "local queue capacity is a power of two");

struct local_queue {
    _Alignas(64) _Atomic uint64_t head;
    _Atomic uint32_t tail;
    /* relaxed atomics: the protocol above orders them; atomics keep the
     * tools (TSan) and the compiler honest about the concurrent reads */
    _Atomic(struct weft__task *) buf[WEFT_LOCAL_QUEUE_CAP];
};

static inline uint64_t lq_pack(uint32_t steal, uint32_t real)
{
    return ((uint64_t)steal << 32) | real;
}

static inline uint32_t lq_steal(uint64_t h)
{
    return (uint32_t)(h >> 32);
}

static inline uint32_t lq_real(uint64_t h)
{
    return (uint32_t)h;
}

static inline void lq_init(struct local_queue *q)
{
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    for (uint32_t i = 0; i < LQ_CAP; i++)
        atomic_init(&q->buf[i], NULL);
}

/* Number of queued tasks (a hint when read by another thread). */
static inline uint32_t lq_len(struct local_queue *q)
{
    uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);

    return t - lq_real(h);
}

/* Owner: append `t` if there is room (true), else leave the queue alone
 * (false: the caller overflows). */
static inline bool lq_try_push(struct local_queue *q, struct weft__task *t)
{
    /* relaxed: only this thread writes tail */
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    /* acquire: pairs with the stealer's release of its slots (I3) */
    uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);

    if (tail - lq_steal(h) >= LQ_CAP)
        return false;
    atomic_store_explicit(&q->buf[tail & LQ_MASK], t, memory_order_relaxed);
    /* release: the slot before the new tail; pairs with acquire in
     * lq_steal_into() */
    atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
    return true;
}

/* Owner, when the queue is full: claim the older half, to be moved to the
 * inject queue in one batch. Returns the count claimed (LQ_CAP/2) and links
 * the tasks through ->next into *first..*last; 0 if a stealer is active or
 * took some meanwhile (then retry the push). */
static inline uint32_t lq_claim_half(struct local_queue *q, struct weft__task **first,
                                     struct weft__task **last)
{
    uint32_t n = LQ_CAP / 2;
    uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t real = lq_real(h);
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);

    if (lq_steal(h) != real || tail - real < n)
        return 0;
    /* acq_rel: claims [real, real+n) against pops and stealers (I2) */
    if (!atomic_compare_exchange_strong_explicit(&q->head, &h, lq_pack(real + n, real + n),
                                                 memory_order_acq_rel, memory_order_relaxed))
        return 0;
    *first = atomic_load_explicit(&q->buf[real & LQ_MASK], memory_order_relaxed);
    *last = *first;
    for (uint32_t i = 1; i < n; i++) {
        struct weft__task *t = atomic_load_explicit(&q->buf[(real + i) & LQ_MASK],
                                                    memory_order_relaxed);
        (*last)->next = t;
        *last = t;
    }
    (*last)->next = NULL;
    return n;
}

/* Owner: take the oldest task, or NULL. */
static inline struct weft__task *lq_pop(struct local_queue *q)
{
    uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);

    for (;;) {
        uint32_t steal = lq_steal(h), real = lq_real(h);
        uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
        uint64_t next;

        if (real == tail)
            return NULL;
        /* no steal in progress: both move; else only real (I3) */
        next = steal == real ? lq_pack(real + 1, real + 1) : lq_pack(steal, real + 1);
        /* acq_rel: I2 against stealers */
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            return atomic_load_explicit(&q->buf[real & LQ_MASK], memory_order_relaxed);
    }
}

/* Another worker (owner of `dst`, which must be empty): move half of src's
 * tasks into dst and return one of them to run now; NULL if there was
 * nothing to take or another stealer is at work on src. */
static inline struct weft__task *lq_steal_into(struct local_queue *src, struct local_queue *dst,
                                               uint32_t *stolen)
{
    uint32_t dst_tail = atomic_load_explicit(&dst->tail, memory_order_relaxed);
    uint64_t dh = atomic_load_explicit(&dst->head, memory_order_acquire);
    uint64_t h, next;
    uint32_t steal, real, n;
    struct weft__task *ret;

    /* dst's slots may still be copied out by someone stealing from us */
    if (dst_tail - lq_steal(dh) > LQ_CAP / 2)
        return NULL;
    h = atomic_load_explicit(&src->head, memory_order_acquire);
    for (;;) {
        uint32_t tail;

        steal = lq_steal(h);
        real = lq_real(h);
        if (steal != real)
            return NULL;                    /* another stealer is at work */
        /* acquire: pairs with the owner's release of tail (slot contents) */
        tail = atomic_load_explicit(&src->tail, memory_order_acquire);
        n = tail - real;
        n -= n / 2;
        if (n == 0)
            return NULL;
        if (n > LQ_CAP / 2)
            n = LQ_CAP / 2;
        /* claim [real, real+n): real moves, steal stays (I3) */
        if (atomic_compare_exchange_weak_explicit(&src->head, &h, lq_pack(steal, real + n),
                                                  memory_order_acq_rel, memory_order_acquire))
            break;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct weft__task *t = atomic_load_explicit(&src->buf[(steal + i) & LQ_MASK],
                                                    memory_order_relaxed);
        atomic_store_explicit(&dst->buf[(dst_tail + i) & LQ_MASK], t, memory_order_relaxed);
    }
    /* release the copied slots back to src's owner: steal = real */
    h = atomic_load_explicit(&src->head, memory_order_acquire);
    do {
        next = lq_pack(lq_real(h), lq_real(h));
    } while (!atomic_compare_exchange_weak_explicit(&src->head, &h, next,
                                                    memory_order_acq_rel, /* pairs: lq_try_push */
                                                    memory_order_acquire));
    *stolen = n;
    n--;
    ret = atomic_load_explicit(&dst->buf[(dst_tail + n) & LQ_MASK], memory_order_relaxed);
    if (n)
        /* release: the copied slots; pairs with acquire of other stealers */
        atomic_store_explicit(&dst->tail, dst_tail + n, memory_order_release);
    return ret;
}

#endif
