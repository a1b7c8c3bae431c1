/* SPDX-License-Identifier: MIT */
/* File operations as futures: each one is a job on a blocking pool.
 *
 * The job's allocation carries the request: the operation's own copy of the
 * path, of the data to write, and room for the data read. So a future
 * dropped while its syscall runs leaves nothing of the caller's behind for
 * the pool thread to touch; what the syscall produced and nobody claimed (an
 * opened descriptor, a file read into memory) is released by the request's
 * dispose when the job's last reference goes.
 *
 * Who touches a request when: the future's owner writes it in setup, before
 * the job is queued; the pool thread while fn runs; the owner again once the
 * join reported the job done (the pool's lock orders the two); dispose after
 * the last reference (the lock orders that too). */
#include <fcntl.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "blocking/blocking.h"
#include "util/alloc.h"

enum {
    FS_NONE = 0, FS_READ_FILE, FS_WRITE_FILE, FS_STAT, FS_OPEN, FS_READ, FS_WRITE, FS_CLOSE
};
enum { S_INIT = 0, S_RUNNING, S_DONE };      /* weft_fs_op.state */

#define FS_READ_MAX ((size_t)16 << 20)     /* one read(2) asks for at most this */
#define FS_DATA_MAX ((size_t)1 << 30)

struct fs_req {
    unsigned char kind;
    bool claimed;               /* the owner took the result */
    int fd, flags;
    mode_t mode;
    ssize_t result;             /* >= 0 or -errno */
    void *data;                 /* read_file: the buffer (weft__malloc) */
    size_t len;                 /* data bytes at buf + off */
    size_t off;                 /* where the data starts in buf */
    struct stat st;
    alignas(max_align_t) char buf[];    /* path NUL, then data */
};

static ssize_t fs_err(void)
{
    return -(ssize_t)errno;
}

static int fs_open_retry(const char *path, int flags, mode_t mode)
{
    int fd;

    do
        fd = open(path, flags | O_CLOEXEC, mode);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static ssize_t fs_read_retry(int fd, void *buf, size_t len)
{
    ssize_t n;

    do
        n = read(fd, buf, len);
    while (n < 0 && errno == EINTR);
    return n < 0 ? fs_err() : n;
}

/* Write everything (short writes and EINTR continue). Bytes written or -errno. */
static ssize_t fs_write_all(int fd, const char *buf, size_t len)
{
    size_t done = 0;
    ssize_t n;

    while (done < len) {
        n = write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fs_err();
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* close(2): EINTR means the descriptor is gone already (Linux). */
static int fs_close(int fd)
{
    return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

static ssize_t fs_read_file(struct fs_req *r)
{
    struct stat st;
    size_t cap = 4096, len = 0;
    char *data, *bigger;
    ssize_t n;
    int fd;

    fd = fs_open_retry(r->buf, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uintmax_t)st.st_size < FS_DATA_MAX)
        cap = (size_t)st.st_size + 2;       /* room to see EOF, and the NUL */
    data = weft__malloc(cap);
    if (data == NULL) {
        n = -ENOMEM;
        goto out_close;
    }
    for (;;) {
        if (len + 1 == cap) {               /* full: grow */
            if (cap > FS_DATA_MAX) {
                n = -EFBIG;
                goto out_free;
            }
            bigger = weft__malloc(cap * 2);
            if (bigger == NULL) {
                n = -ENOMEM;
                goto out_free;
            }
            memcpy(bigger, data, len);
            weft__free(data);
            data = bigger;
            cap *= 2;
        }
        n = fs_read_retry(fd, data + len, cap - 1 - len);
        if (n < 0)
            goto out_free;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    data[len] = '\0';
    fs_close(fd);                           /* read-only: nothing to lose */
    r->data = data;
    r->len = len;
    return (ssize_t)len;
out_free:
    weft__free(data);
out_close:
    fs_close(fd);
    return n;
}

static ssize_t fs_write_file(struct fs_req *r)
{
    ssize_t n;
    int fd, err;

    fd = fs_open_retry(r->buf, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0)
        return fd;
    n = fs_write_all(fd, r->buf + r->off, r->len);
    err = fs_close(fd);                     /* NFS reports write errors here */
    if (n < 0)
        return n;
    return err < 0 ? err : 0;
}

static void *fs_run(void *arg)
{
    struct fs_req *r = arg;

    switch (r->kind) {
    case FS_READ_FILE:
        r->result = fs_read_file(r);
        break;
    case FS_WRITE_FILE:
        r->result = fs_write_file(r);
        break;
    case FS_STAT:
        r->result = stat(r->buf, &r->st) < 0 ? fs_err() : 0;
        break;
    case FS_OPEN:
        r->result = fs_open_retry(r->buf, r->flags, r->mode);
        break;
    case FS_READ:
        r->result = fs_read_retry(r->fd, r->buf + r->off, r->len);
        break;
    case FS_WRITE:
        r->result = fs_write_all(r->fd, r->buf + r->off, r->len);
        break;
    case FS_CLOSE:
        r->result = fs_close(r->fd);
        break;
    default:
        r->result = -EINVAL;
        break;
    }
    return NULL;
}

/* Release what the operation produced if its future never took it. */
static void fs_dispose(void *arg)
{
    struct fs_req *r = arg;

    if (r->claimed || r->result < 0)
        return;
    if (r->kind == FS_OPEN)
        fs_close((int)r->result);
    else if (r->kind == FS_READ_FILE)
        weft__free(r->data);
}

static bool fs_has_path(unsigned char kind)
{
    return kind == FS_READ_FILE || kind == FS_WRITE_FILE || kind == FS_STAT || kind == FS_OPEN;
}

static size_t fs_data_len(const weft_fs_op *op)
{
    if (op->kind == FS_READ)
        return op->len < FS_READ_MAX ? op->len : FS_READ_MAX;
    if (op->kind == FS_WRITE || op->kind == FS_WRITE_FILE)
        return op->len;
    return 0;
}

/* Copy the arguments into the request (the owner, before queueing). */
static void fs_setup(void *req, const void *arg)
{
    struct fs_req *r = req;
    const weft_fs_op *op = arg;
    size_t plen = fs_has_path(op->kind) ? strlen(op->path) + 1 : 0;

    r->kind = op->kind;
    r->fd = op->fd;
    r->flags = op->flags;
    r->mode = op->mode;
    r->result = -EINVAL;
    r->off = plen;
    r->len = fs_data_len(op);
    if (plen)
        memcpy(r->buf, op->path, plen);
    if (op->src && r->len)
        memcpy(r->buf + plen, op->src, r->len);
}

static void fs_init(weft_fs_op *op, weft_blocking_pool *pool, unsigned char kind)
{
    memset(op, 0, sizeof(*op));
    op->pool = pool;
    op->kind = kind;
    op->fd = -1;
    op->result = -EINVAL;
    op->state = S_INIT;                     /* a NULL pool is picked at the first poll */
}

WEFT_API void weft_fs_read_file_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                     void **data, size_t *len)
{
    fs_init(op, pool, FS_READ_FILE);
    op->path = path;
    op->dst = data;
    op->len_out = len;
    if (path == NULL || data == NULL)
        op->state = S_DONE;
}

WEFT_API void weft_fs_write_file_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                      const void *data, size_t len)
{
    fs_init(op, pool, FS_WRITE_FILE);
    op->path = path;
    op->src = data;
    op->len = len;
    if (path == NULL || (data == NULL && len > 0) || len > FS_DATA_MAX)
        op->state = S_DONE;
}

WEFT_API void weft_fs_stat_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                struct stat *st)
{
    fs_init(op, pool, FS_STAT);
    op->path = path;
    op->dst = st;
    if (path == NULL || st == NULL)
        op->state = S_DONE;
}

WEFT_API void weft_fs_open_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                int flags, mode_t mode)
{
    fs_init(op, pool, FS_OPEN);
    op->path = path;
    op->flags = flags;
    op->mode = mode;
    if (path == NULL)
        op->state = S_DONE;
}

WEFT_API void weft_fs_read_init(weft_fs_op *op, weft_blocking_pool *pool, int fd, void *buf,
                                size_t len)
{
    fs_init(op, pool, FS_READ);
    op->fd = fd;
    op->dst = buf;
    op->len = len;
    if (buf == NULL && len > 0)
        op->state = S_DONE;
}

WEFT_API void weft_fs_write_init(weft_fs_op *op, weft_blocking_pool *pool, int fd,
                                 const void *buf, size_t len)
{
    fs_init(op, pool, FS_WRITE);
    op->fd = fd;
    op->src = buf;
    op->len = len;
    if ((buf == NULL && len > 0) || len > FS_DATA_MAX)
        op->state = S_DONE;
}

WEFT_API void weft_fs_close_init(weft_fs_op *op, weft_blocking_pool *pool, int fd)
{
    fs_init(op, pool, FS_CLOSE);
    op->fd = fd;
}

/* The job is done (join said 0): take the result out of the request. */
static ssize_t fs_claim(weft_fs_op *op, struct fs_req *r)
{
    r->claimed = true;
    if (r->result < 0)
        return r->result;
    switch (r->kind) {
    case FS_READ_FILE:
        *(void **)op->dst = r->data;
        if (op->len_out)
            *op->len_out = r->len;
        break;
    case FS_STAT:
        *(struct stat *)op->dst = r->st;
        break;
    case FS_READ:
        if (r->result > 0)
            memcpy(op->dst, r->buf + r->off, (size_t)r->result);
        break;
    default:
        break;
    }
    return r->result;
}

WEFT_API weft_poll weft_fs_poll(weft_fs_op *op, weft_context *cx, ssize_t *result)
{
    size_t plen;
    int err, jr;

    if (op->state == S_INIT) {
        if (op->kind == FS_NONE) {          /* zeroed */
            op->result = -EINVAL;
            op->state = S_DONE;
            goto done;
        }
        plen = fs_has_path(op->kind) ? strlen(op->path) + 1 : 0;
        err = weft__blocking_spawn_req(op->pool, fs_run,
                                       sizeof(struct fs_req) + plen + fs_data_len(op),
                                       fs_setup, op, fs_dispose, &op->job);
        if (err < 0) {
            op->result = err;
            op->state = S_DONE;
            goto done;
        }
        weft_blocking_join_init(&op->join, op->job, NULL);
        op->state = S_RUNNING;
    }
    if (op->state == S_RUNNING) {
        if (weft_blocking_join_poll(&op->join, cx, &jr) == WEFT_PENDING)
            return WEFT_PENDING;
        op->result = jr < 0 ? jr : fs_claim(op, weft__blocking_job_req(op->job));
        weft_blocking_join_drop(&op->join);
        weft_blocking_job_drop(op->job);
        op->job = NULL;
        op->state = S_DONE;
    }
done:
    if (result)
        *result = op->result;
    return WEFT_READY;
}

WEFT_API void weft_fs_drop(weft_fs_op *op)
{
    if (op->state == S_RUNNING) {
        weft_blocking_join_drop(&op->join);
        weft_blocking_job_drop(op->job);    /* the job runs on; dispose cleans up */
        op->job = NULL;
    }
    op->result = -EINVAL;
    op->state = S_DONE;
}

WEFT_API void weft_fs_free(void *data)
{
    weft__free(data);
}
