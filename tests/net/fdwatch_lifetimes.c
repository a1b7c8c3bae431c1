/* SPDX-License-Identifier: MIT */
/* fd watches queued again while their own callback runs, made deterministic.
 *
 * How a watch comes to be queued during its own callback. Watches are armed
 * EPOLLONESHOT and re-armed by the loop task after the callback; the loop
 * queues a watch once (`queued`). But between the moment epoll_wait hands
 * a worker the watch's event (the kernel disarms the descriptor) and the
 * moment that worker's dispatch takes the loop's lock to queue the watch,
 * the watch is neither queued nor in a callback, so weft_fdwatch_modify()
 * with a new interest re-arms it (EPOLL_CTL_MOD) at once (the same interest
 * re-arms nothing). The descriptor is then armed AND an
 * event is in flight: the event in hand queues the watch, its callback
 * starts, and the re-armed descriptor fires again (still readable: the
 * callback has not read yet) and the parked worker queues the watch a
 * second time, during the callback. The hiredis adapter does exactly that:
 * hiredis calls addWrite / addRead (weft_fdwatch_modify) from a timer
 * callback or another task while the reactor holds a write event of the
 * connecting socket; when that callback then removes its own watch (a
 * refused connect: hiredis's cleanup), the watch is still in the queue.
 * Before the fix it was freed on the callback's way out and the queue read
 * it afterwards (use after free, then a double free).
 *
 * The window is a few instructions wide; these tests hold it open. The test
 * binary defines epoll_ctl, epoll_wait and epoll_pwait2 (the static library's
 * calls bind to them; they call the C library's through dlsym(RTLD_NEXT)):
 * the first event of the trapped descriptor is held inside epoll_wait until
 * the test has called weft_fdwatch_modify(); and the callback waits until
 * the second event has been dispatched (the harvesting thread is back in
 * epoll_wait) before it removes its watch, so the watch is queued again
 * every time. The io_uring backend checks an arm count instead and drops the
 * stale completion: the tests pin the epoll backend. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#define WAIT_MS 20000u

/* ---- the trap ------------------------------------------------------------------- */
static atomic_int trap_fd = -1;       /* the descriptor whose events are traced */
static _Atomic uint64_t trap_data;    /* its epoll data (set by ADD / MOD) */
static atomic_int trap_known;
static atomic_int hold_next;          /* 1: hold the next event of trap_fd */
static atomic_int holding;            /* 1: a worker holds it, waiting for release */
static atomic_int release;
static atomic_int harvested;          /* events of trap_fd epoll_wait returned */
static atomic_int dispatched;         /* ... whose harvesting thread came back */
static atomic_int rearms;             /* EPOLL_CTL_MOD on trap_fd */
static _Atomic pid_t harvester;      /* the thread that harvested the last one */
static __thread int my_harvest;       /* harvested by this thread, not yet counted back */

static void sleep_us(unsigned us)
{
    struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000L };

    nanosleep(&ts, NULL);
}

static bool wait_at_least(atomic_int *v, int want)
{
    uint64_t until = weft_now_ms() + WAIT_MS;

    while (atomic_load(v) < want) {
        if (weft_now_ms() >= until)
            return false;
        sleep_us(100);
    }
    return true;
}

typedef int (*ctl_fn)(int, int, int, struct epoll_event *);
typedef int (*wait_fn)(int, struct epoll_event *, int, int);
typedef int (*pwait2_fn)(int, struct epoll_event *, int, const struct timespec *,
                         const sigset_t *);

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    static _Atomic(ctl_fn) real;
    ctl_fn f = atomic_load(&real);

    if (f == NULL) {
        f = (ctl_fn)dlsym(RTLD_NEXT, "epoll_ctl");
        atomic_store(&real, f);
    }
    if (fd == atomic_load(&trap_fd) && ev != NULL &&
        (op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD)) {
        atomic_store(&trap_data, ev->data.u64);
        atomic_store(&trap_known, 1);
        if (op == EPOLL_CTL_MOD)
            atomic_fetch_add(&rearms, 1);
    }
    return f(epfd, op, fd, ev);
}

static void before_wait(void)
{
    /* back in epoll_wait: the events this thread harvested last time have
     * been dispatched (the watch is queued) */
    if (my_harvest) {
        atomic_fetch_add(&dispatched, my_harvest);
        my_harvest = 0;
    }
}

/* The state letter of thread `tid` (/proc/self/task/<tid>/stat), '?' if
 * unknown. */
static char thread_state(pid_t tid)
{
    char path[64], buf[256], *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    f = fopen(path, "r");
    if (f == NULL)
        return '?';
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

/* Wait until the second event of trap_fd has been dispatched: its worker
 * came back to epoll_wait, or went to sleep elsewhere (parked on its
 * condition variable: the dispatch, which never blocks, is behind it). */
static bool wait_second_dispatched(void)
{
    uint64_t until = weft_now_ms() + WAIT_MS;
    int asleep = 0;

    if (!wait_at_least(&harvested, 2))
        return false;
    while (atomic_load(&dispatched) < 2 && asleep < 3) {
        if (weft_now_ms() >= until)
            return false;
        asleep = thread_state(atomic_load(&harvester)) == 'S' ? asleep + 1 : 0;
        sleep_us(1000);
    }
    return true;
}

static int after_wait(struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        if (!atomic_load(&trap_known) || evs[i].data.u64 != atomic_load(&trap_data))
            continue;
        atomic_store(&harvester, (pid_t)gettid());
        atomic_fetch_add(&harvested, 1);
        my_harvest++;
        if (atomic_exchange(&hold_next, 0)) {
            uint64_t until = weft_now_ms() + WAIT_MS;

            atomic_store(&holding, 1);
            while (!atomic_load(&release) && weft_now_ms() < until)
                sleep_us(100);
            atomic_store(&holding, 0);
        }
    }
    return n;
}

int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
    static _Atomic(wait_fn) real;
    wait_fn f = atomic_load(&real);

    if (f == NULL) {
        f = (wait_fn)dlsym(RTLD_NEXT, "epoll_wait");
        atomic_store(&real, f);
    }
    before_wait();
    return after_wait(evs, f(epfd, evs, max, timeout));
}

int epoll_pwait2(int epfd, struct epoll_event *evs, int max, const struct timespec *ts,
                 const sigset_t *mask)
{
    static _Atomic(pwait2_fn) real;
    pwait2_fn f = atomic_load(&real);

    if (f == NULL) {
        f = (pwait2_fn)dlsym(RTLD_NEXT, "epoll_pwait2");
        atomic_store(&real, f);
    }
    if (f == NULL) {
        errno = ENOSYS;
        return -1;
    }
    before_wait();
    return after_wait(evs, f(epfd, evs, max, ts, mask));
}

/* ---- the scenario ----------------------------------------------------------------- */
enum how { SELF_REMOVE, OTHER_THREAD_REMOVE, SELF_LOOP_FREE };

typedef struct scene {
    enum how how;
    weft_loop *loop;
    weft_fdwatch *w;
    atomic_int calls;
    atomic_int queued_again;          /* the callback saw the second event dispatched */
    atomic_int in_cb;                 /* OTHER_THREAD_REMOVE: the callback is waiting */
    atomic_int remover_going;         /* OTHER_THREAD_REMOVE: remove is being called */
    atomic_int removed;               /* OTHER_THREAD_REMOVE: remove returned */
    atomic_int done;                  /* the callback returned */
} scene;

static void on_ready(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    scene *s = arg;

    (void)fd;
    ASSERT(events & WEFT_READABLE);
    ASSERT_EQ(0, atomic_load(&s->removed));
    if (atomic_fetch_add(&s->calls, 1) != 0)
        return;                       /* never after removal: checked below */
    /* the re-armed descriptor fires again while we run: wait until that
     * event has been dispatched, i.e. this watch is queued again */
    atomic_store(&s->queued_again, wait_second_dispatched());
    switch (s->how) {
    case SELF_REMOVE:
        ASSERT_OK(weft_fdwatch_remove(w));
        ASSERT_EQ(-EINVAL, weft_fdwatch_remove(w));   /* still valid memory until we return */
        ASSERT_EQ(-EINVAL, weft_fdwatch_modify(w, WEFT_READABLE));
        break;
    case OTHER_THREAD_REMOVE:
        atomic_store(&s->in_cb, 1);
        ASSERT(wait_at_least(&s->remover_going, 1));
        sleep_us(20000);              /* let the remover reach its wait (either order is valid) */
        break;
    case SELF_LOOP_FREE:
        weft_loop_free(s->loop);
        s->loop = NULL;
        break;
    }
    atomic_store(&s->done, 1);
}

static void run_scene(enum how how)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD, .workers = 2 };
    scene s = { .how = how };
    long live0;
    int p[2], calls_at_remove = 0;

    /* the io_uring backend drops the stale completion by its arm count:
     * this is the epoll backend's story (the uring.net.* rerun pins it) */
    setenv("WEFT_IO_BACKEND", "epoll", 1);
    live0 = harness_live();
    ASSERT_OK(weft_runtime_new(&rt, &opt));
    ASSERT_OK(weft_loop_new(rt, &s.loop));
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    atomic_store(&trap_fd, p[0]);
    ASSERT_OK(weft_fdwatch_add(s.loop, p[0], WEFT_READABLE, on_ready, &s, &s.w));
    ASSERT(atomic_load(&trap_known));

    /* 1. the first event is held in the worker's epoll_wait ... */
    atomic_store(&hold_next, 1);
    ASSERT_EQ(1, write(p[1], "x", 1));   /* readable until the end: never read */
    ASSERT(wait_at_least(&holding, 1));
    /* 2. ... while the watch is neither queued nor in a callback: modify
     * re-arms the descriptor, which fires again once released */
    ASSERT_EQ(0, atomic_load(&s.calls));
    ASSERT_OK(weft_fdwatch_modify(s.w, WEFT_READABLE | WEFT_WRITABLE));  /* a read end: never writable */
    ASSERT(atomic_load(&rearms) >= 1);
    atomic_store(&release, 1);

    if (how == OTHER_THREAD_REMOVE) {
        ASSERT(wait_at_least(&s.in_cb, 1));
        atomic_store(&s.remover_going, 1);
        ASSERT_OK(weft_fdwatch_remove(s.w));  /* waits for the running callback */
        ASSERT_EQ(1, atomic_load(&s.done));
        atomic_store(&s.removed, 1);
        /* a thread descheduled past the callback's nap removes after the
         * callback returned: the queued entry may then run once more (it
         * returns at once); none runs after the remove (checked inside) */
        calls_at_remove = atomic_load(&s.calls);
    }
    ASSERT(wait_at_least(&s.done, 1));
    ASSERT_EQ(1, atomic_load(&s.queued_again));  /* the window was hit: the test means something */
    ASSERT(wait_at_least(&harvested, 2));
    /* the queued entry of a removed watch is dropped, not called */
    sleep_us(20000);
    ASSERT_EQ(how == OTHER_THREAD_REMOVE ? calls_at_remove : 1, atomic_load(&s.calls));
    weft_loop_free(s.loop);           /* NULL after SELF_LOOP_FREE: ignored */
    weft_runtime_free(rt);
    atomic_store(&trap_fd, -1);
    close(p[0]);
    close(p[1]);
    ASSERT_EQ(live0, harness_live());  /* the watch and the loop were freed once */
}

/* A callback removes its own watch while the watch is queued again: the
 * watch is freed once, by the queue's dequeue, after the callback. */
TEST(requeued_self_remove)
{
    run_scene(SELF_REMOVE);
}

/* A plain thread removes the watch while its callback runs and the watch is
 * queued again: remove waits for the callback, the dequeue frees it. */
TEST(requeued_remove_from_thread)
{
    run_scene(OTHER_THREAD_REMOVE);
}

/* A callback frees its loop while its own watch is queued again: the loop's
 * last reference frees the queued watch. */
TEST(requeued_loop_free_from_callback)
{
    run_scene(SELF_LOOP_FREE);
}

/* ---- weft_loop_free() from a plain thread while a callback uses other handles ------
 * weft/fdwatch.h: off the loop, weft_loop_free() "first waits until a
 * callback ... (of any watch or timer, for weft_loop_free) that is running
 * has returned". So the running callback may still use the loop's other
 * watches and timers until it returns. Before the fix, weft_loop_free()
 * removed and freed every other watch and timer first, and waited only
 * after: the callback then modified a freed watch and armed a freed timer
 * (ASan: heap-use-after-free). The callback sees weft_loop_free() begin as
 * weft_timer_new() on the loop turning to -EINVAL. */
typedef struct other_handles {
    weft_loop *loop;
    weft_fdwatch *b;                  /* another watch of the loop, silent */
    weft_timer *t;                    /* a timer of the loop, armed far away */
    atomic_int in_cb, freeing_seen, done;
    int modify_result, arm_result;
} other_handles;

static void on_timer_never(weft_timer *t, void *arg)
{
    (void)t, (void)arg;
    ASSERT(!"the far timer fired");
}

static void on_silent(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    (void)w, (void)fd, (void)events, (void)arg;
}

static void uses_other_handles(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    other_handles *o = arg;
    uint64_t until = weft_now_ms() + WAIT_MS;
    weft_timer *probe;

    (void)w, (void)fd, (void)events;
    if (atomic_exchange(&o->in_cb, 1))
        return;                       /* once */
    /* until weft_loop_free() has begun on the other thread */
    while (weft_timer_new(o->loop, on_timer_never, NULL, &probe) == 0) {
        weft_timer_free(probe);
        ASSERT(weft_now_ms() < until);
        sleep_us(1000);
    }
    atomic_store(&o->freeing_seen, 1);
    sleep_us(20000);                  /* let it get on, if it does not wait for us */
    o->modify_result = weft_fdwatch_modify(o->b, WEFT_READABLE | WEFT_WRITABLE);
    o->arm_result = weft_timer_arm(o->t, 600000);
    atomic_store(&o->done, 1);
}

TEST(loop_free_from_thread_waits_before_removing_other_handles)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD, .workers = 2 };
    other_handles o = { 0 };
    weft_fdwatch *a;
    int pa[2], pb[2];
    long live0 = harness_live();

    ASSERT_OK(weft_runtime_new(&rt, &opt));
    ASSERT_OK(weft_loop_new(rt, &o.loop));
    ASSERT_EQ(0, pipe2(pa, O_NONBLOCK | O_CLOEXEC));
    ASSERT_EQ(0, pipe2(pb, O_NONBLOCK | O_CLOEXEC));
    ASSERT_OK(weft_fdwatch_add(o.loop, pb[0], 0, on_silent, NULL, &o.b));
    ASSERT_OK(weft_timer_new(o.loop, on_timer_never, NULL, &o.t));
    ASSERT_OK(weft_timer_arm(o.t, 600000));
    ASSERT_OK(weft_fdwatch_add(o.loop, pa[0], WEFT_READABLE, uses_other_handles, &o, &a));
    ASSERT_EQ(1, write(pa[1], "x", 1));
    ASSERT(wait_at_least(&o.in_cb, 1));
    weft_loop_free(o.loop);           /* waits for the callback first */
    ASSERT_EQ(1, atomic_load(&o.done));
    ASSERT_EQ(1, atomic_load(&o.freeing_seen));
    ASSERT_OK(o.modify_result);       /* the handles were still valid */
    ASSERT_OK(o.arm_result);
    weft_runtime_free(rt);
    close(pa[0]);
    close(pa[1]);
    close(pb[0]);
    close(pb[1]);
    ASSERT_EQ(live0, harness_live());
}

/* ---- calls on a callback's own handle after it freed / removed it -----------------
 * weft/fdwatch.h: "A callback's own handle, removed or freed by it, stays
 * valid memory until it returns (calls on it return -EINVAL)". Before the
 * fix weft_timer_disarm() on its own freed timer returned 0. Freeing or
 * removing it twice is harmless. */
typedef struct own_calls {
    atomic_int done;
    int arm, disarm, modify, remove2;
} own_calls;

static void timer_frees_itself(weft_timer *t, void *arg)
{
    own_calls *o = arg;

    weft_timer_free(t);
    o->arm = weft_timer_arm(t, 1);
    o->disarm = weft_timer_disarm(t);
    weft_timer_free(t);               /* twice: harmless */
    atomic_store(&o->done, 1);
}

static void watch_removes_itself(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    own_calls *o = arg;

    (void)fd, (void)events;
    ASSERT_OK(weft_fdwatch_remove(w));
    o->modify = weft_fdwatch_modify(w, WEFT_READABLE);
    o->remove2 = weft_fdwatch_remove(w);
    atomic_store(&o->done, 1);
}

TEST(own_handle_calls_after_free_or_remove_return_einval)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD, .workers = 1 };
    weft_loop *loop;
    weft_timer *t;
    weft_fdwatch *w;
    own_calls ot = { .arm = 1, .disarm = 1 }, ow = { .modify = 1, .remove2 = 1 };
    int p[2];
    long live0 = harness_live();

    ASSERT_OK(weft_runtime_new(&rt, &opt));
    ASSERT_OK(weft_loop_new(rt, &loop));
    ASSERT_OK(weft_timer_new(loop, timer_frees_itself, &ot, &t));
    ASSERT_OK(weft_timer_arm(t, 0));
    ASSERT(wait_at_least(&ot.done, 1));
    ASSERT_EQ(-EINVAL, ot.arm);
    ASSERT_EQ(-EINVAL, ot.disarm);
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    ASSERT_OK(weft_fdwatch_add(loop, p[0], WEFT_READABLE, watch_removes_itself, &ow, &w));
    ASSERT_EQ(1, write(p[1], "x", 1));
    ASSERT(wait_at_least(&ow.done, 1));
    ASSERT_EQ(-EINVAL, ow.modify);
    ASSERT_EQ(-EINVAL, ow.remove2);
    /* the descriptor can be watched again */
    ASSERT_OK(weft_fdwatch_add(loop, p[0], 0, on_silent, NULL, &w));
    ASSERT_EQ(-EEXIST, weft_fdwatch_add(loop, p[0], 0, on_silent, NULL, &w));
    ASSERT_OK(weft_fdwatch_remove(w));
    weft_loop_free(loop);
    weft_runtime_free(rt);
    close(p[0]);
    close(p[1]);
    ASSERT_EQ(live0, harness_live());
}

/* ---- one descriptor, one registration per runtime -----------------------------------
 * weft_fdwatch_add(): -EEXIST when the fd is already watched in this
 * runtime, a socket or stream of it included; weft_fd_adopt(): -EEXIST
 * when the descriptor is registered already (a watch included), leaving it
 * open. A loop of another runtime may watch it. */
TEST(watch_and_stream_of_one_descriptor_exclude_each_other)
{
    weft_runtime *rt, *rt2;
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD, .workers = 1 };
    weft_loop *loop, *loop2;
    weft_fdwatch *w = NULL, *w2;
    weft_stream *rd, *wr, *s = NULL;
    int p[2];
    long live0 = harness_live();

    ASSERT_OK(weft_runtime_new(&rt, &opt));
    ASSERT_OK(weft_runtime_new(&rt2, &opt));
    ASSERT_OK(weft_loop_new(rt, &loop));
    ASSERT_OK(weft_loop_new(rt2, &loop2));
    ASSERT_OK(weft_pipe(rt, &rd, &wr));
    if (weft_runtime_io_backend(rt, NULL) == WEFT_IO_EPOLL) {
        /* io_uring does not recognise a descriptor weft opened itself
         * (weft/fdwatch.h) */
        ASSERT_EQ(-EEXIST, weft_fdwatch_add(loop, weft_stream_fd(rd), WEFT_READABLE, on_silent,
                                            NULL, &w));
        ASSERT(w == NULL);
    }
    ASSERT_OK(weft_fdwatch_add(loop2, weft_stream_fd(rd), WEFT_READABLE, on_silent, NULL, &w2));
    ASSERT_OK(weft_fdwatch_remove(w2));
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    ASSERT_OK(weft_fdwatch_add(loop, p[0], WEFT_READABLE, on_silent, NULL, &w));
    ASSERT_EQ(-EEXIST, weft_fd_adopt(rt, p[0], 0, &s));
    ASSERT(s == NULL);
    ASSERT(fcntl(p[0], F_GETFD) >= 0);     /* left open */
    ASSERT_OK(weft_fdwatch_remove(w));
    ASSERT_OK(weft_fd_adopt(rt, p[0], 0, &s));   /* free again */
    ASSERT_OK(weft_stream_close(s));
    ASSERT_OK(weft_stream_close(rd));
    ASSERT_OK(weft_stream_close(wr));
    weft_loop_free(loop);
    weft_loop_free(loop2);
    weft_runtime_free(rt);
    weft_runtime_free(rt2);
    close(p[1]);
    ASSERT_EQ(live0, harness_live());
}

/* ---- a plain thread removes a watch whose running callback frees the loop ---------
 * The remove waits for the callback (weft/fdwatch.h); the callback frees the
 * loop from inside (allowed: it returns at once), and the loop task then
 * ends. Before the fix nothing kept the loop's memory for the waiting
 * remover: the task's end freed the loop (its lock and condition variable
 * included) while the remover still waited on them (ASan:
 * heap-use-after-free). The same for a timer freed from a thread while its
 * callback frees the loop. */
typedef struct frees_loop {
    weft_loop *loop;
    atomic_int in_cb, remover_going, done;
} frees_loop;

static void watch_frees_loop(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    frees_loop *f = arg;

    (void)w, (void)fd, (void)events;
    if (atomic_exchange(&f->in_cb, 1))
        return;
    ASSERT(wait_at_least(&f->remover_going, 1));
    sleep_us(20000);                  /* the remover is waiting for us now */
    weft_loop_free(f->loop);
    atomic_store(&f->done, 1);
}

static void timer_frees_loop(weft_timer *t, void *arg)
{
    frees_loop *f = arg;

    (void)t;
    atomic_store(&f->in_cb, 1);
    ASSERT(wait_at_least(&f->remover_going, 1));
    sleep_us(20000);
    weft_loop_free(f->loop);
    atomic_store(&f->done, 1);
}

static void remove_while_callback_frees_loop(bool timer)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD, .workers = 2 };
    frees_loop f = { 0 };
    weft_fdwatch *w;
    weft_timer *t;
    int p[2];
    long live0 = harness_live();

    ASSERT_OK(weft_runtime_new(&rt, &opt));
    ASSERT_OK(weft_loop_new(rt, &f.loop));
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    if (timer) {
        ASSERT_OK(weft_timer_new(f.loop, timer_frees_loop, &f, &t));
        ASSERT_OK(weft_timer_arm(t, 0));
    } else {
        ASSERT_OK(weft_fdwatch_add(f.loop, p[0], WEFT_READABLE, watch_frees_loop, &f, &w));
        ASSERT_EQ(1, write(p[1], "x", 1));
    }
    ASSERT(wait_at_least(&f.in_cb, 1));
    atomic_store(&f.remover_going, 1);
    if (timer)
        weft_timer_free(t);           /* waits for the callback */
    else
        ASSERT_OK(weft_fdwatch_remove(w));
    ASSERT_EQ(1, atomic_load(&f.done));
    weft_runtime_free(rt);
    close(p[0]);
    close(p[1]);
    ASSERT_EQ(live0, harness_live());
}

TEST(remove_from_thread_while_the_callback_frees_the_loop)
{
    remove_while_callback_frees_loop(false);
}

TEST(timer_free_from_thread_while_the_callback_frees_the_loop)
{
    remove_while_callback_frees_loop(true);
}
