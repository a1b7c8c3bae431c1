/* SPDX-License-Identifier: MIT */
/* weft/adapters/cares.h against real c-ares and a tiny DNS responder of the
 * test's own (a UDP thread on a free loopback port that answers A queries
 * for hN.weft.test with 10.x.y.z derived from N, NXDOMAIN for other names,
 * and can drop the first K queries or never answer): hundreds of parallel
 * lookups with every address checked, retries (answers after drops),
 * timeouts, NXDOMAIN, freeing the resolver with lookups pending from a
 * thread and after the runtime, bad arguments. */
#include "adapter_test.h"

#include <pthread.h>

#include "weft/adapters/cares.h"

WEFT_DEFINE_FUTURE_STATIC(weft_ares_getaddrinfo, weft_ares_getaddrinfo_poll,
                          weft_ares_getaddrinfo_drop, weft_ares_result);

/* ---- the responder ------------------------------------------------------------------ */
static int dns_fd, dns_port;
static atomic_int dns_stop, dns_queries, dns_drop_first, dns_silent;
static pthread_t dns_thread;

static uint32_t addr_of(unsigned n)
{
    return (10u << 24) | (n & 0xffffffu);
}

/* Answer one query in place; returns the reply's length, 0 to stay silent. */
static size_t dns_answer(unsigned char *m, size_t len, size_t cap)
{
    size_t off = 12, qend;
    char name[256];
    size_t nlen = 0;
    unsigned n;
    bool found;
    uint16_t qtype;

    if (len < 12)
        return 0;
    while (off < len && m[off] != 0) {            /* the question's name */
        unsigned l = m[off];

        if (l > 63 || off + 1 + l > len || nlen + l + 1 >= sizeof(name))
            return 0;
        if (nlen)
            name[nlen++] = '.';
        memcpy(name + nlen, m + off + 1, l);
        nlen += l;
        off += 1 + l;
    }
    name[nlen] = '\0';
    if (off + 5 > len)
        return 0;
    qtype = (uint16_t)(m[off + 1] << 8 | m[off + 2]);
    qend = off + 5;
    found = sscanf(name, "h%u.weft.test", &n) == 1;
    m[2] = (unsigned char)(0x84 | (m[2] & 0x01));  /* QR, AA, RD as asked */
    m[3] = (unsigned char)(0x80 | (found ? 0 : 3)); /* RA; NOERROR or NXDOMAIN */
    m[4] = 0, m[5] = 1;                            /* one question */
    m[6] = 0, m[7] = (found && qtype == 1) ? 1 : 0;
    m[8] = m[9] = m[10] = m[11] = 0;               /* no authority, no additional (EDNS) */
    off = qend;
    if (found && qtype == 1) {
        uint32_t a = addr_of(n);
        unsigned char rr[] = { 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4,
                               (unsigned char)(a >> 24), (unsigned char)(a >> 16),
                               (unsigned char)(a >> 8), (unsigned char)a };

        if (off + sizeof(rr) > cap)
            return 0;
        memcpy(m + off, rr, sizeof(rr));
        off += sizeof(rr);
    }
    return off;
}

static void *dns_main(void *arg)
{
    unsigned char buf[1500];

    (void)arg;
    while (!atomic_load(&dns_stop)) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        struct pollfd p = { .fd = dns_fd, .events = POLLIN };
        ssize_t n;
        size_t out;

        if (poll(&p, 1, 50) <= 0)
            continue;
        while ((n = recvfrom(dns_fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from,
                             &fl)) > 0) {
            if (atomic_fetch_add(&dns_queries, 1) < atomic_load(&dns_drop_first) ||
                atomic_load(&dns_silent))
                continue;                          /* dropped: c-ares must retry */
            out = dns_answer(buf, (size_t)n, sizeof(buf));
            if (out > 0)
                sendto(dns_fd, buf, out, 0, (struct sockaddr *)&from, fl);
            fl = sizeof(from);
        }
    }
    return NULL;
}

static void dns_up(int drop_first, bool silent)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);

    dns_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT(dns_fd >= 0);
    {
        int big = 4 << 20;

        setsockopt(dns_fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    }
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(0, bind(dns_fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_EQ(0, getsockname(dns_fd, (struct sockaddr *)&a, &len));
    dns_port = ntohs(a.sin_port);
    atomic_store(&dns_stop, 0);
    atomic_store(&dns_queries, 0);
    atomic_store(&dns_drop_first, drop_first);
    atomic_store(&dns_silent, silent);
    ASSERT_EQ(0, pthread_create(&dns_thread, NULL, dns_main, NULL));
}

static void dns_down(void)
{
    atomic_store(&dns_stop, 1);
    pthread_join(dns_thread, NULL);
    close(dns_fd);
}

static weft_ares *resolver(weft_runtime *rt, int timeout_ms, int tries)
{
    char servers[64];
    weft_ares_options opt = { .servers = servers, .timeout_ms = timeout_ms, .tries = tries,
                              .flags = ARES_FLAG_NOSEARCH, .lookups = "b" };
    weft_ares *a;

    snprintf(servers, sizeof(servers), "127.0.0.1:%d", dns_port);
    ASSERT_OK(weft_ares_new(rt, &opt, &a));
    return a;
}

static const struct ares_addrinfo_hints v4 = { .ai_family = AF_INET };

static weft_ares_result lookup(weft_runtime *rt, weft_ares *a, const char *name)
{
    weft_ares_getaddrinfo g;
    weft_ares_result res = { 12345, NULL };

    weft_ares_getaddrinfo_init(&g, a, name, NULL, &v4);
    ASSERT_OK(weft_block_on(rt, &weft_ares_getaddrinfo_future, &g, &res));
    return res;
}

static void check_addr(struct ares_addrinfo *ai, unsigned n)
{
    struct sockaddr_in *sin;

    ASSERT(ai != NULL && ai->nodes != NULL);
    ASSERT_EQ(AF_INET, ai->nodes->ai_family);
    sin = (struct sockaddr_in *)(void *)ai->nodes->ai_addr;
    ASSERT_EQ(addr_of(n), ntohl(sin->sin_addr.s_addr));
    ASSERT(ai->nodes->ai_next == NULL);
}

__attribute__((constructor)) static void global_init(void)
{
    ares_library_init(ARES_LIB_INIT_ALL);
}

__attribute__((destructor)) static void global_cleanup(void)
{
    ares_library_cleanup();
}

/* ---- many lookups --------------------------------------------------------------------- */
typedef struct looker {
    weft_async co;
    weft_ares *a;
    unsigned n;
    char name[64];
    weft_ares_getaddrinfo g;
    weft_ares_result res;
} looker;

static weft_poll looker_poll(looker *l, weft_context *cx, int *out)
{
    WEFT_BEGIN(&l->co);
    snprintf(l->name, sizeof(l->name), "h%u.weft.test", l->n);
    weft_ares_getaddrinfo_init(&l->g, l->a, l->name, NULL, &v4);
    WEFT_AWAIT(&l->co, weft_ares_getaddrinfo_poll(&l->g, cx, &l->res));
    if (l->res.result == 0) {
        check_addr(l->res.ai, l->n);
        ares_freeaddrinfo(l->res.ai);
    }
    *out = l->res.result;
    WEFT_END(&l->co);
}

static void looker_drop(looker *l)
{
    weft_ares_getaddrinfo_drop(&l->g);
}

WEFT_DEFINE_FUTURE_STATIC(looker, looker_poll, looker_drop, int);

TEST(parallel_lookups_every_address_checked)
{
    unsigned n = (unsigned)harness_scale(500);
    weft_runtime *rt = at_runtime(2);
    weft_ares *a;
    weft_join **j = (weft_join **)calloc(n, sizeof(*j));
    uint64_t t0;
    int out;

    ASSERT(j != NULL);
    dns_up(0, false);
    a = resolver(rt, 500, 6);        /* the burst overflows socket buffers: retries */
    t0 = harness_now_ns();
    for (unsigned i = 0; i < n; i++)
        ASSERT_OK(weft_spawn(rt, &looker_future, &(looker){ .a = a, .n = i * 977 + 1 }, &j[i]));
    for (unsigned i = 0; i < n; i++) {
        ASSERT_OK(weft_join_wait(j[i], &out));
        ASSERT_EQ(0, out);
        weft_join_drop(j[i]);
    }
    /* one query each, and a retry for any the kernel dropped (a burst of
     * hundreds can overflow the responder's socket buffer) */
    ASSERT((int)n <= atomic_load(&dns_queries));
    printf("%u lookups in %.1f ms, %d queries\n", n, (double)(harness_now_ns() - t0) / 1e6,
           atomic_load(&dns_queries));
    weft_ares_free(a);
    weft_runtime_free(rt);
    dns_down();
    free(j);
}

struct co_arg {
    weft_ares *a;
    unsigned id;
};

static int co_lookups(void *p)
{
    struct co_arg *c = (struct co_arg *)p;
    struct ares_addrinfo *ai;
    char name[64];

    for (unsigned i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "h%u.weft.test", c->id * 10 + i);
        ASSERT_EQ(0, weft_ares_co_getaddrinfo(c->a, name, "80", &v4, &ai));
        check_addr(ai, c->id * 10 + i);
        ASSERT_EQ(80, ntohs(((struct sockaddr_in *)(void *)ai->nodes->ai_addr)->sin_port));
        ares_freeaddrinfo(ai);
    }
    ASSERT_EQ(ARES_ENOTFOUND, weft_ares_co_getaddrinfo(c->a, "nosuch.example", NULL, &v4, &ai));
    ASSERT(ai == NULL);
    return 0;
}

TEST(coroutines_and_nxdomain)
{
    enum { N = 10 };
    weft_runtime *rt = at_runtime(2);
    weft_ares *a;
    struct co_arg args[N];
    weft_join *j[N];
    int out;

    dns_up(0, false);
    a = resolver(rt, 2000, 3);
    for (unsigned i = 0; i < N; i++) {
        args[i] = (struct co_arg){ a, i };
        ASSERT_OK(weft_go(rt, co_lookups, &args[i], &j[i]));
    }
    for (unsigned i = 0; i < N; i++) {
        ASSERT_OK(weft_join_wait(j[i], &out));
        ASSERT_EQ(0, out);
        weft_join_drop(j[i]);
    }
    weft_ares_free(a);
    weft_runtime_free(rt);
    dns_down();
}

/* ---- retries and timeouts --------------------------------------------------------------- */
TEST(retries_after_dropped_queries)
{
    weft_runtime *rt = at_runtime(2);
    weft_ares *a;
    weft_ares_result res;

    dns_up(2, false);                                        /* the first two vanish */
    a = resolver(rt, 150, 4);
    res = lookup(rt, a, "h42.weft.test");
    ASSERT_OK(res.result);
    check_addr(res.ai, 42);
    ares_freeaddrinfo(res.ai);
    ASSERT_EQ(3, atomic_load(&dns_queries));                 /* asked three times */
    weft_ares_free(a);
    weft_runtime_free(rt);
    dns_down();
}

TEST(timeout_when_nobody_answers)
{
    weft_runtime *rt = at_runtime(2);
    weft_ares *a;
    weft_ares_result res;
    uint64_t t0;

    dns_up(0, true);
    a = resolver(rt, 100, 2);
    t0 = weft_now_ms();
    res = lookup(rt, a, "h1.weft.test");
    ASSERT_EQ(ARES_ETIMEOUT, res.result);
    ASSERT(res.ai == NULL);
    ASSERT(weft_now_ms() - t0 >= 100);                       /* our timer, never early */
    ASSERT_EQ(2, atomic_load(&dns_queries));                 /* both tries were made */
    /* and again, the resolver is still fine */
    atomic_store(&dns_silent, 0);
    res = lookup(rt, a, "h7.weft.test");
    ASSERT_OK(res.result);
    check_addr(res.ai, 7);
    ares_freeaddrinfo(res.ai);
    weft_ares_free(a);
    weft_runtime_free(rt);
    dns_down();
}

/* ---- teardown --------------------------------------------------------------------------- */
static void *free_thread(void *p)
{
    weft_ares_free((weft_ares *)p);
    return NULL;
}

static atomic_int lookers_started;

typedef struct waiter {
    weft_async co;
    weft_ares *a;
    weft_ares_getaddrinfo g;
    weft_ares_result res;
} waiter;

static weft_poll waiter_poll(waiter *w, weft_context *cx, int *out)
{
    WEFT_BEGIN(&w->co);
    weft_ares_getaddrinfo_init(&w->g, w->a, "h5.weft.test", NULL, &v4);
    atomic_fetch_add(&lookers_started, 1);
    WEFT_AWAIT(&w->co, weft_ares_getaddrinfo_poll(&w->g, cx, &w->res));
    ASSERT(w->res.ai == NULL);
    *out = w->res.result;
    WEFT_END(&w->co);
}

static void waiter_drop(waiter *w)
{
    weft_ares_getaddrinfo_drop(&w->g);
}

WEFT_DEFINE_FUTURE_STATIC(waiter, waiter_poll, waiter_drop, int);

TEST(free_from_a_thread_with_lookups_pending)
{
    enum { N = 30 };
    weft_runtime *rt = at_runtime(2);
    weft_ares *a;
    weft_join *j[N];
    pthread_t th;
    int out;

    dns_up(0, true);
    a = resolver(rt, 5000, 3);
    atomic_store(&lookers_started, 0);
    for (int i = 0; i < N; i++)
        ASSERT_OK(weft_spawn(rt, &waiter_future, &(waiter){ .a = a }, &j[i]));
    while (atomic_load(&lookers_started) < N)
        at_sleep_ms(1);
    {
        uint64_t until = weft_now_ms() + AT_WAIT_MS;

        while (atomic_load(&dns_queries) < N)                /* all sent */
            { ASSERT(weft_now_ms() < until); at_sleep_ms(1); }
    }
    ASSERT_EQ(0, pthread_create(&th, NULL, free_thread, a));
    for (int i = 0; i < N; i++) {
        ASSERT_OK(weft_join_wait(j[i], &out));
        ASSERT_EQ(-ECANCELED, out);
        weft_join_drop(j[i]);
    }
    pthread_join(th, NULL);
    weft_runtime_free(rt);
    dns_down();
}

TEST(free_after_runtime_and_drop_pending)
{
    weft_runtime *rt = at_runtime(2);
    weft_ares *a;
    weft_ares_getaddrinfo g[3];
    weft_ares_result res;
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);

    dns_up(0, true);
    a = resolver(rt, 5000, 3);
    for (int i = 0; i < 3; i++)
        weft_ares_getaddrinfo_init(&g[i], a, "h9.weft.test", NULL, &v4);
    at_sleep_ms(50);
    weft_ares_getaddrinfo_drop(&g[2]);                       /* dropped while pending */
    weft_runtime_free(rt);
    weft_ares_free(a);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(WEFT_READY, weft_ares_getaddrinfo_poll(&g[i], &cx, &res));
        ASSERT_EQ(-ECANCELED, res.result);
        weft_ares_getaddrinfo_drop(&g[i]);
    }
    dns_down();
}

/* A dropped lookup's answer arrives later and is freed (ASan: no leak). */
TEST(drop_then_answer)
{
    weft_runtime *rt = at_runtime(2);
    weft_ares *a;
    weft_ares_getaddrinfo g;
    weft_ares_result res;

    dns_up(0, false);
    a = resolver(rt, 2000, 3);
    for (int i = 0; i < 50; i++) {
        weft_ares_getaddrinfo_init(&g, a, "h3.weft.test", NULL, &v4);
        weft_ares_getaddrinfo_drop(&g);
    }
    res = lookup(rt, a, "h4.weft.test");                     /* after those */
    ASSERT_OK(res.result);
    check_addr(res.ai, 4);
    ares_freeaddrinfo(res.ai);
    {
        uint64_t until = weft_now_ms() + AT_WAIT_MS;

        while (atomic_load(&dns_queries) < 51)
            { ASSERT(weft_now_ms() < until); at_sleep_ms(1); }
    }
    weft_ares_free(a);
    weft_runtime_free(rt);
    dns_down();
}

/* ---- bad arguments ----------------------------------------------------------------------- */
TEST(bad_arguments)
{
    weft_runtime *rt = at_runtime(1);
    weft_ares *a;
    weft_ares_getaddrinfo g;
    weft_ares_result res;
    weft_ares_options bad = { .servers = "not an address" };
    weft_ares_options neg = { .timeout_ms = -1 };
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);
    struct ares_addrinfo *ai = (struct ares_addrinfo *)1;

    ASSERT_EQ(-EINVAL, weft_ares_new(rt, NULL, NULL));
    ASSERT_EQ(-EINVAL, weft_ares_new(rt, &bad, &a));
    ASSERT_EQ(-EINVAL, weft_ares_new(rt, &neg, &a));
    ASSERT_OK(weft_ares_new(rt, NULL, &a));                  /* the system's servers */
    weft_ares_free(a);
    ASSERT_OK(weft_ares_new(rt, &(weft_ares_options){ .lookups = "f" }, &a));   /* no DNS */
    weft_ares_getaddrinfo_init(&g, a, NULL, NULL, NULL);
    ASSERT_EQ(WEFT_READY, weft_ares_getaddrinfo_poll(&g, &cx, &res));
    ASSERT_EQ(-EINVAL, res.result);
    ASSERT_EQ(WEFT_READY, weft_ares_getaddrinfo_poll(&g, &cx, &res));
    ASSERT_EQ(-EINVAL, res.result);
    weft_ares_getaddrinfo_drop(&g);
    weft_ares_getaddrinfo_init(&g, NULL, "x", NULL, NULL);
    ASSERT_EQ(WEFT_READY, weft_ares_getaddrinfo_poll(&g, &cx, &res));
    ASSERT_EQ(-EINVAL, res.result);
    ASSERT_EQ(-EINVAL, weft_ares_co_getaddrinfo(a, "h1.weft.test", NULL, &v4, &ai));
    ASSERT(ai == NULL);
    ASSERT_EQ(-EINVAL, weft_ares_co_getaddrinfo(a, "h1.weft.test", NULL, &v4, NULL));
    weft_ares_free(a);
    weft_ares_free(NULL);
    weft_runtime_free(rt);
}

/* A current-thread runtime: the loop runs only inside block_on. */
TEST(current_thread_runtime)
{
    weft_runtime *rt = at_runtime(0);
    weft_ares *a;
    char name[64];

    dns_up(1, false);                                        /* one retry on the way */
    a = resolver(rt, 100, 3);
    for (unsigned i = 0; i < 10; i++) {
        weft_ares_result res;

        snprintf(name, sizeof(name), "h%u.weft.test", i);
        res = lookup(rt, a, name);
        ASSERT_OK(res.result);
        check_addr(res.ai, i);
        ares_freeaddrinfo(res.ai);
    }
    weft_ares_free(a);
    weft_runtime_free(rt);
    dns_down();
}
