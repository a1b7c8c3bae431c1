/* SPDX-License-Identifier: MIT */
/* Helpers shared by the file tests (tests/blocking/fs_*.c): drive a file
 * future by hand with a watchdog, temporary trees, descriptor counts. */
#ifndef WEFT_TESTS_FS_TEST_H
#define WEFT_TESTS_FS_TEST_H

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../sync/sync_test.h"
#include "weft/blocking.h"

/* A waker that a plain thread sleeps on while it drives a future by hand. */
typedef struct ft_parker {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool woken;
} ft_parker;

static const weft_waker_vtable ft_vtable;

static inline weft_waker ft_clone(const void *d)
{
    return (weft_waker){ d, &ft_vtable };
}

static inline void ft_wake_by_ref(const void *d)
{
    ft_parker *t = (ft_parker *)(uintptr_t)d;

    pthread_mutex_lock(&t->m);
    t->woken = true;
    pthread_cond_signal(&t->c);
    pthread_mutex_unlock(&t->m);
}

static inline void ft_noop(const void *d)
{
    (void)d;
}

static const weft_waker_vtable ft_vtable = { ft_clone, ft_wake_by_ref, ft_wake_by_ref, ft_noop };

/* Sleep until woken (60 s watchdog: a lost wake is a failure, not a hang). */
static inline void ft_park(ft_parker *t)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 60;
    pthread_mutex_lock(&t->m);
    while (!t->woken)
        if (pthread_cond_timedwait(&t->c, &t->m, &ts) != 0)
            harness_fail(__FILE__, __LINE__, "watchdog: never woken");
    t->woken = false;
    pthread_mutex_unlock(&t->m);
}

/* Poll `op` until READY, then drop it. Returns the result. */
static inline ssize_t ft_drive(weft_fs_op *op)
{
    ft_parker t = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
    weft_waker w = { &t, &ft_vtable };
    weft_context cx = weft_context_from_waker(&w);
    ssize_t res = 12345;

    while (weft_fs_poll(op, &cx, &res) == WEFT_PENDING)
        ft_park(&t);
    weft_fs_drop(op);
    return res;
}

static inline int ft_count_fds(void)
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

static inline weft_blocking_pool *ft_pool(unsigned max)
{
    weft_blocking_pool *p = NULL;

    ASSERT_OK(weft_blocking_pool_new(&p, &(weft_blocking_options){ .max_threads = max }));
    return p;
}

/* A fresh directory under /tmp; `dir` holds at least 64 bytes. */
static inline void ft_mkdtemp(char *dir, const char *tag)
{
    snprintf(dir, 64, "/tmp/weft-%s-XXXXXX", tag);
    ASSERT(mkdtemp(dir) != NULL);
}

static inline int ft_rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(path) < 0 ? -1 : 0;
}

/* rm -rf `dir` (and check it worked). */
static inline void ft_rm_tree(const char *dir)
{
    ASSERT_EQ(0, nftw(dir, ft_rm_one, 16, FTW_DEPTH | FTW_PHYS));
}

/* "dir/name" into buf (256 bytes). */
static inline const char *ft_join(char *buf, const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);

    ASSERT(a + 1 + b < 256);
    memmove(buf + a + 1, name, b + 1);      /* name may live in buf */
    memmove(buf, dir, a);
    buf[a] = '/';
    return buf;
}

/* Hold a pool's only thread: ft_gate_job blocks until ft_gate_open(). */
typedef struct ft_gate {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool open, arrived;
} ft_gate;

#define FT_GATE_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false }

static inline void *ft_gate_job(void *arg)
{
    ft_gate *g = arg;

    pthread_mutex_lock(&g->m);
    g->arrived = true;
    while (!g->open)
        pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
    return NULL;
}

static inline bool ft_gate_arrived(ft_gate *g)
{
    bool a;

    pthread_mutex_lock(&g->m);
    a = g->arrived;
    pthread_mutex_unlock(&g->m);
    return a;
}

static inline void ft_gate_open(ft_gate *g)
{
    pthread_mutex_lock(&g->m);
    g->open = true;
    pthread_cond_broadcast(&g->c);
    pthread_mutex_unlock(&g->m);
}

static inline void *ft_nop_job(void *arg)
{
    return arg;
}

/* Wait until every job queued on the 1-thread pool `p` so far has run (a
 * job behind them, FIFO). */
static inline void ft_pool_drain(weft_blocking_pool *p)
{
    weft_blocking_job *j;

    ASSERT_OK(weft_blocking_spawn(p, ft_nop_job, NULL, &j));
    ASSERT_OK(weft_blocking_job_wait(j, NULL));
    weft_blocking_job_drop(j);
}

#endif
