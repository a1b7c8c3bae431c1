/* SPDX-License-Identifier: MIT */
/* Combinators: join_all with mixed readiness (each future dropped once, as
 * soon as it is ready); select drops the losers and reports the winner;
 * race over an array of one type; dropping while pending drops everything;
 * a select between a cancel token and a notify on a runtime, cancelled from
 * another thread; misuse. */
#include "../sync/sync_test.h"
#include "weft/group.h"

#define CX(name, cw)                                                          \
    weft_waker name##_w = cw_waker(cw);                                       \
    weft_context name = weft_context_from_waker(&name##_w)

/* Ready after `k` pending polls (each wakes its waker), with output `val`;
 * k < 0: never ready. Its drop counts in *drops. */
typedef struct cd {
    int k;
    int val;
    int *drops;
    int *polls;
} cd;

static weft_poll cd_poll(cd *c, weft_context *cx, void *out)
{
    if (c->polls)
        (*c->polls)++;
    if (c->k != 0) {
        if (c->k > 0)
            c->k--;
        weft_waker_wake_by_ref(weft_context_waker(cx));
        return WEFT_PENDING;
    }
    *(int *)out = c->val;
    return WEFT_READY;
}

static void cd_drop(cd *c)
{
    (*c->drops)++;
}

WEFT_DEFINE_FUTURE(cd, cd_poll, cd_drop, int);

/* No output at all. */
typedef struct nil {
    int *drops;
} nil;

static weft_poll nil_poll(nil *n, weft_context *cx, void *out)
{
    (void)n;
    (void)cx;
    (void)out;
    return WEFT_READY;
}

static void nil_drop(nil *n)
{
    (*n->drops)++;
}

WEFT_DEFINE_FUTURE_VOID(nil, nil_poll, nil_drop);

TEST(join_all_mixed_readiness)
{
    int drops[4] = { 0 }, polls[4] = { 0 }, out[3] = { -1, -1, -1 };
    cd a = { 0, 10, &drops[0], &polls[0] };          /* ready at once */
    cd b = { 2, 20, &drops[1], &polls[1] };          /* after 2 pending polls */
    cd c = { 1, 30, &drops[2], &polls[2] };
    nil d = { &drops[3] };
    weft_future_ref refs[4] = {
        { &cd_future, &a, &out[0], 0 },
        { &cd_future, &b, &out[1], 0 },
        { &cd_future, &c, &out[2], 0 },
        { &nil_future, &d, NULL, 0 },
    };
    weft_join_all ja;
    cwaker cw = { 0 };
    CX(cx, &cw);
    int res = 1;

    weft_join_all_init(&ja, refs, 4);
    ASSERT_EQ(WEFT_PENDING, weft_join_all_poll(&ja, &cx, &res));
    ASSERT_EQ(10, out[0]);
    ASSERT_EQ(1, drops[0]);                          /* dropped as soon as ready */
    ASSERT_EQ(1, drops[3]);
    ASSERT_EQ(0, drops[1]);
    ASSERT_EQ(WEFT_PENDING, weft_join_all_poll(&ja, &cx, &res));
    ASSERT_EQ(30, out[2]);
    ASSERT_EQ(1, drops[2]);
    ASSERT_EQ(WEFT_READY, weft_join_all_poll(&ja, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(20, out[1]);
    ASSERT_EQ(1, polls[0]);                          /* ready ones are not polled again */
    ASSERT_EQ(2, polls[2]);
    ASSERT_EQ(3, polls[1]);
    ASSERT_EQ(WEFT_READY, weft_join_all_poll(&ja, &cx, &res)); /* same answer */
    ASSERT_OK(res);
    weft_join_all_drop(&ja);
    weft_join_all_drop(&ja);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(1, drops[i]);
    ASSERT_CW_BALANCED(&cw);
}

TEST(join_all_dropped_pending_drops_the_rest)
{
    int drops[2] = { 0 }, out[2];
    cd a = { 0, 1, &drops[0], NULL };
    cd b = { -1, 2, &drops[1], NULL };
    weft_future_ref refs[2] = { { &cd_future, &a, &out[0], 0 }, { &cd_future, &b, &out[1], 0 } };
    weft_join_all ja;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res;

    weft_join_all_init(&ja, refs, 2);
    ASSERT_EQ(WEFT_PENDING, weft_join_all_poll(&ja, &cx, &res));
    ASSERT_EQ(1, drops[0]);
    weft_join_all_drop(&ja);
    ASSERT_EQ(1, drops[0]);
    ASSERT_EQ(1, drops[1]);
    /* empty: ready at once */
    weft_join_all_init(&ja, refs, 0);
    ASSERT_EQ(WEFT_READY, weft_join_all_poll(&ja, &cx, &res));
    ASSERT_OK(res);
    weft_join_all_drop(&ja);
}

TEST(select_drops_the_losers)
{
    int drops[3] = { 0 }, out[3] = { -1, -1, -1 };
    cd a = { -1, 1, &drops[0], NULL };               /* never */
    cd b = { 2, 2, &drops[1], NULL };                /* wins on the 3rd poll */
    cd c = { 5, 3, &drops[2], NULL };
    weft_future_ref refs[3] = {
        { &cd_future, &a, &out[0], 0 },
        { &cd_future, &b, &out[1], 0 },
        { &cd_future, &c, &out[2], 0 },
    };
    weft_select s;
    cwaker cw = { 0 };
    CX(cx, &cw);
    int res = -1;

    weft_select_init(&s, refs, 3);
    ASSERT_EQ(WEFT_PENDING, weft_select_poll(&s, &cx, &res));
    ASSERT_EQ(WEFT_PENDING, weft_select_poll(&s, &cx, &res));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, drops[i]);
    ASSERT_EQ(WEFT_READY, weft_select_poll(&s, &cx, &res));
    ASSERT_EQ(1, res);
    ASSERT_EQ(2, out[1]);
    ASSERT_EQ(-1, out[0]);                           /* losers write nothing */
    ASSERT_EQ(-1, out[2]);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(1, drops[i]);                      /* losers dropped at once */
    ASSERT_EQ(WEFT_READY, weft_select_poll(&s, &cx, &res));
    ASSERT_EQ(1, res);
    weft_select_drop(&s);
    weft_select_drop(&s);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(1, drops[i]);
    ASSERT_CW_BALANCED(&cw);
}

TEST(select_is_biased_and_drop_while_pending_drops_all)
{
    int drops[2] = { 0 }, out[2] = { -1, -1 };
    cd a = { 0, 1, &drops[0], NULL };
    cd b = { 0, 2, &drops[1], NULL };
    weft_future_ref refs[2] = { { &cd_future, &a, &out[0], 0 }, { &cd_future, &b, &out[1], 0 } };
    weft_select s;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = -1;

    weft_select_init(&s, refs, 2);
    ASSERT_EQ(WEFT_READY, weft_select_poll(&s, &cx, &res));
    ASSERT_EQ(0, res);                               /* both ready: lowest index */
    ASSERT_EQ(-1, out[1]);
    weft_select_drop(&s);
    ASSERT_EQ(1, drops[0]);
    ASSERT_EQ(1, drops[1]);

    a = (cd){ -1, 1, &drops[0], NULL };
    b = (cd){ -1, 2, &drops[1], NULL };
    weft_select_init(&s, refs, 2);
    ASSERT_EQ(WEFT_PENDING, weft_select_poll(&s, &cx, &res));
    weft_select_drop(&s);                            /* cancelled: drops both */
    ASSERT_EQ(2, drops[0]);
    ASSERT_EQ(2, drops[1]);
}

TEST(race_same_type)
{
    int drops = 0, out = -1;
    cd f[4] = {
        { -1, 0, &drops, NULL }, { 3, 1, &drops, NULL },
        { 1, 2, &drops, NULL }, { 1, 3, &drops, NULL },
    };
    weft_race r;
    cwaker cw = { 0 };
    CX(cx, &cw);
    int res = -1;

    weft_race_init(&r, &cd_future, f, 4, &out);
    ASSERT_EQ(WEFT_PENDING, weft_race_poll(&r, &cx, &res));
    ASSERT_EQ(0, drops);
    ASSERT_EQ(WEFT_READY, weft_race_poll(&r, &cx, &res));
    ASSERT_EQ(2, res);                               /* 2 and 3 tie: lowest index */
    ASSERT_EQ(2, out);
    ASSERT_EQ(4, drops);
    ASSERT_EQ(WEFT_READY, weft_race_poll(&r, &cx, &res));
    ASSERT_EQ(2, res);
    weft_race_drop(&r);
    weft_race_drop(&r);
    ASSERT_EQ(4, drops);

    for (int i = 0; i < 4; i++)
        f[i] = (cd){ -1, i, &drops, NULL };
    weft_race_init(&r, &cd_future, f, 4, &out);
    ASSERT_EQ(WEFT_PENDING, weft_race_poll(&r, &cx, &res));
    weft_race_drop(&r);                              /* cancelled: drops all */
    ASSERT_EQ(8, drops);
    ASSERT_CW_BALANCED(&cw);
}

TEST(combinators_misuse)
{
    int drops = 0, out;
    cd a = { 0, 1, &drops, NULL };
    weft_future_ref bad[1] = { { NULL, &a, &out, 0 } };
    weft_future_ref noout[1] = { { &cd_future, &a, NULL, 0 } };
    weft_join_all ja;
    weft_select s;
    weft_race r;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res;

    weft_join_all_init(&ja, NULL, 1);
    ASSERT_EQ(WEFT_READY, weft_join_all_poll(&ja, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_join_all_drop(&ja);
    weft_join_all_init(&ja, bad, 1);
    ASSERT_EQ(WEFT_READY, weft_join_all_poll(&ja, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_join_all_drop(&ja);
    weft_join_all_init(&ja, noout, 1);
    ASSERT_EQ(WEFT_READY, weft_join_all_poll(&ja, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_join_all_drop(&ja);
    weft_join_all_init(NULL, NULL, 0);
    weft_join_all_drop(NULL);
    ASSERT_EQ(WEFT_READY, weft_join_all_poll(NULL, &cx, &res));

    weft_select_init(&s, NULL, 1);
    ASSERT_EQ(WEFT_READY, weft_select_poll(&s, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_select_drop(&s);
    weft_select_init(&s, noout, 0);                 /* nothing to select from */
    ASSERT_EQ(WEFT_READY, weft_select_poll(&s, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_select_drop(&s);
    weft_select_init(&s, bad, 1);
    ASSERT_EQ(WEFT_READY, weft_select_poll(&s, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_select_drop(&s);
    weft_select_init(NULL, NULL, 0);
    weft_select_drop(NULL);

    weft_race_init(&r, NULL, &a, 1, &out);
    ASSERT_EQ(WEFT_READY, weft_race_poll(&r, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_race_drop(&r);
    weft_race_init(&r, &cd_future, &a, 1, NULL);    /* output needs a buffer */
    ASSERT_EQ(WEFT_READY, weft_race_poll(&r, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_race_drop(&r);
    weft_race_init(&r, &cd_future, &a, 0, &out);
    ASSERT_EQ(WEFT_READY, weft_race_poll(&r, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_race_drop(&r);
    weft_race_init(NULL, NULL, NULL, 0, NULL);
    weft_race_drop(NULL);
    ASSERT_EQ(0, drops);                             /* a refused combinator owns nothing */
}

/* On a runtime: a task selects between a cancel token and a notify; a plain
 * thread cancels the token. The notify wait (the loser) is dropped, so the
 * later notify_one is kept as a permit for the next wait. */
/* The sync futures' ready-made descriptors (weft_cancel_wait_future,
 * weft_notify_wait_future) compose without adapters. */
typedef struct sel_task {
    weft_async co;
    weft_cancel *tok;
    weft_notify *n;
    atomic_int *started;
    weft_cancel_wait cwait;
    weft_notify_wait nwait;
    int r0, r1, res;
    weft_future_ref refs[2];
    weft_select s;
} sel_task;

static weft_poll sel_task_poll(sel_task *t, weft_context *cx, void *out)
{
    WEFT_BEGIN(&t->co);
    weft_cancel_wait_init(&t->cwait, t->tok);
    weft_notify_wait_init(&t->nwait, t->n);
    t->refs[0] = (weft_future_ref){ &weft_cancel_wait_future, &t->cwait, &t->r0, 0 };
    t->refs[1] = (weft_future_ref){ &weft_notify_wait_future, &t->nwait, &t->r1, 0 };
    weft_select_init(&t->s, t->refs, 2);
    atomic_store(t->started, 1);
    WEFT_AWAIT(&t->co, weft_select_poll(&t->s, cx, &t->res));
    weft_select_drop(&t->s);
    *(int *)out = t->res;
    WEFT_END(&t->co);
}

static void sel_task_drop(sel_task *t)
{
    weft_select_drop(&t->s);
}

WEFT_DEFINE_FUTURE(sel_task, sel_task_poll, sel_task_drop, int);

TEST(select_on_runtime_cancelled_from_thread)
{
    weft_runtime *rt = st_runtime(2);
    unsigned rounds = (unsigned)harness_scale(200);

    for (unsigned i = 0; i < rounds; i++) {
        weft_cancel *tok;
        weft_notify *n;
        weft_join *j;
        atomic_int started = 0;
        int out = -1, res;
        weft_notify_wait w;
        weft_waker nw = weft_waker_noop();
        weft_context cx = weft_context_from_waker(&nw);

        ASSERT_OK(weft_cancel_new(&tok));
        ASSERT_OK(weft_notify_new(&n));
        ASSERT_OK(weft_spawn(rt, &sel_task_future,
                             &(sel_task){ .tok = tok, .n = n, .started = &started }, &j));
        if (i % 2)
            ST_WAIT_UNTIL(atomic_load(&started));
        weft_cancel_cancel(tok);
        ASSERT_OK(weft_join_wait(j, &out));
        ASSERT_EQ(0, out);                           /* the token won */
        weft_join_drop(j);
        weft_notify_one(n);                          /* nobody waits: a permit */
        weft_notify_wait_init(&w, n);
        ASSERT_EQ(WEFT_READY, weft_notify_wait_poll(&w, &cx, &res));
        weft_notify_wait_drop(&w);
        weft_notify_free(n);
        weft_cancel_drop(tok);
    }
    weft_runtime_free(rt);
}
