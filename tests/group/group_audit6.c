/* SPDX-License-Identifier: MIT */
/* Audit 6 of weft/group.h: promises no earlier test pinned down. The group's
 * token after weft_group_free() of a group nobody cancelled; child tokens
 * made after a cancel; weft_group_join() refused on a worker even for an
 * empty group; the order of a wait's results (a failure wins over a
 * cancellation, and is remembered); what counts as a failure (short outputs
 * never fail, unaligned outputs are read); a drain with no time at all;
 * spawns racing a cancel from another thread (each accepted child dropped
 * exactly once, every later spawn -ECANCELED); select never writes a loser's
 * output; the combinators' refusals own nothing. */
#include "../sync/sync_test.h"
#include <string.h>

#include "weft/group.h"

/* ---- futures -------------------------------------------------------------- */

/* Completes at once with `code`. */
typedef struct quick {
    int code;
} quick;

static weft_poll quick_poll(quick *q, weft_context *cx, void *out)
{
    (void)cx;
    memcpy(out, &q->code, sizeof(int));
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_STATIC_(quick, quick_poll, NULL, sizeof(int), _Alignof(int));

/* Waits for `tok` to be cancelled (never completes otherwise); counts its
 * drops in *drops. */
typedef struct sleeper {
    weft_cancel *tok;
    atomic_int *drops;
    bool init;
    weft_cancel_wait w;
} sleeper;

static weft_poll sleeper_poll(sleeper *s, weft_context *cx, void *out)
{
    int r;

    if (!s->init) {
        weft_cancel_wait_init(&s->w, s->tok);
        s->init = true;
    }
    if (weft_cancel_wait_poll(&s->w, cx, &r) == WEFT_PENDING)
        return WEFT_PENDING;
    r = 0;
    memcpy(out, &r, sizeof(int));
    return WEFT_READY;
}

static void sleeper_drop(sleeper *s)
{
    if (s->init)
        weft_cancel_wait_drop(&s->w);
    s->init = false;
    if (s->drops)
        atomic_fetch_add(s->drops, 1);
}
WEFT_DEFINE_FUTURE_STATIC_(sleeper, sleeper_poll, sleeper_drop, sizeof(int), _Alignof(int));

/* Output of one byte (below sizeof(int)): -1 as a char never fails. */
typedef struct shorty {
    int dummy;
} shorty;

static weft_poll shorty_poll(shorty *s, weft_context *cx, void *out)
{
    (void)s;
    (void)cx;
    memset(out, 0xff, 1);
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_STATIC_(shorty, shorty_poll, NULL, 1, 1);

/* Output of 7 bytes at alignment 1, its first int -9 (memcpy'd). */
typedef struct oddout {
    int dummy;
} oddout;

static weft_poll oddout_poll(oddout *o, weft_context *cx, void *out)
{
    int v = -9;

    (void)o;
    (void)cx;
    memset(out, 0, 7);
    memcpy(out, &v, sizeof(int));
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_STATIC_(oddout, oddout_poll, NULL, 7, 1);

/* Runs fn(arg) once, on whatever thread polls it; output: its int. */
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
WEFT_DEFINE_FUTURE_STATIC_(probe, probe_poll, NULL, sizeof(int), _Alignof(int));

/* Block a plain thread on a group wait / drain. */
static int wait_group(weft_runtime *rt, weft_group *g)
{
    weft_group_wait w;
    int res = 1;

    weft_group_wait_init(&w, g);
    ASSERT_OK(weft_block_on(rt, &weft_group_wait_future, &w, &res));
    return res;
}

static int drain_group(weft_runtime *rt, weft_group *g, uint64_t ms)
{
    weft_group_drain d;
    int res = 1;

    weft_group_drain_init(&d, g, ms);
    ASSERT_OK(weft_block_on(rt, &weft_group_drain_future, &d, &res));
    return res;
}

/* ---- tests ---------------------------------------------------------------- */

/* weft_group_free() cancels the group's token even when the group itself
 * was never cancelled and had no child; a clone outlives the group. A child
 * token made of the group's token after a cancel is born cancelled. */
TEST(group_free_cancels_its_token_and_late_child_tokens_are_born_cancelled)
{
    weft_runtime *rt = st_runtime(1);
    weft_group *g;
    weft_cancel *clone, *kid;

    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    clone = weft_cancel_clone(weft_group_token(g));
    ASSERT(!weft_cancel_is_cancelled(clone));
    ASSERT_OK(weft_group_free(g));
    ASSERT(weft_cancel_is_cancelled(clone));
    weft_cancel_drop(clone);

    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_CANCEL_ON_FAILURE));
    weft_group_cancel(g);
    weft_group_cancel(g);                      /* idempotent */
    ASSERT(weft_group_is_cancelled(g));
    ASSERT_OK(weft_cancel_child(weft_group_token(g), &kid));
    ASSERT(weft_cancel_is_cancelled(kid));
    ASSERT_EQ(-ECANCELED, weft_group_spawn(g, &quick_future, &(quick){ 0 }));
    weft_cancel_drop(kid);
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
}

/* A failure's code wins over a cancellation seen later (and earlier), and is
 * remembered for the group's life: a later batch of good children does not
 * clear it. Under WAIT_ALL the siblings ran on. */
static atomic_int fail_drops;

TEST(group_wait_failure_wins_over_cancel_and_is_remembered)
{
    weft_runtime *rt = st_runtime(2);
    weft_cancel *never;
    weft_group *g;

    ASSERT_OK(weft_cancel_new(&never));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_group_spawn(g, &sleeper_future,
                               &(sleeper){ .tok = never, .drops = &fail_drops }));
    ASSERT_OK(weft_group_spawn(g, &quick_future, &(quick){ -7 }));
    ASSERT_OK(weft_group_spawn(g, &quick_future, &(quick){ -8 }));
    ST_WAIT_UNTIL(weft_group_live(g) == 1);
    ASSERT(!weft_group_is_cancelled(g));       /* WAIT_ALL: siblings run on */
    weft_group_cancel(g);
    {
        int r = wait_group(rt, g);

        if (r != -7 && r != -8)
            harness_fail(__FILE__, __LINE__, "wait: %d, not a failure's code", r);
    }
    ASSERT_EQ(1, atomic_load(&fail_drops));
    ASSERT_OK(weft_group_free(g));

    /* the failure first, the cancellation second, then good children */
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_group_spawn(g, &quick_future, &(quick){ -3 }));
    ASSERT_EQ(-3, wait_group(rt, g));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(weft_group_spawn(g, &quick_future, &(quick){ 0 }));
    ASSERT_EQ(-3, wait_group(rt, g));
    ASSERT_EQ(-3, weft_group_join(g));
    ASSERT_OK(weft_group_free(g));

    /* only a cancellation: -ECANCELED, remembered too */
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_group_spawn(g, &sleeper_future,
                               &(sleeper){ .tok = never, .drops = &fail_drops }));
    weft_group_cancel(g);
    ASSERT_EQ(-ECANCELED, wait_group(rt, g));
    ASSERT_EQ(-ECANCELED, weft_group_join(g));
    ASSERT_EQ(2, atomic_load(&fail_drops));
    ASSERT_OK(weft_group_free(g));
    weft_cancel_drop(never);
    weft_runtime_free(rt);
}

/* What a failure is: an output below sizeof(int) never fails, whatever its
 * bytes; an odd-sized, 1-aligned output is read with memcpy. Under
 * CANCEL_ON_FAILURE the failure cancels the group and its token, and later
 * spawns get -ECANCELED. */
TEST(group_failure_reads_outputs_as_documented)
{
    weft_runtime *rt = st_runtime(2);
    weft_group *g;

    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_CANCEL_ON_FAILURE));
    for (int i = 0; i < 8; i++)
        ASSERT_OK(weft_group_spawn(g, &shorty_future, &(shorty){ 0 }));
    ASSERT_EQ(0, wait_group(rt, g));
    ASSERT(!weft_group_is_cancelled(g));
    ASSERT(!weft_cancel_is_cancelled(weft_group_token(g)));
    ASSERT_OK(weft_group_spawn(g, &oddout_future, &(oddout){ 0 }));
    ASSERT_EQ(-9, wait_group(rt, g));
    ASSERT(weft_group_is_cancelled(g));
    ASSERT(weft_cancel_is_cancelled(weft_group_token(g)));
    ASSERT_EQ(-ECANCELED, weft_group_spawn(g, &quick_future, &(quick){ 0 }));
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
}

/* weft_group_join() is refused on a worker thread even when no child is
 * live (it says so without a condition); weft_group_free() there frees an
 * empty group. Both are refused on the driving thread of a current-thread
 * runtime the same way. */
typedef struct onworker {
    weft_runtime *rt;
} onworker;

static int join_on_worker(void *arg)
{
    onworker *o = arg;
    weft_group *g;
    int r;

    if (weft_group_new(&g, o->rt, WEFT_GROUP_WAIT_ALL) < 0)
        return 1000;
    r = weft_group_join(g);
    if (weft_group_free(g) != 0)
        return 2000;
    return r;
}

TEST(group_join_refused_on_a_worker_even_when_empty)
{
    weft_runtime *rt = st_runtime(1), *ct;
    onworker o = { rt };
    int res = 1;

    ASSERT_OK(weft_block_on(rt, &probe_future, &(probe){ join_on_worker, &o }, &res));
    ASSERT_EQ(-EINVAL, res);
    ASSERT_OK(weft_runtime_new(&ct, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    o.rt = ct;
    res = 1;
    ASSERT_OK(weft_block_on(ct, &probe_future, &(probe){ join_on_worker, &o }, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_runtime_free(ct);
    weft_runtime_free(rt);
}

/* A drain with no time at all: 0 at once for an empty group (which stays
 * usable, not cancelled); with a child that never ends: -ETIMEDOUT, the
 * child dropped exactly once by the time it is READY, later spawns
 * -ECANCELED. A NULL group: -EINVAL. */
static atomic_int drain_drops;

TEST(drain_with_zero_ms)
{
    weft_runtime *rt = st_runtime(2);
    weft_cancel *never;
    weft_group *g;

    ASSERT_OK(weft_cancel_new(&never));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_EQ(0, drain_group(rt, g, 0));
    ASSERT(!weft_group_is_cancelled(g));
    ASSERT_OK(weft_group_spawn(g, &sleeper_future,
                               &(sleeper){ .tok = never, .drops = &drain_drops }));
    ASSERT_OK(weft_group_spawn(g, &sleeper_future,
                               &(sleeper){ .tok = never, .drops = &drain_drops }));
    ASSERT_EQ(-ETIMEDOUT, drain_group(rt, g, 0));
    ASSERT_EQ(2, atomic_load(&drain_drops));
    ASSERT_EQ(0, weft_group_live(g));
    ASSERT(weft_group_is_cancelled(g));
    ASSERT(weft_cancel_is_cancelled(weft_group_token(g)));
    ASSERT_EQ(-ECANCELED, weft_group_spawn(g, &quick_future, &(quick){ 0 }));
    ASSERT_EQ(-EINVAL, drain_group(rt, NULL, 0));
    ASSERT_OK(weft_group_free(g));
    ASSERT_EQ(2, atomic_load(&drain_drops));
    weft_cancel_drop(never);
    weft_runtime_free(rt);
}

/* A group cancelled from another thread while two threads spawn into it:
 * every spawn returns 0 or -ECANCELED, none returns 0 after the cancel has
 * returned, and each accepted child's drop runs exactly once. */
static atomic_int race_drops, race_ok, race_stop;

typedef struct spawner_arg {
    weft_group *g;
    weft_cancel *never;
    atomic_int after_cancel_ok;
} spawner_arg;

static atomic_int cancel_done;

static void *spawner(void *p)
{
    spawner_arg *a = p;

    while (!atomic_load(&race_stop)) {
        int seen_done = atomic_load(&cancel_done);
        int r = weft_group_spawn(a->g, &sleeper_future,
                                 &(sleeper){ .tok = a->never, .drops = &race_drops });

        if (r == 0) {
            atomic_fetch_add(&race_ok, 1);
            if (seen_done)
                atomic_fetch_add(&a->after_cancel_ok, 1);
        } else if (r != -ECANCELED) {
            harness_fail(__FILE__, __LINE__, "spawn: %d", r);
        } else {
            break;
        }
    }
    return NULL;
}

TEST(group_cancelled_from_a_thread_while_threads_spawn)
{
    weft_runtime *rt = st_runtime(2);
    int rounds = (int)harness_scale(20);

    for (int round = 0; round < rounds; round++) {
        weft_cancel *never;
        weft_group *g;
        spawner_arg a;
        pthread_t th[2];

        ASSERT_OK(weft_cancel_new(&never));
        ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
        a.g = g;
        a.never = never;
        atomic_init(&a.after_cancel_ok, 0);
        atomic_store(&race_drops, 0);
        atomic_store(&race_ok, 0);
        atomic_store(&race_stop, 0);
        atomic_store(&cancel_done, 0);
        for (int i = 0; i < 2; i++)
            ASSERT_EQ(0, pthread_create(&th[i], NULL, spawner, &a));
        ST_WAIT_UNTIL(atomic_load(&race_ok) >= 50);
        weft_group_cancel(g);
        atomic_store(&cancel_done, 1);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        ASSERT_EQ(0, atomic_load(&a.after_cancel_ok));
        ASSERT_EQ(-ECANCELED, wait_group(rt, g));
        ASSERT_EQ(atomic_load(&race_ok), atomic_load(&race_drops));
        ASSERT_OK(weft_group_free(g));
        ASSERT_EQ(atomic_load(&race_ok), atomic_load(&race_drops));
        weft_cancel_drop(never);
    }
    weft_runtime_free(rt);
}

/* Any number of wait futures on one group all complete, with one result. */
typedef struct waiters {
    weft_group *g;
    int res[5];
    weft_group_wait w[5];
    bool init;
} waiters;

static weft_poll waiters_poll(waiters *s, weft_context *cx, void *out)
{
    bool all = true;

    if (!s->init) {
        for (int i = 0; i < 5; i++)
            weft_group_wait_init(&s->w[i], s->g);
        s->init = true;
    }
    for (int i = 0; i < 5; i++)
        if (weft_group_wait_poll(&s->w[i], cx, &s->res[i]) == WEFT_PENDING)
            all = false;
    if (!all)
        return WEFT_PENDING;
    memcpy(out, s->res, sizeof(s->res));
    return WEFT_READY;
}

static void waiters_drop(waiters *s)
{
    for (int i = 0; s->init && i < 5; i++)
        weft_group_wait_drop(&s->w[i]);
}
WEFT_DEFINE_FUTURE_STATIC_(waiters, waiters_poll, waiters_drop, sizeof(int[5]), _Alignof(int));

static void *cancel_later(void *p)
{
    weft_group *g = p;

    ST_WAIT_UNTIL(weft_group_live(g) == 1);
    weft_group_cancel(g);
    return NULL;
}

TEST(group_many_waiters_all_complete)
{
    weft_runtime *rt = st_runtime(2);
    weft_cancel *never;
    weft_group *g;
    int res[5] = { 1, 1, 1, 1, 1 };
    pthread_t th;

    ASSERT_OK(weft_cancel_new(&never));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_group_spawn(g, &sleeper_future, &(sleeper){ .tok = never }));
    ASSERT_EQ(0, pthread_create(&th, NULL, cancel_later, g));
    ASSERT_OK(weft_block_on(rt, &waiters_future, &(waiters){ .g = g }, res));
    pthread_join(th, NULL);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(-ECANCELED, res[i]);
    ASSERT_OK(weft_group_free(g));
    weft_cancel_drop(never);
    weft_runtime_free(rt);
}

/* select: a loser polled PENDING before the winner never has its output
 * written; every future dropped exactly once. join_all over n == 0 with an
 * array: 0. select/race refusals own nothing (no drop). Polled by hand. */
typedef struct marked {
    bool ready;
    int val;
    int *drops;
} marked;

static weft_poll marked_poll(marked *m, weft_context *cx, void *out)
{
    (void)cx;
    if (!m->ready)
        return WEFT_PENDING;
    memcpy(out, &m->val, sizeof(int));
    return WEFT_READY;
}

static void marked_drop(marked *m)
{
    (*m->drops)++;
}
WEFT_DEFINE_FUTURE_STATIC_(marked, marked_poll, marked_drop, sizeof(int), _Alignof(int));

TEST(select_never_writes_losers_and_refusals_own_nothing)
{
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int drops[3] = { 0 }, outs[3] = { 77, 77, 77 }, res = 1;
    marked m[3] = { { false, 1, &drops[0] }, { true, 2, &drops[1] }, { true, 3, &drops[2] } };
    weft_future_ref refs[3];
    weft_select s;
    weft_join_all ja;
    weft_race r;

    for (int i = 0; i < 3; i++)
        refs[i] = (weft_future_ref){ .type = &marked_future, .future = &m[i], .out = &outs[i] };
    weft_select_init(&s, refs, 3);
    ASSERT_EQ(WEFT_READY, weft_select_poll(&s, &cx, &res));
    ASSERT_EQ(1, res);
    ASSERT_EQ(77, outs[0]);
    ASSERT_EQ(2, outs[1]);
    ASSERT_EQ(77, outs[2]);
    weft_select_drop(&s);
    weft_select_drop(&s);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(1, drops[i]);

    /* refused: n == 0 with a good array; nothing dropped */
    weft_select_init(&s, refs, 0);
    ASSERT_EQ(WEFT_READY, weft_select_poll(&s, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_select_drop(&s);
    weft_race_init(&r, &marked_future, m, 0, outs);
    ASSERT_EQ(WEFT_READY, weft_race_poll(&r, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_race_drop(&r);
    weft_race_init(&r, &marked_future, m, 3, NULL);
    ASSERT_EQ(WEFT_READY, weft_race_poll(&r, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_race_drop(&r);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(1, drops[i]);

    /* join_all of nothing, with an array: 0 at once */
    res = 1;
    weft_join_all_init(&ja, refs, 0);
    ASSERT_EQ(WEFT_READY, weft_join_all_poll(&ja, &cx, &res));
    ASSERT_EQ(0, res);
    ASSERT_EQ(WEFT_READY, weft_join_all_poll(&ja, &cx, &res));
    ASSERT_EQ(0, res);
    weft_join_all_drop(&ja);

    /* race: the lowest ready index wins; every element dropped once */
    drops[0] = drops[1] = drops[2] = 0;
    outs[0] = 77;
    weft_race_init(&r, &marked_future, m, 3, &outs[0]);
    ASSERT_EQ(WEFT_READY, weft_race_poll(&r, &cx, &res));
    ASSERT_EQ(1, res);
    ASSERT_EQ(2, outs[0]);
    ASSERT_EQ(WEFT_READY, weft_race_poll(&r, &cx, &res));
    ASSERT_EQ(1, res);
    weft_race_drop(&r);
    weft_race_drop(&r);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(1, drops[i]);
}

/* A drain with a deadline past the clock's range never times out (the sum
 * saturates): it waits for every child, those spawned during the drain
 * included, and answers 0 without cancelling the group. */
typedef struct drainer {
    weft_group *g;
    weft_cancel *tok;
    bool init;
    weft_group_drain d;
} drainer;

static atomic_int drainer_polled;

static weft_poll drainer_poll(drainer *s, weft_context *cx, void *out)
{
    int r;

    if (!s->init) {
        weft_group_drain_init(&s->d, s->g, UINT64_MAX);
        s->init = true;
    }
    if (weft_group_drain_poll(&s->d, cx, &r) == WEFT_PENDING) {
        atomic_store(&drainer_polled, 1);
        return WEFT_PENDING;
    }
    memcpy(out, &r, sizeof(int));
    return WEFT_READY;
}

static void drainer_drop(drainer *s)
{
    if (s->init)
        weft_group_drain_drop(&s->d);
}
WEFT_DEFINE_FUTURE_STATIC_(drainer, drainer_poll, drainer_drop, sizeof(int), _Alignof(int));

static atomic_int late_drops;

static void *spawn_then_cancel(void *p)
{
    drainer *s = p;

    ST_WAIT_UNTIL(atomic_load(&drainer_polled));
    ASSERT_OK(weft_group_spawn(s->g, &sleeper_future,
                               &(sleeper){ .tok = s->tok, .drops = &late_drops }));
    ASSERT_OK(weft_group_spawn(s->g, &quick_future, &(quick){ 0 }));
    weft_cancel_cancel(s->tok);                /* the children end on their own */
    return NULL;
}

TEST(drain_with_an_endless_deadline_waits_for_late_children)
{
    weft_runtime *rt = st_runtime(2);
    weft_cancel *tok;
    weft_group *g;
    drainer s = { 0 };
    pthread_t th;
    int res = 1;

    ASSERT_OK(weft_cancel_new(&tok));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_group_spawn(g, &sleeper_future, &(sleeper){ .tok = tok, .drops = &late_drops }));
    s.g = g;
    s.tok = tok;
    ASSERT_EQ(0, pthread_create(&th, NULL, spawn_then_cancel, &s));
    ASSERT_OK(weft_block_on(rt, &drainer_future, &s, &res));
    pthread_join(th, NULL);
    ASSERT_EQ(0, res);
    ASSERT_EQ(0, weft_group_live(g));
    ASSERT_EQ(2, atomic_load(&late_drops));
    ASSERT(!weft_group_is_cancelled(g));
    ASSERT_EQ(0, wait_group(rt, g));           /* they completed: no cancel seen */
    ASSERT_OK(weft_group_free(g));
    weft_cancel_drop(tok);
    weft_runtime_free(rt);
}

/* weft_group_cancel() from one thread races weft_runtime_shutdown() from
 * another: each child's drop runs exactly once, a wait then says
 * -ECANCELED, and weft_group_free() returns at once. */
static atomic_int both_drops, both_go;

static void *cancel_on_go(void *p)
{
    while (!atomic_load(&both_go))
        sched_yield();
    weft_group_cancel(p);
    return NULL;
}

static void *shutdown_on_go(void *p)
{
    while (!atomic_load(&both_go))
        sched_yield();
    ASSERT_OK(weft_runtime_shutdown(p));
    return NULL;
}

TEST(group_cancel_races_runtime_shutdown)
{
    int rounds = (int)harness_scale(20);

    for (int round = 0; round < rounds; round++) {
        weft_runtime *rt = st_runtime(2);
        weft_cancel *never;
        weft_group *g;
        pthread_t a, b;

        ASSERT_OK(weft_cancel_new(&never));
        ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
        atomic_store(&both_drops, 0);
        atomic_store(&both_go, 0);
        for (int i = 0; i < 64; i++)
            ASSERT_OK(weft_group_spawn(g, &sleeper_future,
                                       &(sleeper){ .tok = never, .drops = &both_drops }));
        ASSERT_EQ(0, pthread_create(&a, NULL, cancel_on_go, g));
        ASSERT_EQ(0, pthread_create(&b, NULL, shutdown_on_go, rt));
        atomic_store(&both_go, 1);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        ASSERT_EQ(0, weft_group_live(g));
        ASSERT_EQ(64, atomic_load(&both_drops));
        ASSERT_EQ(-ECANCELED, weft_group_join(g));
        ASSERT_EQ(-ECANCELED, weft_group_spawn(g, &quick_future, &(quick){ 0 }));
        ASSERT_OK(weft_group_free(g));
        ASSERT_EQ(64, atomic_load(&both_drops));
        weft_cancel_drop(never);
        weft_runtime_free(rt);
    }
}

/* A parent lives while it has children: the root's holder drops it, the
 * grandchild still sees a cancel made through a clone of the middle token,
 * and the last drop (the grandchild's) frees the whole chain (ASan: no
 * leak). Cancelling a child touches neither parent nor sibling. */
TEST(cancel_parent_outlives_its_holder_through_its_children)
{
    weft_cancel *root, *mid, *kid, *sib, *mid2;

    ASSERT_OK(weft_cancel_new(&root));
    ASSERT_OK(weft_cancel_child(root, &mid));
    ASSERT_OK(weft_cancel_child(mid, &kid));
    ASSERT_OK(weft_cancel_child(mid, &sib));
    ASSERT(weft_cancel_clone(NULL) == NULL);
    mid2 = weft_cancel_clone(mid);
    ASSERT(mid2 == mid);
    weft_cancel_drop(root);
    weft_cancel_drop(mid);
    weft_cancel_cancel(sib);
    ASSERT(weft_cancel_is_cancelled(sib));
    ASSERT(!weft_cancel_is_cancelled(kid));
    ASSERT(!weft_cancel_is_cancelled(mid2));
    weft_cancel_cancel(mid2);
    ASSERT(weft_cancel_is_cancelled(kid));
    weft_cancel_drop(sib);
    weft_cancel_drop(mid2);
    ASSERT(weft_cancel_is_cancelled(kid));
    weft_cancel_drop(kid);
    weft_cancel_drop(NULL);
    weft_cancel_cancel(NULL);
    ASSERT(!weft_cancel_is_cancelled(NULL));
    ASSERT_EQ(-EINVAL, weft_cancel_child(NULL, &kid));
    ASSERT_EQ(-EINVAL, weft_cancel_new(NULL));
}
