/* SPDX-License-Identifier: MIT */
/* The worker loop: finding work (LIFO slot, local queue, inject queue,
 * stealing), running it, and a worker thread's life. */
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sched.h>

#include "sched/internal.h"
#include "sched/runtime.h"
#include "sched/trace.h"
#include "task/run.h"

WEFT_TLS struct worker *weft__sched_cur_worker;
/* This thread runs weft__sched_worker_main() (set for the thread's whole
 * life, unlike weft__sched_cur_worker, which a driver's session sets too) */
static WEFT_TLS bool on_worker_thread;

/* Before anything but weft's own queue operations runs on this thread
 * (another poll, timers and I/O with their wakers, a park, a driver's
 * session): it may change the FP control words, so they are no longer
 * known (weft__task_run_stackful(), task/stackful.h). */
static inline void fp_forget(struct worker *w)
{
#if WEFT_TASK_STACKFUL_INLINE
    w->fp_known = false;
#else
    (void)w;
#endif
}

static bool begin_search(struct worker *w)
{
    struct weft_runtime *rt = w->rt;

    if (w->searching)
        return true;
    /* at most half the workers search at once (the rest would only fight
     * over the same few tasks); relaxed: a soft limit */
    if (2 * atomic_load_explicit(&rt->idle.num_searching, memory_order_relaxed) >= rt->nworkers)
        return false;
    atomic_fetch_add_explicit(&rt->idle.num_searching, 1, memory_order_seq_cst);
    w->searching = true;
    return true;
}

/* ---- Finding work ------------------------------------------------------------------ */
/* Move a chain from the inject queue or a spill list into w's local queue. */
static void take_chain(struct worker *w, struct weft__task *rest)
{
    while (rest) {
        struct weft__task *next = rest->next;

        weft__sched_push_local(w, rest);
        rest = next;
    }
}

static struct weft__task *lifo_take(struct worker *w)
{
    if (atomic_load_explicit(&w->lifo, memory_order_relaxed) == NULL)
        return NULL;
    /* acq_rel: pairs with the release store/exchange that filled it */
    return atomic_exchange_explicit(&w->lifo, NULL, memory_order_acq_rel);
}

/* Take work from the inject queue. With `batch` (the local queue is empty),
 * a fair share moves into the local queue: len / workers + 1, at most half
 * a local queue. Without (the periodic fairness check), just one task: a
 * batch on top of a full local queue would only overflow back. */
static struct weft__task *pop_inject(struct worker *w, bool batch)
{
    struct weft_runtime *rt = w->rt;
    size_t len = atomic_load_explicit(&rt->inject.len, memory_order_relaxed), n, max = 1;
    struct weft__task *t, *rest = NULL;
    bool left = false;

    if (batch) {
        max = len / rt->nworkers + 1;
        if (max > LQ_CAP / 2)
            max = LQ_CAP / 2;
    }
    t = weft__sched_inject_pop(rt, max, &rest, &n, &left);
    take_chain(w, rest);
    if (left)
        weft__sched_notify_one(rt);   /* the wake policy (schedule.c) */
    return t;
}

/* Take up to `max` tasks from v's spill list (this worker's own, or a
 * victim's): the first is returned, the rest go to w's local queue. */
static struct weft__task *pop_spill(struct worker *w, struct worker *v, size_t max)
{
    struct weft__task *t, *rest;
    size_t n;

    t = weft__sched_spill_pop(v, max, &rest, &n);
    take_chain(w, rest);
    return t;
}

/* The local queue is empty: a batch from the spill list, else from the
 * inject queue. */
static struct weft__task *refill(struct worker *w)
{
    struct weft__task *t;

    if (!weft__sched_spill_empty(w) && (t = pop_spill(w, w, LQ_CAP / 2)) != NULL)
        return t;
    return pop_inject(w, true);
}

/* Every GLOBAL_INTERVAL polls: timers, I/O, the clock, then the LIFO slot,
 * the inject queue (one task) and the spill list (one task) before the
 * local queue. */
static __attribute__((noinline)) struct weft__task *next_periodic(struct worker *w)
{
    struct weft__task *t;

    fp_forget(w);

    /* timers and I/O first: what they wake lands in our LIFO slot,
     * which is looked at next (looking at it before would strand a
     * task woken here when the queues are empty: weft__sched_park()
     * does not count LIFO slots as work) */
    weft__sched_drive_timers(w->rt, false);
    if (weft__io_active(&w->rt->io)) {
        int n = weft__io_poll(&w->rt->io, 0);     /* busy: look without waiting */

        if (n > 0 && weft__trace_active(w->rt))
            weft__trace_mark(w->rt, w, TR_IO, (uint32_t)n, 0, 0);
    }
    w->env.poll_end_ns = 0;       /* not the next poll's time */
    weft__sched_clock(w);         /* every GLOBAL_INTERVAL polls */
    if ((t = lifo_take(w)) != NULL)
        return t;
    t = pop_inject(w, false);
    if (t)
        return t;
    if (!weft__sched_spill_empty(w) && (t = pop_spill(w, w, 1)) != NULL)
        return t;
    t = lq_pop(&w->q);
    if (t)
        return t;
    return refill(w);
}

/* Inline in the worker loop: the common round is a tick, a look at the
 * LIFO slot and a pop. */
static inline struct weft__task *next_local(struct worker *w)
{
    struct weft__task *t;

    /* a countdown, not `++tick % GLOBAL_INTERVAL`: a decrement and a
     * branch instead of a division by a constant (W3: per poll) */
    if (w->tick <= 1) {
        w->tick = GLOBAL_INTERVAL;
        return next_periodic(w);
    }
    w->tick--;
    if ((t = lifo_take(w)) != NULL)
        /* a task woken into our slot outside a poll (the timers we drove) */
        return t;
    t = lq_pop(&w->q);
    if (t)
        return t;
    return refill(w);
}

struct weft__task *weft__sched_next_local(struct worker *w)
{
    return next_local(w);
}

/* Steal from the others, starting at a different victim each time. */
static struct weft__task *steal_work(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    unsigned n = rt->nworkers, start = w->tick % n;
    uint32_t stolen;
    struct weft__task *t;

    for (unsigned i = 0; i < n; i++) {
        struct worker *v = &rt->workers[(start + i) % n];

        if (v == w)
            continue;
        t = lq_steal_into(&v->q, &w->q, &stolen);
        if (t == NULL && !weft__sched_spill_empty(v)) {
            /* its spill list: half of it, half a queue at most */
            size_t len = atomic_load_explicit(&v->spill.len, memory_order_relaxed), got;
            struct weft__task *rest;

            len = len / 2 + 1;
            t = weft__sched_spill_pop(v, len < LQ_CAP / 2 ? len : LQ_CAP / 2, &rest, &got);
            take_chain(w, rest);
            stolen = (uint32_t)got;
        }
        if (t) {
            counter_add(&w->steals, 1);
            if (weft__trace_active(rt))
                weft__trace_mark(rt, w, TR_STEAL, v->index, 0, stolen + 1u);
            return t;
        }
    }
    return pop_inject(w, true);
}

/* A busy worker's look at the timers and the reactor after a poll that
 * yielded (yield_now, the coop budget, a self-wake): a CPU-bound task that
 * yields must not hold timers up for GLOBAL_INTERVAL of its polls (61 polls
 * of 200 us are 12 ms). One relaxed load when nothing is pending; one clock
 * read while a timer is pending or a descriptor is registered. What fires
 * lands in this worker's LIFO slot and runs right after the yielder.
 * Only this worker's own wheel is looked at here (the timers of the tasks
 * polled here, the yielder's among them): scanning every worker's wheel at
 * every yield cost W3 (yield_many, 2 workers) 9% more instructions. The
 * other wheels are driven by their own workers, by the watcher when a
 * worker parks, and by this worker's full look every GLOBAL_INTERVAL
 * polls, so a wheel whose worker is stuck in a long poll waits at most one
 * such round of another busy worker. */
static __attribute__((noinline)) void look_after_yield_slow(struct worker *w, uint64_t next,
                                                            bool io)
{
    struct weft_runtime *rt = w->rt;
    uint64_t now;

    fp_forget(w);
    now = weft__now_ns();
    if (next <= now / 1000000u) {
        unsigned n = weft__time_drive(&w->time, now / 1000000u);

        if (n && weft__trace_active(rt))
            weft__trace_mark(rt, w, TR_TIMERS, n, 0, 0);
    }
    if (io && now - w->io_look_ns >= BUSY_IO_LOOK_NS) {
        w->io_look_ns = now;
        weft__io_poll(&rt->io, 0);    /* look without waiting; -1: someone is */
    }
}

/* The common case inline: nothing pending, two loads */
static inline void look_after_yield(struct worker *w)
{
    uint64_t next = weft__time_next(&w->time);
    bool io = weft__io_active(&w->rt->io);

    if (next != UINT64_MAX || io)
        look_after_yield_slow(w, next, io);
}

/* Poll t, then whatever lands in the LIFO slot, MAX_LIFO_POLLS at most
 * and up to the periodic look.
 * Inline in the worker loop's common round (a call's register saves and
 * restores were 18 of W3's instructions per yield); the other callers use
 * weft__sched_run_task(). */
static inline __attribute__((always_inline)) void run_one(struct worker *w,
                                                          struct weft__task *t, bool traced)
{
    bool again;

    counter_add(&w->polls, 1);
    if (__builtin_expect(traced, 0)) {
        /* a poll recorded by the trace: the type's own poll, whatever it is */
        uint64_t t0 = weft__trace_poll_begin(t);

        fp_forget(w);
        again = weft__task_run(t, &w->env);
        weft__trace_poll_end(w, t0, again);   /* t may be gone: not read */
    } else {
#if WEFT_TASK_STACKFUL_INLINE
        /* a coroutine: resumed in this frame (task/stackful.h); relaxed:
         * see weft__task_stackful_type */
        if (__builtin_expect(t->type == atomic_load_explicit(&weft__task_stackful_type,
                                                             memory_order_relaxed), 0)) {
            again = weft__task_run_stackful(t, &w->env, &w->ws, &w->fp_known);
        } else {
            w->fp_known = false;
            again = weft__task_run_inline(t, &w->env);   /* task/run.h */
        }
#else
        again = weft__task_run_inline(t, &w->env);
#endif
    }
    if (again) {
        /* yielded or self-woken: to the back (overflow out of line) */
        if (!lq_try_push(&w->q, t))
            weft__sched_push_local(w, t);
        look_after_yield(w);
    }
}

/* The task t just taken from the LIFO slot, and what lands there after it.
 * A chain ends after MAX_LIFO_POLLS slot tasks, or when the periodic look
 * is due (a slot poll counts towards it: the inject queue and the timers
 * wait GLOBAL_INTERVAL polls at most, not that many chains); either way
 * its task goes after the queue's (left in the slot, next_periodic() would
 * take it before the inject queue). Out of line: a yield's round (W3)
 * keeps only the look at the slot.
 *
 * Both limits are known before the first poll: nothing but this worker's
 * loop changes w->tick, and no poll runs the loop (a poll cannot block in
 * a driver: weft__task_driver), so the chain counts one number and settles
 * the tick and the lifo_polls counter once at its end instead of per poll
 * (W4: ~6 of a message's instructions). The counter is a metric, read
 * racily anyway; `polls` (the watcher's sign of progress) still moves per
 * poll, in run_one(). */
static __attribute__((noinline)) void run_lifo_chain(struct worker *w, struct weft__task *t,
                                                     bool traced)
{
    /* tick >= 1 between polls; tick - 1 polls leave it at 1, where the
     * next round is the periodic one (next_local()) */
    unsigned left = w->tick > 1 ? w->tick - 1 : 0, n = 0;

    if (left > MAX_LIFO_POLLS)
        left = MAX_LIFO_POLLS;
    for (;;) {
        if (n == left) {
            weft__sched_push_local(w, t); /* its turn comes after the queue's */
            break;
        }
        n++;
        run_one(w, t, traced);
        t = atomic_load_explicit(&w->lifo, memory_order_relaxed) ?
                atomic_exchange_explicit(&w->lifo, NULL, memory_order_acq_rel) :
                NULL;
        if (t == NULL)
            break;
    }
    w->tick -= n;
    counter_add(&w->lifo_polls, n);
}

static inline __attribute__((always_inline)) void run_task(struct worker *w,
                                                           struct weft__task *t)
{
    /* loaded once for the whole LIFO run: a trace started meanwhile begins
     * with the next task */
    bool traced = weft__trace_active(w->rt);

    run_one(w, t, traced);
    /* acq_rel: pairs with the release store/exchange that filled it */
    t = atomic_load_explicit(&w->lifo, memory_order_relaxed) ?
            atomic_exchange_explicit(&w->lifo, NULL, memory_order_acq_rel) :
            NULL;
    if (t != NULL)
        run_lifo_chain(w, t, traced);
}

void weft__sched_run_task(struct worker *w, struct weft__task *t)
{
    fp_forget(w);                     /* after a park, or a driver's own code */
    run_task(w, t);
}

/* Before sleeping, look again for a little while, yielding the CPU: work
 * that arrives within a few microseconds (a stream of spawns from another
 * thread, the next request on a connection) is then picked up without a
 * futex wake-up on either side, and the CPU goes to whoever else is
 * runnable meanwhile (a load generator on the same cores: the pause-only
 * spin that was tried instead cost the echo benchmark a quarter of its
 * throughput on 2 cores).
 *
 * Invariant (timers under oversubscription, issue 13): the look never
 * stands between a due deadline and the timer driver. While it looks, this
 * worker is not the watcher, and with every other worker busy or asleep
 * nobody else would fire the timers; and with other processes competing
 * for the CPUs one sched_yield() can hand the CPU away for a whole time
 * slice (milliseconds): the old look yielded up to 32 times and held a 1 ms
 * timer up by 40-70 ms. So the look
 *   - reads the next deadline before every yield and fires due timers
 *     itself (what they wake lands in this worker's LIFO slot, run next
 *     round) instead of yielding past them;
 *   - does not yield at all when a timer is due within PARK_SPIN_TIMER_MS:
 *     it parks at once, and as the watcher it naps until that deadline;
 *   - ends after PARK_SPIN_NS by the clock, however few yields that was: a
 *     yield that took long means the CPUs are contended, and a parked
 *     worker (a timed wait until the next deadline, as the watcher) gets
 *     its CPU back at the deadline, where a yielding one waits behind
 *     everything runnable.
 * One spinner at a time: more would only race each other for the same task
 * (measured: with 16 workers, W2 cost 3.5x what it cost with 1). */
static bool spin_for_work(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    _Atomic int *spinner = &rt->idle.spinner;
    int idle = 0;
    bool found = false;
    uint64_t start = 0, now;

    w->env.poll_end_ns = 0;           /* the next poll reads the clock */
    /* relaxed: the role guards no data, only who spins */
    if (atomic_load_explicit(spinner, memory_order_relaxed) ||
        !atomic_compare_exchange_strong_explicit(spinner, &idle, 1, memory_order_relaxed,
                                                 memory_order_relaxed))
        return false;
    for (unsigned i = 0; i < PARK_SPINS; i++) {
        uint64_t next = weft__sched_timers_next(rt);   /* ms; UINT64_MAX: none */

        /* relaxed: a hint; worker_round() re-reads `closed` with acquire */
        if (weft__sched_work_anywhere(rt) ||
            atomic_load_explicit(&rt->closed, memory_order_relaxed)) {
            found = true;
            break;
        }
        now = weft__now_ns();
        if (i == 0)
            start = now;
        else if (now - start >= PARK_SPIN_NS)
            break;
        if (next <= now / 1000000u) {
            weft__sched_drive_timers(rt, true);  /* due: fire, don't yield past it */
            found = true;
            break;
        }
        if (next != UINT64_MAX && next - now / 1000000u <= PARK_SPIN_TIMER_MS)
            break;                    /* due soon: a yield could outlast it */
        /* the reactor too, without waiting: a server's next request is an
         * event, not a queued task, and without this look it would wait
         * for the end of the spin (up to PARK_SPIN_NS) and then cost a
         * park; what it wakes lands in this worker's LIFO slot, run next
         * round (-1: another thread polls; it dispatches) */
        if (weft__io_active(&rt->io) && weft__io_poll(&rt->io, 0) > 0) {
            found = true;
            break;
        }
        /* io_uring still has completions for a poll (a look at shared memory,
         * no system call; on a one-issuer ring, task work it runs only
         * when its owner enters): park, whose wait finds them at once */
        if (weft__io_pending(&rt->io))
            break;
        sched_yield();
    }
    atomic_store_explicit(spinner, 0, memory_order_relaxed);
    if (found)
        weft__sched_clock(w);         /* back to work after a while */
    return found;
}

/* One round of the worker loop: run something, or park. Returns false when
 * the runtime is closed. Inlined into the loop: a coroutine resumed by
 * run_task() here must find the loop's frame where it left it, with no
 * return in between (task/stackful.h). */
static inline __attribute__((always_inline)) bool worker_round(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    struct weft__task *t;

    if (atomic_load_explicit(&rt->closed, memory_order_acquire))
        return false;
    t = next_local(w);
    if (t == NULL && rt->nworkers > 1 && begin_search(w))
        t = steal_work(w);
    if (t) {
        /* a searcher that found work hands the search on */
        if (w->searching && weft__sched_end_search(w))
            weft__sched_notify_one(rt);
        run_task(w, t);
        return true;
    }
    fp_forget(w);                     /* the spin and the park drive timers and I/O */
    if (weft__trace_active(rt)) {
        /* one "idle" slice: the spin, then the park */
        uint64_t t0 = weft__trace_now();

        t = spin_for_work(w) ? NULL : weft__sched_park(w);
        weft__trace_mark(rt, w, TR_PARK, 0, t0, weft__trace_now() - t0);
    } else {
        if (spin_for_work(w))
            return true;
        t = weft__sched_park(w);      /* the watcher may bring a task back */
    }
    weft__sched_clock(w);             /* it slept, or may have */
    if (t)
        weft__sched_run_task(w, t);
    return true;
}

void weft__sched_enter(struct worker *w)
{
    fp_forget(w);                     /* a new thread, or a driver's session */
    w->env.poll_end_ns = 0;
    weft__task_env_mark(&w->env);
    weft__sched_clock(w);
    weft__sched_cur_worker = w;
    weft__task_driver = w;
    /* a wake of one of rt's tasks made on this thread now goes to w's LIFO
     * slot (push_worker()), so it may hand the task over RUNNING
     * ("Local wakes", task/task.h): the same test as local_worker() */
    weft__task_domain = w->rt;
}

void weft__sched_leave(void)
{
    weft__sched_cur_worker = NULL;
    weft__task_driver = NULL;
    weft__task_domain = NULL;
}

void *weft__sched_worker_main(void *arg)
{
    struct worker *w = arg;

    pthread_setname_np(pthread_self(), w->name);
    /* relaxed: read by the watcher's stall lint, a hint */
    atomic_store_explicit(&w->tid, (int)syscall(SYS_gettid), memory_order_relaxed);
    on_worker_thread = true;
    weft__sched_enter(w);
    while (worker_round(w))
        ;
    weft__sched_end_search(w);
    weft__sched_leave();
    return NULL;
}

bool weft__runtime_on_worker_thread(void)
{
    return on_worker_thread;
}

/* ---- Introspection ------------------------------------------------------------------------ */
WEFT_API weft_runtime *weft_runtime_current(void)
{
    return weft__sched_cur_worker ? weft__sched_cur_worker->rt : NULL;
}

WEFT_API const char *weft_worker_name(void)
{
    return weft__sched_cur_worker ? weft__sched_cur_worker->name : NULL;
}

WEFT_API int weft_worker_index(void)
{
    return weft__sched_cur_worker ? (int)weft__sched_cur_worker->index : -1;
}

