/* SPDX-License-Identifier: MIT */
/* The worker loop: finding work (LIFO slot, local queue, inject queue,
 * stealing), running it, and a worker thread's life. */
#include <pthread.h>
#include <stdatomic.h>

#include "sched/internal.h"

WEFT_TLS struct worker *weft__sched_cur_worker;

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
/* Move a chain from the inject queue into w's local queue. */
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

    if (batch) {
        max = len / rt->nworkers + 1;
        if (max > LQ_CAP / 2)
            max = LQ_CAP / 2;
    }
    t = weft__sched_inject_pop(rt, max, &rest, &n);
    take_chain(w, rest);
    return t;
}

struct weft__task *weft__sched_next_local(struct worker *w)
{
    struct weft__task *t;

    if (++w->tick % GLOBAL_INTERVAL == 0) {
        /* timers and I/O first: what they wake lands in our LIFO slot,
         * which is looked at next (looking at it before would strand a
         * task woken here when the queues are empty: weft__sched_park()
         * does not count LIFO slots as work) */
        weft__sched_drive_timers(w->rt);
        if (weft__io_active(&w->rt->io))
            weft__io_poll(&w->rt->io, 0);     /* busy: look without waiting */
        if ((t = lifo_take(w)) != NULL)
            return t;
        t = pop_inject(w, false);
        if (t)
            return t;
    } else if ((t = lifo_take(w)) != NULL) {
        /* a task woken into our slot outside a poll (the timers we drove) */
        return t;
    }
    t = lq_pop(&w->q);
    if (t)
        return t;
    return pop_inject(w, true);
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
        if (t) {
            counter_add(&w->steals, 1);
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
 * lands in this worker's LIFO slot and runs right after the yielder. */
static void look_after_yield(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    uint64_t next = weft__time_next(&rt->time), now;
    bool io = weft__io_active(&rt->io);

    if (next == UINT64_MAX && !io)
        return;
    now = weft__now_ns();
    if (next <= now / 1000000u)
        weft__time_drive(&rt->time, now / 1000000u);
    if (io && now - w->io_look_ns >= BUSY_IO_LOOK_NS) {
        w->io_look_ns = now;
        weft__io_poll(&rt->io, 0);    /* look without waiting; -1: someone is */
    }
}

/* Poll t, then whatever lands in the LIFO slot, MAX_LIFO_POLLS at most. */
void weft__sched_run_task(struct worker *w, struct weft__task *t)
{
    for (unsigned n = 0;; n++) {
        counter_add(&w->polls, 1);
        if (weft__task_run(t, &w->env)) {
            weft__sched_push_local(w, t); /* yielded or self-woken: to the back */
            look_after_yield(w);
        }
        t = atomic_load_explicit(&w->lifo, memory_order_relaxed) ?
                atomic_exchange_explicit(&w->lifo, NULL, memory_order_acq_rel) :
                NULL;
        if (t == NULL)
            return;
        if (n == MAX_LIFO_POLLS) {
            weft__sched_push_local(w, t); /* its turn comes after the queue's */
            return;
        }
        counter_add(&w->lifo_polls, 1);
    }
}

/* A pause between two looks of the pre-park spin: tells the core (and a
 * hyperthread sibling) that this is a spin, without giving the CPU away. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Before sleeping, look again for a little while: work that arrives within
 * a few microseconds (a stream of spawns from another thread) is then
 * picked up without a futex wake-up on either side.
 *
 * Invariant (timers under oversubscription): the look never stands between
 * a due deadline and the timer driver. It
 *   - lasts at most PARK_SPIN_NS by the clock;
 *   - reads the next deadline at every look and, once it is due, fires the
 *     due timers itself (what they wake lands in this worker's LIFO
 *     slot, run next round) instead of spinning past them: while it spins
 *     this worker is not the watcher, and with every other worker busy or
 *     asleep nobody else would fire them;
 *   - never gives its CPU away: no sched_yield(). With other processes
 *     competing for the CPUs, a yield hands the CPU to one of them for a
 *     whole time slice (milliseconds); the old look yielded up to 32 times
 *     and held a 1 ms timer up by 40-70 ms (issue 13). A sleeping thread
 *     that wakes at its deadline gets the CPU back at once; a yielding one
 *     waits behind everything runnable.
 * One spinner at a time: more would only race each other for the same task
 * (measured: with 16 workers, W2 cost 3.5x what it cost with 1). */
static bool spin_for_work(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    _Atomic int *spinner = &rt->idle.spinner;
    int idle = 0;
    bool found = false;
    uint64_t now, end;

    /* relaxed: the role guards no data, only who spins */
    if (atomic_load_explicit(spinner, memory_order_relaxed) ||
        !atomic_compare_exchange_strong_explicit(spinner, &idle, 1, memory_order_relaxed,
                                                 memory_order_relaxed))
        return false;
    now = weft__now_ns();
    end = now + PARK_SPIN_NS;
    for (;;) {
        uint64_t next = weft__time_next(&rt->time);   /* ms; UINT64_MAX: none */

        if (next <= now / 1000000u) {
            weft__time_drive(&rt->time, now / 1000000u);   /* due: fire, don't spin */
            found = true;
            break;
        }
        /* relaxed: a hint; worker_round() re-reads `closed` with acquire */
        if (weft__sched_work_anywhere(rt) ||
            atomic_load_explicit(&rt->closed, memory_order_relaxed)) {
            found = true;
            break;
        }
        if (now >= end)
            break;
        for (unsigned i = 0; i < 16; i++)
            cpu_relax();
        now = weft__now_ns();
    }
    atomic_store_explicit(spinner, 0, memory_order_relaxed);
    return found;
}

/* One round of the worker loop: run something, or park. Returns false when
 * the runtime is closed. */
static bool worker_round(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    struct weft__task *t;

    if (atomic_load_explicit(&rt->closed, memory_order_acquire))
        return false;
    t = weft__sched_next_local(w);
    if (t == NULL && rt->nworkers > 1 && begin_search(w))
        t = steal_work(w);
    if (t) {
        /* a searcher that found work hands the search on */
        if (weft__sched_end_search(w))
            weft__sched_notify_one(rt);
        weft__sched_run_task(w, t);
        return true;
    }
    if (spin_for_work(w))
        return true;
    t = weft__sched_park(w);          /* the watcher may bring a task back */
    if (t)
        weft__sched_run_task(w, t);
    return true;
}

void weft__sched_enter(struct worker *w)
{
    weft__sched_cur_worker = w;
    weft__task_driver = w;
}

void weft__sched_leave(void)
{
    weft__sched_cur_worker = NULL;
    weft__task_driver = NULL;
}

void *weft__sched_worker_main(void *arg)
{
    struct worker *w = arg;

    pthread_setname_np(pthread_self(), w->name);
    weft__sched_enter(w);
    while (worker_round(w))
        ;
    weft__sched_end_search(w);
    weft__sched_leave();
    return NULL;
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

