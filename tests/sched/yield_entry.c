// SPDX-License-Identifier: MIT
/* Yield entries: a task that yields (yield_now, the coop budget) goes back
 * to the run queue without an atomic operation on its state, still owning
 * its poll (src/task/task.h, "Yield entries"). What must stay true while
 * such an entry waits in a queue: the dump shows the task as scheduled, an
 * abort cancels it, shutdown cancels it once, and a wake that lands then is
 * not lost. */
#define _GNU_SOURCE
#include "sched_test.h"

static atomic_bool stop;
static atomic_long spins, drops;

/* Yields until `stop`. */
typedef struct spinner {
    weft_async co;
    weft_yield y;
} spinner;

static weft_poll spinner_poll(spinner *s, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&s->co);
    while (!atomic_load(&stop)) {
        atomic_fetch_add(&spins, 1);
        WEFT_YIELD(&s->co, &s->y, cx);
    }
    WEFT_END(&s->co);
}

static void spinner_drop(spinner *s)
{
    (void)s;
    atomic_fetch_add(&drops, 1);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(spinner, spinner_poll, spinner_drop);

static void reset(void)
{
    atomic_store(&stop, false);
    atomic_store(&spins, 0);
    atomic_store(&drops, 0);
}

/* ---- the dump --------------------------------------------------------------------- */
struct states {
    unsigned running, scheduled, other;
};

static int count_state(const weft_task_info *ti, void *arg)
{
    struct states *st = arg;

    if (ti->state == WEFT_TASK_RUNNING || ti->state == WEFT_TASK_NOTIFIED)
        st->running++;
    else if (ti->state == WEFT_TASK_SCHEDULED)
        st->scheduled++;
    else
        st->other++;
    return 0;
}

/* 64 tasks that do nothing but yield: at any instant at most one per worker
 * is being polled; the rest wait in run queues and must show as scheduled
 * (a dump reads each task at a slightly different time, so a few more may
 * be caught running; all of them would mean yield entries show as running). */
TEST(yielding_tasks_show_as_scheduled_in_the_dump)
{
    enum { TASKS = 64 };
    weft_runtime *rt;
    weft_join *j[TASKS];
    unsigned most_running = 0, scheduled = 0;

    reset();
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    for (unsigned i = 0; i < TASKS; i++)
        ASSERT_OK(weft_spawn(rt, &spinner_future, &(spinner){ 0 }, &j[i]));
    WAIT_AT_LEAST(&spins, 20 * TASKS, WATCHDOG_MS, "spins");
    for (unsigned k = 0; k < 20; k++) {
        struct states st = { 0, 0, 0 };

        ASSERT_OK(weft_runtime_tasks(rt, count_state, &st));
        ASSERT_EQ(TASKS, st.running + st.scheduled + st.other);
        if (st.running > most_running)
            most_running = st.running;
        scheduled += st.scheduled;
    }
    ASSERT(most_running <= TASKS / 4);
    ASSERT(scheduled > 0);
    atomic_store(&stop, true);
    for (unsigned i = 0; i < TASKS; i++) {
        ASSERT_OK(weft_join_wait(j[i], NULL));
        weft_join_drop(j[i]);
    }
    weft_runtime_free(rt);
    ASSERT_EQ(TASKS, atomic_load(&drops));
}

/* ---- abort and shutdown ------------------------------------------------------------ */
TEST(abort_cancels_a_yielding_task)
{
    weft_runtime *rt;
    weft_join *j;

    reset();
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    for (unsigned round = 0; round < 20; round++) {
        long before = atomic_load(&spins);

        ASSERT_OK(weft_spawn(rt, &spinner_future, &(spinner){ 0 }, &j));
        WAIT_AT_LEAST(&spins, before + 50 + round, WATCHDOG_MS, "spins");
        weft_join_abort(j);
        ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
        weft_join_drop(j);
        ASSERT_EQ((long)round + 1, atomic_load(&drops));
    }
    weft_runtime_free(rt);
    ASSERT_EQ(20, atomic_load(&drops));
}

/* Yields `left` times, then completes. */
typedef struct yield_n {
    weft_async co;
    weft_yield y;
    unsigned left;
} yield_n;

static weft_poll yield_n_poll(yield_n *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    while (f->left-- > 0)
        WEFT_YIELD(&f->co, &f->y, cx);
    WEFT_END(&f->co);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(yield_n, yield_n_poll, NULL);

/* The runtime goes away while yield entries wait in every queue (the local
 * queues, and with 4-slot queues (smallq.*) the inject queue too): every
 * task is cancelled, its future dropped exactly once. */
static void free_while_yielding(weft_runtime_options opt)
{
    enum { TASKS = 100 };
    weft_runtime *rt;

    reset();
    ASSERT_OK(weft_runtime_new(&rt, &opt));
    for (unsigned i = 0; i < TASKS; i++)
        ASSERT_OK(weft_spawn_detached(rt, &spinner_future, &(spinner){ 0 }));
    if (opt.flavor == WEFT_CURRENT_THREAD) {
        /* run them a while (a root that yields 20 times): then they wait
         * in the queue as yield entries */
        ASSERT_OK(weft_block_on(rt, &yield_n_future, &(yield_n){ .left = 20 }, NULL));
        ASSERT(atomic_load(&spins) >= 10 * TASKS);
    } else {
        WAIT_AT_LEAST(&spins, 10 * TASKS, WATCHDOG_MS, "spins");
    }
    weft_runtime_free(rt);
    ASSERT_EQ(TASKS, atomic_load(&drops));
}

TEST(free_cancels_yielding_tasks_once_multi_thread)
{
    free_while_yielding((weft_runtime_options){ .workers = 2 });
}

TEST(free_cancels_yielding_tasks_once_current_thread)
{
    free_while_yielding((weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD });
}

/* ---- wakes that land on a yield entry ---------------------------------------------- */
/* Each round a task leaves its waker in its slot, yields, and then waits
 * until a foreign thread has taken the waker, raised the slot's token and
 * woken it: most wakes land while the task waits in a queue after its
 * yield (a yield entry, still RUNNING: the wake only sets NOTIFIED). A lost
 * wake shows as a task that never finishes (the watchdog). */
struct slot {
    pthread_mutex_t lock;
    weft_waker w;                      /* ->lock */
    bool has;                          /* ->lock */
    unsigned token;                    /* ->lock */
};

static unsigned ping_rounds;
static atomic_long pings_done;

typedef struct ping {
    weft_async co;
    weft_yield y;
    struct slot *s;
    unsigned round;
} ping;

/* Leave (a clone of) our waker in the slot unless one is there; true when
 * the token has reached `want`. */
static bool ping_check(struct slot *s, weft_context *cx, unsigned want)
{
    bool done;

    pthread_mutex_lock(&s->lock);
    done = s->token >= want;
    if (!done && !s->has) {
        s->w = weft_waker_clone(weft_context_waker(cx));
        s->has = true;
    }
    pthread_mutex_unlock(&s->lock);
    return done;
}

/* Ready once this round's token is in (re-checked on every poll). */
static weft_poll ping_wait(ping *p, weft_context *cx)
{
    return ping_check(p->s, cx, p->round) ? WEFT_READY : WEFT_PENDING;
}

static weft_poll ping_poll(ping *p, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&p->co);
    for (p->round = 1; p->round <= ping_rounds; p->round++) {
        (void)ping_check(p->s, cx, p->round);
        WEFT_YIELD(&p->co, &p->y, cx);
        WEFT_AWAIT(&p->co, ping_wait(p, cx));
    }
    atomic_fetch_add(&pings_done, 1);
    WEFT_END(&p->co);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(ping, ping_poll, NULL);

enum { PING_TASKS = 32 };
static struct slot slots[PING_TASKS];
static atomic_bool pongs_stop;

static void *ponger_main(void *arg)
{
    unsigned start = (unsigned)(uintptr_t)arg;

    while (!atomic_load(&pongs_stop)) {
        for (unsigned i = 0; i < PING_TASKS; i++) {
            struct slot *s = &slots[(start + i) % PING_TASKS];
            weft_waker w = WEFT_WAKER_EMPTY;

            pthread_mutex_lock(&s->lock);
            if (s->has) {
                w = s->w;
                s->has = false;
                s->token++;
            }
            pthread_mutex_unlock(&s->lock);
            weft_waker_wake(&w);
        }
    }
    return NULL;
}

static void wakes_on_yield_entries(weft_runtime_options opt)
{
    weft_runtime *rt;
    weft_join *j[PING_TASKS];
    pthread_t th[2];

    ping_rounds = (unsigned)harness_scale(2000);
    atomic_store(&pongs_stop, false);
    atomic_store(&pings_done, 0);
    for (unsigned i = 0; i < PING_TASKS; i++) {
        pthread_mutex_init(&slots[i].lock, NULL);
        slots[i].has = false;
        slots[i].token = 0;
    }
    ASSERT_OK(weft_runtime_new(&rt, &opt));
    for (unsigned i = 0; i < 2; i++)
        START_THREAD(&th[i], ponger_main, (void *)(uintptr_t)(i * PING_TASKS / 2));
    for (unsigned i = 0; i < PING_TASKS; i++)
        ASSERT_OK(weft_spawn(rt, &ping_future, &(ping){ .s = &slots[i] }, &j[i]));
    WAIT_AT_LEAST(&pings_done, PING_TASKS, 4 * WATCHDOG_MS, "tasks done (a lost wake?)");
    for (unsigned i = 0; i < PING_TASKS; i++) {
        ASSERT_OK(weft_join_wait(j[i], NULL));
        weft_join_drop(j[i]);
    }
    atomic_store(&pongs_stop, true);
    for (unsigned i = 0; i < 2; i++)
        JOIN_THREAD_WITHIN(th[i], WATCHDOG_MS, "ponger");
    for (unsigned i = 0; i < PING_TASKS; i++) {
        ASSERT_EQ(ping_rounds, slots[i].token);
        if (slots[i].has)
            weft_waker_drop(&slots[i].w);
        pthread_mutex_destroy(&slots[i].lock);
    }
    weft_runtime_free(rt);
}

TEST(wakes_on_yield_entries_are_not_lost_multi_thread)
{
    wakes_on_yield_entries((weft_runtime_options){ .workers = 2 });
}

TEST(wakes_on_yield_entries_are_not_lost_four_workers)
{
    wakes_on_yield_entries((weft_runtime_options){ .workers = 4 });
}

