/* SPDX-License-Identifier: MIT */
/* Helpers shared by the sync-layer tests (header only; every .c under
 * tests/ is its own binary; everything static inline). */
#ifndef WEFT_TESTS_SYNC_TEST_H
#define WEFT_TESTS_SYNC_TEST_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "harness.h"
#include "weft.h"

#define ST_WATCHDOG_NS ((uint64_t)60 * 1000 * 1000 * 1000)

/* Wait (on any thread) until `cond` holds; only a hang trips the watchdog. */
#define ST_WAIT_UNTIL(cond)                                                   \
    do {                                                                      \
        uint64_t st_end_ = harness_now_ns() + ST_WATCHDOG_NS;                 \
        while (!(cond)) {                                                     \
            if (harness_now_ns() > st_end_)                                   \
                harness_fail(__FILE__, __LINE__, "watchdog: %s never held",   \
                             #cond);                                          \
            sched_yield();                                                    \
        }                                                                     \
    } while (0)

/* ---- A counting waker: counts wakes and checks references balance ---------- */
typedef struct cwaker {
    atomic_int wakes;      /* wake + wake_by_ref */
    atomic_int clones;
    atomic_int drops;      /* drop + wake (which consumes) */
} cwaker;

static inline weft_waker cw_clone(const void *d);
static inline void cw_wake(const void *d)
{
    cwaker *c = (cwaker *)(uintptr_t)d;

    atomic_fetch_add(&c->wakes, 1);
    atomic_fetch_add(&c->drops, 1);
}

static inline void cw_wake_by_ref(const void *d)
{
    atomic_fetch_add(&((cwaker *)(uintptr_t)d)->wakes, 1);
}

static inline void cw_drop(const void *d)
{
    atomic_fetch_add(&((cwaker *)(uintptr_t)d)->drops, 1);
}

static const weft_waker_vtable cw_vtable = { cw_clone, cw_wake, cw_wake_by_ref, cw_drop };

static inline weft_waker cw_clone(const void *d)
{
    atomic_fetch_add(&((cwaker *)(uintptr_t)d)->clones, 1);
    return (weft_waker){ d, &cw_vtable };
}

static inline weft_waker cw_waker(cwaker *c)
{
    return (weft_waker){ c, &cw_vtable };
}

static inline int cw_wakes(cwaker *c)
{
    return atomic_load(&c->wakes);
}

/* Every clone the futures took has been dropped or consumed. */
#define ASSERT_CW_BALANCED(c) ASSERT_EQ(atomic_load(&(c)->clones), atomic_load(&(c)->drops))

static inline weft_runtime *st_runtime(unsigned workers)
{
    weft_runtime *rt = NULL;
    int err = weft_runtime_new(&rt, &(weft_runtime_options){ .workers = workers });

    if (err != 0)
        harness_fail(__FILE__, __LINE__, "weft_runtime_new: %s", weft_strerror(err));
    return rt;
}

/* The seed of a property test: `fixed`, or WEFT_SEED from the environment
 * (to replay a seed printed by a failure). */
static inline uint64_t st_seed(uint64_t fixed)
{
    const char *e = getenv("WEFT_SEED");

    return e ? (uint64_t)strtoull(e, NULL, 0) : fixed;
}

/* Tiny deterministic PRNG (xorshift64*) for property tests. */
static inline uint64_t st_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

#endif
