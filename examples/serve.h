/* SPDX-License-Identifier: MIT */
/* examples/serve.h - what the example servers (http_server.c,
 * chat_server.c) share: the command line, a listener, an acceptor that
 * hands each connection to the server, and a graceful stop on SIGINT or
 * SIGTERM. A server supplies one function and calls serve_main():
 *
 *     static int on_conn(weft_group *g, weft_socket *client);
 *     int main(int argc, char **argv)
 *     {
 *         return serve_main(argc, argv, "http_server", 8080, on_conn);
 *     }
 *
 * on_conn() spawns the connection's task(s) into `g` (weft_group_spawn) and
 * owns `client` from then on (it closes it if it cannot start them).
 *
 *     NAME [--port N] [--workers N] [--drain-ms N]
 *                         (defaults: the server's port, 2 workers, 5000 ms)
 *
 * The stop, in order:
 *   1. main blocks SIGINT and SIGTERM before the runtime's workers exist
 *      (they inherit the mask: weft/signal.h, "Masks"), and makes a
 *      weft_signal for them;
 *   2. the root task races the acceptor against a receive of that signal
 *      (weft_select); the signal wins: the acceptor is dropped and the
 *      listener closed: no connection is accepted any more;
 *   3. weft_group_drain(): the connections get --drain-ms to finish on their
 *      own; those still open then are cancelled (their drops close them);
 *   4. main frees the group, the signal (which
 *      restores the mask) and the runtime, and exits 0, so that a sanitizer
 *      build can check for leaks.
 * A second signal during the drain (Ctrl-C twice) cancels the connections
 * left at once. Two signals sent before the first is received are one
 * (standard signals coalesce: weft/signal.h).
 *
 * SIGQUIT (Ctrl-\) prints a dump of every task and a line of metrics to
 * stderr and the server goes on (Go dumps its goroutines on SIGQUIT and
 * exits; a dump you can take twice is more use): a task of its own waits
 * for the signal (weft/observe.h, docs/debugging.md). */
#ifndef WEFT_EXAMPLES_SERVE_H
#define WEFT_EXAMPLES_SERVE_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "weft.h"

typedef int (*serve_conn_fn)(weft_group *g, weft_socket *client);

/* ---- the acceptor -------------------------------------------------------------- */
typedef struct serve_acceptor {
    weft_async co;
    weft_socket *listener;
    weft_group *g;
    serve_conn_fn on_conn;
    weft_accept acc;
    weft_socket *client;
    int err;
    weft_sleep backoff;
} serve_acceptor;

static weft_poll serve_acceptor_poll(serve_acceptor *a, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&a->co);
    for (;;) {
        weft_accept_init(&a->acc, a->listener, &a->client, NULL, NULL);
        WEFT_AWAIT(&a->co, weft_accept_poll(&a->acc, cx, &a->err));
        if (a->err == 0) {
            a->on_conn(a->g, a->client);
        } else if (a->err == -EMFILE || a->err == -ENFILE || a->err == -ENOBUFS ||
                   a->err == -ENOMEM) {
            /* out of descriptors: the connection waits in the kernel's
             * queue; try again in a while rather than spin */
            weft_sleep_init(&a->backoff, 10);
            WEFT_AWAIT(&a->co, weft_sleep_poll(&a->backoff, cx));
        } else if (a->err == -EBADF || a->err == -ESHUTDOWN) {
            break;                     /* the listener is gone: stop */
        }
    }
    WEFT_END(&a->co);
}

static void serve_acceptor_drop(serve_acceptor *a)
{
    weft_io_op_drop(&a->acc);         /* accept is cancel-safe: nothing lost */
    weft_sleep_drop(&a->backoff);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(serve_acceptor, serve_acceptor_poll, serve_acceptor_drop);

/* ---- the root task: accept until a signal, then drain ------------------------- */
typedef struct serve_root {
    weft_async co;
    serve_acceptor acc;                /* set up by serve_main() */
    weft_signal *sig;
    uint64_t drain_ms;
    const char *name;
    weft_signal_recv rx;
    weft_future_ref refs[2];
    weft_select sel;
    bool selecting;
    int which, signo;
    weft_group_drain drain;
    int drained;
    weft_group_wait wait;
    bool waiting;
} serve_root;

static weft_poll serve_root_poll(serve_root *r, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&r->co);
    /* the select owns both futures from here on, and drops the loser */
    weft_signal_recv_init(&r->rx, r->sig, NULL);
    r->refs[0] = (weft_future_ref){ .type = &serve_acceptor_future, .future = &r->acc };
    r->refs[1] = (weft_future_ref){ .type = &weft_signal_recv_future, .future = &r->rx,
                                    .out = &r->signo };
    weft_select_init(&r->sel, r->refs, 2);
    r->selecting = true;
    WEFT_AWAIT(&r->co, weft_select_poll(&r->sel, cx, &r->which));
    weft_select_drop(&r->sel);
    r->selecting = false;
    /* refuse new connections at once (those in the kernel's queue are reset)
     * rather than leave them waiting through the drain */
    weft_socket_close(r->acc.listener);
    if (r->which == 1 && r->signo > 0)
        fprintf(stderr, "%s: %s, draining (at most %llu ms)\n", r->name,
                strsignal(r->signo), (unsigned long long)r->drain_ms);
    /* the drain, raced against a second signal (Ctrl-C twice: stop now) */
    weft_group_drain_init(&r->drain, r->acc.g, r->drain_ms);
    weft_signal_recv_init(&r->rx, r->sig, NULL);
    r->refs[0] = (weft_future_ref){ .type = &weft_group_drain_future, .future = &r->drain,
                                    .out = &r->drained };
    r->refs[1] = (weft_future_ref){ .type = &weft_signal_recv_future, .future = &r->rx,
                                    .out = &r->signo };
    weft_select_init(&r->sel, r->refs, 2);
    r->selecting = true;
    WEFT_AWAIT(&r->co, weft_select_poll(&r->sel, cx, &r->which));
    weft_select_drop(&r->sel);
    r->selecting = false;
    if (r->which == 1) {
        fprintf(stderr, "%s: second signal, closing every connection now\n", r->name);
        weft_group_cancel(r->acc.g);
        weft_group_wait_init(&r->wait, r->acc.g);
        r->waiting = true;
        WEFT_AWAIT(&r->co, weft_group_wait_poll(&r->wait, cx, NULL));
    } else if (r->drained == -ETIMEDOUT) {
        fprintf(stderr, "%s: connections left at the deadline were closed\n", r->name);
    }
    WEFT_END(&r->co);
}

static void serve_root_drop(serve_root *r)
{
    if (r->selecting)
        weft_select_drop(&r->sel);
    if (r->waiting)
        weft_group_wait_drop(&r->wait);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(serve_root, serve_root_poll, serve_root_drop);

/* ---- SIGQUIT: dump the tasks ------------------------------------------------------ */
typedef struct serve_dumper {
    weft_async co;
    weft_signal *sig;
    int signo, res;
    bool receiving;
    weft_signal_recv rx;
} serve_dumper;

static weft_poll serve_dumper_poll(serve_dumper *d, weft_context *cx, void *out)
{
    weft_runtime *rt = weft_runtime_current();
    weft_metrics m = { .size = sizeof(m) };

    (void)out;
    WEFT_BEGIN(&d->co);
    for (;;) {
        weft_signal_recv_init(&d->rx, d->sig, NULL);
        d->receiving = true;
        WEFT_AWAIT(&d->co, weft_signal_recv_poll(&d->rx, cx, &d->signo));
        d->receiving = false;
        weft_signal_recv_drop(&d->rx);
        if (d->signo < 0)
            break;                     /* the signal object is gone */
        weft_runtime_dump(rt, stderr);
        if (weft_runtime_metrics(rt, &m) == 0)
            fprintf(stderr, "metrics: %llu tasks live, %llu spawned, %llu polls, "
                            "%llu parks, %llu steals, inject queue %llu, %llu lints\n",
                    m.tasks_live, m.tasks_spawned, m.polls, m.parks, m.steals,
                    m.inject_queue_depth, m.lints);
    }
    WEFT_END(&d->co);
}

static void serve_dumper_drop(serve_dumper *d)
{
    if (d->receiving)
        weft_signal_recv_drop(&d->rx);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(serve_dumper, serve_dumper_poll, serve_dumper_drop);

/* ---- main ------------------------------------------------------------------------ */
static int serve_main(int argc, char **argv, const char *name, unsigned port,
                      serve_conn_fn on_conn)
{
    static const int sigs[] = { SIGINT, SIGTERM }, quit[] = { SIGQUIT };
    unsigned workers = 2;
    unsigned long long drain_ms = 5000;
    const char *trace = NULL;          /* --trace FILE: weft/trace.h */
    struct sockaddr_storage addr;
    socklen_t len;
    weft_runtime *rt = NULL;
    weft_socket *listener = NULL;
    weft_group *g = NULL;
    weft_signal *sig = NULL, *qsig = NULL;
    serve_root root = { 0 };
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD };
    int err;

    for (int i = 1; i < argc; i += 2) {
        if (i + 1 < argc && strcmp(argv[i], "--port") == 0)
            port = (unsigned)atoi(argv[i + 1]);
        else if (i + 1 < argc && strcmp(argv[i], "--workers") == 0)
            workers = (unsigned)atoi(argv[i + 1]);
        else if (i + 1 < argc && strcmp(argv[i], "--drain-ms") == 0)
            drain_ms = strtoull(argv[i + 1], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--trace") == 0)
            trace = argv[i + 1];
        else {
            fprintf(stderr, "usage: %s [--port N] [--workers N] [--drain-ms N] [--trace FILE]\n",
                    argv[0]);
            return 2;
        }
    }
    /* before any thread exists, so that every thread inherits the mask */
    if ((err = weft_signal_block(sigs, 2)) != 0 || (err = weft_signal_block(quit, 1)) != 0)
        goto fail;
    opt.workers = workers;
    if ((err = weft_runtime_new(&rt, &opt)) != 0 ||
        (err = weft_signal_new(rt, sigs, 2, &sig)) != 0 ||
        (err = weft_signal_new(rt, quit, 1, &qsig)) != 0 ||
        (err = weft_spawn_detached(rt, &serve_dumper_future,
                                   &(serve_dumper){ .sig = qsig })) != 0 ||
        (err = weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL)) != 0 ||
        (err = weft_addr_ip("0.0.0.0", (uint16_t)port, &addr, &len)) != 0 ||
        (err = weft_listen(rt, (struct sockaddr *)&addr, len, 0, &listener)) != 0 ||
        (trace && (err = weft_trace_start(rt, 0)) != 0))
        goto fail;
    len = sizeof(addr);
    weft_socket_local_addr(listener, &addr, &len);
    printf("listening on %u\n", ntohs(((struct sockaddr_in *)&addr)->sin_port));
    fflush(stdout);
    root.acc = (serve_acceptor){ .listener = listener, .g = g, .on_conn = on_conn };
    root.sig = sig;
    root.drain_ms = drain_ms;
    root.name = name;
    err = weft_block_on(rt, &serve_root_future, &root, NULL);
    if (trace) {
        /* the last 65,536 events of each worker before the drain ended, as
         * Chrome JSON (open it in ui.perfetto.dev; docs/trace.md) */
        FILE *f = fopen(trace, "w");
        long n;

        weft_trace_stop(rt);
        n = f ? weft_trace_write(rt, f) : -errno;
        if (f)
            fclose(f);
        if (n < 0)
            fprintf(stderr, "%s: trace to %s: %s\n", name, trace, weft_strerror((int)n));
        else
            fprintf(stderr, "%s: %ld trace events written to %s\n", name, n, trace);
    }
fail:
    if (err)
        fprintf(stderr, "%s: %s\n", name, weft_strerror(err));
    weft_socket_close(listener);       /* closed already, or NULL: -EBADF, harmless */
    if (g != NULL)
        weft_group_free(g);            /* empty after the drain: returns at once */
    if (rt != NULL)
        weft_runtime_shutdown(rt);     /* cancels the dumper: its receive goes */
    weft_signal_free(qsig);
    weft_signal_free(sig);
    weft_runtime_free(rt);
    return err ? 1 : 0;
}

#endif /* WEFT_EXAMPLES_SERVE_H */
