/* SPDX-License-Identifier: MIT */
/* Removing fd watches, freeing timers and freeing loops while their
 * callbacks run (issue 9, item 5).
 *
 * From a plain thread, weft_fdwatch_remove(), weft_timer_free() and
 * weft_loop_free() wait until a running callback of that watch / timer /
 * loop has returned, and no callback starts after they return: so the
 * caller may then close the descriptor and free the callback's argument.
 * Before, they returned while the callback could still be running (a
 * callback then read freed memory or a closed, possibly reused, descriptor).
 * Each callback here checks, on entry and on return, that its watch was not
 * removed yet (the remover sets the flag after remove returns), and its
 * argument is heap memory freed right after removal (ASan). The callbacks
 * sleep now and then to widen the window.
 *
 * From inside a callback of the same loop, the same calls take effect at
 * once and return without waiting (for the caller itself): removing its own
 * watch, another watch of the loop, freeing its own timer, freeing the
 * loop. These would deadlock if they waited. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#define WAIT_MS 30000u

static weft_runtime *new_rt(unsigned workers)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD, .workers = workers };

    ASSERT_OK(weft_runtime_new(&rt, &opt));
    return rt;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000L };

    nanosleep(&ts, NULL);
}

static void wait_for(atomic_int *v, int want)
{
    uint64_t until = weft_now_ms() + WAIT_MS;

    while (atomic_load(v) < want) {
        ASSERT(weft_now_ms() < until);
        sleep_us(100);
    }
}

/* A readable pipe: one byte in it, never read, so a READABLE watch fires
 * again after every return (level-triggered). */
static void readable_pipe(int p[2])
{
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    ASSERT_EQ(1, write(p[1], "x", 1));
}

/* ---- remove from a plain thread while callbacks fire ------------------------------ */
typedef struct wstate {
    atomic_int removed;               /* set by the remover after remove returned */
    atomic_int calls;
} wstate;

static void check_not_removed(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    wstate *st = arg;
    int n;

    (void)w, (void)fd, (void)events;
    ASSERT_EQ(0, atomic_load(&st->removed));
    n = atomic_fetch_add(&st->calls, 1);
    if (n % 3 == 1)
        sleep_us(200);                /* be running when the remover comes */
    ASSERT_EQ(0, atomic_load(&st->removed));
}

#define NW 4

TEST(remove_from_thread_waits_for_running_callback)
{
    size_t rounds = harness_scale(60);

    for (size_t r = 0; r < rounds; r++) {
        weft_runtime *rt = new_rt(2);
        weft_loop *l;
        weft_fdwatch *w[NW];
        wstate *st[NW];
        int p[NW][2];

        ASSERT_OK(weft_loop_new(rt, &l));
        for (int i = 0; i < NW; i++) {
            st[i] = calloc(1, sizeof(*st[i]));
            ASSERT(st[i] != NULL);
            readable_pipe(p[i]);
            ASSERT_OK(weft_fdwatch_add(l, p[i][0], WEFT_READABLE, check_not_removed, st[i],
                                       &w[i]));
        }
        for (int i = 0; i < NW; i++) {
            wait_for(&st[i]->calls, 2 + (int)(r % 3));
            ASSERT_OK(weft_fdwatch_remove(w[i]));
            /* as fdwatch.h tells users: now close the descriptor and free
             * the argument */
            atomic_store(&st[i]->removed, 1);
            close(p[i][0]);
            close(p[i][1]);
            sleep_us(300);            /* a late callback would see the flag */
            free(st[i]);
        }
        weft_loop_free(l);
        weft_runtime_free(rt);
    }
}

/* ---- timers: free from a plain thread while the callback runs ------------------- */
typedef struct tstate {
    atomic_int freed;
    atomic_int calls;
} tstate;

static void timer_check(weft_timer *t, void *arg)
{
    tstate *st = arg;
    int n;

    ASSERT_EQ(0, atomic_load(&st->freed));
    n = atomic_fetch_add(&st->calls, 1);
    if (n % 3 == 1)
        sleep_us(200);
    ASSERT_EQ(0, atomic_load(&st->freed));
    weft_timer_arm(t, 0);             /* again at once (-EINVAL once freed) */
}

TEST(timer_free_from_thread_waits_for_running_callback)
{
    size_t rounds = harness_scale(60);

    for (size_t r = 0; r < rounds; r++) {
        weft_runtime *rt = new_rt(2);
        weft_loop *l;
        weft_timer *t;
        tstate *st = calloc(1, sizeof(*st));

        ASSERT(st != NULL);
        ASSERT_OK(weft_loop_new(rt, &l));
        ASSERT_OK(weft_timer_new(l, timer_check, st, &t));
        ASSERT_OK(weft_timer_arm(t, 0));
        wait_for(&st->calls, 2 + (int)(r % 3));
        weft_timer_free(t);
        atomic_store(&st->freed, 1);
        sleep_us(300);
        free(st);
        weft_loop_free(l);
        weft_runtime_free(rt);
    }
}

/* ---- loop_free from a plain thread waits too ---------------------------------------- */
static atomic_int loop_freed;
static atomic_int self_started, self_done;

static void check_loop_alive(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    int *n = arg;

    (void)w, (void)fd, (void)events;
    ASSERT_EQ(0, atomic_load(&loop_freed));
    if ((*n)++ % 3 == 1)
        sleep_us(200);
    ASSERT_EQ(0, atomic_load(&loop_freed));
}

/* Removes its own watch, then keeps running for a while: it is no longer in
 * the loop's list, but loop_free must still wait for it. */
static void remove_self_then_linger(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    (void)fd, (void)events, (void)arg;
    ASSERT_OK(weft_fdwatch_remove(w));
    atomic_store(&self_started, 1);
    sleep_us(20000);
    ASSERT_EQ(0, atomic_load(&loop_freed));
    atomic_store(&self_done, 1);
}

TEST(loop_free_from_thread_waits_for_running_callbacks)
{
    size_t rounds = harness_scale(40);

    for (size_t r = 0; r < rounds; r++) {
        weft_runtime *rt = new_rt(2);
        weft_loop *l;
        weft_fdwatch *w[NW], *ws;
        int p[NW][2], ps[2], *n = calloc(NW, sizeof(int));

        ASSERT(n != NULL);
        atomic_store(&loop_freed, 0);
        atomic_store(&self_started, 0);
        atomic_store(&self_done, 0);
        ASSERT_OK(weft_loop_new(rt, &l));
        for (int i = 0; i < NW; i++) {
            readable_pipe(p[i]);
            ASSERT_OK(weft_fdwatch_add(l, p[i][0], WEFT_READABLE, check_loop_alive, &n[i],
                                       &w[i]));
        }
        if (r % 2 == 0) {
            readable_pipe(ps);
            ASSERT_OK(weft_fdwatch_add(l, ps[0], WEFT_READABLE, remove_self_then_linger,
                                       NULL, &ws));
            wait_for(&self_started, 1);
        } else {
            sleep_us(1000 + 100 * (unsigned)r);
        }
        weft_loop_free(l);
        atomic_store(&loop_freed, 1);
        if (r % 2 == 0) {
            ASSERT_EQ(1, atomic_load(&self_done));
            close(ps[0]), close(ps[1]);
        }
        for (int i = 0; i < NW; i++)
            close(p[i][0]), close(p[i][1]);
        sleep_us(300);
        free(n);
        weft_runtime_free(rt);
    }
}

/* ---- from inside a callback of the same loop: no waiting, no deadlock ------------- */
static weft_fdwatch *wa, *wb;
static weft_timer *tt;
static weft_loop *lp;
static atomic_int a_calls, b_calls, t_calls, done;

static void b_cb(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    (void)w, (void)fd, (void)events, (void)arg;
    atomic_fetch_add(&b_calls, 1);
}

/* Removes the other watch, then its own: both return at once. */
static void a_cb(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    (void)fd, (void)events, (void)arg;
    ASSERT_EQ(0, atomic_fetch_add(&a_calls, 1));
    ASSERT_OK(weft_fdwatch_remove(wb));
    ASSERT_OK(weft_fdwatch_remove(w));
    ASSERT_EQ(-EINVAL, weft_fdwatch_modify(w, WEFT_READABLE));  /* valid until we return */
    atomic_store(&done, 1);
}

TEST(remove_from_own_loop_callback_does_not_wait)
{
    weft_runtime *rt = new_rt(2);
    int pa[2], pb[2], b0;

    atomic_store(&done, 0);
    ASSERT_OK(weft_loop_new(rt, &lp));
    readable_pipe(pb);
    ASSERT_OK(weft_fdwatch_add(lp, pb[0], WEFT_READABLE, b_cb, NULL, &wb));
    wait_for(&b_calls, 1);
    readable_pipe(pa);
    ASSERT_OK(weft_fdwatch_add(lp, pa[0], WEFT_READABLE, a_cb, NULL, &wa));
    wait_for(&done, 1);
    b0 = atomic_load(&b_calls);
    sleep_us(20000);
    ASSERT_EQ(1, atomic_load(&a_calls));      /* never again */
    ASSERT_EQ(b0, atomic_load(&b_calls));     /* nor b after its removal */
    weft_loop_free(lp);
    close(pa[0]), close(pa[1]), close(pb[0]), close(pb[1]);
    weft_runtime_free(rt);
}

static void t_cb(weft_timer *t, void *arg)
{
    (void)arg;
    atomic_fetch_add(&t_calls, 1);
    weft_timer_free(t);               /* its own: at once */
    atomic_store(&done, 1);
}

/* Frees its own loop (watch, timer and all) from inside a callback. */
static void free_loop_cb(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    (void)w, (void)fd, (void)events, (void)arg;
    atomic_fetch_add(&a_calls, 1);
    weft_loop_free(lp);
    atomic_store(&done, 1);
}

TEST(free_own_timer_and_loop_from_callback_does_not_wait)
{
    weft_runtime *rt = new_rt(2);
    int pa[2];

    atomic_store(&done, 0);
    atomic_store(&a_calls, 0);
    ASSERT_OK(weft_loop_new(rt, &lp));
    ASSERT_OK(weft_timer_new(lp, t_cb, NULL, &tt));
    ASSERT_OK(weft_timer_arm(tt, 0));
    wait_for(&done, 1);
    sleep_us(10000);
    ASSERT_EQ(1, atomic_load(&t_calls));

    atomic_store(&done, 0);
    readable_pipe(pa);
    ASSERT_OK(weft_fdwatch_add(lp, pa[0], WEFT_READABLE, free_loop_cb, NULL, &wa));
    wait_for(&done, 1);
    sleep_us(10000);
    ASSERT_EQ(1, atomic_load(&a_calls));
    close(pa[0]), close(pa[1]);
    weft_runtime_free(rt);
}

/* ---- modify in a loop must not starve the watch --------------------------------
 * A thread calling weft_fdwatch_modify() with the same interest again and
 * again while the descriptor becomes readable: the callback still comes.
 * On io_uring each such call used to replace the armed poll, so every
 * completion came stale and the watch never fired (this test hung until its
 * watchdog under WEFT_IO_BACKEND=uring); the same interest now re-arms
 * nothing. The modifier stops before the callback removes the watch (a
 * modify after remove is the caller's error). (A modify that changes the
 * interest between the one-shot event and its notify queues the watch again
 * while its callback runs: net.fdwatch_lifetimes holds that window open.) */
typedef struct spam {
    weft_fdwatch *w;
    atomic_int stop, stopped, cb_done;
} spam;

static void spam_self_remove(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    spam *sp = arg;

    (void)fd, (void)events;
    ASSERT_EQ(0, atomic_load(&sp->cb_done));   /* removed: no second call */
    atomic_store(&sp->stop, 1);
    wait_for(&sp->stopped, 1);
    ASSERT_EQ(0, weft_fdwatch_remove(w));
    atomic_store(&sp->cb_done, 1);
}

static void *spam_modifier(void *arg)
{
    spam *sp = arg;

    while (!atomic_load(&sp->stop))
        weft_fdwatch_modify(sp->w, WEFT_READABLE);
    atomic_store(&sp->stopped, 1);
    return NULL;
}

TEST(modify_in_a_loop_from_thread_does_not_starve_the_watch)
{
    size_t rounds = harness_scale(200);
    weft_runtime *rt = new_rt(2);
    weft_loop *l;

    ASSERT_OK(weft_loop_new(rt, &l));
    for (size_t i = 0; i < rounds; i++) {
        spam sp = { 0 };
        pthread_t th;
        int p[2];

        ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
        ASSERT_OK(weft_fdwatch_add(l, p[0], WEFT_READABLE, spam_self_remove, &sp, &sp.w));
        /* the modifier runs; the byte makes the watch fire while it does */
        ASSERT_EQ(0, pthread_create(&th, NULL, spam_modifier, &sp));
        sleep_us(50);
        ASSERT_EQ(1, write(p[1], "x", 1));
        wait_for(&sp.cb_done, 1);
        pthread_join(th, NULL);
        close(p[0]);
        close(p[1]);
    }
    weft_loop_free(l);
    weft_runtime_free(rt);
}
