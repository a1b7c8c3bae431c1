/* SPDX-License-Identifier: MIT */
/* Audit 9 of weft/coro.h with weft/net.h: a coroutine of one runtime that
 * connects through another runtime (weft_co_connect(rt, ...)) and is parked
 * reading that socket when the other runtime is freed: the read returns
 * -ESHUTDOWN (net.h: "a future still waiting in a task of another runtime
 * at that moment is woken to see it"), and the socket still closes. Both
 * backends (the uring. twin). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#define WAIT_MS 20000u

typedef struct xrt {
    weft_runtime *b;
    struct sockaddr_in addr;
    weft_socket *conn;
    atomic_int connect_result, connected, read_result, done;
} xrt;

static int reader(void *arg)
{
    xrt *c = arg;
    char buf[16];
    int r = weft_co_connect(c->b, (struct sockaddr *)&c->addr, sizeof(c->addr), 0, &c->conn);

    atomic_store(&c->connect_result, r);
    atomic_store(&c->connected, 1);
    if (r < 0)
        return r;
    atomic_store(&c->read_result, (int)weft_co_read(c->conn, buf, sizeof(buf)));
    atomic_store(&c->done, 1);
    return 0;
}

static void wait_flag(atomic_int *f)
{
    uint64_t t0 = weft_now_ms();

    while (atomic_load(f) == 0) {
        ASSERT(weft_now_ms() - t0 < WAIT_MS);
        usleep(1000);
    }
}

TEST(a_coroutine_reading_a_socket_of_another_runtime_gets_eshutdown_when_that_runtime_is_freed)
{
    weft_runtime *a = NULL;
    weft_socket *l;
    socklen_t len;
    weft_join *j;
    xrt c;
    int peer = -1, out = -1;
    uint64_t t0;

    memset(&c, 0, sizeof(c));
    atomic_store(&c.read_result, 1);
    ASSERT_OK(weft_runtime_new(&a, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_runtime_new(&c.b, &(weft_runtime_options){ .workers = 1 }));
    c.addr.sin_family = AF_INET;
    c.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_OK(weft_listen(c.b, (struct sockaddr *)&c.addr, sizeof(c.addr), 0, &l));
    len = sizeof(c.addr);
    ASSERT_OK(weft_socket_local_addr(l, (struct sockaddr_storage *)(void *)&c.addr, &len));
    ASSERT_OK(weft_go(a, reader, &c, &j));
    wait_flag(&c.connected);
    ASSERT_OK(atomic_load(&c.connect_result));
    /* the peer, accepted by hand (the listener is non-blocking: retry) */
    t0 = weft_now_ms();
    while ((peer = accept(weft_socket_fd(l), NULL, NULL)) < 0) {
        ASSERT(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
        ASSERT(weft_now_ms() - t0 < WAIT_MS);
        usleep(1000);
    }
    /* the read may or may not be parked yet: either way it ends -ESHUTDOWN
     * (parked: woken by the free; not yet: at its first poll) */
    weft_runtime_free(c.b);
    wait_flag(&c.done);
    ASSERT_EQ(-ESHUTDOWN, atomic_load(&c.read_result));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(0, out);
    weft_join_drop(j);
    ASSERT_OK(weft_socket_close(c.conn));
    ASSERT_OK(weft_socket_close(l));
    close(peer);
    weft_runtime_free(a);
}
