/* SPDX-License-Identifier: MIT */
/* The timeline recorder (weft/trace.h), as the scheduler calls it.
 *
 * Each worker owns ring i = its index and is its only writer; threads that
 * are not workers of the runtime share ring nworkers under ->foreign_lock.
 *
 * Stopping without a lock on the workers' side (a Dekker pair per ring):
 *
 *   writer (owner of ring i)              stopper (weft_trace_stop)
 *   busy[i] = 1            [seq_cst]      on = 0              [seq_cst]
 *   load on                [seq_cst]      load busy[i]        [seq_cst], until 0
 *   on? write the event                   (foreign ring: lock, unlock)
 *   busy[i] = 0            [release]      the rings are now the stopper's
 *
 * In the single total order of the four seq_cst operations one store comes
 * first: either the writer sees on == 0 and writes nothing, or the stopper
 * sees busy == 1 and waits for the release store of 0, which makes the
 * event's bytes visible to it. A writer that loaded `tracing` before the
 * stop reaches busy[i] = 1 after it and then sees on == 0. So once stop
 * returns, nobody writes the rings until the next start, which publishes
 * the rings' new state with its release store of on = 1 (pairing with the
 * writers' seq_cst load). */
#ifndef WEFT_SCHED_TRACE_H
#define WEFT_SCHED_TRACE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct weft_runtime;
struct worker;
struct weft__task;

enum {
    TR_POLL = 1,       /* a slice: ts, dur, task, name, arg = requeued */
    TR_PARK,           /* a slice: ts, dur */
    TR_WAKE,           /* task woken (or spawned) by `from` (a task, or NULL) */
    TR_STEAL,          /* arg = victim worker, dur = tasks taken */
    TR_TIMERS,         /* arg = timers fired */
    TR_IO,             /* arg = readiness events */
};

#define TR_NAME 24

struct weft__trace_ev {
    uint64_t ts;                      /* ns, CLOCK_MONOTONIC */
    uint64_t dur;                     /* ns (TR_STEAL: a count) */
    const void *task;                 /* identity only: never dereferenced */
    const void *from;
    uint32_t kind, arg;
    char name[TR_NAME];               /* the descriptor's name, cut */
};

struct weft__trace_ring {
    struct weft__trace_ev *ev;        /* cap events; the owner's while on */
    _Atomic uint64_t n;               /* events ever written (owner writes) */
    _Atomic int busy;                 /* the protocol above */
    char pad[64 - sizeof(void *) - sizeof(uint64_t) - sizeof(int)];
};

struct weft__trace {
    _Atomic bool on;
    unsigned nrings;                  /* workers + 1 (foreign) */
    size_t cap;                       /* events per ring, while stopped: the API's */
    uint64_t t0;                      /* ns at the start */
    pthread_mutex_t foreign_lock;     /* the last ring's writers */
    struct weft__trace_ring *rings;   /* nrings, allocated with the struct */
};

/* Recording at all? One relaxed-enough load: acquire, so that a reader who
 * sees true sees rt->trace set (weft_trace_start() stores it first). */
#define weft__trace_active(rt) \
    __builtin_expect(atomic_load_explicit(&(rt)->tracing, memory_order_acquire), 0)

uint64_t weft__trace_poll_begin(struct weft__task *t);
void weft__trace_poll_end(struct worker *w, uint64_t t0, bool requeued);
void weft__trace_wake(struct weft_runtime *rt, struct worker *w, struct weft__task *t);
void weft__trace_mark(struct weft_runtime *rt, struct worker *w, uint32_t kind, uint32_t arg,
                      uint64_t ts, uint64_t dur);
uint64_t weft__trace_now(void);
void weft__trace_free(struct weft__trace *tr);

#endif
