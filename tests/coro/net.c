/* SPDX-License-Identifier: MIT */
/* Sockets from coroutines: an echo server written in blocking style (one
 * coroutine accepts, one per connection), clients as coroutines; aborting
 * a coroutine parked in a read. */
#include "coro_test.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct server {
    weft_socket *listener;
    struct sockaddr_storage addr;
    socklen_t len;
    atomic_int sessions;
};

static int session(void *arg)
{
    weft_socket *s = arg;
    char buf[512];
    ssize_t n;

    while ((n = weft_co_read(s, buf, sizeof(buf))) > 0)
        if (weft_co_write_all(s, buf, (size_t)n) < 0)
            break;
    weft_socket_close(s);
    return n < 0 ? (int)n : 0;
}

static int acceptor(void *arg)
{
    struct server *sv = arg;
    weft_socket *s;
    int err;

    while ((err = weft_co_accept(sv->listener, &s)) == 0) {
        atomic_fetch_add(&sv->sessions, 1);
        ASSERT_OK(weft_go_detached(weft_runtime_current(), session, s));
    }
    return err;                     /* -ECANCELED when aborted */
}

struct client {
    struct server *sv;
    int id;
};

static int client(void *arg)
{
    struct client *c = arg;
    weft_socket *s;
    char msg[64], back[64];

    ASSERT_OK(weft_co_connect(NULL, (struct sockaddr *)&c->sv->addr, c->sv->len, 5000, &s));
    for (int round = 0; round < 20; round++) {
        int len = snprintf(msg, sizeof(msg), "client %d round %d", c->id, round);

        ASSERT_EQ(len, weft_co_write_all(s, msg, (size_t)len));
        ASSERT_EQ(len, weft_co_read_exact(s, back, (size_t)len));
        ASSERT_EQ(0, memcmp(msg, back, (size_t)len));
    }
    weft_socket_close(s);
    return c->id;
}

TEST(echo_server_in_blocking_style)
{
    weft_runtime *rt = ct_runtime(2);
    struct server sv = { 0 };
    struct client cs[16];
    weft_join *acc, *js[16];
    int n = 16;

    sv.len = sizeof(sv.addr);
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &sv.addr, &sv.len));
    ASSERT_OK(weft_listen(rt, (struct sockaddr *)&sv.addr, sv.len, 0, &sv.listener));
    sv.len = sizeof(sv.addr);
    ASSERT_OK(weft_socket_local_addr(sv.listener, &sv.addr, &sv.len));
    ASSERT_OK(weft_go(rt, acceptor, &sv, &acc));
    for (int i = 0; i < n; i++) {
        cs[i] = (struct client){ &sv, i };
        ASSERT_OK(weft_go(rt, client, &cs[i], &js[i]));
    }
    for (int i = 0; i < n; i++) {
        int out = -1;

        ASSERT_OK(weft_join_wait(js[i], &out));
        ASSERT_EQ(i, out);
        weft_join_drop(js[i]);
    }
    ASSERT_EQ(n, atomic_load(&sv.sessions));
    weft_join_abort(acc);                       /* parked in accept */
    ASSERT_EQ(-ECANCELED, weft_join_wait(acc, NULL));
    weft_join_drop(acc);
    weft_socket_close(sv.listener);
    CT_FREE(rt);
}

static atomic_int read_result;

static int reads_forever(void *arg)
{
    char c;

    atomic_store(&read_result, (int)weft_co_read(arg, &c, 1));
    return 0;
}

TEST(abort_parked_in_read)
{
    weft_runtime *rt = ct_runtime(2);
    int fds[2];
    weft_socket *s;
    weft_join *j;

    atomic_store(&read_result, 1);
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
    ASSERT_OK(weft_socket_adopt(rt, fds[0], &s));
    ASSERT_OK(weft_go(rt, reads_forever, s, &j));
    usleep(10000);
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
    ASSERT_EQ(-ECANCELED, atomic_load(&read_result));
    weft_join_drop(j);
    weft_socket_close(s);
    close(fds[1]);
    CT_FREE(rt);
}

/* The socket descriptors of weft/net.h work with weft_co_await directly. */
static int read_by_descriptor(void *arg)
{
    weft_read rd;
    char buf[16] = { 0 };
    ssize_t n = -1;

    weft_read_init(&rd, arg, buf, sizeof(buf));
    ASSERT_OK(weft_co_await(&weft_io_op_future, &rd, &n));
    ASSERT_EQ(5, n);
    ASSERT_EQ(0, memcmp(buf, "hello", 5));
    return (int)n;
}

TEST(await_a_socket_descriptor)
{
    weft_runtime *rt = ct_runtime(2);
    int fds[2], out = 0;
    weft_socket *s;
    weft_join *j;

    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
    ASSERT_OK(weft_socket_adopt(rt, fds[0], &s));
    ASSERT_OK(weft_go(rt, read_by_descriptor, s, &j));
    usleep(5000);                                   /* usually parked by now */
    ASSERT_EQ(5, write(fds[1], "hello", 5));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(5, out);
    weft_join_drop(j);
    weft_socket_close(s);
    close(fds[1]);
    CT_FREE(rt);
}
