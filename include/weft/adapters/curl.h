/* SPDX-License-Identifier: MIT */
/* weft/adapters/curl.h - libcurl's multi_socket API on weft. Header-only:
 * link with libcurl (pkg-config libcurl) and weft. Any libcurl from 7.66
 * (every current distribution).
 *
 * A weft_curl is a CURLM driven by a weft_loop of its own: curl's socket
 * hook becomes fd watches, its timer hook one loop timer. A transfer is a
 * weft_curl_xfer (an easy handle with a body buffer) that any task starts
 * and awaits with the weft_curl_perform future (or weft_curl_co_perform()
 * in a coroutine); up to thousands run at once on one CURLM.
 *
 * Threads. Every call into the CURLM and into an easy handle in flight is
 * made on the loop (one callback at a time, so curl's "one thread at a
 * time" rule holds without a lock); curl's own callbacks (write, header,
 * progress, debug) therefore run there too, on a worker: they must not
 * block. Tasks reach the loop through a queue and a "doorbell" timer (see
 * weft_curl_free() for why that cannot touch freed memory). Set an easy
 * handle's options only while it is not in flight.
 *
 * Lifetimes. A weft_curl_xfer is reference-counted between you and a
 * transfer in flight, so every order of freeing is safe: you may free it
 * (weft_curl_xfer_free) or drop the perform future at any time, from any
 * thread; the easy handle is cleaned up, and the release hook runs, once
 * curl has let go of it. Memory that options you set point at (your own
 * WRITEDATA, a header list, POST data) must live until that release hook
 * runs (weft_curl_xfer_on_release), or until the perform future completed.
 *
 * curl's own rules this adapter follows: the socket hook's REMOVE comes
 * before curl closes the socket (the watch goes first, as weft needs); the
 * timer hook must not call back into curl (a 0 ms timer defers the call);
 * CURL_CSELECT_ERR is passed only together with a ready side (alone, curl
 * fails the transfer without looking); curl_multi_info_read() after every
 * action collects what finished; curl_global_init() is yours to call once,
 * before any thread uses curl (it is not thread-safe). */
#ifndef WEFT_ADAPTERS_CURL_H
#define WEFT_ADAPTERS_CURL_H

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../coro.h"
#include "../fdwatch.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- transfers ------------------------------------------------------------------------ */
typedef void (*weft_curl_release_fn)(void *arg);

/* private: may change in any release. Treat it as opaque. */
typedef struct weft_curl_xfer {
    int refs;                           /* __atomic: yours + a transfer in flight */
    int busy;                           /* __atomic: in flight (set by init, cleared by the loop) */
    CURL *easy;
    char *body;                         /* the body so far; loop only while busy */
    size_t len, cap, max;
    weft_curl_release_fn release;
    void *release_arg;
} weft_curl_xfer;

static inline size_t weft__curl_on_body(char *data, size_t size, size_t n, void *arg)
{
    weft_curl_xfer *x = (weft_curl_xfer *)arg;
    size_t add = size * n;

    if (add > x->max - x->len)
        return 0;                       /* over the limit: CURLE_WRITE_ERROR */
    if (x->len + add + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 256;
        char *b;

        while (cap < x->len + add + 1)
            cap *= 2;
        b = (char *)realloc(x->body, cap);
        if (b == NULL)
            return 0;
        x->body = b;
        x->cap = cap;
    }
    memcpy(x->body + x->len, data, add);
    x->len += add;
    x->body[x->len] = '\0';             /* handy for text */
    return add;
}

/* Make a transfer: a new easy handle (CURLOPT_NOSIGNAL set, the body
 * collected in memory up to `max_body` bytes, 0: no limit; a longer body
 * fails the transfer with CURLE_WRITE_ERROR). Set its URL and other options
 * through weft_curl_xfer_easy(), not CURLOPT_PRIVATE (the adapter's).
 * Returns 0 and *out; -EINVAL; -ENOMEM. Thread: any. */
static inline int weft_curl_xfer_new(weft_curl_xfer **out, size_t max_body)
{
    weft_curl_xfer *x;

    if (out == NULL)
        return -EINVAL;
    x = (weft_curl_xfer *)calloc(1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    x->easy = curl_easy_init();
    if (x->easy == NULL) {
        free(x);
        return -ENOMEM;
    }
    x->refs = 1;
    x->max = max_body ? max_body : (size_t)-1 / 2;
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, weft__curl_on_body);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    *out = x;
    return 0;
}

static inline void weft__curl_xfer_unref(weft_curl_xfer *x)
{
    /* acq_rel: the last owner sees every write of the others */
    if (__atomic_sub_fetch(&x->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    curl_easy_cleanup(x->easy);
    if (x->release != NULL)
        x->release(x->release_arg);
    free(x->body);
    free(x);
}

/* The easy handle, to set options on while the transfer is not in flight
 * (and to read curl_easy_getinfo() after). NULL for NULL. Thread: the
 * transfer's owner, while it is not in flight. */
static inline CURL *weft_curl_xfer_easy(weft_curl_xfer *x)
{
    return x != NULL ? x->easy : NULL;
}

/* The body of the last transfer (NUL-terminated; *len without the NUL),
 * owned by x and valid until its next perform or its release. 0; -EINVAL;
 * -EBUSY while a transfer is in flight. Thread: the transfer's owner. */
static inline int weft_curl_xfer_body(weft_curl_xfer *x, const char **data, size_t *len)
{
    if (x == NULL || data == NULL || len == NULL)
        return -EINVAL;
    if (__atomic_load_n(&x->busy, __ATOMIC_ACQUIRE))   /* pairs: release in the loop's finish */
        return -EBUSY;
    *data = x->body != NULL ? x->body : "";
    *len = x->len;
    return 0;
}

/* Call fn(arg) when the transfer is finally released (after
 * weft_curl_xfer_free() and once curl has let go of it), on whichever
 * thread that happens: free what your own options point at there. Set it
 * while the transfer is not in flight. */
static inline void weft_curl_xfer_on_release(weft_curl_xfer *x, weft_curl_release_fn fn, void *arg)
{
    if (x != NULL) {
        x->release = fn;
        x->release_arg = arg;
    }
}

/* Release your reference. In flight, the transfer is cancelled when its
 * perform future is dropped and let go of then; otherwise at once. Thread:
 * any. NULL is ignored. */
static inline void weft_curl_xfer_free(weft_curl_xfer *x)
{
    if (x != NULL)
        weft__curl_xfer_unref(x);
}

/* ---- the multi handle -------------------------------------------------------------------- */
typedef struct weft_curl_options {
    long max_total_connections;         /* CURLMOPT_MAX_TOTAL_CONNECTIONS; 0: curl's (none) */
    long max_host_connections;          /* CURLMOPT_MAX_HOST_CONNECTIONS; 0: curl's (none) */
    long max_connects;                  /* CURLMOPT_MAXCONNECTS (the cache); 0: curl's */
} weft_curl_options;

struct weft__curl_req;

/* private: may change in any release. Treat it as opaque. */
typedef struct weft_curl {
    int refs;                           /* __atomic: yours + one per request alive */
    pthread_mutex_t mu;
    bool closed;                        /* ->mu: weft_curl_free() has begun */
    bool bell;                          /* ->mu: doorbell armed, pump not yet run */
    struct weft__adapter_queue queue;   /* ->mu: transfers to start */
    struct weft__curl_req *cancels;     /* ->mu: transfers whose future went away */
    weft_loop *loop;
    weft_timer *doorbell;               /* armed under ->mu while !closed; freed with the loop */
    /* loop only (or the thread in weft_curl_free() once the loop is gone) */
    weft_timer *timer;                  /* curl's timeout */
    CURLM *multi;
    struct weft__curl_req *inflight;    /* doubly linked */
    struct weft__curl_sock *socks;      /* every watch, doubly linked */
    bool dead;                          /* the loop is gone: touch no handle */
    unsigned long running;              /* __atomic: transfers in the multi (a hint) */
} weft_curl;

/* private */
struct weft__curl_req {
    struct weft__adapter_req q;         /* first: the queue holds &q */
    weft_curl *c;                       /* a reference */
    weft_curl_xfer *x;                  /* a reference */
    struct weft__curl_req *prev, *next; /* ->inflight: loop only */
    struct weft__curl_req *cancel_next; /* ->cancels: c->mu */
    bool inflight;                      /* loop only */
    bool cancelled;                     /* c->mu: on ->cancels already */
};

struct weft__curl_sock {
    weft_curl *c;
    weft_fdwatch *w;
    struct weft__curl_sock *prev, *next;
};

static inline void weft__curl_unref(weft_curl *c)
{
    /* acq_rel: the last owner sees every write of the others */
    if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static inline void weft__curl_free_req(struct weft__adapter_req *q)
{
    struct weft__curl_req *req = (struct weft__curl_req *)q;

    weft__curl_xfer_unref(req->x);
    weft__curl_unref(req->c);
    free(req);
}

/* Loop (or teardown). The transfer is out of the multi: hand the result to
 * the future. */
static inline void weft__curl_finish(struct weft__curl_req *req, int result)
{
    weft_curl *c = req->c;

    if (req->inflight) {
        curl_multi_remove_handle(c->multi, req->x->easy);
        if (req->prev != NULL)
            req->prev->next = req->next;
        else
            c->inflight = req->next;
        if (req->next != NULL)
            req->next->prev = req->prev;
        req->inflight = false;
        __atomic_sub_fetch(&c->running, 1, __ATOMIC_RELAXED);   /* a hint for readers */
    }
    __atomic_store_n(&req->x->busy, 0, __ATOMIC_RELEASE);   /* pairs: weft_curl_xfer_body */
    weft__adapter_req_complete(&req->q, result, NULL);
}

/* Loop only: collect every finished transfer. */
static inline void weft__curl_drain(weft_curl *c)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        char *priv = NULL;
        CURLcode res = msg->data.result;   /* msg dies with remove_handle */

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        weft__curl_finish((struct weft__curl_req *)(void *)priv, (int)res);
    }
}

static inline void weft__curl_on_ready(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    weft_curl *c = ((struct weft__curl_sock *)arg)->c;   /* the record may go inside */
    int running, flags = 0;

    (void)w;
    if (events & WEFT_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & WEFT_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    if ((events & WEFT_HANGUP) && flags != 0)
        flags |= CURL_CSELECT_ERR;      /* never alone: see the top */
    curl_multi_socket_action(c->multi, fd, flags, &running);
    weft__curl_drain(c);
}

static inline void weft__curl_on_timeout(weft_timer *t, void *arg)
{
    weft_curl *c = (weft_curl *)arg;
    int running;

    (void)t;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    weft__curl_drain(c);
}

static inline void weft__curl_sock_free(weft_curl *c, struct weft__curl_sock *s)
{
    if (!c->dead)
        weft_fdwatch_remove(s->w);      /* on the loop: at once */
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    free(s);
}

/* CURLMOPT_SOCKETFUNCTION: called from inside curl, so on the loop (or in
 * teardown, when `dead`: then only records are freed). -1 makes the curl
 * call fail with CURLM_ABORTED_BY_CALLBACK. */
static inline int weft__curl_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                                       void *socketp)
{
    weft_curl *c = (weft_curl *)userp;
    struct weft__curl_sock *s = (struct weft__curl_sock *)socketp;
    unsigned events = 0;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL)
            weft__curl_sock_free(c, s);  /* curl forgets its pointer itself */
        return 0;
    }
    if (c->dead)
        return -1;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= WEFT_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= WEFT_WRITABLE;
    if (s != NULL)
        return weft_fdwatch_modify(s->w, events) == 0 ? 0 : -1;
    s = (struct weft__curl_sock *)calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    s->c = c;
    if (weft_fdwatch_add(c->loop, fd, events, weft__curl_on_ready, s, &s->w) < 0) {
        free(s);
        return -1;
    }
    s->next = c->socks;
    if (c->socks != NULL)
        c->socks->prev = s;
    c->socks = s;
    if (curl_multi_assign(c->multi, fd, s) != CURLM_OK) {
        weft__curl_sock_free(c, s);
        return -1;
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: must not call curl; 0 ms runs it on the loop's
 * next turn. */
static inline int weft__curl_on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    weft_curl *c = (weft_curl *)userp;

    (void)multi;
    if (c->dead)
        return 0;
    if (timeout_ms < 0)
        return weft_timer_disarm(c->timer) == 0 ? 0 : -1;
    return weft_timer_arm(c->timer, (uint64_t)timeout_ms) == 0 ? 0 : -1;
}

/* The doorbell: cancel what was dropped, start what was queued. */
static inline void weft__curl_pump(weft_timer *t, void *arg)
{
    weft_curl *c = (weft_curl *)arg;
    struct weft__adapter_req *q, *next;
    struct weft__curl_req *cq, *cnext;

    (void)t;
    pthread_mutex_lock(&c->mu);
    q = weft__adapter_queue_take(&c->queue);
    cq = c->cancels;
    c->cancels = NULL;
    c->bell = false;
    pthread_mutex_unlock(&c->mu);
    for (; q != NULL; q = next) {
        struct weft__curl_req *req = (struct weft__curl_req *)q;
        CURLMcode mc;

        next = q->next;
        curl_easy_setopt(req->x->easy, CURLOPT_PRIVATE, (char *)(void *)req);
        mc = curl_multi_add_handle(c->multi, req->x->easy);
        if (mc != CURLM_OK) {
            weft__curl_finish(req, mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EINVAL);
            continue;
        }
        req->inflight = true;
        req->prev = NULL;
        req->next = c->inflight;
        if (c->inflight != NULL)
            c->inflight->prev = req;
        c->inflight = req;
        __atomic_add_fetch(&c->running, 1, __ATOMIC_RELAXED);
    }
    for (; cq != NULL; cq = cnext) {
        cnext = cq->cancel_next;
        if (cq->inflight)
            weft__curl_finish(cq, -ECANCELED);   /* nobody waits; frees on release */
        weft__adapter_req_release(&cq->q);       /* the cancel list's reference */
    }
}

/* Make a CURLM on runtime `rt` (NULL: the calling worker's), with a loop
 * of its own. `opt` may be NULL. curl_global_init() must have been called.
 * Returns 0 and *out; -EINVAL; -ENOMEM; weft_loop_new()'s errors. Thread:
 * any. */
static inline int weft_curl_new(weft_runtime *rt, const weft_curl_options *opt, weft_curl **out)
{
    weft_curl *c;
    int err = -ENOMEM;

    if (out == NULL)
        return -EINVAL;
    c = (weft_curl *)calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->refs = 1;
    pthread_mutex_init(&c->mu, NULL);
    c->multi = curl_multi_init();
    if (c->multi == NULL)
        goto fail;
    if ((err = weft_loop_new(rt, &c->loop)) < 0)
        goto fail_multi;
    if ((err = weft_timer_new(c->loop, weft__curl_pump, c, &c->doorbell)) < 0 ||
        (err = weft_timer_new(c->loop, weft__curl_on_timeout, c, &c->timer)) < 0)
        goto fail_loop;
    /* no transfer yet: nothing calls the hooks, safe off the loop */
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, weft__curl_on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, weft__curl_on_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    if (opt != NULL && opt->max_total_connections > 0)
        curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, opt->max_total_connections);
    if (opt != NULL && opt->max_host_connections > 0)
        curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, opt->max_host_connections);
    if (opt != NULL && opt->max_connects > 0)
        curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, opt->max_connects);
    *out = c;
    return 0;
fail_loop:
    weft_loop_free(c->loop);
fail_multi:
    curl_multi_cleanup(c->multi);
fail:
    pthread_mutex_destroy(&c->mu);
    free(c);
    return err;
}

/* Stop everything and free the CURLM: every transfer not finished
 * completes with -ECANCELED (its future may be polled or dropped later; it
 * keeps what it needs alive). Thread: any, task or plain thread, also
 * after the runtime was freed; not from a curl callback (they run on the
 * loop). It waits only for a loop callback running at that moment. Not
 * concurrently with another call on the same handle. NULL is ignored.
 *
 * Why it cannot touch freed memory (the "doorbell" trap): submitters arm
 * the doorbell only under ->mu and only while !closed; `closed` is set
 * first, under ->mu, so once it is released nobody arms it again. Then
 * weft_loop_free() returns when no callback runs or can start, freeing the
 * doorbell and the other handles itself; curl is called from here only
 * after that, with `dead` telling its hooks the handles are gone. */
static inline void weft_curl_free(weft_curl *c)
{
    struct weft__adapter_req *q, *next;
    struct weft__curl_req *cq, *cnext;

    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->closed = true;
    q = weft__adapter_queue_take(&c->queue);
    cq = c->cancels;
    c->cancels = NULL;
    pthread_mutex_unlock(&c->mu);
    weft_loop_free(c->loop);            /* no callback runs from here on */
    c->dead = true;
    while (c->inflight != NULL)
        weft__curl_finish(c->inflight, -ECANCELED);
    for (; q != NULL; q = next) {
        next = q->next;
        weft__curl_finish((struct weft__curl_req *)q, -ECANCELED);
    }
    for (; cq != NULL; cq = cnext) {
        cnext = cq->cancel_next;
        weft__adapter_req_release(&cq->q);
    }
    curl_multi_cleanup(c->multi);       /* REMOVE for sockets still open */
    c->multi = NULL;
    while (c->socks != NULL)            /* any curl did not report */
        weft__curl_sock_free(c, c->socks);
    weft__curl_unref(c);
}

/* Transfers in the multi right now (the loop's count: a hint, racy by
 * nature); 0 for NULL. Thread: any. */
static inline unsigned long weft_curl_running(weft_curl *c)
{
    return c != NULL ? __atomic_load_n(&c->running, __ATOMIC_RELAXED) : 0;
}

/* ---- the perform future -------------------------------------------------------------------
 * Run one transfer on `x`. init queues it (the body buffer is emptied) and
 * the loop starts it; poll: READY with *result = the CURLcode (>= 0:
 * CURLE_OK, or why curl failed: CURLE_COULDNT_CONNECT, CURLE_OPERATION_
 * TIMEDOUT, ...; the HTTP status is CURLINFO_RESPONSE_CODE), or a negative
 * errno: -EINVAL (NULL; or a poll without a waker, a NULL or zeroed
 * context: then nothing changes and the future can be polled again),
 * -EBUSY (x is in flight already), -ENOMEM,
 * -ECANCELED (weft_curl_free() ran first). Cancel safety: dropping it while
 * pending cancels the transfer (on the loop, soon after; x stays valid and
 * is reusable once the drop's cancel has run, i.e. when weft_curl_xfer_body
 * stops returning -EBUSY). The future may be moved before its first poll;
 * init: any thread (not concurrently with weft_curl_free() of the same
 * multi); poll: the owning task; drop: any thread, every state. Compose
 * it with
 *     WEFT_DEFINE_FUTURE_STATIC(weft_curl_perform, weft_curl_perform_poll,
 *                               weft_curl_perform_drop, int);
 */
typedef struct weft_curl_perform {
    /* private: may change in any release */
    struct weft__curl_req *req;
    int err;
} weft_curl_perform;

static inline void weft_curl_perform_init(weft_curl_perform *p, weft_curl *c, weft_curl_xfer *x)
{
    struct weft__curl_req *req;
    bool ring;

    if (p == NULL)
        return;
    p->req = NULL;
    p->err = 0;
    if (c == NULL || x == NULL) {
        p->err = -EINVAL;
        return;
    }
    if (__atomic_exchange_n(&x->busy, 1, __ATOMIC_ACQ_REL)) {
        p->err = -EBUSY;
        return;
    }
    x->len = 0;
    if (x->body != NULL)
        x->body[0] = '\0';
    req = (struct weft__curl_req *)calloc(1, sizeof(*req));
    if (req == NULL) {
        __atomic_store_n(&x->busy, 0, __ATOMIC_RELEASE);
        p->err = -ENOMEM;
        return;
    }
    weft__adapter_req_init(&req->q, NULL, weft__curl_free_req);
    __atomic_add_fetch(&x->refs, 1, __ATOMIC_RELAXED);   /* relaxed: we hold one already */
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    req->x = x;
    req->c = c;
    pthread_mutex_lock(&c->mu);
    if (c->closed) {
        pthread_mutex_unlock(&c->mu);
        weft__curl_finish(req, -ECANCELED);
    } else {
        weft__adapter_queue_push(&c->queue, &req->q);
        ring = !c->bell;
        c->bell = true;
        if (ring)
            weft_timer_arm(c->doorbell, 0);   /* under ->mu: see weft_curl_free() */
        pthread_mutex_unlock(&c->mu);
    }
    p->req = req;
}

static inline weft_poll weft_curl_perform_poll(weft_curl_perform *p, weft_context *cx, int *result)
{
    weft_adapter_result res;

    if (p->req == NULL) {
        *result = p->err != 0 ? p->err : -EINVAL;   /* -EINVAL: polled after READY */
        p->err = -EINVAL;
        return WEFT_READY;
    }
    if (cx == NULL || cx->waker == NULL) {
        *result = -EINVAL;              /* no waker to store: nothing changes */
        return WEFT_READY;
    }
    if (weft__adapter_req_poll(&p->req->q, cx, &res) == WEFT_PENDING)
        return WEFT_PENDING;
    weft__adapter_req_release(&p->req->q);
    p->req = NULL;
    p->err = -EINVAL;
    *result = res.result;
    return WEFT_READY;
}

/* Valid in every state; idempotent. Pending: the transfer is cancelled. */
static inline void weft_curl_perform_drop(weft_curl_perform *p)
{
    struct weft__curl_req *req;
    weft_curl *c;
    bool ring = false;

    if (p == NULL || p->req == NULL)
        return;
    req = p->req;
    c = req->c;
    p->req = NULL;
    pthread_mutex_lock(&req->q.mu);
    if (!req->q.done)
        req->q.refs++;                  /* the cancel list's reference */
    ring = !req->q.done;
    pthread_mutex_unlock(&req->q.mu);
    if (ring) {
        pthread_mutex_lock(&c->mu);
        if (!c->closed && !req->cancelled) {
            req->cancelled = true;
            req->cancel_next = c->cancels;
            c->cancels = req;
            if (!c->bell) {
                c->bell = true;
                weft_timer_arm(c->doorbell, 0);
            }
            ring = false;               /* the list owns the reference now */
        }
        pthread_mutex_unlock(&c->mu);
        if (ring)
            weft__adapter_req_release(&req->q);   /* closed: teardown finishes it */
    }
    weft__adapter_req_release(&req->q);
}

static inline weft_poll weft__curl_perform_poll_thunk(void *self, weft_context *cx, void *out)
{
    return weft_curl_perform_poll((weft_curl_perform *)self, cx, (int *)out);
}

static inline void weft__curl_perform_drop_thunk(void *self)
{
    weft_curl_perform_drop((weft_curl_perform *)self);
}

/* Coroutine form (weft/coro.h): run the transfer and wait. Returns the
 * future's result (a CURLcode >= 0, or a negative errno), -ECANCELED when
 * the coroutine is aborted (the transfer is cancelled; aborted before the
 * call, nothing is started), -EINVAL outside a coroutine (nothing is
 * started: x is not in flight). */
static inline int weft_curl_co_perform(weft_curl *c, weft_curl_xfer *x)
{
    weft_curl_perform p;
    int res = -EINVAL, err;

    if (!weft_co_is_coroutine())
        return -EINVAL;                 /* before init: a misuse starts no transfer */
    if (weft_co_cancelled())
        return -ECANCELED;              /* aborted already: no transfer either */
    weft_curl_perform_init(&p, c, x);
    err = weft_co_await_fn(weft__curl_perform_poll_thunk, weft__curl_perform_drop_thunk, &p, &res);
    return err < 0 ? err : res;
}

#ifdef __cplusplus
}
#endif
#endif /* WEFT_ADAPTERS_CURL_H */
