// SPDX-License-Identifier: MIT
/* Adversarial checks of weft/observe.h and weft/trace.h: writes that fail
 * (-EIO), names of unknown states and kinds, the Prometheus text cut at
 * every small length (always NUL-terminated, always the full length
 * returned), trace rings of 1..3 events, a trace restarted and one left
 * recording when the runtime is freed. Public headers only. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "weft.h"
#include <weft/observe.h>
#include <weft/trace.h>

static int spin_body(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++)
        weft_co_yield();
    return 0;
}

TEST(observe_failed_writes_and_unknown_names)
{
    weft_runtime *rt = NULL;
    FILE *ro = fopen("/dev/null", "r"), *full = fopen("/dev/full", "w");

    ASSERT(ro != NULL && full != NULL);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_EQ(-EIO, weft_runtime_dump(rt, ro));
    ASSERT_EQ(-EIO, weft_runtime_dump(rt, full));
    ASSERT_EQ(0, strcmp("?", weft_task_state_name((weft_task_state)99)));
    ASSERT_EQ(0, strcmp("?", weft_task_state_name((weft_task_state)-1)));
    ASSERT_EQ(0, strcmp("?", weft_lint_name((weft_lint_kind)0)));
    ASSERT_EQ(0, strcmp("?", weft_lint_name((weft_lint_kind)99)));
    ASSERT(weft_hist_bucket_upper_ns(WEFT_HIST_BUCKETS - 1) == UINT64_MAX);
    ASSERT(weft_hist_bucket_upper_ns(UINT32_MAX) == UINT64_MAX);
    ASSERT_EQ(1024, weft_hist_bucket_upper_ns(0));
    /* trace: nothing recorded yet; then writes that fail */
    ASSERT_EQ(-ESRCH, weft_trace_write(rt, full));
    ASSERT_EQ(-ESRCH, weft_trace_stop(rt));
    ASSERT_EQ(-EINVAL, weft_trace_start(rt, (size_t)WEFT_TRACE_MAX_EVENTS + 1));
    ASSERT_OK(weft_trace_start(rt, 1));
    ASSERT_EQ(-EBUSY, weft_trace_start(rt, 1));
    ASSERT_EQ(-EBUSY, weft_trace_write(rt, full));
    ASSERT_OK(weft_trace_stop(rt));
    clearerr(full);
    ASSERT_EQ(-EIO, weft_trace_write(rt, full));
    ASSERT_EQ(-EIO, weft_trace_write(rt, ro));
    fclose(ro);
    fclose(full);
    weft_runtime_free(rt);
}

TEST(prometheus_text_cut_at_every_small_length)
{
    weft_runtime *rt = NULL;
    weft_metrics m = { .size = sizeof(m) };
    char buf[64];
    int need;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_OK(weft_runtime_metrics(rt, &m));
    need = weft_metrics_prometheus(&m, NULL, 0);
    ASSERT(need > 0);
    for (size_t len = 1; len < sizeof(buf); len++) {
        memset(buf, 'x', sizeof(buf));
        ASSERT_EQ(need, weft_metrics_prometheus(&m, buf, len));
        ASSERT_EQ(len - 1, strlen(buf));          /* a NUL-terminated prefix */
        if (len < sizeof(buf) - 1)
            ASSERT_EQ('x', buf[len]);             /* nothing written past len */
    }
    m.size = sizeof(m) - 1;
    ASSERT_EQ(-EINVAL, weft_metrics_prometheus(&m, buf, sizeof(buf)));
    weft_runtime_free(rt);
}

TEST(trace_tiny_rings_restart_and_free_while_recording)
{
    for (size_t ev = 1; ev <= 3; ev++) {
        weft_runtime *rt = NULL;
        weft_join *j[8];
        weft_trace_stats st;
        FILE *f = fopen("/dev/null", "w");

        ASSERT(f != NULL);
        ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
        ASSERT_OK(weft_trace_start(rt, ev));
        for (int i = 0; i < 8; i++)
            ASSERT_OK(weft_go(rt, spin_body, NULL, &j[i]));
        for (int i = 0; i < 8; i++) {
            ASSERT_OK(weft_join_wait(j[i], NULL));
            weft_join_drop(j[i]);
        }
        ASSERT_OK(weft_trace_stop(rt));
        ASSERT_OK(weft_trace_get_stats(rt, &st));
        ASSERT(st.recorded > st.dropped);
        ASSERT(weft_trace_write(rt, f) >= 0);
        ASSERT(weft_trace_write(rt, f) >= 0);     /* again: a second copy */
        ASSERT_OK(weft_trace_start(rt, ev));      /* restart, then free while recording */
        fclose(f);
        weft_runtime_free(rt);
    }
}
