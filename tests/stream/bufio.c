/* SPDX-License-Identifier: MIT */
/* Buffered streams (issue 11, item 3): the reader (lines, delimiters, exact
 * reads, peeking, end of stream, -EMSGSIZE and recovery, a dropped read
 * that loses nothing), the writer (buffering, flush against a full pipe, a
 * dropped flush), copy between a pipe and a socket, frames, bad arguments,
 * close while a future waits. */
#include "stream_test.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- helpers ------------------------------------------------------------------------ */
static ssize_t bt_run(weft_runtime *rt, const weft_future_type *type, void *fut, uint64_t ms)
{
    return st_run_future(rt, type, fut, ms);
}

static ssize_t bt_rd(weft_runtime *rt, weft_bufread *f, uint64_t ms)
{
    ssize_t n = bt_run(rt, &weft_bufread_future, f, ms);

    weft_bufread_drop(f);             /* dropped already: idempotent */
    return n;
}

static ssize_t bt_line(weft_runtime *rt, weft_bufreader *r, char *dst, size_t max, uint64_t ms)
{
    weft_bufread f;

    weft_bufreader_read_line_init(&f, r, dst, max);
    return bt_rd(rt, &f, ms);
}

static ssize_t bt_exact(weft_runtime *rt, weft_bufreader *r, void *dst, size_t n)
{
    weft_bufread f;

    weft_bufreader_read_exact_init(&f, r, dst, n);
    return bt_rd(rt, &f, ST_WAIT_MS);
}

static ssize_t bt_wr(weft_runtime *rt, weft_bufwrite *f, uint64_t ms)
{
    ssize_t n = bt_run(rt, &weft_bufwrite_future, f, ms);

    weft_bufwrite_drop(f);
    return n;
}

static void raw_write(weft_stream *s, const void *p, size_t n)
{
    int fd = weft_stream_fd(s);

    ASSERT(fd >= 0);
    ASSERT_EQ((ssize_t)n, write(fd, p, n));
}

/* A line read equals `want` (length and bytes). */
#define ASSERT_LINE(want, got, n)                                             \
    do {                                                                      \
        ASSERT_EQ((ssize_t)strlen(want), (n));                                \
        ASSERT_EQ(0, memcmp((want), (got), strlen(want)));                    \
    } while (0)

/* ---- lines ---------------------------------------------------------------------------- */
#define BB_LINES 40

static void *byte_writer(void *arg)
{
    int fd = *(int *)arg;
    char line[32];

    for (int i = 0; i < BB_LINES; i++) {
        int n = snprintf(line, sizeof(line), "line number %d\n", i);

        for (int k = 0; k < n; k++) {
            struct pollfd p = { .fd = fd, .events = POLLOUT };

            poll(&p, 1, 1000);
            ASSERT_EQ(1, write(fd, &line[k], 1));
            if ((k & 3) == 0)
                usleep(50);
        }
    }
    shutdown(fd, SHUT_WR);
    return NULL;
}

/* Lines that arrive one byte at a time come out whole. */
TEST(bufio_lines_byte_by_byte)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a, *b;
    weft_bufreader r;
    pthread_t th;
    char got[64], want[32];
    int fd;

    nt_tcp_pair(rt, &a, &b);
    fd = weft_socket_fd(a);
    ASSERT_OK(weft_bufreader_init(&r, b, NULL, 64));
    ASSERT_EQ(0, pthread_create(&th, NULL, byte_writer, &fd));
    for (int i = 0; i < BB_LINES; i++) {
        ssize_t n = bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS);

        snprintf(want, sizeof(want), "line number %d\n", i);
        ASSERT_LINE(want, got, n);
    }
    ASSERT_EQ(0, bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS));
    ASSERT_EQ(0, pthread_join(th, NULL));
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}

/* A line longer than the limit: -EMSGSIZE, nothing consumed, then skip it
 * and go on. Both limits: the buffer's capacity and max. */
TEST(bufio_long_line_emsgsize_then_recovery)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr;
    weft_bufreader r;
    weft_bufread f;
    const void *data;
    char got[64];

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    /* the capacity (16) bounds the line */
    ASSERT_OK(weft_bufreader_init(&r, rd, NULL, 16));
    raw_write(wr, "0123456789abcdefghij\nok\n", 24);
    ASSERT_EQ(-EMSGSIZE, bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS));
    ASSERT_EQ(16, weft_bufreader_buffered(&r, &data));
    ASSERT_EQ(0, memcmp(data, "0123456789abcdef", 16));
    ASSERT_EQ(-EMSGSIZE, bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS));   /* again */
    weft_bufreader_read_until_init(&f, &r, '\n', NULL, 0);                  /* skip it */
    ASSERT_EQ(21, bt_rd(rt, &f, ST_WAIT_MS));
    ASSERT_LINE("ok\n", got, bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS));
    weft_bufreader_drop(&r);
    /* max (4) below the capacity */
    ASSERT_OK(weft_bufreader_init(&r, rd, NULL, 64));
    raw_write(wr, "hello\nhi\n", 9);
    ASSERT_EQ(-EMSGSIZE, bt_line(rt, &r, got, 4, ST_WAIT_MS));
    ASSERT_EQ(9, weft_bufreader_buffered(&r, &data));
    ASSERT_LINE("hello\n", got, bt_line(rt, &r, got, 6, ST_WAIT_MS));       /* max fits */
    ASSERT_LINE("hi\n", got, bt_line(rt, &r, got, 4, ST_WAIT_MS));
    /* a line of exactly max + 1 with no delimiter yet is refused before
     * its end arrives */
    raw_write(wr, "abcde", 5);
    ASSERT_EQ(-EMSGSIZE, bt_line(rt, &r, got, 4, ST_WAIT_MS));
    ASSERT_EQ(5, weft_bufreader_consume(&r, 100));
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_stream_close(wr));
    weft_runtime_free(rt);
}

/* A delimiter as the buffer's last byte, a line that must be moved to the
 * front of the buffer to finish, and one byte too many. */
TEST(bufio_delimiter_at_buffer_boundary)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr;
    weft_bufreader r;
    unsigned char mem[8];
    char got[16];

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_bufreader_init(&r, rd, mem, sizeof(mem)));   /* lent buffer */
    raw_write(wr, "1234567\n", 8);
    ASSERT_LINE("1234567\n", got, bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS));
    raw_write(wr, "ab\ncdefg", 8);                                  /* fills it */
    ASSERT_LINE("ab\n", got, bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS));
    raw_write(wr, "h\n", 2);                                        /* needs the front */
    ASSERT_LINE("cdefgh\n", got, bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS));
    raw_write(wr, "12345678\n", 9);                                 /* 9 > 8 */
    ASSERT_EQ(-EMSGSIZE, bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS));
    ASSERT_EQ(8, weft_bufreader_consume(&r, 8));
    ASSERT_LINE("\n", got, bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS));
    /* another delimiter */
    raw_write(wr, "k=v;x", 5);
    {
        weft_bufread f;

        weft_bufreader_read_until_init(&f, &r, ';', got, sizeof(got));
        ASSERT_EQ(4, bt_rd(rt, &f, ST_WAIT_MS));
        ASSERT_EQ(0, memcmp(got, "k=v;", 4));
    }
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_stream_close(wr));
    weft_runtime_free(rt);
}

/* The last line without a newline comes at end of stream; then 0, 0. */
TEST(bufio_eof_without_trailing_newline)
{
    weft_runtime *rt = nt_runtime(true);
    weft_stream *rd, *wr;
    weft_bufreader r;
    char got[16];

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_bufreader_init(&r, rd, NULL, 32));
    raw_write(wr, "a\nlast", 6);
    ASSERT_OK(weft_stream_close(wr));
    ASSERT_LINE("a\n", got, bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS));
    ASSERT_LINE("last", got, bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS));
    ASSERT_EQ(0, bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS));
    ASSERT_EQ(0, bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS));
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_stream_close(rd));
    weft_runtime_free(rt);
}

/* The promise: a read_line dropped while it waits (here by a timeout) for
 * the rest of its line loses none of the bytes it had read. */
TEST(bufio_dropped_read_line_loses_nothing)
{
    for (int current = 0; current < 2; current++) {
        weft_runtime *rt = nt_runtime(current);
        weft_stream *rd, *wr;
        weft_bufreader r;
        char got[32];

        ASSERT_OK(weft_pipe(rt, &rd, &wr));
        ASSERT_OK(weft_bufreader_init(&r, rd, NULL, 32));
        raw_write(wr, "hello wo", 8);
        ASSERT_EQ(-ETIMEDOUT, bt_line(rt, &r, got, sizeof(got), ST_SHORT_MS));
        ASSERT_EQ(8, weft_bufreader_buffered(&r, NULL));
        raw_write(wr, "rl", 2);
        ASSERT_EQ(-ETIMEDOUT, bt_line(rt, &r, got, sizeof(got), ST_SHORT_MS));
        raw_write(wr, "d\nnext", 6);
        ASSERT_LINE("hello world\n", got, bt_line(rt, &r, got, sizeof(got), ST_WAIT_MS));
        /* the same for read_exact within the capacity */
        {
            weft_bufread f;

            weft_bufreader_read_exact_init(&f, &r, got, 10);
            ASSERT_EQ(-ETIMEDOUT, bt_rd(rt, &f, ST_SHORT_MS));
            ASSERT_EQ(4, weft_bufreader_buffered(&r, NULL));
            raw_write(wr, "\0\0\0\3xyz", 8);
            ASSERT_EQ(10, bt_exact(rt, &r, got, 10));
            ASSERT_EQ(0, memcmp(got, "next\0\0\0\3xy", 10));
        }
        ASSERT_EQ(1, weft_bufreader_consume(&r, 1));
        weft_bufreader_drop(&r);
        ASSERT_OK(weft_stream_close(rd));
        ASSERT_OK(weft_stream_close(wr));
        weft_runtime_free(rt);
    }
}

/* ---- exact reads and peeking ------------------------------------------------------------- */
#define EX_SEED 5u
#define EX_LEN 20000u

static void *pattern_writer(void *arg)
{
    int fd = *(int *)arg;
    static unsigned char buf[EX_LEN];
    size_t off = 0;

    nt_fill(buf, sizeof(buf), EX_SEED);
    while (off < sizeof(buf)) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        size_t k = 1 + (off * 7919u) % 3000u;
        ssize_t r;

        if (k > sizeof(buf) - off)
            k = sizeof(buf) - off;
        poll(&p, 1, 1000);
        r = write(fd, buf + off, k);
        if (r > 0)
            off += (size_t)r;
        usleep(20);
    }
    return NULL;
}

TEST(bufio_read_exact_across_refills)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr;
    weft_bufreader r;
    pthread_t th;
    unsigned char got[1000];
    size_t off = 0, sizes[] = { 1, 10, 16, 17, 100, 999, 5 };
    int fd;

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    fd = weft_stream_fd(wr);
    ASSERT_OK(weft_bufreader_init(&r, rd, NULL, 16));
    ASSERT_EQ(0, pthread_create(&th, NULL, pattern_writer, &fd));
    for (unsigned i = 0; off < EX_LEN; i++) {
        size_t n = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];

        if (n > EX_LEN - off)
            n = EX_LEN - off;
        ASSERT_EQ((ssize_t)n, bt_exact(rt, &r, got, n));
        ASSERT_EQ(n, nt_check(got, n, EX_SEED, off));
        off += n;
    }
    ASSERT_EQ(0, pthread_join(th, NULL));
    /* end of stream before n: -EPIPE; within the capacity nothing is lost */
    raw_write(wr, "abc", 3);
    ASSERT_OK(weft_stream_close(wr));
    ASSERT_EQ(-EPIPE, bt_exact(rt, &r, got, 8));
    ASSERT_EQ(3, weft_bufreader_buffered(&r, NULL));
    ASSERT_EQ(3, bt_exact(rt, &r, got, 3));
    ASSERT_EQ(0, memcmp(got, "abc", 3));
    ASSERT_EQ(-EPIPE, bt_exact(rt, &r, got, 100));
    ASSERT_EQ(0, bt_exact(rt, &r, got, 0));
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_stream_close(rd));
    weft_runtime_free(rt);
}

TEST(bufio_peek_and_read)
{
    weft_runtime *rt = nt_runtime(true);
    weft_stream *rd, *wr;
    weft_bufreader r;
    weft_bufread f;
    const void *data;
    char got[64];

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_bufreader_init(&r, rd, NULL, 8));
    raw_write(wr, "ab", 2);
    weft_bufreader_fill_init(&f, &r, 4);
    ASSERT_EQ(-ETIMEDOUT, bt_rd(rt, &f, ST_SHORT_MS));      /* only 2 there */
    raw_write(wr, "cdef", 4);
    weft_bufreader_fill_init(&f, &r, 4);
    ASSERT_EQ(6, bt_rd(rt, &f, ST_WAIT_MS));
    ASSERT_EQ(6, weft_bufreader_buffered(&r, &data));
    ASSERT_EQ(0, memcmp(data, "abcdef", 6));
    ASSERT_EQ(2, weft_bufreader_consume(&r, 2));
    weft_bufreader_fill_init(&f, &r, 0);                    /* at once */
    ASSERT_EQ(4, bt_rd(rt, &f, ST_WAIT_MS));
    weft_bufreader_fill_init(&f, &r, 9);                    /* above the capacity */
    ASSERT_EQ(-EINVAL, bt_rd(rt, &f, ST_WAIT_MS));
    /* read: what is buffered first, then the stream (straight into dst) */
    weft_bufreader_read_init(&f, &r, got, sizeof(got));
    ASSERT_EQ(4, bt_rd(rt, &f, ST_WAIT_MS));
    ASSERT_EQ(0, memcmp(got, "cdef", 4));
    raw_write(wr, "0123456789", 10);
    weft_bufreader_read_init(&f, &r, got, sizeof(got));
    ASSERT_EQ(10, bt_rd(rt, &f, ST_WAIT_MS));
    ASSERT_EQ(0, weft_bufreader_buffered(&r, NULL));
    raw_write(wr, "xyz", 3);
    weft_bufreader_read_init(&f, &r, got, 2);                /* through the buffer */
    ASSERT_EQ(2, bt_rd(rt, &f, ST_WAIT_MS));
    ASSERT_EQ(1, weft_bufreader_buffered(&r, NULL));
    ASSERT_OK(weft_stream_close(wr));
    weft_bufreader_fill_init(&f, &r, 8);                    /* end of stream: short */
    ASSERT_EQ(1, bt_rd(rt, &f, ST_WAIT_MS));
    ASSERT_EQ(1, weft_bufreader_consume(&r, 5));
    weft_bufreader_fill_init(&f, &r, 1);
    ASSERT_EQ(0, bt_rd(rt, &f, ST_WAIT_MS));
    weft_bufreader_read_init(&f, &r, got, sizeof(got));
    ASSERT_EQ(0, bt_rd(rt, &f, ST_WAIT_MS));
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_stream_close(rd));
    weft_runtime_free(rt);
}

/* Beyond the capacity a read_exact is piecewise: dropped, it tells how
 * much it moved, and a write straight from the caller's buffer the same. */
TEST(bufio_piecewise_progress_when_dropped)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr;
    weft_bufreader r;
    weft_bufwriter w;
    weft_bufread f;
    weft_bufwrite wf;
    unsigned char got[30], big[100];

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_bufreader_init(&r, rd, NULL, 8));
    raw_write(wr, "abcdefghijklmnopqrst", 20);
    weft_bufreader_read_exact_init(&f, &r, got, sizeof(got));
    ASSERT_EQ(-ETIMEDOUT, bt_run(rt, &weft_bufread_future, &f, ST_SHORT_MS));
    ASSERT_EQ(20, weft_bufread_moved(&f));
    ASSERT_EQ(0, memcmp(got, "abcdefghijklmnopqrst", 20));
    ASSERT_EQ(0, weft_bufreader_buffered(&r, NULL));
    raw_write(wr, "uv", 2);
    ASSERT_EQ(2, bt_exact(rt, &r, got, 2));
    ASSERT_EQ(0, memcmp(got, "uv", 2));
    /* a write longer than the writer's buffer into a full pipe */
    ASSERT_OK(weft_bufwriter_init(&w, wr, NULL, 8));
    st_fill_pipe(wr);
    nt_fill(big, sizeof(big), 2);
    weft_bufwriter_write_init(&wf, &w, big, sizeof(big));
    ASSERT_EQ(-ETIMEDOUT, bt_run(rt, &weft_bufwrite_future, &wf, ST_SHORT_MS));
    ASSERT_EQ(0, weft_bufwrite_moved(&wf));
    ASSERT_EQ(0, weft_bufwriter_buffered(&w));
    weft_bufwriter_drop(&w);
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_stream_close(wr));
    weft_runtime_free(rt);
}

/* ---- the writer ---------------------------------------------------------------------------- */
#define WR_SEED 7u

typedef struct slow_writer {
    weft_async co;
    weft_bufwriter *w;
    weft_stream *s;
    const unsigned char *buf;
    size_t len, off, k;
    unsigned i;
    weft_bufwrite f;
    ssize_t n;
} slow_writer;

static weft_poll slow_writer_poll(slow_writer *t, weft_context *cx, ssize_t *out)
{
    static const size_t sizes[] = { 100, 5000, 37, 4096, 1, 4095, 9000, 700 };

    WEFT_BEGIN(&t->co);
    while (t->off < t->len) {
        t->k = sizes[t->i++ % 8];
        if (t->k > t->len - t->off)
            t->k = t->len - t->off;
        weft_bufwriter_write_init(&t->f, t->w, t->buf + t->off, t->k);
        WEFT_AWAIT(&t->co, weft_bufwrite_poll(&t->f, cx, &t->n));
        if (t->n != (ssize_t)t->k)
            break;
        t->off += t->k;
    }
    if (t->off == t->len) {
        weft_bufwriter_flush_init(&t->f, t->w);
        WEFT_AWAIT(&t->co, weft_bufwrite_poll(&t->f, cx, &t->n));
    }
    *out = t->off == t->len && t->n == 0 && weft_bufwriter_buffered(t->w) == 0
               ? (ssize_t)t->len : t->n < 0 ? t->n : -EIO;
    weft_stream_close(t->s);          /* the reader sees end of stream */
    WEFT_END(&t->co);
}

static void slow_writer_drop(slow_writer *t)
{
    weft_bufwrite_drop(&t->f);
}

WEFT_DEFINE_FUTURE(slow_writer, slow_writer_poll, slow_writer_drop, ssize_t);

/* Reads in small pieces, sleeping now and then: the pipe fills up. */
typedef struct slow_reader {
    weft_async co;
    weft_stream *s;
    uint32_t seed;
    size_t got, bad;
    unsigned i;
    weft_io_op op;
    weft_sleep sl;
    ssize_t n;
    unsigned char buf[3001];
} slow_reader;

static weft_poll slow_reader_poll(slow_reader *t, weft_context *cx, ssize_t *out)
{
    WEFT_BEGIN(&t->co);
    for (;;) {
        if (++t->i % 32 == 0) {
            weft_sleep_init(&t->sl, 1);
            WEFT_AWAIT(&t->co, weft_sleep_poll(&t->sl, cx));
            weft_sleep_drop(&t->sl);
        }
        weft_read_init(&t->op, t->s, t->buf, sizeof(t->buf));
        WEFT_AWAIT(&t->co, weft_io_op_poll(&t->op, cx, &t->n));
        weft_io_op_drop(&t->op);
        if (t->n <= 0)
            break;
        if (nt_check(t->buf, (size_t)t->n, t->seed, t->got) != (size_t)t->n)
            t->bad++;
        t->got += (size_t)t->n;
    }
    *out = t->n < 0 ? t->n : t->bad ? -EILSEQ : (ssize_t)t->got;
    WEFT_END(&t->co);
}

static void slow_reader_drop(slow_reader *t)
{
    weft_io_op_drop(&t->op);
    weft_sleep_drop(&t->sl);
}

WEFT_DEFINE_FUTURE(slow_reader, slow_reader_poll, slow_reader_drop, ssize_t);

TEST(bufio_writer_flush_with_slow_reader)
{
    for (int current = 0; current < 2; current++) {
        weft_runtime *rt = nt_runtime(current);
        size_t len = harness_scale(1u << 20);
        unsigned char *buf, mem[4096];
        weft_stream *rd, *wr;
        weft_bufwriter w;
        weft_join *jw, *jr;
        ssize_t nw = 0, nr = 0;

        if (len < (256u << 10))
            len = 256u << 10;         /* several pipes' worth */
        buf = malloc(len);
        ASSERT(buf != NULL);
        nt_fill(buf, len, WR_SEED);
        ASSERT_OK(weft_pipe(rt, &rd, &wr));
        ASSERT_OK(weft_bufwriter_init(&w, wr, mem, sizeof(mem)));
        ASSERT_OK(weft_spawn(rt, &slow_writer_future,
                             &(slow_writer){ .w = &w, .s = wr, .buf = buf, .len = len }, &jw));
        ASSERT_OK(weft_spawn(rt, &slow_reader_future,
                             &(slow_reader){ .s = rd, .seed = WR_SEED }, &jr));
        if (current)
            ASSERT_OK(weft_runtime_run(rt));
        ASSERT_OK(weft_join_wait(jw, &nw));
        ASSERT_OK(weft_join_wait(jr, &nr));
        weft_join_drop(jw);
        weft_join_drop(jr);
        ASSERT_EQ((ssize_t)len, nw);
        ASSERT_EQ((ssize_t)len, nr);
        weft_bufwriter_drop(&w);
        ASSERT_OK(weft_stream_close(rd));
        weft_runtime_free(rt);
        free(buf);
    }
}

/* A write that fits is only buffered; a flush dropped against a full pipe
 * leaves its bytes buffered, and a later flush sends them. */
TEST(bufio_dropped_flush_keeps_bytes)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr;
    weft_bufwriter w;
    weft_bufwrite f;
    unsigned char data[100], got[100], junk[4096];
    size_t filled, drained = 0;

    nt_fill(data, sizeof(data), 3);
    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_bufwriter_init(&w, wr, NULL, 256));
    filled = st_fill_pipe(wr);
    weft_bufwriter_write_init(&f, &w, data, sizeof(data));
    ASSERT_EQ(100, bt_wr(rt, &f, ST_WAIT_MS));
    ASSERT_EQ(100, weft_bufwriter_buffered(&w));
    weft_bufwriter_flush_init(&f, &w);
    ASSERT_EQ(-ETIMEDOUT, bt_wr(rt, &f, ST_SHORT_MS));
    ASSERT_EQ(100, weft_bufwriter_buffered(&w));
    while (drained < filled) {
        ssize_t r = read(weft_stream_fd(rd), junk, sizeof(junk));

        ASSERT(r > 0);
        drained += (size_t)r;
    }
    weft_bufwriter_flush_init(&f, &w);
    ASSERT_EQ(0, bt_wr(rt, &f, ST_WAIT_MS));
    ASSERT_EQ(0, weft_bufwriter_buffered(&w));
    ASSERT_EQ(100, read(weft_stream_fd(rd), got, sizeof(got)));
    ASSERT_EQ(0, memcmp(got, data, sizeof(data)));
    /* a flush of nothing is ready at once */
    weft_bufwriter_flush_init(&f, &w);
    ASSERT_EQ(0, bt_wr(rt, &f, ST_WAIT_MS));
    weft_bufwriter_drop(&w);
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_stream_close(wr));
    weft_runtime_free(rt);
}

/* ---- copy ------------------------------------------------------------------------------------ */
#define CP_SEED 9u

typedef struct cp_writer {
    weft_stream *s;
    const unsigned char *buf;
    size_t len;
    bool shut, started;
    weft_io_op op;
} cp_writer;

static weft_poll cp_writer_poll(cp_writer *t, weft_context *cx, ssize_t *out)
{
    if (!t->started) {
        weft_write_all_init(&t->op, t->s, t->buf, t->len);
        t->started = true;
    }
    if (weft_io_op_poll(&t->op, cx, out) == WEFT_PENDING)
        return WEFT_PENDING;
    if (t->shut)
        weft_socket_shutdown(t->s, SHUT_WR);
    else
        weft_stream_close(t->s);
    return WEFT_READY;
}

static void cp_writer_drop(cp_writer *t)
{
    weft_io_op_drop(&t->op);
}

WEFT_DEFINE_FUTURE(cp_writer, cp_writer_poll, cp_writer_drop, ssize_t);

typedef struct cp_reader {
    weft_stream *s;
    unsigned char *buf;
    size_t len;
    bool started;
    weft_io_op op;
} cp_reader;

static weft_poll cp_reader_poll(cp_reader *t, weft_context *cx, ssize_t *out)
{
    if (!t->started) {
        weft_read_exact_init(&t->op, t->s, t->buf, t->len);
        t->started = true;
    }
    if (weft_io_op_poll(&t->op, cx, out) == WEFT_PENDING)
        return WEFT_PENDING;
    if (*out == (ssize_t)t->len && nt_check(t->buf, t->len, CP_SEED, 0) != t->len)
        *out = -EILSEQ;
    return WEFT_READY;
}

static void cp_reader_drop(cp_reader *t)
{
    weft_io_op_drop(&t->op);
}

WEFT_DEFINE_FUTURE(cp_reader, cp_reader_poll, cp_reader_drop, ssize_t);

/* src -> [copy] -> dst, with a writer on `in` (closed or shut down at the
 * end) and a reader on `out`. */
static void copy_case(weft_runtime *rt, weft_stream *in, bool shut, weft_stream *src,
                      weft_stream *dst, weft_stream *out)
{
    size_t len = harness_scale(4u << 20);
    unsigned char *buf, *got;
    weft_copy *c = malloc(sizeof(*c));
    weft_join *jw, *jc, *jr;
    ssize_t nw = 0, nc = 0, nr = 0;

    if (len < (1u << 20))
        len = 1u << 20;
    buf = malloc(len);
    got = malloc(len);
    ASSERT(buf != NULL && got != NULL && c != NULL);
    nt_fill(buf, len, CP_SEED);
    weft_copy_init(c, src, dst);
    ASSERT_OK(weft_spawn(rt, &cp_writer_future,
                         &(cp_writer){ .s = in, .buf = buf, .len = len, .shut = shut }, &jw));
    ASSERT_OK(weft_spawn(rt, &weft_copy_future, c, &jc));
    ASSERT_OK(weft_spawn(rt, &cp_reader_future, &(cp_reader){ .s = out, .buf = got, .len = len },
                         &jr));
    ASSERT_OK(weft_join_wait(jw, &nw));
    ASSERT_OK(weft_join_wait(jc, &nc));
    ASSERT_OK(weft_join_wait(jr, &nr));
    weft_join_drop(jw);
    weft_join_drop(jc);
    weft_join_drop(jr);
    ASSERT_EQ((ssize_t)len, nw);
    ASSERT_EQ((ssize_t)len, nc);
    ASSERT_EQ((ssize_t)len, nr);
    free(c);
    free(buf);
    free(got);
}

TEST(bufio_copy_pipe_to_socket_and_back)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr;
    weft_socket *a, *b;

    /* pipe -> socket */
    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    nt_tcp_pair(rt, &a, &b);
    copy_case(rt, wr, false, rd, a, b);
    ASSERT_OK(weft_stream_close(rd));
    /* socket -> pipe */
    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    copy_case(rt, b, true, a, wr, rd);
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_stream_close(wr));
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}

/* Both ends sockets (no pipe: through the buffer), and pipe to pipe. */
TEST(bufio_copy_socket_to_socket_and_pipe_to_pipe)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr, *rd2, *wr2;
    weft_socket *a, *b, *c, *d;

    nt_tcp_pair(rt, &a, &b);
    nt_tcp_pair(rt, &c, &d);
    copy_case(rt, a, true, b, c, d);
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    ASSERT_OK(weft_socket_close(c));
    ASSERT_OK(weft_socket_close(d));
    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_pipe(rt, &rd2, &wr2));
    copy_case(rt, wr, false, rd, wr2, rd2);
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_stream_close(rd2));
    ASSERT_OK(weft_stream_close(wr2));
    weft_runtime_free(rt);
}

/* Copying into a pipe nobody reads: -EPIPE, and no SIGPIPE (its default
 * action would kill the process); from a closed stream: -EBADF. */
TEST(bufio_copy_to_a_broken_pipe_is_epipe)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr, *rd2, *wr2;
    weft_socket *a, *b;
    weft_copy *c = malloc(sizeof(*c));

    ASSERT(c != NULL);
    ASSERT(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    for (int splice_ = 0; splice_ < 2; splice_++) {
        ASSERT_OK(weft_pipe(rt, &rd2, &wr2));
        ASSERT_OK(weft_stream_close(rd2));
        if (splice_) {
            ASSERT_OK(weft_pipe(rt, &rd, &wr));
            raw_write(wr, "data", 4);
            weft_copy_init(c, rd, wr2);
        } else {
            nt_tcp_pair(rt, &a, &b);
            nt_raw_write_all(weft_socket_fd(a), "data", 4);
            weft_copy_init(c, b, wr2);
        }
        ASSERT_EQ(-EPIPE, bt_run(rt, &weft_copy_future, c, ST_WAIT_MS));
        weft_copy_drop(c);
        if (splice_) {
            ASSERT_OK(weft_stream_close(rd));
            ASSERT_OK(weft_stream_close(wr));
        } else {
            ASSERT_OK(weft_socket_close(a));
            ASSERT_OK(weft_socket_close(b));
        }
        ASSERT_OK(weft_stream_close(wr2));
    }
    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_pipe(rt, &rd2, &wr2));
    ASSERT_OK(weft_stream_close(rd));
    weft_copy_init(c, rd, wr2);
    ASSERT_EQ(-EBADF, bt_run(rt, &weft_copy_future, c, ST_WAIT_MS));
    weft_copy_drop(c);
    /* a copy dropped while it waits */
    weft_copy_init(c, rd2, wr);
    ASSERT_EQ(-ETIMEDOUT, bt_run(rt, &weft_copy_future, c, ST_SHORT_MS));
    ASSERT_OK(weft_stream_close(wr));
    ASSERT_OK(weft_stream_close(rd2));
    ASSERT_OK(weft_stream_close(wr2));
    free(c);
    weft_runtime_free(rt);
}

/* ---- frames ------------------------------------------------------------------------------------ */
static ssize_t bt_frame_w(weft_runtime *rt, weft_bufwriter *w, const void *p, size_t n)
{
    weft_bufwrite f;

    weft_bufwriter_write_frame_init(&f, w, p, n);
    return bt_wr(rt, &f, ST_WAIT_MS);
}

static ssize_t bt_frame_r(weft_runtime *rt, weft_bufreader *r, void *dst, size_t max)
{
    weft_bufread f;

    weft_bufreader_read_frame_init(&f, r, dst, max);
    return bt_rd(rt, &f, ST_WAIT_MS);
}

TEST(bufio_frames_round_trip_and_oversized)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr;
    weft_bufwriter w;
    weft_bufreader r;
    weft_bufwrite wf;
    unsigned char big[200], got[512];
    const void *data;

    nt_fill(big, sizeof(big), 1);
    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_bufwriter_init(&w, wr, NULL, 64));
    ASSERT_OK(weft_bufreader_init(&r, rd, NULL, 32));
    ASSERT_EQ(5, bt_frame_w(rt, &w, "hello", 5));
    ASSERT_EQ(9, weft_bufwriter_buffered(&w));              /* header + payload */
    ASSERT_EQ(0, bt_frame_w(rt, &w, "", 0));
    ASSERT_EQ(200, bt_frame_w(rt, &w, big, sizeof(big)));  /* beyond both buffers */
    ASSERT_EQ(4, bt_frame_w(rt, &w, "tail", 4));
    ASSERT_EQ(100, bt_frame_w(rt, &w, big, 100));
    ASSERT_EQ(2, bt_frame_w(rt, &w, "ok", 2));
    weft_bufwriter_flush_init(&wf, &w);
    ASSERT_EQ(0, bt_wr(rt, &wf, ST_WAIT_MS));
    ASSERT_EQ(5, bt_frame_r(rt, &r, got, sizeof(got)));
    ASSERT_EQ(0, memcmp(got, "hello", 5));
    ASSERT_EQ(0, bt_frame_r(rt, &r, got, sizeof(got)));
    ASSERT_EQ(200, bt_frame_r(rt, &r, got, sizeof(got)));
    ASSERT_EQ(0, memcmp(got, big, sizeof(big)));
    ASSERT_EQ(4, bt_frame_r(rt, &r, got, sizeof(got)));
    ASSERT_EQ(0, memcmp(got, "tail", 4));
    /* too long for max: nothing consumed; skipping it keeps the stream in step */
    ASSERT_EQ(-EMSGSIZE, bt_frame_r(rt, &r, got, 10));
    ASSERT(weft_bufreader_buffered(&r, &data) >= 4);
    ASSERT_EQ(0, memcmp(data, "\0\0\0\x64", 4));
    ASSERT_EQ(100, bt_frame_r(rt, &r, NULL, 0));
    ASSERT_EQ(2, bt_frame_r(rt, &r, got, 10));
    ASSERT_EQ(0, memcmp(got, "ok", 2));
    /* end of stream inside a frame, and between frames */
    raw_write(wr, "\0\0\0\5ab", 6);
    ASSERT_OK(weft_stream_close(wr));
    ASSERT_EQ(-EPROTO, bt_frame_r(rt, &r, got, sizeof(got)));
    ASSERT_EQ(6, weft_bufreader_consume(&r, 6));
    ASSERT_EQ(-EPIPE, bt_frame_r(rt, &r, got, sizeof(got)));
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_stream_close(rd));
    /* ... and inside a header */
    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_bufreader_init(&r, rd, NULL, 32));
    raw_write(wr, "\0\0", 2);
    ASSERT_OK(weft_stream_close(wr));
    ASSERT_EQ(-EPROTO, bt_frame_r(rt, &r, got, sizeof(got)));
    ASSERT_EQ(2, weft_bufreader_buffered(&r, NULL));
    /* a length no header can carry */
    weft_bufwriter_write_frame_init(&wf, &w, big, (size_t)UINT32_MAX + 1);
    ASSERT_EQ(-EMSGSIZE, bt_wr(rt, &wf, ST_WAIT_MS));
    weft_bufwriter_drop(&w);
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_stream_close(rd));
    weft_runtime_free(rt);
}

/* ---- misuse, close, memory ------------------------------------------------------------------- */
static ssize_t poll_rd(weft_bufread *f)
{
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    ssize_t n = -12345;

    ASSERT_EQ(WEFT_READY, weft_bufread_poll(f, &cx, &n));
    weft_bufread_drop(f);
    weft_bufread_drop(f);             /* idempotent */
    return n;
}

static ssize_t poll_wr(weft_bufwrite *f)
{
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    ssize_t n = -12345;

    ASSERT_EQ(WEFT_READY, weft_bufwrite_poll(f, &cx, &n));
    weft_bufwrite_drop(f);
    weft_bufwrite_drop(f);
    return n;
}

TEST(bufio_bad_arguments)
{
    weft_runtime *rt = nt_runtime(true);
    weft_stream *rd, *wr;
    weft_bufreader r, small, zero;
    weft_bufwriter w, wsmall;
    weft_bufread f;
    weft_bufwrite wf;
    weft_copy c;
    ssize_t n = 0;
    char buf[8];
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_EQ(-EINVAL, weft_bufreader_init(NULL, rd, NULL, 8));
    ASSERT_EQ(-EINVAL, weft_bufreader_init(&r, NULL, NULL, 8));
    ASSERT_EQ(-EINVAL, weft_bufreader_init(&r, rd, NULL, 0));
    ASSERT_EQ(-EINVAL, weft_bufreader_init(&r, rd, NULL, SIZE_MAX));
    ASSERT_EQ(-EINVAL, weft_bufwriter_init(NULL, wr, NULL, 8));
    ASSERT_EQ(-EINVAL, weft_bufwriter_init(&w, NULL, NULL, 8));
    ASSERT_EQ(-EINVAL, weft_bufwriter_init(&w, wr, NULL, 0));
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_bufreader_init(&r, rd, NULL, 8));
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_bufwriter_init(&w, wr, NULL, 8));
    harness_fail_alloc_at(0);
    memset(&zero, 0, sizeof(zero));
    ASSERT_EQ(0, weft_bufreader_buffered(&zero, NULL));
    ASSERT_EQ(0, weft_bufreader_consume(&zero, 3));
    ASSERT_EQ(0, weft_bufreader_buffered(NULL, NULL));
    ASSERT_OK(weft_bufreader_init(&r, rd, NULL, 8));
    ASSERT_OK(weft_bufreader_init(&small, rd, buf, 2));
    ASSERT_OK(weft_bufwriter_init(&w, wr, NULL, 8));
    ASSERT_OK(weft_bufwriter_init(&wsmall, wr, buf, 2));
    /* reader futures */
    weft_bufreader_read_line_init(&f, NULL, buf, 8);
    ASSERT_EQ(-EINVAL, poll_rd(&f));
    weft_bufreader_read_line_init(&f, &zero, buf, 8);       /* never set up */
    ASSERT_EQ(-EINVAL, poll_rd(&f));
    weft_bufreader_read_until_init(&f, &r, 256, buf, 8);
    ASSERT_EQ(-EINVAL, poll_rd(&f));
    weft_bufreader_read_until_init(&f, &r, -1, buf, 8);
    ASSERT_EQ(-EINVAL, poll_rd(&f));
    weft_bufreader_read_init(&f, &r, NULL, 5);
    ASSERT_EQ(-EINVAL, poll_rd(&f));
    weft_bufreader_read_exact_init(&f, &r, buf, SIZE_MAX);
    ASSERT_EQ(-EINVAL, poll_rd(&f));
    weft_bufreader_fill_init(&f, &r, 9);
    ASSERT_EQ(-EINVAL, poll_rd(&f));
    weft_bufreader_read_frame_init(&f, &small, buf, 8);
    ASSERT_EQ(-EINVAL, poll_rd(&f));
    weft_bufread_drop(NULL);
    ASSERT_EQ(0, weft_bufread_moved(NULL));
    /* a future dropped before its first poll, twice */
    weft_bufreader_read_line_init(&f, &r, buf, 8);
    weft_bufread_drop(&f);
    weft_bufread_drop(&f);
    /* writer futures */
    weft_bufwriter_write_init(&wf, NULL, "x", 1);
    ASSERT_EQ(-EINVAL, poll_wr(&wf));
    weft_bufwriter_write_init(&wf, &w, NULL, 1);
    ASSERT_EQ(-EINVAL, poll_wr(&wf));
    weft_bufwriter_flush_init(&wf, NULL);
    ASSERT_EQ(-EINVAL, poll_wr(&wf));
    weft_bufwriter_write_frame_init(&wf, &wsmall, "x", 1);
    ASSERT_EQ(-EINVAL, poll_wr(&wf));
    weft_bufwriter_write_init(&wf, &w, NULL, 0);          /* nothing: fine */
    ASSERT_EQ(0, poll_wr(&wf));
    weft_bufwrite_drop(NULL);
    ASSERT_EQ(0, weft_bufwrite_moved(NULL));
    /* copy */
    weft_copy_init(&c, NULL, wr);
    ASSERT_EQ(WEFT_READY, weft_copy_poll(&c, &cx, &n));
    ASSERT_EQ(-EINVAL, n);
    weft_copy_drop(&c);
    weft_copy_drop(&c);
    weft_copy_drop(NULL);
    /* a closed stream */
    ASSERT_OK(weft_stream_close(rd));
    weft_bufreader_read_line_init(&f, &r, buf, 8);
    ASSERT_EQ(-EBADF, poll_rd(&f));
    weft_bufreader_drop(&r);
    weft_bufreader_drop(&r);          /* idempotent */
    weft_bufreader_drop(&small);
    weft_bufreader_drop(NULL);
    weft_bufwriter_drop(&w);
    weft_bufwriter_drop(&wsmall);
    weft_bufwriter_drop(NULL);
    ASSERT_OK(weft_stream_close(wr));
    weft_runtime_free(rt);
    /* the new codes have names */
    ASSERT_EQ(0, strcmp("line or frame too long", weft_strerror(-EMSGSIZE)));
    ASSERT_EQ(0, strcmp("protocol error: a frame cut short", weft_strerror(EPROTO)));
}

/* A task waiting in read_line (or in a flush) when its stream is closed
 * completes with -EBADF; the writer keeps its unwritten bytes. */
static int pend_flag;

typedef struct pend_task {
    weft_bufreader *r;
    weft_bufwriter *w;
    bool started;
    weft_bufread f;
    weft_bufwrite wf;
    char buf[16];
} pend_task;

static weft_poll pend_task_poll(pend_task *t, weft_context *cx, ssize_t *out)
{
    weft_poll p;

    if (!t->started) {
        if (t->r)
            weft_bufreader_read_line_init(&t->f, t->r, t->buf, sizeof(t->buf));
        else
            weft_bufwriter_flush_init(&t->wf, t->w);
        t->started = true;
    }
    p = t->r ? weft_bufread_poll(&t->f, cx, out) : weft_bufwrite_poll(&t->wf, cx, out);
    if (p == WEFT_PENDING)
        __atomic_store_n(&pend_flag, 1, __ATOMIC_RELEASE);
    return p;
}

static void pend_task_drop(pend_task *t)
{
    weft_bufread_drop(&t->f);
    weft_bufwrite_drop(&t->wf);
}

WEFT_DEFINE_FUTURE(pend_task, pend_task_poll, pend_task_drop, ssize_t);

TEST(bufio_close_while_pending_is_ebadf)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr;
    weft_bufreader r;
    weft_bufwriter w;
    weft_bufwrite wf;
    weft_join *j;
    ssize_t n = 0;

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_bufreader_init(&r, rd, NULL, 16));
    raw_write(wr, "part", 4);
    pend_flag = 0;
    ASSERT_OK(weft_spawn(rt, &pend_task_future, &(pend_task){ .r = &r }, &j));
    ASSERT(harness_wait_flag(&pend_flag, NT_WATCHDOG_MS));
    usleep(2000);
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_join_wait(j, &n));
    weft_join_drop(j);
    ASSERT_EQ(-EBADF, n);
    ASSERT_EQ(4, weft_bufreader_buffered(&r, NULL));
    weft_bufreader_drop(&r);
    ASSERT_OK(weft_stream_close(wr));
    /* a flush against a full pipe */
    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_bufwriter_init(&w, wr, NULL, 16));
    st_fill_pipe(wr);
    weft_bufwriter_write_init(&wf, &w, "abc", 3);
    ASSERT_EQ(3, bt_wr(rt, &wf, ST_WAIT_MS));
    pend_flag = 0;
    ASSERT_OK(weft_spawn(rt, &pend_task_future, &(pend_task){ .w = &w }, &j));
    ASSERT(harness_wait_flag(&pend_flag, NT_WATCHDOG_MS));
    usleep(2000);
    ASSERT_OK(weft_stream_close(wr));
    ASSERT_OK(weft_join_wait(j, &n));
    weft_join_drop(j);
    ASSERT_EQ(-EBADF, n);
    ASSERT_EQ(3, weft_bufwriter_buffered(&w));
    weft_bufwriter_drop(&w);
    ASSERT_OK(weft_stream_close(rd));
    weft_runtime_free(rt);
}
