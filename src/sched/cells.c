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

/* ---- Blocks ---------------------------------------------------------------
 * A burst of spawns on a worker, while every earlier cell is still alive
 * (the SEED workload: 100,000 sleeping tasks), finds the caches and the
 * pool empty and would malloc every cell. Measured there: glibc grows a
 * thread's arena a page at a time, one mprotect() per 21 cells of 192
 * bytes (a fifth of the spawn loop's samples), besides malloc's own ~70
 * instructions per cell. So a worker carves such cells from blocks it
 * allocates through the hook: BLOCK_FIRST cells for a class's first block,
 * doubling up to BLOCK_MAX bytes (one malloc per 340 cells of 192 bytes).
 *
 * A carved cell (sched_mem = 1 in its trailer) is never freed on its own:
 * it is recycled through the caches and the pool like any cell, and its
 * block goes back to the allocator with the runtime
 * (weft__sched_cells_destroy()). Once a class has a block, the pool keeps
 * every free cell of that class, past POOL_DEPTH (a chain may mix carved
 * and malloc'd cells; sorting it on each put read every cell's second
 * line). So the memory of a burst stays with the runtime for the next one,
 * at most BLOCK_TOTAL_MAX of blocks per worker (plus the malloc'd cells
 * of those classes, as many as were ever alive at once); past the cap, the
 * worker mallocs cells one by one.
 *
 * Huge blocks. Past that, what a burst costs is mostly the kernel's: the
 * 100,000 cells of SEED are 19 MB of fresh memory, ~4,760 page faults,
 * 8-10 ms of a ~18 ms spawn loop on the development VM (a bare loop that
 * touches 20 MB of fresh heap at a 192-byte stride: 7.7-32.8 ms, median
 * 17 ms, over 20 runs; on 2 MiB-aligned memory with MADV_HUGEPAGE: 1.8-11.3
 * ms, median 2.6 ms, 10 faults). So once a worker's class holds
 * HUGE_AFTER bytes of blocks (a burst of ~1,400 cells of 192 bytes), its
 * next blocks are BLOCK_HUGE bytes from weft__huge_alloc(): 2 MiB-aligned,
 * on transparent huge pages where the kernel allows them (THP "always" or
 * "madvise"). That is only while the allocation hook is libc's own: a
 * user's hook gets every block, as before (weft/core.h promises it every
 * allocation). A huge block counts against BLOCK_TOTAL_MAX like any other
 * and is unmapped with the runtime. The price: a worker's class may hold
 * up to 2 MiB resident that no cell has used yet (one huge page is
 * faulted whole), only after a burst of HUGE_AFTER bytes; and where the
 * kernel compacts memory on such a fault (THP defrag "madvise", the
 * default) and free memory is fragmented, that fault may wait for the
 * compaction. On the development VM (22 GB free) no fault did
 * (compact_stall stayed 0 in /proc/vmstat).
 *
 * Under AddressSanitizer
 * there are no blocks: every cell is its own allocation, so that a use
 * after free of a cell is still reported. */
#define BLOCK_FIRST 8
#define BLOCK_MAX ((size_t)64 << 10)          /* under glibc's mmap threshold */
#define BLOCK_TOTAL_MAX ((size_t)32 << 20)
#define BLOCK_HUGE WEFT__HUGE_SIZE
#define HUGE_AFTER ((size_t)256 << 10)
/* A huge block's first cell starts a cache line after its header (the
 * block is 2 MiB-aligned), so that with a stride of whole lines (SEED's
 * 192) every cell's 64-byte task header is one line, not two, and a
 * sleep's timer entry lies in one line: a timer driver firing ~12,000
 * timers a millisecond touches each cell's lines once, on a miss each. */
#define HUGE_LEAD ((size_t)64)

#if defined(__SANITIZE_ADDRESS__)
#define CELL_BLOCKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CELL_BLOCKS 0
#endif
#endif
#ifndef CELL_BLOCKS
#define CELL_BLOCKS 1
#endif

struct cell_block {
    struct cell_block *next;          /* the worker's list */
    size_t bytes;                     /* | BLOCK_IS_HUGE: weft__huge_alloc()'s */
};                                    /* 16 bytes: the cells after it stay aligned */

/* a block's size is a multiple of 16 (its header and the cell strides) */
#define BLOCK_IS_HUGE ((size_t)1)

_Static_assert(sizeof(struct cell_block) <= HUGE_LEAD, "a huge block's header fits its lead");
_Static_assert(sizeof(struct cell_block) % WEFT__MALLOC_ALIGN == 0,
               "cells carved after a block header keep malloc's alignment");

static void cell_set_mem(struct weft__task *t, uint8_t carved)
{
    weft__task_dbg(t)->sched_mem = carved;
}

static bool cell_carved(struct weft__task *t)
{
    return weft__task_dbg(t)->sched_mem != 0;
}

/* Owner: a fresh cell of class c from the worker's block. Returns it, or
 * NULL with *use_malloc set (no blocks here, or the cap is reached: the
 * caller mallocs the one cell), or NULL alone (the block's allocation
 * failed: -ENOMEM, as the cell's own would have, so that a test failing
 * the k-th allocation sees the spawn fail). */
static struct weft__task *carve(struct worker *w, unsigned c, bool *use_malloc)
{
    size_t stride = (size_t)(c + 1) * CELL_STEP;
    struct weft__task *t;

    if (!CELL_BLOCKS) {
        *use_malloc = true;
        return NULL;
    }
    if (w->carve_left[c] == 0) {
        unsigned n = w->block_cells[c] ? w->block_cells[c] : BLOCK_FIRST;
        size_t bytes = sizeof(struct cell_block) + n * stride;
        size_t most = (BLOCK_MAX - sizeof(struct cell_block)) / stride;
        struct cell_block *b = NULL;
        bool huge = false;

        if (w->class_bytes[c] >= HUGE_AFTER && w->block_bytes + BLOCK_HUGE <= BLOCK_TOTAL_MAX &&
            (b = weft__huge_alloc(BLOCK_HUGE)) != NULL) {
            huge = true;               /* NULL: a user's hook, or no mapping */
            bytes = BLOCK_HUGE;
            n = (unsigned)((bytes - HUGE_LEAD) / stride);
        } else {
            if (w->block_bytes + bytes > BLOCK_TOTAL_MAX) {
                *use_malloc = true;
                return NULL;
            }
            b = weft__malloc(bytes);
            if (b == NULL)
                return NULL;
        }
        if (w->blocks_made[c] == 0) {   /* the pool keeps this class now */
            spin_lock(&w->rt->pool.lock);
            w->rt->pool.carved[c] = true;
            spin_unlock(&w->rt->pool.lock);
        }
        w->blocks_made[c]++;
        b->next = w->blocks;
        b->bytes = bytes | (huge ? BLOCK_IS_HUGE : 0);
        w->blocks = b;
        w->block_bytes += bytes;
        w->class_bytes[c] += bytes;
        w->carve[c] = huge ? (char *)b + HUGE_LEAD : (char *)(b + 1);
        w->carve_left[c] = n;
        if (!huge) {
            n *= 2;
            w->block_cells[c] = n < most ? n : most > 0 ? (unsigned)most : 1;
        }
    }
    t = (struct weft__task *)(void *)w->carve[c];
    w->carve[c] += stride;
    w->carve_left[c]--;
    cell_set_mem(t, 1);
    return t;
}

/* Free a chain of free cells (NULL-terminated), skipping carved ones. */
static void free_chain(struct weft__task *t)
{
    while (t) {
        struct weft__task *next = t->next;

        if (!cell_carved(t))
            weft__free(t);
        t = next;
    }
}

/* The runtime is being freed: every cell is free (in a cache or the pool),
 * none is used. The malloc'd ones first, then the blocks under the rest. */
void weft__sched_cells_destroy(struct weft_runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = &rt->workers[i];

        for (unsigned c = 0; c < CACHE_CLASSES; c++) {
            free_chain(w->cache[c]);
            free_chain(w->spare[c]);
            w->cache[c] = w->spare[c] = NULL;
        }
    }
    for (unsigned c = 0; c < CACHE_CLASSES; c++) {
        free_chain(rt->pool.head[c]);
        rt->pool.head[c] = NULL;
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = &rt->workers[i];

        while (w->blocks) {
            struct cell_block *b = w->blocks;

            w->blocks = b->next;
            if (b->bytes & BLOCK_IS_HUGE)
                weft__huge_free(b, b->bytes & ~BLOCK_IS_HUGE);
            else
                weft__free(b);
        }
    }
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
    struct weft__task *keep = NULL, *keep_last = NULL;
    unsigned kept = 0;

    spin_lock(&p->lock);
    /* A class with carved cells keeps every cell (a chain can mix both
     * kinds, and sorting it meant reading every cell's second cache line:
     * W1 spent a third more CPU time when the pool overflowed on each put) */
    if (p->count[c] + n <= POOL_DEPTH || p->carved[c]) {
        last->next = p->head[c];
        p->head[c] = first;
        p->count[c] += n;
        first = NULL;
    }
    spin_unlock(&p->lock);
    /* the pool is full: back to malloc, but for carved cells (kept past
     * the depth: their blocks go back with the runtime); a block made
     * since the look above may have put some in this chain */
    while (first) {
        struct weft__task *next = first == last ? NULL : first->next;

        if (cell_carved(first)) {
            if (keep == NULL)
                keep_last = first;
            first->next = keep;
            keep = first;
            kept++;
        } else {
            weft__free(first);
        }
        first = next;
    }
    if (keep) {
        spin_lock(&p->lock);
        keep_last->next = p->head[c];
        p->head[c] = keep;
        p->count[c] += kept;
        spin_unlock(&p->lock);
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
    bool use_malloc = false;

    if (align > WEFT__MALLOC_ALIGN)     /* not cached: rare, and sized apart */
        return weft__aligned_alloc(size, align);
    if (c >= CACHE_CLASSES)
        return weft__malloc(size);
    if (w) {
        struct shard *own = &rt->shards[w->index];

        if (w->cache[c] == NULL && w->spare[c]) {   /* the spare chain */
            w->cache[c] = w->spare[c];
            w->cache_tail[c] = w->spare_tail[c];
            w->cached[c] = CACHE_DEPTH / 2;
            w->spare[c] = NULL;
        }
        /* recycle what the others freed (relaxed: a first look, as in
         * weft__sched_drain_dead(), here without a call) */
        if (w->cache[c] == NULL && atomic_load_explicit(&own->dead, memory_order_relaxed))
            weft__sched_drain_dead(rt, own);
        if (w->cache[c] == NULL) {    /* refill from the pool */
            w->cache[c] = pool_take(rt, c, CACHE_DEPTH / 8, &n, &w->cache_tail[c]);
            w->cached[c] = w->cache[c] ? n : 0;
        }
        if ((t = w->cache[c]) != NULL) {
            w->cache[c] = t->next;
            w->cached[c]--;
            return t;
        }
        t = carve(w, c, &use_malloc);   /* a burst: cells from a block */
        if (t != NULL || !use_malloc)
            return t;
    } else if ((t = pool_take(rt, c, 1, &n, &tail)) != NULL) {
        return t;
    }
    /* round cells up to their class so any cell of a class fits */
    t = weft__malloc((size_t)(c + 1) * CELL_STEP - CELL_HEAD);
    if (t)
        cell_set_mem(t, 0);
    return t;
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

