/* SPDX-License-Identifier: MIT */
/* Shared pieces of the child process tests (process.c, process_reap.c):
 * the fallback switch, a wait under a time limit, `sh -c` with chosen
 * stdio, reading a stream to its end, and waiting for the child watcher to
 * have nothing left (every child reaped, its thread gone). Everything is
 * static. */
#ifndef WEFT_PROCESS_TEST_H
#define WEFT_PROCESS_TEST_H

#include "stream_test.h"

#include <signal.h>
#include <sys/wait.h>

#define PW_MS 20000u                  /* "the child has exited": far below this */

/* WEFT_PROCESS_NO_PIDFD=1 (read at each spawn): the SIGCHLD fallback. */
static NT_UNUSED void use_fallback(bool on)
{
    if (on)
        ASSERT_EQ(0, setenv("WEFT_PROCESS_NO_PIDFD", "1", 1));
    else
        ASSERT_EQ(0, unsetenv("WEFT_PROCESS_NO_PIDFD"));
}

/* ---- helpers ------------------------------------------------------------------- */
/* Wait for a process under a limit: the wait's result, or -ETIMEDOUT. */
typedef struct pw_task {
    weft_process *p;
    uint64_t ms;
    weft_process_status *st;
    int *waiting;                     /* set once the wait is pending */
    weft_process_wait w;
    weft_timeout t;
    bool init;
    int res;
} pw_task;

static weft_poll pw_task_poll(pw_task *f, weft_context *cx, int *out)
{
    int err = 0;

    if (!f->init) {
        f->res = -12345;
        weft_process_wait_init(&f->w, f->p, f->st);
        weft_timeout_init(&f->t, &weft_process_wait_future, &f->w, f->ms);
        f->init = true;
    }
    if (weft_timeout_poll(&f->t, cx, &err, &f->res) == WEFT_PENDING) {
        if (f->waiting)
            __atomic_store_n(f->waiting, 1, __ATOMIC_RELEASE);
        return WEFT_PENDING;
    }
    *out = err ? err : f->res;
    return WEFT_READY;
}

static NT_UNUSED void pw_task_drop(pw_task *f)
{
    if (f->init) {
        weft_timeout_drop(&f->t);
        weft_process_wait_drop(&f->w);    /* idempotent */
    }
}

WEFT_DEFINE_FUTURE(pw_task, pw_task_poll, pw_task_drop, int);

static NT_UNUSED int pw_wait(weft_runtime *rt, weft_process *p, weft_process_status *st)
{
    int out = -12345;

    ASSERT_OK(weft_block_on(rt, &pw_task_future, &(pw_task){ .p = p, .ms = PW_MS, .st = st },
                            &out));
    return out;
}

static NT_UNUSED weft_join *pw_spawn(weft_runtime *rt, weft_process *p, weft_process_status *st,
                           int *waiting)
{
    weft_join *j;

    ASSERT_OK(weft_spawn(rt, &pw_task_future,
                         &(pw_task){ .p = p, .ms = PW_MS, .st = st, .waiting = waiting }, &j));
    return j;
}

static NT_UNUSED int join_int(weft_join *j)
{
    int out = -12345;
    int err = weft_join_wait(j, &out);

    weft_join_drop(j);
    return err ? err : out;
}

/* Spawn `sh -c cmd` with the given stdio. */
static NT_UNUSED int sh(weft_runtime *rt, const char *cmd, int in, int out, int err, weft_process **p)
{
    char *argv[] = { "sh", "-c", (char *)cmd, NULL };
    weft_process_options o = { .argv = argv,
                               .stdio = { { in, -1 }, { out, -1 }, { err, -1 } } };

    return weft_process_spawn(rt, &o, p);
}

/* Read a stream to its end (at most max - 1 bytes, NUL-terminated). */
static NT_UNUSED size_t read_all(weft_runtime *rt, weft_stream *s, char *buf, size_t max)
{
    size_t n = 0;

    for (;;) {
        ssize_t r = st_read(rt, s, buf + n, max - 1 - n, PW_MS);

        ASSERT(r >= 0);
        if (r == 0)
            break;
        n += (size_t)r;
        ASSERT(n < max - 1);
    }
    buf[n] = '\0';
    return n;
}

/* Wait for the exit with try_wait, no task: tests that count weft's live
 * allocations must not use weft_block_on(), whose task cell a worker may
 * release a moment after it returned. */
static NT_UNUSED int poll_exit(weft_process *p, weft_process_status *st)
{
    int err;

    for (unsigned i = 0; (err = weft_process_try_wait(p, st)) == -EAGAIN; i++) {
        ASSERT(i < 20000);
        usleep(1000);
    }
    return err;
}

/* Wait until the child watcher has nothing left (every child reaped, its
 * thread gone): then weft holds no memory or descriptor for children. */
static NT_UNUSED void watcher_idle(void)
{
    for (unsigned i = 0; harness_count_threads("weft-child") > 0; i++) {
        ASSERT(i < 20000);            /* 20 s */
        usleep(1000);
    }
}

/* Has pid been reaped (by anyone)? It is our child, so ECHILD says so. */
static NT_UNUSED bool reaped(int pid)
{
    siginfo_t si;

    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD;
}

static NT_UNUSED void wait_reaped(int pid)
{
    for (unsigned i = 0; !reaped(pid); i++) {
        ASSERT(i < 20000);
        usleep(1000);
    }
}

#endif
