// SPDX-License-Identifier: MIT
/* Issue 10's five cases (park_audit7.h) for every weft_co_fs_* call, parked
 * while its operation waits in the default pool's queue behind a job that
 * holds the pool's one thread. Cancelled there (abort, shutdown, deadline),
 * the operation is withdrawn and never happens (coro.h: "A cancelled call
 * is a dropped weft_fs_op: withdrawn if no pool thread took it yet (it
 * never happens; a close still closes)"); released, it completes. The
 * caller's outputs are untouched unless the call succeeds. */
#include "park_audit7.h"

static void fs_setup(pk_ctx *c)
{
    pk_files(c);
    pk_hold_pool(c);
}

static void fs_release(pk_ctx *c)
{
    atomic_store(&c->job_release, 1);
}

static void fs_teardown(pk_ctx *c)
{
    atomic_store(&c->job_release, 1);
    pk_wait_until(&c->job_done);
    if (c->fd2 >= 0)
        close(c->fd2);
    pk_files_gone(c);
}

/* the file and the tree as they were set up */
static void fs_untouched(pk_ctx *c)
{
    char buf[8] = { 0 };

    pk_unhold_and_settle(c);
    ASSERT_EQ(5, pk_size(c->p1));
    ASSERT_EQ(5, pread(c->fd, buf, sizeof(buf), 0));
    ASSERT_EQ(0, memcmp(buf, "hello", 5));
    ASSERT_EQ(0, lseek(c->fd, 0, SEEK_CUR));     /* no read or write moved it */
    ASSERT(!pk_exists(c->p2));
    ASSERT(pk_exists(c->d1));
}

/* ---- whole files ---- */
static long park_write_file(pk_ctx *c) { return weft_co_fs_write_file(c->p2, "data", 4); }
static void ok_write_file(pk_ctx *c)
{
    ASSERT_EQ(0, c->result);
    ASSERT_EQ(4, pk_size(c->p2));
}

static long park_read_file(pk_ctx *c)
{
    void *data = (void *)&c->aux;
    size_t len = 77;
    long r = weft_co_fs_read_file(c->p1, &data, &len);

    if (r < 0) {
        ASSERT(data == (void *)&c->aux);            /* untouched on failure */
        ASSERT_EQ(77, len);
    } else {
        ASSERT_EQ(5, len);
        ASSERT_EQ(0, memcmp(data, "hello", 6));     /* with its NUL */
        weft_fs_free(data);
    }
    return r;
}
static void ok_five(pk_ctx *c) { ASSERT_EQ(5, c->result); }
static void ok_zero(pk_ctx *c) { ASSERT_EQ(0, c->result); }

/* ---- paths ---- */
static long park_stat(pk_ctx *c)
{
    struct stat st;
    long r;

    memset(&st, 0xab, sizeof(st));
    r = weft_co_fs_stat(c->p1, &st);
    if (r == 0)
        ASSERT_EQ(5, (long)st.st_size);
    else
        ASSERT_EQ(0xab, ((unsigned char *)&st)[0]);
    return r;
}

static long park_open(pk_ctx *c)
{
    long r = weft_co_fs_open(c->p2, O_CREAT | O_WRONLY, 0600);

    if (r >= 0)
        c->fd2 = (int)r;
    return r;
}
static void ok_open(pk_ctx *c)
{
    ASSERT(c->result >= 0);
    ASSERT(fcntl(c->fd2, F_GETFD) & FD_CLOEXEC);
    ASSERT(pk_exists(c->p2));
}

static long park_rename(pk_ctx *c) { return weft_co_fs_rename(c->p1, c->p2); }
static void ok_rename(pk_ctx *c)
{
    ASSERT_EQ(0, c->result);
    ASSERT(!pk_exists(c->p1));
    ASSERT_EQ(5, pk_size(c->p2));
}

static long park_unlink(pk_ctx *c) { return weft_co_fs_unlink(c->p1); }
static void ok_unlink(pk_ctx *c)
{
    ASSERT_EQ(0, c->result);
    ASSERT(!pk_exists(c->p1));
}

static long park_mkdir(pk_ctx *c) { return weft_co_fs_mkdir(c->p2, 0700); }
static void ok_mkdir(pk_ctx *c)
{
    ASSERT_EQ(0, c->result);
    ASSERT(pk_exists(c->p2));
}

static long park_rmdir(pk_ctx *c) { return weft_co_fs_rmdir(c->d1); }
static void ok_rmdir(pk_ctx *c)
{
    ASSERT_EQ(0, c->result);
    ASSERT(!pk_exists(c->d1));
}

static long park_truncate(pk_ctx *c) { return weft_co_fs_truncate(c->p1, 1); }
static void ok_truncate(pk_ctx *c)
{
    ASSERT_EQ(0, c->result);
    ASSERT_EQ(1, pk_size(c->p1));
}

static long park_readdir(pk_ctx *c)
{
    weft_fs_dirent *ents = (void *)&c->aux;
    long r = weft_co_fs_readdir(c->dir, &ents);

    if (r < 0) {
        ASSERT(ents == (void *)&c->aux);
    } else {
        ASSERT_EQ(2, r);
        ASSERT_EQ(0, strcmp(ents[0].name, "a"));
        ASSERT_EQ(WEFT_FS_FILE, ents[0].type);
        ASSERT_EQ(0, strcmp(ents[1].name, "sub"));
        ASSERT_EQ(WEFT_FS_DIR, ents[1].type);
        weft_fs_free(ents);
    }
    return r;
}
static void ok_two(pk_ctx *c) { ASSERT_EQ(2, c->result); }

/* ---- descriptors ---- */
static long park_read(pk_ctx *c)
{
    char buf[8];
    long r;

    memset(buf, 'z', sizeof(buf));
    r = weft_co_fs_read(c->fd, buf, sizeof(buf));
    if (r >= 0)
        ASSERT_EQ(0, memcmp(buf, "hello", 5));
    else
        ASSERT_EQ('z', buf[0]);
    return r;
}
static void ok_read(pk_ctx *c)
{
    ASSERT_EQ(5, c->result);
    ASSERT_EQ(5, lseek(c->fd, 0, SEEK_CUR));      /* fd's offset moved */
}

static long park_write(pk_ctx *c) { return weft_co_fs_write(c->fd, "XY", 2); }
static void ok_write(pk_ctx *c)
{
    char buf[8] = { 0 };

    ASSERT_EQ(2, c->result);
    ASSERT_EQ(5, pread(c->fd, buf, sizeof(buf), 0));
    ASSERT_EQ(0, memcmp(buf, "XYllo", 5));
}

static long park_pread(pk_ctx *c)
{
    char buf[8] = { 0 };
    long r = weft_co_fs_pread(c->fd, buf, 3, 1);

    if (r >= 0)
        ASSERT_EQ(0, memcmp(buf, "ell", 3));
    return r;
}
static void ok_pread(pk_ctx *c)
{
    ASSERT_EQ(3, c->result);
    ASSERT_EQ(0, lseek(c->fd, 0, SEEK_CUR));
}

static long park_pwrite(pk_ctx *c) { return weft_co_fs_pwrite(c->fd, "Q", 1, 4); }
static void ok_pwrite(pk_ctx *c)
{
    char buf[8] = { 0 };

    ASSERT_EQ(1, c->result);
    ASSERT_EQ(5, pread(c->fd, buf, sizeof(buf), 0));
    ASSERT_EQ(0, memcmp(buf, "hellQ", 5));
}

static long park_fsync(pk_ctx *c) { return weft_co_fs_fsync(c->fd); }
static long park_fdatasync(pk_ctx *c) { return weft_co_fs_fdatasync(c->fd); }

static long park_ftruncate(pk_ctx *c) { return weft_co_fs_ftruncate(c->fd, 2); }
static void ok_ftruncate(pk_ctx *c)
{
    ASSERT_EQ(0, c->result);
    ASSERT_EQ(2, pk_size(c->p1));
}

static long park_fstat(pk_ctx *c)
{
    struct stat st;
    long r;

    memset(&st, 0xab, sizeof(st));
    r = weft_co_fs_fstat(c->fd, &st);
    if (r == 0)
        ASSERT_EQ(5, (long)st.st_size);
    else
        ASSERT_EQ(0xab, ((unsigned char *)&st)[0]);
    return r;
}

/* close: the one operation a cancel does not withdraw ("a close still
 * closes"), whether the coroutine is aborted, times out or its runtime is
 * shut down: fd2 must end up closed, never left open for nobody */
static void setup_close(pk_ctx *c)
{
    fs_setup(c);
    c->fd2 = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT(c->fd2 >= 0);
}
static long park_close(pk_ctx *c) { return weft_co_fs_close(c->fd2); }
static void closed(pk_ctx *c)
{
    ASSERT_EQ(-1, fcntl(c->fd2, F_GETFD));
    ASSERT_EQ(EBADF, errno);
    c->fd2 = -1;
}
static void ok_close(pk_ctx *c)
{
    ASSERT_EQ(0, c->result);
    closed(c);
}
static void undone_close(pk_ctx *c)
{
    pk_unhold_and_settle(c);
    closed(c);
}

#define FS_CASE(call, park, ok) \
    { call, fs_setup, park, fs_release, ok, fs_untouched, fs_teardown }

static const pk_case cases[] = {
    FS_CASE("weft_co_fs_write_file", park_write_file, ok_write_file),
    FS_CASE("weft_co_fs_read_file", park_read_file, ok_five),
    FS_CASE("weft_co_fs_stat", park_stat, ok_zero),
    FS_CASE("weft_co_fs_open", park_open, ok_open),
    FS_CASE("weft_co_fs_rename", park_rename, ok_rename),
    FS_CASE("weft_co_fs_unlink", park_unlink, ok_unlink),
    FS_CASE("weft_co_fs_mkdir", park_mkdir, ok_mkdir),
    FS_CASE("weft_co_fs_rmdir", park_rmdir, ok_rmdir),
    FS_CASE("weft_co_fs_truncate", park_truncate, ok_truncate),
    FS_CASE("weft_co_fs_readdir", park_readdir, ok_two),
    FS_CASE("weft_co_fs_read", park_read, ok_read),
    FS_CASE("weft_co_fs_write", park_write, ok_write),
    FS_CASE("weft_co_fs_pread", park_pread, ok_pread),
    FS_CASE("weft_co_fs_pwrite", park_pwrite, ok_pwrite),
    FS_CASE("weft_co_fs_fsync", park_fsync, ok_zero),
    FS_CASE("weft_co_fs_fdatasync", park_fdatasync, ok_zero),
    FS_CASE("weft_co_fs_ftruncate", park_ftruncate, ok_ftruncate),
    FS_CASE("weft_co_fs_fstat", park_fstat, ok_zero),
    { "weft_co_fs_close", setup_close, park_close, fs_release, ok_close, undone_close,
      fs_teardown },
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

TEST(fs_calls_complete_after_parking)
{
    pk_run_all(cases, N_CASES, PK_OK);
}

TEST(fs_calls_aborted_while_queued_never_happen)
{
    pk_run_all(cases, N_CASES, PK_ABORT);
}

TEST(fs_calls_at_shutdown_while_queued_never_happen)
{
    pk_run_all(cases, N_CASES, PK_SHUTDOWN);
}

TEST(fs_calls_past_the_deadline_while_queued_never_happen)
{
    pk_run_all(cases, N_CASES, PK_DEADLINE);
}
