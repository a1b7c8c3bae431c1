/* SPDX-License-Identifier: MIT */
/* Combinators over type-erased futures: join_all, select, race.
 *
 * They own the futures they were given (see weft/group.h) and drop each one
 * exactly once: a slot's state says whether its future is still alive.
 * Everything here runs on the thread that polls (or drops) the combinator:
 * no locks, no atomics, no allocation.
 *
 * The cooperative budget (see weft/group.h, "Fairness rule"): a leaf future
 * spends a unit of its task's budget whenever it is polled, ready or not, and
 * returns PENDING without looking once the budget is spent. Polling n
 * children on the task's one budget would leave every child past the 128th
 * unseen on every poll: a select whose only ready branch is at index 150
 * would be requeued and polled again for ever. So a combinator's poll spends
 * one unit itself (weft_coop_proceed(): refused, it returns PENDING with the
 * task requeued, having polled nothing) and polls each child on a budget of
 * its own, charging what the child spent to the task afterwards. */
#include <limits.h>
#include <stdint.h>

#include "task/task.h"
#include "weft/group.h"

enum { S_LIVE = 1, S_DONE = 2 };

static bool ref_ok(const weft_future_ref *r)
{
    return r->type && r->type->poll && r->future && (r->out || r->type->output_size == 0);
}

static bool refs_ok(const weft_future_ref *refs, size_t n)
{
    if (refs == NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!ref_ok(&refs[i]))
            return false;
    return true;
}

static void ref_drop(weft_future_ref *r)
{
    if (r->state == S_LIVE) {
        r->state = S_DONE;
        if (r->type->drop)
            r->type->drop(r->future);
    }
}

/* Poll one child with a budget of its own (weft__coop_grant_begin()). */
static weft_poll poll_child(const weft_future_type *type, void *future, weft_context *cx,
                            void *out)
{
    struct weft__coop_grant g;
    weft_poll p;

    weft__coop_grant_begin(cx, &g, false);
    p = type->poll(future, cx, out);
    weft__coop_grant_end(cx, &g);
    return p;
}

/* ---- join_all ----------------------------------------------------------------- */
WEFT_API void weft_join_all_init(weft_join_all *ja, weft_future_ref *refs, size_t n)
{
    if (ja == NULL)
        return;
    ja->refs = NULL;
    ja->n = ja->left = 0;
    ja->result = -EINVAL;
    ja->done = true;
    if (!refs_ok(refs, n))
        return;                              /* owns nothing */
    for (size_t i = 0; i < n; i++)
        refs[i].state = S_LIVE;
    ja->refs = refs;
    ja->n = ja->left = n;
    ja->result = 0;
    ja->done = false;
}

WEFT_API weft_poll weft_join_all_poll(weft_join_all *ja, weft_context *cx, int *result)
{
    if (ja == NULL || result == NULL) {   /* misuse: -EINVAL if it can be told */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (!ja->done && (cx == NULL || cx->waker == NULL)) {
        *result = -EINVAL;
        return WEFT_READY;
    }
    if (!ja->done && ja->refs == NULL) {
        /* zeroed (init never ran; an init that refused marks done): the
         * common rule of lock.h, -EINVAL; not 0 for an empty array */
        ja->done = true;
        ja->result = -EINVAL;
    }
    if (!ja->done) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;             /* budget spent: requeued */
        for (size_t i = 0; i < ja->n; i++) {
            weft_future_ref *r = &ja->refs[i];

            if (r->state != S_LIVE)
                continue;
            if (poll_child(r->type, r->future, cx, r->out) == WEFT_READY) {
                ref_drop(r);                 /* its resources go at once */
                ja->left--;
            }
        }
        if (ja->left != 0)
            return WEFT_PENDING;
        ja->done = true;
        ja->result = 0;
    }
    *result = ja->result;
    return WEFT_READY;
}

WEFT_API void weft_join_all_drop(weft_join_all *ja)
{
    if (ja == NULL)
        return;
    for (size_t i = 0; ja->refs && i < ja->n; i++)
        ref_drop(&ja->refs[i]);
    ja->refs = NULL;
    ja->n = ja->left = 0;
    ja->result = -EINVAL;
    ja->done = true;
}

/* ---- select ------------------------------------------------------------------- */
WEFT_API void weft_select_init(weft_select *s, weft_future_ref *refs, size_t n)
{
    if (s == NULL)
        return;
    s->refs = NULL;
    s->n = 0;
    s->result = -EINVAL;
    s->done = true;
    if (n == 0 || n > INT_MAX || !refs_ok(refs, n))
        return;                              /* owns nothing */
    for (size_t i = 0; i < n; i++)
        refs[i].state = S_LIVE;
    s->refs = refs;
    s->n = n;
    s->result = 0;
    s->done = false;
}

WEFT_API weft_poll weft_select_poll(weft_select *s, weft_context *cx, int *result)
{
    if (s == NULL || result == NULL) {   /* misuse: -EINVAL if it can be told */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (!s->done && (cx == NULL || cx->waker == NULL)) {
        *result = -EINVAL;
        return WEFT_READY;
    }
    if (!s->done && (s->refs == NULL || s->n == 0)) {
        /* zeroed: -EINVAL (lock.h's common rule), not PENDING for ever
         * with no child to wake it */
        s->done = true;
        s->result = -EINVAL;
    }
    if (!s->done) {
        size_t i;

        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;             /* budget spent: requeued */
        for (i = 0; i < s->n; i++) {
            weft_future_ref *r = &s->refs[i];

            if (poll_child(r->type, r->future, cx, r->out) == WEFT_READY)
                break;
        }
        if (i == s->n)
            return WEFT_PENDING;
        for (size_t k = 0; k < s->n; k++)    /* the winner and every loser */
            ref_drop(&s->refs[k]);
        s->done = true;
        s->result = (int)i;
    }
    *result = s->result;
    return WEFT_READY;
}

WEFT_API void weft_select_drop(weft_select *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; s->refs && i < s->n; i++)
        ref_drop(&s->refs[i]);
    s->refs = NULL;
    s->n = 0;
    s->result = -EINVAL;
    s->done = true;
}

/* ---- race --------------------------------------------------------------------- */
/* Every future of the race is alive until the race ends (a winner, or the
 * race's drop), so one flag (!done) says it for all of them. */
static void race_drop_all(weft_race *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->type->drop)
            r->type->drop((char *)r->futures + i * r->type->size);
}

WEFT_API void weft_race_init(weft_race *r, const weft_future_type *type, void *futures,
                             size_t n, void *out)
{
    if (r == NULL)
        return;
    r->type = NULL;
    r->futures = NULL;
    r->out = NULL;
    r->n = 0;
    r->result = -EINVAL;
    r->done = true;
    if (type == NULL || type->poll == NULL || futures == NULL || n == 0 || n > INT_MAX ||
        type->size == 0 || n > SIZE_MAX / type->size ||
        (out == NULL && type->output_size != 0))
        return;                              /* owns nothing */
    r->type = type;
    r->futures = futures;
    r->out = out;
    r->n = n;
    r->result = 0;
    r->done = false;
}

WEFT_API weft_poll weft_race_poll(weft_race *r, weft_context *cx, int *result)
{
    if (r == NULL || result == NULL) {   /* misuse: -EINVAL if it can be told */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (!r->done && (cx == NULL || cx->waker == NULL)) {
        *result = -EINVAL;
        return WEFT_READY;
    }
    if (!r->done && (r->type == NULL || r->futures == NULL || r->n == 0)) {
        /* zeroed: -EINVAL (lock.h's common rule), not PENDING for ever */
        r->done = true;
        r->result = -EINVAL;
    }
    if (!r->done) {
        size_t i;

        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;             /* budget spent: requeued */
        for (i = 0; i < r->n; i++)
            if (poll_child(r->type, (char *)r->futures + i * r->type->size, cx, r->out) ==
                WEFT_READY)
                break;
        if (i == r->n)
            return WEFT_PENDING;
        race_drop_all(r);
        r->done = true;
        r->result = (int)i;
    }
    *result = r->result;
    return WEFT_READY;
}

WEFT_API void weft_race_drop(weft_race *r)
{
    if (r == NULL)
        return;
    if (!r->done)
        race_drop_all(r);
    r->type = NULL;
    r->futures = NULL;
    r->out = NULL;
    r->n = 0;
    r->result = -EINVAL;
    r->done = true;
}
