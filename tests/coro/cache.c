/* SPDX-License-Identifier: MIT */
/* The stack caches (src/coro/stack.c): a burst of coroutines' stacks is
 * kept for the next burst (up to the shared cache's 1,024), past the
 * first few with only their top page committed, and all of it is unmapped
 * once the runtime's threads have exited. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "coro_test.h"

/* Open once the whole burst is spawned: until then its coroutines yield,
 * so that none ends (and gives its stack back for a later spawn of the
 * same burst to take) before all have their stacks. */
static atomic_int gate;

static void wait_gate(void)
{
    while (!atomic_load(&gate))
        ASSERT_OK(weft_co_yield());
}

static int trivial(void *arg)
{
    (void)arg;
    wait_gate();
    return 0;
}

/* `n` coroutines spawned from this thread, each with a stack of its own
 * (all live at once), then joined. */
static void burst(weft_runtime *rt, int n, weft_co_fn *fn, const weft_go_options *opt)
{
    weft_join **j = malloc((size_t)n * sizeof(*j));

    ASSERT(j != NULL);
    atomic_store(&gate, 0);
    for (int i = 0; i < n; i++)
        ASSERT_OK(weft_go_opt(rt, fn, NULL, opt, &j[i]));
    atomic_store(&gate, 1);
    for (int i = 0; i < n; i++) {
        ASSERT_OK(weft_join_wait(j[i], NULL));
        weft_join_drop(j[i]);
    }
    free(j);
}

/* With the old 64-stack shared cache, at most 64 plus 16 per worker of a
 * burst's 300 stacks stayed mapped, and every later burst mapped the rest
 * again; now all 300 are kept, and the next burst maps at most the ones
 * that sit in the workers' own caches (which the spawning thread cannot
 * take from). */
TEST(a_burst_keeps_its_stacks_for_the_next)
{
    weft_runtime *rt = ct_runtime(2);
    long after1, after2;

    burst(rt, 300, trivial, NULL);
    after1 = weft__co_stacks_mapped();
    ASSERT_EQ(300, after1);
    burst(rt, 300, trivial, NULL);
    after2 = weft__co_stacks_mapped();
    ASSERT_LE(after1 + 2 * 16, after2);
    CT_FREE(rt);                              /* its exit unmaps them all */
}

/* Slab stacks (no guard page; a canary below each, in the top page of the
 * slot below, checked at every switch out): a trimmed stack keeps its top
 * page, so the canary of the stack above survives, and the next bursts,
 * on the same slots, switch without a canary report. */
TEST(trimmed_slab_stacks_keep_the_canaries_above)
{
    weft_runtime *rt = ct_runtime(2);
    long old = weft__co_guard_limit_set(0);          /* slabs only */

    for (int round = 0; round < 3; round++)
        burst(rt, 300, trivial, NULL);
    ASSERT(weft__co_stacks_slab() > 0);
    CT_FREE(rt);
    weft__co_guard_limit_set(old);
}

/* ---- trimmed: what a cached stack keeps committed ---------------------------------- */
#if !(WEFT_CO_ASAN || WEFT_CO_TSAN)
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;

    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

#define DEEP_KIB 96

/* touches DEEP_KIB of its stack, one write per page */
static int deep(void *arg)
{
    volatile char buf[DEEP_KIB * 1024];

    (void)arg;
    wait_gate();
    for (size_t i = 0; i < sizeof(buf); i += 4096)
        buf[i] = 1;
    return buf[0] - 1;
}
#endif

TEST(cached_stacks_past_the_first_keep_one_page)
{
#if WEFT_CO_ASAN || WEFT_CO_TSAN
    /* sanitizers keep frames and shadow of their own: RSS says little */
    harness_skip("RSS of cached stacks is checked without sanitizers");
#else
    weft_runtime *rt = ct_runtime(2);
    const weft_go_options opt = { .stack_size = 128 * 1024 };
    long before, after;
    int n = 400;

    ASSERT(rss_kib() > 0);
    burst(rt, 2, trivial, NULL);              /* the workers' first-use costs */
    before = rss_kib();
    burst(rt, n, deep, &opt);
    after = rss_kib();
    /* untrimmed: n x DEEP_KIB (37.5 MiB) would stay committed; trimmed:
     * the workers' caches (2 x 16) and the shared cache's first 64 whole,
     * the other 304 a page each, about 10 MiB; the bound is generous */
    ASSERT_LE((long)n * DEEP_KIB / 2, after - before);
    ASSERT_EQ(n + 2, weft__co_stacks_mapped());
    /* a trimmed stack works as a new one: zeros, then written again */
    burst(rt, n, deep, &opt);
    CT_FREE(rt);
#endif
}
