/* SPDX-License-Identifier: MIT */
/* Audit 6 of weft/sched.h: options at their limits (accepted at the bound,
 * refused one past it); the prefix read only during weft_runtime_new(); the
 * calls refused on a current-thread runtime's driving thread (it counts as
 * that runtime's worker: shutdown, run, block_on must say -EINVAL, not
 * deadlock); the worker lookups there and on a multi-thread worker;
 * weft_block_on() answering -ECANCELED when another thread shuts the runtime
 * down under it (the root's drop run once); spawn type limits;
 * weft_runtime_io_backend() errors. */
#include "../sync/sync_test.h"
#include <string.h>

#include "weft/blocking.h"
#include "weft/coro.h"

/* Runs fn(arg) once on whatever thread polls it; output: its int. */
typedef struct probe {
    int (*fn)(void *);
    void *arg;
} probe;

static weft_poll probe_poll(probe *p, weft_context *cx, void *out)
{
    int r = p->fn(p->arg);

    (void)cx;
    memcpy(out, &r, sizeof(int));
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_STATIC(probe, probe_poll, NULL, int);

static weft_runtime *new_rt(const weft_runtime_options *o)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, o));
    return rt;
}

/* Every documented limit is accepted at the bound and refused past it. */
TEST(runtime_options_at_their_limits)
{
    weft_runtime *rt = (weft_runtime *)0x1;
    const weft_runtime_options good[] = {
        { .workers = 1, .coro_stack_size = (size_t)16 << 10 },
        { .workers = 1, .coro_stack_size = (size_t)1 << 30 },
        { .workers = 1, .blocking_threads = WEFT_BLOCKING_MAX_THREADS },
        { .workers = 1, .blocking_threads = 1 },
        { .flavor = WEFT_CURRENT_THREAD, .io_backend = WEFT_IO_EPOLL },
        { .workers = 1, .io_backend = WEFT_IO_URING },
    };
    const weft_runtime_options bad[] = {
        { .workers = 1, .coro_stack_size = ((size_t)16 << 10) - 1 },
        { .workers = 1, .blocking_threads = WEFT_BLOCKING_MAX_THREADS + 1 },
        { .flavor = WEFT_CURRENT_THREAD, .workers = WEFT_MAX_WORKERS },
        { .workers = 1, .io_backend = (weft_io_backend)-1 },
        { .flavor = (weft_flavor)-1 },
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int r = weft_runtime_new(&rt, &good[i]), fb = 1;

        if (r != 0)
            harness_fail(__FILE__, __LINE__, "good options %zu: %d", i, r);
        r = weft_runtime_io_backend(rt, &fb);
        ASSERT(r == WEFT_IO_EPOLL || r == WEFT_IO_URING);
        if (good[i].io_backend == WEFT_IO_EPOLL) {
            ASSERT_EQ(WEFT_IO_EPOLL, r);
            ASSERT_EQ(0, fb);
        }
        ASSERT_EQ(good[i].flavor == WEFT_CURRENT_THREAD ? 1u : 1u, weft_runtime_workers(rt));
        weft_runtime_free(rt);
        rt = (weft_runtime *)0x1;
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = weft_runtime_new(&rt, &bad[i]);

        if (r != -EINVAL)
            harness_fail(__FILE__, __LINE__, "bad options %zu: %d", i, r);
        ASSERT(rt == (weft_runtime *)0x1);
    }
    ASSERT_EQ(-EINVAL, weft_runtime_io_backend(NULL, NULL));
}

/* The prefix is read only during weft_runtime_new(): a buffer overwritten
 * right after does not change the workers' names. */
TEST(thread_name_prefix_read_only_during_new)
{
    char prefix[16];
    weft_runtime *rt;

    strcpy(prefix, "aud6-p-");
    rt = new_rt(&(weft_runtime_options){ .workers = 2, .thread_name_prefix = prefix });
    memset(prefix, 'Z', sizeof(prefix) - 1);
    prefix[sizeof(prefix) - 1] = '\0';
    {
        uint64_t end = harness_now_ns() + ST_WATCHDOG_NS;

        while (harness_count_threads("aud6-p-0") + harness_count_threads("aud6-p-1") < 2) {
            if (harness_now_ns() > end)
                harness_fail(__FILE__, __LINE__, "workers not named from the prefix");
            sched_yield();
        }
    }
    weft_runtime_free(rt);
}

/* The thread inside weft_block_on() of a current-thread runtime runs its
 * tasks: it is that runtime's worker. Shutting its own runtime down there is
 * -EINVAL (it would wait for itself), as are run and block_on of any
 * runtime; the lookups name it. */
typedef struct ctx {
    weft_runtime *self, *other;
    int shutdown, run, block_on_self, block_on_other, index;
    bool named, current;
} ctx;

static int nothing(void *arg)
{
    (void)arg;
    return 5;
}

static int on_driver(void *arg)
{
    ctx *c = arg;
    int out = 0;

    c->shutdown = weft_runtime_shutdown(c->self);
    c->run = weft_runtime_run(c->self);
    c->block_on_self = weft_block_on(c->self, &probe_future, &(probe){ nothing, NULL }, &out);
    c->block_on_other = weft_block_on(c->other, &probe_future, &(probe){ nothing, NULL }, &out);
    c->index = weft_worker_index();
    c->named = weft_worker_name() != NULL;
    c->current = weft_runtime_current() == c->self;
    return 0;
}

static void check_driver_refusals(weft_runtime *self, weft_runtime *other, unsigned workers)
{
    ctx c = { .self = self, .other = other, .index = -2 };
    int res = 1, out = 0;

    ASSERT_OK(weft_block_on(self, &probe_future, &(probe){ on_driver, &c }, &res));
    ASSERT_EQ(0, res);
    ASSERT_EQ(-EINVAL, c.shutdown);
    ASSERT_EQ(-EINVAL, c.run);
    ASSERT_EQ(-EINVAL, c.block_on_self);
    ASSERT_EQ(-EINVAL, c.block_on_other);
    ASSERT(c.index >= 0 && (unsigned)c.index < workers);
    ASSERT(c.named);
    ASSERT(c.current);
    /* the runtime still works: nothing was shut down */
    ASSERT_OK(weft_block_on(self, &probe_future, &(probe){ nothing, NULL }, &out));
    ASSERT_EQ(5, out);
    ASSERT_EQ(-1, weft_worker_index());
    ASSERT(weft_worker_name() == NULL);
    ASSERT(weft_runtime_current() == NULL);
}

TEST(driver_and_worker_threads_refuse_blocking_calls)
{
    weft_runtime *ct = new_rt(&(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD });
    weft_runtime *mt = new_rt(&(weft_runtime_options){ .workers = 2 });
    weft_worker_metrics m;

    ASSERT_EQ(1u, weft_runtime_workers(ct));
    ASSERT_OK(weft_runtime_worker_metrics(ct, 0, &m));
    ASSERT_EQ(-EINVAL, weft_runtime_worker_metrics(ct, 1, &m));
    ASSERT_EQ(-EINVAL, weft_runtime_worker_metrics(NULL, 0, &m));
    check_driver_refusals(ct, mt, 1);
    check_driver_refusals(mt, ct, 2);
    weft_runtime_free(mt);
    weft_runtime_free(ct);
}

/* weft_block_on() on a multi-thread runtime that another thread shuts down
 * before the root completes: -ECANCELED, the root's drop run exactly once.
 * After it: -ESHUTDOWN for block_on, run, spawn; shutdown again is 0. */
static atomic_int root_drops, root_started;

typedef struct forever {
    bool parked;
    weft_waker w;                              /* kept, never woken */
} forever;

static weft_poll forever_poll(forever *f, weft_context *cx, void *out)
{
    (void)out;
    if (!f->parked) {
        f->w = weft_waker_clone(weft_context_waker(cx));
        f->parked = true;
    }
    atomic_store(&root_started, 1);
    return WEFT_PENDING;
}

static void forever_drop(forever *f)
{
    if (f->parked)
        weft_waker_drop(&f->w);
    f->parked = false;
    atomic_fetch_add(&root_drops, 1);
}
WEFT_DEFINE_FUTURE_STATIC(forever, forever_poll, forever_drop, int);

static void *shut_later(void *p)
{
    weft_runtime *rt = p;

    ST_WAIT_UNTIL(atomic_load(&root_started));
    ASSERT_OK(weft_runtime_shutdown(rt));
    return NULL;
}

TEST(block_on_cancelled_by_a_shutdown_from_another_thread)
{
    weft_runtime *rt = new_rt(&(weft_runtime_options){ .workers = 2 });
    pthread_t th;
    int out = 99;

    ASSERT_EQ(0, pthread_create(&th, NULL, shut_later, rt));
    ASSERT_EQ(-ECANCELED, weft_block_on(rt, &forever_future, &(forever){ 0 }, &out));
    pthread_join(th, NULL);
    ASSERT_EQ(1, atomic_load(&root_drops));
    ASSERT_EQ(99, out);
    ASSERT_EQ(-ESHUTDOWN, weft_block_on(rt, &probe_future, &(probe){ nothing, NULL }, NULL));
    ASSERT_EQ(-ESHUTDOWN, weft_runtime_run(rt));
    ASSERT_EQ(-ESHUTDOWN, weft_spawn_detached(rt, &probe_future, &(probe){ nothing, NULL }));
    ASSERT_OK(weft_runtime_shutdown(rt));
    {
        int r = weft_runtime_io_backend(rt, NULL);

        if (r != -ESHUTDOWN)
            harness_fail(__FILE__, __LINE__, "io_backend after shutdown: %d", r);
    }
    weft_runtime_free(rt);
    ASSERT_EQ(1, atomic_load(&root_drops));
}

/* Spawn type limits: alignment 4096 accepted, 8192 and 3 refused; size 0
 * refused; block_on's NULL out is fine; NULL type/init refused. Each type is
 * its own static descriptor: a task borrows its descriptor past its
 * completion (weft/core.h), so one edited between spawns would free an
 * earlier task's cell by the wrong size and alignment (this test, editing
 * one stack descriptor, aborted with "double free" about once in 12 runs). */
static const weft_future_type probe_4096 = { probe__weft_poll, probe__weft_drop, sizeof(probe),
                                             4096, sizeof(int), _Alignof(int), "probe_4096" };
static const weft_future_type probe_8192 = { probe__weft_poll, probe__weft_drop, sizeof(probe),
                                             8192, sizeof(int), _Alignof(int), "probe_8192" };
static const weft_future_type probe_a3 = { probe__weft_poll, probe__weft_drop, sizeof(probe),
                                           3, sizeof(int), _Alignof(int), "probe_a3" };
static const weft_future_type probe_s0 = { probe__weft_poll, probe__weft_drop, 0,
                                           _Alignof(probe), sizeof(int), _Alignof(int), "probe_s0" };

TEST(spawn_type_limits)
{
    weft_runtime *rt = new_rt(&(weft_runtime_options){ .workers = 1 });
    weft_join *j = (weft_join *)0x1;
    probe p = { nothing, NULL };
    int out = 0;

    for (int i = 0; i < 50; i++) {
        out = 0;
        ASSERT_OK(weft_block_on(rt, &probe_4096, &p, &out));
        ASSERT_EQ(5, out);
    }
    ASSERT_EQ(-EINVAL, weft_spawn(rt, &probe_8192, &p, &j));
    ASSERT(j == (weft_join *)0x1);
    ASSERT_EQ(-EINVAL, weft_block_on(rt, &probe_8192, &p, &out));
    ASSERT_EQ(-EINVAL, weft_spawn_detached(rt, &probe_a3, &p));
    ASSERT_EQ(-EINVAL, weft_spawn_detached(rt, &probe_s0, &p));
    ASSERT_EQ(-EINVAL, weft_spawn(rt, NULL, &p, &j));
    ASSERT_EQ(-EINVAL, weft_spawn(rt, &probe_future, NULL, &j));
    ASSERT_EQ(-EINVAL, weft_spawn(rt, &probe_future, &p, NULL));
    ASSERT_EQ(-EINVAL, weft_spawn(NULL, &probe_future, &p, &j));
    ASSERT_EQ(-EINVAL, weft_block_on(NULL, &probe_future, &p, NULL));
    ASSERT_OK(weft_block_on(rt, &probe_future, &p, NULL));
    ASSERT_EQ(-EINVAL, weft_runtime_shutdown(NULL));
    ASSERT_EQ(-EINVAL, weft_runtime_run(NULL));
    weft_runtime_free(NULL);
    weft_runtime_free(rt);
}

/* weft_runtime_free() from a job of the runtime's own default blocking pool
 * (a thread that is no worker: allowed). The pool is shut down without
 * waiting for that job (its caller), which then returns and leaves; a task
 * still pending is cancelled, its drop run once. Nothing leaks (ASan). On
 * the pool thread the worker lookups answer -1 / NULL. */
static atomic_int job_done, pend_drops, pend_started, job_lookups_bad, spawn_returned;

typedef struct pend {
    weft_runtime *rt;
    bool spawned;
    weft_waker w;                              /* kept, never woken */
} pend;

static void *free_job(void *arg)
{
    weft_runtime *rt = arg;

    /* a pool thread runs no weft task: the lookups say so */
    if (weft_worker_index() != -1 || weft_worker_name() != NULL || weft_runtime_current() != NULL)
        atomic_store(&job_lookups_bad, 1);
    ST_WAIT_UNTIL(atomic_load(&pend_started));
    /* the main thread's weft_spawn_detached() may still be touching rt
     * after the task ran (its wake-up of a worker): free only once it
     * returned, as any free must wait for every other call on the runtime */
    ST_WAIT_UNTIL(atomic_load(&spawn_returned));
    weft_runtime_free(rt);
    atomic_store(&job_done, 1);
    return NULL;
}

static weft_poll pend_poll(pend *p, weft_context *cx, void *out)
{
    (void)out;
    if (!p->spawned) {
        p->spawned = true;
        p->w = weft_waker_clone(weft_context_waker(cx));
        ASSERT_OK(weft_blocking_spawn(NULL, free_job, p->rt, NULL));
        atomic_store(&pend_started, 1);
    }
    return WEFT_PENDING;                       /* never woken */
}

static void pend_drop(pend *p)
{
    if (p->spawned)
        weft_waker_drop(&p->w);
    p->spawned = false;
    atomic_fetch_add(&pend_drops, 1);
}
WEFT_DEFINE_FUTURE_STATIC(pend, pend_poll, pend_drop, int);

TEST(runtime_freed_from_its_own_blocking_pool_job)
{
    weft_runtime *rt = new_rt(&(weft_runtime_options){ .workers = 2 });

    ASSERT_OK(weft_spawn_detached(rt, &pend_future, &(pend){ .rt = rt }));
    atomic_store(&spawn_returned, 1);
    ST_WAIT_UNTIL(atomic_load(&job_done));
    ASSERT_EQ(1, atomic_load(&pend_drops));
    ASSERT_EQ(0, atomic_load(&job_lookups_bad));
    /* the pool thread leaves on its own; give it the chance before exit */
    ST_WAIT_UNTIL(harness_count_threads("weft-b") == 0);
}

/* Two threads shut one runtime down at once while its tasks wait: both get
 * 0, and when either returns every task's drop has run exactly once. */
static atomic_int many_drops;

typedef struct waitless {
    bool parked;
    weft_waker w;                              /* kept, never woken */
} waitless;

static weft_poll waitless_poll(waitless *f, weft_context *cx, void *out)
{
    (void)out;
    if (!f->parked) {
        f->w = weft_waker_clone(weft_context_waker(cx));
        f->parked = true;
    }
    return WEFT_PENDING;
}

static void waitless_drop(waitless *f)
{
    if (f->parked)
        weft_waker_drop(&f->w);
    f->parked = false;
    atomic_fetch_add(&many_drops, 1);
}
WEFT_DEFINE_FUTURE_STATIC(waitless, waitless_poll, waitless_drop, int);

typedef struct shutter {
    weft_runtime *rt;
    atomic_int *go;
    int res, drops_seen;
} shutter;

static void *shut_now(void *p)
{
    shutter *s = p;

    while (!atomic_load(s->go))
        sched_yield();
    s->res = weft_runtime_shutdown(s->rt);
    s->drops_seen = atomic_load(&many_drops);
    return NULL;
}

TEST(concurrent_shutdowns_both_return_after_every_drop)
{
    int rounds = (int)harness_scale(20);

    for (int round = 0; round < rounds; round++) {
        weft_runtime *rt = new_rt(&(weft_runtime_options){ .workers = 2 });
        atomic_int go = 0;
        shutter s[2] = { { rt, &go, 1, 0 }, { rt, &go, 1, 0 } };
        pthread_t th[2];

        atomic_store(&many_drops, 0);
        for (int i = 0; i < 50; i++)
            ASSERT_OK(weft_spawn_detached(rt, &waitless_future, &(waitless){ 0 }));
        for (int i = 0; i < 2; i++)
            ASSERT_EQ(0, pthread_create(&th[i], NULL, shut_now, &s[i]));
        atomic_store(&go, 1);
        for (int i = 0; i < 2; i++) {
            pthread_join(th[i], NULL);
            ASSERT_EQ(0, s[i].res);
            ASSERT_EQ(50, s[i].drops_seen);
        }
        ASSERT_EQ(0u, weft_runtime_active_tasks(rt));
        ASSERT_EQ(0u, weft_runtime_active_tasks(NULL));
        weft_runtime_free(rt);
        ASSERT_EQ(50, atomic_load(&many_drops));
    }
}

/* Two threads in weft_block_on() of one current-thread runtime: the second
 * waits for the first to leave (the first may run its root meanwhile); both
 * get their own root's output. */
typedef struct tokwait {
    weft_cancel *tok;
    int val;
    bool init;
    weft_cancel_wait w;
} tokwait;

static atomic_int tokwait_polled;

static weft_poll tokwait_poll(tokwait *t, weft_context *cx, void *out)
{
    int r;

    if (!t->init) {
        weft_cancel_wait_init(&t->w, t->tok);
        t->init = true;
    }
    atomic_store(&tokwait_polled, 1);
    if (weft_cancel_wait_poll(&t->w, cx, &r) == WEFT_PENDING)
        return WEFT_PENDING;
    memcpy(out, &t->val, sizeof(int));
    return WEFT_READY;
}

static void tokwait_drop(tokwait *t)
{
    if (t->init)
        weft_cancel_wait_drop(&t->w);
    t->init = false;
}
WEFT_DEFINE_FUTURE_STATIC(tokwait, tokwait_poll, tokwait_drop, int);

typedef struct second {
    weft_runtime *rt;
    atomic_int started;
    int res, out;
} second;

static int seven(void *arg)
{
    (void)arg;
    return 7;
}

static void *second_block_on(void *p)
{
    second *s = p;

    atomic_store(&s->started, 1);
    s->res = weft_block_on(s->rt, &probe_future, &(probe){ seven, NULL }, &s->out);
    return NULL;
}

typedef struct first {
    tokwait t;
    weft_runtime *rt;
    int out;
} first;

static void *first_block_on(void *p)
{
    first *f = p;

    ASSERT_OK(weft_block_on(f->rt, &tokwait_future, &f->t, &f->out));
    return NULL;
}

TEST(two_threads_block_on_one_current_thread_runtime)
{
    weft_runtime *ct = new_rt(&(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD });
    first a = { .rt = ct };
    second b = { .rt = ct, .res = 1 };
    pthread_t ta, tb;

    ASSERT_OK(weft_cancel_new(&a.t.tok));
    a.t.val = 3;
    ASSERT_EQ(0, pthread_create(&ta, NULL, first_block_on, &a));
    ST_WAIT_UNTIL(atomic_load(&tokwait_polled));
    ASSERT_EQ(0, pthread_create(&tb, NULL, second_block_on, &b));
    ST_WAIT_UNTIL(atomic_load(&b.started));
    for (int i = 0; i < 1000; i++)
        sched_yield();                         /* let b reach its wait (or not) */
    weft_cancel_cancel(a.t.tok);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ASSERT_EQ(3, a.out);
    ASSERT_EQ(0, b.res);
    ASSERT_EQ(7, b.out);
    weft_cancel_drop(a.t.tok);
    weft_runtime_free(ct);
}
