/* SPDX-License-Identifier: MIT */
/* Ready-made future type descriptors for the sync layer's futures
 * (weft/lock.h, weft/chan.h, weft/group.h), so that they compose with
 * weft_timeout, weft_select, weft_join_all, weft_race and weft_spawn without
 * a user-written WEFT_DEFINE_FUTURE. Named as net.h names its own: the
 * future's type name + "_future". Each output is the poll's `int *result`. */
#include "weft/chan.h"
#include "weft/group.h"
#include "weft/lock.h"

/* Thunks calling NAME_poll(NAME *, weft_context *, int *) and
 * NAME_drop(NAME *): the conversions from void * are implicit and checked
 * against the real prototypes, so no function pointer is ever cast. */
#define SYNC_DESCRIPTOR(NAME)                                                 \
    static weft_poll NAME##__poll_thunk(void *self, weft_context *cx,         \
                                        void *out)                            \
    {                                                                         \
        return NAME##_poll((NAME *)self, cx, (int *)out);                     \
    }                                                                         \
    static void NAME##__drop_thunk(void *self)                                \
    {                                                                         \
        NAME##_drop((NAME *)self);                                            \
    }                                                                         \
    WEFT_API const weft_future_type NAME##_future = {                         \
        NAME##__poll_thunk, NAME##__drop_thunk, sizeof(NAME), _Alignof(NAME), \
        sizeof(int), _Alignof(int), #NAME                                     \
    }

/* weft/lock.h */
SYNC_DESCRIPTOR(weft_notify_wait);
SYNC_DESCRIPTOR(weft_sem_acquire);
SYNC_DESCRIPTOR(weft_mutex_lock);
SYNC_DESCRIPTOR(weft_rwlock_read);
SYNC_DESCRIPTOR(weft_rwlock_write);
SYNC_DESCRIPTOR(weft_barrier_wait);
/* weft/chan.h */
SYNC_DESCRIPTOR(weft_oneshot_recv);
SYNC_DESCRIPTOR(weft_chan_send);
SYNC_DESCRIPTOR(weft_chan_recv);
SYNC_DESCRIPTOR(weft_watch_changed);
SYNC_DESCRIPTOR(weft_bcast_recv);
/* weft/group.h */
SYNC_DESCRIPTOR(weft_cancel_wait);
SYNC_DESCRIPTOR(weft_group_wait);
SYNC_DESCRIPTOR(weft_join_all);
SYNC_DESCRIPTOR(weft_select);
SYNC_DESCRIPTOR(weft_race);
