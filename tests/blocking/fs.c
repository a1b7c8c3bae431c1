/* SPDX-License-Identifier: MIT */
/* File futures on the blocking pool: a round trip through a temporary
 * directory (by hand and from a task), errors as negative errno, dropping a
 * pending operation (nothing leaks: no descriptor, no buffer), shutdown,
 * misuse, allocation faults. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "../sync/sync_test.h"
#include "weft/blocking.h"

/* ---- helpers -------------------------------------------------------------- */

/* A waker that a plain thread sleeps on while it drives a future by hand. */
typedef struct tparker {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool woken;
} tparker;

static const weft_waker_vtable tp_vtable;

static weft_waker tp_clone(const void *d)
{
    return (weft_waker){ d, &tp_vtable };
}

static void tp_wake_by_ref(const void *d)
{
    tparker *t = (tparker *)(uintptr_t)d;

    pthread_mutex_lock(&t->m);
    t->woken = true;
    pthread_cond_signal(&t->c);
    pthread_mutex_unlock(&t->m);
}

static void tp_drop(const void *d)
{
    (void)d;
}

static const weft_waker_vtable tp_vtable = { tp_clone, tp_wake_by_ref, tp_wake_by_ref, tp_drop };

/* Poll `op` until READY, sleeping between wakes. Returns the result. */
static ssize_t drive(weft_fs_op *op)
{
    tparker t = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
    weft_waker w = { &t, &tp_vtable };
    weft_context cx = weft_context_from_waker(&w);
    ssize_t res = 12345;

    while (weft_fs_poll(op, &cx, &res) == WEFT_PENDING) {
        pthread_mutex_lock(&t.m);
        while (!t.woken)
            pthread_cond_wait(&t.c, &t.m);
        t.woken = false;
        pthread_mutex_unlock(&t.m);
    }
    weft_fs_drop(op);
    return res;
}

typedef struct tmpdir {
    char dir[64];
    char path[128];
} tmpdir;

static void tmp_make(tmpdir *t)
{
    snprintf(t->dir, sizeof(t->dir), "/tmp/weft-fs-XXXXXX");
    ASSERT(mkdtemp(t->dir) != NULL);
    snprintf(t->path, sizeof(t->path), "%s/file", t->dir);
}

static void tmp_remove(tmpdir *t)
{
    unlink(t->path);
    ASSERT_EQ(0, rmdir(t->dir));
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    ASSERT(d != NULL);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static weft_blocking_pool *new_pool(unsigned max)
{
    weft_blocking_pool *p = NULL;

    ASSERT_OK(weft_blocking_pool_new(&p, &(weft_blocking_options){ .max_threads = max }));
    return p;
}

/* ---- round trips ------------------------------------------------------------- */

TEST(fs_round_trip_by_hand)
{
    weft_blocking_pool *p = new_pool(2);
    static const char text[] = "hello, blocking pool\n";
    char buf[64] = "";
    weft_fs_op op;
    struct stat st;
    void *data = NULL;
    size_t len = 0;
    ssize_t fd;
    tmpdir t;

    tmp_make(&t);
    weft_fs_write_file_init(&op, p, t.path, text, sizeof(text) - 1);
    ASSERT_EQ(0, drive(&op));
    weft_fs_stat_init(&op, p, t.path, &st);
    ASSERT_EQ(0, drive(&op));
    ASSERT_EQ(sizeof(text) - 1, st.st_size);
    ASSERT(S_ISREG(st.st_mode));
    weft_fs_read_file_init(&op, p, t.path, &data, &len);
    ASSERT_EQ(sizeof(text) - 1, drive(&op));
    ASSERT_EQ(sizeof(text) - 1, len);
    ASSERT(memcmp(data, text, len) == 0);
    ASSERT_EQ('\0', ((char *)data)[len]);             /* NUL-terminated */
    weft_fs_free(data);

    /* descriptor by descriptor: append, then read back in two pieces */
    weft_fs_open_init(&op, p, t.path, O_WRONLY | O_APPEND, 0);
    fd = drive(&op);
    ASSERT(fd >= 0);
    ASSERT(fcntl((int)fd, F_GETFD) & FD_CLOEXEC);
    weft_fs_write_init(&op, p, (int)fd, "more", 4);
    ASSERT_EQ(4, drive(&op));
    weft_fs_close_init(&op, p, (int)fd);
    ASSERT_EQ(0, drive(&op));
    weft_fs_open_init(&op, p, t.path, O_RDONLY, 0);
    fd = drive(&op);
    ASSERT(fd >= 0);
    weft_fs_read_init(&op, p, (int)fd, buf, 5);
    ASSERT_EQ(5, drive(&op));
    ASSERT(memcmp(buf, "hello", 5) == 0);
    weft_fs_read_init(&op, p, (int)fd, buf + 5, sizeof(buf) - 6);
    ASSERT_EQ(sizeof(text) - 1 + 4 - 5, drive(&op));
    ASSERT(strcmp(buf, "hello, blocking pool\nmore") == 0);
    weft_fs_read_init(&op, p, (int)fd, buf, sizeof(buf));
    ASSERT_EQ(0, drive(&op));                         /* end of file */
    weft_fs_close_init(&op, p, (int)fd);
    ASSERT_EQ(0, drive(&op));

    /* an empty file, and one bigger than the first guess of a buffer */
    weft_fs_write_file_init(&op, p, t.path, NULL, 0);
    ASSERT_EQ(0, drive(&op));
    weft_fs_read_file_init(&op, p, t.path, &data, NULL);
    ASSERT_EQ(0, drive(&op));
    ASSERT_EQ('\0', *(char *)data);
    weft_fs_free(data);
    weft_fs_read_file_init(&op, p, "/proc/self/maps", &data, &len); /* size 0 in stat */
    ASSERT(drive(&op) > 0);
    ASSERT_EQ(strlen(data), len);
    weft_fs_free(data);

    tmp_remove(&t);
    weft_blocking_pool_free(p);
}

/* From a task on a 2-worker runtime: write, read back, stat. */
typedef struct fs_task {
    weft_async co;
    weft_blocking_pool *pool;
    const char *path;
    weft_fs_op op;
    void *data;
    size_t len;
    struct stat st;
    ssize_t res;
} fs_task;

static weft_poll fs_task_poll(fs_task *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    weft_fs_write_file_init(&f->op, f->pool, f->path, "0123456789", 10);
    WEFT_AWAIT(&f->co, weft_fs_poll(&f->op, cx, &f->res));
    weft_fs_drop(&f->op);
    if (f->res < 0)
        goto out;
    weft_fs_read_file_init(&f->op, f->pool, f->path, &f->data, &f->len);
    WEFT_AWAIT(&f->co, weft_fs_poll(&f->op, cx, &f->res));
    weft_fs_drop(&f->op);
    if (f->res != 10 || memcmp(f->data, "0123456789", 10) != 0)
        f->res = -1000;
    weft_fs_free(f->data);
    if (f->res < 0)
        goto out;
    weft_fs_stat_init(&f->op, f->pool, f->path, &f->st);
    WEFT_AWAIT(&f->co, weft_fs_poll(&f->op, cx, &f->res));
    weft_fs_drop(&f->op);
    if (f->res == 0)
        f->res = f->st.st_size;
out:
    *(ssize_t *)out = f->res;
    WEFT_END(&f->co);
}

static void fs_task_drop(fs_task *f)
{
    weft_fs_drop(&f->op);
}

WEFT_DEFINE_FUTURE(fs_task, fs_task_poll, fs_task_drop, ssize_t);

TEST(fs_round_trip_from_task)
{
    weft_runtime *rt = st_runtime(2);
    weft_blocking_pool *p = new_pool(2);
    ssize_t out = 0;
    tmpdir t;

    tmp_make(&t);
    ASSERT_OK(weft_block_on(rt, &fs_task_future, &(fs_task){ .pool = p, .path = t.path }, &out));
    ASSERT_EQ(10, out);
    tmp_remove(&t);
    weft_runtime_free(rt);
    weft_blocking_pool_free(p);
}

/* ---- errors ------------------------------------------------------------------ */

TEST(fs_errors_are_negative_errno)
{
    weft_blocking_pool *p = new_pool(2);
    weft_fs_op op;
    struct stat st;
    void *data = (void *)&op;
    size_t len = 77;
    char buf[8];
    tmpdir t;

    tmp_make(&t);
    weft_fs_read_file_init(&op, p, t.path, &data, &len);
    ASSERT_EQ(-ENOENT, drive(&op));
    ASSERT(data == (void *)&op && len == 77);        /* untouched on failure */
    weft_fs_stat_init(&op, p, t.path, &st);
    ASSERT_EQ(-ENOENT, drive(&op));
    weft_fs_open_init(&op, p, t.path, O_RDONLY, 0);
    ASSERT_EQ(-ENOENT, drive(&op));
    weft_fs_open_init(&op, p, t.dir, O_WRONLY, 0);
    ASSERT_EQ(-EISDIR, drive(&op));
    weft_fs_read_file_init(&op, p, t.dir, &data, &len);
    ASSERT_EQ(-EISDIR, drive(&op));
    weft_fs_write_file_init(&op, p, "/nonexistent-weft-dir/x", "x", 1);
    ASSERT_EQ(-ENOENT, drive(&op));
    weft_fs_read_init(&op, p, -1, buf, sizeof(buf));
    ASSERT_EQ(-EBADF, drive(&op));
    weft_fs_write_init(&op, p, -1, "x", 1);
    ASSERT_EQ(-EBADF, drive(&op));
    weft_fs_close_init(&op, p, -1);
    ASSERT_EQ(-EBADF, drive(&op));
    tmp_remove(&t);
    weft_blocking_pool_free(p);
}

/* ---- cancellation -------------------------------------------------------------- */

typedef struct gate {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool open, arrived;
} gate;

static void *gate_job(void *arg)
{
    gate *g = arg;

    pthread_mutex_lock(&g->m);
    g->arrived = true;
    while (!g->open)
        pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
    return NULL;
}

static bool gate_arrived(gate *g)
{
    bool a;

    pthread_mutex_lock(&g->m);
    a = g->arrived;
    pthread_mutex_unlock(&g->m);
    return a;
}

/* Operations dropped while queued behind a busy thread are withdrawn: they
 * never run (the read takes no bytes, the open opens nothing), nothing leaks
 * (the read's duplicate descriptor is closed). */
TEST(fs_drop_pending_leaks_nothing)
{
    weft_blocking_pool *p = new_pool(1);
    gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false };
    cwaker c = { 0 };
    weft_waker w = cw_waker(&c);
    weft_context cx = weft_context_from_waker(&w);
    weft_fs_op open_op, read_op, stat_op, fd_read, never;
    weft_blocking_job *busy;
    struct stat st;
    void *data = NULL;
    char buf[4] = "abc";
    int fds = count_fds(), fd;
    ssize_t res = 0;
    tmpdir t;

    tmp_make(&t);
    weft_fs_write_file_init(&open_op, p, t.path, "data", 4);
    ASSERT_EQ(0, drive(&open_op));
    fd = open(t.path, O_RDONLY | O_CLOEXEC);
    ASSERT(fd >= 0);
    ASSERT_OK(weft_blocking_spawn(p, gate_job, &g, &busy));
    ST_WAIT_UNTIL(gate_arrived(&g));
    weft_fs_open_init(&open_op, p, t.path, O_RDONLY, 0);
    ASSERT_EQ(WEFT_PENDING, weft_fs_poll(&open_op, &cx, &res));
    weft_fs_read_file_init(&read_op, p, t.path, &data, NULL);
    ASSERT_EQ(WEFT_PENDING, weft_fs_poll(&read_op, &cx, &res));
    weft_fs_stat_init(&stat_op, p, t.path, &st);
    ASSERT_EQ(WEFT_PENDING, weft_fs_poll(&stat_op, &cx, &res));
    weft_fs_read_init(&fd_read, p, fd, buf, 3);
    ASSERT_EQ(WEFT_PENDING, weft_fs_poll(&fd_read, &cx, &res));
    weft_fs_drop(&fd_read);
    weft_fs_read_file_init(&never, p, t.path, &data, NULL);
    weft_fs_drop(&never);                             /* never polled */
    weft_fs_drop(&open_op);
    weft_fs_drop(&read_op);
    weft_fs_drop(&read_op);                           /* idempotent */
    pthread_mutex_lock(&g.m);
    g.open = true;
    pthread_cond_broadcast(&g.c);
    pthread_mutex_unlock(&g.m);
    ST_WAIT_UNTIL(cw_wakes(&c) == 1);                 /* the stat, still awaited */
    weft_fs_drop(&stat_op);                           /* woken, not polled again */
    weft_blocking_job_drop(busy);
    ASSERT_EQ(0, weft_blocking_pool_shutdown(p, WEFT_BLOCKING_FOREVER));
    ASSERT(data == NULL);
    ASSERT(strcmp(buf, "abc") == 0);                  /* not written after the drop */
    ASSERT_EQ(3, read(fd, buf, 3));                   /* the dropped read was withdrawn */
    ASSERT(memcmp(buf, "dat", 3) == 0);
    close(fd);
    ASSERT_EQ(fds, count_fds());                      /* the opened fd was closed */
    ASSERT_CW_BALANCED(&c);
    tmp_remove(&t);
    weft_blocking_pool_free(p);
}

TEST(fs_shutdown_and_cancel)
{
    weft_blocking_pool *p = new_pool(1);
    gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false };
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    weft_blocking_job *busy;
    weft_fs_op op;
    struct stat st;
    ssize_t res = 0;

    ASSERT_OK(weft_blocking_spawn(p, gate_job, &g, &busy));
    ST_WAIT_UNTIL(gate_arrived(&g));
    weft_fs_stat_init(&op, p, "/", &st);
    ASSERT_EQ(WEFT_PENDING, weft_fs_poll(&op, &cx, &res));
    ASSERT_EQ(1, weft_blocking_pool_shutdown(p, 0));
    ASSERT_EQ(WEFT_READY, weft_fs_poll(&op, &cx, &res));
    ASSERT_EQ(-ECANCELED, res);
    weft_fs_drop(&op);
    weft_fs_stat_init(&op, p, "/", &st);
    ASSERT_EQ(-ESHUTDOWN, drive(&op));
    pthread_mutex_lock(&g.m);
    g.open = true;
    pthread_cond_broadcast(&g.c);
    pthread_mutex_unlock(&g.m);
    ASSERT_OK(weft_blocking_job_wait(busy, NULL));    /* g lives on this stack */
    weft_blocking_job_drop(busy);
    weft_blocking_pool_free(p);
}

/* ---- misuse, faults ---------------------------------------------------------- */

TEST(fs_misuse)
{
    weft_blocking_pool *p = new_pool(1);
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    weft_fs_op op;
    struct stat st;
    void *data;
    ssize_t res = 0;

    weft_fs_stat_init(&op, NULL, "/", &st);
    ASSERT_EQ(-EINVAL, drive(&op));
    weft_fs_stat_init(&op, p, NULL, &st);
    ASSERT_EQ(-EINVAL, drive(&op));
    weft_fs_stat_init(&op, p, "/", NULL);
    ASSERT_EQ(-EINVAL, drive(&op));
    weft_fs_read_file_init(&op, p, "/", NULL, NULL);
    ASSERT_EQ(-EINVAL, drive(&op));
    weft_fs_read_file_init(&op, p, NULL, &data, NULL);
    ASSERT_EQ(-EINVAL, drive(&op));
    weft_fs_write_file_init(&op, p, "/tmp/x", NULL, 3);
    ASSERT_EQ(-EINVAL, drive(&op));
    weft_fs_open_init(&op, p, NULL, O_RDONLY, 0);
    ASSERT_EQ(-EINVAL, drive(&op));
    weft_fs_read_init(&op, p, 0, NULL, 3);
    ASSERT_EQ(-EINVAL, drive(&op));
    weft_fs_write_init(&op, p, 1, NULL, 3);
    ASSERT_EQ(-EINVAL, drive(&op));
    memset(&op, 0, sizeof(op));                       /* zeroed */
    ASSERT_EQ(WEFT_READY, weft_fs_poll(&op, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_fs_drop(&op);
    weft_fs_drop(&op);
    ASSERT_EQ(WEFT_READY, weft_fs_poll(&op, &cx, &res)); /* dropped */
    ASSERT_EQ(-EINVAL, res);
    weft_fs_free(NULL);
    ASSERT_EQ(0, weft_blocking_pool_threads(p));      /* nothing reached the pool */
    weft_blocking_pool_free(p);
}

/* Fail allocation 1, 2, ... of each operation: each run reports -ENOMEM (the
 * job, or read_file's buffer) or succeeds, and leaks nothing. */
TEST(fs_alloc_fault)
{
    weft_blocking_pool *p = new_pool(1);
    weft_fs_op op;
    void *data = NULL;
    ssize_t r;
    int failed = 0;
    tmpdir t;

    tmp_make(&t);
    harness_fail_alloc_at(1);
    weft_fs_write_file_init(&op, p, t.path, "abc", 3);
    ASSERT_EQ(-ENOMEM, drive(&op));
    harness_fail_alloc_at(0);
    weft_fs_write_file_init(&op, p, t.path, "abc", 3);
    ASSERT_EQ(0, drive(&op));
    for (size_t k = 1; k < 10; k++) {
        long live = harness_live();

        harness_fail_alloc_at(k);
        weft_fs_read_file_init(&op, p, t.path, &data, NULL);
        r = drive(&op);
        harness_fail_alloc_at(0);
        if (r == -ENOMEM) {
            failed++;
            ASSERT_EQ(live, harness_live());
            continue;
        }
        ASSERT_EQ(3, r);
        ASSERT(memcmp(data, "abc", 4) == 0);
        weft_fs_free(data);
        break;
    }
    ASSERT_EQ(2, failed);                             /* the job, then the buffer */
    tmp_remove(&t);
    weft_blocking_pool_free(p);
}
