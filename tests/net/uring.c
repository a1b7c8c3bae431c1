// SPDX-License-Identifier: MIT
/* The I/O backend option (weft_runtime_options.io_backend), the report
 * call (weft_runtime_io_backend), the fallback from io_uring to epoll when
 * its setup fails (simulated through the ring's test hook), and io_uring
 * cases the shared suites do not reach: a poll whose submitting thread
 * exited (the kernel cancels it), a watch re-armed many times. The whole
 * net, stream and blocking suites run a second time with the io_uring
 * backend (the `uring.` tests of tests/CMakeLists.txt). */
#include "../stream/stream_test.h"
#include "acc_timed.h"

#include <stdlib.h>

#include "io/uring.h"
#include "weft/fdwatch.h"

static weft_runtime *rt_with(weft_flavor flavor, weft_io_backend b)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = flavor,
                                 .workers = flavor == WEFT_CURRENT_THREAD ? 0 : 2,
                                 .io_backend = b };

    ASSERT_OK(weft_runtime_new(&rt, &opt));
    return rt;
}

/* io_uring is usable here (the kernel has it and allows it). */
static bool uring_usable(void)
{
    weft_runtime *rt = rt_with(WEFT_CURRENT_THREAD, WEFT_IO_URING);
    int fb = 1, b = weft_runtime_io_backend(rt, &fb);

    weft_runtime_free(rt);
    return b == WEFT_IO_URING && fb == 0;
}

/* Bytes both ways over a pipe and a TCP pair, on whatever backend rt has. */
static void round_trip(weft_runtime *rt)
{
    weft_stream *rd, *wr;
    weft_socket *a, *b;
    char buf[16];

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_EQ(-ETIMEDOUT, st_read(rt, rd, buf, sizeof(buf), ST_SHORT_MS));
    ASSERT_EQ(3, st_write_all(rt, wr, "abc", 3, ST_WAIT_MS));
    ASSERT_EQ(3, st_read(rt, rd, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_OK(weft_stream_close(wr));
    ASSERT_EQ(0, st_read(rt, rd, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_OK(weft_stream_close(rd));

    nt_tcp_pair(rt, &a, &b);
    ASSERT_EQ(5, st_write_all(rt, a, "hello", 5, ST_WAIT_MS));
    ASSERT_EQ(5, st_read_exact(rt, b, buf, 5, ST_WAIT_MS));
    ASSERT_EQ(0, memcmp(buf, "hello", 5));
    ASSERT_OK(weft_socket_close(a));
    ASSERT_EQ(0, st_read(rt, b, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_OK(weft_socket_close(b));
}

TEST(backend_epoll_when_asked)
{
    for (int current = 0; current < 2; current++) {
        weft_runtime *rt = rt_with(current ? WEFT_CURRENT_THREAD : WEFT_MULTI_THREAD,
                                   WEFT_IO_EPOLL);
        int fb = 1;

        ASSERT_EQ(WEFT_IO_EPOLL, weft_runtime_io_backend(rt, &fb));
        ASSERT_EQ(0, fb);
        ASSERT_EQ(WEFT_IO_EPOLL, weft_runtime_io_backend(rt, NULL));
        round_trip(rt);
        weft_runtime_free(rt);
    }
}

TEST(backend_uring_when_asked_or_reported_fallback)
{
    for (int current = 0; current < 2; current++) {
        weft_runtime *rt = rt_with(current ? WEFT_CURRENT_THREAD : WEFT_MULTI_THREAD,
                                   WEFT_IO_URING);
        int fb = 1, b = weft_runtime_io_backend(rt, &fb);

        if (b == WEFT_IO_URING) {
            ASSERT_EQ(0, fb);
        } else {
            /* a kernel or a container without io_uring: said so */
            ASSERT_EQ(WEFT_IO_EPOLL, b);
            ASSERT(fb == -ENOSYS || fb == -EPERM || fb == -EOPNOTSUPP || fb == -ENOMEM);
            fprintf(stderr, "io_uring unavailable here (%d): epoll\n", fb);
        }
        round_trip(rt);
        ASSERT_EQ(b, weft_runtime_io_backend(rt, NULL));   /* fixed */
        weft_runtime_free(rt);
    }
}

TEST(backend_auto_follows_environment)
{
    const char *e = getenv("WEFT_IO_BACKEND");
    weft_runtime *rt = rt_with(WEFT_MULTI_THREAD, WEFT_IO_AUTO);
    int fb = 1, b = weft_runtime_io_backend(rt, &fb);

    if (e && strcmp(e, "uring") == 0 && uring_usable()) {
        ASSERT_EQ(WEFT_IO_URING, b);
    } else {
        ASSERT_EQ(WEFT_IO_EPOLL, b);
        if (!(e && strcmp(e, "uring") == 0))
            ASSERT_EQ(0, fb);         /* nobody asked for io_uring */
    }
    round_trip(rt);
    weft_runtime_free(rt);
}

/* Setup forbidden (a container's seccomp: EPERM) or absent (ENOSYS): the
 * runtime runs on epoll, and the call says why. */
TEST(backend_fallback_reported)
{
    static const int errs[] = { -EPERM, -ENOSYS, -EOPNOTSUPP };

    for (unsigned i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        for (int current = 0; current < 2; current++) {
            weft_runtime *rt;
            int fb = 1;

            weft__uring_fail_setup(errs[i]);
            rt = rt_with(current ? WEFT_CURRENT_THREAD : WEFT_MULTI_THREAD, WEFT_IO_URING);
            ASSERT_EQ(WEFT_IO_EPOLL, weft_runtime_io_backend(rt, &fb));
            ASSERT_EQ(errs[i], fb);
            round_trip(rt);
            weft_runtime_free(rt);
            weft__uring_fail_setup(0);
        }
    }
    /* the environment's request falls back the same way */
    setenv("WEFT_IO_BACKEND", "uring", 1);
    weft__uring_fail_setup(-EPERM);
    {
        weft_runtime *rt = rt_with(WEFT_MULTI_THREAD, WEFT_IO_AUTO);
        int fb = 1;

        ASSERT_EQ(WEFT_IO_EPOLL, weft_runtime_io_backend(rt, &fb));
        ASSERT_EQ(-EPERM, fb);
        round_trip(rt);
        weft_runtime_free(rt);
    }
    weft__uring_fail_setup(0);
}

TEST(backend_bad_arguments)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD, .workers = 1,
                                 .io_backend = (weft_io_backend)7 };
    int fb = 5;

    ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &opt));
    opt.io_backend = (weft_io_backend)-1;
    ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &opt));
    ASSERT_EQ(-EINVAL, weft_runtime_io_backend(NULL, &fb));
    ASSERT_EQ(5, fb);                 /* untouched */
    ASSERT_EQ(-EINVAL, weft_runtime_io_backend(NULL, NULL));
}

TEST(backend_after_shutdown)
{
    weft_runtime *rt = rt_with(WEFT_MULTI_THREAD, WEFT_IO_URING);
    int b;

    /* never made: nothing to report once the runtime is gone */
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(-ESHUTDOWN, weft_runtime_io_backend(rt, NULL));
    weft_runtime_free(rt);

    /* made before: still reported */
    rt = rt_with(WEFT_MULTI_THREAD, WEFT_IO_URING);
    b = weft_runtime_io_backend(rt, NULL);
    ASSERT(b == WEFT_IO_URING || b == WEFT_IO_EPOLL);
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(b, weft_runtime_io_backend(rt, NULL));
    weft_runtime_free(rt);
}

/* The kernel cancels the requests of a thread that exits. On a
 * current-thread runtime the thread inside block_on submits the polls:
 * when it exits, the sockets it armed must still wake their readers. */
struct exit_ctx {
    weft_runtime *rt;
    weft_socket *a;
};

static void *submit_and_exit(void *arg)
{
    struct exit_ctx *x = arg;
    char buf[8];

    /* waits: this thread's poll submits the socket's poll request */
    ASSERT_EQ(-ETIMEDOUT, st_read(x->rt, x->a, buf, sizeof(buf), ST_SHORT_MS));
    return NULL;
}

TEST(uring_poll_survives_submitter_exit)
{
    weft_runtime *rt;
    weft_socket *a, *b;
    struct exit_ctx x;
    pthread_t t;
    char buf[8];

    if (!uring_usable()) {
        fprintf(stderr, "io_uring unavailable here: skipped\n");
        return;
    }
    rt = rt_with(WEFT_CURRENT_THREAD, WEFT_IO_URING);
    nt_tcp_pair(rt, &a, &b);
    x.rt = rt;
    x.a = a;
    for (int round = 0; round < 3; round++) {
        ASSERT_EQ(0, pthread_create(&t, NULL, submit_and_exit, &x));
        ASSERT_EQ(0, pthread_join(t, NULL));
        /* this thread reaps the cancellation (and re-arms), finds nothing */
        ASSERT_EQ(-ETIMEDOUT, st_read(rt, a, buf, sizeof(buf), ST_SHORT_MS));
        /* then data comes: the re-armed poll must report it */
        ASSERT_EQ(2, write(weft_socket_fd(b), "hi", 2));
        ASSERT_EQ(2, st_read(rt, a, buf, sizeof(buf), ST_WAIT_MS));
    }
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}

/* The same for a watch (a oneshot poll, re-armed after each callback): a
 * cancellation by the submitter's exit is told from the cancellation of a
 * poll that a re-arm replaced by the poll's arm count, and re-armed. */
static atomic_int watch_calls;

static void count_read(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    char c;

    (void)w;
    (void)events;
    (void)arg;
    while (read(fd, &c, 1) == 1)
        ;
    atomic_fetch_add(&watch_calls, 1);
}

static void nap_on(weft_runtime *rt, uint64_t ms)
{
    weft_sleep s;

    weft_sleep_init(&s, ms);
    ASSERT_OK(weft_block_on(rt, &weft_sleep_future, &s, NULL));
}

static void *nap_and_exit(void *arg)
{
    nap_on(arg, ST_SHORT_MS);          /* this thread submits the watch's poll */
    return NULL;
}

TEST(uring_watch_survives_submitter_exit)
{
    weft_runtime *rt;
    weft_loop *l;
    weft_fdwatch *w;
    pthread_t t;
    int p[2];

    if (!uring_usable()) {
        fprintf(stderr, "io_uring unavailable here: skipped\n");
        return;
    }
    rt = rt_with(WEFT_CURRENT_THREAD, WEFT_IO_URING);
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    ASSERT_OK(weft_loop_new(rt, &l));
    ASSERT_OK(weft_fdwatch_add(l, p[0], WEFT_READABLE, count_read, NULL, &w));
    for (int round = 1; round <= 3; round++) {
        uint64_t until;

        ASSERT_EQ(0, pthread_create(&t, NULL, nap_and_exit, rt));
        ASSERT_EQ(0, pthread_join(t, NULL));
        nap_on(rt, ST_SHORT_MS);       /* reaps the cancellation, re-arms */
        ASSERT_EQ(round - 1, atomic_load(&watch_calls));
        ASSERT_EQ(1, write(p[1], "x", 1));
        until = weft_now_ms() + ST_WAIT_MS;
        while (atomic_load(&watch_calls) < round && weft_now_ms() < until)
            nap_on(rt, 5);
        ASSERT_EQ(round, atomic_load(&watch_calls));
    }
    ASSERT_OK(weft_fdwatch_remove(w));
    weft_loop_free(l);
    weft_runtime_free(rt);
    close(p[0]);
    close(p[1]);
}

static int st_accept_for(weft_runtime *rt, weft_socket *l, uint64_t ms)
{
    int r = -12345;

    ASSERT_OK(weft_block_on(rt, &acc_timed_future, &(acc_timed){ .l = l, .ms = ms }, &r));
    return r;
}

/* A cancelled poll holds its file until the thread that submitted it runs
 * the cancellation (microseconds later, on that thread): a listener closed
 * on one thread while a worker's poll watched it must refuse a connect made
 * right after the close all the same (the backend shuts it down first). */
TEST(uring_closed_listener_refuses_at_once)
{
    weft_runtime *rt = rt_with(WEFT_MULTI_THREAD, WEFT_IO_URING);

    for (size_t i = 0; i < harness_scale(50); i++) {
        struct sockaddr_storage addr;
        socklen_t len;
        weft_socket *l;
        int fd;

        nt_listen(rt, &l, &addr, &len);
        /* an accept that waits: a worker submits the listener's poll */
        ASSERT_EQ(-ETIMEDOUT, st_accept_for(rt, l, 5));
        ASSERT_OK(weft_socket_close(l));
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT(fd >= 0);
        ASSERT_EQ(-1, connect(fd, (const struct sockaddr *)&addr, len));
        ASSERT_EQ(ECONNREFUSED, errno);
        close(fd);
    }
    weft_runtime_free(rt);
}

/* The ring's owner (the first worker that parks with descriptors open)
 * is the only thread that blocks in the ring. With every descriptor
 * closed it sleeps on its condition variable; the next registration must
 * move it back into the ring (weft__sched_io_kick), or a read that waits
 * for an event waits for nothing: its poll is queued but nobody submits
 * it, and the other worker, not the owner, only looks. Each round closes
 * everything, lets both workers fall asleep, adopts a fresh socket and
 * waits for bytes written a moment later. (Other wake-ups, the timer of
 * the read's limit among them, usually bring the owner back as well:
 * without the kick this passed 200 rounds; it checks the owner's way out
 * of the ring and back, not the kick alone.) */
static void *write_later(void *arg)
{
    int fd = *(int *)arg;

    usleep(10000);
    ASSERT_EQ(1, write(fd, "x", 1));
    return NULL;
}

TEST(uring_owner_moves_back_into_the_ring)
{
    weft_runtime *rt = rt_with(WEFT_MULTI_THREAD, WEFT_IO_URING);
    unsigned rounds = harness_stress() ? 60u : 20u;

    for (unsigned i = 0; i < rounds; i++) {
        weft_socket *s;
        pthread_t t;
        char buf[4];
        int sv[2];

        ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
        ASSERT_OK(weft_socket_adopt(rt, sv[0], &s));
        ASSERT_EQ(0, pthread_create(&t, NULL, write_later, &sv[1]));
        ASSERT_EQ(1, st_read(rt, s, buf, sizeof(buf), ST_WAIT_MS));
        ASSERT_EQ(0, pthread_join(t, NULL));
        ASSERT_OK(weft_socket_close(s));
        close(sv[1]);
        usleep(20000);                /* both workers asleep, nothing open */
    }
    weft_runtime_free(rt);
}
