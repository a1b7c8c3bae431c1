/* SPDX-License-Identifier: MIT */
/* fd watches and one-shot timers run by one task per loop (weft/fdwatch.h).
 *
 * Each watch is a reactor source registered level-triggered with
 * EPOLLONESHOT: the reactor calls watch_notify() (under the source's lock)
 * once, the descriptor is then disarmed until the loop task has run the
 * callback and re-armed it with the current interest. That gives the
 * level-triggered semantics adapters expect without a flood of events
 * (except for a modify in between: see the invariant below).
 *
 * Locks: source lock -> loop lock (watch_notify); nothing takes them in the
 * other order: weft__io_close() is always called without the loop lock,
 * and re-arming (under the loop lock) takes no source lock.
 *
 * Who frees a watch (all under ->lock): remove marks it `removed`, closes
 * its source (after which no notify can come), waits for a callback of the
 * watch that is running on another thread to return (see below), then sets
 * `closed`. The watch is freed by whichever of remove and the loop task
 * finds it closed, not queued and not in a callback: remove right after
 * closing, or the task when it drops the watch from its queue or returns
 * from its callback (only when remove did not wait: it was called from that
 * callback). Timers: the same with `freed` and `in_cb`.
 *
 * Invariant: "in a callback" never implies "not queued": a modify that
 * re-arms a watch between the reactor's one-shot event and its notify
 * queues it again during its callback (hiredis does this: addWrite from a
 * timer callback or a task), so the callback's way out frees a removed
 * watch only when it is not queued (tests/net/fdwatch_lifetimes.c holds
 * that window open by interposing epoll_wait).
 *
 * Waiting for a running callback. The task runs a callback only after
 * checking `removed` (or `freed`) under ->lock and setting `in_cb` in the
 * same critical section, so once remove has set `removed`, the only
 * callback of that watch that can still run is one already running. Remove
 * waits on `cb_done` until it has returned, unless the caller is that very
 * callback's thread inside a callback of this loop (`in_callback`,
 * `cb_thread`): a callback removing its own watch, or another watch of its
 * loop (callbacks of one loop never overlap, so that watch is not running),
 * returns at once. So after remove returns, no callback of the watch is
 * running (except the caller itself) and none will start.
 *
 * Closed under the watch (the caller broke the rule: fdwatch.h asks for
 * remove before close). With epoll, the close takes the descriptor's entry
 * away, so no event comes after it; the io_uring poll instead holds the
 * file, and reports (1) the file's later events (a pipe's write end
 * closed: POLLHUP), when the ring took the poll before the close, and (2)
 * -EBADF, when it took the poll after the close. Nobody learns of the
 * close before a re-arm or a check fails, and with the spin's look at the
 * reactor (sched/worker.c) the ring takes a queued poll within
 * microseconds, so either can come between the user's close and its
 * modify (as it could before, with the caller preempted there or calling
 * from another thread). Both used to queue the watch, the modify then
 * answered 0 without looking at the descriptor (queued: the task
 * re-arms), and the callback ran once for the closed descriptor
 * (uring.net.fdwatch_audit8.modify_after_the_descriptor_was_closed_
 * fails_and_stays_silent failed ~1 run in 10 so). Invariant, both
 * backends (->lock): once a re-arm or check of the watch has failed,
 * `armed` is ARM_FAILED and `pending` is empty until a modify succeeds;
 * watch_notify() queues nothing while armed is ARM_FAILED, and whatever
 * completion of the poll armed before comes late is stale (a new arm
 * count, reactor.c). Hence:
 *   - (2) is no event: the reactor reports IO_GONE, and the watch takes
 *     it as a failed arm (ARM_FAILED, pending dropped);
 *   - a modify that changes the interest checks the descriptor also while
 *     an event waits (weft__io_check(): no arm; the task re-arms after
 *     delivering); if the check fails, the waiting event (1) is dropped.
 * A completion of a previous watch on the same number cannot reach a newer
 * one: its key holds the slot's generation and the arm count (reactor.h),
 * both checked in dispatch (tested with a reused descriptor number and
 * slot in every round of the audit test above). */
#include <stdbool.h>
#include <stdint.h>

#include "io/reactor.h"
#include "sched/runtime.h"
#include "util/alloc.h"
#include "util/list.h"
#include "weft/timer.h"
#include "weft/fdwatch.h"

#define CALLBACKS_PER_POLL 64
#define ARM_FAILED (~0u)              /* the last arm failed: nothing armed */

struct weft_loop {
    pthread_mutex_t lock;
    _Atomic unsigned refs;            /* the user's handle + the task */
    struct weft__reactor *r;          /* a reference: the loop may outlive the runtime */
    bool closing;                     /* ->lock */
    bool in_callback;                 /* ->lock: a callback is running, */
    pthread_t cb_thread;              /* ->lock: on this thread */
    unsigned waiters;                 /* ->lock: removers waiting on cb_done */
    pthread_cond_t cb_done;           /* a callback returned (->lock) */
    weft_waker task;                  /* ->lock: the loop task's waker */
    struct weft_fdwatch *qhead, *qtail; /* ->lock: watches with events to deliver */
    struct weft__list watches;        /* ->lock: every live watch */
    struct weft__list armed;          /* ->lock: armed timers by deadline */
    struct weft__list timers;         /* ->lock: every timer */
};

struct weft_fdwatch {
    struct weft_loop *loop;
    struct weft__io_source *src;
    uint32_t gen;
    int fd;
    unsigned events;                  /* ->loop->lock: interest */
    unsigned armed;                   /* ->loop->lock: interest of the last arm, ARM_FAILED */
    unsigned pending;                 /* ->loop->lock: ready, not delivered */
    bool queued, in_cb, removed, closed;   /* ->loop->lock */
    weft_fdwatch_fn fn;
    void *arg;
    struct weft_fdwatch *qnext;         /* ->loop->lock */
    struct weft__list node;           /* ->loop->lock: loop->watches */
};

struct weft_timer {
    struct weft_loop *loop;
    uint64_t deadline;                /* ->loop->lock */
    bool armed, in_cb, freed;         /* ->loop->lock */
    bool waited;                      /* ->loop->lock: a free waits for in_cb */
    weft_timer_fn fn;
    void *arg;
    struct weft__list anode;          /* ->loop->lock: loop->armed */
    struct weft__list node;           /* ->loop->lock: loop->timers */
};

static void loop_unref(struct weft_loop *l)
{
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1) {
        /* watches removed while queued, that the task never dequeued (it
         * stops at `closing` without draining): every watch is removed and
         * closed by now (weft_loop_free), so they are ours to free */
        while (l->qhead) {
            struct weft_fdwatch *w = l->qhead;

            l->qhead = w->qnext;
            weft__free(w);
        }
        weft__reactor_drop(l->r);
        pthread_cond_destroy(&l->cb_done);
        pthread_mutex_destroy(&l->lock);
        weft__free(l);
    }
}

/* ->lock held: a callback of this loop is running on the calling thread
 * (the caller is that callback, or something it called). */
static bool on_loop_callback(struct weft_loop *l)
{
    return l->in_callback && pthread_equal(l->cb_thread, pthread_self());
}

/* ->lock held: a callback is about to run / has returned. */
static void callback_enter(struct weft_loop *l)
{
    l->in_callback = true;
    l->cb_thread = pthread_self();
}

static void callback_leave(struct weft_loop *l)
{
    l->in_callback = false;
    if (l->waiters)
        pthread_cond_broadcast(&l->cb_done);
}

/* ->lock held: wait until *in_cb (a watch's or timer's) is clear, unless
 * the caller is a callback of this loop (then it is that callback, or the
 * flag is clear: callbacks of one loop never overlap). */
static void wait_callback(struct weft_loop *l, const bool *in_cb)
{
    if (on_loop_callback(l))
        return;
    while (*in_cb) {
        l->waiters++;
        pthread_cond_wait(&l->cb_done, &l->lock);
        l->waiters--;
    }
}

/* ->lock held: take a clone of the task's waker to wake after unlocking. */
static weft_waker task_waker(struct weft_loop *l)
{
    return weft_waker_clone(&l->task);
}

/* ---- the loop task ----------------------------------------------------------- */
typedef struct loop_task {
    struct weft_loop *l;
    weft_sleep sleep;
    uint64_t sleep_deadline;          /* 0: no sleep armed */
} loop_task;

static uint32_t io_events(unsigned events)
{
    return (events & WEFT_READABLE ? IO_READ : 0) | (events & WEFT_WRITABLE ? IO_WRITE : 0);
}

/* ->lock held. Deliver one queued watch's events; false if none queued. */
static bool run_one_watch(struct weft_loop *l)
{
    struct weft_fdwatch *w = l->qhead;
    unsigned ev;

    if (w == NULL)
        return false;
    l->qhead = w->qnext;
    if (l->qhead == NULL)
        l->qtail = NULL;
    w->qnext = NULL;
    w->queued = false;
    if (w->removed) {
        if (w->closed)
            weft__free(w);
        return true;
    }
    ev = w->pending & (w->events | WEFT_HANGUP);
    w->pending = 0;
    if (ev & WEFT_HANGUP)
        ev |= w->events;              /* a hang-up makes every wanted side ready */
    if (ev & (WEFT_READABLE | WEFT_WRITABLE)) {
        w->in_cb = true;              /* checked `removed` in this section */
        callback_enter(l);
        pthread_mutex_unlock(&l->lock);
        w->fn(w, w->fd, ev, w->arg);
        pthread_mutex_lock(&l->lock);
        w->in_cb = false;
        callback_leave(l);
        if (w->removed) {
            /* queued again meanwhile (the reactor delivered before the
             * callback removed it): the dequeue above frees it when it comes
             * to it; freeing it here left the queue pointing at freed
             * memory (ASan: use after free in the next delivery; glibc:
             * double free; seen with the hiredis adapter). How it gets
             * queued again although one-shot: a weft_fdwatch_modify() from
             * another thread between the reactor's event and watch_notify()
             * finds the watch neither queued nor in a callback and re-arms
             * it, so a second event follows the first (test:
             * fdwatch_remove.self_remove_after_requeue_by_modify_from_thread) */
            if (w->closed && !w->queued)
                weft__free(w);
            return true;
        }
    }
    if (w->armed == ARM_FAILED)
        ;                             /* a check failed meanwhile: silent until a modify succeeds */
    else if (w->events)
        w->armed = weft__io_rearm(w->src, w->fd, w->gen, io_events(w->events)) == 0 ? w->events
                                                                                   : ARM_FAILED;
    else
        w->armed = 0;                 /* nothing wanted: left disarmed */
    return true;
}

/* ->lock held. Fire the first timer if due; false if none is. */
static bool run_one_timer(struct weft_loop *l, uint64_t now)
{
    struct weft_timer *t;

    if (weft__list_empty(&l->armed))
        return false;
    t = weft__container_of(l->armed.next, struct weft_timer, anode);
    if (t->deadline > now)
        return false;
    weft__list_remove(&t->anode);
    t->armed = false;
    t->in_cb = true;                  /* a freed timer is never armed */
    callback_enter(l);
    pthread_mutex_unlock(&l->lock);
    t->fn(t, t->arg);
    pthread_mutex_lock(&l->lock);
    t->in_cb = false;
    callback_leave(l);
    if (t->freed && !t->waited)
        weft__free(t);
    return true;
}

static weft_poll loop_task_poll(loop_task *lt, weft_context *cx, void *out)
{
    struct weft_loop *l = lt->l;
    const weft_waker *mine = weft_context_waker(cx);
    weft_waker old = WEFT_WAKER_EMPTY;
    unsigned n = 0;

    (void)out;
    pthread_mutex_lock(&l->lock);
    if (!weft_waker_will_wake(&l->task, mine)) {
        old = l->task;
        l->task = weft_waker_clone(mine);
    }
    for (;;) {
        uint64_t next;

        if (l->closing) {
            pthread_mutex_unlock(&l->lock);
            weft_waker_drop(&old);
            return WEFT_READY;
        }
        if (n++ == CALLBACKS_PER_POLL) {
            /* let other tasks run; come back at once */
            pthread_mutex_unlock(&l->lock);
            weft_waker_drop(&old);
            weft_waker_wake_by_ref(mine);
            return WEFT_PENDING;
        }
        if (run_one_watch(l) || run_one_timer(l, weft_now_ms()))
            continue;
        next = weft__list_empty(&l->armed)
                   ? 0
                   : weft__container_of(l->armed.next, struct weft_timer, anode)->deadline;
        pthread_mutex_unlock(&l->lock);
        weft_waker_drop(&old);
        if (next == 0)
            return WEFT_PENDING;
        if (next != lt->sleep_deadline) {
            weft_sleep_drop(&lt->sleep);
            weft_sleep_until_init(&lt->sleep, next);
            lt->sleep_deadline = next;
        }
        if (weft_sleep_poll(&lt->sleep, cx) == WEFT_PENDING)
            return WEFT_PENDING;
        lt->sleep_deadline = 0;
        weft_sleep_drop(&lt->sleep);
        pthread_mutex_lock(&l->lock);
    }
}

static void loop_task_drop(loop_task *lt)
{
    struct weft_loop *l = lt->l;
    weft_waker w;

    if (lt->sleep_deadline)
        weft_sleep_drop(&lt->sleep);
    pthread_mutex_lock(&l->lock);
    w = l->task;
    l->task = WEFT_WAKER_EMPTY;
    pthread_mutex_unlock(&l->lock);
    weft_waker_drop(&w);
    loop_unref(l);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(loop_task, loop_task_poll, loop_task_drop);

/* ---- loops ---------------------------------------------------------------------- */
WEFT_API int weft_loop_new(weft_runtime *rt, weft_loop **out)
{
    struct weft_loop *l;
    loop_task lt = { 0 };
    int err;

    if (rt == NULL)
        rt = weft_runtime_current();
    if (rt == NULL || out == NULL)
        return -EINVAL;
    l = weft__calloc(1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    err = weft__io_reactor(weft__runtime_io(rt), &l->r);
    if (err) {
        weft__free(l);
        return err;
    }
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cb_done, NULL);
    atomic_init(&l->refs, 2);
    weft__list_init(&l->watches);
    weft__list_init(&l->armed);
    weft__list_init(&l->timers);
    lt.l = l;
    err = weft_spawn_detached(rt, &loop_task_future, &lt);
    if (err) {
        weft__reactor_drop(l->r);
        pthread_cond_destroy(&l->cb_done);
        pthread_mutex_destroy(&l->lock);
        weft__free(l);
        return err;
    }
    *out = l;
    return 0;
}

WEFT_API void weft_loop_free(weft_loop *l)
{
    weft_waker w;

    if (l == NULL)
        return;
    pthread_mutex_lock(&l->lock);
    l->closing = true;                /* no callback starts after this */
    /* Off the loop, wait for a running callback BEFORE removing anything:
     * the header promises that weft_loop_free() first waits for it, so the
     * callback may use any handle of the loop (modify another watch, arm or
     * free a timer) until it returns. Removing first freed those handles
     * under it (use after free). Invariant: once `closing` is set and
     * in_callback is clear, no callback of this loop runs or will start
     * (loop_task_poll checks `closing` under ->lock before each one), so
     * the removals below free nothing a callback holds. From a callback
     * of the loop this returns at once (the caller is the callback). */
    wait_callback(l, &l->in_callback);
    while (!weft__list_empty(&l->watches)) {
        struct weft_fdwatch *wt = weft__container_of(l->watches.next, struct weft_fdwatch, node);

        pthread_mutex_unlock(&l->lock);
        weft_fdwatch_remove(wt);
        pthread_mutex_lock(&l->lock);
    }
    while (!weft__list_empty(&l->timers)) {
        struct weft_timer *t = weft__container_of(l->timers.next, struct weft_timer, node);

        pthread_mutex_unlock(&l->lock);
        weft_timer_free(t);
        pthread_mutex_lock(&l->lock);
    }
    /* (off the loop no callback can be running here: waited above, and
     * `closing` keeps any other from starting; kept as a cheap check) */
    wait_callback(l, &l->in_callback);
    w = task_waker(l);
    pthread_mutex_unlock(&l->lock);
    weft_waker_wake(&w);
    loop_unref(l);
}

/* ---- watches ---------------------------------------------------------------------- */
/* The reactor's hook: under the source's lock (so after weft__io_close()
 * returns it runs no more). */
static void watch_notify(void *arg, uint32_t bits)
{
    struct weft_fdwatch *w = arg;
    struct weft_loop *l = w->loop;
    weft_waker wk = WEFT_WAKER_EMPTY;

    pthread_mutex_lock(&l->lock);
    if (bits & IO_GONE) {
        /* io_uring: the poll found the descriptor closed under the watch:
         * the arm failed (see "Closed under the watch" above); an event
         * still waiting came from the closed file */
        if (!w->removed) {
            w->armed = ARM_FAILED;
            w->pending = 0;
        }
        pthread_mutex_unlock(&l->lock);
        return;
    }
    /* armed == ARM_FAILED: the last re-arm failed (the descriptor was
     * closed under the watch): silent until a modify succeeds (fdwatch.h),
     * also for an event of the poll armed before it (io_uring).
     * events == 0: a silent watch (fdwatch.h) takes nothing, not even the
     * hang-up or error that the system reports whatever the interest: its
     * delivery would find nothing wanted anyway, unless a modify came
     * first, and then that modify could not report a descriptor closed
     * under the watch (it leaves a queued watch to the loop, and io_uring
     * reports the closed descriptor's hang-up: its poll holds the file),
     * and the callback ran for the closed descriptor. Nothing is lost:
     * readiness is level-triggered, and the modify that asks for it arms
     * the descriptor again, which reports what is ready then. */
    if (!w->removed && w->armed != ARM_FAILED && w->events != 0) {
        w->pending |= (bits & IO_READ ? WEFT_READABLE : 0) | (bits & IO_WRITE ? WEFT_WRITABLE : 0) |
                      (bits & (IO_HUP | IO_ERR) ? WEFT_HANGUP : 0);
        if (!w->queued) {
            w->queued = true;
            if (l->qtail)
                l->qtail->qnext = w;
            else
                l->qhead = w;
            l->qtail = w;
            wk = task_waker(l);
        }
    }
    pthread_mutex_unlock(&l->lock);
    weft_waker_wake(&wk);
}

WEFT_API int weft_fdwatch_add(weft_loop *l, int fd, unsigned events, weft_fdwatch_fn fn, void *arg,
                            weft_fdwatch **out)
{
    struct weft_fdwatch *w;
    int err;

    if (l == NULL || fd < 0 || fn == NULL || out == NULL ||
        (events & ~(unsigned)(WEFT_READABLE | WEFT_WRITABLE)))
        return -EINVAL;
    w = weft__calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->loop = l;
    w->fd = fd;
    w->events = events;
    w->armed = events;                /* by the registration below */
    w->fn = fn;
    w->arg = arg;
    pthread_mutex_lock(&l->lock);
    if (l->closing) {
        pthread_mutex_unlock(&l->lock);
        weft__free(w);
        return -EINVAL;
    }
    weft__list_push_back(&l->watches, &w->node);
    pthread_mutex_unlock(&l->lock);
    err = weft__io_register_hooked(l->r, fd, io_events(events), watch_notify, w, &w->src,
                                   &w->gen);
    if (err) {
        pthread_mutex_lock(&l->lock);
        weft__list_remove(&w->node);
        pthread_mutex_unlock(&l->lock);
        weft__free(w);
        return err;
    }
    *out = w;
    return 0;
}

WEFT_API int weft_fdwatch_modify(weft_fdwatch *w, unsigned events)
{
    struct weft_loop *l;
    int err = 0;

    if (w == NULL || (events & ~(unsigned)(WEFT_READABLE | WEFT_WRITABLE)))
        return -EINVAL;
    l = w->loop;
    pthread_mutex_lock(&l->lock);
    if (w->removed) {
        err = -EINVAL;
    } else {
        w->events = events;
        /* In a callback: the task re-arms when it returns. Else the watch
         * is armed with `armed` (or its event is on its way to
         * watch_notify, which queues it): the same interest again needs no
         * re-arm. Re-arming anyway cost a system call per call and, on
         * io_uring, replaced the armed poll each time, so that a thread
         * calling this in a loop kept every completion stale and the watch
         * never fired (net.fdwatch_remove.modify_in_a_loop_from_thread_
         * does_not_starve_the_watch). Queued (an event waits): the task
         * re-arms after delivering it, but the descriptor is checked now
         * (see "Closed under the watch" above). */
        if (!w->in_cb && events != w->armed) {
            if (!w->queued) {
                err = weft__io_rearm(w->src, w->fd, w->gen, io_events(events));
                w->armed = err == 0 ? events : ARM_FAILED;
            } else {
                err = weft__io_check(w->src, w->fd, w->gen);
                if (err) {
                    w->armed = ARM_FAILED;
                    w->pending = 0;   /* the closed file's: never delivered */
                } else if (w->armed == ARM_FAILED) {
                    w->armed = 0;     /* succeeded: the task arms after delivering */
                }
            }
        }
    }
    pthread_mutex_unlock(&l->lock);
    return err;
}

WEFT_API int weft_fdwatch_remove(weft_fdwatch *w)
{
    struct weft_loop *l;
    bool free_now;

    if (w == NULL)
        return -EINVAL;
    l = w->loop;
    pthread_mutex_lock(&l->lock);
    if (w->removed) {
        pthread_mutex_unlock(&l->lock);
        return -EINVAL;
    }
    /* A reference to the loop for the time of the call: the callback we may
     * wait for can free the loop (allowed from a callback), and the loop
     * task then ends; without it the task's last reference freed the loop,
     * its lock and cb_done under this wait. Taken under ->lock, while the
     * handle is valid (the loop has a reference: the user's or the task's). */
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    w->removed = true;                /* no callback starts after this */
    weft__list_remove(&w->node);
    pthread_mutex_unlock(&l->lock);
    weft__io_close(w->src, w->gen, true);     /* no notify after this */
    pthread_mutex_lock(&l->lock);
    /* a callback running elsewhere returns first (the task does not free
     * the watch meanwhile: it is not `closed` yet) */
    wait_callback(l, &w->in_cb);
    w->closed = true;
    free_now = !w->queued && !w->in_cb;
    pthread_mutex_unlock(&l->lock);
    if (free_now)
        weft__free(w);
    loop_unref(l);                    /* last: it may free a queued w (closed now) */
    return 0;
}

/* ---- timers ------------------------------------------------------------------------- */
WEFT_API int weft_timer_new(weft_loop *l, weft_timer_fn fn, void *arg, weft_timer **out)
{
    struct weft_timer *t;

    if (l == NULL || fn == NULL || out == NULL)
        return -EINVAL;
    t = weft__calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->loop = l;
    t->fn = fn;
    t->arg = arg;
    weft__list_init(&t->anode);
    pthread_mutex_lock(&l->lock);
    if (l->closing) {
        pthread_mutex_unlock(&l->lock);
        weft__free(t);
        return -EINVAL;
    }
    weft__list_push_back(&l->timers, &t->node);
    pthread_mutex_unlock(&l->lock);
    *out = t;
    return 0;
}

WEFT_API int weft_timer_arm(weft_timer *t, uint64_t ms)
{
    struct weft_loop *l;
    struct weft__list *pos;
    weft_waker wk = WEFT_WAKER_EMPTY;
    uint64_t now = weft_now_ms();

    if (t == NULL || ms > UINT64_MAX / 2)
        return -EINVAL;
    l = t->loop;
    pthread_mutex_lock(&l->lock);
    if (t->freed) {
        pthread_mutex_unlock(&l->lock);
        return -EINVAL;
    }
    if (t->armed)
        weft__list_remove(&t->anode);
    /* +1: weft_now_ms() rounds down, so "now + ms" could be reached up to
     * a millisecond early; the extra one keeps "never earlier than ms" */
    t->deadline = now + ms + (ms ? 1 : 0);
    /* sorted insert, from the back: timers are usually armed in order */
    for (pos = l->armed.prev; pos != &l->armed; pos = pos->prev)
        if (weft__container_of(pos, struct weft_timer, anode)->deadline <= t->deadline)
            break;
    t->anode.prev = pos;
    t->anode.next = pos->next;
    pos->next->prev = &t->anode;
    pos->next = &t->anode;
    t->armed = true;
    if (l->armed.next == &t->anode)
        wk = task_waker(l);           /* the earliest now: the task re-sleeps */
    pthread_mutex_unlock(&l->lock);
    weft_waker_wake(&wk);
    return 0;
}

WEFT_API int weft_timer_disarm(weft_timer *t)
{
    int err = 0;

    if (t == NULL)
        return -EINVAL;
    pthread_mutex_lock(&t->loop->lock);
    if (t->freed) {
        /* only reachable from the timer's own callback, which freed it (its
         * memory lives until the callback returns): -EINVAL, as every call
         * on such a handle (weft/fdwatch.h); a freed timer is never armed */
        err = -EINVAL;
    } else if (t->armed) {
        weft__list_remove(&t->anode);
        t->armed = false;
    }
    pthread_mutex_unlock(&t->loop->lock);
    return err;
}

WEFT_API void weft_timer_free(weft_timer *t)
{
    struct weft_loop *l;
    bool free_now;

    if (t == NULL)
        return;
    l = t->loop;
    pthread_mutex_lock(&l->lock);
    /* a reference for the call, as in weft_fdwatch_remove(): the callback
     * waited for may free the loop */
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    if (t->armed) {
        weft__list_remove(&t->anode);
        t->armed = false;
    }
    weft__list_remove(&t->node);
    t->freed = true;
    if (t->in_cb && !on_loop_callback(l)) {
        t->waited = true;             /* the task leaves the freeing to us */
        wait_callback(l, &t->in_cb);
    }
    free_now = !t->in_cb;
    pthread_mutex_unlock(&l->lock);
    if (free_now)
        weft__free(t);
    loop_unref(l);
}
