// SPDX-License-Identifier: MIT
/* An audit of weft/adapters/cares.h's promises against real c-ares and a
 * DNS responder of the test's own that answers A queries (hN.weft.test:
 * 10.0.0.N) and never answers AAAA ones, so an any-family lookup is half
 * answered for as long as c-ares's timeouts allow:
 *   - weft_ares_free(): "every lookup not finished completes with
 *     -ECANCELED", also one whose A answer came while its AAAA is pending;
 *   - such a lookup left alone completes (0 with the A address) once
 *     c-ares gives up on the AAAA query;
 *   - many lookups at once, some dropped, the rest all answered. */
#include "adapter_test.h"

#include <pthread.h>

#include "weft/adapters/cares.h"

WEFT_DEFINE_FUTURE_STATIC(weft_ares_getaddrinfo, weft_ares_getaddrinfo_poll,
                          weft_ares_getaddrinfo_drop, weft_ares_result);

static int dns_fd, dns_port;
static atomic_int dns_stop, dns_a_answered, dns_aaaa_seen;
static pthread_t dns_thread;

/* Answer an A query for hN.weft.test in place (length), 0: stay silent. */
static size_t dns_answer(unsigned char *m, size_t len, size_t cap)
{
    size_t off = 12;
    char name[256];
    size_t nlen = 0;
    unsigned n;
    uint16_t qtype;

    if (len < 12)
        return 0;
    while (off < len && m[off] != 0) {
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
    if (qtype == 28) {
        atomic_fetch_add(&dns_aaaa_seen, 1);
        return 0;                                  /* AAAA: never answered */
    }
    if (qtype != 1 || sscanf(name, "h%u.weft.test", &n) != 1)
        return 0;
    off += 5;
    m[2] = (unsigned char)(0x84 | (m[2] & 0x01));
    m[3] = 0x80;
    m[4] = 0, m[5] = 1;
    m[6] = 0, m[7] = 1;
    m[8] = m[9] = m[10] = m[11] = 0;
    {
        unsigned char rr[] = { 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0,
                               (unsigned char)n };

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
            out = dns_answer(buf, (size_t)n, sizeof(buf));
            /* counted before the answer goes out: the client may read it
             * and check the count before this thread runs again (counted
             * after, the check raced the increment under load) */
            if (out > 0) {
                atomic_fetch_add(&dns_a_answered, 1);
                if (sendto(dns_fd, buf, out, 0, (struct sockaddr *)&from, fl) <= 0)
                    atomic_fetch_sub(&dns_a_answered, 1);
            }
            fl = sizeof(from);
        }
    }
    return NULL;
}

static void dns_up(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);

    dns_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT(dns_fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(0, bind(dns_fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_EQ(0, getsockname(dns_fd, (struct sockaddr *)&a, &len));
    dns_port = ntohs(a.sin_port);
    atomic_store(&dns_stop, 0);
    atomic_store(&dns_a_answered, 0);
    atomic_store(&dns_aaaa_seen, 0);
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

static const struct ares_addrinfo_hints any = { .ai_family = AF_UNSPEC };
static const struct ares_addrinfo_hints v4 = { .ai_family = AF_INET };

__attribute__((constructor)) static void global_init(void)
{
    ares_library_init(ARES_LIB_INIT_ALL);
}

__attribute__((destructor)) static void global_cleanup(void)
{
    ares_library_cleanup();
}

static void wait_for(atomic_int *v, int n)
{
    uint64_t until = weft_now_ms() + AT_WAIT_MS;

    while (atomic_load(v) < n) {
        ASSERT(weft_now_ms() < until);
        at_sleep_ms(1);
    }
}

static void *free_thread(void *p)
{
    weft_ares_free((weft_ares *)p);
    return NULL;
}

/* A lookup whose A answer was processed while its AAAA query is pending:
 * freeing the resolver cancels it (-ECANCELED, no address), as the header
 * promises for "every lookup not finished". c-ares itself ends such a
 * query with ARES_SUCCESS and the half it has. */
TEST(free_cancels_half_answered_lookup)
{
    weft_runtime *rt = at_runtime(2);
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);
    weft_ares_getaddrinfo g, probe;
    weft_ares_result res = { 12345, NULL };
    weft_ares *a;
    pthread_t th;

    dns_up();
    a = resolver(rt, 60000, 1);                   /* the AAAA query outlives the test */
    weft_ares_getaddrinfo_init(&g, a, "h7.weft.test", NULL, &any);
    wait_for(&dns_a_answered, 1);
    wait_for(&dns_aaaa_seen, 1);
    /* a later lookup on the same socket: once it is answered, c-ares has
     * read h7's A answer (sent before it) too */
    weft_ares_getaddrinfo_init(&probe, a, "h8.weft.test", NULL, &v4);
    ASSERT_OK(weft_block_on(rt, &weft_ares_getaddrinfo_future, &probe, &res));
    ASSERT_OK(res.result);
    ares_freeaddrinfo(res.ai);
    ASSERT_EQ(WEFT_PENDING, weft_ares_getaddrinfo_poll(&g, &cx, &res));
    ASSERT_EQ(0, pthread_create(&th, NULL, free_thread, a));
    pthread_join(th, NULL);
    res.result = 12345;
    ASSERT_EQ(WEFT_READY, weft_ares_getaddrinfo_poll(&g, &cx, &res));
    if (res.ai != NULL)
        ares_freeaddrinfo(res.ai);
    ASSERT_EQ(-ECANCELED, res.result);
    ASSERT(res.ai == NULL);
    weft_ares_getaddrinfo_drop(&g);
    weft_runtime_free(rt);
    dns_down();
}

/* Left alone, the same lookup completes once c-ares gives up on AAAA: 0
 * with the one A address (c-ares's own rule), nothing leaked. */
TEST(half_answered_lookup_completes_after_timeout)
{
    weft_runtime *rt = at_runtime(2);
    weft_ares_getaddrinfo g;
    weft_ares_result res = { 12345, NULL };
    weft_ares *a;
    struct sockaddr_in *sin;

    dns_up();
    a = resolver(rt, 200, 2);
    weft_ares_getaddrinfo_init(&g, a, "h9.weft.test", NULL, &any);
    ASSERT_OK(weft_block_on(rt, &weft_ares_getaddrinfo_future, &g, &res));
    ASSERT_OK(res.result);
    ASSERT(res.ai != NULL && res.ai->nodes != NULL);
    ASSERT_EQ(AF_INET, res.ai->nodes->ai_family);
    sin = (struct sockaddr_in *)(void *)res.ai->nodes->ai_addr;
    ASSERT_EQ(0x0a000009u, ntohl(sin->sin_addr.s_addr));
    ares_freeaddrinfo(res.ai);
    weft_ares_free(a);
    weft_runtime_free(rt);
    dns_down();
}

/* Many lookups in flight at once from one thread, every other one dropped
 * before its answer: the rest are all answered with the right address,
 * and the resolver is freed with the dropped ones' answers still coming. */
TEST(many_lookups_half_dropped)
{
    enum { N = 400 };
    int n = harness_scale(N);
    weft_runtime *rt = at_runtime(2);
    weft_ares_getaddrinfo *g = calloc((size_t)n, sizeof(*g));
    char name[64];
    weft_ares *a;

    ASSERT(g != NULL);
    dns_up();
    a = resolver(rt, 2000, 4);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "h%d.weft.test", i % 250);
        weft_ares_getaddrinfo_init(&g[i], a, name, NULL, &v4);
        if (i % 2)
            weft_ares_getaddrinfo_drop(&g[i]);
    }
    for (int i = 0; i < n; i += 2) {
        weft_ares_result res = { 12345, NULL };
        struct sockaddr_in *sin;

        ASSERT_OK(weft_block_on(rt, &weft_ares_getaddrinfo_future, &g[i], &res));
        ASSERT_OK(res.result);
        sin = (struct sockaddr_in *)(void *)res.ai->nodes->ai_addr;
        ASSERT_EQ(0x0a000000u | (unsigned)(i % 250), ntohl(sin->sin_addr.s_addr));
        ares_freeaddrinfo(res.ai);
    }
    weft_ares_free(a);
    weft_runtime_free(rt);
    free(g);
    dns_down();
}


/* A server address where nothing listens (ICMP port unreachable): the
 * lookup completes with c-ares's status (> 0) after its tries, never
 * hangs; the error event reaches c-ares through the watch. */
TEST(nobody_listening_fails_not_hangs)
{
    weft_runtime *rt = at_runtime(2);
    weft_ares_getaddrinfo g;
    weft_ares_result res = { 12345, NULL };
    weft_ares_options opt = { .timeout_ms = 200, .tries = 2, .flags = ARES_FLAG_NOSEARCH,
                              .lookups = "b" };
    char servers[64];
    weft_ares *a;

    snprintf(servers, sizeof(servers), "127.0.0.1:%d", at_free_port(SOCK_DGRAM));
    opt.servers = servers;
    ASSERT_OK(weft_ares_new(rt, &opt, &a));
    weft_ares_getaddrinfo_init(&g, a, "h1.weft.test", NULL, &v4);
    ASSERT_OK(weft_block_on(rt, &weft_ares_getaddrinfo_future, &g, &res));
    ASSERT(res.result > 0);
    ASSERT(res.ai == NULL);
    weft_ares_free(a);
    weft_runtime_free(rt);
}

/* weft_ares_co_getaddrinfo() outside a coroutine is -EINVAL and sends no
 * query: the responder answers only the lookup made next. */
TEST(co_getaddrinfo_outside_a_coroutine_sends_nothing)
{
    weft_runtime *rt = at_runtime(2);
    weft_ares_getaddrinfo g;
    weft_ares_result res = { 12345, NULL };
    struct ares_addrinfo *ai = (struct ares_addrinfo *)1;
    weft_ares *a;

    dns_up();
    a = resolver(rt, 2000, 3);
    ASSERT_EQ(-EINVAL, weft_ares_co_getaddrinfo(a, "h1.weft.test", NULL, &v4, &ai));
    ASSERT(ai == NULL);
    weft_ares_getaddrinfo_init(&g, a, "h2.weft.test", NULL, &v4);
    ASSERT_OK(weft_block_on(rt, &weft_ares_getaddrinfo_future, &g, &res));
    ASSERT_OK(res.result);
    ares_freeaddrinfo(res.ai);
    /* the responder counts after its sendto(): the answer may arrive first */
    wait_for(&dns_a_answered, 1);
    ASSERT_EQ(1, atomic_load(&dns_a_answered));
    weft_ares_free(a);
    weft_runtime_free(rt);
    dns_down();
}
