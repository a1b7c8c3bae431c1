/* SPDX-License-Identifier: MIT */
/* weft/chan.h - passing values between tasks: oneshot, channels, watch
 * channel (latest value), broadcast channel.
 *
 * The rules of weft/lock.h hold here too: objects are opaque and live on the
 * heap; the futures that wait on them are plain structs their owner embeds,
 * set up by *_init, driven by *_poll, released by *_drop; *_drop is valid in
 * every state and idempotent; polling after READY returns READY again with
 * the same result; a future whose init got a NULL object completes at once
 * with -EINVAL; awaiting never allocates; wakers never run under a weft lock.
 * A future borrows the object (or receiver) it was initialised with: keep it
 * alive until the future has been dropped. */
#ifndef WEFT_CHAN_H
#define WEFT_CHAN_H

#include <stdint.h>

#include "core.h"
#include "lock.h"

#ifdef __cplusplus
extern "C" {
#endif

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

/* Blocking form, for plain threads: wait for the value as a receive future
 * would, parking the calling thread (mutex + condition variable on its
 * stack; no runtime needed, nothing allocated). Returns 0 with the value in
 * `dst`; -EPIPE (sender dropped without sending, or value already
 * received); -EINVAL (NULL rx, or NULL dst with size > 0); -EDEADLK when
 * called on a thread that runs weft tasks (a worker, or inside a
 * current-thread runtime's run/block_on): it would block the thread that
 * may have to run the sender; await weft_oneshot_recv there. The receiver
 * stays owned by the caller. Not cancellable: it returns only when the value
 * arrives or the sender goes. Thread: the receiver's owner, not a weft
 * worker. */
WEFT_API int weft_oneshot_recv_wait(weft_oneshot_rx *rx, void *dst);

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

/* Blocking forms, for plain threads (main(), a thread of another library):
 * send or receive as the futures above would, parking the calling thread
 * until done (mutex + condition variable on its stack: no runtime needed,
 * nothing allocated). Tasks and other threads on the same channel wake it as
 * they would wake a task. Returns what the future's result would be: 0
 * (sent; received into `dst`), -EPIPE (closed; for a receive: closed and
 * drained), -ENOMEM (unbounded channel could not grow), -EINVAL (NULL
 * channel, msg or dst); and -EDEADLK when called on a thread that runs weft
 * tasks (a worker, or inside a current-thread runtime's run/block_on),
 * without waiting: blocking there could stall the task that would wake it
 * (await weft_chan_send/weft_chan_recv there, or use the try_ forms). The
 * caller keeps its reference and `msg`. Not cancellable: they return only
 * when the operation completes or the channel is closed. Thread: any but a
 * weft worker. */
WEFT_API int weft_chan_send_wait(weft_chan *ch, const void *msg);
WEFT_API int weft_chan_recv_wait(weft_chan *ch, void *dst);

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

/* ---- Ready-made descriptors -------------------------------------------------
 * Every future above as a weft_future_type, so that it composes without a
 * WEFT_DEFINE_FUTURE of your own: weft_timeout over a receive is a timed
 * receive, weft_select over receives waits on several channels, weft_spawn
 * runs a bare send. Named as net.h names its own (the type name + _future).
 * The output is the poll's int result (sizeof(int)); the future is
 * initialised by its *_init and owned by whatever drives it from then on. */
WEFT_API extern const weft_future_type weft_oneshot_recv_future;
WEFT_API extern const weft_future_type weft_chan_send_future;
WEFT_API extern const weft_future_type weft_chan_recv_future;
WEFT_API extern const weft_future_type weft_watch_changed_future;
WEFT_API extern const weft_future_type weft_bcast_recv_future;

#ifdef __cplusplus
}
#endif
#endif /* WEFT_CHAN_H */
