/* SPDX-License-Identifier: MIT */
/* The runtime's I/O reactor (internal): epoll, edge-triggered, with an
 * eventfd to wake the worker blocked in epoll_wait. Or, when the runtime
 * asks for it (WEFT_IO_URING), io_uring (io/uring.h): one multishot poll
 * per source plays the part of the edge-triggered registration, the ring's
 * wait that of epoll_wait, an eventfd polled by the ring that of the
 * eventfd; everything below
 * (sources, generations, the readiness protocol) is the same for both.
 *
 * There is no I/O thread. The worker that parks as the watcher (see
 * sched/runtime.c) blocks in epoll_wait instead of on its condition variable
 * while any descriptor is registered, and busy workers look without blocking
 * every few dozen polls. One thread at a time is inside epoll_wait
 * (`polling`); the others skip.
 *
 * A registered descriptor is a *source*: a slot in one process-wide table
 * of pages that are never freed (it grows, as the kernel's descriptor table
 * does, and never shrinks), so an event for a source that was closed a
 * moment ago, a future that still points at one, or a socket handle closed
 * twice reads valid memory, even after its reactor is gone. Each slot
 * carries a generation, bumped by close; epoll's data word holds
 * (index << 32 | generation) and every user holds the generation it was
 * given, so a stale event or a stale future sees the mismatch and stops.
 *
 * Lifetimes. The runtime owns a `struct weft__io` (its part: the lazy
 * start and the hooks into the scheduler). The reactor proper, `struct
 * weft__reactor` (epoll, eventfd, counters), is made on the first
 * registration and reference-counted: the runtime holds one reference,
 * every open source one (taken at registration, dropped when the slot is
 * released), every fd-watch loop one. weft__io_destroy() (runtime free)
 * marks the reactor shut (no new registrations; every future completes
 * with -ESHUTDOWN: nobody polls epoll any more), forgets the scheduler's
 * kick hook under the reactor's lock (so it is never called on a freed
 * runtime), wakes the wakers still stored in its sources (their futures
 * then see -ESHUTDOWN) and drops the runtime's reference. The last
 * reference closes the epoll instance and the eventfd and frees the
 * reactor. So sockets and loops outlive their runtime: close (and plain
 * calls such as shutdown or setsockopt) keep working on them.
 *
 * Per source, under its lock:
 *   ready    readiness bits (low byte), set by events, cleared by a call
 *            that finds the descriptor drained, and above them a tick of
 *            events dispatched, in one atomic word: set under the lock,
 *            cleared without it by a CAS that keeps the tick (so a clear
 *            never erases a newer event);
 *   reader   the waker of the task waiting to read (one at a time),
 *   writer   the same for writing;
 *   notify   instead of wakers, a hook (fd watches of the io layer).
 * And, without the lock, the atomic word `use`: system calls in flight on
 * the descriptor (USE_ONE each) and USE_CLOSED. begin() increments it only
 * while USE_CLOSED is clear (a CAS loop), then checks the generation;
 * close sets USE_CLOSED; whoever moves `use` to exactly USE_CLOSED (close
 * with no call in flight, or the last end() after close) releases the slot
 * and closes the descriptor. So a descriptor number is never reused under
 * a call in flight, and a slot is released exactly once. A free slot keeps
 * USE_CLOSED until registration stores 0 (release; begin() acquires).
 *
 * The readiness protocol (one direction; the other is the same), as
 * tokio's: a call is made only while the bit is set; a call that finds the
 * descriptor drained (EAGAIN, or fewer bytes than asked: a stream socket's
 * queue was empty) clears the bit, unless an event came since the call
 * began; a call that finds the bit clear parks:
 *
 *   future (any worker)                   reactor (the polling thread)
 *   R set? t0 = tick; call                event for the source
 *     drained: CAS tick == t0 ?           lock
 *              clear R                    tick++ and ready |= R (one RMW)
 *   R clear: lock; R set ? retry          take the reader waker
 *              : store waker; PENDING     unlock; wake it
 *            unlock
 *
 * No lost wake-up: an edge for bytes that came after the call is
 * dispatched after it began, so either it bumps the tick before the clear
 * (no clear) or it sets R after the clear (seen when parking, or it finds
 * the stored waker). epoll is edge-triggered: each arrival of data is an
 * edge. A fresh source starts with R and W set (try first). HUP, ERR and
 * RDHUP (the peer's FIN: a short read may leave only the end of stream
 * behind, which brings no new edge) stay set once seen: every later call
 * goes to the system and sees the condition, until a call in that
 * direction returns EAGAIN: that proves the condition gone (a UDP socket's
 * error was reported once and consumed; a FIFO that hung up has a new
 * writer), so EAGAIN clears them with the direction's bit (else the call
 * would be made again at once, forever) and a new condition brings a new
 * edge. Skipping the call that would return EAGAIN after every short
 * read saves one system call per message on a request/response stream. */
#ifndef WEFT_IO_REACTOR_H
#define WEFT_IO_REACTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "weft/core.h"
#include "io/uring.h"

enum {
    IO_READ = 1u << 0,
    IO_WRITE = 1u << 1,
    IO_HUP = 1u << 2,       /* peer hung up / error: both directions ready */
    IO_ERR = 1u << 3,
    IO_RDHUP = 1u << 4,     /* peer shut down its side: reads see EOF (sticky) */
    /* hooked sources only, alone: not an event but the arm's failure: the
     * io_uring poll found no descriptor under the number (closed under the
     * watch before the ring took the poll; see weft__io_check()) */
    IO_GONE = 1u << 5,
};

/* The `ready` word: readiness bits in the low byte, the event tick above. */
#define READY_TICK_ONE (1u << 8)
#define READY_TICK_MASK (~0xffu)

struct weft__reactor;

#define USE_CLOSED 1u
#define USE_ONE 2u

struct weft__io_source {
    pthread_mutex_t lock;
    _Atomic uint32_t gen;             /* written under ->lock; read as a hint */
    uint32_t index;
    int fd;                           /* ->lock; -1 when free */
    _Atomic uint32_t ready;           /* bits + tick: set under ->lock, cleared by CAS */

    _Atomic uint32_t use;             /* calls in flight | USE_CLOSED (see above) */
    bool closed;                      /* ->lock: close requested */
    bool close_fd;                    /* ->lock: close(fd) at release */
    bool unset_nonblock;              /* ->lock: clear O_NONBLOCK at release */
    weft_waker reader, writer;        /* ->lock */
    /* fd watches: called under ->lock with the events; then wakers unused */
    void (*notify)(void *arg, uint32_t events);
    void *notify_arg;
    /* ->lock (written at registration only): the reactor, referenced while
     * the source is open; stale (never cleared) once it is free */
    struct weft__reactor *r;
    struct weft__io_source *next_free;   /* the table's lock */
    /* io_uring backend: the poll's arm count, part of its key (a re-arm of
     * a hooked source bumps it, so the old poll's late completion is
     * stale); written by registration and weft__io_rearm() */
    _Atomic uint32_t arm;
    _Atomic uint32_t hook_events;     /* io_uring: a hooked source's events */
    bool fresh;                       /* ->lock: registered with IO_REG_FRESH */
    /* the user closed this (fd watch's) descriptor behind weft's back and
     * its number now names a newer source of the same reactor (reactor.c,
     * "Numbers reused"): close, re-arm and release leave the number alone.
     * Set under the reactor's ulock, read without it (relaxed: a hint for
     * a caller that broke the rules; the newer source's own calls never
     * depend on it) */
    _Atomic bool fd_lost;
    bool listener;                    /* ->lock: registered with IO_REG_LISTENER */
    /* io_uring receive (reactor.c, "Receive"), all ->lock: a multishot
     * receive is in the kernel (its last completion not yet taken); its
     * cancellation was queued (the queue reached RX_CAP); an end result
     * (0: end of stream, or -errno) waits behind the queued bytes; the
     * queue of filled buffers (ids, -1: none; linked by the reactor's
     * rx_next), the offset read in the first and the bytes queued */
    bool rx_armed, rx_cancel, rx_end_set;
    bool rx_mode;                     /* reads go through the receive: the
                                         multishot poll asks for output only */
    int32_t rx_end;
    int32_t rx_head, rx_tail;
    uint32_t rx_off, rx_bytes;
};

#define IO_PAGE_SHIFT 8
#define IO_PAGE_SLOTS (1u << IO_PAGE_SHIFT)
#define IO_MAX_PAGES 4096u            /* 1,048,576 sources, process-wide */
#define IO_MAX_SOURCES (IO_MAX_PAGES * IO_PAGE_SLOTS)

/* The reactor: heap, reference-counted (see "Lifetimes" above). */
struct weft__reactor {
    _Atomic unsigned refs;            /* runtime + open sources + loops */
    /* fixed at creation. epoll backend: epfd waits, evfd wakes. io_uring
     * backend: `ring` waits and wakes (evfd is -1); epfd only checks the
     * descriptors given by users (adopted, watched) as epoll would, and
     * holds them so that a second registration is -EEXIST as with epoll */
    int epfd, evfd;
    struct weft__uring *ring;         /* NULL: the epoll backend */
    _Atomic unsigned live;            /* open sources: the watcher blocks in epoll */
    _Atomic bool polling;             /* a thread is inside epoll_wait */
    _Atomic bool shut;                /* the runtime is gone (release: see destroy) */
    /* metrics (weft/observe.h): polls, events and events_hist are written
     * by the polling thread only (relaxed load + store, ordered between
     * pollers by `polling`), eagain by any thread (relaxed RMW: after a
     * failed system call, so its cost is lost in the call's) */
    _Atomic uint64_t polls, events, eagain;
    _Atomic uint64_t events_hist[8];  /* per poll: 0, 1, 2-3, ... 64+ */
    /* io_uring receive: per buffer id, the next in its source's queue and
     * the bytes it holds (written under the lock of the source whose queue
     * holds the buffer); NULL: the ring has no receive buffers */
    int32_t *rx_next;
    uint32_t *rx_len;
    char *rx_mem;
    _Atomic int64_t rx_out;           /* buffers taken from the kernel, not given back (tests) */
    pthread_mutex_t lock;             /* kick, kick_ctx */
    /* fd watches' descriptors (hooked sources), by number: the open
     * source that holds each, so that a newer registration of the same
     * number marks an older one whose descriptor the user closed
     * (reactor.c, "Numbers reused"). ->ulock; `users` (entries set) is
     * read without it to skip the look-up */
    pthread_mutex_t ulock;
    struct weft__io_source **by_fd;
    uint32_t by_fd_cap;
    _Atomic uint32_t users;
    /* the scheduler's hook: the first source was registered (live 0 -> 1);
     * NULL once the runtime is gone */
    void (*kick)(void *ctx);
    void *kick_ctx;
};

/* The runtime's part, embedded in it. */
struct weft__io {
    pthread_mutex_t lock;             /* the lazy start */
    _Atomic(struct weft__reactor *) r;   /* NULL until the first registration */
    void (*kick)(void *ctx);
    void *kick_ctx;
    /* set by the runtime after weft__io_init(), or NULL: called once, by
     * the thread that made the reactor, after its descriptors are open
     * (outside ->lock), with kick_ctx. The scheduler opens its own lazily
     * made descriptors there (park.c, the backup's alarm), so that a
     * program that counts descriptors once I/O has started sees them all. */
    void (*made)(void *ctx);
    bool shut;                        /* ->lock: no reactor may be made */
    int want;                         /* WEFT_IO_EPOLL or WEFT_IO_URING (fixed) */
    /* set by the runtime after weft__io_init(): one thread polls (a
     * runtime with one worker): io_uring may be one-issuer (uring.h) */
    bool one_poller;
    bool (*is_poller)(void *ctx);     /* with one_poller: the caller is it */
    int fallback;                     /* ->lock: why io_uring was not used (-errno) */
};

/* `want`: WEFT_IO_EPOLL or WEFT_IO_URING (weft/sched.h), the backend the
 * reactor tries when it is made; io_uring falls back to epoll when its
 * setup fails (the error is kept for weft__io_backend()). */
void weft__io_init(struct weft__io *io, void (*kick)(void *), void *ctx, int want);
/* The backend in use (WEFT_IO_EPOLL or WEFT_IO_URING), making the reactor
 * if it was not made yet; *fallback (may be NULL): 0, or the -errno that
 * made an io_uring reactor fall back to epoll. Or -errno (the reactor
 * cannot be made: -ESHUTDOWN, -ENOMEM, -EMFILE). */
int weft__io_backend(struct weft__io *io, int *fallback);
/* The runtime has shut down (no thread polls for it any more): shut its
 * reactor (see "Lifetimes"): waiting futures are woken to see -ESHUTDOWN,
 * new registrations fail, the kick hook is cleared. The runtime's memory
 * may live on (join handles, wakers hold it) but its reactor must not wait
 * for that. Idempotent. */
void weft__io_shut(struct weft__io *io);
/* The runtime is being freed: shut its reactor if not done yet and drop
 * the runtime's reference; sources still open keep it alive. */
void weft__io_destroy(struct weft__io *io);

/* The runtime's reactor, made on first use (epoll + eventfd): 0 and a new
 * reference in *out (drop it with weft__reactor_drop()), or -errno. */
int weft__io_reactor(struct weft__io *io, struct weft__reactor **out);
void weft__reactor_clone(struct weft__reactor *r);
void weft__reactor_drop(struct weft__reactor *r);

/* Relaxed hint: any source open (the watcher should wait in epoll). */
static inline bool weft__io_active(struct weft__io *io)
{
    /* acquire: pairs with the release store in weft__io_reactor() */
    struct weft__reactor *r = atomic_load_explicit(&io->r, memory_order_acquire);

    return r != NULL && (atomic_load_explicit(&r->live, memory_order_relaxed) != 0 ||
                         (r->ring != NULL && weft__uring_owed(r->ring)));
}

/* Relaxed hint, no system call: io_uring has completions for a poll to
 * reap (always false on epoll, which cannot tell without one). */
bool weft__io_pending(struct weft__io *io);

/* May the calling thread block in weft__io_poll()? 0: yes, any thread may
 * (epoll; no reactor yet); 1: yes, it is the io_uring ring's owner (now:
 * the first caller becomes it; with `take`, a current-thread runtime's
 * driver takes it over) and must wait in the ring whenever it parks while
 * descriptors are open (see uring.h, "The owner"); -1: no, another thread
 * owns the ring (this one only looks, timeout 0). Workers only. */
int weft__io_claim(struct weft__io *io, bool take);

/* Poll for events for at most timeout_ns (-1: no limit, 0: just look) and
 * wake what is ready. Returns the number of sources woken, or -1 if
 * another thread is polling (nothing done). Any thread. */
int weft__io_poll(struct weft__io *io, int64_t timeout_ns);

/* What weft_runtime_metrics() reports of the reactor (zeros before the
 * first registration). */
struct weft__io_stats {
    uint64_t sources, polls, events, eagain;
    uint64_t events_hist[8];
};
void weft__io_stats(struct weft__io *io, struct weft__io_stats *out);

/* Wake the thread inside epoll_wait (if any): write the eventfd. */
void weft__io_wake(struct weft__io *io);

/* The source of table slot `index`, or NULL if no such slot was ever made.
 * The memory stays valid for the life of the process. */
struct weft__io_source *weft__io_slot(uint32_t index);

/* Register `fd` (non-blocking, owned from now on: close() of the source
 * closes it), edge-triggered in both directions, for futures. Returns 0
 * with the source and its generation, or -errno (-ESHUTDOWN once the
 * runtime is gone; the fd is NOT closed then). */
int weft__io_register(struct weft__reactor *r, int fd, struct weft__io_source **out,
                      uint32_t *gen);
/* The same, with IO_REG_* flags: IO_REG_UNSET_NONBLOCK clears O_NONBLOCK
 * on the descriptor again just before release closes it (weft set it on a
 * file description that others may share: weft_fd_adopt()). */
#define IO_REG_UNSET_NONBLOCK 1u
/* IO_REG_FRESH: weft made the descriptor just now (socket(), accept(),
 * pipe()): a socket or a pipe that no one else registered, so the io_uring
 * backend skips the epoll check of user descriptors (one system call less
 * per connection). */
#define IO_REG_FRESH 2u
/* IO_REG_LISTENER: a listening socket that weft made (weft_listen()). The
 * io_uring backend shuts it down before it closes it: the kernel holds a
 * polled file until the thread that submitted the poll has run the
 * cancellation (microseconds later, on that thread), and a connect
 * meanwhile would still be queued, not refused. Never for an adopted
 * socket: it may have other holders (a dup, a forked or exec'd process),
 * and shutdown(2), unlike close(2), would stop it for all of them. */
#define IO_REG_LISTENER 4u
int weft__io_register_flags(struct weft__reactor *r, int fd, unsigned flags,
                            struct weft__io_source **out, uint32_t *gen);

/* Register `fd` level-triggered with EPOLLONESHOT for `events` (IO_READ |
 * IO_WRITE): each event calls notify(arg, bits) under the source's lock,
 * once, until weft__io_rearm(). The descriptor is not owned (close of the
 * source leaves it open). fd watches use this. */
int weft__io_register_hooked(struct weft__reactor *r, int fd, uint32_t events,
                             void (*notify)(void *arg, uint32_t events), void *arg,
                             struct weft__io_source **out, uint32_t *gen);

/* Re-arm a oneshot source with `events` (0: only hang-ups). Takes no lock
 * (the hook's caller may hold locks the hook takes): the caller passes the
 * descriptor it registered and guarantees that the source has not been
 * closed (fd watches: the watch is not removed, under the loop's lock,
 * which close waits behind). 0 or -errno. */
int weft__io_rearm(struct weft__io_source *s, int fd, uint32_t gen, uint32_t events);

/* Check, without arming anything, that the descriptor a oneshot source
 * was registered with is still open under `fd` (the same file): what
 * weft__io_rearm() checks first, for a caller that must not re-arm yet
 * (fd watches: an event waits to be delivered; the loop re-arms after
 * it). 0, or -EBADF (closed), -ENOENT (the number names another file
 * now); on an error the poll armed before (io_uring) ends, and any late
 * completion of it is stale. Same rules as weft__io_rearm() (no lock;
 * the caller guarantees the source is open). epoll: the entry is left
 * armed for hang-ups and errors only, until the next re-arm. */
int weft__io_check(struct weft__io_source *s, int fd, uint32_t gen);

/* Close: stale generation -> -EBADF. Otherwise deregisters the source,
 * wakes its reader and writer (they see -EBADF), and closes the descriptor
 * when no call is in flight on it (else the last one does). With
 * `keep_fd`, the descriptor is left open (fd watches do not own theirs).
 * Works after the runtime is gone. */
int weft__io_close(struct weft__io_source *s, uint32_t gen, bool keep_fd);

/* Enter / leave a system call on the source: begin returns the fd (>= 0) or
 * -EBADF (closed); every successful begin is paired with one end. Works
 * after the runtime is gone (plain calls). */
int weft__io_begin(struct weft__io_source *s, uint32_t gen);
void weft__io_end(struct weft__io_source *s);
/* Between begin and end: the runtime is gone (futures report -ESHUTDOWN). */
bool weft__io_is_shut(struct weft__io_source *s);

/* A future that waited on `dir` is dropped: release its stored waker. */
void weft__io_forget(struct weft__io_source *s, uint32_t gen, uint32_t dir);
/* Store the context's waker in direction `dir`'s slot whatever the
 * readiness, so that a close of the source (or any event of that
 * direction) wakes it: for a future that owns that direction of `s` while
 * it waits on something else (weft_copy: the destination's writer while
 * it waits to read its source). 0, -EBADF (closed), -ESHUTDOWN. Release
 * it with weft__io_forget(). */
int weft__io_watch_close(struct weft__io_source *s, uint32_t gen, uint32_t dir, weft_context *cx);

/* Run `op(fd, arg)` (a non-blocking system call returning >= 0 or -errno;
 * EINTR is retried here) by the protocol above: the result, or
 * WEFT_IO_PENDING (waker stored), or -EBADF, or -ESHUTDOWN (the runtime is
 * gone: nobody would wake a waiting future). `want`: the bytes asked for,
 * so that a shorter result counts as drained (0: never, for calls that are
 * not byte streams: accept, datagrams, connect). `op` runs between begin
 * and end: the source (and its reactor) cannot go away under it. */
#define WEFT_IO_PENDING (-1000000)
/* weft__io_recv(): the reactor has no completion-based receive (epoll, or a
 * ring without receive buffers): use weft__io_do(). */
#define WEFT_IO_NO_RX (-1000001)
ssize_t weft__io_do(struct weft__io_source *s, uint32_t gen, uint32_t dir, weft_context *cx,
                    ssize_t (*op)(int fd, void *arg), void *arg, size_t want);

/* Read a stream socket through the io_uring receive queue (reactor.c,
 * "Receive"): bytes queued by the multishot receive first, then an end
 * result queued behind them; with nothing queued and no receive in the
 * kernel, one recv() (recvfrom() with `addr`) on the descriptor, and on
 * EAGAIN the receive is armed and the waker stored. Returns the bytes
 * (*addrlen set to 0 when they came from the queue), 0 at end of stream,
 * WEFT_IO_PENDING, -errno, or WEFT_IO_NO_RX (not an io_uring reactor with
 * receive buffers: use weft__io_do). */
ssize_t weft__io_recv(struct weft__io_source *s, uint32_t gen, weft_context *cx, void *buf,
                      size_t len, struct sockaddr_storage *addr, socklen_t *addrlen);
/* Some reactor of the process has receive buffers (set once, never
 * cleared): while it is false, weft__io_recv() would answer WEFT_IO_NO_RX
 * and callers skip it (an epoll-only process takes no extra lock per
 * read). A relaxed hint: a reactor is made before any of its sockets. */
extern _Atomic bool weft__io_rx_any;
/* Anything of the source's stream is held by the receive queue, or a
 * receive is in the kernel (bufio's splice then copies through reads:
 * reading the descriptor would skip or reorder bytes). */
bool weft__io_rx_busy(struct weft__io_source *s, uint32_t gen);

/* ---- Between reactor.c and recv.c (the io_uring backend) ---- */
/* A source's io_uring key (user_data): slot + 1, arm count, generation;
 * IO_KEY_RX marks its receive's; the top bit stays clear (the ring's own
 * keys, uring.h). */
#define IO_KEY_RX (1ull << 62)
/* io_uring: the poll mask of a source armed with `events` (multishot polls
 * are edge-triggered, as EPOLLET; hooked ones oneshot). */
uint32_t weft__io_uring_mask(bool oneshot, uint32_t events);
/* the epoll user data of a reactor's eventfd (weft__io_wake()), no source's */
#define IO_WAKE_TOKEN UINT64_MAX
static inline uint64_t weft__io_key(uint32_t index, uint32_t arm, uint32_t gen)
{
    return (uint64_t)(index + 1) << 40 | (uint64_t)(arm & 0xffu) << 32 | gen;
}
/* The source a completion names, locked, or NULL when it is stale (closed
 * since, or of another reactor). */
struct weft__io_source *weft__io_event_source(struct weft__reactor *r, uint32_t index,
                                              uint32_t gen);
/* A receive completion (the poller, holding `polling`): queued; the
 * reader's waker is moved to *wk for the caller to wake once `polling` is
 * given back. */
struct weft__uring_cqe;
void weft__io_rx_complete(struct weft__reactor *r, const struct weft__uring_cqe *c,
                          weft_waker *wk);
/* ->lock held, io_uring reactor: the source's reads go through the
 * receive from now on (rx_mode): its multishot poll is replaced by one
 * for output (and hang-ups) only, so that bytes that come wake nothing
 * but the receive. Until close. */
void weft__io_rx_mode(struct weft__io_source *s, uint32_t gen);
/* Close (->lock held, io_uring reactor): cancel the receive, give the
 * queued buffers back. */
void weft__io_rx_close(struct weft__io_source *s, uint32_t gen);

#endif
