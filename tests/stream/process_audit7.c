// SPDX-License-Identifier: MIT
/* Audit 7 of weft/process.h, driven from coroutines (weft/coro.h), on
 * both I/O backends (the stream layer's tests run again with io_uring):
 *   - the child's stdin pipe written after the child has exited: -EPIPE,
 *     never a SIGPIPE that kills the parent, from a coroutine and from the
 *     pool (weft_co_fs_write on the same descriptor);
 *   - stdin closed early by the parent: the child sees end of file and
 *     exits; the later close by weft_process_free() is harmless;
 *   - stdout closed early by the child while it runs: the parent reads end
 *     of file, then the wait gives the exit code;
 *   - waits from coroutines made before and after the exit, and the handle
 *     freed while one is parked (the wait holds its own reference);
 *   - weft_process_kill() bounds and -ESRCH once reaped. */
#include "process_test.h"

#include <unistd.h>

static weft_runtime *rt_two(void)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    return rt;
}

/* ---- stdin after the child is gone -------------------------------------------------- */
typedef struct epipe_ctx {
    weft_process *p;
    long w1, w2, w3;
    int wait;
    weft_process_status st;
} epipe_ctx;

static int epipe_body(void *arg)
{
    epipe_ctx *c = arg;
    weft_stream *in = weft_process_stdio(c->p, 0);
    static char big[1 << 16];

    c->wait = weft_co_process_wait(c->p, &c->st);       /* exited: nobody reads */
    c->w1 = weft_co_write(in, "x", 1);
    c->w2 = weft_co_write_all(in, big, sizeof(big));
    c->w3 = weft_co_fs_write(weft_stream_fd(in), "y", 1);  /* on a pool thread */
    return 0;
}

TEST(stdin_written_after_the_exit_is_epipe_not_sigpipe)
{
    weft_runtime *rt = rt_two();
    char *argv[] = { "true", NULL };
    weft_process_options o = { .argv = argv, .stdio = { { WEFT_STDIO_PIPE } } };
    epipe_ctx c = { 0 };
    int res = -1;

    ASSERT_OK(weft_process_spawn(rt, &o, &c.p));
    ASSERT_OK(weft_co_block_on(rt, epipe_body, &c, NULL, &res));
    ASSERT_EQ(0, c.wait);
    ASSERT_EQ(0, c.st.code);
    ASSERT_EQ(-EPIPE, c.w1);
    ASSERT_EQ(-EPIPE, c.w2);
    ASSERT_EQ(-EPIPE, c.w3);
    weft_process_free(c.p);
    weft_runtime_free(rt);
}

/* ---- stdin closed early by the parent ------------------------------------------------ */
typedef struct cat_ctx {
    weft_process *p;
    long n;
    int wait;
    weft_process_status st;
} cat_ctx;

static int cat_body(void *arg)
{
    cat_ctx *c = arg;
    char buf[16];

    ASSERT_OK(weft_stream_close(weft_process_stdio(c->p, 0)));   /* end of file */
    c->n = weft_co_read(weft_process_stdio(c->p, 1), buf, sizeof(buf));
    c->wait = weft_co_process_wait(c->p, &c->st);
    return 0;
}

TEST(stdin_closed_early_ends_the_child)
{
    weft_runtime *rt = rt_two();
    char *argv[] = { "cat", NULL };
    weft_process_options o = { .argv = argv,
                               .stdio = { { WEFT_STDIO_PIPE }, { WEFT_STDIO_PIPE } } };
    cat_ctx c = { 0 };
    int res = -1;

    ASSERT_OK(weft_process_spawn(rt, &o, &c.p));
    ASSERT_OK(weft_co_block_on(rt, cat_body, &c, NULL, &res));
    ASSERT_EQ(0, c.n);                            /* cat saw end of file: so do we */
    ASSERT_EQ(0, c.wait);
    ASSERT_EQ(0, c.st.code);
    ASSERT_EQ(0, c.st.signal);
    weft_process_free(c.p);                       /* closes stdin again: harmless */
    weft_runtime_free(rt);
}

/* ---- stdout closed early by the child ------------------------------------------------ */
typedef struct early_ctx {
    weft_process *p;
    long n1, n2;
    int tried, wait;
    char buf[16];
    weft_process_status st;
} early_ctx;

static int early_body(void *arg)
{
    early_ctx *c = arg;
    weft_stream *out = weft_process_stdio(c->p, 1);

    c->n1 = weft_co_read_exact(out, c->buf, 3);
    c->n2 = weft_co_read(out, c->buf + 3, sizeof(c->buf) - 3);   /* end of file */
    c->tried = weft_process_try_wait(c->p, NULL);    /* still running: it waits on stdin */
    ASSERT_OK(weft_stream_close(weft_process_stdio(c->p, 0)));
    c->wait = weft_co_process_wait(c->p, &c->st);
    return 0;
}

TEST(stdout_closed_early_by_the_child)
{
    weft_runtime *rt = rt_two();
    char *argv[] = { "sh", "-c", "printf abc; exec 1>&-; read x; exit 7", NULL };
    weft_process_options o = { .argv = argv,
                               .stdio = { { WEFT_STDIO_PIPE }, { WEFT_STDIO_PIPE } } };
    early_ctx c = { 0 };
    int res = -1;

    ASSERT_OK(weft_process_spawn(rt, &o, &c.p));
    ASSERT_OK(weft_co_block_on(rt, early_body, &c, NULL, &res));
    ASSERT_EQ(3, c.n1);
    ASSERT_EQ(0, memcmp(c.buf, "abc", 3));
    ASSERT_EQ(0, c.n2);
    ASSERT_EQ(-EAGAIN, c.tried);
    ASSERT_EQ(0, c.wait);
    ASSERT_EQ(7, c.st.code);
    weft_process_free(c.p);
    weft_runtime_free(rt);
}

/* ---- waits before and after the exit, the handle freed under a wait ----------------- */
typedef struct waits_ctx {
    weft_process *p;
    atomic_int parked;
    int before, after, again;
    weft_process_status st1, st2, st3;
} waits_ctx;

static int waits_body(void *arg)
{
    waits_ctx *c = arg;
    weft_process *p = c->p;

    atomic_store(&c->parked, 1);
    c->before = weft_co_process_wait(p, &c->st1);     /* freed meanwhile */
    return 0;
}

TEST(waits_around_the_exit_and_a_free_under_a_wait)
{
    weft_runtime *rt = rt_two();
    char *argv[] = { "sh", "-c", "read x; exit 4", NULL };
    weft_process_options o = { .argv = argv, .stdio = { { WEFT_STDIO_PIPE } } };
    waits_ctx c = { 0 };
    weft_join *j = NULL;
    weft_stream *in;
    int out = -1;

    ASSERT_OK(weft_process_spawn(rt, &o, &c.p));
    in = weft_process_take_stdio(c.p, 0);
    ASSERT(in != NULL);
    ASSERT(weft_process_stdio(c.p, 0) == NULL);       /* taken */
    ASSERT_OK(weft_go(rt, waits_body, &c, &j));
    ASSERT(harness_wait_flag((volatile int *)&c.parked, PW_MS));
    usleep(5000);
    weft_process_free(c.p);                           /* the wait holds its own ref */
    ASSERT_OK(weft_stream_close(in));                 /* now the child exits */
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(0, c.before);
    ASSERT_EQ(4, c.st1.code);
    weft_join_drop(j);
    weft_runtime_free(rt);
}

static int wait_twice(void *arg)
{
    waits_ctx *c = arg;

    c->after = weft_co_process_wait(c->p, &c->st2);
    c->again = weft_co_process_wait(c->p, &c->st3);
    return 0;
}

TEST(waits_after_the_exit_and_kill_bounds)
{
    weft_runtime *rt = rt_two();
    char *argv[] = { "sh", "-c", "exit 9", NULL };
    weft_process_options o = { .argv = argv };
    waits_ctx c = { 0 };
    weft_process_status st;
    int out = -1;

    ASSERT_OK(weft_process_spawn(rt, &o, &c.p));
    ASSERT_EQ(-EINVAL, weft_process_kill(c.p, -1));
    ASSERT_EQ(-EINVAL, weft_process_kill(c.p, 65));
    ASSERT_EQ(-EINVAL, weft_process_kill(c.p, 100000));
    ASSERT_EQ(-EINVAL, weft_process_kill(NULL, 0));
    ASSERT_OK(poll_exit(c.p, &st));                   /* exited and reaped */
    ASSERT_EQ(9, st.code);
    ASSERT_EQ(-ESRCH, weft_process_kill(c.p, 0));
    ASSERT_EQ(-ESRCH, weft_process_kill(c.p, SIGKILL));
    ASSERT_OK(weft_co_block_on(rt, wait_twice, &c, NULL, &out));
    ASSERT_EQ(0, c.after);
    ASSERT_EQ(0, c.again);
    ASSERT_EQ(9, c.st2.code);
    ASSERT_EQ(9, c.st3.code);
    ASSERT_EQ(0, c.st2.signal);
    weft_process_free(c.p);
    weft_runtime_free(rt);
}
