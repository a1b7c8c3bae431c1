// SPDX-License-Identifier: MIT
/* A chain of LIFO-slot polls (a pair of tasks waking each other) runs long
 * enough to stay in cache, but never past the periodic look: a task woken
 * from another thread (the inject queue) while a pair ping-pongs on the
 * only worker runs within a bounded number of the pair's polls (the
 * periodic look comes every GLOBAL_INTERVAL polls, the pair's included),
 * not after that many chains. */
#define _GNU_SOURCE
#include "sched_test.h"

static pthread_mutex_t pair_lock = PTHREAD_MUTEX_INITIALIZER;
static weft_waker pair_w[2];             /* pair_lock */
static atomic_long pair_polls;
static atomic_bool pair_stop;

typedef struct half {
    unsigned side;
} half;

static weft_poll half_poll(half *h, weft_context *cx, void *out)
{
    weft_waker other, old;

    (void)out;
    atomic_fetch_add(&pair_polls, 1);
    pthread_mutex_lock(&pair_lock);
    old = pair_w[h->side];
    pair_w[h->side] = weft_waker_clone(weft_context_waker(cx));
    other = pair_w[!h->side];
    pair_w[!h->side] = WEFT_WAKER_EMPTY;
    pthread_mutex_unlock(&pair_lock);
    weft_waker_drop(&old);
    weft_waker_wake(&other);             /* the partner, into our LIFO slot */
    if (atomic_load(&pair_stop))
        return WEFT_READY;
    return WEFT_PENDING;
}

WEFT_DEFINE_FUTURE_VOID_STATIC(half, half_poll, NULL);

/* Parks once; records the pair's polls when polled again. */
static weft_waker outsider_w;
static atomic_bool outsider_parked;
static atomic_long polls_at_run = -1;

typedef struct outsider {
    bool woken;
} outsider;

static weft_poll outsider_poll(outsider *o, weft_context *cx, void *out)
{
    (void)out;
    if (!o->woken) {
        o->woken = true;
        outsider_w = weft_waker_clone(weft_context_waker(cx));
        atomic_store(&outsider_parked, true);
        return WEFT_PENDING;
    }
    atomic_store(&polls_at_run, atomic_load(&pair_polls));
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID_STATIC(outsider, outsider_poll, NULL);

TEST(an_inject_wake_waits_a_bounded_number_of_lifo_polls)
{
    weft_runtime *rt;
    weft_join *jo, *jp[2];
    long at_wake, worst = 0;

    for (int round = 0; round < 5; round++) {
        atomic_store(&pair_polls, 0);
        atomic_store(&pair_stop, false);
        atomic_store(&outsider_parked, false);
        atomic_store(&polls_at_run, -1);
        pair_w[0] = pair_w[1] = WEFT_WAKER_EMPTY;
        ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
        ASSERT_OK(weft_spawn(rt, &outsider_future, &(outsider){ false }, &jo));
        WAIT_AT_LEAST(&outsider_parked, 1, WATCHDOG_MS, "outsider parked");
        ASSERT_OK(weft_spawn(rt, &half_future, &(half){ 0 }, &jp[0]));
        ASSERT_OK(weft_spawn(rt, &half_future, &(half){ 1 }, &jp[1]));
        WAIT_AT_LEAST(&pair_polls, 10000, WATCHDOG_MS, "pair polls");
        weft_waker_wake(&outsider_w);    /* a foreign wake: the inject queue */
        /* read after the push: a preemption of this thread before it
         * cannot count against the scheduler */
        at_wake = atomic_load(&pair_polls);
        ASSERT_OK(weft_join_wait(jo, NULL));
        weft_join_drop(jo);
        if (atomic_load(&polls_at_run) - at_wake > worst)
            worst = atomic_load(&polls_at_run) - at_wake;
        atomic_store(&pair_stop, true);
        for (int i = 0; i < 2; i++) {
            /* the one parked waits for its partner's last wake */
            pthread_mutex_lock(&pair_lock);
            weft_waker w = pair_w[i];
            pair_w[i] = WEFT_WAKER_EMPTY;
            pthread_mutex_unlock(&pair_lock);
            weft_waker_wake(&w);
        }
        for (int i = 0; i < 2; i++) {
            ASSERT_OK(weft_join_wait(jp[i], NULL));
            weft_join_drop(jp[i]);
        }
        for (int i = 0; i < 2; i++)
            weft_waker_drop(&pair_w[i]);
        weft_runtime_free(rt);
    }
    printf("worst: the outsider ran %ld pair polls after its wake\n", worst);
    /* the periodic look comes every 61 polls; a chain is cut at it. The
     * bound is generous; without the cut it is 61 chains of 33 polls */
    ASSERT_LE(1000, worst);
}
