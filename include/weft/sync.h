/* weft/sync.h - synchronization between tasks: oneshot, channels, notify,
 * semaphore, mutex.
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
 *   - Futures that can complete many times in a row call weft_coop_proceed()
 *     first, so that a busy channel cannot starve the other tasks.
 * Wakes are delivered after the object's lock is released (wakers never run
 * under a weft lock). */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

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

/* ---- Oneshot --------------------------------------------------------------
 * One value of `size` bytes from one sender to one receiver. Two handles to
 * one shared object: the sender (used once: send or drop) and the receiver.
 * Each handle is owned by one thread at a time. */
typedef struct weft_oneshot_tx weft_oneshot_tx;   /* opaque */
typedef struct weft_oneshot_rx weft_oneshot_rx;   /* opaque */

/* Make a oneshot for a value of `size` bytes (0 allowed: a bare signal).
 * Returns 0 with the sender in *tx and the receiver in *rx (release them with
 * weft_oneshot_send()/weft_oneshot_tx_drop() and weft_oneshot_rx_drop());
 * -EINVAL (NULL out-pointer, size above WEFT_FUTURE_MAX_SIZE), -ENOMEM. On
 * failure nothing is allocated and the out-pointers are untouched. One
 * allocation. Thread: any. */
WEFT_API int weft_oneshot_new(weft_oneshot_tx **tx, weft_oneshot_rx **rx, size_t size);

/* Send `size` bytes from `msg` (copied; may be NULL when size is 0) and
 * release the sender, which must not be used again. Returns 0 when the value
 * was stored for the receiver; -EPIPE when the receiver was already dropped
 * (the value is discarded; the caller still owns whatever `msg` refers to);
 * -EINVAL for a NULL tx, or a NULL msg with size > 0 (the sender is still
 * released, as by weft_oneshot_tx_drop()). Never waits. Thread: any. */
WEFT_API int weft_oneshot_send(weft_oneshot_tx *tx, const void *msg);

/* Release the sender without sending: the receiver gets -EPIPE. NULL is
 * ignored. Thread: any. */
WEFT_API void weft_oneshot_tx_drop(weft_oneshot_tx *tx);

/* True once the receiver has been dropped (a send would return -EPIPE).
 * False for NULL. Thread: any. */
WEFT_API bool weft_oneshot_tx_is_closed(const weft_oneshot_tx *tx);

/* Without waiting: 0 with the value copied to `dst` (may be NULL when size is
 * 0), -EAGAIN when nothing was sent yet and the sender is alive, -EPIPE when
 * the sender was dropped without sending or the value was already received;
 * -EINVAL for NULL arguments. Thread: the receiver's owner. */
WEFT_API int weft_oneshot_try_recv(weft_oneshot_rx *rx, void *dst);

/* Release the receiver; a value sent and not received is discarded. No
 * receive future on it may still exist. NULL is ignored. Thread: any. */
WEFT_API void weft_oneshot_rx_drop(weft_oneshot_rx *rx);

/* Receive future. Output (*result): 0 with the value in `dst`, or -EPIPE
 * (sender dropped without sending, or value already received). At most one
 * receive future per receiver at a time. Cancel safety: dropping it while
 * pending loses nothing; the value stays for the next receive. */
typedef struct weft_oneshot_recv {
    /* private: may change in any release */
    struct weft_oneshot *os;
    void *dst;
    int result;
    unsigned char state;
} weft_oneshot_recv;

/* init: receive into `dst` (size bytes; NULL allowed for size 0) from `rx`
 * (borrowed). poll: as described above. drop: releases the stored waker.
 * Thread: the future's owner. */
WEFT_API void weft_oneshot_recv_init(weft_oneshot_recv *r, weft_oneshot_rx *rx, void *dst);
WEFT_API weft_poll weft_oneshot_recv_poll(weft_oneshot_recv *r, weft_context *cx, int *result);
WEFT_API void weft_oneshot_recv_drop(weft_oneshot_recv *r);

/* ---- Channels -------------------------------------------------------------
 * Multi-producer multi-consumer FIFO of fixed-size messages, bounded or
 * unbounded. One handle type for senders and receivers, reference-counted:
 * every holder (a task, a thread) clones its own reference and drops it.
 * The channel closes only when weft_chan_close() is called: receivers then
 * drain every queued message and get -EPIPE; senders get -EPIPE at once.
 * Messages are copied in and out with memcpy. Receivers woken for a message
 * take it only when polled, so a receive dropped at any point loses nothing
 * and keeps nothing; a receive that arrives first may take a message before
 * a woken one does (the woken one then waits again, at the front). */
typedef struct weft_chan weft_chan;            /* opaque, reference-counted */

/* Make a channel of messages of `msg_size` bytes holding at most `cap` queued
 * messages (0: unbounded; sends never wait, the buffer grows by doubling).
 * Returns 0 and a new reference in *out (drop it with weft_chan_drop());
 * -EINVAL (NULL out, msg_size 0, msg_size or msg_size * cap too large),
 * -ENOMEM. A bounded channel is one allocation; an unbounded one allocates
 * its buffer on demand. Thread: any. */
WEFT_API int weft_chan_new(weft_chan **out, size_t msg_size, size_t cap);

/* One more reference to `ch` (returned; NULL for NULL). Thread: any. */
WEFT_API weft_chan *weft_chan_clone(weft_chan *ch);

/* Release one reference; the last one frees the channel and any messages
 * still queued. No future may still be using this reference. NULL is
 * ignored. Thread: any. */
WEFT_API void weft_chan_drop(weft_chan *ch);

/* Close the channel: pending and later sends get -EPIPE; receivers drain
 * what is queued, then get -EPIPE. Every waiting future is woken.
 * Idempotent; NULL is ignored. Thread: any. */
WEFT_API void weft_chan_close(weft_chan *ch);

/* True once weft_chan_close() was called (false for NULL). Thread: any. */
WEFT_API bool weft_chan_is_closed(const weft_chan *ch);

/* Messages queued now (a snapshot; 0 for NULL). Thread: any. */
WEFT_API size_t weft_chan_len(const weft_chan *ch);

/* Without waiting: copy the message at `msg` into the channel. Returns 0;
 * -EAGAIN when a bounded channel is full; -EPIPE when closed; -ENOMEM when an
 * unbounded channel could not grow; -EINVAL for NULL arguments. The caller
 * keeps `msg`. Thread: any. */
WEFT_API int weft_chan_try_send(weft_chan *ch, const void *msg);

/* Without waiting: take the oldest message into `dst`. Returns 0; -EAGAIN
 * when empty and open; -EPIPE when closed and empty; -EINVAL for NULL
 * arguments. Thread: any. */
WEFT_API int weft_chan_try_recv(weft_chan *ch, void *dst);

/* Send future: copies the message at `msg` (borrowed: keep it unchanged until
 * the future completes or is dropped) into `ch`, waiting while a bounded
 * channel is full. Output (*result): 0 sent; -EPIPE closed (not sent);
 * -ENOMEM (unbounded channel could not grow; not sent); -EINVAL (NULL
 * channel or msg). Cancel safety: dropping it while pending sends nothing and
 * keeps no slot; a wake it was handed is passed to the next waiting sender. */
typedef struct weft_chan_send {
    /* private: may change in any release */
    weft_chan *ch;
    const void *msg;
    int result;
    weft_sync_waiter w;
} weft_chan_send;

/* init: set up a send of `msg` on `ch` (borrowed; both kept by the caller).
 * poll: sends or waits. drop: leaves the wait list (passing on a wake it was
 * handed). Thread: the future's owner; the channel may be used by any. */
WEFT_API void weft_chan_send_init(weft_chan_send *s, weft_chan *ch, const void *msg);
WEFT_API weft_poll weft_chan_send_poll(weft_chan_send *s, weft_context *cx, int *result);
WEFT_API void weft_chan_send_drop(weft_chan_send *s);

/* Receive future: takes the oldest message into `dst` (written only on
 * success). Output (*result): 0 received; -EPIPE closed and drained; -EINVAL
 * (NULL channel or dst). Cancel safety: dropping it while pending takes no
 * message; a wake it was handed is passed to the next waiting receiver, so
 * no message is stranded. */
typedef struct weft_chan_recv {
    /* private: may change in any release */
    weft_chan *ch;
    void *dst;
    int result;
    weft_sync_waiter w;
} weft_chan_recv;

/* init: set up a receive from `ch` (borrowed) into `dst` (msg_size bytes).
 * poll: receives or waits. drop: leaves the wait list (passing on a wake it
 * was handed). Thread: the future's owner. */
WEFT_API void weft_chan_recv_init(weft_chan_recv *r, weft_chan *ch, void *dst);
WEFT_API weft_poll weft_chan_recv_poll(weft_chan_recv *r, weft_context *cx, int *result);
WEFT_API void weft_chan_recv_drop(weft_chan_recv *r);

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
 * already handed to it are released again (to the next waiters). */
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
 * (passed to the next waiter). */
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

#ifdef __cplusplus
}
#endif
#endif /* WEFT_SYNC_H */
