/* SPDX-License-Identifier: MIT */
/* Task cells and the state word (internal).
 *
 * A task is one allocation, the cell:
 *
 *     struct weft__task (64 bytes) | future (type->size) | output (type->output_size)
 *
 * The output does not overlay the future: poll() writes the output while the
 * future is still alive and may still read its own fields.
 *
 * The task layer knows nothing of run queues: the scheduler that owns a task
 * is reached through the small vtable in struct weft__sched. */
#ifndef WEFT_TASK_TASK_H
#define WEFT_TASK_TASK_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/list.h"

/* Thread-locals: initial-exec, so that reaching them from the shared
 * library costs one load, not a call to __tls_get_addr. */
#if defined(__GNUC__)
#define WEFT_TLS _Thread_local __attribute__((tls_model("initial-exec")))
#else
#define WEFT_TLS _Thread_local
#endif
#include "weft/core.h"
#include "weft/task.h"

struct weft__task;

/* A thread blocked in weft_join_wait(), as its task's scheduler sees it. */
struct weft__blocked {
    struct weft__list link;             /* the scheduler's (its lock) */
    weft_waker stop;                    /* wakes the blocked thread: give up */
    bool listed;                        /* the scheduler's */
};

/* What a task needs from its scheduler. Each is called without any task
 * lock held, on any thread. */
struct weft__sched_ops {
    /* Put `t` on a run queue. The caller hands over one reference (the
     * queue's); a scheduler that cannot queue it (shut down) drops it.
     * `yield` says the task asked to go to the back (yield_now). */
    void (*schedule)(void *sched, struct weft__task *t, bool yield);
    /* `t` has just completed (normally or cancelled). */
    void (*completed)(void *sched, struct weft__task *t, bool cancelled);
    /* A lint fired for `t` (RUNNING, or its reference held): report it.
     * `kind` is a weft_lint_kind, `value` as weft_lint. */
    void (*lint)(void *sched, struct weft__task *t, int kind, uint64_t value);
    /* `t` is about to be freed: unlink it from the scheduler's books and
     * free its memory. */
    void (*release)(void *sched, struct weft__task *t);
    /* A plain thread is about to block in weft_join_wait() until `t`
     * completes. Returns
     *   0    block: until unblock(), the scheduler may wake b->stop (from
     *        any thread) when `t` can no longer complete while the thread
     *        waits (no thread left to run it); the waiter then gives up
     *        with -EDEADLK unless `t` completed meanwhile;
     *   1    the scheduler did some work on this thread instead (`t` may
     *        have completed): look again;
     *   < 0  `t` cannot complete while this thread blocks: -EDEADLK. */
    int (*block)(void *sched, struct weft__task *t, struct weft__blocked *b);
    /* The thread that block() let block is done waiting: forget `b`. */
    void (*unblock)(void *sched, struct weft__blocked *b);
    /* True when the calling thread is the one cancelling this scheduler's
     * tasks at its shutdown (it runs their drops). A drop run there may
     * wait for a sibling even when the thread is a worker of ANOTHER
     * runtime (a task that shut this one down): block() then helps
     * instead of sleeping, so the worker rule (-EINVAL) does not apply. */
    bool (*cancelling)(void *sched);
};

struct weft__sched {
    const struct weft__sched_ops *ops;
    /* Who runs this scheduler's tasks: a thread whose weft__task_domain
     * equals it queues a task it wakes in its own LIFO slot (schedule()
     * with yield false takes it there), so the wake may hand the task over
     * already RUNNING ("Local wakes" below). NULL: never. */
    const void *domain;
};

/* The domain (struct weft__sched.domain) of the scheduler this thread
 * works for, NULL on other threads: set by the scheduler when the thread
 * starts running its tasks (a worker, a current-thread driver) and cleared
 * when it stops. Only that thread reads or writes it. */
extern WEFT_TLS const void *weft__task_domain;

/* ---- The state word ---------------------------------------------------------
 *
 *   bit 0  RUNNING        a thread owns the future (polling or dropping it),
 *                         or a yield entry on a run queue does (see below)
 *   bit 1  NOTIFIED       woken since the last poll began; if the task is not
 *                         RUNNING, exactly one run queue entry exists for it
 *   bit 2  COMPLETE       output (or cancellation) published; future dropped
 *   bit 3  CANCELLED      abort requested; with COMPLETE: ended by cancellation
 *   bit 4  JOIN_INTEREST  a join handle exists and may read the output
 *   bit 5  JOIN_WAKER     join_waker is set and belongs to the runtime until
 *                         COMPLETE; clear: it belongs to the join handle
 *   bits 6..63            reference count
 *
 * References are held by: the scheduler's books (from spawn until COMPLETE),
 * each run queue entry (NOTIFIED && !RUNNING), the running thread (taken
 * over from the queue entry; lent to the first clone of the task's own
 * waker made during the poll: task.c, "The lent reference"), the join
 * handle, and every task waker. The last reference frees the cell.
 *
 * Every transition is one CAS loop or one fetch-op; see task.c for the
 * two-column drawings of the races.
 *
 * Yield entries. A poll that asked to go to the back (yield_now, the coop
 * budget: env->yielded) ends without touching the state word: the task
 * stays RUNNING, and the running thread's reference and its ownership of
 * the future travel with a queue entry (weft__task_run() returns true, the
 * caller pushes it; the trailer's `yield_queued` says so, for the dump).
 * The thread that pops the entry owns the task as the poller did (the
 * queue's release/acquire orders the last poll's writes before the next)
 * and polls it without a begin-poll CAS. That saves two atomic RMWs per
 * yield (half of W3's cost). Meanwhile:
 *   - a wake sees RUNNING: it only sets NOTIFIED (no second entry); the
 *     next poll's end_poll() sees it and requeues the task once more (the
 *     waker's writes reach that later poll through end_poll's acquire);
 *   - an abort sees RUNNING: it only sets CANCELLED; the popper checks it
 *     before polling, and cancels instead;
 *   - a popped entry is a yield entry exactly when the state has RUNNING:
 *     an ordinary entry is queued on the idle -> NOTIFIED edge, and no one
 *     sets RUNNING but its popper; a yield entry (or a locally woken one,
 *     below) has RUNNING set by the thread that pushes it (the pusher's
 *     writes, RUNNING included, reach the popper through the queue);
 *   - whoever drops an entry without running it (shutdown, a closed inject
 *     queue) calls weft__task_drop_entry(), which first ends the yield as
 *     the poll would have (clear RUNNING, set NOTIFIED).
 *
 * Local wakes (issue 13). A wake of an idle task made on a thread that
 * queues it in its own LIFO slot (t->sched->domain == weft__task_domain: a
 * worker of the task's runtime, in a poll or driving its timers) hands the
 * task over RUNNING in one CAS (idle -> RUNNING, no NOTIFIED) and queues it
 * as a yield entry (yield_queued = YQ_WOKEN, stored by the waker, which
 * owns the future from its CAS on). The popper then polls it without the
 * begin-poll CAS: one atomic RMW fewer per message in a ping-pong (W4),
 * where the wake's CAS and the begin-poll's used to follow each other on
 * one core. The CAS's acquire takes the future over from the last
 * end_poll() (release), as begin_poll() would have, and the slot's
 * release/acquire (or program order, when the waker's own worker pops it)
 * carries that to the popper with the waker's writes. Everything said
 * above of yield entries holds (RUNNING is set before the push, by the
 * thread that pushes): an abort sets CANCELLED (the popper cancels), the
 * watcher may steal the entry from the slot (ownership travels with it),
 * shutdown drops it with weft__task_drop_entry(). One difference keeps
 * duplicate wakes coalesced as they were (woken any number of times before
 * its poll begins, a task is polled once): a wake meanwhile sees RUNNING
 * and sets NOTIFIED, and the popper of a YQ_WOKEN entry that finds
 * NOTIFIED set clears it with an acquire CAS (the late waker's writes are
 * seen by this poll) instead of leaving it for a requeue after the poll. A
 * wake after that CAS (or after the popper's first look) requeues the task
 * once more, as a wake after begin_poll()'s CAS always did. Between the
 * CAS and the yield_queued store (a few instructions) the dump shows the
 * task as running: the waker's thread owns its future then, as RUNNING
 * says. */
#define TASK_RUNNING        ((uint64_t)1 << 0)
#define TASK_NOTIFIED       ((uint64_t)1 << 1)
#define TASK_COMPLETE       ((uint64_t)1 << 2)
#define TASK_CANCELLED      ((uint64_t)1 << 3)
#define TASK_JOIN_INTEREST  ((uint64_t)1 << 4)
#define TASK_JOIN_WAKER     ((uint64_t)1 << 5)
/* WEFT_STRESS only: a budget check of the task's last poll was refused, so
 * the first check of its next poll passes (each leaf PENDING once, not a
 * run of refusals). Set and cleared by the poller alone (RUNNING). */
#define TASK_STRESS_PASS    ((uint64_t)1 << 6)
#define TASK_REF_SHIFT      7
#define TASK_REF_ONE        ((uint64_t)1 << TASK_REF_SHIFT)
#define TASK_FLAGS_MASK     (TASK_REF_ONE - 1)
#define TASK_REFS(s)        ((s) >> TASK_REF_SHIFT)

struct weft__task {
    /* hot: touched on every wake and poll */
    _Atomic uint64_t state;
    const weft_future_type *type;
    struct weft__sched *sched;
    struct weft__task *next;            /* run queue link; owned by the queue */
    /* cold */
    struct weft__list owned;            /* the scheduler's books; its lock */
    weft_waker join_waker;              /* see TASK_JOIN_WAKER */
};

_Static_assert(sizeof(struct weft__task) <= 64, "task header fits a cache line");

/* Non-NULL while this thread runs tasks (a worker, or a thread inside a
 * current-thread runtime's run/block_on); the scheduler sets it. Blocking
 * calls refuse to run there. */
extern WEFT_TLS void *weft__task_driver;

/* Validate a future type: 0 or -EINVAL. A wrapper type (named
 * weft__wrapper_name: a group's child, holding a future and its output of
 * up to WEFT_FUTURE_MAX_SIZE each, rounded up to a size class) may be up to
 * WEFT__WRAPPER_MAX_SIZE. */
int weft__future_type_check(const weft_future_type *type);
#define WEFT__WRAPPER_MAX_SIZE (4 * WEFT_FUTURE_MAX_SIZE)

/* Cell layout for a checked type: bytes and alignment of the allocation. */
static inline size_t weft__round_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

/* ---- The debug trailer --------------------------------------------------------
 * What the task dump and the lints know of a task (weft/observe.h), right
 * after the header, before the future: at a constant offset, so that a poll
 * reaches it without computing the cell's layout from the type (that cost
 * 20 instructions per poll with the trailer after the output), and the
 * header's cache line stays as it was.
 *   id, spawned_ns   written before the cell is linked into the books, under
 *                    the shard's lock: read under that lock by the dump
 *   polls .. worker  written by the thread polling the task (RUNNING), with
 *                    relaxed stores; read racily (relaxed) by the dump
 *   self_wakes,      the poller's alone (RUNNING; begin_poll()'s acquire
 *   linted           orders one poller's writes before the next's)
 *   yield_queued     non-zero while a yield entry for the task is queued
 *                    (YQ_YIELD: the poll yielded; YQ_WOKEN: a local wake
 *                    handed the task over RUNNING): set by the poller (the
 *                    local waker) before the push, cleared by the popper
 *                    (relaxed; read racily by the dump, which shows such a
 *                    task as scheduled, not running)
 *   sched_mem        the cell allocator's (kept across weft__task_init()) */
struct weft__task_dbg {
    uint64_t id;
    uint64_t spawned_ns;
    _Atomic uint64_t polls;
    _Atomic uint64_t poll_ns;               /* start of the last poll */
    _Atomic(const weft_async_site *) site;  /* outermost await parked at */
    _Atomic(const weft_async_site *) inner; /* innermost */
    _Atomic int32_t worker;                 /* -1: never on a worker */
    uint8_t self_wakes;                     /* in the current window */
    uint8_t linted;                         /* 1 << WEFT_LINT_*: reported */
    _Atomic uint8_t yield_queued;
    /* Not the task's: the scheduler's note of where the cell's memory came
     * from (src/sched/cells.c: 1, carved from a block it owns; 0, one
     * allocation of its own). Written by the cell allocator before
     * weft__task_init(), which leaves it alone, and read when the cell is
     * recycled or freed: by whoever owns the free cell. */
    uint8_t sched_mem;
};

/* yield_queued's values (0: no yield entry queued) */
#define YQ_YIELD 1
#define YQ_WOKEN 2

_Static_assert(sizeof(struct weft__task_dbg) == 56, "the trailer's size, as documented");

/* The cell: header (64 bytes), trailer (56), the future (aligned), the
 * output (aligned). */
static inline size_t weft__task_future_offset(const weft_future_type *ty)
{
    return weft__round_up(sizeof(struct weft__task) + sizeof(struct weft__task_dbg), ty->align);
}

static inline size_t weft__task_output_offset(const weft_future_type *ty)
{
    return weft__round_up(weft__task_future_offset(ty) + ty->size, ty->output_align);
}

static inline size_t weft__task_cell_size(const weft_future_type *ty)
{
    return weft__task_output_offset(ty) + ty->output_size;
}

static inline struct weft__task_dbg *weft__task_dbg(struct weft__task *t)
{
    return (struct weft__task_dbg *)(void *)(t + 1);
}

/* Nanoseconds on CLOCK_MONOTONIC (the task layer's own: it sits below the
 * time layer). */
uint64_t weft__task_clock_ns(void);
/* Wake cx's waker to be polled again soon (a yield the library makes on
 * the task's behalf: a channel slot being freed, a combinator's budget):
 * not counted as the task waking itself by the busy-loop lint. */
struct weft__task_env;
void weft__task_wake_soon(weft_context *cx);
/* The worker is about to park: note its involuntary context switches for
 * the long-poll lint (one getrusage(); parking makes system calls anyway). */
void weft__task_env_mark(struct weft__task_env *env);

static inline size_t weft__task_cell_align(const weft_future_type *ty)
{
    size_t a = ty->align > ty->output_align ? ty->align : ty->output_align;

    return a > _Alignof(struct weft__task) ? a : _Alignof(struct weft__task);
}

/* Set up a task in `cell` (weft__task_cell_size() bytes, aligned), copy
 * `init` in, and set the state for a task about to be queued: NOTIFIED,
 * references for the scheduler's books and the queue entry (and the join
 * handle when `join`). The type must have passed weft__future_type_check(). */
struct weft__task *weft__task_init(void *cell, const weft_future_type *type, const void *init,
                                   struct weft__sched *sched, bool join);
/* Set the trailer's id and spawn time: before the task is published (the
 * books' lock orders these for the dump). */
static inline void weft__task_set_id(struct weft__task *t, uint64_t id, uint64_t spawned_ns)
{
    struct weft__task_dbg *d = weft__task_dbg(t);

    d->id = id;
    d->spawned_ns = spawned_ns;
}

#define WEFT_HIST_BUCKETS_ 20      /* WEFT_HIST_BUCKETS of weft/observe.h */

/* Bucket of a duration in the log2 histograms of weft/observe.h. */
static inline unsigned weft__hist_bucket(uint64_t ns)
{
    unsigned b;

    if (ns < 1024)
        return 0;
    b = 63u - (unsigned)__builtin_clzll(ns) - 9u;   /* 2^10 .. : 1 .. */
    return b < WEFT_HIST_BUCKETS_ - 1 ? b : WEFT_HIST_BUCKETS_ - 1;
}

struct weft_lint;

/* The lint options a runtime's workers read (weft_lint_options, checked). */
struct weft__lint_cfg {
    unsigned mask;             /* 1 << WEFT_LINT_*; 0: none */
    uint64_t long_poll_ns;
    void (*hook)(const struct weft_lint *lint, void *arg);   /* weft_lint_fn */
    void *arg;
    struct weft__lint_cfg *older;   /* kept until the runtime is freed */
};

/* What a worker lends the tasks it polls (reached through weft_context's
 * private pointer): the cooperative budget of the current poll, the yield
 * request of the current poll (yield_now and the budget set it instead of
 * waking the task: the worker requeues it at the back, saving an atomic
 * operation), and the count of polls cut short by the budget. Written by
 * the owning thread only. */
#define WEFT_COOP_BUDGET 128
struct weft__task_env {
    /* The units left in this poll; while `stress` is on, INT_MIN plus them
     * (negative), so that the inline checks, which test budget > 0, leave
     * every check of the stress mode to weft_coop_proceed() without a test
     * of `stress` of their own. Invariant (every write keeps it): budget < 0
     * exactly while stress is on. weft__coop_units() reads the units. */
    int budget;
    bool yielded;              /* the poll asked to go to the back */
    const weft_waker *waker;   /* the polled task's own waker: &poll_waker */
    /* The waker and context every poll on this env gets (borrowed: no
     * reference): set up once by weft__task_env_init(); each poll only
     * points poll_waker at its task (no poll nests inside another on one
     * env: block_on refuses to run on a worker). */
    weft_waker poll_waker;
    weft_context poll_cx;
    void *time;                /* the runtime's timers (struct weft__time) */
    _Atomic uint64_t forced_yields;
    /* observability (weft/observe.h); owner writes (relaxed), anyone reads */
    int worker;                /* index for the trailer; -1: not a worker */
    /* the task being polled, for the stall lint of another worker (which
     * must not touch the task: it may end and be freed meanwhile): its id
     * (0 between polls) and name; stored name first, then id, at each
     * poll's start, id 0 at its end */
    _Atomic uint64_t cur_id;
    _Atomic(const char *) cur_name;
    /* Poll timing (weft_runtime_set_poll_timing()): the runtime's switch,
     * read (relaxed) once per poll; never NULL in an env. Reading the clock twice per
     * poll is what it costs (about 250 ns per read on a VM that traps
     * rdtsc), so it is off unless asked for. */
    const _Atomic bool *timing;
    /* owner only: the clock as this worker last read it: refreshed every
     * GLOBAL_INTERVAL polls, when it wakes or stops spinning, and after
     * every poll while timing; what the trailer's spawn and poll times are
     * taken from (no clock read per poll or per spawn) */
    uint64_t now_ns;
    /* owner only, while timing: when the last poll ended, if the worker has
     * done nothing but pick the next task since (a clock read saved per
     * poll: the next poll starts then); 0 after anything longer (a park, a
     * spin, driving timers or I/O), and the next poll reads the clock */
    uint64_t poll_end_ns;
    /* owner only: the thread's involuntary context switches when it last
     * parked (weft__task_env_mark()): a long poll during which the count
     * grew may have been preempted, not blocked, and is not reported */
    long nivcsw_mark;
    _Atomic uint64_t poll_time_ns;    /* total time inside polls */
    _Atomic uint64_t poll_hist[WEFT_HIST_BUCKETS_];
    /* lints: the runtime's options (the scheduler keeps them alive for the
     * runtime's life; acquire load pairs with the release that set it) */
    _Atomic(const struct weft__lint_cfg *) *lint;
    /* WEFT_STRESS=1 (read at runtime creation): every other budget check
     * fails (each poll starts on a coin toss), so every leaf operation
     * returns PENDING once before it completes and each await's resume
     * path runs (Lua's HARDSTACKTESTS) */
    bool stress;
    bool stress_flip;
};

/* Set up the parts of a new env (zeroed by its owner) that the task layer
 * owns: its poll waker and context. */
void weft__task_env_init(struct weft__task_env *env);

/* The cooperative budget, for combinators (weft/group.h, weft/timer.h).
 *
 * weft__coop_grant_begin()/_end() go around one poll of a combinator's child:
 * between them the child sees a budget of its own, WEFT_COOP_BUDGET, and _end
 * charges what it used to the poll's budget (down to 0, never below). A leaf
 * spends a unit to look even when it then returns PENDING, so without this a
 * combinator's children past the budget would return PENDING unseen on every
 * poll (a select over 200 receives whose only ready one is at index 150
 * spins for ever). The work stays bounded: one child poll does at most
 * WEFT_COOP_BUDGET operations. `strict` also suspends WEFT_STRESS's
 * refusals, for a poll whose answer must be real (a timeout's inner future
 * at its deadline). No-ops when polled by hand. Thread: the one polling. */
struct weft__coop_grant {
    unsigned budget;
    bool stress;
};
void weft__coop_grant_begin(weft_context *cx, struct weft__coop_grant *g, bool strict);
void weft__coop_grant_end(weft_context *cx, const struct weft__coop_grant *g);

/* Run a task popped from a run queue, consuming the queue's reference:
 * poll it (or cancel it, if aborted) and complete or idle it. Returns true
 * when the task must go back to the run queue, at the back (it yielded: a
 * yield entry, still RUNNING; or it was woken during its poll): the caller
 * pushes it, handing over the reference it now holds. An entry that is
 * not run after all goes to weft__task_drop_entry(). `env`: the polling
 * worker's, never NULL. */
bool weft__task_run(struct weft__task *t, struct weft__task_env *env);

/* What weft__task_run() carries from before the poll to after it, for
 * the two halves the worker loop runs around a stackful future's switch
 * (run.h's run_begin/run_end, in weft__task_run_stackful(),
 * task/stackful.h). */
struct weft__task_poll {
    struct weft__task_dbg *d;
    uint64_t polls, t0;
    bool timed;
};

/* At shutdown, with no worker running: if `t` has not completed, claim it
 * (RUNNING|CANCELLED, one more reference) and return true; the caller then
 * calls weft__task_cancel_claimed(). */
bool weft__task_shutdown_claim(struct weft__task *t);
void weft__task_cancel_claimed(struct weft__task *t);

/* True when the task being polled on this thread has been aborted
 * (weft_join_abort(), a group's cancel) while its poll runs: the task layer
 * drops it once the poll returns PENDING. False outside a poll. Out of
 * line, for a coroutine's stack (which may change threads): it reads this
 * thread's poll record afresh at every call. Thread: the poller. */
bool weft__task_abort_requested(void);

/* Drop one reference (the last one frees the cell). */
void weft__task_ref_dec(struct weft__task *t);
/* Drop a run queue entry without running it (shutdown, a closed queue):
 * ends a yield entry's poll first (see "Yield entries"), then drops the
 * entry's reference. */
void weft__task_drop_entry(struct weft__task *t);

static inline void *weft__task_future(struct weft__task *t)
{
    size_t a = t->type->align;

    return (char *)t + weft__round_up(sizeof(*t) + sizeof(struct weft__task_dbg), a);
}

/* The task's output slot (written at completion, read by its join). */
static inline void *weft__task_output(struct weft__task *t)
{
    return (char *)t + weft__task_output_offset(t->type);
}

/* A join handle is a task pointer holding the join reference (join.c:
 * weft_join_poll, _try, _wait, _abort; task.c: weft_join_drop). */
static inline struct weft__task *weft__join_task(const weft_join *j)
{
    return (struct weft__task *)(void *)j;
}

/* Futures that run another (a group's child wrapper, ...) are named in
 * diagnostics (weft/trace.h) after what they run: a descriptor whose `name`
 * is this very string ("weft_wrapper") starts with a `const char *` that
 * names it (NULL: no name). */
extern const char weft__wrapper_name[];

/* The name a task shows in diagnostics: its descriptor's, or the wrapped
 * future's. While the task is polled (or not yet freed). */
static inline const char *weft__task_display_name(struct weft__task *t)
{
    const char *name = t->type->name;

    if (name == weft__wrapper_name)
        name = *(const char *const *)weft__task_future(t);
    return name;
}

/* The units of budget left (env->budget without the stress mode's bias). */
static inline unsigned weft__coop_units(const struct weft__task_env *env)
{
    return env->budget < 0 ? (unsigned)(env->budget - INT_MIN) : (unsigned)env->budget;
}

/* Set the units left, biased while the stress mode is on (env->budget). */
static inline void weft__coop_set(struct weft__task_env *env, unsigned units)
{
    env->budget = env->stress ? INT_MIN + (int)units : (int)units;
}

/* weft_coop_proceed() for weft's own leaf futures: the common case (a
 * runtime's poll, budget left, not the stress mode) inline, everything else
 * in the function. Same answer, same effects. */
static inline bool weft__coop_proceed(weft_context *cx)
{
    struct weft__task_env *env = cx ? (struct weft__task_env *)cx->priv : NULL;

    if (env != NULL && env->budget > 0) {      /* > 0: not the stress mode */
        env->budget--;
        return true;
    }
    return weft_coop_proceed(cx);
}

/* Only the common case of weft__coop_proceed(): true when it took one unit
 * of budget (same effect as weft_coop_proceed() returning true); false
 * when the caller must call weft_coop_proceed() for the answer. Lets a hot
 * poll keep its call out of line (and so keep a frameless dispatch). */
static inline bool weft__coop_take_fast(weft_context *cx)
{
    struct weft__task_env *env = (struct weft__task_env *)cx->priv;

    if (env != NULL && env->budget > 0) {      /* > 0: not the stress mode */
        env->budget--;
        return true;
    }
    return false;
}

#endif
