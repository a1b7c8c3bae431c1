/* SPDX-License-Identifier: MIT */
/* File calls from coroutines (weft_co_fs_*): a round trip through every
 * call on the runtime's default pool, calls outside a coroutine, and a
 * coroutine aborted while its mutation waits in the pool's queue (the call
 * returns -ECANCELED and the mutation never happens). */
#include "coro_test.h"          /* first: it defines _GNU_SOURCE */

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CO_CHECK(cond)                                                        \
    do {                                                                      \
        if (!(cond))                                                          \
            return -__LINE__;                                                 \
    } while (0)

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    ASSERT(d != NULL);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int round_trip(void *arg)
{
    const char *root = arg;
    char d[256], f[256], g[256], buf[16];
    weft_fs_dirent *ents = NULL;
    struct stat st;
    void *data = NULL;
    size_t len = 0;
    int fd;

    snprintf(d, sizeof(d), "%s/d", root);
    snprintf(f, sizeof(f), "%s/d/f", root);
    snprintf(g, sizeof(g), "%s/d/g", root);
    CO_CHECK(weft_co_fs_mkdir(d, 0700) == 0);
    CO_CHECK(weft_co_fs_mkdir(d, 0700) == -EEXIST);
    fd = weft_co_fs_open(f, O_RDWR | O_CREAT, 0600);
    CO_CHECK(fd >= 0);
    CO_CHECK(weft_co_fs_pwrite(fd, "hello", 5, 4) == 5);
    CO_CHECK(weft_co_fs_pread(fd, buf, sizeof(buf), 0) == 9);
    CO_CHECK(memcmp(buf, "\0\0\0\0hello", 9) == 0);
    CO_CHECK(weft_co_fs_pread(fd, buf, sizeof(buf), 100) == 0);
    CO_CHECK(weft_co_fs_write(fd, "ab", 2) == 2);
    CO_CHECK(weft_co_fs_read(fd, buf, 2) == 2 && memcmp(buf, "\0\0", 2) == 0);
    CO_CHECK(weft_co_fs_fsync(fd) == 0);
    CO_CHECK(weft_co_fs_fdatasync(fd) == 0);
    CO_CHECK(weft_co_fs_ftruncate(fd, 3) == 0);
    CO_CHECK(weft_co_fs_fstat(fd, &st) == 0 && st.st_size == 3);
    CO_CHECK(weft_co_fs_close(fd) == 0);
    CO_CHECK(weft_co_fs_close(fd) == -EBADF);
    CO_CHECK(weft_co_fs_pread(fd, buf, 1, 0) == -EBADF);
    CO_CHECK(weft_co_fs_truncate(f, 6) == 0);
    CO_CHECK(weft_co_fs_stat(f, &st) == 0 && st.st_size == 6);
    CO_CHECK(weft_co_fs_rename(f, g) == 0);
    CO_CHECK(weft_co_fs_write_file(f, "new", 3) == 0);
    CO_CHECK(weft_co_fs_read_file(f, &data, &len) == 3 && len == 3);
    CO_CHECK(strcmp(data, "new") == 0);
    weft_fs_free(data);
    CO_CHECK(weft_co_fs_readdir(d, &ents) == 2);
    CO_CHECK(strcmp(ents[0].name, "f") == 0 && ents[0].type == WEFT_FS_FILE);
    CO_CHECK(strcmp(ents[1].name, "g") == 0 && ents[1].type == WEFT_FS_FILE);
    weft_fs_free(ents);
    CO_CHECK(weft_co_fs_unlink(d) == -EISDIR);
    CO_CHECK(weft_co_fs_rmdir(d) == -ENOTEMPTY);
    CO_CHECK(weft_co_fs_unlink(f) == 0);
    CO_CHECK(weft_co_fs_unlink(g) == 0);
    CO_CHECK(weft_co_fs_rmdir(d) == 0);
    CO_CHECK(weft_co_fs_stat(d, &st) == -ENOENT);
    CO_CHECK(weft_co_fs_readdir(NULL, &ents) == -EINVAL);
    CO_CHECK(weft_co_fs_pwrite(1, "x", 1, -1) == -EINVAL);
    return 0;
}

TEST(co_fs_round_trip)
{
    long live = harness_live();
    int fds = count_fds(), res = 1;
    weft_runtime *rt = ct_runtime(2);
    char root[64] = "/tmp/weft-cofs-XXXXXX";

    ASSERT(mkdtemp(root) != NULL);
    ASSERT_OK(weft_co_block_on(rt, round_trip, root, NULL, &res));
    ASSERT_EQ(0, res);                                  /* else: the failing line */
    ASSERT_EQ(0, rmdir(root));
    CT_FREE(rt);
    /* the default pool's threads leave on their own after the shutdown,
     * the last one freeing the pool */
    for (uint64_t end = harness_now_ns() + 60000000000ull;
         harness_count_threads("weft-b") > 0; usleep(1000))
        ASSERT(harness_now_ns() < end);
    ASSERT_EQ(fds, count_fds());
    ASSERT_EQ(live, harness_live());
}

TEST(co_fs_outside_a_coroutine)
{
    struct stat st;
    char buf[4];

    ASSERT_EQ(-EINVAL, weft_co_fs_stat("/", &st));
    ASSERT_EQ(-EINVAL, weft_co_fs_pread(0, buf, sizeof(buf), 0));
    ASSERT_EQ(-EINVAL, weft_co_fs_mkdir("/tmp/weft-never-made", 0700));
    ASSERT_EQ(-1, access("/tmp/weft-never-made", F_OK));
}

/* ---- cancel while queued ---------------------------------------------------- */

typedef struct held {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool open, arrived;
} held;

static void *hold_job(void *arg)
{
    held *h = arg;

    pthread_mutex_lock(&h->m);
    h->arrived = true;
    pthread_cond_broadcast(&h->c);
    while (!h->open)
        pthread_cond_wait(&h->c, &h->m);
    pthread_mutex_unlock(&h->m);
    return NULL;
}

typedef struct mk {
    const char *dir;
    atomic_int started;
    int res;
} mk;

static int make_dir(void *arg)
{
    mk *m = arg;

    atomic_store(&m->started, 1);
    m->res = weft_co_fs_mkdir(m->dir, 0700);           /* queued behind hold_job */
    return m->res;
}

TEST(co_fs_cancel_while_queued_never_happens)
{
    weft_runtime *rt = NULL;
    weft_blocking_pool *pool;
    weft_blocking_job *busy;
    held h = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false };
    char root[64] = "/tmp/weft-cofs-XXXXXX", dir[128];
    mk m = { .dir = dir, .res = 1 };
    weft_join *j;
    int out = 0, err;

    ASSERT(mkdtemp(root) != NULL);
    snprintf(dir, sizeof(dir), "%s/d", root);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2,
                                                             .blocking_threads = 1 }));
    ASSERT_OK(weft_blocking_default(rt, &pool));
    ASSERT_OK(weft_blocking_spawn(pool, hold_job, &h, &busy));
    pthread_mutex_lock(&h.m);
    while (!h.arrived)
        pthread_cond_wait(&h.c, &h.m);
    pthread_mutex_unlock(&h.m);
    ASSERT_OK(weft_go(rt, make_dir, &m, &j));
    while (!atomic_load(&m.started))
        usleep(1000);
    usleep(10000);                    /* most likely parked in the call by now */
    weft_join_abort(j);
    err = weft_join_wait(j, &out);
    ASSERT(err == -ECANCELED || (err == 0 && out == -ECANCELED));
    ASSERT_EQ(-ECANCELED, m.res);
    weft_join_drop(j);
    pthread_mutex_lock(&h.m);
    h.open = true;
    pthread_cond_broadcast(&h.c);
    pthread_mutex_unlock(&h.m);
    ASSERT_OK(weft_blocking_job_wait(busy, NULL));
    weft_blocking_job_drop(busy);
    ASSERT_OK(weft_blocking_spawn(pool, hold_job, &h, &busy));   /* FIFO: after it */
    ASSERT_OK(weft_blocking_job_wait(busy, NULL));
    weft_blocking_job_drop(busy);
    ASSERT_EQ(-1, access(dir, F_OK));                 /* withdrawn: never made */
    ASSERT_EQ(0, rmdir(root));
    CT_FREE(rt);
}
