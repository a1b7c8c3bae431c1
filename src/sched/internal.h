/* SPDX-License-Identifier: MIT */
/* The scheduler's insides, shared by the files of src/sched/ (internal).
 * docs/ARCHITECTURE.md tells the story; the rules are here and in the files:
 *   runtime.c   lifecycle (new, destroy), spawn
 *   schedule.c  where a woken task goes: LIFO slot, local queue, inject queue
 *   worker.c    the worker loop: finding work, running it
 *   park.c      searching, parking, notifying; the watcher (timers and I/O)
 *   cells.c     the cell cache and pool; a cell's release
 *   drive.c     run(), block_on(), the current-thread driver
 *   shutdown.c  closing, cancelling what is left
 *   metrics.c   counting active tasks; per-worker metrics; lint reports
 *   (the task dump and the snapshot of every layer: src/observe/)
 *   queue.h     the local run queue
 *
 * Where a runnable task waits (checked in this order by a worker):
 *   1. its LIFO slot: the task last woken or spawned by the task running on
 *      this worker (runs next: message passing stays in cache). At most
 *      MAX_LIFO_POLLS slot tasks run in a row, and never past the
 *      GLOBAL_INTERVAL-th poll; then the slot's task goes to the back of
 *      the local queue, so a ping-pong pair cannot starve it.
 *   2. every GLOBAL_INTERVAL-th poll, one task from the inject queue, then
 *      one from the spill list, first (fairness for tasks woken from
 *      outside, and for spilled ones);
 *   3. its local queue (queue.h): bounded, stealable, FIFO; when full, half
 *      of it moves to the worker's spill list (schedule.c), which the
 *      periodic look serves one task at a time, and refills the queue
 *      when it runs dry;
 *   4. the inject queue (spinlock): wakes and spawns from other threads;
 *   5. searching: steal half of another worker's local queue (or of its
 *      spill list);
 *   6. a short look (one spinner at a time, 50 us at most by the clock,
 *      firing due timers), then park. One parked worker,
 *      the watcher, naps instead of sleeping while others work, and takes a
 *      LIFO task stuck behind a long poll.
 *
 * Cells come from the worker's cache, then the runtime's shared pool, then
 * (on a worker) a block the worker carves cells from, else malloc; a cell
 * freed on a worker that did not spawn it goes back through its shard's
 * lock-free dead stack.
 *
 * Locks (never two at once, never held while a future runs):
 *   inject.lock   the inject queue (a spinlock: a few pointer moves)
 *   w->spill.lock one worker's spill list (a spinlock: a few pointer moves,
 *                 or a walk of half a local queue at most)
 *   idle.lock     the list of sleeping workers
 *   w->park_lock  one worker's wake-up flag
 *   idle.alarm_lock  the backup's timerfd: making it, setting it (one
 *                 syscall)
 *   shard->lock   one shard of the books (every live cell)
 *   run_lock      run()'s wait for "no active tasks", and the shutdown flag
 *
 * The runtime struct stays allocated while any cell is alive (the cell's
 * release unlinks it from its shard), so a waker on a foreign thread may
 * schedule a task at any time, even while the runtime is being freed. */
#ifndef WEFT_SCHED_INTERNAL_H
#define WEFT_SCHED_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sched.h>

#include "io/reactor.h"
#include "sched/queue.h"
#include "task/stackful.h"
#include "task/task.h"
#include "time/driver.h"
#include "weft/sched.h"

#define GLOBAL_INTERVAL 61    /* polls between inject checks; see ARCHITECTURE */
/* LIFO-slot tasks run in a row (each counts towards GLOBAL_INTERVAL too).
 * Long enough that a message-passing pair stays in cache: with 3, W4's
 * 1,000 pairs went round the whole local queue every 4 messages and each
 * message missed L1 4.6 times (cachegrind); 8: 2.0, 16: 1.1, 32: 0.5 (0.63
 * with the periodic cut), 64: 0.33 (the periodic look, every 61 polls,
 * then ends nearly every chain). The peer's tokio (1.24) bounds a chain by
 * its coop budget (128 units: about 64 of W4's polls). The queue waits no
 * longer than the periodic look lets it: GLOBAL_INTERVAL polls at most,
 * the pair's included (worker.c, run_lifo_chain()). */
#define MAX_LIFO_POLLS 64
#define PARK_SPINS 32         /* looks (with sched_yield) before sleeping, */
#define PARK_SPIN_NS 50000u   /* ... and at most this long by the clock (worker.c) */
#define PARK_SPIN_TIMER_MS 5  /* no look at all when a timer is due this soon */
#define BUSY_IO_LOOK_NS 1000000u   /* a yielding worker looks at I/O this often */
#define FOREIGN_SHARDS 8      /* shards for cells spawned off-runtime */
#define CACHE_CLASSES 32      /* cell caches: 8, 24, ... 504 bytes (cells.c) */
#define CACHE_DEPTH 256       /* cells kept per class per worker */
#define POOL_DEPTH 4096       /* cells kept per class in the shared pool */
#define WATCH_MIN_NS 1000000u /* the watcher's first nap, ... */
#define WATCH_MAX_NS 8000000u /* ... doubled while no LIFO slot is full, to this */
#define BACKUP_NS 250000u     /* the backup wakes this long after a deadline (park.c) */
enum { ALARM_NONE, ALARM_MADE, ALARM_FAILED };   /* idle.alarm_state */

/* A spinlock for the books' shards, the inject queue and the cell pool:
 * each is held for a few pointer moves only, where a mutex's bookkeeping
 * (and its futex under contention) costs more than the wait. Yields the CPU
 * when the holder seems preempted. */
struct spinlock {
    atomic_flag f;
};

static inline void spin_lock(struct spinlock *l)
{
    unsigned spins = 0;

    /* acquire: pairs with the release in spin_unlock() */
    while (atomic_flag_test_and_set_explicit(&l->f, memory_order_acquire))
        if (++spins % 64 == 0)
            sched_yield();
}

static inline void spin_unlock(struct spinlock *l)
{
    atomic_flag_clear_explicit(&l->f, memory_order_release);
}

/* One shard of the books. Its first line is read on every wake (tasks point
 * at base), its second is written under the lock: kept apart. */
struct shard {
    struct weft__sched base;
    struct weft_runtime *rt;
    _Alignas(64) struct spinlock lock;
    struct weft__list cells;          /* ->lock */
    size_t count;                     /* ->lock */
    uint64_t seq;                     /* ->lock: cells linked so far (task ids) */
    /* Cells of this (worker) shard whose last reference was dropped on a
     * worker: pushed here without the lock, unlinked and recycled by the
     * owning worker in batches (weft__sched_drain_dead()). Linked through
     * ->next. */
    _Alignas(64) _Atomic(struct weft__task *) dead;
};

struct cell_block;                    /* cells.c */

struct worker {
    struct local_queue q;             /* first: 64-aligned */
    _Alignas(64) _Atomic(struct weft__task *) lifo;   /* owner and thieves */
    _Atomic uint64_t polls;           /* owner writes; anyone reads */
    _Atomic uint64_t spawned, completed;   /* owner writes; anyone reads */
    _Atomic uint64_t watch_mark;      /* the watcher writes: polls at its last look */
    /* the stall lint (park.c, watch_stall()): written by whichever worker
     * is the watcher (relaxed: heuristics, no data behind them) */
    _Atomic uint64_t stall_polls;     /* the poll count it is stuck at */
    _Atomic uint64_t stall_since_ns;  /* when the watcher first saw it stuck */
    _Atomic uint64_t stall_reported;  /* task id last reported, 0: none */
    _Atomic uint64_t stall_cpu_ns;    /* the thread's CPU time when first due, 0: not yet */
    _Atomic int tid;                  /* the worker thread's kernel id (0: none) */
    uint64_t watch_ns;                /* owner only: its nap while watching */
    uint64_t io_look_ns;              /* owner only: its last look at I/O after a yield */
    struct weft_runtime *rt;
    unsigned index;
    unsigned tick;                    /* owner only: polls to the next
                                       * periodic round (next_local()) */
    bool searching;                   /* owner only */
    unsigned wake_fifo;               /* owner only: 0, or 1 + the wakes made since a
                                       * parked worker's drive of the timers began:
                                       * they go to the local queue, not the LIFO slot
                                       * (park.c, weft__sched_drive_timers()) */
#if WEFT_TASK_STACKFUL_INLINE
    /* owner only: the worker side of a coroutine resumed in the worker
     * loop's frame, and whether the thread's FP control words are those
     * saved in it (weft__task_run_stackful(), task/stackful.h) */
    bool fp_known;
    struct weft__co_wside ws;
#endif
    struct weft__task_env env;        /* budget: owner only */
    /* metrics: owner writes (relaxed load+store), anyone reads */
    _Atomic uint64_t steals, overflows, parks, lifo_polls, stranded_taken;
    _Atomic uint64_t aborted;         /* of `completed`: by cancellation */
    /* cell caches (cells.c), owner only (and destroy): per class a LIFO of
     * at most CACHE_DEPTH / 2 cells (its bottom cell kept, so that it moves
     * as one chain) and a spare full chain of CACHE_DEPTH / 2, or NULL */
    struct weft__task *cache[CACHE_CLASSES], *cache_tail[CACHE_CLASSES];
    struct weft__task *spare[CACHE_CLASSES], *spare_tail[CACHE_CLASSES];
    unsigned cached[CACHE_CLASSES];
    /* cell blocks (cells.c), owner only (and destroy): per class the rest
     * of the block being carved (next cell, cells left) and the cells the
     * next block will hold; every block this worker made, linked through
     * its header, freed with the runtime; the bytes they hold (capped) */
    char *carve[CACHE_CLASSES];
    unsigned carve_left[CACHE_CLASSES];
    unsigned block_cells[CACHE_CLASSES];
    unsigned blocks_made[CACHE_CLASSES];
    size_t class_bytes[CACHE_CLASSES];    /* bytes of the class's blocks */
    struct cell_block *blocks;
    size_t block_bytes;
    pthread_t thread;
    char name[16];
    /* The spill list (schedule.c, "Spill lists"): what overflowed the
     * local queue, oldest first, linked through ->next. The owner pushes
     * and pops; a searching worker steals from its front. A line of its
     * own: thieves take the lock. */
    struct {
        _Alignas(64) struct spinlock lock;
        struct weft__task *head, *tail;   /* ->lock */
        _Atomic size_t len;           /* written under ->lock; read as a hint */
    } spill;
    _Alignas(64) pthread_mutex_t park_lock;
    pthread_cond_t park_cond;
    bool notified;                    /* ->park_lock */
    bool kicked;                      /* ->park_lock: a timer is due sooner, or
                                       * I/O started: look again */
    bool in_io;                       /* ->park_lock: waiting in epoll_wait (wake
                                       * it through the eventfd, not the cond) */
    bool in_alarm;                    /* ->park_lock: the backup, waiting in poll()
                                       * on the alarm (wake it through idle.alarm_efd) */
    bool sleeping;                    /* ->idle.lock: on the sleepers list */
    /* The timers armed by tasks polled on this worker (a wheel per worker,
     * see "Timers" in park.c): armed and cancelled under its own lock, so
     * a timeout around a fast future touches no shared line; fired by
     * whichever worker drives. */
    struct weft__time time;
};

struct weft_runtime {
    weft_flavor flavor;
    unsigned nworkers;                /* worker slots (1 for current-thread) */
    unsigned nthreads;                /* threads started */
    unsigned nshards;
    struct worker *workers;
    struct shard *shards;             /* nworkers + FOREIGN_SHARDS */

    struct {
        _Alignas(64) struct spinlock lock;   /* held for a few pointer moves */
        struct weft__task *head, *tail;   /* ->lock */
        _Atomic size_t len;           /* written under lock; read as a hint */
    } inject;

    struct {
        _Alignas(64) pthread_mutex_t lock;
        unsigned *sleepers;           /* ->lock: stack of worker indices */
        unsigned nsleepers;           /* ->lock */
        _Atomic unsigned num_sleeping;   /* == nsleepers, readable lock-free */
        _Atomic unsigned num_searching;
        /* index of the one sleeping worker that naps instead of sleeping,
         * to take LIFO tasks stuck behind a long poll; -1: none */
        _Atomic int watcher;
        _Atomic int spinner;          /* a worker looks before it sleeps */
        /* index of the one sleeping non-watcher that waits with a timeout
         * a little after the next deadline, in case the watcher is held
         * off the CPU (park.c, "The backup"); -1: none */
        _Atomic int backup;
        _Atomic uint64_t nap_until;   /* ms the watcher wakes at; UINT64_MAX */
        /* io_uring: the worker that owns the ring (waits in it whenever
         * it parks; see park.c), -1 before one claimed it or on epoll */
        _Atomic int io_owner;
        /* The backup's alarm (park.c, "The backup"), made by the first
         * backup: a timerfd (CLOCK_MONOTONIC, absolute) set BACKUP_NS
         * after the deadline the watcher naps towards, and an eventfd
         * that wakes the backup out of its poll(). */
        _Alignas(64) pthread_mutex_t alarm_lock;  /* a line of its own: set per nap */
        int alarm_tfd, alarm_efd;     /* -1 until made; written once, before
                                       * alarm_state's release store */
        _Atomic int alarm_state;      /* ALARM_NONE, ALARM_MADE, ALARM_FAILED */
        _Atomic uint64_t alarm_ns;    /* what alarm_tfd is set to (ns), 0 none:
                                       * written under alarm_lock, read as a hint */
    } idle;

    _Alignas(64) struct weft__io io;  /* epoll, driven by the watcher (apart from
                                       * the alarm's line) */

    struct cell_pool {
        _Alignas(64) struct spinlock lock;
        struct weft__task *head[CACHE_CLASSES];   /* ->lock */
        unsigned count[CACHE_CLASSES];            /* ->lock */
        _Atomic int nonempty;         /* set once a cell was ever freed */
        bool carved[CACHE_CLASSES];   /* ->lock: a block of the class exists
                                       * (cells.c: the pool then keeps all) */
    } pool;

    /* Read on every round or poll by every worker, rarely written: a line
     * of its own, apart from the counters below (a spawn from a plain
     * thread wrote foreign_spawned, and every worker wrote clock_ns, on
     * this line: each write cost the other cores a miss on `closed`) */
    _Alignas(64) _Atomic bool closed; /* queues refuse tasks; workers exit */
    /* weft/trace.h: a recording runs (a hint read on every poll and wake;
     * sched/trace.h has the protocol), and the recorder, made by the first
     * weft_trace_start() and freed with the runtime */
    _Atomic bool tracing;
    _Atomic(struct weft__trace *) trace;
    /* observability (src/observe/, weft/observe.h) */
    uint64_t created_ns;              /* immutable: weft_runtime_new() */
    _Atomic bool poll_timing;         /* weft_runtime_set_poll_timing() */
    /* the lint options in force (never NULL); older ones are kept, linked,
     * until destroy, so a worker may still read the one it loaded. Release
     * store under run_lock; workers load with acquire. */
    _Atomic(const struct weft__lint_cfg *) lint;
    /* Written often, from several threads. Tasks spawned and completed off
     * the workers (spawns from other threads, cancellations at shutdown);
     * the workers keep their own. active = all spawned - all completed; see
     * weft__sched_active_tasks(). */
    _Alignas(64) _Atomic uint64_t foreign_spawned, foreign_completed, foreign_aborted;
    /* the clock as a worker last read it (relaxed: a hint for the spawn
     * times of foreign spawns; see weft__sched_clock()) */
    _Atomic uint64_t clock_ns;
    _Atomic uint64_t lints;           /* reported (any thread: relaxed RMW, rare) */
    _Atomic unsigned run_waiters;     /* threads in run(): workers check */
    /* non-empty shards + 1 while the user holds the runtime + 1 per thread
     * inside weft_runtime_run() or weft_runtime_shutdown() (a free from
     * another thread may come meanwhile): the struct is freed when it
     * reaches 0 */
    _Atomic size_t holds;

    _Alignas(64) pthread_mutex_t run_lock;
    pthread_cond_t run_cond;          /* active hit 0, shut, driver left */
    bool shut;                        /* ->run_lock: spawn refused */
    bool driving;                     /* ->run_lock: current-thread driver */
    unsigned drivers_waiting;         /* ->run_lock: waiting to drive */
    bool shutting;                    /* ->run_lock: a shutdown is under way */
    bool shutdown_done;               /* ->run_lock */
    /* ->run_lock: threads in weft_join_wait() on a task of a current-thread
     * runtime (struct weft__blocked), stopped when the last driver leaves */
    struct weft__list blocked;
    /* Tasks shutdown claimed and has not cancelled yet, linked by ->next:
     * only the thread cancelling them touches it (see shutdown.c). */
    struct weft__task *claimed;
    /* weft/trace.h: start, stop, write and stats of this runtime, one at a
     * time (rare calls; a write may block on its FILE for as long as the
     * reader likes, so the lock is the runtime's own: another runtime's
     * calls never wait for it) */
    pthread_mutex_t trace_lock;

    /* The default blocking pool (weft__runtime_blocking() in runtime.c):
     * made on first use by the blocking layer, which hands in the calls to
     * stop it (at shutdown) and to release it (in weft__sched_destroy());
     * the scheduler knows nothing else of it. */
    struct {
        /* written once, under run_lock, with release: pairs with the
         * acquire load of the lock-free first look */
        _Atomic(void *) obj;
        void (*stop)(void *obj);      /* ->run_lock, then immutable */
        void (*release)(void *obj);   /* ->run_lock, then immutable */
        unsigned max_threads;         /* immutable: the option */
    } blocking;
    size_t coro_stack_size;           /* immutable: the option (0: the default) */
};

/* The worker this thread is (a worker thread, or a current-thread driver
 * inside run/block_on); NULL elsewhere. Defined in worker.c. */
extern WEFT_TLS struct worker *weft__sched_cur_worker;

/* A full fence. TSan does not model fences (gcc refuses them under
 * -fsanitize=thread); there a seq_cst RMW on a shared dummy stands in, which
 * orders the same way on the machines TSan runs on. */
#if defined(__SANITIZE_THREAD__)
extern _Atomic unsigned weft__sched_fence_dummy;   /* park.c */
#define full_fence() atomic_fetch_add_explicit(&weft__sched_fence_dummy, 0, memory_order_seq_cst)
#else
#define full_fence() atomic_thread_fence(memory_order_seq_cst)
#endif

static inline void counter_add(_Atomic uint64_t *c, uint64_t n)
{
    /* single writer: a relaxed load and store is enough, and cheaper than a
     * locked RMW; readers see some recent value */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Refresh w's reading of the clock (env.now_ns, and the runtime's copy for
 * foreign spawns): at cheap moments only, see struct weft__task_env. */
static inline void weft__sched_clock(struct worker *w)
{
    w->env.now_ns = weft__task_clock_ns();
    /* relaxed: a hint */
    atomic_store_explicit(&w->rt->clock_ns, w->env.now_ns, memory_order_relaxed);
}

static inline struct worker *local_worker(struct weft_runtime *rt)
{
    struct worker *w = weft__sched_cur_worker;

    return w && w->rt == rt ? w : NULL;
}

/* weft_runtime::shards[i].base is what tasks point at */
static inline struct weft_runtime *shard_rt(void *s)
{
    return ((struct shard *)s)->rt;
}

/* ---- Shared between the files of src/sched/ ------------------------------ */
/* runtime.c */
void weft__sched_destroy(struct weft_runtime *rt);

/* schedule.c */
struct weft__task *weft__sched_spill_pop(struct worker *v, size_t max, struct weft__task **rest,
                                         size_t *nrest);
struct weft__task *weft__sched_spill_drain(struct worker *w);
static inline bool weft__sched_spill_empty(struct worker *v)
{
    /* relaxed: a hint; the lock decides (see "Spill lists", schedule.c) */
    return atomic_load_explicit(&v->spill.len, memory_order_relaxed) == 0;
}
struct weft__task *weft__sched_inject_pop(struct weft_runtime *rt, size_t max,
                                          struct weft__task **rest, size_t *nrest, bool *left);
void weft__sched_push_local(struct worker *w, struct weft__task *t);
void weft__sched_push(struct weft_runtime *rt, struct weft__task *t, bool yield);
void weft__sched_push_new(struct weft_runtime *rt, struct worker *w, struct weft__task *t);
void weft__sched_schedule(void *s, struct weft__task *t, bool yield);

/* worker.c */
void weft__sched_enter(struct worker *w);
void weft__sched_leave(void);
void *weft__sched_worker_main(void *arg);
struct weft__task *weft__sched_next_local(struct worker *w);
void weft__sched_run_task(struct worker *w, struct weft__task *t);

/* park.c */
void weft__sched_notify_one(struct weft_runtime *rt);
void weft__sched_unpark_all(struct weft_runtime *rt);
bool weft__sched_end_search(struct worker *w);
bool weft__sched_work_anywhere(struct weft_runtime *rt);
void weft__sched_drive_timers(struct weft_runtime *rt, bool idle);
uint64_t weft__sched_timers_next(struct weft_runtime *rt);
void weft__sched_time_kick(void *ctx, uint64_t deadline);
void weft__sched_io_made(void *ctx);
void weft__sched_io_kick(void *ctx);
/* Is the calling thread one of runtime `ctx`'s workers? (io/uring.h: the
 * one-issuer ring's owner-to-be) */
bool weft__sched_io_is_worker(void *ctx);
struct weft__task *weft__sched_park(struct worker *w);

/* cells.c */
void *weft__sched_cell_alloc(struct weft_runtime *rt, const weft_future_type *type);
void weft__sched_cell_free(struct weft_runtime *rt, struct weft__task *t);
void weft__sched_release(void *s, struct weft__task *t);
void weft__sched_drain_dead(struct weft_runtime *rt, struct shard *sh);
void weft__sched_cells_destroy(struct weft_runtime *rt);

/* metrics.c */
void weft__sched_count_spawn(struct weft_runtime *rt, struct worker *w);
void weft__sched_completed(void *s, struct weft__task *t, bool cancelled);
void weft__sched_lint(void *s, struct weft__task *t, int kind, uint64_t value);
void weft__sched_lint_stall(struct weft_runtime *rt, unsigned victim, uint64_t id,
                            const char *name, uint64_t ns);
extern const struct weft__lint_cfg weft__lint_default;
uint64_t weft__sched_active_tasks(const struct weft_runtime *rt);
void weft__sched_check_quiescent(struct weft_runtime *rt);

/* drive.c */
int weft__sched_block(void *s, struct weft__task *t, struct weft__blocked *b);
void weft__sched_unblock(void *s, struct weft__blocked *b);
bool weft__sched_cancelling(void *s);

/* shutdown.c */
void weft__sched_close(struct weft_runtime *rt);
int weft__sched_help(struct weft_runtime *rt);
/* True on the thread running rt's shutdown (a drop it runs, at any depth). */
bool weft__sched_shutting_here(const struct weft_runtime *rt);

#endif
