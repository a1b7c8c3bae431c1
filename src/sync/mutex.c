/* SPDX-License-Identifier: MIT */
/* The async mutex: a semaphore of one permit that may never hold more than
 * one (so an unlock of an unlocked mutex is refused). Held exactly when the
 * permit is not free: a permit handed to a waiting lock future is no longer
 * free either. */
#include "sync/sem.h"
#include "util/alloc.h"

struct weft_mutex {
    struct weft_sem sem;
};

WEFT_API int weft_mutex_new(weft_mutex **out)
{
    struct weft_mutex *m;

    if (out == NULL)
        return -EINVAL;
    m = weft__malloc(sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    if (weft__sem_init(&m->sem, 1, 1) < 0) {
        weft__free(m);
        return -ENOMEM;
    }
    *out = m;
    return 0;
}

WEFT_API void weft_mutex_free(weft_mutex *m)
{
    if (m == NULL)
        return;
    weft__sem_destroy(&m->sem);
    weft__free(m);
}

WEFT_API int weft_mutex_try_lock(weft_mutex *m)
{
    return m ? weft_sem_try_acquire(&m->sem, 1) : -EINVAL;
}

WEFT_API int weft_mutex_unlock(weft_mutex *m)
{
    /* -EINVAL when the permit is free already (max is 1) */
    return m ? weft_sem_release(&m->sem, 1) : -EINVAL;
}

WEFT_API void weft_mutex_lock_init(weft_mutex_lock *l, weft_mutex *m)
{
    if (l)
        weft_sem_acquire_init(&l->acq, m ? &m->sem : NULL, 1);
}

WEFT_API weft_poll weft_mutex_lock_poll(weft_mutex_lock *l, weft_context *cx, int *result)
{
    if (l == NULL) {                  /* misuse: -EINVAL if it can be told */
        if (result)
            *result = -EINVAL;
        return WEFT_READY;
    }
    return weft_sem_acquire_poll(&l->acq, cx, result);
}

WEFT_API void weft_mutex_lock_drop(weft_mutex_lock *l)
{
    if (l)
        weft_sem_acquire_drop(&l->acq);
}
