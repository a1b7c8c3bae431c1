/* SPDX-License-Identifier: MIT */
/* Name lookups' internal interface (the test hook, connect_host). */
#ifndef WEFT_NET_RESOLVE_H
#define WEFT_NET_RESOLVE_H

#include <stdatomic.h>

#include "weft/net.h"

/* When set, every lookup job calls it on its pool thread first, with the
 * name (NULL for none): tests block there to hold a lookup mid-way, as a
 * slow name server would. NULL (the default): nothing is called. */
typedef void (*weft__resolve_hook_fn)(const char *host);
extern _Atomic(weft__resolve_hook_fn) weft__resolve_hook;

/* weft_resolve_poll() for weft's own futures (connect_host), which checked
 * their context already (util/cx.h): r and cx valid. */
weft_poll weft__resolve_poll(weft_resolve *r, weft_context *cx, int *result);

#endif
