/* SPDX-License-Identifier: MIT */
/* Buffered streams (weft/bufio.h): the reader, the writer, copy and frames.
 *
 * Everything here is built on the read and write futures of net/socket.c,
 * one at a time, embedded in the bufio future. The reader's promise (a
 * dropped read loses nothing) rests on theirs: bytes leave the kernel only
 * in a poll that returns them, and a bufio future adds them to the buffer
 * in that same poll; it consumes buffered bytes only in the poll that
 * completes it (or, for the piecewise reads the header names, as it
 * moves them to dst). While a read into the buffer is pending, the buffer
 * is left alone: one future at a time per reader. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "io/reactor.h"
#include "net/handle.h"
#include "util/alloc.h"
#include "util/cx.h"
#include "weft/bufio.h"

#define MORE ((ssize_t)-2000000)       /* need bytes from the stream */

enum { RK_NONE, RK_UNTIL, RK_EXACT, RK_READ, RK_FILL, RK_FRAME };
enum { WK_NONE, WK_WRITE, WK_FLUSH, WK_FRAME };

static size_t min_sz(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* A buffer of cap bytes for a reader or writer: lent, or allocated. */
static int buf_setup(unsigned char **out, bool *owned, void *buf, size_t cap)
{
    if (cap == 0 || cap > (size_t)SSIZE_MAX)
        return -EINVAL;
    *owned = buf == NULL;
    if (buf == NULL) {
        buf = weft__malloc(cap);
        if (buf == NULL)
            return -ENOMEM;
    }
    *out = buf;
    return 0;
}

/* ---- Reader ---------------------------------------------------------------------- */
WEFT_API int weft_bufreader_init(weft_bufreader *r, weft_socket *s, void *buf, size_t cap)
{
    int err;

    if (r == NULL)
        return -EINVAL;
    memset(r, 0, sizeof(*r));
    if (s == NULL)
        return -EINVAL;
    err = buf_setup(&r->buf, &r->owned, buf, cap);
    if (err)
        return err;
    r->s = s;
    r->cap = cap;
    return 0;
}

WEFT_API void weft_bufreader_drop(weft_bufreader *r)
{
    if (r == NULL)
        return;
    if (r->owned)
        weft__free(r->buf);
    memset(r, 0, sizeof(*r));
}

WEFT_API size_t weft_bufreader_buffered(const weft_bufreader *r, const void **data)
{
    if (r == NULL || r->buf == NULL) {
        if (data)
            *data = NULL;
        return 0;
    }
    if (data)
        *data = r->buf + r->start;
    return r->end - r->start;
}

static void rd_consume(weft_bufreader *r, size_t n)
{
    r->start += n;
    if (r->start == r->end)
        r->start = r->end = 0;
}

WEFT_API size_t weft_bufreader_consume(weft_bufreader *r, size_t n)
{
    if (r == NULL || r->buf == NULL)
        return 0;
    n = min_sz(n, r->end - r->start);
    rd_consume(r, n);
    return n;
}

static void rd_init(weft_bufread *f, weft_bufreader *r, int kind, void *dst, size_t n,
                    size_t max)
{
    if (f == NULL)
        return;
    memset(f, 0, sizeof(*f));
    f->r = r;
    f->kind = (unsigned char)kind;
    f->dst = dst;
    f->n = n;
    f->max = max;
    if (r == NULL || r->buf == NULL || n > (size_t)SSIZE_MAX) {
        f->done = true;
        f->result = -EINVAL;
    }
}

static void rd_invalid(weft_bufread *f)
{
    f->done = true;
    f->result = -EINVAL;
}

WEFT_API void weft_bufreader_read_until_init(weft_bufread *f, weft_bufreader *r, int delim,
                                             void *dst, size_t max)
{
    if (f == NULL)
        return;
    rd_init(f, r, RK_UNTIL, dst, 0, max);
    f->delim = delim;
    if (delim < 0 || delim > 255)
        rd_invalid(f);
}

WEFT_API void weft_bufreader_read_line_init(weft_bufread *f, weft_bufreader *r, void *dst,
                                            size_t max)
{
    weft_bufreader_read_until_init(f, r, '\n', dst, max);
}

WEFT_API void weft_bufreader_read_exact_init(weft_bufread *f, weft_bufreader *r, void *dst,
                                             size_t n)
{
    if (f == NULL)
        return;
    rd_init(f, r, RK_EXACT, dst, n, 0);
    if (!f->done)
        f->direct = dst == NULL || n > r->cap;   /* piecewise */
}

WEFT_API void weft_bufreader_read_init(weft_bufread *f, weft_bufreader *r, void *dst,
                                       size_t len)
{
    if (f == NULL)
        return;
    rd_init(f, r, RK_READ, dst, len, 0);
    if (!f->done && dst == NULL && len > 0)
        rd_invalid(f);
}

WEFT_API void weft_bufreader_fill_init(weft_bufread *f, weft_bufreader *r, size_t n)
{
    if (f == NULL)
        return;
    rd_init(f, r, RK_FILL, NULL, n, 0);
    if (!f->done && n > r->cap)
        rd_invalid(f);
}

WEFT_API void weft_bufreader_read_frame_init(weft_bufread *f, weft_bufreader *r, void *dst,
                                             size_t max)
{
    if (f == NULL)
        return;
    rd_init(f, r, RK_FRAME, dst, 0, max);
    if (!f->done && r->cap < 4)
        rd_invalid(f);
}

/* read_until on the buffered bytes: the output, or MORE. */
static ssize_t try_until(weft_bufread *f, bool eof)
{
    weft_bufreader *r = f->r;
    size_t have = r->end - r->start, limit, k;
    unsigned char *p = r->buf + r->start, *q;

    if (f->dst == NULL) {             /* skip: discard as we go */
        q = memchr(p, f->delim, have);
        k = q ? (size_t)(q - p) + 1 : have;
        rd_consume(r, k);
        f->moved += k;
        return q || eof ? (ssize_t)f->moved : MORE;
    }
    if (have == 0 && eof)
        return 0;
    limit = min_sz(f->max, r->cap);
    q = f->scanned < have ? memchr(p + f->scanned, f->delim, have - f->scanned) : NULL;
    if (q) {
        k = (size_t)(q - p) + 1;
        if (k > limit)
            return -EMSGSIZE;
        memcpy(f->dst, p, k);
        rd_consume(r, k);
        return (ssize_t)k;
    }
    f->scanned = have;                /* no delimiter there: not again */
    if (have >= limit)
        return -EMSGSIZE;
    if (!eof)
        return MORE;
    memcpy(f->dst, p, have);          /* the last line, without delimiter */
    rd_consume(r, have);
    return (ssize_t)have;
}

/* read_exact piecewise (beyond the capacity, or discarding): move what is
 * buffered to dst; the rest is read straight into dst. */
static ssize_t try_piecewise(weft_bufread *f, bool eof)
{
    weft_bufreader *r = f->r;
    size_t k = min_sz(r->end - r->start, f->n - f->moved);

    if (f->dst)
        memcpy(f->dst + f->moved, r->buf + r->start, k);
    rd_consume(r, k);
    f->moved += k;
    if (f->moved == f->n)
        return (ssize_t)f->n;
    return eof ? -EPIPE : MORE;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static ssize_t try_frame(weft_bufread *f, bool eof)
{
    weft_bufreader *r = f->r;
    size_t have = r->end - r->start;
    unsigned char *p = r->buf + r->start;
    uint32_t len;
    ssize_t res;

    if (f->phase == 0) {
        if (have < 4)
            return !eof ? MORE : have == 0 ? -EPIPE : -EPROTO;
        len = be32(p);
        if (f->dst != NULL && len > f->max)
            return -EMSGSIZE;
        if (f->dst != NULL && (size_t)len <= r->cap - 4) {
            if (have - 4 >= len) {
                memcpy(f->dst, p + 4, len);
                rd_consume(r, 4 + (size_t)len);
                return (ssize_t)len;
            }
            return eof ? -EPROTO : MORE;
        }
        /* too long to hold whole (or skipped): past the header, piecewise */
        rd_consume(r, 4);
        f->n = len;
        f->phase = 1;
        f->direct = true;
    }
    res = try_piecewise(f, eof);
    return res == -EPIPE ? -EPROTO : res;
}

static ssize_t rd_try(weft_bufread *f, bool eof)
{
    weft_bufreader *r = f->r;
    size_t have = r->end - r->start, k;

    switch (f->kind) {
    case RK_UNTIL:
        return try_until(f, eof);
    case RK_EXACT:
        if (f->direct)
            return try_piecewise(f, eof);
        if (have >= f->n) {
            memcpy(f->dst, r->buf + r->start, f->n);
            rd_consume(r, f->n);
            return (ssize_t)f->n;
        }
        return eof ? -EPIPE : MORE;
    case RK_READ:
        if (f->n == 0)
            return 0;
        if (have) {
            k = min_sz(have, f->n);
            memcpy(f->dst, r->buf + r->start, k);
            rd_consume(r, k);
            return (ssize_t)k;
        }
        return eof ? 0 : MORE;
    case RK_FILL:
        return have >= f->n || eof ? (ssize_t)have : MORE;
    case RK_FRAME:
        return try_frame(f, eof);
    default:
        return -EINVAL;
    }
}

/* Where the next read goes: straight into dst (true) or into the buffer. */
static bool rd_to_dst(const weft_bufread *f)
{
    if (f->kind == RK_READ)
        return f->n >= f->r->cap;
    return f->direct && f->dst != NULL;   /* piecewise read_exact / frame */
}

static weft_poll rd_finish(weft_bufread *f, ssize_t res, ssize_t *out)
{
    if (f->reading) {
        weft_io_op_drop(&f->op);
        f->reading = false;
    }
    f->done = true;
    f->result = res;
    if (out)
        *out = res;
    return WEFT_READY;
}

WEFT_API weft_poll weft_bufread_poll(weft_bufread *f, weft_context *cx, ssize_t *out)
{
    weft_bufreader *r;
    bool eof = false;
    ssize_t n, res;

    if (f == NULL) {                  /* a NULL future: only *out */
        if (out)
            *out = -EINVAL;
        return WEFT_READY;
    }
    r = f->r;
    if (!f->done && r == NULL)
        rd_invalid(f);                /* zeroed, never initialised: as a NULL reader */
    if (f->done) {
        if (out)
            *out = f->result;
        return WEFT_READY;
    }
    if (weft__cx_bad(cx)) {           /* misuse (weft/core.h): nothing moved */
        if (out)
            *out = -EINVAL;
        return WEFT_READY;
    }
    if (!f->started) {
        /* a unit of the budget even when the bytes are buffered already:
         * a loop over buffered lines must yield too */
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        f->started = true;
    }
    for (;;) {
        if (!f->reading) {
            res = rd_try(f, eof);
            if (res != MORE)
                return rd_finish(f, res, out);
            if (eof)                  /* every kind completes at end of stream */
                return rd_finish(f, -EIO, out);
            if (rd_to_dst(f)) {
                weft_read_init(&f->op, r->s, f->dst + f->moved, f->n - f->moved);
            } else {
                size_t have = r->end - r->start;

                if (r->start > 0) {   /* room at the end: move the rest to the front */
                    memmove(r->buf, r->buf + r->start, have);
                    r->start = 0;
                    r->end = have;
                }
                if (r->end == r->cap) /* cannot happen: every kind completes on a full buffer */
                    return rd_finish(f, -EIO, out);
                weft_read_init(&f->op, r->s, r->buf + r->end, r->cap - r->end);
            }
            f->reading = true;
        }
        if (weft__io_op_poll(&f->op, cx, &n) == WEFT_PENDING)
            return WEFT_PENDING;
        weft_io_op_drop(&f->op);
        f->reading = false;
        if (n < 0)
            return rd_finish(f, n, out);
        if (n == 0) {
            eof = true;
            continue;
        }
        if (!rd_to_dst(f))
            r->end += (size_t)n;      /* in the same poll that took them */
        else if (f->kind == RK_READ)
            return rd_finish(f, n, out);
        else
            f->moved += (size_t)n;
    }
}

WEFT_API size_t weft_bufread_moved(const weft_bufread *f)
{
    return f ? f->moved : 0;
}

WEFT_API void weft_bufread_drop(weft_bufread *f)
{
    if (f == NULL)
        return;
    if (f->reading) {
        weft_io_op_drop(&f->op);      /* its bytes never left the kernel */
        f->reading = false;
    }
    if (!f->done) {
        f->done = true;
        f->result = -ECANCELED;
    }
    f->kind = RK_NONE;
}

static weft_poll bufread_thunk(void *self, weft_context *cx, void *out)
{
    return weft_bufread_poll(self, cx, out);
}

static void bufread_drop_thunk(void *self)
{
    weft_bufread_drop(self);
}

WEFT_API const weft_future_type weft_bufread_future = {
    bufread_thunk, bufread_drop_thunk, sizeof(weft_bufread), _Alignof(weft_bufread),
    sizeof(ssize_t), _Alignof(ssize_t), "weft_bufread"
};

/* ---- Writer ---------------------------------------------------------------------- */
WEFT_API int weft_bufwriter_init(weft_bufwriter *w, weft_socket *s, void *buf, size_t cap)
{
    int err;

    if (w == NULL)
        return -EINVAL;
    memset(w, 0, sizeof(*w));
    if (s == NULL)
        return -EINVAL;
    err = buf_setup(&w->buf, &w->owned, buf, cap);
    if (err)
        return err;
    w->s = s;
    w->cap = cap;
    return 0;
}

WEFT_API void weft_bufwriter_drop(weft_bufwriter *w)
{
    if (w == NULL)
        return;
    if (w->owned)
        weft__free(w->buf);
    memset(w, 0, sizeof(*w));
}

WEFT_API size_t weft_bufwriter_buffered(const weft_bufwriter *w)
{
    return w && w->buf ? w->end - w->start : 0;
}

static void wr_init(weft_bufwrite *f, weft_bufwriter *w, int kind, const void *src, size_t len)
{
    if (f == NULL)
        return;
    memset(f, 0, sizeof(*f));
    f->w = w;
    f->kind = (unsigned char)kind;
    f->src = src;
    f->len = len;
    if (w == NULL || w->buf == NULL || len > (size_t)SSIZE_MAX || (src == NULL && len > 0)) {
        f->done = true;
        f->result = -EINVAL;
    }
}

WEFT_API void weft_bufwriter_write_init(weft_bufwrite *f, weft_bufwriter *w, const void *src,
                                        size_t len)
{
    wr_init(f, w, WK_WRITE, src, len);
}

WEFT_API void weft_bufwriter_flush_init(weft_bufwrite *f, weft_bufwriter *w)
{
    wr_init(f, w, WK_FLUSH, NULL, 0);
}

WEFT_API void weft_bufwriter_write_frame_init(weft_bufwrite *f, weft_bufwriter *w,
                                              const void *payload, size_t len)
{
    if (f == NULL)
        return;
    wr_init(f, w, WK_FRAME, payload, len);
    if (f->done)
        return;
    if (w->cap < 4) {
        f->result = -EINVAL;
        f->done = true;
    } else if (len > UINT32_MAX) {
        f->result = -EMSGSIZE;
        f->done = true;
    }
    f->hdr[0] = (unsigned char)(len >> 24);
    f->hdr[1] = (unsigned char)(len >> 16);
    f->hdr[2] = (unsigned char)(len >> 8);
    f->hdr[3] = (unsigned char)len;
}

/* Free room at the end of the buffer, after moving its bytes to the front
 * when that makes room for `want`. */
static size_t wr_room(weft_bufwriter *w, size_t want)
{
    size_t have = w->end - w->start;

    if (have == 0)
        w->start = w->end = 0;
    else if (w->cap - w->end < want && w->start > 0) {
        memmove(w->buf, w->buf + w->start, have);
        w->start = 0;
        w->end = have;
    }
    return w->cap - w->end;
}

static void wr_put(weft_bufwriter *w, const void *p, size_t n)
{
    memcpy(w->buf + w->end, p, n);
    w->end += n;
}

/* What the write needs next. */
enum { W_DONE, W_FLUSH, W_DIRECT };

/* Take the rest of src[0, len) from *moved: into the buffer if it fits,
 * else flush first; a rest as long as the buffer goes straight out. */
static int wr_take(weft_bufwriter *w, const unsigned char *src, size_t len, size_t *moved)
{
    size_t rest = len - *moved;

    if (rest == 0)
        return W_DONE;
    if (rest <= wr_room(w, rest)) {
        wr_put(w, src + *moved, rest);
        *moved = len;
        return W_DONE;
    }
    return w->end > w->start ? W_FLUSH : W_DIRECT;
}

static int wr_next(weft_bufwrite *f)
{
    weft_bufwriter *w = f->w;

    switch (f->kind) {
    case WK_FLUSH:
        return w->end > w->start ? W_FLUSH : W_DONE;
    case WK_FRAME:
        if (f->phase == 0) {
            if (4 + f->len <= wr_room(w, 4 + f->len)) {   /* the whole frame */
                wr_put(w, f->hdr, 4);
                wr_put(w, f->src, f->len);
                f->moved = f->len;
                return W_DONE;
            }
            if (wr_room(w, 4) < 4)
                return W_FLUSH;
            wr_put(w, f->hdr, 4);
            f->phase = 1;
        }
        WEFT_FALLTHROUGH;
    case WK_WRITE:
        return wr_take(w, f->src, f->len, &f->moved);
    default:
        return W_DONE;
    }
}

static weft_poll wr_finish(weft_bufwrite *f, ssize_t res, ssize_t *out)
{
    if (f->writing) {
        weft_io_op_drop(&f->op);
        f->writing = false;
    }
    f->done = true;
    f->result = res;
    if (out)
        *out = res;
    return WEFT_READY;
}

WEFT_API weft_poll weft_bufwrite_poll(weft_bufwrite *f, weft_context *cx, ssize_t *out)
{
    weft_bufwriter *w;
    ssize_t n;

    if (f == NULL) {                  /* a NULL future: only *out */
        if (out)
            *out = -EINVAL;
        return WEFT_READY;
    }
    w = f->w;
    if (!f->done && w == NULL) {      /* zeroed, never initialised: as a NULL writer */
        f->done = true;
        f->result = -EINVAL;
    }
    if (f->done) {
        if (out)
            *out = f->result;
        return WEFT_READY;
    }
    if (weft__cx_bad(cx)) {           /* misuse (weft/core.h): nothing moved */
        if (out)
            *out = -EINVAL;
        return WEFT_READY;
    }
    if (!f->started) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        f->started = true;
    }
    for (;;) {
        if (!f->writing) {
            int next = wr_next(f);

            if (next == W_DONE)
                return wr_finish(f, f->kind == WK_FLUSH ? 0 : (ssize_t)f->len, out);
            if (next == W_FLUSH) {
                weft_write_init(&f->op, w->s, w->buf + w->start, w->end - w->start);
                f->flushing = true;   /* the write is from the buffer */
            } else {
                weft_write_init(&f->op, w->s, f->src + f->moved, f->len - f->moved);
                f->flushing = false;
            }
            f->writing = true;
        }
        if (weft__io_op_poll(&f->op, cx, &n) == WEFT_PENDING)
            return WEFT_PENDING;
        weft_io_op_drop(&f->op);
        f->writing = false;
        if (n < 0)
            return wr_finish(f, n, out);
        if (n == 0)                   /* a stream write of > 0 bytes moves some */
            return wr_finish(f, -EIO, out);
        if (f->flushing) {
            w->start += (size_t)n;
            if (w->start == w->end)
                w->start = w->end = 0;
        } else {
            f->moved += (size_t)n;
        }
    }
}

WEFT_API size_t weft_bufwrite_moved(const weft_bufwrite *f)
{
    return f ? f->moved : 0;
}

WEFT_API void weft_bufwrite_drop(weft_bufwrite *f)
{
    if (f == NULL)
        return;
    if (f->writing) {
        weft_io_op_drop(&f->op);
        f->writing = false;
    }
    if (!f->done) {
        f->done = true;
        f->result = -ECANCELED;
    }
    f->kind = WK_NONE;
}

static weft_poll bufwrite_thunk(void *self, weft_context *cx, void *out)
{
    return weft_bufwrite_poll(self, cx, out);
}

static void bufwrite_drop_thunk(void *self)
{
    weft_bufwrite_drop(self);
}

WEFT_API const weft_future_type weft_bufwrite_future = {
    bufwrite_thunk, bufwrite_drop_thunk, sizeof(weft_bufwrite), _Alignof(weft_bufwrite),
    sizeof(ssize_t), _Alignof(ssize_t), "weft_bufwrite"
};

/* ---- Copy ---------------------------------------------------------------------------- */
WEFT_API void weft_copy_init(weft_copy *c, weft_socket *from, weft_socket *to)
{
    if (c == NULL)
        return;
    memset(c, 0, offsetof(weft_copy, buf));   /* the buffer needs no zeroing */
    c->from = from;
    c->to = to;
    if (from == NULL || to == NULL) {
        c->done = true;
        c->result = -EINVAL;
    }
}

static void copy_forget(weft_copy *c);

static weft_poll copy_finish(weft_copy *c, ssize_t res, ssize_t *out)
{
    copy_forget(c);
    if (c->reading || c->writing) {
        weft_io_op_drop(&c->op);
        c->reading = c->writing = false;
    }
    c->done = true;
    c->result = res;
    if (out)
        *out = res;
    return WEFT_READY;
}

/* ---- splice: when one end is a pipe ----
 * splice(2) needs both sides ready: `from` readable and `to` writable. The
 * call runs by the readiness protocol of `from` (weft__io_do, reading),
 * with `to`'s descriptor held busy; an EAGAIN is told apart by looking at
 * both descriptors at once (poll(2), no wait): `from` empty means park on
 * `from` (EAGAIN to the protocol); `to` full means SPLICE_OUT_FULL, and
 * the future then waits for `to` to become writable by `to`'s protocol
 * (a check that answers EAGAIN while it is not), then splices again. */
#define SPLICE_OUT_FULL ((ssize_t)-2000001)
#define SPLICE_CHUNK ((size_t)1 << 20)

struct splice_arg {
    int out_fd;
};

/* splice without SIGPIPE: a pipe or socket whose reader is gone raises it
 * at the calling thread; blocked for the call, and the one raised is taken
 * unless one was pending before (as net/socket.c does for pipe writes). */
static ssize_t splice_nosig(int in, int out)
{
    sigset_t set, old, pending;
    bool had = false;
    ssize_t r;
    int err = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    if (sigismember(&old, SIGPIPE) && sigpending(&pending) == 0)
        had = sigismember(&pending, SIGPIPE);
    r = splice(in, NULL, out, NULL, SPLICE_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (r < 0) {
        err = errno;
        if (err == EPIPE && !had) {
            const struct timespec zero = { 0, 0 };

            while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
                ;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r < 0 ? -err : r;
}

static ssize_t splice_call(int in_fd, void *arg)
{
    const struct splice_arg *a = arg;

    for (int tries = 0;; tries++) {
        ssize_t r = splice_nosig(in_fd, a->out_fd);
        struct pollfd p[2] = { { in_fd, POLLIN | POLLRDHUP, 0 }, { a->out_fd, POLLOUT, 0 } };

        if (r != -EAGAIN)
            return r;
        if (poll(p, 2, 0) < 0)
            return -errno;
        if (p[1].revents == 0)
            return SPLICE_OUT_FULL;
        if (p[0].revents == 0)
            return -EAGAIN;           /* `from` is empty: wait for it */
        if (tries == 8)               /* both look ready, yet EAGAIN: wait on `to` */
            return SPLICE_OUT_FULL;
    }
}

/* `to` writable (or broken: the splice then reports it): 0, else EAGAIN. */
static ssize_t writable_call(int fd, void *arg)
{
    struct pollfd p = { fd, POLLOUT, 0 };

    (void)arg;
    if (poll(&p, 1, 0) < 0)
        return -errno;
    return p.revents ? 0 : -EAGAIN;
}

/* Both ends' sources; splice applies: one end a pipe, the other a pipe or
 * a stream socket. */
static bool copy_can_splice(weft_copy *c, struct weft__io_source **in, uint32_t *in_gen,
                            struct weft__io_source **out, uint32_t *out_gen)
{
    unsigned kin, kout;

    if (weft__handle_source(c->from, in, in_gen, &kin) < 0 ||
        weft__handle_source(c->to, out, out_gen, &kout) < 0)
        return false;
    if (kin == HK_PIPE)
        return kout == HK_PIPE || kout == HK_STREAM;
    return kout == HK_PIPE && kin == HK_STREAM;
}

/* wait_in / wait_out: a waker of the copy may sit in `from`'s reader /
 * `to`'s writer slot (stored by the reactor for a splice, or by
 * copy_watch_other()): released at the end. */
static void copy_forget(weft_copy *c)
{
    struct weft__io_source *src;
    uint32_t gen;

    if (c->wait_in && weft__handle_source(c->from, &src, &gen, NULL) == 0)
        weft__io_forget(src, gen, IO_READ);
    if (c->wait_out && weft__handle_source(c->to, &src, &gen, NULL) == 0)
        weft__io_forget(src, gen, IO_WRITE);
    c->wait_in = c->wait_out = false;
}

/* The copy waits on one end (`reading`: on `from`; else on `to`): watch
 * the other end for its close (bufio.h: "-EBADF when the stream is
 * closed, also while a future waits"), by storing the waker in its slot of
 * the direction the copy owns there (to's writer, from's reader: one
 * copy per end and direction, as for any future). 0, or -EBADF /
 * -ESHUTDOWN when that end is closed / its runtime gone. A wake-up for an
 * event of that end costs one poll. */
static int copy_watch_other(weft_copy *c, bool reading, weft_context *cx)
{
    struct weft__io_source *src;
    uint32_t gen;
    int err = weft__handle_source(reading ? c->to : c->from, &src, &gen, NULL);

    if (err)
        return err;
    err = weft__io_watch_close(src, gen, reading ? IO_WRITE : IO_READ, cx);
    if (err == 0) {
        if (reading)
            c->wait_out = true;
        else
            c->wait_in = true;
    }
    return err;
}

static weft_poll copy_splice(weft_copy *c, weft_context *cx, ssize_t *out)
{
    struct weft__io_source *in, *dst;
    uint32_t in_gen, dst_gen;
    struct splice_arg a;
    ssize_t r;

    if (!copy_can_splice(c, &in, &in_gen, &dst, &dst_gen))
        return copy_finish(c, -EBADF, out);
    for (;;) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        a.out_fd = weft__io_begin(dst, dst_gen);
        if (a.out_fd < 0)
            return copy_finish(c, a.out_fd, out);
        r = weft__io_do(in, in_gen, IO_READ, cx, splice_call, &a, 0);
        weft__io_end(dst);
        if (r == WEFT_IO_PENDING) {
            c->wait_in = true;
            r = copy_watch_other(c, true, cx);
            return r < 0 ? copy_finish(c, r, out) : WEFT_PENDING;
        }
        if (r == SPLICE_OUT_FULL) {
            r = weft__io_do(dst, dst_gen, IO_WRITE, cx, writable_call, NULL, 0);
            if (r == WEFT_IO_PENDING) {
                c->wait_out = true;
                r = copy_watch_other(c, false, cx);
                return r < 0 ? copy_finish(c, r, out) : WEFT_PENDING;
            }
            if (r < 0)
                return copy_finish(c, r, out);
            continue;
        }
        if (r < 0)
            return copy_finish(c, r, out);
        if (r == 0)
            return copy_finish(c, c->total > (uint64_t)SSIZE_MAX ? SSIZE_MAX
                                                                 : (ssize_t)c->total, out);
        c->total += (uint64_t)r;
    }
}

WEFT_API weft_poll weft_copy_poll(weft_copy *c, weft_context *cx, ssize_t *out)
{
    ssize_t n;

    if (c == NULL) {                  /* a NULL future: only *out */
        if (out)
            *out = -EINVAL;
        return WEFT_READY;
    }
    if (c->done) {
        if (out)
            *out = c->result;
        return WEFT_READY;
    }
    if (weft__cx_bad(cx)) {           /* misuse (weft/core.h): nothing moved */
        if (out)
            *out = -EINVAL;
        return WEFT_READY;
    }
    if (c->mode == 0) {
        struct weft__io_source *in, *dst;
        uint32_t in_gen, dst_gen;

        /* a socket whose bytes io_uring's receive holds (or is taking)
         * is copied through reads, which take them in order */
        c->mode = copy_can_splice(c, &in, &in_gen, &dst, &dst_gen) &&
                          !(atomic_load_explicit(&weft__io_rx_any, memory_order_relaxed) &&
                            weft__io_rx_busy(in, in_gen)) ? 2 : 1;
    }
    if (c->mode == 2)
        return copy_splice(c, cx, out);
    for (;;) {
        if (c->pos == c->len && !c->reading) {
            weft_read_init(&c->op, c->from, c->buf, sizeof(c->buf));
            c->reading = true;
        }
        if (c->reading) {
            if (weft__io_op_poll(&c->op, cx, &n) == WEFT_PENDING) {
                n = copy_watch_other(c, true, cx);
                return n < 0 ? copy_finish(c, n, out) : WEFT_PENDING;
            }
            weft_io_op_drop(&c->op);
            c->reading = false;
            if (n < 0)
                return copy_finish(c, n, out);
            if (n == 0)
                return copy_finish(c, c->total > (uint64_t)SSIZE_MAX ? SSIZE_MAX
                                                                     : (ssize_t)c->total, out);
            c->pos = 0;
            c->len = (size_t)n;
        }
        if (!c->writing) {
            weft_write_init(&c->op, c->to, c->buf + c->pos, c->len - c->pos);
            c->writing = true;
        }
        if (weft__io_op_poll(&c->op, cx, &n) == WEFT_PENDING) {
            n = copy_watch_other(c, false, cx);
            return n < 0 ? copy_finish(c, n, out) : WEFT_PENDING;
        }
        weft_io_op_drop(&c->op);
        c->writing = false;
        if (n <= 0)
            return copy_finish(c, n < 0 ? n : -EIO, out);
        c->pos += (size_t)n;
        c->total += (uint64_t)n;
    }
}

WEFT_API uint64_t weft_copy_total(const weft_copy *c)
{
    return c ? c->total : 0;
}

WEFT_API void weft_copy_drop(weft_copy *c)
{
    if (c == NULL)
        return;
    copy_forget(c);
    if (c->reading || c->writing) {
        weft_io_op_drop(&c->op);
        c->reading = c->writing = false;
    }
    if (!c->done) {
        c->done = true;
        c->result = -ECANCELED;
    }
}

static weft_poll copy_thunk(void *self, weft_context *cx, void *out)
{
    return weft_copy_poll(self, cx, out);
}

static void copy_drop_thunk(void *self)
{
    weft_copy_drop(self);
}

WEFT_API const weft_future_type weft_copy_future = {
    copy_thunk, copy_drop_thunk, sizeof(weft_copy), _Alignof(weft_copy),
    sizeof(ssize_t), _Alignof(ssize_t), "weft_copy"
};
