/* SPDX-License-Identifier: MIT */
/* Task cells: allocation through the worker's cache and the runtime's
 * shared pool, and a cell's release (unlinking it from the books). */
#include "sched/internal.h"
#include "util/alloc.h"
#include "util/list.h"

/* Cells are rounded up to a class, so that any cell of a class fits any
 * task of that class. Class c holds c * 16 - 8 bytes: with glibc's 8-byte
 * chunk header that is a whole 16-byte step, so no byte of the heap chunk
 * is padding (64-byte classes put a sleeping task's 184-byte cell in a
 * 192-byte class, a 208-byte heap chunk instead of 192). */
#define CELL_STEP 16
#define CELL_HEAD 8

static unsigned cache_class(size_t size)
{
    /* 1..CACHE_CLASSES: cacheable */
    return (unsigned)((size + CELL_HEAD + CELL_STEP - 1) / CELL_STEP);
}

/* Cells live in three places on their way back to the allocator: the
 * worker's own cache (no lock), the runtime's shared pool (a spinlock, moved
 * in batches of half a cache), then free(). The pool is what lets cells freed
 * on workers be reused by spawns from other threads: without it, a thread
 * spawning into the runtime mallocs every cell while the workers free them,
 * and the two sides fight over the allocator's arena lock (W2: a third of
 * the time went to that lock's futex). */
static void pool_put(struct weft_runtime *rt, unsigned c, struct weft__task *first,
                     struct weft__task *last, unsigned n)
{
    struct cell_pool *p = &rt->pool;

    spin_lock(&p->lock);
    if (p->count[c] + n <= POOL_DEPTH) {
        last->next = p->head[c];
        p->head[c] = first;
        p->count[c] += n;
        first = NULL;
    }
    spin_unlock(&p->lock);
    while (first) {                   /* the pool is full: back to malloc */
        struct weft__task *next = first == last ? NULL : first->next;

        weft__free(first);
        first = next;
    }
}

/* Take up to `max` cells of class c; returns the chain, *n its length,
 * *tail its last cell. */
static struct weft__task *pool_take(struct weft_runtime *rt, unsigned c, unsigned max,
                                    unsigned *n, struct weft__task **tail)
{
    struct cell_pool *p = &rt->pool;
    struct weft__task *first, *t;
    unsigned k = 0;

    /* relaxed peek: an empty pool is the common case for a fresh runtime */
    if (atomic_load_explicit(&p->nonempty, memory_order_relaxed) == 0)
        return NULL;
    spin_lock(&p->lock);
    first = t = p->head[c];
    if (t) {
        for (k = 1; k < max && t->next; k++)
            t = t->next;
        p->head[c] = t->next;
        p->count[c] -= k;
        t->next = NULL;
    }
    spin_unlock(&p->lock);
    *n = k;
    *tail = t;
    return first;
}

void weft__sched_cell_free(struct weft_runtime *rt, struct weft__task *t)
{
    size_t align = weft__task_cell_align(t->type);
    unsigned c = cache_class(weft__task_cell_size(t->type)) - 1;
    struct worker *w = local_worker(rt);

    if (align > WEFT__MALLOC_ALIGN) {
        weft__aligned_free(t, align);
        return;
    }
    if (c >= CACHE_CLASSES) {
        weft__free(t);
        return;
    }
    atomic_store_explicit(&rt->pool.nonempty, 1, memory_order_relaxed);
    if (w == NULL) {
        pool_put(rt, c, t, t, 1);
        return;
    }
    if (w->cached[c] == CACHE_DEPTH / 2) {
        /* full: it becomes the spare, and the older spare goes to the pool
         * in one batch (no walk: both ends of each chain are known; walking
         * 128 cells to split a list cost a cache miss each) */
        if (w->spare[c])
            pool_put(rt, c, w->spare[c], w->spare_tail[c], CACHE_DEPTH / 2);
        w->spare[c] = w->cache[c];
        w->spare_tail[c] = w->cache_tail[c];
        w->cache[c] = NULL;
        w->cached[c] = 0;
    }
    if (w->cache[c] == NULL)
        w->cache_tail[c] = t;
    t->next = w->cache[c];
    w->cache[c] = t;
    w->cached[c]++;
}

void *weft__sched_cell_alloc(struct weft_runtime *rt, const weft_future_type *type)
{
    size_t size = weft__task_cell_size(type), align = weft__task_cell_align(type);
    unsigned c = cache_class(size) - 1, n;
    struct worker *w = local_worker(rt);
    struct weft__task *t, *tail;

    if (align > WEFT__MALLOC_ALIGN)     /* not cached: rare, and sized apart */
        return weft__aligned_alloc(size, align);
    if (c >= CACHE_CLASSES)
        return weft__malloc(size);
    if (w) {
        if (w->cache[c] == NULL && w->spare[c]) {   /* the spare chain */
            w->cache[c] = w->spare[c];
            w->cache_tail[c] = w->spare_tail[c];
            w->cached[c] = CACHE_DEPTH / 2;
            w->spare[c] = NULL;
        }
        if (w->cache[c] == NULL)      /* recycle what the others freed */
            weft__sched_drain_dead(rt, &rt->shards[w->index]);
        if (w->cache[c] == NULL) {    /* refill from the pool */
            w->cache[c] = pool_take(rt, c, CACHE_DEPTH / 8, &n, &w->cache_tail[c]);
            w->cached[c] = w->cache[c] ? n : 0;
        }
        if ((t = w->cache[c]) != NULL) {
            w->cache[c] = t->next;
            w->cached[c]--;
            return t;
        }
    } else if ((t = pool_take(rt, c, 1, &n, &tail)) != NULL) {
        return t;
    }
    /* round cells up to their class so any cell of a class fits */
    return weft__malloc((size_t)(c + 1) * CELL_STEP - CELL_HEAD);
}

/* A cell's last reference is gone.
 *   on a worker of this runtime that did not spawn it: push it on its
 *     shard's dead stack (one CAS, no lock); the shard's owner unlinks and
 *     recycles it (weft__sched_drain_dead()).
 *     Workers and the current-thread driver only exist before shutdown, which
 *     drains every stack once they are gone, so nothing is left behind;
 *   anywhere else (its own worker, foreign threads, shutdown, a worker of
 *     another runtime): unlink it under the shard's lock and free it here.
 * Before the stacks, a worker freeing a cell another worker spawned took
 * that worker's shard lock: the two fought over it on every task (W1 with 2
 * workers spent 40% of spawn on that lock). */
void weft__sched_release(void *s, struct weft__task *t)
{
    struct shard *sh = s;
    struct weft_runtime *rt = sh->rt;
    struct weft__task *head;
    bool emptied;

    struct worker *w = local_worker(rt);

    /* another worker's cell: hand it back without touching its lock */
    if (w && sh < &rt->shards[rt->nworkers] && sh != &rt->shards[w->index]) {
        head = atomic_load_explicit(&sh->dead, memory_order_relaxed);
        do {
            t->next = head;
        } while (!atomic_compare_exchange_weak_explicit(&sh->dead, &head, t,
                                                        memory_order_release, /* pairs: drain */
                                                        memory_order_relaxed));
        return;
    }
    spin_lock(&sh->lock);
    weft__list_remove(&t->owned);
    emptied = --sh->count == 0;
    spin_unlock(&sh->lock);
    weft__sched_cell_free(rt, t);
    /* acq_rel: every shard's last release happens before the destroy */
    if (emptied && atomic_fetch_sub_explicit(&rt->holds, 1, memory_order_acq_rel) == 1)
        weft__sched_destroy(rt);
}

/* Unlink and recycle the cells on shard sh's dead stack. Called by the
 * shard's owner, or by shutdown once no worker runs. */
void weft__sched_drain_dead(struct weft_runtime *rt, struct shard *sh)
{
    struct weft__task *t, *next;
    bool emptied;

    if (atomic_load_explicit(&sh->dead, memory_order_relaxed) == NULL)
        return;
    /* acquire: pairs with the pushes' release (the cells' last uses) */
    t = atomic_exchange_explicit(&sh->dead, NULL, memory_order_acquire);
    if (t == NULL)
        return;
    spin_lock(&sh->lock);
    for (next = t; next; next = next->next) {
        weft__list_remove(&next->owned);
        sh->count--;
    }
    emptied = sh->count == 0;
    spin_unlock(&sh->lock);
    for (; t; t = next) {
        next = t->next;
        weft__sched_cell_free(rt, t);
    }
    if (emptied && atomic_fetch_sub_explicit(&rt->holds, 1, memory_order_acq_rel) == 1)
        weft__sched_destroy(rt);
}

