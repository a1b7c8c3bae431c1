// SPDX-License-Identifier: MIT
/* Adversarial checks of weft/bufio.h at its edges: zero sizes, max 0, a
 * frame header cut short by the end of stream, an oversized frame skipped
 * and the stream kept in step, lengths past UINT32_MAX and SSIZE_MAX,
 * consume past what is buffered, end of stream reported again and again. */
#include "stream_test.h"

#include <limits.h>
#include <stdint.h>

static ssize_t ba_rd(weft_runtime *rt, weft_bufread *f)
{
    ssize_t n = st_run_future(rt, &weft_bufread_future, f, ST_WAIT_MS);

    weft_bufread_drop(f);
    return n;
}

static ssize_t ba_wr(weft_runtime *rt, weft_bufwrite *f)
{
    ssize_t n = st_run_future(rt, &weft_bufwrite_future, f, ST_WAIT_MS);

    weft_bufwrite_drop(f);
    return n;
}

static void raw(weft_stream *s, const void *p, size_t n)
{
    ASSERT_EQ((ssize_t)n, write(weft_stream_fd(s), p, n));
}

TEST(bufio_zero_sizes_and_max_zero)
{
    weft_runtime *rt = nt_runtime(true);
    weft_stream *rd, *wr;
    weft_bufreader r;
    weft_bufread f;
    char buf[16];
    const void *data;

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_bufreader_init(&r, rd, NULL, 8));
    /* zero-sized requests complete at once without waiting for data */
    weft_bufreader_read_exact_init(&f, &r, buf, 0);
    ASSERT_EQ(0, ba_rd(rt, &f));
    weft_bufreader_read_init(&f, &r, buf, 0);
    ASSERT_EQ(0, ba_rd(rt, &f));
    weft_bufreader_read_init(&f, &r, NULL, 0);
    ASSERT_EQ(0, ba_rd(rt, &f));
    weft_bufreader_fill_init(&f, &r, 0);
    ASSERT_EQ(0, ba_rd(rt, &f));
    /* max 0: no line fits; nothing consumed */
    raw(wr, "ab\ncd\n", 6);
    weft_bufreader_read_line_init(&f, &r, buf, 0);
    ASSERT_EQ(-EMSGSIZE, ba_rd(rt, &f));
    weft_bufreader_read_line_init(&f, &r, buf, 2);   /* "ab\n" is 3 */
    ASSERT_EQ(-EMSGSIZE, ba_rd(rt, &f));
    weft_bufreader_read_line_init(&f, &r, buf, 3);
    ASSERT_EQ(3, ba_rd(rt, &f));
    ASSERT_EQ(0, memcmp(buf, "ab\n", 3));
    /* consume past what is buffered: only what is there */
    ASSERT_EQ(3, weft_bufreader_buffered(&r, &data));
    ASSERT_EQ(0, memcmp(data, "cd\n", 3));
    ASSERT_EQ(3, weft_bufreader_consume(&r, SIZE_MAX));
    ASSERT_EQ(0, weft_bufreader_buffered(&r, NULL));
    /* end of stream: 0, and 0 again, for every kind */
    ASSERT_OK(weft_stream_close(wr));
    for (int i = 0; i < 2; i++) {
        weft_bufreader_read_line_init(&f, &r, buf, sizeof(buf));
        ASSERT_EQ(0, ba_rd(rt, &f));
        weft_bufreader_read_init(&f, &r, buf, sizeof(buf));
        ASSERT_EQ(0, ba_rd(rt, &f));
        weft_bufreader_fill_init(&f, &r, 4);
        ASSERT_EQ(0, ba_rd(rt, &f));
        weft_bufreader_read_exact_init(&f, &r, buf, 4);
        ASSERT_EQ(-EPIPE, ba_rd(rt, &f));
        weft_bufreader_read_frame_init(&f, &r, buf, sizeof(buf));
        ASSERT_EQ(-EPIPE, ba_rd(rt, &f));
    }
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_stream_close(rd));
    weft_runtime_free(rt);
}

/* Frames: an oversized one is -EMSGSIZE with nothing consumed, a skip
 * (dst NULL) discards it whole, the next frame reads fine; a header cut
 * short at the end of stream is not a clean end (-EPROTO), and a length of
 * 0xffffffff cut short is -EPROTO too. */
TEST(bufio_frames_at_the_edges)
{
    weft_runtime *rt = nt_runtime(true);
    weft_stream *rd, *wr;
    weft_bufreader r;
    weft_bufread f;
    char buf[32];

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_bufreader_init(&r, rd, NULL, 16));
    raw(wr, "\0\0\0\x0a" "0123456789" "\0\0\0\x02" "ok" "\0\0\0\0", 24);
    weft_bufreader_read_frame_init(&f, &r, buf, 9);
    ASSERT_EQ(-EMSGSIZE, ba_rd(rt, &f));
    {
        const void *d;

        ASSERT(weft_bufreader_buffered(&r, &d) >= 4);       /* nothing consumed */
        ASSERT_EQ(0, memcmp(d, "\0\0\0\x0a", 4));
    }
    weft_bufreader_read_frame_init(&f, &r, NULL, 0);
    ASSERT_EQ(10, ba_rd(rt, &f));
    weft_bufreader_read_frame_init(&f, &r, buf, sizeof(buf));
    ASSERT_EQ(2, ba_rd(rt, &f));
    ASSERT_EQ(0, memcmp(buf, "ok", 2));
    weft_bufreader_read_frame_init(&f, &r, buf, 0);          /* the empty frame */
    ASSERT_EQ(0, ba_rd(rt, &f));
    raw(wr, "\0\0", 2);                                      /* half a header */
    ASSERT_OK(weft_stream_close(wr));
    weft_bufreader_read_frame_init(&f, &r, buf, sizeof(buf));
    ASSERT_EQ(-EPROTO, ba_rd(rt, &f));
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_stream_close(rd));

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_bufreader_init(&r, rd, NULL, 16));
    raw(wr, "\xff\xff\xff\xff" "abc", 7);
    ASSERT_OK(weft_stream_close(wr));
    weft_bufreader_read_frame_init(&f, &r, buf, sizeof(buf));
    ASSERT_EQ(-EMSGSIZE, ba_rd(rt, &f));
    weft_bufreader_read_frame_init(&f, &r, NULL, 0);
    ASSERT_EQ(-EPROTO, ba_rd(rt, &f));
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_stream_close(rd));
    weft_runtime_free(rt);
}

/* Lengths past UINT32_MAX (a frame) and SSIZE_MAX (anything): refused at
 * the first poll, nothing written, the writer still usable. */
TEST(bufio_writer_huge_lengths)
{
    weft_runtime *rt = nt_runtime(true);
    weft_stream *rd, *wr;
    weft_bufwriter w;
    weft_bufwrite f;
    char buf[8];

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_EQ(-EINVAL, weft_bufwriter_init(&w, wr, NULL, SIZE_MAX));
    ASSERT_EQ(-EINVAL, weft_bufwriter_init(&w, wr, buf, (size_t)SSIZE_MAX + 1));
    ASSERT_OK(weft_bufwriter_init(&w, wr, NULL, 8));
    weft_bufwriter_write_frame_init(&f, &w, buf, (size_t)UINT32_MAX + 1);
    ASSERT_EQ(-EMSGSIZE, ba_wr(rt, &f));
    weft_bufwriter_write_frame_init(&f, &w, buf, SIZE_MAX);
    ASSERT(ba_wr(rt, &f) < 0);
    weft_bufwriter_write_init(&f, &w, buf, SIZE_MAX);
    ASSERT_EQ(-EINVAL, ba_wr(rt, &f));
    weft_bufwriter_write_init(&f, &w, buf, (size_t)SSIZE_MAX + 1);
    ASSERT_EQ(-EINVAL, ba_wr(rt, &f));
    ASSERT_EQ(0, weft_bufwriter_buffered(&w));
    weft_bufwriter_write_frame_init(&f, &w, "hi", 2);
    ASSERT_EQ(2, ba_wr(rt, &f));
    ASSERT_EQ(6, weft_bufwriter_buffered(&w));
    weft_bufwriter_flush_init(&f, &w);
    ASSERT_EQ(0, ba_wr(rt, &f));
    ASSERT_EQ(6, read(weft_stream_fd(rd), buf, sizeof(buf)));
    ASSERT_EQ(0, memcmp(buf, "\0\0\0\x02hi", 6));
    weft_bufwriter_drop(&w);
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_stream_close(wr));
    weft_runtime_free(rt);
}
