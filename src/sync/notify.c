/* SPDX-License-Identifier: MIT */
/* Notify: wake one waiter (or store one permit), or wake all.
 *
 * notify_all bumps a generation; a wait future records the generation at
 * init, so one initialised before a notify_all completes even if it was not
 * polled yet. Waiters park only while their generation is current, so the
 * list holds its generations in order and notify_all wakes a prefix of it. */
#include <stdatomic.h>
#include <stdint.h>

#include "sync/waitq.h"
#include "util/alloc.h"

struct weft_notify {
    pthread_mutex_t lock;
    _Atomic uint64_t gen;          /* written under ->lock; read by init */
    bool permit;                   /* ->lock: a notify_one nobody took yet */
    struct weft__waitq q;          /* ->lock */
};

WEFT_API int weft_notify_new(weft_notify **out)
{
    struct weft_notify *n;

    if (out == NULL)
        return -EINVAL;
    n = weft__calloc(1, sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&n->lock, NULL) != 0) {
        weft__free(n);
        return -ENOMEM;
    }
    atomic_init(&n->gen, 0);
    *out = n;
    return 0;
}

WEFT_API void weft_notify_free(weft_notify *n)
{
    if (n == NULL)
        return;
    assert(waitq_empty(&n->q));
    pthread_mutex_destroy(&n->lock);
    weft__free(n);
}

/* notify_one's work; ->lock held. */
static void notify_one_locked(struct weft_notify *n, struct wake_batch *b)
{
    if (!waitq_empty(&n->q))
        waitq_wake_one(&n->q, WHY_ONE, b);
    else
        n->permit = true;
}

WEFT_API void weft_notify_one(weft_notify *n)
{
    struct wake_batch b = { 0 };

    if (n == NULL)
        return;
    sync_lock(&n->lock);
    notify_one_locked(n, &b);
    sync_unlock(&n->lock);
    wake_batch_run(&b);
}

WEFT_API void weft_notify_all(weft_notify *n)
{
    struct wake_batch b = { 0 };
    bool more;

    if (n == NULL)
        return;
    sync_lock(&n->lock);
    /* relaxed: the generation is compared under ->lock; init's load only
     * needs to see a notify_all that happened before it, which coherence
     * guarantees whatever the order */
    atomic_store_explicit(&n->gen, atomic_load_explicit(&n->gen, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    do {
        uint64_t cur = atomic_load_explicit(&n->gen, memory_order_relaxed); /* ->lock */

        /* waiters of an older generation form a prefix of the list */
        while (!wake_batch_full(&b) && n->q.first && n->q.first->gen != cur)
            waitq_wake_one(&n->q, WHY_ALL, &b);
        more = n->q.first && n->q.first->gen != cur;
        sync_unlock(&n->lock);
        wake_batch_run(&b);
        if (more)
            sync_lock(&n->lock);
    } while (more);
}

/* ---- Wait future -------------------------------------------------------------- */
WEFT_API void weft_notify_wait_init(weft_notify_wait *w, weft_notify *n)
{
    if (w == NULL)
        return;
    w->nt = n;
    w->result = 0;
    waiter_reset(&w->w);
    if (n)
        /* relaxed: see weft_notify_all() */
        w->w.gen = atomic_load_explicit(&n->gen, memory_order_relaxed);
}

WEFT_API weft_poll weft_notify_wait_poll(weft_notify_wait *w, weft_context *cx, int *result)
{
    struct weft_notify *n;
    weft_waker old = WEFT_WAKER_EMPTY;

    if (w == NULL || result == NULL) {   /* misuse: -EINVAL if it can be told */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    n = w->nt;
    if (n == NULL || cx == NULL || cx->waker == NULL) {
        *result = -EINVAL;
        return WEFT_READY;
    }
    if (w->w.owner == O_DONE) {
        *result = w->result;
        return WEFT_READY;
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;               /* the task was woken already */
    sync_lock(&n->lock);
    if (w->w.state != W_WOKEN &&
        w->w.gen == atomic_load_explicit(&n->gen, memory_order_relaxed)) { /* ->lock */
        if (w->w.state == W_IDLE && n->permit) {
            n->permit = false;
        } else {
            old = waitq_park(&n->q, &w->w, cx, false);
            sync_unlock(&n->lock);
            weft_waker_drop(&old);
            return WEFT_PENDING;
        }
    }
    old = waitq_finish(&n->q, &w->w);      /* woken, or a notify_all passed */
    sync_unlock(&n->lock);
    weft_waker_drop(&old);
    w->result = 0;
    *result = 0;
    return WEFT_READY;
}

WEFT_API void weft_notify_wait_drop(weft_notify_wait *w)
{
    struct wake_batch b = { 0 };
    struct weft_notify *n;
    weft_waker old;

    if (w == NULL || w->nt == NULL)
        return;
    n = w->nt;
    if (w->w.owner == O_PARKED) {
        sync_lock(&n->lock);
        if (w->w.state == W_WOKEN && w->w.why == WHY_ONE)
            notify_one_locked(n, &b);      /* chosen, never observed: pass on */
        old = waitq_finish(&n->q, &w->w);
        sync_unlock(&n->lock);
        wake_batch_run(&b);
        weft_waker_drop(&old);
    }
    w->w.owner = O_DONE;
    w->nt = NULL;
}
