/* SPDX-License-Identifier: MIT */
/* The reactor's `use` word under fire: a plain thread closes a socket at a
 * random moment while two tasks are inside a long read_exact and a long
 * write_all on it (each one future, made before the close: a handle may not
 * be used after close, but futures made from it may still be running),
 * while a peer thread feeds and drains the other end, round after round.
 * Each future ends with -EBADF (or a peer error); the slot is released
 * exactly once (a double release would corrupt the free list and hand one
 * slot to two sockets in a later round); no descriptor leaks; ASan and
 * TSan watch the rest. */
#include "net_test.h"

#define ROUNDS 400

struct race {
    weft_socket *s;
    int peer;
    atomic_int stop;
    atomic_int tasks_done;
};

typedef struct hammer {
    weft_async co;
    struct race *r;
    bool writer;
    weft_io_op op;
    ssize_t n;
} hammer;


static weft_poll hammer_poll(hammer *h, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&h->co);
    /* far more than will ever flow in a round: only the close ends them */
    WEFT_AWAIT(&h->co, weft_io_op_poll(&h->op, cx, &h->n));
    if (!(h->n == -EBADF || h->n == -EPIPE || h->n == -ECONNRESET))
        harness_fail(__FILE__, __LINE__, "%s ended with %zd", h->writer ? "writer" : "reader", h->n);
    atomic_fetch_add(&h->r->tasks_done, 1);
    WEFT_END(&h->co);
}

static void hammer_drop(hammer *h)
{
    weft_io_op_drop(&h->op);
}

WEFT_DEFINE_FUTURE_VOID(hammer, hammer_poll, hammer_drop);

/* the peer: writes a little and drains everything, until told to stop */
static void *peer_main(void *arg)
{
    struct race *r = arg;
    char buf[4096];

    memset(buf, 'p', sizeof(buf));
    while (!atomic_load(&r->stop)) {
        struct pollfd p = { r->peer, POLLIN, 0 };

        if (send(r->peer, buf, 64, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN)
            break;
        if (poll(&p, 1, 1) > 0 && recv(r->peer, buf, 64, MSG_DONTWAIT) == 0)
            break;
        usleep(20);                   /* a trickle: no future can complete */
    }
    return NULL;
}

static char wsrc[8 << 20];            /* the writer's: more than the peer drains */

TEST(close_races_calls_in_flight)
{
    weft_runtime *rt = nt_runtime(false);
    int fds0 = nt_count_fds();
    uint64_t x = 12345;
    size_t rounds = harness_scale(ROUNDS);

    for (size_t i = 0; i < rounds; i++) {
        struct race r;
        int sv[2];
        pthread_t peer;
        hammer h = { 0 };
        static char sink[4 << 20];    /* the reader's buffer: never filled */

        memset(&r, 0, sizeof(r));
        ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
        r.peer = sv[1];
        ASSERT_OK(weft_socket_adopt(rt, sv[0], &r.s));
        h.r = &r;
        /* the peer trickles 64 bytes per 20 us each way: neither future
         * can complete before the close */
        weft_read_exact_init(&h.op, r.s, sink, sizeof(sink));
        ASSERT_OK(weft_spawn_detached(rt, &hammer_future, &h));
        h.writer = true;
        weft_write_all_init(&h.op, r.s, wsrc, sizeof(wsrc));
        ASSERT_OK(weft_spawn_detached(rt, &hammer_future, &h));
        ASSERT_EQ(0, pthread_create(&peer, NULL, peer_main, &r));
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        {
            struct timespec ts = { 0, (long)((x >> 33) % 200000) };

            nanosleep(&ts, NULL);
        }
        ASSERT_OK(weft_socket_close(r.s));
        /* both tasks end with -EBADF (or a peer error) */
        {
            uint64_t until = weft_now_ms() + NT_WATCHDOG_MS;

            while (atomic_load(&r.tasks_done) < 2)
                ASSERT(weft_now_ms() < until);
        }
        atomic_store(&r.stop, 1);
        pthread_join(peer, NULL);
        close(sv[1]);
    }
    ASSERT_OK(weft_runtime_run(rt));
    weft_runtime_free(rt);
    ASSERT_EQ(fds0, nt_count_fds());
}
