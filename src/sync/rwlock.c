/* SPDX-License-Identifier: MIT */
/* The read-write lock: a semaphore of WEFT_RWLOCK_MAX_READERS permits. A
 * reader takes one permit, a writer takes them all, so "held for writing"
 * is exactly "no permit free" and "free" is "every permit free". The
 * semaphore is strictly FIFO and hands permits over at release time, so:
 *   - a waiting writer holds back every later reader (no writer starvation);
 *   - when a writer unlocks, the readers queued behind it up to the next
 *     writer are granted together;
 *   - a lock future dropped while waiting leaves the line, and one dropped
 *     after a grant gives the permits back (weft_sem_acquire_drop()), so no
 *     grant is lost.
 * Unlock misuse is refused where the count tells: unlock_write needs no
 * permit free (the semaphore refuses to exceed its maximum otherwise);
 * unlock_read needs at least one free, since a writer never holds the lock
 * while a reader does and readers never hold them all (checked before the
 * release: a misuse racing with other unlocks may go undetected). */
#include "sync/sem.h"
#include "util/alloc.h"
#include "weft/lock.h"

struct weft_rwlock {
    struct weft_sem sem;
};

#define RW_ALL WEFT_RWLOCK_MAX_READERS

_Static_assert(sizeof(weft_rwlock_read) <= 96 && sizeof(weft_rwlock_write) <= 96,
               "lock futures stay small");

WEFT_API int weft_rwlock_new(weft_rwlock **out)
{
    struct weft_rwlock *rw;

    if (out == NULL)
        return -EINVAL;
    rw = weft__malloc(sizeof(*rw));
    if (rw == NULL)
        return -ENOMEM;
    if (weft__sem_init(&rw->sem, RW_ALL, RW_ALL) < 0) {
        weft__free(rw);
        return -ENOMEM;
    }
    *out = rw;
    return 0;
}

WEFT_API void weft_rwlock_free(weft_rwlock *rw)
{
    if (rw == NULL)
        return;
    weft__sem_destroy(&rw->sem);
    weft__free(rw);
}

WEFT_API int weft_rwlock_try_read(weft_rwlock *rw)
{
    return rw ? weft_sem_try_acquire(&rw->sem, 1) : -EINVAL;
}

WEFT_API int weft_rwlock_try_write(weft_rwlock *rw)
{
    return rw ? weft_sem_try_acquire(&rw->sem, RW_ALL) : -EINVAL;
}

WEFT_API int weft_rwlock_unlock_read(weft_rwlock *rw)
{
    if (rw == NULL)
        return -EINVAL;
    /* no permit free: write-locked (a reader's permit would leave one free
     * up to RW_ALL - 1 readers); every permit free: the semaphore refuses */
    if (weft_sem_available(&rw->sem) == 0)
        return -EINVAL;
    return weft_sem_release(&rw->sem, 1);
}

WEFT_API int weft_rwlock_unlock_write(weft_rwlock *rw)
{
    /* -EINVAL unless no permit is free: the total may not exceed RW_ALL */
    return rw ? weft_sem_release(&rw->sem, RW_ALL) : -EINVAL;
}

/* ---- Lock futures ------------------------------------------------------------ */
WEFT_API void weft_rwlock_read_init(weft_rwlock_read *f, weft_rwlock *rw)
{
    if (f)
        weft_sem_acquire_init(&f->acq, rw ? &rw->sem : NULL, 1);
}

WEFT_API weft_poll weft_rwlock_read_poll(weft_rwlock_read *f, weft_context *cx, int *result)
{
    if (f == NULL) {                  /* misuse: -EINVAL if it can be told */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    return weft_sem_acquire_poll(&f->acq, cx, result);
}

WEFT_API void weft_rwlock_read_drop(weft_rwlock_read *f)
{
    if (f)
        weft_sem_acquire_drop(&f->acq);
}

WEFT_API void weft_rwlock_write_init(weft_rwlock_write *f, weft_rwlock *rw)
{
    if (f)
        weft_sem_acquire_init(&f->acq, rw ? &rw->sem : NULL, RW_ALL);
}

WEFT_API weft_poll weft_rwlock_write_poll(weft_rwlock_write *f, weft_context *cx, int *result)
{
    if (f == NULL) {                  /* misuse: -EINVAL if it can be told */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    return weft_sem_acquire_poll(&f->acq, cx, result);
}

WEFT_API void weft_rwlock_write_drop(weft_rwlock_write *f)
{
    if (f)
        weft_sem_acquire_drop(&f->acq);
}
