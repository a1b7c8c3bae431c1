// SPDX-License-Identifier: MIT
/* Adversarial checks of weft/blocking.h (round 8): the size limits taken at
 * their exact edge. */
#define _GNU_SOURCE
#include "fs_test.h"

#include <stdint.h>
#include <sys/mman.h>

/* "Most bytes one write, pwrite or write_file takes (more: -EINVAL)": a
 * write of exactly WEFT_FS_WRITE_MAX is taken. The source is 1 GiB of
 * untouched anonymous memory (the zero page: reading it commits nothing),
 * the sink /dev/null. */
TEST(fs_write_of_exactly_the_largest_size_is_taken)
{
    weft_blocking_pool *p = ft_pool(1);
    weft_fs_op op;
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    void *src = mmap(NULL, WEFT_FS_WRITE_MAX, PROT_READ,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    ASSERT(fd >= 0);
    ASSERT(src != MAP_FAILED);
    weft_fs_write_init(&op, p, fd, src, WEFT_FS_WRITE_MAX);
    ASSERT_EQ((long long)WEFT_FS_WRITE_MAX, ft_drive(&op));
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* the same limit for the other two (each copy of 1 GiB takes about a
     * minute under a sanitizer: the write above stands for them there) */
    weft_fs_pwrite_init(&op, p, fd, src, WEFT_FS_WRITE_MAX, 0);
    ASSERT_EQ((long long)WEFT_FS_WRITE_MAX, ft_drive(&op));
    weft_fs_write_file_init(&op, p, "/dev/null", src, WEFT_FS_WRITE_MAX);
    ASSERT_EQ(0, ft_drive(&op));
#endif
    munmap(src, WEFT_FS_WRITE_MAX);
    close(fd);
    weft_blocking_pool_free(p);
}
