/* SPDX-License-Identifier: MIT */
/* Ready-made future type descriptors for the timer futures (weft/timer.h),
 * named as net.h names its own: the future's type name + "_future". */
#include "weft/timer.h"

static weft_poll sleep_thunk(void *self, weft_context *cx, void *out)
{
    (void)out;                                   /* no output */
    return weft_sleep_poll((weft_sleep *)self, cx);
}

static void sleep_drop_thunk(void *self)
{
    weft_sleep_drop((weft_sleep *)self);
}

WEFT_API const weft_future_type weft_sleep_future = {
    sleep_thunk, sleep_drop_thunk, sizeof(weft_sleep), _Alignof(weft_sleep), 0, 1,
    "weft_sleep"
};

static weft_poll interval_thunk(void *self, weft_context *cx, void *out)
{
    return weft_interval_tick((weft_interval *)self, cx, (uint64_t *)out);
}

static void interval_drop_thunk(void *self)
{
    weft_interval_drop((weft_interval *)self);
}

WEFT_API const weft_future_type weft_interval_future = {
    interval_thunk, interval_drop_thunk, sizeof(weft_interval), _Alignof(weft_interval),
    sizeof(uint64_t), _Alignof(uint64_t), "weft_interval"
};
