// SPDX-License-Identifier: MIT
/* A fifth look at weft/observe.h's metrics (public API only): "every total
 * only grows" and the values stay consistent with each other in snapshots
 * taken from another thread while tasks spawn, sleep, abort, do I/O and use
 * the blocking pool on every worker; after the load, the totals match what
 * ran. Run under TSan too (the snapshot reads racy counters by design). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

/* A task that sleeps a little, does a pipe round trip, and a blocking job. */
typedef struct busy5 {
    weft_async co;
    weft_sleep s;
    weft_yield y;
    weft_blocking_job *job;
    weft_blocking_join bj;
    int res;
    unsigned i;
} busy5;

static void *nothing_job(void *arg)
{
    return arg;
}

static weft_poll busy5_poll(busy5 *f, weft_context *cx, int *out)
{
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < 3; f->i++) {
        weft_sleep_init(&f->s, 1);
        WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
        weft_sleep_drop(&f->s);
        WEFT_YIELD(&f->co, &f->y, cx);
    }
    if (weft_blocking_spawn(NULL, nothing_job, NULL, &f->job) == 0) {
        weft_blocking_join_init(&f->bj, f->job, NULL);
        WEFT_AWAIT(&f->co, weft_blocking_join_poll(&f->bj, cx, &f->res));
        weft_blocking_join_drop(&f->bj);
        weft_blocking_job_drop(f->job);
        f->job = NULL;
    }
    *out = 0;
    WEFT_END(&f->co);
}

static void busy5_drop(busy5 *f)
{
    if (f->co.line == 0 || WEFT_ASYNC_IS_DONE(&f->co))
        return;
    weft_sleep_drop(&f->s);
    if (f->job) {
        weft_blocking_join_drop(&f->bj);
        weft_blocking_job_drop(f->job);
    }
}
WEFT_DEFINE_FUTURE_STATIC(busy5, busy5_poll, busy5_drop, int);

#define TOTALS(X)                                                             \
    X(polls) X(steals) X(overflows) X(parks) X(budget_yields) X(lifo_polls)   \
    X(poll_time_ns) X(tasks_spawned) X(tasks_completed) X(tasks_aborted)      \
    X(timers_registered) X(timers_fired) X(timers_cancelled) X(timer_late_ns) \
    X(io_polls) X(io_events) X(io_eagain) X(blocking_jobs) X(blocking_wait_ns) \
    X(lints)

static atomic_int stop;
static atomic_int violations;
static char first_violation[256];

static void violation(const char *what, unsigned long long a, unsigned long long b)
{
    if (atomic_fetch_add(&violations, 1) == 0)
        snprintf(first_violation, sizeof(first_violation), "%s: %llu then %llu", what, a, b);
}

static void *snapshotter(void *arg)
{
    weft_runtime *rt = arg;
    weft_metrics prev, m;

    memset(&prev, 0, sizeof(prev));
    while (!atomic_load(&stop)) {
        memset(&m, 0, sizeof(m));
        m.size = sizeof(m);
        if (weft_runtime_metrics(rt, &m) != 0) {
            violation("metrics failed", 0, 0);
            break;
        }
#define CHECK_GROWS(f)                                                        \
        if (m.f < prev.f)                                                     \
            violation(#f, prev.f, m.f);
        TOTALS(CHECK_GROWS)
#undef CHECK_GROWS
        for (unsigned b = 0; b < WEFT_HIST_BUCKETS; b++) {
            if (m.poll_time_hist[b] < prev.poll_time_hist[b])
                violation("poll_time_hist", prev.poll_time_hist[b], m.poll_time_hist[b]);
            if (m.timer_late_hist[b] < prev.timer_late_hist[b])
                violation("timer_late_hist", prev.timer_late_hist[b], m.timer_late_hist[b]);
            if (m.blocking_wait_hist[b] < prev.blocking_wait_hist[b])
                violation("blocking_wait_hist", prev.blocking_wait_hist[b],
                          m.blocking_wait_hist[b]);
        }
        for (unsigned b = 0; b < 8; b++)
            if (m.io_events_hist[b] < prev.io_events_hist[b])
                violation("io_events_hist", prev.io_events_hist[b], m.io_events_hist[b]);
        if (m.uptime_ns < prev.uptime_ns)
            violation("uptime_ns", prev.uptime_ns, m.uptime_ns);
        if (m.tasks_live > m.tasks_spawned)
            violation("tasks_live > tasks_spawned", m.tasks_live, m.tasks_spawned);
        if (m.blocking_idle_threads > m.blocking_threads)
            violation("idle > threads", m.blocking_idle_threads, m.blocking_threads);
        if (m.version != WEFT_METRICS_VERSION || m.size != sizeof(m))
            violation("version/size", m.version, m.size);
        prev = m;
    }
    return NULL;
}

TEST(totals_only_grow_under_load)
{
    weft_runtime *rt = NULL;
    pthread_t th;
    weft_join *js[64];
    size_t rounds = harness_scale(20);
    unsigned long long spawned = 0, aborted_req = 0;
    weft_metrics m;

    atomic_store(&stop, 0);
    atomic_store(&violations, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_runtime_set_poll_timing(rt, true));
    ASSERT_EQ(0, pthread_create(&th, NULL, snapshotter, rt));
    for (size_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < 64; i++) {
            busy5 f;

            memset(&f, 0, sizeof(f));
            ASSERT_OK(weft_spawn(rt, &busy5_future, &f, &js[i]));
            spawned++;
        }
        for (size_t i = 0; i < 64; i += 7) {
            weft_join_abort(js[i]);
            aborted_req++;
        }
        for (size_t i = 0; i < 64; i++) {
            int out = -1, err = weft_join_wait(js[i], &out);

            ASSERT(err == 0 || err == -ECANCELED);
            weft_join_drop(js[i]);
        }
    }
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    if (atomic_load(&violations) != 0)
        harness_fail(__FILE__, __LINE__, "%d violation(s), first: %s", atomic_load(&violations),
                     first_violation);
    /* quiescent: the totals are what ran */
    memset(&m, 0, sizeof(m));
    m.size = sizeof(m);
    for (int i = 0; i < 20000; i++) {
        ASSERT_OK(weft_runtime_metrics(rt, &m));
        if (m.tasks_completed == spawned)
            break;
        usleep(1000);
    }
    ASSERT_EQ(spawned, m.tasks_spawned);
    ASSERT_EQ(spawned, m.tasks_completed);
    ASSERT_EQ(0ull, m.tasks_live);
    ASSERT(m.tasks_aborted <= aborted_req);
    ASSERT(m.tasks_aborted <= m.tasks_completed);
    ASSERT(m.tasks_spawned <= m.polls);
    weft_runtime_free(rt);
}

/* The histogram shape observe.h gives: bucket 0 below 1,024 ns, bucket i
 * up to 2^(10+i) ns, the last one (and beyond) unbounded; names of states
 * and lints, "?" for others. */
TEST(histogram_bounds_and_names)
{
    for (unsigned i = 0; i + 1 < WEFT_HIST_BUCKETS; i++)
        ASSERT_EQ(1ull << (10 + i), weft_hist_bucket_upper_ns(i));
    ASSERT(weft_hist_bucket_upper_ns(WEFT_HIST_BUCKETS - 1) == UINT64_MAX);
    ASSERT(weft_hist_bucket_upper_ns(WEFT_HIST_BUCKETS) == UINT64_MAX);
    ASSERT(weft_hist_bucket_upper_ns(~0u) == UINT64_MAX);
    ASSERT(strcmp(weft_task_state_name(WEFT_TASK_IDLE), "idle") == 0);
    ASSERT(strcmp(weft_task_state_name(WEFT_TASK_COMPLETED), "completed") == 0);
    ASSERT(strcmp(weft_task_state_name((weft_task_state)99), "?") == 0);
    ASSERT(strcmp(weft_task_state_name((weft_task_state)-1), "?") == 0);
    ASSERT(strcmp(weft_lint_name(WEFT_LINT_STALL), "stall") == 0);
    ASSERT(strcmp(weft_lint_name((weft_lint_kind)0), "?") == 0);
    ASSERT(strcmp(weft_lint_name((weft_lint_kind)77), "?") == 0);
}
