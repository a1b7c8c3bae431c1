// SPDX-License-Identifier: MIT
/* A fifth look at weft/stream.h's promises (public API only): absurd
 * lengths and a NULL buffer on pipes and stream sockets, on both I/O
 * backends (ctest runs this file again with WEFT_IO_BACKEND=uring), end of
 * stream read again and again, and a stream dropped mid-read losing
 * nothing. */
#include "stream_test.h"

#include <limits.h>
#include <sys/socket.h>

static const size_t huge_lens[] = { (size_t)SSIZE_MAX + 1, SIZE_MAX - 15, SIZE_MAX };

/* A length above SSIZE_MAX could not be reported (the output is a ssize_t):
 * every read and write future refuses it with -EINVAL and moves nothing,
 * whatever the backend and whether or not bytes are waiting. */
static void huge_on(weft_runtime *rt, weft_stream *rd, weft_stream *wr, int raw_wr)
{
    unsigned char buf[256];

    memset(buf, 0xab, sizeof(buf));
    if (raw_wr >= 0)
        nt_raw_write_all(raw_wr, "0123456789", 10);
    else
        ASSERT_EQ(10, st_write_all(rt, wr, "0123456789", 10, ST_WAIT_MS));
    for (size_t i = 0; i < sizeof(huge_lens) / sizeof(huge_lens[0]); i++) {
        ASSERT_EQ(-EINVAL, st_read(rt, rd, buf, huge_lens[i], ST_WAIT_MS));
        ASSERT_EQ(-EINVAL, st_read_exact(rt, rd, buf, huge_lens[i], ST_WAIT_MS));
        if (wr) {
            ASSERT_EQ(-EINVAL, st_write(rt, wr, buf, huge_lens[i], ST_WAIT_MS));
            ASSERT_EQ(-EINVAL, st_write_all(rt, wr, buf, huge_lens[i], ST_WAIT_MS));
        }
    }
    for (size_t i = 0; i < sizeof(buf); i++)
        ASSERT_EQ(0xab, buf[i]);          /* nothing written into it */
    /* the ten bytes are all still there */
    ASSERT_EQ(10, st_read_exact(rt, rd, buf, 10, ST_WAIT_MS));
    ASSERT(memcmp(buf, "0123456789", 10) == 0);
}

TEST(huge_lengths_are_einval_on_a_pipe)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd = NULL, *wr = NULL;

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    huge_on(rt, rd, wr, -1);
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_stream_close(wr));
    weft_runtime_free(rt);
}

TEST(huge_lengths_are_einval_on_a_stream_socket)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a = NULL;
    int sv[2];

    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    ASSERT_OK(weft_socket_adopt(rt, sv[0], &a));
    huge_on(rt, a, a, sv[1]);
    ASSERT_OK(weft_socket_close(a));
    close(sv[1]);
    weft_runtime_free(rt);
}

TEST(huge_lengths_are_einval_on_a_tcp_socket)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a = NULL, *b = NULL;

    nt_tcp_pair(rt, &a, &b);
    huge_on(rt, b, a, -1);
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}

/* A NULL buffer with a length: a clear negative errno (never a crash), and
 * the bytes waiting stay for the next read. */
static void null_buf_on(weft_runtime *rt, weft_stream *rd, weft_stream *wr)
{
    unsigned char buf[16];

    ASSERT_EQ(5, st_write_all(rt, wr, "hello", 5, ST_WAIT_MS));
    ASSERT_EQ(-EINVAL, st_read(rt, rd, NULL, 100, ST_WAIT_MS));
    ASSERT_EQ(-EINVAL, st_read_exact(rt, rd, NULL, 5, ST_WAIT_MS));
    ASSERT_EQ(-EINVAL, st_write(rt, wr, NULL, 100, ST_WAIT_MS));
    ASSERT_EQ(-EINVAL, st_write_all(rt, wr, NULL, 100, ST_WAIT_MS));
    ASSERT_EQ(5, st_read_exact(rt, rd, buf, 5, ST_WAIT_MS));
    ASSERT(memcmp(buf, "hello", 5) == 0);
}

TEST(null_buffer_is_an_error_not_a_crash)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd = NULL, *wr = NULL;
    weft_socket *a = NULL, *b = NULL;

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    null_buf_on(rt, rd, wr);
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_stream_close(wr));
    nt_tcp_pair(rt, &a, &b);
    null_buf_on(rt, b, a);
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}

/* End of stream is sticky on a pipe: every later read is 0 at once, and a
 * read_exact is -EPIPE with nothing moved. */
TEST(eof_repeats)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd = NULL, *wr = NULL;
    unsigned char buf[8];
    weft_io_op op;

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_EQ(3, st_write_all(rt, wr, "abc", 3, ST_WAIT_MS));
    ASSERT_OK(weft_stream_close(wr));
    ASSERT_EQ(3, st_read(rt, rd, buf, sizeof(buf), ST_WAIT_MS));
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(0, st_read(rt, rd, buf, sizeof(buf), ST_WAIT_MS));
    weft_read_exact_init(&op, rd, buf, 4);
    ASSERT_EQ(-EPIPE, st_run(rt, &op, ST_WAIT_MS));
    ASSERT_EQ(0, st_read(rt, rd, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_EQ(-EBADF, weft_stream_close(rd));
    ASSERT_EQ(-EBADF, weft_stream_fd(rd));
    weft_runtime_free(rt);
}

/* The same after a read has waited on a stream socket: with io_uring (Linux
 * 6.0+) the socket then receives into weft's buffers, and a read copies
 * from there, not through recv(2) (which would have said -EFAULT): a NULL
 * buffer was copied into (SIGSEGV). Every backend answers -EINVAL, and the
 * bytes stay. */
TEST(null_buffer_after_a_wait_is_einval_not_a_crash)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a = NULL;
    weft_join *j = NULL;
    unsigned char buf[16];
    ssize_t n = -1;
    int sv[2];

    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    ASSERT_OK(weft_socket_adopt(rt, sv[0], &a));
    __atomic_store_n(&st_waiting, 0, __ATOMIC_RELEASE);
    ASSERT_OK(weft_spawn(rt, &st_waiter_future, &(st_waiter){ .s = a }, &j));
    ASSERT(harness_wait_flag(&st_waiting, ST_WAIT_MS));
    nt_raw_write_all(sv[1], "x", 1);
    ASSERT_OK(weft_join_wait(j, &n));
    weft_join_drop(j);
    ASSERT_EQ(1, n);
    /* more bytes land in the receive buffers (where the backend has them) */
    nt_raw_write_all(sv[1], "hello", 5);
    for (int i = 0; i < 20; i++)
        usleep(1000);
    ASSERT_EQ(-EINVAL, st_read(rt, a, NULL, 100, ST_WAIT_MS));
    ASSERT_EQ(-EINVAL, st_read_exact(rt, a, NULL, 5, ST_WAIT_MS));
    ASSERT_EQ(5, st_read_exact(rt, a, buf, 5, ST_WAIT_MS));
    ASSERT(memcmp(buf, "hello", 5) == 0);
    ASSERT_OK(weft_socket_close(a));
    close(sv[1]);
    weft_runtime_free(rt);
}

/* End of stream on a stream socket after a read waited (on io_uring: seen
 * through weft's receive path), then read again and again: 0 each time,
 * at once; bytes sent before the close come first. */
TEST(socket_eof_after_a_wait_repeats)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a = NULL;
    weft_join *j = NULL;
    unsigned char buf[16];
    ssize_t n = -1;
    int sv[2];

    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    ASSERT_OK(weft_socket_adopt(rt, sv[0], &a));
    __atomic_store_n(&st_waiting, 0, __ATOMIC_RELEASE);
    ASSERT_OK(weft_spawn(rt, &st_waiter_future, &(st_waiter){ .s = a }, &j));
    ASSERT(harness_wait_flag(&st_waiting, ST_WAIT_MS));
    nt_raw_write_all(sv[1], "ab", 2);
    ASSERT_OK(weft_join_wait(j, &n));
    weft_join_drop(j);
    ASSERT_EQ(2, n);
    nt_raw_write_all(sv[1], "cd", 2);
    close(sv[1]);
    ASSERT_EQ(2, st_read_exact(rt, a, buf, 2, ST_WAIT_MS));
    ASSERT(memcmp(buf, "cd", 2) == 0);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(0, st_read(rt, a, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_EQ(-EPIPE, st_read_exact(rt, a, buf, 1, ST_WAIT_MS));
    ASSERT_EQ(0, st_read(rt, a, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_OK(weft_socket_close(a));
    weft_runtime_free(rt);
}

/* A read dropped while it waits loses nothing, on any backend: the bytes
 * that come afterwards (on io_uring, into weft's receive buffers meant for
 * the dropped read) go to the next read, in order. */
TEST(dropped_socket_read_loses_nothing)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a = NULL;
    weft_join *j = NULL;
    unsigned char buf[16];
    ssize_t n = -1;
    int sv[2];

    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    ASSERT_OK(weft_socket_adopt(rt, sv[0], &a));
    for (int round = 0; round < 3; round++) {
        __atomic_store_n(&st_waiting, 0, __ATOMIC_RELEASE);
        ASSERT_OK(weft_spawn(rt, &st_waiter_future, &(st_waiter){ .s = a }, &j));
        ASSERT(harness_wait_flag(&st_waiting, ST_WAIT_MS));
        weft_join_abort(j);
        ASSERT_EQ(-ECANCELED, weft_join_wait(j, &n));
        weft_join_drop(j);
        nt_raw_write_all(sv[1], "xyz", 3);
        ASSERT_EQ(3, st_read_exact(rt, a, buf, 3, ST_WAIT_MS));
        ASSERT(memcmp(buf, "xyz", 3) == 0);
    }
    ASSERT_OK(weft_socket_close(a));
    close(sv[1]);
    weft_runtime_free(rt);
}
