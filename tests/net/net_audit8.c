// SPDX-License-Identifier: MIT
/* Eighth audit of weft/net.h (public API only): adopting a descriptor that
 * a live handle owns already, ... Registered for both backends (epoll, and
 * again as uring.net.net_audit8.* with WEFT_IO_BACKEND=uring). Every
 * operation runs as a bare task joined from the test's thread; a hang
 * shows as the ctest timeout. */
#include "net_test.h"

#include <signal.h>
#include <stdlib.h>

/* net.h: weft_socket_adopt() closes the descriptor on failure; stream.h:
 * -EEXIST is "the descriptor is registered with this reactor already", and
 * such a descriptor belongs to the handle that registered it. Adopting it
 * a second time must fail without closing it under that handle: else the
 * first handle's calls fail with -EBADF, and its close later closes the
 * number again, which by then may be somebody else's descriptor. */
TEST(adopting_an_owned_socket_again_leaves_it_to_its_owner)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *a, *b, *again = NULL;
    weft_io_op op;
    char buf[8];
    int fd;

    nt_tcp_pair(rt, &a, &b);
    fd = weft_socket_fd(a);
    ASSERT(fd >= 0);
    ASSERT_EQ(-EEXIST, weft_socket_adopt(rt, fd, &again));
    ASSERT(again == NULL);
    ASSERT(fcntl(fd, F_GETFD) >= 0);          /* still open */
    ASSERT_EQ(fd, weft_socket_fd(a));
    weft_write_all_init(&op, a, "ping", 4);
    ASSERT_EQ(4, nt_join_op(nt_spawn_op(rt, &op)));
    weft_read_exact_init(&op, b, buf, 4);
    ASSERT_EQ(4, nt_join_op(nt_spawn_op(rt, &op)));
    ASSERT_EQ(0, memcmp(buf, "ping", 4));
    weft_write_all_init(&op, b, "pong", 4);
    ASSERT_EQ(4, nt_join_op(nt_spawn_op(rt, &op)));
    weft_read_exact_init(&op, a, buf, 4);
    ASSERT_EQ(4, nt_join_op(nt_spawn_op(rt, &op)));
    ASSERT_EQ(0, memcmp(buf, "pong", 4));
    ASSERT_OK(weft_socket_close(a));
    ASSERT_OK(weft_socket_close(b));
    weft_runtime_free(rt);
}
