/* SPDX-License-Identifier: MIT */
/* The I/O reactor: see reactor.h for the design and the readiness protocol. */
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "io/reactor.h"
#include "io/uring.h"
#include "util/alloc.h"
#include "weft/sched.h"


/* The process-wide table of sources (see reactor.h): pages of 256 slots,
 * never freed, so that a stale handle, future or event always reads valid
 * memory, even after its reactor and runtime are gone. The pages come from
 * the C library's calloc, not from weft's allocation hook: they belong to no
 * runtime and outlive any allocator a user installs (and a test's count of
 * live allocations). Like the kernel's descriptor table, the table grows to
 * the most sources ever open at once and does not shrink. */
_Atomic bool weft__io_rx_any;

static struct {
    pthread_mutex_t lock;             /* nslots, free list, growth */
    uint32_t nslots;                  /* ->lock */
    struct weft__io_source *free;     /* ->lock */
    /* ->lock to grow; read without it (acquire) by weft__io_slot() */
    struct weft__io_source *pages[IO_MAX_PAGES];
} table = { .lock = PTHREAD_MUTEX_INITIALIZER };

void weft__io_init(struct weft__io *io, void (*kick)(void *), void *ctx, int want)
{
    memset(io, 0, sizeof(*io));
    io->want = want;
    pthread_mutex_init(&io->lock, NULL);
    atomic_init(&io->r, NULL);
    io->kick = kick;
    io->kick_ctx = ctx;
}

/* Make the reactor: the epoll instance and the eventfd, on first use (a
 * runtime that never does I/O keeps no descriptors and parks on its
 * condition variable). One reference: the runtime's. */
static void kick_runtime(struct weft__reactor *r);

/* A one-issuer ring's request from a thread other than its owner: wake
 * the owner (io/uring.h). */
static void uring_kick(void *ctx)
{
    kick_runtime(ctx);
}

static int reactor_new(struct weft__io *io, struct weft__reactor **out)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = IO_WAKE_TOKEN };
    struct weft__reactor *r = weft__calloc(1, sizeof(*r));
    int err;

    if (r == NULL)
        return -ENOMEM;
    r->evfd = -1;
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epfd < 0) {
        err = -errno;
        goto out_free;
    }
    if (io->want == WEFT_IO_URING) {
        /* ENOSYS, EPERM (seccomp, io_uring_disabled), EOPNOTSUPP (too
         * old a kernel)...: epoll, and the reason is kept */
        io->fallback = weft__uring_new(&r->ring, io->one_poller);
        if (io->fallback)
            r->ring = NULL;
    }
    if (r->ring && weft__uring_rx_mem(r->ring)) {
        /* no memory for the links: readiness only, as without buffers */
        r->rx_next = weft__calloc(URING_RX_BUFS, sizeof(*r->rx_next));
        r->rx_len = weft__calloc(URING_RX_BUFS, sizeof(*r->rx_len));
        if (r->rx_next && r->rx_len) {
            r->rx_mem = weft__uring_rx_mem(r->ring);
            atomic_store_explicit(&weft__io_rx_any, true, memory_order_relaxed);
        } else {
            weft__free(r->rx_next);
            weft__free(r->rx_len);
            r->rx_next = NULL;
            r->rx_len = NULL;
        }
    }
    if (r->ring == NULL) {
        r->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (r->evfd < 0 || epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->evfd, &ev) < 0) {
            err = -errno;
            goto out_close;
        }
    }
    atomic_init(&r->refs, 1);
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->ulock, NULL);
    r->kick = io->kick;
    r->kick_ctx = io->kick_ctx;
    if (r->ring)
        weft__uring_set_hooks(r->ring, uring_kick, r, io->is_poller, io->kick_ctx);
    *out = r;
    return 0;
out_close:
    if (r->evfd >= 0)
        close(r->evfd);
    weft__uring_free(r->ring);
    weft__free(r->rx_next);
    weft__free(r->rx_len);
    close(r->epfd);
out_free:
    weft__free(r);
    return err;
}

int weft__io_reactor(struct weft__io *io, struct weft__reactor **out)
{
    /* acquire: pairs with the release store below */
    struct weft__reactor *r = atomic_load_explicit(&io->r, memory_order_acquire);
    int err = 0;
    bool made = false;

    if (r == NULL) {
        pthread_mutex_lock(&io->lock);
        r = atomic_load_explicit(&io->r, memory_order_relaxed);   /* ->lock */
        if (r == NULL && io->shut) {
            err = -ESHUTDOWN;
        } else if (r == NULL) {
            err = reactor_new(io, &r);
            /* release: pollers (weft__io_poll, weft__io_active) that see
             * the pointer see the descriptors */
            if (err == 0)
                atomic_store_explicit(&io->r, r, memory_order_release);
            made = err == 0;
        }
        pthread_mutex_unlock(&io->lock);
        if (err)
            return err;
        /* the caller (a registration) holds the runtime: its memory, and
         * with it kick_ctx, outlives this call */
        if (made && io->made)
            io->made(io->kick_ctx);
    }
    weft__reactor_clone(r);
    *out = r;
    return 0;
}

int weft__io_backend(struct weft__io *io, int *fallback)
{
    struct weft__reactor *r;
    int err = weft__io_reactor(io, &r), b;

    if (err)
        return err;
    b = r->ring ? WEFT_IO_URING : WEFT_IO_EPOLL;
    weft__reactor_drop(r);
    if (fallback) {
        pthread_mutex_lock(&io->lock);
        *fallback = io->fallback;
        pthread_mutex_unlock(&io->lock);
    }
    return b;
}

void weft__reactor_clone(struct weft__reactor *r)
{
    /* relaxed: the caller already holds a reference (as Arc::clone) */
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void weft__reactor_drop(struct weft__reactor *r)
{
    /* acq_rel: the last one out sees every other holder's use (as Arc) */
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (r->evfd >= 0)
        close(r->evfd);
    weft__uring_free(r->ring);        /* the kernel cancels what is armed */
    weft__free(r->rx_next);
    weft__free(r->rx_len);
    close(r->epfd);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->ulock);
    weft__free(r->by_fd);
    weft__free(r);
}

/* The runtime is gone: no kick into it from now on, no new registration,
 * and every waiting future is woken to see -ESHUTDOWN. */
static void reactor_shut(struct weft__reactor *r)
{
    uint32_t n;

    /* release: pairs with the acquire loads in do_register() and
     * weft__io_is_shut(); io_park() checks it under the source's lock,
     * which the sweep below takes after this store */
    atomic_store_explicit(&r->shut, true, memory_order_release);
    pthread_mutex_lock(&r->lock);     /* waits out a kick in progress */
    r->kick = NULL;
    r->kick_ctx = NULL;
    pthread_mutex_unlock(&r->lock);
    if (r->ring)
        weft__uring_shut(r->ring);    /* the workers have exited */

    pthread_mutex_lock(&table.lock);
    n = table.nslots;
    pthread_mutex_unlock(&table.lock);
    for (uint32_t i = 0; i < n; i++) {
        struct weft__io_source *s = weft__io_slot(i);
        weft_waker rd = WEFT_WAKER_EMPTY, wr = WEFT_WAKER_EMPTY;

        pthread_mutex_lock(&s->lock);
        if (!s->closed && s->r == r) {
            rd = s->reader;
            wr = s->writer;
            s->reader = s->writer = WEFT_WAKER_EMPTY;
        }
        pthread_mutex_unlock(&s->lock);
        weft_waker_wake(&rd);
        weft_waker_wake(&wr);
    }
}

void weft__io_shut(struct weft__io *io)
{
    struct weft__reactor *r;
    bool first;

    pthread_mutex_lock(&io->lock);
    first = !io->shut;
    io->shut = true;
    r = atomic_load_explicit(&io->r, memory_order_relaxed);   /* ->lock */
    pthread_mutex_unlock(&io->lock);
    if (first && r)
        reactor_shut(r);
}

void weft__io_destroy(struct weft__io *io)
{
    struct weft__reactor *r;

    weft__io_shut(io);
    /* acquire: pairs with the release store in weft__io_reactor() (made by
     * any thread; the runtime's free comes after every use of it) */
    r = atomic_load_explicit(&io->r, memory_order_acquire);
    if (r)
        weft__reactor_drop(r);        /* the runtime's reference */
    pthread_mutex_destroy(&io->lock);
}

struct weft__io_source *weft__io_slot(uint32_t index)
{
    struct weft__io_source *page;

    if (index >= IO_MAX_SOURCES)
        return NULL;
    /* acquire: pairs with slot_take()'s release */
    page = __atomic_load_n(&table.pages[index >> IO_PAGE_SHIFT], __ATOMIC_ACQUIRE);
    return page ? &page[index & (IO_PAGE_SLOTS - 1)] : NULL;
}

/* table.lock held: a free slot, growing by a page when none is left. */
static struct weft__io_source *slot_take(void)
{
    struct weft__io_source *s = table.free;

    if (s == NULL) {
        uint32_t p = table.nslots >> IO_PAGE_SHIFT;
        struct weft__io_source *page;

        if (p == IO_MAX_PAGES)
            return NULL;
        page = calloc(IO_PAGE_SLOTS, sizeof(*page));   /* never freed: see table */
        if (page == NULL)
            return NULL;
        for (uint32_t i = IO_PAGE_SLOTS; i-- > 0;) {
            page[i].index = table.nslots + i;
            page[i].fd = -1;
            page[i].rx_head = page[i].rx_tail = -1;
            atomic_init(&page[i].use, USE_CLOSED);
            pthread_mutex_init(&page[i].lock, NULL);
            page[i].next_free = table.free;
            table.free = &page[i];
        }
        /* the page pointer is read without the lock by pollers and by
         * handle look-ups: it is published before any event or handle can
         * name one of its slots (epoll_ctl is a system call, a full barrier
         * in the kernel; a handle reaches its user through whatever
         * synchronizes the two threads) */
        __atomic_store_n(&table.pages[p], page, __ATOMIC_RELEASE);
        table.nslots += IO_PAGE_SLOTS;
        s = table.free;
    }
    table.free = s->next_free;
    s->next_free = NULL;
    return s;
}

/* Closed and no call in flight (the caller saw `use` become USE_CLOSED, so
 * it alone releases): close the descriptor, put the slot back, drop the
 * source's reference on the reactor (perhaps the last: after the runtime
 * is gone, the last socket's close frees it). The slot keeps its (bumped)
 * generation and its stale `r`. No source lock needed: every other reader
 * of these fields checks `closed` or `use` first. */
static void slot_release(struct weft__io_source *s)
{
    struct weft__reactor *r = s->r;

    /* relaxed: set (if ever) before the close that led here */
    if (s->close_fd && !atomic_load_explicit(&s->fd_lost, memory_order_relaxed)) {
        if (s->unset_nonblock) {
            int fl = fcntl(s->fd, F_GETFL);

            /* give the shared file description back as it was found */
            if (fl >= 0)
                fcntl(s->fd, F_SETFL, fl & ~O_NONBLOCK);
        }
        /* io_uring: the cancelled poll may still hold the file for a
         * moment (see IO_REG_LISTENER); a listener stops listening now */
        if (r->ring && s->listener)
            shutdown(s->fd, SHUT_RDWR);
        close(s->fd);
    }
    s->fd = -1;
    s->notify = NULL;
    s->notify_arg = NULL;
    pthread_mutex_lock(&table.lock);
    s->next_free = table.free;
    table.free = s;
    pthread_mutex_unlock(&table.lock);
    weft__reactor_drop(r);
}

static uint64_t src_key(uint32_t index, uint32_t arm, uint32_t gen)
{
    return weft__io_key(index, arm, gen);
}

/* io_uring: the poll mask (multishot polls are edge-triggered, as EPOLLET;
 * hooked ones oneshot). */
uint32_t weft__io_uring_mask(bool oneshot, uint32_t events)
{
    uint32_t ev = 0;

    if (!oneshot && events == IO_WRITE)
        return EPOLLOUT;              /* rx_mode: input comes by the receive */
    if (!oneshot)
        return EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    if (events & IO_READ)
        ev |= EPOLLIN | EPOLLRDHUP;
    if (events & IO_WRITE)
        ev |= EPOLLOUT;
    return ev;
}

static uint32_t epoll_bits(bool oneshot, uint32_t events)
{
    uint32_t ev = 0;

    if (!oneshot)
        return EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    if (events & IO_READ)
        ev |= EPOLLIN | EPOLLRDHUP;
    if (events & IO_WRITE)
        ev |= EPOLLOUT;
    return ev | EPOLLONESHOT;
}

/* The first source was registered: a watcher napping on its condition
 * variable must move into epoll_wait. Under the reactor's lock, so that
 * reactor_shut() (runtime free) cannot pass while the hook runs. */
static void kick_runtime(struct weft__reactor *r)
{
    pthread_mutex_lock(&r->lock);
    if (r->kick)
        r->kick(r->kick_ctx);
    pthread_mutex_unlock(&r->lock);
}

/* ---- Numbers reused ----
 * An fd watch's descriptor stays the user's to close, and a careless
 * user closes it before removing the watch (fdwatch.h asks the other
 * order). Its number is then free, and the next socket, pipe, adopted
 * stream or watch may take it. epoll and the io_uring check-epoll key
 * their entries by number (and file): the older watch's EPOLL_CTL_DEL at
 * remove, or its EPOLL_CTL_MOD at a re-arm, would then hit the NEWER
 * descriptor's entry (a watch or stream gone silent, an event delivered
 * to the wrong watch). So the reactor keeps, per number, the open watch
 * source (hooked) that holds it (by_fd), and any registration that got a
 * number held there proves that holder's descriptor gone (the kernel
 * gave the number out again, or epoll took a second entry for it): the
 * holder is marked fd_lost, and from then on its close and re-arm leave
 * that number alone (re-arm: -EBADF). (Only from then on: on io_uring,
 * where the ring holds the closed file, the old watch may still see its
 * file's last events, and a re-arm before the new registration arms it
 * on whatever the number names then, until it is removed.) Sockets and
 * streams are not
 * tracked (weft owns their descriptors: a user who closes one breaks
 * more than this), so making one allocates nothing.
 * Invariant (->ulock): by_fd[n] is NULL or an open, not fd_lost hooked
 * source of this reactor registered with number n; `users` counts the
 * non-NULL. */

/* Room in by_fd for number fd (a watch's registration, before its
 * epoll_ctl): 0, or -ENOMEM: then the source is not tracked (it works as
 * any other; only this protection from a careless close is lost), so that
 * a registration never fails for it. */
static int fd_reserve(struct weft__reactor *r, int fd)
{
    int err = 0;

    pthread_mutex_lock(&r->ulock);
    if ((uint32_t)fd >= r->by_fd_cap) {
        uint32_t cap = r->by_fd_cap ? r->by_fd_cap : 64;
        struct weft__io_source **m;

        while (cap <= (uint32_t)fd)
            cap *= 2;
        m = weft__calloc(cap, sizeof(*m));
        if (m == NULL) {
            err = -ENOMEM;
        } else {
            if (r->by_fd)
                memcpy(m, r->by_fd, r->by_fd_cap * sizeof(*m));
            weft__free(r->by_fd);
            r->by_fd = m;
            r->by_fd_cap = cap;
        }
    }
    pthread_mutex_unlock(&r->ulock);
    return err;
}

/* Source s was registered with number fd (its epoll_ctl succeeded, or
 * weft made the descriptor): an older holder of the number is stale;
 * a tracked s (a watch; room was reserved) becomes the holder. */
static void fd_claim(struct weft__reactor *r, struct weft__io_source *s, int fd, bool user)
{
    /* relaxed: a watch's registration stores under ->ulock before its
     * handle exists; one racing with us is a caller's own race */
    if (!user && atomic_load_explicit(&r->users, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&r->ulock);
    if ((uint32_t)fd < r->by_fd_cap) {
        struct weft__io_source *old = r->by_fd[fd];

        if (old != NULL) {
            atomic_store_explicit(&old->fd_lost, true, memory_order_relaxed);
            atomic_fetch_sub_explicit(&r->users, 1, memory_order_relaxed);
        }
        r->by_fd[fd] = user ? s : NULL;
        if (user)
            atomic_fetch_add_explicit(&r->users, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&r->ulock);
}

/* Source s (not fresh: maybe tracked) is closing: it no longer holds its
 * number. */
static void fd_unclaim(struct weft__reactor *r, struct weft__io_source *s, int fd)
{
    /* relaxed: a tracked s counts itself in `users` (stored before its
     * handle existed), so 0 means s is not tracked */
    if (atomic_load_explicit(&r->users, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&r->ulock);
    if (fd >= 0 && (uint32_t)fd < r->by_fd_cap && r->by_fd[fd] == s) {
        r->by_fd[fd] = NULL;
        atomic_fetch_sub_explicit(&r->users, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&r->ulock);
}

static int do_register(struct weft__reactor *r, int fd, bool oneshot, uint32_t events,
                       unsigned flags, void (*notify)(void *, uint32_t), void *arg,
                       struct weft__io_source **out, uint32_t *gen)
{
    struct weft__io_source *s;
    struct epoll_event ev;
    int err;
    uint32_t g;

    if (fd < 0)
        return -EBADF;
    /* acquire: pairs with reactor_shut()'s release (a registration racing
     * with runtime free may still pass: its source works like any other
     * that outlives the runtime) */
    if (atomic_load_explicit(&r->shut, memory_order_acquire))
        return -ESHUTDOWN;
    /* fd watches only: their add allocates anyway, while making a socket
     * or stream allocates nothing (weft/net.h, "Handles") */
    bool track = oneshot && fd_reserve(r, fd) == 0;

    pthread_mutex_lock(&table.lock);
    s = slot_take();
    pthread_mutex_unlock(&table.lock);
    if (s == NULL)
        return -ENOMEM;
    weft__reactor_clone(r);           /* the source's reference */

    pthread_mutex_lock(&s->lock);
    g = atomic_load_explicit(&s->gen, memory_order_relaxed);
    s->fd = fd;
    /* optimistic: the first call tries its system call (a fresh socket
     * is usually writable, an accepted one often readable already) */
    atomic_store_explicit(&s->ready, IO_READ | IO_WRITE, memory_order_relaxed);
    s->closed = false;
    s->close_fd = !oneshot;
    s->unset_nonblock = (flags & IO_REG_UNSET_NONBLOCK) != 0;
    s->notify = notify;
    s->notify_arg = arg;
    s->r = r;
    s->fresh = (flags & IO_REG_FRESH) != 0;
    atomic_store_explicit(&s->fd_lost, false, memory_order_relaxed);
    s->listener = (flags & IO_REG_LISTENER) != 0;
    s->rx_armed = s->rx_cancel = s->rx_end_set = s->rx_mode = false;
    s->rx_end = 0;
    s->rx_head = s->rx_tail = -1;
    s->rx_off = s->rx_bytes = 0;
    atomic_store_explicit(&s->hook_events, events, memory_order_relaxed);
    /* written before the unlock: a hook may run as soon as the descriptor
     * is added, and it reads what the caller keeps here (it takes this
     * lock first, which orders the writes before it) */
    *out = s;
    *gen = g;
    /* release: a begin() that sees the slot open sees the fields above */
    atomic_store_explicit(&s->use, 0, memory_order_release);
    pthread_mutex_unlock(&s->lock);

    ev.events = epoll_bits(oneshot, events);
    ev.data.u64 = (uint64_t)s->index << 32 | g;
    /* seq_cst: pairs with the watcher's fence (see io_kick in the scheduler) */
    if (atomic_fetch_add_explicit(&r->live, 1, memory_order_seq_cst) == 0)
        kick_runtime(r);
    if (r->ring)
        ev.events = 0;                /* only the check (see struct weft__reactor) */
    if ((!r->ring || !(flags & IO_REG_FRESH)) && epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        err = -errno;
        pthread_mutex_lock(&s->lock);
        atomic_store_explicit(&s->gen, g + 1, memory_order_relaxed);
        s->closed = true;
        s->close_fd = false;          /* the caller keeps its descriptor */
        atomic_fetch_sub_explicit(&r->live, 1, memory_order_relaxed);
        pthread_mutex_unlock(&s->lock);
        /* a stale begin() may hold `use` for a moment: the last one out
         * releases (and drops the source's reference) */
        if (atomic_fetch_or_explicit(&s->use, USE_CLOSED, memory_order_acq_rel) == 0)
            slot_release(s);
        return err;
    }
    fd_claim(r, s, fd, track);
    if (r->ring) {
        uint32_t arm = atomic_load_explicit(&s->arm, memory_order_relaxed);

        /* queued: it goes in with the poller's next wait (at once if one
         * is blocked); until then the optimistic bits above let the first
         * calls try, and a poll armed late still reports what is ready */
        (void)weft__uring_poll(r->ring, fd, weft__io_uring_mask(oneshot, events), !oneshot,
                               src_key(s->index, arm, g), false, NULL, 0);
    }
    return 0;
}

int weft__io_register(struct weft__reactor *r, int fd, struct weft__io_source **out,
                      uint32_t *gen)
{
    return do_register(r, fd, false, 0, 0, NULL, NULL, out, gen);
}

int weft__io_register_flags(struct weft__reactor *r, int fd, unsigned flags,
                            struct weft__io_source **out, uint32_t *gen)
{
    return do_register(r, fd, false, 0, flags, NULL, NULL, out, gen);
}

int weft__io_register_hooked(struct weft__reactor *r, int fd, uint32_t events,
                             void (*notify)(void *arg, uint32_t events), void *arg,
                             struct weft__io_source **out, uint32_t *gen)
{
    return do_register(r, fd, true, events, 0, notify, arg, out, gen);
}

/* io_uring, hooked source: the descriptor check of a re-arm. A poll on a
 * number closed under the watch (or taken by another file since) would
 * fail only in its completion: a watch re-armed after each callback would
 * be called again and again, and a modify would report success (fdwatch.h:
 * the re-arm's error, then silence). The epoll set holds the descriptor
 * (added with no events at registration: the check of do_register();
 * nobody waits on that set), so a MOD of it answers as the epoll
 * backend's re-arm does: -EBADF closed, -ENOENT another file under the
 * number; and it arms nothing. On an error the poll armed with count
 * `old` ends (a new count: its completion is stale), so that it neither
 * reports the old file's events nor keeps that file open. */
static int uring_check(struct weft__io_source *s, int fd, uint32_t gen, uint32_t old)
{
    struct epoll_event ev;
    int err;

    ev.events = 0;
    ev.data.u64 = (uint64_t)s->index << 32 | gen;
    if (epoll_ctl(s->r->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
        return 0;
    err = -errno;
    (void)weft__uring_repoll(s->r->ring, src_key(s->index, old, gen), -1, 0, 0, false, false,
                             &s->arm, (old + 1) & 0xffu);
    return err;
}

int weft__io_rearm(struct weft__io_source *s, int fd, uint32_t gen, uint32_t events)
{
    struct epoll_event ev;

    /* no lock: index and r do not change while the source is open, and the
     * caller guarantees the
     * registration is still its own (see reactor.h); a number that the
     * user closed and a newer source took is not ours to arm ("Numbers
     * reused"; relaxed: see fd_lost) */
    if (atomic_load_explicit(&s->fd_lost, memory_order_relaxed))
        return -EBADF;
    if (s->r->ring) {
        uint32_t old = atomic_load_explicit(&s->arm, memory_order_relaxed);
        int err = uring_check(s, fd, gen, old);

        if (err)
            return err;
        /* the new count first: a completion of the old poll that comes
         * late is stale in dispatch; then remove it and arm the new one
         * (in this order in the kernel) */
        atomic_store_explicit(&s->hook_events, events, memory_order_relaxed);
        return weft__uring_repoll(s->r->ring, src_key(s->index, old, gen), fd,
                                  weft__io_uring_mask(true, events), src_key(s->index, old + 1, gen),
                                  false, false, &s->arm, (old + 1) & 0xffu);
    }
    ev.events = epoll_bits(true, events);
    ev.data.u64 = (uint64_t)s->index << 32 | gen;
    return epoll_ctl(s->r->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

int weft__io_check(struct weft__io_source *s, int fd, uint32_t gen)
{
    struct epoll_event ev;

    /* as weft__io_rearm(): no lock, the caller's registration */
    if (atomic_load_explicit(&s->fd_lost, memory_order_relaxed))
        return -EBADF;
    if (s->r->ring)
        return uring_check(s, fd, gen, atomic_load_explicit(&s->arm, memory_order_relaxed));
    /* epoll has no check without a MOD: armed for hang-ups and errors only
     * (epoll always reports those), which the next re-arm widens; the
     * caller's event that waits is delivered before that re-arm */
    ev.events = epoll_bits(true, 0);
    ev.data.u64 = (uint64_t)s->index << 32 | gen;
    return epoll_ctl(s->r->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void weft__io_rx_mode(struct weft__io_source *s, uint32_t gen)
{
    uint32_t old = atomic_load_explicit(&s->arm, memory_order_relaxed);

    s->rx_mode = true;
    /* the new arm count first (under the ring's lock): the old poll's
     * cancellation, and any completion of it still to come, is stale in
     * uring_dispatch() and armed again by nobody */
    (void)weft__uring_repoll(s->r->ring, src_key(s->index, old, gen), s->fd,
                             weft__io_uring_mask(false, IO_WRITE), src_key(s->index, old + 1, gen), true,
                             false, &s->arm, (old + 1) & 0xffu);
}

int weft__io_close(struct weft__io_source *s, uint32_t gen, bool keep_fd)
{
    weft_waker r, w;
    pthread_mutex_lock(&s->lock);
    if (s->closed || atomic_load_explicit(&s->gen, memory_order_relaxed) != gen) {
        pthread_mutex_unlock(&s->lock);
        return -EBADF;
    }
    s->closed = true;
    s->close_fd = !keep_fd;
    atomic_store_explicit(&s->gen, gen + 1, memory_order_relaxed);
    r = s->reader;
    w = s->writer;
    s->reader = s->writer = WEFT_WAKER_EMPTY;
    /* deregister before the descriptor can be closed and its number reused;
     * an event already taken by a poller carries the old generation */
    if ((!s->r->ring || !s->fresh) &&
        !atomic_load_explicit(&s->fd_lost, memory_order_relaxed))   /* "Numbers reused" */
        epoll_ctl(s->r->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    if (!s->fresh)
        fd_unclaim(s->r, s, s->fd);   /* ->lock, then ->ulock: nothing takes them reversed */
    if (s->r->ring) {
        /* the receive too, with the poll's cancel; its queued buffers
         * back to the kernel */
        weft__io_rx_close(s, gen);
        /* now: the kernel holds the file while the poll is armed, so the
         * descriptor's close would not close it (a peer would wait for
         * its FIN) */
        (void)weft__uring_repoll(s->r->ring,
                                 src_key(s->index, atomic_load_explicit(&s->arm,
                                                                        memory_order_relaxed),
                                         gen),
                                 -1, 0, 0, false, true, NULL, 0);
    }
    atomic_fetch_sub_explicit(&s->r->live, 1, memory_order_relaxed);
    pthread_mutex_unlock(&s->lock);
    /* no call in flight: release now; else the last end() does */
    if (atomic_fetch_or_explicit(&s->use, USE_CLOSED, memory_order_acq_rel) == 0)
        slot_release(s);
    weft_waker_wake(&r);
    weft_waker_wake(&w);
    return 0;
}

int weft__io_begin(struct weft__io_source *s, uint32_t gen)
{
    /* acquire: pairs with the release store of `use` at registration */
    uint32_t u = atomic_load_explicit(&s->use, memory_order_acquire);

    do {
        if (u & USE_CLOSED)
            return -EBADF;
    } while (!atomic_compare_exchange_weak_explicit(&s->use, &u, u + USE_ONE,
                                                    memory_order_acquire,
                                                    memory_order_acquire));
    /* counted now: the slot cannot be released under us; but it may have
     * been closed and registered again between the future's init and the
     * increment, so the generation decides */
    if (atomic_load_explicit(&s->gen, memory_order_acquire) != gen) {
        weft__io_end(s);
        return -EBADF;
    }
    return s->fd;
}

void weft__io_end(struct weft__io_source *s)
{
    /* acq_rel: the releaser sees every call's effects; the last call out
     * after a close releases */
    if (atomic_fetch_sub_explicit(&s->use, USE_ONE, memory_order_acq_rel) ==
        (USE_ONE | USE_CLOSED))
        slot_release(s);
}

bool weft__io_is_shut(struct weft__io_source *s)
{
    /* acquire: pairs with reactor_shut()'s release; s->r is valid: the
     * caller holds a call in flight (begin), so the source is not released
     * and holds its reference */
    return atomic_load_explicit(&s->r->shut, memory_order_acquire);
}

/* The bits that make direction `dir` worth a system call. */
static uint32_t sticky_or(uint32_t dir)
{
    return dir | IO_HUP | IO_ERR | (dir == IO_READ ? IO_RDHUP : 0);
}

/* Not ready in direction `dir`: store the waker unless an event came
 * meanwhile. 1 retry, 0 pending, -EBADF closed, -ESHUTDOWN runtime gone. */
static int io_park(struct weft__io_source *s, uint32_t gen, uint32_t dir, weft_context *cx)
{
    weft_waker *slotw = dir == IO_READ ? &s->reader : &s->writer;
    const weft_waker *mine = weft_context_waker(cx);
    weft_waker old = WEFT_WAKER_EMPTY;
    int ret;

    pthread_mutex_lock(&s->lock);
    if (s->closed || atomic_load_explicit(&s->gen, memory_order_relaxed) != gen) {
        ret = -EBADF;
    } else if (atomic_load_explicit(&s->r->shut, memory_order_relaxed)) {
        /* relaxed: reactor_shut() stores it before it takes this lock to
         * collect the wakers, so either it is seen here or our waker is
         * found and woken there */
        ret = -ESHUTDOWN;
    } else if (atomic_load_explicit(&s->ready, memory_order_relaxed) & sticky_or(dir)) {
        ret = 1;                      /* an event came: try again */
    } else {
        if (!weft_waker_will_wake(slotw, mine)) {
            old = *slotw;
            *slotw = weft_waker_clone(mine);
        }
        ret = 0;
    }
    pthread_mutex_unlock(&s->lock);
    weft_waker_drop(&old);
    return ret;
}

/* The call found the descriptor drained (EAGAIN, or a short read or
 * write): clear `bits` (the direction's readiness bit; after EAGAIN also
 * its sticky hang-up and error bits), unless an event was dispatched since
 * `seen` (the word read before the call), which may report what came after
 * it. No lock: the tick and the bits share the word, so a CAS that keeps
 * the tick cannot erase a newer event (a clear of the other direction only
 * makes it retry). */
static void io_clear(struct weft__io_source *s, uint32_t bits, uint32_t seen)
{
    uint32_t cur = seen;

    while ((cur & READY_TICK_MASK) == (seen & READY_TICK_MASK) &&
           !atomic_compare_exchange_weak_explicit(&s->ready, &cur, cur & ~bits,
                                                  memory_order_acq_rel, memory_order_acquire))
        ;
}

int weft__io_watch_close(struct weft__io_source *s, uint32_t gen, uint32_t dir, weft_context *cx)
{
    weft_waker *slotw = dir == IO_READ ? &s->reader : &s->writer;
    const weft_waker *mine = weft_context_waker(cx);
    weft_waker old = WEFT_WAKER_EMPTY;
    int ret = 0;

    pthread_mutex_lock(&s->lock);
    if (s->closed || atomic_load_explicit(&s->gen, memory_order_relaxed) != gen)
        ret = -EBADF;
    else if (atomic_load_explicit(&s->r->shut, memory_order_relaxed))
        ret = -ESHUTDOWN;             /* as io_park() */
    else if (!weft_waker_will_wake(slotw, mine)) {
        old = *slotw;
        *slotw = weft_waker_clone(mine);
    }
    pthread_mutex_unlock(&s->lock);
    weft_waker_drop(&old);
    return ret;
}

void weft__io_forget(struct weft__io_source *s, uint32_t gen, uint32_t dir)
{
    weft_waker old = WEFT_WAKER_EMPTY;

    pthread_mutex_lock(&s->lock);
    if (!s->closed && atomic_load_explicit(&s->gen, memory_order_relaxed) == gen) {
        weft_waker *w = dir == IO_READ ? &s->reader : &s->writer;

        old = *w;
        *w = WEFT_WAKER_EMPTY;
    }
    pthread_mutex_unlock(&s->lock);
    weft_waker_drop(&old);
}

ssize_t weft__io_do(struct weft__io_source *s, uint32_t gen, uint32_t dir, weft_context *cx,
                    ssize_t (*op)(int fd, void *arg), void *arg, size_t want)
{
    for (;;) {
        /* acquire: pairs with dispatch's release of the bits and tick */
        uint32_t ready = atomic_load_explicit(&s->ready, memory_order_acquire);
        int fd, w;
        ssize_t r;

        if (!(ready & sticky_or(dir))) {
            w = io_park(s, gen, dir, cx);
            if (w < 0)
                return w;
            if (w == 0)
                return WEFT_IO_PENDING;
            continue;
        }
        fd = weft__io_begin(s, gen);
        if (fd < 0)
            return fd;
        if (weft__io_is_shut(s)) {
            weft__io_end(s);
            return -ESHUTDOWN;
        }
        do
            r = op(fd, arg);
        while (r == -EINTR);
        weft__io_end(s);
        if (r == -EAGAIN || r == -EWOULDBLOCK) {
            /* relaxed: a counter (s->r: set at registration, before the
             * generation we hold was handed out) */
            atomic_fetch_add_explicit(&s->r->eagain, 1, memory_order_relaxed);
            /* nothing now, whatever an older hang-up or error said: clear
             * the sticky bits too (see reactor.h), or this would loop */
            io_clear(s, sticky_or(dir), ready);
            continue;                 /* parks, or retries after a new event */
        }
        if (r > 0 && (size_t)r < want)
            io_clear(s, dir, ready);  /* drained: the next call waits for an edge */
        return r;
    }
}
