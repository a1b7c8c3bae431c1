// SPDX-License-Identifier: MIT
/* A seventh look at weft/bufio.h (public API only): end of stream inside a
 * line longer than max or as long as the buffer, inside a read_exact and
 * a frame; a writer whose peer is gone; a copy whose destination is
 * closed while it waits on its source. Registered for both backends
 * (epoll, and as uring.stream.bufio_audit7.* with WEFT_IO_BACKEND=uring).
 * Each future runs under a 5 s limit (ST_WAIT_MS): "at once" is far below
 * it, and a hang fails instead of stalling. */
#include "stream_test.h"

#include <limits.h>
#include <signal.h>
#include <stdint.h>

static ssize_t rd(weft_runtime *rt, weft_bufread *f)
{
    ssize_t n = st_run_future(rt, &weft_bufread_future, f, ST_WAIT_MS);

    weft_bufread_drop(f);
    return n;
}

static ssize_t wr(weft_runtime *rt, weft_bufwrite *f)
{
    ssize_t n = st_run_future(rt, &weft_bufwrite_future, f, ST_WAIT_MS);

    weft_bufwrite_drop(f);
    return n;
}

/* A socket pair (a: ours, raw peer fd b) with `data` sent by b, then b's
 * end shut down for writing (end of stream after the data). */
static void pair_with_data(weft_runtime *rt, weft_socket **a, weft_socket **b, const void *data,
                           size_t n)
{
    nt_tcp_pair(rt, a, b);
    if (n)
        nt_raw_write_all(weft_socket_fd(*b), data, n);
    ASSERT_OK(weft_socket_shutdown(*b, SHUT_WR));
}

/* End of stream inside a last line longer than max (the buffer could hold
 * it): -EMSGSIZE, nothing consumed; the skip discards it (its length);
 * then end of stream: 0, and 0 again. */
TEST(eof_inside_a_line_longer_than_max)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a, *b;
    weft_bufreader r;
    weft_bufread f;
    char dst[64];
    const void *p;

    pair_with_data(rt, &a, &b, "abcdefghij", 10);
    ASSERT_OK(weft_bufreader_init(&r, a, NULL, 64));
    weft_bufreader_read_line_init(&f, &r, dst, 4);
    ASSERT_EQ(-EMSGSIZE, rd(rt, &f));
    ASSERT(weft_bufreader_buffered(&r, &p) >= 4u);
    ASSERT_EQ(0, memcmp(p, "abcd", 4));
    weft_bufreader_read_line_init(&f, &r, NULL, 0);
    ASSERT_EQ(10, rd(rt, &f));
    weft_bufreader_read_line_init(&f, &r, dst, sizeof(dst));
    ASSERT_EQ(0, rd(rt, &f));
    weft_bufreader_read_line_init(&f, &r, dst, sizeof(dst));
    ASSERT_EQ(0, rd(rt, &f));
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}

/* End of stream after a last line that fills the buffer exactly, no
 * delimiter: -EMSGSIZE (no delimiter within the capacity), the reader
 * stays usable: read() hands the bytes out, then 0. */
TEST(eof_after_a_line_as_long_as_the_buffer)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a, *b;
    weft_bufreader r;
    weft_bufread f;
    char dst[64], buf[16];

    pair_with_data(rt, &a, &b, "0123456789abcdef", 16);
    ASSERT_OK(weft_bufreader_init(&r, a, buf, sizeof(buf)));
    weft_bufreader_read_line_init(&f, &r, dst, sizeof(dst));
    ASSERT_EQ(-EMSGSIZE, rd(rt, &f));
    ASSERT_EQ(16u, weft_bufreader_buffered(&r, NULL));
    weft_bufreader_read_init(&f, &r, dst, sizeof(dst));
    ASSERT_EQ(16, rd(rt, &f));
    ASSERT_EQ(0, memcmp(dst, "0123456789abcdef", 16));
    weft_bufreader_read_line_init(&f, &r, dst, sizeof(dst));
    ASSERT_EQ(0, rd(rt, &f));
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}

/* read_exact of n <= capacity cut by end of stream: -EPIPE, "all or
 * nothing": the bytes that came stay buffered for a smaller read; a frame
 * whose header is cut: -EPROTO; at a clean end: -EPIPE. */
TEST(eof_inside_read_exact_and_frames_keeps_the_bytes)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a, *b;
    weft_bufreader r;
    weft_bufread f;
    char dst[64];
    const void *p;

    pair_with_data(rt, &a, &b, "\0\0\0\2hi\0\0", 8);
    ASSERT_OK(weft_bufreader_init(&r, a, NULL, 32));
    weft_bufreader_read_exact_init(&f, &r, dst, 20);
    ASSERT_EQ(-EPIPE, rd(rt, &f));
    ASSERT_EQ(8u, weft_bufreader_buffered(&r, &p));
    ASSERT_EQ(0, memcmp(p, "\0\0\0\2hi", 6));
    weft_bufreader_read_frame_init(&f, &r, dst, sizeof(dst));
    ASSERT_EQ(2, rd(rt, &f));
    ASSERT_EQ(0, memcmp(dst, "hi", 2));
    weft_bufreader_read_frame_init(&f, &r, dst, sizeof(dst));
    ASSERT_EQ(-EPROTO, rd(rt, &f));     /* two bytes of a header */
    ASSERT_EQ(2u, weft_bufreader_consume(&r, 100));
    weft_bufreader_read_frame_init(&f, &r, dst, sizeof(dst));
    ASSERT_EQ(-EPIPE, rd(rt, &f));
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}

/* A writer whose peer is gone: the flush fails (-EPIPE or -ECONNRESET,
 * no SIGPIPE), and the bytes it did not write stay buffered. */
TEST(writer_to_a_gone_peer_keeps_its_bytes)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a, *b;
    weft_bufwriter w;
    weft_bufwrite f;
    ssize_t n = 0;
    static char chunk[4096];

    signal(SIGPIPE, SIG_DFL);
    nt_tcp_pair(rt, &a, &b);
    ASSERT_OK(weft_bufwriter_init(&w, a, NULL, sizeof(chunk)));
    nt_raw_write_all(weft_socket_fd(b), "unread", 6);
    ASSERT_OK(weft_socket_close(b));     /* unread bytes: a reset */
    for (int i = 0; i < 1000 && n >= 0; i++) {
        weft_bufwriter_write_init(&f, &w, chunk, sizeof(chunk));
        n = wr(rt, &f);
        if (n >= 0) {
            weft_bufwriter_flush_init(&f, &w);
            n = wr(rt, &f);
        }
    }
    ASSERT(n == -EPIPE || n == -ECONNRESET);
    ASSERT(weft_bufwriter_buffered(&w) >= 1u);
    weft_bufwriter_flush_init(&f, &w);
    n = wr(rt, &f);
    ASSERT(n == -EPIPE || n == -ECONNRESET);
    weft_bufwriter_drop(&w);
    ASSERT_OK(weft_socket_close(a));
    weft_runtime_free(rt);
}

/* A copy under a limit that is checked BEFORE the copy is polled again:
 * a copy that was never woken ends with -ETIMEDOUT, even though a poll at
 * that moment would find its destination closed. */
typedef struct copy_limited {
    weft_copy *c;
    weft_sleep limit;
    bool init;
} copy_limited;

static weft_poll copy_limited_poll(copy_limited *f, weft_context *cx, ssize_t *out)
{
    if (!f->init) {
        weft_sleep_init(&f->limit, ST_WAIT_MS);
        f->init = true;
    } else if (weft_sleep_poll(&f->limit, cx) == WEFT_READY) {
        *out = -ETIMEDOUT;
        return WEFT_READY;
    }
    if (weft_copy_poll(f->c, cx, out) == WEFT_READY)
        return WEFT_READY;
    (void)weft_sleep_poll(&f->limit, cx);     /* arm it */
    return WEFT_PENDING;
}

static void copy_limited_drop(copy_limited *f)
{
    if (f->init)
        weft_sleep_drop(&f->limit);
}

WEFT_DEFINE_FUTURE(copy_limited, copy_limited_poll, copy_limited_drop, ssize_t);

/* bufio.h: "the stream's own errors pass through: -EBADF when the stream
 * is closed, also while a future waits". A copy waits on its source; its
 * destination is closed meanwhile: the copy ends with -EBADF (not when
 * the source next has bytes, which may be never), and no byte of the
 * source is taken for it. Through the buffer (socket to socket) and by
 * splice (pipe to socket). */
static void check_copy_to_closed(bool splice, bool close_from)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *in_a, *in_b, *out_a, *out_b;
    weft_join *j;
    weft_copy *c = calloc(1, sizeof(*c));
    ssize_t n = -12345;
    char buf[8];

    ASSERT(c != NULL);
    if (splice)
        ASSERT_OK(weft_pipe(rt, &in_a, &in_b));  /* read in_a, write in_b */
    else
        nt_tcp_pair(rt, &in_a, &in_b);
    nt_tcp_pair(rt, &out_a, &out_b);
    if (close_from) {
        /* the copy blocks writing: out_b never reads, small buffers, and
         * more bytes in the source than they hold */
        static char big[1 << 20];

        nt_small_buffers(weft_socket_fd(out_a));
        nt_small_buffers(weft_socket_fd(out_b));
        if (splice)
            fcntl(weft_socket_fd(in_b), F_SETPIPE_SZ, 1 << 20);
        else
            nt_buffers(weft_socket_fd(in_b), 1 << 20);
        ASSERT(write(weft_socket_fd(in_b), big, sizeof(big)) > 200000);
    }
    weft_copy_init(c, in_a, out_a);
    ASSERT_OK(weft_spawn(rt, &copy_limited_future, &(copy_limited){ .c = c }, &j));
    usleep(30000);                    /* let it wait (not needed) */
    ASSERT_OK(weft_socket_close(close_from ? in_a : out_a));
    ASSERT_OK(weft_join_wait(j, &n));
    weft_join_drop(j);
    ASSERT_EQ(-EBADF, n);
    weft_copy_drop(c);
    if (!close_from) {
        /* the source's bytes are still all there */
        ASSERT_EQ(3, write(weft_socket_fd(in_b), "abc", 3));
        ASSERT_EQ(3, st_read(rt, in_a, buf, sizeof(buf), ST_WAIT_MS));
        ASSERT_EQ(0, memcmp(buf, "abc", 3));
        ASSERT_OK(weft_socket_close(in_a));
        ASSERT_OK(weft_socket_close(out_b));
    } else {
        ASSERT_OK(weft_socket_close(out_a));
        ASSERT_OK(weft_socket_close(out_b));
    }
    ASSERT_OK(weft_socket_close(in_b));
    weft_runtime_free(rt);
    free(c);
}

TEST(copy_ends_when_its_destination_is_closed_while_it_waits)
{
    check_copy_to_closed(false, false);
}

TEST(splice_copy_ends_when_its_destination_is_closed_while_it_waits)
{
    check_copy_to_closed(true, false);
}

TEST(copy_ends_when_its_source_is_closed_while_it_writes)
{
    check_copy_to_closed(false, true);
}

TEST(splice_copy_ends_when_its_source_is_closed_while_it_writes)
{
    check_copy_to_closed(true, true);
}

/* A copy (by splice: pipe to socket) into a socket whose peer is gone:
 * -EPIPE or -ECONNRESET, and no SIGPIPE (bufio.h: "SIGPIPE is never
 * raised"; the default action would kill this process). */
TEST(splice_copy_into_a_reset_socket_raises_no_sigpipe)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *in_a, *in_b, *out_a, *out_b;
    weft_copy *c = calloc(1, sizeof(*c));
    weft_join *j;
    ssize_t n = -12345;
    static char chunk[65536];

    ASSERT(c != NULL);
    signal(SIGPIPE, SIG_DFL);
    ASSERT_OK(weft_pipe(rt, &in_a, &in_b));
    nt_tcp_pair(rt, &out_a, &out_b);
    nt_raw_write_all(weft_socket_fd(out_a), "unread", 6);
    usleep(20000);
    ASSERT_OK(weft_socket_close(out_b));    /* unread bytes: a reset */
    usleep(20000);
    weft_copy_init(c, in_a, out_a);
    ASSERT_OK(weft_spawn(rt, &copy_limited_future, &(copy_limited){ .c = c }, &j));
    for (int i = 0; i < 64; i++)
        if (write(weft_socket_fd(in_b), chunk, sizeof(chunk)) < 0)
            break;
    ASSERT_OK(weft_socket_close(in_b));     /* end of the source */
    ASSERT_OK(weft_join_wait(j, &n));
    weft_join_drop(j);
    if (n != -EPIPE && n != -ECONNRESET)
        harness_fail(__FILE__, __LINE__, "copy: %zd (%s)", n, weft_strerror((int)n));
    weft_copy_drop(c);
    ASSERT_OK(weft_socket_close(in_a));
    ASSERT_OK(weft_socket_close(out_a));
    weft_runtime_free(rt);
    free(c);
}
