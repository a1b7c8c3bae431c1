// SPDX-License-Identifier: MIT
/* A ninth look at weft/fdwatch.h (public API only), on both backends
 * (epoll, and as uring.net.fdwatch_audit9.* with WEFT_IO_BACKEND=uring). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#define WAIT_MS 20000u

static bool wait_for(atomic_int *v, int want)
{
    for (unsigned i = 0; i < WAIT_MS && atomic_load(v) < want; i++)
        usleep(1000);
    return atomic_load(v) >= want;
}

static void count_cb(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    (void)w;
    (void)fd;
    (void)events;
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void tick_cb(weft_timer *t, void *arg)
{
    (void)t;
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* A timer callback that holds the loop (its one callback at a time) until
 * the test lets it go. */
typedef struct hold {
    atomic_int entered, go;
} hold;

static void hold_cb(weft_timer *t, void *arg)
{
    hold *h = arg;

    (void)t;
    atomic_store(&h->entered, 1);
    for (unsigned i = 0; i < WAIT_MS && !atomic_load(&h->go); i++)
        usleep(1000);
}

static unsigned long long io_events(weft_runtime *rt)
{
    weft_metrics m = { .size = sizeof(m) };

    ASSERT_OK(weft_runtime_metrics(rt, &m));
    return m.io_events;
}

/* "0 is allowed: registered, silent", and a modify of a watch whose
 * descriptor was closed under it fails with the re-arm's error, "after
 * which the watch stays silent". Here the descriptor (a pipe's read end,
 * watched with interest 0) is closed, and its pipe's other end too, while
 * the loop is busy in another callback, so that whatever the system still
 * reports for it (io_uring's poll holds the file past the close: the
 * writer's close is a hang-up) reaches the watch before the modify does.
 * A silent watch takes no such event: the modify finds the descriptor
 * closed, and no callback ever comes for it. (With such an event queued,
 * the modify answered 0 and the loop called the callback with READABLE |
 * HANGUP for the closed descriptor: the flaky failure of
 * fdwatch_audit8.modify_after_the_descriptor_was_closed_fails_and_stays_silent
 * on io_uring.) */
TEST(silent_watch_takes_no_event_from_its_closed_descriptor)
{
    weft_runtime *rt;
    weft_loop *l;
    weft_fdwatch *w;
    weft_timer *t, *tick;
    atomic_int calls = 0, ticks = 0;
    hold h = { 0, 0 };
    unsigned long long ev0;
    int p[2], r;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    /* the held callback is a stall on purpose */
    ASSERT_OK(weft_runtime_set_lints(rt, &(weft_lint_options){ .mask = WEFT_LINTS_OFF }));
    ASSERT_OK(weft_loop_new(rt, &l));
    ASSERT_OK(weft_timer_new(l, tick_cb, &ticks, &tick));
    for (int round = 0; round < 5; round++) {
        ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
        ASSERT_OK(weft_fdwatch_add(l, p[0], 0, count_cb, &calls, &w));
        /* let the registration settle (its poll armed), then hold the loop */
        ASSERT_OK(weft_timer_arm(tick, 1));
        ASSERT(wait_for(&ticks, 2 * round + 1));
        atomic_store(&h.entered, 0);
        atomic_store(&h.go, 0);
        ASSERT_OK(weft_timer_new(l, hold_cb, &h, &t));
        ASSERT_OK(weft_timer_arm(t, 0));
        ASSERT(wait_for(&h.entered, 1));
        ev0 = io_events(rt);
        close(p[0]);
        close(p[1]);
        /* give the system's report (if any) time to reach the watch: the
         * other worker takes it; only a hang guard, the check below holds
         * whatever the timing */
        for (unsigned i = 0; i < 200 && io_events(rt) == ev0; i++)
            usleep(1000);
        usleep(20000);
        r = weft_fdwatch_modify(w, WEFT_READABLE);
        atomic_store(&h.go, 1);
        ASSERT(r == -EBADF || r == -ENOENT);
        /* the loop has run everything queued before this tick */
        ASSERT_OK(weft_timer_arm(tick, 1));
        ASSERT(wait_for(&ticks, 2 * round + 2));
        ASSERT_EQ(0, atomic_load(&calls));
        weft_timer_free(t);
        ASSERT_OK(weft_fdwatch_remove(w));
    }
    weft_loop_free(l);
    weft_runtime_free(rt);
}
