/* SPDX-License-Identifier: MIT */
/* The channel object, its bounded lock-free ring and its waiting flags
 * (internal to src/sync/chan.c and src/sync/chan_future.c; chan.c explains
 * the protocol in its header comment: positions, stamps, claims, and the
 * waiting flags the ring's seq_cst loads pair with). Nothing else includes
 * it. */
#ifndef WEFT_SYNC_CHAN_RING_H
#define WEFT_SYNC_CHAN_RING_H

#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sync/waitq.h"

/* Bounded ring results besides 0, -EAGAIN and -EPIPE: the head position is
 * claimed by a send that has not written it yet. */
#define RING_IN_PROGRESS (-EINPROGRESS)

/* A waiting flag (header): bit 0 (FLAG_UP) raised; the bits above count
 * the times it was lowered, so that a parker can tell "still the 1 I saw"
 * from "lowered and raised again" (ring_recv_locked()). size_t: it does not
 * wrap in any real run. */
typedef _Atomic size_t chan_flag;

#define FLAG_UP ((size_t)1)

/* The layout is by cache line (the object is 64-byte aligned), so that an
 * operation touches as few lines as it can, and a ring large enough to be
 * shared by busy senders and receivers on two cores keeps its two ends on
 * lines of their own:
 *
 *   line 0  read-mostly: sizes, position encoding, buf, rtailp
 *   line 1  the slow path: lock, closed, waiting flags, wait lists, refs
 *   line 2  rhead | a small ring's tail and the ring itself, or an
 *           unbounded channel's ring state
 *   line 3  a large ring's tail, then the ring
 *
 * A small ring (cap * stride <= CHAN_NEAR_BYTES: capacity 1 to 3 of words)
 * lives with both its ends in line 2: its senders and receivers touch the
 * slot anyway, and W4's 2,000 channels do not stay in L1, so every line an
 * operation touches is a miss (a capacity-1 channel was six or seven lines
 * before, with 64-byte paddings; now three). rtailp says where the tail
 * is: &rtail_near or &rtail_far. */
#define CHAN_NEAR_BYTES (64 - 2 * sizeof(size_t))

struct weft_chan {
    /* line 0: read-mostly */
    size_t msg_size;
    size_t cap;                    /* 0: unbounded */
    size_t one_lap, mark;          /* bounded: position encoding (immutable) */
    size_t mask;                   /* bounded: mark - 1, a position's index bits */
    size_t stride;                 /* bounded: bytes per slot (stamp + message) */
    unsigned char *buf;            /* the ring; unbounded: ->lock */
    _Atomic size_t *rtailp;        /* bounded: &rtail_near or &rtail_far */
    /* line 1: the slow path. The lock is held for a few dozen instructions
     * (link, unlink, wake bookkeeping), never across a waker call; the one
     * longer hold is an unbounded ring doubling (an allocation and a copy),
     * rare: waiters yield meanwhile. The flags live here, not among the
     * read-mostly fields: parkers write them, and each write would take the
     * read-mostly line away from the other side's core. refs: written by
     * clone and drop only */
    alignas(64) weft__spinlock lock;
    bool closed;                   /* ->lock */
    chan_flag recv_waiting;        /* bounded: changed under ->lock, read by all */
    chan_flag send_waiting;        /* bounded: changed under ->lock, read by all */
    struct weft__waitq recvq;      /* ->lock */
    struct weft__waitq sendq;      /* ->lock */
    _Atomic size_t refs;
    /* line 2: the receivers' end */
    alignas(64) _Atomic size_t rhead;  /* bounded: next position to receive from */
    _Atomic size_t rtail_near;     /* small ring: next position to send to | mark */
    union {
        /* a small ring: its slots (buf) */
        alignas(max_align_t) unsigned char near_buf[CHAN_NEAR_BYTES];
        /* unbounded, ->lock */
        struct {
            size_t slots;          /* ring size */
            size_t head, len;
        };
    };
    /* line 3: a large ring's senders' end, then the ring: its first slots
     * share the senders' line, which they write anyway */
    alignas(64) _Atomic size_t rtail_far;  /* next position to send to | mark */
    alignas(max_align_t) unsigned char inline_buf[];   /* large ring */
};

#define CHAN_ALIGN 64
_Static_assert(_Alignof(struct weft_chan) == CHAN_ALIGN, "a channel is line-aligned");
_Static_assert(offsetof(struct weft_chan, lock) == 64 && offsetof(struct weft_chan, rhead) == 128 &&
               offsetof(struct weft_chan, near_buf) == 128 + 2 * sizeof(size_t) &&
               offsetof(struct weft_chan, rtail_far) == 192,
               "one line each: read-mostly, slow path, receivers' end (and a small ring)");

/* ---- The unbounded ring (under ->lock) ------------------------------------ */
int weft__chan_lk_push(struct weft_chan *ch, const void *msg, struct wake_batch *b);

/* Take the oldest message; ->lock held, unbounded, len > 0. Wakes one more
 * receiver if messages are left and receivers wait. */
static inline void lk_pop(struct weft_chan *ch, void *dst, struct wake_batch *b)
{
    memcpy(dst, ch->buf + ch->head * ch->msg_size, ch->msg_size);
    if (++ch->head == ch->slots)
        ch->head = 0;
    ch->len--;
    if (ch->len && !waitq_empty(&ch->recvq))
        waitq_wake_one(&ch->recvq, WHY_READY, b);
}

/* ---- The bounded ring (lock-free) ------------------------------------------- */
/* Bytes per slot for messages of `msg_size` (ch->msg_size, or the constant
 * MSG_WORD below): weft_chan_new()'s formula, so that for a constant size
 * it folds to a constant (16 for a word: a shift instead of a load and a
 * multiply on the way to every slot). */
static inline size_t ring_stride(const struct weft_chan *ch, size_t msg_size)
{
    if (__builtin_constant_p(msg_size))
        return (sizeof(size_t) + msg_size + _Alignof(size_t) - 1) & ~(_Alignof(size_t) - 1);
    return ch->stride;
}

static inline _Atomic size_t *ring_stamp(const struct weft_chan *ch, size_t pos, size_t msg_size)
{
    return (_Atomic size_t *)(void *)(ch->buf + (pos & ch->mask) * ring_stride(ch, msg_size));
}

static inline unsigned char *ring_msg(const struct weft_chan *ch, size_t pos, size_t msg_size)
{
    return ch->buf + (pos & ch->mask) * ring_stride(ch, msg_size) + sizeof(size_t);
}

/* Copy one message. Word-sized messages (counters, pointers, handles: the
 * common case) get an inlined copy instead of a call into libc's memcpy,
 * which was ~12% of the ring's instructions in W4. Where `size` is a
 * constant (the paths chan_future.c specialises for MSG_WORD, below) the test
 * folds away, and with it the call: such a path needs no stack frame. */
static inline __attribute__((always_inline)) void msg_copy(void *dst, const void *src,
                                                           size_t size)
{
    if (size == sizeof(uint64_t))
        memcpy(dst, src, sizeof(uint64_t));
    else
        memcpy(dst, src, size);
}

/* The message size chan_future.c compiles its hot paths for a second time:
 * ring_push()/ring_pop() called with this constant copy inline. */
#define MSG_WORD sizeof(uint64_t)

/* The position after `pos` (no mark). */
static inline size_t ring_next(const struct weft_chan *ch, size_t pos)
{
    if ((pos & ch->mask) + 1 < ch->cap)
        return pos + 1;
    return (pos & ~(ch->one_lap - 1)) + ch->one_lap;   /* index 0 of the next lap */
}

/* After losing a claim to another thread: let the winner finish its run of
 * operations while it owns the line, instead of pulling the line back at
 * once (which only makes it lose the next one). On two cores, C4 (4
 * senders, 4 receivers) went from 149 to 74 ns per message. */
#define RING_BACKOFF_SPINS 64

static inline void ring_backoff(void)
{
    for (unsigned i = 0; i < RING_BACKOFF_SPINS; i++)
        spin_relax();
}

/* Queue one message (`msg_size`: ch->msg_size, or MSG_WORD when it is
 * known to be that): 0; -EAGAIN full; RING_IN_PROGRESS the slot at the
 * tail still holds a message whose receive has begun; -EPIPE closed. An
 * -EAGAIN is decided by a seq_cst load of head (the parker's re-check). */
static inline __attribute__((always_inline)) int ring_push(struct weft_chan *ch,
                                                            const void *msg,
                                                            size_t msg_size)
{
    /* relaxed: only a first guess; the CAS below checks it */
    size_t tail = atomic_load_explicit(ch->rtailp, memory_order_relaxed);

    for (;;) {
        _Atomic size_t *st;
        size_t stamp;

        if (tail & ch->mark)
            return -EPIPE;
        st = ring_stamp(ch, tail, msg_size);
        /* acquire: pairs with the receiver's release of the slot (its
         * copy-out happens before our copy-in) */
        stamp = atomic_load_explicit(st, memory_order_acquire);
        if (stamp == tail) {
            /* seq_cst: the claim is the finisher's write in the header's
             * protocol (before our load of recv_waiting); failure relaxed:
             * retry with the tail it returns */
            if (atomic_compare_exchange_weak_explicit(ch->rtailp, &tail, ring_next(ch, tail),
                                                      memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                msg_copy(ring_msg(ch, tail, msg_size), msg, msg_size);
                /* release: publishes the message; pairs with the
                 * receiver's acquire load of the stamp */
                atomic_store_explicit(st, tail + 1, memory_order_release);
                return 0;
            }
            ring_backoff();                /* lost the position to another sender */
        } else if (stamp + ch->one_lap == tail + 1) {
            /* the previous lap's message is still there: is its receive
             * claimed? seq_cst: the parker's re-check (header) */
            size_t head = atomic_load_explicit(&ch->rhead, memory_order_seq_cst);

            if (head + ch->one_lap == tail)
                return -EAGAIN;        /* full: no receive has begun */
            return RING_IN_PROGRESS;
        } else {
            /* another sender took this position: look again (relaxed: as above) */
            tail = atomic_load_explicit(ch->rtailp, memory_order_relaxed);
        }
    }
}

/* Take the oldest message (`msg_size` as for ring_push()): 0; -EAGAIN
 * empty; RING_IN_PROGRESS the head is claimed by a send still writing it;
 * -EPIPE closed and drained. An -EAGAIN (or -EPIPE) is decided by a
 * seq_cst load of tail (the parker's re-check). */
static inline __attribute__((always_inline)) int ring_pop(struct weft_chan *ch, void *dst,
                                                           size_t msg_size)
{
    /* relaxed: only a first guess; the CAS below checks it */
    size_t head = atomic_load_explicit(&ch->rhead, memory_order_relaxed);

    for (;;) {
        _Atomic size_t *st = ring_stamp(ch, head, msg_size);
        /* acquire: pairs with the sender's publishing store (its copy-in
         * happens before our copy-out) */
        size_t stamp = atomic_load_explicit(st, memory_order_acquire), tail;

        if (stamp == head + 1) {
            /* seq_cst: the claim is the finisher's write in the header's
             * protocol (before our load of send_waiting); failure relaxed:
             * retry with the head it returns */
            if (atomic_compare_exchange_weak_explicit(&ch->rhead, &head, ring_next(ch, head),
                                                      memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                msg_copy(dst, ring_msg(ch, head, msg_size), msg_size);
                /* release: frees the slot for the next lap's sender; pairs
                 * with its acquire load of the stamp */
                atomic_store_explicit(st, head + ch->one_lap, memory_order_release);
                return 0;
            }
            ring_backoff();                /* lost the position to another receiver */
        } else if (stamp == head) {
            /* not written at this lap: is it claimed? seq_cst: the
             * parker's re-check (header). A tail with mark is final
             * (nothing claims after close): mark and tail == head is
             * drained for good */
            tail = atomic_load_explicit(ch->rtailp, memory_order_seq_cst);
            if ((tail & ~ch->mark) == head)
                return tail & ch->mark ? -EPIPE : -EAGAIN;
            return RING_IN_PROGRESS;
        } else {
            /* another receiver took this position: look again (relaxed: as above) */
            head = atomic_load_explicit(&ch->rhead, memory_order_relaxed);
        }
    }
}

/* Positions claimed by senders and not yet by receivers (a snapshot). */
static size_t ring_len(const struct weft_chan *ch)
{
    for (;;) {
        /* relaxed: a snapshot; re-reading tail makes the pair consistent */
        size_t tail = atomic_load_explicit(ch->rtailp, memory_order_relaxed);
        size_t head = atomic_load_explicit(&ch->rhead, memory_order_relaxed);
        size_t hix, tix;

        if (atomic_load_explicit(ch->rtailp, memory_order_relaxed) != tail)
            continue;
        tail &= ~ch->mark;
        hix = head & (ch->mark - 1);
        tix = tail & (ch->mark - 1);
        if (hix < tix)
            return tix - hix;
        if (hix > tix)
            return ch->cap - hix + tix;
        return tail == head ? 0 : ch->cap;
    }
}

/* ring_len(ch) > 0, cheaper: head read first, then tail. Positions only
 * grow and head never passes tail, so tail == head here means the ring was
 * empty when tail was read: any message left earlier was taken by then. A
 * snapshot as ring_len()'s is (relaxed loads). */
static inline bool ring_nonempty(const struct weft_chan *ch)
{
    size_t head = atomic_load_explicit(&ch->rhead, memory_order_relaxed);
    size_t tail = atomic_load_explicit(ch->rtailp, memory_order_relaxed);

    return (tail & ~ch->mark) != head;
}

/* ---- The waiting flags and the finisher's notify (bounded) ------------------
 * The protocol is in chan.c's header comment ("Waiting without lost
 * wake-ups"). */
/* Raise (v) or lower (!v) a waiting flag; ->lock held. */
static inline void flag_store(chan_flag *flag, unsigned v)
{
    /* relaxed: only we (under ->lock) write it */
    size_t cur = atomic_load_explicit(flag, memory_order_relaxed);

    if (v)
        /* seq_cst: a raise is the parker's half of the header's protocol */
        atomic_store_explicit(flag, cur | FLAG_UP, memory_order_seq_cst);
    else
        /* relaxed: a lowering is stored under ->lock with its list empty,
         * so it happens before (through ->lock) the seq_cst raise of every
         * later parker; a finisher's seq_cst load that the header's
         * argument needs to see that raise can then read it or a later
         * store, never this one (C11 7.17.3: a seq_cst load reads the last
         * seq_cst store before it, or a store that does not happen before
         * that one). A stale raise only costs a finisher a look under the
         * lock. A plain store here, an xchg as seq_cst. The count goes up:
         * (cur | 1) + 1 clears bit 0 and adds one lowering. */
        atomic_store_explicit(flag, (cur | FLAG_UP) + 1, memory_order_relaxed);
}

/* recv_waiting / send_waiting follow their lists (a raised flag over an
 * empty list is lowered too). ->lock held, bounded. */
static void chan_sync_flags(struct weft_chan *ch)
{
    unsigned r = !waitq_empty(&ch->recvq), s = !waitq_empty(&ch->sendq);

    /* relaxed loads: only we (under ->lock) write them */
    if ((atomic_load_explicit(&ch->recv_waiting, memory_order_relaxed) & FLAG_UP) != r)
        flag_store(&ch->recv_waiting, r);
    if ((atomic_load_explicit(&ch->send_waiting, memory_order_relaxed) & FLAG_UP) != s)
        flag_store(&ch->send_waiting, s);
}

/* The parker's write (header): raise `flag` before the re-check. ->lock
 * held, bounded. A flag raised already is left alone: every store of a
 * flag is made under ->lock, so the raise we read is the last store in its
 * modification order, and it was a seq_cst store that happens before (and
 * so precedes in the total order) our re-check; the finisher's argument
 * needs just that: a seq_cst raise, no lowering after it, before the
 * re-check. A lowering can follow only once the list is empty again, that
 * is after our node was woken or dropped. This saves the xchg of a seq_cst
 * store whenever the flag was left raised (chan_notify_locked() leaves it
 * so: W4's one waiter per message parks on a flag still raised from the
 * last one). */
static inline void flag_raise(chan_flag *flag)
{
    /* relaxed: only we (under ->lock) write it */
    if (!(atomic_load_explicit(flag, memory_order_relaxed) & FLAG_UP))
        flag_store(flag, 1);
}

/* Under ->lock, before parking: may the lock-free attempt made just before
 * serve as the parker's re-check, so that we park without a second one?
 * `seen` is the flag as read (seq_cst) before that attempt. Yes when it was
 * raised then and is still exactly that value now, and the channel is open:
 *   - the raise we saw (a seq_cst store S) precedes our seq_cst load of it,
 *     which precedes the attempt's seq_cst re-check load in the total
 *     order: S comes before the re-check, as the header asks;
 *   - every store of a flag is made under ->lock and any lowering changes
 *     its count, so an equal value now means no store since S: S is still
 *     the last one, and from here on (we link under this hold) a lowering
 *     needs the list empty, that is our node woken or dropped;
 *   - close sets ->closed under ->lock before it marks the tail; open here
 *     means close, if it comes, wakes us after we are linked.
 * So a finisher's claim that the attempt missed is followed, in the total
 * order, by that finisher's load of the flag, which reads S or a later
 * raise: it takes the lock and wakes the first waiter, exactly as when the
 * re-check is made under the lock. The finishers that claim under ->lock
 * (ring_send_locked() and ring_recv_locked() completing) read no flag:
 * they wake the first waiter of the other list directly, then
 * chan_sync_flags() lowers that list's flag if it is empty. So either the
 * list was empty and the flag changed (we re-check after all), or someone
 * waits ahead of us and is woken for that claim (we queue behind it, as
 * FIFO wants). W4's receives always find the flag raised and unchanged
 * (chan_notify_locked() leaves it so), and skip a second ring_pop(). */
static inline bool flag_recheck_done(const struct weft_chan *ch, chan_flag *flag, size_t seen)
{
    /* relaxed: only ->lock holders write it, and we hold it */
    return (seen & FLAG_UP) && !ch->closed &&
           atomic_load_explicit(flag, memory_order_relaxed) == seen;
}

/* The locked part of chan_notify(): wake the first waiter of `q`, or, when
 * nobody waits, lower the stale flag. The flag is not lowered when the wake
 * empties the list: a ping-pong's waiter parks again at once (flag_raise()
 * then has nothing to store), and a stale 1 costs a later finisher only
 * this look under the lock, which lowers it. The waiting flags therefore
 * mean "1 while the list is not empty, and maybe a while after". */
static inline __attribute__((always_inline)) void chan_notify_locked_body(struct weft_chan *ch,
                                                                          chan_flag *flag,
                                                                          struct weft__waitq *q)
{
    weft_waker waker = WEFT_WAKER_EMPTY;

    spin_lock(&ch->lock);
    if (q->first)
        waker = waitq_unlink_woken(q, q->first, WHY_READY);
    else
        flag_store(flag, 0);               /* the list is empty: allowed */
    spin_unlock(&ch->lock);
    weft_waker_wake(&waker);
}

static void __attribute__((noinline)) chan_notify_locked(struct weft_chan *ch,
                                                          chan_flag *flag,
                                                          struct weft__waitq *q)
{
    chan_notify_locked_body(ch, flag, q);
}

/* A finisher's half (header): after queueing a message (or freeing a
 * slot) without the lock, wake the first waiting receiver (sender), if
 * any. */
static inline void chan_notify(struct weft_chan *ch, chan_flag *flag,
                               struct weft__waitq *q)
{
    /* seq_cst: after our claim (a seq_cst CAS) in the single total order:
     * either this sees the parker's flag or its re-check saw our claim
     * (header) */
    if (atomic_load_explicit(flag, memory_order_seq_cst) & FLAG_UP)
        chan_notify_locked(ch, flag, q);
}

#endif
