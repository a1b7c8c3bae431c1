/* SPDX-License-Identifier: MIT */
/* Shared pieces of the stream tests: the socket tests' helpers (runtimes,
 * byte patterns, descriptor counting), one future run under a time limit,
 * and small tasks that read or write a stream. Everything is static. */
#ifndef WEFT_STREAM_TEST_H
#define WEFT_STREAM_TEST_H

#include "../net/net_test.h"

#define ST_WAIT_MS 5000u              /* "at once": far below this */
#define ST_SHORT_MS 50u               /* long enough to see a future wait */

/* Run a future with an ssize_t output (set up by the caller, dropped by the
 * caller) as a task of rt under a limit of `ms`: its result, or -ETIMEDOUT
 * (the future has then been dropped while pending). */
typedef struct st_timed {
    const weft_future_type *type;
    void *fut;
    uint64_t ms;
    weft_timeout t;
    bool init;
    ssize_t n;
} st_timed;

static weft_poll st_timed_poll(st_timed *f, weft_context *cx, ssize_t *out)
{
    int err = 0;

    if (!f->init) {
        f->n = -12345;
        weft_timeout_init(&f->t, f->type, f->fut, f->ms);
        f->init = true;
    }
    if (weft_timeout_poll(&f->t, cx, &err, &f->n) == WEFT_PENDING)
        return WEFT_PENDING;
    *out = err ? err : f->n;
    return WEFT_READY;
}

static void st_timed_drop(st_timed *f)
{
    if (f->init)
        weft_timeout_drop(&f->t);
}

WEFT_DEFINE_FUTURE(st_timed, st_timed_poll, st_timed_drop, ssize_t);

static NT_UNUSED ssize_t st_run_future(weft_runtime *rt, const weft_future_type *type,
                                       void *fut, uint64_t ms)
{
    ssize_t n = -12345;

    ASSERT_OK(weft_block_on(rt, &st_timed_future,
                            &(st_timed){ .type = type, .fut = fut, .ms = ms }, &n));
    return n;
}

static NT_UNUSED ssize_t st_run(weft_runtime *rt, weft_io_op *op, uint64_t ms)
{
    ssize_t n = st_run_future(rt, &weft_io_op_future, op, ms);

    weft_io_op_drop(op);
    return n;
}

/* The usual shapes, each run to completion (or the limit) on rt. */
static NT_UNUSED ssize_t st_read(weft_runtime *rt, weft_stream *s, void *buf, size_t len,
                                 uint64_t ms)
{
    weft_io_op op;

    weft_read_init(&op, s, buf, len);
    return st_run(rt, &op, ms);
}

static NT_UNUSED ssize_t st_read_exact(weft_runtime *rt, weft_stream *s, void *buf, size_t len,
                                       uint64_t ms)
{
    weft_io_op op;

    weft_read_exact_init(&op, s, buf, len);
    return st_run(rt, &op, ms);
}

static NT_UNUSED ssize_t st_write(weft_runtime *rt, weft_stream *s, const void *buf, size_t len,
                                  uint64_t ms)
{
    weft_io_op op;

    weft_write_init(&op, s, buf, len);
    return st_run(rt, &op, ms);
}

static NT_UNUSED ssize_t st_write_all(weft_runtime *rt, weft_stream *s, const void *buf,
                                      size_t len, uint64_t ms)
{
    weft_io_op op;

    weft_write_all_init(&op, s, buf, len);
    return st_run(rt, &op, ms);
}

/* Poll a future by hand once (no runtime needed): the poll's answer. */
static NT_UNUSED weft_poll st_poll_once(weft_io_op *op, ssize_t *n)
{
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);

    return weft_io_op_poll(op, &cx, n);
}

/* A task that waits on one read (or write) of `s` and records that it
 * waits: for abort, close and shutdown while pending. Output: the result. */
static int st_waiting;

typedef struct st_waiter {
    weft_stream *s;
    bool write, owns;                 /* owns: close s in drop */
    bool started;
    weft_io_op op;
    char buf[16];
} st_waiter;

static weft_poll st_waiter_poll(st_waiter *w, weft_context *cx, ssize_t *out)
{
    if (!w->started) {
        if (w->write)
            weft_write_all_init(&w->op, w->s, w->buf, sizeof(w->buf));
        else
            weft_read_init(&w->op, w->s, w->buf, sizeof(w->buf));
        w->started = true;
    }
    if (weft_io_op_poll(&w->op, cx, out) == WEFT_PENDING) {
        __atomic_store_n(&st_waiting, 1, __ATOMIC_RELEASE);
        return WEFT_PENDING;
    }
    return WEFT_READY;
}

static void st_waiter_drop(st_waiter *w)
{
    weft_io_op_drop(&w->op);
    if (w->owns)
        weft_stream_close(w->s);
}

WEFT_DEFINE_FUTURE(st_waiter, st_waiter_poll, st_waiter_drop, ssize_t);

/* Fill the pipe behind `wr` (raw writes) until it would block. */
static NT_UNUSED size_t st_fill_pipe(weft_stream *wr)
{
    static char junk[4096];
    int fd = weft_stream_fd(wr);
    size_t total = 0;

    ASSERT(fd >= 0);
    for (;;) {
        ssize_t r = write(fd, junk, sizeof(junk));

        if (r < 0) {
            ASSERT_EQ(EAGAIN, errno);
            return total;
        }
        total += (size_t)r;
    }
}

#endif
