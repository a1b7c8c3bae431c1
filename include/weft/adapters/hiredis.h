/* SPDX-License-Identifier: MIT */
/* weft/adapters/hiredis.h - hiredis's async API on weft. Header-only: include
 * it after nothing in particular, link with -lhiredis (pkg-config hiredis)
 * and weft. Compiles against hiredis 0.14 and 1.x (HIREDIS_MAJOR).
 *
 * Two levels:
 *
 * 1. weft_hiredis_attach(ac, loop): the event-library adapter, as hiredis
 *    ships for libuv, libev, ae: hiredis's read/write hooks become an fd
 *    watch of `loop`, its timer hook (1.x: connect and command timeouts set
 *    with redisAsyncSetTimeout / redisOptions) a loop timer. hiredis runs in
 *    the loop's callbacks, one at a time, so the context needs no lock, but
 *    EVERY call into it (commands, connect/disconnect callbacks setup,
 *    redisAsyncDisconnect, redisAsyncFree) must be made from a callback of
 *    that loop: arm a weft_timer for 0 ms to get there from elsewhere. Free
 *    the context (redisAsyncFree, on the loop) before weft_loop_free(): the
 *    adapter's record goes with the context, through hiredis's cleanup hook.
 *
 * 2. weft_redis: a client that owns a loop and a connection and lets any
 *    task (or coroutine) send commands and await replies as futures. Use this
 *    unless you need pub/sub or your own callbacks.
 *
 * hiredis's own rules, which both levels follow and which an adapter of
 * your own must follow too:
 *   - After a failed connect (refused, timed out) hiredis calls the connect
 *     callback with REDIS_ERR and then frees the context itself, WITHOUT
 *     calling the disconnect callback; the event library's cleanup hook is
 *     the only call every path makes before the context's memory goes. So
 *     this adapter keeps its record's life tied to that hook, never to the
 *     disconnect callback.
 *   - Reply callbacks run with the reply hiredis owns; it frees it when the
 *     callback returns. weft_redis hands the task a deep copy it owns.
 *   - When the context goes (error, server gone, redisAsyncFree) every
 *     pending reply callback is called with a NULL reply; the reason is in
 *     ac->err / ac->errstr while the context lives.
 *   - redisAsyncFree() from inside a hiredis callback is deferred until that
 *     callback returns; so is the cleanup hook. Both handlers (read, write)
 *     may free the context: the adapter checks after each.
 *   - hiredis 0.14 has no timer hook and no timeouts in its async API;
 *     weft_redis adds its own (connect and command timeouts), for 0.14 and
 *     1.x alike. */
#ifndef WEFT_ADAPTERS_HIREDIS_H
#define WEFT_ADAPTERS_HIREDIS_H

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "../chan.h"
#include "../coro.h"
#include "../fdwatch.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#if HIREDIS_MAJOR >= 1
#define WEFT__HIREDIS_TIMER 1           /* ev.scheduleTimer + redisAsyncHandleTimeout */
#define WEFT__HI_MALLOC(n) hi_malloc(n)
#define WEFT__HI_CALLOC(n, s) hi_calloc(n, s)
#else
#define WEFT__HIREDIS_TIMER 0
#define WEFT__HI_MALLOC(n) malloc(n)    /* 0.14's freeReplyObject() uses free() */
#define WEFT__HI_CALLOC(n, s) calloc(n, s)
#endif

/* ---- level 1: the event-library adapter ------------------------------------------ */
/* private: may change in any release. One per attached context; freed by
 * hiredis's cleanup hook. Loop only (see the top). */
struct weft_hiredis_ev {
    redisAsyncContext *ac;
    weft_fdwatch *w;                    /* registered at attach, interest 0 */
    weft_timer *t;                      /* 1.x: the scheduleTimer hook's timer */
    unsigned events;                    /* interest hiredis asked for */
    bool busy;                          /* on_ready/on_timer is calling hiredis */
    bool gone;                          /* cleanup ran while busy: the caller frees */
    bool loop_gone;                     /* the loop was freed first: touch no handle */
    void (*on_gone)(void *arg);         /* weft_redis's hook, called by cleanup */
    void *gone_arg;
};

static inline void weft__hiredis_interest(void *p, unsigned set, unsigned clear)
{
    struct weft_hiredis_ev *e = (struct weft_hiredis_ev *)p;
    unsigned ev;

    if (e == NULL)
        return;
    ev = (e->events | set) & ~clear;
    if (ev == e->events || e->loop_gone)
        return;
    e->events = ev;
    weft_fdwatch_modify(e->w, ev);      /* fails only for a bad handle */
}

static inline void weft__hiredis_add_read(void *p) { weft__hiredis_interest(p, WEFT_READABLE, 0); }
static inline void weft__hiredis_del_read(void *p) { weft__hiredis_interest(p, 0, WEFT_READABLE); }
static inline void weft__hiredis_add_write(void *p) { weft__hiredis_interest(p, WEFT_WRITABLE, 0); }
static inline void weft__hiredis_del_write(void *p) { weft__hiredis_interest(p, 0, WEFT_WRITABLE); }

/* hiredis is done with the context: the last call before its memory goes,
 * on every path (failed connect included). Releases the watch, the timer
 * and the record (or, when it runs inside on_ready/on_timer, leaves the
 * record for that callback to free once hiredis returns to it). */
static inline void weft__hiredis_cleanup(void *p)
{
    struct weft_hiredis_ev *e = (struct weft_hiredis_ev *)p;

    if (e == NULL)
        return;
    e->ac->ev.data = NULL;
    if (!e->loop_gone) {
        weft_fdwatch_remove(e->w);      /* from its own callback: allowed */
        weft_timer_free(e->t);          /* NULL is ignored */
    }
    if (e->on_gone != NULL)
        e->on_gone(e->gone_arg);
    if (e->busy)
        e->gone = true;                 /* on_ready/on_timer frees it on its way out */
    else
        free(e);
}

/* hiredis writes with write(2): to a connection the server has closed (a
 * CLIENT KILL, a restart) that raises SIGPIPE, whose default action kills
 * the process. So hiredis's write handler runs through
 * weft_call_nosigpipe() (weft/net.h): SIGPIPE blocked in this thread, and
 * one the write raised taken before the old mask comes back. The program
 * need not ignore SIGPIPE. Cost: two pthread_sigmask calls and a
 * sigtimedwait per writable event, as before. (The signal calls live in libweft: this header compiles as
 * strict C11, where <signal.h> has no sigset_t.) */
static inline void weft__hiredis_write_call(void *ac)
{
    redisAsyncHandleWrite((redisAsyncContext *)ac);
}

static inline void weft__hiredis_write(redisAsyncContext *ac)
{
    weft_call_nosigpipe(weft__hiredis_write_call, ac);
}

/* Readiness: read first (a reply may complete), then write; either handler
 * may free the context (cleanup sets `gone`). A hang-up comes with the side
 * hiredis wants, whose handler finds EOF or the connect error. */
static inline void weft__hiredis_on_ready(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    struct weft_hiredis_ev *e = (struct weft_hiredis_ev *)arg;
    redisAsyncContext *ac = e->ac;

    (void)w;
    (void)fd;
    e->busy = true;
    if (events & WEFT_READABLE)
        redisAsyncHandleRead(ac);
    if (!e->gone && (events & WEFT_WRITABLE))
        weft__hiredis_write(ac);
    e->busy = false;
    if (e->gone)
        free(e);                        /* the context went inside a handler */
}

#if WEFT__HIREDIS_TIMER
static inline void weft__hiredis_schedule(void *p, struct timeval tv)
{
    struct weft_hiredis_ev *e = (struct weft_hiredis_ev *)p;

    if (e != NULL && !e->loop_gone)
        weft_timer_arm(e->t, WEFT__TV_MS(tv));
}

static inline void weft__hiredis_on_timer(weft_timer *t, void *arg)
{
    struct weft_hiredis_ev *e = (struct weft_hiredis_ev *)arg;

    (void)t;
    e->busy = true;
    redisAsyncHandleTimeout(e->ac);
    e->busy = false;
    if (e->gone)
        free(e);
}
#endif

static inline int weft__hiredis_attach(redisAsyncContext *ac, weft_loop *loop,
                                       void (*on_gone)(void *), void *gone_arg)
{
    struct weft_hiredis_ev *e;
    int err;

    if (ac == NULL || loop == NULL || ac->c.fd < 0)
        return -EINVAL;
    if (ac->ev.data != NULL)
        return -EBUSY;                  /* one event library per context */
    e = (struct weft_hiredis_ev *)calloc(1, sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    e->ac = ac;
    e->on_gone = on_gone;
    e->gone_arg = gone_arg;
    /* everything that can fail happens here, not in the void hooks */
    err = weft_fdwatch_add(loop, ac->c.fd, 0, weft__hiredis_on_ready, e, &e->w);
    if (err < 0) {
        free(e);
        return err;
    }
#if WEFT__HIREDIS_TIMER
    err = weft_timer_new(loop, weft__hiredis_on_timer, e, &e->t);
    if (err < 0) {
        weft_fdwatch_remove(e->w);
        free(e);
        return err;
    }
    ac->ev.scheduleTimer = weft__hiredis_schedule;
#endif
    ac->ev.addRead = weft__hiredis_add_read;
    ac->ev.delRead = weft__hiredis_del_read;
    ac->ev.addWrite = weft__hiredis_add_write;
    ac->ev.delWrite = weft__hiredis_del_write;
    ac->ev.cleanup = weft__hiredis_cleanup;
    ac->ev.data = e;
    return 0;
}

/* Attach `ac` (just made by redisAsyncConnect*(), before its callbacks are
 * set: setting the connect callback already asks for WRITE) to `loop`.
 * From then on call hiredis for this context only from callbacks of `loop`
 * (reply, connect and disconnect callbacks run there too). The adapter's
 * state is released by hiredis's cleanup hook when the context goes, on
 * every path; free the context before the loop. Returns 0; -EINVAL (NULL,
 * or the context has no descriptor: check ac->err first); -EBUSY (another
 * adapter is attached); -EEXIST (the descriptor is already watched in this
 * runtime); -ENOMEM; -ESHUTDOWN (the runtime was freed). On failure the
 * context is untouched (free it with redisAsyncFree()). Thread: any, but
 * before anything else uses the context (or on the loop). */
static inline int weft_hiredis_attach(redisAsyncContext *ac, weft_loop *loop)
{
    return weft__hiredis_attach(ac, loop, NULL, NULL);
}

/* ---- level 2: the client ----------------------------------------------------------- */
typedef struct weft_redis_options {
    const char *host;                   /* NULL: "127.0.0.1" (copied) */
    int port;                           /* 0: 6379 */
    const char *unix_path;              /* not NULL: a Unix socket instead (copied) */
    uint64_t connect_timeout_ms;        /* 0: none; else a connect that takes longer fails */
    uint64_t command_timeout_ms;        /* 0: none; else a connection with replies
                                         * outstanding and no reply for this long is
                                         * closed: its commands fail with -ETIMEDOUT.
                                         * It runs only once connected: a connect
                                         * that hangs is bounded by connect_timeout_ms
                                         * alone (0 there: no bound but the
                                         * kernel's) */
} weft_redis_options;

/* The output of a command: result 0 and a reply the receiver owns (free it
 * with freeReplyObject(); a REDIS_REPLY_ERROR reply is a result too), or a
 * negative errno and reply NULL. */
typedef struct weft_redis_result {
    int result;
    redisReply *reply;
} weft_redis_result;

/* private: may change in any release. Treat it as opaque. */
typedef struct weft_redis {
    pthread_mutex_t mu;
    bool closed;                        /* ->mu: weft_redis_free() has begun */
    bool bell;                          /* ->mu: doorbell armed, pump not yet run */
    struct weft__adapter_queue queue;   /* ->mu: commands not yet given to hiredis */
    unsigned long connects;             /* ->mu: connection attempts */
    char errstr[128];                   /* ->mu: the last connection error */
    weft_loop *loop;
    weft_timer *doorbell;               /* armed under ->mu while !closed; freed with the loop */
    weft_timer *deadline;               /* loop only: connect / command timeout */
    /* loop only (or the thread in weft_redis_free(), once the loop is gone) */
    redisAsyncContext *ac;              /* NULL: not connected */
    struct weft_hiredis_ev *ev;
    bool connected, deadline_armed, dead;
    unsigned long outstanding;          /* commands given to hiredis, reply not yet seen */
    int reason;                         /* why we are freeing ac: -ETIMEDOUT, -ECANCELED */
    char *host, *unix_path;
    int port;
    uint64_t connect_timeout, command_timeout;
} weft_redis;

/* private */
struct weft__redis_req {
    struct weft__adapter_req q;         /* first: the queue holds &q */
    weft_redis *r;
    char *cmd;                          /* formatted; freed once hiredis has copied it */
    size_t len;
};

static inline void weft__redis_free_reply(void *p) { freeReplyObject(p); }

static inline void weft__redis_free_req(struct weft__adapter_req *q)
{
    struct weft__redis_req *req = (struct weft__redis_req *)q;

    if (req->cmd != NULL)
        redisFreeCommand(req->cmd);
    free(req);
}

/* A deep copy that freeReplyObject() frees (hiredis's own allocator). */
static inline redisReply *weft__redis_dup(const redisReply *src)
{
    redisReply *c = (redisReply *)WEFT__HI_CALLOC(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    memcpy(c, src, sizeof(*c));
    c->str = NULL;
    c->element = NULL;
    if (src->str != NULL) {
        c->str = (char *)WEFT__HI_MALLOC(src->len + 1);
        if (c->str == NULL)
            goto fail;
        memcpy(c->str, src->str, src->len);
        c->str[src->len] = '\0';
    }
    if (src->element != NULL) {
        c->element = (redisReply **)WEFT__HI_CALLOC(src->elements ? src->elements : 1,
                                                    sizeof(*c->element));
        if (c->element == NULL)
            goto fail;
        for (size_t i = 0; i < src->elements; i++)
            if (src->element[i] != NULL &&
                (c->element[i] = weft__redis_dup(src->element[i])) == NULL)
                goto fail;              /* the rest are NULL: freeReplyObject skips them */
    }
    return c;
fail:
    freeReplyObject(c);
    return NULL;
}

static inline void weft__redis_set_error(weft_redis *r, const char *what)
{
    pthread_mutex_lock(&r->mu);
    snprintf(r->errstr, sizeof(r->errstr), "%s", what);
    pthread_mutex_unlock(&r->mu);
}

/* Why a context failed, as a negative errno (hiredis keeps only the text of
 * the system error; the common ones are matched back). */
static inline int weft__redis_errno(weft_redis *r, const redisAsyncContext *ac)
{
    static const int common[] = { ECONNREFUSED, ECONNRESET, ETIMEDOUT, EPIPE,
                                  EHOSTUNREACH, ENETUNREACH, ENOENT, EACCES };

    if (r->reason != 0)
        return r->reason;
    if (ac == NULL)
        return -ECONNABORTED;
    if (ac->errstr != NULL && ac->errstr[0] != '\0')
        weft__redis_set_error(r, ac->errstr);
    switch (ac->err) {
    case REDIS_ERR_EOF:
        return -ECONNRESET;
    case REDIS_ERR_PROTOCOL:
        return -EPROTO;
    case REDIS_ERR_OOM:
        return -ENOMEM;
#if HIREDIS_MAJOR >= 1
    case REDIS_ERR_TIMEOUT:
        return -ETIMEDOUT;
#endif
    case REDIS_ERR_IO:
        for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
            if (ac->errstr != NULL && strcmp(ac->errstr, strerror(common[i])) == 0)
                return -common[i];
        return -EIO;
    case 0:
        return -ECONNABORTED;           /* closed without an error */
    default:
        return -EIO;
    }
}

/* Loop only. Arm the deadline the connection's state calls for: the
 * connect timeout while connecting, the command timeout while replies are
 * outstanding, none otherwise. `restart`: move it even if armed (progress). */
static inline void weft__redis_deadline(weft_redis *r, bool restart)
{
    uint64_t ms = 0;

    if (r->dead)
        return;
    if (r->ac != NULL)
        ms = !r->connected ? r->connect_timeout : r->outstanding ? r->command_timeout : 0;
    if (ms == 0) {
        if (r->deadline_armed)
            weft_timer_disarm(r->deadline);
        r->deadline_armed = false;
    } else if (restart || !r->deadline_armed) {
        weft_timer_arm(r->deadline, ms);
        r->deadline_armed = true;
    }
}

static inline void weft__redis_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct weft__redis_req *req = (struct weft__redis_req *)privdata;
    weft_redis *r = req->r;
    redisReply *copy = NULL;
    int res = 0;

    if (reply == NULL)
        res = weft__redis_errno(r, ac);
    else if ((copy = weft__redis_dup((const redisReply *)reply)) == NULL)
        res = -ENOMEM;
    r->outstanding--;
    if (r->reason == 0 && reply != NULL)
        weft__redis_deadline(r, true);  /* a reply: progress, restart the clock */
    weft__adapter_req_complete(&req->q, res, copy);
}

static inline void weft__redis_on_connect(const redisAsyncContext *ac, int status)
{
    weft_redis *r = (weft_redis *)ac->data;

    if (status != REDIS_OK) {
        weft__redis_errno(r, ac);       /* records the text; hiredis frees ac next */
        return;
    }
    r->connected = true;
    weft__redis_deadline(r, true);
}

static inline void weft__redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    weft_redis *r = (weft_redis *)ac->data;

    if (status != REDIS_OK)
        weft__redis_errno(r, ac);
}

/* From hiredis's cleanup hook: the context is going. 0.14 calls it after
 * the pending reply callbacks, 1.x (on an error) before them: either way
 * each command given to hiredis gets exactly one reply callback, which is
 * what keeps `outstanding` right. */
static inline void weft__redis_on_gone(void *arg)
{
    weft_redis *r = (weft_redis *)arg;

    r->ac = NULL;
    r->ev = NULL;
    r->connected = false;
    weft__redis_deadline(r, false);     /* disarms */
}

/* Loop only. A new context, attached; 0 or why not. */
static inline int weft__redis_connect(weft_redis *r)
{
    redisAsyncContext *ac;
    int err;

    pthread_mutex_lock(&r->mu);
    r->connects++;
    pthread_mutex_unlock(&r->mu);
    ac = r->unix_path != NULL ? redisAsyncConnectUnix(r->unix_path)
                              : redisAsyncConnect(r->host, r->port);
    if (ac == NULL)
        return -ENOMEM;
    if (ac->err) {
        err = weft__redis_errno(r, ac);
        redisAsyncFree(ac);             /* nothing attached yet */
        return err;
    }
    ac->data = r;
    err = weft__hiredis_attach(ac, r->loop, weft__redis_on_gone, r);
    if (err < 0) {
        redisAsyncFree(ac);
        return err;
    }
    r->ac = ac;
    r->ev = (struct weft_hiredis_ev *)ac->ev.data;
    r->connected = false;
    redisAsyncSetConnectCallback(ac, weft__redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, weft__redis_on_disconnect);
    weft__redis_deadline(r, true);
    return 0;
}

/* The doorbell: give every queued command to hiredis, connecting first if
 * there is no connection (after a failure, the next command reconnects). */
static inline void weft__redis_pump(weft_timer *t, void *arg)
{
    weft_redis *r = (weft_redis *)arg;
    struct weft__adapter_req *q, *next;
    int err = 0;

    (void)t;
    pthread_mutex_lock(&r->mu);
    q = weft__adapter_queue_take(&r->queue);
    r->bell = false;
    pthread_mutex_unlock(&r->mu);
    if (q == NULL)
        return;
    if (r->ac == NULL)
        err = weft__redis_connect(r);
    for (; q != NULL; q = next) {
        struct weft__redis_req *req = (struct weft__redis_req *)q;

        next = q->next;
        if (err == 0 && r->ac == NULL)
            err = -ECONNRESET;
        if (err == 0 && redisAsyncFormattedCommand(r->ac, weft__redis_on_reply, req, req->cmd,
                                                   req->len) != REDIS_OK)
            err = -ECONNRESET;          /* the context is being torn down */
        if (err < 0) {
            weft__adapter_req_complete(q, err, NULL);
            continue;
        }
        r->outstanding++;
        redisFreeCommand(req->cmd);     /* hiredis copied it */
        req->cmd = NULL;
    }
    weft__redis_deadline(r, false);
}

/* The connection made no progress in time: close it; every outstanding
 * command fails with -ETIMEDOUT, the next one reconnects. */
static inline void weft__redis_on_deadline(weft_timer *t, void *arg)
{
    weft_redis *r = (weft_redis *)arg;

    (void)t;
    r->deadline_armed = false;
    if (r->ac == NULL || (r->connected && r->outstanding == 0))
        return;
    weft__redis_set_error(r, r->connected ? "command timed out" : "connect timed out");
    r->reason = -ETIMEDOUT;
    redisAsyncFree(r->ac);              /* not inside a hiredis callback: at once */
    r->reason = 0;
}

/* Make a client for the server in `opt` (NULL: 127.0.0.1:6379, no
 * timeouts) on runtime `rt` (NULL: the calling worker's). It owns a
 * weft_loop and connects on the first command, and again on the first
 * command after a connection failed or was closed: commands in flight when
 * a connection dies fail (-ECONNRESET, -ETIMEDOUT, ...); later ones go to a
 * new connection. Commands are sent in the order their futures were
 * initialised (pipelined on one connection). Returns 0 and *out; -EINVAL;
 * -ENOMEM; -ESHUTDOWN and weft_loop_new()'s errors. Thread: any. */
static inline int weft_redis_new(weft_runtime *rt, const weft_redis_options *opt,
                                 weft_redis **out)
{
    weft_redis *r;
    int err = -ENOMEM;

    if (out == NULL || (opt != NULL && (opt->port < 0 || opt->port > 65535)))
        return -EINVAL;
    r = (weft_redis *)calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->host = weft__adapter_strdup(opt != NULL && opt->host != NULL ? opt->host : "127.0.0.1");
    r->port = opt != NULL && opt->port != 0 ? opt->port : 6379;
    if (opt != NULL && opt->unix_path != NULL &&
        (r->unix_path = weft__adapter_strdup(opt->unix_path)) == NULL)
        goto fail;
    if (r->host == NULL)
        goto fail;
    r->connect_timeout = opt != NULL ? opt->connect_timeout_ms : 0;
    r->command_timeout = opt != NULL ? opt->command_timeout_ms : 0;
    pthread_mutex_init(&r->mu, NULL);
    if ((err = weft_loop_new(rt, &r->loop)) < 0)
        goto fail_mu;
    if ((err = weft_timer_new(r->loop, weft__redis_pump, r, &r->doorbell)) < 0 ||
        (err = weft_timer_new(r->loop, weft__redis_on_deadline, r, &r->deadline)) < 0)
        goto fail_loop;
    *out = r;
    return 0;
fail_loop:
    weft_loop_free(r->loop);            /* frees the timers made */
fail_mu:
    pthread_mutex_destroy(&r->mu);
fail:
    free(r->unix_path);
    free(r->host);
    free(r);
    return err;
}

/* Close the connection and free the client. Every command not yet answered
 * completes with -ECANCELED (its future may still be polled or dropped
 * later: it does not point at the client). Thread: any, task or plain
 * thread, also after the runtime was freed; it waits only for a callback of
 * the client's loop that is running at that moment, never for the loop to
 * run. Not concurrently with another call on the same client. NULL is
 * ignored.
 *
 * How it cannot touch freed memory: `closed` is set under the lock that
 * every submitter holds while it queues and arms the doorbell, so nobody
 * arms it afterwards; weft_loop_free() then returns only once no callback
 * runs and none can start, and frees the doorbell with the other timers;
 * only then is hiredis called, from this thread, with the adapter told
 * that its watch and timer are gone. */
static inline void weft_redis_free(weft_redis *r)
{
    struct weft__adapter_req *q, *next;

    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->closed = true;
    q = weft__adapter_queue_take(&r->queue);
    pthread_mutex_unlock(&r->mu);
    weft_loop_free(r->loop);            /* no callback runs from here on */
    r->dead = true;
    if (r->ac != NULL) {
        r->ev->loop_gone = true;
        r->reason = -ECANCELED;
        redisAsyncFree(r->ac);          /* reply callbacks: -ECANCELED; cleanup: on_gone */
    }
    for (; q != NULL; q = next) {
        next = q->next;
        weft__adapter_req_complete(q, -ECANCELED, NULL);
    }
    pthread_mutex_destroy(&r->mu);
    free(r->unix_path);
    free(r->host);
    free(r);
}

/* Connection attempts made so far (a test's and a dashboard's figure); 0
 * for NULL. Thread: any. */
static inline unsigned long weft_redis_connects(weft_redis *r)
{
    unsigned long n;

    if (r == NULL)
        return 0;
    pthread_mutex_lock(&r->mu);
    n = r->connects;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Copy the text of the last connection error ("" if none, or for a NULL
 * client) into buf, truncated to `size`. Thread: any. */
static inline void weft_redis_last_error(weft_redis *r, char *buf, size_t size)
{
    if (buf == NULL || size == 0)
        return;
    buf[0] = '\0';
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    snprintf(buf, size, "%s", r->errstr);
    pthread_mutex_unlock(&r->mu);
}

/* ---- the command future --------------------------------------------------------------
 * One command and its reply. init formats the command (hiredis's printf-like
 * format, or argv) and queues it at once: commands go out in init order.
 * poll: READY with *out (see weft_redis_result). Errors: -EINVAL (bad
 * format, NULL; or a poll without a waker, a NULL or zeroed context: then
 * nothing changes and the future can be polled again), -ENOMEM,
 * -ECONNREFUSED / -ECONNRESET / -EIO / -EPROTO (the connection failed;
 * the next command reconnects), -ETIMEDOUT (the client's
 * timeouts), -ECANCELED (weft_redis_free() ran first). Pub/sub commands
 * (SUBSCRIBE, MONITOR) are not for this future: use weft_hiredis_attach().
 * Cancel safety: dropping it while pending does not unsend the command
 * (Redis may still run it); its reply is freed when it arrives. The future
 * may be moved before its first poll and dropped from any thread; it does
 * not keep the client alive. init: any thread (not concurrently with
 * weft_redis_free() of the same client); poll: the owning task; drop:
 * any, valid in every state. To compose it (weft_timeout, weft_select):
 *     WEFT_DEFINE_FUTURE_STATIC(weft_redis_command, weft_redis_command_poll,
 *                               weft_redis_command_drop, weft_redis_result);
 */
typedef struct weft_redis_command {
    /* private: may change in any release */
    struct weft__redis_req *req;
    int err;
} weft_redis_command;

static inline void weft__redis_submit(weft_redis_command *c, weft_redis *r, char *cmd, int len)
{
    struct weft__redis_req *req;
    bool ring;

    c->req = NULL;
    c->err = 0;
    if (cmd == NULL || len <= 0) {
        /* 1.x: -1 out of memory, -2 bad format; 0.14: -1 for both */
        c->err = len == -1 && HIREDIS_MAJOR >= 1 ? -ENOMEM : -EINVAL;
        if (cmd != NULL)
            redisFreeCommand(cmd);
        return;
    }
    req = (struct weft__redis_req *)calloc(1, sizeof(*req));
    if (req == NULL) {
        redisFreeCommand(cmd);
        c->err = -ENOMEM;
        return;
    }
    weft__adapter_req_init(&req->q, weft__redis_free_reply, weft__redis_free_req);
    req->r = r;
    req->cmd = cmd;
    req->len = (size_t)len;
    pthread_mutex_lock(&r->mu);
    if (r->closed) {
        pthread_mutex_unlock(&r->mu);
        weft__adapter_req_complete(&req->q, -ECANCELED, NULL);
    } else {
        weft__adapter_queue_push(&r->queue, &req->q);
        ring = !r->bell;
        r->bell = true;
        if (ring)
            weft_timer_arm(r->doorbell, 0);   /* under ->mu: see weft_redis_free() */
        pthread_mutex_unlock(&r->mu);
    }
    c->req = req;
}

static inline void weft_redis_command_initv(weft_redis_command *c, weft_redis *r, const char *fmt,
                                            va_list ap)
{
    char *cmd = NULL;
    int len;

    if (c == NULL)
        return;
    if (r == NULL || fmt == NULL) {
        c->req = NULL;
        c->err = -EINVAL;
        return;
    }
    len = redisvFormatCommand(&cmd, fmt, ap);
    weft__redis_submit(c, r, len < 0 ? NULL : cmd, len);
}

static inline void weft_redis_command_init(weft_redis_command *c, weft_redis *r, const char *fmt,
                                           ...)
{
    va_list ap;

    va_start(ap, fmt);
    weft_redis_command_initv(c, r, fmt, ap);
    va_end(ap);
}

/* argv form: argc arguments, binary-safe (argvlen NULL: strlen each). A
 * NULL argv or argument, or argc <= 0: the future completes with -EINVAL
 * and nothing is sent. */
static inline void weft_redis_command_init_argv(weft_redis_command *c, weft_redis *r, int argc,
                                                const char **argv, const size_t *argvlen)
{
    char *cmd = NULL;
    int len;

    if (c == NULL)
        return;
    if (r == NULL || argc <= 0 || argv == NULL) {
        c->req = NULL;
        c->err = -EINVAL;
        return;
    }
    for (int i = 0; i < argc; i++)
        if (argv[i] == NULL) {          /* hiredis would read through it */
            c->req = NULL;
            c->err = -EINVAL;
            return;
        }
    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    weft__redis_submit(c, r, len < 0 ? NULL : cmd, len < 0 ? -1 : len);
}

static inline weft_poll weft_redis_command_poll(weft_redis_command *c, weft_context *cx,
                                                weft_redis_result *out)
{
    weft_adapter_result res;

    if (c->req == NULL) {
        out->result = c->err != 0 ? c->err : -EINVAL;   /* -EINVAL: polled after READY */
        out->reply = NULL;
        c->err = -EINVAL;
        return WEFT_READY;
    }
    if (cx == NULL || cx->waker == NULL) {
        out->result = -EINVAL;          /* no waker to store: nothing changes */
        out->reply = NULL;
        return WEFT_READY;
    }
    if (weft__adapter_req_poll(&c->req->q, cx, &res) == WEFT_PENDING)
        return WEFT_PENDING;
    weft__adapter_req_release(&c->req->q);
    c->req = NULL;
    c->err = -EINVAL;
    out->result = res.result;
    out->reply = (redisReply *)res.ptr;
    return WEFT_READY;
}

/* Valid in every state; idempotent. */
static inline void weft_redis_command_drop(weft_redis_command *c)
{
    if (c != NULL && c->req != NULL) {
        weft__adapter_req_release(&c->req->q);
        c->req = NULL;
    }
}

static inline weft_poll weft__redis_command_poll_thunk(void *self, weft_context *cx, void *out)
{
    return weft_redis_command_poll((weft_redis_command *)self, cx, (weft_redis_result *)out);
}

static inline void weft__redis_command_drop_thunk(void *self)
{
    weft_redis_command_drop((weft_redis_command *)self);
}

/* Coroutine form (weft/coro.h): send a command and wait for its reply.
 * Returns 0 with *reply (yours: freeReplyObject()), or the future's errors,
 * or -ECANCELED when the coroutine is aborted (the reply is then freed when
 * it arrives; a coroutine aborted before the call gets -ECANCELED and the
 * command is not sent), -EINVAL outside a coroutine (not sent either). */
static inline int weft_redis_co_command(weft_redis *r, redisReply **reply, const char *fmt, ...)
{
    weft_redis_command c;
    weft_redis_result res = { -EINVAL, NULL };
    va_list ap;
    int err;

    if (reply == NULL)
        return -EINVAL;
    *reply = NULL;
    if (!weft_co_is_coroutine())
        return -EINVAL;                 /* before init: a misuse sends nothing */
    if (weft_co_cancelled())
        return -ECANCELED;              /* aborted already: send nothing either */
    va_start(ap, fmt);
    weft_redis_command_initv(&c, r, fmt, ap);
    va_end(ap);
    err = weft_co_await_fn(weft__redis_command_poll_thunk, weft__redis_command_drop_thunk, &c, &res);
    if (err < 0)
        return err;
    *reply = res.reply;
    return res.result;
}

#ifdef __cplusplus
}
#endif
#endif /* WEFT_ADAPTERS_HIREDIS_H */
