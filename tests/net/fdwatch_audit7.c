// SPDX-License-Identifier: MIT
/* A seventh look at weft/fdwatch.h (public API only): a watch whose
 * descriptor was closed (the caller broke the rule) and whose number a
 * new descriptor took, watched in its turn: the stale watch's modify and
 * remove must not touch the new one. Two watches on one descriptor.
 * Registered for both backends (epoll, and as uring.net.fdwatch_audit7.*
 * with WEFT_IO_BACKEND=uring). */
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
    atomic_int fd_seen;
} rec;

/* Counts calls; goes silent (interest 0) so a level-triggered condition
 * does not call it for ever. */
static void rec_cb(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    rec *r = arg;

    (void)events;
    atomic_store(&r->fd_seen, fd);
    weft_fdwatch_modify(w, 0);
    atomic_fetch_add(&r->calls, 1);
}

/* A pipe whose read end has number `want` (the lowest free number is
 * reused by the kernel: close want's old holder first). */
static void pipe_at(int want, int p[2])
{
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    if (p[0] != want) {
        ASSERT_EQ(want, dup3(p[0], want, O_CLOEXEC));
        close(p[0]);
        p[0] = want;
    }
}

/* The old watch's descriptor is closed, the number reused and watched
 * again: removing the old watch (which the header allows: "a watch whose
 * descriptor was closed can still be removed") leaves the new watch
 * working, and the old one is never called for the new descriptor. */
static void check_stale_watch(bool modify_first)
{
    weft_runtime *rt = new_rt();
    weft_loop *l = NULL;
    weft_fdwatch *wa, *wb;
    rec a = { 0 }, b = { 0 };
    int p[2], q[2], n, calls_a;

    ASSERT_OK(weft_loop_new(rt, &l));
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    ASSERT_OK(weft_fdwatch_add(l, p[0], WEFT_READABLE, rec_cb, &a, &wa));
    n = p[0];
    close(p[0]);                      /* against the rule: still watched */
    close(p[1]);
    pipe_at(n, q);
    ASSERT_OK(weft_fdwatch_add(l, q[0], 0, rec_cb, &b, &wb));
    if (modify_first) {
        int err = weft_fdwatch_modify(wa, WEFT_READABLE);

        ASSERT(err == 0 || err == -EBADF || err == -ENOENT);
    }
    ASSERT_OK(weft_fdwatch_remove(wa));
    /* on io_uring the old watch may have seen its own pipe's hang-up (the
     * ring held the closed file), and, re-armed by that callback before
     * the number was taken again, the new descriptor's readiness: never
     * after its remove returned */
    calls_a = atomic_load(&a.calls);
    ASSERT_OK(weft_fdwatch_modify(wb, WEFT_READABLE));
    ASSERT_EQ(1, write(q[1], "x", 1));
    ASSERT(wait_for(&b.calls, 1));
    ASSERT_EQ(q[0], atomic_load(&b.fd_seen));
    ASSERT_EQ(calls_a, atomic_load(&a.calls));
    /* the new watch still owns the number: a second watch is -EEXIST */
    {
        weft_fdwatch *wc = (weft_fdwatch *)0x1;

        ASSERT_EQ(-EEXIST, weft_fdwatch_add(l, q[0], WEFT_READABLE, rec_cb, &a, &wc));
        ASSERT(wc == (weft_fdwatch *)0x1);
    }
    ASSERT_OK(weft_fdwatch_remove(wb));
    close(q[0]);
    close(q[1]);
    weft_loop_free(l);
    weft_runtime_free(rt);
}

TEST(stale_watch_remove_leaves_the_new_watch_of_its_number)
{
    check_stale_watch(false);
}

TEST(stale_watch_modify_then_remove_leaves_the_new_watch)
{
    check_stale_watch(true);
}

/* Two watches on one descriptor: the second is -EEXIST (also from another
 * loop of the runtime); once the first is removed, it can be watched
 * again, and the new watch is called. */
TEST(two_watches_on_one_descriptor)
{
    weft_runtime *rt = new_rt();
    weft_loop *l = NULL, *l2 = NULL;
    weft_fdwatch *w1, *w2 = (weft_fdwatch *)0x1;
    rec a = { 0 }, b = { 0 };
    int p[2];

    ASSERT_OK(weft_loop_new(rt, &l));
    ASSERT_OK(weft_loop_new(rt, &l2));
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    ASSERT_OK(weft_fdwatch_add(l, p[0], WEFT_READABLE, rec_cb, &a, &w1));
    ASSERT_EQ(-EEXIST, weft_fdwatch_add(l, p[0], WEFT_READABLE, rec_cb, &b, &w2));
    ASSERT_EQ(-EEXIST, weft_fdwatch_add(l2, p[0], WEFT_WRITABLE, rec_cb, &b, &w2));
    ASSERT(w2 == (weft_fdwatch *)0x1);
    ASSERT_OK(weft_fdwatch_remove(w1));
    ASSERT_OK(weft_fdwatch_add(l2, p[0], WEFT_READABLE, rec_cb, &b, &w2));
    ASSERT_EQ(1, write(p[1], "x", 1));
    ASSERT(wait_for(&b.calls, 1));
    ASSERT_EQ(0, atomic_load(&a.calls));
    ASSERT_OK(weft_fdwatch_remove(w2));
    close(p[0]);
    close(p[1]);
    weft_loop_free(l);
    weft_loop_free(l2);
    weft_runtime_free(rt);
}

/* The same with a stream: the number of a watched (then closed)
 * descriptor goes to a pipe adopted as a weft stream; removing the stale
 * watch leaves the stream's reads working (and its close closes the
 * stream's descriptor only, once). */
TEST(stale_watch_remove_leaves_an_adopted_stream_of_its_number)
{
    weft_runtime *rt = new_rt();
    weft_loop *l = NULL;
    weft_fdwatch *wa;
    weft_stream *rd = NULL;
    rec a = { 0 };
    int p[2], q[2], n, calls_a;
    weft_io_op op;
    weft_join *j;
    char buf[4];
    ssize_t r = -1;

    ASSERT_OK(weft_loop_new(rt, &l));
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    ASSERT_OK(weft_fdwatch_add(l, p[0], WEFT_READABLE, rec_cb, &a, &wa));
    n = p[0];
    close(p[0]);
    close(p[1]);
    pipe_at(n, q);
    ASSERT_OK(weft_fd_adopt(rt, q[0], 0, &rd));
    weft_read_init(&op, rd, buf, sizeof(buf));
    ASSERT_OK(weft_spawn(rt, &weft_io_op_future, &op, &j));
    usleep(20000);                    /* the read waits (not needed) */
    ASSERT_OK(weft_fdwatch_remove(wa));
    calls_a = atomic_load(&a.calls);  /* io_uring: see check_stale_watch() */
    ASSERT_EQ(2, write(q[1], "ok", 2));
    ASSERT_OK(weft_join_wait(j, &r));
    weft_join_drop(j);
    ASSERT_EQ(2, r);
    ASSERT_EQ(0, memcmp(buf, "ok", 2));
    ASSERT_EQ(calls_a, atomic_load(&a.calls));
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_EQ(-1, fcntl(n, F_GETFD));  /* closed by the stream's close */
    close(q[1]);
    weft_loop_free(l);
    weft_runtime_free(rt);
}

/* Keeping track of watched numbers costs sockets nothing: with a watch in
 * place, adopting a socket whose number is far above every other still
 * allocates nothing (net.h: "Making a socket allocates nothing"). */
TEST(watched_numbers_cost_sockets_no_allocation)
{
    weft_runtime *rt = new_rt();
    weft_loop *l = NULL;
    weft_fdwatch *w;
    weft_socket *s = NULL;
    rec a = { 0 };
    int p[2], fd, high;

    ASSERT_OK(weft_loop_new(rt, &l));
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    ASSERT_OK(weft_fdwatch_add(l, p[0], WEFT_READABLE, rec_cb, &a, &w));
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    high = fcntl(fd, F_DUPFD_CLOEXEC, 900);
    ASSERT(high >= 900);
    close(fd);
    harness_fail_alloc_at(1000000);   /* armed far away: counts them */
    ASSERT_OK(weft_socket_adopt(rt, high, &s));
    ASSERT_EQ(0u, harness_allocs());
    harness_fail_alloc_at(0);
    ASSERT_OK(weft_socket_close(s));
    ASSERT_OK(weft_fdwatch_remove(w));
    close(p[0]);
    close(p[1]);
    weft_loop_free(l);
    weft_runtime_free(rt);
}

/* A callback frees its own loop, then goes on calling: the loop and its
 * own watch are still valid memory until it returns, and every call on
 * them says -EINVAL ("loop freed", "removed already"); no crash, no new
 * watch or timer made on a freed loop. */
typedef struct self_free {
    weft_loop *l;
    int p2[2];
    atomic_int done;
    int add, tnew, mod, rem;
} self_free;

static void never_timer(weft_timer *t, void *arg)
{
    (void)t;
    (void)arg;
}

static void self_free_cb(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    self_free *sf = arg;
    weft_fdwatch *w2 = (weft_fdwatch *)0x1;
    weft_timer *t = (weft_timer *)0x1;

    (void)fd;
    (void)events;
    weft_loop_free(sf->l);
    sf->add = weft_fdwatch_add(sf->l, sf->p2[0], WEFT_READABLE, rec_cb, NULL, &w2);
    sf->tnew = weft_timer_new(sf->l, never_timer, NULL, &t);
    sf->mod = weft_fdwatch_modify(w, 0);
    sf->rem = weft_fdwatch_remove(w);
    if (w2 != (weft_fdwatch *)0x1 || t != (weft_timer *)0x1)
        sf->add = 1;
    atomic_store(&sf->done, 1);
}

TEST(calls_after_freeing_the_loop_from_its_callback)
{
    weft_runtime *rt = new_rt();
    self_free sf = { 0 };
    weft_fdwatch *w;
    int p[2];

    ASSERT_OK(weft_loop_new(rt, &sf.l));
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    ASSERT_EQ(0, pipe2(sf.p2, O_NONBLOCK | O_CLOEXEC));
    ASSERT_OK(weft_fdwatch_add(sf.l, p[0], WEFT_READABLE, self_free_cb, &sf, &w));
    ASSERT_EQ(1, write(p[1], "x", 1));
    ASSERT(wait_for(&sf.done, 1));
    ASSERT_EQ(-EINVAL, sf.add);
    ASSERT_EQ(-EINVAL, sf.tnew);
    ASSERT_EQ(-EINVAL, sf.mod);
    ASSERT_EQ(-EINVAL, sf.rem);
    weft_runtime_free(rt);
    close(p[0]);
    close(p[1]);
    close(sf.p2[0]);
    close(sf.p2[1]);
}
