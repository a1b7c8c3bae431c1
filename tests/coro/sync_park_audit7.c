// SPDX-License-Identifier: MIT
/* Issue 10's first case for the calls whose cancel cases are in
 * tests/coro/cancel_points.c: parked (the task dump says so), then made
 * ready by another thread, each call completes with its normal result, on
 * whichever worker resumes it (and, in the stress build, after a PENDING
 * from every leaf future). park_audit7.h has the harness. */
#include "park_audit7.h"

#include <signal.h>

static void undone_nothing(pk_ctx *c) { (void)c; }

/* ---- weft_co_join ---- */
static int notify_then_17(void *arg)
{
    int r = weft_co_notify_wait(arg);

    return r < 0 ? r : 17;
}
static void setup_join(pk_ctx *c)
{
    ASSERT_OK(weft_notify_new((weft_notify **)&c->obj[0]));
    ASSERT_OK(weft_go(c->rt, notify_then_17, c->obj[0], &c->other));
}
static long park_join(pk_ctx *c)
{
    int out = 0;
    long r = weft_co_join(c->other, &out);

    return r < 0 ? r : out;
}
static void release_notify(pk_ctx *c) { weft_notify_one(c->obj[0]); }
static void ok_17(pk_ctx *c) { ASSERT_EQ(17, c->result); }
static void teardown_join(pk_ctx *c)
{
    weft_join_drop(c->other);
    weft_notify_free(c->obj[0]);
}

/* ---- channels ---- */
static void setup_chan(pk_ctx *c) { ASSERT_OK(weft_chan_new((weft_chan **)&c->obj[0], sizeof(int), 1)); }
static void teardown_chan(pk_ctx *c) { weft_chan_drop(c->obj[0]); }
static long park_chan_recv(pk_ctx *c)
{
    int v = 0;
    long r = weft_co_chan_recv(c->obj[0], &v);

    return r < 0 ? r : v;
}
static void release_send7(pk_ctx *c) { ASSERT_OK(weft_chan_try_send(c->obj[0], &(int){ 7 })); }
static void ok_7(pk_ctx *c) { ASSERT_EQ(7, c->result); }

static void setup_chan_full(pk_ctx *c)
{
    setup_chan(c);
    ASSERT_OK(weft_chan_try_send(c->obj[0], &(int){ 1 }));
}
static long park_chan_send(pk_ctx *c) { return weft_co_chan_send(c->obj[0], &(int){ 2 }); }
static void release_recv(pk_ctx *c)
{
    int v = 0;

    ASSERT_OK(weft_chan_try_recv(c->obj[0], &v));
    ASSERT_EQ(1, v);
}
static void ok_sent(pk_ctx *c)
{
    int v = 0;

    ASSERT_EQ(0, c->result);
    ASSERT_OK(weft_chan_try_recv(c->obj[0], &v));
    ASSERT_EQ(2, v);
}

static weft_chan *sel[10];
static void setup_select10(pk_ctx *c)
{
    (void)c;
    for (int i = 0; i < 10; i++)
        ASSERT_OK(weft_chan_new(&sel[i], sizeof(int), 1));
}
static void teardown_select10(pk_ctx *c)
{
    (void)c;
    for (int i = 0; i < 10; i++)
        weft_chan_drop(sel[i]);
}
static long park_chan_select(pk_ctx *c)
{
    int dst[10] = { 0 };
    void *d[10];
    size_t which = 99;
    long r;

    (void)c;
    for (int i = 0; i < 10; i++)
        d[i] = &dst[i];
    r = weft_co_chan_select(sel, d, 10, &which);
    return r < 0 ? r : (long)which * 100 + dst[which];
}
static void release_sel7(pk_ctx *c)
{
    (void)c;
    ASSERT_OK(weft_chan_try_send(sel[7], &(int){ 5 }));
}
static void ok_705(pk_ctx *c)
{
    ASSERT_EQ(705, c->result);
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(0, weft_chan_len(sel[i]));
}

static void setup_oneshot(pk_ctx *c)
{
    ASSERT_OK(weft_oneshot_new((weft_oneshot_tx **)&c->obj[0], (weft_oneshot_rx **)&c->obj[1],
                               sizeof(int)));
}
static long park_oneshot(pk_ctx *c)
{
    int v = 0;
    long r = weft_co_oneshot_recv(c->obj[1], &v);

    return r < 0 ? r : v;
}
static void release_oneshot(pk_ctx *c)
{
    ASSERT_OK(weft_oneshot_send(c->obj[0], &(int){ 7 }));
    c->obj[0] = NULL;
}
static void teardown_oneshot(pk_ctx *c)
{
    if (c->obj[0])
        weft_oneshot_tx_drop(c->obj[0]);
    weft_oneshot_rx_drop(c->obj[1]);
}

/* ---- locks ---- */
static void setup_mutex(pk_ctx *c)
{
    ASSERT_OK(weft_mutex_new((weft_mutex **)&c->obj[0]));
    ASSERT_OK(weft_mutex_try_lock(c->obj[0]));
}
static long park_mutex(pk_ctx *c)
{
    long r = weft_co_mutex_lock(c->obj[0]);

    if (r == 0) {
        ASSERT_EQ(-EBUSY, weft_mutex_try_lock(c->obj[0]) == 0 ? 0 : -EBUSY);
        ASSERT_OK(weft_mutex_unlock(c->obj[0]));
    }
    return r;
}
static void release_mutex(pk_ctx *c) { ASSERT_OK(weft_mutex_unlock(c->obj[0])); }
static void ok_0(pk_ctx *c) { ASSERT_EQ(0, c->result); }
static void teardown_mutex(pk_ctx *c) { weft_mutex_free(c->obj[0]); }

static void setup_sem(pk_ctx *c) { ASSERT_OK(weft_sem_new((weft_sem **)&c->obj[0], 1)); }
static long park_sem(pk_ctx *c)
{
    long r = weft_co_sem_acquire(c->obj[0], 2);

    if (r == 0) {
        ASSERT_EQ(0, weft_sem_available(c->obj[0]));
        ASSERT_OK(weft_sem_release(c->obj[0], 2));
    }
    return r;
}
static void release_sem(pk_ctx *c) { ASSERT_OK(weft_sem_release(c->obj[0], 1)); }
static void ok_sem(pk_ctx *c)
{
    ASSERT_EQ(0, c->result);
    ASSERT_EQ(2, weft_sem_available(c->obj[0]));
}
static void teardown_sem(pk_ctx *c) { weft_sem_free(c->obj[0]); }

static void setup_rw_read_held(pk_ctx *c)
{
    ASSERT_OK(weft_rwlock_new((weft_rwlock **)&c->obj[0]));
    ASSERT_OK(weft_rwlock_try_read(c->obj[0]));
}
static void setup_rw_write_held(pk_ctx *c)
{
    ASSERT_OK(weft_rwlock_new((weft_rwlock **)&c->obj[0]));
    ASSERT_OK(weft_rwlock_try_write(c->obj[0]));
}
static long park_rw_write(pk_ctx *c)
{
    long r = weft_co_rwlock_write(c->obj[0]);

    if (r == 0) {
        ASSERT(weft_rwlock_try_read(c->obj[0]) != 0);
        ASSERT_OK(weft_rwlock_unlock_write(c->obj[0]));
    }
    return r;
}
static long park_rw_read(pk_ctx *c)
{
    long r = weft_co_rwlock_read(c->obj[0]);

    if (r == 0) {
        ASSERT(weft_rwlock_try_write(c->obj[0]) != 0);
        ASSERT_OK(weft_rwlock_unlock_read(c->obj[0]));
    }
    return r;
}
static void release_unlock_read(pk_ctx *c) { ASSERT_OK(weft_rwlock_unlock_read(c->obj[0])); }
static void release_unlock_write(pk_ctx *c) { ASSERT_OK(weft_rwlock_unlock_write(c->obj[0])); }
static void ok_rw(pk_ctx *c)
{
    ASSERT_EQ(0, c->result);
    ASSERT_OK(weft_rwlock_try_write(c->obj[0]));   /* released again */
    ASSERT_OK(weft_rwlock_unlock_write(c->obj[0]));
}
static void teardown_rw(pk_ctx *c) { weft_rwlock_free(c->obj[0]); }

static void setup_notify(pk_ctx *c) { ASSERT_OK(weft_notify_new((weft_notify **)&c->obj[0])); }
static long park_notify(pk_ctx *c) { return weft_co_notify_wait(c->obj[0]); }
static void teardown_notify(pk_ctx *c) { weft_notify_free(c->obj[0]); }

/* barrier of two: the second party is another coroutine */
static int barrier_party(void *arg)
{
    return weft_co_barrier_wait(arg);
}
static void setup_barrier(pk_ctx *c) { ASSERT_OK(weft_barrier_new((weft_barrier **)&c->obj[0], 2)); }
static long park_barrier(pk_ctx *c) { return weft_co_barrier_wait(c->obj[0]); }
static void release_barrier(pk_ctx *c) { ASSERT_OK(weft_go(c->rt, barrier_party, c->obj[0], &c->other)); }
static void ok_barrier(pk_ctx *c)
{
    int other = -1;

    ASSERT_OK(weft_join_wait(c->other, &other));
    /* exactly one of the two leads */
    ASSERT((c->result == WEFT_BARRIER_LEADER) != (other == WEFT_BARRIER_LEADER));
    ASSERT(c->result == 0 || c->result == WEFT_BARRIER_LEADER);
    ASSERT(other == 0 || other == WEFT_BARRIER_LEADER);
}
static void teardown_barrier(pk_ctx *c)
{
    weft_join_drop(c->other);
    weft_barrier_free(c->obj[0]);
}

static void setup_token(pk_ctx *c) { ASSERT_OK(weft_cancel_new((weft_cancel **)&c->obj[0])); }
static long park_token(pk_ctx *c) { return weft_co_cancel_wait(c->obj[0]); }
static void release_token(pk_ctx *c) { weft_cancel_cancel(c->obj[0]); }
static void teardown_token(pk_ctx *c) { weft_cancel_drop(c->obj[0]); }

static int parks_on_notify(void *arg)
{
    return weft_co_notify_wait(arg);
}
static void setup_group(pk_ctx *c)
{
    ASSERT_OK(weft_notify_new((weft_notify **)&c->obj[0]));
    ASSERT_OK(weft_group_new((weft_group **)&c->obj[1], c->rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_go_group(c->obj[1], parks_on_notify, c->obj[0], NULL));
}
static long park_group(pk_ctx *c) { return weft_co_group_wait(c->obj[1]); }
static void ok_group(pk_ctx *c)
{
    ASSERT_EQ(0, c->result);
    ASSERT_EQ(0, weft_group_live(c->obj[1]));
}
static void teardown_group(pk_ctx *c)
{
    ASSERT_OK(weft_group_free(c->obj[1]));
    weft_notify_free(c->obj[0]);
}

/* ---- sockets ---- */
static void pair_teardown(pk_ctx *c) { pk_pair_gone(c); }
static long park_read(pk_ctx *c)
{
    char buf[16] = { 0 };
    long r = weft_co_read(c->s, buf, sizeof(buf));

    if (r > 0)
        ASSERT_EQ(0, memcmp(buf, "abc", 3));
    return r;
}
static void release_abc(pk_ctx *c) { ASSERT_EQ(3, write(c->peer, "abc", 3)); }
static void ok_3(pk_ctx *c) { ASSERT_EQ(3, c->result); }

static void setup_read_exact(pk_ctx *c)
{
    pk_pair(c);
    ASSERT_EQ(2, write(c->peer, "xy", 2));
}
static long park_read_exact(pk_ctx *c)
{
    char buf[8] = { 0 };
    long r = weft_co_read_exact(c->s, buf, sizeof(buf));

    if (r > 0)
        ASSERT_EQ(0, memcmp(buf, "xy012345", 8));
    return r;
}
static void release_six(pk_ctx *c) { ASSERT_EQ(6, write(c->peer, "012345", 6)); }
static void ok_8(pk_ctx *c) { ASSERT_EQ(8, c->result); }

static void setup_full(pk_ctx *c)
{
    pk_pair(c);
    pk_fill(c);
}
static long park_write_all(pk_ctx *c)
{
    static char big[1 << 16];

    return weft_co_write_all(c->s, big, sizeof(big));
}
static void release_drain(pk_ctx *c) { pk_drain(c); }
static void ok_64k(pk_ctx *c) { ASSERT_EQ(1 << 16, c->result); }

static void setup_accept(pk_ctx *c)
{
    struct sockaddr_storage a;
    socklen_t len;

    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &a, &len));
    ASSERT_OK(weft_listen(c->rt, (struct sockaddr *)&a, len, 0, (weft_socket **)&c->obj[0]));
}
static long park_accept(pk_ctx *c)
{
    weft_socket *s = NULL;
    long r = weft_co_accept(c->obj[0], &s);

    if (r == 0) {
        ASSERT(s != NULL);
        ASSERT_EQ(1, weft_co_read(s, &(char){ 0 }, 1));
        ASSERT_OK(weft_socket_close(s));
    }
    return r;
}
static void release_connect(pk_ctx *c)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof(a);

    ASSERT_OK(weft_socket_local_addr(c->obj[0], &a, &len));
    c->peer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(0, connect(c->peer, (struct sockaddr *)&a, len));
    ASSERT_EQ(1, write(c->peer, "!", 1));
}
static void teardown_accept(pk_ctx *c)
{
    ASSERT_OK(weft_socket_close(c->obj[0]));
    if (c->peer >= 0)
        close(c->peer);
}

static void setup_udp(pk_ctx *c)
{
    struct sockaddr_storage a;
    socklen_t len;

    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &a, &len));
    ASSERT_OK(weft_udp_bind(c->rt, (struct sockaddr *)&a, len, &c->s));
}
static long park_recv_from(pk_ctx *c)
{
    char buf[16] = { 0 };
    struct sockaddr_storage from;
    socklen_t fl = sizeof(from);
    long r = weft_co_recv_from(c->s, buf, sizeof(buf), &from, &fl);

    if (r > 0) {
        ASSERT_EQ(0, memcmp(buf, "dgram", 5));
        ASSERT_EQ(AF_INET, from.ss_family);
    }
    return r;
}
static void release_dgram(pk_ctx *c)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    ASSERT_OK(weft_socket_local_addr(c->s, &a, &len));
    ASSERT_EQ(5, sendto(fd, "dgram", 5, 0, (struct sockaddr *)&a, len));
    close(fd);
}
static void ok_5(pk_ctx *c) { ASSERT_EQ(5, c->result); }
static void teardown_udp(pk_ctx *c) { ASSERT_OK(weft_socket_close(c->s)); }

static void setup_line(pk_ctx *c)
{
    pk_pair(c);
    ASSERT_OK(weft_bufreader_init(&c->br, c->s, c->brbuf, sizeof(c->brbuf)));
    ASSERT_EQ(4, write(c->peer, "half", 4));
}
static long park_read_line(pk_ctx *c)
{
    char line[32] = { 0 };
    long r = weft_co_read_line(&c->br, line, sizeof(line));

    if (r > 0)
        ASSERT_EQ(0, memcmp(line, "half line\n", 10));
    return r;
}
static void release_line(pk_ctx *c) { ASSERT_EQ(6, write(c->peer, " line\n", 6)); }
static void ok_10(pk_ctx *c) { ASSERT_EQ(10, c->result); }
static void teardown_line(pk_ctx *c)
{
    weft_bufreader_drop(&c->br);
    pk_pair_gone(c);
}

/* ---- watch, broadcast ---- */
static void setup_watch(pk_ctx *c)
{
    ASSERT_OK(weft_watch_new((weft_watch **)&c->obj[0], sizeof(int), &(int){ 0 }));
    ASSERT_OK(weft_watch_rx_new((weft_watch_rx **)&c->obj[1], c->obj[0]));
}
static long park_watch(pk_ctx *c)
{
    int v = 0;
    long r = weft_co_watch_changed(c->obj[1], &v);

    return r < 0 ? r : v;
}
static void release_watch(pk_ctx *c) { ASSERT_OK(weft_watch_send(c->obj[0], &(int){ 7 })); }
static void ok_watch(pk_ctx *c)
{
    ASSERT_EQ(7, c->result);
    ASSERT_EQ(0, weft_watch_has_changed(c->obj[1]));   /* marked seen */
}
static void teardown_watch(pk_ctx *c)
{
    weft_watch_rx_drop(c->obj[1]);
    weft_watch_drop(c->obj[0]);
}

static void setup_bcast(pk_ctx *c)
{
    ASSERT_OK(weft_bcast_new((weft_bcast **)&c->obj[0], sizeof(int), 4));
    ASSERT_OK(weft_bcast_rx_new((weft_bcast_rx **)&c->obj[1], c->obj[0]));
}
static long park_bcast(pk_ctx *c)
{
    int v = 0;
    uint64_t missed = 99;
    long r = weft_co_bcast_recv(c->obj[1], &v, &missed);

    return r < 0 ? r : v;
}
static void release_bcast(pk_ctx *c) { ASSERT_OK(weft_bcast_send(c->obj[0], &(int){ 7 })); }
static void teardown_bcast(pk_ctx *c)
{
    weft_bcast_rx_drop(c->obj[1]);
    weft_bcast_drop(c->obj[0]);
}

/* ---- a child, the pool, select, await_timeout ---- */
static void setup_process(pk_ctx *c)
{
    char *argv[] = { "sleep", "600", NULL };
    weft_process_options o = { .argv = argv, .flags = WEFT_PROCESS_KILL_ON_FREE };

    ASSERT_OK(weft_process_spawn(c->rt, &o, (weft_process **)&c->obj[0]));
}
static long park_process(pk_ctx *c)
{
    weft_process_status st = { 5, 5 };
    long r = weft_co_process_wait(c->obj[0], &st);

    return r < 0 ? r : st.code * 1000 + st.signal;
}
static void release_kill(pk_ctx *c) { ASSERT_OK(weft_process_kill(c->obj[0], SIGKILL)); }
static void ok_killed(pk_ctx *c) { ASSERT_EQ(-1 * 1000 + SIGKILL, c->result); }
static void teardown_process(pk_ctx *c) { weft_process_free(c->obj[0]); }

static long park_blocking(pk_ctx *c)
{
    void *ret = (void *)1;
    long r = weft_co_blocking(NULL, pk_held_job, c, &ret);

    if (r == 0)
        ASSERT(ret == NULL);
    return r;
}
static void release_job(pk_ctx *c) { atomic_store(&c->job_release, 1); }
static void ok_job(pk_ctx *c)
{
    ASSERT_EQ(0, c->result);
    ASSERT(atomic_load(&c->job_done));
}

static long park_select(pk_ctx *c)
{
    weft_sleep sl;
    weft_chan_recv rv;
    int dst = 0, rres = 1;
    weft_future_ref refs[2] = {
        { &weft_sleep_future, &sl, NULL, 0 },
        { &weft_chan_recv_future, &rv, &rres, 0 },
    };
    long r;

    weft_sleep_init(&sl, 10u * 60 * 1000);
    weft_chan_recv_init(&rv, c->obj[0], &dst);
    r = weft_co_select(refs, 2);
    return r < 0 ? r : r * 100 + rres * 10 + dst;
}
static void ok_select(pk_ctx *c) { ASSERT_EQ(107, c->result); }

static long park_await_timeout(pk_ctx *c)
{
    weft_chan_recv rv;
    int dst = 0, rres = 1;
    long r;

    weft_chan_recv_init(&rv, c->obj[0], &dst);
    r = weft_co_await_timeout(&weft_chan_recv_future, &rv, &rres, 10u * 60 * 1000);
    return r < 0 ? r : rres * 10 + dst;
}

static const pk_case cases[] = {
    { "weft_co_join", setup_join, park_join, release_notify, ok_17, undone_nothing, teardown_join },
    { "weft_co_chan_recv", setup_chan, park_chan_recv, release_send7, ok_7, undone_nothing,
      teardown_chan },
    { "weft_co_chan_send", setup_chan_full, park_chan_send, release_recv, ok_sent,
      undone_nothing, teardown_chan },
    { "weft_co_chan_select", setup_select10, park_chan_select, release_sel7, ok_705,
      undone_nothing, teardown_select10 },
    { "weft_co_oneshot_recv", setup_oneshot, park_oneshot, release_oneshot, ok_7,
      undone_nothing, teardown_oneshot },
    { "weft_co_mutex_lock", setup_mutex, park_mutex, release_mutex, ok_0, undone_nothing,
      teardown_mutex },
    { "weft_co_sem_acquire", setup_sem, park_sem, release_sem, ok_sem, undone_nothing,
      teardown_sem },
    { "weft_co_rwlock_write", setup_rw_read_held, park_rw_write, release_unlock_read, ok_rw,
      undone_nothing, teardown_rw },
    { "weft_co_rwlock_read", setup_rw_write_held, park_rw_read, release_unlock_write, ok_rw,
      undone_nothing, teardown_rw },
    { "weft_co_notify_wait", setup_notify, park_notify, release_notify, ok_0, undone_nothing,
      teardown_notify },
    { "weft_co_barrier_wait", setup_barrier, park_barrier, release_barrier, ok_barrier,
      undone_nothing, teardown_barrier },
    { "weft_co_cancel_wait", setup_token, park_token, release_token, ok_0, undone_nothing,
      teardown_token },
    { "weft_co_group_wait", setup_group, park_group, release_notify, ok_group, undone_nothing,
      teardown_group },
    { "weft_co_read", pk_pair, park_read, release_abc, ok_3, undone_nothing, pair_teardown },
    { "weft_co_read_exact", setup_read_exact, park_read_exact, release_six, ok_8,
      undone_nothing, pair_teardown },
    { "weft_co_write_all", setup_full, park_write_all, release_drain, ok_64k, undone_nothing,
      pair_teardown },
    { "weft_co_accept", setup_accept, park_accept, release_connect, ok_0, undone_nothing,
      teardown_accept },
    { "weft_co_recv_from", setup_udp, park_recv_from, release_dgram, ok_5, undone_nothing,
      teardown_udp },
    { "weft_co_read_line", setup_line, park_read_line, release_line, ok_10, undone_nothing,
      teardown_line },
    { "weft_co_watch_changed", setup_watch, park_watch, release_watch, ok_watch,
      undone_nothing, teardown_watch },
    { "weft_co_bcast_recv", setup_bcast, park_bcast, release_bcast, ok_7, undone_nothing,
      teardown_bcast },
    { "weft_co_process_wait", setup_process, park_process, release_kill, ok_killed,
      undone_nothing, teardown_process },
    { "weft_co_blocking", pk_nothing, park_blocking, release_job, ok_job, undone_nothing,
      pk_nothing },
    { "weft_co_select", setup_chan, park_select, release_send7, ok_select, undone_nothing,
      teardown_chan },
    { "weft_co_await_timeout", setup_chan, park_await_timeout, release_send7, ok_7,
      undone_nothing, teardown_chan },
};

TEST(every_call_completes_after_parking)
{
    pk_run_all(cases, sizeof(cases) / sizeof(cases[0]), PK_OK);
}
