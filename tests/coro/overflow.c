/* SPDX-License-Identifier: MIT */
/* Stack overflow: a coroutine that runs off its stack hits the guard page;
 * weft's handler names it and aborts (in a forked child). A fault that is
 * not an overflow goes to the previous handler as before. */
#include "coro_test.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int deep(int n)
{
    volatile char frame[256];

    frame[0] = (char)n;
    frame[sizeof(frame) - 1] = (char)n;
    if (n == -1)                /* never: keeps the recursion unbounded */
        return 0;
    return deep(n + 1) + frame[0] + frame[sizeof(frame) - 1];
}

static int overflows(void *arg)
{
    (void)arg;
    return deep(0);
}

static int null_deref(void *arg)
{
    return *(volatile int *)arg;
}

/* Run `child` in a forked process with stderr captured; return its wait
 * status and the text in buf. */
static int in_child(void (*child)(void), char *buf, size_t cap)
{
    int fds[2], status = 0;
    size_t len = 0;
    ssize_t n;
    pid_t pid;

    ASSERT_EQ(0, pipe(fds));
    fflush(NULL);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        child();
        _exit(0);
    }
    close(fds[1]);
    while (len + 1 < cap && (n = read(fds[0], buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(fds[0]);
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    return status;
}

static void overflow_child(void)
{
    weft_runtime *rt = NULL;
    weft_go_options opt = { .stack_size = 32 * 1024, .name = "deep-recursion" };
    weft_join *j;

    if (weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }) < 0)
        _exit(3);
    if (weft_go_opt(rt, overflows, NULL, &opt, &j) < 0)
        _exit(4);
    weft_join_wait(j, NULL);
    _exit(5);                   /* not reached: the overflow aborts */
}

TEST(overflow_reports_and_aborts)
{
    char out[4096];
    int st = in_child(overflow_child, out, sizeof(out));

    fprintf(stderr, "child said: %s", out);
    ASSERT(WIFSIGNALED(st));
    ASSERT_EQ(SIGABRT, WTERMSIG(st));
    ASSERT(strstr(out, "stack overflow in coroutine \"deep-recursion\"") != NULL);
    ASSERT(strstr(out, "guard page") != NULL);
}

static void segv_child(void)
{
    weft_runtime *rt = NULL;
    weft_join *j;

    if (weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }) < 0)
        _exit(3);
    if (weft_go(rt, null_deref, NULL, &j) < 0)
        _exit(4);
    weft_join_wait(j, NULL);
    _exit(5);
}

TEST(other_faults_chain_to_the_old_handler)
{
    char out[8192];
    int st = in_child(segv_child, out, sizeof(out));

    /* killed by SIGSEGV (default action), or by the sanitizer's own
     * handler (which reports and aborts); never reported as an overflow */
    ASSERT(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 5));
    ASSERT(strstr(out, "stack overflow in coroutine") == NULL);
}
