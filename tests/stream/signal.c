/* SPDX-License-Identifier: MIT */
/* Signals as futures (weft/signal.h): delivery in both flavours, sets of
 * several signals, several waiters, coalescing, cancel safety, the mask
 * restored by free, and no descriptor left behind.
 *
 * A signal that reaches a thread which does not block it takes its default
 * action: SIGINT, SIGUSR1 and SIGUSR2 kill the process, which fails the
 * test. So every test that sends one first makes sure it is blocked
 * everywhere (weft_signal_block() before the runtime's threads exist).
 * Multi-thread tests send with kill(getpid()): a process-directed signal
 * (as from a shell) is seen by the signalfd on whichever worker reads it;
 * raise() targets the calling thread only, which is the reading thread only
 * in the current-thread flavour. */
#include "stream_test.h"

#include <signal.h>

#define SIG_WAIT_MS 10000u

/* Receive one signal under a limit: the output (signo or -errno), or
 * -ETIMEDOUT. */
typedef struct sig_task {
    weft_signal *sig;
    uint64_t ms;
    weft_signal_recv r;
    weft_timeout t;
    weft_signal_info info;
    int *started;                     /* if set: raised once the receive holds its reference */
    bool init;
    int res;
} sig_task;

static weft_poll sig_task_poll(sig_task *f, weft_context *cx, int *out)
{
    int err = 0;

    if (!f->init) {
        f->res = -12345;
        weft_signal_recv_init(&f->r, f->sig, &f->info);
        weft_timeout_init(&f->t, &weft_signal_recv_future, &f->r, f->ms);
        f->init = true;
        if (f->started)
            __atomic_store_n(f->started, 1, __ATOMIC_RELEASE);
    }
    if (weft_timeout_poll(&f->t, cx, &err, &f->res) == WEFT_PENDING)
        return WEFT_PENDING;
    *out = err ? err : f->res;
    return WEFT_READY;
}

static void sig_task_drop(sig_task *f)
{
    if (f->init) {
        weft_timeout_drop(&f->t);
        weft_signal_recv_drop(&f->r);  /* idempotent */
    }
}

WEFT_DEFINE_FUTURE(sig_task, sig_task_poll, sig_task_drop, int);

/* Spawn a receive with a limit; the join handle. */
static weft_join *spawn_recv(weft_runtime *rt, weft_signal *sig, uint64_t ms)
{
    weft_join *j;

    ASSERT_OK(weft_spawn(rt, &sig_task_future, &(sig_task){ .sig = sig, .ms = ms }, &j));
    return j;
}

static int join_int(weft_join *j)
{
    int out = -12345;

    ASSERT_OK(weft_join_wait(j, &out));
    weft_join_drop(j);
    return out;
}

static bool is_blocked(int sig)
{
    sigset_t cur;

    ASSERT_OK(pthread_sigmask(SIG_BLOCK, NULL, &cur));
    return sigismember(&cur, sig) == 1;
}

static void unblock(int sig)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, sig);
    ASSERT_OK(pthread_sigmask(SIG_UNBLOCK, &set, NULL));
}

static void sleep_ms(unsigned ms)
{
    usleep(ms * 1000u);
}

/* Current-thread flavour: the signalfd is a source like any other; a raise()
 * before the wait and one that comes while the runtime waits in epoll. */
TEST(signal_current_thread_raise)
{
    static const int sigs[] = { SIGUSR1 };
    weft_runtime *rt = nt_runtime(true);
    weft_signal *sig;
    sig_task f = { .ms = SIG_WAIT_MS };
    int out = 0;

    ASSERT_OK(weft_signal_new(rt, sigs, 1, &sig));
    ASSERT(is_blocked(SIGUSR1));
    ASSERT_OK(raise(SIGUSR1));        /* pending before anyone waits */
    f.sig = sig;
    ASSERT_OK(weft_block_on(rt, &sig_task_future, &f, &out));
    ASSERT_EQ(SIGUSR1, out);
    ASSERT_EQ(-EAGAIN, weft_signal_try_recv(sig, NULL));
    weft_signal_free(sig);
    ASSERT(!is_blocked(SIGUSR1));
    weft_runtime_free(rt);
}

/* A task sending to its own thread while the receive waits. */
typedef struct raiser {
    weft_async co;
    weft_sleep s;
    int sig;
} raiser;

static weft_poll raiser_poll(raiser *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    weft_sleep_init(&f->s, 30);
    WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
    raise(f->sig);
    WEFT_END(&f->co);
}

static void raiser_drop(raiser *f)
{
    weft_sleep_drop(&f->s);
}

WEFT_DEFINE_FUTURE_VOID(raiser, raiser_poll, raiser_drop);

TEST(signal_current_thread_wakes_waiter)
{
    static const int sigs[] = { SIGUSR2 };
    weft_runtime *rt = nt_runtime(true);
    weft_signal *sig;
    weft_join *j;
    int out = 0;

    ASSERT_OK(weft_signal_new(rt, sigs, 1, &sig));
    ASSERT_OK(weft_spawn_detached(rt, &raiser_future, &(raiser){ .sig = SIGUSR2 }));
    ASSERT_OK(weft_spawn(rt, &sig_task_future, &(sig_task){ .sig = sig, .ms = SIG_WAIT_MS },
                         &j));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_join_try(j, &out));
    weft_join_drop(j);
    ASSERT_EQ(SIGUSR2, out);
    weft_signal_free(sig);
    weft_runtime_free(rt);
}

/* Multi-thread: kill() to the process while a worker waits; the details. */
TEST(signal_multi_thread_kill)
{
    static const int sigs[] = { SIGUSR1 };
    weft_runtime *rt;
    weft_signal *sig;
    weft_join *j;

    ASSERT_OK(weft_signal_block(sigs, 1));   /* before the workers exist */
    rt = nt_runtime(false);
    ASSERT_OK(weft_signal_new(rt, sigs, 1, &sig));
    j = spawn_recv(rt, sig, SIG_WAIT_MS);
    sleep_ms(50);                     /* most likely waiting by now */
    ASSERT_OK(kill(getpid(), SIGUSR1));
    ASSERT_EQ(SIGUSR1, join_int(j));
    weft_signal_free(sig);
    ASSERT(is_blocked(SIGUSR1));      /* blocked by us, not by weft: kept */
    weft_runtime_free(rt);
}

/* The info the kernel gives: sender, code, queued value. */
typedef struct info_task {
    weft_async co;
    weft_signal *sig;
    weft_signal_recv r;
    weft_signal_info *info;
    int res;
} info_task;

static weft_poll info_task_poll(info_task *f, weft_context *cx, int *out)
{
    WEFT_BEGIN(&f->co);
    weft_signal_recv_init(&f->r, f->sig, f->info);
    WEFT_AWAIT(&f->co, weft_signal_recv_poll(&f->r, cx, &f->res));
    *out = f->res;
    WEFT_END(&f->co);
}

static void info_task_drop(info_task *f)
{
    weft_signal_recv_drop(&f->r);
}

WEFT_DEFINE_FUTURE(info_task, info_task_poll, info_task_drop, int);

static int recv_info(weft_runtime *rt, weft_signal *sig, weft_signal_info *info)
{
    int out = -12345;

    ASSERT_OK(weft_block_on(rt, &info_task_future, &(info_task){ .sig = sig, .info = info },
                            &out));
    return out;
}

TEST(signal_info_and_realtime_queue)
{
    const int sigs[] = { SIGUSR1, SIGRTMIN };
    weft_runtime *rt = nt_runtime(true);
    weft_signal *sig;
    weft_signal_info info;

    ASSERT_OK(weft_signal_new(rt, sigs, 2, &sig));
    ASSERT_OK(kill(getpid(), SIGUSR1));
    memset(&info, 0, sizeof(info));
    ASSERT_EQ(SIGUSR1, recv_info(rt, sig, &info));
    ASSERT_EQ(SIGUSR1, info.signo);
    ASSERT_EQ(SI_USER, info.code);
    ASSERT_EQ(getpid(), info.pid);
    ASSERT_EQ(getuid(), info.uid);
    /* real-time signals queue: each one is received, in order, with its value */
    for (int v = 1; v <= 3; v++)
        ASSERT_OK(sigqueue(getpid(), SIGRTMIN, (union sigval){ .sival_int = v }));
    for (int v = 1; v <= 3; v++) {
        ASSERT_EQ(SIGRTMIN, recv_info(rt, sig, &info));
        ASSERT_EQ(SI_QUEUE, info.code);
        ASSERT_EQ(v, info.value);
    }
    ASSERT_EQ(-EAGAIN, weft_signal_try_recv(sig, NULL));
    weft_signal_free(sig);
    weft_runtime_free(rt);
}

/* Standard signals coalesce in the kernel: two before a receive are one. */
TEST(signal_standard_signals_coalesce)
{
    static const int sigs[] = { SIGUSR1 };
    weft_runtime *rt = nt_runtime(true);
    weft_signal *sig;
    weft_signal_info info;

    ASSERT_OK(weft_signal_new(rt, sigs, 1, &sig));
    ASSERT_OK(raise(SIGUSR1));
    ASSERT_OK(raise(SIGUSR1));
    ASSERT_EQ(SIGUSR1, weft_signal_try_recv(sig, &info));
    ASSERT_EQ(SI_TKILL, info.code);
    ASSERT_EQ(-EAGAIN, weft_signal_try_recv(sig, &info));
    weft_signal_free(sig);
    weft_runtime_free(rt);
}

/* Several signals in one set; pending standard ones come lowest first. */
TEST(signal_several_in_one_set)
{
    static const int sigs[] = { SIGUSR2, SIGINT, SIGUSR1, SIGTERM };
    weft_runtime *rt;
    weft_signal *sig;

    ASSERT_OK(weft_signal_block(sigs, 4));
    rt = nt_runtime(false);
    ASSERT_OK(weft_signal_new(rt, sigs, 4, &sig));
    ASSERT_OK(kill(getpid(), SIGUSR2));
    ASSERT_OK(kill(getpid(), SIGTERM));
    ASSERT_OK(kill(getpid(), SIGINT));  /* unblocked anywhere: the process dies */
    ASSERT_OK(kill(getpid(), SIGUSR1));
    ASSERT_EQ(SIGINT, join_int(spawn_recv(rt, sig, SIG_WAIT_MS)));
    ASSERT_EQ(SIGUSR1, join_int(spawn_recv(rt, sig, SIG_WAIT_MS)));
    ASSERT_EQ(SIGUSR2, join_int(spawn_recv(rt, sig, SIG_WAIT_MS)));
    ASSERT_EQ(SIGTERM, join_int(spawn_recv(rt, sig, SIG_WAIT_MS)));
    ASSERT_EQ(-EAGAIN, weft_signal_try_recv(sig, NULL));
    weft_signal_free(sig);
    weft_runtime_free(rt);
}

/* Two tasks wait on one object: two signals wake both, one each. */
static void two_waiters(bool current)
{
    static const int sigs[] = { SIGUSR1, SIGUSR2 };
    weft_runtime *rt;
    weft_signal *sig;
    weft_join *a, *b;
    int ra, rb;

    ASSERT_OK(weft_signal_block(sigs, 2));
    rt = nt_runtime(current);
    ASSERT_OK(weft_signal_new(rt, sigs, 2, &sig));
    a = spawn_recv(rt, sig, SIG_WAIT_MS);
    b = spawn_recv(rt, sig, SIG_WAIT_MS);
    if (current) {
        /* both park, then the raiser sends two while they wait */
        ASSERT_OK(weft_spawn_detached(rt, &raiser_future, &(raiser){ .sig = SIGUSR1 }));
        ASSERT_OK(weft_spawn_detached(rt, &raiser_future, &(raiser){ .sig = SIGUSR2 }));
        ASSERT_OK(weft_runtime_run(rt));
    } else {
        sleep_ms(50);
        ASSERT_OK(kill(getpid(), SIGUSR1));
        sleep_ms(5);
        ASSERT_OK(kill(getpid(), SIGUSR2));
    }
    ra = join_int(a);
    rb = join_int(b);
    ASSERT((ra == SIGUSR1 && rb == SIGUSR2) || (ra == SIGUSR2 && rb == SIGUSR1));
    weft_signal_free(sig);
    weft_runtime_free(rt);
}

TEST(signal_two_waiters_multi_thread)
{
    two_waiters(false);
}

TEST(signal_two_waiters_current_thread)
{
    two_waiters(true);
}

/* A waiter dropped while pending (its timeout fires) hands the read over:
 * the other waiter, which polled first, still gets the signal. */
TEST(signal_dropped_waiter_hands_over)
{
    static const int sigs[] = { SIGUSR1 };
    weft_runtime *rt;
    weft_signal *sig;
    weft_join *a, *b;
    uint64_t t0;

    ASSERT_OK(weft_signal_block(sigs, 1));
    rt = nt_runtime(false);
    ASSERT_OK(weft_signal_new(rt, sigs, 1, &sig));
    a = spawn_recv(rt, sig, SIG_WAIT_MS);
    sleep_ms(20);
    b = spawn_recv(rt, sig, 30);      /* polls last: the reactor holds its waker */
    ASSERT_EQ(-ETIMEDOUT, join_int(b));
    t0 = harness_now_ns();
    ASSERT_OK(kill(getpid(), SIGUSR1));
    ASSERT_EQ(SIGUSR1, join_int(a));
    /* at once, not when a's own timer fires and polls it again */
    ASSERT_LE(SIG_WAIT_MS / 2, (harness_now_ns() - t0) / 1000000u);
    weft_signal_free(sig);
    weft_runtime_free(rt);
}

/* Aborting a waiting task loses no signal: it stays pending for the next. */
TEST(signal_abort_while_pending_loses_nothing)
{
    static const int sigs[] = { SIGUSR2 };
    weft_runtime *rt;
    weft_signal *sig;
    weft_join *a;
    int out = 0;

    ASSERT_OK(weft_signal_block(sigs, 1));
    rt = nt_runtime(false);
    ASSERT_OK(weft_signal_new(rt, sigs, 1, &sig));
    a = spawn_recv(rt, sig, SIG_WAIT_MS);
    sleep_ms(30);
    weft_join_abort(a);
    ASSERT_EQ(-ECANCELED, weft_join_wait(a, &out));
    weft_join_drop(a);
    ASSERT_OK(kill(getpid(), SIGUSR2));
    ASSERT_EQ(SIGUSR2, join_int(spawn_recv(rt, sig, SIG_WAIT_MS)));
    weft_signal_free(sig);
    weft_runtime_free(rt);
}

/* Free while a receive waits: it completes with -EBADF, and the future
 * keeps the object's memory until it is dropped. */
TEST(signal_free_wakes_waiters_with_ebadf)
{
    static const int sigs[] = { SIGUSR1 };
    weft_runtime *rt;
    weft_signal *sig;
    weft_join *a, *b;
    int sa = 0, sb = 0;

    ASSERT_OK(weft_signal_block(sigs, 1));
    rt = nt_runtime(false);
    ASSERT_OK(weft_signal_new(rt, sigs, 1, &sig));
    /* the receives must exist before the free: a receive made after it
     * would use a freed object (the caller's bug, not what is tested) */
    ASSERT_OK(weft_spawn(rt, &sig_task_future,
                         &(sig_task){ .sig = sig, .ms = SIG_WAIT_MS, .started = &sa }, &a));
    ASSERT_OK(weft_spawn(rt, &sig_task_future,
                         &(sig_task){ .sig = sig, .ms = SIG_WAIT_MS, .started = &sb }, &b));
    ASSERT(harness_wait_flag(&sa, 20000) && harness_wait_flag(&sb, 20000));
    sleep_ms(30);                     /* most runs: both parked */
    weft_signal_free(sig);
    ASSERT_EQ(-EBADF, join_int(a));
    ASSERT_EQ(-EBADF, join_int(b));
    weft_runtime_free(rt);
}

/* Free restores the calling thread's mask, counting objects per signal; a
 * signal the program blocked itself stays blocked. */
TEST(signal_free_restores_mask)
{
    static const int one[] = { SIGUSR1 }, both[] = { SIGUSR1, SIGUSR2 };
    weft_runtime *rt = nt_runtime(true);
    weft_signal *s1, *s2;

    unblock(SIGUSR1);
    ASSERT_OK(weft_signal_block((const int[]){ SIGUSR2 }, 1));
    ASSERT(!is_blocked(SIGUSR1));
    ASSERT_OK(weft_signal_new(rt, one, 1, &s1));
    ASSERT(is_blocked(SIGUSR1));
    ASSERT_OK(weft_signal_new(rt, both, 2, &s2));
    weft_signal_free(s1);
    ASSERT(is_blocked(SIGUSR1));      /* s2 still catches it */
    weft_signal_free(s2);
    ASSERT(!is_blocked(SIGUSR1));     /* as it was */
    ASSERT(is_blocked(SIGUSR2));      /* ours: kept */
    /* a failed new leaves the mask alone */
    ASSERT_EQ(-EINVAL, weft_signal_new(rt, (const int[]){ SIGUSR1, SIGKILL }, 2, &s1));
    ASSERT(!is_blocked(SIGUSR1));
    unblock(SIGUSR2);
    weft_runtime_free(rt);
}

/* weft_signal_block() is for good, even for a signal that a weft_signal
 * made before it had blocked: freeing that object leaves it blocked. */
TEST(signal_block_after_new_survives_free)
{
    static const int one[] = { SIGUSR1 };
    weft_runtime *rt = nt_runtime(true);
    weft_signal *s;

    unblock(SIGUSR1);
    ASSERT_OK(weft_signal_new(rt, one, 1, &s));
    ASSERT(is_blocked(SIGUSR1));
    ASSERT_OK(weft_signal_block(one, 1));
    weft_signal_free(s);
    ASSERT(is_blocked(SIGUSR1));      /* the program's block stands */
    unblock(SIGUSR1);
    weft_runtime_free(rt);
}

TEST(signal_bad_arguments)
{
    weft_runtime *rt = nt_runtime(true);
    weft_signal *s;
    weft_signal_recv r;
    int out = 0;

    ASSERT_EQ(-EINVAL, weft_signal_new(rt, (const int[]){ SIGUSR1 }, 0, &s));
    ASSERT_EQ(-EINVAL, weft_signal_new(rt, NULL, 1, &s));
    ASSERT_EQ(-EINVAL, weft_signal_new(rt, (const int[]){ SIGUSR1 }, 1, NULL));
    ASSERT_EQ(-EINVAL, weft_signal_new(rt, (const int[]){ SIGSTOP }, 1, &s));
    ASSERT_EQ(-EINVAL, weft_signal_new(rt, (const int[]){ 0 }, 1, &s));
    ASSERT_EQ(-EINVAL, weft_signal_new(rt, (const int[]){ 4096 }, 1, &s));
    ASSERT_EQ(-EINVAL, weft_signal_new(NULL, (const int[]){ SIGUSR1 }, 1, &s));
    ASSERT_EQ(-EINVAL, weft_signal_block((const int[]){ SIGKILL }, 1));
    ASSERT_EQ(-EINVAL, weft_signal_try_recv(NULL, NULL));
    weft_signal_free(NULL);
    weft_signal_recv_init(&r, NULL, NULL);
    ASSERT_EQ(WEFT_READY, weft_signal_recv_poll(&r, NULL, &out));
    ASSERT_EQ(-EINVAL, out);
    weft_signal_recv_drop(&r);
    weft_signal_recv_drop(&r);
    ASSERT(!is_blocked(SIGUSR1));
    weft_runtime_free(rt);
}

/* The object outlives its runtime: free still closes and restores. */
TEST(signal_free_after_runtime)
{
    static const int sigs[] = { SIGUSR1 };
    weft_runtime *rt = nt_runtime(true);
    weft_signal *sig;
    int fds = nt_count_fds();

    ASSERT_OK(weft_signal_new(rt, sigs, 1, &sig));
    weft_runtime_free(rt);
    ASSERT_OK(raise(SIGUSR1));
    ASSERT_EQ(SIGUSR1, weft_signal_try_recv(sig, NULL));
    weft_signal_free(sig);
    ASSERT(!is_blocked(SIGUSR1));
    ASSERT_EQ(fds, nt_count_fds());
}

/* Many cycles: no descriptor and no memory left behind, and every signal
 * sent in a cycle is received in that cycle. */
TEST(signal_many_cycles_no_fd_leak)
{
    static const int sigs[] = { SIGUSR1 };
    weft_runtime *rt;
    size_t n = harness_scale(200);
    int fds = -1;

    ASSERT_OK(weft_signal_block(sigs, 1));
    rt = nt_runtime(false);
    for (size_t i = 0; i <= n; i++) {
        weft_signal *sig;
        weft_join *j;

        ASSERT_OK(weft_signal_new(rt, sigs, 1, &sig));
        j = spawn_recv(rt, sig, SIG_WAIT_MS);
        ASSERT_OK(kill(getpid(), SIGUSR1));
        ASSERT_EQ(SIGUSR1, join_int(j));
        weft_signal_free(sig);
        if (i == 0)
            fds = nt_count_fds();     /* the reactor's epoll and eventfd now exist */
    }
    ASSERT_EQ(fds, nt_count_fds());
    weft_runtime_free(rt);
}

/* Allocation failures at every step of new (the object, the reactor made
 * on first use, the source): -ENOMEM, the mask as it was, no descriptor
 * left, nothing leaked; then a success. */
TEST(signal_new_alloc_failures)
{
    static const int sigs[] = { SIGUSR1 };
    int fds0 = nt_count_fds();
    bool ok = false;
    int enomem = 0;

    unblock(SIGUSR1);
    for (size_t k = 1; k < 64 && !ok; k++) {
        weft_runtime *rt = nt_runtime(true);
        weft_signal *sig = NULL;
        int err;

        harness_fail_alloc_at(k);
        err = weft_signal_new(rt, sigs, 1, &sig);
        harness_fail_alloc_at(0);
        if (err == 0) {
            ok = true;
            ASSERT(is_blocked(SIGUSR1));
            weft_signal_free(sig);
        } else {
            ASSERT_EQ(-ENOMEM, err);
            ASSERT(sig == NULL);
            enomem++;
        }
        ASSERT(!is_blocked(SIGUSR1));
        weft_runtime_free(rt);
        ASSERT_EQ(fds0, nt_count_fds());
    }
    ASSERT(ok);
    ASSERT(enomem >= 1);
}
