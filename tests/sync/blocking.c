/* SPDX-License-Identifier: MIT */
/* Blocking forms for plain threads (issue 9, item 17): weft_chan_send_wait,
 * weft_chan_recv_wait, weft_oneshot_recv_wait, weft_sem_acquire_wait,
 * weft_mutex_lock_wait. Without any runtime between threads, against tasks
 * on a runtime, on closed channels, misuse, -EDEADLK on a worker, and a
 * many-thread stress (run it under TSan). Every blocking call of a test runs
 * under a watchdog that fails the test instead of letting it hang. */
#define _GNU_SOURCE                   /* usleep */
#include <pthread.h>
#include <unistd.h>

#include "sync_test.h"

/* ---- watchdog: fail (abort) if the test is still running after `secs` ---- */
static atomic_int wd_done;

static void *wd_main(void *arg)
{
    unsigned ms = (unsigned)(uintptr_t)arg;

    for (unsigned t = 0; t < ms; t += 10) {
        if (atomic_load(&wd_done))
            return NULL;
        usleep(10000);
    }
    harness_fail(__FILE__, __LINE__, "watchdog: a blocking wait hung for %u ms", ms);
}

static pthread_t wd_start(unsigned ms)
{
    pthread_t th;

    atomic_store(&wd_done, 0);
    ASSERT(pthread_create(&th, NULL, wd_main, (void *)(uintptr_t)ms) == 0);
    return th;
}

static void wd_stop(pthread_t th)
{
    atomic_store(&wd_done, 1);
    pthread_join(th, NULL);
}

#define WD_MS 30000

TEST(misuse_is_einval)
{
    int v = 0;

    ASSERT_EQ(-EINVAL, weft_chan_send_wait(NULL, &v));
    ASSERT_EQ(-EINVAL, weft_chan_recv_wait(NULL, &v));
    ASSERT_EQ(-EINVAL, weft_oneshot_recv_wait(NULL, &v));
    ASSERT_EQ(-EINVAL, weft_sem_acquire_wait(NULL, 1));
    ASSERT_EQ(-EINVAL, weft_mutex_lock_wait(NULL));
    {
        weft_chan *ch;
        weft_oneshot_tx *tx;
        weft_oneshot_rx *rx;
        weft_sem *s;

        ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
        ASSERT_EQ(-EINVAL, weft_chan_send_wait(ch, NULL));
        ASSERT_EQ(-EINVAL, weft_chan_recv_wait(ch, NULL));
        weft_chan_drop(ch);
        ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
        ASSERT_EQ(-EINVAL, weft_oneshot_recv_wait(rx, NULL));   /* size > 0 */
        weft_oneshot_tx_drop(tx);
        weft_oneshot_rx_drop(rx);
        ASSERT_OK(weft_sem_new(&s, 1));
        ASSERT_EQ(-EINVAL, weft_sem_acquire_wait(s, WEFT_SEM_MAX_PERMITS + 1));
        weft_sem_free(s);
    }
}

/* No runtime anywhere: main and a plain thread talk over a 1-slot channel
 * in both directions (each side waits for the other on every message). */
typedef struct pingpong {
    weft_chan *to, *from;
    int n;
    int err;
} pingpong;

static void *echo_thread(void *arg)
{
    pingpong *p = arg;
    int v;

    for (;;) {
        int err = weft_chan_recv_wait(p->to, &v);

        if (err == -EPIPE)
            break;                                  /* closed and drained */
        if (err != 0 || (err = weft_chan_send_wait(p->from, &(int){ v * 2 })) != 0) {
            p->err = err;
            break;
        }
    }
    return NULL;
}

TEST(chan_wait_between_plain_threads)
{
    pingpong p = { .n = (int)harness_scale(20000) };
    pthread_t th, wd = wd_start(WD_MS);
    int v;

    ASSERT_OK(weft_chan_new(&p.to, sizeof(int), 1));
    ASSERT_OK(weft_chan_new(&p.from, sizeof(int), 1));
    ASSERT(pthread_create(&th, NULL, echo_thread, &p) == 0);
    for (int i = 0; i < p.n; i++) {
        ASSERT_OK(weft_chan_send_wait(p.to, &i));
        ASSERT_OK(weft_chan_recv_wait(p.from, &v));
        ASSERT_EQ(2 * i, v);
    }
    weft_chan_close(p.to);
    pthread_join(th, NULL);
    ASSERT_OK(p.err);
    /* closed: queued messages drain first, then -EPIPE; sends -EPIPE */
    ASSERT_OK(weft_chan_try_send(p.from, &(int){ 5 }));
    weft_chan_close(p.from);
    ASSERT_OK(weft_chan_recv_wait(p.from, &v));
    ASSERT_EQ(5, v);
    ASSERT_EQ(-EPIPE, weft_chan_recv_wait(p.from, &v));
    ASSERT_EQ(-EPIPE, weft_chan_send_wait(p.from, &v));
    ASSERT_EQ(-EPIPE, weft_chan_send_wait(p.to, &v));
    weft_chan_drop(p.to);
    weft_chan_drop(p.from);
    wd_stop(wd);
}

/* A full bounded channel: a blocked sender is released by a receive, and a
 * close releases a blocked sender and a blocked receiver with -EPIPE. */
typedef struct blocked {
    weft_chan *ch;
    int send;                  /* 1: send_wait, 0: recv_wait */
    atomic_int started;
    int result;
} blocked;

static void *blocked_thread(void *arg)
{
    blocked *b = arg;
    int v = 77;

    atomic_store(&b->started, 1);
    b->result = b->send ? weft_chan_send_wait(b->ch, &v) : weft_chan_recv_wait(b->ch, &v);
    return NULL;
}

TEST(chan_wait_released_by_close)
{
    weft_chan *full, *empty;
    blocked s = { 0 }, r = { 0 };
    pthread_t ts, tr, wd = wd_start(WD_MS);

    ASSERT_OK(weft_chan_new(&full, sizeof(int), 1));
    ASSERT_OK(weft_chan_new(&empty, sizeof(int), 1));
    ASSERT_OK(weft_chan_try_send(full, &(int){ 1 }));
    s = (blocked){ .ch = full, .send = 1, .result = 1 };
    r = (blocked){ .ch = empty, .send = 0, .result = 1 };
    ASSERT(pthread_create(&ts, NULL, blocked_thread, &s) == 0);
    ASSERT(pthread_create(&tr, NULL, blocked_thread, &r) == 0);
    ST_WAIT_UNTIL(atomic_load(&s.started) && atomic_load(&r.started));
    usleep(20000);                                  /* let them block */
    ASSERT_EQ(1, s.result);
    ASSERT_EQ(1, r.result);
    weft_chan_close(full);
    weft_chan_close(empty);
    pthread_join(ts, NULL);
    pthread_join(tr, NULL);
    ASSERT_EQ(-EPIPE, s.result);
    ASSERT_EQ(-EPIPE, r.result);
    weft_chan_drop(full);
    weft_chan_drop(empty);
    wd_stop(wd);
}

/* ---- against tasks on a runtime -------------------------------------------- */
typedef struct doubler {
    weft_async co;
    weft_chan *in, *out;
    int v, res;
    weft_chan_recv r;
    weft_chan_send s;
} doubler;

static weft_poll doubler_poll(doubler *d, weft_context *cx, void *out)
{
    WEFT_BEGIN(&d->co);
    for (;;) {
        weft_chan_recv_init(&d->r, d->in, &d->v);
        WEFT_AWAIT(&d->co, weft_chan_recv_poll(&d->r, cx, &d->res));
        weft_chan_recv_drop(&d->r);
        if (d->res != 0)
            break;
        d->v *= 2;
        weft_chan_send_init(&d->s, d->out, &d->v);
        WEFT_AWAIT(&d->co, weft_chan_send_poll(&d->s, cx, &d->res));
        weft_chan_send_drop(&d->s);
        if (d->res != 0)
            break;
    }
    *(int *)out = d->res;
    WEFT_END(&d->co);
}

static void doubler_drop(doubler *d)
{
    weft_chan_recv_drop(&d->r);
    weft_chan_send_drop(&d->s);
}

WEFT_DEFINE_FUTURE(doubler, doubler_poll, doubler_drop, int);

TEST(chan_wait_against_tasks)
{
    weft_runtime *rt = st_runtime(2);
    weft_chan *in, *out;
    weft_join *j[3];
    int n = (int)harness_scale(20000);
    long long sum = 0;
    pthread_t wd = wd_start(WD_MS);

    ASSERT_OK(weft_chan_new(&in, sizeof(int), 2));
    ASSERT_OK(weft_chan_new(&out, sizeof(int), 2));
    for (int k = 0; k < 3; k++)
        ASSERT_OK(weft_spawn(rt, &doubler_future, &(doubler){ .in = in, .out = out }, &j[k]));
    /* main sends everything while it receives: a sender thread */
    for (int i = 0, got = 0; got < n;) {
        int v;

        if (i < n && weft_chan_try_send(in, &i) == 0) {
            i++;
            continue;
        }
        ASSERT_OK(weft_chan_recv_wait(out, &v));
        sum += v;
        got++;
    }
    ASSERT_EQ((long long)n * (n - 1), sum);
    weft_chan_close(in);
    for (int k = 0; k < 3; k++) {
        int res = 0;

        ASSERT_OK(weft_join_wait(j[k], &res));
        ASSERT_EQ(-EPIPE, res);
        weft_join_drop(j[k]);
    }
    /* a thread blocked on send_wait (full channel) is woken by a task's
     * receive: the task takes one message, then stops (`in` is closed) */
    ASSERT_OK(weft_chan_try_send(out, &(int){ 1 }));
    ASSERT_OK(weft_chan_try_send(out, &(int){ 2 }));
    ASSERT_OK(weft_spawn(rt, &doubler_future, &(doubler){ .in = out, .out = in }, &j[0]));
    ASSERT_OK(weft_chan_send_wait(out, &(int){ 3 }));
    {
        int res = 0;

        ASSERT_OK(weft_join_wait(j[0], &res));
        ASSERT_EQ(-EPIPE, res);
        weft_join_drop(j[0]);
    }
    ASSERT_EQ(2, (int)weft_chan_len(out));
    weft_chan_close(out);
    weft_runtime_free(rt);
    weft_chan_drop(in);
    weft_chan_drop(out);
    wd_stop(wd);
}

/* A task that sends a oneshot after a nap; main blocks in recv_wait. */
typedef struct later {
    weft_async co;
    weft_oneshot_tx *tx;
    int v;
    weft_sleep s;
} later;

static weft_poll later_poll(later *l, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&l->co);
    weft_sleep_init(&l->s, 10);
    WEFT_AWAIT(&l->co, weft_sleep_poll(&l->s, cx));
    if (l->v >= 0)
        weft_oneshot_send(l->tx, &l->v);
    else
        weft_oneshot_tx_drop(l->tx);
    l->tx = NULL;
    WEFT_END(&l->co);
}

static void later_drop(later *l)
{
    weft_sleep_drop(&l->s);
    weft_oneshot_tx_drop(l->tx);
}

WEFT_DEFINE_FUTURE_VOID(later, later_poll, later_drop);

TEST(oneshot_recv_wait_from_task_and_thread)
{
    weft_runtime *rt = st_runtime(1);
    weft_oneshot_tx *tx;
    weft_oneshot_rx *rx;
    int v = 0;
    pthread_t wd = wd_start(WD_MS);

    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    ASSERT_OK(weft_spawn_detached(rt, &later_future, &(later){ .tx = tx, .v = 123 }));
    ASSERT_OK(weft_oneshot_recv_wait(rx, &v));
    ASSERT_EQ(123, v);
    ASSERT_EQ(-EPIPE, weft_oneshot_recv_wait(rx, &v));      /* already received */
    weft_oneshot_rx_drop(rx);
    ASSERT_OK(weft_oneshot_new(&tx, &rx, sizeof(int)));
    ASSERT_OK(weft_spawn_detached(rt, &later_future, &(later){ .tx = tx, .v = -1 }));
    ASSERT_EQ(-EPIPE, weft_oneshot_recv_wait(rx, &v));      /* sender dropped */
    weft_oneshot_rx_drop(rx);
    /* a bare signal (size 0), dst NULL */
    ASSERT_OK(weft_oneshot_new(&tx, &rx, 0));
    ASSERT_OK(weft_oneshot_send(tx, NULL));
    ASSERT_OK(weft_oneshot_recv_wait(rx, NULL));
    weft_oneshot_rx_drop(rx);
    weft_runtime_free(rt);
    wd_stop(wd);
}

/* Semaphore and mutex: a plain thread blocks until a task releases. */
typedef struct releaser {
    weft_async co;
    weft_mutex *m;
    weft_sem *s;
    weft_sleep nap;
} releaser;

static weft_poll releaser_poll(releaser *r, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&r->co);
    weft_sleep_init(&r->nap, 10);
    WEFT_AWAIT(&r->co, weft_sleep_poll(&r->nap, cx));
    weft_mutex_unlock(r->m);
    weft_sem_release(r->s, 2);
    WEFT_END(&r->co);
}

static void releaser_drop(releaser *r)
{
    weft_sleep_drop(&r->nap);
}

WEFT_DEFINE_FUTURE_VOID(releaser, releaser_poll, releaser_drop);

TEST(sem_and_mutex_wait_released_by_task)
{
    weft_runtime *rt = st_runtime(1);
    weft_mutex *m;
    weft_sem *s;
    pthread_t wd = wd_start(WD_MS);

    ASSERT_OK(weft_mutex_new(&m));
    ASSERT_OK(weft_sem_new(&s, 0));
    ASSERT_OK(weft_mutex_lock_wait(m));             /* free: at once */
    ASSERT_OK(weft_spawn_detached(rt, &releaser_future, &(releaser){ .m = m, .s = s }));
    ASSERT_OK(weft_mutex_lock_wait(m));             /* until the task unlocks */
    ASSERT_OK(weft_sem_acquire_wait(s, 2));
    ASSERT_EQ(0, (int)weft_sem_available(s));
    ASSERT_OK(weft_mutex_unlock(m));
    weft_sem_close(s);
    ASSERT_EQ(-EPIPE, weft_sem_acquire_wait(s, 1));
    weft_runtime_free(rt);
    weft_mutex_free(m);
    weft_sem_free(s);
    wd_stop(wd);
}

/* On a worker (and inside block_on) they refuse with -EDEADLK, at once. */
typedef struct on_worker {
    weft_chan *ch;
    weft_oneshot_rx *rx;
    weft_sem *s;
    weft_mutex *m;
} on_worker;

static weft_poll on_worker_poll(on_worker *w, weft_context *cx, void *out)
{
    int v = 0, bad = 0;

    (void)cx;
    bad += weft_chan_send_wait(w->ch, &v) != -EDEADLK;
    bad += weft_chan_recv_wait(w->ch, &v) != -EDEADLK;
    bad += weft_oneshot_recv_wait(w->rx, &v) != -EDEADLK;
    bad += weft_sem_acquire_wait(w->s, 1) != -EDEADLK;
    bad += weft_mutex_lock_wait(w->m) != -EDEADLK;
    *(int *)out = bad;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(on_worker, on_worker_poll, NULL, int);

TEST(on_a_worker_they_refuse_with_edeadlk)
{
    weft_runtime *rt = st_runtime(1), *ct;
    on_worker w;
    weft_oneshot_tx *tx;
    weft_join *j;
    int bad = -1;

    ASSERT_OK(weft_chan_new(&w.ch, sizeof(int), 1));
    ASSERT_OK(weft_chan_try_send(w.ch, &(int){ 1 }));  /* even when ready */
    ASSERT_OK(weft_oneshot_new(&tx, &w.rx, sizeof(int)));
    ASSERT_OK(weft_sem_new(&w.s, 1));
    ASSERT_OK(weft_mutex_new(&w.m));
    ASSERT_OK(weft_spawn(rt, &on_worker_future, &w, &j));
    ASSERT_OK(weft_join_wait(j, &bad));
    ASSERT_EQ(0, bad);
    weft_join_drop(j);
    ASSERT_OK(weft_runtime_new(&ct, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    bad = -1;
    ASSERT_OK(weft_block_on(ct, &on_worker_future, &w, &bad));
    ASSERT_EQ(0, bad);
    weft_runtime_free(ct);
    ASSERT_EQ(1, (int)weft_chan_len(w.ch));         /* nothing was taken */
    weft_runtime_free(rt);
    weft_chan_drop(w.ch);
    weft_oneshot_tx_drop(tx);
    weft_oneshot_rx_drop(w.rx);
    weft_sem_free(w.s);
    weft_mutex_free(w.m);
}

/* Stress: P producer threads and C consumer threads on a tiny channel, all
 * blocking, plus tasks doing the same with futures; every message arrives
 * once. Under TSan this checks the parker's protocol. */
enum { P = 3, C = 3 };

typedef struct stress {
    weft_chan *ch;
    int per;
    int base;
    long long sum;
    int got;
} stress;

static void *producer(void *arg)
{
    stress *s = arg;

    for (int i = 0; i < s->per; i++)
        if (weft_chan_send_wait(s->ch, &(int){ s->base + i }) != 0)
            abort();
    return NULL;
}

static void *consumer(void *arg)
{
    stress *s = arg;
    int v;

    while (weft_chan_recv_wait(s->ch, &v) == 0) {
        s->sum += v;
        s->got++;
    }
    return NULL;
}

TEST(stress_many_threads_and_tasks)
{
    weft_runtime *rt = st_runtime(2);
    weft_chan *ch, *back;
    stress ps[P], cs[C];
    pthread_t pt[P], ct[C], wd = wd_start(WD_MS * 2);
    weft_join *j[2];
    int per = (int)harness_scale(20000);
    long long sum = 0, want = 0;
    int got = 0;

    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 2));
    ASSERT_OK(weft_chan_new(&back, sizeof(int), 2));
    /* two tasks forward doubled messages from `back` into `ch` */
    for (int k = 0; k < 2; k++)
        ASSERT_OK(weft_spawn(rt, &doubler_future, &(doubler){ .in = back, .out = ch }, &j[k]));
    for (int k = 0; k < P; k++) {
        ps[k] = (stress){ .ch = k == 0 ? back : ch, .per = per, .base = k * per };
        for (int i = 0; i < per; i++)
            want += (long long)(k * per + i) * (k == 0 ? 2 : 1);
        ASSERT(pthread_create(&pt[k], NULL, producer, &ps[k]) == 0);
    }
    for (int k = 0; k < C; k++) {
        cs[k] = (stress){ .ch = ch };
        ASSERT(pthread_create(&ct[k], NULL, consumer, &cs[k]) == 0);
    }
    for (int k = 0; k < P; k++)
        pthread_join(pt[k], NULL);
    weft_chan_close(back);                          /* the tasks drain it, then stop */
    for (int k = 0; k < 2; k++) {
        int res = 0;

        ASSERT_OK(weft_join_wait(j[k], &res));
        ASSERT_EQ(-EPIPE, res);
        weft_join_drop(j[k]);
    }
    weft_chan_close(ch);
    for (int k = 0; k < C; k++) {
        pthread_join(ct[k], NULL);
        sum += cs[k].sum;
        got += cs[k].got;
    }
    ASSERT_EQ(P * per, got);
    ASSERT_EQ(want, sum);
    weft_runtime_free(rt);
    weft_chan_drop(ch);
    weft_chan_drop(back);
    wd_stop(wd);
}
