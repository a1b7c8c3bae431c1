/* SPDX-License-Identifier: MIT */
/* Spawning and running to completion: exact completion counts for a million
 * tasks spawned from outside and from inside tasks, on both flavours, and
 * weft_runtime_run() returning only once every task (tasks spawned by tasks
 * included) has completed. */
#define _GNU_SOURCE
#include "sched_test.h"

/* ---- Where tasks run ---------------------------------------------------------
 * Every task checks the thread it runs on against what the flavour promises
 * and counts violations; the test asserts there were none. */
enum where { ANYWHERE, ON_CALLER, ON_WORKERS };

static atomic_long completed;
static atomic_long misplaced;            /* ran on the wrong thread */
static atomic_long wrong_runtime;        /* weft_runtime_current() != expected */
static atomic_long spawn_errors;
static _Atomic(weft_runtime *) expected_rt;
static atomic_int where;
static atomic_int nworkers;
static pthread_t caller;                 /* written before any task exists */

static void expect(weft_runtime *rt, enum where w, int workers)
{
    atomic_store(&completed, 0);
    atomic_store(&misplaced, 0);
    atomic_store(&wrong_runtime, 0);
    atomic_store(&spawn_errors, 0);
    atomic_store(&expected_rt, rt);
    atomic_store(&nworkers, workers);
    caller = pthread_self();
    atomic_store(&where, w);
}

static void check_context(void)
{
    int idx = weft_worker_index();

    switch (atomic_load_explicit(&where, memory_order_relaxed)) {
    case ON_CALLER:
        if (!pthread_equal(pthread_self(), caller) || idx != 0)
            atomic_fetch_add(&misplaced, 1);
        break;
    case ON_WORKERS:
        if (pthread_equal(pthread_self(), caller) || idx < 0 ||
            idx >= atomic_load_explicit(&nworkers, memory_order_relaxed))
            atomic_fetch_add(&misplaced, 1);
        break;
    default:
        break;
    }
    if (weft_runtime_current() != atomic_load_explicit(&expected_rt, memory_order_relaxed))
        atomic_fetch_add(&wrong_runtime, 1);
}

static void check_no_violations(void)
{
    ASSERT_EQ(0, atomic_load(&misplaced));
    ASSERT_EQ(0, atomic_load(&wrong_runtime));
    ASSERT_EQ(0, atomic_load(&spawn_errors));
}

/* ---- bump: completes at once -------------------------------------------------- */
typedef struct bump {
    int unused;
} bump;

static weft_poll bump_poll(bump *b, weft_context *cx, void *out)
{
    (void)b, (void)cx, (void)out;
    check_context();
    atomic_fetch_add_explicit(&completed, 1, memory_order_relaxed);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(bump, bump_poll, NULL);

/* ---- spawner: spawns `n` bumps through weft_runtime_current(), in chunks,
 * yielding between chunks so that spawning and running interleave. */
typedef struct spawner {
    weft_async co;
    long n, i;
    weft_yield y;
} spawner;

#define CHUNK 1024

static weft_poll spawner_poll(spawner *s, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&s->co);
    while (s->i < s->n) {
        check_context();
        for (long k = 0; k < CHUNK && s->i < s->n; k++, s->i++)
            if (weft_spawn_detached(weft_runtime_current(), &bump_future, &(bump){ 0 }) != 0)
                atomic_fetch_add(&spawn_errors, 1);
        WEFT_YIELD(&s->co, &s->y, cx);
    }
    WEFT_END(&s->co);
}

WEFT_DEFINE_FUTURE_VOID(spawner, spawner_poll, NULL);

/* ---- node: a binary tree of tasks; each spawns its children, then yields
 * twice before it counts itself, so a run() that returned early would find
 * the count short. */
typedef struct node {
    weft_async co;
    int depth;
    weft_yield y;
} node;

extern const weft_future_type node_future;   /* defined below; spawned by itself */

static weft_poll node_poll(node *n, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&n->co);
    check_context();
    if (n->depth > 0) {
        for (int c = 0; c < 2; c++)
            if (weft_spawn_detached(weft_runtime_current(), &node_future,
                                    &(node){ .depth = n->depth - 1 }) != 0)
                atomic_fetch_add(&spawn_errors, 1);
    }
    WEFT_YIELD(&n->co, &n->y, cx);
    WEFT_YIELD(&n->co, &n->y, cx);
    check_context();
    atomic_fetch_add_explicit(&completed, 1, memory_order_relaxed);
    WEFT_END(&n->co);
}

WEFT_DEFINE_FUTURE_VOID(node, node_poll, NULL);

/* The deepest tree with at most `max_nodes` nodes: 2^(depth+1) - 1 of them. */
static int tree_depth(size_t max_nodes)
{
    int d = 0;

    while (((size_t)1 << (d + 2)) - 1 <= max_nodes)
        d++;
    return d;
}

static long tree_nodes(int depth)
{
    return (1L << (depth + 1)) - 1;
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

/* ---- Multi-thread ------------------------------------------------------------- */
TEST(million_spawns_from_outside_on_two_workers)
{
    long n = (long)harness_scale(1000000);
    weft_runtime *rt = new_multi(2);

    expect(rt, ON_WORKERS, 2);
    for (long i = 0; i < n; i++)
        ASSERT_OK(weft_spawn_detached(rt, &bump_future, &(bump){ 0 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(n, atomic_load(&completed));    /* all of them, when run returns */
    ASSERT_EQ(0, weft_runtime_active_tasks(rt));
    check_no_violations();
    weft_runtime_free(rt);
    ASSERT_EQ(n, atomic_load(&completed));    /* and none ran twice */
}

TEST(million_spawns_from_root_task_on_two_workers)
{
    long n = (long)harness_scale(1000000);
    weft_runtime *rt = new_multi(2);

    expect(rt, ON_WORKERS, 2);
    ASSERT_OK(weft_spawn_detached(rt, &spawner_future, &(spawner){ .n = n }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(n, atomic_load(&completed));
    ASSERT_EQ(0, weft_runtime_active_tasks(rt));
    check_no_violations();
    weft_runtime_free(rt);
    ASSERT_EQ(n, atomic_load(&completed));
}

TEST(run_waits_for_tasks_spawned_by_tasks_multi_thread)
{
    int depth = tree_depth(harness_scale(200000));
    weft_runtime *rt = new_multi(2);

    expect(rt, ON_WORKERS, 2);
    ASSERT_OK(weft_spawn_detached(rt, &node_future, &(node){ .depth = depth }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(tree_nodes(depth), atomic_load(&completed));
    check_no_violations();
    /* The runtime is reusable: a second batch, a second run. */
    expect(rt, ON_WORKERS, 2);
    ASSERT_OK(weft_spawn_detached(rt, &node_future, &(node){ .depth = depth }));
    ASSERT_OK(weft_spawn_detached(rt, &spawner_future, &(spawner){ .n = 5000 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(tree_nodes(depth) + 5000, atomic_load(&completed));
    check_no_violations();
    weft_runtime_free(rt);
}

/* Several threads spawning at once (the inject queue under contention). */
struct spawn_thread_arg {
    weft_runtime *rt;
    long n;
};

static void *spawn_thread(void *p)
{
    struct spawn_thread_arg *a = p;

    for (long i = 0; i < a->n; i++)
        if (weft_spawn_detached(a->rt, &bump_future, &(bump){ 0 }) != 0)
            atomic_fetch_add(&spawn_errors, 1);
    return NULL;
}

TEST(spawns_from_four_threads_at_once)
{
    long per = (long)harness_scale(250000);
    weft_runtime *rt = new_multi(2);
    pthread_t th[4];
    struct spawn_thread_arg a = { rt, per };

    expect(rt, ON_WORKERS, 2);
    for (int i = 0; i < 4; i++)
        START_THREAD(&th[i], spawn_thread, &a);
    for (int i = 0; i < 4; i++)
        JOIN_THREAD(th[i]);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(4 * per, atomic_load(&completed));
    check_no_violations();
    weft_runtime_free(rt);
}

/* ---- Tasks woken later by other threads: run() must wait for them too. ---- */
#define LATE_TASKS 64

static weft_waker late_wakers[LATE_TASKS];   /* published by late_handed */
static atomic_long late_handed;

typedef struct late {
    int id;
    bool waiting;
} late;

static weft_poll late_poll(late *l, weft_context *cx, void *out)
{
    (void)out;
    check_context();
    if (!l->waiting) {
        l->waiting = true;
        late_wakers[l->id] = weft_waker_clone(weft_context_waker(cx));
        atomic_fetch_add(&late_handed, 1);   /* seq_cst: publishes the waker */
        return WEFT_PENDING;
    }
    atomic_fetch_add(&completed, 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(late, late_poll, NULL);

static void *late_waker_thread(void *p)
{
    (void)p;
    WAIT_AT_LEAST(&late_handed, LATE_TASKS, WATCHDOG_MS, "tasks handing out wakers");
    sleep_ms(20);             /* not needed for the verdict: makes an early
                               * return of run() show up as a short count */
    for (int i = 0; i < LATE_TASKS; i++)
        weft_waker_wake(&late_wakers[i]);
    return NULL;
}

static void run_waits_for_late_wakes(weft_runtime *rt, enum where w, int workers)
{
    pthread_t th;

    expect(rt, w, workers);
    atomic_store(&late_handed, 0);
    for (int i = 0; i < LATE_TASKS; i++)
        ASSERT_OK(weft_spawn_detached(rt, &late_future, &(late){ .id = i }));
    START_THREAD(&th, late_waker_thread, NULL);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(LATE_TASKS, atomic_load(&completed));
    JOIN_THREAD(th);
    check_no_violations();
    weft_runtime_free(rt);
}

TEST(run_waits_for_tasks_woken_by_other_threads_multi_thread)
{
    run_waits_for_late_wakes(new_multi(2), ON_WORKERS, 2);
}

TEST(run_waits_for_tasks_woken_by_other_threads_current_thread)
{
    run_waits_for_late_wakes(new_current(), ON_CALLER, 1);
}

TEST(run_with_no_tasks_returns_at_once)
{
    weft_runtime *rt = new_multi(2);

    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_runtime_run(rt));
    weft_runtime_free(rt);
    rt = new_current();
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_runtime_run(rt));
    weft_runtime_free(rt);
}

/* ---- Current-thread: everything runs on the thread inside run() ----------------- */
TEST(million_spawns_from_outside_current_thread)
{
    long n = (long)harness_scale(1000000);
    weft_runtime *rt = new_current();

    expect(rt, ON_CALLER, 1);
    for (long i = 0; i < n; i++)
        ASSERT_OK(weft_spawn_detached(rt, &bump_future, &(bump){ 0 }));
    ASSERT_EQ(0, atomic_load(&completed));    /* nothing runs outside run() */
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(n, atomic_load(&completed));
    ASSERT_EQ(0, weft_runtime_active_tasks(rt));
    check_no_violations();
    weft_runtime_free(rt);
}

TEST(million_spawns_from_root_task_current_thread)
{
    long n = (long)harness_scale(1000000);
    weft_runtime *rt = new_current();

    expect(rt, ON_CALLER, 1);
    ASSERT_OK(weft_spawn_detached(rt, &spawner_future, &(spawner){ .n = n }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(n, atomic_load(&completed));
    check_no_violations();
    weft_runtime_free(rt);
}

TEST(run_waits_for_tasks_spawned_by_tasks_current_thread)
{
    int depth = tree_depth(harness_scale(200000));
    weft_runtime *rt = new_current();

    expect(rt, ON_CALLER, 1);
    ASSERT_OK(weft_spawn_detached(rt, &node_future, &(node){ .depth = depth }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(tree_nodes(depth), atomic_load(&completed));
    check_no_violations();
    expect(rt, ON_CALLER, 1);
    ASSERT_OK(weft_spawn_detached(rt, &node_future, &(node){ .depth = depth }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(tree_nodes(depth), atomic_load(&completed));
    check_no_violations();
    weft_runtime_free(rt);
}

/* The current-thread flavour runs on whichever thread calls run(): a second
 * thread this time. */
static void *run_in_thread(void *p)
{
    weft_runtime *rt = p;

    caller = pthread_self();  /* before any task runs: run() below orders it */
    if (weft_runtime_run(rt) != 0)
        atomic_fetch_add(&spawn_errors, 1);
    return NULL;
}

TEST(current_thread_runs_tasks_on_the_thread_calling_run)
{
    long n = (long)harness_scale(100000);
    weft_runtime *rt = new_current();
    pthread_t th;

    expect(rt, ON_CALLER, 1);
    ASSERT_OK(weft_spawn_detached(rt, &spawner_future, &(spawner){ .n = n }));
    START_THREAD(&th, run_in_thread, rt);
    JOIN_THREAD(th);
    ASSERT_EQ(n, atomic_load(&completed));
    check_no_violations();
    weft_runtime_free(rt);
}

/* ---- Spawning from inside a task with a join handle, awaiting it ---------------- */
typedef struct square {
    int x;
} square;

static weft_poll square_poll(square *s, weft_context *cx, void *out)
{
    (void)cx;
    check_context();
    *(long *)out = (long)s->x * s->x;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(square, square_poll, NULL, long);

#define SQUARES 100

typedef struct summer {
    weft_async co;
    int i;
    int err;
    long got;
    long sum;
    weft_join *j[SQUARES];
} summer;

static weft_poll summer_poll(summer *s, weft_context *cx, void *out)
{
    WEFT_BEGIN(&s->co);
    check_context();
    for (s->i = 0; s->i < SQUARES; s->i++)
        if (weft_spawn(weft_runtime_current(), &square_future, &(square){ s->i },
                       &s->j[s->i]) != 0) {
            atomic_fetch_add(&spawn_errors, 1);
            s->j[s->i] = NULL;
        }
    for (s->i = 0; s->i < SQUARES; s->i++) {
        if (s->j[s->i] == NULL)
            continue;
        WEFT_AWAIT(&s->co, weft_join_poll(s->j[s->i], cx, &s->err, &s->got));
        if (s->err == 0)
            s->sum += s->got;
        weft_join_drop(s->j[s->i]);
        s->j[s->i] = NULL;
    }
    check_context();
    *(long *)out = s->sum;
    WEFT_END(&s->co);
}

WEFT_DEFINE_FUTURE(summer, summer_poll, NULL, long);

static void spawn_with_join_inside_task(weft_runtime *rt, enum where w, int workers)
{
    long want = 0, got = -1;
    weft_join *j;

    for (int i = 0; i < SQUARES; i++)
        want += (long)i * i;
    expect(rt, w, workers);
    ASSERT(weft_runtime_current() == NULL);
    ASSERT_OK(weft_spawn(rt, &summer_future, &(summer){ .sum = 0 }, &j));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT(weft_join_is_complete(j));
    ASSERT_OK(weft_join_try(j, &got));
    ASSERT_EQ(want, got);
    weft_join_drop(j);
    ASSERT(weft_runtime_current() == NULL);
    check_no_violations();
    weft_runtime_free(rt);
}

TEST(spawn_with_join_inside_task_multi_thread)
{
    spawn_with_join_inside_task(new_multi(2), ON_WORKERS, 2);
}

TEST(spawn_with_join_inside_task_current_thread)
{
    spawn_with_join_inside_task(new_current(), ON_CALLER, 1);
}
