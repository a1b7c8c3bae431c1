/* SPDX-License-Identifier: MIT */
/* Audit 8 of weft/chan.h: lock.h's common rules that chan.h takes over
 * ("Futures that can complete many times in a row call weft_coop_proceed()
 * first") for the oneshot receive, which completes every fresh receive on a
 * spent oneshot at once. */
#include "sync_test.h"
#include <string.h>
#include "setflag.h"

/* A task that awaits fresh receives on a spent oneshot in a loop (each
 * completes at once with -EPIPE), until another task sets the flag. It
 * spawns that task itself, from its worker, so the setter is queued before
 * the loop starts whatever the test's thread is doing (a spawn from the
 * test's thread could come late on a loaded machine, after the loop had
 * run for milliseconds). */
typedef struct osloop {
    weft_async co;
    weft_runtime *rt;
    weft_join **setter;
    weft_oneshot_rx *rx;
    atomic_int *flag;
    unsigned i;
    int res;
    int dst;
    bool live;
    bool spawned;
    weft_oneshot_recv r;
} osloop;

static weft_poll osloop_poll(osloop *s, weft_context *cx, void *out)
{
    WEFT_BEGIN(&s->co);
    s->spawned = weft_spawn(s->rt, &setflag_future, &(setflag){ .flag = s->flag },
                            s->setter) == 0;
    for (s->i = 0; s->spawned && s->i < 1000000u && !atomic_load(s->flag); s->i++) {
        weft_oneshot_recv_init(&s->r, s->rx, &s->dst);
        s->live = true;
        WEFT_AWAIT(&s->co, weft_oneshot_recv_poll(&s->r, cx, &s->res));
        weft_oneshot_recv_drop(&s->r);
        s->live = false;
        if (s->res != -EPIPE)
            break;
    }
    *(int *)out = !s->spawned ? -3 : atomic_load(s->flag) ? (int)s->i : -1;
    WEFT_END(&s->co);
}

static void osloop_drop(osloop *s)
{
    if (s->live)
        weft_oneshot_recv_drop(&s->r);
}

WEFT_DEFINE_FUTURE_STATIC(osloop, osloop_poll, osloop_drop, int);

/* One worker: the loop (which spawns the setter) only lets it run if its
 * receives spend the cooperative budget. Without it the loop ran all its
 * million receives (seconds) before the setter got the worker. */
static void oneshot_loop_yields(bool sent)
{
    weft_runtime *rt = st_runtime(1);
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;
    atomic_int flag = 0;
    weft_join *jl, *js;
    int v = 7, got = 0, iters = -2;

    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    if (sent) {
        ASSERT_OK(weft_oneshot_send(tx, &v));
        ASSERT_OK(weft_oneshot_try_recv(rx, &got));       /* value taken: spent */
        ASSERT_EQ(7, got);
    } else {
        weft_oneshot_tx_drop(tx);                         /* sender gone: spent */
    }
    js = NULL;
    ASSERT_OK(weft_spawn(rt, &osloop_future,
                         &(osloop){ .rt = rt, .setter = &js, .rx = rx, .flag = &flag }, &jl));
    ASSERT_OK(weft_join_wait(jl, &iters));
    ASSERT(js != NULL);
    ASSERT_OK(weft_join_wait(js, NULL));
    /* the setter ran while the loop still looped: a budget's worth of
     * receives (128), far from the million */
    ASSERT(iters >= 0);
    ASSERT_LE(100000, iters);
    weft_join_drop(jl);
    weft_join_drop(js);
    weft_runtime_free(rt);
    weft_oneshot_rx_drop(rx);
}

TEST(oneshot_receives_of_a_dropped_sender_spend_the_budget)
{
    oneshot_loop_yields(false);
}

TEST(oneshot_receives_of_a_taken_value_spend_the_budget)
{
    oneshot_loop_yields(true);
}
