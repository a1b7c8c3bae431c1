/* SPDX-License-Identifier: MIT */
/* The reactor's event side (see reactor.h): waking a poller, and the poll
 * itself: waiting for epoll's or the ring's events and delivering each to
 * its source's readiness word and waiters. The sources, their registration
 * and the futures' side of a wait are in reactor.c. */
#include <errno.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "io/reactor.h"
#include "io/uring.h"

#define EVENTS_PER_POLL 256

void weft__io_wake(struct weft__io *io)
{
    /* acquire: pairs with the release store in weft__io_reactor() */
    struct weft__reactor *r = atomic_load_explicit(&io->r, memory_order_acquire);
    uint64_t one = 1;

    if (r == NULL)
        return;                       /* no reactor: nobody waits in epoll */
    if (r->ring) {
        weft__uring_wake(r->ring);
        return;
    }

    /* always write: the poller may be between its decision to wait and
     * epoll_wait itself (the eventfd stays readable until it is read, so
     * that wait returns at once); a spare write costs one early return */
    if (write(r->evfd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, the poller wakes anyway */
    }
}

/* Readiness bits of an event mask (epoll's and poll's bits are the same). */
static uint32_t bits_of(uint32_t ev)
{
    uint32_t bits = 0;

    if (ev & (EPOLLIN | EPOLLPRI))
        bits |= IO_READ;
    if (ev & EPOLLRDHUP)
        bits |= IO_READ | IO_RDHUP;
    if (ev & EPOLLOUT)
        bits |= IO_WRITE;
    if (ev & EPOLLHUP)
        bits |= IO_HUP | IO_READ | IO_WRITE;
    if (ev & EPOLLERR)
        bits |= IO_ERR | IO_READ | IO_WRITE;
    return bits;
}

/* s->lock held (released here): record `bits` and wake the waiters. */
static void deliver(struct weft__io_source *s, uint32_t bits)
{
    weft_waker rd = WEFT_WAKER_EMPTY, wr = WEFT_WAKER_EMPTY;

    /* one RMW for the bits and the tick (see io_clear); release: pairs
     * with the futures' acquire loads */
    uint32_t cur = atomic_load_explicit(&s->ready, memory_order_relaxed);

    while (!atomic_compare_exchange_weak_explicit(&s->ready, &cur, (cur + READY_TICK_ONE) | bits,
                                                  memory_order_release, memory_order_relaxed))
        ;
    if ((bits & IO_READ) && !s->rx_armed) {
        /* (an armed receive wakes the reader itself: see "Receive") */
        rd = s->reader;
        s->reader = WEFT_WAKER_EMPTY;
    }
    if (bits & IO_WRITE) {
        wr = s->writer;
        s->writer = WEFT_WAKER_EMPTY;
    }
    pthread_mutex_unlock(&s->lock);
    weft_waker_wake(&rd);
    weft_waker_wake(&wr);
}

/* The source an event names, locked, or NULL when the event is stale. */
struct weft__io_source *weft__io_event_source(struct weft__reactor *r, uint32_t index,
                                             uint32_t gen)
{
    struct weft__io_source *s = weft__io_slot(index);

    if (s == NULL)
        return NULL;                  /* cannot happen: events name registered slots */
    pthread_mutex_lock(&s->lock);
    if (s->closed || s->r != r || atomic_load_explicit(&s->gen, memory_order_relaxed) != gen) {
        pthread_mutex_unlock(&s->lock);
        return NULL;                  /* closed since: stale */
    }
    return s;
}

static void dispatch(struct weft__reactor *r, const struct epoll_event *ev)
{
    struct weft__io_source *s =
        weft__io_event_source(r, (uint32_t)(ev->data.u64 >> 32), (uint32_t)ev->data.u64);
    uint32_t bits = bits_of(ev->events);

    if (s == NULL)
        return;
    if (s->notify) {
        s->notify(s->notify_arg, bits);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    deliver(s, bits);
}

/* io_uring: a poll's completion. Result: the ready mask, or -errno (the
 * poll ended: -ECANCELED when the thread that submitted it exited). A
 * multishot poll that ended (no IORING_CQE_F_MORE: the kernel stops one
 * when it cannot post, or it was cancelled) is armed again while its
 * source is open; the bits it brings, or all of them, are delivered: a
 * spurious readiness costs a call that finds EAGAIN, a lost one a hang. */
static void uring_dispatch(struct weft__reactor *r, const struct weft__uring_cqe *c)
{
    uint32_t index = (uint32_t)(c->key >> 40) - 1, arm = (uint32_t)(c->key >> 32) & 0xffu;
    struct weft__io_source *s = weft__io_event_source(r, index, (uint32_t)c->key);
    bool again = c->res >= 0 || c->res == -ECANCELED;
    uint32_t bits;

    if (s == NULL)
        return;
    if (s->notify) {
        /* oneshot: a late completion of a poll that a re-arm replaced has
         * an older arm count */
        if (arm != (atomic_load_explicit(&s->arm, memory_order_relaxed) & 0xffu)) {
            pthread_mutex_unlock(&s->lock);
            return;
        }
        if (c->res == -ECANCELED) {
            (void)weft__uring_poll(
                r->ring, s->fd,
                weft__io_uring_mask(true, atomic_load_explicit(&s->hook_events, memory_order_relaxed)),
                false, c->key, false, &s->arm, arm);
        } else if (c->res == -EBADF) {
            /* the poll found no descriptor under the number: the user
             * closed it under the watch before the ring took the poll (it
             * goes in with the owner's next reap). Not an event: with epoll
             * the close takes the entry away and nothing is reported, so
             * here too the watch only learns that its arm failed (silent
             * until a modify succeeds); reported as an error it queued
             * the watch, and a modify then found it queued and answered 0
             * (uring.net.fdwatch_audit8.modify_after_the_descriptor_was_
             * closed_fails_and_stays_silent, seen with the spin's look at
             * the reactor, which submits the poll within microseconds) */
            s->notify(s->notify_arg, IO_GONE);
        } else {
            s->notify(s->notify_arg, c->res >= 0 ? bits_of((uint32_t)c->res) : IO_ERR);
        }
        pthread_mutex_unlock(&s->lock);
        return;
    }
    if (arm != (atomic_load_explicit(&s->arm, memory_order_relaxed) & 0xffu)) {
        /* a poll that weft__io_rx_mode() replaced: its last words */
        pthread_mutex_unlock(&s->lock);
        return;
    }
    bits = c->res >= 0 ? bits_of((uint32_t)c->res)
                       : IO_READ | IO_WRITE | (c->res == -ECANCELED ? 0 : IO_ERR);
    if (!(c->flags & IORING_CQE_F_MORE) && again)
        (void)weft__uring_poll(r->ring, s->fd, weft__io_uring_mask(false, s->rx_mode ? IO_WRITE : 0), true,
                               c->key, false, &s->arm, arm);
    deliver(s, bits);
}

/* epoll_pwait2 (Linux 5.11) takes a timespec: a nap ends at the timer's
 * nanosecond, not at the next whole millisecond. Older kernels: epoll_wait
 * with the timeout rounded up (never early). */
static _Atomic bool no_pwait2;

static int wait_events(struct weft__reactor *r, struct epoll_event *evs, int64_t timeout_ns)
{
    if (timeout_ns > 0 && !atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts = { (time_t)(timeout_ns / 1000000000),
                               (long)(timeout_ns % 1000000000) };
        int n = epoll_pwait2(r->epfd, evs, EVENTS_PER_POLL, &ts, NULL);

        if (n >= 0 || errno != ENOSYS)
            return n;
        atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
    }
    if (timeout_ns > 0) {
        int64_t ms = (timeout_ns + 999999) / 1000000;

        return epoll_wait(r->epfd, evs, EVENTS_PER_POLL, ms > INT32_MAX ? INT32_MAX : (int)ms);
    }
    return epoll_wait(r->epfd, evs, EVENTS_PER_POLL, timeout_ns < 0 ? -1 : 0);
}

static void stat_add(_Atomic uint64_t *c, uint64_t n)
{
    /* one writer at a time (see struct weft__reactor): relaxed suffices */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

void weft__io_stats(struct weft__io *io, struct weft__io_stats *out)
{
    /* acquire: pairs with the release store in weft__io_reactor() */
    struct weft__reactor *r = atomic_load_explicit(&io->r, memory_order_acquire);

    memset(out, 0, sizeof(*out));
    if (r == NULL)
        return;
    /* relaxed: counters, read as a snapshot; the runtime's reference keeps
     * the reactor alive while the user holds the runtime */
    out->sources = atomic_load_explicit(&r->live, memory_order_relaxed);
    out->polls = atomic_load_explicit(&r->polls, memory_order_relaxed);
    out->events = atomic_load_explicit(&r->events, memory_order_relaxed);
    out->eagain = atomic_load_explicit(&r->eagain, memory_order_relaxed);
    for (unsigned i = 0; i < 8; i++)
        out->events_hist[i] = atomic_load_explicit(&r->events_hist[i], memory_order_relaxed);
}

bool weft__io_pending(struct weft__io *io)
{
    /* acquire: pairs with the release store in weft__io_reactor() */
    struct weft__reactor *r = atomic_load_explicit(&io->r, memory_order_acquire);

    return r != NULL && r->ring != NULL && weft__uring_pending(r->ring);
}

int weft__io_claim(struct weft__io *io, bool take)
{
    /* acquire: pairs with the release store in weft__io_reactor() */
    struct weft__reactor *r = atomic_load_explicit(&io->r, memory_order_acquire);

    return r == NULL || r->ring == NULL ? 0 : weft__uring_claim(r->ring, take);
}

/* io_uring: weft__io_poll() once `polling` is ours: reap (the one
 * consumer of the CQ), give the flag back, then dispatch, as epoll does. */
static int uring_poll(struct weft__reactor *r, int64_t timeout_ns)
{
    struct weft__uring_cqe batch[URING_BATCH];
    weft_waker wk[URING_BATCH];
    int n = weft__uring_reap(r->ring, timeout_ns, batch), nw = 0;

    if (n >= 0) {
        unsigned b = n == 0 ? 0 : 32u - (unsigned)__builtin_clz((unsigned)n);

        /* the poller's own counters (still `polling`): load + store */
        stat_add(&r->polls, 1);
        stat_add(&r->events, (uint64_t)n);
        stat_add(&r->events_hist[b < 7 ? b : 7], 1);
    }
    /* receive completions are queued in order before `polling` is given
     * back: the next poller's come later in the stream (see "Receive") */
    for (int i = 0; i < n; i++) {
        if (batch[i].key & IO_KEY_RX) {
            if (nw == 0)
                weft__uring_rx_acquire(r->ring);
            weft__io_rx_complete(r, &batch[i], &wk[nw]);
            nw++;
        }
    }
    atomic_store_explicit(&r->polling, false, memory_order_release);
    for (int i = 0; i < nw; i++)
        weft_waker_wake(&wk[i]);
    for (int i = 0; i < n; i++) {
        if (!(batch[i].key & IO_KEY_RX))
            uring_dispatch(r, &batch[i]);
    }
    return n;
}

int weft__io_poll(struct weft__io *io, int64_t timeout_ns)
{
    struct epoll_event evs[EVENTS_PER_POLL];
    /* acquire: pairs with the release store in weft__io_reactor(); the
     * runtime's reference keeps it alive while its workers poll */
    struct weft__reactor *r = atomic_load_explicit(&io->r, memory_order_acquire);
    bool idle = false;
    int n, woken = 0;

    if (r == NULL)
        return 0;
    if (atomic_load_explicit(&r->polling, memory_order_relaxed) ||
        !atomic_compare_exchange_strong_explicit(&r->polling, &idle, true,
                                                 memory_order_acquire, memory_order_relaxed))
        return -1;
    if (r->ring)
        return uring_poll(r, timeout_ns);
    do
        n = wait_events(r, evs, timeout_ns);
    while (n < 0 && errno == EINTR && timeout_ns == 0);
    if (n >= 0) {
        unsigned b = n == 0 ? 0 : 32u - (unsigned)__builtin_clz((unsigned)n);

        /* the poller's own counters (still `polling`): load + store */
        stat_add(&r->polls, 1);
        stat_add(&r->events, (uint64_t)n);
        stat_add(&r->events_hist[b < 7 ? b : 7], 1);
    }
    atomic_store_explicit(&r->polling, false, memory_order_release);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == IO_WAKE_TOKEN) {
            uint64_t v;

            if (read(r->evfd, &v, sizeof(v)) < 0) {
                /* EAGAIN: another poll drained it */
            }
            continue;
        }
        dispatch(r, &evs[i]);
        woken++;
    }
    return woken;
}
