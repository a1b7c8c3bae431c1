/* SPDX-License-Identifier: MIT */
/* Name lookups: getaddrinfo(3) as a job on a blocking pool.
 *
 * The job's one allocation carries the request: the lookup's own copy of
 * the name and its hints, and, once getaddrinfo returned, the answer (a
 * weft_addrlist it allocated) and the result. The future holds a handle to
 * the job, never the other way round, so dropping the future (an aborted
 * task) only lets go of the handle: the pool thread finishes the lookup,
 * writes into the request and nothing else, and the request's dispose frees
 * an answer nobody claimed when the last reference goes (pool.c's job
 * lifetime rules).
 *
 * Who touches the request when (as in fs.c): the future's owner in setup,
 * before the job is queued; the pool thread while resolve_run() runs; the
 * owner again once the join reported the job done (the pool's lock orders
 * the two); dispose after the last reference (the lock orders that too). */
#include <errno.h>
#include <netdb.h>
#include <stdalign.h>
#include <stdio.h>
#include <string.h>

#include "blocking/blocking.h"
#include "net/resolve.h"
#include "util/alloc.h"
#include "util/cx.h"
#include "weft/net.h"

enum { R_INIT = 0, R_RUNNING, R_DONE };       /* weft_resolve.state */

_Atomic(weft__resolve_hook_fn) weft__resolve_hook;

struct resolve_req {
    int family, socktype, flags;
    int result;                 /* 0 or a negative code */
    uint16_t port;
    bool has_host;
    bool claimed;               /* the owner took the answer */
    weft_addrlist *list;        /* the answer (weft__malloc), when result is 0 */
    char host[];                /* NUL-terminated copy */
};

/* getaddrinfo's error as weft's (weft/net.h, "Errors"). `sys` is errno as
 * getaddrinfo left it (EAI_SYSTEM). */
static int map_gai_error(int rc, int sys)
{
    switch (rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return WEFT_EAI_NONAME;
    case EAI_AGAIN:
        return WEFT_EAI_AGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_FAMILY:
        return -EAFNOSUPPORT;
    case EAI_SOCKTYPE:
        return -ESOCKTNOSUPPORT;
    case EAI_BADFLAGS:
    case EAI_SERVICE:
        return -EINVAL;
    case EAI_SYSTEM:
        return sys > 0 ? -sys : WEFT_EAI_FAIL;
    default:                    /* EAI_FAIL, and codes this libc adds */
        return WEFT_EAI_FAIL;
    }
}

/* The answer as one allocation: the list header, then the entries. */
static int list_from(const struct addrinfo *res, weft_addrlist **out)
{
    const size_t off = (sizeof(weft_addrlist) + alignof(weft_addrinfo) - 1) /
                       alignof(weft_addrinfo) * alignof(weft_addrinfo);
    const struct addrinfo *ai;
    weft_addrlist *list;
    size_t n = 0;

    for (ai = res; ai; ai = ai->ai_next)
        if (ai->ai_addr && ai->ai_addrlen <= sizeof(struct sockaddr_storage))
            n++;
    if (n == 0)
        return WEFT_EAI_NONAME;
    list = weft__malloc(off + n * sizeof(weft_addrinfo));
    if (list == NULL)
        return -ENOMEM;
    memset(list, 0, off + n * sizeof(weft_addrinfo));
    list->count = n;
    list->addrs = (weft_addrinfo *)(void *)((char *)list + off);
    n = 0;
    for (ai = res; ai; ai = ai->ai_next) {
        weft_addrinfo *a = &list->addrs[n];

        if (ai->ai_addr == NULL || ai->ai_addrlen > sizeof(struct sockaddr_storage))
            continue;
        memcpy(&a->addr, ai->ai_addr, ai->ai_addrlen);
        a->len = ai->ai_addrlen;
        a->family = ai->ai_family;
        a->socktype = ai->ai_socktype;
        a->protocol = ai->ai_protocol;
        n++;
    }
    *out = list;
    return 0;
}

/* On a pool thread: everything it touches is the request's. */
static void *resolve_run(void *arg)
{
    struct resolve_req *r = arg;
    weft__resolve_hook_fn hook;
    struct addrinfo hints, *res = NULL;
    char port[8];
    int rc;

    /* relaxed: tests set it before spawning; the pool's lock orders that */
    hook = atomic_load_explicit(&weft__resolve_hook, memory_order_relaxed);
    if (hook)
        hook(r->has_host ? r->host : NULL);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = r->family;
    hints.ai_socktype = r->socktype ? r->socktype : SOCK_STREAM;
    hints.ai_flags = (r->flags & ~AI_CANONNAME) | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", (unsigned)r->port);
    errno = 0;
    rc = getaddrinfo(r->has_host ? r->host : NULL, port, &hints, &res);
    if (rc != 0) {
        r->result = map_gai_error(rc, errno);
        return NULL;
    }
    r->result = list_from(res, &r->list);
    freeaddrinfo(res);
    return NULL;
}

/* Free an answer the future never took (its owner dropped it first). */
static void resolve_dispose(void *arg)
{
    struct resolve_req *r = arg;

    if (!r->claimed)
        weft_addrlist_free(r->list);
}

static void resolve_setup(void *req, const void *arg)
{
    struct resolve_req *r = req;
    const weft_resolve *f = arg;

    r->family = f->family;
    r->socktype = f->socktype;
    r->flags = f->flags;
    r->port = f->port;
    r->has_host = f->has_host;
    r->result = WEFT_EAI_FAIL;              /* fn always sets it */
    if (f->has_host)
        memcpy(r->host, f->host, strlen(f->host) + 1);
}

WEFT_API void weft_addrlist_free(weft_addrlist *list)
{
    weft__free(list);
}

WEFT_API void weft_resolve_init(weft_resolve *r, weft_blocking_pool *pool, const char *host,
                                uint16_t port, const weft_resolve_options *opt,
                                weft_addrlist **out)
{
    size_t len = host ? strlen(host) : 0;

    if (r == NULL)
        return;
    memset(r, 0, sizeof(*r));
    r->pool = pool;
    r->out = out;
    r->port = port;
    if (opt) {
        r->family = opt->family;
        r->socktype = opt->socktype;
        r->flags = opt->flags;
    }
    r->state = R_INIT;
    r->result = -EINVAL;
    if (out == NULL) {
        r->state = R_DONE;
    } else if (len >= sizeof(r->host)) {
        r->result = -ENAMETOOLONG;
        r->state = R_DONE;
    } else if (host) {
        memcpy(r->host, host, len + 1);
        r->has_host = 1;
    }
}

WEFT_API weft_poll weft_resolve_poll(weft_resolve *r, weft_context *cx, int *result)
{
    if (r == NULL) {                 /* a NULL future: only *result */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (r->state != R_DONE && weft__cx_bad(cx)) {
        if (result)                  /* misuse (weft/core.h): nothing started */
            *result = -EINVAL;
        return WEFT_READY;
    }
    return weft__resolve_poll(r, cx, result);
}

weft_poll weft__resolve_poll(weft_resolve *r, weft_context *cx, int *result)
{
    struct resolve_req *req;
    int err, jr;

    if (r->state == R_INIT) {
        if (r->out == NULL) {               /* zeroed */
            r->result = -EINVAL;
            r->state = R_DONE;
            goto done;
        }
        err = weft__blocking_spawn_req(r->pool, resolve_run,
                                       sizeof(struct resolve_req) +
                                           (r->has_host ? strlen(r->host) + 1 : 0),
                                       SIZE_MAX, resolve_setup, r, resolve_dispose, &r->job);
        if (err < 0) {
            r->result = err;
            r->state = R_DONE;
            goto done;
        }
        weft_blocking_join_init(&r->join, r->job, NULL);
        r->state = R_RUNNING;
    }
    if (r->state == R_RUNNING) {
        if (weft__blocking_join_poll(&r->join, cx, &jr) == WEFT_PENDING)
            return WEFT_PENDING;
        if (jr == 0) {
            req = weft__blocking_job_req(r->job);
            r->result = req->result;
            if (req->result == 0) {
                req->claimed = true;
                *r->out = req->list;
            }
        } else {
            r->result = jr;                 /* -ECANCELED */
        }
        weft_blocking_join_drop(&r->join);
        weft_blocking_job_drop(r->job);
        r->job = NULL;
        r->state = R_DONE;
    }
done:
    if (result)
        *result = r->result;
    return WEFT_READY;
}

WEFT_API void weft_resolve_drop(weft_resolve *r)
{
    if (r == NULL)
        return;
    if (r->state == R_RUNNING) {
        weft_blocking_join_drop(&r->join);
        weft_blocking_job_drop(r->job);     /* the lookup runs on; dispose frees */
        r->job = NULL;
    }
    r->result = -EINVAL;
    r->state = R_DONE;
}

static weft_poll resolve_thunk(void *self, weft_context *cx, void *out)
{
    return weft_resolve_poll(self, cx, out);
}

static void resolve_drop_thunk(void *self)
{
    weft_resolve_drop(self);
}

WEFT_API const weft_future_type weft_resolve_future = {
    resolve_thunk, resolve_drop_thunk, sizeof(weft_resolve), _Alignof(weft_resolve),
    sizeof(int), _Alignof(int), "weft_resolve"
};
