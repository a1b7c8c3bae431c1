/* SPDX-License-Identifier: MIT */
/* weft/bufio.h - buffered streams over any weft byte stream (a socket, a
 * pipe, a tty: any weft_stream / weft_socket handle): a buffered reader
 * (lines, delimiters, exact reads, peeking), a buffered writer with flush,
 * stream-to-stream copy, and a length-prefixed frame codec.
 *
 * The reader and the writer are plain structs their owner embeds, over a
 * buffer the caller lends (no allocation) or one weft allocates; both
 * borrow the stream handle (they never close it). Every call that may wait
 * is a future with the usual rules (weft/core.h): *_init fixes its
 * arguments, *_poll drives it from a task of the stream's runtime, *_drop
 * is valid in every state and idempotent; polling after READY returns the
 * same output. Outputs are ssize_t: a count (>= 0) or a negative errno
 * (the stream's own errors pass through: -EBADF when the stream is closed,
 * also while a future waits; -ESHUTDOWN, -ECONNRESET, ...). Bad arguments
 * make the future complete with -EINVAL at its first poll.
 *
 * One future at a time per reader and per writer (a reader and a writer
 * over the same socket may run concurrently, as a split stream). Every
 * future has a ready-made descriptor (weft_bufread_future,
 * weft_bufwrite_future, weft_copy_future), so they compose with
 * weft_timeout and the combinators. Thread: a reader or writer may move
 * between threads, but is used by one at a time. */
#ifndef WEFT_BUFIO_H
#define WEFT_BUFIO_H

#include <stdint.h>
#include <sys/types.h>

#include "core.h"
#include "net.h"
#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Buffered reader -------------------------------------------------------- */
typedef struct weft_bufreader {
    /* private: may change in any release */
    weft_socket *s;
    unsigned char *buf;
    size_t cap, start, end;           /* buffered bytes: buf[start, end) */
    bool owned;                       /* buf was allocated by weft */
} weft_bufreader;

/* Set up reader r over stream s with a buffer of `cap` bytes: `buf` lent by
 * the caller (it must outlive r), or NULL for weft to allocate it. The
 * capacity bounds a line (read_until), a peek (fill) and a frame that is
 * read without being consumed piecewise. 0, or -EINVAL (NULL r or s, cap 0
 * or above SSIZE_MAX), -ENOMEM. Release with weft_bufreader_drop(): it
 * frees an allocated buffer; bytes still buffered are lost; the stream is
 * not closed. Thread: any. */
WEFT_API int weft_bufreader_init(weft_bufreader *r, weft_socket *s, void *buf, size_t cap);
WEFT_API void weft_bufreader_drop(weft_bufreader *r);

/* The bytes buffered and not consumed yet: their count, with a pointer to
 * them in *data when data is non-NULL (valid until the next future on r or
 * consume). Zero copies: parse in place, then consume. Thread: r's user. */
WEFT_API size_t weft_bufreader_buffered(const weft_bufreader *r, const void **data);
/* Drop the first n buffered bytes (at most what is buffered): the count
 * consumed. Not while a future on r is pending (it may be reading into
 * the buffer): between futures. */
WEFT_API size_t weft_bufreader_consume(weft_bufreader *r, size_t n);

/* One struct serves every reader future; its fields are private. */
typedef struct weft_bufread {
    /* private: may change in any release */
    weft_bufreader *r;
    unsigned char kind, phase;
    bool started, reading, direct, done;
    int delim;
    unsigned char *dst;
    size_t max, n, moved, scanned;
    ssize_t result;
    weft_io_op op;
} weft_bufread;

/* Read up to and including the byte `delim` into dst (room for `max`
 * bytes). Output: the line's length including the delimiter; at end of
 * stream a last line without one (its length); 0 at end of stream with
 * nothing buffered (then 0 again). -EMSGSIZE when no delimiter comes within
 * the first min(max, capacity) bytes: nothing is consumed, the reader stays
 * usable (peek with weft_bufreader_buffered(), consume, or skip the line:
 * read_until with dst NULL). dst NULL: discard everything up to and
 * including the delimiter, any length (max is ignored); output: the count
 * discarded. dst is written only when the future completes with a line.
 * Cancel safety: dropping it while pending loses no byte (the bytes read
 * so far stay buffered for the next future); a dropped skip (dst NULL) has
 * discarded what it had seen. */
WEFT_API void weft_bufreader_read_until_init(weft_bufread *f, weft_bufreader *r, int delim,
                                             void *dst, size_t max);
/* read_until with delim '\n' (the output includes the '\n'). */
WEFT_API void weft_bufreader_read_line_init(weft_bufread *f, weft_bufreader *r, void *dst,
                                            size_t max);
/* Read exactly n bytes into dst. Output: n, or -EPIPE at end of stream
 * before n bytes. n <= capacity: all or nothing: the bytes are consumed
 * only when all n are there; at -EPIPE, or when dropped, they stay
 * buffered. n > capacity: the buffered bytes are copied and the rest is
 * read straight into dst (zero copy); a drop or -EPIPE then leaves
 * weft_bufread_moved() bytes consumed into dst. dst NULL: discard n
 * bytes (piecewise, as above). */
WEFT_API void weft_bufreader_read_exact_init(weft_bufread *f, weft_bufreader *r, void *dst,
                                             size_t n);
/* Read what is there: the buffered bytes (up to len) if any, else one read
 * from the stream (straight into dst when len >= capacity). Output: the
 * count, 0 at end of stream (or for len 0). Cancel safety: loses nothing. */
WEFT_API void weft_bufreader_read_init(weft_bufread *f, weft_bufreader *r, void *dst,
                                       size_t len);
/* Peek: wait until at least n bytes are buffered (n <= capacity, else
 * -EINVAL), or end of stream. Output: the count buffered (>= n, or fewer
 * at end of stream; n 0: at once). Nothing is consumed: look at them with
 * weft_bufreader_buffered(), then weft_bufreader_consume(). */
WEFT_API void weft_bufreader_fill_init(weft_bufread *f, weft_bufreader *r, size_t n);

/* Frames: a 4-byte big-endian length, then that many bytes of payload.
 * Read one frame's payload into dst (room for `max` bytes). Output: the
 * payload's length (0 is a valid empty frame); -EPIPE at end of stream
 * before a frame begins; -EPROTO at end of stream inside a frame;
 * -EMSGSIZE when the length exceeds max: nothing is consumed, and the
 * stream stays in step only if the frame is then skipped: read_frame with
 * dst NULL discards the next frame, whatever its length (output: its
 * length). A frame of up to capacity - 4 bytes is consumed only once it is
 * all buffered: a drop loses nothing. A longer one is read straight into
 * dst after its header is consumed: a drop part-way leaves the stream
 * inside the frame (out of step: close it). */
WEFT_API void weft_bufreader_read_frame_init(weft_bufread *f, weft_bufreader *r, void *dst,
                                             size_t max);

WEFT_API weft_poll weft_bufread_poll(weft_bufread *f, weft_context *cx, ssize_t *out);
/* Bytes already moved to dst or discarded by a piecewise read (read_exact
 * beyond the capacity, a skip). */
WEFT_API size_t weft_bufread_moved(const weft_bufread *f);
WEFT_API void weft_bufread_drop(weft_bufread *f);
/* Output ssize_t. */
WEFT_API extern const weft_future_type weft_bufread_future;

/* ---- Buffered writer -------------------------------------------------------- */
typedef struct weft_bufwriter {
    /* private: may change in any release */
    weft_socket *s;
    unsigned char *buf;
    size_t cap, start, end;           /* unwritten bytes: buf[start, end) */
    bool owned;
} weft_bufwriter;

/* Set up writer w over stream s with a buffer of `cap` bytes (lent, or NULL
 * to allocate), as weft_bufreader_init(). weft_bufwriter_drop() frees an
 * allocated buffer and does not flush: unflushed bytes are lost (await a
 * flush first). Thread: any. */
WEFT_API int weft_bufwriter_init(weft_bufwriter *w, weft_socket *s, void *buf, size_t cap);
WEFT_API void weft_bufwriter_drop(weft_bufwriter *w);
/* Bytes buffered and not written to the stream yet. */
WEFT_API size_t weft_bufwriter_buffered(const weft_bufwriter *w);

typedef struct weft_bufwrite {
    /* private: may change in any release */
    weft_bufwriter *w;
    unsigned char kind, phase;
    bool started, writing, flushing, done;
    unsigned char hdr[4];
    const unsigned char *src;
    size_t len, moved;
    ssize_t result;
    weft_io_op op;
} weft_bufwrite;

/* Write len bytes of src: into the buffer when they fit (ready at once,
 * nothing written to the stream); else the buffer is flushed first, and
 * then src is buffered (up to the capacity) or written straight from
 * src (zero copy). Output: len, or -errno. Cancel safety: dropped while
 * pending, weft_bufwrite_moved() bytes of src were taken (buffered or
 * written), the rest not; bytes buffered before stay buffered. */
WEFT_API void weft_bufwriter_write_init(weft_bufwrite *f, weft_bufwriter *w, const void *src,
                                        size_t len);
/* Write every buffered byte to the stream. Output: 0, or -errno (the bytes
 * not written stay buffered). Cancel safety: a dropped flush leaves the
 * bytes it did not write in the buffer (a later flush sends them). */
WEFT_API void weft_bufwriter_flush_init(weft_bufwrite *f, weft_bufwriter *w);
/* Write one frame (4-byte big-endian length, then the payload) through the
 * writer; no flush (await one). Output: len, or -EMSGSIZE (len above
 * UINT32_MAX), -errno. A frame that fits the buffer's free space is
 * buffered whole; a drop part-way through a longer one may leave part of a
 * frame written: the stream is then out of step. */
WEFT_API void weft_bufwriter_write_frame_init(weft_bufwrite *f, weft_bufwriter *w,
                                              const void *payload, size_t len);

WEFT_API weft_poll weft_bufwrite_poll(weft_bufwrite *f, weft_context *cx, ssize_t *out);
WEFT_API size_t weft_bufwrite_moved(const weft_bufwrite *f);
WEFT_API void weft_bufwrite_drop(weft_bufwrite *f);
/* Output ssize_t. */
WEFT_API extern const weft_future_type weft_bufwrite_future;

/* ---- Copy ---------------------------------------------------------------------- */
#define WEFT_COPY_BUF 16384

typedef struct weft_copy {
    /* private: may change in any release */
    weft_socket *from, *to;
    bool started, reading, writing, done;
    unsigned char mode;               /* 0 undecided, 1 buffer, 2 splice */
    bool wait_in, wait_out;           /* splice: a waker stored on a side */
    size_t pos, len;
    uint64_t total;
    ssize_t result;
    weft_io_op op;
    unsigned char buf[WEFT_COPY_BUF];
} weft_copy;

/* Copy every byte from stream `from` to stream `to` until end of stream on
 * `from` (`to` is not closed or shut down). Output: the count copied, or
 * -errno from either side (-EPIPE when `to`'s reader is gone; SIGPIPE is
 * never raised). When one end is a pipe and the other a pipe or a stream
 * socket, the bytes move inside the kernel (splice(2)); otherwise through
 * the future's own WEFT_COPY_BUF-byte buffer. Awaiting allocates nothing.
 * Cancel safety: with the buffer, bytes read from `from` and not yet
 * written to `to` are lost when it is dropped (at most WEFT_COPY_BUF); a
 * splice moves bytes from one end to the other in one call, losing none.
 * weft_copy_total() tells how many were written. */
WEFT_API void weft_copy_init(weft_copy *c, weft_socket *from, weft_socket *to);
WEFT_API weft_poll weft_copy_poll(weft_copy *c, weft_context *cx, ssize_t *out);
WEFT_API uint64_t weft_copy_total(const weft_copy *c);
WEFT_API void weft_copy_drop(weft_copy *c);
/* Output ssize_t. */
WEFT_API extern const weft_future_type weft_copy_future;

#ifdef __cplusplus
}
#endif
#endif /* WEFT_BUFIO_H */
