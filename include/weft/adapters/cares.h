/* SPDX-License-Identifier: MIT */
/* weft/adapters/cares.h - c-ares name lookups on weft. Header-only: link
 * with c-ares (pkg-config libcares) and weft. c-ares 1.16 or newer
 * (ares_getaddrinfo; Debian 12 ships 1.18).
 *
 * A weft_ares is an ares_channel driven by a weft_loop of its own:
 * c-ares's sock_state_cb becomes fd watches, and since c-ares has no timer
 * hook the adapter asks ares_timeout() after every call into the channel
 * and arms one loop timer for the answer (the retries and timeouts are
 * c-ares's own: ARES_OPT_TIMEOUTMS, ARES_OPT_TRIES). A lookup is a future,
 * weft_ares_getaddrinfo, that any task awaits (weft_ares_co_getaddrinfo()
 * in a coroutine).
 *
 * Threads: every call into the channel is made on the loop, one callback
 * at a time (c-ares's rule: one thread at a time per channel); lookups
 * reach it from any thread through a queue and a doorbell timer; results
 * leave through the future. c-ares's own rules followed here: the socket
 * callback with readable = writable = 0 means the socket is about to be
 * closed (the watch goes first, as weft needs); c-ares keeps no pointer
 * per socket, so the adapter keeps a list from descriptor to watch;
 * ares_destroy() calls every pending callback with ARES_EDESTRUCTION.
 * Call ares_library_init(ARES_LIB_INIT_ALL) once before the first
 * weft_ares_new() (it is not thread-safe), as c-ares asks. */
#ifndef WEFT_ADAPTERS_CARES_H
#define WEFT_ADAPTERS_CARES_H

/* before <ares.h>, which uses fd_set and on Linux includes only
 * <sys/types.h>, where strict C11 has none */
#include <sys/select.h>
#include <ares.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "../coro.h"
#include "../fdwatch.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_ares_options {
    const char *servers;                /* "ip[:port],..." (ares_set_servers_ports_csv);
                                         * NULL: the system's (/etc/resolv.conf) */
    int timeout_ms;                     /* first try's timeout (ARES_OPT_TIMEOUTMS); 0: c-ares's */
    int tries;                          /* tries per server (ARES_OPT_TRIES); 0: c-ares's */
    int flags;                          /* ARES_FLAG_* (ARES_OPT_FLAGS); 0: none */
    const char *lookups;                /* "b" DNS only, "f" hosts file only, "fb"; NULL: c-ares's */
} weft_ares_options;

struct weft__ares_sock;

/* private: may change in any release. Treat it as opaque. */
typedef struct weft_ares {
    pthread_mutex_t mu;
    bool closed;                        /* ->mu: weft_ares_free() has begun */
    bool bell;                          /* ->mu: doorbell armed, pump not yet run */
    struct weft__adapter_queue queue;   /* ->mu: lookups to start */
    weft_loop *loop;
    weft_timer *doorbell;               /* armed under ->mu while !closed; freed with the loop */
    /* loop only (or the thread in weft_ares_free() once the loop is gone) */
    weft_timer *timer;                  /* the next c-ares deadline */
    ares_channel channel;
    struct weft__ares_sock *socks;      /* every watched socket */
    bool dead;                          /* the loop is gone: touch no handle */
} weft_ares;

/* private */
struct weft__ares_sock {
    weft_ares *a;
    ares_socket_t fd;
    weft_fdwatch *w;
    struct weft__ares_sock *next;
};

/* private */
struct weft__ares_req {
    struct weft__adapter_req q;         /* first: the queue holds &q */
    weft_ares *a;                       /* loop use only (and ares_destroy in teardown) */
    char *name, *service;
    struct ares_addrinfo_hints hints;
};

/* Loop only: arm the timer for c-ares's next deadline, or disarm it. */
static inline void weft__ares_schedule(weft_ares *a)
{
    struct timeval tv, *tvp;

    if (a->dead)
        return;
    tvp = ares_timeout(a->channel, NULL, &tv);
    if (tvp == NULL)
        weft_timer_disarm(a->timer);
    else
        weft_timer_arm(a->timer, WEFT__TV_MS(*tvp));
}

static inline void weft__ares_on_ready(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    weft_ares *a = ((struct weft__ares_sock *)arg)->a;   /* the record may go inside */

    (void)w;
    ares_process_fd(a->channel, (events & WEFT_READABLE) ? fd : ARES_SOCKET_BAD,
                    (events & WEFT_WRITABLE) ? fd : ARES_SOCKET_BAD);
    weft__ares_schedule(a);
}

static inline void weft__ares_on_timer(weft_timer *t, void *arg)
{
    weft_ares *a = (weft_ares *)arg;

    (void)t;
    ares_process_fd(a->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);   /* expire, retry */
    weft__ares_schedule(a);
}

/* ARES_OPT_SOCK_STATE_CB: from inside c-ares, so on the loop (or in
 * teardown, when `dead`: then only records go). It returns nothing, so a
 * watch that cannot be made leaves the query to c-ares's timeout. */
static inline void weft__ares_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    weft_ares *a = (weft_ares *)data;
    struct weft__ares_sock **pp, *s;
    unsigned events = (readable ? (unsigned)WEFT_READABLE : 0u) |
                      (writable ? (unsigned)WEFT_WRITABLE : 0u);

    for (pp = &a->socks; *pp != NULL && (*pp)->fd != fd; pp = &(*pp)->next)
        ;
    s = *pp;
    if (events == 0) {                  /* about to be closed */
        if (s != NULL) {
            *pp = s->next;
            if (!a->dead)
                weft_fdwatch_remove(s->w);
            free(s);
        }
        return;
    }
    if (a->dead)
        return;
    if (s != NULL) {
        weft_fdwatch_modify(s->w, events);
        return;
    }
    s = (struct weft__ares_sock *)calloc(1, sizeof(*s));
    if (s == NULL)
        return;
    s->a = a;
    s->fd = fd;
    if (weft_fdwatch_add(a->loop, fd, events, weft__ares_on_ready, s, &s->w) < 0) {
        free(s);
        return;
    }
    s->next = a->socks;
    a->socks = s;
}

static inline void weft__ares_free_result(void *p) { ares_freeaddrinfo((struct ares_addrinfo *)p); }

static inline void weft__ares_free_req(struct weft__adapter_req *q)
{
    struct weft__ares_req *req = (struct weft__ares_req *)q;

    free(req->name);
    free(req->service);
    free(req);
}

static inline void weft__ares_on_result(void *arg, int status, int timeouts,
                                        struct ares_addrinfo *res)
{
    struct weft__ares_req *req = (struct weft__ares_req *)arg;
    int r = status;

    (void)timeouts;
    /* Inside ares_destroy() (weft_ares_free(), `dead`): a cancellation,
     * whatever c-ares says. It ends an any-family lookup whose A answer
     * came before its AAAA one with ARES_SUCCESS and half the addresses,
     * and weft_ares_free() promises -ECANCELED for every unfinished one. */
    if (req->a->dead)
        status = ARES_EDESTRUCTION;
    if (status == ARES_SUCCESS)
        r = 0;
    else if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
        r = -ECANCELED;
    else if (status == ARES_ENOMEM)
        r = -ENOMEM;
    if (r != 0 && res != NULL) {
        ares_freeaddrinfo(res);
        res = NULL;
    }
    weft__adapter_req_complete(&req->q, r, res);
}

/* The doorbell: start every queued lookup. */
static inline void weft__ares_pump(weft_timer *t, void *arg)
{
    weft_ares *a = (weft_ares *)arg;
    struct weft__adapter_req *q, *next;

    (void)t;
    pthread_mutex_lock(&a->mu);
    q = weft__adapter_queue_take(&a->queue);
    a->bell = false;
    pthread_mutex_unlock(&a->mu);
    for (; q != NULL; q = next) {
        struct weft__ares_req *req = (struct weft__ares_req *)q;

        next = q->next;
        /* may call back at once (a numeric address, the hosts file) */
        ares_getaddrinfo(a->channel, req->name, req->service, &req->hints, weft__ares_on_result,
                         req);
    }
    weft__ares_schedule(a);
}

static inline int weft__ares_errno(int status)
{
    return status == ARES_ENOMEM ? -ENOMEM : -EINVAL;
}

/* Make a resolver on runtime `rt` (NULL: the calling worker's) with a loop
 * of its own; `opt` may be NULL (the system's servers, c-ares's defaults).
 * Returns 0 and *out; -EINVAL (NULL out, a bad option or server list);
 * -ENOMEM; weft_loop_new()'s errors. Thread: any. */
static inline int weft_ares_new(weft_runtime *rt, const weft_ares_options *opt, weft_ares **out)
{
    struct ares_options o;
    int mask = ARES_OPT_SOCK_STATE_CB, st, err;
    weft_ares *a;

    if (out == NULL || (opt != NULL && (opt->timeout_ms < 0 || opt->tries < 0)))
        return -EINVAL;
    a = (weft_ares *)calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    pthread_mutex_init(&a->mu, NULL);
    memset(&o, 0, sizeof(o));
    o.sock_state_cb = weft__ares_sock_state;
    o.sock_state_cb_data = a;
    if (opt != NULL && opt->timeout_ms > 0) {
        o.timeout = opt->timeout_ms;
        mask |= ARES_OPT_TIMEOUTMS;
    }
    if (opt != NULL && opt->tries > 0) {
        o.tries = opt->tries;
        mask |= ARES_OPT_TRIES;
    }
    if (opt != NULL && opt->flags != 0) {
        o.flags = opt->flags;
        mask |= ARES_OPT_FLAGS;
    }
    if (opt != NULL && opt->lookups != NULL) {
        o.lookups = (char *)opt->lookups;   /* copied by c-ares */
        mask |= ARES_OPT_LOOKUPS;
    }
    st = ares_init_options(&a->channel, &o, mask);
    if (st != ARES_SUCCESS) {
        err = weft__ares_errno(st);
        goto fail;
    }
    if (opt != NULL && opt->servers != NULL &&
        (st = ares_set_servers_ports_csv(a->channel, opt->servers)) != ARES_SUCCESS) {
        err = weft__ares_errno(st);
        goto fail_channel;
    }
    if ((err = weft_loop_new(rt, &a->loop)) < 0)
        goto fail_channel;
    if ((err = weft_timer_new(a->loop, weft__ares_pump, a, &a->doorbell)) < 0 ||
        (err = weft_timer_new(a->loop, weft__ares_on_timer, a, &a->timer)) < 0)
        goto fail_loop;
    *out = a;
    return 0;
fail_loop:
    weft_loop_free(a->loop);
fail_channel:
    a->dead = true;
    ares_destroy(a->channel);           /* no socket yet: no callback */
fail:
    pthread_mutex_destroy(&a->mu);
    free(a);
    return err;
}

/* Stop and free the resolver: every lookup not finished completes with
 * -ECANCELED. Thread: any, task or plain thread, also after the runtime
 * was freed; it waits only for a loop callback running at that moment.
 * Not concurrently with another call on the same resolver. NULL is
 * ignored. The doorbell cannot be armed after its memory goes: `closed` is
 * set first under the lock every submitter arms it under, and
 * weft_loop_free() frees it once no callback runs; c-ares is called from
 * here only after that (ares_destroy: its callbacks see `dead`). */
static inline void weft_ares_free(weft_ares *a)
{
    struct weft__adapter_req *q, *next;

    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->closed = true;
    q = weft__adapter_queue_take(&a->queue);
    pthread_mutex_unlock(&a->mu);
    weft_loop_free(a->loop);            /* no callback runs from here on */
    a->dead = true;
    ares_destroy(a->channel);           /* pending: ARES_EDESTRUCTION -> -ECANCELED */
    for (; q != NULL; q = next) {
        next = q->next;
        weft__adapter_req_complete(q, -ECANCELED, NULL);
    }
    while (a->socks != NULL) {          /* any c-ares did not report */
        struct weft__ares_sock *s = a->socks;

        a->socks = s->next;
        free(s);
    }
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* ---- the lookup future ------------------------------------------------------------------
 * ares_getaddrinfo() of `name` (and `service`, may be NULL) with `hints`
 * (NULL: any family). init copies the arguments and queues the lookup;
 * poll: READY with *out: result 0 and `ai` (yours: ares_freeaddrinfo()),
 * or result > 0, c-ares's status (ARES_ENOTFOUND, ARES_ETIMEOUT after its
 * tries, ARES_ECONNREFUSED, ...; ares_strerror() names it), or < 0: -EINVAL
 * (NULL; or a poll without a waker, a NULL or zeroed context: then
 * nothing changes and the future can be polled again), -ENOMEM,
 * -ECANCELED (weft_ares_free() ran first). Cancel safety:
 * dropping it while pending does not stop the query (c-ares has no
 * per-query cancel); it runs to its end (bounded by the timeouts) and its
 * answer is freed. May be moved before its first poll; init: any thread
 * (not concurrently with weft_ares_free() of the same resolver); poll: the
 * owning task; drop: any thread, every state. Does not keep the resolver
 * alive. Compose it with
 *     WEFT_DEFINE_FUTURE_STATIC(weft_ares_getaddrinfo, weft_ares_getaddrinfo_poll,
 *                               weft_ares_getaddrinfo_drop, weft_ares_result);
 */
typedef struct weft_ares_result {
    int result;
    struct ares_addrinfo *ai;
} weft_ares_result;

typedef struct weft_ares_getaddrinfo {
    /* private: may change in any release */
    struct weft__ares_req *req;
    int err;
} weft_ares_getaddrinfo;

static inline void weft_ares_getaddrinfo_init(weft_ares_getaddrinfo *g, weft_ares *a,
                                              const char *name, const char *service,
                                              const struct ares_addrinfo_hints *hints)
{
    struct weft__ares_req *req;
    bool ring;

    if (g == NULL)
        return;
    g->req = NULL;
    g->err = 0;
    if (a == NULL || name == NULL) {
        g->err = -EINVAL;
        return;
    }
    req = (struct weft__ares_req *)calloc(1, sizeof(*req));
    if (req == NULL || (req->name = weft__adapter_strdup(name)) == NULL ||
        (service != NULL && (req->service = weft__adapter_strdup(service)) == NULL)) {
        if (req != NULL)
            free(req->name);
        free(req);
        g->err = -ENOMEM;
        return;
    }
    weft__adapter_req_init(&req->q, weft__ares_free_result, weft__ares_free_req);
    req->a = a;
    if (hints != NULL)
        req->hints = *hints;
    else
        req->hints.ai_family = AF_UNSPEC;
    pthread_mutex_lock(&a->mu);
    if (a->closed) {
        pthread_mutex_unlock(&a->mu);
        weft__adapter_req_complete(&req->q, -ECANCELED, NULL);
    } else {
        weft__adapter_queue_push(&a->queue, &req->q);
        ring = !a->bell;
        a->bell = true;
        if (ring)
            weft_timer_arm(a->doorbell, 0);   /* under ->mu: see weft_ares_free() */
        pthread_mutex_unlock(&a->mu);
    }
    g->req = req;
}

static inline weft_poll weft_ares_getaddrinfo_poll(weft_ares_getaddrinfo *g, weft_context *cx,
                                                   weft_ares_result *out)
{
    weft_adapter_result res;

    if (g->req == NULL) {
        out->result = g->err != 0 ? g->err : -EINVAL;   /* -EINVAL: polled after READY */
        out->ai = NULL;
        g->err = -EINVAL;
        return WEFT_READY;
    }
    if (cx == NULL || cx->waker == NULL) {
        out->result = -EINVAL;          /* no waker to store: nothing changes */
        out->ai = NULL;
        return WEFT_READY;
    }
    if (weft__adapter_req_poll(&g->req->q, cx, &res) == WEFT_PENDING)
        return WEFT_PENDING;
    weft__adapter_req_release(&g->req->q);
    g->req = NULL;
    g->err = -EINVAL;
    out->result = res.result;
    out->ai = (struct ares_addrinfo *)res.ptr;
    return WEFT_READY;
}

/* Valid in every state; idempotent. */
static inline void weft_ares_getaddrinfo_drop(weft_ares_getaddrinfo *g)
{
    if (g != NULL && g->req != NULL) {
        weft__adapter_req_release(&g->req->q);
        g->req = NULL;
    }
}

static inline weft_poll weft__ares_poll_thunk(void *self, weft_context *cx, void *out)
{
    return weft_ares_getaddrinfo_poll((weft_ares_getaddrinfo *)self, cx, (weft_ares_result *)out);
}

static inline void weft__ares_drop_thunk(void *self)
{
    weft_ares_getaddrinfo_drop((weft_ares_getaddrinfo *)self);
}

/* Coroutine form (weft/coro.h): look up and wait. Returns the future's
 * result with *ai (yours when 0), -ECANCELED when the coroutine is aborted
 * (aborted before the call: no query is sent), -EINVAL outside a coroutine
 * (no query is sent). */
static inline int weft_ares_co_getaddrinfo(weft_ares *a, const char *name, const char *service,
                                           const struct ares_addrinfo_hints *hints,
                                           struct ares_addrinfo **ai)
{
    weft_ares_getaddrinfo g;
    weft_ares_result res = { -EINVAL, NULL };
    int err;

    if (ai == NULL)
        return -EINVAL;
    *ai = NULL;
    if (!weft_co_is_coroutine())
        return -EINVAL;                 /* before init: a misuse sends no query */
    if (weft_co_cancelled())
        return -ECANCELED;              /* aborted already: no query either */
    weft_ares_getaddrinfo_init(&g, a, name, service, hints);
    err = weft_co_await_fn(weft__ares_poll_thunk, weft__ares_drop_thunk, &g, &res);
    if (err < 0)
        return err;
    *ai = res.ai;
    return res.result;
}

#ifdef __cplusplus
}
#endif
#endif /* WEFT_ADAPTERS_CARES_H */
