/* Counting semaphore, strictly FIFO.
 *
 * Permits are handed out at release time, under the lock: release() adds to
 * `avail` and then grants the head of the line while it fits (`grant`),
 * moving those permits into the waiter (WOKEN, why = GRANT). The waiter
 * observes the grant when polled. A fresh acquire or try_acquire never takes
 * permits while anyone waits, so nobody overtakes the head. Dropping a
 * future gives back exactly what it holds: a WAITING one leaves the line
 * (which may let those behind it through: grant again); a granted one
 * releases its permits (to the next in line). */
#include <string.h>

#include "sync/sem.h"
#include "util/alloc.h"

int weft__sem_init(struct weft_sem *s, size_t permits, size_t max)
{
    memset(s, 0, sizeof(*s));
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return -ENOMEM;
    s->avail = permits;
    s->max = max;
    return 0;
}

void weft__sem_destroy(struct weft_sem *s)
{
    assert(waitq_empty(&s->q));
    pthread_mutex_destroy(&s->lock);
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

/* Hand free permits to the head of the line while it fits, and unlock.
 * ->lock held on entry, released on return; wakes after unlocking (in
 * batches, relocking in between: the state is consistent at every unlock). */
static void sem_grant_unlock(struct weft_sem *s)
{
    struct wake_batch b = { 0 };

    for (;;) {
        weft_sync_waiter *w = s->q.first;

        if (w == NULL || w->n > s->avail || wake_batch_full(&b)) {
            bool more = w != NULL && w->n <= s->avail;

            sync_unlock(&s->lock);
            wake_batch_run(&b);
            if (!more)
                return;
            sync_lock(&s->lock);
            continue;
        }
        s->avail -= w->n;
        waitq_wake(&s->q, w, WHY_GRANT, &b);
    }
}

WEFT_API int weft_sem_try_acquire(weft_sem *s, size_t n)
{
    int ret = 0;

    if (s == NULL)
        return -EINVAL;
    sync_lock(&s->lock);
    if (s->closed)
        ret = -EPIPE;
    else if (!waitq_empty(&s->q) || s->avail < n)
        ret = -EAGAIN;
    else
        s->avail -= n;
    sync_unlock(&s->lock);
    return ret;
}

WEFT_API int weft_sem_release(weft_sem *s, size_t n)
{
    if (s == NULL)
        return -EINVAL;
    sync_lock(&s->lock);
    if (n > s->max - s->avail) {
        sync_unlock(&s->lock);
        return -EINVAL;
    }
    s->avail += n;
    sem_grant_unlock(s);
    return 0;
}

WEFT_API void weft_sem_close(weft_sem *s)
{
    struct wake_batch b = { 0 };
    bool more;

    if (s == NULL)
        return;
    sync_lock(&s->lock);
    s->closed = true;
    do {
        /* nobody parks once closed, so the line only shrinks */
        while (!wake_batch_full(&b) && !waitq_empty(&s->q))
            waitq_wake_one(&s->q, WHY_CLOSED, &b);
        more = !waitq_empty(&s->q);
        sync_unlock(&s->lock);
        wake_batch_run(&b);
        if (more)
            sync_lock(&s->lock);
    } while (more);
}

WEFT_API size_t weft_sem_available(const weft_sem *s)
{
    struct weft_sem *m = (struct weft_sem *)s;
    size_t n;

    if (m == NULL)
        return 0;
    sync_lock(&m->lock);
    n = m->avail;
    sync_unlock(&m->lock);
    return n;
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

WEFT_API weft_poll weft_sem_acquire_poll(weft_sem_acquire *a, weft_context *cx, int *result)
{
    struct weft_sem *s;
    weft_waker old = WEFT_WAKER_EMPTY;
    int ret = 0;

    if (a == NULL || result == NULL)
        return WEFT_READY;                 /* misuse: nothing to report to */
    s = a->sem;
    if (s == NULL || cx == NULL || a->w.n > s->max) {
        *result = -EINVAL;
        return WEFT_READY;
    }
    if (a->w.owner == O_DONE) {
        *result = a->result;
        return WEFT_READY;
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;               /* the task was woken already */
    sync_lock(&s->lock);
    if (a->w.state == W_WOKEN) {
        ret = a->w.why == WHY_GRANT ? 0 : -EPIPE;
    } else if (a->w.state == W_IDLE && s->closed) {
        ret = -EPIPE;
    } else if (a->w.state == W_IDLE && waitq_empty(&s->q) && s->avail >= a->w.n) {
        s->avail -= a->w.n;
    } else {
        old = waitq_park(&s->q, &a->w, cx, false);
        sync_unlock(&s->lock);
        weft_waker_drop(&old);
        return WEFT_PENDING;
    }
    old = waitq_finish(&s->q, &a->w);
    sync_unlock(&s->lock);
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
        sync_lock(&s->lock);
        if (a->w.state == W_WOKEN && a->w.why == WHY_GRANT)
            s->avail += a->w.n;            /* handed to us, never observed */
        old = waitq_finish(&s->q, &a->w);
        /* we may have been the head holding the others back: grant again */
        sem_grant_unlock(s);
        weft_waker_drop(&old);
    }
    a->w.owner = O_DONE;
    a->sem = NULL;
}
