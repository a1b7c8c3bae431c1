/* SPDX-License-Identifier: MIT */
/* Blocking-style calls on the runtime's own futures (weft/coro.h):
 * channels and oneshots, sockets, buffered streams, accept and connect,
 * locks, notify, barrier, cancel tokens, groups, child processes. Each is
 * a thunk over the future's poll and drop, and an await of it
 * (weft__co_await, coro.c, which applies the coroutine's deadline), after
 * CO_CALL names the call for the task dump. The awaits themselves, the
 * switch, and the calls on time and tasks (weft_co_sleep, weft_co_yield,
 * weft_co_join, weft_co_await(_timeout)) are in coro.c, inlining the
 * await; calls.c and fs.c hold the rest. */
#include <errno.h>
#include <stddef.h>

#include "coro/coro.h"

/* Name the public call the coroutine is in (weft__co_mark()), as coro.c's
 * own calls do. */
#define CO_CALL()                                                             \
    static const weft_async_site co_site_ = { __func__, NULL, 0 };            \
    weft__co_mark(&co_site_)

struct send_await {
    weft_chan_send f;
    int result;
};

static weft_poll send_thunk(void *self, weft_context *cx, void *out)
{
    struct send_await *a = self;

    (void)out;
    return weft_chan_send_poll(&a->f, cx, &a->result);
}

static void send_drop(void *self)
{
    weft_chan_send_drop(&((struct send_await *)self)->f);
}

WEFT_API int weft_co_chan_send(weft_chan *ch, const void *msg)
{
    CO_CALL();
    struct send_await a;
    int err;

    weft_chan_send_init(&a.f, ch, msg);
    a.result = 0;
    err = weft__co_await(send_thunk, send_drop, &a, NULL);
    return err < 0 ? err : a.result;
}

struct recv_await {
    weft_chan_recv f;
    int result;
};

static weft_poll recv_thunk(void *self, weft_context *cx, void *out)
{
    struct recv_await *a = self;

    (void)out;
    return weft_chan_recv_poll(&a->f, cx, &a->result);
}

static void recv_drop(void *self)
{
    weft_chan_recv_drop(&((struct recv_await *)self)->f);
}

WEFT_API int weft_co_chan_recv(weft_chan *ch, void *dst)
{
    CO_CALL();
    struct recv_await a;
    int err;

    weft_chan_recv_init(&a.f, ch, dst);
    a.result = 0;
    err = weft__co_await(recv_thunk, recv_drop, &a, NULL);
    return err < 0 ? err : a.result;
}

struct oneshot_await {
    weft_oneshot_recv f;
    int result;
};

static weft_poll oneshot_thunk(void *self, weft_context *cx, void *out)
{
    struct oneshot_await *a = self;

    (void)out;
    return weft_oneshot_recv_poll(&a->f, cx, &a->result);
}

static void oneshot_drop(void *self)
{
    weft_oneshot_recv_drop(&((struct oneshot_await *)self)->f);
}

WEFT_API int weft_co_oneshot_recv(weft_oneshot_rx *rx, void *dst)
{
    CO_CALL();
    struct oneshot_await a;
    int err;

    weft_oneshot_recv_init(&a.f, rx, dst);
    a.result = 0;
    err = weft__co_await(oneshot_thunk, oneshot_drop, &a, NULL);
    return err < 0 ? err : a.result;
}

/* ---- Sockets ------------------------------------------------------------------------ */
struct io_await {
    weft_io_op op;
    ssize_t result;
};

static weft_poll io_thunk(void *self, weft_context *cx, void *out)
{
    struct io_await *a = self;

    (void)out;
    return weft_io_op_poll(&a->op, cx, &a->result);
}

static void io_drop(void *self)
{
    weft_io_op_drop(&((struct io_await *)self)->op);
}

/* await a read/write op set up in a->op */
static ssize_t io_await_op(struct io_await *a)
{
    int err;

    a->result = 0;
    err = weft__co_await(io_thunk, io_drop, a, NULL);
    return err < 0 ? err : a->result;
}

WEFT_API ssize_t weft_co_read(weft_socket *s, void *buf, size_t len)
{
    CO_CALL();
    struct io_await a;

    weft_read_init(&a.op, s, buf, len);
    return io_await_op(&a);
}

WEFT_API ssize_t weft_co_read_exact(weft_socket *s, void *buf, size_t len)
{
    CO_CALL();
    struct io_await a;

    weft_read_exact_init(&a.op, s, buf, len);
    return io_await_op(&a);
}

WEFT_API ssize_t weft_co_write(weft_socket *s, const void *buf, size_t len)
{
    CO_CALL();
    struct io_await a;

    weft_write_init(&a.op, s, buf, len);
    return io_await_op(&a);
}

WEFT_API ssize_t weft_co_write_all(weft_socket *s, const void *buf, size_t len)
{
    CO_CALL();
    struct io_await a;

    weft_write_all_init(&a.op, s, buf, len);
    return io_await_op(&a);
}

/* ---- Buffered streams -------------------------------------------------------------- */
static ssize_t bufread_await(weft_bufread *f)
{
    ssize_t n = 0;
    int err = weft__co_await(weft_bufread_future.poll, weft_bufread_future.drop, f, &n);

    return err < 0 ? err : n;
}

static ssize_t bufwrite_await(weft_bufwrite *f)
{
    ssize_t n = 0;
    int err = weft__co_await(weft_bufwrite_future.poll, weft_bufwrite_future.drop, f, &n);

    return err < 0 ? err : n;
}

WEFT_API ssize_t weft_co_read_line(weft_bufreader *r, void *dst, size_t max)
{
    CO_CALL();
    weft_bufread f;

    weft_bufreader_read_line_init(&f, r, dst, max);
    return bufread_await(&f);
}

WEFT_API ssize_t weft_co_read_until(weft_bufreader *r, int delim, void *dst, size_t max)
{
    CO_CALL();
    weft_bufread f;

    weft_bufreader_read_until_init(&f, r, delim, dst, max);
    return bufread_await(&f);
}

WEFT_API ssize_t weft_co_bufread_exact(weft_bufreader *r, void *dst, size_t n)
{
    CO_CALL();
    weft_bufread f;

    weft_bufreader_read_exact_init(&f, r, dst, n);
    return bufread_await(&f);
}

WEFT_API ssize_t weft_co_read_frame(weft_bufreader *r, void *dst, size_t max)
{
    CO_CALL();
    weft_bufread f;

    weft_bufreader_read_frame_init(&f, r, dst, max);
    return bufread_await(&f);
}

WEFT_API ssize_t weft_co_bufwrite(weft_bufwriter *w, const void *src, size_t len)
{
    CO_CALL();
    weft_bufwrite f;

    weft_bufwriter_write_init(&f, w, src, len);
    return bufwrite_await(&f);
}

WEFT_API ssize_t weft_co_write_frame(weft_bufwriter *w, const void *payload, size_t len)
{
    CO_CALL();
    weft_bufwrite f;

    weft_bufwriter_write_frame_init(&f, w, payload, len);
    return bufwrite_await(&f);
}

WEFT_API ssize_t weft_co_flush(weft_bufwriter *w)
{
    CO_CALL();
    weft_bufwrite f;

    weft_bufwriter_flush_init(&f, w);
    return bufwrite_await(&f);
}

struct conn_await {
    weft_io_op op;
    int result;
    bool connect;
};

static weft_poll conn_thunk(void *self, weft_context *cx, void *out)
{
    struct conn_await *a = self;

    (void)out;
    if (a->connect)
        return weft_connect_poll(&a->op, cx, &a->result);
    return weft_accept_poll(&a->op, cx, &a->result);
}

static void conn_drop(void *self)
{
    weft_io_op_drop(&((struct conn_await *)self)->op);
}

WEFT_API int weft_co_accept(weft_socket *l, weft_socket **out)
{
    CO_CALL();
    struct conn_await a;
    int err;

    weft_accept_init(&a.op, l, out, NULL, NULL);
    a.result = 0;
    a.connect = false;
    err = weft__co_await(conn_thunk, conn_drop, &a, NULL);
    return err < 0 ? err : a.result;
}

WEFT_API int weft_co_connect(weft_runtime *rt, const struct sockaddr *addr, socklen_t len,
                             uint64_t timeout_ms, weft_socket **out)
{
    CO_CALL();
    struct conn_await a;
    int err, saved_errno;

    /* a connect starts at its init (socket(), connect()): outside a
     * coroutine, or once it is cancelled, the call must do nothing, so it
     * returns before (coro.h: -EINVAL, -ECANCELED at once) */
    if (!weft_co_is_coroutine())
        return -EINVAL;
    if (weft_co_cancelled())
        return -ECANCELED;
    saved_errno = weft__co_errno_get();     /* the init's connect() sets EINPROGRESS */
    weft_connect_init(&a.op, rt, addr, len, timeout_ms, out);
    weft__co_errno_set(saved_errno);
    a.result = 0;
    a.connect = true;
    err = weft__co_await(conn_thunk, conn_drop, &a, NULL);
    return err < 0 ? err : a.result;
}

/* ---- Locks, notify, barrier, tokens, groups: futures with an int result --------------- */
/* One await struct, thunk and drop per future type FUT (FUT_poll taking
 * `int *result`, FUT_drop); a wrapper inits a.f and calls FUT_run(&a). */
#define CO_INT_FUTURE(FUT)                                                    \
    struct FUT##_await {                                                      \
        FUT f;                                                                \
        int result;                                                           \
    };                                                                        \
    static weft_poll FUT##_thunk(void *self, weft_context *cx, void *out)     \
    {                                                                         \
        struct FUT##_await *a = self;                                         \
        (void)out;                                                            \
        return FUT##_poll(&a->f, cx, &a->result);                             \
    }                                                                         \
    static void FUT##_thunk_drop(void *self)                                  \
    {                                                                         \
        FUT##_drop(&((struct FUT##_await *)self)->f);                         \
    }                                                                         \
    static int FUT##_run(struct FUT##_await *a)                               \
    {                                                                         \
        int err;                                                              \
        a->result = 0;                                                        \
        err = weft__co_await(FUT##_thunk, FUT##_thunk_drop, a, NULL);               \
        return err < 0 ? err : a->result;                                     \
    }

CO_INT_FUTURE(weft_mutex_lock)
CO_INT_FUTURE(weft_sem_acquire)
CO_INT_FUTURE(weft_notify_wait)
CO_INT_FUTURE(weft_rwlock_read)
CO_INT_FUTURE(weft_rwlock_write)
CO_INT_FUTURE(weft_barrier_wait)
CO_INT_FUTURE(weft_cancel_wait)
CO_INT_FUTURE(weft_group_wait)

WEFT_API int weft_co_mutex_lock(weft_mutex *m)
{
    CO_CALL();
    struct weft_mutex_lock_await a;

    weft_mutex_lock_init(&a.f, m);
    return weft_mutex_lock_run(&a);
}

WEFT_API int weft_co_sem_acquire(weft_sem *s, size_t n)
{
    CO_CALL();
    struct weft_sem_acquire_await a;

    weft_sem_acquire_init(&a.f, s, n);
    return weft_sem_acquire_run(&a);
}

WEFT_API int weft_co_notify_wait(weft_notify *n)
{
    CO_CALL();
    struct weft_notify_wait_await a;

    weft_notify_wait_init(&a.f, n);
    return weft_notify_wait_run(&a);
}

WEFT_API int weft_co_rwlock_read(weft_rwlock *rw)
{
    CO_CALL();
    struct weft_rwlock_read_await a;

    weft_rwlock_read_init(&a.f, rw);
    return weft_rwlock_read_run(&a);
}

WEFT_API int weft_co_rwlock_write(weft_rwlock *rw)
{
    CO_CALL();
    struct weft_rwlock_write_await a;

    weft_rwlock_write_init(&a.f, rw);
    return weft_rwlock_write_run(&a);
}

WEFT_API int weft_co_barrier_wait(weft_barrier *b)
{
    CO_CALL();
    struct weft_barrier_wait_await a;

    weft_barrier_wait_init(&a.f, b);
    return weft_barrier_wait_run(&a);
}

WEFT_API int weft_co_cancel_wait(weft_cancel *t)
{
    CO_CALL();
    struct weft_cancel_wait_await a;

    weft_cancel_wait_init(&a.f, t);
    return weft_cancel_wait_run(&a);
}

WEFT_API int weft_co_group_wait(weft_group *g)
{
    CO_CALL();
    struct weft_group_wait_await a;

    weft_group_wait_init(&a.f, g);
    return weft_group_wait_run(&a);
}

/* ---- Child processes ------------------------------------------------------------- */
WEFT_API int weft_co_process_wait(weft_process *p, weft_process_status *st)
{
    CO_CALL();
    weft_process_wait w;
    int res = 0, err;

    weft_process_wait_init(&w, p, st);
    err = weft__co_await(weft_process_wait_future.poll, weft_process_wait_future.drop, &w, &res);
    return err < 0 ? err : res;
}
