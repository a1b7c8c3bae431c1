/* SPDX-License-Identifier: MIT */
/* Join handles: wait, poll, try; abort and detach at every point of a
 * task's life. Every case checks that the future's drop runs exactly once,
 * on a worker thread, never during a poll, and what the join reports. */
#define _GNU_SOURCE
#include <string.h>

#include "task_test.h"

/* ======================================================================
 * The probe: a future whose behaviour is picked by `mode`, and counters
 * that the drop and the poll keep.
 * ====================================================================== */
enum probe_mode {
    P_READY,         /* READY at once */
    P_GATE,          /* PENDING until p_open, woken through p_ext */
    P_SPIN,          /* spins in the poll until p_go: 1 READY, 2 PENDING,
                      * 3 wake itself and PENDING; later polls: as P_GATE */
};

static atomic_int p_polls;           /* polls begun */
static atomic_int p_drops;
static atomic_int p_inside;          /* a poll is running */
static atomic_int p_overlap;         /* a poll began while one was running */
static atomic_int p_drop_off_worker; /* drop ran where weft_worker_name() == NULL */
static atomic_int p_drop_in_poll;    /* drop ran during a poll */
static atomic_int p_drop_twice;
static atomic_int p_open;            /* P_GATE: READY from now on */
static atomic_int p_entered;         /* P_SPIN: the poll is spinning */
static atomic_int p_go;              /* P_SPIN: what to do */
static atomic_int p_ext_set;
static weft_waker p_ext;             /* a clone for the test; it drops it */

typedef struct probe {
    int mode;
    int value;
    int dropped;                     /* this instance's drop ran */
    weft_waker kept;                 /* the future's own clone, dropped by drop */
} probe;

static void probe_reset(void)
{
    atomic_store(&p_polls, 0);
    atomic_store(&p_drops, 0);
    atomic_store(&p_inside, 0);
    atomic_store(&p_overlap, 0);
    atomic_store(&p_drop_off_worker, 0);
    atomic_store(&p_drop_in_poll, 0);
    atomic_store(&p_drop_twice, 0);
    atomic_store(&p_open, 0);
    atomic_store(&p_entered, 0);
    atomic_store(&p_go, 0);
    atomic_store(&p_ext_set, 0);
    p_ext = WEFT_WAKER_EMPTY;
}

static weft_poll probe_poll_inner(probe *f, weft_context *cx, int *out)
{
    int go;

    if (f->kept.vtable == NULL)
        f->kept = weft_waker_clone(cx->waker);
    if (!atomic_load(&p_ext_set)) {
        p_ext = weft_waker_clone(cx->waker);
        atomic_store(&p_ext_set, 1);             /* seq_cst: publishes p_ext */
    }
    switch (f->mode) {
    case P_READY:
        *out = f->value;
        return WEFT_READY;
    case P_SPIN:
        f->mode = P_GATE;                        /* once */
        atomic_store(&p_entered, 1);
        TT_WAIT_UNTIL(atomic_load(&p_go) != 0);
        go = atomic_load(&p_go);
        if (go == 1) {
            *out = f->value;
            return WEFT_READY;
        }
        if (go == 3)
            weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    default:
        if (atomic_load(&p_open)) {
            *out = f->value;
            return WEFT_READY;
        }
        return WEFT_PENDING;
    }
}

static weft_poll probe_poll(probe *f, weft_context *cx, void *out)
{
    weft_poll r;

    if (atomic_exchange(&p_inside, 1))
        atomic_fetch_add(&p_overlap, 1);
    atomic_fetch_add(&p_polls, 1);
    r = probe_poll_inner(f, cx, out);
    atomic_store(&p_inside, 0);
    return r;
}

static void probe_drop(probe *f)
{
    if (weft_worker_name() == NULL)
        atomic_fetch_add(&p_drop_off_worker, 1);
    if (atomic_load(&p_inside))
        atomic_fetch_add(&p_drop_in_poll, 1);
    if (f->dropped++)
        atomic_fetch_add(&p_drop_twice, 1);
    weft_waker_drop(&f->kept);
    atomic_fetch_add(&p_drops, 1);
}

WEFT_DEFINE_FUTURE(probe, probe_poll, probe_drop, int);

#define PROBE(m) (&(probe){ .mode = (m), .value = 42 })

/* The drop ran exactly once, on a worker, outside any poll. */
#define ASSERT_DROPPED_ONCE()                                                 \
    do {                                                                      \
        ASSERT_EQ(1, atomic_load(&p_drops));                                  \
        ASSERT_EQ(0, atomic_load(&p_drop_twice));                             \
        ASSERT_EQ(0, atomic_load(&p_drop_off_worker));                        \
        ASSERT_EQ(0, atomic_load(&p_drop_in_poll));                           \
        ASSERT_EQ(0, atomic_load(&p_overlap));                                \
    } while (0)

/* Open the gate and wake the probe through the test's clone. */
static void probe_release(void)
{
    atomic_store(&p_open, 1);
    TT_WAIT_UNTIL(atomic_load(&p_ext_set));
    weft_waker_wake_by_ref(&p_ext);
}

/* ======================================================================
 * Join: wait, poll, try.
 * ====================================================================== */
struct joiner {
    weft_join *j;
    int err;
    int out;
};

static void *joiner_main(void *p)
{
    struct joiner *jn = p;

    jn->err = weft_join_wait(jn->j, &jn->out);
    return NULL;
}

TEST(join_wait_from_plain_thread)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    struct joiner jn = { NULL, -1, 0 };
    pthread_t th;
    int out = 0;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_GATE), &jn.j));
    th = tt_thread_start(joiner_main, &jn);      /* not the spawning thread */
    TT_WAIT_UNTIL(atomic_load(&p_polls) == 1);
    probe_release();
    tt_thread_join(th);
    ASSERT_OK(jn.err);
    ASSERT_EQ(42, jn.out);
    ASSERT_OK(weft_join_wait(jn.j, &out));       /* again: same answer */
    ASSERT_EQ(42, out);
    ASSERT(weft_join_is_complete(jn.j));
    ASSERT_OK(weft_join_wait(jn.j, NULL));
    ASSERT_DROPPED_ONCE();
    weft_join_drop(jn.j);
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

/* Current-thread: one thread drives, another blocks in weft_join_wait(). */
/* A current-thread runtime's tasks run only while a thread drives it (a
 * join_wait with no driver is -EDEADLK: tests/sched/current_join.c): the
 * joiner waits once this thread is inside run(), the gate opens a little
 * later, from a third thread. */
static void *joiner_when_driven_main(void *p)
{
    TT_WAIT_UNTIL(atomic_load(&p_polls) >= 1);
    return joiner_main(p);
}

static void *release_later_main(void *p)
{
    struct timespec ts = { 0, 20 * 1000 * 1000 };   /* 20 ms: likely blocked */

    (void)p;
    TT_WAIT_UNTIL(atomic_load(&p_polls) >= 1);
    nanosleep(&ts, NULL);
    probe_release();
    return NULL;
}

TEST(join_wait_from_plain_thread_current_thread)
{
    weft_runtime *rt = tt_runtime(WEFT_CURRENT_THREAD, 0);
    struct joiner jn = { NULL, -1, 0 };
    pthread_t th, rel;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_GATE), &jn.j));
    th = tt_thread_start(joiner_when_driven_main, &jn);
    rel = tt_thread_start(release_later_main, NULL);
    ASSERT_OK(weft_runtime_run(rt));
    tt_thread_join(rel);
    tt_thread_join(th);
    ASSERT_OK(jn.err);
    ASSERT_EQ(42, jn.out);
    ASSERT_DROPPED_ONCE();
    weft_join_drop(jn.j);
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

TEST(join_try_eagain_then_output)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j;
    int out = -1;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_GATE), &j));
    TT_WAIT_UNTIL(atomic_load(&p_polls) == 1);
    ASSERT_EQ(-EAGAIN, weft_join_try(j, &out));
    ASSERT_EQ(-1, out);                          /* untouched */
    ASSERT_EQ(-EAGAIN, weft_join_try(j, NULL));
    ASSERT(!weft_join_is_complete(j));
    ASSERT_EQ(0, atomic_load(&p_drops));
    probe_release();
    TT_WAIT_UNTIL(weft_join_is_complete(j));
    ASSERT_OK(weft_join_try(j, &out));
    ASSERT_EQ(42, out);
    ASSERT_OK(weft_join_try(j, NULL));
    ASSERT_DROPPED_ONCE();
    weft_join_drop(j);
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

/* Awaits a join handle from inside a task; polls it once more after READY. */
typedef struct awaiter {
    weft_async co;
    weft_join *j;                    /* owned: dropped by awaiter_drop */
    int spawn_inside;                /* spawn the probe from the worker */
    int result, value;
} awaiter;

static atomic_int aw_polls;
static atomic_int aw_drops;
static atomic_int aw_again_bad;      /* a second join_poll disagreed */

static weft_poll awaiter_poll(awaiter *a, weft_context *cx, void *out)
{
    int r2 = 1, v2 = -1;

    atomic_fetch_add(&aw_polls, 1);
    WEFT_BEGIN(&a->co);
    if (a->spawn_inside)
        ASSERT_OK(weft_spawn(weft_runtime_current(), &probe_future, PROBE(P_GATE),
                             &a->j));
    WEFT_AWAIT(&a->co, weft_join_poll(a->j, cx, &a->result, &a->value));
    if (weft_join_poll(a->j, cx, &r2, &v2) != WEFT_READY || r2 != a->result ||
        (r2 == 0 && v2 != a->value))
        atomic_fetch_add(&aw_again_bad, 1);
    *(int *)out = a->result == 0 ? a->value : a->result;
    WEFT_END(&a->co);
}

static void awaiter_drop(awaiter *a)
{
    weft_join_drop(a->j);
    atomic_fetch_add(&aw_drops, 1);
}

WEFT_DEFINE_FUTURE(awaiter, awaiter_poll, awaiter_drop, int);

static void aw_reset(void)
{
    atomic_store(&aw_polls, 0);
    atomic_store(&aw_drops, 0);
    atomic_store(&aw_again_bad, 0);
}

TEST(join_poll_from_another_task)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *jp, *ja;
    int out = 0;

    probe_reset();
    aw_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_GATE), &jp));
    ASSERT_OK(weft_spawn(rt, &awaiter_future, &(awaiter){ .j = jp }, &ja));
    TT_WAIT_UNTIL(atomic_load(&aw_polls) >= 1 && atomic_load(&p_polls) >= 1);
    ASSERT_EQ(-EAGAIN, weft_join_try(ja, NULL));
    probe_release();                             /* its completion wakes the awaiter */
    ASSERT_OK(weft_join_wait(ja, &out));
    ASSERT_EQ(42, out);
    ASSERT_EQ(0, atomic_load(&aw_again_bad));
    ASSERT_EQ(1, atomic_load(&aw_drops));
    ASSERT_DROPPED_ONCE();
    weft_join_drop(ja);
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

TEST(join_poll_of_task_spawned_by_a_task)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 3);
    weft_join *ja;
    int out = 0;

    probe_reset();
    aw_reset();
    ASSERT_OK(weft_spawn(rt, &awaiter_future, &(awaiter){ .spawn_inside = 1 }, &ja));
    TT_WAIT_UNTIL(atomic_load(&p_polls) >= 1);
    probe_release();
    ASSERT_OK(weft_join_wait(ja, &out));
    ASSERT_EQ(42, out);
    ASSERT_EQ(0, atomic_load(&aw_again_bad));
    ASSERT_DROPPED_ONCE();
    weft_join_drop(ja);
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

/* Current-thread: the awaiter and the probe share the one driving thread. */
TEST(join_poll_from_another_task_current_thread)
{
    weft_runtime *rt = tt_runtime(WEFT_CURRENT_THREAD, 0);
    int out = 0;

    probe_reset();
    aw_reset();
    atomic_store(&p_open, 1);
    ASSERT_OK(weft_block_on(rt, &awaiter_future, &(awaiter){ .spawn_inside = 1 }, &out));
    ASSERT_EQ(42, out);
    ASSERT_EQ(0, atomic_load(&aw_again_bad));
    ASSERT_DROPPED_ONCE();
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

/* ======================================================================
 * Abort at every point of a task's life.
 * ====================================================================== */

/* Before the first poll: a current-thread runtime not driven yet. */
TEST(abort_before_first_poll_current_thread)
{
    weft_runtime *rt = tt_runtime(WEFT_CURRENT_THREAD, 0);
    weft_join *j;
    int out = -1;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_READY), &j));
    weft_join_abort(j);
    weft_join_abort(j);                          /* twice == once */
    ASSERT_EQ(0, atomic_load(&p_drops));         /* drop waits for a worker */
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&p_polls));         /* never polled */
    ASSERT_DROPPED_ONCE();
    ASSERT(weft_join_is_complete(j));
    ASSERT_EQ(-ECANCELED, weft_join_try(j, &out));
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &out));
    ASSERT_EQ(-1, out);                          /* untouched */
    weft_join_abort(j);                          /* after completion: nothing */
    ASSERT_EQ(-ECANCELED, weft_join_try(j, NULL));
    weft_join_drop(j);
    weft_runtime_free(rt);
    ASSERT_EQ(1, atomic_load(&p_drops));
}

/* Before the first poll: a multi-thread task held back behind a blocker. */
TEST(abort_before_first_poll_multi_thread)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 1);
    weft_join *j;

    probe_reset();
    tt_block_worker(rt);
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_READY), &j));
    weft_join_abort(j);
    weft_join_abort(j);
    ASSERT(!weft_join_is_complete(j));
    tt_release_worker();
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
    ASSERT_EQ(0, atomic_load(&p_polls));
    ASSERT_DROPPED_ONCE();
    weft_join_drop(j);
    weft_runtime_free(rt);
    ASSERT_EQ(1, atomic_load(&p_drops));
}

/* While pending (idle, waiting for a wake that never comes). */
TEST(abort_while_pending)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j;
    int out = -1;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_GATE), &j));
    TT_WAIT_UNTIL(atomic_load(&p_polls) == 1 && atomic_load(&p_ext_set));
    weft_join_abort(j);
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &out));
    ASSERT_EQ(-1, out);
    ASSERT_DROPPED_ONCE();
    probe_release();                             /* a wake after: no-op */
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(1, atomic_load(&p_polls));
    ASSERT_EQ(-ECANCELED, weft_join_try(j, NULL));
    weft_join_drop(j);
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
    ASSERT_EQ(1, atomic_load(&p_drops));
}

/* While pending, woken and queued again but not yet polled. */
TEST(abort_while_queued)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 1);
    weft_join *j;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_GATE), &j));
    TT_WAIT_UNTIL(atomic_load(&p_ext_set));
    tt_block_worker(rt);                         /* after the first poll */
    atomic_store(&p_open, 1);
    weft_waker_wake_by_ref(&p_ext);              /* queued behind the blocker */
    weft_join_abort(j);
    tt_release_worker();
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
    ASSERT_EQ(1, atomic_load(&p_polls));         /* the queued poll never ran */
    ASSERT_DROPPED_ONCE();
    weft_join_drop(j);
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

/* While running: abort lands during the poll, which then returns `go`. */
static void abort_while_running(int go, int expect_err)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j;
    int out = -1;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_SPIN), &j));
    TT_WAIT_UNTIL(atomic_load(&p_entered));
    weft_join_abort(j);
    weft_join_abort(j);
    ASSERT(!weft_join_is_complete(j));
    ASSERT_EQ(0, atomic_load(&p_drops));         /* not during the poll */
    atomic_store(&p_go, go);
    ASSERT_EQ(expect_err, weft_join_wait(j, &out));
    ASSERT_EQ(expect_err == 0 ? 42 : -1, out);
    ASSERT_EQ(1, atomic_load(&p_polls));         /* not polled again */
    ASSERT_DROPPED_ONCE();
    weft_join_abort(j);
    ASSERT_EQ(expect_err, weft_join_try(j, NULL));
    weft_join_drop(j);
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
    ASSERT_EQ(1, atomic_load(&p_drops));
}

TEST(abort_while_running_poll_returns_ready)
{
    abort_while_running(1, 0);                   /* completes normally */
}

TEST(abort_while_running_poll_returns_pending)
{
    abort_while_running(2, -ECANCELED);
}

TEST(abort_while_running_poll_wakes_itself)
{
    abort_while_running(3, -ECANCELED);
}

TEST(abort_after_completion)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j;
    int out = 0;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_READY), &j));
    ASSERT_OK(weft_join_wait(j, &out));
    weft_join_abort(j);
    weft_join_abort(j);
    ASSERT(weft_join_is_complete(j));
    out = 0;
    ASSERT_OK(weft_join_try(j, &out));
    ASSERT_EQ(42, out);
    out = 0;
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(42, out);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(1, atomic_load(&p_polls));
    ASSERT_DROPPED_ONCE();
    weft_join_drop(j);
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

/* Abort, then let go of the handle at once: the cancellation goes on. */
TEST(abort_then_drop_handle_current_thread)
{
    weft_runtime *rt = tt_runtime(WEFT_CURRENT_THREAD, 0);
    weft_join *j;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_READY), &j));
    weft_join_abort(j);
    weft_join_drop(j);
    ASSERT_EQ(1, (int)weft_runtime_active_tasks(rt));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&p_polls));
    ASSERT_DROPPED_ONCE();
    weft_runtime_free(rt);
}

TEST(abort_then_drop_handle_while_pending)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_GATE), &j));
    TT_WAIT_UNTIL(atomic_load(&p_polls) == 1);
    weft_join_abort(j);
    weft_join_drop(j);
    ASSERT_OK(weft_runtime_run(rt));             /* waits for the cancellation */
    ASSERT_DROPPED_ONCE();
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

TEST(abort_then_drop_handle_while_running)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_SPIN), &j));
    TT_WAIT_UNTIL(atomic_load(&p_entered));
    weft_join_abort(j);
    weft_join_drop(j);
    atomic_store(&p_go, 2);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(1, atomic_load(&p_polls));
    ASSERT_DROPPED_ONCE();
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

/* An awaiting task sees -ECANCELED through weft_join_poll(). */
TEST(abort_seen_by_awaiting_task)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *jp, *ja;
    int out = 0;

    probe_reset();
    aw_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_GATE), &jp));
    ASSERT_OK(weft_spawn(rt, &awaiter_future, &(awaiter){ .j = jp }, &ja));
    TT_WAIT_UNTIL(atomic_load(&aw_polls) >= 1 && atomic_load(&p_polls) >= 1);
    weft_join_abort(jp);                         /* jp is the awaiter's; used once */
    ASSERT_OK(weft_join_wait(ja, &out));
    ASSERT_EQ(-ECANCELED, out);
    ASSERT_EQ(0, atomic_load(&aw_again_bad));
    ASSERT_DROPPED_ONCE();
    weft_join_drop(ja);
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

/* The awaiting task is aborted while its waker is registered in the
 * probe's join: dropping the handle must release that waker. */
TEST(abort_awaiter_with_registered_join_waker)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *jp, *ja;

    probe_reset();
    aw_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_GATE), &jp));
    ASSERT_OK(weft_spawn(rt, &awaiter_future, &(awaiter){ .j = jp }, &ja));
    TT_WAIT_UNTIL(atomic_load(&aw_polls) >= 1 && atomic_load(&p_polls) >= 1);
    weft_join_abort(ja);
    ASSERT_EQ(-ECANCELED, weft_join_wait(ja, NULL));
    ASSERT_EQ(1, atomic_load(&aw_drops));
    ASSERT_EQ(0, atomic_load(&p_drops));         /* the probe runs on, detached */
    probe_release();
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(2, atomic_load(&p_polls));
    ASSERT_DROPPED_ONCE();
    weft_join_drop(ja);
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

/* Abort lands at a random point of a task that yields many times: the task
 * either completes with its output or reports -ECANCELED, and its drop runs
 * exactly once either way. */
static atomic_int ry_drops, ry_drop_bad, ry_inside, ry_overlap;

typedef struct ryield {
    weft_async co;
    weft_yield y;
    int i, n;
    int dropped;
} ryield;

static weft_poll ryield_poll(ryield *r, weft_context *cx, void *out)
{
    if (atomic_exchange(&ry_inside, 1))
        atomic_fetch_add(&ry_overlap, 1);
    atomic_store(&ry_inside, 0);
    WEFT_BEGIN(&r->co);
    for (r->i = 0; r->i < r->n; r->i++)
        WEFT_YIELD(&r->co, &r->y, cx);
    *(int *)out = r->n;
    WEFT_END(&r->co);
}

static void ryield_drop(ryield *r)
{
    if (r->dropped++ || weft_worker_name() == NULL || atomic_load(&ry_inside))
        atomic_fetch_add(&ry_drop_bad, 1);
    atomic_fetch_add(&ry_drops, 1);
}

WEFT_DEFINE_FUTURE(ryield, ryield_poll, ryield_drop, int);

TEST(abort_at_random_points_drops_once)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 3);
    unsigned rounds = (unsigned)harness_scale(3000);
    unsigned seed = 12345, cancelled = 0, completed = 0;

    for (unsigned r = 0; r < rounds; r++) {
        weft_join *j;
        int out = -1, err;
        unsigned spin;

        seed = seed * 1103515245u + 12345u;
        spin = (seed >> 8) % 2000;
        ASSERT_OK(weft_spawn(rt, &ryield_future, &(ryield){ .n = (int)(r % 20) }, &j));
        for (volatile unsigned k = 0; k < spin; k++)
            ;
        weft_join_abort(j);
        if (seed & 0x100000)
            weft_join_abort(j);
        err = weft_join_wait(j, &out);
        if (err == 0) {
            ASSERT_EQ((int)(r % 20), out);
            completed++;
        } else {
            ASSERT_EQ(-ECANCELED, err);
            ASSERT_EQ(-1, out);
            cancelled++;
        }
        ASSERT_EQ((int)r + 1, atomic_load(&ry_drops));
        weft_join_drop(j);
    }
    ASSERT_EQ(0, atomic_load(&ry_drop_bad));
    ASSERT_EQ(0, atomic_load(&ry_overlap));
    ASSERT_EQ(rounds, completed + cancelled);
    weft_runtime_free(rt);
    ASSERT_EQ((int)rounds, atomic_load(&ry_drops));
}

/* Abort races foreign wakers hammering the pending task. */
static atomic_int fw_stop;

static void *fw_thread(void *arg)
{
    (void)arg;
    TT_WAIT_UNTIL(atomic_load(&p_ext_set));
    while (!atomic_load(&fw_stop)) {
        weft_waker c = weft_waker_clone(&p_ext);

        weft_waker_wake_by_ref(&p_ext);
        weft_waker_wake(&c);
        sched_yield();                           /* 2 CPUs may be all we have */
    }
    return NULL;
}

TEST(abort_races_foreign_wakes)
{
    unsigned rounds = (unsigned)harness_scale(200);
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);

    for (unsigned r = 0; r < rounds; r++) {
        weft_join *j;
        pthread_t th[3];

        probe_reset();
        atomic_store(&fw_stop, 0);
        ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_GATE), &j));
        for (int i = 0; i < 3; i++)
            th[i] = tt_thread_start(fw_thread, NULL);
        TT_WAIT_UNTIL(atomic_load(&p_polls) >= 2);
        weft_join_abort(j);
        ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
        atomic_store(&fw_stop, 1);
        for (int i = 0; i < 3; i++)
            tt_thread_join(th[i]);
        ASSERT_DROPPED_ONCE();
        weft_join_drop(j);
        weft_waker_drop(&p_ext);
    }
    weft_runtime_free(rt);
}

/* ======================================================================
 * Detach (weft_join_drop) at every point: the task runs on to completion
 * and its drop runs once.
 * ====================================================================== */
TEST(detach_before_first_poll)
{
    weft_runtime *rt = tt_runtime(WEFT_CURRENT_THREAD, 0);
    weft_join *j;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_READY), &j));
    weft_join_drop(j);
    ASSERT_EQ(0, atomic_load(&p_polls));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(1, atomic_load(&p_polls));         /* it still ran */
    ASSERT_DROPPED_ONCE();
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

TEST(detach_while_pending)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_GATE), &j));
    /* the first poll has returned (PENDING): opened while it still ran, the
     * gate let that poll complete the task (1 in ~200 runs under load) */
    TT_WAIT_UNTIL(atomic_load(&p_polls) == 1 && atomic_load(&p_inside) == 0);
    weft_join_drop(j);
    ASSERT_EQ(0, atomic_load(&p_drops));
    probe_release();
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(2, atomic_load(&p_polls));
    ASSERT_DROPPED_ONCE();
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

TEST(detach_while_running)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_SPIN), &j));
    TT_WAIT_UNTIL(atomic_load(&p_entered));
    weft_join_drop(j);
    atomic_store(&p_go, 1);                      /* READY: output discarded */
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(1, atomic_load(&p_polls));
    ASSERT_DROPPED_ONCE();
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

TEST(detach_while_running_then_pending)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_SPIN), &j));
    TT_WAIT_UNTIL(atomic_load(&p_entered));
    weft_join_drop(j);
    atomic_store(&p_go, 2);
    TT_WAIT_UNTIL(!atomic_load(&p_inside));
    ASSERT_EQ(0, atomic_load(&p_drops));         /* detached, not cancelled */
    probe_release();
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(2, atomic_load(&p_polls));
    ASSERT_DROPPED_ONCE();
    weft_waker_drop(&p_ext);
    weft_runtime_free(rt);
}

TEST(detach_after_completion)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_READY), &j));
    ASSERT_OK(weft_join_wait(j, NULL));
    weft_join_drop(j);
    ASSERT_DROPPED_ONCE();
    weft_waker_drop(&p_ext);                     /* the last reference */
    weft_runtime_free(rt);
}

/* A detached task still pending when the runtime is freed is cancelled
 * there: its drop runs once (on the freeing thread: no worker is left). */
TEST(detached_pending_task_cancelled_at_free)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_GATE), &j));
    TT_WAIT_UNTIL(atomic_load(&p_polls) == 1);
    weft_join_drop(j);
    weft_runtime_free(rt);
    ASSERT_EQ(1, atomic_load(&p_drops));
    ASSERT_EQ(0, atomic_load(&p_drop_twice));
    ASSERT_EQ(0, atomic_load(&p_drop_in_poll));
    weft_waker_wake_by_ref(&p_ext);              /* after the runtime: no-op */
    weft_waker_drop(&p_ext);
}

/* A join handle kept past the runtime reports the cancellation. */
TEST(join_outlives_runtime_cancelled_at_shutdown)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j;

    probe_reset();
    ASSERT_OK(weft_spawn(rt, &probe_future, PROBE(P_GATE), &j));
    TT_WAIT_UNTIL(atomic_load(&p_polls) == 1);
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_OK(weft_runtime_shutdown(rt));        /* idempotent */
    ASSERT(weft_join_is_complete(j));
    ASSERT_EQ(-ECANCELED, weft_join_try(j, NULL));
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
    ASSERT_EQ(1, atomic_load(&p_drops));
    weft_runtime_free(rt);
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_try(j, NULL));
    weft_join_drop(j);
    weft_waker_drop(&p_ext);
    ASSERT_EQ(1, atomic_load(&p_drops));
}
