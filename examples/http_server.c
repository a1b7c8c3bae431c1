/* SPDX-License-Identifier: MIT */
/* An HTTP/1.1 "Hello, World!" server on weft: one task accepts, one task
 * per connection reads requests and answers each with the same 13 bytes,
 * keeping the connection open between requests (keep-alive).
 *
 *     http_server [--port N] [--workers N] [--drain-ms N]
 *                                  (defaults: 8080, 2 workers, 5000 ms)
 *
 * Try it with `curl -v http://127.0.0.1:8080/`. It prints "listening on
 * PORT" once ready and runs until SIGINT or SIGTERM (Ctrl-C): then it stops
 * accepting, gives open connections --drain-ms (5 s) to finish, closes the
 * rest and frees everything, so that a sanitizer build can check for leaks
 * at exit (serve.h: the command line, the acceptor and the stop, shared
 * with chat_server.c). An idle keep-alive connection is one of "the rest".
 *
 * What a connection does, per read:
 *   - every complete request in the buffer (a head ending in CRLF CRLF)
 *     gets a reply, in order; a partial one waits for more bytes;
 *   - the replies of one read go out in one write (pipelining);
 *   - a head that does not fit the 8 KiB buffer gets 431 and a close;
 *   - "Connection: close", or HTTP/1.0 without "Connection: keep-alive",
 *     ends the connection after its reply; a body announced with
 *     Content-Length is skipped; chunked bodies get 501 and a close.
 * Nothing is allocated per request: both buffers live in the task, which is
 * the one allocation per connection. The parsing is in http_parse.h,
 * shared with https_server.c. */
#define _GNU_SOURCE                    /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "serve.h"
#include "http_parse.h"
#include "weft.h"

#define LINGER_MS 1000                 /* see conn_poll's closing path */
#define LINGER_BYTES 65536

/* ---- one connection ------------------------------------------------------------ */
typedef struct conn {
    weft_async co;
    weft_socket *sock;
    weft_io_op op;
    weft_timeout linger;
    ssize_t n;
    int err;
    size_t drained;
    uint64_t deadline;
    http_conn h;                       /* buffers and parsing state */
} conn;

static weft_poll conn_poll(conn *c, weft_context *cx, void *out)
{
    enum step step;
    uint64_t now;                      /* not across an await */

    (void)out;
    WEFT_BEGIN(&c->co);
    while (!c->h.closing) {
        weft_read_init(&c->op, c->sock, c->h.in + c->h.len, IN_SIZE - c->h.len);
        WEFT_AWAIT(&c->co, weft_io_op_poll(&c->op, cx, &c->n));
        if (c->n <= 0)
            goto done;                 /* end of stream or error */
        c->h.len += (size_t)c->n;
        while (!c->h.closing) {
            step = next_request(&c->h);
            if (step == STEP_MORE)
                break;
            if (step == STEP_REPLIED)
                continue;
            /* STEP_FLUSH: more pipelined requests than c->h.out holds */
            weft_write_all_init(&c->op, c->sock, c->h.out, c->h.out_len);
            WEFT_AWAIT(&c->co, weft_io_op_poll(&c->op, cx, &c->n));
            if (c->n < 0)
                goto done;
            c->h.out_len = 0;
        }
        http_compact(&c->h);           /* a partial request to the front */
        if (c->h.out_len > 0) {
            weft_write_all_init(&c->op, c->sock, c->h.out, c->h.out_len);
            WEFT_AWAIT(&c->co, weft_io_op_poll(&c->op, cx, &c->n));
            if (c->n < 0)
                goto done;
            c->h.out_len = 0;
        }
    }
    /* We close first. Closing a socket with unread input makes the kernel
     * send RST, which may destroy the reply before the client reads it; so
     * send FIN, then read and discard until the client closes too (bounded
     * in time and bytes), as servers do in a "lingering close". */
    weft_socket_shutdown(c->sock, SHUT_WR);
    c->deadline = weft_now_ms() + LINGER_MS;
    for (c->drained = 0; c->drained < LINGER_BYTES; c->drained += (size_t)c->n) {
        now = weft_now_ms();
        if (now >= c->deadline)
            break;
        weft_read_init(&c->op, c->sock, c->h.in, IN_SIZE);
        weft_timeout_init(&c->linger, &weft_io_op_future, &c->op, c->deadline - now);
        WEFT_AWAIT(&c->co, weft_timeout_poll(&c->linger, cx, &c->err, &c->n));
        if (c->err != 0 || c->n <= 0)
            break;
    }
done:;                                 /* ";": a label may not end at WEFT_END */
    WEFT_END(&c->co);
}

static void conn_drop(conn *c)
{
    weft_timeout_drop(&c->linger);    /* drops c->op if it owns it */
    weft_io_op_drop(&c->op);          /* idempotent */
    weft_socket_close(c->sock);
}

WEFT_DEFINE_FUTURE_VOID(conn, conn_poll, conn_drop);

/* ---- serving ------------------------------------------------------------------ */
/* One task per connection, in the server's group (see serve.h). */
static int on_conn(weft_group *g, weft_socket *client)
{
    conn c = { .sock = client };
    int err;

    /* replies are written whole; don't let Nagle hold back the next batch
     * while the previous one waits for its ACK */
    weft_socket_set_nodelay(client, true);
    err = weft_group_spawn(g, &conn_future, &c);
    if (err != 0)
        weft_socket_close(client);
    return err;
}

int main(int argc, char **argv)
{
    return serve_main(argc, argv, "http_server", 8080, on_conn);
}
