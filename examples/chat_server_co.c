/* SPDX-License-Identifier: MIT */
/* chat_server.c written with coroutines: the same line-based chat (every
 * line a client sends goes to every other client as "client N: line"; a
 * slow reader loses messages rather than stall the room), but each
 * client's reader and writer are coroutines (weft/coro.h) whose code reads
 * like a blocking server's.
 *
 *     chat_server_co [--port N] [--workers N] [--drain-ms N]
 *                                  (defaults: 7070, 2 workers, 5000 ms)
 *
 * The acceptor, the command line and the stop are serve.h's; the room (the
 * registry, the clients, the line splitting) is chat_room.h's, both shared
 * with chat_server.c. When the drain cancels a client, its blocking calls
 * return -ECANCELED and each coroutine runs its cleanup and returns. */
#define _POSIX_C_SOURCE 200809L        /* strsignal (serve.h) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "chat_room.h"
#include "serve.h"
#include "weft.h"

/* ---- the reader: lines in, broadcasts out ------------------------------------- */
static int reader(void *arg)
{
    client *c = arg;
    line_splitter ls = { .c = c };
    char buf[4096];
    ssize_t n;

    client_join(c);
    while ((n = weft_co_read(c->sock, buf, sizeof(buf))) > 0)
        line_feed(&ls, buf, (size_t)n);
    if (n != -ECANCELED && ls.line_len > 0)
        line_send(&ls);                /* a last line without a newline */
    client_leave(c);
    weft_chan_close(c->out);           /* the writer drains it, then ends */
    client_unref(c);
    return 0;
}

/* ---- the writer: the client's queue out to its socket --------------------------- */
static int writer(void *arg)
{
    client *c = arg;
    message msg;
    ssize_t n = 0;

    /* -EPIPE: closed by the reader, drained; -ECANCELED: the drain ended */
    while (weft_co_chan_recv(c->out, &msg) == 0) {
        unsigned long dropped;

        if ((n = weft_co_write_all(c->sock, msg.text, msg.len)) < 0)
            break;
        /* once the queue has drained, say how much was lost: roughly the
         * place where the gap is */
        if (weft_chan_len(c->out) > 0)
            continue;
        dropped = atomic_exchange_explicit(&c->dropped, 0, memory_order_relaxed);
        if (dropped == 0)
            continue;
        msg.len = (uint32_t)snprintf(msg.text, sizeof(msg.text),
                                     "* %lu messages dropped: you read too slowly\n", dropped);
        if ((n = weft_co_write_all(c->sock, msg.text, msg.len)) < 0)
            break;
    }
    if (n < 0 && n != -ECANCELED) {
        /* The peer is gone (or stuck): stop taking messages for it, and
         * wake the reader, whose read then ends, so that the client leaves. */
        weft_chan_close(c->out);
        weft_socket_shutdown(c->sock, SHUT_RDWR);
    }
    client_unref(c);
    return 0;
}

/* ---- serving ------------------------------------------------------------------ */
/* Make the client and its two coroutines, in the server's group (serve.h).
 * On failure everything is undone. */
static int on_conn(weft_group *g, weft_socket *sock)
{
    static const weft_go_options ropt = { .name = "chat-reader" };
    static const weft_go_options wopt = { .name = "chat-writer" };
    client *c = client_new(sock);
    int err;

    if (c == NULL) {
        weft_socket_close(sock);
        return -ENOMEM;
    }
    weft_socket_set_nodelay(sock, true);
    if ((err = weft_go_group(g, writer, c, &wopt)) != 0) {
        weft_chan_drop(c->out);
        free(c);
        weft_socket_close(sock);
        return err;
    }
    if ((err = weft_go_group(g, reader, c, &ropt)) != 0) {
        weft_chan_close(c->out);       /* the writer ends and drops its ref */
        client_unref(c);               /* the reader's */
    }
    return err;
}

int main(int argc, char **argv)
{
    return serve_main(argc, argv, "chat_server_co", 7070, on_conn);
}
