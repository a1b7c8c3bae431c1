/* SPDX-License-Identifier: MIT */
/* Child processes (weft/process.h), their end: no zombie whatever the
 * order of free and exit (before, after the runtime, kill on free), the
 * fallback with SIGCHLD blocked and chained, process groups, waits
 * aborted, shared, cancelled in a coroutine and across a runtime's
 * shutdown, kill racing with the exit, many children at once in both
 * flavours. */
#include "process_test.h"

/* ---- no zombies --------------------------------------------------------------------- */
/* Free before the child exits: it runs on (free closes its stdin, so cat
 * ends) and is reaped in the background. */
static void free_before_exit(bool fallback)
{
    weft_runtime *rt;
    weft_process *p;
    int pid;

    use_fallback(fallback);
    rt = nt_runtime(false);
    ASSERT_OK(sh(rt, "cat", WEFT_STDIO_PIPE, WEFT_STDIO_NULL, WEFT_STDIO_NULL, &p));
    pid = weft_process_pid(p);
    ASSERT(!reaped(pid));
    weft_process_free(p);
    wait_reaped(pid);
    watcher_idle();
    weft_runtime_free(rt);
}

TEST(process_free_before_exit_is_reaped)
{
    free_before_exit(false);
}

TEST(process_free_before_exit_is_reaped_fallback)
{
    free_before_exit(true);
}

/* SIGCHLD blocked in every thread (the program catches it with a
 * weft_signal, say): the handler never runs, and the watcher, asleep in
 * epoll_wait without a time limit because its only other child has a
 * pidfd, must still be woken by the new fallback entry and then look every
 * 100 ms. */
TEST(process_fallback_with_sigchld_blocked)
{
    static const int sigs[] = { SIGCHLD };
    weft_runtime *rt;
    weft_process *keep, *p;
    char *argv[] = { "true", NULL };
    weft_process_options o = { .argv = argv };
    weft_process_status st;
    int pid;

    ASSERT_OK(weft_signal_block(sigs, 1));    /* before any thread exists */
    rt = nt_runtime(false);
    use_fallback(false);
    ASSERT_OK(sh(rt, "cat", WEFT_STDIO_PIPE, WEFT_STDIO_NULL, WEFT_STDIO_NULL, &keep));
    usleep(20000);                    /* the watcher is asleep in epoll_wait */
    use_fallback(true);
    ASSERT_OK(weft_process_spawn(rt, &o, &p));
    pid = weft_process_pid(p);
    weft_process_free(p);             /* nobody waits: only the watcher looks */
    wait_reaped(pid);
    /* and a wait on such a child completes too */
    ASSERT_OK(weft_process_spawn(rt, &o, &p));
    ASSERT_EQ(0, pw_wait(rt, p, &st));
    ASSERT_EQ(0, st.code);
    weft_process_free(p);
    weft_process_free(keep);
    watcher_idle();
    weft_runtime_free(rt);
}

/* Free after the runtime is gone; the child outlives both. */
TEST(process_free_after_runtime)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p;
    int pid;

    ASSERT_OK(sh(rt, "cat", WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_NULL, &p));
    pid = weft_process_pid(p);
    weft_runtime_free(rt);
    ASSERT_EQ(-EAGAIN, weft_process_try_wait(p, NULL));
    weft_process_free(p);             /* closes stdin after the runtime: cat ends */
    wait_reaped(pid);
    watcher_idle();
}

TEST(process_kill_on_free)
{
    char *argv[] = { "sleep", "1000", NULL };
    weft_process_options o = { .argv = argv, .flags = WEFT_PROCESS_KILL_ON_FREE };
    weft_process *p;
    int pid;

    ASSERT_OK(weft_process_spawn(NULL, &o, &p));
    pid = weft_process_pid(p);
    weft_process_free(p);
    wait_reaped(pid);                 /* would take 1000 s without the kill */
    watcher_idle();
}

TEST(process_new_group)
{
    char *argv[] = { "sleep", "1000", NULL };
    weft_process_options o = { .argv = argv, .flags = WEFT_PROCESS_NEW_GROUP };
    weft_runtime *rt = nt_runtime(false);
    weft_process *p;
    weft_process_status st;

    ASSERT_OK(weft_process_spawn(rt, &o, &p));
    ASSERT_EQ(weft_process_pid(p), getpgid(weft_process_pid(p)));
    ASSERT(getpgid(0) != weft_process_pid(p));
    ASSERT_OK(weft_process_kill(p, SIGKILL));
    ASSERT_EQ(0, pw_wait(rt, p, &st));
    ASSERT_EQ(SIGKILL, st.signal);
    weft_process_free(p);
    weft_runtime_free(rt);
    watcher_idle();
}

/* ---- waits ------------------------------------------------------------------------ */
/* Abort the task waiting; a new wait still gets the status. */
TEST(process_abort_wait)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p;
    weft_process_status st;
    weft_join *j;
    int waiting = 0, out;

    ASSERT_OK(sh(rt, "cat; exit 4", WEFT_STDIO_PIPE, WEFT_STDIO_NULL, WEFT_STDIO_NULL, &p));
    j = pw_spawn(rt, p, &st, &waiting);
    ASSERT(harness_wait_flag(&waiting, PW_MS));
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &out));
    weft_join_drop(j);
    ASSERT_EQ(-EAGAIN, weft_process_try_wait(p, NULL));
    weft_stream_close(weft_process_stdio(p, 0));
    ASSERT_EQ(0, pw_wait(rt, p, &st));
    ASSERT_EQ(4, st.code);
    weft_process_free(p);
    weft_runtime_free(rt);
    watcher_idle();
}

/* Two tasks and a coroutine wait on one process; the handle is freed
 * (from another thread) while they wait: each completes. */
static weft_process *co_proc;
static weft_process_status co_st;

static int wait_co(void *arg)
{
    (void)arg;
    return weft_co_process_wait(co_proc, &co_st);
}

/* The same wait, but it says when its wait future holds its reference to
 * the process (weft_process_wait_init), so that the handle's owner may free
 * it from then on: a coroutine not yet started when the owner frees the
 * handle would call weft_co_process_wait() on freed memory (the test did,
 * once in a while, under load). */
static volatile int co_holds;

static int wait_co_holding(void *arg)
{
    weft_process_wait w;
    int res = 0, err;

    (void)arg;
    weft_process_wait_init(&w, co_proc, &co_st);
    __atomic_store_n(&co_holds, 1, __ATOMIC_RELEASE);   /* harness_wait_flag reads it */
    err = weft_co_await(&weft_process_wait_future, &w, &res);   /* drops w */
    return err < 0 ? err : res;
}

static void *free_thread(void *arg)
{
    weft_process_free(arg);
    return NULL;
}

TEST(process_several_waiters_and_free_from_thread)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p;
    weft_process_status a = { 0 }, b = { 0 };
    weft_join *ja, *jb, *jc;
    int wa = 0, wb = 0, out = -1;
    pthread_t t;

    ASSERT_OK(sh(rt, "read x; exit 9", WEFT_STDIO_PIPE, WEFT_STDIO_NULL, WEFT_STDIO_NULL,
                 &p));
    ja = pw_spawn(rt, p, &a, &wa);
    jb = pw_spawn(rt, p, &b, &wb);
    co_proc = p;
    __atomic_store_n(&co_holds, 0, __ATOMIC_RELAXED);
    ASSERT_OK(weft_go(rt, wait_co_holding, NULL, &jc));
    ASSERT(harness_wait_flag(&wa, PW_MS));
    ASSERT(harness_wait_flag(&wb, PW_MS));
    ASSERT(harness_wait_flag(&co_holds, PW_MS));   /* before the handle may go */
    ASSERT_EQ(0, pthread_create(&t, NULL, free_thread, p));   /* closes stdin too */
    ASSERT_EQ(0, pthread_join(t, NULL));
    ASSERT_EQ(0, join_int(ja));
    ASSERT_EQ(0, join_int(jb));
    ASSERT_OK(weft_join_wait(jc, &out));
    weft_join_drop(jc);
    ASSERT_EQ(0, out);
    ASSERT_EQ(9, a.code);
    ASSERT_EQ(9, b.code);
    ASSERT_EQ(9, co_st.code);
    weft_runtime_free(rt);
    watcher_idle();
}

/* Cancel a coroutine that waits: -ECANCELED from the wrapper, the status
 * is kept for a later wait. */
TEST(process_coroutine_wait_cancelled)
{
    weft_runtime *rt = nt_runtime(false);
    weft_process *p;
    weft_join *j;
    int out = 0;

    ASSERT_OK(sh(rt, "cat", WEFT_STDIO_PIPE, WEFT_STDIO_NULL, WEFT_STDIO_NULL, &p));
    co_proc = p;
    ASSERT_OK(weft_go(rt, wait_co, NULL, &j));
    usleep(20000);
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &out));
    weft_join_drop(j);
    weft_stream_close(weft_process_stdio(p, 0));
    ASSERT_EQ(0, pw_wait(rt, p, NULL));
    weft_process_free(p);
    weft_runtime_free(rt);
    watcher_idle();
}

/* The runtime shuts down while a task waits (the task is dropped); the
 * child is reaped all the same, and waits from another runtime work. */
TEST(process_runtime_shutdown_while_waiting)
{
    weft_runtime *rt = nt_runtime(false), *rt2;
    weft_process *p;
    weft_process_status st;
    weft_join *j;
    int waiting = 0, out;

    ASSERT_OK(sh(rt, "cat; exit 6", WEFT_STDIO_PIPE, WEFT_STDIO_NULL, WEFT_STDIO_NULL, &p));
    j = pw_spawn(rt, p, &st, &waiting);
    ASSERT(harness_wait_flag(&waiting, PW_MS));
    weft_runtime_free(rt);
    ASSERT(weft_join_wait(j, &out) < 0);
    weft_join_drop(j);
    rt2 = nt_runtime(true);
    weft_stream_close(weft_process_stdio(p, 0));
    ASSERT_EQ(0, pw_wait(rt2, p, &st));
    ASSERT_EQ(6, st.code);
    weft_process_free(p);
    weft_runtime_free(rt2);
    watcher_idle();
}

/* kill races with the exit: 0 or -ESRCH, never another process. */
static void *kill_thread(void *arg)
{
    weft_process *p = arg;

    for (;;) {
        int err = weft_process_kill(p, SIGCONT);  /* harmless to a live child */

        if (err == -ESRCH)
            return NULL;
        ASSERT_EQ(0, err);
    }
}

TEST(process_kill_races_exit)
{
    weft_runtime *rt = nt_runtime(false);
    size_t n = harness_scale(50);

    for (size_t i = 0; i < n; i++) {
        weft_process *p;
        pthread_t t;

        ASSERT_OK(sh(rt, "exit 0", WEFT_STDIO_NULL, WEFT_STDIO_NULL, WEFT_STDIO_NULL, &p));
        ASSERT_EQ(0, pthread_create(&t, NULL, kill_thread, p));
        ASSERT_EQ(0, pw_wait(rt, p, NULL));
        ASSERT_EQ(0, pthread_join(t, NULL));
        weft_process_free(p);
    }
    weft_runtime_free(rt);
    watcher_idle();
}

/* ---- many ------------------------------------------------------------------------- */
static void many(bool current, bool fallback)
{
    size_t n = harness_scale(100);
    weft_runtime *rt;
    weft_process **p = calloc(n, sizeof(*p));
    weft_process_status *st = calloc(n, sizeof(*st));
    weft_join **j = calloc(n, sizeof(*j));

    use_fallback(fallback);
    rt = nt_runtime(current);
    for (size_t i = 0; i < n; i++) {
        char cmd[32];

        snprintf(cmd, sizeof(cmd), "exit %zu", i % 256);
        ASSERT_OK(sh(rt, cmd, WEFT_STDIO_NULL, WEFT_STDIO_PIPE, WEFT_STDIO_NULL, &p[i]));
        j[i] = pw_spawn(rt, p[i], &st[i], NULL);
    }
    if (current)
        ASSERT_OK(weft_runtime_run(rt));
    for (size_t i = 0; i < n; i++) {
        ASSERT_EQ(0, join_int(j[i]));
        ASSERT_EQ((int)(i % 256), st[i].code);
        weft_process_free(p[i]);
    }
    weft_runtime_free(rt);
    watcher_idle();
    free(p);
    free(st);
    free(j);
}

TEST(process_many_children)
{
    many(false, false);
}

TEST(process_many_children_current_thread)
{
    many(true, false);
}

TEST(process_many_children_fallback)
{
    many(false, true);
}

/* The SIGCHLD handler calls on to the program's own. */
static int user_chld;                  /* __atomic: set in a handler on any thread */

static void on_user_chld(int sig)
{
    (void)sig;
    __atomic_store_n(&user_chld, 1, __ATOMIC_RELAXED);
}

TEST(process_fallback_chains_sigchld_handler)
{
    struct sigaction sa;
    weft_process *p;
    char *argv[] = { "true", NULL };
    weft_process_options o = { .argv = argv };
    weft_runtime *rt = nt_runtime(false);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_user_chld;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(0, sigaction(SIGCHLD, &sa, NULL));
    use_fallback(true);
    ASSERT_OK(weft_process_spawn(rt, &o, &p));
    ASSERT_EQ(0, pw_wait(rt, p, NULL));
    weft_process_free(p);
    watcher_idle();
    __atomic_store_n(&user_chld, 0, __ATOMIC_RELAXED);
    ASSERT_OK(weft_process_spawn(rt, &o, &p));  /* the handler is in place now */
    ASSERT_EQ(0, pw_wait(rt, p, NULL));
    weft_process_free(p);
    for (unsigned i = 0; !__atomic_load_n(&user_chld, __ATOMIC_RELAXED); i++) {
        ASSERT(i < 20000);
        usleep(1000);
    }
    weft_runtime_free(rt);
    watcher_idle();
}
