/* SPDX-License-Identifier: MIT */
/* weft/process.h - child processes: spawn a program, talk to it through
 * pipes that are weft streams, wait for its exit as a future, kill it.
 *
 *     char *argv[] = { "cat", NULL };
 *     weft_process_options o = { .argv = argv,
 *                                .stdio = { { WEFT_STDIO_PIPE }, { WEFT_STDIO_PIPE } } };
 *     weft_process *p;
 *     weft_process_spawn(rt, &o, &p);
 *     ... write to weft_process_stdio(p, 0), close it, read weft_process_stdio(p, 1)
 *     ... in a task: weft_process_wait_init(&w, p, &st);
 *                    WEFT_AWAIT(&co, weft_process_wait_poll(&w, cx, &err));
 *     weft_process_free(p);
 *
 * Spawning. posix_spawn(3): the parent is not forked (glibc clones a child
 * that shares its memory until the exec), so spawning from a large process
 * is cheap, and a failed exec (no such program, not executable, a bad
 * working directory) is reported to the caller by weft_process_spawn()
 * itself as a negative errno, with no child left behind. The child starts
 * with an empty signal mask (weft/signal.h asks programs to block signals
 * in every thread; a child must not inherit that) and SIGPIPE at its
 * default action; every other disposition is inherited as exec leaves it
 * (an ignored signal stays ignored, as nohup expects).
 *
 * Descriptors. The child gets 0, 1 and 2 as asked (inherited, /dev/null, a
 * pipe, or a descriptor of yours), and every other descriptor of the parent
 * that is not close-on-exec. weft makes all of its own descriptors
 * close-on-exec (sockets, pipes, the reactor's epoll and eventfd, signalfds,
 * pidfds, the descriptors it makes for spawning): none of them reaches a
 * child. Descriptors you open yourself without O_CLOEXEC are inherited,
 * as with any exec.
 *
 * Waiting. Every child is watched by weft's child watcher: one process-wide
 * thread ("weft-child"), started with the first child and gone again when
 * no child is left to reap, that sleeps in epoll_wait on the children's
 * pidfds (pidfd_open(2), Linux 5.3) and reaps each as it exits. Where the
 * kernel has no pidfd_open (or it fails, or the environment variable
 * WEFT_PROCESS_NO_PIDFD is set to anything but "" or "0" when the child is
 * spawned: the fallback is tested so), the watcher learns of exits from
 * SIGCHLD instead: weft installs a SIGCHLD handler once (SA_RESTART, calling
 * on to the handler that was there before, if any) that only writes a byte
 * to a pipe the watcher reads, and the watcher then looks at each of its
 * children with waitid(WNOHANG); it also looks every 100 ms while such
 * children live, in case SIGCHLD is blocked in every thread or a handler
 * installed later replaced weft's. That handler and its pipe stay for the
 * life of the process. The watcher does not
 * depend on any runtime: waits complete, and children are reaped, even
 * after the runtime that spawned them is freed.
 *
 * No zombies. A child is reaped by weft as soon as it exits, whatever the
 * program does: wait for it or not, free the handle before or after the
 * exit, abort the task waiting for it, free the runtime. The exit status
 * is kept in the handle for weft_process_try_wait() and every wait.
 * weft_process_free() does not kill the child (unless the options ask for
 * it with WEFT_PROCESS_KILL_ON_FREE): it runs on, and is reaped in the
 * background when it exits. So never call waitpid(-1, ...) or wait(), nor
 * set SIGCHLD to SIG_IGN (which makes the kernel reap children itself): a
 * child of weft reaped by someone else reports -ECHILD to its waits (and
 * its status is lost).
 *
 * Thread: every call may be made from any thread. One handle has one
 * owner who frees it once; wait futures hold a reference of their own, so
 * a wait that is pending (in another task, another runtime, a
 * coroutine) while the handle is freed still completes. */
#ifndef WEFT_PROCESS_H
#define WEFT_PROCESS_H

#include "core.h"
#include "lock.h"
#include "sched.h"
#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_process weft_process;     /* opaque, reference-counted */

/* What a child's descriptor 0, 1 or 2 is. */
typedef enum weft_stdio_mode {
    WEFT_STDIO_INHERIT = 0,   /* the parent's own 0/1/2 (the default) */
    WEFT_STDIO_NULL = 1,      /* /dev/null (read: end of file; write: discarded) */
    WEFT_STDIO_PIPE = 2,      /* a pipe whose other end is a weft stream of the
                               * parent (weft_process_stdio()): the parent writes
                               * the child's stdin, reads its stdout/stderr */
    WEFT_STDIO_FD = 3,        /* `fd`, a descriptor of the parent's (it stays the
                               * caller's: weft duplicates it for the child and
                               * never closes it); any descriptor, even 0, 1, 2.
                               * Always the PARENT's number: { WEFT_STDIO_FD, 1 }
                               * as stderr is the parent's stdout, which is the
                               * shell's "2>&1" only while stdout is inherited
                               * too; it never means the child's stdout pipe */
} weft_stdio_mode;

typedef struct weft_stdio {
    int mode;                 /* a weft_stdio_mode */
    int fd;                   /* WEFT_STDIO_FD only */
} weft_stdio;

/* Flags for weft_process_options.flags. */
#define WEFT_PROCESS_KILL_ON_FREE 1u  /* weft_process_free() sends SIGKILL to a child
                                       * that has not exited (it is still reaped) */
#define WEFT_PROCESS_NEW_GROUP 2u     /* the child leads a new process group (its
                                       * pgid is its pid): a terminal's Ctrl-C, sent
                                       * to the foreground group, does not reach it */

/* Arguments of weft_process_spawn(). Zero-initialise and fill in; only argv
 * is required. The strings are copied by the system before spawn returns. */
typedef struct weft_process_options {
    const char *file;         /* the program; NULL: argv[0]. Without a '/' it
                               * is searched in the parent's PATH */
    char *const *argv;        /* NULL-terminated; argv[0] must not be NULL */
    char *const *envp;        /* NULL-terminated environment; NULL: the parent's */
    const char *cwd;          /* working directory; NULL: the parent's */
    weft_stdio stdio[3];      /* stdin, stdout, stderr */
    unsigned flags;           /* WEFT_PROCESS_* */
} weft_process_options;

/* How a child ended. */
typedef struct weft_process_status {
    int code;                 /* exit code 0 .. 255 if it exited, else -1 */
    int signal;               /* the signal that killed it, else 0 */
} weft_process_status;

/* Start a child as `opt` says. `rt` (NULL: the runtime of the calling
 * worker) is needed only when a stdio is WEFT_STDIO_PIPE: the parent's ends
 * of the pipes are streams on its reactor. Returns 0 with the handle in
 * *out (free it with weft_process_free()), or: -EINVAL (NULL opt or out,
 * argv NULL or empty, an unknown mode or flag, a pipe with no runtime),
 * -EBADF (a WEFT_STDIO_FD descriptor that is not open), the exec's error
 * (-ENOENT no such program or working directory, -EACCES, -ENOEXEC, -E2BIG,
 * -ENOTDIR, ...), -EMFILE, -ENFILE, -ENOMEM, -EAGAIN (process limit),
 * -ESHUTDOWN (the runtime is gone); on failure no child runs and nothing
 * is left open. Thread: any. */
WEFT_API int weft_process_spawn(weft_runtime *rt, const weft_process_options *opt,
                                weft_process **out);

/* The child's process id (> 0), or -EINVAL for NULL. Once the child is
 * reaped (a wait completed) the number may belong to another process: use
 * weft_process_kill(), never kill(2) with it. Thread: any. */
WEFT_API int weft_process_pid(weft_process *p);

/* The parent's end of the pipe of descriptor `which` (0 stdin: write to it;
 * 1 stdout, 2 stderr: read from it), or NULL (NULL p, `which` not 0..2, not
 * a pipe, or taken). The handle stays the process's: weft_process_free()
 * closes it. You may close it earlier with weft_stream_close() (close stdin
 * to send end of file); a handle is a token, so the later close by free is
 * harmless. Thread: any. */
WEFT_API weft_stream *weft_process_stdio(weft_process *p, int which);

/* The same, but the handle becomes the caller's (weft_process_free() will
 * not close it; later calls of weft_process_stdio() return NULL for it).
 * Thread: any. */
WEFT_API weft_stream *weft_process_take_stdio(weft_process *p, int which);

/* Send signal `sig` to the child (0: only check that it can be signalled).
 * Through its pidfd where it has one, and never once the child is reaped,
 * so a recycled process id is never hit. 0; -ESRCH once the child has
 * been reaped (it exited and weft collected it; the signal was not sent);
 * -EINVAL (NULL, sig out of range); -EPERM. A child that exited but is not
 * reaped yet takes the signal without effect (0). Thread: any. */
WEFT_API int weft_process_kill(weft_process *p, int sig);

/* Has the child exited? 0 with its status in *st (st may be NULL); -EAGAIN
 * while it runs; -ECHILD if someone else reaped it (see "No zombies");
 * -EINVAL for NULL p. Never waits. Thread: any. */
WEFT_API int weft_process_try_wait(weft_process *p, weft_process_status *st);

/* Release the handle: close the pipe ends not taken, SIGKILL the child if
 * the options had WEFT_PROCESS_KILL_ON_FREE and it has not exited. The
 * child itself is not waited for: it is reaped in the background when it
 * exits. Wait futures still initialised on it keep working. NULL is
 * ignored. Call it once per handle (the pointer is invalid after).
 * Works after the runtime is freed. Thread: any. */
WEFT_API void weft_process_free(weft_process *p);

/* Wait future: completes when the child has exited. Output (*result): 0
 * with the status in *st (if `st` was given at init), -ECHILD (reaped by
 * someone else), -EINVAL (NULL process, or a NULL future: then only
 * *result is written; or a poll without a waker, a NULL or zeroed
 * context: READY with -EINVAL, and nothing changes, as weft/lock.h says
 * for its futures). Any number of futures may wait on
 * one process, from any tasks and runtimes; each completes. Cancel-safe:
 * the status stays in the handle, so dropping a pending wait loses
 * nothing. The future holds a reference to the process from init until
 * drop. Not to be copied once polled (it is linked into the process). */
typedef struct weft_process_wait {
    /* private: may change in any release */
    weft_process *p;             /* a reference while initialised */
    weft_process_status *st;
    int result;
    unsigned char done;
    weft_sync_waiter w;          /* on p's wait list while pending */
} weft_process_wait;

/* Thread: the future's owner. */
WEFT_API void weft_process_wait_init(weft_process_wait *w, weft_process *p,
                                     weft_process_status *st);
WEFT_API weft_poll weft_process_wait_poll(weft_process_wait *w, weft_context *cx,
                                          int *result);
WEFT_API void weft_process_wait_drop(weft_process_wait *w);

/* Descriptor for composition (weft_timeout, weft_select, ...): output int. */
WEFT_API extern const weft_future_type weft_process_wait_future;

#ifdef __cplusplus
}
#endif
#endif /* WEFT_PROCESS_H */
