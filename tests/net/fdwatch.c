/* SPDX-License-Identifier: MIT */
/* fd watches and loop timers (weft/fdwatch.h): level-triggered callbacks on a
 * pipe, interest changes and removal from inside and outside callbacks,
 * timers that fire once and never early, re-arming, freeing everything
 * with the loop, bad arguments, and a multi-thread churn test for TSan. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#define WAIT_MS 20000u

static weft_runtime *new_rt(unsigned workers)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD, .workers = workers };

    ASSERT_EQ(0, weft_runtime_new(&rt, &opt));
    return rt;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* wait until *v >= want, or fail after WAIT_MS */
static void wait_for(atomic_int *v, int want)
{
    uint64_t until = weft_now_ms() + WAIT_MS;

    while (atomic_load(v) < want) {
        ASSERT(weft_now_ms() < until);
        sleep_ms(1);
    }
}

static void make_pipe(int p[2])
{
    ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
}

/* ---- readable: one byte per call, level-triggered ----------------------------- */
static atomic_int calls;
static atomic_int inside;
static atomic_int overlap;

static void read_one(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    char c;

    (void)w;
    (void)arg;
    if (atomic_fetch_add(&inside, 1) != 0)
        atomic_fetch_add(&overlap, 1);
    ASSERT(events & WEFT_READABLE);
    if (read(fd, &c, 1) == 1)
        atomic_fetch_add(&calls, 1);
    atomic_fetch_sub(&inside, 1);
}

TEST(readable_level_triggered)
{
    weft_runtime *rt = new_rt(2);
    weft_loop *l;
    weft_fdwatch *w;
    int p[2];

    atomic_store(&calls, 0);
    make_pipe(p);
    ASSERT_EQ(0, weft_loop_new(rt, &l));
    ASSERT_EQ(0, weft_fdwatch_add(l, p[0], WEFT_READABLE, read_one, NULL, &w));
    /* three bytes at once: the callback reads one per call and is called
     * again while the pipe stays readable */
    ASSERT_EQ(3, write(p[1], "abc", 3));
    wait_for(&calls, 3);
    for (int i = 0; i < 50; i++)
        ASSERT_EQ(1, write(p[1], "x", 1));
    wait_for(&calls, 53);
    ASSERT_EQ(0, atomic_load(&overlap));
    ASSERT_EQ(0, weft_fdwatch_remove(w));
    weft_loop_free(l);
    close(p[0]);
    close(p[1]);
    weft_runtime_free(rt);
}

/* ---- writable, interest set to 0 inside the callback -------------------------- */
static atomic_int wcalls;

static void writable_once(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    (void)fd;
    (void)arg;
    ASSERT(events & WEFT_WRITABLE);
    atomic_fetch_add(&wcalls, 1);
    ASSERT_EQ(0, weft_fdwatch_modify(w, 0));
}

TEST(writable_and_modify)
{
    weft_runtime *rt = new_rt(2);
    weft_loop *l;
    weft_fdwatch *w;
    int p[2];

    atomic_store(&wcalls, 0);
    make_pipe(p);
    ASSERT_EQ(0, weft_loop_new(rt, &l));
    ASSERT_EQ(0, weft_fdwatch_add(l, p[1], WEFT_WRITABLE, writable_once, NULL, &w));
    wait_for(&wcalls, 1);
    sleep_ms(30);
    ASSERT_EQ(1, atomic_load(&wcalls));          /* silenced by modify(0) */
    ASSERT_EQ(0, weft_fdwatch_modify(w, WEFT_WRITABLE));
    wait_for(&wcalls, 2);
    sleep_ms(30);
    ASSERT_EQ(2, atomic_load(&wcalls));
    ASSERT_EQ(0, weft_fdwatch_remove(w));
    weft_loop_free(l);
    close(p[0]);
    close(p[1]);
    weft_runtime_free(rt);
}

/* ---- remove from inside the callback ----------------------------------------- */
static atomic_int rcalls;

static void remove_self(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    (void)fd;
    (void)events;
    (void)arg;
    atomic_fetch_add(&rcalls, 1);
    ASSERT_EQ(0, weft_fdwatch_remove(w));
}

TEST(remove_inside_callback)
{
    weft_runtime *rt = new_rt(2);
    weft_loop *l;
    weft_fdwatch *w;
    int p[2];

    atomic_store(&rcalls, 0);
    make_pipe(p);
    ASSERT_EQ(0, weft_loop_new(rt, &l));
    ASSERT_EQ(0, weft_fdwatch_add(l, p[0], WEFT_READABLE, remove_self, NULL, &w));
    ASSERT_EQ(1, write(p[1], "x", 1));          /* never read: stays readable */
    wait_for(&rcalls, 1);
    sleep_ms(30);
    ASSERT_EQ(1, atomic_load(&rcalls));
    /* the descriptor can be watched again */
    ASSERT_EQ(0, weft_fdwatch_add(l, p[0], WEFT_READABLE, remove_self, NULL, &w));
    wait_for(&rcalls, 2);
    weft_loop_free(l);
    close(p[0]);
    close(p[1]);
    weft_runtime_free(rt);
}

/* ---- hang-up ---------------------------------------------------------------------- */
static atomic_int hup;

static void on_hup(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    char buf[16];

    (void)arg;
    if (read(fd, buf, sizeof(buf)) == 0 && (events & WEFT_READABLE)) {
        atomic_fetch_add(&hup, 1);
        weft_fdwatch_modify(w, 0);
    }
}

TEST(hangup_reported_as_readable)
{
    weft_runtime *rt = new_rt(1);
    weft_loop *l;
    weft_fdwatch *w;
    int p[2];

    atomic_store(&hup, 0);
    make_pipe(p);
    ASSERT_EQ(0, weft_loop_new(rt, &l));
    ASSERT_EQ(0, weft_fdwatch_add(l, p[0], WEFT_READABLE, on_hup, NULL, &w));
    close(p[1]);
    wait_for(&hup, 1);
    weft_loop_free(l);
    close(p[0]);
    weft_runtime_free(rt);
}

/* ---- timers ------------------------------------------------------------------------- */
static atomic_int fired;
static atomic_int early;
static _Atomic uint64_t due_at;

static void on_timer(weft_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    if (weft_now_ms() < atomic_load(&due_at))
        atomic_fetch_add(&early, 1);
    atomic_fetch_add(&fired, 1);
}

TEST(timer_fires_once_never_early)
{
    weft_runtime *rt = new_rt(2);
    weft_loop *l;
    weft_timer *t;

    atomic_store(&fired, 0);
    atomic_store(&early, 0);
    ASSERT_EQ(0, weft_loop_new(rt, &l));
    ASSERT_EQ(0, weft_timer_new(l, on_timer, NULL, &t));
    atomic_store(&due_at, weft_now_ms() + 30);
    ASSERT_EQ(0, weft_timer_arm(t, 30));
    wait_for(&fired, 1);
    sleep_ms(50);
    ASSERT_EQ(1, atomic_load(&fired));
    ASSERT_EQ(0, atomic_load(&early));
    /* re-arm: moves the deadline; disarm: it never fires */
    atomic_store(&due_at, weft_now_ms() + 5000);
    ASSERT_EQ(0, weft_timer_arm(t, 5000));
    atomic_store(&due_at, weft_now_ms() + 20);
    ASSERT_EQ(0, weft_timer_arm(t, 20));
    wait_for(&fired, 2);
    ASSERT_EQ(0, weft_timer_arm(t, 20));
    ASSERT_EQ(0, weft_timer_disarm(t));
    sleep_ms(60);
    ASSERT_EQ(2, atomic_load(&fired));
    ASSERT_EQ(0, atomic_load(&early));
    weft_timer_free(t);
    weft_loop_free(l);
    weft_runtime_free(rt);
}

/* a timer that re-arms itself from its callback, then frees itself */
static atomic_int ticks;

static void periodic(weft_timer *t, void *arg)
{
    (void)arg;
    if (atomic_fetch_add(&ticks, 1) + 1 < 10)
        ASSERT_EQ(0, weft_timer_arm(t, 1));
    else
        weft_timer_free(t);
}

TEST(timer_rearm_and_free_inside_callback)
{
    weft_runtime *rt = new_rt(2);
    weft_loop *l;
    weft_timer *t;

    atomic_store(&ticks, 0);
    ASSERT_EQ(0, weft_loop_new(rt, &l));
    ASSERT_EQ(0, weft_timer_new(l, periodic, NULL, &t));
    ASSERT_EQ(0, weft_timer_arm(t, 0));
    wait_for(&ticks, 10);
    sleep_ms(20);
    ASSERT_EQ(10, atomic_load(&ticks));
    weft_loop_free(l);
    weft_runtime_free(rt);
}

/* ---- the loop frees what is left; misuse -------------------------------------- */
static void never(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    (void)w;
    (void)fd;
    (void)events;
    (void)arg;
}

static void never_t(weft_timer *t, void *arg)
{
    (void)t;
    (void)arg;
}

TEST(loop_free_releases_everything)
{
    weft_runtime *rt = new_rt(2);
    weft_loop *l;
    weft_fdwatch *w;
    weft_timer *t;
    int p[2], q[2];

    make_pipe(p);
    make_pipe(q);
    ASSERT_EQ(0, weft_loop_new(rt, &l));
    ASSERT_EQ(0, weft_fdwatch_add(l, p[0], WEFT_READABLE, never, NULL, &w));
    ASSERT_EQ(0, weft_fdwatch_add(l, q[1], 0, never, NULL, &w));
    ASSERT_EQ(-EEXIST, weft_fdwatch_add(l, p[0], WEFT_READABLE, never, NULL, &w));
    ASSERT_EQ(0, weft_timer_new(l, never_t, NULL, &t));
    ASSERT_EQ(0, weft_timer_arm(t, 100000));
    ASSERT_EQ(0, weft_timer_new(l, never_t, NULL, &t));
    weft_loop_free(l);
    /* the descriptors stay open and usable */
    ASSERT_EQ(1, write(p[1], "x", 1));
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
    weft_runtime_free(rt);
}

TEST(bad_arguments)
{
    weft_runtime *rt = new_rt(1);
    weft_loop *l;
    weft_fdwatch *w;
    weft_timer *t;
    int fd;

    ASSERT_EQ(-EINVAL, weft_loop_new(NULL, &l));     /* not on a worker */
    ASSERT_EQ(-EINVAL, weft_loop_new(rt, NULL));
    ASSERT_EQ(0, weft_loop_new(rt, &l));
    ASSERT_EQ(-EINVAL, weft_fdwatch_add(NULL, 0, WEFT_READABLE, never, NULL, &w));
    ASSERT_EQ(-EINVAL, weft_fdwatch_add(l, -1, WEFT_READABLE, never, NULL, &w));
    ASSERT_EQ(-EINVAL, weft_fdwatch_add(l, 0, WEFT_READABLE, NULL, NULL, &w));
    ASSERT_EQ(-EINVAL, weft_fdwatch_add(l, 0, 0x100, never, NULL, &w));
    ASSERT_EQ(-EINVAL, weft_fdwatch_add(l, 0, WEFT_READABLE, never, NULL, NULL));
    fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);       /* a regular file */
    ASSERT(fd >= 0);
    ASSERT_EQ(-EPERM, weft_fdwatch_add(l, fd, WEFT_READABLE, never, NULL, &w));
    close(fd);
    ASSERT_EQ(-EBADF, weft_fdwatch_add(l, 1000000, WEFT_READABLE, never, NULL, &w));
    ASSERT_EQ(-EINVAL, weft_fdwatch_modify(NULL, 0));
    ASSERT_EQ(-EINVAL, weft_fdwatch_remove(NULL));
    ASSERT_EQ(-EINVAL, weft_timer_new(NULL, never_t, NULL, &t));
    ASSERT_EQ(-EINVAL, weft_timer_new(l, NULL, NULL, &t));
    ASSERT_EQ(-EINVAL, weft_timer_arm(NULL, 1));
    ASSERT_EQ(-EINVAL, weft_timer_disarm(NULL));
    weft_timer_free(NULL);
    weft_loop_free(NULL);
    weft_loop_free(l);
    weft_runtime_free(rt);
}

/* ---- churn: threads add, modify and remove watches while bytes flow --------------- */
#define CHURN_PIPES 8

struct churn {
    weft_loop *l;
    int p[CHURN_PIPES][2];
    atomic_int stop;
    atomic_int got;
};

static void drain(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    struct churn *c = arg;
    char buf[64];
    ssize_t n;

    (void)w;
    (void)events;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        atomic_fetch_add(&c->got, (int)n);
}

static void *churner(void *arg)
{
    struct churn *c = arg;
    uint64_t x = (uint64_t)pthread_self();
    size_t rounds = harness_scale(3000);

    for (size_t i = 0; i < rounds; i++) {
        int k;
        weft_fdwatch *w;

        x = x * 6364136223846793005ull + 1442695040888963407ull;
        k = (int)((x >> 33) % CHURN_PIPES);
        /* EEXIST when another thread watches the same pipe: fine */
        if (weft_fdwatch_add(c->l, c->p[k][0], WEFT_READABLE, drain, c, &w) == 0) {
            if (write(c->p[k][1], "y", 1) != 1)
                break;
            if (x & (1u << 20))
                weft_fdwatch_modify(w, (x & (1u << 21)) ? 0 : WEFT_READABLE);
            weft_fdwatch_remove(w);
        }
    }
    return NULL;
}

TEST(churn_threads)
{
    weft_runtime *rt = new_rt(2);
    struct churn c;
    pthread_t th[4];

    memset(&c, 0, sizeof(c));
    for (int i = 0; i < CHURN_PIPES; i++)
        make_pipe(c.p[i]);
    ASSERT_EQ(0, weft_loop_new(rt, &c.l));
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(0, pthread_create(&th[i], NULL, churner, &c));
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    weft_loop_free(c.l);
    for (int i = 0; i < CHURN_PIPES; i++) {
        close(c.p[i][0]);
        close(c.p[i][1]);
    }
    weft_runtime_free(rt);
}
