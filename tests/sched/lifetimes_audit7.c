/* SPDX-License-Identifier: MIT */
/* Audit 7: lifetimes and threads across sched.h, task.h and core.h. */
#define _GNU_SOURCE
#include <stdlib.h>

#include "sched_test.h"

static weft_runtime *new_rt(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt;
    weft_runtime_options o = { .flavor = flavor, .workers = workers };

    ASSERT_OK(weft_runtime_new(&rt, &o));
    /* the tasks below park without a waker on purpose */
    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .mask = WEFT_LINTS_OFF }));
    return rt;
}

/* ---- a root that yields a few times: block_on it to poll what is queued ------------ */
typedef struct spin {
    int left;
    weft_yield y;
    bool in_yield;
} spin;

static weft_poll spin_poll(spin *s, weft_context *cx, void *out)
{
    (void)out;
    while (s->left > 0) {
        if (!s->in_yield) {
            weft_yield_init(&s->y);
            s->in_yield = true;
        }
        if (weft_yield_poll(&s->y, cx) == WEFT_PENDING)
            return WEFT_PENDING;
        s->in_yield = false;
        s->left--;
    }
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_VOID_STATIC(spin, spin_poll, NULL);

/* Poll what is queued on a current-thread runtime (its tasks never end). */
static void drive_a_while(weft_runtime *rt)
{
    ASSERT_OK(weft_block_on(rt, &spin_future, &(spin){ .left = 50 }, NULL));
}

/* ---- a future that parks for ever, keeping a clone of its waker in a slot -------- */
static atomic_int forever_drops;
typedef struct forever {
    weft_waker *slot;             /* where to keep a clone (may be NULL) */
    atomic_int *polled;
    bool kept;
} forever;

static weft_poll forever_poll(forever *f, weft_context *cx, void *out)
{
    (void)out;
    if (f->slot && !f->kept) {
        *f->slot = weft_waker_clone(weft_context_waker(cx));
        f->kept = true;
    }
    if (f->polled)
        atomic_fetch_add(f->polled, 1);
    return WEFT_PENDING;
}

static void forever_drop(forever *f)
{
    (void)f;
    atomic_fetch_add(&forever_drops, 1);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(forever, forever_poll, forever_drop);

/* ---- a future that completes at once, keeping a clone of its waker ---------------- */
typedef struct keeper {
    weft_waker *slot;
    int value;
} keeper;

static weft_poll keeper_poll(keeper *k, weft_context *cx, void *out)
{
    *k->slot = weft_waker_clone(weft_context_waker(cx));
    memcpy(out, &k->value, sizeof(int));
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_STATIC(keeper, keeper_poll, NULL, int);

/* core.h: "Any thread may wake any number of times; waking a completed task
 * is a harmless no-op"; sched.h: the memory a waker refers to lives until the
 * last waker is dropped. A block_on root's waker, kept past block_on's
 * return and past weft_runtime_free(), is cloned, woken by value and by
 * reference, compared and dropped from a plain thread. */
static void root_waker_outlives(weft_flavor flavor, unsigned workers)
{
    weft_waker w = WEFT_WAKER_EMPTY, w2, w3;
    weft_runtime *rt = new_rt(flavor, workers);
    long live0;
    int out = 0;

    ASSERT_OK(weft_block_on(rt, &keeper_future, &(keeper){ .slot = &w, .value = 7 }, &out));
    ASSERT_EQ(7, out);
    ASSERT(w.vtable != NULL);
    weft_waker_wake_by_ref(&w);          /* root completed: a no-op */
    weft_runtime_free(rt);
    live0 = harness_live();
    ASSERT(live0 > 0);                   /* the root's memory, held by w */
    w2 = weft_waker_clone(&w);
    ASSERT(weft_waker_will_wake(&w, &w2));
    w3 = weft_waker_clone(&w2);
    weft_waker_wake_by_ref(&w2);
    weft_waker_wake(&w2);
    ASSERT(w2.vtable == NULL);
    weft_waker_drop(&w);
    weft_waker_wake(&w3);
    ASSERT_EQ(0, harness_live());
}

TEST(block_on_root_waker_used_after_free_multi_thread)
{
    root_waker_outlives(WEFT_MULTI_THREAD, 2);
}

TEST(block_on_root_waker_used_after_free_current_thread)
{
    root_waker_outlives(WEFT_CURRENT_THREAD, 0);
}

/* Four plain threads spawn (with and without join handles) while a fifth
 * shuts the runtime down: every spawn that returned 0 had its task
 * dropped exactly once by the time shutdown returned; every later spawn is
 * -ESHUTDOWN; the metrics count exactly the spawns that succeeded, all
 * completed; join handles kept by the spawning threads are read and
 * dropped after weft_runtime_free(). */
#define SPAWNERS 4
typedef struct spawner {
    weft_runtime *rt;
    atomic_int *go;
    int ok, refused;
    weft_join *joins[64];
    int njoins;
} spawner;

static void *spawner_main(void *arg)
{
    spawner *s = arg;

    while (!atomic_load(s->go))
        sched_yield();
    for (int i = 0; i < 100000; i++) {
        int r;

        if (s->njoins < 64 && i % 7 == 0) {
            r = weft_spawn(s->rt, &forever_future, &(forever){ 0 }, &s->joins[s->njoins]);
            if (r == 0)
                s->njoins++;
        } else {
            r = weft_spawn_detached(s->rt, &forever_future, &(forever){ 0 });
        }
        if (r == 0) {
            s->ok++;
        } else {
            if (r != -ESHUTDOWN)
                harness_fail(__FILE__, __LINE__, "spawn: %d", r);
            s->refused++;
            if (s->refused > 100)
                break;
        }
    }
    return NULL;
}

static void shutdown_races_spawners(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = new_rt(flavor, workers);
    spawner sp[SPAWNERS];
    pthread_t th[SPAWNERS];
    atomic_int go = 0;
    weft_metrics m = { .size = sizeof(m) };
    int total = 0;

    atomic_store(&forever_drops, 0);
    for (int i = 0; i < SPAWNERS; i++) {
        sp[i] = (spawner){ .rt = rt, .go = &go };
        START_THREAD(&th[i], spawner_main, &sp[i]);
    }
    atomic_store(&go, 1);
    sleep_ms(5);
    ASSERT_OK(weft_runtime_shutdown(rt));
    /* every spawn that returned before shutdown returned was dropped; the
     * spawns still in flight may have made it in after... no: after
     * shutdown returned, every success must already be dropped */
    for (int i = 0; i < SPAWNERS; i++)
        JOIN_THREAD_WITHIN(th[i], WATCHDOG_MS, "spawner");
    for (int i = 0; i < SPAWNERS; i++) {
        total += sp[i].ok;
        ASSERT(sp[i].refused > 0);
    }
    ASSERT_EQ(total, atomic_load(&forever_drops));
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(total, m.tasks_spawned);
    ASSERT_EQ(total, m.tasks_completed);
    ASSERT_EQ(total, m.tasks_aborted);
    ASSERT_EQ(0, m.tasks_live);
    ASSERT_EQ(0, weft_runtime_active_tasks(rt));
    weft_runtime_free(rt);
    for (int i = 0; i < SPAWNERS; i++)
        for (int k = 0; k < sp[i].njoins; k++) {
            ASSERT(weft_join_is_complete(sp[i].joins[k]));
            ASSERT_EQ(-ECANCELED, weft_join_try(sp[i].joins[k], NULL));
            ASSERT_EQ(-ECANCELED, weft_join_wait(sp[i].joins[k], NULL));
            weft_join_abort(sp[i].joins[k]);
            weft_join_drop(sp[i].joins[k]);
        }
    ASSERT_EQ(0, harness_live());
}

TEST(shutdown_races_four_spawning_threads_multi_thread)
{
    shutdown_races_spawners(WEFT_MULTI_THREAD, 2);
}

TEST(shutdown_races_four_spawning_threads_current_thread)
{
    shutdown_races_spawners(WEFT_CURRENT_THREAD, 0);
}

/* Join handles dropped (and aborted) from plain threads while another
 * thread frees the runtime: each handle is used by one thread, the runtime
 * by another (task.h: "Exactly one thread uses a handle at a time; the
 * calls ... from any thread"). */
typedef struct dropper {
    weft_join **joins;
    int n;
    atomic_int *go;
} dropper;

static void *dropper_main(void *arg)
{
    dropper *d = arg;

    while (!atomic_load(d->go))
        sched_yield();
    for (int i = 0; i < d->n; i++) {
        if (i % 3 == 0)
            weft_join_abort(d->joins[i]);
        if (i % 5 == 0)
            (void)weft_join_try(d->joins[i], NULL);
        weft_join_drop(d->joins[i]);
    }
    return NULL;
}

static void joins_dropped_while_freed(weft_flavor flavor, unsigned workers)
{
    enum { N = 2000, T = 2 };
    static weft_join *joins[N];
    weft_runtime *rt = new_rt(flavor, workers);
    pthread_t th[T];
    dropper d[T];
    atomic_int go = 0;

    atomic_store(&forever_drops, 0);
    for (int i = 0; i < N; i++)
        ASSERT_OK(weft_spawn(rt, &forever_future, &(forever){ 0 }, &joins[i]));
    for (int t = 0; t < T; t++) {
        d[t] = (dropper){ joins + t * (N / T), N / T, &go };
        START_THREAD(&th[t], dropper_main, &d[t]);
    }
    atomic_store(&go, 1);
    weft_runtime_free(rt);
    for (int t = 0; t < T; t++)
        JOIN_THREAD_WITHIN(th[t], WATCHDOG_MS, "dropper");
    ASSERT_EQ(N, atomic_load(&forever_drops));
    ASSERT_EQ(0, harness_live());
}

TEST(join_handles_dropped_by_threads_while_the_runtime_is_freed_multi_thread)
{
    joins_dropped_while_freed(WEFT_MULTI_THREAD, 2);
}

TEST(join_handles_dropped_by_threads_while_the_runtime_is_freed_current_thread)
{
    joins_dropped_while_freed(WEFT_CURRENT_THREAD, 0);
}

/* Wakers of pending tasks, kept by plain threads, woken and cloned while the
 * runtime is shut down and freed, then after: each task dropped once. */
typedef struct waker_thread {
    weft_waker *w;
    int n;
    atomic_int *go, *stop;
} waker_thread;

static void *waker_main(void *arg)
{
    waker_thread *wt = arg;

    while (!atomic_load(wt->go))
        sched_yield();
    while (!atomic_load(wt->stop))
        for (int i = 0; i < wt->n; i++) {
            weft_waker c = weft_waker_clone(&wt->w[i]);

            weft_waker_wake_by_ref(&wt->w[i]);
            weft_waker_wake(&c);
        }
    for (int i = 0; i < wt->n; i++) {
        weft_waker c = weft_waker_clone(&wt->w[i]);

        weft_waker_wake(&c);
        weft_waker_drop(&wt->w[i]);
    }
    return NULL;
}

static void wakers_through_shutdown(weft_flavor flavor, unsigned workers)
{
    enum { N = 200 };
    static weft_waker w[N];
    weft_runtime *rt = new_rt(flavor, workers);
    atomic_int polled = 0, go = 0, stop = 0;
    pthread_t th;
    waker_thread wt = { w, N, &go, &stop };

    atomic_store(&forever_drops, 0);
    memset(w, 0, sizeof(w));
    for (int i = 0; i < N; i++)
        ASSERT_OK(weft_spawn_detached(rt, &forever_future,
                                      &(forever){ .slot = &w[i], .polled = &polled }));
    if (flavor == WEFT_CURRENT_THREAD)
        drive_a_while(rt);
    WAIT_AT_LEAST(&polled, N, WATCHDOG_MS, "first polls");
    START_THREAD(&th, waker_main, &wt);
    atomic_store(&go, 1);
    sleep_ms(2);
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(N, atomic_load(&forever_drops));
    sleep_ms(1);
    weft_runtime_free(rt);
    sleep_ms(1);
    atomic_store(&stop, 1);
    JOIN_THREAD_WITHIN(th, WATCHDOG_MS, "waker");
    ASSERT_EQ(N, atomic_load(&forever_drops));
    ASSERT_EQ(0, harness_live());
}

TEST(wakers_cloned_and_woken_through_shutdown_and_free_multi_thread)
{
    wakers_through_shutdown(WEFT_MULTI_THREAD, 2);
}

TEST(wakers_cloned_and_woken_through_shutdown_and_free_current_thread)
{
    wakers_through_shutdown(WEFT_CURRENT_THREAD, 0);
}

/* ---- block_on / spawn inside a drop run by shutdown -------------------------------- */
typedef struct ret7 {
    int v;
} ret7;

static weft_poll ret7_poll(ret7 *r, weft_context *cx, void *out)
{
    (void)cx;
    memcpy(out, &r->v, sizeof(int));
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_STATIC(ret7, ret7_poll, NULL, int);

static atomic_int in_drop_other, in_drop_self, in_drop_spawn, in_drop_run, in_drop_done;
typedef struct dropper_bo {
    weft_runtime *self, *other;
} dropper_bo;

static weft_poll dropper_bo_poll(dropper_bo *d, weft_context *cx, void *out)
{
    (void)d;
    (void)cx;
    (void)out;
    return WEFT_PENDING;       /* lost waker on purpose: only shutdown ends it */
}

static void dropper_bo_drop(dropper_bo *d)
{
    int out = 0;

    atomic_store(&in_drop_other, weft_block_on(d->other, &ret7_future, &(ret7){ 41 }, &out));
    if (out != 41)
        atomic_store(&in_drop_other, -1000);
    atomic_store(&in_drop_self, weft_block_on(d->self, &ret7_future, &(ret7){ 1 }, NULL));
    atomic_store(&in_drop_spawn, weft_spawn_detached(d->self, &ret7_future, &(ret7){ 1 }));
    atomic_store(&in_drop_run, weft_runtime_run(d->self));
    atomic_store(&in_drop_done, 1);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(dropper_bo, dropper_bo_poll, dropper_bo_drop);

/* core.h: at shutdown, the tasks left are dropped on the thread calling
 * weft_runtime_shutdown(); "A drop may always spawn (it gets -ESHUTDOWN at
 * shutdown)". That thread is a plain thread: weft_block_on() of another
 * runtime works there (sched.h: "Thread: any but a worker"), of the runtime
 * being shut down it is -ESHUTDOWN. */
static void block_on_in_shutdown_drop(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = new_rt(flavor, workers);
    weft_runtime *other = new_rt(WEFT_MULTI_THREAD, 1);
    weft_join *j;

    atomic_store(&in_drop_done, 0);
    ASSERT_OK(weft_spawn(rt, &dropper_bo_future, &(dropper_bo){ rt, other }, &j));
    if (flavor == WEFT_CURRENT_THREAD)
        drive_a_while(rt);
    else
        sleep_ms(5);
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(1, atomic_load(&in_drop_done));
    ASSERT_EQ(0, atomic_load(&in_drop_other));
    ASSERT_EQ(-ESHUTDOWN, atomic_load(&in_drop_self));
    ASSERT_EQ(-ESHUTDOWN, atomic_load(&in_drop_spawn));
    ASSERT_EQ(-ESHUTDOWN, atomic_load(&in_drop_run));
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
    weft_join_drop(j);
    weft_runtime_free(rt);
    weft_runtime_free(other);
    ASSERT_EQ(0, harness_live());
}

TEST(block_on_another_runtime_from_a_shutdown_drop_multi_thread)
{
    block_on_in_shutdown_drop(WEFT_MULTI_THREAD, 2);
}

TEST(block_on_another_runtime_from_a_shutdown_drop_current_thread)
{
    block_on_in_shutdown_drop(WEFT_CURRENT_THREAD, 0);
}

/* ---- metrics: failed spawns are not counted ---------------------------------------- */
TEST(metrics_count_only_spawns_that_succeeded)
{
    weft_runtime *rt = new_rt(WEFT_MULTI_THREAD, 2);
    weft_metrics m = { .size = sizeof(m) };
    weft_join *j = NULL;
    int ok = 0, out = 0;

    for (size_t k = 1; k < 6; k++) {
        int r;

        harness_fail_alloc_at(1);
        r = weft_spawn(rt, &ret7_future, &(ret7){ 3 }, &j);
        harness_fail_alloc_at(0);
        if (r == 0) {
            ok++;
            ASSERT_OK(weft_join_wait(j, &out));
            weft_join_drop(j);
        } else {
            ASSERT_EQ(-ENOMEM, r);
        }
    }
    ASSERT_OK(weft_block_on(rt, &ret7_future, &(ret7){ 3 }, &out));
    ok++;
    ASSERT_EQ(-EINVAL, weft_spawn(rt, NULL, &(ret7){ 3 }, &j));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(ok, m.tasks_spawned);
    ASSERT_EQ(ok, m.tasks_completed);
    ASSERT_EQ(0, m.tasks_live);
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(-ESHUTDOWN, weft_spawn(rt, &ret7_future, &(ret7){ 3 }, &j));
    ASSERT_EQ(-ESHUTDOWN, weft_block_on(rt, &ret7_future, &(ret7){ 3 }, &out));
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(ok, m.tasks_spawned);
    ASSERT_EQ(ok, m.tasks_completed);
    ASSERT_EQ(0, m.tasks_live);
    weft_runtime_free(rt);
}

/* ---- joins across runtimes, either runtime freed first ----------------------------- */
typedef struct awaiter {
    weft_join *j;                 /* owned: dropped in the drop */
    int *result;
    atomic_int *polled;
} awaiter;

static atomic_int awaiter_drops;

static weft_poll awaiter_poll(awaiter *a, weft_context *cx, void *out)
{
    int r = 1;

    (void)out;
    atomic_fetch_add(a->polled, 1);
    if (weft_join_poll(a->j, cx, &r, NULL) == WEFT_PENDING)
        return WEFT_PENDING;
    *a->result = r;
    return WEFT_READY;
}

static void awaiter_drop(awaiter *a)
{
    weft_join_drop(a->j);
    atomic_fetch_add(&awaiter_drops, 1);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(awaiter, awaiter_poll, awaiter_drop);

/* A task of runtime B awaits a task of runtime A. A is freed first: the
 * awaited task is cancelled and B's task sees -ECANCELED. */
TEST(join_across_runtimes_awaited_runtime_freed_first)
{
    weft_runtime *a = new_rt(WEFT_MULTI_THREAD, 1), *b = new_rt(WEFT_MULTI_THREAD, 1);
    weft_join *ja, *jb;
    atomic_int polled = 0;
    int result = 1;

    atomic_store(&forever_drops, 0);
    atomic_store(&awaiter_drops, 0);
    ASSERT_OK(weft_spawn(a, &forever_future, &(forever){ 0 }, &ja));
    ASSERT_OK(weft_spawn(b, &awaiter_future,
                         &(awaiter){ .j = ja, .result = &result, .polled = &polled }, &jb));
    WAIT_AT_LEAST(&polled, 1, WATCHDOG_MS, "awaiter's first poll");
    weft_runtime_free(a);
    ASSERT_EQ(1, atomic_load(&forever_drops));
    ASSERT_OK(weft_join_wait(jb, NULL));
    ASSERT_EQ(-ECANCELED, result);
    weft_join_drop(jb);
    weft_runtime_free(b);
    ASSERT_EQ(1, atomic_load(&awaiter_drops));
    ASSERT_EQ(0, harness_live());
}

/* The awaiting runtime B is freed first: its task (parked on A's task's
 * join, its waker registered there) is dropped with the handle; A's task
 * then completes and finds no waker to use; nothing leaks. */
TEST(join_across_runtimes_awaiting_runtime_freed_first)
{
    weft_runtime *a = new_rt(WEFT_MULTI_THREAD, 1), *b = new_rt(WEFT_MULTI_THREAD, 1);
    weft_waker w = WEFT_WAKER_EMPTY;
    weft_join *ja;
    atomic_int polled = 0, apolled = 0;
    int result = 1;

    atomic_store(&forever_drops, 0);
    atomic_store(&awaiter_drops, 0);
    ASSERT_OK(weft_spawn(a, &forever_future, &(forever){ .slot = &w, .polled = &apolled },
                         &ja));
    WAIT_AT_LEAST(&apolled, 1, WATCHDOG_MS, "A's task first poll");
    ASSERT_OK(weft_spawn_detached(b, &awaiter_future,
                                  &(awaiter){ .j = ja, .result = &result, .polled = &polled }));
    WAIT_AT_LEAST(&polled, 1, WATCHDOG_MS, "awaiter's first poll");
    weft_runtime_free(b);
    ASSERT_EQ(1, atomic_load(&awaiter_drops));
    weft_waker_wake(&w);              /* A's task polled again, parks again */
    WAIT_AT_LEAST(&apolled, 2, WATCHDOG_MS, "A's task second poll");
    weft_runtime_free(a);
    ASSERT_EQ(1, atomic_load(&forever_drops));
    ASSERT_EQ(0, harness_live());
}

/* ---- blocking forms inside a drop run by shutdown on a plain thread ---------------- */
static atomic_int bf_chan, bf_sem, bf_mutex, bf_oneshot, bf_done;
typedef struct bf {
    weft_chan *ch;
    weft_sem *sem;
    weft_mutex *mu;
    weft_oneshot_rx *rx;
} bf;

static weft_poll bf_poll(bf *f, weft_context *cx, void *out)
{
    (void)f;
    (void)cx;
    (void)out;
    return WEFT_PENDING;
}

static void bf_drop(bf *f)
{
    int v = 0;

    atomic_store(&bf_chan, weft_chan_recv_wait(f->ch, &v) == 0 && v == 5 ? 0 : -1);
    atomic_store(&bf_sem, weft_sem_acquire_wait(f->sem, 1));
    atomic_store(&bf_mutex, weft_mutex_lock_wait(f->mu));
    atomic_store(&bf_oneshot, weft_oneshot_recv_wait(f->rx, &v));
    atomic_store(&bf_done, 1);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(bf, bf_poll, bf_drop);

/* chan.h/lock.h: the blocking forms refuse (-EDEADLK) only "on a thread that
 * runs weft tasks (a worker, or inside a current-thread runtime's
 * run/block_on)". The drops of weft_runtime_shutdown() run on the thread
 * calling it, a plain thread here: what is ready there is taken. */
static void blocking_forms_in_shutdown_drop(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = new_rt(flavor, workers);
    weft_oneshot_tx *tx;
    bf f = { 0 };
    int five = 5;

    atomic_store(&bf_done, 0);
    ASSERT_OK(weft_chan_new(&f.ch, sizeof(int), 4));
    ASSERT_OK(weft_sem_new(&f.sem, 1));
    ASSERT_OK(weft_mutex_new(&f.mu));
    ASSERT_OK(weft_oneshot_new(&tx, &f.rx, sizeof(int)));
    ASSERT_OK(weft_chan_try_send(f.ch, &five));
    ASSERT_OK(weft_oneshot_send(tx, &five));
    ASSERT_OK(weft_spawn_detached(rt, &bf_future, &f));
    if (flavor == WEFT_CURRENT_THREAD)
        drive_a_while(rt);
    else
        sleep_ms(2);
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(1, atomic_load(&bf_done));
    ASSERT_EQ(0, atomic_load(&bf_chan));
    ASSERT_EQ(0, atomic_load(&bf_sem));
    ASSERT_EQ(0, atomic_load(&bf_mutex));
    ASSERT_EQ(0, atomic_load(&bf_oneshot));
    weft_runtime_free(rt);
    ASSERT_OK(weft_mutex_unlock(f.mu));
    weft_mutex_free(f.mu);
    weft_sem_free(f.sem);
    weft_chan_drop(f.ch);
    weft_oneshot_rx_drop(f.rx);
    ASSERT_EQ(0, harness_live());
}

TEST(blocking_forms_work_in_a_shutdown_drop_multi_thread)
{
    blocking_forms_in_shutdown_drop(WEFT_MULTI_THREAD, 2);
}

TEST(blocking_forms_work_in_a_shutdown_drop_current_thread)
{
    blocking_forms_in_shutdown_drop(WEFT_CURRENT_THREAD, 0);
}

/* ---- the most workers ------------------------------------------------------------- */
TEST(runtime_with_the_most_workers)
{
    weft_runtime *rt;
    weft_metrics m = { .size = sizeof(m) };
    int r = weft_runtime_new(&rt, &(weft_runtime_options){ .workers = WEFT_MAX_WORKERS });
    int out = 0;

    if (r == -EAGAIN)
        return;               /* the documented answer where threads run out */
    ASSERT_OK(r);
    ASSERT_EQ(WEFT_MAX_WORKERS, weft_runtime_workers(rt));
    for (int i = 0; i < 2000; i++)
        ASSERT_OK(weft_spawn_detached(rt, &ret7_future, &(ret7){ i }));
    ASSERT_OK(weft_block_on(rt, &ret7_future, &(ret7){ 9 }, &out));
    ASSERT_EQ(9, out);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(WEFT_MAX_WORKERS, m.workers);
    ASSERT_EQ(2001, m.tasks_completed);
    ASSERT_OK(weft_trace_start(rt, 16));
    ASSERT_OK(weft_trace_stop(rt));
    weft_runtime_free(rt);
    ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &(weft_runtime_options){
                                                 .workers = WEFT_MAX_WORKERS + 1 }));
}

/* ---- a task's own join handle, used from its own poll and drop --------------------- */
typedef struct selfish {
    weft_join **self;             /* mode 2: the task's own handle (set by the spawn) */
    _Atomic(weft_join *) *aself;  /* modes 0, 1: the handle, published after the spawn */
    int mode;                     /* 0: abort in poll, PENDING; 1: abort, READY;
                                   * 2: park; the drop waits on itself */
    atomic_int *drops, *polls;
    int *drop_wait;
    weft_waker *keep;
} selfish;

static weft_poll selfish_poll(selfish *s, weft_context *cx, void *out)
{
    int v = 77;
    weft_join *self;

    atomic_fetch_add(s->polls, 1);
    if (s->mode == 2) {
        if (s->keep->vtable == NULL)
            *s->keep = weft_waker_clone(weft_context_waker(cx));
        return WEFT_PENDING;
    }
    while ((self = atomic_load(s->aself)) == NULL)
        sched_yield();
    weft_join_abort(self);
    weft_join_abort(self);
    if (s->mode == 0) {
        weft_waker_wake_by_ref(weft_context_waker(cx));  /* woken too: still cancelled */
        return WEFT_PENDING;
    }
    memcpy(out, &v, sizeof(int));
    return WEFT_READY;
}

static void selfish_drop(selfish *s)
{
    if (s->mode == 2)
        *s->drop_wait = weft_join_wait(*s->self, NULL);
    atomic_fetch_add(s->drops, 1);
}
WEFT_DEFINE_FUTURE_STATIC(selfish, selfish_poll, selfish_drop, int);

/* task.h: "a task aborted during a poll is cancelled when that poll returns
 * PENDING; if it returns READY the task completes normally" - also when the
 * abort comes from the poll itself, through the task's own handle. */
static void self_abort(weft_flavor flavor, unsigned workers)
{
    for (int mode = 0; mode < 2; mode++) {
        weft_runtime *rt = new_rt(flavor, workers);
        static _Atomic(weft_join *) jh;
        atomic_int drops = 0, polls = 0;
        weft_join *j;
        int out = 0, r;

        atomic_store(&jh, NULL);
        ASSERT_OK(weft_spawn(rt, &selfish_future,
                             &(selfish){ .aself = &jh, .mode = mode,
                                         .drops = &drops, .polls = &polls }, &j));
        atomic_store(&jh, j);
        if (flavor == WEFT_CURRENT_THREAD)
            ASSERT_OK(weft_runtime_run(rt));
        r = weft_join_wait(j, &out);
        if (mode == 0) {
            ASSERT_EQ(-ECANCELED, r);
        } else {
            ASSERT_EQ(0, r);
            ASSERT_EQ(77, out);
        }
        ASSERT_EQ(1, atomic_load(&drops));
        ASSERT_EQ(1, atomic_load(&polls));
        weft_join_drop(j);
        weft_runtime_free(rt);
        ASSERT_EQ(0, harness_live());
    }
}

TEST(task_aborting_itself_in_its_poll_multi_thread)
{
    self_abort(WEFT_MULTI_THREAD, 2);
}

TEST(task_aborting_itself_in_its_poll_current_thread)
{
    self_abort(WEFT_CURRENT_THREAD, 0);
}

/* task.h, weft_join_wait() in a drop run by shutdown: "-EDEADLK only for a
 * cycle, a task whose own drop is waiting further up this thread's stack"
 * - the shortest cycle is a drop waiting for its own task. */
static void self_join_in_drop(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = new_rt(flavor, workers);
    static weft_join *jh;
    atomic_int drops = 0, polls = 0;
    weft_waker keep = WEFT_WAKER_EMPTY;
    int drop_wait = 1;

    ASSERT_OK(weft_spawn(rt, &selfish_future,
                         &(selfish){ .self = &jh, .mode = 2, .drops = &drops, .polls = &polls,
                                     .drop_wait = &drop_wait, .keep = &keep }, &jh));
    if (flavor == WEFT_CURRENT_THREAD)
        drive_a_while(rt);
    WAIT_AT_LEAST(&polls, 1, WATCHDOG_MS, "first poll");
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(1, atomic_load(&drops));
    ASSERT_EQ(-EDEADLK, drop_wait);
    ASSERT_EQ(-ECANCELED, weft_join_wait(jh, NULL));
    weft_join_drop(jh);
    weft_waker_drop(&keep);
    weft_runtime_free(rt);
    ASSERT_EQ(0, harness_live());
}

TEST(drop_joining_its_own_task_at_shutdown_is_edeadlk_multi_thread)
{
    self_join_in_drop(WEFT_MULTI_THREAD, 2);
}

TEST(drop_joining_its_own_task_at_shutdown_is_edeadlk_current_thread)
{
    self_join_in_drop(WEFT_CURRENT_THREAD, 0);
}

/* A drop that wakes (by value) the waker it cloned in its READY poll: the
 * task completes once, is never polled again, and nothing leaks. */
typedef struct waking_drop {
    weft_waker w;
    atomic_int *polls;
} waking_drop;

static weft_poll waking_drop_poll(waking_drop *f, weft_context *cx, void *out)
{
    (void)out;
    atomic_fetch_add(f->polls, 1);
    f->w = weft_waker_clone(weft_context_waker(cx));
    return WEFT_READY;
}

static void waking_drop_drop(waking_drop *f)
{
    weft_waker c = weft_waker_clone(&f->w);

    weft_waker_wake_by_ref(&f->w);
    weft_waker_wake(&f->w);
    weft_waker_wake(&c);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(waking_drop, waking_drop_poll, waking_drop_drop);

static void drop_wakes_its_task(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = new_rt(flavor, workers);
    atomic_int polls = 0;

    for (int i = 0; i < 500; i++) {
        weft_join *j;

        ASSERT_OK(weft_spawn(rt, &waking_drop_future, &(waking_drop){ .polls = &polls }, &j));
        if (i % 2 == 0)
            weft_join_drop(j);
        else {
            if (flavor == WEFT_CURRENT_THREAD)
                ASSERT_OK(weft_runtime_run(rt));
            ASSERT_OK(weft_join_wait(j, NULL));
            weft_join_drop(j);
        }
    }
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(500, atomic_load(&polls));
    weft_runtime_free(rt);
    ASSERT_EQ(0, harness_live());
}

TEST(drop_waking_its_completed_task_multi_thread)
{
    drop_wakes_its_task(WEFT_MULTI_THREAD, 2);
}

TEST(drop_waking_its_completed_task_current_thread)
{
    drop_wakes_its_task(WEFT_CURRENT_THREAD, 0);
}

/* ---- threads inside run, block_on and join_wait while another frees ---------------- */
typedef struct inside {
    weft_runtime *rt;
    weft_join *j;
    int kind;
    int result;
    atomic_int started;
} inside;

static void *inside_main(void *arg)
{
    inside *in = arg;

    atomic_store(&in->started, 1);
    switch (in->kind) {
    case 0:
        in->result = weft_runtime_run(in->rt);
        break;
    case 1:
        in->result = weft_block_on(in->rt, &forever_future, &(forever){ 0 }, NULL);
        break;
    case 2:
        in->result = weft_join_wait(in->j, NULL);
        break;
    }
    return NULL;
}

/* sched.h: weft_runtime_run() returns -ESHUTDOWN when the runtime "is or
 * was shut down: unfinished tasks were cancelled"; weft_block_on() -ECANCELED
 * "when the runtime was shut down before the future completed"; task.h:
 * weft_join_wait() -ECANCELED. Three plain threads inside those calls on a
 * multi-thread runtime when a fourth shuts it down: each returns its
 * answer, and every task is dropped once. */
static void inside_calls(bool free_it)
{
    weft_runtime *rt = new_rt(WEFT_MULTI_THREAD, 2);
    inside in[3];
    pthread_t th[3];
    weft_join *j;

    atomic_store(&forever_drops, 0);
    ASSERT_OK(weft_spawn(rt, &forever_future, &(forever){ 0 }, &j));
    for (int k = 0; k < 3; k++) {
        in[k] = (inside){ .rt = rt, .j = j, .kind = k, .result = 1 };
        START_THREAD(&th[k], inside_main, &in[k]);
    }
    for (int k = 0; k < 3; k++)
        WAIT_AT_LEAST(&in[k].started, 1, WATCHDOG_MS, "thread start");
    sleep_ms(20);           /* let them block (not needed for the verdict) */
    if (free_it)
        weft_runtime_free(rt);
    else
        ASSERT_OK(weft_runtime_shutdown(rt));
    for (int k = 0; k < 3; k++)
        JOIN_THREAD_WITHIN(th[k], WATCHDOG_MS, "blocked call");
    ASSERT_EQ(-ESHUTDOWN, in[0].result);
    ASSERT_EQ(-ECANCELED, in[1].result);
    ASSERT_EQ(-ECANCELED, in[2].result);
    ASSERT_EQ(2, atomic_load(&forever_drops));
    weft_join_drop(j);
    if (!free_it)
        weft_runtime_free(rt);
    ASSERT_EQ(0, harness_live());
}

TEST(run_block_on_and_join_wait_return_when_another_thread_shuts_down)
{
    inside_calls(false);
}

TEST(run_block_on_and_join_wait_return_when_another_thread_frees)
{
    inside_calls(true);
}

/* ---- a drop run by shutdown that shuts down or frees its own runtime --------------- */
static atomic_int self_shut_rc, self_shut_done;
typedef struct self_shut {
    weft_runtime *rt;
    bool free_it;
} self_shut;

static weft_poll self_shut_poll(self_shut *s, weft_context *cx, void *out)
{
    (void)s;
    (void)cx;
    (void)out;
    return WEFT_PENDING;
}

static void self_shut_drop(self_shut *s)
{
    if (s->free_it) {
        weft_runtime_free(s->rt);            /* must do nothing here */
        atomic_store(&self_shut_rc, 1);
    } else {
        atomic_store(&self_shut_rc, weft_runtime_shutdown(s->rt));
    }
    atomic_store(&self_shut_done, 1);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(self_shut, self_shut_poll, self_shut_drop);

typedef struct shutter {
    weft_runtime *rt;
    bool free_it;
    atomic_int done;
} shutter;

static void *shutter_main(void *arg)
{
    shutter *s = arg;

    if (s->free_it)
        weft_runtime_free(s->rt);
    else
        ASSERT_OK(weft_runtime_shutdown(s->rt));
    atomic_store(&s->done, 1);
    return NULL;
}

/* sched.h: shutdown is idempotent and may be called from any thread but
 * the runtime's own workers; free does nothing where shutdown says -EINVAL.
 * A drop that the shutdown runs, on the shutting thread, calling shutdown
 * or free of that same runtime (a supervisor task owning its runtime) would
 * wait for the shutdown it is part of, for ever: it must return at once
 * (-EINVAL: it would wait for itself), and the outer shutdown finish. */
static void drop_shuts_own_runtime(weft_flavor flavor, unsigned workers, bool free_it)
{
    weft_runtime *rt = new_rt(flavor, workers);
    shutter sh = { .rt = rt, .free_it = free_it };
    pthread_t th;

    atomic_store(&self_shut_done, 0);
    atomic_store(&self_shut_rc, 99);
    ASSERT_OK(weft_spawn_detached(rt, &self_shut_future, &(self_shut){ rt, free_it }));
    if (flavor == WEFT_CURRENT_THREAD)
        drive_a_while(rt);
    START_THREAD(&th, shutter_main, &sh);
    WAIT_AT_LEAST(&sh.done, 1, WATCHDOG_MS, "the shutdown around a drop that shuts down");
    JOIN_THREAD(th);
    ASSERT_EQ(1, atomic_load(&self_shut_done));
    ASSERT_EQ(free_it ? 1 : -EINVAL, atomic_load(&self_shut_rc));
    if (!free_it)
        weft_runtime_free(rt);
    ASSERT_EQ(0, harness_live());
}

TEST(drop_shutting_down_its_own_runtime_returns_multi_thread)
{
    drop_shuts_own_runtime(WEFT_MULTI_THREAD, 2, false);
}

TEST(drop_shutting_down_its_own_runtime_returns_current_thread)
{
    drop_shuts_own_runtime(WEFT_CURRENT_THREAD, 0, false);
}

TEST(drop_freeing_its_own_runtime_does_nothing_multi_thread)
{
    drop_shuts_own_runtime(WEFT_MULTI_THREAD, 2, true);
}

TEST(drop_freeing_its_own_runtime_does_nothing_current_thread)
{
    drop_shuts_own_runtime(WEFT_CURRENT_THREAD, 0, true);
}

/* ---- nested shutdowns: a drop of runtime B (freed by a drop of runtime A)
 *      waits for a task of A that A's shutdown, further up the same
 *      thread, has not cancelled yet ------------------------------------------------- */
static atomic_int nested_wait_rc, nested_group_rc, nested_done;
typedef struct b_waiter {
    weft_join *ja;                /* a task of A (owned) */
    weft_group *ga;               /* a group of A (owned) */
} b_waiter;

static weft_poll b_waiter_poll(b_waiter *b, weft_context *cx, void *out)
{
    (void)b;
    (void)cx;
    (void)out;
    return WEFT_PENDING;
}

static void b_waiter_drop(b_waiter *b)
{
    atomic_store(&nested_wait_rc, weft_join_wait(b->ja, NULL));
    weft_join_drop(b->ja);
    atomic_store(&nested_group_rc, weft_group_free(b->ga));
    atomic_store(&nested_done, 1);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(b_waiter, b_waiter_poll, b_waiter_drop);

typedef struct a_freer {
    weft_runtime *b;
} a_freer;

static weft_poll a_freer_poll(a_freer *a, weft_context *cx, void *out)
{
    (void)a;
    (void)cx;
    (void)out;
    return WEFT_PENDING;
}

static void a_freer_drop(a_freer *a)
{
    weft_runtime_free(a->b);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(a_freer, a_freer_poll, a_freer_drop);

/* task.h, weft_join_wait(): -EDEADLK "when nothing would ever complete the
 * task while this waits"; in a drop run by a shutdown a task the shutdown
 * has not cancelled yet is cancelled there and then. Here the waiting drop
 * belongs to runtime B, freed by a drop of runtime A, and waits for a task
 * (and a group) of A that only A's shutdown, further up this thread, will
 * cancel: it must not sleep for ever. Both spawn orders, both flavours. */
static void nested_shutdown_wait(weft_flavor flavor, unsigned workers, bool freer_first)
{
    weft_runtime *a = new_rt(flavor, workers), *b = new_rt(WEFT_MULTI_THREAD, 1);
    weft_join *ja;
    weft_group *ga;
    shutter sh = { .rt = a, .free_it = true };
    pthread_t th;

    atomic_store(&nested_done, 0);
    atomic_store(&forever_drops, 0);
    ASSERT_OK(weft_group_new(&ga, a, WEFT_GROUP_WAIT_ALL));
    if (freer_first)
        ASSERT_OK(weft_spawn_detached(a, &a_freer_future, &(a_freer){ b }));
    ASSERT_OK(weft_spawn(a, &forever_future, &(forever){ 0 }, &ja));
    ASSERT_OK(weft_group_spawn(ga, &forever_future, &(forever){ 0 }));
    if (!freer_first)
        ASSERT_OK(weft_spawn_detached(a, &a_freer_future, &(a_freer){ b }));
    ASSERT_OK(weft_spawn_detached(b, &b_waiter_future, &(b_waiter){ ja, ga }));
    if (flavor == WEFT_CURRENT_THREAD)
        drive_a_while(a);
    START_THREAD(&th, shutter_main, &sh);
    WAIT_AT_LEAST(&sh.done, 1, WATCHDOG_MS, "nested shutdowns");
    JOIN_THREAD(th);
    ASSERT_EQ(1, atomic_load(&nested_done));
    ASSERT_EQ(-ECANCELED, atomic_load(&nested_wait_rc));
    ASSERT_EQ(0, atomic_load(&nested_group_rc));
    ASSERT_EQ(2, atomic_load(&forever_drops));
    ASSERT_EQ(0, harness_live());
}

TEST(nested_shutdown_drop_waits_for_the_outer_runtime_multi_thread)
{
    nested_shutdown_wait(WEFT_MULTI_THREAD, 2, true);
    nested_shutdown_wait(WEFT_MULTI_THREAD, 2, false);
}

TEST(nested_shutdown_drop_waits_for_the_outer_runtime_current_thread)
{
    nested_shutdown_wait(WEFT_CURRENT_THREAD, 0, true);
    nested_shutdown_wait(WEFT_CURRENT_THREAD, 0, false);
}

/* ---- weft_runtime_run() returning -ESHUTDOWN: the tasks were cancelled ------------- */
static atomic_int slow_drop_done;
typedef struct slow_drop {
    int unused;
} slow_drop;

static weft_poll slow_drop_poll(slow_drop *s, weft_context *cx, void *out)
{
    (void)s;
    (void)cx;
    (void)out;
    return WEFT_PENDING;
}

static void slow_drop_drop(slow_drop *s)
{
    (void)s;
    sleep_ms(30);                       /* widens the window; not a verdict */
    atomic_store(&slow_drop_done, 1);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(slow_drop, slow_drop_poll, slow_drop_drop);

typedef struct runner {
    weft_runtime *rt;
    int result, drop_done_at_return;
    atomic_int started;
} runner;

static void *runner_main(void *arg)
{
    runner *r = arg;

    atomic_store(&r->started, 1);
    r->result = weft_runtime_run(r->rt);
    r->drop_done_at_return = atomic_load(&slow_drop_done);
    return NULL;
}

/* sched.h, weft_runtime_run(): "-ESHUTDOWN (the runtime is or was shut
 * down: unfinished tasks were cancelled)". A run in progress on one thread
 * when another shuts the runtime down returned as soon as the shutdown
 * began (the workers told to leave, the driver let go), before the
 * cancelled tasks' drops had run; it now returns once they have. */
static void run_returns_after_the_drops(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt = new_rt(flavor, workers);
    runner r = { .rt = rt, .result = 1 };
    shutter sh = { .rt = rt };
    pthread_t th, ts;

    atomic_store(&slow_drop_done, 0);
    ASSERT_OK(weft_spawn_detached(rt, &slow_drop_future, &(slow_drop){ 0 }));
    START_THREAD(&th, runner_main, &r);
    WAIT_AT_LEAST(&r.started, 1, WATCHDOG_MS, "run started");
    sleep_ms(5);                        /* run is waiting (not needed for the verdict) */
    START_THREAD(&ts, shutter_main, &sh);
    JOIN_THREAD_WITHIN(th, WATCHDOG_MS, "weft_runtime_run()");
    ASSERT_EQ(-ESHUTDOWN, r.result);
    ASSERT_EQ(1, r.drop_done_at_return);
    JOIN_THREAD_WITHIN(ts, WATCHDOG_MS, "weft_runtime_shutdown()");
    weft_runtime_free(rt);
    ASSERT_EQ(0, harness_live());
}

TEST(run_returns_eshutdown_after_the_cancelled_drops_multi_thread)
{
    run_returns_after_the_drops(WEFT_MULTI_THREAD, 2);
}

TEST(run_returns_eshutdown_after_the_cancelled_drops_current_thread)
{
    run_returns_after_the_drops(WEFT_CURRENT_THREAD, 0);
}
