/* SPDX-License-Identifier: MIT */
/* Lifetimes of socket handles, loops and the reactor (issue 9, items 3, 4).
 *
 * Handles: weft_socket_close() twice returns -EBADF the second time (it was
 * a use-after-free: the handle was freed by the first close), as does every
 * call on a closed handle, even after the slot has been reused by a new
 * socket (which the stale handle must not touch); NULL is -EBADF; a close
 * from another thread while a future waits wakes it with -EBADF.
 *
 * The reactor outlives the runtime while anything holds it: sockets,
 * pending connects and loops made on a runtime may be closed / freed after
 * weft_runtime_free() (that was a use-after-free of the reactor's pages);
 * plain calls keep working; futures polled then complete with -ESHUTDOWN,
 * also one that was waiting in a task of another runtime (it is woken);
 * registering anew (accept, fdwatch_add) returns -ESHUTDOWN and never calls
 * into the freed scheduler. */
#include "net_test.h"


/* Poll a socket future by hand (no runtime needed) until it is ready. */
static ssize_t poll_op(weft_io_op *op)
{
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    ssize_t n = -12345;

    ASSERT_EQ(WEFT_READY, weft_io_op_poll(op, &cx, &n));
    return n;
}

/* ---- item 3: handles ------------------------------------------------------------ */
TEST(close_twice_is_ebadf)
{
    int fds0 = nt_count_fds();

    for (int current = 0; current < 2; current++) {
        weft_runtime *rt = nt_runtime(current);
        struct sockaddr_storage addr;
        socklen_t len;
        weft_socket *l, *a, *b;
        int v = 1;

        ASSERT_EQ(-EBADF, weft_socket_close(NULL));
        nt_listen(rt, &l, &addr, &len);
        nt_tcp_pair(rt, &a, &b);
        ASSERT_OK(weft_socket_close(l));
        ASSERT_EQ(-EBADF, weft_socket_close(l));
        ASSERT_EQ(-EBADF, weft_socket_close(l));
        /* every call on a closed handle: -EBADF, nothing touched */
        ASSERT_EQ(-EBADF, weft_socket_fd(l));
        len = sizeof(addr);
        ASSERT_EQ(-EBADF, weft_socket_local_addr(l, &addr, &len));
        ASSERT_EQ(-EBADF, weft_socket_setopt(l, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof(v)));
        ASSERT_EQ(-EBADF, weft_socket_shutdown(l, SHUT_RDWR));
        ASSERT_OK(weft_socket_close(a));
        ASSERT_EQ(-EBADF, weft_socket_close(a));
        ASSERT_OK(weft_socket_close(b));
        ASSERT_EQ(-EBADF, weft_socket_close(b));
        weft_runtime_free(rt);
    }
    ASSERT_EQ(fds0, nt_count_fds());
}

/* A closed handle whose slot now belongs to a new socket: the stale handle
 * sees -EBADF and leaves the new socket alone. */
TEST(stale_handle_does_not_touch_the_slot_s_new_socket)
{
    weft_runtime *rt = nt_runtime(true);
    weft_socket *a, *b, *c, *d;
    weft_io_op op;
    char ch = 0;

    nt_tcp_pair(rt, &a, &b);
    ASSERT_OK(weft_socket_close(a));
    nt_tcp_pair(rt, &c, &d);             /* reuses the slots just freed */
    ASSERT_EQ(-EBADF, weft_socket_close(a));
    ASSERT_EQ(-EBADF, weft_socket_shutdown(a, SHUT_RDWR));
    weft_read_init(&op, a, &ch, 1);
    ASSERT_EQ(-EBADF, poll_op(&op));
    weft_io_op_drop(&op);
    /* c and d still talk */
    ASSERT_EQ(1, send(weft_socket_fd(d), "q", 1, MSG_NOSIGNAL));
    weft_read_init(&op, c, &ch, 1);
    {
        struct pollfd p = { .fd = weft_socket_fd(c), .events = POLLIN };

        ASSERT_EQ(1, poll(&p, 1, (int)NT_WATCHDOG_MS));
    }
    ASSERT_EQ(1, poll_op(&op));
    ASSERT_EQ('q', ch);
    weft_io_op_drop(&op);
    ASSERT_OK(weft_socket_close(b));
    ASSERT_OK(weft_socket_close(c));
    ASSERT_OK(weft_socket_close(d));
    ASSERT_EQ(-EBADF, weft_socket_close(b));
    weft_runtime_free(rt);
}

/* Close from a plain thread while a task's read waits: the read completes
 * with -EBADF; a second close from that thread is -EBADF. */
static atomic_int reader_pending;
static weft_socket *shared_sock;

typedef struct reader {
    weft_io_op op;
    char buf[8];
    bool init;
} reader;

static weft_poll reader_poll(reader *r, weft_context *cx, ssize_t *out)
{
    if (!r->init) {
        weft_read_init(&r->op, shared_sock, r->buf, sizeof(r->buf));
        r->init = true;
    }
    if (weft_io_op_poll(&r->op, cx, out) == WEFT_PENDING) {
        atomic_store(&reader_pending, 1);
        return WEFT_PENDING;
    }
    return WEFT_READY;
}

static void reader_drop(reader *r)
{
    if (r->init)
        weft_io_op_drop(&r->op);
}

WEFT_DEFINE_FUTURE(reader, reader_poll, reader_drop, ssize_t);

TEST(close_from_other_thread_while_future_pending)
{
    for (int current = 0; current < 2; current++) {
        weft_runtime *rt = nt_runtime(current);
        weft_socket *a, *b;
        weft_join *j;
        ssize_t n = 0;

        nt_tcp_pair(rt, &a, &b);
        shared_sock = a;
        atomic_store(&reader_pending, 0);
        ASSERT_OK(weft_spawn(rt, &reader_future, &(reader){ 0 }, &j));
        if (current) {
            /* a current-thread runtime runs its tasks only inside run():
             * close before the future's first poll */
            ASSERT_OK(weft_socket_close(a));
            ASSERT_OK(weft_runtime_run(rt));
            ASSERT_OK(weft_join_try(j, &n));
        } else {
            ASSERT(harness_wait_flag((const volatile int *)&reader_pending, NT_WATCHDOG_MS));
            ASSERT_OK(weft_socket_close(a));
            ASSERT_OK(weft_join_wait(j, &n));
        }
        weft_join_drop(j);
        ASSERT_EQ(-EBADF, n);
        ASSERT_EQ(-EBADF, weft_socket_close(a));
        ASSERT_OK(weft_socket_close(b));
        weft_runtime_free(rt);
    }
}

/* ---- item 4: after the runtime is gone --------------------------------------- */
TEST(close_after_runtime_free)
{
    int fds0 = nt_count_fds();

    for (int current = 0; current < 2; current++) {
        weft_runtime *rt = nt_runtime(current);
        struct sockaddr_storage addr;
        socklen_t len;
        weft_socket *l, *a, *b;

        nt_listen(rt, &l, &addr, &len);
        nt_tcp_pair(rt, &a, &b);
        weft_runtime_free(rt);
        ASSERT_OK(weft_socket_close(a));
        ASSERT_EQ(-EBADF, weft_socket_close(a));
        ASSERT_OK(weft_socket_close(l));
        ASSERT_OK(weft_socket_close(b));    /* the last one frees the reactor */
        ASSERT_EQ(-EBADF, weft_socket_close(b));
        ASSERT_EQ(-EBADF, weft_socket_close(l));
        ASSERT_EQ(0, harness_live());
        ASSERT_EQ(fds0, nt_count_fds());
    }
}

TEST(plain_calls_and_futures_after_runtime_free)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr;
    socklen_t len;
    weft_socket *l, *a, *b, *acc = NULL;
    weft_io_op op;
    char buf[4];
    int v = 1, r = 0;

    nt_listen(rt, &l, &addr, &len);
    nt_tcp_pair(rt, &a, &b);
    weft_runtime_free(rt);

    /* plain calls work */
    ASSERT(weft_socket_fd(a) >= 0);
    len = sizeof(addr);
    ASSERT_OK(weft_socket_local_addr(a, &addr, &len));
    ASSERT_OK(weft_socket_setopt(a, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof(v)));
    ASSERT_OK(weft_socket_set_nodelay(a, true));
    ASSERT_OK(weft_socket_shutdown(a, SHUT_WR));

    /* futures: -ESHUTDOWN (nobody would ever wake them), even when the
     * system call could go through */
    ASSERT_EQ(1, send(weft_socket_fd(b), "x", 1, MSG_NOSIGNAL));
    weft_read_init(&op, a, buf, sizeof(buf));
    ASSERT_EQ(-ESHUTDOWN, poll_op(&op));
    weft_io_op_drop(&op);
    weft_write_init(&op, b, "y", 1);
    ASSERT_EQ(-ESHUTDOWN, poll_op(&op));
    weft_io_op_drop(&op);
    weft_read_init(&op, b, buf, 0);
    ASSERT_EQ(-ESHUTDOWN, poll_op(&op));
    weft_io_op_drop(&op);
    {
        weft_waker nw = weft_waker_noop();
        weft_context cx = weft_context_from_waker(&nw);

        weft_accept_init(&op, l, &acc, NULL, NULL);
        ASSERT_EQ(WEFT_READY, weft_accept_poll(&op, &cx, &r));
        ASSERT_EQ(-ESHUTDOWN, r);
        ASSERT(acc == NULL);
        weft_io_op_drop(&op);
    }
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    ASSERT_OK(weft_socket_close(l));
}

/* A connect made on a runtime and polled only after it is freed: -ESHUTDOWN,
 * and its half-made socket is closed. */
TEST(connect_polled_after_runtime_free)
{
    int fds0 = nt_count_fds();
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr;
    socklen_t len;
    weft_socket *l, *c = NULL;
    weft_connect conn;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int r = 0;

    nt_listen(rt, &l, &addr, &len);
    weft_connect_init(&conn, rt, (struct sockaddr *)&addr, len, 0, &c);
    weft_runtime_free(rt);
    ASSERT_EQ(WEFT_READY, weft_connect_poll(&conn, &cx, &r));
    ASSERT_EQ(-ESHUTDOWN, r);
    ASSERT(c == NULL);
    weft_io_op_drop(&conn);
    ASSERT_OK(weft_socket_close(l));
    ASSERT_EQ(0, harness_live());
    ASSERT_EQ(fds0, nt_count_fds());
}

/* A task of runtime B waits to read a socket of runtime A; freeing A wakes
 * it, and it sees -ESHUTDOWN. */
TEST(waiter_of_another_runtime_woken_with_eshutdown)
{
    weft_runtime *ra = nt_runtime(false), *rb = nt_runtime(false);
    weft_socket *a, *b;
    weft_join *j;
    ssize_t n = 0;

    nt_tcp_pair(ra, &a, &b);
    shared_sock = a;
    atomic_store(&reader_pending, 0);
    ASSERT_OK(weft_spawn(rb, &reader_future, &(reader){ 0 }, &j));
    ASSERT(harness_wait_flag((const volatile int *)&reader_pending, NT_WATCHDOG_MS));
    weft_runtime_free(ra);
    ASSERT_OK(weft_join_wait(j, &n));
    weft_join_drop(j);
    ASSERT_EQ(-ESHUTDOWN, n);
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rb);
}

typedef struct nothing {
    int unused;
} nothing;

static weft_poll nothing_poll(nothing *f, weft_context *cx, void *out)
{
    (void)f, (void)cx, (void)out;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID_STATIC(nothing, nothing_poll, NULL);

static bool join_done_within(weft_join *j, unsigned ms)
{
    for (unsigned i = 0; i < ms && !weft_join_is_complete(j); i++)
        usleep(1000);
    return weft_join_is_complete(j);
}

/* The same, while a join handle of the freed runtime is still held (it
 * keeps the runtime's memory, not its workers): the reactor shuts when the
 * runtime shuts down, not when its last handle goes, so the waiter still
 * sees -ESHUTDOWN (it waited for ever) and a new one too. */
TEST(waiter_woken_while_a_join_handle_keeps_the_runtime)
{
    weft_runtime *ra = nt_runtime(false), *rb = nt_runtime(false);
    weft_socket *a, *b;
    weft_join *j, *ja;
    ssize_t n = 0;

    nt_tcp_pair(ra, &a, &b);
    ASSERT_OK(weft_spawn(ra, &nothing_future, &(nothing){ 0 }, &ja));
    ASSERT_OK(weft_join_wait(ja, NULL));
    shared_sock = a;
    atomic_store(&reader_pending, 0);
    ASSERT_OK(weft_spawn(rb, &reader_future, &(reader){ 0 }, &j));
    ASSERT(harness_wait_flag((const volatile int *)&reader_pending, NT_WATCHDOG_MS));
    weft_runtime_free(ra);
    ASSERT(join_done_within(j, NT_WATCHDOG_MS));  /* a hang fails here */
    ASSERT_OK(weft_join_wait(j, &n));
    weft_join_drop(j);
    ASSERT_EQ(-ESHUTDOWN, n);
    /* a new read on the shut reactor does not wait either */
    atomic_store(&reader_pending, 0);
    ASSERT_OK(weft_spawn(rb, &reader_future, &(reader){ 0 }, &j));
    ASSERT(join_done_within(j, NT_WATCHDOG_MS));
    ASSERT_OK(weft_join_wait(j, &n));
    weft_join_drop(j);
    ASSERT_EQ(-ESHUTDOWN, n);
    weft_join_drop(ja);                   /* the runtime's memory goes now */
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rb);
}

static void never_fd(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    (void)w, (void)fd, (void)events, (void)arg;
}

static void never_timer(weft_timer *t, void *arg)
{
    (void)t, (void)arg;
}

/* Loops, watches and timers outlive the runtime: remove, free and loop_free
 * work after it (they were a use-after-free of the reactor); a new watch is
 * -ESHUTDOWN. */
TEST(loop_free_after_runtime_free)
{
    int fds0 = nt_count_fds();

    for (int order = 0; order < 2; order++) {
        weft_runtime *rt = nt_runtime(false);
        weft_loop *l;
        weft_fdwatch *w1, *w2, *w3;
        weft_timer *t;
        int p[2], q[2];

        ASSERT_EQ(0, pipe2(p, O_CLOEXEC | O_NONBLOCK));
        ASSERT_EQ(0, pipe2(q, O_CLOEXEC | O_NONBLOCK));
        ASSERT_OK(weft_loop_new(rt, &l));
        ASSERT_OK(weft_fdwatch_add(l, p[0], WEFT_READABLE, never_fd, NULL, &w1));
        ASSERT_OK(weft_fdwatch_add(l, q[0], WEFT_READABLE, never_fd, NULL, &w2));
        ASSERT_OK(weft_timer_new(l, never_timer, NULL, &t));
        ASSERT_OK(weft_timer_arm(t, 60000));
        weft_runtime_free(rt);
        ASSERT_EQ(-ESHUTDOWN, weft_fdwatch_add(l, p[1], WEFT_WRITABLE, never_fd, NULL, &w3));
        ASSERT_OK(weft_fdwatch_modify(w2, WEFT_READABLE | WEFT_WRITABLE));
        if (order == 0) {
            ASSERT_OK(weft_fdwatch_remove(w1));
            weft_timer_free(t);
        }
        weft_loop_free(l);                /* removes w2 (and w1, t) */
        close(p[0]), close(p[1]), close(q[0]), close(q[1]);
        ASSERT_EQ(0, harness_live());
        ASSERT_EQ(fds0, nt_count_fds());
    }
}

/* The reactor's hook into the scheduler (the first registration kicks the
 * watcher) must never run on a freed runtime: a thread adds and removes a
 * watch (each add takes the live count from 0 to 1, which kicks) while the
 * runtime is freed under it. ASan / TSan see a kick on freed memory. */
typedef struct churn_arg {
    weft_loop *l;
    int fd;
    atomic_int adds;
    int last;
} churn_arg;

static void *churn_main(void *p)
{
    churn_arg *c = p;

    for (;;) {
        weft_fdwatch *w;
        int err = weft_fdwatch_add(c->l, c->fd, WEFT_READABLE, never_fd, NULL, &w);

        if (err) {
            c->last = err;
            return NULL;
        }
        atomic_fetch_add(&c->adds, 1);
        ASSERT_OK(weft_fdwatch_remove(w));
    }
}

TEST(registration_races_runtime_free)
{
    size_t rounds = harness_scale(100);

    for (size_t i = 0; i < rounds; i++) {
        weft_runtime *rt = nt_runtime(i & 1);
        churn_arg c = { 0 };
        pthread_t th;
        int p[2];

        ASSERT_EQ(0, pipe2(p, O_CLOEXEC | O_NONBLOCK));
        ASSERT_OK(weft_loop_new(rt, &c.l));
        c.fd = p[0];
        ASSERT_EQ(0, pthread_create(&th, NULL, churn_main, &c));
        while (atomic_load(&c.adds) < 1 + (int)(i % 7))
            usleep(10);
        weft_runtime_free(rt);
        ASSERT_EQ(0, pthread_join(th, NULL));
        ASSERT_EQ(-ESHUTDOWN, c.last);
        weft_loop_free(c.l);
        close(p[0]), close(p[1]);
        ASSERT_EQ(0, harness_live());
    }
}
