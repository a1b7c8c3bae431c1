// SPDX-License-Identifier: MIT
/* weft to weft over loopback TCP: handshake with SNI and ALPN, close_notify
 * both ways, large transfers both ways at once (a reader and a writer task
 * on one TLS stream), many connections at once, truncation, the -EBUSY /
 * -ENOTCONN / -EPIPE rules, freeing under a pending read, and a cancelled
 * write that leaves the stream intact. */
#include "tls_test.h"

typedef tt_pair pair;

/* ---- handshake, SNI, ALPN, close_notify ------------------------------------------ */
static int hello_server(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_server_hs(p);
    char buf[16];

    ASSERT(weft_tls_alpn(t) != NULL);
    ASSERT_EQ(0, strcmp(weft_tls_alpn(t), "http/1.1"));
    ASSERT(weft_tls_server_name(t) != NULL);
    ASSERT_EQ(0, strcmp(weft_tls_server_name(t), "localhost"));
    ASSERT_EQ(0, strcmp(weft_tls_version(t), "TLSv1.3"));
    ASSERT(weft_tls_cipher(t)[0] != '\0');
    tt_read_exact(t, buf, 5);
    ASSERT_EQ(0, memcmp(buf, "hello", 5));
    ASSERT_EQ(5, weft_co_tls_write(t, "world", 5));
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    ASSERT_EQ(-EPIPE, weft_co_tls_write(t, "x", 1));   /* after our close_notify */
    ASSERT_EQ(0, weft_co_tls_read(t, buf, sizeof(buf)));  /* the client's close_notify */
    ASSERT_EQ(0, weft_co_tls_read(t, buf, sizeof(buf)));  /* and again */
    weft_tls_free(t);
    return 0;
}

static int hello_client(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_client_hs(p);
    char buf[16];

    ASSERT_EQ(0, strcmp(weft_tls_alpn(t), "http/1.1"));
    ASSERT_EQ(0, weft_co_tls_handshake(t, 0));       /* done already: 0 at once */
    ASSERT_EQ(5, weft_co_tls_write(t, "hello", 5));
    tt_read_exact(t, buf, 5);
    ASSERT_EQ(0, memcmp(buf, "world", 5));
    ASSERT_EQ(0, weft_co_tls_read(t, buf, sizeof(buf)));  /* server's close_notify */
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    ASSERT_EQ(0, weft_co_tls_shutdown(t));            /* a second one is harmless */
    weft_tls_free(t);
    return 0;
}

TEST(handshake_sni_alpn_close_notify)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, "h2,http/1.1", "spdy/1,http/1.1");
    tt_pair_run(&p, hello_server, hello_client);
}

/* ---- large transfers both ways at once ------------------------------------------- */
typedef struct half {
    weft_tls *t;
    size_t n;
    uint32_t seed;
} half;

static int write_half(void *arg)
{
    half *h = arg;
    size_t chunk = 100000, off = 0;
    unsigned char *buf = malloc(chunk);

    ASSERT(buf != NULL);
    while (off < h->n) {
        size_t n = h->n - off < chunk ? h->n - off : chunk;

        tt_fill(buf, n, h->seed, off);
        ASSERT_EQ((ssize_t)n, weft_co_tls_write(h->t, buf, n));
        off += n;
    }
    free(buf);
    return 0;
}

static void read_half(half *h)
{
    size_t cap = 70000, off = 0;
    unsigned char *buf = malloc(cap);

    ASSERT(buf != NULL);
    while (off < h->n) {
        ssize_t r = weft_co_tls_read(h->t, buf, cap);

        if (r <= 0)
            harness_fail(__FILE__, __LINE__, "read %zd (%s: %s) at %zu of %zu", r,
                         weft_strerror((int)r), weft_tls_error_text(h->t), off, h->n);
        ASSERT((size_t)r <= h->n - off);
        ASSERT(tt_check(buf, (size_t)r, h->seed, off));
        off += (size_t)r;
    }
    free(buf);
}

/* write `n` bytes of seed `wseed` from another coroutine while reading `n`
 * of seed `rseed` here; then close_notify both ways */
static void both_ways(weft_tls *t, size_t n, uint32_t wseed, uint32_t rseed)
{
    half w = { t, n, wseed }, r = { t, n, rseed };
    weft_join *j;
    int res = -1;
    char c;

    ASSERT_OK(weft_go(weft_runtime_current(), write_half, &w, &j));
    read_half(&r);
    ASSERT_OK(weft_co_join(j, &res));
    weft_join_drop(j);
    ASSERT_EQ(0, res);
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    ASSERT_EQ(0, weft_co_tls_read(t, &c, 1));
}

static int big_server(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_server_hs(p);

    both_ways(t, p->big, 2, 1);
    weft_tls_free(t);
    return 0;
}

static int big_client(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_client_hs(p);

    both_ways(t, p->big, 1, 2);
    weft_tls_free(t);
    return 0;
}

TEST(large_transfer_both_ways_at_once)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    p.big = harness_scale(16u << 20);
    tt_pair_run(&p, big_server, big_client);
}

/* ---- many connections ------------------------------------------------------------ */
#define ECHO_BYTES 40000

static int echo_conn(void *arg)
{
    weft_tls *t = arg;
    unsigned char buf[4096];
    ssize_t r;

    ASSERT_OK(weft_co_tls_handshake(t, TT_HS_MS));
    while ((r = weft_co_tls_read(t, buf, sizeof(buf))) > 0)
        ASSERT_EQ(r, weft_co_tls_write(t, buf, (size_t)r));
    ASSERT_EQ(0, r);                 /* close_notify, never a truncation */
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    weft_tls_free(t);
    return 0;
}

static int many_server(void *arg)
{
    pair *p = arg;
    weft_join **js = calloc(p->conns, sizeof(*js));

    ASSERT(js != NULL);
    for (size_t i = 0; i < p->conns; i++) {
        weft_tls *t;
        weft_tls_options o = { .flags = WEFT_TLS_OWN_STREAM };

        ASSERT_OK(weft_tls_new(&t, p->scfg, tt_accept(p->l), &o));
        ASSERT_OK(weft_go(weft_runtime_current(), echo_conn, t, &js[i]));
    }
    for (size_t i = 0; i < p->conns; i++) {
        int r = -1;

        ASSERT_OK(weft_co_join(js[i], &r));
        ASSERT_EQ(0, r);
        weft_join_drop(js[i]);
    }
    free(js);
    return 0;
}

typedef struct one {
    pair *p;
    uint32_t seed;
} one;

static int many_one(void *arg)
{
    one *o = arg;
    weft_tls *t = tt_client_hs(o->p);
    half w = { t, ECHO_BYTES, o->seed }, r = { t, ECHO_BYTES, o->seed };
    weft_join *j;
    int res = -1;
    char c;

    ASSERT_OK(weft_go(weft_runtime_current(), write_half, &w, &j));
    read_half(&r);
    ASSERT_OK(weft_co_join(j, &res));
    weft_join_drop(j);
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    ASSERT_EQ(0, weft_co_tls_read(t, &c, 1));
    weft_tls_free(t);
    return 0;
}

static int many_client(void *arg)
{
    pair *p = arg;
    one *ones = calloc(p->conns, sizeof(*ones));
    weft_join **js = calloc(p->conns, sizeof(*js));

    ASSERT(ones != NULL && js != NULL);
    for (size_t i = 0; i < p->conns; i++) {
        ones[i] = (one){ p, (uint32_t)i + 10 };
        ASSERT_OK(weft_go(weft_runtime_current(), many_one, &ones[i], &js[i]));
    }
    for (size_t i = 0; i < p->conns; i++) {
        int r = -1;

        ASSERT_OK(weft_co_join(js[i], &r));
        ASSERT_EQ(0, r);
        weft_join_drop(js[i]);
    }
    free(js);
    free(ones);
    return 0;
}

TEST(many_connections)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    p.conns = harness_scale(64);
    tt_pair_run(&p, many_server, many_client);
}

/* ---- truncation: EOF without close_notify ------------------------------------------ */
static int trunc_server(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_server_hs(p);

    ASSERT_EQ(4, weft_co_tls_write(t, "data", 4));
    weft_tls_free(t);                /* closes the socket: FIN, no close_notify */
    return 0;
}

static int trunc_client(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_client_hs(p);
    char buf[16];

    tt_read_exact(t, buf, 4);
    ASSERT_EQ(0, memcmp(buf, "data", 4));
    ASSERT_EQ(WEFT_TLS_ETRUNCATED, weft_co_tls_read(t, buf, sizeof(buf)));
    ASSERT(strstr(weft_tls_error_text(t), "close_notify") != NULL);
    ASSERT_EQ(WEFT_TLS_ETRUNCATED, weft_co_tls_read(t, buf, sizeof(buf)));   /* broken */
    ASSERT_EQ(WEFT_TLS_ETRUNCATED, weft_co_tls_write(t, "x", 1));
    ASSERT(strstr(weft_strerror(WEFT_TLS_ETRUNCATED), "close_notify") != NULL);
    weft_tls_free(t);
    return 0;
}

TEST(eof_without_close_notify_is_truncation)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    tt_pair_run(&p, trunc_server, trunc_client);
}

/* ---- usage rules: -ENOTCONN, -EBUSY, -EINVAL, freeing under a read ----------------- */
static int reader(void *arg)
{
    pair *p = arg;
    ssize_t r;
    char c;

    /* the main coroutine's probe may hold the side for a moment */
    while ((r = weft_co_tls_read(p->shared, &c, 1)) == -EBUSY)
        weft_co_sleep(1);
    return (int)r;
}

static int rules_server(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_server_hs(p);
    char c;

    /* wait for the client to be done with its checks, then answer */
    while (atomic_load(&p->flag) == 0)
        weft_co_sleep(5);
    ASSERT_EQ(1, weft_co_tls_write(t, "!", 1));
    ASSERT_EQ(0, weft_co_tls_read(t, &c, 1));   /* close_notify */
    weft_tls_free(t);
    return 0;
}

static int rules_client(void *arg)
{
    pair *p = arg;
    weft_tls *t;
    weft_tls_options o = { .server_name = "localhost", .flags = WEFT_TLS_OWN_STREAM };
    weft_tls_op f;
    weft_join *j;
    char c;
    int r = 0, tries;

    ASSERT_OK(weft_tls_new(&t, p->ccfg, tt_connect(&p->addr, p->len), &o));
    ASSERT_EQ(-ENOTCONN, weft_co_tls_read(t, &c, 1));
    ASSERT_EQ(-ENOTCONN, weft_co_tls_write(t, "x", 1));
    ASSERT_EQ(-ENOTCONN, weft_co_tls_shutdown(t));
    ASSERT_OK(weft_co_tls_handshake(t, TT_HS_MS));
    ASSERT_EQ(0, weft_co_tls_read(t, &c, 0));           /* len 0: at once */
    ASSERT_EQ(0, weft_co_tls_write(t, NULL, 0));
    ASSERT_EQ(-EINVAL, weft_co_tls_read(t, NULL, 1));
    ASSERT_EQ(-EINVAL, weft_co_tls_write(t, NULL, 1));
    ASSERT_EQ(-EINVAL, weft_co_tls_read(NULL, &c, 1));
    ASSERT_EQ(-EINVAL, weft_co_tls_handshake(NULL, 0));
    /* a second read while one is pending: -EBUSY (a dropped read of ours
     * loses nothing, so retry until the other one holds the side) */
    p->shared = t;
    ASSERT_OK(weft_go(weft_runtime_current(), reader, p, &j));
    for (tries = 0; tries < 1000; tries++) {
        ssize_t n = 0;

        weft_tls_read_init(&f, t, &c, 1);
        (void)weft_co_await_timeout(&weft_tls_op_future, &f, &n, 20);
        if (f.result == -EBUSY)
            break;
        weft_co_sleep(10);           /* let the reader take the side */
    }
    ASSERT_EQ(-EBUSY, f.result);
    atomic_store(&p->flag, 1);       /* the server sends one byte: the reader's */
    ASSERT_OK(weft_co_join(j, &r));
    weft_join_drop(j);
    ASSERT_EQ(1, r);
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    weft_tls_free(t);
    return 0;
}

TEST(usage_rules)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    tt_pair_run(&p, rules_server, rules_client);
}

static int freed_reader(void *arg)
{
    pair *p = arg;
    weft_tls_op f;
    ssize_t n = 1;
    char c;

    weft_tls_read_init(&f, p->shared, &c, 1);   /* holds a reference from here */
    atomic_store(&p->flag, 1);
    ASSERT_OK(weft_co_await(&weft_tls_op_future, &f, &n));
    return (int)n;
}

static int free_server(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_server_hs(p);
    char c;

    ASSERT(weft_co_tls_read(t, &c, 1) < 0);      /* the client goes without a word */
    weft_tls_free(t);
    return 0;
}

static int free_client(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_client_hs(p);
    weft_join *j;
    int r = 0;

    p->shared = t;
    ASSERT_OK(weft_go(weft_runtime_current(), freed_reader, p, &j));
    while (atomic_load(&p->flag) == 0)
        weft_co_sleep(1);
    weft_co_sleep(20);               /* most likely pending by now; either way: */
    weft_tls_free(t);
    ASSERT_OK(weft_co_join(j, &r));
    weft_join_drop(j);
    ASSERT_EQ(-EBADF, r);
    return 0;
}

TEST(free_while_a_read_is_pending)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    tt_pair_run(&p, free_server, free_client);
}

/* ---- a cancelled write leaves the stream intact ------------------------------------ */
#define CANCEL_BIG ((size_t)48 << 20)   /* more than loopback buffers hold */

static int cw_server(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_server_hs(p);
    size_t moved;
    half h;
    char tail[4];

    while (atomic_load(&p->flag) == 0)
        weft_co_sleep(5);
    moved = atomic_load(&p->moved);
    h = (half){ t, moved, 7 };
    read_half(&h);
    tt_read_exact(t, tail, 4);
    ASSERT_EQ(0, memcmp(tail, "TAIL", 4));
    ASSERT_EQ(0, weft_co_tls_read(t, tail, 1));
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    weft_tls_free(t);
    return 0;
}

static int cw_client(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_client_hs(p);
    unsigned char *buf = malloc(CANCEL_BIG);
    weft_tls_op f;
    size_t moved;

    ASSERT(buf != NULL);
    tt_fill(buf, CANCEL_BIG, 7, 0);
    weft_tls_write_init(&f, t, buf, CANCEL_BIG);
    ASSERT_EQ(-ETIMEDOUT, weft_co_await_timeout(&weft_tls_op_future, &f, NULL, 300));
    moved = weft_tls_op_moved(&f);
    ASSERT(moved > 0 && moved < CANCEL_BIG);
    atomic_store(&p->moved, moved);
    atomic_store(&p->flag, 1);
    /* the records it queued go out first, then the next write's */
    ASSERT_EQ(4, weft_co_tls_write(t, "TAIL", 4));
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    /* until the server's close_notify: closing a TCP socket with unread
     * input (the server's session tickets) sends a reset, which could
     * destroy what the server has not read yet */
    ASSERT_EQ(0, weft_co_tls_read(t, buf, 1));
    free(buf);
    weft_tls_free(t);
    return 0;
}

TEST(cancelled_write_keeps_the_stream_in_step)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    tt_pair_run(&p, cw_server, cw_client);
}

/* ---- shutdown while a read is pending, and the runtime going away ---------------- */
static int sd_server(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_server_hs(p);
    char c;

    ASSERT_EQ(0, weft_co_tls_read(t, &c, 1));  /* the client's close_notify */
    ASSERT_EQ(0, weft_co_tls_shutdown(t));     /* ours: ends the client's pending read */
    weft_tls_free(t);
    return 0;
}

static int sd_client(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_client_hs(p);
    weft_join *j;
    int r = -1;

    p->shared = t;
    ASSERT_OK(weft_go(weft_runtime_current(), reader, p, &j));
    weft_co_sleep(20);               /* most likely pending by now; either way: */
    ASSERT_EQ(0, weft_co_tls_shutdown(t));     /* the write side, while a read waits */
    ASSERT_OK(weft_co_join(j, &r));
    weft_join_drop(j);
    ASSERT_EQ(0, r);                 /* end of stream, cleanly */
    weft_tls_free(t);
    return 0;
}

TEST(shutdown_while_a_read_is_pending)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    tt_pair_run(&p, sd_server, sd_client);
}

/* A task owning a TLS stream with a read pending, cancelled when the
 * runtime is freed: its drop frees the stream (no leak under ASan). */
typedef struct owner {
    weft_async co;
    weft_tls *t;
    weft_tls_op op;
    ssize_t n;
    atomic_int *pending;
    char buf[16];
} owner;

static weft_poll owner_poll(owner *o, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&o->co);
    weft_tls_read_init(&o->op, o->t, o->buf, sizeof(o->buf));
    atomic_store(o->pending, 1);
    WEFT_AWAIT(&o->co, weft_tls_op_poll(&o->op, cx, &o->n));
    WEFT_END(&o->co);
}

static void owner_drop(owner *o)
{
    weft_tls_op_drop(&o->op);
    weft_tls_free(o->t);
}

WEFT_DEFINE_FUTURE_VOID(owner, owner_poll, owner_drop);

static int rt_server(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_server_hs(p);
    owner o = { .t = t, .pending = &p->flag };

    /* left waiting for a byte that never comes */
    ASSERT_OK(weft_spawn_detached(weft_runtime_current(), &owner_future, &o));
    while (atomic_load(&p->flag) == 0)
        weft_co_sleep(1);
    return 0;
}

static int rt_client(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_client_hs(p);
    owner o = { .t = t, .pending = &p->moved_flag };

    ASSERT_OK(weft_spawn_detached(weft_runtime_current(), &owner_future, &o));
    while (atomic_load(&p->moved_flag) == 0)
        weft_co_sleep(1);
    return 0;
}

TEST(runtime_freed_while_reads_are_pending)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    /* pair_run frees the runtime: both owners are cancelled there */
    tt_pair_run(&p, rt_server, rt_client);
}

/* ---- over other byte streams: a pipe each way, a Unix socket pair ------------------ */
typedef struct duplex {
    weft_tls_config *scfg, *ccfg;
    weft_socket *crd, *cwr, *srd, *swr;  /* the client's and the server's ends */
    size_t n;
} duplex;

static int duplex_server(void *arg)
{
    duplex *d = arg;
    weft_tls *t;
    weft_tls_options o = { .flags = WEFT_TLS_OWN_STREAM,
                           .write_stream = d->swr != d->srd ? d->swr : NULL };

    ASSERT_OK(weft_tls_new(&t, d->scfg, d->srd, &o));
    ASSERT_OK(weft_co_tls_handshake(t, TT_HS_MS));
    both_ways(t, d->n, 5, 6);
    weft_tls_free(t);
    return 0;
}

static int duplex_client(void *arg)
{
    duplex *d = arg;
    weft_tls *t;
    weft_tls_options o = { .server_name = "localhost", .flags = WEFT_TLS_OWN_STREAM,
                           .write_stream = d->cwr != d->crd ? d->cwr : NULL };

    ASSERT_OK(weft_tls_new(&t, d->ccfg, d->crd, &o));
    ASSERT(weft_tls_socket(t) == d->crd);
    ASSERT_OK(weft_co_tls_handshake(t, TT_HS_MS));
    both_ways(t, d->n, 6, 5);
    weft_tls_free(t);
    return 0;
}

static void duplex_run(weft_runtime *rt, duplex *d)
{
    weft_join *js, *jc;
    int rs = -1, rc = -1;

    ASSERT_OK(weft_go(rt, duplex_server, d, &js));
    ASSERT_OK(weft_go(rt, duplex_client, d, &jc));
    ASSERT_OK(weft_join_wait(jc, &rc));
    ASSERT_OK(weft_join_wait(js, &rs));
    weft_join_drop(js);
    weft_join_drop(jc);
    ASSERT_EQ(0, rc);
    ASSERT_EQ(0, rs);
    /* owned: all closed by weft_tls_free() */
    ASSERT_EQ(-EBADF, weft_stream_fd(d->crd));
    ASSERT_EQ(-EBADF, weft_stream_fd(d->cwr));
    ASSERT_EQ(-EBADF, weft_stream_fd(d->srd));
    ASSERT_EQ(-EBADF, weft_stream_fd(d->swr));
}

TEST(over_pipes_and_unix_sockets)
{
    weft_runtime *rt;
    duplex d = { 0 };
    int sv[2];

    if (!tt_certs())
        return;
    rt = tt_runtime();
    d.scfg = tt_server_cfg("srv.pem", "srv.key", NULL);
    d.ccfg = tt_client_cfg(NULL);
    d.n = harness_scale(2u << 20);
    /* two pipes: client -> server and server -> client */
    ASSERT_OK(weft_pipe(rt, &d.srd, &d.cwr));
    ASSERT_OK(weft_pipe(rt, &d.crd, &d.swr));
    duplex_run(rt, &d);
    /* a Unix stream socket pair */
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    ASSERT_OK(weft_socket_adopt(rt, sv[0], &d.crd));
    ASSERT_OK(weft_socket_adopt(rt, sv[1], &d.srd));
    d.cwr = d.crd;
    d.swr = d.srd;
    duplex_run(rt, &d);
    weft_tls_config_free(d.scfg);
    weft_tls_config_free(d.ccfg);
    weft_runtime_free(rt);
}
