/* SPDX-License-Identifier: MIT */
/* The graceful drain of a task group (weft/group.h): a group wait under a
 * deadline, then weft_group_cancel() and a second wait for the drops. It is
 * a composition of public futures and lives with the other timed
 * combinators; it needs nothing from the scheduler.
 *
 *   state       polls                       moves on when
 *   DR_INIT     -                           first poll: wait + deadline armed
 *   DR_WAIT     group wait, then deadline   wait READY: 0, done
 *                                           deadline READY: cancel, DR_CANCEL
 *   DR_CANCEL   a fresh group wait          READY: -ETIMEDOUT, done
 *   DR_DONE     -                           - */
#include <errno.h>

#include "task/task.h"
#include "time/driver.h"
#include "util/cx.h"
#include "weft/group.h"
#include "weft/timer.h"

enum { DR_INIT, DR_WAIT, DR_CANCEL, DR_DONE };

_Static_assert(sizeof(weft_group_drain) <= 192, "a group wait, a sleep and a few words");

WEFT_API void weft_group_drain_init(weft_group_drain *d, weft_group *g, uint64_t ms)
{
    if (d == NULL)
        return;
    d->g = g;
    d->ms = ms;
    d->result = 0;
    d->state = DR_INIT;
}

static weft_poll drain_done(weft_group_drain *d, int res, int *result)
{
    d->state = DR_DONE;
    d->result = res;
    weft_group_wait_drop(&d->w);
    weft_sleep_drop(&d->deadline);
    if (result)
        *result = res;
    return WEFT_READY;
}

WEFT_API weft_poll weft_group_drain_poll(weft_group_drain *d, weft_context *cx, int *result)
{
    int r;

    if (d == NULL) {                 /* a NULL future: only *result */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (d->state != DR_DONE && weft__cx_bad(cx)) {
        /* misuse, as every future of lock.h's rules answers it: -EINVAL,
         * nothing changed. (The group wait below answers a NULL context so
         * too: taken for its READY, it read as "no child left", 0.) */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    switch (d->state) {
    case DR_DONE:
        if (result)
            *result = d->result;
        return WEFT_READY;
    case DR_INIT:
        if (d->g == NULL) {
            d->state = DR_DONE;
            d->result = -EINVAL;
            if (result)
                *result = -EINVAL;
            return WEFT_READY;
        }
        weft_group_wait_init(&d->w, d->g);
        weft_sleep_init(&d->deadline, d->ms);
        d->state = DR_WAIT;
        WEFT_FALLTHROUGH;
    case DR_WAIT:
        if (weft_group_wait_poll(&d->w, cx, &r) == WEFT_READY)
            return drain_done(d, 0, result);
        if (weft__sleep_poll(&d->deadline, cx) == WEFT_PENDING)
            return WEFT_PENDING;
        /* The deadline has passed. The wait above may have been refused by
         * the cooperative budget without looking (a group wait spends a
         * unit: weft/core.h), e.g. under WEFT_STRESS, which refuses every
         * other unit: the spent budget must not cancel a group whose
         * children are all done. One real look, as weft_timeout gives its
         * inner future (bounded: one poll, charged to the task). */
        {
            struct weft__coop_grant gr;
            weft_poll p;

            weft__coop_grant_begin(cx, &gr, true);
            p = weft_group_wait_poll(&d->w, cx, &r);
            weft__coop_grant_end(cx, &gr);
            if (p == WEFT_READY)
                return drain_done(d, 0, result);
        }
        /* the deadline passed with children left: cancel them, then wait
         * for their drops (a fresh wait: the first one may hold a stale
         * wake-up) */
        weft_group_cancel(d->g);
        weft_group_wait_drop(&d->w);
        weft_group_wait_init(&d->w, d->g);
        d->state = DR_CANCEL;
        WEFT_FALLTHROUGH;
    case DR_CANCEL:
    default:
        if (weft_group_wait_poll(&d->w, cx, &r) == WEFT_PENDING)
            return WEFT_PENDING;
        return drain_done(d, -ETIMEDOUT, result);
    }
}

WEFT_API void weft_group_drain_drop(weft_group_drain *d)
{
    if (d == NULL)
        return;
    if (d->state != DR_INIT && d->state != DR_DONE) {
        weft_group_wait_drop(&d->w);
        weft_sleep_drop(&d->deadline);
    }
    /* a poll after the drop completes at once with -EINVAL, as every
     * dropped future of lock.h's common rules does (group.h follows them);
     * it never reaches the group, which may be gone by then */
    d->state = DR_DONE;
    d->result = -EINVAL;
}

static weft_poll drain_thunk(void *self, weft_context *cx, void *out)
{
    return weft_group_drain_poll(self, cx, out);
}

static void drain_drop_thunk(void *self)
{
    weft_group_drain_drop(self);
}

WEFT_API const weft_future_type weft_group_drain_future = {
    drain_thunk, drain_drop_thunk, sizeof(weft_group_drain), _Alignof(weft_group_drain),
    sizeof(int), _Alignof(int), "weft_group_drain"
};
