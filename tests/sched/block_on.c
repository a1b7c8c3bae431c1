/* SPDX-License-Identifier: MIT */
/* weft_block_on(): the root future's output on both flavours, other tasks
 * running meanwhile (the current-thread flavour runs them on the caller),
 * nested spawns, and the calls a worker thread must not make. */
#define _GNU_SOURCE
#include "sched_test.h"

static weft_runtime *new_multi(unsigned workers)
{
    weft_runtime *rt;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = workers }));
    return rt;
}

static weft_runtime *new_current(void)
{
    weft_runtime *rt;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    return rt;
}

typedef weft_runtime *(*make_rt)(void);

static weft_runtime *make_multi(void)
{
    return new_multi(2);
}

static weft_runtime *make_current(void)
{
    return new_current();
}

/* Tasks on the current-thread flavour must run on the thread in block_on. */
static pthread_t caller;
static atomic_int check_caller;
static atomic_long misplaced;
static atomic_long completed;

static void check_context(void)
{
    if (atomic_load_explicit(&check_caller, memory_order_relaxed) &&
        (!pthread_equal(pthread_self(), caller) || weft_worker_index() != 0))
        atomic_fetch_add(&misplaced, 1);
    if (weft_runtime_current() == NULL)
        atomic_fetch_add(&misplaced, 1);
}

static void expect_caller(bool on)
{
    caller = pthread_self();
    atomic_store(&misplaced, 0);
    atomic_store(&completed, 0);
    atomic_store(&check_caller, on);
}

/* ---- Outputs ------------------------------------------------------------------- */
typedef struct add {
    int a, b;
} add;

static weft_poll add_poll(add *f, weft_context *cx, void *out)
{
    (void)cx;
    check_context();
    *(int *)out = f->a + f->b;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(add, add_poll, NULL, int);

/* A large output, and an over-aligned one, written after a few yields. */
typedef struct big_out {
    long v[64];
} big_out;

typedef struct make_big {
    weft_async co;
    int k, step;
    weft_yield y;
} make_big;

static weft_poll make_big_poll(make_big *m, weft_context *cx, void *out)
{
    WEFT_BEGIN(&m->co);
    for (m->step = 0; m->step < 3; m->step++)
        WEFT_YIELD(&m->co, &m->y, cx);
    check_context();
    for (int i = 0; i < 64; i++)
        ((big_out *)out)->v[i] = (long)m->k * 1000 + i;
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE(make_big, make_big_poll, NULL, big_out);

typedef struct aligned_out {
    _Alignas(256) unsigned char bytes[256];
} aligned_out;

typedef struct make_aligned {
    unsigned char fill;
} make_aligned;

static weft_poll make_aligned_poll(make_aligned *m, weft_context *cx, void *out)
{
    (void)cx;
    check_context();
    if (((uintptr_t)out & 255) != 0)
        atomic_fetch_add(&misplaced, 1000);   /* output not aligned */
    memset(out, m->fill, sizeof(aligned_out));
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(make_aligned, make_aligned_poll, NULL, aligned_out);

static void returns_output(make_rt make, bool on_caller)
{
    weft_runtime *rt = make();
    big_out big;
    aligned_out al;
    int out = 0;

    expect_caller(on_caller);
    ASSERT_OK(weft_block_on(rt, &add_future, &(add){ 2, 3 }, &out));
    ASSERT_EQ(5, out);
    ASSERT_OK(weft_block_on(rt, &add_future, &(add){ -40, -2 }, &out));
    ASSERT_EQ(-42, out);
    ASSERT_OK(weft_block_on(rt, &add_future, &(add){ 1, 1 }, NULL));   /* discarded */
    memset(&big, 0, sizeof(big));
    ASSERT_OK(weft_block_on(rt, &make_big_future, &(make_big){ .k = 7 }, &big));
    for (int i = 0; i < 64; i++)
        ASSERT_EQ(7000 + i, big.v[i]);
    memset(&al, 0, sizeof(al));
    ASSERT_OK(weft_block_on(rt, &make_aligned_future, &(make_aligned){ 0xa5 }, &al));
    for (int i = 0; i < 256; i++)
        ASSERT_EQ(0xa5, al.bytes[i]);
    ASSERT_EQ(0, atomic_load(&misplaced));
    weft_runtime_free(rt);
}

TEST(block_on_returns_output_multi_thread)
{
    returns_output(make_multi, false);
}

TEST(block_on_returns_output_current_thread)
{
    returns_output(make_current, true);
}

TEST(block_on_many_times_on_one_runtime)
{
    long n = (long)harness_scale(20000);

    for (int flavour = 0; flavour < 2; flavour++) {
        weft_runtime *rt = flavour ? new_current() : new_multi(2);

        expect_caller(flavour == 1);
        for (long i = 0; i < n; i++) {
            int out = -1;

            ASSERT_OK(weft_block_on(rt, &add_future, &(add){ (int)i, 1 }, &out));
            ASSERT_EQ(i + 1, out);
        }
        ASSERT_EQ(0, atomic_load(&misplaced));
        weft_runtime_free(rt);
    }
}

/* ---- Other tasks run while block_on drives the root ------------------------------- */
typedef struct bump {
    int unused;
} bump;

static weft_poll bump_poll(bump *b, weft_context *cx, void *out)
{
    (void)b, (void)cx, (void)out;
    check_context();
    atomic_fetch_add(&completed, 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(bump, bump_poll, NULL);

/* Spawns `spawn` more bumps itself, then yields until `want` bumps have
 * completed (bounded: a scheduler that starves them fails the count rather
 * than hanging) and returns how many did. */
typedef struct await_bumps {
    weft_async co;
    long spawn, want, yields;
    weft_yield y;
} await_bumps;

static weft_poll await_bumps_poll(await_bumps *a, weft_context *cx, void *out)
{
    WEFT_BEGIN(&a->co);
    check_context();
    for (long i = 0; i < a->spawn; i++)
        if (weft_spawn_detached(weft_runtime_current(), &bump_future, &(bump){ 0 }) != 0)
            atomic_fetch_add(&misplaced, 1);
    while (atomic_load(&completed) < a->want && a->yields < 10000000) {
        a->yields++;
        WEFT_YIELD(&a->co, &a->y, cx);
    }
    check_context();
    *(long *)out = atomic_load(&completed);
    WEFT_END(&a->co);
}

WEFT_DEFINE_FUTURE(await_bumps, await_bumps_poll, NULL, long);

TEST(block_on_current_thread_runs_other_spawned_tasks)
{
    long before = (long)harness_scale(10000), inside = (long)harness_scale(10000);
    weft_runtime *rt = new_current();
    long got = 0;

    expect_caller(true);
    for (long i = 0; i < before; i++)
        ASSERT_OK(weft_spawn_detached(rt, &bump_future, &(bump){ 0 }));
    ASSERT_EQ(0, atomic_load(&completed));     /* nobody drives it yet */
    ASSERT_OK(weft_block_on(rt, &await_bumps_future,
                            &(await_bumps){ .spawn = inside, .want = before + inside }, &got));
    ASSERT_EQ(before + inside, got);
    ASSERT_EQ(0, atomic_load(&misplaced));
    weft_runtime_free(rt);
}

TEST(block_on_multi_thread_runs_other_spawned_tasks)
{
    long before = (long)harness_scale(10000), inside = (long)harness_scale(10000);
    weft_runtime *rt = new_multi(2);
    long got = 0;

    expect_caller(false);
    for (long i = 0; i < before; i++)
        ASSERT_OK(weft_spawn_detached(rt, &bump_future, &(bump){ 0 }));
    ASSERT_OK(weft_block_on(rt, &await_bumps_future,
                            &(await_bumps){ .spawn = inside, .want = before + inside }, &got));
    ASSERT_EQ(before + inside, got);
    ASSERT_EQ(0, atomic_load(&misplaced));
    weft_runtime_free(rt);
}

/* What block_on leaves unfinished stays queued; a later run() finishes it. */
TEST(block_on_current_thread_then_run_finishes_the_rest)
{
    weft_runtime *rt = new_current();
    int out = 0;

    expect_caller(true);
    for (int i = 0; i < 100; i++)
        ASSERT_OK(weft_spawn_detached(rt, &bump_future, &(bump){ 0 }));
    ASSERT_OK(weft_block_on(rt, &add_future, &(add){ 1, 2 }, &out));
    ASSERT_EQ(3, out);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(100, atomic_load(&completed));
    ASSERT_EQ(0, atomic_load(&misplaced));
    weft_runtime_free(rt);
}

/* ---- Nested spawns: the root spawns children that spawn grandchildren, and
 * each parent awaits its children's join handles. */
#define FANOUT 16

typedef struct leaf {
    int v;
    weft_yield y;
    weft_async co;
} leaf;

static weft_poll leaf_poll(leaf *l, weft_context *cx, void *out)
{
    WEFT_BEGIN(&l->co);
    WEFT_YIELD(&l->co, &l->y, cx);
    check_context();
    *(long *)out = l->v;
    WEFT_END(&l->co);
}

WEFT_DEFINE_FUTURE(leaf, leaf_poll, NULL, long);

typedef struct mid {
    weft_async co;
    int base, i, err;
    long got, sum;
    weft_join *j[FANOUT];
} mid;

static weft_poll mid_poll(mid *m, weft_context *cx, void *out)
{
    WEFT_BEGIN(&m->co);
    check_context();
    for (m->i = 0; m->i < FANOUT; m->i++)
        if (weft_spawn(weft_runtime_current(), &leaf_future,
                       &(leaf){ .v = m->base * FANOUT + m->i }, &m->j[m->i]) != 0) {
            atomic_fetch_add(&misplaced, 1);
            m->j[m->i] = NULL;
        }
    for (m->i = 0; m->i < FANOUT; m->i++) {
        if (m->j[m->i] == NULL)
            continue;
        WEFT_AWAIT(&m->co, weft_join_poll(m->j[m->i], cx, &m->err, &m->got));
        if (m->err == 0)
            m->sum += m->got;
        else
            atomic_fetch_add(&misplaced, 1);
        weft_join_drop(m->j[m->i]);
        m->j[m->i] = NULL;
    }
    *(long *)out = m->sum;
    WEFT_END(&m->co);
}

static void mid_drop(mid *m)
{
    for (int i = 0; i < FANOUT; i++)
        weft_join_drop(m->j[i]);
}

WEFT_DEFINE_FUTURE(mid, mid_poll, mid_drop, long);

typedef struct root {
    weft_async co;
    int i, err;
    long got, sum;
    weft_join *j[FANOUT];
} root;

static weft_poll root_poll(root *r, weft_context *cx, void *out)
{
    WEFT_BEGIN(&r->co);
    check_context();
    for (r->i = 0; r->i < FANOUT; r->i++)
        if (weft_spawn(weft_runtime_current(), &mid_future, &(mid){ .base = r->i },
                       &r->j[r->i]) != 0) {
            atomic_fetch_add(&misplaced, 1);
            r->j[r->i] = NULL;
        }
    for (r->i = 0; r->i < FANOUT; r->i++) {
        if (r->j[r->i] == NULL)
            continue;
        WEFT_AWAIT(&r->co, weft_join_poll(r->j[r->i], cx, &r->err, &r->got));
        if (r->err == 0)
            r->sum += r->got;
        else
            atomic_fetch_add(&misplaced, 1);
        weft_join_drop(r->j[r->i]);
        r->j[r->i] = NULL;
    }
    *(long *)out = r->sum;
    WEFT_END(&r->co);
}

static void root_drop(root *r)
{
    for (int i = 0; i < FANOUT; i++)
        weft_join_drop(r->j[i]);
}

WEFT_DEFINE_FUTURE(root, root_poll, root_drop, long);

static void nested_spawns(make_rt make, bool on_caller)
{
    const long n = FANOUT * FANOUT;
    weft_runtime *rt = make();
    long got = 0;

    expect_caller(on_caller);
    ASSERT_OK(weft_block_on(rt, &root_future, &(root){ .sum = 0 }, &got));
    ASSERT_EQ(n * (n - 1) / 2, got);           /* sum of 0 .. n-1 */
    ASSERT_EQ(0, atomic_load(&misplaced));
    ASSERT_EQ(0, weft_runtime_active_tasks(rt));
    weft_runtime_free(rt);
}

TEST(block_on_nested_spawns_multi_thread)
{
    nested_spawns(make_multi, false);
}

TEST(block_on_nested_spawns_current_thread)
{
    nested_spawns(make_current, true);
}

/* ---- A root woken from another thread --------------------------------------------- */
static weft_waker root_waker;             /* published by root_handed */
static atomic_int root_handed;

typedef struct wait_foreign {
    int rounds, done;
} wait_foreign;

static weft_poll wait_foreign_poll(wait_foreign *w, weft_context *cx, void *out)
{
    check_context();
    if (atomic_load(&root_handed))
        return WEFT_PENDING;                  /* spurious: the wake is coming */
    if (w->done == w->rounds) {
        *(int *)out = w->done;
        return WEFT_READY;
    }
    w->done++;
    root_waker = weft_waker_clone(weft_context_waker(cx));
    atomic_store(&root_handed, 1);
    return WEFT_PENDING;
}

WEFT_DEFINE_FUTURE(wait_foreign, wait_foreign_poll, NULL, int);

static void *wake_root(void *p)
{
    int rounds = (int)(intptr_t)p;

    for (int i = 0; i < rounds; i++) {
        weft_waker w;

        WAIT_AT_LEAST(&root_handed, 1, WATCHDOG_MS, "root pending");
        w = root_waker;
        atomic_store(&root_handed, 0);
        if (i % 10 == 0)
            sleep_ms(1);          /* sometimes the driver is asleep by then */
        weft_waker_wake(&w);
    }
    return NULL;
}

static void woken_by_other_thread(make_rt make, bool on_caller)
{
    const int rounds = 200;
    weft_runtime *rt = make();
    pthread_t th;
    int out = 0;

    expect_caller(on_caller);
    atomic_store(&root_handed, 0);
    START_THREAD(&th, wake_root, (void *)(intptr_t)rounds);
    ASSERT_OK(weft_block_on(rt, &wait_foreign_future, &(wait_foreign){ .rounds = rounds }, &out));
    ASSERT_EQ(rounds, out);
    JOIN_THREAD(th);
    ASSERT_EQ(0, atomic_load(&misplaced));
    weft_runtime_free(rt);
}

TEST(block_on_root_woken_by_other_thread_multi_thread)
{
    woken_by_other_thread(make_multi, false);
}

TEST(block_on_root_woken_by_other_thread_current_thread)
{
    woken_by_other_thread(make_current, true);
}

/* ---- Calls a worker must not make ------------------------------------------------ */
struct inside_results {
    int block_on_own, block_on_other;
    int run_own, run_other;
    int join_wait;
};

static _Atomic(weft_runtime *) other_rt;

typedef struct misuse {
    int unused;
} misuse;

static weft_poll misuse_poll(misuse *m, weft_context *cx, void *out)
{
    struct inside_results *r = out;
    weft_runtime *own = weft_runtime_current(), *other = atomic_load(&other_rt);
    weft_join *j;
    int v = 0;

    (void)m, (void)cx;
    r->block_on_own = weft_block_on(own, &add_future, &(add){ 1, 2 }, &v);
    r->block_on_other = weft_block_on(other, &add_future, &(add){ 1, 2 }, &v);
    r->run_own = weft_runtime_run(own);
    r->run_other = weft_runtime_run(other);
    r->join_wait = 1;
    if (weft_spawn(own, &add_future, &(add){ 1, 2 }, &j) == 0) {
        r->join_wait = weft_join_wait(j, &v);
        weft_join_drop(j);
    }
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(misuse, misuse_poll, NULL, struct inside_results);

static void misuse_inside(make_rt make, bool on_caller)
{
    weft_runtime *rt = make(), *other;
    struct inside_results r;
    int out = 0;

    expect_caller(on_caller);
    memset(&r, 0x55, sizeof(r));
    /* The other runtime is of the other flavour (a current-thread one would
     * run the future on this very worker if block_on let it through). */
    other = on_caller ? new_multi(1) : new_current();
    atomic_store(&other_rt, other);
    ASSERT_OK(weft_block_on(rt, &misuse_future, &(misuse){ 0 }, &r));
    ASSERT_EQ(-EINVAL, r.block_on_own);
    ASSERT_EQ(-EINVAL, r.block_on_other);
    ASSERT_EQ(-EINVAL, r.run_own);
    ASSERT_EQ(-EINVAL, r.run_other);
    ASSERT_EQ(-EINVAL, r.join_wait);
    /* both runtimes still work */
    ASSERT_OK(weft_block_on(rt, &add_future, &(add){ 4, 5 }, &out));
    ASSERT_EQ(9, out);
    atomic_store(&check_caller, 0);
    ASSERT_OK(weft_block_on(other, &add_future, &(add){ 5, 6 }, &out));
    ASSERT_EQ(11, out);
    weft_runtime_free(other);
    weft_runtime_free(rt);
}

TEST(block_on_and_run_from_a_worker_return_einval_multi_thread)
{
    misuse_inside(make_multi, false);
}

TEST(block_on_and_run_from_a_worker_return_einval_current_thread)
{
    misuse_inside(make_current, true);
}

/* ---- Bad arguments ------------------------------------------------------------------ */
static weft_poll never_poll(void *self, weft_context *cx, void *out)
{
    (void)self, (void)cx, (void)out;
    atomic_fetch_add(&misplaced, 1);
    return WEFT_READY;
}

TEST(block_on_bad_arguments_return_einval)
{
    static const weft_future_type no_poll = { NULL, NULL, 4, 4, 0, 1, "no_poll" };
    static const weft_future_type zero_size = { never_poll, NULL, 0, 4, 0, 1, "zero" };
    static const weft_future_type bad_align = { never_poll, NULL, 4, 3, 0, 1, "align3" };
    static const weft_future_type bad_oalign = { never_poll, NULL, 4, 4, 4, 6, "oalign6" };
    static const weft_future_type huge_align = { never_poll, NULL, 4, 8192, 0, 1, "align8k" };
    static const weft_future_type *bad[] = { &no_poll, &zero_size, &bad_align,
                                             &bad_oalign, &huge_align };
    int out = 0, init = 0;

    expect_caller(false);
    for (int flavour = 0; flavour < 2; flavour++) {
        weft_runtime *rt = flavour ? new_current() : new_multi(2);

        ASSERT_EQ(-EINVAL, weft_block_on(NULL, &add_future, &(add){ 1, 2 }, &out));
        ASSERT_EQ(-EINVAL, weft_block_on(rt, NULL, &(add){ 1, 2 }, &out));
        ASSERT_EQ(-EINVAL, weft_block_on(rt, &add_future, NULL, &out));
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            ASSERT_EQ(-EINVAL, weft_block_on(rt, bad[i], &init, &out));
        ASSERT_EQ(-EINVAL, weft_runtime_run(NULL));
        ASSERT_EQ(0, atomic_load(&misplaced));
        ASSERT_OK(weft_block_on(rt, &add_future, &(add){ 1, 2 }, &out));  /* still fine */
        ASSERT_EQ(3, out);
        weft_runtime_free(rt);
    }
}

/* ---- Several threads at once ---------------------------------------------------------- */
struct many_arg {
    weft_runtime *rt;
    int base;
    int n;
    atomic_int bad;
};

static void *block_on_in_a_loop(void *p)
{
    struct many_arg *a = p;

    for (int i = 0; i < a->n; i++) {
        int out = -1;

        if (weft_block_on(a->rt, &add_future, &(add){ a->base, i }, &out) != 0 ||
            out != a->base + i)
            atomic_fetch_add(&a->bad, 1);
    }
    return NULL;
}

TEST(block_on_from_four_threads_at_once_multi_thread)
{
    int n = (int)harness_scale(5000);
    weft_runtime *rt = new_multi(2);
    struct many_arg a[4];
    pthread_t th[4];

    expect_caller(false);
    for (int t = 0; t < 4; t++) {
        a[t].rt = rt;
        a[t].base = t * 1000000;
        a[t].n = n;
        atomic_init(&a[t].bad, 0);
        START_THREAD(&th[t], block_on_in_a_loop, &a[t]);
    }
    for (int t = 0; t < 4; t++) {
        JOIN_THREAD(th[t]);
        ASSERT_EQ(0, atomic_load(&a[t].bad));
    }
    ASSERT_EQ(0, atomic_load(&misplaced));
    weft_runtime_free(rt);
}

/* Current-thread, two callers: while thread A is inside block_on (driving),
 * thread B calls block_on too. B waits until A leaves (A's driver runs B's
 * future meanwhile, or B runs it after), then returns 0 with its output.
 * B's future runs exactly once and is dropped exactly once. */
static atomic_int a_driving, b_returned;
static atomic_long b_polls, b_drops;

typedef struct b_future {
    int v;
} b_future;

static weft_poll b_future_poll(b_future *b, weft_context *cx, void *out)
{
    (void)cx;
    atomic_fetch_add(&b_polls, 1);
    *(int *)out = b->v;
    return WEFT_READY;
}

static void b_future_drop(b_future *b)
{
    (void)b;
    atomic_fetch_add(&b_drops, 1);
}

WEFT_DEFINE_FUTURE(b_future, b_future_poll, b_future_drop, int);

/* A's root: keeps A driving until B's call has returned (or a watchdog
 * says B is waiting for A to finish: then it lets A go), then a while
 * longer, so that a task B left behind would be polled here. */
typedef struct a_root {
    weft_async co;
    uint64_t deadline;
    long after;
    weft_yield y;
} a_root;

static weft_poll a_root_poll(a_root *a, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&a->co);
    atomic_store(&a_driving, 1);
    a->deadline = harness_now_ns() + ms_to_ns(300);
    while (!atomic_load(&b_returned) && harness_now_ns() < a->deadline)
        WEFT_YIELD(&a->co, &a->y, cx);
    for (a->after = 0; a->after < 1000; a->after++)
        WEFT_YIELD(&a->co, &a->y, cx);
    WEFT_END(&a->co);
}

WEFT_DEFINE_FUTURE_VOID(a_root, a_root_poll, NULL);

static void *thread_a(void *p)
{
    weft_runtime *rt = p;

    if (weft_block_on(rt, &a_root_future, &(a_root){ .after = 0 }, NULL) != 0)
        atomic_fetch_add(&misplaced, 1);
    return NULL;
}

TEST(block_on_from_two_threads_current_thread)
{
    weft_runtime *rt = new_current();
    pthread_t th;
    int out = 0, rb;

    atomic_store(&b_returned, 0);
    atomic_store(&b_polls, 0);
    atomic_store(&b_drops, 0);
    atomic_store(&a_driving, 0);
    expect_caller(false);
    START_THREAD(&th, thread_a, rt);
    WAIT_AT_LEAST(&a_driving, 1, WATCHDOG_MS, "thread A driving");
    rb = weft_block_on(rt, &b_future_future, &(b_future){ 42 }, &out);
    atomic_store(&b_returned, 1);
    JOIN_THREAD(th);
    weft_runtime_free(rt);
    ASSERT_EQ(0, rb);
    ASSERT_EQ(42, out);
    ASSERT_EQ(1, atomic_load(&b_polls));       /* ran once, here or on A */
    ASSERT_EQ(1, atomic_load(&b_drops));
    ASSERT_EQ(0, atomic_load(&misplaced));
}
