/* SPDX-License-Identifier: MIT */
/* The io_uring ring of the reactor: see uring.h. */
#include <errno.h>
#include <linux/io_uring.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "io/uring.h"
#include "util/alloc.h"

/* Headers older than the kernel: the feature bit of Linux 6.3 (registered
 * rings), the mark by which rx_setup() knows multishot receive (6.0). */
#ifndef IORING_FEAT_REG_REG_RING
#define IORING_FEAT_REG_REG_RING (1U << 13)
#endif
/* Receive buffers need headers of Linux 6.0 or later to build. */
#ifdef IORING_RECV_MULTISHOT
#define HAVE_RX 1
#else
#define HAVE_RX 0
#endif

#define SQ_ENTRIES 256u
#define CQ_ENTRIES 8192u

#define KEY_WAKE (URING_KEY_OWN | 1u)
#define POLLIN_BIT 0x001u             /* POLLIN (<poll.h> would clash with <linux/...>) */
#define KEY_REMOVE (URING_KEY_OWN | 2u)

struct weft__uring {
    int fd;
    unsigned sq_entries, sq_mask, cq_mask;
    /* shared with the kernel (one mapping: IORING_FEAT_SINGLE_MMAP) */
    unsigned *sq_khead, *sq_ktail, *sq_flags, *sq_array;
    unsigned *cq_khead, *cq_ktail;
    struct io_uring_cqe *cqes;
    struct io_uring_sqe *sqes;
    void *ring;
    size_t ring_sz, sqes_sz;

    int wake_fd;                      /* eventfd: others wake the owner's wait */
    /* SINGLE_ISSUER + DEFER_TASKRUN (fixed at setup; see uring.h, "One
     * issuer"): only the owner enters the ring */
    bool single;
    void (*kick)(void *);             /* fixed before the first request */
    void *kick_ctx;
    bool (*is_poller)(void *);        /* fixed before the first request */
    void *poller_ctx;

    pthread_mutex_t lock;             /* the SQ and the fields below */
    unsigned sq_tail;                 /* ->lock: the next free entry */
    bool waiting;                     /* ->lock: the owner blocks in the wait */
    bool wake_sent;                   /* ->lock: a wake is on its way to it */
    bool wake_pending;                /* ->lock: a wake came while nobody waited */
    bool has_owner;                   /* ->lock: `owner` is set */
    pthread_t owner;                  /* ->lock: the thread that submits and waits */
    uint64_t owner_enters;            /* ->lock: the owner's reaps */
    uint64_t seen_enters;             /* ->lock: owner_enters at others' last look */
    bool dead;                        /* ->lock: single, and the owner is gone */

    /* receive buffers (uring.h); rx_ring NULL: none. The ring's tail is
     * ours (rx_lock); the kernel moves its head as it takes buffers */
    struct io_uring_buf_ring *rx_ring;
    char *rx_mem;
    pthread_mutex_t rx_lock;
    uint16_t rx_tail;                 /* ->rx_lock */
};

#if HAVE_RX
#define RX_RING_SZ (URING_RX_BUFS * sizeof(struct io_uring_buf))
#endif
#define RX_MEM_SZ ((size_t)URING_RX_BUFS * URING_RX_SIZE)
_Static_assert((URING_RX_BUFS & (URING_RX_BUFS - 1)) == 0 && URING_RX_BUFS <= 32768,
               "a power of two that fits the 16-bit ring");

static _Atomic int fail_setup;
static _Atomic bool no_rx;

void weft__uring_fail_setup(int err)
{
    atomic_store_explicit(&fail_setup, err, memory_order_relaxed);
}

void weft__uring_no_rx(bool off)
{
    atomic_store_explicit(&no_rx, off, memory_order_relaxed);
}

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned submit, unsigned complete, unsigned flags, void *arg,
                     size_t argsz)
{
    return (int)syscall(__NR_io_uring_enter, fd, submit, complete, flags, arg, argsz);
}

#if HAVE_RX
/* ->rx_lock held (or no other thread yet): buffer `bid` into the ring's
 * next free entry. Entry 0 shares its last 16 bits with the ring's tail:
 * only the named fields are written. */
static void rx_add(struct weft__uring *u, uint16_t bid)
{
    struct io_uring_buf *b = &u->rx_ring->bufs[u->rx_tail & (URING_RX_BUFS - 1)];

    b->addr = (uint64_t)(uintptr_t)(u->rx_mem + (size_t)bid * URING_RX_SIZE);
    b->len = URING_RX_SIZE;
    b->bid = bid;
    u->rx_tail++;
}

/* The receive buffers, when the kernel has multishot receive: registered
 * and all given to the kernel; else none (the reactor reads by readiness). */
static void rx_setup(struct weft__uring *u, unsigned features)
{
    struct io_uring_buf_reg reg;
    void *ring, *mem;

    if (!(features & IORING_FEAT_REG_REG_RING) ||
        atomic_load_explicit(&no_rx, memory_order_relaxed))
        return;                       /* before 6.3: no multishot receive known */
    ring = mmap(NULL, RX_RING_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ring == MAP_FAILED)
        return;
    mem = mmap(NULL, RX_MEM_SZ, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
        munmap(ring, RX_RING_SZ);
        return;
    }
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)ring;
    reg.ring_entries = URING_RX_BUFS;
    reg.bgid = 0;
    if (syscall(__NR_io_uring_register, u->fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) {
        munmap(mem, RX_MEM_SZ);
        munmap(ring, RX_RING_SZ);
        return;
    }
    u->rx_ring = ring;
    u->rx_mem = mem;
    u->rx_tail = 0;
    for (unsigned i = 0; i < URING_RX_BUFS; i++)
        rx_add(u, (uint16_t)i);
    /* release: the kernel reads the entries after it sees the tail */
    __atomic_store_n(&u->rx_ring->tail, u->rx_tail, __ATOMIC_RELEASE);
}
#else
static void rx_setup(struct weft__uring *u, unsigned features)
{
    (void)u;
    (void)features;                   /* built without: readiness only */
}
#endif

char *weft__uring_rx_mem(struct weft__uring *u)
{
    return u->rx_mem;
}

void weft__uring_rx_put(struct weft__uring *u, const uint16_t *bids, unsigned n)
{
#if HAVE_RX
    if (n == 0 || u->rx_ring == NULL)
        return;
    pthread_mutex_lock(&u->rx_lock);
    for (unsigned i = 0; i < n; i++)
        rx_add(u, bids[i]);
    /* release: as in rx_setup() */
    __atomic_store_n(&u->rx_ring->tail, u->rx_tail, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&u->rx_lock);
#else
    (void)u;
    (void)bids;
    (void)n;
#endif
}

int weft__uring_new(struct weft__uring **out, bool single)
{
    struct io_uring_params p;
    struct weft__uring *u;
    const unsigned need = IORING_FEAT_SINGLE_MMAP | IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG |
                          IORING_FEAT_RSRC_TAGS;   /* RSRC_TAGS: 5.13, multishot poll */
    size_t sq_sz, cq_sz;
    int fd, err = atomic_load_explicit(&fail_setup, memory_order_relaxed);

    if (err)
        return err < 0 ? err : -err;
    memset(&p, 0, sizeof(p));
    /* COOP_TASKRUN (5.19): a completion owed to the owner while it runs
     * in user space waits for its next entry into the kernel (any system
     * call, or the next timer tick) instead of an interrupt; a sleeping
     * owner is still woken. Older kernels: without it. */
    fd = -1;
    if (single) {
        /* One issuer (uring.h): task work waits in a list of the ring's
         * until the owner enters it, and is run there in one batch, with
         * completions posted without the CQ lock; TASKRUN_FLAG says in
         * user space that some waits. Disabled until the owner enables it
         * (the kernel takes the enabling thread as the issuer). Before
         * Linux 6.1: EINVAL, and the ring below. */
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SINGLE_ISSUER |
                  IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
                  IORING_SETUP_R_DISABLED;
        p.cq_entries = CQ_ENTRIES;
        fd = sys_setup(SQ_ENTRIES, &p);
        if (fd < 0) {
            if (errno != EINVAL)
                return -errno;
            single = false;
            memset(&p, 0, sizeof(p));
        }
    }
    if (!single) {
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_COOP_TASKRUN;
        p.cq_entries = CQ_ENTRIES;
        fd = sys_setup(SQ_ENTRIES, &p);
    }
    if (fd < 0 && errno == EINVAL) {
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = CQ_ENTRIES;
        fd = sys_setup(SQ_ENTRIES, &p);
    }
    if (fd < 0)
        return -errno;
    if ((p.features & need) != need) {
        close(fd);
        return -EOPNOTSUPP;
    }
    u = weft__calloc(1, sizeof(*u));
    if (u == NULL) {
        close(fd);
        return -ENOMEM;
    }
    u->fd = fd;
    u->single = single;
    u->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (u->wake_fd < 0) {
        err = -errno;
        goto out_fd;
    }
    sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    u->ring_sz = sq_sz > cq_sz ? sq_sz : cq_sz;
    u->ring = mmap(NULL, u->ring_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                   IORING_OFF_SQ_RING);
    if (u->ring == MAP_FAILED) {
        err = -errno;
        goto out_fd;
    }
    u->sqes_sz = p.sq_entries * sizeof(struct io_uring_sqe);
    u->sqes = mmap(NULL, u->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                   IORING_OFF_SQES);
    if (u->sqes == MAP_FAILED) {
        err = -errno;
        munmap(u->ring, u->ring_sz);
        goto out_fd;
    }
    u->sq_entries = p.sq_entries;
    u->sq_khead = (unsigned *)((char *)u->ring + p.sq_off.head);
    u->sq_ktail = (unsigned *)((char *)u->ring + p.sq_off.tail);
    u->sq_mask = *(unsigned *)((char *)u->ring + p.sq_off.ring_mask);
    u->sq_flags = (unsigned *)((char *)u->ring + p.sq_off.flags);
    u->sq_array = (unsigned *)((char *)u->ring + p.sq_off.array);
    u->cq_khead = (unsigned *)((char *)u->ring + p.cq_off.head);
    u->cq_ktail = (unsigned *)((char *)u->ring + p.cq_off.tail);
    u->cq_mask = *(unsigned *)((char *)u->ring + p.cq_off.ring_mask);
    u->cqes = (struct io_uring_cqe *)((char *)u->ring + p.cq_off.cqes);
    for (unsigned i = 0; i < p.sq_entries; i++)
        u->sq_array[i] = i;           /* entry i of the ring is sqes[i], always */
    u->sq_tail = *u->sq_ktail;
    pthread_mutex_init(&u->lock, NULL);
    pthread_mutex_init(&u->rx_lock, NULL);
    rx_setup(u, p.features);
    *out = u;
    return 0;
out_fd:
    if (u->wake_fd >= 0)
        close(u->wake_fd);
    close(fd);
    weft__free(u);
    return err;
}

void weft__uring_free(struct weft__uring *u)
{
    if (u == NULL)
        return;
    munmap(u->sqes, u->sqes_sz);
    munmap(u->ring, u->ring_sz);
    /* the ring first: the kernel cancels what is armed and then no longer
     * writes into the buffers (every receive is done or cancelled: the
     * reactor is freed when no source is open any more) */
    close(u->fd);
    close(u->wake_fd);
#if HAVE_RX
    if (u->rx_ring) {
        munmap(u->rx_mem, RX_MEM_SZ);
        munmap(u->rx_ring, RX_RING_SZ);
    }
#endif
    pthread_mutex_destroy(&u->rx_lock);
    pthread_mutex_destroy(&u->lock);
    weft__free(u);
}

static bool is_owner(struct weft__uring *u);
static bool defer_locked(struct weft__uring *u);
static void own_locked(struct weft__uring *u);

/* ->lock held: one issuer, no owner yet, and the caller is the one poller
 * (its task queues requests before its worker ever looked at the ring):
 * it becomes the owner now, else nobody could submit them. */
static void own_if_poller(struct weft__uring *u)
{
    if (u->single && !u->has_owner && !u->dead && u->is_poller &&
        u->is_poller(u->poller_ctx))
        own_locked(u);
}

/* ->lock held: entries queued and not yet taken by the kernel. */
static unsigned queued(struct weft__uring *u)
{
    /* acquire: the kernel has read the entries before it moved its head */
    return u->sq_tail - __atomic_load_n(u->sq_khead, __ATOMIC_ACQUIRE);
}

/* ->lock held: submit what is queued (no wait). 0 or -errno. */
static int submit_locked(struct weft__uring *u)
{
    unsigned n = queued(u);
    int r;

    if (n == 0)
        return 0;
    if (u->single && !is_owner(u))
        return 0;                     /* the owner's (done_queuing) */
    /* one issuer: GETEVENTS (no wait) also runs the task work the kernel
     * keeps for the owner, a cancel's among it: until it runs, a
     * cancelled request holds its file */
    do
        r = sys_enter(u->fd, n, 0, u->single ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

/* ->lock held: a zeroed entry, submitting to make room if the queue is
 * full (the kernel takes entries at once: a full queue only means nobody
 * entered for a while). */
static struct io_uring_sqe *sqe_get(struct weft__uring *u)
{
    struct io_uring_sqe *sqe;

    own_if_poller(u);
    while (queued(u) >= u->sq_entries) {
        if (u->single && !is_owner(u)) {
            /* only the owner can make room: ask it, let it run */
            bool kick = defer_locked(u);

            pthread_mutex_unlock(&u->lock);
            if (kick && u->kick)
                u->kick(u->kick_ctx);
            sched_yield();
            pthread_mutex_lock(&u->lock);
            continue;
        }
        if (submit_locked(u) < 0 && queued(u) >= u->sq_entries) {
            /* -EBUSY/-EAGAIN: completions must be reaped first; the poller
             * does that without this lock */
            pthread_mutex_unlock(&u->lock);
            sched_yield();
            pthread_mutex_lock(&u->lock);
        }
    }
    sqe = &u->sqes[u->sq_tail & u->sq_mask];
    memset(sqe, 0, sizeof(*sqe));
    return sqe;
}

/* ->lock held: publish the entry filled last. */
static void sqe_commit(struct weft__uring *u)
{
    u->sq_tail++;
    /* release: the kernel reads the entry after it sees the tail */
    __atomic_store_n(u->sq_ktail, u->sq_tail, __ATOMIC_RELEASE);
}

static void prep_poll(struct io_uring_sqe *sqe, int fd, uint32_t mask, bool multi, uint64_t key)
{
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = fd;
    sqe->poll32_events = mask;        /* little-endian hosts (x86-64, arm64) */
    sqe->len = multi ? IORING_POLL_ADD_MULTI : 0;
    sqe->user_data = key;
}

/* ->lock held: the caller is the owner. */
static bool is_owner(struct weft__uring *u)
{
    return u->has_owner && pthread_equal(u->owner, pthread_self());
}

/* ->lock held: wake the owner's wait, once per wait (see uring.h). The
 * eventfd's poll was submitted by the owner, so its completion is made in
 * the owner's own wait: one system call here, one wake-up there, as
 * epoll's eventfd. */
static void wake_locked(struct weft__uring *u)
{
    uint64_t one = 1;

    if (!u->waiting) {
        u->wake_pending = true;       /* the next wait returns at once */
    } else if (!u->wake_sent) {
        u->wake_sent = true;
        if (write(u->wake_fd, &one, sizeof(one)) < 0) {
            /* EAGAIN: the counter is saturated, the poll fires anyway */
        }
    }
}

/* ->lock held, entries queued: submit now if asked (closes: the kernel
 * holds a polled file until the cancel is submitted, and the owner may
 * leave the ring for its condition variable once the last source is
 * closed, submitting nothing more); else, if the owner blocks in the
 * wait, wake it to submit them (it would not come back for them); else
 * they go with the owner's next reap. */
static int done_queuing(struct weft__uring *u, bool now, bool *kick)
{
    if (u->single && !is_owner(u)) {
        /* only the owner may enter: a close's cancel, too, waits for it */
        if (now)
            *kick = defer_locked(u);
        else if (u->waiting)
            wake_locked(u);
        return 0;
    }
    if (now)
        return submit_locked(u);
    if (u->waiting)
        wake_locked(u);
    return 0;
}

/* ->lock held, single, not the owner, entries queued: have the owner
 * submit them soon. Waiting: its eventfd; else its next wait returns at
 * once (wake_pending), and true: the caller kicks it after unlocking (it
 * may sleep on its condition variable, with no source left open: the
 * reactor then counts queued entries as work, weft__uring_owed()). Gone
 * (the runtime's worker exited: the kernel cancelled its requests, nobody
 * will submit): the entries are dropped. */
static bool defer_locked(struct weft__uring *u)
{
    if (u->dead) {
        /* nobody enters the ring any more, so the kernel reads neither */
        u->sq_tail = __atomic_load_n(u->sq_khead, __ATOMIC_ACQUIRE);
        __atomic_store_n(u->sq_ktail, u->sq_tail, __ATOMIC_RELEASE);
        return false;
    }
    if (u->waiting) {
        wake_locked(u);
        return false;
    }
    u->wake_pending = true;
    return true;
}

static void kick_after(struct weft__uring *u, bool kick)
{
    if (kick && u->kick)
        u->kick(u->kick_ctx);
}

int weft__uring_poll(struct weft__uring *u, int fd, uint32_t mask, bool multi, uint64_t key,
                     bool now, _Atomic uint32_t *arm, uint32_t want)
{
    int r = 0;
    bool kick = false;

    pthread_mutex_lock(&u->lock);
    if (arm && atomic_load_explicit(arm, memory_order_relaxed) != want) {
        pthread_mutex_unlock(&u->lock);
        return 0;                     /* a re-arm came first: its poll stands */
    }
    prep_poll(sqe_get(u), fd, mask, multi, key);
    sqe_commit(u);
    r = done_queuing(u, now, &kick);
    pthread_mutex_unlock(&u->lock);
    kick_after(u, kick);
    return r;
}

int weft__uring_repoll(struct weft__uring *u, uint64_t old, int fd, uint32_t mask, uint64_t key,
                       bool multi, bool now, _Atomic uint32_t *arm, uint32_t set)
{
    struct io_uring_sqe *sqe;
    int r;
    bool kick = false;

    pthread_mutex_lock(&u->lock);
    if (arm)
        atomic_store_explicit(arm, set, memory_order_relaxed);
    sqe = sqe_get(u);
    /* a cancel, not IORING_OP_POLL_REMOVE: a removal fails (EALREADY) while
     * the poll's wake-up is being handled, and a multishot poll would stay
     * armed, holding its file; a cancel marks it and it ends in any case */
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = -1;
    sqe->addr = old;
    sqe->cancel_flags = IORING_ASYNC_CANCEL_ALL;
    sqe->user_data = KEY_REMOVE;
    sqe_commit(u);
    if (fd >= 0) {
        prep_poll(sqe_get(u), fd, mask, multi, key);
        sqe_commit(u);
    }
    r = done_queuing(u, now, &kick);
    pthread_mutex_unlock(&u->lock);
    kick_after(u, kick);
    return r;
}

#if defined(__SANITIZE_THREAD__)
#define URING_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define URING_TSAN 1
#endif
#endif

void weft__uring_rx_acquire(struct weft__uring *u)
{
#ifdef URING_TSAN
    pthread_mutex_lock(&u->rx_lock);
    pthread_mutex_unlock(&u->rx_lock);
#else
    /* the order comes through the kernel: a reader's use of a buffer comes
     * before its release store of the ring's tail, which the kernel reads
     * (acquire) before it fills the buffer and publishes the completion
     * (release) that the poller reads (acquire) */
    (void)u;
#endif
}

int weft__uring_recv(struct weft__uring *u, int fd, uint64_t key)
{
#if HAVE_RX
    struct io_uring_sqe *sqe;
    int r;
    bool kick = false;

    if (u->rx_ring == NULL)
        return -EOPNOTSUPP;
    pthread_mutex_lock(&u->lock);
    sqe = sqe_get(u);
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = fd;
    sqe->ioprio = IORING_RECV_MULTISHOT;
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    sqe->user_data = key;
    sqe_commit(u);
    r = done_queuing(u, false, &kick);
    pthread_mutex_unlock(&u->lock);
    kick_after(u, kick);
    return r;
#else
    (void)u;
    (void)fd;
    (void)key;
    return -EOPNOTSUPP;
#endif
}

bool weft__uring_owed(struct weft__uring *u)
{
    /* relaxed: a hint for the owner's park, see defer_locked(); task work
     * waiting for the owner counts too (a cancel's: the cancelled
     * request holds its file until it runs) */
    return u->single && (__atomic_load_n(u->sq_ktail, __ATOMIC_RELAXED) !=
                             __atomic_load_n(u->sq_khead, __ATOMIC_RELAXED) ||
                         (__atomic_load_n(u->sq_flags, __ATOMIC_RELAXED) & IORING_SQ_TASKRUN));
}

void weft__uring_set_hooks(struct weft__uring *u, void (*kick)(void *), void *kick_ctx,
                           bool (*is_poller)(void *), void *poller_ctx)
{
    u->kick = kick;
    u->kick_ctx = kick_ctx;
    u->is_poller = is_poller;
    u->poller_ctx = poller_ctx;
}

void weft__uring_shut(struct weft__uring *u)
{
    pthread_mutex_lock(&u->lock);
    if (u->single) {
        u->dead = true;
        if (!is_owner(u) && queued(u))
            (void)defer_locked(u);    /* drops them */
    }
    pthread_mutex_unlock(&u->lock);
}

bool weft__uring_pending(struct weft__uring *u)
{
    /* relaxed: a hint; the reap that follows reads the CQ with acquire */
    return __atomic_load_n(u->cq_ktail, __ATOMIC_RELAXED) !=
               __atomic_load_n(u->cq_khead, __ATOMIC_RELAXED) ||
           (u->single && (__atomic_load_n(u->sq_flags, __ATOMIC_RELAXED) & IORING_SQ_TASKRUN));
}

void weft__uring_wake(struct weft__uring *u)
{
    pthread_mutex_lock(&u->lock);
    wake_locked(u);
    pthread_mutex_unlock(&u->lock);
}

/* ->lock held: queue the multishot poll of the wake eventfd (the owner
 * submits it: its completions are the owner's). */
static void arm_wake(struct weft__uring *u)
{
    prep_poll(sqe_get(u), u->wake_fd, POLLIN_BIT, true, KEY_WAKE);
    sqe_commit(u);
}

/* ->lock held, no owner yet: the caller becomes it. One issuer: it
 * enables the ring, and the kernel takes it as the ring's only issuer. */
static void own_locked(struct weft__uring *u)
{
    u->has_owner = true;
    u->owner = pthread_self();
    if (u->single)
        (void)syscall(__NR_io_uring_register, u->fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    arm_wake(u);
}

int weft__uring_claim(struct weft__uring *u, bool take)
{
    int r = 1;

    pthread_mutex_lock(&u->lock);
    if (!u->has_owner) {
        own_locked(u);
    } else if (!pthread_equal(u->owner, pthread_self())) {
        /* one issuer: the kernel's, for the ring's life */
        if (take && !u->waiting && !u->single)
            u->owner = pthread_self();
        else
            r = -1;
    }
    pthread_mutex_unlock(&u->lock);
    return r;
}

int weft__uring_reap(struct weft__uring *u, int64_t timeout_ns,
                     struct weft__uring_cqe batch[URING_BATCH])
{
    unsigned head, tail, n = 0, submit;
    bool wait, owner, rearm_wake = false;

    pthread_mutex_lock(&u->lock);
    if (u->single && !u->has_owner && !u->dead)
        own_locked(u);                /* one issuer: its one poller (uring.h) */
    owner = is_owner(u);
    wait = timeout_ns != 0 && owner;  /* only the owner blocks (see uring.h) */
    if (wait && u->wake_pending) {
        u->wake_pending = false;      /* consumed by a wait that would block */
        wait = false;
    }
    /* acquire: completions already there need no wait */
    if (wait && __atomic_load_n(u->cq_ktail, __ATOMIC_ACQUIRE) != *u->cq_khead)
        wait = false;
    if (wait) {
        u->waiting = true;
        u->wake_sent = false;
    }
    submit = queued(u);
    if (owner) {
        u->owner_enters++;
    } else if (u->single) {
        submit = 0;
    } else if (submit) {
        /* another thread's look: the queued requests are the owner's to
         * submit (a waiting owner was woken for them), unless it runs and
         * has not reaped since this thread's last look (a long poll holds
         * it), or there is no owner yet: then now, so that no request
         * waits on one busy thread */
        if (u->waiting || (u->has_owner && u->owner_enters != u->seen_enters))
            submit = 0;
        u->seen_enters = u->owner_enters;
    }
    pthread_mutex_unlock(&u->lock);

    if (wait) {
        struct __kernel_timespec ts = { 0, 0 };
        struct io_uring_getevents_arg arg;

        memset(&arg, 0, sizeof(arg));
        if (timeout_ns > 0) {
            ts.tv_sec = timeout_ns / 1000000000;
            ts.tv_nsec = timeout_ns % 1000000000;
            arg.ts = (uint64_t)(uintptr_t)&ts;
        }
        /* ETIME (timed out), EINTR (a signal): the same as no events */
        (void)sys_enter(u->fd, submit, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
                        sizeof(arg));
        pthread_mutex_lock(&u->lock);
        u->waiting = false;
        /* one issuer: what others queued meanwhile (they woke this wait
         * for it) is submitted now; this thread may next sleep on its
         * condition variable, with the last source closed */
        if (u->single && queued(u))
            (void)submit_locked(u);
        pthread_mutex_unlock(&u->lock);
    } else if ((!u->single || owner) &&
               (submit || (__atomic_load_n(u->sq_flags, __ATOMIC_RELAXED) &
                           (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)))) {
        /* GETEVENTS with nothing to wait for flushes completions the
         * kernel kept aside when the CQ was full, and runs the task work
         * of a one-issuer ring (IORING_SQ_TASKRUN: some waits) */
        (void)sys_enter(u->fd, submit, 0, IORING_ENTER_GETEVENTS, NULL, 0);
    }

    head = *u->cq_khead;              /* ours alone: the one poller */
    /* acquire: the entries are written before the tail moves */
    tail = __atomic_load_n(u->cq_ktail, __ATOMIC_ACQUIRE);
    while (head != tail && n < URING_BATCH) {
        const struct io_uring_cqe *c = &u->cqes[head & u->cq_mask];

        head++;
        if (c->user_data & URING_KEY_OWN) {
            /* a wake-up, a removal's result; the wake poll ended (the
             * kernel stops a multishot poll it cannot post for) */
            if (c->user_data == KEY_WAKE && !(c->flags & IORING_CQE_F_MORE))
                rearm_wake = true;
            continue;
        }
        batch[n].key = c->user_data;
        batch[n].res = c->res;
        batch[n].flags = c->flags;
        n++;
    }
    /* release: the kernel may reuse the entries once it sees the head */
    __atomic_store_n(u->cq_khead, head, __ATOMIC_RELEASE);
    if (rearm_wake) {
        pthread_mutex_lock(&u->lock);
        arm_wake(u);                  /* with the owner's next reap */
        /* unless it already waits (another thread reaped the end): its
         * wake-ups need the poll armed now, so submit it here */
        if (u->waiting || (u->single && owner))
            (void)submit_locked(u);
        pthread_mutex_unlock(&u->lock);
    }
    return (int)n;
}
