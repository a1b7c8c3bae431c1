/* SPDX-License-Identifier: MIT */
/* A hierarchical timer wheel (internal): 6 levels of 64 slots at 1 ms
 * resolution, 2^36 ms (2.2 years) of range. Insert and remove are O(1);
 * advancing visits only occupied slots. Not thread-safe: the runtime guards
 * it with a mutex. The timer entries live inside the futures that wait on
 * them (weft_sleep), so a timer allocates nothing.
 *
 * An entry at level L sits in slot (deadline >> 6L) & 63, where L is the
 * highest 6-bit group in which its deadline differs from the wheel's time:
 * everything at level 0 is due within the current 64 ms window, everything
 * at level L+1 after the whole current level-L window. Advancing empties the
 * next occupied slot of the lowest occupied level: a level-0 slot fires, a
 * higher one is re-inserted nearer (cascade).
 *
 * Level 0 has two rings: the current 64 ms window's and the next one's.
 * The next window's timers go straight to the second ring, and the level-1
 * slot that holds the next window is moved into it a little at every
 * advance (PRECASCADE entries), so that no advance moves a whole slot at
 * once: with 100 timers due per millisecond, a level-1 slot holds about
 * 6,400, and moving them in one go held the lock for over a millisecond
 * while that millisecond's timers waited. When the wheel's time enters the
 * next window the rings swap roles (`cur0` flips; entries keep their ring).
 * Level 1 has two rings in the same way, for the current 4,096 ms block and
 * the next: the level-2 slot that holds the next block is moved into the
 * second ring ahead of time (it held everything due in the next block, and
 * crossing a block boundary moved it all at once). */
#ifndef WEFT_TIME_WHEEL_H
#define WEFT_TIME_WHEEL_H

#include <stdbool.h>
#include <stdint.h>

#include "util/list.h"
#include "weft/core.h"

#define WHEEL_LEVELS 6
#define WHEEL_SLOTS 64

enum { TIMER_IDLE = 0, TIMER_REGISTERED = 1, TIMER_FIRED = 2 };

struct weft__timer {
    struct weft__list link;           /* in a slot while registered */
    uint64_t deadline;                /* ms on CLOCK_MONOTONIC */
    weft_waker waker;                 /* taken by the wheel when it fires */
    unsigned level, slot;
};

/* Physical rings: 0 and WHEEL_LEVELS are the two level-0 rings (which one
 * is the current window's: cur0), 1 and WHEEL_LEVELS + 1 the two level-1
 * rings (cur1: the current block's), 2..WHEEL_LEVELS-1 the higher levels.
 * An entry's `level` field names its physical ring. */
#define WHEEL_RINGS (WHEEL_LEVELS + 2)

struct weft__wheel {
    uint64_t elapsed;                 /* ms: everything before has fired */
    uint64_t occupied[WHEEL_RINGS];   /* bit s: slot s is non-empty */
    size_t count;
    unsigned cur0;                    /* 0 or WHEEL_LEVELS: the current window's ring */
    unsigned cur1;                    /* 1 or WHEEL_LEVELS + 1: the current block's ring */
    struct weft__list slots[WHEEL_RINGS][WHEEL_SLOTS];
};

void weft__wheel_init(struct weft__wheel *w, uint64_t now);

/* Add t (deadline set). false: already due (deadline <= elapsed); t is not
 * added. */
bool weft__wheel_insert(struct weft__wheel *w, struct weft__timer *t);

void weft__wheel_remove(struct weft__wheel *w, struct weft__timer *t);

/* The earliest time something may be due (a slot's start), or UINT64_MAX. */
uint64_t weft__wheel_next(const struct weft__wheel *w);

/* Advance to `now`, moving at most `max` due timers out (their wakers into
 * wakers[], their entries unlinked; the caller marks them fired). Returns
 * the number taken; call again while it returns `max`. */
unsigned weft__wheel_advance(struct weft__wheel *w, uint64_t now, struct weft__timer **due,
                             unsigned max);

#endif
