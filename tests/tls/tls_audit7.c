// SPDX-License-Identifier: MIT
/* A seventh look at weft/tls.h (public API only), as a hostile peer: a
 * raw peer that resets the connection in the middle of the handshake (the
 * stream's error is fatal, and every later future, on either side, gets
 * the same one), a TLS 1.2 client (openssl s_client) that asks a weft
 * server to renegotiate, a peer that resets after the handshake while a
 * large write waits. Registered for both backends (tls.tls_audit7.*, and
 * uring.tls.tls_audit7.* with WEFT_IO_BACKEND=uring). */
#include "tls_test.h"

#include <openssl/ssl.h>

/* Reset (RST) instead of FIN when fd is closed. */
static void close_with_reset(int fd)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };

    ASSERT_EQ(0, setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
    close(fd);
}

/* ---- a reset in the middle of the handshake ------------------------------------------ */
typedef struct rst_hs {
    struct sockaddr_storage addr;
    socklen_t len;
    weft_tls_config *cfg;
    int lfd;
    ssize_t hs, later[5];
} rst_hs;

/* The raw peer: accept, read the ClientHello, reset. */
static void *rst_peer(void *arg)
{
    rst_hs *h = arg;
    char buf[4096];
    int fd = accept(h->lfd, NULL, NULL);

    ASSERT(fd >= 0);
    ASSERT(read(fd, buf, sizeof(buf)) > 0);
    close_with_reset(fd);
    return NULL;
}

static int rst_client(void *arg)
{
    rst_hs *h = arg;
    weft_tls *t;
    weft_tls_options o = { .server_name = "localhost", .flags = WEFT_TLS_OWN_STREAM };
    char buf[8];

    ASSERT_OK(weft_tls_new(&t, h->cfg, tt_connect(&h->addr, h->len), &o));
    h->hs = weft_co_tls_handshake(t, TT_HS_MS);
    h->later[0] = weft_co_tls_handshake(t, TT_HS_MS);
    h->later[1] = weft_co_tls_read(t, buf, sizeof(buf));
    h->later[2] = weft_co_tls_write(t, "x", 1);
    h->later[3] = weft_co_tls_flush(t);
    h->later[4] = weft_co_tls_shutdown(t);
    weft_tls_free(t);
    return 0;
}

/* tls.h: "an error from the stream during a handshake ... is fatal: the
 * stream is broken, and every later future on it completes with the same
 * error". */
TEST(reset_mid_handshake_is_fatal_with_the_stream_error)
{
    weft_runtime *rt;
    rst_hs h = { 0 };
    pthread_t th;
    int res = -1;

    if (!tt_certs())
        return;
    rt = tt_runtime();
    h.cfg = tt_client_cfg(NULL);
    h.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(h.lfd >= 0);
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &h.addr, &h.len));
    ASSERT_EQ(0, bind(h.lfd, (struct sockaddr *)&h.addr, h.len));
    ASSERT_EQ(0, listen(h.lfd, 4));
    h.len = sizeof(h.addr);
    ASSERT_EQ(0, getsockname(h.lfd, (struct sockaddr *)&h.addr, &h.len));
    ASSERT_EQ(0, pthread_create(&th, NULL, rst_peer, &h));
    ASSERT_OK(weft_co_block_on(rt, rst_client, &h, NULL, &res));
    ASSERT_EQ(0, res);
    pthread_join(th, NULL);
    ASSERT_EQ(-ECONNRESET, h.hs);
    for (int i = 0; i < 5; i++)
        if (h.later[i] != -ECONNRESET)
            harness_fail(__FILE__, __LINE__, "later future %d: %zd (%s)", i, h.later[i],
                         weft_strerror((int)h.later[i]));
    close(h.lfd);
    weft_tls_config_free(h.cfg);
    weft_runtime_free(rt);
}

/* ---- a peer that resets while a large write waits ------------------------------------ */
typedef struct big_rst {
    tt_pair p;
    weft_tls *server;
    atomic_int server_ready;
    ssize_t write_result, later_read;
    size_t moved;
} big_rst;

static int big_rst_server(void *arg)
{
    big_rst *b = arg;

    b->server = tt_server_hs(&b->p);
    atomic_store(&b->server_ready, 1);
    return 0;
}

static int big_rst_client(void *arg)
{
    big_rst *b = arg;
    weft_tls *t = tt_client_hs(&b->p);
    size_t n = 16u << 20;
    unsigned char *data = calloc(1, n);
    char buf[8];

    ASSERT(data != NULL);
    while (!atomic_load(&b->server_ready))
        weft_co_sleep(1);
    /* the server never reads: the write fills the buffers and waits; the
     * server's socket is then reset under it */
    {
        int fd = weft_socket_fd(weft_tls_socket(b->server));
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };

        ASSERT(fd >= 0);
        ASSERT_EQ(0, setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
    }
    {
        weft_tls_op w;
        weft_join *j;

        weft_tls_write_init(&w, t, data, n);
        ASSERT_OK(weft_spawn(weft_runtime_current(), &weft_tls_op_future, &w, &j));
        weft_co_sleep(50);            /* let it fill the buffers (not needed) */
        weft_tls_free(b->server);     /* owns its stream: closed with a reset */
        ASSERT_OK(weft_co_join(j, &b->write_result));
        weft_join_drop(j);
    }
    b->later_read = weft_co_tls_read(t, buf, sizeof(buf));
    weft_tls_free(t);
    free(data);
    return 0;
}

/* The write ends with the stream's error (-ECONNRESET or -EPIPE), never
 * hangs and never raises SIGPIPE; the stream is then broken with it. */
TEST(reset_under_a_large_write_ends_it_with_the_stream_error)
{
    big_rst b = { 0 };

    if (!tt_certs())
        return;
    signal(SIGPIPE, SIG_DFL);
    tt_pair_init(&b.p, NULL, NULL);
    tt_pair_run(&b.p, big_rst_server, big_rst_client);
    if (b.write_result != -ECONNRESET && b.write_result != -EPIPE)
        harness_fail(__FILE__, __LINE__, "write: %zd (%s)", b.write_result,
                     weft_strerror((int)b.write_result));
    ASSERT_EQ(b.write_result, b.later_read);
}

/* ---- a TLS 1.2 client asks the weft server to renegotiate ---------------------------- */
typedef struct reneg {
    weft_socket *l;
    weft_tls_config *cfg;
    int cmd_fd;
    ssize_t first, after;
    char line[64];
} reneg;

static int reneg_server(void *arg)
{
    reneg *r = arg;
    weft_tls *t;
    weft_tls_options o = { .flags = WEFT_TLS_OWN_STREAM };
    size_t got = 0;

    ASSERT_OK(weft_tls_new(&t, r->cfg, tt_accept(r->l), &o));
    ASSERT_OK(weft_co_tls_handshake(t, TT_HS_MS));
    ASSERT_EQ(6, write(r->cmd_fd, "first\n", 6));
    while (got < 6) {
        ssize_t n = weft_co_tls_read(t, r->line + got, 6 - got);

        ASSERT(n > 0);
        got += (size_t)n;
    }
    r->first = (ssize_t)got;
    /* s_client's "R": a ClientHello on the established connection */
    ASSERT_EQ(2, write(r->cmd_fd, "R\n", 2));
    ASSERT_EQ(6, write(r->cmd_fd, "hello\n", 6));
    got = 0;
    for (;;) {
        ssize_t n = weft_co_tls_read(t, r->line + got, sizeof(r->line) - 1 - got);

        r->after = n;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (r->line[got - 1] == '\n')
            break;
    }
    r->line[got] = '\0';
    weft_tls_free(t);
    return 0;
}

/* tls.h: "weft refuses TLS 1.2 renegotiation ... a peer's request is
 * answered inside read with a no_renegotiation warning alert, and the
 * connection goes on (a peer that insists closes it)". OpenSSL's s_client
 * insists (it ends the connection with a fatal alert when refused): the
 * read then fails with WEFT_TLS_EPROTO; a peer that accepts the refusal
 * has its next line read. Either way the read ends, and nothing crashes. */
TEST(s_client_renegotiation_against_a_weft_server)
{
    weft_runtime *rt;
    reneg r = { 0 };
    struct sockaddr_storage addr;
    socklen_t len;
    posix_spawn_file_actions_t fa;
    char connect[64];
    int fds[2], res = -1;
    pid_t pid;

    if (!tt_certs())
        return;
    rt = tt_runtime();
    {
        weft_tls_config_options o = { .server = true, .cert_file = tt_path("srv.pem"),
                                      .key_file = tt_path("srv.key"), .min_version = 12 };

        ASSERT_OK(weft_tls_config_new(&r.cfg, &o));
    }
    tt_listen(rt, &r.l, &addr, &len);
    snprintf(connect, sizeof(connect), "127.0.0.1:%u", tt_port(&addr));
    ASSERT_OK(pipe(fds));
    {
        char *argv[] = { (char *)tt_openssl(), "s_client", "-connect", connect, "-tls1_2",
                         NULL };

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
        posix_spawn_file_actions_addclose(&fa, fds[1]);
        posix_spawn_file_actions_addopen(&fa, 1, tt_path("s_client.out"),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0600);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        ASSERT_OK(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ));
        posix_spawn_file_actions_destroy(&fa);
    }
    close(fds[0]);
    r.cmd_fd = fds[1];
    ASSERT_OK(weft_co_block_on(rt, reneg_server, &r, NULL, &res));
    ASSERT_EQ(0, res);
    ASSERT_EQ(6, r.first);
    if (r.after > 0)
        ASSERT_EQ(0, strcmp(r.line, "hello\n"));
    else if (r.after != WEFT_TLS_EPROTO)
        harness_fail(__FILE__, __LINE__, "read after R: %zd (%s)", r.after,
                     weft_strerror((int)r.after));
    printf("after R: %zd (%s)\n", r.after, r.after > 0 ? r.line : weft_strerror((int)r.after));
    close(r.cmd_fd);
    tt_kill(pid);
    weft_socket_close(r.l);
    weft_tls_config_free(r.cfg);
    weft_runtime_free(rt);
}

/* ---- KeyUpdate requests while both of the peer's sides are busy ---------------------- */
/* The client asks for a KeyUpdate before each of its writes (SSL_key_update
 * through weft_tls_ssl(), while none of its futures is pending), while the
 * server reads with one coroutine and writes a stream of its own with
 * another, which the client reads only after its writes: the server's
 * write side is blocked on a full socket most of the time, so its read
 * side must answer each request (tls.h: "TLS 1.3 KeyUpdate (answered when
 * the peer asks) ... handled inside read"). Every byte arrives, in order,
 * both ways, and nothing hangs. */
typedef struct ku_storm {
    tt_pair p;
    size_t n_client, n_server;
    int updates;
} ku_storm;

typedef struct ku_half {
    weft_tls *t;
    size_t n;
    uint32_t seed;
} ku_half;

static int ku_server_writer(void *arg)
{
    ku_half *h = arg;
    size_t off = 0, chunk = 50000;
    unsigned char *buf = malloc(chunk);

    ASSERT(buf != NULL);
    while (off < h->n) {
        size_t n = h->n - off < chunk ? h->n - off : chunk;

        tt_fill(buf, n, h->seed, off);
        ASSERT_EQ((ssize_t)n, weft_co_tls_write(h->t, buf, n));
        off += n;
    }
    free(buf);
    return 0;
}

static void ku_read_all(weft_tls *t, size_t total, uint32_t seed)
{
    size_t cap = 30000, off = 0;
    unsigned char *buf = malloc(cap);

    ASSERT(buf != NULL);
    while (off < total) {
        ssize_t r = weft_co_tls_read(t, buf, cap);

        if (r <= 0)
            harness_fail(__FILE__, __LINE__, "read %zd (%s: %s) at %zu of %zu", r,
                         weft_strerror((int)r), weft_tls_error_text(t), off, total);
        ASSERT(tt_check(buf, (size_t)r, seed, off));
        off += (size_t)r;
    }
    free(buf);
}

static int ku_storm_server(void *arg)
{
    ku_storm *k = arg;
    weft_tls *t = tt_server_hs(&k->p);
    ku_half w = { t, k->n_server, 21 };
    weft_join *j;
    int res = -1;
    char c;

    ASSERT_OK(weft_go(weft_runtime_current(), ku_server_writer, &w, &j));
    ku_read_all(t, k->n_client, 12);
    ASSERT_OK(weft_co_join(j, &res));
    weft_join_drop(j);
    ASSERT_EQ(0, res);
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    ASSERT_EQ(0, weft_co_tls_read(t, &c, 1));
    weft_tls_free(t);
    return 0;
}

static int ku_storm_client(void *arg)
{
    ku_storm *k = arg;
    weft_tls *t = tt_client_hs(&k->p);
    size_t chunk = k->n_client / (size_t)k->updates, off = 0;
    unsigned char *buf = malloc(chunk);
    char c;

    ASSERT(buf != NULL);
    ASSERT_EQ(0, strcmp("TLSv1.3", weft_tls_version(t)));
    for (int i = 0; i < k->updates; i++) {
        ASSERT_EQ(1, SSL_key_update((SSL *)weft_tls_ssl(t), SSL_KEY_UPDATE_REQUESTED));
        tt_fill(buf, chunk, 12, off);
        ASSERT_EQ((ssize_t)chunk, weft_co_tls_write(t, buf, chunk));
        off += chunk;
    }
    free(buf);
    ku_read_all(t, k->n_server, 21);
    ASSERT_EQ(0, weft_co_tls_read(t, &c, 1));          /* the server's close_notify */
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    weft_tls_free(t);
    return 0;
}

TEST(key_update_requests_while_the_peer_is_busy_both_ways)
{
    ku_storm k = { 0 };

    if (!tt_certs())
        return;
    k.updates = 64;
    k.n_client = (size_t)k.updates * harness_scale(40000);
    k.n_server = harness_scale(4u << 20);
    tt_pair_init(&k.p, NULL, NULL);
    tt_pair_run(&k.p, ku_storm_server, ku_storm_client);
}
