/* SPDX-License-Identifier: MIT */
/* Barrier: release on the n-th arrival with exactly one leader, reuse over
 * generations, n == 1, dropping waits in every state (an arrived wait
 * leaves; a released one changes nothing), more waiters than a wake batch,
 * tasks on a 2-worker runtime over many generations, misuse, allocation
 * faults. */
#include <string.h>

#include "sync_test.h"
#include "weft/lock.h"

#define CX(name, cw)                                                          \
    weft_waker name##_w = cw_waker(cw);                                       \
    weft_context name = weft_context_from_waker(&name##_w)

TEST(barrier_releases_all_with_one_leader_and_is_reused)
{
    weft_barrier *b;
    weft_barrier_wait w[3];
    cwaker c = { 0 };
    CX(cx, &c);
    int res;

    ASSERT_OK(weft_barrier_new(&b, 3));
    for (int round = 0; round < 3; round++) {
        int wakes = cw_wakes(&c), leaders = 0;

        for (int i = 0; i < 3; i++)
            weft_barrier_wait_init(&w[i], b);
        ASSERT_EQ(WEFT_PENDING, weft_barrier_wait_poll(&w[0], &cx, &res));
        ASSERT_EQ(WEFT_PENDING, weft_barrier_wait_poll(&w[1], &cx, &res));
        ASSERT_EQ(WEFT_PENDING, weft_barrier_wait_poll(&w[1], &cx, &res)); /* re-poll */
        ASSERT_EQ(2, weft_barrier_waiting(b));
        ASSERT_EQ(WEFT_READY, weft_barrier_wait_poll(&w[2], &cx, &res));
        ASSERT_EQ(WEFT_BARRIER_LEADER, res);
        ASSERT_EQ(0, weft_barrier_waiting(b));
        ASSERT_EQ(wakes + 2, cw_wakes(&c));
        for (int i = 0; i < 3; i++) {
            ASSERT_EQ(WEFT_READY, weft_barrier_wait_poll(&w[i], &cx, &res));
            ASSERT(res == 0 || res == WEFT_BARRIER_LEADER);
            leaders += res == WEFT_BARRIER_LEADER;
            ASSERT_EQ(WEFT_READY, weft_barrier_wait_poll(&w[i], &cx, &res)); /* same */
            weft_barrier_wait_drop(&w[i]);
            weft_barrier_wait_drop(&w[i]);              /* idempotent */
        }
        ASSERT_EQ(1, leaders);
    }
    ASSERT_CW_BALANCED(&c);
    weft_barrier_free(b);
}

TEST(barrier_of_one_always_leads)
{
    weft_barrier *b;
    weft_barrier_wait w;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res;

    ASSERT_OK(weft_barrier_new(&b, 1));
    for (int i = 0; i < 5; i++) {
        weft_barrier_wait_init(&w, b);
        ASSERT_EQ(WEFT_READY, weft_barrier_wait_poll(&w, &cx, &res));
        ASSERT_EQ(WEFT_BARRIER_LEADER, res);
        weft_barrier_wait_drop(&w);
    }
    weft_barrier_free(b);
}

/* Never polled: did not arrive. Pending: leaves (count goes down). Released
 * but not polled: the generation stays complete and the next one starts
 * from zero. */
TEST(barrier_wait_dropped_in_every_state)
{
    weft_barrier *b;
    weft_barrier_wait w0, w1, w2, w3, w4;
    cwaker c = { 0 };
    CX(cx, &c);
    int res;

    ASSERT_OK(weft_barrier_new(&b, 3));
    weft_barrier_wait_init(&w0, b);
    weft_barrier_wait_drop(&w0);                        /* never polled */
    memset(&w0, 0, sizeof(w0));
    weft_barrier_wait_drop(&w0);                        /* zeroed */
    ASSERT_EQ(0, weft_barrier_waiting(b));
    weft_barrier_wait_init(&w1, b);
    weft_barrier_wait_init(&w2, b);
    weft_barrier_wait_init(&w3, b);
    weft_barrier_wait_init(&w4, b);
    ASSERT_EQ(WEFT_PENDING, weft_barrier_wait_poll(&w1, &cx, &res));
    ASSERT_EQ(WEFT_PENDING, weft_barrier_wait_poll(&w2, &cx, &res));
    weft_barrier_wait_drop(&w1);                        /* pending: leaves */
    ASSERT_EQ(1, weft_barrier_waiting(b));
    ASSERT_EQ(WEFT_PENDING, weft_barrier_wait_poll(&w3, &cx, &res)); /* 2 of 3 */
    ASSERT_EQ(0, cw_wakes(&c));
    ASSERT_EQ(WEFT_READY, weft_barrier_wait_poll(&w4, &cx, &res));
    ASSERT_EQ(WEFT_BARRIER_LEADER, res);
    ASSERT_EQ(2, cw_wakes(&c));
    weft_barrier_wait_drop(&w2);                        /* released, not polled */
    ASSERT_EQ(0, weft_barrier_waiting(b));
    ASSERT_EQ(WEFT_READY, weft_barrier_wait_poll(&w3, &cx, &res));
    ASSERT_EQ(0, res);
    weft_barrier_wait_drop(&w3);
    weft_barrier_wait_drop(&w4);
    /* the next generation needs 3 fresh arrivals */
    weft_barrier_wait_init(&w1, b);
    weft_barrier_wait_init(&w2, b);
    weft_barrier_wait_init(&w3, b);
    ASSERT_EQ(WEFT_PENDING, weft_barrier_wait_poll(&w1, &cx, &res));
    ASSERT_EQ(WEFT_PENDING, weft_barrier_wait_poll(&w2, &cx, &res));
    weft_barrier_wait_drop(&w2);
    weft_barrier_wait_drop(&w1);
    ASSERT_EQ(0, weft_barrier_waiting(b));
    ASSERT_EQ(WEFT_PENDING, weft_barrier_wait_poll(&w3, &cx, &res));
    weft_barrier_wait_drop(&w3);
    ASSERT_EQ(0, weft_barrier_waiting(b));
    ASSERT_CW_BALANCED(&c);
    weft_barrier_free(b);
}

/* 41 parties: the release wakes 40 waiters (more than one batch); a second
 * generation that fills while the first is being polled works too. */
TEST(barrier_many_parties)
{
    enum { N = 41 };
    weft_barrier *b;
    weft_barrier_wait w[N], x[N];
    cwaker c = { 0 };
    CX(cx, &c);
    int res, leaders = 0;

    ASSERT_OK(weft_barrier_new(&b, N));
    for (int i = 0; i < N - 1; i++) {
        weft_barrier_wait_init(&w[i], b);
        ASSERT_EQ(WEFT_PENDING, weft_barrier_wait_poll(&w[i], &cx, &res));
    }
    weft_barrier_wait_init(&w[N - 1], b);
    ASSERT_EQ(WEFT_READY, weft_barrier_wait_poll(&w[N - 1], &cx, &res));
    ASSERT_EQ(WEFT_BARRIER_LEADER, res);
    ASSERT_EQ(N - 1, cw_wakes(&c));
    for (int i = 0; i < N; i++) {                       /* next generation */
        weft_barrier_wait_init(&x[i], b);
        if (weft_barrier_wait_poll(&x[i], &cx, &res) == WEFT_READY) {
            ASSERT_EQ(N - 1, i);
            ASSERT_EQ(WEFT_BARRIER_LEADER, res);
        }
    }
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(WEFT_READY, weft_barrier_wait_poll(&w[i], &cx, &res));
        leaders += res == WEFT_BARRIER_LEADER;
        ASSERT_EQ(WEFT_READY, weft_barrier_wait_poll(&x[i], &cx, &res));
        leaders += res == WEFT_BARRIER_LEADER;
        weft_barrier_wait_drop(&w[i]);
        weft_barrier_wait_drop(&x[i]);
    }
    ASSERT_EQ(2, leaders);
    ASSERT_CW_BALANCED(&c);
    weft_barrier_free(b);
}

/* ---- Tasks over many generations ----------------------------------------------- */
#define BT 8

struct bar_shared {
    weft_barrier *b;
    unsigned gens;
    atomic_int *arrived, *leaders, *left;
    atomic_int fail;
};

typedef struct bar_task {
    weft_async co;
    struct bar_shared *sh;
    unsigned g;
    int res;
    weft_barrier_wait w;
    weft_yield y;
} bar_task;

static weft_poll bar_task_poll(bar_task *u, weft_context *cx, void *out)
{
    struct bar_shared *sh = u->sh;

    (void)out;
    WEFT_BEGIN(&u->co);
    for (u->g = 0; u->g < sh->gens; u->g++) {
        atomic_fetch_add(&sh->arrived[u->g], 1);
        if (u->g % 3 == 0)
            WEFT_YIELD(&u->co, &u->y, cx);
        weft_barrier_wait_init(&u->w, sh->b);
        WEFT_AWAIT(&u->co, weft_barrier_wait_poll(&u->w, cx, &u->res));
        weft_barrier_wait_drop(&u->w);
        /* released: everyone of this generation arrived, nobody has left
         * it yet for the next one more than once */
        if (atomic_load(&sh->arrived[u->g]) != BT)
            atomic_fetch_add(&sh->fail, 1);
        if (u->res == WEFT_BARRIER_LEADER)
            atomic_fetch_add(&sh->leaders[u->g], 1);
        else if (u->res != 0)
            atomic_fetch_add(&sh->fail, 1);
        atomic_fetch_add(&sh->left[u->g], 1);
    }
    WEFT_END(&u->co);
}

static void bar_task_drop(bar_task *u)
{
    weft_barrier_wait_drop(&u->w);
}

WEFT_DEFINE_FUTURE_VOID(bar_task, bar_task_poll, bar_task_drop);

TEST(barrier_tasks_many_generations_one_leader_each)
{
    weft_runtime *rt = st_runtime(2);
    struct bar_shared sh;

    memset(&sh, 0, sizeof(sh));
    sh.gens = (unsigned)harness_scale(5000);
    sh.arrived = calloc(sh.gens, sizeof(atomic_int));
    sh.leaders = calloc(sh.gens, sizeof(atomic_int));
    sh.left = calloc(sh.gens, sizeof(atomic_int));
    ASSERT(sh.arrived && sh.leaders && sh.left);
    ASSERT_OK(weft_barrier_new(&sh.b, BT));
    for (int t = 0; t < BT; t++)
        ASSERT_OK(weft_spawn_detached(rt, &bar_task_future, &(bar_task){ .sh = &sh }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&sh.fail));
    for (unsigned g = 0; g < sh.gens; g++) {
        if (atomic_load(&sh.leaders[g]) != 1 || atomic_load(&sh.left[g]) != BT)
            harness_fail(__FILE__, __LINE__, "generation %u: %d leaders, %d released", g,
                         atomic_load(&sh.leaders[g]), atomic_load(&sh.left[g]));
    }
    ASSERT_EQ(0, weft_barrier_waiting(sh.b));
    weft_runtime_free(rt);
    weft_barrier_free(sh.b);
    free(sh.arrived);
    free(sh.leaders);
    free(sh.left);
}

TEST(barrier_misuse_and_alloc_fault)
{
    weft_barrier *b = NULL;
    weft_barrier_wait w;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = 0;

    ASSERT_EQ(-EINVAL, weft_barrier_new(NULL, 2));
    ASSERT_EQ(-EINVAL, weft_barrier_new(&b, 0));
    ASSERT(b == NULL);
    ASSERT_EQ(0, weft_barrier_waiting(NULL));
    weft_barrier_free(NULL);
    weft_barrier_wait_init(&w, NULL);
    ASSERT_EQ(WEFT_READY, weft_barrier_wait_poll(&w, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_barrier_wait_drop(&w);
    weft_barrier_wait_init(NULL, NULL);
    weft_barrier_wait_drop(NULL);
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_barrier_new(&b, 2));
    ASSERT(b == NULL);
    ASSERT_EQ(0, harness_live());
    harness_fail_alloc_at(0);
}
