/* SPDX-License-Identifier: MIT */
/* Pipes as streams (issue 11, item 4): weft_pipe(), reads and writes across
 * tasks, end of stream, EPIPE without SIGPIPE, abort / close / runtime
 * shutdown while a future waits, closing twice, descriptor leaks, zero
 * lengths, the calls a pipe has no use for, and a FIFO that hangs up and
 * gets a new writer. */
#include "stream_test.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

/* ---- a big payload across two tasks ---------------------------------------------- */
#define BIG_SEED 11u
#define READ_CHUNK 7001u              /* odd: reads straddle the writer's */

static atomic_int writer_waits;

typedef struct big_writer {
    weft_stream *wr;
    unsigned char *buf;
    size_t len;
    bool started;
    weft_io_op op;
} big_writer;

static weft_poll big_writer_poll(big_writer *w, weft_context *cx, ssize_t *out)
{
    if (!w->started) {
        weft_write_all_init(&w->op, w->wr, w->buf, w->len);
        w->started = true;
    }
    if (weft_io_op_poll(&w->op, cx, out) == WEFT_PENDING) {
        atomic_fetch_add(&writer_waits, 1);   /* the pipe was full */
        return WEFT_PENDING;
    }
    weft_io_op_drop(&w->op);
    /* the reader sees end of stream once the last writer is gone */
    ASSERT_OK(weft_stream_close(w->wr));
    return WEFT_READY;
}

static void big_writer_drop(big_writer *w)
{
    weft_io_op_drop(&w->op);
}

WEFT_DEFINE_FUTURE(big_writer, big_writer_poll, big_writer_drop, ssize_t);

typedef struct big_reader {
    weft_async co;
    weft_stream *rd;
    size_t got, bad;
    weft_io_op op;
    ssize_t n;
    unsigned char buf[READ_CHUNK];
} big_reader;

static weft_poll big_reader_poll(big_reader *r, weft_context *cx, ssize_t *out)
{
    WEFT_BEGIN(&r->co);
    for (;;) {
        weft_read_init(&r->op, r->rd, r->buf, sizeof(r->buf));
        WEFT_AWAIT(&r->co, weft_io_op_poll(&r->op, cx, &r->n));
        if (r->n <= 0)
            break;
        if (nt_check(r->buf, (size_t)r->n, BIG_SEED, r->got) != (size_t)r->n)
            r->bad++;
        r->got += (size_t)r->n;
    }
    *out = r->n < 0 ? r->n : r->bad ? -EILSEQ : (ssize_t)r->got;
    WEFT_END(&r->co);
}

static void big_reader_drop(big_reader *r)
{
    weft_io_op_drop(&r->op);
}

WEFT_DEFINE_FUTURE(big_reader, big_reader_poll, big_reader_drop, ssize_t);

static void big_round_trip(bool current)
{
    weft_runtime *rt = nt_runtime(current);
    size_t len = harness_scale(8u << 20);
    unsigned char *buf = malloc(len);
    weft_stream *rd, *wr;
    weft_join *jw, *jr;
    ssize_t nw = 0, nr = 0;
    int fds0 = nt_count_fds();

    if (len < (1u << 20))
        len = 1u << 20;               /* always several times the pipe */
    buf = realloc(buf, len);
    ASSERT(buf != NULL);
    nt_fill(buf, len, BIG_SEED);
    atomic_store(&writer_waits, 0);
    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_spawn(rt, &big_writer_future,
                         &(big_writer){ .wr = wr, .buf = buf, .len = len }, &jw));
    ASSERT_OK(weft_spawn(rt, &big_reader_future, &(big_reader){ .rd = rd }, &jr));
    if (current)
        ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_join_wait(jw, &nw));
    ASSERT_OK(weft_join_wait(jr, &nr));
    weft_join_drop(jw);
    weft_join_drop(jr);
    ASSERT_EQ((ssize_t)len, nw);
    ASSERT_EQ((ssize_t)len, nr);
    ASSERT(atomic_load(&writer_waits) > 0);   /* it blocked on a full pipe */
    ASSERT_OK(weft_stream_close(rd));
    weft_runtime_free(rt);
    free(buf);
    ASSERT_EQ(fds0, nt_count_fds());
}

TEST(pipe_big_payload_across_tasks)
{
    big_round_trip(false);
}

TEST(pipe_big_payload_across_tasks_current_thread)
{
    big_round_trip(true);
}

/* ---- end of stream ------------------------------------------------------------------ */
TEST(pipe_eof_after_writer_close)
{
    for (int current = 0; current < 2; current++) {
        weft_runtime *rt = nt_runtime(current);
        weft_stream *rd, *wr;
        char buf[16];

        ASSERT_OK(weft_pipe(rt, &rd, &wr));
        ASSERT_EQ(3, st_write_all(rt, wr, "abc", 3, ST_WAIT_MS));
        ASSERT_OK(weft_stream_close(wr));
        ASSERT_EQ(3, st_read(rt, rd, buf, sizeof(buf), ST_WAIT_MS));
        ASSERT_EQ(0, memcmp(buf, "abc", 3));
        ASSERT_EQ(0, st_read(rt, rd, buf, sizeof(buf), ST_WAIT_MS));
        ASSERT_EQ(0, st_read(rt, rd, buf, sizeof(buf), ST_WAIT_MS));   /* and stays so */
        ASSERT_EQ(-EPIPE, st_read_exact(rt, rd, buf, 4, ST_WAIT_MS));
        ASSERT_OK(weft_stream_close(rd));
        weft_runtime_free(rt);
    }
}

/* A reader waiting on an empty pipe wakes with 0 when the writer closes
 * (the hang-up), here from a plain thread. */
TEST(pipe_waiting_reader_sees_eof_at_writer_close)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr;
    weft_join *j;
    ssize_t n = -1;

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    __atomic_store_n(&st_waiting, 0, __ATOMIC_RELAXED);
    ASSERT_OK(weft_spawn(rt, &st_waiter_future, &(st_waiter){ .s = rd }, &j));
    ASSERT(harness_wait_flag(&st_waiting, NT_WATCHDOG_MS));
    ASSERT_OK(weft_stream_close(wr));
    ASSERT_OK(weft_join_wait(j, &n));
    weft_join_drop(j);
    ASSERT_EQ(0, n);
    ASSERT_OK(weft_stream_close(rd));
    weft_runtime_free(rt);
}

/* ---- EPIPE, and no SIGPIPE --------------------------------------------------------- */
static bool sigpipe_pending(void)
{
    sigset_t p;

    ASSERT_EQ(0, sigpending(&p));
    return sigismember(&p, SIGPIPE);
}

static bool sigpipe_blocked(void)
{
    sigset_t m;

    ASSERT_EQ(0, pthread_sigmask(SIG_BLOCK, NULL, &m));
    return sigismember(&m, SIGPIPE);
}

TEST(pipe_write_after_reader_close_is_epipe_without_sigpipe)
{
    /* the default action: a SIGPIPE anywhere would kill this process */
    ASSERT(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    for (int current = 0; current < 2; current++) {
        weft_runtime *rt = nt_runtime(current);
        weft_stream *rd, *wr;

        ASSERT_OK(weft_pipe(rt, &rd, &wr));
        ASSERT_OK(weft_stream_close(rd));
        ASSERT_EQ(-EPIPE, st_write(rt, wr, "x", 1, ST_WAIT_MS));
        ASSERT_EQ(-EPIPE, st_write_all(rt, wr, "xyz", 3, ST_WAIT_MS));
        ASSERT_EQ(-EPIPE, st_write(rt, wr, "x", 1, ST_WAIT_MS));
        ASSERT_OK(weft_stream_close(wr));
        weft_runtime_free(rt);
    }
    /* on this thread too (a future polled by hand), which keeps its mask */
    {
        weft_runtime *rt = nt_runtime(true);
        weft_stream *rd, *wr;
        weft_io_op op;
        ssize_t n = 0;

        ASSERT_OK(weft_pipe(rt, &rd, &wr));
        ASSERT_OK(weft_stream_close(rd));
        weft_write_init(&op, wr, "x", 1);
        ASSERT_EQ(WEFT_READY, st_poll_once(&op, &n));
        ASSERT_EQ(-EPIPE, n);
        weft_io_op_drop(&op);
        ASSERT(!sigpipe_blocked());
        ASSERT(!sigpipe_pending());
        ASSERT_OK(weft_stream_close(wr));
        weft_runtime_free(rt);
    }
}

/* A caller that blocks SIGPIPE itself and has one pending keeps it: weft
 * takes only the one its own write raised. */
TEST(pipe_epipe_leaves_a_callers_pending_sigpipe)
{
    weft_runtime *rt = nt_runtime(true);
    weft_stream *rd, *wr;
    weft_io_op op;
    sigset_t set, old;
    ssize_t n = 0;
    const struct timespec zero = { 0, 0 };

    ASSERT(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    ASSERT_EQ(0, pthread_sigmask(SIG_BLOCK, &set, &old));
    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_stream_close(rd));
    /* blocked, nothing pending: weft's SIGPIPE is taken */
    weft_write_init(&op, wr, "x", 1);
    ASSERT_EQ(WEFT_READY, st_poll_once(&op, &n));
    ASSERT_EQ(-EPIPE, n);
    weft_io_op_drop(&op);
    ASSERT(!sigpipe_pending());
    /* one pending already (raised by the caller): it stays */
    ASSERT_EQ(0, pthread_kill(pthread_self(), SIGPIPE));
    ASSERT(sigpipe_pending());
    weft_write_init(&op, wr, "x", 1);
    ASSERT_EQ(WEFT_READY, st_poll_once(&op, &n));
    ASSERT_EQ(-EPIPE, n);
    weft_io_op_drop(&op);
    ASSERT(sigpipe_pending());
    ASSERT(sigpipe_blocked());
    ASSERT_EQ(SIGPIPE, sigtimedwait(&set, NULL, &zero));
    ASSERT(!sigpipe_pending());
    ASSERT_EQ(0, pthread_sigmask(SIG_SETMASK, &old, NULL));
    ASSERT_OK(weft_stream_close(wr));
    weft_runtime_free(rt);
}

/* A writer waiting on a full pipe wakes with -EPIPE when the reader goes. */
TEST(pipe_waiting_writer_sees_epipe_at_reader_close)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr;
    weft_join *j;
    ssize_t n = 0;

    ASSERT(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT(st_fill_pipe(wr) > 0);
    __atomic_store_n(&st_waiting, 0, __ATOMIC_RELAXED);
    ASSERT_OK(weft_spawn(rt, &st_waiter_future, &(st_waiter){ .s = wr, .write = true }, &j));
    ASSERT(harness_wait_flag(&st_waiting, NT_WATCHDOG_MS));
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_join_wait(j, &n));
    weft_join_drop(j);
    ASSERT_EQ(-EPIPE, n);
    ASSERT_OK(weft_stream_close(wr));
    weft_runtime_free(rt);
}

/* ---- abort, close and shutdown while a future waits ------------------------------------ */
TEST(pipe_aborted_reader_loses_no_bytes)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr;
    weft_join *j;
    char buf[8];

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    __atomic_store_n(&st_waiting, 0, __ATOMIC_RELAXED);
    ASSERT_OK(weft_spawn(rt, &st_waiter_future, &(st_waiter){ .s = rd }, &j));
    ASSERT(harness_wait_flag(&st_waiting, NT_WATCHDOG_MS));
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
    weft_join_drop(j);
    ASSERT_EQ(5, st_write_all(rt, wr, "after", 5, ST_WAIT_MS));
    ASSERT_EQ(5, st_read_exact(rt, rd, buf, 5, ST_WAIT_MS));
    ASSERT_EQ(0, memcmp(buf, "after", 5));
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_stream_close(wr));
    weft_runtime_free(rt);
}

TEST(pipe_close_wakes_waiting_reader_with_ebadf)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr;
    weft_join *j;
    ssize_t n = 0;

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    __atomic_store_n(&st_waiting, 0, __ATOMIC_RELAXED);
    ASSERT_OK(weft_spawn(rt, &st_waiter_future, &(st_waiter){ .s = rd }, &j));
    ASSERT(harness_wait_flag(&st_waiting, NT_WATCHDOG_MS));
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_join_wait(j, &n));
    weft_join_drop(j);
    ASSERT_EQ(-EBADF, n);
    ASSERT_EQ(-EBADF, weft_stream_close(rd));
    ASSERT_OK(weft_stream_close(wr));
    weft_runtime_free(rt);
}

/* The runtime shut down and freed under a reader of an empty pipe and a
 * writer of a full one: both are cancelled (their drops close their ends),
 * nothing leaks; ends held outside keep working after the runtime is gone. */
TEST(pipe_runtime_shutdown_while_pending)
{
    int fds0 = nt_count_fds();

    for (int current = 0; current < 2; current++) {
        weft_runtime *rt = nt_runtime(current);
        weft_stream *rd, *wr, *rd2, *wr2;
        weft_io_op op;
        char buf[4];
        ssize_t n = 0;

        ASSERT_OK(weft_pipe(rt, &rd, &wr));
        ASSERT_OK(weft_pipe(rt, &rd2, &wr2));
        ASSERT(st_fill_pipe(wr2) > 0);
        __atomic_store_n(&st_waiting, 0, __ATOMIC_RELAXED);
        ASSERT_OK(weft_spawn_detached(rt, &st_waiter_future,
                                      &(st_waiter){ .s = rd, .owns = true }));
        ASSERT_OK(weft_spawn_detached(rt, &st_waiter_future,
                                      &(st_waiter){ .s = wr2, .write = true, .owns = true }));
        if (!current)
            ASSERT(harness_wait_flag(&st_waiting, NT_WATCHDOG_MS));
        ASSERT_OK(weft_runtime_shutdown(rt));
        ASSERT_EQ(-EBADF, weft_stream_close(rd));      /* the drop closed it */
        ASSERT_EQ(-EBADF, weft_stream_close(wr2));
        weft_runtime_free(rt);
        /* after the runtime: plain calls work, futures see -ESHUTDOWN */
        ASSERT(weft_stream_fd(wr) >= 0);
        weft_read_init(&op, rd2, buf, sizeof(buf));
        ASSERT_EQ(WEFT_READY, st_poll_once(&op, &n));
        ASSERT_EQ(-ESHUTDOWN, n);
        weft_io_op_drop(&op);
        ASSERT_OK(weft_stream_close(wr));
        ASSERT_OK(weft_stream_close(rd2));
        ASSERT_EQ(-EBADF, weft_stream_close(rd2));
        ASSERT_EQ(0, harness_live());
        ASSERT_EQ(fds0, nt_count_fds());
    }
}

/* ---- handles ----------------------------------------------------------------------------- */
TEST(pipe_close_twice_is_ebadf)
{
    weft_runtime *rt = nt_runtime(true);
    weft_stream *rd, *wr;
    weft_io_op op;
    ssize_t n = 0;
    char c;

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    weft_read_init(&op, rd, &c, 1);   /* made before the close, polled after */
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_EQ(-EBADF, weft_stream_close(rd));
    ASSERT_EQ(-EBADF, weft_socket_close(rd));
    ASSERT_EQ(-EBADF, weft_stream_fd(rd));
    ASSERT_EQ(WEFT_READY, st_poll_once(&op, &n));
    ASSERT_EQ(-EBADF, n);
    weft_io_op_drop(&op);
    ASSERT_OK(weft_socket_close(wr));  /* either name closes any handle */
    ASSERT_EQ(-EBADF, weft_stream_close(wr));
    ASSERT_EQ(-EBADF, weft_stream_close(NULL));
    weft_runtime_free(rt);
}

TEST(pipe_many_cycles_leak_no_fd)
{
    int fds0 = nt_count_fds();
    weft_runtime *rt = nt_runtime(false);
    size_t rounds = harness_scale(2000);
    char c = 0;

    for (size_t i = 0; i < rounds; i++) {
        weft_stream *rd, *wr;

        ASSERT_OK(weft_pipe(rt, &rd, &wr));
        if (i % 16 == 0) {
            ASSERT_EQ(1, st_write(rt, wr, "z", 1, ST_WAIT_MS));
            ASSERT_EQ(1, st_read(rt, rd, &c, 1, ST_WAIT_MS));
        }
        ASSERT_OK(weft_stream_close(wr));
        ASSERT_OK(weft_stream_close(rd));
    }
    ASSERT_EQ('z', c);
    weft_runtime_free(rt);
    ASSERT_EQ(fds0, nt_count_fds());
}

/* ---- zero lengths -------------------------------------------------------------------------- */
TEST(pipe_zero_len_read_and_write_complete_at_once)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *rd, *wr;
    char buf[4];

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    /* an empty pipe: a read of 0 does not wait */
    ASSERT_EQ(0, st_read(rt, rd, buf, 0, ST_WAIT_MS));
    ASSERT_EQ(0, st_read_exact(rt, rd, NULL, 0, ST_WAIT_MS));
    ASSERT_EQ(-ETIMEDOUT, st_read(rt, rd, buf, 1, ST_SHORT_MS));
    ASSERT_EQ(0, st_read(rt, rd, buf, 0, ST_WAIT_MS));
    /* a full pipe: a write of 0 does not wait */
    ASSERT(st_fill_pipe(wr) > 0);
    ASSERT_EQ(-ETIMEDOUT, st_write(rt, wr, "x", 1, ST_SHORT_MS));
    ASSERT_EQ(0, st_write(rt, wr, "x", 0, ST_WAIT_MS));
    ASSERT_EQ(0, st_write_all(rt, wr, NULL, 0, ST_WAIT_MS));
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_stream_close(wr));
    weft_runtime_free(rt);
}

/* ---- what only sockets do ------------------------------------------------------------------ */
TEST(pipe_socket_calls_are_enotsock)
{
    weft_runtime *rt = nt_runtime(true);
    weft_stream *rd, *wr, *acc = NULL;
    struct sockaddr_storage a;
    socklen_t len = sizeof(a);
    weft_io_op op;
    char buf[4];
    ssize_t n = 0;
    int v = 1, r = 0;

    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT(weft_stream_fd(rd) >= 0);
    ASSERT_EQ(weft_stream_fd(rd), weft_socket_fd(rd));
    ASSERT_EQ(-ENOTSOCK, weft_socket_local_addr(rd, &a, &len));
    ASSERT_EQ(-ENOTSOCK, weft_socket_peer_addr(rd, &a, &len));
    ASSERT_EQ(-ENOTSOCK, weft_socket_setopt(rd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof(v)));
    ASSERT_EQ(-ENOTSOCK, weft_socket_set_nodelay(wr, true));
    ASSERT_EQ(-ENOTSOCK, weft_socket_shutdown(wr, SHUT_WR));
    ASSERT_OK(weft_addr_ip("127.0.0.1", 9, &a, &len));
    ASSERT_EQ(-ENOTSOCK, weft_udp_connect(wr, (struct sockaddr *)&a, len));
    weft_recv_from_init(&op, rd, buf, sizeof(buf), NULL, NULL);
    ASSERT_EQ(WEFT_READY, st_poll_once(&op, &n));
    ASSERT_EQ(-ENOTSOCK, n);
    weft_io_op_drop(&op);
    weft_send_to_init(&op, wr, "x", 1, (struct sockaddr *)&a, len);
    ASSERT_EQ(WEFT_READY, st_poll_once(&op, &n));
    ASSERT_EQ(-ENOTSOCK, n);
    weft_io_op_drop(&op);
    {
        weft_waker nw = weft_waker_noop();
        weft_context cx = weft_context_from_waker(&nw);

        weft_accept_init(&op, rd, &acc, NULL, NULL);
        ASSERT_EQ(WEFT_READY, weft_accept_poll(&op, &cx, &r));
        ASSERT_EQ(-ENOTSOCK, r);
        ASSERT(acc == NULL);
        weft_io_op_drop(&op);
    }
    /* closed: -EBADF first */
    ASSERT_OK(weft_stream_close(wr));
    ASSERT_EQ(-EBADF, weft_socket_shutdown(wr, SHUT_WR));
    weft_send_to_init(&op, wr, "x", 1, (struct sockaddr *)&a, len);
    ASSERT_EQ(WEFT_READY, st_poll_once(&op, &n));
    ASSERT_EQ(-EBADF, n);
    weft_io_op_drop(&op);
    ASSERT_OK(weft_stream_close(rd));
    weft_runtime_free(rt);
}

/* ---- a FIFO hangs up, then gets a new writer ----------------------------------------------- */
/* The hang-up is sticky in the reactor (every later read goes to the
 * system, to see end of stream). Once a new writer opens the FIFO the reads
 * find it empty (EAGAIN): that must clear the hang-up and wait, not call
 * read() again forever (the poll never returned before the fix). */
TEST(fifo_reader_waits_again_after_a_new_writer)
{
    weft_runtime *rt = nt_runtime(false);
    char dir[] = "/tmp/weft-fifo-XXXXXX", path[64], buf[8];
    weft_stream *rd;
    int fd, w;

    ASSERT(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/f", dir);
    ASSERT_EQ(0, mkfifo(path, 0600));
    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    ASSERT(fd >= 0);
    ASSERT_OK(weft_fd_adopt(rt, fd, 0, &rd));
    w = open(path, O_WRONLY | O_CLOEXEC);
    ASSERT(w >= 0);
    ASSERT_EQ(2, write(w, "hi", 2));
    close(w);
    ASSERT_EQ(2, st_read(rt, rd, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_EQ(0, st_read(rt, rd, buf, sizeof(buf), ST_WAIT_MS));   /* hung up */
    w = open(path, O_WRONLY | O_CLOEXEC);                           /* a new writer */
    ASSERT(w >= 0);
    ASSERT_EQ(-ETIMEDOUT, st_read(rt, rd, buf, sizeof(buf), ST_SHORT_MS));
    ASSERT_EQ(3, write(w, "yes", 3));
    ASSERT_EQ(3, st_read(rt, rd, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_EQ(0, memcmp(buf, "yes", 3));
    close(w);
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_EQ(0, unlink(path));
    ASSERT_EQ(0, rmdir(dir));
    weft_runtime_free(rt);
}
