// SPDX-License-Identifier: MIT
/* Audit 7 of weft/signal.h, with coroutines (weft/coro.h) as the waiters,
 * on both I/O backends:
 *   - a signal sent to the process before any weft_signal catches it (but
 *     blocked, as "Masks" asks) is received by the object made later, with
 *     its sender;
 *   - two objects (in two runtimes) catching one signal, a coroutine
 *     parked on each: one signal wakes exactly one of them with it; the
 *     other stays parked (no error, no spurious result) and takes the next;
 *   - the object freed while a coroutine awaits it: -EBADF;
 *   - the coroutine's runtime shut down while it awaits a signal: the call
 *     returns -ECANCELED, and the signal that comes later is not lost (a
 *     receive takes it only when it completes). */
#include "stream_test.h"

#include <signal.h>
#include <unistd.h>

#define WAIT_MS 20000u

static const int usr1[] = { SIGUSR1 };

/* the parked coroutine's receive */
typedef struct waiter {
    weft_signal *sig;
    weft_signal_info info;
    atomic_int parked, done;
    int err, res;
} waiter;

static int wait_signal(void *arg)
{
    waiter *w = arg;
    weft_signal_recv r;

    weft_signal_recv_init(&r, w->sig, &w->info);
    w->res = -12345;
    atomic_store(&w->parked, 1);
    w->err = weft_co_await(&weft_signal_recv_future, &r, &w->res);
    atomic_store(&w->done, 1);
    return 0;
}

static weft_runtime *rt_two(void)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    return rt;
}

TEST(signal_sent_before_the_object_exists_is_received)
{
    weft_runtime *rt;
    weft_signal *s = NULL;
    weft_signal_info info;

    ASSERT_OK(weft_signal_block(usr1, 1));      /* at the top, before threads */
    rt = rt_two();
    ASSERT_OK(kill(getpid(), SIGUSR1));         /* pending, nobody catches it yet */
    ASSERT_OK(weft_signal_new(rt, usr1, 1, &s));
    memset(&info, 0, sizeof(info));
    ASSERT_EQ(SIGUSR1, weft_signal_try_recv(s, &info));
    ASSERT_EQ(SIGUSR1, info.signo);
    ASSERT_EQ(SI_USER, info.code);
    ASSERT_EQ(getpid(), info.pid);
    ASSERT_EQ(-EAGAIN, weft_signal_try_recv(s, NULL));
    /* and with a coroutine parked first */
    {
        waiter w = { .sig = s };
        weft_join *j = NULL;

        ASSERT_OK(kill(getpid(), SIGUSR1));
        ASSERT_OK(weft_go(rt, wait_signal, &w, &j));
        ASSERT_OK(weft_join_wait(j, NULL));
        ASSERT_EQ(0, w.err);
        ASSERT_EQ(SIGUSR1, w.res);
        weft_join_drop(j);
    }
    weft_signal_free(s);
    weft_runtime_free(rt);
}

TEST(two_objects_one_signal_wakes_exactly_one)
{
    weft_runtime *ra, *rb;
    weft_signal *sa = NULL, *sb = NULL;
    waiter wa = { 0 }, wb = { 0 };
    weft_join *ja = NULL, *jb = NULL;
    uint64_t until;
    waiter *first, *second;

    ASSERT_OK(weft_signal_block(usr1, 1));
    ra = rt_two();
    rb = rt_two();
    ASSERT_OK(weft_signal_new(ra, usr1, 1, &sa));
    ASSERT_OK(weft_signal_new(rb, usr1, 1, &sb));
    wa.sig = sa;
    wb.sig = sb;
    ASSERT_OK(weft_go(ra, wait_signal, &wa, &ja));
    ASSERT_OK(weft_go(rb, wait_signal, &wb, &jb));
    ASSERT(harness_wait_flag((volatile int *)&wa.parked, WAIT_MS));
    ASSERT(harness_wait_flag((volatile int *)&wb.parked, WAIT_MS));
    usleep(20000);                                /* both most likely parked */
    ASSERT_OK(kill(getpid(), SIGUSR1));
    until = weft_now_ms() + WAIT_MS;
    while (!atomic_load(&wa.done) && !atomic_load(&wb.done)) {
        ASSERT(weft_now_ms() < until);
        usleep(1000);
    }
    first = atomic_load(&wa.done) ? &wa : &wb;
    second = first == &wa ? &wb : &wa;
    ASSERT_EQ(0, first->err);
    ASSERT_EQ(SIGUSR1, first->res);
    usleep(50000);                                /* the other one keeps waiting */
    ASSERT(!atomic_load(&second->done));   /* (its res is read only once done) */
    ASSERT_OK(kill(getpid(), SIGUSR1));
    until = weft_now_ms() + WAIT_MS;
    while (!atomic_load(&second->done)) {
        ASSERT(weft_now_ms() < until);
        usleep(1000);
    }
    ASSERT_EQ(0, second->err);
    ASSERT_EQ(SIGUSR1, second->res);
    ASSERT_OK(weft_join_wait(ja, NULL));
    ASSERT_OK(weft_join_wait(jb, NULL));
    weft_join_drop(ja);
    weft_join_drop(jb);
    ASSERT_EQ(-EAGAIN, weft_signal_try_recv(sa, NULL));
    ASSERT_EQ(-EAGAIN, weft_signal_try_recv(sb, NULL));
    weft_signal_free(sa);
    weft_signal_free(sb);
    weft_runtime_free(ra);
    weft_runtime_free(rb);
}

TEST(object_freed_under_a_parked_coroutine)
{
    weft_runtime *rt;
    weft_signal *s = NULL;
    waiter w = { 0 };
    weft_join *j = NULL;

    ASSERT_OK(weft_signal_block(usr1, 1));
    rt = rt_two();
    ASSERT_OK(weft_signal_new(rt, usr1, 1, &s));
    w.sig = s;
    ASSERT_OK(weft_go(rt, wait_signal, &w, &j));
    ASSERT(harness_wait_flag((volatile int *)&w.parked, WAIT_MS));
    usleep(5000);
    weft_signal_free(s);
    ASSERT_OK(weft_join_wait(j, NULL));
    ASSERT_EQ(0, w.err);
    ASSERT_EQ(-EBADF, w.res);
    weft_join_drop(j);
    weft_runtime_free(rt);
}

TEST(shutdown_under_a_parked_coroutine_loses_no_signal)
{
    weft_runtime *rt, *rt2;
    weft_signal *s = NULL, *s2 = NULL;
    waiter w = { 0 };
    weft_join *j = NULL;
    int out = 0;

    ASSERT_OK(weft_signal_block(usr1, 1));
    rt = rt_two();
    rt2 = rt_two();
    ASSERT_OK(weft_signal_new(rt, usr1, 1, &s));
    w.sig = s;
    ASSERT_OK(weft_go(rt, wait_signal, &w, &j));
    ASSERT(harness_wait_flag((volatile int *)&w.parked, WAIT_MS));
    usleep(5000);
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(-ECANCELED, weft_join_try(j, &out));
    ASSERT_EQ(-ECANCELED, w.err);
    ASSERT_EQ(-12345, w.res);
    weft_join_drop(j);
    weft_signal_free(s);
    /* the next one is still there for a new object */
    ASSERT_OK(kill(getpid(), SIGUSR1));
    ASSERT_OK(weft_signal_new(rt2, usr1, 1, &s2));
    ASSERT_EQ(SIGUSR1, weft_signal_try_recv(s2, NULL));
    weft_signal_free(s2);
    weft_runtime_free(rt);
    weft_runtime_free(rt2);
}
