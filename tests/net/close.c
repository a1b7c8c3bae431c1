/* SPDX-License-Identifier: MIT */
/* Closing a socket while a task waits on it (a read, an accept, a write on a
 * full send buffer): the waiting future completes with -EBADF, nothing is
 * used after it is freed (ASan), nothing leaks (the harness). Closing before
 * the future's first poll, and racing the poll, too. And 1,000 accept/close
 * cycles that leave no descriptor behind. */
#include "net_test.h"


enum { W_READ, W_ACCEPT, W_WRITE };

static int pending_flag;              /* the waiter has returned PENDING once */
static char rbuf[256];
static char *wbuf;
#define WBYTES (64u << 20)

/* Waits on its future (set up before the spawn) and outputs the result. */
typedef struct waiter {
    int kind;
    weft_io_op op;
    weft_socket *accepted;
} waiter;

static weft_poll waiter_poll(waiter *w, weft_context *cx, ssize_t *out)
{
    weft_poll p;
    int ar = 0;
    ssize_t r = 0;

    if (w->kind == W_ACCEPT)
        p = weft_accept_poll(&w->op, cx, &ar);
    else
        p = weft_io_op_poll(&w->op, cx, &r);
    if (p == WEFT_PENDING) {
        __atomic_store_n(&pending_flag, 1, __ATOMIC_RELEASE);
        return WEFT_PENDING;
    }
    if (w->kind == W_ACCEPT) {
        r = ar;
        if (ar == 0)
            weft_socket_close(w->accepted);
    }
    *out = r;
    return WEFT_READY;
}

static void waiter_drop(waiter *w)
{
    weft_io_op_drop(&w->op);
}

WEFT_DEFINE_FUTURE(waiter, waiter_poll, waiter_drop, ssize_t);

/* The future a waiter of `kind` waits on: on the listener (accept), the
 * client (read) or the server side of a pair whose peer never reads. */
static void waiter_init(waiter *w, int kind, weft_socket *l, weft_socket *c, weft_socket *s)
{
    memset(w, 0, sizeof(*w));
    w->kind = kind;
    if (kind == W_ACCEPT) {
        weft_accept_init(&w->op, l, &w->accepted, NULL, NULL);
    } else if (kind == W_READ) {
        weft_read_init(&w->op, c, rbuf, sizeof(rbuf));
    } else {
        nt_small_buffers(weft_socket_fd(s));
        nt_small_buffers(weft_socket_fd(c));
        weft_write_all_init(&w->op, s, wbuf, WBYTES);
    }
}

/* Multi-thread: wait until the waiter is pending, close from this thread. */
static void close_while_pending(int kind, bool wait_pending)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *l, *c, *s, *target;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_join *j;
    waiter w;
    ssize_t out = 1;

    if (kind == W_WRITE && wbuf == NULL) {
        wbuf = calloc(1, WBYTES);
        ASSERT(wbuf);
    }
    nt_listen(rt, &l, &addr, &len);
    nt_tcp_pair(rt, &c, &s);
    waiter_init(&w, kind, l, c, s);
    target = kind == W_ACCEPT ? l : kind == W_READ ? c : s;
    __atomic_store_n(&pending_flag, 0, __ATOMIC_RELAXED);
    ASSERT_OK(weft_spawn(rt, &waiter_future, &w, &j));
    if (wait_pending)
        ASSERT(harness_wait_flag(&pending_flag, NT_WATCHDOG_MS));
    ASSERT_OK(weft_socket_close(target));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(-EBADF, out);
    weft_join_drop(j);
    if (target != l)
        ASSERT_OK(weft_socket_close(l));
    if (target != c)
        ASSERT_OK(weft_socket_close(c));
    if (target != s)
        ASSERT_OK(weft_socket_close(s));
    ASSERT_OK(weft_runtime_run(rt));
    weft_runtime_free(rt);
}

TEST(close_wakes_pending_read_with_ebadf)
{
    close_while_pending(W_READ, true);
}

TEST(close_wakes_pending_accept_with_ebadf)
{
    close_while_pending(W_ACCEPT, true);
}

TEST(close_wakes_pending_write_all_with_ebadf)
{
    close_while_pending(W_WRITE, true);
    free(wbuf);
    wbuf = NULL;
}

/* The close races the first poll (before it, during it, after it): the
 * answer is -EBADF every time. */
TEST(close_races_first_poll)
{
    size_t n = harness_scale(300);

    wbuf = calloc(1, WBYTES);
    ASSERT(wbuf);
    for (size_t i = 0; i < n; i++)
        close_while_pending((int)(i % 3), false);
    free(wbuf);
    wbuf = NULL;
}

/* Current-thread: a second task closes while the first waits. */
typedef struct closer {
    weft_socket *target;
} closer;

static weft_poll closer_poll(closer *k, weft_context *cx, void *out)
{
    (void)cx;
    (void)out;
    ASSERT_OK(weft_socket_close(k->target));
    ASSERT_EQ(-EBADF, weft_socket_close(NULL));
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(closer, closer_poll, NULL);

TEST(close_from_another_task_current_thread)
{
    wbuf = calloc(1, WBYTES);
    ASSERT(wbuf);
    for (int kind = W_READ; kind <= W_WRITE; kind++) {
        weft_runtime *rt = nt_runtime(true);
        weft_socket *l, *c, *s, *target;
        struct sockaddr_storage addr;
        socklen_t len;
        weft_join *j;
        waiter w;
        ssize_t out = 1;

        nt_listen(rt, &l, &addr, &len);
        nt_tcp_pair(rt, &c, &s);
        waiter_init(&w, kind, l, c, s);
        target = kind == W_ACCEPT ? l : kind == W_READ ? c : s;
        ASSERT_OK(weft_spawn(rt, &waiter_future, &w, &j));
        ASSERT_OK(weft_spawn_detached(rt, &closer_future, &(closer){ target }));
        ASSERT_OK(weft_runtime_run(rt));
        ASSERT_OK(weft_join_try(j, &out));
        ASSERT_EQ(-EBADF, out);
        weft_join_drop(j);
        if (target != l)
            ASSERT_OK(weft_socket_close(l));
        if (target != c)
            ASSERT_OK(weft_socket_close(c));
        if (target != s)
            ASSERT_OK(weft_socket_close(s));
        weft_runtime_free(rt);
    }
    free(wbuf);
    wbuf = NULL;
}

/* A future made before the close and polled after it: -EBADF, and a
 * second close of a handle is not possible (it is freed), so only NULL. */
TEST(future_made_before_close_polled_after)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *c, *s;
    weft_io_op r, w;
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);
    ssize_t out = 1;

    nt_tcp_pair(rt, &c, &s);
    weft_read_init(&r, c, rbuf, sizeof(rbuf));
    weft_write_init(&w, c, "x", 1);
    ASSERT_OK(weft_socket_close(c));
    ASSERT_EQ(WEFT_READY, weft_io_op_poll(&r, &cx, &out));
    ASSERT_EQ(-EBADF, out);
    ASSERT_EQ(WEFT_READY, weft_io_op_poll(&w, &cx, &out));
    ASSERT_EQ(-EBADF, out);
    ASSERT_EQ(WEFT_READY, weft_io_op_poll(&w, &cx, &out));     /* same answer again */
    ASSERT_EQ(-EBADF, out);
    weft_io_op_drop(&r);
    weft_io_op_drop(&w);
    weft_io_op_drop(&w);                                       /* idempotent */
    /* the slot is reused by the next socket: the stale futures stay stale */
    {
        weft_socket *a, *b;

        nt_tcp_pair(rt, &a, &b);
        weft_read_init(&r, a, rbuf, sizeof(rbuf));
        ASSERT_OK(weft_socket_close(a));
        ASSERT_OK(weft_socket_close(b));
        ASSERT_EQ(WEFT_READY, weft_io_op_poll(&r, &cx, &out));
        ASSERT_EQ(-EBADF, out);
    }
    ASSERT_OK(weft_socket_close(s));
    weft_runtime_free(rt);
}

/* ---- 1,000 accept/close cycles leave no descriptor behind ----------------------- */
typedef struct cycles {
    weft_async co;
    int n, i, err, fds_before;
    weft_socket *l, *c, *s;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_connect conn;
    weft_accept acc;
    weft_io_op op;
    ssize_t r;
    char b;
} cycles;

static weft_poll cycles_poll(cycles *k, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&k->co);
    nt_listen(weft_runtime_current(), &k->l, &k->addr, &k->len);
    k->fds_before = nt_count_fds();
    for (k->i = 0; k->i < k->n; k->i++) {
        weft_connect_init(&k->conn, NULL, (struct sockaddr *)&k->addr, k->len, 0, &k->c);
        WEFT_AWAIT(&k->co, weft_connect_poll(&k->conn, cx, &k->err));
        ASSERT_OK(k->err);
        weft_accept_init(&k->acc, k->l, &k->s, NULL, NULL);
        WEFT_AWAIT(&k->co, weft_accept_poll(&k->acc, cx, &k->err));
        ASSERT_OK(k->err);
        if (k->i % 3 == 0) {
            /* a byte through, so both sides have been used */
            weft_write_init(&k->op, k->c, "z", 1);
            WEFT_AWAIT(&k->co, weft_io_op_poll(&k->op, cx, &k->r));
            ASSERT_EQ(1, k->r);
            weft_read_init(&k->op, k->s, &k->b, 1);
            WEFT_AWAIT(&k->co, weft_io_op_poll(&k->op, cx, &k->r));
            ASSERT_EQ(1, k->r);
        }
        if (k->i % 2) {
            ASSERT_OK(weft_socket_close(k->c));
            ASSERT_OK(weft_socket_close(k->s));
        } else {
            ASSERT_OK(weft_socket_close(k->s));
            ASSERT_OK(weft_socket_close(k->c));
        }
    }
    ASSERT_EQ(k->fds_before, nt_count_fds());
    ASSERT_OK(weft_socket_close(k->l));
    WEFT_END(&k->co);
}

WEFT_DEFINE_FUTURE_VOID(cycles, cycles_poll, NULL);

static void run_cycles(bool current)
{
    int before = nt_count_fds();

    nt_run(current, &cycles_future, &(cycles){ .n = 1000 });
    ASSERT_EQ(before, nt_count_fds());
}

TEST(thousand_accept_close_cycles_leak_no_fd)
{
    run_cycles(false);
}

TEST(thousand_accept_close_cycles_leak_no_fd_current_thread)
{
    run_cycles(true);
}
