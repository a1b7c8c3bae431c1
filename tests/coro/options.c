/* SPDX-License-Identifier: MIT */
/* Stack sizes: the runtime's default (weft_runtime_options.coro_stack_size)
 * is validated like the per-spawn size, applies to weft_go(), groups and
 * weft_co_block_on(), and a per-spawn size overrides it. */
#include "coro_test.h"

#include <string.h>

static int stack_bytes(void *arg)
{
    struct weft__co *co = weft__co_running();   /* before any switch */

    (void)arg;
    return (int)((co->stack.hi - co->stack.lo) >> 10);   /* KiB */
}

/* uses 900 KiB of its stack in one frame */
static int big_frame(void *arg)
{
    size_t n = (size_t)900 << 10;
    volatile unsigned char buf[n];

    (void)arg;
    for (size_t i = 0; i < n; i += 512)
        buf[i] = (unsigned char)i;
    ASSERT_OK(weft_co_yield());
    for (size_t i = 0; i < n; i += 512)
        if (buf[i] != (unsigned char)i)
            return -EIO;
    return 7;
}

TEST(runtime_stack_size_is_validated)
{
    weft_runtime *rt = NULL;
    size_t bad[] = { 1, 4096, ((size_t)16 << 10) - 1, ((size_t)1 << 30) + 1, SIZE_MAX };
    size_t good[] = { (size_t)16 << 10, (size_t)1 << 30, 20000 };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &(weft_runtime_options){
                                                    .workers = 1, .coro_stack_size = bad[i] }));
        ASSERT(rt == NULL);
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        weft_join *j;
        int out = 0;

        ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){
                                            .workers = 1, .coro_stack_size = good[i] }));
        ASSERT_OK(weft_go(rt, stack_bytes, NULL, &j));
        ASSERT_OK(weft_join_wait(j, &out));
        ASSERT((size_t)out << 10 >= good[i]);
        weft_join_drop(j);
        CT_FREE(rt);
        rt = NULL;
    }
}

TEST(runtime_default_applies_everywhere)
{
    weft_runtime *rt = NULL;
    weft_group *g;
    weft_join *j;
    int out = 0;
    weft_go_options small = { .stack_size = 32 << 10, .name = "small" };

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){
                                        .workers = 2, .coro_stack_size = 2 << 20 }));
    ASSERT_OK(weft_go(rt, stack_bytes, NULL, &j));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT(out >= 2048 && out < 2048 + 16);
    weft_join_drop(j);

    ASSERT_OK(weft_go(rt, big_frame, NULL, &j));      /* 64 KiB would overflow */
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT_EQ(7, out);
    weft_join_drop(j);

    ASSERT_OK(weft_go_opt(rt, stack_bytes, NULL, &small, &j));   /* per spawn wins */
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT(out >= 32 && out < 32 + 16);
    weft_join_drop(j);

    out = 0;
    ASSERT_OK(weft_co_block_on(rt, stack_bytes, NULL, NULL, &out));
    ASSERT(out >= 2048 && out < 2048 + 16);

    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_go_group(g, big_frame, NULL, NULL));
    ASSERT_OK(weft_group_join(g));
    weft_group_free(g);
    CT_FREE(rt);
}

TEST(default_runtime_default_stack)
{
    weft_runtime *rt = ct_runtime(1);
    weft_join *j;
    int out = 0;

    ASSERT_OK(weft_go(rt, stack_bytes, NULL, &j));
    ASSERT_OK(weft_join_wait(j, &out));
    ASSERT((size_t)out << 10 >= WEFT_CO_STACK_DEFAULT);
    weft_join_drop(j);
    CT_FREE(rt);
}
