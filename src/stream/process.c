// SPDX-License-Identifier: MIT
/* Child processes (weft/process.h): posix_spawn, pipes as streams, and the
 * child watcher that reaps every child.
 *
 * A process object is reference-counted: the owner's handle, each wait
 * future, and the watcher's entry (held from spawn until the child is
 * reaped). So the object always outlives its child's zombie, whatever the
 * owner does, and the watcher alone decides when its entry goes.
 *
 * Reaping. Whoever reaps does it under the process's lock with
 * waitid(P_PID, WNOHANG) and records the status with `reaped` in the same
 * critical section: a wait poll (its own look, so an exit before the
 * first poll needs no event), or the watcher (on a pidfd event, or a
 * SIGCHLD sweep). A kill takes the same lock and signals only while
 * `reaped` is clear: the process id cannot be recycled before the reap,
 * which comes after it under the lock.
 *
 *   wait poll (any thread)                watcher thread
 *   lock p                                pidfd readable / SIGCHLD sweep
 *   waitid: exited? record, wake all      lock p
 *     waiters; unlock; READY              waitid: exited? record, wake all
 *   else link me (my waker); unlock;        waiters (one of them may be me)
 *     PENDING                             unlock p
 *
 * Both sides look under the lock, so an exit is seen either by the poll's
 * look or by the watcher's, which then finds the waiter linked.
 *
 * Locks: watcher.lock -> p->lock (the watcher looks at a child while it
 * holds its list); nothing takes them in the other order. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/handle.h"
#include "util/alloc.h"
#include "util/cx.h"
#include "weft/process.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define SWEEP_MS 100                  /* SIGCHLD fallback: look anyway this often */

_Static_assert(sizeof(weft_process_wait) <= 96, "the wait future stays small");

struct weft_process {
    pthread_mutex_t lock;
    _Atomic unsigned refs;            /* owner + wait futures + the watcher's entry */
    pid_t pid;                        /* fixed at spawn */
    unsigned flags;                   /* fixed at spawn */
    int pidfd;                        /* ->lock; -1: none (fallback) or closed */
    bool reaped;                      /* ->lock: status is final */
    bool lost;                        /* ->lock: reaped by someone else (ECHILD) */
    weft_process_status status;       /* ->lock, once reaped */
    weft_sync_waiter head;            /* ->lock: pending waits (sentinel) */
    weft_stream *stdio[3];            /* ->lock: parent's pipe ends not taken */
    struct weft_process *wnext, *wprev;   /* watcher.lock: the watcher's list */
};

static void proc_put(struct weft_process *p)
{
    /* acq_rel: the last put sees every write made under other references */
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (p->pidfd >= 0)
        close(p->pidfd);
    pthread_mutex_destroy(&p->lock);
    weft__free(p);
}

static void proc_get(struct weft_process *p)
{
    /* relaxed: the caller holds a reference already */
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

/* ->lock held: look whether the child has exited; if so record its status
 * and wake every pending wait. */
static void proc_look(struct weft_process *p)
{
    siginfo_t si;
    int r;

    if (p->reaped)
        return;
    memset(&si, 0, sizeof(si));
    do
        r = waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        if (errno != ECHILD)
            return;                   /* cannot happen with valid arguments */
        p->lost = true;               /* somebody else reaped it */
        p->status.code = -1;
        p->status.signal = 0;
    } else if (si.si_pid == 0) {
        return;                       /* still running */
    } else if (si.si_code == CLD_EXITED) {
        p->status.code = si.si_status & 0xff;
        p->status.signal = 0;
    } else {                          /* CLD_KILLED, CLD_DUMPED */
        p->status.code = -1;
        p->status.signal = si.si_status;
    }
    p->reaped = true;
    /* a task waker only queues its task: no lock of ours is taken */
    for (weft_sync_waiter *w = p->head.next; w != &p->head; w = w->next)
        weft_waker_wake_by_ref(&w->waker);
}

/* ->lock held: signal the child unless reaped. */
static int proc_signal(struct weft_process *p, int sig)
{
    if (p->reaped)
        return -ESRCH;
    if (p->pidfd >= 0) {
        if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) == 0)
            return 0;
        if (errno != ENOSYS)
            return -errno;
    }
    /* not reaped: the id is still this child's (a zombie keeps it) */
    return kill(p->pid, sig) == 0 ? 0 : -errno;
}

/* ---- the child watcher ---------------------------------------------------------
 * One process-wide thread, running while it has children to reap. Its list
 * holds a reference to each; the thread removes an entry (and only the
 * thread does) once the child is reaped. Children with a pidfd are in the
 * epoll set (data: the process); the others are looked at on each SIGCHLD
 * (the handler writes to chld_pipe, also in the set) and every SWEEP_MS.
 * The thread exits, under the lock, when its list is empty; the next spawn
 * starts a new one. */
static struct {
    pthread_mutex_t lock;
    bool running;                     /* ->lock: a thread owns epfd */
    int epfd;                         /* ->lock: valid while running */
    struct weft_process *head;        /* ->lock: children not reaped yet */
    unsigned nsweep;                  /* ->lock: of which without a pidfd */
    bool handler;                     /* ->lock: the SIGCHLD handler is installed */
} watcher = { .lock = PTHREAD_MUTEX_INITIALIZER, .epfd = -1 };

/* Made once, with the handler, never closed: the handler may run at any time. */
static int chld_pipe[2] = { -1, -1 };
static struct sigaction chld_old;     /* the handler before ours (set before install) */
static char chld_mark;                /* epoll data of chld_pipe[0] */

static void on_sigchld(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    char b = 0;
    ssize_t n;

    n = write(chld_pipe[1], &b, 1);   /* non-blocking: a full pipe is enough */
    (void)n;
    if (chld_old.sa_flags & SA_SIGINFO) {
        if (chld_old.sa_sigaction != NULL)
            chld_old.sa_sigaction(sig, si, uc);
    } else if (chld_old.sa_handler != SIG_DFL && chld_old.sa_handler != SIG_IGN &&
               chld_old.sa_handler != NULL) {
        chld_old.sa_handler(sig);
    }
    errno = saved;
}

/* watcher.lock held: the SIGCHLD handler, once per process. */
static int install_handler(void)
{
    struct sigaction sa;

    if (watcher.handler)
        return 0;
    if (pipe2(chld_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigchld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGCHLD, NULL, &chld_old) < 0 || sigaction(SIGCHLD, &sa, NULL) < 0) {
        int err = -errno;

        close(chld_pipe[0]);
        close(chld_pipe[1]);
        chld_pipe[0] = chld_pipe[1] = -1;
        return err;
    }
    watcher.handler = true;
    return 0;
}

/* watcher.lock held: add the SIGCHLD pipe to the running thread's set. */
static int watch_pipe(void)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &chld_mark };

    if (epoll_ctl(watcher.epfd, EPOLL_CTL_ADD, chld_pipe[0], &ev) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* watcher.lock held: the child is reaped; drop its entry. */
static void watcher_remove(struct weft_process *p)
{
    pthread_mutex_lock(&p->lock);
    if (p->pidfd >= 0) {
        epoll_ctl(watcher.epfd, EPOLL_CTL_DEL, p->pidfd, NULL);
        close(p->pidfd);
        p->pidfd = -1;
    } else {
        watcher.nsweep--;
    }
    pthread_mutex_unlock(&p->lock);
    if (p->wprev)
        p->wprev->wnext = p->wnext;
    else
        watcher.head = p->wnext;
    if (p->wnext)
        p->wnext->wprev = p->wprev;
    p->wnext = p->wprev = NULL;
    proc_put(p);
}

/* watcher.lock held: look at one child; drop it if reaped. */
static void watcher_look(struct weft_process *p)
{
    bool reaped;

    pthread_mutex_lock(&p->lock);
    proc_look(p);
    reaped = p->reaped;
    pthread_mutex_unlock(&p->lock);
    if (reaped)
        watcher_remove(p);
}

/* watcher.lock held: look at every child without a pidfd. */
static void watcher_sweep(void)
{
    struct weft_process *p = watcher.head, *next;

    for (; p != NULL; p = next) {
        next = p->wnext;
        if (p->pidfd < 0)             /* ->lock: only we change it once listed */
            watcher_look(p);
    }
}

static void *watcher_main(void *arg)
{
    struct epoll_event ev[64];
    bool sweep = true;
    int n;

    (void)arg;
    pthread_mutex_lock(&watcher.lock);
    for (;;) {
        int timeout, epfd;

        if (sweep && watcher.nsweep > 0)
            watcher_sweep();
        sweep = false;
        if (watcher.head == NULL)
            break;
        timeout = watcher.nsweep > 0 ? SWEEP_MS : -1;
        epfd = watcher.epfd;
        pthread_mutex_unlock(&watcher.lock);
        n = epoll_wait(epfd, ev, 64, timeout);
        pthread_mutex_lock(&watcher.lock);
        if (n <= 0) {
            sweep = true;             /* the time is up (or EINTR): look anyway */
            continue;
        }
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == &chld_mark) {
                char buf[64];

                while (read(chld_pipe[0], buf, sizeof(buf)) > 0)
                    ;
                sweep = true;
            } else {
                /* listed: alive until we remove it ourselves */
                watcher_look(ev[i].data.ptr);
            }
        }
    }
    watcher.running = false;
    close(watcher.epfd);
    watcher.epfd = -1;
    pthread_mutex_unlock(&watcher.lock);
    return NULL;
}

/* watcher.lock held: make sure a thread runs. 0 or -errno. */
static int watcher_start(void)
{
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    int err;

    if (watcher.running)
        return 0;
    watcher.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (watcher.epfd < 0)
        return -errno;
    if (watcher.handler && (err = watch_pipe()) < 0)
        goto out_close;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* the thread takes no signal: those the program catches with signalfd
     * or handlers go to its own threads */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = -pthread_create(&t, &attr, watcher_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err)
        goto out_close;
    pthread_setname_np(t, "weft-child");
    watcher.running = true;
    return 0;
out_close:
    close(watcher.epfd);
    watcher.epfd = -1;
    return err;
}

/* Hand a new child to the watcher (which takes a reference). `sweep`: it
 * has no pidfd. 0 or -errno (then the watcher does not know it). */
static int watcher_add(struct weft_process *p, bool sweep)
{
    int err;

    pthread_mutex_lock(&watcher.lock);
    if (sweep) {
        err = install_handler();
        if (err)
            goto out;
    }
    err = watcher_start();
    if (err)
        goto out;
    if (sweep) {
        err = watch_pipe();
        if (err)
            goto out;             /* a running thread keeps its epfd */
        watcher.nsweep++;
        /* wake the thread as a SIGCHLD would: it sweeps (the child may have
         * exited before the handler was there) and, if it was waiting
         * without a time limit, starts looking every SWEEP_MS */
        {
            char b = 0;
            ssize_t n = write(chld_pipe[1], &b, 1);

            (void)n;
        }
    } else {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = p };

        if (epoll_ctl(watcher.epfd, EPOLL_CTL_ADD, p->pidfd, &ev) < 0) {
            err = -errno;
            goto out;
        }
    }
    proc_get(p);
    p->wprev = NULL;
    p->wnext = watcher.head;
    if (watcher.head)
        watcher.head->wprev = p;
    watcher.head = p;
out:
    /* a thread started for nobody finds the list empty at its first look
     * (it looks before it waits) and ends */
    pthread_mutex_unlock(&watcher.lock);
    return err;
}

/* ---- spawning --------------------------------------------------------------------- */
static bool no_pidfd(void)
{
    const char *v = getenv("WEFT_PROCESS_NO_PIDFD");

    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

/* A copy of fd at 3 or above, close-on-exec: dup2(copy, 0..2) in the child
 * then never meets a descriptor another dup2 has replaced. */
static int high_dup(int fd)
{
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);

    return d < 0 ? -errno : d;
}

struct spawn_fds {
    int child[3];                     /* the child's ends / copies (>= 3), or -1 */
    weft_stream *parent[3];           /* the parent's pipe ends */
};

static void fds_close(struct spawn_fds *f, bool parents)
{
    for (int i = 0; i < 3; i++) {
        if (f->child[i] >= 0)
            close(f->child[i]);
        f->child[i] = -1;
        if (parents && f->parent[i] != NULL)
            weft_stream_close(f->parent[i]);
    }
}

/* Set up descriptor i of the child. */
static int stdio_prepare(weft_runtime *rt, int i, const weft_stdio *s, struct spawn_fds *f,
                         posix_spawn_file_actions_t *fa)
{
    int p[2], mine, theirs, err;

    switch (s->mode) {
    case WEFT_STDIO_INHERIT:
        return 0;
    case WEFT_STDIO_NULL:
        return -posix_spawn_file_actions_addopen(fa, i, "/dev/null",
                                                 i == 0 ? O_RDONLY : O_WRONLY, 0);
    case WEFT_STDIO_FD:
        if (s->fd < 0 || fcntl(s->fd, F_GETFD) < 0)
            return -EBADF;
        f->child[i] = high_dup(s->fd);
        if (f->child[i] < 0)
            return f->child[i];
        return -posix_spawn_file_actions_adddup2(fa, f->child[i], i);
    case WEFT_STDIO_PIPE:
        if (pipe2(p, O_CLOEXEC) < 0)
            return -errno;
        mine = i == 0 ? p[1] : p[0];
        theirs = i == 0 ? p[0] : p[1];
        if (theirs < 3) {             /* the parent had 0..2 closed */
            int d = high_dup(theirs);

            close(theirs);
            if (d < 0) {
                close(mine);
                return d;
            }
            theirs = d;
        }
        f->child[i] = theirs;
        if (fcntl(mine, F_SETFL, fcntl(mine, F_GETFL) | O_NONBLOCK) < 0) {
            err = -errno;
            close(mine);
            return err;
        }
        err = weft__handle_wrap(rt, mine, HK_PIPE, 0, true, &f->parent[i]);
        if (err)
            return err;               /* mine closed by wrap */
        return -posix_spawn_file_actions_adddup2(fa, theirs, i);
    default:
        return -EINVAL;
    }
}

static int check_options(weft_runtime **rt, const weft_process_options *opt)
{
    bool pipes = false;

    if (opt->argv == NULL || opt->argv[0] == NULL)
        return -EINVAL;
    if (opt->flags & ~(WEFT_PROCESS_KILL_ON_FREE | WEFT_PROCESS_NEW_GROUP))
        return -EINVAL;
    for (int i = 0; i < 3; i++) {
        int m = opt->stdio[i].mode;

        if (m < WEFT_STDIO_INHERIT || m > WEFT_STDIO_FD)
            return -EINVAL;
        if (m == WEFT_STDIO_FD && opt->stdio[i].fd < 0)
            return -EBADF;
        pipes |= m == WEFT_STDIO_PIPE;
    }
    if (pipes && *rt == NULL && (*rt = weft_runtime_current()) == NULL)
        return -EINVAL;
    return 0;
}

static int do_spawn(const weft_process_options *opt, posix_spawn_file_actions_t *fa,
                    pid_t *pid)
{
    posix_spawnattr_t attr;
    sigset_t empty, def;
    const char *file = opt->file ? opt->file : opt->argv[0];
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    int err;

    err = posix_spawnattr_init(&attr);
    if (err)
        return -err;
    sigemptyset(&empty);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    if (opt->flags & WEFT_PROCESS_NEW_GROUP) {
        flags |= POSIX_SPAWN_SETPGROUP;
        err = posix_spawnattr_setpgroup(&attr, 0);
    }
    if (!err)
        err = posix_spawnattr_setsigmask(&attr, &empty);
    if (!err)
        err = posix_spawnattr_setsigdefault(&attr, &def);
    if (!err)
        err = posix_spawnattr_setflags(&attr, flags);
    if (!err) {
        char *const *envp = opt->envp ? opt->envp : environ;

        if (strchr(file, '/') != NULL)
            err = posix_spawn(pid, file, fa, &attr, opt->argv, envp);
        else
            err = posix_spawnp(pid, file, fa, &attr, opt->argv, envp);
    }
    posix_spawnattr_destroy(&attr);
    return -err;
}

WEFT_API int weft_process_spawn(weft_runtime *rt, const weft_process_options *opt,
                                weft_process **out)
{
    struct weft_process *p;
    struct spawn_fds f = { { -1, -1, -1 }, { NULL, NULL, NULL } };
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int err;

    if (opt == NULL || out == NULL)
        return -EINVAL;
    err = check_options(&rt, opt);
    if (err)
        return err;
    if (opt->file != NULL && opt->file[0] == '\0')
        return -ENOENT;
    p = weft__calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    err = -pthread_mutex_init(&p->lock, NULL);
    if (err)
        goto out_free;
    p->head.next = p->head.prev = &p->head;
    p->pidfd = -1;
    p->flags = opt->flags;
    atomic_init(&p->refs, 1);
    err = -posix_spawn_file_actions_init(&fa);
    if (err)
        goto out_mutex;
    for (int i = 0; i < 3 && !err; i++)
        err = stdio_prepare(rt, i, &opt->stdio[i], &f, &fa);
    if (!err && opt->cwd != NULL)
        err = -posix_spawn_file_actions_addchdir_np(&fa, opt->cwd);
    if (!err)
        err = do_spawn(opt, &fa, &pid);
    posix_spawn_file_actions_destroy(&fa);
    fds_close(&f, err != 0);          /* the child has its copies */
    if (err)
        goto out_mutex;
    p->pid = pid;
    for (int i = 0; i < 3; i++)
        p->stdio[i] = f.parent[i];
    if (!no_pidfd()) {
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);

        /* pidfd_open's descriptors are close-on-exec */
        p->pidfd = fd < 0 ? -1 : fd;
    }
    err = watcher_add(p, p->pidfd < 0);
    if (err && p->pidfd >= 0) {
        close(p->pidfd);              /* try the other way */
        p->pidfd = -1;
        err = watcher_add(p, true);
    }
    if (err) {
        /* nobody would reap it: take it back now (SIGKILL ends it at once) */
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        for (int i = 0; i < 3; i++)
            if (p->stdio[i])
                weft_stream_close(p->stdio[i]);
        goto out_mutex;
    }
    *out = p;
    return 0;
out_mutex:
    pthread_mutex_destroy(&p->lock);
out_free:
    weft__free(p);
    return err;
}

/* ---- the handle ------------------------------------------------------------------- */
WEFT_API int weft_process_pid(weft_process *p)
{
    return p == NULL ? -EINVAL : (int)p->pid;
}

static weft_stream *get_stdio(struct weft_process *p, int which, bool take)
{
    weft_stream *s;

    if (p == NULL || which < 0 || which > 2)
        return NULL;
    pthread_mutex_lock(&p->lock);
    s = p->stdio[which];
    if (take)
        p->stdio[which] = NULL;
    pthread_mutex_unlock(&p->lock);
    return s;
}

WEFT_API weft_stream *weft_process_stdio(weft_process *p, int which)
{
    return get_stdio(p, which, false);
}

WEFT_API weft_stream *weft_process_take_stdio(weft_process *p, int which)
{
    return get_stdio(p, which, true);
}

WEFT_API int weft_process_kill(weft_process *p, int sig)
{
    int err;

    if (p == NULL || sig < 0 || sig >= NSIG)
        return -EINVAL;
    pthread_mutex_lock(&p->lock);
    err = proc_signal(p, sig);
    pthread_mutex_unlock(&p->lock);
    return err;
}

WEFT_API int weft_process_try_wait(weft_process *p, weft_process_status *st)
{
    int err;

    if (p == NULL)
        return -EINVAL;
    pthread_mutex_lock(&p->lock);
    proc_look(p);
    if (!p->reaped) {
        err = -EAGAIN;
    } else if (p->lost) {
        err = -ECHILD;
    } else {
        err = 0;
        if (st)
            *st = p->status;
    }
    pthread_mutex_unlock(&p->lock);
    return err;
}

WEFT_API void weft_process_free(weft_process *p)
{
    weft_stream *s[3];

    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < 3; i++) {
        s[i] = p->stdio[i];
        p->stdio[i] = NULL;
    }
    if (p->flags & WEFT_PROCESS_KILL_ON_FREE)
        proc_signal(p, SIGKILL);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < 3; i++)
        if (s[i])
            weft_stream_close(s[i]);
    proc_put(p);                      /* the watcher's reference keeps it until reaped */
}

/* ---- the wait future ---------------------------------------------------------------- */
WEFT_API void weft_process_wait_init(weft_process_wait *w, weft_process *p,
                                     weft_process_status *st)
{
    if (w == NULL)
        return;
    memset(w, 0, sizeof(*w));
    w->st = st;
    w->p = p;
    if (p != NULL)
        proc_get(p);
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

static weft_poll wait_finish(weft_process_wait *w, int res, int *result)
{
    w->done = 1;
    w->result = res;
    if (result)
        *result = res;
    return WEFT_READY;
}

WEFT_API weft_poll weft_process_wait_poll(weft_process_wait *w, weft_context *cx, int *result)
{
    struct weft_process *p;
    const weft_waker *mine;
    int res;

    if (w == NULL) {
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (w->done)
        return wait_finish(w, w->result, result);
    p = w->p;
    if (p == NULL)
        return wait_finish(w, -EINVAL, result);
    if (weft__cx_bad(cx)) {           /* misuse (weft/core.h): nothing reaped */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    pthread_mutex_lock(&p->lock);
    proc_look(p);
    if (p->reaped) {
        unlink_waiter(&w->w);
        res = p->lost ? -ECHILD : 0;
        if (res == 0 && w->st)
            *w->st = p->status;
        pthread_mutex_unlock(&p->lock);
        return wait_finish(w, res, result);
    }
    mine = weft_context_waker(cx);
    if (w->w.state == 0) {
        w->w.waker = weft_waker_clone(mine);
        w->w.next = &p->head;
        w->w.prev = p->head.prev;
        p->head.prev->next = &w->w;
        p->head.prev = &w->w;
        w->w.state = 1;
    } else if (!weft_waker_will_wake(&w->w.waker, mine)) {
        weft_waker_drop(&w->w.waker);
        w->w.waker = weft_waker_clone(mine);
    }
    pthread_mutex_unlock(&p->lock);
    return WEFT_PENDING;
}

WEFT_API void weft_process_wait_drop(weft_process_wait *w)
{
    struct weft_process *p;

    if (w == NULL || (p = w->p) == NULL)
        return;
    w->p = NULL;
    pthread_mutex_lock(&p->lock);
    unlink_waiter(&w->w);
    pthread_mutex_unlock(&p->lock);
    if (!w->done) {
        w->done = 1;
        w->result = -ECANCELED;
    }
    proc_put(p);
}

static weft_poll wait_thunk(void *self, weft_context *cx, void *out)
{
    return weft_process_wait_poll(self, cx, out);
}

static void wait_drop_thunk(void *self)
{
    weft_process_wait_drop(self);
}

WEFT_API const weft_future_type weft_process_wait_future = {
    .size = sizeof(weft_process_wait),
    .align = _Alignof(weft_process_wait),
    .poll = wait_thunk,
    .drop = wait_drop_thunk,
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
    .name = "weft_process_wait",
};
