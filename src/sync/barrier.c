/* SPDX-License-Identifier: MIT */
/* Barrier: n parties, reusable, one leader per generation.
 *
 * A wait future arrives at its first poll: it counts itself in and parks
 * with the current generation in w.gen. The arrival that makes the count n
 * is the leader: it resets the count, starts the next generation and wakes
 * every waiter of the one just completed (they form a prefix of the list,
 * since later arrivals park behind them; woken in batches, unlocking in
 * between, as notify_all does). A waiter completes when it was woken or
 * when its generation is no longer current (released, still linked while
 * the leader wakes a long list in batches).
 *
 * Dropping a waiter that arrived in the current generation takes its
 * arrival back (count - 1): the barrier waits for another party. Dropping
 * one whose generation was released changes nothing. */
#include <stdint.h>

#include "sync/waitq.h"
#include "util/alloc.h"
#include "weft/lock.h"

struct weft_barrier {
    pthread_mutex_t lock;
    size_t n;                      /* immutable: parties per generation */
    size_t count;                  /* ->lock: arrived in this generation */
    uint64_t gen;                  /* ->lock: current generation */
    struct weft__waitq q;          /* ->lock: by generation */
};

_Static_assert(sizeof(weft_barrier_wait) <= 96, "the wait future stays small");

WEFT_API int weft_barrier_new(weft_barrier **out, size_t n)
{
    struct weft_barrier *b;

    if (out == NULL || n == 0)
        return -EINVAL;
    b = weft__calloc(1, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        weft__free(b);
        return -ENOMEM;
    }
    b->n = n;
    *out = b;
    return 0;
}

WEFT_API void weft_barrier_free(weft_barrier *b)
{
    if (b == NULL)
        return;
    assert(waitq_empty(&b->q));
    pthread_mutex_destroy(&b->lock);
    weft__free(b);
}

WEFT_API size_t weft_barrier_waiting(const weft_barrier *b)
{
    struct weft_barrier *m = (struct weft_barrier *)b;
    size_t n;

    if (m == NULL)
        return 0;
    sync_lock(&m->lock);
    n = m->count;
    sync_unlock(&m->lock);
    return n;
}

/* Wake the waiters of released generations and unlock. ->lock held on
 * entry, released on return. */
static void barrier_release_unlock(struct weft_barrier *b)
{
    struct wake_batch wb = { 0 };
    bool more;

    for (;;) {
        while (!wake_batch_full(&wb) && b->q.first && b->q.first->gen != b->gen)
            waitq_wake_one(&b->q, WHY_READY, &wb);
        more = b->q.first && b->q.first->gen != b->gen;
        sync_unlock(&b->lock);
        wake_batch_run(&wb);
        if (!more)
            return;
        sync_lock(&b->lock);
    }
}

/* ---- Wait future ---------------------------------------------------------------- */
WEFT_API void weft_barrier_wait_init(weft_barrier_wait *w, weft_barrier *b)
{
    if (w == NULL)
        return;
    w->bar = b;
    w->result = 0;
    waiter_reset(&w->w);
}

WEFT_API weft_poll weft_barrier_wait_poll(weft_barrier_wait *w, weft_context *cx, int *result)
{
    struct weft_barrier *b;
    weft_waker old = WEFT_WAKER_EMPTY;
    int ret = 0;

    if (w == NULL || result == NULL) {   /* misuse: -EINVAL if it can be told */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    b = w->bar;
    if (b == NULL || cx == NULL || cx->waker == NULL) {
        *result = -EINVAL;
        return WEFT_READY;
    }
    if (w->w.owner == O_DONE) {
        *result = w->result;
        return WEFT_READY;
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;               /* the task was woken already */
    sync_lock(&b->lock);
    if (w->w.state == W_IDLE) {
        if (++b->count == b->n) {          /* the last arrival leads */
            b->count = 0;
            b->gen++;
            old = waitq_finish(&b->q, &w->w);
            w->result = WEFT_BARRIER_LEADER;
            *result = WEFT_BARRIER_LEADER;
            barrier_release_unlock(b);
            weft_waker_drop(&old);
            return WEFT_READY;
        }
        w->w.gen = b->gen;
    } else if (w->w.state == W_WOKEN || w->w.gen != b->gen) {
        goto released;
    }
    old = waitq_park(&b->q, &w->w, cx, false);
    sync_unlock(&b->lock);
    weft_waker_drop(&old);
    return WEFT_PENDING;
released:
    old = waitq_finish(&b->q, &w->w);
    sync_unlock(&b->lock);
    weft_waker_drop(&old);
    w->result = ret;
    *result = ret;
    return WEFT_READY;
}

WEFT_API void weft_barrier_wait_drop(weft_barrier_wait *w)
{
    struct weft_barrier *b;
    weft_waker old;

    if (w == NULL || w->bar == NULL)
        return;
    b = w->bar;
    if (w->w.owner == O_PARKED) {
        sync_lock(&b->lock);
        if (w->w.state == W_WAITING && w->w.gen == b->gen) {
            assert(b->count > 0);
            b->count--;                    /* arrived, not released: leave */
        }
        old = waitq_finish(&b->q, &w->w);
        sync_unlock(&b->lock);
        weft_waker_drop(&old);
    }
    w->w.owner = O_DONE;
    w->bar = NULL;
}
