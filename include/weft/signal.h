/* SPDX-License-Identifier: MIT */
/* weft/signal.h - POSIX signals as futures, on signalfd.
 *
 * A weft_signal catches a set of signals: weft_signal_new() blocks them in
 * the calling thread and opens a signalfd for them, registered with the
 * runtime's reactor like any other stream (so it works with both flavours:
 * on a current-thread runtime the thread inside weft_block_on() sees it).
 * A receive future completes with the number of one signal caught and, if
 * asked, what the kernel says about it (sender, code, value).
 *
 *     static const int sigs[] = { SIGINT, SIGTERM };
 *     weft_signal_block(sigs, 2);               // first: see "Masks"
 *     weft_runtime_new(&rt, NULL);
 *     weft_signal_new(rt, sigs, 2, &sig);
 *     ...  in a task: weft_signal_recv_init(&r, sig, NULL);
 *                     WEFT_AWAIT(&co, weft_signal_recv_poll(&r, cx, &signo));
 *
 * Signals are passed as arrays of numbers, not as a sigset_t, so that this
 * header does not need <signal.h> (which, with _GNU_SOURCE, brings
 * <unistd.h> and its names into every file that includes weft.h).
 *
 * Masks. A signalfd only receives a signal that every thread of the process
 * blocks: a thread that does not block it gets it delivered the ordinary way
 * (for SIGINT and SIGTERM: the default action, the process dies). Threads
 * inherit the mask of the thread that creates them, so block the signals
 * (weft_signal_block(), or pthread_sigmask) at the top of main, before
 * weft_runtime_new() (its workers) and before any other thread, yours or a
 * library's, exists. That also covers the threads weft makes later (the
 * blocking pool, made from a worker). weft_signal_new() blocks the set in
 * the calling thread, which is all a current-thread runtime needs when no
 * other thread exists, but it cannot reach into threads that are already
 * running. (tokio and libuv install handlers instead and have no such rule;
 * signalfd needs it, as sigwait() does.) A signal sent to one thread
 * (raise(), pthread_kill()) stays with that thread and is seen only by a
 * read made there: on a current-thread runtime, the thread driving it.
 * Signals from outside and kill(getpid(), ...) go to the process: any
 * worker sees them.
 *
 * Restoring. weft counts, process-wide and per signal number, the live
 * weft_signal objects that catch it. weft_signal_new() blocks in the calling
 * thread each signal of the set that was not blocked there yet and notes
 * it; weft_signal_free() of the last object catching a signal unblocks it
 * again in the calling thread if weft was the one that blocked it. So make
 * and free the objects on the same thread (main), and a mask the program
 * set itself is left as the program set it. A signal that arrives after the
 * last receive and is still pending when its mask is restored is delivered
 * then, the ordinary way (as after any pthread_sigmask unblock): keep the
 * object alive, or set SIG_IGN, if a late one must not kill the process.
 *
 * Coalescing. The kernel keeps one pending instance of each standard signal
 * (1 .. 31): two SIGINTs sent before anyone receives may come out as one
 * receive. Real-time signals (SIGRTMIN .. SIGRTMAX) are queued, one receive
 * each, in order, up to the process's RLIMIT_SIGPENDING. Pending standard
 * signals are received lowest number first.
 *
 * Several objects, several waiters. Each receive consumes one pending
 * signal: it is a queue, not a broadcast. Several futures may wait on one
 * object (from any tasks); each signal wakes exactly one of them. Two
 * objects catching the same signal compete for it: whichever reads first
 * gets it. To tell several tasks, receive in one and fan out (a weft_watch
 * or a cancel token, weft/group.h).
 *
 * Children. The blocked mask is inherited across fork() and kept across
 * execve(): a child started while signals are blocked for weft would start
 * with them blocked (and a shell child would ignore Ctrl-C). Reset the mask
 * in the child (posix_spawnattr_setsigmask(), or pthread_sigmask() between
 * fork and exec). The signalfd itself is close-on-exec.
 *
 * Sanitizers. ThreadSanitizer delivers signals to handlers late, at its own
 * synchronisation points; signals caught here have no handler (they are
 * blocked and read from a descriptor), so nothing changes under it. */
#ifndef WEFT_SIGNAL_H
#define WEFT_SIGNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "lock.h"
#include "sched.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_signal weft_signal;       /* opaque, one owner */

/* What the kernel reports with a signal (from struct signalfd_siginfo). */
typedef struct weft_signal_info {
    int signo;             /* the signal number */
    int code;              /* si_code: SI_USER (kill), SI_TKILL (raise,
                            * pthread_kill), SI_QUEUE (sigqueue), SI_KERNEL,
                            * CLD_EXITED for SIGCHLD, ... */
    int pid;               /* the sender (SI_USER, SI_QUEUE) or the child (SIGCHLD) */
    unsigned uid;          /* the sender's real user id */
    int status;            /* SIGCHLD: exit status or signal */
    int value;             /* sigqueue(): sival_int */
    uint64_t ptr;          /* sigqueue(): sival_ptr, as an integer */
} weft_signal_info;

/* Block signals[0 .. n) in the calling thread (pthread_sigmask(SIG_BLOCK)),
 * for good: weft never unblocks them. Call it at the top of main, before any
 * thread exists, so that every thread inherits the mask (see "Masks").
 * 0, or -EINVAL (NULL with n > 0, a number out of range, SIGKILL, SIGSTOP).
 * Thread: any. */
WEFT_API int weft_signal_block(const int *signals, size_t n);

/* Catch signals[0 .. n) (n >= 1; repeats are harmless) on rt's reactor
 * (`rt` NULL: the runtime of the calling worker). Blocks them in the
 * calling thread (see "Masks": the other threads must block them already)
 * and opens a non-blocking, close-on-exec signalfd. Returns 0 with the
 * object in *out (free it with weft_signal_free()); -EINVAL (NULL, no
 * runtime, n == 0, a number out of range, or SIGKILL or SIGSTOP: those can
 * never be caught), -EMFILE, -ENFILE, -ENOMEM, -ESHUTDOWN (the runtime is
 * gone). On failure the mask is left as it was.
 * Thread: any (the one that will free it: see "Restoring"). */
WEFT_API int weft_signal_new(weft_runtime *rt, const int *signals, size_t n,
                            weft_signal **out);

/* Receive one signal now, without waiting: its number (> 0), with the
 * details in *info when `info` is not NULL; -EAGAIN when none is pending;
 * -EINVAL for NULL. Thread: any. */
WEFT_API int weft_signal_try_recv(weft_signal *s, weft_signal_info *info);

/* Close the signalfd and restore the calling thread's mask (see
 * "Restoring"). Receive futures still pending complete with -EBADF; they
 * keep what they need alive until they are dropped, so freeing first is
 * safe. NULL is ignored. Thread: any. */
WEFT_API void weft_signal_free(weft_signal *s);

/* Receive future. Output (*result): the number of the signal received
 * (> 0), with the details in *info if `info` was given at init; -EBADF once
 * the object is freed; -ESHUTDOWN once the runtime is gone; -EINVAL for a
 * NULL object. Cancel safety: a signal leaves the kernel only in a poll that
 * returns it, so dropping a pending receive loses no signal (another waiter,
 * or the next receive, gets it). */
typedef struct weft_signal_recv {
    /* private: may change in any release */
    weft_signal *sig;            /* a reference while initialised */
    weft_signal_info *info;
    int result;
    unsigned char done;
    weft_sync_waiter w;          /* on sig's wait list while pending */
} weft_signal_recv;

/* init: wait on `s`; the future holds a reference to it until dropped.
 * Thread: the future's owner. */
WEFT_API void weft_signal_recv_init(weft_signal_recv *r, weft_signal *s,
                                    weft_signal_info *info);
WEFT_API weft_poll weft_signal_recv_poll(weft_signal_recv *r, weft_context *cx, int *result);
WEFT_API void weft_signal_recv_drop(weft_signal_recv *r);

/* Descriptor for composition (weft_timeout, weft_select, ...): output int. */
WEFT_API extern const weft_future_type weft_signal_recv_future;

#ifdef __cplusplus
}
#endif
#endif /* WEFT_SIGNAL_H */
