/* SPDX-License-Identifier: MIT */
/* Cancellation tokens: a tree of one-way flags.
 *
 * Each token has its own mutex, guarding its child list, its wait list and
 * the transition of its flag. Lock order: there is none to get wrong, because
 * no thread ever holds two token locks at once. Every operation that touches
 * two tokens (cancel walking down, drop unlinking from the parent, child
 * linking under the parent) takes them one after the other:
 *
 *   make child    lock parent: inherit its flag, link at the tail    unlock
 *   cancel t      lock t: set flag, wake waiters                      unlock
 *                 lock t: take a reference on the first live child    unlock
 *                 ...cancel that child (same steps, iteratively)...
 *                 lock t: next live sibling after it (still linked:   unlock
 *                 we hold a reference on it)
 *   last drop     lock parent: unlink                                 unlock
 *
 * Why nothing is missed: a child is linked under its parent's lock, either
 * after the parent's flag was set (it is born cancelled) or before (it is in
 * the list when the walk, which sets the flag first, visits the list). A
 * child whose count already reached 0 is being unlinked; the walk skips it
 * (try_ref fails): nobody can observe it any more. The walk skips the
 * subtree of a child that is cancelled already: whoever set that flag walks
 * it. weft_cancel_is_cancelled() also looks at the ancestors (lock-free:
 * parent pointers never change and a child holds its parent), so it is true
 * for every descendant as soon as cancel has set the root's flag. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "weft/group.h"
#include "sync/waitq.h"
#include "util/alloc.h"
#include "util/cx.h"

struct weft_cancel {
    _Atomic size_t refs;
    atomic_bool cancelled;           /* set once, under ->lock */
    struct weft_cancel *parent;      /* immutable; holds a reference */
    pthread_mutex_t lock;
    struct weft_cancel *first, *last; /* ->lock: children */
    struct weft_cancel *prev, *next;  /* parent->lock: siblings */
    struct weft__waitq q;             /* ->lock: wait futures */
};

_Static_assert(sizeof(weft_cancel_wait) <= 96, "cancel wait future stays small");

static int cancel_alloc(struct weft_cancel **out)
{
    struct weft_cancel *t = weft__calloc(1, sizeof(*t));

    if (t == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        weft__free(t);
        return -ENOMEM;
    }
    atomic_init(&t->refs, 1);
    atomic_init(&t->cancelled, false);
    *out = t;
    return 0;
}

WEFT_API int weft_cancel_new(weft_cancel **out)
{
    if (out == NULL)
        return -EINVAL;
    return cancel_alloc(out);
}

WEFT_API int weft_cancel_child(weft_cancel *parent, weft_cancel **out)
{
    struct weft_cancel *c;
    int err;

    if (parent == NULL || out == NULL)
        return -EINVAL;
    err = cancel_alloc(&c);
    if (err < 0)
        return err;
    (void)weft_cancel_clone(parent);           /* the child's reference */
    c->parent = parent;
    sync_lock(&parent->lock);
    /* relaxed: the flag is written under ->lock, which we hold */
    if (atomic_load_explicit(&parent->cancelled, memory_order_relaxed))
        atomic_store_explicit(&c->cancelled, true, memory_order_relaxed); /* unpublished */
    c->prev = parent->last;
    c->next = NULL;
    if (parent->last)
        parent->last->next = c;
    else
        parent->first = c;
    parent->last = c;
    sync_unlock(&parent->lock);
    *out = c;
    return 0;
}

WEFT_API weft_cancel *weft_cancel_clone(weft_cancel *t)
{
    if (t == NULL)
        return NULL;
    /* relaxed: the caller holds a reference; nothing is published */
    if (atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed) == SIZE_MAX) {
        fputs("weft: cancel token reference count overflow\n", stderr);
        abort();
    }
    return t;
}

/* A reference to `t` unless its count already reached 0 (it is being
 * unlinked and freed). The caller holds t->parent->lock, which keeps the
 * memory alive: the last dropper unlinks under that lock before freeing. */
static bool try_ref(struct weft_cancel *t)
{
    size_t cur = atomic_load_explicit(&t->refs, memory_order_relaxed);

    do {
        if (cur == 0)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&t->refs, &cur, cur + 1,
                 memory_order_relaxed,   /* as clone: nothing is published */
                 memory_order_relaxed));
    return true;
}

WEFT_API void weft_cancel_drop(weft_cancel *t)
{
    while (t != NULL) {
        struct weft_cancel *p = t->parent;

        /* release: our uses of the token happen before the free; pairs with
         * the acquire load of the thread that drops the last reference */
        if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_release) != 1)
            return;
        (void)atomic_load_explicit(&t->refs, memory_order_acquire); /* see above */
        assert(waitq_empty(&t->q));
        assert(t->first == NULL);                  /* children hold a reference */
        if (p) {
            sync_lock(&p->lock);
            if (t->prev)
                t->prev->next = t->next;
            else
                p->first = t->next;
            if (t->next)
                t->next->prev = t->prev;
            else
                p->last = t->prev;
            sync_unlock(&p->lock);
        }
        pthread_mutex_destroy(&t->lock);
        weft__free(t);
        t = p;                                     /* the child's reference */
    }
}

/* Set t's flag and wake its waiters. Returns false when it was set already
 * (then whoever set it walks t's subtree). */
static bool cancel_mark(struct weft_cancel *t)
{
    struct wake_batch b = { 0 };

    sync_lock(&t->lock);
    /* relaxed: written only under ->lock */
    if (atomic_load_explicit(&t->cancelled, memory_order_relaxed)) {
        sync_unlock(&t->lock);
        return false;
    }
    /* release: pairs with the acquire load in weft_cancel_is_cancelled(),
     * so that what the canceller did before is visible to who sees it */
    atomic_store_explicit(&t->cancelled, true, memory_order_release);
    /* waiters that poll from now on see the flag and do not park: the list
     * only shrinks while we wake it in batches */
    while (!waitq_empty(&t->q)) {
        while (!wake_batch_full(&b) && !waitq_empty(&t->q))
            waitq_wake_one(&t->q, WHY_CLOSED, &b);
        sync_unlock(&t->lock);
        wake_batch_run(&b);
        sync_lock(&t->lock);
    }
    sync_unlock(&t->lock);
    return true;
}

/* The first live child of `p` at or after `c` (NULL: from the first), with
 * a reference taken. `after` must be linked in p (the caller's reference). */
static struct weft_cancel *next_live(struct weft_cancel *p, struct weft_cancel *after)
{
    struct weft_cancel *c;

    sync_lock(&p->lock);
    c = after ? after->next : p->first;
    while (c && !try_ref(c))
        c = c->next;
    sync_unlock(&p->lock);
    return c;
}

/* Depth-first over the subtree of `root` (the caller's reference), without
 * recursion: a deep chain of tokens cannot overflow the stack. We hold a
 * reference on every token of the current path below root. */
WEFT_API void weft_cancel_cancel(weft_cancel *root)
{
    struct weft_cancel *node, *child;

    if (root == NULL || !cancel_mark(root))
        return;
    node = root;
    child = next_live(node, NULL);
    for (;;) {
        if (child) {
            if (cancel_mark(child)) {              /* descend */
                node = child;
                child = next_live(node, NULL);
            } else {                               /* cancelled already: skip it */
                struct weft_cancel *sib = next_live(node, child);

                weft_cancel_drop(child);
                child = sib;
            }
            continue;
        }
        if (node == root)
            break;
        child = next_live(node->parent, node);     /* climb: node's next sibling */
        {
            struct weft_cancel *up = node->parent; /* alive: we hold a ref on it, or it is root */

            weft_cancel_drop(node);
            node = up;
        }
    }
}

WEFT_API bool weft_cancel_is_cancelled(const weft_cancel *t)
{
    for (; t != NULL; t = t->parent) {
        /* acquire: pairs with the release store in cancel_mark() */
        if (atomic_load_explicit(&t->cancelled, memory_order_acquire))
            return true;
    }
    return false;
}

/* ---- Wait future -------------------------------------------------------------- */
WEFT_API void weft_cancel_wait_init(weft_cancel_wait *w, weft_cancel *t)
{
    if (w == NULL)
        return;
    w->tok = t;
    w->result = 0;
    waiter_reset(&w->w);
}

WEFT_API weft_poll weft_cancel_wait_poll(weft_cancel_wait *w, weft_context *cx, int *result)
{
    struct weft_cancel *t;
    weft_waker old;

    if (w == NULL || result == NULL) {   /* misuse: -EINVAL if it can be told */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    t = w->tok;
    if (t == NULL || weft__cx_bad(cx)) {
        *result = -EINVAL;
        return WEFT_READY;
    }
    if (w->w.owner == O_DONE) {
        *result = w->result;
        return WEFT_READY;
    }
    /* every fresh wait on a cancelled token is ready at once: spend the
     * budget (lock.h's rule), or a task waiting in a loop held its worker */
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    if (w->w.owner == O_IDLE && weft_cancel_is_cancelled(t)) {
        w->w.owner = O_DONE;               /* never linked: no lock needed */
        *result = w->result = 0;
        return WEFT_READY;
    }
    sync_lock(&t->lock);
    /* relaxed: written under ->lock, which we hold. An ancestor's flag that
     * is set while ours is not yet: the walk will set ours and wake us. */
    if (!atomic_load_explicit(&t->cancelled, memory_order_relaxed) &&
        !weft_cancel_is_cancelled(t->parent)) {
        old = waitq_park(&t->q, &w->w, cx, false);
        sync_unlock(&t->lock);
        weft_waker_drop(&old);
        return WEFT_PENDING;
    }
    old = waitq_finish(&t->q, &w->w);
    sync_unlock(&t->lock);
    weft_waker_drop(&old);
    *result = w->result = 0;
    return WEFT_READY;
}

WEFT_API void weft_cancel_wait_drop(weft_cancel_wait *w)
{
    weft_waker old;

    if (w == NULL || w->tok == NULL)
        return;
    if (w->w.owner == O_PARKED) {
        sync_lock(&w->tok->lock);
        old = waitq_finish(&w->tok->q, &w->w);
        sync_unlock(&w->tok->lock);
        weft_waker_drop(&old);
    }
    w->w.owner = O_DONE;
    w->tok = NULL;
}
