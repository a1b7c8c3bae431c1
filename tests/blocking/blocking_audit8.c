// SPDX-License-Identifier: MIT
/* Audit 8 of weft/blocking.h under races (harness_scale'd for the
 * sanitizer builds): spawns from several threads racing the pool's
 * shutdown (each job that was spawned either ran once or was cancelled and
 * never ran, and its handle says which); file operations dropped right
 * after their first poll, racing the pool thread that takes them (each
 * withdrawn or run whole, nothing leaked, no descriptor left); join
 * futures dropped while their job completes. */
#define _GNU_SOURCE
#include "fs_test.h"

#include <stdatomic.h>
#include <stdint.h>

/* ---- spawns racing a shutdown -------------------------------------------------------- */
typedef struct race_ctx {
    weft_blocking_pool *p;
    atomic_int go;
    atomic_long runs, spawned, refused, ran_ok, cancelled, bad;
    size_t per_thread;
} race_ctx;

static void *count_job(void *arg)
{
    race_ctx *c = arg;

    atomic_fetch_add(&c->runs, 1);
    return (void *)(uintptr_t)7;
}

static void *spawner(void *arg)
{
    race_ctx *c = arg;

    while (!atomic_load(&c->go))
        ;
    for (size_t i = 0; i < c->per_thread; i++) {
        weft_blocking_job *j = NULL;
        void *ret = NULL;
        int r = weft_blocking_spawn(c->p, count_job, c, (i & 1) ? &j : NULL);

        if (r == -ESHUTDOWN) {
            atomic_fetch_add(&c->refused, 1);
            break;
        }
        if (r != 0) {
            atomic_fetch_add(&c->bad, 1);
            continue;
        }
        atomic_fetch_add(&c->spawned, 1);
        if (j == NULL)
            continue;
        r = weft_blocking_job_wait(j, &ret);
        if (r == 0 && ret == (void *)(uintptr_t)7)
            atomic_fetch_add(&c->ran_ok, 1);
        else if (r == -ECANCELED)
            atomic_fetch_add(&c->cancelled, 1);
        else
            atomic_fetch_add(&c->bad, 1);
        if (weft_blocking_job_is_complete(j) != true)
            atomic_fetch_add(&c->bad, 1);
        weft_blocking_job_drop(j);
    }
    return NULL;
}

TEST(spawns_racing_the_pool_shutdown_run_once_or_are_cancelled)
{
    for (int round = 0; round < (int)harness_scale(30); round++) {
        race_ctx c;
        pthread_t th[3];
        int left;

        memset(&c, 0, sizeof(c));
        c.per_thread = harness_scale(3000);
        ASSERT_OK(weft_blocking_pool_new(&c.p, &(weft_blocking_options){ .max_threads = 2 }));
        for (int i = 0; i < 3; i++)
            ASSERT_EQ(0, pthread_create(&th[i], NULL, spawner, &c));
        atomic_store(&c.go, 1);
        usleep((useconds_t)(200 + 100 * round));
        left = weft_blocking_pool_shutdown(c.p, WEFT_BLOCKING_FOREVER);
        ASSERT_EQ(0, left);
        for (int i = 0; i < 3; i++)
            ASSERT_EQ(0, pthread_join(th[i], NULL));
        ASSERT_EQ(0, atomic_load(&c.bad));
        /* every job spawned ran at most once, every one waited on ran
         * exactly when its wait said so */
        ASSERT(atomic_load(&c.runs) <= atomic_load(&c.spawned));
        ASSERT(atomic_load(&c.ran_ok) <= atomic_load(&c.runs));
        ASSERT_EQ(0, weft_blocking_pool_threads(c.p));
        ASSERT_EQ(-ESHUTDOWN, weft_blocking_spawn(c.p, count_job, &c, NULL));
        weft_blocking_pool_free(c.p);
    }
    ASSERT_EQ(0, harness_live());
}

/* ---- drops racing the pool thread that takes the job --------------------------------- */
TEST(file_operations_dropped_after_their_first_poll_leak_nothing)
{
    weft_blocking_pool *p = ft_pool(2);
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    char dir[64], path[256], path2[256], buf[64];
    int fd, fds0;
    struct stat st;
    size_t n = harness_scale(4000);

    ft_mkdtemp(dir, "audit8");
    ft_join(path, dir, "f");
    ft_join(path2, dir, "g");
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT(fd >= 0);
    ASSERT_EQ(5, write(fd, "hello", 5));
    fds0 = ft_count_fds();
    for (size_t i = 0; i < n; i++) {
        weft_fs_op op;
        ssize_t res;
        void *data = NULL;
        weft_fs_dirent *ents = NULL;

        switch (i % 6) {
        case 0: weft_fs_stat_init(&op, p, path, &st); break;
        case 1: weft_fs_pread_init(&op, p, fd, buf, sizeof(buf), 0); break;
        case 2: weft_fs_open_init(&op, p, path, O_RDONLY, 0); break;
        case 3: weft_fs_read_file_init(&op, p, path, &data, NULL); break;
        case 4: weft_fs_readdir_init(&op, p, dir, &ents, NULL); break;
        default: weft_fs_fstat_init(&op, p, fd, &st); break;
        }
        /* queues the job; the pool thread may take it before the drop */
        if (weft_fs_poll(&op, &cx, &res) == WEFT_READY) {
            if (i % 6 == 2 && res >= 0)
                close((int)res);
            weft_fs_free(data);
            weft_fs_free(ents);
        }
        weft_fs_drop(&op);
        weft_fs_drop(&op);                  /* idempotent */
    }
    ft_pool_drain(p);
    ft_pool_drain(p);
    ASSERT_OK(weft_blocking_pool_shutdown(p, WEFT_BLOCKING_FOREVER));
    ASSERT_EQ(fds0, ft_count_fds());        /* no duplicate, no opened file left */
    close(fd);
    ft_rm_tree(dir);
    weft_blocking_pool_free(p);
    ASSERT_EQ(0, harness_live());
}

/* ---- join futures dropped while their job completes ---------------------------------- */
static void *quick_job(void *arg)
{
    return arg;
}

TEST(join_futures_dropped_while_their_job_completes)
{
    weft_blocking_pool *p = ft_pool(2);
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    size_t n = harness_scale(20000);

    for (size_t i = 0; i < n; i++) {
        weft_blocking_job *j = NULL;
        weft_blocking_join jf;
        void *ret = NULL;
        int r = 99;

        ASSERT_OK(weft_blocking_spawn(p, quick_job, (void *)(uintptr_t)(i + 1), &j));
        weft_blocking_join_init(&jf, j, &ret);
        (void)weft_blocking_join_poll(&jf, &cx, &r);
        weft_blocking_join_drop(&jf);
        /* the result stays with the handle: a new join reads it */
        ASSERT_OK(weft_blocking_job_wait(j, &ret));
        ASSERT_EQ(i + 1, (uintptr_t)ret);
        weft_blocking_join_init(&jf, j, &ret);
        ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(&jf, &cx, &r));
        ASSERT_EQ(0, r);
        weft_blocking_join_drop(&jf);
        weft_blocking_job_drop(j);
    }
    weft_blocking_pool_free(p);
    ASSERT_EQ(0, harness_live());
}

/* ---- any negative timeout waits as long as it takes ---------------------------------- */
static atomic_int slow_started;

static void *slow_job(void *arg)
{
    atomic_store(&slow_started, 1);
    usleep(20000);
    return arg;
}

TEST(shutdown_with_any_negative_timeout_waits_for_running_jobs)
{
    static const int timeouts[] = { WEFT_BLOCKING_FOREVER, -2, INT32_MIN };

    for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
        weft_blocking_pool *p = ft_pool(1);
        weft_blocking_job *j = NULL;

        void *ret = NULL;

        atomic_store(&slow_started, 0);
        ASSERT_OK(weft_blocking_spawn(p, slow_job, (void *)(uintptr_t)3, &j));
        while (!atomic_load(&slow_started))
            usleep(100);
        ASSERT_EQ(0, weft_blocking_pool_shutdown(p, timeouts[i]));   /* it waited */
        ASSERT_OK(weft_blocking_job_try(j, &ret));                    /* ran whole */
        ASSERT_EQ(3, (uintptr_t)ret);
        ASSERT_EQ(0, weft_blocking_pool_threads(p));
        weft_blocking_job_drop(j);
        weft_blocking_pool_free(p);
    }
}
