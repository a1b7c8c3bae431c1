/* The semaphore, embeddable (internal): the mutex is a semaphore of one
 * permit in the same allocation. */
#ifndef WEFT_SYNC_SEM_H
#define WEFT_SYNC_SEM_H

#include "sync/waitq.h"

struct weft_sem {
    pthread_mutex_t lock;
    size_t avail;                  /* ->lock: free permits */
    size_t max;                    /* immutable: most permits it may hold */
    bool closed;                   /* ->lock */
    struct weft__waitq q;          /* ->lock: acquirers, FIFO */
};

/* 0 or -ENOMEM (the mutex could not be set up). */
int weft__sem_init(struct weft_sem *s, size_t permits, size_t max);
void weft__sem_destroy(struct weft_sem *s);

#endif
