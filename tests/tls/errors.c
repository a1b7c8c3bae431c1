// SPDX-License-Identifier: MIT
/* What must fail, fails clearly: certificates (wrong name, self-signed,
 * expired, unknown issuer, missing client certificate), a peer that stops
 * or closes mid-handshake (the deadline fires), garbage instead of TLS
 * before and after the handshake, ALPN without a common protocol, bad
 * configurations, and a client dropped at every await (no leak, no crash:
 * the ASan build checks). */
#include "tls_test.h"

typedef struct peer {
    weft_runtime *rt;
    weft_socket *l;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_tls_config *scfg, *ccfg;
    const char *name;                /* the client's server_name */
    int mode;                        /* what the raw peer does */
    int server_result, client_result;
    char client_text[256], server_text[256];
    size_t cut_at;                   /* abort test: the await to drop at */
    bool cut;                        /* ... and whether it was reached */
} peer;

static void peer_run(peer *p, weft_co_fn *server, weft_co_fn *client)
{
    weft_join *js, *jc;
    int rs = -1, rc = -1;

    ASSERT_OK(weft_go(p->rt, server, p, &js));
    ASSERT_OK(weft_go(p->rt, client, p, &jc));
    ASSERT_OK(weft_join_wait(jc, &rc));
    ASSERT_OK(weft_join_wait(js, &rs));
    weft_join_drop(js);
    weft_join_drop(jc);
    ASSERT_EQ(0, rc);
    ASSERT_EQ(0, rs);
}

static void peer_open(peer *p)
{
    p->rt = tt_runtime();
    tt_listen(p->rt, &p->l, &p->addr, &p->len);
}

static void peer_close(peer *p)
{
    weft_socket_close(p->l);
    weft_tls_config_free(p->scfg);
    weft_tls_config_free(p->ccfg);
    weft_runtime_free(p->rt);
}

/* A TLS server that handshakes, then reads until the end; its handshake's
 * result in p->server_result. */
static int tls_server(void *arg)
{
    peer *p = arg;
    weft_tls *t;
    weft_tls_options o = { .flags = WEFT_TLS_OWN_STREAM };
    char buf[64];

    ASSERT_OK(weft_tls_new(&t, p->scfg, tt_accept(p->l), &o));
    p->server_result = weft_co_tls_handshake(t, TT_HS_MS);
    snprintf(p->server_text, sizeof(p->server_text), "%s", weft_tls_error_text(t));
    if (p->server_result == 0)
        while (weft_co_tls_read(t, buf, sizeof(buf)) > 0)
            ;
    weft_tls_free(t);
    return 0;
}

/* A TLS client: handshake (and a read, that a server's late verdict on a
 * TLS 1.3 client certificate reaches); the result in p->client_result. */
static int tls_client(void *arg)
{
    peer *p = arg;
    weft_tls *t;
    weft_tls_options o = { .server_name = p->name, .flags = WEFT_TLS_OWN_STREAM };
    char c;

    ASSERT_OK(weft_tls_new(&t, p->ccfg, tt_connect(&p->addr, p->len), &o));
    p->client_result = weft_co_tls_handshake(t, TT_HS_MS);
    if (p->client_result == 0 && p->mode == 1) {
        ssize_t r = weft_co_tls_read(t, &c, 1);

        p->client_result = r < 0 ? (int)r : 0;
    }
    snprintf(p->client_text, sizeof(p->client_text), "%s", weft_tls_error_text(t));
    if (p->client_result == 0)
        ASSERT_EQ(0, weft_co_tls_shutdown(t));
    weft_tls_free(t);
    return 0;
}

/* Client of ccfg naming `name` against a server of cert/key: the client's
 * result must be `want`, its error text must contain `text`. */
static void verify_case(const char *cert, const char *key, weft_tls_config *ccfg,
                        const char *name, int want, const char *text)
{
    peer p = { 0 };

    peer_open(&p);
    p.scfg = tt_server_cfg(cert, key, NULL);
    p.ccfg = ccfg;
    p.name = name;
    peer_run(&p, tls_server, tls_client);
    if (p.client_result != want || strstr(p.client_text, text) == NULL)
        harness_fail(__FILE__, __LINE__, "%s as %s: got %d (%s) \"%s\", want %d \"%s\"", cert,
                     name ? name : "(none)", p.client_result, weft_strerror(p.client_result),
                     p.client_text, want, text);
    if (want != 0)
        ASSERT(p.server_result < 0);     /* the client's alert, or its going */
    peer_close(&p);
}

TEST(verify_rejects_wrong_hostname)
{
    if (!tt_certs())
        return;
    verify_case("srv.pem", "srv.key", tt_client_cfg(NULL), "wrong.example", WEFT_TLS_EVERIFY,
                "hostname mismatch");
    verify_case("other.pem", "srv.key", tt_client_cfg(NULL), "localhost", WEFT_TLS_EVERIFY,
                "hostname mismatch");
    verify_case("srv.pem", "srv.key", tt_client_cfg(NULL), "127.0.0.2", WEFT_TLS_EVERIFY,
                "IP address mismatch");
    /* the right names pass: DNS and IP */
    verify_case("srv.pem", "srv.key", tt_client_cfg(NULL), "localhost", 0, "");
    verify_case("srv.pem", "srv.key", tt_client_cfg(NULL), "127.0.0.1", 0, "");
}

TEST(verify_rejects_self_signed_expired_and_unknown_issuer)
{
    weft_tls_config *cfg;
    weft_tls_config_options o = { .ca_file = NULL };

    if (!tt_certs())
        return;
    verify_case("self.pem", "self.key", tt_client_cfg(NULL), "localhost", WEFT_TLS_EVERIFY,
                "self-signed");
    verify_case("expired.pem", "srv.key", tt_client_cfg(NULL), "localhost", WEFT_TLS_EVERIFY,
                "certificate has expired");
    /* trusting only another certificate: the issuer is unknown */
    o.ca_file = tt_path("self.pem");
    ASSERT_OK(weft_tls_config_new(&cfg, &o));
    verify_case("srv.pem", "srv.key", cfg, "localhost", WEFT_TLS_EVERIFY,
                "unable to get local issuer certificate");
    /* the system's trust store knows nothing of our CA either */
    o.ca_file = NULL;
    ASSERT_OK(weft_tls_config_new(&cfg, &o));
    verify_case("srv.pem", "srv.key", cfg, "localhost", WEFT_TLS_EVERIFY,
                "unable to get local issuer certificate");
    /* with verification off (tests only), anything goes */
    o.insecure_no_verify = true;
    ASSERT_OK(weft_tls_config_new(&cfg, &o));
    verify_case("self.pem", "self.key", cfg, NULL, 0, "");
    ASSERT(strstr(weft_strerror(WEFT_TLS_EVERIFY), "verification") != NULL);
}

TEST(client_certificates)
{
    peer p = { 0 };
    weft_tls_config_options so = { .server = true, .cert_file = tt_path("srv.pem"),
                                   .key_file = tt_path("srv.key"),
                                   .ca_file = tt_path("ca.pem"), .verify_client = true };
    weft_tls_config_options co = { .ca_file = tt_path("ca.pem"),
                                   .cert_file = tt_path("cli.pem"),
                                   .key_file = tt_path("cli.key") };

    if (!tt_certs())
        return;
    so.cert_file = tt_path("srv.pem");       /* tt_path's buffers rotate */
    so.key_file = tt_path("srv.key");
    so.ca_file = tt_path("ca.pem");
    co.ca_file = tt_path("ca.pem");
    co.cert_file = tt_path("cli.pem");
    co.key_file = tt_path("cli.key");
    /* with its certificate: accepted */
    peer_open(&p);
    ASSERT_OK(weft_tls_config_new(&p.scfg, &so));
    ASSERT_OK(weft_tls_config_new(&p.ccfg, &co));
    p.name = "localhost";
    peer_run(&p, tls_server, tls_client);
    ASSERT_EQ(0, p.client_result);
    ASSERT_EQ(0, p.server_result);
    peer_close(&p);
    /* without: the server refuses (the client learns it at its handshake
     * or, in TLS 1.3, at its first read) */
    memset(&p, 0, sizeof(p));
    peer_open(&p);
    ASSERT_OK(weft_tls_config_new(&p.scfg, &so));
    p.ccfg = tt_client_cfg(NULL);
    p.name = "localhost";
    p.mode = 1;
    peer_run(&p, tls_server, tls_client);
    ASSERT(p.server_result == WEFT_TLS_EVERIFY || p.server_result == WEFT_TLS_EPROTO);
    ASSERT(p.server_text[0] != '\0');
    ASSERT(p.client_result < 0);
    peer_close(&p);
}

TEST(alpn_without_a_common_protocol_fails)
{
    peer p = { 0 };

    if (!tt_certs())
        return;
    peer_open(&p);
    p.scfg = tt_server_cfg("srv.pem", "srv.key", "h2");
    p.ccfg = tt_client_cfg("http/1.1");
    p.name = "localhost";
    peer_run(&p, tls_server, tls_client);
    ASSERT_EQ(WEFT_TLS_EPROTO, p.server_result);
    ASSERT_EQ(WEFT_TLS_EPROTO, p.client_result);
    ASSERT(strstr(p.client_text, "application protocol") != NULL);
    peer_close(&p);
}

/* ---- raw peers: silence, garbage, closing mid-handshake ---------------------------- */
enum { RAW_SILENT, RAW_GARBAGE, RAW_CLOSE };

static int raw_server(void *arg)
{
    peer *p = arg;
    weft_socket *s = tt_accept(p->l);
    char buf[512];

    ASSERT(weft_co_read(s, buf, sizeof(buf)) > 0);     /* the ClientHello (some of it) */
    if (p->mode == RAW_GARBAGE) {
        static const char junk[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";

        ASSERT_EQ((ssize_t)sizeof(junk) - 1, weft_co_write_all(s, junk, sizeof(junk) - 1));
    }
    if (p->mode != RAW_CLOSE)
        while (weft_co_read(s, buf, sizeof(buf)) > 0)   /* until the client goes */
            ;
    weft_socket_close(s);
    return 0;
}

static int short_client(void *arg)
{
    peer *p = arg;
    weft_tls *t;
    weft_tls_options o = { .server_name = "localhost", .flags = WEFT_TLS_OWN_STREAM };
    char c;

    ASSERT_OK(weft_tls_new(&t, p->ccfg, tt_connect(&p->addr, p->len), &o));
    p->client_result = weft_co_tls_handshake(t, 300);
    snprintf(p->client_text, sizeof(p->client_text), "%s", weft_tls_error_text(t));
    /* broken for good: the same error again */
    ASSERT_EQ(p->client_result, weft_co_tls_read(t, &c, 1));
    ASSERT_EQ(p->client_result, weft_co_tls_handshake(t, 0));
    weft_tls_free(t);
    return 0;
}

TEST(client_peer_stops_mid_handshake_deadline_fires)
{
    peer p = { 0 };

    if (!tt_certs())
        return;
    peer_open(&p);
    p.ccfg = tt_client_cfg(NULL);
    p.mode = RAW_SILENT;
    peer_run(&p, raw_server, short_client);
    ASSERT_EQ(-ETIMEDOUT, p.client_result);
    ASSERT(strstr(p.client_text, "timed out") != NULL);
    peer_close(&p);
}

TEST(client_peer_sends_garbage)
{
    peer p = { 0 };

    if (!tt_certs())
        return;
    peer_open(&p);
    p.ccfg = tt_client_cfg(NULL);
    p.mode = RAW_GARBAGE;
    peer_run(&p, raw_server, short_client);
    ASSERT_EQ(WEFT_TLS_EPROTO, p.client_result);
    ASSERT(p.client_text[0] != '\0');
    peer_close(&p);
}

TEST(client_peer_closes_mid_handshake)
{
    peer p = { 0 };

    if (!tt_certs())
        return;
    peer_open(&p);
    p.ccfg = tt_client_cfg(NULL);
    p.mode = RAW_CLOSE;
    peer_run(&p, raw_server, short_client);
    ASSERT_EQ(WEFT_TLS_ETRUNCATED, p.client_result);
    peer_close(&p);
}

/* the server side: a client that sends half a record and stops, or an
 * HTTP request instead of a ClientHello */
static int raw_client(void *arg)
{
    peer *p = arg;
    weft_socket *s = tt_connect(&p->addr, p->len);
    char buf[64];

    if (p->mode == RAW_SILENT)
        ASSERT_EQ(3, weft_co_write_all(s, "\x16\x03\x01", 3));
    else
        ASSERT_EQ(18, weft_co_write_all(s, "GET / HTTP/1.1\r\n\r\n", 18));
    while (weft_co_read(s, buf, sizeof(buf)) > 0)      /* until the server goes */
        ;
    weft_socket_close(s);
    return 0;
}

static int short_server(void *arg)
{
    peer *p = arg;
    weft_tls *t;
    weft_tls_options o = { .flags = WEFT_TLS_OWN_STREAM };

    ASSERT_OK(weft_tls_new(&t, p->scfg, tt_accept(p->l), &o));
    p->server_result = weft_co_tls_handshake(t, 300);
    snprintf(p->server_text, sizeof(p->server_text), "%s", weft_tls_error_text(t));
    weft_tls_free(t);
    return 0;
}

TEST(server_peer_stops_or_sends_garbage)
{
    peer p = { 0 };

    if (!tt_certs())
        return;
    peer_open(&p);
    p.scfg = tt_server_cfg("srv.pem", "srv.key", NULL);
    p.mode = RAW_SILENT;
    peer_run(&p, short_server, raw_client);
    ASSERT_EQ(-ETIMEDOUT, p.server_result);
    p.mode = RAW_GARBAGE;
    peer_run(&p, short_server, raw_client);
    ASSERT_EQ(WEFT_TLS_EPROTO, p.server_result);
    ASSERT(strstr(p.server_text, "http request") != NULL);
    peer_close(&p);
}

/* garbage after a good handshake: the record layer refuses it */
static int garbage_server(void *arg)
{
    peer *p = arg;
    weft_tls *t;
    weft_tls_options o = { .flags = WEFT_TLS_OWN_STREAM };
    char buf[64];

    ASSERT_OK(weft_tls_new(&t, p->scfg, tt_accept(p->l), &o));
    ASSERT_OK(weft_co_tls_handshake(t, TT_HS_MS));
    ASSERT_EQ(2, weft_co_tls_write(t, "ok", 2));
    /* behind TLS's back, on the stream itself */
    ASSERT_EQ(16, weft_co_write_all(weft_tls_socket(t), "\x17\x03\x03\x00\x0bgarbage!!!", 16));
    while (weft_co_read(weft_tls_socket(t), buf, sizeof(buf)) > 0)
        ;
    weft_tls_free(t);
    return 0;
}

static int garbage_client(void *arg)
{
    peer *p = arg;
    weft_tls *t;
    weft_tls_options o = { .server_name = "localhost", .flags = WEFT_TLS_OWN_STREAM };
    char buf[16];

    ASSERT_OK(weft_tls_new(&t, p->ccfg, tt_connect(&p->addr, p->len), &o));
    ASSERT_OK(weft_co_tls_handshake(t, TT_HS_MS));
    tt_read_exact(t, buf, 2);
    ASSERT_EQ(0, memcmp(buf, "ok", 2));
    p->client_result = (int)weft_co_tls_read(t, buf, sizeof(buf));
    snprintf(p->client_text, sizeof(p->client_text), "%s", weft_tls_error_text(t));
    weft_tls_free(t);
    return 0;
}

TEST(garbage_after_the_handshake)
{
    peer p = { 0 };

    if (!tt_certs())
        return;
    peer_open(&p);
    p.scfg = tt_server_cfg("srv.pem", "srv.key", NULL);
    p.ccfg = tt_client_cfg(NULL);
    peer_run(&p, garbage_server, garbage_client);
    ASSERT_EQ(WEFT_TLS_EPROTO, p.client_result);
    ASSERT(p.client_text[0] != '\0');
    peer_close(&p);
}

/* ---- configurations and arguments ---------------------------------------------- */
TEST(bad_configurations_and_arguments)
{
    weft_tls_config *cfg;
    weft_tls_config_options o = { .server = true };
    weft_runtime *rt;
    weft_socket *rd, *wr;
    weft_tls *t;
    weft_tls_options to = { .flags = WEFT_TLS_OWN_STREAM };

    if (!tt_certs())
        return;
    ASSERT_EQ(-EINVAL, weft_tls_config_new(NULL, &o));
    ASSERT_EQ(-EINVAL, weft_tls_config_new(&cfg, NULL));
    ASSERT_EQ(-EINVAL, weft_tls_config_new(&cfg, &o));          /* a server needs a cert */
    o.cert_file = tt_path("srv.pem");
    ASSERT_EQ(-EINVAL, weft_tls_config_new(&cfg, &o));          /* ... and a key */
    o.key_file = tt_path("missing.key");
    ASSERT_EQ(-ENOENT, weft_tls_config_new(&cfg, &o));
    ASSERT(strstr(weft_tls_last_error_text(), "missing.key") != NULL);
    o.key_file = tt_path("cli.key");                           /* not srv.pem's key */
    ASSERT_EQ(WEFT_TLS_EPROTO, weft_tls_config_new(&cfg, &o));
    ASSERT(weft_tls_last_error_text()[0] != '\0');
    o.cert_file = tt_path("junk.pem");
    o.key_file = tt_path("srv.key");
    ASSERT_EQ(WEFT_TLS_EPROTO, weft_tls_config_new(&cfg, &o));
    o.cert_file = tt_path("srv.pem");
    o.key_file = tt_path("srv.key");
    o.alpn = "h2,,http/1.1";
    ASSERT_EQ(-EINVAL, weft_tls_config_new(&cfg, &o));
    o.alpn = "h2,";
    ASSERT_EQ(-EINVAL, weft_tls_config_new(&cfg, &o));
    o.alpn = "h2";
    o.min_version = 11;
    ASSERT_EQ(-EINVAL, weft_tls_config_new(&cfg, &o));
    o.min_version = 13;
    ASSERT_OK(weft_tls_config_new(&cfg, &o));
    ASSERT_EQ(0, strcmp(weft_tls_last_error_text(), ""));
    weft_tls_config_free(cfg);
    weft_tls_config_free(NULL);

    /* streams */
    rt = tt_runtime();
    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    ASSERT_OK(weft_tls_config_new(&cfg, &(weft_tls_config_options){
                                              .ca_file = tt_path("ca.pem") }));
    ASSERT_EQ(-EINVAL, weft_tls_new(NULL, cfg, rd, NULL));
    ASSERT_EQ(-EINVAL, weft_tls_new(&t, NULL, rd, NULL));
    ASSERT_EQ(-EINVAL, weft_tls_new(&t, cfg, NULL, NULL));
    ASSERT_EQ(-EINVAL, weft_tls_new(&t, cfg, rd, &(weft_tls_options){ .flags = 8 }));
    ASSERT_EQ(-EINVAL, weft_tls_new(&t, cfg, rd, NULL));         /* verifying, no name */
    ASSERT(weft_stream_fd(rd) >= 0);                             /* borrowed: still open */
    ASSERT_EQ(-EINVAL, weft_tls_new(&t, cfg, rd, &to));          /* owned: closed */
    ASSERT_EQ(-EBADF, weft_stream_fd(rd));
    to.server_name = "localhost";
    ASSERT_OK(weft_tls_new(&t, cfg, wr, &to));
    ASSERT(weft_tls_ssl(t) != NULL);
    ASSERT(weft_tls_socket(t) == wr);
    ASSERT(weft_tls_alpn(t) == NULL);
    ASSERT_EQ(0, strcmp(weft_tls_error_text(t), ""));
    weft_tls_config_free(cfg);       /* the stream keeps its own reference */
    weft_tls_free(t);
    ASSERT_EQ(-EBADF, weft_stream_fd(wr));
    weft_tls_free(NULL);
    ASSERT(weft_tls_socket(NULL) == NULL && weft_tls_ssl(NULL) == NULL);
    ASSERT(weft_tls_alpn(NULL) == NULL && weft_tls_server_name(NULL) == NULL);
    ASSERT_EQ(0, strcmp(weft_tls_version(NULL), ""));
    ASSERT_EQ(0, weft_tls_op_moved(NULL));
    weft_tls_op_drop(NULL);
    weft_runtime_free(rt);
}

/* ---- dropped at every await ------------------------------------------------------ */
/* Polls a TLS future; at the cut_at-th pending of the connection, drops it
 * and reports the cut. */
typedef struct cut {
    peer *p;
    size_t *pendings;
    weft_tls_op *f;
    bool was_cut;
} cut;

static weft_poll cut_poll(void *self, weft_context *cx, void *out)
{
    cut *c = self;

    if (weft_tls_op_poll(c->f, cx, out) == WEFT_READY)
        return WEFT_READY;
    if (++*c->pendings >= c->p->cut_at) {
        weft_tls_op_drop(c->f);
        c->was_cut = true;
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

/* await f under the cut; false when it was dropped */
static bool await_cut(peer *p, size_t *pendings, weft_tls_op *f, ssize_t *out)
{
    cut c = { p, pendings, f, false };

    ASSERT_OK(weft_co_await_fn(cut_poll, NULL, &c, out));
    if (c.was_cut)
        p->cut = true;

    return !c.was_cut;
}

#define CUT_BYTES 150000

static int echo_server(void *arg)
{
    peer *p = arg;
    weft_tls *t;
    weft_tls_options o = { .flags = WEFT_TLS_OWN_STREAM };
    unsigned char buf[8192];
    ssize_t r;

    ASSERT_OK(weft_tls_new(&t, p->scfg, tt_accept(p->l), &o));
    if (weft_co_tls_handshake(t, TT_HS_MS) == 0)
        while ((r = weft_co_tls_read(t, buf, sizeof(buf))) > 0)
            if (weft_co_tls_write(t, buf, (size_t)r) != r)
                break;
    weft_tls_free(t);                /* the client may be gone: that's fine */
    return 0;
}

static int cut_client(void *arg)
{
    peer *p = arg;
    weft_tls *t;
    weft_tls_options o = { .server_name = "localhost", .flags = WEFT_TLS_OWN_STREAM };
    unsigned char *buf = malloc(CUT_BYTES);
    size_t pendings = 0, got = 0;
    weft_tls_op f;
    ssize_t r = 0;
    char c;

    ASSERT(buf != NULL);
    ASSERT_OK(weft_tls_new(&t, p->ccfg, tt_connect(&p->addr, p->len), &o));
    weft_tls_handshake_init(&f, t, TT_HS_MS);
    if (!await_cut(p, &pendings, &f, &r)) {
        /* a dropped handshake broke the stream, unless only our last
         * flight was left to send (it goes out with the next future) */
        r = weft_co_tls_handshake(t, 0);
        if (r != 0) {
            ASSERT_EQ(-ECANCELED, r);
            ASSERT_EQ(-ECANCELED, weft_co_tls_read(t, &c, 1));
            goto out;
        }
    }
    ASSERT_EQ(0, r);
    tt_fill(buf, CUT_BYTES, 3, 0);
    weft_tls_write_init(&f, t, buf, CUT_BYTES);
    if (!await_cut(p, &pendings, &f, &r))
        goto out;
    ASSERT_EQ(CUT_BYTES, r);
    while (got < CUT_BYTES) {
        weft_tls_read_init(&f, t, buf, CUT_BYTES - got);
        if (!await_cut(p, &pendings, &f, &r))
            goto out;
        ASSERT(r > 0);
        got += (size_t)r;
    }
    weft_tls_shutdown_init(&f, t);
    if (!await_cut(p, &pendings, &f, &r))
        goto out;
    ASSERT_EQ(0, r);
out:
    weft_tls_op_drop(&f);
    weft_tls_free(t);
    free(buf);
    return 0;
}

TEST(dropped_at_every_await)
{
    peer p = { 0 };
    size_t k, limit = 400;

    if (!tt_certs())
        return;
    peer_open(&p);
    p.scfg = tt_server_cfg("srv.pem", "srv.key", NULL);
    p.ccfg = tt_client_cfg(NULL);
    for (k = 1; k <= limit; k++) {
        p.cut_at = k;
        p.cut = false;
        peer_run(&p, echo_server, cut_client);
        if (!p.cut)
            break;                   /* ran to the end: every await was cut once */
    }
    printf("ran to the end with the cut at await %zu\n", k);
    ASSERT(k > 1);                   /* something was cut */
    ASSERT(k <= limit);
    peer_close(&p);
}

/* the same on the server's side, against a client that gives up on errors */
static int cut_server(void *arg)
{
    peer *p = arg;
    weft_tls *t;
    weft_tls_options o = { .flags = WEFT_TLS_OWN_STREAM };
    unsigned char *buf = malloc(CUT_BYTES);
    size_t pendings = 0, got = 0;
    weft_tls_op f;
    ssize_t r = 0;

    ASSERT(buf != NULL);
    ASSERT_OK(weft_tls_new(&t, p->scfg, tt_accept(p->l), &o));
    weft_tls_handshake_init(&f, t, TT_HS_MS);
    if (!await_cut(p, &pendings, &f, &r) || r != 0)
        goto out;
    while (got < CUT_BYTES) {
        weft_tls_read_init(&f, t, buf + got, CUT_BYTES - got);
        if (!await_cut(p, &pendings, &f, &r))
            goto out;
        ASSERT(r > 0);
        got += (size_t)r;
    }
    ASSERT(tt_check(buf, CUT_BYTES, 3, 0));
    weft_tls_write_init(&f, t, buf, CUT_BYTES);
    if (!await_cut(p, &pendings, &f, &r))
        goto out;
    weft_tls_shutdown_init(&f, t);
    (void)await_cut(p, &pendings, &f, &r);
out:
    weft_tls_op_drop(&f);
    weft_tls_free(t);
    free(buf);
    return 0;
}

static int plain_client(void *arg)
{
    peer *p = arg;
    weft_tls *t;
    weft_tls_options o = { .server_name = "localhost", .flags = WEFT_TLS_OWN_STREAM };
    unsigned char *buf = malloc(CUT_BYTES);
    size_t got = 0;
    ssize_t r;

    ASSERT(buf != NULL);
    ASSERT_OK(weft_tls_new(&t, p->ccfg, tt_connect(&p->addr, p->len), &o));
    if (weft_co_tls_handshake(t, TT_HS_MS) != 0)
        goto out;
    tt_fill(buf, CUT_BYTES, 3, 0);
    if (weft_co_tls_write(t, buf, CUT_BYTES) != CUT_BYTES)
        goto out;
    while (got < CUT_BYTES && (r = weft_co_tls_read(t, buf, CUT_BYTES - got)) > 0)
        got += (size_t)r;
    if (got == CUT_BYTES)
        (void)weft_co_tls_shutdown(t);
out:
    weft_tls_free(t);
    free(buf);
    return 0;
}

TEST(dropped_at_every_await_server_side)
{
    peer p = { 0 };
    size_t k, limit = 400;

    if (!tt_certs())
        return;
    peer_open(&p);
    p.scfg = tt_server_cfg("srv.pem", "srv.key", NULL);
    p.ccfg = tt_client_cfg(NULL);
    for (k = 1; k <= limit; k++) {
        p.cut_at = k;
        p.cut = false;
        peer_run(&p, cut_server, plain_client);
        if (!p.cut)
            break;
    }
    ASSERT(k > 1);
    ASSERT(k <= limit);
    peer_close(&p);
}

/* A NULL future pointer: init does nothing, poll completes with -EINVAL
 * (crashed before the audit). */
TEST(tls_null_future)
{
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    char buf[4];
    ssize_t res = 0;

    weft_tls_handshake_init(NULL, NULL, 0);
    weft_tls_read_init(NULL, NULL, buf, sizeof(buf));
    weft_tls_write_init(NULL, NULL, buf, sizeof(buf));
    weft_tls_flush_init(NULL, NULL);
    weft_tls_shutdown_init(NULL, NULL);
    ASSERT_EQ(WEFT_READY, weft_tls_op_poll(NULL, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    ASSERT_EQ(0, weft_tls_op_moved(NULL));
    weft_tls_op_drop(NULL);
}

/* ALPN lists at their limits: 255-byte names and a 511-byte list pass, a
 * 256-byte name, an empty name and a 512-byte list are -EINVAL. */
TEST(tls_alpn_list_limits)
{
    weft_tls_config *cfg = NULL;
    weft_tls_config_options o = { .insecure_no_verify = true };
    char list[1024];

    memset(list, 'a', 255);
    list[255] = ',';
    memset(list + 256, 'b', 255);
    list[511] = '\0';                             /* 511 bytes: wire 512 */
    o.alpn = list;
    ASSERT_OK(weft_tls_config_new(&cfg, &o));
    weft_tls_config_free(cfg);
    list[511] = 'c';
    list[512] = '\0';                             /* a 256-byte name */
    ASSERT_EQ(-EINVAL, weft_tls_config_new(&cfg, &o));
    memset(list, 'a', 200);
    list[200] = ',';
    memset(list + 201, 'b', 200);
    list[401] = ',';
    memset(list + 402, 'c', 110);
    list[512] = '\0';                             /* three names, 512 bytes */
    ASSERT_EQ(-EINVAL, weft_tls_config_new(&cfg, &o));
    o.alpn = "h2,,http/1.1";
    ASSERT_EQ(-EINVAL, weft_tls_config_new(&cfg, &o));
    o.alpn = ",h2";
    ASSERT_EQ(-EINVAL, weft_tls_config_new(&cfg, &o));
    o.alpn = "h2,";
    ASSERT_EQ(-EINVAL, weft_tls_config_new(&cfg, &o));
}
