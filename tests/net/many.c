/* SPDX-License-Identifier: MIT */
/* Many concurrent connections on loopback: every client sends its own
 * pattern, the server echoes it, the client checks every byte, and all the
 * connections stay open together until every client is done (the server's
 * peak of live connections proves it). RLIMIT_NOFILE's soft limit is raised
 * to the hard one; when that cannot hold two descriptors per connection,
 * fewer connections are used (printed). */
#include "net_test.h"

#define WANT 10000

static struct sockaddr_storage g_addr;
static socklen_t g_len;
static weft_socket **g_socks;
static atomic_int g_fail_id = -1, g_fail_stage;   /* the first failure, for the message */

static void note_failure(int id, int stage)
{
    int none = -1;

    if (atomic_compare_exchange_strong(&g_fail_id, &none, id))
        atomic_store(&g_fail_stage, stage);
}

typedef struct client {
    weft_async co;
    int id;
    size_t len;
    weft_connect conn;
    weft_io_op op;
    weft_socket *c;
    int err;
    ssize_t n;
    unsigned char buf[512];
} client;

static weft_poll client_poll(client *k, weft_context *cx, int *out)
{
    WEFT_BEGIN(&k->co);
    weft_connect_init(&k->conn, NULL, (struct sockaddr *)&g_addr, g_len, 0, &k->c);
    WEFT_AWAIT(&k->co, weft_connect_poll(&k->conn, cx, &k->err));
    weft_io_op_drop(&k->conn);
    if (k->err < 0) {
        note_failure(k->id, 1);
        goto out;
    }
    k->len = 64 + (size_t)k->id % 400;
    nt_fill(k->buf, k->len, (uint32_t)k->id);
    memcpy(k->buf, &k->id, sizeof(k->id));      /* distinct from the first bytes */
    weft_write_all_init(&k->op, k->c, k->buf, k->len);
    WEFT_AWAIT(&k->co, weft_io_op_poll(&k->op, cx, &k->n));
    if (k->n != (ssize_t)k->len) {
        k->err = k->n < 0 ? (int)k->n : -EIO;
        note_failure(k->id, 2);
        goto out;
    }
    memset(k->buf, 0, sizeof(k->buf));
    weft_read_exact_init(&k->op, k->c, k->buf, k->len);
    WEFT_AWAIT(&k->co, weft_io_op_poll(&k->op, cx, &k->n));
    if (k->n != (ssize_t)k->len) {
        k->err = k->n < 0 ? (int)k->n : -EIO;
        note_failure(k->id, 3);
        goto out;
    }
    {
        int id;

        memcpy(&id, k->buf, sizeof(id));
        if (id != k->id || nt_check(k->buf + sizeof(id), k->len - sizeof(id), (uint32_t)k->id,
                                    sizeof(id)) != k->len - sizeof(id))
            k->err = -EILSEQ;                 /* a byte differs */
        if (k->err)
            note_failure(k->id, 4);
    }
out:
    if (k->err == 0) {
        g_socks[k->id] = k->c;                /* main closes it, after everyone */
    } else if (k->c) {
        weft_socket_close(k->c);
    }
    k->c = NULL;
    *out = k->err;
    WEFT_END(&k->co);
}

static void client_drop(client *k)
{
    weft_io_op_drop(&k->conn);
    weft_io_op_drop(&k->op);
    if (k->c)
        weft_socket_close(k->c);
}

WEFT_DEFINE_FUTURE(client, client_poll, client_drop, int);

typedef struct many_main {
    weft_async co;
    int n, i, jr, out, failed, first_err;
    weft_socket *l;
    weft_join *acc_j;
    weft_join **joins;
} many_main;

static weft_poll many_main_poll(many_main *m, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&m->co);
    nt_listen(weft_runtime_current(), &m->l, &g_addr, &g_len);
    ASSERT_OK(weft_spawn(weft_runtime_current(), &nt_acceptor_future,
                         &(nt_acceptor){ .l = m->l, .count = m->n }, &m->acc_j));
    m->joins = calloc((size_t)m->n, sizeof(*m->joins));
    ASSERT(m->joins);
    for (m->i = 0; m->i < m->n; m->i++)
        ASSERT_OK(weft_spawn(weft_runtime_current(), &client_future, &(client){ .id = m->i },
                             &m->joins[m->i]));
    for (m->i = 0; m->i < m->n; m->i++) {
        WEFT_AWAIT(&m->co, weft_join_poll(m->joins[m->i], cx, &m->jr, &m->out));
        ASSERT_OK(m->jr);
        if (m->out != 0 && m->failed++ == 0)
            m->first_err = m->out;
        weft_join_drop(m->joins[m->i]);
    }
    free(m->joins);
    if (m->failed)
        harness_fail(__FILE__, __LINE__,
                     "%d of %d clients failed, first by join order: %s; first in time: "
                     "client %d in %s", m->failed, m->n, weft_strerror(m->first_err),
                     atomic_load(&g_fail_id),
                     (const char *[]){ "?", "connect", "write_all", "read_exact",
                                       "the check" }[atomic_load(&g_fail_stage)]);
    /* every connection was open at once (clients have not closed yet) */
    ASSERT_EQ(m->n, atomic_load(&nt_echo_live));
    ASSERT_EQ(m->n, atomic_load(&nt_echo_peak));
    WEFT_AWAIT(&m->co, weft_join_poll(m->acc_j, cx, &m->jr, &m->out));
    ASSERT_OK(m->jr);
    ASSERT_OK(m->out);
    weft_join_drop(m->acc_j);
    for (m->i = 0; m->i < m->n; m->i++)
        ASSERT_OK(weft_socket_close(g_socks[m->i]));
    ASSERT_OK(weft_socket_close(m->l));
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE_VOID(many_main, many_main_poll, NULL);

static void many(bool current, size_t want)
{
    struct rlimit old, rl;
    size_t n = harness_scale(want), fit;
    uint64_t t0 = weft_now_ms();
    long long bytes = 0;

    ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &old));
    rl = old;
    /* two descriptors per connection (both ends live in this process):
     * raise the hard limit too where allowed (root, up to fs.nr_open),
     * else settle for the hard limit we have and say so below */
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2 * n + 256) {
        rl.rlim_cur = rl.rlim_max = 2 * n + 256;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl = old;
    }
    rl.rlim_cur = rl.rlim_max;
    ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &rl));
    /* two descriptors per connection, and room for the rest of the process */
    fit = rl.rlim_cur == RLIM_INFINITY ? SIZE_MAX
          : rl.rlim_cur > 128 ? (size_t)(rl.rlim_cur - 128) / 2 : 1;
    if (n > fit)
        n = fit;
    printf("%zu connections (wanted %zu; RLIMIT_NOFILE %llu)\n", n, harness_scale(want),
           (unsigned long long)rl.rlim_cur);
    fflush(stdout);
    g_socks = calloc(n, sizeof(*g_socks));
    ASSERT(g_socks);
    nt_echo_reset();
    nt_run(current, &many_main_future, &(many_main){ .n = (int)n });
    ASSERT_EQ(0, atomic_load(&nt_echo_errors));
    ASSERT_EQ(0, atomic_load(&nt_echo_live));
    for (size_t i = 0; i < n; i++)
        bytes += 64 + (long long)(i % 400);
    ASSERT_EQ(bytes, atomic_load(&nt_echo_bytes));
    free(g_socks);
    ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &old));
    printf("%zu connections echoed in %llu ms\n", n, (unsigned long long)(weft_now_ms() - t0));
}

TEST(ten_thousand_connections_every_byte_checked)
{
    many(false, WANT);
}

TEST(two_thousand_connections_current_thread)
{
    many(true, 2000);
}
