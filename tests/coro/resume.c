/* SPDX-License-Identifier: MIT */
/* Where a coroutine is resumed from. The worker loop resumes it in its own
 * frame (task/stackful.h: the task layer's begin and end of the poll
 * around the coroutine's enter, the switch and its leave); a task taken
 * from the LIFO slot is resumed from the LIFO chain's frame, a
 * current-thread runtime's from its driver's, and an aborted one from its
 * drop (the future's own poll and drop). These tests mix all of them and
 * check what each resume must put back: the worker's errno and FP control
 * words, "no coroutine running" on the worker between polls, the
 * coroutine's own errno, words and name, and the cancellation rule, with
 * aborts racing yields (the yield storm also runs under TSan, where every
 * resume goes through the poll: sanitizer builds keep their fiber hooks
 * next to the switch). */
#include "coro_test.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>


#if defined(__x86_64__) && !(defined(WEFT_CO_NO_FP_SAVE) && WEFT_CO_NO_FP_SAVE) && \
    !WEFT_CO_UCONTEXT
#define FP_CHECKED 1
static unsigned csr_get(void)
{
    return __builtin_ia32_stmxcsr() & 0xffc0u;      /* control bits only */
}

static void csr_set(unsigned v)
{
    __builtin_ia32_ldmxcsr(v);
}
#else
#define FP_CHECKED 0
#endif

__attribute__((noinline)) static int errno_now(void)
{
    __asm__ __volatile__("" : : : "memory");
    return errno;
}

__attribute__((noinline)) static void errno_set(int v)
{
    __asm__ __volatile__("" : : : "memory");
    errno = v;
}

/* ---- A future that watches the worker between coroutine resumes ------------- */
static struct {
    atomic_int not_worker;       /* a poll saw a coroutine "running" */
    atomic_int errno_bad;        /* the worker's errno changed under it */
    atomic_int fp_bad;           /* the worker's words changed under it */
    atomic_int polls;
} watch;

typedef struct watcher {
    weft_async co;
    unsigned n, i;
    int my_errno;
    weft_yield y;
} watcher;

/* Each poll: no coroutine is running on this thread, and the errno this
 * future left on its worker at its last poll is still there (on 1 worker,
 * where only coroutine resumes and weft's own loop ran in between). */
static weft_poll watcher_poll(watcher *f, weft_context *cx, void *out)
{
    (void)out;
    atomic_fetch_add(&watch.polls, 1);
    if (weft_co_is_coroutine() || weft_co_name() != NULL)
        atomic_fetch_add(&watch.not_worker, 1);
#if FP_CHECKED
    if (csr_get() != 0x1f80u)
        atomic_fetch_add(&watch.fp_bad, 1);
#endif
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < f->n; f->i++) {
        errno_set(f->my_errno);
        WEFT_YIELD(&f->co, &f->y, cx);
        if (f->my_errno != 0 && errno_now() != f->my_errno)
            atomic_fetch_add(&watch.errno_bad, 1);
    }
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_VOID_STATIC(watcher, watcher_poll, NULL);

/* ---- Coroutines that check their own state at every resume ------------------- */
static struct {
    atomic_int bad;              /* errno, words or name wrong after a resume */
    atomic_int started, ended;
    atomic_int cancelled_seen;   /* an abort reached a blocking call */
    atomic_int yields;
} seen;

struct checker_arg {
    int id;
    unsigned n;
    weft_notify *ping, *pong;    /* NULL: yields only */
};

static int checker(void *arg)
{
    struct checker_arg *a = arg;
    char name[32];
    int err = 0;

    atomic_fetch_add(&seen.started, 1);
    snprintf(name, sizeof(name), "checker-%d", a->id);
#if FP_CHECKED
    /* a rounding mode of its own: round down, up or toward zero */
    csr_set(0x1f80u | ((unsigned)(1 + a->id % 3) << 13));
#endif
    for (unsigned i = 0; i < a->n; i++) {
        int mine = 100 + a->id * 7 + (int)i;

        errno_set(mine);
        if (a->ping != NULL && (i & 1)) {
            /* woken by the other one: a local wake, the LIFO slot */
            weft_notify_one(a->pong);
            err = weft_co_notify_wait(a->ping);
        } else {
            err = weft_co_yield();
        }
        if (err < 0)
            break;
        atomic_fetch_add(&seen.yields, 1);
        if (errno_now() != mine || !weft_co_is_coroutine() || weft_co_name() == NULL ||
            strcmp(weft_co_name(), name) != 0)
            atomic_fetch_add(&seen.bad, 1);
#if FP_CHECKED
        if (csr_get() != (0x1f80u | ((unsigned)(1 + a->id % 3) << 13)))
            atomic_fetch_add(&seen.bad, 1);
#endif
    }
    if (err < 0) {
        if (err != -ECANCELED || !weft_co_cancelled())
            atomic_fetch_add(&seen.bad, 1);
        atomic_fetch_add(&seen.cancelled_seen, 1);
        /* the rule: every later blocking call fails at once too */
        if (weft_co_yield() != -ECANCELED)
            atomic_fetch_add(&seen.bad, 1);
    }
    atomic_fetch_add(&seen.ended, 1);
    return a->id;
}

/* weft_go_options.name is not copied: one static name per id */
#define MAX_CHECKERS 256
static char checker_names[MAX_CHECKERS][32];

static weft_join *go_named(weft_runtime *rt, struct checker_arg *a)
{
    weft_join *j = NULL;

    ASSERT(a->id < MAX_CHECKERS);
    snprintf(checker_names[a->id], sizeof(checker_names[a->id]), "checker-%d", a->id);
    ASSERT_OK(weft_go_opt(rt, checker, a, &(weft_go_options){ .name = checker_names[a->id] },
                          &j));
    return j;
}

static void reset(void)
{
    memset(&watch, 0, sizeof(watch));
    memset(&seen, 0, sizeof(seen));
}

/* One worker: coroutines resumed from the loop's frame (yields) and from
 * the LIFO chain (a local notify wakes the other of a pair), and a future
 * polled in between that must find the worker as it left it. */
TEST(loop_and_lifo_resumes_put_the_worker_back)
{
    weft_runtime *rt = ct_runtime(1);
    enum { PAIRS = 4, SOLO = 4 };
    struct checker_arg args[2 * PAIRS + SOLO];
    weft_notify *ns[2 * PAIRS];
    weft_join *js[2 * PAIRS + SOLO], *wj;
    unsigned n = (unsigned)harness_scale(2000);

    reset();
    for (int i = 0; i < 2 * PAIRS; i++)
        ASSERT_OK(weft_notify_new(&ns[i]));
    for (int i = 0; i < 2 * PAIRS + SOLO; i++) {
        args[i] = (struct checker_arg){ .id = i, .n = n };
        if (i < 2 * PAIRS) {
            args[i].ping = ns[i];
            args[i].pong = ns[i ^ 1];
        }
    }
    ASSERT_OK(weft_spawn(rt, &watcher_future, &(watcher){ .n = 4 * n, .my_errno = 4242 }, &wj));
    for (int i = 0; i < 2 * PAIRS + SOLO; i++)
        js[i] = go_named(rt, &args[i]);
    for (int i = 0; i < 2 * PAIRS + SOLO; i++) {
        int out = -1;

        ASSERT_OK(weft_join_wait(js[i], &out));
        ASSERT_EQ(i, out);
        weft_join_drop(js[i]);
    }
    ASSERT_OK(weft_join_wait(wj, NULL));
    weft_join_drop(wj);
    ASSERT_EQ(0, atomic_load(&seen.bad));
    ASSERT_EQ(0, atomic_load(&watch.not_worker));
    ASSERT_EQ(0, atomic_load(&watch.errno_bad));
    ASSERT_EQ(0, atomic_load(&watch.fp_bad));
    ASSERT(atomic_load(&watch.polls) > 0);
    ASSERT_EQ(2 * PAIRS + SOLO, atomic_load(&seen.ended));
    for (int i = 0; i < 2 * PAIRS; i++)
        weft_notify_free(ns[i]);
    CT_FREE(rt);
}

/* Many workers, many yielding coroutines, futures among them, and a thread
 * aborting coroutines while they yield: each aborted one sees -ECANCELED
 * in the call it is in (and in every later one) and ends; the others end
 * normally; every function runs exactly once; nothing leaks. */
TEST(yield_storm_with_aborts)
{
    weft_runtime *rt = ct_runtime(4);
    int n = (int)harness_scale(200) < 16 ? 16 : (int)harness_scale(200);

    unsigned per = (unsigned)harness_scale(3000);
    struct checker_arg *args = calloc((size_t)n, sizeof(*args));
    weft_join **js = calloc((size_t)n, sizeof(*js));
    weft_join *wj[4];
    int aborted = 0, finished = 0;

    ASSERT(args != NULL && js != NULL);
    reset();
    for (int i = 0; i < 4; i++)
        ASSERT_OK(weft_spawn(rt, &watcher_future, &(watcher){ .n = per, .my_errno = 0 },
                             &wj[i]));
    for (int i = 0; i < n; i++) {
        /* every third one yields until it is aborted */
        args[i] = (struct checker_arg){ .id = i, .n = i % 3 == 0 ? UINT32_MAX : per };
        js[i] = go_named(rt, &args[i]);
    }
    /* abort those once the storm is under way */
    while (atomic_load(&seen.yields) < n * 10 && atomic_load(&seen.ended) < n)
        usleep(500);
    for (int i = 0; i < n; i += 3)
        weft_join_abort(js[i]);
    for (int i = 0; i < n; i++) {
        int out = -1, err = weft_join_wait(js[i], &out);

        if (err == -ECANCELED) {
            ASSERT_EQ(0, i % 3);
            aborted++;
        } else {
            ASSERT_OK(err);
            ASSERT_EQ(i, out);
            finished++;
        }
        weft_join_drop(js[i]);
    }
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(weft_join_wait(wj[i], NULL));
        weft_join_drop(wj[i]);
    }
    ASSERT_EQ((n + 2) / 3, aborted);
    ASSERT_EQ(n, aborted + finished);
    ASSERT_EQ(aborted, atomic_load(&seen.cancelled_seen));
    ASSERT_EQ(n, atomic_load(&seen.started));     /* each fn ran once */
    ASSERT_EQ(n, atomic_load(&seen.ended));
    ASSERT_EQ(0, atomic_load(&seen.bad));
    ASSERT_EQ(0, atomic_load(&watch.not_worker));
    ASSERT_EQ(0, atomic_load(&watch.fp_bad));
    free(args);
    free(js);
    CT_FREE(rt);
}

/* A current-thread runtime: its driver resumes from weft__sched_run_task()'s
 * frame (the same inlined resume, in a frame that returns each time), with
 * the user's own errno on the driving thread kept. */
TEST(current_thread_driver_resumes)
{
    weft_runtime *rt = ct_current_thread();
    struct checker_arg args[6];
    weft_join *js[6];

    reset();
    for (int i = 0; i < 6; i++) {
        args[i] = (struct checker_arg){ .id = i, .n = (unsigned)harness_scale(500) };
        js[i] = go_named(rt, &args[i]);
    }
    errno_set(5151);
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(5151, errno_now());
    for (int i = 0; i < 6; i++) {
        int out = -1;

        ASSERT_OK(weft_join_wait(js[i], &out));
        ASSERT_EQ(i, out);
        weft_join_drop(js[i]);
    }
    ASSERT_EQ(0, atomic_load(&seen.bad));
    ASSERT_EQ(6, atomic_load(&seen.ended));
    CT_FREE(rt);
}
