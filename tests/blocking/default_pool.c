/* SPDX-License-Identifier: MIT */
/* The runtime's default blocking pool: made on first use (no thread before
 * a job), one pool however many threads ask at once, sized by
 * weft_runtime_options.blocking_threads, reached with NULL from tasks
 * (weft_blocking_spawn, the file futures), refused after shutdown, and a
 * runtime freed with a job in flight (the free does not wait; the queued
 * job is cancelled; the running one finishes later, detached, its handle
 * still valid) or freed from inside one of its jobs. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "../sync/sync_test.h"
#include "weft/blocking.h"

/* ---- helpers -------------------------------------------------------------- */

typedef struct gate {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool open;
    int arrived;
} gate;

#define GATE_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0 }

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->m);
    g->open = true;
    pthread_cond_broadcast(&g->c);
    pthread_mutex_unlock(&g->m);
}

static void gate_wait_arrived(gate *g, int n)
{
    pthread_mutex_lock(&g->m);
    while (g->arrived < n)
        pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
}

static void *gate_job(void *arg)
{
    gate *g = arg;

    pthread_mutex_lock(&g->m);
    g->arrived++;
    pthread_cond_broadcast(&g->c);
    while (!g->open)
        pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
    return (void *)(uintptr_t)0x6a7e;
}

static void *plus_one(void *arg)
{
    return (void *)((uintptr_t)arg + 1);
}

static weft_runtime *runtime_opt(weft_flavor flavor, unsigned blocking_threads)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){
                  .flavor = flavor, .workers = flavor == WEFT_MULTI_THREAD ? 2 : 0,
                  .blocking_threads = blocking_threads }));
    return rt;
}

/* ---- lazily, once ----------------------------------------------------------- */

TEST(default_pool_is_made_on_first_use)
{
    weft_runtime *rt = runtime_opt(WEFT_MULTI_THREAD, 0);
    weft_blocking_pool *p, *q;
    weft_blocking_job *j;
    void *ret;

    ASSERT_EQ(0, harness_count_threads("weft-b"));    /* nothing yet */
    ASSERT_OK(weft_blocking_default(rt, &p));
    ASSERT(p != NULL);
    ASSERT_EQ(0, harness_count_threads("weft-b"));    /* a pool, still no thread */
    ASSERT_EQ(0, weft_blocking_pool_threads(p));
    ASSERT_OK(weft_blocking_default(rt, &q));
    ASSERT(p == q);                                 /* the same one */
    ASSERT_OK(weft_blocking_spawn(p, plus_one, (void *)41, &j));
    ASSERT_OK(weft_blocking_job_wait(j, &ret));
    ASSERT_EQ(42, (uintptr_t)ret);
    weft_blocking_job_drop(j);
    ASSERT_EQ(1, harness_count_threads("weft-b"));
    ASSERT_EQ(1, weft_blocking_pool_threads(p));
    weft_runtime_free(rt);                          /* the idle thread leaves */
    ST_WAIT_UNTIL(harness_count_threads("weft-b") == 0);
}

/* A runtime that never blocks never makes the pool (nothing to free). */
TEST(default_pool_never_made_without_use)
{
    weft_runtime *rt = runtime_opt(WEFT_CURRENT_THREAD, 0);

    ASSERT_OK(weft_runtime_run(rt));
    weft_runtime_free(rt);
    ASSERT_EQ(0, harness_count_threads("weft-b"));
}

typedef struct racer {
    weft_runtime *rt;
    pthread_barrier_t *start;
    weft_blocking_pool *got;
} racer;

static void *race_first_use(void *arg)
{
    racer *r = arg;

    pthread_barrier_wait(r->start);
    ASSERT_OK(weft_blocking_default(r->rt, &r->got));
    return NULL;
}

TEST(default_pool_first_use_from_many_threads_makes_one)
{
    enum { N = 8 };
    size_t rounds = harness_scale(50);

    for (size_t k = 0; k < rounds; k++) {
        weft_runtime *rt = runtime_opt(WEFT_MULTI_THREAD, 0);
        pthread_barrier_t start;
        pthread_t t[N];
        racer r[N];

        pthread_barrier_init(&start, NULL, N);
        for (int i = 0; i < N; i++) {
            r[i] = (racer){ rt, &start, NULL };
            ASSERT_EQ(0, pthread_create(&t[i], NULL, race_first_use, &r[i]));
        }
        for (int i = 0; i < N; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&start);
        for (int i = 1; i < N; i++)
            ASSERT(r[i].got == r[0].got && r[0].got != NULL);
        weft_runtime_free(rt);                      /* leak check: one pool */
    }
}

/* ---- sized by the option ---------------------------------------------------- */

TEST(default_pool_threads_option)
{
    weft_runtime *rt = runtime_opt(WEFT_MULTI_THREAD, 2);
    weft_blocking_pool *p;
    weft_blocking_job *j[4];
    gate g = GATE_INIT;

    ASSERT_OK(weft_blocking_default(rt, &p));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(weft_blocking_spawn(p, gate_job, &g, &j[i]));
    gate_wait_arrived(&g, 2);
    usleep(20000);                                  /* no third one comes */
    ASSERT_EQ(2, g.arrived);
    ASSERT_EQ(2, weft_blocking_pool_threads(p));
    gate_open(&g);
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(weft_blocking_job_wait(j[i], NULL));
        weft_blocking_job_drop(j[i]);
    }
    ASSERT_EQ(4, g.arrived);
    weft_runtime_free(rt);

    ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &(weft_runtime_options){
                           .blocking_threads = WEFT_BLOCKING_MAX_THREADS + 1 }));
    rt = runtime_opt(WEFT_CURRENT_THREAD, WEFT_BLOCKING_MAX_THREADS);
    weft_runtime_free(rt);
}

/* ---- NULL from a task: the runtime's pool ------------------------------------ */

typedef struct user {
    weft_async co;
    char path[64];
    weft_blocking_job *job;
    weft_blocking_join join;
    weft_fs_op op;
    void *ret;
    void *data;
    size_t len;
    ssize_t n;
    int res;
} user;

static weft_poll user_poll(user *u, weft_context *cx, int *out)
{
    WEFT_BEGIN(&u->co);
    /* a user's blocking call, no pool in sight */
    ASSERT_OK(weft_blocking_spawn(NULL, plus_one, (void *)99, &u->job));
    weft_blocking_join_init(&u->join, u->job, &u->ret);
    WEFT_AWAIT(&u->co, weft_blocking_join_poll(&u->join, cx, &u->res));
    ASSERT_OK(u->res);
    ASSERT_EQ(100, (uintptr_t)u->ret);
    weft_blocking_join_drop(&u->join);
    weft_blocking_job_drop(u->job);
    u->job = NULL;
    /* files */
    weft_fs_write_file_init(&u->op, NULL, u->path, "hello", 5);
    WEFT_AWAIT(&u->co, weft_fs_poll(&u->op, cx, &u->n));
    ASSERT_EQ(0, u->n);
    weft_fs_drop(&u->op);
    weft_fs_read_file_init(&u->op, NULL, u->path, &u->data, &u->len);
    WEFT_AWAIT(&u->co, weft_fs_poll(&u->op, cx, &u->n));
    ASSERT_EQ(5, u->n);
    ASSERT_EQ(5, u->len);
    ASSERT_EQ(0, memcmp(u->data, "hello", 5));
    weft_fs_free(u->data);
    weft_fs_drop(&u->op);
    *out = 0;
    WEFT_END(&u->co);
}

static void user_drop(user *u)
{
    weft_blocking_join_drop(&u->join);
    weft_blocking_job_drop(u->job);
    weft_fs_drop(&u->op);
}

WEFT_DEFINE_FUTURE_STATIC(user, user_poll, user_drop, int);

static void null_pool_from_task(weft_flavor flavor)
{
    weft_runtime *rt = runtime_opt(flavor, 1);
    user u = { 0 };
    int out = -1;

    snprintf(u.path, sizeof(u.path), "/tmp/weft-default-pool-%d", (int)getpid());
    ASSERT_OK(weft_block_on(rt, &user_future, &u, &out));
    ASSERT_OK(out);
    ASSERT_EQ(1, harness_count_threads("weft-b"));    /* one pool, one thread */
    unlink(u.path);
    weft_runtime_free(rt);
}

TEST(default_pool_null_from_tasks)
{
    null_pool_from_task(WEFT_MULTI_THREAD);
}

TEST(default_pool_null_from_tasks_current_thread)
{
    null_pool_from_task(WEFT_CURRENT_THREAD);
}

/* ---- misuse and shutdown -------------------------------------------------------- */

TEST(default_pool_errors)
{
    weft_runtime *rt = runtime_opt(WEFT_MULTI_THREAD, 0);
    weft_blocking_pool *p = NULL, *q = (weft_blocking_pool *)(uintptr_t)1;
    weft_blocking_job *j = NULL;

    ASSERT_EQ(-EINVAL, weft_blocking_default(NULL, &p));   /* not a worker */
    ASSERT_EQ(-EINVAL, weft_blocking_default(rt, NULL));
    ASSERT_EQ(-EINVAL, weft_blocking_spawn(NULL, plus_one, NULL, &j));
    ASSERT_EQ(-EINVAL, weft_blocking_spawn(NULL, NULL, NULL, &j));
    ASSERT(j == NULL);
    ASSERT_OK(weft_blocking_default(rt, &p));
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(-ESHUTDOWN, weft_blocking_default(rt, &q));  /* no new one, and... */
    ASSERT(q == (weft_blocking_pool *)(uintptr_t)1);       /* untouched */
    ASSERT_EQ(-ESHUTDOWN, weft_blocking_spawn(p, plus_one, NULL, &j)); /* ...the old one is shut */
    weft_runtime_free(rt);

    /* shut down before it was ever made: never made */
    rt = runtime_opt(WEFT_MULTI_THREAD, 0);
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(-ESHUTDOWN, weft_blocking_default(rt, &p));
    weft_runtime_free(rt);
}

/* Freed while one job runs and one waits: the free does not wait for the
 * running one; the waiting one is cancelled; the running one's handle
 * outlives the runtime and reports its result once it is done. */
TEST(default_pool_runtime_free_with_jobs_in_flight)
{
    weft_runtime *rt = runtime_opt(WEFT_MULTI_THREAD, 1);
    weft_blocking_pool *p;
    weft_blocking_job *running, *queued;
    gate g = GATE_INIT;
    uint64_t t0;
    void *ret = NULL;

    ASSERT_OK(weft_blocking_default(rt, &p));
    ASSERT_OK(weft_blocking_spawn(p, gate_job, &g, &running));
    ASSERT_OK(weft_blocking_spawn(p, plus_one, (void *)1, &queued));
    gate_wait_arrived(&g, 1);
    t0 = harness_now_ns();
    weft_runtime_free(rt);
    ASSERT(harness_now_ns() - t0 < 2000000000ull);  /* did not wait for the gate */
    ASSERT_EQ(-ECANCELED, weft_blocking_job_wait(queued, NULL));
    weft_blocking_job_drop(queued);
    ASSERT_EQ(-EAGAIN, weft_blocking_job_try(running, NULL));
    ASSERT_EQ(1, harness_count_threads("weft-b"));
    gate_open(&g);
    ASSERT_OK(weft_blocking_job_wait(running, &ret));
    ASSERT_EQ(0x6a7e, (uintptr_t)ret);
    weft_blocking_job_drop(running);                /* the pool's memory goes with the last */
    ST_WAIT_UNTIL(harness_count_threads("weft-b") == 0);
}

/* A job of the default pool frees the runtime that owns the pool. */
static void *free_runtime_job(void *arg)
{
    weft_runtime_free(arg);
    return (void *)(uintptr_t)7;
}

TEST(default_pool_job_frees_its_runtime)
{
    weft_runtime *rt = runtime_opt(WEFT_MULTI_THREAD, 0);
    weft_blocking_pool *p;
    weft_blocking_job *j;
    void *ret = NULL;

    ASSERT_OK(weft_blocking_default(rt, &p));
    ASSERT_OK(weft_blocking_spawn(p, free_runtime_job, rt, &j));
    ASSERT_OK(weft_blocking_job_wait(j, &ret));
    ASSERT_EQ(7, (uintptr_t)ret);
    weft_blocking_job_drop(j);
    ST_WAIT_UNTIL(harness_count_threads("weft-b") == 0);
}
