/* SPDX-License-Identifier: MIT */
/* weft_tls: OpenSSL over memory BIOs, driven by weft's stream futures.
 *
 * OpenSSL never sees the descriptor. Ciphertext from the stream is written
 * into `in` (a memory BIO) by the read side; what OpenSSL produces goes to
 * `out`, and whoever holds the stream's *write slot* (t->wsock) moves it to
 * the stream through `wbuf`. Everything OpenSSL touches is guarded by
 * t->lock, never held across a wait.
 *
 * Who may do what (all under t->lock):
 *   rbusy    a read-side future is in progress (read, handshake): it alone
 *            reads the stream, into rbuf, and feeds `in`.
 *   wbusy    a write-side future is in progress (write, flush, shutdown,
 *            handshake).
 *   wsock    one future (f->wsock too) sends queued ciphertext: wbuf[wstart,
 *            wend), then whatever `out` holds, in order. The write side
 *            takes it for its whole life; the read side takes it only while
 *            it is free and ciphertext is queued (a KeyUpdate answer, an
 *            alert), so that a peer waiting for those bytes is not left
 *            waiting while our write side is idle.
 *   rwaker / wwaker  the waker of the pending read-side / write-side future,
 *            stored at the start of each of its polls under the lock; taken
 *            and woken when wsock is given back (the other side may be
 *            waiting for it, or for the bytes it left queued) and by
 *            weft_tls_free(). Stored before any check of the poll, so a
 *            release after the check still wakes it (no lost wake-up).
 *
 * A future holds a reference on t from init until it completes or is
 * dropped, so weft_tls_free() never frees memory under a pending future. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "weft/coro.h"

#define RBUF_SIZE (16384 + 2048)     /* one record, with room to spare */
#define WBUF_SIZE 32768
#define WRITE_CHUNK 65536            /* plaintext encrypted per step of a write */
#define PEND ((ssize_t)LLONG_MIN)    /* "pending" among step results */

enum { K_NONE, K_BAD, K_HANDSHAKE, K_READ, K_WRITE, K_FLUSH, K_SHUTDOWN };

struct weft_tls {
    pthread_mutex_t lock;
    atomic_int refs;                 /* the user's + one per live future */
    weft_tls_config *cfg;
    weft_socket *s, *ws;             /* read from s, write to ws (often s) */
    SSL *ssl;
    BIO *in, *out;                   /* owned by ssl */
    bool own;
    /* ->lock */
    bool freed, hs_started, hs_done, rbusy, wbusy, wsock, sent_close;
    int broken;                      /* the first fatal error, or 0 */
    size_t wstart, wend;             /* queued ciphertext in wbuf */
    weft_waker rwaker, wwaker;
    const char *version, *cipher;    /* OpenSSL's static strings */
    bool has_alpn, has_sni;
    char alpn[256], sni[256];
    char errtext[256];
    unsigned char rbuf[RBUF_SIZE];   /* the read side's */
    unsigned char wbuf[WBUF_SIZE];   /* the wsock holder's */
};

static void tls_ref(weft_tls *t)
{
    /* relaxed: the caller holds a reference (the user's, or its future's) */
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

static void tls_unref(weft_tls *t)
{
    /* acq_rel: every use of t happens before the last owner frees it */
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    weft_waker_drop(&t->rwaker);     /* empty by now; harmless */
    weft_waker_drop(&t->wwaker);
    SSL_free(t->ssl);
    weft_tls_config_free(t->cfg);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static void lock(weft_tls *t)
{
    pthread_mutex_lock(&t->lock);
}

static void unlock(weft_tls *t)
{
    pthread_mutex_unlock(&t->lock);
}

/* ---- streams ------------------------------------------------------------------------ */
static bool is_ip(const char *name)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

WEFT_API int weft_tls_new(weft_tls **out, weft_tls_config *cfg, weft_socket *s,
                          const weft_tls_options *opt)
{
    const char *name = opt ? opt->server_name : NULL;
    unsigned flags = opt ? opt->flags : 0;
    weft_socket *ws = opt && opt->write_stream ? opt->write_stream : s;
    bool own = (flags & WEFT_TLS_OWN_STREAM) != 0;
    weft_tls *t;
    int err = -EINVAL;

    if (name != NULL && name[0] == '\0')
        name = NULL;
    if (out == NULL || cfg == NULL || s == NULL || (flags & ~WEFT_TLS_OWN_STREAM) != 0)
        goto fail;
    if (cfg->server)
        name = NULL;                 /* the header: "Server: ignored" */
    if (!cfg->server && cfg->verify && name == NULL)
        goto fail;
    if (name != NULL && strlen(name) >= sizeof(t->sni))
        goto fail;
    err = -ENOMEM;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        goto fail;
    if (pthread_mutex_init(&t->lock, NULL) != 0)
        goto fail_free;
    atomic_init(&t->refs, 1);
    t->s = s;
    t->ws = ws;
    t->own = own;
    t->version = t->cipher = "";
    ERR_clear_error();
    t->ssl = SSL_new(cfg->ctx);
    if (t->ssl == NULL)
        goto fail_mutex;
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (t->in == NULL || t->out == NULL) {
        BIO_free(t->in);
        BIO_free(t->out);
        goto fail_ssl;
    }
    SSL_set_bio(t->ssl, t->in, t->out);   /* ssl owns both now */
    if (cfg->server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if (name != NULL) {
            snprintf(t->sni, sizeof(t->sni), "%s", name);
            t->has_sni = true;
            if (is_ip(name)) {
                /* SNI may not carry an address; verify it as an IP SAN */
                if (cfg->verify &&
                    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name) != 1)
                    goto fail_ssl;
            } else {
                if (SSL_set_tlsext_host_name(t->ssl, name) != 1)
                    goto fail_ssl;
                if (cfg->verify) {
                    SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                    if (SSL_set1_host(t->ssl, name) != 1)
                        goto fail_ssl;
                }
            }
        }
    }
    weft__tls_config_ref(cfg);
    t->cfg = cfg;
    *out = t;
    return 0;
fail_ssl:
    SSL_free(t->ssl);
fail_mutex:
    pthread_mutex_destroy(&t->lock);
fail_free:
    free(t);
fail:
    ERR_clear_error();
    if (own && s != NULL)
        weft_socket_close(s);
    if (own && ws != s)
        weft_socket_close(ws);
    return err;
}

WEFT_API void weft_tls_free(weft_tls *t)
{
    weft_waker r, w;

    if (t == NULL)
        return;
    lock(t);
    t->freed = true;
    r = t->rwaker;
    w = t->wwaker;
    t->rwaker = WEFT_WAKER_EMPTY;
    t->wwaker = WEFT_WAKER_EMPTY;
    unlock(t);
    weft_waker_wake(&r);             /* pending futures see -EBADF */
    weft_waker_wake(&w);
    if (t->own) {
        weft_socket_close(t->s);     /* and their stream futures wake with -EBADF */
        if (t->ws != t->s)
            weft_socket_close(t->ws);
    }
    tls_unref(t);
}

WEFT_API weft_socket *weft_tls_socket(const weft_tls *t)
{
    return t ? t->s : NULL;
}

WEFT_API void *weft_tls_ssl(weft_tls *t)
{
    return t ? t->ssl : NULL;
}

/* Accessors: the fields are written once, under the lock, when the
 * handshake completes (errtext: when the stream breaks). */
#define LOCKED_READ(t, expr, none)                                            \
    do {                                                                      \
        const char *v_;                                                       \
        if ((t) == NULL)                                                      \
            return (none);                                                    \
        lock((weft_tls *)(t));                                                \
        v_ = (expr);                                                          \
        unlock((weft_tls *)(t));                                              \
        return v_;                                                            \
    } while (0)

WEFT_API const char *weft_tls_alpn(const weft_tls *t)
{
    LOCKED_READ(t, t->hs_done && t->has_alpn ? t->alpn : NULL, NULL);
}

WEFT_API const char *weft_tls_server_name(const weft_tls *t)
{
    LOCKED_READ(t, (t->hs_done || !t->cfg->server) && t->has_sni ? t->sni : NULL, NULL);
}

WEFT_API const char *weft_tls_version(const weft_tls *t)
{
    LOCKED_READ(t, t->version, "");
}

WEFT_API const char *weft_tls_cipher(const weft_tls *t)
{
    LOCKED_READ(t, t->cipher, "");
}

WEFT_API const char *weft_tls_error_text(const weft_tls *t)
{
    LOCKED_READ(t, t->errtext, "");
}

/* ---- errors ----------------------------------------------------------------------- */
/* Mark t broken by err (the first error wins, with its text); returns err. */
static int broken_locked(weft_tls *t, int err, const char *text)
{
    if (!t->broken) {
        t->broken = err;
        snprintf(t->errtext, sizeof(t->errtext), "%s", text);
    }
    return err;
}

static int fatal(weft_tls *t, int err, const char *text)
{
    lock(t);
    broken_locked(t, err, text ? text : weft_strerror(err));
    unlock(t);
    return err;
}

/* An SSL call failed with SSL_get_error() `code`: which error is it. Reads
 * this thread's error queue, filled by the call just made (same lock). */
static int classify_locked(weft_tls *t, int code)
{
    char text[256];
    unsigned long e = ERR_peek_last_error();

    if (code == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        long v = SSL_get_verify_result(t->ssl);

        snprintf(text, sizeof(text), "%s", X509_verify_cert_error_string(v));
        ERR_clear_error();
        return broken_locked(t, WEFT_TLS_EVERIFY, text);
    }
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return broken_locked(t, WEFT_TLS_EPROTO, "renegotiation is not supported");
    }
    weft__tls_err_text(text, sizeof(text), "TLS protocol error");
    return broken_locked(t, WEFT_TLS_EPROTO, text);
}

/* ---- moving ciphertext ---------------------------------------------------------- */
static bool out_queued_locked(weft_tls *t)
{
    return t->wstart < t->wend || BIO_ctrl_pending(t->out) > 0;
}

/* Take the write slot for f, if it is free (or f has it). */
static bool wsock_claim_locked(weft_tls_op *f)
{
    if (!f->wsock) {
        if (f->t->wsock)
            return false;
        f->t->wsock = f->wsock = true;
    }
    return true;
}

/* Give the write slot back (f holds it): returns the other side's waker,
 * taken, for the caller to wake after unlocking. */
static weft_waker wsock_release_locked(weft_tls_op *f)
{
    weft_tls *t = f->t;
    weft_waker *slot = f->kind == K_READ ? &t->wwaker : &t->rwaker;
    weft_waker w = WEFT_WAKER_EMPTY;

    t->wsock = f->wsock = false;
    if (f->kind != K_HANDSHAKE) {    /* a handshake holds both sides */
        w = *slot;
        *slot = WEFT_WAKER_EMPTY;
    }
    return w;
}

static void wsock_release(weft_tls_op *f)
{
    weft_waker w;

    if (f->wio_active) {
        weft_io_op_drop(&f->wio);    /* a pending write wrote nothing */
        f->wio_active = false;
    }
    lock(f->t);
    w = wsock_release_locked(f);
    unlock(f->t);
    weft_waker_wake(&w);
}

/* Send queued ciphertext (f holds wsock): 0 when nothing is left, PEND,
 * or the stream's -errno. */
static ssize_t flush_step(weft_tls_op *f, weft_context *cx)
{
    weft_tls *t = f->t;
    size_t start, end;

    for (;;) {
        if (f->wio_active) {
            ssize_t r;

            if (weft_io_op_poll(&f->wio, cx, &r) == WEFT_PENDING)
                return PEND;
            weft_io_op_drop(&f->wio);
            f->wio_active = false;
            if (r < 0)
                return r;
            lock(t);
            t->wstart += (size_t)r;
            unlock(t);
        }
        lock(t);
        if (t->wstart == t->wend) {
            int n = BIO_read(t->out, t->wbuf, (int)sizeof(t->wbuf));

            t->wstart = 0;
            t->wend = n > 0 ? (size_t)n : 0;
        }
        start = t->wstart;
        end = t->wend;
        unlock(t);
        if (start == end)
            return 0;
        weft_write_init(&f->wio, t->ws, t->wbuf + start, end - start);
        f->wio_active = true;
    }
}

/* Read ciphertext from the stream into OpenSSL (f is the read side): 1,
 * PEND, WEFT_TLS_ETRUNCATED at end of stream, or the stream's -errno. */
static ssize_t fill_step(weft_tls_op *f, weft_context *cx)
{
    weft_tls *t = f->t;
    ssize_t r;
    int n;

    if (!f->rio_active) {
        weft_read_init(&f->rio, t->s, t->rbuf, sizeof(t->rbuf));
        f->rio_active = true;
    }
    if (weft_io_op_poll(&f->rio, cx, &r) == WEFT_PENDING)
        return PEND;
    weft_io_op_drop(&f->rio);
    f->rio_active = false;
    if (r < 0)
        return r;
    if (r == 0)
        return WEFT_TLS_ETRUNCATED;
    lock(t);
    n = BIO_write(t->in, t->rbuf, (int)r);
    unlock(t);
    return n == (int)r ? 1 : -ENOMEM;
}

static int stream_fatal(weft_tls *t, ssize_t r, bool handshake)
{
    if (r == WEFT_TLS_ETRUNCATED)
        return fatal(t, (int)r, handshake ? "the peer closed the stream during the handshake"
                                          : "the stream ended without close_notify");
    return fatal(t, (int)r, NULL);
}

/* ---- the operations ------------------------------------------------------------- */
static ssize_t handshake_step(weft_tls_op *f, weft_context *cx)
{
    weft_tls *t = f->t;
    ssize_t r;
    int ret, code, err;
    bool done;

    for (;;) {
        r = flush_step(f, cx);       /* our flight first: the peer waits for it */
        if (f->result < 0)           /* failed: that was the alert, for the peer */
            return r == PEND ? PEND : f->result;
        if (r == PEND)
            return PEND;
        if (r < 0)
            return stream_fatal(t, r, true);
        lock(t);
        ERR_clear_error();
        ret = SSL_do_handshake(t->ssl);
        code = ret == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, ret);
        err = 0;
        if (code != SSL_ERROR_NONE && code != SSL_ERROR_WANT_READ)
            err = classify_locked(t, code);
        done = ret == 1;
        if (done && !t->hs_done) {
            const unsigned char *p;
            unsigned plen;
            const char *sni;

            t->hs_done = true;
            t->version = SSL_get_version(t->ssl);
            t->cipher = SSL_get_cipher_name(t->ssl);
            SSL_get0_alpn_selected(t->ssl, &p, &plen);
            if (p != NULL && plen > 0) {
                memcpy(t->alpn, p, plen);
                t->alpn[plen] = '\0';
                t->has_alpn = true;
            }
            sni = t->cfg->server ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
            if (sni != NULL) {
                snprintf(t->sni, sizeof(t->sni), "%s", sni);
                t->has_sni = true;
            }
        }
        done = done && !out_queued_locked(t);
        unlock(t);
        if (err) {
            f->result = err;         /* tell the peer why (an alert), then fail */
            continue;
        }
        if (done)
            return 0;
        if (ret == 1)
            continue;                /* complete: send the last flight */
        lock(t);
        ret = out_queued_locked(t);
        unlock(t);
        if (ret)
            continue;
        r = fill_step(f, cx);
        if (r == PEND)
            return PEND;
        if (r < 0)
            return stream_fatal(t, r, true);
    }
}

/* The read side sends what is queued: 0 (sent, or sending), or -errno. */
static ssize_t read_flush(weft_tls_op *f, weft_context *cx)
{
    ssize_t r = flush_step(f, cx);

    if (r == 0)
        wsock_release(f);
    else if (r != PEND)
        return stream_fatal(f->t, r, false);
    return 0;
}

static ssize_t read_step(weft_tls_op *f, weft_context *cx)
{
    weft_tls *t = f->t;
    size_t n = 0;
    ssize_t r;
    int ok, code, err;

    for (;;) {
        lock(t);
        ERR_clear_error();
        ok = SSL_read_ex(t->ssl, f->dst, f->len, &n);
        code = ok ? SSL_ERROR_NONE : SSL_get_error(t->ssl, 0);
        err = 0;
        if (code != SSL_ERROR_NONE && code != SSL_ERROR_WANT_READ &&
            code != SSL_ERROR_ZERO_RETURN)
            err = classify_locked(t, code);
        if (out_queued_locked(t))
            (void)wsock_claim_locked(f);
        unlock(t);
        if (code == SSL_ERROR_NONE || code == SSL_ERROR_ZERO_RETURN) {
            if (f->wsock)
                (void)flush_step(f, cx);     /* one try; the rest stays queued */
            return code == SSL_ERROR_NONE ? (ssize_t)n : 0;
        }
        if (err)
            return err;
        /* WANT_READ: send what is queued (the peer may wait for it) and
         * read; in turns, which goes first (see weft_tls_op_poll()) */
        if (f->wsock && !f->flip && (r = read_flush(f, cx)) < 0)
            return r;
        r = fill_step(f, cx);
        if (r == PEND) {
            if (f->wsock && f->flip && (r = read_flush(f, cx)) < 0)
                return r;
            return PEND;
        }
        if (r < 0)
            return stream_fatal(t, r, false);
    }
}

static ssize_t write_step(weft_tls_op *f, weft_context *cx)
{
    weft_tls *t = f->t;
    ssize_t r;
    size_t n;
    int ok, code, err;

    lock(t);
    ok = wsock_claim_locked(f);      /* else: woken when it is given back */
    unlock(t);
    if (!ok)
        return PEND;
    for (;;) {
        r = flush_step(f, cx);
        if (r == PEND)
            return PEND;
        if (r < 0)
            return stream_fatal(t, r, false);
        switch (f->kind) {
        case K_FLUSH:
            return 0;
        case K_SHUTDOWN:
            if (f->moved)
                return 0;            /* close_notify is on the stream */
            lock(t);
            if (!t->sent_close) {
                ERR_clear_error();
                (void)SSL_shutdown(t->ssl);  /* queues close_notify in `out` */
                ERR_clear_error();
                t->sent_close = true;
            }
            unlock(t);
            f->moved = 1;
            continue;
        default:
            break;
        }
        if (f->moved == f->len)
            return (ssize_t)f->len;
        lock(t);
        ERR_clear_error();
        n = 0;
        ok = SSL_write_ex(t->ssl, f->src + f->moved,
                          f->len - f->moved < WRITE_CHUNK ? f->len - f->moved : WRITE_CHUNK, &n);
        code = ok ? SSL_ERROR_NONE : SSL_get_error(t->ssl, 0);
        err = 0;
        if (!ok)
            err = code == SSL_ERROR_ZERO_RETURN ? -EPIPE : classify_locked(t, code);
        unlock(t);
        if (err)
            return err;
        f->moved += n;
    }
}

/* ---- the future ----------------------------------------------------------------- */
static void op_init(weft_tls_op *f, int kind, weft_tls *t, bool bad)
{
    if (f == NULL)
        return;
    memset(f, 0, sizeof(*f));
    f->kind = (unsigned char)kind;
    if (t == NULL || bad) {
        f->kind = K_BAD;
        f->result = -EINVAL;
        return;
    }
    tls_ref(t);
    f->t = t;
}

WEFT_API void weft_tls_handshake_init(weft_tls_op *f, weft_tls *t, uint64_t timeout_ms)
{
    op_init(f, K_HANDSHAKE, t, false);
    if (f == NULL)
        return;
    f->timeout_ms = timeout_ms;
}

WEFT_API void weft_tls_read_init(weft_tls_op *f, weft_tls *t, void *dst, size_t len)
{
    op_init(f, K_READ, t, (dst == NULL && len > 0) || len > SSIZE_MAX);
    if (f == NULL)
        return;
    f->dst = dst;
    f->len = len;
}

WEFT_API void weft_tls_write_init(weft_tls_op *f, weft_tls *t, const void *src, size_t len)
{
    op_init(f, K_WRITE, t, (src == NULL && len > 0) || len > SSIZE_MAX);
    if (f == NULL)
        return;
    f->src = src;
    f->len = len;
}

WEFT_API void weft_tls_flush_init(weft_tls_op *f, weft_tls *t)
{
    op_init(f, K_FLUSH, t, false);
}

WEFT_API void weft_tls_shutdown_init(weft_tls_op *f, weft_tls *t)
{
    op_init(f, K_SHUTDOWN, t, false);
}

/* Give back everything f holds: stream futures, the deadline, its side,
 * the write slot, its stored waker, its reference. */
static void release(weft_tls_op *f)
{
    weft_tls *t = f->t;
    weft_waker other = WEFT_WAKER_EMPTY, mine = WEFT_WAKER_EMPTY;

    if (f->rio_active)
        weft_io_op_drop(&f->rio);
    if (f->wio_active)
        weft_io_op_drop(&f->wio);
    f->rio_active = f->wio_active = false;
    if (f->sleeping)
        weft_sleep_drop(&f->sleep);
    f->sleeping = false;
    if (t == NULL)
        return;
    lock(t);
    if (f->wsock)
        other = wsock_release_locked(f);
    if (f->claimed) {
        weft_waker *slot = f->kind == K_READ || f->kind == K_HANDSHAKE ? &t->rwaker
                                                                        : &t->wwaker;

        mine = *slot;
        *slot = WEFT_WAKER_EMPTY;
        if (f->kind == K_READ || f->kind == K_HANDSHAKE)
            t->rbusy = false;
        if (f->kind != K_READ)
            t->wbusy = false;
        f->claimed = false;
    }
    unlock(t);
    weft_waker_drop(&mine);
    weft_waker_wake(&other);
    f->t = NULL;
    tls_unref(t);
}

static weft_poll finish(weft_tls_op *f, ssize_t r, ssize_t *out)
{
    release(f);
    if (f->kind == K_READ)
        f->moved = r > 0 ? (size_t)r : 0;   /* moved(): the count once complete */
    f->done = true;
    f->result = r;
    if (out)
        *out = r;
    return WEFT_READY;
}

/* First poll: take f's side(s), or the answer that needs no wait. */
static ssize_t start_locked(weft_tls_op *f)
{
    weft_tls *t = f->t;

    switch (f->kind) {
    case K_HANDSHAKE:
        if (t->broken)
            return t->broken;
        if (t->hs_done)
            return 0;
        if (t->rbusy || t->wbusy)
            return -EBUSY;
        t->rbusy = t->wbusy = true;
        t->hs_started = true;
        f->claimed = true;
        (void)wsock_claim_locked(f); /* free: only a side's future holds it */
        if (f->timeout_ms) {
            weft_sleep_init(&f->sleep, f->timeout_ms);
            f->sleeping = true;
        }
        return PEND;
    case K_READ:
        if (t->rbusy)
            return -EBUSY;
        if (t->broken)
            return t->broken;
        if (!t->hs_done)
            return -ENOTCONN;
        if (f->len == 0)
            return 0;
        t->rbusy = true;
        f->claimed = true;
        return PEND;
    default:
        if (t->wbusy)
            return -EBUSY;
        if (t->broken)
            return t->broken;
        if (!t->hs_done)
            return -ENOTCONN;
        if (f->kind == K_WRITE && t->sent_close)
            return -EPIPE;
        if (f->kind == K_WRITE && f->len == 0)
            return 0;
        t->wbusy = true;
        f->claimed = true;
        return PEND;
    }
}

static void store_waker_locked(weft_tls_op *f, weft_context *cx)
{
    weft_tls *t = f->t;
    weft_waker *slot = f->kind == K_READ || f->kind == K_HANDSHAKE ? &t->rwaker : &t->wwaker;
    const weft_waker *w = weft_context_waker(cx);

    if (slot->vtable != NULL && weft_waker_will_wake(slot, w))
        return;
    weft_waker_drop(slot);           /* a task waker: drops a reference, no callback */
    *slot = weft_waker_clone(w);
}

/* The handshake's deadline passed: -ETIMEDOUT, or the error whose alert
 * it was still sending. */
static ssize_t timed_out(weft_tls_op *f)
{
    if (f->result < 0)
        return f->result;
    return fatal(f->t, -ETIMEDOUT, "the handshake timed out");
}

WEFT_API weft_poll weft_tls_op_poll(weft_tls_op *f, weft_context *cx, ssize_t *out)
{
    weft_tls *t;
    ssize_t r;
    bool coop;

    if (f == NULL) {                  /* a NULL future: only *out */
        if (out)
            *out = -EINVAL;
        return WEFT_READY;
    }
    t = f->t;
    if (f->done) {
        if (out)
            *out = f->result;
        return WEFT_READY;
    }
    if (cx == NULL || cx->waker == NULL) {
        /* misuse (weft/core.h, "Context"): -EINVAL, nothing changed
         * (passed on, it made the stream's reads and writes fail) */
        if (out)
            *out = -EINVAL;
        return WEFT_READY;
    }
    if (t == NULL)
        return finish(f, f->kind == K_NONE ? -EINVAL : f->result, out);
    lock(t);
    if (t->freed) {
        unlock(t);
        return finish(f, -EBADF, out);
    }
    if (!f->started) {
        r = start_locked(f);
        if (r != PEND) {
            unlock(t);
            return finish(f, r, out);
        }
        f->started = true;
    }
    store_waker_locked(f, cx);
    /* The cooperative budget is spent by the stream futures inside; a read
     * that OpenSSL can answer without them spends it here. */
    coop = f->kind == K_READ && (SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->in) > 0);
    unlock(t);
    if (coop && !weft_coop_proceed(cx))
        return WEFT_PENDING;
    /* When one poll waits on two things (a read and a write, or a stream
     * and the deadline), they take turns at going first: WEFT_STRESS
     * refuses every other budget check, and a fixed order would refuse the
     * second one on every poll. */
    f->flip = !f->flip;
    if (f->sleeping && f->flip && weft_sleep_poll(&f->sleep, cx) == WEFT_READY)
        return finish(f, timed_out(f), out);
    switch (f->kind) {
    case K_HANDSHAKE:
        r = handshake_step(f, cx);
        break;
    case K_READ:
        r = read_step(f, cx);
        break;
    default:
        r = write_step(f, cx);
        break;
    }
    if (r == PEND) {
        if (!f->sleeping || f->flip || weft_sleep_poll(&f->sleep, cx) == WEFT_PENDING)
            return WEFT_PENDING;
        r = timed_out(f);
    }
    return finish(f, r, out);
}

WEFT_API size_t weft_tls_op_moved(const weft_tls_op *f)
{
    /* a read: 0 until it completes (bytes leave OpenSSL only in the poll
     * that returns them), then its count; a write: taken so far */
    return f != NULL && (f->kind == K_WRITE || f->kind == K_READ) ? f->moved : 0;
}

WEFT_API void weft_tls_op_drop(weft_tls_op *f)
{
    if (f == NULL || f->done)
        return;
    if (f->t != NULL && f->kind == K_HANDSHAKE && f->started) {
        lock(f->t);
        if (!f->t->hs_done)
            broken_locked(f->t, -ECANCELED, "the handshake was cancelled");
        unlock(f->t);
    }
    release(f);
    f->done = true;
    f->result = -ECANCELED;
}

static weft_poll op_thunk(void *self, weft_context *cx, void *out)
{
    return weft_tls_op_poll(self, cx, out);
}

static void drop_thunk(void *self)
{
    weft_tls_op_drop(self);
}

WEFT_API const weft_future_type weft_tls_op_future = {
    op_thunk, drop_thunk, sizeof(weft_tls_op), _Alignof(weft_tls_op),
    sizeof(ssize_t), _Alignof(ssize_t), "weft_tls_op"
};

/* ---- coroutines ------------------------------------------------------------------ */
static ssize_t co_op(weft_tls_op *f)
{
    ssize_t n = 0;
    int err = weft_co_await(&weft_tls_op_future, f, &n);

    return err < 0 ? err : n;
}

WEFT_API int weft_co_tls_handshake(weft_tls *t, uint64_t timeout_ms)
{
    weft_tls_op f;

    weft_tls_handshake_init(&f, t, timeout_ms);
    return (int)co_op(&f);
}

WEFT_API ssize_t weft_co_tls_read(weft_tls *t, void *dst, size_t len)
{
    weft_tls_op f;

    weft_tls_read_init(&f, t, dst, len);
    return co_op(&f);
}

WEFT_API ssize_t weft_co_tls_write(weft_tls *t, const void *src, size_t len)
{
    weft_tls_op f;

    weft_tls_write_init(&f, t, src, len);
    return co_op(&f);
}

WEFT_API int weft_co_tls_flush(weft_tls *t)
{
    weft_tls_op f;

    weft_tls_flush_init(&f, t);
    return (int)co_op(&f);
}

WEFT_API int weft_co_tls_shutdown(weft_tls *t)
{
    weft_tls_op f;

    weft_tls_shutdown_init(&f, t);
    return (int)co_op(&f);
}
