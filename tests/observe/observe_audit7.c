/* SPDX-License-Identifier: MIT */
/* Audit 7 of weft/observe.h, weft/trace.h and the metrics of weft/sched.h:
 * every call made from several threads at once while the runtime works
 * (the headers: "Thread: any"), the layers made on first use (the blocking
 * pool, the reactor) made while snapshots read them, trace start/stop
 * races, lint options and poll timing switched under running polls. Run
 * under TSan, these are race checks as much as result checks. */
#define _GNU_SOURCE
#include "../sched/sched_test.h"

#include <stdlib.h>

#include "weft/blocking.h"

typedef struct busy {
    int left;
    weft_yield y;
    bool in_yield;
} busy;

static weft_poll busy_poll(busy *b, weft_context *cx, void *out)
{
    (void)out;
    while (b->left > 0) {
        if (!b->in_yield) {
            weft_yield_init(&b->y);
            b->in_yield = true;
        }
        if (weft_yield_poll(&b->y, cx) == WEFT_PENDING)
            return WEFT_PENDING;
        b->in_yield = false;
        b->left--;
    }
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_VOID_STATIC(busy, busy_poll, NULL);

/* A task that wakes itself (by_ref) on every poll for a while: the busy-loop
 * lint's food; and one that parks with no waker kept: the lost-waker's. */
typedef struct spinner {
    int left;
} spinner;

static weft_poll spinner_poll(spinner *s, weft_context *cx, void *out)
{
    (void)out;
    if (s->left-- <= 0)
        return WEFT_READY;
    weft_waker_wake_by_ref(weft_context_waker(cx));
    return WEFT_PENDING;
}
WEFT_DEFINE_FUTURE_VOID_STATIC(spinner, spinner_poll, NULL);

typedef struct lost {
    int polled;
} lost;

static weft_poll lost_poll(lost *l, weft_context *cx, void *out)
{
    (void)cx;
    (void)out;
    l->polled++;
    return WEFT_PENDING;
}
WEFT_DEFINE_FUTURE_VOID_STATIC(lost, lost_poll, NULL);

static void *job_fn(void *arg)
{
    return arg;
}

static atomic_long lint_calls;

static void count_lint(const weft_lint *l, void *arg)
{
    (void)l;
    (void)arg;
    atomic_fetch_add(&lint_calls, 1);
}

typedef struct reader {
    weft_runtime *rt;
    atomic_int *stop;
    int kind;
    long n;
} reader;

static int visit_count(const weft_task_info *t, void *arg)
{
    ASSERT(t->id > 0);
    ASSERT(t->state <= WEFT_TASK_COMPLETED);
    (*(long *)arg)++;
    return 0;
}

static void *reader_main(void *arg)
{
    reader *r = arg;
    FILE *null = fopen("/dev/null", "w");

    ASSERT(null != NULL);
    while (!atomic_load(r->stop)) {
        weft_metrics m = { .size = sizeof(m) };
        weft_worker_metrics wm;
        long tasks = 0;
        int fb;

        switch (r->kind) {
        case 0:
            ASSERT_OK(weft_runtime_metrics(r->rt, &m));
            ASSERT(m.tasks_completed <= m.tasks_spawned);
            ASSERT_OK(weft_runtime_worker_metrics(r->rt, 0, &wm));
            break;
        case 1:
            ASSERT_OK(weft_runtime_tasks(r->rt, visit_count, &tasks));
            ASSERT(weft_runtime_dump(r->rt, null) >= 0);
            break;
        case 2: {
            int e = weft_runtime_io_backend(r->rt, &fb);

            ASSERT(e == WEFT_IO_EPOLL || e == WEFT_IO_URING);
            break;
        }
        case 3: {
            weft_blocking_pool *p;
            weft_blocking_job *j;
            void *ret = NULL;

            ASSERT_OK(weft_blocking_default(r->rt, &p));
            ASSERT_OK(weft_blocking_spawn(p, job_fn, r, &j));
            ASSERT_OK(weft_blocking_job_wait(j, &ret));
            ASSERT(ret == r);
            weft_blocking_job_drop(j);
            break;
        }
        case 4:
            ASSERT_OK(weft_runtime_set_poll_timing(r->rt, r->n % 2 == 0));
            ASSERT_OK(weft_runtime_set_lints(r->rt, &(weft_lint_options){
                                                     .mask = r->n % 3 == 0 ? WEFT_LINTS_OFF : 0,
                                                     .long_poll_ns = 1 + (unsigned)(r->n % 5),
                                                     .hook = count_lint }));
            break;
        }
        r->n++;
    }
    fclose(null);
    return NULL;
}

/* Snapshots, dumps, the first io_backend and blocking_default calls, lint
 * and poll-timing switches, all from threads at once while tasks spawn,
 * yield, busy-loop and park; then the totals add up. */
TEST(every_reader_at_once_while_the_runtime_works)
{
    weft_runtime *rt;
    enum { KINDS = 5 };
    reader rd[KINDS + 1];
    pthread_t th[KINDS + 1];
    atomic_int stop = 0;
    weft_metrics m = { .size = sizeof(m) };
    int n = (int)harness_scale(4000), spawned = 0;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    /* the default hook would print a line per lint: count them instead */
    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .hook = count_lint }));
    for (int k = 0; k < KINDS; k++) {
        rd[k] = (reader){ .rt = rt, .stop = &stop, .kind = k };
        START_THREAD(&th[k], reader_main, &rd[k]);
    }
    /* a second io_backend reader: the reactor made on first use by two */
    rd[KINDS] = (reader){ .rt = rt, .stop = &stop, .kind = 2 };
    START_THREAD(&th[KINDS], reader_main, &rd[KINDS]);
    for (int i = 0; i < n; i++) {
        switch (i % 3) {
        case 0:
            ASSERT_OK(weft_spawn_detached(rt, &busy_future, &(busy){ .left = 3 }));
            break;
        case 1:
            ASSERT_OK(weft_spawn_detached(rt, &spinner_future, &(spinner){ .left = 20 }));
            break;
        case 2:
            ASSERT_OK(weft_spawn_detached(rt, &lost_future, &(lost){ 0 }));
            break;
        }
        spawned++;
    }
    /* the lost tasks never end: wait for the others by their count */
    {
        uint64_t end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);

        while (weft_runtime_active_tasks(rt) > (size_t)(n / 3 + 1)) {
            if (harness_now_ns() > end)
                harness_fail(__FILE__, __LINE__, "tasks never finished");
            sleep_ms(1);
        }
    }
    atomic_store(&stop, 1);
    for (int k = 0; k <= KINDS; k++)
        JOIN_THREAD_WITHIN(th[k], WATCHDOG_MS, "reader");
    ASSERT_OK(weft_runtime_set_poll_timing(rt, false));
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(spawned, m.tasks_spawned);
    ASSERT_EQ(spawned, m.tasks_completed);
    ASSERT_EQ(0, m.tasks_live);
    ASSERT(m.tasks_aborted >= (unsigned long long)(n / 3));
    ASSERT(m.blocking_jobs >= (unsigned long long)rd[3].n);
    weft_runtime_free(rt);
}

/* trace.h: "a call made while another of these calls runs on the same
 * runtime waits for it": start, stop, write and stats from four threads at
 * once while workers poll and plain threads wake: exactly one start
 * between two stops succeeds, every answer is one the header lists. */
typedef struct tracer {
    weft_runtime *rt;
    atomic_int *stop, *on;
    long starts, stops, writes;
} tracer;

static void *tracer_main(void *arg)
{
    tracer *t = arg;
    FILE *null = fopen("/dev/null", "w");

    ASSERT(null != NULL);
    while (!atomic_load(t->stop)) {
        weft_trace_stats st;
        int r = weft_trace_start(t->rt, 1 + (size_t)(t->starts % 64));
        long w;

        if (r == 0) {
            t->starts++;
        } else if (r != -EBUSY) {
            harness_fail(__FILE__, __LINE__, "start: %d", r);
        }
        r = weft_trace_get_stats(t->rt, &st);
        ASSERT(r == 0 || r == -ESRCH);
        if (r == 0)
            ASSERT(st.dropped <= st.recorded);
        r = weft_trace_stop(t->rt);
        if (r == 0)
            t->stops++;
        else if (r != -ESRCH)
            harness_fail(__FILE__, __LINE__, "stop: %d", r);
        w = weft_trace_write(t->rt, null);
        if (w >= 0)
            t->writes++;
        else if (w != -EBUSY && w != -ESRCH)
            harness_fail(__FILE__, __LINE__, "write: %ld", w);
    }
    fclose(null);
    return NULL;
}

TEST(trace_calls_from_four_threads_while_the_runtime_works)
{
    weft_runtime *rt;
    tracer tr[4];
    pthread_t th[4];
    atomic_int stop = 0, on = 0;
    long starts = 0, stops = 0;
    int n = (int)harness_scale(3000);

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .mask = WEFT_LINTS_OFF }));
    for (int k = 0; k < 4; k++) {
        tr[k] = (tracer){ .rt = rt, .stop = &stop, .on = &on };
        START_THREAD(&th[k], tracer_main, &tr[k]);
    }
    for (int i = 0; i < n; i++)
        ASSERT_OK(weft_spawn_detached(rt, &busy_future, &(busy){ .left = 5 }));
    ASSERT_OK(weft_runtime_run(rt));
    atomic_store(&stop, 1);
    for (int k = 0; k < 4; k++) {
        JOIN_THREAD_WITHIN(th[k], WATCHDOG_MS, "tracer");
        starts += tr[k].starts;
        stops += tr[k].stops;
    }
    /* one may still record: stop it */
    if (weft_trace_stop(rt) == 0)
        stops++;
    ASSERT_EQ(starts, stops);
    ASSERT_EQ(-ESRCH, weft_trace_stop(rt));
    weft_runtime_free(rt);
}

/* trace.h as now written: a start that fails with -ENOMEM leaves no
 * recording behind (write and stats say -ESRCH), and a later start works. */
TEST(trace_start_failing_with_enomem_leaves_nothing_recorded)
{
    weft_runtime *rt;
    weft_trace_stats st;
    FILE *null = fopen("/dev/null", "w");

    ASSERT(null != NULL);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_trace_start(rt, 8));
    ASSERT_OK(weft_trace_stop(rt));
    ASSERT(weft_trace_write(rt, null) >= 0);
    for (size_t k = 1; k <= 3; k++) {
        int r;

        harness_fail_alloc_at(k);
        r = weft_trace_start(rt, 16 + k);
        harness_fail_alloc_at(0);
        ASSERT_EQ(-ENOMEM, r);
        ASSERT_EQ(-ESRCH, weft_trace_write(rt, null));
        ASSERT_EQ(-ESRCH, weft_trace_get_stats(rt, &st));
        ASSERT_EQ(-ESRCH, weft_trace_stop(rt));
    }
    ASSERT_OK(weft_trace_start(rt, 16));
    ASSERT_OK(weft_trace_stop(rt));
    ASSERT(weft_trace_write(rt, null) >= 0);
    ASSERT_OK(weft_trace_get_stats(rt, &st));
    weft_runtime_free(rt);
    fclose(null);
}
