/* SPDX-License-Identifier: MIT */
/* Slab stacks: the degraded mode for many coroutines (docs/coro.md,
 * "Stacks at scale").
 *
 * A guarded stack is its own mapping with a PROT_NONE page below it: two
 * entries in the process's memory map, whose length Linux caps at
 * vm.max_map_count (65,530 by default). Past a limit (stack.c decides
 * when), stacks are carved from slabs instead: one mapping holds up to
 * SLAB_SLOTS stacks of one size, with no guard page but a canary, a
 * 128-byte pattern just below each stack, which the worker checks every
 * time the coroutine switches out (stack.c and coro.c report and abort).
 *
 * Layout of a slab of n slots of S = cls + page bytes each:
 *
 *   base                                                      base+map_size
 *   | header page      | slot 0            | slot 1            | ...
 *   | hdr ...  canary0 | stack 0 ... canary1 | stack 1 ... canary2 |
 *                      ^lo0          ^hi0    ^lo1          ^hi1
 *
 * Stack i is [lo_i, hi_i) with lo_i = base + page + i*S and hi_i = lo_i +
 * S - CANARY_BYTES (so at least cls usable bytes); its canary sits in
 * [lo_i - CANARY_BYTES, lo_i), the last bytes of the slot (or header page)
 * below. An overflow of stack i runs through its canary before reaching
 * the top of stack i-1. The canary shares its page with the top of stack
 * i-1, which that stack's coroutine has committed anyway: a parked
 * coroutine with a shallow stack costs one page, not two.
 *
 * Invariants (all under `lock`): a slab is on `avail` iff some bit of its
 * free_mask is set and not all of them are (an entirely free slab is
 * unmapped at once); `live` counts its stacks handed out (cached ones
 * included: they are the caches' to give back). A stack's memory is its
 * owner's from get to put; the canary zone is written by the slot's owner
 * at get and only read afterwards. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coro/coro.h"

#define SLAB_SLOTS 64
#define SLAB_TARGET ((size_t)4 << 20)       /* slab bytes to aim for */
#define CANARY_BYTES 128
#define CANARY_WORDS (CANARY_BYTES / sizeof(uintptr_t))
#define CANARY_SEED ((uintptr_t)0x5eed0fc0a1a2ca9aULL)

struct weft__co_slab {
    struct weft__co_slab *prev, *next;      /* on avail; ->lock */
    char *base;
    size_t map_size;
    size_t cls;                             /* the size class (page-rounded request) */
    size_t slot;                            /* S */
    unsigned n;                             /* slots */
    uint64_t free_mask;                     /* ->lock; bit i: slot i free */
    unsigned live;                          /* ->lock */
};

static struct {
    pthread_mutex_t lock;
    struct weft__co_slab *avail;            /* ->lock */
} slabs = { PTHREAD_MUTEX_INITIALIZER, NULL };

/* relaxed: statistics for tests and benchmarks */
static _Atomic long slab_stacks;
static _Atomic long slab_count;

static uint64_t all_free(unsigned n)
{
    return n >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1;
}

static void avail_link(struct weft__co_slab *sl)
{
    sl->prev = NULL;
    sl->next = slabs.avail;
    if (slabs.avail)
        slabs.avail->prev = sl;
    slabs.avail = sl;
}

static void avail_unlink(struct weft__co_slab *sl)
{
    if (sl->prev)
        sl->prev->next = sl->next;
    else
        slabs.avail = sl->next;
    if (sl->next)
        sl->next->prev = sl->prev;
    sl->prev = sl->next = NULL;
}

/* the pattern depends on the stack's address: a stray copy of another
 * stack's canary does not pass */
static uintptr_t canary_word(const char *lo)
{
    return CANARY_SEED ^ ((uintptr_t)lo * (uintptr_t)0x9e3779b97f4a7c15ULL);
}

static void canary_write(char *lo)
{
    uintptr_t *w = (uintptr_t *)(void *)(lo - CANARY_BYTES);
    uintptr_t v = canary_word(lo);

    for (size_t i = 0; i < CANARY_WORDS; i++)
        w[i] = v;
}

bool weft__co_canary_ok(const struct weft__co_stack *s)
{
    const uintptr_t *w = (const uintptr_t *)(const void *)(s->lo - CANARY_BYTES);
    uintptr_t v = canary_word(s->lo), diff = 0;

    /* two cache lines, no early exit: the compiler vectorises it */
    for (size_t i = 0; i < CANARY_WORDS; i++)
        diff |= w[i] ^ v;
    return diff == 0;
}

const void *weft__co_canary_addr(const struct weft__co_stack *s)
{
    return s->lo - CANARY_BYTES;
}

static void take(struct weft__co_slab *sl, struct weft__co_stack *s)
{
    unsigned i = (unsigned)__builtin_ctzll(sl->free_mask);

    sl->free_mask &= ~((uint64_t)1 << i);
    sl->live++;
    s->lo = sl->base + (sl->slot - sl->cls) + (size_t)i * sl->slot;
    s->hi = s->lo + sl->slot - CANARY_BYTES;
    s->map = s->lo;            /* non-NULL: a stack; map_size 0: no guard */
    s->map_size = 0;
    s->cls = sl->cls;
    s->slab = sl;
}

int weft__co_slab_get(struct weft__co_stack *s, size_t cls, size_t ps)
{
    struct weft__co_slab *sl;
    size_t slot = cls + ps, n, map_size;
    char *p;

    pthread_mutex_lock(&slabs.lock);
    for (sl = slabs.avail; sl; sl = sl->next) {
        if (sl->cls == cls) {
            take(sl, s);
            if (sl->free_mask == 0)
                avail_unlink(sl);
            break;
        }
    }
    pthread_mutex_unlock(&slabs.lock);
    if (sl == NULL) {
        n = SLAB_TARGET / slot;
        if (n < 1)
            n = 1;
        if (n > SLAB_SLOTS)
            n = SLAB_SLOTS;
        map_size = ps + n * slot;
        p = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (p == MAP_FAILED)
            return -ENOMEM;
        sl = (struct weft__co_slab *)(void *)p;
        memset(sl, 0, sizeof(*sl));
        sl->base = p;
        sl->map_size = map_size;
        sl->cls = cls;
        sl->slot = slot;
        sl->n = (unsigned)n;
        sl->free_mask = all_free(sl->n);
        atomic_fetch_add_explicit(&slab_count, 1, memory_order_relaxed);
        pthread_mutex_lock(&slabs.lock);
        take(sl, s);
        if (sl->free_mask != 0)
            avail_link(sl);
        pthread_mutex_unlock(&slabs.lock);
    }
    canary_write(s->lo);
    atomic_fetch_add_explicit(&slab_stacks, 1, memory_order_relaxed);
    return 0;
}

void weft__co_slab_put(struct weft__co_stack *s)
{
    struct weft__co_slab *sl = s->slab;
    unsigned i = (unsigned)((size_t)(s->lo - (sl->base + (sl->slot - sl->cls))) / sl->slot);
    bool unmap = false;

    pthread_mutex_lock(&slabs.lock);
    if (sl->free_mask == 0 && sl->n > 1)
        avail_link(sl);                      /* was full */
    sl->free_mask |= (uint64_t)1 << i;
    sl->live--;
    if (sl->live == 0) {
        if (sl->n > 1)
            avail_unlink(sl);
        unmap = true;
    }
    pthread_mutex_unlock(&slabs.lock);
    atomic_fetch_sub_explicit(&slab_stacks, 1, memory_order_relaxed);
    if (unmap) {
        atomic_fetch_sub_explicit(&slab_count, 1, memory_order_relaxed);
        munmap(sl->base, sl->map_size);
    }
    s->map = NULL;
    s->slab = NULL;
}

long weft__co_stacks_slab(void)
{
    return atomic_load_explicit(&slab_stacks, memory_order_relaxed);
}

long weft__co_slabs_mapped(void)
{
    return atomic_load_explicit(&slab_count, memory_order_relaxed);
}
