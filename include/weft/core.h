/* SPDX-License-Identifier: MIT */
/* weft/core.h - the protocol every part of weft speaks: poll results,
 * wakers, contexts, future type descriptors, async-function macros, errors,
 * versions and the allocation hook.
 *
 * Thread rules in one line: wakers may be used from any thread; a future is
 * polled by one thread at a time (its owner's). */
#ifndef WEFT_CORE_H
#define WEFT_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(WEFT_STATIC_DEFINE)
#define WEFT_API
#elif defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

/* ---- Versions ------------------------------------------------------------ */
#if defined(__GNUC__) && __GNUC__ >= 7 || defined(__clang__)
#define WEFT_FALLTHROUGH __attribute__((fallthrough))
#else
#define WEFT_FALLTHROUGH ((void)0)
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0
#define WEFT_VERSION_STRING "0.1.0"
#define WEFT_VERSION_HEX \
    ((WEFT_VERSION_MAJOR << 16) | (WEFT_VERSION_MINOR << 8) | WEFT_VERSION_PATCH)

/* The version of the library linked in, as WEFT_VERSION_HEX would spell it
 * (compare with the macro to detect a header/library mismatch). Thread: any. */
WEFT_API unsigned weft_version(void);
/* The same version as "MAJOR.MINOR.PATCH"; a static string. Thread: any. */
WEFT_API const char *weft_version_string(void);

/* ---- Errors -------------------------------------------------------------- */
/* Every weft action returns 0 (or a count) on success and a negative errno on
 * failure. weft_strerror() names each code weft returns: -EINVAL (bad
 * argument or misuse), -ENOMEM, -ECANCELED (task aborted or cancelled at
 * shutdown), -ESHUTDOWN (runtime shut down), -EAGAIN (not ready yet, try
 * again), -ETIMEDOUT, -EPIPE (closed channel), -EBUSY, -EDEADLK, -EOVERFLOW
 * (a broadcast receiver lagged), and the errno of a failed system call that
 * a file helper passes through. Accepts the code with either sign; returns
 * a static string ("unknown error" for codes it cannot name). Thread: any. */
WEFT_API const char *weft_strerror(int err);

/* ---- Allocation hook ------------------------------------------------------ */
/* Every allocation weft makes goes through one hook. `malloc` returns memory
 * aligned for any standard type, or NULL; `free` accepts NULL. `ctx` is
 * passed back unchanged. */
typedef struct weft_allocator {
    void *(*malloc)(void *ctx, size_t size);
    void (*free)(void *ctx, void *ptr);
    void *ctx;
} weft_allocator;

/* Install `a` (copied), or restore libc's malloc/free when `a` is NULL.
 * Returns 0, or -EINVAL when a function is missing. Call it only while no
 * weft object exists (memory is freed with the hook that is current then).
 * Thread: any, but not concurrently with any other weft call. */
WEFT_API int weft_set_allocator(const weft_allocator *a);

/* ---- Poll results --------------------------------------------------------- */
typedef enum weft_poll {
    WEFT_PENDING = 0,   /* not done; the context's waker will be woken */
    WEFT_READY = 1      /* done; the output has been written */
} weft_poll;

/* ---- Wakers ---------------------------------------------------------------
 * A waker is a pair {data, vtable} that says "poll this task again". It is a
 * value: copying the struct does not add a reference, weft_waker_clone()
 * does. The four operations mirror Rust's RawWakerVTable:
 *   clone        new reference to the same task
 *   wake         wake it and consume this reference
 *   wake_by_ref  wake it, keep this reference
 *   drop         release this reference
 * Any thread may wake any number of times; waking a completed task is a
 * harmless no-op. A waker whose vtable is NULL is empty: every operation on
 * it does nothing. */
typedef struct weft_waker weft_waker;
typedef struct weft_waker_vtable {
    weft_waker (*clone)(const void *data);
    void (*wake)(const void *data);
    void (*wake_by_ref)(const void *data);
    void (*drop)(const void *data);
} weft_waker_vtable;

struct weft_waker {
    const void *data;
    const weft_waker_vtable *vtable;
};

#define WEFT_WAKER_EMPTY ((weft_waker){ NULL, NULL })

/* A new reference to the same task (empty if `w` is empty). Thread: any. */
static inline weft_waker weft_waker_clone(const weft_waker *w)
{
    return w->vtable ? w->vtable->clone(w->data) : WEFT_WAKER_EMPTY;
}

/* Wake and consume: *w is empty afterwards. Thread: any. */
static inline void weft_waker_wake(weft_waker *w)
{
    weft_waker tmp = *w;

    *w = WEFT_WAKER_EMPTY;
    if (tmp.vtable)
        tmp.vtable->wake(tmp.data);
}

/* Wake, keeping the reference. Thread: any. */
static inline void weft_waker_wake_by_ref(const weft_waker *w)
{
    if (w->vtable)
        w->vtable->wake_by_ref(w->data);
}

/* Release the reference; *w is empty afterwards, so dropping twice is safe.
 * Thread: any. */
static inline void weft_waker_drop(weft_waker *w)
{
    weft_waker tmp = *w;

    *w = WEFT_WAKER_EMPTY;
    if (tmp.vtable)
        tmp.vtable->drop(tmp.data);
}

/* True when both wake the same task (same data and vtable): a future that
 * already stored a clone of `a` need not replace it with `b`. */
static inline bool weft_waker_will_wake(const weft_waker *a, const weft_waker *b)
{
    return a->data == b->data && a->vtable == b->vtable;
}

/* A waker that does nothing (no reference, nothing to drop); for tests and
 * for polling a future by hand. Thread: any. */
WEFT_API weft_waker weft_waker_noop(void);

/* ---- Context ---------------------------------------------------------------
 * What a poll receives: the waker of the task being polled, borrowed for the
 * duration of the poll. Clone it to keep it. */
typedef struct weft_context {
    const weft_waker *waker;
    /* private: may change in any release */
    void *priv;
} weft_context;

/* A context around `waker`, for polling a future by hand. */
static inline weft_context weft_context_from_waker(const weft_waker *waker)
{
    return (weft_context){ waker, NULL };
}

/* The waker of the task being polled, borrowed: valid until poll returns. */
static inline const weft_waker *weft_context_waker(const weft_context *cx)
{
    return cx->waker;
}

/* ---- Future types ----------------------------------------------------------
 * A future is a plain struct; its type descriptor tells weft how to drive and
 * store it. poll() returns WEFT_READY after writing `output_size` bytes to
 * `out`, or WEFT_PENDING after arranging for cx's waker to be woken. drop()
 * (may be NULL) releases what the future holds; it is called exactly once by
 * weft, in any state: never polled, pending, or after READY. `out` may be NULL
 * when output_size is 0. */
typedef struct weft_future_type {
    weft_poll (*poll)(void *self, weft_context *cx, void *out);
    void (*drop)(void *self);
    size_t size;            /* sizeof the future struct: 1 .. WEFT_FUTURE_MAX_SIZE */
    size_t align;           /* a power of two, at most 4096 */
    size_t output_size;     /* 0 .. WEFT_FUTURE_MAX_SIZE */
    size_t output_align;    /* a power of two, at most 4096 (1 if no output) */
    const char *name;       /* for diagnostics */
} weft_future_type;

#define WEFT_FUTURE_MAX_SIZE ((size_t)1 << 30)

/* Define `const weft_future_type NAME_future` for the struct type NAME, with
 *   weft_poll poll_fn(NAME *self, weft_context *cx, void *out);
 *   void drop_fn(NAME *self);      (or NULL)
 * and output type OUT (WEFT_DEFINE_FUTURE_VOID when there is none). The
 * generated thunks are type-checked: no function pointer casts. */
#define WEFT_DEFINE_FUTURE_(NAME, POLL, DROP, OSIZE, OALIGN)                  \
    static weft_poll NAME##__weft_poll(void *self, weft_context *cx,          \
                                       void *out)                             \
    {                                                                         \
        return POLL((NAME *)self, cx, out);                                   \
    }                                                                         \
    static void NAME##__weft_drop(void *self)                                 \
    {                                                                         \
        void (*drop_fn)(NAME *) = DROP;                                       \
        if (drop_fn)                                                          \
            drop_fn((NAME *)self);                                            \
    }                                                                         \
    const weft_future_type NAME##_future = {                                  \
        NAME##__weft_poll, NAME##__weft_drop, sizeof(NAME), _Alignof(NAME),   \
        (OSIZE), (OALIGN), #NAME                                              \
    }
#define WEFT_DEFINE_FUTURE(NAME, POLL, DROP, OUT) \
    WEFT_DEFINE_FUTURE_(NAME, POLL, DROP, sizeof(OUT), _Alignof(OUT))
#define WEFT_DEFINE_FUTURE_VOID(NAME, POLL, DROP) \
    WEFT_DEFINE_FUTURE_(NAME, POLL, DROP, 0, 1)

/* ---- Async functions -------------------------------------------------------
 * Switch-based resume points, as in protothreads: an async function is a
 * struct whose fields are its locals (those that live across an await) plus
 * a weft_async, and a poll function shaped like this:
 *
 *     WEFT_BEGIN(&f->co);
 *     ...                                   code run once
 *     WEFT_AWAIT(&f->co, child_poll(&f->child, cx, &f->result));
 *     ...                                   runs after child is READY
 *     WEFT_END(&f->co);                     returns WEFT_READY
 *
 * WEFT_AWAIT evaluates its expression (a weft_poll) each time the function
 * is resumed at that point and returns WEFT_PENDING while it is pending.
 * Rules: no `switch` statement may enclose an await inside the function;
 * plain locals do not survive an await; one await per line. Zero-initialise
 * the weft_async (a designated initializer does it). Polling after WEFT_END
 * returns WEFT_READY again without running anything. */
typedef struct weft_async {
    unsigned line;          /* 0: not started; WEFT_ASYNC_DONE: finished */
} weft_async;

#define WEFT_ASYNC_DONE 0xffffffffu

#define WEFT_BEGIN(co)                                                        \
    switch ((co)->line) {                                                     \
    case WEFT_ASYNC_DONE:                                                     \
        return WEFT_READY;                                                    \
    case 0:

#define WEFT_AWAIT(co, expr)                                                  \
    do {                                                                      \
        (co)->line = __LINE__;                                                \
        WEFT_FALLTHROUGH;                                                     \
    case __LINE__:                                                            \
        if ((expr) == WEFT_PENDING)                                           \
            return WEFT_PENDING;                                              \
    } while (0)

/* (the leading `;` lets a label stand right before WEFT_END) */
#define WEFT_END(co)                                                          \
        ;                                                                     \
        WEFT_FALLTHROUGH;                                                     \
    default:                                                                  \
        break;                                                                \
    }                                                                         \
    (co)->line = WEFT_ASYNC_DONE;                                             \
    return WEFT_READY

/* True once the async function has run to WEFT_END. */
#define WEFT_ASYNC_IS_DONE(co) ((co)->line == WEFT_ASYNC_DONE)

/* ---- Cooperative budget ----------------------------------------------------
 * A future that can be ready many times in a row (a channel that never
 * empties) would let its task run forever. Each poll of a task gets a budget
 * of operations; a leaf future calls weft_coop_proceed() before completing an
 * operation and, when it returns false, returns WEFT_PENDING without doing
 * anything (the task has been woken already and goes to the back of the
 * run queue). Outside a weft worker it always returns true. A leaf spends
 * its unit whether or not it then finds something ready; the combinators
 * (weft/group.h, weft_timeout) account for that: see their fairness rule.
 * Thread: the one polling. */
WEFT_API bool weft_coop_proceed(weft_context *cx);

/* ---- yield_now --------------------------------------------------------------
 * A future that is pending once (waking itself) and then ready, so that
 * other tasks run in between. Under a weft runtime the task goes to the back
 * of the run queue. Output: none. Dropping it is always safe (holds nothing). */
typedef struct weft_yield {
    /* private: may change in any release */
    bool yielded;
} weft_yield;

static inline void weft_yield_init(weft_yield *y)
{
    y->yielded = false;
}

WEFT_API weft_poll weft_yield_poll(weft_yield *y, weft_context *cx);

static inline void weft_yield_drop(weft_yield *y)
{
    (void)y;
}

/* Await a fresh yield inside an async function; `y` is a weft_yield field. */
#define WEFT_YIELD(co, y, cx)                                                 \
    do {                                                                      \
        weft_yield_init(y);                                                   \
        WEFT_AWAIT(co, weft_yield_poll((y), (cx)));                           \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif /* WEFT_CORE_H */
