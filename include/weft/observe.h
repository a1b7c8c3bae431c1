/* SPDX-License-Identifier: MIT */
/* weft/observe.h - looking at a running program from the outside: the task
 * dump, the metrics snapshot of every layer, and lints (docs/debugging.md).
 *
 * All three work in release builds and cost little while nobody looks:
 * every counter is kept by one writer (a worker, or the holder of a layer's
 * lock) without atomic read-modify-write on the hot path, and each task
 * carries a small trailer (id, spawn time, polls, last poll, last worker,
 * where it is parked) written by the thread polling it. Reading them takes
 * no worker out of its loop: a snapshot reads racy counters (each value
 * recent, not all from one instant), and a dump holds each shard of the
 * task books for the time it takes to copy that shard's records (about
 * 100 ns per task), never more than one shard at a time and never while
 * calling back or printing.
 *
 * Time. No clock is read per poll or per spawn unless poll timing is on:
 * a task's spawn and last-poll times are the clock as its worker last read
 * it, which a worker does every few dozen polls and whenever it wakes, so
 * ages and idle times are right to within that (milliseconds on a busy
 * worker; a spawn from outside the workers while they all sleep may look
 * older than it is, by up to the time they slept). Poll timing (two clock
 * reads per poll: about 40 ns on bare metal, 500 ns on a VM that traps the
 * TSC) adds the poll-time histogram, exact poll times in the dump, and the
 * long-poll lint: weft_runtime_set_poll_timing(), or WEFT_POLL_TIMING=1 in
 * the environment when the runtime is made. */
#ifndef WEFT_OBSERVE_H
#define WEFT_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core.h"
#include "sched.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Task dump ---------------------------------------------------------------- */
typedef enum weft_task_state {
    WEFT_TASK_IDLE = 0,         /* waiting to be woken */
    WEFT_TASK_SCHEDULED = 1,    /* woken, in a run queue */
    WEFT_TASK_RUNNING = 2,      /* being polled (or dropped) now */
    WEFT_TASK_NOTIFIED = 3,     /* being polled, and woken meanwhile: runs again */
    WEFT_TASK_COMPLETED = 4     /* finished; its join handle has not been dropped */
} weft_task_state;

/* One task, as weft_runtime_tasks() reports it. The strings are static
 * (a descriptor's name, __FILE__ and __func__ of an await); they may be
 * NULL. Copyable. */
typedef struct weft_task_info {
    unsigned long long id;          /* unique in its runtime, never reused; 1.. */
    const char *type_name;          /* weft_future_type.name; for a coroutine
                                     * its weft_go_options.name, or
                                     * "coroutine" (weft/coro.h) */
    weft_task_state state;
    bool cancelled;                 /* abort requested (or ended by it) */
    int worker;                     /* worker it last ran on; -1: never polled
                                     * (or polled off the workers) */
    unsigned long long age_ns;      /* since spawn (see "Time" above) */
    unsigned long long polls;       /* polls so far */
    unsigned long long since_poll_ns; /* since its last poll began (0: never
                                       * polled); for a running task: how
                                       * long the current poll has run (to
                                       * the worker's clock: see "Time") */
    /* Where its last poll returned PENDING: the outermost await of the task's
     * own async function (its weft_async's resume line), and the innermost
     * await reached in that poll (a nested async function's), or for a
     * coroutine the blocking call it is parked in (func "weft_co_read",
     * file NULL). Both NULL when the last poll parked outside WEFT_AWAIT
     * (a hand-written future) or the task completed. */
    const weft_async_site *parked_at;
    const weft_async_site *parked_inner;
} weft_task_info;

/* Called once per task; return 0 to go on, anything else to stop (that
 * value is then returned by weft_runtime_tasks()). */
typedef int weft_task_visit_fn(const weft_task_info *task, void *arg);

/* Report every task of `rt` that has been spawned and not yet freed (live,
 * or completed with its join handle still held), one shard of the books at
 * a time: a shard is copied under its lock, then `visit` runs with no lock
 * held, so it may do anything (spawn, dump again, print to a blocking pipe).
 * Tasks spawned or freed meanwhile may or may not be reported; none is
 * reported twice. The order is by shard, then spawn order.
 * Returns 0, visit's non-zero value, -EINVAL (NULL rt or visit), -ENOMEM
 * (the copy of a shard could not be allocated). Thread: any, workers and
 * tasks included, while the user holds `rt` (not after weft_runtime_free()).
 * Never blocks on a task: it cannot deadlock with the tasks it reports. */
WEFT_API int weft_runtime_tasks(weft_runtime *rt, weft_task_visit_fn *visit, void *arg);

/* Print a dump of every task (weft_runtime_tasks()) to `f`, one line each,
 * after a header with the time, the worker count and each worker's queue
 * depth:
 *   id state worker age_ms polls idle_ms type parked-at [< innermost]
 * Returns the number of tasks printed, -EINVAL (NULL), -ENOMEM or -EIO (a
 * write to `f` failed). Thread: any (as above); the writes to `f` happen
 * with no lock of weft's held. Not async-signal-safe: call it from a
 * thread or task that received the signal (weft/signal.h), as the example
 * servers do on SIGQUIT. */
WEFT_API int weft_runtime_dump(weft_runtime *rt, FILE *f);

/* Name of a state ("idle", "scheduled", "running", "notified", "completed"),
 * "?" for others. Thread: any. */
WEFT_API const char *weft_task_state_name(weft_task_state s);

/* ---- Metrics snapshot ---------------------------------------------------------
 * Histograms share one shape: WEFT_HIST_BUCKETS log2 buckets of
 * nanoseconds; bucket 0 counts values below 1,024 ns (~1 us), bucket i
 * (1 .. WEFT_HIST_BUCKETS - 2) values in [2^(9+i), 2^(10+i)) ns, and the last
 * bucket everything from 2^(9+WEFT_HIST_BUCKETS-1) ns (~268 ms) up.
 * weft_hist_bucket_upper_ns(i) gives bucket i's (exclusive) upper bound.
 *
 * Units: *_ns nanoseconds; counts are totals since the runtime was made
 * unless they say "now". Every total only grows. */
#define WEFT_HIST_BUCKETS 20
#define WEFT_METRICS_VERSION 1

typedef struct weft_metrics {
    /* Set by the caller to sizeof(weft_metrics) as it was compiled: a newer
     * library fills only that many bytes, so a program built against an
     * older header keeps working. */
    size_t size;
    /* Set by the library: WEFT_METRICS_VERSION of the library that filled
     * it. Fields are only ever added at the end. */
    unsigned version;
    unsigned workers;               /* worker slots */
    unsigned long long uptime_ns;   /* since weft_runtime_new() */

    /* scheduler (sums over the workers; per worker: weft_runtime_worker_metrics) */
    unsigned long long polls;           /* task runs: polls, and the runs that
                                         * only drop an aborted task */
    unsigned long long steals;
    unsigned long long overflows;       /* half-queue moves to the worker's spill
                                         * list (a full local queue's overflow) */
    unsigned long long parks;           /* times a worker went to sleep */
    unsigned long long budget_yields;   /* polls cut short by the coop budget */
    unsigned long long lifo_polls;
    unsigned long long local_queue_depth;  /* now, summed (spill lists included) */
    unsigned long long inject_queue_depth; /* now: wakes and spawns from other
                                         * threads */
    /* while poll timing is on (weft_runtime_set_poll_timing()); else 0 */
    unsigned long long poll_time_ns;    /* total time inside polls */
    unsigned long long poll_time_hist[WEFT_HIST_BUCKETS];   /* one per timed
                                         * poll of a future (drops not included) */

    /* tasks */
    unsigned long long tasks_spawned;
    unsigned long long tasks_completed; /* finished, by READY or cancellation */
    unsigned long long tasks_aborted;   /* of those, ended by cancellation */
    unsigned long long tasks_live;      /* now: spawned - completed */

    /* timers (weft_sleep and what is built on it) */
    unsigned long long timers_armed;    /* now: in the wheel */
    unsigned long long timers_registered;   /* total insertions in the wheel */
    unsigned long long timers_fired;
    unsigned long long timers_cancelled;    /* removed before firing */
    unsigned long long timer_late_ns;   /* total lateness of the fired ones */
    unsigned long long timer_late_hist[WEFT_HIST_BUCKETS];  /* fired after its
                                         * deadline (a whole ms) by (ns) */

    /* reactor (0 until the first socket or descriptor is registered) */
    unsigned long long io_sources;      /* now: registered descriptors */
    unsigned long long io_polls;        /* epoll_wait calls that returned */
    unsigned long long io_events;       /* events returned (the reactor's own
                                         * wake-up included) */
    unsigned long long io_events_hist[8];   /* per poll: 0, 1, 2-3, 4-7, ..., 64+ */
    unsigned long long io_eagain;       /* calls that found a descriptor drained */

    /* the default blocking pool (0 until it is made: weft/blocking.h) */
    unsigned long long blocking_threads;      /* now */
    unsigned long long blocking_idle_threads; /* now */
    unsigned long long blocking_queue_depth;  /* now: jobs waiting for a thread */
    unsigned long long blocking_jobs;         /* jobs started on a thread */
    unsigned long long blocking_wait_ns;      /* total time jobs waited */
    unsigned long long blocking_wait_hist[WEFT_HIST_BUCKETS];  /* queued -> started */

    /* lints reported (weft_lint_options) */
    unsigned long long lints;
} weft_metrics;

/* Fill *m (m->size bytes of it, which the caller sets first; a larger
 * size leaves the bytes past sizeof(weft_metrics) untouched) with a
 * snapshot of every layer's counters; m->size keeps the caller's value.
 * Returns 0, or -EINVAL (NULL, or m->size smaller than the fields of
 * version 1 up to `uptime_ns`). Copyable, plain data.
 * Thread: any, while the user holds `rt`. Takes the timers' and the
 * blocking pool's locks for a few loads each; never blocks on a task. */
WEFT_API int weft_runtime_metrics(weft_runtime *rt, weft_metrics *m);

/* Exclusive upper bound of histogram bucket i in nanoseconds
 * (UINT64_MAX for the last bucket and beyond). Thread: any. */
WEFT_API unsigned long long weft_hist_bucket_upper_ns(unsigned i);

/* Write the snapshot in the Prometheus text exposition format (version
 * 0.0.4) to buf: counters as weft_*_total, gauges, histograms with
 * cumulative `le` buckets in seconds. Returns the length it needs (not
 * counting the NUL; call again with a bigger buffer when it is >= len);
 * -EINVAL for a NULL m, a NULL buf with len > 0, or m->size below
 * sizeof(weft_metrics) (a snapshot from an older caller); -EOVERFLOW if the
 * text would pass INT_MAX bytes. Writes a NUL-terminated prefix when
 * len > 0 (buf may be NULL when len is 0: ask for the length). The caller
 * owns buf. Thread: any. */
WEFT_API int weft_metrics_prometheus(const weft_metrics *m, char *buf, size_t len);

/* Turn poll timing on or off (see "Time" above); off by default, on when
 * WEFT_POLL_TIMING is set to anything but "" or "0" at weft_runtime_new().
 * Returns 0 or -EINVAL (NULL). Thread: any; workers pick it up at their
 * next poll. */
WEFT_API int weft_runtime_set_poll_timing(weft_runtime *rt, bool on);

/* Whether poll timing is on; false for NULL. Thread: any. */
WEFT_API bool weft_runtime_poll_timing(const weft_runtime *rt);

/* ---- Lints ----------------------------------------------------------------------
 * Bugs the runtime can see from where it stands, reported through a hook
 * once per task and kind (default: one line on stderr). */
typedef enum weft_lint_kind {
    /* a poll ran longer than long_poll_ns: a blocking call inside a task
     * (value: the poll's ns). Needs poll timing (it is what reads the
     * clock); not reported for a poll during which its thread was
     * preempted (an overloaded machine makes any poll long) */
    WEFT_LINT_LONG_POLL = 1,
    /* the task returned PENDING and nobody holds its waker: nothing can wake
     * it again (only an abort or shutdown ends it) (value: 0) */
    WEFT_LINT_LOST_WAKER = 2,
    /* the task woke itself during most of its last polls: a busy loop
     * (value: the polls looked at) */
    WEFT_LINT_BUSY_LOOP = 3,
    /* a worker has been inside one poll for longer than long_poll_ns, and
     * the poll is still running: reported by another worker (the one
     * watching, which also takes over the stuck worker's LIFO task and
     * drives the timers and I/O meanwhile; see docs/debugging.md), once per
     * stalled poll and not again for the same task while it keeps stalling
     * the same worker (value: the ns it has been stuck at least; parked_at:
     * NULL). Only while the stuck thread is blocked in the kernel or
     * burning the CPU: a thread that is runnable but preempted (an
     * overloaded machine) is not reported. Needs no poll timing and costs
     * the polling worker nothing but three relaxed stores per poll. Needs a second worker: a runtime of one
     * worker has nobody to notice (the long-poll lint reports after the
     * poll). */
    WEFT_LINT_STALL = 4
} weft_lint_kind;

typedef struct weft_lint {
    weft_lint_kind kind;
    unsigned long long task_id;
    const char *type_name;
    int worker;
    unsigned long long value;
    const weft_async_site *parked_at;   /* as weft_task_info; may be NULL */
} weft_lint;

/* Called on the worker that saw the bug, right after the poll (a stall: on
 * the worker watching, while the stuck poll runs on); it must not block (it
 * runs in the worker's loop). */
typedef void weft_lint_fn(const weft_lint *lint, void *arg);

typedef struct weft_lint_options {
    /* Which lints run: a mask of 1u << WEFT_LINT_*; 0 means all four.
     * WEFT_LINTS_OFF disables them. */
    unsigned mask;
    /* WEFT_LINT_LONG_POLL and WEFT_LINT_STALL threshold; 0 means 50 ms. */
    unsigned long long long_poll_ns;
    weft_lint_fn *hook;             /* NULL: print one line to stderr */
    void *arg;
} weft_lint_options;

#define WEFT_LINTS_OFF (1u << 31)

/* Replace rt's lint options (a copy is kept; NULL restores the defaults:
 * all on, 50 ms, stderr). Lints already reported for a task are not
 * reported again. Returns 0, -EINVAL (NULL rt) or -ENOMEM. Thread: any;
 * workers pick the change up at their next poll. */
WEFT_API int weft_runtime_set_lints(weft_runtime *rt, const weft_lint_options *opt);

/* Name of a lint kind ("long-poll", "lost-waker", "busy-loop", "stall"),
 * "?" else. */
WEFT_API const char *weft_lint_name(weft_lint_kind kind);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_OBSERVE_H */
