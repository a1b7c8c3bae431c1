/* SPDX-License-Identifier: MIT */
/* Stackful coroutines (internal): the context switch, stacks, and the
 * coroutine record that lives inside a task's future.
 *
 * The two sides of a switch:
 *
 *   worker side (co_resume, never migrates)    coroutine side (its own stack)
 *   save the worker's errno, load the co's     ...
 *   running coroutine = co                      ...
 *   weft__co_jump(&co->s.w->ctx, &co->s.c) ─►  continues after its last jump
 *                                               (or starts at weft__co_entry)
 *                                               runs until an await is pending
 *   continues after the jump           ◄─────  weft__co_jump(&co->s.c, &co->s.w->ctx)
 *   save the co's errno, restore ours
 *
 * (the worker loop runs the worker side inline, in its own frame:
 * weft__task_run_stackful(), task/stackful.h; everyone else, co_resume.)
 *
 * Everything thread-specific (errno, the running coroutine
 * weft__stackful_pt.cur, the sanitizers' fiber state)
 * is handled on the worker side, whose frame never changes threads; the
 * coroutine side, which may wake up on another worker after any switch,
 * reads thread-locals only through out-of-line helpers (see coro.c). */
#ifndef WEFT_CORO_CORO_H
#define WEFT_CORO_CORO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "task/stackful.h"
#include "weft/coro.h"

enum {
    CO_NEW = WEFT__SF_NEW,              /* never resumed: c is prepared at the first resume */
    CO_RUNNING = WEFT__SF_RUNNING,      /* on a thread, between resume and suspend */
    CO_SUSPENDED = WEFT__SF_SUSPENDED,  /* parked in an await */
    CO_DONE = WEFT__SF_DONE             /* fn returned; the stack may be released */
};

struct weft__co_slab;

/* A guarded stack is one mapping: a guard page at the low end, then the
 * usable stack. A slab stack (slab.c) is a slot of a shared mapping, with
 * a canary below it instead of a guard page. */
struct weft__co_stack {
    struct weft__co_slab *slab; /* NULL: a guarded stack */
    char *map;                  /* start of the mapping (the guard); for a slab
                                 * stack, lo; NULL: no stack */
    size_t map_size;            /* guard + usable; 0 for a slab stack */
    char *lo, *hi;              /* the usable stack: [lo, hi) */
    size_t cls;                 /* the page-rounded size asked for (the caches' key) */
};

struct weft__co {
    /* The hot part, what a switch pair touches: 64 bytes. The head first
     * (the task layer's, task/stackful.h: the worker loop's resume reads
     * and writes it inline): the context (c; weft__co_start finds the
     * record at the context it jumped to), the worker's side (w), errno
     * (err), CO_* (state), cancelled, on_slab (stack.slab != NULL). */
    struct weft__stackful s;
    /* the blocking call (weft_co_read, ...) the coroutine is in, for the
     * task dump; NULL outside one (the coroutine's own) */
    const weft_async_site *site;
    uint64_t deadline;          /* weft_co_deadline_set(); 0: none */
    /* cold */
    struct weft__co_stack stack;
    int result;                 /* what fn returned */
    weft_co_fn *fn;
    void *arg;
    const char *name;
#if WEFT_CO_ASAN
    void *fake_co;              /* ASan fake stacks of both sides */
    void *fake_w;
    const void *w_bottom;       /* the worker's stack, as ASan last reported it */
    size_t w_size;
#endif
#if WEFT_CO_TSAN
    void *fiber;                /* the coroutine's TSan fiber */
    void *w_fiber;              /* the worker's, taken at each resume */
#endif
};

/* Prepare a fresh context on co's stack, in co->c, that starts
 * weft__co_entry(co) when first jumped to. */
void weft__co_prepare(struct weft__co *co);
/* The coroutine's first function (switch.c calls it on the new stack);
 * never returns: its last act is the switch back to the worker. */
WEFT_NORETURN void weft__co_entry(struct weft__co *co);

/* ---- coro.c (the await; waits.c, calls.c, fs.c wrap it) -------------------
 * The await every blocking-style call is made of (weft_co_await_fn's, with
 * the coroutine's deadline in force); for the wrappers in other files. */
int weft__co_await(weft_poll (*poll)(void *self, weft_context *cx, void *out),
                   void (*drop)(void *self), void *self, void *out);
/* The same, naming the public call the coroutine parks in for the task
 * dump (weft/observe.h promises a coroutine's dump line names "the blocking
 * call it is parked in"): every public weft_co_* wrapper passes its own
 * site (WEFT__CO_SITE_DECL), so a call never shows the name of an earlier one
 * (the site stays set until the next call marks its own). */
int weft__co_await_at(weft_poll (*poll)(void *self, weft_context *cx, void *out),
                      void (*drop)(void *self), void *self, void *out,
                      const weft_async_site *site);
#define WEFT__CO_SITE_DECL(name) static const weft_async_site name = { __func__, NULL, 0 }
/* Name the public call the running coroutine is in, for the task dump
 * (nothing outside a coroutine): waits.c's CO_CALL, before its await. */
void weft__co_mark(const weft_async_site *site);
/* The coroutine side's errno, read and written out of line (coro.c's
 * co_errno_get/co_errno_set: &errno may change across a switch). */
int weft__co_errno_get(void);
void weft__co_errno_set(int v);

/* ---- stack.c ----------------------------------------------------------------- */
/* Map a stack of `size` usable bytes (page-rounded) plus a guard page, or
 * take one of that size from this thread's cache. 0 or -ENOMEM. */
int weft__co_stack_get(struct weft__co_stack *s, size_t size);
/* Give it back: to this thread's cache, or unmapped. */
void weft__co_stack_put(struct weft__co_stack *s);
/* Prepare this thread to run coroutines: an alternate signal stack for the
 * overflow report, once per thread. Cheap after the first call. */
void weft__co_thread_enter(void);
/* Install the guard-page handler (once per process). */
void weft__co_install_handler(void);
/* The coroutine running on this thread, or NULL (the handler reads it). */
struct weft__co *weft__co_running(void);
/* Stacks mapped now (cached ones included): for tests. */
long weft__co_stacks_mapped(void);
/* Guarded stacks mapped now (cached ones included). */
long weft__co_stacks_guarded(void);
/* The most guarded stacks before new ones come from slabs: n >= 0 sets it
 * (0: slabs only), n < 0 restores the default (WEFT_CO_GUARD_MAX from the
 * environment, else vm.max_map_count / 4). Returns the previous limit.
 * For tests and benchmarks. */
long weft__co_guard_limit_set(long n);
/* Abort with the report of a coroutine whose slab stack's canary is broken
 * (async-signal-safe). */
WEFT_NORETURN void weft__co_canary_abort(const struct weft__co *co);

/* ---- slab.c ------------------------------------------------------------------ */
/* A stack of at least `cls` usable bytes (page-rounded; `ps` the page size)
 * from a slab, its canary written. 0 or -ENOMEM. */
int weft__co_slab_get(struct weft__co_stack *s, size_t cls, size_t ps);
/* Give it back to its slab (unmapped with the slab's last stack). */
void weft__co_slab_put(struct weft__co_stack *s);
/* True while a slab stack's canary is intact. */
bool weft__co_canary_ok(const struct weft__co_stack *s);
const void *weft__co_canary_addr(const struct weft__co_stack *s);
/* Slab stacks handed out now (cached ones included), and slabs mapped. */
long weft__co_stacks_slab(void);
long weft__co_slabs_mapped(void);

#endif
