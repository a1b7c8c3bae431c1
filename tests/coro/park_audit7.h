// SPDX-License-Identifier: MIT
/* The five cases of issue 10 for a blocking-style call of weft/coro.h that a
 * coroutine is parked in (the task dump names the call), one run each:
 *   OK:       the main thread makes the call's object ready -> the call
 *             completes with its normal result (under WEFT_STRESS=1, after
 *             the PENDING every leaf future returns first);
 *   ABORT:    weft_join_abort() -> -ECANCELED, the next call -ECANCELED at
 *             once, fn returns; the call's effect did not happen;
 *   SHUTDOWN: weft_runtime_shutdown() -> the same, on the shutting thread;
 *   DEADLINE: weft_co_deadline_set() 30 ms ahead -> -ETIMEDOUT, the next
 *             call -ETIMEDOUT too;
 * and in every case nothing weft allocated is left (harness_live) and no
 * stack stays mapped (CT_FREE). The runtime has 2 workers and a default
 * blocking pool of one thread, so a file operation can be kept queued
 * behind a job that holds that thread (hold_pool()). */
#ifndef WEFT_TESTS_CORO_PARK_AUDIT7_H
#define WEFT_TESTS_CORO_PARK_AUDIT7_H

#include "coro_test.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PK_WAIT_MS 20000u

enum pk_mode { PK_OK, PK_ABORT, PK_SHUTDOWN, PK_DEADLINE };

typedef struct pk_ctx {
    enum pk_mode mode;
    weft_runtime *rt;
    weft_blocking_pool *pool;
    /* the held pool job */
    atomic_int job_release, job_done, job_started;
    /* sockets */
    weft_socket *s;
    int peer;
    weft_bufreader br;
    char brbuf[64];
    weft_bufwriter bw;
    char bwbuf[64];
    pthread_t drainer;
    bool draining;
    atomic_long drained;
    /* files */
    char dir[64], p1[96], p2[96], d1[96];
    int fd, fd2;
    /* anything else a case needs */
    void *obj[4];
    weft_join *other;
    long aux;
    /* what the coroutine saw */
    long result;
    long later;
} pk_ctx;

typedef struct pk_case {
    const char *name;                  /* the weft_co_* call: the dump's site */
    void (*setup)(pk_ctx *c);
    long (*park)(pk_ctx *c);           /* in the coroutine */
    void (*release)(pk_ctx *c);        /* OK: let the call complete */
    void (*ok)(pk_ctx *c);             /* OK: the result and the effect */
    void (*undone)(pk_ctx *c);         /* cancelled: the effect did not happen */
    void (*teardown)(pk_ctx *c);
} pk_case;

static inline void pk_nothing(pk_ctx *c) { (void)c; }

/* ---- the dump ------------------------------------------------------------------- */
typedef struct pk_find {
    const char *want;
    int found;
} pk_find;

static inline int pk_visit(const weft_task_info *t, void *arg)
{
    pk_find *f = arg;
    const weft_async_site *a = t->parked_at, *b = t->parked_inner;

    if (t->state != WEFT_TASK_IDLE)
        return 0;
    if ((a && a->func && strcmp(a->func, f->want) == 0) ||
        (b && b->func && strcmp(b->func, f->want) == 0))
        f->found++;
    return 0;
}

static inline void pk_wait_parked_in(weft_runtime *rt, const char *want)
{
    uint64_t until = weft_now_ms() + PK_WAIT_MS;
    pk_find f = { want, 0 };

    for (;;) {
        f.found = 0;
        ASSERT_OK(weft_runtime_tasks(rt, pk_visit, &f));
        if (f.found)
            return;
        if (weft_now_ms() > until)
            harness_fail(__FILE__, __LINE__, "no coroutine parked in %s", want);
        usleep(1000);
    }
}

static inline void pk_wait_until(atomic_int *flag)
{
    uint64_t until = weft_now_ms() + PK_WAIT_MS;

    while (!atomic_load(flag)) {
        ASSERT(weft_now_ms() < until);
        usleep(1000);
    }
}

/* ---- the pool's one thread, held ------------------------------------------------ */
static inline void *pk_held_job(void *arg)
{
    pk_ctx *c = arg;
    uint64_t until = weft_now_ms() + PK_WAIT_MS;

    atomic_store(&c->job_started, 1);
    while (!atomic_load(&c->job_release) && weft_now_ms() < until)
        usleep(1000);
    atomic_store(&c->job_done, 1);
    return NULL;
}

static inline void pk_hold_pool(pk_ctx *c)
{
    ASSERT_OK(weft_blocking_default(c->rt, &c->pool));
    ASSERT_OK(weft_blocking_spawn(c->pool, pk_held_job, c, NULL));
    pk_wait_until(&c->job_started);
}

static inline void *pk_marker(void *arg)
{
    (void)arg;
    return NULL;
}

/* Let the held job end, then wait until whatever was queued behind it has
 * run (the pool has one thread: FIFO), or, once the pool is shut down,
 * until its thread has left. */
static inline void pk_unhold_and_settle(pk_ctx *c)
{
    weft_blocking_job *m = NULL;
    uint64_t until = weft_now_ms() + PK_WAIT_MS;

    atomic_store(&c->job_release, 1);
    pk_wait_until(&c->job_done);
    if (c->pool && weft_blocking_spawn(c->pool, pk_marker, NULL, &m) == 0) {
        ASSERT_OK(weft_blocking_job_wait(m, NULL));
        weft_blocking_job_drop(m);
        return;
    }
    while (harness_count_threads("weft-b") > 0) {
        ASSERT(weft_now_ms() < until);
        usleep(1000);
    }
}

/* ---- files ------------------------------------------------------------------------ */
/* dir/a holds "hello" (fd: open on it, read-write), dir/b does not exist,
 * dir/sub is an empty directory */
static inline void pk_files(pk_ctx *c)
{
    strcpy(c->dir, "/tmp/weft-pk7-XXXXXX");
    ASSERT(mkdtemp(c->dir) != NULL);
    snprintf(c->p1, sizeof(c->p1), "%s/a", c->dir);
    snprintf(c->p2, sizeof(c->p2), "%s/b", c->dir);
    snprintf(c->d1, sizeof(c->d1), "%s/sub", c->dir);
    c->fd = open(c->p1, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT(c->fd >= 0);
    ASSERT_EQ(5, write(c->fd, "hello", 5));
    ASSERT_EQ(0, lseek(c->fd, 0, SEEK_SET));
    ASSERT_EQ(0, mkdir(c->d1, 0700));
    c->fd2 = -1;
}

static inline void pk_files_gone(pk_ctx *c)
{
    char cmd[128];

    if (c->fd >= 0)
        close(c->fd);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", c->dir);
    ASSERT_EQ(0, system(cmd));
}

static inline long pk_size(const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return -1;
    return (long)st.st_size;
}

static inline bool pk_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* ---- sockets ---------------------------------------------------------------------- */
static inline void pk_pair(pk_ctx *c)
{
    int sv[2];

    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    ASSERT_OK(weft_socket_adopt(c->rt, sv[0], &c->s));
    c->peer = sv[1];
}

/* fill c->s's send side until a write would block */
static inline void pk_fill(pk_ctx *c)
{
    int small = 4096;
    char chunk[4096] = { 0 };

    setsockopt(weft_socket_fd(c->s), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    while (send(weft_socket_fd(c->s), chunk, sizeof(chunk), MSG_DONTWAIT) > 0)
        c->aux += (long)sizeof(chunk);
}

static inline void *pk_drain_thread(void *arg)
{
    pk_ctx *c = arg;
    char buf[4096];
    ssize_t n;

    while ((n = read(c->peer, buf, sizeof(buf))) > 0)
        atomic_fetch_add(&c->drained, (long)n);
    return NULL;
}

/* read everything the peer gets until c->s is closed (pk_pair_gone) */
static inline void pk_drain(pk_ctx *c)
{
    ASSERT_EQ(0, pthread_create(&c->drainer, NULL, pk_drain_thread, c));
    c->draining = true;
}

static inline void pk_pair_gone(pk_ctx *c)
{
    ASSERT_OK(weft_socket_close(c->s));
    if (c->draining)
        pthread_join(c->drainer, NULL);
    close(c->peer);
}

/* ---- the coroutine and one run ------------------------------------------------------- */
typedef struct pk_arg {
    pk_ctx *c;
    const pk_case *pc;
} pk_arg;

static inline int pk_parker(void *arg)
{
    pk_arg *a = arg;
    pk_ctx *c = a->c;

    if (c->mode == PK_DEADLINE)
        weft_co_deadline_set(weft_now_ms() + 30);
    c->result = a->pc->park(c);
    if (c->mode != PK_OK)
        c->later = weft_co_sleep(10u * 60 * 1000);  /* at once, the same answer */
    return 0;
}

static inline void pk_run(const pk_case *pc, enum pk_mode mode)
{
    pk_ctx *c = calloc(1, sizeof(*c));
    pk_arg a = { c, pc };
    weft_join *j = NULL;
    long live0 = harness_live();
    int out = -1;
    uint64_t until;

    fprintf(stderr, "case %s (%s)\n", pc->name,
            mode == PK_OK ? "ok" : mode == PK_ABORT ? "abort" :
            mode == PK_SHUTDOWN ? "shutdown" : "deadline");
    ASSERT(c != NULL);
    c->mode = mode;
    c->peer = -1;
    c->fd = -1;
    c->fd2 = -1;
    ASSERT_OK(weft_runtime_new(&c->rt, &(weft_runtime_options){ .workers = 2,
                                                                .blocking_threads = 1 }));
    pc->setup(c);
    ASSERT_OK(weft_go(c->rt, pk_parker, &a, &j));
    if (mode != PK_DEADLINE)
        pk_wait_parked_in(c->rt, pc->name);
    switch (mode) {
    case PK_OK:
        pc->release(c);
        ASSERT_OK(weft_join_wait(j, &out));
        pc->ok(c);
        break;
    case PK_ABORT:
        weft_join_abort(j);
        ASSERT_EQ(-ECANCELED, weft_join_wait(j, &out));
        ASSERT_EQ(-ECANCELED, c->result);
        ASSERT_EQ(-ECANCELED, c->later);
        break;
    case PK_DEADLINE:
        ASSERT_OK(weft_join_wait(j, &out));
        ASSERT_EQ(-ETIMEDOUT, c->result);
        ASSERT_EQ(-ETIMEDOUT, c->later);
        break;
    case PK_SHUTDOWN:
        ASSERT_OK(weft_runtime_shutdown(c->rt));
        ASSERT_EQ(-ECANCELED, weft_join_try(j, &out));
        ASSERT_EQ(-ECANCELED, c->result);
        ASSERT_EQ(-ECANCELED, c->later);
        break;
    }
    weft_join_drop(j);
    if (mode != PK_OK)
        pc->undone(c);
    pc->teardown(c);
    if (!atomic_load(&c->job_done) && atomic_load(&c->job_started)) {
        atomic_store(&c->job_release, 1);
        pk_wait_until(&c->job_done);
    }
    CT_FREE(c->rt);
    /* pool threads and detached jobs wind down on their own: give them time */
    until = weft_now_ms() + PK_WAIT_MS;
    while ((harness_live() != live0 || harness_count_threads("weft-b") > 0) &&
           weft_now_ms() < until)
        usleep(1000);
    ASSERT_EQ(live0, harness_live());
    free(c);
}

static inline void pk_run_all(const pk_case *cases, size_t n, enum pk_mode mode)
{
    for (size_t i = 0; i < n; i++)
        pk_run(&cases[i], mode);
}

#endif
