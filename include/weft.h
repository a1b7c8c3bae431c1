/* weft - an async runtime for C.
 *
 * The protocol (futures, wakers, async functions) is in weft/core.h, join
 * handles in weft/task.h, the runtime in weft/sched.h, timers in
 * weft/time.h, channels and locks in weft/sync.h and weft/sync2.h, task groups,
 * cancellation tokens and select/join_all in weft/group.h, the pool for
 * blocking calls in weft/blocking.h. docs/ARCHITECTURE.md follows a task
 * from spawn to free. */
#ifndef WEFT_H
#define WEFT_H

#include "weft/core.h"
#include "weft/task.h"
#include "weft/sched.h"
#include "weft/time.h"
#include "weft/sync.h"
#include "weft/sync2.h"
#include "weft/blocking.h"
#include "weft/group.h"
#include "weft/net.h"
#include "weft/fdwatch.h"

#endif /* WEFT_H */
