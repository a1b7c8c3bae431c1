// SPDX-License-Identifier: MIT
/* Against OpenSSL's own tools: a weft client talking to `openssl
 * s_server` (TLS 1.3 and 1.2, ALPN, a self-signed server refused), and
 * `openssl s_client` (verifying our certificate, with SNI and ALPN)
 * talking to a weft server. */
#include "tls_test.h"

typedef struct ossl {
    uint16_t port;
    const char *name;
    weft_tls_config *cfg;
    int result;
    char text[256], version[32], alpn[32];
    char line[64];
} ossl;

static pid_t start_s_server(uint16_t port, const char *cert, const char *key, const char *extra)
{
    char portbuf[16], certp[192], keyp[192];
    char *argv[16];
    int n = 0;

    snprintf(portbuf, sizeof(portbuf), "%u", port);
    snprintf(certp, sizeof(certp), "%s", tt_path(cert));
    snprintf(keyp, sizeof(keyp), "%s", tt_path(key));
    argv[n++] = (char *)tt_openssl();
    argv[n++] = "s_server";
    argv[n++] = "-accept";
    argv[n++] = portbuf;
    argv[n++] = "-cert";
    argv[n++] = certp;
    argv[n++] = "-key";
    argv[n++] = keyp;
    argv[n++] = "-rev";              /* each line comes back reversed */
    argv[n++] = "-alpn";
    argv[n++] = "http/1.1";
    if (extra != NULL)
        argv[n++] = (char *)extra;
    argv[n] = NULL;
    return tt_spawn(argv, NULL);
}

/* A weft client: handshake, send a line, read the reversed line back. */
static int rev_client(void *arg)
{
    ossl *o = arg;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_tls *t;
    weft_tls_options to = { .server_name = o->name, .flags = WEFT_TLS_OWN_STREAM };
    size_t got = 0;

    ASSERT_OK(weft_addr_ip("127.0.0.1", o->port, &addr, &len));
    ASSERT_OK(weft_tls_new(&t, o->cfg, tt_connect(&addr, len), &to));
    o->result = weft_co_tls_handshake(t, TT_HS_MS);
    snprintf(o->text, sizeof(o->text), "%s", weft_tls_error_text(t));
    if (o->result == 0) {
        snprintf(o->version, sizeof(o->version), "%s", weft_tls_version(t));
        snprintf(o->alpn, sizeof(o->alpn), "%s", weft_tls_alpn(t) ? weft_tls_alpn(t) : "");
        ASSERT_EQ(11, weft_co_tls_write(t, "hello weft\n", 11));
        while (got == 0 || o->line[got - 1] != '\n') {
            ssize_t r = weft_co_tls_read(t, o->line + got, sizeof(o->line) - 1 - got);

            ASSERT(r > 0);
            got += (size_t)r;
        }
        o->line[got] = '\0';
        ASSERT_EQ(0, weft_co_tls_shutdown(t));
    }
    weft_tls_free(t);
    return 0;
}

static void against_s_server(ossl *o, const char *cert, const char *key, const char *extra)
{
    weft_runtime *rt = tt_runtime();
    pid_t pid;
    int res = -1;

    o->port = tt_free_port();
    pid = start_s_server(o->port, cert, key, extra);
    tt_wait_port(o->port);
    ASSERT_OK(weft_co_block_on(rt, rev_client, o, NULL, &res));
    ASSERT_EQ(0, res);
    tt_kill(pid);
    weft_runtime_free(rt);
}

TEST(weft_client_with_s_server)
{
    ossl o = { .name = "localhost" };

    if (!tt_certs())
        return;
    o.cfg = tt_client_cfg("h2,http/1.1");
    against_s_server(&o, "srv.pem", "srv.key", NULL);
    if (o.result != 0)
        harness_fail(__FILE__, __LINE__, "%s: %s", weft_strerror(o.result), o.text);
    ASSERT_EQ(0, strcmp(o.version, "TLSv1.3"));
    ASSERT_EQ(0, strcmp(o.alpn, "http/1.1"));
    ASSERT_EQ(0, strcmp(o.line, "tfew olleh\n"));
    /* TLS 1.2 */
    memset(o.line, 0, sizeof(o.line));
    against_s_server(&o, "srv.pem", "srv.key", "-tls1_2");
    ASSERT_EQ(0, o.result);
    ASSERT_EQ(0, strcmp(o.version, "TLSv1.2"));
    ASSERT_EQ(0, strcmp(o.line, "tfew olleh\n"));
    weft_tls_config_free(o.cfg);
}

TEST(weft_client_refuses_s_server_self_signed)
{
    ossl o = { .name = "localhost" };

    if (!tt_certs())
        return;
    o.cfg = tt_client_cfg(NULL);
    against_s_server(&o, "self.pem", "self.key", NULL);
    ASSERT_EQ(WEFT_TLS_EVERIFY, o.result);
    ASSERT(strstr(o.text, "self-signed") != NULL);
    weft_tls_config_free(o.cfg);
}

/* ---- s_client against a weft server ------------------------------------------------ */
typedef struct sc {
    uint16_t port;
    const char *extra;
    int status;
} sc;

static void *run_s_client(void *arg)
{
    sc *c = arg;
    char cmd[1024];

    snprintf(cmd, sizeof(cmd),
             "printf 'ping\\n' | '%s' s_client -connect 127.0.0.1:%u -servername localhost"
             " -CAfile '%s' -verify_return_error -alpn http/1.1 -quiet %s > '%s' 2>&1",
             tt_openssl(), c->port, tt_path("ca.pem"), c->extra ? c->extra : "",
             tt_path("s_client.out"));
    c->status = system(cmd);
    return NULL;
}

typedef struct srv {
    weft_socket *l;
    weft_tls_config *cfg;
    char sni[64], alpn[32], version[32];
    ssize_t last;
} srv;

static int pong_server(void *arg)
{
    srv *s = arg;
    weft_tls *t;
    weft_tls_options o = { .flags = WEFT_TLS_OWN_STREAM };
    char buf[64];
    size_t got = 0;
    int r;

    ASSERT_OK(weft_tls_new(&t, s->cfg, tt_accept(s->l), &o));
    r = weft_co_tls_handshake(t, TT_HS_MS);
    if (r != 0)
        harness_fail(__FILE__, __LINE__, "handshake: %s: %s", weft_strerror(r),
                     weft_tls_error_text(t));
    snprintf(s->sni, sizeof(s->sni), "%s", weft_tls_server_name(t) ? weft_tls_server_name(t) : "");
    snprintf(s->alpn, sizeof(s->alpn), "%s", weft_tls_alpn(t) ? weft_tls_alpn(t) : "");
    snprintf(s->version, sizeof(s->version), "%s", weft_tls_version(t));
    while (got < 5) {
        ssize_t n = weft_co_tls_read(t, buf + got, sizeof(buf) - got);

        ASSERT(n > 0);
        got += (size_t)n;
    }
    ASSERT_EQ(0, memcmp(buf, "ping\n", 5));
    ASSERT_EQ(5, weft_co_tls_write(t, "pong\n", 5));
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    s->last = weft_co_tls_read(t, buf, sizeof(buf));   /* its close_notify, or its going */
    weft_tls_free(t);
    return 0;
}

static void s_client_case(const char *extra, const char *version)
{
    weft_runtime *rt = tt_runtime();
    struct sockaddr_storage addr;
    socklen_t len;
    srv s = { 0 };
    sc c = { 0 };
    pthread_t th;
    int res = -1;
    FILE *fp;
    char out[4096] = { 0 };

    tt_listen(rt, &s.l, &addr, &len);
    s.cfg = tt_server_cfg("srv.pem", "srv.key", "h2,http/1.1");
    c.port = tt_port(&addr);
    c.extra = extra;
    ASSERT_OK(pthread_create(&th, NULL, run_s_client, &c));
    ASSERT_OK(weft_co_block_on(rt, pong_server, &s, NULL, &res));
    ASSERT_EQ(0, res);
    pthread_join(th, NULL);
    fp = fopen(tt_path("s_client.out"), "r");
    ASSERT(fp != NULL);
    ASSERT(fread(out, 1, sizeof(out) - 1, fp) > 0);
    fclose(fp);
    if (c.status != 0 || strstr(out, "pong") == NULL)
        harness_fail(__FILE__, __LINE__, "s_client: status %d, output:\n%s", c.status, out);
    ASSERT_EQ(0, strcmp(s.sni, "localhost"));
    ASSERT_EQ(0, strcmp(s.alpn, "http/1.1"));
    ASSERT_EQ(0, strcmp(s.version, version));
    ASSERT(s.last == 0 || s.last == WEFT_TLS_ETRUNCATED);
    weft_socket_close(s.l);
    weft_tls_config_free(s.cfg);
    weft_runtime_free(rt);
}

TEST(s_client_with_weft_server)
{
    if (!tt_certs())
        return;
    s_client_case(NULL, "TLSv1.3");
    s_client_case("-tls1_2", "TLSv1.2");
}
