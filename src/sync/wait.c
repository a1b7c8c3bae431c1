/* SPDX-License-Identifier: MIT */
/* Blocking forms of the common waits, for plain threads (main(), a thread
 * of another library): weft_chan_send_wait(), weft_chan_recv_wait(),
 * weft_oneshot_recv_wait(), weft_sem_acquire_wait(), weft_mutex_lock_wait().
 *
 * Each drives the ordinary future by hand with a waker that parks the
 * calling thread: no runtime is needed (the objects wake whoever waits,
 * task or thread) and nothing is allocated. The parker lives on the
 * caller's stack, so the call must not return while the object still holds
 * a clone of its waker: clones are counted, and the call returns only after
 * the future has been dropped (which unlinks its waiter) and every clone
 * has been dropped or consumed by its wake.
 *
 *  waker side (any thread)               blocked thread
 *  lock; woken = true / refs--;          poll the future: READY? done
 *  signal; unlock                        lock; until woken: wait; woken = false
 *  (never touches the parker after       ... poll again
 *   its unlock)                          drop the future; lock; until refs == 0:
 *                                        wait; unlock; destroy the parker
 * Every field is guarded by the parker's mutex: no atomics. */
#include <pthread.h>

#include "task/task.h"
#include "weft/chan.h"
#include "weft/lock.h"

struct parker {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool woken;                /* ->lock: a wake since the last look */
    unsigned long refs;        /* ->lock: clones not yet dropped or consumed */
};

static const weft_waker_vtable parker_vtable;

static weft_waker parker_clone(const void *data)
{
    struct parker *p = (struct parker *)(uintptr_t)data;

    pthread_mutex_lock(&p->lock);
    p->refs++;
    pthread_mutex_unlock(&p->lock);
    return (weft_waker){ data, &parker_vtable };
}

/* Wake and/or release one reference; the last touch of the parker is the
 * unlock (the blocked thread may destroy it as soon as it holds the lock). */
static void parker_signal(const void *data, bool wake, bool release)
{
    struct parker *p = (struct parker *)(uintptr_t)data;

    pthread_mutex_lock(&p->lock);
    if (wake)
        p->woken = true;
    if (release)
        p->refs--;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void parker_wake(const void *data)
{
    parker_signal(data, true, true);
}

static void parker_wake_by_ref(const void *data)
{
    parker_signal(data, true, false);
}

static void parker_drop(const void *data)
{
    parker_signal(data, false, true);
}

static const weft_waker_vtable parker_vtable = {
    parker_clone, parker_wake, parker_wake_by_ref, parker_drop
};

typedef weft_poll (*poll_fn)(void *self, weft_context *cx, int *result);
typedef void (*drop_fn)(void *self);

/* Drive `fut` to READY on this thread; drop it; return its result. */
static int block_on_future(void *fut, poll_fn poll, drop_fn drop)
{
    struct parker p = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0 };
    weft_waker w = { &p, &parker_vtable };   /* borrowed: no reference */
    weft_context cx = weft_context_from_waker(&w);   /* no worker: no budget */
    int result = -EINVAL;

    while (poll(fut, &cx, &result) == WEFT_PENDING) {
        pthread_mutex_lock(&p.lock);
        while (!p.woken)
            pthread_cond_wait(&p.cond, &p.lock);
        p.woken = false;
        pthread_mutex_unlock(&p.lock);
    }
    drop(fut);
    pthread_mutex_lock(&p.lock);
    while (p.refs != 0)                      /* a wake may still be on its way */
        pthread_cond_wait(&p.cond, &p.lock);
    pthread_mutex_unlock(&p.lock);
    pthread_cond_destroy(&p.cond);
    pthread_mutex_destroy(&p.lock);
    return result;
}

/* Thunks with the real prototypes behind them (no function pointer casts). */
#define THUNKS(NAME)                                                          \
    static weft_poll NAME##__bpoll(void *self, weft_context *cx, int *result) \
    {                                                                         \
        return NAME##_poll((NAME *)self, cx, result);                         \
    }                                                                         \
    static void NAME##__bdrop(void *self)                                     \
    {                                                                         \
        NAME##_drop((NAME *)self);                                            \
    }

THUNKS(weft_chan_send)
THUNKS(weft_chan_recv)
THUNKS(weft_oneshot_recv)
THUNKS(weft_sem_acquire)
THUNKS(weft_mutex_lock)

/* -EDEADLK on a thread that runs weft tasks (a worker, or inside a
 * current-thread runtime's run/block_on): blocking it could stall the very
 * task that would wake it. */
static bool on_weft_thread(void)
{
    return weft__task_driver != NULL;
}

WEFT_API int weft_chan_send_wait(weft_chan *ch, const void *msg)
{
    weft_chan_send s;

    if (ch == NULL || msg == NULL)
        return -EINVAL;
    if (on_weft_thread())
        return -EDEADLK;
    weft_chan_send_init(&s, ch, msg);
    return block_on_future(&s, weft_chan_send__bpoll, weft_chan_send__bdrop);
}

WEFT_API int weft_chan_recv_wait(weft_chan *ch, void *dst)
{
    weft_chan_recv r;

    if (ch == NULL || dst == NULL)
        return -EINVAL;
    if (on_weft_thread())
        return -EDEADLK;
    weft_chan_recv_init(&r, ch, dst);
    return block_on_future(&r, weft_chan_recv__bpoll, weft_chan_recv__bdrop);
}

WEFT_API int weft_oneshot_recv_wait(weft_oneshot_rx *rx, void *dst)
{
    weft_oneshot_recv r;

    if (rx == NULL)
        return -EINVAL;
    if (on_weft_thread())
        return -EDEADLK;
    weft_oneshot_recv_init(&r, rx, dst);
    return block_on_future(&r, weft_oneshot_recv__bpoll, weft_oneshot_recv__bdrop);
}

WEFT_API int weft_sem_acquire_wait(weft_sem *s, size_t n)
{
    weft_sem_acquire a;

    if (s == NULL || n > WEFT_SEM_MAX_PERMITS)
        return -EINVAL;
    if (on_weft_thread())
        return -EDEADLK;
    weft_sem_acquire_init(&a, s, n);
    return block_on_future(&a, weft_sem_acquire__bpoll, weft_sem_acquire__bdrop);
}

WEFT_API int weft_mutex_lock_wait(weft_mutex *m)
{
    weft_mutex_lock l;

    if (m == NULL)
        return -EINVAL;
    if (on_weft_thread())
        return -EDEADLK;
    weft_mutex_lock_init(&l, m);
    return block_on_future(&l, weft_mutex_lock__bpoll, weft_mutex_lock__bdrop);
}
