// SPDX-License-Identifier: MIT
/* An audit of weft/tls.h's promises, against weft peers, a byte-trickling
 * TCP relay and OpenSSL's own tools:
 *   - a read future dropped again and again while a record arrives in
 *     13-byte pieces loses nothing (cancel safety of read);
 *   - half close: after our close_notify reads still work and writes fail
 *     with -EPIPE; after the peer's close_notify (read: 0) writes still work;
 *   - writing to a peer that is gone ends in a negative errno (no SIGPIPE),
 *     and the error is sticky on the write side;
 *   - no common protocol version (min_version 13 against a TLS 1.2-only
 *     openssl s_client / s_server): WEFT_TLS_EPROTO with a reason;
 *   - polling after READY returns the same output, drop is idempotent. */
#include "tls_test.h"

#include <poll.h>

typedef tt_pair pair;

/* ---- a relay that passes the server's bytes on 13 at a time ---------------------------- */
typedef struct relay {
    int lfd;
    uint16_t target;                 /* the weft server's port */
    pthread_t th;
} relay;

static void *relay_main(void *arg)
{
    relay *r = arg;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(r->target),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int c = accept(r->lfd, NULL, NULL), s = socket(AF_INET, SOCK_STREAM, 0);
    bool open_c = true, open_s = true;

    ASSERT(c >= 0 && s >= 0);
    ASSERT_OK(connect(s, (struct sockaddr *)&a, sizeof(a)));
    while (open_c || open_s) {
        struct pollfd p[2] = { { .fd = open_c ? c : -1, .events = POLLIN },
                               { .fd = open_s ? s : -1, .events = POLLIN } };
        char buf[4096];
        ssize_t n;

        if (poll(p, 2, 30000) <= 0)
            break;                   /* the test's own limits report it */
        if (p[0].revents) {          /* client -> server: as it comes */
            n = read(c, buf, sizeof(buf));
            if (n <= 0) {
                shutdown(s, SHUT_WR);
                open_c = false;
            } else if (write(s, buf, (size_t)n) != n) {
                break;
            }
        }
        if (p[1].revents) {          /* server -> client: 13 bytes at a time */
            n = read(s, buf, 13);
            if (n <= 0) {
                shutdown(c, SHUT_WR);
                open_s = false;
            } else {
                if (write(c, buf, (size_t)n) != n)
                    break;
                usleep(50);
            }
        }
    }
    close(c);
    close(s);
    return NULL;
}

static void relay_start(relay *r, pair *p)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);

    r->target = tt_port(&p->addr);
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(r->lfd >= 0);
    ASSERT_OK(bind(r->lfd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(listen(r->lfd, 4));
    ASSERT_OK(getsockname(r->lfd, (struct sockaddr *)&a, &len));
    memcpy(&p->addr, &a, sizeof(a));
    p->len = sizeof(a);
    ASSERT_OK(pthread_create(&r->th, NULL, relay_main, r));
}

static void relay_stop(relay *r)
{
    pthread_join(r->th, NULL);
    close(r->lfd);
}

enum { TRICKLE_BYTES = 48 * 1024 };

static int trickle_server(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_server_hs(p);
    unsigned char *buf = malloc(TRICKLE_BYTES);
    char c;

    ASSERT(buf != NULL);
    tt_fill(buf, TRICKLE_BYTES, 7, 0);
    /* records of several sizes, some larger than one read */
    for (size_t off = 0, step = 1; off < TRICKLE_BYTES; step = step * 3 % 5000 + 1) {
        size_t n = TRICKLE_BYTES - off < step ? TRICKLE_BYTES - off : step;

        ASSERT_EQ((ssize_t)n, weft_co_tls_write(t, buf + off, n));
        off += n;
    }
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    ASSERT_EQ(0, weft_co_tls_read(t, &c, 1));    /* the client's close_notify */
    weft_tls_free(t);
    free(buf);
    return 0;
}

static int trickle_client(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_client_hs(p);
    unsigned char *got = malloc(TRICKLE_BYTES + 1);
    size_t have = 0;
    unsigned long drops = 0;

    ASSERT(got != NULL);
    for (;;) {
        weft_tls_op f;
        ssize_t n = -1;
        int err;

        weft_tls_read_init(&f, t, got + have, TRICKLE_BYTES + 1 - have);
        err = weft_co_await_timeout(&weft_tls_op_future, &f, &n, 1);
        if (err == -ETIMEDOUT) {
            drops++;                 /* dropped mid-record: must lose nothing */
            continue;
        }
        ASSERT_OK(err);
        if (n == 0)
            break;
        if (n < 0)
            harness_fail(__FILE__, __LINE__, "read after %zu bytes: %s: %s", have,
                         weft_strerror((int)n), weft_tls_error_text(t));
        have += (size_t)n;
        ASSERT(have <= TRICKLE_BYTES);
    }
    ASSERT_EQ((size_t)TRICKLE_BYTES, have);
    ASSERT(tt_check(got, have, 7, 0));
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    weft_tls_free(t);
    free(got);
    printf("%lu reads dropped while records arrived\n", drops);
    return 0;
}

TEST(read_dropped_mid_record_loses_nothing)
{
    pair p = { 0 };
    relay r;

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    relay_start(&r, &p);
    tt_pair_run(&p, trickle_server, trickle_client);
    relay_stop(&r);
}

/* ---- half close ------------------------------------------------------------------------ */
static int half_server(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_server_hs(p);
    char buf[16];

    ASSERT_EQ(0, weft_co_tls_shutdown(t));            /* we are done writing */
    ASSERT_EQ(-EPIPE, weft_co_tls_write(t, "x", 1));
    tt_read_exact(t, buf, 5);                          /* reads still work */
    ASSERT_EQ(0, memcmp(buf, "after", 5));
    ASSERT_EQ(0, weft_co_tls_read(t, buf, sizeof(buf)));   /* its close_notify */
    ASSERT_EQ(0, weft_co_tls_read(t, buf, sizeof(buf)));
    ASSERT_EQ(-EPIPE, weft_co_tls_write(t, "x", 1));
    weft_tls_free(t);
    return 0;
}

static int half_client(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_client_hs(p);
    char buf[16];

    ASSERT_EQ(0, weft_co_tls_read(t, buf, sizeof(buf)));   /* the server's close_notify */
    ASSERT_EQ(5, weft_co_tls_write(t, "after", 5));        /* we may still write */
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    weft_tls_free(t);
    return 0;
}

TEST(half_close_both_ways)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    tt_pair_run(&p, half_server, half_client);
}

/* ---- writing to a peer that is gone -------------------------------------------------------- */
static int gone_server(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_server_hs(p);

    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    weft_tls_free(t);                                  /* closes the socket */
    atomic_store(&p->flag, 1);
    return 0;
}

static int gone_client(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_client_hs(p);
    static char block[16384];
    char c;
    ssize_t r = 0;
    int i;

    ASSERT_EQ(0, weft_co_tls_read(t, &c, 1));          /* close_notify */
    while (atomic_load(&p->flag) == 0)
        weft_co_sleep(1);
    for (i = 0; i < 10000; i++) {
        r = weft_co_tls_write(t, block, sizeof(block));
        if (r < 0)
            break;
        ASSERT_EQ((ssize_t)sizeof(block), r);
        weft_co_sleep(1);                              /* let the RST come back */
    }
    if (r != -EPIPE && r != -ECONNRESET)
        harness_fail(__FILE__, __LINE__, "write to a closed peer: %zd (%s) after %d writes", r,
                     weft_strerror((int)r), i);
    /* the stream's error is fatal: the next write reports it again */
    ASSERT_EQ(r, weft_co_tls_write(t, "x", 1));
    ASSERT_EQ(r, weft_co_tls_flush(t));
    weft_tls_free(t);
    return 0;
}

TEST(write_after_the_peer_is_gone)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    signal(SIGPIPE, SIG_DFL);                          /* a SIGPIPE would kill the test */
    tt_pair_init(&p, NULL, NULL);
    tt_pair_run(&p, gone_server, gone_client);
}

/* ---- no common version with OpenSSL's tools ------------------------------------------------ */
typedef struct vers {
    uint16_t port;
    weft_tls_config *cfg;
    int result;
    char text[256];
} vers;

static int vers_server(void *arg)
{
    vers *v = arg;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_socket *l;
    weft_tls *t;
    weft_tls_options o = { .flags = WEFT_TLS_OWN_STREAM };

    ASSERT_OK(weft_addr_ip("127.0.0.1", v->port, &addr, &len));
    ASSERT_OK(weft_listen(NULL, (struct sockaddr *)&addr, len, 0, &l));
    atomic_store((atomic_int *)&v->result, 1);         /* listening */
    ASSERT_OK(weft_tls_new(&t, v->cfg, tt_accept(l), &o));
    v->result = weft_co_tls_handshake(t, TT_HS_MS);
    snprintf(v->text, sizeof(v->text), "%s", weft_tls_error_text(t));
    weft_tls_free(t);
    weft_socket_close(l);
    return 0;
}

TEST(tls12_only_s_client_against_min_version_13)
{
    weft_runtime *rt;
    weft_tls_config_options o = { .server = true, .min_version = 13 };
    vers v = { 0 };
    weft_join *j;
    char connect[64];
    pid_t pid;
    int res = -1;

    if (!tt_certs())
        return;
    rt = tt_runtime();
    o.cert_file = tt_path("srv.pem");
    o.key_file = tt_path("srv.key");
    ASSERT_OK(weft_tls_config_new(&v.cfg, &o));
    v.port = tt_free_port();
    ASSERT_OK(weft_go(rt, vers_server, &v, &j));
    while (atomic_load((atomic_int *)&v.result) == 0)
        usleep(1000);
    snprintf(connect, sizeof(connect), "127.0.0.1:%u", v.port);
    {
        char *argv[] = { (char *)tt_openssl(), "s_client", "-connect", connect, "-tls1_2", NULL };

        pid = tt_spawn(argv, NULL);
    }
    ASSERT_OK(weft_join_wait(j, &res));
    weft_join_drop(j);
    tt_kill(pid);
    ASSERT_EQ(WEFT_TLS_EPROTO, v.result);
    ASSERT(v.text[0] != '\0');
    weft_tls_config_free(v.cfg);
    weft_runtime_free(rt);
}

static int vers_client(void *arg)
{
    vers *v = arg;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_tls *t;
    weft_tls_options o = { .server_name = "localhost", .flags = WEFT_TLS_OWN_STREAM };

    ASSERT_OK(weft_addr_ip("127.0.0.1", v->port, &addr, &len));
    ASSERT_OK(weft_tls_new(&t, v->cfg, tt_connect(&addr, len), &o));
    v->result = weft_co_tls_handshake(t, TT_HS_MS);
    snprintf(v->text, sizeof(v->text), "%s", weft_tls_error_text(t));
    /* every later future: the same error */
    ASSERT_EQ(v->result, weft_co_tls_write(t, "x", 1));
    ASSERT_EQ(v->result, weft_co_tls_handshake(t, 0));
    weft_tls_free(t);
    return 0;
}

TEST(min_version_13_client_against_tls12_only_s_server)
{
    weft_runtime *rt;
    weft_tls_config_options o = { .min_version = 13 };
    vers v = { 0 };
    char port[16], cert[192], key[192];
    pid_t pid;
    int res = -1;

    if (!tt_certs())
        return;
    rt = tt_runtime();
    o.ca_file = tt_path("ca.pem");
    ASSERT_OK(weft_tls_config_new(&v.cfg, &o));
    v.port = tt_free_port();
    snprintf(port, sizeof(port), "%u", v.port);
    snprintf(cert, sizeof(cert), "%s", tt_path("srv.pem"));
    snprintf(key, sizeof(key), "%s", tt_path("srv.key"));
    {
        char *argv[] = { (char *)tt_openssl(), "s_server", "-accept", port, "-cert", cert,
                         "-key", key, "-rev", "-tls1_2", NULL };

        pid = tt_spawn(argv, NULL);
    }
    tt_wait_port(v.port);
    ASSERT_OK(weft_co_block_on(rt, vers_client, &v, NULL, &res));
    tt_kill(pid);
    ASSERT_EQ(WEFT_TLS_EPROTO, v.result);
    ASSERT(v.text[0] != '\0');
    weft_tls_config_free(v.cfg);
    weft_runtime_free(rt);
}

/* ---- the future's own rules ---------------------------------------------------------------- */
TEST(ready_output_repeats_and_drop_is_idempotent)
{
    weft_runtime *rt;
    weft_tls_config *cfg;
    weft_tls *t;
    weft_tls_options o = { .server_name = "localhost" };
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);
    weft_socket *s;
    weft_tls_op f;
    ssize_t out = 1;
    int sv[2];
    char c;

    if (!tt_certs())
        return;
    rt = tt_runtime();
    cfg = tt_client_cfg(NULL);
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    ASSERT_OK(weft_socket_adopt(rt, sv[0], &s));
    ASSERT_OK(weft_tls_new(&t, cfg, s, &o));
    weft_tls_config_free(cfg);                         /* t holds its own reference */
    weft_tls_read_init(&f, t, &c, 1);
    ASSERT_EQ(WEFT_READY, weft_tls_op_poll(&f, &cx, &out));
    ASSERT_EQ(-ENOTCONN, out);
    out = 1;
    ASSERT_EQ(WEFT_READY, weft_tls_op_poll(&f, &cx, &out));
    ASSERT_EQ(-ENOTCONN, out);
    weft_tls_op_drop(&f);
    weft_tls_op_drop(&f);
    /* a future initialised, never polled, outliving weft_tls_free() */
    weft_tls_write_init(&f, t, "x", 1);
    weft_tls_free(t);
    ASSERT_EQ(WEFT_READY, weft_tls_op_poll(&f, &cx, &out));
    ASSERT_EQ(-EBADF, out);
    weft_tls_op_drop(&f);
    weft_socket_close(s);
    close(sv[1]);
    weft_runtime_free(rt);
}

/* weft_tls_options.server_name is "Server: ignored": a server given any
 * name (an IP literal, one of 300 bytes) is made, and reports the SNI the
 * client sent, not that name. A client's name of 256 bytes or more is
 * -EINVAL (it could not be sent as SNI). */
TEST(server_ignores_server_name)
{
    weft_runtime *rt;
    weft_tls_config *scfg, *ccfg;
    weft_tls *t;
    weft_tls_options o = { 0 };
    weft_socket *s;
    char long_name[301];
    int sv[2];

    if (!tt_certs())
        return;
    rt = tt_runtime();
    scfg = tt_server_cfg("srv.pem", "srv.key", NULL);
    ccfg = tt_client_cfg(NULL);
    memset(long_name, 'a', 300);
    long_name[300] = '\0';
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    ASSERT_OK(weft_socket_adopt(rt, sv[0], &s));
    o.server_name = long_name;
    ASSERT_OK(weft_tls_new(&t, scfg, s, &o));
    ASSERT(weft_tls_server_name(t) == NULL);           /* no handshake, no SNI */
    weft_tls_free(t);
    o.server_name = "127.0.0.1";
    ASSERT_OK(weft_tls_new(&t, scfg, s, &o));
    weft_tls_free(t);
    o.server_name = long_name;
    ASSERT_EQ(-EINVAL, weft_tls_new(&t, ccfg, s, &o));
    weft_socket_close(s);
    close(sv[1]);
    weft_tls_config_free(scfg);
    weft_tls_config_free(ccfg);
    weft_runtime_free(rt);
}

/* ---- a real peer killed mid-transfer ------------------------------------------------------- */
/* openssl s_client (kept connected with -ign_eof) is killed while a weft
 * server reads from it and writes to it at once (two coroutines on one
 * stream): both futures end with an error, truncation or the stream's, and
 * neither hangs. */
typedef struct killed {
    weft_tls *t;
    atomic_long written;
    ssize_t read_result, write_result;
} killed;

static int killed_writer(void *arg)
{
    killed *k = arg;
    static char block[65536];

    for (;;) {
        ssize_t r = weft_co_tls_write(k->t, block, sizeof(block));

        if (r < 0) {
            k->write_result = r;
            return 0;
        }
        atomic_fetch_add(&k->written, (long)r);
    }
}

static int killed_reader(void *arg)
{
    killed *k = arg;
    char buf[4096];

    for (;;) {
        ssize_t r = weft_co_tls_read(k->t, buf, sizeof(buf));

        if (r <= 0) {
            k->read_result = r;
            return 0;
        }
    }
}

typedef struct killed_accept_args {
    weft_socket *l;
    weft_tls_config *cfg;
    weft_tls **t;
} killed_accept_args;

/* Accept one connection and handshake (the stream in *a->t). */
static int killed_accept(void *arg)
{
    killed_accept_args *a = arg;
    weft_tls_options o = { .flags = WEFT_TLS_OWN_STREAM };

    ASSERT_OK(weft_tls_new(a->t, a->cfg, tt_accept(a->l), &o));
    ASSERT_OK(weft_co_tls_handshake(*a->t, TT_HS_MS));
    return 0;
}

static bool stream_error(ssize_t r)
{
    return r == WEFT_TLS_ETRUNCATED || r == -ECONNRESET || r == -EPIPE;
}

TEST(s_client_killed_mid_transfer)
{
    weft_runtime *rt;
    weft_tls_config *scfg;
    weft_socket *l;
    struct sockaddr_storage addr;
    socklen_t len;
    killed k = { 0 };
    killed_accept_args acc;
    weft_join *jh, *jw, *jr;
    weft_tls *t = NULL;
    char connect[64];
    pid_t pid;
    int out;

    if (!tt_certs())
        return;
    rt = tt_runtime();
    scfg = tt_server_cfg("srv.pem", "srv.key", NULL);
    tt_listen(rt, &l, &addr, &len);
    snprintf(connect, sizeof(connect), "127.0.0.1:%u", tt_port(&addr));
    {
        char *argv[] = { (char *)tt_openssl(), "s_client", "-connect", connect, "-ign_eof",
                         "-quiet", NULL };

        pid = tt_spawn(argv, NULL);
    }
    acc = (killed_accept_args){ l, scfg, &t };
    ASSERT_OK(weft_go(rt, killed_accept, &acc, &jh));
    ASSERT_OK(weft_join_wait(jh, &out));
    weft_join_drop(jh);
    ASSERT_EQ(0, out);
    k.t = t;
    ASSERT_OK(weft_go(rt, killed_writer, &k, &jw));
    ASSERT_OK(weft_go(rt, killed_reader, &k, &jr));
    while (atomic_load(&k.written) < 4 * 65536)
        usleep(1000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ASSERT_OK(weft_join_wait(jw, &out));
    ASSERT_OK(weft_join_wait(jr, &out));
    weft_join_drop(jw);
    weft_join_drop(jr);
    if (!stream_error(k.read_result) || !stream_error(k.write_result))
        harness_fail(__FILE__, __LINE__, "read %zd (%s), write %zd (%s)", k.read_result,
                     weft_strerror((int)k.read_result), k.write_result,
                     weft_strerror((int)k.write_result));
    printf("read: %s, write: %s\n", weft_strerror((int)k.read_result),
           weft_strerror((int)k.write_result));
    weft_tls_free(t);
    weft_socket_close(l);
    weft_tls_config_free(scfg);
    weft_runtime_free(rt);
}
