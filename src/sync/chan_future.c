/* SPDX-License-Identifier: MIT */
/* The send and receive futures of channels (sync/chan.c has the channel
 * object, the operations without waiting, and in its header comment the
 * protocol: the bounded ring, the waiting flags and the wake rules these
 * futures follow).
 *
 * ---- The handoff to a woken future (bounded) -----------------------------
 * A message reaches a parked receiver in one lock hold and one wake: the
 * sender claims and publishes its slot without the lock, sees recv_waiting,
 * locks, unlinks the first receiver as WOKEN (moving its waker out) and
 * wakes it after unlocking. The woken receiver then takes a message
 * without the lock, as a fresh receive would (ring_pop), and notifies a
 * waiting sender the same way. Senders woken for room are the mirror image.
 *
 *   notifier (under ->lock)                  woken owner (no lock)
 *   unlink node, why = READY/CLOSED,         waiter_is_woken()?   [acquire]
 *   move waker out, state = WOKEN [release]  ring_pop / ring_push (as fresh)
 *   (never touches the node again)           0 or -EPIPE: node DONE, no lock
 *                                            -EAGAIN: lock, park at the front
 *
 * Invariant: a WOKEN node is unlinked and its waker moved out, so it
 * belongs to its owner alone: no notifier, close or drop of another future
 * reaches it (they only walk the lists). The owner may therefore finish it
 * (DONE) or leave it WOKEN without the lock. A WOKEN future that does not
 * use its wake (dropped, or -EAGAIN because a barging operation took what
 * it was woken for) either passes the wake on under the lock (drop:
 * chan_pass_on()) or parks again at the front and is woken by the next
 * finisher (the Dekker argument in chan.c: it re-checks after raising the
 * flag). A woken operation that leaves messages (room) behind wakes one
 * more waiter of its kind, as the locked path does. Why no direct handoff
 * into the receiver's dst: chan.h promises that dst is written only on
 * success and that a receive dropped at any point takes no message; a
 * message written into a future that is then dropped would have to go
 * back to the front of the ring, which a lock-free FIFO cannot do. */
#include <stdatomic.h>
#include <stdint.h>

#include "sync/chan_ring.h"
#include "sync/waitq.h"
#include "task/task.h"

/* chan_notify_locked(), then READY: the hot polls end in a call to this,
 * a tail call, so that they need no frame of their own. The body is
 * chan_notify_locked()'s own, inlined (not a call to it: one frame fewer
 * per message in W4). */
static __attribute__((noinline)) weft_poll chan_notify_locked_ready(struct weft_chan *ch,
                                                                    chan_flag *flag,
                                                                    struct weft__waitq *q)
{
    chan_notify_locked_body(ch, flag, q);
    return WEFT_READY;
}

/* A WOKEN future goes away without using its wake: hand it on. ->lock held. */
static void chan_pass_on(struct weft__waitq *q, weft_sync_waiter *w, struct wake_batch *b)
{
    if (w->state == W_WOKEN && w->why == WHY_READY)
        waitq_wake_one(q, WHY_READY, b);
}

/* A future that completed without ever parking: nothing to undo. */
static void waiter_done_unparked(weft_sync_waiter *w)
{
    assert(w->owner == O_IDLE && w->state == W_IDLE);
    w->state = W_DONE;
    w->owner = O_DONE;
}

/* A WOKEN future completed without the lock: nothing to undo either. The
 * notifier unlinked the node and moved its waker out before storing WOKEN
 * (release; our waiter_is_woken() was the acquire), and no one else reaches
 * an unlinked node, so the owner finishes it alone. */
static void waiter_done_woken(weft_sync_waiter *w)
{
    assert(w->owner == O_PARKED && w->state == W_WOKEN && w->waker.vtable == NULL);
    w->state = W_DONE;
    w->why = WHY_NONE;
    w->owner = O_DONE;
}

/* ---- Send future ----------------------------------------------------------- */
WEFT_API void weft_chan_send_init(weft_chan_send *s, weft_chan *ch, const void *msg)
{
    if (s == NULL)
        return;
    s->ch = ch;
    s->msg = msg;
    s->result = 0;
    waiter_reset(&s->w);
}

/* The common wait of a fresh future (never parked, so its node is IDLE
 * with no waker: waiter_reset()), once its lock-free attempt found the ring
 * empty (full) and `seen` raised: under ->lock, if flag_recheck_done()
 * says the attempt was the re-check, link the node at the back with a
 * clone of cx's waker and report true (parked; the caller returns
 * PENDING). Otherwise (the flag changed, or closed) unlock and report
 * false: the caller takes its locked path, which decides everything again
 * under the lock. This is ring_*_locked()'s "re-checked already" branch
 * on its own: with no old waker to compare or drop, no result to write
 * and nothing to wake, it needs two registers across the waker's clone
 * instead of the whole slow path's six (W4 parks once per message). */
static inline __attribute__((always_inline)) bool chan_park_fresh(struct weft_chan *ch,
                                                                  chan_flag *flag,
                                                                  struct weft__waitq *q,
                                                                  weft_sync_waiter *w,
                                                                  weft_context *cx, size_t seen)
{
    assert(w->owner == O_IDLE && w->state == W_IDLE && w->waker.vtable == NULL);
    spin_lock(&ch->lock);
    if (!flag_recheck_done(ch, flag, seen)) {
        spin_unlock(&ch->lock);
        return false;
    }
    waitq_push_back(q, w);
    w->state = W_WAITING;
    w->why = WHY_NONE;
    w->owner = O_PARKED;
    waker_store_clone(&w->waker, weft_context_waker(cx));
    spin_unlock(&ch->lock);
    return true;
}

/* Bounded send, slow path: takes ->lock and releases it. `seen`: the send
 * flag as read before a fresh send's lock-free attempt (which found the
 * ring full), or 0 (flag_recheck_done()). Returns PENDING parked, or READY
 * with the result in s->result and *result. */
static __attribute__((noinline)) weft_poll ring_send_locked(struct weft_chan *ch,
                                                            weft_chan_send *s,
                                                            weft_context *cx, int *result,
                                                            size_t seen)
{
    weft_waker old, wk[2] = { WEFT_WAKER_EMPTY, WEFT_WAKER_EMPTY };
    int r;

    spin_lock(&ch->lock);
    if (flag_recheck_done(ch, &ch->send_waiting, seen)) {
        r = -EAGAIN;                       /* full, re-checked already */
    } else {
        /* the parker's half (header): raise the flag, then look again.
         * seq_cst (flag_raise()): before the re-check in ring_push() in
         * the total order */
        flag_raise(&ch->send_waiting);
        r = ring_push(ch, s->msg, ch->msg_size);
    }
    if (r == -EAGAIN) {
        /* a woken sender that lost its slot to another keeps its turn */
        old = waitq_park(&ch->sendq, &s->w, cx, s->w.state == W_WOKEN);
        spin_unlock(&ch->lock);
        weft_waker_drop(&old);
        return WEFT_PENDING;
    }
    if (r == RING_IN_PROGRESS) {
        /* a receive is freeing our slot but may not see our flag: poll
         * again soon instead of waiting for it (it would wake a sender
         * that is linked, not necessarily us) */
        chan_sync_flags(ch);
        spin_unlock(&ch->lock);
        weft__task_wake_soon(cx);
        return WEFT_PENDING;
    }
    old = waitq_finish(&ch->sendq, &s->w);
    if (r == 0) {
        /* queued a message: a receiver that waits links under this lock */
        if (ch->recvq.first)
            wk[0] = waitq_unlink_woken(&ch->recvq, ch->recvq.first, WHY_READY);
        if (ch->sendq.first && ring_len(ch) < ch->cap)
            wk[1] = waitq_unlink_woken(&ch->sendq, ch->sendq.first, WHY_READY);
    }
    chan_sync_flags(ch);
    spin_unlock(&ch->lock);
    weft_waker_wake(&wk[0]);               /* wakers: after unlocking */
    weft_waker_wake(&wk[1]);
    weft_waker_drop(&old);
    s->result = r;
    *result = r;
    return WEFT_READY;
}

/* A fresh bounded send found the ring full with the send flag raised
 * (`seen`): park it (chan_park_fresh()), or take the slow path. */
static __attribute__((noinline)) weft_poll ring_send_park_fresh(struct weft_chan *ch,
                                                                weft_chan_send *s,
                                                                weft_context *cx, int *result,
                                                                size_t seen)
{
    if (chan_park_fresh(ch, &ch->send_waiting, &ch->sendq, &s->w, cx, seen))
        return WEFT_PENDING;
    return ring_send_locked(ch, s, cx, result, seen);
}

/* Unbounded send (never waits): under ->lock. */
static __attribute__((noinline)) int chan_send_unbounded(struct weft_chan *ch,
                                                         weft_chan_send *s)
{
    struct wake_batch b;
    weft_waker old;
    int ret;

    wake_batch_init(&b);
    spin_lock(&ch->lock);
    if (ch->closed) {
        ret = -EPIPE;
    } else {
        ret = weft__chan_lk_push(ch, s->msg, &b);
        if (ret < 0)                        /* -ENOMEM: let another try */
            chan_pass_on(&ch->sendq, &s->w, &b);
    }
    old = waitq_finish(&ch->sendq, &s->w);
    spin_unlock(&ch->lock);
    wake_batch_run(&b);
    weft_waker_drop(&old);
    return ret;
}

/* A bounded send's first poll (never parked: no notifier knows the node,
 * so no lock unless it has to wait). The paths below keep no wake batch of
 * their own (the slow ones above and below do), so that the common bounded
 * send or receive runs in a small frame: W4 polls two of these and drops
 * two per message. */
static inline __attribute__((always_inline)) weft_poll ring_send_fresh_n(struct weft_chan *ch,
                                                                         weft_chan_send *s,
                                                                         weft_context *cx,
                                                                         int *result,
                                                                         size_t msg_size)
{
    /* seq_cst: before ring_push()'s re-check load (flag_recheck_done()) */
    size_t seen = atomic_load_explicit(&ch->send_waiting, memory_order_seq_cst);
    int ret = ring_push(ch, s->msg, msg_size);

    if (ret == -EAGAIN)
        return (seen & FLAG_UP) ? ring_send_park_fresh(ch, s, cx, result, seen)
                                : ring_send_locked(ch, s, cx, result, seen);
    if (ret == RING_IN_PROGRESS) {
        /* our slot is being freed: poll again soon (a yield) */
        weft__task_wake_soon(cx);
        return WEFT_PENDING;
    }
    waiter_done_unparked(&s->w);
    s->result = ret;
    *result = ret;
    /* seq_cst: chan_notify()'s load (after our claim) */
    if (ret == 0 && (atomic_load_explicit(&ch->recv_waiting, memory_order_seq_cst) & FLAG_UP))
        return chan_notify_locked_ready(ch, &ch->recv_waiting, &ch->recvq);
    return WEFT_READY;
}

/* Compiled twice: for word-sized messages (W4's, C1's: the copy inline, no
 * frame; inlined into the poll's dispatch, which stays frameless too) and
 * for any size. */
static inline __attribute__((always_inline)) weft_poll ring_send_fresh_word(struct weft_chan *ch,
                                                                            weft_chan_send *s,
                                                                            weft_context *cx,
                                                                            int *result)
{
    return ring_send_fresh_n(ch, s, cx, result, MSG_WORD);
}

static __attribute__((noinline)) weft_poll ring_send_fresh_any(struct weft_chan *ch,
                                                               weft_chan_send *s, weft_context *cx,
                                                               int *result)
{
    return ring_send_fresh_n(ch, s, cx, result, ch->msg_size);
}

static inline weft_poll ring_send_fresh(struct weft_chan *ch, weft_chan_send *s, weft_context *cx,
                                        int *result)
{
    if (ch->msg_size == MSG_WORD)
        return ring_send_fresh_word(ch, s, cx, result);
    return ring_send_fresh_any(ch, s, cx, result);
}

/* A woken send queued a message and a flag is raised: wake a waiting
 * receiver (chan_notify()), and (the rule for woken ones, header) one more
 * sender if room is left behind while other senders wait. seq_cst loads:
 * as chan_notify()'s, after our claim. */
static __attribute__((noinline)) weft_poll ring_send_woken_notify(struct weft_chan *ch)
{
    chan_notify(ch, &ch->recv_waiting, &ch->recvq);
    if ((atomic_load_explicit(&ch->send_waiting, memory_order_seq_cst) & FLAG_UP) &&
        ring_len(ch) < ch->cap)
        chan_notify_locked(ch, &ch->send_waiting, &ch->sendq);
    return WEFT_READY;
}

/* A parked bounded send polled again. */
static inline __attribute__((always_inline)) weft_poll ring_send_parked_n(struct weft_chan *ch,
                                                                          weft_chan_send *s,
                                                                          weft_context *cx,
                                                                          int *result,
                                                                          size_t msg_size)
{
    int ret;

    if (!waiter_is_woken(&s->w))
        return ring_send_locked(ch, s, cx, result, 0);
    /* woken (the handoff's fast path): the node is ours alone
     * (waiter_done_woken()), so try the ring without the lock, as a fresh
     * send would. Only a full ring sends us to the lock, to park again at
     * the front. */
    ret = ring_push(ch, s->msg, msg_size);
    if (ret == -EAGAIN)
        return ring_send_locked(ch, s, cx, result, 0);
    if (ret == RING_IN_PROGRESS) {
        /* still WOKEN, still ours: poll again soon */
        weft__task_wake_soon(cx);
        return WEFT_PENDING;
    }
    waiter_done_woken(&s->w);
    s->result = ret;
    *result = ret;
    /* seq_cst: as in ring_recv_parked() */
    if (ret == 0 &&
        ((atomic_load_explicit(&ch->recv_waiting, memory_order_seq_cst) |
          atomic_load_explicit(&ch->send_waiting, memory_order_seq_cst)) & FLAG_UP))
        return ring_send_woken_notify(ch);
    return WEFT_READY;
}

/* Compiled twice: for word-sized messages (W4's, C1's: the copy inline, no
 * frame; inlined into the poll's dispatch, which stays frameless too) and
 * for any size. */
static inline __attribute__((always_inline)) weft_poll ring_send_parked_word(struct weft_chan *ch,
                                                                             weft_chan_send *s,
                                                                             weft_context *cx,
                                                                             int *result)
{
    return ring_send_parked_n(ch, s, cx, result, MSG_WORD);
}

static __attribute__((noinline)) weft_poll ring_send_parked_any(struct weft_chan *ch,
                                                                weft_chan_send *s, weft_context *cx,
                                                                int *result)
{
    return ring_send_parked_n(ch, s, cx, result, ch->msg_size);
}

static inline weft_poll ring_send_parked(struct weft_chan *ch, weft_chan_send *s, weft_context *cx,
                                         int *result)
{
    if (ch->msg_size == MSG_WORD)
        return ring_send_parked_word(ch, s, cx, result);
    return ring_send_parked_any(ch, s, cx, result);
}

/* Misuse: -EINVAL if it can be told. */
static __attribute__((noinline)) weft_poll send_poll_invalid(int *result)
{
    if (result)
        *result = -EINVAL;
    return WEFT_READY;
}

/* Unbounded send (never waits). */
static __attribute__((noinline)) weft_poll chan_send_unbounded_poll(struct weft_chan *ch,
                                                                    weft_chan_send *s,
                                                                    int *result)
{
    int ret = chan_send_unbounded(ch, s);

    s->result = ret;
    *result = ret;
    return WEFT_READY;
}

static inline __attribute__((always_inline)) weft_poll send_dispatch(struct weft_chan *ch,
                                                                     weft_chan_send *s,
                                                                     weft_context *cx,
                                                                     int *result)
{
    if (ch->cap == 0)
        return chan_send_unbounded_poll(ch, s, result);
    if (s->w.owner == O_IDLE)
        return ring_send_fresh(ch, s, cx, result);
    return ring_send_parked(ch, s, cx, result);
}

/* The budget's uncommon cases (used up, stress mode, no runtime). */
static __attribute__((noinline)) weft_poll send_poll_coop(struct weft_chan *ch,
                                                          weft_chan_send *s,
                                                          weft_context *cx, int *result)
{
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;               /* the task was woken already */
    return send_dispatch(ch, s, cx, result);
}

/* As weft_chan_recv_poll(): a dispatch that tail-calls each path. */
WEFT_API weft_poll weft_chan_send_poll(weft_chan_send *s, weft_context *cx, int *result)
{
    struct weft_chan *ch;

    if (s == NULL || result == NULL || s->ch == NULL || s->msg == NULL || cx == NULL ||
        cx->waker == NULL)
        return send_poll_invalid(result);
    ch = s->ch;
    if (s->w.owner == O_DONE) {
        *result = s->result;
        return WEFT_READY;
    }
    if (!weft__coop_take_fast(cx))
        return send_poll_coop(ch, s, cx, result);
    return send_dispatch(ch, s, cx, result);
}

/* Drop of a parked send: leave the list, passing on a wake it was handed. */
static __attribute__((noinline)) void chan_send_drop_parked(struct weft_chan *ch,
                                                            weft_chan_send *s)
{
    struct wake_batch b;
    weft_waker old;

    wake_batch_init(&b);
    spin_lock(&ch->lock);
    if (!ch->closed && (ch->cap == 0 || ring_len(ch) < ch->cap))
        chan_pass_on(&ch->sendq, &s->w, &b);
    old = waitq_finish(&ch->sendq, &s->w);
    if (ch->cap)
        chan_sync_flags(ch);
    spin_unlock(&ch->lock);
    wake_batch_run(&b);
    weft_waker_drop(&old);
    s->w.owner = O_DONE;             /* waitq_finish() did; as below */
    s->ch = NULL;
}

/* The parked case tail-calls its own function, which ends the future too:
 * the common drop (a completed future) then needs no frame. */
WEFT_API void weft_chan_send_drop(weft_chan_send *s)
{
    if (s == NULL || s->ch == NULL)
        return;
    if (s->w.owner == O_PARKED) {
        chan_send_drop_parked(s->ch, s);
        return;
    }
    s->w.owner = O_DONE;
    s->ch = NULL;
}

/* ---- Receive future ---------------------------------------------------------- */
WEFT_API void weft_chan_recv_init(weft_chan_recv *r, weft_chan *ch, void *dst)
{
    if (r == NULL)
        return;
    r->ch = ch;
    r->dst = dst;
    r->result = 0;
    waiter_reset(&r->w);
}

/* Bounded receive, slow path: takes ->lock and releases it. `seen`: the
 * receive flag as read before a fresh receive's lock-free attempt (which
 * found the ring empty), or 0 (flag_recheck_done()). Returns PENDING
 * parked, or READY with the result in r->result and *result. */
static __attribute__((noinline)) weft_poll ring_recv_locked(struct weft_chan *ch,
                                                            weft_chan_recv *r,
                                                            weft_context *cx, int *result,
                                                            size_t seen)
{
    weft_waker old, wk[2] = { WEFT_WAKER_EMPTY, WEFT_WAKER_EMPTY };
    int v;

    spin_lock(&ch->lock);
    if (flag_recheck_done(ch, &ch->recv_waiting, seen)) {
        v = -EAGAIN;                       /* empty, re-checked already */
    } else {
        /* the parker's half (header): raise the flag, then look again.
         * seq_cst (flag_raise()): before the re-check in ring_pop() in the
         * total order */
        flag_raise(&ch->recv_waiting);
        v = ring_pop(ch, r->dst, ch->msg_size);
    }
    if (v == -EAGAIN) {
        /* a woken receiver that lost its message to another keeps its turn */
        old = waitq_park(&ch->recvq, &r->w, cx, r->w.state == W_WOKEN);
        spin_unlock(&ch->lock);
        weft_waker_drop(&old);
        return WEFT_PENDING;
    }
    if (v == RING_IN_PROGRESS) {
        /* a send is writing the head but may not see our flag: poll again
         * soon instead of waiting for it (this is also how a receiver
         * waits, after close, for a send claimed before it) */
        chan_sync_flags(ch);
        spin_unlock(&ch->lock);
        weft__task_wake_soon(cx);
        return WEFT_PENDING;
    }
    old = waitq_finish(&ch->recvq, &r->w);
    if (v == 0) {
        /* freed a slot: a sender that waits links under this lock */
        if (ch->sendq.first)
            wk[0] = waitq_unlink_woken(&ch->sendq, ch->sendq.first, WHY_READY);
        if (ch->recvq.first && ring_len(ch) > 0)
            wk[1] = waitq_unlink_woken(&ch->recvq, ch->recvq.first, WHY_READY);
    }
    chan_sync_flags(ch);
    spin_unlock(&ch->lock);
    weft_waker_wake(&wk[0]);               /* wakers: after unlocking */
    weft_waker_wake(&wk[1]);
    weft_waker_drop(&old);
    r->result = v;
    *result = v;
    return WEFT_READY;
}

/* A fresh bounded receive found the ring empty with the receive flag
 * raised (`seen`): park it (chan_park_fresh()), or take the slow path. */
static __attribute__((noinline)) weft_poll ring_recv_park_fresh(struct weft_chan *ch,
                                                                weft_chan_recv *r,
                                                                weft_context *cx, int *result,
                                                                size_t seen)
{
    if (chan_park_fresh(ch, &ch->recv_waiting, &ch->recvq, &r->w, cx, seen))
        return WEFT_PENDING;
    return ring_recv_locked(ch, r, cx, result, seen);
}

/* Unbounded receive: under ->lock. Returns PENDING parked, or READY with
 * the result in r->result and *result. */
static __attribute__((noinline)) weft_poll chan_recv_unbounded(struct weft_chan *ch,
                                                               weft_chan_recv *r,
                                                               weft_context *cx, int *result)
{
    struct wake_batch b;
    weft_waker old;
    int ret = 0;

    wake_batch_init(&b);
    spin_lock(&ch->lock);
    if (ch->len) {
        lk_pop(ch, r->dst, &b);
    } else if (ch->closed) {
        ret = -EPIPE;
    } else {
        old = waitq_park(&ch->recvq, &r->w, cx, r->w.state == W_WOKEN);
        spin_unlock(&ch->lock);
        weft_waker_drop(&old);
        return WEFT_PENDING;
    }
    old = waitq_finish(&ch->recvq, &r->w);
    spin_unlock(&ch->lock);
    wake_batch_run(&b);
    weft_waker_drop(&old);
    r->result = ret;
    *result = ret;
    return WEFT_READY;
}

/* A bounded receive's first poll (never parked: no notifier knows the node,
 * so no lock unless it has to wait). */
static inline __attribute__((always_inline)) weft_poll ring_recv_fresh_n(struct weft_chan *ch,
                                                                         weft_chan_recv *r,
                                                                         weft_context *cx,
                                                                         int *result,
                                                                         size_t msg_size)
{
    /* seq_cst: before ring_pop()'s re-check load (flag_recheck_done()) */
    size_t seen = atomic_load_explicit(&ch->recv_waiting, memory_order_seq_cst);
    int ret = ring_pop(ch, r->dst, msg_size);

    if (ret == -EAGAIN)
        return (seen & FLAG_UP) ? ring_recv_park_fresh(ch, r, cx, result, seen)
                                : ring_recv_locked(ch, r, cx, result, seen);
    if (ret == RING_IN_PROGRESS) {
        /* the head is being written: poll again soon (a yield) */
        weft__task_wake_soon(cx);
        return WEFT_PENDING;
    }
    waiter_done_unparked(&r->w);
    r->result = ret;
    *result = ret;
    /* seq_cst: chan_notify()'s load (after our claim) */
    if (ret == 0 && (atomic_load_explicit(&ch->send_waiting, memory_order_seq_cst) & FLAG_UP))
        return chan_notify_locked_ready(ch, &ch->send_waiting, &ch->sendq);
    return WEFT_READY;
}

/* Compiled twice: for word-sized messages (W4's, C1's: the copy inline, no
 * frame; inlined into the poll's dispatch, which stays frameless too) and
 * for any size. */
static inline __attribute__((always_inline)) weft_poll ring_recv_fresh_word(struct weft_chan *ch,
                                                                            weft_chan_recv *r,
                                                                            weft_context *cx,
                                                                            int *result)
{
    return ring_recv_fresh_n(ch, r, cx, result, MSG_WORD);
}

static __attribute__((noinline)) weft_poll ring_recv_fresh_any(struct weft_chan *ch,
                                                               weft_chan_recv *r, weft_context *cx,
                                                               int *result)
{
    return ring_recv_fresh_n(ch, r, cx, result, ch->msg_size);
}

static inline weft_poll ring_recv_fresh(struct weft_chan *ch, weft_chan_recv *r, weft_context *cx,
                                        int *result)
{
    if (ch->msg_size == MSG_WORD)
        return ring_recv_fresh_word(ch, r, cx, result);
    return ring_recv_fresh_any(ch, r, cx, result);
}

/* A parked bounded receive polled again. */
static inline __attribute__((always_inline)) weft_poll ring_recv_parked_n(struct weft_chan *ch,
                                                                          weft_chan_recv *r,
                                                                          weft_context *cx,
                                                                          int *result,
                                                                          size_t msg_size)
{
    int ret;

    if (!waiter_is_woken(&r->w))
        return ring_recv_locked(ch, r, cx, result, 0);
    /* woken (the handoff's fast path): the node is ours alone
     * (waiter_done_woken()), so take the message without the lock, as a
     * fresh receive would. Only an empty ring (a barger took it) sends us
     * to the lock, to park again at the front. */
    ret = ring_pop(ch, r->dst, msg_size);
    if (ret == -EAGAIN)
        return ring_recv_locked(ch, r, cx, result, 0);
    if (ret == RING_IN_PROGRESS) {
        /* still WOKEN, still ours: poll again soon */
        weft__task_wake_soon(cx);
        return WEFT_PENDING;
    }
    waiter_done_woken(&r->w);
    r->result = ret;
    *result = ret;
    if (ret == 0) {
        chan_notify(ch, &ch->send_waiting, &ch->sendq);
        /* the rule for woken ones (header): messages left behind while
         * other receivers wait wake one more of them. seq_cst: the flag is
         * read as chan_notify() reads it; the snapshot of the length only
         * when someone may wait (W4's own flag stays raised: the length
         * decides) */
        if ((atomic_load_explicit(&ch->recv_waiting, memory_order_seq_cst) & FLAG_UP) &&
            ring_nonempty(ch))
            return chan_notify_locked_ready(ch, &ch->recv_waiting, &ch->recvq);
    }
    return WEFT_READY;
}

/* Compiled twice: for word-sized messages (W4's, C1's: the copy inline, no
 * frame; inlined into the poll's dispatch, which stays frameless too) and
 * for any size. */
static inline __attribute__((always_inline)) weft_poll ring_recv_parked_word(struct weft_chan *ch,
                                                                             weft_chan_recv *r,
                                                                             weft_context *cx,
                                                                             int *result)
{
    return ring_recv_parked_n(ch, r, cx, result, MSG_WORD);
}

static __attribute__((noinline)) weft_poll ring_recv_parked_any(struct weft_chan *ch,
                                                                weft_chan_recv *r, weft_context *cx,
                                                                int *result)
{
    return ring_recv_parked_n(ch, r, cx, result, ch->msg_size);
}

static inline weft_poll ring_recv_parked(struct weft_chan *ch, weft_chan_recv *r, weft_context *cx,
                                         int *result)
{
    if (ch->msg_size == MSG_WORD)
        return ring_recv_parked_word(ch, r, cx, result);
    return ring_recv_parked_any(ch, r, cx, result);
}

/* Misuse: -EINVAL if it can be told. */
static __attribute__((noinline)) weft_poll recv_poll_invalid(int *result)
{
    if (result)
        *result = -EINVAL;
    return WEFT_READY;
}

/* The dispatch keeps no state of its own and tail-calls each path, so
 * that none of it pays for the registers the others need: W4 polls two
 * receives per message. */
static inline __attribute__((always_inline)) weft_poll recv_dispatch(struct weft_chan *ch,
                                                                      weft_chan_recv *r,
                                                                      weft_context *cx,
                                                                      int *result)
{
    if (ch->cap == 0)
        return chan_recv_unbounded(ch, r, cx, result);
    if (r->w.owner == O_IDLE)
        return ring_recv_fresh(ch, r, cx, result);
    return ring_recv_parked(ch, r, cx, result);
}

/* The budget's uncommon cases (used up, stress mode, no runtime). */
static __attribute__((noinline)) weft_poll recv_poll_coop(struct weft_chan *ch,
                                                          weft_chan_recv *r,
                                                          weft_context *cx, int *result)
{
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;               /* the task was woken already */
    return recv_dispatch(ch, r, cx, result);
}

WEFT_API weft_poll weft_chan_recv_poll(weft_chan_recv *r, weft_context *cx, int *result)
{
    struct weft_chan *ch;

    if (r == NULL || result == NULL || r->ch == NULL || r->dst == NULL || cx == NULL ||
        cx->waker == NULL)
        return recv_poll_invalid(result);
    ch = r->ch;
    if (r->w.owner == O_DONE) {
        *result = r->result;
        return WEFT_READY;
    }
    if (!weft__coop_take_fast(cx))
        return recv_poll_coop(ch, r, cx, result);
    return recv_dispatch(ch, r, cx, result);
}

/* Drop of a parked receive: leave the list, passing on a wake it was
 * handed. */
static __attribute__((noinline)) void chan_recv_drop_parked(struct weft_chan *ch,
                                                            weft_chan_recv *r)
{
    struct wake_batch b;
    weft_waker old;

    wake_batch_init(&b);
    spin_lock(&ch->lock);
    if (ch->cap ? ring_len(ch) > 0 : ch->len > 0)
        chan_pass_on(&ch->recvq, &r->w, &b);
    old = waitq_finish(&ch->recvq, &r->w);
    if (ch->cap)
        chan_sync_flags(ch);
    spin_unlock(&ch->lock);
    wake_batch_run(&b);
    weft_waker_drop(&old);
    r->w.owner = O_DONE;             /* waitq_finish() did; as below */
    r->ch = NULL;
}

/* The parked case tail-calls its own function, which ends the future too:
 * the common drop (a completed future) then needs no frame. */
WEFT_API void weft_chan_recv_drop(weft_chan_recv *r)
{
    if (r == NULL || r->ch == NULL)
        return;
    if (r->w.owner == O_PARKED) {
        chan_recv_drop_parked(r->ch, r);
        return;
    }
    r->w.owner = O_DONE;
    r->ch = NULL;
}
