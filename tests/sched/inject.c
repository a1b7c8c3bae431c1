// SPDX-License-Identifier: MIT
/* The inject queue's wake policy (src/sched/schedule.c): a push notifies a
 * worker only when it makes the queue non-empty, and a pop that leaves tasks
 * behind notifies in turn; a batch is cut outside the queue's lock (the
 * queue is taken whole, the rest put back at the front). Bursts of spawns
 * from plain threads into an idle runtime: between bursts every worker
 * parks, so each burst must wake them again, and the pushes behind the
 * first must still all run. A lost wake-up shows as a burst that never
 * finishes (the watchdog). */
#define _GNU_SOURCE
#include "sched_test.h"

enum { SPAWNERS = 2, BURST = 64 };

static atomic_long ran[SPAWNERS];

typedef struct bump {
    unsigned who;
} bump;

static weft_poll bump_poll(bump *b, weft_context *cx, void *out)
{
    (void)cx, (void)out;
    atomic_fetch_add(&ran[b->who], 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID_STATIC(bump, bump_poll, NULL);

struct spawner {
    weft_runtime *rt;
    unsigned who, rounds;
    bool gaps;                 /* sleep between bursts: the workers park */
    int err;
};

static void *spawner_main(void *arg)
{
    struct spawner *s = arg;
    long want = 0;

    for (unsigned r = 0; r < s->rounds; r++) {
        uint64_t end;

        for (unsigned i = 0; i < BURST; i++) {
            int err = weft_spawn_detached(s->rt, &bump_future, &(bump){ s->who });

            if (err < 0) {
                s->err = err;
                return NULL;
            }
        }
        want += BURST;
        end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);
        while (atomic_load(&ran[s->who]) < want) {
            if (harness_now_ns() > end) {
                s->err = -ETIMEDOUT;       /* a burst left unrun */
                return NULL;
            }
            usleep(s->gaps ? 200 : 10);
        }
        if (s->gaps && r % 8 == 0)
            usleep(2000);                  /* long enough for every worker to park */
    }
    return NULL;
}

static void bursts(unsigned workers, bool gaps)
{
    weft_runtime *rt;
    pthread_t th[SPAWNERS];
    struct spawner sp[SPAWNERS];
    unsigned rounds = (unsigned)harness_scale(gaps ? 200 : 2000);

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = workers }));
    for (unsigned i = 0; i < SPAWNERS; i++) {
        atomic_store(&ran[i], 0);
        sp[i] = (struct spawner){ rt, i, rounds, gaps, 0 };
        START_THREAD(&th[i], spawner_main, &sp[i]);
    }
    for (unsigned i = 0; i < SPAWNERS; i++) {
        JOIN_THREAD_WITHIN(th[i], 4 * WATCHDOG_MS, "spawner");
        ASSERT_OK(sp[i].err);
        ASSERT_EQ((long)rounds * BURST, atomic_load(&ran[i]));
    }
    weft_runtime_free(rt);
}

TEST(bursts_into_a_parked_runtime_all_run_one_worker)
{
    bursts(1, true);
}

TEST(bursts_into_a_parked_runtime_all_run_two_workers)
{
    bursts(2, true);
}

TEST(bursts_into_a_parked_runtime_all_run_four_workers)
{
    bursts(4, true);
}

TEST(back_to_back_bursts_all_run_four_workers)
{
    bursts(4, false);
}

/* Wakes from a plain thread land behind each other in the inject queue:
 * each task waits on a waker the thread wakes in a burst. */
struct gate {
    pthread_mutex_t lock;
    weft_waker w[BURST];               /* ->lock */
    bool has[BURST];                   /* ->lock */
    unsigned open_round;               /* ->lock */
};

static struct gate gate = { .lock = PTHREAD_MUTEX_INITIALIZER };
static atomic_long passed;

typedef struct waiter {
    unsigned idx, rounds, round;
    weft_async co;
} waiter;

static weft_poll waiter_wait(waiter *f, weft_context *cx)
{
    bool open;

    pthread_mutex_lock(&gate.lock);
    open = gate.open_round >= f->round;
    if (!open && !gate.has[f->idx]) {
        gate.w[f->idx] = weft_waker_clone(weft_context_waker(cx));
        gate.has[f->idx] = true;
    }
    pthread_mutex_unlock(&gate.lock);
    return open ? WEFT_READY : WEFT_PENDING;
}

static weft_poll waiter_poll(waiter *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (f->round = 1; f->round <= f->rounds; f->round++) {
        WEFT_AWAIT(&f->co, waiter_wait(f, cx));
        atomic_fetch_add(&passed, 1);
    }
    WEFT_END(&f->co);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(waiter, waiter_poll, NULL);

TEST(bursts_of_foreign_wakes_all_run_four_workers)
{
    weft_runtime *rt;
    unsigned rounds = (unsigned)harness_scale(500);

    atomic_store(&passed, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 4 }));
    for (unsigned i = 0; i < BURST; i++)
        ASSERT_OK(weft_spawn_detached(rt, &waiter_future, &(waiter){ .idx = i, .rounds = rounds }));
    for (unsigned r = 1; r <= rounds; r++) {
        weft_waker w[BURST];
        unsigned n = 0;

        pthread_mutex_lock(&gate.lock);
        gate.open_round = r;
        for (unsigned i = 0; i < BURST; i++) {
            if (gate.has[i]) {
                w[n++] = gate.w[i];
                gate.has[i] = false;
            }
        }
        pthread_mutex_unlock(&gate.lock);
        for (unsigned i = 0; i < n; i++)
            weft_waker_wake(&w[i]);       /* back to back: behind each other */
        WAIT_AT_LEAST(&passed, (long)r * BURST, WATCHDOG_MS, "tasks through the gate");
    }
    weft_runtime_free(rt);
}
