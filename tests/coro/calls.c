/* SPDX-License-Identifier: MIT */
/* The blocking-style calls of weft/coro.h's second part: select (over
 * channel receives and over any futures), watch and broadcast receives,
 * UDP recv_from / send_to, the blocking pool, and the coroutine deadline.
 * Each call is driven four ways: it completes (after parking), its
 * coroutine is aborted while parked (-ECANCELED), its deadline passes
 * (-ETIMEDOUT, and nothing is lost: the next call gets what comes next),
 * and the runtime shuts down while it is parked (-ECANCELED). The stress
 * build (WEFT_STRESS=1) makes every leaf future return PENDING once first. */
#include "coro_test.h"

#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

enum kind { K_CHAN_SELECT, K_SELECT, K_WATCH, K_BCAST, K_RECV_FROM, K_BLOCKING, K_COUNT };
enum mode { M_COMPLETE, M_ABORT, M_TIMEOUT, M_SHUTDOWN, M_ABORT_DL };

static const char *const kind_name[K_COUNT] = { "chan_select", "select", "watch", "bcast",
                                                "recv_from", "blocking" };

struct env {
    enum kind kind;
    enum mode mode;
    weft_runtime *rt;
    weft_chan *ch[3];
    weft_watch *w;
    weft_watch_rx *wrx;
    weft_bcast *b;
    weft_bcast_rx *brx;
    weft_socket *ua, *ub;           /* ub sends to ua */
    struct sockaddr_storage a_addr;
    socklen_t a_len;
    weft_blocking_pool *pool;
    atomic_int gate;                /* the blocking job waits for it */
    atomic_int job_ran;
    atomic_int parked;              /* about to make the call */
    atomic_int done;
    int result;                     /* the call's */
    int value;                      /* what it received */
    size_t which;
    int second;                     /* after a timeout: the next call's result */
    int second_value;
};

static void *job(void *arg)
{
    struct env *e = arg;

    while (!atomic_load(&e->gate))
        usleep(500);
    atomic_fetch_add(&e->job_ran, 1);
    return (void *)(uintptr_t)77;
}

/* one call of e->kind; the received value in *v */
static int call(struct env *e, int *v)
{
    switch (e->kind) {
    case K_CHAN_SELECT: {
        void *dsts[3] = { v, v, v };
        int r = weft_co_chan_select(e->ch, dsts, 3, &e->which);

        return r;
    }
    case K_SELECT: {
        weft_chan_recv r0;
        weft_sleep sl;
        int out0 = -1;
        weft_future_ref refs[2] = { { &weft_chan_recv_future, &r0, &out0, 0 },
                                    { &weft_sleep_future, &sl, NULL, 0 } };
        int r;

        weft_chan_recv_init(&r0, e->ch[0], v);
        weft_sleep_init(&sl, 3600 * 1000);
        r = weft_co_select(refs, 2);
        if (r == 0)
            return out0;
        return r < 0 ? r : -EPROTO;
    }
    case K_WATCH:
        return weft_co_watch_changed(e->wrx, v);
    case K_BCAST:
        return weft_co_bcast_recv(e->brx, v, NULL);
    case K_RECV_FROM: {
        struct sockaddr_storage from;
        socklen_t flen = sizeof(from);
        ssize_t n = weft_co_recv_from(e->ua, v, sizeof(*v), &from, &flen);

        if (n < 0)
            return (int)n;
        return n == (ssize_t)sizeof(*v) && flen > 0 ? 0 : -EPROTO;
    }
    case K_BLOCKING: {
        void *ret = NULL;
        int r = weft_co_blocking(e->pool, job, e, &ret);

        *v = (int)(uintptr_t)ret;
        return r;
    }
    default:
        return -EPROTO;
    }
}

/* make the parked call complete with value `v` */
static void deliver(struct env *e, int v)
{
    switch (e->kind) {
    case K_CHAN_SELECT:
        ASSERT_OK(weft_chan_try_send(e->ch[2], &v));
        break;
    case K_SELECT:
        ASSERT_OK(weft_chan_try_send(e->ch[0], &v));
        break;
    case K_WATCH:
        ASSERT_OK(weft_watch_send(e->w, &v));
        break;
    case K_BCAST:
        ASSERT_OK(weft_bcast_send(e->b, &v));
        break;
    case K_RECV_FROM: {
        ssize_t n = sendto(weft_socket_fd(e->ub), &v, sizeof(v), 0,
                           (const struct sockaddr *)&e->a_addr, e->a_len);

        ASSERT_EQ((ssize_t)sizeof(v), n);
        break;
    }
    case K_BLOCKING:
        atomic_store(&e->gate, 1);
        break;
    default:
        break;
    }
}

static int caller(void *arg)
{
    struct env *e = arg;

    if (e->mode == M_TIMEOUT) {
        uint64_t old = weft_co_deadline_set(weft_now_ms() + 30);

        ASSERT_EQ(0, (long)old);
    } else if (e->mode == M_ABORT_DL) {
        /* parked with a deadline's timer registered on this stack: the
         * abort must unregister it before the stack is released */
        weft_co_deadline_set(weft_now_ms() + 60000);
    }
    atomic_store(&e->parked, 1);
    e->result = call(e, &e->value);
    if (e->mode == M_TIMEOUT) {
        ASSERT(weft_co_deadline_set(0) != 0);
        /* nothing was lost: the next call gets the next delivery */
        atomic_store(&e->parked, 2);
        e->second = call(e, &e->second_value);
    }
    atomic_store(&e->done, 1);
    return 0;
}

static void env_setup(struct env *e, enum kind k, enum mode m)
{
    struct sockaddr_in lo = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int zero = 0;

    memset(e, 0, sizeof(*e));
    e->kind = k;
    e->mode = m;
    e->rt = ct_runtime(2);
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_chan_new(&e->ch[i], sizeof(int), 4));
    ASSERT_OK(weft_watch_new(&e->w, sizeof(int), &zero));
    ASSERT_OK(weft_watch_rx_new(&e->wrx, e->w));
    ASSERT_OK(weft_bcast_new(&e->b, sizeof(int), 8));
    ASSERT_OK(weft_bcast_rx_new(&e->brx, e->b));
    ASSERT_OK(weft_udp_bind(e->rt, (struct sockaddr *)&lo, sizeof(lo), &e->ua));
    ASSERT_OK(weft_udp_bind(e->rt, (struct sockaddr *)&lo, sizeof(lo), &e->ub));
    e->a_len = sizeof(e->a_addr);
    ASSERT_OK(weft_socket_local_addr(e->ua, &e->a_addr, &e->a_len));
    ASSERT_OK(weft_blocking_pool_new(&e->pool, &(weft_blocking_options){ .max_threads = 2 }));
}

static void env_teardown(struct env *e)
{
    if (e->rt)
        CT_FREE(e->rt);
    atomic_store(&e->gate, 1);
    weft_blocking_pool_free(e->pool);       /* waits for a job left running */
    weft_socket_close(e->ua);
    weft_socket_close(e->ub);
    weft_bcast_rx_drop(e->brx);
    weft_bcast_drop(e->b);
    weft_watch_rx_drop(e->wrx);
    weft_watch_drop(e->w);
    for (int i = 0; i < 3; i++)
        weft_chan_drop(e->ch[i]);
}

static void run_case(enum kind k, enum mode m)
{
    struct env *e = calloc(1, sizeof(*e));
    weft_join *j;

    ASSERT(e != NULL);
    fprintf(stderr, "case %s mode %d\n", kind_name[k], (int)m);
    env_setup(e, k, m);
    ASSERT_OK(weft_go(e->rt, caller, e, &j));
    ASSERT(harness_wait_flag((volatile int *)&e->parked, 10000));
    usleep(20000);                          /* most likely parked by now */
    switch (m) {
    case M_COMPLETE:
        deliver(e, 42);
        ASSERT_OK(weft_join_wait(j, NULL));
        ASSERT_OK(e->result);
        ASSERT_EQ(k == K_BLOCKING ? 77 : 42, e->value);
        if (k == K_CHAN_SELECT)
            ASSERT_EQ(2, (int)e->which);
        break;
    case M_ABORT:
    case M_ABORT_DL:
        weft_join_abort(j);
        ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
        ASSERT(harness_wait_flag((volatile int *)&e->done, 10000));
        ASSERT_EQ(-ECANCELED, e->result);
        break;
    case M_TIMEOUT:
        /* the deadline passes (30 ms), then the second call parks */
        for (int i = 0; i < 10000 && atomic_load(&e->parked) != 2; i++)
            usleep(1000);
        ASSERT_EQ(2, atomic_load(&e->parked));
        ASSERT_EQ(-ETIMEDOUT, e->result);
        deliver(e, 43);
        ASSERT_OK(weft_join_wait(j, NULL));
        ASSERT_OK(e->second);
        ASSERT_EQ(k == K_BLOCKING ? 77 : 43, e->second_value);
        break;
    case M_SHUTDOWN:
        weft_join_drop(j);
        j = NULL;
        CT_FREE(e->rt);
        e->rt = NULL;
        ASSERT_EQ(1, atomic_load(&e->done));
        ASSERT_EQ(-ECANCELED, e->result);
        break;
    }
    if (j)
        weft_join_drop(j);
    env_teardown(e);
    if (k == K_BLOCKING && (m == M_COMPLETE || m == M_TIMEOUT))
        ASSERT(atomic_load(&e->job_ran) >= 1);
    free(e);
}

static void all_modes(enum kind k)
{
    run_case(k, M_COMPLETE);
    run_case(k, M_ABORT);
    run_case(k, M_TIMEOUT);
    run_case(k, M_SHUTDOWN);
    run_case(k, M_ABORT_DL);
}

TEST(chan_select)
{
    all_modes(K_CHAN_SELECT);
}

TEST(select_over_futures)
{
    all_modes(K_SELECT);
}

TEST(watch_changed)
{
    all_modes(K_WATCH);
}

TEST(bcast_recv)
{
    all_modes(K_BCAST);
}

TEST(udp_recv_from)
{
    all_modes(K_RECV_FROM);
}

TEST(blocking_pool_call)
{
    all_modes(K_BLOCKING);
}

/* ---- deadlines, select and the rest: edges --------------------------------------- */
static int deadline_edges(void *arg)
{
    weft_chan *ch = arg;
    uint64_t t0;
    int v = 0;

    ASSERT_EQ(0, (long)weft_co_deadline());
    /* a deadline in the past: a call that need not wait still completes */
    weft_co_deadline_set(1);
    ASSERT_EQ(1, (long)weft_co_deadline());
    ASSERT_OK(weft_co_chan_recv(ch, &v));
    ASSERT_EQ(5, v);
    /* ... and one that must wait times out at once */
    ASSERT_EQ(-ETIMEDOUT, weft_co_chan_recv(ch, &v));
    ASSERT_EQ(-ETIMEDOUT, weft_co_sleep(1000));
    /* a yield is not a wait for something: the deadline does not apply */
    ASSERT_OK(weft_co_yield());
    /* a future deadline bounds a sleep */
    t0 = weft_now_ms();
    weft_co_deadline_set(t0 + 20);
    ASSERT_EQ(-ETIMEDOUT, weft_co_sleep(5000));
    ASSERT(weft_now_ms() >= t0 + 20);
    /* a sleep shorter than the deadline completes */
    weft_co_deadline_set(weft_now_ms() + 5000);
    ASSERT_OK(weft_co_sleep(1));
    /* weft_co_await_timeout inside a deadline: the nearer wins */
    {
        weft_sleep s;

        weft_sleep_init(&s, 5000);
        ASSERT_EQ(-ETIMEDOUT, weft_co_await_timeout(&weft_sleep_future, &s, NULL, 10));
    }
    ASSERT(weft_co_deadline_set(0) != 0);
    ASSERT_OK(weft_co_sleep(1));
    return 9;
}

TEST(deadline_edges)
{
    weft_runtime *rt = ct_runtime(2);
    weft_chan *ch;
    int five = 5, out = 0;

    ASSERT_EQ(0, (long)weft_co_deadline_set(123));       /* not a coroutine: nothing */
    ASSERT_EQ(0, (long)weft_co_deadline());
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 2));
    ASSERT_OK(weft_chan_try_send(ch, &five));
    ASSERT_OK(weft_co_block_on(rt, deadline_edges, ch, NULL, &out));
    ASSERT_EQ(9, out);
    weft_chan_drop(ch);
    CT_FREE(rt);
}

#define MANY 20

static int select_many(void *arg)
{
    weft_chan **chans = arg;
    int vals[MANY];
    void *dsts[MANY];
    size_t which = 99;

    for (int i = 0; i < MANY; i++)
        dsts[i] = &vals[i];
    /* channel 13 has a message, 17 is closed: the lowest ready index wins
     * (under WEFT_STRESS a leaf may be refused once, so 17 may come first) */
    for (int i = 0;; i++) {
        int r = weft_co_chan_select(chans, dsts, MANY, &which);

        ASSERT(i < 100);
        if (r == 0) {
            ASSERT_EQ(13, (int)which);
            ASSERT_EQ(1313, vals[13]);
            break;
        }
        ASSERT_EQ(-EPIPE, r);
        ASSERT_EQ(17, (int)which);
        ASSERT(harness_stress());
    }
    ASSERT_EQ(-EPIPE, weft_co_chan_select(chans, dsts, MANY, &which));
    ASSERT_EQ(17, (int)which);
    /* bad arguments: nothing received */
    ASSERT_EQ(-EINVAL, weft_co_chan_select(chans, dsts, 0, &which));
    ASSERT_EQ(-EINVAL, weft_co_chan_select(NULL, dsts, 2, &which));
    ASSERT_EQ(-EINVAL, weft_co_chan_select(chans, NULL, 2, &which));
    ASSERT_EQ(-EINVAL, weft_co_chan_select(chans, dsts, 2, NULL));
    ASSERT_EQ(-EINVAL, weft_co_chan_select(chans, dsts, WEFT_CO_SELECT_MAX + 1, &which));
    dsts[1] = NULL;
    ASSERT_EQ(-EINVAL, weft_co_chan_select(chans, dsts, 2, &which));
    ASSERT_EQ(-EINVAL, weft_co_select(NULL, 1));
    /* inline path too (3 channels): 0 and 1 empty, 2 has one */
    dsts[1] = &vals[1];
    weft_co_deadline_set(weft_now_ms() + 20);
    ASSERT_EQ(-ETIMEDOUT, weft_co_chan_select(chans, dsts, 3, &which));
    weft_co_deadline_set(0);
    return 0;
}

TEST(chan_select_edges)
{
    weft_runtime *rt = ct_runtime(2);
    weft_chan *chans[MANY];
    int v = 1313, out = -1, which_dummy = 0;
    size_t which;
    void *dsts[1] = { &which_dummy };

    for (int i = 0; i < MANY; i++)
        ASSERT_OK(weft_chan_new(&chans[i], sizeof(int), 2));
    ASSERT_OK(weft_chan_try_send(chans[13], &v));
    weft_chan_close(chans[17]);
    /* not a coroutine */
    ASSERT_EQ(-EINVAL, weft_co_chan_select(chans, dsts, 1, &which));
    ASSERT_OK(weft_co_block_on(rt, select_many, chans, NULL, &out));
    ASSERT_EQ(0, out);
    for (int i = 0; i < MANY; i++)
        weft_chan_drop(chans[i]);
    CT_FREE(rt);
}

static void *triple(void *arg)
{
    return (void *)((uintptr_t)arg * 3);
}

static int misc_calls(void *arg)
{
    struct env *e = arg;
    void *ret = NULL;
    int v = 99, got = 0;
    struct sockaddr_storage from;
    socklen_t flen = sizeof(from);

    /* the runtime's default pool */
    ASSERT_OK(weft_co_blocking(NULL, triple, (void *)(uintptr_t)14, &ret));
    ASSERT_EQ(42, (int)(uintptr_t)ret);
    ASSERT_EQ(-EINVAL, weft_co_blocking(NULL, NULL, NULL, &ret));
    /* send_to, then recv_from on the other socket */
    ASSERT_EQ((ssize_t)sizeof(v), weft_co_send_to(e->ub, &v, sizeof(v),
                                                  (const struct sockaddr *)&e->a_addr, e->a_len));
    ASSERT_EQ((ssize_t)sizeof(got), weft_co_recv_from(e->ua, &got, sizeof(got), &from, &flen));
    ASSERT_EQ(99, got);
    ASSERT(flen > 0);
    ASSERT_EQ(-EBADF, weft_co_recv_from(NULL, &got, sizeof(got), NULL, NULL));
    /* closed watch: its last value already seen */
    weft_watch_close(e->w);
    ASSERT_EQ(-EPIPE, weft_co_watch_changed(e->wrx, &got));
    ASSERT_EQ(-EINVAL, weft_co_watch_changed(NULL, &got));
    /* broadcast lag: 8 slots, 10 sent */
    for (int i = 0; i < 10; i++)
        ASSERT_OK(weft_bcast_send(e->b, &i));
    {
        uint64_t missed = 0;

        ASSERT_EQ(-EOVERFLOW, weft_co_bcast_recv(e->brx, &got, &missed));
        ASSERT_EQ(2, (int)missed);
        ASSERT_OK(weft_co_bcast_recv(e->brx, &got, NULL));
        ASSERT_EQ(2, got);
    }
    return 0;
}

static int default_pool_call(void *arg)
{
    void *ret = NULL;

    (void)arg;
    ASSERT_OK(weft_co_blocking(NULL, triple, (void *)(uintptr_t)5, &ret));
    return (int)(uintptr_t)ret;
}

TEST(blocking_call_on_a_current_thread_runtime)
{
    weft_runtime *rt = ct_current_thread();
    int out = 0;

    ASSERT_OK(weft_co_block_on(rt, default_pool_call, NULL, NULL, &out));
    ASSERT_EQ(15, out);
    CT_FREE(rt);
}

TEST(misc_calls)
{
    struct env *e = calloc(1, sizeof(*e));
    int out = -1;

    ASSERT(e != NULL);
    env_setup(e, K_COUNT, M_COMPLETE);
    ASSERT_OK(weft_co_block_on(e->rt, misc_calls, e, NULL, &out));
    ASSERT_EQ(0, out);
    /* outside a coroutine */
    ASSERT_EQ(-EINVAL, weft_co_blocking(NULL, triple, NULL, NULL));
    ASSERT_EQ(-EINVAL, (int)weft_co_recv_from(e->ua, &out, sizeof(out), NULL, NULL));
    ASSERT_EQ(-EINVAL, weft_co_bcast_recv(e->brx, &out, NULL));
    env_teardown(e);
    free(e);
}
