/* SPDX-License-Identifier: MIT */
/* Lifetimes and threads across the headers, as a hostile reader checks them:
 * things freed in the "wrong" order, from the "wrong" thread, after the
 * runtime is gone; each test ends with harness_live() back where it began.
 *
 *  - weft_runtime_free() with a bit of everything live: parked futures and
 *    coroutines, sleeps and timeouts, a group, a blocking job running, a
 *    loop with a watch and an armed timer, sockets with pending reads, a
 *    process wait; join handles, a loop and sockets kept past the free
 *    (weft/sched.h: "Memory that wakers or join handles still held
 *    elsewhere refer to is released when the last of them is dropped";
 *    weft/fdwatch.h and weft/net.h: usable after the runtime is freed);
 *  - join handles dropped from a plain thread while their task completes
 *    on a worker (weft/task.h: any thread);
 *  - a process handle freed while waits are pending (weft/process.h:
 *    "a wait that is pending ... while the handle is freed still
 *    completes");
 *  - a cancel tree cancelled from one thread while tasks drop the child
 *    tokens they hold (weft/group.h: every call from any thread);
 *  - a group freed from a plain thread while its children keep spawning
 *    siblings into it (weft_group_spawn(): "Thread: any, ... the group's own
 *    children included"; weft_group_free(): returns after every child's
 *    drop);
 *  - calls from the wrong thread and after shutdown return what the headers
 *    say. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "sched_test.h"

/* ---- helpers ------------------------------------------------------------------------ */
static weft_runtime *new_rt(weft_flavor flavor, unsigned workers)
{
    weft_runtime *rt;
    weft_runtime_options o = { .flavor = flavor, .workers = workers };

    ASSERT_OK(weft_runtime_new(&rt, &o));
    return rt;
}

static void wait_live_back(long live0)
{
    uint64_t end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);

    /* a detached blocking job's thread lets go of its memory on its own */
    while (harness_live() != live0 && harness_now_ns() < end)
        sleep_ms(1);
    ASSERT_EQ(live0, harness_live());
}

static atomic_int started, finished;

static int co_recv(void *arg)
{
    int v;

    atomic_fetch_add(&started, 1);
    v = weft_co_chan_recv(arg, &v);
    atomic_fetch_add(&finished, 1);
    return v;
}

static int co_sleep_long(void *arg)
{
    (void)arg;
    atomic_fetch_add(&started, 1);
    weft_co_sleep(600000);
    atomic_fetch_add(&finished, 1);
    return 0;
}

static atomic_int job_release, job_started;

static void *held_job(void *arg)
{
    uint64_t end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);

    (void)arg;
    atomic_fetch_add(&job_started, 1);
    while (!atomic_load(&job_release) && harness_now_ns() < end)
        sleep_ms(1);
    return NULL;
}

static int co_blocking_job(void *arg)
{
    (void)arg;
    atomic_fetch_add(&started, 1);
    weft_co_blocking(NULL, held_job, NULL, NULL);
    atomic_fetch_add(&finished, 1);
    return 0;
}

static int co_read(void *arg)
{
    char buf[16];

    atomic_fetch_add(&started, 1);
    weft_co_read(arg, buf, sizeof(buf));
    atomic_fetch_add(&finished, 1);
    return 0;
}

static int co_wait_process(void *arg)
{
    weft_process_status st;

    atomic_fetch_add(&started, 1);
    weft_co_process_wait(arg, &st);
    atomic_fetch_add(&finished, 1);
    return 0;
}

/* a hand-written future parked on a timeout over a channel receive */
typedef struct timed_recv {
    weft_async co;
    weft_chan *ch;
    int dst, rres, res;
    weft_chan_recv r;
    weft_timeout t;
} timed_recv;

static weft_poll timed_recv_poll(timed_recv *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    weft_chan_recv_init(&f->r, f->ch, &f->dst);
    weft_timeout_init(&f->t, &weft_chan_recv_future, &f->r, 600000);
    WEFT_AWAIT(&f->co, weft_timeout_poll(&f->t, cx, &f->res, &f->rres));
    WEFT_END(&f->co);
}

static atomic_int timed_drops;

static void timed_recv_drop(timed_recv *f)
{
    if (f->co.line != 0)
        weft_timeout_drop(&f->t);
    weft_chan_drop(f->ch);
    atomic_fetch_add(&timed_drops, 1);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(timed_recv, timed_recv_poll, timed_recv_drop);

static void on_watch(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    (void)w, (void)fd, (void)events, (void)arg;
}

static void on_timer(weft_timer *t, void *arg)
{
    (void)t, (void)arg;
}

static int child_ready(void *arg)
{
    weft_cancel_wait w;
    int r;

    weft_cancel_wait_init(&w, arg);
    r = weft_co_await(&weft_cancel_wait_future, &w, NULL);
    return r;
}

/* ---- weft_runtime_free() with everything live ----------------------------------- */
static void free_with_everything_live(weft_flavor flavor)
{
    long live0 = harness_live();
    weft_runtime *rt = new_rt(flavor, flavor == WEFT_MULTI_THREAD ? 2 : 0);
    weft_chan *ch;
    weft_join *kept_co, *kept_future;
    weft_group *g;
    weft_loop *loop;
    weft_fdwatch *fw;
    weft_timer *tm;
    weft_socket *s;
    weft_process *proc;
    int sv[2], pfd[2], n = 0, out = 0;
    char *argv[] = { "sleep", "600", NULL };
    weft_process_options po = { .argv = argv, .flags = WEFT_PROCESS_KILL_ON_FREE };
    weft_cancel *tok;
    bool mt = flavor == WEFT_MULTI_THREAD;

    atomic_store(&started, 0);
    atomic_store(&finished, 0);
    atomic_store(&timed_drops, 0);
    atomic_store(&job_release, 0);
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 4));
    ASSERT_OK(weft_cancel_new(&tok));
    for (int i = 0; i < 4; i++, n++)
        ASSERT_OK(weft_go_detached(rt, co_recv, ch));
    ASSERT_OK(weft_go(rt, co_recv, ch, &kept_co));
    n++;
    ASSERT_OK(weft_go_detached(rt, co_sleep_long, NULL));
    n++;
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_spawn_detached(rt, &timed_recv_future,
                                      &(timed_recv){ .ch = weft_chan_clone(ch) }));
    ASSERT_OK(weft_spawn(rt, &timed_recv_future, &(timed_recv){ .ch = weft_chan_clone(ch) },
                         &kept_future));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_go_group(g, child_ready, tok, NULL));
    if (mt) {
        /* a job running on the default pool when the runtime goes */
        ASSERT_OK(weft_go_detached(rt, co_blocking_job, NULL));
        n++;
    }
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    ASSERT_OK(weft_socket_adopt(rt, sv[0], &s));
    ASSERT_OK(weft_go_detached(rt, co_read, s));
    n++;
    ASSERT_OK(weft_process_spawn(rt, &po, &proc));
    ASSERT_OK(weft_go_detached(rt, co_wait_process, proc));
    n++;
    ASSERT_OK(weft_loop_new(rt, &loop));
    ASSERT_EQ(0, pipe2(pfd, O_NONBLOCK | O_CLOEXEC));
    ASSERT_OK(weft_fdwatch_add(loop, pfd[0], WEFT_READABLE, on_watch, NULL, &fw));
    ASSERT_OK(weft_timer_new(loop, on_timer, NULL, &tm));
    ASSERT_OK(weft_timer_arm(tm, 600000));
    if (mt)
        WAIT_AT_LEAST(&started, n, WATCHDOG_MS, "coroutines parked");

    weft_runtime_free(rt);

    /* every task was cancelled once; its drop ran */
    if (mt)
        ASSERT_EQ(n, atomic_load(&finished));
    ASSERT_EQ(4, atomic_load(&timed_drops));
    /* handles kept past the free */
    ASSERT_EQ(-ECANCELED, weft_join_try(kept_co, &out));
    ASSERT_EQ(-ECANCELED, weft_join_wait(kept_co, &out));
    ASSERT(weft_join_is_complete(kept_co));
    weft_join_abort(kept_co);
    weft_join_drop(kept_co);
    ASSERT_EQ(-ECANCELED, weft_join_wait(kept_future, NULL));
    weft_join_drop(kept_future);
    ASSERT_EQ(0, weft_group_live(g));
    ASSERT_OK(weft_group_free(g));
    /* loop, watch and timer: removable and freeable after the runtime;
     * a new watch is refused */
    {
        weft_fdwatch *w2 = NULL;

        ASSERT_EQ(-ESHUTDOWN, weft_fdwatch_add(loop, pfd[1], WEFT_WRITABLE, on_watch, NULL, &w2));
        ASSERT(w2 == NULL);
    }
    ASSERT_OK(weft_timer_arm(tm, 1));
    weft_timer_free(tm);
    ASSERT_OK(weft_fdwatch_remove(fw));
    weft_loop_free(loop);
    close(pfd[0]);
    close(pfd[1]);
    ASSERT_OK(weft_socket_close(s));
    ASSERT_EQ(-EBADF, weft_socket_close(s));
    close(sv[1]);
    weft_process_free(proc);
    weft_cancel_drop(tok);
    weft_chan_drop(ch);
    atomic_store(&job_release, 1);
    wait_live_back(live0);
}

TEST(runtime_free_with_everything_live_multi_thread)
{
    free_with_everything_live(WEFT_MULTI_THREAD);
}

/* ---- join handles dropped from a plain thread while tasks complete ------------- */
typedef struct yield_twice {
    weft_async co;
    weft_yield y;
    int i;
} yield_twice;

static weft_poll yield_twice_poll(yield_twice *f, weft_context *cx, int *out)
{
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < 2; f->i++) {
        weft_yield_init(&f->y);
        WEFT_AWAIT(&f->co, weft_yield_poll(&f->y, cx));
    }
    *out = 42;
    WEFT_END(&f->co);
}

WEFT_DEFINE_FUTURE_STATIC(yield_twice, yield_twice_poll, NULL, int);

typedef struct dropper {
    weft_join **js;
    int n;
    atomic_int ready;
} dropper;

static void *drop_handles(void *arg)
{
    dropper *d = arg;

    for (int i = 0; i < d->n; i++) {
        while (atomic_load(&d->ready) <= i)
            ;
        if (i % 3 == 0)
            weft_join_abort(d->js[i]);
        if (i % 5 == 0)
            (void)weft_join_try(d->js[i], NULL);
        weft_join_drop(d->js[i]);
    }
    return NULL;
}

TEST(join_handles_dropped_from_a_plain_thread_while_tasks_complete)
{
    long live0 = harness_live();
    weft_runtime *rt = new_rt(WEFT_MULTI_THREAD, 2);
    dropper d = { 0 };
    pthread_t th;

    d.n = (int)harness_scale(20000);
    d.js = calloc((size_t)d.n, sizeof(*d.js));
    ASSERT(d.js != NULL);
    START_THREAD(&th, drop_handles, &d);
    for (int i = 0; i < d.n; i++) {
        ASSERT_OK(weft_spawn(rt, &yield_twice_future, &(yield_twice){ 0 }, &d.js[i]));
        atomic_store(&d.ready, i + 1);
    }
    JOIN_THREAD_WITHIN(th, WATCHDOG_MS, "the dropping thread");
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, weft_runtime_active_tasks(rt));
    weft_runtime_free(rt);
    free(d.js);
    wait_live_back(live0);
}

/* ---- a process handle freed while waits are pending ------------------------------ */
typedef struct pwait {
    weft_async co;
    weft_process *p;
    weft_process_wait w;
    weft_process_status st;
    int res;
} pwait;

static atomic_int pwait_done, pwait_started;

static weft_poll pwait_poll(pwait *f, weft_context *cx, int *out)
{
    WEFT_BEGIN(&f->co);
    weft_process_wait_init(&f->w, f->p, &f->st);   /* its own reference */
    f->p = NULL;
    atomic_fetch_add(&pwait_started, 1);
    WEFT_AWAIT(&f->co, weft_process_wait_poll(&f->w, cx, &f->res));
    *out = f->res == 0 ? f->st.signal : f->res;
    atomic_fetch_add(&pwait_done, 1);
    WEFT_END(&f->co);
}

static void pwait_drop(pwait *f)
{
    if (f->p == NULL)
        weft_process_wait_drop(&f->w);
}

WEFT_DEFINE_FUTURE_STATIC(pwait, pwait_poll, pwait_drop, int);

TEST(process_freed_while_waits_are_pending_still_completes)
{
    long live0 = harness_live();
    weft_runtime *rt = new_rt(WEFT_MULTI_THREAD, 2);
    char *argv[] = { "sleep", "600", NULL };
    weft_process_options po = { .argv = argv, .flags = WEFT_PROCESS_KILL_ON_FREE };
    weft_process *p;
    weft_join *js[3];
    int out = 0;

    atomic_store(&pwait_done, 0);
    atomic_store(&pwait_started, 0);
    ASSERT_OK(weft_process_spawn(rt, &po, &p));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_spawn(rt, &pwait_future, &(pwait){ .p = p }, &js[i]));
    WAIT_AT_LEAST(&pwait_started, 3, WATCHDOG_MS, "waits made");
    sleep_ms(20);                     /* let them park (either way is valid) */
    ASSERT_EQ(0, atomic_load(&pwait_done));
    weft_process_free(p);             /* SIGKILL: the waits see it */
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(weft_join_wait(js[i], &out));
        ASSERT_EQ(SIGKILL, out);
        weft_join_drop(js[i]);
    }
    weft_runtime_free(rt);
    wait_live_back(live0);
}

/* ---- a cancel tree cancelled while its holders drop their tokens ---------------- */
typedef struct tok_holder {
    weft_async co;
    weft_cancel *t;
    weft_cancel_wait w;
    int res;
} tok_holder;

static weft_poll tok_holder_poll(tok_holder *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    weft_cancel_wait_init(&f->w, f->t);
    WEFT_AWAIT(&f->co, weft_cancel_wait_poll(&f->w, cx, &f->res));
    weft_cancel_wait_drop(&f->w);
    weft_cancel_drop(f->t);
    f->t = NULL;
    WEFT_END(&f->co);
}

static void tok_holder_drop(tok_holder *f)
{
    if (f->t) {
        weft_cancel_wait_drop(&f->w);
        weft_cancel_drop(f->t);
    }
}

WEFT_DEFINE_FUTURE_VOID_STATIC(tok_holder, tok_holder_poll, tok_holder_drop);

TEST(cancel_tree_cancelled_while_holders_drop_their_tokens)
{
    long live0 = harness_live();
    weft_runtime *rt = new_rt(WEFT_MULTI_THREAD, 2);
    int rounds = (int)harness_scale(200), n = 50;

    for (int r = 0; r < rounds; r++) {
        weft_cancel *root, *mid;
        weft_join **js = calloc((size_t)n, sizeof(*js));

        ASSERT(js != NULL);
        ASSERT_OK(weft_cancel_new(&root));
        ASSERT_OK(weft_cancel_child(root, &mid));
        for (int i = 0; i < n; i++) {
            tok_holder f = { 0 };

            /* a grandchild per task: only the task holds it */
            ASSERT_OK(weft_cancel_child(mid, &f.t));
            ASSERT_OK(weft_spawn(rt, &tok_holder_future, &f, &js[i]));
        }
        weft_cancel_drop(mid);        /* its children keep it alive */
        /* half aborted (their drops unlink grandchildren) while the root
         * is cancelled (which walks them) */
        for (int i = 0; i < n; i += 2)
            weft_join_abort(js[i]);
        weft_cancel_cancel(root);
        ASSERT(weft_cancel_is_cancelled(root));
        for (int i = 0; i < n; i++) {
            int e = weft_join_wait(js[i], NULL);

            ASSERT(e == 0 || e == -ECANCELED);
            weft_join_drop(js[i]);
        }
        weft_cancel_drop(root);
        free(js);
    }
    weft_runtime_free(rt);
    wait_live_back(live0);
}

/* ---- a group freed while its children spawn siblings ----------------------------- */
static atomic_int running_children, spawned_children, refused_spawns;

static int spawner(void *arg)
{
    weft_group *g = arg;
    bool spawned = false;

    atomic_fetch_add(&running_children, 1);
    for (;;) {
        if (!spawned && atomic_fetch_add(&spawned_children, 1) < 4000) {
            int e = weft_go_group(g, spawner, g, NULL);

            if (e == -ECANCELED)
                atomic_fetch_add(&refused_spawns, 1);
            else
                ASSERT_OK(e);
            spawned = true;
        }
        if (weft_co_yield() == -ECANCELED)
            break;
    }
    atomic_fetch_sub(&running_children, 1);
    return 0;
}

static void group_freed_while_children_spawn(weft_flavor flavor)
{
    long live0 = harness_live();
    weft_runtime *rt = new_rt(WEFT_MULTI_THREAD, 2);
    weft_group *g;

    (void)flavor;
    atomic_store(&running_children, 0);
    atomic_store(&spawned_children, 0);
    atomic_store(&refused_spawns, 0);
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(weft_go_group(g, spawner, g, NULL));
    WAIT_AT_LEAST(&running_children, 50, WATCHDOG_MS, "children running");
    ASSERT_OK(weft_group_free(g));
    /* every child's drop has run: none runs now, none starts later */
    ASSERT_EQ(0, atomic_load(&running_children));
    sleep_ms(10);
    ASSERT_EQ(0, atomic_load(&running_children));
    /* (the runtime's count of tasks not completed is a snapshot that may
     * lag the drops by a moment: a task completes right after its drop) */
    {
        uint64_t end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);

        while (weft_runtime_active_tasks(rt) != 0) {
            ASSERT(harness_now_ns() < end);
            sleep_ms(1);
        }
    }
    weft_runtime_free(rt);
    wait_live_back(live0);
}

TEST(group_freed_from_a_thread_while_children_spawn_siblings)
{
    group_freed_while_children_spawn(WEFT_MULTI_THREAD);
}

/* ---- wrong thread, after shutdown -------------------------------------------------- */
typedef struct on_worker {
    weft_runtime *rt;
    weft_join *j;
    weft_group *g;
    weft_chan *ch;
    weft_oneshot_rx *orx;
    weft_blocking_job *job;
    int r[8];
} on_worker;

static int calls_on_a_worker(void *arg)
{
    on_worker *w = arg;
    int v = 0;

    w->r[0] = weft_join_wait(w->j, NULL);
    w->r[1] = weft_group_join(w->g);
    w->r[2] = weft_block_on(w->rt, &yield_twice_future, &(yield_twice){ 0 }, &v);
    w->r[3] = weft_runtime_run(w->rt);
    w->r[4] = weft_runtime_shutdown(w->rt);
    w->r[5] = weft_chan_recv_wait(w->ch, &v);
    w->r[6] = weft_oneshot_recv_wait(w->orx, &v);
    w->r[7] = weft_blocking_job_wait(w->job, NULL);
    return 0;
}

TEST(blocking_calls_from_a_coroutine_refuse)
{
    long live0 = harness_live();
    weft_runtime *rt = new_rt(WEFT_MULTI_THREAD, 2);
    on_worker w = { .rt = rt };
    weft_oneshot_tx *otx;
    weft_blocking_pool *pool;
    weft_join *j;
    int out = -1;

    ASSERT_OK(weft_spawn(rt, &yield_twice_future, &(yield_twice){ 0 }, &w.j));
    ASSERT_OK(weft_group_new(&w.g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_chan_new(&w.ch, sizeof(int), 1));
    ASSERT_OK(weft_oneshot_new(&otx, &w.orx, sizeof(int)));
    ASSERT_OK(weft_blocking_default(rt, &pool));
    atomic_store(&job_release, 0);
    ASSERT_OK(weft_blocking_spawn(pool, held_job, NULL, &w.job));
    ASSERT_OK(weft_go(rt, calls_on_a_worker, &w, &j));
    ASSERT_OK(weft_join_wait(j, &out));
    weft_join_drop(j);
    ASSERT_EQ(-EINVAL, w.r[0]);       /* task.h */
    ASSERT_EQ(-EINVAL, w.r[1]);       /* group.h */
    ASSERT_EQ(-EINVAL, w.r[2]);       /* sched.h */
    ASSERT_EQ(-EINVAL, w.r[3]);
    ASSERT_EQ(-EINVAL, w.r[4]);
    ASSERT_EQ(-EDEADLK, w.r[5]);      /* chan.h */
    ASSERT_EQ(-EDEADLK, w.r[6]);
    ASSERT_EQ(-EINVAL, w.r[7]);       /* blocking.h */
    atomic_store(&job_release, 1);
    ASSERT_OK(weft_blocking_job_wait(w.job, NULL));
    weft_blocking_job_drop(w.job);
    ASSERT_OK(weft_join_wait(w.j, &out));
    ASSERT_EQ(42, out);
    weft_join_drop(w.j);
    ASSERT_OK(weft_group_free(w.g));
    weft_chan_drop(w.ch);
    weft_oneshot_tx_drop(otx);
    weft_oneshot_rx_drop(w.orx);
    weft_runtime_free(rt);
    wait_live_back(live0);
}

TEST(calls_after_shutdown_report_eshutdown)
{
    long live0 = harness_live();
    weft_runtime *rt = new_rt(WEFT_MULTI_THREAD, 2);
    weft_group *g;
    weft_loop *loop = NULL;
    weft_blocking_pool *pool;
    weft_join *j = NULL;
    weft_socket *s = NULL;
    struct sockaddr_storage a;
    socklen_t len;
    weft_metrics m = { .size = sizeof(m) };

    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_OK(weft_runtime_shutdown(rt));                 /* idempotent */
    ASSERT_EQ(-ESHUTDOWN, weft_spawn(rt, &yield_twice_future, &(yield_twice){ 0 }, &j));
    ASSERT_EQ(-ESHUTDOWN, weft_go(rt, co_sleep_long, NULL, &j));
    ASSERT(j == NULL);
    ASSERT_EQ(-ESHUTDOWN, weft_go_group(g, co_sleep_long, NULL, NULL));
    ASSERT_EQ(-ESHUTDOWN, weft_group_spawn(g, &yield_twice_future, &(yield_twice){ 0 }));
    ASSERT_EQ(-ESHUTDOWN, weft_loop_new(rt, &loop));
    ASSERT(loop == NULL);
    ASSERT_EQ(-ESHUTDOWN, weft_blocking_default(rt, &pool));
    ASSERT_EQ(-ESHUTDOWN, weft_block_on(rt, &yield_twice_future, &(yield_twice){ 0 }, NULL));
    ASSERT_EQ(-ESHUTDOWN, weft_runtime_run(rt));
    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &a, &len));
    ASSERT_EQ(-ESHUTDOWN, weft_listen(rt, (struct sockaddr *)&a, len, 0, &s));
    ASSERT(s == NULL);
    ASSERT_EQ(-ESHUTDOWN, weft_runtime_io_backend(rt, NULL));
    /* the observers still answer while the user holds rt */
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    ASSERT_EQ(0, m.tasks_live);
    ASSERT_EQ(m.tasks_spawned, m.tasks_completed);
    ASSERT_OK(weft_group_join(g));
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
    wait_live_back(live0);
}

/* ---- what a drop may do (weft/core.h): spawn, wake, abort, drop handles ---------
 * A drop run by weft_runtime_shutdown() spawns (-ESHUTDOWN, nothing leaks),
 * starts a coroutine (-ESHUTDOWN), spawns into a group (-ESHUTDOWN or
 * -ECANCELED), aborts and drops the join handle of a sibling that shutdown
 * has not reached yet, and wakes a waker it kept; a drop run by an abort
 * spawns for real and the new task runs. */
typedef struct dropper_task {
    weft_async co;
    weft_join *sibling;               /* aborted and dropped in our drop */
    weft_group *g;
    weft_waker kept;
    bool has_waker;
    int *results;                     /* where the drop writes what it got */
} dropper_task;

static atomic_int spawned_by_drop_ran;

typedef struct marker {
    int unused;
} marker;

static weft_poll marker_poll(marker *f, weft_context *cx, void *out)
{
    (void)f, (void)cx, (void)out;
    atomic_fetch_add(&spawned_by_drop_ran, 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID_STATIC(marker, marker_poll, NULL);

static weft_poll dropper_task_poll(dropper_task *f, weft_context *cx, void *out)
{
    (void)out;
    if (!f->has_waker) {
        f->kept = weft_waker_clone(weft_context_waker(cx));
        f->has_waker = true;
    }
    return WEFT_PENDING;              /* until aborted or shut down */
}

static void dropper_task_drop(dropper_task *f)
{
    f->results[0] = weft_group_spawn(f->g, &marker_future, &(marker){ 0 });
    f->results[1] = weft_go_group(f->g, co_sleep_long, NULL, NULL);
    if (f->sibling) {
        weft_join_abort(f->sibling);
        weft_join_drop(f->sibling);
    }
    if (f->has_waker) {
        weft_waker_wake_by_ref(&f->kept);
        weft_waker_drop(&f->kept);
    }
    f->results[2] = 1;
}

WEFT_DEFINE_FUTURE_VOID_STATIC(dropper_task, dropper_task_poll, dropper_task_drop);

TEST(drops_spawn_abort_and_wake_at_shutdown_and_after_abort)
{
    long live0 = harness_live();
    weft_runtime *rt = new_rt(WEFT_MULTI_THREAD, 2);
    weft_group *g;
    weft_join *a, *sib1, *sib2;
    int res_abort[3] = { 99, 99, 0 }, res_shut[3] = { 99, 99, 0 };
    int res_s1[3] = { 99, 99, 0 }, res_s2[3] = { 99, 99, 0 };
    uint64_t end;

    atomic_store(&spawned_by_drop_ran, 0);
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_spawn(rt, &dropper_task_future, &(dropper_task){ .g = g, .results = res_s1 },
                         &sib1));
    ASSERT_OK(weft_spawn(rt, &dropper_task_future, &(dropper_task){ .g = g, .results = res_s2 },
                         &sib2));
    /* aborted: its drop runs on a worker, its spawns are real */
    ASSERT_OK(weft_spawn(rt, &dropper_task_future,
                         &(dropper_task){ .g = g, .sibling = NULL, .results = res_abort }, &a));
    sleep_ms(10);
    weft_join_abort(a);
    ASSERT_EQ(-ECANCELED, weft_join_wait(a, NULL));
    weft_join_drop(a);
    ASSERT_EQ(1, res_abort[2]);
    ASSERT_OK(res_abort[0]);
    ASSERT_OK(res_abort[1]);
    end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);
    while (atomic_load(&spawned_by_drop_ran) < 1 && harness_now_ns() < end)
        sleep_ms(1);
    ASSERT_EQ(1, atomic_load(&spawned_by_drop_ran));
    /* at shutdown: sib1's drop aborts and drops sib2's handle (sib2 may be
     * cancelled before or after) */
    ASSERT_OK(weft_spawn_detached(rt, &dropper_task_future,
                                  &(dropper_task){ .g = g, .sibling = sib2,
                                                   .results = res_shut }));
    (void)sib1;
    sleep_ms(10);
    weft_join_drop(sib1);
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(1, res_shut[2]);
    ASSERT_EQ(1, res_s1[2]);
    ASSERT_EQ(1, res_s2[2]);
    ASSERT(res_shut[0] == -ESHUTDOWN || res_shut[0] == -ECANCELED);
    ASSERT(res_shut[1] == -ESHUTDOWN || res_shut[1] == -ECANCELED);
    ASSERT_EQ(0, weft_group_live(g));
    ASSERT_OK(weft_group_free(g));
    weft_runtime_free(rt);
    wait_live_back(live0);
}

/* ---- a join handle awaited by one task, abandoned, then awaited by another -------
 * weft/task.h: dropping the awaiting future loses nothing and the handle
 * stays valid; the next task to await it must be the one woken. */
typedef struct join_once {
    weft_join *j;
    int pending;                      /* out: the one poll was pending */
} join_once;

static weft_poll join_once_poll(join_once *f, weft_context *cx, void *out)
{
    int res;

    (void)out;
    f->pending = weft_join_poll(f->j, cx, &res, NULL) == WEFT_PENDING;
    return WEFT_READY;                /* abandon the await with the waker registered */
}

WEFT_DEFINE_FUTURE_VOID_STATIC(join_once, join_once_poll, NULL);

typedef struct join_full {
    weft_join *j;
} join_full;

static weft_poll join_full_poll(join_full *f, weft_context *cx, int *out)
{
    int res = 1;

    if (weft_join_poll(f->j, cx, &res, NULL) == WEFT_PENDING)
        return WEFT_PENDING;
    *out = res;
    return WEFT_READY;
}

static void join_full_drop(join_full *f)
{
    weft_join_drop(f->j);
}

WEFT_DEFINE_FUTURE_STATIC(join_full, join_full_poll, join_full_drop, int);

static int waits_notify(void *arg)
{
    return weft_co_notify_wait(arg);
}

TEST(join_handle_awaited_then_abandoned_then_awaited_elsewhere)
{
    long live0 = harness_live();
    weft_runtime *rt = new_rt(WEFT_MULTI_THREAD, 2);
    int rounds = (int)harness_scale(300);

    for (int r = 0; r < rounds; r++) {
        weft_notify *n;
        weft_join *target, *b;
        join_once once = { 0 };
        int out = -1;
        uint64_t end;

        ASSERT_OK(weft_notify_new(&n));
        ASSERT_OK(weft_go(rt, waits_notify, n, &target));
        once.j = target;
        ASSERT_OK(weft_block_on(rt, &join_once_future, &once, NULL));
        ASSERT_OK(weft_spawn(rt, &join_full_future, &(join_full){ target }, &b));
        if (r % 2)
            sleep_ms(1);              /* b parked first, or not yet */
        weft_notify_one(n);
        end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);
        while (weft_join_try(b, &out) == -EAGAIN) {
            ASSERT(harness_now_ns() < end);   /* a lost wake-up */
            usleep(100);
        }
        ASSERT_EQ(0, out);
        weft_join_drop(b);
        weft_notify_free(n);
    }
    weft_runtime_free(rt);
    wait_live_back(live0);
}

/* ---- a pool shut down under a coroutine waiting for its queued job ----------------
 * weft/coro.h, weft_co_blocking(): -ECANCELED "the pool was shut down
 * before the job started, so fn never ran" (the coroutine itself is not
 * cancelled); a job already running is waited for by weft_blocking_pool_free. */
static atomic_int queued_job_ran;

static void *queued_job(void *arg)
{
    (void)arg;
    atomic_fetch_add(&queued_job_ran, 1);
    return NULL;
}

typedef struct pool_user {
    weft_blocking_pool *pool;
    atomic_int waiting;
    int result;
    bool cancelled;
} pool_user;

static int co_waits_queued_job(void *arg)
{
    pool_user *u = arg;

    atomic_store(&u->waiting, 1);
    u->result = weft_co_blocking(u->pool, queued_job, NULL, NULL);
    u->cancelled = weft_co_cancelled();
    return 0;
}

static int parked_in_blocking(const weft_task_info *t, void *arg)
{
    if (t->state == WEFT_TASK_IDLE && t->parked_at && t->parked_at->func &&
        strcmp(t->parked_at->func, "weft_co_blocking") == 0)
        *(int *)arg = 1;
    return 0;
}

TEST(pool_shut_down_under_a_coroutine_waiting_for_its_queued_job)
{
    long live0 = harness_live();
    weft_runtime *rt = new_rt(WEFT_MULTI_THREAD, 2);
    weft_blocking_options bo = { .max_threads = 1 };
    pool_user u = { 0 };
    weft_blocking_job *held;
    weft_join *j;

    atomic_store(&job_release, 0);
    atomic_store(&queued_job_ran, 0);
    ASSERT_OK(weft_blocking_pool_new(&u.pool, &bo));
    atomic_store(&job_started, 0);
    ASSERT_OK(weft_blocking_spawn(u.pool, held_job, NULL, &held));   /* takes the thread */
    WAIT_AT_LEAST(&job_started, 1, WATCHDOG_MS, "the held job");
    ASSERT_OK(weft_go(rt, co_waits_queued_job, &u, &j));
    WAIT_AT_LEAST(&u.waiting, 1, WATCHDOG_MS, "the coroutine");
    {
        /* parked in weft_co_blocking (the task dump says so): its job is
         * queued behind the held one */
        int found = 0;
        uint64_t end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);

        while (!found) {
            ASSERT(harness_now_ns() < end);
            ASSERT_OK(weft_runtime_tasks(rt, parked_in_blocking, &found));
            sleep_ms(1);
        }
    }
    ASSERT_EQ(1, weft_blocking_pool_shutdown(u.pool, 0));   /* one still running */
    ASSERT_OK(weft_join_wait(j, NULL));
    ASSERT_EQ(-ECANCELED, u.result);
    ASSERT(!u.cancelled);
    ASSERT_EQ(0, atomic_load(&queued_job_ran));
    atomic_store(&job_release, 1);
    /* shut down already: the free waits no more; the handle stays valid
     * and the running job finishes on its own */
    weft_blocking_pool_free(u.pool);
    ASSERT_OK(weft_blocking_job_wait(held, NULL));
    ASSERT(weft_blocking_job_is_complete(held));
    ASSERT_OK(weft_blocking_job_try(held, NULL));
    weft_blocking_job_drop(held);
    weft_join_drop(j);
    weft_runtime_free(rt);
    wait_live_back(live0);
}
