/* SPDX-License-Identifier: MIT */
/* weft/adapters/hiredis.h against a real redis-server, started by each test
 * on a free loopback port (and killed with it): thousands of commands from
 * hundreds of tasks and coroutines with every reply checked, pipelining
 * order, CLIENT KILL and a server restart mid-run (failures reported, the
 * client reconnects), command and connect timeouts, freeing the client from
 * a thread, from a task and after the runtime, the bare attach API (a
 * refused connect, which hiredis frees without a disconnect callback), and
 * bad arguments. Skips (exit 77) when redis-server is not installed, fails
 * then under WEFT_REQUIRE_ADAPTERS=1. */
#include "adapter_test.h"

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "weft/adapters/hiredis.h"

WEFT_DEFINE_FUTURE_STATIC(weft_redis_command, weft_redis_command_poll, weft_redis_command_drop,
                          weft_redis_result);

static pid_t server_pid;
static int server_port;

static void server_start(int port)
{
    char portbuf[16];
    char *argv[] = { (char *)"redis-server", (char *)"--port", portbuf, (char *)"--bind",
                     (char *)"127.0.0.1", (char *)"--save", (char *)"", (char *)"--appendonly",
                     (char *)"no", (char *)"--daemonize", (char *)"no", NULL };

    snprintf(portbuf, sizeof(portbuf), "%d", port);
    server_pid = at_spawn(argv, true);
    if (!at_wait_port(port, AT_WAIT_MS))
        harness_fail(__FILE__, __LINE__, "redis-server did not start on port %d", port);
}

static void server_up(void)
{
    if (!at_have_program("redis-server"))
        at_skip("redis-server not found (Debian: apt-get install redis-server)");
    server_port = at_free_port(SOCK_STREAM);
    server_start(server_port);
}

static void server_down(void)
{
    at_stop(server_pid);
    server_pid = 0;
}

/* A blocking connection of the test's own (hiredis's sync API). */
static redisContext *sync_conn(void)
{
    redisContext *c = redisConnect("127.0.0.1", server_port);

    ASSERT(c != NULL && c->err == 0);
    return c;
}

static long long sync_int(redisContext *c, const char *cmd)
{
    redisReply *rep = (redisReply *)redisCommand(c, cmd);
    long long v;

    ASSERT(rep != NULL);
    ASSERT_EQ(REDIS_REPLY_INTEGER, rep->type);
    v = rep->integer;
    freeReplyObject(rep);
    return v;
}

static weft_redis *client(weft_runtime *rt, int port, uint64_t connect_ms, uint64_t command_ms)
{
    weft_redis_options opt = { .host = "127.0.0.1", .port = port,
                               .connect_timeout_ms = connect_ms,
                               .command_timeout_ms = command_ms };
    weft_redis *r;

    ASSERT_OK(weft_redis_new(rt, &opt, &r));
    return r;
}

/* One command from the main thread: init here, await with block_on. */
static weft_redis_result run_cmd(weft_runtime *rt, weft_redis *r, const char *fmt, ...)
{
    weft_redis_command c;
    weft_redis_result res = { 1, NULL };
    va_list ap;

    va_start(ap, fmt);
    weft_redis_command_initv(&c, r, fmt, ap);
    va_end(ap);
    ASSERT_OK(weft_block_on(rt, &weft_redis_command_future, &c, &res));
    return res;
}

static void expect_status(weft_redis_result res, const char *want)
{
    if (res.result != 0)
        harness_fail(__FILE__, __LINE__, "command failed: %s", weft_strerror(res.result));
    ASSERT(res.reply != NULL);
    ASSERT(res.reply->type == REDIS_REPLY_STATUS || res.reply->type == REDIS_REPLY_STRING);
    ASSERT(strcmp(res.reply->str, want) == 0);
    freeReplyObject(res.reply);
}

/* A connection error a command may report when the server goes. */
static bool conn_error(int e)
{
    return e == -ECONNRESET || e == -ECONNREFUSED || e == -EIO || e == -ECONNABORTED ||
           e == -EPIPE;
}

/* PING until it succeeds: the first may still meet a connection the
 * server closed, whose end the client has not read yet. */
static void ping_until_ok(weft_runtime *rt, weft_redis *r)
{
    for (int tries = 0;; tries++) {
        weft_redis_result res = run_cmd(rt, r, "PING");

        if (res.result == 0) {
            expect_status(res, "PONG");
            return;
        }
        if (!conn_error(res.result))
            harness_fail(__FILE__, __LINE__, "unexpected: %s", weft_strerror(res.result));
        ASSERT(tries < 5);
    }
}

/* ---- many tasks, every reply checked ------------------------------------------------- */
typedef struct worker {
    weft_async co;
    weft_redis *r;
    unsigned id, i, n;
    weft_redis_command cmd;
    weft_redis_result res;
} worker;

static atomic_int replies_ok;

static void check_reply(weft_redis_result *res, int type, const char *str)
{
    if (res->result != 0)
        harness_fail(__FILE__, __LINE__, "command failed: %s", weft_strerror(res->result));
    ASSERT(res->reply != NULL);
    ASSERT_EQ(type, res->reply->type);
    if (str != NULL)
        ASSERT(res->reply->len == strlen(str) && memcmp(res->reply->str, str, res->reply->len) == 0);
    freeReplyObject(res->reply);
    res->reply = NULL;
    atomic_fetch_add(&replies_ok, 1);
}

static weft_poll worker_poll(worker *w, weft_context *cx, int *out)
{
    char want[64];

    WEFT_BEGIN(&w->co);
    for (w->i = 0; w->i < w->n; w->i++) {
        weft_redis_command_init(&w->cmd, w->r, "SET k:%u:%u v:%u:%u", w->id, w->i, w->id, w->i);
        WEFT_AWAIT(&w->co, weft_redis_command_poll(&w->cmd, cx, &w->res));
        check_reply(&w->res, REDIS_REPLY_STATUS, "OK");
        weft_redis_command_init(&w->cmd, w->r, "GET k:%u:%u", w->id, w->i);
        WEFT_AWAIT(&w->co, weft_redis_command_poll(&w->cmd, cx, &w->res));
        snprintf(want, sizeof(want), "v:%u:%u", w->id, w->i);
        check_reply(&w->res, REDIS_REPLY_STRING, want);
        weft_redis_command_init(&w->cmd, w->r, "INCR counter");
        WEFT_AWAIT(&w->co, weft_redis_command_poll(&w->cmd, cx, &w->res));
        check_reply(&w->res, REDIS_REPLY_INTEGER, NULL);
    }
    *out = 0;
    WEFT_END(&w->co);
}

static void worker_drop(worker *w)
{
    weft_redis_command_drop(&w->cmd);
}

WEFT_DEFINE_FUTURE_STATIC(worker, worker_poll, worker_drop, int);

struct co_arg {
    weft_redis *r;
    unsigned id, n;
};

static int co_worker(void *p)
{
    struct co_arg *a = (struct co_arg *)p;
    redisReply *rep;
    char want[64];

    for (unsigned i = 0; i < a->n; i++) {
        ASSERT_OK(weft_redis_co_command(a->r, &rep, "SET c:%u:%u %u", a->id, i, i * 7));
        freeReplyObject(rep);
        ASSERT_OK(weft_redis_co_command(a->r, &rep, "GET c:%u:%u", a->id, i));
        snprintf(want, sizeof(want), "%u", i * 7);
        ASSERT(rep->type == REDIS_REPLY_STRING && strcmp(rep->str, want) == 0);
        freeReplyObject(rep);
        ASSERT_OK(weft_redis_co_command(a->r, &rep, "INCR counter"));
        ASSERT_EQ(REDIS_REPLY_INTEGER, rep->type);
        freeReplyObject(rep);
        atomic_fetch_add(&replies_ok, 3);
    }
    return 0;
}

TEST(many_tasks_every_reply_checked)
{
    unsigned tasks = (unsigned)harness_scale(200), cos = (unsigned)harness_scale(100), n = 10;
    weft_runtime *rt = at_runtime(2);
    weft_redis *r;
    weft_join **joins;
    struct co_arg *args;
    redisContext *sc;
    uint64_t t0;
    int out;

    server_up();
    r = client(rt, server_port, 5000, 0);
    joins = (weft_join **)calloc(tasks + cos, sizeof(*joins));
    args = (struct co_arg *)calloc(cos, sizeof(*args));
    ASSERT(joins != NULL && args != NULL);
    atomic_store(&replies_ok, 0);
    t0 = harness_now_ns();
    for (unsigned i = 0; i < tasks; i++)
        ASSERT_OK(weft_spawn(rt, &worker_future, &(worker){ .r = r, .id = i, .n = n }, &joins[i]));
    for (unsigned i = 0; i < cos; i++) {
        args[i] = (struct co_arg){ r, i, n };
        ASSERT_OK(weft_go(rt, co_worker, &args[i], &joins[tasks + i]));
    }
    for (unsigned i = 0; i < tasks + cos; i++) {
        ASSERT_OK(weft_join_wait(joins[i], &out));
        ASSERT_EQ(0, out);
        weft_join_drop(joins[i]);
    }
    ASSERT_EQ((int)((tasks + cos) * n * 3), atomic_load(&replies_ok));
    printf("%d commands from %u tasks and %u coroutines in %.1f ms\n", atomic_load(&replies_ok),
           tasks, cos, (double)(harness_now_ns() - t0) / 1e6);
    sc = sync_conn();
    ASSERT_EQ((long long)(tasks + cos) * n, sync_int(sc, "INCRBY counter 0"));
    redisFree(sc);
    ASSERT_EQ(1, (long long)weft_redis_connects(r));   /* one connection did it all */
    weft_redis_free(r);
    weft_runtime_free(rt);
    free(joins);
    free(args);
    server_down();
}

/* Commands initialised together go out in init order on one connection. */
TEST(pipeline_keeps_order)
{
    enum { N = 64 };
    weft_runtime *rt = at_runtime(2);
    weft_redis *r;
    static weft_redis_command cmds[N];
    weft_redis_result res;

    server_up();
    r = client(rt, server_port, 0, 0);
    for (int i = 0; i < N; i++)
        weft_redis_command_init(&cmds[i], r, "RPUSH order %d", i);
    for (int i = 0; i < N; i++) {
        ASSERT_OK(weft_block_on(rt, &weft_redis_command_future, &cmds[i], &res));
        ASSERT_OK(res.result);
        ASSERT_EQ(REDIS_REPLY_INTEGER, res.reply->type);
        ASSERT_EQ(i + 1, res.reply->integer);   /* the list grew in init order */
        freeReplyObject(res.reply);
    }
    /* binary-safe argv form, and an error reply is a result */
    {
        const char *argv[] = { "SET", "bin", "a\0b" };
        size_t lens[] = { 3, 3, 3 };
        weft_redis_command c;

        weft_redis_command_init_argv(&c, r, 3, argv, lens);
        ASSERT_OK(weft_block_on(rt, &weft_redis_command_future, &c, &res));
        expect_status(res, "OK");
        res = run_cmd(rt, r, "GET bin");
        ASSERT_OK(res.result);
        ASSERT_EQ(3, (long long)res.reply->len);
        ASSERT(memcmp(res.reply->str, "a\0b", 3) == 0);
        freeReplyObject(res.reply);
        res = run_cmd(rt, r, "NOSUCHCOMMAND");
        ASSERT_OK(res.result);
        ASSERT_EQ(REDIS_REPLY_ERROR, res.reply->type);
        freeReplyObject(res.reply);
        res = run_cmd(rt, r, "LRANGE order 0 -1");
        ASSERT_OK(res.result);
        ASSERT_EQ(REDIS_REPLY_ARRAY, res.reply->type);
        ASSERT_EQ(N, (long long)res.reply->elements);
        ASSERT(strcmp(res.reply->element[N - 1]->str, "63") == 0);
        freeReplyObject(res.reply);
    }
    weft_redis_free(r);
    weft_runtime_free(rt);
    server_down();
}

/* ---- the server kills the connection ------------------------------------------------- */
TEST(client_kill_reports_and_reconnects)
{
    weft_runtime *rt = at_runtime(2);
    weft_redis *r;
    redisContext *sc;
    weft_redis_result res;

    server_up();
    r = client(rt, server_port, 5000, 0);
    sc = sync_conn();
    for (int k = 0; k < 3; k++) {
        int tries = 0;

        expect_status(run_cmd(rt, r, "PING"), "PONG");
        ASSERT_EQ((long long)k + 1, (long long)weft_redis_connects(r));
        ASSERT(sync_int(sc, "CLIENT KILL TYPE normal SKIPME yes") >= 1);
        /* the next command fails (the connection is dead) or, if the EOF
         * was seen first, reconnects; within a few it succeeds */
        for (;;) {
            res = run_cmd(rt, r, "PING");
            if (res.result == 0)
                break;
            if (!conn_error(res.result))
                harness_fail(__FILE__, __LINE__, "unexpected: %s", weft_strerror(res.result));
            ASSERT(++tries < 5);
        }
        expect_status(res, "PONG");
        ASSERT_EQ((long long)k + 2, (long long)weft_redis_connects(r));
    }
    redisFree(sc);
    weft_redis_free(r);
    weft_runtime_free(rt);
    server_down();
}

/* Kills while hundreds of commands are in flight: each one succeeds with
 * the right reply or reports a connection error; nothing hangs. */
static atomic_int hammer_stop, hammer_fail, hammer_ok;

static int co_hammer(void *p)
{
    struct co_arg *a = (struct co_arg *)p;
    char want[32];

    for (unsigned i = 0; !atomic_load(&hammer_stop) || i < 2; i++) {
        redisReply *rep = NULL;
        int e = weft_redis_co_command(a->r, &rep, "ECHO %u-%u", a->id, i);

        if (e == 0) {
            snprintf(want, sizeof(want), "%u-%u", a->id, i);
            ASSERT(rep->type == REDIS_REPLY_STRING && strcmp(rep->str, want) == 0);
            freeReplyObject(rep);
            atomic_fetch_add(&hammer_ok, 1);
        } else {
            ASSERT(rep == NULL);
            if (!conn_error(e))
                harness_fail(__FILE__, __LINE__, "unexpected: %s", weft_strerror(e));
            atomic_fetch_add(&hammer_fail, 1);
        }
    }
    return 0;
}

TEST(client_kill_under_load)
{
    unsigned n = (unsigned)harness_scale(100);
    weft_runtime *rt = at_runtime(2);
    weft_redis *r;
    weft_join **joins = (weft_join **)calloc(n, sizeof(*joins));
    struct co_arg *args = (struct co_arg *)calloc(n, sizeof(*args));
    redisContext *sc;
    long long killed = 0;
    int out;

    ASSERT(joins != NULL && args != NULL);
    server_up();
    r = client(rt, server_port, 5000, 0);
    sc = sync_conn();
    atomic_store(&hammer_stop, 0);
    for (unsigned i = 0; i < n; i++) {
        args[i] = (struct co_arg){ r, i, 0 };
        ASSERT_OK(weft_go(rt, co_hammer, &args[i], &joins[i]));
    }
    for (int k = 0; k < 5; k++) {
        int before = atomic_load(&hammer_ok);
        uint64_t until = weft_now_ms() + AT_WAIT_MS;

        long long k1;

        while (atomic_load(&hammer_ok) < before + 50)   /* traffic is flowing again */
            { ASSERT(weft_now_ms() < until); at_sleep_ms(1); }
        /* 0 killed: the replies counted came from the connection killed
         * last time, whose end the client has not read yet; try again */
        while ((k1 = sync_int(sc, "CLIENT KILL TYPE normal SKIPME yes")) == 0)
            { ASSERT(weft_now_ms() < until); at_sleep_ms(1); }
        killed += k1;
    }
    atomic_store(&hammer_stop, 1);
    for (unsigned i = 0; i < n; i++) {
        ASSERT_OK(weft_join_wait(joins[i], &out));
        weft_join_drop(joins[i]);
    }
    ASSERT(killed >= 5);
    ping_until_ok(rt, r);
    ASSERT(weft_redis_connects(r) >= 6);              /* reconnected after each kill */
    printf("ok %d, failed %d, connects %lu\n", atomic_load(&hammer_ok),
           atomic_load(&hammer_fail), weft_redis_connects(r));
    redisFree(sc);
    weft_redis_free(r);
    weft_runtime_free(rt);
    free(joins);
    free(args);
    server_down();
}

/* The server dies (SIGKILL) and comes back on the same port. */
TEST(server_restart)
{
    weft_runtime *rt = at_runtime(2);
    weft_redis *r;
    weft_redis_result res;
    int failures = 0;
    uint64_t until;

    server_up();
    r = client(rt, server_port, 5000, 0);
    expect_status(run_cmd(rt, r, "SET before restart"), "OK");
    server_down();
    for (int i = 0; i < 3; i++) {                     /* down: each command fails */
        res = run_cmd(rt, r, "PING");
        ASSERT(res.reply == NULL);
        if (!conn_error(res.result))
            harness_fail(__FILE__, __LINE__, "unexpected: %s", weft_strerror(res.result));
        failures++;
    }
    res = run_cmd(rt, r, "PING");
    ASSERT_EQ(-ECONNREFUSED, res.result);             /* nobody listens any more */
    {
        char why[128];

        weft_redis_last_error(r, why, sizeof(why));
        ASSERT(why[0] != '\0');
    }
    server_start(server_port);
    until = weft_now_ms() + AT_WAIT_MS;
    for (;;) {
        res = run_cmd(rt, r, "GET before");
        if (res.result == 0)
            break;
        ASSERT(conn_error(res.result) && weft_now_ms() < until);
        at_sleep_ms(10);
    }
    ASSERT_EQ(REDIS_REPLY_NIL, res.reply->type);      /* a new, empty server */
    freeReplyObject(res.reply);
    ASSERT_EQ(3, failures);
    weft_redis_free(r);
    weft_runtime_free(rt);
    server_down();
}

/* No server at all: a clear error, every time, nothing kept. */
TEST(refused)
{
    weft_runtime *rt = at_runtime(1);
    weft_redis *r = client(rt, at_free_port(SOCK_STREAM), 0, 0);

    for (int i = 0; i < 3; i++) {
        weft_redis_result res = run_cmd(rt, r, "PING");

        ASSERT_EQ(-ECONNREFUSED, res.result);
        ASSERT(res.reply == NULL);
    }
    ASSERT_EQ(3, (long long)weft_redis_connects(r));
    weft_redis_free(r);
    weft_runtime_free(rt);
}

/* ---- timeouts ------------------------------------------------------------------------- */
TEST(command_timeout)
{
    weft_runtime *rt = at_runtime(2);
    weft_redis *r;
    weft_redis_result res;
    uint64_t t0;

    server_up();
    r = client(rt, server_port, 0, 300);
    expect_status(run_cmd(rt, r, "PING"), "PONG");
    t0 = weft_now_ms();
    res = run_cmd(rt, r, "BLPOP nothing 0");          /* blocks for ever */
    ASSERT_EQ(-ETIMEDOUT, res.result);
    ASSERT(weft_now_ms() - t0 >= 300);                /* never early */
    expect_status(run_cmd(rt, r, "PING"), "PONG");    /* a new connection */
    ASSERT_EQ(2, (long long)weft_redis_connects(r));
    weft_redis_free(r);
    weft_runtime_free(rt);
    server_down();
}

/* A server that accepts and never answers. */
TEST(silent_server_times_out)
{
    weft_runtime *rt = at_runtime(1);
    int port, lfd = at_silent_listener(&port, 16);
    weft_redis *r = client(rt, port, 0, 200);
    weft_redis_result res = run_cmd(rt, r, "PING");

    ASSERT_EQ(-ETIMEDOUT, res.result);
    weft_redis_free(r);
    weft_runtime_free(rt);
    close(lfd);
}

/* hiredis's write(2) to a connection whose peer is gone raises SIGPIPE,
 * which kills the process at its default action; the adapter's write
 * handler keeps it off (weft__hiredis_write). Made certain, not timed: a
 * Unix socket whose peer has closed makes the very next write fail with
 * EPIPE and raise SIGPIPE, and the handler is called directly (through a
 * readiness callback a read would see the end of file first). */
static int closer_fd;
static volatile int closer_done;

static void *closer_main(void *arg)
{
    int c = accept(closer_fd, NULL, NULL);

    (void)arg;
    if (c >= 0)
        close(c);
    closer_done = 1;
    return NULL;
}

TEST(write_to_a_closed_connection_raises_no_sigpipe)
{
    char path[] = "/tmp/weft-hiredis-XXXXXX";
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    redisAsyncContext *ac;
    pthread_t th;
    int tmp = mkstemp(path);

    ASSERT(tmp >= 0);
    close(tmp);
    unlink(path);
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    closer_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(closer_fd >= 0);
    ASSERT_EQ(0, bind(closer_fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_EQ(0, listen(closer_fd, 4));
    signal(SIGPIPE, SIG_DFL);         /* as a program that never touched it */
    ASSERT_EQ(0, pthread_create(&th, NULL, closer_main, NULL));
    ac = redisAsyncConnectUnix(path);
    ASSERT(ac != NULL && ac->err == 0);
    pthread_join(th, NULL);           /* accepted and closed */
    ASSERT(closer_done);
    ASSERT_EQ(REDIS_OK, redisAsyncCommand(ac, NULL, NULL, "SET k v"));
    weft__hiredis_write(ac);          /* EPIPE: hiredis frees ac; we live on */
    close(closer_fd);
    unlink(path);
}

/* The accept queue is full, so the SYN goes unanswered: the connect
 * timeout ends it. */
TEST(connect_timeout)
{
    weft_runtime *rt = at_runtime(1);
    int port, lfd = at_silent_listener(&port, 0), fill[4];
    struct sockaddr_in a = { .sin_family = AF_INET };
    weft_redis *r;
    weft_redis_result res;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    for (int i = 0; i < 4; i++) {                     /* fill the backlog */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    at_sleep_ms(50);
    r = client(rt, port, 300, 0);
    res = run_cmd(rt, r, "PING");
    ASSERT_EQ(-ETIMEDOUT, res.result);
    weft_redis_free(r);
    weft_runtime_free(rt);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

/* ---- teardown ------------------------------------------------------------------------- */
typedef struct blocker {
    weft_async co;
    weft_redis_command cmd;
    weft_redis_result res;
    weft_redis *r;
} blocker;

static atomic_int blockers_parked;

static weft_poll blocker_poll(blocker *b, weft_context *cx, int *out)
{
    WEFT_BEGIN(&b->co);
    weft_redis_command_init(&b->cmd, b->r, "BLPOP nothing 0");
    atomic_fetch_add(&blockers_parked, 1);
    WEFT_AWAIT(&b->co, weft_redis_command_poll(&b->cmd, cx, &b->res));
    ASSERT(b->res.reply == NULL);
    *out = b->res.result;
    WEFT_END(&b->co);
}

static void blocker_drop(blocker *b)
{
    weft_redis_command_drop(&b->cmd);
}

WEFT_DEFINE_FUTURE_STATIC(blocker, blocker_poll, blocker_drop, int);

static void *free_thread(void *p)
{
    weft_redis_free((weft_redis *)p);
    return NULL;
}

TEST(free_from_a_thread_cancels_pending)
{
    enum { N = 20 };
    weft_runtime *rt = at_runtime(2);
    weft_redis *r;
    weft_join *j[N];
    pthread_t th;
    int out;

    server_up();
    r = client(rt, server_port, 0, 0);
    atomic_store(&blockers_parked, 0);
    for (int i = 0; i < N; i++)
        ASSERT_OK(weft_spawn(rt, &blocker_future, &(blocker){ .r = r }, &j[i]));
    while (atomic_load(&blockers_parked) < N)
        at_sleep_ms(1);
    at_sleep_ms(50);                                  /* let them reach the server */
    ASSERT_EQ(0, pthread_create(&th, NULL, free_thread, r));
    for (int i = 0; i < N; i++) {
        ASSERT_OK(weft_join_wait(j[i], &out));
        ASSERT_EQ(-ECANCELED, out);
        weft_join_drop(j[i]);
    }
    pthread_join(th, NULL);
    weft_runtime_free(rt);
    server_down();
}

/* A task frees the client its sibling is waiting on. */
typedef struct freer {
    weft_async co;
    weft_redis *r;
    weft_sleep s;
} freer;

static weft_poll freer_poll(freer *f, weft_context *cx, int *out)
{
    WEFT_BEGIN(&f->co);
    weft_sleep_init(&f->s, 50);
    WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
    weft_redis_free(f->r);
    *out = 0;
    WEFT_END(&f->co);
}

static void freer_drop(freer *f)
{
    weft_sleep_drop(&f->s);
}

WEFT_DEFINE_FUTURE_STATIC(freer, freer_poll, freer_drop, int);

TEST(free_from_a_task)
{
    weft_runtime *rt = at_runtime(1);
    weft_redis *r;
    weft_join *jb, *jf;
    int out;

    server_up();
    r = client(rt, server_port, 0, 0);
    ASSERT_OK(weft_spawn(rt, &blocker_future, &(blocker){ .r = r }, &jb));
    ASSERT_OK(weft_spawn(rt, &freer_future, &(freer){ .r = r }, &jf));
    ASSERT_OK(weft_join_wait(jf, &out));
    ASSERT_OK(weft_join_wait(jb, &out));
    ASSERT_EQ(-ECANCELED, out);
    weft_join_drop(jf);
    weft_join_drop(jb);
    weft_runtime_free(rt);
    server_down();
}

/* Commands queued, the runtime freed, then the client, then the futures:
 * every one completes with -ECANCELED, nothing leaks (ASan). */
TEST(free_after_runtime)
{
    weft_runtime *rt = at_runtime(2);
    weft_redis *r;
    weft_redis_command c[4];
    weft_redis_result res;
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);

    server_up();
    r = client(rt, server_port, 0, 0);
    expect_status(run_cmd(rt, r, "PING"), "PONG");    /* connected */
    weft_redis_command_init(&c[0], r, "BLPOP nothing 0");
    weft_redis_command_init(&c[1], r, "PING");
    at_sleep_ms(50);
    weft_runtime_free(rt);
    weft_redis_command_init(&c[2], r, "PING");        /* after the runtime: queued only */
    weft_redis_command_init(&c[3], r, "PING");
    weft_redis_command_drop(&c[3]);                   /* dropped before the free */
    weft_redis_free(r);
    ASSERT_EQ(WEFT_READY, weft_redis_command_poll(&c[0], &cx, &res));
    ASSERT_EQ(-ECANCELED, res.result);
    ASSERT_EQ(WEFT_READY, weft_redis_command_poll(&c[1], &cx, &res));
    if (res.result == 0)                              /* PONG may have come back first */
        freeReplyObject(res.reply);
    else
        ASSERT_EQ(-ECANCELED, res.result);
    weft_redis_command_drop(&c[1]);
    weft_redis_command_drop(&c[2]);                   /* dropped unpolled */
    weft_redis_command_drop(&c[2]);                   /* idempotent */
    server_down();
}

/* A reply that arrives for a future dropped while pending is freed. */
TEST(drop_pending_command)
{
    weft_runtime *rt = at_runtime(2);
    weft_redis *r;
    weft_redis_command c;

    server_up();
    r = client(rt, server_port, 0, 0);
    for (int i = 0; i < 100; i++) {
        weft_redis_command_init(&c, r, "ECHO %d", i);
        weft_redis_command_drop(&c);
    }
    expect_status(run_cmd(rt, r, "PING"), "PONG");    /* after all 100 replies */
    weft_redis_free(r);
    weft_runtime_free(rt);
    server_down();
}

/* ---- level 1: weft_hiredis_attach on a loop ------------------------------------------- */
static atomic_int bare_state;                         /* 1 PONG, 2 disconnected, 3 refused */
static weft_loop *bare_loop;
static int bare_port;

static void bare_on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)ac;
    ASSERT_EQ(REDIS_OK, status);
    atomic_store(&bare_state, 2);
}

static void bare_on_connect_refused(const redisAsyncContext *ac, int status)
{
    (void)ac;
    ASSERT_EQ(REDIS_ERR, status);                     /* hiredis frees ac next */
    atomic_store(&bare_state, 3);
}

static void bare_on_pong(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *rep = (redisReply *)reply;

    (void)priv;
    ASSERT(rep != NULL && strcmp(rep->str, "PONG") == 0);
    atomic_store(&bare_state, 1);
    redisAsyncDisconnect(ac);                         /* in a callback: deferred */
}

static void bare_on_refused_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    (void)priv;
    ASSERT(reply == NULL);                            /* pending commands fail */
}

static void bare_start(weft_timer *t, void *arg)
{
    redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", bare_port);
    bool refused = arg != NULL;

    weft_timer_free(t);
    ASSERT(ac != NULL);
    if (ac->err) {                                    /* refused at once */
        ASSERT(refused);
        redisAsyncFree(ac);
        atomic_store(&bare_state, 3);
        return;
    }
    ASSERT_OK(weft_hiredis_attach(ac, bare_loop));
    ASSERT_EQ(-EBUSY, weft_hiredis_attach(ac, bare_loop));
    if (refused) {
        redisAsyncSetConnectCallback(ac, bare_on_connect_refused);
        redisAsyncCommand(ac, bare_on_refused_reply, NULL, "PING");
    } else {
        redisAsyncSetDisconnectCallback(ac, bare_on_disconnect);
        redisAsyncCommand(ac, bare_on_pong, NULL, "PING");
    }
}

TEST(attach_bare)
{
    weft_runtime *rt = at_runtime(2);
    weft_timer *t;
    uint64_t until;

    server_up();
    ASSERT_OK(weft_loop_new(rt, &bare_loop));
    for (int round = 0; round < 2; round++) {
        bool refused = round == 1;

        atomic_store(&bare_state, 0);
        bare_port = refused ? at_free_port(SOCK_STREAM) : server_port;
        ASSERT_OK(weft_timer_new(bare_loop, bare_start, refused ? (void *)1 : NULL, &t));
        ASSERT_OK(weft_timer_arm(t, 0));
        until = weft_now_ms() + AT_WAIT_MS;
        while (atomic_load(&bare_state) != (refused ? 3 : 2))
            { ASSERT(weft_now_ms() < until); at_sleep_ms(1); }
    }
    at_sleep_ms(20);                                  /* the refused context is freed */
    weft_loop_free(bare_loop);
    ASSERT_EQ(-EINVAL, weft_hiredis_attach(NULL, NULL));
    weft_runtime_free(rt);
    server_down();
}

/* ---- bad arguments --------------------------------------------------------------------- */
TEST(bad_arguments)
{
    weft_runtime *rt = at_runtime(1);
    weft_redis *r;
    weft_redis_command c;
    weft_redis_result res;
    weft_redis_options bad = { .port = 70000 };
    weft_waker noop = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&noop);
    char buf[8];

    ASSERT_EQ(-EINVAL, weft_redis_new(rt, NULL, NULL));
    ASSERT_EQ(-EINVAL, weft_redis_new(rt, &bad, &r));
    ASSERT_OK(weft_redis_new(rt, NULL, &r));
    weft_redis_command_init(&c, NULL, "PING");
    ASSERT_EQ(WEFT_READY, weft_redis_command_poll(&c, &cx, &res));
    ASSERT_EQ(-EINVAL, res.result);
    ASSERT_EQ(WEFT_READY, weft_redis_command_poll(&c, &cx, &res));   /* again: -EINVAL */
    ASSERT_EQ(-EINVAL, res.result);
    weft_redis_command_drop(&c);
    weft_redis_command_init(&c, r, NULL);
    ASSERT_EQ(WEFT_READY, weft_redis_command_poll(&c, &cx, &res));
    ASSERT_EQ(-EINVAL, res.result);
    weft_redis_command_init_argv(&c, r, 0, NULL, NULL);
    ASSERT_EQ(WEFT_READY, weft_redis_command_poll(&c, &cx, &res));
    ASSERT_EQ(-EINVAL, res.result);
    {
        redisReply *rep = (redisReply *)1;

        ASSERT_EQ(-EINVAL, weft_redis_co_command(r, &rep, "PING"));   /* not a coroutine */
        ASSERT(rep == NULL);
    }
    weft_redis_last_error(NULL, buf, sizeof(buf));
    ASSERT_EQ(0, (long long)weft_redis_connects(NULL));
    weft_redis_free(r);
    weft_redis_free(NULL);
    weft_runtime_free(rt);
}

/* A current-thread runtime: the loop runs only inside block_on. */
TEST(current_thread_runtime)
{
    weft_runtime *rt = at_runtime(0);
    weft_redis *r;

    server_up();
    r = client(rt, server_port, 0, 0);
    for (int i = 0; i < 20; i++) {
        char want[16];

        snprintf(want, sizeof(want), "x%d", i);
        expect_status(run_cmd(rt, r, "ECHO %s", want), want);
    }
    weft_redis_free(r);
    weft_runtime_free(rt);
    server_down();
}
