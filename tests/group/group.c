/* SPDX-License-Identifier: MIT */
/* Task groups: wait for all; 10,000 children cancelled mid-flight (each
 * drop exactly once, free returns after all); a failure cancels siblings
 * under CANCEL_ON_FAILURE and not under WAIT_ALL; spawning into a cancelled
 * group; free from a worker; runtime shutdown under a group; large and
 * over-aligned children; misuse; allocation faults. */
#include "../sync/sync_test.h"
#include <string.h>

#include "weft/group.h"

static atomic_int kid_completed;

enum { K_RUN = 0, K_WAIT = 1 };

/* A child: yields `yields` times, then (K_WAIT) waits for `tok` to be
 * cancelled, then completes with `code`. Its drop counts in drops[idx]. */
typedef struct kid {
    weft_async co;
    int mode;
    int code;
    unsigned yields, i;
    weft_cancel *tok;
    atomic_int *drops;
    unsigned idx;
    int res;
    weft_yield y;
    weft_cancel_wait w;
} kid;

static weft_poll kid_poll(kid *k, weft_context *cx, void *out)
{
    WEFT_BEGIN(&k->co);
    for (k->i = 0; k->i < k->yields; k->i++)
        WEFT_YIELD(&k->co, &k->y, cx);
    if (k->mode == K_WAIT) {
        weft_cancel_wait_init(&k->w, k->tok);
        WEFT_AWAIT(&k->co, weft_cancel_wait_poll(&k->w, cx, &k->res));
        weft_cancel_wait_drop(&k->w);
    }
    atomic_fetch_add(&kid_completed, 1);
    *(int *)out = k->code;
    WEFT_END(&k->co);
}

static void kid_drop(kid *k)
{
    weft_cancel_wait_drop(&k->w);
    if (k->drops)
        atomic_fetch_add(&k->drops[k->idx], 1);
}

WEFT_DEFINE_FUTURE(kid, kid_poll, kid_drop, int);

/* Await a group from a plain thread (weft_block_on of this). */
typedef struct gwaiter {
    weft_async co;
    weft_group *g;
    int res;
    weft_group_wait w;
} gwaiter;

static weft_poll gwaiter_poll(gwaiter *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    weft_group_wait_init(&f->w, f->g);
    WEFT_AWAIT(&f->co, weft_group_wait_poll(&f->w, cx, &f->res));
    weft_group_wait_drop(&f->w);
    *(int *)out = f->res;
    WEFT_END(&f->co);
}

static void gwaiter_drop(gwaiter *f)
{
    weft_group_wait_drop(&f->w);
}

WEFT_DEFINE_FUTURE(gwaiter, gwaiter_poll, gwaiter_drop, int);

static int group_wait_blocking(weft_runtime *rt, weft_group *g)
{
    int out = 1;
    int err = weft_block_on(rt, &gwaiter_future, &(gwaiter){ .g = g }, &out);

    if (err != 0)
        harness_fail(__FILE__, __LINE__, "block_on: %s", weft_strerror(err));
    return out;
}

static atomic_int *drops_new(size_t n)
{
    atomic_int *d = calloc(n, sizeof(*d));

    ASSERT(d != NULL);
    return d;
}

TEST(group_wait_all_ok)
{
    weft_runtime *rt = st_runtime(2);
    enum { N = 100 };
    atomic_int *drops = drops_new(N);
    weft_group *g;

    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_EQ(0, group_wait_blocking(rt, g));        /* empty: at once */
    for (unsigned i = 0; i < N; i++)
        ASSERT_OK(weft_group_spawn(g, &kid_future,
                                   &(kid){ .code = (int)i, .yields = i % 3, .drops = drops,
                                           .idx = i }));
    ASSERT_EQ(0, group_wait_blocking(rt, g));
    ASSERT_EQ(0, weft_group_live(g));
    ASSERT_EQ(N, atomic_load(&kid_completed));
    for (unsigned i = 0; i < N; i++)
        ASSERT_EQ(1, atomic_load(&drops[i]));
    ASSERT(!weft_group_is_cancelled(g));
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
    free(drops);
}

/* 10,000 children, a third parked, a third yielding forever, a third
 * finishing soon; cancel mid-flight; free returns after every drop. */
TEST(group_cancel_10000_mid_flight)
{
    weft_runtime *rt = st_runtime(2);
    size_t n = harness_scale(10000);
    atomic_int *drops = drops_new(n);
    weft_cancel *tok;
    weft_group *g;

    ASSERT_OK(weft_cancel_new(&tok));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    for (size_t i = 0; i < n; i++) {
        kid k = { .drops = drops, .idx = (unsigned)i, .tok = tok };

        switch (i % 3) {
        case 0: k.mode = K_WAIT; break;
        case 1: k.yields = UINT32_MAX; break;
        default: k.yields = 2; break;
        }
        ASSERT_OK(weft_group_spawn(g, &kid_future, &k));
        if (i == n / 2)
            ST_WAIT_UNTIL(atomic_load(&kid_completed) > 0);   /* mid-flight */
    }
    ASSERT(weft_group_live(g) > 0);
    weft_group_cancel(g);
    ASSERT(weft_group_is_cancelled(g));
    ASSERT_EQ(-ECANCELED, weft_group_spawn(g, &kid_future, &(kid){ 0 }));
    ASSERT_OK(weft_group_free(g));
    for (size_t i = 0; i < n; i++)
        if (atomic_load(&drops[i]) != 1)
            harness_fail(__FILE__, __LINE__, "child %zu dropped %d times", i,
                         atomic_load(&drops[i]));
    ASSERT_LE((int)(n / 3 + 1), atomic_load(&kid_completed));
    weft_runtime_free(rt);
    weft_cancel_drop(tok);
    free(drops);
}

/* weft_group_free() alone cancels what is left and waits. */
TEST(group_free_cancels_and_waits)
{
    weft_runtime *rt = st_runtime(2);
    size_t n = harness_scale(2000);
    atomic_int *drops = drops_new(n);
    weft_cancel *tok;
    weft_group *g;

    ASSERT_OK(weft_cancel_new(&tok));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_CANCEL_ON_FAILURE));
    for (size_t i = 0; i < n; i++)
        ASSERT_OK(weft_group_spawn(g, &kid_future,
                                   &(kid){ .mode = K_WAIT, .tok = tok, .drops = drops,
                                           .idx = (unsigned)i, .yields = (unsigned)(i % 2) }));
    ASSERT_OK(weft_group_free(g));
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(1, atomic_load(&drops[i]));
    ASSERT_EQ(0, atomic_load(&kid_completed));
    weft_runtime_free(rt);
    weft_cancel_drop(tok);
    free(drops);
}

static void failure_case(weft_group_policy policy)
{
    weft_runtime *rt = st_runtime(2);
    enum { K = 8 };
    atomic_int *drops = drops_new(K + 1);
    weft_cancel *tok;
    weft_group *g;

    ASSERT_OK(weft_cancel_new(&tok));
    ASSERT_OK(weft_group_new(&g, rt, policy));
    for (unsigned i = 0; i < K; i++)
        ASSERT_OK(weft_group_spawn(g, &kid_future,
                                   &(kid){ .mode = K_WAIT, .tok = tok, .code = 5,
                                           .drops = drops, .idx = i }));
    ASSERT_OK(weft_group_spawn(g, &kid_future,
                               &(kid){ .code = -42, .yields = 3, .drops = drops, .idx = K }));
    if (policy == WEFT_GROUP_CANCEL_ON_FAILURE) {
        ASSERT_EQ(-42, group_wait_blocking(rt, g));
        ASSERT(weft_group_is_cancelled(g));
        ASSERT_EQ(1, atomic_load(&kid_completed));   /* the failing one only */
        ASSERT_EQ(-ECANCELED, weft_group_spawn(g, &kid_future, &(kid){ 0 }));
    } else {
        ST_WAIT_UNTIL(atomic_load(&drops[K]) == 1);
        /* the wrapper counts the child out just after the child's own drop */
        ST_WAIT_UNTIL(weft_group_live(g) <= K);
        ASSERT_EQ(K, weft_group_live(g));            /* siblings run on */
        ASSERT(!weft_group_is_cancelled(g));
        for (unsigned i = 0; i < K; i++)
            ASSERT_EQ(0, atomic_load(&drops[i]));
        weft_cancel_cancel(tok);                     /* let them finish */
        ASSERT_EQ(-42, weft_group_join(g));          /* the first failure */
        ASSERT_EQ(-42, group_wait_blocking(rt, g)); /* the same, awaited */
        ASSERT_EQ(K + 1, atomic_load(&kid_completed));
    }
    for (unsigned i = 0; i <= K; i++)
        ASSERT_EQ(1, atomic_load(&drops[i]));
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
    weft_cancel_drop(tok);
    free(drops);
}

TEST(group_failure_cancels_siblings_on_failure_policy)
{
    failure_case(WEFT_GROUP_CANCEL_ON_FAILURE);
}

TEST(group_failure_keeps_siblings_under_wait_all)
{
    failure_case(WEFT_GROUP_WAIT_ALL);
}

/* Many children fail at once on 4 workers, while the others wait or yield:
 * the group reports one of the failure codes, every drop runs once. */
TEST(group_concurrent_failures_stress)
{
    const uint64_t seed0 = st_seed(0x9e0c1ULL);
    uint64_t seed = seed0;
    weft_runtime *rt = st_runtime(4);
    unsigned rounds = (unsigned)harness_scale(100);
    enum { N = 64 };

    for (unsigned round = 0; round < rounds; round++) {
        weft_group_policy pol = round % 2 ? WEFT_GROUP_CANCEL_ON_FAILURE : WEFT_GROUP_WAIT_ALL;
        atomic_int drops[N];
        weft_cancel *tok;
        weft_group *g;
        int res;

        ASSERT_OK(weft_cancel_new(&tok));
        ASSERT_OK(weft_group_new(&g, rt, pol));
        for (unsigned i = 0; i < N; i++) {
            kid k = { .drops = drops, .idx = i, .tok = tok,
                      .yields = (unsigned)(st_rand(&seed) % 4) };

            atomic_init(&drops[i], 0);
            switch (st_rand(&seed) % 3) {
            case 0: k.code = -100 - (int)i; break;
            case 1: k.mode = K_WAIT; k.code = 1; break;
            default: k.code = 0; break;
            }
            if (i == 0)
                k.code = -100;                   /* at least one failure */
            res = weft_group_spawn(g, &kid_future, &k);
            if (res == -ECANCELED && pol == WEFT_GROUP_CANCEL_ON_FAILURE)
                atomic_store(&drops[i], 1);      /* refused: never moved in */
            else
                ASSERT_OK(res);
        }
        if (pol == WEFT_GROUP_WAIT_ALL)
            weft_cancel_cancel(tok);             /* waiting children finish */
        res = round % 4 < 2 ? group_wait_blocking(rt, g) : weft_group_join(g);
        if (res > -100 || res <= -100 - N)
            harness_fail(__FILE__, __LINE__, "seed %#llx round %u: result %d",
                         (unsigned long long)seed0, round, res);
        ASSERT_OK(weft_group_free(g));
        for (unsigned i = 0; i < N; i++)
            if (atomic_load(&drops[i]) != 1)
                harness_fail(__FILE__, __LINE__, "seed %#llx round %u: child %u: %d drops",
                             (unsigned long long)seed0, round, i, atomic_load(&drops[i]));
        weft_cancel_drop(tok);
    }
    weft_runtime_free(rt);
}

/* The group's token follows the group: a failure under CANCEL_ON_FAILURE
 * cancels it (and tokens made from it); free cancels it too. */
TEST(group_token_follows_the_group)
{
    weft_runtime *rt = st_runtime(2);
    weft_group *g;
    weft_cancel *sub, *kept;

    ASSERT(weft_group_token(NULL) == NULL);
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_CANCEL_ON_FAILURE));
    ASSERT_OK(weft_cancel_child(weft_group_token(g), &sub));
    ASSERT(!weft_cancel_is_cancelled(sub));
    /* a child waiting on the group's own token finishes when a sibling fails */
    ASSERT_OK(weft_group_spawn(g, &kid_future,
                               &(kid){ .mode = K_WAIT, .tok = weft_group_token(g), .code = 3 }));
    ASSERT_OK(weft_group_spawn(g, &kid_future, &(kid){ .code = -9, .yields = 2 }));
    ASSERT_EQ(-9, weft_group_join(g));
    ASSERT(weft_cancel_is_cancelled(weft_group_token(g)));
    ASSERT(weft_cancel_is_cancelled(sub));
    ASSERT_OK(weft_group_free(g));
    weft_cancel_drop(sub);

    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    kept = weft_cancel_clone(weft_group_token(g));
    ASSERT(!weft_cancel_is_cancelled(kept));
    ASSERT_OK(weft_group_free(g));
    ASSERT(weft_cancel_is_cancelled(kept));          /* free cancelled it */
    weft_cancel_drop(kept);
    weft_runtime_free(rt);
}

TEST(group_spawn_into_cancelled_group)
{
    weft_runtime *rt = st_runtime(1);
    weft_group *g;

    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    weft_group_cancel(g);
    weft_group_cancel(g);
    ASSERT_EQ(-ECANCELED, weft_group_spawn(g, &kid_future, &(kid){ 0 }));
    ASSERT_EQ(0, group_wait_blocking(rt, g));        /* nothing ran, nothing failed */
    ASSERT_OK(weft_group_free(g));
    ASSERT_EQ(0, atomic_load(&kid_completed));
    weft_runtime_free(rt);
}

/* From a task, free refuses to block while children live; the task awaits
 * the wait future instead, then frees. */
typedef struct owner {
    weft_async co;
    weft_cancel *tok;
    weft_group *g;
    int join, free1, res, free2;
    weft_group_wait w;
} owner;

static weft_poll owner_poll(owner *o, weft_context *cx, void *out)
{
    WEFT_BEGIN(&o->co);
    if (weft_group_new(&o->g, weft_runtime_current(), WEFT_GROUP_WAIT_ALL) != 0)
        return WEFT_READY;
    for (unsigned i = 0; i < 16; i++)
        (void)weft_group_spawn(o->g, &kid_future, &(kid){ .mode = K_WAIT, .tok = o->tok });
    o->join = weft_group_join(o->g);                 /* -EINVAL: would block */
    o->free1 = weft_group_free(o->g);                /* -EINVAL, cancelled */
    weft_group_wait_init(&o->w, o->g);
    WEFT_AWAIT(&o->co, weft_group_wait_poll(&o->w, cx, &o->res));
    weft_group_wait_drop(&o->w);
    o->free2 = weft_group_free(o->g);
    o->g = NULL;
    ((int *)out)[0] = o->free1 + o->join;
    ((int *)out)[1] = o->res;
    ((int *)out)[2] = o->free2;
    WEFT_END(&o->co);
}

static void owner_drop(owner *o)
{
    weft_group_wait_drop(&o->w);
}

typedef int int3[3];
WEFT_DEFINE_FUTURE(owner, owner_poll, owner_drop, int3);

TEST(group_free_from_worker_is_einval_then_async_path)
{
    weft_runtime *rt = st_runtime(2);
    weft_cancel *tok;
    int out[3] = { 1, 1, 1 };

    ASSERT_OK(weft_cancel_new(&tok));
    ASSERT_OK(weft_block_on(rt, &owner_future, &(owner){ .tok = tok }, out));
    ASSERT_EQ(-2 * EINVAL, out[0]);                 /* join and free refused */
    ASSERT_EQ(-ECANCELED, out[1]);
    ASSERT_EQ(0, out[2]);
    weft_runtime_free(rt);
    weft_cancel_drop(tok);
}

/* The same on a current-thread runtime: the children run on the thread
 * inside weft_block_on(), between the owner's polls. */
TEST(group_async_path_on_current_thread)
{
    weft_runtime *rt = NULL;
    weft_cancel *tok;
    int out[3] = { 1, 1, 1 };

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    ASSERT_OK(weft_cancel_new(&tok));
    ASSERT_OK(weft_block_on(rt, &owner_future, &(owner){ .tok = tok }, out));
    ASSERT_EQ(-2 * EINVAL, out[0]);                 /* join and free refused */
    ASSERT_EQ(-ECANCELED, out[1]);
    ASSERT_EQ(0, out[2]);
    weft_runtime_free(rt);
    weft_cancel_drop(tok);
}

/* Shutting the runtime down drops every child: the group is then idle. */
TEST(group_runtime_shutdown_drops_children)
{
    weft_runtime *rt = st_runtime(2);
    enum { N = 64 };
    atomic_int *drops = drops_new(N);
    weft_cancel *tok;
    weft_group *g;
    weft_group_wait w;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = 0;

    ASSERT_OK(weft_cancel_new(&tok));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    for (unsigned i = 0; i < N; i++)
        ASSERT_OK(weft_group_spawn(g, &kid_future,
                                   &(kid){ .mode = K_WAIT, .tok = tok, .drops = drops,
                                           .idx = i }));
    weft_runtime_free(rt);
    ASSERT_EQ(0, weft_group_live(g));
    for (unsigned i = 0; i < N; i++)
        ASSERT_EQ(1, atomic_load(&drops[i]));
    weft_group_wait_init(&w, g);
    ASSERT_EQ(WEFT_READY, weft_group_wait_poll(&w, &cx, &res));
    ASSERT_EQ(-ECANCELED, res);
    weft_group_wait_drop(&w);
    ASSERT_OK(weft_group_free(g));
    weft_cancel_drop(tok);
    free(drops);
}

/* A child bigger than the stack buffer (a temporary heap copy), over-aligned,
 * with its code at the start of a large output; and a void child. */
typedef struct bigout {
    int code;
    char rest[3000];
} bigout;

typedef struct big {
    _Alignas(128) char pad[1500];
    int code;
    int *seen_aligned;
} big;

static weft_poll big_poll(big *b, weft_context *cx, void *out)
{
    bigout *o = out;

    (void)cx;
    *b->seen_aligned = ((uintptr_t)b % 128) == 0 && ((uintptr_t)out % _Alignof(bigout)) == 0;
    o->code = b->code;
    memset(o->rest, 0x5a, sizeof(o->rest));
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(big, big_poll, NULL, bigout);

typedef struct quiet {
    int x;
} quiet;

static weft_poll quiet_poll(quiet *q, weft_context *cx, void *out)
{
    (void)q;
    (void)cx;
    (void)out;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(quiet, quiet_poll, NULL);

TEST(group_large_aligned_and_void_children)
{
    weft_runtime *rt = st_runtime(2);
    weft_group *g;
    int aligned = 0;

    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_group_spawn(g, &quiet_future, &(quiet){ 1 }));
    ASSERT_EQ(0, group_wait_blocking(rt, g));        /* void output never fails */
    ASSERT_OK(weft_group_spawn(g, &big_future, &(big){ .code = -7, .seen_aligned = &aligned }));
    ASSERT_EQ(-7, group_wait_blocking(rt, g));
    ASSERT_EQ(1, aligned);
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
}

TEST(group_misuse)
{
    weft_runtime *rt = st_runtime(1);
    weft_group *g = NULL;
    weft_group_wait w;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    weft_future_type bad = kid_future;
    int res = 0;

    ASSERT_EQ(-EINVAL, weft_group_new(NULL, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_EQ(-EINVAL, weft_group_new(&g, NULL, WEFT_GROUP_WAIT_ALL));
    ASSERT_EQ(-EINVAL, weft_group_new(&g, rt, (weft_group_policy)7));
    ASSERT(g == NULL);
    ASSERT_EQ(-EINVAL, weft_group_spawn(NULL, &kid_future, &(kid){ 0 }));
    ASSERT_EQ(-EINVAL, weft_group_free(NULL));
    ASSERT_EQ(-EINVAL, weft_group_join(NULL));
    weft_group_cancel(NULL);
    ASSERT(!weft_group_is_cancelled(NULL));
    ASSERT_EQ(0, weft_group_live(NULL));
    weft_group_wait_init(&w, NULL);
    ASSERT_EQ(WEFT_READY, weft_group_wait_poll(&w, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_group_wait_drop(&w);
    weft_group_wait_drop(NULL);

    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_EQ(-EINVAL, weft_group_spawn(g, NULL, &(kid){ 0 }));
    ASSERT_EQ(-EINVAL, weft_group_spawn(g, &kid_future, NULL));
    bad.size = 0;
    ASSERT_EQ(-EINVAL, weft_group_spawn(g, &bad, &(kid){ 0 }));
    bad = kid_future;
    bad.poll = NULL;
    ASSERT_EQ(-EINVAL, weft_group_spawn(g, &bad, &(kid){ 0 }));
    bad = kid_future;
    bad.align = 3;
    ASSERT_EQ(-EINVAL, weft_group_spawn(g, &bad, &(kid){ 0 }));
    ASSERT_EQ(0, weft_group_live(g));
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
}

/* Fail allocation 1, 2, ... of each constructor: -ENOMEM and nothing kept,
 * until one succeeds. */
TEST(group_alloc_fault)
{
    weft_runtime *rt = st_runtime(1);
    weft_group *g = NULL;
    long base = harness_live();
    size_t k;
    int err, aligned = 0;

    for (k = 1;; k++) {
        harness_fail_alloc_at(k);
        err = weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL);
        harness_fail_alloc_at(0);
        if (err == 0)
            break;
        ASSERT_EQ(-ENOMEM, err);
        ASSERT(g == NULL);
        ASSERT_EQ(base, harness_live());
    }
    ASSERT(k > 2);                                   /* the group and its token */
    for (k = 1;; k++) {                              /* first spawn: slot table + task */
        harness_fail_alloc_at(k);
        err = weft_group_spawn(g, &kid_future, &(kid){ .code = 1 });
        harness_fail_alloc_at(0);
        if (err == 0)
            break;
        ASSERT_EQ(-ENOMEM, err);
        ASSERT_EQ(0, weft_group_live(g));
    }
    ASSERT(k > 2);
    for (k = 1;; k++) {                              /* big: temporary copy + task */
        harness_fail_alloc_at(k);
        err = weft_group_spawn(g, &big_future, &(big){ .code = 1, .seen_aligned = &aligned });
        harness_fail_alloc_at(0);
        if (err == 0)
            break;
        ASSERT_EQ(-ENOMEM, err);
    }
    ASSERT(k > 1);
    ASSERT_EQ(0, group_wait_blocking(rt, g));
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
}
