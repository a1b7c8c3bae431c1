/* SPDX-License-Identifier: MIT */
/* Task wakers: one poll per wake, wake-while-running, duplicate wakes,
 * waking completed tasks, racing clones/drops, and the inline helpers. */
#define _GNU_SOURCE
#include <string.h>

#include "task_test.h"

/* ======================================================================
 * One poll per wake: the task is woken N times, one at a time, each wake
 * sent after the previous poll has run. Poll number n (0-based) must see
 * exactly n wakes sent: a poll without a wake, or two polls for one wake,
 * breaks the count at once.
 * ====================================================================== */
static atomic_uint opw_polls;        /* polls run so far */
static atomic_uint opw_gen;          /* wakes sent so far */
static atomic_uint opw_bad;          /* polls that saw the wrong wake count */
static weft_waker opw_waker;         /* poll 0's clone; the test drops it */
static unsigned opw_n;

typedef struct opw {
    int unused;
} opw;

static weft_poll opw_poll(opw *f, weft_context *cx, void *out)
{
    /* seq_cst loads: the sender stores gen before waking */
    unsigned n = atomic_load(&opw_polls);
    unsigned g = atomic_load(&opw_gen);

    (void)f;
    if (g != n)
        atomic_fetch_add(&opw_bad, 1);
    if (n == 0)
        opw_waker = weft_waker_clone(weft_context_waker(cx));
    atomic_store(&opw_polls, n + 1);
    if (n == opw_n) {
        *(unsigned *)out = n + 1;
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

WEFT_DEFINE_FUTURE(opw, opw_poll, NULL, unsigned);

static void *opw_sender(void *arg)
{
    (void)arg;
    for (unsigned i = 1; i <= opw_n; i++) {
        TT_WAIT_UNTIL(atomic_load(&opw_polls) >= i);
        ASSERT_EQ(i, atomic_load(&opw_polls));   /* no poll without a wake */
        atomic_store(&opw_gen, i);
        if (i % 2)
            weft_waker_wake_by_ref(&opw_waker);
        else {
            weft_waker w = weft_waker_clone(&opw_waker);

            weft_waker_wake(&w);                 /* by value: consumes the clone */
        }
    }
    return NULL;
}

static void opw_reset(void)
{
    atomic_store(&opw_polls, 0);
    atomic_store(&opw_gen, 0);
    atomic_store(&opw_bad, 0);
    opw_waker = WEFT_WAKER_EMPTY;
    opw_n = (unsigned)harness_scale(2000);
}

TEST(one_poll_per_wake_multi_thread)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 4);
    weft_join *j;
    unsigned out = 0;

    opw_reset();
    ASSERT_OK(weft_spawn(rt, &opw_future, &(opw){ 0 }, &j));
    opw_sender(NULL);                            /* this thread is foreign */
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(opw_n + 1, out);
    ASSERT_EQ(opw_n + 1, atomic_load(&opw_polls));
    ASSERT_EQ(0, atomic_load(&opw_bad));
    weft_join_drop(j);
    weft_waker_drop(&opw_waker);
    weft_runtime_free(rt);
}

TEST(one_poll_per_wake_current_thread)
{
    weft_runtime *rt = tt_runtime(WEFT_CURRENT_THREAD, 0);
    weft_join *j;
    unsigned out = 0;
    pthread_t th;

    opw_reset();
    ASSERT_OK(weft_spawn(rt, &opw_future, &(opw){ 0 }, &j));
    th = tt_thread_start(opw_sender, NULL);
    ASSERT_OK(weft_runtime_run(rt));             /* drives it on this thread */
    tt_thread_join(th);
    ASSERT_OK(weft_join_try(j, &out));
    ASSERT_EQ(opw_n + 1, out);
    ASSERT_EQ(opw_n + 1, atomic_load(&opw_polls));
    ASSERT_EQ(0, atomic_load(&opw_bad));
    weft_join_drop(j);
    weft_waker_drop(&opw_waker);
    weft_runtime_free(rt);
}

/* ======================================================================
 * Wake while running: a poll that wakes itself k times (by reference, by
 * value through clones) is polled once more, not k times.
 *
 * Current-thread, deterministic: T wakes itself k times in poll 0, then in
 * poll 1 returns PENDING without arranging anything. An observer O, spawned
 * after T, yields a few times (each yield sends it behind everything queued)
 * and then counts T's polls: exactly 2. Only then does O wake T to finish.
 * ====================================================================== */
#define SELF_WAKES 16

static atomic_uint wwr_polls;
static weft_waker wwr_waker;         /* poll 1's clone, for O */

typedef struct wwr {
    int unused;
} wwr;

static weft_poll wwr_poll(wwr *f, weft_context *cx, void *out)
{
    unsigned n = atomic_fetch_add(&wwr_polls, 1);

    (void)f;
    (void)out;
    if (n == 0) {
        for (int i = 0; i < SELF_WAKES; i++) {
            weft_waker w = weft_waker_clone(cx->waker);

            weft_waker_wake_by_ref(cx->waker);
            weft_waker_wake_by_ref(&w);
            weft_waker_wake(&w);                 /* consumes the clone */
            weft_waker_drop(&w);                 /* empty now: a no-op */
        }
        return WEFT_PENDING;
    }
    if (n == 1) {
        wwr_waker = weft_waker_clone(cx->waker);
        return WEFT_PENDING;                     /* nothing will wake it but O */
    }
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(wwr, wwr_poll, NULL);

typedef struct observer {
    weft_async co;
    weft_yield y;
    int i;
    atomic_uint *count;              /* what to observe */
    weft_waker *then_wake;           /* woken (and dropped) after observing */
} observer;

static weft_poll observer_poll(observer *o, weft_context *cx, void *out)
{
    WEFT_BEGIN(&o->co);
    for (o->i = 0; o->i < 4; o->i++)
        WEFT_YIELD(&o->co, &o->y, cx);
    *(unsigned *)out = atomic_load(o->count);
    weft_waker_wake(o->then_wake);
    WEFT_END(&o->co);
}

WEFT_DEFINE_FUTURE(observer, observer_poll, NULL, unsigned);

TEST(wake_while_running_requeues_once)
{
    weft_runtime *rt = tt_runtime(WEFT_CURRENT_THREAD, 0);
    weft_join *jt, *jo;
    unsigned seen = 0;

    atomic_store(&wwr_polls, 0);
    wwr_waker = WEFT_WAKER_EMPTY;
    ASSERT_OK(weft_spawn(rt, &wwr_future, &(wwr){ 0 }, &jt));
    ASSERT_OK(weft_spawn(rt, &observer_future,
                         &(observer){ .count = &wwr_polls, .then_wake = &wwr_waker },
                         &jo));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_join_try(jo, &seen));
    ASSERT_EQ(2, seen);                          /* k self-wakes: one more poll */
    ASSERT_EQ(3, atomic_load(&wwr_polls));       /* and one for O's wake */
    ASSERT_OK(weft_join_try(jt, NULL));
    ASSERT(wwr_waker.vtable == NULL);            /* O consumed it */
    weft_join_drop(jt);
    weft_join_drop(jo);
    weft_runtime_free(rt);
}

/* A future that polls a yield (PENDING) but returns READY anyway abandons
 * the yield: the next task polled on that thread, pending without a wake,
 * must not be polled again (no poll without a wake). */
static atomic_uint idle1_polls;
static weft_waker idle1_waker;

typedef struct idle1 {
    int unused;
} idle1;

static weft_poll idle1_poll(idle1 *f, weft_context *cx, void *out)
{
    (void)f;
    (void)out;
    if (atomic_fetch_add(&idle1_polls, 1) == 0) {
        idle1_waker = weft_waker_clone(cx->waker);
        return WEFT_PENDING;
    }
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(idle1, idle1_poll, NULL);

typedef struct abandon {
    weft_yield y;
} abandon;

static weft_poll abandon_poll(abandon *a, weft_context *cx, void *out)
{
    (void)out;
    weft_yield_init(&a->y);
    if (weft_yield_poll(&a->y, cx) != WEFT_PENDING)
        return WEFT_PENDING;                     /* never: shows up as a hang */
    weft_yield_drop(&a->y);
    return WEFT_READY;                           /* the yield is abandoned */
}

WEFT_DEFINE_FUTURE_VOID(abandon, abandon_poll, NULL);

TEST(abandoned_yield_does_not_leak_into_next_poll)
{
    weft_runtime *rt = tt_runtime(WEFT_CURRENT_THREAD, 0);
    weft_join *jo;
    unsigned seen = 0;

    atomic_store(&idle1_polls, 0);
    idle1_waker = WEFT_WAKER_EMPTY;
    ASSERT_OK(weft_spawn_detached(rt, &abandon_future, &(abandon){ { false } }));
    ASSERT_OK(weft_spawn_detached(rt, &idle1_future, &(idle1){ 0 }));
    ASSERT_OK(weft_spawn(rt, &observer_future,
                         &(observer){ .count = &idle1_polls, .then_wake = &idle1_waker },
                         &jo));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_join_try(jo, &seen));
    ASSERT_EQ(1, seen);                          /* not polled without a wake */
    ASSERT_EQ(2, atomic_load(&idle1_polls));
    weft_join_drop(jo);
    weft_runtime_free(rt);
}

/* ======================================================================
 * Never two polls at once: several workers, tasks that wake themselves
 * during their polls, and foreign threads hammering their wakers. An
 * "inside poll" flag must never be seen set on entry. (The poll also
 * updates a plain field, so TSan reports any overlap as a race.)
 * ====================================================================== */
#define HAM_TASKS 8
#define HAM_THREADS 4

static atomic_int ham_inside[HAM_TASKS];
static atomic_int ham_published[HAM_TASKS];
static weft_waker ham_wakers[HAM_TASKS];
static atomic_int ham_overlaps;
static atomic_int ham_stop;
static unsigned ham_target;

typedef struct ham {
    unsigned idx;
    unsigned polls;                  /* plain: only the one poller touches it */
} ham;

static weft_poll ham_poll(ham *f, weft_context *cx, void *out)
{
    volatile unsigned sink = 0;

    if (atomic_exchange(&ham_inside[f->idx], 1) != 0)
        atomic_fetch_add(&ham_overlaps, 1);
    if (f->polls == 0) {
        ham_wakers[f->idx] = weft_waker_clone(cx->waker);
        atomic_store(&ham_published[f->idx], 1);  /* seq_cst: publishes the clone */
    }
    f->polls++;
    if (f->polls % 3 != 0) {                     /* wake while running */
        weft_waker_wake_by_ref(cx->waker);
        weft_waker_wake_by_ref(cx->waker);
    }
    for (int i = 0; i < 50; i++)                 /* widen the window */
        sink += (unsigned)i;
    (void)sink;                                  /* clang: set but not used */
    atomic_store(&ham_inside[f->idx], 0);
    if (f->polls >= ham_target) {
        *(unsigned *)out = f->polls;
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

WEFT_DEFINE_FUTURE(ham, ham_poll, NULL, unsigned);

static void *ham_thread(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;

    while (!atomic_load(&ham_stop)) {
        for (int i = 0; i < HAM_TASKS; i++) {
            if (!atomic_load(&ham_published[i]))
                continue;
            seed = seed * 1103515245u + 12345u;
            if (seed & 0x10000) {
                weft_waker_wake_by_ref(&ham_wakers[i]);
            } else {
                weft_waker w = weft_waker_clone(&ham_wakers[i]);

                weft_waker_wake(&w);
            }
        }
        sched_yield();
    }
    return NULL;
}

TEST(no_overlapping_polls_under_hammering)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 4);
    weft_join *j[HAM_TASKS];
    pthread_t th[HAM_THREADS];

    ham_target = (unsigned)harness_scale(20000);
    for (int i = 0; i < HAM_TASKS; i++)
        ASSERT_OK(weft_spawn(rt, &ham_future, &(ham){ .idx = (unsigned)i }, &j[i]));
    for (int i = 0; i < HAM_THREADS; i++)
        th[i] = tt_thread_start(ham_thread, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < HAM_TASKS; i++) {
        unsigned out = 0;

        ASSERT_OK(weft_join_wait(j[i], &out));
        ASSERT_EQ(ham_target, out);
        weft_join_drop(j[i]);
    }
    atomic_store(&ham_stop, 1);
    for (int i = 0; i < HAM_THREADS; i++)
        tt_thread_join(th[i]);
    ASSERT_EQ(0, atomic_load(&ham_overlaps));
    for (int i = 0; i < HAM_TASKS; i++)
        weft_waker_drop(&ham_wakers[i]);
    weft_runtime_free(rt);
}

/* ======================================================================
 * Foreign wakes with nothing else ordering them after the previous poll:
 * each wake that finds the task idle hands it to a run queue, taking over
 * its queue link from the worker that popped it last time. No poll
 * without a wake (plain build); no data race on the cell (TSan).
 * ====================================================================== */
static atomic_uint lone_polls;
static atomic_int lone_stop;
static atomic_int lone_published;
static weft_waker lone_waker;

typedef struct lone {
    int unused;
} lone;

static weft_poll lone_poll(lone *f, weft_context *cx, void *out)
{
    (void)f;
    (void)out;
    /* relaxed: must not order anything for the waking thread */
    atomic_fetch_add_explicit(&lone_polls, 1, memory_order_relaxed);
    if (!atomic_load_explicit(&lone_published, memory_order_relaxed)) {
        lone_waker = weft_waker_clone(cx->waker);
        atomic_store_explicit(&lone_published, 1, memory_order_release);
    }
    return atomic_load_explicit(&lone_stop, memory_order_relaxed) ? WEFT_READY
                                                                  : WEFT_PENDING;
}

WEFT_DEFINE_FUTURE_VOID(lone, lone_poll, NULL);

TEST(foreign_wakes_hand_over_the_task)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    size_t n = harness_scale(200000);
    weft_join *j;

    ASSERT_OK(weft_spawn(rt, &lone_future, &(lone){ 0 }, &j));
    TT_WAIT_UNTIL(atomic_load_explicit(&lone_published, memory_order_acquire));
    for (size_t i = 0; i < n; i++)
        weft_waker_wake_by_ref(&lone_waker);
    atomic_store_explicit(&lone_stop, 1, memory_order_relaxed);
    weft_waker_wake_by_ref(&lone_waker);
    ASSERT_OK(weft_join_wait(j, NULL));
    ASSERT_LE(n + 2, atomic_load(&lone_polls));  /* first poll + one per wake */
    ASSERT(atomic_load(&lone_polls) >= 2);
    weft_join_drop(j);
    weft_waker_drop(&lone_waker);
    weft_runtime_free(rt);
}

/* ======================================================================
 * Duplicate wakes never enqueue twice: an idle task woken many times
 * before it is polled is polled once more.
 * ====================================================================== */
static atomic_uint dup_polls;
static atomic_int dup_finish;
static weft_waker dup_waker;         /* poll 0's clone; the test drops it */

typedef struct dup {
    int unused;
} dup;

static weft_poll dup_poll(dup *f, weft_context *cx, void *out)
{
    unsigned n = atomic_fetch_add(&dup_polls, 1);

    (void)f;
    (void)out;
    if (n == 0)
        dup_waker = weft_waker_clone(cx->waker);
    return atomic_load(&dup_finish) ? WEFT_READY : WEFT_PENDING;
}

WEFT_DEFINE_FUTURE_VOID(dup, dup_poll, NULL);

static void dup_reset(void)
{
    atomic_store(&dup_polls, 0);
    atomic_store(&dup_finish, 0);
    dup_waker = WEFT_WAKER_EMPTY;
}

/* Wakes the idle task many times from inside the runtime, then observes. */
typedef struct dup_waker_task {
    weft_async co;
    weft_yield y;
    int i;
} dup_waker_task;

static weft_poll dup_waker_task_poll(dup_waker_task *d, weft_context *cx, void *out)
{
    WEFT_BEGIN(&d->co);
    for (int k = 0; k < 500; k++) {              /* no await in here */
        weft_waker w = weft_waker_clone(&dup_waker);

        weft_waker_wake_by_ref(&dup_waker);
        weft_waker_wake(&w);
    }
    for (d->i = 0; d->i < 4; d->i++)
        WEFT_YIELD(&d->co, &d->y, cx);
    *(unsigned *)out = atomic_load(&dup_polls);
    atomic_store(&dup_finish, 1);
    weft_waker_wake_by_ref(&dup_waker);
    WEFT_END(&d->co);
}

WEFT_DEFINE_FUTURE(dup_waker_task, dup_waker_task_poll, NULL, unsigned);

TEST(duplicate_wakes_enqueue_once_current_thread)
{
    weft_runtime *rt = tt_runtime(WEFT_CURRENT_THREAD, 0);
    weft_join *jt, *jw;
    unsigned seen = 0;

    dup_reset();
    ASSERT_OK(weft_spawn(rt, &dup_future, &(dup){ 0 }, &jt));
    ASSERT_OK(weft_spawn(rt, &dup_waker_task_future, &(dup_waker_task){ .i = 0 }, &jw));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_join_try(jw, &seen));
    ASSERT_EQ(2, seen);                          /* 1000 wakes: one more poll */
    ASSERT_EQ(3, atomic_load(&dup_polls));
    weft_join_drop(jt);
    weft_join_drop(jw);
    weft_waker_drop(&dup_waker);
    weft_runtime_free(rt);
}

/* Counts dup's polls after yielding behind everything already queued. */
typedef struct dup_count {
    weft_async co;
    weft_yield y;
    int i;
} dup_count;

static weft_poll dup_count_poll(dup_count *d, weft_context *cx, void *out)
{
    WEFT_BEGIN(&d->co);
    for (d->i = 0; d->i < 3; d->i++)
        WEFT_YIELD(&d->co, &d->y, cx);
    *(unsigned *)out = atomic_load(&dup_polls);
    WEFT_END(&d->co);
}

WEFT_DEFINE_FUTURE(dup_count, dup_count_poll, NULL, unsigned);

#define DUP_THREADS 8

static void *dup_thread(void *arg)
{
    size_t n = harness_scale(2000);

    (void)arg;
    for (size_t k = 0; k < n; k++) {
        weft_waker w = weft_waker_clone(&dup_waker);

        switch (k % 3) {
        case 0:
            weft_waker_wake_by_ref(&dup_waker);
            weft_waker_drop(&w);
            break;
        case 1:
            weft_waker_wake(&w);
            break;
        default:
            weft_waker_wake_by_ref(&w);
            weft_waker_wake(&w);
            break;
        }
    }
    return NULL;
}

/* From foreign threads: one worker, held by a blocker while 8 threads wake
 * the idle task thousands of times; then a counter task queued behind it. */
TEST(duplicate_wakes_enqueue_once_foreign_threads)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 1);
    weft_join *jt, *jc;
    pthread_t th[DUP_THREADS];
    unsigned seen = 0;

    dup_reset();
    ASSERT_OK(weft_spawn(rt, &dup_future, &(dup){ 0 }, &jt));
    tt_block_worker(rt);                         /* runs after T's first poll */
    ASSERT_EQ(1, atomic_load(&dup_polls));       /* T is idle now */
    for (int i = 0; i < DUP_THREADS; i++)
        th[i] = tt_thread_start(dup_thread, NULL);
    for (int i = 0; i < DUP_THREADS; i++)
        tt_thread_join(th[i]);
    ASSERT_EQ(1, atomic_load(&dup_polls));       /* the worker is still held */
    ASSERT_OK(weft_spawn(rt, &dup_count_future, &(dup_count){ .i = 0 }, &jc));
    tt_release_worker();
    ASSERT_OK(weft_join_wait(jc, &seen));
    ASSERT_EQ(2, seen);
    atomic_store(&dup_finish, 1);
    weft_waker_wake_by_ref(&dup_waker);
    ASSERT_OK(weft_join_wait(jt, NULL));
    ASSERT_EQ(3, atomic_load(&dup_polls));
    weft_join_drop(jt);
    weft_join_drop(jc);
    weft_waker_drop(&dup_waker);
    weft_runtime_free(rt);
}

/* ======================================================================
 * Waking a completed task is a harmless no-op: wakers kept past the
 * completion (and past the runtime itself) may be woken and dropped.
 * ====================================================================== */
static atomic_uint done_polls;
static atomic_uint done_drops;
static weft_waker done_w[5];

typedef struct done_task {
    int ready;                       /* 1: READY at once; 0: stay pending */
} done_task;

static weft_poll done_poll(done_task *f, weft_context *cx, void *out)
{
    atomic_fetch_add(&done_polls, 1);
    for (int i = 0; i < 5; i++)
        if (done_w[i].vtable == NULL)
            done_w[i] = weft_waker_clone(cx->waker);
    if (f->ready) {
        *(int *)out = 99;
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

static void done_drop(done_task *f)
{
    (void)f;
    atomic_fetch_add(&done_drops, 1);
}

WEFT_DEFINE_FUTURE(done_task, done_poll, done_drop, int);

static void done_reset(void)
{
    atomic_store(&done_polls, 0);
    atomic_store(&done_drops, 0);
    memset(done_w, 0, sizeof(done_w));
}

static void done_poke_all(void)
{
    weft_waker c;

    weft_waker_wake(&done_w[0]);                 /* consumes */
    ASSERT(done_w[0].vtable == NULL);
    weft_waker_wake(&done_w[0]);                 /* empty: nothing */
    for (int i = 0; i < 3; i++)
        weft_waker_wake_by_ref(&done_w[1]);
    weft_waker_drop(&done_w[1]);
    weft_waker_drop(&done_w[1]);                 /* empty: nothing */
    c = weft_waker_clone(&done_w[2]);
    ASSERT(weft_waker_will_wake(&c, &done_w[2]));
    weft_waker_drop(&done_w[2]);
    weft_waker_wake_by_ref(&c);
    weft_waker_wake(&c);
}

TEST(wake_completed_task_is_noop)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j;
    int out = 0;

    done_reset();
    ASSERT_OK(weft_spawn(rt, &done_task_future, &(done_task){ .ready = 1 }, &j));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(99, out);
    done_poke_all();
    ASSERT_OK(weft_join_try(j, &out));           /* still readable */
    ASSERT_EQ(99, out);
    ASSERT_OK(weft_runtime_run(rt));             /* nothing was queued */
    ASSERT_EQ(1, atomic_load(&done_polls));
    ASSERT_EQ(1, atomic_load(&done_drops));
    ASSERT_EQ(0, weft_runtime_active_tasks(rt));
    /* Two wakers and the join handle outlive the runtime. */
    weft_runtime_free(rt);
    ASSERT_EQ(1, atomic_load(&done_drops));
    weft_waker_wake_by_ref(&done_w[3]);
    weft_waker_wake(&done_w[3]);
    weft_waker_drop(&done_w[3]);
    ASSERT_OK(weft_join_try(j, &out));
    ASSERT_EQ(99, out);
    weft_join_drop(j);
    weft_waker_wake_by_ref(&done_w[4]);          /* the last reference */
    weft_waker_drop(&done_w[4]);
    ASSERT_EQ(1, atomic_load(&done_polls));
}

TEST(wake_cancelled_task_is_noop)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j;

    done_reset();
    ASSERT_OK(weft_spawn(rt, &done_task_future, &(done_task){ .ready = 0 }, &j));
    TT_WAIT_UNTIL(atomic_load(&done_polls) == 1);
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
    ASSERT_EQ(1, atomic_load(&done_drops));
    done_poke_all();
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(1, atomic_load(&done_polls));      /* never polled again */
    weft_runtime_free(rt);
    weft_waker_wake(&done_w[3]);
    weft_join_drop(j);
    weft_waker_drop(&done_w[4]);
    ASSERT_EQ(1, atomic_load(&done_drops));
}

/* ======================================================================
 * 1,000 wakers cloned by the task, then woken, cloned and dropped by 8
 * foreign threads while the task completes (the first wake makes it READY),
 * is aborted, or the runtime is freed under them. Every reference must be
 * released exactly once (the harness counts the cells; ASan sees any use
 * after free).
 * ====================================================================== */
#define RACE_WAKERS 1000
#define RACE_THREADS 8

enum race_mode { RACE_READY, RACE_ABORT, RACE_DETACHED, RACE_FREE_RUNTIME };

static weft_waker race_w[RACE_WAKERS];
static atomic_uint race_round;       /* published round; 0: none yet */
static atomic_uint race_drops;
static atomic_uint race_done_threads;

typedef struct racef {
    int mode;
    unsigned round;
    unsigned polls;
} racef;

static weft_poll racef_poll(racef *f, weft_context *cx, void *out)
{
    if (f->polls++ == 0) {
        for (int i = 0; i < RACE_WAKERS; i++)
            race_w[i] = weft_waker_clone(cx->waker);
        atomic_store(&race_round, f->round);     /* seq_cst: publishes race_w */
        return WEFT_PENDING;
    }
    if (f->mode == RACE_FREE_RUNTIME)
        return WEFT_PENDING;                     /* until the runtime goes */
    *(unsigned *)out = f->polls;
    return WEFT_READY;
}

static void racef_drop(racef *f)
{
    (void)f;
    atomic_fetch_add(&race_drops, 1);
}

WEFT_DEFINE_FUTURE(racef, racef_poll, racef_drop, unsigned);

struct race_arg {
    unsigned round;
    unsigned t;
};

static void *race_thread(void *p)
{
    struct race_arg *a = p;

    TT_WAIT_UNTIL(atomic_load(&race_round) == a->round);
    for (unsigned i = a->t; i < RACE_WAKERS; i += RACE_THREADS) {
        weft_waker c;

        switch ((i / RACE_THREADS) % 5) {
        case 0:
            weft_waker_wake(&race_w[i]);
            break;
        case 1:
            weft_waker_wake_by_ref(&race_w[i]);
            weft_waker_drop(&race_w[i]);
            break;
        case 2:
            c = weft_waker_clone(&race_w[i]);
            weft_waker_drop(&race_w[i]);
            weft_waker_wake_by_ref(&c);
            weft_waker_wake(&c);
            break;
        case 3:
            weft_waker_drop(&race_w[i]);
            break;
        default:
            c = weft_waker_clone(&race_w[i]);
            weft_waker_wake(&race_w[i]);
            weft_waker_drop(&c);
            break;
        }
    }
    atomic_fetch_add(&race_done_threads, 1);
    return NULL;
}

static void race_round_run(weft_runtime **rtp, int mode, unsigned round)
{
    struct race_arg args[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    weft_join *j = NULL;
    unsigned out = 0;
    int err;

    atomic_store(&race_done_threads, 0);
    for (unsigned t = 0; t < RACE_THREADS; t++) {
        args[t] = (struct race_arg){ round, t };
        th[t] = tt_thread_start(race_thread, &args[t]);
    }
    if (mode == RACE_DETACHED)
        ASSERT_OK(weft_spawn_detached(*rtp, &racef_future,
                                      &(racef){ .mode = mode, .round = round }));
    else
        ASSERT_OK(weft_spawn(*rtp, &racef_future,
                             &(racef){ .mode = mode, .round = round }, &j));
    switch (mode) {
    case RACE_READY:
        ASSERT_OK(weft_join_wait(j, &out));
        ASSERT_EQ(2, out);
        break;
    case RACE_ABORT:
        TT_WAIT_UNTIL(atomic_load(&race_round) == round);
        weft_join_abort(j);
        err = weft_join_wait(j, &out);
        ASSERT(err == 0 || err == -ECANCELED);   /* either side may win */
        if (err == 0)
            ASSERT_EQ(2, out);
        break;
    case RACE_FREE_RUNTIME:
        TT_WAIT_UNTIL(atomic_load(&race_round) == round);
        weft_runtime_free(*rtp);                 /* races the wakes */
        *rtp = NULL;
        ASSERT_EQ(-ECANCELED, weft_join_try(j, NULL));
        break;
    default:
        break;
    }
    weft_join_drop(j);                           /* may be the last reference */
    for (unsigned t = 0; t < RACE_THREADS; t++)
        tt_thread_join(th[t]);
    ASSERT_EQ(RACE_THREADS, atomic_load(&race_done_threads));
}

static void race_many(int mode)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 4);
    unsigned rounds = (unsigned)harness_scale(mode == RACE_FREE_RUNTIME ? 200 : 500);

    atomic_store(&race_round, 0);
    atomic_store(&race_drops, 0);
    for (unsigned r = 1; r <= rounds; r++) {
        if (rt == NULL)
            rt = tt_runtime(WEFT_MULTI_THREAD, 4);
        race_round_run(&rt, mode, r);
        if (mode != RACE_FREE_RUNTIME)
            ASSERT_OK(weft_runtime_run(rt));     /* every task done */
        ASSERT_EQ(r, atomic_load(&race_drops));  /* the future: dropped once */
    }
    weft_runtime_free(rt);
}

TEST(wakers_race_completion)
{
    race_many(RACE_READY);
}

TEST(wakers_race_completion_detached)
{
    race_many(RACE_DETACHED);
}

TEST(wakers_race_abort)
{
    race_many(RACE_ABORT);
}

TEST(wakers_race_runtime_free)
{
    race_many(RACE_FREE_RUNTIME);
}

/* ======================================================================
 * weft_waker_noop and the inline helpers.
 * ====================================================================== */
static atomic_int cw_clones, cw_wakes, cw_wake_refs, cw_drops;
static const weft_waker_vtable cw_vtable;

static weft_waker cw_clone(const void *d)
{
    atomic_fetch_add(&cw_clones, 1);
    return (weft_waker){ d, &cw_vtable };
}

static void cw_wake(const void *d)
{
    (void)d;
    atomic_fetch_add(&cw_wakes, 1);
}

static void cw_wake_by_ref(const void *d)
{
    (void)d;
    atomic_fetch_add(&cw_wake_refs, 1);
}

static void cw_drop(const void *d)
{
    (void)d;
    atomic_fetch_add(&cw_drops, 1);
}

static const weft_waker_vtable cw_vtable = { cw_clone, cw_wake, cw_wake_by_ref, cw_drop };

static void cw_reset(void)
{
    atomic_store(&cw_clones, 0);
    atomic_store(&cw_wakes, 0);
    atomic_store(&cw_wake_refs, 0);
    atomic_store(&cw_drops, 0);
}

TEST(waker_inline_helpers_call_the_vtable)
{
    int tag, other;
    weft_waker w = { &tag, &cw_vtable };
    weft_waker c, o = { &other, &cw_vtable };
    weft_context cx = weft_context_from_waker(&w);

    cw_reset();
    ASSERT(weft_context_waker(&cx) == &w);
    c = weft_waker_clone(&w);
    ASSERT_EQ(1, atomic_load(&cw_clones));
    ASSERT(c.data == &tag && c.vtable == &cw_vtable);
    ASSERT(weft_waker_will_wake(&w, &c));
    ASSERT(!weft_waker_will_wake(&w, &o));       /* other data */
    weft_waker_wake_by_ref(&c);
    ASSERT_EQ(1, atomic_load(&cw_wake_refs));
    ASSERT(c.vtable == &cw_vtable);              /* by_ref keeps it */
    weft_waker_wake(&c);
    ASSERT_EQ(1, atomic_load(&cw_wakes));
    ASSERT_EQ(0, atomic_load(&cw_drops));        /* wake consumes: no drop */
    ASSERT(c.vtable == NULL && c.data == NULL);
    weft_waker_wake(&c);                         /* empty: nothing */
    weft_waker_wake_by_ref(&c);
    weft_waker_drop(&c);
    ASSERT_EQ(1, atomic_load(&cw_wakes));
    ASSERT_EQ(1, atomic_load(&cw_wake_refs));
    ASSERT_EQ(0, atomic_load(&cw_drops));
    weft_waker_drop(&w);
    ASSERT_EQ(1, atomic_load(&cw_drops));
    ASSERT(w.vtable == NULL);
    weft_waker_drop(&w);                         /* twice is safe */
    ASSERT_EQ(1, atomic_load(&cw_drops));
    ASSERT_EQ(1, atomic_load(&cw_clones));
}

TEST(waker_empty_and_noop)
{
    weft_waker e = WEFT_WAKER_EMPTY, e2 = WEFT_WAKER_EMPTY, c;
    weft_waker n = weft_waker_noop(), n2 = weft_waker_noop(), nc;
    int tag;
    weft_waker other = { &tag, n.vtable };       /* same vtable, other data */

    c = weft_waker_clone(&e);
    ASSERT(c.vtable == NULL && c.data == NULL);
    ASSERT(weft_waker_will_wake(&e, &e2));
    weft_waker_wake(&e);
    weft_waker_wake_by_ref(&e);
    weft_waker_drop(&e);

    ASSERT(n.vtable != NULL);                    /* noop is not empty */
    ASSERT(weft_waker_will_wake(&n, &n2));
    ASSERT(!weft_waker_will_wake(&n, &e2));
    ASSERT(!weft_waker_will_wake(&n, &other));
    nc = weft_waker_clone(&n);
    ASSERT(weft_waker_will_wake(&n, &nc));
    weft_waker_wake_by_ref(&n);
    weft_waker_wake_by_ref(&nc);
    weft_waker_wake(&nc);
    ASSERT(nc.vtable == NULL);
    weft_waker_drop(&n);
    ASSERT(n.vtable == NULL);
    weft_waker_drop(&n2);
}

TEST(yield_polled_by_hand)
{
    int tag;
    weft_waker w = { &tag, &cw_vtable };
    weft_waker n = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&w);
    weft_context ncx = weft_context_from_waker(&n);
    weft_yield y;

    cw_reset();
    weft_yield_init(&y);
    ASSERT_EQ(WEFT_PENDING, weft_yield_poll(&y, &cx));
    ASSERT_EQ(1, atomic_load(&cw_wake_refs));    /* it woke itself, by ref */
    ASSERT_EQ(0, atomic_load(&cw_clones) + atomic_load(&cw_wakes) +
                     atomic_load(&cw_drops));
    ASSERT_EQ(WEFT_READY, weft_yield_poll(&y, &cx));
    ASSERT_EQ(WEFT_READY, weft_yield_poll(&y, &cx));
    ASSERT_EQ(1, atomic_load(&cw_wake_refs));
    weft_yield_drop(&y);

    weft_yield_init(&y);                         /* with the noop waker */
    ASSERT_EQ(WEFT_PENDING, weft_yield_poll(&y, &ncx));
    ASSERT_EQ(WEFT_READY, weft_yield_poll(&y, &ncx));
    weft_yield_drop(&y);
}

/* Task wakers: a clone will_wake the original; another task's does not. */
static weft_waker ww_first;

typedef struct ww {
    int second;
} ww;

static weft_poll ww_poll(ww *f, weft_context *cx, void *out)
{
    weft_waker c = weft_waker_clone(cx->waker);
    int *res = out;

    *res = 0;
    if (weft_waker_will_wake(cx->waker, &c))
        *res |= 1;
    if (f->second && !weft_waker_will_wake(cx->waker, &ww_first))
        *res |= 2;
    if (!f->second)
        ww_first = weft_waker_clone(cx->waker);
    weft_waker_drop(&c);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(ww, ww_poll, NULL, int);

TEST(task_waker_will_wake)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    int r1 = 0, r2 = 0;

    ww_first = WEFT_WAKER_EMPTY;
    ASSERT_OK(weft_block_on(rt, &ww_future, &(ww){ 0 }, &r1));
    ASSERT_OK(weft_block_on(rt, &ww_future, &(ww){ 1 }, &r2));
    ASSERT_EQ(1, r1);
    ASSERT_EQ(3, r2);
    weft_waker_drop(&ww_first);
    weft_runtime_free(rt);
}

/* weft_yield is "pending once (waking itself)": polled with a context
 * whose waker a combinator substituted (to learn which child woke; the rest
 * of the context copied from its own), that waker must be woken, or the
 * combinator never polls the yield again. */
typedef struct subst {
    int unused;
} subst;

static weft_poll subst_poll(subst *s, weft_context *cx, void *out)
{
    int tag;
    weft_waker mine = { &tag, &cw_vtable };
    weft_context sub = *cx;          /* a child's context: our own waker */
    weft_yield y;
    weft_poll r;

    (void)s;
    sub.waker = &mine;
    weft_yield_init(&y);
    r = weft_yield_poll(&y, &sub);
    *(int *)out = r == WEFT_PENDING ? atomic_load(&cw_wakes) + atomic_load(&cw_wake_refs)
                                    : -1;
    weft_yield_drop(&y);
    return WEFT_READY;               /* the combinator is done with it */
}

WEFT_DEFINE_FUTURE(subst, subst_poll, NULL, int);

TEST(yield_wakes_a_substituted_waker)
{
    weft_flavor flavors[2] = { WEFT_MULTI_THREAD, WEFT_CURRENT_THREAD };

    for (int f = 0; f < 2; f++) {
        weft_runtime *rt = tt_runtime(flavors[f], flavors[f] == WEFT_MULTI_THREAD ? 2 : 0);
        int woken = -2;

        cw_reset();
        ASSERT_OK(weft_block_on(rt, &subst_future, &(subst){ 0 }, &woken));
        ASSERT_EQ(1, woken);                     /* the child's waker, once */
        ASSERT_EQ(0, atomic_load(&cw_clones) - atomic_load(&cw_drops));
        weft_runtime_free(rt);
    }
}
