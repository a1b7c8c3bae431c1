/* SPDX-License-Identifier: MIT */
/* A future that sets a flag and is ready: the task a budget test's loop
 * spawns from its own worker, which only runs if the loop spends the
 * cooperative budget (weft/lock.h's rule for futures that can complete
 * many times in a row). Static: each test file is its own binary. */
#ifndef WEFT_TESTS_SETFLAG_H
#define WEFT_TESTS_SETFLAG_H

#include <stdatomic.h>

#include "weft.h"

typedef struct setflag {
    atomic_int *flag;
} setflag;

static weft_poll setflag_poll(setflag *s, weft_context *cx, void *out)
{
    (void)cx;
    (void)out;
    atomic_store(s->flag, 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID_STATIC(setflag, setflag_poll, NULL);

#endif
