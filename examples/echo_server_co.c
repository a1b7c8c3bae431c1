/* SPDX-License-Identifier: MIT */
/* echo_server.c written with coroutines: the same TCP echo server, but the
 * acceptor and each connection are coroutines (weft/coro.h) whose code
 * reads like a blocking server's.
 *
 *     echo_server_co [--port N] [--workers N]     (defaults: 7007, 2 workers)
 *
 * Try it with `nc 127.0.0.1 7007`. It prints "listening on PORT" once
 * ready and runs until killed. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

/* ---- one connection: read, write it all back, until the peer closes ---------- */
static int session(void *arg)
{
    weft_socket *sock = arg;
    char buf[16384];

    for (;;) {
        ssize_t n = weft_co_read(sock, buf, sizeof(buf));

        if (n <= 0)
            break;                     /* end of stream, error, -ECANCELED */
        if (weft_co_write_all(sock, buf, (size_t)n) < 0)
            break;
    }
    weft_socket_close(sock);
    return 0;
}

/* ---- the acceptor -------------------------------------------------------------- */
static int acceptor(void *arg)
{
    weft_socket *listener = arg;

    for (;;) {
        weft_socket *client;
        int err = weft_co_accept(listener, &client);

        if (err == 0) {
            if (weft_go_detached(weft_runtime_current(), session, client) != 0)
                weft_socket_close(client);
        } else if (err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM) {
            /* out of descriptors: the connection waits in the kernel's
             * queue; try again in a while rather than spin */
            weft_co_sleep(10);
        } else if (err == -EBADF || err == -ECANCELED) {
            return err;
        }
    }
}

int main(int argc, char **argv)
{
    unsigned port = 7007, workers = 2;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_runtime *rt;
    weft_socket *listener;
    int err, result = 0;

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
        (err = weft_listen(rt, (struct sockaddr *)&addr, len, 0, &listener)) != 0) {
        fprintf(stderr, "echo_server_co: %s\n", weft_strerror(err));
        return 1;
    }
    len = sizeof(addr);
    weft_socket_local_addr(listener, &addr, &len);
    printf("listening on %u\n", ntohs(((struct sockaddr_in *)&addr)->sin_port));
    fflush(stdout);
    err = weft_co_block_on(rt, acceptor, listener, NULL, &result);
    weft_socket_close(listener);
    weft_runtime_free(rt);
    return err ? 1 : 0;
}
