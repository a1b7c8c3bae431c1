/* SPDX-License-Identifier: MIT */
/* Fairness of the work-stealing scheduler, seen from the tasks:
 *  - a ping-pong pair bouncing through the LIFO slots of 2 workers (or of
 *    one, or one pair per worker) does not starve 100 yielding tasks;
 *  - the cooperative budget: a task whose leaf future is always ready (and
 *    asks weft_coop_proceed) cannot keep its worker from a sibling, on one
 *    worker and on the current-thread flavour;
 *  - yield_now goes to the back of the run queue (round robin), not into the
 *    LIFO slot;
 *  - tasks queued (or sitting in the LIFO slot) behind a long poll run on the
 *    idle worker meanwhile;
 *  - tasks woken or spawned from a foreign thread get their turn while local
 *    tasks yield forever: within a bounded number of local polls.
 * Every wait is bounded by a watchdog, so a starving scheduler fails the test
 * instead of hanging; no verdict depends on timing otherwise. */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#ifndef WEFT_LOCAL_QUEUE_CAP
#define WEFT_LOCAL_QUEUE_CAP 256      /* the library's default (sched/queue.h) */
#endif

/* Generous: a fair scheduler needs milliseconds for any of these. */
#define FW_WATCHDOG_NS ((uint64_t)20 * 1000 * 1000 * 1000)

#define FW_WAIT_UNTIL(cond, what)                                             \
    do {                                                                      \
        uint64_t fw_end_ = harness_now_ns() + FW_WATCHDOG_NS;                 \
        unsigned fw_spins_ = 0;                                               \
        while (!(cond)) {                                                     \
            if (harness_now_ns() > fw_end_)                                   \
                harness_fail(__FILE__, __LINE__, "watchdog: %s", (what));     \
            if (++fw_spins_ < 64)                                             \
                sched_yield();                                                \
            else                                                              \
                usleep(50);                                                   \
        }                                                                     \
    } while (0)

static weft_runtime *fw_runtime(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = flavor,
                                                             .workers = workers }));
    return rt;
}

static void fw_metrics_sum(weft_runtime *rt, weft_worker_metrics *sum)
{
    unsigned n = weft_runtime_workers(rt);

    memset(sum, 0, sizeof(*sum));
    for (unsigned i = 0; i < n; i++) {
        weft_worker_metrics m;

        ASSERT_OK(weft_runtime_worker_metrics(rt, i, &m));
        sum->polls += m.polls;
        sum->steals += m.steals;
        sum->overflows += m.overflows;
        sum->parks += m.parks;
        sum->forced_yields += m.forced_yields;
        sum->lifo_polls += m.lifo_polls;
        sum->stranded_taken += m.stranded_taken;
    }
}

static pthread_t fw_start(void *(*fn)(void *), void *arg)
{
    pthread_t th;

    ASSERT_EQ(0, pthread_create(&th, NULL, fn, arg));
    return th;
}

/* ---- A one-shot signal: a flag and the waker of whoever waits for it ----------------
 * Any thread may fire it; the task that polls it consumes the flag. */
typedef struct fw_sig {
    pthread_mutex_t mu;
    bool set;
    weft_waker w;
} fw_sig;

static void fw_sig_init(fw_sig *s)
{
    pthread_mutex_init(&s->mu, NULL);
    s->set = false;
    s->w = WEFT_WAKER_EMPTY;
}

static void fw_sig_fire(fw_sig *s)
{
    weft_waker w;

    pthread_mutex_lock(&s->mu);
    s->set = true;
    w = s->w;
    s->w = WEFT_WAKER_EMPTY;
    pthread_mutex_unlock(&s->mu);
    weft_waker_wake(&w);
}

static weft_poll fw_sig_poll(fw_sig *s, weft_context *cx)
{
    weft_waker old = WEFT_WAKER_EMPTY;

    pthread_mutex_lock(&s->mu);
    if (s->set) {
        s->set = false;
        pthread_mutex_unlock(&s->mu);
        return WEFT_READY;
    }
    if (!weft_waker_will_wake(&s->w, weft_context_waker(cx))) {
        old = s->w;
        s->w = weft_waker_clone(weft_context_waker(cx));
    }
    pthread_mutex_unlock(&s->mu);
    weft_waker_drop(&old);
    return WEFT_PENDING;
}

static void fw_sig_destroy(fw_sig *s)
{
    weft_waker_drop(&s->w);
    pthread_mutex_destroy(&s->mu);
}

/* ======================================================================
 * (a) A ping-pong pair on 2 workers does not starve 100 yielding tasks.
 * Each of the pair fires the other's signal and waits for its own: every
 * wake comes from a task running on a worker, so the woken partner goes
 * to that worker's LIFO slot and runs next, forever, until told to stop.
 * With one pair on 2 workers, the other worker can run everything else;
 * with a pair per worker, only the LIFO guard lets the others run.
 * ====================================================================== */
#define GRINDERS 100
#define GRINDER_POLLS 10
#define MAX_PAIRS 2

static fw_sig pp_sig[2 * MAX_PAIRS];
static atomic_int pp_stop;
static atomic_long pp_rounds;
static atomic_int grinders_done;
static atomic_int pp_spawn_failed;
static _Atomic long pp_rounds_when_spawned;

typedef struct grinder {
    weft_async co;
    int polls;
    weft_yield y;
} grinder;

static weft_poll grinder_poll(grinder *g, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&g->co);
    for (g->polls = 1; g->polls < GRINDER_POLLS; g->polls++)
        WEFT_YIELD(&g->co, &g->y, cx);
    atomic_fetch_add(&grinders_done, 1);
    WEFT_END(&g->co);
}

WEFT_DEFINE_FUTURE_VOID(grinder, grinder_poll, NULL);

static void spawn_grinders(weft_runtime *rt)
{
    atomic_store(&pp_rounds_when_spawned, atomic_load(&pp_rounds));
    for (int i = 0; i < GRINDERS; i++)
        if (weft_spawn_detached(rt, &grinder_future, &(grinder){ .polls = 0 }) != 0)
            atomic_store(&pp_spawn_failed, 1);
}

typedef struct pinger {
    weft_async co;
    int me;
    bool spawns;              /* spawns the grinders itself, at round 10 */
    long mine;
} pinger;

static weft_poll pinger_poll(pinger *p, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&p->co);
    while (!atomic_load(&pp_stop)) {
        if (p->spawns && ++p->mine == 10)
            spawn_grinders(weft_runtime_current());
        fw_sig_fire(&pp_sig[p->me ^ 1]);
        WEFT_AWAIT(&p->co, fw_sig_poll(&pp_sig[p->me], cx));
        atomic_fetch_add(&pp_rounds, 1);
    }
    fw_sig_fire(&pp_sig[p->me ^ 1]);   /* the partner sees the stop too */
    WEFT_END(&p->co);
}

WEFT_DEFINE_FUTURE_VOID(pinger, pinger_poll, NULL);

typedef struct pp_arg {
    weft_runtime *rt;
    bool spawn_from_here;
} pp_arg;

/* The monitor: spawns the grinders from outside once the pair is going
 * (unless the pair does it), waits for them, then stops the pair. */
static void *pp_monitor(void *arg)
{
    pp_arg *a = arg;

    FW_WAIT_UNTIL(atomic_load(&pp_rounds) >= 100, "the pair never got going");
    if (a->spawn_from_here)
        spawn_grinders(a->rt);
    FW_WAIT_UNTIL(atomic_load(&grinders_done) == GRINDERS,
                  "yielding tasks starved by a ping-pong pair");
    atomic_store(&pp_stop, 1);
    return NULL;
}

static void pair_vs_grinders(weft_runtime *rt, int pairs, bool from_outside)
{
    pp_arg a = { rt, from_outside };
    pthread_t th;
    weft_worker_metrics m;
    long at_spawn, at_end;

    ASSERT(pairs >= 1 && pairs <= MAX_PAIRS);
    for (int i = 0; i < 2 * pairs; i++)
        fw_sig_init(&pp_sig[i]);
    atomic_store(&pp_stop, 0);
    atomic_store(&pp_rounds, 0);
    atomic_store(&grinders_done, 0);
    atomic_store(&pp_spawn_failed, 0);
    for (int i = 0; i < 2 * pairs; i++)
        ASSERT_OK(weft_spawn_detached(rt, &pinger_future,
                                      &(pinger){ .me = i, .spawns = i == 0 && !from_outside }));
    th = fw_start(pp_monitor, &a);
    ASSERT_OK(weft_runtime_run(rt));          /* returns once the pair stopped */
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_EQ(0, atomic_load(&pp_spawn_failed));
    ASSERT_EQ(GRINDERS, atomic_load(&grinders_done));
    at_spawn = atomic_load(&pp_rounds_when_spawned);
    at_end = atomic_load(&pp_rounds);
    /* the pair kept going while the grinders ran */
    ASSERT(at_end > at_spawn);
    fw_metrics_sum(rt, &m);
    ASSERT(m.lifo_polls > 0);                 /* the pair did use the LIFO slot */
    printf("%d pair(s): %ld rounds (%ld before the grinders), %llu LIFO polls of %llu\n", pairs,
           at_end, at_spawn, m.lifo_polls, m.polls);
    weft_runtime_free(rt);
    for (int i = 0; i < 2 * pairs; i++)
        fw_sig_destroy(&pp_sig[i]);
}

TEST(lifo_pair_does_not_starve_yielders_spawned_inside_one_worker)
{
    pair_vs_grinders(fw_runtime(WEFT_MULTI_THREAD, 1), 1, false);
}

TEST(lifo_pair_does_not_starve_yielders_spawned_outside_one_worker)
{
    pair_vs_grinders(fw_runtime(WEFT_MULTI_THREAD, 1), 1, true);
}

TEST(lifo_pair_does_not_starve_yielders_spawned_inside_2_workers)
{
    pair_vs_grinders(fw_runtime(WEFT_MULTI_THREAD, 2), 1, false);
}

TEST(lifo_pair_does_not_starve_yielders_spawned_outside_2_workers)
{
    pair_vs_grinders(fw_runtime(WEFT_MULTI_THREAD, 2), 1, true);
}

TEST(lifo_pairs_on_both_workers_do_not_starve_yielders_spawned_inside)
{
    pair_vs_grinders(fw_runtime(WEFT_MULTI_THREAD, 2), 2, false);
}

TEST(lifo_pairs_on_both_workers_do_not_starve_yielders_spawned_outside)
{
    pair_vs_grinders(fw_runtime(WEFT_MULTI_THREAD, 2), 2, true);
}

TEST(lifo_pair_does_not_starve_yielders_spawned_inside_current_thread)
{
    pair_vs_grinders(fw_runtime(WEFT_CURRENT_THREAD, 0), 1, false);
}

/* ======================================================================
 * (b) The budget: a task awaiting an always-ready leaf in a loop. The leaf
 * asks weft_coop_proceed() and is pending (without doing anything) when it
 * says no. The sibling must run and stop the loop; without a budget the
 * spinner would loop until SPIN_LIMIT and report starvation.
 * ====================================================================== */
#define SPIN_LIMIT 20000000L

static atomic_int spin_stop;
static atomic_int spin_sibling_spawned;   /* the spinner counts from then on */
static atomic_int spin_starved;
static atomic_long spin_count;
static atomic_int sibling_ran;

static weft_poll always_ready_poll(weft_context *cx)
{
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    return WEFT_READY;
}

typedef struct sibling {
    int unused;
} sibling;

static weft_poll sibling_poll(sibling *s, weft_context *cx, void *out)
{
    (void)s, (void)cx, (void)out;
    atomic_store(&sibling_ran, 1);
    atomic_store(&spin_stop, 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(sibling, sibling_poll, NULL);

typedef struct spinner {
    weft_async co;
    bool spawn_sibling;       /* from its first poll: the LIFO slot */
    long n;
} spinner;

static weft_poll spinner_poll(spinner *s, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&s->co);
    if (s->spawn_sibling) {
        if (weft_spawn_detached(weft_runtime_current(), &sibling_future, &(sibling){ 0 }) != 0)
            atomic_store(&spin_starved, 2);
        atomic_store(&spin_sibling_spawned, 1);
    }
    while (!atomic_load_explicit(&spin_stop, memory_order_relaxed)) {
        WEFT_AWAIT(&s->co, always_ready_poll(cx));
        /* counted once the sibling exists: a slow spawner thread is not
         * starvation */
        if (atomic_load_explicit(&spin_sibling_spawned, memory_order_relaxed) &&
            ++s->n > SPIN_LIMIT) {
            atomic_store(&spin_starved, 1);
            break;
        }
    }
    atomic_store(&spin_count, s->n);
    WEFT_END(&s->co);
}

WEFT_DEFINE_FUTURE_VOID(spinner, spinner_poll, NULL);

static void budget_case(weft_runtime *rt, bool sibling_inside)
{
    weft_worker_metrics m;

    atomic_store(&spin_stop, 0);
    atomic_store(&spin_sibling_spawned, 0);
    atomic_store(&spin_starved, 0);
    atomic_store(&spin_count, 0);
    atomic_store(&sibling_ran, 0);
    ASSERT_EQ(1, weft_runtime_workers(rt));
    ASSERT_OK(weft_spawn_detached(rt, &spinner_future, &(spinner){ .spawn_sibling = sibling_inside }));
    if (!sibling_inside) {
        ASSERT_OK(weft_spawn_detached(rt, &sibling_future, &(sibling){ 0 }));
        atomic_store(&spin_sibling_spawned, 1);
    }
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&spin_starved));
    ASSERT_EQ(1, atomic_load(&sibling_ran));
    ASSERT_OK(weft_runtime_worker_metrics(rt, 0, &m));
    printf("spinner: %ld always-ready polls, %llu forced yields\n", atomic_load(&spin_count),
           m.forced_yields);
    /* the spinner is polled first (spawned first, or the sibling's
     * spawner) and loops until the sibling has run: on one thread that
     * takes a poll of the spinner cut short by the budget */
    ASSERT(m.forced_yields > 0);
    weft_runtime_free(rt);
}

TEST(budget_always_ready_task_does_not_starve_lifo_sibling_one_worker)
{
    budget_case(fw_runtime(WEFT_MULTI_THREAD, 1), true);
}

TEST(budget_always_ready_task_does_not_starve_queued_sibling_one_worker)
{
    budget_case(fw_runtime(WEFT_MULTI_THREAD, 1), false);
}

TEST(budget_always_ready_task_does_not_starve_lifo_sibling_current_thread)
{
    budget_case(fw_runtime(WEFT_CURRENT_THREAD, 0), true);
}

TEST(budget_always_ready_task_does_not_starve_queued_sibling_current_thread)
{
    budget_case(fw_runtime(WEFT_CURRENT_THREAD, 0), false);
}

/* The sibling spawned by the spinner: it sits in the LIFO slot, so it only
 * runs when the spinner's poll ends. The spinner never completes a poll on
 * its own: forced_yields must account for every poll but the last. */
TEST(budget_forced_yields_counted)
{
    weft_runtime *rt = fw_runtime(WEFT_MULTI_THREAD, 1);
    weft_worker_metrics m;

    atomic_store(&spin_stop, 0);
    atomic_store(&spin_sibling_spawned, 0);
    atomic_store(&spin_starved, 0);
    atomic_store(&sibling_ran, 0);
    ASSERT_OK(weft_spawn_detached(rt, &spinner_future, &(spinner){ .spawn_sibling = true }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&spin_starved));
    ASSERT_EQ(1, atomic_load(&sibling_ran));
    ASSERT_OK(weft_runtime_worker_metrics(rt, 0, &m));
    ASSERT(m.forced_yields >= 1);
    /* every poll of the spinner but its last was cut short; the sibling's
     * single poll is the only other one */
    ASSERT(m.polls >= m.forced_yields + 2);
    weft_runtime_free(rt);
}

/* ======================================================================
 * (c) yield_now goes to the back of the queue: A, B and C yield YIELDS
 * times each and log every poll. Once all three are queued, they must take
 * turns (A B C A B C ...): never the same task twice in a row while another
 * one has not completed, as it would be if a yield went to the LIFO slot.
 * ====================================================================== */
#define YIELDS 100
#define LOG_MAX (4 * (YIELDS + 1))

static atomic_int yl_log[LOG_MAX];
static atomic_int yl_n;

typedef struct logyield {
    weft_async co;
    int id;
    int i;
    weft_yield y;
} logyield;

static void yl_record(int id)
{
    int at = atomic_fetch_add(&yl_n, 1);

    if (at < LOG_MAX)
        atomic_store(&yl_log[at], id);
}

static weft_poll logyield_poll(logyield *t, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&t->co);
    for (t->i = 0; t->i < YIELDS; t->i++) {
        yl_record(t->id);
        WEFT_YIELD(&t->co, &t->y, cx);
    }
    yl_record(t->id);
    WEFT_END(&t->co);
}

WEFT_DEFINE_FUTURE_VOID(logyield, logyield_poll, NULL);

/* Spawns A, B, C from inside a task, in that order. */
typedef struct abc_spawner {
    int unused;
} abc_spawner;

static weft_poll abc_spawner_poll(abc_spawner *s, weft_context *cx, void *out)
{
    (void)s, (void)cx, (void)out;
    for (int id = 0; id < 3; id++)
        if (weft_spawn_detached(weft_runtime_current(), &logyield_future,
                                &(logyield){ .id = id }) != 0)
            yl_record(99);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(abc_spawner, abc_spawner_poll, NULL);

static void yl_print(int n)
{
    printf("poll order (from the start):");
    for (int i = 0; i < n; i++)
        printf(" %c", 'A' + atomic_load(&yl_log[i]));
    printf("\n");
}

/* strict: after the first three polls (one of each), period 3 */
static void yield_order(weft_runtime *rt, bool from_inside, bool strict)
{
    int n, last_poll[3];

    atomic_store(&yl_n, 0);
    if (from_inside) {
        ASSERT_OK(weft_spawn_detached(rt, &abc_spawner_future, &(abc_spawner){ 0 }));
    } else {
        for (int id = 0; id < 3; id++)
            ASSERT_OK(weft_spawn_detached(rt, &logyield_future, &(logyield){ .id = id }));
    }
    ASSERT_OK(weft_runtime_run(rt));
    n = atomic_load(&yl_n);
    yl_print(n < 72 ? n : 72);
    ASSERT_EQ(3 * (YIELDS + 1), n);
    for (int id = 0; id < 3; id++)
        last_poll[id] = -1;
    for (int i = 0; i < n; i++) {
        int id = atomic_load(&yl_log[i]);

        ASSERT(id >= 0 && id < 3);
        last_poll[id] = i;               /* its final poll, at the end */
    }
    for (int i = 1; i < n; i++) {
        int id = atomic_load(&yl_log[i]);

        if (id != atomic_load(&yl_log[i - 1]))
            continue;
        /* twice in a row: fine only once the other two have completed */
        for (int other = 0; other < 3; other++)
            if (other != id && last_poll[other] > i)
                harness_fail(__FILE__, __LINE__, "polls %d and %d both of %c while %c was "
                             "runnable: a yield did not go to the back", i - 1, i, 'A' + id,
                             'A' + other);
    }
    if (strict) {
        int a = atomic_load(&yl_log[0]), b = atomic_load(&yl_log[1]),
            c = atomic_load(&yl_log[2]);

        ASSERT(a != b && b != c && a != c);
        for (int i = 3; i < n; i++)
            if (atomic_load(&yl_log[i]) != atomic_load(&yl_log[i - 3]))
                harness_fail(__FILE__, __LINE__, "poll %d: %c, not round robin", i,
                             'A' + atomic_load(&yl_log[i]));
    }
    weft_runtime_free(rt);
}

TEST(yield_goes_to_back_spawned_inside_current_thread)
{
    yield_order(fw_runtime(WEFT_CURRENT_THREAD, 0), true, true);
}

TEST(yield_goes_to_back_spawned_inside_one_worker)
{
    yield_order(fw_runtime(WEFT_MULTI_THREAD, 1), true, true);
}

/* Spawned from outside, the three go through the inject queue; a worker
 * takes at most half a local queue from it at once, so with 4-slot queues
 * C joins the round only at the next inject check (A and B take turns
 * until then): there only the "never twice in a row" rule is checked. */
TEST(yield_goes_to_back_spawned_outside_current_thread)
{
    yield_order(fw_runtime(WEFT_CURRENT_THREAD, 0), false, WEFT_LOCAL_QUEUE_CAP / 2 >= 3);
}

/* ======================================================================
 * (d) A long poll does not hold back the tasks queued behind it while
 * another worker is idle. On 2 workers, L spawns (or wakes) N short tasks
 * and then busy-loops inside its poll for at least LONG_POLL_MS, and on
 * until every short task has completed (a watchdog bounds it). Each short
 * task records when and where it ran: all of them must have run on the
 * other worker before L's poll ended. The last task spawned by L waits in
 * L's LIFO slot, so another worker must take it from there (stranded_taken).
 * ====================================================================== */
#define LONG_POLL_MS 100
#define MAX_SHORT 16

static atomic_int sh_done;
static _Atomic uint64_t sh_end_ns[MAX_SHORT];
static atomic_int sh_worker[MAX_SHORT];
static _Atomic uint64_t lp_start_ns, lp_end_ns;
static atomic_int lp_worker, lp_done_at_end, lp_failed;
static weft_waker sh_wakers[MAX_SHORT];
static atomic_int sh_registered, sh_go[MAX_SHORT];

typedef struct short_task {
    int i;
    bool wait_for_go;         /* pending until L wakes it */
} short_task;

static weft_poll short_task_poll(short_task *s, weft_context *cx, void *out)
{
    (void)out;
    if (s->wait_for_go && !atomic_load(&sh_go[s->i])) {
        if (sh_wakers[s->i].vtable == NULL) {
            sh_wakers[s->i] = weft_waker_clone(weft_context_waker(cx));
            atomic_fetch_add(&sh_registered, 1);   /* publishes the waker */
        }
        return WEFT_PENDING;
    }
    atomic_store(&sh_worker[s->i], weft_worker_index());
    atomic_store(&sh_end_ns[s->i], harness_now_ns());
    atomic_fetch_add(&sh_done, 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(short_task, short_task_poll, NULL);

typedef struct long_task {
    int n;
    bool wake;                /* wake n registered waiters instead of spawning */
} long_task;

static weft_poll long_task_poll(long_task *l, weft_context *cx, void *out)
{
    uint64_t start, now, min_end, max_end;

    (void)cx, (void)out;
    atomic_store(&lp_worker, weft_worker_index());
    start = harness_now_ns();
    atomic_store(&lp_start_ns, start);
    for (int i = 0; i < l->n; i++) {
        if (l->wake) {
            atomic_store(&sh_go[i], 1);
            weft_waker_wake_by_ref(&sh_wakers[i]);
        } else if (weft_spawn_detached(weft_runtime_current(), &short_task_future,
                                       &(short_task){ .i = i }) != 0) {
            atomic_store(&lp_failed, 1);
        }
    }
    min_end = start + (uint64_t)LONG_POLL_MS * 1000000u;
    max_end = start + FW_WATCHDOG_NS;
    do {
        now = harness_now_ns();
    } while (now < min_end || (atomic_load(&sh_done) < l->n && now < max_end));
    atomic_store(&lp_done_at_end, atomic_load(&sh_done));
    atomic_store(&lp_end_ns, harness_now_ns());
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(long_task, long_task_poll, NULL);

static void long_poll_case(int n, bool wake)
{
    int rounds = 3;

    for (int r = 0; r < rounds; r++) {
        weft_runtime *rt = fw_runtime(WEFT_MULTI_THREAD, 2);
        weft_worker_metrics m;
        uint64_t latest = 0;

        atomic_store(&sh_done, 0);
        atomic_store(&sh_registered, 0);
        atomic_store(&lp_failed, 0);
        atomic_store(&lp_done_at_end, -1);
        for (int i = 0; i < MAX_SHORT; i++) {
            atomic_store(&sh_end_ns[i], 0);
            atomic_store(&sh_worker[i], -1);
            atomic_store(&sh_go[i], 0);
            sh_wakers[i] = WEFT_WAKER_EMPTY;
        }
        if (wake) {
            for (int i = 0; i < n; i++)
                ASSERT_OK(weft_spawn_detached(rt, &short_task_future,
                                              &(short_task){ .i = i, .wait_for_go = true }));
            FW_WAIT_UNTIL(atomic_load(&sh_registered) == n, "waiters never polled");
        }
        ASSERT_OK(weft_spawn_detached(rt, &long_task_future, &(long_task){ n, wake }));
        ASSERT_OK(weft_runtime_run(rt));
        ASSERT_EQ(0, atomic_load(&lp_failed));
        /* all of them ran while L was still inside its poll */
        ASSERT_EQ(n, atomic_load(&lp_done_at_end));
        for (int i = 0; i < n; i++) {
            uint64_t e = atomic_load(&sh_end_ns[i]);

            ASSERT(e != 0);
            ASSERT(e <= atomic_load(&lp_end_ns));
            ASSERT(atomic_load(&sh_worker[i]) >= 0);
            ASSERT_NE(atomic_load(&lp_worker), atomic_load(&sh_worker[i]));
            if (e > latest)
                latest = e;
        }
        fw_metrics_sum(rt, &m);
        /* the last one spawned sat in L's LIFO slot: only a worker taking
         * it from there can have run it. (Not checked for wakes: a waiter
         * whose first poll had not quite returned when L woke it is
         * requeued by its own worker, not put in L's slot.) */
        if (!wake)
            ASSERT(m.stranded_taken >= 1);
        printf("round %d: %d short tasks done %.2f ms into a %.2f ms poll; steals %llu, "
               "stranded taken %llu\n",
               r, n, (double)(latest - atomic_load(&lp_start_ns)) / 1e6,
               (double)(atomic_load(&lp_end_ns) - atomic_load(&lp_start_ns)) / 1e6, m.steals,
               m.stranded_taken);
        weft_runtime_free(rt);
        for (int i = 0; i < n; i++)
            weft_waker_drop(&sh_wakers[i]);
    }
}

TEST(long_poll_does_not_hold_back_spawned_queue)
{
    long_poll_case(10, false);
}

TEST(long_poll_does_not_hold_back_spawned_lifo_slot)
{
    long_poll_case(1, false);
}

TEST(long_poll_does_not_hold_back_woken_queue)
{
    long_poll_case(10, true);
}

TEST(long_poll_does_not_hold_back_woken_lifo_slot)
{
    long_poll_case(1, true);
}

/* ======================================================================
 * (e) Inject fairness: YIELDERS local tasks yield forever (counting their
 * polls in ij_local_polls); a foreign thread wakes (or spawns) one task at a
 * time and waits until it has run. Each must run, and within a bounded
 * number of local polls after its wake: the design checks the inject queue
 * every 61 polls; INJECT_MAX_DELAY is far above that, yet a scheduler that
 * only looks at the inject queue when local work runs out fails it (here
 * local work never runs out).
 * ====================================================================== */
#define YIELDERS 4
#define WAITERS 8
#define INJECT_MAX_DELAY 20000L

static atomic_int ij_stop;
static atomic_long ij_local_polls;
static atomic_long ij_max_delay;
static atomic_long ij_wake_mark;         /* local polls counted after the wake */
static atomic_int ij_served;
static atomic_int ij_registered;
static atomic_int ij_finish;
static weft_waker ij_wakers[WAITERS];
static atomic_long ij_polls[WAITERS];
static atomic_int ij_yielders_started;

typedef struct ij_yielder {
    weft_async co;
    weft_yield y;
} ij_yielder;

static weft_poll ij_yielder_poll(ij_yielder *t, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&t->co);
    atomic_fetch_add(&ij_yielders_started, 1);
    while (!atomic_load_explicit(&ij_stop, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&ij_local_polls, 1, memory_order_relaxed);
        WEFT_YIELD(&t->co, &t->y, cx);
    }
    WEFT_END(&t->co);
}

WEFT_DEFINE_FUTURE_VOID(ij_yielder, ij_yielder_poll, NULL);

static void ij_note_service(void)
{
    long now = atomic_load(&ij_local_polls);
    long mark = atomic_load(&ij_wake_mark);
    long d = mark == LONG_MAX ? 0 : now - mark, prev = atomic_load(&ij_max_delay);

    while (d > prev && !atomic_compare_exchange_weak(&ij_max_delay, &prev, d))
        ;
    atomic_fetch_add(&ij_served, 1);
}

typedef struct ij_waiter {
    int i;
} ij_waiter;

static weft_poll ij_waiter_poll(ij_waiter *w, weft_context *cx, void *out)
{
    long n = atomic_fetch_add(&ij_polls[w->i], 1);

    (void)out;
    if (n == 0) {
        ij_wakers[w->i] = weft_waker_clone(weft_context_waker(cx));
        atomic_fetch_add(&ij_registered, 1);
        return WEFT_PENDING;
    }
    if (atomic_load(&ij_finish))
        return WEFT_READY;
    ij_note_service();
    return WEFT_PENDING;
}

WEFT_DEFINE_FUTURE_VOID(ij_waiter, ij_waiter_poll, NULL);

typedef struct ij_spawned {
    int unused;
} ij_spawned;

static weft_poll ij_spawned_poll(ij_spawned *s, weft_context *cx, void *out)
{
    (void)s, (void)cx, (void)out;
    ij_note_service();
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(ij_spawned, ij_spawned_poll, NULL);

typedef struct ij_arg {
    weft_runtime *rt;
    bool spawn;
    int rounds;
} ij_arg;

static void *ij_foreign(void *arg)
{
    ij_arg *a = arg;

    FW_WAIT_UNTIL(atomic_load(&ij_yielders_started) == YIELDERS &&
                      atomic_load(&ij_registered) == WAITERS,
                  "tasks never started");
    for (int r = 0; r < a->rounds; r++) {
        int served = atomic_load(&ij_served);

        /* the mark is set after the wake: the delay measured is never
         * more than the real one (served before the mark is set: 0) */
        atomic_store(&ij_wake_mark, LONG_MAX);
        if (a->spawn) {
            if (weft_spawn_detached(a->rt, &ij_spawned_future, &(ij_spawned){ 0 }) != 0)
                harness_fail(__FILE__, __LINE__, "spawn from a foreign thread failed");
        } else {
            weft_waker_wake_by_ref(&ij_wakers[r % WAITERS]);
        }
        atomic_store(&ij_wake_mark, atomic_load(&ij_local_polls));
        FW_WAIT_UNTIL(atomic_load(&ij_served) > served,
                      "a task woken from a foreign thread never ran");
    }
    atomic_store(&ij_finish, 1);
    atomic_store(&ij_stop, 1);
    for (int i = 0; i < WAITERS; i++)
        weft_waker_wake_by_ref(&ij_wakers[i]);
    return NULL;
}

static void inject_fairness(weft_runtime *rt, bool spawn)
{
    ij_arg a = { rt, spawn, (int)harness_scale(300) };
    pthread_t th;

    atomic_store(&ij_stop, 0);
    atomic_store(&ij_local_polls, 0);
    atomic_store(&ij_max_delay, 0);
    atomic_store(&ij_wake_mark, 0);
    atomic_store(&ij_served, 0);
    atomic_store(&ij_registered, 0);
    atomic_store(&ij_finish, 0);
    atomic_store(&ij_yielders_started, 0);
    for (int i = 0; i < WAITERS; i++) {
        ij_wakers[i] = WEFT_WAKER_EMPTY;
        atomic_store(&ij_polls[i], 0);
        ASSERT_OK(weft_spawn_detached(rt, &ij_waiter_future, &(ij_waiter){ i }));
    }
    for (int i = 0; i < YIELDERS; i++)
        ASSERT_OK(weft_spawn_detached(rt, &ij_yielder_future, &(ij_yielder){ .co = { 0 } }));
    th = fw_start(ij_foreign, &a);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_EQ(a.rounds, atomic_load(&ij_served));
    printf("%d foreign %s served; the slowest after %ld local polls (of %ld)\n", a.rounds,
           spawn ? "spawns" : "wakes", atomic_load(&ij_max_delay),
           atomic_load(&ij_local_polls));
    ASSERT_LE(INJECT_MAX_DELAY, atomic_load(&ij_max_delay));
    weft_runtime_free(rt);
    for (int i = 0; i < WAITERS; i++)
        weft_waker_drop(&ij_wakers[i]);
}

TEST(inject_wakes_run_while_local_tasks_yield_one_worker)
{
    inject_fairness(fw_runtime(WEFT_MULTI_THREAD, 1), false);
}

TEST(inject_wakes_run_while_local_tasks_yield_two_workers)
{
    inject_fairness(fw_runtime(WEFT_MULTI_THREAD, 2), false);
}

TEST(inject_wakes_run_while_local_tasks_yield_current_thread)
{
    inject_fairness(fw_runtime(WEFT_CURRENT_THREAD, 0), false);
}

TEST(inject_spawns_run_while_local_tasks_yield_one_worker)
{
    inject_fairness(fw_runtime(WEFT_MULTI_THREAD, 1), true);
}

TEST(inject_spawns_run_while_local_tasks_yield_two_workers)
{
    inject_fairness(fw_runtime(WEFT_MULTI_THREAD, 2), true);
}

TEST(inject_spawns_run_while_local_tasks_yield_current_thread)
{
    inject_fairness(fw_runtime(WEFT_CURRENT_THREAD, 0), true);
}
