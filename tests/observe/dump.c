/* SPDX-License-Identifier: MIT */
/* The task dump (weft/observe.h): argument checks; every live task listed
 * once with its type, state, worker, polls and the await it is parked at
 * (outer and inner, and a coroutine's blocking call); completed tasks whose
 * join handle is held; the text form; a dump from inside a task; and dumps
 * (and metrics) taken from another thread while tasks spawn and complete on
 * every worker (run under TSan). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#define NWAIT 8

static atomic_int parked;

/* An async function awaited by `waiter`: parks on a channel receive. */
typedef struct inner_recv {
    weft_async co;
    weft_chan *ch;
    int v, res;
    bool inited;
    weft_chan_recv r;
} inner_recv;

static weft_poll inner_recv_poll(inner_recv *f, weft_context *cx, int *out)
{
    WEFT_BEGIN(&f->co);
    weft_chan_recv_init(&f->r, f->ch, &f->v);
    f->inited = true;
    atomic_fetch_add(&parked, 1);
    WEFT_AWAIT(&f->co, weft_chan_recv_poll(&f->r, cx, &f->res));
    weft_chan_recv_drop(&f->r);
    *out = f->res;
    WEFT_END(&f->co);
}

typedef struct waiter {
    weft_async co;
    weft_chan *ch;
    int res;
    inner_recv in;
} waiter;

static weft_poll waiter_poll(waiter *w, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&w->co);
    w->in = (inner_recv){ .ch = w->ch };
    WEFT_AWAIT(&w->co, inner_recv_poll(&w->in, cx, &w->res));
    WEFT_END(&w->co);
}

static void waiter_drop(waiter *w)
{
    if (w->in.inited)
        weft_chan_recv_drop(&w->in.r);
    weft_chan_drop(w->ch);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(waiter, waiter_poll, waiter_drop);

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

struct seen {
    weft_task_info t[64];
    int n;
};

static int collect(const weft_task_info *ti, void *arg)
{
    struct seen *s = arg;

    if (s->n < 64)
        s->t[s->n] = *ti;
    s->n++;
    return 0;
}

static void wait_parked(int n)
{
    uint64_t end = harness_now_ns() + 20ull * 1000 * 1000 * 1000;

    while (atomic_load(&parked) < n) {
        if (harness_now_ns() > end)
            harness_fail(__FILE__, __LINE__, "watchdog: tasks never parked");
        usleep(200);
    }
}

TEST(dump_rejects_bad_arguments)
{
    weft_runtime *rt;

    ASSERT_EQ(-EINVAL, weft_runtime_tasks(NULL, collect, NULL));
    ASSERT_EQ(-EINVAL, weft_runtime_dump(NULL, stdout));
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_EQ(-EINVAL, weft_runtime_tasks(rt, NULL, NULL));
    ASSERT_EQ(-EINVAL, weft_runtime_dump(rt, NULL));
    ASSERT_EQ(0, weft_runtime_tasks(rt, collect, &(struct seen){ .n = 0 }));
    {
        FILE *ro = fopen("/dev/null", "r");   /* every write fails */

        ASSERT(ro != NULL);
        ASSERT_EQ(-EIO, weft_runtime_dump(rt, ro));
        fclose(ro);
    }
    ASSERT(strcmp(weft_task_state_name(WEFT_TASK_NOTIFIED), "notified") == 0);
    ASSERT(strcmp(weft_task_state_name((weft_task_state)99), "?") == 0);
    weft_runtime_free(rt);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);

    return a >= b && strcmp(s + a - b, suffix) == 0;
}

TEST(dump_lists_parked_tasks_with_sites_and_completed_joined_ones)
{
    static struct seen s;
    weft_runtime *rt;
    weft_chan *ch;
    weft_join *done;
    int out = 0;

    atomic_store(&parked, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    for (int i = 0; i < NWAIT; i++)
        ASSERT_OK(weft_spawn_detached(rt, &waiter_future, &(waiter){ .ch = weft_chan_clone(ch) }));
    ASSERT_OK(weft_spawn(rt, &quick_future, &(quick){ 5 }, &done));
    ASSERT_OK(weft_join_wait(done, &out));
    ASSERT_EQ(5, out);
    wait_parked(NWAIT);
    /* parked counts the inner function's entry: let the receive park */
    usleep(20000);

    s.n = 0;
    ASSERT_OK(weft_runtime_tasks(rt, collect, &s));
    ASSERT_EQ(NWAIT + 1, s.n);
    for (int i = 0; i < s.n; i++) {
        const weft_task_info *t = &s.t[i];

        ASSERT(t->id > 0);
        for (int k = 0; k < i; k++)
            ASSERT_NE(s.t[k].id, t->id);
        ASSERT(t->worker == 0 || t->worker == 1);
        ASSERT(t->polls >= 1);
        ASSERT(t->age_ns >= t->since_poll_ns);
        ASSERT(!t->cancelled);
        if (strcmp(t->type_name, "quick") == 0) {
            ASSERT_EQ(WEFT_TASK_COMPLETED, t->state);
            ASSERT(t->parked_at == NULL);
            continue;
        }
        ASSERT(strcmp(t->type_name, "waiter") == 0);
        ASSERT_EQ(WEFT_TASK_IDLE, t->state);
        ASSERT(t->parked_at != NULL && t->parked_inner != NULL);
        ASSERT(strcmp(t->parked_at->func, "waiter_poll") == 0);
        ASSERT(ends_with(t->parked_at->file, "dump.c"));
        ASSERT(strcmp(t->parked_inner->func, "inner_recv_poll") == 0);
        ASSERT(t->parked_inner->line < t->parked_at->line);  /* defined above it */
    }

    /* the text form: one line per task, the header, the sites */
    {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        ASSERT(f != NULL);
        ASSERT_EQ(NWAIT + 1, weft_runtime_dump(rt, f));
        fclose(f);
        ASSERT(strstr(buf, "weft task dump: 2 workers") != NULL);
        ASSERT(strstr(buf, "at waiter_poll (") != NULL);
        ASSERT(strstr(buf, " < inner_recv_poll (") != NULL);
        ASSERT(strstr(buf, "completed") != NULL);
        free(buf);
    }

    weft_join_drop(done);             /* the completed one goes away */
    weft_chan_close(ch);              /* the waiters finish */
    weft_chan_drop(ch);
    ASSERT_OK(weft_runtime_run(rt));
    s.n = 0;
    ASSERT_OK(weft_runtime_tasks(rt, collect, &s));
    ASSERT_EQ(0, s.n);
    weft_runtime_free(rt);
}

static int stop_at_first(const weft_task_info *ti, void *arg)
{
    (void)ti;
    (*(int *)arg)++;
    return 7;
}

TEST(dump_visit_return_value_stops_the_walk)
{
    weft_runtime *rt;
    weft_chan *ch;
    int calls = 0;

    atomic_store(&parked, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_spawn_detached(rt, &waiter_future, &(waiter){ .ch = weft_chan_clone(ch) }));
    wait_parked(3);
    ASSERT_EQ(7, weft_runtime_tasks(rt, stop_at_first, &calls));
    ASSERT_EQ(1, calls);
    weft_chan_close(ch);
    weft_chan_drop(ch);
    weft_runtime_free(rt);
}

/* ---- from inside a task: it sees itself running ----------------------------------- */
typedef struct self_dumper {
    int dummy;
} self_dumper;

static int find_running(const weft_task_info *ti, void *arg)
{
    if (ti->state == WEFT_TASK_RUNNING && strcmp(ti->type_name, "self_dumper") == 0)
        (*(int *)arg)++;
    return 0;
}

static weft_poll self_dumper_poll(self_dumper *d, weft_context *cx, int *out)
{
    FILE *devnull = fopen("/dev/null", "w");
    int n = 0;

    (void)d;
    (void)cx;
    if (weft_runtime_tasks(weft_runtime_current(), find_running, &n) == 0 && devnull &&
        weft_runtime_dump(weft_runtime_current(), devnull) >= 1)
        *out = n;
    else
        *out = -1;
    if (devnull)
        fclose(devnull);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_STATIC(self_dumper, self_dumper_poll, NULL, int);

TEST(dump_from_inside_a_task_sees_it_running)
{
    weft_runtime *rt;
    int n = 0;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_block_on(rt, &self_dumper_future, &(self_dumper){ 0 }, &n));
    ASSERT_EQ(1, n);
    weft_runtime_free(rt);
    /* and on a current-thread runtime */
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    n = 0;
    ASSERT_OK(weft_block_on(rt, &self_dumper_future, &(self_dumper){ 0 }, &n));
    ASSERT_EQ(1, n);
    weft_runtime_free(rt);
}

/* ---- a coroutine shows the blocking call it is in --------------------------------- */
static int co_recv(void *arg)
{
    int v;

    atomic_fetch_add(&parked, 1);
    return weft_co_chan_recv(arg, &v) == -EPIPE ? 0 : 1;
}

static int find_co(const weft_task_info *ti, void *arg)
{
    const weft_async_site **at = arg;

    if (ti->state == WEFT_TASK_IDLE && ti->parked_at)
        *at = ti->parked_at;
    return 0;
}

TEST(dump_names_a_coroutines_blocking_call)
{
    const weft_async_site *at = NULL;
    weft_runtime *rt;
    weft_chan *ch;
    weft_join *j;
    uint64_t end;

    atomic_store(&parked, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    ASSERT_OK(weft_go(rt, co_recv, ch, &j));
    wait_parked(1);
    end = harness_now_ns() + 20ull * 1000 * 1000 * 1000;
    while (at == NULL) {             /* until its receive has parked */
        ASSERT(harness_now_ns() < end);
        usleep(1000);
        ASSERT_OK(weft_runtime_tasks(rt, find_co, &at));
    }
    ASSERT(strcmp(at->func, "weft_co_chan_recv") == 0);
    ASSERT(at->file == NULL);
    weft_chan_close(ch);
    ASSERT_OK(weft_join_wait(j, NULL));
    weft_join_drop(j);
    weft_chan_drop(ch);
    weft_runtime_free(rt);
}

/* ---- dumps while tasks spawn and complete on every worker ------------------------- */
typedef struct spawner {
    weft_async co;
    unsigned left;
    weft_yield y;
} spawner;

static weft_poll spawner_poll(spawner *s, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&s->co);
    while (s->left > 0) {
        s->left--;
        weft_spawn_detached(weft_runtime_current(), &quick_future, &(quick){ 1 });
        if (s->left % 4 == 0) {
            weft_yield_init(&s->y);
            WEFT_AWAIT(&s->co, weft_yield_poll(&s->y, cx));
        }
    }
    WEFT_END(&s->co);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(spawner, spawner_poll, NULL);

struct churn_check {
    unsigned long long max_id;
    int n;
};

static int churn_visit(const weft_task_info *ti, void *arg)
{
    struct churn_check *c = arg;

    if (ti->id == 0 || ti->type_name == NULL || ti->polls > 1000000 ||
        (unsigned)ti->state > WEFT_TASK_COMPLETED)
        return -1;
    if (ti->id > c->max_id)
        c->max_id = ti->id;
    c->n++;
    return 0;
}

TEST(dump_while_tasks_spawn_and_complete_on_all_workers)
{
    weft_runtime *rt;
    FILE *devnull = fopen("/dev/null", "w");
    unsigned spawners = 16, per = (unsigned)harness_scale(4000);
    int dumps = 0;

    ASSERT(devnull != NULL);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 4 }));
    for (unsigned i = 0; i < spawners; i++)
        ASSERT_OK(weft_spawn_detached(rt, &spawner_future, &(spawner){ .left = per }));
    while (weft_runtime_active_tasks(rt) > 0 || dumps < 3) {
        struct churn_check c = { 0, 0 };
        weft_metrics m = { .size = sizeof(m) };

        ASSERT_OK(weft_runtime_tasks(rt, churn_visit, &c));
        ASSERT(weft_runtime_dump(rt, devnull) >= 0);
        ASSERT_OK(weft_runtime_metrics(rt, &m));
        ASSERT(m.tasks_completed <= m.tasks_spawned);
        dumps++;
        if (dumps > 100000)
            break;
    }
    ASSERT_OK(weft_runtime_run(rt));
    fclose(devnull);
    weft_runtime_free(rt);
}

/* A dump racing the runtime's shutdown (not its free): every task is
 * cancelled meanwhile; nothing crashes, the cancelled ones show as such. */
TEST(dump_during_shutdown_of_the_tasks)
{
    weft_runtime *rt;
    weft_chan *ch;
    struct seen *s = calloc(1, sizeof(*s));

    ASSERT(s != NULL);
    atomic_store(&parked, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    for (int i = 0; i < NWAIT; i++)
        ASSERT_OK(weft_spawn_detached(rt, &waiter_future, &(waiter){ .ch = weft_chan_clone(ch) }));
    wait_parked(NWAIT);
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_OK(weft_runtime_tasks(rt, collect, s));
    ASSERT_EQ(0, s->n);               /* cancelled and freed */
    weft_chan_drop(ch);
    weft_runtime_free(rt);
    free(s);
}
