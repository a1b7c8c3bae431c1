/* SPDX-License-Identifier: MIT */
/* Audit 9 of weft/timer.h: a poll without a waker (weft/core.h, "Context":
 * a NULL context, or a zeroed one) is misuse that every future answers
 * READY at once, changing nothing. The sleep (and the interval and the
 * timeout through it) dereferenced the missing waker: SIGSEGV. The timeout
 * passed the zeroed context on to its inner future, took that future's
 * -EINVAL for a completion (result 0) and dropped it. */
#define _GNU_SOURCE
#include "../sched/sched_test.h"
#include "badcx.h"

static void sleep_body(weft_context *cx, void *arg)
{
    weft_context zero;
    weft_sleep s;

    (void)arg;
    memset(&zero, 0, sizeof(zero));
    weft_sleep_init(&s, 3600 * 1000);
    ASSERT_EQ(WEFT_READY, weft_sleep_poll(&s, &zero));
    ASSERT_EQ(WEFT_READY, weft_sleep_poll(&s, NULL));
    ASSERT_EQ(WEFT_PENDING, weft_sleep_poll(&s, cx));      /* untouched: still waits */
    ASSERT_EQ(WEFT_READY, weft_sleep_poll(&s, &zero));     /* registered: the same */
    ASSERT_EQ(WEFT_PENDING, weft_sleep_poll(&s, cx));
    weft_sleep_drop(&s);
    /* and through its descriptor */
    weft_sleep_init(&s, 3600 * 1000);
    ASSERT_EQ(WEFT_READY, weft_sleep_future.poll(&s, &zero, NULL));
    ASSERT_EQ(WEFT_PENDING, weft_sleep_future.poll(&s, cx, NULL));
    weft_sleep_future.drop(&s);
}

TEST(a_sleep_polled_without_a_waker_is_ready_and_registers_nothing)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    badcx_in_task(rt, sleep_body, NULL);
    weft_runtime_free(rt);
}

static void interval_body(weft_context *cx, void *arg)
{
    weft_context zero;
    weft_interval iv;
    uint64_t missed = 77;

    (void)arg;
    memset(&zero, 0, sizeof(zero));
    weft_interval_init(&iv, 3600 * 1000);
    ASSERT_EQ(WEFT_READY, weft_interval_tick(&iv, &zero, &missed));
    ASSERT_EQ(0, (long long)missed);                       /* written, not left as it was */
    ASSERT_EQ(WEFT_READY, weft_interval_tick(&iv, NULL, NULL));
    ASSERT_EQ(WEFT_PENDING, weft_interval_tick(&iv, cx, &missed));   /* no tick taken */
    missed = 77;
    ASSERT_EQ(WEFT_READY, weft_interval_future.poll(&iv, &zero, &missed));
    ASSERT_EQ(0, (long long)missed);
    ASSERT_EQ(WEFT_PENDING, weft_interval_future.poll(&iv, cx, &missed));
    weft_interval_drop(&iv);
}

TEST(an_interval_ticked_without_a_waker_is_ready_and_keeps_its_schedule)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    badcx_in_task(rt, interval_body, NULL);
    weft_runtime_free(rt);
}

static void timeout_body(weft_context *cx, void *arg)
{
    weft_cancel *tok = arg;
    weft_context zero;
    weft_cancel_wait w;
    weft_timeout t;
    int res = 1, inner = 1;

    memset(&zero, 0, sizeof(zero));
    weft_cancel_wait_init(&w, tok);
    weft_timeout_init(&t, &weft_cancel_wait_future, &w, 3600 * 1000);
    ASSERT_EQ(WEFT_READY, weft_timeout_poll(&t, &zero, &res, &inner));
    ASSERT_EQ(-EINVAL, res);
    ASSERT_EQ(1, inner);                                   /* the inner future was not asked */
    res = 1;
    ASSERT_EQ(WEFT_READY, weft_timeout_poll(&t, NULL, &res, &inner));
    ASSERT_EQ(-EINVAL, res);
    ASSERT_EQ(WEFT_PENDING, weft_timeout_poll(&t, cx, &res, &inner));   /* still live */
    res = 1;
    ASSERT_EQ(WEFT_READY, weft_timeout_poll(&t, &zero, &res, &inner));
    ASSERT_EQ(-EINVAL, res);
    weft_cancel_cancel(tok);
    res = 1;
    /* (WEFT_STRESS refuses every other budget unit: a second look passes) */
    if (weft_timeout_poll(&t, cx, &res, &inner) == WEFT_PENDING)
        ASSERT_EQ(WEFT_READY, weft_timeout_poll(&t, cx, &res, &inner));
    ASSERT_EQ(0, res);                                     /* the inner future's own end */
    ASSERT_EQ(0, inner);
    weft_timeout_drop(&t);
    weft_cancel_wait_drop(&w);
}

TEST(a_timeout_polled_without_a_waker_is_einval_and_keeps_its_inner_future)
{
    weft_runtime *rt = NULL;
    weft_cancel *tok;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_cancel_new(&tok));
    badcx_in_task(rt, timeout_body, tok);
    weft_cancel_drop(tok);
    weft_runtime_free(rt);
}
