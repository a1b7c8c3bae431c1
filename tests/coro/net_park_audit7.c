// SPDX-License-Identifier: MIT
/* Issue 10's five cases (park_audit7.h) for the socket and buffered-stream
 * calls of weft/coro.h that tests/coro/cancel_points.c leaves out
 * (weft_co_write, the bufreader and bufwriter calls), and for weft_co_await
 * and weft_co_await_fn. Cancelled, a read takes no byte (they stay in the
 * reader's buffer or the socket), and a buffered write loses no byte the
 * writer had accepted before. */
#include "park_audit7.h"

static void pair_teardown(pk_ctx *c) { pk_pair_gone(c); }

/* ---- weft_co_write into a full socket ---- */
static void setup_write(pk_ctx *c)
{
    pk_pair(c);
    pk_fill(c);
}
static long park_write(pk_ctx *c)
{
    static char big[1 << 16];

    return weft_co_write(c->s, big, sizeof(big));
}
static void release_drain(pk_ctx *c) { pk_drain(c); }
static void ok_some(pk_ctx *c) { ASSERT(c->result > 0 && c->result <= (1 << 16)); }
static void undone_nothing(pk_ctx *c) { (void)c; }
static void ok_zero_net(pk_ctx *c) { ASSERT_EQ(0, c->result); }

/* ---- bufreader calls with part of their input there ---- */
static void setup_reader(pk_ctx *c)
{
    pk_pair(c);
    ASSERT_OK(weft_bufreader_init(&c->br, c->s, c->brbuf, sizeof(c->brbuf)));
    ASSERT_EQ(2, write(c->peer, "ab", 2));
    c->aux = 2;                                   /* bytes the peer wrote */
}
static void reader_teardown(pk_ctx *c)
{
    weft_bufreader_drop(&c->br);
    pk_pair_gone(c);
}
/* a cancelled read consumed nothing: the bytes are buffered or in the socket */
static void undone_reader(pk_ctx *c)
{
    const void *data;
    size_t n = weft_bufreader_buffered(&c->br, &data);
    char buf[16] = { 0 };
    ssize_t m = recv(weft_socket_fd(c->s), buf, sizeof(buf), MSG_DONTWAIT);

    if (m < 0)
        m = 0;
    ASSERT_EQ(c->aux, (long)n + m);
    if (n)
        ASSERT_EQ(0, memcmp(data, "ab", n < 2 ? n : 2));
}

static long park_read_until(pk_ctx *c)
{
    char buf[16] = { 0 };
    long r = weft_co_read_until(&c->br, ' ', buf, sizeof(buf));

    if (r > 0)
        ASSERT_EQ(0, memcmp(buf, "abc ", 4));
    return r;
}
static void release_until(pk_ctx *c) { ASSERT_EQ(4, write(c->peer, "c de", 4)); }
static void ok_until(pk_ctx *c)
{
    const void *data;

    ASSERT_EQ(4, c->result);
    ASSERT_EQ(2, weft_bufreader_buffered(&c->br, &data));   /* "de" stays */
}

static long park_bufread_exact(pk_ctx *c)
{
    char buf[8] = { 0 };
    long r = weft_co_bufread_exact(&c->br, buf, 6);

    if (r > 0)
        ASSERT_EQ(0, memcmp(buf, "abcdef", 6));
    return r;
}
static void release_exact(pk_ctx *c) { ASSERT_EQ(4, write(c->peer, "cdef", 4)); }
static void ok_six(pk_ctx *c) { ASSERT_EQ(6, c->result); }

static void setup_frame(pk_ctx *c)
{
    pk_pair(c);
    ASSERT_OK(weft_bufreader_init(&c->br, c->s, c->brbuf, sizeof(c->brbuf)));
    ASSERT_EQ(2, write(c->peer, "\0\0", 2));     /* half a length */
    c->aux = 2;
}
static void undone_frame(pk_ctx *c)
{
    const void *data;
    size_t n = weft_bufreader_buffered(&c->br, &data);
    char buf[16];
    ssize_t m = recv(weft_socket_fd(c->s), buf, sizeof(buf), MSG_DONTWAIT);

    if (m < 0)
        m = 0;
    ASSERT_EQ(2, (long)n + m);
}
static long park_read_frame(pk_ctx *c)
{
    char buf[16] = { 0 };
    long r = weft_co_read_frame(&c->br, buf, sizeof(buf));

    if (r > 0)
        ASSERT_EQ(0, memcmp(buf, "xyz", 3));
    return r;
}
static void release_frame(pk_ctx *c) { ASSERT_EQ(5, write(c->peer, "\0\3xyz", 5)); }
static void ok_three(pk_ctx *c) { ASSERT_EQ(3, c->result); }

/* ---- bufwriter calls over a full socket ---- */
static void setup_writer(pk_ctx *c)
{
    pk_pair(c);
    pk_fill(c);
    ASSERT_OK(weft_bufwriter_init(&c->bw, c->s, c->bwbuf, sizeof(c->bwbuf)));
}
static void writer_teardown(pk_ctx *c)
{
    weft_bufwriter_drop(&c->bw);
    pk_pair_gone(c);
}
static long park_bufwrite(pk_ctx *c)
{
    static char big[4096];

    return weft_co_bufwrite(&c->bw, big, sizeof(big));   /* more than the buffer */
}
static void ok_4096(pk_ctx *c) { ASSERT_EQ(4096, c->result); }

static long park_write_frame(pk_ctx *c)
{
    static char big[1000];

    return weft_co_write_frame(&c->bw, big, sizeof(big));
}
static void ok_1000(pk_ctx *c) { ASSERT_EQ(1000, c->result); }

static void setup_flush(pk_ctx *c)
{
    setup_writer(c);
    c->obj[0] = (void *)1;
}
static long park_flush(pk_ctx *c)
{
    long r = weft_co_bufwrite(&c->bw, "0123456789", 10);   /* fits: no wait */

    if (r != 10)
        return r == -ECANCELED || r == -ETIMEDOUT ? -1000 : r;
    return weft_co_flush(&c->bw);
}
static void ok_flush(pk_ctx *c)
{
    ASSERT_EQ(0, c->result);
    ASSERT_EQ(0, weft_bufwriter_buffered(&c->bw));
}
/* a cancelled flush keeps the writer's unwritten bytes */
static void undone_flush(pk_ctx *c)
{
    ASSERT_EQ(10, weft_bufwriter_buffered(&c->bw));
}

/* ---- weft_co_await and weft_co_await_fn on a oneshot ---- */
static void setup_oneshot(pk_ctx *c)
{
    ASSERT_OK(weft_oneshot_new((weft_oneshot_tx **)&c->obj[0], (weft_oneshot_rx **)&c->obj[1],
                               sizeof(int)));
}
static long park_await(pk_ctx *c)
{
    weft_oneshot_recv f;
    int v = 0, res = 5;
    long r;

    weft_oneshot_recv_init(&f, c->obj[1], &v);
    r = weft_co_await(&weft_oneshot_recv_future, &f, &res);
    if (r == 0)
        return res == 0 ? v : -1000;
    ASSERT_EQ(5, res);                            /* out untouched */
    return r;
}
static long park_await_fn(pk_ctx *c)
{
    weft_oneshot_recv f;
    int v = 0, res = 5;
    long r;

    weft_oneshot_recv_init(&f, c->obj[1], &v);
    r = weft_co_await_fn(weft_oneshot_recv_future.poll, weft_oneshot_recv_future.drop, &f,
                         &res);
    if (r == 0)
        return res == 0 ? v : -1000;
    ASSERT_EQ(5, res);
    return r;
}
static void release_oneshot(pk_ctx *c)
{
    ASSERT_OK(weft_oneshot_send(c->obj[0], &(int){ 42 }));
    c->obj[0] = NULL;
}
static void ok_42(pk_ctx *c) { ASSERT_EQ(42, c->result); }
/* the receive was dropped, the receiver kept: a value sent now stays */
static void undone_oneshot(pk_ctx *c)
{
    int got = 0;

    release_oneshot(c);
    ASSERT_OK(weft_oneshot_try_recv(c->obj[1], &got));
    ASSERT_EQ(42, got);
}
static void oneshot_teardown(pk_ctx *c)
{
    if (c->obj[0])
        weft_oneshot_tx_drop(c->obj[0]);
    weft_oneshot_rx_drop(c->obj[1]);
}

/* ---- weft_co_connect to a listener whose accept queue is full ----
 * Linux drops a SYN while the listener's accept queue is full, so the
 * connect waits for a retransmit (about a second): parked. Released by
 * accepting what waits in the queue. */
#include <netinet/in.h>

static void setup_connect(pk_ctx *c)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    socklen_t len = sizeof(sin);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    ASSERT(l >= 0);
    ASSERT_EQ(0, bind(l, (struct sockaddr *)&sin, sizeof(sin)));
    ASSERT_EQ(0, listen(l, 0));
    ASSERT_EQ(0, getsockname(l, (struct sockaddr *)&sin, &len));
    c->peer = l;
    c->obj[0] = calloc(1, sizeof(sin));
    memcpy(c->obj[0], &sin, sizeof(sin));
    for (int i = 0; i < 3; i++) {             /* fill the accept queue */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        ASSERT(fd >= 0);
        connect(fd, (struct sockaddr *)&sin, sizeof(sin));
        c->fd = i == 0 ? fd : c->fd;
        if (i == 0)
            continue;
        c->obj[i] = (void *)(intptr_t)fd;
    }
    usleep(50000);                            /* the handshakes are done */
}
static long park_connect(pk_ctx *c)
{
    weft_socket *s = (weft_socket *)1;
    long r = weft_co_connect(NULL, c->obj[0], sizeof(struct sockaddr_in), 0, &s);

    if (r == 0)
        ASSERT_OK(weft_socket_close(s));
    else
        ASSERT(s == (weft_socket *)1);        /* untouched on failure */
    return r;
}
/* accept until the connect is through */
static void *acceptor(void *arg)
{
    pk_ctx *c = arg;
    uint64_t until = weft_now_ms() + PK_WAIT_MS;

    while (!atomic_load(&c->job_release) && weft_now_ms() < until) {
        int fd = accept4(c->peer, NULL, NULL, SOCK_CLOEXEC);

        if (fd >= 0)
            close(fd);
        else
            usleep(1000);
    }
    return NULL;
}
static void release_connect(pk_ctx *c)
{
    ASSERT_EQ(0, pthread_create(&c->drainer, NULL, acceptor, c));
    c->draining = true;
}
static void teardown_connect(pk_ctx *c)
{
    atomic_store(&c->job_release, 1);
    if (c->draining)
        pthread_join(c->drainer, NULL);
    close(c->peer);
    close(c->fd);
    close((int)(intptr_t)c->obj[1]);
    close((int)(intptr_t)c->obj[2]);
    free(c->obj[0]);
}

static const pk_case cases[] = {
    { "weft_co_connect", setup_connect, park_connect, release_connect, ok_zero_net,
      undone_nothing, teardown_connect },
    { "weft_co_write", setup_write, park_write, release_drain, ok_some, undone_nothing,
      pair_teardown },
    { "weft_co_read_until", setup_reader, park_read_until, release_until, ok_until,
      undone_reader, reader_teardown },
    { "weft_co_bufread_exact", setup_reader, park_bufread_exact, release_exact, ok_six,
      undone_reader, reader_teardown },
    { "weft_co_read_frame", setup_frame, park_read_frame, release_frame, ok_three,
      undone_frame, reader_teardown },
    { "weft_co_bufwrite", setup_writer, park_bufwrite, release_drain, ok_4096, undone_nothing,
      writer_teardown },
    { "weft_co_write_frame", setup_writer, park_write_frame, release_drain, ok_1000,
      undone_nothing, writer_teardown },
    { "weft_co_flush", setup_flush, park_flush, release_drain, ok_flush, undone_flush,
      writer_teardown },
    { "weft_co_await", setup_oneshot, park_await, release_oneshot, ok_42, undone_oneshot,
      oneshot_teardown },
    { "weft_co_await", setup_oneshot, park_await_fn, release_oneshot, ok_42, undone_oneshot,
      oneshot_teardown },
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

TEST(stream_calls_complete_after_parking)
{
    pk_run_all(cases, N_CASES, PK_OK);
}

TEST(stream_calls_aborted_while_parked)
{
    pk_run_all(cases, N_CASES, PK_ABORT);
}

TEST(stream_calls_at_shutdown_while_parked)
{
    pk_run_all(cases, N_CASES, PK_SHUTDOWN);
}

TEST(stream_calls_past_the_deadline)
{
    pk_run_all(cases, N_CASES, PK_DEADLINE);
}
