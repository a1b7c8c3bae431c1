// SPDX-License-Identifier: MIT
/* The drain of a group whose own policy cancels it (a failing child under
 * WEFT_GROUP_CANCEL_ON_FAILURE): no child is left by the deadline, so the
 * drain gives 0 at once, cancels nothing itself, and the group's wait
 * still reports the failure (group.h states this since the audit; it used
 * to say 0 meant the group was not cancelled). */
#include "../sync/sync_test.h"

#include "weft/group.h"

typedef struct failer {
    int code;
} failer;

static weft_poll failer_poll(failer *f, weft_context *cx, int *out)
{
    (void)cx;
    *out = f->code;
    return WEFT_READY;
}

static void failer_drop(failer *f)
{
    (void)f;
}

WEFT_DEFINE_FUTURE(failer, failer_poll, failer_drop, int);

typedef struct sleeper {
    weft_sleep s;
    bool init;
} sleeper;

static weft_poll sleeper_poll(sleeper *f, weft_context *cx, int *out)
{
    if (!f->init) {
        weft_sleep_init(&f->s, 600000);
        f->init = true;
    }
    if (weft_sleep_poll(&f->s, cx) == WEFT_PENDING)
        return WEFT_PENDING;
    *out = 0;
    return WEFT_READY;
}

static void sleeper_drop(sleeper *f)
{
    weft_sleep_drop(&f->s);
}

WEFT_DEFINE_FUTURE(sleeper, sleeper_poll, sleeper_drop, int);

typedef struct drain_then_wait {
    weft_group *g;
    weft_group_drain d;
    weft_group_wait w;
    int *drained, *waited;        /* the task works on a copy: report through these */
    unsigned char state;
} drain_then_wait;

static weft_poll dtw_poll(drain_then_wait *f, weft_context *cx, int *out)
{
    if (f->state == 0) {
        weft_group_drain_init(&f->d, f->g, 600000);   /* far: must not be what ends it */
        f->state = 1;
    }
    if (f->state == 1) {
        if (weft_group_drain_poll(&f->d, cx, f->drained) == WEFT_PENDING)
            return WEFT_PENDING;
        weft_group_drain_drop(&f->d);
        weft_group_wait_init(&f->w, f->g);
        f->state = 2;
    }
    if (weft_group_wait_poll(&f->w, cx, f->waited) == WEFT_PENDING)
        return WEFT_PENDING;
    weft_group_wait_drop(&f->w);
    *out = 0;
    return WEFT_READY;
}

static void dtw_drop(drain_then_wait *f)
{
    if (f->state == 1)
        weft_group_drain_drop(&f->d);
    if (f->state == 2)
        weft_group_wait_drop(&f->w);
}

WEFT_DEFINE_FUTURE(drain_then_wait, dtw_poll, dtw_drop, int);

TEST(drain_of_a_group_its_policy_cancelled)
{
    weft_runtime *rt = NULL;
    weft_group *g = NULL;
    drain_then_wait f = { 0 };
    int out = -1, drained = 1, waited = 1;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_CANCEL_ON_FAILURE));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_group_spawn(g, &sleeper_future, &(sleeper){ 0 }));
    ASSERT_OK(weft_group_spawn(g, &failer_future, &(failer){ -77 }));
    f.g = g;
    f.drained = &drained;
    f.waited = &waited;
    ASSERT_OK(weft_block_on(rt, &drain_then_wait_future, &f, &out));
    ASSERT_EQ(0, out);
    ASSERT_EQ(0, drained);              /* emptied before the deadline */
    ASSERT_EQ(-77, waited);             /* the wait tells how it ended */
    ASSERT(weft_group_is_cancelled(g));   /* by its policy, not the drain */
    ASSERT_EQ(0, weft_group_live(g));
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
}
