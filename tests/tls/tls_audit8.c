// SPDX-License-Identifier: MIT
/* Eighth audit of weft/tls.h (public API only):
 *   - a configuration with a certificate and no key (or a key and no
 *     certificate) is refused with -EINVAL, on either side;
 *   - weft_tls_op_moved() of a read: 0 until it completes, then its count;
 *   - reads and writes at the edges of TLS records and of weft's chunks
 *     (1 byte, 16 KiB, 64 KiB, one past each), read back 1 byte at a time
 *     and in odd sizes, in order;
 *   - close_notify sent together with the last bytes and the TCP close:
 *     the bytes, then 0, then 0 again, never WEFT_TLS_ETRUNCATED. */
#include "tls_test.h"

typedef tt_pair pair;

TEST(config_certificate_without_key_is_einval)
{
    weft_tls_config *cfg = NULL;

    if (!tt_certs())
        return;
    for (int server = 0; server < 2; server++) {
        weft_tls_config_options a = { .server = server, .cert_file = tt_path("srv.pem"),
                                      .ca_file = tt_path("ca.pem") };
        weft_tls_config_options b = { .server = server, .key_file = tt_path("srv.key"),
                                      .ca_file = tt_path("ca.pem") };

        ASSERT_EQ(-EINVAL, weft_tls_config_new(&cfg, &a));
        ASSERT_EQ(-EINVAL, weft_tls_config_new(&cfg, &b));
        ASSERT(cfg == NULL);
    }
}

/* ---- moved of a read --------------------------------------------------------------- */
static int moved_server(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_server_hs(p);

    /* after the client's read is pending (it says so), one record */
    while (atomic_load(&p->flag) == 0)
        ASSERT_OK(weft_co_sleep(1));
    ASSERT_EQ(7, weft_co_tls_write(t, "seven!!", 7));
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    weft_tls_free(t);
    return 0;
}

typedef struct rd_task {
    weft_tls_op op;
    ssize_t n;
    size_t moved_pending;
    atomic_int *flag;
} rd_task;

/* Poll the read; note its moved() while it is pending. */
static weft_poll rd_task_poll(rd_task *r, weft_context *cx, ssize_t *out)
{
    if (weft_tls_op_poll(&r->op, cx, &r->n) == WEFT_PENDING) {
        r->moved_pending += weft_tls_op_moved(&r->op);
        atomic_store(r->flag, 1);
        return WEFT_PENDING;
    }
    *out = r->n;
    return WEFT_READY;
}

static void rd_task_drop(rd_task *r)
{
    weft_tls_op_drop(&r->op);
}

WEFT_DEFINE_FUTURE(rd_task, rd_task_poll, rd_task_drop, ssize_t);

static int moved_client(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_client_hs(p);
    rd_task r = { .flag = &p->flag };
    char buf[32];
    ssize_t n = -1;

    weft_tls_read_init(&r.op, t, buf, sizeof(buf));
    ASSERT_EQ(0, weft_tls_op_moved(&r.op));
    ASSERT_OK(weft_co_await(&rd_task_future, &r, &n));
    ASSERT_EQ(7, n);
    ASSERT_EQ(0, memcmp(buf, "seven!!", 7));
    ASSERT_EQ(0, r.moved_pending);                /* 0 while it waited */
    ASSERT_EQ(7, weft_tls_op_moved(&r.op));       /* its count once complete */
    weft_tls_op_drop(&r.op);
    ASSERT_EQ(0, weft_co_tls_read(t, buf, sizeof(buf)));
    weft_tls_free(t);
    return 0;
}

/* tls.h: weft_tls_op_moved(): "read: 0 until it completes". A completed
 * read's count was not reported (0 for ever). */
TEST(read_moved_is_zero_until_it_completes_then_the_count)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    tt_pair_run(&p, moved_server, moved_client);
}

/* ---- record and chunk edges ------------------------------------------------------------ */
static const size_t edge_sizes[] = { 1, 2, 16383, 16384, 16385, 32767, 32768, 32769,
                                     65535, 65536, 65537, 131073, 1 };
#define EDGE_TOTAL (1 + 2 + 16383 + 16384 + 16385 + 32767 + 32768 + 32769 + 65535 + 65536 + \
                    65537 + 131073 + 1)

static int edge_writer(weft_tls *t, uint32_t seed)
{
    static _Thread_local unsigned char buf[131073];
    size_t off = 0;

    for (size_t i = 0; i < sizeof(edge_sizes) / sizeof(edge_sizes[0]); i++) {
        tt_fill(buf, edge_sizes[i], seed, off);
        ASSERT_EQ((ssize_t)edge_sizes[i], weft_co_tls_write(t, buf, edge_sizes[i]));
        off += edge_sizes[i];
    }
    return 0;
}

/* Read EDGE_TOTAL bytes in reads of 1, 7, 4096, 16384, 16385, 100000
 * bytes in turn, checking the pattern as it goes. */
static void edge_reader(weft_tls *t, uint32_t seed)
{
    static const size_t sizes[] = { 1, 1, 1, 7, 4096, 16384, 16385, 100000, 1 };
    static _Thread_local unsigned char buf[100000];
    size_t off = 0, k = 0;

    while (off < EDGE_TOTAL) {
        size_t want = sizes[k++ % (sizeof(sizes) / sizeof(sizes[0]))];
        ssize_t n;

        if (want > EDGE_TOTAL - off)
            want = EDGE_TOTAL - off;
        n = weft_co_tls_read(t, buf, want);
        ASSERT(n > 0 && (size_t)n <= want);
        ASSERT(tt_check(buf, (size_t)n, seed, off));
        off += (size_t)n;
    }
}

static int edge_server(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_server_hs(p);
    char b[4];

    edge_reader(t, 11);
    edge_writer(t, 12);
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    ASSERT_EQ(0, weft_co_tls_read(t, b, sizeof(b)));
    weft_tls_free(t);
    return 0;
}

static int edge_client(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_client_hs(p);
    char b[4];

    edge_writer(t, 11);
    edge_reader(t, 12);
    ASSERT_EQ(0, weft_co_tls_read(t, b, sizeof(b)));
    ASSERT_EQ(0, weft_co_tls_read(t, b, sizeof(b)));
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    weft_tls_free(t);
    return 0;
}

TEST(writes_and_reads_at_record_and_chunk_edges)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    tt_pair_run(&p, edge_server, edge_client);
}

/* ---- close_notify with the last bytes and the TCP close -------------------------------- */
static int cn_server(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_server_hs(p);

    ASSERT_EQ(5, weft_co_tls_write(t, "last.", 5));
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    weft_tls_free(t);                   /* closes the TCP stream at once */
    return 0;
}

static int cn_client(void *arg)
{
    pair *p = arg;
    weft_tls *t = tt_client_hs(p);
    char b[16];

    ASSERT_OK(weft_co_sleep(50));       /* all of it is in the kernel, FIN too */
    tt_read_exact(t, b, 5);
    ASSERT_EQ(0, memcmp(b, "last.", 5));
    ASSERT_EQ(0, weft_co_tls_read(t, b, sizeof(b)));
    ASSERT_EQ(0, weft_co_tls_read(t, b, sizeof(b)));
    ASSERT_EQ(0, weft_co_tls_read(t, b, 0));
    weft_tls_free(t);
    return 0;
}

TEST(close_notify_with_the_last_bytes_and_the_close)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    tt_pair_run(&p, cn_server, cn_client);
}

/* ---- free racing both sides at work ------------------------------------------------------ */
/* The client reads and writes at once (two coroutines, on whatever workers
 * they land) while a third frees the stream at a varying moment: each
 * future completes (its count, or -EBADF: the stream was freed, or the
 * byte stream closed under it), nothing is used after it is freed (ASan),
 * no data race (TSan), and the server sees an error or the end, never a
 * hang. */
typedef struct race {
    pair *p;
    weft_tls *t;
    pthread_mutex_t mu;              /* orders each future's init before the free */
    bool freed;                      /* ->mu */
    atomic_int started;
    ssize_t rres, wres;
} race;

/* One read or write of the stream, begun only while it is not freed (a
 * future's init takes the reference that keeps it: tls.h "init it only on
 * a stream not yet freed"); -EBADF if it was. */
static ssize_t race_op(race *r, bool write, void *buf, size_t len)
{
    weft_tls_op f;
    ssize_t n = -EBADF;

    pthread_mutex_lock(&r->mu);
    if (r->freed) {
        pthread_mutex_unlock(&r->mu);
        return -EBADF;
    }
    if (write)
        weft_tls_write_init(&f, r->t, buf, len);
    else
        weft_tls_read_init(&f, r->t, buf, len);
    pthread_mutex_unlock(&r->mu);
    ASSERT_OK(weft_co_await(&weft_tls_op_future, &f, &n));
    weft_tls_op_drop(&f);
    return n;
}

static int race_reader(void *arg)
{
    race *r = arg;
    static _Thread_local unsigned char buf[8192];
    ssize_t n;

    atomic_fetch_add(&r->started, 1);
    while ((n = race_op(r, false, buf, sizeof(buf))) > 0)
        ;
    r->rres = n;
    return 0;
}

static int race_writer(void *arg)
{
    race *r = arg;
    static _Thread_local unsigned char buf[20000];
    ssize_t n;

    atomic_fetch_add(&r->started, 1);
    while ((n = race_op(r, true, buf, sizeof(buf))) > 0)
        ;
    r->wres = n;
    return 0;
}

static int race_server(void *arg)
{
    pair *p = arg;
    static _Thread_local unsigned char buf[8192];

    for (size_t i = 0; i < p->conns; i++) {
        weft_tls *t = tt_server_hs(p);
        ssize_t n;

        /* echo until the client is gone */
        while ((n = weft_co_tls_read(t, buf, sizeof(buf))) > 0)
            if (weft_co_tls_write(t, buf, (size_t)n) < 0)
                break;
        weft_tls_free(t);
    }
    return 0;
}

static int race_client(void *arg)
{
    pair *p = arg;

    for (size_t i = 0; i < p->conns; i++) {
        race r = { .p = p, .rres = 1, .wres = 1, .mu = PTHREAD_MUTEX_INITIALIZER };
        weft_join *jr, *jw;
        int x = -1;

        r.t = tt_client_hs(p);
        ASSERT_OK(weft_go(weft_runtime_current(), race_reader, &r, &jr));
        ASSERT_OK(weft_go(weft_runtime_current(), race_writer, &r, &jw));
        while (atomic_load(&r.started) < 2)
            ASSERT_OK(weft_co_sleep(1));
        if (i % 3)
            ASSERT_OK(weft_co_sleep(i % 7));
        pthread_mutex_lock(&r.mu);
        r.freed = true;
        weft_tls_free(r.t);
        pthread_mutex_unlock(&r.mu);
        ASSERT_OK(weft_co_join(jr, &x));
        ASSERT_OK(weft_co_join(jw, &x));
        weft_join_drop(jr);
        weft_join_drop(jw);
        ASSERT(r.rres < 0);
        ASSERT(r.wres < 0);
    }
    return 0;
}

TEST(free_racing_a_reader_and_a_writer)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    p.conns = harness_scale(30) + 2;
    tt_pair_run(&p, race_server, race_client);
}
