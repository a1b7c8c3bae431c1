/* SPDX-License-Identifier: MIT */
/* weft/trace.h - a timeline of what the scheduler did, for Perfetto and
 * chrome://tracing.
 *
 * While recording, every worker writes what it does into a ring buffer of
 * its own (no lock): each poll of a task (when it began, how long it ran,
 * the task's descriptor name), each wake-up of a task (by which task, or
 * from which thread), each park (how long the worker slept), each steal,
 * each batch of timers fired and of I/O events seen. Wake-ups from threads
 * that are not workers of the runtime go to one more ring, under a mutex.
 * weft_trace_write() turns the rings into Chrome's JSON trace format
 * ("trace_event"): one track per worker with a slice per poll and per park,
 * and an arrow (a flow) from each wake-up to the poll it caused. Open the
 * file in https://ui.perfetto.dev or chrome://tracing; docs/trace.md
 * shows how to read one, and bench/trace_timeline.py draws one with gnuplot.
 *
 * Cost: when no trace is recording, one load and one predictable branch per
 * poll and per wake-up. When recording, two clock reads and one 64-byte
 * event per poll, one event per wake-up (measured figures: docs/trace.md).
 *
 * A typical use:
 *
 *     weft_trace_start(rt, 0);         // 65,536 events per worker
 *     ... let the program run a while ...
 *     weft_trace_stop(rt);
 *     FILE *f = fopen("weft.json", "w");
 *     weft_trace_write(rt, f);
 *     fclose(f);
 *
 * Threads: every call may be made from any thread, including a task (a
 * call made while another of these calls runs on the same runtime waits
 * for it; calls on different runtimes never wait for each other, so a
 * weft_trace_write() blocked on a slow FILE holds up only its own
 * runtime's calls). None of them may be called on a runtime after
 * weft_runtime_free().
 * The recording is freed with the runtime. */
#ifndef WEFT_TRACE_H
#define WEFT_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core.h"
#include "sched.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Events each ring keeps when weft_trace_start() is given 0. */
#define WEFT_TRACE_DEFAULT_EVENTS 65536u
/* The most events per ring (64 bytes each). */
#define WEFT_TRACE_MAX_EVENTS (1u << 24)

/* Start recording, into rings of `events_per_thread` events (0: the
 * default). Discards what an earlier recording left. When a ring is full
 * the oldest events are overwritten (counted as dropped: see
 * weft_trace_stats()), so a trace keeps the last moments before the stop.
 * Returns 0; -EINVAL rt is NULL or events_per_thread is above
 * WEFT_TRACE_MAX_EVENTS; -EBUSY a recording is already running; -ENOMEM
 * (rings of a new size could not be made: what an earlier recording left
 * is discarded all the same, and weft_trace_write() and
 * weft_trace_get_stats() answer -ESRCH until a start succeeds). */
WEFT_API int weft_trace_start(weft_runtime *rt, size_t events_per_thread);

/* Stop recording. Returns once no thread writes into the rings any more,
 * which takes at most the time one event takes to record (it never waits
 * for a poll to end: a poll running across the stop is not recorded).
 * Returns 0; -EINVAL rt is NULL; -ESRCH no recording is running. */
WEFT_API int weft_trace_stop(weft_runtime *rt);

/* Write the stopped recording to f as Chrome JSON ("traceEvents"), times in
 * microseconds since the recording started. May be called again (for a
 * second copy) until the next weft_trace_start(). Does not close f.
 * Returns the number of entries written to "traceEvents": the metadata
 * records (one naming the process, two for each track: every worker's
 * and the other threads' one), then the slices, flows and instants; or
 * -EINVAL (NULL argument), -EBUSY (still recording: stop first), -ESRCH
 * (nothing recorded: no start yet, or the last one failed with -ENOMEM),
 * -EIO (a write to f failed), -ENOMEM. */
WEFT_API long weft_trace_write(weft_runtime *rt, FILE *f);

typedef struct weft_trace_stats {
    uint64_t recorded;         /* events written into the rings */
    uint64_t dropped;          /* of those, overwritten because a ring was full */
} weft_trace_stats;

/* Counts of the current (or last) recording; safe while it runs (the
 * figures are then a snapshot). Returns 0, or -EINVAL (NULL argument),
 * -ESRCH (nothing recorded: as for weft_trace_write()). */
WEFT_API int weft_trace_get_stats(weft_runtime *rt, weft_trace_stats *out);

#ifdef __cplusplus
}
#endif

#endif
