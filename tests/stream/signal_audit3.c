/* SPDX-License-Identifier: MIT */
/* Third audit of weft/signal.h, "Restoring": objects whose lives overlap,
 * a set with repeats, a failed new that must leave the mask as it was
 * (-ESHUTDOWN after the runtime's shutdown), out-of-range numbers for
 * weft_signal_block (glibc's reserved ones included). */
#include "stream_test.h"
#include <signal.h>

static bool is_blocked(int sig)
{
    sigset_t cur;

    ASSERT_OK(pthread_sigmask(SIG_BLOCK, NULL, &cur));
    return sigismember(&cur, sig) == 1;
}

TEST(signal_overlapping_objects_and_repeats_restore_once)
{
    weft_runtime *rt;
    weft_signal *a, *b;
    static const int twice[] = { SIGUSR2, SIGUSR2, SIGUSR2 };

    ASSERT(!is_blocked(SIGUSR2));
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    ASSERT_OK(weft_signal_new(rt, twice, 3, &a));   /* repeats are harmless */
    ASSERT(is_blocked(SIGUSR2));
    ASSERT_OK(weft_signal_new(rt, twice, 1, &b));
    weft_signal_free(a);
    ASSERT(is_blocked(SIGUSR2));                    /* b still catches it */
    ASSERT_OK(raise(SIGUSR2));
    ASSERT_EQ(SIGUSR2, weft_signal_try_recv(b, NULL));
    ASSERT_EQ(-EAGAIN, weft_signal_try_recv(b, NULL));
    weft_signal_free(b);
    ASSERT(!is_blocked(SIGUSR2));                   /* restored by the last */
    weft_runtime_free(rt);
}

TEST(signal_new_after_shutdown_leaves_the_mask)
{
    weft_runtime *rt;
    weft_signal *s = (weft_signal *)0x1;
    static const int sigs[] = { SIGUSR2 };

    ASSERT(!is_blocked(SIGUSR2));
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(-ESHUTDOWN, weft_signal_new(rt, sigs, 1, &s));
    ASSERT(s == (weft_signal *)0x1);
    ASSERT(!is_blocked(SIGUSR2));
    weft_runtime_free(rt);
}

TEST(signal_block_refuses_what_cannot_be_caught)
{
    static const int bad[] = { 0, -1, SIGKILL, SIGSTOP, 65, 1000, 32, 33 };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT_EQ(-EINVAL, weft_signal_block(&bad[i], 1));
    ASSERT_OK(weft_signal_block(NULL, 0));
    ASSERT_EQ(-EINVAL, weft_signal_block(NULL, 1));
    /* a set with one bad number blocks nothing */
    ASSERT_EQ(-EINVAL, weft_signal_block((const int[]){ SIGUSR2, SIGKILL }, 2));
    ASSERT(!is_blocked(SIGUSR2));
}
