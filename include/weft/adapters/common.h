/* SPDX-License-Identifier: MIT */
/* weft/adapters/common.h - what the adapter headers share (hiredis.h,
 * curl.h, cares.h): the completion cell that hands one result from an
 * adapter's loop to the future a task awaits, and the request queue that
 * hands work from any thread to the loop (a mutex, a list and a "doorbell"
 * timer). Header-only, like the adapters; not meant to be used directly.
 *
 * The cell (struct weft__adapter_req) is shared by exactly two owners: the
 * future that awaits it and the adapter that completes it. Each drops its
 * reference once; the second one frees it. The result may own memory (a
 * reply, an address list): when the future is dropped before it takes the
 * result, whoever drops the last reference frees that memory with the
 * cell's `free_ptr`, so nothing leaks whichever side goes first.
 *
 *   adapter (its loop, or the thread tearing it down)   future (its task)
 *   complete: lock; store result, done = true;         poll: lock; done? take
 *     take the waker; refs--; unlock; wake                 it : store waker; unlock
 *   (refs == 0: the future is gone: free all)           drop: lock; refs--; unlock
 *                                                        (refs == 0: free all)
 * The cell's mutex orders the result before the waiter's read of it. */
#ifndef WEFT_ADAPTERS_COMMON_H
#define WEFT_ADAPTERS_COMMON_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A result: `result` (0, a negative errno, or a library's own positive
 * status) and, with it, memory the receiver then owns (may be NULL). */
typedef struct weft_adapter_result {
    int result;
    void *ptr;
} weft_adapter_result;

/* strdup(), which strict C11 (-std=c11, no _POSIX_C_SOURCE) does not
 * declare: a copy of `s` from malloc(), NULL when out of memory. */
static inline char *weft__adapter_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = (char *)malloc(n);

    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

/* private: may change in any release */
struct weft__adapter_req {
    pthread_mutex_t mu;
    int refs;                           /* ->mu: future + adapter, 2 at first */
    bool done;                          /* ->mu: `res` is set */
    bool taken;                         /* ->mu: the future took `res` */
    weft_adapter_result res;            /* ->mu */
    weft_waker waker;                   /* ->mu: the waiting task, if any */
    void (*free_ptr)(void *);           /* frees res.ptr nobody took; may be NULL */
    void (*free_req)(struct weft__adapter_req *);   /* the adapter's part of the record */
    struct weft__adapter_req *next;     /* adapter's queue link (its lock) */
};

static inline void weft__adapter_req_init(struct weft__adapter_req *q, void (*free_ptr)(void *),
                                          void (*free_req)(struct weft__adapter_req *))
{
    pthread_mutex_init(&q->mu, NULL);
    q->refs = 2;
    q->done = false;
    q->taken = false;
    q->res.result = 0;
    q->res.ptr = NULL;
    q->waker = WEFT_WAKER_EMPTY;
    q->free_ptr = free_ptr;
    q->free_req = free_req;
    q->next = NULL;
}

/* Called with q->mu released by the last owner. */
static inline void weft__adapter_req_free(struct weft__adapter_req *q)
{
    if (q->done && !q->taken && q->res.ptr != NULL && q->free_ptr != NULL)
        q->free_ptr(q->res.ptr);
    weft_waker_drop(&q->waker);
    pthread_mutex_destroy(&q->mu);
    q->free_req(q);                     /* frees the record `q` lives in */
}

/* The adapter's side, once: store the result, wake the waiter, drop the
 * adapter's reference. Thread: any. */
static inline void weft__adapter_req_complete(struct weft__adapter_req *q, int result, void *ptr)
{
    weft_waker w;
    bool last;

    pthread_mutex_lock(&q->mu);
    q->res.result = result;
    q->res.ptr = ptr;
    q->done = true;
    w = q->waker;
    q->waker = WEFT_WAKER_EMPTY;
    last = --q->refs == 0;
    pthread_mutex_unlock(&q->mu);
    weft_waker_wake(&w);                /* outside the lock: wake may run the task */
    if (last)
        weft__adapter_req_free(q);
}

/* The future's side, polling: READY with the result (the caller owns
 * res.ptr from here), or PENDING with the task's waker stored. */
static inline weft_poll weft__adapter_req_poll(struct weft__adapter_req *q, weft_context *cx,
                                               weft_adapter_result *out)
{
    weft_waker old = WEFT_WAKER_EMPTY, fresh;

    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;            /* budget spent: woken already */
    pthread_mutex_lock(&q->mu);
    if (q->done) {
        *out = q->res;
        q->taken = true;
        pthread_mutex_unlock(&q->mu);
        return WEFT_READY;
    }
    if (!weft_waker_will_wake(&q->waker, weft_context_waker(cx))) {
        pthread_mutex_unlock(&q->mu);
        fresh = weft_waker_clone(weft_context_waker(cx));   /* clone outside the lock */
        pthread_mutex_lock(&q->mu);
        if (q->done) {
            *out = q->res;
            q->taken = true;
            pthread_mutex_unlock(&q->mu);
            weft_waker_drop(&fresh);
            return WEFT_READY;
        }
        old = q->waker;
        q->waker = fresh;
    }
    pthread_mutex_unlock(&q->mu);
    weft_waker_drop(&old);
    return WEFT_PENDING;
}

/* The future's side, going away (pending, done or never polled): drop its
 * reference. Thread: any. */
static inline void weft__adapter_req_release(struct weft__adapter_req *q)
{
    weft_waker w;
    bool last;

    pthread_mutex_lock(&q->mu);
    w = q->waker;
    q->waker = WEFT_WAKER_EMPTY;
    last = --q->refs == 0;
    pthread_mutex_unlock(&q->mu);
    weft_waker_drop(&w);
    if (last)
        weft__adapter_req_free(q);
}

/* A FIFO of requests on their way to the loop, under the adapter's lock. */
struct weft__adapter_queue {
    struct weft__adapter_req *head, *tail;
};

static inline void weft__adapter_queue_push(struct weft__adapter_queue *l,
                                            struct weft__adapter_req *q)
{
    q->next = NULL;
    if (l->tail != NULL)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
}

/* Take the whole list (its head); the queue is empty after. */
static inline struct weft__adapter_req *weft__adapter_queue_take(struct weft__adapter_queue *l)
{
    struct weft__adapter_req *h = l->head;

    l->head = l->tail = NULL;
    return h;
}

/* Milliseconds in a timeval, rounded up (never early). */
#define WEFT__TV_MS(tv)                                                                  \
    ((uint64_t)(tv).tv_sec * 1000u + ((uint64_t)(tv).tv_usec + 999u) / 1000u)

#ifdef __cplusplus
}
#endif
#endif /* WEFT_ADAPTERS_COMMON_H */
