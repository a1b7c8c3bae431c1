/* SPDX-License-Identifier: MIT */
/* A supervisor task whose drop frees a group with live children, while the
 * runtime shuts down. weft_runtime_free() cancels the remaining tasks on the
 * calling thread; weft_group_free() in a drop run there waits until every
 * child's drop has run, whether the children's turn to be cancelled comes
 * before or after the supervisor's: it must return 0 instead of deadlocking
 * the shutdown. Supervisor spawned before and after its children, on both
 * flavours, a few rounds each. A watchdog turns a deadlock into a failure. */
#define _GNU_SOURCE
#include "../sched/sched_test.h"

#include "weft/group.h"

#define NKIDS 8
#define ROUNDS 4

static atomic_int kid_drops, kid_polls, sup_drops, sup_polls;
static int free_result;                 /* written by the supervisor's drop */

/* A child: pending for ever (keeps its waker, never woken). */
typedef struct kid {
    bool polled;
    weft_waker w;
} kid;

static weft_poll kid_poll(kid *k, weft_context *cx, void *out)
{
    (void)out;
    if (!k->polled) {
        k->polled = true;
        k->w = weft_waker_clone(weft_context_waker(cx));
        atomic_fetch_add(&kid_polls, 1);
    }
    return WEFT_PENDING;
}

static void kid_drop(kid *k)
{
    weft_waker_drop(&k->w);
    atomic_fetch_add(&kid_drops, 1);
}

WEFT_DEFINE_FUTURE(kid, kid_poll, kid_drop, int);

/* The supervisor owns the group: pending for ever; its drop frees it. */
typedef struct super {
    weft_group *g;
    bool polled;
} super;

static weft_poll super_poll(super *s, weft_context *cx, void *out)
{
    (void)cx;
    (void)out;
    if (!s->polled) {
        s->polled = true;
        atomic_fetch_add(&sup_polls, 1);
    }
    return WEFT_PENDING;
}

static void super_drop(super *s)
{
    free_result = weft_group_free(s->g);
    atomic_fetch_add(&sup_drops, 1);
}

WEFT_DEFINE_FUTURE(super, super_poll, super_drop, void);

static void *free_runtime(void *rt)
{
    weft_runtime_free(rt);
    return NULL;
}

static void spawn_kids(weft_group *g)
{
    for (int i = 0; i < NKIDS; i++)
        ASSERT_OK(weft_group_spawn(g, &kid_future, &(kid){ 0 }));
}

static void run_round(weft_flavor flavor, bool kids_first)
{
    weft_runtime *rt;
    weft_group *g;
    pthread_t th;

    atomic_store(&kid_drops, 0);
    atomic_store(&kid_polls, 0);
    atomic_store(&sup_drops, 0);
    atomic_store(&sup_polls, 0);
    free_result = 1;
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){
                                        .flavor = flavor,
                                        .workers = flavor == WEFT_MULTI_THREAD ? 2 : 0 }));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    if (kids_first)
        spawn_kids(g);
    ASSERT_OK(weft_spawn_detached(rt, &super_future, &(super){ .g = g }));
    if (!kids_first)
        spawn_kids(g);
    if (flavor == WEFT_MULTI_THREAD) {   /* all pending, none queued */
        WAIT_AT_LEAST(&kid_polls, NKIDS, WATCHDOG_MS, "children polled");
        WAIT_AT_LEAST(&sup_polls, 1, WATCHDOG_MS, "supervisor polled");
    }
    START_THREAD(&th, free_runtime, rt);
    JOIN_THREAD_WITHIN(th, WATCHDOG_MS,
                       "weft_runtime_free (a drop waits in weft_group_free for live children)");
    ASSERT_EQ(1, atomic_load(&sup_drops));
    ASSERT_EQ(NKIDS, atomic_load(&kid_drops));
    ASSERT_EQ(0, free_result);
}

TEST(drop_frees_group_children_spawned_before_multi_thread)
{
    for (int r = 0; r < ROUNDS; r++)
        run_round(WEFT_MULTI_THREAD, true);
}

TEST(drop_frees_group_children_spawned_after_multi_thread)
{
    for (int r = 0; r < ROUNDS; r++)
        run_round(WEFT_MULTI_THREAD, false);
}

TEST(drop_frees_group_children_spawned_before_current_thread)
{
    for (int r = 0; r < ROUNDS; r++)
        run_round(WEFT_CURRENT_THREAD, true);
}

TEST(drop_frees_group_children_spawned_after_current_thread)
{
    for (int r = 0; r < ROUNDS; r++)
        run_round(WEFT_CURRENT_THREAD, false);
}
