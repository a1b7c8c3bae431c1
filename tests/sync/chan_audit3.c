/* SPDX-License-Identifier: MIT */
/* Third audit of weft/chan.h: capacities that are not powers of two over
 * many laps, odd and large message sizes, absurd capacities, the unbounded
 * ring growing while wrapped, close with messages queued (len, drain
 * order, which error wins when closed and full), select over receives
 * (the losers keep their messages), the blocking forms between plain
 * threads, and the oneshot / watch / broadcast edges (size limits, a
 * subscriber made after close, lag while closed). */
#define _GNU_SOURCE
#include <string.h>
#include <time.h>

#include "sync_test.h"

/* FIFO and len over many laps of a ring whose capacity is not a power of
 * two, with messages of odd sizes (the stride rounds them up). */
static void check_ring(size_t cap, size_t msg_size)
{
    weft_chan *ch;
    unsigned char in[300], out[300];
    uint64_t sent = 0, got = 0, seed = st_seed(cap * 1000 + msg_size);

    ASSERT(msg_size <= sizeof(in));
    ASSERT_OK(weft_chan_new(&ch, msg_size, cap));
    for (int step = 0; step < 5000; step++) {
        bool push = st_rand(&seed) & 1;

        if (push) {
            memset(in, (int)(sent & 0xff), msg_size);
            memcpy(in, &sent, msg_size < 8 ? msg_size : 8);
            int r = weft_chan_try_send(ch, in);

            if (sent - got == cap) {
                ASSERT_EQ(-EAGAIN, r);
            } else {
                ASSERT_OK(r);
                sent++;
            }
        } else {
            int r = weft_chan_try_recv(ch, out);

            if (sent == got) {
                ASSERT_EQ(-EAGAIN, r);
            } else {
                uint64_t v = 0;

                ASSERT_OK(r);
                memcpy(&v, out, msg_size < 8 ? msg_size : 8);
                if (msg_size < 8)
                    ASSERT_EQ(got & ((1ull << (8 * msg_size)) - 1), v);
                else
                    ASSERT_EQ(got, v);
                for (size_t i = 8; i < msg_size; i++)
                    ASSERT_EQ(got & 0xff, out[i]);
                got++;
            }
        }
        ASSERT_EQ(sent - got, weft_chan_len(ch));
    }
    /* close with messages queued: len still counts them, try_send is
     * -EPIPE even when full, receivers drain in order, then -EPIPE */
    weft_chan_close(ch);
    ASSERT(weft_chan_is_closed(ch));
    ASSERT_EQ(sent - got, weft_chan_len(ch));
    ASSERT_EQ(-EPIPE, weft_chan_try_send(ch, in));
    while (got < sent) {
        uint64_t v = 0;

        ASSERT_OK(weft_chan_try_recv(ch, out));
        memcpy(&v, out, msg_size < 8 ? msg_size : 8);
        if (msg_size >= 8)
            ASSERT_EQ(got, v);
        got++;
    }
    ASSERT_EQ(0, weft_chan_len(ch));
    ASSERT_EQ(-EPIPE, weft_chan_try_recv(ch, out));
    ASSERT_EQ(-EPIPE, weft_chan_recv_wait(ch, out));
    ASSERT_EQ(-EPIPE, weft_chan_send_wait(ch, in));
    weft_chan_drop(ch);
}

TEST(chan_rings_of_odd_capacities_and_sizes)
{
    static const size_t caps[] = { 1, 2, 3, 5, 7, 31, 33, 0 };
    static const size_t sizes[] = { 1, 3, 8, 13, 24, 300 };

    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++)
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            if (caps[c] == 0)
                continue;               /* unbounded: below */
            check_ring(caps[c], sizes[s]);
        }
}

/* closed and full: -EPIPE, not -EAGAIN (a sender that retries on -EAGAIN
 * would spin for ever on a closed channel) */
TEST(chan_closed_and_full_is_epipe)
{
    weft_chan *ch;
    weft_chan_send s;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int v = 1, res = 0;

    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 2));
    ASSERT_OK(weft_chan_try_send(ch, &v));
    ASSERT_OK(weft_chan_try_send(ch, &v));
    ASSERT_EQ(-EAGAIN, weft_chan_try_send(ch, &v));
    weft_chan_close(ch);
    ASSERT_EQ(-EPIPE, weft_chan_try_send(ch, &v));
    weft_chan_send_init(&s, ch, &v);
    ASSERT_EQ(WEFT_READY, weft_chan_send_poll(&s, &cx, &res));
    ASSERT_EQ(-EPIPE, res);
    weft_chan_send_drop(&s);
    ASSERT_EQ(2, weft_chan_len(ch));
    weft_chan_drop(ch);                             /* frees the 2 queued */
}

/* The unbounded ring grows while wrapped (head in the middle): order kept. */
TEST(chan_unbounded_grows_while_wrapped)
{
    weft_chan *ch;
    uint64_t next_in = 0, next_out = 0, v;

    ASSERT_OK(weft_chan_new(&ch, sizeof(uint64_t), 0));
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 13 + round * 11; i++, next_in++)
            ASSERT_OK(weft_chan_try_send(ch, &next_in));
        for (int i = 0; i < 9 + round * 7; i++, next_out++) {
            ASSERT_OK(weft_chan_try_recv(ch, &v));
            ASSERT_EQ(next_out, v);
        }
        ASSERT_EQ(next_in - next_out, weft_chan_len(ch));
    }
    weft_chan_close(ch);
    ASSERT_EQ(-EPIPE, weft_chan_try_send(ch, &v));
    while (next_out < next_in) {
        ASSERT_OK(weft_chan_try_recv(ch, &v));
        ASSERT_EQ(next_out, v);
        next_out++;
    }
    ASSERT_EQ(-EPIPE, weft_chan_try_recv(ch, &v));
    weft_chan_drop(ch);
}

/* Absurd sizes: -EINVAL or -ENOMEM, never a crash, *out untouched. */
TEST(chan_absurd_sizes)
{
    weft_chan *ch = (weft_chan *)0x1;
    weft_bcast *b = (weft_bcast *)0x1;
    weft_watch *w = (weft_watch *)0x1;
    weft_oneshot_tx *tx = (weft_oneshot_tx *)0x1;
    weft_oneshot_rx *rx = (weft_oneshot_rx *)0x1;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* the sanitizers' allocators abort on absurd requests rather than
     * return NULL: only the sizes refused before any allocation */
    static const size_t caps[] = { SIZE_MAX, SIZE_MAX / 2 };
#else
    static const size_t caps[] = { SIZE_MAX, SIZE_MAX / 2, SIZE_MAX / 16, (size_t)1 << 40,
                                   SIZE_MAX / 24 };
#endif
    int v = 0, r;

    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        r = weft_chan_new(&ch, 8, caps[i]);
        ASSERT(r == -EINVAL || r == -ENOMEM);
        ASSERT(ch == (weft_chan *)0x1);
        r = weft_bcast_new(&b, 8, caps[i]);
        ASSERT(r == -EINVAL || r == -ENOMEM);
        ASSERT(b == (weft_bcast *)0x1);
    }
    ASSERT_EQ(-EINVAL, weft_chan_new(&ch, 0, 1));
    ASSERT_EQ(-EINVAL, weft_chan_new(&ch, WEFT_FUTURE_MAX_SIZE + 1, 0));
    ASSERT_EQ(-EINVAL, weft_chan_new(&ch, SIZE_MAX, 1));
    ASSERT_EQ(-EINVAL, weft_chan_new(NULL, 8, 1));
    ASSERT_EQ(-EINVAL, weft_bcast_new(&b, 0, 4));
    ASSERT_EQ(-EINVAL, weft_bcast_new(&b, 4, 0));
    ASSERT_EQ(-EINVAL, weft_bcast_new(&b, SIZE_MAX, 2));
    ASSERT_EQ(-EINVAL, weft_watch_new(&w, 0, &v));
    ASSERT_EQ(-EINVAL, weft_watch_new(&w, sizeof(v), NULL));
    ASSERT_EQ(-EINVAL, weft_watch_new(&w, WEFT_FUTURE_MAX_SIZE + 1, &v));
    ASSERT_EQ(-EINVAL, weft_oneshot_new(&tx, &rx, SIZE_MAX));
    ASSERT(ch == (weft_chan *)0x1 && b == (weft_bcast *)0x1 && w == (weft_watch *)0x1);
    ASSERT(tx == (weft_oneshot_tx *)0x1 && rx == (weft_oneshot_rx *)0x1);
}

/* Large messages through a bounded channel of 2, and a blocking receiver
 * thread: every byte arrives. */
struct big_rx {
    weft_chan *ch;
    size_t size;
    int n, bad;
};

static void *big_rx_main(void *arg)
{
    struct big_rx *b = arg;
    unsigned char *buf = malloc(b->size);

    for (int i = 0; i < b->n; i++) {
        if (weft_chan_recv_wait(b->ch, buf) != 0) {
            b->bad++;
            continue;
        }
        for (size_t k = 0; k < b->size; k += 4093)
            if (buf[k] != (unsigned char)(i + k))
                b->bad++;
    }
    free(buf);
    return NULL;
}

TEST(chan_large_messages_between_plain_threads)
{
    struct big_rx b = { .size = 256 * 1024, .n = (int)harness_scale(200) };
    unsigned char *msg = malloc(b.size);
    pthread_t t;

    ASSERT_OK(weft_chan_new(&b.ch, b.size, 2));
    ASSERT_EQ(0, pthread_create(&t, NULL, big_rx_main, &b));
    for (int i = 0; i < b.n; i++) {
        for (size_t k = 0; k < b.size; k += 4093)
            msg[k] = (unsigned char)(i + k);
        ASSERT_OK(weft_chan_send_wait(b.ch, msg));
    }
    pthread_join(t, NULL);
    ASSERT_EQ(0, b.bad);
    ASSERT_EQ(0, weft_chan_len(b.ch));
    weft_chan_drop(b.ch);
    free(msg);
}

/* select over receives of two channels that both hold a message: the
 * winner takes one, the loser (dropped) takes none. */
TEST(select_losing_receive_keeps_its_message)
{
    weft_chan *a, *b;
    weft_chan_recv ra, rb;
    weft_future_ref refs[2];
    weft_select sel;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int va = 0, vb = 0, oa = -1, ob = -1, res = -1;

    ASSERT_OK(weft_chan_new(&a, sizeof(int), 4));
    ASSERT_OK(weft_chan_new(&b, sizeof(int), 0));
    ASSERT_OK(weft_chan_try_send(a, &(int){ 10 }));
    ASSERT_OK(weft_chan_try_send(b, &(int){ 20 }));
    weft_chan_recv_init(&ra, a, &va);
    weft_chan_recv_init(&rb, b, &vb);
    refs[0] = (weft_future_ref){ .type = &weft_chan_recv_future, .future = &rb, .out = &ob };
    refs[1] = (weft_future_ref){ .type = &weft_chan_recv_future, .future = &ra, .out = &oa };
    weft_select_init(&sel, refs, 2);
    ASSERT_EQ(WEFT_READY, weft_select_poll(&sel, &cx, &res));
    ASSERT_EQ(0, res);
    ASSERT_EQ(0, ob);
    ASSERT_EQ(20, vb);
    ASSERT_EQ(0, va);                               /* the loser wrote nothing */
    weft_select_drop(&sel);
    ASSERT_EQ(1, weft_chan_len(a));                 /* and took nothing */
    ASSERT_EQ(0, weft_chan_len(b));
    ASSERT_OK(weft_chan_try_recv(a, &va));
    ASSERT_EQ(10, va);
    weft_chan_drop(a);
    weft_chan_drop(b);
}

/* A receive woken for a message and then dropped by a select that another
 * branch won passes its wake on: the other waiting receiver is woken. */
TEST(select_dropping_a_woken_receive_passes_the_wake_on)
{
    weft_chan *ch, *other;
    weft_chan_recv r1, r2, r3;
    weft_future_ref refs[2];
    weft_select sel;
    cwaker c1 = { 0 }, c2 = { 0 };
    weft_waker w1 = cw_waker(&c1), w2 = cw_waker(&c2);
    weft_context cx1 = weft_context_from_waker(&w1), cx2 = weft_context_from_waker(&w2);
    int v1 = 0, v2 = 0, v3 = 0, o1 = -1, o3 = -1, res = -1;

    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    ASSERT_OK(weft_chan_new(&other, sizeof(int), 1));
    weft_chan_recv_init(&r1, ch, &v1);
    weft_chan_recv_init(&r3, other, &v3);
    refs[0] = (weft_future_ref){ .type = &weft_chan_recv_future, .future = &r1, .out = &o1 };
    refs[1] = (weft_future_ref){ .type = &weft_chan_recv_future, .future = &r3, .out = &o3 };
    weft_select_init(&sel, refs, 2);
    ASSERT_EQ(WEFT_PENDING, weft_select_poll(&sel, &cx1, &res));   /* r1 parked first */
    weft_chan_recv_init(&r2, ch, &v2);
    ASSERT_EQ(WEFT_PENDING, weft_chan_recv_poll(&r2, &cx2, &res));
    ASSERT_OK(weft_chan_try_send(ch, &(int){ 5 }));            /* wakes r1 */
    ASSERT_EQ(1, cw_wakes(&c1));
    ASSERT_EQ(0, cw_wakes(&c2));
    weft_select_drop(&sel);                         /* r1 dropped unobserved */
    ASSERT_EQ(1, cw_wakes(&c2));                    /* ... its wake passed on */
    ASSERT_EQ(WEFT_READY, weft_chan_recv_poll(&r2, &cx2, &res));
    ASSERT_OK(res);
    ASSERT_EQ(5, v2);
    ASSERT_EQ(0, v1);
    weft_chan_recv_drop(&r2);
    weft_chan_drop(ch);
    weft_chan_drop(other);
    ASSERT_CW_BALANCED(&c1);
    ASSERT_CW_BALANCED(&c2);
}

/* watch: a receiver subscribed after close has seen the last value and
 * gets -EPIPE at once; get still works; the sender's drop closes. */
TEST(watch_subscriber_after_close)
{
    weft_watch *w;
    weft_watch_rx *old, *late;
    weft_watch_changed c;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int v = 1, got = 0, res = 0;

    ASSERT_OK(weft_watch_new(&w, sizeof(int), &v));
    ASSERT_OK(weft_watch_rx_new(&old, w));
    ASSERT_OK(weft_watch_send(w, &(int){ 2 }));
    ASSERT_EQ(1, (int)weft_watch_version(w));
    weft_watch_close(w);
    weft_watch_close(w);                            /* idempotent */
    ASSERT_EQ(-EPIPE, weft_watch_send(w, &v));
    ASSERT_EQ(1, (int)weft_watch_version(w));
    ASSERT_OK(weft_watch_rx_new(&late, w));
    ASSERT_EQ(-EPIPE, weft_watch_has_changed(late));
    weft_watch_changed_init(&c, late, &got);
    ASSERT_EQ(WEFT_READY, weft_watch_changed_poll(&c, &cx, &res));
    ASSERT_EQ(-EPIPE, res);
    ASSERT_EQ(0, got);
    weft_watch_changed_drop(&c);
    ASSERT_OK(weft_watch_get(late, &got));
    ASSERT_EQ(2, got);
    /* the old receiver has not seen 2: it gets it first, then -EPIPE */
    ASSERT_EQ(1, weft_watch_has_changed(old));
    weft_watch_drop(w);                             /* receivers keep it alive */
    got = 0;
    weft_watch_changed_init(&c, old, &got);
    ASSERT_EQ(WEFT_READY, weft_watch_changed_poll(&c, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(2, got);
    weft_watch_changed_drop(&c);
    weft_watch_changed_init(&c, old, &got);
    ASSERT_EQ(WEFT_READY, weft_watch_changed_poll(&c, &cx, &res));
    ASSERT_EQ(-EPIPE, res);
    weft_watch_changed_drop(&c);
    weft_watch_rx_drop(late);
    weft_watch_rx_drop(old);
}

/* broadcast: a receiver that lagged on a closed channel is told of the lag
 * once, drains what is kept, then gets -EPIPE; the sender's drop closes. */
TEST(bcast_lag_then_drain_after_close)
{
    weft_bcast *b;
    weft_bcast_rx *rx;
    weft_bcast_recv r;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    uint64_t missed = 0;
    int v = -1, res = 0;

    ASSERT_OK(weft_bcast_new(&b, sizeof(int), 3));
    ASSERT_OK(weft_bcast_rx_new(&rx, b));
    for (int i = 0; i < 10; i++)
        ASSERT_OK(weft_bcast_send(b, &i));
    weft_bcast_drop(b);                             /* closes; rx keeps it alive */
    weft_bcast_recv_init(&r, rx, &v, &missed);
    ASSERT_EQ(WEFT_READY, weft_bcast_recv_poll(&r, &cx, &res));
    ASSERT_EQ(-EOVERFLOW, res);
    ASSERT_EQ(7, missed);
    weft_bcast_recv_drop(&r);
    for (int i = 7; i < 10; i++) {
        ASSERT_OK(weft_bcast_try_recv(rx, &v, NULL));
        ASSERT_EQ(i, v);
    }
    ASSERT_EQ(-EPIPE, weft_bcast_try_recv(rx, &v, &missed));
    weft_bcast_recv_init(&r, rx, &v, NULL);
    ASSERT_EQ(WEFT_READY, weft_bcast_recv_poll(&r, &cx, &res));
    ASSERT_EQ(-EPIPE, res);
    weft_bcast_recv_drop(&r);
    weft_bcast_rx_drop(rx);
}

/* oneshot: a bare signal (size 0) through the blocking form; the blocking
 * form's argument checks. */
static void *oneshot_sender(void *arg)
{
    struct timespec ts = { 0, 20 * 1000 * 1000 };

    nanosleep(&ts, NULL);
    weft_oneshot_send(arg, NULL);
    return NULL;
}

TEST(oneshot_signal_and_blocking_form)
{
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;
    pthread_t t;
    int v;

    ASSERT_OK(weft_oneshot_new(&tx, &rx, 0));
    ASSERT_EQ(0, pthread_create(&t, NULL, oneshot_sender, tx));
    ASSERT_OK(weft_oneshot_recv_wait(rx, NULL));
    pthread_join(t, NULL);
    ASSERT_EQ(-EPIPE, weft_oneshot_recv_wait(rx, NULL));   /* received already */
    weft_oneshot_rx_drop(rx);
    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    ASSERT_EQ(-EINVAL, weft_oneshot_recv_wait(rx, NULL));  /* size > 0 */
    ASSERT_EQ(-EINVAL, weft_oneshot_recv_wait(NULL, &v));
    weft_oneshot_rx_drop(rx);
    ASSERT(weft_oneshot_tx_is_closed(tx));
    ASSERT_EQ(-EPIPE, weft_oneshot_send(tx, &(int){ 3 }));
}

/* ---- nothing lost under timeouts, tasks and plain threads together ---------
 * Producer tasks send with a timeout of 0-1 ms and resend the same message
 * when it runs out (a send dropped while pending sent nothing); consumer
 * tasks receive with a timeout of 0-2 ms and try again (a receive dropped
 * while pending took nothing); one plain thread sends with send_wait, one
 * receives with recv_wait. After the producers, close: the consumers drain
 * and stop at -EPIPE. Every message is received exactly once. */
#define NL_PRODUCERS 3
#define NL_CONSUMERS 3

struct nl_shared {
    weft_chan *ch;
    int per;                              /* messages per producer */
    _Atomic unsigned char *seen;          /* (NL_PRODUCERS + 1) * per */
    atomic_int dups, timeouts;
};

static struct nl_shared nl;

typedef struct nl_prod {
    weft_async co;
    int id, i, msg, res, err;
    uint64_t rng;
    weft_chan_send s;
    weft_timeout t;
} nl_prod;

static weft_poll nl_prod_poll(nl_prod *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < nl.per; f->i++) {
        f->msg = f->id * nl.per + f->i;
        do {
            weft_chan_send_init(&f->s, nl.ch, &f->msg);
            weft_timeout_init(&f->t, &weft_chan_send_future, &f->s, st_rand(&f->rng) % 2);
            WEFT_AWAIT(&f->co, weft_timeout_poll(&f->t, cx, &f->err, &f->res));
            weft_timeout_drop(&f->t);
            if (f->err == -ETIMEDOUT)
                atomic_fetch_add(&nl.timeouts, 1);
        } while (f->err == -ETIMEDOUT);
        ASSERT_OK(f->err);
        ASSERT_OK(f->res);
    }
    WEFT_END(&f->co);
}

static void nl_prod_drop(nl_prod *f)
{
    weft_timeout_drop(&f->t);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(nl_prod, nl_prod_poll, nl_prod_drop);

static void nl_take(int v)
{
    if (v < 0 || v >= (NL_PRODUCERS + 1) * nl.per || atomic_fetch_add(&nl.seen[v], 1) != 0)
        atomic_fetch_add(&nl.dups, 1);
}

typedef struct nl_cons {
    weft_async co;
    int got, res, err;
    uint64_t rng;
    weft_chan_recv r;
    weft_timeout t;
} nl_cons;

static weft_poll nl_cons_poll(nl_cons *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (;;) {
        f->got = -1;
        weft_chan_recv_init(&f->r, nl.ch, &f->got);
        weft_timeout_init(&f->t, &weft_chan_recv_future, &f->r, st_rand(&f->rng) % 3);
        WEFT_AWAIT(&f->co, weft_timeout_poll(&f->t, cx, &f->err, &f->res));
        weft_timeout_drop(&f->t);
        if (f->err == -ETIMEDOUT) {
            ASSERT_EQ(-1, f->got);                  /* dst written only on success */
            continue;
        }
        ASSERT_OK(f->err);
        if (f->res == -EPIPE)
            break;
        ASSERT_OK(f->res);
        nl_take(f->got);
    }
    WEFT_END(&f->co);
}

static void nl_cons_drop(nl_cons *f)
{
    weft_timeout_drop(&f->t);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(nl_cons, nl_cons_poll, nl_cons_drop);

static void *nl_thread_send(void *arg)
{
    (void)arg;
    for (int i = 0; i < nl.per; i++) {
        int v = NL_PRODUCERS * nl.per + i;

        if (weft_chan_send_wait(nl.ch, &v) != 0)
            atomic_fetch_add(&nl.dups, 1000);
    }
    return NULL;
}

static void *nl_thread_recv(void *arg)
{
    int v, r;

    (void)arg;
    while ((r = weft_chan_recv_wait(nl.ch, &v)) == 0)
        nl_take(v);
    if (r != -EPIPE)
        atomic_fetch_add(&nl.dups, 1000);
    return NULL;
}

static void nothing_lost(size_t cap)
{
    weft_runtime *rt = st_runtime(2);
    weft_join *prod[NL_PRODUCERS], *cons[NL_CONSUMERS];
    pthread_t ts, tr;
    int total;

    memset(&nl, 0, sizeof(nl));
    nl.per = (int)harness_scale(3000);
    total = (NL_PRODUCERS + 1) * nl.per;
    nl.seen = calloc((size_t)total, 1);
    ASSERT(nl.seen != NULL);
    ASSERT_OK(weft_chan_new(&nl.ch, sizeof(int), cap));
    for (int i = 0; i < NL_CONSUMERS; i++)
        ASSERT_OK(weft_spawn(rt, &nl_cons_future, &(nl_cons){ .rng = 77u + (unsigned)i }, &cons[i]));
    ASSERT_EQ(0, pthread_create(&tr, NULL, nl_thread_recv, NULL));
    for (int i = 0; i < NL_PRODUCERS; i++)
        ASSERT_OK(weft_spawn(rt, &nl_prod_future, &(nl_prod){ .id = i, .rng = 5u + (unsigned)i },
                             &prod[i]));
    ASSERT_EQ(0, pthread_create(&ts, NULL, nl_thread_send, NULL));
    for (int i = 0; i < NL_PRODUCERS; i++) {
        ASSERT_OK(weft_join_wait(prod[i], NULL));
        weft_join_drop(prod[i]);
    }
    pthread_join(ts, NULL);
    weft_chan_close(nl.ch);
    for (int i = 0; i < NL_CONSUMERS; i++) {
        ASSERT_OK(weft_join_wait(cons[i], NULL));
        weft_join_drop(cons[i]);
    }
    pthread_join(tr, NULL);
    ASSERT_EQ(0, atomic_load(&nl.dups));
    for (int v = 0; v < total; v++)
        if (atomic_load(&nl.seen[v]) != 1)
            harness_fail(__FILE__, __LINE__, "message %d received %d times (cap %zu)", v,
                         (int)atomic_load(&nl.seen[v]), cap);
    ASSERT_EQ(0, weft_chan_len(nl.ch));
    weft_chan_drop(nl.ch);
    free((void *)nl.seen);
    weft_runtime_free(rt);
}

TEST(chan_nothing_lost_under_timeouts_bounded_1)
{
    nothing_lost(1);
}

TEST(chan_nothing_lost_under_timeouts_bounded_3)
{
    nothing_lost(3);
}

TEST(chan_nothing_lost_under_timeouts_unbounded)
{
    nothing_lost(0);
}
