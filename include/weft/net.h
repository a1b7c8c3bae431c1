/* SPDX-License-Identifier: MIT */
/* weft/net.h - sockets: TCP, UDP and Unix stream sockets on the runtime's
 * epoll reactor.
 *
 * A weft_socket is a non-blocking socket registered with one runtime's
 * reactor. It is owned by whoever made it (weft_listen(), weft_udp_bind(),
 * weft_socket_adopt(), an accept or connect future) until
 * weft_socket_close(). Every call that may wait
 * is a future, a plain struct its owner embeds: *_init fixes the socket and
 * buffers, *_poll drives it (from a task of the socket's runtime), *_drop
 * releases it. The common rules of weft/lock.h apply: drop is valid in every
 * state and idempotent; polling after READY returns the same result.
 *
 * Results are counts (>= 0) or negative errno values, never -1/errno:
 *   -EBADF       the socket was closed (also: closed while a future waited;
 *                that future wakes up with -EBADF, nothing is freed under it)
 *   -ESHUTDOWN   a future polled after the socket's runtime was freed
 *   -ECONNRESET, -ECONNREFUSED, -EPIPE, -ETIMEDOUT, ...  from the system.
 * EINTR is retried inside; SIGPIPE is never raised (MSG_NOSIGNAL); EAGAIN
 * never reaches the caller of a future (it waits instead), except a Unix
 * connect to a full backlog (see weft_connect_init) and a name lookup that
 * could start no pool thread (see weft_resolve_init; connect_host passes
 * it on).
 *
 * Concurrency: a socket may be used from any thread, but at most one future
 * reads (or accepts, or receives) and one future writes (or sends) at a time:
 * the reactor keeps one reader waker and one writer waker per socket, as a
 * split stream would. weft_socket_close() may be called while futures wait
 * on the socket (they complete with -EBADF); no future created before the
 * close uses the descriptor after it, and the descriptor is closed only
 * once no system call on it is in flight. The handle itself is invalid after
 * close; futures created from it then complete with -EBADF.
 * So to stop a task that keeps making calls on a socket, do not close it
 * under that task: weft_socket_shutdown(s, SHUT_RDWR) makes its reads see
 * end of stream and its writes -EPIPE (a listener's accept: -EINVAL), and
 * the task closes the socket. That holds for stream sockets: the system reports no end for datagrams,
 * so a UDP socket's receive goes on waiting after a shutdown (which says
 * -ENOTCONN when the socket is not connected): abort such a task, or give
 * its receives a limit (weft_timeout).
 *
 * Handles. A weft_socket * is an opaque token, not a pointer to memory
 * (never dereference it): it names a slot of a process-wide table of
 * sources that is never freed, plus the generation the slot had when the
 * socket was made. Closing bumps the generation, so a closed handle stays
 * safe to pass to any call, from any thread, at any later time (after its
 * runtime is freed too): weft_socket_close() again returns -EBADF, plain
 * calls return -EBADF, futures complete with -EBADF. Even when the slot
 * has been reused by a newer socket the stale handle cannot reach it (the
 * generations differ; a 32-bit generation per slot wraps only after 2^32
 * reuses of that one slot). Making a socket allocates nothing.
 *
 * Outliving the runtime. A socket keeps the runtime's reactor (its epoll
 * instance) alive by reference, as tokio lets I/O objects outlive their
 * runtime. After weft_runtime_free(): weft_socket_close() works (closes the
 * descriptor, returns 0; the last socket or loop frees the reactor), and so
 * do the plain calls (weft_socket_fd, the address and option calls,
 * shutdown, weft_udp_connect); every socket future completes with
 * -ESHUTDOWN at its next poll, whether or not the system call could go
 * through (nobody polls for readiness any more, so it could never be
 * woken), and a future still waiting in a task of another runtime at that
 * moment is woken to see it. An accept then makes no socket. The runtime
 * does not close its sockets when freed: each is closed by
 * weft_socket_close(), before or after (tasks cancelled at shutdown close
 * theirs in their drop, as any owner would).
 *
 * Streams. weft_fd_adopt() and weft_pipe() (weft/stream.h) make handles of
 * the same type for descriptors that are not sockets (pipes, ttys,
 * eventfds): the read and write futures and close work on them; the calls
 * and futures that need a socket (addresses, options, shutdown, UDP
 * connect, accept, recv_from, send_to) answer -ENOTSOCK.
 *
 * Every future below also has a ready-made descriptor (weft_accept_future,
 * weft_connect_future, and weft_io_op_future for every read, write, send and
 * receive), so that it composes: weft_timeout over a read is a timed read, a
 * join_all over writes is a scatter. */
#ifndef WEFT_NET_H
#define WEFT_NET_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "blocking.h"
#include "core.h"
#include "sched.h"
#include "timer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_socket weft_socket;   /* opaque */

/* ---- Addresses -------------------------------------------------------------- */
/* Fill *addr / *len from a numeric IPv4 or IPv6 host ("127.0.0.1", "::1";
 * NULL or "" means the IPv4 wildcard 0.0.0.0) and a port. No name lookup
 * (that would block): -EINVAL for anything else. Thread: any. */
WEFT_API int weft_addr_ip(const char *host, uint16_t port, struct sockaddr_storage *addr,
                          socklen_t *len);
/* Fill *addr / *len with a Unix-domain path; -ENAMETOOLONG if it does not
 * fit sun_path, -EINVAL for NULL or "". Thread: any. */
WEFT_API int weft_addr_unix(const char *path, struct sockaddr_storage *addr, socklen_t *len);

/* ---- Names ------------------------------------------------------------------
 * weft_addr_ip() never looks a name up. A name ("localhost", "example.com")
 * is looked up by a future that runs getaddrinfo(3) on a blocking pool
 * (weft/blocking.h; NULL: the runtime's default pool), so the task's worker
 * runs other tasks meanwhile. The lookup's job owns its copy of the name and
 * of the answer: a lookup cannot be interrupted, but the future can be
 * dropped (or its task aborted) at any time, and the job then finishes on
 * its own, frees what it found, and touches nothing of the future's.
 *
 * Errors: getaddrinfo's EAI_* codes become WEFT_EAI_NONAME (no such host, or
 * none of the family asked for), WEFT_EAI_AGAIN (no answer for now: the name
 * server timed out) and WEFT_EAI_FAIL (failed for good) (weft/core.h;
 * weft_strerror() names them), -ENOMEM (EAI_MEMORY), -EAFNOSUPPORT
 * (EAI_FAMILY), -ESOCKTNOSUPPORT (EAI_SOCKTYPE), -EINVAL (EAI_BADFLAGS,
 * EAI_SERVICE), and EAI_SYSTEM's errno (negated). */

/* Longest host name a lookup takes, its NUL included (a DNS name has at
 * most 253 characters): longer ones fail with -ENAMETOOLONG. */
#define WEFT_RESOLVE_HOST_MAX 256

/* One address of an answer, ready for weft_connect_init(), weft_listen()
 * or weft_udp_bind(): (const struct sockaddr *)&a->addr, a->len. */
typedef struct weft_addrinfo {
    struct sockaddr_storage addr;   /* the port is set */
    socklen_t len;
    int family;                     /* AF_INET or AF_INET6 */
    int socktype;                   /* SOCK_STREAM, SOCK_DGRAM, ... */
    int protocol;                   /* IPPROTO_TCP, IPPROTO_UDP, ... */
} weft_addrinfo;

/* An answer: `count` (at least 1) addresses at `addrs`, in getaddrinfo's
 * order (its preference: RFC 6724). One allocation, owned by whoever the
 * lookup handed it to: release it with weft_addrlist_free(). */
typedef struct weft_addrlist {
    size_t count;
    weft_addrinfo *addrs;           /* inside the same allocation */
} weft_addrlist;

/* Free an answer. NULL is ignored. Thread: any. */
WEFT_API void weft_addrlist_free(weft_addrlist *list);

/* What to look up besides the name; all zero (or a NULL pointer) means TCP
 * addresses of either family. */
typedef struct weft_resolve_options {
    int family;                     /* 0 (AF_UNSPEC): both; AF_INET; AF_INET6 */
    int socktype;                   /* 0: SOCK_STREAM; or SOCK_DGRAM, ... */
    /* getaddrinfo's AI_* flags (<netdb.h>), passed through:
     * AI_NUMERICHOST (numeric addresses only, never a lookup), AI_PASSIVE
     * (with a NULL host: the wildcard address, to bind), AI_ADDRCONFIG,
     * AI_V4MAPPED, ... (AI_CANONNAME is ignored; the port is always
     * numeric). */
    int flags;
} weft_resolve_options;

/* Name lookup future. Output (*result): 0 with the answer in *out (the
 * caller's from then on: weft_addrlist_free()), or a negative code (see
 * "Errors" above), -ENAMETOOLONG, -EINVAL (NULL out, or a NULL pool polled
 * off a worker), -ESHUTDOWN (the pool or its runtime shut down), -ECANCELED
 * (cancelled by a pool shutdown before it ran), -ENOMEM, -EAGAIN (no pool
 * thread could be started). *out is written only on success, in the poll
 * that returns READY. Cancel safety: dropping it loses nothing but the
 * answer; the lookup may go on for a while on its pool thread (each lookup
 * takes a pool thread until it ends, DNS timeouts included). Follows
 * weft/lock.h's common rules for futures. Thread: the future's owner. */
typedef struct weft_resolve {
    /* private: may change in any release */
    weft_blocking_pool *pool;
    weft_blocking_job *job;
    weft_addrlist **out;
    weft_blocking_join join;
    int family, socktype, flags, result;
    uint16_t port;
    unsigned char state, has_host;
    char host[WEFT_RESOLVE_HOST_MAX];
} weft_resolve;

/* init: look up `host` (copied here; NULL: no name, see AI_PASSIVE) with
 * `port` in every address, on `pool` (NULL: the default pool of the runtime
 * whose task polls it, see weft_blocking_default()); `opt` may be NULL.
 * Nothing starts before the first poll (which makes one allocation, the
 * job). poll: READY once the lookup ended. drop: detaches from the job. */
WEFT_API void weft_resolve_init(weft_resolve *r, weft_blocking_pool *pool, const char *host,
                                uint16_t port, const weft_resolve_options *opt,
                                weft_addrlist **out);
WEFT_API weft_poll weft_resolve_poll(weft_resolve *r, weft_context *cx, int *result);
WEFT_API void weft_resolve_drop(weft_resolve *r);

/* ---- Making sockets ---------------------------------------------------------- */
/* `rt` NULL means the runtime of the calling worker (-EINVAL if the caller
 * is not one). On success *out owns the socket; on failure *out is
 * untouched and nothing is left open. Thread: any. */

/* A listening TCP (or, for an AF_UNIX address, Unix stream) socket bound to
 * addr, with SO_REUSEADDR (TCP). backlog <= 0 means SOMAXCONN. For AF_UNIX
 * an existing socket file at the path is NOT removed: -EADDRINUSE. */
WEFT_API int weft_listen(weft_runtime *rt, const struct sockaddr *addr, socklen_t len,
                         int backlog, weft_socket **out);
/* A UDP socket bound to addr (port 0: any free port). */
WEFT_API int weft_udp_bind(weft_runtime *rt, const struct sockaddr *addr, socklen_t len,
                           weft_socket **out);
/* Take over an existing socket descriptor: it is made non-blocking and
 * close-on-exec and is closed by weft_socket_close() (also on failure
 * here: -EBADF / -ENOTSOCK / -ENOMEM / reactor errors close it), except
 * -EEXIST: the descriptor is registered with this reactor already (adopted
 * before, or watched by a weft_fdwatch: see weft_fd_adopt() in
 * weft/stream.h for what io_uring recognises), so it belongs to that
 * handle and is left open for it.
 * Other copies of the socket: O_NONBLOCK belongs to the open file
 * description, which every copy shares (a dup(2), a descriptor of a forked
 * process, one passed over SCM_RIGHTS); close-on-exec does not (it is this
 * descriptor's own). So while weft holds a socket that was in blocking
 * mode, the caller's other copies are non-blocking too: their blocking
 * accept, recv, send fail with EAGAIN instead of waiting. When weft closes
 * it (weft_socket_close(), or a failed adopt), it clears O_NONBLOCK again,
 * and the copies block as before; a socket that was non-blocking already
 * is left so. Keep other copies out of blocking calls meanwhile (or adopt
 * a socket nobody else holds). Pipes,
 * ttys, eventfds and other descriptors that are not sockets: weft_fd_adopt()
 * in weft/stream.h. */
WEFT_API int weft_socket_adopt(weft_runtime *rt, int fd, weft_socket **out);

/* ---- Plain calls (never wait) ------------------------------------------------ */
/* All of them: -EBADF for NULL or a closed handle; they keep working after
 * the runtime is freed. Thread: any. */
/* The descriptor (for getsockopt and the like; do not close it), or -EBADF.
 * Do not read from it either while weft reads the socket: on the io_uring
 * backend a stream socket's bytes may already wait in weft's receive queue
 * (docs/io.md, "Receive"), and reading the descriptor would skip them. */
WEFT_API int weft_socket_fd(weft_socket *s);
/* getsockname / getpeername into *addr, *len (in: size of *addr). */
WEFT_API int weft_socket_local_addr(weft_socket *s, struct sockaddr_storage *addr,
                                    socklen_t *len);
WEFT_API int weft_socket_peer_addr(weft_socket *s, struct sockaddr_storage *addr,
                                   socklen_t *len);
/* setsockopt, with TCP_NODELAY and SO_REUSEADDR as shorthands. */
WEFT_API int weft_socket_setopt(weft_socket *s, int level, int name, const void *val,
                                socklen_t len);
WEFT_API int weft_socket_set_nodelay(weft_socket *s, bool on);
WEFT_API int weft_socket_set_reuseaddr(weft_socket *s, bool on);
/* shutdown(2): SHUT_RD, SHUT_WR (half-close: the peer reads EOF) or
 * SHUT_RDWR. Wakes nothing by itself; the socket stays open. On UDP: the
 * system's answer (-ENOTCONN unless connected), and receives keep waiting
 * (see "Concurrency" above). */
WEFT_API int weft_socket_shutdown(weft_socket *s, int how);
/* UDP: fix the peer (then weft_read / weft_write send and receive); UDP's
 * connect never waits. */
WEFT_API int weft_udp_connect(weft_socket *s, const struct sockaddr *addr, socklen_t len);
/* Close: futures waiting on it complete with -EBADF (also from another
 * thread while they wait), the descriptor is closed once no system call on
 * it is in flight, the handle becomes stale (see "Handles" above). 0, or
 * -EBADF for NULL or a socket already closed (a second close is safe and
 * harmless). Works after the runtime is freed. Thread: any.
 * With the io_uring backend the system may hold the file itself a moment
 * longer (until the worker that armed its poll has run the cancellation:
 * microseconds when it waits for I/O; on a runtime of one worker, whose
 * ring runs such work only when that worker enters it, as long as the
 * poll it is in the middle of), so the peer may see the end (FIN, or
 * -EPIPE on a pipe) that much after the call returns. A listener made by weft_listen() is
 * shut down before the close, so a connect made after the call is
 * refused; an adopted one is not (it may have other holders, for whom
 * shutdown(2) would stop it too): a connect in that moment may be queued
 * and then reset. */
WEFT_API int weft_socket_close(weft_socket *s);

/* ---- Futures ------------------------------------------------------------------ */
/* One struct serves every socket future; its fields are private. */
typedef struct weft_io_op {
    /* private: may change in any release */
    void *src;
    uint32_t gen;
    unsigned char kind, dir, waiting, done, hkind;
    int flags;
    void *buf;
    size_t len, moved;
    ssize_t result;
    struct sockaddr_storage *addr;
    socklen_t *addrlen;
    weft_socket **out;
    uint64_t timeout_ms;
    weft_sleep sleep;
} weft_io_op;

typedef weft_io_op weft_accept;
typedef weft_io_op weft_connect;
typedef weft_io_op weft_read;
typedef weft_io_op weft_write;
typedef weft_io_op weft_recv_from;
typedef weft_io_op weft_send_to;

/* Accept one connection from listener `l`. Output (*result): 0 with the new
 * socket in *out (owned by the caller), or -errno. The peer's address goes
 * to *peer / *peerlen when they are non-NULL (*peerlen: the size of *peer
 * in, the address's length out; a `peer` without `peerlen` is -EINVAL at
 * the first poll, no connection taken). Descriptor exhaustion (EMFILE,
 * ENFILE, ENOBUFS, ENOMEM) is reported once as that error; the listener
 * stays usable, and the pending connection stays queued in the kernel:
 * retrying at once would spin, so a server should back off (weft_sleep) or
 * close something first. Cancel safety: dropping it loses no connection (a
 * connection is taken from the kernel only inside a poll that returns it). */
WEFT_API void weft_accept_init(weft_accept *a, weft_socket *l, weft_socket **out,
                               struct sockaddr_storage *peer, socklen_t *peerlen);
WEFT_API weft_poll weft_accept_poll(weft_accept *a, weft_context *cx, int *result);

/* Connect a new stream socket (TCP for AF_INET/AF_INET6, Unix for AF_UNIX)
 * to addr; timeout_ms 0 means no limit (else -ETIMEDOUT when it runs out).
 * Output: 0 with the socket in *out, or -errno (-ECONNREFUSED, ...; for
 * a Unix listener whose backlog is full, -EAGAIN at the first poll: the
 * system queues nothing and tells no one when room comes, so there is
 * nothing to wait for; retry later. The one case where EAGAIN is an
 * output). TCP
 * sockets get TCP_NODELAY. `rt` as above (NULL: the polling task's; a
 * future made with rt NULL on a thread that is no worker connects at init
 * and joins the runtime of the task that first polls it, or completes
 * with -EINVAL if that is no task either). Cancel safety: dropping it
 * closes the half-made socket. */
WEFT_API void weft_connect_init(weft_connect *c, weft_runtime *rt, const struct sockaddr *addr,
                                socklen_t len, uint64_t timeout_ms, weft_socket **out);
WEFT_API weft_poll weft_connect_poll(weft_connect *c, weft_context *cx, int *result);

/* Connect by name: look `host` up (as weft_resolve_init() with TCP and no
 * flags, on the default blocking pool of `rt`), then connect to each
 * address in turn, in the answer's order, until one takes. `timeout_ms`
 * (0: no limit) bounds the whole of it, fixed at init: when it runs out
 * (during the lookup too) the output is -ETIMEDOUT. With a limit, each
 * attempt gets an equal share of the time left, but at least 2 s (or all
 * that is left), so that one unreachable address cannot use up the time of
 * those after it (as Go's dialer does). Output (*result): 0 with the socket
 * in *out (owned by the caller), or the error of the last attempt
 * (-ECONNREFUSED, -ETIMEDOUT, ...), or the lookup's error (see "Names"),
 * or -EINVAL (NULL out or host; NULL rt polled off a worker). `host` is
 * copied at init (-ENAMETOOLONG at WEFT_RESOLVE_HOST_MAX bytes or more).
 * `rt` as weft_connect_init(). Cancel safety: dropping it closes the half-made
 * socket and detaches from the lookup (see weft_resolve_init()). Not
 * happy eyeballs: the attempts never overlap. */
typedef struct weft_connect_host {
    /* private: may change in any release */
    weft_runtime *rt;
    weft_socket **out;
    const weft_addrinfo *addrs;     /* the addresses tried */
    weft_addrlist *list;            /* the lookup's answer (owned), or NULL */
    size_t count, next;
    uint64_t deadline;              /* weft_now_ms(); 0: none */
    int result, last_err;
    unsigned char state;
    weft_resolve resolve;
    weft_sleep sleep;               /* the deadline, while looking up */
    weft_connect conn;              /* the attempt under way */
} weft_connect_host;

WEFT_API void weft_connect_host_init(weft_connect_host *c, weft_runtime *rt, const char *host,
                                     uint16_t port, uint64_t timeout_ms, weft_socket **out);
/* The same without the lookup: try `count` addresses at `addrs` (an
 * answer's list->addrs and list->count, or the caller's own array; entries
 * need only `addr` and `len`). `addrs` is borrowed: keep it until the
 * future is dropped. -EINVAL for NULL addrs or a count of 0. */
WEFT_API void weft_connect_addrs_init(weft_connect_host *c, weft_runtime *rt,
                                      const weft_addrinfo *addrs, size_t count,
                                      uint64_t timeout_ms, weft_socket **out);
WEFT_API weft_poll weft_connect_host_poll(weft_connect_host *c, weft_context *cx, int *result);
WEFT_API void weft_connect_host_drop(weft_connect_host *c);

/* Read up to len bytes. Output: bytes read, 0 at end of stream (the peer
 * shut down its side), or -errno. Cancel safety: dropping it loses nothing
 * (bytes are taken from the kernel only in a poll that returns them).
 *
 * Zero lengths: on a stream socket a read or write of 0 bytes (and on any
 * socket a read_exact or write_all of 0 bytes) completes at its first poll
 * with 0, or -EBADF if the socket was closed; it never waits and moves
 * nothing (buf may be NULL). So a 0 from a read of len > 0 always means end
 * of stream. On a datagram socket (UDP) an empty datagram is a real one: a
 * read / recv_from of 0 bytes waits for a datagram and consumes it
 * (output 0), a write / send_to of 0 bytes sends an empty datagram.
 *
 * Bad buffers: a len above SSIZE_MAX (no buffer is that large, and the
 * output could not report it), or a NULL buf with len > 0, makes every
 * read, read_exact, write, write_all, recv_from and send_to complete at its
 * first poll with -EINVAL, before any system call: nothing is moved, buf is
 * not touched. */
WEFT_API void weft_read_init(weft_read *r, weft_socket *s, void *buf, size_t len);
/* Read exactly len bytes. Output: len, or -errno; at end of stream before
 * len bytes, -EPIPE (weft_io_op_moved() tells how many came). Cancel safety:
 * the bytes read so far are in buf (see weft_io_op_moved()); the rest stays
 * in the kernel. */
WEFT_API void weft_read_exact_init(weft_read *r, weft_socket *s, void *buf, size_t len);
/* Write up to len bytes. Output: bytes written (> 0 unless len is 0), or
 * -errno (-EPIPE once the peer is gone). */
WEFT_API void weft_write_init(weft_write *w, weft_socket *s, const void *buf, size_t len);
/* Write all len bytes. Output: len, or -errno. Cancel safety: a part may
 * have been written (weft_io_op_moved()). */
WEFT_API void weft_write_all_init(weft_write *w, weft_socket *s, const void *buf, size_t len);
/* UDP: one datagram. recv_from's output is its length (truncated to len),
 * the sender in *from and *fromlen when non-NULL (*fromlen: the size of
 * *from in, the address's length out; a `from` without `fromlen` is
 * -EINVAL at the first poll, and no datagram is taken); send_to's the
 * bytes sent. */
WEFT_API void weft_recv_from_init(weft_recv_from *r, weft_socket *s, void *buf, size_t len,
                                  struct sockaddr_storage *from, socklen_t *fromlen);
WEFT_API void weft_send_to_init(weft_send_to *w, weft_socket *s, const void *buf, size_t len,
                                const struct sockaddr *to, socklen_t tolen);

/* Poll any of read, read_exact, write, write_all, recv_from, send_to. */
WEFT_API weft_poll weft_io_op_poll(weft_io_op *op, weft_context *cx, ssize_t *result);
/* Bytes moved so far (read_exact / write_all progress). */
WEFT_API size_t weft_io_op_moved(const weft_io_op *op);
/* Drop any socket future (accept and connect included). */
WEFT_API void weft_io_op_drop(weft_io_op *op);

/* Run fn(arg) in this thread with SIGPIPE blocked, and take a SIGPIPE
 * that fn raised before the signal mask comes back, so that a write(2) to
 * a pipe or socket whose reader is gone fails with EPIPE instead of
 * killing the process (weft's own sockets and pipes do this already; this
 * is for foreign code, such as a client library's write handler: see
 * weft/adapters/hiredis.h). A SIGPIPE already pending in the thread before
 * the call stays pending. errno is what fn left. NULL fn does nothing.
 * Cost: two pthread_sigmask() calls and a sigtimedwait() with no wait.
 * Thread: any. */
WEFT_API void weft_call_nosigpipe(void (*fn)(void *arg), void *arg);

/* Descriptors for composition (weft_timeout, weft_join_all, weft_spawn of a
 * bare operation): output int for accept / connect / resolve /
 * connect_host, ssize_t for the rest. */
WEFT_API extern const weft_future_type weft_accept_future;
WEFT_API extern const weft_future_type weft_connect_future;
WEFT_API extern const weft_future_type weft_io_op_future;
WEFT_API extern const weft_future_type weft_resolve_future;
WEFT_API extern const weft_future_type weft_connect_host_future;

#ifdef __cplusplus
}
#endif
#endif /* WEFT_NET_H */
