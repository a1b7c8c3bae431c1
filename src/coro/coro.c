/* SPDX-License-Identifier: MIT */
/* Stackful coroutines as a future type: the task's poll switches onto the
 * coroutine's stack, an await switches back while its future is pending.
 * The scheduler sees an ordinary future (docs/coro.md).
 *
 * A coroutine's life, by its state:
 *
 *   weft_go: stack mapped, state NEW, task spawned
 *   poll:    NEW       -> prepare the first frame, switch in: fn starts
 *            SUSPENDED -> switch in: the await polls its future again
 *            the coroutine runs until an await is pending (-> SUSPENDED,
 *            poll returns PENDING) or fn returns (-> DONE, the stack is
 *            released, poll returns READY with fn's int)
 *   drop:    DONE      -> nothing left (stack released at READY)
 *            NEW or SUSPENDED (the task was aborted) -> set `cancelled`
 *            and switch in: every await now drops its future and returns
 *            -ECANCELED without waiting, so fn runs to its end within
 *            this one switch; then the stack is released.
 *
 * The task layer never polls and drops at once, and never polls after the
 * drop, so the coroutine record needs no lock: one thread at a time owns
 * it, handed over by the task's state word (acquire in begin_poll, release
 * in end_poll: src/task/task.c), which also orders the coroutine's stack
 * memory between the workers it migrates across.
 *
 * This file: the switch's two sides, the future and its stackful type,
 * weft_go*, the await loop every blocking-style call is made of, and the
 * calls on time, tasks and futures (weft_co_sleep, weft_co_yield,
 * weft_co_join, weft_co_await, weft_co_await_timeout), which inline it.
 * The other blocking-style calls are in waits.c, calls.c and fs.c. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coro/coro.h"
#include "sched/runtime.h"
#include "sync/group_rt.h"
#include "task/task.h"
#include "util/alloc.h"
#include "weft/timer.h"

#if WEFT_CO_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#if WEFT_CO_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if WEFT_CO_ASAN || WEFT_CO_TSAN
#define CO_STACK_DEFAULT (WEFT_CO_STACK_DEFAULT * 4)   /* sanitizer frames are larger */
#else
#define CO_STACK_DEFAULT WEFT_CO_STACK_DEFAULT
#endif

/* The coroutine running on this thread (set by the worker side around the
 * switch in), for the awaits and the overflow handler: the task layer's
 * weft__stackful_pt.cur (task/stackful.h), which the worker loop's inline
 * resume sets too.
 *
 * This thread's errno (&errno), set once weft__co_thread_enter() has run
 * on it: NULL before (weft__stackful_pt.ep). The worker side reads errno
 * through it instead of calling __errno_location() at every resume (the
 * call, its PLT jump and its return), and the same load tells whether the
 * thread was entered. Sound because it is a thread-local holding the
 * address of this thread's own errno, read only by the worker side, whose
 * frame never changes threads; the coroutine side never uses it. */
struct weft__co *weft__co_running(void)
{
    return weft__stackful_pt.cur;
}

/* The first resume on this thread: enter it (the alternate signal stack;
 * errno as it was, whatever the set-up did to it) and note &errno. */
__attribute__((noinline, cold)) static int *co_thread_first(void)
{
    int *ep = &errno;
    int saved = *ep;

    weft__co_thread_enter();
    *ep = saved;
    weft__stackful_pt.ep = ep;
    return ep;
}

/* The coroutine side reads the running coroutine only through this: out of
 * line, and not pure (the empty asm may touch memory), so the compiler can
 * neither cache the thread pointer nor the result across a switch that may
 * have moved the coroutine to another thread. */
__attribute__((noinline)) static struct weft__co *co_self(void)
{
    struct weft__co *co = weft__stackful_pt.cur;

    __asm__ __volatile__("" : : : "memory");
    return co;
}

/* The coroutine side's errno, read and written out of line for the same
 * reason as co_self(): &errno may change across a switch (coro.h's
 * migration rule), and glibc declares __errno_location() const, so an
 * inlined access could reuse the first thread's address after a resume. */
__attribute__((noinline)) static int co_errno_get(void)
{
    __asm__ __volatile__("" : : : "memory");
    return errno;
}

__attribute__((noinline)) static void co_errno_set(int v)
{
    __asm__ __volatile__("" : : : "memory");
    errno = v;
}

/* The same for the calls in other files (waits.c); coro.c's own awaits
 * call the static pair. */
int weft__co_errno_get(void)
{
    return co_errno_get();
}

void weft__co_errno_set(int v)
{
    co_errno_set(v);
}

/* The blocking call a coroutine is in, for the task dump: each public call
 * names itself (CO_CALL at its top; weft_co_await() is "weft_co_await");
 * weft__async_parked() records it when the await parks. */
static const weft_async_site co_generic_site = { "weft_co_await", NULL, 0 };

/* ---- The two sides of a switch ------------------------------------------------ */

/* Worker side: run `co` until it parks or finishes. This frame never
 * changes threads, so errno and the running coroutine are plain
 * thread-locals here.
 * Inlined into the poll (and the drop), so that the poll is the only frame
 * between the task layer and the switch (coro.h: each return left after a
 * switch is a mispredicted one). */
__attribute__((always_inline)) static inline void co_resume(struct weft__co *co,
                                                           weft_context *cx)
{
    struct weft__co *prev = weft__stackful_pt.cur;
    struct weft__co_wside ws;
    int *ep = weft__stackful_pt.ep;
    int werr;
#if WEFT_CO_ASAN
    void *fake = NULL;
#endif

    if (__builtin_expect(ep == NULL, 0))
        ep = co_thread_first();
    werr = *ep;
    if (co->s.state == CO_NEW) {
        weft__co_prepare(co);
#if WEFT_CO_TSAN
        co->fiber = __tsan_create_fiber(0);
#endif
    }
    *ep = co->s.err;                   /* errno follows the coroutine */
    weft__stackful_pt.cur = co;
    ws.cx = cx;
    co->s.w = &ws;
    co->s.state = CO_RUNNING;
#if WEFT_CO_TSAN
    co->w_fiber = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(co->fiber, 0);
#endif
#if WEFT_CO_ASAN
    __sanitizer_start_switch_fiber(&fake, co->stack.lo, (size_t)(co->stack.hi - co->stack.lo));
#endif
    weft__co_jump(&ws.ctx, &co->s.c);
#if WEFT_CO_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    co->s.w = NULL;
    /* a slab stack has no guard page: check its canary at every switch out
     * (and that it is not parked below its stack) */
    if (co->s.on_slab &&
        (!weft__co_canary_ok(&co->stack) || (char *)weft__co_ctx_sp(&co->s.c) < co->stack.lo))
        weft__co_canary_abort(co);
    weft__stackful_pt.cur = prev;
    co->s.err = *ep;
    *ep = werr;
}

/* Coroutine side: park until the next resume (which may come on another
 * thread). Inlined into the awaits: after a resume the coroutine returns
 * once, from the blocking call to its caller. */
__attribute__((always_inline)) static inline void co_suspend(struct weft__co *co)
{
#if WEFT_CO_ASAN
    void *fake = NULL;
#endif

    co->s.state = CO_SUSPENDED;
#if WEFT_CO_TSAN
    __tsan_switch_to_fiber(co->w_fiber, 0);
#endif
#if WEFT_CO_ASAN
    __sanitizer_start_switch_fiber(&fake, co->w_bottom, co->w_size);
#endif
    weft__co_jump(&co->s.c, &co->s.w->ctx);
#if WEFT_CO_ASAN
    /* the worker that resumed us: its stack, for the next switch out */
    __sanitizer_finish_switch_fiber(fake, &co->w_bottom, &co->w_size);
#endif
}

/* Coroutine side: an abort requested while the coroutine runs (a
 * weft_join_abort() or a group's cancel from another thread, made while it
 * is not parked) is acted on at its next blocking call or
 * weft_co_cancelled(), as coro.h says ("every later blocking call returns
 * -ECANCELED at once"): it parks there, without a waker, as if the call
 * had to wait; the task layer sees the abort at the end of the poll and
 * drops the task on this same thread, and the drop resumes the coroutine
 * with `cancelled` set. So the call takes nothing (before the audit a
 * receive right after an abort took its message and returned 0), and the
 * task ends cancelled (its join: -ECANCELED), as when the abort finds the
 * coroutine parked. */
static inline void co_check_abort(struct weft__co *co)
{
    if (__builtin_expect(!co->s.cancelled && weft__task_abort_requested(), 0)) {
        weft__async_parked(co->site ? co->site : &co_generic_site);
        co_suspend(co);
    }
}

void weft__co_entry(struct weft__co *co)
{
#if WEFT_CO_ASAN
    __sanitizer_finish_switch_fiber(NULL, &co->w_bottom, &co->w_size);
#endif
    co->result = co->fn(co->arg);
    co->s.state = CO_DONE;
#if WEFT_CO_TSAN
    __tsan_switch_to_fiber(co->w_fiber, 0);
#endif
#if WEFT_CO_ASAN
    /* NULL: this fiber ends, ASan may free its fake stack */
    __sanitizer_start_switch_fiber(NULL, co->w_bottom, co->w_size);
#endif
    weft__co_jump(&co->s.c, &co->s.w->ctx);
    abort();                            /* a DONE coroutine is never resumed */
}

/* Worker side, once the coroutine is DONE: release what it held. */
static void co_release(struct weft__co *co)
{
#if WEFT_CO_TSAN
    if (co->fiber) {
        __tsan_destroy_fiber(co->fiber);
        co->fiber = NULL;
    }
#endif
    weft__co_stack_put(&co->stack);
}

/* ---- The future ------------------------------------------------------------------ */
typedef struct weft_coroutine {
    /* first, by weft__wrapper_name's rule (task/task.h): the task dump and
     * the trace show the coroutine's name (weft_go_options.name) */
    const char *display;
    struct weft__co co;
} weft_coroutine;

static weft_poll coroutine_poll(weft_coroutine *f, weft_context *cx, void *out)
{
    struct weft__co *co = &f->co;

    if (co->s.state != CO_DONE) {
        co_resume(co, cx);
        if (co->s.state != CO_DONE)
            return WEFT_PENDING;
        co_release(co);
    }
    memcpy(out, &co->result, sizeof(int));
    return WEFT_READY;
}

static void coroutine_drop(weft_coroutine *f)
{
    struct weft__co *co = &f->co;

    if (co->s.state != CO_DONE && co->stack.map) {
        /* aborted (or never started): fn runs to its end, every await
         * returning -ECANCELED at once */
        co->s.cancelled = true;
        co_resume(co, NULL);
        if (co->s.state != CO_DONE) {
            fprintf(stderr, "weft: coroutine \"%s\" parked while being cancelled\n",
                    co->name);
            abort();
        }
    }
    co_release(co);
}

#if WEFT_TASK_STACKFUL_INLINE
/* ---- The worker loop's resume (task/stackful.h) ----------------------------------
 * co_resume() cut at the switch and inlined into the worker loop
 * (weft__task_run_stackful()): the common steps are there, the rare ones
 * here. Same steps, same order (sanitizer builds never come here:
 * WEFT_TASK_STACKFUL_INLINE). */

static struct weft__co *co_of_rec(struct weft__stackful *s)
{
    return (struct weft__co *)(void *)s;       /* the head is its first member */
}

static void co_output(struct weft__task *t, const struct weft__co *co)
{
    memcpy((char *)t + weft__task_output_offset(t->type), &co->result, sizeof(int));
}

/* Before a resume of a record that is not SUSPENDED, or on a thread not
 * set up yet. */
static bool co_prepare(struct weft__task *t, struct weft__stackful *s)
{
    struct weft__co *co = co_of_rec(s);

    if (co->s.state == CO_DONE) {
        co_output(t, co);              /* coroutine_poll's answer: READY */
        return false;
    }
    if (weft__stackful_pt.ep == NULL)
        (void)co_thread_first();
    if (co->s.state == CO_NEW)
        weft__co_prepare(co);
    return true;
}

/* After a switch out of a coroutine on a slab stack: its canary (a slab
 * stack has no guard page), and that it is not parked below its stack. */
static void co_check(struct weft__stackful *s)
{
    struct weft__co *co = co_of_rec(s);

    if (!weft__co_canary_ok(&co->stack) || (char *)weft__co_ctx_sp(&co->s.c) < co->stack.lo)
        weft__co_canary_abort(co);
}

/* After a switch out of a coroutine that is DONE. */
static weft_poll co_finish(struct weft__task *t, struct weft__stackful *s)
{
    struct weft__co *co = co_of_rec(s);

    co_release(co);
    co_output(t, co);
    return WEFT_READY;
}
#endif

WEFT_DEFINE_FUTURE_THUNKS_(weft_coroutine, coroutine_poll, coroutine_drop)
/* A stackful type (task/stackful.h): the worker loop resumes it in its own
 * frame, with co_prepare, co_check and co_finish for the rare steps;
 * everyone else calls the poll. The record's offset in the cell: the
 * future's (weft__task_future_offset(), as a constant) plus the record's. */
#define CO_REC_OFF                                                            \
    (((sizeof(struct weft__task) + sizeof(struct weft__task_dbg) +            \
       _Alignof(weft_coroutine) - 1) & ~(_Alignof(weft_coroutine) - 1)) +     \
     offsetof(weft_coroutine, co) + offsetof(struct weft__co, s))
static const struct weft__stackful_type co_type = {
    { weft_coroutine__weft_poll, weft_coroutine__weft_drop, sizeof(weft_coroutine),
      _Alignof(weft_coroutine), sizeof(int), _Alignof(int), weft__wrapper_name },
#if WEFT_TASK_STACKFUL_INLINE
    CO_REC_OFF, co_prepare, co_check, co_finish
#else
    CO_REC_OFF, NULL, NULL, NULL
#endif
};
#define weft_coroutine_future (co_type.type)

/* Fill in a coroutine (not yet at its final address: the first frame is
 * prepared at the first resume, when it is) and map its stack. */
static int co_init(weft_coroutine *f, weft_runtime *rt, weft_co_fn *fn, void *arg,
                   const weft_go_options *opt)
{
    size_t size = opt && opt->stack_size ? opt->stack_size : weft__runtime_coro_stack_size(rt);
    int err;

    if (size == 0)
        size = CO_STACK_DEFAULT;

    if (fn == NULL || size < WEFT_CO_STACK_MIN || size > WEFT_CO_STACK_MAX)
        return -EINVAL;
    memset(f, 0, sizeof(*f));
    f->co.fn = fn;
    f->co.arg = arg;
    f->co.name = opt && opt->name ? opt->name : "coroutine";
    f->display = f->co.name;
    f->co.s.state = CO_NEW;
    err = weft__co_stack_get(&f->co.stack, size);
    if (err < 0)
        return err;
    f->co.s.on_slab = f->co.stack.slab != NULL;
    /* where the worker loop's resume finds the record (co_type.rec_off) */
    assert(CO_REC_OFF == weft__task_future_offset(&co_type.type) +
                             offsetof(weft_coroutine, co) + offsetof(struct weft__co, s));
    weft__co_install_handler();
#if WEFT_TASK_STACKFUL_INLINE
    /* relaxed: see weft__task_stackful_type (a worker that does not see it
     * yet polls through weft_coroutine_future's poll) */
    if (atomic_load_explicit(&weft__task_stackful_type, memory_order_relaxed) == NULL)
        atomic_store_explicit(&weft__task_stackful_type, &co_type.type, memory_order_relaxed);
#endif
    return 0;
}

WEFT_API int weft_go_opt(weft_runtime *rt, weft_co_fn *fn, void *arg,
                         const weft_go_options *opt, weft_join **join)
{
    weft_coroutine init;
    int err;

    if (rt == NULL)
        return -EINVAL;
    err = co_init(&init, rt, fn, arg, opt);
    if (err < 0)
        return err;
    if (join)
        err = weft_spawn(rt, &weft_coroutine_future, &init, join);
    else
        err = weft_spawn_detached(rt, &weft_coroutine_future, &init);
    if (err < 0)
        weft__co_stack_put(&init.co.stack);     /* not moved into weft */
    return err;
}

WEFT_API int weft_go(weft_runtime *rt, weft_co_fn *fn, void *arg, weft_join **join)
{
    if (join == NULL)
        return -EINVAL;
    return weft_go_opt(rt, fn, arg, NULL, join);
}

WEFT_API int weft_go_detached(weft_runtime *rt, weft_co_fn *fn, void *arg)
{
    return weft_go_opt(rt, fn, arg, NULL, NULL);
}

WEFT_API int weft_go_group(weft_group *g, weft_co_fn *fn, void *arg, const weft_go_options *opt)
{
    weft_coroutine init;
    int err;

    if (g == NULL)
        return -EINVAL;
    err = co_init(&init, weft__group_runtime(g), fn, arg, opt);
    if (err < 0)
        return err;
    err = weft_group_spawn(g, &weft_coroutine_future, &init);
    if (err < 0)
        weft__co_stack_put(&init.co.stack);
    return err;
}

WEFT_API int weft_co_block_on(weft_runtime *rt, weft_co_fn *fn, void *arg,
                              const weft_go_options *opt, int *result)
{
    weft_coroutine init;
    int out = 0, err;

    if (rt == NULL || weft__task_driver != NULL)
        return -EINVAL;
    err = co_init(&init, rt, fn, arg, opt);
    if (err < 0)
        return err;
    err = weft_block_on(rt, &weft_coroutine_future, &init, &out);
    /* weft_block_on() fails before spawning (the future was not moved) or
     * reports the spawned task's end: 0 or -ECANCELED */
    if (err < 0 && err != -ECANCELED)
        weft__co_stack_put(&init.co.stack);
    if (err == 0 && result)
        *result = out;
    return err;
}

/* ---- Awaiting ------------------------------------------------------------------------ */
typedef weft_poll co_poll_fn(void *self, weft_context *cx, void *out);

void weft__co_mark(const weft_async_site *site)
{
    struct weft__co *co = co_self();

    if (co)
        co->site = site;
}

#define CO_CALL()                                                             \
    static const weft_async_site co_site_ = { __func__, NULL, 0 };            \
    weft__co_mark(&co_site_)


/* The await with the coroutine's deadline (weft_co_deadline_set()) in
 * force: poll the future; while it is pending, a sleep until the deadline
 * (on this stack, registered on the first pending poll) wakes the task too.
 * Once the deadline has passed, the future gets one more real look (a
 * budget of its own, as weft_timeout gives its inner future), and a
 * PENDING then is -ETIMEDOUT. */
__attribute__((noinline)) static int co_await_deadline(struct weft__co *co, co_poll_fn *poll,
                                                       void *self, void *out)
{
    weft_sleep dl;
    int err = 0;

    weft_sleep_until_init(&dl, co->deadline);
    for (;;) {
        co_check_abort(co);
        if (co->s.cancelled) {
            err = -ECANCELED;
            break;
        }
        if (poll(self, co->s.w->cx, out) == WEFT_READY)
            break;
        if (weft_sleep_poll(&dl, co->s.w->cx) == WEFT_READY) {
            struct weft__coop_grant g;
            weft_poll p;

            weft__coop_grant_begin(co->s.w->cx, &g, true);
            p = poll(self, co->s.w->cx, out);
            weft__coop_grant_end(co->s.w->cx, &g);
            if (p != WEFT_READY)
                err = -ETIMEDOUT;
            break;
        }
        weft__async_parked(co->site ? co->site : &co_generic_site);
        co_suspend(co);
    }
    weft_sleep_drop(&dl);
    return err;
}

/* `timed`: the coroutine's deadline applies (every blocking call but a
 * yield). `site`: the call, for the task dump, when the caller did not mark
 * it with CO_CALL (one co_self() less). */
static inline int co_await_opt(co_poll_fn *poll, void (*drop)(void *), void *self, void *out,
                               bool timed, const weft_async_site *site)
{
    struct weft__co *co = co_self();
    /* coro.h: "blocking calls themselves leave errno alone". The polls run
     * on this side and make syscalls (a read or accept that first sees
     * EAGAIN, a close in a drop): whatever they leave in errno is put
     * back to the caller's value before the call returns. */
    int saved_errno = co_errno_get();
    int err = 0;

    if (co != NULL && site != NULL)
        co->site = site;
    if (co != NULL)
        co_check_abort(co);             /* before the deadline's choice */
    if (co == NULL) {
        err = -EINVAL;
    } else if (timed && co->deadline != 0 && !co->s.cancelled) {
        err = co_await_deadline(co, poll, self, out);
    } else {
        for (;;) {
            co_check_abort(co);
            if (co->s.cancelled) {
                err = -ECANCELED;
                break;
            }
            if (poll(self, co->s.w->cx, out) == WEFT_READY)
                break;
            weft__async_parked(co->site ? co->site : &co_generic_site);
            co_suspend(co);      /* co->s.w->cx is the new poll's context after this */
        }
    }
    if (drop)
        drop(self);
    co_errno_set(saved_errno);
    return err;
}

static int co_await(co_poll_fn *poll, void (*drop)(void *), void *self, void *out)
{
    return co_await_opt(poll, drop, self, out, true, NULL);
}

int weft__co_await(weft_poll (*poll)(void *self, weft_context *cx, void *out),
                   void (*drop)(void *self), void *self, void *out)
{
    return co_await(poll, drop, self, out);
}

int weft__co_await_at(weft_poll (*poll)(void *self, weft_context *cx, void *out),
                      void (*drop)(void *self), void *self, void *out,
                      const weft_async_site *site)
{
    return co_await_opt(poll, drop, self, out, true, site);
}

WEFT_API uint64_t weft_co_deadline_set(uint64_t deadline_ms)
{
    struct weft__co *co = co_self();
    uint64_t old;

    if (co == NULL)
        return 0;
    old = co->deadline;
    co->deadline = deadline_ms;
    return old;
}

WEFT_API uint64_t weft_co_deadline(void)
{
    struct weft__co *co = co_self();

    return co ? co->deadline : 0;
}

/* Room for an output the caller does not want. core.h lets `out` be NULL
 * only when output_size is 0; weft's own futures take NULL for any output,
 * but a future of the user's writes its output through `out` as given. So a
 * NULL `out` for an output gets a place to write to, and the output is
 * thrown away: a small one on this stack, a larger (or over-aligned) one
 * on the heap. */
#define CO_SCRATCH 64
typedef union co_scratch {
    max_align_t align;
    unsigned char bytes[CO_SCRATCH];
} co_scratch;

/* -EINVAL for what cannot be polled at all (nothing dropped: it stays the
 * caller's); -ENOMEM when the output's room cannot be allocated (the
 * future is dropped unpolled); else 0 with *out pointing to some room. */
static int co_future_out(const weft_future_type *type, void *future, void **out,
                         co_scratch *small, void **heap)
{
    *heap = NULL;
    if (type == NULL || type->poll == NULL || future == NULL)
        return -EINVAL;
    if (*out != NULL || type->output_size == 0)
        return 0;
    if (type->output_size <= sizeof(*small) && type->output_align <= _Alignof(co_scratch)) {
        *out = small;
        return 0;
    }
    *heap = weft__aligned_alloc(type->output_size,
                                type->output_align > _Alignof(max_align_t)
                                    ? type->output_align : _Alignof(max_align_t));
    if (*heap == NULL) {
        if (type->drop)
            type->drop(future);
        return -ENOMEM;
    }
    *out = *heap;
    return 0;
}

static void co_future_out_free(const weft_future_type *type, void *heap)
{
    if (heap)
        weft__aligned_free(heap, type->output_align > _Alignof(max_align_t)
                                     ? type->output_align : _Alignof(max_align_t));
}

WEFT_API int weft_co_await(const weft_future_type *type, void *future, void *out)
{
    co_scratch small;
    void *heap;
    int err = co_future_out(type, future, &out, &small, &heap);

    if (err < 0)
        return err;
    weft__co_mark(&co_generic_site);
    err = co_await(type->poll, type->drop, future, out);
    co_future_out_free(type, heap);
    return err;
}

WEFT_API int weft_co_await_fn(weft_poll (*poll)(void *self, weft_context *cx, void *out),
                              void (*drop)(void *self), void *self, void *out)
{
    if (poll == NULL)
        return -EINVAL;
    weft__co_mark(&co_generic_site);
    return co_await(poll, drop, self, out);
}

WEFT_API bool weft_co_cancelled(void)
{
    struct weft__co *co = co_self();

    if (co == NULL)
        return false;
    co_check_abort(co);                 /* an abort made while we run */
    return co->s.cancelled;
}

WEFT_API bool weft_co_is_coroutine(void)
{
    return co_self() != NULL;
}

WEFT_API const char *weft_co_name(void)
{
    struct weft__co *co = co_self();

    return co ? co->name : NULL;
}

/* ---- Blocking-style calls: a thunk and an await each ---------------------------------- */
static weft_poll sleep_thunk(void *self, weft_context *cx, void *out)
{
    (void)out;
    return weft_sleep_poll(self, cx);
}

static void sleep_drop(void *self)
{
    weft_sleep_drop(self);
}

WEFT_API int weft_co_sleep(uint64_t ms)
{
    CO_CALL();
    weft_sleep s;

    weft_sleep_init(&s, ms);
    return co_await(sleep_thunk, sleep_drop, &s, NULL);
}

/* The yield: co_await_opt() of a weft_yield, unrolled. The generic loop
 * would run: cancelled? -ECANCELED; poll (PENDING, the task requeued at
 * the back); park; and after the resume: cancelled? -ECANCELED; poll again,
 * which a weft_yield answers READY without looking at anything (its
 * `yielded` is set); no drop (a weft_yield has none). So after the resume
 * only the cancelled check is left; the second poll, the loop and the
 * thunk are the instructions saved on every yield. No deadline: a yield is
 * not a wait for something (coro.h).
 *
 * The first poll is inline too: weft_yield_poll() asks the task layer to
 * requeue the task at the back (env->yielded) when the context's waker is
 * the polled task's own, which it always is here (the task layer polls a
 * coroutine with its own context); anything else goes through
 * weft_yield_poll() itself. And the running coroutine is read directly, not through
 * co_self(): this is the function's one read of it, before its switch (a
 * read after the switch could be served from the thread it left). */
WEFT_API int weft_co_yield(void)
{
    static const weft_async_site site = { __func__, NULL, 0 };   /* CO_CALL's */
    struct weft__co *co = weft__stackful_pt.cur;
    struct weft__task_env *env;
    weft_context *cx;

    if (co == NULL)
        return -EINVAL;
    co->site = &site;
    if (co->s.cancelled)
        return -ECANCELED;
    /* co->s.w->cx is never NULL here: only a drop resumes with a NULL context,
     * and a drop sets `cancelled` first */
    cx = co->s.w->cx;
    env = cx->priv;
    if (env != NULL && cx->waker == env->waker) {
        /* No look at an abort made while we ran: this path parks anyway, the
         * task layer sees the abort at the end of this poll and drops the
         * task, and the drop resumes us with `cancelled` set (-ECANCELED
         * below), as co_check_abort() would. */
        env->yielded = true;
    } else {
        weft_yield y;

        if (weft__task_abort_requested()) {
            co_check_abort(co);
            return -ECANCELED;
        }

        weft_yield_init(&y);
        if (weft_yield_poll(&y, cx) == WEFT_READY)
            return 0;
    }
    weft__task_parked(&site);        /* weft__async_parked(), inline */
    co_suspend(co);
    return co->s.cancelled ? -ECANCELED : 0;
}

struct join_await {
    weft_join *j;
    void *out;
    int result;
};

static weft_poll join_thunk(void *self, weft_context *cx, void *out)
{
    struct join_await *a = self;

    (void)out;
    return weft_join_poll(a->j, cx, &a->result, a->out);
}

WEFT_API int weft_co_join(weft_join *join, void *out)
{
    CO_CALL();
    struct join_await a = { join, out, 0 };
    int err;

    if (join == NULL)
        return -EINVAL;
    err = co_await(join_thunk, NULL, &a, NULL);
    return err < 0 ? err : a.result;
}

/* ---- Any future, with a timeout ----------------------------------------------------- */
struct timeout_await {
    weft_timeout t;
    int result;
};

static weft_poll timeout_thunk(void *self, weft_context *cx, void *out)
{
    struct timeout_await *a = self;

    return weft_timeout_poll(&a->t, cx, &a->result, out);
}

static void timeout_drop(void *self)
{
    weft_timeout_drop(&((struct timeout_await *)self)->t);
}

WEFT_API int weft_co_await_timeout(const weft_future_type *type, void *future, void *out,
                                   uint64_t ms)
{
    CO_CALL();
    struct timeout_await a;
    co_scratch small;
    void *heap;
    int err = co_future_out(type, future, &out, &small, &heap);

    if (err < 0)
        return err;
    /* the timeout owns the future from here: it drops it exactly once */
    weft_timeout_init(&a.t, type, future, ms);
    a.result = 0;
    err = co_await(timeout_thunk, timeout_drop, &a, out);
    co_future_out_free(type, heap);
    return err < 0 ? err : a.result;
}
