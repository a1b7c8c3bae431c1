/* SPDX-License-Identifier: MIT */
/* Shutdown: close the queues, let the workers leave, drop what is queued,
 * cancel every unfinished task. */
#include <pthread.h>

#include "sched/internal.h"
#include "util/list.h"

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
static void drop_chain(struct weft__task *t)
{
    while (t) {
        struct weft__task *next = t->next;

        weft__task_ref_dec(t);        /* the queue entry's; may free the cell */
        t = next;
    }
}

WEFT_API int weft_runtime_shutdown(weft_runtime *rt)
{
    struct weft__task *t, *claimed = NULL;

    if (rt == NULL || local_worker(rt))
        return -EINVAL;
    pthread_mutex_lock(&rt->run_lock);
    if (rt->shutting) {               /* done, or another thread is at it */
        while (!rt->shutdown_done)
            pthread_cond_wait(&rt->run_cond, &rt->run_lock);
        pthread_mutex_unlock(&rt->run_lock);
        return 0;
    }
    rt->shutting = true;
    rt->shut = true;
    pthread_mutex_unlock(&rt->run_lock);
    weft__sched_close(rt);                /* spawns refused, workers leave */
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
            weft__task_ref_dec(t);
        while ((t = lq_pop(&w->q)) != NULL)
            weft__task_ref_dec(t);
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
    while (claimed) {
        t = claimed;
        claimed = t->next;
        weft__task_cancel_claimed(t); /* the drop runs here, outside any lock */
    }
    /* cells freed on workers wait on their shards' dead stacks: no worker
     * will drain them now */
    for (unsigned i = 0; i < rt->nworkers; i++)
        weft__sched_drain_dead(rt, &rt->shards[i]);
    pthread_mutex_lock(&rt->run_lock);
    rt->shutdown_done = true;
    pthread_cond_broadcast(&rt->run_cond);
    pthread_mutex_unlock(&rt->run_lock);
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

