// SPDX-License-Identifier: MIT
/* Adversarial checks of weft/process.h (round 9). */
#define _GNU_SOURCE
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"
#include "weft/process.h"

/* A wait future polled without a waker (a NULL context, or a zeroed one
 * whose waker is NULL) answers -EINVAL and changes nothing, as weft/lock.h
 * says for its futures ("bad arguments are reported, never crashed on"):
 * it dereferenced the missing waker (SIGSEGV). Polled properly after, it
 * completes with the child's status. */
TEST(wait_polled_without_a_waker_is_einval_and_changes_nothing)
{
    char *argv[] = { "true", NULL };
    weft_process *p;
    weft_process_wait w;
    weft_process_status st = { 99, 99 };
    weft_context zero;
    int r;

    memset(&zero, 0, sizeof(zero));
    ASSERT_OK(weft_process_spawn(NULL, &(weft_process_options){ .argv = argv }, &p));
    weft_process_wait_init(&w, p, &st);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_process_wait_poll(&w, NULL, &r));
    ASSERT_EQ(-EINVAL, r);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_process_wait_poll(&w, &zero, &r));
    ASSERT_EQ(-EINVAL, r);
    ASSERT_EQ(99, st.code);           /* nothing written */
    weft_process_wait_drop(&w);
    /* the handle still works: a proper wait gets the status */
    {
        weft_runtime *rt;
        int res = 1;

        ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
        weft_process_wait_init(&w, p, &st);
        ASSERT_OK(weft_block_on(rt, &weft_process_wait_future, &w, &res));
        ASSERT_EQ(0, res);
        ASSERT_EQ(0, st.code);
        weft_runtime_free(rt);
    }
    weft_process_free(p);
}
