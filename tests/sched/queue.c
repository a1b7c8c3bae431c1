/* SPDX-License-Identifier: MIT */
/* The local run queue (src/sched/queue.h) on its own, without a runtime:
 * single-threaded checks of every operation against a model (FIFO order,
 * capacity, steal takes half rounded up, claim_half hands over the older
 * half linked in order, indices that wrap at 2^32, a steal in progress),
 * then a stress test: one owner pushes, pops and overflows while 1..7
 * stealers steal half of its queue (and of each other's) and every item must
 * come out exactly once.
 *
 * The queue never dereferences a task except for ->next in lq_claim_half(),
 * so the "tasks" are zeroed struct weft__task objects whose index in an
 * array is their id. Built twice, like every sched test: with the default
 * capacity and with WEFT_LOCAL_QUEUE_CAP=4. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "sched/queue.h"

#define QWATCHDOG_NS ((uint64_t)30 * 1000 * 1000 * 1000)

/* ---- Helpers --------------------------------------------------------------------- */
static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Put a queue's indices at `base` (empty), as if `base` tasks had passed
 * through it: lets the single-threaded checks cross the 2^32 wrap. */
static void lq_init_at(struct local_queue *q, uint32_t base)
{
    lq_init(q);
    atomic_store(&q->head, lq_pack(base, base));
    atomic_store(&q->tail, base);
}

/* ---- A model of one queue: the ids it holds, oldest first ------------------------ */
#define MODEL_ITEMS 4096   /* ids are taken modulo this; far above 2 * CAP */

typedef struct model {
    uint32_t id[WEFT_LOCAL_QUEUE_CAP];
    uint32_t n;
} model;

static struct weft__task model_items[MODEL_ITEMS];

static uint32_t id_of(const struct weft__task *t)
{
    ASSERT(t >= model_items && t < model_items + MODEL_ITEMS);
    return (uint32_t)(t - model_items);
}

static uint32_t model_take_front(model *m)
{
    uint32_t id = m->id[0];

    memmove(m->id, m->id + 1, (m->n - 1) * sizeof(m->id[0]));
    m->n--;
    return id;
}

static void model_check_len(struct local_queue *q, const model *m)
{
    ASSERT_EQ(m->n, lq_len(q));
}

/* Random operations on two queues, each checked against the model:
 *   push      succeeds iff fewer than CAP are queued; appends
 *   pop       the oldest, or NULL when empty
 *   claim     (only when full) CAP/2, the oldest half, linked in order
 *   steal     (only into an empty queue) ceil(n/2) capped at CAP/2 of the
 *             source's oldest; returns the newest of them, the others are
 *             queued in dst in order */
static void model_run(uint32_t base0, uint32_t base1, unsigned ops, uint64_t seed_in)
{
    uint64_t seed = seed_in * 0x9e3779b97f4a7c15ull;
    static struct local_queue q[2];
    model m[2] = { { { 0 }, 0 }, { { 0 }, 0 } };
    uint32_t next_id = 0;
    unsigned counts[5] = { 0 };

    lq_init_at(&q[0], base0);
    lq_init_at(&q[1], base1);
    for (unsigned i = 0; i < ops; i++) {
        uint64_t r = rng_next(&seed);
        unsigned x = (unsigned)(r >> 8) & 1, y = 1 - x;
        unsigned op = (unsigned)(r % 16);
        /* phases: mostly pushes (queues fill up, claims happen), then
         * mostly pops (queues run empty, steals happen) */
        bool filling = (i / (8 * LQ_CAP + 16)) % 2 == 0;
        bool push = filling ? op < 9 : op < 3;          /* else pop, if op < 12 */

        if (op < 12 && push) {                          /* push */
            struct weft__task *t = &model_items[next_id % MODEL_ITEMS];
            bool ok = lq_try_push(&q[x], t);

            ASSERT_EQ(m[x].n < LQ_CAP, ok);
            if (ok) {
                m[x].id[m[x].n++] = next_id % MODEL_ITEMS;
                next_id++;
            }
            counts[0]++;
        } else if (op < 12) {                           /* pop */
            struct weft__task *t = lq_pop(&q[x]);

            if (m[x].n == 0) {
                ASSERT(t == NULL);
            } else {
                ASSERT(t != NULL);
                ASSERT_EQ(model_take_front(&m[x]), id_of(t));
            }
            counts[1]++;
        } else if (op < 14) {                           /* claim half, when full */
            struct weft__task *first = NULL, *last = NULL, *t;
            uint32_t n;

            if (m[x].n != LQ_CAP)
                continue;
            n = lq_claim_half(&q[x], &first, &last);
            ASSERT_EQ(LQ_CAP / 2, n);
            t = first;
            for (uint32_t k = 0; k < n; k++) {
                ASSERT(t != NULL);
                ASSERT_EQ(model_take_front(&m[x]), id_of(t));
                if (k == n - 1)
                    ASSERT(t == last);
                t = t->next;
            }
            ASSERT(t == NULL);                          /* last->next */
            counts[2]++;
        } else {                                        /* steal y -> x */
            uint32_t stolen = 0, want;
            struct weft__task *t;

            if (m[x].n != 0)
                continue;                               /* dst must be empty */
            t = lq_steal_into(&q[y], &q[x], &stolen);
            if (m[y].n == 0) {
                ASSERT(t == NULL);
                counts[3]++;
                continue;
            }
            want = m[y].n - m[y].n / 2;                 /* ceil(n / 2) */
            if (want > LQ_CAP / 2)
                want = LQ_CAP / 2;
            ASSERT(t != NULL);
            ASSERT_EQ(want, stolen);
            for (uint32_t k = 0; k + 1 < want; k++)
                m[x].id[m[x].n++] = model_take_front(&m[y]);
            ASSERT_EQ(model_take_front(&m[y]), id_of(t));
            counts[4]++;
        }
        model_check_len(&q[0], &m[0]);
        model_check_len(&q[1], &m[1]);
    }
    /* every kind of operation was exercised */
    for (unsigned k = 0; k < 5; k++)
        if (counts[k] == 0)
            harness_fail(__FILE__, __LINE__, "operation %u never ran (%u %u %u %u %u)", k,
                         counts[0], counts[1], counts[2], counts[3], counts[4]);
    if (seed_in % 4 == 1)
        printf("seed %llu: %u pushes, %u pops, %u claims, %u empty steals, %u steals\n",
               (unsigned long long)seed_in, counts[0], counts[1], counts[2], counts[3],
               counts[4]);
    /* drain: what is left comes out in order */
    for (unsigned x = 0; x < 2; x++) {
        struct weft__task *t;

        while ((t = lq_pop(&q[x])) != NULL)
            ASSERT_EQ(model_take_front(&m[x]), id_of(t));
        ASSERT_EQ(0, m[x].n);
        ASSERT_EQ(0, lq_len(&q[x]));
    }
}

TEST(model_random_operations)
{
    for (uint64_t seed = 1; seed <= 8; seed++)
        model_run(0, 0, (unsigned)harness_scale(200000), seed);
}

TEST(model_random_operations_across_index_wrap)
{
    /* both queues start a few steps before 2^32 and run through it */
    for (uint64_t seed = 1; seed <= 8; seed++)
        model_run(UINT32_MAX - 3, UINT32_MAX - LQ_CAP - 1, (unsigned)harness_scale(200000),
                  seed + 100);
}

/* ---- Plain unit checks -------------------------------------------------------------- */
static struct weft__task unit_items[4 * WEFT_LOCAL_QUEUE_CAP + 8];

static uint32_t uid(const struct weft__task *t)
{
    ASSERT(t >= unit_items && t < unit_items + sizeof(unit_items) / sizeof(unit_items[0]));
    return (uint32_t)(t - unit_items);
}

static void fifo_and_capacity_at(uint32_t base)
{
    static struct local_queue q;

    lq_init_at(&q, base);
    ASSERT_EQ(0, lq_len(&q));
    ASSERT(lq_pop(&q) == NULL);
    for (uint32_t i = 0; i < LQ_CAP; i++) {
        ASSERT(lq_try_push(&q, &unit_items[i]));
        ASSERT_EQ(i + 1, lq_len(&q));
    }
    /* full: refused, and the queue is left alone */
    ASSERT(!lq_try_push(&q, &unit_items[LQ_CAP]));
    ASSERT_EQ(LQ_CAP, lq_len(&q));
    /* one out (the oldest), one more fits, and no more */
    ASSERT_EQ(0, uid(lq_pop(&q)));
    ASSERT(lq_try_push(&q, &unit_items[LQ_CAP]));
    ASSERT(!lq_try_push(&q, &unit_items[LQ_CAP + 1]));
    for (uint32_t i = 1; i <= LQ_CAP; i++)
        ASSERT_EQ(i, uid(lq_pop(&q)));
    ASSERT(lq_pop(&q) == NULL);
    ASSERT_EQ(0, lq_len(&q));
    /* a second lap around the ring */
    for (uint32_t lap = 0; lap < 3; lap++) {
        for (uint32_t i = 0; i < LQ_CAP; i++)
            ASSERT(lq_try_push(&q, &unit_items[i]));
        for (uint32_t i = 0; i < LQ_CAP; i++)
            ASSERT_EQ(i, uid(lq_pop(&q)));
    }
}

TEST(pop_is_fifo_and_push_stops_at_capacity)
{
    fifo_and_capacity_at(0);
    fifo_and_capacity_at(UINT32_MAX - 1);            /* indices wrap mid-way */
    fifo_and_capacity_at(UINT32_MAX - LQ_CAP / 2);
}

static void steal_half_at(uint32_t base_src, uint32_t base_dst)
{
    for (uint32_t k = 0; k <= LQ_CAP; k++) {
        static struct local_queue src, dst;
        uint32_t stolen = 0xdead, n = k - k / 2;
        struct weft__task *t;

        lq_init_at(&src, base_src);
        lq_init_at(&dst, base_dst);
        for (uint32_t i = 0; i < k; i++)
            ASSERT(lq_try_push(&src, &unit_items[i]));
        t = lq_steal_into(&src, &dst, &stolen);
        if (k == 0) {
            ASSERT(t == NULL);
            continue;
        }
        ASSERT(n <= LQ_CAP / 2);
        ASSERT(t != NULL);
        ASSERT_EQ(n, stolen);                        /* ceil(k / 2) */
        ASSERT_EQ(n - 1, uid(t));                    /* the newest of those taken */
        ASSERT_EQ(n - 1, lq_len(&dst));
        ASSERT_EQ(k - n, lq_len(&src));
        for (uint32_t i = 0; i + 1 < n; i++)
            ASSERT_EQ(i, uid(lq_pop(&dst)));
        ASSERT(lq_pop(&dst) == NULL);
        /* the stolen slots are free again: the source fills up to CAP */
        for (uint32_t i = 0; i < LQ_CAP - (k - n); i++)
            ASSERT(lq_try_push(&src, &unit_items[2 * LQ_CAP + i]));
        ASSERT(!lq_try_push(&src, &unit_items[3 * LQ_CAP]));
        for (uint32_t i = n; i < k; i++)
            ASSERT_EQ(i, uid(lq_pop(&src)));
        for (uint32_t i = 0; i < LQ_CAP - (k - n); i++)
            ASSERT_EQ(2 * LQ_CAP + i, uid(lq_pop(&src)));
        ASSERT(lq_pop(&src) == NULL);
    }
}

TEST(steal_takes_half_rounded_up)
{
    steal_half_at(0, 0);
    steal_half_at(UINT32_MAX - 1, 7);
    steal_half_at(5, UINT32_MAX);
}

TEST(steal_from_a_full_queue_takes_half)
{
    static struct local_queue src, dst;
    uint32_t stolen = 0;
    struct weft__task *t;

    lq_init(&src);
    lq_init(&dst);
    for (uint32_t i = 0; i < LQ_CAP; i++)
        ASSERT(lq_try_push(&src, &unit_items[i]));
    t = lq_steal_into(&src, &dst, &stolen);
    ASSERT_EQ(LQ_CAP / 2, stolen);
    ASSERT_EQ(LQ_CAP / 2 - 1, uid(t));
    ASSERT_EQ(LQ_CAP / 2, lq_len(&src));
    ASSERT_EQ(LQ_CAP / 2 - 1, lq_len(&dst));
    /* and again from what is left: half of the half */
    while (lq_pop(&dst) != NULL)
        ;
    t = lq_steal_into(&src, &dst, &stolen);
    ASSERT_EQ(LQ_CAP / 2 - LQ_CAP / 4, stolen);
    ASSERT_EQ(LQ_CAP / 2 + stolen - 1, uid(t));
}

static void claim_half_at(uint32_t base, uint32_t pre)
{
    static struct local_queue q;
    struct weft__task *first = NULL, *last = NULL, *t;
    uint32_t n;

    lq_init_at(&q, base);
    /* `pre` pushed and popped first, so the claimed range starts anywhere
     * in the ring */
    for (uint32_t i = 0; i < pre; i++) {
        ASSERT(lq_try_push(&q, &unit_items[0]));
        ASSERT(lq_pop(&q) == &unit_items[0]);
    }
    for (uint32_t i = 0; i < LQ_CAP; i++) {
        unit_items[i].next = &unit_items[3 * LQ_CAP];      /* garbage to overwrite */
        ASSERT(lq_try_push(&q, &unit_items[i]));
    }
    n = lq_claim_half(&q, &first, &last);
    ASSERT_EQ(LQ_CAP / 2, n);
    ASSERT(first == &unit_items[0]);
    ASSERT(last == &unit_items[LQ_CAP / 2 - 1]);
    t = first;
    for (uint32_t i = 0; i < n; i++) {
        ASSERT_EQ(i, uid(t));
        t = t->next;
    }
    ASSERT(t == NULL);
    ASSERT(last->next == NULL);
    ASSERT_EQ(LQ_CAP / 2, lq_len(&q));
    /* room for exactly CAP/2 more */
    for (uint32_t i = 0; i < LQ_CAP / 2; i++)
        ASSERT(lq_try_push(&q, &unit_items[LQ_CAP + i]));
    ASSERT(!lq_try_push(&q, &unit_items[2 * LQ_CAP]));
    for (uint32_t i = LQ_CAP / 2; i < LQ_CAP + LQ_CAP / 2; i++)
        ASSERT_EQ(i, uid(lq_pop(&q)));
    ASSERT(lq_pop(&q) == NULL);
}

TEST(claim_half_returns_the_older_half_linked_in_order)
{
    for (uint32_t pre = 0; pre < LQ_CAP; pre++) {
        claim_half_at(0, pre);
        claim_half_at(UINT32_MAX - LQ_CAP / 2, pre);
    }
}

/* A stealer that has claimed slots but not yet copied them (head's `steal`
 * behind its `real`), staged by hand: the owner must not overwrite those
 * slots, claim_half and other stealers back off, pop still works; once the
 * stealer gives the slots back, the owner can use them again. */
TEST(steal_in_progress_holds_its_slots)
{
    static struct local_queue q, dst;
    struct weft__task *first, *last;
    uint32_t stolen = 0, base = UINT32_MAX - 1;

    lq_init_at(&q, base);
    lq_init(&dst);
    for (uint32_t i = 0; i < LQ_CAP; i++)
        ASSERT(lq_try_push(&q, &unit_items[i]));
    /* stealer S claims the oldest slot: real = base+1, steal stays */
    atomic_store(&q.head, lq_pack(base, base + 1));
    ASSERT_EQ(LQ_CAP - 1, lq_len(&q));
    ASSERT(!lq_try_push(&q, &unit_items[LQ_CAP]));          /* slot 0 is S's */
    ASSERT_EQ(0, lq_claim_half(&q, &first, &last));
    ASSERT(lq_steal_into(&q, &dst, &stolen) == NULL);       /* one at a time */
    ASSERT_EQ(0, lq_len(&dst));
    ASSERT_EQ(1, uid(lq_pop(&q)));                          /* the owner pops on */
    ASSERT(!lq_try_push(&q, &unit_items[LQ_CAP]));          /* slot 0 still S's */
    /* S done copying: steal = real */
    {
        uint64_t h = atomic_load(&q.head);

        atomic_store(&q.head, lq_pack((uint32_t)h, (uint32_t)h));
    }
    ASSERT(lq_try_push(&q, &unit_items[LQ_CAP]));
    ASSERT(lq_try_push(&q, &unit_items[LQ_CAP + 1]));
    ASSERT(!lq_try_push(&q, &unit_items[LQ_CAP + 2]));
    for (uint32_t i = 2; i < LQ_CAP + 2; i++)
        ASSERT_EQ(i, uid(lq_pop(&q)));
    ASSERT(lq_pop(&q) == NULL);
}

/* ---- Stress: one owner, 1..7 stealers ------------------------------------------------
 * The owner pushes items 0..n-1 in order, popping now and then; when its
 * queue is full it claims half (those count as overflowed) or, when
 * claim_half says a stealer is at work, tries again. Stealers steal into
 * their own queue (mostly from the owner, sometimes from another stealer),
 * then pop everything from it. Every item must be taken exactly once; the
 * owner's takes (pops and claims, both from the head) must come in order. */
#define MAX_THREADS 8

static struct local_queue sq[MAX_THREADS];
static struct weft__task *s_items;
static _Atomic unsigned char *s_seen;
static size_t s_n;
static int s_threads;
static atomic_int s_producer_done;
static atomic_size_t s_owner_pops, s_overflowed, s_stolen, s_stealer_pops, s_steals;
static atomic_size_t s_cross_steals, s_claim_retries;
static uint64_t s_deadline;

static size_t s_take(struct weft__task *t)
{
    size_t id;

    if (t < s_items || t >= s_items + s_n)
        harness_fail(__FILE__, __LINE__, "a pointer that was never pushed: %p", (void *)t);
    id = (size_t)(t - s_items);
    if (atomic_fetch_add_explicit(&s_seen[id], 1, memory_order_relaxed) != 0)
        harness_fail(__FILE__, __LINE__, "item %zu taken twice", id);
    return id;
}

static void s_watchdog(const char *who)
{
    if (harness_now_ns() > s_deadline)
        harness_fail(__FILE__, __LINE__, "watchdog: %s still running", who);
}

static void *s_stealer(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint64_t rng = 0x1234567ull * (uint64_t)(me + 1);
    size_t stolen_items = 0, pops = 0, steals = 0, cross = 0;
    unsigned idle = 0;

    for (;;) {
        int done = atomic_load(&s_producer_done);
        int victim = 0;
        uint32_t n = 0;
        struct weft__task *t;

        /* one steal in four from another stealer's queue */
        if (s_threads > 2 && rng_next(&rng) % 4 == 0) {
            victim = 1 + (int)(rng_next(&rng) % (uint64_t)(s_threads - 1));
            if (victim == me)
                victim = 0;
        }
        t = lq_steal_into(&sq[victim], &sq[me], &n);
        if (t) {
            size_t top, prev;
            bool first = true;

            if (n < 1 || n > LQ_CAP / 2)
                harness_fail(__FILE__, __LINE__, "stole %u (cap %u)", n, LQ_CAP);
            top = s_take(t);
            steals++;
            cross += victim != 0;
            stolen_items++;
            prev = 0;
            /* the rest of the batch: older than t, in order (another
             * stealer may take some of them from us meanwhile) */
            for (;;) {
                size_t id;

                /* dawdle now and then, so the others get to steal from us */
                if (s_threads > 2 && rng_next(&rng) % 4 == 0) {
                    for (int k = 0; k < 256; k++)
                        (void)atomic_load_explicit(&s_producer_done, memory_order_relaxed);
                    if (rng_next(&rng) % 8 == 0)
                        sched_yield();
                }
                if ((t = lq_pop(&sq[me])) == NULL)
                    break;
                id = s_take(t);

                if (id >= top || (!first && id <= prev))
                    harness_fail(__FILE__, __LINE__, "stealer %d: %zu after %zu (top %zu)",
                                 me, id, prev, top);
                prev = id;
                first = false;
                pops++;
            }
            idle = 0;
            continue;
        }
        if (done && lq_len(&sq[0]) == 0)
            break;
        if (++idle % 16 == 0) {
            sched_yield();
            s_watchdog("stealer");
        }
    }
    atomic_fetch_add(&s_stolen, stolen_items);
    atomic_fetch_add(&s_stealer_pops, pops);
    atomic_fetch_add(&s_steals, steals);
    atomic_fetch_add(&s_cross_steals, cross);
    return NULL;
}

static void s_owner(unsigned pop_one_in)
{
    uint64_t rng = 0xabcdef12345ull * pop_one_in;
    size_t last = SIZE_MAX, pops = 0, overflowed = 0, retries = 0;
    struct weft__task *t;

#define OWNER_TOOK(id_)                                                       \
    do {                                                                      \
        size_t i_ = (id_);                                                    \
        if (last != SIZE_MAX && i_ <= last)                                   \
            harness_fail(__FILE__, __LINE__, "owner took %zu after %zu",      \
                         i_, last);                                           \
        last = i_;                                                            \
    } while (0)

    for (size_t i = 0; i < s_n; i++) {
        unsigned spins = 0;

        while (!lq_try_push(&sq[0], &s_items[i])) {
            struct weft__task *first, *lastt;
            uint32_t n = lq_claim_half(&sq[0], &first, &lastt);

            if (n == 0) {
                /* a stealer is at work: it will give the slots back */
                retries++;
                if (++spins % 16 == 0) {
                    sched_yield();
                    s_watchdog("owner");
                }
                continue;
            }
            if (n != LQ_CAP / 2)
                harness_fail(__FILE__, __LINE__, "claimed %u", n);
            t = first;
            for (uint32_t k = 0; k < n; k++) {
                if (t == NULL)
                    harness_fail(__FILE__, __LINE__, "chain of %u ends at %u", n, k);
                OWNER_TOOK(s_take(t));
                if (k == n - 1 && t != lastt)
                    harness_fail(__FILE__, __LINE__, "last is not the chain's end");
                t = t->next;
            }
            if (t != NULL)
                harness_fail(__FILE__, __LINE__, "chain longer than %u", n);
            overflowed += n;
        }
        /* pop about one push in `pop_one_in`: the queue fills up,
         * overflows, and stays long enough for the stealers */
        if (rng_next(&rng) % pop_one_in == 0 && (t = lq_pop(&sq[0])) != NULL) {
            OWNER_TOOK(s_take(t));
            pops++;
        }
    }
    atomic_store(&s_producer_done, 1);
    while ((t = lq_pop(&sq[0])) != NULL) {
        OWNER_TOOK(s_take(t));
        pops++;
    }
#undef OWNER_TOOK
    atomic_store(&s_owner_pops, pops);
    atomic_store(&s_overflowed, overflowed);
    atomic_store(&s_claim_retries, retries);
}

static void stress_round(int threads, unsigned pop_one_in)
{
    pthread_t th[MAX_THREADS];
    size_t total;

    for (int i = 0; i < MAX_THREADS; i++)
        lq_init(&sq[i]);
    memset((void *)s_seen, 0, s_n * sizeof(*s_seen));
    atomic_store(&s_producer_done, 0);
    atomic_store(&s_owner_pops, 0);
    atomic_store(&s_overflowed, 0);
    atomic_store(&s_stolen, 0);
    atomic_store(&s_stealer_pops, 0);
    atomic_store(&s_steals, 0);
    atomic_store(&s_cross_steals, 0);
    atomic_store(&s_claim_retries, 0);

    for (int i = 1; i < threads; i++)
        ASSERT_EQ(0, pthread_create(&th[i], NULL, s_stealer, (void *)(intptr_t)i));
    s_owner(pop_one_in);
    for (int i = 1; i < threads; i++)
        ASSERT_EQ(0, pthread_join(th[i], NULL));

    /* every item exactly once: none lost, none duplicated */
    for (size_t i = 0; i < s_n; i++)
        if (atomic_load(&s_seen[i]) != 1)
            harness_fail(__FILE__, __LINE__, "item %zu seen %u times", i,
                         (unsigned)atomic_load(&s_seen[i]));
    total = atomic_load(&s_owner_pops) + atomic_load(&s_overflowed) +
            atomic_load(&s_stolen) + atomic_load(&s_stealer_pops);
    ASSERT_EQ(s_n, total);
    for (int i = 0; i < threads; i++)
        ASSERT_EQ(0, lq_len(&sq[i]));
    printf("%d threads, %zu items, pop 1/%u: owner popped %zu, overflowed %zu (%zu claims "
           "refused), %zu steals (%zu from stealers) took %zu\n",
           threads, s_n, pop_one_in, atomic_load(&s_owner_pops), atomic_load(&s_overflowed),
           atomic_load(&s_claim_retries), atomic_load(&s_steals), atomic_load(&s_cross_steals),
           atomic_load(&s_stolen) + atomic_load(&s_stealer_pops));
}

static void stress(int threads)
{
    size_t rounds = 12;               /* the items shrink under sanitizers, not the rounds */
    uint64_t t0 = harness_now_ns();

    ASSERT(threads >= 2 && threads <= MAX_THREADS);
    s_threads = threads;
    s_n = harness_scale(400000);
    s_items = calloc(s_n, sizeof(*s_items));
    s_seen = calloc(s_n, sizeof(*s_seen));
    ASSERT(s_items != NULL && s_seen != NULL);
    s_deadline = harness_now_ns() + QWATCHDOG_NS;
    for (size_t r = 0; r < rounds; r++)
        stress_round(threads, 2 + (unsigned)(r % 4));
    printf("%zu rounds in %.0f ms\n", rounds, (double)(harness_now_ns() - t0) / 1e6);
    free(s_items);
    free((void *)s_seen);
}

TEST(stress_2_threads)
{
    stress(2);
}

TEST(stress_4_threads)
{
    stress(4);
}

TEST(stress_8_threads)
{
    stress(8);
}
