/* SPDX-License-Identifier: MIT */
/* The blocking layer's internal interface (shared by pool.c and fs.c). */
#ifndef WEFT_BLOCKING_INTERNAL_H
#define WEFT_BLOCKING_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "task/task.h"
#include "weft/blocking.h"

/* weft_blocking_spawn() with a request area of `req_size` (> 0) bytes inside
 * the job's one allocation, aligned for any type; fn gets the
 * request as its argument. Its first `req_zeroed` bytes (at most req_size)
 * are zeroed, the rest is left as malloc gave it: a file write's 1 GiB of
 * data, which setup copies over, is not written twice.
 * `setup(req, setup_arg)` (may be NULL) fills it in
 * before the job is queued. `dispose(req)` (may be NULL) runs exactly once,
 * on whichever thread drops the job's last reference, whether fn ran or the
 * job was cancelled (or, if the spawn fails, before it returns): it cleans up
 * what fn produced and nobody claimed. `job` must not be NULL. Errors as
 * weft_blocking_spawn(); `pool` NULL means the default pool as there. */
int weft__blocking_spawn_req(weft_blocking_pool *pool, void *(*fn)(void *req), size_t req_size,
                             size_t req_zeroed,
                             void (*setup)(void *req, const void *setup_arg),
                             const void *setup_arg, void (*dispose)(void *req),
                             weft_blocking_job **job);

/* *pool, or (when *pool is NULL) the default pool of the calling worker's
 * runtime put there. 0, or weft_blocking_default()'s error. */
/* weft_blocking_join_poll() for weft's own futures (the file futures, name
 * lookups), which checked their context already (util/cx.h) and complete
 * once per job: no budget spent. j and cx valid. */
weft_poll weft__blocking_join_poll(weft_blocking_join *j, weft_context *cx, int *result);

int weft__blocking_pick(weft_blocking_pool **pool);

/* The request area of a job made by weft__blocking_spawn_req(). Once the
 * job's join has reported 0, the request is the handle holder's to read. */
void *weft__blocking_job_req(weft_blocking_job *job);

/* Tests only: a file job calls this on its pool thread after it started
 * and before its syscall (NULL, the default: nothing), so that a test can
 * hold an operation between "started" and "inside the kernel". */
typedef void (*weft__fs_hook_fn)(void);
extern _Atomic(weft__fs_hook_fn) weft__fs_hook;

/* Withdraw a job that has not started: take it off the queue so that fn
 * never runs; it ends as cancelled (joins report -ECANCELED) and its dispose
 * runs with the last reference. Returns true if it was withdrawn, false if
 * it had started, finished or been cancelled already (then nothing changes).
 * The caller holds a handle. Thread: any. */
bool weft__blocking_job_withdraw(weft_blocking_job *job);
/* What weft_runtime_metrics() reports of a pool (under its lock). */
struct weft__blocking_stats {
    uint64_t threads, idle, queued, started, wait_ns;
    uint64_t wait_hist[WEFT_HIST_BUCKETS_];
};
void weft__blocking_stats(weft_blocking_pool *pool, struct weft__blocking_stats *out);

#endif
