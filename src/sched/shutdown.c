/* SPDX-License-Identifier: MIT */
/* Shutdown: close the queues, let the workers leave, drop what is queued,
 * cancel every unfinished task.
 *
 * The cancellations run on the thread that shuts down, one drop after the
 * other, and a drop may wait for a sibling: weft_join_wait() on it, or
 * weft_group_free() of a group whose children are among the tasks left.
 * Any order of the drops would leave such a wait blocked on a sibling this
 * thread has not reached yet, so the waits help instead of sleeping
 * (weft__sched_help()): on this thread they cancel the next claimed task
 * themselves and look again, until what they wait for has been dropped. A
 * wait that finds nothing left to cancel waits for a drop further up its
 * own stack (a cycle) and gets -EDEADLK. */
#include <errno.h>
#include <pthread.h>

#include "sched/internal.h"
#include "sched/runtime.h"
#include "util/list.h"

/* The runtimes whose shutdown this thread is running, innermost first (a
 * drop may shut another runtime down, nested: a frame per call, on its
 * stack). A drop that shuts down (or frees) one of them would wait for the
 * shutdown it runs inside, for ever: weft_runtime_shutdown() refuses it
 * with -EINVAL, as it does on the runtime's own workers. `cancelling`: the
 * frame's runtime is in its cancel loop, so a wait for one of its tasks
 * from a drop on this thread - at any depth, in a drop of a runtime shut
 * down inside one of its drops too - helps (cancels the next claimed task
 * of THAT runtime) instead of sleeping on a task only this thread, further
 * up its stack, will ever cancel. */
struct shutting_frame {
    struct weft_runtime *rt;
    struct shutting_frame *up;
    bool cancelling;
};
static WEFT_TLS struct shutting_frame *shutting_here;

static struct shutting_frame *frame_of(const struct weft_runtime *rt)
{
    for (struct shutting_frame *f = shutting_here; f != NULL; f = f->up)
        if (f->rt == rt)
            return f;
    return NULL;
}

static bool cancelling_on_this_thread(const struct weft_runtime *rt)
{
    const struct shutting_frame *f = rt ? frame_of(rt) : NULL;

    return f != NULL && f->cancelling;
}

void weft__sched_close(struct weft_runtime *rt)
{
    spin_lock(&rt->inject.lock);
    atomic_store_explicit(&rt->closed, true, memory_order_release);
    spin_unlock(&rt->inject.lock);
    weft__sched_unpark_all(rt);
    pthread_mutex_lock(&rt->run_lock);
    pthread_cond_broadcast(&rt->run_cond);
    pthread_mutex_unlock(&rt->run_lock);
}

/* ---- Shutdown ------------------------------------------------------------------------- */
/* Cancel the next claimed task (its drop runs here); false when none is
 * left. Only the cancelling thread calls it, so rt->claimed needs no lock;
 * a drop may call it again, nested (through weft__sched_help()). */
static bool cancel_next(struct weft_runtime *rt)
{
    struct weft__task *t = rt->claimed;

    if (t == NULL)
        return false;
    rt->claimed = t->next;
    weft__task_cancel_claimed(t);     /* the drop runs here, outside any lock */
    return true;
}

bool weft__sched_shutting_here(const struct weft_runtime *rt)
{
    return frame_of(rt) != NULL;
}

int weft__sched_help(struct weft_runtime *rt)
{
    if (!cancelling_on_this_thread(rt))
        return 0;
    return cancel_next(rt) ? 1 : -EDEADLK;
}

int weft__runtime_help(weft_runtime *rt)
{
    return weft__sched_help(rt);
}

bool weft__runtime_cancelling(weft_runtime *rt)
{
    return cancelling_on_this_thread(rt);
}

bool weft__sched_cancelling(void *s)
{
    return shutting_here != NULL && cancelling_on_this_thread(shard_rt(s));
}

static void drop_chain(struct weft__task *t)
{
    while (t) {
        struct weft__task *next = t->next;

        weft__task_drop_entry(t);     /* the queue entry's; may free the cell */
        t = next;
    }
}

static void shutdown_held(struct weft_runtime *rt)
{
    struct weft__task *t, *claimed = NULL;
    struct shutting_frame frame;
    void *pool;

    pthread_mutex_lock(&rt->run_lock);
    if (rt->shutting) {               /* done, or another thread is at it */
        while (!rt->shutdown_done)
            pthread_cond_wait(&rt->run_cond, &rt->run_lock);
        pthread_mutex_unlock(&rt->run_lock);
        return;
    }
    rt->shutting = true;
    rt->shut = true;
    pthread_mutex_unlock(&rt->run_lock);
    frame.rt = rt;
    frame.up = shutting_here;
    frame.cancelling = false;
    shutting_here = &frame;
    weft__sched_close(rt);            /* spawns refused, workers leave */
    for (unsigned i = 0; i < rt->nthreads; i++)
        pthread_join(rt->workers[i].thread, NULL);
    rt->nthreads = 0;
    pthread_mutex_lock(&rt->run_lock);   /* a current-thread driver leaves too */
    while (rt->driving)
        pthread_cond_wait(&rt->run_cond, &rt->run_lock);
    pthread_mutex_unlock(&rt->run_lock);

    /* No thread runs tasks now. Drop every queue entry's reference... */
    spin_lock(&rt->inject.lock);
    t = rt->inject.head;
    rt->inject.head = rt->inject.tail = NULL;
    atomic_store_explicit(&rt->inject.len, 0, memory_order_relaxed);
    spin_unlock(&rt->inject.lock);
    drop_chain(t);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = &rt->workers[i];

        t = atomic_exchange_explicit(&w->lifo, NULL, memory_order_acquire);
        if (t)
            weft__task_drop_entry(t);
        while ((t = lq_pop(&w->q)) != NULL)
            weft__task_drop_entry(t);    /* a yield entry ends its poll first */
        drop_chain(weft__sched_spill_drain(w));
    }
    /* ...then cancel every unfinished task. Claimed tasks are RUNNING, so no
     * waker can queue them: their queue link is free to chain them here. */
    for (unsigned i = 0; i < rt->nshards; i++) {
        struct shard *sh = &rt->shards[i];
        struct weft__list *n;

        spin_lock(&sh->lock);
        for (n = sh->cells.next; n != &sh->cells; n = n->next) {
            t = weft__container_of(n, struct weft__task, owned);
            if (weft__task_shutdown_claim(t)) {
                t->next = claimed;
                claimed = t;
            }
        }
        spin_unlock(&sh->lock);
    }
    rt->claimed = claimed;
    frame.cancelling = true;          /* a drop may free another runtime */
    while (cancel_next(rt))
        ;
    frame.cancelling = false;
    /* nobody polls this runtime's reactor any more: shut it now, not when
     * the last join handle or waker lets the runtime's memory go, so that
     * socket futures elsewhere see -ESHUTDOWN instead of waiting for ever
     * (and the kick hook is gone before any worker lock is destroyed) */
    weft__io_shut(&rt->io);
    /* cells freed on workers wait on their shards' dead stacks: no worker
     * will drain them now */
    for (unsigned i = 0; i < rt->nworkers; i++)
        weft__sched_drain_dead(rt, &rt->shards[i]);
    /* The default blocking pool last: the drops above only detached from
     * its jobs. `shutting` keeps a new one from being made, so this look
     * sees the only one there will be (relaxed: it was stored under
     * run_lock, which this thread took after the store). Stopping it waits
     * for no job: one still running finishes on its own, detached. */
    pthread_mutex_lock(&rt->run_lock);
    pool = atomic_load_explicit(&rt->blocking.obj, memory_order_relaxed);
    pthread_mutex_unlock(&rt->run_lock);
    if (pool)
        rt->blocking.stop(pool);
    shutting_here = frame.up;
    pthread_mutex_lock(&rt->run_lock);
    rt->shutdown_done = true;
    pthread_cond_broadcast(&rt->run_cond);
    pthread_mutex_unlock(&rt->run_lock);
}

/* A shutdown holds the runtime's memory while inside (as a run does, see
 * weft_runtime_run()): a second shutdown waiting for another thread's reads
 * shutdown_done and the run lock after the first one's caller may have
 * freed the runtime (weft_runtime_free() is that caller). Whoever lets the
 * last hold go destroys it. */
WEFT_API int weft_runtime_shutdown(weft_runtime *rt)
{
    if (rt == NULL || local_worker(rt) || frame_of(rt) != NULL)
        return -EINVAL;
    /* relaxed: the caller's own hold keeps the count above 0 */
    atomic_fetch_add_explicit(&rt->holds, 1, memory_order_relaxed);
    shutdown_held(rt);
    /* acq_rel: as every other release of a hold */
    if (atomic_fetch_sub_explicit(&rt->holds, 1, memory_order_acq_rel) == 1)
        weft__sched_destroy(rt);
    return 0;
}

WEFT_API void weft_runtime_free(weft_runtime *rt)
{
    if (rt == NULL || weft_runtime_shutdown(rt) < 0)
        return;
    /* acq_rel: pairs with the shards' releases */
    if (atomic_fetch_sub_explicit(&rt->holds, 1, memory_order_acq_rel) == 1)
        weft__sched_destroy(rt);
}

