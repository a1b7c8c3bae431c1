/* SPDX-License-Identifier: MIT */
/* Peer servers for weft's network benchmarks, on libuv.
 *
 *   weft-peer-libuv-net <echo|http> [--port N]
 *
 * echo (W9): writes back every byte it reads, per connection.
 * http (W8): answers every request of a keep-alive HTTP/1.1 connection with a
 * fixed 13-byte "Hello, World!" response. A request is everything up to
 * "\r\n\r\n" (no bodies); all complete requests of one read are answered with
 * one write (pipelining-safe); "Connection: close" closes after the answer.
 *
 * One loop on one thread: libuv is single-threaded. TCP_NODELAY on every
 * connection. Writes try uv_try_write() first and queue a copy of what is
 * left. Prints "listening on PORT" once it accepts, and runs until killed.
 */
#define _GNU_SOURCE                    /* memmem */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#define READ_SIZE (16 * 1024)
#define MAX_HEAD (64 * 1024)

static const char response[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
#define RESPONSE_LEN (sizeof(response) - 1)

static bool http_mode;

struct conn {
    uv_tcp_t tcp;              /* first: the handle's address is the conn's */
    char rbuf[READ_SIZE];
    char *head;                /* http: unparsed bytes */
    size_t head_len, head_cap;
    size_t scanned;            /* bytes of head that hold no complete "\r\n\r\n" */
    bool closing;
};

struct write_req {
    uv_write_t req;
    struct conn *c;
    bool close_after;
    char data[];
};

static void on_closed(uv_handle_t *h)
{
    struct conn *c = (struct conn *)h;

    free(c->head);
    free(c);
}

static void conn_close(struct conn *c)
{
    if (!c->closing) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;

    if (status < 0 || w->close_after)
        conn_close(w->c);
    free(w);
}

/* Sends len bytes: as much as the socket takes now, then a queued copy. */
static void conn_send(struct conn *c, const char *data, size_t len, bool close_after)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    struct write_req *w;
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);

    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if ((size_t)n == len) {
        if (close_after)
            conn_close(c);
        return;
    }
    w = malloc(sizeof(*w) + len - (size_t)n);
    if (w == NULL) {
        conn_close(c);
        return;
    }
    w->c = c;
    w->close_after = close_after;
    memcpy(w->data, data + n, len - (size_t)n);
    b = uv_buf_init(w->data, (unsigned)(len - (size_t)n));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
        free(w);
        conn_close(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = (struct conn *)h;

    (void)suggested;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static char *find(const char *hay, size_t n, const char *needle, size_t m)
{
    return memmem(hay, n, needle, m);
}

/* Whether a request head has "Connection: close" (case-insensitive). */
static bool wants_close(const char *head, size_t n)
{
    size_t i;

    for (i = 0; i + 13 <= n; i++) {
        const char *p = head + i, *end;

        if (strncasecmp(p, "\r\nconnection:", 13) != 0)
            continue;
        p += 13;
        end = find(p, n - (size_t)(p - head), "\r\n", 2);
        if (end == NULL)
            end = head + n;
        for (; p + 5 <= end; p++)
            if (strncasecmp(p, "close", 5) == 0)
                return true;
    }
    return false;
}

static void http_feed(struct conn *c, const char *data, size_t len)
{
    /* a few pipelined responses fit on the stack; more go to the heap */
    char stack_out[32 * RESPONSE_LEN], *out = stack_out;
    size_t out_len = 0, out_cap = sizeof(stack_out), start = 0;
    bool close = false;

    if (c->head_len + len > c->head_cap) {
        size_t cap = c->head_cap ? c->head_cap : 4096;
        char *p;

        while (cap < c->head_len + len)
            cap *= 2;
        p = realloc(c->head, cap);
        if (p == NULL) {
            conn_close(c);
            return;
        }
        c->head = p;
        c->head_cap = cap;
    }
    memcpy(c->head + c->head_len, data, len);
    c->head_len += len;

    for (;;) {
        size_t from = c->scanned >= start + 3 ? c->scanned - 3 : start;
        char *e = find(c->head + from, c->head_len - from, "\r\n\r\n", 4);
        size_t end;

        if (e == NULL) {
            c->scanned = c->head_len;
            break;
        }
        end = (size_t)(e - c->head) + 4;
        close = wants_close(c->head + start, end - start);
        if (out_len + RESPONSE_LEN > out_cap) {
            char *p = malloc(out_cap * 2);

            if (p == NULL) {
                if (out != stack_out)
                    free(out);
                conn_close(c);
                return;
            }
            memcpy(p, out, out_len);
            if (out != stack_out)
                free(out);
            out = p;
            out_cap *= 2;
        }
        memcpy(out + out_len, response, RESPONSE_LEN);
        out_len += RESPONSE_LEN;
        start = c->scanned = end;
        if (close)
            break;
    }
    memmove(c->head, c->head + start, c->head_len - start);
    c->head_len -= start;
    c->scanned -= start;
    if (out_len > 0)
        conn_send(c, out, out_len, close);     /* close: after the answers */
    if (out != stack_out)
        free(out);
    if (c->head_len > MAX_HEAD)
        conn_close(c);                         /* a head too large to be one */
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)s;

    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0 || c->closing)
        return;
    if (http_mode)
        http_feed(c, buf->base, (size_t)n);
    else
        conn_send(c, buf->base, (size_t)n, false);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct conn *c;

    if (status < 0) {
        fprintf(stderr, "weft-peer-libuv-net: connection: %s\n", uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    uv_tcp_init(server->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void usage(void)
{
    fprintf(stderr, "usage: weft-peer-libuv-net <echo|http> [--port N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int port = 8080, namelen = sizeof(bound), err, i;
    char *end;

    if (argc < 2)
        usage();
    if (strcmp(argv[1], "http") == 0)
        http_mode = true;
    else if (strcmp(argv[1], "echo") != 0)
        usage();
    for (i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "--port") == 0 || strcmp(argv[i], "-port") == 0) && i + 1 < argc) {
            long v = strtol(argv[++i], &end, 10);
            if (*end != '\0' || end == argv[i] || v < 0 || v > 65535)
                usage();
            port = (int)v;
        } else {
            usage();
        }
    }

    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_init(loop, &server);
    err = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (err == 0)
        err = uv_listen((uv_stream_t *)&server, 1024, on_connection);
    if (err < 0) {
        fprintf(stderr, "weft-peer-libuv-net: listen on 127.0.0.1:%d: %s\n", port,
                uv_strerror(err));
        return 1;
    }
    uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &namelen);
    printf("listening on %d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
