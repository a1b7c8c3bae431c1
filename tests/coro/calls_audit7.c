// SPDX-License-Identifier: MIT
/* Audit 7 of weft/coro.h: promises of the blocking-style calls that the
 * other suites leave out:
 *   - "blocking calls themselves leave errno alone", for calls whose polls
 *     run syscalls on the coroutine's side (a read that first sees EAGAIN,
 *     a connect that is EINPROGRESS, an accept, a UDP receive);
 *   - "-EINVAL outside a coroutine" means nothing was done (no close, no
 *     connection made);
 *   - once aborted, "every later blocking call returns -ECANCELED at once":
 *     with everything ready, every call still returns -ECANCELED and takes,
 *     sends, locks, connects, creates nothing;
 *   - a bad weft_co_select set after an abort is still -EINVAL (nothing
 *     of the caller's dropped);
 *   - the migration rules: weft's own locks held across blocking calls
 *     that resume on other workers keep mutual exclusion. */
#include "coro_test.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAIT_MS 20000u

/* ---- helpers ---------------------------------------------------------------------- */
__attribute__((noinline)) static int errno_now(void)
{
    __asm__ __volatile__("" : : : "memory");
    return errno;
}

__attribute__((noinline)) static void errno_set(int v)
{
    __asm__ __volatile__("" : : : "memory");
    errno = v;
}

typedef struct find {
    const char *want;
    int found;
} find;

static int visit(const weft_task_info *t, void *arg)
{
    find *f = arg;
    const weft_async_site *a = t->parked_at, *b = t->parked_inner;

    if (t->state != WEFT_TASK_IDLE)
        return 0;
    if ((a && a->func && strcmp(a->func, f->want) == 0) ||
        (b && b->func && strcmp(b->func, f->want) == 0))
        f->found++;
    return 0;
}

/* until some task of rt is parked in the call `want` (the task dump) */
static void wait_parked_in(weft_runtime *rt, const char *want)
{
    uint64_t until = weft_now_ms() + WAIT_MS;
    find f = { want, 0 };

    for (;;) {
        f.found = 0;
        ASSERT_OK(weft_runtime_tasks(rt, visit, &f));
        if (f.found)
            return;
        if (weft_now_ms() > until)
            harness_fail(__FILE__, __LINE__, "no coroutine parked in %s", want);
        usleep(1000);
    }
}

static int tcp_listener(struct sockaddr_storage *a, socklen_t *len)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    ASSERT(fd >= 0);
    ASSERT_EQ(0, bind(fd, (struct sockaddr *)&sin, sizeof(sin)));
    ASSERT_EQ(0, listen(fd, 16));
    *len = sizeof(*a);
    ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)a, len));
    return fd;
}

/* nothing waits in the listener's backlog */
static void backlog_empty(int l)
{
    int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);

    if (fd >= 0)
        close(fd);
    ASSERT(fd < 0);
}

/* ---- errno ------------------------------------------------------------------------ */
enum { E_READ, E_ACCEPT, E_CONNECT, E_RECV_FROM, E_FS_STAT, E_CHAN_SELECT, E_BLOCKING,
       E_WRITE_ALL, E_COUNT };
static const char *const e_names[E_COUNT] = {
    "weft_co_read", "weft_co_accept", "weft_co_connect", "weft_co_recv_from",
    "weft_co_fs_stat", "weft_co_chan_select", "weft_co_blocking", "weft_co_write_all",
};

typedef struct errno_ctx {
    weft_runtime *rt;
    weft_socket *s, *l, *u;
    int peer;
    struct sockaddr_storage la;
    socklen_t llen;
    int seen[E_COUNT];              /* errno after the call */
    long res[E_COUNT];
} errno_ctx;

static void *sets_errno(void *arg)
{
    (void)arg;
    errno = EIO;                    /* the pool thread's own: not ours */
    return NULL;
}

static int errno_body(void *arg)
{
    errno_ctx *c = arg;
    char buf[16];
    weft_socket *acc = NULL, *con = NULL;
    weft_chan *chans[10];
    int dst[10];
    void *dsts[10];
    size_t which = 0;
    struct stat st;
    static char big[1 << 18];

    for (int i = 0; i < 10; i++) {
        ASSERT_OK(weft_chan_new(&chans[i], sizeof(int), 1));
        dsts[i] = &dst[i];
    }
    ASSERT_OK(weft_chan_try_send(chans[9], &(int){ 1 }));

    errno_set(1000 + E_READ);
    c->res[E_READ] = weft_co_read(c->s, buf, sizeof(buf));   /* EAGAIN first */
    c->seen[E_READ] = errno_now();

    errno_set(1000 + E_ACCEPT);
    c->res[E_ACCEPT] = weft_co_accept(c->l, &acc);
    c->seen[E_ACCEPT] = errno_now();

    errno_set(1000 + E_CONNECT);
    c->res[E_CONNECT] = weft_co_connect(NULL, (struct sockaddr *)&c->la, c->llen, 0, &con);
    c->seen[E_CONNECT] = errno_now();

    errno_set(1000 + E_RECV_FROM);
    c->res[E_RECV_FROM] = weft_co_recv_from(c->u, buf, sizeof(buf), NULL, NULL);
    c->seen[E_RECV_FROM] = errno_now();

    errno_set(1000 + E_FS_STAT);
    c->res[E_FS_STAT] = weft_co_fs_stat("/nonexistent/weft-audit7", &st);
    c->seen[E_FS_STAT] = errno_now();

    errno_set(1000 + E_CHAN_SELECT);
    c->res[E_CHAN_SELECT] = weft_co_chan_select(chans, dsts, 10, &which);
    c->seen[E_CHAN_SELECT] = errno_now();

    errno_set(1000 + E_BLOCKING);
    c->res[E_BLOCKING] = weft_co_blocking(NULL, sets_errno, NULL, NULL);
    c->seen[E_BLOCKING] = errno_now();

    errno_set(1000 + E_WRITE_ALL);
    c->res[E_WRITE_ALL] = weft_co_write_all(c->s, big, sizeof(big));   /* EAGAIN on the way */
    c->seen[E_WRITE_ALL] = errno_now();

    if (acc)
        weft_socket_close(acc);
    if (con)
        weft_socket_close(con);
    for (int i = 0; i < 10; i++)
        weft_chan_drop(chans[i]);
    return 0;
}

TEST(errno_left_alone_by_calls_that_park)
{
    errno_ctx *c = calloc(1, sizeof(*c));
    struct sockaddr_storage ua;
    socklen_t ulen;
    int sv[2], cfd, bad = 0;
    weft_join *j;
    char sink[1 << 16];
    long got = 0;

    ASSERT(c != NULL);
    c->rt = ct_runtime(2);
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    ASSERT_OK(weft_socket_adopt(c->rt, sv[0], &c->s));
    c->peer = sv[1];
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &c->la, &c->llen));
    ASSERT_OK(weft_listen(c->rt, (struct sockaddr *)&c->la, c->llen, 0, &c->l));
    c->llen = sizeof(c->la);
    ASSERT_OK(weft_socket_local_addr(c->l, &c->la, &c->llen));
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &ua, &ulen));
    ASSERT_OK(weft_udp_bind(c->rt, (struct sockaddr *)&ua, ulen, &c->u));
    ulen = sizeof(ua);
    ASSERT_OK(weft_socket_local_addr(c->u, &ua, &ulen));

    ASSERT_OK(weft_go(c->rt, errno_body, c, &j));
    wait_parked_in(c->rt, "weft_co_read");
    ASSERT_EQ(3, write(c->peer, "abc", 3));
    wait_parked_in(c->rt, "weft_co_accept");
    cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(0, connect(cfd, (struct sockaddr *)&c->la, c->llen));
    wait_parked_in(c->rt, "weft_co_recv_from");
    {
        int ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        ASSERT_EQ(2, sendto(ufd, "hi", 2, 0, (struct sockaddr *)&ua, ulen));
        close(ufd);
    }
    /* drain what the write_all sends, until it has all gone */
    while (got < (long)(1 << 18)) {
        ssize_t n = read(c->peer, sink, sizeof(sink));

        ASSERT(n > 0);
        got += n;
    }
    ASSERT_OK(weft_join_wait(j, NULL));
    weft_join_drop(j);
    for (int i = 0; i < E_COUNT; i++) {
        if (c->seen[i] != 1000 + i) {
            fprintf(stderr, "%s (returned %ld) changed errno to %d\n", e_names[i], c->res[i],
                    c->seen[i]);
            bad++;
        }
    }
    ASSERT_EQ(3, c->res[E_READ]);
    ASSERT_EQ(0, c->res[E_ACCEPT]);
    ASSERT_EQ(0, c->res[E_CONNECT]);
    ASSERT_EQ(2, c->res[E_RECV_FROM]);
    ASSERT_EQ(-ENOENT, c->res[E_FS_STAT]);
    ASSERT_EQ(0, c->res[E_CHAN_SELECT]);
    ASSERT_EQ(0, c->res[E_BLOCKING]);
    ASSERT_EQ(1 << 18, c->res[E_WRITE_ALL]);
    ASSERT_EQ(0, bad);
    close(cfd);
    ASSERT_OK(weft_socket_close(c->s));
    ASSERT_OK(weft_socket_close(c->l));
    ASSERT_OK(weft_socket_close(c->u));
    close(c->peer);
    CT_FREE(c->rt);
    free(c);
}

/* ---- outside a coroutine: -EINVAL and nothing done ------------------------------ */
TEST(outside_a_coroutine_nothing_is_done)
{
    weft_runtime *rt = ct_runtime(1);
    struct sockaddr_storage a;
    socklen_t len;
    int l = tcp_listener(&a, &len);
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    weft_socket *s = (weft_socket *)1;

    ASSERT(fd >= 0);
    /* a close outside a coroutine is refused: fd stays the caller's */
    ASSERT_EQ(-EINVAL, weft_co_fs_close(fd));
    ASSERT(fcntl(fd, F_GETFD) >= 0);
    ASSERT_EQ(0, close(fd));
    /* a connect outside a coroutine connects nothing */
    ASSERT_EQ(-EINVAL, weft_co_connect(rt, (struct sockaddr *)&a, len, 0, &s));
    ASSERT(s == (weft_socket *)1);
    usleep(20000);
    backlog_empty(l);
    close(l);
    CT_FREE(rt);
}

/* ---- after an abort: every call -ECANCELED at once, nothing done -------------------- */
typedef struct after_ctx {
    weft_chan *ch, *full;
    weft_chan *chans[10];
    weft_oneshot_tx *otx;
    weft_oneshot_rx *orx;
    weft_mutex *mu;
    weft_sem *sem;
    weft_rwlock *rw;
    weft_notify *nt;
    weft_cancel *tok;
    weft_group *grp;
    weft_watch *wt;
    weft_watch_rx *wrx;
    weft_bcast *bc;
    weft_bcast_rx *brx;
    weft_barrier *bar;
    weft_join *done;                  /* a finished task */
    weft_process *proc;               /* an exited child */
    weft_socket *s, *u, *l;
    int peer, tl;
    struct sockaddr_storage ta, ua;
    socklen_t tlen, ulen;
    weft_bufreader br;
    char brbuf[64];
    weft_bufwriter bw;
    char bwbuf[64];
    char dir[64];
    atomic_int parked, ran;
    int first;
    int bad;
} after_ctx;

static void *count_run(void *arg)
{
    atomic_fetch_add(&((after_ctx *)arg)->ran, 1);
    return NULL;
}

static atomic_int never_drops, never_polls;
typedef struct never { int pad; } never;
static weft_poll never_poll(never *n, weft_context *cx, int *out)
{
    (void)n; (void)cx; (void)out;
    atomic_fetch_add(&never_polls, 1);
    return WEFT_READY;                   /* ready: only a poll would finish it */
}
static void never_drop(never *n)
{
    (void)n;
    atomic_fetch_add(&never_drops, 1);
}
WEFT_DEFINE_FUTURE(never, never_poll, never_drop, int);

#define EXPECT_CANCELED(call)                                                 \
    do {                                                                      \
        long r_ = (long)(call);                                               \
        if (r_ != -ECANCELED) {                                               \
            fprintf(stderr, "after the abort: %s returned %ld\n", #call, r_); \
            c->bad++;                                                         \
        }                                                                     \
    } while (0)

static int after_body(void *arg)
{
    after_ctx *c = arg;
    int v = 0;
    char buf[32];
    weft_socket *ns = NULL;
    void *data = NULL;
    size_t dlen = 0;
    struct stat st;
    weft_fs_dirent *ents = NULL;
    weft_process_status ps;
    char path[128];
    int dst[10];
    void *dsts[10];
    size_t which = 99;
    never n1, n2, n3, n4;
    int o1 = 0, o2 = 0;
    weft_future_ref refs[2] = { { &never_future, &n3, &o1, 0 }, { &never_future, &n4, &o2, 0 } };

    for (int i = 0; i < 10; i++)
        dsts[i] = &dst[i];
    atomic_store(&c->parked, 1);
    c->first = weft_co_sleep(10u * 60 * 1000);     /* aborted here */

    EXPECT_CANCELED(weft_co_sleep(0));
    EXPECT_CANCELED(weft_co_yield());
    EXPECT_CANCELED(weft_co_join(c->done, &v));
    EXPECT_CANCELED(weft_co_chan_recv(c->ch, &v));
    EXPECT_CANCELED(weft_co_chan_send(c->ch, &v));
    EXPECT_CANCELED(weft_co_oneshot_recv(c->orx, &v));
    EXPECT_CANCELED(weft_co_mutex_lock(c->mu));
    EXPECT_CANCELED(weft_co_sem_acquire(c->sem, 1));
    EXPECT_CANCELED(weft_co_rwlock_read(c->rw));
    EXPECT_CANCELED(weft_co_rwlock_write(c->rw));
    EXPECT_CANCELED(weft_co_notify_wait(c->nt));
    EXPECT_CANCELED(weft_co_barrier_wait(c->bar));
    EXPECT_CANCELED(weft_co_cancel_wait(c->tok));
    EXPECT_CANCELED(weft_co_group_wait(c->grp));
    EXPECT_CANCELED(weft_co_read(c->s, buf, 1));
    EXPECT_CANCELED(weft_co_read_exact(c->s, buf, 1));
    EXPECT_CANCELED(weft_co_write(c->s, "x", 1));
    EXPECT_CANCELED(weft_co_write_all(c->s, "x", 1));
    EXPECT_CANCELED(weft_co_accept(c->l, &ns));
    EXPECT_CANCELED(weft_co_connect(NULL, (struct sockaddr *)&c->ta, c->tlen, 0, &ns));
    EXPECT_CANCELED(weft_co_read_line(&c->br, buf, sizeof(buf)));
    EXPECT_CANCELED(weft_co_read_until(&c->br, '\n', buf, sizeof(buf)));
    EXPECT_CANCELED(weft_co_bufread_exact(&c->br, buf, 1));
    EXPECT_CANCELED(weft_co_read_frame(&c->br, buf, sizeof(buf)));
    EXPECT_CANCELED(weft_co_bufwrite(&c->bw, "y", 1));
    EXPECT_CANCELED(weft_co_write_frame(&c->bw, "y", 1));
    EXPECT_CANCELED(weft_co_flush(&c->bw));
    snprintf(path, sizeof(path), "%s/f", c->dir);
    EXPECT_CANCELED(weft_co_fs_write_file(path, "z", 1));
    EXPECT_CANCELED(weft_co_fs_read_file("/dev/null", &data, &dlen));
    EXPECT_CANCELED(weft_co_fs_stat("/", &st));
    EXPECT_CANCELED(weft_co_fs_open(path, O_CREAT | O_WRONLY, 0600));
    EXPECT_CANCELED(weft_co_fs_mkdir(path, 0700));
    EXPECT_CANCELED(weft_co_fs_rename(c->dir, path));
    EXPECT_CANCELED(weft_co_fs_rmdir(c->dir));
    EXPECT_CANCELED(weft_co_fs_readdir(c->dir, &ents));
    EXPECT_CANCELED(weft_co_process_wait(c->proc, &ps));
    EXPECT_CANCELED(weft_co_select(refs, 2));
    EXPECT_CANCELED(weft_co_chan_select(c->chans, dsts, 10, &which));
    EXPECT_CANCELED(weft_co_watch_changed(c->wrx, &v));
    EXPECT_CANCELED(weft_co_bcast_recv(c->brx, &v, NULL));
    EXPECT_CANCELED(weft_co_recv_from(c->u, buf, sizeof(buf), NULL, NULL));
    EXPECT_CANCELED(weft_co_send_to(c->u, "q", 1, (struct sockaddr *)&c->ua, c->ulen));
    EXPECT_CANCELED(weft_co_blocking(NULL, count_run, c, NULL));
    EXPECT_CANCELED(weft_co_await(&never_future, &n1, &o1));
    EXPECT_CANCELED(weft_co_await_fn((weft_poll (*)(void *, weft_context *, void *))never_poll,
                                     (void (*)(void *))never_drop, &n2, &o1));
    EXPECT_CANCELED(weft_co_await_timeout(&never_future, &n1, &o1, 1000));
    if (!weft_co_cancelled())
        c->bad++;
    if (which != 99 || data != NULL || ents != NULL || ns != NULL)
        c->bad++;
    return 5;
}

static int returns_3(void *arg)
{
    (void)arg;
    return 3;
}

TEST(every_call_after_an_abort_is_canceled_and_does_nothing)
{
    weft_runtime *rt = ct_runtime(2);
    after_ctx *c = calloc(1, sizeof(*c));
    int sv[2], v = 1, out = 0, fdv;
    weft_join *j;
    char *argv[] = { "true", NULL };
    weft_process_options po = { .argv = argv };
    weft_process_status ps;
    char buf[64];
    uint64_t until = weft_now_ms() + WAIT_MS;
    weft_fs_dirent *ents = NULL;
    ssize_t r;

    ASSERT(c != NULL);
    ASSERT_OK(weft_chan_new(&c->ch, sizeof(int), 2));
    ASSERT_OK(weft_chan_try_send(c->ch, &v));       /* one to take, room to send */
    for (int i = 0; i < 10; i++) {
        ASSERT_OK(weft_chan_new(&c->chans[i], sizeof(int), 1));
        ASSERT_OK(weft_chan_try_send(c->chans[i], &v));
    }
    ASSERT_OK(weft_oneshot_new(&c->otx, &c->orx, sizeof(int)));
    ASSERT_OK(weft_oneshot_send(c->otx, &v));
    ASSERT_OK(weft_mutex_new(&c->mu));
    ASSERT_OK(weft_sem_new(&c->sem, 3));
    ASSERT_OK(weft_rwlock_new(&c->rw));
    ASSERT_OK(weft_notify_new(&c->nt));
    weft_notify_one(c->nt);                         /* a stored permit */
    ASSERT_OK(weft_cancel_new(&c->tok));
    weft_cancel_cancel(c->tok);
    ASSERT_OK(weft_group_new(&c->grp, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_watch_new(&c->wt, sizeof(int), &v));
    ASSERT_OK(weft_watch_rx_new(&c->wrx, c->wt));
    ASSERT_OK(weft_watch_send(c->wt, &v));          /* a change not seen yet */
    ASSERT_OK(weft_bcast_new(&c->bc, sizeof(int), 4));
    ASSERT_OK(weft_bcast_rx_new(&c->brx, c->bc));
    ASSERT_OK(weft_bcast_send(c->bc, &v));
    ASSERT_OK(weft_barrier_new(&c->bar, 1));
    ASSERT_OK(weft_go(rt, returns_3, NULL, &c->done));
    ASSERT_OK(weft_join_wait(c->done, &out));
    ASSERT_OK(weft_process_spawn(rt, &po, &c->proc));
    while ((r = weft_process_try_wait(c->proc, &ps)) == -EAGAIN) {
        ASSERT(weft_now_ms() < until);
        usleep(1000);
    }
    ASSERT_OK(r);
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    ASSERT_OK(weft_socket_adopt(rt, sv[0], &c->s));
    c->peer = sv[1];
    ASSERT_EQ(13, write(c->peer, "line\n\x00\x00\x00\x01zrest", 13));
    ASSERT_OK(weft_bufreader_init(&c->br, c->s, c->brbuf, sizeof(c->brbuf)));
    ASSERT_OK(weft_bufwriter_init(&c->bw, c->s, c->bwbuf, sizeof(c->bwbuf)));
    c->tl = tcp_listener(&c->ta, &c->tlen);
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &c->ua, &c->ulen));
    ASSERT_OK(weft_udp_bind(rt, (struct sockaddr *)&c->ua, c->ulen, &c->u));
    c->ulen = sizeof(c->ua);
    ASSERT_OK(weft_socket_local_addr(c->u, &c->ua, &c->ulen));
    {
        int ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        ASSERT_EQ(1, sendto(ufd, "d", 1, 0, (struct sockaddr *)&c->ua, c->ulen));
        close(ufd);
    }
    {
        struct sockaddr_storage a;
        socklen_t len;
        int cfd;

        ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &a, &len));
        ASSERT_OK(weft_listen(rt, (struct sockaddr *)&a, len, 0, &c->l));
        len = sizeof(a);
        ASSERT_OK(weft_socket_local_addr(c->l, &a, &len));
        cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_EQ(0, connect(cfd, (struct sockaddr *)&a, len));
        fdv = cfd;                               /* a connection waits in the backlog */
    }
    strcpy(c->dir, "/tmp/weft-a7-XXXXXX");
    ASSERT(mkdtemp(c->dir) != NULL);

    ASSERT_OK(weft_go(rt, after_body, c, &j));
    ASSERT(harness_wait_flag((volatile int *)&c->parked, WAIT_MS));
    wait_parked_in(rt, "weft_co_sleep");
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &out));
    weft_join_drop(j);
    ASSERT_EQ(-ECANCELED, c->first);
    ASSERT_EQ(0, c->bad);

    /* nothing was taken, sent, locked, made or run */
    ASSERT_EQ(1, weft_chan_len(c->ch));
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(1, weft_chan_len(c->chans[i]));
    ASSERT_OK(weft_oneshot_try_recv(c->orx, &out));
    ASSERT_OK(weft_mutex_try_lock(c->mu));
    ASSERT_OK(weft_mutex_unlock(c->mu));
    ASSERT_EQ(3, weft_sem_available(c->sem));
    ASSERT_OK(weft_rwlock_try_write(c->rw));
    ASSERT_OK(weft_rwlock_unlock_write(c->rw));
    ASSERT_EQ(0, weft_barrier_waiting(c->bar));
    ASSERT_EQ(1, weft_watch_has_changed(c->wrx));
    ASSERT_OK(weft_bcast_try_recv(c->brx, &out, NULL));
    ASSERT_EQ(13, recv(weft_socket_fd(c->s), buf, sizeof(buf), MSG_DONTWAIT));
    ASSERT_EQ(-1, recv(c->peer, buf, sizeof(buf), MSG_DONTWAIT));  /* nothing written */
    {
        const void *d;

        ASSERT_EQ(0, weft_bufreader_buffered(&c->br, &d));
    }
    ASSERT_EQ(1, recv(weft_socket_fd(c->u), buf, sizeof(buf), MSG_DONTWAIT));
    ASSERT_EQ(-1, recv(weft_socket_fd(c->u), buf, sizeof(buf), MSG_DONTWAIT)); /* none sent */
    {
        int afd = accept4(weft_socket_fd(c->l), NULL, NULL, SOCK_CLOEXEC);

        ASSERT(afd >= 0);                         /* still in the backlog */
        close(afd);
        close(fdv);
    }
    usleep(20000);
    backlog_empty(c->tl);                         /* the connect connected nothing */
    ASSERT_EQ(0, atomic_load(&c->ran));           /* the blocking job never ran */
    ASSERT_EQ(0, atomic_load(&never_polls));
    ASSERT_EQ(5, atomic_load(&never_drops));      /* n1 twice, n2, n3, n4 */
    {
        char path[128];

        snprintf(path, sizeof(path), "%s/f", c->dir);
        ASSERT_EQ(-1, access(path, F_OK));        /* no file, no directory */
    }
    ASSERT_EQ(0, rmdir(c->dir));                  /* still there, still empty */
    (void)ents;

    weft_bufreader_drop(&c->br);
    weft_bufwriter_drop(&c->bw);
    ASSERT_OK(weft_socket_close(c->s));
    ASSERT_OK(weft_socket_close(c->u));
    ASSERT_OK(weft_socket_close(c->l));
    close(c->peer);
    close(c->tl);
    weft_process_free(c->proc);
    weft_join_drop(c->done);
    weft_barrier_free(c->bar);
    weft_bcast_rx_drop(c->brx);
    weft_bcast_drop(c->bc);
    weft_watch_rx_drop(c->wrx);
    weft_watch_drop(c->wt);
    ASSERT_OK(weft_group_free(c->grp));
    weft_cancel_drop(c->tok);
    weft_notify_free(c->nt);
    weft_rwlock_free(c->rw);
    weft_sem_free(c->sem);
    weft_mutex_free(c->mu);
    weft_oneshot_rx_drop(c->orx);
    for (int i = 0; i < 10; i++)
        weft_chan_drop(c->chans[i]);
    weft_chan_drop(c->ch);
    CT_FREE(rt);
    free(c);
}

/* ---- migration: weft's locks across suspensions; errno on failures ------------------ */
__attribute__((noinline)) static pthread_t self_now(void)
{
    __asm__ __volatile__("" : : : "memory");
    return pthread_self();
}

typedef struct mig_ctx {
    weft_mutex *mu;
    weft_rwlock *rw;
    long counter, rcount;
    atomic_int migrations, bad;
} mig_ctx;

static int locker(void *arg)
{
    mig_ctx *m = arg;
    pthread_t last = self_now();
    uint64_t dl = weft_now_ms() + 10u * 60 * 1000;

    weft_co_deadline_set(dl);
    for (int i = 0; i < 50; i++) {
        long v;

        if (weft_co_mutex_lock(m->mu) != 0)
            return -1;
        v = m->counter;
        /* parked with the lock held: resumed anywhere */
        if (weft_co_yield() != 0 || (i % 8 == 0 && weft_co_sleep(1) != 0))
            return -2;
        m->counter = v + 1;
        if (weft_mutex_unlock(m->mu) != 0)     /* maybe on another thread */
            return -3;
        if (weft_co_rwlock_write(m->rw) != 0)
            return -4;
        v = m->rcount;
        if (weft_co_yield() != 0)
            return -5;
        m->rcount = v + 1;
        if (weft_rwlock_unlock_write(m->rw) != 0)
            return -6;
        if (!pthread_equal(last, self_now())) {
            atomic_fetch_add(&m->migrations, 1);
            last = self_now();
        }
        if (weft_co_deadline() != dl || !weft_co_is_coroutine() || weft_co_cancelled())
            atomic_fetch_add(&m->bad, 1);
    }
    return 0;
}

TEST(weft_locks_held_across_migrations)
{
    weft_runtime *rt = ct_runtime(4);
    mig_ctx m = { 0 };
    enum { K = 8 };
    weft_join *js[K];
    int out = -1;

    ASSERT_OK(weft_mutex_new(&m.mu));
    ASSERT_OK(weft_rwlock_new(&m.rw));
    for (int i = 0; i < K; i++)
        ASSERT_OK(weft_go(rt, locker, &m, &js[i]));
    for (int i = 0; i < K; i++) {
        ASSERT_OK(weft_join_wait(js[i], &out));
        ASSERT_EQ(0, out);
        weft_join_drop(js[i]);
    }
    ASSERT_EQ(K * 50, m.counter);                 /* mutual exclusion held */
    ASSERT_EQ(K * 50, m.rcount);
    ASSERT_EQ(0, atomic_load(&m.bad));
    fprintf(stderr, "%d migrations with a lock held or between\n", atomic_load(&m.migrations));
    ASSERT_OK(weft_mutex_try_lock(m.mu));
    ASSERT_OK(weft_mutex_unlock(m.mu));
    weft_mutex_free(m.mu);
    weft_rwlock_free(m.rw);
    CT_FREE(rt);
}

typedef struct fail_ctx {
    struct sockaddr_storage closed;
    socklen_t clen;
    long r[3];
    int seen[3];
} fail_ctx;

static int failing_calls(void *arg)
{
    fail_ctx *f = arg;
    weft_socket *s = NULL;
    struct stat st;

    errno_set(2001);
    f->r[0] = weft_co_connect(NULL, (struct sockaddr *)&f->closed, f->clen, 0, &s);
    f->seen[0] = errno_now();
    errno_set(2002);
    f->r[1] = weft_co_fs_open("/nonexistent/weft-a7/x", O_RDONLY, 0);
    f->seen[1] = errno_now();
    errno_set(2003);
    f->r[2] = weft_co_fs_stat("/", &st);
    f->seen[2] = errno_now();
    if (s)
        weft_socket_close(s);
    return 0;
}

TEST(errno_left_alone_by_calls_that_fail)
{
    weft_runtime *rt = ct_runtime(2);
    fail_ctx f = { 0 };
    int l = tcp_listener(&f.closed, &f.clen);
    int out = -1;

    close(l);                                     /* nobody listens there now */
    ASSERT_OK(weft_co_block_on(rt, failing_calls, &f, NULL, &out));
    ASSERT_EQ(-ECONNREFUSED, f.r[0]);
    ASSERT_EQ(-ENOENT, f.r[1]);
    ASSERT_EQ(0, f.r[2]);
    ASSERT_EQ(2001, f.seen[0]);
    ASSERT_EQ(2002, f.seen[1]);
    ASSERT_EQ(2003, f.seen[2]);
    CT_FREE(rt);
}

/* ---- weft_co_select with a bad set in an aborted coroutine --------------------------
 * coro.h: a bad set is -EINVAL and "the select owns nothing and no future is
 * dropped, they stay yours", while -ECANCELED means "every future dropped".
 * Once aborted, a bad set must still say -EINVAL (the caller keeps and drops
 * its futures), not -ECANCELED over futures nobody dropped. */
typedef struct badsel_ctx {
    atomic_int parked;
    int first, bad_slot, null_refs, good;
    int drops_after_bad, drops_after_good;
} badsel_ctx;

static int badsel_body(void *arg)
{
    badsel_ctx *b = arg;
    never a, c;
    int oa = 0, oc = 0;
    weft_future_ref refs[2] = { { &never_future, &a, &oa, 0 }, { NULL, &c, &oc, 0 } };

    atomic_store(&b->parked, 1);
    b->first = weft_co_sleep(10u * 60 * 1000);
    atomic_store(&never_drops, 0);
    b->bad_slot = weft_co_select(refs, 2);
    b->null_refs = weft_co_select(NULL, 2);
    b->drops_after_bad = atomic_load(&never_drops);
    refs[1].type = &never_future;
    b->good = weft_co_select(refs, 2);
    b->drops_after_good = atomic_load(&never_drops);
    return 0;
}

TEST(bad_select_set_after_an_abort_is_einval_and_drops_nothing)
{
    weft_runtime *rt = ct_runtime(2);
    badsel_ctx b = { 0 };
    weft_join *j = NULL;
    int out = 0;

    atomic_store(&never_polls, 0);
    ASSERT_OK(weft_go(rt, badsel_body, &b, &j));
    ASSERT(harness_wait_flag((volatile int *)&b.parked, WAIT_MS));
    wait_parked_in(rt, "weft_co_sleep");
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &out));
    weft_join_drop(j);
    ASSERT_EQ(-ECANCELED, b.first);
    ASSERT_EQ(-EINVAL, b.bad_slot);
    ASSERT_EQ(-EINVAL, b.null_refs);
    ASSERT_EQ(0, b.drops_after_bad);              /* they stayed the caller's */
    ASSERT_EQ(-ECANCELED, b.good);
    ASSERT_EQ(2, b.drops_after_good);             /* a valid set: every one dropped */
    ASSERT_EQ(0, atomic_load(&never_polls));
    CT_FREE(rt);
}

/* ---- outside a coroutine, with everything ready: -EINVAL and nothing taken ---------- */
typedef struct outside_ctx {
    weft_runtime *rt;
    weft_chan *ch, *room;
    weft_mutex *mu;
    weft_sem *sem;
    weft_socket *s, *u;
    int peer;
    struct sockaddr_storage ua;
    socklen_t ulen;
    weft_bufwriter bw;
    char bwbuf[64];
    char path[96];
    int bad;
} outside_ctx;

#define EXPECT_EINVAL(call)                                                   \
    do {                                                                      \
        long r_ = (long)(call);                                               \
        if (r_ != -EINVAL) {                                                  \
            fprintf(stderr, "outside: %s returned %ld\n", #call, r_);         \
            o->bad++;                                                         \
        }                                                                     \
    } while (0)

static void *outside_calls(void *arg)
{
    outside_ctx *o = arg;
    int v = 0;
    char buf[8];

    EXPECT_EINVAL(weft_co_chan_recv(o->ch, &v));
    EXPECT_EINVAL(weft_co_chan_send(o->room, &v));
    EXPECT_EINVAL(weft_co_mutex_lock(o->mu));
    EXPECT_EINVAL(weft_co_sem_acquire(o->sem, 1));
    EXPECT_EINVAL(weft_co_read(o->s, buf, sizeof(buf)));
    EXPECT_EINVAL(weft_co_write(o->s, "w", 1));
    EXPECT_EINVAL(weft_co_write_all(o->s, "w", 1));
    EXPECT_EINVAL(weft_co_bufwrite(&o->bw, "b", 1));
    EXPECT_EINVAL(weft_co_send_to(o->u, "d", 1, (struct sockaddr *)&o->ua, o->ulen));
    EXPECT_EINVAL(weft_co_fs_write_file(o->path, "f", 1));
    EXPECT_EINVAL(weft_co_sleep(0));
    EXPECT_EINVAL(weft_co_yield());
    return NULL;
}

static void outside_check(outside_ctx *o)
{
    char buf[8];

    ASSERT_EQ(0, o->bad);
    ASSERT_EQ(1, weft_chan_len(o->ch));
    ASSERT_EQ(0, weft_chan_len(o->room));
    ASSERT_OK(weft_mutex_try_lock(o->mu));
    ASSERT_OK(weft_mutex_unlock(o->mu));
    ASSERT_EQ(2, weft_sem_available(o->sem));
    ASSERT_EQ(2, recv(weft_socket_fd(o->s), buf, sizeof(buf), MSG_DONTWAIT));
    ASSERT_EQ(-1, recv(o->peer, buf, sizeof(buf), MSG_DONTWAIT));
    ASSERT_EQ(0, weft_bufwriter_buffered(&o->bw));
    ASSERT_EQ(-1, recv(weft_socket_fd(o->u), buf, sizeof(buf), MSG_DONTWAIT));
    ASSERT_EQ(-1, access(o->path, F_OK));
    ASSERT_EQ(2, write(o->peer, "rr", 2));       /* again, for the next round */
}

TEST(outside_a_coroutine_nothing_is_taken_or_sent)
{
    outside_ctx *o = calloc(1, sizeof(*o));
    int sv[2];
    weft_blocking_job *job = NULL;

    ASSERT(o != NULL);
    o->rt = ct_runtime(2);
    ASSERT_OK(weft_chan_new(&o->ch, sizeof(int), 1));
    ASSERT_OK(weft_chan_try_send(o->ch, &(int){ 1 }));
    ASSERT_OK(weft_chan_new(&o->room, sizeof(int), 1));
    ASSERT_OK(weft_mutex_new(&o->mu));
    ASSERT_OK(weft_sem_new(&o->sem, 2));
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    ASSERT_OK(weft_socket_adopt(o->rt, sv[0], &o->s));
    o->peer = sv[1];
    ASSERT_EQ(2, write(o->peer, "rr", 2));
    ASSERT_OK(weft_bufwriter_init(&o->bw, o->s, o->bwbuf, sizeof(o->bwbuf)));
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &o->ua, &o->ulen));
    ASSERT_OK(weft_udp_bind(o->rt, (struct sockaddr *)&o->ua, o->ulen, &o->u));
    o->ulen = sizeof(o->ua);
    ASSERT_OK(weft_socket_local_addr(o->u, &o->ua, &o->ulen));
    snprintf(o->path, sizeof(o->path), "/tmp/weft-a7-outside-%d", (int)getpid());

    outside_calls(o);                              /* the main thread */
    outside_check(o);
    /* a thread of the runtime's blocking pool (NULL pool off a worker: -EINVAL) */
    ASSERT_EQ(-EINVAL, weft_blocking_spawn(NULL, outside_calls, o, &job));
    ASSERT(job == NULL);
    {
        weft_blocking_pool *pool = NULL;

        ASSERT_OK(weft_blocking_default(o->rt, &pool));
        ASSERT_OK(weft_blocking_spawn(pool, outside_calls, o, &job));
        ASSERT_OK(weft_blocking_job_wait(job, NULL));
        weft_blocking_job_drop(job);
    }
    outside_check(o);

    weft_bufwriter_drop(&o->bw);
    ASSERT_OK(weft_socket_close(o->s));
    ASSERT_OK(weft_socket_close(o->u));
    close(o->peer);
    weft_sem_free(o->sem);
    weft_mutex_free(o->mu);
    weft_chan_drop(o->ch);
    weft_chan_drop(o->room);
    CT_FREE(o->rt);
    free(o);
}
