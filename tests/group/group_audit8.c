/* SPDX-License-Identifier: MIT */
/* Audit 8 of weft/group.h: the group's memory against the last child's
 * drop. weft_group_free() may free the group as soon as no child is live
 * and no wait future exists; the last child's drop wakes the group's wait
 * futures in batches, unlocking in between, and relocked the group after
 * each batch: a free made meanwhile (every wait future dropped, the last
 * child's count already gone) freed the group under it. */
#define _GNU_SOURCE
#include "../sync/sync_test.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "weft/group.h"

/* A waker whose first wake blocks until the test lets it go: it holds the
 * last child's drop inside its first batch of wakes, outside the group's
 * lock. */
typedef struct gate {
    atomic_int in_wake;       /* the first wake has begun */
    atomic_int go;            /* the test is done: let it return */
    atomic_int wakes;
} gate;

static const weft_waker_vtable gate_vtable;

static weft_waker gate_clone(const void *d)
{
    return (weft_waker){ d, &gate_vtable };
}

static void gate_wake(const void *d)
{
    gate *g = (gate *)(uintptr_t)d;

    if (atomic_fetch_add(&g->wakes, 1) == 0) {
        atomic_store(&g->in_wake, 1);
        ST_WAIT_UNTIL(atomic_load(&g->go));
    }
}

static void gate_drop(const void *d)
{
    (void)d;
}

static const weft_waker_vtable gate_vtable = { gate_clone, gate_wake, gate_wake, gate_drop };

/* Completes when the flag is set (polled by its own task). */
typedef struct held {
    atomic_int *release;
    weft_yield y;
} held;

static weft_poll held_poll(held *h, weft_context *cx, void *out)
{
    (void)out;
    if (atomic_load(h->release))
        return WEFT_READY;
    weft_waker_wake_by_ref(weft_context_waker(cx));    /* look again soon */
    return WEFT_PENDING;
}

WEFT_DEFINE_FUTURE_STATIC(held, held_poll, NULL, int);

#define WAITERS 100                 /* more than one batch of wakes (32) */
#define SCRIBBLES 256

/* group.h: weft_group_free() "waits until every child's future has been
 * dropped, and frees the group", "No wait future may still exist". Both
 * hold here when it runs, on a plain thread, while the last child's drop
 * is still waking the first batch of the group's waiters (its waker held
 * in the gate): the drop must not touch the group again. Without the fix
 * the drop relocked the freed group (ASan: heap-use-after-free; the plain
 * build read a mutex overwritten by the allocator). */
TEST(group_freed_while_the_last_childs_drop_wakes_its_waiters)
{
    weft_runtime *rt = st_runtime(1);
    weft_group *g;
    static weft_group_wait waits[WAITERS];
    gate gt = { 0 };
    weft_waker wk = { &gt, &gate_vtable };
    weft_context cx = weft_context_from_waker(&wk);
    atomic_int release = 0;
    void *scribble[SCRIBBLES];
    int res;

    /* the child polls itself until released: no busy-loop report */
    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .mask = WEFT_LINTS_OFF }));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_group_spawn(g, &held_future, &(held){ .release = &release }));
    for (int i = 0; i < WAITERS; i++) {
        weft_group_wait_init(&waits[i], g);
        ASSERT_EQ(WEFT_PENDING, weft_group_wait_poll(&waits[i], &cx, &res));
    }
    atomic_store(&release, 1);               /* the child completes: its drop wakes */
    ST_WAIT_UNTIL(atomic_load(&gt.in_wake));
    ASSERT_EQ(0, weft_group_live(g));
    /* the drop is inside its first batch, the group unlocked: drop every
     * wait (woken or still linked) and free the group */
    for (int i = 0; i < WAITERS; i++)
        weft_group_wait_drop(&waits[i]);
    ASSERT_OK(weft_group_free(g));
    /* reuse freed memory at once, scribbled over: a drop that still used
     * the group would find its lock and wait list garbage */
    for (int i = 0; i < SCRIBBLES; i++) {
        scribble[i] = malloc(16 + 16 * (size_t)(i % 32));
        ASSERT(scribble[i] != NULL);
        memset(scribble[i], 0xff, 16 + 16 * (size_t)(i % 32));
    }
    atomic_store(&gt.go, 1);                 /* the drop goes on */
    weft_runtime_free(rt);                   /* joins the worker: the drop is done */
    for (int i = 0; i < SCRIBBLES; i++)
        free(scribble[i]);
    ASSERT_LE(32, atomic_load(&gt.wakes));   /* only the first batch was woken */
}

/* ---- combinators refused at init own nothing ----------------------------------- */
typedef struct counted8 {
    atomic_int *drops;
} counted8;

static weft_poll counted8_poll(counted8 *c, weft_context *cx, void *out)
{
    (void)c;
    (void)cx;
    *(int *)out = 1;
    return WEFT_READY;
}

static void counted8_drop(counted8 *c)
{
    atomic_fetch_add(c->drops, 1);
}

WEFT_DEFINE_FUTURE_STATIC(counted8, counted8_poll, counted8_drop, int);

/* group.h: select and race refuse, at init, a count whose index would not
 * fit their int result (n above INT_MAX), and race a type of size 0 or an
 * array whose size overflows: -EINVAL, owning and dropping nothing (the
 * refusal reads no slot past the first it can tell is bad). */
TEST(select_and_race_refuse_counts_past_int_max_and_own_nothing)
{
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    atomic_int drops = 0;
    counted8 f[2] = { { &drops }, { &drops } };
    int out = 0, r;
    weft_future_ref ref = { &counted8_future, &f[0], &out, 0 };
    weft_select s;
    weft_race rc;
    weft_future_type zero = counted8_future;

    weft_select_init(&s, &ref, (size_t)INT_MAX + 1);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_select_poll(&s, &cx, &r));
    ASSERT_EQ(-EINVAL, r);
    weft_select_drop(&s);
    weft_race_init(&rc, &counted8_future, f, (size_t)INT_MAX + 1, &out);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_race_poll(&rc, &cx, &r));
    ASSERT_EQ(-EINVAL, r);
    weft_race_drop(&rc);
    weft_race_init(&rc, &counted8_future, f, SIZE_MAX / 2, &out);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_race_poll(&rc, &cx, &r));
    ASSERT_EQ(-EINVAL, r);
    weft_race_drop(&rc);
    zero.size = 0;
    weft_race_init(&rc, &zero, f, 2, &out);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_race_poll(&rc, &cx, &r));
    ASSERT_EQ(-EINVAL, r);
    weft_race_drop(&rc);
    ASSERT_EQ(0, atomic_load(&drops));       /* nothing owned, nothing dropped */
    ASSERT_EQ(0, out);                       /* nothing polled */
    /* the same futures in a proper race: one winner, both dropped once */
    weft_race_init(&rc, &counted8_future, f, 2, &out);
    ASSERT_EQ(WEFT_READY, weft_race_poll(&rc, &cx, &r));
    ASSERT_EQ(0, r);
    ASSERT_EQ(1, out);
    weft_race_drop(&rc);
    ASSERT_EQ(2, atomic_load(&drops));
}

/* The same race left to chance, many rounds: the last child completes on
 * a worker while this thread drops the group's waiters (some woken, some
 * still linked) and frees the group. Each child's drop once, nothing
 * touched after the free (ASan, TSan). */
TEST(group_freed_while_its_waiters_are_woken_and_dropped_stress)
{
    int rounds = (int)harness_scale(300);
    weft_runtime *rt = st_runtime(2);
    static weft_group_wait waits[WAITERS];

    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .mask = WEFT_LINTS_OFF }));
    for (int round = 0; round < rounds; round++) {
        weft_group *g;
        cwaker c = { 0 };
        weft_waker wk = cw_waker(&c);
        weft_context cx = weft_context_from_waker(&wk);
        atomic_int release = 0;
        int res, n = 33 + round % (WAITERS - 33);

        ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
        ASSERT_OK(weft_group_spawn(g, &held_future, &(held){ .release = &release }));
        for (int i = 0; i < n; i++) {
            weft_group_wait_init(&waits[i], g);
            ASSERT_EQ(WEFT_PENDING, weft_group_wait_poll(&waits[i], &cx, &res));
        }
        atomic_store(&release, 1);
        while (cw_wakes(&c) == 0 && round % 3)
            sched_yield();                   /* some rounds: once the wakes began */
        for (int i = 0; i < n; i++)
            weft_group_wait_drop(&waits[i]);
        ASSERT_OK(weft_group_free(g));       /* waits for the child's drop */
        /* the wakes in flight still hold references to our waker: a
         * waker's data lives until its last reference is consumed */
        ST_WAIT_UNTIL(atomic_load(&c.clones) == atomic_load(&c.drops));
    }
    weft_runtime_free(rt);
}

/* ---- a blocking join on one thread, the free on another ------------------------- */
typedef struct joiner8 {
    weft_group *g;
    atomic_int tid;
    atomic_int done;
    int result;
} joiner8;

static void *joiner8_main(void *arg)
{
    joiner8 *j = arg;

    atomic_store(&j->tid, (int)syscall(SYS_gettid));
    j->result = weft_group_join(j->g);
    atomic_store(&j->done, 1);
    return NULL;
}

static bool asleep8(int tid)
{
    char path[64], buf[256], *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'S';
}

/* group.h: weft_group_join() blocks "until no child is live"; free cancels
 * the children, waits for their drops and frees. A join waiting on one
 * thread while another frees the group: both return (the join with the
 * cancellation), and the group's memory outlives the join (without the fix
 * the join relocked the freed group, in the rounds where the free took the
 * lock first: it hung on the freed mutex, or ASan saw the use after free). */
TEST(group_join_waiting_while_another_thread_frees_the_group)
{
    int rounds = (int)harness_scale(100);
    weft_runtime *rt = st_runtime(2);

    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .mask = WEFT_LINTS_OFF }));
    for (int round = 0; round < rounds; round++) {
        weft_group *g;
        atomic_int release = 0;
        joiner8 j = { .result = 1 };
        pthread_t th;

        ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
        ASSERT_OK(weft_group_spawn(g, &held_future, &(held){ .release = &release }));
        j.g = g;
        ASSERT_EQ(0, pthread_create(&th, NULL, joiner8_main, &j));
        ST_WAIT_UNTIL(atomic_load(&j.tid) != 0);
        ST_WAIT_UNTIL(asleep8(atomic_load(&j.tid)));     /* inside the join */
        ASSERT_OK(weft_group_free(g));
        ST_WAIT_UNTIL(atomic_load(&j.done));    /* a hang fails here */
        ASSERT_EQ(0, pthread_join(th, NULL));
        ASSERT_EQ(-ECANCELED, j.result);
    }
    weft_runtime_free(rt);
}
