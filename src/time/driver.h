/* SPDX-License-Identifier: MIT */
/* The runtime's timers (internal): a wheel under a mutex, driven by the
 * worker that parks (the watcher naps until the next deadline) and checked
 * by busy workers every few dozen polls. There is no timer thread. */
#ifndef WEFT_TIME_DRIVER_H
#define WEFT_TIME_DRIVER_H

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "task/task.h"
#include "time/wheel.h"
#include "weft/timer.h"

struct weft__time {
    /* A spinlock (time_lock()): each worker arms and cancels in its own
     * wheel, so it is nearly always free, and a pthread mutex's call and
     * unlock RMW were a third of an arm + cancel's instructions. Held for
     * a wheel operation, or a driver's batch of DRIVE_BATCH entries (plus
     * PRECASCADE moves), never across a waker call. */
    _Alignas(64) _Atomic unsigned char lock;
    struct weft__wheel wheel;         /* ->lock */
    /* a lower bound of the wheel's next deadline (ms), UINT64_MAX exactly
     * when the wheel is empty; written under ->lock, read without it by
     * parking and busy workers (a hint). Invariant: never later than the
     * earliest armed deadline (an arm lowers it to its own deadline); it
     * may be earlier (a cancel leaves it as it was): the driver that then
     * looks fires nothing and publishes the wheel's true next. */
    _Alignas(64) _Atomic uint64_t next;   /* its own line: read by every worker */
    /* metrics (weft/observe.h), ->lock */
    uint64_t registered, fired, cancelled, late_ns;
    uint64_t late_hist[WEFT_HIST_BUCKETS_];   /* ns after the deadline */
    /* set by the scheduler: wake whoever sleeps past `deadline` */
    void (*kick)(void *ctx, uint64_t deadline);
    void *kick_ctx;
};

static inline void weft__time_lock(struct weft__time *tm)
{
    unsigned spins = 0;

    /* acquire: pairs with the release store in weft__time_unlock() */
    while (atomic_exchange_explicit(&tm->lock, 1, memory_order_acquire)) {
        /* relaxed: only waits for a 0; the exchange above re-checks it */
        while (atomic_load_explicit(&tm->lock, memory_order_relaxed)) {
            if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            } else {
                sched_yield();        /* the holder may be preempted */
            }
        }
    }
}

static inline void weft__time_unlock(struct weft__time *tm)
{
    /* release: pairs with the acquire exchange in weft__time_lock() */
    atomic_store_explicit(&tm->lock, 0, memory_order_release);
}

/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t weft__now_ns(void);
/* weft_sleep_poll() for weft's own futures, which checked their context
 * already (util/cx.h): s and cx valid, cx with a waker. */
weft_poll weft__sleep_poll(weft_sleep *s, weft_context *cx);

/* Milliseconds on CLOCK_MONOTONIC, rounded down / up. */
uint64_t weft__now_ms(void);
uint64_t weft__now_ms_ceil(void);

/* a + b and a * b, saturated at UINT64_MAX: every deadline sum in the time
 * layer goes through these, so a huge duration or period means "never"
 * rather than wrapping around into the past (and firing at once). */
static inline uint64_t weft__time_add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static inline uint64_t weft__time_mul_sat(uint64_t a, uint64_t b)
{
    return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

void weft__time_init(struct weft__time *tm, void (*kick)(void *, uint64_t), void *ctx);
void weft__time_destroy(struct weft__time *tm);

static inline uint64_t weft__time_next(struct weft__time *tm)
{
    /* relaxed: a hint (see above) */
    return atomic_load_explicit(&tm->next, memory_order_relaxed);
}

/* What weft_runtime_metrics() reports of the timers. */
struct weft__time_stats {
    uint64_t armed, registered, fired, cancelled, late_ns;
    uint64_t late_hist[WEFT_HIST_BUCKETS_];
};
/* Add tm's figures to *out (the runtime sums its workers' wheels). */
void weft__time_stats_add(struct weft__time *tm, struct weft__time_stats *out);

/* Fire every timer due at `now`: wake their tasks. Returns how many fired.
 * Any thread. */
unsigned weft__time_drive(struct weft__time *tm, uint64_t now);

#endif
