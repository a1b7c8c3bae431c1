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
    int st = ct_in_child(overflow_child, out, sizeof(out));

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
    int st = ct_in_child(segv_child, out, sizeof(out));

    /* killed by SIGSEGV (default action), or by the sanitizer's own
     * handler (which reports and aborts); never reported as an overflow */
    ASSERT(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 5));
    ASSERT(strstr(out, "stack overflow in coroutine") == NULL);
}
