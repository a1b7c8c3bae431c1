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

/* WEFT_API marks what the library exports (it is built with hidden
 * visibility); defining WEFT_STATIC_DEFINE before including weft makes it
 * expand to nothing. */
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
 * again), -ETIMEDOUT, -EPIPE (closed channel), -EDEADLK (weft_join_wait()
 * on a current-thread runtime that no thread runs), -EOVERFLOW (a broadcast
 * receiver lagged), and the errno of a failed system call that a socket or
 * file helper passes through (-EBADF for a closed socket, -ECONNRESET, ...).
 * Name lookups (weft_resolve_init() in weft/net.h) add the three failures
 * no errno describes, numbered above every errno value:
 *   WEFT_EAI_NONAME  no such host, or it has no address of the family asked
 *                    for (getaddrinfo's EAI_NONAME, EAI_NODATA, EAI_ADDRFAMILY)
 *   WEFT_EAI_AGAIN   no answer for now (EAI_AGAIN: the name server timed out
 *                    or failed temporarily; trying again later may work)
 *   WEFT_EAI_FAIL    the name server failed for good (EAI_FAIL, and any
 *                    EAI_* code not mapped otherwise)
 * TLS (weft/tls.h, the optional libweft_tls) adds WEFT_TLS_EVERIFY (-5101),
 * WEFT_TLS_EPROTO (-5102) and WEFT_TLS_ETRUNCATED (-5103), named here too.
 * Accepts the code with either sign; returns a static string ("unknown
 * error" for codes it cannot name). Thread: any. */
WEFT_API const char *weft_strerror(int err);

#define WEFT_EAI_NONAME (-5001)
#define WEFT_EAI_AGAIN (-5002)
#define WEFT_EAI_FAIL (-5003)

/* ---- Allocation hook ------------------------------------------------------ */
/* Every allocation libweft makes goes through one hook, with two
 * exceptions that use libc's calloc/free: the descriptor table's pages
 * (made as sockets and streams are first registered, and kept for the
 * life of the process because handles are checked against them even
 * after their runtime is freed: they must not live in a hook's arena),
 * and libweft_tls (weft/tls.h: its configuration and stream
 * objects, and OpenSSL's own memory). `malloc` returns memory
 * aligned for any standard type (to _Alignof(max_align_t), as malloc does:
 * 16 bytes on x86-64), or NULL; weft asks for no more: an object it needs
 * more strictly aligned (cache-line-aligned runtime structures, futures of
 * over-aligned types) it over-allocates and aligns itself. `free` accepts
 * NULL and gets exactly the pointers `malloc` returned. `ctx` is passed back
 * unchanged. While no hook is installed (libc's own malloc/free), a worker
 * that spawns a burst of tasks (past a few hundred KiB of task cells) takes
 * the memory for their cells in 2 MiB blocks it maps itself (mmap, marked
 * for transparent huge pages: far fewer page faults), unmapped when the
 * runtime is freed; with a hook installed, those blocks come from the hook
 * like everything else. */
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

#ifdef __cplusplus
#define WEFT_WAKER_EMPTY (weft_waker{ NULL, NULL })
#else
#define WEFT_WAKER_EMPTY ((weft_waker){ NULL, NULL })
#endif

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

/* A context must carry a waker. A poll without one (a NULL context, or
 * one whose waker pointer is NULL, as in a zeroed weft_context) is misuse,
 * and every future of weft answers it the same way: READY at once, having
 * done nothing (no byte moved, no signal, connection or child status taken,
 * no job or lookup started, no waiter linked, no budget spent), so the same
 * future can then be polled with a proper context. A future with a result
 * (an int or ssize_t: every one of weft/lock.h, chan.h, group.h, net.h,
 * stream.h, bufio.h, signal.h, process.h, blocking.h, tls.h, and
 * weft_join_poll() and weft_timeout_poll()) writes -EINVAL there; one that
 * is READY already may answer its result instead. The three without one
 * answer plain READY: weft_yield_poll(), weft_sleep_poll() (its deadline is
 * not looked at) and weft_interval_tick() (*missed = 0, no tick taken: the
 * schedule stays as it was). A combinator (weft/group.h, weft_timeout)
 * answers it itself and never passes it on to the futures it drives.
 * An empty waker (vtable NULL) is a waker: a future parks with it and is
 * never woken. */

/* A context around `waker`, for polling a future by hand. */
static inline weft_context weft_context_from_waker(const weft_waker *waker)
{
    weft_context cx = { waker, NULL };

    return cx;
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
 * when output_size is 0.
 *
 * Moving a future: between *_init and its first poll a future may be moved
 * (copied to another place and used only there; weft_spawn() copies the
 * initial value into the task this way). From its first poll until *_drop it
 * must stay where it is: a pending future is linked into the object it waits
 * on (a channel's or lock's wait list, the timer wheel), which points back
 * at it. A copy is never a second future: of the two, use (and drop) one.
 *
 * Where drop() runs, and what it may call: a task's future is dropped on a
 * worker (or the thread driving a current-thread runtime), never during its
 * poll, except at shutdown, where the tasks left are dropped on the thread
 * calling weft_runtime_shutdown()/weft_runtime_free(). On a worker a drop
 * must not block: the blocking waits (weft_join_wait(), weft_group_free()
 * with live children, weft_group_join()) return -EINVAL there. At shutdown
 * they work, also for siblings of the same runtime not dropped yet (see
 * weft_runtime_shutdown() in weft/sched.h). A drop may always spawn (it
 * gets -ESHUTDOWN at shutdown), wake, abort, drop handles and futures.
 *
 * A descriptor is borrowed, never copied: a task (weft_spawn(),
 * weft_block_on(), weft_group_spawn(), ...) keeps a pointer to it and reads
 * it until the task's memory is released, which may be after the task
 * completed, after weft_block_on() returned, up to the release of the last
 * join handle or waker of the task, or weft_runtime_free(). Keep it alive
 * and unchanged that long: a static const descriptor (what
 * WEFT_DEFINE_FUTURE makes) always is; one built on the stack or edited
 * between spawns is not (the task's memory would be freed by the edited
 * size and alignment). */
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
 * generated thunks are type-checked: no function pointer casts.
 *
 * WEFT_DEFINE_FUTURE gives NAME_future external linkage, so that other files
 * can spawn it (declare it there as `extern const weft_future_type
 * NAME_future;`); the name then belongs to the whole program, and must not
 * clash with any other global symbol, a library's included. A descriptor
 * used only in its own file should be static: WEFT_DEFINE_FUTURE_STATIC and
 * WEFT_DEFINE_FUTURE_VOID_STATIC define the same descriptor with internal
 * linkage (weft's own sources use them for every descriptor that is not
 * public API, so a static libweft.a defines no name outside weft_). */
#ifdef __cplusplus
#define WEFT_ALIGNOF(T) alignof(T)
#else
#define WEFT_ALIGNOF(T) _Alignof(T)
#endif

#define WEFT_DEFINE_FUTURE_THUNKS_(NAME, POLL, DROP)                          \
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
    }
#define WEFT_DEFINE_FUTURE_INIT_(NAME, OSIZE, OALIGN)                         \
    {                                                                         \
        NAME##__weft_poll, NAME##__weft_drop, sizeof(NAME),                   \
        WEFT_ALIGNOF(NAME), (OSIZE), (OALIGN), #NAME                          \
    }
/* (the extern declaration gives the definition external linkage in C++ too,
 * where a namespace-scope const would otherwise be internal) */
#define WEFT_DEFINE_FUTURE_(NAME, POLL, DROP, OSIZE, OALIGN)                  \
    WEFT_DEFINE_FUTURE_THUNKS_(NAME, POLL, DROP)                              \
    extern const weft_future_type NAME##_future;                              \
    const weft_future_type NAME##_future =                                    \
        WEFT_DEFINE_FUTURE_INIT_(NAME, OSIZE, OALIGN)
#define WEFT_DEFINE_FUTURE_STATIC_(NAME, POLL, DROP, OSIZE, OALIGN)           \
    WEFT_DEFINE_FUTURE_THUNKS_(NAME, POLL, DROP)                              \
    static const weft_future_type NAME##_future =                             \
        WEFT_DEFINE_FUTURE_INIT_(NAME, OSIZE, OALIGN)

#define WEFT_DEFINE_FUTURE(NAME, POLL, DROP, OUT) \
    WEFT_DEFINE_FUTURE_(NAME, POLL, DROP, sizeof(OUT), WEFT_ALIGNOF(OUT))
#define WEFT_DEFINE_FUTURE_VOID(NAME, POLL, DROP) \
    WEFT_DEFINE_FUTURE_(NAME, POLL, DROP, 0, 1)
#define WEFT_DEFINE_FUTURE_STATIC(NAME, POLL, DROP, OUT) \
    WEFT_DEFINE_FUTURE_STATIC_(NAME, POLL, DROP, sizeof(OUT), WEFT_ALIGNOF(OUT))
#define WEFT_DEFINE_FUTURE_VOID_STATIC(NAME, POLL, DROP) \
    WEFT_DEFINE_FUTURE_STATIC_(NAME, POLL, DROP, 0, 1)

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
 * Rules:
 *   - no `switch` statement may enclose an await inside the function (its
 *     resume point would belong to that switch: WEFT_END catches the resume
 *     and aborts the process with a message naming the function);
 *   - plain locals do not survive an await, and a resume jumps past their
 *     declarations, so an initialiser (`int n = 0;`) before an await has
 *     not run when the code after it resumes: keep such values in the
 *     struct. GCC's -Wjump-misses-init (C only) flags every initialised
 *     local that a resume jumps over; weft builds its own code with it and
 *     recommends it for code that uses these macros;
 *   - one await per line (the line number is the resume point).
 * Zero-initialise the weft_async (a designated initializer does it). Polling
 * after WEFT_END returns WEFT_READY again without running anything. */
typedef struct weft_async {
    unsigned line;          /* 0: not started; WEFT_ASYNC_DONE: finished */
} weft_async;

#define WEFT_ASYNC_DONE 0xffffffffu

#if defined(__GNUC__) || defined(__clang__)
#define WEFT_NORETURN __attribute__((noreturn))
#else
#define WEFT_NORETURN
#endif

/* Called by WEFT_END when an async function is resumed at a line that has
 * no resume point in it (an await inside a switch statement, or a corrupted
 * weft_async): prints `func`, `file` and `line` to stderr and aborts. Not
 * for direct use. */
WEFT_API WEFT_NORETURN void weft__async_bad_resume(const char *func, const char *file,
                                                   unsigned line);

/* Where an await parked: WEFT_AWAIT keeps one of these (static, constant)
 * per await, and tells the task dump about it (weft/observe.h). */
typedef struct weft_async_site {
    const char *func;       /* __func__ of the async function */
    const char *file;       /* __FILE__; NULL for a coroutine's blocking call */
    unsigned line;          /* the await's line (its resume point) */
} weft_async_site;

/* Called by WEFT_AWAIT when its future returned PENDING: records `site` for
 * the task being polled on this thread (the first call of a poll is the
 * innermost await, the last the task's own). A no-op off the workers. Not
 * for direct use. Thread: the one polling. */
WEFT_API void weft__async_parked(const weft_async_site *site);

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
        if ((expr) == WEFT_PENDING) {                                         \
            static const weft_async_site weft__site_ = {                      \
                __func__, __FILE__, __LINE__                                  \
            };                                                                \
            weft__async_parked(&weft__site_);                                 \
            return WEFT_PENDING;                                              \
        }                                                                     \
    } while (0)

/* (the leading `;` lets a label stand right before WEFT_END; running off
 * the end and a `break` out of the body both finish the function; only a
 * resume at an unknown line reaches `default`) */
#define WEFT_END(co)                                                          \
        ;                                                                     \
        break;                                                                \
    default:                                                                  \
        weft__async_bad_resume(__func__, __FILE__, (co)->line);               \
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
 * The leaves that spend one: every future that can complete at its first
 * poll, fresh after fresh (the receives and locks of weft/lock.h and
 * weft/chan.h, a cancel or group wait, a blocking join, socket and stream
 * operations and connects, the buffered reads and writes, a process wait,
 * a sleep that is due when polled; not weft_join_poll(): see weft/task.h).
 * Thread: the one polling.
 *
 * Stress mode, for testing: when the environment variable WEFT_STRESS is
 * set (to anything but "" or "0") as weft_runtime_new() runs, in every build
 * type, every other weft_coop_proceed() call on that runtime's tasks returns
 * false (each task poll, and each child a combinator polls, starts on a
 * random turn), so every leaf operation returns WEFT_PENDING once before it
 * completes and the resume path of every await runs. `make test-stress` runs the test suite
 * so. */
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

/* Await a fresh yield inside an async function; `y` is a weft_yield field.
 * (The resume finds the yield made and is ready without a call: the same
 * answer weft_yield_poll() gives.) */
#define WEFT_YIELD(co, y, cx)                                                 \
    do {                                                                      \
        weft_yield_init(y);                                                   \
        WEFT_AWAIT(co, (y)->yielded ? WEFT_READY : weft_yield_poll((y), (cx))); \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif /* WEFT_CORE_H */
