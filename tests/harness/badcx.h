/* SPDX-License-Identifier: MIT */
/* Checks of weft/core.h's rule for a poll without a waker (a NULL context,
 * or a zeroed one whose waker pointer is NULL), shared by the audit-9
 * tests of every layer. Everything is static (each test file is its own
 * binary). */
#ifndef WEFT_TESTS_BADCX_H
#define WEFT_TESTS_BADCX_H

#include <string.h>
#include <sys/types.h>

#include "harness.h"
#include "weft.h"

#define BADCX_UNUSED __attribute__((unused))

/* The output of a future of type `ty` (int or ssize_t) as a number. */
static BADCX_UNUSED long long badcx_out(const weft_future_type *ty, const void *out)
{
    if (ty->output_size == sizeof(ssize_t)) {
        ssize_t v;

        memcpy(&v, out, sizeof(v));
        return v;
    }
    if (ty->output_size == sizeof(int)) {
        int v;

        memcpy(&v, out, sizeof(v));
        return v;
    }
    harness_fail(__FILE__, __LINE__, "%s: output of %zu bytes", ty->name, ty->output_size);
    return 0;
}

/* Poll `f` (of type `ty`, an int or ssize_t output) without a waker, both
 * ways: READY with -EINVAL each time, the output written. */
static BADCX_UNUSED void badcx_einval(const weft_future_type *ty, void *f)
{
    weft_context zero;
    unsigned char out[16];

    memset(&zero, 0, sizeof(zero));
    memset(out, 0x5a, sizeof(out));
    if (ty->poll(f, &zero, out) != WEFT_READY)
        harness_fail(__FILE__, __LINE__, "%s: a zeroed context was not READY", ty->name);
    if (badcx_out(ty, out) != -EINVAL)
        harness_fail(__FILE__, __LINE__, "%s: a zeroed context gave %lld, not -EINVAL",
                     ty->name, badcx_out(ty, out));
    memset(out, 0x5a, sizeof(out));
    if (ty->poll(f, NULL, out) != WEFT_READY)
        harness_fail(__FILE__, __LINE__, "%s: a NULL context was not READY", ty->name);
    if (badcx_out(ty, out) != -EINVAL)
        harness_fail(__FILE__, __LINE__, "%s: a NULL context gave %lld, not -EINVAL",
                     ty->name, badcx_out(ty, out));
}

/* The whole rule for a future `f` of type `ty` set up to wait, polled from
 * a task with that task's context `cx`: without a waker it is READY with
 * -EINVAL and changes nothing, so that a real poll then still waits; once
 * parked, the same again; then it is dropped. (Under WEFT_STRESS the real
 * poll may be refused by the budget: PENDING as well.) */
static BADCX_UNUSED void badcx_check(const weft_future_type *ty, void *f, weft_context *cx)
{
    unsigned char out[16];

    badcx_einval(ty, f);
    if (ty->poll(f, cx, out) != WEFT_PENDING)
        harness_fail(__FILE__, __LINE__, "%s: no longer waiting after a poll without a waker",
                     ty->name);
    badcx_einval(ty, f);
    if (ty->poll(f, cx, out) != WEFT_PENDING)
        harness_fail(__FILE__, __LINE__, "%s: no longer waiting after a parked poll without a waker",
                     ty->name);
    ty->drop(f);
}

/* Run fn(cx, arg) once inside a root task of rt (weft_block_on), with that
 * task's context. */
typedef struct badcx_task {
    void (*fn)(weft_context *cx, void *arg);
    void *arg;
} badcx_task;

static weft_poll badcx_task_poll(badcx_task *t, weft_context *cx, void *out)
{
    (void)out;
    t->fn(cx, t->arg);
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_VOID_STATIC(badcx_task, badcx_task_poll, NULL);

static BADCX_UNUSED void badcx_in_task(weft_runtime *rt, void (*fn)(weft_context *, void *),
                                       void *arg)
{
    ASSERT_OK(weft_block_on(rt, &badcx_task_future, &(badcx_task){ fn, arg }, NULL));
}

#endif /* WEFT_TESTS_BADCX_H */
