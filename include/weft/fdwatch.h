/* SPDX-License-Identifier: MIT */
/* weft/fdwatch.h - readiness callbacks on any descriptor, and one-shot
 * timers: the event-loop interface that C libraries with their own I/O
 * (hiredis's adapters, libcurl's multi_socket API, c-ares's sock_state_cb)
 * plug into, so they run on weft.
 *
 * A weft_loop is a group of watches and timers whose callbacks run one at a
 * time, never concurrently, on one task of the runtime (so an adapter needs
 * no locking of its own). Readiness is level-triggered, as those libraries
 * expect: while a watched descriptor stays readable and READ interest is
 * set, the callback is called again after each return.
 *
 * Thread rules: every function may be called from any thread, including
 * from inside a callback of the same loop (to change interest, remove the
 * watch being called or another one, arm or free a timer, free the loop).
 *
 * Removal and callbacks. weft_fdwatch_remove(), weft_timer_free() and
 * weft_loop_free() guarantee, when they return, that no callback of the
 * watch / timer / loop will start any more, and:
 *   - called from any thread that is not running a callback of this loop
 *     (a plain thread, another task, a callback of ANOTHER loop), they
 *     first wait until a callback of that watch / timer (of any watch or
 *     timer, for weft_loop_free) that is running has returned. So once
 *     they return, the caller may close the descriptor and free `arg`.
 *     The wait is as long as the callback runs (callbacks are short: they
 *     must not block); do not make two loops' callbacks remove each
 *     other's watches (each would wait for the other). While
 *     weft_fdwatch_remove() / weft_timer_free() wait, the watch / timer is
 *     already marked removed: calls on it from its running callback return
 *     -EINVAL (its memory stays valid until the wait is over).
 *     weft_loop_free() waits before it removes anything, so the running
 *     callback may use every handle of the loop until it returns;
 *   - called from inside a callback of the same loop (on its own watch or
 *     timer, on another one of the loop, or weft_loop_free), they take
 *     effect at once for every later callback and return without waiting
 *     (the only callback running is the caller: callbacks of one loop never
 *     overlap). A callback's own handle, removed or freed by it, stays
 *     valid memory until it returns (calls on it return -EINVAL); every
 *     other removed handle is invalid at once. The running callback may go
 *     on using its own `arg` and descriptor until it returns.
 * Callbacks must not block: they run on a worker.
 *
 * After the runtime is freed, loops, watches and timers may still be
 * removed / freed (the loop keeps the reactor alive by reference); no
 * callback runs any more, and weft_fdwatch_add() returns -ESHUTDOWN. */
#ifndef WEFT_FDWATCH_H
#define WEFT_FDWATCH_H

#include <stdint.h>

#include "core.h"
#include "sched.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_loop weft_loop;     /* opaque */
typedef struct weft_fdwatch weft_fdwatch;   /* opaque */
typedef struct weft_timer weft_timer;   /* opaque */

enum {
    WEFT_READABLE = 1u << 0,   /* interest / event: read (or accept) would not block */
    WEFT_WRITABLE = 1u << 1,   /* interest / event: write would not block */
    WEFT_HANGUP = 1u << 2,     /* event only: peer hung up or error; delivered with
                                * whichever of READABLE/WRITABLE is wanted */
};

/* `events`: what is ready, a subset of the interest (plus WEFT_HANGUP). */
typedef void (*weft_fdwatch_fn)(weft_fdwatch *w, int fd, unsigned events, void *arg);
typedef void (*weft_timer_fn)(weft_timer *t, void *arg);

/* Make a loop on runtime `rt` (NULL: the calling worker's): spawns its task.
 * 0, -EINVAL, -ENOMEM, -ESHUTDOWN, or -errno from epoll_create1/eventfd
 * (the runtime's reactor is made on first use). */
WEFT_API int weft_loop_new(weft_runtime *rt, weft_loop **out);
/* Remove every watch and free every timer still in the loop (their handles
 * become invalid; descriptors stay open: the loop never owns them), stop its
 * task, release the loop. Off the loop it waits for a running callback
 * (see "Removal and callbacks"); from a callback of the loop it returns at
 * once. Also valid after the runtime is freed. NULL is ignored. The
 * handle is invalid once it returns (a second free, or any call on it, is
 * a use after free, as for free()), except inside the callback that freed
 * it, until that callback returns: there weft_fdwatch_add() and
 * weft_timer_new() on it return -EINVAL ("loop freed" below). */
WEFT_API void weft_loop_free(weft_loop *l);

/* Watch `fd` (any pollable descriptor; the caller keeps owning it and must
 * remove the watch before closing it) for `events` (WEFT_READABLE and/or
 * WEFT_WRITABLE; 0 is allowed: registered, silent). Returns 0 and *out;
 * -EINVAL (bad arguments or loop freed), -EEXIST (fd already watched in
 * this runtime, or adopted there as a stream or socket), -EPERM (not
 * pollable, e.g. a regular file), -ENOMEM, -ESHUTDOWN (the runtime was
 * freed). Never watch a descriptor a weft handle owns: with the io_uring
 * backend (weft/sched.h) one that weft opened itself (weft_pipe(),
 * weft_listen(), weft_udp_bind(), an accepted or connected socket) is not
 * recognised, and the watch is then made (not -EEXIST). */
WEFT_API int weft_fdwatch_add(weft_loop *l, int fd, unsigned events, weft_fdwatch_fn fn, void *arg,
                            weft_fdwatch **out);
/* Replace the interest (WEFT_READABLE and/or WEFT_WRITABLE, or 0: silent).
 * The interest the watch is armed with again re-arms nothing (a cheap call,
 * also in a loop). Returns 0; -EINVAL (NULL, unknown bits, or removed
 * already while the handle is still valid: from the removing callback); or
 * the negative errno of re-arming the descriptor (e.g. -EBADF or -ENOENT if
 * it was closed while watched, -ENOMEM), after which the watch stays
 * silent until a modify succeeds. While its event waits to be delivered,
 * a new interest is checked against the descriptor at once (a closed one
 * fails as above, and the waiting event is dropped: no callback comes for
 * a closed descriptor) and applied to that event; the loop re-arms after
 * delivering it. From a callback of the watch, the loop applies the new
 * interest when that callback returns (a re-arm that fails then leaves the
 * watch silent, as above). */
WEFT_API int weft_fdwatch_modify(weft_fdwatch *w, unsigned events);
/* Stop watching and release the handle. Off the loop, waits until a
 * running callback of this watch has returned; from a callback of the
 * loop, returns at once (see "Removal and callbacks"). Either way no
 * callback of the watch starts after it returns. The descriptor is not
 * closed: close it after this returns (with the io_uring backend the
 * system may keep the file itself open a moment after that close, until
 * the poll's cancellation has run: see weft_socket_close() in weft/net.h).
 * 0, or -EINVAL (NULL, or removed
 * already while the handle is still valid: from the removing callback). */
WEFT_API int weft_fdwatch_remove(weft_fdwatch *w);

/* A one-shot timer, disarmed at first. 0, -EINVAL, -ENOMEM. */
WEFT_API int weft_timer_new(weft_loop *l, weft_timer_fn fn, void *arg, weft_timer **out);
/* Fire once, `ms` milliseconds from now (never earlier; 0: as soon as the
 * loop runs). Arming an armed timer moves its deadline. 0 or -EINVAL. */
WEFT_API int weft_timer_arm(weft_timer *t, uint64_t ms);
/* Disarm (a no-op when not armed). 0 or -EINVAL. */
WEFT_API int weft_timer_disarm(weft_timer *t);
/* Disarm and release the handle. Off the loop, waits until a running
 * callback of this timer has returned; from a callback of the loop, returns
 * at once (see "Removal and callbacks"). NULL is ignored. */
WEFT_API void weft_timer_free(weft_timer *t);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_FDWATCH_H */
