/* SPDX-License-Identifier: MIT */
/* Connecting by name: a lookup (resolve.c), then one connect future per
 * address, in turn, until one takes or the deadline passes.
 *
 *   C_INIT     nothing started (connect_host: the name is in `resolve`)
 *   C_RESOLVE  the lookup runs; `sleep` holds the deadline (if any)
 *   C_START    about to start the attempt at `next`
 *   C_CONNECT  `conn` is under way
 *   C_DONE     `result` is final; nothing is held
 *
 * The deadline is fixed at init. The lookup cannot be interrupted, so a
 * deadline that passes first drops the resolve future (the job finishes on
 * its own). Each attempt gets its share of the time left (attempt_ms()) as
 * the connect future's own timeout, so no timer of ours runs meanwhile. */
#include <errno.h>
#include <string.h>

#include "net/handle.h"
#include "net/resolve.h"
#include "time/driver.h"
#include "util/cx.h"
#include "weft/blocking.h"
#include "weft/net.h"
#include "weft/timer.h"

enum { C_INIT = 0, C_RESOLVE, C_START, C_CONNECT, C_DONE };

#define ATTEMPT_MIN_MS 2000     /* an attempt's share is never less (Go's dialer) */

static uint64_t deadline_of(uint64_t timeout_ms)
{
    uint64_t now;

    if (timeout_ms == 0)
        return 0;
    /* +1: weft_now_ms() rounds down, so "now + timeout" could be reached up
     * to a millisecond less than timeout_ms after init (as weft_sleep_init()
     * rounds now up): the limit is never shorter than asked */
    now = weft_now_ms() + 1;
    return timeout_ms > UINT64_MAX - now ? UINT64_MAX : now + timeout_ms;
}

static void common_init(weft_connect_host *c, weft_runtime *rt, uint64_t timeout_ms,
                        weft_socket **out)
{
    memset(c, 0, sizeof(*c));
    c->rt = rt;
    c->out = out;
    c->deadline = deadline_of(timeout_ms);
    c->result = -EINVAL;
    c->last_err = -EINVAL;
    c->state = C_INIT;
}

WEFT_API void weft_connect_host_init(weft_connect_host *c, weft_runtime *rt, const char *host,
                                     uint16_t port, uint64_t timeout_ms, weft_socket **out)
{
    if (c == NULL)
        return;
    common_init(c, rt, timeout_ms, out);
    if (out == NULL || host == NULL) {
        c->state = C_DONE;
    } else if (strlen(host) >= WEFT_RESOLVE_HOST_MAX) {
        c->result = -ENAMETOOLONG;
        c->state = C_DONE;
    } else {
        /* pool and out are filled in at the first poll */
        weft_resolve_init(&c->resolve, NULL, host, port, NULL, &c->list);
    }
}

WEFT_API void weft_connect_addrs_init(weft_connect_host *c, weft_runtime *rt,
                                      const weft_addrinfo *addrs, size_t count,
                                      uint64_t timeout_ms, weft_socket **out)
{
    if (c == NULL)
        return;
    common_init(c, rt, timeout_ms, out);
    c->addrs = addrs;
    c->count = count;
    c->state = out && addrs && count ? C_START : C_DONE;
}

/* The time the next attempt may take (ms; 0: no limit), or -ETIMEDOUT when
 * none is left. */
static int64_t attempt_ms(const weft_connect_host *c)
{
    uint64_t now, left, share;

    if (c->deadline == 0)
        return 0;
    now = weft_now_ms();
    if (now >= c->deadline)
        return -ETIMEDOUT;
    left = c->deadline - now;
    share = left / (c->count - c->next);
    if (share < ATTEMPT_MIN_MS)
        share = left < ATTEMPT_MIN_MS ? left : ATTEMPT_MIN_MS;
    return share > INT64_MAX ? INT64_MAX : (int64_t)share;
}

WEFT_API weft_poll weft_connect_host_poll(weft_connect_host *c, weft_context *cx, int *result)
{
    weft_blocking_pool *pool;
    weft_runtime *rt;
    int64_t ms;
    int r;

    if (c == NULL) {                 /* a NULL future: only *result */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (c->state != C_DONE && weft__cx_bad(cx)) {
        if (result)                  /* misuse (weft/core.h): nothing started */
            *result = -EINVAL;
        return WEFT_READY;
    }
    switch (c->state) {
    case C_INIT:
        rt = c->rt ? c->rt : weft_runtime_current();
        if (c->out == NULL || rt == NULL) {         /* zeroed, or off a worker */
            c->result = -EINVAL;
            goto done;
        }
        r = weft_blocking_default(rt, &pool);
        if (r < 0) {
            c->result = r;
            goto done;
        }
        /* set here, not at init: the future may have moved since (a
         * spawn copies it) */
        c->resolve.pool = pool;
        c->resolve.out = &c->list;
        if (c->deadline)
            weft_sleep_until_init(&c->sleep, c->deadline);
        c->state = C_RESOLVE;
        /* fall through */
    case C_RESOLVE:
        if (weft__resolve_poll(&c->resolve, cx, &r) == WEFT_PENDING) {
            if (c->deadline == 0 || weft__sleep_poll(&c->sleep, cx) == WEFT_PENDING)
                return WEFT_PENDING;
            weft_resolve_drop(&c->resolve);        /* the lookup ends on its own */
            r = -ETIMEDOUT;
        }
        if (c->deadline)
            weft_sleep_drop(&c->sleep);
        if (r < 0) {
            c->result = r;
            goto done;
        }
        c->addrs = c->list->addrs;
        c->count = c->list->count;
        c->next = 0;
        c->state = C_START;
        /* fall through */
    case C_START:
    case C_CONNECT:
        for (;;) {
            if (c->state == C_START) {
                const weft_addrinfo *a;

                if (c->next >= c->count) {
                    c->result = c->last_err;
                    goto done;
                }
                ms = attempt_ms(c);
                if (ms < 0) {
                    c->result = (int)ms;
                    goto done;
                }
                a = &c->addrs[c->next];
                weft_connect_init(&c->conn, c->rt, (const struct sockaddr *)&a->addr, a->len,
                                  (uint64_t)ms, c->out);
                c->state = C_CONNECT;
            }
            if (weft__connect_poll(&c->conn, cx, &r) == WEFT_PENDING)
                return WEFT_PENDING;
            weft_io_op_drop(&c->conn);
            if (r == 0) {
                c->result = 0;
                goto done;
            }
            c->last_err = r;
            c->next++;
            c->state = C_START;
        }
    default:
        break;
    }
    goto out;
done:
    weft_connect_host_drop(c);                      /* releases the answer */
out:
    if (result)
        *result = c->result;
    return WEFT_READY;
}

WEFT_API void weft_connect_host_drop(weft_connect_host *c)
{
    if (c == NULL)
        return;
    switch (c->state) {
    case C_RESOLVE:
        weft_resolve_drop(&c->resolve);
        if (c->deadline)
            weft_sleep_drop(&c->sleep);
        break;
    case C_CONNECT:
        weft_io_op_drop(&c->conn);                  /* closes a half-made socket */
        break;
    default:
        break;
    }
    if (c->list) {
        weft_addrlist_free(c->list);
        c->list = NULL;
    }
    c->addrs = NULL;
    c->count = 0;
    c->state = C_DONE;
}

static weft_poll connect_host_thunk(void *self, weft_context *cx, void *out)
{
    return weft_connect_host_poll(self, cx, out);
}

static void connect_host_drop_thunk(void *self)
{
    weft_connect_host_drop(self);
}

WEFT_API const weft_future_type weft_connect_host_future = {
    connect_host_thunk, connect_host_drop_thunk, sizeof(weft_connect_host),
    _Alignof(weft_connect_host), sizeof(int), _Alignof(int), "weft_connect_host"
};
