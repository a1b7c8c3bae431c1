/* SPDX-License-Identifier: MIT */
/* One runtime's task shutting another runtime down (weft/sched.h:
 * weft_runtime_shutdown() "Thread: any but a worker of this runtime"; its
 * cancelled tasks' drops run "on the calling thread", where a drop may wait
 * for a sibling (weft_join_wait(), weft_group_free()) and gets -ECANCELED
 * for a sibling shutdown had not reached yet). Here the calling thread is a
 * worker of ANOTHER runtime: the drops run there, and a drop's wait for a
 * sibling of the runtime being shut down must follow the shutdown rule (no
 * -EINVAL for "called on a worker", no hang). */
#define _GNU_SOURCE
#include "sched_test.h"

#define NSIB 4

static atomic_int sib_drops, sup_drops;
static int results[NSIB];
static int group_free_result;
static weft_join *sib_joins[NSIB];
static weft_group *sup_group;

typedef struct sib {
    bool polled;
    weft_waker w;
} sib;

static weft_poll sib_poll(sib *s, weft_context *cx, void *out)
{
    (void)out;
    if (!s->polled) {
        s->polled = true;
        s->w = weft_waker_clone(weft_context_waker(cx));
    }
    return WEFT_PENDING;
}

static void sib_drop(sib *s)
{
    if (s->polled)
        weft_waker_drop(&s->w);
    atomic_fetch_add(&sib_drops, 1);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(sib, sib_poll, sib_drop);

typedef struct sup {
    bool polled;
    weft_waker w;
} sup;

static weft_poll sup_poll(sup *s, weft_context *cx, void *out)
{
    (void)out;
    if (!s->polled) {
        s->polled = true;
        s->w = weft_waker_clone(weft_context_waker(cx));
    }
    return WEFT_PENDING;              /* until shutdown */
}

static void sup_drop(sup *s)
{
    if (s->polled)
        weft_waker_drop(&s->w);
    for (int i = 0; i < NSIB; i++) {
        results[i] = weft_join_wait(sib_joins[i], NULL);
        weft_join_drop(sib_joins[i]);
    }
    group_free_result = weft_group_free(sup_group);
    atomic_fetch_add(&sup_drops, 1);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(sup, sup_poll, sup_drop);

static int frees_other(void *arg)
{
    weft_runtime_free(arg);
    return 7;
}

static void *run_it(void *arg)
{
    weft_runtime *a, *b;
    weft_join *j;
    int out = 0;

    (void)arg;
    ASSERT_OK(weft_runtime_new(&a, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_runtime_new(&b, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_group_new(&sup_group, b, WEFT_GROUP_WAIT_ALL));
    for (int i = 0; i < 2; i++)
        ASSERT_OK(weft_group_spawn(sup_group, &sib_future, &(sib){ 0 }));
    /* siblings spawned before and after the supervisor */
    for (int i = 0; i < NSIB / 2; i++)
        ASSERT_OK(weft_spawn(b, &sib_future, &(sib){ 0 }, &sib_joins[i]));
    ASSERT_OK(weft_spawn_detached(b, &sup_future, &(sup){ 0 }));
    for (int i = NSIB / 2; i < NSIB; i++)
        ASSERT_OK(weft_spawn(b, &sib_future, &(sib){ 0 }, &sib_joins[i]));
    sleep_ms(20);
    ASSERT_OK(weft_go(a, frees_other, b, &j));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(7, out);
    weft_join_drop(j);
    weft_runtime_free(a);
    return NULL;
}

TEST(a_task_of_one_runtime_frees_another_whose_drops_wait_for_siblings)
{
    long live0 = harness_live();
    pthread_t th;

    START_THREAD(&th, run_it, NULL);
    JOIN_THREAD_WITHIN(th, WATCHDOG_MS, "the cross-runtime free");
    ASSERT_EQ(1, atomic_load(&sup_drops));
    ASSERT_EQ(NSIB + 2, atomic_load(&sib_drops));
    for (int i = 0; i < NSIB; i++)
        ASSERT_EQ(-ECANCELED, results[i]);
    ASSERT_OK(group_free_result);
    ASSERT_EQ(live0, harness_live());
}

/* ---- a coroutine frees a runtime whose coroutine never started ---------------------
 * weft/coro.h: "fn always runs ... even if the task is aborted (or the
 * runtime shut down) before it was first polled". Here the shutdown runs
 * inside a coroutine of another runtime: the cancelled coroutine's fn runs
 * on its own stack from there, and the freeing coroutine carries on as a
 * coroutine afterwards (its blocking calls still work). */
static atomic_int b_fn_runs, b_fn_cancelled;

static int b_coroutine(void *arg)
{
    (void)arg;
    atomic_fetch_add(&b_fn_runs, 1);
    if (weft_co_sleep(600000) == -ECANCELED && weft_co_cancelled())
        atomic_fetch_add(&b_fn_cancelled, 1);
    return 0;
}

static int frees_other_then_sleeps(void *arg)
{
    weft_runtime_free(arg);
    if (!weft_co_is_coroutine() || weft_co_cancelled())
        return -1;
    return weft_co_sleep(1) == 0 ? 9 : -2;
}

TEST(a_coroutine_frees_a_runtime_whose_coroutine_never_started)
{
    long live0 = harness_live();
    weft_runtime *a, *b;
    weft_join *j;
    int out = 0;

    atomic_store(&b_fn_runs, 0);
    atomic_store(&b_fn_cancelled, 0);
    ASSERT_OK(weft_runtime_new(&a, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_runtime_new(&b, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_go_detached(b, b_coroutine, NULL));   /* never driven */
    ASSERT_OK(weft_go(a, frees_other_then_sleeps, b, &j));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(9, out);
    ASSERT_EQ(3, atomic_load(&b_fn_runs));
    ASSERT_EQ(3, atomic_load(&b_fn_cancelled));
    weft_join_drop(j);
    weft_runtime_free(a);
    ASSERT_EQ(live0, harness_live());
}

/* The same with B's coroutines parked (started on B's worker): their stacks
 * are resumed from the freeing coroutine's thread to return -ECANCELED. */
TEST(a_coroutine_frees_a_runtime_whose_coroutines_are_parked)
{
    long live0 = harness_live();
    weft_runtime *a, *b;
    weft_join *j;
    int out = 0;
    uint64_t end;

    atomic_store(&b_fn_runs, 0);
    atomic_store(&b_fn_cancelled, 0);
    ASSERT_OK(weft_runtime_new(&a, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_runtime_new(&b, &(weft_runtime_options){ .workers = 1 }));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_go_detached(b, b_coroutine, NULL));
    end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);
    while (atomic_load(&b_fn_runs) < 3) {
        ASSERT(harness_now_ns() < end);
        sleep_ms(1);
    }
    sleep_ms(10);                     /* parked in their sleeps */
    ASSERT_OK(weft_go(a, frees_other_then_sleeps, b, &j));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(9, out);
    ASSERT_EQ(3, atomic_load(&b_fn_cancelled));
    weft_join_drop(j);
    weft_runtime_free(a);
    ASSERT_EQ(live0, harness_live());
}
