/* SPDX-License-Identifier: MIT */
/* The io_uring backend's completion-based receive (see "Receive" below and
 * docs/io.md): a stream socket's bytes come from a multishot receive into
 * the ring's provided buffers and wait in a queue per source. */
#include <errno.h>
#include <linux/io_uring.h>
#include <string.h>
#include <sys/socket.h>

#include "io/reactor.h"
#include "io/uring.h"

/* ---- Receive: io_uring's multishot receive into provided buffers ----
 *
 * On an io_uring reactor with receive buffers (uring.h), a stream socket's
 * reads do not call recv() once the socket has been found empty: a
 * multishot IORING_OP_RECV is armed instead, and each of its completions
 * (a buffer the kernel filled, in the order of the stream) is appended to
 * the source's queue under its lock by the poller; reads take bytes from
 * the queue under the same lock. So the bytes of a message cost no system
 * call of their own: they come with the poller's one io_uring_enter per
 * tick. The rules (docs/io.md, "Receive"):
 *
 *   - bytes leave the queue only inside a read that returns them: a read
 *     dropped while it waits loses nothing (they wait for the next read);
 *   - an end result (0: end of stream; an error such as -ECONNRESET) is
 *     the receive's last completion and is queued behind its bytes: it is
 *     reported once the queue is empty, once; the next read then goes to
 *     the descriptor (which reports the end again, as after epoll);
 *   - the completions are appended while the poller still holds
 *     `polling`, so the next poller's, which come later in the stream,
 *     cannot overtake them (dispatch of readiness runs after the flag is
 *     given back, and order does not matter there);
 *   - a read that finds the queue empty and no receive in the kernel
 *     (before the first one; after its end: -ENOBUFS when the buffers ran
 *     out, -ECANCELED when its submitter exited or the cap below stopped
 *     it) calls recv() itself: nothing else can be in flight then, so no
 *     byte is overtaken; on EAGAIN it arms the receive and parks, under
 *     the lock, so a completion either finds the waker or comes after;
 *   - a queue that reaches RX_CAP bytes cancels its receive (again at each
 *     completion past it): a peer that writes faster than the reader reads
 *     then waits in the kernel's receive buffer (TCP's window), as with
 *     epoll; the reader drains the queue, then reads the rest from the
 *     descriptor and arms again. The cancel is best effort: a receive that
 *     the kernel is running again at once (the socket never empties) is
 *     not found by it, so a flood can take more, up to every buffer of the
 *     ring; the ring (URING_RX_BUFS buffers) is the hard bound on memory,
 *     and a receive that finds no buffer ends (-ENOBUFS): its reader reads
 *     the descriptor, as below;
 *   - close cancels the receive and gives the queued buffers back; a
 *     completion that comes later carries the old generation and its
 *     buffer is given back by dispatch. The buffers belong to the ring,
 *     which lives as long as the reactor, which every open source holds.
 *
 * Once a receive was armed, the socket's multishot poll is replaced by one
 * for output only (weft__io_rx_mode): each arrival of bytes then costs the
 * receive's completion alone, not a poll's as well. Reads never need input
 * readiness again (they read the queue, or the descriptor and then arm the
 * receive); a copy through splice, which would, copies through reads
 * instead (weft__io_rx_busy). A readiness event (a hang-up) does not wake a
 * reader while a receive is armed (it would find the queue empty and park
 * again: the receive reports the hang-up). */
#define RX_CAP (64u * 1024u)

/* ->lock held: take the source's receive queue (its buffer ids into
 * `bids`, at most `max`; the rest stays queued). */
static unsigned rx_drain(struct weft__io_source *s, uint16_t *bids, unsigned max)
{
    unsigned n = 0;

    while (s->rx_head >= 0 && n < max) {
        bids[n++] = (uint16_t)s->rx_head;
        s->rx_bytes -= s->r->rx_len[s->rx_head] - s->rx_off;
        s->rx_off = 0;
        s->rx_head = s->r->rx_next[s->rx_head];
    }
    if (s->rx_head < 0)
        s->rx_tail = -1;
    return n;
}

/* Give `n` buffers back to the kernel. */
static void rx_give(struct weft__reactor *r, const uint16_t *bids, unsigned n)
{
    if (n == 0)
        return;
    /* relaxed: a count for tests, read once everything has settled */
    atomic_fetch_sub_explicit(&r->rx_out, n, memory_order_relaxed);
    weft__uring_rx_put(r->ring, bids, n);
}

bool weft__io_rx_busy(struct weft__io_source *s, uint32_t gen)
{
    bool busy;

    pthread_mutex_lock(&s->lock);
    busy = !s->closed && atomic_load_explicit(&s->gen, memory_order_relaxed) == gen &&
           (s->rx_mode || s->rx_armed || s->rx_head >= 0 || s->rx_end_set);
    pthread_mutex_unlock(&s->lock);
    return busy;
}

/* ->lock held: copy up to `len` queued bytes into buf; the buffers emptied
 * go to `bids` (at most `max`: the copy stops there). */
static size_t rx_take(struct weft__io_source *s, char *buf, size_t len, uint16_t *bids,
                      unsigned max, unsigned *nb)
{
    struct weft__reactor *r = s->r;
    size_t got = 0;

    *nb = 0;
    while (got < len && s->rx_head >= 0 && *nb < max) {
        int32_t b = s->rx_head;
        size_t k = r->rx_len[b] - s->rx_off;

        if (k > len - got)
            k = len - got;
        memcpy(buf + got, r->rx_mem + (size_t)b * URING_RX_SIZE + s->rx_off, k);
        got += k;
        s->rx_off += (uint32_t)k;
        s->rx_bytes -= (uint32_t)k;
        if (s->rx_off == r->rx_len[b]) {
            bids[(*nb)++] = (uint16_t)b;
            s->rx_off = 0;
            s->rx_head = r->rx_next[b];
            if (s->rx_head < 0)
                s->rx_tail = -1;
        }
    }
    return got;
}

ssize_t weft__io_recv(struct weft__io_source *s, uint32_t gen, weft_context *cx, void *buf,
                      size_t len, struct sockaddr_storage *addr, socklen_t *addrlen)
{
    const weft_waker *mine = weft_context_waker(cx);

    for (;;) {
        struct weft__reactor *r;
        uint16_t bids[64];
        unsigned nb;
        weft_waker old = WEFT_WAKER_EMPTY;
        ssize_t n;
        int fd;

        pthread_mutex_lock(&s->lock);
        if (s->closed || atomic_load_explicit(&s->gen, memory_order_relaxed) != gen) {
            pthread_mutex_unlock(&s->lock);
            return -EBADF;
        }
        r = s->r;
        if (r->rx_mem == NULL) {
            pthread_mutex_unlock(&s->lock);
            return WEFT_IO_NO_RX;
        }
        if (atomic_load_explicit(&r->shut, memory_order_relaxed)) {
            /* relaxed: as in io_park() */
            pthread_mutex_unlock(&s->lock);
            return -ESHUTDOWN;
        }
        if (s->rx_head >= 0) {
            n = (ssize_t)rx_take(s, buf, len, bids, 64, &nb);
            pthread_mutex_unlock(&s->lock);
            rx_give(r, bids, nb);
            if (addrlen)
                *addrlen = 0;
            return n;
        }
        if (s->rx_end_set) {
            s->rx_end_set = false;
            n = s->rx_end;
            pthread_mutex_unlock(&s->lock);
            return n;
        }
        if (s->rx_armed) {
            /* the receive's next completion wakes us */
            if (!weft_waker_will_wake(&s->reader, mine)) {
                old = s->reader;
                s->reader = weft_waker_clone(mine);
            }
            pthread_mutex_unlock(&s->lock);
            weft_waker_drop(&old);
            return WEFT_IO_PENDING;
        }
        pthread_mutex_unlock(&s->lock);

        /* nothing queued, nothing in flight: the descriptor itself */
        fd = weft__io_begin(s, gen);
        if (fd < 0)
            return fd;
        do {
            n = addr ? recvfrom(fd, buf, len, 0, (struct sockaddr *)addr, addrlen)
                     : recv(fd, buf, len, 0);
            if (n < 0)
                n = -errno;
        } while (n == -EINTR);
        weft__io_end(s);
        if (n != -EAGAIN && n != -EWOULDBLOCK)
            return n;
        /* relaxed: a counter */
        atomic_fetch_add_explicit(&r->eagain, 1, memory_order_relaxed);

        pthread_mutex_lock(&s->lock);
        if (s->closed || atomic_load_explicit(&s->gen, memory_order_relaxed) != gen) {
            pthread_mutex_unlock(&s->lock);
            return -EBADF;
        }
        if (atomic_load_explicit(&r->shut, memory_order_relaxed)) {
            /* relaxed: as in io_park(): reactor_shut() stores it before its
             * sweep takes this lock, so a waker stored below is found */
            pthread_mutex_unlock(&s->lock);
            return -ESHUTDOWN;
        }
        if (!s->rx_armed && s->rx_head < 0 && !s->rx_end_set) {
            /* queued: the owner submits it with its next wait (woken for
             * it if it waits); the receive looks at the socket first, so
             * bytes that came after our EAGAIN are not missed */
            if (weft__uring_recv(r->ring, s->fd, weft__io_key(s->index, 0, gen) | IO_KEY_RX) < 0) {
                /* cannot happen: rx_mem is set only for a ring with
                 * buffers, and queuing takes no memory */
                pthread_mutex_unlock(&s->lock);
                return WEFT_IO_NO_RX;
            }
            s->rx_armed = true;
            if (!s->rx_mode)
                weft__io_rx_mode(s, gen);
        }
        if (s->rx_armed) {
            if (!weft_waker_will_wake(&s->reader, mine)) {
                old = s->reader;
                s->reader = weft_waker_clone(mine);
            }
            pthread_mutex_unlock(&s->lock);
            weft_waker_drop(&old);
            return WEFT_IO_PENDING;
        }
        pthread_mutex_unlock(&s->lock);   /* something came meanwhile: again */
    }
}

/* A receive completion (the poller, still holding `polling`: see
 * "Receive"): queue its buffer, note its end, and hand the reader's waker
 * to `wk` for the caller to wake. A completion of a closed source gives
 * its buffer back. */
void weft__io_rx_complete(struct weft__reactor *r, const struct weft__uring_cqe *c,
                          weft_waker *wk)
{
    uint32_t index = (uint32_t)((c->key & ~IO_KEY_RX) >> 40) - 1;
    struct weft__io_source *s = weft__io_event_source(r, index, (uint32_t)c->key);
    bool more = (c->flags & IORING_CQE_F_MORE) != 0;
    int32_t bid = (c->flags & IORING_CQE_F_BUFFER) ? (int32_t)(c->flags >> IORING_CQE_BUFFER_SHIFT)
                                                    : -1;
    uint16_t back;

    *wk = WEFT_WAKER_EMPTY;
    if (bid >= 0)                     /* relaxed: see rx_give() */
        atomic_fetch_add_explicit(&r->rx_out, 1, memory_order_relaxed);
    if (s && bid >= 0 && c->res > 0) {
        r->rx_len[bid] = (uint32_t)c->res;
        r->rx_next[bid] = -1;
        if (s->rx_tail >= 0)
            r->rx_next[s->rx_tail] = bid;
        else
            s->rx_head = bid;
        s->rx_tail = bid;
        s->rx_bytes += (uint32_t)c->res;
        bid = -1;                     /* the queue's now */
    }
    if (bid >= 0 && bid < (int32_t)URING_RX_BUFS) {
        back = (uint16_t)bid;
        rx_give(r, &back, 1);
    }
    if (s == NULL)
        return;
    if (!more) {
        /* its last completion: nothing of it is in the kernel any more */
        s->rx_armed = false;
        s->rx_cancel = false;
        if (c->res == 0 || (c->res < 0 && c->res != -ENOBUFS && c->res != -ECANCELED)) {
            s->rx_end_set = true;
            s->rx_end = c->res;
        }
    } else if (s->rx_bytes >= RX_CAP) {
        /* the rest waits in the kernel. Again at every completion past the
         * cap: a receive that the kernel runs again at once (the socket
         * still had bytes) is not where a cancel looks for it (only one
         * parked on the socket's wait queue is), and that cancel finds
         * nothing (its result is the ring's own, not seen here) */
        s->rx_cancel = true;
        (void)weft__uring_repoll(r->ring, c->key, -1, 0, 0, false, false, NULL, 0);
    }
    *wk = s->reader;
    s->reader = WEFT_WAKER_EMPTY;
    pthread_mutex_unlock(&s->lock);
}

void weft__io_rx_close(struct weft__io_source *s, uint32_t gen)
{
    uint16_t bids[64];
    unsigned nb;

    /* its late completions carry the old generation: weft__io_rx_complete()
     * gives their buffers back */
    if (s->rx_armed)
        (void)weft__uring_repoll(s->r->ring, weft__io_key(s->index, 0, gen) | IO_KEY_RX, -1, 0,
                                 0, false, false, NULL, 0);
    s->rx_armed = s->rx_end_set = s->rx_cancel = false;
    /* the queued bytes are nobody's now (the reactor, and so the ring,
     * outlives this: the source's reference is dropped at its release) */
    while ((nb = rx_drain(s, bids, 64)) > 0)
        rx_give(s->r, bids, nb);
}
