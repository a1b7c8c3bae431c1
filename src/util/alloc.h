/* SPDX-License-Identifier: MIT */
/* The one allocation hook: every byte weft allocates comes from here, so a
 * test can fail the k-th allocation (weft_set_allocator()). */
#ifndef WEFT_UTIL_ALLOC_H
#define WEFT_UTIL_ALLOC_H

#include <stddef.h>

void *weft__malloc(size_t size);
void *weft__calloc(size_t n, size_t size);
void weft__free(void *p);

#endif
