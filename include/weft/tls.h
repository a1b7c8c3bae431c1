/* SPDX-License-Identifier: MIT */
/* weft/tls.h - TLS over any weft byte stream (a TCP or Unix socket, a
 * pipe pair: any weft_socket / weft_stream handle), with OpenSSL.
 *
 * Optional: these functions live in a separate library, libweft_tls, which
 * is built only where CMake finds OpenSSL (Debian: libssl-dev); link it
 * (libweft_tls.so or libweft_tls.a; in CMake, the target weft::weft_tls)
 * besides libweft. The core libweft needs nothing but libc and pthreads,
 * and this header compiles without OpenSSL's headers: the types are weft's
 * own and opaque. <weft.h> does not include it: include <weft/tls.h>.
 *
 * How it works. OpenSSL runs over two memory buffers (memory BIOs), never
 * touching the descriptor: the futures below move ciphertext between those
 * buffers and the stream with weft's own socket futures, so a handshake, a
 * read, a write and a close_notify are ordinary weft futures that wait on
 * the reactor, compose with weft_timeout and the combinators, and run on
 * any worker.
 *
 * Objects.
 *   weft_tls_config  what both sides of many connections share: the role
 *                    (client or server), certificates, trust, ALPN. Made by
 *                    weft_tls_config_new(); reference-counted: each stream
 *                    made from it holds a reference, so it may be freed
 *                    with weft_tls_config_free() as soon as the last
 *                    stream has been made. Immutable once made; any thread.
 *   weft_tls         one TLS connection over one byte stream. Made by
 *                    weft_tls_new(), freed by weft_tls_free().
 *
 * Ownership of the stream. By default a weft_tls *borrows* its byte stream:
 * weft_tls_free() leaves it open, and the caller closes it after the TLS
 * stream (and its futures) are gone. With WEFT_TLS_OWN_STREAM it takes the
 * stream: weft_tls_free() closes it (also when weft_tls_new() fails).
 * While a weft_tls exists, nobody else may read from or write to its
 * stream (the bytes would be lost to TLS).
 *
 * Futures. One struct, weft_tls_op, serves every operation: the handshake,
 * read, write, flush and shutdown (close_notify). *_init fixes its
 * arguments, weft_tls_op_poll() drives it from a task of the stream's
 * runtime, weft_tls_op_drop() is valid in every state and idempotent;
 * polling after READY returns the same output. The descriptor
 * weft_tls_op_future (output ssize_t) composes with weft_timeout,
 * weft_join_all, weft_spawn and weft_co_await. Outputs: a count (>= 0) or
 * a negative errno. Bad arguments (NULL stream, NULL buffer with a length)
 * make the future complete with -EINVAL at its first poll. A poll without
 * a waker (a NULL or zeroed context) answers -EINVAL and changes nothing,
 * as weft/lock.h says for its futures. A future holds
 * a reference on its weft_tls from init until it completes or is dropped
 * (so init it only on a stream not yet freed). A weft_tls_op may be copied
 * (moved, as weft_spawn does) after init and before its first poll, not
 * after; the options structs are plain values, read only during the call.
 *
 * Concurrency. One task may read while another writes (a split stream):
 * there are two sides, the *read side* (read) and the *write side* (write,
 * flush, shutdown). At most one future per side is in progress at a time;
 * a second one on a busy side completes with -EBUSY at its first poll and
 * changes nothing. The handshake takes both sides. OpenSSL's SSL object is
 * not thread-safe: every OpenSSL call on it is made under the stream's
 * mutex, which is never held across a wait, so the two sides never block
 * one another on I/O (the read side may send bytes that OpenSSL queued
 * for the peer, such as a TLS 1.3 KeyUpdate answer, when the write side is
 * idle). The futures may be polled from any thread (a worker of the
 * stream's runtime); weft_tls_free() and the accessors from any thread.
 *
 * Errors, besides the stream's own (-ECONNRESET, -EPIPE, -EBADF, -ESHUTDOWN
 * ..., passed through):
 *   WEFT_TLS_EVERIFY     the peer's certificate failed verification (wrong
 *                        host name, unknown issuer, self-signed, expired,
 *                        ...): weft_tls_error_text() says why, in OpenSSL's
 *                        words ("certificate has expired", "hostname
 *                        mismatch", ...). Verification is on by default.
 *   WEFT_TLS_EPROTO      a TLS protocol failure: garbage instead of TLS
 *                        records, a fatal alert from the peer, no common
 *                        version, cipher or ALPN protocol, ... (text: as
 *                        above).
 *   WEFT_TLS_ETRUNCATED  the stream ended (EOF) without the peer's
 *                        close_notify: the data may have been cut short by
 *                        an attacker, so this is an error, never end of
 *                        stream (a read's 0 means close_notify came).
 *   -ENOTCONN            read, write, flush or shutdown before the
 *                        handshake completed.
 *   -EBUSY               that side already has a future in progress.
 *   -EBADF               the weft_tls was freed while the future waited.
 *   -ETIMEDOUT           the handshake's deadline passed.
 * Each of WEFT_TLS_EVERIFY, WEFT_TLS_EPROTO, WEFT_TLS_ETRUNCATED, a
 * handshake's -ETIMEDOUT and an error from the stream during a handshake,
 * read or write is fatal: the stream is *broken*, and every later future
 * on it completes with the same error (a cancelled read or write is not
 * an error: see the cancel-safety notes). weft_strerror() names the codes.
 *
 * Renegotiation. TLS 1.3 has none; weft refuses TLS 1.2 renegotiation
 * (SSL_OP_NO_RENEGOTIATION): a peer's request is answered inside read with
 * a no_renegotiation warning alert, and the connection goes on (a peer
 * that insists closes it). TLS 1.3 KeyUpdate (answered when the peer asks)
 * and session tickets are handled inside read too, never seen by the
 * caller. */
#ifndef WEFT_TLS_H
#define WEFT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core.h"
#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_TLS_EVERIFY (-5101)
#define WEFT_TLS_EPROTO (-5102)
#define WEFT_TLS_ETRUNCATED (-5103)

/* ---- Configuration ------------------------------------------------------------ */
typedef struct weft_tls_config weft_tls_config;   /* opaque, reference-counted */

typedef struct weft_tls_config_options {
    /* true: the server side (it needs cert_file and key_file) */
    bool server;
    /* PEM files: this side's certificate chain (leaf first) and private
     * key. A server needs both; a client sends them when the server asks
     * (client certificates). NULL: none. */
    const char *cert_file;
    const char *key_file;
    /* Trust: PEM file and/or hashed directory of CA certificates used to
     * verify the peer. Both NULL: the system's default trust store (on
     * Debian, /etc/ssl/certs). */
    const char *ca_file;
    const char *ca_dir;
    /* Client: do not verify the server's certificate (tests only: any
     * man in the middle is then accepted). Server: ignored. */
    bool insecure_no_verify;
    /* Server: ask for a client certificate and verify it against the trust
     * above (the handshake fails without a valid one). Client: ignored. */
    bool verify_client;
    /* ALPN, a comma-separated list in order of preference ("h2,http/1.1"),
     * NULL or "" for none. Client: offered to the server. Server: the
     * first of its own list that the client offered is chosen; a client
     * that offered ALPN but none of these fails the handshake
     * (no_application_protocol alert: WEFT_TLS_EPROTO on both sides); a
     * client that offered none is served without. */
    const char *alpn;
    /* Lowest protocol version accepted: 0 (TLS 1.2), 12 or 13. */
    int min_version;
} weft_tls_config_options;

/* Make a configuration from `opt` (copied; the files are read now). 0 with
 * a reference in *out (release it with weft_tls_config_free()), or
 * -EINVAL (NULL out or opt, a server without a certificate and key, a
 * cert_file without a key_file or the other way round (either side), an
 * ALPN name longer than 255 bytes or empty, an ALPN list longer than 511
 * bytes in all, min_version not 0, 12 or 13),
 * -EACCES (a file or CA directory this process may not read), -ENOENT (one
 * that cannot be read for another reason: missing, a bad path;
 * for both, weft_tls_last_error_text() on this thread names the path and
 * the reason), WEFT_TLS_EPROTO (a file that is not a
 * valid PEM certificate or key, or a key that does not match the
 * certificate; the same text), -ENOMEM. Thread: any. */
WEFT_API int weft_tls_config_new(weft_tls_config **out, const weft_tls_config_options *opt);

/* Drop the caller's reference: the configuration goes with the last
 * stream made from it. NULL is ignored. Thread: any. */
WEFT_API void weft_tls_config_free(weft_tls_config *cfg);

/* Why the last weft_tls_config_new() on this thread failed, as OpenSSL
 * tells it ("" when it succeeded, or failed without OpenSSL's help). The
 * string is the thread's own, valid until its next config_new. */
WEFT_API const char *weft_tls_last_error_text(void);

/* ---- Streams ------------------------------------------------------------------ */
typedef struct weft_tls weft_tls;                 /* opaque */

/* weft_tls_options.flags: weft_tls_free() closes the byte stream. */
#define WEFT_TLS_OWN_STREAM 1u

typedef struct weft_tls_options {
    /* Client: the server's name: sent as SNI (unless it is an IP address,
     * which SNI may not carry) and checked against the certificate (DNS
     * name, or IP address for a literal). Required for a verifying client
     * (-EINVAL without it); optional with insecure_no_verify. Server:
     * ignored (see weft_tls_server_name()). Copied. */
    const char *server_name;
    unsigned flags;                               /* WEFT_TLS_OWN_STREAM */
    /* A separate stream to write to (a pipe pair: read from one pipe,
     * write to another), or NULL: the same stream both ways. Owned or
     * borrowed as the first (WEFT_TLS_OWN_STREAM closes both). */
    weft_socket *write_stream;
} weft_tls_options;

/* Make a TLS stream of configuration `cfg` (its role: client or server)
 * over byte stream `s`. Nothing is sent yet: await weft_tls_handshake_init()
 * first. 0 with the stream in *out (the caller's; free it with
 * weft_tls_free()), or -EINVAL (NULL out, cfg or s; a verifying client
 * without server_name, or one of 256 bytes or more; unknown flags),
 * -ENOMEM. On failure with WEFT_TLS_OWN_STREAM, `s` (and write_stream)
 * have been closed. `opt` may be NULL (no name, one borrowed stream).
 * Thread: any. */
WEFT_API int weft_tls_new(weft_tls **out, weft_tls_config *cfg, weft_socket *s,
                          const weft_tls_options *opt);

/* Free the TLS stream (NULL is ignored). Nothing is sent: to end the
 * session cleanly, await weft_tls_shutdown_init() first. Futures still
 * pending on it do not use freed memory: they hold a reference, wake up,
 * and complete with -EBADF (drop them as usual); the memory goes with the
 * last of them. With WEFT_TLS_OWN_STREAM the byte stream is closed now.
 * Calling it twice is a double free (undefined, as for free()). Thread:
 * any. */
WEFT_API void weft_tls_free(weft_tls *t);

/* The byte stream under t (borrowed; NULL for NULL t); the one it reads
 * from when it was given a separate write_stream. */
WEFT_API weft_socket *weft_tls_socket(const weft_tls *t);

/* After a successful handshake (else NULL or ""): the ALPN protocol agreed
 * on (NULL when none), the server name the client sent as SNI (server
 * side; NULL when none; the client side returns its own server_name), the
 * protocol version ("TLSv1.3") and the cipher suite's name. Valid until
 * weft_tls_free(). Thread: any, once the handshake's future completed. */
WEFT_API const char *weft_tls_alpn(const weft_tls *t);
WEFT_API const char *weft_tls_server_name(const weft_tls *t);
WEFT_API const char *weft_tls_version(const weft_tls *t);
WEFT_API const char *weft_tls_cipher(const weft_tls *t);

/* The first fatal error's explanation ("" when none): for
 * WEFT_TLS_EVERIFY the verification failure ("certificate has expired",
 * "hostname mismatch", "self-signed certificate", "unable to get local
 * issuer certificate", ...), for WEFT_TLS_EPROTO OpenSSL's reason ("wrong
 * version number", "tlsv1 alert unknown ca", ...). Valid until
 * weft_tls_free(); it never changes once set. Thread: any, once the
 * failing future completed. */
WEFT_API const char *weft_tls_error_text(const weft_tls *t);

/* OpenSSL's SSL object, as void * (cast it to SSL *), for what this header
 * does not cover (inspecting the peer's certificate, ...). Call OpenSSL
 * on it only while no future on t is pending, and do not change its BIOs
 * or free it. NULL for NULL t. */
WEFT_API void *weft_tls_ssl(weft_tls *t);

/* ---- Futures -------------------------------------------------------------------- */
typedef struct weft_tls_op {
    /* private: may change in any release */
    weft_tls *t;
    unsigned char kind;
    bool started, done, claimed, wsock, sleeping, rio_active, wio_active, flip;
    const unsigned char *src;
    unsigned char *dst;
    size_t len, moved;
    ssize_t result;
    uint64_t timeout_ms;
    weft_sleep sleep;                /* the handshake's deadline */
    weft_io_op rio, wio;             /* a read and a write on the byte stream */
} weft_tls_op;

/* Handshake, as a client or a server (the config's role): both sides are
 * taken. `timeout_ms` (0: no limit) bounds it, counted from the first
 * poll: -ETIMEDOUT when it runs out (a peer that stops half-way). Output:
 * 0, or WEFT_TLS_EVERIFY, WEFT_TLS_EPROTO, WEFT_TLS_ETRUNCATED (the peer
 * closed during the handshake), the stream's error, -EBUSY, -EBADF. A
 * second handshake after one succeeded completes with 0 at once.
 * Cancel safety: none; a handshake dropped before it completed leaves the
 * stream broken (every later future: -ECANCELED); free it. (Dropped when
 * OpenSSL had finished and only our last flight was still being sent, it
 * counts as done: the flight goes out first with the next future, and a
 * second handshake completes with 0.) */
WEFT_API void weft_tls_handshake_init(weft_tls_op *f, weft_tls *t, uint64_t timeout_ms);

/* Read up to len bytes of plaintext into dst. Output: the count (> 0), 0
 * at end of stream (the peer's close_notify came; then 0 again), or -errno
 * (WEFT_TLS_ETRUNCATED for EOF without close_notify). len 0: 0 at once.
 * Cancel safety: dropping it while pending loses nothing (decrypted bytes
 * are taken from OpenSSL only in the poll that returns them). */
WEFT_API void weft_tls_read_init(weft_tls_op *f, weft_tls *t, void *dst, size_t len);

/* Write all len bytes of src, encrypted, and send them. Output: len (after
 * every byte is on the stream), or -errno (-EPIPE after our
 * shutdown: weft_tls_shutdown_init). Cancel safety: dropped while pending,
 * weft_tls_op_moved() bytes of src were taken: encrypted into TLS records
 * that are queued inside t; they go out first with the next write, flush
 * or shutdown on t (await weft_tls_flush_init() to send just them); the
 * rest of src was not taken. So a cancelled write never corrupts the
 * stream: records are never cut, and nothing is sent twice. */
WEFT_API void weft_tls_write_init(weft_tls_op *f, weft_tls *t, const void *src, size_t len);

/* Send every queued record (what a cancelled write left). Output: 0, or
 * -errno. Cancel safety: whatever it did not send stays queued. */
WEFT_API void weft_tls_flush_init(weft_tls_op *f, weft_tls *t);

/* Send close_notify (once; after queued records) and wait until it is on
 * the stream; the byte stream itself is not shut down or closed. Then
 * writes fail with -EPIPE; reads still work, until the peer's close_notify
 * (0). Output: 0, or -errno. Cancel safety: a dropped shutdown has queued
 * close_notify; a later flush or shutdown sends it. */
WEFT_API void weft_tls_shutdown_init(weft_tls_op *f, weft_tls *t);

WEFT_API weft_poll weft_tls_op_poll(weft_tls_op *f, weft_context *cx, ssize_t *out);
/* read: 0 until it completes, then its count (0 at end of stream or on
 * an error); write: plaintext bytes taken so far. */
WEFT_API size_t weft_tls_op_moved(const weft_tls_op *f);
WEFT_API void weft_tls_op_drop(weft_tls_op *f);
/* Output ssize_t. */
WEFT_API extern const weft_future_type weft_tls_op_future;

/* ---- Coroutines (weft/coro.h) ------------------------------------------------------
 * Each awaits the future of the same name from a coroutine and returns its
 * output, or -ECANCELED once the coroutine is aborted (the future is then
 * dropped, with the cancel safety above), -EINVAL outside a coroutine. */
WEFT_API int weft_co_tls_handshake(weft_tls *t, uint64_t timeout_ms);
WEFT_API ssize_t weft_co_tls_read(weft_tls *t, void *dst, size_t len);
WEFT_API ssize_t weft_co_tls_write(weft_tls *t, const void *src, size_t len);
WEFT_API int weft_co_tls_flush(weft_tls *t);
WEFT_API int weft_co_tls_shutdown(weft_tls *t);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_TLS_H */
