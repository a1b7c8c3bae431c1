/* SPDX-License-Identifier: MIT */
/* Helpers shared by the coroutine tests (header only; every .c under tests/
 * is its own binary). */
#ifndef WEFT_TESTS_CORO_TEST_H
#define WEFT_TESTS_CORO_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE        /* usleep, pipe, fork */
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#include "harness.h"
#include "weft.h"
#include "coro/coro.h"     /* weft__co_stacks_mapped() */

static inline weft_runtime *ct_runtime(unsigned workers)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = workers }));
    return rt;
}

static inline weft_runtime *ct_current_thread(void)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    return rt;
}

/* Free the runtime; then no coroutine stack may be left mapped (its workers
 * have exited, emptying their caches). */
#define CT_FREE(rt)                                                           \
    do {                                                                      \
        weft_runtime_free(rt);                                                \
        ASSERT_EQ(0, weft__co_stacks_mapped());                               \
    } while (0)

#endif
