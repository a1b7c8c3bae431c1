// SPDX-License-Identifier: MIT
/* Audit 8 of weft/observe.h and weft/trace.h with coroutines: every reader
 * (dump, metrics, trace start/stop/write/stats, lint and poll-timing
 * switches) at work from other threads while coroutines migrate between
 * the workers, park, wake each other across two runtimes, and get aborted
 * (the worker loop resumes a coroutine in its own frame; a traced poll
 * takes the ordinary path: the switches between the two are exercised
 * here). Each coroutine's fn runs exactly once, the counts add up at the
 * end, and the recordings of both runtimes are written whole. Sizes are
 * harness_scale'd; under TSan this is a race check. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#define WAIT_MS 30000u

typedef struct shared {
    weft_chan *a2b, *b2a;           /* messages between the two runtimes */
    atomic_long runs, done_ok, cancelled;
    atomic_int stop;
} shared;

static int pinger(void *arg)
{
    shared *s = arg;
    int v = 1, rounds = (int)harness_scale(3000);

    atomic_fetch_add(&s->runs, 1);
    for (int i = 0; i < rounds; i++) {
        int r = weft_co_chan_send(s->a2b, &v);

        if (r == 0)
            r = weft_co_chan_recv(s->b2a, &v);
        if (r == 0)
            r = (i % 7 == 0) ? weft_co_sleep(1) : weft_co_yield();
        if (r == -ECANCELED) {
            atomic_fetch_add(&s->cancelled, 1);
            return -ECANCELED;
        }
        if (r < 0)
            return r;              /* -EPIPE: the other side is gone */
    }
    atomic_fetch_add(&s->done_ok, 1);
    return 0;
}

static int ponger(void *arg)
{
    shared *s = arg;
    int v;

    atomic_fetch_add(&s->runs, 1);
    for (;;) {
        int r = weft_co_chan_recv(s->a2b, &v);

        if (r == 0)
            r = weft_co_chan_send(s->b2a, &v);
        if (r == -ECANCELED) {
            atomic_fetch_add(&s->cancelled, 1);
            return -ECANCELED;
        }
        if (r < 0)
            return 0;              /* closed: the end */
    }
}

typedef struct reader_ctx {
    weft_runtime *rt[2];
    shared *s;
    atomic_long rounds, bad;
} reader_ctx;

static int count_visit(const weft_task_info *t, void *arg)
{
    long *n = arg;

    if (t->id == 0 || t->polls > (1ull << 40))
        return -1;                 /* garbage: stops the walk, counted bad */
    (*n)++;
    return 0;
}

static void hook(const weft_lint *l, void *arg)
{
    (void)l;
    (void)arg;
}

static void *reader(void *arg)
{
    reader_ctx *c = arg;
    FILE *null = fopen("/dev/null", "w");
    weft_lint_options lo = { 0, 0, hook, NULL };

    if (null == NULL) {
        atomic_fetch_add(&c->bad, 1);
        return NULL;
    }
    while (!atomic_load(&c->s->stop)) {
        long k = atomic_fetch_add(&c->rounds, 1);
        weft_runtime *rt = c->rt[k & 1];
        weft_metrics m;
        weft_trace_stats ts;
        long n = 0;
        int r;

        memset(&m, 0, sizeof(m));
        m.size = sizeof(m);
        if (weft_runtime_metrics(rt, &m) != 0 || m.tasks_live > m.tasks_spawned)
            atomic_fetch_add(&c->bad, 1);
        if (weft_runtime_tasks(rt, count_visit, &n) != 0)
            atomic_fetch_add(&c->bad, 1);
        if (k % 8 == 0 && weft_runtime_dump(rt, null) < 0)
            atomic_fetch_add(&c->bad, 1);
        r = weft_trace_start(rt, (k % 3) ? 64 : 0);
        if (r != 0 && r != -EBUSY)
            atomic_fetch_add(&c->bad, 1);
        usleep(200);
        r = weft_trace_get_stats(rt, &ts);
        if (r != 0 && r != -ESRCH)
            atomic_fetch_add(&c->bad, 1);
        r = weft_trace_stop(rt);
        if (r != 0 && r != -ESRCH)
            atomic_fetch_add(&c->bad, 1);
        r = (int)weft_trace_write(rt, null);
        if (r < 0 && r != -EBUSY && r != -ESRCH)
            atomic_fetch_add(&c->bad, 1);
        weft_runtime_set_poll_timing(rt, k % 4 < 2);
        lo.long_poll_ns = (k % 5) ? 1000000ull : 0;
        lo.mask = (k % 6) ? 0 : WEFT_LINTS_OFF;
        if (weft_runtime_set_lints(rt, &lo) != 0)
            atomic_fetch_add(&c->bad, 1);
    }
    fclose(null);
    return NULL;
}

TEST(readers_at_work_while_coroutines_migrate_across_two_runtimes)
{
    enum { PAIRS = 8 };
    weft_runtime *ra = NULL, *rb = NULL;
    shared s;
    reader_ctx rc;
    weft_join *ja[PAIRS], *jb[PAIRS];
    pthread_t th[2];
    uint64_t until = weft_now_ms() + WAIT_MS;
    weft_metrics m;

    memset(&s, 0, sizeof(s));
    memset(&rc, 0, sizeof(rc));
    ASSERT_OK(weft_runtime_new(&ra, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_runtime_new(&rb, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_chan_new(&s.a2b, sizeof(int), 4));
    ASSERT_OK(weft_chan_new(&s.b2a, sizeof(int), 4));
    rc.rt[0] = ra;
    rc.rt[1] = rb;
    rc.s = &s;
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(0, pthread_create(&th[i], NULL, reader, &rc));
    for (int i = 0; i < PAIRS; i++) {
        ASSERT_OK(weft_go_opt(ra, pinger, &s, &(weft_go_options){ .name = "pinger" }, &ja[i]));
        ASSERT_OK(weft_go_opt(rb, ponger, &s, &(weft_go_options){ .name = "ponger" }, &jb[i]));
    }
    /* abort two pingers midway: their partners keep serving the others */
    usleep(5000);
    weft_join_abort(ja[0]);
    weft_join_abort(ja[1]);
    for (int i = 0; i < PAIRS; i++) {
        int out = 1;

        while (!weft_join_is_complete(ja[i])) {
            ASSERT(weft_now_ms() < until);
            usleep(1000);
        }
        ASSERT(weft_join_wait(ja[i], &out) == 0 || i < 2);
    }
    weft_chan_close(s.a2b);         /* the pongers end */
    weft_chan_close(s.b2a);
    for (int i = 0; i < PAIRS; i++) {
        int out = 1;

        while (!weft_join_is_complete(jb[i])) {
            ASSERT(weft_now_ms() < until);
            usleep(1000);
        }
        ASSERT_OK(weft_join_wait(jb[i], &out));
        ASSERT_EQ(0, out);
    }
    atomic_store(&s.stop, 1);
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(0, pthread_join(th[i], NULL));
    ASSERT_EQ(0, atomic_load(&rc.bad));
    ASSERT_EQ(2 * PAIRS, atomic_load(&s.runs));
    ASSERT_EQ(PAIRS, atomic_load(&s.done_ok) + atomic_load(&s.cancelled));
    for (int i = 0; i < PAIRS; i++) {
        weft_join_drop(ja[i]);
        weft_join_drop(jb[i]);
    }
    /* at rest: nothing live, every timer accounted for */
    for (int k = 0; k < 2; k++) {
        weft_runtime *rt = k ? rb : ra;

        memset(&m, 0, sizeof(m));
        m.size = sizeof(m);
        ASSERT_OK(weft_runtime_metrics(rt, &m));
        ASSERT_EQ(0, m.tasks_live);
        ASSERT_EQ(m.tasks_spawned, m.tasks_completed);
        ASSERT_EQ(m.timers_registered, m.timers_fired + m.timers_cancelled + m.timers_armed);
    }
    weft_chan_drop(s.a2b);
    weft_chan_drop(s.b2a);
    weft_runtime_free(ra);
    weft_runtime_free(rb);
}

/* ---- start and stop twice, on two runtimes at once ------------------------------------ */
/* trace.h: each runtime has its own recording; a second start while one
 * records is -EBUSY, a second stop -ESRCH; a write waits for the stop (and
 * may be repeated), and one runtime's recording never answers for the
 * other's. */
typedef weft_yield yield_once;

static weft_poll one_yield(yield_once *y, weft_context *cx, void *out)
{
    (void)out;
    return weft_yield_poll(y, cx);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(yield_once, one_yield, NULL);

TEST(trace_start_and_stop_twice_on_two_runtimes)
{
    weft_runtime *ra = NULL, *rb = NULL;
    FILE *null = fopen("/dev/null", "w");
    weft_trace_stats st;
    weft_yield y;
    long wa, wa2;

    ASSERT(null != NULL);
    ASSERT_OK(weft_runtime_new(&ra, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_runtime_new(&rb, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    ASSERT_EQ(-ESRCH, weft_trace_stop(ra));
    ASSERT_EQ(-ESRCH, weft_trace_write(ra, null));
    ASSERT_EQ(-ESRCH, weft_trace_get_stats(ra, &st));
    ASSERT_OK(weft_trace_start(ra, 128));
    ASSERT_EQ(-EBUSY, weft_trace_start(ra, 128));
    ASSERT_EQ(-EBUSY, weft_trace_start(ra, 0));           /* whatever the size */
    ASSERT_EQ(-ESRCH, weft_trace_stop(rb));                /* b records nothing */
    ASSERT_EQ(-ESRCH, weft_trace_write(rb, null));
    ASSERT_OK(weft_trace_start(rb, 0));
    weft_yield_init(&y);
    ASSERT_OK(weft_block_on(ra, &yield_once_future, &y, NULL));
    weft_yield_init(&y);
    ASSERT_OK(weft_block_on(rb, &yield_once_future, &y, NULL));
    ASSERT_EQ(-EBUSY, weft_trace_write(ra, null));
    ASSERT_OK(weft_trace_stop(ra));
    ASSERT_EQ(-ESRCH, weft_trace_stop(ra));
    wa = weft_trace_write(ra, null);                        /* b still records */
    ASSERT(wa > 0);
    wa2 = weft_trace_write(ra, null);
    ASSERT_EQ(wa, wa2);                                     /* a second copy */
    ASSERT_OK(weft_trace_get_stats(ra, &st));
    ASSERT(st.recorded > 0);
    ASSERT_OK(weft_trace_get_stats(rb, &st));               /* a snapshot while it runs */
    ASSERT_OK(weft_trace_stop(rb));
    ASSERT(weft_trace_write(rb, null) > 0);
    /* restarted: the old recording is gone, the new one empty of polls */
    ASSERT_OK(weft_trace_start(ra, 64));
    ASSERT_OK(weft_trace_stop(ra));
    ASSERT_OK(weft_trace_get_stats(ra, &st));
    ASSERT(weft_trace_write(ra, null) > 0);
    weft_runtime_free(ra);
    weft_runtime_free(rb);
    fclose(null);
}
