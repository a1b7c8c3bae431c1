/* SPDX-License-Identifier: MIT */
/* The graceful drain of a group (weft_group_drain): children that finish in
 * time leave the group usable and give 0; children still running at the
 * deadline are cancelled (each drop once) and give -ETIMEDOUT, not before
 * the deadline and with every drop run by the time it is READY; both
 * flavours; a NULL group; dropped before its deadline it cancels nothing. */
#include "../sync/sync_test.h"

#include "weft/group.h"

/* A child: sleeps `ms` (UINT64_MAX: for ever; 0: not at all, only yields
 * once), then counts a completion; its drop counts a drop. */
static atomic_int completed, dropped;

typedef struct napper {
    weft_async co;
    uint64_t ms;
    weft_sleep s;
    weft_yield y;
} napper;

static weft_poll napper_poll(napper *n, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&n->co);
    if (n->ms == 0) {
        WEFT_YIELD(&n->co, &n->y, cx);
    } else {
        weft_sleep_init(&n->s, n->ms);
        WEFT_AWAIT(&n->co, weft_sleep_poll(&n->s, cx));
    }
    atomic_fetch_add(&completed, 1);
    WEFT_END(&n->co);
}

static void napper_drop(napper *n)
{
    weft_sleep_drop(&n->s);
    atomic_fetch_add(&dropped, 1);
}

WEFT_DEFINE_FUTURE_VOID(napper, napper_poll, napper_drop);

/* Drain as a root task: its output and how long it took. */
typedef struct drainer {
    weft_group *g;
    uint64_t ms;
    weft_group_drain d;
    bool init;
} drainer;

static weft_poll drainer_poll(drainer *f, weft_context *cx, int *out)
{
    if (!f->init) {
        weft_group_drain_init(&f->d, f->g, f->ms);
        f->init = true;
    }
    return weft_group_drain_poll(&f->d, cx, out);
}

static void drainer_drop(drainer *f)
{
    if (f->init)
        weft_group_drain_drop(&f->d);
}

WEFT_DEFINE_FUTURE(drainer, drainer_poll, drainer_drop, int);

static int drain(weft_runtime *rt, weft_group *g, uint64_t ms, uint64_t *took_ms)
{
    uint64_t t0 = weft_now_ms();
    int out = -12345;

    ASSERT_OK(weft_block_on(rt, &drainer_future, &(drainer){ .g = g, .ms = ms }, &out));
    *took_ms = weft_now_ms() - t0;
    return out;
}

static weft_runtime *runtime(bool current)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = current ? WEFT_CURRENT_THREAD : WEFT_MULTI_THREAD,
                                 .workers = current ? 0 : 2 };

    ASSERT_OK(weft_runtime_new(&rt, &opt));
    return rt;
}

static void drains_in_time(bool current)
{
    weft_runtime *rt = runtime(current);
    weft_group *g;
    uint64_t took;

    atomic_store(&completed, 0);
    atomic_store(&dropped, 0);
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    for (int i = 0; i < 8; i++)
        ASSERT_OK(weft_group_spawn(g, &napper_future, &(napper){ .ms = 10u + (unsigned)i }));
    ASSERT_EQ(0, drain(rt, g, 10000, &took));
    ASSERT_LE(5000, took);                   /* not the deadline */
    ASSERT_EQ(8, atomic_load(&completed));
    ASSERT_EQ(8, atomic_load(&dropped));
    ASSERT(!weft_group_is_cancelled(g));     /* still usable */
    ASSERT_OK(weft_group_spawn(g, &napper_future, &(napper){ .ms = 1 }));
    ASSERT_EQ(0, drain(rt, g, 10000, &took));
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
}

TEST(drain_children_done_in_time_multi_thread)
{
    drains_in_time(false);
}

TEST(drain_children_done_in_time_current_thread)
{
    drains_in_time(true);
}

static void cancels_at_deadline(bool current)
{
    weft_runtime *rt = runtime(current);
    weft_group *g;
    uint64_t took;

    atomic_store(&completed, 0);
    atomic_store(&dropped, 0);
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    /* no timer: a timer due together with the deadline (a machine stalled
     * for 100 ms) could be woken after the drain and be cancelled */
    for (int i = 0; i < 4; i++)
        ASSERT_OK(weft_group_spawn(g, &napper_future, &(napper){ .ms = 0 }));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(weft_group_spawn(g, &napper_future, &(napper){ .ms = UINT64_MAX }));
    ASSERT_EQ(-ETIMEDOUT, drain(rt, g, 100, &took));
    ASSERT(took >= 100);                     /* they had their time */
    ASSERT_LE(5000, took);
    ASSERT_EQ(4, atomic_load(&completed));   /* the quick ones finished */
    ASSERT_EQ(8, atomic_load(&dropped));     /* the rest dropped, before READY */
    ASSERT_EQ(0, weft_group_live(g));
    ASSERT(weft_group_is_cancelled(g));
    ASSERT_EQ(-ECANCELED, weft_group_spawn(g, &napper_future, &(napper){ .ms = 1 }));
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
}

TEST(drain_cancels_the_rest_at_deadline_multi_thread)
{
    cancels_at_deadline(false);
}

TEST(drain_cancels_the_rest_at_deadline_current_thread)
{
    cancels_at_deadline(true);
}

/* Dropped before its deadline (a timeout around it fires first): the
 * children run on. A NULL group: -EINVAL. */
typedef struct short_drain {
    weft_group *g;
    weft_group_drain d;
    weft_timeout t;
    bool init;
} short_drain;

static weft_poll short_drain_poll(short_drain *f, weft_context *cx, int *out)
{
    int err = 0, r = 0;

    if (!f->init) {
        weft_group_drain_init(&f->d, f->g, 10000);
        weft_timeout_init(&f->t, &weft_group_drain_future, &f->d, 20);
        f->init = true;
    }
    if (weft_timeout_poll(&f->t, cx, &err, &r) == WEFT_PENDING)
        return WEFT_PENDING;
    *out = err ? err : r;
    return WEFT_READY;
}

static void short_drain_drop(short_drain *f)
{
    if (f->init)
        weft_timeout_drop(&f->t);
}

WEFT_DEFINE_FUTURE(short_drain, short_drain_poll, short_drain_drop, int);

TEST(drain_dropped_early_cancels_nothing)
{
    weft_runtime *rt = runtime(false);
    weft_group *g;
    weft_group_drain d;
    uint64_t took;
    int out = 0;

    atomic_store(&dropped, 0);
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_group_spawn(g, &napper_future, &(napper){ .ms = UINT64_MAX }));
    ASSERT_OK(weft_block_on(rt, &short_drain_future, &(short_drain){ .g = g }, &out));
    ASSERT_EQ(-ETIMEDOUT, out);
    ASSERT(!weft_group_is_cancelled(g));
    ASSERT_EQ(1, weft_group_live(g));
    ASSERT_EQ(0, atomic_load(&dropped));
    ASSERT_EQ(-ETIMEDOUT, drain(rt, g, 10, &took));
    ASSERT_EQ(1, atomic_load(&dropped));
    ASSERT_OK(weft_group_free(g));

    weft_group_drain_init(&d, NULL, 10);
    ASSERT_EQ(WEFT_READY, weft_group_drain_poll(&d, NULL, &out));
    ASSERT_EQ(-EINVAL, out);
    weft_group_drain_drop(&d);
    weft_group_drain_drop(&d);
    weft_runtime_free(rt);
}
