// SPDX-License-Identifier: MIT
/* io_uring's completion-based receive (src/io/recv.c, docs/io.md
 * "Receive"): bytes taken by the multishot receive wait in the source's
 * queue, and the promises of weft/net.h still hold: a dropped read loses
 * nothing, end of stream and errors come after the queued bytes, one socket
 * holds at most about RX_CAP bytes, close gives the buffers back, running
 * out of buffers falls back to reading the descriptor, and a copy whose
 * source holds queued bytes does not splice past them. Each test skips
 * where the runtime has no receive buffers (no io_uring, or a kernel older
 * than 6.3); the shared suites run on it through the `uring.` tests. */
#include "../stream/stream_test.h"

#include <pthread.h>
#include <stdlib.h>

#include "io/reactor.h"
#include "io/uring.h"
#include "net/handle.h"
#include "sched/runtime.h"
#include "weft/bufio.h"

static weft_runtime *rx_runtime(void)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD, .workers = 2,
                                 .io_backend = WEFT_IO_URING };

    ASSERT_OK(weft_runtime_new(&rt, &opt));
    return rt;
}

static struct weft__reactor *reactor_of(weft_runtime *rt)
{
    int fb = 0;

    ASSERT(weft_runtime_io_backend(rt, &fb) >= 0);
    return atomic_load(&weft__runtime_io(rt)->r);
}

/* A runtime whose reactor receives through io_uring, or a skip. */
static weft_runtime *rx_runtime_or_skip(void)
{
    weft_runtime *rt = rx_runtime();
    struct weft__reactor *r = reactor_of(rt);

    if (r->ring == NULL || r->rx_mem == NULL) {
        weft_runtime_free(rt);
        harness_skip("no io_uring receive buffers here (io_uring missing or kernel < 6.3)");
    }
    return rt;
}

/* A TCP pair: a plain blocking client descriptor *c and the server side
 * adopted into rt as *b. */
static void rx_pair(weft_runtime *rt, int *c, weft_socket **b)
{
    struct sockaddr_storage addr;
    socklen_t len;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), s;

    ASSERT(l >= 0);
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &addr, &len));
    ASSERT_EQ(0, bind(l, (struct sockaddr *)&addr, len));
    ASSERT_EQ(0, listen(l, 1));
    len = sizeof(addr);
    ASSERT_EQ(0, getsockname(l, (struct sockaddr *)&addr, &len));
    *c = nt_raw_connect(&addr, len);
    s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ASSERT(s >= 0);
    close(l);
    ASSERT_OK(weft_socket_adopt(rt, s, b));
}

static struct weft__io_source *src_of(weft_socket *h, uint32_t *gen)
{
    struct weft__io_source *s;
    unsigned kind;

    ASSERT_OK(weft__handle_source(h, &s, gen, &kind));
    return s;
}

/* The source's queue state, read under its lock. */
typedef struct rx_state {
    bool armed, end_set;
    uint32_t bytes;
} rx_state;

static rx_state rx_look(weft_socket *h)
{
    uint32_t gen;
    struct weft__io_source *s = src_of(h, &gen);
    rx_state st;

    pthread_mutex_lock(&s->lock);
    st.armed = s->rx_armed;
    st.end_set = s->rx_end_set;
    st.bytes = s->rx_bytes;
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* Wait (at most ST_WAIT_MS) until the queue holds `bytes` (and, with
 * `end`, an end result behind them). */
static void rx_wait_queued(weft_socket *h, uint32_t bytes, bool end)
{
    uint64_t limit = harness_now_ns() + ST_WAIT_MS * 1000000ull;

    for (;;) {
        rx_state st = rx_look(h);

        if (st.bytes == bytes && (!end || st.end_set))
            return;
        ASSERT(harness_now_ns() < limit);
        usleep(1000);
    }
}

/* Arm the receive: a read that finds nothing, dropped at its time limit. */
static void rx_arm(weft_runtime *rt, weft_socket *b)
{
    char c;

    ASSERT_EQ(-ETIMEDOUT, st_read(rt, b, &c, 1, 20));
    ASSERT(rx_look(b).armed);
}

/* Every buffer the kernel filled is given back (late completions of
 * closed sockets included), within ST_WAIT_MS. */
static void rx_wait_all_back(weft_runtime *rt)
{
    struct weft__reactor *r = reactor_of(rt);
    uint64_t limit = harness_now_ns() + ST_WAIT_MS * 1000000ull;

    while (atomic_load(&r->rx_out) != 0) {
        ASSERT(harness_now_ns() < limit);
        usleep(1000);
    }
}

TEST(rx_dropped_read_loses_nothing)
{
    weft_runtime *rt = rx_runtime_or_skip();
    weft_socket *b;
    char buf[16];
    int c;

    rx_pair(rt, &c, &b);
    rx_arm(rt, b);                    /* that read is dropped: nobody reads */
    nt_raw_write_all(c, "hello", 5);
    rx_wait_queued(b, 5, false);      /* taken from the kernel into the queue */
    ASSERT_EQ(5, st_read(rt, b, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_EQ(0, memcmp(buf, "hello", 5));
    /* a read dropped after its wake-up leaves the bytes queued too */
    rx_arm(rt, b);
    nt_raw_write_all(c, "again", 5);
    rx_wait_queued(b, 5, false);
    ASSERT_EQ(3, st_read(rt, b, buf, 3, ST_WAIT_MS));
    ASSERT_EQ(2, st_read(rt, b, buf + 3, sizeof(buf), ST_WAIT_MS));
    ASSERT_EQ(0, memcmp(buf, "again", 5));
    ASSERT_OK(weft_socket_close(b));
    close(c);
    rx_wait_all_back(rt);
    weft_runtime_free(rt);
}

TEST(rx_end_of_stream_after_queued_bytes)
{
    weft_runtime *rt = rx_runtime_or_skip();
    weft_socket *b;
    char buf[16];
    int c;

    rx_pair(rt, &c, &b);
    rx_arm(rt, b);
    nt_raw_write_all(c, "abc", 3);
    close(c);
    rx_wait_queued(b, 3, true);       /* bytes and end both queued */
    ASSERT_EQ(3, st_read(rt, b, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_EQ(0, memcmp(buf, "abc", 3));
    ASSERT_EQ(0, st_read(rt, b, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_EQ(0, st_read(rt, b, buf, sizeof(buf), ST_WAIT_MS));   /* and again */
    ASSERT_OK(weft_socket_close(b));
    rx_wait_all_back(rt);
    weft_runtime_free(rt);
}

TEST(rx_reset_after_queued_bytes)
{
    weft_runtime *rt = rx_runtime_or_skip();
    struct linger lg = { 1, 0 };
    weft_socket *b;
    char buf[16];
    int c;

    rx_pair(rt, &c, &b);
    rx_arm(rt, b);
    nt_raw_write_all(c, "xyz", 3);
    rx_wait_queued(b, 3, false);
    ASSERT_EQ(0, setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
    close(c);                         /* RST */
    rx_wait_queued(b, 3, true);
    ASSERT_EQ(3, st_read(rt, b, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_EQ(0, memcmp(buf, "xyz", 3));
    ASSERT_EQ(-ECONNRESET, st_read(rt, b, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_OK(weft_socket_close(b));
    rx_wait_all_back(rt);
    weft_runtime_free(rt);
}

typedef struct writer {
    int fd;
    size_t n;
    uint32_t seed;
} writer;

static void *write_pattern(void *arg)
{
    writer *w = arg;
    unsigned char *p = malloc(w->n);

    ASSERT(p != NULL);
    nt_fill(p, w->n, w->seed);
    nt_raw_write_all(w->fd, p, w->n);
    free(p);
    return NULL;
}

TEST(rx_queue_is_capped_per_socket)
{
    weft_runtime *rt = rx_runtime_or_skip();
    const size_t total = 8u << 20;
    unsigned char *buf = malloc(total);
    writer w = { -1, total, 7 };
    weft_socket *b;
    pthread_t th;
    uint32_t last = 0;

    ASSERT(buf != NULL);
    rx_pair(rt, &w.fd, &b);
    rx_arm(rt, b);
    ASSERT_EQ(0, pthread_create(&th, NULL, write_pattern, &w));
    /* nobody reads: the queue grows to its cap (or at worst takes the
     * ring) and stops there, the rest waits in the kernel (and the writer
     * blocks) */
    for (int settled = 0; settled < 20;) {
        uint32_t now;

        usleep(10000);
        now = rx_look(b).bytes;
        settled = now == last && now > 0 ? settled + 1 : 0;
        last = now;
    }
    /* RX_CAP (64 KiB) plus what was in flight; a receive the kernel keeps
     * running is not found by the cancel, and then the ring is the bound */
    ASSERT(last >= 64u * 1024u);
    ASSERT(last <= URING_RX_BUFS * URING_RX_SIZE);
    ASSERT_EQ((ssize_t)total, st_read_exact(rt, b, buf, total, 4 * ST_WAIT_MS));
    ASSERT_EQ(total, nt_check(buf, total, 7, 0));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_OK(weft_socket_close(b));
    close(w.fd);
    rx_wait_all_back(rt);
    free(buf);
    weft_runtime_free(rt);
}

TEST(rx_close_gives_buffers_back)
{
    weft_runtime *rt = rx_runtime_or_skip();
    unsigned char chunk[9000];
    size_t rounds = harness_scale(300);

    nt_fill(chunk, sizeof(chunk), 3);
    /* 300 sockets closed with three buffers queued each: 900 buffers, most
     * of the ring; a leak would leave rx_out above 0 */
    for (size_t i = 0; i < rounds; i++) {
        weft_socket *b;
        int c;

        rx_pair(rt, &c, &b);
        rx_arm(rt, b);
        nt_raw_write_all(c, chunk, sizeof(chunk));
        rx_wait_queued(b, sizeof(chunk), false);
        ASSERT_OK(weft_socket_close(b));
        close(c);
    }
    rx_wait_all_back(rt);
    weft_runtime_free(rt);
}

TEST(rx_out_of_buffers_reads_the_descriptor)
{
    weft_runtime *rt = rx_runtime_or_skip();
    enum { PAIRS = 80, EACH = 96 * 1024 };
    static unsigned char buf[EACH];
    weft_socket *b[PAIRS];
    writer w[PAIRS];
    pthread_t th[PAIRS];

    /* 80 sockets of 96 KiB each (7.5 MiB) against 4 MiB of buffers: the
     * receives run out (-ENOBUFS) and their readers read the descriptor */
    for (int i = 0; i < PAIRS; i++) {
        w[i] = (writer){ -1, EACH, (uint32_t)i + 100 };
        rx_pair(rt, &w[i].fd, &b[i]);
        nt_buffers(w[i].fd, 256 * 1024);
        rx_arm(rt, b[i]);
    }
    for (int i = 0; i < PAIRS; i++)
        ASSERT_EQ(0, pthread_create(&th[i], NULL, write_pattern, &w[i]));
    usleep(200000);                   /* let them fill what they can */
    for (int i = 0; i < PAIRS; i++) {
        ASSERT_EQ((ssize_t)EACH, st_read_exact(rt, b[i], buf, EACH, 4 * ST_WAIT_MS));
        ASSERT_EQ((size_t)EACH, nt_check(buf, EACH, (uint32_t)i + 100, 0));
    }
    for (int i = 0; i < PAIRS; i++) {
        ASSERT_EQ(0, pthread_join(th[i], NULL));
        ASSERT_OK(weft_socket_close(b[i]));
        close(w[i].fd);
    }
    rx_wait_all_back(rt);
    weft_runtime_free(rt);
}

TEST(rx_copy_does_not_splice_past_queued_bytes)
{
    weft_runtime *rt = rx_runtime_or_skip();
    weft_stream *rd, *wr;
    weft_socket *b;
    weft_copy cp;
    ssize_t n = -1;
    char buf[32];
    int c;

    rx_pair(rt, &c, &b);
    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    rx_arm(rt, b);
    nt_raw_write_all(c, "first-", 6);
    rx_wait_queued(b, 6, false);
    nt_raw_write_all(c, "second", 6);
    close(c);
    weft_copy_init(&cp, b, wr);       /* socket -> pipe: would splice */
    ASSERT_OK(weft_block_on(rt, &weft_copy_future, &cp, &n));
    weft_copy_drop(&cp);
    ASSERT_EQ(12, n);
    ASSERT_EQ(12, st_read_exact(rt, rd, buf, 12, ST_WAIT_MS));
    ASSERT_EQ(0, memcmp(buf, "first-second", 12));
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_stream_close(wr));
    ASSERT_OK(weft_socket_close(b));
    rx_wait_all_back(rt);
    weft_runtime_free(rt);
}

TEST(rx_recv_from_a_stream_takes_the_queue)
{
    weft_runtime *rt = rx_runtime_or_skip();
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof(from);
    weft_recv_from op;
    weft_socket *b;
    char buf[8];
    int c;

    rx_pair(rt, &c, &b);
    rx_arm(rt, b);
    nt_raw_write_all(c, "hi", 2);
    rx_wait_queued(b, 2, false);
    weft_recv_from_init(&op, b, buf, sizeof(buf), &from, &fromlen);
    ASSERT_EQ(2, st_run(rt, &op, ST_WAIT_MS));
    ASSERT_EQ(0, memcmp(buf, "hi", 2));
    ASSERT_EQ(0, (int)fromlen);       /* as recvfrom(2) on a TCP socket */
    ASSERT_OK(weft_socket_close(b));
    close(c);
    rx_wait_all_back(rt);
    weft_runtime_free(rt);
}

TEST(rx_close_with_bytes_queued)
{
    weft_runtime *rt = rx_runtime_or_skip();
    weft_socket *b;
    char buf[4];
    int c;

    rx_pair(rt, &c, &b);
    rx_arm(rt, b);
    nt_raw_write_all(c, "q", 1);
    rx_wait_queued(b, 1, false);
    ASSERT_OK(weft_socket_close(b));  /* with a byte queued */
    ASSERT_EQ(-EBADF, st_read(rt, b, buf, sizeof(buf), ST_WAIT_MS));
    close(c);
    rx_wait_all_back(rt);
    weft_runtime_free(rt);
}

TEST(rx_shutdown_read_ends_the_receive)
{
    weft_runtime *rt = rx_runtime_or_skip();
    weft_socket *b;
    char buf[8];
    int c;

    rx_pair(rt, &c, &b);
    rx_arm(rt, b);
    nt_raw_write_all(c, "ab", 2);
    rx_wait_queued(b, 2, false);
    ASSERT_OK(weft_socket_shutdown(b, SHUT_RD));
    ASSERT_EQ(2, st_read(rt, b, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_EQ(0, st_read(rt, b, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_OK(weft_socket_close(b));
    close(c);
    rx_wait_all_back(rt);
    weft_runtime_free(rt);
}

TEST(rx_without_buffers_reads_by_readiness)
{
    weft_runtime *rt;
    struct weft__reactor *r;
    weft_socket *b;
    char buf[8];
    int c;

    weft__uring_no_rx(true);
    rt = rx_runtime();
    r = reactor_of(rt);
    weft__uring_no_rx(false);
    ASSERT(r->rx_mem == NULL);
    rx_pair(rt, &c, &b);
    ASSERT_EQ(-ETIMEDOUT, st_read(rt, b, buf, 1, 5));
    ASSERT(!rx_look(b).armed);
    nt_raw_write_all(c, "ok", 2);
    ASSERT_EQ(2, st_read(rt, b, buf, sizeof(buf), ST_WAIT_MS));
    close(c);
    ASSERT_EQ(0, st_read(rt, b, buf, sizeof(buf), ST_WAIT_MS));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}


