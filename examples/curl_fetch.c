/* SPDX-License-Identifier: MIT */
/* Fetch URLs with libcurl on weft: libcurl's multi_socket API does the HTTP,
 * weft/fdwatch.h does the waiting. A library that brings its own I/O needs
 * three things from an event loop, and this file is the whole adapter:
 *
 *     curl asks                              weft gives
 *     CURLMOPT_SOCKETFUNCTION  IN/OUT/INOUT  weft_fdwatch_add() or _modify()
 *                              REMOVE        weft_fdwatch_remove()
 *     CURLMOPT_TIMERFUNCTION   ms >= 0       weft_timer_arm(ms)  (0: at once)
 *                              -1            weft_timer_disarm()
 *     a socket is ready                      curl_multi_socket_action(fd, IN/OUT/ERR)
 *     the timer fired                        curl_multi_socket_action(CURL_SOCKET_TIMEOUT)
 *
 *     curl_fetch URL [URL...] [--parallel N] [--repeat K] [--timeout MS] [--workers N]
 *
 * fetches every URL K times (default 1), at most N transfers in flight
 * (default 8), each limited to MS milliseconds (default: no limit), on a
 * runtime of N workers (default 2). Without --repeat it prints one line per
 * finished transfer; it always ends with a summary line. Exit status: 0 when
 * every transfer completed (whatever its HTTP status), 1 when one failed
 * (refused, timed out, ...), 2 for bad arguments.
 *
 *     curl_fetch http://127.0.0.1:8080/ --parallel 32 --repeat 2000
 *
 * Threads. Every call into curl after curl_global_init() is made from a
 * callback of one weft_loop: the first one from a timer armed by main(),
 * the rest from the watch and timer callbacks curl asked for. A loop runs its
 * callbacks one at a time, never two at once (on whichever worker its task
 * is on, with the loop's lock between them, so each sees what the previous
 * one wrote), which is exactly the "one thread at a time" that a CURLM and
 * its easy handles require. So neither the adapter nor `struct fetch` needs
 * a lock: the only handover between threads is the oneshot that the last
 * completion sends to main(). */
#define _POSIX_C_SOURCE 200809L          /* clock_gettime */
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft.h"

/* ---- the state of one run -------------------------------------------------------- */
struct transfer;

struct fetch {
    /* set by main() before the loop runs; read-only afterwards */
    char **urls;
    size_t nurls;
    unsigned parallel;
    unsigned long total;              /* nurls * repeat */
    long timeout_ms;
    bool lines;                       /* print one line per transfer */
    weft_loop *loop;
    weft_oneshot_tx *done;            /* sent once, by finish() */

    /* loop-only: touched by callbacks of `loop` alone (see the top). main()
     * reads the counters after the oneshot arrives, once the loop is quiet. */
    CURLM *multi;
    weft_timer *timer;                /* the one timeout curl asks for */
    struct transfer *xfers;           /* `parallel` slots, easy handles reused */
    unsigned long started, finished, failed;
    unsigned long status[6];          /* [1..5]: 1xx..5xx, [0]: no/odd status */
    unsigned long long bytes;
    double t0, elapsed;               /* seconds */
    char first_error[CURL_ERROR_SIZE + 64];
    bool fatal;                       /* the multi failed: stop everything */
};

/* One slot of `parallel`: its easy handle runs one transfer after another
 * (the multi's connection cache keeps connections alive between them). */
struct transfer {
    struct fetch *f;
    CURL *easy;
    const char *url;
    unsigned long long bytes;
    char errbuf[CURL_ERROR_SIZE];
};

/* One socket curl asked us to watch; curl keeps the pointer for us
 * (curl_multi_assign) and hands it back to the socket callback. */
struct sock {
    struct fetch *f;
    weft_fdwatch *w;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void drain(struct fetch *f);

/* ---- curl -> weft: the two hooks ------------------------------------------------- */
/* A watched socket is ready: tell curl which way. Level-triggered, so what
 * curl does not read now is reported again after we return. A hang-up or
 * error comes together with the side curl wanted, so CURL_CSELECT_ERR is
 * never passed alone (curl would fail the transfer without looking); curl
 * finds the real error itself when it reads, writes or checks SO_ERROR. */
static void on_ready(weft_fdwatch *w, int fd, unsigned events, void *arg)
{
    struct sock *s = arg;
    struct fetch *f = s->f;           /* `s` may be freed inside the action */
    int running, flags = 0;
    CURLMcode mc;

    (void)w;
    if (events & WEFT_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & WEFT_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    if (events & WEFT_HANGUP)
        flags |= CURL_CSELECT_ERR;
    mc = curl_multi_socket_action(f->multi, fd, flags, &running);
    if (mc != CURLM_OK && !f->fatal) {
        snprintf(f->first_error, sizeof(f->first_error), "curl_multi_socket_action: %s",
                 curl_multi_strerror(mc));
        f->fatal = true;
    }
    drain(f);
}

/* curl's timeout expired (or "0": it wants to run as soon as possible). */
static void on_timeout(weft_timer *t, void *arg)
{
    struct fetch *f = arg;
    int running;
    CURLMcode mc;

    (void)t;
    mc = curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    if (mc != CURLM_OK && !f->fatal) {
        snprintf(f->first_error, sizeof(f->first_error), "curl_multi_socket_action: %s",
                 curl_multi_strerror(mc));
        f->fatal = true;
    }
    drain(f);
}

/* CURLMOPT_SOCKETFUNCTION. Called by curl from inside curl_multi_*() calls,
 * so on the loop: no lock. curl reports REMOVE before it closes the socket,
 * which is the order weft wants (remove the watch, then close). Returning -1
 * makes the curl call that got here fail with CURLM_ABORTED_BY_CALLBACK. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct fetch *f = userp;
    struct sock *s = socketp;
    unsigned events = 0;
    int err;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            /* from a callback of the loop: nothing of `s` runs after this */
            weft_fdwatch_remove(s->w);
            free(s);
        }
        return 0;
    }
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= WEFT_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= WEFT_WRITABLE;
    if (s != NULL)
        return weft_fdwatch_modify(s->w, events) == 0 ? 0 : -1;

    s = malloc(sizeof(*s));
    if (s == NULL)
        return -1;
    s->f = f;
    err = weft_fdwatch_add(f->loop, fd, events, on_ready, s, &s->w);
    if (err == 0 && curl_multi_assign(f->multi, fd, s) != CURLM_OK) {
        weft_fdwatch_remove(s->w);
        err = -EINVAL;
    }
    if (err) {
        free(s);
        snprintf(f->first_error, sizeof(f->first_error), "watching fd %d: %s", (int)fd,
                 weft_strerror(err));
        return -1;
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer per multi, re-armed at will. curl must
 * not be re-entered from here; arming for 0 ms defers the action to the
 * loop, which is what curl asks for. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct fetch *f = userp;

    (void)multi;
    if (timeout_ms < 0)
        return weft_timer_disarm(f->timer) == 0 ? 0 : -1;
    return weft_timer_arm(f->timer, (uint64_t)timeout_ms) == 0 ? 0 : -1;
}

/* ---- transfers --------------------------------------------------------------------- */
static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;

    (void)data;
    t->bytes += (unsigned long long)size * n;
    return size * n;
}

/* Loop only. Start the next transfer on slot `t`; false if it could not. */
static bool start_next(struct fetch *f, struct transfer *t)
{
    t->url = f->urls[f->started++ % f->nurls];
    t->bytes = 0;
    t->errbuf[0] = '\0';
    if (curl_easy_setopt(t->easy, CURLOPT_URL, t->url) != CURLE_OK ||
        curl_multi_add_handle(f->multi, t->easy) != CURLM_OK) {
        f->finished++;
        f->failed++;
        if (!f->first_error[0])
            snprintf(f->first_error, sizeof(f->first_error), "%s: could not start", t->url);
        return false;
    }
    return true;
}

/* Loop only. Account for one finished transfer. */
static void record(struct fetch *f, struct transfer *t, CURLcode res)
{
    long code = 0;
    curl_off_t us = 0;

    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &us);
    f->finished++;
    f->bytes += t->bytes;
    if (res != CURLE_OK) {
        const char *why = t->errbuf[0] ? t->errbuf : curl_easy_strerror(res);

        f->failed++;
        if (!f->first_error[0])
            snprintf(f->first_error, sizeof(f->first_error), "%s: %s", t->url, why);
        if (f->lines)
            printf("%s: error %d: %s (%.1f ms)\n", t->url, (int)res, why, (double)us / 1e3);
        return;
    }
    f->status[code >= 100 && code < 600 ? code / 100 : 0]++;
    /* printf may block on a full pipe, which a callback should not do;
     * fine for an example, not for a server */
    if (f->lines)
        printf("%s: %ld, %llu bytes, %.1f ms\n", t->url, code, t->bytes, (double)us / 1e3);
}

/* Loop only, once. Release everything curl and the loop hold, then wake
 * main(). Everything is torn down here, on the loop, because curl's cleanup
 * calls back into on_curl_socket() and on_curl_timer(). */
static void finish(struct fetch *f)
{
    weft_oneshot_tx *done = f->done;

    for (unsigned i = 0; f->xfers != NULL && i < f->parallel; i++) {
        if (f->xfers[i].easy == NULL)
            continue;
        curl_multi_remove_handle(f->multi, f->xfers[i].easy);   /* no-op if not added */
        curl_easy_cleanup(f->xfers[i].easy);
    }
    free(f->xfers);
    f->xfers = NULL;
    curl_multi_cleanup(f->multi);     /* removes the last watches (REMOVE); NULL ok */
    f->multi = NULL;
    weft_timer_free(f->timer);        /* may be the timer running us: allowed */
    f->timer = NULL;
    f->elapsed = now_s() - f->t0;
    f->done = NULL;
    /* the last thing this callback does with `f`: main() owns it after */
    weft_oneshot_send(done, NULL);
}

/* Loop only: after every curl_multi_socket_action(), collect what ended,
 * and start what is waiting in the freed slots. */
static void drain(struct fetch *f)
{
    CURLMsg *msg;
    int left;

    if (f->multi == NULL)
        return;
    while (!f->fatal && (msg = curl_multi_info_read(f->multi, &left)) != NULL) {
        struct transfer *t;
        char *priv = NULL;
        CURL *easy = msg->easy_handle;
        CURLcode res = msg->data.result;   /* msg dies with remove_handle */

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        t = (struct transfer *)(void *)priv;
        record(f, t, res);
        curl_multi_remove_handle(f->multi, easy);
        while (f->started < f->total && !start_next(f, t))
            ;                         /* a slot that fails to start takes the next URL */
    }
    if (f->fatal || f->finished == f->total)
        finish(f);
}

/* The first callback: main() arms it, so that even setting up runs on the
 * loop (curl_multi_add_handle() already calls on_curl_timer()). */
static void on_start(weft_timer *start, void *arg)
{
    struct fetch *f = arg;
    unsigned n = f->parallel;

    weft_timer_free(start);
    f->t0 = now_s();
    f->xfers = calloc(n, sizeof(*f->xfers));
    f->multi = curl_multi_init();
    if (f->xfers == NULL || f->multi == NULL ||
        weft_timer_new(f->loop, on_timeout, f, &f->timer) != 0) {
        snprintf(f->first_error, sizeof(f->first_error), "out of memory");
        f->fatal = true;
        goto fail;
    }
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, (long)n);
    for (unsigned i = 0; i < n; i++) {
        struct transfer *t = &f->xfers[i];

        t->f = f;
        t->easy = curl_easy_init();
        if (t->easy == NULL) {
            snprintf(f->first_error, sizeof(f->first_error), "curl_easy_init failed");
            f->fatal = true;
            goto fail;
        }
        curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
        curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
        curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->errbuf);
        curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(t->easy, CURLOPT_USERAGENT, "weft-curl_fetch/" WEFT_VERSION_STRING);
        if (f->timeout_ms > 0)
            curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, f->timeout_ms);
    }
    for (unsigned i = 0; i < n && f->started < f->total; i++)
        while (f->started < f->total && !start_next(f, &f->xfers[i]))
            ;
    /* nothing runs until on_curl_timer()'s timer fires, after we return;
     * unless nothing could start at all */
    if (f->finished == f->total)
        finish(f);
    return;
fail:
    finish(f);                        /* copes with what is still NULL */
}

/* ---- main: start the loop, wait for the oneshot ---------------------------------- */
/* block_on() wants a future: receive the oneshot's bare signal. */
typedef struct waiter {
    weft_oneshot_rx *rx;
    bool started;
    weft_oneshot_recv recv;
} waiter;

static weft_poll waiter_poll(waiter *w, weft_context *cx, int *out)
{
    if (!w->started) {
        weft_oneshot_recv_init(&w->recv, w->rx, NULL);
        w->started = true;
    }
    return weft_oneshot_recv_poll(&w->recv, cx, out);
}

static void waiter_drop(waiter *w)
{
    if (w->started)
        weft_oneshot_recv_drop(&w->recv);
}

WEFT_DEFINE_FUTURE(waiter, waiter_poll, waiter_drop, int);

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s URL [URL...] [--parallel N] [--repeat K] [--timeout MS] [--workers N]\n",
            argv0);
    return 2;
}

int main(int argc, char **argv)
{
    static struct fetch f;            /* big (error text); zeroed */
    unsigned long repeat = 1, workers = 2;
    bool repeat_given = false;
    weft_runtime *rt = NULL;
    weft_oneshot_rx *rx = NULL;
    weft_timer *start;
    waiter wt = { 0 };
    int err, got = -EPIPE;

    f.urls = calloc((size_t)argc, sizeof(*f.urls));
    if (f.urls == NULL)
        return 1;
    f.parallel = 8;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];

        if (strncmp(opt, "--", 2) != 0) {
            f.urls[f.nurls++] = argv[i];
            continue;
        }
        if (i + 1 >= argc) {
            free(f.urls);
            return usage(argv[0]);
        }
        unsigned long v = strtoul(argv[++i], NULL, 10);

        if (strcmp(opt, "--parallel") == 0 && v > 0 && v <= 100000)
            f.parallel = (unsigned)v;
        else if (strcmp(opt, "--repeat") == 0 && v > 0)
            repeat = v, repeat_given = true;
        else if (strcmp(opt, "--timeout") == 0)
            f.timeout_ms = (long)v;
        else if (strcmp(opt, "--workers") == 0 && v > 0 && v <= WEFT_MAX_WORKERS)
            workers = v;
        else {
            free(f.urls);
            return usage(argv[0]);
        }
    }
    if (f.nurls == 0) {
        free(f.urls);
        return usage(argv[0]);
    }
    f.total = f.nurls * repeat;
    f.lines = !repeat_given;
    if (f.parallel > f.total)
        f.parallel = (unsigned)f.total;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "curl_fetch: curl_global_init failed\n");
        free(f.urls);
        return 1;
    }
    weft_runtime_options opt = { .flavor = WEFT_MULTI_THREAD, .workers = (unsigned)workers };

    if ((err = weft_runtime_new(&rt, &opt)) != 0)
        goto fail;
    if ((err = weft_loop_new(rt, &f.loop)) != 0)
        goto fail_rt;
    if ((err = weft_oneshot_new(&f.done, &rx, 0)) != 0)
        goto fail_loop;
    if ((err = weft_timer_new(f.loop, on_start, &f, &start)) != 0 ||
        (err = weft_timer_arm(start, 0)) != 0) {
        weft_oneshot_tx_drop(f.done);
        goto fail_rx;
    }
    /* from here on `f` belongs to the loop until the oneshot arrives */
    wt.rx = rx;
    err = weft_block_on(rt, &waiter_future, &wt, &got);
    if (err == 0)
        err = got;
    /* every watch and timer is gone already (finish() ran on the loop);
     * weft_loop_free() stops its task (off the loop it would also wait for
     * a callback still running; none is). */
    weft_loop_free(f.loop);
    weft_oneshot_rx_drop(rx);
    weft_runtime_free(rt);
    curl_global_cleanup();
    if (err != 0) {
        fprintf(stderr, "curl_fetch: %s\n", weft_strerror(err));
        free(f.urls);
        return 1;
    }

    printf("%lu transfers (%lu ok, %lu failed) in %.3f s: %.0f transfers/s, %llu bytes;"
           " status 1xx %lu, 2xx %lu, 3xx %lu, 4xx %lu, 5xx %lu, none %lu\n",
           f.finished, f.finished - f.failed, f.failed, f.elapsed,
           f.elapsed > 0 ? (double)f.finished / f.elapsed : 0.0, f.bytes, f.status[1],
           f.status[2], f.status[3], f.status[4], f.status[5], f.status[0]);
    if (f.first_error[0])
        printf("first error: %s\n", f.first_error);
    free(f.urls);
    return f.failed || f.fatal || f.finished != f.total ? 1 : 0;

fail_rx:
    weft_oneshot_rx_drop(rx);
fail_loop:
    weft_loop_free(f.loop);
fail_rt:
    weft_runtime_free(rt);
fail:
    curl_global_cleanup();
    fprintf(stderr, "curl_fetch: %s\n", weft_strerror(err));
    free(f.urls);
    return 1;
}
