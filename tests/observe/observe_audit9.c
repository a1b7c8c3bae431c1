// SPDX-License-Identifier: MIT
/* Adversarial checks of weft/observe.h and weft/trace.h (round 9). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

typedef struct once {
    int dummy;
} once;

static weft_poll once_poll(void *self, weft_context *cx, void *out)
{
    (void)self;
    (void)cx;
    (void)out;
    return WEFT_READY;
}

/* Descriptors whose names are not ASCII: a two-character CJK name, one
 * whose 23rd byte falls inside a character (the trace keeps 23 bytes of a
 * name), and one that is not UTF-8 at all. */
#define CJK "\xe8\xa8\x88\xe7\xae\x97"                    /* 計算 */
#define LONG_NAME "abcdefghijklmnopqrstuv\xc3\xa9tail"     /* é at bytes 22-23 */
static const weft_future_type cjk_type = {
    .poll = once_poll, .size = sizeof(once), .align = _Alignof(once), .output_align = 1,
    .name = CJK,
};
static const weft_future_type long_type = {
    .poll = once_poll, .size = sizeof(once), .align = _Alignof(once), .output_align = 1,
    .name = LONG_NAME,
};
static const weft_future_type bad_type = {
    .poll = once_poll, .size = sizeof(once), .align = _Alignof(once), .output_align = 1,
    .name = "bad\xff\xc3(",
};

/* Whether buf[0..len) is well-formed UTF-8 (RFC 3629). */
static bool valid_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 2;
        else if (c >= 0xe0 && c <= 0xef)
            n = 3;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 4;
        else
            return false;
        if (i + n > len)
            return false;
        for (size_t k = 1; k < n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        if ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] > 0x9f) ||
            (c == 0xf0 && s[i + 1] < 0x90) || (c == 0xf4 && s[i + 1] > 0x8f))
            return false;
        i += n;
    }
    return true;
}

/* trace.h: "a slice per poll ... the task's descriptor name", in Chrome's
 * JSON format, which is UTF-8 text. A descriptor's UTF-8 name comes out as
 * the same characters (not each byte escaped as \u00XX, which a viewer
 * shows as Latin-1 mojibake); one cut to fit is cut between characters;
 * bytes that are not UTF-8 do not make the file invalid. */
TEST(trace_keeps_utf8_names_and_writes_valid_utf8)
{
    weft_runtime *rt;
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    long n;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_trace_start(rt, 0));
    ASSERT_OK(weft_spawn_detached(rt, &cjk_type, &(once){ 0 }));
    ASSERT_OK(weft_spawn_detached(rt, &long_type, &(once){ 0 }));
    ASSERT_OK(weft_spawn_detached(rt, &bad_type, &(once){ 0 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_trace_stop(rt));
    f = open_memstream(&buf, &len);
    ASSERT(f != NULL);
    n = weft_trace_write(rt, f);
    ASSERT(fclose(f) == 0);
    ASSERT(n > 0);
    ASSERT(valid_utf8((const unsigned char *)buf, len));
    /* the CJK name as it is */
    ASSERT(strstr(buf, "\"name\":\"" CJK "\"") != NULL);
    /* 23 bytes do not hold "...v" + "é": the cut comes before the é */
    ASSERT(strstr(buf, "\"name\":\"abcdefghijklmnopqrstuv\"") != NULL);
    /* no byte of a name escaped as a Latin-1 code point */
    ASSERT(strstr(buf, "\\u00e8") == NULL);
    ASSERT(strstr(buf, "\\u00c3") == NULL);
    /* the bytes that are not UTF-8: each a replacement character */
    ASSERT(strstr(buf, "\"name\":\"bad\\ufffd\\ufffd(\"") != NULL);
    free(buf);
    weft_runtime_free(rt);
}

/* ---- trace calls of one runtime do not wait for another's ---------------- */
typedef struct stats_call {
    weft_runtime *rt;
    atomic_int done;
    int ret;
} stats_call;

static void *stats_main(void *arg)
{
    stats_call *c = arg;
    weft_trace_stats st;

    c->ret = weft_trace_get_stats(c->rt, &st);
    atomic_store(&c->done, 1);
    return NULL;
}

typedef struct writer_call {
    weft_runtime *rt;
    FILE *f;
    long ret;
} writer_call;

static void *writer_main(void *arg)
{
    writer_call *c = arg;

    c->ret = weft_trace_write(c->rt, c->f);
    fclose(c->f);
    return NULL;
}

static void run_tasks(weft_runtime *rt, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        ASSERT_OK(weft_spawn_detached(rt, &cjk_type, &(once){ 0 }));
    ASSERT_OK(weft_runtime_run(rt));
}

/* trace.h: "a call made while another of these calls runs on the SAME
 * runtime waits for it". So while runtime A's trace is being written to a
 * pipe nobody reads yet (the write blocks: a slow consumer, or one that is
 * itself a task of another runtime), runtime B's trace calls go on. They
 * waited on one lock shared by every runtime: B's call returned only once
 * A's write was done (a deadlock when A's pipe is drained by B's tasks). */
TEST(trace_calls_on_one_runtime_do_not_wait_for_a_write_on_another)
{
    weft_runtime *a, *b;
    writer_call w;
    stats_call c = { 0 };
    pthread_t wt, ct;
    int p[2];
    char buf[4096];
    ssize_t n;
    unsigned i;

    ASSERT_OK(weft_runtime_new(&a, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_runtime_new(&b, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_trace_start(a, 0));
    ASSERT_OK(weft_trace_start(b, 0));
    run_tasks(a, 2000);             /* far more JSON than a pipe holds */
    run_tasks(b, 10);
    ASSERT_OK(weft_trace_stop(a));
    ASSERT_OK(weft_trace_stop(b));
    ASSERT_EQ(0, pipe(p));
    w.rt = a;
    w.f = fdopen(p[1], "w");
    ASSERT(w.f != NULL);
    ASSERT_EQ(0, pthread_create(&wt, NULL, writer_main, &w));
    /* the writer is stuck in A's write (the pipe fills: nobody reads it)
     * before or after B's call starts; either way B's call returns */
    c.rt = b;
    ASSERT_EQ(0, pthread_create(&ct, NULL, stats_main, &c));
    for (i = 0; i < 20000 && !atomic_load(&c.done); i++)
        usleep(1000);
    ASSERT(atomic_load(&c.done));   /* 20 s: only a hang guard */
    ASSERT_EQ(0, c.ret);
    /* let A's write finish */
    while ((n = read(p[0], buf, sizeof(buf))) > 0)
        ;
    ASSERT_EQ(0, pthread_join(wt, NULL));
    ASSERT_EQ(0, pthread_join(ct, NULL));
    ASSERT(w.ret > 0);
    close(p[0]);
    weft_runtime_free(a);
    weft_runtime_free(b);
}
