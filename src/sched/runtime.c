/* SPDX-License-Identifier: MIT */
/* The runtime: workers, run queues, parking, spawning, run/block_on,
 * shutdown. docs/ARCHITECTURE.md tells the story; the rules are here.
 *
 * Where a runnable task waits (checked in this order by a worker):
 *   1. its LIFO slot: the task last woken or spawned by the task running on
 *      this worker (runs next: message passing stays in cache). At most
 *      MAX_LIFO_POLLS slot tasks run in a row, then the slot's task goes to
 *      the back of the local queue, so a ping-pong pair cannot starve it.
 *   2. every GLOBAL_INTERVAL-th poll, one task from the inject queue first
 *      (fairness for tasks woken from outside);
 *   3. its local queue (queue.h): bounded, stealable, FIFO;
 *   4. the inject queue (spinlock): wakes and spawns from other threads, and
 *      the overflow of full local queues, moved half a queue at a time;
 *   5. searching: steal half of another worker's local queue;
 *   6. a short look (one spinner at a time), then park. One parked worker,
 *      the watcher, naps instead of sleeping while others work, and takes a
 *      LIFO task stuck behind a long poll.
 *
 * Cells come from the worker's cache, then the runtime's shared pool, then
 * malloc; a cell freed on a worker that did not spawn it goes back through
 * its shard's lock-free dead stack.
 *
 * Locks (never two at once, never held while a future runs):
 *   inject.lock   the inject queue (a spinlock: a few pointer moves)
 *   idle.lock     the list of sleeping workers
 *   w->park_lock  one worker's wake-up flag
 *   shard->lock   one shard of the books (every live cell)
 *   run_lock      run()'s wait for "no active tasks", and the shutdown flag
 *
 * The runtime struct stays allocated while any cell is alive (the cell's
 * release unlinks it from its shard), so a waker on a foreign thread may
 * schedule a task at any time, even while the runtime is being freed. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sched/queue.h"
#include "task/task.h"
#include "io/reactor.h"
#include "sched/runtime.h"
#include "time/driver.h"
#include "util/alloc.h"
#include "util/list.h"
#include "weft/sched.h"

#define GLOBAL_INTERVAL 61    /* polls between inject checks; see ARCHITECTURE */
#define MAX_LIFO_POLLS 3      /* LIFO-slot tasks run in a row */
#define PARK_SPINS 32         /* looks (with sched_yield) before sleeping */
#define FOREIGN_SHARDS 8      /* shards for cells spawned off-runtime */
#define CACHE_CLASSES 8       /* cell caches: 64, 128, ... 512 bytes */
#define CACHE_DEPTH 256       /* cells kept per class per worker */
#define POOL_DEPTH 4096       /* cells kept per class in the shared pool */
#define MALLOC_ALIGN 16       /* what the allocation hook guarantees */
#define WATCH_MIN_NS 1000000u /* the watcher's first nap, ... */
#define WATCH_MAX_NS 8000000u /* ... doubled while no LIFO slot is full, to this */

/* A spinlock for the books' shards, the inject queue and the cell pool:
 * each is held for a few pointer moves only, where a mutex's bookkeeping
 * (and its futex under contention) costs more than the wait. Yields the CPU
 * when the holder seems preempted. */
struct spinlock {
    atomic_flag f;
};

static void spin_lock(struct spinlock *l)
{
    unsigned spins = 0;

    /* acquire: pairs with the release in spin_unlock() */
    while (atomic_flag_test_and_set_explicit(&l->f, memory_order_acquire))
        if (++spins % 64 == 0)
            sched_yield();
}

static void spin_unlock(struct spinlock *l)
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
    /* Cells of this (worker) shard whose last reference was dropped on a
     * worker: pushed here without the lock, unlinked and recycled by the
     * owning worker in batches (drain_dead()). Linked through ->next. */
    _Alignas(64) _Atomic(struct weft__task *) dead;
};

struct worker {
    struct local_queue q;             /* first: 64-aligned */
    _Alignas(64) _Atomic(struct weft__task *) lifo;   /* owner and thieves */
    _Atomic uint64_t polls;           /* owner writes; anyone reads */
    _Atomic uint64_t spawned, completed;   /* owner writes; anyone reads */
    _Atomic uint64_t watch_mark;      /* the watcher writes: polls at its last look */
    uint64_t watch_ns;                /* owner only: its nap while watching */
    struct weft_runtime *rt;
    unsigned index;
    unsigned tick;                    /* owner only */
    bool searching;                   /* owner only */
    struct weft__task_env env;        /* budget: owner only */
    /* metrics: owner writes (relaxed load+store), anyone reads */
    _Atomic uint64_t steals, overflows, parks, lifo_polls, stranded_taken;
    struct weft__task *cache[CACHE_CLASSES];   /* owner only (and destroy) */
    unsigned cached[CACHE_CLASSES];
    pthread_t thread;
    char name[16];
    _Alignas(64) pthread_mutex_t park_lock;
    pthread_cond_t park_cond;
    bool notified;                    /* ->park_lock */
    bool kicked;                      /* ->park_lock: a timer is due sooner, or
                                       * I/O started: look again */
    bool in_io;                       /* ->park_lock: waiting in epoll_wait (wake
                                       * it through the eventfd, not the cond) */
    bool sleeping;                    /* ->idle.lock: on the sleepers list */
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
        _Atomic uint64_t nap_until;   /* ms the watcher wakes at; UINT64_MAX */
    } idle;

    struct weft__time time;           /* timers, driven by the watcher */
    struct weft__io io;               /* epoll, driven by the watcher */

    struct cell_pool {
        _Alignas(64) struct spinlock lock;
        struct weft__task *head[CACHE_CLASSES];   /* ->lock */
        unsigned count[CACHE_CLASSES];            /* ->lock */
        _Atomic int nonempty;         /* set once a cell was ever freed */
    } pool;

    _Alignas(64) _Atomic bool closed; /* queues refuse tasks; workers exit */
    /* Tasks spawned and completed off the workers (spawns from other
     * threads, cancellations at shutdown); the workers keep their own.
     * active = all spawned - all completed; see active_tasks(). */
    _Atomic uint64_t foreign_spawned, foreign_completed;
    _Atomic unsigned run_waiters;     /* threads in run(): workers check */
    /* non-empty shards + 1 while the user holds the runtime: the struct is
     * freed when it reaches 0 */
    _Atomic size_t holds;

    _Alignas(64) pthread_mutex_t run_lock;
    pthread_cond_t run_cond;          /* active hit 0, shut, driver left */
    bool shut;                        /* ->run_lock: spawn refused */
    bool driving;                     /* ->run_lock: current-thread driver */
    bool shutting;                    /* ->run_lock: a shutdown is under way */
    bool shutdown_done;               /* ->run_lock */
};

static WEFT_TLS struct worker *cur_worker;

/* A full fence. TSan does not model fences (gcc refuses them under
 * -fsanitize=thread); there a seq_cst RMW on a shared dummy stands in, which
 * orders the same way on the machines TSan runs on. */
#if defined(__SANITIZE_THREAD__)
static _Atomic unsigned fence_dummy;
#define full_fence() atomic_fetch_add_explicit(&fence_dummy, 0, memory_order_seq_cst)
#else
#define full_fence() atomic_thread_fence(memory_order_seq_cst)
#endif

static void counter_add(_Atomic uint64_t *c, uint64_t n)
{
    /* single writer: a relaxed load and store is enough, and cheaper than a
     * locked RMW; readers see some recent value */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static struct worker *local_worker(struct weft_runtime *rt)
{
    struct worker *w = cur_worker;

    return w && w->rt == rt ? w : NULL;
}

/* ---- Inject queue ------------------------------------------------------------ */
/* Append the chain first..last (n tasks, linked by ->next); false if closed
 * (the caller still owns the chain). */
static bool inject_push(struct weft_runtime *rt, struct weft__task *first,
                        struct weft__task *last, size_t n)
{
    spin_lock(&rt->inject.lock);
    /* relaxed: `closed` is set before shutdown drains this queue under the
     * same lock, so a push that misses it is drained */
    if (atomic_load_explicit(&rt->closed, memory_order_relaxed)) {
        spin_unlock(&rt->inject.lock);
        return false;
    }
    last->next = NULL;
    if (rt->inject.tail)
        rt->inject.tail->next = first;
    else
        rt->inject.head = first;
    rt->inject.tail = last;
    atomic_store_explicit(&rt->inject.len,
                          atomic_load_explicit(&rt->inject.len, memory_order_relaxed) + n,
                          memory_order_relaxed);
    spin_unlock(&rt->inject.lock);
    return true;
}

/* Take up to `max` tasks: returns the first, links the rest into *rest. */
static struct weft__task *inject_pop(struct weft_runtime *rt, size_t max,
                                     struct weft__task **rest, size_t *nrest)
{
    struct weft__task *first, *t;
    size_t n, len;

    /* relaxed: a hint; the lock below decides (see notify_one for why a
     * stale 0 cannot lose a task) */
    if (atomic_load_explicit(&rt->inject.len, memory_order_relaxed) == 0)
        return NULL;
    spin_lock(&rt->inject.lock);
    len = atomic_load_explicit(&rt->inject.len, memory_order_relaxed);
    first = rt->inject.head;
    if (first == NULL) {
        spin_unlock(&rt->inject.lock);
        return NULL;
    }
    n = 1;
    t = first;
    while (n < max && t->next) {
        t = t->next;
        n++;
    }
    rt->inject.head = t->next;
    if (rt->inject.head == NULL)
        rt->inject.tail = NULL;
    atomic_store_explicit(&rt->inject.len, len - n, memory_order_relaxed);
    spin_unlock(&rt->inject.lock);
    t->next = NULL;
    *rest = first->next;
    *nrest = n - 1;
    return first;
}

static void check_quiescent(struct weft_runtime *rt);
static void runtime_destroy(struct weft_runtime *rt);
static void drain_dead(struct weft_runtime *rt, struct shard *sh);

/* ---- Parking -------------------------------------------------------------------
 *  pusher (any thread)                    worker going to sleep
 *  put task on a queue                    add self to sleepers, num_sleeping++
 *  fence                       [seq_cst]  fence                       [seq_cst]
 *  num_searching == 0 and                 any queue non-empty? take self off
 *  num_sleeping > 0? wake one               the list and go back to work
 *                                         else wait for `notified`
 * Both sides store then fence then load (Dekker): at least one of them sees
 * the other, so a task is never left queued with every worker asleep. A
 * searcher that stops searching re-checks the queues the same way, so "a
 * searcher exists" is never a reason to leave a task unseen. */
/* park_lock held: wake w wherever it waits. */
static void wake_parked(struct worker *w)
{
    if (w->in_io)
        weft__io_wake(&w->rt->io);
    else
        pthread_cond_signal(&w->park_cond);
}

static void unpark(struct worker *w)
{
    pthread_mutex_lock(&w->park_lock);
    w->notified = true;
    wake_parked(w);
    pthread_mutex_unlock(&w->park_lock);
}

static void notify_one(struct weft_runtime *rt)
{
    struct worker *w = NULL;

    full_fence();      /* pairs: park(), end_search() */
    if (atomic_load_explicit(&rt->idle.num_searching, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&rt->idle.num_sleeping, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&rt->idle.lock);
    if (rt->idle.nsleepers > 0 &&
        atomic_load_explicit(&rt->idle.num_searching, memory_order_relaxed) == 0) {
        w = &rt->workers[rt->idle.sleepers[--rt->idle.nsleepers]];
        w->sleeping = false;
        atomic_fetch_sub_explicit(&rt->idle.num_sleeping, 1, memory_order_relaxed);
        /* it wakes up searching: the next pusher need not wake another */
        atomic_fetch_add_explicit(&rt->idle.num_searching, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&rt->idle.lock);
    if (w)
        unpark(w);
}

/* After a push to this worker's own queue or LIFO slot: the same, but
 * without the fence. A sleeper that misses this push costs parallelism,
 * never the task: this worker is awake and will run it itself. */
static void notify_local(struct weft_runtime *rt)
{
    if (atomic_load_explicit(&rt->idle.num_searching, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&rt->idle.num_sleeping, memory_order_relaxed) == 0)
        return;
    notify_one(rt);
}

static void unpark_all(struct weft_runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++)
        unpark(&rt->workers[i]);
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

/* Returns true when w was the last searcher. */
static bool end_search(struct worker *w)
{
    unsigned prev;

    if (!w->searching)
        return false;
    w->searching = false;
    prev = atomic_fetch_sub_explicit(&w->rt->idle.num_searching, 1, memory_order_seq_cst);
    full_fence();      /* pairs: notify_one() */
    return prev == 1;
}

/* Tasks in a run queue (not counting LIFO slots: their owner runs them). */
static bool work_anywhere(struct weft_runtime *rt)
{
    if (atomic_load_explicit(&rt->inject.len, memory_order_relaxed))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (lq_len(&rt->workers[i].q))
            return true;
    return false;
}

/* ---- The watcher ----------------------------------------------------------------
 * A task in a LIFO slot runs when its worker's current poll returns. If that
 * poll runs long, the task would wait with it, even with other workers idle.
 * So while any worker is awake, one sleeping worker (the watcher) naps
 * instead of sleeping: every WATCH_MIN_NS..WATCH_MAX_NS it looks at the other
 * workers' LIFO slots and takes a task from a worker whose poll count has not
 * moved since its last look (a busy worker polls thousands of times a
 * millisecond). Pushing into an empty LIFO slot notifies nobody (message
 * passing stays on one worker) unless there is no watcher. When every other
 * worker is asleep the watcher resigns and sleeps too: idle costs nothing. */
static bool others_awake(struct worker *w)
{
    /* relaxed: a hint; a wrong guess costs one nap or one late look */
    return atomic_load_explicit(&w->rt->idle.num_sleeping, memory_order_relaxed) <
           w->rt->nworkers;
}

/* Become (or stay) the watcher; false if another worker is, or there is
 * nothing to watch: nobody else awake, no timer pending and no descriptor
 * registered (then resign). The watcher also drives the timers and I/O: it
 * naps until the next deadline, in epoll_wait while descriptors are open. */
static bool try_watch(struct worker *w)
{
    _Atomic int *watcher = &w->rt->idle.watcher;
    int cur = atomic_load_explicit(watcher, memory_order_relaxed);

    bool timers = weft__time_next(&w->rt->time) != UINT64_MAX;
    bool needed = timers || weft__io_active(&w->rt->io) ||
                  (w->rt->nworkers > 1 && others_awake(w));

    if (cur == (int)w->index) {
        if (needed)
            return true;
        atomic_store_explicit(watcher, -1, memory_order_relaxed);
        return false;
    }
    /* relaxed: the role guards no data, only who naps */
    return cur == -1 && needed &&
           atomic_compare_exchange_strong_explicit(watcher, &cur, (int)w->index,
                                                   memory_order_relaxed, memory_order_relaxed);
}

static void resign_watch(struct worker *w)
{
    int me = (int)w->index;

    atomic_compare_exchange_strong_explicit(&w->rt->idle.watcher, &me, -1,
                                            memory_order_relaxed, memory_order_relaxed);
}

/* The watcher's look: take a LIFO task whose worker has not polled since
 * the last look. *seen: some slot was full (look again soon). */
static struct weft__task *watch_look(struct worker *w, bool *seen)
{
    struct weft_runtime *rt = w->rt;

    *seen = false;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *v = &rt->workers[i];
        uint64_t polls;

        if (v == w)
            continue;
        polls = atomic_load_explicit(&v->polls, memory_order_relaxed);
        if (atomic_load_explicit(&v->lifo, memory_order_relaxed)) {
            *seen = true;
            if (polls == atomic_load_explicit(&v->watch_mark, memory_order_relaxed)) {
                /* acq_rel: pairs with the owner's store/exchange of the slot */
                struct weft__task *t = atomic_exchange_explicit(&v->lifo, NULL,
                                                                memory_order_acq_rel);
                if (t) {
                    counter_add(&w->stranded_taken, 1);
                    return t;
                }
            }
        }
        atomic_store_explicit(&v->watch_mark, polls, memory_order_relaxed);
    }
    return NULL;
}

/* Remove w from the sleepers list; false if a notifier already took it off
 * (then it will set `notified` and has counted w as searching). */
static bool leave_sleepers(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    bool was = false;

    pthread_mutex_lock(&rt->idle.lock);
    if (w->sleeping) {
        for (unsigned i = 0; i < rt->idle.nsleepers; i++) {
            if (rt->idle.sleepers[i] == w->index) {
                rt->idle.sleepers[i] = rt->idle.sleepers[--rt->idle.nsleepers];
                break;
            }
        }
        w->sleeping = false;
        atomic_fetch_sub_explicit(&rt->idle.num_sleeping, 1, memory_order_relaxed);
        was = true;
    }
    pthread_mutex_unlock(&rt->idle.lock);
    return was;
}

/* CLOCK_MONOTONIC now + ns, for the park conditions' timed waits. */
static struct timespec mono_after(uint64_t ns)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += (time_t)(ns / 1000000000u);
    t.tv_nsec += (long)(ns % 1000000000u);
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* The watcher's wait in epoll_wait: as wait_notified(), but events that
 * come meanwhile wake their tasks (into this worker's queues). *events: how
 * many sources were ready. */
static bool wait_io(struct worker *w, uint64_t timeout_ns, int *events)
{
    int n = 0;
    bool got;

    pthread_mutex_lock(&w->park_lock);
    if (!w->notified && !w->kicked) {
        w->in_io = true;
        pthread_mutex_unlock(&w->park_lock);
        n = weft__io_poll(&w->rt->io, timeout_ns ? (int64_t)timeout_ns : -1);
        pthread_mutex_lock(&w->park_lock);
        w->in_io = false;
        if (n < 0) {
            /* a busy worker is looking (epoll_wait with no timeout, a few
             * microseconds): nap briefly on the condition variable, then
             * park again and retry (a longer nap would hold up events) */
            struct timespec until = mono_after(timeout_ns && timeout_ns < 50000u ? timeout_ns
                                                                                : 50000u);

            if (!w->notified && !w->kicked)
                pthread_cond_timedwait(&w->park_cond, &w->park_lock, &until);
            n = 0;
        }
    }
    got = w->notified;
    w->notified = false;
    w->kicked = false;
    pthread_mutex_unlock(&w->park_lock);
    *events = n;
    return got;
}

/* Wait for `notified`; with `timeout_ns` (0: none), give up after it, or
 * when kicked (a timer due sooner): false. */
static bool wait_notified(struct worker *w, uint64_t timeout_ns)
{
    struct timespec until;
    bool got;

    if (timeout_ns)
        until = mono_after(timeout_ns);
    pthread_mutex_lock(&w->park_lock);
    while (!w->notified && !w->kicked) {
        if (!timeout_ns)
            pthread_cond_wait(&w->park_cond, &w->park_lock);
        else if (pthread_cond_timedwait(&w->park_cond, &w->park_lock, &until) != 0)
            break;
    }
    got = w->notified;
    w->notified = false;
    w->kicked = false;                /* a kick ends a nap like its timeout */
    pthread_mutex_unlock(&w->park_lock);
    return got;
}

/* Fire due timers, if any are due. */
static void drive_timers(struct weft_runtime *rt)
{
    uint64_t next = weft__time_next(&rt->time), now;

    if (next == UINT64_MAX)
        return;
    now = weft__now_ms();
    if (next <= now)
        weft__time_drive(&rt->time, now);
}

/* The watcher's nap: WATCH_MIN..MAX_NS while others work, cut short by the
 * next timer; published in nap_until so that an earlier timer kicks it. */
static uint64_t nap_ns(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    uint64_t nap = rt->nworkers > 1 && others_awake(w) ? w->watch_ns : UINT64_MAX;
    uint64_t next = weft__time_next(&rt->time), now_ns = weft__now_ns(), now = now_ns / 1000000u;

    if (next != UINT64_MAX) {
        /* to the nanosecond: a nap computed from whole milliseconds would
         * wake up to a millisecond after the deadline */
        uint64_t until = next * 1000000u > now_ns ? next * 1000000u - now_ns : 1;

        if (until < nap)
            nap = until;
    }
    if (nap == UINT64_MAX) {
        if (weft__io_active(&rt->io)) {
            /* only descriptors to wait for: epoll_wait without a limit */
            atomic_store_explicit(&rt->idle.nap_until, UINT64_MAX - 1, memory_order_relaxed);
            return 0;
        }
        nap = WATCH_MAX_NS;           /* nothing to wait for: look now and then */
    }
    atomic_store_explicit(&rt->idle.nap_until, now + nap / 1000000u, memory_order_relaxed);
    return nap;
}

/* A timer was registered for `deadline`: if the watcher naps past it, wake
 * it early (it re-reads the next deadline). Called by the time layer. */
static void time_kick(void *ctx, uint64_t deadline)
{
    struct weft_runtime *rt = ctx;
    int idx = atomic_load_explicit(&rt->idle.watcher, memory_order_relaxed);
    struct worker *w;

    if (idx < 0 || atomic_load_explicit(&rt->idle.nap_until, memory_order_relaxed) <= deadline)
        return;
    w = &rt->workers[idx];
    pthread_mutex_lock(&w->park_lock);
    w->kicked = true;
    wake_parked(w);
    pthread_mutex_unlock(&w->park_lock);
}

/* The first descriptor was registered: a watcher napping on its condition
 * variable must move into epoll_wait. Pairs with the fence in park(): the
 * registrar's seq_cst increment of `live` and this seq_cst load against the
 * watcher's claim of the role, fence, and load of `live`: either the
 * watcher sees the descriptor, or this sees the watcher and kicks it. */
static void io_kick(void *ctx)
{
    struct weft_runtime *rt = ctx;
    int idx = atomic_load_explicit(&rt->idle.watcher, memory_order_seq_cst);
    struct worker *w;

    if (idx < 0) {
        /* no watcher: every worker is busy (one will look every few dozen
         * polls and park as the watcher) or asleep without a role (wake
         * one: it finds no work, parks again and takes the role, now that
         * a descriptor is registered). A searcher, if any, parks after its
         * seq_cst end of search and sees `live` then. */
        notify_one(rt);
        return;
    }
    w = &rt->workers[idx];
    pthread_mutex_lock(&w->park_lock);
    w->kicked = true;
    wake_parked(w);
    pthread_mutex_unlock(&w->park_lock);
}

/* Sleep until there may be work. Returns with w->searching set if a
 * notifier woke it (the notifier counted it as searching). The watcher naps
 * instead and may come back with a stranded LIFO task to run. */
static struct weft__task *park(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    struct weft__task *t;
    bool seen;
    int events = 0;

    if (end_search(w) && work_anywhere(rt)) {
        /* The last searcher sees work: pushers that saw it searching woke
         * nobody, so it hands the search on before going back to work
         * itself (there may be more tasks than it can run). */
        notify_one(rt);
        return NULL;
    }
    pthread_mutex_lock(&rt->idle.lock);
    rt->idle.sleepers[rt->idle.nsleepers++] = w->index;
    w->sleeping = true;
    atomic_fetch_add_explicit(&rt->idle.num_sleeping, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&rt->idle.lock);
    full_fence();      /* pairs: notify_one() */
    if (work_anywhere(rt) || atomic_load_explicit(&rt->closed, memory_order_acquire)) {
        if (leave_sleepers(w)) {
            notify_one(rt);           /* as above: pass the search on */
            return NULL;
        }
        while (!wait_notified(w, 0))  /* a notifier is on its way (kicks aside) */
            ;
        w->searching = true;          /* it counted us as searching */
        return NULL;
    }
    check_quiescent(rt);
    drain_dead(rt, &rt->shards[w->index]);
    counter_add(&w->parks, 1);
    if (!try_watch(w)) {
        wait_notified(w, 0);          /* sleep */
    } else if (full_fence(), /* pairs: io_kick() */
               !(weft__io_active(&rt->io) ? wait_io(w, nap_ns(w), &events)
                                          : wait_notified(w, nap_ns(w)))) {
        if (!leave_sleepers(w)) {     /* a notifier took us meanwhile */
            while (!wait_notified(w, 0))
                ;
            resign_watch(w);
            w->searching = true;
            return NULL;
        }
        atomic_store_explicit(&rt->idle.nap_until, UINT64_MAX, memory_order_relaxed);
        drive_timers(rt);
        t = rt->nworkers > 1 ? watch_look(w, &seen) : NULL;
        if (rt->nworkers < 2)
            seen = false;
        w->watch_ns = seen ? WATCH_MIN_NS
                           : w->watch_ns * 2 > WATCH_MAX_NS ? WATCH_MAX_NS : w->watch_ns * 2;
        /* Awake now, and it may find work before it parks again: an awake
         * watcher watches nobody, so give the role up; the next worker to
         * park (this one, most likely) takes it again. */
        resign_watch(w);
        /* I/O woke tasks here: while this worker runs them, another one
         * should be in epoll_wait, so wake a sleeper to take the role. */
        if (events > 0)
            notify_one(rt);
        return t;
    }
    atomic_store_explicit(&rt->idle.nap_until, UINT64_MAX, memory_order_relaxed);
    resign_watch(w);
    /* woken by notify_one (which counted us as searching) or by shutdown */
    if (leave_sleepers(w))
        return NULL;                  /* shutdown: not counted */
    w->searching = true;
    return NULL;
}

/* ---- Scheduling -------------------------------------------------------------------- */
/* Owner: push to the back of the local queue; when it is full, move half of
 * it (and t) to the inject queue in one batch. */
static void push_local(struct worker *w, struct weft__task *t)
{
    struct weft__task *first, *last;

    for (;;) {
        if (lq_try_push(&w->q, t))
            return;
        if (lq_claim_half(&w->q, &first, &last)) {
            last->next = t;
            t->next = NULL;           /* the chain ends here even if the push fails */
            counter_add(&w->overflows, 1);
            if (!inject_push(w->rt, first, t, LQ_CAP / 2 + 1)) {
                /* closed: shutdown drops queue references; do it here */
                while (first) {
                    struct weft__task *next = first->next;

                    weft__task_ref_dec(first);
                    first = next;
                }
            }
            return;
        }
        /* a stealer is at work: it will make room */
        if (!inject_push(w->rt, t, t, 1))
            weft__task_ref_dec(t);
        return;
    }
}

static void schedule(struct weft_runtime *rt, struct weft__task *t, bool yield)
{
    struct worker *w = local_worker(rt);

    if (w == NULL) {
        /* A foreign thread (a waker on a plain thread). Once the task is
         * in the inject queue, a worker may run it to completion and free
         * it, the last cell, and with it the runtime, while this thread
         * still reads the runtime in notify_one(): hold the runtime for
         * the duration. Safe to take: the caller's reference keeps the
         * cell, so its shard, so the runtime, alive at this point. */
        atomic_fetch_add_explicit(&rt->holds, 1, memory_order_relaxed);
        if (!inject_push(rt, t, t, 1))
            weft__task_ref_dec(t);    /* closed: drop the queue's reference */
        else
            notify_one(rt);
        if (atomic_fetch_sub_explicit(&rt->holds, 1, memory_order_acq_rel) == 1)
            runtime_destroy(rt);
        return;
    }
    if (yield) {
        push_local(w, t);
    } else if (atomic_load_explicit(&w->lifo, memory_order_relaxed) == NULL) {
        /* Empty slot: thieves only ever take a task out (exchange with
         * NULL), so a plain store cannot lose one. release: the task's
         * state before a thief's acquire exchange. Runs next, here: wake
         * nobody, unless nobody watches for a long poll (see "watcher"). */
        atomic_store_explicit(&w->lifo, t, memory_order_release);
        if (atomic_load_explicit(&rt->idle.watcher, memory_order_relaxed) == -1)
            notify_local(rt);
        return;
    } else {
        struct weft__task *prev = atomic_exchange_explicit(&w->lifo, t, memory_order_acq_rel);

        if (prev)
            push_local(w, prev);
    }
    notify_local(rt);
}

/* ---- The scheduler interface of tasks ------------------------------------------------ */
static struct weft_runtime *shard_rt(void *s)
{
    return ((struct shard *)s)->rt;
}

static void sched_schedule(void *s, struct weft__task *t, bool yield)
{
    schedule(shard_rt(s), t, yield);
}

/* ---- Counting active tasks ----------------------------------------------------
 * No shared counter on the hot path: each worker counts the tasks it
 * spawned and completed (owner-only counters), other threads use the two
 * shared ones. The runtime is quiescent when completed == spawned:
 *  - reading every `completed` before every `spawned` makes a false "0"
 *    impossible (each counter only grows, and a task's completion is
 *    counted after its spawn), so run() never returns early;
 *  - run() must also be told when it happens. A thread entering run() bumps
 *    run_waiters and then looks (full fence between); a worker about to
 *    park looks at run_waiters after its own fence, and, if someone waits,
 *    checks under run_lock and wakes them. Whichever of them comes last sees
 *    the other's writes (Dekker), and the last worker to check under
 *    run_lock sees every worker's final counts (each counted before its own
 *    final check). */
static void count_spawn(struct weft_runtime *rt, struct worker *w)
{
    if (w)
        counter_add(&w->spawned, 1);
    else
        /* release: pairs with the acquire in active_tasks() */
        atomic_fetch_add_explicit(&rt->foreign_spawned, 1, memory_order_release);
}

static void sched_completed(void *s, struct weft__task *t)
{
    struct weft_runtime *rt = shard_rt(s);
    struct worker *w = local_worker(rt);

    (void)t;                          /* may be freed already: not touched */
    if (w) {
        /* release: this completion (and what the task did) before anyone
         * who reads the count with acquire */
        atomic_store_explicit(&w->completed,
                              atomic_load_explicit(&w->completed, memory_order_relaxed) + 1,
                              memory_order_release);
    } else {
        atomic_fetch_add_explicit(&rt->foreign_completed, 1, memory_order_release);
    }
}

static uint64_t active_tasks(const struct weft_runtime *rt)
{
    uint64_t done = atomic_load_explicit(&rt->foreign_completed, memory_order_acquire);
    uint64_t spawned = 0;

    for (unsigned i = 0; i < rt->nworkers; i++)
        done += atomic_load_explicit(&rt->workers[i].completed, memory_order_acquire);
    spawned = atomic_load_explicit(&rt->foreign_spawned, memory_order_acquire);
    for (unsigned i = 0; i < rt->nworkers; i++)
        spawned += atomic_load_explicit(&rt->workers[i].spawned, memory_order_acquire);
    return spawned > done ? spawned - done : 0;
}

/* A worker with nothing to do, after its full fence: wake run() waiters if
 * every task has completed. */
static void check_quiescent(struct weft_runtime *rt)
{
    if (atomic_load_explicit(&rt->run_waiters, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&rt->run_lock);
    if (active_tasks(rt) == 0)
        pthread_cond_broadcast(&rt->run_cond);
    pthread_mutex_unlock(&rt->run_lock);
}

static void runtime_destroy(struct weft_runtime *rt);

static unsigned cache_class(size_t size)
{
    return (unsigned)((size + 63) / 64);      /* 1..CACHE_CLASSES: cacheable */
}

/* Cells live in three places on their way back to the allocator: the
 * worker's own cache (no lock), the runtime's shared pool (a spinlock, moved
 * in batches of half a cache), then free(). The pool is what lets cells freed
 * on workers be reused by spawns from other threads: without it, a thread
 * spawning into the runtime mallocs every cell while the workers free them,
 * and the two sides fight over the allocator's arena lock (W2: a third of
 * the time went to that lock's futex). */
static void pool_put(struct weft_runtime *rt, unsigned c, struct weft__task *first,
                     struct weft__task *last, unsigned n)
{
    struct cell_pool *p = &rt->pool;

    spin_lock(&p->lock);
    if (p->count[c] + n <= POOL_DEPTH) {
        last->next = p->head[c];
        p->head[c] = first;
        p->count[c] += n;
        first = NULL;
    }
    spin_unlock(&p->lock);
    while (first) {                   /* the pool is full: back to malloc */
        struct weft__task *next = first == last ? NULL : first->next;

        weft__free(first);
        first = next;
    }
}

/* Take up to `max` cells of class c; returns the chain, *n its length. */
static struct weft__task *pool_take(struct weft_runtime *rt, unsigned c, unsigned max,
                                    unsigned *n)
{
    struct cell_pool *p = &rt->pool;
    struct weft__task *first, *t;
    unsigned k = 0;

    /* relaxed peek: an empty pool is the common case for a fresh runtime */
    if (atomic_load_explicit(&p->nonempty, memory_order_relaxed) == 0)
        return NULL;
    spin_lock(&p->lock);
    first = t = p->head[c];
    if (t) {
        for (k = 1; k < max && t->next; k++)
            t = t->next;
        p->head[c] = t->next;
        p->count[c] -= k;
        t->next = NULL;
    }
    spin_unlock(&p->lock);
    *n = k;
    return first;
}

static void cell_free(struct weft_runtime *rt, struct weft__task *t)
{
    size_t align = weft__task_cell_align(t->type);
    unsigned c = cache_class(weft__task_cell_size(t->type)) - 1;
    struct worker *w = local_worker(rt);

    if (align > MALLOC_ALIGN) {
        weft__free(((void **)(void *)t)[-1]);
        return;
    }
    if (c >= CACHE_CLASSES) {
        weft__free(t);
        return;
    }
    atomic_store_explicit(&rt->pool.nonempty, 1, memory_order_relaxed);
    if (w == NULL) {
        pool_put(rt, c, t, t, 1);
        return;
    }
    t->next = w->cache[c];
    w->cache[c] = t;
    if (++w->cached[c] == CACHE_DEPTH) {
        /* full: the older half goes to the pool in one batch */
        struct weft__task *keep = w->cache[c], *first, *last;

        for (unsigned i = 1; i < CACHE_DEPTH / 2; i++)
            keep = keep->next;
        first = last = keep->next;
        while (last->next)
            last = last->next;
        keep->next = NULL;
        w->cached[c] = CACHE_DEPTH / 2;
        pool_put(rt, c, first, last, CACHE_DEPTH / 2);
    }
}

static void *cell_alloc(struct weft_runtime *rt, const weft_future_type *type)
{
    size_t size = weft__task_cell_size(type), align = weft__task_cell_align(type);
    unsigned c = cache_class(size) - 1, n;
    struct worker *w = local_worker(rt);
    struct weft__task *t;
    char *raw;
    void *cell;

    if (align > MALLOC_ALIGN) {
        raw = weft__malloc(size + align + sizeof(void *));
        if (raw == NULL)
            return NULL;
        cell = (void *)(((uintptr_t)raw + sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1));
        ((void **)cell)[-1] = raw;
        return cell;
    }
    if (c >= CACHE_CLASSES)
        return weft__malloc(size);
    if (w) {
        if (w->cache[c] == NULL)      /* recycle what the others freed */
            drain_dead(rt, &rt->shards[w->index]);
        if (w->cache[c] == NULL) {    /* refill from the pool */
            w->cache[c] = pool_take(rt, c, CACHE_DEPTH / 8, &n);
            w->cached[c] = w->cache[c] ? n : 0;
        }
        if ((t = w->cache[c]) != NULL) {
            w->cache[c] = t->next;
            w->cached[c]--;
            return t;
        }
    } else if ((t = pool_take(rt, c, 1, &n)) != NULL) {
        return t;
    }
    /* round cells up to their class so any cell of a class fits */
    return weft__malloc((size_t)(c + 1) * 64);
}

/* A cell's last reference is gone.
 *   on a worker of this runtime that did not spawn it: push it on its
 *     shard's dead stack (one CAS, no lock); the shard's owner unlinks and
 *     recycles it (drain_dead()).
 *     Workers and the current-thread driver only exist before shutdown, which
 *     drains every stack once they are gone, so nothing is left behind;
 *   anywhere else (its own worker, foreign threads, shutdown, a worker of
 *     another runtime): unlink it under the shard's lock and free it here.
 * Before the stacks, a worker freeing a cell another worker spawned took
 * that worker's shard lock: the two fought over it on every task (W1 with 2
 * workers spent 40% of spawn on that lock). */
static void sched_release(void *s, struct weft__task *t)
{
    struct shard *sh = s;
    struct weft_runtime *rt = sh->rt;
    struct weft__task *head;
    bool emptied;

    struct worker *w = local_worker(rt);

    /* another worker's cell: hand it back without touching its lock */
    if (w && sh < &rt->shards[rt->nworkers] && sh != &rt->shards[w->index]) {
        head = atomic_load_explicit(&sh->dead, memory_order_relaxed);
        do {
            t->next = head;
        } while (!atomic_compare_exchange_weak_explicit(&sh->dead, &head, t,
                                                        memory_order_release, /* pairs: drain_dead() */
                                                        memory_order_relaxed));
        return;
    }
    spin_lock(&sh->lock);
    weft__list_remove(&t->owned);
    emptied = --sh->count == 0;
    spin_unlock(&sh->lock);
    cell_free(rt, t);
    /* acq_rel: every shard's last release happens before the destroy */
    if (emptied && atomic_fetch_sub_explicit(&rt->holds, 1, memory_order_acq_rel) == 1)
        runtime_destroy(rt);
}

/* Unlink and recycle the cells on shard sh's dead stack. Called by the
 * shard's owner, or by shutdown once no worker runs. */
static void drain_dead(struct weft_runtime *rt, struct shard *sh)
{
    struct weft__task *t, *next;
    bool emptied;

    if (atomic_load_explicit(&sh->dead, memory_order_relaxed) == NULL)
        return;
    /* acquire: pairs with the pushes' release (the cells' last uses) */
    t = atomic_exchange_explicit(&sh->dead, NULL, memory_order_acquire);
    if (t == NULL)
        return;
    spin_lock(&sh->lock);
    for (next = t; next; next = next->next) {
        weft__list_remove(&next->owned);
        sh->count--;
    }
    emptied = sh->count == 0;
    spin_unlock(&sh->lock);
    for (; t; t = next) {
        next = t->next;
        cell_free(rt, t);
    }
    if (emptied && atomic_fetch_sub_explicit(&rt->holds, 1, memory_order_acq_rel) == 1)
        runtime_destroy(rt);
}

static const struct weft__sched_ops runtime_ops = {
    sched_schedule, sched_completed, sched_release
};

/* ---- Finding work ------------------------------------------------------------------ */
/* Move a chain from the inject queue into w's local queue. */
static void take_chain(struct worker *w, struct weft__task *rest)
{
    while (rest) {
        struct weft__task *next = rest->next;

        push_local(w, rest);
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
    t = inject_pop(rt, max, &rest, &n);
    take_chain(w, rest);
    return t;
}

static struct weft__task *next_local(struct worker *w)
{
    struct weft__task *t;

    if (++w->tick % GLOBAL_INTERVAL == 0) {
        /* timers and I/O first: what they wake lands in our LIFO slot,
         * which is looked at next (looking at it before would strand a
         * task woken here when the queues are empty: park() does not count
         * LIFO slots as work) */
        drive_timers(w->rt);
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

/* Poll t, then whatever lands in the LIFO slot, MAX_LIFO_POLLS at most. */
static void run_task(struct worker *w, struct weft__task *t)
{
    for (unsigned n = 0;; n++) {
        counter_add(&w->polls, 1);
        if (weft__task_run(t, &w->env))
            push_local(w, t);         /* yielded or self-woken: to the back */
        t = atomic_load_explicit(&w->lifo, memory_order_relaxed) ?
                atomic_exchange_explicit(&w->lifo, NULL, memory_order_acq_rel) :
                NULL;
        if (t == NULL)
            return;
        if (n == MAX_LIFO_POLLS) {
            push_local(w, t);         /* its turn comes after the queue's */
            return;
        }
        counter_add(&w->lifo_polls, 1);
    }
}

/* Before sleeping, look again for a little while, yielding the CPU: work
 * that arrives within a few microseconds (a stream of spawns from another
 * thread) is then picked up without a futex wake-up on either side. A
 * bounded spin, so an idle runtime still goes to sleep at once in CPU terms. */
static bool spin_for_work(struct worker *w)
{
    _Atomic int *spinner = &w->rt->idle.spinner;
    int idle = 0;
    bool found = false;

    /* one spinner at a time: more would only race each other for the same
     * task (measured: with 16 workers, W2 cost 3.5x what it cost with 1) */
    if (atomic_load_explicit(spinner, memory_order_relaxed) ||
        !atomic_compare_exchange_strong_explicit(spinner, &idle, 1, memory_order_relaxed,
                                                 memory_order_relaxed))
        return false;
    for (unsigned i = 0; i < PARK_SPINS && !found; i++) {
        found = work_anywhere(w->rt) || atomic_load_explicit(&w->rt->closed, memory_order_relaxed);
        if (!found)
            sched_yield();
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
    t = next_local(w);
    if (t == NULL && rt->nworkers > 1 && begin_search(w))
        t = steal_work(w);
    if (t) {
        /* a searcher that found work hands the search on */
        if (end_search(w))
            notify_one(rt);
        run_task(w, t);
        return true;
    }
    if (spin_for_work(w))
        return true;
    t = park(w);                      /* the watcher may bring a task back */
    if (t)
        run_task(w, t);
    return true;
}

static void enter_worker(struct worker *w)
{
    cur_worker = w;
    weft__task_driver = w;
}

static void leave_worker(void)
{
    cur_worker = NULL;
    weft__task_driver = NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    pthread_setname_np(pthread_self(), w->name);
    enter_worker(w);
    while (worker_round(w))
        ;
    end_search(w);
    leave_worker();
    return NULL;
}

/* ---- Lifecycle -------------------------------------------------------------------------- */
static void runtime_destroy(struct weft_runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = &rt->workers[i];

        for (unsigned c = 0; c < CACHE_CLASSES; c++) {
            while (w->cache[c]) {
                struct weft__task *t = w->cache[c];

                w->cache[c] = t->next;
                weft__free(t);
            }
        }
        pthread_cond_destroy(&w->park_cond);
        pthread_mutex_destroy(&w->park_lock);
    }
    for (unsigned c = 0; c < CACHE_CLASSES; c++) {
        while (rt->pool.head[c]) {
            struct weft__task *t = rt->pool.head[c];

            rt->pool.head[c] = t->next;
            weft__free(t);
        }
    }
    pthread_cond_destroy(&rt->run_cond);
    pthread_mutex_destroy(&rt->run_lock);
    weft__time_destroy(&rt->time);
    weft__io_destroy(&rt->io);
    pthread_mutex_destroy(&rt->idle.lock);
    weft__free(rt->idle.sleepers);
    weft__free(rt->shards);
    weft__free(rt->workers);
    weft__free(rt);
}

static void close_runtime(struct weft_runtime *rt)
{
    spin_lock(&rt->inject.lock);
    atomic_store_explicit(&rt->closed, true, memory_order_release);
    spin_unlock(&rt->inject.lock);
    unpark_all(rt);
    pthread_mutex_lock(&rt->run_lock);
    pthread_cond_broadcast(&rt->run_cond);
    pthread_mutex_unlock(&rt->run_lock);
}

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > WEFT_MAX_WORKERS ? WEFT_MAX_WORKERS : (unsigned)n;
}

static void name_worker(struct worker *w, const char *prefix)
{
    char idx[12];
    int keep;

    /* Linux keeps 15 characters of a thread name: cut the prefix so that
     * the index always survives */
    snprintf(idx, sizeof(idx), "%u", w->index);
    keep = (int)(sizeof(w->name) - 1 - strlen(idx));
    snprintf(w->name, sizeof(w->name), "%.*s%s", keep, prefix, idx);
}

WEFT_API int weft_runtime_new(weft_runtime **out, const weft_runtime_options *opt)
{
    const char *st = getenv("WEFT_STRESS");
    bool stress = st && *st && strcmp(st, "0") != 0;
    static const weft_runtime_options defaults = { WEFT_MULTI_THREAD, 0, NULL };
    struct weft_runtime *rt;
    unsigned nthreads, slots;
    const char *prefix;

    if (out == NULL)
        return -EINVAL;
    if (opt == NULL)
        opt = &defaults;
    if (opt->flavor == WEFT_MULTI_THREAD) {
        if (opt->workers > WEFT_MAX_WORKERS)
            return -EINVAL;
        nthreads = slots = opt->workers ? opt->workers : online_cpus();
    } else if (opt->flavor == WEFT_CURRENT_THREAD) {
        if (opt->workers != 0)
            return -EINVAL;
        nthreads = 0;
        slots = 1;                    /* the thread inside run/block_on */
    } else {
        return -EINVAL;
    }
    prefix = opt->thread_name_prefix ? opt->thread_name_prefix : "weft-w";

    rt = weft__calloc(1, sizeof(*rt));
    if (rt == NULL)
        return -ENOMEM;
    rt->workers = weft__calloc(slots, sizeof(*rt->workers));
    rt->nshards = slots + FOREIGN_SHARDS;
    rt->shards = weft__calloc(rt->nshards, sizeof(*rt->shards));
    rt->idle.sleepers = weft__calloc(slots, sizeof(*rt->idle.sleepers));
    if (rt->workers == NULL || rt->shards == NULL || rt->idle.sleepers == NULL) {
        weft__free(rt->idle.sleepers);
        weft__free(rt->shards);
        weft__free(rt->workers);
        weft__free(rt);
        return -ENOMEM;
    }
    rt->flavor = opt->flavor;
    rt->nworkers = slots;
    atomic_flag_clear(&rt->inject.lock.f);
    atomic_flag_clear(&rt->pool.lock.f);
    atomic_init(&rt->pool.nonempty, 0);
    pthread_mutex_init(&rt->idle.lock, NULL);
    pthread_mutex_init(&rt->run_lock, NULL);
    pthread_cond_init(&rt->run_cond, NULL);
    atomic_init(&rt->inject.len, 0);
    atomic_init(&rt->idle.num_sleeping, 0);
    atomic_init(&rt->idle.num_searching, 0);
    atomic_init(&rt->idle.watcher, -1);
    atomic_init(&rt->idle.spinner, 0);
    atomic_init(&rt->idle.nap_until, UINT64_MAX);
    weft__time_init(&rt->time, time_kick, rt);
    weft__io_init(&rt->io, io_kick, rt);
    atomic_init(&rt->closed, false);
    atomic_init(&rt->foreign_spawned, 0);
    atomic_init(&rt->foreign_completed, 0);
    atomic_init(&rt->run_waiters, 0);
    atomic_init(&rt->holds, 1);
    for (unsigned i = 0; i < rt->nshards; i++) {
        struct shard *sh = &rt->shards[i];

        sh->base.ops = &runtime_ops;
        sh->rt = rt;
        atomic_flag_clear(&sh->lock.f);
        weft__list_init(&sh->cells);
        atomic_init(&sh->dead, NULL);
    }
    for (unsigned i = 0; i < slots; i++) {
        struct worker *w = &rt->workers[i];

        lq_init(&w->q);
        atomic_init(&w->lifo, NULL);
        w->env.time = &rt->time;
        w->env.stress = stress;
        w->watch_ns = WATCH_MIN_NS;
        w->rt = rt;
        w->index = i;
        pthread_mutex_init(&w->park_lock, NULL);
        pthread_condattr_t ca;

        /* monotonic: naps end at timer deadlines, which are monotonic */
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w->park_cond, &ca);
        pthread_condattr_destroy(&ca);
        name_worker(w, prefix);
    }
    for (unsigned i = 0; i < nthreads; i++) {
        if (pthread_create(&rt->workers[i].thread, NULL, worker_main, &rt->workers[i]) != 0) {
            close_runtime(rt);
            for (unsigned k = 0; k < rt->nthreads; k++)
                pthread_join(rt->workers[k].thread, NULL);
            runtime_destroy(rt);
            return -EAGAIN;
        }
        rt->nthreads = i + 1;
    }
    *out = rt;
    return 0;
}

/* ---- Spawning ------------------------------------------------------------------------ */
static int spawn(struct weft_runtime *rt, const weft_future_type *type,
                 const void *init, weft_join **join)
{
    struct worker *w;
    struct shard *sh;
    struct weft__task *t;
    void *cell;
    int err;

    if (rt == NULL || init == NULL)
        return -EINVAL;
    err = weft__future_type_check(type);
    if (err < 0)
        return err;
    w = local_worker(rt);
    cell = cell_alloc(rt, type);
    if (cell == NULL)
        return -ENOMEM;
    sh = w ? &rt->shards[w->index]
           : &rt->shards[rt->nworkers + ((uintptr_t)cell >> 6) % FOREIGN_SHARDS];
    t = weft__task_init(cell, type, init, &sh->base, join != NULL);
    spin_lock(&sh->lock);
    /* acquire: pairs with the release store of `closed` in close_runtime():
     * a spawn that gets in here is seen by shutdown's scan of the shards */
    if (atomic_load_explicit(&rt->closed, memory_order_acquire)) {
        spin_unlock(&sh->lock);
        cell_free(rt, t);
        return -ESHUTDOWN;
    }
    weft__list_push_back(&sh->cells, &t->owned);
    if (sh->count++ == 0)
        atomic_fetch_add_explicit(&rt->holds, 1, memory_order_relaxed);
    spin_unlock(&sh->lock);
    count_spawn(rt, w);
    if (join)
        *join = (weft_join *)(void *)t;
    schedule(rt, t, false);
    return 0;
}

WEFT_API int weft_spawn(weft_runtime *rt, const weft_future_type *type,
                        const void *init, weft_join **join)
{
    if (join == NULL)
        return -EINVAL;
    return spawn(rt, type, init, join);
}

WEFT_API int weft_spawn_detached(weft_runtime *rt, const weft_future_type *type,
                                 const void *init)
{
    return spawn(rt, type, init, NULL);
}

/* ---- Running to completion ---------------------------------------------------------- */
static bool no_active_tasks(void *arg)
{
    return active_tasks(arg) == 0;
}

/* Current-thread: run tasks on this thread until done(arg) or shutdown.
 * Returns 0 or -ESHUTDOWN. */
static int drive(struct weft_runtime *rt, bool (*done)(void *), void *arg)
{
    struct worker *w = &rt->workers[0];
    struct weft__task *t;
    int err = 0;

    pthread_mutex_lock(&rt->run_lock);
    /* one driver at a time: a second one waits for the first to leave (the
     * first runs every queued task meanwhile, the second's included) */
    while (rt->driving && !rt->shut)
        pthread_cond_wait(&rt->run_cond, &rt->run_lock);
    if (rt->shut) {
        pthread_mutex_unlock(&rt->run_lock);
        return -ESHUTDOWN;
    }
    rt->driving = true;
    pthread_mutex_unlock(&rt->run_lock);

    enter_worker(w);
    while (!done(arg)) {
        if (atomic_load_explicit(&rt->closed, memory_order_acquire)) {
            err = -ESHUTDOWN;
            break;
        }
        t = next_local(w);
        if (t == NULL)
            t = park(w);              /* one worker: never watches */
        if (t)
            run_task(w, t);
    }
    leave_worker();

    pthread_mutex_lock(&rt->run_lock);
    rt->driving = false;
    pthread_cond_broadcast(&rt->run_cond);     /* a waiting shutdown */
    pthread_mutex_unlock(&rt->run_lock);
    return err;
}

WEFT_API int weft_runtime_run(weft_runtime *rt)
{
    int err = 0;

    if (rt == NULL || weft__task_driver != NULL)
        return -EINVAL;
    if (rt->flavor == WEFT_CURRENT_THREAD)
        return drive(rt, no_active_tasks, rt);
    pthread_mutex_lock(&rt->run_lock);
    atomic_fetch_add_explicit(&rt->run_waiters, 1, memory_order_relaxed);
    full_fence();                     /* pairs: the fence in park() */
    while (!rt->shut && !no_active_tasks(rt))
        pthread_cond_wait(&rt->run_cond, &rt->run_lock);
    if (rt->shut)
        err = -ESHUTDOWN;
    atomic_fetch_sub_explicit(&rt->run_waiters, 1, memory_order_relaxed);
    pthread_mutex_unlock(&rt->run_lock);
    return err;
}

static bool join_done(void *arg)
{
    return weft_join_is_complete(arg);
}

WEFT_API int weft_block_on(weft_runtime *rt, const weft_future_type *type,
                           const void *init, void *out)
{
    weft_join *j;
    int err;

    if (rt == NULL || weft__task_driver != NULL)
        return -EINVAL;
    err = weft_spawn(rt, type, init, &j);
    if (err < 0)
        return err;
    if (rt->flavor == WEFT_CURRENT_THREAD) {
        err = drive(rt, join_done, j);
        if (err == -ESHUTDOWN)        /* shutdown cancels the root: wait */
            err = weft_join_wait(j, out);
        else if (err == 0)
            err = weft_join_try(j, out);
    } else {
        err = weft_join_wait(j, out);
    }
    weft_join_drop(j);
    return err;
}

/* ---- Shutdown ------------------------------------------------------------------------- */
static void drop_chain(struct weft__task *t)
{
    while (t) {
        struct weft__task *next = t->next;

        weft__task_ref_dec(t);        /* the queue entry's; may free the cell */
        t = next;
    }
}

WEFT_API int weft_runtime_shutdown(weft_runtime *rt)
{
    struct weft__task *t, *claimed = NULL;

    if (rt == NULL || local_worker(rt))
        return -EINVAL;
    pthread_mutex_lock(&rt->run_lock);
    if (rt->shutting) {               /* done, or another thread is at it */
        while (!rt->shutdown_done)
            pthread_cond_wait(&rt->run_cond, &rt->run_lock);
        pthread_mutex_unlock(&rt->run_lock);
        return 0;
    }
    rt->shutting = true;
    rt->shut = true;
    pthread_mutex_unlock(&rt->run_lock);
    close_runtime(rt);                /* spawns refused, workers leave */
    for (unsigned i = 0; i < rt->nthreads; i++)
        pthread_join(rt->workers[i].thread, NULL);
    rt->nthreads = 0;
    pthread_mutex_lock(&rt->run_lock);   /* a current-thread driver leaves too */
    while (rt->driving)
        pthread_cond_wait(&rt->run_cond, &rt->run_lock);
    pthread_mutex_unlock(&rt->run_lock);

    /* No thread runs tasks now. Drop every queue entry's reference... */
    spin_lock(&rt->inject.lock);
    t = rt->inject.head;
    rt->inject.head = rt->inject.tail = NULL;
    atomic_store_explicit(&rt->inject.len, 0, memory_order_relaxed);
    spin_unlock(&rt->inject.lock);
    drop_chain(t);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = &rt->workers[i];

        t = atomic_exchange_explicit(&w->lifo, NULL, memory_order_acquire);
        if (t)
            weft__task_ref_dec(t);
        while ((t = lq_pop(&w->q)) != NULL)
            weft__task_ref_dec(t);
    }
    /* ...then cancel every unfinished task. Claimed tasks are RUNNING, so no
     * waker can queue them: their queue link is free to chain them here. */
    for (unsigned i = 0; i < rt->nshards; i++) {
        struct shard *sh = &rt->shards[i];
        struct weft__list *n;

        spin_lock(&sh->lock);
        for (n = sh->cells.next; n != &sh->cells; n = n->next) {
            t = weft__container_of(n, struct weft__task, owned);
            if (weft__task_shutdown_claim(t)) {
                t->next = claimed;
                claimed = t;
            }
        }
        spin_unlock(&sh->lock);
    }
    while (claimed) {
        t = claimed;
        claimed = t->next;
        weft__task_cancel_claimed(t); /* the drop runs here, outside any lock */
    }
    /* cells freed on workers wait on their shards' dead stacks: no worker
     * will drain them now */
    for (unsigned i = 0; i < rt->nworkers; i++)
        drain_dead(rt, &rt->shards[i]);
    pthread_mutex_lock(&rt->run_lock);
    rt->shutdown_done = true;
    pthread_cond_broadcast(&rt->run_cond);
    pthread_mutex_unlock(&rt->run_lock);
    return 0;
}

WEFT_API void weft_runtime_free(weft_runtime *rt)
{
    if (rt == NULL || weft_runtime_shutdown(rt) < 0)
        return;
    /* acq_rel: pairs with the shards' releases */
    if (atomic_fetch_sub_explicit(&rt->holds, 1, memory_order_acq_rel) == 1)
        runtime_destroy(rt);
}

/* ---- Introspection ------------------------------------------------------------------------ */
WEFT_API weft_runtime *weft_runtime_current(void)
{
    return cur_worker ? cur_worker->rt : NULL;
}

WEFT_API const char *weft_worker_name(void)
{
    return cur_worker ? cur_worker->name : NULL;
}

WEFT_API int weft_worker_index(void)
{
    return cur_worker ? (int)cur_worker->index : -1;
}

WEFT_API size_t weft_runtime_active_tasks(const weft_runtime *rt)
{
    return rt ? (size_t)active_tasks(rt) : 0;
}

WEFT_API unsigned weft_runtime_workers(const weft_runtime *rt)
{
    return rt ? rt->nworkers : 0;
}

WEFT_API int weft_runtime_worker_metrics(const weft_runtime *rt, unsigned worker,
                                         weft_worker_metrics *out)
{
    struct worker *w;

    if (rt == NULL || out == NULL || worker >= rt->nworkers)
        return -EINVAL;
    w = &rt->workers[worker];
    /* relaxed: counters, read as a snapshot */
    out->polls = atomic_load_explicit(&w->polls, memory_order_relaxed);
    out->steals = atomic_load_explicit(&w->steals, memory_order_relaxed);
    out->overflows = atomic_load_explicit(&w->overflows, memory_order_relaxed);
    out->parks = atomic_load_explicit(&w->parks, memory_order_relaxed);
    out->forced_yields = atomic_load_explicit(&w->env.forced_yields, memory_order_relaxed);
    out->lifo_polls = atomic_load_explicit(&w->lifo_polls, memory_order_relaxed);
    out->stranded_taken = atomic_load_explicit(&w->stranded_taken, memory_order_relaxed);
    out->local_queue_depth = lq_len(&w->q);
    return 0;
}

struct weft__io *weft__runtime_io(weft_runtime *rt)
{
    return &rt->io;
}
