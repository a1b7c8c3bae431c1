/* SPDX-License-Identifier: MIT */
/* Locks, signals and timeouts from coroutines: a mutex held across
 * yields, notify, cancellation tokens, await with a time limit, and an
 * abort while waiting for a lock (nothing stays held). */
#include "coro_test.h"

#include <unistd.h>

struct shared {
    weft_mutex *m;
    long counter;
    int rounds;
};

static int locker(void *arg)
{
    struct shared *sh = arg;

    for (int i = 0; i < sh->rounds; i++) {
        long v;

        ASSERT_OK(weft_co_mutex_lock(sh->m));
        v = sh->counter;
        ASSERT_OK(weft_co_yield());            /* held across a park: weft's lock may be */
        sh->counter = v + 1;
        ASSERT_OK(weft_mutex_unlock(sh->m));
    }
    return 0;
}

TEST(mutex_across_yields)
{
    weft_runtime *rt = ct_runtime(4);
    struct shared sh = { NULL, 0, (int)harness_scale(200) };
    weft_join *js[8];

    ASSERT_OK(weft_mutex_new(&sh.m));
    for (int i = 0; i < 8; i++)
        ASSERT_OK(weft_go(rt, locker, &sh, &js[i]));
    for (int i = 0; i < 8; i++) {
        ASSERT_OK(weft_join_wait(js[i], NULL));
        weft_join_drop(js[i]);
    }
    ASSERT_EQ(8L * sh.rounds, sh.counter);
    weft_mutex_free(sh.m);
    CT_FREE(rt);
}

static atomic_int lock_result;

static int waits_for_lock(void *arg)
{
    atomic_store(&lock_result, weft_co_mutex_lock(arg));
    return 0;
}

TEST(abort_while_waiting_for_a_lock)
{
    weft_runtime *rt = ct_runtime(2);
    weft_mutex *m;
    weft_join *j;

    atomic_store(&lock_result, 1);
    ASSERT_OK(weft_mutex_new(&m));
    ASSERT_OK(weft_mutex_try_lock(m));               /* held by this thread */
    ASSERT_OK(weft_go(rt, waits_for_lock, m, &j));
    usleep(10000);
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
    ASSERT_EQ(-ECANCELED, atomic_load(&lock_result));
    ASSERT_OK(weft_mutex_unlock(m));
    ASSERT_OK(weft_mutex_try_lock(m));               /* nobody else holds it */
    ASSERT_OK(weft_mutex_unlock(m));
    weft_join_drop(j);
    weft_mutex_free(m);
    CT_FREE(rt);
}

static int notified(void *arg)
{
    return weft_co_notify_wait(arg) == 0 ? 11 : -1;
}

static int token_waiter(void *arg)
{
    return weft_co_cancel_wait(arg) == 0 ? 12 : -1;
}

TEST(notify_and_token)
{
    weft_runtime *rt = ct_runtime(2);
    weft_notify *n;
    weft_cancel *tok;
    weft_join *a, *b;
    int ra = 0, rb = 0;

    ASSERT_OK(weft_notify_new(&n));
    ASSERT_OK(weft_cancel_new(&tok));
    ASSERT_OK(weft_go(rt, notified, n, &a));
    ASSERT_OK(weft_go(rt, token_waiter, tok, &b));
    usleep(5000);
    weft_notify_one(n);
    weft_cancel_cancel(tok);
    ASSERT_OK(weft_join_wait(a, &ra));
    ASSERT_OK(weft_join_wait(b, &rb));
    ASSERT_EQ(11, ra);
    ASSERT_EQ(12, rb);
    weft_join_drop(a);
    weft_join_drop(b);
    weft_notify_free(n);
    weft_cancel_drop(tok);
    CT_FREE(rt);
}

/* never ready; counts drops */
static atomic_int never_drops;

typedef struct never {
    int unused;
} never;

static weft_poll never_poll(never *f, weft_context *cx, void *out)
{
    (void)f;
    (void)cx;
    (void)out;
    return WEFT_PENDING;
}

static void never_drop(never *f)
{
    (void)f;
    atomic_fetch_add(&never_drops, 1);
}

WEFT_DEFINE_FUTURE_STATIC(never, never_poll, never_drop, int);

typedef weft_sleep tsleep;

static weft_poll tsleep_poll(tsleep *s, weft_context *cx, void *out)
{
    (void)out;
    return weft_sleep_poll(s, cx);
}

static void tsleep_drop(tsleep *s)
{
    weft_sleep_drop(s);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(tsleep, tsleep_poll, tsleep_drop);

static int times_out(void *arg)
{
    never f = { 0 };
    int out = 0;
    uint64_t t0 = weft_now_ms();

    (void)arg;
    ASSERT_EQ(-ETIMEDOUT, weft_co_await_timeout(&never_future, &f, &out, 20));
    ASSERT(weft_now_ms() - t0 >= 20);
    ASSERT_EQ(1, atomic_load(&never_drops));
    /* a sleep that ends in time */
    {
        weft_sleep s;

        weft_sleep_init(&s, 1);
        ASSERT_OK(weft_co_await_timeout(&tsleep_future, &s, NULL, 10000));
    }
    return 0;
}

TEST(await_with_a_time_limit)
{
    weft_runtime *rt = ct_runtime(2);

    atomic_store(&never_drops, 0);
    ASSERT_OK(weft_co_block_on(rt, times_out, NULL, NULL, NULL));
    CT_FREE(rt);
}
