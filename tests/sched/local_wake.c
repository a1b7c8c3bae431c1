// SPDX-License-Identifier: MIT
/* Local wakes (issue 13): a task woken by a task of its own runtime on a
 * worker goes to that worker's LIFO slot already RUNNING, a yield entry
 * (src/task/task.h, "Local wakes"). What must stay true while it waits
 * there: the dump shows it as scheduled, wakes that land before its poll
 * are coalesced into that poll, an abort cancels it without a poll,
 * shutdown cancels it once, the next drive of a current-thread runtime
 * polls it, the watcher may take it from behind a long poll, and under
 * races with foreign wakes and aborts it is never polled twice at once. */
#define _GNU_SOURCE
#include "sched_test.h"

/* ---- a sleeper: parks, leaving a clone of its waker in `slot` -------------------- */
static weft_waker sleeper_waker;         /* the test's; dropped by the test */
static atomic_long sleeper_polls, sleeper_drops;
static atomic_bool sleeper_finish;
static atomic_bool sleeper_parked;       /* sleeper_waker is set (published) */

typedef struct sleeper {
    int unused;
} sleeper;

static weft_poll sleeper_poll(sleeper *s, weft_context *cx, void *out)
{
    (void)s;
    (void)out;
    if (atomic_fetch_add(&sleeper_polls, 1) == 0) {
        sleeper_waker = weft_waker_clone(weft_context_waker(cx));
        atomic_store(&sleeper_parked, true); /* after the waker: publishes it */
        return WEFT_PENDING;                 /* the first poll always parks */
    }
    return atomic_load(&sleeper_finish) ? WEFT_READY : WEFT_PENDING;
}

static void sleeper_drop(sleeper *s)
{
    (void)s;
    atomic_fetch_add(&sleeper_drops, 1);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(sleeper, sleeper_poll, sleeper_drop);

static void sleeper_reset(void)
{
    atomic_store(&sleeper_polls, 0);
    atomic_store(&sleeper_drops, 0);
    atomic_store(&sleeper_finish, false);
    atomic_store(&sleeper_parked, false);
    sleeper_waker = WEFT_WAKER_EMPTY;
}

/* The sleeper's state in a dump (its type is found by name). */
struct find {
    bool found;
    weft_task_state state;
};

static int find_sleeper(const weft_task_info *ti, void *arg)
{
    struct find *f = arg;

    if (ti->type_name && strcmp(ti->type_name, "sleeper") == 0) {
        f->found = true;
        f->state = ti->state;
    }
    return 0;
}

/* ---- the waker task: what it does in one poll ------------------------------------- */
enum { DO_WAKE = 1, DO_DUMP = 2, DO_ABORT = 4, DO_SPIN = 8, DO_WAKE_MANY = 16 };

static weft_runtime *cur_rt;
static weft_join *sleeper_join;
static struct find seen;                 /* DO_DUMP: the sleeper after the wake */
static atomic_long seen_polls;           /* the sleeper's polls at the dump */

typedef struct waker_task {
    weft_async co;
    weft_yield y;
    unsigned what;
} waker_task;

static weft_poll waker_task_poll(waker_task *w, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&w->co);
    /* until the sleeper has parked (and published its waker) */
    while (!atomic_load(&sleeper_parked))
        WEFT_YIELD(&w->co, &w->y, cx);
    if (w->what & DO_WAKE_MANY) {
        for (int k = 0; k < 500; k++) {      /* no await in here */
            weft_waker c = weft_waker_clone(&sleeper_waker);

            weft_waker_wake_by_ref(&sleeper_waker);
            weft_waker_wake(&c);
        }
    } else if (w->what & DO_WAKE) {
        weft_waker_wake_by_ref(&sleeper_waker);
    }
    if (w->what & DO_DUMP) {
        seen.found = false;
        ASSERT_OK(weft_runtime_tasks(cur_rt, find_sleeper, &seen));
        atomic_store(&seen_polls, atomic_load(&sleeper_polls));
    }
    if (w->what & DO_ABORT)
        weft_join_abort(sleeper_join);
    if (w->what & DO_SPIN) {
        /* a long poll: the sleeper sits in this worker's LIFO slot until
         * the watcher takes it (the watchdog is only a bound) */
        uint64_t end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);

        while (atomic_load(&sleeper_polls) < 2 && harness_now_ns() < end)
            ;
    }
    WEFT_END(&w->co);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(waker_task, waker_task_poll, NULL);

static weft_runtime *setup(weft_runtime_options opt)
{
    weft_runtime *rt;

    sleeper_reset();
    ASSERT_OK(weft_runtime_new(&rt, &opt));
    cur_rt = rt;
    ASSERT_OK(weft_spawn(rt, &sleeper_future, &(sleeper){ 0 }, &sleeper_join));
    return rt;
}

static void teardown(weft_runtime *rt)
{
    weft_join_drop(sleeper_join);
    weft_waker_drop(&sleeper_waker);
    weft_runtime_free(rt);
}

/* Woken by a task on a current-thread runtime, the sleeper waits in the
 * LIFO slot until the waker's poll returns: the dump taken in between must
 * show it as scheduled (not running: nobody polls it yet). */
TEST(a_locally_woken_task_shows_as_scheduled_current_thread)
{
    weft_runtime *rt = setup((weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD });

    ASSERT_OK(weft_spawn_detached(rt, &waker_task_future, &(waker_task){ .what = DO_WAKE | DO_DUMP }));
    atomic_store(&sleeper_finish, true);     /* its next poll completes it */
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT(seen.found);
    ASSERT_EQ(1, atomic_load(&seen_polls));
    ASSERT_EQ(WEFT_TASK_SCHEDULED, seen.state);
    ASSERT_EQ(2, atomic_load(&sleeper_polls));
    ASSERT_OK(weft_join_wait(sleeper_join, NULL));
    teardown(rt);
}

/* The same on two workers: unless the watcher took it and polled it in
 * between (then it may be running), it is scheduled. */
TEST(a_locally_woken_task_shows_as_scheduled_multi_thread)
{
    weft_runtime *rt = setup((weft_runtime_options){ .workers = 2 });
    weft_join *j;

    atomic_store(&sleeper_finish, true);
    ASSERT_OK(weft_spawn(rt, &waker_task_future, &(waker_task){ .what = DO_WAKE | DO_DUMP }, &j));
    ASSERT_OK(weft_join_wait(j, NULL));
    weft_join_drop(j);
    ASSERT_OK(weft_join_wait(sleeper_join, NULL));
    ASSERT(seen.found);
    if (atomic_load(&seen_polls) == 1)
        ASSERT(seen.state == WEFT_TASK_SCHEDULED || seen.state == WEFT_TASK_RUNNING ||
               seen.state == WEFT_TASK_COMPLETED);
    ASSERT_EQ(2, atomic_load(&sleeper_polls));
    teardown(rt);
}

/* A root that yields `left` times: drives a current-thread runtime a while. */
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

/* Let the sleeper finish: a foreign wake, then drive until it completed. */
static void finish_sleeper(weft_runtime *rt)
{
    atomic_store(&sleeper_finish, true);
    weft_waker_wake_by_ref(&sleeper_waker);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_join_wait(sleeper_join, NULL));
}

/* 1,000 wakes (by reference and by value) of an idle task from one poll:
 * the first hands it over RUNNING, the rest land before its poll begins
 * and are coalesced into it: one poll more, not two. */
TEST(wakes_before_the_poll_are_coalesced_current_thread)
{
    weft_runtime *rt = setup((weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD });

    ASSERT_OK(weft_spawn_detached(rt, &waker_task_future, &(waker_task){ .what = DO_WAKE_MANY }));
    ASSERT_OK(weft_block_on(rt, &yield_n_future, &(yield_n){ .left = 10 }, NULL));
    ASSERT_EQ(2, atomic_load(&sleeper_polls));
    finish_sleeper(rt);
    ASSERT_EQ(3, atomic_load(&sleeper_polls));
    teardown(rt);
}

/* Woken, then aborted before its poll: cancelled when popped, never polled
 * again; its future is dropped once. */
TEST(abort_after_a_local_wake_cancels_without_a_poll)
{
    weft_runtime *rt = setup((weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD });

    ASSERT_OK(weft_spawn_detached(rt, &waker_task_future,
                                  &(waker_task){ .what = DO_WAKE | DO_ABORT }));
    ASSERT_OK(weft_block_on(rt, &yield_n_future, &(yield_n){ .left = 10 }, NULL));
    ASSERT_EQ(-ECANCELED, weft_join_wait(sleeper_join, NULL));
    ASSERT_EQ(1, atomic_load(&sleeper_polls));
    ASSERT_EQ(1, atomic_load(&sleeper_drops));
    teardown(rt);
    ASSERT_EQ(1, atomic_load(&sleeper_drops));
}

/* ---- shutdown while tasks wake each other ------------------------------------------ */
/* PAIRS pairs of tasks wake each other for ever (each leaves its waker in
 * the pair's slot and wakes the partner's): local wakes all the time, so
 * at the free the LIFO slots and queues hold tasks handed over RUNNING.
 * Shutdown cancels every one once. */
enum { PAIRS = 16 };

struct pair {
    pthread_mutex_t lock;
    weft_waker w[2];                     /* ->lock */
};

static struct pair pairs[PAIRS];
static atomic_long pair_polls, pair_drops;

typedef struct pairer {
    struct pair *p;
    unsigned side;
} pairer;

static weft_poll pairer_poll(pairer *f, weft_context *cx, void *out)
{
    weft_waker other, old;

    (void)out;
    atomic_fetch_add(&pair_polls, 1);
    pthread_mutex_lock(&f->p->lock);
    old = f->p->w[f->side];
    f->p->w[f->side] = weft_waker_clone(weft_context_waker(cx));
    other = f->p->w[!f->side];
    f->p->w[!f->side] = WEFT_WAKER_EMPTY;
    pthread_mutex_unlock(&f->p->lock);
    weft_waker_drop(&old);
    weft_waker_wake(&other);                 /* a local wake of the partner */
    return WEFT_PENDING;
}

static void pairer_drop(pairer *f)
{
    (void)f;
    atomic_fetch_add(&pair_drops, 1);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(pairer, pairer_poll, pairer_drop);

static void free_while_waking(weft_runtime_options opt)
{
    weft_runtime *rt;

    atomic_store(&pair_polls, 0);
    atomic_store(&pair_drops, 0);
    for (unsigned i = 0; i < PAIRS; i++) {
        pthread_mutex_init(&pairs[i].lock, NULL);
        pairs[i].w[0] = pairs[i].w[1] = WEFT_WAKER_EMPTY;
    }
    ASSERT_OK(weft_runtime_new(&rt, &opt));
    for (unsigned i = 0; i < 2 * PAIRS; i++)
        ASSERT_OK(weft_spawn_detached(rt, &pairer_future, &(pairer){ &pairs[i / 2], i % 2 }));
    if (opt.flavor == WEFT_CURRENT_THREAD)
        ASSERT_OK(weft_block_on(rt, &yield_n_future, &(yield_n){ .left = 50 }, NULL));
    else
        WAIT_AT_LEAST(&pair_polls, 100 * PAIRS, WATCHDOG_MS, "pair polls");
    ASSERT(atomic_load(&pair_polls) >= 4 * PAIRS);
    weft_runtime_free(rt);
    ASSERT_EQ(2 * PAIRS, atomic_load(&pair_drops));
    for (unsigned i = 0; i < PAIRS; i++) {
        weft_waker_drop(&pairs[i].w[0]);
        weft_waker_drop(&pairs[i].w[1]);
        pthread_mutex_destroy(&pairs[i].lock);
    }
    ASSERT_EQ(2 * PAIRS, atomic_load(&pair_drops));
}

TEST(free_cancels_tasks_woken_locally_once_multi_thread)
{
    free_while_waking((weft_runtime_options){ .workers = 2 });
}

TEST(free_cancels_tasks_woken_locally_once_current_thread)
{
    free_while_waking((weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD });
}

/* Woken into the slot of a worker whose poll then runs long: the watcher
 * (the other worker) takes it and polls it meanwhile (the waker's poll
 * ends only once the sleeper has been polled again; the watchdog is a
 * bound, not the verdict). */
TEST(the_watcher_takes_a_locally_woken_task_from_a_long_poll)
{
    weft_runtime *rt = setup((weft_runtime_options){ .workers = 2 });
    weft_join *j;
    uint64_t t0 = harness_now_ns();

    atomic_store(&sleeper_finish, true);
    ASSERT_OK(weft_spawn(rt, &waker_task_future, &(waker_task){ .what = DO_WAKE | DO_SPIN }, &j));
    ASSERT_OK(weft_join_wait(j, NULL));
    weft_join_drop(j);
    ASSERT(harness_now_ns() - t0 < ms_to_ns(WATCHDOG_MS));   /* not the watchdog */
    ASSERT_EQ(2, atomic_load(&sleeper_polls));
    ASSERT_OK(weft_join_wait(sleeper_join, NULL));
    teardown(rt);
}

/* ---- races: local wakes against foreign wakes and aborts --------------------------- */
/* TARGETS tasks each complete after `target_polls` polls, each leaving a
 * clone of its waker in its slot; WAKERS tasks (local wakes, on the
 * workers) and two plain threads (foreign wakes) take wakers out of random
 * slots and wake them, by value or by reference; a plain thread aborts
 * every eighth target once it has been polled a while. A target checks
 * that no other thread polls it at the same time; every future is dropped
 * exactly once; every join reports 0 or -ECANCELED (only the aborted). */
enum { TARGETS = 48, WAKERS = 4 };

struct tslot {
    pthread_mutex_t lock;
    weft_waker w;                        /* ->lock */
    bool has;                            /* ->lock */
    atomic_int in_poll;
    atomic_long polls;
};

static struct tslot tslots[TARGETS];
static unsigned target_polls;
static atomic_long targets_done, target_drops, overlaps;
static atomic_bool race_stop;

typedef struct target {
    struct tslot *s;
} target;

static weft_poll target_poll(target *t, weft_context *cx, void *out)
{
    struct tslot *s = t->s;
    long n;

    (void)out;
    if (atomic_exchange(&s->in_poll, 1) != 0)
        atomic_fetch_add(&overlaps, 1);      /* polled twice at once */
    n = atomic_fetch_add(&s->polls, 1) + 1;
    if (n < (long)target_polls) {
        pthread_mutex_lock(&s->lock);
        if (!s->has) {
            s->w = weft_waker_clone(weft_context_waker(cx));
            s->has = true;
        }
        pthread_mutex_unlock(&s->lock);
    }
    atomic_store(&s->in_poll, 0);
    if (n < (long)target_polls)
        return WEFT_PENDING;
    atomic_fetch_add(&targets_done, 1);
    return WEFT_READY;
}

static void target_drop(target *t)
{
    (void)t;
    atomic_fetch_add(&target_drops, 1);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(target, target_poll, target_drop);

/* Take a waker out of slot i (if any) and wake it: by value, or by
 * reference and then drop. */
static void wake_slot(unsigned i, unsigned how)
{
    struct tslot *s = &tslots[i % TARGETS];
    weft_waker w = WEFT_WAKER_EMPTY;

    pthread_mutex_lock(&s->lock);
    if (s->has) {
        w = s->w;
        s->has = false;
    }
    pthread_mutex_unlock(&s->lock);
    if (how & 1) {
        weft_waker_wake(&w);
    } else {
        weft_waker_wake_by_ref(&w);
        weft_waker_wake_by_ref(&w);          /* a duplicate: coalesced */
        weft_waker_drop(&w);
    }
}

typedef struct waker_loop {
    weft_async co;
    weft_yield y;
    unsigned seed, k;
} waker_loop;

static weft_poll waker_loop_poll(waker_loop *l, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&l->co);
    while (!atomic_load(&race_stop)) {
        for (l->k = 0; l->k < 8; l->k++) {
            l->seed = l->seed * 1103515245u + 12345u;
            wake_slot(l->seed >> 8, l->seed >> 4);
        }
        WEFT_YIELD(&l->co, &l->y, cx);
    }
    WEFT_END(&l->co);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(waker_loop, waker_loop_poll, NULL);

static void *foreign_waker_main(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;

    while (!atomic_load(&race_stop)) {
        seed = seed * 1103515245u + 12345u;
        wake_slot(seed >> 8, seed >> 4);
    }
    return NULL;
}

static weft_join *target_joins[TARGETS];

static void *aborter_main(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < TARGETS; i += 8) {
        while (atomic_load(&tslots[i].polls) < (long)target_polls / 4 &&
               !atomic_load(&race_stop))
            sched_yield();
        weft_join_abort(target_joins[i]);
    }
    return NULL;
}

static void local_wake_races(weft_runtime_options opt)
{
    weft_runtime *rt;
    weft_join *wj[WAKERS];
    pthread_t th[3];
    long aborted = 0;

    target_polls = (unsigned)harness_scale(400);
    if (target_polls < 8)
        target_polls = 8;
    atomic_store(&targets_done, 0);
    atomic_store(&target_drops, 0);
    atomic_store(&overlaps, 0);
    atomic_store(&race_stop, false);
    for (unsigned i = 0; i < TARGETS; i++) {
        pthread_mutex_init(&tslots[i].lock, NULL);
        tslots[i].has = false;
        atomic_store(&tslots[i].in_poll, 0);
        atomic_store(&tslots[i].polls, 0);
    }
    ASSERT_OK(weft_runtime_new(&rt, &opt));
    for (unsigned i = 0; i < TARGETS; i++)
        ASSERT_OK(weft_spawn(rt, &target_future, &(target){ .s = &tslots[i] }, &target_joins[i]));
    for (unsigned i = 0; i < WAKERS; i++)
        ASSERT_OK(weft_spawn(rt, &waker_loop_future, &(waker_loop){ .seed = i + 1 }, &wj[i]));
    START_THREAD(&th[0], foreign_waker_main, (void *)(uintptr_t)77);
    START_THREAD(&th[1], foreign_waker_main, (void *)(uintptr_t)991);
    START_THREAD(&th[2], aborter_main, NULL);
    for (unsigned i = 0; i < TARGETS; i++) {
        int r = weft_join_wait(target_joins[i], NULL);

        if (r == -ECANCELED) {
            ASSERT(i % 8 == 0);
            aborted++;
        } else {
            ASSERT_OK(r);
        }
    }
    atomic_store(&race_stop, true);
    for (unsigned i = 0; i < 3; i++)
        JOIN_THREAD_WITHIN(th[i], WATCHDOG_MS, "waker thread");
    for (unsigned i = 0; i < WAKERS; i++) {
        ASSERT_OK(weft_join_wait(wj[i], NULL));
        weft_join_drop(wj[i]);
    }
    ASSERT_EQ(0, atomic_load(&overlaps));
    ASSERT_EQ(TARGETS, atomic_load(&target_drops));
    ASSERT_EQ(TARGETS - aborted, atomic_load(&targets_done));
    for (unsigned i = 0; i < TARGETS; i++) {
        weft_join_drop(target_joins[i]);
        if (tslots[i].has)
            weft_waker_drop(&tslots[i].w);
        pthread_mutex_destroy(&tslots[i].lock);
    }
    weft_runtime_free(rt);
    ASSERT_EQ(TARGETS, atomic_load(&target_drops));
}

TEST(local_wakes_race_foreign_wakes_and_aborts_two_workers)
{
    local_wake_races((weft_runtime_options){ .workers = 2 });
}

TEST(local_wakes_race_foreign_wakes_and_aborts_four_workers)
{
    local_wake_races((weft_runtime_options){ .workers = 4 });
}
