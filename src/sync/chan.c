/* SPDX-License-Identifier: MIT */
/* MPMC channels of fixed-size messages, bounded or unbounded.
 *
 * Two wait lists (receivers, senders) under a spinlock, and the messages:
 *   - bounded: a lock-free ring (Vyukov's bounded MPMC queue, with
 *     crossbeam's lap encoding so that any capacity works, and the closed
 *     mark in the tail). Sends and receives that neither wait nor find
 *     anyone waiting never take the lock;
 *   - unbounded: a growable ring under the lock.
 * Messages are handed over only inside poll and try_*: a notifier never
 * writes into a waiter, it only wakes it (unlinking it as WOKEN), and the
 * woken future takes its message (or its slot) when polled. So a future
 * dropped at any point holds nothing; if it was WOKEN, its drop wakes the
 * next waiter of its kind, so the wake is not lost.
 *
 * Wake rules (wakers run after unlocking):
 *   - a message queued     wakes one waiting receiver;
 *   - a slot freed         wakes one waiting sender (bounded only);
 *   - an operation that leaves messages (or room) behind while others of its
 *     kind still wait wakes one more of them (a barging try_recv or a fresh
 *     future may have taken what a woken one was woken for); bounded: only
 *     the operations of parked futures, which run under the lock anyway;
 *   - a WOKEN future that finds nothing re-parks at the front;
 *   - close wakes everyone; nobody parks after close.
 *
 * ---- The bounded ring (its code: sync/chan_ring.h) ----------------------
 * Positions: lap | index, index < cap, lap a multiple of one_lap (a power of
 * two above 2 * cap); `mark` (one_lap / 2) is never part of a position.
 * head: the next position to receive; tail: the next position to send to,
 * plus `mark` once closed. Every slot has a stamp:
 *   stamp == pos          slot free for a send at pos
 *   stamp == pos + 1      slot holds the message sent at pos
 *   stamp == pos + one_lap  (its receive done) free for the send at that pos
 *
 *   sender                                receiver
 *   t = tail; slot(t).stamp == t?         h = head; slot(h).stamp == h + 1?
 *   CAS tail t -> next(t)   (claim)       CAS head h -> next(h)   (claim)
 *   copy the message in                   copy the message out
 *   stamp = t + 1           (publish)     stamp = h + one_lap     (free it)
 *   receivers waiting? wake one           senders waiting? wake one
 *
 * The claim only reserves a position; the message itself is ordered by the
 * stamp: the store that publishes (or frees) a slot is a release, the load
 * that finds it an acquire. Between its claim and its stamp store an
 * operation is "in progress". A receiver that finds the head claimed but
 * not yet written (RING_IN_PROGRESS), or a sender that finds the tail's slot
 * claimed by a receive not yet finished, does not wait for it: try_send
 * reports -EAGAIN, try_recv -EAGAIN (closed: it yields until the copy ends,
 * since the message is queued), and a future polls again soon (it wakes its
 * own task: a yield) instead of parking, since the operation in progress may
 * have looked for waiters already. Close sets `mark` in tail with one RMW:
 * no send can claim after it, and a tail with `mark` never changes again,
 * so "closed and head == tail" means drained for good.
 *
 * ---- Waiting without lost wake-ups (bounded) ------------------------------
 * recv_waiting (send_waiting) is raised ("1" below) while the receive
 * (send) list is not empty, and while a parker re-checks; it may stay
 * raised a while after the list empties (stale: chan_notify_locked() lowers
 * it when it finds nobody to wake), never lowered while the list is not
 * empty; both change only under ->lock, and count their lowerings (see
 * chan_flag). The claim is the finisher's write, the flag the parker's,
 * Dekker-style:
 *
 *   finisher (sender, no lock)            parker (receiver, under ->lock)
 *   CAS tail (claim)        [seq_cst]     recv_waiting = 1          [seq_cst]
 *   copy in, publish        [release]     ring_pop(): head not written?
 *   load recv_waiting       [seq_cst]       load tail               [seq_cst]
 *   1? lock, wake the first waiter        tail == head? link, store waker,
 *                                           unlock (PENDING)
 *
 * Each side writes its word, then reads the other's, all four seq_cst, so
 * in their single total order one of the writes comes first: either the
 * parker's load of tail sees the claim (it does not park: it takes the
 * message, or polls again soon if it is still being written), or the
 * finisher's load sees the flag (it takes the lock, which it gets only after
 * the parker is linked, and wakes the first waiter). A parker parks only
 * when nothing at all is claimed past head, so every message it waits for
 * is claimed after its re-check and is followed by a wake. Senders are the
 * mirror image (claim: CAS head by a receiver; re-check: load head, "full"
 * only if the receive of the tail's slot is not even claimed). Under ->lock
 * a parked future that queues a message (or frees a slot) looks at the
 * other list directly: a parker of the other kind links under the same
 * lock and re-checks after it. (No fences, which gcc's TSan rejects: the
 * claims are locked instructions anyway and seq_cst loads are plain loads
 * on x86; the only seq_cst store, the flag, is on the slow path.)
 *
 * Two shortcuts keep W4 (one waiter per message, on a flag raised for the
 * previous one) off the slow path's extra steps: a parker that finds its
 * flag raised already does not store it again (flag_raise()), and a fresh
 * future that read the flag raised before its lock-free attempt, and finds
 * it unchanged under the lock, parks without a second re-check
 * (flag_recheck_done(): its attempt was the re-check). Both rest on the
 * same facts: every flag store is made under ->lock, a lowering needs an
 * empty list, and the count makes any lowering visible.
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
 * finisher (the Dekker argument above: it re-checks after raising the
 * flag). A woken operation that leaves messages (room) behind wakes one
 * more waiter of its kind, as the locked path does. Why no direct handoff
 * into the receiver's dst: chan.h promises that dst is written only on
 * success and that a receive dropped at any point takes no message; a
 * message written into a future that is then dropped would have to go
 * back to the front of the ring, which a lock-free FIFO cannot do. */
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "sync/chan_ring.h"
#include "sync/waitq.h"
#include "task/task.h"
#include "util/alloc.h"

#define UNBOUNDED_FIRST_SLOTS 16

WEFT_API int weft_chan_new(weft_chan **out, size_t msg_size, size_t cap)
{
    struct weft_chan *ch;
    size_t bytes = 0, stride = 0, mark = 0, base;
    bool near;

    if (out == NULL || msg_size == 0 || msg_size > WEFT_FUTURE_MAX_SIZE)
        return -EINVAL;
    if (cap) {
        /* a stamp then the message, keeping the next stamp aligned */
        stride = (sizeof(size_t) + msg_size + _Alignof(size_t) - 1) &
                 ~(_Alignof(size_t) - 1);
        if (cap > (SIZE_MAX - sizeof(*ch) - CHAN_ALIGN) / stride)
            return -EINVAL;
        bytes = cap * stride;
        /* one_lap = 2 * mark must not overflow: cap < SIZE_MAX / 16 here */
        for (mark = 1; mark <= cap; mark <<= 1)
            ;
    }
    /* a small ring lives in line 2 (near_buf); a large one starts inside
     * the struct's last line (inline_buf): the size is at least
     * sizeof(*ch), which rounds that line up */
    near = cap && bytes <= CHAN_NEAR_BYTES;
    base = near ? sizeof(*ch) : offsetof(struct weft_chan, inline_buf) + bytes;
    ch = weft__aligned_calloc(1, base > sizeof(*ch) ? base : sizeof(*ch), CHAN_ALIGN);
    if (ch == NULL)
        return -ENOMEM;
    spin_init(&ch->lock);
    /* relaxed (atomic_init): not yet shared; publishing *out is the
     * caller's business */
    atomic_init(&ch->refs, 1);
    atomic_init(&ch->recv_waiting, 0);
    atomic_init(&ch->send_waiting, 0);
    atomic_init(&ch->rhead, 0);
    atomic_init(&ch->rtail_near, 0);
    atomic_init(&ch->rtail_far, 0);
    ch->msg_size = msg_size;
    ch->cap = cap;
    ch->mark = mark;
    ch->one_lap = mark * 2;
    ch->mask = mark ? mark - 1 : 0;
    ch->stride = stride;
    ch->rtailp = near ? &ch->rtail_near : &ch->rtail_far;
    ch->buf = cap ? (near ? ch->near_buf : ch->inline_buf) : NULL;
    for (size_t i = 0; i < cap; i++)    /* slot i is free for position i */
        atomic_init((_Atomic size_t *)(void *)(ch->buf + i * stride), i);
    *out = ch;
    return 0;
}

WEFT_API weft_chan *weft_chan_clone(weft_chan *ch)
{
    if (ch)
        /* relaxed: the caller already holds a reference, so the count
         * cannot reach zero meanwhile (as any refcount increment) */
        atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
    return ch;
}

WEFT_API void weft_chan_drop(weft_chan *ch)
{
    if (ch == NULL)
        return;
    /* release: our uses of the channel happen before the free; pairs with
     * the acquire load below in the thread that drops the last reference */
    if (atomic_fetch_sub_explicit(&ch->refs, 1, memory_order_release) != 1)
        return;
    /* acquire: reads the last decrement, which ends the release sequence of
     * every earlier one (a load, not a fence: TSan does not model fences) */
    (void)atomic_load_explicit(&ch->refs, memory_order_acquire);
    assert(waitq_empty(&ch->recvq) && waitq_empty(&ch->sendq));
    if (ch->cap == 0)
        weft__free(ch->buf);               /* unbounded: grown by chan_grow() */
    weft__aligned_free(ch, CHAN_ALIGN);
}

/* ---- The unbounded ring (under ->lock) ------------------------------------------ */
/* Grow an unbounded ring; ->lock held. 0 or -ENOMEM. */
static int chan_grow(struct weft_chan *ch)
{
    size_t nslots, first;
    unsigned char *nb;

    if (ch->slots == 0) {
        nslots = UNBOUNDED_FIRST_SLOTS;
    } else {
        if (ch->slots > SIZE_MAX / 2 / ch->msg_size)
            return -ENOMEM;
        nslots = ch->slots * 2;
    }
    if (nslots > SIZE_MAX / ch->msg_size)
        return -ENOMEM;
    nb = weft__malloc(nslots * ch->msg_size);
    if (nb == NULL)
        return -ENOMEM;
    /* unwrap the ring into the new buffer: [head, slots) then [0, rest) */
    first = ch->slots - ch->head;
    if (first > ch->len)
        first = ch->len;
    if (ch->len) {
        memcpy(nb, ch->buf + ch->head * ch->msg_size, first * ch->msg_size);
        memcpy(nb + first * ch->msg_size, ch->buf, (ch->len - first) * ch->msg_size);
    }
    weft__free(ch->buf);
    ch->buf = nb;
    ch->slots = nslots;
    ch->head = 0;
    return 0;
}

/* Queue one message; ->lock held, unbounded channel open. Wakes one
 * receiver. */
static int lk_push(struct weft_chan *ch, const void *msg, struct wake_batch *b)
{
    size_t tail;
    int err;

    if (ch->len == ch->slots) {
        err = chan_grow(ch);
        if (err < 0)
            return err;
    }
    tail = ch->head + ch->len;
    if (tail >= ch->slots)
        tail -= ch->slots;
    memcpy(ch->buf + tail * ch->msg_size, msg, ch->msg_size);
    ch->len++;
    waitq_wake_one(&ch->recvq, WHY_READY, b);
    return 0;
}

/* Take the oldest message; ->lock held, unbounded, len > 0. Wakes one more
 * receiver if messages are left and receivers wait. */
static void lk_pop(struct weft_chan *ch, void *dst, struct wake_batch *b)
{
    memcpy(dst, ch->buf + ch->head * ch->msg_size, ch->msg_size);
    if (++ch->head == ch->slots)
        ch->head = 0;
    ch->len--;
    if (ch->len && !waitq_empty(&ch->recvq))
        waitq_wake_one(&ch->recvq, WHY_READY, b);
}

/* ---- Operations without waiting ----------------------------------------------- */
WEFT_API int weft_chan_try_send(weft_chan *ch, const void *msg)
{
    struct wake_batch b;
    int ret;

    wake_batch_init(&b);
    if (ch == NULL || msg == NULL)
        return -EINVAL;
    if (ch->cap) {
        ret = ring_push(ch, msg, ch->msg_size);
        if (ret == 0)
            chan_notify(ch, &ch->recv_waiting, &ch->recvq);
        return ret == RING_IN_PROGRESS ? -EAGAIN : ret;   /* its slot is not free yet */
    }
    spin_lock(&ch->lock);
    ret = ch->closed ? -EPIPE : lk_push(ch, msg, &b);
    spin_unlock(&ch->lock);
    wake_batch_run(&b);
    return ret;
}

WEFT_API int weft_chan_try_recv(weft_chan *ch, void *dst)
{
    struct wake_batch b;
    int ret = 0;

    wake_batch_init(&b);
    if (ch == NULL || dst == NULL)
        return -EINVAL;
    if (ch->cap) {
        for (;;) {
            ret = ring_pop(ch, dst, ch->msg_size);
            if (ret != RING_IN_PROGRESS)
                break;
            /* relaxed: as in ring_pop(); the send in progress was claimed
             * before any close, so its message is queued: open, it is
             * simply not there yet; closed, -EPIPE would lose it: wait
             * for its copy to end (a few instructions, unless preempted) */
            if (!(atomic_load_explicit(ch->rtailp, memory_order_relaxed) & ch->mark)) {
                ret = -EAGAIN;
                break;
            }
            sched_yield();
        }
        if (ret == 0)
            chan_notify(ch, &ch->send_waiting, &ch->sendq);
        return ret;
    }
    spin_lock(&ch->lock);
    if (ch->len)
        lk_pop(ch, dst, &b);
    else
        ret = ch->closed ? -EPIPE : -EAGAIN;
    spin_unlock(&ch->lock);
    wake_batch_run(&b);
    return ret;
}

WEFT_API void weft_chan_close(weft_chan *ch)
{
    struct wake_batch b;
    bool more;

    wake_batch_init(&b);
    if (ch == NULL)
        return;
    spin_lock(&ch->lock);
    ch->closed = true;
    if (ch->cap)
        /* relaxed: nothing is published with the mark; what matters is
         * that it is one RMW on tail (a claim either precedes it or fails),
         * and that the waiters are woken below, under ->lock */
        atomic_fetch_or_explicit(ch->rtailp, ch->mark, memory_order_relaxed);
    do {
        /* nobody parks once closed, so the lists only shrink */
        while (!wake_batch_full(&b) && !waitq_empty(&ch->recvq))
            waitq_wake_one(&ch->recvq, WHY_CLOSED, &b);
        while (!wake_batch_full(&b) && !waitq_empty(&ch->sendq))
            waitq_wake_one(&ch->sendq, WHY_CLOSED, &b);
        more = !waitq_empty(&ch->recvq) || !waitq_empty(&ch->sendq);
        if (ch->cap)
            chan_sync_flags(ch);
        spin_unlock(&ch->lock);
        wake_batch_run(&b);
        if (more)
            spin_lock(&ch->lock);
    } while (more);
}

WEFT_API bool weft_chan_is_closed(const weft_chan *ch)
{
    struct weft_chan *c = (struct weft_chan *)ch;
    bool closed;

    if (c == NULL)
        return false;
    spin_lock(&c->lock);
    closed = c->closed;
    spin_unlock(&c->lock);
    return closed;
}

WEFT_API size_t weft_chan_len(const weft_chan *ch)
{
    struct weft_chan *c = (struct weft_chan *)ch;
    size_t len;

    if (c == NULL)
        return 0;
    if (c->cap)
        return ring_len(c);
    spin_lock(&c->lock);
    len = c->len;
    spin_unlock(&c->lock);
    return len;
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
        ret = lk_push(ch, s->msg, &b);
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
        return ring_send_locked(ch, s, cx, result, seen);
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
}

WEFT_API void weft_chan_send_drop(weft_chan_send *s)
{
    if (s == NULL || s->ch == NULL)
        return;
    if (s->w.owner == O_PARKED)
        chan_send_drop_parked(s->ch, s);
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
        return ring_recv_locked(ch, r, cx, result, seen);
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
}

WEFT_API void weft_chan_recv_drop(weft_chan_recv *r)
{
    if (r == NULL || r->ch == NULL)
        return;
    if (r->w.owner == O_PARKED)
        chan_recv_drop_parked(r->ch, r);
    r->w.owner = O_DONE;
    r->ch = NULL;
}
