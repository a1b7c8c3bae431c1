/* SPDX-License-Identifier: MIT */
/* Migration: a coroutine resumed on another worker keeps its errno (saved
 * when it parks, restored on the thread that resumes it) and its locals;
 * two coroutines sharing a worker each keep their own. */
#include "coro_test.h"

#include <pthread.h>
#include <unistd.h>

/* Read errno through a call the compiler cannot see into: within one
 * function it may otherwise keep the address of the first thread's errno
 * across a blocking call (__errno_location() is declared const). */
__attribute__((noinline)) static int errno_now(void)
{
    __asm__ __volatile__("" : : : "memory");
    return errno;
}

__attribute__((noinline)) static void errno_set(int v)
{
    __asm__ __volatile__("" : : : "memory");
    errno = v;
}

__attribute__((noinline)) static pthread_t self_now(void)
{
    __asm__ __volatile__("" : : : "memory");
    return pthread_self();
}

static atomic_int migrations;
static atomic_int errno_bad;

static int hopper(void *arg)
{
    int mine = 1000 + (int)(intptr_t)arg;
    pthread_t last = self_now();
    volatile int local = mine;

    errno_set(mine);
    for (int i = 0; i < 100; i++) {
        int err = (i % 4 == 0) ? weft_co_sleep(1) : weft_co_yield();

        ASSERT_OK(err);
        if (errno_now() != mine)
            atomic_fetch_add(&errno_bad, 1);
        ASSERT_EQ(mine, local);
        if (!pthread_equal(last, self_now())) {
            atomic_fetch_add(&migrations, 1);
            last = self_now();
        }
        /* a different value each round, still ours after the next park */
        mine++;
        errno_set(mine);
        local = mine;
    }
    return 0;
}

TEST(errno_follows_the_coroutine)
{
    weft_runtime *rt = ct_runtime(4);
    int n = (int)harness_scale(64) < 8 ? 8 : (int)harness_scale(64);

    for (int round = 0; round < 20; round++) {
        weft_join **js = calloc((size_t)n, sizeof(*js));

        ASSERT(js != NULL);
        for (int i = 0; i < n; i++)
            ASSERT_OK(weft_go(rt, hopper, (void *)(intptr_t)(i * 1000), &js[i]));
        for (int i = 0; i < n; i++) {
            ASSERT_OK(weft_join_wait(js[i], NULL));
            weft_join_drop(js[i]);
        }
        free(js);
        if (atomic_load(&migrations) > 0)
            break;
    }
    ASSERT_EQ(0, atomic_load(&errno_bad));
    /* the point of the test: some coroutine did change threads */
    ASSERT(atomic_load(&migrations) > 0);
    CT_FREE(rt);
}

/* Two coroutines on one worker, interleaved at every yield, each keeps its
 * own errno. */
static int errno_owner(void *arg)
{
    int v = (int)(intptr_t)arg;

    for (int i = 0; i < 200; i++) {
        errno_set(v);
        ASSERT_OK(weft_co_yield());
        ASSERT_EQ(v, errno_now());
    }
    return 0;
}

TEST(errno_per_coroutine)
{
    weft_runtime *rt = ct_runtime(1);
    weft_join *a, *b;

    ASSERT_OK(weft_go(rt, errno_owner, (void *)(intptr_t)5, &a));
    ASSERT_OK(weft_go(rt, errno_owner, (void *)(intptr_t)9, &b));
    ASSERT_OK(weft_join_wait(a, NULL));
    ASSERT_OK(weft_join_wait(b, NULL));
    weft_join_drop(a);
    weft_join_drop(b);
    CT_FREE(rt);
}
