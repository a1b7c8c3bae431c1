/* SPDX-License-Identifier: MIT */
/* Shared pieces of the TLS tests: throwaway certificates made with the
 * openssl command (a CA, a server certificate for localhost / 127.0.0.1,
 * an expired one, a self-signed one, one for another name, a client
 * certificate), loopback connections, coroutine helpers, and `openssl`
 * child processes. Everything is static (each test file is its own
 * binary). */
#ifndef WEFT_TLS_TEST_H
#define WEFT_TLS_TEST_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"
#include "weft/tls.h"

#define TT_UNUSED __attribute__((unused))
#define TT_HS_MS 30000u              /* handshake limit: generous, the machine is shared */

extern char **environ;

static char tt_dir[128];

static TT_UNUSED const char *tt_openssl(void)
{
#ifdef WEFT_OPENSSL_BIN
    if (access(WEFT_OPENSSL_BIN, X_OK) == 0)
        return WEFT_OPENSSL_BIN;
#endif
    return access("/usr/bin/openssl", X_OK) == 0 ? "/usr/bin/openssl" : NULL;
}

/* A path in the test's certificate folder (8 rotating buffers). */
static TT_UNUSED const char *tt_path(const char *name)
{
    static char bufs[8][192];
    static int next;
    char *b = bufs[next++ & 7];

    snprintf(b, sizeof(bufs[0]), "%s/%s", tt_dir, name);
    return b;
}

static void tt_cleanup(void)
{
    char cmd[256];

    if (tt_dir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tt_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tt_dir);
    }
}

/* Make the certificates, once per process; false (after printing why) when
 * the openssl command is missing: the caller skips. CI installs it. */
static TT_UNUSED bool tt_certs(void)
{
    const char *ossl = tt_openssl();
    char cmd[4096];

    if (tt_dir[0] != '\0')
        return true;
    if (ossl == NULL) {
        printf("SKIP: the openssl command is not installed (Debian: apt-get install openssl)\n");
        return false;
    }
    snprintf(tt_dir, sizeof(tt_dir), "%s/weft-tls.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ASSERT(mkdtemp(tt_dir) != NULL);
    atexit(tt_cleanup);
    snprintf(cmd, sizeof(cmd),
             "(set -e; cd '%s'; O='%s'; K='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes';"
             "$O req -x509 $K -keyout ca.key -out ca.pem -days 3650 -subj /CN=weft-test-CA;"
             "$O req $K -keyout srv.key -out srv.csr -subj /CN=localhost;"
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > srv.ext;"
             "$O x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
             " -out srv.pem -days 365 -extfile srv.ext;"
             "$O x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
             " -out expired.pem -days -1 -extfile srv.ext;"
             "printf 'subjectAltName=DNS:other.example\\n' > other.ext;"
             "$O x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
             " -out other.pem -days 365 -extfile other.ext;"
             "$O req -x509 $K -keyout self.key -out self.pem -days 365 -subj /CN=localhost"
             " -addext subjectAltName=DNS:localhost,IP:127.0.0.1;"
             "$O req $K -keyout cli.key -out cli.csr -subj /CN=weft-client;"
             "$O x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
             " -out cli.pem -days 365;"
             "printf 'not a certificate\\n' > junk.pem) >/dev/null 2>&1",
             tt_dir, ossl);
    ASSERT_EQ(0, system(cmd));
    return true;
}

/* ---- configurations ---------------------------------------------------------- */
static TT_UNUSED weft_tls_config *tt_server_cfg(const char *cert, const char *key,
                                                const char *alpn)
{
    weft_tls_config *cfg;
    weft_tls_config_options o = { .server = true, .cert_file = tt_path(cert),
                                  .key_file = tt_path(key), .alpn = alpn };

    ASSERT_OK(weft_tls_config_new(&cfg, &o));
    return cfg;
}

static TT_UNUSED weft_tls_config *tt_client_cfg(const char *alpn)
{
    weft_tls_config *cfg;
    weft_tls_config_options o = { .ca_file = tt_path("ca.pem"), .alpn = alpn };

    ASSERT_OK(weft_tls_config_new(&cfg, &o));
    return cfg;
}

/* ---- runtimes and sockets ----------------------------------------------------- */
static TT_UNUSED weft_runtime *tt_runtime(void)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD, .workers = 2 };

    ASSERT_OK(weft_runtime_new(&rt, &opt));
    return rt;
}

static TT_UNUSED void tt_listen(weft_runtime *rt, weft_socket **l, struct sockaddr_storage *addr,
                                socklen_t *len)
{
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, addr, len));
    ASSERT_OK(weft_listen(rt, (struct sockaddr *)addr, *len, 0, l));
    *len = sizeof(*addr);
    ASSERT_OK(weft_socket_local_addr(*l, addr, len));
}

static TT_UNUSED uint16_t tt_port(const struct sockaddr_storage *addr)
{
    return ntohs(((const struct sockaddr_in *)addr)->sin_port);
}

/* From a coroutine: accept one connection. */
static TT_UNUSED weft_socket *tt_accept(weft_socket *l)
{
    weft_accept a;
    weft_socket *s = NULL;
    int r = -1;

    weft_accept_init(&a, l, &s, NULL, NULL);
    ASSERT_OK(weft_co_await(&weft_accept_future, &a, &r));
    ASSERT_OK(r);
    return s;
}

/* From a coroutine: connect to addr. */
static TT_UNUSED weft_socket *tt_connect(const struct sockaddr_storage *addr, socklen_t len)
{
    weft_connect c;
    weft_socket *s = NULL;
    int r = -1;

    weft_connect_init(&c, NULL, (const struct sockaddr *)addr, len, 10000, &s);
    ASSERT_OK(weft_co_await(&weft_connect_future, &c, &r));
    ASSERT_OK(r);
    return s;
}

/* ---- byte patterns -------------------------------------------------------------- */
static TT_UNUSED unsigned char tt_byte(uint32_t seed, size_t i)
{
    uint64_t x = (uint64_t)seed * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull;

    x ^= x >> 29;
    return (unsigned char)(x ^ (x >> 8));
}

static TT_UNUSED void tt_fill(unsigned char *buf, size_t n, uint32_t seed, size_t off)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = tt_byte(seed, off + i);
}

static TT_UNUSED bool tt_check(const unsigned char *buf, size_t n, uint32_t seed, size_t off)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != tt_byte(seed, off + i))
            return false;
    return true;
}

/* From a coroutine: read exactly n bytes (ASSERTs on failure). */
static TT_UNUSED void tt_read_exact(weft_tls *t, void *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = weft_co_tls_read(t, (char *)buf + got, n - got);

        if (r <= 0)
            harness_fail(__FILE__, __LINE__, "read returned %zd (%s) after %zu of %zu bytes: %s",
                         r, weft_strerror((int)r), got, n, weft_tls_error_text(t));
        got += (size_t)r;
    }
}

/* ---- child processes ------------------------------------------------------------- */
/* Start argv[0] with stdin, stdout and stderr on /dev/null (or, when
 * out_path is set, stdout and stderr to that file). */
static TT_UNUSED pid_t tt_spawn(char *const argv[], const char *out_path)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path ? out_path : "/dev/null",
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    ASSERT_OK(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ));
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

static TT_UNUSED void tt_kill(pid_t pid)
{
    int st;

    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
}

/* A free loopback port (bound, then released: another process could take
 * it meanwhile, which is unlikely enough for a test). */
static TT_UNUSED uint16_t tt_free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ASSERT(fd >= 0);
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &len));
    close(fd);
    return ntohs(a.sin_port);
}

/* Wait (up to 20 s) until something accepts connections on the port. */
static TT_UNUSED void tt_wait_port(uint16_t port)
{
    for (int i = 0; i < 2000; i++) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int r = connect(fd, (struct sockaddr *)&a, sizeof(a));

        close(fd);
        if (r == 0)
            return;
        usleep(10000);
    }
    harness_fail(__FILE__, __LINE__, "nothing listens on port %u", port);
}

/* ---- a weft server and a weft client on one runtime ----------------------------- */
typedef struct tt_pair {
    weft_runtime *rt;
    weft_socket *l;
    struct sockaddr_storage addr;    /* where the client connects (maybe a relay) */
    socklen_t len;
    weft_tls_config *scfg, *ccfg;
    size_t big;                      /* bytes each way in a large test */
    size_t conns;
    atomic_int flag;
    atomic_size_t moved;
    atomic_int moved_flag;           /* a second flag */
    weft_tls *shared;                /* a stream two coroutines share */
} tt_pair;

static TT_UNUSED void tt_pair_init(tt_pair *p, const char *salpn, const char *calpn)
{
    p->rt = tt_runtime();
    tt_listen(p->rt, &p->l, &p->addr, &p->len);
    p->scfg = tt_server_cfg("srv.pem", "srv.key", salpn);
    p->ccfg = tt_client_cfg(calpn);
}

/* Run server(p) and client(p) as two coroutines; both must return 0. Then
 * close the listener, free the configurations and the runtime. */
static TT_UNUSED void tt_pair_run(tt_pair *p, weft_co_fn *server, weft_co_fn *client)
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
    weft_socket_close(p->l);
    weft_tls_config_free(p->scfg);
    weft_tls_config_free(p->ccfg);
    weft_runtime_free(p->rt);
}

/* From a coroutine: accept one connection and complete the server's handshake. */
static TT_UNUSED weft_tls *tt_server_hs(tt_pair *p)
{
    weft_tls *t;
    weft_tls_options o = { .flags = WEFT_TLS_OWN_STREAM };

    ASSERT_OK(weft_tls_new(&t, p->scfg, tt_accept(p->l), &o));
    ASSERT_OK(weft_co_tls_handshake(t, TT_HS_MS));
    return t;
}

/* From a coroutine: connect to p->addr as "localhost" and handshake. */
static TT_UNUSED weft_tls *tt_client_hs(tt_pair *p)
{
    weft_tls *t;
    weft_tls_options o = { .server_name = "localhost", .flags = WEFT_TLS_OWN_STREAM };
    int r;

    ASSERT_OK(weft_tls_new(&t, p->ccfg, tt_connect(&p->addr, p->len), &o));
    r = weft_co_tls_handshake(t, TT_HS_MS);
    if (r != 0)
        harness_fail(__FILE__, __LINE__, "handshake: %s: %s", weft_strerror(r),
                     weft_tls_error_text(t));
    return t;
}

#endif
