// SPDX-License-Identifier: MIT
/* Adversarial checks of weft/blocking.h (round 9): the futures' misuse
 * rules. Both the join future and the file operations "follow weft/lock.h's
 * common rules for futures", among them: "A poll without a waker to store
 * (a NULL context, or one whose waker pointer is NULL, as in a zeroed
 * weft_context) is misuse: it returns READY with -EINVAL and changes
 * nothing (the future can be polled again with a proper context; one
 * already READY may answer its result instead)". Both dereferenced the
 * missing waker (SIGSEGV). */
#define _GNU_SOURCE
#include "fs_test.h"

static void *slow_job(void *arg)
{
    ft_gate *g = arg;

    ft_gate_job(g);
    return (void *)(uintptr_t)42;
}

TEST(join_polled_without_a_waker_is_einval_and_changes_nothing)
{
    weft_blocking_pool *p = ft_pool(1);
    ft_gate g = FT_GATE_INIT;
    weft_blocking_job *job;
    weft_blocking_join j;
    weft_context zero;
    void *ret = NULL;
    int r;

    memset(&zero, 0, sizeof(zero));
    ASSERT_OK(weft_blocking_spawn(p, slow_job, &g, &job));
    weft_blocking_join_init(&j, job, &ret);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&j, NULL, &r));
    ASSERT_EQ(-EINVAL, r);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&j, &zero, &r));
    ASSERT_EQ(-EINVAL, r);
    /* nothing changed: a proper poll waits for the job, then has its result */
    ft_gate_open(&g);
    {
        ft_parker t = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
        weft_waker w = { &t, &ft_vtable };
        weft_context cx = weft_context_from_waker(&w);

        while (weft_blocking_join_poll(&j, &cx, &r) == WEFT_PENDING)
            ft_park(&t);
    }
    ASSERT_EQ(0, r);
    ASSERT_EQ(42, (long)(uintptr_t)ret);
    /* READY: the result again, whatever the context */
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&j, NULL, &r));
    ASSERT_EQ(0, r);
    weft_blocking_join_drop(&j);
    weft_blocking_job_drop(job);
    weft_blocking_pool_free(p);
}

TEST(fs_op_polled_without_a_waker_is_einval_and_queues_nothing)
{
    weft_blocking_pool *p = ft_pool(1);
    weft_context zero;
    struct stat st;
    weft_fs_op op;
    ssize_t r;

    memset(&zero, 0, sizeof(zero));
    weft_fs_stat_init(&op, p, "/tmp", &st);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_fs_poll(&op, NULL, &r));
    ASSERT_EQ(-EINVAL, r);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_fs_poll(&op, &zero, &r));
    ASSERT_EQ(-EINVAL, r);
    /* nothing was queued: the pool never started a thread */
    ASSERT_EQ(0, weft_blocking_pool_threads(p));
    /* and the operation still runs when polled properly */
    ASSERT_EQ(0, ft_drive(&op));
    ASSERT(S_ISDIR(st.st_mode));
    /* a running one: misuse answers -EINVAL, the operation goes on */
    {
        ft_gate g = FT_GATE_INIT;
        weft_blocking_job *hold;
        ft_parker t = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
        weft_waker w = { &t, &ft_vtable };
        weft_context cx = weft_context_from_waker(&w);

        ASSERT_OK(weft_blocking_spawn(p, ft_gate_job, &g, &hold));
        weft_fs_stat_init(&op, p, "/tmp", &st);
        ASSERT_EQ(WEFT_PENDING, weft_fs_poll(&op, &cx, &r));   /* queued behind the gate */
        r = 1;
        ASSERT_EQ(WEFT_READY, weft_fs_poll(&op, &zero, &r));
        ASSERT_EQ(-EINVAL, r);
        ft_gate_open(&g);
        ASSERT_EQ(0, ft_drive(&op));
        ASSERT_OK(weft_blocking_job_wait(hold, NULL));
        weft_blocking_job_drop(hold);
    }
    weft_blocking_pool_free(p);
}
