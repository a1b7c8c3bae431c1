/* SPDX-License-Identifier: MIT */
/* Unix stream sockets: listen on a unique path under /tmp, connect, echo,
 * an existing socket file is not replaced (-EADDRINUSE), a path with no
 * listener refuses, a missing one is -ENOENT. The path is unlinked after. */
#include "net_test.h"

#include <sys/stat.h>

#define UBYTES (1u << 20)

static char path[108];

static void make_path(void)
{
    static int seq;

    snprintf(path, sizeof(path), "/tmp/weft-net-%d-%d.sock", (int)getpid(), seq++);
    unlink(path);
}

typedef struct uwriter {
    weft_async co;
    weft_socket *s;
    const void *buf;
    size_t n;
    weft_io_op op;
    ssize_t r;
} uwriter;

static weft_poll uwriter_poll(uwriter *w, weft_context *cx, ssize_t *out)
{
    WEFT_BEGIN(&w->co);
    weft_write_all_init(&w->op, w->s, w->buf, w->n);
    WEFT_AWAIT(&w->co, weft_io_op_poll(&w->op, cx, &w->r));
    *out = w->r;
    WEFT_END(&w->co);
}

static void uwriter_drop(uwriter *w)
{
    weft_io_op_drop(&w->op);
}

WEFT_DEFINE_FUTURE(uwriter, uwriter_poll, uwriter_drop, ssize_t);

typedef struct unix_main {
    weft_async co;
    weft_socket *l, *l2, *c;
    struct sockaddr_storage addr, peer;
    socklen_t len, plen;
    weft_connect conn;
    weft_io_op op;
    weft_join *acc_j, *wr_j;
    int err, jr, acc_out;
    ssize_t n, wn;
    unsigned char *out, *back;
} unix_main;

static weft_poll unix_main_poll(unix_main *m, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&m->co);
    make_path();
    ASSERT_OK(weft_addr_unix(path, &m->addr, &m->len));
    ASSERT_OK(weft_listen(NULL, (struct sockaddr *)&m->addr, m->len, 0, &m->l));
    /* the file exists now and is not replaced */
    ASSERT_EQ(-EADDRINUSE, weft_listen(NULL, (struct sockaddr *)&m->addr, m->len, 0, &m->l2));
    ASSERT_OK(weft_spawn(weft_runtime_current(), &nt_acceptor_future,
                         &(nt_acceptor){ .l = m->l, .count = 1 }, &m->acc_j));
    weft_connect_init(&m->conn, NULL, (struct sockaddr *)&m->addr, m->len, 0, &m->c);
    WEFT_AWAIT(&m->co, weft_connect_poll(&m->conn, cx, &m->err));
    ASSERT_OK(m->err);
    m->plen = sizeof(m->peer);
    ASSERT_OK(weft_socket_peer_addr(m->c, &m->peer, &m->plen));
    ASSERT_EQ(AF_UNIX, m->peer.ss_family);
    ASSERT_EQ(0, strcmp(((struct sockaddr_un *)&m->peer)->sun_path, path));

    m->out = malloc(UBYTES);
    m->back = malloc(UBYTES);
    ASSERT(m->out && m->back);
    nt_fill(m->out, UBYTES, 33);
    ASSERT_OK(weft_spawn(weft_runtime_current(), &uwriter_future,
                         &(uwriter){ .s = m->c, .buf = m->out, .n = UBYTES }, &m->wr_j));
    weft_read_exact_init(&m->op, m->c, m->back, UBYTES);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(UBYTES, m->n);
    ASSERT_EQ(UBYTES, nt_check(m->back, UBYTES, 33, 0));
    WEFT_AWAIT(&m->co, weft_join_poll(m->wr_j, cx, &m->jr, &m->wn));
    ASSERT_OK(m->jr);
    ASSERT_EQ(UBYTES, m->wn);
    weft_join_drop(m->wr_j);
    free(m->out);
    free(m->back);

    ASSERT_OK(weft_socket_shutdown(m->c, SHUT_WR));
    weft_read_init(&m->op, m->c, &m->err, sizeof(m->err));
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(0, m->n);
    ASSERT_OK(weft_socket_close(m->c));
    WEFT_AWAIT(&m->co, weft_join_poll(m->acc_j, cx, &m->jr, &m->acc_out));
    ASSERT_OK(m->jr);
    ASSERT_OK(m->acc_out);
    weft_join_drop(m->acc_j);
    ASSERT_OK(weft_socket_close(m->l));

    /* the file stays, with nobody listening: refused */
    weft_connect_init(&m->conn, NULL, (struct sockaddr *)&m->addr, m->len, 0, &m->c);
    WEFT_AWAIT(&m->co, weft_connect_poll(&m->conn, cx, &m->err));
    ASSERT_EQ(-ECONNREFUSED, m->err);
    ASSERT_EQ(0, unlink(path));
    /* and no file at all */
    weft_connect_init(&m->conn, NULL, (struct sockaddr *)&m->addr, m->len, 0, &m->c);
    WEFT_AWAIT(&m->co, weft_connect_poll(&m->conn, cx, &m->err));
    ASSERT_EQ(-ENOENT, m->err);
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE_VOID(unix_main, unix_main_poll, NULL);

static void unix_echo(bool current)
{
    struct stat st;

    nt_echo_reset();
    nt_run(current, &unix_main_future, &(unix_main){ 0 });
    ASSERT_EQ(UBYTES, atomic_load(&nt_echo_bytes));
    ASSERT_EQ(0, atomic_load(&nt_echo_errors));
    ASSERT(stat(path, &st) < 0 && errno == ENOENT);
}

TEST(unix_stream_echo_multi_thread)
{
    unix_echo(false);
}

TEST(unix_stream_echo_current_thread)
{
    unix_echo(true);
}
