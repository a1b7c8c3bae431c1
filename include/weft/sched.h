/* SPDX-License-Identifier: MIT */
/* weft/sched.h - the runtime: workers, spawning, running to completion,
 * block_on, shutdown. */
#ifndef WEFT_SCHED_H
#define WEFT_SCHED_H

#include "core.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_runtime weft_runtime;   /* opaque */

typedef enum weft_flavor {
    /* Worker threads run tasks as soon as they are spawned. */
    WEFT_MULTI_THREAD = 0,
    /* No threads: tasks run on the thread inside weft_runtime_run() or
     * weft_block_on(), and wait in the queue otherwise (so a
     * weft_join_wait() while no thread is inside returns -EDEADLK rather
     * than wait for ever: see weft/task.h). */
    WEFT_CURRENT_THREAD = 1
} weft_flavor;

#define WEFT_MAX_WORKERS 1024

/* How the runtime's reactor waits for descriptors (weft_runtime_options
 * .io_backend; see docs/io.md for what each costs). */
typedef enum weft_io_backend {
    /* epoll, unless the environment variable WEFT_IO_BACKEND is "uring" at
     * weft_runtime_new() ("epoll" or anything else: epoll). */
    WEFT_IO_AUTO = 0,
    /* epoll, edge-triggered. */
    WEFT_IO_EPOLL = 1,
    /* io_uring (Linux 5.13 or later): readiness through multishot poll
     * requests, submitted in batches with the reactor's wait. Where the
     * kernel has no io_uring or forbids it (ENOSYS, EPERM: seccomp in
     * containers, /proc/sys/kernel/io_uring_disabled), or lacks what weft
     * needs (EOPNOTSUPP), the runtime uses epoll instead and
     * weft_runtime_io_backend() says so and why. One difference: the
     * kernel holds a polled descriptor's file until the thread that armed
     * the poll has run its cancellation, so a close takes effect
     * microseconds after weft_socket_close() returns (a peer's end of
     * file; a UDP port bound again at once may still be in use); a
     * listening socket stops listening before the close returns. One
     * worker owns the ring (submits and waits in it; the others look), so
     * while that worker runs a long poll, events wait for the others'
     * looks. Not faster than epoll on the network benchmarks yet
     * (docs/io.md, "Backends": phase 1 measured 0.52-0.62x; the owner
     * fixes the cause found since); the default stays epoll. */
    WEFT_IO_URING = 2
} weft_io_backend;

typedef struct weft_runtime_options {
    weft_flavor flavor;
    /* Worker threads for WEFT_MULTI_THREAD: 1 .. WEFT_MAX_WORKERS, or 0 for
     * one per online CPU. Must be 0 for WEFT_CURRENT_THREAD. */
    unsigned workers;
    /* Threads are named prefix + index ("weft-w0", "weft-w1", ...; NULL
     * means "weft-w"). Linux keeps 15 characters of a thread name: a
     * longer prefix is cut so that the whole index survives (prefix
     * "my-service-worker", index 12: "my-service-wo12"). Read only
     * during weft_runtime_new(). */
    const char *thread_name_prefix;
    /* Most threads of the runtime's default blocking pool (weft/blocking.h:
     * weft_blocking_default(), and every pool argument given as NULL:
     * weft_blocking_spawn(), the file futures, weft_resolve_init(),
     * weft_connect_host_init()): 1 .. WEFT_BLOCKING_MAX_THREADS, or 0 for
     * 64. The pool is made on first use, so a runtime that never blocks
     * starts no thread for it. */
    unsigned blocking_threads;
    /* The I/O backend to try (see weft_io_backend); 0 is WEFT_IO_AUTO.
     * Any other value is -EINVAL. */
    weft_io_backend io_backend;
    /* Default stack size of this runtime's coroutines (weft/coro.h:
     * weft_go() and every spawn whose weft_go_options.stack_size is 0):
     * 16 KiB .. 1 GiB (WEFT_CO_STACK_MIN .. WEFT_CO_STACK_MAX), rounded up
     * to pages, or 0 for WEFT_CO_STACK_DEFAULT (64 KiB; 256 KiB in builds
     * of weft with a sanitizer). Out of range: -EINVAL. */
    size_t coro_stack_size;
} weft_runtime_options;

/* Create a runtime; `opt` may be NULL for the defaults (multi-thread, one
 * worker per CPU). Workers start at once and sleep until work arrives.
 * Returns 0 and the runtime in *out (free it with weft_runtime_free()),
 * -EINVAL for bad options, -ENOMEM, or -EAGAIN when a thread could not be
 * started; on failure nothing is leaked and *out is untouched.
 * Descriptors: none at creation. The runtime opens them when first needed
 * and closes them with its memory (after weft_runtime_free(), once no task
 * cell is left): the reactor's at the first socket, stream or fd watch,
 * and, on a multi-thread runtime, two for its timers (a timerfd and an
 * eventfd: the alarm of the second parked worker that covers a late timer
 * driver), opened with the reactor, or, before any I/O, the first time two
 * workers park with a timer pending; if those cannot be opened (EMFILE)
 * the timers work as before, at the cost of a wake-up per deadline.
 * Thread: any. */
WEFT_API int weft_runtime_new(weft_runtime **out, const weft_runtime_options *opt);

/* Spawn a task running the future of type `type`, whose initial value
 * (type->size bytes at `init`) is copied into the task: the caller keeps
 * ownership of nothing (do not drop `init` yourself). One allocation.
 * Returns 0 and a join handle in *join (release it with weft_join_drop());
 * -EINVAL for a NULL argument or an invalid type (zero or absurd size,
 * alignment not a power of two or above 4096, NULL poll); -ENOMEM;
 * -ESHUTDOWN after weft_runtime_shutdown(). On failure the future is not
 * dropped (it was never moved into weft). `type` is borrowed for the task's
 * whole life, past its completion (weft/core.h: keep the descriptor alive
 * and unchanged). Thread: any, workers included. */
WEFT_API int weft_spawn(weft_runtime *rt, const weft_future_type *type,
                        const void *init, weft_join **join);

/* weft_spawn() without a join handle: the task runs detached and its output
 * is discarded. Same errors. Thread: any. */
WEFT_API int weft_spawn_detached(weft_runtime *rt, const weft_future_type *type,
                                 const void *init);

/* Run until every task spawned so far (and every task those spawn) has
 * completed: the seed's run(n). Multi-thread: waits while the workers run
 * them. Current-thread: runs them on the calling thread (if another thread
 * is running the runtime already, waits until it leaves, then takes over).
 * Returns 0, -EINVAL (NULL, or called from a worker thread of any weft
 * runtime), or -ESHUTDOWN (the runtime is or was shut down: unfinished
 * tasks were cancelled; a run in progress when another thread shuts the
 * runtime down returns once the shutdown has run their drops, except in
 * a drop that shutdown runs, where it returns at once). Thread: any but a
 * worker. */
WEFT_API int weft_runtime_run(weft_runtime *rt);

/* Drive the future (`init`, copied as by weft_spawn()) to completion as a
 * root task and copy its output to `out` (may be NULL). Current-thread: the
 * calling thread runs it and every other ready task until it completes.
 * A second thread calling it on a current-thread runtime that another
 * thread is running waits until that one leaves (which may already have run
 * this root), then runs the rest itself.
 * Returns 0, -EINVAL (NULL argument, invalid type, or called from a worker
 * thread of any weft runtime), -ENOMEM, -ESHUTDOWN, or -ECANCELED when the
 * runtime was shut down before the future completed. Thread: any but a
 * worker. */
WEFT_API int weft_block_on(weft_runtime *rt, const weft_future_type *type,
                           const void *init, void *out);

/* Stop the runtime: later spawns return -ESHUTDOWN; worker threads are
 * joined; every unfinished task is cancelled (its future's drop runs once, its
 * join reports -ECANCELED). Then the default blocking pool, if one was made,
 * is shut down without waiting: its queued jobs are cancelled, and a job
 * already running (a getaddrinfo() stuck on a DNS timeout cannot be
 * interrupted) finishes later on its own, detached, on its pool thread,
 * touching nothing of the runtime's (see weft_blocking_default()).
 * Idempotent. Returns 0, or -EINVAL for NULL, when called from one of
 * this runtime's workers, or from a drop that this runtime's own shutdown
 * runs (on the thread running it, nested shutdowns of other runtimes
 * included: it would wait for itself; the shutdown in progress finishes
 * the job). Thread: any but a worker of this runtime.
 * The cancelled tasks' drops run on the calling thread, one after the other,
 * in no particular order. A drop run there may wait for other tasks of this
 * runtime: weft_join_wait() on a sibling, weft_group_free() or
 * weft_group_join() of a group whose children are among them. Such a wait
 * does not sleep on a task shutdown has not reached yet: it cancels that
 * task there and then (its drop runs, nested, on the same thread), so the
 * order of the drops never matters. Only a cycle (a drop waiting for a task
 * whose drop is the one waiting, further up the stack) gets -EDEADLK.
 * Waits on tasks of another runtime block as anywhere else, except for a
 * runtime whose own shutdown is running further up the same thread (a drop
 * of it shut this runtime down): its tasks are cancelled there and then
 * too, since nothing else would ever complete them. */
WEFT_API int weft_runtime_shutdown(weft_runtime *rt);

/* Shut down (if not done yet) and release the runtime. Memory that wakers
 * or join handles still held elsewhere refer to is released when the last of
 * them is dropped. NULL is ignored. Thread: as weft_runtime_shutdown(); on a
 * thread where that returns -EINVAL (one of this runtime's own workers, or
 * a current-thread runtime's thread while it runs the runtime: from a task
 * or callback; or a drop run by this runtime's shutdown) it does nothing at
 * all: the runtime keeps running (or shutting down) and must be freed from
 * elsewhere (the caller of that shutdown). */
WEFT_API void weft_runtime_free(weft_runtime *rt);

/* The runtime whose task is running on this thread, or NULL. */
WEFT_API weft_runtime *weft_runtime_current(void);

/* The name of the worker running on this thread ("weft-w3"), or NULL on a
 * thread that is not running weft tasks. */
WEFT_API const char *weft_worker_name(void);

/* Index of this thread's worker (0 .. workers-1), or -1. */
WEFT_API int weft_worker_index(void);

/* The I/O backend the runtime uses: WEFT_IO_EPOLL or WEFT_IO_URING (never
 * WEFT_IO_AUTO). The reactor is made on first use; this call makes it if
 * no socket, stream or watch has yet, so the answer is final. *fallback
 * (may be NULL) receives 0, or, when io_uring was asked for (the option or
 * WEFT_IO_AUTO with WEFT_IO_BACKEND=uring) and the runtime uses epoll
 * instead, the negative errno that io_uring's setup gave: -ENOSYS (no
 * io_uring in this kernel), -EPERM (forbidden: seccomp, a container,
 * io_uring_disabled), -EOPNOTSUPP (a kernel older than 5.13), -ENOMEM,
 * -EMFILE. Returns the backend, or -EINVAL (NULL), -ESHUTDOWN (the runtime
 * was shut down before anything made its reactor), -ENOMEM or -EMFILE (the
 * reactor could not be made; a later call tries again). Thread: any. */
WEFT_API int weft_runtime_io_backend(weft_runtime *rt, int *fallback);

/* Number of tasks spawned and not yet completed (a snapshot; 0 for NULL).
 * Thread: any, while the runtime exists. */
WEFT_API size_t weft_runtime_active_tasks(const weft_runtime *rt);

/* ---- Metrics ---------------------------------------------------------------
 * Per-worker counters, kept by each worker without atomic read-modify-write
 * and read here as a snapshot (each value recent, not all from one instant). */
typedef struct weft_worker_metrics {
    unsigned long long polls;           /* task polls (cancellations included) */
    unsigned long long steals;          /* successful steals from other workers */
    unsigned long long overflows;       /* half-queue moves to the worker's spill
                                         * list (a full local queue's overflow) */
    unsigned long long parks;           /* times the worker went to sleep */
    unsigned long long forced_yields;   /* polls cut short by the coop budget */
    unsigned long long lifo_polls;      /* polls of a task taken from the LIFO slot */
    unsigned long long stranded_taken;  /* LIFO tasks taken from a stuck worker */
    unsigned long long local_queue_depth; /* tasks in the local queue and its
                                           * spill list now */
} weft_worker_metrics;

/* Number of worker slots (1 for the current-thread flavour); 0 for NULL. */
WEFT_API unsigned weft_runtime_workers(const weft_runtime *rt);

/* Copy worker `worker`'s counters to *out. Returns 0, or -EINVAL for NULL
 * or an index out of range. Thread: any, while the runtime exists. */
WEFT_API int weft_runtime_worker_metrics(const weft_runtime *rt, unsigned worker,
                                         weft_worker_metrics *out);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_SCHED_H */
