/* SPDX-License-Identifier: MIT */
/* What the layers above the scheduler reach of a runtime (internal). */
#ifndef WEFT_SCHED_RUNTIME_H
#define WEFT_SCHED_RUNTIME_H

#include "weft/sched.h"

struct weft__io;

/* The runtime's I/O reactor. */
struct weft__io *weft__runtime_io(weft_runtime *rt);

#endif
