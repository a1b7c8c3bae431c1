/* weft/time.h - timers: sleep for a duration or until a deadline. */
#ifndef WEFT_TIME_H
#define WEFT_TIME_H

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
 * runtime's timers on its first pending poll). Cancel safety: dropping it
 * while pending removes the timer; nothing else is lost. */
typedef struct weft_sleep {
    /* private: may change in any release */
    uint64_t deadline;
    _Atomic int state;
    void *time;                       /* the runtime's timers, once registered */
    struct {
        void *prev, *next;
        uint64_t deadline;
        weft_waker waker;
        unsigned level, slot;
    } entry;
} weft_sleep;

/* Sleep `ms` milliseconds from now (the deadline is fixed here, at init). */
WEFT_API void weft_sleep_init(weft_sleep *s, uint64_t ms);
/* Sleep until weft_now_ms() >= deadline_ms. */
WEFT_API void weft_sleep_until_init(weft_sleep *s, uint64_t deadline_ms);
WEFT_API weft_poll weft_sleep_poll(weft_sleep *s, weft_context *cx);
/* Valid in every state; idempotent. */
WEFT_API void weft_sleep_drop(weft_sleep *s);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_TIME_H */
