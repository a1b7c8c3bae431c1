// SPDX-License-Identifier: MIT
/* An audit of weft/adapters/curl.h's promises against real libcurl, a small
 * HTTP/1.1 server of the test's own (a thread per connection: /b/SEED/LEN
 * answers LEN pattern bytes and keeps the connection; /idle/SEED/LEN
 * answers, then closes the idle connection; /stall/LEN sends the head and
 * half the body, then nothing) and openssl s_server for HTTPS:
 *   - a transfer dropped mid-body: x is reusable once weft_curl_xfer_body()
 *     stops saying -EBUSY, and the next transfer on it is whole;
 *   - weft_curl_xfer_free() mid-transfer: the future still completes (here
 *     with curl's timeout), the release hook runs once, after;
 *   - a server that stalls mid-body: CURLE_OPERATION_TIMEDOUT;
 *   - a cached connection the server closes while idle: the next transfer
 *     works (a new connection), and the adapter does not spin meanwhile;
 *   - weft_curl_free() from a task of the same runtime with transfers in
 *     flight: each -ECANCELED;
 *   - HTTPS through openssl s_server: an unknown issuer is refused
 *     (CURLE_PEER_FAILED_VERIFICATION), the right CA accepted. */
#include "adapter_test.h"

#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>

#include "weft/adapters/curl.h"

WEFT_DEFINE_FUTURE_STATIC(weft_curl_perform, weft_curl_perform_poll, weft_curl_perform_drop, int);

static char pattern_byte(unsigned seed, size_t i)
{
    return (char)('a' + (seed * 31u + (unsigned)(i * 7u) + (unsigned)(i >> 5)) % 26u);
}

/* ---- the server ------------------------------------------------------------------------ */
static int srv_fd, srv_port;
static atomic_int srv_stop, srv_threads, srv_conns;
static pthread_t srv_thread;

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Wait until fd is readable or the server stops; false on stop/timeout. */
static bool wait_readable(int fd, int ms)
{
    for (int waited = 0; !atomic_load(&srv_stop); waited += 50) {
        struct pollfd p = { .fd = fd, .events = POLLIN };

        if (ms >= 0 && waited >= ms)
            return false;
        if (poll(&p, 1, 50) > 0)
            return true;
    }
    return false;
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char in[4096];
    size_t inlen = 0;
    bool close_when_idle = false;

    for (;;) {
        char *end;
        ssize_t r;

        if (!wait_readable(fd, close_when_idle ? 100 : -1))
            break;                   /* stop, or idle: close */
        r = recv(fd, in + inlen, sizeof(in) - inlen, 0);
        if (r <= 0)
            break;
        inlen += (size_t)r;
        while ((end = memmem(in, inlen, "\r\n\r\n", 4)) != NULL) {
            size_t used = (size_t)(end + 4 - in), len = 0;
            unsigned seed = 0;
            char head[256], *body;
            bool stall = false;

            if (sscanf(in, "GET /b/%u/%zu ", &seed, &len) == 2) {
                close_when_idle = false;
            } else if (sscanf(in, "GET /idle/%u/%zu ", &seed, &len) == 2) {
                close_when_idle = true;
            } else if (sscanf(in, "GET /stall/%zu ", &len) == 1) {
                stall = true;
            } else {
                goto out;
            }
            snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", len);
            body = malloc(len + 1);
            ASSERT(body != NULL);
            for (size_t i = 0; i < len; i++)
                body[i] = pattern_byte(seed, i);
            if (!send_all(fd, head, strlen(head)) ||
                !send_all(fd, body, stall ? len / 2 : len)) {
                free(body);
                goto out;
            }
            free(body);
            if (stall) {
                while (!atomic_load(&srv_stop))
                    at_sleep_ms(20);
                goto out;
            }
            memmove(in, in + used, inlen - used);
            inlen -= used;
        }
    }
out:
    close(fd);
    atomic_fetch_sub(&srv_threads, 1);
    return NULL;
}

static void *server_main(void *arg)
{
    (void)arg;
    while (wait_readable(srv_fd, -1)) {
        int fd = accept(srv_fd, NULL, NULL);
        pthread_t th;

        if (fd < 0)
            continue;
        atomic_fetch_add(&srv_threads, 1);
        atomic_fetch_add(&srv_conns, 1);
        ASSERT_EQ(0, pthread_create(&th, NULL, conn_main, (void *)(intptr_t)fd));
        pthread_detach(th);
    }
    return NULL;
}

static void server_up(void)
{
    srv_fd = at_silent_listener(&srv_port, 128);
    atomic_store(&srv_stop, 0);
    atomic_store(&srv_conns, 0);
    ASSERT_EQ(0, pthread_create(&srv_thread, NULL, server_main, NULL));
}

static void server_down(void)
{
    atomic_store(&srv_stop, 1);
    pthread_join(srv_thread, NULL);
    while (atomic_load(&srv_threads) > 0)
        at_sleep_ms(5);
    close(srv_fd);
}

static weft_curl_xfer *xfer(const char *path, long timeout_ms)
{
    weft_curl_xfer *x;
    char url[128];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", srv_port, path);
    ASSERT_OK(weft_curl_xfer_new(&x, 0));
    ASSERT_EQ(CURLE_OK, curl_easy_setopt(weft_curl_xfer_easy(x), CURLOPT_URL, url));
    if (timeout_ms > 0)
        curl_easy_setopt(weft_curl_xfer_easy(x), CURLOPT_TIMEOUT_MS, timeout_ms);
    return x;
}

static void set_path(weft_curl_xfer *x, const char *path)
{
    char url[128];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", srv_port, path);
    ASSERT_EQ(CURLE_OK, curl_easy_setopt(weft_curl_xfer_easy(x), CURLOPT_URL, url));
}

static int run_xfer(weft_runtime *rt, weft_curl *c, weft_curl_xfer *x)
{
    weft_curl_perform p;
    int res = 12345;

    weft_curl_perform_init(&p, c, x);
    ASSERT_OK(weft_block_on(rt, &weft_curl_perform_future, &p, &res));
    return res;
}

static void check_body(weft_curl_xfer *x, unsigned seed, size_t len)
{
    const char *b;
    size_t n;

    ASSERT_OK(weft_curl_xfer_body(x, &b, &n));
    ASSERT_EQ((long long)len, (long long)n);
    for (size_t i = 0; i < len; i++)
        if (b[i] != pattern_byte(seed, i))
            harness_fail(__FILE__, __LINE__, "seed %u: byte %zu differs", seed, i);
}

__attribute__((constructor)) static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

__attribute__((destructor)) static void global_cleanup(void)
{
    curl_global_cleanup();
}

static void wait_not_busy(weft_curl_xfer *x)
{
    uint64_t until = weft_now_ms() + AT_WAIT_MS;
    const char *b;
    size_t n;

    while (weft_curl_xfer_body(x, &b, &n) == -EBUSY) {
        ASSERT(weft_now_ms() < until);
        at_sleep_ms(1);
    }
}

/* ---- tests ----------------------------------------------------------------------------------- */
TEST(drop_mid_body_then_reuse)
{
    weft_runtime *rt = at_runtime(2);
    weft_curl *c;
    weft_curl_xfer *x;
    weft_curl_perform p;
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);
    int res;

    server_up();
    ASSERT_OK(weft_curl_new(rt, NULL, &c));
    x = xfer("/stall/200000", 0);
    for (int round = 0; round < 3; round++) {
        set_path(x, "/stall/200000");
        weft_curl_perform_init(&p, c, x);
        ASSERT_EQ(WEFT_PENDING, weft_curl_perform_poll(&p, &cx, &res));
        {
            const char *b;
            size_t n;

            ASSERT_EQ(-EBUSY, weft_curl_xfer_body(x, &b, &n));
        }
        at_sleep_ms(100);                              /* part of the body is in */
        weft_curl_perform_drop(&p);
        weft_curl_perform_drop(&p);                    /* idempotent */
        wait_not_busy(x);
        set_path(x, "/b/5/100000");
        ASSERT_EQ(CURLE_OK, run_xfer(rt, c, x));
        check_body(x, 5, 100000);
    }
    weft_curl_xfer_free(x);
    weft_curl_free(c);
    weft_runtime_free(rt);
    server_down();
}

static atomic_int released;

static void on_release(void *arg)
{
    (void)arg;
    atomic_fetch_add(&released, 1);
}

TEST(xfer_free_mid_transfer_then_timeout)
{
    weft_runtime *rt = at_runtime(2);
    weft_curl *c;
    weft_curl_xfer *x;
    weft_curl_perform p;
    int res = 12345;

    server_up();
    ASSERT_OK(weft_curl_new(rt, NULL, &c));
    atomic_store(&released, 0);
    x = xfer("/stall/100000", 300);
    weft_curl_xfer_on_release(x, on_release, NULL);
    weft_curl_perform_init(&p, c, x);
    weft_curl_xfer_free(x);                            /* ours goes; the transfer's stays */
    ASSERT_EQ(0, atomic_load(&released));
    ASSERT_OK(weft_block_on(rt, &weft_curl_perform_future, &p, &res));
    ASSERT_EQ(CURLE_OPERATION_TIMEDOUT, res);
    {
        uint64_t until = weft_now_ms() + AT_WAIT_MS;

        while (atomic_load(&released) == 0) {
            ASSERT(weft_now_ms() < until);
            at_sleep_ms(1);
        }
    }
    weft_curl_free(c);
    ASSERT_EQ(1, atomic_load(&released));
    weft_runtime_free(rt);
    server_down();
}

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* The server closes each connection 100 ms after its answer; curl keeps
 * it in its cache. The next transfer still works, and while the closed
 * connection sits in the cache the adapter does not spin on it (a
 * level-triggered watch nobody reads would burn a whole CPU: the bound
 * below is far above idle and far below one busy core). */
TEST(idle_connection_closed_by_the_server)
{
    weft_runtime *rt = at_runtime(2);
    weft_curl *c;
    weft_curl_xfer *x;
    double before, used;

    server_up();
    ASSERT_OK(weft_curl_new(rt, NULL, &c));
    x = xfer("/idle/3/5000", 0);
    ASSERT_EQ(CURLE_OK, run_xfer(rt, c, x));
    check_body(x, 3, 5000);
    at_sleep_ms(300);                                  /* the server has closed it */
    before = cpu_seconds();
    at_sleep_ms(1000);
    used = cpu_seconds() - before;
    printf("CPU while idle: %.3f s in 1 s\n", used);
    ASSERT(used < 0.6);
    ASSERT_EQ(CURLE_OK, run_xfer(rt, c, x));
    check_body(x, 3, 5000);
    ASSERT_EQ(2, atomic_load(&srv_conns));             /* a new connection */
    weft_curl_xfer_free(x);
    weft_curl_free(c);
    weft_runtime_free(rt);
    server_down();
}

/* weft_curl_free() from a coroutine of the same runtime while its
 * transfers stall: each completes with -ECANCELED. */
typedef struct freer {
    weft_curl *c;
} freer;

static int co_free(void *arg)
{
    weft_co_sleep(100);
    weft_curl_free(((freer *)arg)->c);
    return 0;
}

TEST(free_from_a_task_with_transfers_in_flight)
{
    enum { N = 20 };
    weft_runtime *rt = at_runtime(2);
    weft_curl_xfer *x[N];
    weft_curl_perform p[N];
    freer f;
    weft_join *j;
    int out = -1;

    server_up();
    ASSERT_OK(weft_curl_new(rt, NULL, &f.c));
    for (int i = 0; i < N; i++) {
        x[i] = xfer("/stall/100000", 0);
        weft_curl_perform_init(&p[i], f.c, x[i]);
    }
    ASSERT_OK(weft_go(rt, co_free, &f, &j));
    for (int i = 0; i < N; i++) {
        int res = 12345;

        ASSERT_OK(weft_block_on(rt, &weft_curl_perform_future, &p[i], &res));
        ASSERT_EQ(-ECANCELED, res);
        weft_curl_xfer_free(x[i]);
    }
    ASSERT_OK(weft_join_wait(j, &out));
    weft_join_drop(j);
    ASSERT_EQ(0, out);
    weft_runtime_free(rt);
    server_down();
}

/* ---- HTTPS through openssl s_server ----------------------------------------------------------- */
TEST(https_verification)
{
    char dir[] = "/tmp/weft-curl-audit4.XXXXXX", cmd[1024], cert[256], key[256], url[128];
    char port[16];
    weft_runtime *rt;
    weft_curl *c;
    weft_curl_xfer *x;
    pid_t pid;
    int p;

    if (!at_have_program("openssl"))
        at_skip("openssl not found (Debian: apt-get install openssl)");
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(cert, sizeof(cert), "%s/c.pem", dir);
    snprintf(key, sizeof(key), "%s/k.pem", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s "
             "-out %s -days 1 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1",
             key, cert);
    ASSERT_EQ(0, system(cmd));
    p = at_free_port(SOCK_STREAM);
    snprintf(port, sizeof(port), "%d", p);
    {
        char *argv[] = { (char *)"openssl", (char *)"s_server", (char *)"-accept", port,
                         (char *)"-cert", cert, (char *)"-key", key, (char *)"-www", NULL };

        pid = at_spawn(argv, true);
    }
    ASSERT(at_wait_port(p, AT_WAIT_MS));
    rt = at_runtime(2);
    ASSERT_OK(weft_curl_new(rt, NULL, &c));
    ASSERT_OK(weft_curl_xfer_new(&x, 0));
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", p);
    curl_easy_setopt(weft_curl_xfer_easy(x), CURLOPT_URL, url);
    curl_easy_setopt(weft_curl_xfer_easy(x), CURLOPT_TIMEOUT_MS, 20000L);
    /* the system's trust store does not know our self-signed certificate */
    ASSERT_EQ(CURLE_PEER_FAILED_VERIFICATION, run_xfer(rt, c, x));
    curl_easy_setopt(weft_curl_xfer_easy(x), CURLOPT_CAINFO, cert);
    ASSERT_EQ(CURLE_OK, run_xfer(rt, c, x));
    {
        const char *b;
        size_t n;

        ASSERT_OK(weft_curl_xfer_body(x, &b, &n));
        ASSERT(n > 0 && strstr(b, "s_server") != NULL);
    }
    weft_curl_xfer_free(x);
    weft_curl_free(c);
    weft_runtime_free(rt);
    at_stop(pid);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ASSERT_EQ(0, system(cmd));
}

/* weft_curl_co_perform() outside a coroutine is -EINVAL and starts
 * nothing: x is not left in flight (-EBUSY), and the server sees only the
 * transfer made next. */
TEST(co_perform_outside_a_coroutine_starts_nothing)
{
    weft_runtime *rt = at_runtime(2);
    weft_curl *c;
    weft_curl_xfer *x;
    const char *b;
    size_t n;

    server_up();
    ASSERT_OK(weft_curl_new(rt, NULL, &c));
    x = xfer("/b/1/10", 0);
    ASSERT_EQ(-EINVAL, weft_curl_co_perform(c, x));
    ASSERT_OK(weft_curl_xfer_body(x, &b, &n));         /* not in flight */
    ASSERT_EQ(0, (long long)n);
    ASSERT_EQ(CURLE_OK, run_xfer(rt, c, x));
    check_body(x, 1, 10);
    ASSERT_EQ(1, atomic_load(&srv_conns));
    weft_curl_xfer_free(x);
    weft_curl_free(c);
    weft_runtime_free(rt);
    server_down();
}
