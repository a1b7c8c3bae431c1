/* SPDX-License-Identifier: MIT */
/* An io_uring instance for the reactor's readiness (internal), on the raw
 * system calls (<linux/io_uring.h>; no liburing: the ring is a few shared
 * words and the library would be one more optional dependency for about
 * two hundred lines).
 *
 * What the reactor asks of it: poll requests (multishot, edge-triggered:
 * one completion per wake-up of the descriptor, as epoll's EPOLLET; or
 * oneshot), their removal, a wait for completions with a timeout, and a
 * wake-up of the thread waiting. Completions are handed to a callback with
 * their user_data (the reactor's key: the source's slot and generation).
 *
 * The owner. Requests belong to the thread that submitted them: the
 * kernel completes a poll by task work run on that thread, woken for it if
 * it sleeps. So a poll submitted by a worker that then sleeps on its
 * condition variable costs two wake-ups per event (that worker's, to post
 * the completion, then the waiting thread's), where epoll costs one: phase
 * 1 measured 0.52-0.62x epoll's throughput so. Hence one thread, the
 * owner, submits the queued requests and is the only one that blocks in
 * the wait: the completions of its polls are then made inside its own
 * wait (or, while it runs, at its next system call: COOP_TASKRUN, no
 * interrupt). The scheduler makes the first worker that parks with
 * descriptors open the owner (weft__uring_claim) and has it wait in the
 * ring whenever it parks (sched/park.c). Ownership is a preference, not a
 * kernel rule (no SINGLE_ISSUER): any thread may still submit, so nothing
 * hangs on a busy owner, only costs more:
 *   - closes submit their cancel at once (the caller's thread);
 *   - another thread's look (timeout 0: reap only) submits what is queued
 *     when the owner has not reaped since that thread's previous look
 *     (the owner is held by a long poll, or there is none yet);
 *   - a full submission queue is submitted by whoever needs room.
 *
 * Submission. Any thread may queue a request (the submission queue is
 * guarded by ->lock). The owner's reap submits what is queued with its
 * wait: one system call per poll tick for all of them. While it blocks,
 * a thread that queues wakes it (it would not come back for them).
 *
 *   queuing thread                         owner
 *   lock; queue; waiting? wake it          lock; waiting = true;
 *   unlock                                 n = queued; unlock
 *                                          enter(submit n, wait)
 * Both under ->lock: either the owner counts the request in its n, or the
 * queuing thread sees `waiting` and wakes it.
 *
 * Wake-ups: a wake while the owner waits writes an eventfd whose multishot
 * poll the owner submitted (so its completion is made in the owner's own
 * wait: one system call, one wake-up, as epoll's eventfd); a wake while
 * it does not wait sets wake_pending, and its next wait that would block
 * returns at once instead (as an eventfd left readable would). The
 * eventfd is never read: each write is a wake-up of its poll.

 * Requests belong to the thread that submitted them: if it exits, the
 * kernel cancels them (-ECANCELED). The reactor re-arms a poll whose
 * completion says it ended while its source is open, so sockets survive
 * the exit of whatever thread happened to submit their poll.
 *
 * One issuer (`single`: a runtime with one worker thread, which is then
 * the only thread that polls the reactor). The ring is made with
 * IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG (Linux 6.1;
 * older kernels refuse it with EINVAL and get the ring above), disabled
 * until its first poller enables it and so becomes, for the kernel and
 * here, the owner for the ring's life. The kernel then keeps the task
 * work of completions (a receive's recvmsg, a poll's wake-up) in a list of
 * the ring's instead of signalling the owner, and runs it in one batch when
 * the owner enters the ring (its wait, or a look that sees IORING_SQ_TASKRUN
 * in the shared flags), posting completions without the CQ's lock. Only
 * the owner may enter: another thread (a close from a plain thread, a
 * registration) queues its request and wakes the owner: through the
 * eventfd while it waits in the ring, else with wake_pending and the
 * runtime's kick, since with the last source closed it would sleep on its
 * condition variable (the reactor counts queued requests as I/O to wait
 * for: weft__uring_owed()). So a close made off the worker takes effect
 * when the worker next enters the ring (at once if it waits; after its
 * task if one runs). After the worker exits (the runtime's free), the
 * kernel has cancelled all of its requests, and queued ones are dropped
 * (weft__uring_shut()). */
#ifndef WEFT_IO_URING_H
#define WEFT_IO_URING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct weft__uring;

/* Keys with the top bit set are the ring's own (wake-ups, removals):
 * never handed to the callback. */
#define URING_KEY_OWN (1ull << 63)

/* Set up a ring (`single`: one issuer, see above, where the kernel has it):
 * 0 and *out, or -errno (-ENOSYS: no io_uring; -EPERM:
 * forbidden by seccomp, io_uring_disabled or a container; -EOPNOTSUPP: the
 * kernel lacks something weft needs: multishot poll and the timed wait,
 * Linux 5.13; -ENOMEM, -EMFILE). */
int weft__uring_new(struct weft__uring **out, bool single);
/* Close the ring (the kernel cancels what is armed) and free it. */
void weft__uring_free(struct weft__uring *u);

/* Tests: make every later weft__uring_new() fail with `err` (0: stop). */
void weft__uring_fail_setup(int err);
/* Tests: with `off`, later rings are made without receive buffers (the
 * readiness-only path of kernels older than 6.3). */
void weft__uring_no_rx(bool off);

/* Receive buffers (the reactor's completion-based receive, reactor.c
 * "Receive"): a provided-buffer ring (IORING_REGISTER_PBUF_RING, group 0)
 * of URING_RX_BUFS buffers of URING_RX_SIZE bytes, registered at setup
 * when the kernel has multishot receive (detected by IORING_FEAT_REG_REG_RING,
 * Linux 6.3; older kernels, or a failed registration: none, and the
 * reactor reads by readiness as before). A buffer id the kernel names in
 * a completion (IORING_CQE_F_BUFFER) belongs to user space until it is
 * given back with weft__uring_rx_put(); the kernel fills only buffers in
 * the ring. */
#define URING_RX_BUFS 1024u
#define URING_RX_SIZE 4096u
/* The buffers' memory (buffer `bid` at + bid * URING_RX_SIZE), or NULL when
 * the ring has no receive buffers. Fixed for the ring's life. */
char *weft__uring_rx_mem(struct weft__uring *u);
/* Give buffers back to the kernel (any thread). */
void weft__uring_rx_put(struct weft__uring *u, const uint16_t *bids, unsigned n);
/* The poller, before it reads completions that name buffers: under
 * ThreadSanitizer, take the lock under which they were given back (the
 * kernel's reuse of a buffer follows its return, but the sanitizer cannot
 * see the kernel: this makes the order visible to it); a no-op otherwise. */
void weft__uring_rx_acquire(struct weft__uring *u);
/* Queue a multishot receive of `fd` into the buffers, user_data `key`
 * (goes in with the owner's next wait, as polls do). 0 or -errno. */
int weft__uring_recv(struct weft__uring *u, int fd, uint64_t key);

/* Queue a poll of `fd` for `mask` (POLLIN...; hang-ups and errors always
 * count) with user_data `key`: multishot (`multi`) or oneshot. `now`:
 * submit before returning. With `arm`, only if *arm is still `want`
 * (checked under ->lock, where weft__uring_repoll() changes it: a poll
 * armed again after a cancellation cannot slip in after the re-arm that
 * replaced it). 0 or -errno (-EBUSY: the kernel would take nothing; the
 * request is still queued). */
int weft__uring_poll(struct weft__uring *u, int fd, uint32_t mask, bool multi, uint64_t key,
                     bool now, _Atomic uint32_t *arm, uint32_t want);
/* With `arm`: store `set` there first, under ->lock (see above). Queue the
 * cancellation of every poll with user_data `old` (none armed:
 * nothing happens; the kernel lets a cancelled poll's file go when the
 * thread that submitted it next returns to user space, at once if that is
 * the caller), then, with `fd` >= 0, a new poll (`mask`, `key`; multishot with `multi`,
 * else oneshot): the kernel runs them in this order. `now` as above. */
int weft__uring_repoll(struct weft__uring *u, uint64_t old, int fd, uint32_t mask, uint64_t key,
                       bool multi, bool now, _Atomic uint32_t *arm, uint32_t set);

/* A hint, any thread, no system call: completions wait in the CQ (or, on
 * a one-issuer ring, task work waits for the owner's next reap). */
bool weft__uring_pending(struct weft__uring *u);
/* A hint, any thread: a one-issuer ring holds requests that others queued
 * for the owner to submit, or task work for it to run (a cancel's: the
 * cancelled request holds its file until then): its park must go to the
 * ring, not sleep on its condition variable. */
bool weft__uring_owed(struct weft__uring *u);
/* One issuer: `kick(kick_ctx)` wakes the owner from its condition
 * variable (called with no lock of the ring held); `is_poller(poller_ctx)`
 * says whether the calling thread is the one poller, which becomes the
 * owner at its first request if it has not polled yet (a task that fills
 * the submission queue before its worker ever looks at the ring). Set
 * before the first request. */
void weft__uring_set_hooks(struct weft__uring *u, void (*kick)(void *), void *kick_ctx,
                           bool (*is_poller)(void *), void *poller_ctx);
/* The runtime shut down and its workers exited: on a one-issuer ring the
 * kernel cancelled every request with the owner's exit, and nobody may
 * submit any more, so requests queued from now on are dropped. */
void weft__uring_shut(struct weft__uring *u);

/* Wake the owner in weft__uring_reap(), or its next wait. */
void weft__uring_wake(struct weft__uring *u);

/* Make the calling thread the owner (see above): 1 if it is the owner now,
 * -1 if another thread is. With `take`, the caller takes the role from
 * another thread that is not waiting (a current-thread runtime's driver:
 * one at a time, from any thread). */
int weft__uring_claim(struct weft__uring *u, bool take);

/* Submit what is queued (the owner; others see above), wait up to
 * timeout_ns (-1: no limit; 0: do not wait; only the owner waits, others
 * look) for completions and copy each (key, result, flags) into `batch`
 * after the CQ is released. Returns the number copied. The caller is the
 * one poller (see above). */
struct weft__uring_cqe {
    uint64_t key;
    int32_t res;
    uint32_t flags;
};
#define URING_BATCH 256
int weft__uring_reap(struct weft__uring *u, int64_t timeout_ns,
                     struct weft__uring_cqe batch[URING_BATCH]);

#endif
