/* SPDX-License-Identifier: MIT */
/* Watch channel: changed/get/has_changed, skipping to the latest value,
 * close after the last value, dropping changed futures in every state,
 * every receiver seeing the final value under concurrent senders (values
 * from one sender only move forward), misuse, allocation faults. */
#include <string.h>

#include "sync_test.h"
#include "weft/chan.h"

#define CX(name, cw)                                                          \
    weft_waker name##_w = cw_waker(cw);                                       \
    weft_context name = weft_context_from_waker(&name##_w)

TEST(watch_changed_get_and_versions)
{
    weft_watch *w;
    weft_watch_rx *rx;
    weft_watch_changed ch;
    cwaker c = { 0 };
    CX(cx, &c);
    int v = 1, out = 0, res = -1;

    ASSERT_OK(weft_watch_new(&w, sizeof(int), &v));
    ASSERT_EQ(0, weft_watch_version(w));
    ASSERT_OK(weft_watch_rx_new(&rx, w));
    ASSERT_EQ(0, weft_watch_has_changed(rx));           /* subscribed: seen */
    ASSERT_OK(weft_watch_get(rx, &out));
    ASSERT_EQ(1, out);
    weft_watch_changed_init(&ch, rx, &out);
    ASSERT_EQ(WEFT_PENDING, weft_watch_changed_poll(&ch, &cx, &res));
    ASSERT_EQ(WEFT_PENDING, weft_watch_changed_poll(&ch, &cx, &res)); /* re-poll */
    v = 2;
    ASSERT_OK(weft_watch_send(w, &v));
    ASSERT_EQ(1, cw_wakes(&c));
    v = 3;
    ASSERT_OK(weft_watch_send(w, &v));                  /* skips 2 */
    ASSERT_EQ(1, cw_wakes(&c));
    ASSERT_EQ(2, weft_watch_version(w));
    ASSERT_EQ(1, weft_watch_has_changed(rx));
    ASSERT_EQ(WEFT_READY, weft_watch_changed_poll(&ch, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(3, out);
    ASSERT_EQ(WEFT_READY, weft_watch_changed_poll(&ch, &cx, &res)); /* again */
    ASSERT_OK(res);
    weft_watch_changed_drop(&ch);
    ASSERT_EQ(0, weft_watch_has_changed(rx));
    /* a send before the future's first poll is seen at once */
    v = 4;
    ASSERT_OK(weft_watch_send(w, &v));
    weft_watch_changed_init(&ch, rx, &out);
    ASSERT_EQ(WEFT_READY, weft_watch_changed_poll(&ch, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(4, out);
    weft_watch_changed_drop(&ch);
    weft_watch_rx_drop(rx);
    ASSERT_CW_BALANCED(&c);
    weft_watch_drop(w);
}

/* Close: a receiver that has not seen the last value gets it first; then
 * -EPIPE. Waiting futures are woken with -EPIPE; a receiver subscribed after
 * close gets -EPIPE but can still read the value; the object lives until
 * the last receiver is dropped (the sender went first here). */
TEST(watch_close_after_last_value)
{
    weft_watch *w;
    weft_watch_rx *seen, *behind, *late;
    weft_watch_changed c1, c2;
    cwaker c = { 0 };
    CX(cx, &c);
    int v = 10, out = 0, res;

    ASSERT_OK(weft_watch_new(&w, sizeof(int), &v));
    ASSERT_OK(weft_watch_rx_new(&seen, w));
    ASSERT_OK(weft_watch_rx_new(&behind, w));
    weft_watch_changed_init(&c1, seen, &out);
    ASSERT_EQ(WEFT_PENDING, weft_watch_changed_poll(&c1, &cx, &res));
    v = 11;
    ASSERT_OK(weft_watch_send(w, &v));
    ASSERT_EQ(WEFT_READY, weft_watch_changed_poll(&c1, &cx, &res));
    ASSERT_OK(res);
    weft_watch_changed_drop(&c1);
    weft_watch_changed_init(&c1, seen, &out);
    ASSERT_EQ(WEFT_PENDING, weft_watch_changed_poll(&c1, &cx, &res));
    weft_watch_close(w);
    weft_watch_close(w);                                /* idempotent */
    ASSERT_EQ(2, cw_wakes(&c));
    ASSERT_EQ(-EPIPE, weft_watch_send(w, &v));
    ASSERT_EQ(WEFT_READY, weft_watch_changed_poll(&c1, &cx, &res));
    ASSERT_EQ(-EPIPE, res);
    weft_watch_changed_drop(&c1);
    ASSERT_EQ(-EPIPE, weft_watch_has_changed(seen));
    ASSERT_EQ(1, weft_watch_has_changed(behind));       /* 11 not seen yet */
    out = 0;
    weft_watch_changed_init(&c2, behind, &out);
    ASSERT_EQ(WEFT_READY, weft_watch_changed_poll(&c2, &cx, &res));
    ASSERT_OK(res);
    ASSERT_EQ(11, out);
    weft_watch_changed_drop(&c2);
    weft_watch_changed_init(&c2, behind, &out);
    ASSERT_EQ(WEFT_READY, weft_watch_changed_poll(&c2, &cx, &res));
    ASSERT_EQ(-EPIPE, res);
    weft_watch_changed_drop(&c2);
    ASSERT_OK(weft_watch_rx_new(&late, w));
    ASSERT_EQ(-EPIPE, weft_watch_has_changed(late));
    out = 0;
    ASSERT_OK(weft_watch_get(late, &out));
    ASSERT_EQ(11, out);
    weft_watch_drop(w);                                 /* receivers keep it */
    ASSERT_OK(weft_watch_get(late, &out));
    weft_watch_rx_drop(seen);
    weft_watch_rx_drop(behind);
    weft_watch_rx_drop(late);
    ASSERT_CW_BALANCED(&c);
}

/* Dropped in every state: never polled, pending, woken but not polled; the
 * receiver's next changed still sees the change (nothing lost). More
 * waiters than one wake batch. */
TEST(watch_changed_dropped_in_every_state_loses_nothing)
{
    enum { N = 40 };
    weft_watch *w;
    weft_watch_rx *rx[N];
    weft_watch_changed ch[N];
    cwaker c = { 0 };
    CX(cx, &c);
    int v = 0, out[N], res;

    ASSERT_OK(weft_watch_new(&w, sizeof(int), &v));
    for (int i = 0; i < N; i++) {
        ASSERT_OK(weft_watch_rx_new(&rx[i], w));
        weft_watch_changed_init(&ch[i], rx[i], &out[i]);
        if (i % 3 != 0)
            ASSERT_EQ(WEFT_PENDING, weft_watch_changed_poll(&ch[i], &cx, &res));
    }
    for (int i = 0; i < N; i += 6)
        weft_watch_changed_drop(&ch[i]);                /* never polled */
    for (int i = 1; i < N; i += 6)
        weft_watch_changed_drop(&ch[i]);                /* pending */
    v = 7;
    ASSERT_OK(weft_watch_send(w, &v));
    ASSERT_EQ(N - (N + 2) / 3 - (N + 4) / 6, cw_wakes(&c)); /* every parked one left */
    for (int i = 2; i < N; i += 6)
        weft_watch_changed_drop(&ch[i]);                /* woken, not polled */
    for (int i = 0; i < N; i++) {
        weft_watch_changed_drop(&ch[i]);                /* idempotent */
        ASSERT_EQ(1, weft_watch_has_changed(rx[i]));
        out[i] = 0;
        weft_watch_changed_init(&ch[i], rx[i], &out[i]);
        ASSERT_EQ(WEFT_READY, weft_watch_changed_poll(&ch[i], &cx, &res));
        ASSERT_OK(res);
        ASSERT_EQ(7, out[i]);
        weft_watch_changed_drop(&ch[i]);
        weft_watch_rx_drop(rx[i]);
    }
    ASSERT_CW_BALANCED(&c);
    weft_watch_drop(w);
}

/* ---- Concurrent senders, receiver tasks ------------------------------------------ */
struct wval {
    uint32_t sender;               /* NSEND: the final value */
    uint32_t seq;
};

#define NSEND 2
#define NRECV 8

struct watch_shared {
    weft_watch *w;
    unsigned per_sender;
    atomic_int senders_left;
    atomic_int fail, finals;
    atomic_long changes;
};

static void *watch_sender(void *arg)
{
    struct watch_shared *sh = arg;
    static atomic_uint ids;
    uint32_t id = atomic_fetch_add(&ids, 1) % NSEND;

    for (uint32_t s = 1; s <= sh->per_sender; s++) {
        struct wval v = { id, s };

        if (weft_watch_send(sh->w, &v) != 0)
            atomic_fetch_add(&sh->fail, 1);
        if (s % 64 == 0)
            sched_yield();
    }
    if (atomic_fetch_sub(&sh->senders_left, 1) == 1) {  /* the last one */
        struct wval fin = { NSEND, 0 };

        if (weft_watch_send(sh->w, &fin) != 0)
            atomic_fetch_add(&sh->fail, 1);
        weft_watch_drop(sh->w);                         /* closes */
    }
    return NULL;
}

typedef struct watcher {
    weft_async co;
    struct watch_shared *sh;
    weft_watch_rx *rx;
    struct wval v;
    uint32_t last[NSEND + 1];
    long n;
    int res;
    weft_watch_changed ch;
} watcher;

static weft_poll watcher_poll(watcher *u, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&u->co);
    for (;;) {
        weft_watch_changed_init(&u->ch, u->rx, &u->v);
        WEFT_AWAIT(&u->co, weft_watch_changed_poll(&u->ch, cx, &u->res));
        weft_watch_changed_drop(&u->ch);
        if (u->res != 0)
            break;
        u->n++;
        if (u->v.sender > NSEND || (u->v.sender < NSEND && u->v.seq <= u->last[u->v.sender]) ||
            u->last[NSEND])                          /* went back, or after the final */
            atomic_fetch_add(&u->sh->fail, 1);
        u->last[u->v.sender] = u->v.seq ? u->v.seq : 1;
    }
    if (u->res != -EPIPE || !u->last[NSEND])
        atomic_fetch_add(&u->sh->fail, 1);           /* missed the final value */
    else
        atomic_fetch_add(&u->sh->finals, 1);
    atomic_fetch_add(&u->sh->changes, u->n);
    WEFT_END(&u->co);
}

static void watcher_drop(watcher *u)
{
    weft_watch_changed_drop(&u->ch);
    weft_watch_rx_drop(u->rx);
}

WEFT_DEFINE_FUTURE_VOID(watcher, watcher_poll, watcher_drop);

TEST(watch_every_receiver_sees_final_value_under_concurrent_sends)
{
    weft_runtime *rt = st_runtime(2);
    struct watch_shared sh;
    struct wval v0 = { NSEND + 1, 0 };
    pthread_t th[NSEND];

    memset(&sh, 0, sizeof(sh));
    sh.per_sender = (unsigned)harness_scale(100000);
    atomic_store(&sh.senders_left, NSEND);
    ASSERT_OK(weft_watch_new(&sh.w, sizeof(struct wval), &v0));
    for (int r = 0; r < NRECV; r++) {
        watcher init = { .sh = &sh };

        ASSERT_OK(weft_watch_rx_new(&init.rx, sh.w));
        ASSERT_OK(weft_spawn_detached(rt, &watcher_future, &init));
    }
    for (int i = 0; i < NSEND; i++)
        ASSERT_EQ(0, pthread_create(&th[i], NULL, watch_sender, &sh));
    ASSERT_OK(weft_runtime_run(rt));
    for (int i = 0; i < NSEND; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ(0, atomic_load(&sh.fail));
    ASSERT_EQ(NRECV, atomic_load(&sh.finals));
    printf("%ld changes seen by %d receivers of %u sends\n", atomic_load(&sh.changes),
           NRECV, NSEND * sh.per_sender + 1);
    weft_runtime_free(rt);
}

TEST(watch_misuse_and_alloc_fault)
{
    weft_watch *w = NULL;
    weft_watch_rx *rx = NULL;
    weft_watch_changed ch;
    weft_waker nw = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&nw);
    int v = 0, res = 0;

    ASSERT_EQ(-EINVAL, weft_watch_new(NULL, sizeof(int), &v));
    ASSERT_EQ(-EINVAL, weft_watch_new(&w, 0, &v));
    ASSERT_EQ(-EINVAL, weft_watch_new(&w, sizeof(int), NULL));
    ASSERT_EQ(-EINVAL, weft_watch_new(&w, WEFT_FUTURE_MAX_SIZE + 1, &v));
    ASSERT(w == NULL);
    ASSERT_EQ(-EINVAL, weft_watch_send(NULL, &v));
    ASSERT_EQ(-EINVAL, weft_watch_rx_new(NULL, NULL));
    ASSERT_EQ(-EINVAL, weft_watch_rx_new(&rx, NULL));
    ASSERT_EQ(-EINVAL, weft_watch_get(NULL, &v));
    ASSERT_EQ(-EINVAL, weft_watch_has_changed(NULL));
    ASSERT_EQ(0, weft_watch_version(NULL));
    weft_watch_close(NULL);
    weft_watch_drop(NULL);
    weft_watch_rx_drop(NULL);
    weft_watch_changed_init(&ch, NULL, &v);
    ASSERT_EQ(WEFT_READY, weft_watch_changed_poll(&ch, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_watch_changed_drop(&ch);
    ASSERT_OK(weft_watch_new(&w, sizeof(int), &v));
    ASSERT_EQ(-EINVAL, weft_watch_send(w, NULL));
    ASSERT_OK(weft_watch_rx_new(&rx, w));
    ASSERT_EQ(-EINVAL, weft_watch_get(rx, NULL));
    res = 0;
    weft_watch_changed_init(&ch, rx, NULL);
    ASSERT_EQ(WEFT_READY, weft_watch_changed_poll(&ch, &cx, &res));
    ASSERT_EQ(-EINVAL, res);
    weft_watch_changed_drop(&ch);
    weft_watch_rx_drop(rx);
    rx = NULL;
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_watch_rx_new(&rx, w));
    ASSERT(rx == NULL);
    harness_fail_alloc_at(0);
    weft_watch_drop(w);
    w = NULL;
    ASSERT_EQ(0, harness_live());
    harness_fail_alloc_at(1);
    ASSERT_EQ(-ENOMEM, weft_watch_new(&w, sizeof(int), &v));
    ASSERT(w == NULL);
    ASSERT_EQ(0, harness_live());
    harness_fail_alloc_at(0);
}
