/* SPDX-License-Identifier: MIT */
/* examples/tail_forward.c - run a command and forward each line it prints
 * to a TCP server, until it ends or SIGTERM/SIGINT says stop:
 *
 *     tail_forward HOST PORT [--workers N] [--drain-ms N] -- COMMAND [ARG...]
 *     tail_forward logs.example.com 5140 -- tail -n 0 -F /var/log/app.log
 *
 * What it uses together: a child process whose stdout is a weft stream
 * (weft/process.h), a host name looked up on the blocking pool and
 * connected to (weft_connect_host), the buffered reader's lines
 * (weft/bufio.h), signals on signalfd and a group's drain (weft/signal.h,
 * weft/group.h), all written as coroutines (weft/coro.h).
 *
 * The stop. The command runs in a process group of its own, so a Ctrl-C at
 * the terminal reaches only tail_forward, which then decides: it sends the
 * command SIGTERM, and the forwarder goes on reading until the command's
 * stdout ends, so the lines it printed before it died are still sent; the
 * drain gives that --drain-ms (default 5000), then cancels the forwarder.
 * A command still running at the end is killed (WEFT_PROCESS_KILL_ON_FREE)
 * and reaped by weft. When the command ends on its own, tail_forward ends
 * after its last line. It exits 0 once everything is freed, so a sanitizer
 * build can check for leaks; a summary goes to stderr:
 *     tail_forward: forwarded 3 lines; the command was killed by signal 15 */
#define _GNU_SOURCE                   /* strsignal */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

#define LINE_MAX_BYTES 65536          /* longer lines are skipped (counted) */
#define CONNECT_MS 10000

struct app {
    const char *host;
    uint16_t port;
    uint64_t drain_ms;
    weft_process *child;
    weft_signal *sig;
    weft_group *g;
    unsigned long long lines, skipped;
    char line[LINE_MAX_BYTES];
};

/* The forwarder: connect, then copy the command's stdout line by line. */
static int forward(void *arg)
{
    struct app *a = arg;
    weft_connect_host c;
    weft_socket *s = NULL;
    weft_bufreader rd;
    int res = 0, err;
    ssize_t n;

    weft_connect_host_init(&c, NULL, a->host, a->port, CONNECT_MS, &s);
    err = weft_co_await(&weft_connect_host_future, &c, &res);
    if (err == 0)
        err = res;
    if (err < 0) {
        fprintf(stderr, "tail_forward: %s:%u: %s\n", a->host, a->port, weft_strerror(err));
        weft_process_kill(a->child, SIGTERM);   /* nobody to forward to */
        weft_co_process_wait(a->child, NULL);
        return err;
    }
    err = weft_bufreader_init(&rd, weft_process_stdio(a->child, 1), NULL, LINE_MAX_BYTES);
    if (err < 0) {
        weft_socket_close(s);
        return err;
    }
    for (;;) {
        n = weft_co_read_line(&rd, a->line, sizeof(a->line));
        if (n == -EMSGSIZE) {         /* longer than the buffer: skip it */
            n = weft_co_read_until(&rd, '\n', NULL, 0);
            a->skipped++;
            if (n > 0)
                continue;
        }
        if (n <= 0)                   /* 0: the command closed its stdout */
            break;
        n = weft_co_write_all(s, a->line, (size_t)n);
        if (n < 0) {
            fprintf(stderr, "tail_forward: sending: %s\n", weft_strerror((int)n));
            weft_process_kill(a->child, SIGTERM);
            break;
        }
        a->lines++;
    }
    weft_bufreader_drop(&rd);
    weft_socket_close(s);
    /* its output is over (or we stopped it): see it end */
    err = weft_co_process_wait(a->child, NULL);
    return n < 0 ? (int)n : err;
}

/* The root: run the forwarder until it ends or a signal comes, then drain. */
static int root(void *arg)
{
    struct app *a = arg;
    weft_group_wait gw;
    weft_signal_recv rx;
    weft_group_drain drain;
    weft_select sel;
    weft_future_ref refs[2];
    int gres = 0, signo = 0, which = -1, drained = 0, err;

    err = weft_go_group(a->g, forward, a, NULL);
    if (err < 0)
        return err;
    weft_group_wait_init(&gw, a->g);
    weft_signal_recv_init(&rx, a->sig, NULL);
    refs[0] = (weft_future_ref){ .type = &weft_group_wait_future, .future = &gw, .out = &gres };
    refs[1] = (weft_future_ref){ .type = &weft_signal_recv_future, .future = &rx,
                                 .out = &signo };
    weft_select_init(&sel, refs, 2);     /* owns both futures from here on */
    err = weft_co_await(&weft_select_future, &sel, &which);
    if (err < 0)
        return err;
    if (which == 0)
        return gres;                  /* the forwarder is done: so are we */
    fprintf(stderr, "tail_forward: %s, draining (at most %llu ms)\n", strsignal(signo),
            (unsigned long long)a->drain_ms);
    /* ends the command's output: the forwarder sends what is left, sees the
     * end of the stream and returns */
    weft_process_kill(a->child, SIGTERM);
    weft_group_drain_init(&drain, a->g, a->drain_ms);
    err = weft_co_await(&weft_group_drain_future, &drain, &drained);
    if (err == 0 && drained == -ETIMEDOUT)
        fprintf(stderr, "tail_forward: cut off at the deadline\n");
    return err;
}

static void usage(const char *me)
{
    fprintf(stderr, "usage: %s HOST PORT [--workers N] [--drain-ms N] -- COMMAND [ARG...]\n",
            me);
    exit(2);
}

int main(int argc, char **argv)
{
    static const int sigs[] = { SIGINT, SIGTERM };
    static struct app a;              /* a line buffer too big for the stack */
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD, .workers = 2 };
    weft_process_options po = { .stdio = { { WEFT_STDIO_NULL }, { WEFT_STDIO_PIPE } },
                                .flags = WEFT_PROCESS_NEW_GROUP | WEFT_PROCESS_KILL_ON_FREE };
    weft_process_status st;
    weft_runtime *rt = NULL;
    int i, err, res = 0;

    if (argc < 5)
        usage(argv[0]);
    a.host = argv[1];
    a.port = (uint16_t)atoi(argv[2]);
    a.drain_ms = 5000;
    for (i = 3; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
        if (i + 1 < argc && strcmp(argv[i], "--workers") == 0)
            opt.workers = (unsigned)atoi(argv[i + 1]);
        else if (i + 1 < argc && strcmp(argv[i], "--drain-ms") == 0)
            a.drain_ms = strtoull(argv[i + 1], NULL, 10);
        else
            usage(argv[0]);
    }
    if (i + 1 >= argc || a.port == 0)
        usage(argv[0]);
    po.argv = &argv[i + 1];

    /* before any thread exists, so that every thread inherits the mask (the
     * child does not: weft gives it an empty one) */
    if ((err = weft_signal_block(sigs, 2)) != 0 ||
        (err = weft_runtime_new(&rt, &opt)) != 0 ||
        (err = weft_signal_new(rt, sigs, 2, &a.sig)) != 0 ||
        (err = weft_group_new(&a.g, rt, WEFT_GROUP_WAIT_ALL)) != 0)
        goto out;
    err = weft_process_spawn(rt, &po, &a.child);
    if (err) {
        fprintf(stderr, "tail_forward: %s: %s\n", po.argv[0], weft_strerror(err));
        goto out;
    }
    err = weft_co_block_on(rt, root, &a, NULL, &res);
    if (err == 0)
        err = res;
    fprintf(stderr, "tail_forward: forwarded %llu lines", a.lines);
    if (a.skipped)
        fprintf(stderr, " (%llu too long, skipped)", a.skipped);
    if (weft_process_try_wait(a.child, &st) == 0) {
        if (st.signal)
            fprintf(stderr, "; the command was killed by signal %d\n", st.signal);
        else
            fprintf(stderr, "; the command exited with %d\n", st.code);
    } else {
        fprintf(stderr, "; the command is still running: killing it\n");
    }
out:
    if (err)
        fprintf(stderr, "tail_forward: %s\n", weft_strerror(err));
    weft_process_free(a.child);       /* kills it if it still runs; weft reaps it */
    if (a.g != NULL)
        weft_group_free(a.g);
    weft_signal_free(a.sig);
    weft_runtime_free(rt);
    return err ? 1 : 0;
}
