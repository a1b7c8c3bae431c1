// SPDX-License-Identifier: MIT
/* Audit 8 of weft/coro.h: coroutines whose cleanup (after -ECANCELED at a
 * runtime shutdown) waits for another coroutine, stack sizes at their exact
 * edges used to the last page, and weft_co_await_timeout() at the ends of
 * its range. */
#include "coro_test.h"

#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>

#define WAIT_MS 20000u

/* ---- a cleanup that waits for a sibling at shutdown ---------------------------------- */
typedef struct sib_ctx {
    weft_notify *never;
    weft_join *b;
    atomic_int b_runs, b_result;
    atomic_int a_join, a_wait, a_out, a_done;
    atomic_int parked;
} sib_ctx;

static int sib_b(void *arg)
{
    sib_ctx *c = arg;
    int r;

    atomic_fetch_add(&c->b_runs, 1);
    atomic_fetch_add(&c->parked, 1);
    r = weft_co_notify_wait(c->never);
    atomic_store(&c->b_result, r);
    return 42;
}

static int sib_a(void *arg)
{
    sib_ctx *c = arg;
    int out = -1;

    atomic_fetch_add(&c->parked, 1);
    atomic_store(&c->a_join, weft_co_join(c->b, &out));
    /* cancelled: the cleanup waits for B by the plain-thread call, which
     * task.h allows in a drop that the runtime's shutdown runs (B is then
     * cancelled there and then: -ECANCELED) */
    atomic_store(&c->a_wait, weft_join_wait(c->b, &out));
    atomic_store(&c->a_out, out);
    atomic_store(&c->a_done, 1);
    return 0;
}

static void sib_run(bool b_first)
{
    weft_runtime *rt = ct_runtime(2);
    sib_ctx c;
    weft_join *a = NULL;
    uint64_t t0 = weft_now_ms();

    memset(&c, 0, sizeof(c));
    atomic_store(&c.a_join, 1);
    atomic_store(&c.a_wait, 1);
    atomic_store(&c.b_result, 1);
    atomic_store(&c.a_out, -1);
    ASSERT_OK(weft_notify_new(&c.never));
    if (b_first) {
        ASSERT_OK(weft_go(rt, sib_b, &c, &c.b));
        ASSERT_OK(weft_go(rt, sib_a, &c, &a));
    } else {
        /* A spawned first: B's handle is set before A can run (A waits
         * for `parked` of B's, below, through a second notify-free spin) */
        ASSERT_OK(weft_go_opt(rt, sib_b, &c, NULL, &c.b));
        ASSERT_OK(weft_go(rt, sib_a, &c, &a));
    }
    while (atomic_load(&c.parked) < 2) {
        ASSERT(weft_now_ms() - t0 < WAIT_MS);
        usleep(1000);
    }
    usleep(20000);                      /* both parked (no harm if not yet) */
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(1, atomic_load(&c.a_done));
    ASSERT_EQ(-ECANCELED, atomic_load(&c.a_join));
    ASSERT_EQ(-ECANCELED, atomic_load(&c.a_wait));
    ASSERT_EQ(-1, atomic_load(&c.a_out));         /* out untouched */
    ASSERT_EQ(1, atomic_load(&c.b_runs));
    ASSERT_EQ(-ECANCELED, atomic_load(&c.b_result));
    ASSERT_EQ(-ECANCELED, weft_join_wait(a, NULL));
    weft_join_drop(a);
    weft_join_drop(c.b);
    weft_notify_free(c.never);
    CT_FREE(rt);
}

TEST(shutdown_cleanup_waits_for_a_sibling_coroutine_spawned_first)
{
    sib_run(true);
}

TEST(shutdown_cleanup_waits_for_a_sibling_coroutine_spawned_after)
{
    sib_run(false);
}

/* ---- stacks at their edges ----------------------------------------------------------- */
/* weft_go_options.stack_size: "Usable stack bytes (rounded up to pages)".
 * The body touches a local array reaching to within `slack` bytes of the
 * requested size, byte by byte from the top (so a guard page is met in
 * order, never jumped). */
#define SLACK 3072

static int touch_stack(void *arg)
{
    size_t n = *(size_t *)arg;
    volatile char buf[n];

    for (size_t i = n; i-- > 0;)
        buf[i] = (char)i;
    return buf[n / 2] == (char)(n / 2) ? 7 : 0;
}

static void stack_edges_child(void)
{
    weft_runtime *rt = ct_runtime(1);
    static const size_t sizes[] = { WEFT_CO_STACK_MIN, WEFT_CO_STACK_MIN + 1,
                                    WEFT_CO_STACK_DEFAULT, 3 * WEFT_CO_STACK_MIN + 5 };

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t use = sizes[i] - SLACK;
        weft_join *j = NULL;
        int out = 0;

        ASSERT_OK(weft_go_opt(rt, touch_stack, &use,
                              &(weft_go_options){ .stack_size = sizes[i], .name = "edge" }, &j));
        ASSERT_OK(weft_join_wait(j, &out));
        ASSERT_EQ(7, out);
        weft_join_drop(j);
    }
    weft_runtime_free(rt);
}

TEST(stacks_of_the_edge_sizes_are_usable_to_the_last_pages)
{
    char buf[4096];
    int st;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    harness_skip("sanitizer frames take an unknown share of a small stack");
#endif
    st = ct_in_child(stack_edges_child, buf, sizeof(buf));
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(0, WEXITSTATUS(st));
}

TEST(stack_sizes_just_outside_the_range_are_einval)
{
    weft_runtime *rt = ct_runtime(1);
    weft_join *j = (weft_join *)1;
    size_t use = 0;

    ASSERT_EQ(-EINVAL, weft_go_opt(rt, touch_stack, &use,
                                   &(weft_go_options){ .stack_size = WEFT_CO_STACK_MIN - 1 }, &j));
    ASSERT_EQ(-EINVAL, weft_go_opt(rt, touch_stack, &use,
                                   &(weft_go_options){ .stack_size = WEFT_CO_STACK_MAX + 1 }, &j));
    ASSERT_EQ(-EINVAL, weft_go_opt(rt, touch_stack, &use,
                                   &(weft_go_options){ .stack_size = SIZE_MAX }, &j));
    ASSERT(j == (weft_join *)1);
    ASSERT_EQ(-EINVAL, weft_co_block_on(rt, touch_stack, &use,
                                        &(weft_go_options){ .stack_size = 1 }, NULL));
    CT_FREE(rt);
}

/* ---- await_timeout at the ends of its range ----------------------------------------- */
typedef struct val_fut {
    int polls_left;          /* PENDING this many times (waking itself) */
    int value;
    atomic_int *drops;
} val_fut;

static weft_poll val_poll(val_fut *f, weft_context *cx, void *out)
{
    if (f->polls_left > 0) {
        f->polls_left--;
        weft_waker_wake_by_ref(weft_context_waker(cx));
        return WEFT_PENDING;
    }
    *(int *)out = f->value;
    return WEFT_READY;
}

static void val_drop(val_fut *f)
{
    atomic_fetch_add(f->drops, 1);
}

WEFT_DEFINE_FUTURE_STATIC(val_fut, val_poll, val_drop, int);

typedef struct to_ctx {
    atomic_int drops;
    int bad;
} to_ctx;

static int to_body(void *arg)
{
    to_ctx *c = arg;
    int out = -1;
    weft_sleep never;
    val_fut f;

    /* 0 ms, ready at its first poll: the future wins */
    f = (val_fut){ 0, 5, &c->drops };
    if (weft_co_await_timeout(&val_fut_future, &f, &out, 0) != 0 || out != 5)
        c->bad |= 1;
    /* 0 ms, pending: -ETIMEDOUT at once, out untouched */
    out = -1;
    f = (val_fut){ 1000000, 5, &c->drops };
    if (weft_co_await_timeout(&val_fut_future, &f, &out, 0) != -ETIMEDOUT || out != -1)
        c->bad |= 2;
    /* the largest limit: never expires, the future completes */
    f = (val_fut){ 3, 9, &c->drops };
    if (weft_co_await_timeout(&val_fut_future, &f, &out, UINT64_MAX) != 0 || out != 9)
        c->bad |= 4;
    f = (val_fut){ 3, 10, &c->drops };
    if (weft_co_await_timeout(&val_fut_future, &f, &out, UINT64_MAX - weft_now_ms()) != 0 ||
        out != 10)
        c->bad |= 8;
    /* a huge limit and a coroutine deadline near: the deadline decides */
    weft_sleep_init(&never, UINT64_MAX);
    weft_co_deadline_set(weft_now_ms() + 20);
    if (weft_co_await_timeout(&weft_sleep_future, &never, NULL, UINT64_MAX) != -ETIMEDOUT)
        c->bad |= 16;
    weft_co_deadline_set(0);
    /* the deadline at the end of time: nothing expires */
    weft_co_deadline_set(UINT64_MAX);
    if (weft_co_sleep(1) != 0)
        c->bad |= 32;
    weft_co_deadline_set(0);
    return 0;
}

TEST(await_timeout_at_zero_and_at_the_end_of_time)
{
    weft_runtime *rt = ct_runtime(2);
    to_ctx c;
    int r = -1;

    memset(&c, 0, sizeof(c));
    ASSERT_OK(weft_co_block_on(rt, to_body, &c, NULL, &r));
    ASSERT_EQ(0, r);
    ASSERT_EQ(0, c.bad);
    ASSERT_EQ(4, atomic_load(&c.drops));      /* each future dropped once */
    CT_FREE(rt);
}

/* ---- stacks released with the last runtime, whatever thread freed it ----------------- */
/* coro.h: freed stacks are cached per thread and shared, "so none stays
 * mapped once every runtime is freed". A runtime freed by a plain thread
 * (not the main one) with coroutines parked runs their drops there: their
 * stacks must not stay in that thread's cache once the runtime is gone. */
static int parks_forever(void *arg)
{
    return weft_co_notify_wait(arg);
}

static int quick_body(void *arg)
{
    (void)arg;
    return weft_co_yield() == 0 ? 3 : -1;
}

static void *free_from_thread(void *arg)
{
    long *mapped = arg;
    weft_runtime *rt = ct_runtime(2);
    weft_notify *n;
    weft_join *j[5];

    ASSERT_OK(weft_notify_new(&n));
    for (int i = 0; i < 5; i++)
        ASSERT_OK(weft_go(rt, parks_forever, n, &j[i]));
    usleep(20000);                      /* parked (or not yet started: the same) */
    weft_runtime_free(rt);              /* the drops run here */
    for (int i = 0; i < 5; i++)
        weft_join_drop(j[i]);
    weft_notify_free(n);
    mapped[0] = weft__co_stacks_mapped(); /* this thread still lives */

    /* a current-thread runtime driven here: its coroutines finish here */
    rt = ct_current_thread();
    for (int i = 0; i < 3; i++) {
        int r = -1;

        ASSERT_OK(weft_co_block_on(rt, quick_body, NULL, NULL, &r));
        ASSERT_EQ(3, r);
    }
    ASSERT_OK(weft_runtime_shutdown(rt));
    /* a spawn refused after the shutdown releases its stack here */
    ASSERT_EQ(-ESHUTDOWN, weft_go_detached(rt, quick_body, NULL));
    weft_runtime_free(rt);
    mapped[1] = weft__co_stacks_mapped();
    return NULL;
}

TEST(stacks_are_unmapped_when_a_plain_thread_frees_the_last_runtime)
{
    pthread_t th;
    long mapped[2] = { -1, -1 };

    ASSERT_EQ(0, pthread_create(&th, NULL, free_from_thread, mapped));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_EQ(0, mapped[0]);
    ASSERT_EQ(0, mapped[1]);
    ASSERT_EQ(0, weft__co_stacks_mapped());
}

/* ---- WEFT_CO_GUARD_MAX large: every stack guarded, -ENOMEM when the map is full ------ */
/* coro.h: "a large number keeps every stack guarded (weft_go() then returns
 * -ENOMEM when the map is full)". The child fills its memory map to
 * vm.max_map_count (pages of one mapping made PROT_NONE one by one, each
 * a new map entry), leaves exactly one entry free, and spawns: a guarded
 * stack needs two (the mapping and its guard page), so the spawn must fail
 * with -ENOMEM, not hand out a stack without a guard page (a slab stack
 * needs one entry). Before the audit it fell back to a slab stack. */
static long map_entries(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;

    if (f == NULL)
        return -1;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int guard_noop(void *arg)
{
    (void)arg;
    return 5;
}

static void full_map_child(void)
{
    weft_runtime *rt = ct_runtime(1);
    weft_join *j = NULL;
    int out = 0, r;
    size_t ps = (size_t)sysconf(_SC_PAGESIZE), pages = 2u * 70000u, k;
    char *region;
    long guarded;

    /* warm: the guard limit is read, the worker's signal stack mapped */
    ASSERT_OK(weft_go(rt, guard_noop, NULL, &j));
    ASSERT_OK(weft_join_wait(j, &out));
    weft_join_drop(j);
    ASSERT(map_entries() > 0);
    region = mmap(NULL, pages * ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ASSERT(region != MAP_FAILED);
    for (k = 1; k < pages; k += 2)
        if (mprotect(region + k * ps, ps, PROT_NONE) != 0)
            break;
    ASSERT(k < pages);                  /* the map is (nearly) full */
    /* take any entry left, then give exactly one back: a PROT_NONE page
     * between two readable ones, unmapped, is one entry less */
    for (int i = 0; i < 64; i++)
        if (mmap(NULL, ps, (i & 1) ? PROT_READ : PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
            break;
    ASSERT_EQ(0, munmap(region + 3 * ps, ps));
    guarded = weft__co_stacks_guarded();
    r = weft_go(rt, guard_noop, NULL, &j);
    if (r == 0) {
        fprintf(stderr, "spawned with %ld guarded stacks before, %ld after\n", guarded,
                weft__co_stacks_guarded());
        ASSERT_EQ(guarded + 1, weft__co_stacks_guarded());   /* it must be guarded */
    } else {
        ASSERT_EQ(-ENOMEM, r);
    }
    _exit(0);                           /* no room to tear down politely */
}

TEST(a_large_guard_max_never_hands_out_an_unguarded_stack)
{
    char buf[4096];
    int st;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    harness_skip("the sanitizer's runtime maps memory of its own at any time");
#endif
    ASSERT_EQ(0, setenv("WEFT_CO_GUARD_MAX", "1000000", 1));
    st = ct_in_child(full_map_child, buf, sizeof(buf));
    unsetenv("WEFT_CO_GUARD_MAX");
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(0, WEXITSTATUS(st));
}

/* ---- an abort made while the coroutine runs (not parked) ----------------------------- */
/* coro.h: aborting makes "every later blocking call return -ECANCELED at
 * once without waiting", and weft_co_cancelled() is "True once the running
 * coroutine has been aborted". Made while the coroutine runs on a worker
 * (spinning, parked nowhere), the abort used to go unseen until a call had
 * to wait: weft_co_cancelled() said false and a receive with a message
 * ready took it (0). `how`: 0 weft_join_abort(), 1 a group's cancel; the
 * first call after the abort is a receive, a yield or weft_co_cancelled(). */
typedef struct ar_ctx {
    weft_chan *ch;
    int first;                          /* 0 recv, 1 yield, 2 cancelled() */
    atomic_int running, aborted;
    atomic_int first_result, recv_result, later;
} ar_ctx;

static int ar_body(void *arg)
{
    ar_ctx *c = arg;
    int v = 0;
    uint64_t until = weft_now_ms() + WAIT_MS;

    atomic_store(&c->running, 1);
    while (!atomic_load(&c->aborted) && weft_now_ms() < until)
        ;                               /* running, parked nowhere */
    if (c->first == 1)
        atomic_store(&c->first_result, weft_co_yield());
    else if (c->first == 2)
        atomic_store(&c->first_result, weft_co_cancelled() ? -ECANCELED : 0);
    atomic_store(&c->recv_result, weft_co_chan_recv(c->ch, &v));
    atomic_store(&c->later, weft_co_sleep(1));
    return 0;
}

static void ar_run(int how, int first)
{
    weft_runtime *rt = ct_runtime(2);
    weft_group *g = NULL;
    weft_join *j = NULL;
    ar_ctx c;

    memset(&c, 0, sizeof(c));
    c.first = first;
    atomic_store(&c.first_result, 1);
    ASSERT_OK(weft_chan_new(&c.ch, sizeof(int), 4));
    ASSERT_OK(weft_chan_try_send(c.ch, &(int){ 5 }));
    if (how == 0) {
        ASSERT_OK(weft_go(rt, ar_body, &c, &j));
    } else {
        ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
        ASSERT_OK(weft_go_group(g, ar_body, &c, NULL));
    }
    while (!atomic_load(&c.running))
        usleep(100);
    if (how == 0)
        weft_join_abort(j);
    else
        weft_group_cancel(g);
    atomic_store(&c.aborted, 1);
    if (how == 0) {
        ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));   /* ended cancelled */
        weft_join_drop(j);
    } else {
        ASSERT_OK(weft_group_free(g));
    }
    if (first != 0)
        ASSERT_EQ(-ECANCELED, atomic_load(&c.first_result));
    ASSERT_EQ(-ECANCELED, atomic_load(&c.recv_result));
    ASSERT_EQ(-ECANCELED, atomic_load(&c.later));
    ASSERT_EQ(1, weft_chan_len(c.ch));                    /* the message stayed */
    weft_chan_drop(c.ch);
    CT_FREE(rt);
}

TEST(abort_while_running_then_receive)
{
    ar_run(0, 0);
}

TEST(abort_while_running_then_yield)
{
    ar_run(0, 1);
}

TEST(abort_while_running_then_ask)
{
    ar_run(0, 2);
}

TEST(group_cancel_while_running_then_receive)
{
    ar_run(1, 0);
}
