/* SPDX-License-Identifier: MIT */
/* Running to completion: weft_runtime_run(), weft_block_on(), and the
 * current-thread flavour's driver (the calling thread as the one worker). */
#include <errno.h>
#include <pthread.h>

#include "sched/internal.h"
#include "sched/trace.h"
#include "util/list.h"

/* ---- Join waits on a current-thread runtime -----------------------------------------
 * Its tasks run only while a thread is inside run/block_on (the driver). A
 * plain thread that would block in weft_join_wait() with no driver would
 * wait for ever: it gets -EDEADLK at once; one that blocks while a driver
 * runs is listed, and woken with -EDEADLK when the last driver leaves
 * (unless the runtime is shutting down: shutdown cancels every task, which
 * wakes it). Both sides decide under run_lock, so a driver cannot leave
 * between the waiter's look and its listing unseen.
 *  waiter                                  driver leaving
 *  lock; driving? list self; unlock         lock; driving = false
 *  sleep until completion or stop           no driver waiting, not shut:
 *  lock; unlist; unlock                       stop every listed waiter; unlock */
static void stop_blocked(struct weft_runtime *rt)
{
    struct weft__list *n;

    for (n = rt->blocked.next; n != &rt->blocked; n = n->next) {
        struct weft__blocked *b = weft__container_of(n, struct weft__blocked, link);

        weft_waker_wake_by_ref(&b->stop);
    }
}

int weft__sched_block(void *s, struct weft__task *t, struct weft__blocked *b)
{
    struct weft_runtime *rt = shard_rt(s);
    int err;

    (void)t;
    b->listed = false;
    /* a drop run by this runtime's shutdown, waiting for a sibling */
    err = weft__sched_help(rt);
    if (err != 0 || rt->flavor != WEFT_CURRENT_THREAD)
        return err;
    pthread_mutex_lock(&rt->run_lock);
    if (rt->shut) {
        /* shutdown cancels every task: the completion is coming */
    } else if (!rt->driving && rt->drivers_waiting == 0) {
        err = -EDEADLK;               /* nobody runs this runtime's tasks */
    } else {
        weft__list_push_back(&rt->blocked, &b->link);
        b->listed = true;
    }
    pthread_mutex_unlock(&rt->run_lock);
    return err;
}

void weft__sched_unblock(void *s, struct weft__blocked *b)
{
    struct weft_runtime *rt = shard_rt(s);

    if (!b->listed)
        return;
    pthread_mutex_lock(&rt->run_lock);
    weft__list_remove(&b->link);
    pthread_mutex_unlock(&rt->run_lock);
}

/* ---- Running to completion ---------------------------------------------------------- */
static bool no_active_tasks(void *arg)
{
    return weft__sched_active_tasks(arg) == 0;
}

/* Current-thread: run tasks on this thread until done(arg) or shutdown.
 * Returns 0 or -ESHUTDOWN. */
static int drive(struct weft_runtime *rt, bool (*done)(void *), void *arg)
{
    struct worker *w = &rt->workers[0];
    struct weft__task *t;
    int err = 0;

    pthread_mutex_lock(&rt->run_lock);
    /* one driver at a time: a second one waits for the first to leave (the
     * first runs every queued task meanwhile, the second's included) */
    rt->drivers_waiting++;
    while (rt->driving && !rt->shut)
        pthread_cond_wait(&rt->run_cond, &rt->run_lock);
    rt->drivers_waiting--;
    if (rt->shut) {
        pthread_mutex_unlock(&rt->run_lock);
        return -ESHUTDOWN;
    }
    rt->driving = true;
    pthread_mutex_unlock(&rt->run_lock);

    weft__sched_enter(w);
    while (!done(arg)) {
        if (atomic_load_explicit(&rt->closed, memory_order_acquire)) {
            err = -ESHUTDOWN;
            break;
        }
        t = weft__sched_next_local(w);
        if (t == NULL && weft__trace_active(rt)) {
            uint64_t t0 = weft__trace_now();

            t = weft__sched_park(w);
            weft__trace_mark(rt, w, TR_PARK, 0, t0, weft__trace_now() - t0);
            weft__sched_clock(w);
        } else if (t == NULL) {
            t = weft__sched_park(w);  /* one worker: never watches */
            weft__sched_clock(w);
        }
        if (t)
            weft__sched_run_task(w, t);
    }
    weft__sched_leave();

    pthread_mutex_lock(&rt->run_lock);
    rt->driving = false;
    if (rt->drivers_waiting == 0 && !rt->shut)
        stop_blocked(rt);             /* nobody runs their tasks now */
    pthread_cond_broadcast(&rt->run_cond);     /* a waiting shutdown or driver */
    pthread_mutex_unlock(&rt->run_lock);
    return err;
}

/* -ESHUTDOWN from run means "unfinished tasks were cancelled" (sched.h):
 * wait until the shutdown has dropped them, unless this thread is the one
 * running it (a drop calling run would wait for itself). */
static int run_shut(struct weft_runtime *rt)
{
    if (weft__sched_shutting_here(rt))
        return -ESHUTDOWN;
    pthread_mutex_lock(&rt->run_lock);
    while (!rt->shutdown_done)
        pthread_cond_wait(&rt->run_cond, &rt->run_lock);   /* its last broadcast */
    pthread_mutex_unlock(&rt->run_lock);
    return -ESHUTDOWN;
}

static int run_held(struct weft_runtime *rt)
{
    int err = 0;

    if (rt->flavor == WEFT_CURRENT_THREAD) {
        err = drive(rt, no_active_tasks, rt);
        return err == -ESHUTDOWN ? run_shut(rt) : err;
    }
    pthread_mutex_lock(&rt->run_lock);
    atomic_fetch_add_explicit(&rt->run_waiters, 1, memory_order_relaxed);
    full_fence();                     /* pairs: the fence in weft__sched_park() */
    while (!rt->shut && !no_active_tasks(rt))
        pthread_cond_wait(&rt->run_cond, &rt->run_lock);
    if (rt->shut)
        err = -ESHUTDOWN;
    atomic_fetch_sub_explicit(&rt->run_waiters, 1, memory_order_relaxed);
    pthread_mutex_unlock(&rt->run_lock);
    return err == -ESHUTDOWN ? run_shut(rt) : err;
}

/* A run holds the runtime's memory (a hold, as a shard's) for as long as
 * it is inside: another thread may free the runtime meanwhile (sched.h: the
 * run then returns -ESHUTDOWN once the shutdown is done), and the run still
 * reads run_lock and shutdown_done after the free's own release. Whoever
 * lets the last hold go destroys the runtime: the free, or this run.
 * (weft_block_on() and weft_join_wait() need none: their join handle keeps
 * the task's cell, hence its shard's hold.) */
WEFT_API int weft_runtime_run(weft_runtime *rt)
{
    int err;

    if (rt == NULL || weft__task_driver != NULL)
        return -EINVAL;
    /* relaxed: the caller's own hold (the user's) keeps the count above 0 */
    atomic_fetch_add_explicit(&rt->holds, 1, memory_order_relaxed);
    err = run_held(rt);
    /* acq_rel: as every other release of a hold (the free's, a shard's) */
    if (atomic_fetch_sub_explicit(&rt->holds, 1, memory_order_acq_rel) == 1)
        weft__sched_destroy(rt);
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
        if (err == -ESHUTDOWN)        /* shutdown cancels the root: wait */
            err = weft_join_wait(j, out);
        else if (err == 0)
            err = weft_join_try(j, out);
    } else {
        err = weft_join_wait(j, out);
    }
    weft_join_drop(j);
    return err;
}

