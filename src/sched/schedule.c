/* SPDX-License-Identifier: MIT */
/* Where a runnable task goes: the LIFO slot, the local queue and its spill
 * list (the overflow of a full local queue), the inject queue (wakes and
 * spawns from other threads). */
#include "sched/internal.h"
#include "sched/trace.h"

/* ---- Inject queue ------------------------------------------------------------ */
/* Wake policy (batched wakes, issue 13). A push notifies a worker (the
 * fence-and-look of weft__sched_notify_one()) only when it makes the queue
 * non-empty; a push behind queued tasks does not: it rides on the notify
 * that the queue's first task got. So that this never strands a task, a
 * pop that leaves tasks behind notifies in turn (weft__sched_inject_pop()'s
 * *left). Invariant: while the queue is non-empty, the last push that found
 * it empty, or the last pop that left it non-empty, has been or is about to
 * be followed by weft__sched_notify_one(), whose fence pairs with a parking
 * worker's (a sleeper is woken, or the parker sees the queue non-empty);
 * every task is behind that moment's head, so whoever takes the head takes
 * it too, or leaves it behind and notifies again. A spawner's stream of
 * pushes into a busy runtime thus costs one lock and no fence per task. */

/* Append the chain first..last (n tasks, linked by ->next). Returns -1 if
 * closed (the caller still owns the chain), else 1 if the queue was empty
 * (the caller notifies), 0 if not. */
static int inject_push(struct weft_runtime *rt, struct weft__task *first,
                       struct weft__task *last, size_t n)
{
    bool was_empty;

    spin_lock(&rt->inject.lock);
    /* relaxed: `closed` is set before shutdown drains this queue under the
     * same lock, so a push that misses it is drained */
    if (atomic_load_explicit(&rt->closed, memory_order_relaxed)) {
        spin_unlock(&rt->inject.lock);
        return -1;
    }
    was_empty = rt->inject.head == NULL;
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
    return was_empty ? 1 : 0;
}

/* Take up to `max` tasks: returns the first, links the rest into *rest.
 * *left: tasks stayed behind (the caller notifies: see the wake policy).
 *
 * A batch is not cut out under the lock: finding its end walks `max` cells
 * that the pushing thread has just written (a cache miss each, on another
 * core), and a spawner pushing a stream of tasks would spin on the lock
 * meanwhile (W2). So a batch takes the whole queue under the lock (three
 * stores), walks it outside, and puts what is left back at the front under
 * the lock again (FIFO order kept: what was pushed meanwhile stays behind).
 * Meanwhile the queue looks shorter or empty: a parking worker may then
 * sleep, but the pop reports *left, whose notify wakes it. Only workers and
 * a current-thread driver pop, and shutdown drains the queue only once they
 * have all left, so the chain in hand is never missed by the drain. */
struct weft__task *weft__sched_inject_pop(struct weft_runtime *rt, size_t max,
                                          struct weft__task **rest, size_t *nrest, bool *left)
{
    struct weft__task *first, *last, *t, *more;
    size_t n, len;

    *left = false;
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
    if (max <= 1 || len == 1) {
        /* one task: no walk */
        rt->inject.head = first->next;
        if (rt->inject.head == NULL)
            rt->inject.tail = NULL;
        *left = rt->inject.head != NULL;
        atomic_store_explicit(&rt->inject.len, len - 1, memory_order_relaxed);
        spin_unlock(&rt->inject.lock);
        first->next = NULL;
        *rest = NULL;
        *nrest = 0;
        return first;
    }
    last = rt->inject.tail;
    rt->inject.head = rt->inject.tail = NULL;
    atomic_store_explicit(&rt->inject.len, 0, memory_order_relaxed);
    spin_unlock(&rt->inject.lock);
    /* the whole chain is ours: walk it without the lock */
    n = 1;
    t = first;
    while (n < max && t != last) {
        t = t->next;
        n++;
    }
    more = t == last ? NULL : t->next;
    t->next = NULL;
    if (more) {
        spin_lock(&rt->inject.lock);
        last->next = rt->inject.head;
        rt->inject.head = more;
        if (rt->inject.tail == NULL)
            rt->inject.tail = last;
        atomic_store_explicit(&rt->inject.len,
                              atomic_load_explicit(&rt->inject.len, memory_order_relaxed) +
                                  (len - n),
                              memory_order_relaxed);
        spin_unlock(&rt->inject.lock);
        *left = true;
    }
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

/* ---- Spill lists ----------------------------------------------------------------
 * A local queue that is full moves its older half, with the task being
 * pushed, to the back of its worker's spill list (w->spill), not to the
 * shared inject queue: the tasks stay with the worker whose cache holds
 * them (their cells, and whatever they touch: W4's pairs and channels),
 * and the workers do not take turns on one lock. They used to go to the
 * inject queue, where the other worker's periodic look (one task every
 * GLOBAL_INTERVAL polls, which in W4 always found the queue non-empty)
 * took half of them: a quarter of W4's LIFO chains started with a pair
 * whose lines were in the other core's cache.
 *
 * Who takes what out (worker.c):
 *   - the owner, at every periodic look, one task after the inject
 *     queue's one: a spilled task waits at most as it did in the inject
 *     queue, however full the local queue stays (1,000 yielders on one
 *     worker keep it full for ever);
 *   - the owner, when its local queue is empty: a batch (half a queue at
 *     most) moved into the local queue, before the inject queue;
 *   - a searching worker, from each victim whose local queue had nothing
 *     to steal: half the list (half a queue at most): a worker stuck in a
 *     long poll does not hold its spilled tasks back (as before, when they
 *     were in the inject queue);
 *   - shutdown, with no worker running: all of it (dropped).
 * Invariants: every task in the list holds its queue entry's reference
 * (as in any run queue); the list, head, tail and len change only under
 * ->lock, whose release/acquire carries a task's last poll (a yield entry
 * owns the future) to its popper; len is a hint outside the lock, exact
 * under it. A spill wakes nobody but through notify_local() (a worker
 * asleep that misses it costs parallelism, never the task: the owner is
 * awake, and it never parks with a non-empty list: weft__sched_park()
 * counts the lists as work). */
static void spill_push(struct worker *w, struct weft__task *first, struct weft__task *last,
                       size_t n)
{
    last->next = NULL;
    spin_lock(&w->spill.lock);
    if (w->spill.tail)
        w->spill.tail->next = first;
    else
        w->spill.head = first;
    w->spill.tail = last;
    /* relaxed: under the lock; readers outside it take it as a hint */
    atomic_store_explicit(&w->spill.len,
                          atomic_load_explicit(&w->spill.len, memory_order_relaxed) + n,
                          memory_order_relaxed);
    spin_unlock(&w->spill.lock);
    notify_local(w->rt);
}

/* Take up to `max` (>= 1) tasks from the front of v's spill list (v: this
 * worker's, or a victim's): returns the first (NULL: empty), links the
 * rest into *rest (*nrest of them, NULL-terminated). The walk to the
 * batch's end is made under the lock: at most half a local queue, and
 * only the owner and a rare thief ever wait for it. */
struct weft__task *weft__sched_spill_pop(struct worker *v, size_t max, struct weft__task **rest,
                                         size_t *nrest)
{
    struct weft__task *first, *t;
    size_t n = 1, len;

    *rest = NULL;
    *nrest = 0;
    if (weft__sched_spill_empty(v))
        return NULL;
    spin_lock(&v->spill.lock);
    first = v->spill.head;
    if (first == NULL) {
        spin_unlock(&v->spill.lock);
        return NULL;
    }
    t = first;
    while (n < max && t->next) {
        t = t->next;
        n++;
    }
    v->spill.head = t->next;
    if (v->spill.head == NULL)
        v->spill.tail = NULL;
    len = atomic_load_explicit(&v->spill.len, memory_order_relaxed);
    atomic_store_explicit(&v->spill.len, len - n, memory_order_relaxed);   /* as above */
    spin_unlock(&v->spill.lock);
    t->next = NULL;
    *rest = first->next;
    *nrest = n - 1;
    first->next = NULL;
    return first;
}

/* Shutdown, with no worker running: the whole list (linked by ->next). */
struct weft__task *weft__sched_spill_drain(struct worker *w)
{
    struct weft__task *t;

    spin_lock(&w->spill.lock);
    t = w->spill.head;
    w->spill.head = w->spill.tail = NULL;
    atomic_store_explicit(&w->spill.len, 0, memory_order_relaxed);
    spin_unlock(&w->spill.lock);
    return t;
}

/* ---- Scheduling -------------------------------------------------------------------- */
/* Owner: push to the back of the local queue; when it is full, move half of
 * it (and t) to the spill list in one batch. */
void weft__sched_push_local(struct worker *w, struct weft__task *t)
{
    struct weft__task *first, *last;

    for (;;) {
        if (lq_try_push(&w->q, t))
            return;
        if (lq_claim_half(&w->q, &first, &last)) {
            last->next = t;
            counter_add(&w->overflows, 1);
            spill_push(w, first, t, LQ_CAP / 2 + 1);
            return;
        }
        /* a stealer is at work: it will make room */
        spill_push(w, t, t, 1);
        return;
    }
}

/* A foreign thread's push (a wake or a spawn from a plain thread). `held`:
 * the caller holds the runtime (a spawn: the user's hold, which the
 * contract of weft_spawn() keeps until the call returns); else it is held
 * here (see below). */
static void push_foreign(struct weft_runtime *rt, struct weft__task *t, bool held)
{
    int r;

    /* Once the task is in the inject queue, a worker may run it to
     * completion and free it, the last cell, and with it the runtime, while
     * this thread still reads the runtime in weft__sched_notify_one(): hold
     * the runtime for the duration. Safe to take: the caller's reference
     * keeps the cell, so its shard, so the runtime, alive at this point. */
    if (!held)
        atomic_fetch_add_explicit(&rt->holds, 1, memory_order_relaxed);
    r = inject_push(rt, t, t, 1);
    if (r < 0)
        weft__task_drop_entry(t);     /* closed: drop the queue's reference */
    else if (r > 0)
        weft__sched_notify_one(rt);   /* made it non-empty: see the wake policy */
    if (!held && atomic_fetch_sub_explicit(&rt->holds, 1, memory_order_acq_rel) == 1)
        weft__sched_destroy(rt);
}

/* A push on worker w of rt (this thread's). */
static inline void push_worker(struct weft_runtime *rt, struct worker *w, struct weft__task *t,
                               bool yield)
{
    if (yield) {
        weft__sched_push_local(w, t);
    } else if (w->wake_fifo) {
        /* A parked worker's drive of the timers: to the local queue, where
         * others may steal it. The first task wakes nobody (this worker
         * runs it next, as from an empty LIFO slot: one timer firing at a
         * time costs no second thread's wake-up); each later one notifies
         * as a queue push does, so that a burst is shared, and a driver
         * held off the CPU strands none of it. */
        weft__sched_push_local(w, t);
        if (w->wake_fifo++ == 1)
            return;
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

/* A new task, from spawn() (the caller holds the runtime, and has looked
 * up w = local_worker(rt)): from a plain thread, two atomic RMWs on the
 * runtime's hold count fewer than a wake. */
void weft__sched_push_new(struct weft_runtime *rt, struct worker *w, struct weft__task *t)
{
    /* before the push: once queued, t may run, finish and be freed (its
     * address is only recorded, never read) */
    if (weft__trace_active(rt))
        weft__trace_wake(rt, w, t);
    if (w == NULL)
        push_foreign(rt, t, true);
    else
        push_worker(rt, w, t, false);
}

/* noinline: weft__sched_schedule()'s fast path stays a frameless leaf
 * with a tail jump here (inlined, its wake_fifo test made the compiler
 * merge the two and give the fast path a frame: +34 instructions per
 * W4 message) */
__attribute__((noinline)) void weft__sched_push(struct weft_runtime *rt, struct weft__task *t,
                                                bool yield)
{
    struct worker *w = local_worker(rt);

    /* before the push, as above */
    if (weft__trace_active(rt))
        weft__trace_wake(rt, w, t);
    if (w == NULL)
        push_foreign(rt, t, false);   /* a waker on a plain thread */
    else
        push_worker(rt, w, t, yield);
}

/* The task layer's schedule(). Its common case, a wake made by the task
 * running on this worker (message passing: every hop of W4) into an empty
 * LIFO slot, is push_worker()'s LIFO branch, written out here with the
 * same loads and stores so that it runs without a frame; everything else
 * goes through weft__sched_push(), a parked worker's drive of the timers
 * (wake_fifo) included: what that fires goes to the local queue, and the
 * first task wakes nobody (this fast path, taken there, put it in the LIFO
 * slot, where only its owner runs it, and woke a sleeper at every firing,
 * since the driver had given up the watcher role). */
void weft__sched_schedule(void *s, struct weft__task *t, bool yield)
{
    struct weft_runtime *rt = shard_rt(s);
    struct worker *w = local_worker(rt);

    if (w != NULL && !yield && !w->wake_fifo && !weft__trace_active(rt) &&
        atomic_load_explicit(&w->lifo, memory_order_relaxed) == NULL) {
        /* as in push_worker(): a plain store into the empty slot (release:
         * the task's state before a thief's acquire exchange); wake
         * nobody unless nobody watches, and then as notify_local() */
        atomic_store_explicit(&w->lifo, t, memory_order_release);
        if (atomic_load_explicit(&rt->idle.watcher, memory_order_relaxed) == -1)
            notify_local(rt);
        return;
    }
    weft__sched_push(rt, t, yield);
}

