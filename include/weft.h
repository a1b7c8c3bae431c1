/* SPDX-License-Identifier: MIT */
/* weft - an async runtime for C. This is the one header a user includes.
 *
 * The protocol (futures, wakers, async functions) is in weft/core.h, join
 * handles in weft/task.h, the runtime in weft/sched.h, timers in
 * weft/timer.h, notify and the locks in weft/lock.h, channels in
 * weft/chan.h, the pool for blocking calls and file futures in
 * weft/blocking.h, task groups, cancellation tokens and select/join_all in
 * weft/group.h, sockets in weft/net.h, pipes, ttys, eventfds and
 * other descriptors as streams in weft/stream.h, watches of foreign
 * descriptors with loop timers in weft/fdwatch.h, signals as futures in
 * weft/signal.h, stackful coroutines in weft/coro.h (docs/coro.md), and the
 * task dump, metrics and lints in weft/observe.h (docs/debugging.md).
 * docs/ARCHITECTURE.md follows a task
 * from spawn to free. */
#ifndef WEFT_H
#define WEFT_H

#include "weft/core.h"
#include "weft/task.h"
#include "weft/sched.h"
#include "weft/timer.h"
#include "weft/lock.h"
#include "weft/chan.h"
#include "weft/blocking.h"
#include "weft/group.h"
#include "weft/net.h"
#include "weft/stream.h"
#include "weft/bufio.h"
#include "weft/fdwatch.h"
#include "weft/signal.h"
#include "weft/process.h"
#include "weft/coro.h"
#include "weft/trace.h"
#include "weft/observe.h"

#endif /* WEFT_H */
