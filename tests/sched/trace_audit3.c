/* SPDX-License-Identifier: MIT */
/* Third audit of weft/trace.h: a write that fails is -EIO (the FILE's
 * buffer flushed, not left to fclose), a second write gives the same
 * events, a ring of one event works, a restart discards the old recording. */
#define _GNU_SOURCE
#include <stdio.h>

#include "harness.h"
#include "weft.h"
#include "weft/trace.h"

typedef struct tiny {
    int n;
} tiny;

static weft_poll tiny_poll(tiny *f, weft_context *cx, void *out)
{
    (void)out;
    if (f->n-- > 0) {
        weft_waker_wake_by_ref(weft_context_waker(cx));
        return WEFT_PENDING;
    }
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID_STATIC(tiny, tiny_poll, NULL);

TEST(trace_write_errors_and_repeats)
{
    weft_runtime *rt;
    weft_trace_stats st;
    FILE *full = fopen("/dev/full", "w"), *a = tmpfile(), *b = tmpfile();
    long na, nb;

    if (full == NULL)
        harness_skip("no /dev/full");
    ASSERT(a != NULL && b != NULL);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_trace_start(rt, 1));             /* a ring of one event */
    ASSERT_OK(weft_block_on(rt, &tiny_future, &(tiny){ 50 }, NULL));
    ASSERT_OK(weft_trace_stop(rt));
    ASSERT_OK(weft_trace_get_stats(rt, &st));
    ASSERT(st.recorded >= 50);
    ASSERT(st.dropped >= st.recorded - 2);          /* one kept per ring at most */
    ASSERT_EQ(-EIO, weft_trace_write(rt, full));
    na = weft_trace_write(rt, a);
    nb = weft_trace_write(rt, b);
    ASSERT(na >= 0);
    ASSERT_EQ(na, nb);
    ASSERT_EQ(ftell(a), ftell(b));
    /* a new recording discards the old one */
    ASSERT_OK(weft_trace_start(rt, 0));
    ASSERT_OK(weft_trace_stop(rt));
    ASSERT_OK(weft_trace_get_stats(rt, &st));
    ASSERT(st.recorded < 50);
    fclose(full);
    fclose(a);
    fclose(b);
    weft_runtime_free(rt);
}
