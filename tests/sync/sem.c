/* SPDX-License-Identifier: MIT */
/* Semaphore: try/release, FIFO order, close, dropping acquires in every
 * state (permits conserved), a random-cancellation property test, misuse,
 * allocation faults, and tasks on a runtime. */
#include <string.h>

#include "sync_test.h"

#define CX(name, cw)                                                          \
    weft_waker name##_w = cw_waker(cw);                                       \
    weft_context name = weft_context_from_waker(&name##_w)

TEST(sem_try_and_release)
{
    weft_sem *s;

    ASSERT_OK(weft_sem_new(&s, 3));
    ASSERT_OK(weft_sem_try_acquire(s, 2));
    ASSERT_EQ(1, weft_sem_available(s));
    ASSERT_EQ(-EAGAIN, weft_sem_try_acquire(s, 2));
    ASSERT_OK(weft_sem_try_acquire(s, 0));
    ASSERT_OK(weft_sem_release(s, 2));
    ASSERT_EQ(3, weft_sem_available(s));
    ASSERT_EQ(-EINVAL, weft_sem_release(s, WEFT_SEM_MAX_PERMITS)); /* overflow */
    ASSERT_EQ(3, weft_sem_available(s));
    weft_sem_free(s);
}

/* Strict FIFO: a waiting large acquire holds back later small ones. */
TEST(sem_fifo_order)
{
    weft_sem *s;
    weft_sem_acquire big, small;
    cwaker cb = { 0 }, cs = { 0 };
    CX(cxb, &cb);
    CX(cxs, &cs);
    int res;

    ASSERT_OK(weft_sem_new(&s, 1));
    weft_sem_acquire_init(&big, s, 3);
    weft_sem_acquire_init(&small, s, 1);
    ASSERT_EQ(WEFT_PENDING, weft_sem_acquire_poll(&big, &cxb, &res));
    ASSERT_EQ(WEFT_PENDING, weft_sem_acquire_poll(&small, &cxs, &res)); /* 1 free, but big is first */
    ASSERT_EQ(-EAGAIN, weft_sem_try_acquire(s, 1));
    ASSERT_OK(weft_sem_release(s, 1));
    ASSERT_EQ(0, cw_wakes(&cb));
    ASSERT_OK(weft_sem_release(s, 1));               /* 3 free: big is served */
    ASSERT_EQ(1, cw_wakes(&cb));
    ASSERT_EQ(0, cw_wakes(&cs));
    ASSERT_EQ(0, weft_sem_available(s));
    ASSERT_EQ(WEFT_READY, weft_sem_acquire_poll(&big, &cxb, &res));
    ASSERT_OK(res);
    ASSERT_OK(weft_sem_release(s, 3));               /* small served, 2 left */
    ASSERT_EQ(1, cw_wakes(&cs));
    ASSERT_EQ(2, weft_sem_available(s));
    ASSERT_EQ(WEFT_READY, weft_sem_acquire_poll(&small, &cxs, &res));
    ASSERT_OK(res);
    weft_sem_acquire_drop(&big);
    weft_sem_acquire_drop(&small);
    ASSERT_OK(weft_sem_release(s, 1));
    ASSERT_EQ(3, weft_sem_available(s));
    ASSERT_CW_BALANCED(&cb);
    ASSERT_CW_BALANCED(&cs);
    weft_sem_free(s);
}

/* Dropped in every state: never polled, pending (at the head: those behind
 * get through), granted but not polled (its permits go to the next). */
TEST(sem_acquire_dropped_in_every_state_conserves_permits)
{
    weft_sem *s;
    weft_sem_acquire a0, a1, a2, a3;
    cwaker c1 = { 0 }, c2 = { 0 }, c3 = { 0 };
    CX(cx1, &c1);
    CX(cx2, &c2);
    CX(cx3, &c3);
    int res;

    ASSERT_OK(weft_sem_new(&s, 2));
    weft_sem_acquire_init(&a0, s, 1);
    weft_sem_acquire_drop(&a0);                      /* never polled */
    ASSERT_EQ(2, weft_sem_available(s));
    weft_sem_acquire_init(&a1, s, 5);
    weft_sem_acquire_init(&a2, s, 2);
    weft_sem_acquire_init(&a3, s, 2);
    ASSERT_EQ(WEFT_PENDING, weft_sem_acquire_poll(&a1, &cx1, &res)); /* head, too big */
    ASSERT_EQ(WEFT_PENDING, weft_sem_acquire_poll(&a2, &cx2, &res));
    ASSERT_EQ(WEFT_PENDING, weft_sem_acquire_poll(&a3, &cx3, &res));
    weft_sem_acquire_drop(&a1);                      /* pending head leaves */
    ASSERT_EQ(1, cw_wakes(&c2));                     /* a2 granted */
    ASSERT_EQ(0, weft_sem_available(s));
    weft_sem_acquire_drop(&a2);                      /* granted, not observed */
    ASSERT_EQ(1, cw_wakes(&c3));                     /* its permits went to a3 */
    ASSERT_EQ(WEFT_READY, weft_sem_acquire_poll(&a3, &cx3, &res));
    ASSERT_OK(res);
    weft_sem_acquire_drop(&a3);
    ASSERT_EQ(0, weft_sem_available(s));
    ASSERT_OK(weft_sem_release(s, 2));
    ASSERT_EQ(2, weft_sem_available(s));
    ASSERT_CW_BALANCED(&c1);
    ASSERT_CW_BALANCED(&c2);
    ASSERT_CW_BALANCED(&c3);
    weft_sem_free(s);
}

TEST(sem_close_fails_pending_acquires)
{
    weft_sem *s;
    weft_sem_acquire a[40], granted;
    cwaker c = { 0 };
    CX(cx, &c);
    int res;

    ASSERT_OK(weft_sem_new(&s, 0));
    weft_sem_acquire_init(&granted, s, 1);
    ASSERT_EQ(WEFT_PENDING, weft_sem_acquire_poll(&granted, &cx, &res));
    for (int i = 0; i < 40; i++) {                   /* more than one wake batch */
        weft_sem_acquire_init(&a[i], s, 1);
        ASSERT_EQ(WEFT_PENDING, weft_sem_acquire_poll(&a[i], &cx, &res));
    }
    ASSERT_OK(weft_sem_release(s, 1));               /* granted to the first */
    weft_sem_close(s);
    weft_sem_close(s);
    ASSERT_EQ(41, cw_wakes(&c));
    ASSERT_EQ(WEFT_READY, weft_sem_acquire_poll(&granted, &cx, &res));
    ASSERT_OK(res);                                  /* it had its permit before */
    for (int i = 0; i < 40; i++) {
        ASSERT_EQ(WEFT_READY, weft_sem_acquire_poll(&a[i], &cx, &res));
        ASSERT_EQ(-EPIPE, res);
        weft_sem_acquire_drop(&a[i]);
    }
    weft_sem_acquire_drop(&granted);
    ASSERT_EQ(-EPIPE, weft_sem_try_acquire(s, 1));
    weft_sem_acquire_init(&granted, s, 1);
    ASSERT_EQ(WEFT_READY, weft_sem_acquire_poll(&granted, &cx, &res));
    ASSERT_EQ(-EPIPE, res);
    weft_sem_acquire_drop(&granted);
    ASSERT_OK(weft_sem_release(s, 1));               /* allowed after close */
    ASSERT_EQ(1, weft_sem_available(s));
    ASSERT_CW_BALANCED(&c);
    weft_sem_free(s);
}

/* Property: random acquires (1..4 permits), polls, drops in every state,
 * releases and try_acquires; permits are conserved at every step
 * (available + held <= total, with equality once every future is gone), and
 * driving only woken futures completes every acquire. Seed printed on
 * failure. */
#define PS 12
TEST(sem_permits_conserved_under_random_cancellation)
{
    const uint64_t seed0 = st_seed(0x5e3a9f0d17ULL);
    uint64_t seed = seed0;
    const size_t total = 6;
    weft_sem *s;
    struct {
        bool live, polled;
        weft_sem_acquire a;
        size_t n;
        cwaker c;
        int seen;
    } sl[PS];
    size_t held = 0;
    int steps = (int)harness_scale(200000);
    unsigned long long completed = 0;

#define PFAIL(...)                                                             \
    do {                                                                      \
        fprintf(stderr, "seed %#llx: ", (unsigned long long)seed0);           \
        harness_fail(__FILE__, __LINE__, __VA_ARGS__);                        \
    } while (0)

    memset(sl, 0, sizeof(sl));
    ASSERT_OK(weft_sem_new(&s, total));
    for (int step = 0; step < steps; step++) {
        int i = (int)(st_rand(&seed) % PS), op = (int)(st_rand(&seed) % 10);
        weft_waker w = cw_waker(&sl[i].c);
        weft_context cx = weft_context_from_waker(&w);
        int res = 0;

        if (op == 0 && held) {                      /* release some */
            size_t k = 1 + st_rand(&seed) % held;

            ASSERT_OK(weft_sem_release(s, k));
            held -= k;
        } else if (op == 1) {
            size_t k = 1 + st_rand(&seed) % 3;

            if (weft_sem_try_acquire(s, k) == 0)
                held += k;
        } else if (!sl[i].live) {
            sl[i].live = true;
            sl[i].polled = false;
            sl[i].n = 1 + st_rand(&seed) % 4;
            weft_sem_acquire_init(&sl[i].a, s, sl[i].n);
        } else if (op == 2) {
            weft_sem_acquire_drop(&sl[i].a);        /* cancel, any state */
            sl[i].live = false;
        } else {
            sl[i].seen = cw_wakes(&sl[i].c);
            sl[i].polled = true;
            if (weft_sem_acquire_poll(&sl[i].a, &cx, &res) == WEFT_READY) {
                if (res != 0)
                    PFAIL("step %d: acquire result %d", step, res);
                held += sl[i].n;
                completed++;
                weft_sem_acquire_drop(&sl[i].a);
                sl[i].live = false;
            }
        }
        if (weft_sem_available(s) + held > total)
            PFAIL("step %d: %zu available + %zu held > %zu", step,
                  weft_sem_available(s), held, total);
    }
    /* Give everything back, then drive only woken (or never polled)
     * futures: every acquire must complete, without a lost wake. */
    ASSERT_OK(weft_sem_release(s, held));
    held = 0;
    for (;;) {
        bool any_live = false, progress = false;

        for (int i = 0; i < PS; i++) {
            weft_waker w = cw_waker(&sl[i].c);
            weft_context cx = weft_context_from_waker(&w);
            int res = 0;

            if (!sl[i].live)
                continue;
            any_live = true;
            if (sl[i].polled && cw_wakes(&sl[i].c) == sl[i].seen)
                continue;
            progress = true;
            sl[i].seen = cw_wakes(&sl[i].c);
            sl[i].polled = true;
            if (weft_sem_acquire_poll(&sl[i].a, &cx, &res) == WEFT_READY) {
                if (res != 0)
                    PFAIL("drain: acquire result %d", res);
                weft_sem_acquire_drop(&sl[i].a);
                sl[i].live = false;
                ASSERT_OK(weft_sem_release(s, sl[i].n));
            }
        }
        if (!any_live)
            break;
        if (!progress)
            PFAIL("acquires wait with %zu permits free and no wake", weft_sem_available(s));
    }
    if (weft_sem_available(s) != total)
        PFAIL("%zu permits at the end, %zu expected", weft_sem_available(s), total);
    ASSERT_LE(completed, (unsigned long long)steps / 100); /* it did exercise it */
    for (int i = 0; i < PS; i++)
        ASSERT_CW_BALANCED(&sl[i].c);
    weft_sem_free(s);
#undef PFAIL
}

TEST(sem_misuse_and_alloc_fault)
{
    weft_sem *s = NULL;
    weft_sem_acquire a;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = 0;

    ASSERT_EQ(-EINVAL, weft_sem_new(NULL, 1));
    ASSERT_EQ(-EINVAL, weft_sem_new(&s, WEFT_SEM_MAX_PERMITS + 1));
    ASSERT_EQ(-EINVAL, weft_sem_try_acquire(NULL, 1));
    ASSERT_EQ(-EINVAL, weft_sem_release(NULL, 1));
    ASSERT_EQ(0, weft_sem_available(NULL));
    weft_sem_close(NULL);
    weft_sem_free(NULL);
    weft_sem_acquire_init(&a, NULL, 1);
    ASSERT_EQ(WEFT_READY, weft_sem_acquire_poll(&a, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_sem_acquire_drop(&a);
    ASSERT_OK(weft_sem_new(&s, 1));
    weft_sem_acquire_init(&a, s, WEFT_SEM_MAX_PERMITS + 1);
    res = 0;
    ASSERT_EQ(WEFT_READY, weft_sem_acquire_poll(&a, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_sem_acquire_drop(&a);
    weft_sem_free(s);
    s = NULL;
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_sem_new(&s, 1));
    ASSERT(s == NULL);
    ASSERT_EQ(0, harness_live());
    harness_fail_alloc_at(0);
}

/* Tasks: at most `permits` of them inside at once. */
struct sem_shared {
    weft_sem *s;
    atomic_int inside, max_inside, fail;
};

typedef struct sem_user {
    weft_async co;
    struct sem_shared *sh;
    unsigned i, iters;
    int res;
    weft_sem_acquire a;
    weft_yield y;
} sem_user;

static weft_poll sem_user_poll(sem_user *u, weft_context *cx, void *out)
{
    int now, max;

    (void)out;
    WEFT_BEGIN(&u->co);
    for (u->i = 0; u->i < u->iters; u->i++) {
        weft_sem_acquire_init(&u->a, u->sh->s, 1);
        WEFT_AWAIT(&u->co, weft_sem_acquire_poll(&u->a, cx, &u->res));
        weft_sem_acquire_drop(&u->a);
        if (u->res != 0)
            atomic_fetch_add(&u->sh->fail, 1);
        now = atomic_fetch_add(&u->sh->inside, 1) + 1;
        max = atomic_load(&u->sh->max_inside);
        while (now > max && !atomic_compare_exchange_weak(&u->sh->max_inside, &max, now))
            ;
        if (u->i % 4 == 0)
            WEFT_YIELD(&u->co, &u->y, cx);           /* hold it across a yield */
        atomic_fetch_sub(&u->sh->inside, 1);
        if (weft_sem_release(u->sh->s, 1) != 0)
            atomic_fetch_add(&u->sh->fail, 1);
    }
    WEFT_END(&u->co);
}

static void sem_user_drop(sem_user *u)
{
    weft_sem_acquire_drop(&u->a);
}

WEFT_DEFINE_FUTURE_VOID(sem_user, sem_user_poll, sem_user_drop);

TEST(sem_tasks_bounded_concurrency)
{
    weft_runtime *rt = st_runtime(2);
    struct sem_shared sh;
    unsigned tasks = 64, iters = (unsigned)harness_scale(2000);

    memset(&sh, 0, sizeof(sh));
    ASSERT_OK(weft_sem_new(&sh.s, 3));
    for (unsigned t = 0; t < tasks; t++)
        ASSERT_OK(weft_spawn_detached(rt, &sem_user_future,
                                      &(sem_user){ .sh = &sh, .iters = iters }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&sh.fail));
    ASSERT_LE(3, atomic_load(&sh.max_inside));
    ASSERT_EQ(3, weft_sem_available(sh.s));
    weft_runtime_free(rt);
    weft_sem_free(sh.s);
}

/* Tasks aborted at random points (waiting in line, handed permits but not
 * yet polled, holding them across a yield): once every task is gone, every
 * permit is back. A task's own drop releases what it holds; the acquire
 * future's drop gives back what was handed to it. Seed printed on failure. */
typedef struct sem_churner {
    weft_async co;
    weft_sem *s;
    unsigned i, iters;
    size_t n, holding;
    int res;
    weft_sem_acquire a;
    weft_yield y;
} sem_churner;

static weft_poll sem_churner_poll(sem_churner *u, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&u->co);
    for (u->i = 0; u->i < u->iters; u->i++) {
        weft_sem_acquire_init(&u->a, u->s, u->n);
        WEFT_AWAIT(&u->co, weft_sem_acquire_poll(&u->a, cx, &u->res));
        weft_sem_acquire_drop(&u->a);
        if (u->res == 0)
            u->holding = u->n;
        WEFT_YIELD(&u->co, &u->y, cx);
        weft_sem_release(u->s, u->holding);
        u->holding = 0;
    }
    WEFT_END(&u->co);
}

static void sem_churner_drop(sem_churner *u)
{
    weft_sem_acquire_drop(&u->a);
    if (u->holding)
        weft_sem_release(u->s, u->holding);
}

WEFT_DEFINE_FUTURE_VOID(sem_churner, sem_churner_poll, sem_churner_drop);

TEST(sem_random_task_aborts_conserve_permits)
{
    const uint64_t seed0 = st_seed(0xab0e7ULL);
    uint64_t seed = seed0;
    weft_runtime *rt = st_runtime(2);
    enum { T = 48 };
    weft_join *j[T];
    weft_sem *s;
    unsigned rounds = (unsigned)harness_scale(40), cancelled = 0;

    ASSERT_OK(weft_sem_new(&s, 4));
    for (unsigned round = 0; round < rounds; round++) {
        for (int t = 0; t < T; t++)
            ASSERT_OK(weft_spawn(rt, &sem_churner_future,
                                 &(sem_churner){ .s = s, .iters = 200,
                                                 .n = 1 + st_rand(&seed) % 4 },
                                 &j[t]));
        for (int k = 0; k < T / 2; k++) {
            int t = (int)(st_rand(&seed) % T);

            for (unsigned spin = (unsigned)(st_rand(&seed) % 2000); spin; spin--)
                sched_yield();
            weft_join_abort(j[t]);
        }
        for (int t = 0; t < T; t++) {
            int err = weft_join_wait(j[t], NULL);

            if (err != 0 && err != -ECANCELED)
                harness_fail(__FILE__, __LINE__, "seed %#llx: join %d",
                             (unsigned long long)seed0, err);
            cancelled += err == -ECANCELED;
            weft_join_drop(j[t]);
        }
        if (weft_sem_available(s) != 4)
            harness_fail(__FILE__, __LINE__, "seed %#llx round %u: %zu permits, 4 expected",
                         (unsigned long long)seed0, round, weft_sem_available(s));
    }
    printf("%u of %u tasks cancelled\n", cancelled, rounds * T);
    weft_runtime_free(rt);
    weft_sem_free(s);
}
