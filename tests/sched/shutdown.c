/* SPDX-License-Identifier: MIT */
/* Shutdown: every unfinished task is cancelled exactly once (its future's
 * drop runs once, its join reports -ECANCELED), nothing leaks (the harness
 * checks), later spawns are refused, and wakers or join handles that outlive
 * the runtime stay safe to use. */
#define _GNU_SOURCE
#include "sched_test.h"

/* ---- hold: pending forever -----------------------------------------------------
 * On its first poll it keeps a clone of its waker and never arranges for
 * anyone to wake it. Its drop counts per task and releases the waker. */
#define MAX_HOLD 20000

static atomic_int drops[MAX_HOLD + 1];
static atomic_long first_polls;
static atomic_long extra_polls;
static atomic_long dropped_polled, dropped_unpolled;

typedef struct hold {
    int id;
    bool polled;
    weft_waker w;             /* a clone, kept and never woken */
} hold;

static weft_poll hold_poll(hold *h, weft_context *cx, void *out)
{
    (void)out;
    if (h->polled) {
        atomic_fetch_add(&extra_polls, 1);   /* spurious: allowed, counted */
        return WEFT_PENDING;
    }
    h->polled = true;
    h->w = weft_waker_clone(weft_context_waker(cx));
    atomic_fetch_add(&first_polls, 1);
    return WEFT_PENDING;
}

static void hold_drop(hold *h)
{
    atomic_fetch_add(&drops[h->id], 1);
    atomic_fetch_add(h->polled ? &dropped_polled : &dropped_unpolled, 1);
    weft_waker_drop(&h->w);
}

WEFT_DEFINE_FUTURE(hold, hold_poll, hold_drop, int);  /* int: never written */

static void reset_counts(void)
{
    for (int i = 0; i <= MAX_HOLD; i++)
        atomic_store(&drops[i], 0);
    atomic_store(&first_polls, 0);
    atomic_store(&extra_polls, 0);
    atomic_store(&dropped_polled, 0);
    atomic_store(&dropped_unpolled, 0);
}

static void check_dropped_once(int from, int to)
{
    for (int i = from; i < to; i++)
        if (atomic_load(&drops[i]) != 1)
            harness_fail(__FILE__, __LINE__, "task %d: its future was dropped %d times",
                         i, atomic_load(&drops[i]));
}

/* A join handle of a cancelled task, seen every way there is to see it. */
static void check_cancelled_join(weft_join *j)
{
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);
    int out = 12345, result = 0;

    ASSERT(weft_join_is_complete(j));
    ASSERT_EQ(-ECANCELED, weft_join_try(j, &out));
    ASSERT_EQ(-ECANCELED, weft_join_try(j, NULL));
    ASSERT_EQ(WEFT_READY, weft_join_poll(j, &cx, &result, &out));
    ASSERT_EQ(-ECANCELED, result);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &out));
    ASSERT_EQ(12345, out);                      /* output untouched */
}

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

/* ---- 10,000 pending tasks ---------------------------------------------------------- */
#define PENDING_TASKS 10000
#define JOIN_EVERY 10

static weft_join *joins[MAX_HOLD / JOIN_EVERY + 1];

TEST(shutdown_cancels_10000_pending_tasks_multi_thread)
{
    weft_runtime *rt = new_multi(2);
    int nj = 0;

    reset_counts();
    for (int i = 0; i < PENDING_TASKS; i++) {
        if (i % JOIN_EVERY == 0)
            ASSERT_OK(weft_spawn(rt, &hold_future, &(hold){ .id = i }, &joins[nj++]));
        else
            ASSERT_OK(weft_spawn_detached(rt, &hold_future, &(hold){ .id = i }));
    }
    WAIT_AT_LEAST(&first_polls, PENDING_TASKS, WATCHDOG_MS, "tasks polled once");
    ASSERT_EQ(PENDING_TASKS, weft_runtime_active_tasks(rt));
    for (int i = 0; i < nj; i++)
        ASSERT_EQ(-EAGAIN, weft_join_try(joins[i], NULL));
    check_dropped_once(0, 0);

    ASSERT_OK(weft_runtime_shutdown(rt));
    check_dropped_once(0, PENDING_TASKS);
    ASSERT_EQ(PENDING_TASKS, atomic_load(&dropped_polled));
    ASSERT_EQ(0, weft_runtime_active_tasks(rt));
    for (int i = 0; i < nj; i++)
        check_cancelled_join(joins[i]);
    ASSERT_OK(weft_runtime_shutdown(rt));       /* twice is fine */
    weft_runtime_free(rt);
    for (int i = 0; i < nj; i++) {              /* handles outlive the runtime */
        check_cancelled_join(joins[i]);
        weft_join_drop(joins[i]);
    }
    check_dropped_once(0, PENDING_TASKS);       /* still once */
}

/* Current-thread: half the tasks were polled once (inside block_on) and wait
 * forever; the other half are queued and never polled at all. */
typedef struct spawn_holds {
    weft_async co;
    int from, to, i;
    long yields;
    weft_yield y;
} spawn_holds;

static weft_poll spawn_holds_poll(spawn_holds *s, weft_context *cx, void *out)
{
    WEFT_BEGIN(&s->co);
    for (s->i = s->from; s->i < s->to; s->i++) {
        if (s->i % JOIN_EVERY == 0) {
            if (weft_spawn(weft_runtime_current(), &hold_future, &(hold){ .id = s->i },
                           &joins[s->i / JOIN_EVERY]) != 0)
                joins[s->i / JOIN_EVERY] = NULL;
        } else {
            (void)weft_spawn_detached(weft_runtime_current(), &hold_future,
                                      &(hold){ .id = s->i });
        }
    }
    /* Let them all be polled once (bounded, so a scheduler that never runs
     * them fails the count below instead of hanging). */
    while (atomic_load(&first_polls) < s->to - s->from && s->yields < 1000000) {
        s->yields++;
        WEFT_YIELD(&s->co, &s->y, cx);
    }
    *(long *)out = atomic_load(&first_polls);
    WEFT_END(&s->co);
}

WEFT_DEFINE_FUTURE(spawn_holds, spawn_holds_poll, NULL, long);

TEST(shutdown_cancels_10000_pending_and_queued_tasks_current_thread)
{
    const int half = PENDING_TASKS / 2;
    weft_runtime *rt = new_current();
    long polled = 0;

    reset_counts();
    ASSERT_OK(weft_block_on(rt, &spawn_holds_future,
                            &(spawn_holds){ .from = 0, .to = half }, &polled));
    ASSERT_EQ(half, polled);
    for (int i = 0; i < half; i += JOIN_EVERY)
        ASSERT(joins[i / JOIN_EVERY] != NULL);
    /* queued, never polled: nobody runs the runtime after this */
    for (int i = half; i < PENDING_TASKS; i++) {
        if (i % JOIN_EVERY == 0)
            ASSERT_OK(weft_spawn(rt, &hold_future, &(hold){ .id = i }, &joins[i / JOIN_EVERY]));
        else
            ASSERT_OK(weft_spawn_detached(rt, &hold_future, &(hold){ .id = i }));
    }
    ASSERT_EQ(half, atomic_load(&first_polls));
    check_dropped_once(0, 0);

    ASSERT_OK(weft_runtime_shutdown(rt));
    check_dropped_once(0, PENDING_TASKS);
    ASSERT_EQ(half, atomic_load(&dropped_polled));
    ASSERT_EQ(PENDING_TASKS - half, atomic_load(&dropped_unpolled));
    ASSERT_EQ(half, atomic_load(&first_polls));   /* shutdown polls nothing */
    for (int i = 0; i < PENDING_TASKS; i += JOIN_EVERY)
        check_cancelled_join(joins[i / JOIN_EVERY]);
    ASSERT_OK(weft_runtime_shutdown(rt));
    weft_runtime_free(rt);
    for (int i = 0; i < PENDING_TASKS; i += JOIN_EVERY)
        weft_join_drop(joins[i / JOIN_EVERY]);
    check_dropped_once(0, PENDING_TASKS);
}

/* ---- weft_runtime_free() without shutdown cancels too --------------------------------- */
static void free_cancels(weft_runtime *rt, bool poll_first)
{
    const int n = 1000;
    int nj = 0;

    reset_counts();
    for (int i = 0; i < n; i++) {
        if (i % JOIN_EVERY == 0)
            ASSERT_OK(weft_spawn(rt, &hold_future, &(hold){ .id = i }, &joins[nj++]));
        else
            ASSERT_OK(weft_spawn_detached(rt, &hold_future, &(hold){ .id = i }));
    }
    if (poll_first)
        WAIT_AT_LEAST(&first_polls, n, WATCHDOG_MS, "tasks polled once");
    weft_runtime_free(rt);
    check_dropped_once(0, n);
    for (int i = 0; i < nj; i++) {
        check_cancelled_join(joins[i]);
        weft_join_drop(joins[i]);
    }
}

TEST(free_without_shutdown_cancels_multi_thread)
{
    free_cancels(new_multi(2), true);
}

TEST(free_without_shutdown_cancels_current_thread)
{
    free_cancels(new_current(), false);
}

/* ---- After shutdown ----------------------------------------------------------------- */
typedef struct answer {
    int v;
} answer;

static weft_poll answer_poll(answer *a, weft_context *cx, void *out)
{
    (void)cx;
    *(int *)out = a->v;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(answer, answer_poll, NULL, int);

static void spawn_after_shutdown(weft_runtime *rt)
{
    weft_join *j = NULL;
    int out = 0;

    reset_counts();
    ASSERT_OK(weft_block_on(rt, &answer_future, &(answer){ 7 }, &out));  /* works before */
    ASSERT_EQ(7, out);
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(-ESHUTDOWN, weft_spawn(rt, &hold_future, &(hold){ .id = 1 }, &j));
    ASSERT_EQ(-ESHUTDOWN, weft_spawn_detached(rt, &hold_future, &(hold){ .id = 2 }));
    out = 0;
    ASSERT_EQ(-ESHUTDOWN, weft_block_on(rt, &answer_future, &(answer){ 8 }, &out));
    ASSERT_EQ(0, out);
    /* refused futures were never moved into weft: not dropped */
    ASSERT_EQ(0, atomic_load(&drops[1]));
    ASSERT_EQ(0, atomic_load(&drops[2]));
    ASSERT_OK(weft_runtime_shutdown(rt));       /* twice is fine */
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(-ESHUTDOWN, weft_spawn_detached(rt, &hold_future, &(hold){ .id = 3 }));
    ASSERT_EQ(0, atomic_load(&drops[3]));
    weft_runtime_free(rt);
}

TEST(spawn_after_shutdown_returns_eshutdown_multi_thread)
{
    spawn_after_shutdown(new_multi(2));
}

TEST(spawn_after_shutdown_returns_eshutdown_current_thread)
{
    spawn_after_shutdown(new_current());
}

TEST(shutdown_of_idle_runtime_twice_and_null)
{
    weft_runtime *rt = new_multi(4);

    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_OK(weft_runtime_shutdown(rt));
    weft_runtime_free(rt);
    rt = new_current();
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_OK(weft_runtime_shutdown(rt));
    weft_runtime_free(rt);
    ASSERT_EQ(-EINVAL, weft_runtime_shutdown(NULL));
    weft_runtime_free(NULL);
}

/* ---- Spawning from other threads while shutdown runs ------------------------------------
 * Each spawn either succeeds (then its future is dropped exactly once, by
 * completion or by cancellation) or returns -ESHUTDOWN (then never). */
static atomic_long accepted, refused, spawn_other_errors;
static atomic_int racing_id;
static atomic_int racing_limit;
static atomic_int spawn_result[MAX_HOLD];     /* 1: not returned yet */

static void *spawn_until_refused(void *p)
{
    weft_runtime *rt = p;

    for (;;) {
        int id = atomic_fetch_add(&racing_id, 1);
        int err;

        if (id >= atomic_load(&racing_limit))
            return NULL;
        err = weft_spawn_detached(rt, &hold_future, &(hold){ .id = id });
        atomic_store(&spawn_result[id], err);
        if (err == -ESHUTDOWN) {
            atomic_fetch_add(&refused, 1);
            atomic_store(&drops[id], -1000);    /* must stay untouched */
            return NULL;
        }
        if (err != 0) {
            atomic_fetch_add(&spawn_other_errors, 1);
            return NULL;
        }
        atomic_fetch_add(&accepted, 1);
    }
}

/* Three threads spawn up to `limit` tasks; shutdown starts once `when` of
 * them were accepted (with `when` >= `limit`: after they are all spawned
 * and the threads have finished). */
static void spawns_then_shutdown(weft_runtime *rt, int limit, int when)
{
    pthread_t th[3];
    int ids;

    ASSERT(limit <= MAX_HOLD);
    reset_counts();
    atomic_store(&accepted, 0);
    atomic_store(&refused, 0);
    atomic_store(&spawn_other_errors, 0);
    atomic_store(&racing_id, 0);
    atomic_store(&racing_limit, limit);
    for (int i = 0; i < limit; i++)
        atomic_store(&spawn_result[i], 1);
    for (int i = 0; i < 3; i++)
        START_THREAD(&th[i], spawn_until_refused, rt);
    if (when >= limit) {
        for (int i = 0; i < 3; i++)
            JOIN_THREAD(th[i]);
        ASSERT_EQ(limit, atomic_load(&accepted));
    } else {
        WAIT_AT_LEAST(&accepted, when, WATCHDOG_MS, "spawns accepted");
    }
    ASSERT_OK(weft_runtime_shutdown(rt));
    if (when < limit)
        for (int i = 0; i < 3; i++)
            JOIN_THREAD(th[i]);
    ASSERT_EQ(0, atomic_load(&spawn_other_errors));
    ids = atomic_load(&racing_id);
    if (ids > limit)
        ids = limit;
    for (int i = 0; i < ids; i++) {
        int d = atomic_load(&drops[i]);

        if (d != 1 && d != -1000)
            harness_fail(__FILE__, __LINE__, "task %d: dropped %d times (spawn returned %d; "
                         "%ld accepted, %ld refused, %ld dropped after a poll, %ld before, "
                         "%ld polled)", i, d, atomic_load(&spawn_result[i]),
                         atomic_load(&accepted), atomic_load(&refused),
                         atomic_load(&dropped_polled), atomic_load(&dropped_unpolled),
                         atomic_load(&first_polls));
    }
    ASSERT_EQ(atomic_load(&accepted),
              atomic_load(&dropped_polled) + atomic_load(&dropped_unpolled));
    weft_runtime_free(rt);
}

static void spawn_racing_shutdown(bool current)
{
    long rounds = (long)harness_scale(40);

    for (long r = 0; r < rounds; r++)
        spawns_then_shutdown(current ? new_current() : new_multi(2), 4000,
                             (int)(50 + r * 97 % 3000));
}

TEST(spawn_racing_shutdown_multi_thread)
{
    spawn_racing_shutdown(false);
}

TEST(spawn_racing_shutdown_current_thread)
{
    spawn_racing_shutdown(true);
}

/* Before any shutdown: every task spawned from three threads at once gets
 * its first poll (a task lost from the run queues never would). */
TEST(pending_tasks_spawned_from_three_threads_are_all_polled)
{
    long rounds = (long)harness_scale(20);

    for (long r = 0; r < rounds; r++) {
        weft_runtime *rt = new_multi(2);
        pthread_t th[3];

        reset_counts();
        atomic_store(&accepted, 0);
        atomic_store(&spawn_other_errors, 0);
        atomic_store(&racing_id, 0);
        atomic_store(&racing_limit, 4000);
        for (int i = 0; i < 3; i++)
            START_THREAD(&th[i], spawn_until_refused, rt);
        for (int i = 0; i < 3; i++)
            JOIN_THREAD(th[i]);
        ASSERT_EQ(4000, atomic_load(&accepted));
        WAIT_AT_LEAST(&first_polls, 4000, 5000, "first polls of 4000 spawned tasks");
        ASSERT_EQ(4000, weft_runtime_active_tasks(rt));
        ASSERT_OK(weft_runtime_shutdown(rt));
        check_dropped_once(0, 4000);
        weft_runtime_free(rt);
    }
}

/* The same without the race: every spawn has returned before shutdown. */
TEST(shutdown_after_spawns_from_three_threads_drops_all)
{
    long rounds = (long)harness_scale(20);

    for (long r = 0; r < rounds; r++) {
        spawns_then_shutdown(new_multi(2), 4000, 4000);
        spawns_then_shutdown(new_current(), 4000, 4000);
    }
}

/* ---- A waker that outlives the runtime --------------------------------------------------
 * The task hands a clone of its waker to a foreign thread and waits. The
 * runtime is freed (no explicit shutdown); only then does the foreign thread
 * use the waker. The cell, and whatever runtime memory it refers to, must
 * stay valid until that last reference goes, and then be released. */
enum waker_use { USE_WAKE, USE_WAKE_BY_REF_THEN_DROP, USE_CLONE_WAKE_BOTH, USE_DROP, USE_COUNT };

static weft_waker handed;                 /* published by handed_flag */
static atomic_int handed_flag;
static atomic_int go;

typedef struct hand_over {
    bool done;
} hand_over;

static weft_poll hand_over_poll(hand_over *h, weft_context *cx, void *out)
{
    (void)out;
    if (!h->done) {
        h->done = true;
        handed = weft_waker_clone(weft_context_waker(cx));
        atomic_store_explicit(&handed_flag, 1, memory_order_release);
    }
    return WEFT_PENDING;      /* forever: every later poll is spurious */
}

static void hand_over_drop(hand_over *h)
{
    (void)h;
    atomic_fetch_add(&drops[0], 1);
}

WEFT_DEFINE_FUTURE_VOID(hand_over, hand_over_poll, hand_over_drop);

static void *use_waker_later(void *p)
{
    enum waker_use use = (enum waker_use)(intptr_t)p;
    weft_waker w, w2;

    WAIT_AT_LEAST(&handed_flag, 1, WATCHDOG_MS, "waker handed over");
    WAIT_AT_LEAST(&go, 1, WATCHDOG_MS, "go");
    w = handed;
    switch (use) {
    case USE_WAKE:
        weft_waker_wake(&w);
        weft_waker_wake(&w);              /* empty now: a no-op */
        break;
    case USE_WAKE_BY_REF_THEN_DROP:
        weft_waker_wake_by_ref(&w);
        weft_waker_wake_by_ref(&w);
        weft_waker_drop(&w);
        break;
    case USE_CLONE_WAKE_BOTH:
        w2 = weft_waker_clone(&w);
        weft_waker_wake(&w2);
        weft_waker_wake_by_ref(&w);
        weft_waker_wake(&w);
        break;
    default:
        weft_waker_drop(&w);
        break;
    }
    return NULL;
}

/* Current-thread: the root gets the hand-over task polled, then returns. */
typedef struct poll_hand_over {
    weft_async co;
    long yields;
    weft_yield y;
} poll_hand_over;

static weft_poll poll_hand_over_poll(poll_hand_over *p, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&p->co);
    (void)weft_spawn_detached(weft_runtime_current(), &hand_over_future, &(hand_over){ 0 });
    while (!atomic_load(&handed_flag) && p->yields++ < 1000000)
        WEFT_YIELD(&p->co, &p->y, cx);
    WEFT_END(&p->co);
}

WEFT_DEFINE_FUTURE_VOID(poll_hand_over, poll_hand_over_poll, NULL);

static void waker_after_free(bool current)
{
    for (int use = 0; use < USE_COUNT; use++) {
        weft_runtime *rt = current ? new_current() : new_multi(2);
        pthread_t th;

        atomic_store(&drops[0], 0);
        atomic_store(&handed_flag, 0);
        atomic_store(&go, 0);
        START_THREAD(&th, use_waker_later, (void *)(intptr_t)use);
        if (current)
            ASSERT_OK(weft_block_on(rt, &poll_hand_over_future, &(poll_hand_over){ 0 }, NULL));
        else
            ASSERT_OK(weft_spawn_detached(rt, &hand_over_future, &(hand_over){ 0 }));
        WAIT_AT_LEAST(&handed_flag, 1, WATCHDOG_MS, "task polled");
        weft_runtime_free(rt);                  /* no shutdown first */
        ASSERT_EQ(1, atomic_load(&drops[0]));   /* cancelled by free */
        ASSERT(harness_live() > 0);             /* the waker keeps its cell */
        atomic_store(&go, 1);
        JOIN_THREAD(th);
        ASSERT_EQ(1, atomic_load(&drops[0]));
        ASSERT_EQ(0, harness_live());           /* the last reference freed all */
    }
}

TEST(waker_used_after_free_multi_thread)
{
    waker_after_free(false);
}

TEST(waker_used_after_free_current_thread)
{
    waker_after_free(true);
}

/* The same, racing: the foreign thread wakes in a loop while the runtime is
 * being freed (sanitizers turn a too-early free into a report). */
static atomic_int stop_waking;
static atomic_long wakes_done;

static void *wake_in_a_loop(void *p)
{
    weft_waker w;

    (void)p;
    WAIT_AT_LEAST(&handed_flag, 1, WATCHDOG_MS, "waker handed over");
    w = handed;
    while (!atomic_load(&stop_waking)) {
        weft_waker_wake_by_ref(&w);
        atomic_fetch_add(&wakes_done, 1);
    }
    weft_waker_wake(&w);
    return NULL;
}

static void wake_racing_free(bool current)
{
    long rounds = (long)harness_scale(300);

    for (long r = 0; r < rounds; r++) {
        weft_runtime *rt = current ? new_current() : new_multi(2);
        pthread_t th;

        atomic_store(&drops[0], 0);
        atomic_store(&handed_flag, 0);
        atomic_store(&stop_waking, 0);
        atomic_store(&wakes_done, 0);
        START_THREAD(&th, wake_in_a_loop, NULL);
        if (current)
            ASSERT_OK(weft_block_on(rt, &poll_hand_over_future, &(poll_hand_over){ 0 }, NULL));
        else
            ASSERT_OK(weft_spawn_detached(rt, &hand_over_future, &(hand_over){ 0 }));
        WAIT_AT_LEAST(&handed_flag, 1, WATCHDOG_MS, "task polled");
        WAIT_AT_LEAST(&wakes_done, 1 + r % 50, WATCHDOG_MS, "wakes");
        weft_runtime_free(rt);
        atomic_store(&stop_waking, 1);
        JOIN_THREAD(th);
        ASSERT_EQ(1, atomic_load(&drops[0]));
        ASSERT_EQ(0, harness_live());
    }
}

TEST(wakes_racing_free_multi_thread)
{
    wake_racing_free(false);
}

TEST(wakes_racing_free_current_thread)
{
    wake_racing_free(true);
}

/* ---- Shutdown from inside a task ------------------------------------------------------ */
struct inside_result {
    int own;                  /* weft_runtime_shutdown(current runtime) */
    int other;                /* weft_runtime_shutdown(another runtime) */
};

static _Atomic(weft_runtime *) other_rt;

typedef struct shut_inside {
    int unused;
} shut_inside;

static weft_poll shut_inside_poll(shut_inside *s, weft_context *cx, void *out)
{
    struct inside_result *r = out;
    weft_runtime *other = atomic_load(&other_rt);

    (void)s, (void)cx;
    r->own = weft_runtime_shutdown(weft_runtime_current());
    r->other = other ? weft_runtime_shutdown(other) : 0;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(shut_inside, shut_inside_poll, NULL, struct inside_result);

static void shutdown_inside(weft_runtime *rt)
{
    struct inside_result r = { 1, 1 };
    weft_runtime *other = new_multi(1);
    int out = 0;

    reset_counts();
    atomic_store(&other_rt, other);
    ASSERT_OK(weft_block_on(rt, &shut_inside_future, &(shut_inside){ 0 }, &r));
    ASSERT_EQ(-EINVAL, r.own);
    ASSERT_EQ(0, r.other);                      /* another runtime's is fine */
    /* the refused shutdown changed nothing: the runtime still works */
    ASSERT_OK(weft_block_on(rt, &answer_future, &(answer){ 9 }, &out));
    ASSERT_EQ(9, out);
    ASSERT_EQ(-ESHUTDOWN, weft_spawn_detached(other, &answer_future, &(answer){ 1 }));
    weft_runtime_free(other);
    weft_runtime_free(rt);
}

TEST(shutdown_from_inside_task_returns_einval_multi_thread)
{
    shutdown_inside(new_multi(2));
}

TEST(shutdown_from_inside_task_returns_einval_current_thread)
{
    shutdown_inside(new_current());
}

/* ---- Threads blocked on the runtime when it shuts down --------------------------------- */
struct blocked {
    weft_runtime *rt;
    weft_join *j;
    atomic_int started;
    int result;
    int out;
};

static void *join_wait_thread(void *p)
{
    struct blocked *b = p;

    atomic_store(&b->started, 1);
    b->result = weft_join_wait(b->j, &b->out);
    return NULL;
}

static void *drive_thread(void *p)
{
    struct blocked *b = p;

    b->result = weft_runtime_run(b->rt);
    return NULL;
}

/* `drive`: a current-thread runtime, driven by a thread inside run() (with
 * no driver, the wait would be -EDEADLK at once: tests/sched/current_join.c)
 * until the shutdown makes it leave with -ESHUTDOWN. */
static void join_wait_cancelled(weft_runtime *rt, bool drive)
{
    struct blocked b = { .rt = rt, .out = 777, .result = 1 };
    struct blocked d = { .rt = rt, .result = 1 };
    pthread_t th, dt;

    reset_counts();
    ASSERT_OK(weft_spawn(rt, &hold_future, &(hold){ .id = 0 }, &b.j));
    if (drive)
        START_THREAD(&dt, drive_thread, &d);
    WAIT_AT_LEAST(&first_polls, 1, WATCHDOG_MS, "task polled");
    START_THREAD(&th, join_wait_thread, &b);
    WAIT_AT_LEAST(&b.started, 1, WATCHDOG_MS, "thread start");
    sleep_ms(20);             /* likely blocked by now; either way the answer
                               * must be -ECANCELED */
    ASSERT_OK(weft_runtime_shutdown(rt));
    JOIN_THREAD(th);
    if (drive) {
        JOIN_THREAD(dt);
        ASSERT_EQ(-ESHUTDOWN, d.result);
    }
    ASSERT_EQ(-ECANCELED, b.result);
    ASSERT_EQ(777, b.out);
    ASSERT_EQ(1, atomic_load(&drops[0]));
    weft_join_drop(b.j);
    weft_runtime_free(rt);
}

TEST(blocked_join_wait_returns_ecanceled_on_shutdown_multi_thread)
{
    join_wait_cancelled(new_multi(2), false);
}

TEST(blocked_join_wait_returns_ecanceled_on_shutdown_current_thread)
{
    join_wait_cancelled(new_current(), true);
}

static void *block_on_thread(void *p)
{
    struct blocked *b = p;

    atomic_store(&b->started, 1);
    b->result = weft_block_on(b->rt, &hold_future, &(hold){ .id = 0 }, &b->out);
    return NULL;
}

/* The root future is pending forever: block_on is blocked (multi-thread) or
 * driving the runtime (current-thread) when another thread shuts it down. */
static void block_on_cancelled(weft_runtime *rt)
{
    struct blocked b = { .rt = rt, .out = 777, .result = 1 };
    pthread_t th;

    reset_counts();
    START_THREAD(&th, block_on_thread, &b);
    WAIT_AT_LEAST(&first_polls, 1, WATCHDOG_MS, "root future polled");
    ASSERT_OK(weft_runtime_shutdown(rt));
    JOIN_THREAD(th);
    ASSERT_EQ(-ECANCELED, b.result);
    ASSERT_EQ(777, b.out);
    ASSERT_EQ(1, atomic_load(&drops[0]));
    weft_runtime_free(rt);
}

TEST(blocked_block_on_returns_ecanceled_on_shutdown_multi_thread)
{
    block_on_cancelled(new_multi(2));
}

TEST(blocked_block_on_returns_ecanceled_on_shutdown_current_thread)
{
    block_on_cancelled(new_current());
}

/* A current-thread run() in progress on another thread stops with
 * -ESHUTDOWN, and its unfinished task is cancelled. */
static void *run_thread(void *p)
{
    struct blocked *b = p;

    atomic_store(&b->started, 1);
    b->result = weft_runtime_run(b->rt);
    return NULL;
}

TEST(blocked_run_returns_eshutdown_on_shutdown_current_thread)
{
    weft_runtime *rt = new_current();
    struct blocked b = { .rt = rt, .result = 1 };
    pthread_t th;

    reset_counts();
    ASSERT_OK(weft_spawn_detached(rt, &hold_future, &(hold){ .id = 0 }));
    START_THREAD(&th, run_thread, &b);
    WAIT_AT_LEAST(&first_polls, 1, WATCHDOG_MS, "task polled");
    ASSERT_OK(weft_runtime_shutdown(rt));
    JOIN_THREAD(th);
    ASSERT_EQ(-ESHUTDOWN, b.result);
    ASSERT_EQ(1, atomic_load(&drops[0]));
    weft_runtime_free(rt);
}

/* Two threads shutting the same runtime down at once: the header calls
 * shutdown idempotent and callable from any thread but the runtime's own
 * workers. Both must return 0 and every task be cancelled once. */
static void *shutdown_thread(void *p)
{
    struct blocked *b = p;

    atomic_store(&b->started, 1);
    while (atomic_load(&go) == 0)
        ;                     /* both start together */
    b->result = weft_runtime_shutdown(b->rt);
    return NULL;
}

TEST(concurrent_shutdown_from_two_threads)
{
    long rounds = (long)harness_scale(200);

    for (long r = 0; r < rounds; r++) {
        weft_runtime *rt = r % 2 ? new_current() : new_multi(4);
        struct blocked b[2] = { { .rt = rt, .result = 1 }, { .rt = rt, .result = 1 } };
        pthread_t th[2];

        reset_counts();
        atomic_store(&go, 0);
        for (int i = 0; i < 100; i++)
            ASSERT_OK(weft_spawn_detached(rt, &hold_future, &(hold){ .id = i }));
        for (int i = 0; i < 2; i++)
            START_THREAD(&th[i], shutdown_thread, &b[i]);
        WAIT_AT_LEAST(&b[0].started, 1, WATCHDOG_MS, "thread start");
        WAIT_AT_LEAST(&b[1].started, 1, WATCHDOG_MS, "thread start");
        atomic_store(&go, 1);
        for (int i = 0; i < 2; i++)
            JOIN_THREAD_WITHIN(th[i], 10000, "weft_runtime_shutdown()");
        ASSERT_EQ(0, b[0].result);
        ASSERT_EQ(0, b[1].result);
        check_dropped_once(0, 100);
        weft_runtime_free(rt);
    }
}

/* ---- A task still running when shutdown starts ------------------------------------------
 * Shutdown waits for the poll in progress. Here that poll waits until the
 * runtime refuses spawns (shutdown has begun), then wakes 600 pending tasks:
 * on a worker, those wakes go to its own LIFO slot and local queue, which
 * fills up and overflows while the runtime is closed. Every task must still
 * be cancelled exactly once, with nothing freed twice or leaked. */
#define SLEEPERS 600

static weft_waker sleeper_wakers[SLEEPERS];   /* published by first_polls */
static atomic_int trigger_running;
static atomic_int shutdown_coming;
static atomic_int trigger_result;

typedef struct probe {
    int unused;
} probe;

static weft_poll probe_poll(probe *p, weft_context *cx, void *out)
{
    (void)p, (void)cx, (void)out;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(probe, probe_poll, NULL);

typedef struct sleeper {
    int id;
    bool polled;
} sleeper;

static weft_poll sleeper_poll(sleeper *s, weft_context *cx, void *out)
{
    (void)out;
    if (!s->polled) {
        s->polled = true;
        sleeper_wakers[s->id] = weft_waker_clone(weft_context_waker(cx));
        atomic_fetch_add(&first_polls, 1);
    }
    return WEFT_PENDING;
}

static void sleeper_drop(sleeper *s)
{
    atomic_fetch_add(&drops[s->id], 1);
}

WEFT_DEFINE_FUTURE_VOID(sleeper, sleeper_poll, sleeper_drop);

typedef struct trigger {
    int unused;
} trigger;

static weft_poll trigger_poll(trigger *t, weft_context *cx, void *out)
{
    uint64_t end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);
    int err;

    (void)t, (void)cx, (void)out;
    atomic_store(&trigger_running, 1);
    while (!atomic_load(&shutdown_coming))
        sched_yield();
    /* shutdown has been called, or is about to be: wait until it closes */
    while ((err = weft_spawn_detached(weft_runtime_current(), &probe_future, &(probe){ 0 })) == 0) {
        if (harness_now_ns() > end) {
            atomic_store(&trigger_result, 1);
            return WEFT_READY;
        }
        usleep(1000);
    }
    atomic_store(&trigger_result, err);
    for (int i = 0; i < SLEEPERS; i++)
        weft_waker_wake_by_ref(&sleeper_wakers[i]);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(trigger, trigger_poll, NULL);

TEST(wakes_on_a_worker_during_shutdown_cancel_every_task_once)
{
    long rounds = (long)harness_scale(20);

    for (long r = 0; r < rounds; r++) {
        weft_runtime *rt = new_multi(r % 2 ? 2 : 1);

        reset_counts();
        atomic_store(&trigger_running, 0);
        atomic_store(&shutdown_coming, 0);
        atomic_store(&trigger_result, 0);
        for (int i = 0; i < SLEEPERS; i++)
            ASSERT_OK(weft_spawn_detached(rt, &sleeper_future, &(sleeper){ .id = i }));
        WAIT_AT_LEAST(&first_polls, SLEEPERS, WATCHDOG_MS, "sleepers polled once");
        ASSERT_OK(weft_spawn_detached(rt, &trigger_future, &(trigger){ 0 }));
        WAIT_AT_LEAST(&trigger_running, 1, WATCHDOG_MS, "trigger task running");
        atomic_store(&shutdown_coming, 1);
        ASSERT_OK(weft_runtime_shutdown(rt));
        ASSERT_EQ(-ESHUTDOWN, atomic_load(&trigger_result));
        check_dropped_once(0, SLEEPERS);
        for (int i = 0; i < SLEEPERS; i++)
            weft_waker_drop(&sleeper_wakers[i]);
        weft_runtime_free(rt);
        ASSERT_EQ(0, harness_live());
    }
}
