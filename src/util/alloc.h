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

/* Huge pages for large, long-lived blocks (the cell blocks of a burst of
 * spawns: src/sched/cells.c). While the hook is libc's own (no
 * weft_set_allocator(), or NULL), weft__huge_alloc() maps `size` bytes (a
 * multiple of WEFT__HUGE_SIZE) at a WEFT__HUGE_SIZE boundary and asks the
 * kernel for transparent huge pages there (MADV_HUGEPAGE: one page fault
 * per 2 MiB instead of 512); zeroed, like any fresh mapping. It returns
 * NULL with a user's hook installed (every byte goes through that hook, as
 * weft/core.h promises), or when the mapping fails: the caller then
 * allocates through the hook. Release with weft__huge_free(p, size). */
#define WEFT__HUGE_SIZE ((size_t)2 << 20)
void *weft__huge_alloc(size_t size);
void weft__huge_free(void *p, size_t size);

#endif
