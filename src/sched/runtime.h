/* SPDX-License-Identifier: MIT */
/* What the layers above the scheduler reach of a runtime (internal). */
#ifndef WEFT_SCHED_RUNTIME_H
#define WEFT_SCHED_RUNTIME_H

#include "weft/sched.h"

struct weft__io;

/* The runtime's I/O reactor. */
struct weft__io *weft__runtime_io(weft_runtime *rt);

/* The calling (plain) thread is about to block until some of rt's tasks
 * have been dropped (weft_group_free(), weft_group_join()). On the thread
 * that cancels rt's remaining tasks at shutdown (a future's drop run there
 * waits for its siblings), cancel one more of them here, now, and return 1:
 * look again. -EDEADLK: this thread cancels rt's tasks and none is left to
 * cancel, so what it waits for is a drop further up its own stack. 0: any
 * other thread; block. */
int weft__runtime_help(weft_runtime *rt);
/* True when the calling thread is cancelling rt's tasks at rt's shutdown
 * (a drop run there): its waits for rt's tasks help instead of sleeping,
 * so they are allowed even on a worker of another runtime. */
bool weft__runtime_cancelling(weft_runtime *rt);

/* The runtime's default blocking pool, made on first use. If none exists
 * yet, make(&obj, max_threads) makes it (under the runtime's run lock, so
 * once: it must not wait for anything), and the runtime keeps it with
 * stop(obj), called once by weft_runtime_shutdown() after the tasks are
 * cancelled, and release(obj), called once when the runtime's memory is
 * freed (after stop). Returns 0 and the pool in *out (borrowed: valid until
 * the runtime is freed), make's error, or -ESHUTDOWN once a shutdown has
 * begun. Thread: any. */
int weft__runtime_blocking(weft_runtime *rt, int (*make)(void **obj, unsigned max_threads),
                           void (*stop)(void *obj), void (*release)(void *obj), void **out);

/* The coroutines' default stack size (weft_runtime_options.coro_stack_size;
 * 0: weft's default). */
size_t weft__runtime_coro_stack_size(const weft_runtime *rt);

/* True on a worker thread of a multi-thread runtime (a thread weft started,
 * which exits at that runtime's shutdown); false on every other thread, a
 * current-thread runtime's driver included. Thread: any. */
bool weft__runtime_on_worker_thread(void);

#endif
