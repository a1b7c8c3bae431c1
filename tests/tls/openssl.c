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

/* ---- s_server's commands: KeyUpdate (TLS 1.3), renegotiation (TLS 1.2) ------------ */
typedef struct ku {
    uint16_t port;
    weft_tls_config *cfg;
    int cmd_fd;                      /* s_server's stdin */
    const char *cmd;                 /* a command line for s_server */
    ssize_t after;                   /* the read after the command */
    char line[64];
} ku;

static bool file_has(const char *path, const char *what)
{
    char buf[8192];
    FILE *fp = fopen(path, "r");
    size_t got = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;

    if (fp)
        fclose(fp);
    buf[got] = '\0';
    return strstr(buf, what) != NULL;
}

static int ku_client(void *arg)
{
    ku *k = arg;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_tls *t;
    weft_tls_options to = { .server_name = "localhost", .flags = WEFT_TLS_OWN_STREAM };
    size_t got = 0;

    ASSERT_OK(weft_addr_ip("127.0.0.1", k->port, &addr, &len));
    ASSERT_OK(weft_tls_new(&t, k->cfg, tt_connect(&addr, len), &to));
    ASSERT_OK(weft_co_tls_handshake(t, TT_HS_MS));
    ASSERT_EQ(6, weft_co_tls_write(t, "first\n", 6));
    /* the command, then a line of data from s_server: our read meets the
     * KeyUpdate (or HelloRequest) first */
    ASSERT_EQ((ssize_t)strlen(k->cmd), write(k->cmd_fd, k->cmd, strlen(k->cmd)));
    /* s_server takes a command only as a read of its own: wait until it
     * has acted on this one before the data line */
    for (int i = 0; i < 2000 && !file_has(tt_path("s_server.out"), "SSL_do_handshake"); i++)
        weft_co_sleep(10);
    ASSERT_EQ(6, write(k->cmd_fd, "hello\n", 6));
    while (got == 0 || k->line[got - 1] != '\n') {
        ssize_t r = weft_co_tls_read(t, k->line + got, sizeof(k->line) - 1 - got);

        k->after = r;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    k->line[got] = '\0';
    if (k->after > 0) {
        /* sent under our new keys (TLS 1.3: we answered the KeyUpdate) */
        ASSERT_EQ(4, weft_co_tls_write(t, "bye\n", 4));
        ASSERT_EQ(0, weft_co_tls_shutdown(t));
    }
    weft_tls_free(t);
    return 0;
}

static void s_server_command(const char *cmd, const char *extra, ku *k, char *out, size_t outlen)
{
    weft_runtime *rt = tt_runtime();
    posix_spawn_file_actions_t fa;
    char portbuf[16], certp[192], keyp[192];
    char *argv[16];
    int n = 0, res = -1, fds[2];
    pid_t pid;
    FILE *fp;
    size_t got;

    k->port = tt_free_port();
    k->cmd = cmd;
    snprintf(portbuf, sizeof(portbuf), "%u", k->port);
    snprintf(certp, sizeof(certp), "%s", tt_path("srv.pem"));
    snprintf(keyp, sizeof(keyp), "%s", tt_path("srv.key"));
    argv[n++] = (char *)tt_openssl();
    argv[n++] = "s_server";
    argv[n++] = "-accept";
    argv[n++] = portbuf;
    argv[n++] = "-cert";
    argv[n++] = certp;
    argv[n++] = "-key";
    argv[n++] = keyp;
    argv[n++] = "-ign_eof";
    if (extra != NULL)
        argv[n++] = (char *)extra;
    argv[n] = NULL;
    ASSERT_OK(pipe(fds));
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    posix_spawn_file_actions_addopen(&fa, 1, tt_path("s_server.out"),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    ASSERT_OK(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ));
    posix_spawn_file_actions_destroy(&fa);
    close(fds[0]);
    k->cmd_fd = fds[1];
    /* connect only once it listens: a probe connection would take the
     * commands (s_server serves one connection at a time) */
    for (int i = 0; i < 2000; i++) {
        fp = fopen(tt_path("s_server.out"), "r");
        got = fp ? fread(out, 1, outlen - 1, fp) : 0;
        if (fp)
            fclose(fp);
        out[got] = '\0';
        if (strstr(out, "ACCEPT") != NULL)
            break;
        usleep(10000);
    }
    ASSERT(strstr(out, "ACCEPT") != NULL);
    ASSERT_OK(weft_co_block_on(rt, ku_client, k, NULL, &res));
    ASSERT_EQ(0, res);
    usleep(200000);                  /* let s_server write what it got */
    close(k->cmd_fd);
    tt_kill(pid);
    fp = fopen(tt_path("s_server.out"), "r");
    ASSERT(fp != NULL);
    got = fread(out, 1, outlen - 1, fp);
    out[got] = '\0';
    fclose(fp);
    weft_runtime_free(rt);
}

TEST(s_server_key_update_is_answered)
{
    ku k = { 0 };
    char out[8192];

    if (!tt_certs())
        return;
    k.cfg = tt_client_cfg(NULL);
    s_server_command("K\n", NULL, &k, out, sizeof(out));
    if (k.after <= 0 || strcmp(k.line, "hello\n") != 0 || strstr(out, "bye") == NULL)
        harness_fail(__FILE__, __LINE__, "read %zd \"%s\"; s_server:\n%s", k.after, k.line, out);
    ASSERT(strstr(out, "first") != NULL);
    weft_tls_config_free(k.cfg);
}

TEST(s_server_renegotiation_is_refused)
{
    ku k = { 0 };
    char out[8192];

    if (!tt_certs())
        return;
    k.cfg = tt_client_cfg(NULL);
    s_server_command("r\n", "-tls1_2", &k, out, sizeof(out));
    /* refused with a no_renegotiation alert; our read goes on */
    if (k.after <= 0 || strcmp(k.line, "hello\n") != 0 || strstr(out, "no renegotiation") == NULL)
        harness_fail(__FILE__, __LINE__, "read %zd \"%s\"; s_server:\n%s", k.after, k.line, out);
    weft_tls_config_free(k.cfg);
}
