// SPDX-License-Identifier: MIT
/* Audit 7: weft_go with the largest stack sizes weft_go_opt() accepts
 * (WEFT_CO_STACK_MAX, one byte less, half plus one), many at once, mixed
 * with the smallest, in both modes coro.h describes: guarded stacks, and
 * slabs only (WEFT_CO_GUARD_MAX=0, read at the first spawn: each TEST is a
 * process of its own). Each runs, is joined, and nothing stays mapped. */
#include "coro_test.h"

#include <stdlib.h>

static int touch(void *arg)
{
    volatile char buf[8192];

    buf[0] = 1;
    buf[sizeof(buf) - 1] = 2;
    if (weft_co_yield() < 0)
        return -1;
    return (int)(intptr_t)arg + buf[0] + buf[sizeof(buf) - 1];
}

static void many_big(void)
{
    static const size_t sizes[] = { WEFT_CO_STACK_MAX, WEFT_CO_STACK_MAX - 1,
                                    WEFT_CO_STACK_MIN, WEFT_CO_STACK_MAX / 2 + 1 };
    enum { K = 70 };                  /* past one slab of 64 */
    weft_runtime *rt = ct_runtime(2);
    weft_join *j[K];

    for (int i = 0; i < K; i++) {
        weft_go_options o = { .stack_size = sizes[i % 4], .name = "big" };

        ASSERT_OK(weft_go_opt(rt, touch, (void *)(intptr_t)i, &o, &j[i]));
    }
    for (int i = 0; i < K; i++) {
        int out = -1;

        ASSERT_OK(weft_join_wait(j[i], &out));
        ASSERT_EQ(i + 3, out);
        weft_join_drop(j[i]);
    }
    CT_FREE(rt);
}

TEST(largest_stacks_guarded)
{
    many_big();
}

TEST(largest_stacks_from_slabs)
{
    ASSERT_EQ(0, setenv("WEFT_CO_GUARD_MAX", "0", 1));
    many_big();
    ASSERT_EQ(0, weft__co_slabs_mapped());
}
