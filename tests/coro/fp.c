/* SPDX-License-Identifier: MIT */
/* The FP control words (x86-64: MXCSR's control bits, the x87 control
 * word) of the thread that runs a coroutine, where they are not weft's:
 * a current-thread runtime's driver, whose words the user may change
 * between two weft_block_on() calls; the thread whose weft_runtime_free()
 * drops a parked coroutine; a worker on which a future set its own words
 * and left them. The switch reads the worker's words at every resume;
 * these tests are what a switch that knew them without a read would have
 * to pass (docs/coro.md, "Cost": tried, measured, not kept): each fails
 * against such a switch that kept the words of an earlier driving session,
 * used them in a drop outside any session, or kept them past a future's
 * poll that set its own. (tests/coro/basic.c has the coroutine-side tests:
 * a coroutine's words stay its own across yields and workers.) */
#include "coro_test.h"

#if defined(__x86_64__) && !(defined(WEFT_CO_NO_FP_SAVE) && WEFT_CO_NO_FP_SAVE) && \
    !WEFT_CO_UCONTEXT
#define FP_CHECKED 1

#define CSR_DEFAULT 0x1f80u   /* all masked, round to nearest: a new thread's */
#define CW_DEFAULT 0x037fu

static unsigned csr_get(void)
{
    return __builtin_ia32_stmxcsr() & 0xffc0u;      /* control bits only */
}

static void csr_set(unsigned v)
{
    __builtin_ia32_ldmxcsr(v);
}

static unsigned cw_get(void)
{
    unsigned short cw;

    __asm__ __volatile__("fnstcw %0" : "=m"(cw));
    return cw & 0x0f7fu;
}

static void cw_set(unsigned v)
{
    unsigned short cw = (unsigned short)v;

    __asm__ __volatile__("fldcw %0" : : "m"(cw));
}

/* What the caller's thread is given in each session: a rounding mode, FTZ
 * and DAZ, a precision; never the default (so a coroutine's start words
 * differ from the thread's). */
static const struct {
    unsigned csr, cw;
} words[] = {
    { 0x3f80u, 0x047fu },     /* round down; x87 24-bit, round down */
    { 0x5f80u, 0x0b7fu },     /* round up; x87 round up */
    { 0x9f80u, 0x027fu },     /* FTZ | DAZ; x87 53-bit */
    { 0x7f80u, 0x0f7fu },     /* toward zero; x87 toward zero */
};

/* A future task on the driver thread: the words it sees at each poll,
 * polled between the coroutine's switches. */
typedef struct probe {
    weft_async co;
    unsigned csr, cw;         /* expected */
    int i, bad;
    weft_yield y;
} probe;

static weft_poll probe_poll(probe *p, weft_context *cx, void *out)
{
    WEFT_BEGIN(&p->co);
    for (p->i = 0; p->i < 20; p->i++) {
        if (csr_get() != p->csr || cw_get() != p->cw)
            p->bad++;
        WEFT_YIELD(&p->co, &p->y, cx);
    }
    *(int *)out = p->bad;
    WEFT_END(&p->co);
}
WEFT_DEFINE_FUTURE_STATIC(probe, probe_poll, NULL, int);

struct session {
    weft_runtime *rt;
    unsigned csr, cw;         /* the driver thread's words this session */
    int probe_bad, co_bad;
};

/* The coroutine: starts with a new thread's words whatever the driver's,
 * sets its own, and keeps them over yields that interleave with a future
 * task, which keeps seeing the driver's. */
static int session_co(void *arg)
{
    struct session *s = arg;
    weft_join *j;
    int bad = 0;

    if (csr_get() != CSR_DEFAULT || cw_get() != CW_DEFAULT)
        s->co_bad++;
    ASSERT_OK(weft_spawn(s->rt, &probe_future, &(probe){ .csr = s->csr, .cw = s->cw }, &j));
    csr_set(0x5fc0u);         /* round up and DAZ */
    cw_set(0x0c7fu);          /* toward zero, 24-bit */
    for (int i = 0; i < 20; i++) {
        ASSERT_OK(weft_co_yield());
        if (csr_get() != 0x5fc0u || cw_get() != 0x0c7fu)
            s->co_bad++;
    }
    ASSERT_OK(weft_co_join(j, &bad));
    weft_join_drop(j);
    s->probe_bad += bad;
    return 0;
}

static void sessions_body(void)
{
    weft_runtime *rt = ct_current_thread();

    for (unsigned round = 0; round < 2; round++) {
        for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
            struct session s = { rt, words[k].csr, words[k].cw, 0, 0 };
            int out = -1;

            csr_set(s.csr);
            cw_set(s.cw);
            ASSERT_OK(weft_co_block_on(rt, session_co, &s, NULL, &out));
            /* the driver's words are its own again, not the first
             * session's nor the coroutine's */
            ASSERT_EQ(s.csr, csr_get());
            ASSERT_EQ(s.cw, cw_get());
            csr_set(CSR_DEFAULT);
            cw_set(CW_DEFAULT);
            ASSERT_EQ(0, out);
            ASSERT_EQ(0, s.co_bad);
            ASSERT_EQ(0, s.probe_bad);
        }
    }
    CT_FREE(rt);
}

/* ---- A future that sets its words and leaves them --------------------------------
 * On one worker, between coroutines: a coroutine that keeps the default
 * words and one that sets its own. The future's words are the worker's
 * from its second poll on: each coroutine switch must give them back to
 * it, and each coroutine must run with its own (the default one too: the
 * thread's words are not the ones known before the future's poll). */
#define CSR_LEAK 0x5f80u       /* round up */
#define CW_LEAK 0x0b7fu

typedef struct leaky {
    weft_async co;
    int i, bad;
    weft_yield y;
} leaky;

static weft_poll leaky_poll(leaky *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    WEFT_YIELD(&f->co, &f->y, cx);     /* the coroutines have run once */
    csr_set(CSR_LEAK);
    cw_set(CW_LEAK);
    for (f->i = 0; f->i < 50; f->i++) {
        WEFT_YIELD(&f->co, &f->y, cx);
        if (csr_get() != CSR_LEAK || cw_get() != CW_LEAK)
            f->bad++;
    }
    csr_set(CSR_DEFAULT);
    cw_set(CW_DEFAULT);
    *(int *)out = f->bad;
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_STATIC(leaky, leaky_poll, NULL, int);

static atomic_int leak_co_bad;

static int leak_default_co(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++) {
        ASSERT_OK(weft_co_yield());
        if (csr_get() != CSR_DEFAULT || cw_get() != CW_DEFAULT)
            atomic_fetch_add(&leak_co_bad, 1);
    }
    return 0;
}

static int leak_own_co(void *arg)
{
    (void)arg;
    csr_set(0x9f80u);          /* FTZ | DAZ */
    cw_set(0x027fu);
    for (int i = 0; i < 50; i++) {
        ASSERT_OK(weft_co_yield());
        if (csr_get() != 0x9f80u || cw_get() != 0x027fu)
            atomic_fetch_add(&leak_co_bad, 1);
    }
    return 0;
}

static void leak_body(void)
{
    weft_runtime *rt = ct_runtime(1);
    weft_join *j[3];
    int bad = -1;

    ASSERT_OK(weft_go(rt, leak_default_co, NULL, &j[0]));
    ASSERT_OK(weft_spawn(rt, &leaky_future, &(leaky){ 0 }, &j[1]));
    ASSERT_OK(weft_go(rt, leak_own_co, NULL, &j[2]));
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(weft_join_wait(j[i], i == 1 ? &bad : NULL));
        weft_join_drop(j[i]);
    }
    ASSERT_EQ(0, bad);
    ASSERT_EQ(0, atomic_load(&leak_co_bad));
    CT_FREE(rt);
}

/* ---- A drop outside any session -------------------------------------------------- */
static atomic_int parked_result = 1, parked_bad;

static int parker(void *arg)
{
    int err;

    (void)arg;
    csr_set(0x3fc0u);         /* round down, DAZ */
    cw_set(0x0b7fu);
    err = weft_co_sleep(3600 * 1000);       /* until the runtime's end */
    if (csr_get() != 0x3fc0u || cw_get() != 0x0b7fu)
        atomic_fetch_add(&parked_bad, 1);
    atomic_store(&parked_result, err);
    return err;
}

static int spawn_parker(void *arg)
{
    weft_runtime *rt = arg;

    ASSERT_OK(weft_go_detached(rt, parker, NULL));
    for (int i = 0; i < 5; i++)              /* it runs and parks */
        ASSERT_OK(weft_co_yield());
    return 0;
}

static void drop_body(void)
{
    weft_runtime *rt = ct_current_thread();

    /* a session with one pair of words (the parker parks in it) ... */
    csr_set(words[0].csr);
    cw_set(words[0].cw);
    ASSERT_OK(weft_co_block_on(rt, spawn_parker, rt, NULL, NULL));
    ASSERT_EQ(words[0].csr, csr_get());
    ASSERT_EQ(words[0].cw, cw_get());
    ASSERT_EQ(1, atomic_load(&parked_result));          /* still parked */
    /* ... then the thread's words change, and the free drops the parked
     * coroutine here, outside any session: the thread keeps the new ones */
    csr_set(words[1].csr);
    cw_set(words[1].cw);
    CT_FREE(rt);
    ASSERT_EQ(words[1].csr, csr_get());
    ASSERT_EQ(words[1].cw, cw_get());
    csr_set(CSR_DEFAULT);
    cw_set(CW_DEFAULT);
    ASSERT_EQ(-ECANCELED, atomic_load(&parked_result));
    ASSERT_EQ(0, atomic_load(&parked_bad));
}

/* ---- Words changed by code the worker runs between polls -------------------------
 * The worker loop knows its thread's words after a coroutine's poll that
 * yielded, and resumes the next coroutine without reading them again, as
 * long as nothing but its own queue operations ran in between
 * (task/stackful.h). These two put something in between that changes them
 * and keeps them (as a future's poll may, above): a waker run by the timer
 * driver of a busy worker, and a lint hook run at the end of a
 * coroutine's poll. On one worker, two coroutines and a probe future in a
 * round: once the change is made, the probe must keep seeing it after
 * the coroutines' switches (each fails if the worker loop kept its words
 * known past that point: the coroutine side would put the old ones back). */
#define CSR_SIDE 0x3f80u        /* round down */
#define CW_SIDE 0x047fu

static atomic_int side_done, side_bad, side_fired, side_checked;

static int side_co(void *arg)
{
    (void)arg;
    while (!atomic_load(&side_done))
        ASSERT_OK(weft_co_yield());
    return 0;
}

/* the probe: after the change, the worker keeps the changed words */
typedef struct side_probe {
    weft_async co;
    int i;
    weft_yield y;
    weft_sleep s;
    int rounds;
    bool timer;              /* arm sleeps whose waker changes the words */
} side_probe;

#define SIDE_ROUNDS 6
#define SIDE_COROS 6

static void side_wake(const void *data)
{
    (void)data;
    csr_set(CSR_SIDE);       /* on the worker thread, by the timer driver */
    cw_set(CW_SIDE);
    atomic_store(&side_fired, 1);
}

static weft_waker side_clone(const void *data);
static void side_nop(const void *data)
{
    (void)data;
}
static const weft_waker_vtable side_vt = { side_clone, side_wake, side_wake, side_nop };
static weft_waker side_clone(const void *data)
{
    return (weft_waker){ data, &side_vt };
}
static const weft_waker side_waker = { NULL, &side_vt };

/* Arm a sleep whose waker is ours: the worker that drives the timer runs it */
static void side_arm(side_probe *f, weft_context *cx)
{
    weft_context mine = { &side_waker, cx->priv };

    weft_sleep_init(&f->s, 2);
    if (weft_sleep_poll(&f->s, &mine) == WEFT_READY)
        side_wake(NULL);
}

static weft_poll side_probe_poll(side_probe *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    if (f->timer)
        side_arm(f, cx);
    for (f->i = 0; f->i < 1000000 && f->rounds < SIDE_ROUNDS; f->i++) {
        WEFT_YIELD(&f->co, &f->y, cx);
        if (atomic_load(&side_fired)) {
            /* the change happened on this thread before this poll, and
             * coroutines have switched in and out since */
            if (csr_get() != CSR_SIDE || cw_get() != CW_SIDE)
                atomic_fetch_add(&side_bad, 1);
            atomic_fetch_add(&side_checked, 1);
            if (!f->timer)
                break;               /* a lint fires once per task */
            /* again: back to the default words (this poll keeps them:
             * the next coroutine reads them), a new timer */
            csr_set(CSR_DEFAULT);
            cw_set(CW_DEFAULT);
            atomic_store(&side_fired, 0);
            f->rounds++;
            weft_sleep_drop(&f->s);
            side_arm(f, cx);
        }
    }
    atomic_store(&side_done, 1);
    if (f->timer)
        weft_sleep_drop(&f->s);
    csr_set(CSR_DEFAULT);
    cw_set(CW_DEFAULT);
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(side_probe, side_probe_poll, NULL);

/* a coroutine with one long poll (the long-poll lint's hook runs at its end) */
static int long_poll_co(void *arg)
{
    (void)arg;
    for (int k = 0; k < 200 && !atomic_load(&side_fired); k++) {
        uint64_t t0 = harness_now_ns();

        while (harness_now_ns() - t0 < 3000000u)
            ;                /* 3 ms in one poll (preempted: no lint; again) */
        ASSERT_OK(weft_co_yield());
    }
    return side_co(NULL);
}

static void side_hook(const weft_lint *l, void *arg)
{
    (void)arg;
    if (l->kind == WEFT_LINT_LONG_POLL)
        side_wake(NULL);
}

static void side_body(bool timer)
{
    weft_runtime *rt = ct_runtime(1);
    weft_join *j[SIDE_COROS + 1];

    atomic_store(&side_done, 0);
    atomic_store(&side_bad, 0);
    atomic_store(&side_fired, 0);
    atomic_store(&side_checked, 0);
    if (!timer) {
        ASSERT_OK(weft_runtime_set_poll_timing(rt, true));
        ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){
                                                 .mask = 1u << WEFT_LINT_LONG_POLL,
                                                 .long_poll_ns = 1000000u,
                                                 .hook = side_hook }));
    }
    /* the round: SIDE_COROS coroutines, then the probe: a change made
     * after any but the last coroutine's poll is followed by a coroutine's
     * (a timer: (SIDE_COROS - 1) / (SIDE_COROS + 1) of the time, in each of
     * SIDE_ROUNDS rounds; the lint: always, after the first one's poll) */
    ASSERT_OK(weft_go(rt, timer ? side_co : long_poll_co, NULL, &j[0]));
    for (int i = 1; i < SIDE_COROS; i++)
        ASSERT_OK(weft_go(rt, side_co, NULL, &j[i]));
    ASSERT_OK(weft_spawn(rt, &side_probe_future, &(side_probe){ .timer = timer },
                         &j[SIDE_COROS]));
    for (int i = 0; i <= SIDE_COROS; i++) {
        ASSERT_OK(weft_join_wait(j[i], NULL));
        weft_join_drop(j[i]);
    }
    if (atomic_load(&side_checked) == 0) {
        CT_FREE(rt);
        harness_skip("the change never happened (every long poll was preempted)");
    }
    ASSERT(atomic_load(&side_checked) > 0);
    ASSERT_EQ(0, atomic_load(&side_bad));
    CT_FREE(rt);
}
#endif

/* Where the promise does not exist in the build (not x86-64, or a switch
 * built without the FP words or on ucontext), skipped, not passed. */
TEST(driver_words_read_again_each_session)
{
#ifdef FP_CHECKED
    sessions_body();
#else
    harness_skip("FP control words are checked on x86-64 with the assembly switch only");
#endif
}

TEST(a_future_keeps_the_words_it_set_past_coroutines)
{
#ifdef FP_CHECKED
    leak_body();
#else
    harness_skip("FP control words are checked on x86-64 with the assembly switch only");
#endif
}

TEST(drop_outside_a_session_keeps_the_callers_words)
{
#ifdef FP_CHECKED
    drop_body();
#else
    harness_skip("FP control words are checked on x86-64 with the assembly switch only");
#endif
}

TEST(a_timer_wakers_words_stay_past_coroutines)
{
#ifdef FP_CHECKED
    side_body(true);
#else
    harness_skip("FP control words are checked on x86-64 with the assembly switch only");
#endif
}

TEST(a_lint_hooks_words_stay_past_coroutines)
{
#ifdef FP_CHECKED
    side_body(false);
#else
    harness_skip("FP control words are checked on x86-64 with the assembly switch only");
#endif
}
