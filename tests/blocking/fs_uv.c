/* SPDX-License-Identifier: MIT */
/* weft's file operations held to libuv's uv_fs_* (built only where CMake
 * finds libuv; weft itself never needs it). One script of operations runs
 * twice, on twin temporary trees: once through uv_fs_* (synchronous form,
 * no callback), once through weft_fs_* on a blocking pool. Every step
 * records its result (a count, or a negative errno: libuv's UV_E* are
 * -errno on Unix) and a hash of any bytes read or names listed; the two
 * traces must match step for step. The script covers what the issue names:
 * rename over an existing file and directory, unlink of a directory, mkdir
 * of something existing, readdir without "." and "..", truncate extending
 * with zeros, pread past the end, pwrite past the end leaving a hole of
 * zeros, fsync on a read-only descriptor, a bad descriptor. A few steps also
 * assert the value both must give (tests/blocking/fs_ops.c asserts them all
 * without libuv). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <uv.h>

#include "fs_test.h"

typedef struct impl {
    const char *name;
    int (*mkdir)(const char *path, int mode);
    int (*rename)(const char *from, const char *to);
    int (*unlink)(const char *path);
    int (*rmdir)(const char *path);
    int (*open)(const char *path, int flags, int mode);
    int (*close)(int fd);
    long (*pread)(int fd, char *buf, size_t len, int64_t off);
    long (*pwrite)(int fd, const char *buf, size_t len, int64_t off);
    int (*fsync)(int fd);
    int (*fdatasync)(int fd);
    int (*ftruncate)(int fd, int64_t len);
    long (*fsize)(int fd);                   /* fstat: st_size, or -errno */
    long (*size)(const char *path);          /* stat: st_size, or -errno */
    /* the count, with "name/type\n" for each entry, sorted, into out */
    long (*list)(const char *path, char *out, size_t max);
} impl;

/* ---- libuv ---------------------------------------------------------------------- */

static uv_loop_t loop;

#define UV_CALL(expr)                                                         \
    do {                                                                      \
        uv_fs_t req;                                                          \
        long r_ = (long)(expr);                                               \
        uv_fs_req_cleanup(&req);                                              \
        return r_;                                                            \
    } while (0)

static int uv_mkdir_(const char *p, int mode) { UV_CALL(uv_fs_mkdir(&loop, &req, p, mode, NULL)); }
static int uv_rename_(const char *a, const char *b) { UV_CALL(uv_fs_rename(&loop, &req, a, b, NULL)); }
static int uv_unlink_(const char *p) { UV_CALL(uv_fs_unlink(&loop, &req, p, NULL)); }
static int uv_rmdir_(const char *p) { UV_CALL(uv_fs_rmdir(&loop, &req, p, NULL)); }
static int uv_open_(const char *p, int flags, int mode)
{
    UV_CALL(uv_fs_open(&loop, &req, p, flags | O_CLOEXEC, mode, NULL));
}
static int uv_close_(int fd) { UV_CALL(uv_fs_close(&loop, &req, fd, NULL)); }
static int uv_fsync_(int fd) { UV_CALL(uv_fs_fsync(&loop, &req, fd, NULL)); }
static int uv_fdatasync_(int fd) { UV_CALL(uv_fs_fdatasync(&loop, &req, fd, NULL)); }
static int uv_ftruncate_(int fd, int64_t len) { UV_CALL(uv_fs_ftruncate(&loop, &req, fd, len, NULL)); }

static long uv_pread_(int fd, char *buf, size_t len, int64_t off)
{
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);

    UV_CALL(uv_fs_read(&loop, &req, fd, &b, 1, off, NULL));
}

static long uv_pwrite_(int fd, const char *buf, size_t len, int64_t off)
{
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)buf, (unsigned)len);

    UV_CALL(uv_fs_write(&loop, &req, fd, &b, 1, off, NULL));
}

static long uv_fsize_(int fd)
{
    uv_fs_t req;
    long r = uv_fs_fstat(&loop, &req, fd, NULL);

    if (r == 0)
        r = (long)req.statbuf.st_size;
    uv_fs_req_cleanup(&req);
    return r;
}

static long uv_size_(const char *p)
{
    uv_fs_t req;
    long r = uv_fs_stat(&loop, &req, p, NULL);

    if (r == 0)
        r = (long)req.statbuf.st_size;
    uv_fs_req_cleanup(&req);
    return r;
}

static int uv_type(uv_dirent_type_t t)
{
    switch (t) {
    case UV_DIRENT_FILE: return WEFT_FS_FILE;
    case UV_DIRENT_DIR: return WEFT_FS_DIR;
    case UV_DIRENT_LINK: return WEFT_FS_LINK;
    case UV_DIRENT_FIFO: return WEFT_FS_FIFO;
    case UV_DIRENT_SOCKET: return WEFT_FS_SOCKET;
    case UV_DIRENT_CHAR: return WEFT_FS_CHAR;
    case UV_DIRENT_BLOCK: return WEFT_FS_BLOCK;
    default: return WEFT_FS_UNKNOWN;
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static long uv_list_(const char *p, char *out, size_t max)
{
    char *lines[64];
    uv_dirent_t ent;
    uv_fs_t req;
    long r = uv_fs_scandir(&loop, &req, p, 0, NULL);
    size_t n = 0, used = 0;

    out[0] = '\0';
    if (r >= 0) {
        while (uv_fs_scandir_next(&req, &ent) != UV_EOF && n < 64) {
            ASSERT(asprintf(&lines[n], "%s/%d\n", ent.name, uv_type(ent.type)) > 0);
            n++;
        }
        qsort(lines, n, sizeof(*lines), cmp_str);
        for (size_t i = 0; i < n; i++) {
            used += (size_t)snprintf(out + used, max - used, "%s", lines[i]);
            free(lines[i]);
        }
    }
    uv_fs_req_cleanup(&req);
    return r;
}

static const impl uv_impl = {
    "libuv", uv_mkdir_, uv_rename_, uv_unlink_, uv_rmdir_, uv_open_, uv_close_,
    uv_pread_, uv_pwrite_, uv_fsync_, uv_fdatasync_, uv_ftruncate_, uv_fsize_, uv_size_,
    uv_list_,
};

/* ---- weft ------------------------------------------------------------------------ */

static weft_blocking_pool *pool;

static int w_mkdir(const char *p, int mode)
{
    weft_fs_op op;

    weft_fs_mkdir_init(&op, pool, p, (mode_t)mode);
    return (int)ft_drive(&op);
}

static int w_rename(const char *a, const char *b)
{
    weft_fs_op op;

    weft_fs_rename_init(&op, pool, a, b);
    return (int)ft_drive(&op);
}

static int w_unlink(const char *p)
{
    weft_fs_op op;

    weft_fs_unlink_init(&op, pool, p);
    return (int)ft_drive(&op);
}

static int w_rmdir(const char *p)
{
    weft_fs_op op;

    weft_fs_rmdir_init(&op, pool, p);
    return (int)ft_drive(&op);
}

static int w_open(const char *p, int flags, int mode)
{
    weft_fs_op op;

    weft_fs_open_init(&op, pool, p, flags, (mode_t)mode);
    return (int)ft_drive(&op);
}

static int w_close(int fd)
{
    weft_fs_op op;

    weft_fs_close_init(&op, pool, fd);
    return (int)ft_drive(&op);
}

static long w_pread(int fd, char *buf, size_t len, int64_t off)
{
    weft_fs_op op;

    weft_fs_pread_init(&op, pool, fd, buf, len, (off_t)off);
    return (long)ft_drive(&op);
}

static long w_pwrite(int fd, const char *buf, size_t len, int64_t off)
{
    weft_fs_op op;

    weft_fs_pwrite_init(&op, pool, fd, buf, len, (off_t)off);
    return (long)ft_drive(&op);
}

static int w_fsync(int fd)
{
    weft_fs_op op;

    weft_fs_fsync_init(&op, pool, fd);
    return (int)ft_drive(&op);
}

static int w_fdatasync(int fd)
{
    weft_fs_op op;

    weft_fs_fdatasync_init(&op, pool, fd);
    return (int)ft_drive(&op);
}

static int w_ftruncate(int fd, int64_t len)
{
    weft_fs_op op;

    weft_fs_ftruncate_init(&op, pool, fd, (off_t)len);
    return (int)ft_drive(&op);
}

static long w_fsize(int fd)
{
    weft_fs_op op;
    struct stat st;
    long r;

    weft_fs_fstat_init(&op, pool, fd, &st);
    r = (long)ft_drive(&op);
    return r == 0 ? (long)st.st_size : r;
}

static long w_size(const char *p)
{
    weft_fs_op op;
    struct stat st;
    long r;

    weft_fs_stat_init(&op, pool, p, &st);
    r = (long)ft_drive(&op);
    return r == 0 ? (long)st.st_size : r;
}

static long w_list(const char *p, char *out, size_t max)
{
    weft_fs_dirent *ents = NULL;
    weft_fs_op op;
    size_t used = 0;
    long r;

    out[0] = '\0';
    weft_fs_readdir_init(&op, pool, p, &ents, NULL);
    r = (long)ft_drive(&op);
    for (long i = 0; i < r; i++)
        used += (size_t)snprintf(out + used, max - used, "%s/%d\n", ents[i].name,
                                 (int)ents[i].type);
    if (r >= 0)
        weft_fs_free(ents);
    return r;
}

static const impl weft_impl = {
    "weft", w_mkdir, w_rename, w_unlink, w_rmdir, w_open, w_close, w_pread, w_pwrite,
    w_fsync, w_fdatasync, w_ftruncate, w_fsize, w_size, w_list,
};

/* ---- the script ---------------------------------------------------------------- */

enum { MAX_STEPS = 128 };

typedef struct trace {
    long v[MAX_STEPS];
    const char *what[MAX_STEPS];
    int n;
} trace;

static long rec(trace *t, const char *what, long v)
{
    ASSERT(t->n < MAX_STEPS);
    t->what[t->n] = what;
    t->v[t->n++] = v;
    return v;
}

static long hash(const char *p, long n)
{
    uint64_t h = 1469598103934665603ull;

    for (long i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return (long)(h & 0x7fffffff);
}

#define R(what, expr) rec(t, what, (long)(expr))

static void script(const impl *x, const char *root, trace *t)
{
    char d[256], e[256], d2[256], f[256], g[256], h[256], in[256], buf[512], list[2048];
    long n;
    int fd, ro;

    ft_join(d, root, "d");
    ft_join(e, root, "e");
    ft_join(d2, root, "d2");
    ft_join(f, root, "f");
    ft_join(g, root, "g");
    ft_join(h, root, "h");

    /* mkdir */
    ASSERT_EQ(0, R("mkdir", x->mkdir(d, 0755)));
    ASSERT_EQ(-EEXIST, R("mkdir existing dir", x->mkdir(d, 0755)));
    R("mkdir no parent", x->mkdir(ft_join(in, root, "no/x"), 0755));

    /* a file: holes, pread past the end, truncate both ways */
    fd = x->open(f, O_RDWR | O_CREAT | O_EXCL, 0644);
    ASSERT(R("open create", fd >= 0));
    ASSERT_EQ(-EEXIST, R("open excl existing", x->open(f, O_RDWR | O_CREAT | O_EXCL, 0644)));
    R("pwrite", x->pwrite(fd, "abc", 3, 0));
    R("pwrite past end", x->pwrite(fd, "Z", 1, 100));
    ASSERT_EQ(101, R("fstat size with hole", x->fsize(fd)));
    memset(buf, '?', sizeof(buf));
    n = R("pread all", x->pread(fd, buf, sizeof(buf), 0));
    R("pread all bytes", hash(buf, n));
    ASSERT(buf[50] == '\0');                            /* the hole reads as zeros */
    ASSERT_EQ(0, R("pread past end", x->pread(fd, buf, sizeof(buf), 500)));
    R("pread at end", x->pread(fd, buf, 10, 101));
    R("pread zero bytes", x->pread(fd, buf, 0, 0));
    R("ftruncate shrink", x->ftruncate(fd, 2));
    R("fstat after shrink", x->fsize(fd));
    R("ftruncate extend", x->ftruncate(fd, 40));
    memset(buf, '?', sizeof(buf));
    n = R("pread extended", x->pread(fd, buf, sizeof(buf), 0));
    R("pread extended bytes", hash(buf, n));
    ASSERT(buf[39] == '\0');                            /* extended with zeros */
    ASSERT_EQ(0, R("fsync", x->fsync(fd)));
    R("fdatasync", x->fdatasync(fd));
    R("close", x->close(fd));
    ASSERT_EQ(-EBADF, R("close closed", x->close(fd)));
    R("pread closed", x->pread(fd, buf, 1, 0));
    R("pwrite closed", x->pwrite(fd, "x", 1, 0));
    R("fsync closed", x->fsync(fd));
    R("fstat closed", x->fsize(fd));
    ASSERT_EQ(-EBADF, R("fsync -1", x->fsync(-1)));
    R("ftruncate -1", x->ftruncate(-1, 0));
    R("pread -1", x->pread(-1, buf, 1, 0));

    /* a read-only descriptor: syncs, but does not write or truncate */
    ro = x->open(f, O_RDONLY, 0);
    ASSERT(ro >= 0);
    ASSERT_EQ(0, R("fsync read-only", x->fsync(ro)));
    R("fdatasync read-only", x->fdatasync(ro));
    R("pwrite read-only", x->pwrite(ro, "x", 1, 0));
    R("ftruncate read-only", x->ftruncate(ro, 0));
    R("close read-only", x->close(ro));
    R("open dir for writing", x->open(d, O_WRONLY, 0));
    R("open missing", x->open(ft_join(in, root, "missing"), O_RDONLY, 0));

    /* rename */
    R("rename to new name", x->rename(f, g));
    R("stat old name", x->size(f));
    R("stat new name", x->size(g));
    fd = x->open(h, O_WRONLY | O_CREAT, 0644);
    ASSERT(fd >= 0);
    R("pwrite h", x->pwrite(fd, "hhhh", 4, 0));
    R("close h", x->close(fd));
    ASSERT_EQ(0, R("rename over existing file", x->rename(h, g)));
    R("stat replaced", x->size(g));
    R("stat moved away", x->size(h));
    R("rename file over dir", x->rename(g, d));
    R("rename dir over file", x->rename(d, g));
    R("mkdir e", x->mkdir(e, 0755));
    ASSERT_EQ(0, R("rename dir over empty dir", x->rename(d, e)));
    R("mkdir d2", x->mkdir(d2, 0755));
    fd = x->open(ft_join(in, d2, "inner"), O_WRONLY | O_CREAT, 0644);
    ASSERT(fd >= 0);
    R("close inner", x->close(fd));
    R("rename dir over non-empty dir", x->rename(e, d2));
    R("rename missing", x->rename(ft_join(in, root, "missing"), d));
    R("rename onto itself", x->rename(g, g));

    /* unlink, rmdir */
    ASSERT_EQ(-EISDIR, R("unlink dir", x->unlink(d2)));
    R("unlink missing", x->unlink(h));
    R("rmdir non-empty", x->rmdir(d2));
    R("rmdir file", x->rmdir(g));
    R("rmdir missing", x->rmdir(h));

    /* readdir: no "." or "..", types */
    ASSERT_EQ(0, symlink("g", ft_join(in, root, "link")));
    ASSERT_EQ(0, mkfifo(ft_join(in, root, "fifo"), 0600));
    n = R("readdir root", x->list(root, list, sizeof(list)));
    ASSERT_EQ(5, n);                                    /* d2 e fifo g link */
    ASSERT(strstr(list, "./") == NULL && strstr(list, "../") == NULL);
    R("readdir root names", hash(list, (long)strlen(list)));
    ASSERT_EQ(0, R("readdir empty", x->list(e, list, sizeof(list))));
    R("readdir file", x->list(g, list, sizeof(list)));
    R("readdir missing", x->list(h, list, sizeof(list)));
}

TEST(fs_matches_libuv)
{
    char ru[64], rw[64];
    trace tu = { 0 }, tw = { 0 };
    int fds;
    long live;
    bool same = true;

    ASSERT_EQ(0, uv_loop_init(&loop));
    pool = ft_pool(2);
    fds = ft_count_fds();
    live = harness_live();
    ft_mkdtemp(ru, "uv");
    ft_mkdtemp(rw, "wft");
    script(&uv_impl, ru, &tu);
    script(&weft_impl, rw, &tw);
    ASSERT_EQ(tu.n, tw.n);
    for (int i = 0; i < tu.n; i++) {
        if (tu.v[i] != tw.v[i]) {
            fprintf(stderr, "step %d (%s): libuv %ld (%s), weft %ld (%s)\n", i, tu.what[i],
                    tu.v[i], tu.v[i] < 0 ? strerror((int)-tu.v[i]) : "",
                    tw.v[i], tw.v[i] < 0 ? strerror((int)-tw.v[i]) : "");
            same = false;
        }
    }
    ASSERT(same);
    ft_rm_tree(ru);
    ft_rm_tree(rw);
    ASSERT_EQ(fds, ft_count_fds());                    /* no duplicate left open */
    ASSERT_EQ(live, harness_live());
    weft_blocking_pool_free(pool);
    ASSERT_EQ(0, uv_loop_close(&loop));
}
