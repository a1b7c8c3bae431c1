// SPDX-License-Identifier: MIT
/* A fifth look at weft/fdwatch.h beyond lifetimes (public API only): the
 * events a callback gets are the interest plus WEFT_HANGUP and nothing
 * else, a hang-up on a write end, interest 0 stays silent through a
 * hang-up, modify from the callback, bad and closed descriptors. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#define WAIT_MS 20000u

static weft_runtime *new_rt(void)
{
    weft_runtime *rt;

    ASSERT_EQ(0, weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    return rt;
}

static void wait_for(atomic_int *v, int want)
{
    for (unsigned i = 0; i < WAIT_MS && atomic_load(v) < want; i++)
        usleep(1000);
    ASSERT(atomic_load(v) >= want);
}

/* Records every callback's events; stops the watch (interest 0) so that a
 * level-triggered condition does not call it for ever. */
typedef struct rec {
    atomic_int calls;
    atomic_uint all;                  /* OR of every events seen */
    atomic_uint last;
    atomic_int bad;                   /* events outside interest + HANGUP */
    unsigned interest;
} rec;

static void rec_cb(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    rec *r = arg;

    (void)fd;
    if (events & ~(r->interest | WEFT_HANGUP))
        atomic_fetch_add(&r->bad, 1);
    if (events == 0)
        atomic_fetch_add(&r->bad, 1);
    atomic_fetch_or(&r->all, events);
    atomic_store(&r->last, events);
    ASSERT_OK(weft_fdwatch_modify(w, 0));
    r->interest = 0;
    atomic_fetch_add(&r->calls, 1);
}

/* A pipe's write end, full, watched for WRITABLE: closing the read end is
 * a hang-up (EPOLLERR on Linux), delivered as WRITABLE | HANGUP, never
 * READABLE. */
TEST(hangup_on_a_write_end_is_writable_and_hangup)
{
    weft_runtime *rt = new_rt();
    weft_loop *l = NULL;
    weft_fdwatch *w = NULL;
    rec r = { .interest = WEFT_WRITABLE };
    char buf[4096];
    int p[2];

    memset(buf, 'x', sizeof(buf));
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    while (write(p[1], buf, sizeof(buf)) > 0)
        ;
    ASSERT_OK(weft_loop_new(rt, &l));
    ASSERT_OK(weft_fdwatch_add(l, p[1], WEFT_WRITABLE, rec_cb, &r, &w));
    close(p[0]);
    wait_for(&r.calls, 1);
    ASSERT_EQ(0, atomic_load(&r.bad));
    ASSERT_EQ(WEFT_WRITABLE | WEFT_HANGUP, atomic_load(&r.last));
    ASSERT_OK(weft_fdwatch_remove(w));
    close(p[1]);
    weft_loop_free(l);
    weft_runtime_free(rt);
}

/* Interest READABLE on a socket that is also writable: WRITABLE is never
 * reported; the peer's close comes as READABLE | HANGUP. */
TEST(events_are_a_subset_of_the_interest)
{
    weft_runtime *rt = new_rt();
    weft_loop *l = NULL;
    weft_fdwatch *w = NULL;
    rec r = { .interest = WEFT_READABLE };
    int sv[2];

    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    ASSERT_OK(weft_loop_new(rt, &l));
    ASSERT_OK(weft_fdwatch_add(l, sv[0], WEFT_READABLE, rec_cb, &r, &w));
    ASSERT_EQ(1, write(sv[1], "a", 1));
    wait_for(&r.calls, 1);
    ASSERT_EQ(WEFT_READABLE, atomic_load(&r.last));
    close(sv[1]);
    r.interest = WEFT_READABLE;
    ASSERT_OK(weft_fdwatch_modify(w, WEFT_READABLE));
    wait_for(&r.calls, 2);
    ASSERT_EQ(0, atomic_load(&r.bad));
    ASSERT(atomic_load(&r.last) & WEFT_READABLE);
    ASSERT(!(atomic_load(&r.all) & WEFT_WRITABLE));
    ASSERT_OK(weft_fdwatch_remove(w));
    close(sv[0]);
    weft_loop_free(l);
    weft_runtime_free(rt);
}

/* Interest 0 is silent, even through a hang-up (which epoll reports
 * whatever the interest); asking for READABLE afterwards reports it. A
 * timer proves the loop ran meanwhile. */
static atomic_int timer_fired;
static void timer_cb(weft_timer *t, void *arg)
{
    (void)t; (void)arg;
    atomic_fetch_add(&timer_fired, 1);
}

TEST(interest_zero_is_silent_through_a_hangup)
{
    weft_runtime *rt = new_rt();
    weft_loop *l = NULL;
    weft_fdwatch *w = NULL;
    weft_timer *t = NULL;
    rec r = { .interest = 0 };
    int p[2];

    atomic_store(&timer_fired, 0);
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    ASSERT_OK(weft_loop_new(rt, &l));
    ASSERT_OK(weft_fdwatch_add(l, p[0], 0, rec_cb, &r, &w));
    ASSERT_EQ(1, write(p[1], "z", 1));
    close(p[1]);                       /* readable and hung up */
    ASSERT_OK(weft_timer_new(l, timer_cb, NULL, &t));
    for (int i = 1; i <= 3; i++) {
        ASSERT_OK(weft_timer_arm(t, 2));
        wait_for(&timer_fired, i);
    }
    ASSERT_EQ(0, atomic_load(&r.calls));
    r.interest = WEFT_READABLE;
    ASSERT_OK(weft_fdwatch_modify(w, WEFT_READABLE));
    wait_for(&r.calls, 1);
    ASSERT_EQ(0, atomic_load(&r.bad));
    ASSERT(atomic_load(&r.last) & WEFT_READABLE);
    weft_timer_free(t);
    ASSERT_OK(weft_fdwatch_remove(w));
    close(p[0]);
    weft_loop_free(l);
    weft_runtime_free(rt);
}

/* Bad descriptors: negative, not open, or closed while watched. Each is a
 * negative errno, never a crash; a watch whose descriptor was closed can
 * still be removed. */
TEST(bad_and_closed_descriptors)
{
    weft_runtime *rt = new_rt();
    weft_loop *l = NULL;
    weft_fdwatch *w = (weft_fdwatch *)0x1;
    rec r = { .interest = WEFT_READABLE };
    int p[2], err;

    ASSERT_OK(weft_loop_new(rt, &l));
    ASSERT_EQ(-EINVAL, weft_fdwatch_add(l, -1, WEFT_READABLE, rec_cb, &r, &w));
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    close(p[0]);
    close(p[1]);
    err = weft_fdwatch_add(l, p[0], WEFT_READABLE, rec_cb, &r, &w);
    ASSERT(err < 0);
    ASSERT((weft_fdwatch *)0x1 == w);
    {
        /* not pollable: a regular file, a directory */
        int f = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        int d = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        ASSERT(f >= 0 && d >= 0);
        ASSERT_EQ(-EPERM, weft_fdwatch_add(l, f, WEFT_READABLE, rec_cb, &r, &w));
        ASSERT_EQ(-EPERM, weft_fdwatch_add(l, d, WEFT_READABLE, rec_cb, &r, &w));
        ASSERT((weft_fdwatch *)0x1 == w);
        close(f);
        close(d);
    }
    ASSERT_EQ(-EINVAL, weft_fdwatch_add(l, 0, 1u << 5, rec_cb, &r, &w));
    ASSERT_EQ(-EINVAL, weft_fdwatch_add(l, 0, WEFT_HANGUP, rec_cb, &r, &w));

    /* closed while watched (the caller broke the rule): modify reports an
     * error or nothing, remove still works */
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    ASSERT_OK(weft_fdwatch_add(l, p[0], 0, rec_cb, &r, &w));
    close(p[0]);
    close(p[1]);
    err = weft_fdwatch_modify(w, WEFT_READABLE);
    ASSERT(err == 0 || err == -EBADF || err == -ENOENT);
    ASSERT_EQ(-EINVAL, weft_fdwatch_modify(w, WEFT_HANGUP));
    ASSERT_OK(weft_fdwatch_remove(w));
    weft_loop_free(l);
    weft_runtime_free(rt);
}

/* modify from the callback: the new interest applies when it returns, so
 * a readable pipe with interest set to 0 is called no more, and a later
 * modify from this thread calls it again. */
static atomic_int level_calls;
static void once_then_off(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    (void)fd; (void)events; (void)arg;
    atomic_fetch_add(&level_calls, 1);
    ASSERT_OK(weft_fdwatch_modify(w, WEFT_WRITABLE));   /* replaced below */
    ASSERT_OK(weft_fdwatch_modify(w, 0));
}

TEST(modify_from_the_callback_applies_after_it)
{
    weft_runtime *rt = new_rt();
    weft_loop *l = NULL;
    weft_fdwatch *w = NULL;
    weft_timer *t = NULL;
    int p[2];

    atomic_store(&level_calls, 0);
    atomic_store(&timer_fired, 0);
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    ASSERT_EQ(1, write(p[1], "q", 1));           /* stays readable */
    ASSERT_OK(weft_loop_new(rt, &l));
    ASSERT_OK(weft_fdwatch_add(l, p[0], WEFT_READABLE, once_then_off, NULL, &w));
    wait_for(&level_calls, 1);
    ASSERT_OK(weft_timer_new(l, timer_cb, NULL, &t));
    for (int i = 1; i <= 3; i++) {
        ASSERT_OK(weft_timer_arm(t, 2));
        wait_for(&timer_fired, i);
    }
    ASSERT_EQ(1, atomic_load(&level_calls));
    ASSERT_OK(weft_fdwatch_modify(w, WEFT_READABLE));
    wait_for(&level_calls, 2);
    weft_timer_free(t);
    ASSERT_OK(weft_fdwatch_remove(w));
    close(p[0]);
    close(p[1]);
    weft_loop_free(l);
    weft_runtime_free(rt);
}

/* A timer armed with an absurd delay is refused or never fires; either way
 * it can be disarmed and freed. */
TEST(timer_absurd_delays)
{
    weft_runtime *rt = new_rt();
    weft_loop *l = NULL;
    weft_timer *t = NULL, *u = NULL;
    int err;

    atomic_store(&timer_fired, 0);
    ASSERT_OK(weft_loop_new(rt, &l));
    ASSERT_OK(weft_timer_new(l, timer_cb, NULL, &t));
    ASSERT_OK(weft_timer_new(l, timer_cb, NULL, &u));
    err = weft_timer_arm(t, UINT64_MAX);
    ASSERT(err == 0 || err == -EINVAL);
    err = weft_timer_arm(t, UINT64_MAX / 2 + 7);
    ASSERT(err == 0 || err == -EINVAL);
    ASSERT_OK(weft_timer_arm(u, 1));
    wait_for(&timer_fired, 1);
    ASSERT_OK(weft_timer_arm(u, 1));
    wait_for(&timer_fired, 2);
    ASSERT_EQ(2, atomic_load(&timer_fired));     /* t never fired */
    ASSERT_OK(weft_timer_disarm(t));
    ASSERT_OK(weft_timer_disarm(t));
    weft_timer_free(t);
    weft_timer_free(u);
    weft_timer_free(NULL);
    weft_loop_free(l);
    weft_runtime_free(rt);
}
