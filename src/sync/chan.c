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
 * The send and receive futures (their polls, the park, the handoff to a
 * woken one, their drops) are in sync/chan_future.c. */
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
 * receiver. (Shared with chan_future.c's unbounded send.) */
int weft__chan_lk_push(struct weft_chan *ch, const void *msg, struct wake_batch *b)
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
    ret = ch->closed ? -EPIPE : weft__chan_lk_push(ch, msg, &b);
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
