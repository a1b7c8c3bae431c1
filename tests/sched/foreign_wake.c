/* SPDX-License-Identifier: MIT */
/* A plain thread wakes a task, the task completes at once on a worker, and
 * the runtime is freed right away, while the waking thread may still be
 * inside the scheduler (pushing to the inject queue, notifying a worker).
 * The waker's thread must hold the runtime until it is done with it: ASan
 * and TSan watch for the use-after-free this once was (found by the HTTP
 * example's shutdown under TSan). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"
#include "weft.h"

static weft_waker stored;
static atomic_int parked;

typedef struct waits_once {
    bool woke;
} waits_once;

static weft_poll waits_once_poll(waits_once *f, weft_context *cx, void *out)
{
    (void)out;
    if (f->woke)
        return WEFT_READY;
    f->woke = true;
    stored = weft_waker_clone(weft_context_waker(cx));
    atomic_store_explicit(&parked, 1, memory_order_release);
    return WEFT_PENDING;
}

WEFT_DEFINE_FUTURE_VOID(waits_once, waits_once_poll, NULL);

static void *waker_main(void *arg)
{
    (void)arg;
    weft_waker_wake(&stored);
    return NULL;
}

static void rounds(unsigned workers)
{
    size_t n = harness_scale(2000);

    for (size_t i = 0; i < n; i++) {
        weft_runtime *rt;
        weft_join *j;
        pthread_t th;

        ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_MULTI_THREAD,
                                                                .workers = workers }));
        atomic_store(&parked, 0);
        ASSERT_OK(weft_spawn(rt, &waits_once_future, &(waits_once){ 0 }, &j));
        while (!atomic_load_explicit(&parked, memory_order_acquire))
            ;
        ASSERT_EQ(0, pthread_create(&th, NULL, waker_main, NULL));
        ASSERT_OK(weft_join_wait(j, NULL));
        weft_join_drop(j);
        weft_runtime_free(rt);        /* the waker thread may still be inside */
        pthread_join(th, NULL);
    }
}

TEST(foreign_wake_then_free_multi_thread)
{
    rounds(2);
}

TEST(foreign_wake_then_free_one_worker)
{
    rounds(1);
}
