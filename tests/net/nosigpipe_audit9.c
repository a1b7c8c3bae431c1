/* SPDX-License-Identifier: MIT */
/* Audit 9 of weft/net.h: weft_call_nosigpipe(), which the hiredis adapter
 * runs hiredis's write handler through (the signal calls moved into the
 * library so that the adapter headers compile as strict C11). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

struct wr {
    int fd;
    ssize_t r;
    int err;
};

static void write_one(void *arg)
{
    struct wr *w = arg;

    w->r = write(w->fd, "x", 1);
    w->err = errno;
}

static bool sigpipe_pending(void)
{
    sigset_t p;

    ASSERT_EQ(0, sigpending(&p));
    return sigismember(&p, SIGPIPE) == 1;
}

static bool sigpipe_blocked(void)
{
    sigset_t cur;

    ASSERT_EQ(0, pthread_sigmask(SIG_BLOCK, NULL, &cur));
    return sigismember(&cur, SIGPIPE) == 1;
}

TEST(a_write_to_a_closed_pipe_inside_call_nosigpipe_fails_with_epipe_and_raises_nothing)
{
    struct wr w;
    int fds[2];

    signal(SIGPIPE, SIG_DFL);           /* a SIGPIPE that got through kills the test */
    ASSERT_EQ(0, pipe(fds));
    close(fds[0]);
    w.fd = fds[1];
    weft_call_nosigpipe(write_one, &w);
    ASSERT_EQ(-1, w.r);
    ASSERT_EQ(EPIPE, w.err);
    ASSERT_EQ(EPIPE, errno);            /* errno is what fn left */
    ASSERT(!sigpipe_blocked());         /* the mask came back */
    ASSERT(!sigpipe_pending());
    weft_call_nosigpipe(NULL, NULL);    /* NULL fn: nothing */
    close(fds[1]);
}

TEST(call_nosigpipe_leaves_a_sigpipe_that_was_pending_before_it_pending)
{
    sigset_t set, old;
    struct wr w;
    int fds[2];

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    ASSERT_EQ(0, pthread_sigmask(SIG_BLOCK, &set, &old));
    ASSERT_EQ(0, pthread_kill(pthread_self(), SIGPIPE));
    ASSERT(sigpipe_pending());
    ASSERT_EQ(0, pipe(fds));
    close(fds[0]);
    w.fd = fds[1];
    weft_call_nosigpipe(write_one, &w);
    ASSERT_EQ(EPIPE, w.err);
    ASSERT(sigpipe_blocked());
    ASSERT(sigpipe_pending());          /* the caller's, still there */
    {
        int sig = 0;

        ASSERT_EQ(0, sigwait(&set, &sig));
        ASSERT_EQ(SIGPIPE, sig);
    }
    ASSERT(!sigpipe_pending());
    ASSERT_EQ(0, pthread_sigmask(SIG_SETMASK, &old, NULL));
    close(fds[1]);
}
