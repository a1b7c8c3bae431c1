/* SPDX-License-Identifier: MIT */
/* The worker loop: finding work (LIFO slot, local queue, inject queue,
 * stealing), running it, and a worker thread's life. */
#include <pthread.h>
#include <sched.h>

#include "sched/internal.h"

WEFT_TLS struct worker *weft__sched_cur_worker;

static bool begin_search(struct worker *w)
{
    struct weft_runtime *rt = w->rt;

    if (w->searching)
        return true;
    /* at most half the workers search at once (the rest would only fight
     * over the same few tasks); relaxed: a soft limit */
    if (2 * atomic_load_explicit(&rt->idle.num_searching, memory_order_relaxed) >= rt->nworkers)
        return false;
    atomic_fetch_add_explicit(&rt->idle.num_searching, 1, memory_order_seq_cst);
    w->searching = true;
    return true;
}

/* ---- Finding work ------------------------------------------------------------------ */
/* Move a chain from the inject queue into w's local queue. */
static void take_chain(struct worker *w, struct weft__task *rest)
{
    while (rest) {
        struct weft__task *next = rest->next;

        weft__sched_push_local(w, rest);
        rest = next;
    }
}

static struct weft__task *lifo_take(struct worker *w)
{
    if (atomic_load_explicit(&w->lifo, memory_order_relaxed) == NULL)
        return NULL;
    /* acq_rel: pairs with the release store/exchange that filled it */
    return atomic_exchange_explicit(&w->lifo, NULL, memory_order_acq_rel);
}

/* Take work from the inject queue. With `batch` (the local queue is empty),
 * a fair share moves into the local queue: len / workers + 1, at most half
 * a local queue. Without (the periodic fairness check), just one task: a
 * batch on top of a full local queue would only overflow back. */
static struct weft__task *pop_inject(struct worker *w, bool batch)
{
    struct weft_runtime *rt = w->rt;
    size_t len = atomic_load_explicit(&rt->inject.len, memory_order_relaxed), n, max = 1;
    struct weft__task *t, *rest = NULL;

    if (batch) {
        max = len / rt->nworkers + 1;
        if (max > LQ_CAP / 2)
            max = LQ_CAP / 2;
    }
    t = weft__sched_inject_pop(rt, max, &rest, &n);
    take_chain(w, rest);
    return t;
}

struct weft__task *weft__sched_next_local(struct worker *w)
{
    struct weft__task *t;

    if (++w->tick % GLOBAL_INTERVAL == 0) {
        /* timers and I/O first: what they wake lands in our LIFO slot,
         * which is looked at next (looking at it before would strand a
         * task woken here when the queues are empty: weft__sched_park()
         * does not count LIFO slots as work) */
        weft__sched_drive_timers(w->rt);
        if (weft__io_active(&w->rt->io))
            weft__io_poll(&w->rt->io, 0);     /* busy: look without waiting */
        w->env.poll_end_ns = 0;       /* not the next poll's time */
        weft__sched_clock(w);         /* every GLOBAL_INTERVAL polls */
        if ((t = lifo_take(w)) != NULL)
            return t;
        t = pop_inject(w, false);
        if (t)
            return t;
    } else if ((t = lifo_take(w)) != NULL) {
        /* a task woken into our slot outside a poll (the timers we drove) */
        return t;
    }
    t = lq_pop(&w->q);
    if (t)
        return t;
    return pop_inject(w, true);
}

/* Steal from the others, starting at a different victim each time. */
static struct weft__task *steal_work(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    unsigned n = rt->nworkers, start = w->tick % n;
    uint32_t stolen;
    struct weft__task *t;

    for (unsigned i = 0; i < n; i++) {
        struct worker *v = &rt->workers[(start + i) % n];

        if (v == w)
            continue;
        t = lq_steal_into(&v->q, &w->q, &stolen);
        if (t) {
            counter_add(&w->steals, 1);
            return t;
        }
    }
    return pop_inject(w, true);
}

/* Poll t, then whatever lands in the LIFO slot, MAX_LIFO_POLLS at most. */
void weft__sched_run_task(struct worker *w, struct weft__task *t)
{
    for (unsigned n = 0;; n++) {
        counter_add(&w->polls, 1);
        if (weft__task_run(t, &w->env))
            weft__sched_push_local(w, t); /* yielded or self-woken: to the back */
        t = atomic_load_explicit(&w->lifo, memory_order_relaxed) ?
                atomic_exchange_explicit(&w->lifo, NULL, memory_order_acq_rel) :
                NULL;
        if (t == NULL)
            return;
        if (n == MAX_LIFO_POLLS) {
            weft__sched_push_local(w, t); /* its turn comes after the queue's */
            return;
        }
        counter_add(&w->lifo_polls, 1);
    }
}

/* Before sleeping, look again for a little while, yielding the CPU: work
 * that arrives within a few microseconds (a stream of spawns from another
 * thread) is then picked up without a futex wake-up on either side. A
 * bounded spin, so an idle runtime still goes to sleep at once in CPU terms. */
static bool spin_for_work(struct worker *w)
{
    _Atomic int *spinner = &w->rt->idle.spinner;
    int idle = 0;
    bool found = false;

    w->env.poll_end_ns = 0;           /* the next poll reads the clock */
    /* one spinner at a time: more would only race each other for the same
     * task (measured: with 16 workers, W2 cost 3.5x what it cost with 1) */
    if (atomic_load_explicit(spinner, memory_order_relaxed) ||
        !atomic_compare_exchange_strong_explicit(spinner, &idle, 1, memory_order_relaxed,
                                                 memory_order_relaxed))
        return false;
    for (unsigned i = 0; i < PARK_SPINS && !found; i++) {
        found = weft__sched_work_anywhere(w->rt) ||
                atomic_load_explicit(&w->rt->closed, memory_order_relaxed);
        if (!found)
            sched_yield();
    }
    atomic_store_explicit(spinner, 0, memory_order_relaxed);
    if (found)
        weft__sched_clock(w);         /* back to work after a while */
    return found;
}

/* One round of the worker loop: run something, or park. Returns false when
 * the runtime is closed. */
static bool worker_round(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    struct weft__task *t;

    if (atomic_load_explicit(&rt->closed, memory_order_acquire))
        return false;
    t = weft__sched_next_local(w);
    if (t == NULL && rt->nworkers > 1 && begin_search(w))
        t = steal_work(w);
    if (t) {
        /* a searcher that found work hands the search on */
        if (weft__sched_end_search(w))
            weft__sched_notify_one(rt);
        weft__sched_run_task(w, t);
        return true;
    }
    if (spin_for_work(w))
        return true;
    t = weft__sched_park(w);          /* the watcher may bring a task back */
    weft__sched_clock(w);             /* it slept, or may have */
    if (t)
        weft__sched_run_task(w, t);
    return true;
}

void weft__sched_enter(struct worker *w)
{
    w->env.poll_end_ns = 0;
    weft__task_env_mark(&w->env);
    weft__sched_clock(w);
    weft__sched_cur_worker = w;
    weft__task_driver = w;
}

void weft__sched_leave(void)
{
    weft__sched_cur_worker = NULL;
    weft__task_driver = NULL;
}

void *weft__sched_worker_main(void *arg)
{
    struct worker *w = arg;

    pthread_setname_np(pthread_self(), w->name);
    weft__sched_enter(w);
    while (worker_round(w))
        ;
    weft__sched_end_search(w);
    weft__sched_leave();
    return NULL;
}

/* ---- Introspection ------------------------------------------------------------------------ */
WEFT_API weft_runtime *weft_runtime_current(void)
{
    return weft__sched_cur_worker ? weft__sched_cur_worker->rt : NULL;
}

WEFT_API const char *weft_worker_name(void)
{
    return weft__sched_cur_worker ? weft__sched_cur_worker->name : NULL;
}

WEFT_API int weft_worker_index(void)
{
    return weft__sched_cur_worker ? (int)weft__sched_cur_worker->index : -1;
}

