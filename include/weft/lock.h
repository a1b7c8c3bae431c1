/* SPDX-License-Identifier: MIT */
/* weft/lock.h - waiting and locking between tasks: notify, semaphore, mutex,
 * read-write lock, barrier.
 *
 * Shared objects are opaque and live on the heap; the futures that wait on
 * them are plain structs that their owner embeds (`weft_chan_recv r;`), set
 * up by *_init, driven by *_poll, released by *_drop. A future borrows the
 * object it was initialised with: keep the object alive until the future has
 * been dropped. Awaiting never allocates: a pending future links its own
 * waiter node (inside the future) into the object's wait list.
 *
 * Common rules for every future below:
 *   - *_drop is valid in every state (zeroed, never polled, pending, woken
 *     but not polled again, complete) and idempotent.
 *   - Polling after READY returns READY again with the same result and does
 *     nothing else.
 *   - A future is polled by one thread at a time; *_drop must not run while
 *     it is being polled. The objects themselves may be used from any
 *     thread, tasks and plain threads alike.
 *   - A future whose init got a NULL object (or that was zeroed or dropped)
 *     completes at once with -EINVAL.
 *   - A poll without a waker to store (a NULL context, or one whose waker
 *     pointer is NULL, as in a zeroed weft_context) is misuse: it returns
 *     READY with -EINVAL and changes nothing (the future can be polled
 *     again with a proper context; one already READY may answer its
 *     result instead).
 *   - Futures that can complete many times in a row call weft_coop_proceed()
 *     first, so that a busy channel cannot starve the other tasks.
 * Wakes are delivered after the object's lock is released (wakers never run
 * under a weft lock). */
#ifndef WEFT_LOCK_H
#define WEFT_LOCK_H

#include <stdint.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A waiter node, embedded in every waiting future. Private: fields may
 * change in any release. */
typedef struct weft_sync_waiter {
    struct weft_sync_waiter *prev, *next;   /* object's wait list; its lock */
    weft_waker waker;                       /* ->lock while linked */
    size_t n;                               /* semaphore: permits asked for */
    uint64_t gen;                           /* notify: notify_all generation */
    unsigned char state;                    /* ->lock: idle/waiting/woken/done */
    unsigned char why;                      /* ->lock: what the wake means */
    unsigned char owner;                    /* the future's owner only */
} weft_sync_waiter;

/* ---- Notify ---------------------------------------------------------------
 * Wake tasks that wait for an event. notify_one wakes the oldest waiter, or,
 * if none waits, stores one permit (at most one) that the next wait consumes
 * at once: a notify_one before the wait is not lost. notify_all wakes every
 * wait future initialised before it (polled or not) and stores no permit. */
typedef struct weft_notify weft_notify;        /* opaque */

/* Returns 0 and the object in *out (free it with weft_notify_free()),
 * -EINVAL (NULL), -ENOMEM. Thread: any. */
WEFT_API int weft_notify_new(weft_notify **out);

/* Free it; no wait future may still be using it. NULL is ignored. */
WEFT_API void weft_notify_free(weft_notify *n);

/* Wake the oldest waiting future, or store a permit when none waits.
 * NULL is ignored. Thread: any. */
WEFT_API void weft_notify_one(weft_notify *n);

/* Wake every wait future initialised before this call. NULL is ignored.
 * Thread: any. */
WEFT_API void weft_notify_all(weft_notify *n);

/* Wait future. Output (*result): 0 when notified; -EINVAL for a NULL object.
 * Cancel safety: dropping it while waiting loses nothing; if a notify_one
 * had already chosen it, the notification passes on to the next waiter (or
 * becomes the stored permit). A dropped notify_all wake is simply dropped. */
typedef struct weft_notify_wait {
    /* private: may change in any release */
    weft_notify *nt;
    int result;
    weft_sync_waiter w;
} weft_notify_wait;

/* init: set up a wait on `n` (borrowed) and record notify_all's generation:
 * a notify_all from now on completes it even before its first poll. poll:
 * completes on a stored permit, a notify_one that chose it, or a later
 * notify_all. drop: leaves the wait list. Thread: the future's owner. */
WEFT_API void weft_notify_wait_init(weft_notify_wait *w, weft_notify *n);
WEFT_API weft_poll weft_notify_wait_poll(weft_notify_wait *w, weft_context *cx, int *result);
WEFT_API void weft_notify_wait_drop(weft_notify_wait *w);

/* ---- Semaphore ------------------------------------------------------------
 * Counting semaphore, strictly FIFO: an acquire that has to wait is served
 * before any later acquire or try_acquire, even one asking for fewer
 * permits. Permits are handed to waiters at release time (under the lock);
 * a waiter takes them when polled. */
typedef struct weft_sem weft_sem;              /* opaque */

/* The most permits a semaphore can hold. */
#define WEFT_SEM_MAX_PERMITS (SIZE_MAX >> 4)

/* Make a semaphore with `permits` permits. Returns 0 and the object in *out
 * (free it with weft_sem_free()), -EINVAL (NULL, permits above
 * WEFT_SEM_MAX_PERMITS), -ENOMEM. Thread: any. */
WEFT_API int weft_sem_new(weft_sem **out, size_t permits);

/* Free it; no acquire future may still be using it. NULL is ignored. */
WEFT_API void weft_sem_free(weft_sem *s);

/* Without waiting: take `n` permits. 0; -EAGAIN when fewer than n are free
 * or an acquire is already waiting (FIFO: even for n == 0); -EPIPE when
 * closed; -EINVAL (NULL). Thread: any. */
WEFT_API int weft_sem_try_acquire(weft_sem *s, size_t n);

/* Give back `n` permits (any caller may release, not only an acquirer),
 * handing them to waiters in FIFO order. 0, or -EINVAL (NULL, or the total
 * would exceed WEFT_SEM_MAX_PERMITS: nothing is added). Allowed after close.
 * Thread: any. */
WEFT_API int weft_sem_release(weft_sem *s, size_t n);

/* Close: pending and later acquires get -EPIPE (an acquire that was already
 * handed its permits still gets them). Permits can still be released.
 * Idempotent; NULL is ignored. Thread: any. */
WEFT_API void weft_sem_close(weft_sem *s);

/* Free permits now (a snapshot; 0 for NULL). Thread: any. */
WEFT_API size_t weft_sem_available(const weft_sem *s);

/* Acquire future: `n` permits. Output (*result): 0 with n permits now owned
 * by the caller (give them back with weft_sem_release()); -EPIPE closed;
 * -EINVAL (NULL, n above WEFT_SEM_MAX_PERMITS). Cancel safety: dropping it
 * while pending gives up its place in line and loses nothing: permits
 * already handed to it are released again (to the next waiters), as by
 * weft_sem_release(), except that what would lift the free count above
 * WEFT_SEM_MAX_PERMITS (after releases of permits nobody had acquired) is
 * discarded rather than refused: the count never exceeds the ceiling. */
typedef struct weft_sem_acquire {
    /* private: may change in any release */
    weft_sem *sem;
    int result;
    weft_sync_waiter w;
} weft_sem_acquire;

/* init: set up an acquire of `n` permits of `s` (borrowed); nothing is
 * taken before the first poll. poll: takes the permits or joins the line.
 * drop: leaves the line, giving back permits handed to it. Thread: the
 * future's owner. */
WEFT_API void weft_sem_acquire_init(weft_sem_acquire *a, weft_sem *s, size_t n);
WEFT_API weft_poll weft_sem_acquire_poll(weft_sem_acquire *a, weft_context *cx, int *result);
WEFT_API void weft_sem_acquire_drop(weft_sem_acquire *a);

/* Blocking form, for plain threads: acquire `n` permits as the future
 * would, parking the calling thread (no runtime needed, nothing allocated).
 * 0 with the permits owned by the caller; -EPIPE closed; -EINVAL (NULL, n
 * above WEFT_SEM_MAX_PERMITS); -EDEADLK, without waiting, when called on a
 * thread that runs weft tasks (a worker, or inside a current-thread
 * runtime's run/block_on): await weft_sem_acquire there. Not cancellable.
 * Thread: any but a weft worker. */
WEFT_API int weft_sem_acquire_wait(weft_sem *s, size_t n);

/* ---- Mutex ----------------------------------------------------------------
 * An async mutex (a semaphore of one permit): FIFO-fair, not recursive, and
 * not owned by a thread: any thread or task may unlock it. It guards no data
 * itself; put the data next to it. */
typedef struct weft_mutex weft_mutex;          /* opaque */

/* Returns 0 and an unlocked mutex in *out (free it with weft_mutex_free()),
 * -EINVAL (NULL), -ENOMEM. Thread: any. */
WEFT_API int weft_mutex_new(weft_mutex **out);

/* Free it; no lock future may still be using it. NULL is ignored. */
WEFT_API void weft_mutex_free(weft_mutex *m);

/* Without waiting: 0 when locked now; -EAGAIN when it is held or a lock
 * future waits (FIFO); -EINVAL (NULL). Thread: any. */
WEFT_API int weft_mutex_try_lock(weft_mutex *m);

/* Unlock, handing the mutex to the oldest waiting lock future. 0, or -EINVAL
 * (NULL, or not locked). Thread: any. */
WEFT_API int weft_mutex_unlock(weft_mutex *m);

/* Lock future. Output (*result): 0 with the mutex held by the caller;
 * -EINVAL (NULL). Cancel safety: dropping it while pending gives up its
 * place; if the mutex had already been handed to it, it is unlocked again
 * (passed to the next waiter). If someone else unlocked it while it was
 * handed to the future (a misuse: the future held it), the drop's unlock
 * is still one unlock: of a mutex found unlocked it is discarded (the
 * mutex never counts as free twice, so two try_locks cannot both take it
 * from one unlocked state); of a mutex found held it unlocks that hold. */
typedef struct weft_mutex_lock {
    /* private: may change in any release */
    weft_sem_acquire acq;
} weft_mutex_lock;

/* init: set up a lock of `m` (borrowed). poll: locks or joins the line.
 * drop: leaves the line, unlocking again if the mutex was handed to it but
 * not yet observed (after READY the caller holds the lock: drop does not
 * unlock). Thread: the future's owner. */
WEFT_API void weft_mutex_lock_init(weft_mutex_lock *l, weft_mutex *m);
WEFT_API weft_poll weft_mutex_lock_poll(weft_mutex_lock *l, weft_context *cx, int *result);
WEFT_API void weft_mutex_lock_drop(weft_mutex_lock *l);

/* Blocking form, for plain threads: lock as the future would, parking the
 * calling thread (FIFO with the lock futures; no runtime needed). 0 with the
 * mutex held by the caller; -EINVAL (NULL); -EDEADLK, without waiting, on a
 * thread that runs weft tasks (await weft_mutex_lock there). Not
 * cancellable. Thread: any but a weft worker. */
WEFT_API int weft_mutex_lock_wait(weft_mutex *m);

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

/* ---- Ready-made descriptors -------------------------------------------------
 * Every future above as a weft_future_type (for weft_timeout, weft_select,
 * weft_join_all, weft_race, weft_spawn), named as net.h names its own: the
 * type name + _future. Output: the poll's int result (sizeof(int)). The
 * future is set up by its *_init, as always; from then on whatever drives it
 * through the descriptor (a combinator, a task) owns it and drops it. */
WEFT_API extern const weft_future_type weft_notify_wait_future;
WEFT_API extern const weft_future_type weft_sem_acquire_future;
WEFT_API extern const weft_future_type weft_mutex_lock_future;
WEFT_API extern const weft_future_type weft_rwlock_read_future;
WEFT_API extern const weft_future_type weft_rwlock_write_future;
WEFT_API extern const weft_future_type weft_barrier_wait_future;

#ifdef __cplusplus
}
#endif
#endif /* WEFT_LOCK_H */
