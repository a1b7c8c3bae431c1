/* SPDX-License-Identifier: MIT */
/* More blocking-style calls (weft/coro.h, "Deadlines, select, watch and
 * broadcast, UDP, blocking pool"): each is an await (weft__co_await, which
 * applies the coroutine's deadline) of the future its comment names. */
#include <errno.h>
#include <string.h>

#include "coro/coro.h"
#include "util/alloc.h"

/* ---- Select -------------------------------------------------------------------- */
struct select_await {
    weft_select s;
    int result;
};

static weft_poll select_thunk(void *self, weft_context *cx, void *out)
{
    struct select_await *a = self;

    (void)out;
    return weft_select_poll(&a->s, cx, &a->result);
}

static void select_drop(void *self)
{
    weft_select_drop(&((struct select_await *)self)->s);
}

static int co_select_at(weft_future_ref *refs, size_t n, const weft_async_site *site)
{
    struct select_await a;
    int err;

    /* the select owns the futures from its init: an invalid set (n == 0,
     * NULL refs, a bad slot) completes at the first poll with -EINVAL, and
     * its drop drops whatever it owns */
    weft_select_init(&a.s, refs, n);
    /* An invalid set is done at init and owns nothing: report it as
     * -EINVAL before the await, which in an aborted coroutine would answer
     * -ECANCELED, the code that says every future was dropped (coro.h),
     * over futures that are still the caller's. (Outside a coroutine the
     * await's -EINVAL is right either way.) weft_select is weft's own: its
     * private `done` is read here, in the same library. */
    if (a.s.done && a.s.refs == NULL)
        return a.s.result;
    a.result = 0;
    err = weft__co_await_at(select_thunk, select_drop, &a, NULL, site);
    return err < 0 ? err : a.result;
}

WEFT_API int weft_co_select(weft_future_ref *refs, size_t n)
{
    WEFT__CO_SITE_DECL(site);

    return co_select_at(refs, n, &site);
}

#define SELECT_INLINE 8

WEFT_API int weft_co_chan_select(weft_chan *const *chans, void *const *dsts, size_t n,
                                 size_t *which)
{
    WEFT__CO_SITE_DECL(site);
    weft_chan_recv recv_in[SELECT_INLINE];
    weft_future_ref refs_in[SELECT_INLINE];
    int outs_in[SELECT_INLINE];
    weft_chan_recv *recv = recv_in;
    weft_future_ref *refs = refs_in;
    int *outs = outs_in;
    void *heap = NULL;
    int win;

    if (chans == NULL || dsts == NULL || which == NULL || n == 0 || n > WEFT_CO_SELECT_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (chans[i] == NULL || dsts[i] == NULL)
            return -EINVAL;
    if (!weft_co_is_coroutine())
        return -EINVAL;
    if (n > SELECT_INLINE) {
        /* one block: the receives, then the refs, then the results (each
         * array's alignment divides the sizes before it) */
        size_t rs = n * sizeof(*recv), fs = n * sizeof(*refs);

        heap = weft__malloc(rs + fs + n * sizeof(*outs));
        if (heap == NULL)
            return -ENOMEM;
        recv = heap;
        refs = (weft_future_ref *)(void *)((char *)heap + rs);
        outs = (int *)(void *)((char *)heap + rs + fs);
    }
    for (size_t i = 0; i < n; i++) {
        weft_chan_recv_init(&recv[i], chans[i], dsts[i]);
        outs[i] = 0;
        memset(&refs[i], 0, sizeof(refs[i]));
        refs[i].type = &weft_chan_recv_future;
        refs[i].future = &recv[i];
        refs[i].out = &outs[i];
    }
    win = co_select_at(refs, n, &site);
    if (win >= 0) {
        *which = (size_t)win;
        win = outs[win];           /* that receive's result: 0 or -EPIPE */
    }
    weft__free(heap);
    return win;
}

/* ---- Watch and broadcast ------------------------------------------------------- */
struct watch_await {
    weft_watch_changed f;
    int result;
};

static weft_poll watch_thunk(void *self, weft_context *cx, void *out)
{
    struct watch_await *a = self;

    (void)out;
    return weft_watch_changed_poll(&a->f, cx, &a->result);
}

static void watch_drop(void *self)
{
    weft_watch_changed_drop(&((struct watch_await *)self)->f);
}

WEFT_API int weft_co_watch_changed(weft_watch_rx *rx, void *dst)
{
    WEFT__CO_SITE_DECL(site);
    struct watch_await a;
    int err;

    weft_watch_changed_init(&a.f, rx, dst);
    a.result = 0;
    err = weft__co_await_at(watch_thunk, watch_drop, &a, NULL, &site);
    return err < 0 ? err : a.result;
}

struct bcast_await {
    weft_bcast_recv f;
    int result;
};

static weft_poll bcast_thunk(void *self, weft_context *cx, void *out)
{
    struct bcast_await *a = self;

    (void)out;
    return weft_bcast_recv_poll(&a->f, cx, &a->result);
}

static void bcast_drop(void *self)
{
    weft_bcast_recv_drop(&((struct bcast_await *)self)->f);
}

WEFT_API int weft_co_bcast_recv(weft_bcast_rx *rx, void *dst, uint64_t *missed)
{
    WEFT__CO_SITE_DECL(site);
    struct bcast_await a;
    int err;

    weft_bcast_recv_init(&a.f, rx, dst, missed);
    a.result = 0;
    err = weft__co_await_at(bcast_thunk, bcast_drop, &a, NULL, &site);
    return err < 0 ? err : a.result;
}

/* ---- UDP ------------------------------------------------------------------------ */
struct dgram_await {
    weft_io_op op;
    ssize_t result;
};

static weft_poll dgram_thunk(void *self, weft_context *cx, void *out)
{
    struct dgram_await *a = self;

    (void)out;
    return weft_io_op_poll(&a->op, cx, &a->result);
}

static void dgram_drop(void *self)
{
    weft_io_op_drop(&((struct dgram_await *)self)->op);
}

static ssize_t dgram_run(struct dgram_await *a, const weft_async_site *site)
{
    int err;

    a->result = 0;
    err = weft__co_await_at(dgram_thunk, dgram_drop, a, NULL, site);
    return err < 0 ? err : a->result;
}

WEFT_API ssize_t weft_co_recv_from(weft_socket *s, void *buf, size_t len,
                                   struct sockaddr_storage *from, socklen_t *fromlen)
{
    WEFT__CO_SITE_DECL(site);
    struct dgram_await a;

    weft_recv_from_init(&a.op, s, buf, len, from, fromlen);
    return dgram_run(&a, &site);
}

WEFT_API ssize_t weft_co_send_to(weft_socket *s, const void *buf, size_t len,
                                 const struct sockaddr *to, socklen_t tolen)
{
    WEFT__CO_SITE_DECL(site);
    struct dgram_await a;

    weft_send_to_init(&a.op, s, buf, len, to, tolen);
    return dgram_run(&a, &site);
}

/* ---- Blocking pool ----------------------------------------------------------------- */
struct bjoin_await {
    weft_blocking_join j;
    int result;
};

static weft_poll bjoin_thunk(void *self, weft_context *cx, void *out)
{
    struct bjoin_await *a = self;

    (void)out;
    return weft_blocking_join_poll(&a->j, cx, &a->result);
}

static void bjoin_drop(void *self)
{
    weft_blocking_join_drop(&((struct bjoin_await *)self)->j);
}

WEFT_API int weft_co_blocking(weft_blocking_pool *pool, void *(*fn)(void *arg), void *arg,
                              void **ret)
{
    WEFT__CO_SITE_DECL(site);
    struct bjoin_await a;
    weft_blocking_job *job = NULL;
    uint64_t dl = weft_co_deadline();
    int err;

    if (fn == NULL || !weft_co_is_coroutine())
        return -EINVAL;
    /* nothing started when the call could only fail: fn owns `arg` only
     * once it runs */
    if (weft_co_cancelled())
        return -ECANCELED;
    if (dl != 0 && weft_now_ms() >= dl)
        return -ETIMEDOUT;
    err = weft_blocking_spawn(pool, fn, arg, &job);
    if (err < 0)
        return err;
    weft_blocking_join_init(&a.j, job, ret);
    a.result = 0;
    err = weft__co_await_at(bjoin_thunk, bjoin_drop, &a, NULL, &site);
    weft_blocking_job_drop(job);            /* detaches a job still running */
    return err < 0 ? err : a.result;
}
