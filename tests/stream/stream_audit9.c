/* SPDX-License-Identifier: MIT */
/* Audit 9 of weft/bufio.h, weft/signal.h and weft/process.h: a poll
 * without a waker (weft/core.h, "Context": a NULL context, or a zeroed one)
 * is misuse that every future answers READY with -EINVAL, changing
 * nothing. The futures that had to wait dereferenced the missing waker
 * (SIGSEGV); those that did not did their work anyway (a buffered write
 * took its bytes, a process wait reaped). On both I/O backends. */
#include "stream_test.h"
#include "badcx.h"

#include <signal.h>

struct rig {
    weft_runtime *rt;
    weft_stream *rd, *wr;          /* a pipe */
    weft_stream *rd2, *wr2;        /* another */
};

static void bufio_body(weft_context *cx, void *arg)
{
    struct rig *r = arg;
    weft_bufreader br;
    weft_bufwriter bw;
    weft_bufread f;
    weft_bufwrite w;
    weft_copy c;
    char line[64];
    const void *data;
    ssize_t n = 0;

    ASSERT_OK(weft_bufreader_init(&br, r->rd, NULL, 256));
    ASSERT_OK(weft_bufwriter_init(&bw, r->wr, NULL, 256));
    weft_bufreader_read_line_init(&f, &br, line, sizeof(line));
    badcx_check(&weft_bufread_future, &f, cx);            /* nothing sent: waits */
    /* a write that fits the buffer needs no wait: without a waker it
     * must not take the bytes */
    weft_bufwriter_write_init(&w, &bw, "one\ntwo\n", 8);
    badcx_einval(&weft_bufwrite_future, &w);
    ASSERT_EQ(0, (long long)weft_bufwriter_buffered(&bw));
    if (weft_bufwrite_poll(&w, cx, &n) == WEFT_PENDING)   /* WEFT_STRESS: once */
        ASSERT_EQ(WEFT_READY, weft_bufwrite_poll(&w, cx, &n));
    ASSERT_EQ(8, (long long)n);
    weft_bufwrite_drop(&w);
    weft_bufwriter_flush_init(&w, &bw);
    badcx_einval(&weft_bufwrite_future, &w);
    ASSERT_EQ(8, (long long)weft_bufwriter_buffered(&bw));
    weft_bufwrite_drop(&w);
    ASSERT_EQ(8, (long long)write(weft_stream_fd(r->wr), "one\ntwo\n", 8));
    /* bytes there to read: a line without a waker consumes nothing */
    weft_bufreader_read_line_init(&f, &br, line, sizeof(line));
    badcx_einval(&weft_bufread_future, &f);
    ASSERT_EQ(0, (long long)weft_bufreader_buffered(&br, &data));
    weft_bufread_drop(&f);
    weft_copy_init(&c, r->rd2, r->wr);
    badcx_check(&weft_copy_future, &c, cx);               /* nothing to copy: waits */
    weft_bufwriter_drop(&bw);
    weft_bufreader_drop(&br);
}

TEST(bufio_futures_polled_without_a_waker_are_einval_and_move_nothing)
{
    struct rig r;

    r.rt = nt_runtime(false);
    ASSERT_OK(weft_pipe(r.rt, &r.rd, &r.wr));
    ASSERT_OK(weft_pipe(r.rt, &r.rd2, &r.wr2));
    badcx_in_task(r.rt, bufio_body, &r);
    ASSERT_OK(weft_stream_close(r.rd));
    ASSERT_OK(weft_stream_close(r.wr));
    ASSERT_OK(weft_stream_close(r.rd2));
    ASSERT_OK(weft_stream_close(r.wr2));
    weft_runtime_free(r.rt);
}

static void signal_body(weft_context *cx, void *arg)
{
    weft_signal *s = arg;
    weft_signal_recv rv;

    weft_signal_recv_init(&rv, s, NULL);
    badcx_check(&weft_signal_recv_future, &rv, cx);        /* no signal: waits */
    /* one pending: a receive without a waker must not take it */
    ASSERT_OK(kill(getpid(), SIGUSR2));
    weft_signal_recv_init(&rv, s, NULL);
    badcx_einval(&weft_signal_recv_future, &rv);
    weft_signal_recv_drop(&rv);
    ASSERT_EQ(SIGUSR2, weft_signal_try_recv(s, NULL));
}

TEST(signal_receives_polled_without_a_waker_are_einval_and_take_nothing)
{
    static const int usr2[] = { SIGUSR2 };
    weft_runtime *rt;
    weft_signal *s;

    ASSERT_OK(weft_signal_block(usr2, 1));        /* before any thread */
    rt = nt_runtime(false);
    ASSERT_OK(weft_signal_new(rt, usr2, 1, &s));
    badcx_in_task(rt, signal_body, s);
    weft_signal_free(s);
    weft_runtime_free(rt);
}

struct procs {
    weft_process *running, *exited;
};

static void process_body(weft_context *cx, void *arg)
{
    struct procs *p = arg;
    weft_process_status st = { 77, 77 };
    weft_process_wait w;

    weft_process_wait_init(&w, p->running, &st);
    badcx_check(&weft_process_wait_future, &w, cx);        /* still running: waits */
    /* one that has exited: a wait without a waker must not report it */
    weft_process_wait_init(&w, p->exited, &st);
    badcx_einval(&weft_process_wait_future, &w);
    ASSERT_EQ(77, st.code);
    weft_process_wait_drop(&w);
}

TEST(process_waits_polled_without_a_waker_are_einval_and_reap_nothing)
{
    char *run_argv[] = { "sleep", "600", NULL };
    char *exit_argv[] = { "true", NULL };
    weft_process_options ro = { .argv = run_argv, .flags = WEFT_PROCESS_KILL_ON_FREE };
    weft_process_options eo = { .argv = exit_argv };
    weft_process_status st;
    struct procs p;
    weft_runtime *rt = nt_runtime(false);
    int err;

    ASSERT_OK(weft_process_spawn(rt, &ro, &p.running));
    ASSERT_OK(weft_process_spawn(rt, &eo, &p.exited));
    /* the exit, recorded in the handle (try_wait reaps it there) */
    {
        uint64_t end = harness_now_ns() + (uint64_t)20000 * 1000000u;

        while ((err = weft_process_try_wait(p.exited, &st)) == -EAGAIN) {
            ASSERT(harness_now_ns() < end);
            usleep(1000);
        }
        ASSERT_OK(err);
    }
    badcx_in_task(rt, process_body, &p);
    ASSERT_OK(weft_process_try_wait(p.exited, &st));      /* still the handle's */
    ASSERT_EQ(0, st.code);
    weft_process_free(p.exited);
    weft_process_free(p.running);
    weft_runtime_free(rt);
}
