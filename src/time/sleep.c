/* SPDX-License-Identifier: MIT */
/* Timers: the runtime's wheel (driver.h) and the sleep future.
 *
 *  sleep future (its task's worker)        driver (a parked worker, any)
 *  lock; insert entry + waker clone;       lock; take due entries, move
 *  state = REGISTERED; unlock                their wakers out; state = FIRED
 *  later poll: state FIRED? ready           [release]; unlock; wake them
 *  drop: FIRED? done, no lock;             (never touches an entry after
 *    else lock; REGISTERED? remove; unlock   its FIRED store: it may be
 *                                            gone as soon as it is seen)
 * state is written under the lock and read without it by poll and drop; a
 * FIRED read (acquire) pairs with the driver's release store. */
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "task/task.h"
#include "time/driver.h"
#include "util/cx.h"
#include "weft/timer.h"

_Static_assert(sizeof(((weft_sleep *)0)->entry) == sizeof(struct weft__timer),
               "weft_sleep's entry mirrors struct weft__timer");
_Static_assert(offsetof(struct weft__timer, deadline) == offsetof(__typeof__(((weft_sleep *)0)->entry), deadline) &&
                   offsetof(struct weft__timer, waker) == offsetof(__typeof__(((weft_sleep *)0)->entry), waker) &&
                   offsetof(struct weft__timer, level) == offsetof(__typeof__(((weft_sleep *)0)->entry), level),
               "weft_sleep's entry has struct weft__timer's layout");

#define DRIVE_BATCH 32

_Static_assert(sizeof(void *) != 8 || sizeof(weft_sleep) == 64,
               "a sleeping task fits a 128-byte cell");

uint64_t weft__now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t weft__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t weft__now_ms_ceil(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + ((uint64_t)ts.tv_nsec + 999999u) / 1000000u;
}

WEFT_API uint64_t weft_now_ms(void)
{
    return weft__now_ms();
}

void weft__time_init(struct weft__time *tm, void (*kick)(void *, uint64_t), void *ctx)
{
    atomic_init(&tm->lock, 0);
    tm->registered = tm->fired = tm->cancelled = tm->late_ns = 0;
    memset(tm->late_hist, 0, sizeof(tm->late_hist));
    weft__wheel_init(&tm->wheel, weft__now_ms());
    atomic_init(&tm->next, UINT64_MAX);
    tm->kick = kick;
    tm->kick_ctx = ctx;
}

void weft__time_stats_add(struct weft__time *tm, struct weft__time_stats *out)
{
    weft__time_lock(tm);
    out->armed += tm->wheel.count;
    out->registered += tm->registered;
    out->fired += tm->fired;
    out->cancelled += tm->cancelled;
    out->late_ns += tm->late_ns;
    for (unsigned b = 0; b < WEFT_HIST_BUCKETS_; b++)
        out->late_hist[b] += tm->late_hist[b];
    weft__time_unlock(tm);
}

void weft__time_destroy(struct weft__time *tm)
{
    (void)tm;                         /* nothing to release */
}

/* ->lock held */
static void publish_next(struct weft__time *tm)
{
    atomic_store_explicit(&tm->next, weft__wheel_next(&tm->wheel), memory_order_relaxed);
}

unsigned weft__time_drive(struct weft__time *tm, uint64_t now)
{
    struct weft__timer *due[DRIVE_BATCH];
    weft_waker wakers[DRIVE_BATCH];
    uint64_t now_ns = 0;
    unsigned n, fired = 0;

    do {
        weft__time_lock(tm);
        n = weft__wheel_advance(&tm->wheel, now, due, DRIVE_BATCH);
        if (n > 0 && now_ns == 0)
            now_ns = weft__now_ns();
        tm->fired += n;
        for (unsigned i = 0; i < n; i++) {
            weft_sleep *s = (weft_sleep *)((char *)due[i] - offsetof(weft_sleep, entry));
            uint64_t dl = weft__time_mul_sat(due[i]->deadline, 1000000u);

            uint64_t late = now_ns > dl ? now_ns - dl : 0;

            tm->late_ns += late;
            tm->late_hist[weft__hist_bucket(late)]++;

            wakers[i] = due[i]->waker;
            due[i]->waker = WEFT_WAKER_EMPTY;
            /* the woken task's header (a task waker's data): its line is
             * read and written by the wake below; fetched while the
             * wheel is still being walked, the batch's misses overlap
             * (a prefetch never faults, whatever the waker's data is) */
            __builtin_prefetch(wakers[i].data, 1, 3);
            /* release: pairs with the acquire in weft_sleep_poll/_drop */
            __atomic_store_n(&s->state, TIMER_FIRED, __ATOMIC_RELEASE);
        }
        publish_next(tm);
        weft__time_unlock(tm);
        for (unsigned i = 0; i < n; i++)
            weft_waker_wake(&wakers[i]);
        fired += n;
    } while (n == DRIVE_BATCH);
    return fired;
}

WEFT_API void weft_sleep_init(weft_sleep *s, uint64_t ms)
{
    /* A wait of ms >= 1 counts from the next whole millisecond (never
     * early: at least ms of real time). A wait of 0 is due now, at
     * weft_now_ms(): ready at its first poll, with no trip through the
     * wheel (timer.h). */
    uint64_t now = ms == 0 ? weft__now_ms() : weft__now_ms_ceil();

    weft_sleep_until_init(s, ms > UINT64_MAX - now ? UINT64_MAX : now + ms);
}

WEFT_API uint64_t weft_sleep_deadline(const weft_sleep *s)
{
    if (s == NULL)
        return 0;
    return s->entry.deadline;
}

WEFT_API void weft_sleep_until_init(weft_sleep *s, uint64_t deadline_ms)
{
    if (s == NULL)
        return;
    s->entry.deadline = deadline_ms;
    __atomic_store_n(&s->state, TIMER_IDLE, __ATOMIC_RELAXED);
    s->time = NULL;
    s->entry.prev = s->entry.next = NULL;
    s->entry.waker = WEFT_WAKER_EMPTY;
}

WEFT_API weft_poll weft_sleep_poll(weft_sleep *s, weft_context *cx)
{
    /* misuse (a NULL sleep; a poll without a waker, weft/core.h) is not a
     * crash: READY, and nothing changed (there is no result to tell it) */
    if (s == NULL || weft__cx_bad(cx))
        return WEFT_READY;
    return weft__sleep_poll(s, cx);
}

weft_poll weft__sleep_poll(weft_sleep *s, weft_context *cx)
{
    struct weft__task_env *env;
    struct weft__time *tm;
    struct weft__timer *t;
    weft_waker old = WEFT_WAKER_EMPTY;
    bool first = false;

    /* acquire: pairs with the driver's release of FIRED */
    if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == TIMER_FIRED)
        return WEFT_READY;
    if (weft__now_ms() >= s->entry.deadline) {
        weft_sleep_drop(s);
        __atomic_store_n(&s->state, TIMER_FIRED, __ATOMIC_RELAXED);
        /* Due at its look (0 ms, a deadline passed): a sleep that can be
         * ready at once, fresh after fresh, spends a unit of the task's
         * budget (weft/core.h), so that a loop of them lets others run.
         * Refused: PENDING, the task requeued, and the sleep FIRED, so
         * that its next poll is READY (above) without asking again: a
         * future that polls a leaf and then a sleep (a timeout, a drain)
         * would otherwise be refused at the sleep on every poll under
         * WEFT_STRESS, whose refusals alternate, and never time out. A
         * sleep the driver fired waited for real: no unit. */
        return weft_coop_proceed(cx) ? WEFT_READY : WEFT_PENDING;
    }
    env = cx->priv;
    tm = s->time ? s->time : env ? env->time : NULL;
    if (tm == NULL) {
        /* not polled by a weft worker: nobody would drive this timer */
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    t = (struct weft__timer *)(void *)&s->entry;
    weft__time_lock(tm);
    if (__atomic_load_n(&s->state, __ATOMIC_RELAXED) == TIMER_FIRED) {
        weft__time_unlock(tm);
        return WEFT_READY;
    }
    if (__atomic_load_n(&s->state, __ATOMIC_RELAXED) == TIMER_IDLE) {
        if (!weft__wheel_insert(&tm->wheel, t)) {
            weft__time_unlock(tm);
            __atomic_store_n(&s->state, TIMER_FIRED, __ATOMIC_RELAXED);
            return WEFT_READY;
        }
        t->waker = weft_waker_clone(cx->waker);
        tm->registered++;
        s->time = tm;
        __atomic_store_n(&s->state, TIMER_REGISTERED, __ATOMIC_RELAXED);
        /* The new entry is the earliest: its deadline is the wheel's next
         * (no scan of the wheel). Otherwise `next` stays what it was. */
        first = weft__time_next(tm) > t->deadline;
        if (first)
            atomic_store_explicit(&tm->next, t->deadline, memory_order_relaxed);
    } else if (!weft_waker_will_wake(&t->waker, cx->waker)) {
        old = t->waker;
        t->waker = weft_waker_clone(cx->waker);
    }
    weft__time_unlock(tm);
    weft_waker_drop(&old);
    if (first && tm->kick)
        tm->kick(tm->kick_ctx, s->entry.deadline);   /* earlier than anyone sleeps */
    return WEFT_PENDING;
}

WEFT_API void weft_sleep_drop(weft_sleep *s)
{
    struct weft__time *tm;
    struct weft__timer *t;
    weft_waker w = WEFT_WAKER_EMPTY;

    if (s == NULL || (tm = s->time) == NULL)
        return;
    /* Fired: the driver unlinked the entry, took the waker out and stored
     * FIRED last (release), and never touches the entry after that store,
     * so there is nothing to remove and no lock to take (acquire: pairs
     * with that store). Every fired sleep's task drops it: taking the
     * wheel's lock here fought the driver firing the rest of that wheel. */
    if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == TIMER_FIRED) {
        s->time = NULL;
        return;
    }
    t = (struct weft__timer *)(void *)&s->entry;
    weft__time_lock(tm);
    if (__atomic_load_n(&s->state, __ATOMIC_RELAXED) == TIMER_REGISTERED) {
        weft__wheel_remove(&tm->wheel, t);
        tm->cancelled++;
        __atomic_store_n(&s->state, TIMER_IDLE, __ATOMIC_RELAXED);
        w = t->waker;
        t->waker = WEFT_WAKER_EMPTY;
        /* Lazy: `next` may stay at the cancelled deadline (an early hint
         * costs the driver one look that fires nothing and publishes the
         * true next); scanning the wheel here was most of a cancel's cost.
         * An empty wheel says so at once, so that idle workers sleep. */
        if (tm->wheel.count == 0)
            atomic_store_explicit(&tm->next, UINT64_MAX, memory_order_relaxed);
    }
    weft__time_unlock(tm);
    s->time = NULL;
    weft_waker_drop(&w);
}
