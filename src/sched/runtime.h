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

#endif
