/* SPDX-License-Identifier: MIT */
/* Stacks at scale: past the limit on guarded stacks (lowered here with the
 * internal hook, so a few hundred coroutines take the degraded path),
 * stacks come from slabs with a canary below each; the stacks do not
 * overlap, every size works, everything is unmapped at the end; a broken
 * canary (a write below the stack, or a real overflow) is reported with
 * the coroutine's name and aborts, at the next switch out (forked child).
 * Also tens of thousands parked at once with the default limit, past
 * where one guarded mapping per stack would fill vm.max_map_count. */
#include "coro_test.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct parker {
    weft_cancel *tok;
    atomic_int *started;
};

/* fills a local array with its index, parks, checks it is intact: two
 * stacks overlapping would show */
static int parker(void *arg)
{
    struct parker *p = arg;
    unsigned char buf[2048];
    int id = atomic_fetch_add(p->started, 1);

    memset(buf, id & 0xff, sizeof(buf));
    ASSERT_OK(weft_co_cancel_wait(p->tok));
    for (size_t i = 0; i < sizeof(buf); i++)
        if (buf[i] != (unsigned char)(id & 0xff))
            return -EIO;
    return 0;
}

static void park_many(size_t n, long limit)
{
    weft_runtime *rt = ct_runtime(2);
    weft_join **js = calloc(n, sizeof(*js));
    atomic_int started = 0;
    struct parker p = { NULL, &started };
    long old = weft__co_guard_limit_set(limit);

    ASSERT(js != NULL);
    ASSERT_OK(weft_cancel_new(&p.tok));
    for (size_t i = 0; i < n; i++)
        ASSERT_OK(weft_go(rt, parker, &p, &js[i]));
    for (int i = 0; i < 20000 && (size_t)atomic_load(&started) < n; i++)
        usleep(1000);
    ASSERT_EQ((int)n, atomic_load(&started));
    if (limit >= 0) {
        /* only this thread spawns: the limit is exact */
        ASSERT(weft__co_stacks_guarded() <= limit);
        ASSERT(weft__co_stacks_slab() >= (long)n - limit);
        ASSERT(weft__co_slabs_mapped() > 0);
    }
    weft_cancel_cancel(p.tok);
    for (size_t i = 0; i < n; i++) {
        int out = -1;

        ASSERT_OK(weft_join_wait(js[i], &out));
        ASSERT_EQ(0, out);
        weft_join_drop(js[i]);
    }
    weft_cancel_drop(p.tok);
    free(js);
    weft__co_guard_limit_set(old);
    CT_FREE(rt);
    ASSERT_EQ(0, weft__co_slabs_mapped());
    ASSERT_EQ(0, weft__co_stacks_slab());
}

TEST(many_past_a_lowered_limit_come_from_slabs)
{
    park_many(harness_scale(600), 8);
}

TEST(slabs_only)
{
    park_many(harness_scale(300), 0);
}

/* The default limit (a quarter of vm.max_map_count, 16,382 by default) is
 * passed: one guarded mapping per stack would fail near 32,000. */
TEST(forty_thousand_parked)
{
    park_many(harness_scale(40000), -1);
}

/* ---- every size: the usable part is at least what was asked ---------------- */
static int use_stack(void *arg)
{
    size_t want = (size_t)(uintptr_t)arg;
    volatile unsigned char big[want];      /* most of the stack, in one frame */

    for (size_t i = 0; i < want; i += 64)
        big[i] = (unsigned char)i;
    ASSERT_OK(weft_co_yield());
    for (size_t i = 0; i < want; i += 64)
        if (big[i] != (unsigned char)i)
            return -EIO;
    return (int)(want / 1024);
}

TEST(slab_stacks_of_every_size)
{
    static const size_t sizes[] = { 16 << 10, 20 << 10, 64 << 10, 256 << 10, 1 << 20 };
    weft_runtime *rt = ct_runtime(2);
    long old = weft__co_guard_limit_set(0);
    enum { PER = 5 };
    weft_join *js[sizeof(sizes) / sizeof(sizes[0])][PER];

    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        weft_go_options opt = { .stack_size = sizes[s], .name = "sized" };
        /* leave room for the frames above (much more under sanitizers) */
        size_t want = sizes[s] > (12 << 10) * 4 ? sizes[s] - (40 << 10) : sizes[s] / 4;

        for (int i = 0; i < PER; i++)
            ASSERT_OK(weft_go_opt(rt, use_stack, (void *)(uintptr_t)want, &opt, &js[s][i]));
    }
    ASSERT_EQ(0, weft__co_stacks_guarded());
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t want = sizes[s] > (12 << 10) * 4 ? sizes[s] - (40 << 10) : sizes[s] / 4;

        for (int i = 0; i < PER; i++) {
            int out = -1;

            ASSERT_OK(weft_join_wait(js[s][i], &out));
            ASSERT_EQ((int)(want / 1024), out);
            weft_join_drop(js[s][i]);
        }
    }
    weft__co_guard_limit_set(old);
    CT_FREE(rt);
    ASSERT_EQ(0, weft__co_slabs_mapped());
}

/* ---- a broken canary aborts with the coroutine's name ------------------------ */
/* 1: write below the stack then yield; 2: then return; 3: a real overflow
 * (recursion to 1 KiB below the stack's end, back up, then yield) */
static int smash_mode;

__attribute__((noinline)) static int dig(const char *limit)
{
    volatile char frame[128];

    for (size_t i = 0; i < sizeof(frame); i++)     /* a frame that uses its array */
        frame[i] = (char)i;
    if ((const char *)__builtin_frame_address(0) > limit)
        return dig(limit) + frame[1] + frame[sizeof(frame) - 1];
    return frame[1];
}

static int smasher(void *arg)
{
    struct weft__co *co = weft__co_running();   /* before any switch: this thread's */
    volatile char *below = (volatile char *)co->stack.lo - 8;

    (void)arg;
    if (smash_mode == 3) {
        dig(co->stack.lo - 1024);
    } else {
        *below = (char)~*below;
    }
    if (smash_mode == 2)
        return 1;
    weft_co_yield();
    return 2;
}

static void smash_child(void)
{
    weft_runtime *rt = NULL;
    weft_go_options opt = { .stack_size = 32 * 1024, .name = "smasher" };
    weft_join *j;

    weft__co_guard_limit_set(0);
    if (weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }) < 0)
        _exit(3);
    if (weft_go_opt(rt, smasher, NULL, &opt, &j) < 0)
        _exit(4);
    weft_join_wait(j, NULL);
    _exit(5);                   /* not reached */
}

static void expect_canary_abort(int mode)
{
    char out[4096];
    int st;

    smash_mode = mode;
    st = ct_in_child(smash_child, out, sizeof(out));
    fprintf(stderr, "child said: %s", out);
    ASSERT(WIFSIGNALED(st));
    ASSERT_EQ(SIGABRT, WTERMSIG(st));
    ASSERT(strstr(out, "stack overflow in coroutine \"smasher\"") != NULL);
    ASSERT(strstr(out, "canary") != NULL);
}

TEST(broken_canary_aborts_at_the_switch_out)
{
    expect_canary_abort(1);
}

TEST(broken_canary_aborts_when_the_coroutine_ends)
{
    expect_canary_abort(2);
}

TEST(overflow_of_a_slab_stack_aborts)
{
    expect_canary_abort(3);
}
