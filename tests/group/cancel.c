/* SPDX-License-Identifier: MIT */
/* Cancellation tokens: a cancel before the wait is not lost; a parent
 * cancels its whole subtree, a child cancelled alone touches nothing above
 * it; dropping a child unlinks it; deep chains; trees cancelled from another
 * thread while tasks wait on their leaves; misuse; allocation faults. */
#include "../sync/sync_test.h"
#include "weft/group.h"

#define CX(name, cw)                                                          \
    weft_waker name##_w = cw_waker(cw);                                       \
    weft_context name = weft_context_from_waker(&name##_w)

TEST(cancel_before_wait_is_not_lost)
{
    weft_cancel *t;
    weft_cancel_wait w;
    cwaker c = { 0 };
    CX(cx, &c);
    int res = 1;

    ASSERT_OK(weft_cancel_new(&t));
    ASSERT(!weft_cancel_is_cancelled(t));
    weft_cancel_cancel(t);
    weft_cancel_cancel(t);                           /* idempotent */
    ASSERT(weft_cancel_is_cancelled(t));
    weft_cancel_wait_init(&w, t);
    ASSERT_EQ(WEFT_READY, weft_cancel_wait_poll(&w, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(WEFT_READY, weft_cancel_wait_poll(&w, &cx, &res)); /* same answer */
    weft_cancel_wait_drop(&w);
    weft_cancel_wait_drop(&w);
    ASSERT_EQ(0, cw_wakes(&c));
    ASSERT_CW_BALANCED(&c);
    weft_cancel_drop(t);
}

TEST(cancel_wakes_pending_waiters)
{
    weft_cancel *t;
    weft_cancel_wait w[40];                          /* more than one wake batch */
    cwaker c = { 0 };
    CX(cx, &c);
    int res;

    ASSERT_OK(weft_cancel_new(&t));
    for (int i = 0; i < 40; i++) {
        weft_cancel_wait_init(&w[i], t);
        ASSERT_EQ(WEFT_PENDING, weft_cancel_wait_poll(&w[i], &cx, &res));
        ASSERT_EQ(WEFT_PENDING, weft_cancel_wait_poll(&w[i], &cx, &res)); /* re-park */
    }
    weft_cancel_wait_drop(&w[39]);                   /* pending: leaves the list */
    weft_cancel_cancel(t);
    ASSERT_EQ(39, cw_wakes(&c));
    for (int i = 0; i < 39; i++) {
        ASSERT_EQ(WEFT_READY, weft_cancel_wait_poll(&w[i], &cx, &res));
        ASSERT_OK(res);
        weft_cancel_wait_drop(&w[i]);
    }
    ASSERT_CW_BALANCED(&c);
    weft_cancel_drop(t);
}

TEST(cancel_tree_semantics)
{
    weft_cancel *root, *a, *b, *a1, *a2, *late;
    weft_cancel_wait wa2, wb;
    cwaker c = { 0 };
    CX(cx, &c);
    int res;

    ASSERT_OK(weft_cancel_new(&root));
    ASSERT_OK(weft_cancel_child(root, &a));
    ASSERT_OK(weft_cancel_child(root, &b));
    ASSERT_OK(weft_cancel_child(a, &a1));
    ASSERT_OK(weft_cancel_child(a, &a2));
    /* a child cancelled alone: its subtree only */
    weft_cancel_cancel(a1);
    ASSERT(weft_cancel_is_cancelled(a1));
    ASSERT(!weft_cancel_is_cancelled(a));
    ASSERT(!weft_cancel_is_cancelled(a2));
    ASSERT(!weft_cancel_is_cancelled(root));
    /* dropping a child unlinks it; the parent lives on */
    weft_cancel_drop(a1);
    weft_cancel_wait_init(&wa2, a2);
    weft_cancel_wait_init(&wb, b);
    ASSERT_EQ(WEFT_PENDING, weft_cancel_wait_poll(&wa2, &cx, &res));
    ASSERT_EQ(WEFT_PENDING, weft_cancel_wait_poll(&wb, &cx, &res));
    /* the parent cancels every descendant and wakes their waiters */
    weft_cancel_cancel(root);
    ASSERT(weft_cancel_is_cancelled(a));
    ASSERT(weft_cancel_is_cancelled(a2));
    ASSERT(weft_cancel_is_cancelled(b));
    ASSERT_EQ(2, cw_wakes(&c));
    ASSERT_EQ(WEFT_READY, weft_cancel_wait_poll(&wa2, &cx, &res));
    ASSERT_EQ(WEFT_READY, weft_cancel_wait_poll(&wb, &cx, &res));
    weft_cancel_wait_drop(&wa2);
    weft_cancel_wait_drop(&wb);
    /* a child of a cancelled token is born cancelled */
    ASSERT_OK(weft_cancel_child(a2, &late));
    ASSERT(weft_cancel_is_cancelled(late));
    /* the parent dropped first: children keep it alive */
    weft_cancel_drop(root);
    weft_cancel_drop(a);
    weft_cancel_drop(b);
    weft_cancel_drop(a2);
    ASSERT(harness_live() > 0);                       /* late holds the chain */
    weft_cancel_drop(late);
    ASSERT_CW_BALANCED(&c);
}

TEST(cancel_clone_counts_references)
{
    weft_cancel *t, *c;

    ASSERT_OK(weft_cancel_new(&t));
    ASSERT(weft_cancel_clone(t) == t);
    ASSERT_OK(weft_cancel_child(t, &c));
    ASSERT(weft_cancel_clone(c) == c);
    weft_cancel_drop(t);
    weft_cancel_drop(c);
    weft_cancel_cancel(t);                            /* still alive: refs left */
    ASSERT(weft_cancel_is_cancelled(c));
    weft_cancel_drop(c);
    weft_cancel_drop(t);
    ASSERT(weft_cancel_clone(NULL) == NULL);
}

/* A chain deeper than any stack would allow recursion for. */
TEST(cancel_deep_chain)
{
    size_t depth = harness_scale(100000);
    weft_cancel *root, *cur;

    ASSERT_OK(weft_cancel_new(&root));
    cur = weft_cancel_clone(root);
    for (size_t i = 0; i < depth; i++) {
        weft_cancel *next;

        ASSERT_OK(weft_cancel_child(cur, &next));
        weft_cancel_drop(cur);                        /* next holds cur */
        cur = next;
    }
    ASSERT(!weft_cancel_is_cancelled(cur));
    weft_cancel_cancel(root);
    ASSERT(weft_cancel_is_cancelled(cur));
    weft_cancel_drop(root);
    weft_cancel_drop(cur);                            /* frees the whole chain */
}

/* Tasks wait on the leaves of a tree; another thread cancels a middle
 * token, then the root, while a third thread keeps making and dropping
 * children under the root. Every waiter on a cancelled subtree wakes. */
static atomic_int ct_parked;

typedef struct ctwaiter {
    weft_async co;
    weft_cancel *t;
    int res;
    bool counted;
    weft_cancel_wait w;
} ctwaiter;

static weft_poll ctwaiter_wait(ctwaiter *f, weft_context *cx)
{
    weft_poll p = weft_cancel_wait_poll(&f->w, cx, &f->res);

    if (!f->counted) {
        f->counted = true;
        atomic_fetch_add(&ct_parked, 1);
    }
    return p;
}

static weft_poll ctwaiter_poll(ctwaiter *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    weft_cancel_wait_init(&f->w, f->t);
    WEFT_AWAIT(&f->co, ctwaiter_wait(f, cx));
    weft_cancel_wait_drop(&f->w);
    *(int *)out = f->res;
    WEFT_END(&f->co);
}

static void ctwaiter_drop(ctwaiter *f)
{
    weft_cancel_wait_drop(&f->w);
}

WEFT_DEFINE_FUTURE(ctwaiter, ctwaiter_poll, ctwaiter_drop, int);

struct churn {
    weft_cancel *root;
    atomic_int stop;
    int made;
};

static void *churn_main(void *arg)
{
    struct churn *ch = arg;

    while (!atomic_load(&ch->stop)) {
        weft_cancel *c, *gc;

        if (weft_cancel_child(ch->root, &c) != 0)
            continue;
        if (weft_cancel_child(c, &gc) == 0)
            weft_cancel_drop(gc);
        weft_cancel_drop(c);
        ch->made++;
    }
    return NULL;
}

struct canceller {
    weft_cancel *mid, *root;
};

static void *canceller_main(void *arg)
{
    struct canceller *cn = arg;

    weft_cancel_cancel(cn->mid);
    weft_cancel_cancel(cn->root);
    return NULL;
}

TEST(cancel_tree_from_other_threads_while_tasks_wait)
{
    weft_runtime *rt = st_runtime(2);
    unsigned rounds = (unsigned)harness_scale(100);
    enum { MID = 3, LEAF = 4, T = MID * LEAF };

    for (unsigned round = 0; round < rounds; round++) {
        weft_cancel *root, *mid[MID], *leaf[T];
        weft_join *j[T];
        struct churn ch = { 0 };
        struct canceller cn;
        pthread_t th_churn, th_cancel;

        ASSERT_OK(weft_cancel_new(&root));
        for (int m = 0; m < MID; m++) {
            ASSERT_OK(weft_cancel_child(root, &mid[m]));
            for (int l = 0; l < LEAF; l++)
                ASSERT_OK(weft_cancel_child(mid[m], &leaf[m * LEAF + l]));
        }
        atomic_store(&ct_parked, 0);
        for (int t = 0; t < T; t++)
            ASSERT_OK(weft_spawn(rt, &ctwaiter_future, &(ctwaiter){ .t = leaf[t] }, &j[t]));
        if (round % 2)                               /* half the rounds: all parked */
            ST_WAIT_UNTIL(atomic_load(&ct_parked) == T);
        ch.root = root;
        atomic_init(&ch.stop, 0);
        cn.mid = mid[round % MID];
        cn.root = root;
        ASSERT_EQ(0, pthread_create(&th_churn, NULL, churn_main, &ch));
        ASSERT_EQ(0, pthread_create(&th_cancel, NULL, canceller_main, &cn));
        for (int t = 0; t < T; t++) {
            int out = 1;

            ASSERT_OK(weft_join_wait(j[t], &out));
            ASSERT_OK(out);
            ASSERT(weft_cancel_is_cancelled(leaf[t]));
            weft_join_drop(j[t]);
        }
        pthread_join(th_cancel, NULL);
        atomic_store(&ch.stop, 1);
        pthread_join(th_churn, NULL);
        for (int t = 0; t < T; t++)
            weft_cancel_drop(leaf[t]);
        for (int m = 0; m < MID; m++)
            weft_cancel_drop(mid[m]);
        weft_cancel_drop(root);
    }
    weft_runtime_free(rt);
}

TEST(cancel_misuse_and_alloc_fault)
{
    weft_cancel *t = NULL, *c = NULL;
    weft_cancel_wait w;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int res = 0;

    ASSERT_EQ(-EINVAL, weft_cancel_new(NULL));
    ASSERT_EQ(-EINVAL, weft_cancel_child(NULL, &c));
    ASSERT(c == NULL);
    weft_cancel_cancel(NULL);
    weft_cancel_drop(NULL);
    ASSERT(!weft_cancel_is_cancelled(NULL));
    weft_cancel_wait_init(&w, NULL);
    ASSERT_EQ(WEFT_READY, weft_cancel_wait_poll(&w, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_cancel_wait_drop(&w);
    weft_cancel_wait_init(NULL, NULL);
    weft_cancel_wait_drop(NULL);
    ASSERT_EQ(WEFT_READY, weft_cancel_wait_poll(NULL, &cx, &res));

    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_cancel_new(&t));
    ASSERT(t == NULL);
    ASSERT_EQ(0, harness_live());
    harness_fail_alloc_at(0);
    ASSERT_OK(weft_cancel_new(&t));
    ASSERT_EQ(-EINVAL, weft_cancel_child(t, NULL));
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_cancel_child(t, &c));
    ASSERT(c == NULL);
    harness_fail_alloc_at(0);
    weft_cancel_drop(t);                             /* the failed child took no ref */
    ASSERT_EQ(0, harness_live());
}
