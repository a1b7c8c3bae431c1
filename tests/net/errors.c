/* SPDX-License-Identifier: MIT */
/* Bad input: NULL sockets and arguments, bad hosts, long Unix paths, odd
 * families, adopting what is not a socket, misused futures, addresses in
 * use. Each answer is a negative errno, never a crash. */
#include "net_test.h"

TEST(addr_ip_rejects_what_is_not_numeric)
{
    struct sockaddr_storage a;
    socklen_t l;
    static const char *bad[] = { "localhost", "256.1.1.1", "1.2.3", "1.2.3.4.5", "::g",
                                 "127.0.0.1 ", " 127.0.0.1", "12345::1::2", "example.com" };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT_EQ(-EINVAL, weft_addr_ip(bad[i], 80, &a, &l));
    ASSERT_EQ(-EINVAL, weft_addr_ip("127.0.0.1", 80, NULL, &l));
    ASSERT_EQ(-EINVAL, weft_addr_ip("127.0.0.1", 80, &a, NULL));
    /* NULL and "" are the IPv4 wildcard */
    ASSERT_OK(weft_addr_ip(NULL, 8080, &a, &l));
    ASSERT_EQ(AF_INET, a.ss_family);
    ASSERT_EQ(sizeof(struct sockaddr_in), l);
    ASSERT_EQ(htonl(INADDR_ANY), ((struct sockaddr_in *)&a)->sin_addr.s_addr);
    ASSERT_EQ(htons(8080), ((struct sockaddr_in *)&a)->sin_port);
    ASSERT_OK(weft_addr_ip("", 1, &a, &l));
    ASSERT_OK(weft_addr_ip("::1", 443, &a, &l));
    ASSERT_EQ(AF_INET6, a.ss_family);
    ASSERT_EQ(sizeof(struct sockaddr_in6), l);
    ASSERT_EQ(htons(443), ((struct sockaddr_in6 *)&a)->sin6_port);
}

TEST(addr_unix_lengths)
{
    struct sockaddr_storage a;
    socklen_t l;
    char p[200];
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;

    ASSERT_EQ(-EINVAL, weft_addr_unix(NULL, &a, &l));
    ASSERT_EQ(-EINVAL, weft_addr_unix("", &a, &l));
    ASSERT_EQ(-EINVAL, weft_addr_unix("/tmp/x", NULL, &l));
    ASSERT_EQ(-EINVAL, weft_addr_unix("/tmp/x", &a, NULL));
    memset(p, 'a', sizeof(p));
    p[0] = '/';
    p[max] = '\0';                                /* the longest that fits */
    ASSERT_OK(weft_addr_unix(p, &a, &l));
    ASSERT_EQ(AF_UNIX, a.ss_family);
    ASSERT_EQ(offsetof(struct sockaddr_un, sun_path) + max + 1, l);
    p[max] = 'a';
    p[max + 1] = '\0';                            /* one more */
    ASSERT_EQ(-ENAMETOOLONG, weft_addr_unix(p, &a, &l));
    p[sizeof(p) - 1] = '\0';
    ASSERT_EQ(-ENAMETOOLONG, weft_addr_unix(p, &a, &l));
}

TEST(null_socket_calls)
{
    struct sockaddr_storage a;
    socklen_t l = sizeof(a);
    int one = 1;

    ASSERT_EQ(-EBADF, weft_socket_close(NULL));
    ASSERT_EQ(-EBADF, weft_socket_close(NULL));
    ASSERT_EQ(-EBADF, weft_socket_fd(NULL));
    ASSERT_EQ(-EBADF, weft_socket_local_addr(NULL, &a, &l));
    ASSERT_EQ(-EBADF, weft_socket_peer_addr(NULL, &a, &l));
    ASSERT_EQ(-EBADF, weft_socket_setopt(NULL, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)));
    ASSERT_EQ(-EBADF, weft_socket_set_nodelay(NULL, true));
    ASSERT_EQ(-EBADF, weft_socket_set_reuseaddr(NULL, true));
    ASSERT_EQ(-EBADF, weft_socket_shutdown(NULL, SHUT_WR));
    ASSERT_OK(weft_addr_ip("127.0.0.1", 1, &a, &l));
    ASSERT_EQ(-EBADF, weft_udp_connect(NULL, (struct sockaddr *)&a, l));
}

TEST(null_socket_futures)
{
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);
    weft_io_op op;
    weft_socket *out = NULL;
    char buf[4];
    ssize_t r = 1;
    int e = 1;

    weft_read_init(&op, NULL, buf, sizeof(buf));
    ASSERT_EQ(WEFT_READY, weft_io_op_poll(&op, &cx, &r));
    ASSERT_EQ(-EBADF, r);
    weft_io_op_drop(&op);
    weft_read_exact_init(&op, NULL, buf, sizeof(buf));
    ASSERT_EQ(WEFT_READY, weft_io_op_poll(&op, &cx, &r));
    ASSERT_EQ(-EBADF, r);
    weft_write_init(&op, NULL, buf, sizeof(buf));
    ASSERT_EQ(WEFT_READY, weft_io_op_poll(&op, &cx, NULL));     /* result may be NULL */
    weft_write_all_init(&op, NULL, buf, sizeof(buf));
    ASSERT_EQ(WEFT_READY, weft_io_op_poll(&op, &cx, &r));
    ASSERT_EQ(-EBADF, r);
    weft_recv_from_init(&op, NULL, buf, sizeof(buf), NULL, NULL);
    ASSERT_EQ(WEFT_READY, weft_io_op_poll(&op, &cx, &r));
    ASSERT_EQ(-EBADF, r);
    weft_send_to_init(&op, NULL, buf, sizeof(buf), NULL, 0);
    ASSERT_EQ(WEFT_READY, weft_io_op_poll(&op, &cx, &r));
    ASSERT_EQ(-EBADF, r);
    weft_accept_init(&op, NULL, &out, NULL, NULL);
    ASSERT_EQ(WEFT_READY, weft_accept_poll(&op, &cx, &e));
    ASSERT_EQ(-EBADF, e);
    ASSERT(out == NULL);
    weft_io_op_drop(&op);
    weft_io_op_drop(NULL);
    ASSERT_EQ(0, weft_io_op_moved(NULL));
}

TEST(connect_bad_arguments)
{
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage a;
    socklen_t l;
    weft_connect c;
    weft_socket *out = NULL;
    int e;

    ASSERT_OK(weft_addr_ip("127.0.0.1", 9, &a, &l));
    /* no runtime given, and this thread is not a worker */
    weft_connect_init(&c, NULL, (struct sockaddr *)&a, l, 0, &out);
    ASSERT_EQ(WEFT_READY, weft_connect_poll(&c, &cx, &e));
    ASSERT_EQ(-EINVAL, e);
    weft_io_op_drop(&c);
    weft_connect_init(&c, rt, NULL, l, 0, &out);
    ASSERT_EQ(WEFT_READY, weft_connect_poll(&c, &cx, &e));
    ASSERT_EQ(-EINVAL, e);
    weft_io_op_drop(&c);
    weft_connect_init(&c, rt, (struct sockaddr *)&a, l, 0, NULL);
    ASSERT_EQ(WEFT_READY, weft_connect_poll(&c, &cx, &e));
    ASSERT_EQ(-EINVAL, e);
    weft_io_op_drop(&c);
    weft_connect_init(&c, rt, (struct sockaddr *)&a, 1, 0, &out);     /* too short */
    ASSERT_EQ(WEFT_READY, weft_connect_poll(&c, &cx, &e));
    ASSERT_EQ(-EINVAL, e);
    weft_io_op_drop(&c);
    a.ss_family = AF_PACKET;
    weft_connect_init(&c, rt, (struct sockaddr *)&a, l, 0, &out);
    ASSERT_EQ(WEFT_READY, weft_connect_poll(&c, &cx, &e));
    ASSERT_EQ(-EINVAL, e);
    ASSERT_EQ(WEFT_READY, weft_connect_poll(&c, &cx, &e));           /* same answer */
    ASSERT_EQ(-EINVAL, e);
    weft_io_op_drop(&c);
    ASSERT(out == NULL);
    weft_runtime_free(rt);
}

TEST(listen_bind_adopt_bad_arguments)
{
    weft_runtime *rt = nt_runtime(false);
    struct sockaddr_storage a, b;
    socklen_t l, bl;
    weft_socket *s = NULL, *s2 = NULL;
    int sv[2], pfd[2];

    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &a, &l));
    ASSERT_EQ(-EINVAL, weft_listen(NULL, (struct sockaddr *)&a, l, 0, &s));  /* not a worker */
    ASSERT_EQ(-EINVAL, weft_listen(rt, NULL, l, 0, &s));
    ASSERT_EQ(-EINVAL, weft_listen(rt, (struct sockaddr *)&a, l, 0, NULL));
    ASSERT_EQ(-EINVAL, weft_listen(rt, (struct sockaddr *)&a, 0, 0, &s));
    ASSERT_EQ(-EINVAL, weft_udp_bind(NULL, (struct sockaddr *)&a, l, &s));
    ASSERT_EQ(-EINVAL, weft_udp_bind(rt, NULL, l, &s));
    ASSERT_EQ(-EINVAL, weft_udp_bind(rt, (struct sockaddr *)&a, l, NULL));
    ASSERT_OK(weft_addr_unix("/tmp/weft-never", &b, &bl));
    ASSERT_EQ(-EINVAL, weft_udp_bind(rt, (struct sockaddr *)&b, bl, &s));   /* no Unix UDP */
    b = a;
    b.ss_family = AF_PACKET;
    ASSERT_EQ(-EINVAL, weft_listen(rt, (struct sockaddr *)&b, l, 0, &s));
    ASSERT(s == NULL);

    /* a port in use: SO_REUSEADDR does not allow two listeners */
    ASSERT_OK(weft_listen(rt, (struct sockaddr *)&a, l, 0, &s));
    bl = sizeof(b);
    ASSERT_OK(weft_socket_local_addr(s, &b, &bl));
    ASSERT_EQ(-EADDRINUSE, weft_listen(rt, (struct sockaddr *)&b, bl, 0, &s2));
    ASSERT(s2 == NULL);
    ASSERT_EQ(-EINVAL, weft_socket_local_addr(s, NULL, &bl));
    ASSERT_EQ(-EINVAL, weft_socket_local_addr(s, &b, NULL));
    ASSERT_EQ(-EINVAL, weft_socket_shutdown(s, 42));
    ASSERT_EQ(-EINVAL, weft_udp_connect(s, NULL, 0));
    ASSERT_EQ(-ENOTCONN, weft_socket_peer_addr(s, &b, &bl));
    ASSERT(weft_socket_fd(s) >= 0);
    ASSERT_OK(weft_socket_close(s));

    /* adopt: bad descriptors, what is not a socket (closed either way) */
    ASSERT_EQ(-EBADF, weft_socket_adopt(rt, -1, &s));
    ASSERT_EQ(0, pipe(pfd));
    ASSERT_EQ(-ENOTSOCK, weft_socket_adopt(rt, pfd[0], &s));
    ASSERT(fcntl(pfd[0], F_GETFD) < 0 && errno == EBADF);
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    ASSERT_EQ(-EINVAL, weft_socket_adopt(NULL, sv[0], &s));        /* not a worker */
    ASSERT(fcntl(sv[0], F_GETFD) < 0 && errno == EBADF);
    ASSERT_EQ(-EINVAL, weft_socket_adopt(rt, sv[1], NULL));
    ASSERT(fcntl(sv[1], F_GETFD) < 0 && errno == EBADF);
    close(pfd[1]);
    /* adopted sockets are non-blocking and close-on-exec */
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    ASSERT_OK(weft_socket_adopt(rt, sv[0], &s));
    ASSERT(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    ASSERT(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
    ASSERT_OK(weft_socket_close(s));
    close(sv[1]);
    weft_runtime_free(rt);
}

/* Futures used on the wrong kind of socket get the system's answer. */
typedef struct misuse {
    weft_async co;
    weft_socket *l, *u, *x;
    struct sockaddr_storage a;
    socklen_t l_len;
    weft_io_op op;
    weft_accept acc;
    int err;
    ssize_t n;
    char buf[8];
} misuse;

static weft_poll misuse_poll(misuse *m, weft_context *cx, void *out)
{
    weft_poll p;

    (void)out;
    WEFT_BEGIN(&m->co);
    nt_listen(weft_runtime_current(), &m->l, &m->a, &m->l_len);
    /* read / write on a listener */
    weft_read_init(&m->op, m->l, m->buf, sizeof(m->buf));
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(-ENOTCONN, m->n);
    weft_write_init(&m->op, m->l, "x", 1);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT(m->n == -ENOTCONN || m->n == -EPIPE);
    /* accept on a UDP socket */
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &m->a, &m->l_len));
    ASSERT_OK(weft_udp_bind(NULL, (struct sockaddr *)&m->a, m->l_len, &m->u));
    weft_accept_init(&m->acc, m->u, &m->x, NULL, NULL);
    WEFT_AWAIT(&m->co, weft_accept_poll(&m->acc, cx, &m->err));
    ASSERT_EQ(-EOPNOTSUPP, m->err);
    /* an accept future polled as an I/O op, and the reverse */
    weft_accept_init(&m->acc, m->l, &m->x, NULL, NULL);
    p = weft_io_op_poll(&m->acc, cx, &m->n);
    ASSERT_EQ(WEFT_READY, p);
    ASSERT_EQ(-EINVAL, m->n);
    weft_read_init(&m->op, m->l, m->buf, sizeof(m->buf));
    p = weft_accept_poll(&m->op, cx, &m->err);
    ASSERT_EQ(WEFT_READY, p);
    ASSERT_EQ(-EINVAL, m->err);
    weft_accept_init(&m->acc, m->l, NULL, NULL, NULL);       /* nowhere to put it */
    p = weft_accept_poll(&m->acc, cx, &m->err);
    ASSERT_EQ(WEFT_READY, p);
    ASSERT_EQ(-EINVAL, m->err);
    ASSERT_OK(weft_socket_close(m->u));
    ASSERT_OK(weft_socket_close(m->l));
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE_VOID(misuse, misuse_poll, NULL);

TEST(futures_on_the_wrong_socket)
{
    nt_run(false, &misuse_future, &(misuse){ 0 });
}
