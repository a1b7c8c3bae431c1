/* SPDX-License-Identifier: MIT */
/* The "Hello, World!" server of http_server.c over TLS (weft/tls.h,
 * libweft_tls): the same requests, replies, keep-alive and pipelining
 * (http_proto.h), with a TLS stream between the socket and the parser.
 *
 *     https_server --cert FILE --key FILE [--port N] [--workers N] [--drain-ms N]
 *                                  (defaults: 8443, 2 workers, 5000 ms)
 *
 * A throwaway certificate for trying it:
 *
 *     openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
 *         -keyout key.pem -out cert.pem -days 30 -subj /CN=localhost \
 *         -addext subjectAltName=DNS:localhost,IP:127.0.0.1
 *     https_server --cert cert.pem --key key.pem &
 *     curl --cacert cert.pem https://localhost:8443/
 *
 * Per connection: a handshake with a 10 s deadline (a client that stops
 * half-way is dropped), then the plain server's loop with weft_tls_read /
 * weft_tls_write; ALPN offers http/1.1. A client that ends with
 * close_notify ends the connection as end of stream; one that just closes
 * the socket (a truncation, WEFT_TLS_ETRUNCATED) too, since a request cut
 * short is never answered. On "Connection: close" the server sends its
 * close_notify after the reply, then waits (1 s at most) for the client's,
 * so the reply is not lost to a reset. The stop on SIGINT / SIGTERM is
 * serve.h's. */
#define _GNU_SOURCE                    /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_proto.h"
#include "serve.h"
#include "weft.h"
#include "weft/tls.h"

#define HANDSHAKE_MS 10000

static weft_tls_config *tls_cfg;

typedef struct conn {
    weft_async co;
    weft_tls *t;                       /* owns the socket */
    weft_tls_op op;
    weft_timeout linger;
    ssize_t n;
    int err;
    char *mbuf;                        /* a /metrics reply being written */
    http_buf h;
} conn;

static weft_poll conn_poll(conn *c, weft_context *cx, void *out)
{
    enum step step;
    size_t mlen = 0;                   /* not across an await */

    (void)out;
    WEFT_BEGIN(&c->co);
    weft_tls_handshake_init(&c->op, c->t, HANDSHAKE_MS);
    WEFT_AWAIT(&c->co, weft_tls_op_poll(&c->op, cx, &c->n));
    if (c->n < 0)
        goto done;                     /* refused, garbage, or too slow */
    while (!c->h.closing) {
        weft_tls_read_init(&c->op, c->t, c->h.in + c->h.len, IN_SIZE - c->h.len);
        WEFT_AWAIT(&c->co, weft_tls_op_poll(&c->op, cx, &c->n));
        if (c->n <= 0)
            goto done;                 /* close_notify, truncation or error */
        c->h.len += (size_t)c->n;
        while (!c->h.closing) {
            step = http_next_request(&c->h);
            if (step == STEP_MORE)
                break;
            if (step == STEP_REPLIED)
                continue;
            if (step == STEP_METRICS) {
                if (c->h.out_len > 0) {    /* the replies before it first */
                    weft_tls_write_init(&c->op, c->t, c->h.out, c->h.out_len);
                    WEFT_AWAIT(&c->co, weft_tls_op_poll(&c->op, cx, &c->n));
                    if (c->n < 0)
                        goto done;
                    c->h.out_len = 0;
                }
                c->mbuf = metrics_reply(&mlen, c->h.closing);
                if (c->mbuf == NULL)
                    goto done;
                weft_tls_write_init(&c->op, c->t, c->mbuf, mlen);
                WEFT_AWAIT(&c->co, weft_tls_op_poll(&c->op, cx, &c->n));
                free(c->mbuf);
                c->mbuf = NULL;
                if (c->n < 0)
                    goto done;
                continue;
            }
            /* STEP_FLUSH: more pipelined requests than c->h.out holds */
            weft_tls_write_init(&c->op, c->t, c->h.out, c->h.out_len);
            WEFT_AWAIT(&c->co, weft_tls_op_poll(&c->op, cx, &c->n));
            if (c->n < 0)
                goto done;
            c->h.out_len = 0;
        }
        http_compact(&c->h);
        if (c->h.out_len > 0) {
            weft_tls_write_init(&c->op, c->t, c->h.out, c->h.out_len);
            WEFT_AWAIT(&c->co, weft_tls_op_poll(&c->op, cx, &c->n));
            if (c->n < 0)
                goto done;
            c->h.out_len = 0;
        }
    }
    /* Connection: close. Our close_notify, then the client's (or its EOF,
     * or 1 s), reading and discarding what it still sends. */
    weft_tls_shutdown_init(&c->op, c->t);
    WEFT_AWAIT(&c->co, weft_tls_op_poll(&c->op, cx, &c->n));
    if (c->n < 0)
        goto done;
    do {
        weft_tls_read_init(&c->op, c->t, c->h.in, IN_SIZE);
        weft_timeout_init(&c->linger, &weft_tls_op_future, &c->op, LINGER_MS);
        WEFT_AWAIT(&c->co, weft_timeout_poll(&c->linger, cx, &c->err, &c->n));
    } while (c->err == 0 && c->n > 0);
done:;
    WEFT_END(&c->co);
}

static void conn_drop(conn *c)
{
    free(c->mbuf);                     /* a /metrics reply cut short */
    weft_timeout_drop(&c->linger);    /* drops c->op if it owns it */
    weft_tls_op_drop(&c->op);         /* idempotent */
    weft_tls_free(c->t);              /* closes the socket */
}

WEFT_DEFINE_FUTURE_VOID(conn, conn_poll, conn_drop);

static int on_conn(weft_group *g, weft_socket *client)
{
    conn c = { .t = NULL };
    int err;

    weft_socket_set_nodelay(client, true);
    err = weft_tls_new(&c.t, tls_cfg, client, &(weft_tls_options){ .flags = WEFT_TLS_OWN_STREAM });
    if (err != 0)
        return err;                    /* client is closed */
    err = weft_group_spawn(g, &conn_future, &c);
    if (err != 0)
        weft_tls_free(c.t);
    return err;
}

int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof(*rest));
    int n = 0, err, rc;

    if (rest == NULL)
        return 1;
    for (int i = 0; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--cert") == 0)
            cert = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--key") == 0)
            key = argv[++i];
        else
            rest[n++] = argv[i];
    }
    if (cert == NULL || key == NULL) {
        fprintf(stderr, "usage: %s --cert FILE --key FILE [--port N] [--workers N] "
                        "[--drain-ms N]\n", argv[0]);
        free(rest);
        return 2;
    }
    err = weft_tls_config_new(&tls_cfg, &(weft_tls_config_options){
                                            .server = true, .cert_file = cert,
                                            .key_file = key, .alpn = "http/1.1" });
    if (err != 0) {
        fprintf(stderr, "https_server: %s: %s\n", weft_strerror(err),
                weft_tls_last_error_text());
        free(rest);
        return 1;
    }
    rc = serve_main(n, rest, "https_server", 8443, on_conn);
    weft_tls_config_free(tls_cfg);
    free(rest);
    return rc;
}
