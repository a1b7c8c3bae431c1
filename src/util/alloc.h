/* SPDX-License-Identifier: MIT */
/* The one allocation hook: every byte weft allocates comes from here, so a
 * test can fail the k-th allocation (weft_set_allocator()). */
#ifndef WEFT_UTIL_ALLOC_H
#define WEFT_UTIL_ALLOC_H

#include <stddef.h>

/* What the hook promises (weft/core.h): malloc's alignment. */
#define WEFT__MALLOC_ALIGN _Alignof(max_align_t)

void *weft__malloc(size_t size);
void *weft__calloc(size_t n, size_t size);
void weft__free(void *p);

/* Memory for an object of a type aligned to `align` (a power of two; use
 * _Alignof(type)), which may be stricter than the hook's alignment (a
 * struct with _Alignas(64) members). Above WEFT__MALLOC_ALIGN it
 * over-allocates through the hook and moves up to the alignment, keeping
 * the hook's pointer in the word just below the object. NULL on failure.
 * Release with weft__aligned_free(p, align), with the same `align`. The
 * calloc form zeroes n * size bytes (NULL when that overflows). */
void *weft__aligned_alloc(size_t size, size_t align);
void *weft__aligned_calloc(size_t n, size_t size, size_t align);
void weft__aligned_free(void *p, size_t align);

#endif
