/* SPDX-License-Identifier: MIT */
/* An allocation hook that keeps exactly its documented promise (weft/core.h:
 * malloc's alignment, 16 bytes here) and no more: every block it returns is
 * 16 bytes past a 64-byte boundary, or 48 (never 32- or 64-aligned, as
 * glibc's malloc often is by chance). The runtime, its workers and shards
 * (cache-line-aligned members), task cells (64-aligned futures included) and
 * channels must still sit at their types' alignment: the structs are
 * checked directly, and the ASan build (UBSan, no recovery) aborts on any
 * misaligned access while the runtime, tasks and channels work. */
#define _GNU_SOURCE
#include "sched_test.h"

#include <stdlib.h>

#include "sched/internal.h"

static atomic_long odd_live, odd_allocs;
static atomic_uint odd_flip;

/* 16 or 48 past a 64-byte boundary; the block malloc gave sits just below */
static void *odd_malloc(void *ctx, size_t size)
{
    char *raw = malloc(size + 128);
    uintptr_t p;

    (void)ctx;
    if (raw == NULL)
        return NULL;
    p = ((uintptr_t)raw + 63) & ~(uintptr_t)63;
    p += (atomic_fetch_add(&odd_flip, 1) & 1) ? 48 : 16;
    ((void **)p)[-1] = raw;
    atomic_fetch_add(&odd_live, 1);
    atomic_fetch_add(&odd_allocs, 1);
    return (void *)p;
}

static void odd_free(void *ctx, void *p)
{
    (void)ctx;
    if (p == NULL)
        return;
    ASSERT_EQ(16, (uintptr_t)p % 32);      /* one of ours */
    atomic_fetch_sub(&odd_live, 1);
    free(((void **)p)[-1]);
}

static void odd_install(void)
{
    static const weft_allocator odd = { odd_malloc, odd_free, NULL };

    atomic_store(&odd_live, 0);
    atomic_store(&odd_allocs, 0);
    ASSERT_OK(weft_set_allocator(&odd));
}

static void odd_remove(void)
{
    ASSERT_OK(weft_set_allocator(NULL));   /* the harness installs its own next */
    ASSERT_EQ(0, atomic_load(&odd_live));  /* nothing leaked through our hook */
    ASSERT(atomic_load(&odd_allocs) > 0);
}

#define ALIGNED(p, a) (((uintptr_t)(p) % (a)) == 0)

/* A future that wants a whole cache line and says so. */
typedef struct wide {
    _Alignas(64) unsigned char line[64];
    int n;
} wide;

static atomic_int wide_misaligned, wide_done;

static weft_poll wide_poll(wide *f, weft_context *cx, void *out)
{
    if (!ALIGNED(f, 64))
        atomic_fetch_add(&wide_misaligned, 1);
    f->line[0]++;                            /* UBSan checks the access */
    if (f->n-- > 0) {
        weft_waker_wake_by_ref(weft_context_waker(cx));
        return WEFT_PENDING;
    }
    *(int *)out = f->line[0];
    atomic_fetch_add(&wide_done, 1);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(wide, wide_poll, NULL, int);

/* A pair of tasks passing numbers over a channel. */
typedef struct pinger {
    weft_async co;
    weft_chan *ch;
    int i, n, got, res;
    weft_chan_send s;
    weft_chan_recv r;
    bool sender;
} pinger;

static weft_poll pinger_poll(pinger *p, weft_context *cx, void *out)
{
    WEFT_BEGIN(&p->co);
    for (p->i = 0; p->i < p->n; p->i++) {
        if (p->sender) {
            weft_chan_send_init(&p->s, p->ch, &p->i);
            WEFT_AWAIT(&p->co, weft_chan_send_poll(&p->s, cx, &p->res));
            weft_chan_send_drop(&p->s);
        } else {
            weft_chan_recv_init(&p->r, p->ch, &p->got);
            WEFT_AWAIT(&p->co, weft_chan_recv_poll(&p->r, cx, &p->res));
            weft_chan_recv_drop(&p->r);
            if (p->res != 0 || p->got != p->i)
                break;
        }
    }
    *(int *)out = p->i;
    WEFT_END(&p->co);
}

static void pinger_drop(pinger *p)
{
    weft_chan_send_drop(&p->s);
    weft_chan_recv_drop(&p->r);
}

WEFT_DEFINE_FUTURE(pinger, pinger_poll, pinger_drop, int);

static void check_runtime_layout(weft_runtime *rt)
{
    ASSERT(ALIGNED(rt, _Alignof(struct weft_runtime)));
    ASSERT(ALIGNED(rt->workers, _Alignof(struct worker)));
    ASSERT(ALIGNED(rt->shards, _Alignof(struct shard)));
    for (unsigned i = 0; i < rt->nworkers; i++)
        ASSERT(ALIGNED(&rt->workers[i].q, 64));
}

static void exercise(weft_flavor flavor)
{
    enum { NWIDE = 64, NMSG = 200 };
    weft_runtime *rt;
    weft_join *wj[NWIDE], *a, *b;
    weft_chan *ch;
    int out;

    atomic_store(&wide_misaligned, 0);
    atomic_store(&wide_done, 0);
    odd_install();
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){
                                        .flavor = flavor,
                                        .workers = flavor == WEFT_MULTI_THREAD ? 2 : 0 }));
    check_runtime_layout(rt);
    for (int i = 0; i < NWIDE; i++)
        ASSERT_OK(weft_spawn(rt, &wide_future, &(wide){ .n = i % 4 }, &wj[i]));
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 4));
    ASSERT_OK(weft_spawn(rt, &pinger_future, &(pinger){ .ch = ch, .n = NMSG, .sender = true }, &a));
    ASSERT_OK(weft_spawn(rt, &pinger_future, &(pinger){ .ch = ch, .n = NMSG }, &b));
    if (flavor == WEFT_CURRENT_THREAD)
        ASSERT_OK(weft_runtime_run(rt));
    for (int i = 0; i < NWIDE; i++) {
        ASSERT_OK(weft_join_wait(wj[i], &out));
        ASSERT_EQ(i % 4 + 1, out);
        weft_join_drop(wj[i]);
    }
    ASSERT_OK(weft_join_wait(a, &out));
    ASSERT_EQ(NMSG, out);
    ASSERT_OK(weft_join_wait(b, &out));
    ASSERT_EQ(NMSG, out);
    weft_join_drop(a);
    weft_join_drop(b);
    weft_chan_drop(ch);
    ASSERT_EQ(0, atomic_load(&wide_misaligned));
    ASSERT_EQ(NWIDE, atomic_load(&wide_done));
    weft_runtime_free(rt);
    odd_remove();
}

TEST(sixteen_byte_aligned_hook_multi_thread)
{
    exercise(WEFT_MULTI_THREAD);
}

TEST(sixteen_byte_aligned_hook_current_thread)
{
    exercise(WEFT_CURRENT_THREAD);
}
