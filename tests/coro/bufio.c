/* SPDX-License-Identifier: MIT */
/* Buffered streams from coroutines: lines in, frames out, through
 * weft_co_read_line / weft_co_bufwrite / weft_co_flush and friends. */
#include "coro_test.h"

#include <string.h>
#include <unistd.h>

struct bufio_arg {
    weft_stream *rd, *wr;
};

static int bufio_fn(void *p)
{
    struct bufio_arg *a = p;
    weft_bufreader r;
    weft_bufwriter w;
    char line[32];
    ssize_t n;

    ASSERT_OK(weft_bufreader_init(&r, a->rd, NULL, 16));
    ASSERT_OK(weft_bufwriter_init(&w, a->wr, NULL, 64));
    /* the writer's bytes come back through the pipe to the reader */
    ASSERT_EQ(6, weft_co_bufwrite(&w, "one\ntw", 6));
    ASSERT_EQ(6, weft_bufwriter_buffered(&w));
    ASSERT_EQ(0, weft_co_flush(&w));
    ASSERT_EQ(4, weft_co_read_line(&r, line, sizeof(line)));
    ASSERT_EQ(0, memcmp(line, "one\n", 4));
    ASSERT_EQ(3, weft_co_bufwrite(&w, "o;x", 3));
    ASSERT_EQ(5, weft_co_write_frame(&w, "hello", 5));
    ASSERT_EQ(0, weft_co_flush(&w));
    ASSERT_EQ(4, weft_co_read_until(&r, ';', line, sizeof(line)));
    ASSERT_EQ(0, memcmp(line, "two;", 4));
    ASSERT_EQ(1, weft_co_bufread_exact(&r, line, 1));
    ASSERT_EQ('x', line[0]);
    ASSERT_EQ(5, weft_co_read_frame(&r, line, sizeof(line)));
    ASSERT_EQ(0, memcmp(line, "hello", 5));
    ASSERT_EQ(2, weft_co_write_frame(&w, "hi", 2));
    ASSERT_EQ(0, weft_co_flush(&w));
    ASSERT_EQ(-EMSGSIZE, weft_co_read_frame(&r, line, 1));
    ASSERT_EQ(2, weft_co_read_frame(&r, NULL, 0));
    ASSERT_OK(weft_stream_close(a->wr));
    n = weft_co_read_line(&r, line, sizeof(line));
    weft_bufreader_drop(&r);
    weft_bufwriter_drop(&w);
    return (int)n;
}

TEST(co_bufio_lines_and_frames)
{
    weft_runtime *rt = ct_runtime(2);
    struct bufio_arg a;
    int result = -1;
    char line[8];
    weft_bufreader r;

    ASSERT_OK(weft_pipe(rt, &a.rd, &a.wr));
    ASSERT_OK(weft_co_block_on(rt, bufio_fn, &a, NULL, &result));
    ASSERT_EQ(0, result);             /* end of stream */
    ASSERT_OK(weft_stream_close(a.rd));
    /* outside a coroutine: -EINVAL */
    ASSERT_OK(weft_pipe(rt, &a.rd, &a.wr));
    ASSERT_OK(weft_bufreader_init(&r, a.rd, NULL, 16));
    ASSERT_EQ(-EINVAL, weft_co_read_line(&r, line, sizeof(line)));
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_stream_close(a.rd));
    ASSERT_OK(weft_stream_close(a.wr));
    CT_FREE(rt);
}
