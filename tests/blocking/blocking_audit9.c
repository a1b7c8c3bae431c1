/* SPDX-License-Identifier: MIT */
/* Audit 9 of weft/blocking.h: a poll without a waker (weft/core.h,
 * "Context": a NULL context, or a zeroed one) is misuse that every future
 * answers READY with -EINVAL, changing nothing. A blocking join of a job
 * still running dereferenced the missing waker (SIGSEGV); a file future
 * started its job first (one allocation, a pool thread) and then did. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "badcx.h"
#include "weft.h"

static atomic_int go;

static void *held_job(void *arg)
{
    while (!atomic_load(&go))
        usleep(1000);
    return arg;
}

struct rig {
    weft_blocking_job *job;
};

static void join_body(weft_context *cx, void *arg)
{
    struct rig *r = arg;
    weft_blocking_join j;
    weft_context zero;
    int res = 1;

    memset(&zero, 0, sizeof(zero));
    weft_blocking_join_init(&j, r->job, NULL);
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&j, &zero, &res));
    ASSERT_EQ(-EINVAL, res);
    res = 1;
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&j, NULL, &res));
    ASSERT_EQ(-EINVAL, res);
    ASSERT_EQ(WEFT_PENDING, weft_blocking_join_poll(&j, cx, &res));     /* held: waits */
    res = 1;
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&j, &zero, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_blocking_join_drop(&j);
}

static void fs_body(weft_context *cx, void *arg)
{
    struct stat st;
    weft_fs_op op;
    weft_context zero;
    ssize_t res = 1;

    (void)arg;
    memset(&zero, 0, sizeof(zero));
    weft_fs_stat_init(&op, NULL, "/", &st);
    ASSERT_EQ(WEFT_READY, weft_fs_poll(&op, &zero, &res));
    ASSERT_EQ(-EINVAL, (long long)res);
    res = 1;
    ASSERT_EQ(WEFT_READY, weft_fs_poll(&op, NULL, &res));
    ASSERT_EQ(-EINVAL, (long long)res);
    res = 1;
    if (weft_fs_poll(&op, cx, &res) == WEFT_PENDING) {     /* started now */
        ASSERT_EQ(WEFT_READY, weft_fs_poll(&op, &zero, &res));
        ASSERT_EQ(-EINVAL, (long long)res);
    } else {
        ASSERT_EQ(0, (long long)res);
    }
    weft_fs_drop(&op);
}

TEST(a_blocking_join_polled_without_a_waker_is_einval)
{
    weft_runtime *rt = NULL;
    weft_blocking_pool *pool;
    struct rig r;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_blocking_default(rt, &pool));
    ASSERT_OK(weft_blocking_spawn(pool, held_job, NULL, &r.job));
    badcx_in_task(rt, join_body, &r);
    atomic_store(&go, 1);
    ASSERT_OK(weft_blocking_job_wait(r.job, NULL));
    weft_blocking_job_drop(r.job);
    weft_runtime_free(rt);
}

TEST(a_file_future_polled_without_a_waker_is_einval_and_starts_nothing)
{
    weft_runtime *rt = NULL;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    badcx_in_task(rt, fs_body, NULL);
    weft_runtime_free(rt);
}
