/* SPDX-License-Identifier: MIT */
/* Misuse is reported, never crashed on: NULL arguments, invalid future
 * types, blocking calls made from inside a worker; error names; over-aligned
 * futures and outputs; the async-function macros. */
#define _GNU_SOURCE
#include <limits.h>
#include <string.h>

#include "task_test.h"

typedef struct nop {
    int v;
} nop;

static weft_poll nop_poll(nop *f, weft_context *cx, void *out)
{
    (void)cx;
    *(int *)out = f->v;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(nop, nop_poll, NULL, int);

#define BAD_HANDLE ((weft_join *)(uintptr_t)0x1)   /* must stay untouched */

/* ======================================================================
 * NULL arguments.
 * ====================================================================== */
TEST(null_arguments_runtime)
{
    weft_runtime *rt = (weft_runtime *)(uintptr_t)0x1;

    ASSERT_EQ(-EINVAL, weft_runtime_new(NULL, NULL));
    ASSERT_EQ(-EINVAL, weft_runtime_new(NULL, &(weft_runtime_options){ .workers = 1 }));
    ASSERT(rt == (weft_runtime *)(uintptr_t)0x1);
    ASSERT_EQ(-EINVAL, weft_runtime_run(NULL));
    ASSERT_EQ(-EINVAL, weft_runtime_shutdown(NULL));
    weft_runtime_free(NULL);
    ASSERT_EQ(0, weft_runtime_active_tasks(NULL));
    ASSERT(weft_runtime_current() == NULL);      /* not a worker */
    ASSERT(weft_worker_name() == NULL);
    ASSERT_EQ(-1, weft_worker_index());
}

TEST(null_arguments_spawn_and_block_on)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 1);
    weft_join *j = BAD_HANDLE;
    int out = 7;

    ASSERT_EQ(-EINVAL, weft_spawn(NULL, &nop_future, &(nop){ 1 }, &j));
    ASSERT_EQ(-EINVAL, weft_spawn(rt, NULL, &(nop){ 1 }, &j));
    ASSERT_EQ(-EINVAL, weft_spawn(rt, &nop_future, NULL, &j));
    ASSERT_EQ(-EINVAL, weft_spawn(rt, &nop_future, &(nop){ 1 }, NULL));
    ASSERT(j == BAD_HANDLE);
    ASSERT_EQ(-EINVAL, weft_spawn_detached(NULL, &nop_future, &(nop){ 1 }));
    ASSERT_EQ(-EINVAL, weft_spawn_detached(rt, NULL, &(nop){ 1 }));
    ASSERT_EQ(-EINVAL, weft_spawn_detached(rt, &nop_future, NULL));
    ASSERT_EQ(-EINVAL, weft_block_on(NULL, &nop_future, &(nop){ 1 }, &out));
    ASSERT_EQ(-EINVAL, weft_block_on(rt, NULL, &(nop){ 1 }, &out));
    ASSERT_EQ(-EINVAL, weft_block_on(rt, &nop_future, NULL, &out));
    ASSERT_EQ(7, out);
    ASSERT_EQ(0, weft_runtime_active_tasks(rt));
    ASSERT_OK(weft_block_on(rt, &nop_future, &(nop){ 1 }, NULL));   /* out may be NULL */
    ASSERT_OK(weft_block_on(rt, &nop_future, &(nop){ 5 }, &out));
    ASSERT_EQ(5, out);
    weft_runtime_free(rt);
}

TEST(null_arguments_join)
{
    weft_waker n = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&n);
    weft_context no_waker = { NULL, NULL };
    int result = 1, out = 7;
    weft_runtime *rt = tt_runtime(WEFT_CURRENT_THREAD, 0);
    weft_join *j;

    ASSERT_EQ(-EINVAL, weft_join_try(NULL, &out));
    ASSERT_EQ(-EINVAL, weft_join_wait(NULL, &out));
    ASSERT_EQ(WEFT_READY, weft_join_poll(NULL, &cx, &result, &out));
    ASSERT_EQ(-EINVAL, result);
    ASSERT_EQ(WEFT_READY, weft_join_poll(NULL, &cx, NULL, NULL));
    ASSERT(!weft_join_is_complete(NULL));
    weft_join_abort(NULL);
    weft_join_drop(NULL);
    ASSERT_EQ(7, out);

    /* A real handle, a NULL context (or one without a waker). */
    ASSERT_OK(weft_spawn(rt, &nop_future, &(nop){ 3 }, &j));
    result = 1;
    ASSERT_EQ(WEFT_READY, weft_join_poll(j, NULL, &result, &out));
    ASSERT_EQ(-EINVAL, result);
    result = 1;
    ASSERT_EQ(WEFT_READY, weft_join_poll(j, &no_waker, &result, &out));
    ASSERT_EQ(-EINVAL, result);
    ASSERT_EQ(7, out);
    ASSERT_EQ(-EAGAIN, weft_join_try(j, &out));  /* nothing broke */
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(WEFT_READY, weft_join_poll(j, &cx, &result, &out));
    ASSERT_OK(result);
    ASSERT_EQ(3, out);
    weft_join_drop(j);
    weft_runtime_free(rt);
}

/* weft_yield_poll() is public and takes pointers too. */
TEST(null_arguments_yield_poll)
{
    weft_waker n = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&n);
    weft_yield y;

    weft_yield_init(&y);
    (void)weft_yield_poll(NULL, &cx);
    (void)weft_yield_poll(&y, NULL);
}

/* ======================================================================
 * Invalid future types and options.
 * ====================================================================== */
static weft_poll raw_poll(void *self, weft_context *cx, void *out)
{
    (void)self;
    (void)cx;
    (void)out;
    return WEFT_READY;
}

static const weft_future_type good_type = {
    raw_poll, NULL, 8, 8, 0, 1, "good"
};

static void check_bad_type(weft_runtime *rt, const weft_future_type *ty, const char *what)
{
    static const unsigned char init[64];
    weft_join *j = BAD_HANDLE;
    int err;

    err = weft_spawn(rt, ty, init, &j);
    if (err != -EINVAL)
        harness_fail(__FILE__, __LINE__, "spawn with %s: %d (%s)", what, err,
                     weft_strerror(err));
    ASSERT(j == BAD_HANDLE);
    err = weft_spawn_detached(rt, ty, init);
    if (err != -EINVAL)
        harness_fail(__FILE__, __LINE__, "spawn_detached with %s: %d", what, err);
    err = weft_block_on(rt, ty, init, NULL);
    if (err != -EINVAL)
        harness_fail(__FILE__, __LINE__, "block_on with %s: %d", what, err);
}

TEST(invalid_future_types)
{
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 1);
    weft_future_type t;

#define BAD(field, value)                                                     \
    do {                                                                      \
        t = good_type;                                                        \
        t.field = (value);                                                    \
        check_bad_type(rt, &t, #field " = " #value);                          \
    } while (0)
    BAD(poll, NULL);
    BAD(size, 0);
    BAD(size, WEFT_FUTURE_MAX_SIZE + 1);
    BAD(size, SIZE_MAX);
    BAD(align, 0);
    BAD(align, 3);
    BAD(align, 24);
    BAD(align, 8192);
    BAD(align, (size_t)1 << 40);
    BAD(output_size, WEFT_FUTURE_MAX_SIZE + 1);
    BAD(output_size, SIZE_MAX);
    BAD(output_align, 0);
    BAD(output_align, 3);
    BAD(output_align, 8192);
#undef BAD
    ASSERT_EQ(0, weft_runtime_active_tasks(rt));
    /* The limits themselves are fine. */
    t = good_type;
    t.align = 4096;
    t.output_size = 1;
    t.output_align = 4096;
    ASSERT_OK(weft_block_on(rt, &t, (unsigned char[8]){ 0 }, NULL));
    ASSERT_OK(weft_block_on(rt, &good_type, (unsigned char[8]){ 0 }, NULL));
    weft_runtime_free(rt);
}

TEST(invalid_runtime_options)
{
    weft_runtime *rt = (weft_runtime *)(uintptr_t)0x1;

    ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &(weft_runtime_options){
                                                 .workers = WEFT_MAX_WORKERS + 1 }));
    ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &(weft_runtime_options){
                                                 .workers = UINT_MAX }));
    ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &(weft_runtime_options){
                                                 .flavor = WEFT_CURRENT_THREAD,
                                                 .workers = 1 }));
    ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &(weft_runtime_options){
                                                 .flavor = (weft_flavor)7 }));
    ASSERT(rt == (weft_runtime *)(uintptr_t)0x1);   /* untouched on failure */
}

/* ======================================================================
 * Blocking calls from inside a worker: -EINVAL, not a deadlock.
 * ====================================================================== */
typedef struct inside {
    weft_runtime *other;             /* a second runtime, or NULL */
    weft_join *peer;                 /* a handle to wait on, or NULL */
} inside;

struct inside_out {
    int block_on, block_on_other, run, run_other, join_wait, shutdown;
    int has_name;
};

static weft_poll inside_poll(inside *f, weft_context *cx, void *out)
{
    struct inside_out *o = out;
    weft_runtime *rt = weft_runtime_current();

    (void)cx;
    o->has_name = weft_worker_name() != NULL && rt != NULL && weft_worker_index() >= 0;
    o->block_on = weft_block_on(rt, &nop_future, &(nop){ 1 }, NULL);
    o->run = weft_runtime_run(rt);
    o->shutdown = weft_runtime_shutdown(rt);
    weft_runtime_free(rt);                       /* refused: must not join itself */
    o->join_wait = f->peer ? weft_join_wait(f->peer, NULL) : 1;
    o->block_on_other = f->other ? weft_block_on(f->other, &nop_future, &(nop){ 1 }, NULL) : 1;
    o->run_other = f->other ? weft_runtime_run(f->other) : 1;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(inside, inside_poll, NULL, struct inside_out);

static void check_inside(weft_flavor flavor)
{
    weft_runtime *rt = tt_runtime(flavor, flavor == WEFT_MULTI_THREAD ? 2 : 0);
    weft_runtime *other = tt_runtime(WEFT_MULTI_THREAD, 1);
    weft_join *peer;
    struct inside_out o;

    memset(&o, 0x55, sizeof(o));
    ASSERT_OK(weft_spawn(other, &nop_future, &(nop){ 1 }, &peer));
    ASSERT_OK(weft_block_on(rt, &inside_future,
                            &(inside){ .other = other, .peer = peer }, &o));
    ASSERT(o.has_name);
    ASSERT_EQ(-EINVAL, o.block_on);
    ASSERT_EQ(-EINVAL, o.run);
    ASSERT_EQ(-EINVAL, o.shutdown);
    ASSERT_EQ(-EINVAL, o.join_wait);
    ASSERT_EQ(-EINVAL, o.block_on_other);        /* a worker of any runtime */
    ASSERT_EQ(-EINVAL, o.run_other);
    /* Both runtimes still work. */
    ASSERT_OK(weft_join_wait(peer, NULL));
    weft_join_drop(peer);
    ASSERT_OK(weft_block_on(rt, &nop_future, &(nop){ 2 }, NULL));
    ASSERT_OK(weft_block_on(other, &nop_future, &(nop){ 2 }, NULL));
    ASSERT_OK(weft_runtime_run(rt));
    weft_runtime_free(other);
    weft_runtime_free(rt);
}

TEST(blocking_calls_inside_multi_thread_worker)
{
    check_inside(WEFT_MULTI_THREAD);
}

TEST(blocking_calls_inside_current_thread_driver)
{
    check_inside(WEFT_CURRENT_THREAD);
}

/* ======================================================================
 * Error names.
 * ====================================================================== */
TEST(strerror_names_every_code)
{
    static const int codes[] = { EINVAL, ENOMEM, ECANCELED, ESHUTDOWN, EAGAIN,
                                 ETIMEDOUT, EPIPE, EBUSY, EDEADLK };
    const int n = (int)(sizeof(codes) / sizeof(codes[0]));
    const char *unknown = weft_strerror(-123456);

    ASSERT(unknown != NULL && unknown[0] != '\0');
    ASSERT(weft_strerror(0) != NULL);
    for (int i = 0; i < n; i++) {
        const char *neg = weft_strerror(-codes[i]), *pos = weft_strerror(codes[i]);

        ASSERT(neg != NULL && neg[0] != '\0');
        if (strcmp(neg, unknown) == 0)
            harness_fail(__FILE__, __LINE__, "code %d is not named", codes[i]);
        ASSERT(strcmp(neg, pos) == 0);           /* either sign */
        for (int k = 0; k < i; k++)
            if (strcmp(neg, weft_strerror(-codes[k])) == 0)
                harness_fail(__FILE__, __LINE__, "codes %d and %d share a name",
                             codes[i], codes[k]);
    }
    ASSERT(strcmp(unknown, weft_strerror(123456)) == 0);
    ASSERT(strcmp(unknown, weft_strerror(INT_MAX)) == 0);
}

/* The most negative int has no positive counterpart: naming it must not
 * overflow (UBSan aborts on the negation). */
TEST(strerror_int_min)
{
    const char *unknown = weft_strerror(-123456);

    ASSERT(strcmp(unknown, weft_strerror(INT_MIN)) == 0);
}

/* ======================================================================
 * Over-aligned futures and outputs.
 * ====================================================================== */
typedef struct wide_out {
    _Alignas(256) unsigned char bytes[256];
} wide_out;

typedef struct aligned64 {
    int id;
    _Alignas(64) unsigned char block[64];
    _Alignas(64) double d;
} aligned64;

static atomic_int al_misaligned;
static atomic_int al_drops;

static weft_poll aligned64_poll(aligned64 *f, weft_context *cx, void *out)
{
    wide_out *o = out;

    (void)cx;
    if ((uintptr_t)f % 64 || (uintptr_t)out % 256)
        atomic_fetch_add(&al_misaligned, 1);
    for (int i = 0; i < 64; i++)
        if (f->block[i] != (unsigned char)(f->id + i))
            atomic_fetch_add(&al_misaligned, 1000);   /* init not copied */
    for (int i = 0; i < 256; i++)
        o->bytes[i] = (unsigned char)(f->id * 7 + i);
    return WEFT_READY;
}

static void aligned64_drop(aligned64 *f)
{
    if ((uintptr_t)f % 64)
        atomic_fetch_add(&al_misaligned, 1);
    atomic_fetch_add(&al_drops, 1);
}

WEFT_DEFINE_FUTURE(aligned64, aligned64_poll, aligned64_drop, wide_out);

static aligned64 aligned64_make(int id)
{
    aligned64 a;

    memset(&a, 0, sizeof(a));
    a.id = id;
    for (int i = 0; i < 64; i++)
        a.block[i] = (unsigned char)(id + i);
    a.d = id;
    return a;
}

static void check_wide(const wide_out *o, int id)
{
    for (int i = 0; i < 256; i++)
        if (o->bytes[i] != (unsigned char)(id * 7 + i))
            harness_fail(__FILE__, __LINE__, "output %d byte %d: %u", id, i, o->bytes[i]);
}

TEST(over_aligned_future_and_output)
{
    enum { N = 64 };
    weft_runtime *rt = tt_runtime(WEFT_MULTI_THREAD, 2);
    weft_join *j[N];
    wide_out out;

    ASSERT_EQ(64, aligned64_future.align);
    ASSERT_EQ(256, aligned64_future.output_align);
    for (int i = 0; i < N; i++) {
        aligned64 a = aligned64_make(i);

        ASSERT_OK(weft_spawn(rt, &aligned64_future, &a, &j[i]));
    }
    for (int i = 0; i < N; i++) {
        memset(&out, 0, sizeof(out));
        ASSERT_OK(weft_join_wait(j[i], &out));
        check_wide(&out, i);
        weft_join_drop(j[i]);
    }
    {
        aligned64 a = aligned64_make(99);

        ASSERT_OK(weft_block_on(rt, &aligned64_future, &a, &out));
        check_wide(&out, 99);
    }
    ASSERT_EQ(0, atomic_load(&al_misaligned));
    ASSERT_EQ(N + 1, atomic_load(&al_drops));
    weft_runtime_free(rt);
}

/* A page-aligned future (the largest alignment allowed), by hand. */
typedef struct page_fut {
    _Alignas(4096) unsigned char page[100];
    int id;
} page_fut;

static weft_poll page_poll(page_fut *f, weft_context *cx, void *out)
{
    (void)cx;
    if ((uintptr_t)f % 4096 || (uintptr_t)out % _Alignof(int))
        atomic_fetch_add(&al_misaligned, 1);
    *(int *)out = f->id + f->page[99];
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(page_fut, page_poll, NULL, int);

TEST(page_aligned_future)
{
    weft_runtime *rt = tt_runtime(WEFT_CURRENT_THREAD, 0);
    page_fut p;
    int out = 0;

    ASSERT_EQ(4096, page_fut_future.align);
    for (int i = 0; i < 16; i++) {
        memset(&p, 0, sizeof(p));
        p.id = i;
        p.page[99] = 5;
        ASSERT_OK(weft_block_on(rt, &page_fut_future, &p, &out));
        ASSERT_EQ(i + 5, out);
    }
    ASSERT_EQ(0, atomic_load(&al_misaligned));
    weft_runtime_free(rt);
}

/* ======================================================================
 * Async-function macros.
 * ====================================================================== */

/* A child future that is pending `n` times (waking itself), then READY with
 * its tag. */
typedef struct child {
    int n, tag;
} child;

static weft_poll child_poll(child *c, weft_context *cx, int *out)
{
    if (c->n > 0) {
        c->n--;
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    *out = c->tag;
    return WEFT_READY;
}

typedef struct multi {
    weft_async co;
    child a, b, c;
    weft_yield y;
    int ra, rb, rc;
    int trace[16];
    int ntrace;
    int i;
} multi;

static atomic_int multi_polls;

#define TRACE(m, v) ((m)->trace[(m)->ntrace++] = (v))

static weft_poll multi_poll(multi *m, weft_context *cx, void *out)
{
    atomic_fetch_add(&multi_polls, 1);
    WEFT_BEGIN(&m->co);
    TRACE(m, 1);                                 /* runs once */
    m->a = (child){ 2, 10 };
    WEFT_AWAIT(&m->co, child_poll(&m->a, cx, &m->ra));
    TRACE(m, 2);
    m->b = (child){ 0, 20 };                     /* ready at once */
    WEFT_AWAIT(&m->co, child_poll(&m->b, cx, &m->rb));
    TRACE(m, 3);
    WEFT_YIELD(&m->co, &m->y, cx);
    TRACE(m, 4);
    for (m->i = 0; m->i < 2; m->i++) {
        m->c = (child){ 1, 30 + m->i };
        WEFT_AWAIT(&m->co, child_poll(&m->c, cx, &m->rc));
        TRACE(m, 5 + m->i);
    }
    if (out)
        *(int *)out = m->ra + m->rb + m->rc;
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE(multi, multi_poll, NULL, int);

static void check_multi_trace(const multi *m)
{
    static const int want[] = { 1, 2, 3, 4, 5, 6 };

    ASSERT_EQ(6, m->ntrace);
    for (int i = 0; i < 6; i++)
        ASSERT_EQ(want[i], m->trace[i]);
    ASSERT_EQ(10, m->ra);
    ASSERT_EQ(20, m->rb);
    ASSERT_EQ(31, m->rc);
}

TEST(async_macros_by_hand)
{
    weft_waker n = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&n);
    multi m = { .co = { 0 } };
    int out = 0, polls = 0;

    ASSERT(!WEFT_ASYNC_IS_DONE(&m.co));
    while (multi_poll(&m, &cx, &out) == WEFT_PENDING) {
        polls++;
        ASSERT(polls < 100);
    }
    /* a: pending twice; b: never; yield: once; c: once per loop turn */
    ASSERT_EQ(5, polls);
    ASSERT(WEFT_ASYNC_IS_DONE(&m.co));
    ASSERT_EQ(61, out);
    check_multi_trace(&m);
    /* After WEFT_END: READY again, nothing runs, out untouched. */
    out = -1;
    ASSERT_EQ(WEFT_READY, multi_poll(&m, &cx, &out));
    ASSERT_EQ(WEFT_READY, multi_poll(&m, &cx, NULL));
    ASSERT_EQ(-1, out);
    check_multi_trace(&m);
}

typedef struct multi_task {
    multi m;
    int traced;                      /* copy of the trace check result */
} multi_task;

static weft_poll multi_task_poll(multi_task *t, weft_context *cx, void *out)
{
    int *o = out;

    if (multi_poll(&t->m, cx, &o[0]) == WEFT_PENDING)
        return WEFT_PENDING;
    o[1] = t->m.ntrace;
    for (int i = 0; i < t->m.ntrace; i++)
        o[2 + i] = t->m.trace[i];
    /* Polling the finished async function again: READY, nothing runs. */
    o[8] = multi_poll(&t->m, cx, NULL) == WEFT_READY && t->m.ntrace == o[1];
    return WEFT_READY;
}

typedef struct mt_out {
    int v[9];
} mt_out;

WEFT_DEFINE_FUTURE(multi_task, multi_task_poll, NULL, mt_out);

TEST(async_macros_in_runtime)
{
    weft_flavor flavors[2] = { WEFT_MULTI_THREAD, WEFT_CURRENT_THREAD };

    for (int f = 0; f < 2; f++) {
        weft_runtime *rt = tt_runtime(flavors[f], flavors[f] == WEFT_MULTI_THREAD ? 2 : 0);
        mt_out o;

        atomic_store(&multi_polls, 0);
        memset(&o, 0, sizeof(o));
        ASSERT_OK(weft_block_on(rt, &multi_task_future, &(multi_task){ .traced = 0 }, &o));
        ASSERT_EQ(61, o.v[0]);
        ASSERT_EQ(6, o.v[1]);
        for (int i = 0; i < 6; i++)
            ASSERT_EQ(i + 1, o.v[2 + i]);
        ASSERT_EQ(1, o.v[8]);
        ASSERT_EQ(7, atomic_load(&multi_polls));     /* 6 polls + 1 after END */
        weft_runtime_free(rt);
    }
}
