// SPDX-License-Identifier: MIT
/* Audit 7: coroutines parked in socket calls, cancelled (abort, deadline,
 * shutdown), on both backends (the net suite runs again with io_uring,
 * whose receives land in weft's own buffers before a read takes them):
 * what weft/coro.h promises must hold there too -- a cancelled weft_co_read
 * takes no byte (the next read gets every byte, in order), a cancelled
 * weft_co_recv_from loses no datagram and keeps each datagram whole, and a
 * runtime shut down under a parked read leaks nothing. The checks read
 * through weft, never around it. */
#include "net_test.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft/coro.h"

#define WAIT_MS 20000u

typedef struct rd_ctx {
    weft_socket *s;
    int mode;                         /* 0: abort, 1: deadline */
    atomic_int parked;
    long first, later;
} rd_ctx;

static int parked_read(void *arg)
{
    rd_ctx *c = arg;
    char buf[64];

    if (c->mode == 1)
        weft_co_deadline_set(weft_now_ms() + 30);
    atomic_store(&c->parked, 1);
    c->first = weft_co_read(c->s, buf, sizeof(buf));
    c->later = weft_co_read(c->s, buf, sizeof(buf));
    return 0;
}

typedef struct next_ctx {
    weft_socket *s;
    char got[64];
    long n;
} next_ctx;

static int read_all_of(void *arg)
{
    next_ctx *c = arg;

    c->n = weft_co_read_exact(c->s, c->got, 6);
    return 0;
}

static void cancelled_read_takes_nothing(int mode)
{
    weft_runtime *rt = NULL;
    int sv[2];
    rd_ctx c = { 0 };
    next_ctx n = { 0 };
    weft_join *j = NULL;
    int out = 0;
    long live0 = harness_live();

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    ASSERT_OK(weft_socket_adopt(rt, sv[0], &c.s));
    c.mode = mode;
    ASSERT_EQ(3, write(sv[1], "abc", 3));
    {
        /* warm up: a read that has waited (on io_uring the socket then
         * receives into weft's buffers) */
        next_ctx w = { .s = c.s };
        weft_join *wj = NULL;

        ASSERT_OK(weft_go(rt, read_all_of, &w, &wj));
        usleep(10000);
        ASSERT_EQ(3, write(sv[1], "def", 3));
        ASSERT_OK(weft_join_wait(wj, &out));
        weft_join_drop(wj);
        ASSERT_EQ(6, w.n);
    }
    ASSERT_OK(weft_go(rt, parked_read, &c, &j));
    ASSERT(harness_wait_flag((volatile int *)&c.parked, WAIT_MS));
    if (mode == 0) {
        usleep(10000);                    /* most likely parked in the read */
        weft_join_abort(j);
        ASSERT_EQ(-ECANCELED, weft_join_wait(j, &out));
        ASSERT_EQ(-ECANCELED, c.first);
        ASSERT_EQ(-ECANCELED, c.later);
    } else {
        ASSERT_OK(weft_join_wait(j, &out));
        ASSERT_EQ(-ETIMEDOUT, c.first);
        ASSERT_EQ(-ETIMEDOUT, c.later);
    }
    weft_join_drop(j);
    /* the bytes that come now are all there for the next read, in order */
    ASSERT_EQ(3, write(sv[1], "def", 3));
    ASSERT_EQ(3, write(sv[1], "ghi", 3));
    n.s = c.s;
    ASSERT_OK(weft_co_block_on(rt, read_all_of, &n, NULL, &out));
    ASSERT_EQ(6, n.n);
    ASSERT_EQ(0, memcmp(n.got, "defghi", 6));
    ASSERT_OK(weft_socket_close(c.s));
    close(sv[1]);
    weft_runtime_free(rt);
    ASSERT_EQ(live0, harness_live());
}

TEST(aborted_co_read_takes_no_byte)
{
    cancelled_read_takes_nothing(0);
}

TEST(timed_out_co_read_takes_no_byte)
{
    cancelled_read_takes_nothing(1);
}

/* ---- UDP ------------------------------------------------------------------------- */
typedef struct udp_ctx {
    weft_socket *u;
    atomic_int parked;
    long first;
    long n[2];
    char got[2][16];
    struct sockaddr_storage from[2];
    socklen_t fromlen[2];
} udp_ctx;

static int parked_recv(void *arg)
{
    udp_ctx *c = arg;
    char buf[16];

    atomic_store(&c->parked, 1);
    c->first = weft_co_recv_from(c->u, buf, sizeof(buf), NULL, NULL);
    return 0;
}

static int recv_two(void *arg)
{
    udp_ctx *c = arg;

    for (int i = 0; i < 2; i++) {
        c->fromlen[i] = sizeof(c->from[i]);
        c->n[i] = weft_co_recv_from(c->u, c->got[i], sizeof(c->got[i]), &c->from[i],
                                    &c->fromlen[i]);
    }
    return 0;
}

TEST(aborted_co_recv_from_loses_no_datagram)
{
    weft_runtime *rt = NULL;
    udp_ctx c = { 0 };
    struct sockaddr_storage a, me;
    socklen_t len, melen = sizeof(me);
    weft_join *j = NULL;
    int out = 0, fd;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &a, &len));
    ASSERT_OK(weft_udp_bind(rt, (struct sockaddr *)&a, len, &c.u));
    len = sizeof(a);
    ASSERT_OK(weft_socket_local_addr(c.u, &a, &len));
    ASSERT_OK(weft_go(rt, parked_recv, &c, &j));
    ASSERT(harness_wait_flag((volatile int *)&c.parked, WAIT_MS));
    usleep(10000);
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &out));
    ASSERT_EQ(-ECANCELED, c.first);
    weft_join_drop(j);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    ASSERT_EQ(0, bind(fd, (struct sockaddr *)&(struct sockaddr_in){ .sin_family = AF_INET,
                                                                    .sin_addr.s_addr =
                                                                        htonl(0x7f000001) },
                      sizeof(struct sockaddr_in)));
    ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)&me, &melen));
    ASSERT_EQ(5, sendto(fd, "first", 5, 0, (struct sockaddr *)&a, len));
    ASSERT_EQ(6, sendto(fd, "second", 6, 0, (struct sockaddr *)&a, len));
    ASSERT_OK(weft_co_block_on(rt, recv_two, &c, NULL, &out));
    ASSERT_EQ(5, c.n[0]);
    ASSERT_EQ(0, memcmp(c.got[0], "first", 5));
    ASSERT_EQ(6, c.n[1]);
    ASSERT_EQ(0, memcmp(c.got[1], "second", 6));
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ((long)melen, (long)c.fromlen[i]);
        ASSERT_EQ(0, memcmp(&c.from[i], &me, melen));
    }
    close(fd);
    ASSERT_OK(weft_socket_close(c.u));
    weft_runtime_free(rt);
}

/* ---- shutdown under a parked read: nothing left ------------------------------------- */
TEST(shutdown_under_parked_reads_leaks_nothing)
{
    weft_runtime *rt = NULL;
    enum { K = 8 };
    int sv[K][2];
    rd_ctx c[K];
    weft_join *j[K];
    long live0 = harness_live();
    int out = 0;

    memset(c, 0, sizeof(c));
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    for (int i = 0; i < K; i++) {
        ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]));
        ASSERT_OK(weft_socket_adopt(rt, sv[i][0], &c[i].s));
        ASSERT_OK(weft_go(rt, parked_read, &c[i], &j[i]));
    }
    for (int i = 0; i < K; i++)
        ASSERT(harness_wait_flag((volatile int *)&c[i].parked, WAIT_MS));
    usleep(10000);
    ASSERT_OK(weft_runtime_shutdown(rt));
    for (int i = 0; i < K; i++) {
        ASSERT_EQ(-ECANCELED, weft_join_try(j[i], &out));
        ASSERT_EQ(-ECANCELED, c[i].first);
        ASSERT_EQ(-ECANCELED, c[i].later);
        weft_join_drop(j[i]);
        ASSERT_OK(weft_socket_close(c[i].s));
        close(sv[i][1]);
    }
    weft_runtime_free(rt);
    ASSERT_EQ(live0, harness_live());
}
