/* SPDX-License-Identifier: MIT */
/* weft/blocking.h - a pool of threads for blocking C calls, and file
 * operations that run on it.
 *
 * A task must never block its worker. Work that blocks (a file read, a
 * getaddrinfo, a library without an async API) is handed to a blocking pool:
 * weft_blocking_spawn() queues a function, a pool thread runs it, and the
 * task awaits the result with a weft_blocking_join future while its worker
 * runs other tasks. Plain threads may wait with weft_blocking_job_wait().
 *
 * Threads start lazily, one per queued job while none is idle, up to
 * max_threads; an idle thread exits after keep_alive_ms. Threads are named
 * "weft-b0", "weft-b1", ... and run with every signal blocked.
 *
 * The pool and its jobs do not depend on a runtime: the pool may be used
 * from tasks of any runtime and from plain threads alike.
 *
 * Every runtime also owns a default pool, made on first use (so a runtime
 * that never blocks starts no thread for it) with at most
 * weft_runtime_options.blocking_threads threads. weft_blocking_default()
 * hands it out; every call here that takes a pool (and weft_resolve_init())
 * takes NULL to mean the default pool of the runtime whose task is running
 * on the calling thread. Explicit pools keep working as before. */
#ifndef WEFT_BLOCKING_H
#define WEFT_BLOCKING_H

#include <sys/stat.h>
#include <sys/types.h>

#include "core.h"
#include "sched.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_blocking_pool weft_blocking_pool;   /* opaque */
typedef struct weft_blocking_job weft_blocking_job;     /* opaque, reference-counted */

#define WEFT_BLOCKING_MAX_THREADS 4096
/* weft_blocking_pool_shutdown(): wait as long as it takes. */
#define WEFT_BLOCKING_FOREVER (-1)

typedef struct weft_blocking_options {
    /* Most threads alive at once: 1 .. WEFT_BLOCKING_MAX_THREADS, 0 for 64. */
    unsigned max_threads;
    /* How long an idle thread waits for work before it exits, in
     * milliseconds; 0 for 10000. */
    unsigned keep_alive_ms;
    /* Threads are named prefix + index (NULL means "weft-b"), cut to the 15
     * characters Linux keeps. */
    const char *thread_name_prefix;
} weft_blocking_options;

/* Make a pool; `opt` may be NULL for the defaults. No thread starts yet.
 * Returns 0 and the pool in *out (free it with weft_blocking_pool_free());
 * -EINVAL (NULL out, max_threads too large), -ENOMEM, -EAGAIN (a lock could
 * not be set up). On failure nothing is leaked and *out is untouched. One
 * allocation. Thread: any. */
WEFT_API int weft_blocking_pool_new(weft_blocking_pool **out, const weft_blocking_options *opt);

/* The default blocking pool of runtime `rt` (NULL: the runtime of the
 * calling worker), made now if it does not exist yet (once, thread-safely;
 * no thread starts until a job is spawned). Returns 0 and the pool in *out,
 * borrowed: do not free it; it stays valid until weft_runtime_free(rt).
 * -EINVAL (NULL out, or NULL rt off a worker), -ESHUTDOWN (the runtime is
 * shutting down or shut down; after that spawns on a pool handed out
 * earlier return -ESHUTDOWN too), -ENOMEM, -EAGAIN.
 * At weft_runtime_shutdown() the pool is shut down without waiting (as
 * weft_blocking_pool_shutdown(pool, 0)): queued jobs are cancelled, a
 * running job finishes later on its own thread, detached, and its handle
 * still works. A job's fn must therefore not rely on the runtime (or on
 * memory freed along with it) still existing when it returns; weft's own
 * jobs (files, name lookups) own everything they touch. Thread: any. */
WEFT_API int weft_blocking_default(weft_runtime *rt, weft_blocking_pool **out);

/* Run fn(arg) on a pool thread (`pool` NULL: the default pool of the
 * calling worker's runtime, see weft_blocking_default()). Returns 0 and,
 * when `job` is not NULL, a handle in *job (release it with
 * weft_blocking_job_drop()); with a NULL `job` the job runs detached.
 * -EINVAL (NULL fn, or NULL pool off a worker), -ENOMEM,
 * -ESHUTDOWN (the pool was shut down), -EAGAIN (no thread could be started
 * and none exists to run it later). On failure fn is never called and *job
 * is untouched. One allocation; never waits. `arg` belongs to fn from the
 * moment it runs; if the job is cancelled by a shutdown before it starts,
 * fn never runs and `arg` is the caller's again. Thread: any, workers and
 * pool threads included. */
WEFT_API int weft_blocking_spawn(weft_blocking_pool *pool, void *(*fn)(void *arg), void *arg,
                                 weft_blocking_job **job);

/* Stop the pool: later spawns return -ESHUTDOWN; queued jobs that have not
 * started are cancelled (their joins report -ECANCELED, their fn never
 * runs); idle threads exit. Then wait until every thread has left, or until
 * `timeout_ms` passed (WEFT_BLOCKING_FOREVER, or any other negative value:
 * no limit; 0: do not wait).
 * Returns the number of jobs still running when it stopped waiting (0: clean
 * shutdown), or -EINVAL for NULL or when called from a thread of this pool.
 * A job left running finishes later on its own and its handle still works;
 * its thread keeps the memory it uses alive, even past
 * weft_blocking_pool_free(). May be called again (to wait longer).
 * Thread: any but this pool's. */
WEFT_API int weft_blocking_pool_shutdown(weft_blocking_pool *pool, int timeout_ms);

/* Release the pool. If it was not shut down yet, shut it down and wait for
 * every running job (WEFT_BLOCKING_FOREVER); if it was, wait no more. Job
 * handles stay valid. Called from one of the pool's own threads it shuts the
 * pool down without waiting. NULL is ignored. Thread: any. */
WEFT_API void weft_blocking_pool_free(weft_blocking_pool *pool);

/* Threads alive now (running or idle; a snapshot). 0 for NULL. */
WEFT_API unsigned weft_blocking_pool_threads(const weft_blocking_pool *pool);

/* Without waiting: 0 with fn's return value in *ret (ret may be NULL),
 * -ECANCELED (cancelled by a shutdown before it started), -EAGAIN (not
 * finished yet), -EINVAL (NULL job). Thread: any. */
WEFT_API int weft_blocking_job_try(weft_blocking_job *job, void **ret);

/* Block the calling thread until the job has finished: 0 with fn's return
 * value in *ret (may be NULL), or -ECANCELED. -EINVAL for NULL or when
 * called on a worker thread of a weft runtime (await a weft_blocking_join
 * there instead). The handle stays valid. A job of the pool that waits for
 * another job of the same pool can deadlock once every thread is taken.
 * Thread: any but a worker. */
WEFT_API int weft_blocking_job_wait(weft_blocking_job *job, void **ret);

/* True once the job has finished or was cancelled; false for NULL. */
WEFT_API bool weft_blocking_job_is_complete(const weft_blocking_job *job);

/* Release the handle: the job is detached (it still runs if it has not yet;
 * its return value is discarded). No join future on it may still exist.
 * NULL is ignored. Thread: any. */
WEFT_API void weft_blocking_job_drop(weft_blocking_job *job);

/* Join future: wait for a job from a task. Output (*result): 0 with fn's
 * return value in *ret (ret may be NULL), -ECANCELED (cancelled by a
 * shutdown before it started), -EINVAL (NULL job). At most one join future
 * per job at a time. Cancel safety: dropping it while pending loses nothing;
 * the job runs on and its result stays with the handle (try, wait, or a new
 * join future read it). Follows weft/lock.h's common rules for futures. */
typedef struct weft_blocking_join {
    /* private: may change in any release */
    weft_blocking_job *job;
    void **ret;
    int result;
    unsigned char state;
} weft_blocking_join;

/* init: wait for `job` (borrowed: keep the handle until the future is
 * dropped), writing its return value to `ret`. poll: READY once the job is
 * finished. drop: releases the stored waker. Thread: the future's owner. */
WEFT_API void weft_blocking_join_init(weft_blocking_join *j, weft_blocking_job *job, void **ret);
WEFT_API weft_poll weft_blocking_join_poll(weft_blocking_join *j, weft_context *cx, int *result);
WEFT_API void weft_blocking_join_drop(weft_blocking_join *j);

/* ---- Files --------------------------------------------------------------
 * Futures that run one file operation on a blocking pool (docs/fs.md). They
 * share one struct, weft_fs_op: set it up with one of the *_init calls
 * below, drive it with weft_fs_poll(), release it with weft_fs_drop(). The
 * operation is queued on the first poll (one allocation, which also holds
 * the operation's own copy of its paths and of the data to write, and room
 * for the data read); EINTR is retried.
 *
 * The pool given as NULL means the default pool of the runtime whose task
 * polls the future (weft_blocking_default()), looked up at the first poll.
 *
 * Descriptors: an operation on a descriptor `fd` (all but open and close)
 * works on its own duplicate of it, made on the first poll (F_DUPFD_CLOEXEC)
 * and closed when the operation is released, so it never touches whatever
 * file a reused descriptor number names later: closing `fd` after dropping
 * a pending operation is safe. The duplicate shares fd's open file (its
 * offset, flags and locks), so read/write move fd's offset as read(2) and
 * write(2) on fd would. It costs one descriptor while the operation is
 * pending: -EMFILE when none is left; a bad fd gives -EBADF.
 *
 * Output (*result of weft_fs_poll): >= 0 on success (what it means depends
 * on the operation), or a negative errno: the syscall's (-ENOENT, -EACCES,
 * -EBADF, -EEXIST, -ENOTEMPTY, ...), -ENOMEM, -ESHUTDOWN (pool or runtime
 * shut down), -ECANCELED (cancelled by a pool shutdown before it ran),
 * -EINVAL (a NULL argument, a negative offset or length, a zeroed or
 * dropped future, or a NULL pool polled off a worker), -EAGAIN (no pool
 * thread could be started). Bad arguments are reported without reaching the
 * pool. Outputs (*st, *data, *ents, the caller's read buffer) are written
 * only when the future completes with success.
 *
 * Cancel safety (dropping a pending operation, as a task abort or a
 * coroutine cancel does): the operation either happens whole or not at all,
 * and the dropper cannot tell which:
 *   - still queued (no pool thread took it yet): it is withdrawn and never
 *     runs. Close is the exception: a dropped close still closes fd, even
 *     one dropped before its first poll (queued then, detached, or closed
 *     on the spot when it cannot be queued) or cancelled by a pool shutdown
 *     after its drop. (A close that its owner awaits and that a shutdown
 *     cancels reports -ECANCELED and leaves fd open: it is still yours.)
 *   - started: it runs to its end on the pool, exactly as if it had not
 *     been dropped (a write writes all its bytes or stops at an error, a
 *     rename renames), and its result is thrown away, cleaning up after
 *     itself: a descriptor it opened is closed, memory it filled is freed.
 *     Bytes a dropped read took from fd's offset are lost.
 * No memory of the caller's is touched after the future is dropped: reads
 * land in the operation's own buffer and are copied out when the future
 * completes, paths and data to write are copied when it is queued. So
 * freeing the buffers right after the drop is safe, even under a running
 * operation. To know a mutation's outcome, await it (or check the file).
 * Follows weft/lock.h's common rules for futures. Not copyable once polled
 * (it holds the job). Thread: the future's owner; the pool may be shared. */
typedef struct weft_fs_op {
    /* private: may change in any release */
    weft_blocking_pool *pool;
    weft_blocking_job *job;
    const char *path, *path2;       /* path2: rename's new path */
    const void *src;                /* write_file, write, pwrite: the data */
    void *dst;                      /* buf, void ** (read_file), struct stat *, entries ** */
    size_t len;
    size_t *len_out;                /* read_file, readdir */
    off_t off;                      /* pread, pwrite, truncate, ftruncate */
    ssize_t result;
    int fd, flags;
    mode_t mode;
    weft_blocking_join join;
    unsigned char kind, state;
} weft_fs_op;

/* Most bytes one read or pread asks for (a longer request is a short read). */
#define WEFT_FS_READ_MAX ((size_t)16 << 20)
/* Most bytes one write, pwrite or write_file takes (more: -EINVAL). */
#define WEFT_FS_WRITE_MAX ((size_t)1 << 30)

/* -- Whole files -- */

/* Read the whole file at `path`. Result: the number of bytes; *data gets a
 * buffer of that many bytes plus a terminating NUL (free it with
 * weft_fs_free()) and *len the length (len may be NULL). -EFBIG past 1 GiB.
 * On failure *data and *len are untouched. */
WEFT_API void weft_fs_read_file_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                     void **data, size_t *len);
/* Create or truncate the file at `path` (mode 0666 before the umask) and
 * write `len` bytes of `data` to it. Result: 0. A dropped write_file that
 * had started may leave the file created and partly written only if the
 * write itself fails (-ENOSPC...), as a synchronous one would. */
WEFT_API void weft_fs_write_file_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                      const void *data, size_t len);

/* -- Paths -- */

/* stat(2) `path` into *st. Result: 0. */
WEFT_API void weft_fs_stat_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                struct stat *st);
/* open(2) `path` with `flags` (O_RDONLY, O_WRONLY or O_RDWR, or'ed with
 * O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY, ...; O_CLOEXEC is always
 * added) and `mode` (the permissions of a file O_CREAT makes, before the
 * umask; ignored otherwise). Result: the new descriptor, which the caller
 * owns (close it with weft_fs_close_init() or close(2)). A dropped open
 * that had started closes the descriptor it got. */
WEFT_API void weft_fs_open_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                int flags, mode_t mode);
/* rename(2) `from` to `to`, both copied. Result: 0. An existing file `to`
 * is replaced atomically, an empty directory `to` too when `from` is a
 * directory; -EISDIR (file over a directory), -ENOTDIR (directory over a
 * file), -ENOTEMPTY (over a non-empty directory), -ENOENT, -EXDEV. */
WEFT_API void weft_fs_rename_init(weft_fs_op *op, weft_blocking_pool *pool, const char *from,
                                  const char *to);
/* unlink(2) `path`. Result: 0. -EISDIR for a directory (use rmdir),
 * -ENOENT. */
WEFT_API void weft_fs_unlink_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path);
/* mkdir(2) `path` with `mode` (before the umask). Result: 0. -EEXIST when
 * anything exists there, -ENOENT when the parent does not. */
WEFT_API void weft_fs_mkdir_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                 mode_t mode);
/* rmdir(2) `path`. Result: 0. -ENOTEMPTY, -ENOTDIR, -ENOENT. */
WEFT_API void weft_fs_rmdir_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path);
/* truncate(2) the file at `path` to `length` bytes: longer reads back as
 * zeros past the old end. Result: 0. -EINVAL for a negative length,
 * -EISDIR. */
WEFT_API void weft_fs_truncate_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                    off_t length);

/* A directory entry of weft_fs_readdir_init(). */
typedef enum weft_fs_type {
    WEFT_FS_UNKNOWN = 0,
    WEFT_FS_FILE,
    WEFT_FS_DIR,
    WEFT_FS_LINK,                   /* a symbolic link (not followed) */
    WEFT_FS_FIFO,
    WEFT_FS_SOCKET,
    WEFT_FS_CHAR,
    WEFT_FS_BLOCK
} weft_fs_type;

typedef struct weft_fs_dirent {
    const char *name;               /* NUL-terminated, inside the same allocation */
    weft_fs_type type;
} weft_fs_dirent;

/* List the directory at `path`: every entry but "." and "..", sorted by
 * name (strcmp), with its type (from the directory itself, or from an
 * lstat when the file system does not say). Result: the number of entries;
 * *ents gets an array of that many (never NULL on success, even when empty)
 * whose names live in the same allocation: free it all with one
 * weft_fs_free(*ents). *count gets the number too (count may be NULL).
 * -ENOTDIR, -ENOENT, -EACCES, -ENOMEM. A dropped readdir frees its list. */
WEFT_API void weft_fs_readdir_init(weft_fs_op *op, weft_blocking_pool *pool, const char *path,
                                   weft_fs_dirent **ents, size_t *count);

/* -- Descriptors (see "Descriptors" above: each works on a duplicate) -- */

/* read(2) at most `len` bytes (at most WEFT_FS_READ_MAX) from `fd`'s offset
 * into `buf`. Result: bytes read (0 at end of file). */
WEFT_API void weft_fs_read_init(weft_fs_op *op, weft_blocking_pool *pool, int fd, void *buf,
                                size_t len);
/* write(2) `len` bytes of `buf` to `fd` at its offset (copied on the first
 * poll; at most WEFT_FS_WRITE_MAX, else -EINVAL), looping over short
 * writes. Result: bytes written (len, unless an error stopped it after
 * some bytes: then the error). */
WEFT_API void weft_fs_write_init(weft_fs_op *op, weft_blocking_pool *pool, int fd,
                                 const void *buf, size_t len);
/* pread(2) at most `len` bytes (at most WEFT_FS_READ_MAX) at offset `off`
 * into `buf`; fd's own offset does not move. Result: bytes read, 0 at or
 * past the end of file. -EINVAL for a negative offset, -ESPIPE for a pipe
 * or socket, -EISDIR. */
WEFT_API void weft_fs_pread_init(weft_fs_op *op, weft_blocking_pool *pool, int fd, void *buf,
                                 size_t len, off_t off);
/* pwrite(2) `len` bytes of `buf` (copied on the first poll; at most
 * WEFT_FS_WRITE_MAX) at offset `off`, looping over short writes; fd's own
 * offset does not move. Writing past the end of file leaves a hole that
 * reads back as zeros. Result: bytes written. -EINVAL for a negative
 * offset, -ESPIPE, -EBADF (fd not open for writing). Linux appends
 * whatever `off` says when fd has O_APPEND. */
WEFT_API void weft_fs_pwrite_init(weft_fs_op *op, weft_blocking_pool *pool, int fd,
                                  const void *buf, size_t len, off_t off);
/* fsync(2) / fdatasync(2) `fd` (any access mode: a read-only descriptor
 * syncs too). Result: 0. -EIO, -EINVAL (a file that cannot be synced). */
WEFT_API void weft_fs_fsync_init(weft_fs_op *op, weft_blocking_pool *pool, int fd);
WEFT_API void weft_fs_fdatasync_init(weft_fs_op *op, weft_blocking_pool *pool, int fd);
/* ftruncate(2) `fd` (open for writing) to `length`. Result: 0. -EINVAL for
 * a negative length or a descriptor not open for writing. */
WEFT_API void weft_fs_ftruncate_init(weft_fs_op *op, weft_blocking_pool *pool, int fd,
                                     off_t length);
/* fstat(2) `fd` into *st. Result: 0. */
WEFT_API void weft_fs_fstat_init(weft_fs_op *op, weft_blocking_pool *pool, int fd,
                                 struct stat *st);
/* close(2) `fd` (the descriptor itself, no duplicate). Result: 0. EINTR is
 * not retried (Linux has released the descriptor already) and counts as
 * success. Not withdrawn when dropped: a dropped close still closes fd
 * (polled or not), so fd is never left open for nobody. */
WEFT_API void weft_fs_close_init(weft_fs_op *op, weft_blocking_pool *pool, int fd);

/* -- Driving -- */

/* Poll: queue the operation on the first call, then READY with *result
 * (may be NULL) once it is done. Thread: the owner. */
WEFT_API weft_poll weft_fs_poll(weft_fs_op *op, weft_context *cx, ssize_t *result);
/* Release: valid in every state, idempotent; a pending operation is
 * withdrawn or left to finish as "Cancel safety" above says. Never waits. */
WEFT_API void weft_fs_drop(weft_fs_op *op);

/* Free a buffer weft_fs_read_file_init() or weft_fs_readdir_init() handed
 * out. NULL is ignored. Thread: any. */
WEFT_API void weft_fs_free(void *data);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_BLOCKING_H */
