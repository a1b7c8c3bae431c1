/* SPDX-License-Identifier: MIT */
/* Oneshot: one value from one sender to one receiver.
 *
 * One allocation holds the lock, the state and the value. The two handles
 * are the same pointer under two opaque types; each owns one reference,
 * counted under the lock (two at most: an atomic would buy nothing). The
 * receiver has a single waker slot, since only one receive future may exist
 * at a time. */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "sync/waitq.h"
#include "util/alloc.h"

enum { OS_EMPTY, OS_FULL, OS_TAKEN };

struct weft_oneshot {
    pthread_mutex_t lock;
    size_t size;
    unsigned refs;                  /* ->lock: live handles (2, 1, 0) */
    unsigned char state;            /* ->lock: OS_* */
    bool tx_gone;                   /* ->lock: sender sent or dropped */
    bool rx_gone;                   /* ->lock */
    weft_waker rx_waker;            /* ->lock: the pending receive's waker */
    alignas(max_align_t) unsigned char value[];   /* ->lock: valid when FULL */
};

static struct weft_oneshot *os_of_tx(const weft_oneshot_tx *tx)
{
    return (struct weft_oneshot *)(void *)tx;
}

static struct weft_oneshot *os_of_rx(const weft_oneshot_rx *rx)
{
    return (struct weft_oneshot *)(void *)rx;
}

WEFT_API int weft_oneshot_new(weft_oneshot_tx **tx, weft_oneshot_rx **rx, size_t size)
{
    struct weft_oneshot *os;

    if (tx == NULL || rx == NULL || size > WEFT_FUTURE_MAX_SIZE)
        return -EINVAL;
    os = weft__calloc(1, sizeof(*os) + size);
    if (os == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&os->lock, NULL) != 0) {
        weft__free(os);
        return -ENOMEM;
    }
    os->size = size;
    os->refs = 2;
    os->state = OS_EMPTY;
    os->rx_waker = WEFT_WAKER_EMPTY;
    *tx = (weft_oneshot_tx *)(void *)os;
    *rx = (weft_oneshot_rx *)(void *)os;
    return 0;
}

/* Drop one handle's reference; ->lock held, released here. */
static void os_unref_unlock(struct weft_oneshot *os)
{
    bool last = --os->refs == 0;

    sync_unlock(&os->lock);
    if (last) {
        assert(os->rx_waker.vtable == NULL);
        pthread_mutex_destroy(&os->lock);
        weft__free(os);
    }
}

/* The sender goes away, having stored a value or not: wake the receiver. */
static int os_tx_finish(struct weft_oneshot *os, const void *msg, bool send)
{
    weft_waker w;
    int ret = 0;

    sync_lock(&os->lock);
    assert(!os->tx_gone);
    if (send) {
        if (os->rx_gone) {
            ret = -EPIPE;
        } else {
            if (os->size)
                memcpy(os->value, msg, os->size);
            os->state = OS_FULL;
        }
    }
    os->tx_gone = true;
    w = os->rx_waker;
    os->rx_waker = WEFT_WAKER_EMPTY;
    os_unref_unlock(os);
    weft_waker_wake(&w);
    return ret;
}

WEFT_API int weft_oneshot_send(weft_oneshot_tx *tx, const void *msg)
{
    struct weft_oneshot *os = os_of_tx(tx);

    if (os == NULL)
        return -EINVAL;
    if (msg == NULL && os->size > 0) {      /* size is immutable: no lock */
        os_tx_finish(os, NULL, false);
        return -EINVAL;
    }
    return os_tx_finish(os, msg, true);
}

WEFT_API void weft_oneshot_tx_drop(weft_oneshot_tx *tx)
{
    if (tx)
        os_tx_finish(os_of_tx(tx), NULL, false);
}

WEFT_API bool weft_oneshot_tx_is_closed(const weft_oneshot_tx *tx)
{
    struct weft_oneshot *os = os_of_tx(tx);
    bool closed;

    if (os == NULL)
        return false;
    sync_lock(&os->lock);
    closed = os->rx_gone;
    sync_unlock(&os->lock);
    return closed;
}

/* Take the value if there is one; ->lock held. 0, -EAGAIN or -EPIPE. */
static int os_take(struct weft_oneshot *os, void *dst)
{
    if (os->state == OS_FULL) {
        if (os->size)
            memcpy(dst, os->value, os->size);
        os->state = OS_TAKEN;
        return 0;
    }
    if (os->state == OS_TAKEN || os->tx_gone)
        return -EPIPE;
    return -EAGAIN;
}

WEFT_API int weft_oneshot_try_recv(weft_oneshot_rx *rx, void *dst)
{
    struct weft_oneshot *os = os_of_rx(rx);
    int ret;

    if (os == NULL || (dst == NULL && os->size > 0))
        return -EINVAL;
    sync_lock(&os->lock);
    ret = os_take(os, dst);
    sync_unlock(&os->lock);
    return ret;
}

WEFT_API void weft_oneshot_rx_drop(weft_oneshot_rx *rx)
{
    struct weft_oneshot *os = os_of_rx(rx);
    weft_waker w;

    if (os == NULL)
        return;
    sync_lock(&os->lock);
    assert(!os->rx_gone);
    os->rx_gone = true;
    w = os->rx_waker;                     /* only a misused future leaves one */
    os->rx_waker = WEFT_WAKER_EMPTY;
    os_unref_unlock(os);
    weft_waker_drop(&w);
}

/* ---- The receive future ---------------------------------------------------- */
enum { R_IDLE, R_PARKED, R_DONE };

WEFT_API void weft_oneshot_recv_init(weft_oneshot_recv *r, weft_oneshot_rx *rx, void *dst)
{
    if (r == NULL)
        return;
    r->os = os_of_rx(rx);
    r->dst = dst;
    r->result = 0;
    r->state = R_IDLE;
}

WEFT_API weft_poll weft_oneshot_recv_poll(weft_oneshot_recv *r, weft_context *cx, int *result)
{
    struct weft_oneshot *os;
    weft_waker old = WEFT_WAKER_EMPTY;
    int ret;

    if (r == NULL || result == NULL) {   /* misuse: -EINVAL if it can be told */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    os = r->os;
    if (os == NULL || cx == NULL || cx->waker == NULL || (r->dst == NULL && os->size > 0)) {
        *result = -EINVAL;
        return WEFT_READY;
    }
    if (r->state == R_DONE) {
        *result = r->result;
        return WEFT_READY;
    }
    /* lock.h's rule for futures that can complete many times in a row: a
     * spent oneshot (value taken, or sender gone) completes every new
     * receive at once with -EPIPE, so a loop over them must still yield */
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;               /* the task was woken already */
    sync_lock(&os->lock);
    ret = os_take(os, r->dst);
    if (ret == -EAGAIN) {
        if (!weft_waker_will_wake(&os->rx_waker, weft_context_waker(cx))) {
            old = os->rx_waker;
            os->rx_waker = weft_waker_clone(weft_context_waker(cx));
        }
        r->state = R_PARKED;
        sync_unlock(&os->lock);
        weft_waker_drop(&old);
        return WEFT_PENDING;
    }
    if (r->state == R_PARKED) {
        old = os->rx_waker;
        os->rx_waker = WEFT_WAKER_EMPTY;
    }
    sync_unlock(&os->lock);
    weft_waker_drop(&old);
    r->state = R_DONE;
    r->result = ret;
    *result = ret;
    return WEFT_READY;
}

WEFT_API void weft_oneshot_recv_drop(weft_oneshot_recv *r)
{
    struct weft_oneshot *os;
    weft_waker old = WEFT_WAKER_EMPTY;

    if (r == NULL || r->os == NULL)
        return;
    os = r->os;
    if (r->state == R_PARKED) {
        sync_lock(&os->lock);
        old = os->rx_waker;
        os->rx_waker = WEFT_WAKER_EMPTY;
        sync_unlock(&os->lock);
        weft_waker_drop(&old);
    }
    r->os = NULL;
    r->state = R_DONE;
}
