/* SPDX-License-Identifier: MIT */
/* Allocation failures in the socket layer: allocation k fails, for k = 1,
 * 2, ... until the call succeeds. Every failing call returns -ENOMEM and
 * leaves nothing behind: no weft memory (the harness counts it) and no
 * descriptor (/proc/self/fd counted). The calls: weft_listen (the
 * runtime's reactor, made on first use), weft_udp_bind, weft_socket_adopt;
 * and an accept and a connect, which allocate nothing. */
#include "net_test.h"

#define MAX_K 64

/* The runtime exists before the loop: its own allocations are not under
 * test here (tests/sched covers them). */
TEST(listen_udp_adopt_fail_each_allocation)
{
    int fds0 = nt_count_fds();

    for (int which = 0; which < 3; which++) {
        bool ok = false;
        int enomem = 0;

        for (size_t k = 1; k <= MAX_K && !ok; k++) {
            weft_runtime *rt = nt_runtime(true);
            struct sockaddr_storage a;
            socklen_t len;
            weft_socket *s = NULL;
            long live0;
            int err, fd = -1;

            ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &a, &len));
            if (which == 2)
                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            live0 = harness_live();
            harness_fail_alloc_at(k);
            if (which == 0)
                err = weft_listen(rt, (struct sockaddr *)&a, len, 0, &s);
            else if (which == 1)
                err = weft_udp_bind(rt, (struct sockaddr *)&a, len, &s);
            else
                err = weft_socket_adopt(rt, fd, &s);  /* closes fd on failure */
            harness_fail_alloc_at(0);
            if (err == 0) {
                ok = true;
                ASSERT_OK(weft_socket_close(s));
            } else {
                ASSERT_EQ(-ENOMEM, err);
                ASSERT(s == NULL);
                enomem++;
                ASSERT_EQ(live0, harness_live());
            }
            weft_runtime_free(rt);
            ASSERT_EQ(fds0, nt_count_fds());
        }
        ASSERT(ok);
        ASSERT(enomem > 0);
    }
}

/* accept and connect allocate nothing: a socket handle is a token naming a
 * slot of the reactor's source table (no per-socket allocation), and the
 * reactor and its first page exist already (the listener). So with every
 * allocation armed to fail from the first one, a connect and an accept
 * still succeed, and none was attempted. (Before handles were tokens, each
 * side allocated its handle; that path's -ENOMEM is gone.) */
/* what the task reports back (block_on copies the future into the task:
 * the caller's struct is not the one that runs) */
static struct {
    weft_socket *c, *s;
    int cerr, aerr;
    size_t allocs;
} got;

typedef struct pair_main {
    weft_async co;
    weft_socket *l;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_connect conn;
    weft_accept acc;
} pair_main;

static weft_poll pair_main_poll(pair_main *m, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&m->co);
    harness_fail_alloc_at(1);
    weft_connect_init(&m->conn, NULL, (struct sockaddr *)&m->addr, m->len, 0, &got.c);
    weft_accept_init(&m->acc, m->l, &got.s, NULL, NULL);
    WEFT_AWAIT(&m->co, weft_connect_poll(&m->conn, cx, &got.cerr));
    WEFT_AWAIT(&m->co, weft_accept_poll(&m->acc, cx, &got.aerr));
    got.allocs = harness_allocs();
    harness_fail_alloc_at(0);
    WEFT_END(&m->co);
}

static void pair_main_drop(pair_main *m)
{
    weft_io_op_drop(&m->conn);
    weft_io_op_drop(&m->acc);
}

WEFT_DEFINE_FUTURE_VOID(pair_main, pair_main_poll, pair_main_drop);

TEST(accept_connect_allocate_nothing)
{
    int fds0 = nt_count_fds();

    for (int current = 0; current < 2; current++) {
        weft_runtime *rt = nt_runtime(current);
        pair_main m = { 0 };

        memset(&got, 0, sizeof(got));
        nt_listen(rt, &m.l, &m.addr, &m.len);
        ASSERT_OK(weft_block_on(rt, &pair_main_future, &m, NULL));
        ASSERT_OK(got.cerr);
        ASSERT_OK(got.aerr);
        ASSERT_EQ(0, got.allocs);
        ASSERT_OK(weft_socket_close(got.c));
        ASSERT_OK(weft_socket_close(got.s));
        ASSERT_OK(weft_socket_close(m.l));
        weft_runtime_free(rt);
        ASSERT_EQ(0, harness_live());
        ASSERT_EQ(fds0, nt_count_fds());
    }
}
