/* SPDX-License-Identifier: MIT */
/* Audit 9 of weft/group.h and weft/task.h.
 *
 * 1. The cooperative budget (weft/core.h; lock.h's rule "Futures that can
 *    complete many times in a row call weft_coop_proceed() first"): a
 *    cancel wait on a cancelled token, a group wait on a group with no live
 *    child, a blocking join of a finished job and a sleep that is due each
 *    complete at their first poll, and did so
 *    without spending the budget: a task awaiting fresh ones in a loop held
 *    its worker for as long as it looped. Each loop below spawns, from its
 *    own worker before it starts, the task that stops it; on one worker
 *    that task runs only if the loop's awaits go to the back of the queue.
 * 2. weft_group_spawn() refused (-EINVAL) a future that weft_spawn() takes:
 *    a child's wrapper (header + future + output) above 1 GiB. */
#define _GNU_SOURCE
#include "../sync/sync_test.h"
#include <string.h>
#include <sys/mman.h>

#include "badcx.h"
#include "setflag.h"
#include "weft/group.h"

enum { L_CANCEL, L_GROUP, L_BJOIN, L_SLEEP, L_DRAIN };

/* Awaits a fresh future of kind `kind` (each one ready at once) until the
 * flag is set, at most a million times. Output: the rounds looped (the
 * flag was set), -1 (never set: the loop held the worker), -2 (a wait
 * failed), -3 (the setter could not be spawned). */
typedef struct spinner {
    weft_async co;
    int kind;
    weft_runtime *rt;
    weft_join **setter;
    atomic_int *flag;
    weft_cancel *tok;
    weft_group *g;
    weft_blocking_job *job;
    unsigned i;
    int res;
    bool live, spawned;
    union {
        weft_cancel_wait cw;
        weft_group_wait gw;
        weft_blocking_join bj;
        weft_sleep sl;
        weft_group_drain dr;
    } u;
} spinner;

static weft_poll spinner_step(spinner *s, weft_context *cx)
{
    switch (s->kind) {
    case L_CANCEL:
        return weft_cancel_wait_poll(&s->u.cw, cx, &s->res);
    case L_GROUP:
        return weft_group_wait_poll(&s->u.gw, cx, &s->res);
    case L_BJOIN:
        return weft_blocking_join_poll(&s->u.bj, cx, &s->res);
    case L_DRAIN:
        return weft_group_drain_poll(&s->u.dr, cx, &s->res);
    default:
        s->res = 0;
        return weft_sleep_poll(&s->u.sl, cx);
    }
}

static void spinner_drop_one(spinner *s)
{
    if (!s->live)
        return;
    s->live = false;
    switch (s->kind) {
    case L_CANCEL:
        weft_cancel_wait_drop(&s->u.cw);
        break;
    case L_GROUP:
        weft_group_wait_drop(&s->u.gw);
        break;
    case L_BJOIN:
        weft_blocking_join_drop(&s->u.bj);
        break;
    case L_SLEEP:
        weft_sleep_drop(&s->u.sl);
        break;
    case L_DRAIN:
        weft_group_drain_drop(&s->u.dr);
        break;
    default:
        break;
    }
}

static weft_poll spinner_poll(spinner *s, weft_context *cx, void *out)
{
    WEFT_BEGIN(&s->co);
    s->spawned = weft_spawn(s->rt, &setflag_future, &(setflag){ .flag = s->flag },
                            s->setter) == 0;
    for (s->i = 0; s->spawned && s->i < 1000000u && !atomic_load(s->flag); s->i++) {
        switch (s->kind) {
        case L_CANCEL:
            weft_cancel_wait_init(&s->u.cw, s->tok);
            break;
        case L_GROUP:
            weft_group_wait_init(&s->u.gw, s->g);
            break;
        case L_BJOIN:
            weft_blocking_join_init(&s->u.bj, s->job, NULL);
            break;
        case L_SLEEP:
            weft_sleep_init(&s->u.sl, 0);
            break;
        case L_DRAIN:
            weft_group_drain_init(&s->u.dr, s->g, 0);
            break;
        default:
            break;
        }
        s->live = true;
        WEFT_AWAIT(&s->co, spinner_step(s, cx));
        spinner_drop_one(s);
        if (s->res != 0)
            break;
    }
    *(int *)out = !s->spawned ? -3 : s->res != 0 ? -2 : atomic_load(s->flag) ? (int)s->i : -1;
    WEFT_END(&s->co);
}

static void spinner_drop(spinner *s)
{
    spinner_drop_one(s);
}

WEFT_DEFINE_FUTURE_STATIC(spinner, spinner_poll, spinner_drop, int);

static void *job_fn(void *arg)
{
    return arg;
}

/* One worker: the loop lets the setter run only if its awaits spend the
 * budget. Without it the loop ran all its million rounds first. */
static void loop_yields(int kind)
{
    weft_runtime *rt = st_runtime(1);
    atomic_int flag = 0;
    weft_join *jl, *js = NULL;
    weft_cancel *tok = NULL;
    weft_group *g = NULL;
    weft_blocking_pool *pool;
    weft_blocking_job *job = NULL;
    int rounds = -9;

    switch (kind) {
    case L_CANCEL:
        ASSERT_OK(weft_cancel_new(&tok));
        weft_cancel_cancel(tok);
        break;
    case L_GROUP:
    case L_DRAIN:
        ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
        break;
    case L_BJOIN:
        ASSERT_OK(weft_blocking_default(rt, &pool));
        ASSERT_OK(weft_blocking_spawn(pool, job_fn, NULL, &job));
        ASSERT_OK(weft_blocking_job_wait(job, NULL));
        break;
    default:
        break;
    }
    ASSERT_OK(weft_spawn(rt, &spinner_future,
                         &(spinner){ .kind = kind, .rt = rt, .setter = &js, .flag = &flag,
                                     .tok = tok, .g = g, .job = job },
                         &jl));
    ASSERT_OK(weft_join_wait(jl, &rounds));
    ASSERT(js != NULL);
    ASSERT_OK(weft_join_wait(js, NULL));
    /* the setter ran while the loop still looped: about a budget's worth
     * of rounds (128), far from the million */
    if (rounds < 0 || rounds > 100000)
        harness_fail(__FILE__, __LINE__, "kind %d: the loop ran %d rounds", kind, rounds);
    weft_join_drop(jl);
    weft_join_drop(js);
    if (job)
        weft_blocking_job_drop(job);
    if (g)
        ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
    if (tok)
        weft_cancel_drop(tok);
}

TEST(cancel_waits_on_a_cancelled_token_spend_the_budget)
{
    loop_yields(L_CANCEL);
}

TEST(group_waits_on_an_empty_group_spend_the_budget)
{
    loop_yields(L_GROUP);
}

TEST(group_drains_of_an_empty_group_spend_the_budget)
{
    loop_yields(L_DRAIN);
}

TEST(blocking_joins_of_a_finished_job_spend_the_budget)
{
    loop_yields(L_BJOIN);
}

TEST(sleeps_of_zero_ms_spend_the_budget)
{
    loop_yields(L_SLEEP);
}

/* A drain of an empty group with a deadline already due, in a task whose
 * budget is spent (or refused by WEFT_STRESS) at its poll: the group wait
 * refused unseen must not read as "children left at the deadline", which
 * would cancel the group and answer -ETIMEDOUT. */
typedef struct drainer {
    weft_group *g;
    int res;
    weft_group_drain d;
    bool init;
} drainer;

static weft_poll drainer_poll(drainer *f, weft_context *cx, void *out)
{
    if (!f->init) {
        f->init = true;
        /* spend the whole budget first */
        while (weft_coop_proceed(cx))
            ;
        weft_group_drain_init(&f->d, f->g, 0);
    }
    if (weft_group_drain_poll(&f->d, cx, &f->res) == WEFT_PENDING)
        return WEFT_PENDING;
    weft_group_drain_drop(&f->d);
    *(int *)out = f->res;
    return WEFT_READY;
}

static void drainer_drop(drainer *f)
{
    if (f->init)
        weft_group_drain_drop(&f->d);
}

WEFT_DEFINE_FUTURE_STATIC(drainer, drainer_poll, drainer_drop, int);

TEST(a_drain_on_a_spent_budget_does_not_cancel_an_empty_group)
{
    weft_runtime *rt = st_runtime(1);
    weft_group *g;
    int res = 1;

    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_block_on(rt, &drainer_future, &(drainer){ .g = g }, &res));
    ASSERT_EQ(0, res);
    ASSERT(!weft_group_is_cancelled(g));
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
}

/* ---- 2: size limits ----------------------------------------------------------- */
typedef struct bigf {
    int unused;
} bigf;

static weft_poll bigf_poll(void *self, weft_context *cx, void *out)
{
    (void)self;
    (void)cx;
    (void)out;
    return WEFT_READY;
}

/* Refuses every allocation above 64 MiB (so a huge task fails with -ENOMEM
 * after its checks passed, touching nothing), passes the rest to libc. */
static void *small_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return size > ((size_t)64 << 20) ? NULL : malloc(size);
}

static void small_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

/* The types tried (static: a task borrows its descriptor for its life). */
#define BIGF(size, osize) { bigf_poll, NULL, (size), 8, (osize), 8, "bigf" }
static const weft_future_type bigf_types[] = {
    BIGF(WEFT_FUTURE_MAX_SIZE, 0),                      /* -ENOMEM from both */
    BIGF(WEFT_FUTURE_MAX_SIZE, WEFT_FUTURE_MAX_SIZE),
    BIGF(WEFT_FUTURE_MAX_SIZE - 100, 200),
    BIGF(1, WEFT_FUTURE_MAX_SIZE),
    BIGF(WEFT_FUTURE_MAX_SIZE + 1, 0),                  /* -EINVAL from both */
    BIGF(8, WEFT_FUTURE_MAX_SIZE + 1),
    BIGF(64, 8),                                        /* 0 from both */
};

/* spawn's answer for a type, and the group's: the same, always. */
static void same_answer(weft_runtime *rt, weft_group *g, const void *init,
                        const weft_future_type *ty)
{
    weft_join *j = NULL;
    int a = weft_spawn(rt, ty, init, &j);
    int b = weft_group_spawn(g, ty, init);

    if (a == 0)
        weft_join_drop(j);
    if (a != b)
        harness_fail(__FILE__, __LINE__, "size %zu, output %zu: spawn %d, group spawn %d",
                     ty->size, ty->output_size, a, b);
}

TEST(group_spawn_takes_every_future_size_that_spawn_takes)
{
    const size_t max = WEFT_FUTURE_MAX_SIZE;
    weft_runtime *rt;
    weft_group *g;
    void *init;

    /* readable, never written: nothing is committed */
    init = mmap(NULL, max + 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ASSERT(init != MAP_FAILED);
    weft_set_allocator(&(weft_allocator){ small_malloc, small_free, NULL });
    rt = st_runtime(1);
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    for (size_t i = 0; i < sizeof(bigf_types) / sizeof(bigf_types[0]); i++)
        same_answer(rt, g, init, &bigf_types[i]);
    ASSERT_OK(weft_group_join(g));
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
    weft_set_allocator(NULL);
    munmap(init, max + 4096);
}
