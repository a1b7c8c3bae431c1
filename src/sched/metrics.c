/* SPDX-License-Identifier: MIT */
/* Counting active tasks (what run() waits for), and the runtime's metrics
 * and introspection. */
#include <pthread.h>

#include "sched/internal.h"

/* ---- Counting active tasks ----------------------------------------------------
 * No shared counter on the hot path: each worker counts the tasks it
 * spawned and completed (owner-only counters), other threads use the two
 * shared ones. The runtime is quiescent when completed == spawned:
 *  - reading every `completed` before every `spawned` makes a false "0"
 *    impossible (each counter only grows, and a task's completion is
 *    counted after its spawn), so run() never returns early;
 *  - run() must also be told when it happens. A thread entering run() bumps
 *    run_waiters and then looks (full fence between); a worker about to
 *    park looks at run_waiters after its own fence, and, if someone waits,
 *    checks under run_lock and wakes them. Whichever of them comes last sees
 *    the other's writes (Dekker), and the last worker to check under
 *    run_lock sees every worker's final counts (each counted before its own
 *    final check). */
void weft__sched_count_spawn(struct weft_runtime *rt, struct worker *w)
{
    if (w)
        counter_add(&w->spawned, 1);
    else
        /* release: pairs with the acquire in weft__sched_active_tasks() */
        atomic_fetch_add_explicit(&rt->foreign_spawned, 1, memory_order_release);
}

void weft__sched_completed(void *s, struct weft__task *t)
{
    struct weft_runtime *rt = shard_rt(s);
    struct worker *w = local_worker(rt);

    (void)t;                          /* may be freed already: not touched */
    if (w) {
        /* release: this completion (and what the task did) before anyone
         * who reads the count with acquire */
        atomic_store_explicit(&w->completed,
                              atomic_load_explicit(&w->completed, memory_order_relaxed) + 1,
                              memory_order_release);
    } else {
        atomic_fetch_add_explicit(&rt->foreign_completed, 1, memory_order_release);
    }
}

uint64_t weft__sched_active_tasks(const struct weft_runtime *rt)
{
    uint64_t done = atomic_load_explicit(&rt->foreign_completed, memory_order_acquire);
    uint64_t spawned = 0;

    for (unsigned i = 0; i < rt->nworkers; i++)
        done += atomic_load_explicit(&rt->workers[i].completed, memory_order_acquire);
    spawned = atomic_load_explicit(&rt->foreign_spawned, memory_order_acquire);
    for (unsigned i = 0; i < rt->nworkers; i++)
        spawned += atomic_load_explicit(&rt->workers[i].spawned, memory_order_acquire);
    return spawned > done ? spawned - done : 0;
}

/* A worker with nothing to do, after its full fence: wake run() waiters if
 * every task has completed. */
void weft__sched_check_quiescent(struct weft_runtime *rt)
{
    if (atomic_load_explicit(&rt->run_waiters, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&rt->run_lock);
    if (weft__sched_active_tasks(rt) == 0)
        pthread_cond_broadcast(&rt->run_cond);
    pthread_mutex_unlock(&rt->run_lock);
}

WEFT_API size_t weft_runtime_active_tasks(const weft_runtime *rt)
{
    return rt ? (size_t)weft__sched_active_tasks(rt) : 0;
}

WEFT_API unsigned weft_runtime_workers(const weft_runtime *rt)
{
    return rt ? rt->nworkers : 0;
}

WEFT_API int weft_runtime_worker_metrics(const weft_runtime *rt, unsigned worker,
                                         weft_worker_metrics *out)
{
    struct worker *w;

    if (rt == NULL || out == NULL || worker >= rt->nworkers)
        return -EINVAL;
    w = &rt->workers[worker];
    /* relaxed: counters, read as a snapshot */
    out->polls = atomic_load_explicit(&w->polls, memory_order_relaxed);
    out->steals = atomic_load_explicit(&w->steals, memory_order_relaxed);
    out->overflows = atomic_load_explicit(&w->overflows, memory_order_relaxed);
    out->parks = atomic_load_explicit(&w->parks, memory_order_relaxed);
    out->forced_yields = atomic_load_explicit(&w->env.forced_yields, memory_order_relaxed);
    out->lifo_polls = atomic_load_explicit(&w->lifo_polls, memory_order_relaxed);
    out->stranded_taken = atomic_load_explicit(&w->stranded_taken, memory_order_relaxed);
    out->local_queue_depth = lq_len(&w->q);
    return 0;
}

