// SPDX-License-Identifier: MIT
/* A fifth look at weft/process.h (public API only): the child's signal
 * dispositions (SIGPIPE default, other ignored signals stay ignored), a
 * close-on-exec descriptor given as the child's own number, spawn errors
 * for a directory, a bad working directory and an empty environment, wait
 * twice and after free, kill's signal range, stdio lookups. Each test also
 * runs on the SIGCHLD fallback where it waits. */
#include "process_test.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

/* SigIgn from /proc/self/status of a child `cat`, as a mask. */
static unsigned long long child_sigign(weft_runtime *rt)
{
    char *argv[] = { "cat", "/proc/self/status", NULL };
    weft_process_options o = { .argv = argv, .stdio = { { WEFT_STDIO_NULL, -1 },
                                                        { WEFT_STDIO_PIPE, -1 } } };
    weft_process *p = NULL;
    weft_process_status st;
    static char buf[16384];
    const char *line;

    ASSERT_OK(weft_process_spawn(rt, &o, &p));
    read_all(rt, weft_process_stdio(p, 1), buf, sizeof(buf));
    ASSERT_OK(pw_wait(rt, p, &st));
    ASSERT_EQ(0, st.code);
    weft_process_free(p);
    line = strstr(buf, "SigIgn:");
    ASSERT(line != NULL);
    return strtoull(line + 7, NULL, 16);
}

TEST(child_sigpipe_is_default_other_ignores_stay)
{
    weft_runtime *rt = nt_runtime(false);
    unsigned long long ign;

    ASSERT(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
    ASSERT(signal(SIGUSR2, SIG_IGN) != SIG_ERR);
    ign = child_sigign(rt);
    ASSERT(!(ign & (1ull << (SIGPIPE - 1))));    /* reset to default */
    ASSERT(ign & (1ull << (SIGUSR2 - 1)));       /* inherited as exec leaves it */
    signal(SIGPIPE, SIG_DFL);
    signal(SIGUSR2, SIG_DFL);
    weft_runtime_free(rt);
}

/* { WEFT_STDIO_FD, 0 } as stdin when the parent's descriptor 0 is itself
 * close-on-exec: "weft duplicates it for the child", so the child still
 * has it. */
TEST(stdio_fd_of_its_own_number_survives_cloexec)
{
    weft_runtime *rt = nt_runtime(false);
    char *argv[] = { "cat", NULL };
    weft_process_options o = { .argv = argv, .stdio = { { WEFT_STDIO_FD, 0 },
                                                        { WEFT_STDIO_PIPE, -1 } } };
    weft_process *p = NULL;
    weft_process_status st;
    char buf[64];
    int saved, pp[2];

    saved = fcntl(0, F_DUPFD_CLOEXEC, 10);
    ASSERT(saved >= 0);
    ASSERT_EQ(0, pipe2(pp, O_CLOEXEC));
    ASSERT_EQ(0, dup3(pp[0], 0, O_CLOEXEC));    /* fd 0: the pipe, close-on-exec */
    close(pp[0]);
    ASSERT_EQ(6, write(pp[1], "piped\n", 6));
    close(pp[1]);
    ASSERT_OK(weft_process_spawn(rt, &o, &p));
    ASSERT_EQ(0, dup2(saved, 0));
    close(saved);
    read_all(rt, weft_process_stdio(p, 1), buf, sizeof(buf));
    ASSERT(strcmp(buf, "piped\n") == 0);
    ASSERT_OK(pw_wait(rt, p, &st));
    ASSERT_EQ(0, st.code);
    ASSERT(fcntl(0, F_GETFD) >= 0);              /* the caller's stays open */
    weft_process_free(p);
    weft_runtime_free(rt);
}

/* Spawn errors: the exec's errno, no child, *out untouched. */
TEST(spawn_errors_directory_cwd_and_empty_env)
{
    weft_runtime *rt = nt_runtime(false);
    char *argv[] = { "prog", NULL };
    char *env_argv[] = { "sh", "-c", "test -z \"$HOME$USER\"", NULL };
    char *empty_env[] = { NULL };
    weft_process *p = (weft_process *)0x1;
    weft_process_status st;

    ASSERT_EQ(-EACCES, weft_process_spawn(rt, &(weft_process_options){
                           .argv = argv, .file = "/" }, &p));
    ASSERT_EQ(-ENOENT, weft_process_spawn(rt, &(weft_process_options){
                           .argv = argv, .file = "/no/such/program" }, &p));
    ASSERT_EQ(-ENOENT, weft_process_spawn(rt, &(weft_process_options){
                           .argv = argv, .file = "" }, &p));
    ASSERT_EQ(-ENOENT, weft_process_spawn(rt, &(weft_process_options){
                           .argv = argv, .file = "no-such-program-audit5" }, &p));
    ASSERT_EQ(-ENOTDIR, weft_process_spawn(rt, &(weft_process_options){
                            .argv = env_argv, .file = "/bin/sh", .cwd = "/dev/null" }, &p));
    ASSERT_EQ(-ENOENT, weft_process_spawn(rt, &(weft_process_options){
                           .argv = env_argv, .file = "/bin/sh", .cwd = "/no/such/dir" }, &p));
    ASSERT((weft_process *)0x1 == p);
    /* an empty environment is one, not "the parent's" */
    setenv("HOME", "/home/audit5", 1);
    ASSERT_OK(weft_process_spawn(rt, &(weft_process_options){
                  .argv = env_argv, .file = "/bin/sh", .envp = empty_env }, &p));
    ASSERT_OK(pw_wait(rt, p, &st));
    ASSERT_EQ(0, st.code);
    weft_process_free(p);
    weft_runtime_free(rt);
}

/* Wait twice, try_wait after, a wait initialised before free and polled
 * after it: the same status every time. kill: 0 .. NSIG - 1 only. */
static void wait_twice(bool fallback)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p = NULL;
    weft_process_status a = { 99, 99 }, b = { 98, 98 }, c = { 97, 97 };
    weft_process_wait w;
    int res = -1;

    use_fallback(fallback);
    ASSERT_OK(sh(rt, "exit 7", WEFT_STDIO_NULL, WEFT_STDIO_NULL, WEFT_STDIO_NULL, &p));
    ASSERT_EQ(-EINVAL, weft_process_kill(p, -1));
    ASSERT_EQ(-EINVAL, weft_process_kill(p, NSIG));
    ASSERT_EQ(-EINVAL, weft_process_kill(p, 100000));
    ASSERT_OK(pw_wait(rt, p, &a));
    ASSERT_OK(pw_wait(rt, p, &b));
    ASSERT_OK(weft_process_try_wait(p, &c));
    ASSERT_EQ(7, a.code);
    ASSERT_EQ(0, a.signal);
    ASSERT(memcmp(&a, &b, sizeof(a)) == 0 && memcmp(&a, &c, sizeof(a)) == 0);
    /* reaped: no signal goes to a recycled pid */
    ASSERT_EQ(-ESRCH, weft_process_kill(p, SIGKILL));
    ASSERT_EQ(-ESRCH, weft_process_kill(p, 0));
    weft_process_wait_init(&w, p, &c);
    weft_process_free(p);                        /* the wait holds its own reference */
    memset(&c, 0, sizeof(c));
    ASSERT_EQ(WEFT_READY, weft_process_wait_poll(&w, &(weft_context){
                              &(weft_waker){ NULL, NULL }, NULL }, &res));
    ASSERT_EQ(0, res);
    ASSERT_EQ(7, c.code);
    weft_process_wait_drop(&w);
    weft_process_wait_drop(&w);                  /* idempotent */
    use_fallback(false);
    weft_runtime_free(rt);
}

TEST(wait_twice_and_after_free)
{
    wait_twice(false);
}

TEST(wait_twice_and_after_free_fallback)
{
    wait_twice(true);
}

/* Lookups: not a pipe, out of range, taken twice. */
TEST(stdio_lookups)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p = NULL;
    weft_stream *s;

    ASSERT_OK(sh(rt, "cat >/dev/null", WEFT_STDIO_PIPE, WEFT_STDIO_NULL, WEFT_STDIO_INHERIT, &p));
    ASSERT(weft_process_stdio(p, 1) == NULL);
    ASSERT(weft_process_stdio(p, 2) == NULL);
    ASSERT(weft_process_stdio(p, -1) == NULL);
    ASSERT(weft_process_stdio(p, 3) == NULL);
    ASSERT(weft_process_stdio(NULL, 0) == NULL);
    ASSERT(weft_process_take_stdio(p, 3) == NULL);
    s = weft_process_take_stdio(p, 0);
    ASSERT(s != NULL);
    ASSERT(weft_process_take_stdio(p, 0) == NULL);
    ASSERT(weft_process_stdio(p, 0) == NULL);
    ASSERT_OK(weft_stream_close(s));             /* end of file for cat */
    ASSERT_OK(pw_wait(rt, p, NULL));
    ASSERT_EQ(-EINVAL, weft_process_pid(NULL));
    ASSERT(weft_process_pid(p) > 0);
    weft_process_free(p);
    weft_process_free(NULL);
    weft_runtime_free(rt);
}
