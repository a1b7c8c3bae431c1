/* SPDX-License-Identifier: MIT */
/* What the layers above reach of a task group (internal). */
#ifndef WEFT_SYNC_GROUP_RT_H
#define WEFT_SYNC_GROUP_RT_H

#include "weft/group.h"

/* The runtime the group spawns into (immutable; g not NULL). */
weft_runtime *weft__group_runtime(const weft_group *g);

#endif
