/* MPMC channels of fixed-size messages, bounded or unbounded.
 *
 * A ring buffer, two wait lists (receivers, senders) and a mutex. Messages
 * are handed over only inside poll and try_*: a notifier never writes into a
 * waiter, it only wakes it (unlinking it as WOKEN), and the woken future
 * takes its message (or its slot) when polled. So a future dropped at any
 * point holds nothing; if it was WOKEN, its drop wakes the next waiter of
 * its kind, so the wake is not lost.
 *
 * Wake rules (all under ->lock, wakers run after unlocking):
 *   - a message queued     wakes one waiting receiver;
 *   - a slot freed         wakes one waiting sender (bounded only);
 *   - an operation that leaves messages (or room) behind while others of its
 *     kind still wait wakes one more of them (a barging try_recv or a fresh
 *     future may have taken what a woken one was woken for);
 *   - a WOKEN future that finds nothing re-parks at the front;
 *   - close wakes everyone; nobody parks after close. */
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "sync/waitq.h"
#include "util/alloc.h"

#define UNBOUNDED_FIRST_SLOTS 16

struct weft_chan {
    _Atomic size_t refs;
    pthread_mutex_t lock;
    size_t msg_size;
    size_t cap;                    /* 0: unbounded */
    size_t slots;                  /* ->lock: ring size (== cap if bounded) */
    size_t head, len;              /* ->lock */
    bool closed;                   /* ->lock */
    unsigned char *buf;            /* ->lock: slots * msg_size bytes */
    struct weft__waitq recvq;      /* ->lock */
    struct weft__waitq sendq;      /* ->lock */
    alignas(max_align_t) unsigned char inline_buf[];   /* bounded: the ring */
};

WEFT_API int weft_chan_new(weft_chan **out, size_t msg_size, size_t cap)
{
    struct weft_chan *ch;
    size_t bytes = 0;

    if (out == NULL || msg_size == 0 || msg_size > WEFT_FUTURE_MAX_SIZE)
        return -EINVAL;
    if (cap) {
        if (cap > (SIZE_MAX - sizeof(*ch)) / msg_size)
            return -EINVAL;
        bytes = cap * msg_size;
    }
    ch = weft__calloc(1, sizeof(*ch) + bytes);
    if (ch == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&ch->lock, NULL) != 0) {
        weft__free(ch);
        return -ENOMEM;
    }
    /* relaxed: not yet shared; publishing *out is the caller's business */
    atomic_init(&ch->refs, 1);
    ch->msg_size = msg_size;
    ch->cap = cap;
    ch->slots = cap;
    ch->buf = cap ? ch->inline_buf : NULL;
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
    if (ch->buf != ch->inline_buf)
        weft__free(ch->buf);
    pthread_mutex_destroy(&ch->lock);
    weft__free(ch);
}

static bool chan_full(const struct weft_chan *ch)
{
    return ch->cap && ch->len == ch->cap;
}

static bool chan_has_room(const struct weft_chan *ch)
{
    return !chan_full(ch);
}

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

/* Queue one message; ->lock held, channel open and not full. Wakes one
 * receiver, and one more sender if room is left and senders wait. */
static int chan_push(struct weft_chan *ch, const void *msg, struct wake_batch *b)
{
    size_t tail;
    int err;

    if (ch->len == ch->slots) {
        assert(ch->cap == 0);
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
    if (chan_has_room(ch) && !waitq_empty(&ch->sendq))
        waitq_wake_one(&ch->sendq, WHY_READY, b);
    return 0;
}

/* Take the oldest message; ->lock held, len > 0. Wakes one sender (a slot
 * was freed), and one more receiver if messages are left and receivers
 * wait. */
static void chan_pop(struct weft_chan *ch, void *dst, struct wake_batch *b)
{
    memcpy(dst, ch->buf + ch->head * ch->msg_size, ch->msg_size);
    if (++ch->head == ch->slots)
        ch->head = 0;
    ch->len--;
    if (ch->cap)
        waitq_wake_one(&ch->sendq, WHY_READY, b);
    if (ch->len && !waitq_empty(&ch->recvq))
        waitq_wake_one(&ch->recvq, WHY_READY, b);
}

WEFT_API int weft_chan_try_send(weft_chan *ch, const void *msg)
{
    struct wake_batch b = { 0 };
    int ret;

    if (ch == NULL || msg == NULL)
        return -EINVAL;
    sync_lock(&ch->lock);
    if (ch->closed)
        ret = -EPIPE;
    else if (chan_full(ch))
        ret = -EAGAIN;
    else
        ret = chan_push(ch, msg, &b);
    sync_unlock(&ch->lock);
    wake_batch_run(&b);
    return ret;
}

WEFT_API int weft_chan_try_recv(weft_chan *ch, void *dst)
{
    struct wake_batch b = { 0 };
    int ret = 0;

    if (ch == NULL || dst == NULL)
        return -EINVAL;
    sync_lock(&ch->lock);
    if (ch->len)
        chan_pop(ch, dst, &b);
    else
        ret = ch->closed ? -EPIPE : -EAGAIN;
    sync_unlock(&ch->lock);
    wake_batch_run(&b);
    return ret;
}

WEFT_API void weft_chan_close(weft_chan *ch)
{
    struct wake_batch b = { 0 };
    bool more;

    if (ch == NULL)
        return;
    sync_lock(&ch->lock);
    ch->closed = true;
    do {
        /* nobody parks once closed, so the lists only shrink */
        while (!wake_batch_full(&b) && !waitq_empty(&ch->recvq))
            waitq_wake_one(&ch->recvq, WHY_CLOSED, &b);
        while (!wake_batch_full(&b) && !waitq_empty(&ch->sendq))
            waitq_wake_one(&ch->sendq, WHY_CLOSED, &b);
        more = !waitq_empty(&ch->recvq) || !waitq_empty(&ch->sendq);
        sync_unlock(&ch->lock);
        wake_batch_run(&b);
        if (more)
            sync_lock(&ch->lock);
    } while (more);
}

WEFT_API bool weft_chan_is_closed(const weft_chan *ch)
{
    struct weft_chan *c = (struct weft_chan *)ch;
    bool closed;

    if (c == NULL)
        return false;
    sync_lock(&c->lock);
    closed = c->closed;
    sync_unlock(&c->lock);
    return closed;
}

WEFT_API size_t weft_chan_len(const weft_chan *ch)
{
    struct weft_chan *c = (struct weft_chan *)ch;
    size_t len;

    if (c == NULL)
        return 0;
    sync_lock(&c->lock);
    len = c->len;
    sync_unlock(&c->lock);
    return len;
}

/* A WOKEN future goes away without using its wake: hand it on. ->lock held. */
static void chan_pass_on(struct weft__waitq *q, weft_sync_waiter *w, struct wake_batch *b)
{
    if (w->state == W_WOKEN && w->why == WHY_READY)
        waitq_wake_one(q, WHY_READY, b);
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

WEFT_API weft_poll weft_chan_send_poll(weft_chan_send *s, weft_context *cx, int *result)
{
    struct wake_batch b = { 0 };
    struct weft_chan *ch;
    weft_waker old = WEFT_WAKER_EMPTY;
    bool woken;
    int ret;

    if (s == NULL || result == NULL)
        return WEFT_READY;                 /* misuse: nothing to report to */
    ch = s->ch;
    if (ch == NULL || s->msg == NULL || cx == NULL) {
        *result = -EINVAL;
        return WEFT_READY;
    }
    if (s->w.owner == O_DONE) {
        *result = s->result;
        return WEFT_READY;
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;               /* the task was woken already */
    sync_lock(&ch->lock);
    woken = s->w.state == W_WOKEN;
    if (ch->closed) {
        ret = -EPIPE;
    } else if (chan_full(ch)) {
        /* a woken sender that lost its slot to another keeps its turn */
        old = waitq_park(&ch->sendq, &s->w, cx, woken);
        sync_unlock(&ch->lock);
        weft_waker_drop(&old);
        return WEFT_PENDING;
    } else {
        ret = chan_push(ch, s->msg, &b);
        if (ret < 0)                        /* -ENOMEM: let another try */
            chan_pass_on(&ch->sendq, &s->w, &b);
    }
    old = waitq_finish(&ch->sendq, &s->w);
    sync_unlock(&ch->lock);
    wake_batch_run(&b);
    weft_waker_drop(&old);
    s->result = ret;
    *result = ret;
    return WEFT_READY;
}

WEFT_API void weft_chan_send_drop(weft_chan_send *s)
{
    struct wake_batch b = { 0 };
    weft_waker old;
    struct weft_chan *ch;

    if (s == NULL || s->ch == NULL)
        return;
    ch = s->ch;
    if (s->w.owner == O_PARKED) {
        sync_lock(&ch->lock);
        if (!ch->closed && chan_has_room(ch))
            chan_pass_on(&ch->sendq, &s->w, &b);
        old = waitq_finish(&ch->sendq, &s->w);
        sync_unlock(&ch->lock);
        wake_batch_run(&b);
        weft_waker_drop(&old);
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

WEFT_API weft_poll weft_chan_recv_poll(weft_chan_recv *r, weft_context *cx, int *result)
{
    struct wake_batch b = { 0 };
    struct weft_chan *ch;
    weft_waker old = WEFT_WAKER_EMPTY;
    int ret = 0;

    if (r == NULL || result == NULL)
        return WEFT_READY;                 /* misuse: nothing to report to */
    ch = r->ch;
    if (ch == NULL || r->dst == NULL || cx == NULL) {
        *result = -EINVAL;
        return WEFT_READY;
    }
    if (r->w.owner == O_DONE) {
        *result = r->result;
        return WEFT_READY;
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;               /* the task was woken already */
    sync_lock(&ch->lock);
    if (ch->len) {
        chan_pop(ch, r->dst, &b);
    } else if (ch->closed) {
        ret = -EPIPE;
    } else {
        old = waitq_park(&ch->recvq, &r->w, cx, r->w.state == W_WOKEN);
        sync_unlock(&ch->lock);
        weft_waker_drop(&old);
        return WEFT_PENDING;
    }
    old = waitq_finish(&ch->recvq, &r->w);
    sync_unlock(&ch->lock);
    wake_batch_run(&b);
    weft_waker_drop(&old);
    r->result = ret;
    *result = ret;
    return WEFT_READY;
}

WEFT_API void weft_chan_recv_drop(weft_chan_recv *r)
{
    struct wake_batch b = { 0 };
    weft_waker old;
    struct weft_chan *ch;

    if (r == NULL || r->ch == NULL)
        return;
    ch = r->ch;
    if (r->w.owner == O_PARKED) {
        sync_lock(&ch->lock);
        if (ch->len)
            chan_pass_on(&ch->recvq, &r->w, &b);
        old = waitq_finish(&ch->recvq, &r->w);
        sync_unlock(&ch->lock);
        wake_batch_run(&b);
        weft_waker_drop(&old);
    }
    r->w.owner = O_DONE;
    r->ch = NULL;
}
