/* SPDX-License-Identifier: MIT */
/* Task cells, the state word, task wakers and the poll (join handles: join.c).
 *
 * Memory orders, in one place (docs/ARCHITECTURE.md has the table):
 * - every transition that publishes the future or output (the end of a poll,
 *   completion) is a release, and every transition that takes them over (the
 *   start of a poll, a join reading the output) is an acquire;
 * - wakes are release RMWs even when they change nothing, so that what the
 *   waker wrote before waking is visible to the poll that follows (a plain
 *   load here would let a wake slip between the worker's CAS and its poll);
 * - reference increments are relaxed (the caller already holds one); the
 *   decrement is a release, and the one that frees is followed by an acquire
 *   load (the usual reference-count pattern). */

#include "task/task.h"
#include "task/run.h"
#include "task/stackful.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "util/alloc.h"
#include "weft/observe.h"
#include "weft/task.h"

WEFT_TLS void *weft__task_driver;
WEFT_TLS const void *weft__task_domain;

const char weft__wrapper_name[] = "weft_wrapper";
_Atomic(const weft_future_type *) weft__task_stackful_type;
/* ---- Observability: the trailer's per-poll part ------------------------------------
 * The task this thread is polling (NULL between polls), for WEFT_AWAIT's
 * park records and for spotting self-wakes (a wake of the polled task from
 * its own poll, on its own thread: the busy-loop lint). Thread-local: only
 * the polling thread reads or writes them. */
WEFT_TLS struct weft__task_pt weft__task_pt;   /* run.h */
WEFT_TLS struct weft__stackful_pt weft__stackful_pt;   /* stackful.h */

/* ---- The lent reference (issue 13) ------------------------------------------
 * A task that parks clones its own waker during its poll (a channel's wait
 * list, a timer, a join handle), and the poll's end then drops the running
 * thread's reference: a fetch_add and, in end_poll()'s CAS, a decrement of
 * the same count, one poll apart. So the first clone of cur's waker made
 * on the polling thread during the poll takes no new reference: the
 * running thread's reference becomes that waker's (weft__task_pt.lent), and the end
 * of the poll drops nothing (end_poll(), weft__task_complete()'s `held`), or
 * takes a reference where it needs one of its own (a requeue: in the same
 * CAS; a yield entry, a lost-waker report: one increment).
 * Invariant: while RUNNING the cell cannot be freed without the running
 * thread's reference, because the books hold one until COMPLETE and only
 * the running thread completes a RUNNING task (abort only sets CANCELLED;
 * shutdown claims only tasks that are not RUNNING). So the lent waker may
 * be woken by value or dropped, on any thread, while the poll goes on: the
 * count then falls to what the books (and the join handle) hold, and the
 * poller, which holds nothing countable, still touches a live cell. The
 * count is exact at every moment: it never counts a reference twice, and
 * end of poll gives back only what it still holds. Only the polling thread
 * reads or writes pt, and only during the poll (weft__task_pt.cur == t). */

uint64_t weft__task_clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void weft__task_wake_soon(weft_context *cx)
{
    bool was = weft__task_pt.self_woke;

    weft_waker_wake_by_ref(weft_context_waker(cx));
    weft__task_pt.self_woke = was;              /* the library's own: not a busy loop */
}

static long thread_nivcsw(void)
{
    struct rusage ru;

    return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nivcsw : -1;
}

void weft__task_env_mark(struct weft__task_env *env)
{
    env->nivcsw_mark = thread_nivcsw();
}

WEFT_API void weft__async_parked(const weft_async_site *site)
{
    weft__task_parked(site);
}

static bool is_pow2(size_t x)
{
    return x && !(x & (x - 1));
}

int weft__future_type_check(const weft_future_type *ty)
{
    if (ty == NULL || ty->poll == NULL)
        return -EINVAL;
    if (ty->size == 0 || ty->output_size > WEFT_FUTURE_MAX_SIZE ||
        ty->size > (ty->name == weft__wrapper_name && SIZE_MAX / 4 >= WEFT_FUTURE_MAX_SIZE
                        ? WEFT__WRAPPER_MAX_SIZE
                        : WEFT_FUTURE_MAX_SIZE))
        return -EINVAL;
    if (!is_pow2(ty->align) || ty->align > 4096 ||
        !is_pow2(ty->output_align) || ty->output_align > 4096)
        return -EINVAL;
    return 0;
}

/* ---- Cells ------------------------------------------------------------------ */
struct weft__task *weft__task_init(void *cell, const weft_future_type *ty, const void *init,
                                   struct weft__sched *sched, bool join)
{
    struct weft__task *t = cell;
    uint64_t refs = 2 + (join ? 1 : 0);   /* books, queue entry, join */

    t->type = ty;
    t->sched = sched;
    t->next = NULL;
    weft__list_init(&t->owned);
    t->join_waker = WEFT_WAKER_EMPTY;
    memcpy(weft__task_future(t), init, ty->size);
    {
        struct weft__task_dbg *d = weft__task_dbg(t);

        /* published with the cell (the books' lock, the run queue) */
        d->id = 0;
        d->spawned_ns = 0;
        atomic_init(&d->polls, 0);
        atomic_init(&d->poll_ns, 0);
        atomic_init(&d->site, NULL);
        atomic_init(&d->inner, NULL);
        atomic_init(&d->worker, -1);
        d->self_wakes = d->linted = 0;
        atomic_init(&d->yield_queued, 0);
    }
    /* relaxed: the task is published to other threads by the run queue
     * (a release store or a lock), which orders this store */
    atomic_store_explicit(&t->state,
                          TASK_NOTIFIED | (join ? TASK_JOIN_INTEREST : 0) |
                              refs * TASK_REF_ONE,
                          memory_order_relaxed);
    return t;
}

/* Last reference gone: nobody else can reach the cell. The future was
 * dropped at completion (a task is never freed before it completes: the
 * scheduler's books hold a reference until then). The scheduler unlinks
 * the cell and frees its memory. */
static void task_dealloc(struct weft__task *t)
{
    weft_waker_drop(&t->join_waker);
    t->sched->ops->release(t->sched, t);
}

/* A run-queue entry for a task in a state that cannot have one: the
 * books are corrupt; stop before polling freed memory (run.h). */
void weft__task_bad_queued(uint64_t state)
{
    fprintf(stderr, "weft: queued task in state %#llx\n", (unsigned long long)state);
    abort();
}

/* ---- References -------------------------------------------------------------- */
void weft__task_ref_inc(struct weft__task *t)
{
    /* relaxed: the caller holds a reference, so the cell cannot go away;
     * nothing is published by taking another */
    uint64_t prev = atomic_fetch_add_explicit(&t->state, TASK_REF_ONE,
                                              memory_order_relaxed);

    if (TASK_REFS(prev) >= (UINT64_MAX >> TASK_REF_SHIFT) - 1) {
        fputs("weft: task reference count overflow\n", stderr);
        abort();
    }
}

static void ref_dec_n(struct weft__task *t, uint64_t n)
{
    /* release: our uses of the cell happen before the free; pairs with the
     * acquire fence below on the thread that drops the last reference */
    uint64_t prev = atomic_fetch_sub_explicit(&t->state, n * TASK_REF_ONE,
                                              memory_order_release);

    if (TASK_REFS(prev) < n) {
        fputs("weft: task reference count underflow\n", stderr);
        abort();
    }
    if (TASK_REFS(prev) == n) {
        /* acquire: reads the last decrement, which ends the release
         * sequence of every earlier one (a load, not a fence: TSan) */
        (void)atomic_load_explicit(&t->state, memory_order_acquire);
        task_dealloc(t);
    }
}

void weft__task_ref_dec(struct weft__task *t)
{
    ref_dec_n(t, 1);
}

/* A join handle's end (weft/task.h; the rest of the handle is join.c's):
 * here, next to the decrement it inlines. Before COMPLETE the join waker
 * field is taken back (JOIN_WAKER cleared in the same CAS) and dropped. */
WEFT_API void weft_join_drop(weft_join *j)
{
    struct weft__task *t = weft__join_task(j);
    uint64_t cur, next;

    if (t == NULL)
        return;
    cur = atomic_load_explicit(&t->state, memory_order_relaxed);
    do {
        next = cur & ~TASK_JOIN_INTEREST;
        if (!(cur & TASK_COMPLETE))
            next &= ~TASK_JOIN_WAKER;      /* take the field back */
    } while (!atomic_compare_exchange_weak_explicit(
        &t->state, &cur, next,
        memory_order_acq_rel,  /* acquire: completion's writes if COMPLETE */
        memory_order_relaxed));
    if (!(cur & TASK_COMPLETE))
        weft_waker_drop(&t->join_waker);   /* ours: the runtime will not wake it */
    ref_dec_n(t, 1);
}

/* ---- Completion ---------------------------------------------------------------
 *  worker (RUNNING)                        join handle (any thread)
 *  write output, drop future               store join_waker, set JOIN_WAKER [release]
 *  set COMPLETE, clear RUNNING  [acq_rel]  or: see COMPLETE, read output     [acquire]
 *  JOIN_WAKER was set? wake join_waker
 * The CAS that sets COMPLETE reads JOIN_WAKER: if it was set, the waker is
 * the runtime's to wake (its acquire sees the stored waker); if not, the join
 * side's next CAS sees COMPLETE and reads the output itself. */
/* `held`: the references the completing thread holds besides the books'
 * (1, its running reference; 0 when that was lent to a waker: see "The
 * lent reference"). */
void weft__task_complete(struct weft__task *t, bool cancelled, uint64_t held)
{
    struct weft__sched *sched = t->sched;
    uint64_t cur, next;
    bool wake;

    cur = atomic_load_explicit(&t->state, memory_order_relaxed);
    do {
        next = (cur & ~TASK_RUNNING) | TASK_COMPLETE;
        next = cancelled ? next | TASK_CANCELLED : next & ~TASK_CANCELLED;
        /* No join waker to wake: drop the running thread's and the books'
         * references in the same CAS (we touch the cell no more). */
        wake = (cur & TASK_JOIN_INTEREST) && (cur & TASK_JOIN_WAKER);
        if (!wake)
            next -= (1 + held) * TASK_REF_ONE;
    } while (!atomic_compare_exchange_weak_explicit(
        &t->state, &cur, next,
        memory_order_acq_rel,  /* release: output, drop; pairs with the join's
                                * acquire. acquire: the join's waker store, and
                                * every earlier reference drop if we free */
        memory_order_relaxed));
    if (wake) {
        /* counted first: whoever the wake releases sees the count */
        sched->ops->completed(sched, t, cancelled);
        weft_waker_wake_by_ref(&t->join_waker);
        ref_dec_n(t, 1 + held);   /* the running thread's and the books' */
        return;
    }
    sched->ops->completed(sched, t, cancelled);
    if (TASK_REFS(next) == 0)
        task_dealloc(t);
}

void weft__task_cancel_running(struct weft__task *t, uint64_t held)
{
    if (t->type->drop)
        t->type->drop(weft__task_future(t));
    weft__task_complete(t, true, held);
}

/* ---- Waking -----------------------------------------------------------------------
 *  waker (any thread)                     worker
 *  publish what the task waits for        set RUNNING, clear NOTIFIED  [acquire]
 *  set NOTIFIED              [release]    poll the future
 *  idle before? push it to a run queue    clear RUNNING; NOTIFIED? requeue [acq_rel]
 * A task is queued only on the idle -> NOTIFIED edge, so it is never queued
 * twice and never polled by two threads. A wake while RUNNING only sets
 * NOTIFIED; the worker requeues it once after the poll. */
enum wake_action { WAKE_NOTHING, WAKE_SCHEDULE, WAKE_SCHEDULE_RUNNING, WAKE_COMPLETE };

/* `local`: the wake is made on a thread that will queue the task in its
 * own LIFO slot (t->sched->domain == weft__task_domain); an idle task is
 * then handed over RUNNING, as a yield entry ("Local wakes", task.h):
 *
 *  local waker (worker W)                 any other thread
 *  publish what the task waits for        wake: sees RUNNING, sets NOTIFIED
 *  CAS idle -> RUNNING        [acq_rel]   abort: sees RUNNING, sets CANCELLED
 *  yield_queued = WOKEN, push to W's slot (the poll after this one, or the
 *  W (or a thief) pops: polls, no CAS      popper, acts on them)
 */
static enum wake_action transition_to_notified(struct weft__task *t, bool by_val, bool local)
{
    uint64_t cur, next;
    enum wake_action act;

    /* relaxed: only a first guess; the CAS re-checks it */
    cur = atomic_load_explicit(&t->state, memory_order_relaxed);
    for (;;) {
        if (cur & TASK_COMPLETE)
            return WAKE_COMPLETE;          /* final: nothing to publish */
        next = cur | TASK_NOTIFIED;
        if (cur & (TASK_RUNNING | TASK_NOTIFIED)) {
            act = WAKE_NOTHING;            /* the runner or the queue has it */
            if (by_val)
                next -= TASK_REF_ONE;      /* books hold one: never the last */
        } else {
            act = WAKE_SCHEDULE;
            if (local) {
                /* idle -> RUNNING: the queue entry owns the future */
                next = cur | TASK_RUNNING;
                act = WAKE_SCHEDULE_RUNNING;
            }
            if (!by_val)
                next += TASK_REF_ONE;      /* the queue entry's reference */
        }
        /* Stored even when equal to cur: the release RMW is what orders
         * this waker's writes before the next poll. */
        if (atomic_compare_exchange_weak_explicit(
                &t->state, &cur, next,
                memory_order_acq_rel,      /* release pairs: acquire in
                                            * begin_poll() or acq_rel in
                                            * end_poll(); acquire: a waker
                                            * that queues the task takes over
                                            * its queue link from the last
                                            * runner (end_poll's release);
                                            * a local wake also takes over
                                            * the future, as begin_poll()'s
                                            * acquire would */
                memory_order_relaxed))
            return act;
    }
}

/* Will a wake made here queue t in this thread's own LIFO slot? */
static inline bool wake_is_local(const struct weft__task *t)
{
    const void *dom = weft__task_domain;

    return dom != NULL && t->sched->domain == dom;
}

/* Queue a task handed over RUNNING by a local wake: a yield entry (the
 * dump shows it scheduled), in this thread's LIFO slot. yield_queued:
 * relaxed, ours since the CAS (RUNNING); the slot carries it to a thief. */
static void schedule_running(struct weft__task *t)
{
    atomic_store_explicit(&weft__task_dbg(t)->yield_queued, YQ_WOKEN, memory_order_relaxed);
    t->sched->ops->schedule(t->sched, t, false);
}

static void task_wake_by_ref(const void *data)
{
    struct weft__task *t = (struct weft__task *)data;

    if (t == weft__task_pt.cur)
        weft__task_pt.self_woke = true;             /* woken from its own poll */

    switch (transition_to_notified(t, false, wake_is_local(t))) {
    case WAKE_SCHEDULE:
        t->sched->ops->schedule(t->sched, t, false);
        break;
    case WAKE_SCHEDULE_RUNNING:
        schedule_running(t);
        break;
    default:
        break;
    }
}

static void task_wake(const void *data)
{
    struct weft__task *t = (struct weft__task *)data;

    if (t == weft__task_pt.cur)
        weft__task_pt.self_woke = true;

    switch (transition_to_notified(t, true, wake_is_local(t))) {
    case WAKE_SCHEDULE:                    /* our reference goes to the queue */
        t->sched->ops->schedule(t->sched, t, false);
        break;
    case WAKE_SCHEDULE_RUNNING:            /* ours goes to the entry */
        schedule_running(t);
        break;
    case WAKE_COMPLETE:
        ref_dec_n(t, 1);
        break;
    case WAKE_NOTHING:                     /* reference dropped in the CAS */
        break;
    }
}

static const weft_waker_vtable task_waker_vtable;

static weft_waker task_waker_clone(const void *data)
{
    if (data == weft__task_pt.cur && !weft__task_pt.lent)
        weft__task_pt.lent = true;        /* the running reference becomes this waker's */
    else
        weft__task_ref_inc((struct weft__task *)data);
    return (weft_waker){ data, &task_waker_vtable };
}

static void task_waker_drop(const void *data)
{
    ref_dec_n((struct weft__task *)data, 1);
}

static const weft_waker_vtable task_waker_vtable = {
    task_waker_clone, task_wake, task_wake_by_ref, task_waker_drop
};

/* ---- Running --------------------------------------------------------------------- */
/* xorshift32 state for WEFT_STRESS's coin tosses (never 0) */
static WEFT_TLS uint32_t stress_rng = 0x9e3779b9u;

/* WEFT_STRESS refuses every other budget check. Polls in a fixed order
 * (the tasks of one worker, a combinator's children) could then meet the
 * same parity every time: one task or child refused on every poll while
 * the others run (a writer that never gets to queue on an rwlock read by
 * a stream of readers). So each task poll, and each combinator child,
 * starts on a coin toss: refused k times in a row with probability 2^-k. */
static void stress_toss(struct weft__task_env *env)
{
    if (!env->stress)
        return;
    stress_rng ^= stress_rng << 13;
    stress_rng ^= stress_rng >> 17;
    stress_rng ^= stress_rng << 5;
    env->stress_flip = stress_rng & 1;
}

/* A task poll's first budget check: it passes if the task's last poll saw
 * a refusal (TASK_STRESS_PASS), else a coin decides. Relaxed: only the
 * poller touches the bit, and begin_poll()'s acquire CAS already ordered
 * the previous poll's read-modify-writes of the same word before us. */
void weft__task_stress_begin(struct weft__task *t, struct weft__task_env *env)
{
    if (!env->stress)
        return;
    if (atomic_load_explicit(&t->state, memory_order_relaxed) & TASK_STRESS_PASS) {
        atomic_fetch_and_explicit(&t->state, ~TASK_STRESS_PASS, memory_order_relaxed);
        env->stress_flip = true;           /* the next check flips it: pass */
    } else {
        stress_toss(env);
    }
}

/* End the poll a yield entry stands for, as end_poll() would have for a
 * task woken during its poll: clear RUNNING, set NOTIFIED; the entry's
 * reference stays (the caller drops it). */
void weft__task_drop_entry(struct weft__task *t)
{
    uint64_t cur = atomic_load_explicit(&t->state, memory_order_relaxed);

    if (cur & TASK_RUNNING) {
        atomic_store_explicit(&weft__task_dbg(t)->yield_queued, 0, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(
            &t->state, &cur, (cur & ~TASK_RUNNING) | TASK_NOTIFIED,
            memory_order_acq_rel,  /* as end_poll() */
            memory_order_relaxed))
            ;
    }
    ref_dec_n(t, 1);
}

/* Report lint `kind` for t once (the poller holds t: RUNNING or a reference). */
void weft__task_lint_once(struct weft__task *t, struct weft__task_dbg *d, int kind, uint64_t value)
{
    if (d->linted & (1u << kind))
        return;
    d->linted |= (uint8_t)(1u << kind);
    t->sched->ops->lint(t->sched, t, kind, value);
}

#define BUSY_SELF_WAKES 56      /* ... of which this many woke themselves */

/* After a timed poll, while still RUNNING: the poll-time histogram and the
 * long-poll lint. */
__attribute__((noinline, cold)) void weft__task_poll_account(struct weft__task *t, struct weft__task_dbg *d,
                         struct weft__task_env *env, const struct weft__lint_cfg *cfg,
                         uint64_t t0)
{
    uint64_t t1 = weft__task_clock_ns(), dur = t1 - t0;
    _Atomic uint64_t *b = &env->poll_hist[weft__hist_bucket(dur)];

    env->poll_end_ns = env->now_ns = t1;

    /* owner-only counters, read by metrics: relaxed load + store */
    atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&env->poll_time_ns,
                          atomic_load_explicit(&env->poll_time_ns, memory_order_relaxed) + dur,
                          memory_order_relaxed);
    if (cfg && (cfg->mask & (1u << WEFT_LINT_LONG_POLL)) && dur > cfg->long_poll_ns &&
        !(d->linted & (1u << WEFT_LINT_LONG_POLL))) {
        /* preempted since the worker last parked (an overloaded machine)?
         * then the poll may not have blocked: say nothing */
        long n = thread_nivcsw();

        if (n == env->nivcsw_mark)
            weft__task_lint_once(t, d, WEFT_LINT_LONG_POLL, dur);
        env->nivcsw_mark = n;
    }
}

/* The busy-loop lint: most of the polls of a window of BUSY_WINDOW (by the
 * task's poll count) woke themselves. Called only for a poll that woke
 * itself or ends a window: the common poll pays two tests. */
__attribute__((noinline)) void weft__task_busy_account(struct weft__task *t, struct weft__task_dbg *d,
                         const struct weft__lint_cfg *cfg, uint64_t polls)
{
    if (weft__task_pt.self_woke)
        d->self_wakes++;
    if (polls % BUSY_WINDOW == 0) {
        if (d->self_wakes >= BUSY_SELF_WAKES && cfg && (cfg->mask & (1u << WEFT_LINT_BUSY_LOOP)))
            weft__task_lint_once(t, d, WEFT_LINT_BUSY_LOOP, BUSY_WINDOW);
        d->self_wakes = 0;
    }
}

void weft__task_env_init(struct weft__task_env *env)
{
    env->poll_waker = (weft_waker){ NULL, &task_waker_vtable };
    env->poll_cx = (weft_context){ &env->poll_waker, env };
    env->waker = &env->poll_waker;
}

bool weft__task_run(struct weft__task *t, struct weft__task_env *env)
{
    return weft__task_run_inline(t, env);
}

bool weft__task_stackful_done(struct weft__task *t, struct weft__task_env *env,
                              const struct weft__task_poll *p)
{
    return run_end(t, env, p, WEFT_READY);
}

/* ---- Shutdown ---------------------------------------------------------------------- */
bool weft__task_shutdown_claim(struct weft__task *t)
{
    uint64_t cur, next;

    cur = atomic_load_explicit(&t->state, memory_order_relaxed);
    do {
        if (cur & TASK_COMPLETE)
            return false;
        if (cur & TASK_RUNNING) {          /* no worker runs at shutdown */
            fputs("weft: task running during shutdown\n", stderr);
            abort();
        }
        /* A queue entry may still be in flight from a foreign waker: it will
         * find the queue closed and drop its own reference. */
        next = ((cur | TASK_RUNNING | TASK_CANCELLED) & ~TASK_NOTIFIED) + TASK_REF_ONE;
    } while (!atomic_compare_exchange_weak_explicit(
        &t->state, &cur, next,
        memory_order_acquire,  /* pairs: release in end_poll() */
        memory_order_relaxed));
    return true;
}

void weft__task_cancel_claimed(struct weft__task *t)
{
    weft__task_cancel_running(t, 1);
}

__attribute__((noinline)) bool weft__task_abort_requested(void)
{
    struct weft__task *t = weft__task_pt.cur;

    /* relaxed: a hint read by the poller; the abort's CAS (acq_rel) and
     * end_poll()'s are what order the drop */
    return t != NULL && (atomic_load_explicit(&t->state, memory_order_relaxed) & TASK_CANCELLED);
}

/* ---- The protocol's small pieces ---------------------------------------------------- */
static weft_waker noop_clone(const void *data);
static void noop_op(const void *data)
{
    (void)data;
}

static const weft_waker_vtable noop_vtable = { noop_clone, noop_op, noop_op, noop_op };

static weft_waker noop_clone(const void *data)
{
    return (weft_waker){ data, &noop_vtable };
}

WEFT_API weft_waker weft_waker_noop(void)
{
    return (weft_waker){ NULL, &noop_vtable };
}

WEFT_API bool weft_coop_proceed(weft_context *cx)
{
    struct weft__task_env *env = cx ? cx->priv : NULL;

    if (env == NULL)
        return true;                       /* polled by hand: no budget */
    if (env->stress && (env->stress_flip = !env->stress_flip)) {
        /* stress mode: fail this one, pass the next (in this poll, or the
         * task's next one: relaxed, see weft__task_stress_begin()) */
        atomic_fetch_or_explicit(&((struct weft__task *)env->waker->data)->state,
                                 TASK_STRESS_PASS, memory_order_relaxed);
    } else if (weft__coop_units(env) > 0) {
        env->budget--;                     /* biased or not: a unit fewer */
        return true;
    }
    /* owner-only counter, read by metrics: relaxed load + store */
    atomic_store_explicit(&env->forced_yields,
                          atomic_load_explicit(&env->forced_yields, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (weft_waker_will_wake(cx->waker, env->waker))
        env->yielded = true;               /* requeued at the back, no wake */
    else
        weft__task_wake_soon(cx);          /* a combinator's own waker */
    return false;
}

void weft__coop_grant_begin(weft_context *cx, struct weft__coop_grant *g, bool strict)
{
    struct weft__task_env *env = cx ? cx->priv : NULL;

    if (env == NULL)
        return;                            /* polled by hand: no budget */
    g->budget = weft__coop_units(env);
    g->stress = env->stress;
    if (strict) {
        env->stress = false;
    } else {
        stress_toss(env);                  /* each child on a coin toss */
    }
    weft__coop_set(env, WEFT_COOP_BUDGET);
}

void weft__coop_grant_end(weft_context *cx, const struct weft__coop_grant *g)
{
    struct weft__task_env *env = cx ? cx->priv : NULL;
    unsigned used;

    if (env == NULL)
        return;
    used = WEFT_COOP_BUDGET - weft__coop_units(env);
    env->stress = g->stress;
    weft__coop_set(env, g->budget > used ? g->budget - used : 0);
}

WEFT_API weft_poll weft_yield_poll(weft_yield *y, weft_context *cx)
{
    struct weft__task_env *env;

    if (y == NULL || cx == NULL || cx->waker == NULL || y->yielded)
        return WEFT_READY;             /* misuse (NULL) is not a crash */
    env = cx->priv;
    y->yielded = true;
    /* Our own task's waker: let the worker requeue us at the back without
     * a wake. Any other waker (a combinator's): wake it. */
    if (env && (cx->waker == env->waker || weft_waker_will_wake(cx->waker, env->waker)))
        env->yielded = true;
    else
        weft_waker_wake_by_ref(cx->waker);
    return WEFT_PENDING;
}
