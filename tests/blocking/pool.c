/* SPDX-License-Identifier: MIT */
/* Blocking pool: jobs from tasks and plain threads, saturation, lazy threads
 * and keep-alive, shutdown (queued jobs cancelled, stuck jobs past the
 * deadline), dropping the join future and the handle at every point, misuse,
 * allocation faults. */
#define _GNU_SOURCE
#include <dirent.h>
#include <string.h>
#include <unistd.h>

#include "../sync/sync_test.h"
#include "weft/blocking.h"

/* ---- helpers -------------------------------------------------------------- */

/* A gate jobs wait at until the test opens it. */
typedef struct gate {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool open;
    int arrived;            /* jobs waiting or gone through */
} gate;

#define GATE_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0 }

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->m);
    g->open = true;
    pthread_cond_broadcast(&g->c);
    pthread_mutex_unlock(&g->m);
}

static int gate_arrived(gate *g)
{
    int n;

    pthread_mutex_lock(&g->m);
    n = g->arrived;
    pthread_mutex_unlock(&g->m);
    return n;
}

static void *gate_job(void *arg)
{
    gate *g = arg;

    pthread_mutex_lock(&g->m);
    g->arrived++;
    while (!g->open)
        pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
    return (void *)(uintptr_t)0x6a7e;
}

static atomic_int ran;

static void *plus_one(void *arg)
{
    atomic_fetch_add(&ran, 1);
    return (void *)((uintptr_t)arg + 1);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

static weft_blocking_pool *new_pool(unsigned max, unsigned keep_alive_ms)
{
    weft_blocking_pool *p = NULL;

    ASSERT_OK(weft_blocking_pool_new(&p, &(weft_blocking_options){
                  .max_threads = max, .keep_alive_ms = keep_alive_ms }));
    return p;
}

/* ---- plain threads ------------------------------------------------------- */

TEST(blocking_spawn_and_wait_from_plain_thread)
{
    weft_blocking_pool *p = new_pool(0, 0);
    weft_blocking_job *j[16];
    void *ret = NULL;

    ASSERT_EQ(0, weft_blocking_pool_threads(p));     /* lazily: none yet */
    atomic_store(&ran, 0);
    for (uintptr_t i = 0; i < 16; i++)
        ASSERT_OK(weft_blocking_spawn(p, plus_one, (void *)(i * 10), &j[i]));
    for (uintptr_t i = 0; i < 16; i++) {
        ASSERT_OK(weft_blocking_job_wait(j[i], &ret));
        ASSERT_EQ(i * 10 + 1, (uintptr_t)ret);
        ASSERT(weft_blocking_job_is_complete(j[i]));
        ret = NULL;
        ASSERT_OK(weft_blocking_job_try(j[i], &ret));  /* again: same answer */
        ASSERT_EQ(i * 10 + 1, (uintptr_t)ret);
        ASSERT_OK(weft_blocking_job_wait(j[i], NULL));
        weft_blocking_job_drop(j[i]);
    }
    ASSERT_EQ(16, atomic_load(&ran));
    ASSERT_LE(16, weft_blocking_pool_threads(p));
    ASSERT_EQ(0, weft_blocking_pool_shutdown(p, WEFT_BLOCKING_FOREVER));
    ASSERT_EQ(0, weft_blocking_pool_threads(p));
    weft_blocking_pool_free(p);
}

/* ---- from tasks ------------------------------------------------------------ */

static void *name_job(void *arg)
{
    char name[16] = "";

    pthread_getname_np(pthread_self(), name, sizeof(name));
    return (void *)((uintptr_t)arg * 2 + (strncmp(name, "weft-b", 6) == 0));
}

typedef struct offload {
    weft_async co;
    weft_blocking_pool *pool;
    uintptr_t n;
    weft_blocking_job *job;
    weft_blocking_join join;
    void *ret;
    int res;
    weft_yield y;
} offload;

static weft_poll offload_poll(offload *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    f->res = weft_blocking_spawn(f->pool, name_job, (void *)f->n, &f->job);
    if (f->res < 0) {
        *(intptr_t *)out = f->res;
        return WEFT_READY;
    }
    /* a plain-thread wait would block this worker: refused */
    ASSERT_EQ(-EINVAL, weft_blocking_job_wait(f->job, NULL));
    weft_blocking_join_init(&f->join, f->job, &f->ret);
    WEFT_AWAIT(&f->co, weft_blocking_join_poll(&f->join, cx, &f->res));
    WEFT_YIELD(&f->co, &f->y, cx);                    /* poll again after READY */
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&f->join, cx, &f->res));
    *(intptr_t *)out = f->res < 0 ? f->res : (intptr_t)f->ret;
    WEFT_END(&f->co);
}

static void offload_drop(offload *f)
{
    weft_blocking_join_drop(&f->join);
    weft_blocking_job_drop(f->job);
}

WEFT_DEFINE_FUTURE(offload, offload_poll, offload_drop, intptr_t);

TEST(blocking_join_from_tasks)
{
    weft_runtime *rt = st_runtime(2);
    weft_blocking_pool *p = new_pool(4, 0);
    weft_join *j[64];
    intptr_t out = 0;

    for (uintptr_t i = 0; i < 64; i++)
        ASSERT_OK(weft_spawn(rt, &offload_future, &(offload){ .pool = p, .n = i }, &j[i]));
    for (uintptr_t i = 0; i < 64; i++) {
        ASSERT_OK(weft_join_wait(j[i], &out));
        ASSERT_EQ((intptr_t)(i * 2 + 1), out);         /* ran on a "weft-b" thread */
        weft_join_drop(j[i]);
    }
    ASSERT_LE(4, weft_blocking_pool_threads(p));
    weft_runtime_free(rt);
    weft_blocking_pool_free(p);
}

/* By hand: pending, woken exactly once, then READY; wakers balanced. */
TEST(blocking_join_poll_by_hand)
{
    weft_blocking_pool *p = new_pool(1, 0);
    gate g = GATE_INIT;
    cwaker c = { 0 };
    weft_waker w = cw_waker(&c);
    weft_context cx = weft_context_from_waker(&w);
    weft_blocking_job *job;
    weft_blocking_join jn;
    void *ret = NULL;
    int res = 1;

    ASSERT_OK(weft_blocking_spawn(p, gate_job, &g, &job));
    weft_blocking_join_init(&jn, job, &ret);
    ASSERT_EQ(WEFT_PENDING, weft_blocking_join_poll(&jn, &cx, &res));
    ASSERT_EQ(WEFT_PENDING, weft_blocking_join_poll(&jn, &cx, &res)); /* same waker: kept */
    ASSERT_EQ(1, atomic_load(&c.clones) - atomic_load(&c.drops));
    ASSERT_EQ(-EAGAIN, weft_blocking_job_try(job, NULL));
    ASSERT(!weft_blocking_job_is_complete(job));
    gate_open(&g);
    ST_WAIT_UNTIL(cw_wakes(&c) == 1);
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&jn, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(0x6a7e, (uintptr_t)ret);
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&jn, &cx, &res));
    ASSERT_OK(res);
    weft_blocking_join_drop(&jn);
    weft_blocking_join_drop(&jn);                     /* idempotent */
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&jn, &cx, &res));
    ASSERT_EQ(-EINVAL, res);                          /* dropped */
    weft_blocking_job_drop(job);
    ASSERT_EQ(1, cw_wakes(&c));
    ASSERT_CW_BALANCED(&c);
    weft_blocking_pool_free(p);
}

/* ---- saturation ------------------------------------------------------------ */

static atomic_int sat_now, sat_max, sat_done;

static void *sat_job(void *arg)
{
    int now = atomic_fetch_add(&sat_now, 1) + 1;
    int max = atomic_load(&sat_max);

    (void)arg;
    while (now > max && !atomic_compare_exchange_weak(&sat_max, &max, now))
        ;
    sleep_ms(10);
    atomic_fetch_sub(&sat_now, 1);
    atomic_fetch_add(&sat_done, 1);
    return NULL;
}

TEST(blocking_saturation_never_exceeds_max_threads)
{
    weft_blocking_pool *p = new_pool(8, 0);
    weft_blocking_job *j[200];
    unsigned peak_threads = 0;

    for (int i = 0; i < 200; i++) {
        ASSERT_OK(weft_blocking_spawn(p, sat_job, NULL, &j[i]));
        if (weft_blocking_pool_threads(p) > peak_threads)
            peak_threads = weft_blocking_pool_threads(p);
    }
    ASSERT_LE(8, peak_threads);                       /* 8 unless a job ended meanwhile */
    for (int i = 0; i < 200; i++) {
        ASSERT_OK(weft_blocking_job_wait(j[i], NULL));
        weft_blocking_job_drop(j[i]);
    }
    ASSERT_EQ(200, atomic_load(&sat_done));
    ASSERT_LE(8, atomic_load(&sat_max));
    ASSERT_LE(8, harness_count_threads("weft-b"));
    weft_blocking_pool_free(p);
}

/* ---- lazy threads, keep-alive ----------------------------------------------- */

TEST(blocking_threads_start_lazily_and_idle_ones_exit)
{
    weft_blocking_pool *p;
    gate g = GATE_INIT;
    weft_blocking_job *j[3];

    ASSERT_OK(weft_blocking_pool_new(&p, &(weft_blocking_options){
                  .max_threads = 8, .keep_alive_ms = 100, .thread_name_prefix = "lazy-" }));
    ASSERT_EQ(0, weft_blocking_pool_threads(p));
    ASSERT_EQ(0, harness_count_threads("lazy-"));
    /* one at a time: the idle thread is reused, no second one starts */
    for (uintptr_t i = 0; i < 5; i++) {
        ASSERT_OK(weft_blocking_spawn(p, plus_one, (void *)i, &j[0]));
        ASSERT_OK(weft_blocking_job_wait(j[0], NULL));
        weft_blocking_job_drop(j[0]);
        ASSERT_EQ(1, weft_blocking_pool_threads(p));
    }
    ST_WAIT_UNTIL(harness_count_threads("lazy-") == 1); /* one that timed out may linger */
    /* three blocked at once: three threads, named */
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_blocking_spawn(p, gate_job, &g, &j[i]));
    ST_WAIT_UNTIL(gate_arrived(&g) == 3);
    ASSERT_EQ(3, weft_blocking_pool_threads(p));
    ST_WAIT_UNTIL(harness_count_threads("lazy-") == 3);
    gate_open(&g);
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(weft_blocking_job_wait(j[i], NULL));
        weft_blocking_job_drop(j[i]);
    }
    /* idle for keep_alive_ms: every thread leaves */
    ST_WAIT_UNTIL(weft_blocking_pool_threads(p) == 0);
    ST_WAIT_UNTIL(harness_count_threads("lazy-") == 0);
    /* and the pool starts them again on demand */
    ASSERT_OK(weft_blocking_spawn(p, plus_one, (void *)41, &j[0]));
    ASSERT_OK(weft_blocking_job_wait(j[0], NULL));
    weft_blocking_job_drop(j[0]);
    ASSERT_EQ(1, weft_blocking_pool_threads(p));
    weft_blocking_pool_free(p);
}

/* ---- shutdown -------------------------------------------------------------- */

TEST(blocking_shutdown_cancels_queued_jobs)
{
    weft_blocking_pool *p = new_pool(1, 0);
    gate g = GATE_INIT;
    cwaker c = { 0 };
    weft_waker w = cw_waker(&c);
    weft_context cx = weft_context_from_waker(&w);
    weft_blocking_job *running, *queued[3];
    weft_blocking_join jn;
    void *ret = NULL;
    int res = 0;

    atomic_store(&ran, 0);
    ASSERT_OK(weft_blocking_spawn(p, gate_job, &g, &running));
    ST_WAIT_UNTIL(gate_arrived(&g) == 1);
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_blocking_spawn(p, plus_one, NULL, &queued[i]));
    ASSERT_OK(weft_blocking_spawn(p, plus_one, NULL, NULL));   /* detached, queued */
    weft_blocking_join_init(&jn, queued[0], &ret);
    ASSERT_EQ(WEFT_PENDING, weft_blocking_join_poll(&jn, &cx, &res));
    ASSERT_EQ(1, weft_blocking_pool_shutdown(p, 0));           /* one still running */
    ASSERT_EQ(1, cw_wakes(&c));                                /* the cancel woke it */
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&jn, &cx, &res));
    ASSERT_EQ(-ECANCELED, res);
    weft_blocking_join_drop(&jn);
    for (int i = 0; i < 3; i++) {
        ASSERT(weft_blocking_job_is_complete(queued[i]));
        ASSERT_EQ(-ECANCELED, weft_blocking_job_try(queued[i], &ret));
        ASSERT_EQ(-ECANCELED, weft_blocking_job_wait(queued[i], &ret));
        weft_blocking_job_drop(queued[i]);
    }
    ASSERT_EQ(-ESHUTDOWN, weft_blocking_spawn(p, plus_one, NULL, &queued[0]));
    ASSERT_EQ(-ESHUTDOWN, weft_blocking_spawn(p, plus_one, NULL, NULL));
    gate_open(&g);
    ASSERT_OK(weft_blocking_job_wait(running, &ret));
    ASSERT_EQ(0x6a7e, (uintptr_t)ret);
    weft_blocking_job_drop(running);
    ASSERT_EQ(0, weft_blocking_pool_shutdown(p, WEFT_BLOCKING_FOREVER)); /* again: waits */
    ASSERT_EQ(0, atomic_load(&ran));                           /* no cancelled fn ran */
    ASSERT_CW_BALANCED(&c);
    weft_blocking_pool_free(p);
}

static atomic_int late_done;

static void *late_job(void *arg)
{
    gate_job(arg);
    sleep_ms(20);                           /* finish well after free returned */
    atomic_store(&late_done, 1);
    return (void *)(uintptr_t)7;
}

/* A job stuck past the deadline is reported, and finishes later without
 * touching freed memory (ASan would see it), with its handle still usable. */
TEST(blocking_shutdown_deadline_reports_stuck_job)
{
    weft_blocking_pool *p = new_pool(4, 0);
    gate g = GATE_INIT;
    weft_blocking_job *kept;
    void *ret = NULL;
    uint64_t t0;

    atomic_store(&late_done, 0);
    ASSERT_OK(weft_blocking_spawn(p, late_job, &g, &kept));
    ASSERT_OK(weft_blocking_spawn(p, late_job, &g, NULL));     /* detached */
    ST_WAIT_UNTIL(gate_arrived(&g) == 2);
    t0 = harness_now_ns();
    ASSERT_EQ(2, weft_blocking_pool_shutdown(p, 50));
    ASSERT(harness_now_ns() - t0 >= 50u * 1000 * 1000);
    weft_blocking_pool_free(p);             /* shut down already: does not wait */
    ASSERT_EQ(0, atomic_load(&late_done));
    gate_open(&g);
    ASSERT_OK(weft_blocking_job_wait(kept, &ret));            /* pool memory still alive */
    ASSERT_EQ(7, (uintptr_t)ret);
    weft_blocking_job_drop(kept);
    ST_WAIT_UNTIL(harness_live() == 0);     /* the last thread out frees the pool */
}

static atomic_int slow_started, slow_done;

static void *slow_job(void *arg)
{
    (void)arg;
    atomic_store(&slow_started, 1);
    sleep_ms(50);
    atomic_store(&slow_done, 1);
    return NULL;
}

/* pool_free on a live pool waits for running jobs. */
TEST(blocking_free_waits_for_running_jobs)
{
    weft_blocking_pool *p = new_pool(2, 0);

    atomic_store(&slow_done, 0);
    ASSERT_OK(weft_blocking_spawn(p, slow_job, NULL, NULL));
    ST_WAIT_UNTIL(atomic_load(&slow_started));      /* running, not just queued */
    weft_blocking_pool_free(p);
    ASSERT_EQ(1, atomic_load(&slow_done));
}

static void *shutdown_self(void *arg)
{
    return (void *)(intptr_t)weft_blocking_pool_shutdown(arg, 0);
}

TEST(blocking_shutdown_from_own_thread_is_refused)
{
    weft_blocking_pool *p = new_pool(1, 0);
    weft_blocking_job *j;
    void *ret;

    ASSERT_OK(weft_blocking_spawn(p, shutdown_self, p, &j));
    ASSERT_OK(weft_blocking_job_wait(j, &ret));
    ASSERT_EQ(-EINVAL, (intptr_t)ret);
    weft_blocking_job_drop(j);
    weft_blocking_pool_free(p);
}

/* ---- dropping at every point -------------------------------------------------- */

TEST(blocking_drop_join_at_every_point)
{
    weft_blocking_pool *p = new_pool(1, 0);
    gate g = GATE_INIT;
    cwaker c = { 0 };
    weft_waker w = cw_waker(&c);
    weft_context cx = weft_context_from_waker(&w);
    weft_blocking_job *job;
    weft_blocking_join jn;
    void *ret = NULL;
    int res = 1;

    ASSERT_OK(weft_blocking_spawn(p, gate_job, &g, &job));
    weft_blocking_join_init(&jn, job, &ret);
    weft_blocking_join_drop(&jn);                     /* never polled */
    weft_blocking_join_init(&jn, job, &ret);
    ASSERT_EQ(WEFT_PENDING, weft_blocking_join_poll(&jn, &cx, &res));
    weft_blocking_join_drop(&jn);                     /* pending */
    ASSERT_CW_BALANCED(&c);
    weft_blocking_join_init(&jn, job, &ret);          /* a new one picks it up */
    ASSERT_EQ(WEFT_PENDING, weft_blocking_join_poll(&jn, &cx, &res));
    gate_open(&g);
    ST_WAIT_UNTIL(cw_wakes(&c) == 1);
    weft_blocking_join_drop(&jn);                     /* woken, not polled again */
    ASSERT_EQ(NULL, ret);                             /* nothing written */
    ASSERT_OK(weft_blocking_job_try(job, &ret));      /* the result stayed */
    ASSERT_EQ(0x6a7e, (uintptr_t)ret);
    ret = NULL;
    weft_blocking_join_init(&jn, job, &ret);
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&jn, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(0x6a7e, (uintptr_t)ret);
    weft_blocking_join_drop(&jn);                     /* complete */
    weft_blocking_job_drop(job);
    ASSERT_CW_BALANCED(&c);

    /* zeroed and NULL-job futures complete at once with -EINVAL */
    memset(&jn, 0, sizeof(jn));
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&jn, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_blocking_join_init(&jn, NULL, &ret);
    res = 0;
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&jn, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_blocking_join_drop(&jn);
    weft_blocking_pool_free(p);
}

/* The handle dropped while queued, while running, after completion: the job
 * still runs (detached), and nothing leaks. */
TEST(blocking_drop_handle_at_every_point)
{
    weft_blocking_pool *p = new_pool(1, 0);
    gate g = GATE_INIT;
    weft_blocking_job *running, *queued, *done;

    atomic_store(&ran, 0);
    ASSERT_OK(weft_blocking_spawn(p, plus_one, NULL, &done));
    ASSERT_OK(weft_blocking_job_wait(done, NULL));
    weft_blocking_job_drop(done);                     /* after completion */
    ASSERT_OK(weft_blocking_spawn(p, gate_job, &g, &running));
    ST_WAIT_UNTIL(gate_arrived(&g) == 1);
    ASSERT_OK(weft_blocking_spawn(p, plus_one, NULL, &queued));
    weft_blocking_job_drop(queued);                   /* while queued */
    weft_blocking_job_drop(running);                  /* while running */
    ASSERT_OK(weft_blocking_spawn(p, plus_one, NULL, NULL)); /* never had one */
    gate_open(&g);
    ST_WAIT_UNTIL(atomic_load(&ran) == 3);
    ASSERT_EQ(0, weft_blocking_pool_shutdown(p, WEFT_BLOCKING_FOREVER));
    weft_blocking_pool_free(p);
}

/* ---- misuse, faults ---------------------------------------------------------- */

TEST(blocking_misuse)
{
    weft_blocking_pool *p = NULL;
    weft_blocking_job *j = NULL;
    weft_blocking_join jn;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = 0;

    ASSERT_EQ(-EINVAL, weft_blocking_pool_new(NULL, NULL));
    ASSERT_EQ(-EINVAL, weft_blocking_pool_new(&p, &(weft_blocking_options){
                           .max_threads = WEFT_BLOCKING_MAX_THREADS + 1 }));
    ASSERT(p == NULL);
    ASSERT_OK(weft_blocking_pool_new(&p, NULL));      /* defaults */
    ASSERT_EQ(-EINVAL, weft_blocking_spawn(NULL, plus_one, NULL, &j));
    ASSERT_EQ(-EINVAL, weft_blocking_spawn(p, NULL, NULL, &j));
    ASSERT(j == NULL);
    ASSERT_EQ(-EINVAL, weft_blocking_pool_shutdown(NULL, 0));
    ASSERT_EQ(-EINVAL, weft_blocking_job_try(NULL, NULL));
    ASSERT_EQ(-EINVAL, weft_blocking_job_wait(NULL, NULL));
    ASSERT(!weft_blocking_job_is_complete(NULL));
    ASSERT_EQ(0, weft_blocking_pool_threads(NULL));
    weft_blocking_job_drop(NULL);
    weft_blocking_pool_free(NULL);
    weft_blocking_join_init(&jn, NULL, NULL);
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&jn, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_blocking_join_drop(&jn);
    ASSERT_EQ(0, weft_blocking_pool_threads(p));
    weft_blocking_pool_free(p);                       /* never used: no thread */
}

TEST(blocking_alloc_fault)
{
    weft_blocking_pool *p = NULL;
    weft_blocking_job *j = NULL;
    void *ret = NULL;

    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_blocking_pool_new(&p, NULL));
    ASSERT(p == NULL);
    ASSERT_EQ(0, harness_live());
    harness_fail_alloc_at(0);
    ASSERT_OK(weft_blocking_pool_new(&p, NULL));
    ASSERT_EQ(1, harness_allocs());                   /* one allocation */

    atomic_store(&ran, 0);
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_blocking_spawn(p, plus_one, NULL, &j));
    ASSERT(j == NULL);
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_blocking_spawn(p, plus_one, NULL, NULL));
    ASSERT_EQ(1, harness_live());                     /* the pool only */
    ASSERT_EQ(0, weft_blocking_pool_threads(p));      /* nothing started */
    harness_fail_alloc_at(0);
    ASSERT_OK(weft_blocking_spawn(p, plus_one, (void *)1, &j));
    ASSERT_EQ(1, harness_allocs());                   /* one allocation */
    ASSERT_OK(weft_blocking_job_wait(j, &ret));
    ASSERT_EQ(2, (uintptr_t)ret);
    ASSERT_EQ(1, atomic_load(&ran));                  /* the failed ones never ran */
    weft_blocking_job_drop(j);
    weft_blocking_pool_free(p);
}
