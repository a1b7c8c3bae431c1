// SPDX-License-Identifier: MIT
/* A NULL future pointer given to a future's init, poll or drop: init and
 * drop do nothing, poll completes at once with -EINVAL in its output (the
 * rule weft/lock.h states for every future; weft_process_wait says it in
 * so many words). Before the audit these crashed: the file operations, the
 * blocking join, bufio's readers/writers/copy, the signal receive, sleep /
 * timeout / interval init, and sleep_deadline. Public headers only. */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "harness.h"
#include <weft/blocking.h>
#include <weft/bufio.h>
#include <weft/signal.h>
#include <weft/timer.h>
#include <weft/chan.h>
#include <weft/group.h>
#include <weft/lock.h>
#include <weft/net.h>
#include <weft/process.h>

static weft_context cx_noop(weft_waker *w)
{
    *w = weft_waker_noop();
    return weft_context_from_waker(w);
}

TEST(fs_null_future)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);
    struct stat st;
    void *data = NULL;
    size_t len = 0;
    weft_fs_dirent *ents = NULL;
    char buf[4];
    ssize_t res = 0;

    weft_fs_read_file_init(NULL, NULL, "/", &data, &len);
    weft_fs_write_file_init(NULL, NULL, "/tmp/x", "a", 1);
    weft_fs_stat_init(NULL, NULL, "/", &st);
    weft_fs_open_init(NULL, NULL, "/", 0, 0);
    weft_fs_rename_init(NULL, NULL, "/a", "/b");
    weft_fs_unlink_init(NULL, NULL, "/a");
    weft_fs_mkdir_init(NULL, NULL, "/a", 0700);
    weft_fs_rmdir_init(NULL, NULL, "/a");
    weft_fs_truncate_init(NULL, NULL, "/a", 0);
    weft_fs_readdir_init(NULL, NULL, "/", &ents, NULL);
    weft_fs_read_init(NULL, NULL, 0, buf, sizeof(buf));
    weft_fs_write_init(NULL, NULL, 1, buf, sizeof(buf));
    weft_fs_pread_init(NULL, NULL, 0, buf, sizeof(buf), 0);
    weft_fs_pwrite_init(NULL, NULL, 1, buf, sizeof(buf), 0);
    weft_fs_fsync_init(NULL, NULL, 1);
    weft_fs_fdatasync_init(NULL, NULL, 1);
    weft_fs_ftruncate_init(NULL, NULL, 1, 0);
    weft_fs_fstat_init(NULL, NULL, 1, &st);
    weft_fs_close_init(NULL, NULL, -1);
    ASSERT_EQ(WEFT_READY, weft_fs_poll(NULL, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    ASSERT_EQ(WEFT_READY, weft_fs_poll(NULL, &cx, NULL));
    weft_fs_drop(NULL);
    ASSERT(data == NULL && ents == NULL);
}

TEST(blocking_join_null_future)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);
    int res = 0;

    weft_blocking_join_init(NULL, NULL, NULL);
    ASSERT_EQ(WEFT_READY, weft_blocking_join_poll(NULL, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_blocking_join_drop(NULL);
}

TEST(bufio_null_future)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);
    char buf[8];
    ssize_t res = 0;

    weft_bufreader_read_until_init(NULL, NULL, ';', buf, sizeof(buf));
    weft_bufreader_read_line_init(NULL, NULL, buf, sizeof(buf));
    weft_bufreader_read_exact_init(NULL, NULL, buf, sizeof(buf));
    weft_bufreader_read_init(NULL, NULL, buf, sizeof(buf));
    weft_bufreader_fill_init(NULL, NULL, 1);
    weft_bufreader_read_frame_init(NULL, NULL, buf, sizeof(buf));
    ASSERT_EQ(WEFT_READY, weft_bufread_poll(NULL, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_bufread_drop(NULL);
    weft_bufwriter_write_init(NULL, NULL, buf, 1);
    weft_bufwriter_flush_init(NULL, NULL);
    weft_bufwriter_write_frame_init(NULL, NULL, buf, 1);
    res = 0;
    ASSERT_EQ(WEFT_READY, weft_bufwrite_poll(NULL, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_bufwrite_drop(NULL);
    weft_copy_init(NULL, NULL, NULL);
    res = 0;
    ASSERT_EQ(WEFT_READY, weft_copy_poll(NULL, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    ASSERT_EQ(0, weft_copy_total(NULL));
    weft_copy_drop(NULL);
}

TEST(signal_recv_null_future)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);
    int res = 0;

    weft_signal_recv_init(NULL, NULL, NULL);
    ASSERT_EQ(WEFT_READY, weft_signal_recv_poll(NULL, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_signal_recv_drop(NULL);
}

TEST(timer_null_future)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);
    int res = 0;

    weft_sleep_init(NULL, 5);
    weft_sleep_until_init(NULL, 5);
    ASSERT_EQ(0, weft_sleep_deadline(NULL));
    ASSERT_EQ(WEFT_READY, weft_sleep_poll(NULL, &cx));
    weft_sleep_drop(NULL);
    weft_timeout_init(NULL, NULL, NULL, 5);
    ASSERT_EQ(WEFT_READY, weft_timeout_poll(NULL, &cx, &res, NULL));
    ASSERT_EQ(-EINVAL, res);
    weft_timeout_drop(NULL);
    weft_interval_init(NULL, 5);
    weft_interval_drop(NULL);
}

/* The sockets' futures, name lookups, connect by name and the group drain
 * (crashed before the audit too); and the older futures, which held. */
TEST(net_null_future)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);
    char buf[4];
    ssize_t sres = 0;
    int res = 0;

    weft_accept_init(NULL, NULL, NULL, NULL, NULL);
    weft_connect_init(NULL, NULL, NULL, 0, 0, NULL);
    weft_read_init(NULL, NULL, buf, sizeof(buf));
    weft_read_exact_init(NULL, NULL, buf, sizeof(buf));
    weft_write_init(NULL, NULL, buf, sizeof(buf));
    weft_write_all_init(NULL, NULL, buf, sizeof(buf));
    weft_recv_from_init(NULL, NULL, buf, sizeof(buf), NULL, NULL);
    weft_send_to_init(NULL, NULL, buf, sizeof(buf), NULL, 0);
    ASSERT_EQ(WEFT_READY, weft_io_op_poll(NULL, &cx, &sres));
    ASSERT_EQ(-EINVAL, sres);
    ASSERT_EQ(0, weft_io_op_moved(NULL));
    weft_io_op_drop(NULL);
    ASSERT_EQ(WEFT_READY, weft_accept_poll(NULL, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    res = 0;
    ASSERT_EQ(WEFT_READY, weft_connect_poll(NULL, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_resolve_init(NULL, NULL, "localhost", 80, NULL, NULL);
    res = 0;
    ASSERT_EQ(WEFT_READY, weft_resolve_poll(NULL, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_resolve_drop(NULL);
    weft_connect_host_init(NULL, NULL, "localhost", 80, 0, NULL);
    weft_connect_addrs_init(NULL, NULL, NULL, 0, 0, NULL);
    res = 0;
    ASSERT_EQ(WEFT_READY, weft_connect_host_poll(NULL, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_connect_host_drop(NULL);
}

#define NULL_TRIO(pfx, ...)                                                   \
    do {                                                                      \
        int r_ = 0;                                                           \
        pfx##_init(NULL, __VA_ARGS__);                                        \
        ASSERT_EQ(WEFT_READY, pfx##_poll(NULL, &cx, &r_));                    \
        ASSERT_EQ(-EINVAL, r_);                                               \
        pfx##_drop(NULL);                                                     \
    } while (0)

TEST(sync_group_null_future)
{
    weft_waker nw;
    weft_context cx = cx_noop(&nw);
    int x = 0;

    NULL_TRIO(weft_group_drain, NULL, 5);
    NULL_TRIO(weft_oneshot_recv, NULL, &x);
    NULL_TRIO(weft_chan_send, NULL, &x);
    NULL_TRIO(weft_chan_recv, NULL, &x);
    NULL_TRIO(weft_watch_changed, NULL, &x);
    NULL_TRIO(weft_bcast_recv, NULL, &x, NULL);
    NULL_TRIO(weft_notify_wait, NULL);
    NULL_TRIO(weft_sem_acquire, NULL, 1);
    NULL_TRIO(weft_mutex_lock, NULL);
    NULL_TRIO(weft_rwlock_read, NULL);
    NULL_TRIO(weft_rwlock_write, NULL);
    NULL_TRIO(weft_barrier_wait, NULL);
    NULL_TRIO(weft_cancel_wait, NULL);
    NULL_TRIO(weft_group_wait, NULL);
    NULL_TRIO(weft_join_all, NULL, 0);
    NULL_TRIO(weft_select, NULL, 0);
    NULL_TRIO(weft_race, NULL, NULL, 0, NULL);
    NULL_TRIO(weft_process_wait, NULL, NULL);
}
