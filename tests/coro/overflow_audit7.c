// SPDX-License-Identifier: MIT
/* Audit 7: coro.h's stack overflow report, checked in forked children
 * where tests/coro/overflow.c does not look: "prints the coroutine's name
 * and stack bounds to stderr and aborts" -- the bounds span the usable
 * size asked for (rounded up to pages), the report comes from whichever
 * worker the coroutine migrated to, a coroutine without a name is
 * "coroutine", the thread driving a current-thread runtime reports too, and
 * a SIGSEGV handler the program installed before weft's first spawn does
 * not hide an overflow. */
#include "coro_test.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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

/* many parks first, so the overflow happens on whatever worker resumed it */
static int hops_then_overflows(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++)
        if (weft_co_yield() < 0 || (i % 16 == 0 && weft_co_sleep(1) < 0))
            return -1;
    return deep(0);
}

/* the report's "(stack LO-HI, N bytes" agrees with itself and with `want` */
static void check_bounds(const char *out, size_t want)
{
    const char *p = strstr(out, "(stack ");
    uintmax_t lo = 0, hi = 0, n = 0;

    ASSERT(p != NULL);
    ASSERT_EQ(3, sscanf(p, "(stack %jx-%jx, %ju bytes", &lo, &hi, &n));
    ASSERT(lo != 0 && hi > lo);
    ASSERT_EQ((long long)(hi - lo), (long long)n);
    ASSERT_EQ((long long)want, (long long)n);
    ASSERT_EQ(0, (long long)(lo % 4096));
}

static void migrated_child(void)
{
    weft_runtime *rt = NULL;
    /* one byte over the minimum: rounded up to the next page */
    weft_go_options opt = { .stack_size = WEFT_CO_STACK_MIN + 1, .name = "hopper" };
    weft_join *j;

    if (weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 4 }) < 0)
        _exit(3);
    if (weft_go_opt(rt, hops_then_overflows, NULL, &opt, &j) < 0)
        _exit(4);
    weft_join_wait(j, NULL);
    _exit(5);
}

TEST(overflow_after_migration_reports_name_and_bounds)
{
    char out[4096];
    int st = ct_in_child(migrated_child, out, sizeof(out));

    ASSERT(WIFSIGNALED(st));
    ASSERT_EQ(SIGABRT, WTERMSIG(st));
    ASSERT(strstr(out, "weft: stack overflow in coroutine \"hopper\"") != NULL);
    ASSERT(strstr(out, "guard page") != NULL);
    check_bounds(out, WEFT_CO_STACK_MIN + 4096);
}

static void current_thread_child(void)
{
    weft_runtime *rt = NULL;
    weft_go_options opt = { .stack_size = 3 * WEFT_CO_STACK_MIN };

    if (weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }) < 0)
        _exit(3);
    weft_co_block_on(rt, overflows, NULL, &opt, NULL);
    _exit(5);
}

TEST(overflow_on_the_driving_thread_without_a_name)
{
    char out[4096];
    int st = ct_in_child(current_thread_child, out, sizeof(out));

    ASSERT(WIFSIGNALED(st));
    ASSERT_EQ(SIGABRT, WTERMSIG(st));
    ASSERT(strstr(out, "weft: stack overflow in coroutine \"coroutine\"") != NULL);
    check_bounds(out, 3 * WEFT_CO_STACK_MIN);
}

static void users_handler(int sig)
{
    static const char msg[] = "the user's handler ran\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);

    (void)sig;
    (void)w;
    _exit(9);
}

static void user_handler_child(void)
{
    weft_runtime *rt = NULL;
    weft_go_options opt = { .name = "under-a-handler" };
    struct sigaction sa;
    weft_join *j;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = users_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    if (weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }) < 0)
        _exit(3);
    if (weft_go_opt(rt, overflows, NULL, &opt, &j) < 0)
        _exit(4);
    weft_join_wait(j, NULL);
    _exit(5);
}

TEST(overflow_is_reported_past_a_handler_installed_before)
{
    char out[4096];
    int st = ct_in_child(user_handler_child, out, sizeof(out));

    ASSERT(WIFSIGNALED(st));
    ASSERT_EQ(SIGABRT, WTERMSIG(st));
    ASSERT(strstr(out, "weft: stack overflow in coroutine \"under-a-handler\"") != NULL);
    ASSERT(strstr(out, "the user's handler ran") == NULL);
}
