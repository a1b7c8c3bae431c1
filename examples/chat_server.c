/* SPDX-License-Identifier: MIT */
/* A line-based chat server on weft: every line a client sends goes to every
 * other connected client, as "client N: line".
 *
 *     chat_server [--port N] [--workers N] [--drain-ms N]
 *                                  (defaults: 7070, 2 workers, 5000 ms)
 *
 * Try it with two or three `nc 127.0.0.1 7070`. It prints "listening on
 * PORT" once ready and runs until SIGINT or SIGTERM (Ctrl-C): then it stops
 * accepting, gives the clients --drain-ms to leave, cancels those still
 * connected (their drops free them) and frees everything, so that a
 * sanitizer build can check for leaks (serve.h: the command line, the
 * acceptor and the stop, shared with http_server.c).
 *
 * Design:
 *   - a registry (a list of clients) behind a pthread mutex. Every critical
 *     section is short and never waits (link, unlink, try_send to each
 *     member), so a plain mutex fits; weft_mutex is for sections that await.
 *   - per client, a bounded weft_chan of fixed-size messages (QUEUE_CAP
 *     slots, one allocation) and two tasks: a reader that splits the input
 *     into lines and hands each to every other client's channel, and a
 *     writer that takes messages off its own channel and writes them out.
 *   - broadcasting never waits: weft_chan_try_send(). A client that reads
 *     too slowly fills its queue, and messages for it are dropped (counted;
 *     it is told how many once its queue drains) instead of stalling the
 *     sender and, through it, everyone.
 *   - a line is at most LINE_MAX bytes (CR LF or LF ends it); the rest of a
 *     longer line is discarded. A last line without a newline is sent when
 *     the client disconnects.
 *   - the client object is shared by its two tasks and freed (socket closed,
 *     channel dropped) when the second of them ends. */
#define _POSIX_C_SOURCE 200809L        /* strsignal (serve.h) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "chat_room.h"
#include "serve.h"
#include "weft.h"

/* ---- the reader: lines in, broadcasts out ------------------------------------- */
typedef struct reader {
    weft_async co;
    client *c;
    weft_io_op op;
    ssize_t n;
    bool registered;
    char buf[4096];
    line_splitter ls;
} reader;

static weft_poll reader_poll(reader *r, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&r->co);
    client_join(r->c);
    r->registered = true;
    for (;;) {
        weft_read_init(&r->op, r->c->sock, r->buf, sizeof(r->buf));
        WEFT_AWAIT(&r->co, weft_io_op_poll(&r->op, cx, &r->n));
        if (r->n <= 0)
            break;                     /* end of stream or error */
        line_feed(&r->ls, r->buf, (size_t)r->n);
    }
    if (r->ls.line_len > 0)
        line_send(&r->ls);           /* a last line without a newline */
    WEFT_END(&r->co);
}

/* Runs once, whether the reader finished or was cancelled at shutdown. */
static void reader_drop(reader *r)
{
    weft_io_op_drop(&r->op);
    if (r->registered)
        client_leave(r->c);
    weft_chan_close(r->c->out);        /* the writer drains it, then ends */
    client_unref(r->c);
}

WEFT_DEFINE_FUTURE_VOID(reader, reader_poll, reader_drop);

/* ---- the writer: the client's queue out to its socket --------------------------- */
typedef struct writer {
    weft_async co;
    client *c;
    weft_chan_recv rx;
    weft_io_op op;
    int err;
    ssize_t n;
    message msg;
} writer;

static weft_poll writer_poll(writer *w, weft_context *cx, void *out)
{
    unsigned long dropped;

    (void)out;
    WEFT_BEGIN(&w->co);
    for (;;) {
        weft_chan_recv_init(&w->rx, w->c->out, &w->msg);
        WEFT_AWAIT(&w->co, weft_chan_recv_poll(&w->rx, cx, &w->err));
        weft_chan_recv_drop(&w->rx);
        if (w->err != 0)
            break;                     /* -EPIPE: closed by the reader, drained */
        weft_write_all_init(&w->op, w->c->sock, w->msg.text, w->msg.len);
        WEFT_AWAIT(&w->co, weft_io_op_poll(&w->op, cx, &w->n));
        if (w->n < 0)
            goto failed;
        /* once the queue has drained, say how much was lost: roughly the
         * place where the gap is */
        if (weft_chan_len(w->c->out) > 0)
            continue;
        dropped = atomic_exchange_explicit(&w->c->dropped, 0, memory_order_relaxed);
        if (dropped == 0)
            continue;
        w->msg.len = (uint32_t)snprintf(w->msg.text, sizeof(w->msg.text),
                                        "* %lu messages dropped: you read too slowly\n",
                                        dropped);
        weft_write_all_init(&w->op, w->c->sock, w->msg.text, w->msg.len);
        WEFT_AWAIT(&w->co, weft_io_op_poll(&w->op, cx, &w->n));
        if (w->n < 0)
            goto failed;
    }
    goto done;
failed:
    /* The peer is gone (or stuck): stop taking messages for it, and wake
     * the reader, whose read then ends, so that the client leaves. */
    weft_chan_close(w->c->out);
    weft_socket_shutdown(w->c->sock, SHUT_RDWR);
done:;                                 /* ";": a label may not end at WEFT_END */
    WEFT_END(&w->co);
}

static void writer_drop(writer *w)
{
    weft_chan_recv_drop(&w->rx);
    weft_io_op_drop(&w->op);
    client_unref(w->c);
}

WEFT_DEFINE_FUTURE_VOID(writer, writer_poll, writer_drop);

/* ---- serving ------------------------------------------------------------------ */
/* Make the client and its two tasks, in the server's group (serve.h). On
 * failure everything is undone. */
static int on_conn(weft_group *g, weft_socket *sock)
{
    int err = -ENOMEM;
    client *c = client_new(sock);
    writer w = { .c = c };
    reader r = { .c = c, .ls.c = c };

    if (c == NULL)
        goto out_close;
    weft_socket_set_nodelay(sock, true);
    if ((err = weft_group_spawn(g, &writer_future, &w)) != 0)
        goto out_chan;
    if ((err = weft_group_spawn(g, &reader_future, &r)) != 0) {
        weft_chan_close(c->out);       /* the writer ends and drops its ref */
        client_unref(c);               /* the reader's */
    }
    return err;
out_chan:
    weft_chan_drop(c->out);
    free(c);
out_close:
    weft_socket_close(sock);
    return err;
}

int main(int argc, char **argv)
{
    return serve_main(argc, argv, "chat_server", 7070, on_conn);
}
