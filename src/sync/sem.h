/* SPDX-License-Identifier: MIT */
/* The semaphore, embeddable (internal): the mutex is a semaphore of one
 * permit in the same allocation. */
#ifndef WEFT_SYNC_SEM_H
#define WEFT_SYNC_SEM_H

#include <stdatomic.h>

#include "sync/waitq.h"

/* The state word: free permits << SEM_SHIFT | SEM_CLOSED | SEM_WAITERS.
 * WEFT_SEM_MAX_PERMITS (SIZE_MAX >> 4) leaves the low bits free. */
#define SEM_WAITERS ((size_t)1)    /* the line is not empty; changed under ->lock */
#define SEM_CLOSED  ((size_t)2)    /* set under ->lock, never cleared */
#define SEM_SHIFT   2
#define SEM_ONE     ((size_t)1 << SEM_SHIFT)

struct weft_sem {
    _Atomic size_t state;          /* see above; RMWs lock-free, or under ->lock */
    size_t max;                    /* immutable: most permits it may hold */
    weft__spinlock lock;           /* guards the line; see waitq.h */
    struct weft__waitq q;          /* ->lock: acquirers, FIFO */
};

/* Returns 0 (an int so that callers keep checking: it could fail while
 * ->lock was a pthread mutex). */
int weft__sem_init(struct weft_sem *s, size_t permits, size_t max);
void weft__sem_destroy(struct weft_sem *s);

#endif
