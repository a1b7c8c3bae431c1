// SPDX-License-Identifier: MIT
/* Audit 7: calls that need a descriptor when the process has none left
 * (RLIMIT_NOFILE reached), from a coroutine. blocking.h: an operation on a
 * descriptor "costs one descriptor while the operation is pending: -EMFILE
 * when none is left"; an open, a whole-file read or a directory listing
 * fails as the syscall does; process.h and signal.h list -EMFILE too. Each
 * fails cleanly (nothing written, nothing leaked), calls that need no
 * descriptor still work, and everything works again once one is free. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

typedef struct em_ctx {
    int fd;                           /* a file with "hello" */
    char path[64];
    long read, pread, fstat, open, read_file, readdir, stat, spawn, signal;
    long read_after;
    int st_marker;
    void *data;
    weft_fs_dirent *ents;
    int fill[4096];
    int nfill;
} em_ctx;

static void fill_fds(em_ctx *c)
{
    int fd;

    c->nfill = 0;
    while (c->nfill < (int)(sizeof(c->fill) / sizeof(c->fill[0])) &&
           (fd = dup(c->fd)) >= 0)
        c->fill[c->nfill++] = fd;
}

static int em_body(void *arg)
{
    em_ctx *c = arg;
    char buf[8];
    struct stat st;
    weft_process *p = NULL;
    weft_signal *s = NULL;
    char *argv[] = { "true", NULL };
    weft_process_options po = { .argv = argv, .stdio = { { WEFT_STDIO_PIPE } } };
    static const int usr2[] = { SIGUSR2 };

    /* the pool's thread exists already: start it before the limit */
    if (weft_co_fs_stat("/", &st) != 0)
        return -1;
    fill_fds(c);
    memset(buf, 'z', sizeof(buf));
    c->read = weft_co_fs_read(c->fd, buf, sizeof(buf));
    if (buf[0] != 'z')
        return -2;                    /* untouched on failure */
    c->pread = weft_co_fs_pread(c->fd, buf, sizeof(buf), 0);
    memset(&st, 0xab, sizeof(st));
    c->fstat = weft_co_fs_fstat(c->fd, &st);
    c->st_marker = ((unsigned char *)&st)[0];
    c->open = weft_co_fs_open(c->path, O_RDONLY, 0);
    c->data = (void *)1;
    c->read_file = weft_co_fs_read_file(c->path, &c->data, NULL);
    c->ents = (void *)1;
    c->readdir = weft_co_fs_readdir("/", &c->ents);
    c->stat = weft_co_fs_stat(c->path, &st);          /* needs no descriptor */
    c->spawn = weft_process_spawn(NULL, &po, &p);
    c->signal = weft_signal_new(NULL, usr2, 1, &s);
    /* one free again: everything works */
    close(c->fill[--c->nfill]);
    c->read_after = weft_co_fs_pread(c->fd, buf, 5, 0);
    if (c->read_after == 5 && memcmp(buf, "hello", 5) != 0)
        return -3;
    return 0;
}

TEST(fs_process_signal_without_a_free_descriptor)
{
    weft_runtime *rt = NULL;
    em_ctx *c = calloc(1, sizeof(*c));
    struct rlimit old, low;
    int out = -1, probe;

    ASSERT(c != NULL);
    ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &old));
    snprintf(c->path, sizeof(c->path), "/tmp/weft-a7-emfile-%d", (int)getpid());
    c->fd = open(c->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT(c->fd >= 0);
    ASSERT_EQ(5, write(c->fd, "hello", 5));
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2,
                                                             .blocking_threads = 1 }));
    /* a limit a little above what is open now */
    probe = dup(0);
    ASSERT(probe >= 0);
    close(probe);
    low = old;
    low.rlim_cur = (rlim_t)probe + 64;
    if (low.rlim_cur > old.rlim_cur)
        low.rlim_cur = old.rlim_cur;
    ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &low));
    ASSERT_OK(weft_co_block_on(rt, em_body, c, NULL, &out));
    ASSERT_EQ(0, out);
    ASSERT_EQ(-EMFILE, c->read);
    ASSERT_EQ(-EMFILE, c->pread);
    ASSERT_EQ(-EMFILE, c->fstat);
    ASSERT_EQ(0xab, c->st_marker);
    ASSERT_EQ(-EMFILE, c->open);
    ASSERT_EQ(-EMFILE, c->read_file);
    ASSERT(c->data == (void *)1);
    ASSERT_EQ(-EMFILE, c->readdir);
    ASSERT(c->ents == (void *)1);
    ASSERT_EQ(0, c->stat);
    ASSERT_EQ(-EMFILE, c->spawn);
    ASSERT_EQ(-EMFILE, c->signal);
    ASSERT_EQ(5, c->read_after);
    for (int i = 0; i < c->nfill; i++)
        close(c->fill[i]);
    ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &old));
    close(c->fd);
    unlink(c->path);
    weft_runtime_free(rt);
    free(c);
}
