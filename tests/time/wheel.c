/* SPDX-License-Identifier: MIT */
/* The timer wheel by itself: due timers come out in deadline order, never
 * before their deadline, none is left behind, across every level, with
 * removal at random; the time a caller would sleep to is never later than
 * the earliest deadline. */
#include <stdlib.h>

#include "harness.h"
#include "time/wheel.h"

#define N 4000

static struct weft__timer timers[N];
static bool live[N];

static uint64_t lcg(uint64_t *x)
{
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return *x >> 33;
}

static void check_wheel(uint64_t seed, uint64_t base, uint64_t spread)
{
    struct weft__wheel w;
    struct weft__timer *due[16];
    uint64_t now = base, x = seed;
    int fired = 0, removed = 0, n = (int)harness_scale(N);

    weft__wheel_init(&w, base);
    for (int i = 0; i < n; i++) {
        timers[i].deadline = base + 1 + lcg(&x) % spread;
        timers[i].waker = WEFT_WAKER_EMPTY;
        ASSERT(weft__wheel_insert(&w, &timers[i]));
        live[i] = true;
    }
    ASSERT_EQ(n, w.count);
    while (fired + removed < n) {
        uint64_t next = weft__wheel_next(&w), earliest = UINT64_MAX;
        unsigned got;

        for (int i = 0; i < n; i++)
            if (live[i] && timers[i].deadline < earliest)
                earliest = timers[i].deadline;
        /* sleeping until `next` never oversleeps the earliest deadline */
        if (next > earliest)
            harness_fail(__FILE__, __LINE__, "seed %llu: next %llu after earliest %llu",
                         (unsigned long long)seed, (unsigned long long)next,
                         (unsigned long long)earliest);
        /* step: sometimes exactly to the next slot, sometimes far */
        now = (lcg(&x) % 4 == 0) ? now + lcg(&x) % (spread / 8 + 1) : (next > now ? next : now);
        do {
            got = weft__wheel_advance(&w, now, due, 16);
            for (unsigned k = 0; k < got; k++) {
                int i = (int)(due[k] - timers);

                ASSERT(live[i]);
                ASSERT(due[k]->deadline <= now);               /* never early */
                live[i] = false;
                fired++;
            }
        } while (got == 16);
        /* nothing due is left behind */
        for (int i = 0; i < n; i++)
            if (live[i] && timers[i].deadline <= now)
                harness_fail(__FILE__, __LINE__, "seed %llu: timer %d due at %llu left at %llu",
                             (unsigned long long)seed, i,
                             (unsigned long long)timers[i].deadline, (unsigned long long)now);
        /* remove one at random */
        if (lcg(&x) % 3 == 0) {
            int i = (int)(lcg(&x) % (uint64_t)n);

            if (live[i]) {
                weft__wheel_remove(&w, &timers[i]);
                live[i] = false;
                removed++;
            }
        }
    }
    ASSERT_EQ(0, w.count);
    ASSERT_EQ(UINT64_MAX, weft__wheel_next(&w));
}

TEST(wheel_fires_in_order_within_64ms)
{
    check_wheel(1, 1000, 64);
}

TEST(wheel_fires_across_levels)
{
    check_wheel(2, 123456, 5000000);      /* ms spread over levels 0..3 */
}

TEST(wheel_fires_far_deadlines)
{
    check_wheel(3, 7, (uint64_t)1 << 34);  /* months: levels up to 5 */
}

TEST(wheel_batches_come_out_sorted)
{
    struct weft__wheel w;
    struct weft__timer *due[8];
    uint64_t x = 9, prev = 0;
    int n = 500, fired = 0;

    weft__wheel_init(&w, 0);
    for (int i = 0; i < n; i++) {
        timers[i].deadline = 1 + lcg(&x) % 100000;
        ASSERT(weft__wheel_insert(&w, &timers[i]));
    }
    /* advancing one millisecond at a time yields deadlines in order */
    for (uint64_t now = 1; fired < n; now++) {
        unsigned got;

        do {
            got = weft__wheel_advance(&w, now, due, 8);
            for (unsigned k = 0; k < got; k++) {
                ASSERT_EQ(now, due[k]->deadline);
                ASSERT(due[k]->deadline >= prev);
                prev = due[k]->deadline;
                fired++;
            }
        } while (got == 8);
    }
}

TEST(wheel_refuses_what_is_due)
{
    struct weft__wheel w;
    struct weft__timer t = { .deadline = 50 };

    weft__wheel_init(&w, 100);
    ASSERT(!weft__wheel_insert(&w, &t));
    t.deadline = 100;
    ASSERT(!weft__wheel_insert(&w, &t));
    t.deadline = 101;
    ASSERT(weft__wheel_insert(&w, &t));
    ASSERT_EQ(101, weft__wheel_next(&w));
    weft__wheel_remove(&w, &t);
    ASSERT_EQ(UINT64_MAX, weft__wheel_next(&w));
}

/* The level-1 slot that holds the next 64 ms window is moved into the next
 * level-0 ring a little at each advance, so that entering the window moves
 * nothing at once (a whole slot moved in one go held the timer lock for over
 * a millisecond with W6's 6,400 timers per slot). And the deadlines still
 * come out exactly on time, in order. */
TEST(wheel_moves_the_next_window_ahead_of_time)
{
    struct weft__wheel w;
    struct weft__timer *due[64];
    int n = 3000, fired = 0;
    uint64_t x = 5, base = 4096 * 10;         /* a 4,096 ms boundary's start */
    unsigned l1slot;

    weft__wheel_init(&w, base);
    /* deadlines in the second window from now: level 1 at insert time */
    for (int i = 0; i < n; i++) {
        timers[i].deadline = base + 128 + lcg(&x) % 64;
        ASSERT(weft__wheel_insert(&w, &timers[i]));
        ASSERT_EQ(1, timers[i].level);
    }
    l1slot = (unsigned)(((base + 128) >> 6) & 63);
    ASSERT(w.occupied[1] & ((uint64_t)1 << l1slot));
    /* advance through the first window into the second, one ms at a time:
     * 64 advances of at most PRECASCADE moves each empty the slot */
    for (uint64_t now = base + 1; now < base + 128; now++) {
        ASSERT_EQ(0, weft__wheel_advance(&w, now, due, 64));
        if (now >= base + 64 + 30)
            ASSERT(!(w.occupied[1] & ((uint64_t)1 << l1slot)));
    }
    for (uint64_t now = base + 128; fired < n; now++) {
        unsigned got;

        ASSERT(now < base + 192);
        do {
            got = weft__wheel_advance(&w, now, due, 64);
            for (unsigned k = 0; k < got; k++)
                ASSERT_EQ(now, due[k]->deadline);
            fired += (int)got;
        } while (got == 64);
    }
    ASSERT_EQ(0, w.count);
}

/* The same one level up: the level-2 slot that holds the next 4,096 ms
 * block is moved into the next level-1 ring ahead of time, so crossing the
 * block boundary moves nothing at once; every deadline still fires exactly
 * on time. */
TEST(wheel_moves_the_next_block_ahead_of_time)
{
    struct weft__wheel w;
    struct weft__timer *due[64];
    int n = (int)harness_scale(N), fired = 0;
    uint64_t x = 11, base = (uint64_t)4096 * 64 * 3;   /* a level-2 rotation's start */
    uint64_t blk = base + 2 * 4096;                     /* two blocks ahead */
    unsigned l2slot = (unsigned)((blk >> 12) & 63);
    uint64_t now;

    weft__wheel_init(&w, base);
    for (int i = 0; i < n; i++) {
        timers[i].deadline = blk + lcg(&x) % 1000;
        ASSERT(weft__wheel_insert(&w, &timers[i]));
        ASSERT_EQ(2, timers[i].level);
    }
    ASSERT(w.occupied[2] & ((uint64_t)1 << l2slot));
    /* jump to the start of the block before, then walk it one ms at a time */
    ASSERT_EQ(0, weft__wheel_advance(&w, blk - 4096, due, 64));
    for (now = blk - 4096 + 1; now < blk; now++) {
        ASSERT_EQ(0, weft__wheel_advance(&w, now, due, 64));
        if (now >= blk - 4096 + 200)
            ASSERT(!(w.occupied[2] & ((uint64_t)1 << l2slot)));
    }
    for (; fired < n; now++) {
        unsigned got;

        ASSERT(now < blk + 1000);
        do {
            got = weft__wheel_advance(&w, now, due, 64);
            for (unsigned k = 0; k < got; k++)
                ASSERT_EQ(now, due[k]->deadline);
            fired += (int)got;
        } while (got == 64);
    }
    ASSERT_EQ(0, w.count);
}
