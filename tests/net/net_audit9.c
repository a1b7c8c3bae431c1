/* SPDX-License-Identifier: MIT */
/* Audit 9 of weft/net.h.
 *
 * 1. A poll without a waker (weft/core.h, "Context": a NULL context, or a
 *    zeroed one) is misuse that every future answers READY with -EINVAL,
 *    changing nothing. The socket futures dereferenced the missing waker
 *    when they had to wait (SIGSEGV), and when they did not, did their work
 *    anyway (a write sent its bytes, a resolve started its lookup).
 * 2. weft_socket_adopt() makes the socket non-blocking, and O_NONBLOCK
 *    belongs to the open file description, which every dup of the
 *    descriptor shares: the header now says so, and weft gives a socket
 *    that was in blocking mode back in blocking mode when it closes it (or
 *    fails to adopt it), as weft_fd_adopt() does with WEFT_FD_SET_NONBLOCK.
 *    It stayed non-blocking for good: the caller's other copies then failed
 *    with EAGAIN where they used to wait.
 * 3. A connect can complete at its first poll (here: no such Unix path,
 *    failed at init), connect after connect, and did so without spending
 *    the cooperative budget (lock.h's rule, which net.h takes over): a
 *    task retrying in a loop held its worker, as did one retrying a
 *    weft_connect_addrs_init() connect_host. */
#include "net_test.h"
#include "badcx.h"
#include "setflag.h"

#include <netdb.h>

struct rig {
    weft_runtime *rt;
    weft_socket *l;                /* a loopback listener */
    struct sockaddr_storage addr;
    socklen_t len;
    int a, b;                      /* a connected Unix stream pair (raw) */
};

static void zero_cx(weft_context *cx)
{
    memset(cx, 0, sizeof(*cx));
}

static void accept_body(weft_context *cx, void *arg)
{
    struct rig *r = arg;
    weft_socket *s = NULL;
    weft_accept a;

    weft_accept_init(&a, r->l, &s, NULL, NULL);
    badcx_check(&weft_accept_future, &a, cx);   /* no connection: waits */
    ASSERT(s == NULL);
}

static void read_write_body(weft_context *cx, void *arg)
{
    struct rig *r = arg;
    weft_socket *sa, *sb;
    weft_io_op op;
    char buf[8] = "abcdefg", got[8];
    weft_context zero;
    ssize_t n = 0;

    zero_cx(&zero);
    ASSERT_OK(weft_socket_adopt(r->rt, r->a, &sa));
    ASSERT_OK(weft_socket_adopt(r->rt, r->b, &sb));
    weft_read_init(&op, sa, got, sizeof(got));
    badcx_check(&weft_io_op_future, &op, cx);    /* nothing sent: waits */
    /* a write that needs no wait: without a waker it must not send */
    weft_write_init(&op, sb, buf, sizeof(buf));
    badcx_einval(&weft_io_op_future, &op);
    ASSERT_EQ(-1, recv(weft_socket_fd(sa), got, sizeof(got), MSG_DONTWAIT));
    ASSERT_EQ(EAGAIN, errno);
    if (weft_io_op_poll(&op, cx, &n) == WEFT_PENDING)      /* WEFT_STRESS: once */
        ASSERT_EQ(WEFT_READY, weft_io_op_poll(&op, cx, &n));
    ASSERT_EQ((long long)sizeof(buf), (long long)n);
    ASSERT_EQ(WEFT_READY, weft_io_op_poll(&op, &zero, &n));  /* READY: its result again */
    ASSERT_EQ((long long)sizeof(buf), (long long)n);
    weft_io_op_drop(&op);
    weft_read_exact_init(&op, sa, got, sizeof(got));
    badcx_einval(&weft_io_op_future, &op);
    weft_io_op_drop(&op);
    weft_write_all_init(&op, sb, buf, sizeof(buf));
    badcx_einval(&weft_io_op_future, &op);
    weft_io_op_drop(&op);
    ASSERT_OK(weft_socket_close(sa));
    ASSERT_OK(weft_socket_close(sb));
}

static void udp_body(weft_context *cx, void *arg)
{
    struct rig *r = arg;
    struct sockaddr_storage addr, from;
    socklen_t len, fromlen = sizeof(from);
    weft_socket *u;
    weft_io_op op;
    char buf[16];

    ASSERT_OK(weft_addr_ip("127.0.0.1", 0, &addr, &len));
    ASSERT_OK(weft_udp_bind(r->rt, (struct sockaddr *)&addr, len, &u));
    weft_recv_from_init(&op, u, buf, sizeof(buf), &from, &fromlen);
    badcx_check(&weft_io_op_future, &op, cx);
    len = sizeof(addr);
    ASSERT_OK(weft_socket_local_addr(u, &addr, &len));
    weft_send_to_init(&op, u, buf, 4, (struct sockaddr *)&addr, len);
    badcx_einval(&weft_io_op_future, &op);
    weft_io_op_drop(&op);
    ASSERT_OK(weft_socket_close(u));
}

static void connect_body(weft_context *cx, void *arg)
{
    struct rig *r = arg;
    weft_socket *s = NULL;
    weft_connect c;
    weft_connect_host ch;
    weft_addrinfo ai;
    int res = 1;

    weft_connect_init(&c, r->rt, (struct sockaddr *)&r->addr, r->len, 0, &s);
    badcx_einval(&weft_connect_future, &c);
    ASSERT(s == NULL);
    if (weft_connect_poll(&c, cx, &res) == WEFT_READY) {
        ASSERT_OK(res);
        ASSERT_OK(weft_socket_close(s));
    } else {
        badcx_einval(&weft_connect_future, &c);
    }
    weft_io_op_drop(&c);

    memset(&ai, 0, sizeof(ai));
    memcpy(&ai.addr, &r->addr, sizeof(r->addr));
    ai.len = r->len;
    s = NULL;
    weft_connect_addrs_init(&ch, r->rt, &ai, 1, 0, &s);
    badcx_einval(&weft_connect_host_future, &ch);
    ASSERT(s == NULL);
    res = 1;
    if (weft_connect_host_poll(&ch, cx, &res) == WEFT_READY) {
        ASSERT_OK(res);
        ASSERT_OK(weft_socket_close(s));
    } else {
        badcx_einval(&weft_connect_host_future, &ch);
    }
    weft_connect_host_drop(&ch);
}

static void resolve_body(weft_context *cx, void *arg)
{
    struct rig *r = arg;
    weft_addrlist *list = NULL;
    weft_resolve rs;
    weft_connect_host ch;
    weft_socket *s = NULL;
    int res = 1;

    weft_resolve_init(&rs, NULL, "127.0.0.1", 80,
                      &(weft_resolve_options){ .flags = AI_NUMERICHOST }, &list);
    badcx_einval(&weft_resolve_future, &rs);
    ASSERT(list == NULL);
    if (weft_resolve_poll(&rs, cx, &res) == WEFT_READY) {
        ASSERT_OK(res);
    } else {
        badcx_einval(&weft_resolve_future, &rs);
    }
    weft_resolve_drop(&rs);
    weft_addrlist_free(list);

    weft_connect_host_init(&ch, r->rt, "127.0.0.1", 1, 0, &s);
    badcx_einval(&weft_connect_host_future, &ch);
    if (weft_connect_host_poll(&ch, cx, &res) == WEFT_PENDING)
        badcx_einval(&weft_connect_host_future, &ch);
    weft_connect_host_drop(&ch);
    if (s)
        weft_socket_close(s);
}

static void rig_run(void (*body)(weft_context *, void *))
{
    struct rig r;
    int sv[2];

    memset(&r, 0, sizeof(r));
    r.rt = nt_runtime(false);
    nt_listen(r.rt, &r.l, &r.addr, &r.len);
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    r.a = sv[0];
    r.b = sv[1];
    badcx_in_task(r.rt, body, &r);
    if (body != read_write_body) {
        close(r.a);
        close(r.b);
    }
    ASSERT_OK(weft_socket_close(r.l));
    weft_runtime_free(r.rt);
}

TEST(accept_polled_without_a_waker_is_einval_and_takes_nothing)
{
    rig_run(accept_body);
}

TEST(reads_and_writes_polled_without_a_waker_are_einval_and_move_nothing)
{
    rig_run(read_write_body);
}

TEST(udp_futures_polled_without_a_waker_are_einval)
{
    rig_run(udp_body);
}

TEST(connects_polled_without_a_waker_are_einval_and_connect_nothing)
{
    rig_run(connect_body);
}

TEST(resolves_polled_without_a_waker_are_einval_and_start_nothing)
{
    rig_run(resolve_body);
}

/* ---- 2: O_NONBLOCK of adopted sockets ----------------------------------------- */
static bool is_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    ASSERT(fl >= 0);
    return (fl & O_NONBLOCK) != 0;
}

TEST(a_blocking_socket_adopted_is_blocking_again_for_its_dups_after_close)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *s;
    int sv[2], dupfd;
    char c = 'x';

    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    dupfd = dup(sv[0]);
    ASSERT(dupfd >= 0);
    ASSERT(!is_nonblocking(dupfd));
    ASSERT_OK(weft_socket_adopt(rt, sv[0], &s));
    ASSERT(is_nonblocking(dupfd));                 /* shared: the header says so */
    ASSERT_OK(weft_socket_close(s));
    ASSERT(!is_nonblocking(dupfd));                /* given back as found */
    /* and the copy blocks again, as its owner expects */
    ASSERT_EQ(1, write(sv[1], &c, 1));
    ASSERT_EQ(1, read(dupfd, &c, 1));
    close(dupfd);
    close(sv[1]);
    weft_runtime_free(rt);
}

TEST(a_nonblocking_socket_adopted_stays_nonblocking_after_close)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *s;
    int sv[2], dupfd;

    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv));
    dupfd = dup(sv[0]);
    ASSERT(dupfd >= 0);
    ASSERT_OK(weft_socket_adopt(rt, sv[0], &s));
    ASSERT_OK(weft_socket_close(s));
    ASSERT(is_nonblocking(dupfd));
    close(dupfd);
    close(sv[1]);
    weft_runtime_free(rt);
}

TEST(a_failed_adopt_leaves_the_dups_of_a_blocking_socket_blocking)
{
    weft_runtime *rt = nt_runtime(false);
    weft_socket *s = NULL;
    int sv[2], dupfd, err = 0;

    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    dupfd = dup(sv[0]);
    ASSERT(dupfd >= 0);
    /* the first socket of a runtime makes its reactor: fail its first
     * allocation, and the adopt fails after it set O_NONBLOCK */
    for (size_t k = 1; k < 64; k++) {
        int fd = dup(dupfd);

        ASSERT(fd >= 0);
        harness_fail_alloc_at(k);
        err = weft_socket_adopt(rt, fd, &s);
        harness_fail_alloc_at(0);
        if (err == 0)
            break;
        ASSERT_EQ(-ENOMEM, err);
        ASSERT(!is_nonblocking(dupfd));             /* closed, and given back */
    }
    ASSERT_OK(err);
    ASSERT_OK(weft_socket_close(s));
    ASSERT(!is_nonblocking(dupfd));
    close(dupfd);
    close(sv[0]);
    close(sv[1]);
    weft_runtime_free(rt);
}

/* ---- 3: the budget of connects ------------------------------------------------ */
/* Connects (host: through connect_host) to a path that does not exist
 * until the flag is set, at most a million times; it spawns, from its own
 * worker before it starts, the task that sets the flag. Output: the rounds
 * looped, -1 (never set: the loop held the worker), -2 (a connect did not
 * fail as it should), -3 (no spawn). */
typedef struct retrier {
    weft_async co;
    bool host;
    weft_runtime *rt;
    weft_join **setter;
    atomic_int *flag;
    struct sockaddr_storage addr;
    socklen_t len;
    weft_addrinfo ai;
    weft_socket *s;
    unsigned i;
    int res;
    bool live, spawned;
    weft_connect c;
    weft_connect_host ch;
} retrier;

static weft_poll retrier_step(retrier *r, weft_context *cx)
{
    return r->host ? weft_connect_host_poll(&r->ch, cx, &r->res)
                   : weft_connect_poll(&r->c, cx, &r->res);
}

static void retrier_drop_one(retrier *r)
{
    if (!r->live)
        return;
    r->live = false;
    if (r->host)
        weft_connect_host_drop(&r->ch);
    else
        weft_io_op_drop(&r->c);
}

static weft_poll retrier_poll(retrier *r, weft_context *cx, void *out)
{
    WEFT_BEGIN(&r->co);
    r->spawned = weft_spawn(r->rt, &setflag_future, &(setflag){ .flag = r->flag },
                            r->setter) == 0;
    for (r->i = 0; r->spawned && r->i < 1000000u && !atomic_load(r->flag); r->i++) {
        if (r->host)
            weft_connect_addrs_init(&r->ch, r->rt, &r->ai, 1, 0, &r->s);
        else
            weft_connect_init(&r->c, r->rt, (struct sockaddr *)&r->addr, r->len, 0, &r->s);
        r->live = true;
        WEFT_AWAIT(&r->co, retrier_step(r, cx));
        retrier_drop_one(r);
        if (r->res != -ENOENT)
            break;
    }
    *(int *)out = !r->spawned ? -3 : r->res != -ENOENT ? -2 : atomic_load(r->flag) ? (int)r->i : -1;
    WEFT_END(&r->co);
}

static void retrier_drop(retrier *r)
{
    retrier_drop_one(r);
}

WEFT_DEFINE_FUTURE_STATIC(retrier, retrier_poll, retrier_drop, int);

static void connect_loop_yields(bool host)
{
    weft_runtime *rt = NULL;
    atomic_int flag = 0;
    weft_join *jl, *js = NULL;
    retrier init;
    int rounds = -9;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    memset(&init, 0, sizeof(init));
    init.host = host;
    init.rt = rt;
    init.setter = &js;
    init.flag = &flag;
    ASSERT_OK(weft_addr_unix("/nonexistent-weft-audit9/no.sock", &init.addr, &init.len));
    memcpy(&init.ai.addr, &init.addr, sizeof(init.addr));
    init.ai.len = init.len;
    ASSERT_OK(weft_spawn(rt, &retrier_future, &init, &jl));
    ASSERT_OK(weft_join_wait(jl, &rounds));
    ASSERT(js != NULL);
    ASSERT_OK(weft_join_wait(js, NULL));
    /* the setter ran while the loop still looped: about a budget's worth
     * of rounds (128), far from the million */
    if (rounds < 0 || rounds > 100000)
        harness_fail(__FILE__, __LINE__, "the loop ran %d rounds", rounds);
    weft_join_drop(jl);
    weft_join_drop(js);
    weft_runtime_free(rt);
}

TEST(connects_that_fail_at_once_spend_the_budget)
{
    connect_loop_yields(false);
}

TEST(connect_host_attempts_that_fail_at_once_spend_the_budget)
{
    connect_loop_yields(true);
}
