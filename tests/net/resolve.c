/* SPDX-License-Identifier: MIT */
/* Name lookups and connecting by name: weft_resolve (localhost in each
 * family, numeric hosts, the wildcard, names that fail without asking a
 * name server, misuse, an explicit pool), dropping or aborting a lookup
 * while it waits in the pool's queue and while getaddrinfo runs, a runtime
 * shut down under a running lookup; weft_connect_host / weft_connect_addrs
 * (a local listener by name, refused, the first address refused and a
 * later one taken, the deadline passing during the lookup and during a
 * connect, abort, the future descriptor). Lookups are held mid-way by the
 * internal hook (net/resolve.h), never by a slow name server: no test here
 * depends on DNS. */
#include "net_test.h"

#include <netdb.h>

#include "net/resolve.h"

/* ---- helpers -------------------------------------------------------------- */

/* A gate lookups wait at (through the hook) until the test opens it. */
static pthread_mutex_t gate_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_c = PTHREAD_COND_INITIALIZER;
static bool gate_is_open;
static int gate_arrived;        /* lookups that reached the hook */

static void gate_hook(const char *host)
{
    (void)host;
    pthread_mutex_lock(&gate_m);
    gate_arrived++;
    pthread_cond_broadcast(&gate_c);
    while (!gate_is_open)
        pthread_cond_wait(&gate_c, &gate_m);
    pthread_mutex_unlock(&gate_m);
}

static void gate_close(void)
{
    pthread_mutex_lock(&gate_m);
    gate_is_open = false;
    gate_arrived = 0;
    pthread_mutex_unlock(&gate_m);
    atomic_store(&weft__resolve_hook, gate_hook);
}

static void gate_open(void)
{
    pthread_mutex_lock(&gate_m);
    gate_is_open = true;
    pthread_cond_broadcast(&gate_c);
    pthread_mutex_unlock(&gate_m);
}

static void gate_wait_arrived(int n)
{
    pthread_mutex_lock(&gate_m);
    while (gate_arrived < n)
        pthread_cond_wait(&gate_c, &gate_m);
    pthread_mutex_unlock(&gate_m);
}

/* Wait until no pool thread is left (they leave once their pool is shut
 * down and their job ended): then every job's memory is gone too. */
static void wait_pool_threads_gone(void)
{
    uint64_t end = harness_now_ns() + NT_WATCHDOG_MS * 1000000ull;

    while (harness_count_threads("weft-b") > 0) {
        ASSERT(harness_now_ns() < end);
        usleep(1000);
    }
}

static void wait_flag(atomic_int *flag)
{
    uint64_t end = harness_now_ns() + NT_WATCHDOG_MS * 1000000ull;

    while (!atomic_load(flag)) {
        ASSERT(harness_now_ns() < end);
        usleep(200);
    }
}

/* Wait until the process has `n` descriptors again: a runtime's reactor
 * is closed with the runtime's memory, by whoever drops the last reference
 * to it, which may be a pool thread that wakes a task just after the free
 * returns. */
static void wait_fds(int n)
{
    uint64_t end = harness_now_ns() + NT_WATCHDOG_MS * 1000000ull;

    while (nt_count_fds() != n) {
        ASSERT(harness_now_ns() < end);
        usleep(200);
    }
}

static weft_runtime *runtime_opt(bool current, unsigned blocking_threads)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = current ? WEFT_CURRENT_THREAD : WEFT_MULTI_THREAD,
                                 .workers = current ? 0 : 2,
                                 .blocking_threads = blocking_threads };

    ASSERT_OK(weft_runtime_new(&rt, &opt));
    return rt;
}

/* One lookup as a task's whole work: output the result; the answer in
 * ->list. */
typedef struct lookup {
    weft_async co;
    const char *host;
    uint16_t port;
    weft_resolve_options opt;
    weft_resolve r;
    weft_addrlist *list;
    int err;
    atomic_int *polled;         /* set once the lookup is queued */
} lookup;

/* One poll of the lookup, telling the test it happened. */
static weft_poll lookup_step(lookup *l, weft_context *cx)
{
    weft_poll p = weft_resolve_poll(&l->r, cx, &l->err);

    if (l->polled)
        atomic_store(l->polled, 1);
    return p;
}

static weft_poll lookup_poll(lookup *l, weft_context *cx, int *out)
{
    WEFT_BEGIN(&l->co);
    weft_resolve_init(&l->r, NULL, l->host, l->port, &l->opt, &l->list);
    WEFT_AWAIT(&l->co, lookup_step(l, cx));
    weft_resolve_drop(&l->r);
    *out = l->err;
    WEFT_END(&l->co);
}

static void lookup_drop(lookup *l)
{
    weft_resolve_drop(&l->r);
}

WEFT_DEFINE_FUTURE_STATIC(lookup, lookup_poll, lookup_drop, int);

static bool is_v4(const weft_addrinfo *a, uint32_t host_order, uint16_t port)
{
    const struct sockaddr_in *s = (const struct sockaddr_in *)&a->addr;

    return a->family == AF_INET && s->sin_family == AF_INET &&
           a->len == sizeof(struct sockaddr_in) && ntohl(s->sin_addr.s_addr) == host_order &&
           ntohs(s->sin_port) == port;
}

static bool is_v6_loopback(const weft_addrinfo *a, uint16_t port)
{
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a->addr;

    return a->family == AF_INET6 && s->sin6_family == AF_INET6 &&
           a->len == sizeof(struct sockaddr_in6) && IN6_IS_ADDR_LOOPBACK(&s->sin6_addr) &&
           ntohs(s->sin6_port) == port;
}

/* The task keeps its answer in its own struct: collect it through a
 * wrapper that hands the list out. */
typedef struct lookup_out {
    weft_async co;
    lookup l;
    weft_addrlist **dst;
} lookup_out;

static weft_poll lookup_out_poll(lookup_out *o, weft_context *cx, int *out)
{
    WEFT_BEGIN(&o->co);
    WEFT_AWAIT(&o->co, lookup_poll(&o->l, cx, out));
    *o->dst = o->l.list;
    WEFT_END(&o->co);
}

static void lookup_out_drop(lookup_out *o)
{
    lookup_drop(&o->l);
}

WEFT_DEFINE_FUTURE_STATIC(lookup_out, lookup_out_poll, lookup_out_drop, int);

static int resolve_list(bool current, const char *host, uint16_t port, int family,
                        int socktype, int flags, weft_addrlist **list)
{
    weft_runtime *rt = runtime_opt(current, 0);
    lookup_out o = { .l = { .host = host, .port = port,
                            .opt = { .family = family, .socktype = socktype,
                                     .flags = flags } },
                     .dst = list };
    int err = 12345;

    *list = NULL;
    ASSERT_OK(weft_block_on(rt, &lookup_out_future, &o, &err));
    weft_runtime_free(rt);
    if (err == 0)
        ASSERT(*list != NULL && (*list)->count >= 1);
    else
        ASSERT(*list == NULL);
    return err;
}

/* ---- lookups ---------------------------------------------------------------- */

TEST(resolve_localhost_ipv4)
{
    weft_addrlist *list;

    ASSERT_OK(resolve_list(false, "localhost", 8080, AF_INET, 0, 0, &list));
    for (size_t i = 0; i < list->count; i++) {
        ASSERT(is_v4(&list->addrs[i], INADDR_LOOPBACK, 8080));
        ASSERT_EQ(SOCK_STREAM, list->addrs[i].socktype);
        ASSERT_EQ(IPPROTO_TCP, list->addrs[i].protocol);
    }
    weft_addrlist_free(list);
    /* the same on a current-thread runtime */
    ASSERT_OK(resolve_list(true, "localhost", 1, AF_INET, 0, 0, &list));
    ASSERT(is_v4(&list->addrs[0], INADDR_LOOPBACK, 1));
    weft_addrlist_free(list);
}

TEST(resolve_localhost_any_family)
{
    weft_addrlist *list;
    bool v4 = false;

    ASSERT_OK(resolve_list(false, "localhost", 443, 0, 0, 0, &list));
    for (size_t i = 0; i < list->count; i++) {
        const weft_addrinfo *a = &list->addrs[i];

        /* 127.0.0.1 from /etc/hosts; ::1 too where the hosts file says so */
        ASSERT(is_v4(a, INADDR_LOOPBACK, 443) || is_v6_loopback(a, 443));
        v4 |= a->family == AF_INET;
    }
    ASSERT(v4);
    weft_addrlist_free(list);
}

TEST(resolve_localhost_ipv6_if_listed)
{
    weft_addrlist *list;
    int err = resolve_list(false, "localhost", 80, AF_INET6, 0, 0, &list);

    /* a hosts file without "::1 localhost" has no IPv6 address for it */
    if (err == WEFT_EAI_NONAME)
        return;
    ASSERT_OK(err);
    for (size_t i = 0; i < list->count; i++)
        ASSERT(is_v6_loopback(&list->addrs[i], 80));
    weft_addrlist_free(list);
}

TEST(resolve_numeric_hosts_and_wildcard)
{
    weft_addrlist *list;

    ASSERT_OK(resolve_list(false, "::1", 9, 0, 0, AI_NUMERICHOST, &list));
    ASSERT_EQ(1, list->count);
    ASSERT(is_v6_loopback(&list->addrs[0], 9));
    weft_addrlist_free(list);

    ASSERT_OK(resolve_list(false, "192.0.2.7", 65535, 0, SOCK_DGRAM, 0, &list));
    ASSERT_EQ(1, list->count);
    ASSERT(is_v4(&list->addrs[0], 0xc0000207u, 65535));
    ASSERT_EQ(SOCK_DGRAM, list->addrs[0].socktype);
    ASSERT_EQ(IPPROTO_UDP, list->addrs[0].protocol);
    weft_addrlist_free(list);

    /* no name: the wildcard to bind to */
    ASSERT_OK(resolve_list(false, NULL, 7000, AF_INET, 0, AI_PASSIVE, &list));
    ASSERT_EQ(1, list->count);
    ASSERT(is_v4(&list->addrs[0], INADDR_ANY, 7000));
    weft_addrlist_free(list);

    /* an IPv4 literal asked for as IPv6 */
    ASSERT_EQ(WEFT_EAI_NONAME, resolve_list(false, "127.0.0.1", 1, AF_INET6, 0, 0, &list));
}

TEST(resolve_names_that_fail_without_a_lookup)
{
    weft_addrlist *list;
    char longname[WEFT_RESOLVE_HOST_MAX + 1];

    /* numeric only: a name is refused before any name server is asked */
    ASSERT_EQ(WEFT_EAI_NONAME, resolve_list(false, "localhost", 1, 0, 0, AI_NUMERICHOST, &list));
    /* malformed: an empty label, and nothing at all (both fail in libc) */
    ASSERT_EQ(WEFT_EAI_NONAME, resolve_list(false, "bad..name", 1, 0, 0, 0, &list));
    ASSERT_EQ(WEFT_EAI_NONAME, resolve_list(true, "", 1, 0, 0, 0, &list));
    ASSERT_EQ(0, strcmp("host not found", weft_strerror(WEFT_EAI_NONAME)));
    ASSERT_EQ(0, strcmp("host not found", weft_strerror(-WEFT_EAI_NONAME)));
    ASSERT(strcmp("unknown error", weft_strerror(WEFT_EAI_AGAIN)) != 0);
    ASSERT(strcmp("unknown error", weft_strerror(WEFT_EAI_FAIL)) != 0);
    /* bad hints are getaddrinfo's EAI_FAMILY / EAI_BADFLAGS */
    ASSERT_EQ(-EAFNOSUPPORT, resolve_list(false, "127.0.0.1", 1, AF_UNIX + 1000, 0, 0, &list));
    /* too long for any DNS name: refused at init, no job */
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ASSERT_EQ(-ENAMETOOLONG, resolve_list(false, longname, 1, 0, 0, 0, &list));
    /* the longest name taken: one label of 255 (libc refuses labels over 63) */
    longname[WEFT_RESOLVE_HOST_MAX - 1] = '\0';
    ASSERT_EQ(WEFT_EAI_NONAME, resolve_list(false, longname, 1, 0, 0, 0, &list));
}

/* A waker that counts wakes, for futures polled by hand on this thread. */
static atomic_int hand_wakes;
static weft_waker hw_clone(const void *d);
static void hw_wake(const void *d)
{
    (void)d;
    atomic_fetch_add(&hand_wakes, 1);
}
static void hw_drop(const void *d)
{
    (void)d;
}
static const weft_waker_vtable hw_vtable = { hw_clone, hw_wake, hw_wake, hw_drop };
static weft_waker hw_clone(const void *d)
{
    return (weft_waker){ d, &hw_vtable };
}

TEST(resolve_misuse_and_explicit_pool)
{
    weft_waker w = { NULL, &hw_vtable };
    weft_context cx = weft_context_from_waker(&w);
    weft_blocking_pool *pool;
    weft_addrlist *list = NULL;
    weft_resolve r;
    int res = 0;
    uint64_t end;

    /* NULL out: READY at once */
    weft_resolve_init(&r, NULL, "localhost", 1, NULL, NULL);
    ASSERT_EQ(WEFT_READY, weft_resolve_poll(&r, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_resolve_drop(&r);
    weft_resolve_drop(&r);                          /* idempotent */
    /* zeroed */
    memset(&r, 0, sizeof(r));
    ASSERT_EQ(WEFT_READY, weft_resolve_poll(&r, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    /* the default pool, polled off any runtime: there is none */
    weft_resolve_init(&r, NULL, "localhost", 1, NULL, &list);
    ASSERT_EQ(WEFT_READY, weft_resolve_poll(&r, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    ASSERT(list == NULL);
    weft_resolve_drop(&r);
    /* dropped before its first poll: nothing started, nothing leaked */
    weft_resolve_init(&r, NULL, "localhost", 1, NULL, &list);
    weft_resolve_drop(&r);

    /* an explicit pool works from a plain thread */
    ASSERT_OK(weft_blocking_pool_new(&pool, NULL));
    weft_resolve_init(&r, pool, "localhost", 53, &(weft_resolve_options){ .family = AF_INET },
                      &list);
    end = harness_now_ns() + NT_WATCHDOG_MS * 1000000ull;
    while (weft_resolve_poll(&r, &cx, &res) == WEFT_PENDING) {
        ASSERT(harness_now_ns() < end);
        usleep(200);
    }
    ASSERT_OK(res);
    ASSERT(list != NULL && is_v4(&list->addrs[0], INADDR_LOOPBACK, 53));
    /* polled again after READY: the same result, nothing new */
    ASSERT_EQ(WEFT_READY, weft_resolve_poll(&r, &cx, &res));
    ASSERT_OK(res);
    weft_resolve_drop(&r);
    weft_addrlist_free(list);
    weft_addrlist_free(NULL);
    /* on a pool that was shut down */
    ASSERT_EQ(0, weft_blocking_pool_shutdown(pool, WEFT_BLOCKING_FOREVER));
    weft_resolve_init(&r, pool, "localhost", 53, NULL, &list);
    ASSERT_EQ(WEFT_READY, weft_resolve_poll(&r, &cx, &res));
    ASSERT_EQ(-ESHUTDOWN, res);
    weft_resolve_drop(&r);
    weft_blocking_pool_free(pool);
}

/* Poll a lookup on this thread until READY (an explicit pool). */
static int resolve_by_hand(weft_blocking_pool *pool, const char *host, weft_addrlist **list)
{
    weft_waker w = { NULL, &hw_vtable };
    weft_context cx = weft_context_from_waker(&w);
    uint64_t end = harness_now_ns() + NT_WATCHDOG_MS * 1000000ull;
    weft_resolve r;
    int res = 12345;

    weft_resolve_init(&r, pool, host, 80, NULL, list);
    while (weft_resolve_poll(&r, &cx, &res) == WEFT_PENDING) {
        ASSERT(harness_now_ns() < end);
        usleep(200);
    }
    weft_resolve_drop(&r);
    return res;
}

/* Fail allocation 1, 2, ...: the job, then the answer (made on the pool
 * thread): each -ENOMEM, nothing leaked, *list untouched. */
TEST(resolve_allocation_faults)
{
    weft_blocking_pool *pool;
    weft_addrlist *list;
    int failed = 0, r;

    ASSERT_OK(weft_blocking_pool_new(&pool, NULL));
    ASSERT_OK(resolve_by_hand(pool, "127.0.0.1", &list));   /* the thread exists now */
    weft_addrlist_free(list);
    for (size_t k = 1; k < 10; k++) {
        long live = harness_live();

        list = NULL;
        harness_fail_alloc_at(k);
        r = resolve_by_hand(pool, "127.0.0.1", &list);
        harness_fail_alloc_at(0);
        if (r == -ENOMEM) {
            failed++;
            ASSERT(list == NULL);
            ASSERT_EQ(live, harness_live());
            continue;
        }
        ASSERT_OK(r);
        ASSERT(list != NULL && is_v4(&list->addrs[0], INADDR_LOOPBACK, 80));
        weft_addrlist_free(list);
        break;
    }
    ASSERT_EQ(2, failed);
    weft_blocking_pool_free(pool);
}

/* ---- dropping a lookup in flight --------------------------------------------- */

static void *gate_job(void *arg)
{
    (void)arg;
    gate_hook(NULL);
    return NULL;
}

static void *nop_job(void *arg)
{
    return arg;
}

/* Abort a task whose lookup waits in the queue (queued = true: the one pool
 * thread is held by another job) or runs inside getaddrinfo (held by the
 * hook); then let the lookup finish: it frees its own answer, writes
 * nothing of the dead task's (ASan), leaks nothing (the harness). */
static void abort_mid_lookup(bool queued)
{
    weft_runtime *rt = runtime_opt(false, 1);
    weft_blocking_pool *pool;
    weft_blocking_job *blocker = NULL, *after;
    atomic_int polled = 0;
    lookup l = { .host = "localhost", .port = 80, .polled = &polled };
    weft_join *j;
    int err = 0;
    void *ret;

    gate_close();
    ASSERT_OK(weft_blocking_default(rt, &pool));
    if (queued) {
        ASSERT_OK(weft_blocking_spawn(pool, gate_job, NULL, &blocker));
        gate_wait_arrived(1);                       /* the only thread is taken */
    }
    ASSERT_OK(weft_spawn(rt, &lookup_future, &l, &j));
    wait_flag(&polled);                             /* the job is queued */
    if (!queued)
        gate_wait_arrived(1);                       /* inside the lookup now */
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &err));
    weft_join_drop(j);
    /* the lookup job is still there (queued or running): let it go on */
    gate_open();
    ASSERT_OK(weft_blocking_spawn(pool, nop_job, (void *)(uintptr_t)7, &after));
    ASSERT_OK(weft_blocking_job_wait(after, &ret));  /* one thread, FIFO: after it */
    ASSERT_EQ(7, (uintptr_t)ret);
    weft_blocking_job_drop(after);
    if (blocker) {
        ASSERT_OK(weft_blocking_job_wait(blocker, NULL));
        weft_blocking_job_drop(blocker);
    }
    pthread_mutex_lock(&gate_m);
    ASSERT_EQ(queued ? 2 : 1, gate_arrived);        /* the lookup did run */
    pthread_mutex_unlock(&gate_m);
    atomic_store(&weft__resolve_hook, NULL);
    weft_runtime_free(rt);
    wait_pool_threads_gone();
}

TEST(resolve_abort_while_queued)
{
    abort_mid_lookup(true);
}

TEST(resolve_abort_while_running)
{
    abort_mid_lookup(false);
}

/* The runtime is freed while a task waits for a lookup stuck in
 * getaddrinfo: the free does not wait for it (a DNS timeout could take
 * minutes); the task is cancelled; the lookup ends later on its own. */
TEST(resolve_runtime_free_with_lookup_running)
{
    weft_runtime *rt = runtime_opt(false, 0);
    atomic_int polled = 0;
    lookup l = { .host = "localhost", .port = 80, .polled = &polled };
    weft_join *j;
    uint64_t t0;
    int err = 0;

    gate_close();
    ASSERT_OK(weft_spawn(rt, &lookup_future, &l, &j));
    gate_wait_arrived(1);
    ASSERT_EQ(1, harness_count_threads("weft-b"));
    t0 = harness_now_ns();
    weft_runtime_free(rt);                          /* the gate is still closed */
    ASSERT(harness_now_ns() - t0 < 2000000000ull);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &err));
    weft_join_drop(j);
    ASSERT_EQ(1, harness_count_threads("weft-b"));    /* still inside the lookup */
    gate_open();
    wait_pool_threads_gone();                        /* it ended and freed all */
    atomic_store(&weft__resolve_hook, NULL);
}

/* ---- connecting by name -------------------------------------------------------- */

typedef struct dial {
    weft_async co;
    const char *host;           /* NULL: connect_addrs over addrs/count */
    uint16_t port;
    uint64_t timeout_ms;
    const weft_addrinfo *addrs;
    size_t count;
    weft_socket *listener;      /* accept there and trade a byte (optional) */
    weft_connect_host c;
    weft_accept acc;
    weft_io_op io;
    weft_socket *s, *peer;
    int err, r;
    ssize_t n;
    char byte;
    atomic_int *polled;
} dial;

static weft_poll dial_step(dial *d, weft_context *cx)
{
    weft_poll p = weft_connect_host_poll(&d->c, cx, &d->err);

    if (d->polled)
        atomic_store(d->polled, 1);
    return p;
}

static weft_poll dial_poll(dial *d, weft_context *cx, int *out)
{
    WEFT_BEGIN(&d->co);
    if (d->host)
        weft_connect_host_init(&d->c, NULL, d->host, d->port, d->timeout_ms, &d->s);
    else
        weft_connect_addrs_init(&d->c, NULL, d->addrs, d->count, d->timeout_ms, &d->s);
    WEFT_AWAIT(&d->co, dial_step(d, cx));
    weft_connect_host_drop(&d->c);
    if (d->err == 0 && d->listener) {
        weft_accept_init(&d->acc, d->listener, &d->peer, NULL, NULL);
        WEFT_AWAIT(&d->co, weft_accept_poll(&d->acc, cx, &d->r));
        ASSERT_OK(d->r);
        weft_io_op_drop(&d->acc);
        weft_write_all_init(&d->io, d->s, "x", 1);
        WEFT_AWAIT(&d->co, weft_io_op_poll(&d->io, cx, &d->n));
        ASSERT_EQ(1, d->n);
        weft_io_op_drop(&d->io);
        weft_read_exact_init(&d->io, d->peer, &d->byte, 1);
        WEFT_AWAIT(&d->co, weft_io_op_poll(&d->io, cx, &d->n));
        ASSERT_EQ(1, d->n);
        ASSERT_EQ('x', d->byte);
        weft_io_op_drop(&d->io);
        ASSERT_OK(weft_socket_close(d->peer));
    }
    if (d->err == 0)
        ASSERT_OK(weft_socket_close(d->s));
    *out = d->err;
    WEFT_END(&d->co);
}

static void dial_drop(dial *d)
{
    weft_connect_host_drop(&d->c);
}

WEFT_DEFINE_FUTURE_STATIC(dial, dial_poll, dial_drop, int);

static int run_dial(bool current, dial *d)
{
    weft_runtime *rt = runtime_opt(current, 0);
    int err = 12345;

    if (d->port == 0 && d->host)
        ASSERT(!"port");
    ASSERT_OK(weft_block_on(rt, &dial_future, d, &err));
    weft_runtime_free(rt);
    return err;
}

/* A TCP port on 127.0.0.1 nobody listens on: a socket bound to it (and kept
 * bound, so nobody else takes it) that does not listen. */
static int refused_port(uint16_t *port)
{
    struct sockaddr_storage a;
    socklen_t len;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ASSERT(fd >= 0);
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &a, &len));
    ASSERT_EQ(0, bind(fd, (struct sockaddr *)&a, len));
    len = sizeof(a);
    ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)&a, &len));
    *port = ntohs(((struct sockaddr_in *)&a)->sin_port);
    return fd;
}

static void connect_host_to_listener(bool current)
{
    weft_runtime *rt = runtime_opt(current, 0);
    struct sockaddr_storage a;
    socklen_t len;
    weft_socket *l;
    dial d = { .host = "localhost", .timeout_ms = NT_WATCHDOG_MS };
    int err = 12345, before = nt_count_fds();

    nt_listen(rt, &l, &a, &len);
    d.port = ntohs(((struct sockaddr_in *)&a)->sin_port);
    d.listener = l;
    ASSERT_OK(weft_block_on(rt, &dial_future, &d, &err));
    ASSERT_OK(err);
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
    wait_fds(before);
}

TEST(connect_host_localhost_listener)
{
    connect_host_to_listener(false);
}

TEST(connect_host_localhost_listener_current_thread)
{
    connect_host_to_listener(true);
}

TEST(connect_host_refused_and_bad_names)
{
    uint16_t port;
    int fd = refused_port(&port), before = nt_count_fds();
    char longname[WEFT_RESOLVE_HOST_MAX + 1];

    ASSERT_EQ(-ECONNREFUSED, run_dial(false, &(dial){ .host = "localhost", .port = port }));
    ASSERT_EQ(-ECONNREFUSED,
              run_dial(true, &(dial){ .host = "127.0.0.1", .port = port, .timeout_ms = 5000 }));
    ASSERT_EQ(WEFT_EAI_NONAME, run_dial(false, &(dial){ .host = "bad..name", .port = 1 }));
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ASSERT_EQ(-ENAMETOOLONG, run_dial(false, &(dial){ .host = longname, .port = 1 }));
    wait_fds(before);                               /* the refused sockets are closed */
    close(fd);
}

TEST(connect_addrs_tries_each_in_turn)
{
    weft_runtime *rt = runtime_opt(false, 0);
    struct sockaddr_storage a;
    socklen_t len;
    weft_socket *l;
    weft_addrinfo addrs[4];
    uint16_t port;
    int fd = refused_port(&port), err = 12345, before;
    size_t n = 0;
    int v6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    dial d = { 0 };

    memset(addrs, 0, sizeof(addrs));
    /* refused on IPv6 loopback first, where the machine has it */
    if (v6 >= 0) {
        ASSERT_OK(weft_addr_ip("::1", port, &addrs[n].addr, &addrs[n].len));
        n++;
        close(v6);
    }
    ASSERT_OK(weft_addr_ip("127.0.0.1", port, &addrs[n].addr, &addrs[n].len));
    n++;
    addrs[n].len = 3;                               /* nonsense: -EINVAL, next */
    addrs[n].addr.ss_family = AF_INET;
    n++;
    nt_listen(rt, &l, &a, &len);
    addrs[n].addr = a;
    addrs[n].len = len;
    n++;
    before = nt_count_fds();
    d = (dial){ .addrs = addrs, .count = n, .listener = l, .timeout_ms = NT_WATCHDOG_MS };
    ASSERT_OK(weft_block_on(rt, &dial_future, &d, &err));
    ASSERT_OK(err);
    wait_fds(before);
    /* every address refused: the last attempt's error */
    d = (dial){ .addrs = addrs, .count = n - 2 };
    ASSERT_OK(weft_block_on(rt, &dial_future, &d, &err));
    ASSERT_EQ(-ECONNREFUSED, err);
    d = (dial){ .addrs = addrs, .count = n - 1 };
    ASSERT_OK(weft_block_on(rt, &dial_future, &d, &err));
    ASSERT_EQ(-EINVAL, err);                        /* the nonsense one came last */
    /* misuse */
    d = (dial){ .addrs = addrs, .count = 0 };
    ASSERT_OK(weft_block_on(rt, &dial_future, &d, &err));
    ASSERT_EQ(-EINVAL, err);
    d = (dial){ .addrs = NULL, .count = 1 };
    ASSERT_OK(weft_block_on(rt, &dial_future, &d, &err));
    ASSERT_EQ(-EINVAL, err);
    wait_fds(before);
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
    close(fd);
}

/* The deadline passes while the lookup is stuck: -ETIMEDOUT on time, and
 * the lookup ends later by itself. */
TEST(connect_host_deadline_during_lookup)
{
    weft_runtime *rt = runtime_opt(false, 0);
    dial d = { .host = "localhost", .port = 1, .timeout_ms = 100 };
    int err = 12345;

    uint64_t t0;

    gate_close();
    t0 = weft_now_ms();
    ASSERT_OK(weft_block_on(rt, &dial_future, &d, &err));
    t0 = weft_now_ms() - t0;
    ASSERT_EQ(-ETIMEDOUT, err);
    ASSERT_LE(100 + 5000, t0);
    ASSERT_LE(t0, 100);
    gate_wait_arrived(1);                           /* the lookup was stuck there */
    weft_runtime_free(rt);
    gate_open();
    wait_pool_threads_gone();
    atomic_store(&weft__resolve_hook, NULL);
}

/* The deadline passes during a connect that hangs (a full accept queue
 * drops our SYN): -ETIMEDOUT, the half-made socket closed. */
TEST(connect_host_deadline_during_connect)
{
    weft_runtime *rt = runtime_opt(false, 0);
    struct sockaddr_storage a;
    socklen_t len;
    weft_socket *l;
    int fds[MAX_FILL], n, before, err = 12345;
    dial d = { .host = "127.0.0.1", .timeout_ms = 200 };
    uint64_t t0;

    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &a, &len));
    ASSERT_OK(weft_listen(rt, (struct sockaddr *)&a, len, 1, &l));
    len = sizeof(a);
    ASSERT_OK(weft_socket_local_addr(l, &a, &len));
    n = nt_fill_accept_queue(weft_socket_fd(l), &a, len, fds);
    d.port = ntohs(((struct sockaddr_in *)&a)->sin_port);
    before = nt_count_fds();
    t0 = weft_now_ms();
    ASSERT_OK(weft_block_on(rt, &dial_future, &d, &err));
    t0 = weft_now_ms() - t0;
    ASSERT_EQ(-ETIMEDOUT, err);
    ASSERT_LE(t0, 200);
    ASSERT_LE(200 + 5000, t0);
    wait_fds(before);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
}

/* Abort a task whose connect_host waits for its lookup. */
TEST(connect_host_abort_during_lookup)
{
    weft_runtime *rt = runtime_opt(false, 0);
    atomic_int polled = 0;
    dial d = { .host = "localhost", .port = 1, .polled = &polled };
    weft_join *j;
    int err = 0;

    gate_close();
    ASSERT_OK(weft_spawn(rt, &dial_future, &d, &j));
    gate_wait_arrived(1);
    wait_flag(&polled);
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &err));
    weft_join_drop(j);
    weft_runtime_free(rt);
    gate_open();
    wait_pool_threads_gone();
    atomic_store(&weft__resolve_hook, NULL);
}

/* The descriptors: a bare lookup and a bare connect_host spawned as tasks. */
TEST(resolve_and_connect_host_future_descriptors)
{
    weft_runtime *rt = runtime_opt(false, 0);
    struct sockaddr_storage a;
    socklen_t len;
    weft_socket *l, *s = NULL;
    weft_addrlist *list = NULL;
    weft_resolve r;
    weft_connect_host c;
    weft_join *j;
    int err = 12345;

    weft_resolve_init(&r, NULL, "127.0.0.1", 99, NULL, &list);
    ASSERT_OK(weft_spawn(rt, &weft_resolve_future, &r, &j));
    ASSERT_OK(weft_join_wait(j, &err));
    ASSERT_OK(err);
    weft_join_drop(j);
    ASSERT(list != NULL && list->count == 1 && is_v4(&list->addrs[0], INADDR_LOOPBACK, 99));
    weft_addrlist_free(list);

    nt_listen(rt, &l, &a, &len);
    weft_connect_host_init(&c, rt, "localhost", ntohs(((struct sockaddr_in *)&a)->sin_port),
                           0, &s);
    ASSERT_OK(weft_spawn(rt, &weft_connect_host_future, &c, &j));
    err = 12345;
    ASSERT_OK(weft_join_wait(j, &err));
    ASSERT_OK(err);
    weft_join_drop(j);
    ASSERT(s != NULL);
    ASSERT_OK(weft_socket_close(s));
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
}
