/* SPDX-License-Identifier: MIT */
/* Running to completion: weft_runtime_run(), weft_block_on(), and the
 * current-thread flavour's driver (the calling thread as the one worker). */
#include <pthread.h>

#include "sched/internal.h"

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
    while (rt->driving && !rt->shut)
        pthread_cond_wait(&rt->run_cond, &rt->run_lock);
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
        if (t == NULL)
            t = weft__sched_park(w);              /* one worker: never watches */
        if (t)
            weft__sched_run_task(w, t);
    }
    weft__sched_leave();

    pthread_mutex_lock(&rt->run_lock);
    rt->driving = false;
    pthread_cond_broadcast(&rt->run_cond);     /* a waiting shutdown */
    pthread_mutex_unlock(&rt->run_lock);
    return err;
}

WEFT_API int weft_runtime_run(weft_runtime *rt)
{
    int err = 0;

    if (rt == NULL || weft__task_driver != NULL)
        return -EINVAL;
    if (rt->flavor == WEFT_CURRENT_THREAD)
        return drive(rt, no_active_tasks, rt);
    pthread_mutex_lock(&rt->run_lock);
    atomic_fetch_add_explicit(&rt->run_waiters, 1, memory_order_relaxed);
    full_fence();                     /* pairs: the fence in weft__sched_park() */
    while (!rt->shut && !no_active_tasks(rt))
        pthread_cond_wait(&rt->run_cond, &rt->run_lock);
    if (rt->shut)
        err = -ESHUTDOWN;
    atomic_fetch_sub_explicit(&rt->run_waiters, 1, memory_order_relaxed);
    pthread_mutex_unlock(&rt->run_lock);
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

