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
 * Submission. Any thread may queue a request (the submission queue is
 * guarded by ->lock). Queued requests go to the kernel with the next
 * io_uring_enter of anyone: the poller's wait (so the requests made while
 * it dispatched one batch of completions go in with its next wait: one
 * system call per poll tick for all of them), or at once when a thread is
 * blocked waiting (it would not come back to submit them) or when the
 * caller asks for it (removals: the descriptor may be closed next, and the
 * kernel holds its file while a poll is armed).
 *
 *   queuing thread                         poller
 *   lock; queue; waiting? enter now        lock; waiting = true;
 *   unlock                                 n = queued; unlock
 *                                          enter(submit n, wait)
 * Both under ->lock: either the poller counts the request in its n, or the
 * queuing thread sees `waiting` and submits it itself.
 *
 * Wake-ups: a wake while a thread waits queues a NOP and submits it (its
 * completion ends the wait: one system call, nothing to read back); a wake
 * while nobody waits sets wake_pending, and the next wait that would block
 * returns at once instead (as an eventfd left readable would).
 *
 * Completions: only the thread that holds the reactor's `polling` flag
 * reaps (one consumer), so the CQ head needs no lock.
 *
 * Requests belong to the thread that submitted them: if it exits, the
 * kernel cancels them (-ECANCELED). The reactor re-arms a poll whose
 * completion says it ended while its source is open, so sockets survive
 * the exit of whatever thread happened to submit their poll. */
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

/* Set up a ring: 0 and *out, or -errno (-ENOSYS: no io_uring; -EPERM:
 * forbidden by seccomp, io_uring_disabled or a container; -EOPNOTSUPP: the
 * kernel lacks something weft needs: multishot poll and the timed wait,
 * Linux 5.13; -ENOMEM, -EMFILE). */
int weft__uring_new(struct weft__uring **out);
/* Close the ring (the kernel cancels what is armed) and free it. */
void weft__uring_free(struct weft__uring *u);

/* Tests: make every later weft__uring_new() fail with `err` (0: stop). */
void weft__uring_fail_setup(int err);

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
 * the caller), then, with `fd` >= 0, a new oneshot poll (`mask`, `key`): the
 * kernel runs them in this order. `now` as above. */
int weft__uring_repoll(struct weft__uring *u, uint64_t old, int fd, uint32_t mask, uint64_t key,
                       bool now, _Atomic uint32_t *arm, uint32_t set);

/* Wake the thread in weft__uring_wait(), or the next one to wait. */
void weft__uring_wake(struct weft__uring *u);

/* Submit what is queued, wait up to timeout_ns (-1: no limit; 0: do not
 * wait) for completions and hand each (key, result, flags) to fn(ctx, ...)
 * in a local batch after the CQ is released. Returns the number handed to
 * fn. The caller is the one poller (see above). */
struct weft__uring_cqe {
    uint64_t key;
    int32_t res;
    uint32_t flags;
};
#define URING_BATCH 256
int weft__uring_reap(struct weft__uring *u, int64_t timeout_ns,
                     struct weft__uring_cqe batch[URING_BATCH]);

#endif
