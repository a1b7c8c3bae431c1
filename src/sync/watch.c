/* SPDX-License-Identifier: MIT */
/* Watch channel: one value, the latest, observed by any number of receivers.
 *
 * The object holds the value, a version (bumped by every send) and one wait
 * list for the `changed` futures of every receiver. A receiver is a small
 * handle with the version it saw last. A `changed` future never takes
 * anything from the object, only looks at it: it completes when the version
 * differs from its receiver's (copying the value and moving the receiver's
 * version up to the current one), or when the object is closed and there is
 * nothing new to see. So a send wakes every waiter and a dropped future has
 * nothing to give back or pass on.
 *
 * A waiter records in w.gen the version it parked at. Waiters only park
 * while their receiver has seen the current version, so the list holds
 * versions in order and a send wakes the prefix of older ones (in batches,
 * unlocking in between, as notify_all does); one that parks meanwhile waits
 * for the next send.
 *
 * The object is reference-counted: the sender and every receiver hold one
 * reference. Dropping the sender also closes (nobody can send any more). */
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "sync/waitq.h"
#include "util/alloc.h"
#include "weft/chan.h"

struct weft_watch {
    _Atomic size_t refs;
    pthread_mutex_t lock;
    size_t size;                   /* immutable */
    uint64_t version;              /* ->lock */
    bool closed;                   /* ->lock */
    struct weft__waitq q;          /* ->lock: changed futures, by version */
    alignas(max_align_t) unsigned char value[];   /* ->lock */
};

_Static_assert(sizeof(weft_watch_changed) <= 96, "the changed future stays small");

struct weft_watch_rx {
    struct weft_watch *w;          /* a reference */
    uint64_t seen;                 /* ->w->lock; the receiver's owner */
};

WEFT_API int weft_watch_new(weft_watch **out, size_t size, const void *initial)
{
    struct weft_watch *w;

    if (out == NULL || initial == NULL || size == 0 || size > WEFT_FUTURE_MAX_SIZE)
        return -EINVAL;
    w = weft__calloc(1, sizeof(*w) + size);
    if (w == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&w->lock, NULL) != 0) {
        weft__free(w);
        return -ENOMEM;
    }
    /* relaxed: not yet shared; publishing *out is the caller's business */
    atomic_init(&w->refs, 1);
    w->size = size;
    memcpy(w->value, initial, size);
    *out = w;
    return 0;
}

static void watch_unref(struct weft_watch *w)
{
    /* acq_rel: the release half orders our uses of the object before the
     * free; the acquire half, in the thread that drops the last reference,
     * pairs with every other holder's release (an RMW rather than a fence,
     * which ThreadSanitizer does not model) */
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1)
        return;
    assert(waitq_empty(&w->q));
    pthread_mutex_destroy(&w->lock);
    weft__free(w);
}

WEFT_API void weft_watch_close(weft_watch *w)
{
    struct wake_batch b = { 0 };
    bool more;

    if (w == NULL)
        return;
    sync_lock(&w->lock);
    w->closed = true;
    do {
        /* nobody parks once closed, so the list only shrinks */
        while (!wake_batch_full(&b) && !waitq_empty(&w->q))
            waitq_wake_one(&w->q, WHY_CLOSED, &b);
        more = !waitq_empty(&w->q);
        sync_unlock(&w->lock);
        wake_batch_run(&b);
        if (more)
            sync_lock(&w->lock);
    } while (more);
}

WEFT_API void weft_watch_drop(weft_watch *w)
{
    if (w == NULL)
        return;
    weft_watch_close(w);
    watch_unref(w);
}

WEFT_API int weft_watch_send(weft_watch *w, const void *value)
{
    struct wake_batch b = { 0 };
    bool more;

    if (w == NULL || value == NULL)
        return -EINVAL;
    sync_lock(&w->lock);
    if (w->closed) {
        sync_unlock(&w->lock);
        return -EPIPE;
    }
    memcpy(w->value, value, w->size);
    w->version++;
    do {
        /* waiters parked at an older version form a prefix of the list */
        while (!wake_batch_full(&b) && w->q.first && w->q.first->gen != w->version)
            waitq_wake_one(&w->q, WHY_READY, &b);
        more = w->q.first && w->q.first->gen != w->version;
        sync_unlock(&w->lock);
        wake_batch_run(&b);
        if (more)
            sync_lock(&w->lock);
    } while (more);
    return 0;
}

WEFT_API uint64_t weft_watch_version(const weft_watch *w)
{
    struct weft_watch *m = (struct weft_watch *)w;
    uint64_t v;

    if (m == NULL)
        return 0;
    sync_lock(&m->lock);
    v = m->version;
    sync_unlock(&m->lock);
    return v;
}

WEFT_API int weft_watch_rx_new(weft_watch_rx **out, weft_watch *w)
{
    struct weft_watch_rx *rx;

    if (out == NULL || w == NULL)
        return -EINVAL;
    rx = weft__malloc(sizeof(*rx));
    if (rx == NULL)
        return -ENOMEM;
    /* relaxed: the caller holds the sender's reference, so the count
     * cannot reach zero meanwhile (as any refcount increment) */
    atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
    rx->w = w;
    sync_lock(&w->lock);
    rx->seen = w->version;
    sync_unlock(&w->lock);
    *out = rx;
    return 0;
}

WEFT_API void weft_watch_rx_drop(weft_watch_rx *rx)
{
    if (rx == NULL)
        return;
    watch_unref(rx->w);
    weft__free(rx);
}

WEFT_API int weft_watch_get(weft_watch_rx *rx, void *dst)
{
    struct weft_watch *w;

    if (rx == NULL || dst == NULL)
        return -EINVAL;
    w = rx->w;
    sync_lock(&w->lock);
    memcpy(dst, w->value, w->size);
    sync_unlock(&w->lock);
    return 0;
}

WEFT_API int weft_watch_has_changed(weft_watch_rx *rx)
{
    struct weft_watch *w;
    int ret;

    if (rx == NULL)
        return -EINVAL;
    w = rx->w;
    sync_lock(&w->lock);
    if (w->version != rx->seen)
        ret = 1;
    else
        ret = w->closed ? -EPIPE : 0;
    sync_unlock(&w->lock);
    return ret;
}

/* ---- Changed future ------------------------------------------------------------ */
WEFT_API void weft_watch_changed_init(weft_watch_changed *c, weft_watch_rx *rx, void *dst)
{
    if (c == NULL)
        return;
    c->rx = rx;
    c->dst = dst;
    c->result = 0;
    waiter_reset(&c->w);
}

WEFT_API weft_poll weft_watch_changed_poll(weft_watch_changed *c, weft_context *cx, int *result)
{
    struct weft_watch *w;
    weft_waker old = WEFT_WAKER_EMPTY;
    int ret = 0;

    if (c == NULL || result == NULL) {   /* misuse: -EINVAL if it can be told */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (c->rx == NULL || c->dst == NULL || cx == NULL || cx->waker == NULL) {
        *result = -EINVAL;
        return WEFT_READY;
    }
    if (c->w.owner == O_DONE) {
        *result = c->result;
        return WEFT_READY;
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;               /* the task was woken already */
    w = c->rx->w;
    sync_lock(&w->lock);
    if (w->version != c->rx->seen) {
        memcpy(c->dst, w->value, w->size);
        c->rx->seen = w->version;
    } else if (w->closed) {
        ret = -EPIPE;
    } else {
        /* a waiter that is still linked keeps its place and version: it
         * parked at the version its receiver has seen, which is current */
        if (c->w.state != W_WAITING)
            c->w.gen = w->version;
        old = waitq_park(&w->q, &c->w, cx, false);
        sync_unlock(&w->lock);
        weft_waker_drop(&old);
        return WEFT_PENDING;
    }
    old = waitq_finish(&w->q, &c->w);
    sync_unlock(&w->lock);
    weft_waker_drop(&old);
    c->result = ret;
    *result = ret;
    return WEFT_READY;
}

WEFT_API void weft_watch_changed_drop(weft_watch_changed *c)
{
    struct weft_watch *w;
    weft_waker old;

    if (c == NULL || c->rx == NULL)
        return;
    if (c->w.owner == O_PARKED) {
        w = c->rx->w;
        sync_lock(&w->lock);
        old = waitq_finish(&w->q, &c->w);  /* a wake-all: nothing to pass on */
        sync_unlock(&w->lock);
        weft_waker_drop(&old);
    }
    c->w.owner = O_DONE;
    c->rx = NULL;
}
