/* SPDX-License-Identifier: MIT */
/* Sockets on the reactor: handles, plain calls and the socket futures.
 *
 * A weft_socket * is not a pointer to memory: it is a token, the source's
 * table index, the generation it was registered with and its kind,
 * packed into the pointer's bits (see tok_make()). The source table is
 * never freed (see io/reactor.h), so any token, even one closed long ago,
 * after its runtime is gone, names valid slot memory, and the generation
 * tells whether it is still that socket: a second close, or any call on a
 * closed handle, finds a different generation and returns -EBADF. Nothing
 * is allocated per socket. Every future copies the source and the
 * generation at init, so a close while a future waits (or before it is
 * first polled) leaves the future with a stale generation: it completes
 * with -EBADF. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "io/reactor.h"
#include "net/handle.h"
#include "sched/runtime.h"
#include "time/driver.h"
#include "util/cx.h"
#include "weft/net.h"

/* Token layout (64 bits): bits 34..63 the slot index + 1 (so that no token
 * is NULL), bits 32..33 the kind (HK_*, net/handle.h: which calls the
 * futures make, whether a short read means drained, whether socket calls
 * apply), bits 0..31 the generation. */
_Static_assert(sizeof(uintptr_t) >= 8, "socket handles are 64-bit tokens");
_Static_assert(IO_MAX_SOURCES < (1ull << 30), "slot index fits the token");
#define TOK_KIND_SHIFT 32
#define TOK_INDEX_SHIFT 34

static weft_socket *tok_make(const struct weft__io_source *src, uint32_t gen, unsigned kind)
{
    uint64_t t = ((uint64_t)src->index + 1) << TOK_INDEX_SHIFT |
                 (uint64_t)(kind & 3u) << TOK_KIND_SHIFT | gen;

    return (weft_socket *)(uintptr_t)t;
}

/* The source, generation and kind a handle names: 0, or -EBADF for NULL
 * or a value no handle ever had. Whether it is still open is for the
 * generation to tell (begin, close). */
static int tok_get(const weft_socket *h, struct weft__io_source **src, uint32_t *gen,
                   unsigned *kind)
{
    uint64_t t = (uint64_t)(uintptr_t)h, index = t >> TOK_INDEX_SHIFT;

    if (index == 0 || (*src = weft__io_slot((uint32_t)(index - 1))) == NULL)
        return -EBADF;
    *gen = (uint32_t)t;
    if (kind)
        *kind = (unsigned)(t >> TOK_KIND_SHIFT) & 3u;
    return 0;
}

int weft__handle_source(weft_socket *h, struct weft__io_source **src, uint32_t *gen,
                        unsigned *kind)
{
    return tok_get(h, src, gen, kind);
}

static bool kind_is_socket(unsigned kind)
{
    return kind == HK_DGRAM || kind == HK_STREAM;
}

enum { OP_NONE, OP_ACCEPT, OP_CONNECT, OP_READ, OP_READ_EXACT, OP_WRITE, OP_WRITE_ALL,
       OP_RECV_FROM, OP_SEND_TO };

/* ---- Addresses ---------------------------------------------------------------- */
WEFT_API int weft_addr_ip(const char *host, uint16_t port, struct sockaddr_storage *addr,
                          socklen_t *len)
{
    if (addr == NULL || len == NULL)
        return -EINVAL;
    memset(addr, 0, sizeof(*addr));
    if (host == NULL || *host == '\0')
        host = "0.0.0.0";
    struct sockaddr_in *in4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;

    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        *len = sizeof(*in4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof(*in6);
        return 0;
    }
    return -EINVAL;
}

WEFT_API int weft_addr_unix(const char *path, struct sockaddr_storage *addr, socklen_t *len)
{
    struct sockaddr_un *un = (struct sockaddr_un *)addr;
    size_t n;

    if (path == NULL || *path == '\0' || addr == NULL || len == NULL)
        return -EINVAL;
    n = strlen(path);
    if (n >= sizeof(un->sun_path))
        return -ENAMETOOLONG;
    memset(addr, 0, sizeof(*addr));
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

/* ---- Handles -------------------------------------------------------------------- */
static weft_runtime *pick_rt(weft_runtime *rt)
{
    return rt ? rt : weft_runtime_current();
}

/* Register fd on reactor r and make a handle; on failure fd is closed
 * when close_on_fail, except after -EEXIST: the descriptor is registered
 * already, so it is another live handle's (adopted twice by mistake), and
 * closing it would pull it from under that handle, whose own close would
 * then close the number again, perhaps somebody else's descriptor by then. */
static int wrap_flags(struct weft__reactor *r, int fd, unsigned kind, unsigned reg_flags,
                      bool close_on_fail, weft_socket **out)
{
    struct weft__io_source *src;
    uint32_t gen;
    int err = weft__io_register_flags(r, fd, reg_flags, &src, &gen);

    if (err) {
        if (close_on_fail && err != -EEXIST)
            close(fd);
        return err;
    }
    *out = tok_make(src, gen, kind);
    return 0;
}

/* Register fd (owned: closed on failure) on reactor r and make a handle. */
static int wrap(struct weft__reactor *r, int fd, unsigned kind, weft_socket **out)
{
    return wrap_flags(r, fd, kind, IO_REG_FRESH, true, out);
}

int weft__handle_wrap(weft_runtime *rt, int fd, unsigned kind, unsigned reg_flags,
                      bool close_on_fail, weft_socket **out)
{
    struct weft__reactor *r;
    int err;

    rt = pick_rt(rt);
    if (rt == NULL || out == NULL) {
        if (close_on_fail)
            close(fd);
        return -EINVAL;
    }
    err = weft__io_reactor(weft__runtime_io(rt), &r);
    if (err) {
        if (close_on_fail)
            close(fd);
        return err;
    }
    err = wrap_flags(r, fd, kind, reg_flags, close_on_fail, out);
    weft__reactor_drop(r);            /* the source holds its own */
    return err;
}

/* Register fd (owned: closed on failure) on rt's reactor. */
static int wrap_rt(weft_runtime *rt, int fd, unsigned kind, unsigned reg_flags,
                   weft_socket **out)
{
    return weft__handle_wrap(rt, fd, kind, reg_flags, true, out);
}

static int set_int_opt(int fd, int level, int name, int v)
{
    return setsockopt(fd, level, name, &v, sizeof(v)) < 0 ? -errno : 0;
}

static bool family_ok(const struct sockaddr *addr, socklen_t len)
{
    if (addr == NULL || len < (socklen_t)sizeof(sa_family_t))
        return false;
    return addr->sa_family == AF_INET || addr->sa_family == AF_INET6 ||
           addr->sa_family == AF_UNIX;
}

WEFT_API int weft_listen(weft_runtime *rt, const struct sockaddr *addr, socklen_t len,
                         int backlog, weft_socket **out)
{
    int fd, err;

    rt = pick_rt(rt);
    if (rt == NULL || out == NULL || !family_ok(addr, len))
        return -EINVAL;
    fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    err = addr->sa_family == AF_UNIX ? 0 : set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (err == 0 && bind(fd, addr, len) < 0)
        err = -errno;
    if (err == 0 && listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
        err = -errno;
    if (err) {
        close(fd);
        return err;
    }
    return wrap_rt(rt, fd, HK_STREAM, IO_REG_FRESH | IO_REG_LISTENER, out);
}

WEFT_API int weft_udp_bind(weft_runtime *rt, const struct sockaddr *addr, socklen_t len,
                           weft_socket **out)
{
    int fd;

    rt = pick_rt(rt);
    if (rt == NULL || out == NULL || !family_ok(addr, len) || addr->sa_family == AF_UNIX)
        return -EINVAL;
    fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, addr, len) < 0) {
        int err = -errno;

        close(fd);
        return err;
    }
    return wrap_rt(rt, fd, HK_DGRAM, IO_REG_FRESH, out);
}

WEFT_API int weft_socket_adopt(weft_runtime *rt, int fd, weft_socket **out)
{
    int type, flags, err;
    socklen_t tl = sizeof(type);
    bool set = false;

    rt = pick_rt(rt);
    if (fd < 0)
        return -EBADF;
    if (rt == NULL || out == NULL) {
        close(fd);
        return -EINVAL;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || (flags = fcntl(fd, F_GETFL)) < 0 ||
        (!(flags & O_NONBLOCK) && (set = true, fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)) ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        err = -errno;
        goto out_close;
    }
    /* never IO_REG_LISTENER: the socket may have other holders (a dup, a
     * process it came from or was passed to: a pre-forked server's
     * listener), and shutdown(2) before the close would stop it for all of
     * them (see reactor.h). O_NONBLOCK belongs to the open file description,
     * which those holders share: one found in blocking mode is given back
     * so at the close (IO_REG_UNSET_NONBLOCK), as weft_fd_adopt() does, or
     * their blocking calls would fail with EAGAIN for good. */
    err = weft__handle_wrap(rt, fd, type == SOCK_STREAM ? HK_STREAM : HK_DGRAM,
                            set ? IO_REG_UNSET_NONBLOCK : 0, false, out);
    if (err == 0 || err == -EEXIST)   /* -EEXIST: another handle's; left as it is */
        return err;
out_close:
    if (set)
        fcntl(fd, F_SETFL, flags);    /* failed: the description as it was found */
    close(fd);
    return err;
}

WEFT_API int weft_socket_fd(weft_socket *s)
{
    struct weft__io_source *src;
    uint32_t gen;
    int fd = tok_get(s, &src, &gen, NULL);

    if (fd < 0)
        return fd;
    fd = weft__io_begin(src, gen);
    if (fd >= 0)
        weft__io_end(src);
    return fd;
}

/* Run a plain socket call on the descriptor with the source held busy:
 * -EBADF for a closed handle, -ENOTSOCK for a handle that is no socket. */
#define WITH_FD(s, fd, expr)                                \
    do {                                                    \
        struct weft__io_source *src_;                       \
        uint32_t gen_;                                      \
        unsigned kind_;                                     \
        int fd_ = tok_get((s), &src_, &gen_, &kind_);       \
        if (fd_ < 0)                                        \
            return fd_;                                     \
        fd_ = weft__io_begin(src_, gen_);                   \
        if (fd_ < 0)                                        \
            return fd_;                                     \
        if (!kind_is_socket(kind_)) {                       \
            weft__io_end(src_);                             \
            return -ENOTSOCK;                               \
        }                                                   \
        int fd = fd_;                                       \
        int r_ = (expr) < 0 ? -errno : 0;                   \
        weft__io_end(src_);                                 \
        return r_;                                          \
    } while (0)

WEFT_API int weft_socket_local_addr(weft_socket *s, struct sockaddr_storage *addr,
                                    socklen_t *len)
{
    if (addr == NULL || len == NULL)
        return -EINVAL;
    WITH_FD(s, fd, getsockname(fd, (struct sockaddr *)addr, len));
}

WEFT_API int weft_socket_peer_addr(weft_socket *s, struct sockaddr_storage *addr,
                                   socklen_t *len)
{
    if (addr == NULL || len == NULL)
        return -EINVAL;
    WITH_FD(s, fd, getpeername(fd, (struct sockaddr *)addr, len));
}

WEFT_API int weft_socket_setopt(weft_socket *s, int level, int name, const void *val,
                                socklen_t len)
{
    WITH_FD(s, fd, setsockopt(fd, level, name, val, len));
}

WEFT_API int weft_socket_set_nodelay(weft_socket *s, bool on)
{
    int v = on;

    return weft_socket_setopt(s, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v));
}

WEFT_API int weft_socket_set_reuseaddr(weft_socket *s, bool on)
{
    int v = on;

    return weft_socket_setopt(s, SOL_SOCKET, SO_REUSEADDR, &v, sizeof(v));
}

WEFT_API int weft_socket_shutdown(weft_socket *s, int how)
{
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
        return -EINVAL;
    WITH_FD(s, fd, shutdown(fd, how));
}

WEFT_API int weft_udp_connect(weft_socket *s, const struct sockaddr *addr, socklen_t len)
{
    if (addr == NULL)
        return -EINVAL;
    WITH_FD(s, fd, connect(fd, addr, len));
}

WEFT_API int weft_socket_close(weft_socket *s)
{
    struct weft__io_source *src;
    uint32_t gen;
    int err = tok_get(s, &src, &gen, NULL);

    if (err)
        return err;
    return weft__io_close(src, gen, false);
}

/* ---- Futures ----------------------------------------------------------------------- */
static void op_init(weft_io_op *op, int kind, weft_socket *s, void *buf, size_t len)
{
    /* everything but `sleep`, which only a connect with a timeout uses, and
     * which weft_connect_init() then initializes itself (weft_sleep_init);
     * every use of it is behind timeout_ms != 0. A read or write is made
     * once per message: this is 40% of the struct it need not clear */
    memset(op, 0, offsetof(weft_io_op, sleep));
    op->kind = (unsigned char)kind;
    op->buf = buf;
    op->len = len;
    {
        struct weft__io_source *src;
        unsigned hk;

        if (tok_get(s, &src, &op->gen, &hk) == 0) {
            op->src = src;
            op->hkind = (unsigned char)hk;
        }
    }
}

WEFT_API void weft_accept_init(weft_accept *a, weft_socket *l, weft_socket **out,
                               struct sockaddr_storage *peer, socklen_t *peerlen)
{
    if (a == NULL)
        return;
    op_init(a, OP_ACCEPT, l, NULL, 0);
    a->out = out;
    a->addr = peer;
    a->addrlen = peerlen;
    a->dir = IO_READ;
}

/* Register connect c's descriptor fd (owned: closed on failure) on rt's
 * reactor: 0, or -errno (then c->done with it). */
static int connect_register(weft_connect *c, weft_runtime *rt, int fd)
{
    struct weft__reactor *re;
    struct weft__io_source *src;
    int r = weft__io_reactor(weft__runtime_io(rt), &re);

    if (r == 0) {
        r = weft__io_register_flags(re, fd, IO_REG_FRESH, &src, &c->gen);
        weft__reactor_drop(re);       /* the source holds its own */
    }
    if (r) {
        close(fd);
        c->result = r;
        c->done = 1;
        return r;
    }
    c->src = src;
    return 0;
}

/* connect starts at init: socket(), connect(), registration (after
 * connect(): epoll reports an unconnected socket as writable and hung up,
 * which would look like a result). An error is kept for the first poll.
 * With rt NULL off a worker (the header: "NULL: the polling task's"), the
 * connect starts as well, and the registration waits for the first poll,
 * on the polling task's runtime: the descriptor is kept in `flags` (fd + 1;
 * 0: none), closed by the poll (no runtime there: -EINVAL) or the drop. */
WEFT_API void weft_connect_init(weft_connect *c, weft_runtime *rt, const struct sockaddr *addr,
                                socklen_t len, uint64_t timeout_ms, weft_socket **out)
{
    int fd, r;

    if (c == NULL)
        return;
    op_init(c, OP_CONNECT, NULL, NULL, 0);
    c->out = out;
    c->dir = IO_WRITE;
    c->timeout_ms = timeout_ms;
    rt = pick_rt(rt);
    if (out == NULL || !family_ok(addr, len)) {
        c->result = -EINVAL;
        c->done = 1;
        return;
    }
    fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->result = -errno;
        c->done = 1;
        return;
    }
    if (addr->sa_family != AF_UNIX)
        set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    do
        r = connect(fd, addr, len) < 0 ? -errno : 0;
    while (r == -EINTR);
    /* EAGAIN from a Unix socket's connect is no connect in progress: the
     * listener's backlog is full and nothing was queued (TCP says
     * EINPROGRESS). Waiting for the socket to become writable would wait
     * for ever (an unconnected Unix socket is writable and hung up at
     * once, and nothing changes when the backlog drains), so it is the
     * output, as Go's and mio's connects report it. */
    if (r != 0 && r != -EINPROGRESS && (r != -EAGAIN || addr->sa_family == AF_UNIX)) {
        close(fd);
        c->result = r;
        c->done = 1;
        return;
    }
    if (rt == NULL)
        c->flags = fd + 1;            /* registered by the first poll */
    else if (connect_register(c, rt, fd) < 0)
        return;
    if (timeout_ms)
        weft_sleep_init(&c->sleep, timeout_ms);
}

WEFT_API void weft_read_init(weft_read *r, weft_socket *s, void *buf, size_t len)
{
    if (r == NULL)
        return;
    op_init(r, OP_READ, s, buf, len);
    r->dir = IO_READ;
}

WEFT_API void weft_read_exact_init(weft_read *r, weft_socket *s, void *buf, size_t len)
{
    if (r == NULL)
        return;
    op_init(r, OP_READ_EXACT, s, buf, len);
    r->dir = IO_READ;
}

WEFT_API void weft_write_init(weft_write *w, weft_socket *s, const void *buf, size_t len)
{
    if (w == NULL)
        return;
    op_init(w, OP_WRITE, s, (void *)buf, len);
    w->dir = IO_WRITE;
}

WEFT_API void weft_write_all_init(weft_write *w, weft_socket *s, const void *buf, size_t len)
{
    if (w == NULL)
        return;
    op_init(w, OP_WRITE_ALL, s, (void *)buf, len);
    w->dir = IO_WRITE;
}

WEFT_API void weft_recv_from_init(weft_recv_from *r, weft_socket *s, void *buf, size_t len,
                                  struct sockaddr_storage *from, socklen_t *fromlen)
{
    if (r == NULL)
        return;
    op_init(r, OP_RECV_FROM, s, buf, len);
    r->dir = IO_READ;
    r->addr = from;
    r->addrlen = fromlen;
}

WEFT_API void weft_send_to_init(weft_send_to *w, weft_socket *s, const void *buf, size_t len,
                                const struct sockaddr *to, socklen_t tolen)
{
    if (w == NULL)
        return;
    op_init(w, OP_SEND_TO, s, (void *)buf, len);
    w->dir = IO_WRITE;
    w->addr = (struct sockaddr_storage *)(void *)to;
    w->flags = (int)tolen;
}

/* Run fn(arg) with SIGPIPE blocked in this thread, taking a SIGPIPE that
 * fn raised. A write to a pipe (or to a socket without MSG_NOSIGNAL) whose
 * reader is gone raises SIGPIPE at the writing thread (by default it kills
 * the process) besides failing with EPIPE. So SIGPIPE is blocked in this
 * thread for the call; a SIGPIPE that fn raised is pending on the thread
 * and is taken (sigtimedwait, no wait) before the old mask comes back,
 * unless one was pending already before the call (it stays, as the caller
 * left it). This is what libpq does for its sockets where MSG_NOSIGNAL is
 * missing. Cost: two pthread_sigmask calls (plus sigpending when the
 * caller blocks SIGPIPE itself). A signal raised by the kernel for a write
 * goes to the writing thread and, blocked, stays pending on it: no other
 * thread sees it. errno is what fn left. `epipe`, when not NULL, is
 * where fn leaves its result: the signal is then looked for only when
 * that is -EPIPE (a write that did not fail raised none), which saves a
 * system call per successful pipe write. */
static void nosigpipe(void (*fn)(void *arg), void *arg, const ssize_t *epipe)
{
    sigset_t pipe_set, old, pending;
    bool had = false;
    int err;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    if (sigismember(&old, SIGPIPE) && sigpending(&pending) == 0)
        had = sigismember(&pending, SIGPIPE);
    fn(arg);
    err = errno;
    if (!had && (epipe == NULL || *epipe == -EPIPE)) {
        const struct timespec zero = { 0, 0 };

        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
}

WEFT_API void weft_call_nosigpipe(void (*fn)(void *arg), void *arg)
{
    if (fn != NULL)
        nosigpipe(fn, arg, NULL);
}

struct pipe_write_call {
    int fd;
    const void *p;
    size_t n;
    ssize_t r;
};

static void pipe_write_call(void *arg)
{
    struct pipe_write_call *c = arg;

    c->r = write(c->fd, c->p, c->n);
    if (c->r < 0)
        c->r = -errno;
}

/* write(2) to a pipe, without SIGPIPE (a pipe has no MSG_NOSIGNAL); pipes
 * carry stdio and child processes' streams, not a server's traffic. */
static ssize_t pipe_write(int fd, const void *p, size_t n)
{
    struct pipe_write_call c = { fd, p, n, 0 };

    nosigpipe(pipe_write_call, &c, &c.r);
    return c.r;
}

/* The system call of one step; >= 0 or -errno. */
static ssize_t op_call(int fd, void *arg)
{
    weft_io_op *op = arg;
    char *p = (char *)op->buf + op->moved;
    size_t n = op->len - op->moved;
    ssize_t r;

    switch (op->kind) {
    case OP_ACCEPT:
        r = accept4(fd, (struct sockaddr *)op->addr, op->addr ? op->addrlen : NULL,
                    SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (r < 0)
            return -errno;
        /* registered on the listener's reactor while the call is in flight
         * on the listener, so its source (and reactor) cannot go away
         * under us: 0 with the handle in *out, or -errno (closed) */
        return wrap(((struct weft__io_source *)op->src)->r, (int)r, HK_STREAM, op->out);
    case OP_READ:
    case OP_READ_EXACT:
        r = kind_is_socket(op->hkind) ? recv(fd, p, n, 0) : read(fd, p, n);
        break;
    case OP_WRITE:
    case OP_WRITE_ALL:
        if (op->hkind == HK_PIPE)
            return pipe_write(fd, p, n);
        r = kind_is_socket(op->hkind) ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);
        break;
    case OP_RECV_FROM:
        r = recvfrom(fd, p, n, 0, (struct sockaddr *)op->addr, op->addr ? op->addrlen : NULL);
        break;
    case OP_SEND_TO:
        r = sendto(fd, p, n, MSG_NOSIGNAL, (const struct sockaddr *)op->addr,
                   (socklen_t)op->flags);
        break;
    default:
        return -EINVAL;
    }
    return r < 0 ? -errno : r;
}

/* A socket future on a handle that is no socket: -EBADF if it was closed
 * (as the plain calls answer), else -ENOTSOCK. */
static int not_a_socket(weft_io_op *op)
{
    int r = weft__io_begin(op->src, op->gen);

    if (r < 0)
        return r;
    weft__io_end(op->src);
    return -ENOTSOCK;
}

static weft_poll finish(weft_io_op *op, ssize_t r, ssize_t *result)
{
    op->done = 1;
    op->waiting = 0;
    op->result = r;
    if (result)
        *result = r;
    return WEFT_READY;
}

/* One step through the reactor: r, or WEFT_IO_PENDING. */
static ssize_t step(weft_io_op *op, weft_context *cx)
{
    /* a short read or write drains a byte stream: a stream socket or a pipe */
    bool stream = (op->hkind == HK_STREAM || op->hkind == HK_PIPE) &&
                  op->kind >= OP_READ && op->kind <= OP_WRITE_ALL;
    ssize_t r = WEFT_IO_NO_RX;

    /* a stream socket's reads: through io_uring's receive queue when the
     * reactor has one (io/reactor.c, "Receive") */
    if (op->hkind == HK_STREAM && atomic_load_explicit(&weft__io_rx_any, memory_order_relaxed) &&
        (op->kind == OP_READ || op->kind == OP_READ_EXACT || op->kind == OP_RECV_FROM))
        r = weft__io_recv(op->src, op->gen, cx, (char *)op->buf + op->moved, op->len - op->moved,
                          op->kind == OP_RECV_FROM ? op->addr : NULL,
                          op->kind == OP_RECV_FROM && op->addr ? op->addrlen : NULL);
    if (r == WEFT_IO_NO_RX)
        r = weft__io_do(op->src, op->gen, op->dir, cx, op_call, op,
                        stream ? op->len - op->moved : 0);

    op->waiting = r == WEFT_IO_PENDING;
    return r;
}

/* A zero-length operation that moves nothing: read / write on anything but
 * a datagram socket, read_exact / write_all on any. On a datagram socket a
 * read or write of 0 bytes is a real (empty) datagram, and recv_from /
 * send_to always are: those go to the system. */
static bool zero_is_noop(const weft_io_op *op)
{
    switch (op->kind) {
    case OP_READ_EXACT:
    case OP_WRITE_ALL:
        return true;
    case OP_READ:
    case OP_WRITE:
        return op->hkind != HK_DGRAM;
    default:
        return false;
    }
}

WEFT_API weft_poll weft_io_op_poll(weft_io_op *op, weft_context *cx, ssize_t *result)
{
    if (op == NULL) {                 /* a NULL future: only *result */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (!op->done && weft__cx_bad(cx)) {
        if (result)                   /* misuse (weft/core.h): nothing moved */
            *result = -EINVAL;
        return WEFT_READY;
    }
    return weft__io_op_poll(op, cx, result);
}

weft_poll weft__io_op_poll(weft_io_op *op, weft_context *cx, ssize_t *result)
{
    ssize_t r;

    if (op->done) {
        if (result)
            *result = op->result;
        return WEFT_READY;
    }
    if (op->src == NULL || op->kind < OP_READ)
        return finish(op, op->src == NULL ? -EBADF : -EINVAL, result);
    if ((op->kind == OP_RECV_FROM || op->kind == OP_SEND_TO) && !kind_is_socket(op->hkind))
        return finish(op, not_a_socket(op), result);
    /* A length above SSIZE_MAX is no real buffer's, and the output (a
     * ssize_t) could not report it: refused before any system call, so no
     * backend copies into (or sends from) memory the caller does not own
     * and no byte is taken from the kernel (the system's own answer varied:
     * -EFAULT from a pipe, a successful short recv() on a socket) */
    if (op->len > (size_t)SSIZE_MAX)
        return finish(op, -EINVAL, result);
    /* A NULL buffer with a length: refused the same way. recv(2) would
     * only have said -EFAULT, but a stream socket's reads on io_uring copy
     * from weft's receive buffers with memcpy (io/recv.c), which crashed */
    if (op->buf == NULL && op->len > 0)
        return finish(op, -EINVAL, result);
    /* recv_from with a `from` and no `fromlen`: recvfrom(2) would take the
     * datagram and then fail with -EFAULT (the datagram lost); refused
     * here, before the call, so that nothing is taken */
    if (op->kind == OP_RECV_FROM && op->addr != NULL && op->addrlen == NULL)
        return finish(op, -EINVAL, result);
    if (op->len == 0 && zero_is_noop(op)) {
        /* nothing to move: 0 at once (read(2) of 0 bytes), whatever the
         * readiness; a closed socket or a runtime gone is still reported */
        r = weft__io_begin(op->src, op->gen);
        if (r >= 0) {
            r = weft__io_is_shut(op->src) ? -ESHUTDOWN : 0;
            weft__io_end(op->src);
        }
        return finish(op, r, result);
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    for (;;) {
        r = step(op, cx);
        if (r == WEFT_IO_PENDING)
            return WEFT_PENDING;
        if (r < 0)
            return finish(op, r, result);
        if (op->kind != OP_READ_EXACT && op->kind != OP_WRITE_ALL)
            return finish(op, r, result);
        if (r == 0 && op->kind == OP_READ_EXACT && op->moved < op->len)
            return finish(op, -EPIPE, result);
        op->moved += (size_t)r;
        if (op->moved == op->len)
            return finish(op, (ssize_t)op->len, result);
    }
}

WEFT_API size_t weft_io_op_moved(const weft_io_op *op)
{
    /* (a connect keeps a flag there: see weft__connect_poll()) */
    return op && op->kind != OP_CONNECT ? op->moved : 0;
}

WEFT_API weft_poll weft_accept_poll(weft_accept *a, weft_context *cx, int *result)
{
    ssize_t r;
    bool bad;

    if (a == NULL) {                 /* a NULL future: only *result */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (a->done) {
        if (result)
            *result = (int)a->result;
        return WEFT_READY;
    }
    if (weft__cx_bad(cx)) {          /* misuse (weft/core.h): nothing taken */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    /* a `peer` without `peerlen`: accept4(2) would take the connection,
     * fail to write the address (-EFAULT) and close it: refused before */
    bad = a->kind != OP_ACCEPT || a->out == NULL || (a->addr != NULL && a->addrlen == NULL);
    if (a->src == NULL || bad || !kind_is_socket(a->hkind)) {
        a->done = 1;
        a->result = a->src == NULL ? -EBADF : bad ? -EINVAL : not_a_socket(a);
        if (result)
            *result = (int)a->result;
        return WEFT_READY;
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    r = step(a, cx);                  /* accepts and registers: 0 or -errno */
    if (r == WEFT_IO_PENDING)
        return WEFT_PENDING;
    a->done = 1;
    a->waiting = 0;
    a->result = r;
    if (result)
        *result = (int)r;
    return WEFT_READY;
}

/* connect's steps: kind OP_CONNECT; `moved` is 1 once a poll has spent its
 * unit of the budget (see weft__connect_poll()). */
static ssize_t connect_check(int fd, void *arg)
{
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    struct sockaddr_storage peer;
    socklen_t pl = sizeof(peer);

    (void)arg;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        return -errno;
    if (soerr)
        return -soerr;
    if (getpeername(fd, (struct sockaddr *)&peer, &pl) < 0)
        return errno == ENOTCONN ? -EAGAIN : -errno;
    return 0;
}

static void connect_fail(weft_connect *c)
{
    if (c->src) {
        weft__io_close(c->src, c->gen, false);
        c->src = NULL;
    }
}

WEFT_API weft_poll weft_connect_poll(weft_connect *c, weft_context *cx, int *result)
{
    if (c == NULL) {                 /* a NULL future: only *result */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (!c->done && weft__cx_bad(cx)) {
        if (result)                  /* misuse (weft/core.h): nothing connected */
            *result = -EINVAL;
        return WEFT_READY;
    }
    return weft__connect_poll(c, cx, result);
}

weft_poll weft__connect_poll(weft_connect *c, weft_context *cx, int *result)
{
    ssize_t r;

    /* A connect can complete at its first poll (refused at once on
     * loopback, or failed at init: no such Unix path), connect after
     * connect: its first poll spends a unit of the budget (lock.h's rule),
     * or a task retrying in a loop held its worker. `moved` (no bytes move
     * in a connect) says the first poll has passed; a poll after READY
     * spends nothing. */
    if (!c->moved) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        c->moved = 1;
    }
    if (c->done)
        goto out;
    if (c->kind == OP_CONNECT && c->src == NULL && c->flags > 0) {
        /* made off a worker with rt NULL: the polling task's runtime */
        weft_runtime *rt = weft_runtime_current();
        int fd = c->flags - 1;

        c->flags = 0;
        if (rt == NULL) {
            close(fd);
            c->result = -EINVAL;
            goto done;
        }
        if (connect_register(c, rt, fd) < 0)
            goto done;
    }
    if (c->kind != OP_CONNECT || c->src == NULL) {
        c->result = -EINVAL;
        goto done;
    }
    r = weft__io_do(c->src, c->gen, IO_WRITE, cx, connect_check, NULL, 0);
    c->waiting = r == WEFT_IO_PENDING;
    if (r == WEFT_IO_PENDING) {
        if (c->timeout_ms && weft__sleep_poll(&c->sleep, cx) == WEFT_READY) {
            weft__io_forget(c->src, c->gen, IO_WRITE);
            connect_fail(c);
            c->result = -ETIMEDOUT;
            goto done;
        }
        return WEFT_PENDING;
    }
    if (r < 0) {
        connect_fail(c);
        c->result = r;
        goto done;
    }
    *c->out = tok_make(c->src, c->gen, HK_STREAM);
    c->src = NULL;                    /* the socket owns it now */
    c->result = 0;
done:
    if (c->timeout_ms)
        weft_sleep_drop(&c->sleep);
    c->done = 1;
    c->waiting = 0;
out:
    if (result)
        *result = (int)c->result;
    return WEFT_READY;
}

WEFT_API void weft_io_op_drop(weft_io_op *op)
{
    if (op == NULL)
        return;
    if (op->kind == OP_CONNECT) {
        if (!op->done) {
            if (op->src == NULL && op->flags > 0)
                close(op->flags - 1); /* never registered (see connect_init) */
            op->flags = 0;
            connect_fail(op);         /* wakes (drops) its own stored waker */
            if (op->timeout_ms)
                weft_sleep_drop(&op->sleep);
        }
    } else if (op->waiting && op->src) {
        weft__io_forget(op->src, op->gen, op->dir);
    }
    op->waiting = 0;
    op->done = 1;
    op->result = -ECANCELED;
    op->kind = OP_NONE;
}

static weft_poll accept_thunk(void *self, weft_context *cx, void *out)
{
    return weft_accept_poll(self, cx, out);
}

static weft_poll connect_thunk(void *self, weft_context *cx, void *out)
{
    return weft_connect_poll(self, cx, out);
}

static weft_poll op_thunk(void *self, weft_context *cx, void *out)
{
    return weft_io_op_poll(self, cx, out);
}

static void drop_thunk(void *self)
{
    weft_io_op_drop(self);
}

WEFT_API const weft_future_type weft_accept_future = {
    accept_thunk, drop_thunk, sizeof(weft_io_op), _Alignof(weft_io_op),
    sizeof(int), _Alignof(int), "weft_accept"
};
WEFT_API const weft_future_type weft_connect_future = {
    connect_thunk, drop_thunk, sizeof(weft_io_op), _Alignof(weft_io_op),
    sizeof(int), _Alignof(int), "weft_connect"
};
WEFT_API const weft_future_type weft_io_op_future = {
    op_thunk, drop_thunk, sizeof(weft_io_op), _Alignof(weft_io_op),
    sizeof(ssize_t), _Alignof(ssize_t), "weft_io_op"
};
