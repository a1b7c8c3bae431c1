/* SPDX-License-Identifier: MIT */
/* Audit 7 of weft/group.h: groups whose runtime goes away under them. A
 * plain thread blocked in weft_group_free() of a current-thread runtime no
 * thread drives, released by the runtime's shutdown from another thread;
 * weft_group_free() racing weft_runtime_shutdown(); spawns refused after a
 * shutdown of a group nobody cancelled (-ESHUTDOWN, the future not
 * dropped); the group's wait after a shutdown; a token clone used after the
 * group and the runtime are gone. */
#define _GNU_SOURCE
#include "../sync/sync_test.h"
#include <string.h>
#include <unistd.h>

#include "weft/group.h"

/* Pending until its token is cancelled (never, here); counts drops. */
typedef struct parked {
    atomic_int *drops;
    atomic_int *polls;
} parked;

static weft_poll parked_poll(parked *p, weft_context *cx, void *out)
{
    int r = 0;

    (void)cx;
    if (p->polls)
        atomic_fetch_add(p->polls, 1);
    (void)out;
    (void)r;
    return WEFT_PENDING;
}

static void parked_drop(parked *p)
{
    atomic_fetch_add(p->drops, 1);
}
WEFT_DEFINE_FUTURE_STATIC(parked, parked_poll, parked_drop, int);

static weft_runtime *rt_of(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = flavor,
                                                             .workers = workers }));
    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .mask = WEFT_LINTS_OFF }));
    return rt;
}

typedef struct freer {
    weft_group *g;
    int result;
    atomic_int started, done;
    atomic_int *go;
} freer;

static void *freer_main(void *arg)
{
    freer *f = arg;

    atomic_store(&f->started, 1);
    if (f->go)
        while (!atomic_load(f->go))
            ;
    f->result = weft_group_free(f->g);
    atomic_store(&f->done, 1);
    return NULL;
}

/* group.h: "On a WEFT_CURRENT_THREAD runtime the children's drops need a
 * thread driving the runtime (or its shutdown)": a plain thread blocked in
 * weft_group_free() with nobody driving is released by a shutdown made on
 * another thread, each child dropped once. */
TEST(group_free_waiting_on_an_undriven_runtime_is_released_by_its_shutdown)
{
    weft_runtime *rt = rt_of(WEFT_CURRENT_THREAD, 0);
    weft_group *g;
    atomic_int drops = 0;
    freer f = { 0 };
    pthread_t th;

    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    for (int i = 0; i < 16; i++)
        ASSERT_OK(weft_group_spawn(g, &parked_future, &(parked){ .drops = &drops }));
    f.g = g;
    ASSERT_EQ(0, pthread_create(&th, NULL, freer_main, &f));
    ST_WAIT_UNTIL(atomic_load(&f.started));
    usleep(20000);           /* it waits (not needed for the verdict) */
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_EQ(0, f.result);
    ASSERT_EQ(16, atomic_load(&drops));
    weft_runtime_free(rt);
}

/* weft_group_free() on one thread, weft_runtime_shutdown() on another, at
 * once: both return, each child is dropped exactly once. */
static void free_races_shutdown(weft_flavor flavor, unsigned workers)
{
    int rounds = (int)harness_scale(40);

    for (int round = 0; round < rounds; round++) {
        weft_runtime *rt = rt_of(flavor, workers);
        weft_group *g;
        atomic_int drops = 0, go = 0;
        freer f = { 0 };
        pthread_t th;

        ASSERT_OK(weft_group_new(&g, rt, round % 2 ? WEFT_GROUP_CANCEL_ON_FAILURE
                                                   : WEFT_GROUP_WAIT_ALL));
        for (int i = 0; i < 64; i++)
            ASSERT_OK(weft_group_spawn(g, &parked_future, &(parked){ .drops = &drops }));
        f.g = g;
        f.go = &go;
        ASSERT_EQ(0, pthread_create(&th, NULL, freer_main, &f));
        ST_WAIT_UNTIL(atomic_load(&f.started));
        atomic_store(&go, 1);
        ASSERT_OK(weft_runtime_shutdown(rt));
        ASSERT_EQ(0, pthread_join(th, NULL));
        ASSERT_EQ(0, f.result);
        ASSERT_EQ(64, atomic_load(&drops));
        weft_runtime_free(rt);
    }
}

TEST(group_free_races_runtime_shutdown_multi_thread)
{
    free_races_shutdown(WEFT_MULTI_THREAD, 2);
}

TEST(group_free_races_runtime_shutdown_current_thread)
{
    free_races_shutdown(WEFT_CURRENT_THREAD, 0);
}

/* group.h, weft_group_spawn(): "-ESHUTDOWN (runtime shut down). On failure
 * the future was not moved into weft". A group nobody cancelled, on a
 * runtime shut down: the children were cancelled (the wait says
 * -ECANCELED), later spawns are -ESHUTDOWN and their futures never
 * dropped; the token is not cancelled by the runtime's shutdown. */
static void spawn_after_shutdown(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = rt_of(flavor, workers);
    weft_group *g;
    atomic_int drops = 0;
    weft_cancel *tok;

    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    for (int i = 0; i < 8; i++)
        ASSERT_OK(weft_group_spawn(g, &parked_future, &(parked){ .drops = &drops }));
    tok = weft_cancel_clone(weft_group_token(g));
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(8, atomic_load(&drops));
    ASSERT_EQ(0, weft_group_live(g));
    ASSERT_EQ(-ECANCELED, weft_group_join(g));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(-ESHUTDOWN, weft_group_spawn(g, &parked_future, &(parked){ .drops = &drops }));
    ASSERT_EQ(8, atomic_load(&drops));
    ASSERT_EQ(0, weft_group_live(g));
    ASSERT(!weft_group_is_cancelled(g));
    ASSERT_OK(weft_group_free(g));
    ASSERT(weft_cancel_is_cancelled(tok));     /* weft_group_free() cancels it */
    weft_runtime_free(rt);
    ASSERT(weft_cancel_is_cancelled(tok));
    weft_cancel_drop(tok);
    ASSERT_EQ(8, atomic_load(&drops));
}

TEST(group_spawn_after_runtime_shutdown_is_eshutdown_multi_thread)
{
    spawn_after_shutdown(WEFT_MULTI_THREAD, 2);
}

TEST(group_spawn_after_runtime_shutdown_is_eshutdown_current_thread)
{
    spawn_after_shutdown(WEFT_CURRENT_THREAD, 0);
}

/* group.h: the futures follow lock.h's common rules, among them "A future
 * whose init got a NULL object (or that was zeroed or dropped) completes at
 * once with -EINVAL"; a drain's outputs are 0, -ETIMEDOUT and -EINVAL. A
 * drain dropped in any state (never polled, waiting, cancelling, done) and
 * polled again says -EINVAL (it said -ECANCELED, which the header never
 * lists), and touches nothing. */
TEST(drain_polled_after_its_drop_is_einval_in_every_state)
{
    weft_runtime *rt = rt_of(WEFT_MULTI_THREAD, 1);
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    atomic_int drops = 0;
    weft_group *g;
    weft_group_drain d;
    int r;

    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_group_spawn(g, &parked_future, &(parked){ .drops = &drops }));
    /* never polled */
    weft_group_drain_init(&d, g, 1000000);
    weft_group_drain_drop(&d);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_group_drain_poll(&d, &cx, &r));
    ASSERT_EQ(-EINVAL, r);
    /* waiting: a live child, a far deadline */
    weft_group_drain_init(&d, g, 1000000);
    ASSERT_EQ(WEFT_PENDING, weft_group_drain_poll(&d, &cx, &r));
    weft_group_drain_drop(&d);
    weft_group_drain_drop(&d);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_group_drain_poll(&d, &cx, &r));
    ASSERT_EQ(-EINVAL, r);
    ASSERT(!weft_group_is_cancelled(g));           /* the drop cancelled nothing */
    ASSERT_EQ(1, weft_group_live(g));
    /* done */
    weft_group_cancel(g);
    ST_WAIT_UNTIL(weft_group_live(g) == 0);
    weft_group_drain_init(&d, g, 5);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_group_drain_poll(&d, &cx, &r));
    ASSERT_EQ(0, r);
    ASSERT_EQ(WEFT_READY, weft_group_drain_poll(&d, &cx, &r));
    ASSERT_EQ(0, r);
    weft_group_drain_drop(&d);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_group_drain_poll(&d, &cx, &r));
    ASSERT_EQ(-EINVAL, r);
    ASSERT_OK(weft_group_free(g));
    ASSERT_EQ(1, atomic_load(&drops));
    weft_runtime_free(rt);
}
