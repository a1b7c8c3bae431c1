// SPDX-License-Identifier: MIT
/* A fifth look at weft/blocking.h's pool promises (public API only): every
 * signal blocked on pool threads, thread names cut to 15 characters, the
 * option bounds, a keep-alive of "for ever" that still lets the pool go,
 * weft_blocking_pool_free() from one of the pool's own jobs, results
 * reported to every reader, a job's handle outliving its pool. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

static void *sigmask_job(void *arg)
{
    sigset_t cur;
    int *missing = arg;

    *missing = 0;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP || (s > 31 && s < SIGRTMIN))
            continue;                 /* cannot be blocked / libc's own */
        if (!sigismember(&cur, s))
            (*missing)++;
    }
    return NULL;
}

/* "run with every signal blocked", even when the spawning thread blocks
 * none. */
TEST(pool_threads_block_every_signal)
{
    weft_blocking_pool *pool = NULL;
    weft_blocking_job *job = NULL;
    sigset_t none;
    int missing = -1;

    sigemptyset(&none);
    ASSERT_EQ(0, pthread_sigmask(SIG_SETMASK, &none, NULL));
    ASSERT_OK(weft_blocking_pool_new(&pool, NULL));
    ASSERT_OK(weft_blocking_spawn(pool, sigmask_job, &missing, &job));
    ASSERT_OK(weft_blocking_job_wait(job, NULL));
    ASSERT_EQ(0, missing);
    weft_blocking_job_drop(job);
    weft_blocking_pool_free(pool);
}

static void *name_job(void *arg)
{
    char *name = arg;

    pthread_getname_np(pthread_self(), name, 16);
    return NULL;
}

/* prefix + index, cut to the 15 characters Linux keeps; NULL: "weft-b". */
TEST(pool_thread_names)
{
    static const char *const prefixes[] = { NULL, "p-", "fourteen-chars", "a-very-long-prefix-x" };

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        weft_blocking_pool *pool = NULL;
        weft_blocking_job *job = NULL;
        char name[16] = "", want[64];

        ASSERT_OK(weft_blocking_pool_new(&pool, &(weft_blocking_options){
                      .max_threads = 1, .thread_name_prefix = prefixes[i] }));
        ASSERT_OK(weft_blocking_spawn(pool, name_job, name, &job));
        ASSERT_OK(weft_blocking_job_wait(job, NULL));
        snprintf(want, sizeof(want), "%s0", prefixes[i] ? prefixes[i] : "weft-b");
        want[15] = '\0';
        if (strcmp(want, name) != 0)
            harness_fail(__FILE__, __LINE__, "thread name \"%s\", expected \"%s\"", name, want);
        weft_blocking_job_drop(job);
        weft_blocking_pool_free(pool);
    }
}

static void *ret_arg(void *arg)
{
    return arg;
}

/* Bounds: max_threads 1 .. WEFT_BLOCKING_MAX_THREADS (0: the default);
 * above is -EINVAL with *out untouched; any keep_alive_ms works, and a pool
 * whose idle thread would wait for ever still frees at once. */
TEST(pool_option_bounds_and_endless_keep_alive)
{
    weft_blocking_pool *pool = (weft_blocking_pool *)0x1;
    weft_blocking_job *job = NULL;
    void *ret = NULL;

    ASSERT_EQ(-EINVAL, weft_blocking_pool_new(&pool, &(weft_blocking_options){
                           .max_threads = WEFT_BLOCKING_MAX_THREADS + 1 }));
    ASSERT_EQ(-EINVAL, weft_blocking_pool_new(&pool, &(weft_blocking_options){
                           .max_threads = UINT_MAX }));
    ASSERT((weft_blocking_pool *)0x1 == pool);
    ASSERT_EQ(-EINVAL, weft_blocking_pool_new(NULL, NULL));
    ASSERT_OK(weft_blocking_pool_new(&pool, &(weft_blocking_options){
                  .max_threads = WEFT_BLOCKING_MAX_THREADS, .keep_alive_ms = UINT_MAX }));
    ASSERT_OK(weft_blocking_spawn(pool, ret_arg, &ret, &job));
    ASSERT_OK(weft_blocking_job_wait(job, &ret));
    ASSERT(ret == &ret);
    /* the idle thread waits "UINT_MAX ms"; free must not */
    weft_blocking_pool_free(pool);    /* a hang here is the test's timeout */
    /* the handle outlives its pool, and every reader sees the result */
    ret = NULL;
    ASSERT_OK(weft_blocking_job_try(job, &ret));
    ASSERT(ret == &ret);
    ret = NULL;
    ASSERT_OK(weft_blocking_job_wait(job, &ret));
    ASSERT(ret == &ret);
    ASSERT(weft_blocking_job_is_complete(job));
    weft_blocking_job_drop(job);
}

/* weft_blocking_pool_free() from the pool's own job: "shuts the pool down
 * without waiting"; the job finishes and its result is read. */
static weft_blocking_pool *self_pool;
static atomic_int self_freed;
static void *free_own_pool(void *arg)
{
    weft_blocking_pool_free(self_pool);
    atomic_store(&self_freed, 1);
    return arg;
}

TEST(pool_free_from_its_own_job)
{
    weft_blocking_job *job = NULL;
    void *ret = NULL;
    int token = 0;

    atomic_store(&self_freed, 0);
    ASSERT_OK(weft_blocking_pool_new(&self_pool, NULL));
    ASSERT_OK(weft_blocking_spawn(self_pool, free_own_pool, &token, &job));
    ASSERT_OK(weft_blocking_job_wait(job, &ret));
    ASSERT(ret == &token);
    ASSERT_EQ(1, atomic_load(&self_freed));
    weft_blocking_job_drop(job);
    /* the pool's thread leaves on its own: the harness's leak check (and
     * ASan's) sees its memory released once it has */
    for (int i = 0; i < 20000 && harness_count_threads("weft-b") > 0; i++)
        usleep(1000);
    ASSERT_EQ(0, harness_count_threads("weft-b"));
}

/* A detached job (no handle) still runs; spawn on a shut-down pool is
 * -ESHUTDOWN with *job untouched and fn never run. */
static atomic_int detached_ran;
static void *mark_job(void *arg)
{
    (void)arg;
    atomic_fetch_add(&detached_ran, 1);
    return NULL;
}

TEST(detached_jobs_run_and_shutdown_refuses)
{
    weft_blocking_pool *pool = NULL;
    weft_blocking_job *job = (weft_blocking_job *)0x1;

    atomic_store(&detached_ran, 0);
    ASSERT_OK(weft_blocking_pool_new(&pool, NULL));
    for (int i = 0; i < 8; i++)
        ASSERT_OK(weft_blocking_spawn(pool, mark_job, NULL, NULL));
    ASSERT_EQ(0, weft_blocking_pool_shutdown(pool, WEFT_BLOCKING_FOREVER));
    ASSERT(atomic_load(&detached_ran) <= 8);
    {
        int before = atomic_load(&detached_ran);

        ASSERT_EQ(-ESHUTDOWN, weft_blocking_spawn(pool, mark_job, NULL, &job));
        ASSERT((weft_blocking_job *)0x1 == job);
        ASSERT_EQ(-ESHUTDOWN, weft_blocking_spawn(pool, mark_job, NULL, NULL));
        ASSERT_EQ(-EINVAL, weft_blocking_spawn(pool, NULL, NULL, NULL));
        ASSERT_EQ(before, atomic_load(&detached_ran));
    }
    ASSERT_EQ(0, weft_blocking_pool_shutdown(pool, 0));   /* again: fine */
    weft_blocking_pool_free(pool);
    ASSERT_EQ(0u, weft_blocking_pool_threads(NULL));
    ASSERT_EQ(-EINVAL, weft_blocking_job_try(NULL, NULL));
    ASSERT_EQ(-EINVAL, weft_blocking_job_wait(NULL, NULL));
    ASSERT(!weft_blocking_job_is_complete(NULL));
    weft_blocking_job_drop(NULL);
}
