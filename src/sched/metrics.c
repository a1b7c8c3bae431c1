/* SPDX-License-Identifier: MIT */
/* Counting active tasks (what run() waits for), and the runtime's metrics
 * and introspection. */
#include <pthread.h>
#include <stdio.h>

#include "weft/observe.h"

#include "sched/internal.h"
#include "util/alloc.h"

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

void weft__sched_completed(void *s, struct weft__task *t, bool cancelled)
{
    struct weft_runtime *rt = shard_rt(s);
    struct worker *w = local_worker(rt);

    (void)t;                          /* may be freed already: not touched */
    if (cancelled) {
        /* before `completed`: a reader that sees the completion sees this */
        if (w)
            counter_add(&w->aborted, 1);
        else
            atomic_fetch_add_explicit(&rt->foreign_aborted, 1, memory_order_relaxed);
    }
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
    out->local_queue_depth = lq_len(&w->q) +
                             atomic_load_explicit(&w->spill.len, memory_order_relaxed);
    return 0;
}


/* ---- Lints ---------------------------------------------------------------------------- */
const struct weft__lint_cfg weft__lint_default = {
    (1u << WEFT_LINT_LONG_POLL) | (1u << WEFT_LINT_LOST_WAKER) | (1u << WEFT_LINT_BUSY_LOOP) |
        (1u << WEFT_LINT_STALL),
    50u * 1000u * 1000u, NULL, NULL, NULL
};

static void lint_print(const weft_lint *l)
{
    const weft_async_site *at = l->parked_at;

    /* one write: lines from several workers do not interleave */
    if (at && at->file == NULL)        /* a coroutine's blocking call */
        fprintf(stderr, "weft lint: %s: task %llu (%s) on worker %d, value %llu, parked in %s\n",
                weft_lint_name(l->kind), l->task_id, l->type_name ? l->type_name : "?",
                l->worker, l->value, at->func ? at->func : "?");
    else if (at)
        fprintf(stderr, "weft lint: %s: task %llu (%s) on worker %d, value %llu, parked at %s (%s:%u)\n",
                weft_lint_name(l->kind), l->task_id, l->type_name ? l->type_name : "?",
                l->worker, l->value, at->func ? at->func : "?", at->file ? at->file : "?",
                at->line);
    else
        fprintf(stderr, "weft lint: %s: task %llu (%s) on worker %d, value %llu\n",
                weft_lint_name(l->kind), l->task_id, l->type_name ? l->type_name : "?",
                l->worker, l->value);
}

/* The task layer saw a lint on `t` (held: RUNNING or a reference). */
void weft__sched_lint(void *s, struct weft__task *t, int kind, uint64_t value)
{
    struct weft_runtime *rt = shard_rt(s);
    const struct weft__lint_cfg *cfg;
    struct weft__task_dbg *d = weft__task_dbg(t);
    struct worker *w = local_worker(rt);
    weft_lint l;

    /* acquire: pairs with the release in weft_runtime_set_lints() */
    cfg = atomic_load_explicit(&rt->lint, memory_order_acquire);
    l.kind = (weft_lint_kind)kind;
    l.task_id = d->id;
    l.type_name = weft__task_display_name(t);
    l.worker = w ? (int)w->index : -1;
    l.value = value;
    /* relaxed: the poller's own store (this thread) */
    l.parked_at = atomic_load_explicit(&d->site, memory_order_relaxed);
    atomic_fetch_add_explicit(&rt->lints, 1, memory_order_relaxed);
#if WEFT_TASK_STACKFUL_INLINE
    if (w)
        w->fp_known = false;          /* the hook may change the FP words (task/stackful.h) */
#endif
    if (cfg->hook)
        cfg->hook(&l, cfg->arg);
    else
        lint_print(&l);
}

/* The watcher saw worker `victim` inside one poll (task `id`, named
 * `name`) for `ns` at least, still running. The task is not touched: it
 * may end and be freed at any moment; id and name were published by the
 * polling worker (a name is a descriptor's constant string). */
void weft__sched_lint_stall(struct weft_runtime *rt, unsigned victim, uint64_t id,
                            const char *name, uint64_t ns)
{
    /* acquire: pairs with the release in weft_runtime_set_lints() */
    const struct weft__lint_cfg *cfg = atomic_load_explicit(&rt->lint, memory_order_acquire);
    weft_lint l;

    l.kind = WEFT_LINT_STALL;
    l.task_id = id;
    l.type_name = name;
    l.worker = (int)victim;
    l.value = ns;
    l.parked_at = NULL;
    atomic_fetch_add_explicit(&rt->lints, 1, memory_order_relaxed);
    if (cfg->hook)
        cfg->hook(&l, cfg->arg);
    else
        lint_print(&l);
}

WEFT_API const char *weft_lint_name(weft_lint_kind kind)
{
    switch (kind) {
    case WEFT_LINT_LONG_POLL:
        return "long-poll";
    case WEFT_LINT_LOST_WAKER:
        return "lost-waker";
    case WEFT_LINT_BUSY_LOOP:
        return "busy-loop";
    case WEFT_LINT_STALL:
        return "stall";
    }
    return "?";
}

WEFT_API int weft_runtime_set_lints(weft_runtime *rt, const weft_lint_options *opt)
{
    struct weft__lint_cfg *c;

    if (rt == NULL)
        return -EINVAL;
    c = weft__calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    *c = weft__lint_default;
    if (opt) {
        if (opt->mask & WEFT_LINTS_OFF)
            c->mask = 0;
        else if (opt->mask != 0)
            c->mask = opt->mask & weft__lint_default.mask;
        if (opt->long_poll_ns != 0)
            c->long_poll_ns = opt->long_poll_ns;
        c->hook = opt->hook;
        c->arg = opt->arg;
    }
    pthread_mutex_lock(&rt->run_lock);
    /* relaxed: run_lock orders the writers; the chain is freed at destroy */
    c->older = (struct weft__lint_cfg *)atomic_load_explicit(&rt->lint, memory_order_relaxed);
    /* release: the copy's fields, for the workers' acquire loads */
    atomic_store_explicit(&rt->lint, c, memory_order_release);
    pthread_mutex_unlock(&rt->run_lock);
    return 0;
}
