// SPDX-License-Identifier: MIT
/* Bursts of spawns on a worker while every earlier task is still alive: the
 * caches and the pool are empty, and the cells come from blocks the worker
 * carves them from (src/sched/cells.c, "Blocks"). What must hold: every
 * task runs once, the allocation hook sees far fewer allocations than
 * tasks (one per block; not under AddressSanitizer, where every cell is its
 * own allocation), a second burst reuses the first one's cells, a failed
 * block allocation is a spawn's -ENOMEM, cells freed off the runtime past
 * the pool's depth are neither lost nor freed twice, carved and allocated
 * cells of one class mix safely, and everything goes back to the
 * allocator with the runtime (the harness's leak check). */
#define _GNU_SOURCE
#include "sched_test.h"

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

#define MAX_HOLDERS 20000

/* ---- holder: pending until the gate opens ------------------------------------ */
static weft_waker wakers[MAX_HOLDERS];
static atomic_long registered, finished, spawn_errors;
static atomic_bool gate;

typedef struct holder {
    int i;
    bool parked;
    unsigned char pad[40];            /* a class of its own among the tests' */
} holder;

static weft_poll holder_poll(holder *h, weft_context *cx, void *out)
{
    (void)out;
    if (!atomic_load(&gate)) {
        if (!h->parked) {
            h->parked = true;
            wakers[h->i] = weft_waker_clone(weft_context_waker(cx));
            atomic_fetch_add(&registered, 1);   /* publishes the waker */
        }
        return WEFT_PENDING;
    }
    atomic_fetch_add(&finished, 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID_STATIC(holder, holder_poll, NULL);

static void reset(void)
{
    atomic_store(&registered, 0);
    atomic_store(&finished, 0);
    atomic_store(&spawn_errors, 0);
    atomic_store(&gate, false);
}

static void open_gate(long n)
{
    atomic_store(&gate, true);
    for (long i = 0; i < n; i++) {
        weft_waker_wake(&wakers[i]);          /* consumes the clone */
        wakers[i] = WEFT_WAKER_EMPTY;
    }
}

/* called by the burster while every holder of its burst is alive, or NULL */
static void (*mid_burst)(void);

/* ---- burster: spawns n holders, waits until all are parked, notes the
 * allocations the burst made, opens the gate, waits until all are done. */
typedef struct burster {
    weft_async co;
    long n;
    weft_yield y;
} burster;

static weft_poll burster_poll(burster *b, weft_context *cx, void *out)
{
    size_t *allocs = out;

    WEFT_BEGIN(&b->co);
    harness_fail_alloc_at(0);                 /* count from here */
    for (long i = 0; i < b->n; i++)
        if (weft_spawn_detached(weft_runtime_current(), &holder_future,
                                &(holder){ .i = (int)i }) < 0)
            atomic_fetch_add(&spawn_errors, 1);
    while (atomic_load(&registered) < b->n - atomic_load(&spawn_errors))
        WEFT_YIELD(&b->co, &b->y, cx);        /* every holder alive at once */
    *allocs = harness_allocs();
    if (mid_burst)
        mid_burst();                          /* every holder alive */
    open_gate(atomic_load(&registered));
    while (atomic_load(&finished) < atomic_load(&registered))
        WEFT_YIELD(&b->co, &b->y, cx);
    WEFT_END(&b->co);
}

WEFT_DEFINE_FUTURE_STATIC(burster, burster_poll, NULL, size_t);

static void burst_twice(weft_runtime *rt)
{
    long n = (long)harness_scale(MAX_HOLDERS);
    size_t first = 0, second = 0;

    reset();
    ASSERT_OK(weft_block_on(rt, &burster_future, &(burster){ .n = n }, &first));
    ASSERT_EQ(0, atomic_load(&spawn_errors));
    ASSERT_EQ(n, atomic_load(&finished));
    reset();
    ASSERT_OK(weft_block_on(rt, &burster_future, &(burster){ .n = n }, &second));
    ASSERT_EQ(0, atomic_load(&spawn_errors));
    ASSERT_EQ(n, atomic_load(&finished));
    /* the first burst's cells wait in the caches and the pool: the second
     * takes them back rather than allocating */
    if (getenv("BURST_PRINT")) printf("n %ld first %zu second %zu\n", n, first, second);
    ASSERT_LE(first, second);
    if (CELL_BLOCKS && n >= 1000) {
        ASSERT_LE(n / 8, first);              /* blocks, not one per cell */
        ASSERT_LE(n / 100 + 1, second);       /* reused, past the pool's depth */
    }
    weft_runtime_free(rt);
}

TEST(burst_on_worker_carves_and_reuses_multi_thread)
{
    weft_runtime *rt;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    burst_twice(rt);
}

TEST(burst_on_worker_carves_and_reuses_current_thread)
{
    weft_runtime *rt;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    burst_twice(rt);
}

/* ---- a failed block allocation --------------------------------------------------
 * The first spawn of a fresh class on a worker allocates a block: failing
 * that allocation fails the spawn with -ENOMEM, and the next spawn works. */
typedef struct odd {
    unsigned char pad[300];           /* a class no other task here uses */
} odd;

static atomic_long odd_runs;

static weft_poll odd_poll(odd *o, weft_context *cx, void *out)
{
    (void)o, (void)cx, (void)out;
    atomic_fetch_add(&odd_runs, 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID_STATIC(odd, odd_poll, NULL);

typedef struct failer {
    int first, second;
} failer;

static weft_poll failer_poll(failer *f, weft_context *cx, void *out)
{
    weft_runtime *rt = weft_runtime_current();
    failer *res = out;

    (void)cx;
    harness_fail_alloc_at(1);
    res->first = weft_spawn_detached(rt, &odd_future, &(odd){ { 0 } });
    harness_fail_alloc_at(0);
    res->second = weft_spawn_detached(rt, &odd_future, &(odd){ { 0 } });
    (void)f;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_STATIC(failer, failer_poll, NULL, failer);

static void fail_first_block(weft_runtime *rt)
{
    failer res = { 1, 1 };

    atomic_store(&odd_runs, 0);
    ASSERT_OK(weft_block_on(rt, &failer_future, &(failer){ 0, 0 }, &res));
    ASSERT_EQ(-ENOMEM, res.first);
    ASSERT_EQ(0, res.second);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(1, atomic_load(&odd_runs));
    weft_runtime_free(rt);
}

TEST(burst_block_allocation_failure_is_enomem_multi_thread)
{
    weft_runtime *rt;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    fail_first_block(rt);
}

TEST(burst_block_allocation_failure_is_enomem_current_thread)
{
    weft_runtime *rt;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    fail_first_block(rt);
}

/* ---- cells freed off the runtime, past the pool's depth -------------------------
 * A worker spawns more joinable tasks than the shared pool keeps (4,096 a
 * class); the plain thread waits for and drops every join handle, so each
 * cell's last reference goes away off the runtime and the cell goes to the
 * pool, which keeps them (their blocks are the runtime's). Then the plain
 * thread spawns into the same class, taking carved cells from the pool and
 * allocating the rest; the runtime frees both kinds, each the right way. */
#define MAX_JOINS 6000
static weft_join *joins[MAX_JOINS];

typedef struct joiner {
    long n;
} joiner;

static weft_poll joiner_poll(joiner *j, weft_context *cx, void *out)
{
    weft_runtime *rt = weft_runtime_current();

    (void)cx, (void)out;
    for (long i = 0; i < j->n; i++)
        if (weft_spawn(rt, &odd_future, &(odd){ { 0 } }, &joins[i]) < 0) {
            joins[i] = NULL;
            atomic_fetch_add(&spawn_errors, 1);
        }
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID_STATIC(joiner, joiner_poll, NULL);

TEST(burst_cells_freed_off_runtime_past_pool_depth)
{
    long n = (long)harness_scale(MAX_JOINS);
    weft_runtime *rt;

    atomic_store(&odd_runs, 0);
    atomic_store(&spawn_errors, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    for (int round = 0; round < 2; round++) {
        ASSERT_OK(weft_block_on(rt, &joiner_future, &(joiner){ n }, NULL));
        ASSERT_EQ(0, atomic_load(&spawn_errors));
        for (long i = 0; i < n; i++) {
            ASSERT_OK(weft_join_wait(joins[i], NULL));
            weft_join_drop(joins[i]);         /* the last reference, off the runtime */
        }
    }
    /* and from this thread, into the same class: cells from the pool
     * (carved) or, past those, from the allocator; freed on the workers,
     * both kinds mixed in the caches and the pool until the free */
    for (int round = 0; round < 2; round++)
        for (long i = 0; i < 2 * n; i++)
            ASSERT_OK(weft_spawn_detached(rt, &odd_future, &(odd){ { 0 } }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(6 * n, atomic_load(&odd_runs));
    weft_runtime_free(rt);
}

/* ---- huge blocks (src/sched/cells.c, "Huge blocks") ------------------------------
 * With libc's own allocator (no hook), a burst past a few hundred KiB of
 * cells takes its next blocks from 2 MiB-aligned mappings marked
 * MADV_HUGEPAGE ("hg" in /proc/self/smaps' VmFlags), and the runtime's free
 * unmaps them. With a user's hook every block goes through the hook: no
 * such mapping appears. */
static int count_hg_vmas(void)
{
    char line[512];
    int n = 0;
    FILE *f = fopen("/proc/self/smaps", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmFlags:", 8) == 0 && strstr(line, " hg"))
            n++;
    fclose(f);
    return n;
}

static int hg_mid_burst;

static void note_hg_vmas(void)
{
    hg_mid_burst = count_hg_vmas();
}

static int hg_before(void)
{
    int before;

    if (!CELL_BLOCKS)
        harness_skip("no cell blocks under AddressSanitizer");
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0)
        harness_skip("this kernel has no transparent huge pages");
    if ((before = count_hg_vmas()) < 0)
        harness_skip("no /proc/self/smaps");
    return before;
}

static void burst_once(weft_runtime *rt, long n)
{
    size_t allocs = 0;

    reset();
    hg_mid_burst = -1;
    mid_burst = note_hg_vmas;
    ASSERT_OK(weft_block_on(rt, &burster_future, &(burster){ .n = n }, &allocs));
    mid_burst = NULL;
    ASSERT_EQ(0, atomic_load(&spawn_errors));
    ASSERT_EQ(n, atomic_load(&finished));
}

TEST(burst_default_allocator_maps_huge_blocks_and_unmaps_them)
{
    int before = hg_before();
    weft_runtime *rt;

    weft_set_allocator(NULL);                 /* libc's own: huge blocks allowed */
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    burst_once(rt, MAX_HOLDERS);              /* ~3 MiB of cells: past HUGE_AFTER */
    ASSERT_LE(hg_mid_burst - 1, before);      /* at least one huge block mapped */
    burst_once(rt, MAX_HOLDERS);              /* reuses the first burst's cells */
    weft_runtime_free(rt);
    ASSERT_EQ(before, count_hg_vmas());       /* unmapped with the runtime */
}

TEST(burst_user_allocator_gets_every_block)
{
    int before = hg_before();                 /* the harness's counting hook is on */
    weft_runtime *rt;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    burst_once(rt, MAX_HOLDERS);
    ASSERT_EQ(before, hg_mid_burst);          /* no mapping past the hook */
    weft_runtime_free(rt);
}
