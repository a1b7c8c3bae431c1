/* SPDX-License-Identifier: MIT */
/* Child processes (weft/process.h), spawning and talking to them: exit
 * codes and signals, the child's signal mask, pipes both ways, /dev/null
 * and descriptors of the caller, cwd/envp/file, spawn errors, bad input,
 * allocation failures, no descriptor leaked into the child or left in the
 * parent; most of it twice: with pidfds and with the SIGCHLD fallback
 * (WEFT_PROCESS_NO_PIDFD=1). Reaping, waits and kills: process_reap.c. */
#include "process_test.h"

/* ---- exit codes and signals ------------------------------------------------------- */
static void exit_codes(bool fallback)
{
    static const int codes[] = { 0, 1, 3, 127, 255 };
    weft_runtime *rt;

    use_fallback(fallback);
    rt = nt_runtime(false);
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        char cmd[32];
        weft_process *p;
        weft_process_status st = { 99, 99 };

        snprintf(cmd, sizeof(cmd), "exit %d", codes[i]);
        ASSERT_OK(sh(rt, cmd, WEFT_STDIO_NULL, WEFT_STDIO_NULL, WEFT_STDIO_INHERIT, &p));
        ASSERT(weft_process_pid(p) > 0);
        ASSERT_EQ(0, pw_wait(rt, p, &st));
        ASSERT_EQ(codes[i], st.code);
        ASSERT_EQ(0, st.signal);
        /* the status stays: try_wait and a second wait see it */
        st.code = 99;
        ASSERT_EQ(0, weft_process_try_wait(p, &st));
        ASSERT_EQ(codes[i], st.code);
        ASSERT_EQ(0, pw_wait(rt, p, NULL));
        ASSERT_EQ(-ESRCH, weft_process_kill(p, SIGTERM));    /* reaped: nothing sent */
        ASSERT(reaped(weft_process_pid(p)));
        weft_process_free(p);
    }
    weft_runtime_free(rt);
    watcher_idle();
}

TEST(process_exit_codes)
{
    exit_codes(false);
}

TEST(process_exit_codes_fallback)
{
    exit_codes(true);
}

static void killed(bool fallback)
{
    weft_runtime *rt;
    weft_process *p;
    weft_process_status st;
    char *argv[] = { "sleep", "1000", NULL };
    weft_process_options o = { .argv = argv };

    use_fallback(fallback);
    rt = nt_runtime(false);
    ASSERT_OK(weft_process_spawn(rt, &o, &p));
    ASSERT_EQ(-EAGAIN, weft_process_try_wait(p, &st));
    ASSERT_OK(weft_process_kill(p, 0));      /* alive */
    ASSERT_OK(weft_process_kill(p, SIGTERM));
    ASSERT_EQ(0, pw_wait(rt, p, &st));
    ASSERT_EQ(-1, st.code);
    ASSERT_EQ(SIGTERM, st.signal);
    ASSERT_EQ(-ESRCH, weft_process_kill(p, SIGKILL));
    weft_process_free(p);

    /* killed by itself */
    ASSERT_OK(sh(rt, "kill -9 $$", WEFT_STDIO_NULL, WEFT_STDIO_NULL, WEFT_STDIO_NULL, &p));
    ASSERT_EQ(0, pw_wait(rt, p, &st));
    ASSERT_EQ(SIGKILL, st.signal);
    weft_process_free(p);
    weft_runtime_free(rt);
    watcher_idle();
}

TEST(process_killed_by_signal)
{
    killed(false);
}

TEST(process_killed_by_signal_fallback)
{
    killed(true);
}

/* The child starts with an empty signal mask although the parent blocks
 * SIGUSR1 (as weft/signal.h asks programs to): SIGUSR1 kills it. */
TEST(process_child_signal_mask_is_reset)
{
    static const int sigs[] = { SIGUSR1 };
    weft_runtime *rt;
    weft_process *p;
    weft_process_status st;

    ASSERT_OK(weft_signal_block(sigs, 1));
    rt = nt_runtime(false);
    ASSERT_OK(sh(rt, "kill -USR1 $$; exit 7", WEFT_STDIO_NULL, WEFT_STDIO_NULL,
                 WEFT_STDIO_NULL, &p));
    ASSERT_EQ(0, pw_wait(rt, p, &st));
    ASSERT_EQ(SIGUSR1, st.signal);
    weft_process_free(p);
    weft_runtime_free(rt);
    watcher_idle();
}

/* ---- pipes ------------------------------------------------------------------------- */
struct feed {
    weft_stream *s;
    size_t len;
    uint32_t seed;
};

/* Coroutine: write the pattern, then close (end of file for the child). */
static int feed_co(void *arg)
{
    struct feed *f = arg;
    char *buf = malloc(f->len);
    ssize_t n;

    ASSERT(buf != NULL);
    nt_fill(buf, f->len, f->seed);
    n = weft_co_write_all(f->s, buf, f->len);
    free(buf);
    weft_stream_close(f->s);
    return n == (ssize_t)f->len ? 0 : (int)n;
}

static void cat_echo(bool current, bool fallback)
{
    const size_t len = 300 * 1024;    /* several pipe buffers: both sides wait */
    char *argv[] = { "cat", NULL };
    weft_process_options o = { .argv = argv,
                               .stdio = { { WEFT_STDIO_PIPE }, { WEFT_STDIO_PIPE } } };
    weft_runtime *rt;
    weft_process *p;
    weft_process_status st;
    struct feed f;
    weft_join *j;
    char *buf = malloc(len + 1);
    size_t got = 0;
    int fds0;

    use_fallback(fallback);
    rt = nt_runtime(current);
    {
        weft_stream *r, *w;           /* the reactor is made at first use: now */

        weft_process *q;

        ASSERT_OK(weft_pipe(rt, &r, &w));
        weft_stream_close(r);
        weft_stream_close(w);
        /* and, in the fallback, the SIGCHLD pipe (it stays) */
        ASSERT_OK(sh(rt, "exit 0", WEFT_STDIO_NULL, WEFT_STDIO_NULL, WEFT_STDIO_NULL, &q));
        ASSERT_EQ(0, pw_wait(rt, q, NULL));
        weft_process_free(q);
        watcher_idle();
    }
    fds0 = nt_count_fds();
    ASSERT_OK(weft_process_spawn(rt, &o, &p));
    ASSERT(weft_process_stdio(p, 0) != NULL);
    ASSERT(weft_process_stdio(p, 1) != NULL);
    ASSERT(weft_process_stdio(p, 2) == NULL);   /* inherited */
    f = (struct feed){ weft_process_stdio(p, 0), len, 7 };
    ASSERT_OK(weft_go(rt, feed_co, &f, &j));
    while (got < len + 1) {
        ssize_t r = st_read(rt, weft_process_stdio(p, 1), buf + got, len + 1 - got, PW_MS);

        ASSERT(r >= 0);
        if (r == 0)
            break;
        got += (size_t)r;
    }
    ASSERT_EQ(len, got);
    ASSERT_EQ(len, nt_check(buf, len, 7, 0));
    ASSERT_EQ(0, join_int(j));
    ASSERT_EQ(0, pw_wait(rt, p, &st));
    ASSERT_EQ(0, st.code);
    weft_process_free(p);
    free(buf);
    watcher_idle();
    ASSERT_EQ(fds0, nt_count_fds());
    weft_runtime_free(rt);
}

TEST(process_cat_echo)
{
    cat_echo(false, false);
}

TEST(process_cat_echo_current_thread)
{
    cat_echo(true, false);
}

TEST(process_cat_echo_fallback)
{
    cat_echo(false, true);
}

TEST(process_cat_echo_fallback_current_thread)
{
    cat_echo(true, true);
}

TEST(process_stdout_stderr_null_and_fd)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p;
    weft_process_status st;
    char buf[256];
    int pfd[2];

    /* stdout and stderr as two pipes */
    ASSERT_OK(sh(rt, "echo out; echo err >&2", WEFT_STDIO_NULL, WEFT_STDIO_PIPE,
                 WEFT_STDIO_PIPE, &p));
    read_all(rt, weft_process_stdio(p, 1), buf, sizeof(buf));
    ASSERT_EQ(0, strcmp(buf, "out\n"));
    read_all(rt, weft_process_stdio(p, 2), buf, sizeof(buf));
    ASSERT_EQ(0, strcmp(buf, "err\n"));
    ASSERT_EQ(0, pw_wait(rt, p, &st));
    weft_process_free(p);

    /* stdin from /dev/null: cat ends at once with nothing */
    {
        char *argv[] = { "cat", NULL };
        weft_process_options o = { .argv = argv,
                                   .stdio = { { WEFT_STDIO_NULL }, { WEFT_STDIO_PIPE } } };

        ASSERT_OK(weft_process_spawn(rt, &o, &p));
        ASSERT_EQ(0, read_all(rt, weft_process_stdio(p, 1), buf, sizeof(buf)));
        ASSERT_EQ(0, pw_wait(rt, p, &st));
        ASSERT_EQ(0, st.code);
        weft_process_free(p);
    }

    /* a descriptor of the caller's, for stdout and (2>&1) stderr; it stays
     * open and the caller's */
    ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
    {
        char *argv[] = { "sh", "-c", "echo one; echo two >&2", NULL };
        weft_process_options o = { .argv = argv,
                                   .stdio = { { WEFT_STDIO_NULL },
                                              { WEFT_STDIO_FD, pfd[1] },
                                              { WEFT_STDIO_FD, pfd[1] } } };
        ssize_t n;

        ASSERT_OK(weft_process_spawn(rt, &o, &p));
        ASSERT_EQ(0, pw_wait(rt, p, &st));
        ASSERT(fcntl(pfd[1], F_GETFD) >= 0);   /* still ours */
        close(pfd[1]);
        n = read(pfd[0], buf, sizeof(buf) - 1);
        ASSERT_EQ(8, n);
        buf[n] = '\0';
        ASSERT_EQ(0, strcmp(buf, "one\ntwo\n"));
        close(pfd[0]);
        weft_process_free(p);
    }
    weft_runtime_free(rt);
    watcher_idle();
}

/* Swapped descriptors and 0..2 themselves: every dup2 in the child reads a
 * descriptor no earlier dup2 replaced. Here stdout goes to the parent's
 * stderr and stderr to a pipe of ours. */
TEST(process_stdio_fd_swaps)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p;
    weft_process_status st;
    char buf[64];
    int pfd[2];
    ssize_t n;

    ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
    {
        char *argv[] = { "sh", "-c", "echo x >&2", NULL };
        weft_process_options o = { .argv = argv,
                                   .stdio = { { WEFT_STDIO_NULL },
                                              { WEFT_STDIO_FD, 2 },
                                              { WEFT_STDIO_FD, pfd[1] } } };

        ASSERT_OK(weft_process_spawn(rt, &o, &p));
    }
    ASSERT_EQ(0, pw_wait(rt, p, &st));
    ASSERT_EQ(0, st.code);
    close(pfd[1]);
    n = read(pfd[0], buf, sizeof(buf));
    ASSERT_EQ(2, n);
    ASSERT_EQ(0, memcmp(buf, "x\n", 2));
    close(pfd[0]);
    weft_process_free(p);
    weft_runtime_free(rt);
    watcher_idle();
}

TEST(process_cwd_env_and_file)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p;
    weft_process_status st;
    char buf[256];
    char *argv[] = { "not-a-real-name", "-c", "pwd; echo \"$FOO\"; echo \"$0\"", NULL };
    char *envp[] = { "FOO=bar baz", NULL };
    weft_process_options o = { .file = "/bin/sh", .argv = argv, .envp = envp, .cwd = "/",
                               .stdio = { { WEFT_STDIO_NULL }, { WEFT_STDIO_PIPE } } };

    ASSERT_OK(weft_process_spawn(rt, &o, &p));
    read_all(rt, weft_process_stdio(p, 1), buf, sizeof(buf));
    ASSERT_EQ(0, strcmp(buf, "/\nbar baz\nnot-a-real-name\n"));
    ASSERT_EQ(0, pw_wait(rt, p, &st));
    ASSERT_EQ(0, st.code);
    weft_process_free(p);
    weft_runtime_free(rt);
    watcher_idle();
}

TEST(process_take_stdio_outlives_process)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p;
    weft_stream *out;
    char buf[64];

    ASSERT_OK(sh(rt, "echo kept", WEFT_STDIO_NULL, WEFT_STDIO_PIPE, WEFT_STDIO_INHERIT, &p));
    out = weft_process_take_stdio(p, 1);
    ASSERT(out != NULL);
    ASSERT(weft_process_stdio(p, 1) == NULL);
    ASSERT(weft_process_take_stdio(p, 1) == NULL);
    weft_process_free(p);             /* leaves `out` open */
    read_all(rt, out, buf, sizeof(buf));
    ASSERT_EQ(0, strcmp(buf, "kept\n"));
    ASSERT_OK(weft_stream_close(out));
    weft_runtime_free(rt);
    watcher_idle();
}

/* ---- errors ------------------------------------------------------------------------ */
TEST(process_spawn_errors_leave_nothing)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p = (weft_process *)(uintptr_t)1;
    char *missing[] = { "weft-no-such-program-here", NULL };
    char *abs_missing[] = { "/nonexistent/weft/prog", NULL };
    char *notexec[] = { "/etc/passwd", NULL };
    char *ok[] = { "true", NULL };
    weft_process_options o = { .argv = missing,
                               .stdio = { { WEFT_STDIO_PIPE }, { WEFT_STDIO_PIPE },
                                          { WEFT_STDIO_PIPE } } };
    long live0;
    int fds0;

    /* warm up: the reactor exists, the table has pages */
    ASSERT_OK(sh(rt, "exit 0", WEFT_STDIO_PIPE, WEFT_STDIO_NULL, WEFT_STDIO_NULL, &p));
    ASSERT_EQ(0, poll_exit(p, NULL));
    weft_process_free(p);
    watcher_idle();
    fds0 = nt_count_fds();
    live0 = harness_live();
    p = (weft_process *)(uintptr_t)1;

    ASSERT_EQ(-ENOENT, weft_process_spawn(rt, &o, &p));
    o.argv = abs_missing;
    ASSERT_EQ(-ENOENT, weft_process_spawn(rt, &o, &p));
    o.argv = notexec;
    ASSERT_EQ(-EACCES, weft_process_spawn(rt, &o, &p));
    o.argv = ok;
    o.cwd = "/nonexistent/weft/dir";
    ASSERT_EQ(-ENOENT, weft_process_spawn(rt, &o, &p));
    o.cwd = "/etc/passwd";
    ASSERT_EQ(-ENOTDIR, weft_process_spawn(rt, &o, &p));
    o.cwd = NULL;
    o.file = "";
    ASSERT_EQ(-ENOENT, weft_process_spawn(rt, &o, &p));
    o.file = NULL;
    {
        /* one argument over the kernel's 128 KiB per string */
        size_t big = 256 * 1024;
        char *arg = malloc(big + 1);
        char *argv_big[] = { "true", arg, NULL };

        ASSERT(arg != NULL);
        memset(arg, 'x', big);
        arg[big] = '\0';
        o.argv = argv_big;
        ASSERT_EQ(-E2BIG, weft_process_spawn(rt, &o, &p));
        o.argv = ok;
        free(arg);
    }
    ASSERT(p == (weft_process *)(uintptr_t)1);   /* untouched */
    ASSERT_EQ(fds0, nt_count_fds());
    ASSERT_EQ(live0, harness_live());
    ASSERT_EQ(0, harness_count_threads("weft-child"));
    weft_runtime_free(rt);
}

TEST(process_bad_arguments)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p = NULL;
    char *argv[] = { "true", NULL };
    char *empty[] = { NULL };
    weft_process_options o = { .argv = argv };
    weft_process_wait w;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = 0;

    ASSERT_EQ(-EINVAL, weft_process_spawn(rt, NULL, &p));
    ASSERT_EQ(-EINVAL, weft_process_spawn(rt, &o, NULL));
    o.argv = NULL;
    ASSERT_EQ(-EINVAL, weft_process_spawn(rt, &o, &p));
    o.argv = empty;
    ASSERT_EQ(-EINVAL, weft_process_spawn(rt, &o, &p));
    o.argv = argv;
    o.stdio[1].mode = 4;
    ASSERT_EQ(-EINVAL, weft_process_spawn(rt, &o, &p));
    o.stdio[1].mode = -1;
    ASSERT_EQ(-EINVAL, weft_process_spawn(rt, &o, &p));
    o.stdio[1] = (weft_stdio){ WEFT_STDIO_FD, -1 };
    ASSERT_EQ(-EBADF, weft_process_spawn(rt, &o, &p));
    o.stdio[1] = (weft_stdio){ WEFT_STDIO_FD, 1000000 };
    ASSERT_EQ(-EBADF, weft_process_spawn(rt, &o, &p));
    o.stdio[1] = (weft_stdio){ WEFT_STDIO_FD, 987 };     /* not open */
    ASSERT_EQ(-EBADF, weft_process_spawn(rt, &o, &p));
    o.stdio[1] = (weft_stdio){ WEFT_STDIO_INHERIT, 0 };
    o.flags = 0x80;
    ASSERT_EQ(-EINVAL, weft_process_spawn(rt, &o, &p));
    o.flags = 0;
    /* a pipe needs a runtime: none given, and this thread is no worker */
    o.stdio[0].mode = WEFT_STDIO_PIPE;
    ASSERT_EQ(-EINVAL, weft_process_spawn(NULL, &o, &p));
    o.stdio[0].mode = WEFT_STDIO_INHERIT;
    ASSERT(p == NULL);

    ASSERT_EQ(-EINVAL, weft_process_pid(NULL));
    ASSERT_EQ(-EINVAL, weft_process_kill(NULL, SIGTERM));
    ASSERT_EQ(-EINVAL, weft_process_try_wait(NULL, NULL));
    ASSERT(weft_process_stdio(NULL, 0) == NULL);
    ASSERT(weft_process_take_stdio(NULL, 1) == NULL);
    weft_process_free(NULL);
    weft_process_wait_init(&w, NULL, NULL);
    ASSERT_EQ(WEFT_READY, weft_process_wait_poll(&w, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_process_wait_drop(&w);
    weft_process_wait_drop(&w);
    res = 0;
    ASSERT_EQ(WEFT_READY, weft_process_wait_poll(NULL, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_process_wait_init(NULL, NULL, NULL);
    weft_process_wait_drop(NULL);

    /* no runtime is needed without pipes */
    ASSERT_OK(weft_process_spawn(NULL, &o, &p));
    ASSERT_EQ(-EINVAL, weft_process_kill(p, -1));
    ASSERT_EQ(-EINVAL, weft_process_kill(p, 100000));
    ASSERT(weft_process_stdio(p, -1) == NULL);
    ASSERT(weft_process_stdio(p, 3) == NULL);
    ASSERT(weft_process_stdio(p, 0) == NULL);     /* inherited: no pipe */
    ASSERT_EQ(0, pw_wait(rt, p, NULL));
    weft_process_free(p);
    weft_runtime_free(rt);
    watcher_idle();
}

TEST(process_spawn_alloc_failures)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p;
    bool ok = false;
    int enomem = 0, fds0;
    long live0;

    ASSERT_OK(sh(rt, "exit 0", WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, &p));
    ASSERT_EQ(0, poll_exit(p, NULL));
    weft_process_free(p);
    watcher_idle();
    fds0 = nt_count_fds();
    live0 = harness_live();
    for (size_t k = 1; !ok && k < 50; k++) {
        int err;

        p = NULL;
        harness_fail_alloc_at(k);
        err = sh(rt, "exit 5", WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, &p);
        harness_fail_alloc_at(0);
        if (err == 0) {
            weft_process_status st;

            ok = true;
            ASSERT_EQ(0, poll_exit(p, &st));
            ASSERT_EQ(5, st.code);
            weft_process_free(p);
            watcher_idle();
        } else {
            ASSERT_EQ(-ENOMEM, err);
            ASSERT(p == NULL);
            enomem++;
        }
        ASSERT_EQ(fds0, nt_count_fds());
        ASSERT_EQ(live0, harness_live());
        ASSERT_EQ(0, harness_count_threads("weft-child"));
    }
    ASSERT(ok);
    ASSERT(enomem >= 1);
    weft_runtime_free(rt);
}

/* SIGCHLD set to SIG_IGN makes the kernel reap children itself: the wait
 * reports -ECHILD (documented as unsupported, but no hang and no crash). */
TEST(process_sigchld_ignored_reports_echild)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p;
    char *argv[] = { "true", NULL };
    weft_process_options o = { .argv = argv };

    ASSERT(signal(SIGCHLD, SIG_IGN) != SIG_ERR);
    ASSERT_OK(weft_process_spawn(rt, &o, &p));
    ASSERT_EQ(-ECHILD, pw_wait(rt, p, NULL));
    ASSERT_EQ(-ECHILD, weft_process_try_wait(p, NULL));
    ASSERT_EQ(-ESRCH, weft_process_kill(p, SIGTERM));
    weft_process_free(p);
    watcher_idle();
    ASSERT(signal(SIGCHLD, SIG_DFL) != SIG_ERR);
    weft_runtime_free(rt);
}

/* ---- descriptors ------------------------------------------------------------------- */
/* The child sees 0, 1, 2 and the directory ls reads, nothing else: not the
 * runtime's epoll and eventfd, not other pipes and sockets, not the
 * pidfds of other children, not the watcher's descriptors. */
/* Descriptors this test process inherited from whoever started it (a
 * shell, ctest) are not weft's: make them close-on-exec first, so that any
 * descriptor the child sees beyond 0..2 is one weft leaked. */
static void cloexec_inherited(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;

    ASSERT(d != NULL);
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);

        if (e->d_name[0] != '.' && fd > 2 && fd != dirfd(d))
            fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
    }
    closedir(d);
}

static void no_fd_into_child(bool fallback)
{
    weft_runtime *rt;
    weft_process *p, *other;
    weft_stream *r, *w;
    weft_socket *l;
    struct sockaddr_storage addr;
    socklen_t alen;
    char buf[256];
    char *argv[] = { "ls", "/proc/self/fd", NULL };
    weft_process_options o = { .argv = argv,
                               .stdio = { { WEFT_STDIO_NULL }, { WEFT_STDIO_PIPE },
                                          { WEFT_STDIO_NULL } } };

    use_fallback(fallback);
    cloexec_inherited();
    rt = nt_runtime(false);
    ASSERT_OK(weft_pipe(rt, &r, &w));
    nt_listen(rt, &l, &addr, &alen);
    /* a child that lives meanwhile: its pidfd and pipe are open */
    ASSERT_OK(sh(rt, "cat", WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_NULL, &other));
    ASSERT_OK(weft_process_spawn(rt, &o, &p));
    read_all(rt, weft_process_stdio(p, 1), buf, sizeof(buf));
    if (strcmp(buf, "0\n1\n2\n3\n") != 0)
        harness_fail(__FILE__, __LINE__, "the child saw descriptors:\n%s", buf);
    ASSERT_EQ(0, pw_wait(rt, p, NULL));
    weft_process_free(p);
    weft_process_free(other);         /* closes cat's stdin: it ends */
    weft_stream_close(r);
    weft_stream_close(w);
    weft_socket_close(l);
    weft_runtime_free(rt);
    watcher_idle();
}

TEST(process_no_fd_leaks_into_child)
{
    no_fd_into_child(false);
}

TEST(process_no_fd_leaks_into_child_fallback)
{
    no_fd_into_child(true);
}

/* Many spawns with pipes, waited for and freed: the parent's descriptor
 * count comes back (after the first, which makes the reactor and, in the
 * fallback, the SIGCHLD pipe that stays). */
static void no_fd_in_parent(bool fallback)
{
    weft_runtime *rt;
    weft_process *p;
    int fds0;

    use_fallback(fallback);
    rt = nt_runtime(false);
    ASSERT_OK(sh(rt, "exit 0", WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, &p));
    ASSERT_EQ(0, pw_wait(rt, p, NULL));
    weft_process_free(p);
    watcher_idle();
    fds0 = nt_count_fds();
    for (int i = 0; i < 20; i++) {
        ASSERT_OK(sh(rt, "echo hi; exit 2", WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_PIPE,
                     &p));
        if (i % 2) {
            weft_process_status st;

            ASSERT_EQ(0, pw_wait(rt, p, &st));
            ASSERT_EQ(2, st.code);
        }
        weft_process_free(p);         /* odd ones: before they exit, perhaps */
    }
    watcher_idle();
    ASSERT_EQ(fds0, nt_count_fds());
    weft_runtime_free(rt);
}

TEST(process_no_fd_leaks_in_parent)
{
    no_fd_in_parent(false);
}

TEST(process_no_fd_leaks_in_parent_fallback)
{
    no_fd_in_parent(true);
}
