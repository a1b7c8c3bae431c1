/* SPDX-License-Identifier: MIT */
/* weft/task.h - join handles: what spawn gives back to wait for, read,
 * detach or abort a task. */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A join handle: one reference to a spawned task, held by whoever spawned it
 * (opaque). Exactly one thread uses a handle at a time; the calls below may
 * be made from any thread unless they say otherwise. A handle is released by
 * weft_join_drop() (which detaches: the task keeps running). */
typedef struct weft_join weft_join;

/* Await the task from another task. Returns WEFT_PENDING (cx's waker will be
 * woken when the task completes) or WEFT_READY with *result = 0 and the
 * task's output copied to `out` (`out` may be NULL to discard it), or
 * *result = -ECANCELED when the task was aborted or cancelled at shutdown
 * (`out` untouched). May be polled again after READY with the same answer
 * (so, unlike the leaves of weft/core.h's budget, it spends no unit of the
 * cooperative budget: a handle keeps no record of a READY already given).
 * *result = -EINVAL for a NULL handle or a poll without a waker
 * (weft/core.h, "Context"; nothing is stored). Cancel safety: dropping the
 * awaiting future loses nothing; the handle is still valid. */
WEFT_API weft_poll weft_join_poll(weft_join *j, weft_context *cx, int *result,
                                  void *out);

/* Without waiting: 0 with the output copied to `out` (may be NULL),
 * -ECANCELED, or -EAGAIN while the task has not completed; -EINVAL if `j` is
 * NULL. */
WEFT_API int weft_join_try(weft_join *j, void *out);

/* Block the calling thread until the task completes: 0 with the output in
 * `out` (may be NULL), or -ECANCELED. -EINVAL for a NULL handle or when
 * called on a worker thread of any weft runtime, the thread inside a
 * current-thread runtime's weft_runtime_run()/weft_block_on() included (it
 * would block the thread that may have to run the task: await
 * weft_join_poll() there instead), except in a drop run by the shutdown of
 * the task's runtime (below): that holds on whatever thread the shutdown
 * runs, a worker of another runtime included.
 * -EDEADLK when nothing would ever complete the task while this waits:
 *  - WEFT_CURRENT_THREAD: its tasks run only while some thread is inside
 *    weft_runtime_run() or weft_block_on() on it (the driver). With no
 *    driver (and none waiting to enter) at the call, it returns -EDEADLK at
 *    once; if the last driver leaves while this waits and the task has not
 *    completed, it returns -EDEADLK then. A driver that starts later does
 *    not count: call again once one runs. During the runtime's shutdown it
 *    waits for the cancellation (-ECANCELED) instead.
 *  - in a future's drop run by weft_runtime_shutdown(): a task of the same
 *    runtime that shutdown has not cancelled yet is cancelled there and
 *    then (its drop runs, nested, on this thread) and the answer is
 *    -ECANCELED, whatever the order the tasks were spawned in; -EDEADLK
 *    only for a cycle, a task whose own drop is waiting further up this
 *    thread's stack. The same holds for a task of any runtime whose
 *    shutdown runs further up this thread (a drop of it shut down the
 *    runtime whose drop this is).
 * The task is not affected by -EDEADLK (it may still run and complete
 * later). The handle stays valid. */
WEFT_API int weft_join_wait(weft_join *j, void *out);

/* Ask the task to stop. Its future's drop runs exactly once, on a worker
 * thread, never while the future is being polled (a task aborted during a
 * poll is cancelled when that poll returns PENDING; if it returns READY the
 * task completes normally). Its join then reports -ECANCELED. Aborting a
 * completed task changes nothing; aborting twice is the same as once.
 * NULL is ignored. */
WEFT_API void weft_join_abort(weft_join *j);

/* True once the task has completed, normally or by cancellation. */
WEFT_API bool weft_join_is_complete(const weft_join *j);

/* Release the handle: the task is detached and runs on; its output, if it
 * has one, is discarded. NULL is ignored. The handle must not be used
 * afterwards. */
WEFT_API void weft_join_drop(weft_join *j);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_TASK_H */
