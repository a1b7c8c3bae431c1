/* SPDX-License-Identifier: MIT */
/* Broadcast channel: a ring of `cap` messages that every receiver reads at
 * its own pace.
 *
 * Messages are numbered from 0; `tail` is the number of the next one to be
 * sent, and message s lives in slot s % cap until message s + cap
 * overwrites it, so the ring holds [max(tail - cap, 0), tail). A receiver is
 * a small handle with the number of the next message it wants. If that
 * message was overwritten, the receiver is told how many it lost
 * (-EOVERFLOW) and moves to the oldest kept. Sending never waits.
 *
 * A receive future only reads the ring under the lock and moves its own
 * receiver's position, so a send wakes every waiter and a dropped future has
 * nothing to give back or pass on. As in the watch channel, a waiter
 * records in w.gen the `tail` it parked at (it parks only when it has read
 * everything), so the list holds them in order and a send wakes the prefix
 * parked before it, in batches. The object is reference-counted: the sender
 * and every receiver hold one reference; dropping the sender closes. */
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "sync/waitq.h"
#include "util/alloc.h"
#include "weft/chan.h"

struct weft_bcast {
    _Atomic size_t refs;
    pthread_mutex_t lock;
    size_t size, cap;              /* immutable */
    uint64_t tail;                 /* ->lock: number of the next message */
    bool closed;                   /* ->lock */
    struct weft__waitq q;          /* ->lock: receive futures, by tail */
    alignas(max_align_t) unsigned char buf[];     /* ->lock: cap * size */
};

_Static_assert(sizeof(weft_bcast_recv) <= 96, "the receive future stays small");

struct weft_bcast_rx {
    struct weft_bcast *b;          /* a reference */
    uint64_t next;                 /* ->b->lock; the receiver's owner */
};

WEFT_API int weft_bcast_new(weft_bcast **out, size_t size, size_t cap)
{
    struct weft_bcast *b;

    if (out == NULL || size == 0 || cap == 0 || size > WEFT_FUTURE_MAX_SIZE ||
        cap > (SIZE_MAX - sizeof(*b)) / size)
        return -EINVAL;
    b = weft__calloc(1, sizeof(*b) + size * cap);
    if (b == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        weft__free(b);
        return -ENOMEM;
    }
    /* relaxed: not yet shared; publishing *out is the caller's business */
    atomic_init(&b->refs, 1);
    b->size = size;
    b->cap = cap;
    *out = b;
    return 0;
}

static void bcast_unref(struct weft_bcast *b)
{
    /* acq_rel: the release half orders our uses of the object before the
     * free; the acquire half, in the thread that drops the last reference,
     * pairs with every other holder's release (an RMW rather than a fence,
     * which ThreadSanitizer does not model) */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    assert(waitq_empty(&b->q));
    pthread_mutex_destroy(&b->lock);
    weft__free(b);
}

WEFT_API void weft_bcast_close(weft_bcast *b)
{
    struct wake_batch wb = { 0 };
    bool more;

    if (b == NULL)
        return;
    sync_lock(&b->lock);
    b->closed = true;
    do {
        /* nobody parks once closed, so the list only shrinks */
        while (!wake_batch_full(&wb) && !waitq_empty(&b->q))
            waitq_wake_one(&b->q, WHY_CLOSED, &wb);
        more = !waitq_empty(&b->q);
        sync_unlock(&b->lock);
        wake_batch_run(&wb);
        if (more)
            sync_lock(&b->lock);
    } while (more);
}

WEFT_API void weft_bcast_drop(weft_bcast *b)
{
    if (b == NULL)
        return;
    weft_bcast_close(b);
    bcast_unref(b);
}

WEFT_API int weft_bcast_send(weft_bcast *b, const void *msg)
{
    struct wake_batch wb = { 0 };
    bool more;

    if (b == NULL || msg == NULL)
        return -EINVAL;
    sync_lock(&b->lock);
    if (b->closed) {
        sync_unlock(&b->lock);
        return -EPIPE;
    }
    memcpy(b->buf + (size_t)(b->tail % b->cap) * b->size, msg, b->size);
    b->tail++;
    do {
        /* waiters parked before this send form a prefix of the list */
        while (!wake_batch_full(&wb) && b->q.first && b->q.first->gen != b->tail)
            waitq_wake_one(&b->q, WHY_READY, &wb);
        more = b->q.first && b->q.first->gen != b->tail;
        sync_unlock(&b->lock);
        wake_batch_run(&wb);
        if (more)
            sync_lock(&b->lock);
    } while (more);
    return 0;
}

WEFT_API int weft_bcast_rx_new(weft_bcast_rx **out, weft_bcast *b)
{
    struct weft_bcast_rx *rx;

    if (out == NULL || b == NULL)
        return -EINVAL;
    rx = weft__malloc(sizeof(*rx));
    if (rx == NULL)
        return -ENOMEM;
    /* relaxed: the caller holds the sender's reference, so the count
     * cannot reach zero meanwhile (as any refcount increment) */
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    rx->b = b;
    sync_lock(&b->lock);
    rx->next = b->tail;
    sync_unlock(&b->lock);
    *out = rx;
    return 0;
}

WEFT_API void weft_bcast_rx_drop(weft_bcast_rx *rx)
{
    if (rx == NULL)
        return;
    bcast_unref(rx->b);
    weft__free(rx);
}

/* Take the receiver's next message, or report a lag; -EAGAIN when it has
 * read everything and the channel is open. ->lock held. */
static int bcast_take(struct weft_bcast *b, struct weft_bcast_rx *rx, void *dst,
                      uint64_t *missed)
{
    uint64_t oldest = b->tail > b->cap ? b->tail - b->cap : 0;

    if (rx->next < oldest) {
        if (missed)
            *missed = oldest - rx->next;
        rx->next = oldest;
        return -EOVERFLOW;
    }
    if (rx->next < b->tail) {
        memcpy(dst, b->buf + (size_t)(rx->next % b->cap) * b->size, b->size);
        rx->next++;
        return 0;
    }
    return b->closed ? -EPIPE : -EAGAIN;
}

WEFT_API int weft_bcast_try_recv(weft_bcast_rx *rx, void *dst, uint64_t *missed)
{
    int ret;

    if (rx == NULL || dst == NULL)
        return -EINVAL;
    sync_lock(&rx->b->lock);
    ret = bcast_take(rx->b, rx, dst, missed);
    sync_unlock(&rx->b->lock);
    return ret;
}

/* ---- Receive future ------------------------------------------------------------ */
WEFT_API void weft_bcast_recv_init(weft_bcast_recv *r, weft_bcast_rx *rx, void *dst,
                                   uint64_t *missed)
{
    if (r == NULL)
        return;
    r->rx = rx;
    r->dst = dst;
    r->missed = missed;
    r->result = 0;
    waiter_reset(&r->w);
}

WEFT_API weft_poll weft_bcast_recv_poll(weft_bcast_recv *r, weft_context *cx, int *result)
{
    struct weft_bcast *b;
    weft_waker old = WEFT_WAKER_EMPTY;
    int ret;

    if (r == NULL || result == NULL) {   /* misuse: -EINVAL if it can be told */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (r->rx == NULL || r->dst == NULL || cx == NULL || cx->waker == NULL) {
        *result = -EINVAL;
        return WEFT_READY;
    }
    if (r->w.owner == O_DONE) {
        *result = r->result;
        return WEFT_READY;
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;               /* the task was woken already */
    b = r->rx->b;
    sync_lock(&b->lock);
    ret = bcast_take(b, r->rx, r->dst, r->missed);
    if (ret == -EAGAIN) {
        /* a linked waiter keeps its place: it parked at the current tail */
        if (r->w.state != W_WAITING)
            r->w.gen = b->tail;
        old = waitq_park(&b->q, &r->w, cx, false);
        sync_unlock(&b->lock);
        weft_waker_drop(&old);
        return WEFT_PENDING;
    }
    old = waitq_finish(&b->q, &r->w);
    sync_unlock(&b->lock);
    weft_waker_drop(&old);
    r->result = ret;
    *result = ret;
    return WEFT_READY;
}

WEFT_API void weft_bcast_recv_drop(weft_bcast_recv *r)
{
    struct weft_bcast *b;
    weft_waker old;

    if (r == NULL || r->rx == NULL)
        return;
    if (r->w.owner == O_PARKED) {
        b = r->rx->b;
        sync_lock(&b->lock);
        old = waitq_finish(&b->q, &r->w);  /* a wake-all: nothing to pass on */
        sync_unlock(&b->lock);
        weft_waker_drop(&old);
    }
    r->w.owner = O_DONE;
    r->rx = NULL;
}
