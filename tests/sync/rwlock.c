/* SPDX-License-Identifier: MIT */
/* Read-write lock: try/unlock and misuse, FIFO (a waiting writer holds back
 * later readers; readers behind a writer go in together), dropping lock
 * futures in every state (no grant lost), exclusion under contention on a
 * 2-worker runtime, a writer not starved by a stream of readers, random
 * task aborts, allocation faults. */
#include <string.h>

#include "sync_test.h"
#include "weft/lock.h"

#define CX(name, cw)                                                          \
    weft_waker name##_w = cw_waker(cw);                                       \
    weft_context name = weft_context_from_waker(&name##_w)

TEST(rwlock_try_and_unlock)
{
    weft_rwlock *rw;

    ASSERT_OK(weft_rwlock_new(&rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_read(rw));    /* not locked */
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_write(rw));
    ASSERT_OK(weft_rwlock_try_read(rw));
    ASSERT_OK(weft_rwlock_try_read(rw));
    ASSERT_EQ(-EAGAIN, weft_rwlock_try_write(rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_write(rw));   /* read-locked */
    ASSERT_OK(weft_rwlock_unlock_read(rw));
    ASSERT_EQ(-EAGAIN, weft_rwlock_try_write(rw));
    ASSERT_OK(weft_rwlock_unlock_read(rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_read(rw));
    ASSERT_OK(weft_rwlock_try_write(rw));
    ASSERT_EQ(-EAGAIN, weft_rwlock_try_read(rw));
    ASSERT_EQ(-EAGAIN, weft_rwlock_try_write(rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_read(rw));    /* write-locked */
    ASSERT_OK(weft_rwlock_unlock_write(rw));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_write(rw));
    ASSERT_OK(weft_rwlock_try_write(rw));
    ASSERT_OK(weft_rwlock_unlock_write(rw));
    weft_rwlock_free(rw);
}

/* A reader holds; a writer waits; later readers (futures and try_read) wait
 * behind it; the writer gets it next, then the readers together, up to the
 * next writer. */
TEST(rwlock_fifo_writer_blocks_later_readers)
{
    weft_rwlock *rw;
    weft_rwlock_write w1, w2;
    weft_rwlock_read r1, r2, r3;
    cwaker cw1 = { 0 }, cw2 = { 0 }, cr1 = { 0 }, cr2 = { 0 }, cr3 = { 0 };
    CX(xw1, &cw1);
    CX(xw2, &cw2);
    CX(xr1, &cr1);
    CX(xr2, &cr2);
    CX(xr3, &cr3);
    int res;

    ASSERT_OK(weft_rwlock_new(&rw));
    ASSERT_OK(weft_rwlock_try_read(rw));
    weft_rwlock_write_init(&w1, rw);
    weft_rwlock_read_init(&r1, rw);
    weft_rwlock_read_init(&r2, rw);
    weft_rwlock_write_init(&w2, rw);
    weft_rwlock_read_init(&r3, rw);
    ASSERT_EQ(WEFT_PENDING, weft_rwlock_write_poll(&w1, &xw1, &res));
    ASSERT_EQ(WEFT_PENDING, weft_rwlock_read_poll(&r1, &xr1, &res)); /* behind w1 */
    ASSERT_EQ(WEFT_PENDING, weft_rwlock_read_poll(&r2, &xr2, &res));
    ASSERT_EQ(WEFT_PENDING, weft_rwlock_write_poll(&w2, &xw2, &res));
    ASSERT_EQ(WEFT_PENDING, weft_rwlock_read_poll(&r3, &xr3, &res));
    ASSERT_EQ(-EAGAIN, weft_rwlock_try_read(rw));       /* no barging */
    ASSERT_OK(weft_rwlock_unlock_read(rw));
    ASSERT_EQ(1, cw_wakes(&cw1));
    ASSERT_EQ(0, cw_wakes(&cr1));
    ASSERT_EQ(WEFT_READY, weft_rwlock_write_poll(&w1, &xw1, &res));
    ASSERT_OK(res);
    ASSERT_OK(weft_rwlock_unlock_write(rw));
    ASSERT_EQ(1, cw_wakes(&cr1));                       /* both readers */
    ASSERT_EQ(1, cw_wakes(&cr2));
    ASSERT_EQ(0, cw_wakes(&cw2));
    ASSERT_EQ(0, cw_wakes(&cr3));                       /* behind w2 */
    ASSERT_EQ(WEFT_READY, weft_rwlock_read_poll(&r1, &xr1, &res));
    ASSERT_OK(res);
    ASSERT_EQ(WEFT_READY, weft_rwlock_read_poll(&r2, &xr2, &res));
    ASSERT_OK(res);
    ASSERT_OK(weft_rwlock_unlock_read(rw));
    ASSERT_EQ(0, cw_wakes(&cw2));
    ASSERT_OK(weft_rwlock_unlock_read(rw));
    ASSERT_EQ(1, cw_wakes(&cw2));
    ASSERT_EQ(WEFT_READY, weft_rwlock_write_poll(&w2, &xw2, &res));
    ASSERT_OK(res);
    ASSERT_EQ(WEFT_READY, weft_rwlock_write_poll(&w2, &xw2, &res)); /* again: same */
    ASSERT_OK(res);
    ASSERT_OK(weft_rwlock_unlock_write(rw));
    ASSERT_EQ(1, cw_wakes(&cr3));
    ASSERT_EQ(WEFT_READY, weft_rwlock_read_poll(&r3, &xr3, &res));
    ASSERT_OK(weft_rwlock_unlock_read(rw));
    weft_rwlock_write_drop(&w1);
    weft_rwlock_write_drop(&w2);
    weft_rwlock_read_drop(&r1);
    weft_rwlock_read_drop(&r2);
    weft_rwlock_read_drop(&r3);
    weft_rwlock_read_drop(&r3);                         /* idempotent */
    ASSERT_OK(weft_rwlock_try_write(rw));
    ASSERT_OK(weft_rwlock_unlock_write(rw));
    ASSERT_CW_BALANCED(&cw1);
    ASSERT_CW_BALANCED(&cw2);
    ASSERT_CW_BALANCED(&cr1);
    ASSERT_CW_BALANCED(&cr2);
    ASSERT_CW_BALANCED(&cr3);
    weft_rwlock_free(rw);
}

/* Every waiting future dropped, in every state: never polled, pending at the
 * head (those behind go in), granted but not polled (the grant passes on). */
TEST(rwlock_futures_dropped_in_every_state_lose_no_grant)
{
    weft_rwlock *rw;
    weft_rwlock_write w0, w1, w2;
    weft_rwlock_read r0, r1, r2;
    cwaker c = { 0 }, cr1 = { 0 }, cr2 = { 0 }, cw2 = { 0 };
    CX(cx, &c);
    CX(xr1, &cr1);
    CX(xr2, &cr2);
    CX(xw2, &cw2);
    int res;

    ASSERT_OK(weft_rwlock_new(&rw));
    weft_rwlock_write_init(&w0, rw);
    weft_rwlock_read_init(&r0, rw);
    weft_rwlock_write_drop(&w0);                        /* never polled */
    weft_rwlock_read_drop(&r0);
    memset(&w0, 0, sizeof(w0));                         /* zeroed: drop is valid */
    weft_rwlock_write_drop(&w0);

    ASSERT_OK(weft_rwlock_try_read(rw));                /* held by "us" */
    weft_rwlock_write_init(&w1, rw);
    weft_rwlock_read_init(&r1, rw);
    weft_rwlock_read_init(&r2, rw);
    weft_rwlock_write_init(&w2, rw);
    ASSERT_EQ(WEFT_PENDING, weft_rwlock_write_poll(&w1, &cx, &res));
    ASSERT_EQ(WEFT_PENDING, weft_rwlock_read_poll(&r1, &xr1, &res));
    ASSERT_EQ(WEFT_PENDING, weft_rwlock_read_poll(&r2, &xr2, &res));
    ASSERT_EQ(WEFT_PENDING, weft_rwlock_write_poll(&w2, &xw2, &res));
    weft_rwlock_write_drop(&w1);                        /* pending head leaves */
    ASSERT_EQ(1, cw_wakes(&cr1));                       /* readers join ours */
    ASSERT_EQ(1, cw_wakes(&cr2));
    weft_rwlock_read_drop(&r1);                         /* granted, never observed */
    ASSERT_EQ(0, cw_wakes(&cw2));
    ASSERT_EQ(WEFT_READY, weft_rwlock_read_poll(&r2, &xr2, &res));
    ASSERT_OK(res);
    ASSERT_OK(weft_rwlock_unlock_read(rw));             /* ours */
    ASSERT_EQ(0, cw_wakes(&cw2));
    ASSERT_OK(weft_rwlock_unlock_read(rw));             /* r2's */
    ASSERT_EQ(1, cw_wakes(&cw2));                       /* w2 granted */
    weft_rwlock_write_drop(&w2);                        /* granted, dropped: unlocked */
    ASSERT_OK(weft_rwlock_try_write(rw));               /* nothing lost */
    ASSERT_OK(weft_rwlock_unlock_write(rw));
    weft_rwlock_read_drop(&r2);
    ASSERT_CW_BALANCED(&c);
    ASSERT_CW_BALANCED(&cr1);
    ASSERT_CW_BALANCED(&cr2);
    ASSERT_CW_BALANCED(&cw2);
    weft_rwlock_free(rw);
}

/* Property: random read/write futures, polls, drops in every state, and
 * unlocks of what completed; the lock state is always consistent (never a
 * writer with anyone else) and, once everything is released and every woken
 * future driven, the lock is free again. Seed printed on failure. */
#define RS 10
TEST(rwlock_random_cancellation_keeps_lock_consistent)
{
    const uint64_t seed0 = st_seed(0x7e11dULL);
    uint64_t seed = seed0;
    weft_rwlock *rw;
    struct {
        bool live, polled, writer;
        weft_rwlock_read r;
        weft_rwlock_write w;
        cwaker c;
        int seen;
    } sl[RS];
    int readers = 0, writers = 0;
    int steps = (int)harness_scale(100000);

#define RFAIL(...)                                                             \
    do {                                                                      \
        fprintf(stderr, "seed %#llx: ", (unsigned long long)seed0);           \
        harness_fail(__FILE__, __LINE__, __VA_ARGS__);                        \
    } while (0)

    memset(sl, 0, sizeof(sl));
    ASSERT_OK(weft_rwlock_new(&rw));
    for (int step = 0; step < steps; step++) {
        int i = (int)(st_rand(&seed) % RS), op = (int)(st_rand(&seed) % 10);
        weft_waker wk = cw_waker(&sl[i].c);
        weft_context cx = weft_context_from_waker(&wk);
        int res = 0;
        weft_poll p;

        if (op == 0 && readers) {
            ASSERT_OK(weft_rwlock_unlock_read(rw));
            readers--;
        } else if (op == 0 && writers) {
            ASSERT_OK(weft_rwlock_unlock_write(rw));
            writers--;
        } else if (!sl[i].live) {
            sl[i].live = true;
            sl[i].polled = false;
            sl[i].writer = st_rand(&seed) % 3 == 0;
            if (sl[i].writer)
                weft_rwlock_write_init(&sl[i].w, rw);
            else
                weft_rwlock_read_init(&sl[i].r, rw);
        } else if (op == 1) {
            if (sl[i].writer)
                weft_rwlock_write_drop(&sl[i].w);
            else
                weft_rwlock_read_drop(&sl[i].r);
            sl[i].live = false;
        } else {
            sl[i].seen = cw_wakes(&sl[i].c);
            sl[i].polled = true;
            p = sl[i].writer ? weft_rwlock_write_poll(&sl[i].w, &cx, &res)
                             : weft_rwlock_read_poll(&sl[i].r, &cx, &res);
            if (p == WEFT_READY) {
                if (res != 0)
                    RFAIL("step %d: result %d", step, res);
                if (sl[i].writer) {
                    weft_rwlock_write_drop(&sl[i].w);
                    writers++;
                } else {
                    weft_rwlock_read_drop(&sl[i].r);
                    readers++;
                }
                sl[i].live = false;
            }
        }
        if (writers > 1 || (writers && readers))
            RFAIL("step %d: %d writers, %d readers", step, writers, readers);
    }
    while (readers--)
        ASSERT_OK(weft_rwlock_unlock_read(rw));
    while (writers--)
        ASSERT_OK(weft_rwlock_unlock_write(rw));
    for (;;) {                                          /* drive woken ones only */
        bool any = false, progress = false;

        for (int i = 0; i < RS; i++) {
            weft_waker wk = cw_waker(&sl[i].c);
            weft_context cx = weft_context_from_waker(&wk);
            int res = 0;
            weft_poll p;

            if (!sl[i].live)
                continue;
            any = true;
            if (sl[i].polled && cw_wakes(&sl[i].c) == sl[i].seen)
                continue;
            progress = true;
            sl[i].seen = cw_wakes(&sl[i].c);
            sl[i].polled = true;
            p = sl[i].writer ? weft_rwlock_write_poll(&sl[i].w, &cx, &res)
                             : weft_rwlock_read_poll(&sl[i].r, &cx, &res);
            if (p == WEFT_READY) {
                ASSERT_OK(res);
                if (sl[i].writer) {
                    weft_rwlock_write_drop(&sl[i].w);
                    ASSERT_OK(weft_rwlock_unlock_write(rw));
                } else {
                    weft_rwlock_read_drop(&sl[i].r);
                    ASSERT_OK(weft_rwlock_unlock_read(rw));
                }
                sl[i].live = false;
            }
        }
        if (!any)
            break;
        if (!progress)
            RFAIL("lock futures wait on a free lock with no wake");
    }
    ASSERT_OK(weft_rwlock_try_write(rw));
    ASSERT_OK(weft_rwlock_unlock_write(rw));
    for (int i = 0; i < RS; i++)
        ASSERT_CW_BALANCED(&sl[i].c);
    weft_rwlock_free(rw);
#undef RFAIL
}

TEST(rwlock_misuse_and_alloc_fault)
{
    weft_rwlock *rw = NULL;
    weft_rwlock_read r;
    weft_rwlock_write w;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = 0;

    ASSERT_EQ(-EINVAL, weft_rwlock_new(NULL));
    ASSERT_EQ(-EINVAL, weft_rwlock_try_read(NULL));
    ASSERT_EQ(-EINVAL, weft_rwlock_try_write(NULL));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_read(NULL));
    ASSERT_EQ(-EINVAL, weft_rwlock_unlock_write(NULL));
    weft_rwlock_free(NULL);
    weft_rwlock_read_init(&r, NULL);
    ASSERT_EQ(WEFT_READY, weft_rwlock_read_poll(&r, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_rwlock_read_drop(&r);
    res = 0;
    weft_rwlock_write_init(&w, NULL);
    ASSERT_EQ(WEFT_READY, weft_rwlock_write_poll(&w, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_rwlock_write_drop(&w);
    weft_rwlock_read_init(NULL, NULL);
    weft_rwlock_write_drop(NULL);
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_rwlock_new(&rw));
    ASSERT(rw == NULL);
    ASSERT_EQ(0, harness_live());
    harness_fail_alloc_at(0);
}

/* ---- Tasks on a 2-worker runtime ----------------------------------------------- */
struct rw_shared {
    weft_rwlock *rw;
    atomic_int readers, writers, max_readers, fail;
    atomic_int writer_done;
    atomic_long reads_after;       /* reads that began after the writer queued */
    atomic_int writer_queued;
};

typedef struct rw_user {
    weft_async co;
    struct rw_shared *sh;
    unsigned i, iters;
    bool writer;
    int res;
    weft_rwlock_read r;
    weft_rwlock_write w;
    weft_yield y;
} rw_user;

static weft_poll rw_user_poll(rw_user *u, weft_context *cx, void *out)
{
    struct rw_shared *sh = u->sh;
    int now, max;

    (void)out;
    WEFT_BEGIN(&u->co);
    for (u->i = 0; u->i < u->iters; u->i++) {
        if (u->writer) {
            weft_rwlock_write_init(&u->w, sh->rw);
            WEFT_AWAIT(&u->co, weft_rwlock_write_poll(&u->w, cx, &u->res));
            weft_rwlock_write_drop(&u->w);
            if (u->res != 0 || atomic_fetch_add(&sh->writers, 1) != 0 ||
                atomic_load(&sh->readers) != 0)
                atomic_fetch_add(&sh->fail, 1);      /* a writer saw company */
            WEFT_YIELD(&u->co, &u->y, cx);           /* hold it across a yield */
            if (atomic_load(&sh->readers) != 0)
                atomic_fetch_add(&sh->fail, 1);
            atomic_fetch_sub(&sh->writers, 1);
            if (weft_rwlock_unlock_write(sh->rw) != 0)
                atomic_fetch_add(&sh->fail, 1);
        } else {
            weft_rwlock_read_init(&u->r, sh->rw);
            WEFT_AWAIT(&u->co, weft_rwlock_read_poll(&u->r, cx, &u->res));
            weft_rwlock_read_drop(&u->r);
            now = atomic_fetch_add(&sh->readers, 1) + 1;
            if (u->res != 0 || atomic_load(&sh->writers) != 0)
                atomic_fetch_add(&sh->fail, 1);      /* a reader saw a writer */
            max = atomic_load(&sh->max_readers);
            while (now > max && !atomic_compare_exchange_weak(&sh->max_readers, &max, now))
                ;
            if (u->i % 2 == 0)
                WEFT_YIELD(&u->co, &u->y, cx);
            if (atomic_load(&sh->writers) != 0)
                atomic_fetch_add(&sh->fail, 1);
            atomic_fetch_sub(&sh->readers, 1);
            if (weft_rwlock_unlock_read(sh->rw) != 0)
                atomic_fetch_add(&sh->fail, 1);
        }
    }
    WEFT_END(&u->co);
}

static void rw_user_drop(rw_user *u)
{
    weft_rwlock_read_drop(&u->r);
    weft_rwlock_write_drop(&u->w);
}

WEFT_DEFINE_FUTURE_VOID(rw_user, rw_user_poll, rw_user_drop);

TEST(rwlock_tasks_exclusion_under_contention)
{
    weft_runtime *rt = st_runtime(2);
    struct rw_shared sh;
    unsigned tasks = 48, iters = (unsigned)harness_scale(2000);

    memset(&sh, 0, sizeof(sh));
    ASSERT_OK(weft_rwlock_new(&sh.rw));
    for (unsigned t = 0; t < tasks; t++)
        ASSERT_OK(weft_spawn_detached(rt, &rw_user_future,
                                      &(rw_user){ .sh = &sh, .iters = iters,
                                                  .writer = t % 6 == 0 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&sh.fail));
    ASSERT_EQ(0, atomic_load(&sh.readers));
    ASSERT_EQ(0, atomic_load(&sh.writers));
    printf("at most %d readers at once\n", atomic_load(&sh.max_readers));
    ASSERT_OK(weft_rwlock_try_write(sh.rw));            /* free at the end */
    ASSERT_OK(weft_rwlock_unlock_write(sh.rw));
    weft_runtime_free(rt);
    weft_rwlock_free(sh.rw);
}

/* Readers overlap forever (each holds across a yield and re-locks at once),
 * so the lock is never free; a writer must still get in, and the readers
 * stop once it has. A starving lock would run the readers into their cap. */
typedef struct rw_streamer {
    weft_async co;
    struct rw_shared *sh;
    unsigned long i;
    int res;
    weft_rwlock_read r;
    weft_yield y;
} rw_streamer;

#define STREAM_CAP 2000000ul

static weft_poll rw_streamer_poll(rw_streamer *u, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&u->co);
    for (u->i = 0; !atomic_load(&u->sh->writer_done); u->i++) {
        if (u->i == STREAM_CAP) {
            atomic_fetch_add(&u->sh->fail, 1);       /* the writer starved */
            break;
        }
        weft_rwlock_read_init(&u->r, u->sh->rw);
        WEFT_AWAIT(&u->co, weft_rwlock_read_poll(&u->r, cx, &u->res));
        weft_rwlock_read_drop(&u->r);
        if (atomic_load(&u->sh->writer_queued))
            atomic_fetch_add(&u->sh->reads_after, 1);
        WEFT_YIELD(&u->co, &u->y, cx);
        weft_rwlock_unlock_read(u->sh->rw);
    }
    WEFT_END(&u->co);
}

static void rw_streamer_drop(rw_streamer *u)
{
    weft_rwlock_read_drop(&u->r);
}

WEFT_DEFINE_FUTURE_VOID(rw_streamer, rw_streamer_poll, rw_streamer_drop);

typedef struct rw_lone_writer {
    weft_async co;
    struct rw_shared *sh;
    unsigned i;
    int res;
    weft_rwlock_write w;
    weft_yield y;
} rw_lone_writer;

static weft_poll rw_lone_writer_poll(rw_lone_writer *u, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&u->co);
    for (u->i = 0; u->i < 50; u->i++)                 /* let the stream start */
        WEFT_YIELD(&u->co, &u->y, cx);
    weft_rwlock_write_init(&u->w, u->sh->rw);
    atomic_store(&u->sh->writer_queued, 1);
    WEFT_AWAIT(&u->co, weft_rwlock_write_poll(&u->w, cx, &u->res));
    weft_rwlock_write_drop(&u->w);
    if (u->res != 0 || atomic_load(&u->sh->readers) != 0)
        atomic_fetch_add(&u->sh->fail, 1);
    atomic_store(&u->sh->writer_done, 1);
    weft_rwlock_unlock_write(u->sh->rw);
    WEFT_END(&u->co);
}

static void rw_lone_writer_drop(rw_lone_writer *u)
{
    weft_rwlock_write_drop(&u->w);
}

WEFT_DEFINE_FUTURE_VOID(rw_lone_writer, rw_lone_writer_poll, rw_lone_writer_drop);

TEST(rwlock_writer_not_starved_by_reader_stream)
{
    weft_runtime *rt = st_runtime(2);
    struct rw_shared sh;

    memset(&sh, 0, sizeof(sh));
    ASSERT_OK(weft_rwlock_new(&sh.rw));
    for (unsigned t = 0; t < 16; t++)
        ASSERT_OK(weft_spawn_detached(rt, &rw_streamer_future,
                                      &(rw_streamer){ .sh = &sh }));
    ASSERT_OK(weft_spawn_detached(rt, &rw_lone_writer_future,
                                  &(rw_lone_writer){ .sh = &sh }));
    ASSERT_OK(weft_runtime_run(rt));
    /* FIFO: only readers already queued before the writer get in ahead of
     * it (at most one per reader task), plus those after it finished */
    fprintf(stderr, "writer queued %d, done %d; %ld reads began after the writer queued\n",
           atomic_load(&sh.writer_queued), atomic_load(&sh.writer_done),
           atomic_load(&sh.reads_after));
    ASSERT_EQ(0, atomic_load(&sh.fail));
    ASSERT_EQ(1, atomic_load(&sh.writer_done));
    ASSERT_OK(weft_rwlock_try_write(sh.rw));
    ASSERT_OK(weft_rwlock_unlock_write(sh.rw));
    weft_runtime_free(rt);
    weft_rwlock_free(sh.rw);
}

/* Tasks aborted at random points (waiting, granted not polled, holding across
 * a yield): once they are all gone the lock is free. */
typedef struct rw_churner {
    weft_async co;
    weft_rwlock *rw;
    unsigned i;
    bool writer;
    int holding;                   /* 1 read, 2 write */
    int res;
    weft_rwlock_read r;
    weft_rwlock_write w;
    weft_yield y;
} rw_churner;

static weft_poll rw_churner_poll(rw_churner *u, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&u->co);
    for (u->i = 0; u->i < 5000; u->i++) {
        if (u->writer) {
            weft_rwlock_write_init(&u->w, u->rw);
            WEFT_AWAIT(&u->co, weft_rwlock_write_poll(&u->w, cx, &u->res));
            weft_rwlock_write_drop(&u->w);
            u->holding = 2;
        } else {
            weft_rwlock_read_init(&u->r, u->rw);
            WEFT_AWAIT(&u->co, weft_rwlock_read_poll(&u->r, cx, &u->res));
            weft_rwlock_read_drop(&u->r);
            u->holding = 1;
        }
        WEFT_YIELD(&u->co, &u->y, cx);
        if (u->holding == 2)
            weft_rwlock_unlock_write(u->rw);
        else
            weft_rwlock_unlock_read(u->rw);
        u->holding = 0;
    }
    WEFT_END(&u->co);
}

static void rw_churner_drop(rw_churner *u)
{
    weft_rwlock_read_drop(&u->r);
    weft_rwlock_write_drop(&u->w);
    if (u->holding == 2)
        weft_rwlock_unlock_write(u->rw);
    else if (u->holding == 1)
        weft_rwlock_unlock_read(u->rw);
}

WEFT_DEFINE_FUTURE_VOID(rw_churner, rw_churner_poll, rw_churner_drop);

TEST(rwlock_random_task_aborts_leave_lock_free)
{
    const uint64_t seed0 = st_seed(0xab0e7e1ULL);
    uint64_t seed = seed0;
    weft_runtime *rt = st_runtime(2);
    enum { T = 32 };
    weft_join *j[T];
    weft_rwlock *rw;
    unsigned rounds = (unsigned)harness_scale(30), cancelled = 0;

    ASSERT_OK(weft_rwlock_new(&rw));
    for (unsigned round = 0; round < rounds; round++) {
        for (int t = 0; t < T; t++)
            ASSERT_OK(weft_spawn(rt, &rw_churner_future,
                                 &(rw_churner){ .rw = rw,
                                                .writer = st_rand(&seed) % 4 == 0 },
                                 &j[t]));
        for (int k = 0; k < T / 2; k++) {
            int t = (int)(st_rand(&seed) % T);

            for (unsigned spin = (unsigned)(st_rand(&seed) % 50); spin; spin--)
                sched_yield();
            weft_join_abort(j[t]);
        }
        for (int t = 0; t < T; t++) {
            int err = weft_join_wait(j[t], NULL);

            if (err != 0 && err != -ECANCELED)
                harness_fail(__FILE__, __LINE__, "seed %#llx: join %d",
                             (unsigned long long)seed0, err);
            cancelled += err == -ECANCELED;
            weft_join_drop(j[t]);
        }
        if (weft_rwlock_try_write(rw) != 0)
            harness_fail(__FILE__, __LINE__, "seed %#llx round %u: lock not free",
                         (unsigned long long)seed0, round);
        ASSERT_OK(weft_rwlock_unlock_write(rw));
    }
    printf("%u of %u tasks cancelled\n", cancelled, rounds * T);
    weft_runtime_free(rt);
    weft_rwlock_free(rw);
}
