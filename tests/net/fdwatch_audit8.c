// SPDX-License-Identifier: MIT
/* An eighth look at weft/fdwatch.h (public API only), on both backends
 * (epoll, and as uring.net.fdwatch_audit8.* with WEFT_IO_BACKEND=uring):
 * a watch whose descriptor was closed under it (the caller broke the
 * rule), then modified: the header says the modify fails with the
 * re-arm's error (-EBADF, -ENOENT) "after which the watch stays silent
 * until a modify succeeds". */
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

static bool wait_for(atomic_int *v, int want)
{
    for (unsigned i = 0; i < WAIT_MS && atomic_load(v) < want; i++)
        usleep(1000);
    return atomic_load(v) >= want;
}

typedef struct rec {
    atomic_int calls;
    atomic_uint events;
} rec;

static void rec_cb(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    rec *r = arg;

    (void)fd;
    atomic_store(&r->events, events);
    weft_fdwatch_modify(w, 0);
    atomic_fetch_add(&r->calls, 1);
}

static void tick_cb(weft_timer *t, void *arg)
{
    (void)t;
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* Watch a pipe's read end silently (interest 0), close the descriptor
 * under the watch, then ask for READABLE: the modify fails (-EBADF or
 * -ENOENT: nothing is armed), and no callback comes for the closed
 * descriptor. The loop goes on working (a timer fires), and the watch can
 * still be removed. */
TEST(modify_after_the_descriptor_was_closed_fails_and_stays_silent)
{
    weft_runtime *rt = new_rt();
    weft_loop *l = NULL;
    weft_fdwatch *w;
    weft_timer *t;
    rec a = { 0 };
    atomic_int ticks = 0;
    int p[2], r;

    ASSERT_OK(weft_loop_new(rt, &l));
    for (int round = 0; round < 20; round++) {
        ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
        ASSERT_OK(weft_fdwatch_add(l, p[0], 0, rec_cb, &a, &w));
        close(p[0]);
        close(p[1]);
        r = weft_fdwatch_modify(w, WEFT_READABLE);
        ASSERT(r == -EBADF || r == -ENOENT);
        /* the loop still runs: a timer fires; the closed watch did not */
        ASSERT_OK(weft_timer_new(l, tick_cb, &ticks, &t));
        ASSERT_OK(weft_timer_arm(t, 5));
        ASSERT(wait_for(&ticks, round + 1));
        usleep(2000);
        ASSERT_EQ(0, atomic_load(&a.calls));
        weft_timer_free(t);
        ASSERT_OK(weft_fdwatch_remove(w));
    }
    weft_loop_free(l);
    weft_runtime_free(rt);
}
