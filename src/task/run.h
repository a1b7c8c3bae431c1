/* SPDX-License-Identifier: MIT */
/* One task poll, inline (internal to the task layer and its scheduler).
 *
 * weft__task_run() (task.c) is this file's weft__task_run_inline() out of
 * line. The worker loop inlines the same function into its LIFO chain and
 * its common round (sched/worker.c: run_one()), so that an ordinary poll
 * costs no call into task.c and no second frame: a frame of six saved
 * registers, set up and torn down per poll, was ~16 of W4's ~690
 * instructions per message (callgrind). Only the common path is here; what
 * a poll rarely needs (completion, cancellation, the lints' reports, the
 * stress mode's coin, timing) stays in task.c behind weft__task_* calls.
 *
 * The protocol (state word, references, the lent reference, yield
 * entries) is described in task.h and task.c; nothing here changes it. */
#ifndef WEFT_TASK_RUN_H
#define WEFT_TASK_RUN_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "task/task.h"
#include "weft/observe.h"

/* ---- Observability: the trailer's per-poll part ------------------------------------
 * The task this thread is polling (NULL between polls), for WEFT_AWAIT's
 * park records and for spotting self-wakes (a wake of the polled task from
 * its own poll, on its own thread: the busy-loop lint). Thread-local: only
 * the polling thread reads or writes them. */
struct weft__task_pt {
    struct weft__task *cur;             /* NULL between polls */
    union {
        struct {
            bool parked;                /* weft__async_parked() ran this poll */
            bool self_woke;             /* cur woke itself this poll */
            bool lent;                  /* cur's running reference is a waker's */
        };
        uint32_t flags;                 /* all three, cleared with one store */
    };
};                                      /* one block: set up with two stores */

extern WEFT_TLS struct weft__task_pt weft__task_pt;

/* weft__async_parked() (task.c), inline for a hot caller (weft_co_yield):
 * record the site the polled task parks at, for the task dump. */
static inline __attribute__((always_inline)) void weft__task_parked(const weft_async_site *site)
{
    struct weft__task *t = weft__task_pt.cur;
    struct weft__task_dbg *d;

    if (t == NULL)
        return;
    d = weft__task_dbg(t);
    /* relaxed: the poller's own fields, read racily by the dump (each a
     * pointer to a constant: a torn pair shows two true sites) */
    if (!weft__task_pt.parked) {
        weft__task_pt.parked = true;
        atomic_store_explicit(&d->inner, site, memory_order_relaxed);
    }
    atomic_store_explicit(&d->site, site, memory_order_relaxed);
}

/* task.c: the rare steps of a poll, out of line */
__attribute__((noreturn, cold)) void weft__task_bad_queued(uint64_t state);
void weft__task_ref_inc(struct weft__task *t);
void weft__task_complete(struct weft__task *t, bool cancelled, uint64_t held);
void weft__task_cancel_running(struct weft__task *t, uint64_t held);
void weft__task_lint_once(struct weft__task *t, struct weft__task_dbg *d, int kind,
                          uint64_t value);
void weft__task_stress_begin(struct weft__task *t, struct weft__task_env *env);
void weft__task_poll_account(struct weft__task *t, struct weft__task_dbg *d,
                             struct weft__task_env *env, const struct weft__lint_cfg *cfg,
                             uint64_t t0);
void weft__task_busy_account(struct weft__task *t, struct weft__task_dbg *d,
                             const struct weft__lint_cfg *cfg, uint64_t polls);

#define BUSY_WINDOW 64          /* polls looked at by the busy-loop lint (task.c) */

/* The lint options in force (NULL: none), for the poller. */
static inline const struct weft__lint_cfg *lint_cfg(const struct weft__task_env *env)
{
    /* acquire: pairs with the release that published the options */
    return env && env->lint ? atomic_load_explicit(env->lint, memory_order_acquire) : NULL;
}

/* ---- Running --------------------------------------------------------------------- */
enum begin_action { BEGIN_POLL, BEGIN_CANCEL, BEGIN_DONE };

/* Take over a task popped from a run queue (its entry's reference). */
static inline __attribute__((always_inline)) enum begin_action begin_poll(struct weft__task *t)
{
    uint64_t cur, next;

    /* relaxed: a yield entry's RUNNING came to us through the queue (our
     * pop's acquire), and an ordinary entry's idle -> NOTIFIED edge did the
     * same; nobody else sets RUNNING meanwhile ("Yield entries", task.h) */
    cur = atomic_load_explicit(&t->state, memory_order_relaxed);
    if (cur & TASK_RUNNING) {
        /* A yield entry: the last poll's ownership came with it; no CAS.
         * A CANCELLED set since (an abort that saw RUNNING and left the
         * rest to the poller) is ours to act on. */
        struct weft__task_dbg *d = weft__task_dbg(t);
        uint8_t q = atomic_load_explicit(&d->yield_queued, memory_order_relaxed);

        atomic_store_explicit(&d->yield_queued, 0, memory_order_relaxed);
        if (q == YQ_YIELD)
            return (cur & TASK_CANCELLED) ? BEGIN_CANCEL : BEGIN_POLL;
        if (q != YQ_WOKEN) {
            weft__task_bad_queued(cur);
        }
        if (cur & TASK_NOTIFIED) {
            /* Woken again since a local wake handed it over: this poll
             * covers that wake, as it would have had begin_poll()'s CAS
             * cleared NOTIFIED ("Local wakes", task.h). acquire: pairs
             * with the late waker's release RMW */
            while (!atomic_compare_exchange_weak_explicit(&t->state, &cur, cur & ~TASK_NOTIFIED,
                                                          memory_order_acquire,
                                                          memory_order_relaxed))
                ;
        }
        return (cur & TASK_CANCELLED) ? BEGIN_CANCEL : BEGIN_POLL;
    }
    do {
        if (cur & TASK_COMPLETE)
            return BEGIN_DONE;             /* cancelled at shutdown */
        /* a queue entry exists only for a NOTIFIED, idle task */
        if (!(cur & TASK_NOTIFIED)) {
            weft__task_bad_queued(cur);
        }
        next = (cur | TASK_RUNNING) & ~TASK_NOTIFIED;
    } while (!atomic_compare_exchange_weak_explicit(
        &t->state, &cur, next,
        memory_order_acquire,  /* pairs: release in transition_to_notified()
                                * and in end_poll() of the previous poll */
        memory_order_relaxed));
    return (cur & TASK_CANCELLED) ? BEGIN_CANCEL : BEGIN_POLL;
}

enum end_action { END_IDLE, END_IDLE_LOST, END_REQUEUE, END_CANCEL };

/* The references a task holds on itself while idle: the books' and, while
 * JOIN_INTEREST, the join handle's. An idle task with no more has no waker
 * anywhere: nothing can wake it again (the lost-waker lint). */
static inline uint64_t own_refs(uint64_t state)
{
    return 1 + ((state & TASK_JOIN_INTEREST) ? 1 : 0);
}

/* Is the lost-waker lint on for this task (on, and not reported for it
 * yet)? Asked by end_poll() only when the references show that nobody
 * else holds one, so that a poll that parks with its waker stored (every
 * correct one) does not load the lint options at all: they were ~13 of a
 * poll's ~135 instructions (W4, callgrind). */
static const struct weft__lint_cfg *lint_cfg(const struct weft__task_env *env);

static inline bool lost_waker_armed(const struct weft__task_env *env, const struct weft__task_dbg *d)
{
    const struct weft__lint_cfg *cfg = lint_cfg(env);

    return cfg && (cfg->mask & (1u << WEFT_LINT_LOST_WAKER)) &&
           !(d->linted & (1u << WEFT_LINT_LOST_WAKER));
}

/* Look for a lost waker (lost_waker_armed(env, d)). On END_IDLE_LOST the
 * running reference is kept (the caller reports, then drops it): the cell
 * cannot go away under the report even if an abort completes the task at
 * once. `lent`: the running reference was lent to a waker ("The lent
 * reference"): nothing to drop, and a requeue or a report takes a
 * reference in the same CAS. */
static inline __attribute__((always_inline)) enum end_action end_poll(struct weft__task *t,
                                                                       const struct weft__task_env *env,
                                                                       const struct weft__task_dbg *d,
                                                                       bool lent)
{
    uint64_t mine = lent ? 0 : TASK_REF_ONE;   /* what we hold besides the books */
    uint64_t cur, next;
    enum end_action act;

    cur = atomic_load_explicit(&t->state, memory_order_relaxed);
    for (;;) {
        if (cur & TASK_CANCELLED)
            return END_CANCEL;             /* stay RUNNING: we drop it now */
        next = cur & ~TASK_RUNNING;
        if (cur & TASK_NOTIFIED) {
            act = END_REQUEUE;             /* our reference becomes the queue's */
            next += TASK_REF_ONE - mine;
        } else if (TASK_REFS(cur) == own_refs(cur) + mine / TASK_REF_ONE &&
                   lost_waker_armed(env, d)) {
            /* the references first: the options are read only when they
             * could matter (a retry reads them again: same answer, as the
             * report is made by this poller alone) */
            act = END_IDLE_LOST;           /* keep ours for the report */
            next += TASK_REF_ONE - mine;
        } else {
            act = END_IDLE;
            next -= mine;                  /* books hold one: never the last */
        }
        if (atomic_compare_exchange_weak_explicit(
                &t->state, &cur, next,
                memory_order_acq_rel,  /* release: the future, for the next
                                        * poll's acquire; acquire: the waker's
                                        * release that set NOTIFIED */
                memory_order_relaxed))
            return act;
    }
}

/* weft__task_run() in two halves around the poll, for a worker that makes
 * the poll itself (a stackful future resumed in the worker's own frame:
 * weft__task_run_stackful(), task/stackful.h). Inlined into both, so
 * neither pays anything for the split. */
static inline __attribute__((always_inline)) bool run_begin(struct weft__task *t,
                                                            struct weft__task_env *env,
                                                            struct weft__task_poll *p)
{
    struct weft__task_dbg *d;
    uint64_t t0, polls;
    bool timed;

    switch (begin_poll(t)) {
    case BEGIN_POLL:
        break;
    case BEGIN_CANCEL:
        weft__task_cancel_running(t, 1);
        return false;
    case BEGIN_DONE:
        weft__task_ref_dec(t);
        return false;
    }
    d = weft__task_dbg(t);
    /* relaxed: the poller's own fields (RUNNING), read racily by the dump */
    polls = atomic_load_explicit(&d->polls, memory_order_relaxed) + 1;
    atomic_store_explicit(&d->polls, polls, memory_order_relaxed);
    env->budget = WEFT_COOP_BUDGET;
    env->yielded = false;
    env->poll_waker.data = t;         /* borrowed: no reference */
    if (env->stress) {
        env->budget = INT_MIN + WEFT_COOP_BUDGET;   /* biased: task.h */
        weft__task_stress_begin(t, env);
    }
    /* relaxed: a switch; a poll more or less timed does not matter */
    timed = atomic_load_explicit(env->timing, memory_order_relaxed);
    if (timed)
        t0 = env->poll_end_ns ? env->poll_end_ns : weft__task_clock_ns();
    else
        t0 = env->now_ns;             /* the worker's last clock reading */
    atomic_store_explicit(&d->poll_ns, t0, memory_order_relaxed);
    atomic_store_explicit(&d->worker, env->worker, memory_order_relaxed);
    /* release, the id: a watcher that reads it (acquire) sees the name
     * stored before it (plain stores on x86) */
    atomic_store_explicit(&env->cur_name, weft__task_display_name(t), memory_order_relaxed);
    atomic_store_explicit(&env->cur_id, d->id, memory_order_release);
    weft__task_pt.cur = t;
    weft__task_pt.flags = 0;                     /* parked, self_woke, lent */
    p->d = d;
    p->polls = polls;
    p->t0 = t0;
    p->timed = timed;
    return true;
}

static inline __attribute__((always_inline)) bool run_end(struct weft__task *t,
                                                          struct weft__task_env *env,
                                                          const struct weft__task_poll *p,
                                                          weft_poll r)
{
    struct weft__task_dbg *d = p->d;
    uint64_t polls = p->polls;
    bool lent;

    weft__task_pt.cur = NULL;                    /* no more lending: the drop below clones as usual */
    lent = weft__task_pt.lent;
    atomic_store_explicit(&env->cur_id, 0, memory_order_relaxed);
    /* the lint options are loaded only where a lint may look (not on the
     * common yield or idle path) */
    if (p->timed)
        weft__task_poll_account(t, d, env, lint_cfg(env), p->t0);
    if (weft__task_pt.self_woke || polls % BUSY_WINDOW == 0)
        weft__task_busy_account(t, d, lint_cfg(env), polls);
    if (r == WEFT_READY) {
        if (t->type->drop)
            t->type->drop(weft__task_future(t));
        weft__task_complete(t, false, !lent);
        return false;
    }
    if (!weft__task_pt.parked) {
        /* parked outside WEFT_AWAIT: no site to show */
        atomic_store_explicit(&d->site, NULL, memory_order_relaxed);
        atomic_store_explicit(&d->inner, NULL, memory_order_relaxed);
    }
    if (env->yielded) {
        /* yield_now or the budget: to the back as a yield entry, still
         * RUNNING, with no atomic RMW ("Yield entries", task.h); an abort
         * meanwhile is acted on when the entry is popped */
        if (lent)
            weft__task_ref_inc(t);                    /* the entry's reference */
        atomic_store_explicit(&d->yield_queued, YQ_YIELD, memory_order_relaxed);
        return true;
    }
    switch (end_poll(t, env, d, lent)) {
    case END_IDLE:
        break;
    case END_IDLE_LOST:
        /* idle with our reference kept: nobody can wake it, but an abort
         * may complete it meanwhile; the report is made under our ref */
        weft__task_lint_once(t, d, WEFT_LINT_LOST_WAKER, 0);
        weft__task_ref_dec(t);
        break;
    case END_REQUEUE:
        return true;                       /* woken during its own poll */
    case END_CANCEL:
        weft__task_cancel_running(t, !lent);
        break;
    }
    return false;
}

/* Poll t once (its run-queue entry's reference): true when it must be
 * queued again (yielded, or woken during its poll), false otherwise. */
static inline __attribute__((always_inline)) bool weft__task_run_inline(struct weft__task *t,
                                                                         struct weft__task_env *env)
{
    struct weft__task_poll p;
    weft_poll r;

    if (!run_begin(t, env, &p))
        return false;
    r = t->type->poll(weft__task_future(t), &env->poll_cx, weft__task_output(t));
    return run_end(t, env, &p, r);
}

#endif
