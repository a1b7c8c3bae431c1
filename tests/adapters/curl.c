/* SPDX-License-Identifier: MIT */
/* weft/adapters/curl.h against real libcurl and a small HTTP/1.1 server of
 * the test's own (an epoll thread on a free loopback port: /b/SEED/LEN
 * answers LEN bytes of a pattern, /slow never answers, /close hangs up),
 * plus an HTTPS server (openssl s_server) when openssl is installed: 1,000
 * parallel transfers with every body checked, timeouts, refused and cut
 * connections, cancelling by dropping the future, freeing the multi from
 * a thread and after the runtime with transfers in flight, the body limit,
 * bad arguments. */
#include "adapter_test.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include "weft/adapters/curl.h"

WEFT_DEFINE_FUTURE_STATIC(weft_curl_perform, weft_curl_perform_poll, weft_curl_perform_drop, int);

/* ---- the server ---------------------------------------------------------------------- */
static char pattern_byte(unsigned seed, size_t i)
{
    return (char)('a' + (seed * 31u + (unsigned)(i * 7u) + (unsigned)(i >> 5)) % 26u);
}

struct hconn {
    struct hconn *prev, *next;            /* every open connection: server_down frees them */
    int fd;
    char in[4096];
    size_t inlen;
    char *out;
    size_t outlen, outoff;
};

static int srv_listen_fd, srv_port, srv_epfd;
static atomic_int srv_stop;
static pthread_t srv_thread;
static struct hconn *srv_conns;           /* server thread only, then server_down */

static void hconn_close(struct hconn *h)
{
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        srv_conns = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
    epoll_ctl(srv_epfd, EPOLL_CTL_DEL, h->fd, NULL);
    close(h->fd);
    free(h->out);
    free(h);
}

static void hconn_append(struct hconn *h, const char *data, size_t n)
{
    h->out = (char *)realloc(h->out, h->outlen + n);
    ASSERT(h->out != NULL);
    memcpy(h->out + h->outlen, data, n);
    h->outlen += n;
}

/* false: close the connection */
static bool hconn_serve(struct hconn *h)
{
    char *end;

    while ((end = (char *)memmem(h->in, h->inlen, "\r\n\r\n", 4)) != NULL) {
        size_t used = (size_t)(end + 4 - h->in);
        unsigned seed = 0;
        size_t len = 0;
        char head[256];

        if (strncmp(h->in, "GET /close ", 11) == 0)
            return false;
        if (strncmp(h->in, "GET /slow ", 10) == 0) {
            h->inlen = 0;                 /* never answered */
            return true;
        }
        if (sscanf(h->in, "GET /b/%u/%zu ", &seed, &len) != 2)
            return false;
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nContent-Type: text/plain\r\n\r\n", len);
        hconn_append(h, head, strlen(head));
        h->out = (char *)realloc(h->out, h->outlen + len + 1);
        ASSERT(h->out != NULL);
        for (size_t i = 0; i < len; i++)
            h->out[h->outlen + i] = pattern_byte(seed, i);
        h->outlen += len;
        memmove(h->in, h->in + used, h->inlen - used);
        h->inlen -= used;
    }
    return h->inlen < sizeof(h->in);
}

static bool hconn_flush(struct hconn *h)
{
    while (h->outoff < h->outlen) {
        ssize_t n = write(h->fd, h->out + h->outoff, h->outlen - h->outoff);

        if (n < 0)
            return errno == EAGAIN;
        h->outoff += (size_t)n;
    }
    h->outoff = h->outlen = 0;
    return true;
}

static void *server_main(void *arg)
{
    struct epoll_event evs[64];

    (void)arg;
    while (!atomic_load(&srv_stop)) {
        int n = epoll_wait(srv_epfd, evs, 64, 50);

        for (int i = 0; i < n; i++) {
            struct hconn *h = (struct hconn *)evs[i].data.ptr;

            if (h == NULL) {
                int fd;

                while ((fd = accept4(srv_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET };

                    h = (struct hconn *)calloc(1, sizeof(*h));
                    ASSERT(h != NULL);
                    h->fd = fd;
                    h->next = srv_conns;
                    if (srv_conns != NULL)
                        srv_conns->prev = h;
                    srv_conns = h;
                    ev.data.ptr = h;
                    ASSERT_EQ(0, epoll_ctl(srv_epfd, EPOLL_CTL_ADD, fd, &ev));
                }
                continue;
            }
            if (evs[i].events & EPOLLIN) {
                ssize_t r;
                bool ok = true;

                while (ok && (r = read(h->fd, h->in + h->inlen, sizeof(h->in) - h->inlen)) > 0) {
                    h->inlen += (size_t)r;
                    ok = hconn_serve(h);
                }
                if (!ok || r == 0 || (r < 0 && errno != EAGAIN)) {
                    hconn_close(h);
                    continue;
                }
            }
            if (!hconn_flush(h))
                hconn_close(h);
        }
    }
    return NULL;
}

static void server_up(void)
{
    struct epoll_event ev = { .events = EPOLLIN };
    struct rlimit rl;

    /* 1,000 transfers: 2,000 descriptors and some */
    ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur < 4096 && rl.rlim_max > rl.rlim_cur) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    srv_listen_fd = at_silent_listener(&srv_port, 4096);
    ASSERT_EQ(0, fcntl(srv_listen_fd, F_SETFL, fcntl(srv_listen_fd, F_GETFL) | O_NONBLOCK));
    srv_epfd = epoll_create1(EPOLL_CLOEXEC);
    ASSERT(srv_epfd >= 0);
    ev.data.ptr = NULL;
    ASSERT_EQ(0, epoll_ctl(srv_epfd, EPOLL_CTL_ADD, srv_listen_fd, &ev));
    atomic_store(&srv_stop, 0);
    ASSERT_EQ(0, pthread_create(&srv_thread, NULL, server_main, NULL));
}

static void server_down(void)
{
    atomic_store(&srv_stop, 1);
    pthread_join(srv_thread, NULL);
    while (srv_conns != NULL)
        hconn_close(srv_conns);
    close(srv_epfd);
    close(srv_listen_fd);                 /* open connections: the process exits */
}

static weft_curl *multi(weft_runtime *rt)
{
    weft_curl *c;

    ASSERT_OK(weft_curl_new(rt, NULL, &c));
    return c;
}

static weft_curl_xfer *xfer(const char *url, long timeout_ms)
{
    weft_curl_xfer *x;

    ASSERT_OK(weft_curl_xfer_new(&x, 0));
    ASSERT_EQ(CURLE_OK, curl_easy_setopt(weft_curl_xfer_easy(x), CURLOPT_URL, url));
    if (timeout_ms > 0)
        curl_easy_setopt(weft_curl_xfer_easy(x), CURLOPT_TIMEOUT_MS, timeout_ms);
    return x;
}

/* One transfer from the main thread: init, then block_on. */
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
    long code = 0;

    ASSERT_OK(weft_curl_xfer_body(x, &b, &n));
    ASSERT_EQ((long long)len, (long long)n);
    for (size_t i = 0; i < len; i++)
        if (b[i] != pattern_byte(seed, i))
            harness_fail(__FILE__, __LINE__, "seed %u: byte %zu differs", seed, i);
    curl_easy_getinfo(weft_curl_xfer_easy(x), CURLINFO_RESPONSE_CODE, &code);
    ASSERT_EQ(200, code);
}

__attribute__((constructor)) static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

__attribute__((destructor)) static void global_cleanup(void)
{
    curl_global_cleanup();
}

/* ---- 1,000 at once ---------------------------------------------------------------------- */
typedef struct fetcher {
    weft_async co;
    weft_curl *c;
    weft_curl_xfer *x;
    unsigned seed;
    size_t len;
    weft_curl_perform p;
    int res;
} fetcher;

static atomic_int fetch_started;

static weft_poll fetcher_poll(fetcher *f, weft_context *cx, int *out)
{
    WEFT_BEGIN(&f->co);
    weft_curl_perform_init(&f->p, f->c, f->x);
    atomic_fetch_add(&fetch_started, 1);
    WEFT_AWAIT(&f->co, weft_curl_perform_poll(&f->p, cx, &f->res));
    *out = f->res;
    WEFT_END(&f->co);
}

static void fetcher_drop(fetcher *f)
{
    weft_curl_perform_drop(&f->p);
}

WEFT_DEFINE_FUTURE_STATIC(fetcher, fetcher_poll, fetcher_drop, int);

TEST(parallel_transfers_every_body_checked)
{
    unsigned n = (unsigned)harness_scale(1000);
    weft_runtime *rt = at_runtime(2);
    weft_curl *c;
    weft_curl_xfer **xs = (weft_curl_xfer **)calloc(n, sizeof(*xs));
    weft_join **joins = (weft_join **)calloc(n, sizeof(*joins));
    unsigned long peak = 0;
    uint64_t t0;
    char url[128];
    int out;

    ASSERT(xs != NULL && joins != NULL);
    server_up();
    c = multi(rt);
    atomic_store(&fetch_started, 0);
    t0 = harness_now_ns();
    for (unsigned i = 0; i < n; i++) {
        size_t len = (size_t)(i % 5) * 7000 + i;   /* 0 .. ~29 KB: many reads each */

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/b/%u/%zu", srv_port, i, len);
        xs[i] = xfer(url, 0);
        ASSERT_OK(weft_spawn(rt, &fetcher_future,
                             &(fetcher){ .c = c, .x = xs[i], .seed = i, .len = len }, &joins[i]));
    }
    for (unsigned i = 0; i < n; i++) {
        unsigned long r = weft_curl_running(c);

        peak = r > peak ? r : peak;
        ASSERT_OK(weft_join_wait(joins[i], &out));
        ASSERT_EQ(CURLE_OK, out);
        check_body(xs[i], i, (size_t)(i % 5) * 7000 + i);
        weft_join_drop(joins[i]);
        weft_curl_xfer_free(xs[i]);
    }
    printf("%u transfers in %.1f ms (bodies checked as they finished), peak in the multi %lu\n",
           n, (double)(harness_now_ns() - t0) / 1e6, peak);
    ASSERT_EQ(0, (long long)weft_curl_running(c));
    weft_curl_free(c);
    weft_runtime_free(rt);
    server_down();
    free(xs);
    free(joins);
}

/* The same xfer again and again from a coroutine: keep-alive reuse. */
struct co_arg {
    weft_curl *c;
    unsigned id;
};

static int co_fetch(void *p)
{
    struct co_arg *a = (struct co_arg *)p;
    weft_curl_xfer *x;
    char url[128];

    ASSERT_OK(weft_curl_xfer_new(&x, 0));
    for (unsigned i = 0; i < 20; i++) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/b/%u/%u", srv_port, a->id * 100 + i,
                 i * 100);
        curl_easy_setopt(weft_curl_xfer_easy(x), CURLOPT_URL, url);
        ASSERT_EQ(CURLE_OK, weft_curl_co_perform(a->c, x));
        check_body(x, a->id * 100 + i, i * 100);
    }
    weft_curl_xfer_free(x);
    return 0;
}

TEST(coroutines_reuse_a_transfer)
{
    enum { N = 20 };
    weft_runtime *rt = at_runtime(2);
    weft_curl *c;
    struct co_arg args[N];
    weft_join *j[N];
    int out;

    server_up();
    c = multi(rt);
    for (unsigned i = 0; i < N; i++) {
        args[i] = (struct co_arg){ c, i };
        ASSERT_OK(weft_go(rt, co_fetch, &args[i], &j[i]));
    }
    for (unsigned i = 0; i < N; i++) {
        ASSERT_OK(weft_join_wait(j[i], &out));
        ASSERT_EQ(0, out);
        weft_join_drop(j[i]);
    }
    weft_curl_free(c);
    weft_runtime_free(rt);
    server_down();
}

/* ---- failures ----------------------------------------------------------------------------- */
TEST(timeout_refused_cut)
{
    weft_runtime *rt = at_runtime(2);
    weft_curl *c;
    weft_curl_xfer *x;
    char url[128];
    uint64_t t0;

    server_up();
    c = multi(rt);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow", srv_port);
    x = xfer(url, 300);
    t0 = weft_now_ms();
    ASSERT_EQ(CURLE_OPERATION_TIMEDOUT, run_xfer(rt, c, x));   /* curl's timer, through ours */
    ASSERT(weft_now_ms() - t0 >= 290);
    weft_curl_xfer_free(x);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/close", srv_port);
    x = xfer(url, 0);
    ASSERT_EQ(CURLE_GOT_NOTHING, run_xfer(rt, c, x));
    weft_curl_xfer_free(x);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/b/1/10", at_free_port(SOCK_STREAM));
    x = xfer(url, 0);
    ASSERT_EQ(CURLE_COULDNT_CONNECT, run_xfer(rt, c, x));
    weft_curl_xfer_free(x);

    /* the body limit */
    ASSERT_OK(weft_curl_xfer_new(&x, 100));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/b/1/1000", srv_port);
    curl_easy_setopt(weft_curl_xfer_easy(x), CURLOPT_URL, url);
    ASSERT_EQ(CURLE_WRITE_ERROR, run_xfer(rt, c, x));
    /* and it still works after all that */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/b/2/50", srv_port);
    curl_easy_setopt(weft_curl_xfer_easy(x), CURLOPT_URL, url);
    ASSERT_EQ(CURLE_OK, run_xfer(rt, c, x));
    check_body(x, 2, 50);
    weft_curl_xfer_free(x);
    weft_curl_free(c);
    weft_runtime_free(rt);
    server_down();
}

/* Dropping the future cancels the transfer: the multi empties, the xfer is
 * reusable. weft_timeout drops it. */
typedef struct limited {
    weft_async co;
    weft_curl_perform p;
    weft_timeout t;
    int res, tres;
    weft_curl *c;
    weft_curl_xfer *x;
} limited;

static weft_poll limited_poll(limited *l, weft_context *cx, int *out)
{
    WEFT_BEGIN(&l->co);
    weft_curl_perform_init(&l->p, l->c, l->x);
    weft_timeout_init(&l->t, &weft_curl_perform_future, &l->p, 100);
    WEFT_AWAIT(&l->co, weft_timeout_poll(&l->t, cx, &l->tres, &l->res));
    *out = l->tres;
    WEFT_END(&l->co);
}

static void limited_drop(limited *l)
{
    weft_timeout_drop(&l->t);
}

WEFT_DEFINE_FUTURE_STATIC(limited, limited_poll, limited_drop, int);

TEST(drop_cancels_transfer)
{
    enum { N = 50 };
    weft_runtime *rt = at_runtime(2);
    weft_curl *c;
    weft_curl_xfer *x[N];
    weft_join *j[N];
    char url[128];
    int out;
    uint64_t until;

    server_up();
    c = multi(rt);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow", srv_port);
    for (int i = 0; i < N; i++) {
        x[i] = xfer(url, 0);
        ASSERT_OK(weft_spawn(rt, &limited_future, &(limited){ .c = c, .x = x[i] }, &j[i]));
    }
    for (int i = 0; i < N; i++) {
        ASSERT_OK(weft_join_wait(j[i], &out));
        ASSERT_EQ(-ETIMEDOUT, out);
        weft_join_drop(j[i]);
    }
    until = weft_now_ms() + AT_WAIT_MS;
    while (weft_curl_running(c) != 0)
        { ASSERT(weft_now_ms() < until); at_sleep_ms(1); }
    for (int i = 0; i < N; i++) {
        const char *b;
        size_t n;

        while (weft_curl_xfer_body(x[i], &b, &n) == -EBUSY)   /* the cancel ran */
            { ASSERT(weft_now_ms() < until); at_sleep_ms(1); }
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/b/%d/%d", srv_port, i, i * 10);
        curl_easy_setopt(weft_curl_xfer_easy(x[i]), CURLOPT_URL, url);
        ASSERT_EQ(CURLE_OK, run_xfer(rt, c, x[i]));          /* reusable */
        check_body(x[i], (unsigned)i, (size_t)i * 10);
    }
    /* free the xfer first, then drop its pending future: released once */
    {
        weft_curl_perform p;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow", srv_port);
        curl_easy_setopt(weft_curl_xfer_easy(x[0]), CURLOPT_URL, url);
        weft_curl_perform_init(&p, c, x[0]);
        weft_curl_xfer_free(x[0]);
        at_sleep_ms(20);
        weft_curl_perform_drop(&p);
        weft_curl_perform_drop(&p);                           /* idempotent */
    }
    for (int i = 1; i < N; i++)
        weft_curl_xfer_free(x[i]);
    weft_curl_free(c);
    weft_runtime_free(rt);
    server_down();
}

/* ---- teardown ------------------------------------------------------------------------------- */
static atomic_int released;

static void on_release(void *arg)
{
    (void)arg;
    atomic_fetch_add(&released, 1);
}

static void *free_thread(void *p)
{
    weft_curl_free((weft_curl *)p);
    return NULL;
}

TEST(free_from_a_thread_with_transfers_in_flight)
{
    enum { N = 40 };
    weft_runtime *rt = at_runtime(2);
    weft_curl *c;
    weft_curl_xfer *x[N];
    weft_join *j[N];
    char url[128];
    pthread_t th;
    int out;

    server_up();
    c = multi(rt);
    atomic_store(&released, 0);
    atomic_store(&fetch_started, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow", srv_port);
    for (int i = 0; i < N; i++) {
        x[i] = xfer(url, 0);
        weft_curl_xfer_on_release(x[i], on_release, NULL);
        ASSERT_OK(weft_spawn(rt, &fetcher_future, &(fetcher){ .c = c, .x = x[i] }, &j[i]));
    }
    while (atomic_load(&fetch_started) < N)
        at_sleep_ms(1);
    at_sleep_ms(100);                                        /* connected and waiting */
    for (int i = 0; i < N / 2; i++)
        weft_curl_xfer_free(x[i]);                           /* half freed while in flight */
    ASSERT_EQ(0, atomic_load(&released));
    ASSERT_EQ(0, pthread_create(&th, NULL, free_thread, c));
    for (int i = 0; i < N; i++) {
        ASSERT_OK(weft_join_wait(j[i], &out));
        ASSERT_EQ(-ECANCELED, out);
        weft_join_drop(j[i]);
    }
    pthread_join(th, NULL);
    ASSERT_EQ(N / 2, atomic_load(&released));
    for (int i = N / 2; i < N; i++)
        weft_curl_xfer_free(x[i]);
    ASSERT_EQ(N, atomic_load(&released));
    weft_runtime_free(rt);
    server_down();
}

TEST(free_after_runtime)
{
    weft_runtime *rt = at_runtime(2);
    weft_curl *c;
    weft_curl_xfer *x[3];
    weft_curl_perform p[3];
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);
    char url[128];
    int res;

    server_up();
    c = multi(rt);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow", srv_port);
    for (int i = 0; i < 3; i++) {
        x[i] = xfer(url, 0);
        weft_curl_perform_init(&p[i], c, x[i]);
    }
    {
        weft_curl_perform busy;

        weft_curl_perform_init(&busy, c, x[0]);              /* in flight already */
        ASSERT_EQ(WEFT_READY, weft_curl_perform_poll(&busy, &cx, &res));
        ASSERT_EQ(-EBUSY, res);
        weft_curl_perform_drop(&busy);
    }
    at_sleep_ms(100);
    weft_runtime_free(rt);
    weft_curl_free(c);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(WEFT_READY, weft_curl_perform_poll(&p[i], &cx, &res));
        ASSERT_EQ(-ECANCELED, res);
        weft_curl_perform_drop(&p[i]);
        weft_curl_xfer_free(x[i]);
    }
    server_down();
}

/* ---- HTTPS through openssl s_server ------------------------------------------------------- */
TEST(https)
{
    char dir[] = "/tmp/weft-curl-tls.XXXXXX", cmd[512], port[16], cert[128], key[128], url[128];
    weft_runtime *rt;
    weft_curl *c;
    weft_curl_xfer *x;
    const char *b;
    size_t n;
    pid_t pid;
    int p;

    if (!at_have_program("openssl"))
        at_skip("openssl not found (Debian: apt-get install openssl)");
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 "
             "-subj /CN=localhost >/dev/null 2>&1", key, cert);
    ASSERT_EQ(0, system(cmd));
    p = at_free_port(SOCK_STREAM);
    snprintf(port, sizeof(port), "%d", p);
    {
        char *argv[] = { (char *)"openssl", (char *)"s_server", (char *)"-accept", port,
                         (char *)"-cert", cert, (char *)"-key", key, (char *)"-www",
                         (char *)"-quiet", NULL };

        pid = at_spawn(argv, true);
    }
    ASSERT(at_wait_port(p, AT_WAIT_MS));
    rt = at_runtime(2);
    c = multi(rt);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", p);
    for (int i = 0; i < 3; i++) {
        x = xfer(url, 20000);
        curl_easy_setopt(weft_curl_xfer_easy(x), CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(weft_curl_xfer_easy(x), CURLOPT_SSL_VERIFYHOST, 0L);
        ASSERT_EQ(CURLE_OK, run_xfer(rt, c, x));
        ASSERT_OK(weft_curl_xfer_body(x, &b, &n));
        ASSERT(n > 0 && strstr(b, "s_server") != NULL);      /* its -www status page */
        weft_curl_xfer_free(x);
    }
    weft_curl_free(c);
    weft_runtime_free(rt);
    at_stop(pid);
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

/* ---- bad arguments -------------------------------------------------------------------------- */
TEST(bad_arguments)
{
    weft_runtime *rt = at_runtime(1);
    weft_curl *c;
    weft_curl_xfer *x;
    weft_curl_perform p;
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);
    const char *b;
    size_t n;
    int res;

    ASSERT_EQ(-EINVAL, weft_curl_new(rt, NULL, NULL));
    ASSERT_EQ(-EINVAL, weft_curl_xfer_new(NULL, 0));
    ASSERT_OK(weft_curl_new(rt, NULL, &c));
    ASSERT_OK(weft_curl_xfer_new(&x, 0));
    ASSERT_EQ(-EINVAL, weft_curl_xfer_body(NULL, &b, &n));
    ASSERT_OK(weft_curl_xfer_body(x, &b, &n));                /* empty before any transfer */
    ASSERT_EQ(0, (long long)n);
    ASSERT(weft_curl_xfer_easy(NULL) == NULL);
    weft_curl_perform_init(&p, NULL, x);
    ASSERT_EQ(WEFT_READY, weft_curl_perform_poll(&p, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    ASSERT_EQ(WEFT_READY, weft_curl_perform_poll(&p, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_curl_perform_drop(&p);
    weft_curl_perform_init(&p, c, NULL);
    ASSERT_EQ(WEFT_READY, weft_curl_perform_poll(&p, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    ASSERT_EQ(-EINVAL, weft_curl_co_perform(c, x));           /* not a coroutine */
    ASSERT_EQ(0, (long long)weft_curl_running(NULL));
    weft_curl_xfer_free(x);
    weft_curl_xfer_free(NULL);
    weft_curl_free(c);
    weft_curl_free(NULL);
    weft_runtime_free(rt);
}

/* A current-thread runtime: the loop runs only inside block_on. */
TEST(current_thread_runtime)
{
    weft_runtime *rt = at_runtime(0);
    weft_curl *c;
    char url[128];

    server_up();
    c = multi(rt);
    for (unsigned i = 0; i < 10; i++) {
        weft_curl_xfer *x;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/b/%u/%u", srv_port, i, i * 1000);
        x = xfer(url, 0);
        ASSERT_EQ(CURLE_OK, run_xfer(rt, c, x));
        check_body(x, i, i * 1000);
        weft_curl_xfer_free(x);
    }
    weft_curl_free(c);
    weft_runtime_free(rt);
    server_down();
}
