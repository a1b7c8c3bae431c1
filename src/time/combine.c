/* SPDX-License-Identifier: MIT */
/* Timeout (any future with a time limit) and interval (periodic ticks),
 * built on weft_sleep. */
#include <string.h>

#include "task/task.h"
#include "time/driver.h"
#include "util/cx.h"
#include "weft/timer.h"

WEFT_API void weft_timeout_init(weft_timeout *t, const weft_future_type *type, void *inner,
                                uint64_t ms)
{
    if (t == NULL)
        return;
    t->type = type;
    t->inner = inner;
    t->inner_live = inner != NULL;
    t->done = false;
    t->result = 0;
    weft_sleep_init(&t->sleep, ms);
}

static void drop_inner(weft_timeout *t)
{
    if (t->inner_live) {
        t->inner_live = false;
        if (t->type && t->type->drop)
            t->type->drop(t->inner);
    }
}

WEFT_API weft_poll weft_timeout_poll(weft_timeout *t, weft_context *cx, int *result, void *out)
{
    if (t == NULL) {
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (t->done)
        goto ready;
    if (weft__cx_bad(cx)) {
        /* misuse (weft/core.h): -EINVAL, nothing changed. Passed on, the
         * context reached the inner future, whose -EINVAL READY read as
         * its completion (result 0, the inner future dropped). */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    /* The type is checked at the first poll only: the sleep is still
     * untouched then (idle, in no wheel), and any later poll comes after a
     * first one that passed the check and reached weft_sleep_poll(), which
     * left it registered or fired (or, polled off a runtime, untouched: that
     * checks again, harmlessly). init resets both. */
    if (t->inner == NULL ||
        (t->sleep.time == NULL && __atomic_load_n(&t->sleep.state, __ATOMIC_RELAXED) == TIMER_IDLE &&
         weft__future_type_check(t->type) < 0)) {
        drop_inner(t);
        t->result = -EINVAL;
        goto finish;
    }
    if (t->type->poll(t->inner, cx, out) == WEFT_READY) {
        t->result = 0;
        goto finish;
    }
    if (weft__sleep_poll(&t->sleep, cx) == WEFT_PENDING)
        return WEFT_PENDING;
    /* The deadline has passed. The poll above may have been refused by the
     * cooperative budget without looking (a leaf returns PENDING unseen once
     * the task's budget is spent, e.g. deep in a select): the spent budget
     * must not decide the race. Give the inner future one real look, with a
     * budget of its own (bounded: one poll, charged to the task). */
    {
        struct weft__coop_grant g;
        weft_poll p;

        weft__coop_grant_begin(cx, &g, true);
        p = t->type->poll(t->inner, cx, out);
        weft__coop_grant_end(cx, &g);
        if (p == WEFT_READY) {
            t->result = 0;
            goto finish;
        }
    }
    t->result = -ETIMEDOUT;
finish:
    drop_inner(t);
    weft_sleep_drop(&t->sleep);
    t->done = true;
ready:
    if (result)
        *result = t->result;
    return WEFT_READY;
}

WEFT_API void weft_timeout_drop(weft_timeout *t)
{
    if (t == NULL)
        return;
    drop_inner(t);
    weft_sleep_drop(&t->sleep);
    /* a poll after the drop must not reach the inner future it dropped:
     * it completes with -EINVAL (timer.h), as a dropped lock.h future does */
    t->done = true;
    t->result = -EINVAL;
}

WEFT_API void weft_interval_init(weft_interval *iv, uint64_t period_ms)
{
    if (iv == NULL)
        return;
    iv->period = period_ms ? period_ms : 1;
    /* the grid starts at now rounded up, as weft_sleep_init()'s deadline
     * does: from the floor, a tick could come up to 1 ms less than a period
     * after init (timer.h: "one period after init ... Never early") */
    iv->next = weft__time_add_sat(weft__now_ms_ceil(), iv->period);   /* huge: never */
    iv->armed = false;
    weft_sleep_until_init(&iv->sleep, iv->next);
}

WEFT_API weft_poll weft_interval_tick(weft_interval *iv, weft_context *cx, uint64_t *missed)
{
    uint64_t now, behind;

    if (iv == NULL)
        return WEFT_READY;
    if (weft__cx_bad(cx)) {
        /* misuse (weft/core.h): READY with no tick taken (the schedule
         * stays as it was) and 0 missed, so no output is left unwritten */
        if (missed)
            *missed = 0;
        return WEFT_READY;
    }
    if (iv->period == 0)
        iv->period = 1;                    /* zeroed, never initialised: as init */
    if (!iv->armed) {
        weft_sleep_until_init(&iv->sleep, iv->next);
        iv->armed = true;
    }
    if (weft__sleep_poll(&iv->sleep, cx) == WEFT_PENDING)
        return WEFT_PENDING;
    weft_sleep_drop(&iv->sleep);
    iv->armed = false;
    now = weft_now_ms();
    behind = now > iv->next ? (now - iv->next) / iv->period : 0;
    /* saturated: a schedule that runs past the clock's range never ticks
     * again, rather than wrapping into the past and ticking in a loop */
    iv->next = weft__time_add_sat(iv->next, weft__time_mul_sat(behind + 1, iv->period));
    if (missed)
        *missed = behind;
    return WEFT_READY;
}

WEFT_API void weft_interval_drop(weft_interval *iv)
{
    if (iv) {
        weft_sleep_drop(&iv->sleep);
        iv->armed = false;
    }
}
