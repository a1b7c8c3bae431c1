/* SPDX-License-Identifier: MIT */
/* Lints (weft/observe.h), each triggered by a planted bug and silent on
 * the correct version of the same task: a poll that blocks, a task that
 * parks without keeping its waker anywhere, a task that wakes itself on
 * every poll (and not one that yields with weft_yield). Once per task and
 * kind; the mask turns them off; the default hook prints to stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static int seen[5];
static char seen_type[5][32];
static unsigned long long seen_value[5];
static int seen_worker[5];
static atomic_int stall_running;      /* the stalling poll still ran at the report */
static atomic_int seen_running;

static void record(const weft_lint *l, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&seen_lock);
    if (l->kind >= 1 && l->kind <= 4) {
        seen[l->kind]++;
        snprintf(seen_type[l->kind], sizeof(seen_type[0]), "%s", l->type_name);
        seen_value[l->kind] = l->value;
        seen_worker[l->kind] = l->worker;
        if (l->kind == WEFT_LINT_STALL)
            atomic_store(&seen_running, atomic_load(&stall_running));
    }
    pthread_mutex_unlock(&seen_lock);
}

static int seen_count(int kind)
{
    int n;

    pthread_mutex_lock(&seen_lock);
    n = seen[kind];
    pthread_mutex_unlock(&seen_lock);
    return n;
}

static weft_runtime *lint_runtime(unsigned mask, unsigned long long long_ns)
{
    weft_runtime *rt;

    memset(seen, 0, sizeof(seen));
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){
                                             .mask = mask, .long_poll_ns = long_ns,
                                             .hook = record }));
    ASSERT_OK(weft_runtime_set_poll_timing(rt, true));   /* the long-poll lint's clock */
    return rt;
}

/* ---- a blocking call inside a poll ------------------------------------------------ */
typedef struct blocker {
    unsigned polls, max;
    unsigned sleep_ms;
} blocker;

static weft_poll blocker_poll(blocker *b, weft_context *cx, void *out)
{
    (void)out;
    usleep(b->sleep_ms * 1000);       /* the bug: a blocking call in a task */
    /* until reported (a poll preempted on a loaded machine is not) */
    if (++b->polls < b->max && seen_count(WEFT_LINT_LONG_POLL) == 0) {
        weft_waker_wake_by_ref(weft_context_waker(cx));
        return WEFT_PENDING;
    }
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID_STATIC(blocker, blocker_poll, NULL);

TEST(lint_long_poll_reports_a_blocking_poll_once)
{
    weft_runtime *rt = lint_runtime(1u << WEFT_LINT_LONG_POLL, 5u * 1000 * 1000);
    weft_metrics m = { .size = sizeof(m) };

    ASSERT_OK(weft_spawn_detached(rt, &blocker_future, &(blocker){ .max = 200, .sleep_ms = 20 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(1, seen_count(WEFT_LINT_LONG_POLL));
    ASSERT(strcmp(seen_type[WEFT_LINT_LONG_POLL], "blocker") == 0);
    ASSERT(seen_value[WEFT_LINT_LONG_POLL] >= 5u * 1000 * 1000);
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(1, m.lints);
    weft_runtime_free(rt);
}

TEST(lint_long_poll_silent_below_the_threshold)
{
    weft_runtime *rt = lint_runtime(1u << WEFT_LINT_LONG_POLL, 2000ull * 1000 * 1000);

    ASSERT_OK(weft_spawn_detached(rt, &blocker_future, &(blocker){ .max = 3, .sleep_ms = 1 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, seen_count(WEFT_LINT_LONG_POLL));
    weft_runtime_free(rt);
}

/* ---- lost waker ----------------------------------------------------------------------- */
static atomic_int polled;

typedef struct loser {
    bool keep;                        /* the correct version keeps its waker */
    weft_waker w;
} loser;

static weft_poll loser_poll(loser *l, weft_context *cx, void *out)
{
    (void)out;
    if (l->keep && l->w.vtable == NULL)
        l->w = weft_waker_clone(weft_context_waker(cx));
    atomic_fetch_add(&polled, 1);
    return WEFT_PENDING;              /* the bug (without keep): nobody can wake it */
}

static void loser_drop(loser *l)
{
    weft_waker_drop(&l->w);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(loser, loser_poll, loser_drop);

static void wait_polled(int n)
{
    uint64_t end = harness_now_ns() + 20ull * 1000 * 1000 * 1000;

    while (atomic_load(&polled) < n) {
        ASSERT(harness_now_ns() < end);
        usleep(200);
    }
}

TEST(lint_lost_waker_reported_and_silent_when_kept)
{
    weft_runtime *rt = lint_runtime(1u << WEFT_LINT_LOST_WAKER, 0);
    weft_join *bad, *good;
    uint64_t end;

    atomic_store(&polled, 0);
    ASSERT_OK(weft_spawn(rt, &loser_future, &(loser){ .keep = true }, &good));
    ASSERT_OK(weft_spawn(rt, &loser_future, &(loser){ .keep = false }, &bad));
    wait_polled(2);
    end = harness_now_ns() + 20ull * 1000 * 1000 * 1000;
    while (seen_count(WEFT_LINT_LOST_WAKER) == 0) {
        ASSERT(harness_now_ns() < end);
        usleep(200);
    }
    usleep(20000);
    ASSERT_EQ(1, seen_count(WEFT_LINT_LOST_WAKER));
    ASSERT(strcmp(seen_type[WEFT_LINT_LOST_WAKER], "loser") == 0);
    /* the lost one can still be aborted; the kept one too */
    weft_join_abort(bad);
    weft_join_abort(good);
    ASSERT_EQ(-ECANCELED, weft_join_wait(bad, NULL));
    ASSERT_EQ(-ECANCELED, weft_join_wait(good, NULL));
    weft_join_drop(bad);
    weft_join_drop(good);
    ASSERT_EQ(1, seen_count(WEFT_LINT_LOST_WAKER));
    weft_runtime_free(rt);
}

TEST(lint_lost_waker_detached_task)
{
    weft_runtime *rt = lint_runtime(1u << WEFT_LINT_LOST_WAKER, 0);
    uint64_t end = harness_now_ns() + 20ull * 1000 * 1000 * 1000;

    atomic_store(&polled, 0);
    ASSERT_OK(weft_spawn_detached(rt, &loser_future, &(loser){ .keep = false }));
    while (seen_count(WEFT_LINT_LOST_WAKER) == 0) {
        ASSERT(harness_now_ns() < end);
        usleep(200);
    }
    weft_runtime_free(rt);            /* shutdown cancels it */
    ASSERT_EQ(1, seen_count(WEFT_LINT_LOST_WAKER));
}

/* ---- busy loop ------------------------------------------------------------------------ */
typedef struct spinner {
    weft_async co;
    unsigned left;
    bool use_yield;                   /* the correct version yields */
    weft_yield y;
} spinner;

static weft_poll spinner_poll(spinner *s, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&s->co);
    while (s->left-- > 0) {
        if (s->use_yield) {
            weft_yield_init(&s->y);
            WEFT_AWAIT(&s->co, weft_yield_poll(&s->y, cx));
        } else {
            /* the bug: poll again at once, for ever, waiting for nothing */
            weft_waker_wake_by_ref(weft_context_waker(cx));
            return WEFT_PENDING;
        }
    }
    WEFT_END(&s->co);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(spinner, spinner_poll, NULL);

TEST(lint_busy_loop_reported_once_and_not_for_yield)
{
    weft_runtime *rt = lint_runtime(1u << WEFT_LINT_BUSY_LOOP, 0);

    ASSERT_OK(weft_spawn_detached(rt, &spinner_future, &(spinner){ .left = 500, .use_yield = true }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, seen_count(WEFT_LINT_BUSY_LOOP));
    ASSERT_OK(weft_spawn_detached(rt, &spinner_future, &(spinner){ .left = 500 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(1, seen_count(WEFT_LINT_BUSY_LOOP));
    ASSERT(strcmp(seen_type[WEFT_LINT_BUSY_LOOP], "spinner") == 0);
    weft_runtime_free(rt);
}

/* ---- switches --------------------------------------------------------------------------- */
TEST(lint_mask_off_reports_nothing)
{
    weft_runtime *rt = lint_runtime(WEFT_LINTS_OFF, 1);
    weft_metrics m = { .size = sizeof(m) };

    atomic_store(&polled, 0);
    ASSERT_OK(weft_spawn_detached(rt, &spinner_future, &(spinner){ .left = 300 }));
    ASSERT_OK(weft_spawn_detached(rt, &blocker_future, &(blocker){ .max = 2, .sleep_ms = 2 }));
    ASSERT_OK(weft_spawn_detached(rt, &loser_future, &(loser){ .keep = false }));
    wait_polled(1);
    usleep(20000);
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    weft_runtime_free(rt);
    ASSERT_EQ(0, seen[1] + seen[2] + seen[3]);
    ASSERT_EQ(0, m.lints);
}

TEST(lint_set_rejects_null_and_restores_defaults)
{
    weft_runtime *rt;

    ASSERT_EQ(-EINVAL, weft_runtime_set_lints(NULL, NULL));
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .mask = WEFT_LINTS_OFF }));
    ASSERT_OK(weft_runtime_set_lints(rt, NULL));
    ASSERT(strcmp(weft_lint_name(WEFT_LINT_BUSY_LOOP), "busy-loop") == 0);
    ASSERT(strcmp(weft_lint_name((weft_lint_kind)0), "?") == 0);
    weft_runtime_free(rt);
}

/* The default hook: one line on stderr. */
TEST(lint_default_hook_prints_to_stderr)
{
    weft_runtime *rt;
    char path[] = "/tmp/weft-lint-XXXXXX", buf[4096];
    int fd = mkstemp(path), saved = dup(2);
    uint64_t end;
    ssize_t n = 0;

    ASSERT(fd >= 0 && saved >= 0);
    unlink(path);
    fflush(stderr);
    ASSERT(dup2(fd, 2) == 2);
    atomic_store(&polled, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_spawn_detached(rt, &loser_future, &(loser){ .keep = false }));
    end = harness_now_ns() + 20ull * 1000 * 1000 * 1000;
    for (;;) {
        weft_metrics m = { .size = sizeof(m) };

        ASSERT_OK(weft_runtime_metrics(rt, &m));
        if (m.lints > 0)
            break;
        ASSERT(harness_now_ns() < end);
        usleep(500);
    }
    weft_runtime_free(rt);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    ASSERT(n > 0);
    buf[n] = '\0';
    ASSERT(strstr(buf, "weft lint: lost-waker: task ") != NULL);
    ASSERT(strstr(buf, "(loser)") != NULL);
}

/* Without poll timing there is no clock to see a long poll with. */
TEST(lint_long_poll_needs_poll_timing)
{
    weft_runtime *rt = lint_runtime(1u << WEFT_LINT_LONG_POLL, 1000);

    ASSERT_OK(weft_runtime_set_poll_timing(rt, false));
    ASSERT_OK(weft_spawn_detached(rt, &blocker_future, &(blocker){ .max = 3, .sleep_ms = 5 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, seen_count(WEFT_LINT_LONG_POLL));
    weft_runtime_free(rt);
}

/* ---- a stall: one poll that does not return, seen while it runs ------------------------ */
typedef struct staller {
    unsigned ms;
    bool spin;                        /* burn the CPU instead of sleeping */
    atomic_int *worker;
    uint64_t *ended_ns;
} staller;

static weft_poll staller_poll(staller *s, weft_context *cx, void *out)
{
    uint64_t end = harness_now_ns() + (uint64_t)s->ms * 1000000u;

    (void)cx;
    (void)out;
    atomic_store(s->worker, weft_worker_index());
    atomic_store(&stall_running, 1);
    if (s->spin) {
        while (harness_now_ns() < end)
            ;                         /* the bug: a loop that never yields */
    } else {
        while (harness_now_ns() < end)
            usleep(10000);            /* the bug: a blocking call in a task */
    }
    atomic_store(&stall_running, 0);
    if (s->ended_ns)
        *s->ended_ns = harness_now_ns();
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID_STATIC(staller, staller_poll, NULL);

static void stall_case(bool spin)
{
    weft_runtime *rt;
    atomic_int worker = -1;
    weft_join *j;

    memset(seen, 0, sizeof(seen));
    atomic_store(&seen_running, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    /* no poll timing: the stall lint needs none */
    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){
                                             .mask = 1u << WEFT_LINT_STALL,
                                             .long_poll_ns = 50u * 1000 * 1000,
                                             .hook = record }));
    ASSERT_OK(weft_spawn(rt, &staller_future,
                         &(staller){ .ms = 600, .spin = spin, .worker = &worker }, &j));
    ASSERT_OK(weft_join_wait(j, NULL));
    weft_join_drop(j);
    ASSERT_EQ(1, seen_count(WEFT_LINT_STALL));
    ASSERT(strcmp(seen_type[WEFT_LINT_STALL], "staller") == 0);
    ASSERT(seen_value[WEFT_LINT_STALL] >= 50u * 1000 * 1000);
    ASSERT_EQ(atomic_load(&worker), seen_worker[WEFT_LINT_STALL]);
    ASSERT_EQ(1, atomic_load(&seen_running));   /* reported while it ran */
    weft_runtime_free(rt);
}

TEST(lint_stall_reported_while_a_blocking_poll_runs)
{
    stall_case(false);
}

TEST(lint_stall_reported_while_a_cpu_hog_runs)
{
    stall_case(true);
}

/* The same stuck worker, while another task sleeps 10 x 10 ms: the timers
 * keep firing (the watching worker drives them) and the sleeper is done
 * long before the stuck poll returns. */
typedef struct napper {
    weft_async co;
    weft_sleep s;
    int i;
    uint64_t *done_ns;
} napper;

static weft_poll napper_poll(napper *n, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&n->co);
    for (n->i = 0; n->i < 10; n->i++) {
        weft_sleep_init(&n->s, 10);
        WEFT_AWAIT(&n->co, weft_sleep_poll(&n->s, cx));
    }
    *n->done_ns = harness_now_ns();
    WEFT_END(&n->co);
}

static void napper_drop(napper *n)
{
    weft_sleep_drop(&n->s);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(napper, napper_poll, napper_drop);

TEST(lint_stall_timers_keep_firing_beside_it)
{
    weft_runtime *rt;
    atomic_int worker = -1;
    uint64_t stall_end = 0, nap_done = 0;
    weft_join *js, *jn;

    memset(seen, 0, sizeof(seen));
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){
                                             .mask = 1u << WEFT_LINT_STALL, .hook = record }));
    ASSERT_OK(weft_spawn(rt, &staller_future,
                         &(staller){ .ms = 1500, .worker = &worker, .ended_ns = &stall_end },
                         &js));
    while (atomic_load(&worker) < 0)
        usleep(1000);
    ASSERT_OK(weft_spawn(rt, &napper_future, &(napper){ .done_ns = &nap_done }, &jn));
    ASSERT_OK(weft_join_wait(jn, NULL));
    ASSERT_OK(weft_join_wait(js, NULL));
    weft_join_drop(jn);
    weft_join_drop(js);
    ASSERT(nap_done != 0 && stall_end != 0);
    ASSERT(nap_done < stall_end);     /* the sleeps did not wait for the stall */
    ASSERT_EQ(1, seen_count(WEFT_LINT_STALL));
    weft_runtime_free(rt);
}

/* Many short polls (a task that yields for 300 ms) are no stall. */
typedef struct yielder {
    weft_async co;
    weft_yield y;
    uint64_t end;
} yielder;

static weft_poll yielder_poll(yielder *y, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&y->co);
    y->end = harness_now_ns() + 300u * 1000 * 1000;
    while (harness_now_ns() < y->end)
        WEFT_YIELD(&y->co, &y->y, cx);
    WEFT_END(&y->co);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(yielder, yielder_poll, NULL);

TEST(lint_stall_silent_for_short_polls)
{
    weft_runtime *rt;
    weft_join *j;

    memset(seen, 0, sizeof(seen));
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){
                                             .mask = 1u << WEFT_LINT_STALL, .hook = record }));
    ASSERT_OK(weft_spawn(rt, &yielder_future, &(yielder){ 0 }, &j));
    ASSERT_OK(weft_join_wait(j, NULL));
    weft_join_drop(j);
    ASSERT_EQ(0, seen_count(WEFT_LINT_STALL));
    weft_runtime_free(rt);
}
