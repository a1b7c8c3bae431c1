/* SPDX-License-Identifier: MIT */
/* The blocking pool: threads that run blocking calls for tasks.
 *
 * One mutex guards everything (the queue, the counts, every job's state and
 * waker); two condition variables hang off it: `work`, where idle threads
 * wait for jobs, and `done`, where weft_blocking_job_wait() and shutdown
 * wait for jobs to finish and threads to leave. Jobs are rare next to task
 * polls (each one is a syscall or worse), so one lock is the simple choice
 * and costs nothing measurable. No atomics: every shared field is read and
 * written under ->lock.
 *
 * Lifetimes. The pool struct is reference-counted under its lock: the
 * user's reference (until weft_blocking_pool_free()), one per live thread,
 * one per live job (a job needs the pool's lock for as long as its handle
 * exists). So a thread stuck in a job past a shutdown deadline, or a handle
 * kept past pool_free, never touches freed memory; the last one out frees
 * it. A job is one allocation (header + optional request area), counted
 * under the pool's lock too: the handle's reference and the queue's (which
 * the running thread takes over).
 *
 * Starting threads lazily without over-starting them: `nidle` counts threads
 * waiting on `work`, `tokens` the wake-ups sent to them and not yet taken.
 * A spawn that finds nidle > tokens hands a token to an idle thread;
 * otherwise it starts a thread (below max_threads). A thread that finishes a
 * job and finds the queue empty counts as idle at once (before it wakes the
 * job's waiter), so a spawn that follows a join reuses it. A thread that
 * times out with no token for it exits. So the pool never runs more threads
 * than jobs asked for, and never leaves a job queued while a thread could be
 * started for it. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "blocking/blocking.h"
#include "sched/runtime.h"
#include "task/task.h"
#include "util/alloc.h"
#include "util/cx.h"

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_CANCELLED };
enum { J_IDLE, J_PARKED, J_DONE };          /* weft_blocking_join.state */

struct weft_blocking_job {
    struct weft_blocking_job *next;         /* ->lock: queue link */
    struct weft_blocking_pool *pool;        /* immutable; holds a pool ref */
    void *(*fn)(void *arg);
    void *arg;
    void (*dispose)(void *req);
    void *ret;                              /* ->lock: valid when JOB_DONE */
    weft_waker waker;                       /* ->lock: the pending join's */
    unsigned refs;                          /* ->lock: handle, queue/thread */
    unsigned char state;                    /* ->lock: JOB_* */
    uint64_t queued_ns;                     /* immutable: when spawned */
    alignas(max_align_t) unsigned char req[];
};

struct weft_blocking_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;                    /* idle threads wait here */
    pthread_cond_t done;                    /* job_wait and shutdown wait here */
    struct weft_blocking_job *head, *tail;  /* ->lock: queued jobs, FIFO */
    unsigned long refs;                     /* ->lock: user, threads, jobs */
    unsigned nthreads;                      /* ->lock: live threads */
    unsigned nidle;                         /* ->lock: threads waiting on work */
    unsigned tokens;                        /* ->lock: wake-ups not yet taken */
    unsigned nrunning;                      /* ->lock: jobs inside fn */
    unsigned done_waiters;                  /* ->lock: threads waiting on done */
    unsigned next_index;                    /* ->lock: for thread names */
    bool shutdown;                          /* ->lock */
    bool user_gone;                         /* ->lock: pool_free called */
    unsigned max_threads;                   /* immutable */
    unsigned keep_alive_ms;                 /* immutable */
    char prefix[16];                        /* immutable */
    /* metrics (weft/observe.h), ->lock */
    uint64_t started;                       /* jobs taken by a thread */
    uint64_t wait_ns;                       /* their total wait */
    uint64_t wait_hist[WEFT_HIST_BUCKETS_]; /* ns from spawn to start */
};

/* The pool whose thread this is (NULL elsewhere): shutdown from inside a
 * job would wait for itself. */
static _Thread_local struct weft_blocking_pool *bp_current;

static void bp_lock(struct weft_blocking_pool *p)
{
    int err = pthread_mutex_lock(&p->lock);

    (void)err;
    assert(err == 0);
}

static void bp_unlock(struct weft_blocking_pool *p)
{
    int err = pthread_mutex_unlock(&p->lock);

    (void)err;
    assert(err == 0);
}

static void pool_destroy(struct weft_blocking_pool *p)
{
    assert(p->refs == 0 && p->nthreads == 0 && p->head == NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    weft__free(p);
}

/* Drop one pool reference; ->lock held, released here (the last one frees:
 * once refs is 0 nobody else can reach the pool to lock it). */
static void pool_unref_unlock(struct weft_blocking_pool *p)
{
    bool last = --p->refs == 0;

    bp_unlock(p);
    if (last)
        pool_destroy(p);
}

static void deadline_after(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

WEFT_API int weft_blocking_pool_new(weft_blocking_pool **out, const weft_blocking_options *opt)
{
    static const weft_blocking_options defaults = { 0, 0, NULL };
    struct weft_blocking_pool *p;
    pthread_condattr_t ca;
    int err = -EAGAIN;

    if (opt == NULL)
        opt = &defaults;
    if (out == NULL || opt->max_threads > WEFT_BLOCKING_MAX_THREADS)
        return -EINVAL;
    p = weft__calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->max_threads = opt->max_threads ? opt->max_threads : 64;
    p->keep_alive_ms = opt->keep_alive_ms ? opt->keep_alive_ms : 10000;
    snprintf(p->prefix, sizeof(p->prefix), "%s",
             opt->thread_name_prefix ? opt->thread_name_prefix : "weft-b");
    p->refs = 1;
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        goto out_free;
    if (pthread_condattr_init(&ca) != 0)
        goto out_mutex;
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&p->work, &ca) != 0)
        goto out_attr;
    if (pthread_cond_init(&p->done, &ca) != 0)
        goto out_work;
    pthread_condattr_destroy(&ca);
    *out = p;
    return 0;
out_work:
    pthread_cond_destroy(&p->work);
out_attr:
    pthread_condattr_destroy(&ca);
out_mutex:
    pthread_mutex_destroy(&p->lock);
out_free:
    weft__free(p);
    return err;
}

/* ---- Jobs ---------------------------------------------------------------- */

static void job_free(struct weft_blocking_job *j)
{
    if (j->dispose)
        j->dispose(j->req);
    weft__free(j);
}

/* Drop one job reference; ->lock held, released here. */
static void job_unref_unlock(struct weft_blocking_job *j)
{
    struct weft_blocking_pool *p = j->pool;

    if (--j->refs > 0) {
        bp_unlock(p);
        return;
    }
    assert(j->waker.vtable == NULL);        /* join futures go before the handle */
    pool_unref_unlock(p);                   /* the job's pool reference */
    job_free(j);
}

/* The job reached its final state (->lock held): collect its waker for the
 * caller to wake after unlocking, and tell threads blocked in job_wait. */
static weft_waker job_finish_locked(struct weft_blocking_job *j, unsigned char state)
{
    struct weft_blocking_pool *p = j->pool;
    weft_waker w = j->waker;

    j->state = state;
    j->waker = WEFT_WAKER_EMPTY;
    if (p->done_waiters)
        pthread_cond_broadcast(&p->done);
    return w;
}

/* ---- Threads ------------------------------------------------------------- */

static void *pool_thread(void *arg)
{
    struct weft_blocking_pool *p = arg;
    struct weft_blocking_job *j;
    struct timespec deadline;
    char name[32];
    weft_waker w;
    bool idle = false;                      /* counted in p->nidle */
    void *ret;
    int rc;

    bp_lock(p);
    snprintf(name, sizeof(name), "%s%u", p->prefix, p->next_index++);
    bp_unlock(p);
    name[15] = '\0';                        /* what Linux keeps */
    pthread_setname_np(pthread_self(), name);
    bp_current = p;

    bp_lock(p);
    for (;;) {
        if (!idle) {
            j = p->head;
            if (j != NULL) {
                p->head = j->next;
                if (p->head == NULL)
                    p->tail = NULL;
                j->next = NULL;
                j->state = JOB_RUNNING;     /* the queue's reference is ours now */
                p->nrunning++;
                p->started++;
                {
                    uint64_t now = weft__task_clock_ns();
                    uint64_t waited = now > j->queued_ns ? now - j->queued_ns : 0;

                    p->wait_ns += waited;
                    p->wait_hist[weft__hist_bucket(waited)]++;
                }
                bp_unlock(p);
                ret = j->fn(j->arg);
                bp_lock(p);
                p->nrunning--;
                j->ret = ret;
                w = job_finish_locked(j, JOB_DONE);
                if (p->head == NULL && !p->shutdown) {
                    /* Idle from now on, though it still has a waker to wake:
                     * a spawn meanwhile hands it a token instead of starting
                     * a thread. */
                    p->nidle++;
                    idle = true;
                }
                job_unref_unlock(j);
                weft_waker_wake(&w);
                bp_lock(p);
                continue;
            }
            if (p->shutdown)
                break;
            p->nidle++;
            idle = true;
        }
        /* Idle (counted in nidle): wait for a token, a shutdown, or the
         * keep-alive to pass. */
        deadline_after(&deadline, p->keep_alive_ms);
        rc = 0;
        while (p->tokens == 0 && !p->shutdown && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&p->work, &p->lock, &deadline);
        p->nidle--;
        idle = false;
        if (p->tokens > 0) {
            p->tokens--;                    /* a job is queued for us */
            continue;
        }
        if (p->shutdown)
            continue;                       /* the queue was emptied: leave */
        break;                              /* kept alive long enough */
    }
    assert(p->nidle >= p->tokens);
    p->nthreads--;
    if (p->done_waiters)
        pthread_cond_broadcast(&p->done);
    bp_current = NULL;
    pool_unref_unlock(p);
    return NULL;
}

/* Start one more thread; ->lock held. 0 or -EAGAIN. */
static int pool_start_thread_locked(struct weft_blocking_pool *p)
{
    pthread_attr_t attr;
    pthread_t tid;
    sigset_t all, old;
    int err;

    if (pthread_attr_init(&attr) != 0)
        return -EAGAIN;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* The thread starts with every signal blocked: signals are for the
     * application's threads, not for a pool thread in the middle of a call. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&tid, &attr, pool_thread, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err != 0)
        return -EAGAIN;
    p->nthreads++;
    p->refs++;                              /* the thread's reference */
    return 0;
}

static int spawn_common(struct weft_blocking_pool *p, void *(*fn)(void *), void *arg,
                        size_t req_size, size_t req_zeroed,
                        void (*setup)(void *req, const void *setup_arg),
                        const void *setup_arg, void (*dispose)(void *req),
                        weft_blocking_job **job)
{
    struct weft_blocking_job *j;
    int err = 0;

    /* req_size: only an overflow guard. A request holds what its caller
     * copied in (a file write's data: up to WEFT_FS_WRITE_MAX, 1 GiB, plus
     * its header and paths), so it may pass WEFT_FUTURE_MAX_SIZE: before
     * the audit a write of exactly WEFT_FS_WRITE_MAX was refused here with
     * -EINVAL, though blocking.h takes it. */
    if (p == NULL || fn == NULL || req_size > SIZE_MAX / 2)
        return -EINVAL;
    j = weft__malloc(sizeof(*j) + req_size);
    if (j == NULL)
        return -ENOMEM;
    /* the header and the request's fixed part; the rest is setup's to fill */
    memset(j, 0, sizeof(*j) + (req_zeroed < req_size ? req_zeroed : req_size));
    j->pool = p;
    j->fn = fn;
    j->arg = req_size ? (void *)j->req : arg;
    j->waker = WEFT_WAKER_EMPTY;
    j->refs = job ? 2 : 1;
    j->state = JOB_QUEUED;
    j->queued_ns = weft__task_clock_ns();
    if (setup)
        setup(j->req, setup_arg);

    bp_lock(p);
    if (p->shutdown) {
        err = -ESHUTDOWN;
        goto out_unlock;
    }
    if (p->nidle > p->tokens) {
        p->tokens++;                        /* an idle thread takes it */
        pthread_cond_signal(&p->work);
    } else if (p->nthreads < p->max_threads) {
        err = pool_start_thread_locked(p);
        if (err < 0 && p->nthreads > 0)
            err = 0;                        /* a busy thread will get to it */
        if (err < 0)
            goto out_unlock;
    }
    j->dispose = dispose;                   /* from here on the job owns req */
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->refs++;                              /* the job's reference */
    bp_unlock(p);
    if (job)
        *job = j;
    return 0;
out_unlock:
    bp_unlock(p);
    if (dispose)
        dispose(j->req);                    /* undo setup */
    weft__free(j);
    return err;
}

int weft__blocking_spawn_req(weft_blocking_pool *pool, void *(*fn)(void *req), size_t req_size,
                             size_t req_zeroed, void (*setup)(void *req, const void *setup_arg),
                             const void *setup_arg, void (*dispose)(void *req),
                             weft_blocking_job **job)
{
    int err;

    if (job == NULL || req_size == 0)
        return -EINVAL;
    err = weft__blocking_pick(&pool);
    if (err < 0)
        return err;
    return spawn_common(pool, fn, NULL, req_size, req_zeroed, setup, setup_arg, dispose, job);
}

void *weft__blocking_job_req(weft_blocking_job *job)
{
    return job->req;
}

WEFT_API int weft_blocking_spawn(weft_blocking_pool *pool, void *(*fn)(void *arg), void *arg,
                                 weft_blocking_job **job)
{
    int err;

    if (fn == NULL)
        return -EINVAL;
    err = weft__blocking_pick(&pool);
    if (err < 0)
        return err;
    return spawn_common(pool, fn, arg, 0, 0, NULL, NULL, NULL, job);
}

/* ---- Shutdown ------------------------------------------------------------ */

/* Stop accepting and cancel what is queued (->lock held on entry and on
 * return; dropped in between to wake the cancelled jobs' joins). */
static void pool_stop_locked(struct weft_blocking_pool *p)
{
    struct weft_blocking_job *list, *j;
    weft_waker w;

    if (p->shutdown)
        return;
    p->shutdown = true;
    list = p->head;
    p->head = p->tail = NULL;
    for (j = list; j; j = j->next)
        j->state = JOB_CANCELLED;           /* before anyone can see the flag */
    pthread_cond_broadcast(&p->work);       /* idle threads leave */
    if (p->done_waiters)
        pthread_cond_broadcast(&p->done);
    while (list) {                          /* we own the queue's references */
        j = list;
        list = j->next;
        j->next = NULL;
        w = j->waker;
        j->waker = WEFT_WAKER_EMPTY;
        job_unref_unlock(j);
        weft_waker_wake(&w);
        bp_lock(p);
    }
}

/* Wait until every thread has left or the deadline passed (->lock held).
 * Returns the jobs still running. */
static int pool_wait_locked(struct weft_blocking_pool *p, int timeout_ms)
{
    struct timespec deadline;
    int rc = 0;

    if (timeout_ms >= 0)
        deadline_after(&deadline, (unsigned)timeout_ms);
    p->done_waiters++;
    while (p->nthreads > 0 && rc != ETIMEDOUT) {
        if (timeout_ms < 0)
            pthread_cond_wait(&p->done, &p->lock);
        else
            rc = pthread_cond_timedwait(&p->done, &p->lock, &deadline);
    }
    p->done_waiters--;
    return (int)p->nrunning;
}

WEFT_API int weft_blocking_pool_shutdown(weft_blocking_pool *pool, int timeout_ms)
{
    struct weft_blocking_pool *p = pool;
    int n;

    if (p == NULL || bp_current == p)
        return -EINVAL;
    bp_lock(p);
    pool_stop_locked(p);
    n = pool_wait_locked(p, timeout_ms);
    bp_unlock(p);
    return n;
}

WEFT_API void weft_blocking_pool_free(weft_blocking_pool *pool)
{
    struct weft_blocking_pool *p = pool;

    if (p == NULL)
        return;
    bp_lock(p);
    assert(!p->user_gone);
    p->user_gone = true;
    if (!p->shutdown) {
        pool_stop_locked(p);
        if (bp_current != p)
            pool_wait_locked(p, WEFT_BLOCKING_FOREVER);
    }
    pool_unref_unlock(p);                   /* the user's reference */
}

/* ---- The runtime's default pool ------------------------------------------
 * The scheduler keeps it (weft__runtime_blocking()); these are the calls it
 * is handed: make it, stop it at the runtime's shutdown, release it when the
 * runtime's memory goes. Stopping never waits: a job still running holds
 * its own pool reference (as does its thread), so it finishes later without
 * touching the runtime, and the pool's memory goes with the last of them. */
static int default_make(void **obj, unsigned max_threads)
{
    weft_blocking_pool *p;
    int err;

    err = weft_blocking_pool_new(&p, &(weft_blocking_options){ .max_threads = max_threads });
    if (err == 0)
        *obj = p;
    return err;
}

static void default_stop(void *obj)
{
    struct weft_blocking_pool *p = obj;

    /* not weft_blocking_pool_shutdown(): that refuses a pool thread, and a
     * job may be the one that frees the runtime; this waits for nothing */
    bp_lock(p);
    pool_stop_locked(p);
    bp_unlock(p);
}

static void default_release(void *obj)
{
    weft_blocking_pool_free(obj);             /* stopped already: no wait */
}

WEFT_API int weft_blocking_default(weft_runtime *rt, weft_blocking_pool **out)
{
    void *obj;
    int err;

    if (out == NULL)
        return -EINVAL;
    if (rt == NULL)
        rt = weft_runtime_current();
    if (rt == NULL)
        return -EINVAL;
    err = weft__runtime_blocking(rt, default_make, default_stop, default_release, &obj);
    if (err == 0)
        *out = obj;
    return err;
}

int weft__blocking_pick(weft_blocking_pool **pool)
{
    if (*pool)
        return 0;
    return weft_blocking_default(NULL, pool);
}

WEFT_API unsigned weft_blocking_pool_threads(const weft_blocking_pool *pool)
{
    struct weft_blocking_pool *p = (struct weft_blocking_pool *)pool;
    unsigned n;

    if (p == NULL)
        return 0;
    bp_lock(p);
    n = p->nthreads;
    bp_unlock(p);
    return n;
}

void weft__blocking_stats(weft_blocking_pool *pool, struct weft__blocking_stats *out)
{
    struct weft_blocking_pool *p = pool;

    memset(out, 0, sizeof(*out));
    if (p == NULL)
        return;
    bp_lock(p);
    out->threads = p->nthreads;
    out->idle = p->nidle;
    for (const struct weft_blocking_job *j = p->head; j; j = j->next)
        out->queued++;
    out->started = p->started;
    out->wait_ns = p->wait_ns;
    memcpy(out->wait_hist, p->wait_hist, sizeof(out->wait_hist));
    bp_unlock(p);
}

/* ---- Handles ------------------------------------------------------------- */

/* The job's answer (->lock held): 0 with *ret, -ECANCELED or -EAGAIN. */
static int job_result_locked(const struct weft_blocking_job *j, void **ret)
{
    switch (j->state) {
    case JOB_DONE:
        if (ret)
            *ret = j->ret;
        return 0;
    case JOB_CANCELLED:
        return -ECANCELED;
    default:
        return -EAGAIN;
    }
}

WEFT_API int weft_blocking_job_try(weft_blocking_job *job, void **ret)
{
    int r;

    if (job == NULL)
        return -EINVAL;
    bp_lock(job->pool);
    r = job_result_locked(job, ret);
    bp_unlock(job->pool);
    return r;
}

WEFT_API int weft_blocking_job_wait(weft_blocking_job *job, void **ret)
{
    struct weft_blocking_pool *p;
    int r;

    if (job == NULL || weft__task_driver != NULL)
        return -EINVAL;
    p = job->pool;
    bp_lock(p);
    p->done_waiters++;
    while ((r = job_result_locked(job, ret)) == -EAGAIN)
        pthread_cond_wait(&p->done, &p->lock);
    p->done_waiters--;
    bp_unlock(p);
    return r;
}

WEFT_API bool weft_blocking_job_is_complete(const weft_blocking_job *job)
{
    struct weft_blocking_job *j = (struct weft_blocking_job *)job;
    bool done;

    if (j == NULL)
        return false;
    bp_lock(j->pool);
    done = j->state >= JOB_DONE;
    bp_unlock(j->pool);
    return done;
}

/* The queue is singly linked: find the job's predecessor by walking it
 * (queues are short; a withdraw is rare). A token handed out for the job
 * stays: the thread that takes it finds nothing and goes idle again. */
bool weft__blocking_job_withdraw(weft_blocking_job *job)
{
    struct weft_blocking_pool *p = job->pool;
    struct weft_blocking_job **pp, *prev = NULL;
    weft_waker w;

    bp_lock(p);
    if (job->state != JOB_QUEUED) {
        bp_unlock(p);
        return false;
    }
    for (pp = &p->head; *pp != job; pp = &(*pp)->next)
        prev = *pp;                         /* QUEUED: it is on the queue */
    *pp = job->next;
    if (p->tail == job)
        p->tail = prev;
    job->next = NULL;
    w = job_finish_locked(job, JOB_CANCELLED);
    job_unref_unlock(job);                  /* the queue's reference */
    weft_waker_wake(&w);
    return true;
}

WEFT_API void weft_blocking_job_drop(weft_blocking_job *job)
{
    if (job == NULL)
        return;
    bp_lock(job->pool);
    job_unref_unlock(job);
}

/* ---- Join future --------------------------------------------------------- */

WEFT_API void weft_blocking_join_init(weft_blocking_join *j, weft_blocking_job *job, void **ret)
{
    if (j == NULL)
        return;
    j->job = job;
    j->ret = ret;
    j->result = -EINVAL;
    j->state = job ? J_IDLE : J_DONE;
}

WEFT_API weft_poll weft_blocking_join_poll(weft_blocking_join *j, weft_context *cx, int *result)
{
    if (j == NULL) {                        /* a NULL future: only *result */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    if (j->state != J_DONE && j->job != NULL) {
        if (weft__cx_bad(cx)) {             /* misuse (weft/core.h): nothing changed */
            if (result)
                *result = -EINVAL;
            return WEFT_READY;
        }
        /* a fresh join of a finished job is ready at once, join after
         * join: spend the budget (lock.h's rule) */
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
    }
    return weft__blocking_join_poll(j, cx, result);
}

weft_poll weft__blocking_join_poll(weft_blocking_join *j, weft_context *cx, int *result)
{
    struct weft_blocking_job *job;
    weft_waker mine, old = WEFT_WAKER_EMPTY;
    int r;

    job = j->job;
    if (j->state == J_DONE || job == NULL) {
        if (j->state != J_DONE)
            j->result = -EINVAL;            /* zeroed */
        j->state = J_DONE;
        if (result)
            *result = j->result;
        return WEFT_READY;
    }
    if (cx == NULL || cx->waker == NULL) {
        /* no waker to store (weft/lock.h's misuse rule): -EINVAL, and
         * nothing changes (a proper poll later waits as usual) */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    /* Clone before locking: no waker code runs under the pool's lock. */
    mine = weft_waker_clone(weft_context_waker(cx));
    bp_lock(job->pool);
    r = job_result_locked(job, j->ret);
    if (r != -EAGAIN) {
        old = job->waker;                   /* ours, from an earlier poll */
        job->waker = WEFT_WAKER_EMPTY;
    } else if (weft_waker_will_wake(&job->waker, &mine)) {
        old = mine;                         /* stored already: keep that one */
        mine = WEFT_WAKER_EMPTY;
    } else {
        old = job->waker;
        job->waker = mine;
        mine = WEFT_WAKER_EMPTY;
    }
    bp_unlock(job->pool);
    weft_waker_drop(&old);
    if (r == -EAGAIN) {
        j->state = J_PARKED;
        return WEFT_PENDING;
    }
    weft_waker_drop(&mine);
    j->result = r;
    j->state = J_DONE;
    j->job = NULL;
    if (result)
        *result = r;
    return WEFT_READY;
}

WEFT_API void weft_blocking_join_drop(weft_blocking_join *j)
{
    struct weft_blocking_job *job;
    weft_waker w;

    if (j == NULL)
        return;
    job = j->job;
    if (j->state == J_PARKED && job) {
        bp_lock(job->pool);
        w = job->waker;
        job->waker = WEFT_WAKER_EMPTY;
        bp_unlock(job->pool);
        weft_waker_drop(&w);
    }
    j->job = NULL;
    j->result = -EINVAL;
    j->state = J_DONE;
}
