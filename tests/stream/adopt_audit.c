// SPDX-License-Identifier: MIT
/* weft_fd_adopt(): "on failure the descriptor is left open and unchanged",
 * WEFT_FD_SET_NONBLOCK included (its O_NONBLOCK is not left set), on
 * every error path: a regular file, a shut-down runtime, an allocation
 * failure at each step; and O_NONBLOCK is cleared again by the close. */
#include "stream_test.h"

#include <fcntl.h>

static bool nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    ASSERT(fl >= 0);
    return (fl & O_NONBLOCK) != 0;
}

TEST(adopt_failures_leave_the_descriptor_unchanged)
{
    weft_runtime *rt = nt_runtime(false);
    weft_stream *s = NULL;
    int p[2], f;
    bool ok = false;

    f = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    ASSERT(f >= 0);
    ASSERT_EQ(-EPERM, weft_fd_adopt(rt, f, WEFT_FD_SET_NONBLOCK, &s));
    ASSERT(!nonblocking(f));
    ASSERT_EQ(0, close(f));
    ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
    ASSERT_EQ(-EINVAL, weft_fd_adopt(rt, p[0], 0, &s));   /* blocking, no flag */
    ASSERT_EQ(-EINVAL, weft_fd_adopt(rt, p[0], 0x80, &s));
    ASSERT(!nonblocking(p[0]));
    for (size_t k = 1; !ok && k < 50; k++) {
        int err;

        harness_fail_alloc_at(k);
        err = weft_fd_adopt(rt, p[0], WEFT_FD_SET_NONBLOCK, &s);
        harness_fail_alloc_at(0);
        if (err == 0) {
            ok = true;
            break;
        }
        ASSERT_EQ(-ENOMEM, err);
        ASSERT(!nonblocking(p[0]));
        ASSERT(fcntl(p[0], F_GETFD) >= 0);               /* still open */
    }
    ASSERT(ok);
    ASSERT(nonblocking(p[0]));
    ASSERT_EQ(-EEXIST, weft_fd_adopt(rt, p[0], WEFT_FD_SET_NONBLOCK, &(weft_stream *){ NULL }));
    {
        int d = dup(p[0]);                                   /* shares p[0]'s description */

        ASSERT(d >= 0);
        ASSERT_OK(weft_runtime_shutdown(rt));
        ASSERT_EQ(-ESHUTDOWN, weft_fd_adopt(rt, p[1], WEFT_FD_SET_NONBLOCK, &(weft_stream *){ NULL }));
        ASSERT(!nonblocking(p[1]));
        ASSERT_OK(weft_stream_close(s));                     /* clears O_NONBLOCK on p[0] */
        ASSERT_EQ(-1, fcntl(p[0], F_GETFD));
        ASSERT(!nonblocking(d));                             /* cleared again */
        close(d);
    }
    ASSERT_EQ(0, close(p[1]));
    weft_runtime_free(rt);
}
