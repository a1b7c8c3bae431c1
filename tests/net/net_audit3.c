/* SPDX-License-Identifier: MIT */
/* Third audit of weft/net.h: the documented way to stop a task that keeps
 * calling a socket (shutdown(SHUT_RDWR): its reads see end of stream, its
 * writes -EPIPE), results after end of stream, UDP truncation, Unix paths
 * that exist already or do not exist, a listener's peer address. Every
 * operation runs as a bare task (weft_io_op_future) joined from the test's
 * thread; a hang shows as the ctest timeout. */
#include "net_test.h"

/* Give a spawned operation time to park (not an assertion: the result is
 * the same if it has not). */
static void let_it_park(void)
{
    struct timespec ts = { 0, 30 * 1000 * 1000 };

    nanosleep(&ts, NULL);
}

/* net.h: "weft_socket_shutdown(s, SHUT_RDWR) makes its reads see end of
 * stream and its writes -EPIPE" -- for operations already waiting too. */
static void check_shutdown_ends_waiting_ops(void)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a, *b;
    weft_io_op op;
    weft_join *jr, *jw;
    char buf[16];
    size_t big = 16u << 20;
    char *data = calloc(1, big);

    ASSERT(data != NULL);
    nt_tcp_pair(rt, &a, &b);
    nt_small_buffers(weft_socket_fd(a));
    nt_small_buffers(weft_socket_fd(b));
    weft_read_init(&op, a, buf, sizeof(buf));
    jr = nt_spawn_op(rt, &op);
    weft_write_all_init(&op, a, data, big);         /* b never reads: it blocks */
    jw = nt_spawn_op(rt, &op);
    let_it_park();
    ASSERT_OK(weft_socket_shutdown(a, SHUT_RDWR));
    ASSERT_EQ(0, nt_join_op(jr));
    ASSERT_EQ(-EPIPE, nt_join_op(jw));
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
    free(data);
}

TEST(shutdown_rdwr_ends_waiting_read_and_write_multi_thread)
{
    check_shutdown_ends_waiting_ops();
}

/* Reads after end of stream keep reporting it; a second read future too. */
TEST(reads_after_end_of_stream_report_it_again)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a, *b;
    weft_io_op op;
    char buf[8];

    nt_tcp_pair(rt, &a, &b);
    ASSERT_OK(weft_socket_shutdown(b, SHUT_WR));
    for (int i = 0; i < 3; i++) {
        weft_read_init(&op, a, buf, sizeof(buf));
        ASSERT_EQ(0, nt_join_op(nt_spawn_op(rt, &op)));
    }
    weft_read_exact_init(&op, a, buf, sizeof(buf));
    ASSERT_EQ(-EPIPE, nt_join_op(nt_spawn_op(rt, &op)));
    /* the other direction still works after the peer's half-close */
    weft_write_all_init(&op, a, "hello", 5);
    ASSERT_EQ(5, nt_join_op(nt_spawn_op(rt, &op)));
    weft_read_exact_init(&op, b, buf, 5);
    ASSERT_EQ(5, nt_join_op(nt_spawn_op(rt, &op)));
    ASSERT_EQ(0, memcmp(buf, "hello", 5));
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}

/* net.h: "recv_from's output is its length (truncated to len)"; the rest
 * of the datagram is gone, the next datagram is whole. */
TEST(udp_recv_from_truncates_to_len)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr, from;
    socklen_t len, fromlen = sizeof(from);
    weft_socket *u, *v;
    weft_io_op op;
    char big[100], buf[100];

    nt_fill(big, sizeof(big), 3);
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &addr, &len));
    ASSERT_OK(weft_udp_bind(rt, (struct sockaddr *)&addr, len, &u));
    ASSERT_OK(weft_udp_bind(rt, (struct sockaddr *)&addr, len, &v));
    len = sizeof(addr);
    ASSERT_OK(weft_socket_local_addr(u, &addr, &len));
    weft_send_to_init(&op, v, big, sizeof(big), (struct sockaddr *)&addr, len);
    ASSERT_EQ(100, nt_join_op(nt_spawn_op(rt, &op)));
    weft_send_to_init(&op, v, "xyz", 3, (struct sockaddr *)&addr, len);
    ASSERT_EQ(3, nt_join_op(nt_spawn_op(rt, &op)));
    weft_recv_from_init(&op, u, buf, 10, &from, &fromlen);
    ASSERT_EQ(10, nt_join_op(nt_spawn_op(rt, &op)));
    ASSERT_EQ(10, nt_check(buf, 10, 3, 0));
    ASSERT_EQ(AF_INET, from.ss_family);
    weft_recv_from_init(&op, u, buf, sizeof(buf), NULL, NULL);
    ASSERT_EQ(3, nt_join_op(nt_spawn_op(rt, &op)));
    ASSERT_EQ(0, memcmp(buf, "xyz", 3));
    ASSERT_OK(weft_socket_close(u));
    ASSERT_OK(weft_socket_close(v));
    weft_runtime_free(rt);
}

/* net.h: "For AF_UNIX an existing socket file at the path is NOT removed:
 * -EADDRINUSE"; a connect to a path nobody listens on fails cleanly. */
TEST(unix_paths_existing_and_missing)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr;
    socklen_t len;
    weft_socket *l, *l2 = (weft_socket *)0x1, *c = (weft_socket *)0x1;
    weft_io_op op;
    char path[64];
    int r;

    snprintf(path, sizeof(path), "/tmp/weft-audit3-%d.sock", (int)getpid());
    unlink(path);
    ASSERT_OK(weft_addr_unix(path, &addr, &len));
    ASSERT_OK(weft_listen(rt, (struct sockaddr *)&addr, len, 0, &l));
    ASSERT_OK(weft_socket_close(l));
    ASSERT_EQ(-EADDRINUSE, weft_listen(rt, (struct sockaddr *)&addr, len, 0, &l2));
    ASSERT(l2 == (weft_socket *)0x1);                /* untouched on failure */
    ASSERT_EQ(0, unlink(path));
    /* nobody there */
    weft_connect_init(&op, rt, (struct sockaddr *)&addr, len, 0, &c);
    {
        weft_join *j = NULL;

        ASSERT_OK(weft_spawn(rt, &weft_connect_future, &op, &j));
        ASSERT_OK(weft_join_wait(j, &r));
        weft_join_drop(j);
    }
    ASSERT_EQ(-ENOENT, r);
    ASSERT(c == (weft_socket *)0x1);
    weft_runtime_free(rt);
}

/* An accept's peer address is the connecting socket's local address. */
TEST(accept_reports_the_peer_address)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr, peer, local;
    socklen_t len, peerlen = sizeof(peer), locallen = sizeof(local);
    weft_socket *l, *s = NULL;
    weft_io_op op;
    weft_join *j;
    int fd, r = -1;

    nt_listen(rt, &l, &addr, &len);
    fd = nt_raw_connect(&addr, len);
    ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)&local, &locallen));
    weft_accept_init(&op, l, &s, &peer, &peerlen);
    ASSERT_OK(weft_spawn(rt, &weft_accept_future, &op, &j));
    ASSERT_OK(weft_join_wait(j, &r));
    weft_join_drop(j);
    ASSERT_OK(r);
    ASSERT(s != NULL);
    ASSERT_EQ(sizeof(struct sockaddr_in), peerlen);
    ASSERT_EQ(((struct sockaddr_in *)&local)->sin_port, ((struct sockaddr_in *)&peer)->sin_port);
    ASSERT_OK(weft_socket_close(s));
    ASSERT_OK(weft_socket_close(l));
    close(fd);
    weft_runtime_free(rt);
}

/* Addresses: bad strings are -EINVAL, never a crash or a lookup. */
TEST(addr_ip_bad_strings)
{
    static const char *bad[] = { "localhost", "1.2.3", "1.2.3.4.5", "256.1.1.1", " 1.2.3.4",
                                 "1.2.3.4 ", "::g", "[::1]", "1.2.3.4:80", "::1%lo0x",
                                 "0x7f.0.0.1", "-1.0.0.0", "\xff\xfe" };
    struct sockaddr_storage a;
    socklen_t len;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT_EQ(-EINVAL, weft_addr_ip(bad[i], 80, &a, &len));
    ASSERT_OK(weft_addr_ip("::ffff:127.0.0.1", 65535, &a, &len));
    ASSERT_EQ(AF_INET6, a.ss_family);
    ASSERT_EQ(sizeof(struct sockaddr_in6), len);
    ASSERT_EQ(htons(65535), ((struct sockaddr_in6 *)&a)->sin6_port);
    ASSERT_OK(weft_addr_ip("", 0, &a, &len));
    ASSERT_EQ(AF_INET, a.ss_family);
    ASSERT_EQ(-EINVAL, weft_addr_ip("127.0.0.1", 1, NULL, &len));
    ASSERT_EQ(-EINVAL, weft_addr_ip("127.0.0.1", 1, &a, NULL));
}

/* Timeouts are never early: a connect that hangs (a full accept queue
 * drops our SYN) times out no sooner than its limit after init, measured
 * in nanoseconds: weft_connect's own limit, and weft_connect_addrs'
 * (net.h: "`timeout_ms` ... bounds the whole of it, fixed at init"). */
TEST(connect_timeouts_never_early)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage addr;
    socklen_t len;
    weft_socket *l;
    int fds[MAX_FILL], n, early = 0;
    weft_addrinfo ai = { 0 };               /* borrowed by connect_addrs: outlives it */

    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &addr, &len));
    ASSERT_OK(weft_listen(rt, (struct sockaddr *)&addr, len, 1, &l));
    len = sizeof(addr);
    ASSERT_OK(weft_socket_local_addr(l, &addr, &len));
    n = nt_fill_accept_queue(weft_socket_fd(l), &addr, len, fds);
    for (int i = 0; i < 40; i++) {
        weft_socket *c = NULL;
        weft_join *j;
        int r = 1;
        uint64_t ms = 3 + (uint64_t)i % 3, t0 = harness_now_ns();

        if (i % 4 == 0) {
            weft_io_op op;

            weft_connect_init(&op, rt, (struct sockaddr *)&addr, len, ms, &c);
            ASSERT_OK(weft_spawn(rt, &weft_connect_future, &op, &j));
        } else {
            weft_connect_host ch;

            ai.len = len;
            memcpy(&ai.addr, &addr, sizeof(addr));
            weft_connect_addrs_init(&ch, rt, &ai, 1, ms, &c);
            ASSERT_OK(weft_spawn(rt, &weft_connect_host_future, &ch, &j));
        }
        ASSERT_OK(weft_join_wait(j, &r));
        weft_join_drop(j);
        ASSERT_EQ(-ETIMEDOUT, r);
        if (harness_now_ns() - t0 < ms * 1000000u)
            early++;
    }
    ASSERT_EQ(0, early);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    ASSERT_OK(weft_socket_close(l));
    weft_runtime_free(rt);
}
