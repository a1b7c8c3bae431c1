/* SPDX-License-Identifier: MIT */
/* Where a runnable task goes: the LIFO slot, the local queue, the inject
 * queue (wakes from other threads and the overflow of full local queues). */
#include "sched/internal.h"
#include "sched/trace.h"

/* ---- Inject queue ------------------------------------------------------------ */
/* Append the chain first..last (n tasks, linked by ->next); false if closed
 * (the caller still owns the chain). */
static bool inject_push(struct weft_runtime *rt, struct weft__task *first,
                        struct weft__task *last, size_t n)
{
    spin_lock(&rt->inject.lock);
    /* relaxed: `closed` is set before shutdown drains this queue under the
     * same lock, so a push that misses it is drained */
    if (atomic_load_explicit(&rt->closed, memory_order_relaxed)) {
        spin_unlock(&rt->inject.lock);
        return false;
    }
    last->next = NULL;
    if (rt->inject.tail)
        rt->inject.tail->next = first;
    else
        rt->inject.head = first;
    rt->inject.tail = last;
    atomic_store_explicit(&rt->inject.len,
                          atomic_load_explicit(&rt->inject.len, memory_order_relaxed) + n,
                          memory_order_relaxed);
    spin_unlock(&rt->inject.lock);
    return true;
}

/* Take up to `max` tasks: returns the first, links the rest into *rest. */
struct weft__task *weft__sched_inject_pop(struct weft_runtime *rt, size_t max,
                                          struct weft__task **rest, size_t *nrest)
{
    struct weft__task *first, *t;
    size_t n, len;

    /* relaxed: a hint; the lock below decides (see weft__sched_notify_one for why a
     * stale 0 cannot lose a task) */
    if (atomic_load_explicit(&rt->inject.len, memory_order_relaxed) == 0)
        return NULL;
    spin_lock(&rt->inject.lock);
    len = atomic_load_explicit(&rt->inject.len, memory_order_relaxed);
    first = rt->inject.head;
    if (first == NULL) {
        spin_unlock(&rt->inject.lock);
        return NULL;
    }
    n = 1;
    t = first;
    while (n < max && t->next) {
        t = t->next;
        n++;
    }
    rt->inject.head = t->next;
    if (rt->inject.head == NULL)
        rt->inject.tail = NULL;
    atomic_store_explicit(&rt->inject.len, len - n, memory_order_relaxed);
    spin_unlock(&rt->inject.lock);
    t->next = NULL;
    *rest = first->next;
    *nrest = n - 1;
    return first;
}

/* After a push to this worker's own queue or LIFO slot: the same, but
 * without the fence. A sleeper that misses this push costs parallelism,
 * never the task: this worker is awake and will run it itself. */
static void notify_local(struct weft_runtime *rt)
{
    if (atomic_load_explicit(&rt->idle.num_searching, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&rt->idle.num_sleeping, memory_order_relaxed) == 0)
        return;
    weft__sched_notify_one(rt);
}

/* ---- Scheduling -------------------------------------------------------------------- */
/* Owner: push to the back of the local queue; when it is full, move half of
 * it (and t) to the inject queue in one batch. */
void weft__sched_push_local(struct worker *w, struct weft__task *t)
{
    struct weft__task *first, *last;

    for (;;) {
        if (lq_try_push(&w->q, t))
            return;
        if (lq_claim_half(&w->q, &first, &last)) {
            last->next = t;
            t->next = NULL;           /* the chain ends here even if the push fails */
            counter_add(&w->overflows, 1);
            if (!inject_push(w->rt, first, t, LQ_CAP / 2 + 1)) {
                /* closed: shutdown drops queue references; do it here */
                while (first) {
                    struct weft__task *next = first->next;

                    weft__task_drop_entry(first);
                    first = next;
                }
            }
            return;
        }
        /* a stealer is at work: it will make room */
        if (!inject_push(w->rt, t, t, 1))
            weft__task_drop_entry(t);
        return;
    }
}

void weft__sched_push(struct weft_runtime *rt, struct weft__task *t, bool yield)
{
    struct worker *w = local_worker(rt);

    /* before the push: once queued, t may run, finish and be freed (its
     * address is only recorded, never read) */
    if (weft__trace_active(rt))
        weft__trace_wake(rt, w, t);

    if (w == NULL) {
        /* A foreign thread (a waker on a plain thread). Once the task is
         * in the inject queue, a worker may run it to completion and free
         * it, the last cell, and with it the runtime, while this thread
         * still reads the runtime in weft__sched_notify_one(): hold the runtime for
         * the duration. Safe to take: the caller's reference keeps the
         * cell, so its shard, so the runtime, alive at this point. */
        atomic_fetch_add_explicit(&rt->holds, 1, memory_order_relaxed);
        if (!inject_push(rt, t, t, 1))
            weft__task_ref_dec(t);    /* closed: drop the queue's reference */
        else
            weft__sched_notify_one(rt);
        if (atomic_fetch_sub_explicit(&rt->holds, 1, memory_order_acq_rel) == 1)
            weft__sched_destroy(rt);
        return;
    }
    if (yield) {
        weft__sched_push_local(w, t);
    } else if (atomic_load_explicit(&w->lifo, memory_order_relaxed) == NULL) {
        /* Empty slot: thieves only ever take a task out (exchange with
         * NULL), so a plain store cannot lose one. release: the task's
         * state before a thief's acquire exchange. Runs next, here: wake
         * nobody, unless nobody watches for a long poll (see "watcher"). */
        atomic_store_explicit(&w->lifo, t, memory_order_release);
        if (atomic_load_explicit(&rt->idle.watcher, memory_order_relaxed) == -1)
            notify_local(rt);
        return;
    } else {
        struct weft__task *prev = atomic_exchange_explicit(&w->lifo, t, memory_order_acq_rel);

        if (prev)
            weft__sched_push_local(w, prev);
    }
    notify_local(rt);
}

void weft__sched_schedule(void *s, struct weft__task *t, bool yield)
{
    weft__sched_push(shard_rt(s), t, yield);
}

