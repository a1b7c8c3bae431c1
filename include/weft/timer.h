/* SPDX-License-Identifier: MIT */
/* weft/timer.h - timers: sleep for a duration or until a deadline. */
#ifndef WEFT_TIMER_H
#define WEFT_TIMER_H

#include <stdint.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Milliseconds on CLOCK_MONOTONIC (the clock every weft deadline uses).
 * Thread: any. */
WEFT_API uint64_t weft_now_ms(void);

/* A sleep future: ready once its deadline has passed, never before. Timers
 * have 1 ms resolution and live inside the future (a sleep allocates
 * nothing); the runtime's worker that parks drives them, so an idle runtime
 * fires a timer within about a millisecond of its deadline. Output: none.
 * Must be polled by a task of a weft runtime (it registers with that
 * runtime's timers on its first pending poll). A sleep that is due at its
 * first look (0 ms, or a deadline already passed) can be ready at once,
 * fresh after fresh: it then spends a unit of the task's cooperative budget
 * (weft/core.h), and with the budget spent returns PENDING once (the task
 * goes to the back of the run queue), so a task that sleeps 0 ms in a loop
 * lets the others run; a sleep the timers fired spends nothing. Polled
 * without a waker (weft/core.h, "Context") it is READY at once, deadline
 * or not, and registers nothing. Cancel safety: dropping it while pending
 * removes the timer; nothing else is lost. */
typedef struct weft_sleep {
    /* private: may change in any release. 64 bytes: with a task header, a
     * task that only sleeps fits a 128-byte cell. `state` is accessed
     * only with __atomic builtins (a plain int, so C++ can include this). */
    int state;
    void *time;                       /* the runtime's timers, once registered */
    struct {
        void *prev, *next;
        uint64_t deadline;            /* the sleep's deadline (ms) */
        weft_waker waker;
        unsigned level, slot;
    } entry;
} weft_sleep;

/* Sleep `ms` milliseconds from now (the deadline is fixed here, at init).
 * ms 0 is due at once: the sleep (and a weft_timeout of 0 ms) is ready at
 * its first poll, also when polled by hand (on a worker: unless the task's
 * budget is spent, see above). Deadline sums saturate: a duration past the clock's range (now + ms above
 * UINT64_MAX) sleeps for ever, it never wraps into the past.
 * There is no reset: to move the deadline of a sleep that was polled,
 * weft_sleep_drop() it (which removes its timer), then init it again. An
 * init over a sleep that is still registered (polled PENDING, not dropped)
 * is a misuse the init cannot detect (it cannot tell a registered sleep from
 * uninitialised memory): the timer wheel would keep a link to it. */
WEFT_API void weft_sleep_init(weft_sleep *s, uint64_t ms);
/* Sleep until weft_now_ms() >= deadline_ms. */
WEFT_API void weft_sleep_until_init(weft_sleep *s, uint64_t deadline_ms);
WEFT_API weft_poll weft_sleep_poll(weft_sleep *s, weft_context *cx);
/* The deadline fixed at init, in weft_now_ms() milliseconds. */
WEFT_API uint64_t weft_sleep_deadline(const weft_sleep *s);
/* Valid in every state; idempotent. */
WEFT_API void weft_sleep_drop(weft_sleep *s);

/* ---- Timeout ---------------------------------------------------------------
 * Run any future with a time limit. init takes ownership of the inner future
 * (`inner`, of type `type`, stays in the caller's storage and must outlive
 * this one): the timeout drops it exactly once, when it completes, when time
 * runs out, or in weft_timeout_drop(). Output: *result = 0 with the inner
 * output in `out` (type->output_size bytes; `out` may be NULL when that is 0),
 * or -ETIMEDOUT (the inner future has been dropped; `out` untouched), or
 * -EINVAL for a NULL or invalid type. The inner future is polled first, so
 * one that is ready at the deadline wins. Fairness rule: that holds even when
 * the task's cooperative budget (weft/core.h) is spent, e.g. deep in a large
 * select: a leaf refused by the budget returns PENDING without looking, so
 * once the deadline has passed the timeout polls the inner future once more
 * on a budget of its own (bounded: one poll, charged to the task) and only
 * a PENDING from that poll means -ETIMEDOUT. Cancel safety: dropping the
 * timeout drops the inner future (its own cancel safety applies).
 * weft_timeout_drop() is valid in every state and idempotent; a timeout
 * polled after it completes at once with -EINVAL (`out` untouched: the
 * inner future is gone and is never polled again). Polled without a waker
 * (weft/core.h, "Context"): -EINVAL, `out` untouched, and nothing changed:
 * the inner future is not polled (nor dropped). */
typedef struct weft_timeout {
    /* private: may change in any release */
    const weft_future_type *type;
    void *inner;
    bool inner_live;
    int result;
    bool done;
    weft_sleep sleep;
} weft_timeout;

WEFT_API void weft_timeout_init(weft_timeout *t, const weft_future_type *type, void *inner,
                                uint64_t ms);
WEFT_API weft_poll weft_timeout_poll(weft_timeout *t, weft_context *cx, int *result, void *out);
WEFT_API void weft_timeout_drop(weft_timeout *t);

/* ---- Interval --------------------------------------------------------------
 * A tick every `period_ms`: the first one period after init, then at fixed
 * multiples of the period from there. Missed ticks are skipped, not bunched:
 * a task that comes back late gets one tick at once, with *missed set to the
 * number of ticks that passed unseen, and the schedule stays on its grid
 * (the next tick is the next multiple after now). Never early. Output of a
 * tick: *missed (may be NULL). period 0 is treated as 1. Deadline sums
 * saturate: a tick that would fall past the clock's range (UINT64_MAX ms,
 * e.g. period_ms = UINT64_MAX) never comes; the interval stays pending
 * without spinning, it never wraps into the past. Polled without a waker
 * (weft/core.h, "Context"): READY at once with *missed = 0, and no tick
 * taken (the schedule stays as it was). Cancel safety:
 * weft_interval_drop() while a tick is pending loses nothing: a later
 * weft_interval_tick() re-arms it on the same grid. */
typedef struct weft_interval {
    /* private: may change in any release */
    uint64_t period, next;
    bool armed;
    weft_sleep sleep;
} weft_interval;

WEFT_API void weft_interval_init(weft_interval *iv, uint64_t period_ms);
WEFT_API weft_poll weft_interval_tick(weft_interval *iv, weft_context *cx, uint64_t *missed);
WEFT_API void weft_interval_drop(weft_interval *iv);

/* ---- Ready-made descriptors -------------------------------------------------
 * For composition (weft_select between a receive and a sleep, weft_spawn of
 * a bare sleep), named as net.h names its own: the type name + _future.
 *   weft_sleep_future     a weft_sleep; no output (output_size 0).
 *   weft_interval_future  one tick of a weft_interval; output: uint64_t,
 *                         the ticks missed (as weft_interval_tick's
 *                         *missed). Its drop is weft_interval_drop(): the
 *                         interval keeps its schedule for later ticks.
 * weft_timeout has none: it has two outputs (the result and the inner
 * future's output); wrap it in an async function. */
WEFT_API extern const weft_future_type weft_sleep_future;
WEFT_API extern const weft_future_type weft_interval_future;

#ifdef __cplusplus
}
#endif
#endif /* WEFT_TIMER_H */
