/* SPDX-License-Identifier: MIT */
/* The one check of weft/core.h's rule for a poll without a waker. */
#ifndef WEFT_UTIL_CX_H
#define WEFT_UTIL_CX_H

#include <stdbool.h>

#include "weft/core.h"

/* True for a poll with no waker to store: a NULL context, or one whose
 * waker pointer is NULL (a zeroed weft_context). Misuse, which every public
 * poll answers READY at once, changing nothing (-EINVAL where it has a
 * result; weft/core.h, "Context"). Made once, at the public entry: a
 * weft future that polls another inside (a timeout its sleep, a buffered
 * read its socket read) calls that one's unchecked body. */
static inline bool weft__cx_bad(const weft_context *cx)
{
    return __builtin_expect(cx == NULL || cx->waker == NULL, 0);
}

#endif /* WEFT_UTIL_CX_H */
