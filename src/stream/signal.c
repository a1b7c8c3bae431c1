/* SPDX-License-Identifier: MIT */
/* Signals as futures (weft/signal.h): a signalfd adopted as a stream, read
 * by one shared read future on behalf of any number of receive futures.
 *
 * Waiters. The reactor keeps one reader waker per source, so the object
 * keeps its own list and drives one read (`rd`) under its lock, polled with
 * the context of whichever receive is being polled: the reactor then holds
 * the waker of the last receive that found nothing. Whoever leaves the list
 * (a receive that got a signal, or one dropped while pending) wakes the
 * first waiter left, which polls `rd` again and so either takes the next
 * signal or stores its own waker: no wake-up is lost, at the cost of a
 * spurious poll now and then. Everything here is under `lock`; there is no
 * atomic of our own.
 *
 *   receive (any task)                    signal arrives
 *   lock; poll rd with my cx              epoll event: reactor takes the
 *     READY: unlink me; wake the first      stored waker (the last parked
 *            waiter; unlock                 receive) and wakes it; it polls
 *     PENDING: link me (my waker); unlock   and reads (or another did first:
 *                                           EAGAIN, it parks again)
 *
 * Masks: a process-wide count per signal number under mask_lock (see
 * signal.h, "Restoring"). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "util/alloc.h"
#include "net/handle.h"
#include "util/cx.h"
#include "weft/signal.h"
#include "weft/stream.h"

_Static_assert(sizeof(weft_signal_recv) <= 96, "the receive future stays small");

struct weft_signal {
    pthread_mutex_t lock;
    unsigned refs;                    /* ->lock: the owner until free + each recv */
    bool freed;                       /* ->lock */
    weft_stream *fd;                  /* ->lock: the signalfd; NULL once freed */
    weft_read rd;                     /* ->lock: the read shared by the waiters */
    bool rd_live;                     /* ->lock: rd initialised and not completed */
    weft_sync_waiter head;            /* ->lock: waiting receives (sentinel) */
    struct signalfd_siginfo buf;      /* ->lock: rd's buffer */
    sigset_t set;                     /* fixed at new */
};

/* ---- masks -------------------------------------------------------------------- */
static pthread_mutex_t mask_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned mask_refs[NSIG];      /* mask_lock: live objects catching the signal */
static bool mask_ours[NSIG];          /* mask_lock: weft blocked it: unblock at the end */

static void mask_release(const sigset_t *set)
{
    sigset_t unblock;
    bool any = false;

    sigemptyset(&unblock);
    pthread_mutex_lock(&mask_lock);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(set, sig) != 1 || mask_refs[sig] == 0)
            continue;
        if (--mask_refs[sig] == 0 && mask_ours[sig]) {
            mask_ours[sig] = false;
            sigaddset(&unblock, sig);
            any = true;
        }
    }
    /* under mask_lock: a new object blocking the same signal meanwhile must
     * not be undone by this unblock */
    if (any)
        pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
    pthread_mutex_unlock(&mask_lock);
}

static int mask_acquire(const sigset_t *set)
{
    sigset_t old;
    int err;

    pthread_mutex_lock(&mask_lock);
    err = -pthread_sigmask(SIG_BLOCK, set, &old);
    if (err == 0) {
        for (int sig = 1; sig < NSIG; sig++) {
            if (sigismember(set, sig) != 1)
                continue;
            mask_refs[sig]++;
            if (sigismember(&old, sig) != 1)
                mask_ours[sig] = true;
        }
    }
    pthread_mutex_unlock(&mask_lock);
    return err;
}

/* ---- the object ---------------------------------------------------------------- */
/* signals[0 .. n) as a set: 0, or -EINVAL. */
static int make_set(const int *signals, size_t n, sigset_t *set)
{
    sigemptyset(set);
    if (signals == NULL && n > 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int sig = signals[i];

        if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP ||
            sigaddset(set, sig) < 0)
            return -EINVAL;
    }
    return 0;
}

WEFT_API int weft_signal_block(const int *signals, size_t n)
{
    sigset_t set;
    int err = make_set(signals, n, &set);

    if (err)
        return err;
    /* blocked for good: a weft_signal made before that blocked one of them
     * must not unblock it when freed */
    pthread_mutex_lock(&mask_lock);
    err = -pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (err == 0) {
        for (int sig = 1; sig < NSIG; sig++) {
            if (sigismember(&set, sig) == 1)
                mask_ours[sig] = false;
        }
    }
    pthread_mutex_unlock(&mask_lock);
    return err;
}

WEFT_API int weft_signal_new(weft_runtime *rt, const int *signals, size_t n,
                             weft_signal **out)
{
    struct weft_signal *s;
    sigset_t setv, *set = &setv;
    int fd, err;

    if (out == NULL || n == 0 || make_set(signals, n, set) != 0)
        return -EINVAL;
    if (rt == NULL && (rt = weft_runtime_current()) == NULL)
        return -EINVAL;
    s = weft__calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    err = -pthread_mutex_init(&s->lock, NULL);
    if (err)
        goto out_free;
    s->refs = 1;
    s->head.next = s->head.prev = &s->head;
    s->set = *set;
    err = mask_acquire(set);
    if (err)
        goto out_mutex;
    fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        err = -errno;
        goto out_mask;
    }
    err = weft_fd_adopt(rt, fd, 0, &s->fd);
    if (err) {
        close(fd);                    /* adopt leaves it to us on failure */
        goto out_mask;
    }
    *out = s;
    return 0;
out_mask:
    mask_release(set);
out_mutex:
    pthread_mutex_destroy(&s->lock);
out_free:
    weft__free(s);
    return err;
}

static void sig_put(struct weft_signal *s)
{
    bool last;

    pthread_mutex_lock(&s->lock);
    last = --s->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (last) {
        pthread_mutex_destroy(&s->lock);
        weft__free(s);
    }
}

static void fill_info(const struct signalfd_siginfo *b, weft_signal_info *info)
{
    if (info == NULL)
        return;
    info->signo = (int)b->ssi_signo;
    info->code = b->ssi_code;
    info->pid = (int)b->ssi_pid;
    info->uid = b->ssi_uid;
    info->status = b->ssi_status;
    info->value = b->ssi_int;
    info->ptr = b->ssi_ptr;
}

WEFT_API int weft_signal_try_recv(weft_signal *s, weft_signal_info *info)
{
    struct signalfd_siginfo b;
    ssize_t n;
    int fd;

    if (s == NULL)
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    fd = s->freed ? -EBADF : weft_stream_fd(s->fd);
    if (fd >= 0) {
        do
            n = read(fd, &b, sizeof(b));
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof(b)) {
            fill_info(&b, info);
            fd = (int)b.ssi_signo;
        } else {
            fd = n < 0 ? -errno : -EIO;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return fd == -EWOULDBLOCK ? -EAGAIN : fd;
}

/* ->lock held. */
static void wake_first(struct weft_signal *s)
{
    if (s->head.next != &s->head)
        weft_waker_wake_by_ref(&s->head.next->waker);
}

/* ->lock held. */
static void unlink_waiter(weft_sync_waiter *w)
{
    if (w->state == 0)
        return;
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->state = 0;
    weft_waker_drop(&w->waker);
}

WEFT_API void weft_signal_free(weft_signal *s)
{
    weft_sync_waiter *w;

    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->freed) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    s->freed = true;
    if (s->rd_live) {
        weft_io_op_drop(&s->rd);      /* releases the waker the reactor holds */
        s->rd_live = false;
    }
    weft_stream_close(s->fd);
    s->fd = NULL;
    /* every waiter polls again and sees -EBADF; waking takes no lock of ours
     * (a task waker only queues the task) */
    for (w = s->head.next; w != &s->head; w = w->next)
        weft_waker_wake_by_ref(&w->waker);
    pthread_mutex_unlock(&s->lock);
    mask_release(&s->set);
    sig_put(s);
}

WEFT_API void weft_signal_recv_init(weft_signal_recv *r, weft_signal *s,
                                    weft_signal_info *info)
{
    if (r == NULL)
        return;
    memset(r, 0, sizeof(*r));
    r->info = info;
    r->sig = s;
    if (s != NULL) {
        pthread_mutex_lock(&s->lock);
        s->refs++;
        pthread_mutex_unlock(&s->lock);
    }
}

static weft_poll recv_finish(weft_signal_recv *r, int res, int *result)
{
    r->done = 1;
    r->result = res;
    if (result)
        *result = res;
    return WEFT_READY;
}

WEFT_API weft_poll weft_signal_recv_poll(weft_signal_recv *r, weft_context *cx, int *result)
{
    struct weft_signal *s;
    const weft_waker *mine;
    ssize_t n;
    int res;

    if (r == NULL) {                  /* a NULL future: only *result */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    s = r->sig;
    if (r->done)
        return recv_finish(r, r->result, result);
    if (s == NULL)
        return recv_finish(r, -EINVAL, result);
    if (weft__cx_bad(cx)) {           /* misuse (weft/core.h): nothing taken */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    pthread_mutex_lock(&s->lock);
    if (s->freed) {
        res = -EBADF;
        goto out_done;
    }
    if (!s->rd_live) {
        weft_read_init(&s->rd, s->fd, &s->buf, sizeof(s->buf));
        s->rd_live = true;
    }
    if (weft__io_op_poll(&s->rd, cx, &n) == WEFT_PENDING) {
        mine = weft_context_waker(cx);
        if (r->w.state == 0) {
            r->w.waker = weft_waker_clone(mine);
            r->w.next = &s->head;
            r->w.prev = s->head.prev;
            s->head.prev->next = &r->w;
            s->head.prev = &r->w;
            r->w.state = 1;
        } else if (!weft_waker_will_wake(&r->w.waker, mine)) {
            weft_waker_drop(&r->w.waker);
            r->w.waker = weft_waker_clone(mine);
        }
        pthread_mutex_unlock(&s->lock);
        return WEFT_PENDING;
    }
    weft_io_op_drop(&s->rd);          /* completed: resets it */
    s->rd_live = false;
    if (n == (ssize_t)sizeof(s->buf)) {
        fill_info(&s->buf, r->info);
        res = (int)s->buf.ssi_signo;
    } else {
        res = n < 0 ? (int)n : -EIO;  /* -EBADF, -ESHUTDOWN; never short */
    }
out_done:
    unlink_waiter(&r->w);
    wake_first(s);                    /* the next one takes over the read */
    pthread_mutex_unlock(&s->lock);
    return recv_finish(r, res, result);
}

WEFT_API void weft_signal_recv_drop(weft_signal_recv *r)
{
    struct weft_signal *s;

    if (r == NULL || (s = r->sig) == NULL)
        return;
    r->sig = NULL;
    pthread_mutex_lock(&s->lock);
    if (r->w.state != 0) {
        unlink_waiter(&r->w);
        if (s->head.next == &s->head) {
            /* nobody waits any more: take our waker back from the reactor */
            if (s->rd_live) {
                weft_io_op_drop(&s->rd);
                s->rd_live = false;
            }
        } else {
            wake_first(s);            /* the reactor may hold our waker: hand over */
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (!r->done) {
        r->done = 1;
        r->result = -ECANCELED;
    }
    sig_put(s);
}

static weft_poll recv_thunk(void *self, weft_context *cx, void *out)
{
    return weft_signal_recv_poll(self, cx, out);
}

static void recv_drop_thunk(void *self)
{
    weft_signal_recv_drop(self);
}

WEFT_API const weft_future_type weft_signal_recv_future = {
    .size = sizeof(weft_signal_recv),
    .align = _Alignof(weft_signal_recv),
    .poll = recv_thunk,
    .drop = recv_drop_thunk,
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
    .name = "weft_signal_recv",
};
