/* SPDX-License-Identifier: MIT */
/* UDP: bind, send_to / recv_from (sender's address, truncation, empty
 * datagrams, order), a pending recv_from woken by a datagram, connected UDP
 * with read / write, IPv6 when the host has it. */
#include "net_test.h"

typedef struct rx {
    weft_async co;
    weft_socket *s;
    weft_io_op op;
    ssize_t n;
    char buf[64];
} rx;

static weft_poll rx_poll(rx *r, weft_context *cx, ssize_t *out)
{
    WEFT_BEGIN(&r->co);
    weft_recv_from_init(&r->op, r->s, r->buf, sizeof(r->buf), NULL, NULL);
    WEFT_AWAIT(&r->co, weft_io_op_poll(&r->op, cx, &r->n));
    if (r->n == 6 && memcmp(r->buf, "wakeup", 6) != 0)
        r->n = -EILSEQ;
    *out = r->n;
    WEFT_END(&r->co);
}

static void rx_drop(rx *r)
{
    weft_io_op_drop(&r->op);
}

WEFT_DEFINE_FUTURE(rx, rx_poll, rx_drop, ssize_t);

typedef struct udp_main {
    weft_async co;
    const char *host;
    weft_socket *u1, *u2;
    struct sockaddr_storage a1, a2, from;
    socklen_t l1, l2, fromlen;
    weft_io_op op;
    weft_join *j;
    weft_sleep nap;
    int jr, i;
    ssize_t n, rn;
    char buf[256], big[100];
} udp_main;

static bool same_port(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_port ==
               ((const struct sockaddr_in *)b)->sin_port;
    return ((const struct sockaddr_in6 *)a)->sin6_port ==
           ((const struct sockaddr_in6 *)b)->sin6_port;
}

static weft_poll udp_main_poll(udp_main *m, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&m->co);
    ASSERT_OK(weft_addr_ip(m->host, 0, &m->a1, &m->l1));
    ASSERT_OK(weft_udp_bind(NULL, (struct sockaddr *)&m->a1, m->l1, &m->u1));
    ASSERT_OK(weft_udp_bind(NULL, (struct sockaddr *)&m->a1, m->l1, &m->u2));
    m->l1 = m->l2 = sizeof(m->a1);
    ASSERT_OK(weft_socket_local_addr(m->u1, &m->a1, &m->l1));
    ASSERT_OK(weft_socket_local_addr(m->u2, &m->a2, &m->l2));
    ASSERT(!same_port(&m->a1, &m->a2));

    /* send_to / recv_from, with the sender's address */
    weft_send_to_init(&m->op, m->u1, "ping", 4, (struct sockaddr *)&m->a2, m->l2);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(4, m->n);
    m->fromlen = sizeof(m->from);
    weft_recv_from_init(&m->op, m->u2, m->buf, sizeof(m->buf), &m->from, &m->fromlen);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(4, m->n);
    ASSERT_EQ(0, memcmp(m->buf, "ping", 4));
    ASSERT_EQ(m->l1, m->fromlen);
    ASSERT(same_port(&m->a1, &m->from));

    /* truncation: the datagram is cut to the buffer, the rest discarded */
    nt_fill(m->big, sizeof(m->big), 5);
    weft_send_to_init(&m->op, m->u1, m->big, sizeof(m->big), (struct sockaddr *)&m->a2, m->l2);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(sizeof(m->big), m->n);
    weft_send_to_init(&m->op, m->u1, "next", 4, (struct sockaddr *)&m->a2, m->l2);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(4, m->n);
    memset(m->buf, 0, sizeof(m->buf));
    weft_recv_from_init(&m->op, m->u2, m->buf, 10, NULL, NULL);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(10, m->n);
    ASSERT_EQ(10, nt_check(m->buf, 10, 5, 0));
    ASSERT_EQ(0, m->buf[10]);                     /* nothing past the buffer */
    weft_recv_from_init(&m->op, m->u2, m->buf, sizeof(m->buf), NULL, NULL);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(4, m->n);
    ASSERT_EQ(0, memcmp(m->buf, "next", 4));

    /* an empty datagram is a datagram */
    weft_send_to_init(&m->op, m->u1, "", 0, (struct sockaddr *)&m->a2, m->l2);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(0, m->n);
    weft_recv_from_init(&m->op, m->u2, m->buf, sizeof(m->buf), NULL, NULL);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(0, m->n);

    /* 50 datagrams arrive whole and in order */
    for (m->i = 0; m->i < 50; m->i++) {
        weft_send_to_init(&m->op, m->u1, &m->i, sizeof(m->i), (struct sockaddr *)&m->a2, m->l2);
        WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
        ASSERT_EQ(sizeof(m->i), m->n);
    }
    for (m->i = 0; m->i < 50; m->i++) {
        int v;                                    /* set after the await */

        weft_recv_from_init(&m->op, m->u2, m->buf, sizeof(m->buf), NULL, NULL);
        WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
        ASSERT_EQ(sizeof(int), m->n);
        memcpy(&v, m->buf, sizeof(v));
        ASSERT_EQ(m->i, v);
    }

    /* a pending recv_from is woken by the datagram */
    ASSERT_OK(weft_spawn(weft_runtime_current(), &rx_future, &(rx){ .s = m->u2 }, &m->j));
    weft_sleep_init(&m->nap, 10);
    WEFT_AWAIT(&m->co, weft_sleep_poll(&m->nap, cx));
    weft_sleep_drop(&m->nap);
    weft_send_to_init(&m->op, m->u1, "wakeup", 6, (struct sockaddr *)&m->a2, m->l2);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(6, m->n);
    WEFT_AWAIT(&m->co, weft_join_poll(m->j, cx, &m->jr, &m->rn));
    ASSERT_OK(m->jr);
    ASSERT_EQ(6, m->rn);
    weft_join_drop(m->j);

    /* write on an unconnected socket has nowhere to go */
    weft_write_init(&m->op, m->u1, "x", 1);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(-EDESTADDRREQ, m->n);

    /* connected: read / write */
    ASSERT_OK(weft_udp_connect(m->u1, (struct sockaddr *)&m->a2, m->l2));
    ASSERT_OK(weft_udp_connect(m->u2, (struct sockaddr *)&m->a1, m->l1));
    weft_write_init(&m->op, m->u1, "conn", 4);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(4, m->n);
    weft_read_init(&m->op, m->u2, m->buf, sizeof(m->buf));
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(4, m->n);
    ASSERT_EQ(0, memcmp(m->buf, "conn", 4));
    weft_write_init(&m->op, m->u2, "back", 4);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(4, m->n);
    weft_read_init(&m->op, m->u1, m->buf, 2);           /* truncated by read too */
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(2, m->n);
    ASSERT_EQ(0, memcmp(m->buf, "ba", 2));
    m->l1 = sizeof(m->from);
    ASSERT_OK(weft_socket_peer_addr(m->u1, &m->from, &m->l1));
    ASSERT(same_port(&m->a2, &m->from));

    ASSERT_OK(weft_socket_close(m->u1));
    ASSERT_OK(weft_socket_close(m->u2));
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE_VOID(udp_main, udp_main_poll, NULL);

TEST(udp_ipv4_multi_thread)
{
    nt_run(false, &udp_main_future, &(udp_main){ .host = "127.0.0.1" });
}

TEST(udp_ipv4_current_thread)
{
    nt_run(true, &udp_main_future, &(udp_main){ .host = "127.0.0.1" });
}

TEST(udp_ipv6_loopback)
{
    struct sockaddr_storage a;
    socklen_t l;
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    ASSERT_OK(weft_addr_ip("::1", 0, &a, &l));
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, l) < 0) {
        printf("skip: no IPv6 loopback here (%s)\n", strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    nt_run(false, &udp_main_future, &(udp_main){ .host = "::1" });
}
