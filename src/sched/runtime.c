/* The runtime: workers, the run queue, spawning, run/block_on, shutdown.
 *
 * This is the seed's executor made real: one global FIFO run queue shared by
 * every worker (a mutex and an intrusive list of task cells), and workers
 * that sleep on a condition variable when it is empty.
 *
 * Locks (never held together, never held while a future runs):
 *   qlock  the run queue, the idle count, `closed`, and the run()/drive waits
 *   olock  the books: every live cell, `shut`, `freed`, `cells`
 *
 * The runtime struct stays allocated while any cell is alive (a cell's
 * release unlinks it under olock), so a waker on a foreign thread may
 * schedule a task at any time, even while the runtime is being freed. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "task/task.h"
#include "util/alloc.h"
#include "util/list.h"
#include "weft/sched.h"

struct worker {
    struct weft_runtime *rt;
    unsigned index;
    pthread_t thread;
    char name[16];
};

struct weft_runtime {
    struct weft__sched base;          /* first: tasks point here */
    weft_flavor flavor;
    unsigned nworkers;                /* threads started (0: current-thread) */
    struct worker *workers;           /* nworkers, or 1 for current-thread */

    pthread_mutex_t qlock;
    pthread_cond_t qcond;             /* work arrived, or closed */
    pthread_cond_t run_cond;          /* active reached 0, or closed */
    struct weft__task *qhead, *qtail; /* ->qlock */
    unsigned idle;                    /* ->qlock: threads waiting on qcond */
    bool closed;                      /* ->qlock: queue refuses tasks */
    bool driving;                     /* ->qlock: current-thread run in progress */

    pthread_mutex_t olock;
    struct weft__list owned;          /* ->olock: every live cell */
    size_t cells;                     /* ->olock: length of owned */
    bool shut;                        /* ->olock: spawn refused */
    bool freed;                       /* ->olock: the user has let go */
    bool shutdown_done;               /* only the shutdown caller reads/writes */

    /* tasks spawned and not completed; incremented under olock at spawn,
     * decremented by completion (any thread). */
    _Atomic size_t active;
};

static _Thread_local struct worker *cur_worker;

/* ---- Run queue ------------------------------------------------------------ */
static void queue_push(struct weft_runtime *rt, struct weft__task *t, bool yield)
{
    (void)yield;                      /* one FIFO: every push goes to the back */
    pthread_mutex_lock(&rt->qlock);
    if (rt->closed) {
        pthread_mutex_unlock(&rt->qlock);
        weft__task_ref_dec(t);        /* the queue entry's reference */
        return;
    }
    t->next = NULL;
    if (rt->qtail)
        rt->qtail->next = t;
    else
        rt->qhead = t;
    rt->qtail = t;
    if (rt->idle)
        pthread_cond_signal(&rt->qcond);
    pthread_mutex_unlock(&rt->qlock);
}

/* ->qlock held */
static struct weft__task *queue_pop_locked(struct weft_runtime *rt)
{
    struct weft__task *t = rt->qhead;

    if (t) {
        rt->qhead = t->next;
        if (rt->qhead == NULL)
            rt->qtail = NULL;
    }
    return t;
}

/* ---- The scheduler interface of tasks ------------------------------------------ */
static void sched_schedule(void *s, struct weft__task *t, bool yield)
{
    queue_push(s, t, yield);
}

static void sched_completed(void *s, struct weft__task *t)
{
    struct weft_runtime *rt = s;

    (void)t;
    /* acq_rel: the last completion happens before run() returns; pairs
     * with the acquire load in run_wait() (and the qlock below) */
    if (atomic_fetch_sub_explicit(&rt->active, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_lock(&rt->qlock);
        pthread_cond_broadcast(&rt->run_cond);
        if (rt->flavor == WEFT_CURRENT_THREAD && rt->idle)
            pthread_cond_broadcast(&rt->qcond);
        pthread_mutex_unlock(&rt->qlock);
    }
}

static void runtime_destroy(struct weft_runtime *rt)
{
    pthread_cond_destroy(&rt->run_cond);
    pthread_cond_destroy(&rt->qcond);
    pthread_mutex_destroy(&rt->qlock);
    pthread_mutex_destroy(&rt->olock);
    weft__free(rt->workers);
    weft__free(rt);
}

static void sched_release(void *s, struct weft__task *t)
{
    struct weft_runtime *rt = s;
    bool last;

    pthread_mutex_lock(&rt->olock);
    weft__list_remove(&t->owned);
    rt->cells--;
    last = rt->freed && rt->cells == 0;
    pthread_mutex_unlock(&rt->olock);
    if (last)
        runtime_destroy(rt);
}

static const struct weft__sched_ops runtime_ops = {
    sched_schedule, sched_completed, sched_release
};

/* ---- Workers ------------------------------------------------------------------ */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct weft_runtime *rt = w->rt;
    struct weft__task *t;

    pthread_setname_np(pthread_self(), w->name);
    cur_worker = w;
    weft__task_driver = w;
    for (;;) {
        pthread_mutex_lock(&rt->qlock);
        while (!rt->closed && rt->qhead == NULL) {
            rt->idle++;
            pthread_cond_wait(&rt->qcond, &rt->qlock);
            rt->idle--;
        }
        t = rt->closed ? NULL : queue_pop_locked(rt);
        pthread_mutex_unlock(&rt->qlock);
        if (t == NULL)
            break;
        weft__task_run(t);
    }
    weft__task_driver = NULL;
    cur_worker = NULL;
    return NULL;
}

static void close_queue(struct weft_runtime *rt)
{
    pthread_mutex_lock(&rt->qlock);
    rt->closed = true;
    pthread_cond_broadcast(&rt->qcond);
    pthread_cond_broadcast(&rt->run_cond);
    pthread_mutex_unlock(&rt->qlock);
}

static void join_workers(struct weft_runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++)
        pthread_join(rt->workers[i].thread, NULL);
    rt->nworkers = 0;
}

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > WEFT_MAX_WORKERS ? WEFT_MAX_WORKERS : (unsigned)n;
}

WEFT_API int weft_runtime_new(weft_runtime **out, const weft_runtime_options *opt)
{
    static const weft_runtime_options defaults = { WEFT_MULTI_THREAD, 0, NULL };
    struct weft_runtime *rt;
    unsigned n, slots;
    const char *prefix;
    int err;

    if (out == NULL)
        return -EINVAL;
    if (opt == NULL)
        opt = &defaults;
    if (opt->flavor == WEFT_MULTI_THREAD) {
        if (opt->workers > WEFT_MAX_WORKERS)
            return -EINVAL;
        n = opt->workers ? opt->workers : online_cpus();
        slots = n;
    } else if (opt->flavor == WEFT_CURRENT_THREAD) {
        if (opt->workers != 0)
            return -EINVAL;
        n = 0;
        slots = 1;                    /* the thread inside run/block_on */
    } else {
        return -EINVAL;
    }
    prefix = opt->thread_name_prefix ? opt->thread_name_prefix : "weft-w";

    rt = weft__calloc(1, sizeof(*rt));
    if (rt == NULL)
        return -ENOMEM;
    rt->workers = weft__calloc(slots, sizeof(*rt->workers));
    if (rt->workers == NULL) {
        weft__free(rt);
        return -ENOMEM;
    }
    rt->base.ops = &runtime_ops;
    rt->flavor = opt->flavor;
    pthread_mutex_init(&rt->qlock, NULL);
    pthread_mutex_init(&rt->olock, NULL);
    pthread_cond_init(&rt->qcond, NULL);
    pthread_cond_init(&rt->run_cond, NULL);
    weft__list_init(&rt->owned);
    atomic_init(&rt->active, 0);
    for (unsigned i = 0; i < slots; i++) {
        struct worker *w = &rt->workers[i];

        w->rt = rt;
        w->index = i;
        /* Linux keeps 15 characters of a thread name: cut the prefix so
         * that the index always survives. */
        snprintf(w->name, sizeof(w->name), "%.*s%u",
                 (int)(sizeof(w->name) - 1 - snprintf(NULL, 0, "%u", i)), prefix, i);
    }
    for (unsigned i = 0; i < n; i++) {
        err = pthread_create(&rt->workers[i].thread, NULL, worker_main, &rt->workers[i]);
        if (err) {
            close_queue(rt);
            join_workers(rt);
            runtime_destroy(rt);
            return -EAGAIN;
        }
        rt->nworkers = i + 1;
    }
    *out = rt;
    return 0;
}

/* ---- Spawning ------------------------------------------------------------------- */
static int spawn(struct weft_runtime *rt, const weft_future_type *type,
                 const void *init, weft_join **join)
{
    struct weft__task *t;
    int err;

    if (rt == NULL || init == NULL)
        return -EINVAL;
    err = weft__future_type_check(type);
    if (err < 0)
        return err;
    t = weft__task_new(type, init, &rt->base, join != NULL);
    if (t == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&rt->olock);
    if (rt->shut) {
        pthread_mutex_unlock(&rt->olock);
        weft__task_discard(t);
        return -ESHUTDOWN;
    }
    weft__list_push_back(&rt->owned, &t->owned);
    rt->cells++;
    /* relaxed: run_wait() reads it under qlock after our push below, or
     * sees a later value; completions decrement with acq_rel */
    atomic_fetch_add_explicit(&rt->active, 1, memory_order_relaxed);
    pthread_mutex_unlock(&rt->olock);
    if (join)
        *join = (weft_join *)(void *)t;
    queue_push(rt, t, false);
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

/* ---- Running to completion ----------------------------------------------------- */
/* Current-thread: run tasks on this thread until done(arg) or the queue is
 * closed. Returns 0, -EBUSY (another thread is driving), -ESHUTDOWN. */
static int drive(struct weft_runtime *rt, bool (*done)(void *), void *arg)
{
    struct weft__task *t;
    int err = 0;

    pthread_mutex_lock(&rt->qlock);
    if (rt->driving) {
        pthread_mutex_unlock(&rt->qlock);
        return -EBUSY;
    }
    rt->driving = true;
    cur_worker = &rt->workers[0];
    weft__task_driver = cur_worker;
    for (;;) {
        while (!rt->closed && rt->qhead == NULL && !done(arg)) {
            rt->idle++;
            pthread_cond_wait(&rt->qcond, &rt->qlock);
            rt->idle--;
        }
        if (rt->closed) {
            err = -ESHUTDOWN;
            break;
        }
        if (done(arg))
            break;
        t = queue_pop_locked(rt);
        pthread_mutex_unlock(&rt->qlock);
        weft__task_run(t);
        pthread_mutex_lock(&rt->qlock);
    }
    rt->driving = false;
    pthread_cond_broadcast(&rt->run_cond);     /* a waiting shutdown */
    cur_worker = NULL;
    weft__task_driver = NULL;
    pthread_mutex_unlock(&rt->qlock);
    return err;
}

static bool no_active_tasks(void *arg)
{
    struct weft_runtime *rt = arg;

    return atomic_load_explicit(&rt->active, memory_order_acquire) == 0;
}

WEFT_API int weft_runtime_run(weft_runtime *rt)
{
    int err = 0;

    if (rt == NULL || weft__task_driver != NULL)
        return -EINVAL;
    if (rt->flavor == WEFT_CURRENT_THREAD)
        return drive(rt, no_active_tasks, rt);
    pthread_mutex_lock(&rt->qlock);
    while (!rt->closed && !no_active_tasks(rt))
        pthread_cond_wait(&rt->run_cond, &rt->qlock);
    if (rt->closed && !no_active_tasks(rt))
        err = -ESHUTDOWN;
    pthread_mutex_unlock(&rt->qlock);
    return err;
}

static bool join_done(void *arg)
{
    return weft_join_is_complete(arg);
}

WEFT_API int weft_block_on(weft_runtime *rt, const weft_future_type *type,
                           const void *init, void *out)
{
    weft_join *j;
    int err;

    if (rt == NULL || weft__task_driver != NULL)
        return -EINVAL;
    err = weft_spawn(rt, type, init, &j);
    if (err < 0)
        return err;
    if (rt->flavor == WEFT_CURRENT_THREAD) {
        err = drive(rt, join_done, j);
        if (err == -ESHUTDOWN && weft_join_is_complete(j))
            err = 0;
        if (err == 0)
            err = weft_join_try(j, out);
    } else {
        err = weft_join_wait(j, out);
    }
    weft_join_drop(j);
    return err;
}

/* ---- Shutdown ---------------------------------------------------------------------- */
WEFT_API int weft_runtime_shutdown(weft_runtime *rt)
{
    struct weft__task *t, *claimed = NULL;
    struct weft__list *n;

    if (rt == NULL || (cur_worker && cur_worker->rt == rt))
        return -EINVAL;
    if (rt->shutdown_done)
        return 0;
    pthread_mutex_lock(&rt->olock);
    rt->shut = true;                  /* no spawn gets into the books now */
    pthread_mutex_unlock(&rt->olock);
    close_queue(rt);                  /* workers stop at their next pop */
    join_workers(rt);
    pthread_mutex_lock(&rt->qlock);   /* a current-thread driver stops too */
    while (rt->driving)
        pthread_cond_wait(&rt->run_cond, &rt->qlock);
    pthread_mutex_unlock(&rt->qlock);

    /* No thread runs tasks now. Drop the queue entries' references... */
    pthread_mutex_lock(&rt->qlock);
    t = rt->qhead;
    rt->qhead = rt->qtail = NULL;
    pthread_mutex_unlock(&rt->qlock);
    while (t) {
        struct weft__task *next = t->next;

        weft__task_ref_dec(t);        /* may free a completed task's cell */
        t = next;
    }
    /* ...then cancel every unfinished task. Claimed tasks are RUNNING, so no
     * waker can queue them: their queue link is free to chain them here. */
    pthread_mutex_lock(&rt->olock);
    for (n = rt->owned.next; n != &rt->owned; n = n->next) {
        t = weft__container_of(n, struct weft__task, owned);
        if (weft__task_shutdown_claim(t)) {
            t->next = claimed;
            claimed = t;
        }
    }
    pthread_mutex_unlock(&rt->olock);
    while (claimed) {
        t = claimed;
        claimed = t->next;
        weft__task_cancel_claimed(t); /* drop runs here, outside any lock */
    }
    rt->shutdown_done = true;
    return 0;
}

WEFT_API void weft_runtime_free(weft_runtime *rt)
{
    bool last;

    if (rt == NULL || weft_runtime_shutdown(rt) < 0)
        return;
    pthread_mutex_lock(&rt->olock);
    rt->freed = true;
    last = rt->cells == 0;
    pthread_mutex_unlock(&rt->olock);
    if (last)
        runtime_destroy(rt);
}

/* ---- Introspection ---------------------------------------------------------------- */
WEFT_API weft_runtime *weft_runtime_current(void)
{
    return cur_worker ? cur_worker->rt : NULL;
}

WEFT_API const char *weft_worker_name(void)
{
    return cur_worker ? cur_worker->name : NULL;
}

WEFT_API int weft_worker_index(void)
{
    return cur_worker ? (int)cur_worker->index : -1;
}

WEFT_API size_t weft_runtime_active_tasks(const weft_runtime *rt)
{
    /* relaxed: a snapshot, documented as such */
    return rt ? atomic_load_explicit(&rt->active, memory_order_relaxed) : 0;
}
