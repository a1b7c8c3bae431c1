/* SPDX-License-Identifier: MIT */
/* Task groups.
 *
 * Each child is spawned as a small wrapper future (struct gchild) followed,
 * in the same task, by the child's own future and an output area:
 *
 *     gchild | pad | child future (ut->size) | pad | child output (ut->output_size)
 *
 * The wrapper polls the child; on READY it reads the child's code (the first
 * int of its output) and, on a failure under CANCEL_ON_FAILURE, cancels the
 * group. Its drop (which weft runs exactly once, on completion, abort or
 * shutdown) drops the child's future and then, under the group's lock, frees
 * the child's slot and decrements the live count: O(1) per child, and
 * "live == 0" means exactly "every child's drop has run". The waiters
 * (weft_group_wait futures, and weft_group_free() on a plain thread through
 * ->idle) are woken when the count reaches 0.
 *
 * The task layer keeps a pointer to the future type for the task's whole
 * life, so the wrapper types must outlive every task: they are static, one
 * per (size class, alignment), filled in once.
 *
 * The group's slot table holds the join handle of every live child (so that
 * cancel can abort them). A slot is written by spawn and cleared by the
 * child's drop, both under ->lock: spawn holds the lock across weft_spawn(),
 * so the child's drop, which needs the lock, always finds its handle there.
 * A handle is used (aborted) only under ->lock and released after its slot
 * was cleared, so one thread at a time uses it, as weft_join requires.
 *
 * Lock order: ->lock, then the scheduler's own locks (weft_spawn(),
 * weft_join_abort() under ->lock). The scheduler never calls a future's poll
 * or drop under one of its locks, so the reverse order never occurs. The
 * group's token is cancelled after ->lock is released (its wakers must not
 * run under a weft lock), so a token lock never nests inside ->lock. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "weft/group.h"
#include "sched/runtime.h"
#include "sync/group_rt.h"
#include "sync/waitq.h"
#include "task/task.h"
#include "util/alloc.h"
#include "util/cx.h"

#define SLOT_NONE SIZE_MAX

struct slot {
    weft_join *j;                  /* NULL: free */
    size_t next_free;
};

struct weft_group {
    pthread_mutex_t lock;
    pthread_cond_t idle;           /* live reached 0; for weft_group_free() */
    weft_runtime *rt;
    weft_group_policy policy;
    weft_cancel *tok;              /* cancelled (outside ->lock) when the group is */
    atomic_bool cancelled;         /* written under ->lock; racy reads are hints */
    _Atomic size_t live;           /* written under ->lock; racy reads are hints */
    int first_err;                 /* ->lock */
    bool saw_cancel;               /* ->lock: a child was dropped unfinished */
    struct slot *slots;            /* ->lock */
    size_t cap, free_head;         /* ->lock */
    struct weft__waitq q;          /* ->lock */
    unsigned pins;                 /* ->lock: wakes of the idle waiters between
                                    * two batches (group_wake_idle()), and
                                    * weft_group_join()s waiting */
    bool freed;                    /* ->lock: weft_group_free() ran while pinned:
                                    * the last unpin releases the memory */
};

/* ---- The wrapper future ------------------------------------------------------- */
enum { CH_RUNNING = 0, CH_COMPLETED, CH_DROPPED };

struct gchild {
    /* first: weft__wrapper_name's rule (task/task.h), so that a trace or a
     * dump names the child's own type, not the wrapper */
    const char *display;
    struct weft_group *g;
    const weft_future_type *ut;    /* the child's type */
    size_t slot;
    uint32_t fut_off, out_off;     /* from the start of the wrapper */
    unsigned char state;
};

_Static_assert(sizeof(weft_group_wait) <= 96, "group wait future stays small");
_Static_assert(sizeof(struct gchild) <= 64, "the wrapper header stays small");

/* size classes: 64 .. 512 by 64, then 1 KiB .. 4 GiB by doubling. A
 * wrapper holds its header, the child's future and the child's output, each
 * of up to WEFT_FUTURE_MAX_SIZE (1 GiB): 2 GiB and a few KiB at most, which
 * the 4 GiB class holds, so every type weft_spawn() takes can be a child
 * (the classes stopped at 1 GiB: a 1 GiB future spawned, but was refused
 * here with -EINVAL). weft__future_type_check() lets a wrapper type be that
 * large (WEFT__WRAPPER_MAX_SIZE). Where size_t has 32 bits, nothing above
 * 1 GiB could be allocated anyway. */
#if SIZE_MAX > 0xffffffffu
#define NCLASS 31
_Static_assert(((size_t)1024 << 22) == WEFT__WRAPPER_MAX_SIZE, "the top class is the limit");
#else
#define NCLASS 29
#endif
#define NALIGN 13                  /* 1 .. 4096 */

static weft_future_type wrap_types[NCLASS][NALIGN];
static pthread_once_t wrap_once = PTHREAD_ONCE_INIT;

static size_t class_size(unsigned i)
{
    return i < 8 ? (size_t)64 * (i + 1) : (size_t)1024 << (i - 8);
}

static weft_poll gchild_poll(void *self, weft_context *cx, void *out);
static void gchild_drop(void *self);

static void wrap_types_init(void)
{
    for (unsigned i = 0; i < NCLASS; i++)
        for (unsigned a = 0; a < NALIGN; a++)
            wrap_types[i][a] = (weft_future_type){
                gchild_poll, gchild_drop, class_size(i), (size_t)1 << a, 0, 1,
                weft__wrapper_name
            };
}

static const weft_future_type *wrap_type(size_t need, size_t align)
{
    unsigned i = 0, a = 0;

    while (i < NCLASS && class_size(i) < need)
        i++;
    while (((size_t)1 << a) < align)
        a++;
    if (i == NCLASS || a == NALIGN)
        return NULL;
    pthread_once(&wrap_once, wrap_types_init);
    return &wrap_types[i][a];
}

static weft_poll gchild_poll(void *self, weft_context *cx, void *out)
{
    struct gchild *c = self;
    struct weft_group *g = c->g;
    const weft_future_type *ut = c->ut;
    int code = 0;
    bool cancel_tok = false;

    (void)out;
    if (c->state != CH_RUNNING)
        return WEFT_READY;
    if (ut->poll((char *)self + c->fut_off, cx, (char *)self + c->out_off) == WEFT_PENDING)
        return WEFT_PENDING;
    c->state = CH_COMPLETED;
    if (ut->output_size >= sizeof(int))
        memcpy(&code, (char *)self + c->out_off, sizeof(int));
    if (code < 0) {
        sync_lock(&g->lock);
        if (g->first_err == 0)
            g->first_err = code;
        if (g->policy == WEFT_GROUP_CANCEL_ON_FAILURE &&
            /* relaxed: written under ->lock, which we hold */
            !atomic_load_explicit(&g->cancelled, memory_order_relaxed)) {
            atomic_store_explicit(&g->cancelled, true, memory_order_relaxed); /* as above */
            for (size_t i = 0; i < g->cap; i++)
                if (i != c->slot && g->slots[i].j)
                    weft_join_abort(g->slots[i].j);
            cancel_tok = true;
        }
        sync_unlock(&g->lock);
        /* the group lives on: we are live until our drop */
        if (cancel_tok)
            weft_cancel_cancel(g->tok);        /* wakes: outside ->lock */
    }
    return WEFT_READY;
}

static void group_release(struct weft_group *g);

/* live reached 0: wake every waiter. ->lock held; returns with it released.
 * After the last batch the group is not touched again (it may be freed).
 *
 * Between two batches the group is unlocked while we still need it, and
 * with live at 0 nothing else keeps it: its waiters may all be dropped
 * meanwhile (woken ones or linked ones; both are allowed at any time) and
 * weft_group_free() then finds no child live and no waiter. So we pin it
 * (pins, under ->lock) across the unlocked wake; a free that finds it
 * pinned marks it `freed` and leaves the memory to the last unpin:
 *
 *   this drop (between batches)             weft_group_free()
 *   pins++; unlock; wake the batch          lock: live 0, no waiter
 *                                           pins? freed = true, unlock
 *   lock; --pins == 0 && freed? unlock,     (returns 0: the group is gone
 *     release the memory                     for the caller)
 */
static void group_wake_idle(struct weft_group *g)
{
    struct wake_batch b = { 0 };

    pthread_cond_broadcast(&g->idle);
    for (;;) {
        while (!wake_batch_full(&b) && !waitq_empty(&g->q))
            waitq_wake_one(&g->q, WHY_ALL, &b);
        if (waitq_empty(&g->q)) {
            sync_unlock(&g->lock);
            wake_batch_run(&b);
            return;
        }
        g->pins++;
        sync_unlock(&g->lock);
        wake_batch_run(&b);
        sync_lock(&g->lock);
        if (--g->pins == 0 && g->freed) {
            sync_unlock(&g->lock);         /* no waiter: free refused them */
            group_release(g);
            return;
        }
    }
}

static void gchild_drop(void *self)
{
    struct gchild *c = self;
    struct weft_group *g = c->g;
    weft_join *j;
    size_t live;

    if (c->state == CH_DROPPED)
        return;
    if (c->ut->drop)
        c->ut->drop((char *)self + c->fut_off);
    sync_lock(&g->lock);
    if (c->state != CH_COMPLETED)
        g->saw_cancel = true;
    c->state = CH_DROPPED;
    j = g->slots[c->slot].j;
    assert(j != NULL);
    g->slots[c->slot].j = NULL;
    g->slots[c->slot].next_free = g->free_head;
    g->free_head = c->slot;
    /* relaxed: written under ->lock; readers outside it take a hint */
    live = atomic_load_explicit(&g->live, memory_order_relaxed) - 1;
    atomic_store_explicit(&g->live, live, memory_order_relaxed);
    if (live == 0)
        group_wake_idle(g);                /* unlocks */
    else
        sync_unlock(&g->lock);
    /* the group may be gone from here on; the handle is ours alone. We run
     * inside the task, which holds its own reference: this frees nothing. */
    weft_join_drop(j);
}

/* ---- The group ---------------------------------------------------------------- */
WEFT_API int weft_group_new(weft_group **out, weft_runtime *rt, weft_group_policy policy)
{
    struct weft_group *g;

    if (out == NULL || rt == NULL ||
        (policy != WEFT_GROUP_WAIT_ALL && policy != WEFT_GROUP_CANCEL_ON_FAILURE))
        return -EINVAL;
    g = weft__calloc(1, sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&g->lock, NULL) != 0)
        goto out_free;
    if (pthread_cond_init(&g->idle, NULL) != 0)
        goto out_mutex;
    if (weft_cancel_new(&g->tok) < 0)
        goto out_cond;
    g->rt = rt;
    g->policy = policy;
    atomic_init(&g->cancelled, false);
    atomic_init(&g->live, 0);
    g->free_head = SLOT_NONE;
    *out = g;
    return 0;
out_cond:
    pthread_cond_destroy(&g->idle);
out_mutex:
    pthread_mutex_destroy(&g->lock);
out_free:
    weft__free(g);
    return -ENOMEM;
}

/* Make room for one more slot. ->lock held. */
static int slots_grow(struct weft_group *g)
{
    size_t ncap = g->cap ? g->cap * 2 : 16;
    struct slot *ns;

    if (ncap > SIZE_MAX / 2 / sizeof(*ns))
        return -ENOMEM;
    ns = weft__malloc(ncap * sizeof(*ns));
    if (ns == NULL)
        return -ENOMEM;
    if (g->cap)
        memcpy(ns, g->slots, g->cap * sizeof(*ns));
    for (size_t i = ncap; i-- > g->cap;) {     /* lowest index first */
        ns[i].j = NULL;
        ns[i].next_free = g->free_head;
        g->free_head = i;
    }
    weft__free(g->slots);
    g->slots = ns;
    g->cap = ncap;
    return 0;
}

WEFT_API int weft_group_spawn(weft_group *g, const weft_future_type *type, const void *init)
{
    unsigned char stackbuf[1024];
    unsigned char *buf = stackbuf;
    const weft_future_type *wt;
    struct gchild hdr = { 0 };
    size_t fut_off, out_off, need, align;
    weft_join *j;
    int err;

    if (g == NULL || init == NULL || weft__future_type_check(type) < 0)
        return -EINVAL;
    fut_off = weft__round_up(sizeof(struct gchild), type->align);
    out_off = weft__round_up(fut_off + type->size, type->output_align);
    need = out_off + type->output_size;
    align = _Alignof(struct gchild);
    if (type->align > align)
        align = type->align;
    if (type->output_align > align)
        align = type->output_align;
    wt = wrap_type(need, align);
    if (wt == NULL)
        return -ENOMEM;                        /* 32-bit: larger than memory */
    /* relaxed: a hint; checked again under ->lock */
    if (atomic_load_explicit(&g->cancelled, memory_order_relaxed))
        return -ECANCELED;
    if (wt->size > sizeof(stackbuf)) {
        buf = weft__malloc(wt->size);
        if (buf == NULL)
            return -ENOMEM;
    }
    /* bytes only: the task copies them into an aligned cell */
    memset(buf, 0, fut_off);
    memcpy(buf + fut_off, init, type->size);
    memset(buf + fut_off + type->size, 0, wt->size - fut_off - type->size);
    hdr.g = g;
    hdr.ut = type;
    /* a wrapper spawned into a group (a coroutine) keeps its own name */
    hdr.display = type->name == weft__wrapper_name ? *(const char *const *)init : type->name;
    hdr.fut_off = (uint32_t)fut_off;
    hdr.out_off = (uint32_t)out_off;
    hdr.state = CH_RUNNING;

    sync_lock(&g->lock);
    /* relaxed: written under ->lock, which we hold */
    if (atomic_load_explicit(&g->cancelled, memory_order_relaxed)) {
        err = -ECANCELED;
        goto out_unlock;
    }
    if (g->free_head == SLOT_NONE && (err = slots_grow(g)) < 0)
        goto out_unlock;
    hdr.slot = g->free_head;
    memcpy(buf, &hdr, sizeof(hdr));
    /* under ->lock: the child's drop (which takes it) finds its handle */
    err = weft_spawn(g->rt, wt, buf, &j);
    if (err < 0)
        goto out_unlock;
    g->free_head = g->slots[hdr.slot].next_free;
    g->slots[hdr.slot].j = j;
    /* relaxed: written under ->lock; readers outside it take a hint */
    atomic_store_explicit(&g->live, atomic_load_explicit(&g->live, memory_order_relaxed) + 1,
                          memory_order_relaxed);
out_unlock:
    sync_unlock(&g->lock);
    if (buf != stackbuf)
        weft__free(buf);
    return err;
}

/* Abort every live child and refuse later spawns. ->lock held. */
static void group_cancel_locked(struct weft_group *g)
{
    /* relaxed: written under ->lock */
    atomic_store_explicit(&g->cancelled, true, memory_order_relaxed);
    for (size_t i = 0; i < g->cap; i++)
        if (g->slots[i].j)
            weft_join_abort(g->slots[i].j);
}

WEFT_API void weft_group_cancel(weft_group *g)
{
    if (g == NULL)
        return;
    sync_lock(&g->lock);
    group_cancel_locked(g);
    sync_unlock(&g->lock);
    weft_cancel_cancel(g->tok);                /* wakes: outside ->lock */
}

WEFT_API weft_cancel *weft_group_token(weft_group *g)
{
    return g ? g->tok : NULL;
}

WEFT_API bool weft_group_is_cancelled(const weft_group *g)
{
    /* relaxed: a snapshot; nothing is read on the strength of it */
    return g && atomic_load_explicit(&g->cancelled, memory_order_relaxed);
}

WEFT_API size_t weft_group_live(const weft_group *g)
{
    /* relaxed: a snapshot */
    return g ? atomic_load_explicit(&g->live, memory_order_relaxed) : 0;
}

/* Block (a plain thread, ->lock held) until no child is live. On the thread
 * that cancels the runtime's remaining tasks at shutdown (a supervisor's
 * drop frees its group there), the children may be among the tasks that
 * thread has not cancelled yet: cancel them here instead of sleeping
 * (weft__runtime_help()). 0, or -EDEADLK when a child can only be dropped
 * after this wait returns (its drop is further up this thread's stack). */
static int wait_idle_locked(struct weft_group *g)
{
    int r;

    /* relaxed: ->lock held */
    while (atomic_load_explicit(&g->live, memory_order_relaxed) != 0) {
        sync_unlock(&g->lock);                 /* the drops take it */
        r = weft__runtime_help(g->rt);
        sync_lock(&g->lock);
        if (atomic_load_explicit(&g->live, memory_order_relaxed) == 0)
            break;
        if (r < 0)
            return r;
        if (r == 0)
            pthread_cond_wait(&g->idle, &g->lock);
    }
    return 0;
}

WEFT_API int weft_group_free(weft_group *g)
{
    weft_cancel *tok;
    bool pinned;
    int err;

    if (g == NULL)
        return -EINVAL;
    sync_lock(&g->lock);
    group_cancel_locked(g);
    /* relaxed: ->lock held */
    if (atomic_load_explicit(&g->live, memory_order_relaxed) != 0) {
        if (weft__task_driver != NULL && !weft__runtime_cancelling(g->rt)) {
            sync_unlock(&g->lock);             /* would block a worker */
            weft_cancel_cancel(g->tok);
            return -EINVAL;
        }
        err = wait_idle_locked(g);
        if (err < 0) {
            sync_unlock(&g->lock);
            weft_cancel_cancel(g->tok);
            return err;
        }
    }
    assert(waitq_empty(&g->q));
    tok = g->tok;
    pinned = g->pins != 0;             /* a drop or a join still inside: it releases */
    if (pinned)
        g->freed = true;
    sync_unlock(&g->lock);
    weft_cancel_cancel(tok);
    weft_cancel_drop(tok);
    if (!pinned)
        group_release(g);
    return 0;
}

/* The group's memory, once nothing uses it (weft_group_free(), or the last
 * unpin of group_wake_idle()). */
static void group_release(struct weft_group *g)
{
    pthread_cond_destroy(&g->idle);
    pthread_mutex_destroy(&g->lock);
    weft__free(g->slots);
    weft__free(g);
}

/* What a wait reports once no child is live. ->lock held. */
static int group_result(const struct weft_group *g)
{
    return g->first_err ? g->first_err : g->saw_cancel ? -ECANCELED : 0;
}

WEFT_API int weft_group_join(weft_group *g)
{
    int res;

    if (g == NULL || (weft__task_driver != NULL && !weft__runtime_cancelling(g->rt)))
        return -EINVAL;
    sync_lock(&g->lock);
    /* pinned while it waits (see group_wake_idle()): a free made on another
     * thread meanwhile leaves the memory to us */
    g->pins++;
    res = wait_idle_locked(g);
    if (res == 0)
        res = group_result(g);
    if (--g->pins == 0 && g->freed) {
        sync_unlock(&g->lock);
        group_release(g);
        return res;
    }
    sync_unlock(&g->lock);
    return res;
}

/* ---- Wait future -------------------------------------------------------------- */
WEFT_API void weft_group_wait_init(weft_group_wait *w, weft_group *g)
{
    if (w == NULL)
        return;
    w->g = g;
    w->result = 0;
    waiter_reset(&w->w);
}

WEFT_API weft_poll weft_group_wait_poll(weft_group_wait *w, weft_context *cx, int *result)
{
    struct weft_group *g;
    weft_waker old;

    if (w == NULL || result == NULL) {   /* misuse: -EINVAL if it can be told */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    g = w->g;
    if (g == NULL || weft__cx_bad(cx)) {
        *result = -EINVAL;
        return WEFT_READY;
    }
    if (w->w.owner == O_DONE) {
        *result = w->result;
        return WEFT_READY;
    }
    /* every fresh wait on a group with no live child is ready at once:
     * spend the budget (lock.h's rule), or a task waiting in a loop held
     * its worker */
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    sync_lock(&g->lock);
    /* relaxed: ->lock held */
    if (atomic_load_explicit(&g->live, memory_order_relaxed) != 0) {
        old = waitq_park(&g->q, &w->w, cx, false);
        sync_unlock(&g->lock);
        weft_waker_drop(&old);
        return WEFT_PENDING;
    }
    old = waitq_finish(&g->q, &w->w);
    w->result = group_result(g);
    sync_unlock(&g->lock);
    weft_waker_drop(&old);
    *result = w->result;
    return WEFT_READY;
}

WEFT_API void weft_group_wait_drop(weft_group_wait *w)
{
    weft_waker old;

    if (w == NULL || w->g == NULL)
        return;
    if (w->w.owner == O_PARKED) {
        sync_lock(&w->g->lock);
        old = waitq_finish(&w->g->q, &w->w);
        sync_unlock(&w->g->lock);
        weft_waker_drop(&old);
    }
    w->w.owner = O_DONE;
    w->g = NULL;
}

weft_runtime *weft__group_runtime(const weft_group *g)
{
    return g->rt;
}
