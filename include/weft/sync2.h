/* weft/sync2.h - more synchronization between tasks: read-write lock, watch
 * channel (latest value), broadcast channel, barrier.
 *
 * The rules of weft/sync.h hold here too: objects are opaque and live on the
 * heap; the futures that wait on them are plain structs their owner embeds,
 * set up by *_init, driven by *_poll, released by *_drop; *_drop is valid in
 * every state and idempotent; polling after READY returns READY again with
 * the same result; a future whose init got a NULL object completes at once
 * with -EINVAL; awaiting never allocates; wakers never run under a weft lock.
 * A future borrows the object (or receiver) it was initialised with: keep it
 * alive until the future has been dropped. */
#ifndef WEFT_SYNC2_H
#define WEFT_SYNC2_H

#include <stdint.h>

#include "core.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Read-write lock --------------------------------------------------------
 * Many readers or one writer, strictly FIFO: a lock future that has to wait
 * is served before any later one, so a waiting writer holds back readers
 * that arrive after it (writers do not starve) and the readers queued behind
 * a writer go in together once it unlocks. Not owned by a thread: any thread
 * or task may unlock. It guards no data itself. (A semaphore of
 * WEFT_RWLOCK_MAX_READERS permits: a reader takes one, a writer all.) */
typedef struct weft_rwlock weft_rwlock;        /* opaque */

/* The most readers that may hold the lock at once. */
#define WEFT_RWLOCK_MAX_READERS WEFT_SEM_MAX_PERMITS

/* Returns 0 and an unlocked lock in *out (free it with weft_rwlock_free()),
 * -EINVAL (NULL), -ENOMEM. One allocation. Thread: any. */
WEFT_API int weft_rwlock_new(weft_rwlock **out);

/* Free it; no lock future may still be using it. NULL is ignored. */
WEFT_API void weft_rwlock_free(weft_rwlock *rw);

/* Without waiting: 0 when read-locked (write-locked) now; -EAGAIN when it
 * is held in a conflicting way or a lock future waits (FIFO); -EINVAL
 * (NULL). Thread: any. */
WEFT_API int weft_rwlock_try_read(weft_rwlock *rw);
WEFT_API int weft_rwlock_try_write(weft_rwlock *rw);

/* Release one read lock (the write lock), handing the lock to the waiters at
 * the head of the line. 0, or -EINVAL (NULL; not read-locked; not
 * write-locked). Thread: any. */
WEFT_API int weft_rwlock_unlock_read(weft_rwlock *rw);
WEFT_API int weft_rwlock_unlock_write(weft_rwlock *rw);

/* Lock futures. Output (*result): 0 with the lock held by the caller (give
 * it back with the matching unlock); -EINVAL (NULL). Cancel safety: dropping
 * one while pending gives up its place in line (which may let those behind
 * it through); if the lock had already been handed to it but it was not
 * polled again, the lock is released again (to the next in line), so no
 * grant is lost. After READY, drop does not unlock. */
typedef struct weft_rwlock_read {
    /* private: may change in any release */
    weft_sem_acquire acq;
} weft_rwlock_read;

typedef struct weft_rwlock_write {
    /* private: may change in any release */
    weft_sem_acquire acq;
} weft_rwlock_write;

/* init: set up a read (write) lock of `rw` (borrowed); nothing is taken
 * before the first poll. poll: locks or joins the line. drop: leaves the
 * line. Thread: the future's owner. */
WEFT_API void weft_rwlock_read_init(weft_rwlock_read *f, weft_rwlock *rw);
WEFT_API weft_poll weft_rwlock_read_poll(weft_rwlock_read *f, weft_context *cx, int *result);
WEFT_API void weft_rwlock_read_drop(weft_rwlock_read *f);
WEFT_API void weft_rwlock_write_init(weft_rwlock_write *f, weft_rwlock *rw);
WEFT_API weft_poll weft_rwlock_write_poll(weft_rwlock_write *f, weft_context *cx, int *result);
WEFT_API void weft_rwlock_write_drop(weft_rwlock_write *f);

/* ---- Watch channel ----------------------------------------------------------
 * One value of `size` bytes that a sender replaces and any number of
 * receivers observe: only the latest value is kept. Every send bumps a
 * version; a receiver remembers the version it saw last, and its `changed`
 * future completes when the current version differs (intermediate values
 * may be skipped; the last one is never missed). The object is
 * reference-counted: the sender handle (from weft_watch_new()) holds one
 * reference, every receiver another. */
typedef struct weft_watch weft_watch;          /* opaque: the sender */
typedef struct weft_watch_rx weft_watch_rx;    /* opaque: one receiver */

/* Make a watch holding a copy of `initial` (`size` bytes), version 0.
 * Returns 0 and the sender in *out (release it with weft_watch_drop());
 * -EINVAL (NULL out or initial, size 0 or above WEFT_FUTURE_MAX_SIZE),
 * -ENOMEM. One allocation. Thread: any. */
WEFT_API int weft_watch_new(weft_watch **out, size_t size, const void *initial);

/* Close (as weft_watch_close()) and release the sender. NULL is ignored.
 * Receivers keep the object alive. Thread: any. */
WEFT_API void weft_watch_drop(weft_watch *w);

/* Close: later sends get -EPIPE; every waiting `changed` is woken; a
 * receiver that has seen the last value gets -EPIPE from then on (one that
 * has not first gets that value). Idempotent; NULL is ignored. Thread: any. */
WEFT_API void weft_watch_close(weft_watch *w);

/* Replace the value with a copy of `value` (size bytes), bump the version
 * and wake every waiting `changed`. 0; -EPIPE closed; -EINVAL (NULL). Never
 * waits. Thread: any. */
WEFT_API int weft_watch_send(weft_watch *w, const void *value);

/* The current version (0 after new, +1 per send; 0 for NULL). Thread: any. */
WEFT_API uint64_t weft_watch_version(const weft_watch *w);

/* Subscribe: a new receiver that has seen the current value already (its
 * first `changed` waits for the next send). Works after close too. Returns
 * 0 and the receiver in *out (release it with weft_watch_rx_drop());
 * -EINVAL (NULL), -ENOMEM. One allocation. Thread: any. */
WEFT_API int weft_watch_rx_new(weft_watch_rx **out, weft_watch *w);

/* Release the receiver; no `changed` on it may still exist. The last
 * reference frees the object. NULL is ignored. Thread: any. */
WEFT_API void weft_watch_rx_drop(weft_watch_rx *rx);

/* Copy the current value to `dst` (size bytes) without marking it seen.
 * Works after close. 0, or -EINVAL (NULL). Thread: the receiver's owner. */
WEFT_API int weft_watch_get(weft_watch_rx *rx, void *dst);

/* Without waiting: 1 when the version differs from the one the receiver saw
 * last, 0 when not, -EPIPE when not and closed, -EINVAL (NULL). Marks
 * nothing. Thread: the receiver's owner. */
WEFT_API int weft_watch_has_changed(weft_watch_rx *rx);

/* Changed future. Output (*result): 0 with the current value copied to `dst`
 * and marked seen; -EPIPE closed and the last value already seen; -EINVAL
 * (NULL receiver or dst). At most one per receiver at a time. Cancel safety:
 * dropping it while pending loses nothing (the receiver's last seen version
 * does not move, so the next `changed` sees the change). */
typedef struct weft_watch_changed {
    /* private: may change in any release */
    weft_watch_rx *rx;
    void *dst;
    int result;
    weft_sync_waiter w;
} weft_watch_changed;

/* init: wait on `rx` (borrowed) and copy into `dst` (size bytes). poll:
 * completes or waits. drop: leaves the wait list. Thread: the receiver's
 * owner. */
WEFT_API void weft_watch_changed_init(weft_watch_changed *c, weft_watch_rx *rx, void *dst);
WEFT_API weft_poll weft_watch_changed_poll(weft_watch_changed *c, weft_context *cx, int *result);
WEFT_API void weft_watch_changed_drop(weft_watch_changed *c);

/* ---- Broadcast channel -------------------------------------------------------
 * Messages of `size` bytes in a ring of `cap`; every receiver sees every
 * message sent after it subscribed, in order. Sending never waits: when the
 * ring is full the oldest message is overwritten. A receiver that has fallen
 * behind so that messages it had not received were overwritten is told so
 * once (-EOVERFLOW with the number it missed) and then continues from the
 * oldest message kept. The object is reference-counted: the sender handle
 * (from weft_bcast_new()) holds one reference, every receiver another. */
typedef struct weft_bcast weft_bcast;          /* opaque: the sender */
typedef struct weft_bcast_rx weft_bcast_rx;    /* opaque: one receiver */

/* Make a broadcast channel of `cap` messages of `size` bytes. Returns 0 and
 * the sender in *out (release it with weft_bcast_drop()); -EINVAL (NULL,
 * size or cap 0, size * cap too large), -ENOMEM. One allocation.
 * Thread: any. */
WEFT_API int weft_bcast_new(weft_bcast **out, size_t size, size_t cap);

/* Close (as weft_bcast_close()) and release the sender. NULL is ignored.
 * Thread: any. */
WEFT_API void weft_bcast_drop(weft_bcast *b);

/* Close: later sends get -EPIPE; receivers drain what they have not
 * received (still subject to lag), then get -EPIPE. Wakes every waiting
 * receive. Idempotent; NULL is ignored. Thread: any. */
WEFT_API void weft_bcast_close(weft_bcast *b);

/* Copy the message at `msg` into the ring, overwriting the oldest when full,
 * and wake every waiting receive. Returns 0 (even with no receiver: then
 * nobody will see it); -EPIPE closed; -EINVAL (NULL). Never waits.
 * Thread: any. */
WEFT_API int weft_bcast_send(weft_bcast *b, const void *msg);

/* Subscribe: a receiver that sees the messages sent from now on. Returns 0
 * and the receiver in *out (release it with weft_bcast_rx_drop()); -EINVAL
 * (NULL), -ENOMEM. One allocation. Thread: any. */
WEFT_API int weft_bcast_rx_new(weft_bcast_rx **out, weft_bcast *b);

/* Release the receiver; no receive on it may still exist. The last
 * reference frees the object. NULL is ignored. Thread: any. */
WEFT_API void weft_bcast_rx_drop(weft_bcast_rx *rx);

/* Without waiting: 0 with the next message in `dst`; -EOVERFLOW when it
 * lagged (the number of messages it missed in *missed when not NULL; the
 * next receive returns the oldest kept message); -EAGAIN when it has seen
 * everything and the channel is open; -EPIPE when it has seen everything
 * and the channel is closed; -EINVAL (NULL rx or dst). Thread: the
 * receiver's owner. */
WEFT_API int weft_bcast_try_recv(weft_bcast_rx *rx, void *dst, uint64_t *missed);

/* Receive future. Output (*result): as weft_bcast_try_recv() without
 * -EAGAIN: 0 with the message in `dst`, -EOVERFLOW with the count in
 * *missed (when not NULL), -EPIPE, -EINVAL. At most one per receiver at a
 * time. Cancel safety: dropping it while pending takes nothing (the
 * receiver's position does not move). */
typedef struct weft_bcast_recv {
    /* private: may change in any release */
    weft_bcast_rx *rx;
    void *dst;
    uint64_t *missed;
    int result;
    weft_sync_waiter w;
} weft_bcast_recv;

/* init: receive from `rx` (borrowed) into `dst` (size bytes), reporting a
 * lag into `missed` (may be NULL). poll: receives or waits. drop: leaves the
 * wait list. Thread: the receiver's owner. */
WEFT_API void weft_bcast_recv_init(weft_bcast_recv *r, weft_bcast_rx *rx, void *dst,
                                   uint64_t *missed);
WEFT_API weft_poll weft_bcast_recv_poll(weft_bcast_recv *r, weft_context *cx, int *result);
WEFT_API void weft_bcast_recv_drop(weft_bcast_recv *r);

/* ---- Barrier ------------------------------------------------------------------
 * `n` parties wait; when the n-th arrives, all n are released together and
 * the barrier starts a new generation (it is reusable). A wait future
 * arrives at its first poll, not at init. Exactly one waiter per generation
 * (the one whose arrival completed it) is told it is the leader. */
typedef struct weft_barrier weft_barrier;      /* opaque */

/* Output of the one wait per generation whose arrival released it. */
#define WEFT_BARRIER_LEADER 1

/* Returns 0 and a barrier for `n` parties in *out (free it with
 * weft_barrier_free()); -EINVAL (NULL, n 0), -ENOMEM. Thread: any. */
WEFT_API int weft_barrier_new(weft_barrier **out, size_t n);

/* Free it; no wait future may still be using it. NULL is ignored. */
WEFT_API void weft_barrier_free(weft_barrier *b);

/* Parties waiting in the current generation now (a snapshot; 0 for NULL).
 * Thread: any. */
WEFT_API size_t weft_barrier_waiting(const weft_barrier *b);

/* Wait future. Output (*result): WEFT_BARRIER_LEADER for the one waiter
 * whose arrival released the generation, 0 for the others; -EINVAL (NULL).
 * Cancel safety: dropping it after it arrived but before its generation was
 * released takes its arrival back (the count goes down again: the barrier
 * then waits for another party). Dropping it after the release (woken, not
 * yet polled) changes nothing: that generation is complete. */
typedef struct weft_barrier_wait {
    /* private: may change in any release */
    weft_barrier *bar;
    int result;
    weft_sync_waiter w;
} weft_barrier_wait;

/* init: set up a wait on `b` (borrowed). poll: arrives (first poll) and
 * waits for the generation to be released. drop: leaves, as above.
 * Thread: the future's owner. */
WEFT_API void weft_barrier_wait_init(weft_barrier_wait *w, weft_barrier *b);
WEFT_API weft_poll weft_barrier_wait_poll(weft_barrier_wait *w, weft_context *cx, int *result);
WEFT_API void weft_barrier_wait_drop(weft_barrier_wait *w);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_SYNC2_H */
