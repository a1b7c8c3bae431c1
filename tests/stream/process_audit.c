// SPDX-License-Identifier: MIT
/* Adversarial checks of weft/process.h: spawn failures after some pipes
 * were made leave nothing open, a shut-down runtime, taking a pipe twice,
 * kill/try_wait around the exit, waits after the runtime is gone, huge
 * argument lists. */
#include "process_test.h"

/* A pipe for stdin is made, then stdout's descriptor is bad: -EBADF and
 * the pipe made first is closed again; no child runs. */
TEST(process_failure_after_a_pipe_leaves_nothing)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p = NULL;
    char *argv[] = { "true", NULL };
    weft_process_options o = { .argv = argv,
                               .stdio = { { WEFT_STDIO_PIPE, 0 }, { WEFT_STDIO_FD, 987 },
                                          { WEFT_STDIO_INHERIT, 0 } } };
    long live0;
    int fds0;

    ASSERT_OK(sh(rt, "exit 0", WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, &p));
    ASSERT_EQ(0, poll_exit(p, NULL));
    weft_process_free(p);
    watcher_idle();
    fds0 = nt_count_fds();
    live0 = harness_live();
    p = NULL;
    ASSERT_EQ(-EBADF, weft_process_spawn(rt, &o, &p));
    o.stdio[1] = (weft_stdio){ WEFT_STDIO_PIPE, 0 };
    o.stdio[2] = (weft_stdio){ 7, 0 };                /* unknown mode */
    ASSERT_EQ(-EINVAL, weft_process_spawn(rt, &o, &p));
    o.stdio[2] = (weft_stdio){ WEFT_STDIO_PIPE, 0 };
    o.cwd = "/nonexistent/weft/dir";
    ASSERT_EQ(-ENOENT, weft_process_spawn(rt, &o, &p));
    ASSERT(p == NULL);
    ASSERT_EQ(fds0, nt_count_fds());
    ASSERT_EQ(live0, harness_live());
    ASSERT_EQ(0, harness_count_threads("weft-child"));
    weft_runtime_free(rt);
}

/* Pipes need a live runtime: after its shutdown -ESHUTDOWN, nothing runs or
 * stays open; without pipes the runtime is not needed at all. */
TEST(process_spawn_on_a_shut_down_runtime)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p = NULL;
    char *argv[] = { "true", NULL };
    weft_process_options o = { .argv = argv,
                               .stdio = { { WEFT_STDIO_PIPE, 0 }, { WEFT_STDIO_NULL, 0 },
                                          { WEFT_STDIO_NULL, 0 } } };
    weft_process_status st = { 5, 5 };
    int fds0;

    ASSERT_OK(weft_runtime_shutdown(rt));
    fds0 = nt_count_fds();
    ASSERT_EQ(-ESHUTDOWN, weft_process_spawn(rt, &o, &p));
    ASSERT(p == NULL);
    ASSERT_EQ(fds0, nt_count_fds());
    ASSERT_EQ(0, harness_count_threads("weft-child"));
    o.stdio[0].mode = WEFT_STDIO_NULL;
    ASSERT_OK(weft_process_spawn(rt, &o, &p));
    ASSERT_EQ(0, poll_exit(p, &st));
    ASSERT_EQ(0, st.code);
    ASSERT_EQ(0, st.signal);
    weft_process_free(p);
    weft_runtime_free(rt);
    watcher_idle();
}

/* take_stdio hands a pipe over once; stdio() and a second take then give
 * NULL; the taken stream outlives free; kill 0 checks; -ESRCH once reaped;
 * try_wait -EAGAIN while it runs, then the same status every time. */
TEST(process_take_kill_try_wait_around_the_exit)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p = NULL;
    weft_process_status st = { 0, 0 }, st2 = { 0, 0 };
    weft_stream *in, *out;
    char buf[8];

    ASSERT_OK(sh(rt, "read x; exit 3", WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_NULL, &p));
    ASSERT(weft_process_pid(p) > 0);
    in = weft_process_take_stdio(p, 0);
    ASSERT(in != NULL);
    ASSERT(weft_process_take_stdio(p, 0) == NULL);
    ASSERT(weft_process_stdio(p, 0) == NULL);
    ASSERT(weft_process_stdio(p, 2) == NULL);         /* /dev/null: no pipe */
    out = weft_process_stdio(p, 1);
    ASSERT(out != NULL);
    ASSERT(weft_process_stdio(p, 1) == out);
    ASSERT_EQ(-EAGAIN, weft_process_try_wait(p, &st));
    ASSERT_EQ(0, weft_process_kill(p, 0));
    ASSERT_EQ(-EINVAL, weft_process_kill(p, NSIG));
    ASSERT_EQ(-EINVAL, weft_process_kill(p, INT32_MIN));
    ASSERT_EQ(1, write(weft_stream_fd(in), "\n", 1));
    ASSERT_EQ(0, poll_exit(p, &st));
    ASSERT_EQ(3, st.code);
    ASSERT_EQ(0, st.signal);
    ASSERT_EQ(-ESRCH, weft_process_kill(p, SIGKILL));
    ASSERT_EQ(-ESRCH, weft_process_kill(p, 0));
    ASSERT_EQ(0, weft_process_try_wait(p, &st2));
    ASSERT_EQ(3, st2.code);
    ASSERT_EQ(0, weft_process_try_wait(p, NULL));
    ASSERT_EQ(0, pw_wait(rt, p, NULL));
    ASSERT_EQ(0, st_read(rt, out, buf, sizeof(buf), PW_MS));   /* end of file */
    weft_process_free(p);
    ASSERT_OK(weft_stream_close(in));                 /* still the caller's */
    ASSERT_EQ(-EBADF, weft_stream_close(in));
    weft_runtime_free(rt);
    watcher_idle();
}

/* A wait future initialised before the runtime and the handle are freed,
 * polled by hand afterwards: it still completes with the status. */
TEST(process_wait_polled_after_runtime_and_handle_are_freed)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p = NULL;
    weft_process_status st = { 0, 0 };
    weft_process_wait w;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = 1, pid;
    weft_poll r;

    ASSERT_OK(sh(rt, "exit 9", WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_NULL, &p));
    pid = weft_process_pid(p);
    weft_process_wait_init(&w, p, &st);
    weft_runtime_free(rt);
    weft_process_free(p);
    wait_reaped(pid);
    for (unsigned i = 0; (r = weft_process_wait_poll(&w, &cx, &res)) == WEFT_PENDING; i++) {
        ASSERT(i < 20000);
        usleep(1000);
    }
    ASSERT_EQ(0, res);
    ASSERT_EQ(9, st.code);
    weft_process_wait_drop(&w);
    weft_process_wait_drop(&w);
    watcher_idle();
}

/* An argument list past the kernel's limit in count (not length):
 * -E2BIG, nothing left. */
TEST(process_huge_argument_count)
{
    size_t n = 3 * 1000 * 1000;
    char **argv = malloc((n + 2) * sizeof(char *));
    weft_process *p = NULL;
    weft_process_options o = { 0 };
    int fds0 = nt_count_fds();

    ASSERT(argv != NULL);
    argv[0] = "true";
    for (size_t i = 1; i <= n; i++)
        argv[i] = "x";
    argv[n + 1] = NULL;
    o.argv = argv;
    ASSERT_EQ(-E2BIG, weft_process_spawn(NULL, &o, &p));
    ASSERT(p == NULL);
    ASSERT_EQ(fds0, nt_count_fds());
    free(argv);
    watcher_idle();
}

/* "Every call may be made from any thread": four threads hammer kill(0),
 * try_wait, pid and stdio on one process while a task waits for it and the
 * child exits; then the handle is freed from one of them. No race (TSan),
 * every answer one of the documented ones. */
typedef struct hammer {
    weft_process *p;
    atomic_int stop;
    atomic_int bad;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;

    while (!atomic_load(&h->stop)) {
        int k = weft_process_kill(h->p, 0);
        int t = weft_process_try_wait(h->p, NULL);

        if ((k != 0 && k != -ESRCH) || (t != 0 && t != -EAGAIN) || weft_process_pid(h->p) <= 0)
            atomic_fetch_add(&h->bad, 1);
        (void)weft_process_stdio(h->p, 1);
        sched_yield();
    }
    return NULL;
}

TEST(process_calls_from_many_threads)
{
    weft_runtime *rt = nt_runtime(false);
    int rounds = (int)harness_scale(20);

    for (int r = 0; r < rounds; r++) {
        hammer h = { .p = NULL };
        pthread_t th[4];
        weft_process_status st = { 0, 0 };

        ASSERT_OK(sh(rt, "exit 4", WEFT_STDIO_NULL, WEFT_STDIO_PIPE, WEFT_STDIO_NULL, &h.p));
        for (int i = 0; i < 4; i++)
            ASSERT_EQ(0, pthread_create(&th[i], NULL, hammer_main, &h));
        ASSERT_EQ(0, pw_wait(rt, h.p, &st));
        ASSERT_EQ(4, st.code);
        atomic_store(&h.stop, 1);
        for (int i = 0; i < 4; i++)
            ASSERT_EQ(0, pthread_join(th[i], NULL));
        ASSERT_EQ(0, atomic_load(&h.bad));
        weft_process_free(h.p);
    }
    weft_runtime_free(rt);
    watcher_idle();
}
