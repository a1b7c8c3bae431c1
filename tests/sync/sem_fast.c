/* SPDX-License-Identifier: MIT */
/* The semaphore's and mutex's lock-free fast paths (src/sync/sem.c): plain
 * threads on try_acquire/release racing acquire futures on a runtime,
 * try_lock/unlock threads racing lock futures (mutual exclusion, FIFO
 * hand-over observed without the lock), close racing fast takes, and the
 * word's bookkeeping through hand-overs. Run under TSan too. */
#include <string.h>

#include "sync_test.h"

#define CX(name, cw)                                                          \
    weft_waker name##_w = cw_waker(cw);                                       \
    weft_context name = weft_context_from_waker(&name##_w)

/* A hand-over leaves the mutex held; free permits show nothing in between;
 * a dropped grant passes it on; the last unlock frees it. */
TEST(mutex_hand_over_keeps_it_held)
{
    weft_mutex *m;
    weft_mutex_lock a, b;
    cwaker ca = { 0 }, cb = { 0 };
    CX(cxa, &ca);
    CX(cxb, &cb);
    int res;

    ASSERT_OK(weft_mutex_new(&m));
    ASSERT_OK(weft_mutex_try_lock(m));
    weft_mutex_lock_init(&a, m);
    weft_mutex_lock_init(&b, m);
    ASSERT_EQ(WEFT_PENDING, weft_mutex_lock_poll(&a, &cxa, &res));
    ASSERT_EQ(WEFT_PENDING, weft_mutex_lock_poll(&b, &cxb, &res));
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(weft_mutex_unlock(m));             /* handed to a */
        ASSERT_EQ(i + 1, cw_wakes(&ca));
        ASSERT_EQ(-EAGAIN, weft_mutex_try_lock(m));
        ASSERT_EQ(WEFT_READY, weft_mutex_lock_poll(&a, &cxa, &res));
        ASSERT_OK(res);
        weft_mutex_lock_drop(&a);
        weft_mutex_lock_init(&a, m);                 /* a again, behind b */
        ASSERT_EQ(WEFT_PENDING, weft_mutex_lock_poll(&a, &cxa, &res));
        ASSERT_OK(weft_mutex_unlock(m));             /* handed to b */
        ASSERT_EQ(i + 1, cw_wakes(&cb));
        ASSERT_EQ(WEFT_READY, weft_mutex_lock_poll(&b, &cxb, &res));
        weft_mutex_lock_drop(&b);
        weft_mutex_lock_init(&b, m);
        ASSERT_EQ(WEFT_PENDING, weft_mutex_lock_poll(&b, &cxb, &res));
    }
    ASSERT_OK(weft_mutex_unlock(m));                 /* to a */
    weft_mutex_lock_drop(&a);                        /* granted, unobserved: to b */
    ASSERT_EQ(4, cw_wakes(&cb));
    weft_mutex_lock_drop(&b);                        /* granted, unobserved: freed */
    ASSERT_OK(weft_mutex_try_lock(m));               /* free, no waiter left */
    ASSERT_OK(weft_mutex_unlock(m));
    ASSERT_EQ(-EINVAL, weft_mutex_unlock(m));
    ASSERT_CW_BALANCED(&ca);
    ASSERT_CW_BALANCED(&cb);
    weft_mutex_free(m);
}

/* Releases under the lock still refuse to exceed the maximum, and a grant
 * that empties the line lets the fast paths back in. */
TEST(sem_slow_release_checks_max_and_reopens_fast_path)
{
    weft_sem *s;
    weft_sem_acquire a;
    cwaker c = { 0 };
    CX(cx, &c);
    int res;

    ASSERT_OK(weft_sem_new(&s, 1));
    weft_sem_acquire_init(&a, s, 3);
    ASSERT_EQ(WEFT_PENDING, weft_sem_acquire_poll(&a, &cx, &res));
    ASSERT_EQ(-EAGAIN, weft_sem_try_acquire(s, 1));  /* FIFO, though 1 is free */
    ASSERT_EQ(-EINVAL, weft_sem_release(s, WEFT_SEM_MAX_PERMITS));
    ASSERT_EQ(1, weft_sem_available(s));
    ASSERT_OK(weft_sem_release(s, 4));               /* 5 free: 3 granted */
    ASSERT_EQ(1, cw_wakes(&c));
    ASSERT_EQ(2, weft_sem_available(s));
    ASSERT_OK(weft_sem_try_acquire(s, 2));           /* the line is empty again */
    ASSERT_EQ(WEFT_READY, weft_sem_acquire_poll(&a, &cx, &res));
    ASSERT_OK(res);
    weft_sem_acquire_drop(&a);
    ASSERT_OK(weft_sem_release(s, 5));
    ASSERT_EQ(5, weft_sem_available(s));
    ASSERT_CW_BALANCED(&c);
    weft_sem_free(s);
}

/* ---- Threads and tasks together ------------------------------------------------ */
struct mixed {
    weft_sem *s;                  /* or NULL */
    weft_mutex *m;                /* or NULL */
    size_t permits;
    unsigned long long counter;   /* guarded by m */
    atomic_int inside, overlap, fail, stop;
};

static void enter(struct mixed *x)
{
    int now = atomic_fetch_add(&x->inside, 1) + 1;

    if ((size_t)now > x->permits)
        atomic_fetch_add(&x->overlap, 1);
    if (x->m)
        x->counter++;
}

static void leave(struct mixed *x)
{
    atomic_fetch_sub(&x->inside, 1);
}

static void *try_thread(void *p)
{
    struct mixed *x = p;

    for (unsigned i = 0; i < harness_scale(100000); i++) {
        int err;

        while ((err = x->m ? weft_mutex_try_lock(x->m) : weft_sem_try_acquire(x->s, 1)) ==
               -EAGAIN)
            sched_yield();
        if (err != 0) {
            atomic_fetch_add(&x->fail, 1);
            break;
        }
        enter(x);
        leave(x);
        if ((x->m ? weft_mutex_unlock(x->m) : weft_sem_release(x->s, 1)) != 0)
            atomic_fetch_add(&x->fail, 1);
    }
    return NULL;
}

typedef struct user {
    weft_async co;
    struct mixed *x;
    unsigned i;
    int res;
    weft_sem_acquire a;
    weft_mutex_lock l;
    weft_yield y;
} user;

static weft_poll user_poll(user *u, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&u->co);
    for (u->i = 0; u->i < harness_scale(20000); u->i++) {
        if (u->x->m) {
            weft_mutex_lock_init(&u->l, u->x->m);
            WEFT_AWAIT(&u->co, weft_mutex_lock_poll(&u->l, cx, &u->res));
            weft_mutex_lock_drop(&u->l);
        } else {
            weft_sem_acquire_init(&u->a, u->x->s, 1);
            WEFT_AWAIT(&u->co, weft_sem_acquire_poll(&u->a, cx, &u->res));
            weft_sem_acquire_drop(&u->a);
        }
        if (u->res != 0) {
            atomic_fetch_add(&u->x->fail, 1);
            break;
        }
        enter(u->x);
        if (u->i % 16 == 0)
            WEFT_YIELD(&u->co, &u->y, cx);          /* hold it across a yield */
        leave(u->x);
        if ((u->x->m ? weft_mutex_unlock(u->x->m) : weft_sem_release(u->x->s, 1)) != 0)
            atomic_fetch_add(&u->x->fail, 1);
    }
    WEFT_END(&u->co);
}

static void user_drop(user *u)
{
    weft_sem_acquire_drop(&u->a);
    weft_mutex_lock_drop(&u->l);
}

WEFT_DEFINE_FUTURE_VOID(user, user_poll, user_drop);

static void run_mixed(struct mixed *x)
{
    weft_runtime *rt = st_runtime(2);
    pthread_t th[2];
    unsigned tasks = 16;

    for (unsigned t = 0; t < tasks; t++)
        ASSERT_OK(weft_spawn_detached(rt, &user_future, &(user){ .x = x }));
    for (int i = 0; i < 2; i++)
        ASSERT_OK(pthread_create(&th[i], NULL, try_thread, x));
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    ASSERT_OK(weft_runtime_run(rt));
    weft_runtime_free(rt);
    ASSERT_EQ(0, atomic_load(&x->fail));
    ASSERT_EQ(0, atomic_load(&x->overlap));
    if (x->m)
        ASSERT_EQ(2 * harness_scale(100000) + tasks * harness_scale(20000), x->counter);
}

/* Two threads on try_lock/unlock and 16 tasks on lock futures share one
 * mutex: nobody is ever inside with another, no increment is lost, and it
 * ends unlocked. */
TEST(mutex_threads_and_tasks_exclude_each_other)
{
    struct mixed x;

    memset(&x, 0, sizeof(x));
    x.permits = 1;
    ASSERT_OK(weft_mutex_new(&x.m));
    run_mixed(&x);
    ASSERT_OK(weft_mutex_try_lock(x.m));
    ASSERT_OK(weft_mutex_unlock(x.m));
    weft_mutex_free(x.m);
}

/* The same on a semaphore of 3 permits: at most 3 inside, all 3 back. */
TEST(sem_threads_and_tasks_bounded_and_conserved)
{
    struct mixed x;

    memset(&x, 0, sizeof(x));
    x.permits = 3;
    ASSERT_OK(weft_sem_new(&x.s, 3));
    run_mixed(&x);
    ASSERT_EQ(3, weft_sem_available(x.s));
    weft_sem_free(x.s);
}

/* ---- Close racing fast takes ----------------------------------------------------- */
struct closer {
    weft_sem *s;
    atomic_int go;
    atomic_llong held;            /* permits taken and not given back */
    atomic_int after_epipe_ok;    /* a take succeeded after an -EPIPE */
};

static void *taker(void *p)
{
    struct closer *c = p;
    bool closed = false;

    while (!atomic_load(&c->go))
        ;
    for (unsigned i = 0; i < 20000; i++) {
        int err = weft_sem_try_acquire(c->s, 1);

        if (err == 0) {
            if (closed)
                atomic_fetch_add(&c->after_epipe_ok, 1);
            atomic_fetch_add(&c->held, 1);
            if (i % 2) {
                atomic_fetch_sub(&c->held, 1);
                weft_sem_release(c->s, 1);
            }
        } else if (err == -EPIPE) {
            closed = true;
        }
    }
    return NULL;
}

/* Threads take and give permits while the semaphore is closed under them:
 * once a thread saw -EPIPE it never takes again, and every permit is
 * accounted for (free + held == total). */
TEST(sem_close_races_fast_takes)
{
    for (unsigned round = 0; round < harness_scale(100); round++) {
        struct closer c;
        pthread_t th[2];

        memset(&c, 0, sizeof(c));
        ASSERT_OK(weft_sem_new(&c.s, 1000000));
        for (int i = 0; i < 2; i++)
            ASSERT_OK(pthread_create(&th[i], NULL, taker, &c));
        atomic_store(&c.go, 1);
        for (unsigned spin = round % 20; spin; spin--)
            sched_yield();
        weft_sem_close(c.s);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        ASSERT_EQ(0, atomic_load(&c.after_epipe_ok));
        ASSERT_EQ(-EPIPE, weft_sem_try_acquire(c.s, 1));
        ASSERT_EQ(1000000, (long long)weft_sem_available(c.s) + atomic_load(&c.held));
        weft_sem_free(c.s);
    }
}
