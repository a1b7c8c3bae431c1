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
 * the last reference (the lock orders that too).
 *
 * Ownership per operation (what the job holds, so that a drop at any moment
 * is safe without waiting for it):
 *   every path            copied into the request (rename: both)
 *   write, pwrite,        the data, copied into the request
 *     write_file
 *   read, pread           the bytes read land in the request, copied out
 *                         only by a poll that completes
 *   read_file, readdir    the result is a weft__malloc'd block; dispose frees
 *                         it unless a completing poll handed it over
 *   open                  dispose closes the descriptor unless handed over
 *   descriptor ops        a duplicate of fd made in setup (F_DUPFD_CLOEXEC),
 *                         closed by dispose: never a reused number
 *   close                 the caller's fd itself, handed over for good
 * A drop withdraws a job that has not started (weft__blocking_job_withdraw),
 * except a close, so that an aborted mutation has happened whole or not at
 * all; a started job runs to its end and dispose cleans up after it. */
#include <dirent.h>
#include <fcntl.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blocking/blocking.h"
#include "util/alloc.h"
#include "util/cx.h"

enum {
    FS_NONE = 0, FS_READ_FILE, FS_WRITE_FILE, FS_STAT, FS_OPEN, FS_READ, FS_WRITE, FS_CLOSE,
    FS_PREAD, FS_PWRITE, FS_FSYNC, FS_FDATASYNC, FS_FTRUNCATE, FS_FSTAT,
    FS_RENAME, FS_UNLINK, FS_MKDIR, FS_RMDIR, FS_TRUNCATE, FS_READDIR
};
enum { S_INIT = 0, S_RUNNING, S_DONE };      /* weft_fs_op.state */

#define FS_READ_MAX WEFT_FS_READ_MAX
#define FS_DATA_MAX WEFT_FS_WRITE_MAX
/* read_file's largest buffer: FS_DATA_MAX bytes, one more to see that the
 * end of file comes there, and the NUL */
#define FS_FILE_CAP (FS_DATA_MAX + 2)

struct fs_req {
    unsigned char kind;
    bool claimed;               /* the owner took the result */
    bool own_fd;                /* fd is our duplicate: dispose closes it */
    bool ran;                   /* fn ran (the pool thread; read by dispose) */
    bool dropped;               /* a close the owner dropped: dispose closes
                                 * fd if fn never ran (a pool shutdown
                                 * cancelled it), so fd is never left open */
    int fd, flags;
    mode_t mode;
    off_t off;
    int setup_err;              /* setup failed (the duplicate): fn reports it */
    ssize_t result;             /* >= 0 or -errno; -ECANCELED until fn ran */
    void *data;                 /* read_file, readdir: the block (weft__malloc) */
    size_t len;                 /* data bytes at buf + doff */
    size_t doff;                /* where the data starts in buf */
    size_t path2;               /* rename: where the second path starts */
    struct stat st;
    alignas(max_align_t) char buf[];    /* path NUL, [path2 NUL,] then data */
};

static ssize_t fs_err(void)
{
    return -(ssize_t)errno;
}

/* rc = call, again while it fails with EINTR. */
#define FS_RETRY(rc, call)                                                    \
    do                                                                        \
        (rc) = (call);                                                        \
    while ((rc) < 0 && errno == EINTR)

static int fs_open_retry(const char *path, int flags, mode_t mode)
{
    int fd;

    FS_RETRY(fd, open(path, flags | O_CLOEXEC, mode));
    return fd < 0 ? -errno : fd;
}

static ssize_t fs_read_retry(int fd, void *buf, size_t len)
{
    ssize_t n;

    FS_RETRY(n, read(fd, buf, len));
    return n < 0 ? fs_err() : n;
}

/* 0, or -errno of a call that returns -1 on failure. */
static ssize_t fs_zero(int rc)
{
    return rc < 0 ? fs_err() : 0;
}

/* The job's calls that take a descriptor, EINTR retried: 0 or -errno. */
static ssize_t fs_fd_call(unsigned char kind, int fd, off_t len);

/* The largest offset: Linux refuses (-EINVAL) a pread or pwrite whose
 * offset + count passes it, so both stop there (see fs_room()). */
#define FS_OFF_MAX ((off_t)(((uintmax_t)1 << (sizeof(off_t) * 8 - 1)) - 1))

/* Bytes of `len` that lie below FS_OFF_MAX from `off` (off >= 0). A read
 * asked for past that point is at or past any end of file (0 bytes), a
 * write there is past the largest file (-EFBIG), as the same call within
 * the limit reports it; Linux would say -EINVAL for both. */
static size_t fs_room(off_t off, size_t len)
{
    uintmax_t room = (uintmax_t)(FS_OFF_MAX - off);

    return room < len ? (size_t)room : len;
}

/* Write everything (short writes and EINTR continue); at `off` unless it is
 * negative. Bytes written or -errno. */
static ssize_t fs_write_all(int fd, const char *buf, size_t len, off_t off)
{
    size_t done = 0;
    ssize_t n;

    while (done < len) {
        if (off < 0) {
            n = write(fd, buf + done, len - done);
        } else {
            size_t room = fs_room(off + (off_t)done, len - done);

            if (room == 0)
                return -EFBIG;      /* past the largest offset */
            n = pwrite(fd, buf + done, room, off + (off_t)done);
        }
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
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        if ((uintmax_t)st.st_size > FS_DATA_MAX) {
            n = -EFBIG;                     /* past 1 GiB: not read at all */
            goto out_close;
        }
        cap = (size_t)st.st_size + 2;       /* room to see EOF, and the NUL */
    }
    data = weft__malloc(cap);
    if (data == NULL) {
        n = -ENOMEM;
        goto out_close;
    }
    for (;;) {
        if (len + 1 == cap) {               /* full: grow */
            size_t ncap;

            /* len is past FS_DATA_MAX once cap is FS_FILE_CAP and full */
            if (cap >= FS_FILE_CAP) {
                n = -EFBIG;
                goto out_free;
            }
            ncap = cap > FS_FILE_CAP / 2 ? FS_FILE_CAP : cap * 2;
            bigger = weft__malloc(ncap);
            if (bigger == NULL) {
                n = -ENOMEM;
                goto out_free;
            }
            memcpy(bigger, data, len);
            weft__free(data);
            data = bigger;
            cap = ncap;
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
    n = fs_write_all(fd, r->buf + r->doff, r->len, -1);
    err = fs_close(fd);                     /* NFS reports write errors here */
    if (n < 0)
        return n;
    return err < 0 ? err : 0;
}

/* ---- readdir --------------------------------------------------------------
 * Entries are gathered in a growing scratch list (name offsets into a
 * growing name buffer), then packed into the one block handed out:
 * [count weft_fs_dirent][names, NUL-terminated]. */
struct fs_scratch {
    size_t *noff;               /* name offset per entry */
    unsigned char *type;
    size_t n, cap;
    char *names;
    size_t nlen, ncap;
};

static weft_fs_type fs_type_of_mode(mode_t m)
{
    if (S_ISREG(m))
        return WEFT_FS_FILE;
    if (S_ISDIR(m))
        return WEFT_FS_DIR;
    if (S_ISLNK(m))
        return WEFT_FS_LINK;
    if (S_ISFIFO(m))
        return WEFT_FS_FIFO;
    if (S_ISSOCK(m))
        return WEFT_FS_SOCKET;
    if (S_ISCHR(m))
        return WEFT_FS_CHAR;
    if (S_ISBLK(m))
        return WEFT_FS_BLOCK;
    return WEFT_FS_UNKNOWN;
}

static weft_fs_type fs_type_of(DIR *d, const struct dirent *e)
{
    struct stat st;

    switch (e->d_type) {
    case DT_REG: return WEFT_FS_FILE;
    case DT_DIR: return WEFT_FS_DIR;
    case DT_LNK: return WEFT_FS_LINK;
    case DT_FIFO: return WEFT_FS_FIFO;
    case DT_SOCK: return WEFT_FS_SOCKET;
    case DT_CHR: return WEFT_FS_CHAR;
    case DT_BLK: return WEFT_FS_BLOCK;
    default: break;
    }
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return fs_type_of_mode(st.st_mode);
    return WEFT_FS_UNKNOWN;                 /* gone meanwhile: still listed */
}

/* Make room for one more entry and `need` name bytes. 0 or -ENOMEM. */
static int fs_scratch_grow(struct fs_scratch *s, size_t need)
{
    size_t cap, ncap;
    void *p, *q;

    if (s->n == s->cap) {
        cap = s->cap ? s->cap * 2 : 32;
        p = weft__malloc(cap * sizeof(*s->noff));
        q = weft__malloc(cap);
        if (p == NULL || q == NULL) {
            weft__free(p);
            weft__free(q);
            return -ENOMEM;
        }
        if (s->n) {
            memcpy(p, s->noff, s->n * sizeof(*s->noff));
            memcpy(q, s->type, s->n);
        }
        weft__free(s->noff);
        weft__free(s->type);
        s->noff = p;
        s->type = q;
        s->cap = cap;
    }
    if (s->ncap - s->nlen < need) {
        ncap = s->ncap ? s->ncap : 1024;
        while (ncap - s->nlen < need)
            ncap *= 2;
        p = weft__malloc(ncap);
        if (p == NULL)
            return -ENOMEM;
        if (s->nlen)
            memcpy(p, s->names, s->nlen);
        weft__free(s->names);
        s->names = p;
        s->ncap = ncap;
    }
    return 0;
}

static int fs_dirent_cmp(const void *a, const void *b)
{
    return strcmp(((const weft_fs_dirent *)a)->name, ((const weft_fs_dirent *)b)->name);
}

static ssize_t fs_readdir(struct fs_req *r)
{
    struct fs_scratch s = { 0 };
    weft_fs_dirent *ents;
    struct dirent *e;
    char *names;
    ssize_t res;
    size_t len;
    DIR *d;
    int fd;

    fd = fs_open_retry(r->buf, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    d = fdopendir(fd);
    if (d == NULL) {
        res = fs_err();
        fs_close(fd);
        return res;
    }
    for (;;) {
        errno = 0;
        e = readdir(d);
        if (e == NULL) {
            res = errno ? fs_err() : 0;
            if (res < 0)
                goto out;
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        len = strlen(e->d_name) + 1;
        res = fs_scratch_grow(&s, len);
        if (res < 0)
            goto out;
        memcpy(s.names + s.nlen, e->d_name, len);
        s.noff[s.n] = s.nlen;
        s.type[s.n] = (unsigned char)fs_type_of(d, e);
        s.nlen += len;
        s.n++;
    }
    /* one block: entries, then names; never NULL, even when empty */
    ents = weft__malloc(s.n * sizeof(*ents) + s.nlen + 1);
    if (ents == NULL) {
        res = -ENOMEM;
        goto out;
    }
    names = (char *)(ents + s.n);
    if (s.nlen)
        memcpy(names, s.names, s.nlen);
    for (size_t i = 0; i < s.n; i++) {
        ents[i].name = names + s.noff[i];
        ents[i].type = (weft_fs_type)s.type[i];
    }
    if (s.n > 1)
        qsort(ents, s.n, sizeof(*ents), fs_dirent_cmp);
    r->data = ents;
    r->len = s.n;
    res = (ssize_t)s.n;
out:
    closedir(d);                            /* closes fd */
    weft__free(s.noff);
    weft__free(s.type);
    weft__free(s.names);
    return res;
}

/* ---- the job ----------------------------------------------------------- */

static ssize_t fs_fd_call(unsigned char kind, int fd, off_t len)
{
    int rc;

    if (kind == FS_FSYNC)
        FS_RETRY(rc, fsync(fd));
    else if (kind == FS_FDATASYNC)
        FS_RETRY(rc, fdatasync(fd));
    else
        FS_RETRY(rc, ftruncate(fd, len));
    return fs_zero(rc);
}

static ssize_t fs_do(struct fs_req *r)
{
    const char *path = r->buf, *data = r->buf + r->doff;
    ssize_t n;
    int rc;

    switch (r->kind) {
    case FS_READ_FILE:
        return fs_read_file(r);
    case FS_WRITE_FILE:
        return fs_write_file(r);
    case FS_STAT:
        return fs_zero(stat(path, &r->st));
    case FS_OPEN:
        return fs_open_retry(path, r->flags, r->mode);
    case FS_READ:
        return fs_read_retry(r->fd, r->buf + r->doff, r->len);
    case FS_WRITE:
        return fs_write_all(r->fd, data, r->len, -1);
    case FS_CLOSE:
        return fs_close(r->fd);
    case FS_PREAD:
        FS_RETRY(n, pread(r->fd, r->buf + r->doff, fs_room(r->off, r->len), r->off));
        return n < 0 ? fs_err() : n;
    case FS_PWRITE:
        return fs_write_all(r->fd, data, r->len, r->off);
    case FS_FSYNC:
    case FS_FDATASYNC:
    case FS_FTRUNCATE:
        return fs_fd_call(r->kind, r->fd, r->off);
    case FS_FSTAT:
        return fs_zero(fstat(r->fd, &r->st));
    case FS_RENAME:
        return fs_zero(rename(path, r->buf + r->path2));
    case FS_UNLINK:
        return fs_zero(unlink(path));
    case FS_MKDIR:
        return fs_zero(mkdir(path, r->mode));
    case FS_RMDIR:
        return fs_zero(rmdir(path));
    case FS_TRUNCATE:
        FS_RETRY(rc, truncate(path, r->off));
        return fs_zero(rc);
    case FS_READDIR:
        return fs_readdir(r);
    default:
        return -EINVAL;
    }
}

_Atomic(weft__fs_hook_fn) weft__fs_hook;

static void *fs_run(void *arg)
{
    struct fs_req *r = arg;
    /* relaxed: a test sets the hook before it queues the job; the pool's
     * lock orders the two */
    weft__fs_hook_fn hook = atomic_load_explicit(&weft__fs_hook, memory_order_relaxed);

    if (hook)
        hook();

    r->result = r->setup_err < 0 ? r->setup_err : fs_do(r);
    r->ran = true;
    return NULL;
}

/* Release what the operation produced if its future never took it, and the
 * duplicate descriptor. Runs once, on the thread of the last reference. */
static void fs_dispose(void *arg)
{
    struct fs_req *r = arg;

    if (r->own_fd)
        fs_close(r->fd);
    if (r->kind == FS_CLOSE && r->dropped && !r->ran)
        fs_close(r->fd);                    /* a dropped close still closes */
    if (r->claimed || r->result < 0)
        return;
    if (r->kind == FS_OPEN)
        fs_close((int)r->result);
    else if (r->kind == FS_READ_FILE || r->kind == FS_READDIR)
        weft__free(r->data);
}

static unsigned fs_npaths(unsigned char kind)
{
    switch (kind) {
    case FS_READ_FILE: case FS_WRITE_FILE: case FS_STAT: case FS_OPEN:
    case FS_UNLINK: case FS_MKDIR: case FS_RMDIR: case FS_TRUNCATE: case FS_READDIR:
        return 1;
    case FS_RENAME:
        return 2;
    default:
        return 0;
    }
}

/* Operations on a descriptor, which work on a duplicate of it. */
static bool fs_dups_fd(unsigned char kind)
{
    switch (kind) {
    case FS_READ: case FS_WRITE: case FS_PREAD: case FS_PWRITE: case FS_FSYNC:
    case FS_FDATASYNC: case FS_FTRUNCATE: case FS_FSTAT:
        return true;
    default:
        return false;
    }
}

static size_t fs_data_len(const weft_fs_op *op)
{
    if (op->kind == FS_READ || op->kind == FS_PREAD)
        return op->len < FS_READ_MAX ? op->len : FS_READ_MAX;
    if (op->kind == FS_WRITE || op->kind == FS_WRITE_FILE || op->kind == FS_PWRITE)
        return op->len;
    return 0;
}

/* Bytes of the request's paths (with their NULs). */
static size_t fs_paths_len(const weft_fs_op *op)
{
    unsigned n = fs_npaths(op->kind);

    return (n >= 1 ? strlen(op->path) + 1 : 0) + (n >= 2 ? strlen(op->path2) + 1 : 0);
}

/* Copy the arguments into the request (the owner, before queueing). An
 * error here (the duplicate) is left in r->setup_err for fn to report. */
static void fs_setup(void *req, const void *arg)
{
    struct fs_req *r = req;
    const weft_fs_op *op = arg;
    unsigned np = fs_npaths(op->kind);
    size_t l1 = np >= 1 ? strlen(op->path) + 1 : 0;
    size_t l2 = np >= 2 ? strlen(op->path2) + 1 : 0;

    r->kind = op->kind;
    r->fd = op->fd;
    r->flags = op->flags;
    r->mode = op->mode;
    r->off = op->off;
    r->result = -ECANCELED;                 /* withdrawn: dispose finds nothing */
    r->path2 = l1;
    r->doff = l1 + l2;
    r->len = fs_data_len(op);
    if (l1)
        memcpy(r->buf, op->path, l1);
    if (l2)
        memcpy(r->buf + l1, op->path2, l2);
    if (op->src && r->len)
        memcpy(r->buf + r->doff, op->src, r->len);
    if (fs_dups_fd(op->kind)) {
        r->fd = op->fd < 0 ? -1 : fcntl(op->fd, F_DUPFD_CLOEXEC, 0);
        if (r->fd < 0)
            r->setup_err = op->fd < 0 ? -EBADF : (int)fs_err();
        else
            r->own_fd = true;
    }
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

/* Bad arguments: complete at once with -EINVAL, never reaching the pool. */
static void fs_bad_if(weft_fs_op *op, bool bad)
{
    if (bad)
        op->state = S_DONE;
}

WEFT_API void weft_fs_read_file_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                     void **data, size_t *len)
{
    if (op == NULL)
        return;
    fs_init(op, pool, FS_READ_FILE);
    op->path = path;
    op->dst = data;
    op->len_out = len;
    fs_bad_if(op, path == NULL || data == NULL);
}

WEFT_API void weft_fs_write_file_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                      const void *data, size_t len)
{
    if (op == NULL)
        return;
    fs_init(op, pool, FS_WRITE_FILE);
    op->path = path;
    op->src = data;
    op->len = len;
    fs_bad_if(op, path == NULL || (data == NULL && len > 0) || len > FS_DATA_MAX);
}

WEFT_API void weft_fs_stat_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                struct stat *st)
{
    if (op == NULL)
        return;
    fs_init(op, pool, FS_STAT);
    op->path = path;
    op->dst = st;
    fs_bad_if(op, path == NULL || st == NULL);
}

WEFT_API void weft_fs_open_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                int flags, mode_t mode)
{
    if (op == NULL)
        return;
    fs_init(op, pool, FS_OPEN);
    op->path = path;
    op->flags = flags;
    op->mode = mode;
    fs_bad_if(op, path == NULL);
}

static void fs_path_init(weft_fs_op *op, weft_blocking_pool *pool, unsigned char kind,
                         const char *path)
{
    fs_init(op, pool, kind);
    op->path = path;
    fs_bad_if(op, path == NULL);
}

WEFT_API void weft_fs_rename_init(weft_fs_op *op, weft_blocking_pool *pool, const char *from,
                                  const char *to)
{
    if (op == NULL)
        return;
    fs_path_init(op, pool, FS_RENAME, from);
    op->path2 = to;
    fs_bad_if(op, to == NULL);
}

WEFT_API void weft_fs_unlink_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path)
{
    if (op == NULL)
        return;
    fs_path_init(op, pool, FS_UNLINK, path);
}

WEFT_API void weft_fs_mkdir_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                 mode_t mode)
{
    if (op == NULL)
        return;
    fs_path_init(op, pool, FS_MKDIR, path);
    op->mode = mode;
}

WEFT_API void weft_fs_rmdir_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path)
{
    if (op == NULL)
        return;
    fs_path_init(op, pool, FS_RMDIR, path);
}

WEFT_API void weft_fs_truncate_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                    off_t length)
{
    if (op == NULL)
        return;
    fs_path_init(op, pool, FS_TRUNCATE, path);
    op->off = length;
    fs_bad_if(op, length < 0);
}

WEFT_API void weft_fs_readdir_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                   weft_fs_dirent **ents, size_t *count)
{
    if (op == NULL)
        return;
    fs_path_init(op, pool, FS_READDIR, path);
    op->dst = ents;
    op->len_out = count;
    fs_bad_if(op, ents == NULL);
}

static void fs_fd_init(weft_fs_op *op, weft_blocking_pool *pool, unsigned char kind, int fd)
{
    fs_init(op, pool, kind);
    op->fd = fd;
}

WEFT_API void weft_fs_read_init(weft_fs_op *op, weft_blocking_pool *pool, int fd, void *buf,
                                size_t len)
{
    if (op == NULL)
        return;
    fs_fd_init(op, pool, FS_READ, fd);
    op->dst = buf;
    op->len = len;
    fs_bad_if(op, buf == NULL && len > 0);
}

WEFT_API void weft_fs_write_init(weft_fs_op *op, weft_blocking_pool *pool, int fd,
                                 const void *buf, size_t len)
{
    if (op == NULL)
        return;
    fs_fd_init(op, pool, FS_WRITE, fd);
    op->src = buf;
    op->len = len;
    fs_bad_if(op, (buf == NULL && len > 0) || len > FS_DATA_MAX);
}

WEFT_API void weft_fs_pread_init(weft_fs_op *op, weft_blocking_pool *pool, int fd, void *buf,
                                 size_t len, off_t off)
{
    if (op == NULL)
        return;
    fs_fd_init(op, pool, FS_PREAD, fd);
    op->dst = buf;
    op->len = len;
    op->off = off;
    fs_bad_if(op, (buf == NULL && len > 0) || off < 0);
}

WEFT_API void weft_fs_pwrite_init(weft_fs_op *op, weft_blocking_pool *pool, int fd,
                                  const void *buf, size_t len, off_t off)
{
    if (op == NULL)
        return;
    fs_fd_init(op, pool, FS_PWRITE, fd);
    op->src = buf;
    op->len = len;
    op->off = off;
    fs_bad_if(op, (buf == NULL && len > 0) || len > FS_DATA_MAX || off < 0);
}

WEFT_API void weft_fs_fsync_init(weft_fs_op *op, weft_blocking_pool *pool, int fd)
{
    if (op == NULL)
        return;
    fs_fd_init(op, pool, FS_FSYNC, fd);
}

WEFT_API void weft_fs_fdatasync_init(weft_fs_op *op, weft_blocking_pool *pool, int fd)
{
    if (op == NULL)
        return;
    fs_fd_init(op, pool, FS_FDATASYNC, fd);
}

WEFT_API void weft_fs_ftruncate_init(weft_fs_op *op, weft_blocking_pool *pool, int fd,
                                     off_t length)
{
    if (op == NULL)
        return;
    fs_fd_init(op, pool, FS_FTRUNCATE, fd);
    op->off = length;
    fs_bad_if(op, length < 0);
}

WEFT_API void weft_fs_fstat_init(weft_fs_op *op, weft_blocking_pool *pool, int fd,
                                 struct stat *st)
{
    if (op == NULL)
        return;
    fs_fd_init(op, pool, FS_FSTAT, fd);
    op->dst = st;
    fs_bad_if(op, st == NULL);
}

WEFT_API void weft_fs_close_init(weft_fs_op *op, weft_blocking_pool *pool, int fd)
{
    if (op == NULL)
        return;
    fs_fd_init(op, pool, FS_CLOSE, fd);
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
    case FS_READDIR:
        *(weft_fs_dirent **)op->dst = r->data;
        if (op->len_out)
            *op->len_out = r->len;
        break;
    case FS_STAT:
    case FS_FSTAT:
        *(struct stat *)op->dst = r->st;
        break;
    case FS_READ:
    case FS_PREAD:
        if (r->result > 0)
            memcpy(op->dst, r->buf + r->doff, (size_t)r->result);
        break;
    default:
        break;
    }
    return r->result;
}

WEFT_API weft_poll weft_fs_poll(weft_fs_op *op, weft_context *cx, ssize_t *result)
{
    int err, jr;

    if (op == NULL) {                       /* a NULL future: only *result */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (op->state != S_DONE && weft__cx_bad(cx)) {
        if (result)                         /* misuse (weft/core.h): nothing started */
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (op->state == S_INIT) {
        if (op->kind == FS_NONE) {          /* zeroed */
            op->result = -EINVAL;
            op->state = S_DONE;
            goto done;
        }
        err = weft__blocking_spawn_req(op->pool, fs_run,
                                       sizeof(struct fs_req) + fs_paths_len(op) +
                                           fs_data_len(op),
                                       sizeof(struct fs_req), fs_setup, op, fs_dispose, &op->job);
        if (err < 0) {
            op->result = err;
            op->state = S_DONE;
            goto done;
        }
        weft_blocking_join_init(&op->join, op->job, NULL);
        op->state = S_RUNNING;
    }
    if (op->state == S_RUNNING) {
        if (weft__blocking_join_poll(&op->join, cx, &jr) == WEFT_PENDING)
            return WEFT_PENDING;
        op->result = jr < 0 ? jr : fs_claim(op, weft__blocking_job_req(op->job));
        weft_blocking_join_drop(&op->join);
        weft_blocking_job_drop(op->job);    /* dispose: the duplicate fd */
        op->job = NULL;
        op->state = S_DONE;
    }
done:
    if (result)
        *result = op->result;
    return WEFT_READY;
}

/* A close dropped before its first poll is carried out all the same: queued
 * on the pool (detached), or, when that fails, done here. */
static void fs_close_unpolled(weft_fs_op *op)
{
    weft_blocking_job *job;

    if (op->fd < 0)
        return;
    if (weft__blocking_spawn_req(op->pool, fs_run, sizeof(struct fs_req), sizeof(struct fs_req),
                                 fs_setup, op,
                                 fs_dispose, &job) < 0) {
        fs_close(op->fd);
        return;
    }
    /* we hold a handle: dispose cannot have run yet */
    ((struct fs_req *)weft__blocking_job_req(job))->dropped = true;
    weft_blocking_job_drop(job);
}

WEFT_API void weft_fs_drop(weft_fs_op *op)
{
    if (op == NULL)
        return;
    if (op->state == S_INIT && op->kind == FS_CLOSE) {
        fs_close_unpolled(op);
    } else if (op->state == S_RUNNING) {
        weft_blocking_join_drop(&op->join);
        if (op->kind != FS_CLOSE)           /* a close is carried out regardless */
            weft__blocking_job_withdraw(op->job);
        else                                /* even if a pool shutdown cancels it */
            ((struct fs_req *)weft__blocking_job_req(op->job))->dropped = true;
        weft_blocking_job_drop(op->job);    /* a started job runs on; dispose cleans up */
        op->job = NULL;
    }
    op->result = -EINVAL;
    op->state = S_DONE;
}

WEFT_API void weft_fs_free(void *data)
{
    weft__free(data);
}
