/* SPDX-License-Identifier: MIT */
/* weft/coro.h - stackful coroutines: tasks whose code runs on a stack of
 * their own and waits for futures with plain blocking-style calls.
 *
 * A coroutine is a weft task like any other: weft_go() spawns, with
 * weft_spawn(), a task whose future runs fn(arg) on its own stack. It is
 * scheduled, stolen, woken, joined, aborted and counted exactly like a
 * future task, and its join handle is an ordinary weft_join (so futures can
 * await coroutines with weft_join_poll(), and coroutines can await futures
 * with weft_co_await()).
 *
 *     static int worker(void *arg)
 *     {
 *         int err = weft_co_sleep(10);      // parks this coroutine, not the thread
 *         if (err < 0)
 *             return err;                   // -ECANCELED: it was aborted
 *         return *(int *)arg + 1;
 *     }
 *     ...
 *     weft_go(rt, worker, &x, &j);
 *     weft_join_wait(j, &result);           // result: what worker returned
 *
 * How it works: the task's poll switches onto the coroutine's stack; an
 * await polls its future with the task's context and, while the future is
 * pending, switches back to the worker, whose poll returns WEFT_PENDING.
 * When the future wakes the task, the next poll (on whichever worker runs
 * it) switches back in and polls the future again. docs/coro.md explains
 * the design and when to pick a coroutine over a future.
 *
 * Cancellation (libdill's rule): aborting a coroutine's task
 * (weft_join_abort(), weft_group_cancel(), runtime shutdown) makes the
 * blocking call it is parked in return -ECANCELED (the awaited future is
 * dropped), and every later blocking call return -ECANCELED at once without
 * waiting, until fn returns; the stack is then released. An abort made
 * while the coroutine runs (between two calls, on a worker) takes effect at
 * its next blocking call, or weft_co_cancelled(), whichever comes first:
 * that call returns -ECANCELED (true) and takes nothing, as if the abort had
 * found it parked there, and the task ends cancelled. fn always runs:
 * once weft_go() has returned 0, fn(arg) is called exactly once, even if the
 * task is aborted (or the runtime shut down) before it was first polled --
 * then every blocking call in it returns -ECANCELED from the start. So fn
 * may own `arg` and free it on every path. A coroutine that ignores
 * -ECANCELED and loops forever blocks the worker (or the thread shutting the
 * runtime down) that is dropping it.
 *
 * Migration rules: a coroutine may resume on a different worker thread
 * after any blocking call, like any task. Therefore:
 *   - do not hold a pthread mutex (or anything owned by a thread) across a
 *     blocking call: unlocking it on another thread is undefined; use
 *     weft's own locks (weft/lock.h) instead;
 *   - do not keep the address of a thread-local variable across a blocking
 *     call; compilers may do that on their own within one function (glibc
 *     declares __errno_location() const, and the thread pointer is assumed
 *     constant), so read a thread-local after a blocking call through a
 *     function that is not inlined, or in a different function;
 *   - errno belongs to the coroutine: weft saves its value when the
 *     coroutine parks and restores it on whichever thread resumes it, so a
 *     value set before a blocking call is there after it (blocking calls
 *     themselves leave errno alone). The compiler rule above still applies
 *     to how you read it; the weft_co_* calls return negative errno codes,
 *     so you rarely need errno at all;
 *   - the FP control state belongs to the coroutine as the ABI makes it
 *     callee-saved (x86-64: MXCSR's control bits and the x87 control word;
 *     aarch64: FPCR): a rounding mode, flush-to-zero or exception mask set
 *     in a coroutine stays in force for it on whichever thread resumes it,
 *     and never leaks into the worker or other tasks. (A build of weft with
 *     -DWEFT_CO_NO_FP_SAVE=1 leaves this out, for speed, for programs in
 *     which no coroutine changes it.)
 *
 * Stacks: mmap'ed, committed page by page as they are touched, with a
 * guard page below. A stack overflow faults on the guard page; weft's
 * SIGSEGV handler (installed by the first weft_go(), running on an
 * alternate signal stack, chaining to the handler it replaced for every
 * other fault) prints the coroutine's name and stack bounds to stderr and
 * aborts. Frames larger than a page can jump over the guard: build code
 * that uses big local arrays on coroutines with -fstack-clash-protection.
 * Freed stacks are kept for reuse: up to 16 per worker thread, released
 * when the thread exits, and up to 1,024 shared, released when the last
 * such thread exits (so none stays mapped once every runtime is freed,
 * whichever thread freed it: a stack released on any other thread, the
 * driver of a current-thread runtime or one that ran the drops of a
 * shutdown included, goes to the shared cache while a worker lives).
 * Cached stacks keep the pages their coroutine touched, except those in
 * the shared cache past its first 64, which keep only their top page.
 *
 * Many coroutines (degraded mode): a guarded stack takes two entries of the
 * process's memory map, which Linux caps at vm.max_map_count (65,530 by
 * default). So once a quarter of that many guarded stacks are mapped
 * (16,382 by default; read from /proc/sys/vm/max_map_count once), or when
 * the kernel refuses a mapping, new stacks come from slabs (until the
 * guarded ones fall back to half the limit): one mapping of
 * up to 64 stacks with no guard page, but a 128-byte canary below each
 * stack, checked every time the coroutine switches out (each blocking
 * call, and when it ends) and by the fault handler. A broken canary prints
 *   weft: stack overflow in coroutine "NAME" (stack LO-HI, N bytes, a slab
 *   stack without guard page; its canary at ADDR was overwritten): aborting
 * and aborts. Detection is later than with a guard page (at the switch,
 * not at the write), and until then the overflow may have damaged the
 * stack below (another coroutine's); a frame that skips the canary
 * entirely (a big local array left unwritten) goes unseen. The environment
 * variable WEFT_CO_GUARD_MAX (read once, at the first spawn) sets the
 * number of guarded stacks instead (below it every stack is guarded: a
 * mapping the kernel refuses is -ENOMEM then, not a slab stack): 0 takes
 * every stack from slabs (about
 * 2x faster to spawn and release in bursts of thousands, one map entry per
 * 64 stacks), a large number keeps every stack guarded (weft_go() then
 * returns -ENOMEM when the map is full). A coroutine parked in a shallow
 * call costs about 4.3 KiB of memory in either mode (one stack page and
 * its task); 1,000,000 parked take about 4.1 GiB (docs/coro.md).
 *
 * Thread: the awaits and blocking-style calls below (weft_co_await*,
 * weft_co_sleep, ...) must be made from a coroutine (they return -EINVAL
 * elsewhere); weft_go*() may be called from any thread, weft_co_block_on()
 * from any thread but a worker. */
#ifndef WEFT_CORO_H
#define WEFT_CORO_H

#include <stdint.h>

#include "core.h"
#include "task.h"
#include "sched.h"
#include "lock.h"
#include "chan.h"
#include "group.h"
#include "net.h"
#include "bufio.h"
#include "blocking.h"
#include "process.h"
#include "timer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A coroutine's body. Its return value is the task's output (an int: read
 * it with weft_join_wait() / weft_join_poll() / weft_co_join()); a negative
 * value is a failure to a task group (weft/group.h). */
typedef int weft_co_fn(void *arg);

/* Default stack size: 64 KiB of address space, committed as touched (256
 * KiB in builds of weft with a sanitizer, whose frames are larger). A
 * runtime may set its own (weft_runtime_options.coro_stack_size, weft/sched.h),
 * and each spawn (weft_go_options.stack_size). */
#define WEFT_CO_STACK_DEFAULT ((size_t)64 * 1024)
/* Smallest and largest stack sizes weft_go_opt() accepts. */
#define WEFT_CO_STACK_MIN ((size_t)16 * 1024)
#define WEFT_CO_STACK_MAX ((size_t)1 << 30)

typedef struct weft_go_options {
    /* Usable stack bytes (rounded up to pages), WEFT_CO_STACK_MIN ..
     * WEFT_CO_STACK_MAX; 0 for the runtime's default
     * (weft_runtime_options.coro_stack_size, itself WEFT_CO_STACK_DEFAULT
     * when 0). */
    size_t stack_size;
    /* Shown by the stack overflow report; a static string (not copied).
     * NULL: "coroutine". */
    const char *name;
} weft_go_options;

/* Spawn a coroutine running fn(arg) on its own stack, as one task of `rt`
 * (one allocation for the task, plus a stack mapped or taken from this
 * thread's cache). Returns 0 and a join handle in *join (release it with
 * weft_join_drop(); the output is fn's int); -EINVAL (NULL rt, fn or
 * join); -ENOMEM (no memory for the task or the stack); -ESHUTDOWN. On
 * failure fn is never called. Thread: any. */
WEFT_API int weft_go(weft_runtime *rt, weft_co_fn *fn, void *arg, weft_join **join);

/* weft_go() without a join handle: the coroutine runs detached. */
WEFT_API int weft_go_detached(weft_runtime *rt, weft_co_fn *fn, void *arg);

/* weft_go() with options (`opt` may be NULL for the defaults) and an
 * optional join handle (`join` NULL: detached). Also -EINVAL for a stack
 * size out of range. */
WEFT_API int weft_go_opt(weft_runtime *rt, weft_co_fn *fn, void *arg,
                         const weft_go_options *opt, weft_join **join);

/* Spawn a coroutine into a task group (weft_group_spawn()): the group owns
 * it, cancels it with the others, and counts a negative return of fn as the
 * child's failure. `opt` may be NULL. Returns what weft_group_spawn()
 * returns, or -ENOMEM for the stack. Thread: any. */
WEFT_API int weft_go_group(weft_group *g, weft_co_fn *fn, void *arg,
                           const weft_go_options *opt);

/* Run fn(arg) as a coroutine with weft_block_on() and store fn's return in
 * *result (may be NULL). Returns what weft_block_on() returns (0, -EINVAL,
 * -ENOMEM, -ESHUTDOWN, -ECANCELED). Thread: any but a worker. */
WEFT_API int weft_co_block_on(weft_runtime *rt, weft_co_fn *fn, void *arg,
                              const weft_go_options *opt, int *result);

/* ---- Awaiting ------------------------------------------------------------------
 * Await `future` (of type `type`, initialised by the caller, usually a local
 * of the coroutine): poll it with the task's context until it is READY,
 * parking the coroutine (its worker runs other tasks) while it is pending.
 * The await takes the future over: it is dropped (type->drop, when not
 * NULL) before the call returns, in every case. Returns 0 with the output
 * in `out` (type->output_size bytes; `out` may be NULL: the output is then
 * written to room of weft's and thrown away, so a future that writes its
 * output unconditionally is safe; room for more than 64 bytes is
 * allocated: -ENOMEM, the future dropped unpolled, if that fails);
 * -ECANCELED when the coroutine was aborted (then or earlier: the future is
 * dropped unpolled, `out` untouched); -EINVAL for a NULL type, poll
 * function or future (nothing dropped), or when not called from a
 * coroutine (the future is dropped). Any weft future works here:
 * weft_accept_future,
 * weft_io_op_future and the other descriptors in the headers, and any
 * WEFT_DEFINE_FUTURE type. */
WEFT_API int weft_co_await(const weft_future_type *type, void *future, void *out);

/* The same for a future without a descriptor: `poll` and `drop` (may be
 * NULL) take it as `self`. */
WEFT_API int weft_co_await_fn(weft_poll (*poll)(void *self, weft_context *cx, void *out),
                              void (*drop)(void *self), void *self, void *out);

/* weft_co_await() with a time limit (weft_timeout): 0 with the output in
 * `out`, -ETIMEDOUT (the future has been dropped), -ECANCELED, -EINVAL.
 * The future is dropped before the call returns, in every case but a NULL
 * type, poll function or future (-EINVAL, nothing dropped). `out` may be
 * NULL as for weft_co_await() (then also -ENOMEM). */
WEFT_API int weft_co_await_timeout(const weft_future_type *type, void *future, void *out,
                                   uint64_t ms);

/* True once the running coroutine has been aborted (every blocking call
 * now returns -ECANCELED), an abort made while it runs included (see
 * "Cancellation" above: that abort is acted on here, on this thread);
 * false outside a coroutine. */
WEFT_API bool weft_co_cancelled(void);

/* True when called from a coroutine. Thread: any. */
WEFT_API bool weft_co_is_coroutine(void);

/* The running coroutine's name (weft_go_options.name, or "coroutine");
 * NULL outside a coroutine. */
WEFT_API const char *weft_co_name(void);

/* ---- Blocking-style calls ------------------------------------------------------
 * Each is an await of the future in its comment. All return 0 on success,
 * -ECANCELED once the coroutine is aborted, -EINVAL outside a coroutine,
 * and -ETIMEDOUT once the coroutine's deadline has passed (below). */

/* Sleep `ms` milliseconds (weft_sleep). */
WEFT_API int weft_co_sleep(uint64_t ms);

/* Let the other tasks of this worker run; the coroutine goes to the back of
 * the run queue (weft_yield). */
WEFT_API int weft_co_yield(void);

/* Wait for the task of `join` (any task: a future or a coroutine) and copy
 * its output to `out` (may be NULL), as weft_join_poll(). Returns 0, or
 * -ECANCELED when that task was cancelled or this coroutine was aborted
 * (weft_co_cancelled() tells which); -EINVAL for a NULL handle. The handle
 * stays valid either way (release it with weft_join_drop()). */
WEFT_API int weft_co_join(weft_join *join, void *out);

/* Send one message (weft_chan_send): 0, -EPIPE (closed), -ENOMEM, -EINVAL. */
WEFT_API int weft_co_chan_send(weft_chan *ch, const void *msg);

/* Receive one message (weft_chan_recv): 0, -EPIPE (closed and empty), -EINVAL. */
WEFT_API int weft_co_chan_recv(weft_chan *ch, void *dst);

/* Receive a oneshot's value (weft_oneshot_recv): 0, -EPIPE, -EINVAL. */
WEFT_API int weft_co_oneshot_recv(weft_oneshot_rx *rx, void *dst);

/* Locks and signals (weft/lock.h, weft/group.h): each returns the wait
 * future's result (0, or the value its comment gives), -ECANCELED or
 * -EINVAL. A lock acquired is the caller's to unlock (weft_mutex_unlock(),
 * weft_sem_release(), ...); on -ECANCELED nothing is held. */
WEFT_API int weft_co_mutex_lock(weft_mutex *m);
WEFT_API int weft_co_sem_acquire(weft_sem *s, size_t n);
WEFT_API int weft_co_rwlock_read(weft_rwlock *rw);
WEFT_API int weft_co_rwlock_write(weft_rwlock *rw);
/* weft_notify_wait: 0 once notified. */
WEFT_API int weft_co_notify_wait(weft_notify *n);
/* weft_barrier_wait: WEFT_BARRIER_LEADER for one of the parties, else 0. */
WEFT_API int weft_co_barrier_wait(weft_barrier *b);
/* weft_cancel_wait: 0 once the token is cancelled. */
WEFT_API int weft_co_cancel_wait(weft_cancel *t);
/* weft_group_wait: 0, the first failure's code, or -ECANCELED (of the
 * group: see weft_co_cancelled() to tell this coroutine's own). */
WEFT_API int weft_co_group_wait(weft_group *g);

/* Sockets (weft/net.h): each returns what the future's output says, or
 * -ECANCELED / -EINVAL as above. */
/* Read up to len bytes (weft_read_init): bytes read, 0 at end of stream,
 * -errno. */
WEFT_API ssize_t weft_co_read(weft_socket *s, void *buf, size_t len);
/* Read exactly len bytes (weft_read_exact_init): len, -EPIPE at end of
 * stream first, -errno. */
WEFT_API ssize_t weft_co_read_exact(weft_socket *s, void *buf, size_t len);
/* Write up to len bytes (weft_write_init): bytes written, -errno. */
WEFT_API ssize_t weft_co_write(weft_socket *s, const void *buf, size_t len);
/* Write all len bytes (weft_write_all_init): len, -errno. */
WEFT_API ssize_t weft_co_write_all(weft_socket *s, const void *buf, size_t len);
/* Accept a connection (weft_accept_init; the peer's address is not
 * reported): 0 with the new socket in *out (owned by the caller), -errno. */
WEFT_API int weft_co_accept(weft_socket *l, weft_socket **out);
/* Connect (weft_connect_init; `rt` NULL: this coroutine's runtime;
 * timeout_ms 0: no limit): 0 with the socket in *out, -ETIMEDOUT, -errno.
 * Outside a coroutine (-EINVAL) or once it is cancelled (-ECANCELED) no
 * socket is made and nothing is sent. */
WEFT_API int weft_co_connect(weft_runtime *rt, const struct sockaddr *addr, socklen_t len,
                             uint64_t timeout_ms, weft_socket **out);

/* Buffered streams (weft/bufio.h): each returns the future's output, or
 * -ECANCELED / -EINVAL as above. A cancelled call is a dropped future: the
 * reader's bytes stay buffered, the writer's unwritten bytes too. */
/* read_line: the line's length with its '\n', 0 at end of stream,
 * -EMSGSIZE (nothing consumed), -errno. */
WEFT_API ssize_t weft_co_read_line(weft_bufreader *r, void *dst, size_t max);
/* read_until `delim` (dst NULL: skip past it). */
WEFT_API ssize_t weft_co_read_until(weft_bufreader *r, int delim, void *dst, size_t max);
/* read_exact through the reader: n, -EPIPE at end of stream first. */
WEFT_API ssize_t weft_co_bufread_exact(weft_bufreader *r, void *dst, size_t n);
/* read_frame: the payload's length, -EMSGSIZE, -EPIPE, -EPROTO, -errno. */
WEFT_API ssize_t weft_co_read_frame(weft_bufreader *r, void *dst, size_t max);
/* write through the writer: len, -errno. */
WEFT_API ssize_t weft_co_bufwrite(weft_bufwriter *w, const void *src, size_t len);
/* write_frame through the writer (no flush): len, -EMSGSIZE, -errno. */
WEFT_API ssize_t weft_co_write_frame(weft_bufwriter *w, const void *payload, size_t len);
/* flush the writer: 0, -errno. */
WEFT_API ssize_t weft_co_flush(weft_bufwriter *w);

/* ---- Files (weft/blocking.h, docs/fs.md) -----------------------------------------
 * Each runs one weft_fs_op on the default blocking pool of this coroutine's
 * runtime and returns its result (the meaning and errors of the matching
 * weft_fs_*_init), or -ECANCELED / -EINVAL as above. A cancelled call is a
 * dropped weft_fs_op: withdrawn if no pool thread took it yet (it never
 * happens; a close still closes), else it runs whole on the pool and its
 * result is thrown away (an opened descriptor closed, a list freed). The
 * caller's buffers are never touched after the call returns. Outside a
 * coroutine each returns -EINVAL having done nothing: weft_co_fs_close()
 * then leaves fd open (it is still the caller's). */
WEFT_API ssize_t weft_co_fs_read_file(const char *path, void **data, size_t *len);
WEFT_API int weft_co_fs_write_file(const char *path, const void *data, size_t len);
WEFT_API int weft_co_fs_stat(const char *path, struct stat *st);
/* the new descriptor (>= 0), owned by the caller */
WEFT_API int weft_co_fs_open(const char *path, int flags, mode_t mode);
WEFT_API int weft_co_fs_close(int fd);
WEFT_API ssize_t weft_co_fs_read(int fd, void *buf, size_t len);
WEFT_API ssize_t weft_co_fs_write(int fd, const void *buf, size_t len);
WEFT_API ssize_t weft_co_fs_pread(int fd, void *buf, size_t len, off_t off);
WEFT_API ssize_t weft_co_fs_pwrite(int fd, const void *buf, size_t len, off_t off);
WEFT_API int weft_co_fs_fsync(int fd);
WEFT_API int weft_co_fs_fdatasync(int fd);
WEFT_API int weft_co_fs_ftruncate(int fd, off_t length);
WEFT_API int weft_co_fs_fstat(int fd, struct stat *st);
WEFT_API int weft_co_fs_rename(const char *from, const char *to);
WEFT_API int weft_co_fs_unlink(const char *path);
WEFT_API int weft_co_fs_mkdir(const char *path, mode_t mode);
WEFT_API int weft_co_fs_rmdir(const char *path);
WEFT_API int weft_co_fs_truncate(const char *path, off_t length);
/* the number of entries; *ents as weft_fs_readdir_init (free it with
 * weft_fs_free()) */
WEFT_API ssize_t weft_co_fs_readdir(const char *path, weft_fs_dirent **ents);
/* Child processes (weft/process.h): wait for the child to exit
 * (weft_process_wait_init): 0 with its status in *st (st may be NULL),
 * -ECHILD, -ECANCELED / -EINVAL as above. Cancelled, it loses nothing: the
 * status stays in the handle for the next wait. */
WEFT_API int weft_co_process_wait(weft_process *p, weft_process_status *st);
/* ==== Deadlines, select, watch and broadcast, UDP, blocking pool ================
 * (issue 10's second part; other wrapper sections go after this one) */

/* ---- Deadlines (libdill's, set once for a stretch of calls) --------------------
 * Set the running coroutine's deadline, in weft_now_ms() milliseconds (0:
 * none, the default). While it is set, every blocking-style call of this
 * header (weft_co_await and weft_co_await_fn included; weft_co_yield
 * excepted) that is still waiting when the deadline passes returns
 * -ETIMEDOUT, its future dropped (what that loses is the future's cancel
 * safety, in its header: a pending channel send sends nothing, a pending
 * receive takes nothing). The future is polled first: one ready at the
 * deadline wins, and a call made after the deadline still completes if it
 * need not wait. The deadline stays until changed: to bound one call or a
 * sequence, save and restore it:
 *
 *     uint64_t old = weft_co_deadline_set(weft_now_ms() + 500);
 *     n = weft_co_read(s, buf, sizeof(buf));     // -ETIMEDOUT after 500 ms
 *     weft_co_deadline_set(old);
 *
 * Returns the previous deadline; outside a coroutine does nothing and
 * returns 0. Cancellation wins over the deadline (-ECANCELED). */
WEFT_API uint64_t weft_co_deadline_set(uint64_t deadline_ms);
/* The running coroutine's deadline (0: none, or not in a coroutine). */
WEFT_API uint64_t weft_co_deadline(void);

/* ---- Select ----------------------------------------------------------------------
 * Await weft_select over `n` futures the caller has initialised (see
 * weft/group.h: the select owns them from this call on and drops each
 * exactly once, winners and losers, before this returns, in every case
 * but an invalid set). Returns the winner's index (its output in its
 * slot's `out`), or -EINVAL (n == 0, NULL refs, a bad slot: then, as
 * weft_select_init() says, the select owns nothing and no future is
 * dropped, they stay yours, also in an aborted coroutine, where a valid
 * set gives -ECANCELED; or a valid set not called from a coroutine:
 * every future dropped), -ECANCELED, -ETIMEDOUT (every future dropped). */
WEFT_API int weft_co_select(weft_future_ref *refs, size_t n);

/* Receive from whichever of `n` channels has a message first (a select over
 * n receives; biased: the lowest index wins when several are ready).
 * chans[i] receives into dsts[i] (the channel's message size). Returns 0
 * with the message in dsts[*which]; -EPIPE with *which the channel that is
 * closed and empty (the others may still have messages); -ECANCELED;
 * -ETIMEDOUT; -EINVAL (n == 0 or above WEFT_CO_SELECT_MAX, NULL chans, dsts,
 * which, or a NULL entry: nothing received); -ENOMEM (more than 8
 * channels: their futures are allocated). No message is lost by a loser,
 * a cancel or a timeout: a receive takes a message only when it completes.
 * *which is untouched unless 0 or -EPIPE is returned. */
#define WEFT_CO_SELECT_MAX 4096
WEFT_API int weft_co_chan_select(weft_chan *const *chans, void *const *dsts, size_t n,
                                 size_t *which);

/* ---- Watch and broadcast receives (weft/chan.h) -----------------------------------
 * weft_watch_changed: 0 with the new value in dst (marked seen), -EPIPE
 * (closed, last value seen), -EINVAL; a cancel or timeout marks nothing
 * seen. */
WEFT_API int weft_co_watch_changed(weft_watch_rx *rx, void *dst);
/* weft_bcast_recv: 0 with the message in dst, -EOVERFLOW with the number
 * missed in *missed (may be NULL), -EPIPE, -EINVAL; a cancel or timeout
 * takes nothing. */
WEFT_API int weft_co_bcast_recv(weft_bcast_rx *rx, void *dst, uint64_t *missed);

/* ---- UDP (weft/net.h) --------------------------------------------------------------
 * recv_from: the datagram's length (truncated to len), the sender in *from
 * and *fromlen when not NULL, or -errno. send_to: the bytes sent, or -errno.
 * A cancel or timeout loses no datagram (one is taken only when the call
 * returns it). */
WEFT_API ssize_t weft_co_recv_from(weft_socket *s, void *buf, size_t len,
                                   struct sockaddr_storage *from, socklen_t *fromlen);
WEFT_API ssize_t weft_co_send_to(weft_socket *s, const void *buf, size_t len,
                                 const struct sockaddr *to, socklen_t tolen);

/* ---- Blocking pool (weft/blocking.h) -------------------------------------------------
 * Run fn(arg) on a pool thread (`pool` NULL: the default pool of this
 * coroutine's runtime) and wait for it: 0 with fn's return value in *ret
 * (may be NULL); -ECANCELED (the pool was shut down before the job started,
 * so fn never ran; or this coroutine was aborted: weft_co_cancelled() tells);
 * -ETIMEDOUT; the spawn's errors (-ENOMEM, -ESHUTDOWN, -EAGAIN; fn never
 * runs); -EINVAL (NULL fn, or not in a coroutine). On -ECANCELED from an
 * abort and on -ETIMEDOUT the job is detached, not stopped: fn may still be
 * running or not started yet, and its return value is discarded; so `arg`
 * must not point into this coroutine's stack unless the call returned 0 or
 * an error from the spawn. */
WEFT_API int weft_co_blocking(weft_blocking_pool *pool, void *(*fn)(void *arg), void *arg,
                              void **ret);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_CORO_H */
