/* SPDX-License-Identifier: MIT */
/* Coroutines: spawn and join (one, many across workers, detached, in a
 * current-thread runtime, block_on); awaiting sleep, yield, channels, a
 * oneshot, a future task's join, any descriptor and a bare poll function;
 * futures awaiting a coroutine's join; the FP control state follows the
 * coroutine; misuse; stacks are released. */
#include "coro_test.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

/* ---- spawn and join ---------------------------------------------------------- */
static int add_one(void *arg)
{
    return *(int *)arg + 1;
}

TEST(go_join_one)
{
    weft_runtime *rt = ct_runtime(2);
    weft_join *j;
    int x = 41, out = 0;

    ASSERT_OK(weft_go(rt, add_one, &x, &j));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(42, out);
    ASSERT(weft_join_is_complete(j));
    weft_join_drop(j);
    CT_FREE(rt);
}

static atomic_int yields_done;

static int yielder(void *arg)
{
    unsigned n = (unsigned)(uintptr_t)arg;

    for (unsigned i = 0; i < n; i++)
        ASSERT_OK(weft_co_yield());
    atomic_fetch_add(&yields_done, 1);
    return (int)n;
}

TEST(go_join_many_across_workers)
{
    weft_runtime *rt = ct_runtime(4);
    size_t n = harness_scale(2000);
    weft_join **js = calloc(n, sizeof(*js));
    long sum = 0, want = 0;

    ASSERT(js != NULL);
    for (size_t i = 0; i < n; i++) {
        ASSERT_OK(weft_go(rt, yielder, (void *)(uintptr_t)(i % 17), &js[i]));
        want += (long)(i % 17);
    }
    for (size_t i = 0; i < n; i++) {
        int out = -1;

        ASSERT_OK(weft_join_wait(js[i], &out));
        sum += out;
        weft_join_drop(js[i]);
    }
    ASSERT_EQ(want, sum);
    ASSERT_EQ((long)n, atomic_load(&yields_done));
    free(js);
    CT_FREE(rt);
}

TEST(go_detached_then_run)
{
    weft_runtime *rt = ct_runtime(2);
    size_t n = harness_scale(500);

    atomic_store(&yields_done, 0);
    for (size_t i = 0; i < n; i++)
        ASSERT_OK(weft_go_detached(rt, yielder, (void *)(uintptr_t)3));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ((long)n, atomic_load(&yields_done));
    ASSERT_EQ(0, (long)weft_runtime_active_tasks(rt));
    CT_FREE(rt);
}

TEST(current_thread_runtime)
{
    weft_runtime *rt = ct_current_thread();
    weft_join *j;
    int out = 0;

    atomic_store(&yields_done, 0);
    for (int i = 0; i < 10; i++)
        ASSERT_OK(weft_go_detached(rt, yielder, (void *)(uintptr_t)5));
    ASSERT_OK(weft_go(rt, yielder, (void *)(uintptr_t)7, &j));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(11, atomic_load(&yields_done));
    ASSERT_OK(weft_join_try(j, &out));
    ASSERT_EQ(7, out);
    weft_join_drop(j);
    CT_FREE(rt);
}

static int sleeper(void *arg)
{
    uint64_t t0 = weft_now_ms();
    int err;

    (void)arg;
    err = weft_co_sleep(20);
    if (err < 0)
        return err;
    return (int)(weft_now_ms() - t0);
}

TEST(block_on_sleep)
{
    weft_runtime *rt = ct_runtime(2);
    int took = -1;

    ASSERT_OK(weft_co_block_on(rt, sleeper, NULL, NULL, &took));
    ASSERT(took >= 20);
    CT_FREE(rt);

    rt = ct_current_thread();
    took = -1;
    ASSERT_OK(weft_co_block_on(rt, sleeper, NULL, NULL, &took));
    ASSERT(took >= 20);
    CT_FREE(rt);
}

/* ---- awaiting channels and oneshots --------------------------------------------- */
struct ping {
    weft_chan *to, *from;
    int rounds;
};

static int pinger(void *arg)
{
    struct ping *p = arg;

    for (int i = 0; i < p->rounds; i++) {
        int v = i, back = -1;

        ASSERT_OK(weft_co_chan_send(p->to, &v));
        ASSERT_OK(weft_co_chan_recv(p->from, &back));
        ASSERT_EQ(i + 1, back);
    }
    weft_chan_close(p->to);
    return p->rounds;
}

static int ponger(void *arg)
{
    struct ping *p = arg;
    int v, n = 0, err;

    while ((err = weft_co_chan_recv(p->to, &v)) == 0) {
        v++;
        ASSERT_OK(weft_co_chan_send(p->from, &v));
        n++;
    }
    ASSERT_EQ(-EPIPE, err);
    return n;
}

TEST(chan_ping_pong)
{
    weft_runtime *rt = ct_runtime(2);
    struct ping p = { NULL, NULL, (int)harness_scale(5000) };
    weft_join *a, *b;
    int ra = 0, rb = 0;

    ASSERT_OK(weft_chan_new(&p.to, sizeof(int), 1));
    ASSERT_OK(weft_chan_new(&p.from, sizeof(int), 1));
    ASSERT_OK(weft_go(rt, ponger, &p, &b));
    ASSERT_OK(weft_go(rt, pinger, &p, &a));
    ASSERT_OK(weft_join_wait(a, &ra));
    ASSERT_OK(weft_join_wait(b, &rb));
    ASSERT_EQ(p.rounds, ra);
    ASSERT_EQ(p.rounds, rb);
    weft_join_drop(a);
    weft_join_drop(b);
    weft_chan_drop(p.to);
    weft_chan_drop(p.from);
    CT_FREE(rt);
}

static int oneshot_waiter(void *arg)
{
    int v = 0, err = weft_co_oneshot_recv(arg, &v);

    return err < 0 ? err : v;
}

static void *oneshot_sender(void *arg)
{
    int v = 99;

    usleep(20000);
    weft_oneshot_send(arg, &v);
    return NULL;
}

TEST(oneshot_from_a_thread)
{
    weft_runtime *rt = ct_runtime(2);
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;
    weft_join *j;
    pthread_t th;
    int out = 0;

    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    ASSERT_OK(weft_go(rt, oneshot_waiter, rx, &j));
    ASSERT_EQ(0, pthread_create(&th, NULL, oneshot_sender, tx));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(99, out);
    pthread_join(th, NULL);
    weft_join_drop(j);
    weft_oneshot_rx_drop(rx);
    CT_FREE(rt);
}

/* ---- futures and coroutines mixed -------------------------------------------------- */
/* An async function: yields `n` times, outputs n * 10. Counts its drops. */
static atomic_int count_drops;

typedef struct counter {
    weft_async co;
    int n, i;
    weft_yield y;
} counter;

static weft_poll counter_poll(counter *c, weft_context *cx, void *out)
{
    WEFT_BEGIN(&c->co);
    for (c->i = 0; c->i < c->n; c->i++)
        WEFT_YIELD(&c->co, &c->y, cx);
    *(int *)out = c->n * 10;
    WEFT_END(&c->co);
}

static void counter_drop(counter *c)
{
    (void)c;
    atomic_fetch_add(&count_drops, 1);
}

WEFT_DEFINE_FUTURE_STATIC(counter, counter_poll, counter_drop, int);

static int await_descriptor(void *arg)
{
    counter c = { .n = 5 };
    int out = 0;

    (void)arg;
    ASSERT_OK(weft_co_await(&counter_future, &c, &out));
    ASSERT_EQ(50, out);
    ASSERT_EQ(1, atomic_load(&count_drops));       /* dropped by the await */
    return out;
}

TEST(await_any_descriptor)
{
    weft_runtime *rt = ct_runtime(2);
    int out = 0;

    atomic_store(&count_drops, 0);
    ASSERT_OK(weft_co_block_on(rt, await_descriptor, NULL, NULL, &out));
    ASSERT_EQ(50, out);
    CT_FREE(rt);
}

static weft_poll counter_thunk(void *self, weft_context *cx, void *out)
{
    return counter_poll(self, cx, out);
}

static void counter_thunk_drop(void *self)
{
    counter_drop(self);
}

static int await_fn(void *arg)
{
    counter c = { .n = 3 };
    int out = 0;

    (void)arg;
    ASSERT_OK(weft_co_await_fn(counter_thunk, counter_thunk_drop, &c, &out));
    return out;
}

TEST(await_poll_function)
{
    weft_runtime *rt = ct_runtime(1);
    int out = 0;

    atomic_store(&count_drops, 0);
    ASSERT_OK(weft_co_block_on(rt, await_fn, NULL, NULL, &out));
    ASSERT_EQ(30, out);
    ASSERT_EQ(1, atomic_load(&count_drops));
    CT_FREE(rt);
}

static int join_future_task(void *arg)
{
    weft_join *j;
    int out = 0;

    ASSERT_OK(weft_spawn(arg, &counter_future, &(counter){ .n = 4 }, &j));
    ASSERT_OK(weft_co_join(j, &out));
    weft_join_drop(j);
    return out;
}

TEST(coroutine_joins_future_task)
{
    weft_runtime *rt = ct_runtime(2);
    int out = 0;

    ASSERT_OK(weft_co_block_on(rt, join_future_task, rt, NULL, &out));
    ASSERT_EQ(40, out);
    CT_FREE(rt);
}

/* A future awaiting a coroutine: spawns one, awaits its join handle. */
typedef struct co_waiter {
    weft_async co;
    weft_runtime *rt;
    weft_join *j;
    int res, val;
} co_waiter;

static int slow_answer(void *arg)
{
    (void)arg;
    ASSERT_OK(weft_co_sleep(5));
    ASSERT_OK(weft_co_yield());
    return 7;
}

static weft_poll co_waiter_poll(co_waiter *w, weft_context *cx, void *out)
{
    WEFT_BEGIN(&w->co);
    ASSERT_OK(weft_go(w->rt, slow_answer, NULL, &w->j));
    WEFT_AWAIT(&w->co, weft_join_poll(w->j, cx, &w->res, &w->val));
    ASSERT_OK(w->res);
    *(int *)out = w->val * 6;
    WEFT_END(&w->co);
}

static void co_waiter_drop(co_waiter *w)
{
    weft_join_drop(w->j);
    w->j = NULL;
}

WEFT_DEFINE_FUTURE_STATIC(co_waiter, co_waiter_poll, co_waiter_drop, int);

TEST(future_awaits_coroutine)
{
    weft_runtime *rt = ct_runtime(2);
    int out = 0;

    ASSERT_OK(weft_block_on(rt, &co_waiter_future, &(co_waiter){ .rt = rt }, &out));
    ASSERT_EQ(42, out);
    CT_FREE(rt);
}

/* Coroutines spawning and joining coroutines, a few levels deep. */
static int tree(void *arg)
{
    int depth = (int)(intptr_t)arg, sum = 1;
    weft_join *kids[3];

    if (depth == 0)
        return 1;
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_go(weft_runtime_current(), tree, (void *)(intptr_t)(depth - 1), &kids[i]));
    for (int i = 0; i < 3; i++) {
        int out = 0;

        ASSERT_OK(weft_co_join(kids[i], &out));
        weft_join_drop(kids[i]);
        sum += out;
    }
    return sum;
}

TEST(coroutine_tree)
{
    weft_runtime *rt = ct_runtime(3);
    int out = 0;

    ASSERT_OK(weft_co_block_on(rt, tree, (void *)(intptr_t)4, NULL, &out));
    ASSERT_EQ(1 + 3 + 9 + 27 + 81, out);
    CT_FREE(rt);
}

/* ---- FP control state belongs to the coroutine (x86-64: mxcsr) -------------------
 * (not with -DWEFT_CO_NO_FP_SAVE=1, which leaves it out of the switch) */
#if defined(__x86_64__) && !(defined(WEFT_CO_NO_FP_SAVE) && WEFT_CO_NO_FP_SAVE) && \
    !WEFT_CO_UCONTEXT
#define FP_CHECKED 1
static int fp_rounding(void *arg)
{
    unsigned mine = (__builtin_ia32_stmxcsr() & ~0x6000u) | 0x4000u;   /* round up */

    (void)arg;
    __builtin_ia32_ldmxcsr(mine);
    for (int i = 0; i < 50; i++) {
        ASSERT_OK(weft_co_yield());
        ASSERT_EQ(0x4000, __builtin_ia32_stmxcsr() & 0x6000u);
    }
    return 0;
}

static int fp_default(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++) {
        ASSERT_EQ(0, __builtin_ia32_stmxcsr() & 0x6000u);
        ASSERT_OK(weft_co_yield());
    }
    return 0;
}

static void fp_control_body(void)
{
    weft_runtime *rt = ct_runtime(1);
    weft_join *a, *b;

    ASSERT_OK(weft_go(rt, fp_rounding, NULL, &a));
    ASSERT_OK(weft_go(rt, fp_default, NULL, &b));
    ASSERT_OK(weft_join_wait(a, NULL));
    ASSERT_OK(weft_join_wait(b, NULL));
    weft_join_drop(a);
    weft_join_drop(b);
    CT_FREE(rt);
}

/* The x87 control word and MXCSR's FTZ/DAZ bits, set by one coroutine,
 * stay its own across yields on two workers (migrations included), while
 * other coroutines and future tasks on the same workers keep the default. */
static unsigned short x87_cw(void)
{
    unsigned short cw;

    __asm__ __volatile__("fnstcw %0" : "=m"(cw));
    return cw;
}

static void x87_cw_set(unsigned short cw)
{
    __asm__ __volatile__("fldcw %0" : : "m"(cw));
}

#define CW_MINE 0x047fu      /* 24-bit precision, round down, all masked */
#define CSR_MINE 0x9f80u     /* FTZ | DAZ, all masked, round to nearest */

static int fp_x87_mine(void *arg)
{
    (void)arg;
    x87_cw_set(CW_MINE);
    __builtin_ia32_ldmxcsr(CSR_MINE);
    for (int i = 0; i < 300; i++) {
        ASSERT_OK(weft_co_yield());
        ASSERT_EQ(CW_MINE, x87_cw() & 0x0f7fu);
        ASSERT_EQ(CSR_MINE, __builtin_ia32_stmxcsr() & 0xffc0u);
    }
    return 0;
}

static int fp_x87_default(void *arg)
{
    (void)arg;
    for (int i = 0; i < 300; i++) {
        ASSERT_EQ(0x037fu, x87_cw() & 0x0f7fu);
        ASSERT_EQ(0x1f80u, __builtin_ia32_stmxcsr() & 0xffc0u);
        ASSERT_OK(weft_co_yield());
    }
    return 0;
}

typedef struct fp_fut {
    weft_async co;
    int i, bad;
    weft_yield y;
} fp_fut;

static weft_poll fp_fut_poll(fp_fut *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < 300; f->i++) {
        if ((x87_cw() & 0x0f7fu) != 0x037fu || (__builtin_ia32_stmxcsr() & 0xffc0u) != 0x1f80u)
            f->bad++;
        WEFT_YIELD(&f->co, &f->y, cx);
    }
    *(int *)out = f->bad;
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_STATIC(fp_fut, fp_fut_poll, NULL, int);

static void fp_x87_body(void)
{
    weft_runtime *rt = ct_runtime(2);
    weft_join *j[6];
    int bad = 0;

    ASSERT_OK(weft_go(rt, fp_x87_mine, NULL, &j[0]));
    ASSERT_OK(weft_go(rt, fp_x87_mine, NULL, &j[1]));
    ASSERT_OK(weft_go(rt, fp_x87_default, NULL, &j[2]));
    ASSERT_OK(weft_go(rt, fp_x87_default, NULL, &j[3]));
    ASSERT_OK(weft_spawn(rt, &fp_fut_future, &(fp_fut){ 0 }, &j[4]));
    ASSERT_OK(weft_spawn(rt, &fp_fut_future, &(fp_fut){ 0 }, &j[5]));
    for (int i = 0; i < 6; i++) {
        int out = 0;

        ASSERT_OK(weft_join_wait(j[i], i >= 4 ? &out : NULL));
        bad += out;
        weft_join_drop(j[i]);
    }
    ASSERT_EQ(0, bad);
    CT_FREE(rt);
}
#endif

/* Where the promise does not exist in the build (not x86-64, or a switch
 * built without the FP words or on ucontext), skipped, not passed. */
TEST(fp_control_follows_the_coroutine)
{
#ifdef FP_CHECKED
    fp_control_body();
#else
    harness_skip("FP control words are checked on x86-64 with the assembly switch only");
#endif
}

TEST(fp_x87_control_follows_the_coroutine_across_workers)
{
#ifdef FP_CHECKED
    fp_x87_body();
#else
    harness_skip("FP control words are checked on x86-64 with the assembly switch only");
#endif
}

/* ---- options, misuse ------------------------------------------------------------- */
static int big_frame(void *arg)
{
    volatile char buf[400 * 1024];

    buf[0] = 1;
    buf[sizeof(buf) - 1] = 2;
    (void)arg;
    ASSERT_OK(weft_co_yield());
    ASSERT_EQ(weft_co_name() ? 0 : 1, 0);
    ASSERT_EQ(0, strcmp(weft_co_name(), "big"));
    return buf[0] + buf[sizeof(buf) - 1];
}

TEST(stack_size_and_name_options)
{
    weft_runtime *rt = ct_runtime(2);
    weft_go_options opt = { .stack_size = 1024 * 1024, .name = "big" };
    weft_join *j;
    int out = 0;

    ASSERT_OK(weft_go_opt(rt, big_frame, NULL, &opt, &j));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(3, out);
    weft_join_drop(j);
    CT_FREE(rt);
}

TEST(misuse)
{
    weft_runtime *rt = ct_runtime(1);
    weft_join *j = NULL;
    weft_go_options tiny = { .stack_size = 1024 };
    weft_go_options huge = { .stack_size = (size_t)1 << 40 };
    weft_sleep s;
    int x = 1;

    ASSERT_EQ(-EINVAL, weft_go(NULL, add_one, &x, &j));
    ASSERT_EQ(-EINVAL, weft_go(rt, NULL, &x, &j));
    ASSERT_EQ(-EINVAL, weft_go(rt, add_one, &x, NULL));
    ASSERT_EQ(-EINVAL, weft_go_opt(rt, add_one, &x, &tiny, &j));
    ASSERT_EQ(-EINVAL, weft_go_opt(rt, add_one, &x, &huge, &j));
    ASSERT_EQ(-EINVAL, weft_go_group(NULL, add_one, &x, NULL));
    ASSERT_EQ(-EINVAL, weft_co_block_on(NULL, add_one, &x, NULL, NULL));
    ASSERT(j == NULL);
    /* not a coroutine */
    ASSERT(!weft_co_is_coroutine());
    ASSERT(!weft_co_cancelled());
    ASSERT(weft_co_name() == NULL);
    ASSERT_EQ(-EINVAL, weft_co_sleep(1));
    ASSERT_EQ(-EINVAL, weft_co_yield());
    ASSERT_EQ(-EINVAL, weft_co_join(NULL, NULL));
    weft_sleep_init(&s, 1);
    ASSERT_EQ(-EINVAL, weft_co_await(NULL, &s, NULL));
    ASSERT_EQ(-EINVAL, weft_co_await_fn(NULL, NULL, &s, NULL));
    atomic_store(&count_drops, 0);
    ASSERT_EQ(-EINVAL, weft_co_await(&counter_future, &(counter){ .n = 1 }, NULL));
    ASSERT_EQ(1, atomic_load(&count_drops));     /* dropped even so */
    /* after shutdown */
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(-ESHUTDOWN, weft_go(rt, add_one, &x, &j));
    ASSERT_EQ(-ESHUTDOWN, weft_go_detached(rt, add_one, &x));
    CT_FREE(rt);
}

/* Allocation faults: weft_go's one allocation (the task) fails cleanly and
 * the stack goes back. */
TEST(alloc_fault)
{
    weft_runtime *rt = ct_runtime(1);
    weft_join *j;
    int x = 1, out = 0, err;

    for (size_t k = 1;; k++) {
        harness_fail_alloc_at(k);
        err = weft_go(rt, add_one, &x, &j);
        harness_fail_alloc_at(0);
        if (err == 0)
            break;
        ASSERT_EQ(-ENOMEM, err);
    }
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(2, out);
    weft_join_drop(j);
    CT_FREE(rt);
}

/* ---- stacks are reused and released ---------------------------------------------- */
static int spawn_many_in_turn(void *arg)
{
    long *max_mapped = arg;

    for (int i = 0; i < 1000; i++) {
        weft_join *j;
        int x = i, out = 0;

        ASSERT_OK(weft_go(weft_runtime_current(), add_one, &x, &j));
        ASSERT_OK(weft_co_join(j, &out));
        ASSERT_EQ(i + 1, out);
        weft_join_drop(j);
        if (weft__co_stacks_mapped() > *max_mapped)
            *max_mapped = weft__co_stacks_mapped();
    }
    return 0;
}

TEST(stacks_are_reused_and_released)
{
    weft_runtime *rt = ct_runtime(1);
    long max_mapped = 0;

    ASSERT_OK(weft_co_block_on(rt, spawn_many_in_turn, &max_mapped, NULL, NULL));
    /* the driver's stack and one or two children's, not a thousand */
    ASSERT_LE(4, max_mapped);
    ASSERT(weft__co_stacks_mapped() > 0);     /* cached by the worker */
    CT_FREE(rt);                              /* its exit unmaps them */
}
