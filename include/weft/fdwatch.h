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
 * watch being called, arm a timer, ...), except weft_loop_free(), which
 * must not be called from a callback. A callback that is running when
 * weft_fdwatch_remove() or weft_timer_free() is called from ANOTHER thread
 * finishes first; the handle's memory is released after it returns, but
 * the remove call itself does not wait for it (remove from a callback of
 * the loop, or know that the loop is idle, before freeing `arg`).
 * Callbacks must not block: they run on a worker. */
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
 * 0, -EINVAL, -ENOMEM, -ESHUTDOWN. */
WEFT_API int weft_loop_new(weft_runtime *rt, weft_loop **out);
/* Remove every watch and free every timer still in the loop (their handles
 * become invalid; descriptors stay open: the loop never owns them), stop its
 * task, release the loop. NULL is ignored. Not from a callback. */
WEFT_API void weft_loop_free(weft_loop *l);

/* Watch `fd` (any pollable descriptor; the caller keeps owning it and must
 * remove the watch before closing it) for `events` (WEFT_READABLE and/or
 * WEFT_WRITABLE; 0 is allowed: registered, silent). Returns 0 and *out;
 * -EINVAL (bad arguments or loop freed), -EEXIST (fd already watched in
 * this runtime), -EPERM (not pollable, e.g. a regular file), -ENOMEM. */
WEFT_API int weft_fdwatch_add(weft_loop *l, int fd, unsigned events, weft_fdwatch_fn fn, void *arg,
                            weft_fdwatch **out);
/* Replace the interest. 0 or -EINVAL. */
WEFT_API int weft_fdwatch_modify(weft_fdwatch *w, unsigned events);
/* Stop watching and release the handle (see the thread rules). The
 * descriptor is not closed. 0 or -EINVAL (NULL). */
WEFT_API int weft_fdwatch_remove(weft_fdwatch *w);

/* A one-shot timer, disarmed at first. 0, -EINVAL, -ENOMEM. */
WEFT_API int weft_timer_new(weft_loop *l, weft_timer_fn fn, void *arg, weft_timer **out);
/* Fire once, `ms` milliseconds from now (never earlier; 0: as soon as the
 * loop runs). Arming an armed timer moves its deadline. 0 or -EINVAL. */
WEFT_API int weft_timer_arm(weft_timer *t, uint64_t ms);
/* Disarm (a no-op when not armed). 0 or -EINVAL. */
WEFT_API int weft_timer_disarm(weft_timer *t);
/* Disarm and release the handle. NULL is ignored. */
WEFT_API void weft_timer_free(weft_timer *t);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_FDWATCH_H */
