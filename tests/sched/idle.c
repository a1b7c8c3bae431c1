/* SPDX-License-Identifier: MIT */
/* Idleness and wake-ups: an idle runtime sleeps (no CPU), and a wake from
 * another thread is never lost, whenever it lands relative to the poll and
 * to the worker going to sleep. */
#define _GNU_SOURCE
#include "sched_test.h"

static weft_runtime *new_multi(unsigned workers)
{
    weft_runtime *rt;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = workers }));
    return rt;
}

static weft_runtime *new_current(void)
{
    weft_runtime *rt;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    return rt;
}

/* ---- No CPU when idle ------------------------------------------------------------- */
static uint64_t cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static atomic_long completed;

typedef struct yielder {
    weft_async co;
    int n;
    weft_yield y;
} yielder;

static weft_poll yielder_poll(yielder *t, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&t->co);
    while (t->n-- > 0)
        WEFT_YIELD(&t->co, &t->y, cx);
    atomic_fetch_add(&completed, 1);
    WEFT_END(&t->co);
}

WEFT_DEFINE_FUTURE_VOID(yielder, yielder_poll, NULL);

/* Pending forever, holding its waker; dropped at shutdown. */
static atomic_long held;

typedef struct hold {
    bool polled;
    weft_waker w;
} hold;

static weft_poll hold_poll(hold *h, weft_context *cx, void *out)
{
    (void)out;
    if (!h->polled) {
        h->polled = true;
        h->w = weft_waker_clone(weft_context_waker(cx));
        atomic_fetch_add(&held, 1);
    }
    return WEFT_PENDING;
}

static void hold_drop(hold *h)
{
    weft_waker_drop(&h->w);
}

WEFT_DEFINE_FUTURE_VOID(hold, hold_poll, hold_drop);

/* A spinning worker burns ~1000 ms of CPU per idle second; a sleeping one
 * burns next to none (under 0.3 ms here, TSan included). 10 ms leaves room
 * for a sanitizer's housekeeping thread and the odd timer tick, and none for
 * polling loops: 4 workers that each wake every 1 ms to look for work cost
 * about 30 ms per second. */
#define IDLE_CPU_BOUND_MS 10

static void measure_idle(weft_runtime *rt, const char *what)
{
    uint64_t c0, c1;

    sleep_ms(200);                      /* let workers settle into sleep */
    c0 = cpu_ns();
    sleep_ms(1000);
    c1 = cpu_ns();
    printf("%s: %.2f ms CPU in 1 s idle\n", what, (double)(c1 - c0) / 1e6);
    fflush(stdout);
    ASSERT_LE(ms_to_ns(IDLE_CPU_BOUND_MS), c1 - c0);
    (void)rt;
}

TEST(idle_runtime_with_4_workers_uses_no_cpu)
{
    weft_runtime *rt = new_multi(4);
    long n = (long)harness_scale(20000);

    /* warm up: every worker has had work, and has run out of it */
    atomic_store(&completed, 0);
    for (long i = 0; i < n; i++)
        ASSERT_OK(weft_spawn_detached(rt, &yielder_future, &(yielder){ .n = 3 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(n, atomic_load(&completed));
    measure_idle(rt, "4 workers, no tasks");
    weft_runtime_free(rt);
}

TEST(idle_runtime_with_pending_tasks_uses_no_cpu)
{
    weft_runtime *rt = new_multi(4);

    atomic_store(&held, 0);
    for (int i = 0; i < 1000; i++)
        ASSERT_OK(weft_spawn_detached(rt, &hold_future, &(hold){ 0 }));
    WAIT_AT_LEAST(&held, 1000, WATCHDOG_MS, "tasks polled once");
    measure_idle(rt, "4 workers, 1000 pending tasks");
    weft_runtime_free(rt);
}

/* A runtime that was never given work sleeps from the start. */
TEST(fresh_runtime_uses_no_cpu)
{
    weft_runtime *rt = new_multi(4);

    measure_idle(rt, "4 workers, never used");
    weft_runtime_free(rt);
}

/* ---- No lost wake-ups ----------------------------------------------------------------
 * Ping-pong between tasks and foreign threads. Each round, a task stores a
 * clone of its waker in its slot and returns PENDING; a foreign thread takes
 * the waker and wakes it (often while the poll has not even returned yet,
 * sometimes after the worker went to sleep); the task's next poll starts the
 * next round. A lost wake-up stalls a slot: the foreign thread's watchdog
 * fails the test after ROUND_WATCHDOG_MS without progress.
 *
 * Spurious polls are allowed by the protocol and tolerated: a poll that
 * finds its previous waker not yet taken just returns PENDING again. */
#define ROUND_WATCHDOG_MS 5000
#define MAX_SLOTS 64

struct slot {
    _Atomic long posted;          /* rounds handed over (task writes) */
    _Atomic long taken;           /* rounds taken (foreign thread writes) */
    weft_waker w;                 /* valid while posted > taken */
    atomic_int done;
    long rounds;
};

static struct slot slots[MAX_SLOTS];
static atomic_long spurious;

typedef struct ping {
    int k;
} ping;

static weft_poll ping_poll(ping *p, weft_context *cx, void *out)
{
    struct slot *s = &slots[p->k];
    /* relaxed: only this task writes posted */
    long posted = atomic_load_explicit(&s->posted, memory_order_relaxed);

    (void)out;
    /* acquire: pairs with the release store of taken; after it, the waker
     * field is ours to overwrite */
    if (atomic_load_explicit(&s->taken, memory_order_acquire) != posted) {
        atomic_fetch_add_explicit(&spurious, 1, memory_order_relaxed);
        return WEFT_PENDING;      /* the foreign thread has yet to take it */
    }
    if (posted == s->rounds) {
        atomic_store(&s->done, 1);
        return WEFT_READY;
    }
    s->w = weft_waker_clone(weft_context_waker(cx));
    /* release: publishes w; pairs with the acquire load in wake_slots() */
    atomic_store_explicit(&s->posted, posted + 1, memory_order_release);
    return WEFT_PENDING;
}

WEFT_DEFINE_FUTURE_VOID(ping, ping_poll, NULL);

struct waker_thread_arg {
    int first, step, nslots;
};

static void busy_wait(unsigned n)
{
    for (volatile unsigned i = 0; i < n; i++)
        ;
}

/* Wake round `r` of a slot, in one of several ways and at one of several
 * moments. `w` is our reference, consumed here. */
static void wake_in_some_way(weft_waker *w, long r)
{
    weft_waker w2;

    if (r % 7 == 3)
        busy_wait((unsigned)(r * 7919 % 20000));   /* let the poll return */
    else if (r % 29 == 5)
        sched_yield();                             /* let the worker park */
    switch (r % 4) {
    case 0:
        weft_waker_wake(w);
        break;
    case 1:
        weft_waker_wake_by_ref(w);
        weft_waker_drop(w);
        break;
    case 2:
        w2 = weft_waker_clone(w);
        weft_waker_drop(w);
        weft_waker_wake(&w2);
        break;
    default:
        weft_waker_wake_by_ref(w);                 /* twice: one poll or two */
        weft_waker_wake(w);
        break;
    }
}

static void *wake_slots(void *p)
{
    struct waker_thread_arg *a = p;
    uint64_t last = harness_now_ns();
    unsigned idle_spins = 0;
    int left = 0;

    for (int k = a->first; k < a->nslots; k += a->step)
        left++;
    while (left > 0) {
        bool progress = false;

        left = 0;
        for (int k = a->first; k < a->nslots; k += a->step) {
            struct slot *s = &slots[k];
            long taken = atomic_load_explicit(&s->taken, memory_order_relaxed);
            /* acquire: pairs with the release in ping_poll(); w is valid */
            long posted = atomic_load_explicit(&s->posted, memory_order_acquire);

            if (atomic_load(&s->done))
                continue;
            left++;
            if (posted > taken) {
                weft_waker w = s->w;

                /* release: we are done reading w; pairs with ping_poll() */
                atomic_store_explicit(&s->taken, posted, memory_order_release);
                wake_in_some_way(&w, posted);
                progress = true;
            }
        }
        if (progress) {
            idle_spins = 0;
            last = 0;
            continue;
        }
        if (++idle_spins % 64 == 0) {
            uint64_t now = harness_now_ns();

            if (last == 0)
                last = now;
            else if (now - last > ms_to_ns(ROUND_WATCHDOG_MS)) {
                for (int k = a->first; k < a->nslots; k += a->step)
                    if (!atomic_load(&slots[k].done))
                        harness_fail(__FILE__, __LINE__,
                                     "lost wake-up: slot %d stuck in round %ld of %ld "
                                     "(posted %ld, taken %ld) for %u ms",
                                     k, atomic_load(&slots[k].taken) + 1, slots[k].rounds,
                                     atomic_load(&slots[k].posted),
                                     atomic_load(&slots[k].taken), ROUND_WATCHDOG_MS);
            }
        }
        sched_yield();
    }
    return NULL;
}

/* `ntasks` tasks, `nthreads` foreign threads, `total` rounds in all. */
static void ping_pong(weft_runtime *rt, int ntasks, int nthreads, long total)
{
    struct waker_thread_arg args[8];
    pthread_t th[8];
    long rounds = total / ntasks > 0 ? total / ntasks : 1;

    ASSERT(ntasks <= MAX_SLOTS && nthreads <= 8);
    atomic_store(&spurious, 0);
    for (int k = 0; k < ntasks; k++) {
        atomic_store(&slots[k].posted, 0);
        atomic_store(&slots[k].taken, 0);
        atomic_store(&slots[k].done, 0);
        slots[k].w = WEFT_WAKER_EMPTY;
        slots[k].rounds = rounds;
    }
    for (int t = 0; t < nthreads; t++) {
        args[t] = (struct waker_thread_arg){ t, nthreads, ntasks };
        START_THREAD(&th[t], wake_slots, &args[t]);
    }
    for (int k = 0; k < ntasks; k++)
        ASSERT_OK(weft_spawn_detached(rt, &ping_future, &(ping){ k }));
    ASSERT_OK(weft_runtime_run(rt));    /* returns once every slot is done */
    for (int t = 0; t < nthreads; t++)
        JOIN_THREAD(th[t]);
    for (int k = 0; k < ntasks; k++) {
        ASSERT_EQ(1, atomic_load(&slots[k].done));
        ASSERT_EQ(rounds, atomic_load(&slots[k].posted));
        ASSERT_EQ(rounds, atomic_load(&slots[k].taken));
    }
    ASSERT_EQ(0, weft_runtime_active_tasks(rt));
    weft_runtime_free(rt);
}

TEST(no_lost_wakeups_one_worker)
{
    ping_pong(new_multi(1), 1, 1, (long)harness_scale(100000));
}

TEST(no_lost_wakeups_two_workers)
{
    ping_pong(new_multi(2), 1, 1, (long)harness_scale(100000));
}

TEST(no_lost_wakeups_four_workers)
{
    ping_pong(new_multi(4), 1, 1, (long)harness_scale(100000));
}

TEST(no_lost_wakeups_current_thread)
{
    ping_pong(new_current(), 1, 1, (long)harness_scale(100000));
}

TEST(no_lost_wakeups_eight_tasks_two_wakers_four_workers)
{
    ping_pong(new_multi(4), 8, 2, (long)harness_scale(100000));
}

TEST(no_lost_wakeups_eight_tasks_two_wakers_current_thread)
{
    ping_pong(new_current(), 8, 2, (long)harness_scale(100000));
}
