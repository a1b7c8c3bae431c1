/* SPDX-License-Identifier: MIT */
#include "util/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "weft/core.h"

static void *libc_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size);
}

static void libc_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

/* Written only by weft_set_allocator(), which the caller may not run
 * concurrently with anything else in weft: plain fields suffice. */
static weft_allocator hook = { libc_malloc, libc_free, NULL };

WEFT_API int weft_set_allocator(const weft_allocator *a)
{
    if (a == NULL) {
        hook = (weft_allocator){ libc_malloc, libc_free, NULL };
        return 0;
    }
    if (a->malloc == NULL || a->free == NULL)
        return -EINVAL;
    hook = *a;
    return 0;
}

void *weft__malloc(size_t size)
{
    return hook.malloc(hook.ctx, size ? size : 1);
}

void *weft__calloc(size_t n, size_t size)
{
    void *p;

    if (size && n > SIZE_MAX / size)
        return NULL;
    p = weft__malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void weft__free(void *p)
{
    if (p)
        hook.free(hook.ctx, p);
}

void *weft__aligned_alloc(size_t size, size_t align)
{
    uintptr_t raw, p;

    if (align <= WEFT__MALLOC_ALIGN)
        return weft__malloc(size);
    /* room to move up by up to align - 1 bytes, and for the raw pointer */
    if (size > SIZE_MAX - align - sizeof(void *))
        return NULL;
    raw = (uintptr_t)weft__malloc(size + align + sizeof(void *));
    if (raw == 0)
        return NULL;
    p = (raw + sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1);
    ((void **)p)[-1] = (void *)raw;
    return (void *)p;
}

void *weft__aligned_calloc(size_t n, size_t size, size_t align)
{
    void *p;

    if (size && n > SIZE_MAX / size)
        return NULL;
    p = weft__aligned_alloc(n * size, align);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void weft__aligned_free(void *p, size_t align)
{
    if (p == NULL)
        return;
    if (align <= WEFT__MALLOC_ALIGN)
        weft__free(p);
    else
        weft__free(((void **)p)[-1]);
}

/* Large blocks on huge pages (alloc.h). Only while the hook is libc's own:
 * a user's hook gets every byte, as weft/core.h promises; then the caller
 * falls back to ordinary blocks through it. mmap() rather than
 * posix_memalign(): an exact 2 MiB-aligned range (the head and tail of an
 * over-sized mapping are unmapped), which goes back to the system at
 * weft__huge_free() instead of staying in malloc's heap. */
void *weft__huge_alloc(size_t size)
{
    size_t span, head, tail;
    uintptr_t p;
    char *m;

    if (hook.malloc != libc_malloc || size == 0 || size % WEFT__HUGE_SIZE != 0 ||
        size > SIZE_MAX - WEFT__HUGE_SIZE)
        return NULL;
    span = size + WEFT__HUGE_SIZE;
    m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    p = ((uintptr_t)m + WEFT__HUGE_SIZE - 1) & ~(uintptr_t)(WEFT__HUGE_SIZE - 1);
    head = p - (uintptr_t)m;
    tail = span - head - size;
    if (head)
        munmap(m, head);
    if (tail)
        munmap((char *)p + size, tail);
#ifdef MADV_HUGEPAGE
    /* a hint: with THP off, or no huge page free, the range is still
     * ordinary memory, faulted a page at a time */
    madvise((void *)p, size, MADV_HUGEPAGE);
#endif
    return (void *)p;
}

void weft__huge_free(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}
