// SPDX-License-Identifier: MIT
/* An accept on `l` under a limit of `ms` (public API only): its result
 * (the accept's count, 0 or a negative errno), or -ETIMEDOUT. Shared by
 * tests/net/net_audit8.c, tests/net/uring.c and tests/stream/stream_audit8.c;
 * include it after net_test.h. */
#ifndef WEFT_TESTS_NET_ACC_TIMED_H
#define WEFT_TESTS_NET_ACC_TIMED_H

typedef struct acc_timed {
    weft_socket *l, *out;
    uint64_t ms;
    weft_accept a;
    weft_timeout t;
    bool init;
    int n;
} acc_timed;

static weft_poll acc_timed_poll(acc_timed *f, weft_context *cx, int *out)
{
    int err = 0;

    if (!f->init) {
        weft_accept_init(&f->a, f->l, &f->out, NULL, NULL);
        weft_timeout_init(&f->t, &weft_accept_future, &f->a, f->ms);
        f->init = true;
    }
    if (weft_timeout_poll(&f->t, cx, &err, &f->n) == WEFT_PENDING)
        return WEFT_PENDING;
    *out = err ? err : f->n;
    return WEFT_READY;
}

static void acc_timed_drop(acc_timed *f)
{
    if (f->init)
        weft_timeout_drop(&f->t);
}

WEFT_DEFINE_FUTURE(acc_timed, acc_timed_poll, acc_timed_drop, int);

#endif
