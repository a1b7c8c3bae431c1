// SPDX-License-Identifier: MIT
/* Adversarial checks of weft/blocking.h (round 9): file offsets at the
 * largest value off_t holds. */
#define _GNU_SOURCE
#include "fs_test.h"

#include <stdint.h>

#define OFF_T_MAX ((off_t)(((uintmax_t)1 << (sizeof(off_t) * 8 - 1)) - 1))

static int tmp_file(char *path)
{
    int fd;

    snprintf(path, 64, "/tmp/weft-fs9-XXXXXX");
    fd = mkostemp(path, O_CLOEXEC);
    ASSERT(fd >= 0);
    ASSERT_EQ(5, write(fd, "hello", 5));
    return fd;
}

/* pread: "Result: bytes read, 0 at or past the end of file. -EINVAL for a
 * negative offset". An offset far past the end, so close to the largest
 * off_t that offset + len passes it, is still past the end of file: 0, not
 * the -EINVAL Linux gives such a pread(2). The buffer is left alone. */
TEST(pread_at_the_largest_offsets_reads_nothing_and_succeeds)
{
    const off_t offs[] = { OFF_T_MAX, OFF_T_MAX - 1, OFF_T_MAX - 10, OFF_T_MAX - 4095 };
    weft_blocking_pool *p = ft_pool(1);
    char path[64], buf[4096];
    weft_fs_op op;
    int fd = tmp_file(path);

    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        memset(buf, 'x', sizeof(buf));
        weft_fs_pread_init(&op, p, fd, buf, sizeof(buf), offs[i]);
        ASSERT_EQ(0, ft_drive(&op));
        ASSERT_EQ('x', buf[0]);
    }
    /* and a zero-length one at the very end */
    weft_fs_pread_init(&op, p, fd, buf, 0, OFF_T_MAX);
    ASSERT_EQ(0, ft_drive(&op));
    /* the file itself still reads from the start */
    weft_fs_pread_init(&op, p, fd, buf, sizeof(buf), 0);
    ASSERT_EQ(5, ft_drive(&op));
    ASSERT_EQ(0, memcmp(buf, "hello", 5));
    close(fd);
    unlink(path);
    weft_blocking_pool_free(p);
}

/* pwrite: "-EINVAL for a negative offset". A write that would reach past
 * the largest offset is a file grown past its limit: -EFBIG (as write(2)
 * reports a file size limit), never the -EINVAL that says the caller's
 * arguments were wrong. (Where the file system takes files that large,
 * tmpfs, the bytes below the limit are written first: "an error stopped
 * it after some bytes: then the error".) */
TEST(pwrite_past_the_largest_offset_is_efbig_not_einval)
{
    const off_t offs[] = { OFF_T_MAX, OFF_T_MAX - 10 };
    weft_blocking_pool *p = ft_pool(1);
    char path[64], buf[100];
    weft_fs_op op;
    int fd = tmp_file(path);

    memset(buf, 'y', sizeof(buf));
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        weft_fs_pwrite_init(&op, p, fd, buf, sizeof(buf), offs[i]);
        ASSERT_EQ(-EFBIG, ft_drive(&op));
    }
    /* a negative offset is still the caller's error */
    weft_fs_pwrite_init(&op, p, fd, buf, sizeof(buf), -1);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    close(fd);
    unlink(path);
    weft_blocking_pool_free(p);
}
