/* SPDX-License-Identifier: MIT */
/* Helpers shared by the coroutine tests (header only; every .c under tests/
 * is its own binary). */
#ifndef WEFT_TESTS_CORO_TEST_H
#define WEFT_TESTS_CORO_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE        /* usleep, pipe, fork */
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"
#include "coro/coro.h"     /* weft__co_stacks_mapped() */

static inline weft_runtime *ct_runtime(unsigned workers)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = workers }));
    return rt;
}

static inline weft_runtime *ct_current_thread(void)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    return rt;
}

/* Free the runtime; then no coroutine stack may be left mapped (its workers
 * have exited, emptying their caches). */
#define CT_FREE(rt)                                                           \
    do {                                                                      \
        weft_runtime_free(rt);                                                \
        ASSERT_EQ(0, weft__co_stacks_mapped());                               \
    } while (0)

/* Run `child` in a forked process with its stderr captured: its wait status,
 * and the text it wrote in buf (also echoed to this test's stderr). */
static inline int ct_in_child(void (*child)(void), char *buf, size_t cap)
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
    fprintf(stderr, "child said: %s", buf);
    return status;
}

#endif
