/* SPDX-License-Identifier: MIT */
/* The file operations beyond whole files: pread/pwrite, fsync/fdatasync,
 * ftruncate/fstat, rename, unlink, mkdir, rmdir, truncate, readdir. Their
 * documented semantics (those of the syscalls, which libuv's uv_fs_* share:
 * tests/blocking/fs_uv.c compares the two where libuv is installed), bad
 * input, the descriptor duplicate, what a drop does (withdrawn when queued,
 * whole when started), abort at every await of a sequence, shutdown while
 * pending, allocation faults; leaks by the harness and /proc/self/fd. */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "fs_test.h"
#include "blocking/blocking.h"    /* weft__fs_hook */

static void write_plain(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    ASSERT(fd >= 0);
    ASSERT_EQ((ssize_t)strlen(text), write(fd, text, strlen(text)));
    close(fd);
}

static bool exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

/* ---- semantics ----------------------------------------------------------------- */

TEST(fs_pread_pwrite_holes_and_offsets)
{
    weft_blocking_pool *p = ft_pool(2);
    char dir[64], path[256], buf[32];
    weft_fs_op op;
    struct stat st;
    ssize_t fd;

    ft_mkdtemp(dir, "ops");
    weft_fs_open_init(&op, p, ft_join(path, dir, "f"), O_RDWR | O_CREAT | O_EXCL, 0600);
    fd = ft_drive(&op);
    ASSERT(fd >= 0);
    weft_fs_pwrite_init(&op, p, (int)fd, "hello", 5, 0);
    ASSERT_EQ(5, ft_drive(&op));
    weft_fs_pwrite_init(&op, p, (int)fd, "X", 1, 10);  /* past the end: a hole */
    ASSERT_EQ(1, ft_drive(&op));
    ASSERT_EQ(0, lseek((int)fd, 0, SEEK_CUR));         /* fd's offset never moved */
    weft_fs_fstat_init(&op, p, (int)fd, &st);
    ASSERT_EQ(0, ft_drive(&op));
    ASSERT_EQ(11, st.st_size);
    ASSERT(S_ISREG(st.st_mode));
    ASSERT_EQ(0600, st.st_mode & 0777);
    memset(buf, '?', sizeof(buf));
    weft_fs_pread_init(&op, p, (int)fd, buf, sizeof(buf), 0);
    ASSERT_EQ(11, ft_drive(&op));
    ASSERT(memcmp(buf, "hello\0\0\0\0\0X?", 12) == 0); /* zeros, and no more */
    weft_fs_pread_init(&op, p, (int)fd, buf, sizeof(buf), 11);
    ASSERT_EQ(0, ft_drive(&op));                        /* at the end */
    weft_fs_pread_init(&op, p, (int)fd, buf, sizeof(buf), 1 << 20);
    ASSERT_EQ(0, ft_drive(&op));                        /* far past it */
    weft_fs_pread_init(&op, p, (int)fd, buf, 3, 1);
    ASSERT_EQ(3, ft_drive(&op));
    ASSERT(memcmp(buf, "ell", 3) == 0);
    weft_fs_pread_init(&op, p, (int)fd, buf, 0, 0);
    ASSERT_EQ(0, ft_drive(&op));                        /* nothing asked */
    /* an absurd length reads what there is, into what the file holds */
    weft_fs_pread_init(&op, p, (int)fd, buf, SIZE_MAX, 0);
    ASSERT_EQ(11, ft_drive(&op));
    weft_fs_fsync_init(&op, p, (int)fd);
    ASSERT_EQ(0, ft_drive(&op));
    weft_fs_fdatasync_init(&op, p, (int)fd);
    ASSERT_EQ(0, ft_drive(&op));
    /* ftruncate shrinks, truncate extends with zeros */
    weft_fs_ftruncate_init(&op, p, (int)fd, 3);
    ASSERT_EQ(0, ft_drive(&op));
    weft_fs_truncate_init(&op, p, path, 8);
    ASSERT_EQ(0, ft_drive(&op));
    weft_fs_pread_init(&op, p, (int)fd, buf, sizeof(buf), 0);
    ASSERT_EQ(8, ft_drive(&op));
    ASSERT(memcmp(buf, "hel\0\0\0\0\0", 8) == 0);
    /* read/write move fd's offset as read(2)/write(2) would */
    weft_fs_write_init(&op, p, (int)fd, "ab", 2);
    ASSERT_EQ(2, ft_drive(&op));
    ASSERT_EQ(2, lseek((int)fd, 0, SEEK_CUR));
    weft_fs_read_init(&op, p, (int)fd, buf, 1);
    ASSERT_EQ(1, ft_drive(&op));
    ASSERT_EQ('l', buf[0]);
    weft_fs_close_init(&op, p, (int)fd);
    ASSERT_EQ(0, ft_drive(&op));

    /* fsync on a read-only descriptor works; writes through it do not */
    fd = open(path, O_RDONLY | O_CLOEXEC);
    ASSERT(fd >= 0);
    weft_fs_fsync_init(&op, p, (int)fd);
    ASSERT_EQ(0, ft_drive(&op));
    weft_fs_fdatasync_init(&op, p, (int)fd);
    ASSERT_EQ(0, ft_drive(&op));
    weft_fs_pwrite_init(&op, p, (int)fd, "x", 1, 0);
    ASSERT_EQ(-EBADF, ft_drive(&op));
    weft_fs_ftruncate_init(&op, p, (int)fd, 0);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    close((int)fd);
    ft_rm_tree(dir);
    weft_blocking_pool_free(p);
}

TEST(fs_paths_mkdir_rename_unlink_rmdir)
{
    weft_blocking_pool *p = ft_pool(2);
    char dir[64], a[256], b[256], d1[256], d2[256], in[256];
    void *data = NULL;
    weft_fs_op op;

    ft_mkdtemp(dir, "ops");
    ft_join(a, dir, "a");
    ft_join(b, dir, "b");
    ft_join(d1, dir, "d1");
    ft_join(d2, dir, "d2");
    weft_fs_mkdir_init(&op, p, d1, 0700);
    ASSERT_EQ(0, ft_drive(&op));
    weft_fs_mkdir_init(&op, p, d1, 0700);
    ASSERT_EQ(-EEXIST, ft_drive(&op));                 /* a directory there */
    write_plain(a, "A");
    weft_fs_mkdir_init(&op, p, a, 0700);
    ASSERT_EQ(-EEXIST, ft_drive(&op));                 /* a file there */
    weft_fs_mkdir_init(&op, p, ft_join(in, dir, "no/such"), 0700);
    ASSERT_EQ(-ENOENT, ft_drive(&op));                 /* no parent */
    weft_fs_mkdir_init(&op, p, ft_join(in, a, "x"), 0700);
    ASSERT_EQ(-ENOTDIR, ft_drive(&op));                /* parent is a file */

    /* rename replaces a file atomically */
    write_plain(b, "B");
    weft_fs_rename_init(&op, p, a, b);
    ASSERT_EQ(0, ft_drive(&op));
    ASSERT(!exists(a));
    weft_fs_read_file_init(&op, p, b, &data, NULL);
    ASSERT_EQ(1, ft_drive(&op));
    ASSERT_EQ('A', *(char *)data);
    weft_fs_free(data);
    weft_fs_rename_init(&op, p, a, b);
    ASSERT_EQ(-ENOENT, ft_drive(&op));                 /* gone */
    weft_fs_rename_init(&op, p, b, d1);
    ASSERT_EQ(-EISDIR, ft_drive(&op));                 /* file over a directory */
    weft_fs_rename_init(&op, p, d1, b);
    ASSERT_EQ(-ENOTDIR, ft_drive(&op));                /* directory over a file */
    weft_fs_mkdir_init(&op, p, d2, 0700);
    ASSERT_EQ(0, ft_drive(&op));
    weft_fs_rename_init(&op, p, d1, d2);
    ASSERT_EQ(0, ft_drive(&op));                       /* over an empty directory */
    ASSERT(!exists(d1));
    weft_fs_mkdir_init(&op, p, d1, 0700);
    ASSERT_EQ(0, ft_drive(&op));
    write_plain(ft_join(in, d2, "x"), "x");
    weft_fs_rename_init(&op, p, d1, d2);
    ASSERT(ft_drive(&op) == -ENOTEMPTY || op.result == -EEXIST); /* POSIX allows both */
    weft_fs_rename_init(&op, p, b, b);
    ASSERT_EQ(0, ft_drive(&op));                       /* onto itself: nothing */
    ASSERT(exists(b));

    /* unlink: files only; rmdir: empty directories only */
    weft_fs_unlink_init(&op, p, d1);
    ASSERT_EQ(-EISDIR, ft_drive(&op));
    weft_fs_rmdir_init(&op, p, d2);
    ASSERT_EQ(-ENOTEMPTY, ft_drive(&op));
    weft_fs_rmdir_init(&op, p, b);
    ASSERT_EQ(-ENOTDIR, ft_drive(&op));
    weft_fs_unlink_init(&op, p, in);
    ASSERT_EQ(0, ft_drive(&op));
    weft_fs_rmdir_init(&op, p, d2);
    ASSERT_EQ(0, ft_drive(&op));
    weft_fs_rmdir_init(&op, p, d1);
    ASSERT_EQ(0, ft_drive(&op));
    weft_fs_unlink_init(&op, p, b);
    ASSERT_EQ(0, ft_drive(&op));
    weft_fs_unlink_init(&op, p, b);
    ASSERT_EQ(-ENOENT, ft_drive(&op));
    weft_fs_rmdir_init(&op, p, d1);
    ASSERT_EQ(-ENOENT, ft_drive(&op));
    weft_fs_truncate_init(&op, p, b, 0);
    ASSERT_EQ(-ENOENT, ft_drive(&op));
    weft_fs_truncate_init(&op, p, dir, 0);
    ASSERT_EQ(-EISDIR, ft_drive(&op));
    ASSERT_EQ(0, rmdir(dir));
    weft_blocking_pool_free(p);
}

TEST(fs_readdir_lists_sorted_typed_without_dots)
{
    weft_blocking_pool *p = ft_pool(2);
    char dir[64], path[256];
    weft_fs_dirent *ents = NULL;
    size_t count = 99;
    weft_fs_op op;
    long live;

    ft_mkdtemp(dir, "ops");
    weft_fs_readdir_init(&op, p, dir, &ents, &count);
    ASSERT_EQ(0, ft_drive(&op));                       /* empty: no . or .. */
    ASSERT(ents != NULL);
    ASSERT_EQ(0, count);
    weft_fs_free(ents);
    write_plain(ft_join(path, dir, "zeta"), "z");
    write_plain(ft_join(path, dir, "alpha"), "");
    ASSERT_EQ(0, mkdir(ft_join(path, dir, "mid"), 0700));
    ASSERT_EQ(0, symlink("alpha", ft_join(path, dir, "link")));
    ASSERT_EQ(0, mkfifo(ft_join(path, dir, "pipe"), 0600));
    live = harness_live();
    weft_fs_readdir_init(&op, p, dir, &ents, &count);
    ASSERT_EQ(5, ft_drive(&op));
    ASSERT_EQ(5, count);
    ASSERT_EQ(live + 1, harness_live());               /* one block for all */
    ASSERT(strcmp(ents[0].name, "alpha") == 0 && ents[0].type == WEFT_FS_FILE);
    ASSERT(strcmp(ents[1].name, "link") == 0 && ents[1].type == WEFT_FS_LINK);
    ASSERT(strcmp(ents[2].name, "mid") == 0 && ents[2].type == WEFT_FS_DIR);
    ASSERT(strcmp(ents[3].name, "pipe") == 0 && ents[3].type == WEFT_FS_FIFO);
    ASSERT(strcmp(ents[4].name, "zeta") == 0 && ents[4].type == WEFT_FS_FILE);
    weft_fs_free(ents);
    ASSERT_EQ(live, harness_live());
    ents = (weft_fs_dirent *)&op;
    weft_fs_readdir_init(&op, p, ft_join(path, dir, "zeta"), &ents, &count);
    ASSERT_EQ(-ENOTDIR, ft_drive(&op));
    ASSERT(ents == (weft_fs_dirent *)&op);             /* untouched on failure */
    weft_fs_readdir_init(&op, p, ft_join(path, dir, "none"), &ents, NULL);
    ASSERT_EQ(-ENOENT, ft_drive(&op));
    /* many entries: the lists grow */
    for (int i = 0; i < 300; i++) {
        char name[32];

        snprintf(name, sizeof(name), "mid/f%03d", i);
        write_plain(ft_join(path, dir, name), "");
    }
    weft_fs_readdir_init(&op, p, ft_join(path, dir, "mid"), &ents, NULL);
    ASSERT_EQ(300, ft_drive(&op));
    for (int i = 0; i < 300; i++) {
        char name[32];

        snprintf(name, sizeof(name), "f%03d", i);
        ASSERT(strcmp(ents[i].name, name) == 0);
    }
    weft_fs_free(ents);
    ft_rm_tree(dir);
    weft_blocking_pool_free(p);
}

/* ---- bad input ------------------------------------------------------------------ */

TEST(fs_ops_bad_input)
{
    weft_blocking_pool *p = ft_pool(1);
    weft_fs_dirent *ents;
    weft_fs_op op;
    struct stat st;
    char buf[8];
    int fds = ft_count_fds(), fd;

    /* reported at once, the pool never asked */
    weft_fs_pread_init(&op, p, 0, NULL, 1, 0);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_pread_init(&op, p, 0, buf, 1, -1);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_pwrite_init(&op, p, 1, NULL, 1, 0);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_pwrite_init(&op, p, 1, "x", 1, -5);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_pwrite_init(&op, p, 1, "x", WEFT_FS_WRITE_MAX + 1, 0);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_pwrite_init(&op, p, 1, "x", SIZE_MAX, 0);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_write_init(&op, p, 1, "x", SIZE_MAX);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_ftruncate_init(&op, p, 1, -1);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_truncate_init(&op, p, "/tmp", -1);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_truncate_init(&op, p, NULL, 0);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_fstat_init(&op, p, 0, NULL);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_rename_init(&op, p, NULL, "/tmp/x");
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_rename_init(&op, p, "/tmp/x", NULL);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_unlink_init(&op, p, NULL);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_mkdir_init(&op, p, NULL, 0700);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_rmdir_init(&op, p, NULL);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_readdir_init(&op, p, NULL, &ents, NULL);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    weft_fs_readdir_init(&op, p, "/tmp", NULL, NULL);
    ASSERT_EQ(-EINVAL, ft_drive(&op));
    ASSERT_EQ(0, weft_blocking_pool_threads(p));

    /* bad and closed descriptors: -EBADF from every descriptor call */
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    ASSERT(fd >= 0);
    close(fd);                                          /* closed now */
    for (int pass = 0; pass < 2; pass++) {
        int bad = pass ? fd : -1;

        weft_fs_pread_init(&op, p, bad, buf, sizeof(buf), 0);
        ASSERT_EQ(-EBADF, ft_drive(&op));
        weft_fs_pwrite_init(&op, p, bad, "x", 1, 0);
        ASSERT_EQ(-EBADF, ft_drive(&op));
        weft_fs_read_init(&op, p, bad, buf, sizeof(buf));
        ASSERT_EQ(-EBADF, ft_drive(&op));
        weft_fs_write_init(&op, p, bad, "x", 1);
        ASSERT_EQ(-EBADF, ft_drive(&op));
        weft_fs_fsync_init(&op, p, bad);
        ASSERT_EQ(-EBADF, ft_drive(&op));
        weft_fs_fdatasync_init(&op, p, bad);
        ASSERT_EQ(-EBADF, ft_drive(&op));
        weft_fs_ftruncate_init(&op, p, bad, 0);
        ASSERT_EQ(-EBADF, ft_drive(&op));
        weft_fs_fstat_init(&op, p, bad, &st);
        ASSERT_EQ(-EBADF, ft_drive(&op));
        weft_fs_close_init(&op, p, bad);
        ASSERT_EQ(-EBADF, ft_drive(&op));
    }
    /* a pipe has no offsets */
    {
        int pfd[2];

        ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
        weft_fs_pwrite_init(&op, p, pfd[1], "x", 1, 0);
        ASSERT_EQ(-ESPIPE, ft_drive(&op));
        weft_fs_pread_init(&op, p, pfd[0], buf, 1, 0);
        ASSERT_EQ(-ESPIPE, ft_drive(&op));
        close(pfd[0]);
        close(pfd[1]);
    }
    weft_fs_pread_init(&op, p, fds >= 0 ? open("/", O_RDONLY | O_CLOEXEC) : -1, buf, 1, 0);
    fd = op.fd;
    ASSERT_EQ(-EISDIR, ft_drive(&op));
    close(fd);
    ASSERT_EQ(fds, ft_count_fds());                    /* every duplicate closed */
    weft_blocking_pool_free(p);
}

/* ---- the descriptor duplicate, and what a drop does ---------------------------- */

static size_t pipe_bytes(int fd)
{
    int n = 0;

    ASSERT_EQ(0, ioctl(fd, FIONREAD, &n));
    return (size_t)n;
}

/* A write dropped while it runs (blocked on a full pipe) still writes every
 * byte, and the reader sees end of file once the job let go of the pipe; the
 * caller may close its descriptor and free its buffer at once (the job has
 * its own copy: ASan). */
TEST(fs_started_write_runs_whole_after_drop)
{
    weft_blocking_pool *p = ft_pool(1);
    cwaker c = { 0 };
    weft_waker w = cw_waker(&c);
    weft_context cx = weft_context_from_waker(&w);
    size_t total = (size_t)1 << 20, got = 0;
    int pfd[2], fds = ft_count_fds();
    char *src = malloc(total), buf[4096];
    weft_fs_op op;
    ssize_t n, res;

    ASSERT(src != NULL);
    for (size_t i = 0; i < total; i++)
        src[i] = (char)(i * 7);
    ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
    weft_fs_write_init(&op, p, pfd[1], src, total);
    ASSERT_EQ(WEFT_PENDING, weft_fs_poll(&op, &cx, &res));
    ST_WAIT_UNTIL(pipe_bytes(pfd[0]) > 0);             /* started: inside write(2) */
    weft_fs_drop(&op);
    memset(src, 0, total);                              /* ours again */
    free(src);
    close(pfd[1]);                                      /* the job's duplicate lives on */
    for (;;) {
        n = read(pfd[0], buf, sizeof(buf));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            ASSERT_EQ((char)((got + (size_t)i) * 7), buf[i]);
        got += (size_t)n;
    }
    ASSERT_EQ(0, n);                                    /* end of file: duplicate closed */
    ASSERT_EQ(total, got);                              /* every byte */
    close(pfd[0]);
    ft_pool_drain(p);
    ASSERT_EQ(fds, ft_count_fds());
    ASSERT_CW_BALANCED(&c);
    weft_blocking_pool_free(p);
}

/* The hook holds a file job after it started, before its syscall. */
static pthread_mutex_t hook_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hook_c = PTHREAD_COND_INITIALIZER;
static bool hook_open;
static int hook_arrived;

static void hold_hook(void)
{
    pthread_mutex_lock(&hook_m);
    hook_arrived++;
    pthread_cond_broadcast(&hook_c);
    while (!hook_open)
        pthread_cond_wait(&hook_c, &hook_m);
    pthread_mutex_unlock(&hook_m);
}

static void hook_set(bool on)
{
    pthread_mutex_lock(&hook_m);
    hook_open = !on;
    hook_arrived = 0;
    pthread_cond_broadcast(&hook_c);
    pthread_mutex_unlock(&hook_m);
    atomic_store(&weft__fs_hook, on ? hold_hook : NULL);
}

static bool hook_has_arrived(void)
{
    bool a;

    pthread_mutex_lock(&hook_m);
    a = hook_arrived > 0;
    pthread_mutex_unlock(&hook_m);
    return a;
}

/* A read and a pwrite dropped after they started but before their syscall;
 * the caller closes its descriptor and the number is reused by another file
 * at once. The jobs then run on their duplicates: the read reads the pipe,
 * the pwrite writes the first file; the file that took the number is never
 * read or written, and the caller's read buffer is never written. */
TEST(fs_dropped_ops_never_touch_a_reused_descriptor)
{
    weft_blocking_pool *p = ft_pool(1);
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    char dir[64], path[256], other[256], buf[8] = "unused!", got[16];
    int pfd[2], fd, fd2, fds = ft_count_fds();
    weft_fs_op op;
    ssize_t res;

    signal(SIGPIPE, SIG_IGN);         /* a pipe without reader: -EPIPE, reported */
    ft_mkdtemp(dir, "ops");
    write_plain(ft_join(other, dir, "other"), "file data");

    /* read */
    ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
    hook_set(true);
    weft_fs_read_init(&op, p, pfd[0], buf, sizeof(buf));
    ASSERT_EQ(WEFT_PENDING, weft_fs_poll(&op, &cx, &res));
    ST_WAIT_UNTIL(hook_has_arrived());                  /* started, not in read(2) */
    weft_fs_drop(&op);
    close(pfd[0]);
    fd2 = open(other, O_RDONLY | O_CLOEXEC);
    ASSERT_EQ(pfd[0], fd2);                             /* the number, reused */
    ASSERT_EQ(4, write(pfd[1], "pipe", 4));             /* the job reads this */
    hook_set(false);
    ft_pool_drain(p);
    ASSERT_EQ(0, lseek(fd2, 0, SEEK_CUR));              /* the file was not read */
    ASSERT_EQ(4, read(fd2, got, 4));
    ASSERT(memcmp(got, "file", 4) == 0);
    ASSERT(strcmp(buf, "unused!") == 0);
    close(fd2);
    close(pfd[1]);

    /* pwrite */
    fd = open(ft_join(path, dir, "mine"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT(fd >= 0);
    hook_set(true);
    weft_fs_pwrite_init(&op, p, fd, "WRITTEN", 7, 0);
    ASSERT_EQ(WEFT_PENDING, weft_fs_poll(&op, &cx, &res));
    ST_WAIT_UNTIL(hook_has_arrived());
    weft_fs_drop(&op);
    close(fd);
    fd2 = open(other, O_RDWR | O_CLOEXEC);
    ASSERT_EQ(fd, fd2);
    hook_set(false);
    ft_pool_drain(p);
    ASSERT_EQ(9, pread(fd2, got, sizeof(got), 0));
    ASSERT(memcmp(got, "file data", 9) == 0);           /* untouched */
    close(fd2);
    ASSERT_EQ(7, pread(fd = open(path, O_RDONLY | O_CLOEXEC), got, sizeof(got), 0));
    ASSERT(memcmp(got, "WRITTEN", 7) == 0);             /* it ran, whole, where meant */
    close(fd);
    ASSERT_EQ(fds, ft_count_fds());
    ft_rm_tree(dir);
    weft_blocking_pool_free(p);
}

/* Every mutation dropped while still queued is withdrawn: none happens, and
 * nothing leaks. A dropped close is the exception: it still closes. */
TEST(fs_queued_mutations_dropped_never_happen)
{
    weft_blocking_pool *p = ft_pool(1);
    ft_gate g = FT_GATE_INIT;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    char dir[64], f[256], f2[256], d[256];
    weft_fs_op ops[10];
    weft_blocking_job *busy;
    weft_fs_dirent *ents = NULL;
    struct stat st;
    int fd, fd_closed, fds;
    long live;
    ssize_t res;

    ft_mkdtemp(dir, "ops");
    write_plain(ft_join(f, dir, "f"), "0123456789");
    ft_join(f2, dir, "g");
    ft_join(d, dir, "d");
    fd = open(f, O_RDWR | O_CLOEXEC);
    fd_closed = open(f, O_RDONLY | O_CLOEXEC);
    ASSERT(fd >= 0 && fd_closed >= 0);
    fds = ft_count_fds();
    live = harness_live();
    ASSERT_OK(weft_blocking_spawn(p, ft_gate_job, &g, &busy));
    ST_WAIT_UNTIL(ft_gate_arrived(&g));
    weft_fs_pwrite_init(&ops[0], p, fd, "XXXX", 4, 0);
    weft_fs_write_init(&ops[1], p, fd, "YYYY", 4);
    weft_fs_ftruncate_init(&ops[2], p, fd, 1);
    weft_fs_truncate_init(&ops[3], p, f, 2);
    weft_fs_rename_init(&ops[4], p, f, f2);
    weft_fs_unlink_init(&ops[5], p, f);
    weft_fs_mkdir_init(&ops[6], p, d, 0700);
    weft_fs_write_file_init(&ops[7], p, f, "", 0);
    weft_fs_readdir_init(&ops[8], p, dir, &ents, NULL);
    weft_fs_close_init(&ops[9], p, fd_closed);
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(WEFT_PENDING, weft_fs_poll(&ops[i], &cx, &res));
    for (int i = 0; i < 10; i++)
        weft_fs_drop(&ops[i]);
    ft_gate_open(&g);
    ASSERT_OK(weft_blocking_job_wait(busy, NULL));
    weft_blocking_job_drop(busy);
    ft_pool_drain(p);
    ASSERT_EQ(0, stat(f, &st));
    ASSERT_EQ(10, st.st_size);                          /* no write, truncate, unlink */
    ASSERT(!exists(f2) && !exists(d));                  /* no rename, no mkdir */
    ASSERT_EQ(0, lseek(fd, 0, SEEK_CUR));               /* no write(2) */
    ASSERT(ents == NULL);
    ASSERT_EQ(-1, fcntl(fd_closed, F_GETFD));           /* the close happened */
    ASSERT_EQ(fds - 1, ft_count_fds());                 /* no duplicate left */
    ASSERT_EQ(live, harness_live());
    close(fd);
    ft_rm_tree(dir);
    weft_blocking_pool_free(p);
}

/* ---- abort at every await ----------------------------------------------------- */

/* A sequence of every operation, as a user's async function would write it:
 * its locals (the path strings, the buffers, the descriptor) live in a heap
 * struct that its drop frees at once, closing its descriptor. */
enum { SEQ_BYTES = 64 * 1024 };

typedef struct seq {
    weft_async co;
    weft_blocking_pool *pool;
    weft_fs_op op;
    char dir[256], f[256], g[256], h[256];
    int fd, step;
    int hold_at;                    /* hold the pool's thread before this step */
    ft_gate *gate;
    weft_blocking_job *gate_job;
    ssize_t res;
    struct stat st;
    weft_fs_dirent *ents;
    void *data;
    char wbuf[SEQ_BYTES], rbuf[SEQ_BYTES];
} seq;

#define SEQ_STEP(s, cx, init)                                                 \
    do {                                                                      \
        if ((s)->step + 1 == (s)->hold_at)                                    \
            seq_hold(s);                                                      \
        init;                                                                 \
        (s)->step++;                                                          \
        WEFT_AWAIT(&(s)->co, weft_fs_poll(&(s)->op, cx, &(s)->res));          \
        weft_fs_drop(&(s)->op);                                               \
        if ((s)->res < 0)                                                     \
            goto fail;                                                        \
    } while (0)

/* Take the 1-thread pool's thread, so that the next step stays queued. */
static void seq_hold(seq *s)
{
    ASSERT_OK(weft_blocking_spawn(s->pool, ft_gate_job, s->gate, &s->gate_job));
    ST_WAIT_UNTIL(ft_gate_arrived(s->gate));
}

static weft_poll seq_poll(seq *s, weft_context *cx, ssize_t *out)
{
    WEFT_BEGIN(&s->co);
    SEQ_STEP(s, cx, weft_fs_mkdir_init(&s->op, s->pool, s->dir, 0700));
    SEQ_STEP(s, cx, weft_fs_open_init(&s->op, s->pool, s->f, O_RDWR | O_CREAT, 0600));
    s->fd = (int)s->res;
    SEQ_STEP(s, cx, weft_fs_pwrite_init(&s->op, s->pool, s->fd, s->wbuf, SEQ_BYTES, 0));
    SEQ_STEP(s, cx, weft_fs_fsync_init(&s->op, s->pool, s->fd));
    SEQ_STEP(s, cx, weft_fs_pread_init(&s->op, s->pool, s->fd, s->rbuf, SEQ_BYTES, 0));
    if (s->res != SEQ_BYTES || memcmp(s->rbuf, s->wbuf, SEQ_BYTES) != 0)
        goto fail;
    SEQ_STEP(s, cx, weft_fs_fstat_init(&s->op, s->pool, s->fd, &s->st));
    SEQ_STEP(s, cx, weft_fs_fdatasync_init(&s->op, s->pool, s->fd));
    SEQ_STEP(s, cx, weft_fs_ftruncate_init(&s->op, s->pool, s->fd, 100));
    SEQ_STEP(s, cx, weft_fs_readdir_init(&s->op, s->pool, s->dir, &s->ents, NULL));
    weft_fs_free(s->ents);
    s->ents = NULL;
    SEQ_STEP(s, cx, weft_fs_rename_init(&s->op, s->pool, s->f, s->g));
    SEQ_STEP(s, cx, weft_fs_truncate_init(&s->op, s->pool, s->g, 10));
    SEQ_STEP(s, cx, weft_fs_write_file_init(&s->op, s->pool, s->h, s->wbuf, 1000));
    SEQ_STEP(s, cx, weft_fs_read_file_init(&s->op, s->pool, s->h, &s->data, NULL));
    weft_fs_free(s->data);
    s->data = NULL;
    SEQ_STEP(s, cx, weft_fs_write_init(&s->op, s->pool, s->fd, s->wbuf, 100));
    SEQ_STEP(s, cx, weft_fs_read_init(&s->op, s->pool, s->fd, s->rbuf, 100));
    SEQ_STEP(s, cx, weft_fs_stat_init(&s->op, s->pool, s->h, &s->st));
    SEQ_STEP(s, cx, weft_fs_unlink_init(&s->op, s->pool, s->h));
    SEQ_STEP(s, cx, weft_fs_close_init(&s->op, s->pool, s->fd));
    s->fd = -1;
    SEQ_STEP(s, cx, weft_fs_unlink_init(&s->op, s->pool, s->g));
    SEQ_STEP(s, cx, weft_fs_rmdir_init(&s->op, s->pool, s->dir));
    *out = s->step;
    return WEFT_READY;
fail:
    *out = -1000 - s->step;
    WEFT_END(&s->co);
}

/* What a task abort does: drop the awaited future, release the locals. */
static void seq_free(seq *s)
{
    weft_fs_drop(&s->op);
    if (s->fd >= 0)
        close(s->fd);
    weft_fs_free(s->ents);
    weft_fs_free(s->data);
    memset(s, 0xa5, sizeof(*s));
    free(s);
}

static seq *seq_new(weft_blocking_pool *pool, const char *root)
{
    seq *s = calloc(1, sizeof(*s));

    ASSERT(s != NULL);
    s->pool = pool;
    s->fd = -1;
    ft_join(s->dir, root, "d");
    ft_join(s->f, s->dir, "f");
    ft_join(s->g, s->dir, "g");
    ft_join(s->h, s->dir, "h");
    for (size_t i = 0; i < SEQ_BYTES; i++)
        s->wbuf[i] = (char)(i * 13 + 1);
    return s;
}

/* Run the sequence by hand, dropping it at the first PENDING in step k or
 * later (k 0: never). With `hold`, the pool's thread is taken just before
 * step k, so that the drop finds that step queued; without, the step is
 * wherever it is (queued, inside its syscall, done but not yet polled).
 * Returns its output, or the step it was dropped in (negated - 1). */
static ssize_t seq_run(weft_blocking_pool *pool, const char *root, int k, bool hold)
{
    ft_parker t = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
    weft_waker w = { &t, &ft_vtable };
    weft_context cx = weft_context_from_waker(&w);
    ft_gate g = FT_GATE_INIT;
    weft_blocking_job *gj;
    seq *s = seq_new(pool, root);
    ssize_t out = 0;
    int step;

    s->gate = &g;
    s->hold_at = hold ? k : 0;
    while (seq_poll(s, &cx, &out) == WEFT_PENDING) {
        if (k > 0 && s->step >= k) {
            step = s->step;
            gj = s->gate_job;
            seq_free(s);                                /* buffers gone at once */
            if (gj) {
                ft_gate_open(&g);
                ASSERT_OK(weft_blocking_job_wait(gj, NULL));
                weft_blocking_job_drop(gj);
            }
            return -1 - step;
        }
        ft_park(&t);
    }
    ASSERT(s->gate_job == NULL);
    seq_free(s);
    return out;
}

/* Drop the sequence at every await in turn; after each, let the pool finish
 * whatever had started and check: no descriptor or allocation left, the
 * dropped step happened whole or not at all (the pwrite of 64 KiB wrote all
 * of it or nothing; the rename left exactly one name), and no freed memory
 * was written (ASan). */
TEST(fs_abort_at_every_await)
{
    weft_blocking_pool *p = ft_pool(1);
    char root[64], path[256];
    int fds = ft_count_fds(), steps = 20;
    long live;
    struct stat st;
    ssize_t r;

    ft_mkdtemp(root, "abort");
    ASSERT_EQ(steps, seq_run(p, root, 0, false));      /* the whole run */
    ft_rm_tree(root);
    ASSERT_EQ(0, mkdir(root, 0700));
    live = harness_live();
    for (int round = 0; round < 2; round++) {
        for (int k = 1; k <= steps; k++) {
            r = seq_run(p, root, k, round == 0);
            if (round == 0)
                ASSERT_EQ(-1 - k, r);                   /* dropped in step k, queued */
            if (r >= 0) {
                ASSERT_EQ(steps, r);                    /* the last steps ran through */
            } else {
                ft_pool_drain(p);
                if (-1 - r == 3 && stat(ft_join(path, root, "d/f"), &st) == 0)
                    ASSERT(st.st_size == 0 || st.st_size == SEQ_BYTES);
                if (-1 - r == 10)
                    ASSERT(exists(ft_join(path, root, "d/f")) !=
                           exists(ft_join(path, root, "d/g")));
                if (round == 0 && -1 - r == 1)
                    ASSERT(!exists(ft_join(path, root, "d"))); /* withdrawn */
                if (round == 0 && -1 - r == 10)
                    ASSERT(exists(ft_join(path, root, "d/f")));
            }
            ASSERT_EQ(fds, ft_count_fds());
            ASSERT_EQ(live, harness_live());
            ft_rm_tree(root);
            ASSERT_EQ(0, mkdir(root, 0700));
        }
    }
    ASSERT_EQ(0, rmdir(root));
    weft_blocking_pool_free(p);
}

/* ---- shutdown while pending, from tasks on the runtime's own pool ------------- */

typedef struct pw_task {
    weft_async co;
    weft_fs_op op;
    int fd;
    atomic_int *polled;
    ssize_t res;
} pw_task;

static weft_poll pw_task_poll(pw_task *t, weft_context *cx, ssize_t *out)
{
    WEFT_BEGIN(&t->co);
    weft_fs_pwrite_init(&t->op, NULL, t->fd, "written", 7, 0);
    atomic_fetch_add(t->polled, 1);
    WEFT_AWAIT(&t->co, weft_fs_poll(&t->op, cx, &t->res));
    weft_fs_drop(&t->op);
    *out = t->res;
    WEFT_END(&t->co);
}

static void pw_task_drop(pw_task *t)
{
    weft_fs_drop(&t->op);
}

WEFT_DEFINE_FUTURE(pw_task, pw_task_poll, pw_task_drop, ssize_t);

/* Tasks wait in pwrite behind a held pool thread when the runtime shuts
 * down: the queued writes never happen, the tasks end cancelled, nothing
 * leaks; after the runtime is freed the held job finishes alone. */
TEST(fs_runtime_shutdown_while_pending)
{
    weft_runtime *rt = NULL;
    weft_blocking_pool *pool;
    weft_blocking_job *busy;
    ft_gate g = FT_GATE_INIT;
    atomic_int polled = 0;
    weft_join *j[4];
    char dir[64], path[256];
    struct stat st;
    int fd, fds;
    ssize_t out;

    ft_mkdtemp(dir, "ops");
    fd = open(ft_join(path, dir, "f"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT(fd >= 0);
    fds = ft_count_fds();
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2,
                                                             .blocking_threads = 1 }));
    ASSERT_OK(weft_blocking_default(rt, &pool));
    ASSERT_OK(weft_blocking_spawn(pool, ft_gate_job, &g, &busy));
    ST_WAIT_UNTIL(ft_gate_arrived(&g));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(weft_spawn(rt, &pw_task_future, &(pw_task){ .fd = fd, .polled = &polled },
                             &j[i]));
    ST_WAIT_UNTIL(atomic_load(&polled) == 4);
    ASSERT_OK(weft_runtime_shutdown(rt));
    for (int i = 0; i < 4; i++) {
        int err = weft_join_wait(j[i], &out);

        ASSERT(err == -ECANCELED || (err == 0 && (out == -ECANCELED || out == -ESHUTDOWN)));
        weft_join_drop(j[i]);
    }
    weft_runtime_free(rt);
    ft_gate_open(&g);
    ASSERT_OK(weft_blocking_job_wait(busy, NULL));      /* g lives on this stack */
    weft_blocking_job_drop(busy);
    ASSERT_EQ(0, fstat(fd, &st));
    ASSERT_EQ(0, st.st_size);                           /* no write happened */
    ST_WAIT_UNTIL(ft_count_fds() == fds);               /* every duplicate closed */
    close(fd);
    ft_rm_tree(dir);
}

/* ---- allocation faults --------------------------------------------------------- */

/* Fail allocation 1, 2, ... of a readdir (the job, the scratch lists, the
 * block handed out) and of a rename: each run reports -ENOMEM or succeeds,
 * and leaks nothing. */
TEST(fs_ops_alloc_fault)
{
    weft_blocking_pool *p = ft_pool(1);
    char dir[64], path[256];
    weft_fs_dirent *ents;
    weft_fs_op op;
    int failed = 0, fds;
    ssize_t r;

    ft_mkdtemp(dir, "ops");
    for (int i = 0; i < 40; i++) {
        char name[16];

        snprintf(name, sizeof(name), "e%02d", i);
        write_plain(ft_join(path, dir, name), "");
    }
    weft_fs_readdir_init(&op, p, dir, &ents, NULL);   /* the thread exists now */
    ASSERT_EQ(40, ft_drive(&op));
    weft_fs_free(ents);
    fds = ft_count_fds();
    for (size_t k = 1; k < 20; k++) {
        long live = harness_live();

        ents = NULL;
        harness_fail_alloc_at(k);
        weft_fs_readdir_init(&op, p, dir, &ents, NULL);
        r = ft_drive(&op);
        harness_fail_alloc_at(0);
        ASSERT_EQ(fds, ft_count_fds());
        if (r == -ENOMEM) {
            failed++;
            ASSERT(ents == NULL);
            ASSERT_EQ(live, harness_live());
            continue;
        }
        ASSERT_EQ(40, r);
        ASSERT(strcmp(ents[39].name, "e39") == 0);
        weft_fs_free(ents);
        break;
    }
    ASSERT(failed >= 4);              /* the job, two lists, the names, the block */
    harness_fail_alloc_at(1);
    weft_fs_rename_init(&op, p, ft_join(path, dir, "e00"), "/tmp/never");
    ASSERT_EQ(-ENOMEM, ft_drive(&op));
    harness_fail_alloc_at(0);
    ASSERT(exists(path));
    ft_rm_tree(dir);
    weft_blocking_pool_free(p);
}
