/* SPDX-License-Identifier: MIT */
/* Audit 8 of weft/group.h's graceful drain: misuse answered as every
 * future of lock.h's common rules answers it. A drain polled without a
 * context said 0 ("no child was left by the deadline") while a child was
 * live, and finished itself: the group wait inside it answers a NULL
 * context with READY and -EINVAL, which the drain took for "no child
 * live". */
#include "../sync/sync_test.h"

#include "weft/group.h"

typedef struct parked8 {
    atomic_int *drops;
} parked8;

static weft_poll parked8_poll(parked8 *p, weft_context *cx, void *out)
{
    (void)p;
    (void)cx;
    (void)out;
    return WEFT_PENDING;                 /* until cancelled */
}

static void parked8_drop(parked8 *p)
{
    atomic_fetch_add(p->drops, 1);
}

WEFT_DEFINE_FUTURE_STATIC(parked8, parked8_poll, parked8_drop, int);

TEST(drain_polled_without_a_context_is_einval_and_changes_nothing)
{
    weft_runtime *rt = st_runtime(1);
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    atomic_int drops = 0;
    weft_group *g;
    weft_group_drain d;
    int r;

    /* the child never stores a waker: no lost-waker report */
    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .mask = WEFT_LINTS_OFF }));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_group_spawn(g, &parked8_future, &(parked8){ .drops = &drops }));
    for (int state = 0; state < 2; state++) {
        weft_group_drain_init(&d, g, state ? 1000000 : 0);
        if (state)                                   /* waiting, then misused */
            ASSERT_EQ(WEFT_PENDING, weft_group_drain_poll(&d, &cx, &r));
        r = 1;
        ASSERT_EQ(WEFT_READY, weft_group_drain_poll(&d, NULL, &r));
        ASSERT_EQ(-EINVAL, r);                       /* not 0: a child is live */
        ASSERT(!weft_group_is_cancelled(g));
        ASSERT_EQ(1, weft_group_live(g));
        if (state) {
            /* still the same drain, still waiting */
            ASSERT_EQ(WEFT_PENDING, weft_group_drain_poll(&d, &cx, &r));
        }
        weft_group_drain_drop(&d);
    }
    /* a drain with no deadline left cancels the child and says so */
    weft_group_drain_init(&d, g, 0);
    r = 1;
    while (weft_group_drain_poll(&d, &cx, &r) == WEFT_PENDING)
        sched_yield();
    ASSERT_EQ(-ETIMEDOUT, r);
    weft_group_drain_drop(&d);
    ASSERT_EQ(1, atomic_load(&drops));
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
}
