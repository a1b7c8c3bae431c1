/* SPDX-License-Identifier: MIT */
/* Allocation failures in the socket layer: allocation k fails, for k = 1,
 * 2, ... until the call succeeds. Every failing call returns -ENOMEM and
 * leaves nothing behind: no weft memory (the harness counts it) and no
 * descriptor (/proc/self/fd counted). The calls: weft_listen (the handle,
 * the reactor's first page), weft_udp_bind, weft_socket_adopt, and an
 * accept and a connect driven to completion on a current-thread runtime. */
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

/* accept and connect: a client connects and a server accepts, with
 * allocation k failing once both sockets exist; either side may see
 * -ENOMEM (the connection is then refused or reset on the other side),
 * and everything is freed. */
/* what the task reports back (block_on copies the future into the task:
 * the caller's struct is not the one that runs) */
static struct {
    weft_socket *c, *s;
    int cerr, aerr;
} got;

typedef struct pair_main {
    weft_async co;
    weft_socket *l;
    struct sockaddr_storage addr;
    socklen_t len;
    size_t k;
    weft_connect conn;
    weft_accept acc;
} pair_main;

static weft_poll pair_main_poll(pair_main *m, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&m->co);
    harness_fail_alloc_at(m->k);
    weft_connect_init(&m->conn, NULL, (struct sockaddr *)&m->addr, m->len, 0, &got.c);
    weft_accept_init(&m->acc, m->l, &got.s, NULL, NULL);
    WEFT_AWAIT(&m->co, weft_connect_poll(&m->conn, cx, &got.cerr));
    if (got.cerr == 0) {
        WEFT_AWAIT(&m->co, weft_accept_poll(&m->acc, cx, &got.aerr));
    } else {
        weft_io_op_drop(&m->acc);
        got.aerr = -ECANCELED;
    }
    harness_fail_alloc_at(0);
    WEFT_END(&m->co);
}

static void pair_main_drop(pair_main *m)
{
    weft_io_op_drop(&m->conn);
    weft_io_op_drop(&m->acc);
}

WEFT_DEFINE_FUTURE_VOID(pair_main, pair_main_poll, pair_main_drop);

TEST(accept_connect_fail_each_allocation)
{
    int fds0 = nt_count_fds();
    bool ok = false;
    int enomem = 0;

    for (size_t k = 1; k <= MAX_K && !ok; k++) {
        weft_runtime *rt = nt_runtime(true);
        pair_main m = { .k = k };

        memset(&got, 0, sizeof(got));
        nt_listen(rt, &m.l, &m.addr, &m.len);
        ASSERT_OK(weft_block_on(rt, &pair_main_future, &m, NULL));
        ASSERT(got.cerr == 0 || got.cerr == -ENOMEM);
        ASSERT(got.aerr == 0 || got.aerr == -ENOMEM || got.aerr == -ECANCELED);
        ok = got.cerr == 0 && got.aerr == 0;
        enomem += got.cerr == -ENOMEM || got.aerr == -ENOMEM;
        if (got.cerr == 0)
            ASSERT_OK(weft_socket_close(got.c));
        if (got.aerr == 0)
            ASSERT_OK(weft_socket_close(got.s));
        ASSERT_OK(weft_socket_close(m.l));
        weft_runtime_free(rt);
        ASSERT_EQ(0, harness_live());
        ASSERT_EQ(fds0, nt_count_fds());
    }
    ASSERT(ok);
    ASSERT(enomem > 0);               /* the failures did reach the socket layer */
}
