/* SPDX-License-Identifier: MIT */
/* The runtime's lifecycle: weft_runtime_new() sets up the workers, queues,
 * timers and reactor and starts the threads; weft__sched_destroy() frees it
 * all once the last cell and the user's hold are gone. And spawning: a cell,
 * its place in a shard of the books, its first trip to a run queue. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sched/internal.h"
#include "sched/runtime.h"
#include "sched/trace.h"
#include "util/alloc.h"
#include "util/list.h"
#include "weft/blocking.h"            /* WEFT_BLOCKING_MAX_THREADS, a limit only */

static const struct weft__sched_ops runtime_ops = {
    weft__sched_schedule, weft__sched_completed, weft__sched_lint, weft__sched_release,
    weft__sched_block, weft__sched_unblock, weft__sched_cancelling
};

/* ---- Lifecycle -------------------------------------------------------------------------- */
void weft__sched_destroy(struct weft_runtime *rt)
{
    /* acquire: pairs with the release store in weft__runtime_blocking() */
    void *pool = atomic_load_explicit(&rt->blocking.obj, memory_order_acquire);

    if (pool)
        rt->blocking.release(pool);   /* stopped at shutdown: waits for nothing */
    weft__sched_cells_destroy(rt);    /* the caches, the pool, the blocks */
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = &rt->workers[i];

        pthread_cond_destroy(&w->park_cond);
        pthread_mutex_destroy(&w->park_lock);
        weft__time_destroy(&w->time);
    }
    /* relaxed: nobody else is left */
    for (const struct weft__lint_cfg *c = atomic_load_explicit(&rt->lint, memory_order_relaxed);
         c != &weft__lint_default;) {
        struct weft__lint_cfg *dead = (struct weft__lint_cfg *)c;

        c = dead->older;
        weft__free(dead);
    }
    pthread_cond_destroy(&rt->run_cond);
    pthread_mutex_destroy(&rt->run_lock);
    weft__io_destroy(&rt->io);
    weft__trace_free(atomic_load_explicit(&rt->trace, memory_order_relaxed));
    pthread_mutex_destroy(&rt->trace_lock);
    pthread_mutex_destroy(&rt->idle.lock);
    if (rt->idle.alarm_tfd >= 0)
        close(rt->idle.alarm_tfd);
    if (rt->idle.alarm_efd >= 0)
        close(rt->idle.alarm_efd);
    pthread_mutex_destroy(&rt->idle.alarm_lock);
    weft__free(rt->idle.sleepers);
    weft__aligned_free(rt->shards, _Alignof(struct shard));
    weft__aligned_free(rt->workers, _Alignof(struct worker));
    weft__aligned_free(rt, _Alignof(struct weft_runtime));
}

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > WEFT_MAX_WORKERS ? WEFT_MAX_WORKERS : (unsigned)n;
}

static void name_worker(struct worker *w, const char *prefix)
{
    char idx[12];
    int keep;

    /* Linux keeps 15 characters of a thread name: cut the prefix so that
     * the index always survives */
    snprintf(idx, sizeof(idx), "%u", w->index);
    keep = (int)(sizeof(w->name) - 1 - strlen(idx));
    snprintf(w->name, sizeof(w->name), "%.*s%s", keep, prefix, idx);
}

WEFT_API int weft_runtime_new(weft_runtime **out, const weft_runtime_options *opt)
{
    const char *st = getenv("WEFT_STRESS");
    bool stress = st && *st && strcmp(st, "0") != 0;
    static const weft_runtime_options defaults = { WEFT_MULTI_THREAD, 0, NULL, 0, WEFT_IO_AUTO, 0 };
    const char *be = getenv("WEFT_IO_BACKEND");
    int io_want;
    struct weft_runtime *rt;
    unsigned nthreads, slots;
    const char *prefix;

    if (out == NULL)
        return -EINVAL;
    if (opt == NULL)
        opt = &defaults;
    if (opt->flavor == WEFT_MULTI_THREAD) {
        if (opt->workers > WEFT_MAX_WORKERS)
            return -EINVAL;
        nthreads = slots = opt->workers ? opt->workers : online_cpus();
    } else if (opt->flavor == WEFT_CURRENT_THREAD) {
        if (opt->workers != 0)
            return -EINVAL;
        nthreads = 0;
        slots = 1;                    /* the thread inside run/block_on */
    } else {
        return -EINVAL;
    }
    if (opt->blocking_threads > WEFT_BLOCKING_MAX_THREADS)
        return -EINVAL;
    /* weft/coro.h's WEFT_CO_STACK_MIN and WEFT_CO_STACK_MAX (a layer up) */
    if (opt->coro_stack_size != 0 &&
        (opt->coro_stack_size < ((size_t)16 << 10) || opt->coro_stack_size > ((size_t)1 << 30)))
        return -EINVAL;
    prefix = opt->thread_name_prefix ? opt->thread_name_prefix : "weft-w";
    switch (opt->io_backend) {
    case WEFT_IO_AUTO:
        io_want = be && strcmp(be, "uring") == 0 ? WEFT_IO_URING : WEFT_IO_EPOLL;
        break;
    case WEFT_IO_EPOLL:
    case WEFT_IO_URING:
        io_want = (int)opt->io_backend;
        break;
    default:
        return -EINVAL;
    }

    /* the runtime, its workers and shards have cache-line-aligned members:
     * more than the hook promises */
    rt = weft__aligned_calloc(1, sizeof(*rt), _Alignof(struct weft_runtime));
    if (rt == NULL)
        return -ENOMEM;
    rt->workers = weft__aligned_calloc(slots, sizeof(*rt->workers), _Alignof(struct worker));
    rt->nshards = slots + FOREIGN_SHARDS;
    rt->shards = weft__aligned_calloc(rt->nshards, sizeof(*rt->shards), _Alignof(struct shard));
    rt->idle.sleepers = weft__calloc(slots, sizeof(*rt->idle.sleepers));
    if (rt->workers == NULL || rt->shards == NULL || rt->idle.sleepers == NULL) {
        weft__free(rt->idle.sleepers);
        weft__aligned_free(rt->shards, _Alignof(struct shard));
        weft__aligned_free(rt->workers, _Alignof(struct worker));
        weft__aligned_free(rt, _Alignof(struct weft_runtime));
        return -ENOMEM;
    }
    rt->flavor = opt->flavor;
    rt->nworkers = slots;
    atomic_flag_clear(&rt->inject.lock.f);
    atomic_flag_clear(&rt->pool.lock.f);
    atomic_init(&rt->pool.nonempty, 0);
    pthread_mutex_init(&rt->idle.lock, NULL);
    pthread_mutex_init(&rt->run_lock, NULL);
    pthread_mutex_init(&rt->trace_lock, NULL);
    pthread_cond_init(&rt->run_cond, NULL);
    atomic_init(&rt->inject.len, 0);
    atomic_init(&rt->idle.num_sleeping, 0);
    atomic_init(&rt->idle.num_searching, 0);
    atomic_init(&rt->idle.watcher, -1);
    atomic_init(&rt->idle.io_owner, -1);
    atomic_init(&rt->idle.spinner, 0);
    atomic_init(&rt->idle.backup, -1);
    atomic_init(&rt->idle.nap_until, UINT64_MAX);
    pthread_mutex_init(&rt->idle.alarm_lock, NULL);
    rt->idle.alarm_tfd = rt->idle.alarm_efd = -1;
    atomic_init(&rt->idle.alarm_state, ALARM_NONE);
    atomic_init(&rt->idle.alarm_ns, 0);
    weft__io_init(&rt->io, weft__sched_io_kick, rt, io_want);
    rt->io.made = weft__sched_io_made;
    /* one worker: the only thread that polls the reactor (io/uring.h) */
    rt->io.one_poller = rt->flavor == WEFT_MULTI_THREAD && rt->nworkers == 1;
    rt->io.is_poller = weft__sched_io_is_worker;
    atomic_init(&rt->closed, false);
    atomic_init(&rt->tracing, false);
    atomic_init(&rt->trace, NULL);
    atomic_init(&rt->foreign_spawned, 0);
    atomic_init(&rt->foreign_completed, 0);
    atomic_init(&rt->foreign_aborted, 0);
    atomic_init(&rt->lints, 0);
    atomic_init(&rt->lint, &weft__lint_default);
    rt->created_ns = weft__task_clock_ns();
    atomic_init(&rt->clock_ns, rt->created_ns);
    {
        const char *pt = getenv("WEFT_POLL_TIMING");

        atomic_init(&rt->poll_timing, pt && *pt && strcmp(pt, "0") != 0);
    }
    atomic_init(&rt->run_waiters, 0);
    atomic_init(&rt->holds, 1);
    weft__list_init(&rt->blocked);
    atomic_init(&rt->blocking.obj, NULL);
    rt->blocking.max_threads = opt->blocking_threads;
    rt->coro_stack_size = opt->coro_stack_size;
    for (unsigned i = 0; i < rt->nshards; i++) {
        struct shard *sh = &rt->shards[i];

        sh->base.ops = &runtime_ops;
        sh->base.domain = rt;         /* weft__sched_enter() sets the thread's */
        sh->rt = rt;
        atomic_flag_clear(&sh->lock.f);
        weft__list_init(&sh->cells);
        atomic_init(&sh->dead, NULL);
    }
    for (unsigned i = 0; i < slots; i++) {
        struct worker *w = &rt->workers[i];

        lq_init(&w->q);
        atomic_init(&w->lifo, NULL);
        atomic_flag_clear(&w->spill.lock.f);
        atomic_init(&w->spill.len, 0);
        weft__time_init(&w->time, weft__sched_time_kick, rt);
        weft__task_env_init(&w->env);
        w->env.time = &w->time;
        w->env.worker = (int)i;
        w->env.timing = &rt->poll_timing;
        w->env.now_ns = rt->created_ns;
        w->env.lint = &rt->lint;
        w->env.stress = stress;
        w->watch_ns = WATCH_MIN_NS;
        w->tick = GLOBAL_INTERVAL;    /* the first periodic round after as many */
        w->rt = rt;
        w->index = i;
        pthread_mutex_init(&w->park_lock, NULL);
        pthread_condattr_t ca;

        /* monotonic: naps end at timer deadlines, which are monotonic */
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w->park_cond, &ca);
        pthread_condattr_destroy(&ca);
        name_worker(w, prefix);
    }
    for (unsigned i = 0; i < nthreads; i++) {
        if (pthread_create(&rt->workers[i].thread, NULL, weft__sched_worker_main,
                           &rt->workers[i]) != 0) {
            weft__sched_close(rt);
            for (unsigned k = 0; k < rt->nthreads; k++)
                pthread_join(rt->workers[k].thread, NULL);
            weft__sched_destroy(rt);
            return -EAGAIN;
        }
        rt->nthreads = i + 1;
    }
    *out = rt;
    return 0;
}

/* ---- Spawning ------------------------------------------------------------------------ */
static int spawn(struct weft_runtime *rt, const weft_future_type *type,
                 const void *init, weft_join **join)
{
    struct worker *w;
    struct shard *sh;
    struct weft__task *t;
    uint64_t now;
    void *cell;
    int err;

    if (rt == NULL || init == NULL)
        return -EINVAL;
    err = weft__future_type_check(type);
    if (err < 0)
        return err;
    w = local_worker(rt);
    cell = weft__sched_cell_alloc(rt, type);
    if (cell == NULL)
        return -ENOMEM;
    sh = w ? &rt->shards[w->index]
           : &rt->shards[rt->nworkers + ((uintptr_t)cell >> 6) % FOREIGN_SHARDS];
    t = weft__task_init(cell, type, init, &sh->base, join != NULL);
    /* spawned at: the clock as the worker (or, off the workers, any
     * worker) last read it: no clock read per spawn (see env.now_ns) */
    now = w ? w->env.now_ns : atomic_load_explicit(&rt->clock_ns, memory_order_relaxed);
    spin_lock(&sh->lock);
    /* acquire: pairs with the release store of `closed` in weft__sched_close():
     * a spawn that gets in here is seen by shutdown's scan of the shards */
    if (atomic_load_explicit(&rt->closed, memory_order_acquire)) {
        spin_unlock(&sh->lock);
        weft__sched_cell_free(rt, t);
        return -ESHUTDOWN;
    }
    /* ids: shard i's k-th cell is k * nshards + i + 1, unique, and growing
     * along each shard's list (the dump reports them in that order) */
    weft__task_set_id(t, sh->seq++ * rt->nshards + (uint64_t)(sh - rt->shards) + 1, now);
    weft__list_push_back(&sh->cells, &t->owned);
    if (sh->count++ == 0)
        atomic_fetch_add_explicit(&rt->holds, 1, memory_order_relaxed);
    spin_unlock(&sh->lock);
    weft__sched_count_spawn(rt, w);
    if (join)
        *join = (weft_join *)(void *)t;
    weft__sched_push_new(rt, w, t);
    return 0;
}

WEFT_API int weft_spawn(weft_runtime *rt, const weft_future_type *type,
                        const void *init, weft_join **join)
{
    if (join == NULL)
        return -EINVAL;
    return spawn(rt, type, init, join);
}

WEFT_API int weft_spawn_detached(weft_runtime *rt, const weft_future_type *type,
                                 const void *init)
{
    return spawn(rt, type, init, NULL);
}

struct weft__io *weft__runtime_io(weft_runtime *rt)
{
    return &rt->io;
}

int weft__runtime_blocking(weft_runtime *rt, int (*make)(void **obj, unsigned max_threads),
                           void (*stop)(void *obj), void (*release)(void *obj), void **out)
{
    void *obj;
    int err = 0;

    /* relaxed: a hint; a pool handed out as shutdown begins refuses spawns
     * itself once stopped */
    if (atomic_load_explicit(&rt->closed, memory_order_relaxed))
        return -ESHUTDOWN;
    /* acquire: pairs with the release store below; the pool is set up */
    obj = atomic_load_explicit(&rt->blocking.obj, memory_order_acquire);
    if (obj) {
        *out = obj;
        return 0;
    }
    pthread_mutex_lock(&rt->run_lock);
    /* relaxed: written only under run_lock, which we hold */
    obj = atomic_load_explicit(&rt->blocking.obj, memory_order_relaxed);
    if (obj == NULL) {
        if (rt->shutting) {
            err = -ESHUTDOWN;         /* shutdown stops only a pool it saw */
        } else {
            err = make(&obj, rt->blocking.max_threads);
            if (err == 0) {
                rt->blocking.stop = stop;
                rt->blocking.release = release;
                /* release: pairs with the acquire loads above and in
                 * weft__sched_destroy() */
                atomic_store_explicit(&rt->blocking.obj, obj, memory_order_release);
            }
        }
    }
    pthread_mutex_unlock(&rt->run_lock);
    if (err == 0)
        *out = obj;
    return err;
}

WEFT_API int weft_runtime_io_backend(weft_runtime *rt, int *fallback)
{
    if (rt == NULL)
        return -EINVAL;
    return weft__io_backend(&rt->io, fallback);
}

size_t weft__runtime_coro_stack_size(const weft_runtime *rt)
{
    return rt->coro_stack_size;
}
