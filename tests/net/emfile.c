/* SPDX-License-Identifier: MIT */
/* Descriptor exhaustion: with RLIMIT_NOFILE lowered and every descriptor
 * taken, accept reports -EMFILE once (one poll, no spinning inside), a
 * server that backs off with a sleep burns no polls, and once descriptors
 * are freed the same listener accepts the connection that waited in the
 * kernel's queue, its bytes intact. The limit is restored. */
#include "net_test.h"

#define MAX_HOLD 4096

static int hold[MAX_HOLD], nhold;

typedef struct emf_main {
    weft_async co;
    weft_socket *l, *s;
    weft_accept acc;
    weft_io_op op;
    weft_sleep nap;
    int err, attempts, polls, accept_polls;
    ssize_t n;
    char buf[2];
} emf_main;

static weft_poll emf_main_poll(emf_main *m, weft_context *cx, void *out)
{
    (void)out;
    m->polls++;
    WEFT_BEGIN(&m->co);
    for (m->attempts = 0;; m->attempts++) {
        ASSERT(m->attempts < 1000);
        if (m->attempts == 5) {
            /* free two descriptors: the next accept gets the connection */
            ASSERT(nhold >= 2);
            close(hold[--nhold]);
            close(hold[--nhold]);
        }
        weft_accept_init(&m->acc, m->l, &m->s, NULL, NULL);
        m->accept_polls = 0;
        WEFT_AWAIT(&m->co, (m->accept_polls++, weft_accept_poll(&m->acc, cx, &m->err)));
        if (m->err == 0)
            break;
        ASSERT_EQ(-EMFILE, m->err);
        /* reported at once, not retried (stress mode: one extra poll) */
        ASSERT_LE(harness_stress() ? 2 : 1, m->accept_polls);
        ASSERT(m->attempts < 5);
        weft_sleep_init(&m->nap, 10);             /* back off, as a server should */
        WEFT_AWAIT(&m->co, weft_sleep_poll(&m->nap, cx));
        weft_sleep_drop(&m->nap);
    }
    ASSERT_EQ(5, m->attempts);
    /* the queued connection, with the bytes its client sent long ago */
    weft_read_exact_init(&m->op, m->s, m->buf, 2);
    WEFT_AWAIT(&m->co, weft_io_op_poll(&m->op, cx, &m->n));
    ASSERT_EQ(2, m->n);
    ASSERT_EQ(0, memcmp(m->buf, "hi", 2));
    ASSERT_OK(weft_socket_close(m->s));
    /* 5 failed attempts, each: one accept poll, a sleep, its wake-up */
    ASSERT_LE((5 * 3 + 10) * (harness_stress() ? 2 : 1), m->polls);
    WEFT_END(&m->co);
}

WEFT_DEFINE_FUTURE_VOID(emf_main, emf_main_poll, NULL);

static unsigned long long total_polls(weft_runtime *rt)
{
    unsigned long long n = 0;
    weft_worker_metrics wm;

    for (unsigned i = 0; i < weft_runtime_workers(rt); i++) {
        ASSERT_OK(weft_runtime_worker_metrics(rt, i, &wm));
        n += wm.polls;
    }
    return n;
}

static void emfile(bool current)
{
    weft_runtime *rt = nt_runtime(current);
    weft_socket *l;
    struct sockaddr_storage addr;
    socklen_t len;
    struct rlimit old, rl;
    struct rusage ru0, ru1;
    int c, fd, before;
    unsigned long long polls0;
    emf_main *m = calloc(1, sizeof(*m));

    ASSERT(m);
    nt_listen(rt, &l, &addr, &len);
    c = nt_raw_connect(&addr, len);               /* queued: nobody accepts yet */
    nt_raw_write_all(c, "hi", 2);
    before = nt_count_fds();

    /* lower the limit a little above what is open, then take the rest */
    ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &old));
    rl = old;
    fd = dup(0);
    ASSERT(fd >= 0);
    close(fd);
    rl.rlim_cur = (rlim_t)fd + 32;                /* descriptors are handed out lowest first */
    ASSERT(rl.rlim_cur <= old.rlim_cur);
    ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &rl));
    for (nhold = 0; nhold < MAX_HOLD; nhold++) {
        fd = dup(0);
        if (fd < 0) {
            ASSERT_EQ(EMFILE, errno);
            break;
        }
        hold[nhold] = fd;
    }
    ASSERT(nhold > 2 && nhold < MAX_HOLD);

    m->l = l;
    polls0 = total_polls(rt);
    getrusage(RUSAGE_SELF, &ru0);
    ASSERT_OK(weft_block_on(rt, &emf_main_future, m, NULL));
    getrusage(RUSAGE_SELF, &ru1);
    /* no spin: a few dozen task polls in all (a spin makes millions) */
    ASSERT_LE(200 * (harness_stress() ? 2 : 1), total_polls(rt) - polls0);
    printf("EMFILE phase: %llu task polls, %ld us CPU\n", total_polls(rt) - polls0,
           (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1000000L +
           (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
           (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1000000L +
           (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec));

    while (nhold > 0)
        close(hold[--nhold]);
    ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &old));
    ASSERT_EQ(before, nt_count_fds());
    ASSERT_OK(weft_socket_close(l));
    close(c);
    weft_runtime_free(rt);
    free(m);
}

TEST(accept_emfile_reported_once_then_listener_recovers)
{
    emfile(false);
}

TEST(accept_emfile_current_thread)
{
    emfile(true);
}
