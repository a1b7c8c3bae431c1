// SPDX-License-Identifier: MIT
/* An audit of weft/adapters/hiredis.h's promises against a real
 * redis-server (started per test on a free port):
 *   - level 1 (weft_hiredis_attach): redisAsyncFree() from inside a reply
 *     callback with a pipeline pending: every other callback runs exactly
 *     once with NULL, the disconnect callback once, the adapter's record
 *     goes with the context (ASan: no leak), the loop is freed after;
 *     redisAsyncDisconnect() from a callback lets the pipeline finish;
 *   - level 2 (weft_redis): thousands of pipelined commands with the server
 *     killed mid-flight: each future completes exactly once (a reply or a
 *     connection error), replies in order; the next command after a
 *     restart reconnects; a server that stops answering (SIGSTOP) with a
 *     command timeout: every pending command -ETIMEDOUT, then it
 *     reconnects; QUIT; a Unix socket; free from another thread while a
 *     stalled pipeline is pending (-ECANCELED for each). */
#include "adapter_test.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "weft/adapters/hiredis.h"

WEFT_DEFINE_FUTURE_STATIC(weft_redis_command, weft_redis_command_poll, weft_redis_command_drop,
                          weft_redis_result);

static pid_t server_pid;
static int server_port;
static char server_sock[128];

static void server_start(int port, bool with_unix)
{
    char portbuf[16];
    char *argv[16] = { (char *)"redis-server", (char *)"--port", portbuf, (char *)"--bind",
                       (char *)"127.0.0.1", (char *)"--save", (char *)"", (char *)"--appendonly",
                       (char *)"no", (char *)"--daemonize", (char *)"no" };
    int n = 11;

    if (with_unix) {
        argv[n++] = (char *)"--unixsocket";
        argv[n++] = server_sock;
    }
    argv[n] = NULL;
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    server_pid = at_spawn(argv, true);
    if (!at_wait_port(port, AT_WAIT_MS))
        harness_fail(__FILE__, __LINE__, "redis-server did not start on port %d", port);
}

static void server_up(bool with_unix)
{
    if (!at_have_program("redis-server"))
        at_skip("redis-server not found (Debian: apt-get install redis-server)");
    server_port = at_free_port(SOCK_STREAM);
    snprintf(server_sock, sizeof(server_sock), "/tmp/weft-redis-audit4.%d.sock", (int)getpid());
    server_start(server_port, with_unix);
}

static void server_down(void)
{
    at_stop(server_pid);
    server_pid = 0;
    unlink(server_sock);
}

static weft_redis *client(weft_runtime *rt, uint64_t command_ms)
{
    weft_redis_options opt = { .host = "127.0.0.1", .port = server_port,
                               .command_timeout_ms = command_ms };
    weft_redis *r;

    ASSERT_OK(weft_redis_new(rt, &opt, &r));
    return r;
}

static weft_redis_result run_cmd(weft_runtime *rt, weft_redis *r, const char *cmd)
{
    weft_redis_command c;
    weft_redis_result res = { 1, NULL };

    weft_redis_command_init(&c, r, cmd);
    ASSERT_OK(weft_block_on(rt, &weft_redis_command_future, &c, &res));
    return res;
}

static bool conn_error(int e)
{
    return e == -ECONNRESET || e == -ECONNREFUSED || e == -EIO || e == -ECONNABORTED ||
           e == -EPIPE;
}

static void ping_until_ok(weft_runtime *rt, weft_redis *r)
{
    for (int tries = 0;; tries++) {
        weft_redis_result res = run_cmd(rt, r, "PING");

        if (res.result == 0) {
            ASSERT(res.reply != NULL && strcmp(res.reply->str, "PONG") == 0);
            freeReplyObject(res.reply);
            return;
        }
        if (!conn_error(res.result) && res.result != -ETIMEDOUT)
            harness_fail(__FILE__, __LINE__, "unexpected: %s", weft_strerror(res.result));
        ASSERT(tries < 50);
        at_sleep_ms(20);
    }
}

/* ---- level 1 -------------------------------------------------------------------------- */
enum { L1_N = 200 };
static weft_loop *l1_loop;
static atomic_int l1_ok, l1_null, l1_disc, l1_disc_status, l1_done;
static int l1_calls[L1_N];
static bool l1_free_in_cb;

static void l1_on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)ac;
    atomic_fetch_add(&l1_disc, 1);
    atomic_store(&l1_disc_status, status);
    atomic_store(&l1_done, 1);
}

static void l1_on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    int i = (int)(intptr_t)priv;

    l1_calls[i]++;                                    /* loop only: one callback at a time */
    if (reply == NULL) {
        atomic_fetch_add(&l1_null, 1);
        return;
    }
    ASSERT_EQ(REDIS_REPLY_STATUS, ((redisReply *)reply)->type);
    atomic_fetch_add(&l1_ok, 1);
    if (i == 0) {
        if (l1_free_in_cb)
            redisAsyncFree(ac);                       /* deferred until we return */
        else
            redisAsyncDisconnect(ac);                 /* after the pending replies */
    }
}

static void l1_start(weft_timer *t, void *arg)
{
    redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", server_port);

    (void)arg;
    weft_timer_free(t);
    ASSERT(ac != NULL && ac->err == 0);
    ASSERT_OK(weft_hiredis_attach(ac, l1_loop));
    redisAsyncSetDisconnectCallback(ac, l1_on_disconnect);
    for (int i = 0; i < L1_N; i++)
        ASSERT_EQ(REDIS_OK, redisAsyncCommand(ac, l1_on_reply, (void *)(intptr_t)i, "PING"));
}

static void l1_run(bool free_in_cb)
{
    weft_runtime *rt = at_runtime(2);
    weft_timer *t;
    uint64_t until;

    server_up(false);
    l1_free_in_cb = free_in_cb;
    memset(l1_calls, 0, sizeof(l1_calls));
    atomic_store(&l1_ok, 0);
    atomic_store(&l1_null, 0);
    atomic_store(&l1_disc, 0);
    atomic_store(&l1_done, 0);
    ASSERT_OK(weft_loop_new(rt, &l1_loop));
    ASSERT_OK(weft_timer_new(l1_loop, l1_start, NULL, &t));
    ASSERT_OK(weft_timer_arm(t, 0));
    until = weft_now_ms() + AT_WAIT_MS;
    while (!atomic_load(&l1_done)) {
        ASSERT(weft_now_ms() < until);
        at_sleep_ms(1);
    }
    weft_loop_free(l1_loop);                          /* waits for the running callback */
    for (int i = 0; i < L1_N; i++)
        ASSERT_EQ(1, l1_calls[i]);
    ASSERT_EQ(1, atomic_load(&l1_disc));
    ASSERT_EQ(REDIS_OK, atomic_load(&l1_disc_status));
    if (free_in_cb) {
        ASSERT(atomic_load(&l1_ok) >= 1);
        ASSERT_EQ(L1_N, atomic_load(&l1_ok) + atomic_load(&l1_null));
    } else {
        ASSERT_EQ(L1_N, atomic_load(&l1_ok));
    }
    weft_runtime_free(rt);
    server_down();
}

TEST(level1_free_inside_a_reply_callback)
{
    l1_run(true);
}

TEST(level1_disconnect_inside_a_reply_callback)
{
    l1_run(false);
}

/* ---- level 2 ------------------------------------------------------------------------------ */
/* INCR pipelined from one thread; the server is killed after some replies;
 * every future completes once, the replies that came are 1, 2, 3, ... in
 * order with no gap, the rest are connection errors; after a restart on
 * the same port the client reconnects. */
TEST(pipeline_server_killed_mid_flight)
{
    int n = harness_scale(20000);
    weft_runtime *rt = at_runtime(2);
    weft_redis_command *c = calloc((size_t)n, sizeof(*c));
    weft_redis *r;
    long long expect = 1;
    int errors = 0;
    bool failed = false;

    ASSERT(c != NULL);
    server_up(false);
    r = client(rt, 0);
    ping_until_ok(rt, r);
    for (int i = 0; i < n; i++) {
        weft_redis_result res = { 1, NULL };

        if (i == 0 || i == n / 10) {
            /* the first tenth is answered; the rest meets a stopped server,
             * which is then killed with all of it in flight */
            if (i == n / 10)
                kill(server_pid, SIGSTOP);
            for (int k = i; k < (i == 0 ? n / 10 : n); k++)
                weft_redis_command_init(&c[k], r, "INCR k");
            if (i == n / 10) {
                at_sleep_ms(50);
                kill(server_pid, SIGKILL);
            }
        }
        ASSERT_OK(weft_block_on(rt, &weft_redis_command_future, &c[i], &res));
        if (res.result == 0) {
            ASSERT(!failed);                          /* no reply after the first error */
            ASSERT(i < n / 10);
            ASSERT_EQ(REDIS_REPLY_INTEGER, res.reply->type);
            ASSERT_EQ(expect, res.reply->integer);
            expect++;
            freeReplyObject(res.reply);
        } else {
            if (!conn_error(res.result))
                harness_fail(__FILE__, __LINE__, "command %d: %s", i, weft_strerror(res.result));
            ASSERT(res.reply == NULL);
            failed = true;
            errors++;
        }
    }
    ASSERT_EQ(n / 10 + 1, expect);
    ASSERT_EQ(n - n / 10, errors);
    waitpid(server_pid, NULL, 0);
    server_start(server_port, false);
    ping_until_ok(rt, r);
    weft_redis_free(r);
    weft_runtime_free(rt);
    free(c);
    server_down();
    printf("%lld replies, then %d connection errors\n", expect - 1, errors);
}

/* The server stops answering (SIGSTOP) with a pipeline outstanding: the
 * command timeout closes the connection and every pending command fails
 * with -ETIMEDOUT, exactly once; once it runs again, the client
 * reconnects. */
TEST(stalled_server_command_timeout_then_reconnect)
{
    enum { N = 500 };
    weft_runtime *rt = at_runtime(2);
    weft_redis_command c[N];
    weft_redis *r;

    server_up(false);
    r = client(rt, 300);
    ping_until_ok(rt, r);
    kill(server_pid, SIGSTOP);
    for (int i = 0; i < N; i++)
        weft_redis_command_init(&c[i], r, "PING");
    for (int i = 0; i < N; i++) {
        weft_redis_result res = { 1, NULL };

        ASSERT_OK(weft_block_on(rt, &weft_redis_command_future, &c[i], &res));
        ASSERT_EQ(-ETIMEDOUT, res.result);
        ASSERT(res.reply == NULL);
    }
    kill(server_pid, SIGCONT);
    ping_until_ok(rt, r);
    weft_redis_free(r);
    weft_runtime_free(rt);
    server_down();
}

/* QUIT: +OK, the server closes; the next command reconnects. */
TEST(quit_then_reconnect)
{
    weft_runtime *rt = at_runtime(2);
    weft_redis *r;
    weft_redis_result res;

    server_up(false);
    r = client(rt, 0);
    ping_until_ok(rt, r);
    res = run_cmd(rt, r, "QUIT");
    ASSERT_OK(res.result);
    ASSERT(res.reply != NULL && strcmp(res.reply->str, "OK") == 0);
    freeReplyObject(res.reply);
    ping_until_ok(rt, r);
    ASSERT(weft_redis_connects(r) >= 2);
    weft_redis_free(r);
    weft_runtime_free(rt);
    server_down();
}

/* A Unix socket (unix_path), and a path where nothing listens. */
TEST(unix_socket)
{
    weft_runtime *rt = at_runtime(2);
    weft_redis_options opt = { .unix_path = server_sock };
    weft_redis_options none = { .unix_path = "/nonexistent/weft-audit4.sock" };
    weft_redis *r;
    weft_redis_result res;
    char err[128];

    server_up(true);
    for (int i = 0; i < 2000 && access(server_sock, F_OK) != 0; i++)
        at_sleep_ms(10);
    ASSERT_OK(weft_redis_new(rt, &opt, &r));
    ping_until_ok(rt, r);
    weft_redis_free(r);
    ASSERT_OK(weft_redis_new(rt, &none, &r));
    res = run_cmd(rt, r, "PING");
    ASSERT(res.result < 0);
    ASSERT(res.reply == NULL);
    weft_redis_last_error(r, err, sizeof(err));
    ASSERT(err[0] != '\0');
    weft_redis_free(r);
    weft_runtime_free(rt);
    server_down();
}

/* Free from another thread while a pipeline waits on a stopped server:
 * each future then completes with -ECANCELED, polled after the free. */
static void *free_thread(void *p)
{
    weft_redis_free((weft_redis *)p);
    return NULL;
}

TEST(free_from_a_thread_with_a_stalled_pipeline)
{
    enum { N = 300 };
    weft_runtime *rt = at_runtime(2);
    weft_redis_command c[N];
    weft_redis *r;
    pthread_t th;
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);

    server_up(false);
    r = client(rt, 0);
    ping_until_ok(rt, r);
    kill(server_pid, SIGSTOP);
    for (int i = 0; i < N; i++)
        weft_redis_command_init(&c[i], r, "SET key%d %d", i, i);
    at_sleep_ms(50);
    ASSERT_EQ(0, pthread_create(&th, NULL, free_thread, r));
    pthread_join(th, NULL);
    for (int i = 0; i < N; i++) {
        weft_redis_result res = { 1, NULL };

        ASSERT_EQ(WEFT_READY, weft_redis_command_poll(&c[i], &cx, &res));
        ASSERT_EQ(-ECANCELED, res.result);
        weft_redis_command_drop(&c[i]);
    }
    kill(server_pid, SIGCONT);
    weft_runtime_free(rt);
    server_down();
}

/* weft_redis_co_command() outside a coroutine is -EINVAL, and a misuse
 * changes nothing: the command must not reach the server. */
TEST(co_command_outside_a_coroutine_sends_nothing)
{
    weft_runtime *rt = at_runtime(2);
    weft_redis *r;
    redisReply *rep = (redisReply *)1;
    weft_redis_result res;

    server_up(false);
    r = client(rt, 0);
    ping_until_ok(rt, r);
    ASSERT_EQ(-EINVAL, weft_redis_co_command(r, &rep, "SET audit4 %s", "sent"));
    ASSERT(rep == NULL);
    res = run_cmd(rt, r, "GET audit4");               /* after it, on the same connection */
    ASSERT_OK(res.result);
    ASSERT_EQ(REDIS_REPLY_NIL, res.reply->type);
    freeReplyObject(res.reply);
    weft_redis_free(r);
    weft_runtime_free(rt);
    server_down();
}

/* A coroutine aborted before it calls weft_redis_co_command(): -ECANCELED
 * (coro.h: every blocking call of an aborted coroutine), and the command
 * is not sent. */
static atomic_int aborted_ready, aborted_result;

static int co_aborted_set(void *arg)
{
    redisReply *rep = NULL;

    atomic_store(&aborted_ready, 1);
    while (weft_co_sleep(5) == 0)
        ;                                             /* until aborted */
    atomic_store(&aborted_result,
                 weft_redis_co_command((weft_redis *)arg, &rep, "SET audit4b %s", "sent"));
    return 0;
}

TEST(co_command_after_abort_sends_nothing)
{
    weft_runtime *rt = at_runtime(2);
    weft_redis *r;
    weft_redis_result res;
    weft_join *j;
    int out = 0;

    server_up(false);
    r = client(rt, 0);
    ping_until_ok(rt, r);
    atomic_store(&aborted_ready, 0);
    ASSERT_OK(weft_go(rt, co_aborted_set, r, &j));
    while (!atomic_load(&aborted_ready))
        at_sleep_ms(1);
    atomic_store(&aborted_result, 1);
    weft_join_abort(j);
    (void)weft_join_wait(j, &out);                    /* -ECANCELED: it was aborted */
    weft_join_drop(j);
    ASSERT_EQ(-ECANCELED, atomic_load(&aborted_result));
    res = run_cmd(rt, r, "GET audit4b");
    ASSERT_OK(res.result);
    ASSERT_EQ(REDIS_REPLY_NIL, res.reply->type);
    freeReplyObject(res.reply);
    weft_redis_free(r);
    weft_runtime_free(rt);
    server_down();
}

/* Bad input is a clear -EINVAL, never a crash: a NULL argument in the argv
 * form (with and without lengths). Needs no server. */
TEST(argv_with_a_null_argument)
{
    weft_runtime *rt = at_runtime(1);
    weft_redis *r;
    weft_redis_command c;
    weft_redis_result res = { 1, NULL };
    const char *argv[] = { "SET", NULL, "v" };
    const size_t lens[] = { 3, 1, 1 };

    ASSERT_OK(weft_redis_new(rt, NULL, &r));
    weft_redis_command_init_argv(&c, r, 3, argv, NULL);
    ASSERT_OK(weft_block_on(rt, &weft_redis_command_future, &c, &res));
    ASSERT_EQ(-EINVAL, res.result);
    weft_redis_command_init_argv(&c, r, 3, argv, lens);
    ASSERT_OK(weft_block_on(rt, &weft_redis_command_future, &c, &res));
    ASSERT_EQ(-EINVAL, res.result);
    ASSERT_EQ(0, (long long)weft_redis_connects(r));   /* nothing was sent */
    weft_redis_free(r);
    weft_runtime_free(rt);
}
