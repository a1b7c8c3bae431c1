/* SPDX-License-Identifier: MIT */
/* weft_runtime_metrics(): argument checks, the size field (an older
 * caller's smaller struct is filled only that far), and every layer's
 * counters counted exactly in a deterministic scenario on a current-thread
 * runtime: tasks spawned / completed / aborted, polls against the poll-time
 * histogram, timers registered / fired / cancelled, the reactor's sources
 * and EAGAINs, the default blocking pool's jobs and waits. Then the
 * Prometheus text form. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#define NQUICK 10
#define NABORT 3

static unsigned long long hist_sum(const unsigned long long *h, unsigned n)
{
    unsigned long long s = 0;

    for (unsigned i = 0; i < n; i++)
        s += h[i];
    return s;
}

TEST(metrics_rejects_bad_arguments_and_fills_only_size_bytes)
{
    weft_runtime *rt;
    weft_metrics m;
    const size_t small = offsetof(weft_metrics, uptime_ns) + sizeof(m.uptime_ns);

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_EQ(-EINVAL, weft_runtime_metrics(NULL, &m));
    ASSERT_EQ(-EINVAL, weft_runtime_metrics(rt, NULL));
    m.size = small - 1;
    ASSERT_EQ(-EINVAL, weft_runtime_metrics(rt, &m));
    memset(&m, 0xa5, sizeof(m));
    m.size = small;
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(small, m.size);
    ASSERT_EQ(WEFT_METRICS_VERSION, m.version);
    ASSERT_EQ(1, m.workers);
    ASSERT_EQ(0xa5a5a5a5a5a5a5a5ull, m.polls);       /* past size: untouched */
    m.size = sizeof(m);
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(0, m.tasks_spawned);
    ASSERT_EQ(0, m.io_sources);
    ASSERT_EQ(0, m.blocking_threads);
    ASSERT_EQ(1ull << 10, weft_hist_bucket_upper_ns(0));
    ASSERT_EQ(1ull << 11, weft_hist_bucket_upper_ns(1));
    ASSERT_EQ(UINT64_MAX, weft_hist_bucket_upper_ns(WEFT_HIST_BUCKETS - 1));
    weft_runtime_free(rt);
}

/* ---- the scenario ----------------------------------------------------------------- */
typedef struct quick {
    int v;
} quick;

static weft_poll quick_poll(quick *q, weft_context *cx, int *out)
{
    (void)cx;
    *out = q->v;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_STATIC(quick, quick_poll, NULL, int);

typedef struct parked {
    weft_async co;
    weft_chan *ch;
    int v, res;
    bool inited;
    weft_chan_recv r;
} parked;

static weft_poll parked_poll(parked *p, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&p->co);
    weft_chan_recv_init(&p->r, p->ch, &p->v);
    p->inited = true;
    WEFT_AWAIT(&p->co, weft_chan_recv_poll(&p->r, cx, &p->res));
    WEFT_END(&p->co);
}

static void parked_drop(parked *p)
{
    if (p->inited)
        weft_chan_recv_drop(&p->r);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(parked, parked_poll, parked_drop);

static void *job_fn(void *arg)
{
    return arg;
}

typedef struct root {
    weft_async co;
    unsigned i;
    int res, out;
    ssize_t n;
    char byte;
    weft_chan *ch;
    weft_join *joins[NQUICK], *aborts[NABORT];
    weft_yield y;
    weft_sleep s1, s2;
    weft_blocking_job *job;
    weft_blocking_join bj;
    void *ret;
    weft_stream *rd, *wr;
    weft_read rdop;
} root;

static weft_metrics mid;              /* taken by the root while its read waits */

static weft_poll root_poll(root *r, weft_context *cx, int *out)
{
    weft_runtime *rt = weft_runtime_current();

    WEFT_BEGIN(&r->co);
    /* tasks: NQUICK complete, NABORT aborted while parked */
    for (r->i = 0; r->i < NQUICK; r->i++)
        if (weft_spawn(rt, &quick_future, &(quick){ (int)r->i }, &r->joins[r->i]) < 0)
            abort();
    for (r->i = 0; r->i < NQUICK; r->i++) {
        WEFT_AWAIT(&r->co, weft_join_poll(r->joins[r->i], cx, &r->res, &r->out));
        weft_join_drop(r->joins[r->i]);
    }
    if (weft_chan_new(&r->ch, sizeof(int), 1) < 0)
        abort();
    for (r->i = 0; r->i < NABORT; r->i++)
        if (weft_spawn(rt, &parked_future, &(parked){ .ch = r->ch }, &r->aborts[r->i]) < 0)
            abort();
    weft_yield_init(&r->y);           /* they run (and park) first */
    WEFT_AWAIT(&r->co, weft_yield_poll(&r->y, cx));
    for (r->i = 0; r->i < NABORT; r->i++)
        weft_join_abort(r->aborts[r->i]);
    for (r->i = 0; r->i < NABORT; r->i++) {
        WEFT_AWAIT(&r->co, weft_join_poll(r->aborts[r->i], cx, &r->res, NULL));
        if (r->res != -ECANCELED)
            abort();
        weft_join_drop(r->aborts[r->i]);
    }
    weft_chan_drop(r->ch);

    /* timers: one fires, one is dropped while armed */
    weft_sleep_init(&r->s1, 2);
    WEFT_AWAIT(&r->co, weft_sleep_poll(&r->s1, cx));
    weft_sleep_init(&r->s2, 100000);
    while (weft_sleep_poll(&r->s2, cx) == WEFT_READY)
        abort();
    weft_sleep_drop(&r->s2);

    /* the default blocking pool: one job */
    if (weft_blocking_spawn(NULL, job_fn, r, &r->job) < 0)
        abort();
    weft_blocking_join_init(&r->bj, r->job, &r->ret);
    WEFT_AWAIT(&r->co, weft_blocking_join_poll(&r->bj, cx, &r->res));
    weft_blocking_join_drop(&r->bj);
    weft_blocking_job_drop(r->job);

    /* the reactor: a read of an empty pipe finds it drained, then waits */
    if (weft_pipe(rt, &r->rd, &r->wr) < 0)
        abort();
    weft_read_init(&r->rdop, r->rd, &r->byte, 1);
    while (weft_io_op_poll(&r->rdop, cx, &r->n) == WEFT_READY)
        abort();
    mid.size = sizeof(mid);
    if (weft_runtime_metrics(rt, &mid) < 0)
        abort();
    if (write(weft_stream_fd(r->wr), "x", 1) != 1)
        abort();
    WEFT_AWAIT(&r->co, weft_io_op_poll(&r->rdop, cx, &r->n));
    weft_io_op_drop(&r->rdop);
    weft_stream_close(r->rd);
    weft_stream_close(r->wr);
    *out = (int)r->n;
    WEFT_END(&r->co);
}

WEFT_DEFINE_FUTURE_STATIC(root, root_poll, NULL, int);

TEST(metrics_count_every_layer_exactly)
{
    static root r;
    weft_runtime *rt;
    weft_metrics m = { .size = sizeof(m) };
    int n = 0;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    ASSERT_OK(weft_runtime_set_poll_timing(rt, true));
    memset(&r, 0, sizeof(r));
    ASSERT_OK(weft_block_on(rt, &root_future, &r, &n));
    ASSERT_EQ(1, n);
    ASSERT_OK(weft_runtime_metrics(rt, &m));

    /* tasks: the root, NQUICK, NABORT */
    ASSERT_EQ(1 + NQUICK + NABORT, m.tasks_spawned);
    ASSERT_EQ(m.tasks_spawned, m.tasks_completed);
    ASSERT_EQ(NABORT, m.tasks_aborted);
    ASSERT_EQ(0, m.tasks_live);
    /* scheduler: `polls` counts the runs that dropped an aborted task too,
     * the histogram only the polls of a future */
    ASSERT(m.polls >= 1 + NQUICK + NABORT);
    ASSERT_EQ(m.polls, hist_sum(m.poll_time_hist, WEFT_HIST_BUCKETS) + NABORT);
    ASSERT(m.poll_time_ns > 0);
    ASSERT_EQ(0, m.local_queue_depth);
    ASSERT_EQ(0, m.inject_queue_depth);
    ASSERT(m.uptime_ns > 0);
    /* timers */
    ASSERT_EQ(2, m.timers_registered);
    ASSERT_EQ(1, m.timers_fired);
    ASSERT_EQ(1, m.timers_cancelled);
    ASSERT_EQ(0, m.timers_armed);
    ASSERT_EQ(1, hist_sum(m.timer_late_hist, WEFT_HIST_BUCKETS));
    /* the blocking pool */
    ASSERT_EQ(1, m.blocking_jobs);
    ASSERT_EQ(1, hist_sum(m.blocking_wait_hist, WEFT_HIST_BUCKETS));
    ASSERT(m.blocking_threads <= 1);
    ASSERT_EQ(0, m.blocking_queue_depth);
    /* the reactor: both pipe ends registered while the read waited */
    ASSERT_EQ(2, mid.io_sources);
    if (!harness_stress())            /* else the first look may be refused */
        ASSERT(mid.io_eagain >= 1);
    ASSERT_EQ(0, m.io_sources);
    if (!harness_stress()) {          /* the read waited for the byte's edge */
        ASSERT(m.io_polls >= 1);
        ASSERT(m.io_events >= 1);
    }
    ASSERT_EQ(m.io_polls, hist_sum(m.io_events_hist, 8));
    ASSERT_EQ(0, m.lints);
    weft_runtime_free(rt);
}

/* Counters only grow, and the same scenario twice counts twice. */
TEST(metrics_totals_add_up_across_runs)
{
    static root r;
    weft_runtime *rt;
    weft_metrics a = { .size = sizeof(a) }, b = { .size = sizeof(b) };
    int n = 0;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    memset(&r, 0, sizeof(r));
    ASSERT_OK(weft_block_on(rt, &root_future, &r, &n));
    ASSERT_OK(weft_runtime_metrics(rt, &a));
    memset(&r, 0, sizeof(r));
    ASSERT_OK(weft_block_on(rt, &root_future, &r, &n));
    ASSERT_OK(weft_runtime_metrics(rt, &b));
    ASSERT_EQ(2 * a.tasks_spawned, b.tasks_spawned);
    ASSERT_EQ(2 * a.tasks_aborted, b.tasks_aborted);
    ASSERT_EQ(2 * a.timers_fired, b.timers_fired);
    ASSERT_EQ(2 * a.blocking_jobs, b.blocking_jobs);
    ASSERT(b.polls > a.polls);
    ASSERT(b.uptime_ns >= a.uptime_ns);
    weft_runtime_free(rt);
}

/* Multi-thread: the sums over the workers agree with what ran. */
TEST(metrics_multi_thread_tasks_and_polls)
{
    weft_runtime *rt;
    weft_metrics m = { .size = sizeof(m) };
    unsigned k = (unsigned)harness_scale(2000);

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 3 }));
    ASSERT_OK(weft_runtime_set_poll_timing(rt, true));
    for (unsigned i = 0; i < k; i++)
        ASSERT_OK(weft_spawn_detached(rt, &quick_future, &(quick){ 1 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(3, m.workers);
    ASSERT_EQ(k, m.tasks_spawned);
    ASSERT_EQ(k, m.tasks_completed);
    ASSERT_EQ(0, m.tasks_aborted);
    ASSERT_EQ(0, m.tasks_live);
    ASSERT_EQ(k, m.polls);            /* quick is ready on its first poll */
    ASSERT_EQ(k, hist_sum(m.poll_time_hist, WEFT_HIST_BUCKETS));
    weft_runtime_free(rt);
}

/* ---- Prometheus ------------------------------------------------------------------- */
TEST(metrics_prometheus_text)
{
    weft_runtime *rt;
    weft_metrics m = { .size = sizeof(m) };
    char small[64], *buf;
    int need, again;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_runtime_set_poll_timing(rt, true));
    ASSERT_OK(weft_spawn_detached(rt, &quick_future, &(quick){ 1 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(-EINVAL, weft_metrics_prometheus(NULL, small, sizeof(small)));
    ASSERT_EQ(-EINVAL, weft_metrics_prometheus(&m, NULL, 10));
    need = weft_metrics_prometheus(&m, NULL, 0);
    ASSERT(need > 1000);
    again = weft_metrics_prometheus(&m, small, sizeof(small));
    ASSERT_EQ(need, again);
    ASSERT_EQ(sizeof(small) - 1, strlen(small));     /* cut, terminated */
    buf = malloc((size_t)need + 1);
    ASSERT(buf != NULL);
    ASSERT_EQ(need, weft_metrics_prometheus(&m, buf, (size_t)need + 1));
    ASSERT_EQ((size_t)need, strlen(buf));
    ASSERT(strstr(buf, "# TYPE weft_polls_total counter\nweft_polls_total 1\n") != NULL);
    ASSERT(strstr(buf, "weft_tasks_spawned_total 1\n") != NULL);
    ASSERT(strstr(buf, "weft_workers 2\n") != NULL);
    ASSERT(strstr(buf, "# TYPE weft_poll_duration_seconds histogram\n") != NULL);
    ASSERT(strstr(buf, "weft_poll_duration_seconds_bucket{le=\"+Inf\"} 1\n") != NULL);
    ASSERT(strstr(buf, "weft_poll_duration_seconds_count 1\n") != NULL);
    ASSERT(strstr(buf, "weft_poll_duration_seconds_bucket{le=\"1.024e-06\"} ") != NULL);
    ASSERT(buf[need - 1] == '\n');
    free(buf);
    weft_runtime_free(rt);
}

/* Poll timing is off by default: polls are counted, not timed. */
TEST(metrics_poll_timing_off_by_default)
{
    weft_runtime *rt;
    weft_metrics m = { .size = sizeof(m) };

    unsetenv("WEFT_POLL_TIMING");
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT(!weft_runtime_poll_timing(rt));
    ASSERT(!weft_runtime_poll_timing(NULL));
    ASSERT_EQ(-EINVAL, weft_runtime_set_poll_timing(NULL, true));
    ASSERT_OK(weft_spawn_detached(rt, &quick_future, &(quick){ 1 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(1, m.polls);
    ASSERT_EQ(0, hist_sum(m.poll_time_hist, WEFT_HIST_BUCKETS));
    ASSERT_EQ(0, m.poll_time_ns);
    ASSERT_OK(weft_runtime_set_poll_timing(rt, true));
    ASSERT(weft_runtime_poll_timing(rt));
    ASSERT_OK(weft_spawn_detached(rt, &quick_future, &(quick){ 1 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(2, m.polls);
    ASSERT_EQ(1, hist_sum(m.poll_time_hist, WEFT_HIST_BUCKETS));
    weft_runtime_free(rt);
    /* the environment turns it on */
    setenv("WEFT_POLL_TIMING", "1", 1);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT(weft_runtime_poll_timing(rt));
    weft_runtime_free(rt);
    unsetenv("WEFT_POLL_TIMING");
}
