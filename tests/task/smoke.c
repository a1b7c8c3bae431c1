/* SPDX-License-Identifier: MIT */
#include "harness.h"
#include "weft.h"

typedef struct add {
    int a, b;
} add;

static weft_poll add_poll(add *f, weft_context *cx, void *out)
{
    (void)cx;
    *(int *)out = f->a + f->b;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(add, add_poll, NULL, int);

TEST(block_on_returns_output)
{
    weft_runtime *rt;
    int out = 0;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_block_on(rt, &add_future, &(add){ 2, 3 }, &out));
    ASSERT_EQ(5, out);
    weft_runtime_free(rt);
}
