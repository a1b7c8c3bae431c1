/* SPDX-License-Identifier: MIT */
/* Fault injection: fail allocation 1, 2, ... of an operation until it
 * succeeds; every failure must report -ENOMEM, leave the out-parameter
 * untouched and leak nothing. Plus the allocator hook itself. */
#define _GNU_SOURCE
#include <string.h>

#include "task_test.h"

#define MAX_STEPS 64                 /* far more allocations than any op makes */

static weft_runtime *const RT_SENTINEL = (weft_runtime *)(uintptr_t)0x1;
static weft_join *const JOIN_SENTINEL = (weft_join *)(uintptr_t)0x1;

/* Returns the number of failures seen before the first success. */
static size_t runtime_new_until_ok(const weft_runtime_options *opt)
{
    size_t k;

    for (k = 1; k <= MAX_STEPS; k++) {
        long live = harness_live();
        weft_runtime *rt = RT_SENTINEL;
        int err;

        harness_fail_alloc_at(k);
        err = weft_runtime_new(&rt, opt);
        harness_fail_alloc_at(0);
        if (err == 0) {
            ASSERT(rt != RT_SENTINEL && rt != NULL);
            weft_runtime_free(rt);
            ASSERT_EQ(live, harness_live());
            return k - 1;
        }
        ASSERT_EQ(-ENOMEM, err);
        ASSERT(rt == RT_SENTINEL);
        ASSERT_EQ(live, harness_live());         /* nothing leaked */
    }
    harness_fail(__FILE__, __LINE__, "weft_runtime_new never succeeded");
}

TEST(enomem_runtime_new_multi_thread)
{
    size_t fails = runtime_new_until_ok(&(weft_runtime_options){ .workers = 3 });

    ASSERT(fails >= 1);                          /* it does allocate */
}

TEST(enomem_runtime_new_default_options)
{
    ASSERT(runtime_new_until_ok(NULL) >= 1);
}

TEST(enomem_runtime_new_current_thread)
{
    size_t fails = runtime_new_until_ok(&(weft_runtime_options){
        .flavor = WEFT_CURRENT_THREAD });

    ASSERT(fails >= 1);
}

/* ---- spawn ---------------------------------------------------------------- */
static atomic_int af_polls, af_drops;

typedef struct af {
    int v;
    unsigned char pad[200];
} af;

static weft_poll af_poll(af *f, weft_context *cx, void *out)
{
    (void)cx;
    atomic_fetch_add(&af_polls, 1);
    *(int *)out = f->v * 2;
    return WEFT_READY;
}

static void af_drop(af *f)
{
    (void)f;
    atomic_fetch_add(&af_drops, 1);
}

WEFT_DEFINE_FUTURE(af, af_poll, af_drop, int);

typedef struct af_big {
    _Alignas(512) int v;             /* over-aligned: a different allocation path */
} af_big;

static weft_poll af_big_poll(af_big *f, weft_context *cx, void *out)
{
    (void)cx;
    atomic_fetch_add(&af_polls, 1);
    *(int *)out = f->v * 2;
    return WEFT_READY;
}

static void af_big_drop(af_big *f)
{
    (void)f;
    atomic_fetch_add(&af_drops, 1);
}

WEFT_DEFINE_FUTURE(af_big, af_big_poll, af_big_drop, int);

enum spawn_kind { SK_SPAWN, SK_DETACHED, SK_BLOCK_ON };

static void spawn_until_ok(weft_flavor flavor, enum spawn_kind kind,
                           const weft_future_type *ty, const void *init, int want)
{
    weft_runtime *rt = tt_runtime(flavor, flavor == WEFT_MULTI_THREAD ? 2 : 0);
    size_t k;

    atomic_store(&af_polls, 0);
    atomic_store(&af_drops, 0);
    for (k = 1; k <= MAX_STEPS; k++) {
        long live = harness_live();
        weft_join *j = JOIN_SENTINEL;
        int err, out = -1;

        harness_fail_alloc_at(k);
        switch (kind) {
        case SK_SPAWN:
            err = weft_spawn(rt, ty, init, &j);
            break;
        case SK_DETACHED:
            err = weft_spawn_detached(rt, ty, init);
            break;
        default:
            err = weft_block_on(rt, ty, init, &out);
            break;
        }
        harness_fail_alloc_at(0);
        if (err == 0) {
            if (kind == SK_SPAWN) {
                ASSERT(j != JOIN_SENTINEL);
                if (flavor == WEFT_CURRENT_THREAD)
                    ASSERT_OK(weft_runtime_run(rt));
                ASSERT_OK(weft_join_wait(j, &out));
                weft_join_drop(j);
            } else if (kind == SK_DETACHED) {
                ASSERT_OK(weft_runtime_run(rt));
                out = want;
            }
            ASSERT_EQ(want, out);
            ASSERT_EQ(1, atomic_load(&af_polls));
            ASSERT_EQ(1, atomic_load(&af_drops));
            break;
        }
        ASSERT_EQ(-ENOMEM, err);
        ASSERT(j == JOIN_SENTINEL);
        ASSERT_EQ(-1, out);
        ASSERT_EQ(live, harness_live());         /* nothing leaked */
        ASSERT_EQ(0, weft_runtime_active_tasks(rt));
        /* On failure the future was never moved into weft: not dropped. */
        ASSERT_EQ(0, atomic_load(&af_drops));
        ASSERT_EQ(0, atomic_load(&af_polls));
    }
    ASSERT(k >= 2 && k <= MAX_STEPS);            /* failed at least once, then ok */
    ASSERT_OK(weft_runtime_run(rt));
    weft_runtime_free(rt);
}

TEST(enomem_spawn)
{
    spawn_until_ok(WEFT_MULTI_THREAD, SK_SPAWN, &af_future, &(af){ .v = 21 }, 42);
    spawn_until_ok(WEFT_CURRENT_THREAD, SK_SPAWN, &af_future, &(af){ .v = 21 }, 42);
}

TEST(enomem_spawn_detached)
{
    spawn_until_ok(WEFT_MULTI_THREAD, SK_DETACHED, &af_future, &(af){ .v = 21 }, 42);
    spawn_until_ok(WEFT_CURRENT_THREAD, SK_DETACHED, &af_future, &(af){ .v = 21 }, 42);
}

TEST(enomem_block_on)
{
    spawn_until_ok(WEFT_MULTI_THREAD, SK_BLOCK_ON, &af_future, &(af){ .v = 21 }, 42);
    spawn_until_ok(WEFT_CURRENT_THREAD, SK_BLOCK_ON, &af_future, &(af){ .v = 21 }, 42);
}

TEST(enomem_spawn_over_aligned)
{
    spawn_until_ok(WEFT_MULTI_THREAD, SK_SPAWN, &af_big_future, &(af_big){ .v = 4 }, 8);
    spawn_until_ok(WEFT_CURRENT_THREAD, SK_BLOCK_ON, &af_big_future, &(af_big){ .v = 4 }, 8);
}

/* A spawn that fails for lack of memory leaves the runtime usable and the
 * tasks already spawned untouched. */
TEST(enomem_spawn_among_live_tasks)
{
    weft_runtime *rt = tt_runtime(WEFT_CURRENT_THREAD, 0);
    weft_join *j[4];
    long live;
    int out;

    atomic_store(&af_polls, 0);
    atomic_store(&af_drops, 0);
    ASSERT_OK(weft_spawn(rt, &af_future, &(af){ .v = 1 }, &j[0]));
    ASSERT_OK(weft_spawn(rt, &af_future, &(af){ .v = 2 }, &j[1]));
    live = harness_live();
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_spawn(rt, &af_future, &(af){ .v = 3 }, &j[2]));
    harness_fail_alloc_at(0);
    ASSERT_EQ(live, harness_live());
    ASSERT_EQ(2, weft_runtime_active_tasks(rt));
    ASSERT_OK(weft_spawn(rt, &af_future, &(af){ .v = 4 }, &j[3]));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(3, atomic_load(&af_polls));
    ASSERT_EQ(3, atomic_load(&af_drops));
    for (int i = 0; i < 4; i++) {
        if (i == 2)
            continue;
        ASSERT_OK(weft_join_try(j[i], &out));
        ASSERT_EQ((i + 1) * 2, out);
        weft_join_drop(j[i]);
    }
    weft_runtime_free(rt);
}

/* ---- The allocator hook ---------------------------------------------------- */
static void *bad_malloc(void *ctx, size_t size)
{
    (void)ctx;
    (void)size;
    abort();                         /* must never be installed */
}

static void bad_free(void *ctx, void *p)
{
    (void)ctx;
    (void)p;
    abort();
}

TEST(set_allocator_rejects_missing_functions)
{
    size_t before;
    weft_runtime *rt;

    ASSERT_EQ(-EINVAL, weft_set_allocator(&(weft_allocator){ NULL, bad_free, NULL }));
    ASSERT_EQ(-EINVAL, weft_set_allocator(&(weft_allocator){ bad_malloc, NULL, NULL }));
    ASSERT_EQ(-EINVAL, weft_set_allocator(&(weft_allocator){ NULL, NULL, NULL }));
    /* The harness's counting allocator is still the one in use. */
    harness_fail_alloc_at(0);
    before = harness_allocs();
    rt = tt_runtime(WEFT_CURRENT_THREAD, 0);
    ASSERT(harness_allocs() > before);
    ASSERT(harness_live() > 0);
    weft_runtime_free(rt);
    ASSERT_EQ(0, harness_live());
}

struct my_heap {
    atomic_long live;
    atomic_long total;
    atomic_int bad_ctx;
};

static struct my_heap my_heap;

static void *my_malloc(void *ctx, size_t size)
{
    if (ctx != &my_heap)
        atomic_fetch_add(&my_heap.bad_ctx, 1);
    atomic_fetch_add(&my_heap.live, 1);
    atomic_fetch_add(&my_heap.total, 1);
    return malloc(size);
}

static void my_free(void *ctx, void *p)
{
    if (ctx != &my_heap)
        atomic_fetch_add(&my_heap.bad_ctx, 1);
    if (p) {
        atomic_fetch_sub(&my_heap.live, 1);
        free(p);
    }
}

/* A user allocator gets every allocation, with its ctx, and every free. */
TEST(set_allocator_custom_hook)
{
    weft_runtime *rt;
    weft_join *j;
    int out = 0;

    ASSERT_EQ(0, harness_live());                /* no weft object exists */
    ASSERT_OK(weft_set_allocator(&(weft_allocator){ my_malloc, my_free, &my_heap }));
    rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    ASSERT_OK(weft_spawn(rt, &af_future, &(af){ .v = 5 }, &j));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(10, out);
    ASSERT(atomic_load(&my_heap.live) >= 2);     /* the runtime and the cell */
    weft_join_drop(j);
    weft_runtime_free(rt);
    ASSERT_EQ(0, atomic_load(&my_heap.live));
    ASSERT(atomic_load(&my_heap.total) >= 2);
    ASSERT_EQ(0, atomic_load(&my_heap.bad_ctx));
    ASSERT_EQ(0, harness_live());                /* the harness saw none of it */
    ASSERT_OK(weft_set_allocator(NULL));         /* back to libc */
}
