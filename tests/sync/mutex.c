/* SPDX-License-Identifier: MIT */
/* Async mutex: try_lock/unlock, FIFO hand-over, dropping a lock future in
 * every state, misuse, allocation faults, and mutual exclusion under
 * contention on a runtime. */
#include <string.h>

#include "sync_test.h"

#define CX(name, cw)                                                          \
    weft_waker name##_w = cw_waker(cw);                                       \
    weft_context name = weft_context_from_waker(&name##_w)

TEST(mutex_try_lock_unlock)
{
    weft_mutex *m;

    ASSERT_OK(weft_mutex_new(&m));
    ASSERT_OK(weft_mutex_try_lock(m));
    ASSERT_EQ(-EAGAIN, weft_mutex_try_lock(m));
    ASSERT_OK(weft_mutex_unlock(m));
    ASSERT_EQ(-EINVAL, weft_mutex_unlock(m));        /* not locked */
    ASSERT_OK(weft_mutex_try_lock(m));
    ASSERT_OK(weft_mutex_unlock(m));
    weft_mutex_free(m);
}

/* FIFO hand-over; a waiter dropped in every state passes the mutex on. */
TEST(mutex_fifo_and_drop_in_every_state)
{
    weft_mutex *m;
    weft_mutex_lock l0, l1, l2, l3;
    cwaker c1 = { 0 }, c2 = { 0 }, c3 = { 0 };
    CX(cx1, &c1);
    CX(cx2, &c2);
    CX(cx3, &c3);
    int res;

    ASSERT_OK(weft_mutex_new(&m));
    weft_mutex_lock_init(&l0, m);
    ASSERT_EQ(WEFT_READY, weft_mutex_lock_poll(&l0, &cx1, &res));
    ASSERT_OK(res);
    weft_mutex_lock_drop(&l0);                       /* after READY: still held */
    ASSERT_EQ(-EAGAIN, weft_mutex_try_lock(m));
    weft_mutex_lock_init(&l1, m);
    weft_mutex_lock_init(&l2, m);
    weft_mutex_lock_init(&l3, m);
    ASSERT_EQ(WEFT_PENDING, weft_mutex_lock_poll(&l1, &cx1, &res));
    ASSERT_EQ(WEFT_PENDING, weft_mutex_lock_poll(&l2, &cx2, &res));
    ASSERT_EQ(WEFT_PENDING, weft_mutex_lock_poll(&l3, &cx3, &res));
    weft_mutex_lock_drop(&l2);                       /* pending */
    ASSERT_OK(weft_mutex_unlock(m));                 /* handed to l1 */
    ASSERT_EQ(1, cw_wakes(&c1));
    ASSERT_EQ(-EAGAIN, weft_mutex_try_lock(m));
    weft_mutex_lock_drop(&l1);                       /* handed, not observed */
    ASSERT_EQ(1, cw_wakes(&c3));                     /* passed on to l3 */
    ASSERT_EQ(WEFT_READY, weft_mutex_lock_poll(&l3, &cx3, &res));
    ASSERT_OK(res);
    weft_mutex_lock_drop(&l3);
    ASSERT_OK(weft_mutex_unlock(m));
    ASSERT_OK(weft_mutex_try_lock(m));
    ASSERT_OK(weft_mutex_unlock(m));
    ASSERT_CW_BALANCED(&c1);
    ASSERT_CW_BALANCED(&c2);
    ASSERT_CW_BALANCED(&c3);
    weft_mutex_free(m);
}

TEST(mutex_misuse_and_alloc_fault)
{
    weft_mutex *m = NULL;
    weft_mutex_lock l;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = 0;

    ASSERT_EQ(-EINVAL, weft_mutex_new(NULL));
    ASSERT_EQ(-EINVAL, weft_mutex_try_lock(NULL));
    ASSERT_EQ(-EINVAL, weft_mutex_unlock(NULL));
    weft_mutex_free(NULL);
    weft_mutex_lock_init(&l, NULL);
    ASSERT_EQ(WEFT_READY, weft_mutex_lock_poll(&l, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_mutex_lock_drop(&l);
    weft_mutex_lock_drop(&l);
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_mutex_new(&m));
    ASSERT(m == NULL);
    ASSERT_EQ(0, harness_live());
    harness_fail_alloc_at(0);
}

/* 1,000 tasks x 1,000 lock/unlock (scaled) on two workers: a plain counter
 * incremented inside the lock ends exact, and nobody is ever inside with
 * another. Every few rounds the holder yields inside the critical section,
 * so waiters really queue. */
struct mx_shared {
    weft_mutex *m;
    unsigned long long counter;      /* guarded by m, deliberately not atomic */
    atomic_int inside, overlap, fail;
};

typedef struct mx_user {
    weft_async co;
    struct mx_shared *sh;
    unsigned i, iters;
    int res;
    weft_mutex_lock l;
    weft_yield y;
} mx_user;

static weft_poll mx_user_poll(mx_user *u, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&u->co);
    for (u->i = 0; u->i < u->iters; u->i++) {
        weft_mutex_lock_init(&u->l, u->sh->m);
        WEFT_AWAIT(&u->co, weft_mutex_lock_poll(&u->l, cx, &u->res));
        weft_mutex_lock_drop(&u->l);
        if (u->res != 0)
            atomic_fetch_add(&u->sh->fail, 1);
        if (atomic_exchange(&u->sh->inside, 1))
            atomic_fetch_add(&u->sh->overlap, 1);
        u->sh->counter++;
        if (u->i % 64 == 0)
            WEFT_YIELD(&u->co, &u->y, cx);
        atomic_store(&u->sh->inside, 0);
        if (weft_mutex_unlock(u->sh->m) != 0)
            atomic_fetch_add(&u->sh->fail, 1);
    }
    WEFT_END(&u->co);
}

static void mx_user_drop(mx_user *u)
{
    weft_mutex_lock_drop(&u->l);
}

WEFT_DEFINE_FUTURE_VOID(mx_user, mx_user_poll, mx_user_drop);

TEST(mutex_mutual_exclusion_under_contention)
{
    weft_runtime *rt = st_runtime(2);
    struct mx_shared sh;
    unsigned tasks = (unsigned)harness_scale(1000), iters = (unsigned)harness_scale(1000);

    memset(&sh, 0, sizeof(sh));
    ASSERT_OK(weft_mutex_new(&sh.m));
    for (unsigned t = 0; t < tasks; t++)
        ASSERT_OK(weft_spawn_detached(rt, &mx_user_future,
                                      &(mx_user){ .sh = &sh, .iters = iters }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&sh.fail));
    ASSERT_EQ(0, atomic_load(&sh.overlap));
    ASSERT_EQ((unsigned long long)tasks * iters, sh.counter);
    ASSERT_OK(weft_mutex_try_lock(sh.m));            /* left unlocked */
    ASSERT_OK(weft_mutex_unlock(sh.m));
    weft_runtime_free(rt);
    weft_mutex_free(sh.m);
}
