// SPDX-License-Identifier: MIT
/* Ninth audit of weft/adapters/cares.h: the lookup future polled without a
 * waker (a NULL context, or a zeroed weft_context) answers -EINVAL and
 * changes nothing; it dereferenced the missing waker (SIGSEGV). Needs no
 * server: "localhost" from the hosts file only, so the future, awaited
 * properly after the misuse, resolves (not the -EINVAL of a future polled
 * after READY). */
#include "adapter_test.h"

#include "weft/adapters/cares.h"

WEFT_DEFINE_FUTURE_STATIC(weft_ares_getaddrinfo, weft_ares_getaddrinfo_poll,
                          weft_ares_getaddrinfo_drop, weft_ares_result);

__attribute__((constructor)) static void global_init(void)
{
    ares_library_init(ARES_LIB_INIT_ALL);
}

__attribute__((destructor)) static void global_cleanup(void)
{
    ares_library_cleanup();
}

TEST(lookup_polled_without_a_waker_is_einval_and_changes_nothing)
{
    weft_runtime *rt = at_runtime(1);
    weft_ares_options o = { .servers = "127.0.0.1:1", .lookups = "f" };
    weft_ares_result res = { 1, NULL };
    weft_ares_getaddrinfo g;
    weft_context zero;
    weft_ares *a;

    memset(&zero, 0, sizeof(zero));
    ASSERT_OK(weft_ares_new(rt, &o, &a));
    weft_ares_getaddrinfo_init(&g, a, "localhost", NULL, NULL);
    ASSERT_EQ(WEFT_READY, weft_ares_getaddrinfo_poll(&g, NULL, &res));
    ASSERT_EQ(-EINVAL, res.result);
    ASSERT(res.ai == NULL);
    res.result = 1;
    ASSERT_EQ(WEFT_READY, weft_ares_getaddrinfo_poll(&g, &zero, &res));
    ASSERT_EQ(-EINVAL, res.result);
    res.result = 1;
    ASSERT_OK(weft_block_on(rt, &weft_ares_getaddrinfo_future, &g, &res));
    ASSERT_EQ(0, res.result);
    ASSERT(res.ai != NULL);
    ares_freeaddrinfo(res.ai);
    weft_ares_free(a);
    weft_runtime_free(rt);
}
