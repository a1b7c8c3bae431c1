/* SPDX-License-Identifier: MIT */
/* weft's side of the timer benchmarks W6 and W7 (bench/peers/ has the same
 * workloads on tokio, Go and libuv; bench/compare_time.sh runs them all).
 *
 *     weft-bench-time <W6|W7|SEED|TIMEOUT|TICK> <mt<workers>|ct> [scale]
 *     weft-bench-time cell        what one sleeping task's cell costs
 *
 * W6 timers: 100,000 tasks each sleep a pseudo-random 1..1000 ms, drawn in
 * spawn order from a fixed-seed 64-bit LCG (the same formula in every peer):
 *     state = state * 6364136223846793005 + 1442695040888963407,  seed 42,
 *     duration_ms = 1 + (state >> 33) % 1000.
 * The deadline is fixed at spawn (spawn instant + duration, CLOCK_MONOTONIC
 * in ns) and the task sleeps until it (weft_sleep_until, rounded up to the
 * millisecond: weft's timers have 1 ms resolution, so never early); on
 * waking it records its lateness, wake instant - deadline.
 * W7 idle memory: 1,000,000 tasks each sleep 5 s (a task is just its sleep
 * future); reports (peak RSS - RSS before spawning) / tasks.
 * SEED: the seed article's demo scaled up: 100,000 tasks each sleep 100 ms
 * (a duration, counted from the task's first poll, as the article's tasks
 * do), spawned from the root task; wall is from the first spawn to the last
 * wake-up, so the ideal is 100 ms plus the spawn loop's share that does not
 * overlap the sleeps (usage: weft-bench-time SEED mt4).
 *
 * TIMEOUT: what a weft_timeout costs around a future that is ready without
 * the timer ever firing (every server's read or write under a deadline).
 * One task runs four loops of N (1,000,000 x scale) operations each and
 * reports ns per operation: `ready` a future ready at its first poll,
 * `once` a future that wakes itself and returns PENDING once, then READY
 * (one trip through the run queue), and each of them inside a 10 s
 * weft_timeout (`timeout_ready`, `timeout_once`). The timeout around a
 * ready future never arms its timer; around `once` it arms it at the
 * PENDING and cancels it at the READY: arm_cancel_ns = timeout_once -
 * once is that pair's price. With `workers` > 1, the other workers only
 * park (usage: weft-bench-time TIMEOUT mt1).
 *
 * TICK: one timer at a time: one task sleeps 1 ms, 2,000 x scale times
 * (usage: weft-bench-time TICK mt2). Reports the process's CPU time (user
 * + sys, every thread) and voluntary context switches per tick, from the
 * first sleep to the last wake-up: what a periodic tick costs while every
 * other worker is parked (the watcher naps until each deadline; the other
 * parked workers should not wake for it).
 *
 * Each prints one line of key=value metrics:
 *   RESULT W6 weft-mt2 tasks=.. check=.. wall_ms=.. spawn_ms=.. late_max_ms=.. late_p99_ms=..
 *          late_mean_ms=.. late_min_ms=.. cpu_ms=.. rss_peak_kb=.. rss_base_kb=..
 *   RESULT W7 weft-mt2 tasks=.. wall_ms=.. spawn_ms=.. woke_during_spawn=..
 *          rss_per_task_b=.. cpu_ms=.. rss_peak_kb=.. rss_base_kb=..
 *   RESULT SEED weft-mt4 tasks=.. wall_ms=.. spawn_ms=.. ideal_ms=.. cpu_ms=.. rss_peak_kb=..
 *          first_ms=.. last_late_ms=.. spawn_cpu_ms=.. spawn_sys_ms=.. spawn_wait_ms=..
 *          spawn_slices=.. others_cpu_ms=.. others_polls=.. others_steals=.. others_parks=..
 * SEED's further fields tell what a slow run spent its time on (each
 * read once before and once after the spawn loop, outside it):
 * first_ms: from the first spawn to the first task's finish; last_late_ms:
 * from the last task's deadline (weft_sleep_deadline, whole ms) to the
 * root's wake-up, so wall = spawn + 100 + the last deadline's rounding up
 * to the ms + last_late; spawn_cpu/sys_ms: the spawning thread's CPU time
 * over the loop, of it in the kernel (page faults: rusage's sys, counted
 * per tick, so +-4 ms); spawn_wait_ms: its time runnable but waiting for
 * a CPU (schedstat run delay: the loop's other workers, or anything else
 * on the machine); spawn_slices: times it was put on a CPU; others_*: the
 * CPU time of the process's other threads over the loop (schedstat, may
 * lag a tick) and the polls, steals and parks of the other workers
 * (weft_runtime_worker_metrics).
 * wall and cpu cover spawning to the last wake-up (cpu: user + sys of the
 * whole process, getrusage); spawn_ms is the spawn loop alone; rss_peak_kb
 * is VmHWM; check is the sum of the drawn durations, which must match across
 * peers. woke_during_spawn counts W7 tasks that had already woken when the
 * last spawn returned: when it is not 0 the spawn loop outlasted the 5 s
 * sleep, not every task was asleep at the peak, and the RSS per task is
 * understated. Exits non-zero when a
 * task is missing. `scale` multiplies the task count (never below 1). */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"

#define W6_TASKS 100000
#define W7_TASKS 1000000
#define W7_SLEEP_MS 5000
#define SEED_TASKS 100000
#define SEED_SLEEP_MS 100

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t lcg_state = 42;

static uint64_t next_duration_ms(void)
{
    lcg_state = lcg_state * 6364136223846793005u + 1442695040888963407u;
    return 1 + (lcg_state >> 33) % 1000;
}

/* user + sys of every thread of the process, in ns */
static uint64_t cpu_ns(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

/* This thread's CPU time (of which in the kernel: sys), time spent
 * runnable waiting for a CPU, and the number of times it was put on a CPU
 * (/proc/thread-self/schedstat, getrusage(RUSAGE_THREAD); zeros where
 * they are missing) */
typedef struct sched_stat {
    uint64_t cpu_ns, wait_ns, slices, sys_ns;
} sched_stat;

static sched_stat thread_schedstat(void)
{
    sched_stat s = { 0, 0, 0, 0 };
    unsigned long long a, b, c;
    struct rusage ru;
    struct timespec ts;
    FILE *f = fopen("/proc/thread-self/schedstat", "r");

    if (f == NULL)
        return s;
    if (fscanf(f, "%llu %llu %llu", &a, &b, &c) == 3)
        s = (sched_stat){ a, b, c, 0 };
    fclose(f);
    /* schedstat's CPU time may lag by a tick: the thread's clock does not */
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        s.cpu_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (getrusage(RUSAGE_THREAD, &ru) == 0)
        s.sys_ns = (uint64_t)ru.ru_stime.tv_sec * 1000000000u +
                   (uint64_t)ru.ru_stime.tv_usec * 1000u;
    return s;
}

/* CPU time summed over every thread of the process but the caller, ns
 * (/proc/self/task/<tid>/schedstat, which may lag by a tick) */
static uint64_t others_cpu_ns(void)
{
    uint64_t sum = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    long self = (long)syscall(SYS_gettid);

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        char path[300];
        unsigned long long cpu;
        FILE *f;

        if (e->d_name[0] == '.' || strtol(e->d_name, NULL, 10) == self)
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        if (fscanf(f, "%llu", &cpu) == 1)
            sum += cpu;
        fclose(f);
    }
    closedir(d);
    return sum;
}

/* What the workers other than the caller's (by index `self`; all of
 * them if self < 0) have done so far: polls, steals, parks
 * (weft_runtime_worker_metrics) */
typedef struct others {
    uint64_t polls, steals, parks;
} others;

static others others_now(weft_runtime *rt, int self)
{
    others o = { 0, 0, 0 };
    weft_worker_metrics m;

    for (unsigned i = 0; i < weft_runtime_workers(rt); i++)
        if ((int)i != self && weft_runtime_worker_metrics(rt, i, &m) == 0) {
            o.polls += m.polls;
            o.steals += m.steals;
            o.parks += m.parks;
        }
    return o;
}

/* A "Vm...:" line of /proc/self/status in kB, or 0. */
static uint64_t proc_status_kb(const char *key)
{
    char line[256];
    size_t len = strlen(key);
    uint64_t kb = 0;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, len) == 0 && line[len] == ':') {
            kb = strtoull(line + len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* ---- Completion: the task that takes `remaining` to 0 wakes the root ------- */
static struct {
    atomic_size_t remaining;
    size_t total;                /* set before the runtime starts */
    _Atomic uint64_t first_ns;   /* when the first task finished (now_ns()) */
    atomic_bool fired;
    atomic_flag lock;
    weft_waker waiter;           /* ->lock */
} done;

static void done_lock(void)
{
    while (atomic_flag_test_and_set_explicit(&done.lock, memory_order_acquire))
        ;
}

static void done_unlock(void)
{
    atomic_flag_clear_explicit(&done.lock, memory_order_release);
}

static void task_finished(void)
{
    weft_waker w;
    size_t left = atomic_fetch_sub_explicit(&done.remaining, 1, memory_order_acq_rel);

    if (left == done.total)           /* the first to finish */
        atomic_store_explicit(&done.first_ns, now_ns(), memory_order_relaxed);
    if (left != 1)
        return;
    /* release: pairs with the acquire loads in done_wait() */
    atomic_store_explicit(&done.fired, true, memory_order_release);
    done_lock();
    w = done.waiter;
    done.waiter = WEFT_WAKER_EMPTY;
    done_unlock();
    weft_waker_wake(&w);
}

static weft_poll done_wait(weft_context *cx)
{
    weft_waker old;

    if (atomic_load_explicit(&done.fired, memory_order_acquire))
        return WEFT_READY;
    done_lock();
    old = done.waiter;
    done.waiter = weft_waker_clone(weft_context_waker(cx));
    done_unlock();
    weft_waker_drop(&old);
    return atomic_load_explicit(&done.fired, memory_order_acquire) ? WEFT_READY : WEFT_PENDING;
}

/* ---- The sleeping tasks -------------------------------------------------------- */
static int64_t *lateness_ns;     /* W6: one slot per task, written by its task only */

/* W6: sleep until the deadline, then record how late the wake-up was. */
typedef struct sleeper {
    weft_sleep sleep;
    uint64_t deadline_ns;
    size_t index;
} sleeper;

static weft_poll sleeper_poll(sleeper *f, weft_context *cx, void *out)
{
    (void)out;
    if (weft_sleep_poll(&f->sleep, cx) == WEFT_PENDING)
        return WEFT_PENDING;
    lateness_ns[f->index] = (int64_t)(now_ns() - f->deadline_ns);
    task_finished();
    return WEFT_READY;
}

static void sleeper_drop(sleeper *f)
{
    weft_sleep_drop(&f->sleep);
}
WEFT_DEFINE_FUTURE_VOID(sleeper, sleeper_poll, sleeper_drop);

/* W7: nothing but the sleep (the task is what it waits on). */
typedef struct napper {
    weft_sleep sleep;
} napper;

static weft_poll napper_poll(napper *f, weft_context *cx, void *out)
{
    (void)out;
    if (weft_sleep_poll(&f->sleep, cx) == WEFT_PENDING)
        return WEFT_PENDING;
    task_finished();
    return WEFT_READY;
}

static void napper_drop(napper *f)
{
    weft_sleep_drop(&f->sleep);
}
WEFT_DEFINE_FUTURE_VOID(napper, napper_poll, napper_drop);

/* ms deadline for weft's 1 ms timers: rounded up, so the wake is never early */
static uint64_t ceil_ms(uint64_t ns)
{
    return (ns + 999999u) / 1000000u;
}

/* ---- The root: spawns the tasks and waits for the last one ------------------- */
typedef struct run_stats {
    uint64_t wall_ns, spawn_ns, cpu_ns, rss_base_kb, check;
    /* SEED's diagnostics (see the header comment) */
    sched_stat spawn_sched;      /* the spawning thread's, over the spawn loop */
    uint64_t spawn_rest_cpu_ns;  /* the other threads' CPU time, over the spawn loop */
    others spawn_others;         /* the other workers' counters, over the spawn loop */
    uint64_t first_ns;           /* t0 to the first task's finish */
    int64_t last_late_ns;        /* the root's wake-up - the last task's deadline */
    size_t woke_during_spawn;    /* tasks already done when the last spawn returned */
} run_stats;

typedef struct root {
    weft_async co;
    int w;                       /* 6, 7 or 10 (SEED) */
    size_t n;
    uint64_t t0, cpu0, rss0, check, spawn_ns;
    size_t woke_during_spawn;
    uint64_t last_deadline_ms;   /* SEED: the last task's (weft_now_ms() clock) */
    sched_stat sched0;           /* the spawning thread's, before the loop */
    uint64_t others_cpu0;        /* the other threads' CPU time, before the loop */
    others others0;
} root;

static weft_poll root_poll(root *r, weft_context *cx, void *out)
{
    weft_runtime *rt = weft_runtime_current();
    run_stats *st = out;

    WEFT_BEGIN(&r->co);
    r->rss0 = proc_status_kb("VmRSS");
    r->cpu0 = cpu_ns();
    r->others_cpu0 = others_cpu_ns();
    r->sched0 = thread_schedstat();
    r->others0 = others_now(rt, weft_worker_index());
    r->t0 = now_ns();
    for (size_t i = 0; i < r->n; i++) {
        uint64_t ms = r->w == 6 ? next_duration_ms() : r->w == 7 ? W7_SLEEP_MS : SEED_SLEEP_MS;
        /* SEED sleeps a duration: no deadline, no clock read per spawn */
        uint64_t deadline = r->w == 10 ? 0 : now_ns() + ms * 1000000u;
        int err;

        r->check += ms;
        if (r->w == 6) {
            sleeper s = { .deadline_ns = deadline, .index = i };

            weft_sleep_until_init(&s.sleep, ceil_ms(deadline));
            err = weft_spawn_detached(rt, &sleeper_future, &s);
        } else if (r->w == 10) {
            napper s;

            weft_sleep_init(&s.sleep, SEED_SLEEP_MS);
            r->last_deadline_ms = weft_sleep_deadline(&s.sleep);
            err = weft_spawn_detached(rt, &napper_future, &s);
        } else {
            napper s;

            weft_sleep_until_init(&s.sleep, ceil_ms(deadline));
            err = weft_spawn_detached(rt, &napper_future, &s);
        }
        if (err < 0) {
            fprintf(stderr, "weft_spawn_detached: %s\n", weft_strerror(err));
            abort();
        }
    }
    r->spawn_ns = now_ns() - r->t0;
    {
        sched_stat s1 = thread_schedstat();
        uint64_t others_cpu1 = others_cpu_ns();
        others o1 = others_now(rt, weft_worker_index());

        st->spawn_sched = (sched_stat){ s1.cpu_ns - r->sched0.cpu_ns,
                                        s1.wait_ns - r->sched0.wait_ns,
                                        s1.slices - r->sched0.slices,
                                        s1.sys_ns - r->sched0.sys_ns };
        st->spawn_rest_cpu_ns = others_cpu1 - r->others_cpu0;
        st->spawn_others = (others){ o1.polls - r->others0.polls,
                                     o1.steals - r->others0.steals,
                                     o1.parks - r->others0.parks };
    }
    r->woke_during_spawn = r->n - atomic_load(&done.remaining);
    WEFT_AWAIT(&r->co, done_wait(cx));
    st->spawn_ns = r->spawn_ns;
    st->woke_during_spawn = r->woke_during_spawn;
    st->wall_ns = now_ns() - r->t0;
    st->last_late_ns = (int64_t)(st->wall_ns + r->t0) - (int64_t)(r->last_deadline_ms * 1000000u);
    /* (weft_now_ms() and now_ns() are both CLOCK_MONOTONIC) */
    st->first_ns = atomic_load_explicit(&done.first_ns, memory_order_relaxed) - r->t0;
    st->cpu_ns = cpu_ns() - r->cpu0;
    st->rss_base_kb = r->rss0;
    st->check = r->check;
    WEFT_END(&r->co);
}
WEFT_DEFINE_FUTURE(root, root_poll, NULL, run_stats);

/* ---- TIMEOUT: arm + cancel of a timer that never fires --------------------- */
typedef struct once {
    bool polled;
    bool ready;                  /* ready at the first poll */
} once;

static weft_poll once_poll(once *f, weft_context *cx, void *out)
{
    (void)out;
    if (f->ready || f->polled)
        return WEFT_READY;
    f->polled = true;
    weft_waker_wake_by_ref(weft_context_waker(cx));
    return WEFT_PENDING;
}
WEFT_DEFINE_FUTURE_VOID(once, once_poll, NULL);

typedef struct timeout_loop {
    weft_async co;
    size_t n, i;
    int kind;                    /* 0 ready, 1 once, 2 timeout_ready, 3 timeout_once */
    uint64_t t0;
    uint64_t ns[4];
    once inner;
    weft_timeout to;
    int result;
} timeout_loop;

static weft_poll timeout_loop_poll(timeout_loop *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    for (f->kind = 0; f->kind < 4; f->kind++) {
        f->t0 = now_ns();
        for (f->i = 0; f->i < f->n; f->i++) {
            f->inner = (once){ .ready = f->kind % 2 == 0 };
            if (f->kind < 2) {
                WEFT_AWAIT(&f->co, once_poll(&f->inner, cx, NULL));
            } else {
                weft_timeout_init(&f->to, &once_future, &f->inner, 10000);
                WEFT_AWAIT(&f->co, weft_timeout_poll(&f->to, cx, &f->result, NULL));
                weft_timeout_drop(&f->to);
                if (f->result != 0)
                    abort();
            }
        }
        f->ns[f->kind] = now_ns() - f->t0;
    }
    memcpy(out, f->ns, sizeof(f->ns));
    WEFT_END(&f->co);
}

static void timeout_loop_drop(timeout_loop *f)
{
    if (f->kind >= 2)
        weft_timeout_drop(&f->to);
}
WEFT_DEFINE_FUTURE(timeout_loop, timeout_loop_poll, timeout_loop_drop, uint64_t[4]);

/* One future on a runtime of its own (made with `opt`, freed after):
 * 0, or 1 after saying on stderr what failed. */
static int block_on_fresh(weft_runtime_options *opt, const weft_future_type *type,
                          const void *init, void *out)
{
    weft_runtime *rt;
    int err;

    if ((err = weft_runtime_new(&rt, opt)) < 0) {
        fprintf(stderr, "weft_runtime_new: %s\n", weft_strerror(err));
        return 1;
    }
    err = weft_block_on(rt, type, init, out);
    weft_runtime_free(rt);
    if (err < 0) {
        fprintf(stderr, "weft_block_on: %s\n", weft_strerror(err));
        return 1;
    }
    return 0;
}

static int run_timeout(weft_runtime_options *opt, const char *name, double scale)
{
    size_t n = (size_t)(1000000 * scale);
    uint64_t ns[4];

    if (n == 0)
        n = 1;
    if (block_on_fresh(opt, &timeout_loop_future, &(timeout_loop){ .n = n }, ns) != 0)
        return 1;
    printf("RESULT TIMEOUT %s ops=%zu ready_ns=%.1f once_ns=%.1f timeout_ready_ns=%.1f "
           "timeout_once_ns=%.1f arm_cancel_ns=%.1f\n",
           name, n, (double)ns[0] / n, (double)ns[1] / n, (double)ns[2] / n, (double)ns[3] / n,
           ((double)ns[3] - (double)ns[1]) / n);
    return 0;
}

/* ---- TICK: one timer at a time ----------------------------------------------- */
typedef struct ticker {
    weft_async co;
    size_t n, i;
    uint64_t cpu0, csw0, t0, late_max;
    weft_sleep s;
} ticker;

static uint64_t vol_switches(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_nvcsw;
}

static weft_poll ticker_poll(ticker *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    f->cpu0 = cpu_ns();
    f->csw0 = vol_switches();
    f->t0 = now_ns();
    for (f->i = 0; f->i < f->n; f->i++) {
        weft_sleep_init(&f->s, 1);
        WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
        {
            uint64_t dl = weft_sleep_deadline(&f->s) * 1000000u, now = now_ns();

            if (now > dl && now - dl > f->late_max)
                f->late_max = now - dl;
        }
    }
    {
        uint64_t *r = out;

        r[0] = cpu_ns() - f->cpu0;
        r[1] = vol_switches() - f->csw0;
        r[2] = now_ns() - f->t0;
        r[3] = f->late_max;
    }
    WEFT_END(&f->co);
}

static void ticker_drop(ticker *f)
{
    weft_sleep_drop(&f->s);
}
WEFT_DEFINE_FUTURE(ticker, ticker_poll, ticker_drop, uint64_t[4]);

static int run_tick(weft_runtime_options *opt, const char *name, double scale)
{
    size_t n = (size_t)(2000 * scale);
    uint64_t r[4];

    if (n == 0)
        n = 1;
    if (block_on_fresh(opt, &ticker_future, &(ticker){ .n = n }, r) != 0)
        return 1;
    printf("RESULT TICK %s ticks=%zu cpu_us_per_tick=%.2f vol_switches_per_tick=%.2f "
           "wall_ms=%.1f late_max_ms=%.3f\n",
           name, n, (double)r[0] / 1e3 / n, (double)r[1] / n, r[2] / 1e6, r[3] / 1e6);
    return 0;
}

/* ---- `cell`: what one spawn of each task allocates --------------------------- */
static size_t last_alloc, alloc_calls;

static void *counting_malloc(void *ctx, size_t size)
{
    (void)ctx;
    last_alloc = size;
    alloc_calls++;
    return malloc(size);
}

static void counting_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static int print_cells(void)
{
    static const struct {
        const char *name;
        const weft_future_type *type;
    } kinds[] = { { "W7 napper", &napper_future }, { "W6 sleeper", &sleeper_future } };
    weft_runtime *rt;

    weft_set_allocator(&(weft_allocator){ counting_malloc, counting_free, NULL });
    if (weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }) < 0)
        return 1;
    printf("sizeof(weft_sleep) = %zu\n", sizeof(weft_sleep));
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        union {
            sleeper s;
            napper n;
        } init;
        void *probe;
        size_t calls = alloc_calls;

        weft_sleep_until_init(&init.s.sleep, UINT64_MAX);
        init.s.deadline_ns = 0;
        init.s.index = 0;
        if (weft_spawn_detached(rt, kinds[k].type, &init) < 0)
            return 1;
        /* glibc's chunk for that request: what the heap really spends */
        probe = malloc(last_alloc);
        printf("%s: future %zu B; spawn made %zu allocation(s), the cell: malloc(%zu), "
               "usable %zu B, heap chunk %zu B\n",
               kinds[k].name, kinds[k].type->size, alloc_calls - calls, last_alloc,
               malloc_usable_size(probe), (malloc_usable_size(probe) + 8 + 15) & ~(size_t)15);
        free(probe);
    }
    weft_runtime_free(rt);       /* cancels the two never-polled tasks */
    weft_set_allocator(NULL);
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static int usage(void)
{
    fputs("usage: weft-bench-time <W6|W7|SEED|TIMEOUT|TICK> <mt<workers>|ct> [scale]\n"
          "       weft-bench-time cell\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    weft_runtime_options opt = { 0 };
    char name_buf[32];
    const char *name;
    double scale = 1.0;
    run_stats st = { 0 };
    weft_runtime *rt;
    uint64_t peak_kb;
    size_t n;
    int w, err;

    if (argc == 2 && strcmp(argv[1], "cell") == 0)
        return print_cells();
    if (argc < 3 || argc > 4)
        return usage();
    if (strcmp(argv[1], "W6") == 0)
        w = 6;
    else if (strcmp(argv[1], "W7") == 0)
        w = 7;
    else if (strcmp(argv[1], "SEED") == 0)
        w = 10;
    else if (strcmp(argv[1], "TIMEOUT") == 0)
        w = 11;
    else if (strcmp(argv[1], "TICK") == 0)
        w = 12;
    else
        return usage();
    if (strncmp(argv[2], "mt", 2) == 0 && atoi(argv[2] + 2) > 0) {
        opt.workers = (unsigned)atoi(argv[2] + 2);
        snprintf(name_buf, sizeof(name_buf), "weft-mt%u", opt.workers);
        name = name_buf;
    } else if (strcmp(argv[2], "ct") == 0) {
        opt.flavor = WEFT_CURRENT_THREAD;
        name = "weft-ct";
    } else {
        return usage();
    }
    if (argc == 4 && (scale = strtod(argv[3], NULL)) <= 0)
        return usage();
    if (w == 11)
        return run_timeout(&opt, name, scale);
    if (w == 12)
        return run_tick(&opt, name, scale);
    n = (size_t)((w == 6 ? W6_TASKS : w == 7 ? W7_TASKS : SEED_TASKS) * scale);
    if (n == 0)
        n = 1;
    if (w == 6 && (lateness_ns = calloc(n, sizeof(*lateness_ns))) == NULL)
        return 1;
    atomic_store(&done.remaining, n);
    done.total = n;

    err = weft_runtime_new(&rt, &opt);
    if (err < 0) {
        fprintf(stderr, "weft_runtime_new: %s\n", weft_strerror(err));
        return 1;
    }
    err = weft_block_on(rt, &root_future, &(root){ .w = w, .n = n }, &st);
    weft_runtime_free(rt);
    if (err < 0) {
        fprintf(stderr, "weft_block_on: %s\n", weft_strerror(err));
        return 1;
    }
    if (atomic_load(&done.remaining) != 0) {
        fprintf(stderr, "%s %s: check failed: %zu tasks did not finish\n", argv[1], name,
                atomic_load(&done.remaining));
        return 1;
    }
    peak_kb = proc_status_kb("VmHWM");
    if (w == 6) {
        int64_t max = INT64_MIN, min = INT64_MAX, sum = 0;

        for (size_t i = 0; i < n; i++) {
            max = lateness_ns[i] > max ? lateness_ns[i] : max;
            min = lateness_ns[i] < min ? lateness_ns[i] : min;
            sum += lateness_ns[i];
        }
        size_t over2 = 0;

        for (size_t i = 0; i < n; i++)
            over2 += lateness_ns[i] > 2000000;
        qsort(lateness_ns, n, sizeof(*lateness_ns), cmp_i64);
        printf("RESULT W6 %s tasks=%zu check=%llu wall_ms=%.3f spawn_ms=%.3f late_max_ms=%.3f "
               "late_p99_ms=%.3f late_mean_ms=%.3f late_min_ms=%.3f late_over_2ms=%zu cpu_ms=%.3f "
               "rss_peak_kb=%llu rss_base_kb=%llu\n",
               name, n, (unsigned long long)st.check, st.wall_ns / 1e6, st.spawn_ns / 1e6, max / 1e6,
               lateness_ns[(n * 99 + 99) / 100 - 1] / 1e6,   /* nearest rank */
               (double)sum / (double)n / 1e6, min / 1e6, over2, st.cpu_ns / 1e6,
               (unsigned long long)peak_kb, (unsigned long long)st.rss_base_kb);
        free(lateness_ns);
    } else if (w == 10) {
        printf("RESULT SEED %s tasks=%zu wall_ms=%.3f spawn_ms=%.3f ideal_ms=%d cpu_ms=%.3f "
               "rss_peak_kb=%llu first_ms=%.3f last_late_ms=%.3f spawn_cpu_ms=%.3f "
               "spawn_sys_ms=%.3f spawn_wait_ms=%.3f spawn_slices=%llu others_cpu_ms=%.3f "
               "others_polls=%llu others_steals=%llu others_parks=%llu\n",
               name, n, st.wall_ns / 1e6, st.spawn_ns / 1e6, SEED_SLEEP_MS, st.cpu_ns / 1e6,
               (unsigned long long)peak_kb, st.first_ns / 1e6, st.last_late_ns / 1e6,
               st.spawn_sched.cpu_ns / 1e6, st.spawn_sched.sys_ns / 1e6,
               st.spawn_sched.wait_ns / 1e6, (unsigned long long)st.spawn_sched.slices,
               st.spawn_rest_cpu_ns / 1e6, (unsigned long long)st.spawn_others.polls,
               (unsigned long long)st.spawn_others.steals,
               (unsigned long long)st.spawn_others.parks);
    } else {
        printf("RESULT W7 %s tasks=%zu wall_ms=%.3f spawn_ms=%.3f woke_during_spawn=%zu "
               "rss_per_task_b=%.1f cpu_ms=%.3f rss_peak_kb=%llu rss_base_kb=%llu\n",
               name, n, st.wall_ns / 1e6, st.spawn_ns / 1e6, st.woke_during_spawn,
               ((double)peak_kb - (double)st.rss_base_kb) * 1024.0 / (double)n,
               st.cpu_ns / 1e6, (unsigned long long)peak_kb,
               (unsigned long long)st.rss_base_kb);
    }
    return 0;
}
