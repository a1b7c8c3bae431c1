/* SPDX-License-Identifier: MIT */
/* An await inside a `switch` statement: its resume point is a case of that
 * switch, not of WEFT_BEGIN's, so a resume finds no case there. WEFT_END
 * must abort with a message naming the function, not finish READY without
 * having written the output (issue 9, item 10). The bad function runs in a
 * child process; the parent checks its signal and stderr. */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "task_test.h"

typedef struct switched {
    weft_async co;
    int kind;
    weft_yield y;
} switched;

/* -Wjump-misses-init is quiet here: nothing initialised is jumped over */
static weft_poll switched_poll(switched *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    switch (f->kind) {
    case 1:
        WEFT_YIELD(&f->co, &f->y, cx);      /* resume point inside the switch */
        break;
    default:
        break;
    }
    *(int *)out = 42;
    WEFT_END(&f->co);
}

/* The same function without the switch, for contrast: it must still work. */
static weft_poll straight_poll(switched *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    WEFT_YIELD(&f->co, &f->y, cx);
    *(int *)out = 42;
    WEFT_END(&f->co);
}

/* child: poll `fn` by hand until READY; exit 3 when it completes without
 * writing its output, 4 when it completes correctly, 5 if it never does */
static void child(weft_poll (*fn)(switched *, weft_context *, void *))
{
    weft_waker w = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&w);
    switched f = { .kind = 1 };
    int out = -1;

    for (int i = 0; i < 10; i++) {
        if (fn(&f, &cx, &out) == WEFT_READY)
            _exit(out == 42 ? 4 : 3);
    }
    _exit(5);
}

/* run child(fn) in a process; its stderr in buf, its wait status returned */
static int run_child(weft_poll (*fn)(switched *, weft_context *, void *), char *buf, size_t cap)
{
    int fds[2], status = 0;
    size_t len = 0;
    ssize_t n;
    pid_t pid;

    ASSERT_EQ(0, pipe(fds));
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        child(fn);
    }
    close(fds[1]);
    while (len + 1 < cap && (n = read(fds[0], buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(fds[0]);
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    return status;
}

TEST(await_in_switch_aborts_with_message)
{
    char err[1024];
    int status = run_child(switched_poll, err, sizeof(err));

    if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
        harness_fail(__FILE__, __LINE__, "an await inside a switch finished READY "
                                         "without writing its output");
    ASSERT(WIFSIGNALED(status));
    ASSERT_EQ(SIGABRT, WTERMSIG(status));
    if (strstr(err, "switched_poll") == NULL || strstr(err, "switch") == NULL)
        harness_fail(__FILE__, __LINE__, "message does not name the function: %s", err);
}

TEST(await_outside_switch_completes)
{
    char err[1024];
    int status = run_child(straight_poll, err, sizeof(err));

    ASSERT(WIFEXITED(status));
    ASSERT_EQ(4, WEXITSTATUS(status));
}
