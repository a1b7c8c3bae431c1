/* SPDX-License-Identifier: MIT */
/* weft/group.h - structured concurrency and composition: cancellation
 * tokens, task groups, and the join_all / select / race combinators.
 *
 * weft.h includes it; it may also be included on its own as <weft/group.h>.
 *
 * The futures below follow the common rules of weft/lock.h: *_drop is
 * valid in every state and idempotent; polling after READY returns READY
 * again with the same result; a future is polled by one thread at a time;
 * a future borrows the object it was initialised with (keep the object
 * alive until the future has been dropped); awaiting never allocates; a
 * poll without a waker answers -EINVAL and changes nothing (weft/core.h,
 * "Context"). A cancel wait on a cancelled token, a group wait on a group
 * with no live child and a drain of such a group are ready at once, fresh
 * after fresh: each spends a unit of the task's cooperative budget first
 * (weft/core.h), so that a task awaiting them in a loop lets others run. */
#ifndef WEFT_GROUP_H
#define WEFT_GROUP_H

#include "core.h"
#include "sched.h"
#include "chan.h"
#include "timer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Cancellation tokens --------------------------------------------------
 * A token is a one-way flag: not cancelled, then cancelled forever. Tokens
 * form trees: cancelling a token cancels every descendant (children made
 * with weft_cancel_child(), their children, ...); cancelling a child affects
 * neither its parent nor its siblings. Tokens are reference-counted: every
 * holder (a task, a thread) keeps its own reference. A child holds a
 * reference to its parent, so a parent lives while it has children; a child
 * is unlinked from its parent when its last reference is dropped.
 * Every call below may be made from any thread. */
typedef struct weft_cancel weft_cancel;      /* opaque, reference-counted */

/* Make a root token, not cancelled. Returns 0 and a new reference in *out
 * (drop it with weft_cancel_drop()); -EINVAL (NULL out), -ENOMEM. One
 * allocation; on failure *out is untouched. Thread: any. */
WEFT_API int weft_cancel_new(weft_cancel **out);

/* Make a child of `parent`: cancelled when `parent` (or any ancestor) is
 * cancelled, already cancelled if `parent` is. Returns 0 and a new reference
 * in *out; -EINVAL (NULL argument), -ENOMEM. Thread: any. */
WEFT_API int weft_cancel_child(weft_cancel *parent, weft_cancel **out);

/* One more reference to `t` (returned; NULL for NULL). Thread: any. */
WEFT_API weft_cancel *weft_cancel_clone(weft_cancel *t);

/* Release one reference; the last one unlinks the token from its parent and
 * frees it (which may release the parent in turn). No wait future may still
 * use this reference. NULL is ignored. Thread: any. */
WEFT_API void weft_cancel_drop(weft_cancel *t);

/* Cancel `t` and every descendant, and wake every wait future on them.
 * Idempotent. When it returns, weft_cancel_is_cancelled() is true for `t`
 * and every descendant. NULL is ignored. Thread: any (wakers are never run
 * under a weft lock). */
WEFT_API void weft_cancel_cancel(weft_cancel *t);

/* True once `t` or an ancestor of it was cancelled (false for NULL).
 * Lock-free: O(depth of the tree). Thread: any. */
WEFT_API bool weft_cancel_is_cancelled(const weft_cancel *t);

/* Wait future: READY once the token is cancelled, with *result = 0 (or
 * -EINVAL for a NULL token). A cancel that happened before init or before
 * the first poll is not lost. Cancel safety: dropping it at any point loses
 * nothing (the token's state is a level, not an event). */
typedef struct weft_cancel_wait {
    /* private: may change in any release */
    weft_cancel *tok;
    int result;
    weft_sync_waiter w;          /* on tok's wait list while pending */
} weft_cancel_wait;

/* init: wait on `t` (borrowed). Thread: the future's owner. */
WEFT_API void weft_cancel_wait_init(weft_cancel_wait *w, weft_cancel *t);
WEFT_API weft_poll weft_cancel_wait_poll(weft_cancel_wait *w, weft_context *cx, int *result);
WEFT_API void weft_cancel_wait_drop(weft_cancel_wait *w);

/* ---- Task groups -----------------------------------------------------------
 * A group owns the tasks spawned into it (its children): it can wait for all
 * of them, cancel all of them, and never lets one outlive it
 * (weft_group_free() returns only after every child's future was dropped).
 * Children run on any worker of the group's runtime, in parallel.
 *
 * Failure convention: a child FAILS when its future completes (poll returns
 * READY) with an output whose first sizeof(int) bytes, read as an `int`
 * (memcpy, so any output alignment works), are negative; that int is the
 * child's code. A future type whose output_size is below sizeof(int) (void
 * output included) never fails. A child that is cancelled (aborted by the
 * group, or by runtime shutdown) does not fail; its output is never read.
 * Children's outputs are otherwise discarded.
 *
 * Policies:
 *   WEFT_GROUP_WAIT_ALL            a failure is recorded; siblings run on.
 *   WEFT_GROUP_CANCEL_ON_FAILURE   the first failure cancels the group: every
 *                                  other child is aborted and later spawns
 *                                  return -ECANCELED.
 *
 * Cost: spawn is one weft_spawn() (one allocation) plus, while the group's
 * slot table grows, an amortised O(1) table resize; a child's completion is
 * O(1) (it decrements the group's live count and wakes the waiters when the
 * count reaches 0). weft_group_cancel() is O(live children), once. Spawns
 * and completions take the group's one mutex (about 100 ns per child over a
 * detached weft_spawn() on the 2-core development machine). */
typedef struct weft_group weft_group;        /* opaque, one owner */

typedef enum weft_group_policy {
    WEFT_GROUP_WAIT_ALL = 0,
    WEFT_GROUP_CANCEL_ON_FAILURE = 1
} weft_group_policy;

/* Make an empty group spawning into `rt` (borrowed: keep the runtime alive
 * until the group is freed). Returns 0 and the group in *out (free it with
 * weft_group_free()); -EINVAL (NULL argument, unknown policy), -ENOMEM.
 * On failure nothing is allocated and *out is untouched. Thread: any. */
WEFT_API int weft_group_new(weft_group **out, weft_runtime *rt, weft_group_policy policy);

/* Spawn a child running the future of type `type` whose initial value
 * (type->size bytes at `init`) is copied, as by weft_spawn(): the group owns
 * the task and its join handle. Returns 0; -EINVAL (NULL argument, invalid
 * type); -ECANCELED when the group was cancelled (weft_group_cancel(), a
 * failure under CANCEL_ON_FAILURE, or weft_group_free() in progress);
 * -ENOMEM; -ESHUTDOWN (runtime shut down). On failure the future was not
 * moved into weft (the caller still owns `init`'s resources). A future type
 * is wrapped: the task's future is a small header plus the child's future
 * and its output, rounded up to a size class (64-byte steps to 512 bytes,
 * then powers of two), and the initial value is copied through a buffer of
 * that size (on the stack up to 1 KiB, else allocated). Every type that
 * weft_spawn() takes is taken here too (future and output up to
 * WEFT_FUTURE_MAX_SIZE each: a wrapper of up to 4 GiB); a type too large
 * for memory fails with -ENOMEM, as from weft_spawn(). Thread: any,
 * workers and the group's own children included. */
WEFT_API int weft_group_spawn(weft_group *g, const weft_future_type *type, const void *init);

/* Cancel the group: abort every live child (weft_join_abort(): each
 * child's drop runs exactly once, on a worker) and refuse later spawns with
 * -ECANCELED. Idempotent; NULL is ignored. Does not wait. Thread: any. */
WEFT_API void weft_group_cancel(weft_group *g);

/* The group's cancellation token, borrowed (valid until weft_group_free();
 * weft_cancel_clone() it to keep it longer): cancelled when the group is
 * (weft_group_cancel(), a failure under CANCEL_ON_FAILURE, weft_group_free()),
 * just after the children were aborted. Children may await it, check it, or
 * make child tokens of it for work outside the group. NULL for NULL.
 * Thread: any. */
WEFT_API weft_cancel *weft_group_token(weft_group *g);

/* True once the group was cancelled (false for NULL). Thread: any. */
WEFT_API bool weft_group_is_cancelled(const weft_group *g);

/* Children spawned and whose future has not been dropped yet (a snapshot;
 * 0 for NULL). Thread: any. */
WEFT_API size_t weft_group_live(const weft_group *g);

/* Cancel the remaining children, wait until every child's future has been
 * dropped, and free the group. Returns 0; -EINVAL for NULL, or when called
 * on a worker thread (of any weft runtime) while children are still live:
 * it would block the worker that may have to drop them. The group is then
 * cancelled but NOT freed; from a task, await weft_group_wait (which
 * completes once no child is live) and call weft_group_free() again, which
 * then returns at once. No wait future may still exist. On a
 * WEFT_CURRENT_THREAD runtime the children's drops need a thread driving
 * the runtime (or its shutdown): from a plain thread, call it only then.
 * In a future's drop run by the runtime's shutdown (a supervisor task that
 * owns the group; see weft_runtime_shutdown()) it completes: children not
 * cancelled yet are cancelled there and then, on the same thread, whatever
 * the order the tasks were spawned in (also when that thread is a worker
 * of another runtime whose task shut this one down: no -EINVAL there; and
 * in a drop of another runtime whose shutdown runs inside a drop of this
 * group's runtime's shutdown, further up the same thread). -EDEADLK (group cancelled, NOT
 * freed) only when a child's own drop is what is waiting, further up the
 * same thread (a child freeing its own group).
 * Thread: any (see above). */
WEFT_API int weft_group_free(weft_group *g);

/* Block the calling thread until no child is live, then return what
 * weft_group_wait would (0, the first failure's code, or -ECANCELED; see
 * below). Does not cancel anything; the group stays usable. Returns -EINVAL
 * for NULL or when called on a worker thread of any weft runtime (await
 * weft_group_wait there). On a WEFT_CURRENT_THREAD runtime another thread
 * must be driving the runtime. In a drop run by the runtime's shutdown it
 * behaves as weft_group_free() does there (children cancelled first on the
 * same thread; -EDEADLK in the same case). Another thread may free the
 * group meanwhile (weft_group_free()): the join then returns what a wait
 * would (the cancellation, or a failure) once the children are dropped,
 * and the group's memory is released after it returns. Thread: any but a
 * worker. */
WEFT_API int weft_group_join(weft_group *g);

/* Wait future: READY once no child is live (at once for an empty group).
 * Output (*result): 0 when every child completed without failing; else the
 * code of the first child that failed (negative); else -ECANCELED when a
 * child was cancelled before completing (weft_group_cancel(), runtime
 * shutdown); -EINVAL for a NULL group. The failure and cancellation seen
 * are remembered for the group's life. Children spawned later make the
 * group live again for later waits. Any number of wait futures may wait on
 * one group. Cancel safety: dropping it at any point loses nothing. */
typedef struct weft_group_wait {
    /* private: may change in any release */
    weft_group *g;
    int result;
    weft_sync_waiter w;          /* on g's wait list while pending */
} weft_group_wait;

/* init: wait on `g` (borrowed). Thread: the future's owner. */
WEFT_API void weft_group_wait_init(weft_group_wait *w, weft_group *g);
WEFT_API weft_poll weft_group_wait_poll(weft_group_wait *w, weft_context *cx, int *result);
WEFT_API void weft_group_wait_drop(weft_group_wait *w);

/* ---- Graceful drain ---------------------------------------------------------
 * Shut a server down gracefully: stop making new children (close the
 * listener, stop the acceptor), then await a drain of the group: it waits up
 * to `ms` for every child to complete on its own, and then cancels the rest
 * (weft_group_cancel(): each remaining child is aborted, its drop runs once;
 * later spawns get -ECANCELED) and waits until their drops have run. So the
 * runtime can be freed right after, with nothing of the group's left.
 *
 *     stop accepting  ->  drain(g, 5000)  ->  weft_group_free(g) ...
 *
 * Children that should end early at shutdown (an idle keep-alive
 * connection, a client that only waits for input) can watch a token of
 * their own and return; what still runs at the deadline is cancelled.
 * examples/serve.h shows the whole pattern with SIGINT and SIGTERM
 * (weft/signal.h). This needs no scheduler support: weft_runtime_shutdown()
 * is the abrupt form (every task of the runtime cancelled at once).
 *
 * Output (*result): 0 when no child was left by the deadline (the drain
 * cancelled nothing; the group stays usable unless its own policy or an
 * earlier weft_group_cancel() cancelled it: 0 says nothing of how the
 * children ended, a weft_group_wait tells that, failures included);
 * -ETIMEDOUT when the deadline passed and the
 * children left were cancelled (all dropped by the time it is READY);
 * -EINVAL for a NULL group. A child spawned during the drain is waited for
 * too. Cancel safety: dropping it cancels nothing (a drop before the
 * deadline leaves the children running). */
typedef struct weft_group_drain {
    /* private: may change in any release */
    weft_group *g;
    uint64_t ms;
    int result;
    unsigned char state;
    weft_group_wait w;
    weft_sleep deadline;
} weft_group_drain;

/* init: drain `g` (borrowed) within `ms` milliseconds from the first poll.
 * Thread: the future's owner. */
WEFT_API void weft_group_drain_init(weft_group_drain *d, weft_group *g, uint64_t ms);
WEFT_API weft_poll weft_group_drain_poll(weft_group_drain *d, weft_context *cx, int *result);
WEFT_API void weft_group_drain_drop(weft_group_drain *d);

/* ---- Combinators -------------------------------------------------------------
 * join_all, select and race drive futures the caller has initialised in its
 * own storage, described by type (weft_future_type) and address. From the
 * combinator's init on, the combinator OWNS those futures: it polls them and
 * drops each exactly once (as soon as its result is known, or in the
 * combinator's drop); the caller must neither poll nor drop them itself, and
 * must keep their storage (and the output buffers) alive and in place until
 * the combinator has been dropped. The combinators allocate nothing; a poll
 * costs O(n): every future not finished yet is polled once, in index order.
 *
 * Fairness rule (the cooperative budget of weft/core.h): a combinator's poll
 * spends one unit of its task's budget itself; when the budget is spent it
 * polls nothing and returns PENDING (the task goes to the back of the run
 * queue, as for any leaf refused by the budget). Otherwise it polls every
 * child, each on a budget of its own (128 operations), and charges what each
 * child spent to the task afterwards. So:
 *   - every child is looked at on every poll: however many children there
 *     are and wherever the ready one is, it is seen (a leaf spends a unit to
 *     look even when it is not ready; on the task's one budget, children past
 *     the 128th would be refused unseen on every poll, for ever);
 *   - one poll does at most n child polls, each bounded by the budget;
 *   - a task that completes combinators (or anything) in a loop still goes
 *     to the back of the queue once its budget is spent.
 * Polled by hand (not by a weft worker) there is no budget at all.
 *
 * A slot of join_all and select: */
typedef struct weft_future_ref {
    const weft_future_type *type;
    void *future;                /* type->size bytes, initialised */
    void *out;                   /* type->output_size bytes (NULL if 0) */
    /* private: may change in any release */
    unsigned char state;
} weft_future_ref;

/* join_all: poll every future until all are READY, each writing its output
 * to its slot's `out`. Output (*result): 0; -EINVAL for a NULL array (even
 * with n == 0) or a slot with a NULL type, poll, future, or a NULL out with
 * output_size > 0 (checked at init: such a join_all owns nothing and
 * completes at once). Each future is dropped as soon as it is READY. Cancel safety: dropping a pending join_all drops the
 * futures not finished yet; outputs already written stay in their buffers
 * (the slot's READY state is not reported back: use your own flags if you
 * need to know which finished). */
typedef struct weft_join_all {
    /* private: may change in any release */
    weft_future_ref *refs;
    size_t n, left;
    int result;
    bool done;
} weft_join_all;

WEFT_API void weft_join_all_init(weft_join_all *ja, weft_future_ref *refs, size_t n);
WEFT_API weft_poll weft_join_all_poll(weft_join_all *ja, weft_context *cx, int *result);
WEFT_API void weft_join_all_drop(weft_join_all *ja);

/* select: poll the futures in index order (biased: when several are ready
 * in one poll, the lowest index wins); the first READY wins: its output is
 * in its slot's `out`, every other future is dropped at once (the losers'
 * outputs are never written). Output (*result): the winner's index;
 * -EINVAL for n == 0, n above INT_MAX (an index must fit the int result),
 * a NULL array, or a bad slot (checked at init, as
 * for join_all: such a select owns nothing and drops no future, not even
 * the good slots'; they stay the caller's).
 * Cancel safety: dropping a pending select drops every future; whether a
 * loser loses anything by being dropped is that future's own cancel safety
 * (a channel receive loses no message, for one). */
typedef struct weft_select {
    /* private: may change in any release */
    weft_future_ref *refs;
    size_t n;
    int result;
    bool done;
} weft_select;

WEFT_API void weft_select_init(weft_select *s, weft_future_ref *refs, size_t n);
WEFT_API weft_poll weft_select_poll(weft_select *s, weft_context *cx, int *result);
WEFT_API void weft_select_drop(weft_select *s);

/* race: select over `n` futures of one type, stored contiguously from
 * `futures` (an array: element i at futures + i * type->size). The winner's
 * output goes to `out` (type->output_size bytes; NULL if 0). Output
 * (*result): the winner's index, or -EINVAL (NULL type/poll/array, n == 0,
 * n above INT_MAX, a type of size 0, an array larger than memory (n *
 * type->size overflows), NULL out with output_size > 0; checked at init:
 * such a race owns nothing). Same ownership and cancel safety as select. */
typedef struct weft_race {
    /* private: may change in any release */
    const weft_future_type *type;
    void *futures;
    void *out;
    size_t n;
    int result;
    bool done;
} weft_race;

WEFT_API void weft_race_init(weft_race *r, const weft_future_type *type, void *futures,
                             size_t n, void *out);
WEFT_API weft_poll weft_race_poll(weft_race *r, weft_context *cx, int *result);
WEFT_API void weft_race_drop(weft_race *r);

/* ---- Ready-made descriptors -------------------------------------------------
 * The futures above as weft_future_type (output: the poll's int result),
 * named as net.h names its own; a combinator's descriptor lets combinators
 * nest (a select of a join_all and a timeout, ...). */
WEFT_API extern const weft_future_type weft_cancel_wait_future;
WEFT_API extern const weft_future_type weft_group_wait_future;
WEFT_API extern const weft_future_type weft_group_drain_future;
WEFT_API extern const weft_future_type weft_join_all_future;
WEFT_API extern const weft_future_type weft_select_future;
WEFT_API extern const weft_future_type weft_race_future;

#ifdef __cplusplus
}
#endif
#endif /* WEFT_GROUP_H */
