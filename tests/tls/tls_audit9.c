// SPDX-License-Identifier: MIT
/* Ninth audit of weft/tls.h (public API only): a future polled without a
 * waker (a NULL context, or a zeroed weft_context whose waker is NULL) is
 * a bad argument: it answers -EINVAL and changes nothing, as weft/lock.h
 * says for its futures and DESIGN.md for every bad argument ("reported,
 * never crashed on"). The handshake future dereferenced the missing waker
 * (SIGSEGV). */
#include "tls_test.h"

typedef tt_pair pair;

static int misuse_server(void *arg)
{
    weft_tls *t = tt_server_hs(arg);
    char b[5];

    tt_read_exact(t, b, 5);
    ASSERT_EQ(0, memcmp(b, "hello", 5));
    weft_tls_free(t);
    return 0;
}

static int misuse_client(void *arg)
{
    pair *p = arg;
    weft_tls_options o = { .server_name = "localhost", .flags = WEFT_TLS_OWN_STREAM };
    weft_context zero;
    weft_tls_op op;
    weft_tls *t;
    ssize_t out;

    memset(&zero, 0, sizeof(zero));
    ASSERT_OK(weft_tls_new(&t, p->ccfg, tt_connect(&p->addr, p->len), &o));
    weft_tls_handshake_init(&op, t, TT_HS_MS);
    out = 1;
    ASSERT_EQ(WEFT_READY, weft_tls_op_poll(&op, NULL, &out));
    ASSERT_EQ(-EINVAL, out);
    out = 1;
    ASSERT_EQ(WEFT_READY, weft_tls_op_poll(&op, &zero, &out));
    ASSERT_EQ(-EINVAL, out);
    /* nothing changed: the same future, awaited properly, handshakes */
    out = 1;
    ASSERT_OK(weft_co_await(&weft_tls_op_future, &op, &out));
    ASSERT_EQ(0, out);
    /* and a write on the stream works */
    ASSERT_EQ(5, weft_co_tls_write(t, "hello", 5));
    ASSERT_EQ(0, weft_co_tls_shutdown(t));
    weft_tls_free(t);
    return 0;
}

TEST(op_polled_without_a_waker_is_einval_and_changes_nothing)
{
    pair p = { 0 };

    if (!tt_certs())
        return;
    tt_pair_init(&p, NULL, NULL);
    tt_pair_run(&p, misuse_server, misuse_client);
}
