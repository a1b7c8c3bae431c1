/* SPDX-License-Identifier: MIT */
/* Join handles (weft/task.h): polling, trying, waiting from a plain thread
 * (the parker) and aborting; weft_join_drop is task.c's, next to the
 * reference decrement it inlines. The state word's JOIN_INTEREST and
 * JOIN_WAKER bits and the completion they race with are task.c's (task.h:
 * "The state word"); the memory orders follow task.c's head comment. */

#include "task/task.h"
#include "util/cx.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "weft/task.h"

/* ---- Join handles -----------------------------------------------------------------
 *  join handle                               worker
 *  JOIN_WAKER clear: join_waker is ours      completion CAS reads JOIN_WAKER
 *  store a waker, set JOIN_WAKER [release]   set: wake_by_ref(join_waker)
 *  to replace: clear JOIN_WAKER first (CAS,  clear: leave it alone
 *  fails once COMPLETE: then read output)
 * join_waker is dropped by the join side when it owns it, else at dealloc. */
static int read_result(struct weft__task *t, uint64_t state, void *out)
{
    if (state & TASK_CANCELLED)
        return -ECANCELED;
    if (out && t->type->output_size)
        memcpy(out, weft__task_output(t), t->type->output_size);
    return 0;
}

/* Store `w` (consumed) as the join waker. Returns true when it was stored
 * before completion (it will be woken), false when the task completed first
 * (then `w` has been dropped and the caller reads the output). */
static bool join_set_waker(struct weft__task *t, weft_waker w)
{
    uint64_t cur = atomic_load_explicit(&t->state, memory_order_acquire);

    if (cur & TASK_COMPLETE)
        goto completed;
    if (cur & TASK_JOIN_WAKER) {
        if (weft_waker_will_wake(&t->join_waker, &w)) {
            weft_waker_drop(&w);
            return true;
        }
        /* take the field back from the runtime */
        do {
            if (cur & TASK_COMPLETE)
                goto completed;
        } while (!atomic_compare_exchange_weak_explicit(
            &t->state, &cur, cur & ~TASK_JOIN_WAKER,
            memory_order_acquire,  /* pairs: the completion CAS never saw it */
            memory_order_acquire));
    }
    weft_waker_drop(&t->join_waker);       /* ours now */
    t->join_waker = w;
    cur = atomic_load_explicit(&t->state, memory_order_relaxed);
    do {
        if (cur & TASK_COMPLETE) {
            weft_waker_drop(&t->join_waker);   /* still ours: never seen */
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(
        &t->state, &cur, cur | TASK_JOIN_WAKER,
        memory_order_release,  /* pairs: acquire of the completion CAS */
        memory_order_acquire));
    return true;
completed:
    weft_waker_drop(&w);
    return false;
}

WEFT_API weft_poll weft_join_poll(weft_join *j, weft_context *cx, int *result,
                                  void *out)
{
    struct weft__task *t = weft__join_task(j);
    uint64_t cur;

    if (t == NULL || weft__cx_bad(cx)) {
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    /* acquire: pairs with the completion CAS (output, future drop) */
    cur = atomic_load_explicit(&t->state, memory_order_acquire);
    if (!(cur & TASK_COMPLETE) && join_set_waker(t, weft_waker_clone(cx->waker)))
        return WEFT_PENDING;
    cur = atomic_load_explicit(&t->state, memory_order_acquire);
    if (result)
        *result = read_result(t, cur, out);
    return WEFT_READY;
}

WEFT_API int weft_join_try(weft_join *j, void *out)
{
    struct weft__task *t = weft__join_task(j);
    uint64_t cur;

    if (t == NULL)
        return -EINVAL;
    cur = atomic_load_explicit(&t->state, memory_order_acquire);
    if (!(cur & TASK_COMPLETE))
        return -EAGAIN;
    return read_result(t, cur, out);
}

WEFT_API bool weft_join_is_complete(const weft_join *j)
{
    struct weft__task *t = weft__join_task(j);

    return t && (atomic_load_explicit(&t->state, memory_order_acquire) & TASK_COMPLETE);
}

/* A waker for a thread blocked in weft_join_wait(): it lives on that
 * thread's stack. It is stored as the join waker, woken at most once (by
 * the completion), and the waiting thread returns only after that wake has
 * finished touching it. Clone and drop hold no reference. Its second face,
 * the stop waker, is the scheduler's (weft__sched_ops.block): woken when
 * the task can no longer complete while the thread waits. */
struct parker {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool woken;               /* ->lock: by the completion */
    bool stopped;             /* ->lock: by the scheduler */
};

static const weft_waker_vtable parker_vtable;

static weft_waker parker_clone(const void *data)
{
    return (weft_waker){ data, &parker_vtable };
}

static void parker_wake(const void *data)
{
    struct parker *p = (struct parker *)data;

    pthread_mutex_lock(&p->lock);
    p->woken = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void parker_drop(const void *data)
{
    (void)data;
}

static const weft_waker_vtable parker_vtable = {
    parker_clone, parker_wake, parker_wake, parker_drop
};

static const weft_waker_vtable parker_stop_vtable;

static weft_waker parker_stop_clone(const void *data)
{
    return (weft_waker){ data, &parker_stop_vtable };
}

static void parker_stop(const void *data)
{
    struct parker *p = (struct parker *)data;

    pthread_mutex_lock(&p->lock);
    p->stopped = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static const weft_waker_vtable parker_stop_vtable = {
    parker_stop_clone, parker_stop, parker_stop, parker_drop
};

/* Take the join waker field back from the runtime (clear JOIN_WAKER) before
 * the task completes: true, the field is the caller's again; false, the
 * task completed first and its completion wakes (or woke) the waker. */
static bool join_take_waker(struct weft__task *t)
{
    uint64_t cur = atomic_load_explicit(&t->state, memory_order_relaxed);

    do {
        if (cur & TASK_COMPLETE)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(
        &t->state, &cur, cur & ~TASK_JOIN_WAKER,
        memory_order_acquire,  /* pairs: the completion CAS never saw it */
        memory_order_relaxed));
    return true;
}

/*  waiter                                  scheduler (block/unblock)
 *  block(): may it wait? [its lock]         driver leaves: wake every listed
 *  store the parker as join waker            waiter's stop waker [its lock]
 *  sleep until woken (completion) or
 *  stopped; stopped: take the waker back
 *  (fails once COMPLETE: then the
 *  completion's wake is coming: wait it)
 *  unblock() [its lock]: no stop wake after this; the parker may go */
WEFT_API int weft_join_wait(weft_join *j, void *out)
{
    struct weft__task *t = weft__join_task(j);
    struct parker p = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false };
    struct weft__blocked b;
    int err = 0;

    if (t == NULL)
        return -EINVAL;
    /* A worker must not block, except in a drop run by the shutdown of t's
     * runtime on this thread (a task of another runtime may shut it down):
     * there block() cancels the siblings left instead of sleeping
     * (weft/task.h, weft/sched.h). */
    if (weft__task_driver != NULL && !t->sched->ops->cancelling(t->sched))
        return -EINVAL;
    for (;;) {
        /* acquire: pairs with the completion CAS (read by weft_join_try) */
        if (atomic_load_explicit(&t->state, memory_order_acquire) & TASK_COMPLETE)
            goto out;
        b.stop = (weft_waker){ &p, &parker_stop_vtable };
        err = t->sched->ops->block(t->sched, t, &b);
        if (err <= 0)
            break;
        err = 0;                           /* the scheduler worked here: look again */
    }
    if (err < 0) {
        /* a leaving driver may have completed it just before (its
         * completion is ordered before the scheduler's lock we took) */
        if (atomic_load_explicit(&t->state, memory_order_acquire) & TASK_COMPLETE)
            err = 0;
        goto out;
    }
    if (join_set_waker(t, (weft_waker){ &p, &parker_vtable })) {
        pthread_mutex_lock(&p.lock);
        while (!p.woken && !p.stopped)
            pthread_cond_wait(&p.cond, &p.lock);
        if (!p.woken && join_take_waker(t)) {
            err = -EDEADLK;                /* nothing will run the task */
        } else {
            /* the completion saw the waker: its wake is the last touch */
            while (!p.woken)
                pthread_cond_wait(&p.cond, &p.lock);
        }
        pthread_mutex_unlock(&p.lock);
        /* Either the completion has woken us and is done with the field
         * (the mutex orders its read before our write) and never touches
         * it again, or we took the field back before it completed: ours
         * to clear (the parker's drop does nothing). */
        t->join_waker = WEFT_WAKER_EMPTY;
    }
    t->sched->ops->unblock(t->sched, &b);
out:
    pthread_cond_destroy(&p.cond);
    pthread_mutex_destroy(&p.lock);
    return err < 0 ? err : weft_join_try(j, out);
}

/* Abort:
 *  idle, not queued:  set CANCELLED|NOTIFIED, +1 ref, push (a worker drops it)
 *  queued (NOTIFIED): set CANCELLED; the worker that pops it drops it
 *  RUNNING:           set CANCELLED; the runner drops it after the poll
 *  COMPLETE/CANCELLED already: nothing */
WEFT_API void weft_join_abort(weft_join *j)
{
    struct weft__task *t = weft__join_task(j);
    uint64_t cur, next;
    bool push;

    if (t == NULL)
        return;
    cur = atomic_load_explicit(&t->state, memory_order_relaxed);
    do {
        if (cur & (TASK_COMPLETE | TASK_CANCELLED))
            return;
        next = cur | TASK_CANCELLED;
        push = !(cur & (TASK_RUNNING | TASK_NOTIFIED));
        if (push)
            next = (next | TASK_NOTIFIED) + TASK_REF_ONE;
    } while (!atomic_compare_exchange_weak_explicit(
        &t->state, &cur, next,
        memory_order_acq_rel,  /* pairs: acquire in begin_poll()/end_poll(); acquire: the queue link (as a wake) */
        memory_order_relaxed));
    if (push)
        t->sched->ops->schedule(t->sched, t, false);
}
