/* SPDX-License-Identifier: MIT */
/* examples/http_parse.h - the HTTP/1.1 request handling that http_server.c
 * and https_server.c share: the replies, parsing one request head, and
 * the per-connection buffers with next_request(), which turns what was
 * read into replies. No I/O here: the servers read into `in` and write
 * `out` over a socket (http_server) or a TLS stream (https_server). */
#ifndef WEFT_EXAMPLES_HTTP_PARSE_H
#define WEFT_EXAMPLES_HTTP_PARSE_H

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* ---- replies ----------------------------------------------------------------- */
#define REPLY(s) { s, sizeof(s) - 1 }

static const struct reply {
    const char *text;
    size_t len;
} reply_ok = REPLY("HTTP/1.1 200 OK\r\n"
                   "Content-Length: 13\r\n"
                   "Content-Type: text/plain\r\n"
                   "\r\n"
                   "Hello, World!"),
  /* HTTP/1.0 closes by default: say so when it asked to stay open */
  reply_ok_keep = REPLY("HTTP/1.1 200 OK\r\n"
                        "Content-Length: 13\r\n"
                        "Content-Type: text/plain\r\n"
                        "Connection: keep-alive\r\n"
                        "\r\n"
                        "Hello, World!"),
  reply_ok_close = REPLY("HTTP/1.1 200 OK\r\n"
                         "Content-Length: 13\r\n"
                         "Content-Type: text/plain\r\n"
                         "Connection: close\r\n"
                         "\r\n"
                         "Hello, World!"),
  reply_400 = REPLY("HTTP/1.1 400 Bad Request\r\n"
                    "Content-Length: 0\r\n"
                    "Connection: close\r\n"
                    "\r\n"),
  reply_431 = REPLY("HTTP/1.1 431 Request Header Fields Too Large\r\n"
                    "Content-Length: 0\r\n"
                    "Connection: close\r\n"
                    "\r\n"),
  reply_501 = REPLY("HTTP/1.1 501 Not Implemented\r\n"
                    "Content-Length: 0\r\n"
                    "Connection: close\r\n"
                    "\r\n");

#define REPLY_MAX 128                  /* longer than any reply above */
#define IN_SIZE 8192                   /* the largest request head accepted */
#define OUT_SIZE 8192                  /* replies batched per write */

/* ---- parsing one request head ------------------------------------------------ */
typedef struct request {
    const struct reply *reply;
    bool close;                        /* the connection ends after the reply */
    unsigned long long body;           /* Content-Length bytes to skip */
} request;

static bool token_eq(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && strncasecmp(p, lit, n) == 0;
}

static const char *trim(const char *p, const char *end, const char **tend)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *tend = end;
    return p;
}

/* The head is p[0..n), its last four bytes CRLF CRLF. Only what decides the
 * reply is read: the version, Connection, Content-Length, Transfer-Encoding. */
static void parse_request(const char *p, size_t n, request *rq)
{
    const char *end = p + n - 2;       /* the final empty line's CRLF */
    const char *line = p, *eol;
    bool http10, keep_alive = false, close = false;

    rq->reply = &reply_400;
    rq->close = true;
    rq->body = 0;
    eol = memmem(line, (size_t)(end - line), "\r\n", 2);
    /* request line: METHOD SP TARGET SP HTTP/1.x */
    if (eol == NULL || eol - line < 14 || memcmp(eol - 9, " HTTP/1.", 8) != 0 ||
        (eol[-1] != '0' && eol[-1] != '1') || memchr(line, ' ', (size_t)(eol - line)) == eol - 9)
        return;
    http10 = eol[-1] == '0';
    for (line = eol + 2; line < end; line = eol + 2) {
        const char *colon, *v, *vend;

        eol = memmem(line, (size_t)(end - line) + 2, "\r\n", 2);
        colon = memchr(line, ':', (size_t)(eol - line));
        if (colon == NULL)
            return;                    /* 400: a header line without a name */
        v = trim(colon + 1, eol, &vend);
        if (token_eq(line, (size_t)(colon - line), "connection")) {
            /* a comma-separated list of options */
            while (v < vend) {
                const char *comma = memchr(v, ',', (size_t)(vend - v));
                const char *t, *tend;

                if (comma == NULL)
                    comma = vend;
                t = trim(v, comma, &tend);
                if (token_eq(t, (size_t)(tend - t), "close"))
                    close = true;
                else if (token_eq(t, (size_t)(tend - t), "keep-alive"))
                    keep_alive = true;
                v = comma + 1;
            }
        } else if (token_eq(line, (size_t)(colon - line), "content-length")) {
            unsigned long long len = 0;

            if (v == vend)
                return;
            for (; v < vend; v++) {
                if (*v < '0' || *v > '9' || len > (~0ULL - 9) / 10)
                    return;            /* 400: not a length */
                len = len * 10 + (unsigned)(*v - '0');
            }
            rq->body = len;
        } else if (token_eq(line, (size_t)(colon - line), "transfer-encoding")) {
            rq->reply = &reply_501;    /* chunked bodies are not read */
            rq->body = 0;
            return;
        }
    }
    rq->close = close || (http10 && !keep_alive);
    rq->reply = rq->close ? &reply_ok_close : http10 ? &reply_ok_keep : &reply_ok;
}

/* ---- one connection's buffers --------------------------------------------------- */
typedef struct http_conn {
    bool closing;                      /* a reply said Connection: close */
    size_t len;                        /* bytes in `in` */
    size_t pos;                        /* first byte not consumed yet */
    size_t scan;                       /* where to look for CRLF CRLF next */
    unsigned long long skip;           /* body bytes still to discard */
    size_t out_len;
    char in[IN_SIZE];
    char out[OUT_SIZE];
} http_conn;

enum step { STEP_MORE, STEP_FLUSH, STEP_REPLIED };

/* Consume what can be consumed at c->in + c->pos: a body being skipped, the
 * empty lines a client may send between requests, one request head (its
 * reply appended to c->out). STEP_MORE: nothing complete is left, read
 * more; STEP_FLUSH: c->out is too full for another reply, write it first. */
static enum step next_request(http_conn *c)
{
    const char *hit;
    request rq;
    size_t avail;

    if (c->skip > 0) {
        avail = c->len - c->pos;
        if (c->skip >= avail) {
            c->skip -= avail;
            c->pos = c->len;
            return STEP_MORE;
        }
        c->pos += (size_t)c->skip;
        c->skip = 0;
    }
    while (c->len - c->pos >= 2 && c->in[c->pos] == '\r' && c->in[c->pos + 1] == '\n')
        c->pos += 2;                   /* RFC 9112 2.2: ignore leading CRLFs */
    if (c->scan < c->pos)
        c->scan = c->pos;
    if (OUT_SIZE - c->out_len < REPLY_MAX)
        return STEP_FLUSH;
    hit = memmem(c->in + c->scan, c->len - c->scan, "\r\n\r\n", 4);
    if (hit == NULL) {
        if (c->pos == 0 && c->len == IN_SIZE) {
            rq.reply = &reply_431;     /* the head can never fit */
            rq.close = true;
            goto reply;
        }
        /* resume the search where a terminator could still begin */
        c->scan = c->len >= c->pos + 3 ? c->len - 3 : c->pos;
        return STEP_MORE;
    }
    parse_request(c->in + c->pos, (size_t)(hit + 4 - (c->in + c->pos)), &rq);
    c->pos = (size_t)(hit + 4 - c->in);
    c->scan = c->pos;
    c->skip = rq.body;
reply:
    memcpy(c->out + c->out_len, rq.reply->text, rq.reply->len);
    c->out_len += rq.reply->len;
    c->closing = rq.close;
    return STEP_REPLIED;
}

/* After the replies of one read: keep the unconsumed tail (a partial
 * request) at the front of `in`. */
static void http_compact(http_conn *c)
{
    memmove(c->in, c->in + c->pos, c->len - c->pos);
    c->len -= c->pos;
    c->scan -= c->scan >= c->pos ? c->pos : c->scan;
    c->pos = 0;
}

#endif
