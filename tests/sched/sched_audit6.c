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
    int dummy;
} forever;

static weft_poll forever_poll(forever *f, weft_context *cx, void *out)
{
    (void)f;
    (void)cx;
    (void)out;
    atomic_store(&root_started, 1);
    return WEFT_PENDING;                       /* never woken */
}

static void forever_drop(forever *f)
{
    (void)f;
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
 * refused; block_on's NULL out is fine; NULL type/init refused. */
TEST(spawn_type_limits)
{
    weft_runtime *rt = new_rt(&(weft_runtime_options){ .workers = 1 });
    weft_future_type t = probe_future;
    weft_join *j = (weft_join *)0x1;
    probe p = { nothing, NULL };
    int out = 0;

    t.align = 4096;
    ASSERT_OK(weft_block_on(rt, &t, &p, &out));
    ASSERT_EQ(5, out);
    t.align = 8192;
    ASSERT_EQ(-EINVAL, weft_spawn(rt, &t, &p, &j));
    ASSERT(j == (weft_join *)0x1);
    ASSERT_EQ(-EINVAL, weft_block_on(rt, &t, &p, &out));
    t.align = 3;
    ASSERT_EQ(-EINVAL, weft_spawn_detached(rt, &t, &p));
    t = probe_future;
    t.size = 0;
    ASSERT_EQ(-EINVAL, weft_spawn_detached(rt, &t, &p));
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
