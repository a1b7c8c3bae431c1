/* SPDX-License-Identifier: MIT */
/* Notify: a notify_one before the wait is kept as a permit; notify_one wakes
 * the oldest; notify_all wakes every wait initialised before it; dropping a
 * chosen waiter passes the notification on; tasks on a runtime. */
#include "sync_test.h"

#define CX(name, cw)                                                          \
    weft_waker name##_w = cw_waker(cw);                                       \
    weft_context name = weft_context_from_waker(&name##_w)

TEST(notify_before_wait_is_not_lost)
{
    weft_notify *n;
    weft_notify_wait w;
    cwaker c = { 0 };
    CX(cx, &c);
    int res = 1;

    ASSERT_OK(weft_notify_new(&n));
    weft_notify_one(n);
    weft_notify_one(n);                              /* at most one permit */
    weft_notify_wait_init(&w, n);
    ASSERT_EQ(WEFT_READY, weft_notify_wait_poll(&w, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(WEFT_READY, weft_notify_wait_poll(&w, &cx, &res)); /* same answer */
    weft_notify_wait_drop(&w);
    weft_notify_wait_drop(&w);
    weft_notify_wait_init(&w, n);
    ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&w, &cx, &res)); /* permit used */
    weft_notify_one(n);
    ASSERT_EQ(1, cw_wakes(&c));
    ASSERT_EQ(WEFT_READY, weft_notify_wait_poll(&w, &cx, &res));
    weft_notify_wait_drop(&w);
    ASSERT_CW_BALANCED(&c);
    weft_notify_free(n);
}

TEST(notify_one_wakes_oldest_only)
{
    weft_notify *n;
    weft_notify_wait w1, w2;
    cwaker c1 = { 0 }, c2 = { 0 };
    CX(cx1, &c1);
    CX(cx2, &c2);
    int res;

    ASSERT_OK(weft_notify_new(&n));
    weft_notify_wait_init(&w1, n);
    weft_notify_wait_init(&w2, n);
    ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&w1, &cx1, &res));
    ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&w2, &cx2, &res));
    weft_notify_one(n);
    ASSERT_EQ(1, cw_wakes(&c1));
    ASSERT_EQ(0, cw_wakes(&c2));
    ASSERT_EQ(WEFT_READY, weft_notify_wait_poll(&w1, &cx1, &res));
    ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&w2, &cx2, &res));
    weft_notify_wait_drop(&w1);
    weft_notify_wait_drop(&w2);                      /* pending: leaves */
    weft_notify_wait_init(&w1, n);
    ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&w1, &cx1, &res)); /* no permit */
    weft_notify_wait_drop(&w1);
    ASSERT_CW_BALANCED(&c1);
    ASSERT_CW_BALANCED(&c2);
    weft_notify_free(n);
}

/* A waiter chosen by notify_one and dropped before it saw it passes the
 * notification to the next waiter, or back into the permit. */
TEST(notify_dropped_chosen_waiter_passes_on)
{
    weft_notify *n;
    weft_notify_wait w1, w2, w3;
    cwaker c1 = { 0 }, c2 = { 0 };
    CX(cx1, &c1);
    CX(cx2, &c2);
    int res;

    ASSERT_OK(weft_notify_new(&n));
    weft_notify_wait_init(&w1, n);
    weft_notify_wait_init(&w2, n);
    ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&w1, &cx1, &res));
    ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&w2, &cx2, &res));
    weft_notify_one(n);
    weft_notify_wait_drop(&w1);                      /* woken, not polled */
    ASSERT_EQ(1, cw_wakes(&c2));
    weft_notify_wait_drop(&w2);                      /* again: becomes the permit */
    weft_notify_wait_init(&w3, n);
    ASSERT_EQ(WEFT_READY, weft_notify_wait_poll(&w3, &cx1, &res));
    weft_notify_wait_drop(&w3);
    ASSERT_CW_BALANCED(&c1);
    ASSERT_CW_BALANCED(&c2);
    weft_notify_free(n);
}

/* notify_all: wakes every wait initialised before it, polled or not; a wait
 * initialised afterwards waits; no permit is stored. */
TEST(notify_all_wakes_earlier_waits_only)
{
    weft_notify *n;
    weft_notify_wait w[4], later;
    cwaker c = { 0 };
    CX(cx, &c);
    int res;

    ASSERT_OK(weft_notify_new(&n));
    for (int i = 0; i < 4; i++)
        weft_notify_wait_init(&w[i], n);
    for (int i = 0; i < 3; i++)                      /* w[3] is never polled first */
        ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&w[i], &cx, &res));
    weft_notify_all(n);
    ASSERT_EQ(3, cw_wakes(&c));
    weft_notify_wait_init(&later, n);
    ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&later, &cx, &res));
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(WEFT_READY, weft_notify_wait_poll(&w[i], &cx, &res));
        ASSERT_OK(res);
        weft_notify_wait_drop(&w[i]);
    }
    weft_notify_wait_drop(&later);
    weft_notify_wait_init(&later, n);
    ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&later, &cx, &res)); /* no permit */
    weft_notify_wait_drop(&later);
    ASSERT_CW_BALANCED(&c);
    weft_notify_free(n);
}

/* More waiters than one wake batch. */
TEST(notify_all_many)
{
    enum { N = 100 };
    weft_notify *n;
    static weft_notify_wait w[N];
    cwaker c = { 0 };
    CX(cx, &c);
    int res;

    ASSERT_OK(weft_notify_new(&n));
    for (int i = 0; i < N; i++) {
        weft_notify_wait_init(&w[i], n);
        ASSERT_EQ(WEFT_PENDING, weft_notify_wait_poll(&w[i], &cx, &res));
    }
    weft_notify_all(n);
    ASSERT_EQ(N, cw_wakes(&c));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(WEFT_READY, weft_notify_wait_poll(&w[i], &cx, &res));
        weft_notify_wait_drop(&w[i]);
    }
    ASSERT_CW_BALANCED(&c);
    weft_notify_free(n);
}

TEST(notify_misuse_and_alloc_fault)
{
    weft_notify *n = NULL;
    weft_notify_wait w;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = 0;

    ASSERT_EQ(-EINVAL, weft_notify_new(NULL));
    weft_notify_one(NULL);
    weft_notify_all(NULL);
    weft_notify_free(NULL);
    weft_notify_wait_init(&w, NULL);
    ASSERT_EQ(WEFT_READY, weft_notify_wait_poll(&w, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_notify_wait_drop(&w);
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_notify_new(&n));
    ASSERT(n == NULL);
    ASSERT_EQ(0, harness_live());
    harness_fail_alloc_at(0);
}

/* Ping-pong between a task and a plain thread: each round the thread
 * notifies once, maybe before the task waits (kept as a permit), maybe
 * after; the task acknowledges through a second notify. Nothing is lost. */
typedef struct pinger {
    weft_async co;
    weft_notify *ping, *pong;
    unsigned i, rounds;
    int res;
    weft_notify_wait w;
} pinger;

static weft_poll pinger_poll(pinger *p, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&p->co);
    for (p->i = 0; p->i < p->rounds; p->i++) {
        weft_notify_wait_init(&p->w, p->ping);
        WEFT_AWAIT(&p->co, weft_notify_wait_poll(&p->w, cx, &p->res));
        weft_notify_wait_drop(&p->w);
        weft_notify_one(p->pong);
    }
    WEFT_END(&p->co);
}

static void pinger_drop(pinger *p)
{
    weft_notify_wait_drop(&p->w);
}

WEFT_DEFINE_FUTURE_VOID(pinger, pinger_poll, pinger_drop);

/* The thread side waits with a by-hand wait and a thread-parking waker. */
struct parker {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int woken;
};

static void parker_wake_by_ref(const void *d)
{
    struct parker *p = (struct parker *)(uintptr_t)d;

    pthread_mutex_lock(&p->m);
    p->woken = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->m);
}

static void parker_noop(const void *d)
{
    (void)d;
}

static weft_waker parker_clone(const void *d);
static const weft_waker_vtable parker_vt = { parker_clone, parker_wake_by_ref,
                                             parker_wake_by_ref, parker_noop };

static weft_waker parker_clone(const void *d)
{
    return (weft_waker){ d, &parker_vt };
}

TEST(notify_ping_pong_task_and_thread)
{
    weft_runtime *rt = st_runtime(2);
    weft_notify *ping, *pong;
    struct parker pk = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
    weft_waker pw = { &pk, &parker_vt };
    weft_context cx = weft_context_from_waker(&pw);
    unsigned rounds = (unsigned)harness_scale(20000);
    weft_join *j;
    int res;

    ASSERT_OK(weft_notify_new(&ping));
    ASSERT_OK(weft_notify_new(&pong));
    ASSERT_OK(weft_spawn(rt, &pinger_future,
                         &(pinger){ .ping = ping, .pong = pong, .rounds = rounds }, &j));
    for (unsigned i = 0; i < rounds; i++) {
        weft_notify_wait w;

        weft_notify_one(ping);
        weft_notify_wait_init(&w, pong);
        while (weft_notify_wait_poll(&w, &cx, &res) == WEFT_PENDING) {
            pthread_mutex_lock(&pk.m);
            while (!pk.woken)
                pthread_cond_wait(&pk.cv, &pk.m);
            pk.woken = 0;
            pthread_mutex_unlock(&pk.m);
        }
        weft_notify_wait_drop(&w);
    }
    ASSERT_OK(weft_join_wait(j, NULL));
    weft_join_drop(j);
    weft_runtime_free(rt);
    weft_notify_free(ping);
    weft_notify_free(pong);
}

/* Waiting tasks aborted while notify_one runs: a notification handed to a
 * task that is then cancelled passes on, so every task that is not
 * cancelled completes (none hangs). All tasks wait before the first
 * notify_one (the stored permit holds one notification, not a count). */
static atomic_int nw_parked;

typedef struct nwaiter {
    weft_async co;
    weft_notify *n;
    int res;
    bool counted;
    weft_notify_wait w;
} nwaiter;

static weft_poll nwaiter_wait(nwaiter *f, weft_context *cx)
{
    weft_poll p = weft_notify_wait_poll(&f->w, cx, &f->res);

    if (p == WEFT_PENDING && !f->counted) {
        f->counted = true;
        atomic_fetch_add(&nw_parked, 1);            /* linked by now */
    }
    return p;
}

static weft_poll nwaiter_poll(nwaiter *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    weft_notify_wait_init(&f->w, f->n);
    WEFT_AWAIT(&f->co, nwaiter_wait(f, cx));
    WEFT_END(&f->co);
}

static void nwaiter_drop(nwaiter *f)
{
    weft_notify_wait_drop(&f->w);
}

WEFT_DEFINE_FUTURE_VOID(nwaiter, nwaiter_poll, nwaiter_drop);

TEST(notify_one_survives_aborted_waiters)
{
    const uint64_t seed0 = st_seed(0x407e1ULL);
    uint64_t seed = seed0;
    weft_runtime *rt = st_runtime(2);
    enum { T = 32 };
    weft_join *j[T];
    weft_notify *n;
    unsigned rounds = (unsigned)harness_scale(200);

    ASSERT_OK(weft_notify_new(&n));
    for (unsigned round = 0; round < rounds; round++) {
        bool aborted[T] = { false };

        atomic_store(&nw_parked, 0);
        for (int t = 0; t < T; t++)
            ASSERT_OK(weft_spawn(rt, &nwaiter_future, &(nwaiter){ .n = n }, &j[t]));
        ST_WAIT_UNTIL(atomic_load(&nw_parked) == T);
        for (int t = 0; t < T; t++) {
            int k = (int)(st_rand(&seed) % T);

            weft_notify_one(n);
            if (st_rand(&seed) % 2) {
                weft_join_abort(j[k]);
                aborted[k] = true;
            }
        }
        for (int t = 0; t < T; t++) {
            int err = weft_join_wait(j[t], NULL);

            if (err != 0 && !(err == -ECANCELED && aborted[t]))
                harness_fail(__FILE__, __LINE__, "seed %#llx: task %d: %d",
                             (unsigned long long)seed0, t, err);
            weft_join_drop(j[t]);
        }
        /* clear a leftover permit for the next round */
        {
            weft_notify_wait w;
            weft_waker nw = weft_waker_noop();
            weft_context cx = weft_context_from_waker(&nw);
            int res;

            weft_notify_wait_init(&w, n);
            (void)weft_notify_wait_poll(&w, &cx, &res);
            weft_notify_wait_drop(&w);
        }
    }
    weft_runtime_free(rt);
    weft_notify_free(n);
}
