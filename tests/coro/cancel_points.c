/* SPDX-License-Identifier: MIT */
/* Cancellation at every await point of weft/coro.h, as a hostile reader of
 * the header would check it. For each blocking-style call a coroutine is
 * parked in (the task dump must name the call: weft/observe.h), one of:
 *   - abort:    weft_join_abort() -> the call returns -ECANCELED, every later
 *               blocking call returns -ECANCELED at once, fn returns;
 *   - shutdown: weft_runtime_free() with the coroutine parked -> the same,
 *               on the freeing thread;
 *   - deadline: weft_co_deadline_set() -> the call returns -ETIMEDOUT;
 * and then: the object it waited on is consistent (a mutex/semaphore/lock
 * keeps no grant for the cancelled waiter, a channel loses no message, a
 * socket's bytes stay for the next read, a oneshot keeps its value), and
 * nothing weft allocated is left (harness_live). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "coro_test.h"

#define WAIT_MS 20000u
#ifndef DUMP_WAIT_MS
#define DUMP_WAIT_MS 3000u
#endif

enum mode { ABORT, SHUTDOWN, DEADLINE };

typedef struct ctx {
    enum mode mode;
    weft_runtime *rt;
    weft_chan *ch;
    weft_oneshot_tx *otx;
    weft_oneshot_rx *orx;
    weft_mutex *mu;
    weft_sem *sem;
    weft_rwlock *rw;
    weft_notify *nt;
    weft_barrier *bar;
    weft_cancel *tok;
    weft_group *grp;
    weft_watch *wt;
    weft_watch_rx *wrx;
    weft_bcast *bc;
    weft_bcast_rx *brx;
    weft_socket *s;                   /* the coroutine's end */
    weft_socket *l;                   /* a listener */
    int peer;                         /* the other end (plain descriptor) */
    int pipefd[2];
    weft_bufreader br;
    char brbuf[64];
    weft_process *proc;
    weft_join *other;
    atomic_int job_release, job_done, job_started;
    /* what the coroutine saw */
    atomic_int parking;
    long result;
    int later;
} ctx;

typedef struct park_case {
    const char *name;                 /* the weft_co_* call: the dump's site */
    void (*setup)(ctx *c);
    long (*park)(ctx *c);             /* in the coroutine */
    void (*after)(ctx *c);            /* the object is consistent */
    void (*teardown)(ctx *c);
    void (*parked)(ctx *c);           /* optional: more to wait for once parked */
} park_case;

static void sleep_ms(unsigned ms)
{
    usleep(ms * 1000u);
}

/* ---- the dump: is the coroutine parked in `want`? --------------------------------- */
typedef struct find {
    const char *want;
    int found;
    bool verbose;
} find;

static int visit(const weft_task_info *t, void *arg)
{
    find *f = arg;
    const weft_async_site *a = t->parked_at, *b = t->parked_inner;

    if (f->verbose)
        fprintf(stderr, "  task %llu %s state %d at %s < %s\n", t->id, t->type_name,
                (int)t->state, a && a->func ? a->func : "-", b && b->func ? b->func : "-");

    if (t->state != WEFT_TASK_IDLE)
        return 0;
    if ((a && a->func && strcmp(a->func, f->want) == 0) ||
        (b && b->func && strcmp(b->func, f->want) == 0))
        f->found++;
    return 0;
}

static void wait_parked_in(weft_runtime *rt, const char *want)
{
    uint64_t until = weft_now_ms() + WAIT_MS;
    find f = { want, 0, false };

    for (;;) {
        f.found = 0;
        ASSERT_OK(weft_runtime_tasks(rt, visit, &f));
        if (f.found)
            return;
        if (weft_now_ms() > until) {
            f.verbose = true;
            weft_runtime_tasks(rt, visit, &f);
        }
        if (weft_now_ms() > until)
            harness_fail(__FILE__, __LINE__, "no coroutine parked in %s (dump)", want);
        sleep_ms(1);
    }
}

/* ---- helpers --------------------------------------------------------------------- */
static void stream_pair(ctx *c)
{
    int sv[2];

    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    ASSERT_OK(weft_socket_adopt(c->rt, sv[0], &c->s));
    c->peer = sv[1];
}

static void close_pair(ctx *c)
{
    ASSERT_OK(weft_socket_close(c->s));
    close(c->peer);
}

/* ---- cases --------------------------------------------------------------------------- */
/* weft_co_sleep */
static long park_sleep(ctx *c) { (void)c; return weft_co_sleep(10u * 60 * 1000); }

/* weft_co_join on a task that never completes */
static int parks_on_notify(void *arg)
{
    return weft_co_notify_wait(arg);
}
static void setup_join(ctx *c)
{
    ASSERT_OK(weft_notify_new(&c->nt));
    ASSERT_OK(weft_go(c->rt, parks_on_notify, c->nt, &c->other));
}
static long park_join(ctx *c) { int out = 0; return weft_co_join(c->other, &out); }
static void after_join(ctx *c)
{
    int out = -1;

    /* the joined task is not affected by its joiner's cancel */
    if (c->mode != SHUTDOWN) {
        ASSERT_EQ(-EAGAIN, weft_join_try(c->other, &out));
        weft_notify_one(c->nt);
        ASSERT_OK(weft_join_wait(c->other, &out));
        ASSERT_EQ(0, out);
    }
}
static void teardown_join(ctx *c)
{
    weft_join_drop(c->other);
    weft_notify_free(c->nt);
}
static void teardown_notify(ctx *c) { weft_notify_free(c->nt); }

/* weft_co_chan_recv on an empty channel */
static void setup_chan(ctx *c) { ASSERT_OK(weft_chan_new(&c->ch, sizeof(int), 1)); }
static long park_chan_recv(ctx *c) { int v; return weft_co_chan_recv(c->ch, &v); }
static void after_chan_recv(ctx *c)
{
    int v = 7, got = 0;

    /* the cancelled receiver took nothing and strands no wake */
    ASSERT_OK(weft_chan_try_send(c->ch, &v));
    ASSERT_EQ(1, weft_chan_len(c->ch));
    ASSERT_OK(weft_chan_try_recv(c->ch, &got));
    ASSERT_EQ(7, got);
}
static void teardown_chan(ctx *c) { weft_chan_drop(c->ch); }

/* weft_co_chan_send on a full channel */
static void setup_chan_full(ctx *c)
{
    int v = 1;

    setup_chan(c);
    ASSERT_OK(weft_chan_try_send(c->ch, &v));
}
static long park_chan_send(ctx *c) { int v = 2; return weft_co_chan_send(c->ch, &v); }
static void after_chan_send(ctx *c)
{
    int got = 0, v = 3;

    ASSERT_EQ(1, weft_chan_len(c->ch));       /* nothing sent, no slot kept */
    ASSERT_OK(weft_chan_try_recv(c->ch, &got));
    ASSERT_EQ(1, got);
    ASSERT_OK(weft_chan_try_send(c->ch, &v));
    ASSERT_EQ(-EAGAIN, weft_chan_try_send(c->ch, &v));
}

/* weft_co_chan_select over more than 8 channels (its futures are allocated) */
static weft_chan *sel_chans[10];
static void setup_chan_select(ctx *c)
{
    (void)c;
    for (int i = 0; i < 10; i++)
        ASSERT_OK(weft_chan_new(&sel_chans[i], sizeof(int), 1));
}
static long park_chan_select(ctx *c)
{
    int dst[10];
    void *d[10];
    size_t which = 99;

    (void)c;
    for (int i = 0; i < 10; i++)
        d[i] = &dst[i];
    return weft_co_chan_select(sel_chans, d, 10, &which);
}
static void after_chan_select(ctx *c)
{
    int v = 5, got = 0;

    (void)c;
    for (int i = 0; i < 10; i++) {
        ASSERT_OK(weft_chan_try_send(sel_chans[i], &v));
        ASSERT_OK(weft_chan_try_recv(sel_chans[i], &got));
        ASSERT_EQ(5, got);
    }
}
static void teardown_chan_select(ctx *c)
{
    (void)c;
    for (int i = 0; i < 10; i++)
        weft_chan_drop(sel_chans[i]);
}

/* weft_co_oneshot_recv */
static void setup_oneshot(ctx *c) { ASSERT_OK(weft_oneshot_new(&c->otx, &c->orx, sizeof(int))); }
static long park_oneshot(ctx *c) { int v; return weft_co_oneshot_recv(c->orx, &v); }
static void after_oneshot(ctx *c)
{
    int v = 9, got = 0;

    ASSERT_OK(weft_oneshot_send(c->otx, &v));      /* the receiver is still there */
    ASSERT_OK(weft_oneshot_try_recv(c->orx, &got)); /* the value stays for the next */
    ASSERT_EQ(9, got);
}
static void teardown_oneshot(ctx *c) { weft_oneshot_rx_drop(c->orx); }

/* weft_co_mutex_lock on a held mutex */
static void setup_mutex(ctx *c)
{
    ASSERT_OK(weft_mutex_new(&c->mu));
    ASSERT_OK(weft_mutex_try_lock(c->mu));
}
static long park_mutex(ctx *c) { return weft_co_mutex_lock(c->mu); }
static void after_mutex(ctx *c)
{
    ASSERT_OK(weft_mutex_unlock(c->mu));
    ASSERT_OK(weft_mutex_try_lock(c->mu));       /* not handed to the cancelled waiter */
    ASSERT_OK(weft_mutex_unlock(c->mu));
}
static void teardown_mutex(ctx *c) { weft_mutex_free(c->mu); }

/* weft_co_sem_acquire of more permits than there are */
static void setup_sem(ctx *c) { ASSERT_OK(weft_sem_new(&c->sem, 1)); }
static long park_sem(ctx *c) { return weft_co_sem_acquire(c->sem, 2); }
static void after_sem(ctx *c)
{
    ASSERT_EQ(1, weft_sem_available(c->sem));    /* conserved */
    ASSERT_OK(weft_sem_release(c->sem, 1));
    ASSERT_OK(weft_sem_try_acquire(c->sem, 2));
}
static void teardown_sem(ctx *c) { weft_sem_free(c->sem); }

/* weft_co_rwlock_write while read-held, weft_co_rwlock_read while write-held */
static void setup_rw_read_held(ctx *c)
{
    ASSERT_OK(weft_rwlock_new(&c->rw));
    ASSERT_OK(weft_rwlock_try_read(c->rw));
}
static void setup_rw_write_held(ctx *c)
{
    ASSERT_OK(weft_rwlock_new(&c->rw));
    ASSERT_OK(weft_rwlock_try_write(c->rw));
}
static long park_rw_write(ctx *c) { return weft_co_rwlock_write(c->rw); }
static long park_rw_read(ctx *c) { return weft_co_rwlock_read(c->rw); }
static void after_rw_read_held(ctx *c)
{
    ASSERT_OK(weft_rwlock_try_read(c->rw));      /* a cancelled writer blocks no reader */
    ASSERT_OK(weft_rwlock_unlock_read(c->rw));
    ASSERT_OK(weft_rwlock_unlock_read(c->rw));
    ASSERT_OK(weft_rwlock_try_write(c->rw));
    ASSERT_OK(weft_rwlock_unlock_write(c->rw));
}
static void after_rw_write_held(ctx *c)
{
    ASSERT_OK(weft_rwlock_unlock_write(c->rw));
    ASSERT_OK(weft_rwlock_try_write(c->rw));
    ASSERT_OK(weft_rwlock_unlock_write(c->rw));
}
static void teardown_rw(ctx *c) { weft_rwlock_free(c->rw); }

/* weft_co_notify_wait */
static void setup_notify(ctx *c) { ASSERT_OK(weft_notify_new(&c->nt)); }
static long park_notify(ctx *c) { return weft_co_notify_wait(c->nt); }

/* weft_co_barrier_wait: 2 parties, one arrives */
static void setup_barrier(ctx *c) { ASSERT_OK(weft_barrier_new(&c->bar, 2)); }
static long park_barrier(ctx *c) { return weft_co_barrier_wait(c->bar); }
static void after_barrier(ctx *c)
{
    ASSERT_EQ(0, weft_barrier_waiting(c->bar));  /* the arrival was taken back */
}
static void teardown_barrier(ctx *c) { weft_barrier_free(c->bar); }

/* weft_co_cancel_wait */
static void setup_token(ctx *c) { ASSERT_OK(weft_cancel_new(&c->tok)); }
static long park_token(ctx *c) { return weft_co_cancel_wait(c->tok); }
static void after_token(ctx *c) { ASSERT(!weft_cancel_is_cancelled(c->tok)); }
static void teardown_token(ctx *c) { weft_cancel_drop(c->tok); }

/* weft_co_group_wait on a group with a parked child */
static void setup_group(ctx *c)
{
    ASSERT_OK(weft_notify_new(&c->nt));
    ASSERT_OK(weft_group_new(&c->grp, c->rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_go_group(c->grp, parks_on_notify, c->nt, NULL));
}
static long park_group(ctx *c) { return weft_co_group_wait(c->grp); }
static void after_group(ctx *c)
{
    if (c->mode != SHUTDOWN) {
        ASSERT_EQ(1, weft_group_live(c->grp));   /* the waiter's cancel is not the group's */
        ASSERT(!weft_group_is_cancelled(c->grp));
    }
}
static void teardown_group(ctx *c)
{
    ASSERT_OK(weft_group_free(c->grp));
    weft_notify_free(c->nt);
}

/* weft_co_read on a socket with nothing to read */
static void setup_read(ctx *c) { stream_pair(c); }
static long park_read(ctx *c)
{
    char buf[16];

    return weft_co_read(c->s, buf, sizeof(buf));
}
static void after_read(ctx *c)
{
    char buf[8] = { 0 };

    /* the cancelled read took no byte: they are all there for the next */
    ASSERT_EQ(3, write(c->peer, "abc", 3));
    ASSERT_EQ(3, recv(weft_socket_fd(c->s), buf, sizeof(buf), MSG_DONTWAIT));
    ASSERT_EQ(0, memcmp(buf, "abc", 3));
}

/* weft_co_read_exact with part of the bytes there */
static long park_read_exact(ctx *c)
{
    char buf[8];

    return weft_co_read_exact(c->s, buf, sizeof(buf));
}
static void setup_read_exact(ctx *c)
{
    stream_pair(c);
    ASSERT_EQ(2, write(c->peer, "xy", 2));
}

/* weft_co_write_all into a full socket */
static void setup_write(ctx *c)
{
    int small = 4096;
    char chunk[4096] = { 0 };

    stream_pair(c);
    setsockopt(weft_socket_fd(c->s), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    while (send(weft_socket_fd(c->s), chunk, sizeof(chunk), MSG_DONTWAIT) > 0)
        ;
}
static long park_write_all(ctx *c)
{
    static char big[1 << 16];

    return weft_co_write_all(c->s, big, sizeof(big));
}

/* weft_co_accept on a listener nobody connects to */
static void setup_accept(ctx *c)
{
    struct sockaddr_storage a;
    socklen_t len;

    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &a, &len));
    ASSERT_OK(weft_listen(c->rt, (struct sockaddr *)&a, len, 0, &c->l));
}
static long park_accept(ctx *c)
{
    weft_socket *s = NULL;
    int r = weft_co_accept(c->l, &s);

    ASSERT(s == NULL);
    return r;
}
static void after_accept(ctx *c)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    /* the listener still takes connections (the backlog holds this one) */
    ASSERT_OK(weft_socket_local_addr(c->l, &a, &len));
    ASSERT_EQ(0, connect(fd, (struct sockaddr *)&a, len));
    close(fd);
}
static void teardown_accept(ctx *c) { ASSERT_OK(weft_socket_close(c->l)); }

/* weft_co_recv_from on a UDP socket */
static void setup_udp(ctx *c)
{
    struct sockaddr_storage a;
    socklen_t len;

    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &a, &len));
    ASSERT_OK(weft_udp_bind(c->rt, (struct sockaddr *)&a, len, &c->s));
    c->peer = -1;
}
static long park_recv_from(ctx *c)
{
    char buf[16];

    return weft_co_recv_from(c->s, buf, sizeof(buf), NULL, NULL);
}
static void teardown_udp(ctx *c) { ASSERT_OK(weft_socket_close(c->s)); }

/* weft_co_read_line with half a line buffered */
static void setup_bufread(ctx *c)
{
    stream_pair(c);
    ASSERT_OK(weft_bufreader_init(&c->br, c->s, c->brbuf, sizeof(c->brbuf)));
    ASSERT_EQ(4, write(c->peer, "half", 4));
}
static long park_read_line(ctx *c)
{
    char line[32];

    return weft_co_read_line(&c->br, line, sizeof(line));
}
static void after_bufread(ctx *c)
{
    const void *data;
    size_t n = weft_bufreader_buffered(&c->br, &data);
    char buf[8] = { 0 };
    ssize_t m = recv(weft_socket_fd(c->s), buf, sizeof(buf), MSG_DONTWAIT);

    /* "the reader's bytes stay buffered": whatever it read is in its buffer */
    if (m < 0)
        m = 0;
    ASSERT_EQ(4, (long)n + m);
    if (n)
        ASSERT_EQ(0, memcmp(data, "half", n));
}
static void teardown_bufread(ctx *c)
{
    weft_bufreader_drop(&c->br);
    close_pair(c);
}

/* weft_co_watch_changed and weft_co_bcast_recv */
static void setup_watch(ctx *c)
{
    int v = 0;

    ASSERT_OK(weft_watch_new(&c->wt, sizeof(int), &v));
    ASSERT_OK(weft_watch_rx_new(&c->wrx, c->wt));
}
static long park_watch(ctx *c) { int v; return weft_co_watch_changed(c->wrx, &v); }
static void after_watch(ctx *c)
{
    int v = 4;

    ASSERT_EQ(0, weft_watch_has_changed(c->wrx));  /* nothing marked seen, nothing new */
    ASSERT_OK(weft_watch_send(c->wt, &v));
    ASSERT_EQ(1, weft_watch_has_changed(c->wrx));
}
static void teardown_watch(ctx *c)
{
    weft_watch_rx_drop(c->wrx);
    weft_watch_drop(c->wt);
}
static void setup_bcast(ctx *c)
{
    ASSERT_OK(weft_bcast_new(&c->bc, sizeof(int), 4));
    ASSERT_OK(weft_bcast_rx_new(&c->brx, c->bc));
}
static long park_bcast(ctx *c) { int v; return weft_co_bcast_recv(c->brx, &v, NULL); }
static void after_bcast(ctx *c)
{
    int v = 6, got = 0;

    ASSERT_OK(weft_bcast_send(c->bc, &v));
    ASSERT_OK(weft_bcast_try_recv(c->brx, &got, NULL));  /* position did not move */
    ASSERT_EQ(6, got);
}
static void teardown_bcast(ctx *c)
{
    weft_bcast_rx_drop(c->brx);
    weft_bcast_drop(c->bc);
}

/* weft_co_process_wait on a child that runs until killed */
static void setup_process(ctx *c)
{
    char *argv[] = { "sleep", "600", NULL };
    weft_process_options o = { .argv = argv, .flags = WEFT_PROCESS_KILL_ON_FREE };

    ASSERT_OK(weft_process_spawn(c->rt, &o, &c->proc));
}
static long park_process(ctx *c)
{
    weft_process_status st;

    return weft_co_process_wait(c->proc, &st);
}
static void after_process(ctx *c)
{
    weft_process_status st = { 0, 0 };
    uint64_t until = weft_now_ms() + WAIT_MS;
    int r;

    /* "Cancelled, it loses nothing: the status stays in the handle" */
    ASSERT_OK(weft_process_kill(c->proc, SIGKILL));
    while ((r = weft_process_try_wait(c->proc, &st)) == -EAGAIN) {
        ASSERT(weft_now_ms() < until);
        sleep_ms(1);
    }
    ASSERT_OK(r);
    ASSERT_EQ(SIGKILL, st.signal);
}
static void teardown_process(ctx *c) { weft_process_free(c->proc); }

/* weft_co_blocking on a job that runs until released */
static void *held_job(void *arg)
{
    ctx *c = arg;
    uint64_t until = weft_now_ms() + WAIT_MS;

    atomic_store(&c->job_started, 1);
    while (!atomic_load(&c->job_release) && weft_now_ms() < until)
        sleep_ms(1);
    atomic_store(&c->job_done, 1);
    return NULL;
}
static long park_blocking(ctx *c) { void *ret; return weft_co_blocking(NULL, held_job, c, &ret); }
/* a job still queued at shutdown is cancelled, never run: wait until a
 * pool thread has it */
static void blocking_started(ctx *c)
{
    uint64_t until = weft_now_ms() + WAIT_MS;

    while (!atomic_load(&c->job_started)) {
        ASSERT(weft_now_ms() < until);
        sleep_ms(1);
    }
}
static void after_blocking(ctx *c)
{
    uint64_t until = weft_now_ms() + WAIT_MS;

    atomic_store(&c->job_release, 1);
    while (!atomic_load(&c->job_done)) {
        ASSERT(weft_now_ms() < until);
        sleep_ms(1);
    }
}

/* weft_co_fs_read on a pipe nobody writes: the read runs on the pool; the
 * caller's heap buffer is freed as soon as the call returns, and the late
 * read must not land in it (ASan) */
static void setup_fs_read(ctx *c) { ASSERT_EQ(0, pipe2(c->pipefd, O_CLOEXEC)); }
static long park_fs_read(ctx *c)
{
    char *buf = malloc(64);
    ssize_t r;

    ASSERT(buf != NULL);
    memset(buf, 'z', 64);
    r = weft_co_fs_read(c->pipefd[0], buf, 64);
    if (r < 0) {
        for (int i = 0; i < 64; i++)
            ASSERT_EQ('z', buf[i]);   /* not written on failure */
    }
    free(buf);
    return r;
}
static void after_fs_read(ctx *c)
{
    /* the started read completes on the pool into its own buffer */
    ASSERT_EQ(5, write(c->pipefd[1], "hello", 5));
    sleep_ms(20);
}
static void teardown_fs_read(ctx *c)
{
    close(c->pipefd[0]);
    close(c->pipefd[1]);
}

/* weft_co_select over a sleep and a channel receive */
static long park_select(ctx *c)
{
    weft_sleep sl;
    weft_chan_recv rv;
    int dst = 0, rres = 0;
    weft_future_ref refs[2] = {
        { &weft_sleep_future, &sl, NULL, 0 },
        { &weft_chan_recv_future, &rv, &rres, 0 },
    };

    weft_sleep_init(&sl, 10u * 60 * 1000);
    weft_chan_recv_init(&rv, c->ch, &dst);
    return weft_co_select(refs, 2);
}

/* weft_co_await_timeout on a channel receive */
static long park_await_timeout(ctx *c)
{
    weft_chan_recv rv;
    int dst = 0, rres = 0;

    weft_chan_recv_init(&rv, c->ch, &dst);
    return weft_co_await_timeout(&weft_chan_recv_future, &rv, &rres, 10u * 60 * 1000);
}

static void nothing(ctx *c) { (void)c; }

static const park_case cases[] = {
    { "weft_co_sleep", nothing, park_sleep, nothing, nothing, NULL },
    { "weft_co_join", setup_join, park_join, after_join, teardown_join, NULL },
    { "weft_co_chan_recv", setup_chan, park_chan_recv, after_chan_recv, teardown_chan, NULL },
    { "weft_co_chan_send", setup_chan_full, park_chan_send, after_chan_send, teardown_chan, NULL },
    { "weft_co_chan_select", setup_chan_select, park_chan_select, after_chan_select,
      teardown_chan_select, NULL },
    { "weft_co_oneshot_recv", setup_oneshot, park_oneshot, after_oneshot, teardown_oneshot, NULL },
    { "weft_co_mutex_lock", setup_mutex, park_mutex, after_mutex, teardown_mutex, NULL },
    { "weft_co_sem_acquire", setup_sem, park_sem, after_sem, teardown_sem, NULL },
    { "weft_co_rwlock_write", setup_rw_read_held, park_rw_write, after_rw_read_held, teardown_rw, NULL },
    { "weft_co_rwlock_read", setup_rw_write_held, park_rw_read, after_rw_write_held, teardown_rw, NULL },
    { "weft_co_notify_wait", setup_notify, park_notify, nothing, teardown_notify, NULL },
    { "weft_co_barrier_wait", setup_barrier, park_barrier, after_barrier, teardown_barrier, NULL },
    { "weft_co_cancel_wait", setup_token, park_token, after_token, teardown_token, NULL },
    { "weft_co_group_wait", setup_group, park_group, after_group, teardown_group, NULL },
    { "weft_co_read", setup_read, park_read, after_read, close_pair, NULL },
    { "weft_co_read_exact", setup_read_exact, park_read_exact, nothing, close_pair, NULL },
    { "weft_co_write_all", setup_write, park_write_all, nothing, close_pair, NULL },
    { "weft_co_accept", setup_accept, park_accept, after_accept, teardown_accept, NULL },
    { "weft_co_recv_from", setup_udp, park_recv_from, nothing, teardown_udp, NULL },
    { "weft_co_read_line", setup_bufread, park_read_line, after_bufread, teardown_bufread, NULL },
    { "weft_co_watch_changed", setup_watch, park_watch, after_watch, teardown_watch, NULL },
    { "weft_co_bcast_recv", setup_bcast, park_bcast, after_bcast, teardown_bcast, NULL },
    { "weft_co_process_wait", setup_process, park_process, after_process, teardown_process, NULL },
    { "weft_co_blocking", nothing, park_blocking, after_blocking, nothing, blocking_started },
    { "weft_co_fs_read", setup_fs_read, park_fs_read, after_fs_read, teardown_fs_read, NULL },
    { "weft_co_select", setup_chan, park_select, after_chan_recv, teardown_chan, NULL },
    { "weft_co_await_timeout", setup_chan, park_await_timeout, after_chan_recv, teardown_chan, NULL },
};

/* ---- the coroutine ---------------------------------------------------------------- */
typedef struct co_arg {
    ctx *c;
    const park_case *pc;
} co_arg;

static int parker(void *arg)
{
    co_arg *a = arg;
    ctx *c = a->c;

    if (c->mode == DEADLINE)
        weft_co_deadline_set(weft_now_ms() + 30);
    atomic_store(&c->parking, 1);
    c->result = a->pc->park(c);
    /* every later blocking call: at once, the same answer */
    c->later = weft_co_sleep(10u * 60 * 1000);
    return 0;
}

static void run_case(const park_case *pc, enum mode mode)
{
    ctx *c = calloc(1, sizeof(*c));
    co_arg a = { c, pc };
    weft_join *j = NULL;
    long live0 = harness_live();
    int out = -1;
    uint64_t until;

    fprintf(stderr, "case %s (%s)\n", pc->name,
            mode == ABORT ? "abort" : mode == SHUTDOWN ? "shutdown" : "deadline");
    ASSERT(c != NULL);
    c->mode = mode;
    c->peer = -1;
    c->rt = ct_runtime(2);
    pc->setup(c);
    ASSERT_OK(weft_go(c->rt, parker, &a, &j));
    if (mode != DEADLINE) {
        wait_parked_in(c->rt, pc->name);
        if (pc->parked)
            pc->parked(c);
    }
    switch (mode) {
    case ABORT:
        weft_join_abort(j);
        /* fn runs to its end; the join reports the abort */
        ASSERT_EQ(-ECANCELED, weft_join_wait(j, &out));
        ASSERT_EQ(-ECANCELED, c->result);
        ASSERT_EQ(-ECANCELED, c->later);
        break;
    case DEADLINE:
        ASSERT_OK(weft_join_wait(j, &out));
        ASSERT_EQ(-ETIMEDOUT, c->result);
        ASSERT_EQ(-ETIMEDOUT, c->later);
        break;
    case SHUTDOWN:
        ASSERT_OK(weft_runtime_shutdown(c->rt));
        ASSERT_EQ(-ECANCELED, weft_join_try(j, &out));
        ASSERT_EQ(-ECANCELED, c->result);
        ASSERT_EQ(-ECANCELED, c->later);
        break;
    }
    weft_join_drop(j);
    pc->after(c);
    pc->teardown(c);
    CT_FREE(c->rt);
    /* pool threads and detached jobs wind down on their own: give them time */
    until = weft_now_ms() + WAIT_MS;
    while (harness_live() != live0 && weft_now_ms() < until)
        sleep_ms(1);
    ASSERT_EQ(live0, harness_live());
    free(c);
}

static void run_all(enum mode mode)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i], mode);
}

TEST(abort_while_parked_in_every_call)
{
    run_all(ABORT);
}

TEST(shutdown_while_parked_in_every_call)
{
    run_all(SHUTDOWN);
}

TEST(deadline_while_parked_in_every_call)
{
    run_all(DEADLINE);
}
