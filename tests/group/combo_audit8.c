/* SPDX-License-Identifier: MIT */
/* Audit 8 of weft/group.h, weft/chan.h and weft/task.h together: the
 * primitives crossed. Group children selecting over two channels and the
 * group's token while other threads close the channels and cancel the
 * group (no message lost, each child dropped once); join handles of one
 * runtime's tasks polled, aborted and dropped on another runtime's workers
 * while the tasks complete, the runtimes freed in either order; watch and
 * broadcast receivers that outlive the runtime whose tasks waited on
 * them. */
#include "../sync/sync_test.h"
#include <string.h>

#include "weft/group.h"

static weft_runtime *rt_of(unsigned workers)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = workers }));
    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .mask = WEFT_LINTS_OFF }));
    return rt;
}

/* ---- a select over two channels and the group's token -------------------------- */
typedef struct selchild {
    weft_async co;
    weft_chan *a, *b;
    weft_cancel *tok;
    atomic_int *got, *drops;
    bool a_done, b_done, live;
    int ma, mb, ra, rb, rc, res;
    size_t n;
    int which[3];
    weft_chan_recv fa, fb;
    weft_cancel_wait fc;
    weft_future_ref refs[3];
    weft_select sel;
} selchild;

static weft_poll selchild_poll(selchild *c, weft_context *cx, void *out)
{
    WEFT_BEGIN(&c->co);
    while (!(c->a_done && c->b_done)) {
        c->n = 0;
        if (!c->a_done) {
            weft_chan_recv_init(&c->fa, c->a, &c->ma);
            c->refs[c->n] = (weft_future_ref){ &weft_chan_recv_future, &c->fa, &c->ra, 0 };
            c->which[c->n++] = 0;
        }
        if (!c->b_done) {
            weft_chan_recv_init(&c->fb, c->b, &c->mb);
            c->refs[c->n] = (weft_future_ref){ &weft_chan_recv_future, &c->fb, &c->rb, 0 };
            c->which[c->n++] = 1;
        }
        weft_cancel_wait_init(&c->fc, c->tok);
        c->refs[c->n] = (weft_future_ref){ &weft_cancel_wait_future, &c->fc, &c->rc, 0 };
        c->which[c->n++] = 2;
        weft_select_init(&c->sel, c->refs, c->n);
        c->live = true;
        WEFT_AWAIT(&c->co, weft_select_poll(&c->sel, cx, &c->res));
        weft_select_drop(&c->sel);
        c->live = false;
        if (c->res < 0 || c->res >= (int)c->n)
            break;                               /* cannot happen: the count says */
        switch (c->which[c->res]) {
        case 0:
            if (c->ra == 0)
                atomic_fetch_add(c->got, 1);
            else
                c->a_done = true;                /* -EPIPE: closed and drained */
            break;
        case 1:
            if (c->rb == 0)
                atomic_fetch_add(c->got, 1);
            else
                c->b_done = true;
            break;
        default:
            c->a_done = c->b_done = true;        /* the group was cancelled */
            break;
        }
    }
    *(int *)out = 0;
    WEFT_END(&c->co);
}

static void selchild_drop(selchild *c)
{
    if (c->live)
        weft_select_drop(&c->sel);
    c->live = false;
    atomic_fetch_add(c->drops, 1);
}

WEFT_DEFINE_FUTURE_STATIC(selchild, selchild_poll, selchild_drop, int);

typedef struct sender {
    weft_chan *a, *b;
    int n;
    atomic_int sent;
} sender;

static void *sender_main(void *arg)
{
    sender *s = arg;

    for (int i = 0; i < s->n; i++) {
        if (weft_chan_send_wait(i % 2 ? s->b : s->a, &i) == 0)
            atomic_fetch_add(&s->sent, 1);
    }
    return NULL;
}

typedef struct canceller {
    weft_group *g;
    atomic_int *go;
} canceller;

static void *canceller_main(void *arg)
{
    canceller *c = arg;

    while (!atomic_load(c->go))
        sched_yield();
    weft_group_cancel(c->g);
    return NULL;
}

static int drain_chan(weft_chan *ch)
{
    int n = 0, m;

    while (weft_chan_try_recv(ch, &m) == 0)
        n++;
    return n;
}

/* group.h/chan.h: a select dropped at any point loses no message (chan.h's
 * cancel safety), a cancelled child is dropped exactly once, the group's
 * free waits for every drop, also while the channels are closed and the
 * group cancelled at once from other threads. */
static void select_close_cancel(size_t cap, weft_group_policy policy)
{
    int rounds = (int)harness_scale(60);

    for (int round = 0; round < rounds; round++) {
        weft_runtime *rt = rt_of(2);
        weft_group *g;
        weft_chan *a, *b;
        atomic_int got = 0, drops = 0, go = 0;
        sender s = { 0 };
        canceller k;
        pthread_t ts, tk;
        int children = 4 + round % 5, left;

        ASSERT_OK(weft_chan_new(&a, sizeof(int), cap));
        ASSERT_OK(weft_chan_new(&b, sizeof(int), cap));
        ASSERT_OK(weft_group_new(&g, rt, policy));
        for (int i = 0; i < children; i++)
            ASSERT_OK(weft_group_spawn(g, &selchild_future,
                                       &(selchild){ .a = a, .b = b, .tok = weft_group_token(g),
                                                    .got = &got, .drops = &drops }));
        s.a = a;
        s.b = b;
        s.n = 200 + round * 7;
        k.g = g;
        k.go = &go;
        ASSERT_EQ(0, pthread_create(&ts, NULL, sender_main, &s));
        ASSERT_EQ(0, pthread_create(&tk, NULL, canceller_main, &k));
        while (atomic_load(&s.sent) < round * 3)
            sched_yield();
        atomic_store(&go, 1);                    /* cancel ... */
        if (round % 2)
            sched_yield();
        weft_chan_close(a);                      /* ... and close, at once */
        weft_chan_close(b);
        ASSERT_EQ(0, pthread_join(ts, NULL));
        ASSERT_EQ(0, pthread_join(tk, NULL));
        ASSERT_OK(weft_group_free(g));
        ASSERT_EQ(children, atomic_load(&drops));
        left = drain_chan(a) + drain_chan(b);
        if (atomic_load(&got) + left != atomic_load(&s.sent))
            harness_fail(__FILE__, __LINE__, "round %d: sent %d, received %d, left %d", round,
                         atomic_load(&s.sent), atomic_load(&got), left);
        weft_runtime_free(rt);
        weft_chan_drop(a);
        weft_chan_drop(b);
    }
}

TEST(select_in_group_children_closed_and_cancelled_at_once_cap_1)
{
    select_close_cancel(1, WEFT_GROUP_WAIT_ALL);
}

TEST(select_in_group_children_closed_and_cancelled_at_once_cap_5)
{
    select_close_cancel(5, WEFT_GROUP_CANCEL_ON_FAILURE);
}

TEST(select_in_group_children_closed_and_cancelled_at_once_unbounded)
{
    select_close_cancel(0, WEFT_GROUP_WAIT_ALL);
}

/* ---- join handles used on another runtime's workers ------------------------------ */
typedef struct quick {
    weft_async co;
    int yields, i;
    atomic_int *drops;
    weft_yield y;
} quick;

static weft_poll quick_poll(quick *q, weft_context *cx, void *out)
{
    WEFT_BEGIN(&q->co);
    for (q->i = 0; q->i < q->yields; q->i++)
        WEFT_YIELD(&q->co, &q->y, cx);
    *(int *)out = 42;
    WEFT_END(&q->co);
}

static void quick_drop(quick *q)
{
    atomic_fetch_add(q->drops, 1);
}

WEFT_DEFINE_FUTURE_STATIC(quick, quick_poll, quick_drop, int);

/* On runtime B: take handles of A's tasks from a channel and, by turns,
 * drop at once, poll once then drop, abort then drop, or await then drop. */
typedef struct handler {
    weft_async co;
    weft_chan *handles;
    atomic_int *ok, *cancelled;
    weft_join *j;
    int k, res, out;
    weft_chan_recv r;
    bool recv_live;
} handler;

static weft_poll handler_poll(handler *h, weft_context *cx, void *out)
{
    WEFT_BEGIN(&h->co);
    for (;;) {
        weft_chan_recv_init(&h->r, h->handles, &h->j);
        h->recv_live = true;
        WEFT_AWAIT(&h->co, weft_chan_recv_poll(&h->r, cx, &h->res));
        weft_chan_recv_drop(&h->r);
        h->recv_live = false;
        if (h->res != 0)
            break;
        h->out = h->k++ % 4;               /* which use (no switch: an await below) */
        if (h->out == 0) {
            weft_join_drop(h->j);
        } else if (h->out == 1) {
            if (weft_join_poll(h->j, cx, &h->res, &h->out) == WEFT_READY)
                atomic_fetch_add(h->res == 0 ? h->ok : h->cancelled, 1);
            weft_join_drop(h->j);
        } else if (h->out == 2) {
            weft_join_abort(h->j);
            weft_join_drop(h->j);
        } else {
            h->out = 0;
            WEFT_AWAIT(&h->co, weft_join_poll(h->j, cx, &h->res, &h->out));
            if (h->res == 0 && h->out != 42)
                atomic_fetch_add(h->ok, 1000000);
            else
                atomic_fetch_add(h->res == 0 ? h->ok : h->cancelled, 1);
            weft_join_drop(h->j);
        }
        h->j = NULL;
    }
    *(int *)out = 0;
    WEFT_END(&h->co);
}

static void handler_drop(handler *h)
{
    if (h->recv_live)
        weft_chan_recv_drop(&h->r);
    if (h->j)
        weft_join_drop(h->j);              /* awaited when B went away */
    h->j = NULL;
}

WEFT_DEFINE_FUTURE_STATIC(handler, handler_poll, handler_drop, int);

/* task.h: a handle may be used (polled, aborted, dropped) from any thread,
 * one at a time: here the workers of another runtime, while A's workers
 * complete the tasks; every task's drop runs once; the runtimes are freed
 * in either order. */
static void handles_on_another_runtime(bool free_a_first)
{
    int rounds = (int)harness_scale(20);

    for (int round = 0; round < rounds; round++) {
        weft_runtime *a = rt_of(2), *b = rt_of(2);
        weft_chan *handles;
        weft_join *hj[2];
        atomic_int drops = 0, ok = 0, cancelled = 0;
        int n = 400, res;

        ASSERT_OK(weft_chan_new(&handles, sizeof(weft_join *), 8));
        for (int i = 0; i < 2; i++)
            ASSERT_OK(weft_spawn(b, &handler_future,
                                 &(handler){ .handles = handles, .ok = &ok,
                                             .cancelled = &cancelled },
                                 &hj[i]));
        for (int i = 0; i < n; i++) {
            weft_join *j;

            ASSERT_OK(weft_spawn(a, &quick_future,
                                 &(quick){ .yields = i % 3, .drops = &drops }, &j));
            ASSERT_OK(weft_chan_send_wait(handles, &j));
        }
        weft_chan_close(handles);
        for (int i = 0; i < 2; i++) {
            ASSERT_OK(weft_join_wait(hj[i], &res));
            weft_join_drop(hj[i]);
        }
        /* the awaited quarter all answered (a wrong output adds a million) */
        ASSERT_LE(atomic_load(&ok) + atomic_load(&cancelled), n / 4);
        if (atomic_load(&ok) >= 1000000)
            harness_fail(__FILE__, __LINE__, "a joined task's output was not 42");
        if (free_a_first) {
            weft_runtime_free(a);
            weft_runtime_free(b);
        } else {
            weft_runtime_free(b);
            weft_runtime_free(a);
        }
        ASSERT_EQ(n, atomic_load(&drops));
        weft_chan_drop(handles);
    }
}

TEST(join_handles_polled_aborted_and_dropped_on_another_runtime_a_freed_first)
{
    handles_on_another_runtime(true);
}

TEST(join_handles_polled_aborted_and_dropped_on_another_runtime_b_freed_first)
{
    handles_on_another_runtime(false);
}

/* ---- receivers outliving the runtime that waited on them ------------------------ */
typedef struct watcher {
    weft_async co;
    weft_watch_rx *wrx;
    weft_bcast_rx *brx;
    atomic_int *parked;
    int v, res;
    weft_watch_changed wc;
    weft_bcast_recv br;
    weft_future_ref refs[2];
    weft_join_all ja;
    int r1, r2;
    bool live;
} watcher;

static weft_poll watcher_poll(watcher *w, weft_context *cx, void *out)
{
    WEFT_BEGIN(&w->co);
    weft_watch_changed_init(&w->wc, w->wrx, &w->v);
    weft_bcast_recv_init(&w->br, w->brx, &w->v, NULL);
    w->refs[0] = (weft_future_ref){ &weft_watch_changed_future, &w->wc, &w->r1, 0 };
    w->refs[1] = (weft_future_ref){ &weft_bcast_recv_future, &w->br, &w->r2, 0 };
    weft_join_all_init(&w->ja, w->refs, 2);
    w->live = true;
    atomic_fetch_add(w->parked, 1);
    WEFT_AWAIT(&w->co, weft_join_all_poll(&w->ja, cx, &w->res));
    *(int *)out = 0;
    WEFT_END(&w->co);
}

static void watcher_drop(watcher *w)
{
    if (w->live)
        weft_join_all_drop(&w->ja);
    w->live = false;
}

WEFT_DEFINE_FUTURE_STATIC(watcher, watcher_poll, watcher_drop, int);

/* chan.h: the watch and the broadcast channel are reference-counted and
 * need no runtime: tasks of a runtime wait on receivers, the runtime is
 * freed (the tasks cancelled, their waits dropped), and the receivers and
 * senders go on working from a plain thread, released in any order. */
TEST(watch_and_bcast_receivers_outlive_the_runtime_of_their_waiters)
{
    for (int order = 0; order < 2; order++) {
        weft_runtime *rt = rt_of(2);
        weft_watch *w;
        weft_bcast *b;
        weft_watch_rx *wrx[4];
        weft_bcast_rx *brx[4];
        atomic_int parked = 0;
        int v = 1, d = 0;
        uint64_t missed = 0;

        ASSERT_OK(weft_watch_new(&w, sizeof(int), &v));
        ASSERT_OK(weft_bcast_new(&b, sizeof(int), 2));
        for (int i = 0; i < 4; i++) {
            ASSERT_OK(weft_watch_rx_new(&wrx[i], w));
            ASSERT_OK(weft_bcast_rx_new(&brx[i], b));
            ASSERT_OK(weft_spawn_detached(rt, &watcher_future,
                                          &(watcher){ .wrx = wrx[i], .brx = brx[i],
                                                      .parked = &parked }));
        }
        ST_WAIT_UNTIL(atomic_load(&parked) == 4);
        weft_runtime_free(rt);                   /* the waits are dropped */
        v = 2;
        ASSERT_OK(weft_watch_send(w, &v));
        ASSERT_OK(weft_bcast_send(b, &v));
        if (order) {
            weft_watch_drop(w);
            weft_bcast_drop(b);
        }
        for (int i = 0; i < 4; i++) {
            ASSERT_EQ(1, weft_watch_has_changed(wrx[i]));
            ASSERT_OK(weft_watch_get(wrx[i], &d));
            ASSERT_EQ(2, d);
            d = 0;
            ASSERT_OK(weft_bcast_try_recv(brx[i], &d, &missed));
            ASSERT_EQ(2, d);
            ASSERT_EQ(order ? -EPIPE : -EAGAIN, weft_bcast_try_recv(brx[i], &d, &missed));
            weft_watch_rx_drop(wrx[i]);
            weft_bcast_rx_drop(brx[i]);
        }
        if (!order) {
            ASSERT_EQ(1, (int)weft_watch_version(w));
            weft_watch_drop(w);
            weft_bcast_drop(b);
        }
    }
}
