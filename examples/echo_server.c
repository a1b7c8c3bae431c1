/* SPDX-License-Identifier: MIT */
/* A TCP echo server on weft: one task accepts, one task per connection
 * reads and writes back what it read, until the peer closes.
 *
 *     echo_server [--port N] [--workers N]     (defaults: 7007, 2 workers)
 *
 * Try it with `nc 127.0.0.1 7007`. It prints "listening on PORT" once
 * ready and runs until killed. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

/* ---- one connection ---------------------------------------------------------- */
typedef struct conn {
    weft_async co;
    weft_socket *sock;
    weft_io_op op;
    ssize_t n;
    char buf[16384];
} conn;

static weft_poll conn_poll(conn *c, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&c->co);
    for (;;) {
        weft_read_init(&c->op, c->sock, c->buf, sizeof(c->buf));
        WEFT_AWAIT(&c->co, weft_io_op_poll(&c->op, cx, &c->n));
        if (c->n <= 0)
            break;                    /* end of stream or error */
        weft_write_all_init(&c->op, c->sock, c->buf, (size_t)c->n);
        WEFT_AWAIT(&c->co, weft_io_op_poll(&c->op, cx, &c->n));
        if (c->n < 0)
            break;
    }
    WEFT_END(&c->co);
}

static void conn_drop(conn *c)
{
    weft_io_op_drop(&c->op);
    weft_socket_close(c->sock);
}

WEFT_DEFINE_FUTURE_VOID(conn, conn_poll, conn_drop);

/* ---- the acceptor -------------------------------------------------------------- */
typedef struct acceptor {
    weft_async co;
    weft_socket *listener;
    weft_accept acc;
    weft_socket *client;
    int err;
    weft_sleep backoff;
} acceptor;

static weft_poll acceptor_poll(acceptor *a, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&a->co);
    for (;;) {
        weft_accept_init(&a->acc, a->listener, &a->client, NULL, NULL);
        WEFT_AWAIT(&a->co, weft_accept_poll(&a->acc, cx, &a->err));
        if (a->err == 0) {
            conn c = { .sock = a->client };

            if (weft_spawn_detached(weft_runtime_current(), &conn_future, &c) != 0)
                weft_socket_close(a->client);
        } else if (a->err == -EMFILE || a->err == -ENFILE || a->err == -ENOBUFS ||
                   a->err == -ENOMEM) {
            /* out of descriptors: the connection waits in the kernel's
             * queue; try again in a while rather than spin */
            weft_sleep_init(&a->backoff, 10);
            WEFT_AWAIT(&a->co, weft_sleep_poll(&a->backoff, cx));
        } else if (a->err == -EBADF) {
            break;
        }
    }
    WEFT_END(&a->co);
}

static void acceptor_drop(acceptor *a)
{
    weft_io_op_drop(&a->acc);
    weft_sleep_drop(&a->backoff);
}

WEFT_DEFINE_FUTURE_VOID(acceptor, acceptor_poll, acceptor_drop);

int main(int argc, char **argv)
{
    unsigned port = 7007, workers = 2;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_runtime *rt;
    acceptor a = { 0 };
    int err;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--workers") == 0)
            workers = (unsigned)atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: %s [--port N] [--workers N]\n", argv[0]);
            return 2;
        }
    }
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD, .workers = workers };

    if ((err = weft_runtime_new(&rt, &opt)) != 0 ||
        (err = weft_addr_ip("0.0.0.0", (uint16_t)port, &addr, &len)) != 0 ||
        (err = weft_listen(rt, (struct sockaddr *)&addr, len, 0, &a.listener)) != 0) {
        fprintf(stderr, "echo_server: %s\n", weft_strerror(err));
        return 1;
    }
    len = sizeof(addr);
    weft_socket_local_addr(a.listener, &addr, &len);
    printf("listening on %u\n", ntohs(((struct sockaddr_in *)&addr)->sin_port));
    fflush(stdout);
    err = weft_block_on(rt, &acceptor_future, &a, NULL);
    weft_socket_close(a.listener);
    weft_runtime_free(rt);
    return err ? 1 : 0;
}
