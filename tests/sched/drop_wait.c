/* SPDX-License-Identifier: MIT */
/* A future's drop that waits for a sibling task while the runtime shuts
 * down. weft_runtime_free() cancels the remaining tasks on the calling
 * thread; a drop run there may block in weft_join_wait() on a sibling of the
 * same runtime, whether that sibling's turn to be cancelled comes before or
 * after its own: the wait sees the sibling cancelled (-ECANCELED) instead of
 * deadlocking the shutdown. Siblings spawned before and after the waiter, on
 * both flavours, a few rounds each (the cancellation order follows where
 * the cells landed, not the spawn order); and two drops that wait for each
 * other (a cycle: -EDEADLK for one, not a hang). A watchdog turns a
 * deadlock into a failure. */
#define _GNU_SOURCE
#include "sched_test.h"

#define NSIB 8
#define ROUNDS 4

static atomic_int sib_drops, sib_polls, sup_drops, sup_polls;
static int results[NSIB];               /* written by the supervisor's drop */
static weft_join *sib_joins[NSIB];      /* handed to the supervisor */

/* A sibling: pending for ever (keeps its waker, never woken). */
typedef struct sib {
    bool polled;
    weft_waker w;
} sib;

static weft_poll sib_poll(sib *s, weft_context *cx, void *out)
{
    (void)out;
    if (!s->polled) {
        s->polled = true;
        s->w = weft_waker_clone(weft_context_waker(cx));
        atomic_fetch_add(&sib_polls, 1);
    }
    return WEFT_PENDING;
}

static void sib_drop(sib *s)
{
    weft_waker_drop(&s->w);
    atomic_fetch_add(&sib_drops, 1);
}

WEFT_DEFINE_FUTURE(sib, sib_poll, sib_drop, int);

/* The supervisor: pending for ever; its drop waits for every sibling. */
typedef struct sup {
    bool polled;
} sup;

static weft_poll sup_poll(sup *s, weft_context *cx, void *out)
{
    (void)cx;
    (void)out;
    if (!s->polled) {
        s->polled = true;
        atomic_fetch_add(&sup_polls, 1);
    }
    return WEFT_PENDING;
}

static void sup_drop(sup *s)
{
    (void)s;
    for (int i = 0; i < NSIB; i++) {
        results[i] = weft_join_wait(sib_joins[i], NULL);
        weft_join_drop(sib_joins[i]);
    }
    atomic_fetch_add(&sup_drops, 1);
}

WEFT_DEFINE_FUTURE(sup, sup_poll, sup_drop, void);

static void *free_runtime(void *rt)
{
    weft_runtime_free(rt);
    return NULL;
}

static void spawn_sibs(weft_runtime *rt)
{
    for (int i = 0; i < NSIB; i++)
        ASSERT_OK(weft_spawn(rt, &sib_future, &(sib){ 0 }, &sib_joins[i]));
}

static void run_round(weft_flavor flavor, bool sibs_first)
{
    weft_runtime *rt;
    pthread_t th;

    atomic_store(&sib_drops, 0);
    atomic_store(&sib_polls, 0);
    atomic_store(&sup_drops, 0);
    atomic_store(&sup_polls, 0);
    for (int i = 0; i < NSIB; i++)
        results[i] = 1;
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){
                                        .flavor = flavor,
                                        .workers = flavor == WEFT_MULTI_THREAD ? 2 : 0 }));
    if (sibs_first)
        spawn_sibs(rt);
    ASSERT_OK(weft_spawn_detached(rt, &sup_future, &(sup){ 0 }));
    if (!sibs_first)
        spawn_sibs(rt);
    if (flavor == WEFT_MULTI_THREAD) {   /* all pending, none queued */
        WAIT_AT_LEAST(&sib_polls, NSIB, WATCHDOG_MS, "siblings polled");
        WAIT_AT_LEAST(&sup_polls, 1, WATCHDOG_MS, "supervisor polled");
    }
    START_THREAD(&th, free_runtime, rt);
    JOIN_THREAD_WITHIN(th, WATCHDOG_MS,
                       "weft_runtime_free (a drop waits in weft_join_wait for a sibling)");
    ASSERT_EQ(1, atomic_load(&sup_drops));
    ASSERT_EQ(NSIB, atomic_load(&sib_drops));
    for (int i = 0; i < NSIB; i++)
        ASSERT_EQ(-ECANCELED, results[i]);
}

TEST(drop_joins_siblings_spawned_before_multi_thread)
{
    for (int r = 0; r < ROUNDS; r++)
        run_round(WEFT_MULTI_THREAD, true);
}

TEST(drop_joins_siblings_spawned_after_multi_thread)
{
    for (int r = 0; r < ROUNDS; r++)
        run_round(WEFT_MULTI_THREAD, false);
}

TEST(drop_joins_siblings_spawned_before_current_thread)
{
    for (int r = 0; r < ROUNDS; r++)
        run_round(WEFT_CURRENT_THREAD, true);
}

TEST(drop_joins_siblings_spawned_after_current_thread)
{
    for (int r = 0; r < ROUNDS; r++)
        run_round(WEFT_CURRENT_THREAD, false);
}

/* Two tasks whose drops wait for each other: the one dropped first helps
 * the other along, whose wait then finds its partner's drop further up the
 * same stack: -EDEADLK for that one, -ECANCELED for the first. No hang. */
static weft_join *pair_joins[2];
static int pair_results[2];

typedef struct pair {
    int me;
} pair;

static weft_poll pair_poll(pair *p, weft_context *cx, void *out)
{
    (void)p;
    (void)cx;
    (void)out;
    return WEFT_PENDING;
}

static void pair_drop(pair *p)
{
    pair_results[p->me] = weft_join_wait(pair_joins[1 - p->me], NULL);
}

WEFT_DEFINE_FUTURE(pair, pair_poll, pair_drop, void);

TEST(drops_waiting_for_each_other_get_edeadlk_not_a_hang)
{
    weft_runtime *rt;
    pthread_t th;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    pair_results[0] = pair_results[1] = 1;
    ASSERT_OK(weft_spawn(rt, &pair_future, &(pair){ 0 }, &pair_joins[0]));
    ASSERT_OK(weft_spawn(rt, &pair_future, &(pair){ 1 }, &pair_joins[1]));
    START_THREAD(&th, free_runtime, rt);
    JOIN_THREAD_WITHIN(th, WATCHDOG_MS, "weft_runtime_free (two drops wait for each other)");
    /* the first dropped waits for the second, which is cancelled inside it */
    ASSERT((pair_results[0] == -ECANCELED && pair_results[1] == -EDEADLK) ||
           (pair_results[0] == -EDEADLK && pair_results[1] == -ECANCELED));
    ASSERT_EQ(-ECANCELED, weft_join_wait(pair_joins[0], NULL));
    ASSERT_EQ(-ECANCELED, weft_join_wait(pair_joins[1], NULL));
    weft_join_drop(pair_joins[0]);
    weft_join_drop(pair_joins[1]);
}
