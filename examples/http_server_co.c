/* SPDX-License-Identifier: MIT */
/* http_server.c written with coroutines: the same HTTP/1.1 "Hello, World!"
 * server (same replies, keep-alive, pipelining, lingering close, stop on
 * SIGINT/SIGTERM with a drain), but each connection is a coroutine
 * (weft/coro.h) whose code reads like a blocking server's: locals instead
 * of a state struct, weft_co_read / weft_co_write_all instead of awaits.
 *
 *     http_server_co [--port N] [--workers N] [--drain-ms N]
 *                                  (defaults: 8080, 2 workers, 5000 ms)
 *
 * The acceptor, the command line and the stop are serve.h's (futures), and
 * the parsing is http_proto.h's, both shared with http_server.c: only the
 * connection differs. When the drain cancels a connection, its blocking
 * call returns -ECANCELED and the function closes its socket and returns
 * (weft/coro.h, "Cancellation"). */
#define _GNU_SOURCE                    /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http_proto.h"
#include "serve.h"
#include "weft.h"

/* ---- one connection ------------------------------------------------------------ */
static int session(void *arg)
{
    weft_socket *sock = arg;
    http_buf hb;                       /* 16 KiB of the 64 KiB stack */
    http_buf *h = &hb;
    ssize_t n = 0;

    h->closing = false;
    h->len = h->pos = h->scan = h->out_len = 0;
    h->skip = 0;
    while (!h->closing) {
        n = weft_co_read(sock, h->in + h->len, IN_SIZE - h->len);
        if (n <= 0)
            goto done;                 /* end of stream, error, -ECANCELED */
        h->len += (size_t)n;
        while (!h->closing) {
            enum step step = http_next_request(h);

            if (step == STEP_MORE)
                break;
            if (step == STEP_REPLIED)
                continue;
            /* STEP_FLUSH: more pipelined requests than h->out holds;
             * STEP_METRICS: the replies before it first */
            if (h->out_len > 0 && (n = weft_co_write_all(sock, h->out, h->out_len)) < 0)
                goto done;
            h->out_len = 0;
            if (step == STEP_METRICS) {
                size_t mlen = 0;
                char *m = metrics_reply(&mlen, h->closing);

                if (m == NULL)
                    goto done;
                n = weft_co_write_all(sock, m, mlen);
                free(m);              /* the stack's own: freed on a cancel too */
                if (n < 0)
                    goto done;
            }
        }
        http_compact(h);
        if (h->out_len > 0) {
            if ((n = weft_co_write_all(sock, h->out, h->out_len)) < 0)
                goto done;
            h->out_len = 0;
        }
    }
    /* The lingering close (see http_server.c): FIN, then read and discard
     * until the client closes too, within LINGER_MS and LINGER_BYTES. The
     * coroutine's deadline bounds every read at once. */
    weft_socket_shutdown(sock, SHUT_WR);
    weft_co_deadline_set(weft_now_ms() + LINGER_MS);
    for (size_t drained = 0; drained < LINGER_BYTES; drained += (size_t)n) {
        n = weft_co_read(sock, h->in, IN_SIZE);
        if (n <= 0)
            break;                     /* closed, -ETIMEDOUT, -ECANCELED, error */
    }
done:
    weft_socket_close(sock);
    return 0;
}

/* ---- serving ------------------------------------------------------------------ */
/* One coroutine per connection, in the server's group (see serve.h). */
static int on_conn(weft_group *g, weft_socket *client)
{
    static const weft_go_options opt = { .name = "http-session" };
    int err;

    weft_socket_set_nodelay(client, true);
    err = weft_go_group(g, session, client, &opt);
    if (err != 0)
        weft_socket_close(client);     /* session never ran: it is ours */
    return err;
}

int main(int argc, char **argv)
{
    return serve_main(argc, argv, "http_server_co", 8080, on_conn);
}
