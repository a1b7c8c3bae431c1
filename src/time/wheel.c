/* SPDX-License-Identifier: MIT */
#include "time/wheel.h"

#define SLOT_BITS 6
#define SLOT_MASK ((uint64_t)WHEEL_SLOTS - 1)
#define MAX_SPAN (((uint64_t)1 << (SLOT_BITS * WHEEL_LEVELS)) - 1)
/* entries moved from the level-1 slot of the next window into the next
 * ring per advance: a slot of 6,400 is moved within 50 advances, while an
 * advance stays a few tens of microseconds */
#define PRECASCADE 128

void weft__wheel_init(struct weft__wheel *w, uint64_t now)
{
    w->elapsed = now;
    w->count = 0;
    w->cur0 = 0;
    w->cur1 = 1;
    for (unsigned r = 0; r < WHEEL_RINGS; r++) {
        w->occupied[r] = 0;
        for (unsigned s = 0; s < WHEEL_SLOTS; s++)
            weft__list_init(&w->slots[r][s]);
    }
}

#define BLOCK_BITS (2 * SLOT_BITS)    /* a level-1 rotation: 4,096 ms */

/* The level-0 ring of the window after the current one. */
static unsigned next_ring(const struct weft__wheel *w)
{
    return w->cur0 ? 0 : WHEEL_LEVELS;
}

/* The level-1 ring of the block after the current one. */
static unsigned next_ring1(const struct weft__wheel *w)
{
    return w->cur1 == 1 ? WHEEL_LEVELS + 1 : 1;
}

static unsigned level_for(uint64_t elapsed, uint64_t when)
{
    uint64_t masked = (elapsed ^ when) | SLOT_MASK;
    unsigned significant = 63 - (unsigned)__builtin_clzll(masked);
    unsigned level = significant / SLOT_BITS;

    return level < WHEEL_LEVELS ? level : WHEEL_LEVELS - 1;
}

/* Link t (when > elapsed) into its ring: the current window's level-0
 * ring, the next window's, or the level level_for() names. */
static void place(struct weft__wheel *w, struct weft__timer *t, uint64_t when)
{
    uint64_t win = w->elapsed >> SLOT_BITS, twin = when >> SLOT_BITS;

    if (twin == win || twin == win + 1) {
        t->level = twin == win ? w->cur0 : next_ring(w);
        t->slot = (unsigned)(when & SLOT_MASK);
    } else if ((when >> BLOCK_BITS) == (w->elapsed >> BLOCK_BITS) ||
               (when >> BLOCK_BITS) == (w->elapsed >> BLOCK_BITS) + 1) {
        /* level 1: this block's ring or the next block's */
        t->level = (when >> BLOCK_BITS) == (w->elapsed >> BLOCK_BITS) ? w->cur1 : next_ring1(w);
        t->slot = (unsigned)((when >> SLOT_BITS) & SLOT_MASK);
    } else {
        t->level = level_for(w->elapsed, when);
        t->slot = (unsigned)((when >> (t->level * SLOT_BITS)) & SLOT_MASK);
    }
    weft__list_push_back(&w->slots[t->level][t->slot], &t->link);
    w->occupied[t->level] |= (uint64_t)1 << t->slot;
}

bool weft__wheel_insert(struct weft__wheel *w, struct weft__timer *t)
{
    uint64_t when = t->deadline;

    if (when <= w->elapsed)
        return false;
    if (when - w->elapsed > MAX_SPAN / 2)
        when = w->elapsed + MAX_SPAN / 2; /* beyond range: re-placed later */
    place(w, t, when);
    w->count++;
    return true;
}

void weft__wheel_remove(struct weft__wheel *w, struct weft__timer *t)
{
    struct weft__list *slot = &w->slots[t->level][t->slot];

    weft__list_remove(&t->link);
    if (weft__list_empty(slot))
        w->occupied[t->level] &= ~((uint64_t)1 << t->slot);
    w->count--;
}

/* The next occupied slot of ring `ring` at or after the wheel's position,
 * and the time it starts. */
static bool next_in_level(const struct weft__wheel *w, unsigned ring, unsigned *slot,
                          uint64_t *start)
{
    unsigned level = ring == w->cur0 ? 0 : ring == w->cur1 ? 1 : ring, shift, now_slot, zeros;
    uint64_t occ = w->occupied[ring], rotated, level_range, slot_range, base;

    if (occ == 0)
        return false;
    if (ring == next_ring(w)) {
        /* the next window: its slots in order, no wrap */
        *slot = (unsigned)__builtin_ctzll(occ);
        *start = (((w->elapsed >> SLOT_BITS) + 1) << SLOT_BITS) + *slot;
        return true;
    }
    if (ring == next_ring1(w)) {
        /* the next block: its windows in order, no wrap */
        *slot = (unsigned)__builtin_ctzll(occ);
        *start = (((w->elapsed >> BLOCK_BITS) + 1) << BLOCK_BITS) + ((uint64_t)*slot << SLOT_BITS);
        return true;
    }
    shift = level * SLOT_BITS;
    now_slot = (unsigned)((w->elapsed >> shift) & SLOT_MASK);
    rotated = now_slot ? (occ >> now_slot) | (occ << (64 - now_slot)) : occ;
    zeros = (unsigned)__builtin_ctzll(rotated);
    *slot = (now_slot + zeros) & (unsigned)SLOT_MASK;
    slot_range = (uint64_t)1 << shift;
    level_range = slot_range << SLOT_BITS;
    base = w->elapsed & ~(level_range - 1);
    *start = base + (uint64_t)*slot * slot_range;
    if (*start < w->elapsed && level > 0 && *slot == now_slot)
        *start = w->elapsed;              /* the current slot of a high level */
    else if (*start < w->elapsed)
        *start += level_range;            /* wrapped into the next window */
    return true;
}

/* The occupied slot that starts first, over every level. (Usually the
 * lowest occupied level's, but not while a higher slot is being emptied in
 * batches: its rest must not wait behind what it cascaded down.) */
static bool next_slot(const struct weft__wheel *w, unsigned *level, unsigned *slot,
                      uint64_t *start)
{
    bool found = false;

    for (unsigned l = 0; l < WHEEL_RINGS; l++) {
        unsigned s;
        uint64_t st;

        if (next_in_level(w, l, &s, &st) && (!found || st < *start)) {
            *level = l;
            *slot = s;
            *start = st;
            found = true;
        }
    }
    return found;
}

uint64_t weft__wheel_next(const struct weft__wheel *w)
{
    unsigned level, slot;
    uint64_t start;

    return next_slot(w, &level, &slot, &start) ? start : UINT64_MAX;
}

/* Move the wheel's time forward. Entering a new window, the current ring
 * is empty (advancing empties slots in start order, and all of its slots
 * start in the old window), so the rings swap roles: the next ring holds
 * the window just entered. If time jumps further than one window, the next
 * ring is empty too (its slots start before the new time) and the swap is
 * harmless. */
static void set_elapsed(struct weft__wheel *w, uint64_t e)
{
    if (e >> SLOT_BITS != w->elapsed >> SLOT_BITS)
        w->cur0 = next_ring(w);
    if (e >> BLOCK_BITS != w->elapsed >> BLOCK_BITS)
        w->cur1 = next_ring1(w);      /* the same argument, one level up */
    w->elapsed = e;
}

/* Move up to PRECASCADE entries of `list` (ring `ring`, slot `slot`) to
 * where they belong now (place() puts them in the next window's or the next
 * block's ring). */
static void move_ahead(struct weft__wheel *w, unsigned ring, unsigned slot)
{
    struct weft__list *list = &w->slots[ring][slot];
    unsigned moved = 0;

    while (!weft__list_empty(list) && moved++ < PRECASCADE) {
        struct weft__timer *t = weft__container_of(list->next, struct weft__timer, link);

        weft__list_remove(&t->link);
        place(w, t, t->deadline);
    }
    if (weft__list_empty(list))
        w->occupied[ring] &= ~((uint64_t)1 << slot);
}

/* Move a few entries ahead of time (see wheel.h): from the level-1 slot
 * that holds the next window into the next level-0 ring, and from the
 * level-2 slot that holds the next block into the next level-1 ring. A
 * slot that would be reached across a higher boundary (the next block is
 * in another level-2 rotation) cascades as before, when its time comes. */
static void precascade(struct weft__wheel *w)
{
    uint64_t nextwin = ((w->elapsed >> SLOT_BITS) + 1) << SLOT_BITS;
    uint64_t nextblk = ((w->elapsed >> BLOCK_BITS) + 1) << BLOCK_BITS;
    unsigned ring1 = (nextwin >> BLOCK_BITS) == (w->elapsed >> BLOCK_BITS) ? w->cur1
                                                                            : next_ring1(w);

    move_ahead(w, ring1, (unsigned)((nextwin >> SLOT_BITS) & SLOT_MASK));
    if (level_for(w->elapsed, nextblk) == 2)
        move_ahead(w, 2, (unsigned)((nextblk >> BLOCK_BITS) & SLOT_MASK));
}

unsigned weft__wheel_advance(struct weft__wheel *w, uint64_t now, struct weft__timer **due,
                             unsigned max)
{
    unsigned n = 0;

    precascade(w);
    while (n < max) {
        unsigned level, slot = 0;
        uint64_t start = 0;
        struct weft__list *list;

        if (!next_slot(w, &level, &slot, &start) || start > now)
            break;
        /* the slot's time has come: at level 0 its timers are due; above,
         * they move nearer (cascade), relative to the slot's start */
        if (start > w->elapsed)
            set_elapsed(w, start);
        list = &w->slots[level][slot];
        while (!weft__list_empty(list) && n < max) {
            struct weft__timer *t = weft__container_of(list->next, struct weft__timer, link);

            weft__list_remove(&t->link);
            w->count--;
            if (t->deadline <= now || !weft__wheel_insert(w, t))
                due[n++] = t;
        }
        if (weft__list_empty(list))
            w->occupied[level] &= ~((uint64_t)1 << slot);
    }
    if (n < max && now > w->elapsed)
        set_elapsed(w, now);
    return n;
}
