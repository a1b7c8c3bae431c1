// SPDX-License-Identifier: MIT
/* Adversarial checks of weft/blocking.h's file operations: "a dropped close
 * still closes fd, so fd is never left open for nobody" at every point of
 * the close's life (never polled; queued and then cancelled by a pool
 * shutdown), huge sizes and offsets, and what a polled close that a
 * shutdown cancelled leaves (fd still the caller's). */
#define _GNU_SOURCE
#include "fs_test.h"

#include <stdint.h>

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static int open_null(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    ASSERT(fd >= 0);
    return fd;
}

/* Dropped before its first poll: the close happens all the same (on the
 * pool, detached; the pool's drain waits for it). */
TEST(fs_close_dropped_unpolled_still_closes)
{
    weft_blocking_pool *p = ft_pool(1);
    weft_fs_op op;
    int fd = open_null();

    weft_fs_close_init(&op, p, fd);
    weft_fs_drop(&op);
    weft_fs_drop(&op);                        /* idempotent: no second close */
    ft_pool_drain(p);
    ASSERT(!fd_open(fd));
    weft_blocking_pool_free(p);
}

/* The same with a NULL pool off a worker (no default pool to use): closed
 * on the spot. */
TEST(fs_close_dropped_unpolled_null_pool_off_worker)
{
    weft_fs_op op;
    int fd = open_null();

    weft_fs_close_init(&op, NULL, fd);
    weft_fs_drop(&op);
    ASSERT(!fd_open(fd));
}

/* Queued behind a busy thread, dropped, then the pool shuts down (which
 * cancels queued jobs): the close still happens. */
TEST(fs_close_dropped_then_pool_shutdown_still_closes)
{
    weft_blocking_pool *p = ft_pool(1);
    ft_gate g = FT_GATE_INIT;
    weft_blocking_job *gate;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    weft_fs_op op;
    ssize_t res = 0;
    int fd = open_null();

    ASSERT_OK(weft_blocking_spawn(p, ft_gate_job, &g, &gate));
    for (int i = 0; i < 20000 && !ft_gate_arrived(&g); i++)
        usleep(1000);
    ASSERT(ft_gate_arrived(&g));
    weft_fs_close_init(&op, p, fd);
    ASSERT_EQ(WEFT_PENDING, weft_fs_poll(&op, &cx, &res));   /* queued */
    weft_fs_drop(&op);
    ASSERT_EQ(1, weft_blocking_pool_shutdown(p, 0));          /* cancels the close */
    ft_gate_open(&g);
    ASSERT_OK(weft_blocking_job_wait(gate, NULL));
    weft_blocking_job_drop(gate);
    ASSERT(!fd_open(fd));
    weft_blocking_pool_free(p);
}

/* A close the owner keeps and that a shutdown cancels reports -ECANCELED
 * and leaves fd open: it is still the caller's (closing it again is no
 * double close). */
TEST(fs_close_polled_and_cancelled_leaves_fd_to_the_caller)
{
    weft_blocking_pool *p = ft_pool(1);
    ft_gate g = FT_GATE_INIT;
    weft_blocking_job *gate;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    weft_fs_op op;
    ssize_t res = 0;
    int fd = open_null();

    ASSERT_OK(weft_blocking_spawn(p, ft_gate_job, &g, &gate));
    for (int i = 0; i < 20000 && !ft_gate_arrived(&g); i++)
        usleep(1000);
    weft_fs_close_init(&op, p, fd);
    ASSERT_EQ(WEFT_PENDING, weft_fs_poll(&op, &cx, &res));
    ASSERT_EQ(1, weft_blocking_pool_shutdown(p, 0));
    ASSERT_EQ(WEFT_READY, weft_fs_poll(&op, &cx, &res));
    ASSERT_EQ(-ECANCELED, res);
    weft_fs_drop(&op);
    ft_gate_open(&g);
    ASSERT_OK(weft_blocking_job_wait(gate, NULL));
    weft_blocking_job_drop(gate);
    ASSERT(fd_open(fd));
    ASSERT_EQ(0, close(fd));
    weft_blocking_pool_free(p);
}

/* A close polled on a shut-down pool: -ESHUTDOWN, fd untouched. */
TEST(fs_close_on_a_shut_down_pool_leaves_fd)
{
    weft_blocking_pool *p = ft_pool(1);
    weft_fs_op op;
    int fd = open_null();

    ASSERT_EQ(0, weft_blocking_pool_shutdown(p, 0));
    weft_fs_close_init(&op, p, fd);
    ASSERT_EQ(-ESHUTDOWN, ft_drive(&op));
    ASSERT(fd_open(fd));
    ASSERT_EQ(0, close(fd));
    weft_blocking_pool_free(p);
}

/* Absurd sizes and offsets: -EINVAL (writes past WEFT_FS_WRITE_MAX,
 * negative offsets), a short read for reads past WEFT_FS_READ_MAX, and
 * nothing reaches the pool for the bad ones. */
TEST(fs_absurd_sizes_and_offsets)
{
    weft_blocking_pool *p = ft_pool(1);
    weft_fs_op op;
    char buf[16];
    int fd = open_null();
    int fds0 = ft_count_fds();

    weft_fs_write_init(&op, p, fd, buf, SIZE_MAX);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_write_init(&op, p, fd, buf, WEFT_FS_WRITE_MAX + 1);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_pwrite_init(&op, p, fd, buf, 1, -1);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_pwrite_init(&op, p, fd, buf, SIZE_MAX, 0);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_write_file_init(&op, p, "/tmp/weft-never-written", buf, SIZE_MAX);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_pread_init(&op, p, fd, buf, 1, INT64_MIN);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_truncate_init(&op, p, "/tmp/weft-never-written", -5);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_ftruncate_init(&op, p, fd, INT64_MIN);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    ASSERT_EQ(0, weft_blocking_pool_threads(p));      /* none reached the pool */
    ASSERT_EQ(-1, access("/tmp/weft-never-written", F_OK));
    /* a huge read is a short read of /dev/null: 0 (end of file) */
    weft_fs_read_init(&op, p, fd, buf, SIZE_MAX);
    ASSERT_EQ(0, ft_drive(&op));
    weft_fs_pread_init(&op, p, fd, buf, SIZE_MAX, INT64_MAX);
    ASSERT(ft_drive(&op) <= 0);                /* the kernel's -EINVAL: off + len overflows */
    /* a huge offset on a regular file: past the end, 0 */
    {
        char dir[64], path[256];
        int f;

        ft_mkdtemp(dir, "audit");
        ft_join(path, dir, "f");
        f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        ASSERT(f >= 0);
        weft_fs_pread_init(&op, p, f, buf, sizeof(buf), INT64_MAX - 4096);
        ASSERT_EQ(0, ft_drive(&op));               /* past the end of file */
        weft_fs_pwrite_init(&op, p, f, "x", 1, INT64_MAX);
        ASSERT(ft_drive(&op) < 0);                 /* -EFBIG / -EINVAL, no crash */
        close(f);
        ft_rm_tree(dir);
    }
    ASSERT_EQ(fds0, ft_count_fds());              /* no duplicate left behind */
    close(fd);
    weft_blocking_pool_free(p);
}

/* read_file: -EFBIG past 1 GiB (WEFT_FS_WRITE_MAX), found from the size
 * without reading (a sparse file: no disk used). Before the audit the
 * buffer doubled to 2 GiB and a file of 1 GiB + 1 byte was read whole. */
TEST(fs_read_file_past_one_gib_is_efbig)
{
    weft_blocking_pool *p = ft_pool(1);
    weft_fs_op op;
    void *data = (void *)1;
    size_t len = 7;
    char dir[64], path[256];
    int f;

    ft_mkdtemp(dir, "audit");
    ft_join(path, dir, "big");
    f = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ASSERT(f >= 0);
    ASSERT_EQ(0, ftruncate(f, (off_t)WEFT_FS_WRITE_MAX + 1));
    close(f);
    weft_fs_read_file_init(&op, p, path, &data, &len);
    ASSERT_EQ(-EFBIG, ft_drive(&op));
    ASSERT(data == (void *)1);                    /* untouched on failure */
    ASSERT_EQ(7, len);
    ft_rm_tree(dir);
    weft_blocking_pool_free(p);
}
