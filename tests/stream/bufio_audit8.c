// SPDX-License-Identifier: MIT
/* Eighth audit of weft/bufio.h (public API only): the buffered reader
 * against a model. A writer thread sends a known stream (short and long
 * lines, two delimiters) in random pieces; the reader, with a random small
 * capacity, runs random operations (read_until with random max, a skip,
 * read_exact below and above the capacity, with and without dst, read,
 * fill + consume) and each output is checked against what the header says
 * it must be for that stream, whatever the pieces. Over a pipe and over a
 * Unix stream socket (io_uring's receive queue on that backend). */
#include "stream_test.h"

#include <stdlib.h>

#define CAP_MAX 48

typedef struct model {
    unsigned char *d;                 /* the stream */
    size_t len, pos;                  /* pos: consumed so far */
    int wfd;                          /* the writer's raw end */
    unsigned seed;
    weft_socket *s;
    size_t ops;
} model;

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffffffu;
}

static void make_stream(model *m)
{
    size_t i = 0;

    m->d = malloc(m->len);
    ASSERT(m->d != NULL);
    while (i < m->len) {
        /* a line: mostly short, sometimes longer than any capacity */
        size_t n = rnd(&m->seed) % 8 == 0 ? rnd(&m->seed) % 150 : rnd(&m->seed) % 20;

        for (size_t k = 0; k < n && i < m->len; k++)
            m->d[i++] = (unsigned char)('a' + rnd(&m->seed) % 3);
        if (i < m->len)
            m->d[i++] = rnd(&m->seed) % 4 == 0 ? '|' : '\n';
    }
}

static void *writer(void *arg)
{
    model *m = arg;
    unsigned s = 0x5bd1e995u ^ (unsigned)m->len;   /* not m->seed: the reader uses it */
    size_t off = 0;

    while (off < m->len) {
        size_t n = 1 + rnd(&s) % 300;
        ssize_t w;

        if (n > m->len - off)
            n = m->len - off;
        w = write(m->wfd, m->d + off, n);
        ASSERT(w > 0);
        off += (size_t)w;
        if (rnd(&s) % 16 == 0)
            usleep(200);
    }
    close(m->wfd);
    return NULL;
}

static ssize_t await_read(weft_bufread *f)
{
    ssize_t n = -12345;

    ASSERT_OK(weft_co_await(&weft_bufread_future, f, &n));
    return n;
}

/* The first index of delim at or after pos, or len. */
static size_t find(const model *m, int delim)
{
    for (size_t i = m->pos; i < m->len; i++)
        if (m->d[i] == delim)
            return i;
    return m->len;
}

static int reader(void *arg)
{
    model *m = arg;
    unsigned char buf[CAP_MAX], dst[4 * CAP_MAX + 16];
    size_t cap = 1 + rnd(&m->seed) % CAP_MAX;
    weft_bufreader r;
    weft_bufread f;
    unsigned s = m->seed;

    ASSERT_OK(weft_bufreader_init(&r, m->s, buf, cap));
    while (m->pos < m->len) {
        size_t rem = m->len - m->pos;
        unsigned op = rnd(&s) % 6;
        ssize_t n;

        m->ops++;
        if (op <= 1) {                       /* read_until, random max */
            int delim = op == 0 ? '\n' : '|';
            size_t max = rnd(&s) % (2 * cap + 2), limit = max < cap ? max : cap;
            size_t j = find(m, delim), k = j - m->pos + 1;

            weft_bufreader_read_until_init(&f, &r, delim, dst, max);
            n = await_read(&f);
            weft_bufread_drop(&f);
            if (j < m->len && k <= limit) {
                ASSERT_EQ((ssize_t)k, n);
            } else if (j < m->len || rem >= limit) {
                ASSERT_EQ(-EMSGSIZE, n);
                continue;                    /* nothing consumed */
            } else {
                ASSERT_EQ((ssize_t)rem, n);  /* the last line, no delimiter */
            }
            ASSERT_EQ(0, memcmp(dst, m->d + m->pos, (size_t)n));
            m->pos += (size_t)n;
        } else if (op == 2) {                /* skip a line */
            size_t j = find(m, '\n'), k = j < m->len ? j - m->pos + 1 : rem;

            weft_bufreader_read_until_init(&f, &r, '\n', NULL, 0);
            n = await_read(&f);
            weft_bufread_drop(&f);
            ASSERT_EQ((ssize_t)k, n);
            m->pos += k;
        } else if (op == 3) {                /* read_exact, maybe past the capacity */
            size_t want = rnd(&s) % (3 * cap + 3);
            bool discard = rnd(&s) % 4 == 0;

            if (want > sizeof(dst))
                want = sizeof(dst);
            weft_bufreader_read_exact_init(&f, &r, discard ? NULL : dst, want);
            n = await_read(&f);
            if (rem >= want) {
                ASSERT_EQ((ssize_t)want, n);
                if (!discard)
                    ASSERT_EQ(0, memcmp(dst, m->d + m->pos, want));
                m->pos += want;
            } else {
                ASSERT_EQ(-EPIPE, n);
                if (want <= cap && !discard) {
                    /* all or nothing: still buffered */
                    ASSERT_EQ(0, weft_bufread_moved(&f));
                } else {
                    /* piecewise: moved bytes are consumed */
                    ASSERT_EQ(rem, weft_bufread_moved(&f));
                    if (!discard)
                        ASSERT_EQ(0, memcmp(dst, m->d + m->pos, rem));
                    m->pos += rem;
                }
            }
            weft_bufread_drop(&f);
        } else if (op == 4) {                /* read what is there */
            size_t want = 1 + rnd(&s) % (2 * cap + 1);

            weft_bufreader_read_init(&f, &r, dst, want);
            n = await_read(&f);
            weft_bufread_drop(&f);
            ASSERT(n >= 1 && (size_t)n <= want && (size_t)n <= rem);
            ASSERT_EQ(0, memcmp(dst, m->d + m->pos, (size_t)n));
            m->pos += (size_t)n;
        } else {                             /* fill, look, consume part */
            size_t want = rnd(&s) % (cap + 1), k;
            const void *p = NULL;

            weft_bufreader_fill_init(&f, &r, want);
            n = await_read(&f);
            weft_bufread_drop(&f);
            ASSERT(n >= 0 && (size_t)n <= rem && (size_t)n <= cap);
            ASSERT((size_t)n >= want || (size_t)n == rem);
            ASSERT_EQ((size_t)n, weft_bufreader_buffered(&r, &p));
            ASSERT(n == 0 || memcmp(p, m->d + m->pos, (size_t)n) == 0);
            k = n ? rnd(&s) % ((size_t)n + 1) : 0;
            ASSERT_EQ(k, weft_bufreader_consume(&r, k));
            m->pos += k;
        }
    }
    /* end of stream, and again */
    for (int i = 0; i < 2; i++) {
        weft_bufreader_read_line_init(&f, &r, dst, sizeof(dst));
        ASSERT_EQ(0, await_read(&f));
        weft_bufread_drop(&f);
    }
    weft_bufreader_drop(&r);
    return 0;
}

static void run_model(bool socket, unsigned seed)
{
    weft_runtime *rt = nt_runtime(false);
    model m = { .len = harness_scale(20000) + 100, .seed = seed };
    pthread_t th;
    weft_join *j;
    int fds[2], res = -1;

    make_stream(&m);
    if (socket) {
        ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
        ASSERT_OK(weft_socket_adopt(rt, fds[0], &m.s));
    } else {
        ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
        ASSERT_OK(weft_fd_adopt(rt, fds[0], WEFT_FD_SET_NONBLOCK, &m.s));
    }
    m.wfd = fds[1];
    ASSERT_EQ(0, pthread_create(&th, NULL, writer, &m));
    ASSERT_OK(weft_go(rt, reader, &m, &j));
    ASSERT_OK(weft_join_wait(j, &res));
    weft_join_drop(j);
    ASSERT_EQ(0, res);
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT(m.ops > 10);
    ASSERT_OK(weft_socket_close(m.s));
    free(m.d);
    weft_runtime_free(rt);
}

TEST(reader_against_a_model_over_a_pipe)
{
    for (unsigned i = 0; i < 8; i++)
        run_model(false, 1000 + i);
}

TEST(reader_against_a_model_over_a_socket)
{
    for (unsigned i = 0; i < 8; i++)
        run_model(true, 2000 + i);
}

/* ---- frames -------------------------------------------------------------------------- */
/* A stream of frames (4-byte big-endian length, payload) of random lengths
 * around the capacity, the last one cut short when `cut`. */
typedef struct fmodel {
    model m;
    size_t nframes;
    size_t *flen;                      /* payload lengths */
    bool cut;
} fmodel;

static void make_frames(fmodel *fm, size_t cap_hint)
{
    model *m = &fm->m;
    size_t i = 0, k = 0;

    m->d = malloc(m->len);
    fm->flen = malloc(m->len * sizeof(size_t));
    ASSERT(m->d != NULL && fm->flen != NULL);
    for (;;) {
        size_t n = rnd(&m->seed) % (3 * cap_hint + 3);

        if (i + 4 + n > m->len)
            break;
        m->d[i] = (unsigned char)(n >> 24);
        m->d[i + 1] = (unsigned char)(n >> 16);
        m->d[i + 2] = (unsigned char)(n >> 8);
        m->d[i + 3] = (unsigned char)n;
        for (size_t b = 0; b < n; b++)
            m->d[i + 4 + b] = (unsigned char)rnd(&m->seed);
        fm->flen[k++] = n;
        i += 4 + n;
    }
    fm->nframes = k;
    if (fm->cut && k > 0 && fm->flen[k - 1] > 0) {
        i -= 1;                        /* the last frame lacks its last byte */
        fm->nframes--;
    }
    m->len = i;
}

static int frame_reader(void *arg)
{
    fmodel *fm = arg;
    model *m = &fm->m;
    unsigned char buf[CAP_MAX], dst[3 * CAP_MAX + 8];
    size_t cap = 4 + rnd(&m->seed) % (CAP_MAX - 4), k = 0;
    weft_bufreader r;
    weft_bufread f;
    unsigned s = m->seed;
    ssize_t n;

    ASSERT_OK(weft_bufreader_init(&r, m->s, buf, cap));
    while (k < fm->nframes) {
        size_t len = fm->flen[k], max = rnd(&s) % (3 * cap + 8);
        bool skip = rnd(&s) % 5 == 0;

        m->ops++;
        weft_bufreader_read_frame_init(&f, &r, skip ? NULL : dst, max);
        n = await_read(&f);
        weft_bufread_drop(&f);
        if (!skip && len > max) {
            ASSERT_EQ(-EMSGSIZE, n);     /* nothing consumed: skip it next */
            weft_bufreader_read_frame_init(&f, &r, NULL, 0);
            n = await_read(&f);
            weft_bufread_drop(&f);
            ASSERT_EQ((ssize_t)len, n);
        } else {
            ASSERT_EQ((ssize_t)len, n);
            if (!skip)
                ASSERT_EQ(0, memcmp(dst, m->d + m->pos + 4, len));
        }
        m->pos += 4 + len;
        k++;
    }
    weft_bufreader_read_frame_init(&f, &r, dst, sizeof(dst));
    n = await_read(&f);
    weft_bufread_drop(&f);
    ASSERT_EQ(fm->cut && m->pos < m->len ? -EPROTO : -EPIPE, n);
    weft_bufreader_drop(&r);
    return 0;
}

static void run_frames(bool socket, unsigned seed, bool cut)
{
    weft_runtime *rt = nt_runtime(false);
    fmodel fm = { .m = { .len = harness_scale(20000) + 200, .seed = seed }, .cut = cut };
    pthread_t th;
    weft_join *j;
    int fds[2], res = -1;

    make_frames(&fm, CAP_MAX / 2);
    if (socket) {
        ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
        ASSERT_OK(weft_socket_adopt(rt, fds[0], &fm.m.s));
    } else {
        ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
        ASSERT_OK(weft_fd_adopt(rt, fds[0], WEFT_FD_SET_NONBLOCK, &fm.m.s));
    }
    fm.m.wfd = fds[1];
    ASSERT_EQ(0, pthread_create(&th, NULL, writer, &fm.m));
    ASSERT_OK(weft_go(rt, frame_reader, &fm, &j));
    ASSERT_OK(weft_join_wait(j, &res));
    weft_join_drop(j);
    ASSERT_EQ(0, res);
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT(fm.m.ops > 10);
    ASSERT_OK(weft_socket_close(fm.m.s));
    free(fm.m.d);
    free(fm.flen);
    weft_runtime_free(rt);
}

TEST(frames_against_a_model)
{
    for (unsigned i = 0; i < 8; i++)
        run_frames(i % 2 == 1, 3000 + i, i % 4 >= 2);
}

/* ---- the writer ------------------------------------------------------------------------ */
/* Random writes (0 to 3x the capacity), write_frames and flushes through a
 * writer of random capacity; a reader thread collects the other end. After
 * a last flush and the close, the bytes read are exactly what the model
 * says, in order: every write taken whole (output len), frames with their
 * headers, nothing lost or doubled at the buffer's edges. */
typedef struct wmodel {
    unsigned char *want, *got;
    size_t cap_bytes, nwant, ngot;
    int rfd;
    weft_socket *s;
    unsigned seed;
} wmodel;

static void *collector(void *arg)
{
    wmodel *w = arg;
    ssize_t n;

    while ((n = read(w->rfd, w->got + w->ngot, w->cap_bytes - w->ngot)) > 0)
        w->ngot += (size_t)n;
    ASSERT_EQ(0, n);
    return NULL;
}

static int writer_task(void *arg)
{
    wmodel *w = arg;
    unsigned char buf[CAP_MAX], src[3 * CAP_MAX + 3];
    unsigned s = w->seed;
    size_t cap = 4 + rnd(&s) % (CAP_MAX - 4);
    weft_bufwriter bw;
    weft_bufwrite f;
    ssize_t n = -1;

    ASSERT_OK(weft_bufwriter_init(&bw, w->s, buf, cap));
    while (w->nwant + 4 + sizeof(src) < w->cap_bytes) {
        unsigned op = rnd(&s) % 5;
        size_t len = rnd(&s) % (3 * cap + 3);

        for (size_t i = 0; i < len; i++)
            src[i] = (unsigned char)rnd(&s);
        if (op <= 2) {
            weft_bufwriter_write_init(&f, &bw, src, len);
        } else if (op == 3) {
            weft_bufwriter_write_frame_init(&f, &bw, src, len);
            w->want[w->nwant++] = (unsigned char)(len >> 24);
            w->want[w->nwant++] = (unsigned char)(len >> 16);
            w->want[w->nwant++] = (unsigned char)(len >> 8);
            w->want[w->nwant++] = (unsigned char)len;
        } else {
            weft_bufwriter_flush_init(&f, &bw);
            len = 0;
        }
        ASSERT_OK(weft_co_await(&weft_bufwrite_future, &f, &n));
        ASSERT_EQ(op == 4 ? 0 : (ssize_t)len, n);
        if (op != 4)
            ASSERT_EQ(len, weft_bufwrite_moved(&f));
        weft_bufwrite_drop(&f);
        memcpy(w->want + w->nwant, src, len);
        w->nwant += len;
        ASSERT(weft_bufwriter_buffered(&bw) <= cap);
    }
    weft_bufwriter_flush_init(&f, &bw);
    ASSERT_OK(weft_co_await(&weft_bufwrite_future, &f, &n));
    ASSERT_EQ(0, n);
    ASSERT_EQ(0, weft_bufwriter_buffered(&bw));
    weft_bufwrite_drop(&f);
    weft_bufwriter_drop(&bw);
    return 0;
}

TEST(writer_against_a_model)
{
    for (unsigned i = 0; i < 8; i++) {
        weft_runtime *rt = nt_runtime(false);
        wmodel w = { .cap_bytes = harness_scale(40000) + 1000, .seed = 4000 + i };
        pthread_t th;
        weft_join *j;
        int fds[2], res = -1;

        w.want = malloc(w.cap_bytes);
        w.got = malloc(w.cap_bytes);
        ASSERT(w.want && w.got);
        if (i % 2) {
            ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
            ASSERT_OK(weft_socket_adopt(rt, fds[0], &w.s));
            w.rfd = fds[1];
        } else {
            ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
            ASSERT_OK(weft_fd_adopt(rt, fds[1], WEFT_FD_SET_NONBLOCK, &w.s));
            w.rfd = fds[0];
        }
        ASSERT_EQ(0, pthread_create(&th, NULL, collector, &w));
        ASSERT_OK(weft_go(rt, writer_task, &w, &j));
        ASSERT_OK(weft_join_wait(j, &res));
        weft_join_drop(j);
        ASSERT_EQ(0, res);
        ASSERT_OK(weft_socket_close(w.s));     /* the collector sees the end */
        ASSERT_EQ(0, pthread_join(th, NULL));
        close(w.rfd);
        ASSERT_EQ(w.nwant, w.ngot);
        ASSERT_EQ(0, memcmp(w.want, w.got, w.nwant));
        free(w.want);
        free(w.got);
        weft_runtime_free(rt);
    }
}
