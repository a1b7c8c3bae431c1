/* SPDX-License-Identifier: MIT */
/* Worker names and indices, and the validation of runtime options. */
#define _GNU_SOURCE
#include "sched_test.h"

/* ---- Meeting every worker -------------------------------------------------------
 * `n` tasks for `n` workers; each waits until all `n` have started, so each
 * occupies its own worker (a worker running one cannot start another). Each
 * records what it sees of its thread. The wait is a spin with a watchdog:
 * blocking a worker is fine in a test, not in real code. */
struct seen {
    int index;
    char name[32];            /* weft_worker_name() */
    char comm[32];            /* the thread's name, as the kernel has it */
    bool same_runtime;
};

#define MAX_MEET 64

static struct seen seen[MAX_MEET];
static atomic_int arrived;
static atomic_int slot_next;
static atomic_int meet_timeout;

typedef struct meet {
    int n;
    weft_runtime *rt;
} meet;

static weft_poll meet_poll(meet *m, weft_context *cx, void *out)
{
    int k = atomic_fetch_add(&slot_next, 1);
    const char *name = weft_worker_name();
    uint64_t end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);

    (void)cx, (void)out;
    seen[k].index = weft_worker_index();
    snprintf(seen[k].name, sizeof(seen[k].name), "%s", name ? name : "(null)");
    if (pthread_getname_np(pthread_self(), seen[k].comm, sizeof(seen[k].comm)) != 0)
        snprintf(seen[k].comm, sizeof(seen[k].comm), "(error)");
    seen[k].same_runtime = weft_runtime_current() == m->rt;
    atomic_fetch_add(&arrived, 1);
    while (atomic_load(&arrived) < m->n) {
        if (harness_now_ns() > end) {
            atomic_store(&meet_timeout, 1);
            break;
        }
        sched_yield();
    }
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID(meet, meet_poll, NULL);

static void meet_all_workers(weft_runtime *rt, int n)
{
    ASSERT(n <= MAX_MEET);
    atomic_store(&arrived, 0);
    atomic_store(&slot_next, 0);
    atomic_store(&meet_timeout, 0);
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < n; i++)
        ASSERT_OK(weft_spawn_detached(rt, &meet_future, &(meet){ n, rt }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_EQ(0, atomic_load(&meet_timeout));
    ASSERT_EQ(n, atomic_load(&arrived));
}

/* The name a worker of index `i` should have: prefix cut so that prefix +
 * index fits the 15 characters Linux keeps. */
static void expected_name(char *buf, size_t size, const char *prefix, int i)
{
    char idx[16];
    int keep;

    snprintf(idx, sizeof(idx), "%d", i);
    keep = 15 - (int)strlen(idx);
    if ((int)strlen(prefix) < keep)
        keep = (int)strlen(prefix);
    snprintf(buf, size, "%.*s%s", keep, prefix, idx);
}

/* Every worker, seen from inside and from /proc, has the expected name. */
static void check_names(const char *prefix, int n)
{
    weft_runtime *rt;
    thread_names tn;
    bool got[MAX_MEET] = { false };
    char want[32], short_prefix[16];

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){
                                        .workers = (unsigned)n, .thread_name_prefix = prefix }));
    meet_all_workers(rt, n);
    for (int k = 0; k < n; k++) {
        int i = seen[k].index;

        if (i < 0 || i >= n || got[i])
            harness_fail(__FILE__, __LINE__, "task %d: worker index %d (of %d workers, "
                         "each seen once)", k, i, n);
        got[i] = true;
        expected_name(want, sizeof(want), prefix ? prefix : "weft-w", i);
        if (strcmp(seen[k].name, want) != 0 || strcmp(seen[k].comm, want) != 0)
            harness_fail(__FILE__, __LINE__, "worker %d: weft_worker_name() \"%s\", "
                         "thread name \"%s\", expected \"%s\"", i, seen[k].name,
                         seen[k].comm, want);
        ASSERT(strlen(seen[k].name) <= 15);
        ASSERT(seen[k].same_runtime);
    }
    /* /proc agrees: exactly the n names (the longest common prefix of all
     * names is the prefix cut to 13 characters, enough to find them) */
    expected_name(want, sizeof(want), prefix ? prefix : "weft-w", 10);
    snprintf(short_prefix, sizeof(short_prefix), "%.*s", (int)strlen(want) - 2, want);
    read_thread_names(&tn, short_prefix);
    for (int i = 0; i < n; i++) {
        expected_name(want, sizeof(want), prefix ? prefix : "weft-w", i);
        if (!has_thread_name(&tn, want))
            harness_fail(__FILE__, __LINE__, "no thread named \"%s\" in /proc", want);
    }
    ASSERT_EQ(n, tn.n);
    weft_runtime_free(rt);
    /* workers are gone once the runtime is freed. pthread_join() returns
     * when the kernel clears the thread's tid, which is a little before
     * the thread leaves /proc/self/task: give the kernel up to 2 s. */
    for (int tries = 0; tries < 200; tries++) {
        read_thread_names(&tn, short_prefix);
        if (tn.n == 0)
            break;
        usleep(10 * 1000);
    }
    ASSERT_EQ(0, tn.n);
}

TEST(worker_threads_are_named_weft_w0_w1)
{
    check_names(NULL, 4);
}

TEST(custom_prefix_names_workers)
{
    check_names("io-", 3);
    check_names("pool.", 2);
}

TEST(long_prefix_is_cut_so_the_index_survives)
{
    char want[32];

    /* 26 characters: 14 kept before one digit, 13 before two */
    expected_name(want, sizeof(want), "abcdefghijklmnopqrstuvwxyz", 3);
    ASSERT(strcmp(want, "abcdefghijklmn3") == 0);
    expected_name(want, sizeof(want), "abcdefghijklmnopqrstuvwxyz", 10);
    ASSERT(strcmp(want, "abcdefghijklm10") == 0);
    check_names("abcdefghijklmnopqrstuvwxyz", 12);
    /* exactly 14 and 15 characters: the index still fits */
    check_names("abcdefghijklmn", 11);
    check_names("abcdefghijklmno", 11);
}

/* ---- Outside tasks: no worker ------------------------------------------------------ */
static void *outside_thread(void *p)
{
    int *bad = p;

    *bad = weft_worker_name() != NULL || weft_worker_index() != -1 ||
           weft_runtime_current() != NULL;
    return NULL;
}

typedef struct where_am_i {
    int unused;
} where_am_i;

struct here {
    int index;
    bool named;
    bool same_runtime;
    bool same_thread;
};

static pthread_t caller;

static weft_poll where_am_i_poll(where_am_i *w, weft_context *cx, void *out)
{
    struct here *h = out;
    const char *name = weft_worker_name();

    (void)w, (void)cx;
    h->index = weft_worker_index();
    h->named = name != NULL && strncmp(name, "weft-w", 6) == 0;
    h->same_runtime = weft_runtime_current() != NULL;
    h->same_thread = pthread_equal(pthread_self(), caller);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE(where_am_i, where_am_i_poll, NULL, struct here);

TEST(worker_name_and_index_are_null_and_minus_one_outside_tasks)
{
    weft_runtime *rt;
    struct here h;
    pthread_t th;
    int bad = 1;

    caller = pthread_self();
    ASSERT(weft_worker_name() == NULL);
    ASSERT_EQ(-1, weft_worker_index());
    ASSERT(weft_runtime_current() == NULL);

    /* multi-thread: tasks run on a worker, not on the caller */
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT(weft_worker_name() == NULL);
    memset(&h, 0, sizeof(h));
    ASSERT_OK(weft_block_on(rt, &where_am_i_future, &(where_am_i){ 0 }, &h));
    ASSERT(h.index == 0 || h.index == 1);
    ASSERT(h.named);
    ASSERT(h.same_runtime);
    ASSERT(!h.same_thread);
    ASSERT(weft_worker_name() == NULL);
    ASSERT_EQ(-1, weft_worker_index());
    START_THREAD(&th, outside_thread, &bad);
    JOIN_THREAD(th);
    ASSERT_EQ(0, bad);
    weft_runtime_free(rt);

    /* current-thread: worker 0 while inside block_on/run, nothing after */
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    memset(&h, 0, sizeof(h));
    ASSERT_OK(weft_block_on(rt, &where_am_i_future, &(where_am_i){ 0 }, &h));
    ASSERT_EQ(0, h.index);
    ASSERT(h.named);
    ASSERT(h.same_runtime);
    ASSERT(h.same_thread);
    ASSERT(weft_worker_name() == NULL);
    ASSERT_EQ(-1, weft_worker_index());
    ASSERT(weft_runtime_current() == NULL);
    ASSERT_OK(weft_spawn_detached(rt, &where_am_i_future, &(where_am_i){ 0 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT(weft_worker_name() == NULL);
    ASSERT_EQ(-1, weft_worker_index());
    ASSERT(weft_runtime_current() == NULL);
    bad = 1;
    START_THREAD(&th, outside_thread, &bad);
    JOIN_THREAD(th);
    ASSERT_EQ(0, bad);
    weft_runtime_free(rt);
}

/* ---- Options ------------------------------------------------------------------------ */
TEST(bad_options_return_einval_and_leave_out_untouched)
{
    weft_runtime *const sentinel = (weft_runtime *)(uintptr_t)0x5eed;
    weft_runtime *rt = sentinel;

    ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &(weft_runtime_options){
                                                 .workers = WEFT_MAX_WORKERS + 1 }));
    ASSERT(rt == sentinel);
    ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &(weft_runtime_options){ .workers = ~0u }));
    ASSERT(rt == sentinel);
    ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &(weft_runtime_options){
                                                 .flavor = WEFT_CURRENT_THREAD, .workers = 1 }));
    ASSERT(rt == sentinel);
    ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &(weft_runtime_options){
                                                 .flavor = WEFT_CURRENT_THREAD, .workers = 4 }));
    ASSERT(rt == sentinel);
    ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &(weft_runtime_options){
                                                 .flavor = (weft_flavor)2 }));
    ASSERT(rt == sentinel);
    ASSERT_EQ(-EINVAL, weft_runtime_new(&rt, &(weft_runtime_options){
                                                 .flavor = (weft_flavor)-1, .workers = 1 }));
    ASSERT(rt == sentinel);
    ASSERT_EQ(-EINVAL, weft_runtime_new(NULL, NULL));
    ASSERT_EQ(-EINVAL, weft_runtime_new(NULL, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_EQ(0, harness_live());               /* nothing half-built left */
}

/* One worker per online CPU, named weft-w0 ... weft-w(n-1). */
static void check_default_workers(const weft_runtime_options *opt)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cpus < 1 ? 1 : cpus > WEFT_MAX_WORKERS ? WEFT_MAX_WORKERS : (int)cpus;
    weft_runtime *rt;
    thread_names tn;
    struct here h;
    uint64_t end;
    char want[16];

    caller = pthread_self();
    ASSERT_OK(weft_runtime_new(&rt, opt));
    memset(&h, 0, sizeof(h));
    ASSERT_OK(weft_block_on(rt, &where_am_i_future, &(where_am_i){ 0 }, &h));
    ASSERT(h.index >= 0 && h.index < n);
    ASSERT(h.named);
    ASSERT(!h.same_thread);
    if (n <= MAX_MEET) {
        meet_all_workers(rt, n);
        for (int k = 0; k < n; k++)
            ASSERT(seen[k].index >= 0 && seen[k].index < n);
    }
    /* the threads name themselves: give them the watchdog's time to do it */
    end = harness_now_ns() + ms_to_ns(WATCHDOG_MS);
    for (;;) {
        read_thread_names(&tn, "weft-w");
        if (tn.n == n || harness_now_ns() > end)
            break;
        usleep(1000);
    }
    ASSERT_EQ(n, tn.n);
    for (int i = 0; i < n && i < MAX_NAMES; i++) {
        snprintf(want, sizeof(want), "weft-w%d", i);
        ASSERT(has_thread_name(&tn, want));
    }
    weft_runtime_free(rt);
}

TEST(null_options_mean_defaults)
{
    check_default_workers(NULL);
}

TEST(zeroed_options_mean_defaults)
{
    check_default_workers(&(weft_runtime_options){ 0 });
}

TEST(one_worker_and_current_thread_are_valid)
{
    weft_runtime *rt;
    struct here h;

    caller = pthread_self();
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    memset(&h, 0, sizeof(h));
    ASSERT_OK(weft_block_on(rt, &where_am_i_future, &(where_am_i){ 0 }, &h));
    ASSERT_EQ(0, h.index);
    weft_runtime_free(rt);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){
                                        .flavor = WEFT_CURRENT_THREAD, .thread_name_prefix = "x" }));
    ASSERT_OK(weft_block_on(rt, &where_am_i_future, &(where_am_i){ 0 }, &h));
    ASSERT_EQ(0, h.index);
    ASSERT(h.same_thread);
    weft_runtime_free(rt);
}
