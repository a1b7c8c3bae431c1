/* SPDX-License-Identifier: MIT */
/* The metrics snapshot of every layer (weft/observe.h), and its Prometheus
 * text form. Reads only: each layer keeps its own counters (the workers'
 * in their env and struct worker, the timers' and the blocking pool's under
 * their locks, the reactor's in its struct), and this file adds them up. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "blocking/blocking.h"
#include "io/reactor.h"
#include "sched/internal.h"
#include "time/driver.h"
#include "weft/observe.h"

_Static_assert(WEFT_HIST_BUCKETS == WEFT_HIST_BUCKETS_, "one histogram shape");

static uint64_t rd(const _Atomic uint64_t *c)
{
    /* relaxed: counters, read as a snapshot */
    return atomic_load_explicit(c, memory_order_relaxed);
}

WEFT_API unsigned long long weft_hist_bucket_upper_ns(unsigned i)
{
    /* not i + 1 < ...: UINT_MAX + 1 wraps to 0 (then a shift by 9) */
    return i < WEFT_HIST_BUCKETS - 1 ? 1ull << (10 + i) : UINT64_MAX;
}

WEFT_API int weft_runtime_metrics(weft_runtime *rt, weft_metrics *m)
{
    const size_t min = offsetof(weft_metrics, uptime_ns) + sizeof(m->uptime_ns);
    struct weft__time_stats ts;
    struct weft__io_stats is;
    struct weft__blocking_stats bs;
    uint64_t done = 0, spawned = 0, aborted = 0;
    weft_metrics v;
    size_t size;
    void *pool;

    if (rt == NULL || m == NULL || m->size < min)
        return -EINVAL;
    size = m->size < sizeof(v) ? m->size : sizeof(v);
    memset(&v, 0, sizeof(v));
    v.version = WEFT_METRICS_VERSION;
    v.workers = rt->nworkers;
    v.uptime_ns = weft__task_clock_ns() - rt->created_ns;

    /* completions before spawns (acquire, as weft__sched_active_tasks()):
     * live is never negative */
    done = atomic_load_explicit(&rt->foreign_completed, memory_order_acquire);
    aborted = atomic_load_explicit(&rt->foreign_aborted, memory_order_relaxed);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = &rt->workers[i];

        done += atomic_load_explicit(&w->completed, memory_order_acquire);
        aborted += rd(&w->aborted);
        v.polls += rd(&w->polls);
        v.steals += rd(&w->steals);
        v.overflows += rd(&w->overflows);
        v.parks += rd(&w->parks);
        v.budget_yields += rd(&w->env.forced_yields);
        v.lifo_polls += rd(&w->lifo_polls);
        v.local_queue_depth += lq_len(&w->q) +
                               atomic_load_explicit(&w->spill.len, memory_order_relaxed);
        v.poll_time_ns += rd(&w->env.poll_time_ns);
        for (unsigned b = 0; b < WEFT_HIST_BUCKETS; b++)
            v.poll_time_hist[b] += rd(&w->env.poll_hist[b]);
    }
    spawned = atomic_load_explicit(&rt->foreign_spawned, memory_order_acquire);
    for (unsigned i = 0; i < rt->nworkers; i++)
        spawned += atomic_load_explicit(&rt->workers[i].spawned, memory_order_acquire);
    v.inject_queue_depth = atomic_load_explicit(&rt->inject.len, memory_order_relaxed);
    v.tasks_spawned = spawned;
    v.tasks_completed = done;
    v.tasks_aborted = aborted;
    v.tasks_live = spawned > done ? spawned - done : 0;

    memset(&ts, 0, sizeof(ts));
    for (unsigned i = 0; i < rt->nworkers; i++)
        weft__time_stats_add(&rt->workers[i].time, &ts);
    v.timers_armed = ts.armed;
    v.timers_registered = ts.registered;
    v.timers_fired = ts.fired;
    v.timers_cancelled = ts.cancelled;
    v.timer_late_ns = ts.late_ns;
    memcpy(v.timer_late_hist, ts.late_hist, sizeof(v.timer_late_hist));

    weft__io_stats(&rt->io, &is);
    v.io_sources = is.sources;
    v.io_polls = is.polls;
    v.io_events = is.events;
    v.io_eagain = is.eagain;
    memcpy(v.io_events_hist, is.events_hist, sizeof(v.io_events_hist));

    /* acquire: pairs with the release store in weft__runtime_blocking();
     * the pool lives until the runtime's memory goes */
    pool = atomic_load_explicit(&rt->blocking.obj, memory_order_acquire);
    weft__blocking_stats(pool, &bs);
    v.blocking_threads = bs.threads;
    v.blocking_idle_threads = bs.idle;
    v.blocking_queue_depth = bs.queued;
    v.blocking_jobs = bs.started;
    v.blocking_wait_ns = bs.wait_ns;
    memcpy(v.blocking_wait_hist, bs.wait_hist, sizeof(v.blocking_wait_hist));

    v.lints = atomic_load_explicit(&rt->lints, memory_order_relaxed);

    v.size = m->size;                 /* the caller's, kept */
    memcpy(m, &v, size);
    return 0;
}

WEFT_API int weft_runtime_set_poll_timing(weft_runtime *rt, bool on)
{
    if (rt == NULL)
        return -EINVAL;
    /* relaxed: a switch, read once per poll; polls already started keep
     * what they saw */
    atomic_store_explicit(&rt->poll_timing, on, memory_order_relaxed);
    return 0;
}

WEFT_API bool weft_runtime_poll_timing(const weft_runtime *rt)
{
    return rt && atomic_load_explicit(&rt->poll_timing, memory_order_relaxed);
}

/* ---- Prometheus text format ------------------------------------------------------- */
struct out {
    char *buf;
    size_t len, used;                 /* used: what it needs, even past len */
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;
    size_t room = o->used < o->len ? o->len - o->used : 0;

    va_start(ap, fmt);
    n = vsnprintf(room ? o->buf + o->used : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->used += (size_t)n;
}

static void metric(struct out *o, const char *name, const char *type, const char *help,
                   unsigned long long v)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

/* A log2-of-ns histogram, in seconds. */
static void hist_ns(struct out *o, const char *name, const char *help,
                    const unsigned long long *h, unsigned long long sum_ns)
{
    unsigned long long cum = 0;

    put(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (unsigned i = 0; i + 1 < WEFT_HIST_BUCKETS; i++) {
        cum += h[i];
        put(o, "%s_bucket{le=\"%.9g\"} %llu\n", name,
            (double)weft_hist_bucket_upper_ns(i) / 1e9, cum);
    }
    cum += h[WEFT_HIST_BUCKETS - 1];
    put(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n", name, cum, name,
        (double)sum_ns / 1e9, name, cum);
}

WEFT_API int weft_metrics_prometheus(const weft_metrics *m, char *buf, size_t len)
{
    struct out o = { buf, len, 0 };
    unsigned long long cum = 0;

    if (m == NULL || (buf == NULL && len > 0) || m->size < sizeof(*m))
        return -EINVAL;
    if (len > 0)
        buf[0] = '\0';
    metric(&o, "weft_workers", "gauge", "Worker slots.", m->workers);
    put(&o, "# HELP weft_uptime_seconds Since the runtime was made.\n"
            "# TYPE weft_uptime_seconds gauge\nweft_uptime_seconds %.3f\n",
        (double)m->uptime_ns / 1e9);
    metric(&o, "weft_polls_total", "counter", "Task polls.", m->polls);
    metric(&o, "weft_steals_total", "counter", "Steals from other workers.", m->steals);
    metric(&o, "weft_overflows_total", "counter", "Half-queue moves to the worker's spill list.",
           m->overflows);
    metric(&o, "weft_parks_total", "counter", "Times a worker went to sleep.", m->parks);
    metric(&o, "weft_budget_yields_total", "counter", "Polls cut short by the coop budget.",
           m->budget_yields);
    metric(&o, "weft_lifo_polls_total", "counter", "Polls of a LIFO-slot task.", m->lifo_polls);
    metric(&o, "weft_local_queue_depth", "gauge", "Tasks in the workers' local queues and spill lists.",
           m->local_queue_depth);
    metric(&o, "weft_inject_queue_depth", "gauge", "Tasks in the inject queue (from other threads).",
           m->inject_queue_depth);
    hist_ns(&o, "weft_poll_duration_seconds", "Time inside one task poll.", m->poll_time_hist,
            m->poll_time_ns);
    metric(&o, "weft_tasks_spawned_total", "counter", "Tasks spawned.", m->tasks_spawned);
    metric(&o, "weft_tasks_completed_total", "counter", "Tasks finished (aborted included).",
           m->tasks_completed);
    metric(&o, "weft_tasks_aborted_total", "counter", "Tasks ended by cancellation.",
           m->tasks_aborted);
    metric(&o, "weft_tasks_live", "gauge", "Tasks spawned and not finished.", m->tasks_live);
    metric(&o, "weft_timers_armed", "gauge", "Timers in the wheel.", m->timers_armed);
    metric(&o, "weft_timers_registered_total", "counter", "Timers put in the wheel.",
           m->timers_registered);
    metric(&o, "weft_timers_fired_total", "counter", "Timers fired by the wheel.",
           m->timers_fired);
    metric(&o, "weft_timers_cancelled_total", "counter", "Timers removed before firing.",
           m->timers_cancelled);
    hist_ns(&o, "weft_timer_lateness_seconds", "How late a timer fired.", m->timer_late_hist,
            m->timer_late_ns);
    metric(&o, "weft_io_sources", "gauge", "Registered descriptors.", m->io_sources);
    metric(&o, "weft_io_polls_total", "counter", "epoll_wait calls.", m->io_polls);
    metric(&o, "weft_io_events_total", "counter", "Events returned by epoll_wait.",
           m->io_events);
    metric(&o, "weft_io_eagain_total", "counter", "Calls that found a descriptor drained.",
           m->io_eagain);
    put(&o, "# HELP weft_io_events_per_poll Events per epoll_wait.\n"
            "# TYPE weft_io_events_per_poll histogram\n");
    for (unsigned i = 0; i < 7; i++) {
        cum += m->io_events_hist[i];
        put(&o, "weft_io_events_per_poll_bucket{le=\"%u\"} %llu\n", i ? (1u << i) - 1 : 0, cum);
    }
    cum += m->io_events_hist[7];
    put(&o, "weft_io_events_per_poll_bucket{le=\"+Inf\"} %llu\n"
            "weft_io_events_per_poll_sum %llu\nweft_io_events_per_poll_count %llu\n",
        cum, m->io_events, cum);
    metric(&o, "weft_blocking_threads", "gauge", "Threads of the default blocking pool.",
           m->blocking_threads);
    metric(&o, "weft_blocking_idle_threads", "gauge", "Of those, idle.",
           m->blocking_idle_threads);
    metric(&o, "weft_blocking_queue_depth", "gauge", "Jobs waiting for a thread.",
           m->blocking_queue_depth);
    metric(&o, "weft_blocking_jobs_total", "counter", "Jobs started on a thread.",
           m->blocking_jobs);
    hist_ns(&o, "weft_blocking_wait_seconds", "Time a job waited for a thread.",
            m->blocking_wait_hist, m->blocking_wait_ns);
    metric(&o, "weft_lints_total", "counter", "Lints reported.", m->lints);
    if (o.used > (size_t)INT32_MAX)
        return -EOVERFLOW;
    return (int)o.used;
}
