// SPDX-License-Identifier: MIT
/* io_uring with one issuer (io/uring.h, "One issuer"): a runtime with one
 * worker makes its ring SINGLE_ISSUER | DEFER_TASKRUN, and only that
 * worker may enter it. Requests from other threads (a close from the test
 * thread, here) are queued for the worker, which is woken to submit them:
 * a close's cancel must reach the kernel even when it closes the last
 * source (the worker would otherwise sleep on its condition variable), and
 * closes after the runtime is gone must neither hang nor wait. On epoll,
 * or a kernel without the flags, the same cases hold trivially. */
#include "../stream/stream_test.h"

#include <poll.h>
#include <sys/socket.h>

static weft_runtime *rt_one(void)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD, .workers = 1,
                                 .io_backend = WEFT_IO_URING };

    ASSERT_OK(weft_runtime_new(&rt, &opt));
    return rt;
}

/* The peer of a closed socket sees end of stream within `ms`. */
static void peer_sees_eof(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    char c;

    ASSERT_EQ(1, poll(&p, 1, ms));
    ASSERT_EQ(0, (int)read(fd, &c, 1));
}

/* A socket whose read is armed in the ring (a multishot receive, holding
 * the file), closed from the test thread while the worker sleeps: its
 * only source, so the worker would next sleep off the ring. */
TEST(last_close_off_the_worker_reaches_the_kernel)
{
    weft_runtime *rt = rt_one();

    for (int round = 0; round < 20; round++) {
        int sv[2];
        weft_socket *a;
        char buf[8];

        ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
        ASSERT_OK(weft_socket_adopt(rt, sv[0], &a));
        ASSERT_EQ(1, (int)write(sv[1], "x", 1));
        ASSERT_EQ(1, st_read(rt, a, buf, sizeof(buf), ST_WAIT_MS));
        /* the next read finds it empty and arms the receive, then waits */
        ASSERT_EQ(-ETIMEDOUT, st_read(rt, a, buf, sizeof(buf), ST_SHORT_MS / 5));
        if (round % 2)
            usleep(2000);             /* the worker asleep, not spinning */
        ASSERT_OK(weft_socket_close(a));
        peer_sees_eof(sv[1], (int)ST_WAIT_MS);
        close(sv[1]);
    }
    weft_runtime_free(rt);
}

/* n socket pairs, one end of each adopted into a[] (the other in peer[]),
 * and a read on a[0] that times out, so the worker has entered the ring
 * and armed its poll before the test closes anything. */
static void adopt_pairs(weft_runtime *rt, weft_socket **a, int *peer, int n)
{
    char buf[8];

    for (int i = 0; i < n; i++) {
        int sv[2];

        ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
        ASSERT_OK(weft_socket_adopt(rt, sv[0], &a[i]));
        peer[i] = sv[1];
    }
    ASSERT_EQ(-ETIMEDOUT, st_read(rt, a[0], buf, sizeof(buf), ST_SHORT_MS / 5));
}

/* More sources closed off the worker than the submission queue holds
 * (256), all at once: the closing thread waits for the worker to make
 * room, and every close takes effect. */
TEST(many_closes_off_the_worker)
{
    enum { N = 300 };
    weft_runtime *rt = rt_one();
    weft_socket *a[N];
    int peer[N];
    adopt_pairs(rt, a, peer, N);
    for (int i = 0; i < N; i++)
        ASSERT_OK(weft_socket_close(a[i]));
    for (int i = 0; i < N; i++) {
        peer_sees_eof(peer[i], (int)ST_WAIT_MS);
        close(peer[i]);
    }
    weft_runtime_free(rt);
}

/* Sockets that outlive their runtime: closed after it is freed (its worker
 * exited, so nobody may enter the ring any more), more of them than the
 * submission queue holds. No close may hang, and each takes effect. */
TEST(closes_after_the_runtime_is_freed)
{
    enum { N = 300 };
    weft_runtime *rt = rt_one();
    weft_socket *a[N];
    int peer[N];
    adopt_pairs(rt, a, peer, N);
    weft_runtime_free(rt);
    for (int i = 0; i < N; i++)
        ASSERT_OK(weft_socket_close(a[i]));
    for (int i = 0; i < N; i++) {
        peer_sees_eof(peer[i], (int)ST_WAIT_MS);
        close(peer[i]);
    }
}

/* Bytes both ways between two tasks on the one worker, many times: the
 * batched task work of the ring delivers every receive in order. */
TEST(echo_on_one_worker)
{
    weft_runtime *rt = rt_one();
    weft_socket *a, *b;
    char buf[64];

    nt_tcp_pair(rt, &a, &b);
    for (int i = 0; i < 2000; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof(msg), "m%d", i);

        ASSERT_EQ(n, st_write_all(rt, a, msg, (size_t)n, ST_WAIT_MS));
        ASSERT_EQ(n, st_read_exact(rt, b, buf, (size_t)n, ST_WAIT_MS));
        ASSERT_EQ(0, memcmp(buf, msg, (size_t)n));
    }
    ASSERT_OK(weft_socket_close(a));
    ASSERT_EQ(0, st_read(rt, b, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}

/* A task that queues more requests than the submission queue holds
 * before its worker ever looked at the ring (it never waited): the worker
 * is the owner-to-be and must take the role at once, else nobody could
 * make room (it hung so in net.close.thousand_accept_close_cycles_leak_no_fd
 * with one worker). */
typedef struct burst {
    int n;
} burst;

static weft_poll burst_poll(burst *b, weft_context *cx, void *out)
{
    (void)cx;
    (void)out;
    for (int i = 0; i < b->n; i++) {
        int sv[2];
        weft_socket *s;

        ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
        ASSERT_OK(weft_socket_adopt(weft_runtime_current(), sv[0], &s));
        ASSERT_OK(weft_socket_close(s));
        peer_sees_eof(sv[1], (int)ST_WAIT_MS);
        close(sv[1]);
    }
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(burst, burst_poll, NULL);

TEST(requests_before_the_worker_first_polls)
{
    weft_runtime *rt = rt_one();

    ASSERT_OK(weft_block_on(rt, &burst_future, &(burst){ .n = 600 }, NULL));
    weft_runtime_free(rt);
}
