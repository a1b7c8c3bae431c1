// SPDX-License-Identifier: MIT
/* Adversarial checks of weft/coro.h's promises that the other coroutine
 * suites leave out (public API only, apart from coro_test.h's helpers). */
#include "coro_test.h"

#include <fcntl.h>
#include <unistd.h>

/* A future that is never ready and counts its drops. */
typedef struct never { int pad; } never;
static atomic_int never_drops;
static weft_poll never_poll(never *n, weft_context *cx, int *out)
{
    (void)n; (void)cx; (void)out;
    return WEFT_PENDING;
}
static void never_drop(never *n)
{
    (void)n;
    atomic_fetch_add(&never_drops, 1);
}
WEFT_DEFINE_FUTURE(never, never_poll, never_drop, int);

/* Outside a coroutine every await-like call drops what it was given. */
TEST(outside_a_coroutine_everything_is_dropped)
{
    never a, b;
    int outa = 0, outb = 0;
    weft_future_ref refs[2] = { { &never_future, &a, &outa, 0 }, { &never_future, &b, &outb, 0 } };
    weft_chan *ch = NULL;
    int msg = 0;
    void *dsts[1] = { &msg };
    size_t which = 77;

    atomic_store(&never_drops, 0);
    ASSERT_EQ(-EINVAL, weft_co_await_timeout(&never_future, &a, &outa, 10));
    ASSERT_EQ(1, atomic_load(&never_drops));
    ASSERT_EQ(-EINVAL, weft_co_await_fn((weft_poll (*)(void *, weft_context *, void *))never_poll,
                                        (void (*)(void *))never_drop, &a, &outa));
    ASSERT_EQ(2, atomic_load(&never_drops));
    ASSERT_EQ(-EINVAL, weft_co_select(refs, 2));
    ASSERT_EQ(4, atomic_load(&never_drops));
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 4));
    ASSERT_OK(weft_chan_try_send(ch, &(int){ 5 }));
    ASSERT_EQ(-EINVAL, weft_co_chan_select(&ch, dsts, 1, &which));
    ASSERT_EQ(77, which);
    ASSERT_EQ(1, weft_chan_len(ch));              /* nothing received */
    ASSERT_EQ(0, weft_co_deadline_set(123));
    ASSERT_EQ(0, weft_co_deadline());
    ASSERT_EQ(-EINVAL, weft_co_blocking(NULL, NULL, NULL, NULL));
    weft_chan_drop(ch);
}

/* Bad arguments inside a coroutine: -EINVAL, nothing happens. */
static void *ret_arg(void *arg)
{
    return arg;
}

static int bad_args_body(void *arg)
{
    weft_chan *ch = NULL;
    int msg = 0;
    void *dsts[1] = { &msg };
    weft_chan *chans[1];
    size_t which = 77;
    struct stat st;
    void *data = (void *)1;
    weft_fs_dirent *ents = (void *)1;
    never a;
    int outa;
    weft_future_ref refs[1] = { { &never_future, &a, &outa, 0 } };
    void *ret = NULL;

    (void)arg;
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 4));
    chans[0] = ch;
    ASSERT_EQ(-EINVAL, weft_co_chan_select(chans, dsts, 0, &which));
    ASSERT_EQ(-EINVAL, weft_co_chan_select(NULL, dsts, 1, &which));
    ASSERT_EQ(-EINVAL, weft_co_chan_select(chans, NULL, 1, &which));
    ASSERT_EQ(-EINVAL, weft_co_chan_select(chans, dsts, 1, NULL));
    ASSERT_EQ(-EINVAL, weft_co_chan_select(chans, dsts, WEFT_CO_SELECT_MAX + 1, &which));
    ASSERT_EQ(-EINVAL, weft_co_chan_select(chans, dsts, SIZE_MAX, &which));
    ASSERT_EQ(77, which);
    ASSERT_EQ(-EINVAL, weft_co_select(NULL, 1));
    atomic_store(&never_drops, 0);
    ASSERT_EQ(-EINVAL, weft_co_select(refs, 0));
    ASSERT_EQ(-EINVAL, weft_co_chan_send(NULL, &msg));
    ASSERT_EQ(-EINVAL, weft_co_chan_recv(NULL, &msg));
    ASSERT_EQ(-EINVAL, weft_co_fs_stat(NULL, &st));
    ASSERT_EQ(-EINVAL, weft_co_fs_stat("/", NULL));
    ASSERT_EQ(-EINVAL, weft_co_fs_read_file(NULL, &data, NULL));
    ASSERT_EQ(-EINVAL, weft_co_fs_readdir("/", NULL));
    ASSERT_EQ(-EINVAL, weft_co_fs_readdir(NULL, &ents));
    ASSERT(data == (void *)1 && ents == (void *)1);
    ASSERT_EQ(-EBADF, weft_co_fs_read(-1, &msg, sizeof(msg)));
    ASSERT_EQ(-EBADF, weft_co_fs_close(-1));
    ASSERT_EQ(-EINVAL, weft_co_fs_write(1, NULL, 5));
    ASSERT_EQ(-EINVAL, weft_co_fs_pread(0, &msg, sizeof(msg), -1));
    ASSERT_EQ(-EINVAL, weft_co_blocking(NULL, NULL, NULL, &ret));
    ASSERT_EQ(-EINVAL, weft_co_join(NULL, NULL));
    ASSERT_EQ(-EINVAL, weft_co_mutex_lock(NULL));
    ASSERT_EQ(-EINVAL, weft_co_sem_acquire(NULL, 1));
    ASSERT_EQ(-EINVAL, weft_co_process_wait(NULL, NULL));
    ASSERT_EQ(-EBADF, weft_co_read(NULL, &msg, 1));    /* net.h: NULL socket is -EBADF */
    ASSERT_EQ(-EINVAL, weft_co_read_line(NULL, &msg, 1));
    ASSERT_EQ(-EINVAL, weft_co_watch_changed(NULL, &msg));
    ASSERT_EQ(-EINVAL, weft_co_bcast_recv(NULL, &msg, NULL));
    ASSERT_EQ(-EINVAL, weft_co_await(NULL, &a, &outa));
    ASSERT_EQ(0, atomic_load(&never_drops));      /* NULL type: nothing dropped */
    ASSERT_OK(weft_co_blocking(NULL, ret_arg, &msg, &ret));
    ASSERT(ret == &msg);
    /* a coroutine runs on a worker: block_on is refused, not a deadlock */
    ASSERT_EQ(-EINVAL, weft_co_block_on(weft_runtime_current(), bad_args_body, NULL, NULL, NULL));
    ASSERT_EQ(1, weft_chan_len(ch) + 1);
    weft_chan_drop(ch);
    return 7;
}

TEST(bad_arguments_inside_a_coroutine)
{
    weft_runtime *rt = ct_runtime(2);
    int out = 0;

    ASSERT_OK(weft_co_block_on(rt, bad_args_body, NULL, NULL, &out));
    ASSERT_EQ(7, out);
    CT_FREE(rt);
}

/* Deadlines: yield is excepted; a call past the deadline that need not wait
 * completes; one that must wait times out and its future is dropped. */
static int deadline_body(void *arg)
{
    weft_chan *ch = NULL;
    int msg = 0;
    never a;
    int outa = 0;

    (void)arg;
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 4));
    ASSERT_OK(weft_chan_try_send(ch, &(int){ 9 }));
    ASSERT_EQ(0, weft_co_deadline_set(1));          /* long past */
    ASSERT_EQ(1, weft_co_deadline());
    ASSERT_OK(weft_co_yield());
    ASSERT_OK(weft_co_chan_recv(ch, &msg));       /* ready: completes */
    ASSERT_EQ(9, msg);
    ASSERT_EQ(-ETIMEDOUT, weft_co_chan_recv(ch, &msg));
    atomic_store(&never_drops, 0);
    ASSERT_EQ(-ETIMEDOUT, weft_co_await(&never_future, &a, &outa));
    ASSERT_EQ(1, atomic_load(&never_drops));
    ASSERT_EQ(-ETIMEDOUT, weft_co_sleep(1000000));
    ASSERT_EQ(1, weft_co_deadline_set(0));
    ASSERT_OK(weft_co_sleep(1));
    weft_chan_drop(ch);
    return 0;
}

TEST(deadline_in_the_past)
{
    weft_runtime *rt = ct_runtime(1);
    int out = -1;

    ASSERT_OK(weft_co_block_on(rt, deadline_body, NULL, NULL, &out));
    ASSERT_EQ(0, out);
    CT_FREE(rt);
}

/* fn runs exactly once even when the runtime is shut down before it was
 * polled, and every blocking call in it says -ECANCELED. */
static atomic_int ran, saw_cancel;
static int count_body(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
    if (weft_co_sleep(100000) == -ECANCELED && weft_co_yield() == -ECANCELED &&
        weft_co_cancelled())
        atomic_fetch_add(&saw_cancel, 1);
    return 0;
}

TEST(fn_runs_once_when_shut_down_before_start)
{
    weft_runtime *rt = ct_current_thread();
    weft_join *j = NULL;
    int n = (int)harness_scale(200);

    atomic_store(&ran, 0);
    atomic_store(&saw_cancel, 0);
    for (int i = 0; i < n; i++)
        ASSERT_OK(weft_go_detached(rt, count_body, NULL));
    ASSERT_OK(weft_go(rt, count_body, NULL, &j));
    ASSERT_OK(weft_runtime_shutdown(rt));
    ASSERT_EQ(n + 1, atomic_load(&ran));
    ASSERT_EQ(n + 1, atomic_load(&saw_cancel));
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, NULL));
    weft_join_drop(j);
    CT_FREE(rt);
}

/* weft_co_fs_close in a coroutine that is already cancelled: the call
 * returns -ECANCELED without waiting, and "a close still closes" (the
 * dropped, never polled close is carried out). */
static int close_after_cancel(void *arg)
{
    int fd = *(int *)arg;

    if (weft_co_sleep(100000) != -ECANCELED)
        return -1;
    return weft_co_fs_close(fd);
}

TEST(co_fs_close_after_cancel_still_closes)
{
    weft_runtime *rt = ct_runtime(1);
    weft_join *j = NULL;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC), out = 0;

    ASSERT(fd >= 0);
    ASSERT_OK(weft_go(rt, close_after_cancel, &fd, &j));
    weft_join_abort(j);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j, &out));
    weft_join_drop(j);
    CT_FREE(rt);                 /* the pool's queued close runs or is done here */
    /* a close job already on a pool thread may finish just after the free */
    for (int i = 0; i < 10000 && fcntl(fd, F_GETFD) >= 0; i++)
        usleep(1000);
    ASSERT_EQ(-1, fcntl(fd, F_GETFD));
}

/* weft_co_select with a bad slot: -EINVAL and nothing dropped, the good
 * slots' futures included (coro.h used to say they were dropped "in every
 * case"); the same set made valid is then owned and dropped. */
static int bad_slot_body(void *arg)
{
    never a, b;
    int outa = 0, outb = 0;
    weft_future_ref refs[2] = { { &never_future, &a, &outa, 0 }, { NULL, &b, &outb, 0 } };

    (void)arg;
    atomic_store(&never_drops, 0);
    ASSERT_EQ(-EINVAL, weft_co_select(refs, 2));
    ASSERT_EQ(0, atomic_load(&never_drops));
    refs[1].type = &never_future;
    ASSERT_EQ(0, weft_co_deadline_set(weft_now_ms() + 20));
    ASSERT_EQ(-ETIMEDOUT, weft_co_select(refs, 2));
    ASSERT_EQ(2, atomic_load(&never_drops));
    return 0;
}

TEST(select_with_a_bad_slot_drops_nothing)
{
    weft_runtime *rt = ct_runtime(1);
    int out = -1;

    ASSERT_OK(weft_co_block_on(rt, bad_slot_body, NULL, NULL, &out));
    ASSERT_EQ(0, out);
    CT_FREE(rt);
}
