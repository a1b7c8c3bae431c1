/* SPDX-License-Identifier: MIT */
/* Coroutine wrappers of the file futures (weft/blocking.h): each sets up one
 * weft_fs_op on the default pool (NULL: the coroutine's runtime's, picked at
 * the first poll) and awaits it. weft_co_await_fn() drops the op whatever
 * happens (completion, cancel, not a coroutine), so the op's own rules for
 * a drop (withdraw if queued, else run whole) are the wrappers' too. */
#include <errno.h>

#include "coro/coro.h"

struct fs_await {
    weft_fs_op op;
    ssize_t result;
};

static weft_poll fs_thunk(void *self, weft_context *cx, void *out)
{
    struct fs_await *a = self;

    (void)out;
    return weft_fs_poll(&a->op, cx, &a->result);
}

static void fs_drop(void *self)
{
    weft_fs_drop(&((struct fs_await *)self)->op);
}

/* `site`: the public call, named in the task dump while it waits */
static ssize_t fs_await(struct fs_await *a, const weft_async_site *site)
{
    int err;

    a->result = -EINVAL;
    err = weft__co_await_at(fs_thunk, fs_drop, a, NULL, site);
    return err < 0 ? err : a->result;
}

WEFT_API ssize_t weft_co_fs_read_file(const char *path, void **data, size_t *len)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_read_file_init(&a.op, NULL, path, data, len);
    return fs_await(&a, &site);
}

WEFT_API int weft_co_fs_write_file(const char *path, const void *data, size_t len)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_write_file_init(&a.op, NULL, path, data, len);
    return (int)fs_await(&a, &site);
}

WEFT_API int weft_co_fs_stat(const char *path, struct stat *st)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_stat_init(&a.op, NULL, path, st);
    return (int)fs_await(&a, &site);
}

WEFT_API int weft_co_fs_open(const char *path, int flags, mode_t mode)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_open_init(&a.op, NULL, path, flags, mode);
    return (int)fs_await(&a, &site);
}

WEFT_API int weft_co_fs_close(int fd)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    /* an unpolled close op still closes fd when dropped (blocking.h); that
     * is what a cancelled call should do, but outside a coroutine the call
     * is -EINVAL and fd stays the caller's (coro.h), so refuse it first */
    if (!weft_co_is_coroutine())
        return -EINVAL;
    weft_fs_close_init(&a.op, NULL, fd);
    return (int)fs_await(&a, &site);
}

WEFT_API ssize_t weft_co_fs_read(int fd, void *buf, size_t len)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_read_init(&a.op, NULL, fd, buf, len);
    return fs_await(&a, &site);
}

WEFT_API ssize_t weft_co_fs_write(int fd, const void *buf, size_t len)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_write_init(&a.op, NULL, fd, buf, len);
    return fs_await(&a, &site);
}

WEFT_API ssize_t weft_co_fs_pread(int fd, void *buf, size_t len, off_t off)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_pread_init(&a.op, NULL, fd, buf, len, off);
    return fs_await(&a, &site);
}

WEFT_API ssize_t weft_co_fs_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_pwrite_init(&a.op, NULL, fd, buf, len, off);
    return fs_await(&a, &site);
}

WEFT_API int weft_co_fs_fsync(int fd)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_fsync_init(&a.op, NULL, fd);
    return (int)fs_await(&a, &site);
}

WEFT_API int weft_co_fs_fdatasync(int fd)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_fdatasync_init(&a.op, NULL, fd);
    return (int)fs_await(&a, &site);
}

WEFT_API int weft_co_fs_ftruncate(int fd, off_t length)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_ftruncate_init(&a.op, NULL, fd, length);
    return (int)fs_await(&a, &site);
}

WEFT_API int weft_co_fs_fstat(int fd, struct stat *st)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_fstat_init(&a.op, NULL, fd, st);
    return (int)fs_await(&a, &site);
}

WEFT_API int weft_co_fs_rename(const char *from, const char *to)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_rename_init(&a.op, NULL, from, to);
    return (int)fs_await(&a, &site);
}

WEFT_API int weft_co_fs_unlink(const char *path)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_unlink_init(&a.op, NULL, path);
    return (int)fs_await(&a, &site);
}

WEFT_API int weft_co_fs_mkdir(const char *path, mode_t mode)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_mkdir_init(&a.op, NULL, path, mode);
    return (int)fs_await(&a, &site);
}

WEFT_API int weft_co_fs_rmdir(const char *path)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_rmdir_init(&a.op, NULL, path);
    return (int)fs_await(&a, &site);
}

WEFT_API int weft_co_fs_truncate(const char *path, off_t length)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_truncate_init(&a.op, NULL, path, length);
    return (int)fs_await(&a, &site);
}

WEFT_API ssize_t weft_co_fs_readdir(const char *path, weft_fs_dirent **ents)
{
    WEFT__CO_SITE_DECL(site);
    struct fs_await a;

    weft_fs_readdir_init(&a.op, NULL, path, ents, NULL);
    return fs_await(&a, &site);
}
