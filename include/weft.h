/* weft - an async runtime for C.
 *
 * The protocol (futures, wakers, async functions) is in weft/core.h, join
 * handles in weft/task.h, the runtime in weft/sched.h. docs/ARCHITECTURE.md
 * follows a task from spawn to free. */
#ifndef WEFT_H
#define WEFT_H

#include "weft/core.h"
#include "weft/task.h"
#include "weft/sched.h"
#include "weft/sync.h"

#endif /* WEFT_H */
