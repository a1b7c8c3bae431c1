/* SPDX-License-Identifier: MIT */
/* Counts that must add up (weft/observe.h, weft/sched.h), on a multi-thread
 * runtime whose tasks end in every way: completed, aborted while parked,
 * aborted before their first poll, group children cancelled by the group,
 * coroutines, timers fired and cancelled, and the rest cancelled by
 * weft_runtime_shutdown():
 *   tasks_live == tasks_spawned - tasks_completed == weft_runtime_active_tasks()
 *   tasks_aborted <= tasks_completed
 *   timers_registered == timers_fired + timers_cancelled + timers_armed
 *   polls == the sum of every worker's polls (likewise steals, overflows,
 *   parks, budget yields, LIFO polls)
 *   the task dump reports every live task, plus the completed ones whose
 *   join handle is held
 *   the Prometheus text carries the same numbers
 * and after the shutdown: nothing live, nothing armed, every spawn
 * completed. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#define WAIT_MS 20000u

static atomic_int parked;

static int co_parks(void *arg)
{
    int v;

    atomic_fetch_add(&parked, 1);
    return weft_co_chan_recv(arg, &v);
}

static int co_quick(void *arg)
{
    (void)arg;
    return weft_co_sleep(1);
}

static int co_token(void *arg)
{
    return weft_co_cancel_wait(arg);
}

typedef struct dump_count {
    unsigned long long live, completed;
} dump_count;

static int count_task(const weft_task_info *t, void *arg)
{
    dump_count *d = arg;

    if (t->state == WEFT_TASK_COMPLETED)
        d->completed++;
    else
        d->live++;
    return 0;
}

static unsigned long long prom_value(const char *text, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = text; (p = strstr(p, name)) != NULL; p += n) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtoull(p + n + 1, NULL, 10);
    }
    harness_fail(__FILE__, __LINE__, "%s not in the Prometheus text", name);
}

static void check_sums(weft_runtime *rt, const weft_metrics *m)
{
    unsigned long long polls = 0, steals = 0, overflows = 0, parks = 0, yields = 0, lifo = 0;
    weft_worker_metrics w;

    for (unsigned i = 0; i < weft_runtime_workers(rt); i++) {
        ASSERT_OK(weft_runtime_worker_metrics(rt, i, &w));
        polls += w.polls;
        steals += w.steals;
        overflows += w.overflows;
        parks += w.parks;
        yields += w.forced_yields;
        lifo += w.lifo_polls;
    }
    /* quiescent runtime: the per-worker counters and the sums agree */
    ASSERT_EQ(polls, m->polls);
    ASSERT_EQ(steals, m->steals);
    ASSERT_EQ(overflows, m->overflows);
    ASSERT_EQ(yields, m->budget_yields);
    ASSERT_EQ(lifo, m->lifo_polls);
    ASSERT(parks <= m->parks);       /* parks may move on between the reads */
}

static void snapshot(weft_runtime *rt, weft_metrics *m)
{
    memset(m, 0, sizeof(*m));
    m->size = sizeof(*m);
    ASSERT_OK(weft_runtime_metrics(rt, m));
    ASSERT_EQ(m->tasks_live, m->tasks_spawned - m->tasks_completed);
    ASSERT(m->tasks_aborted <= m->tasks_completed);
    ASSERT_EQ(m->timers_registered, m->timers_fired + m->timers_cancelled + m->timers_armed);
}

TEST(counts_add_up_through_aborts_groups_coroutines_and_shutdown)
{
    weft_runtime *rt;
    weft_chan *ch;
    weft_cancel *tok;
    weft_group *g;
    weft_join *held[8], *quick[8], *never;
    weft_metrics m;
    dump_count d = { 0, 0 };
    char *text;
    int len;
    uint64_t until;

    atomic_store(&parked, 0);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_chan_new(&ch, sizeof(int), 1));
    ASSERT_OK(weft_cancel_new(&tok));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    for (int i = 0; i < 8; i++) {
        ASSERT_OK(weft_go(rt, co_parks, ch, &held[i]));          /* parked */
        ASSERT_OK(weft_go(rt, co_quick, NULL, &quick[i]));       /* complete */
        ASSERT_OK(weft_go_group(g, co_token, tok, NULL));        /* group children */
    }
    for (int i = 0; i < 4; i++)
        ASSERT_OK(weft_go_detached(rt, co_parks, ch));
    /* a task aborted before anything polled it, as fast as it was made */
    ASSERT_OK(weft_go(rt, co_parks, ch, &never));
    weft_join_abort(never);
    until = weft_now_ms() + WAIT_MS;
    while (atomic_load(&parked) < 12 + 1 && weft_now_ms() < until)
        usleep(1000);
    for (int i = 0; i < 8; i++)
        ASSERT_OK(weft_join_wait(quick[i], NULL));
    /* four of the parked ones aborted, the group's children cancelled */
    for (int i = 0; i < 4; i++) {
        weft_join_abort(held[i]);
        ASSERT_EQ(-ECANCELED, weft_join_wait(held[i], NULL));
    }
    ASSERT_EQ(-ECANCELED, weft_join_wait(never, NULL));
    weft_group_cancel(g);
    ASSERT_EQ(-ECANCELED, weft_group_join(g));

    /* quiescent: 4 held + 4 detached parked */
    usleep(20000);
    snapshot(rt, &m);
    check_sums(rt, &m);
    ASSERT_EQ(8 + 8 + 8 + 4 + 1, m.tasks_spawned);
    ASSERT_EQ(8, m.tasks_live);
    ASSERT_EQ(weft_runtime_active_tasks(rt), m.tasks_live);
    ASSERT_EQ(4 + 8 + 1, m.tasks_aborted);
    /* the dump: the 8 parked, and the completed ones whose handle is held
     * (quick, the 4 aborted held ones, never) */
    ASSERT_OK(weft_runtime_tasks(rt, count_task, &d));
    ASSERT_EQ(8, d.live);
    ASSERT_EQ(8 + 4 + 1, d.completed);
    /* Prometheus: the same numbers */
    len = weft_metrics_prometheus(&m, NULL, 0);
    ASSERT(len > 0);
    text = malloc((size_t)len + 1);
    ASSERT(text != NULL);
    ASSERT_EQ(len, weft_metrics_prometheus(&m, text, (size_t)len + 1));
    ASSERT_EQ(m.tasks_spawned, prom_value(text, "weft_tasks_spawned_total"));
    ASSERT_EQ(m.tasks_completed, prom_value(text, "weft_tasks_completed_total"));
    ASSERT_EQ(m.tasks_aborted, prom_value(text, "weft_tasks_aborted_total"));
    ASSERT_EQ(m.tasks_live, prom_value(text, "weft_tasks_live"));
    ASSERT_EQ(m.polls, prom_value(text, "weft_polls_total"));
    ASSERT_EQ(m.timers_registered, prom_value(text, "weft_timers_registered_total"));
    free(text);

    /* shutdown cancels the rest: every spawn completed, nothing armed */
    ASSERT_OK(weft_runtime_shutdown(rt));
    snapshot(rt, &m);
    ASSERT_EQ(0, m.tasks_live);
    ASSERT_EQ(m.tasks_spawned, m.tasks_completed);
    ASSERT_EQ(4 + 8 + 1 + 8, m.tasks_aborted);
    ASSERT_EQ(0, m.timers_armed);
    ASSERT_EQ(0, weft_runtime_active_tasks(rt));
    d.live = d.completed = 0;
    ASSERT_OK(weft_runtime_tasks(rt, count_task, &d));
    ASSERT_EQ(0, d.live);
    ASSERT_EQ(8 + 8 + 1, d.completed);  /* every handle still held */
    for (int i = 0; i < 8; i++) {
        weft_join_drop(held[i]);
        weft_join_drop(quick[i]);
    }
    weft_join_drop(never);
    d.live = d.completed = 0;
    ASSERT_OK(weft_runtime_tasks(rt, count_task, &d));
    ASSERT_EQ(0, d.live + d.completed);
    ASSERT_OK(weft_group_free(g));
    weft_cancel_drop(tok);
    weft_chan_drop(ch);
    weft_runtime_free(rt);
}

/* Timers: sleeps that fire, sleeps dropped before their deadline, sleeps
 * cancelled by an abort and by shutdown: registered = fired + cancelled +
 * armed at every quiescent point. */
static int co_sleeps(void *arg)
{
    uint64_t ms = (uint64_t)(uintptr_t)arg;

    return weft_co_sleep(ms);
}

static int parked_in_sleep(const weft_task_info *t, void *arg)
{
    if (t->state == WEFT_TASK_IDLE && t->parked_at && t->parked_at->func &&
        strcmp(t->parked_at->func, "weft_co_sleep") == 0)
        (*(int *)arg)++;
    return 0;
}

TEST(timer_counts_add_up_through_aborts_and_shutdown)
{
    weft_runtime *rt;
    weft_join *j[6];
    weft_metrics m;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_go(rt, co_sleeps, (void *)(uintptr_t)1, &j[i]));       /* fire */
    for (int i = 3; i < 6; i++)
        ASSERT_OK(weft_go(rt, co_sleeps, (void *)(uintptr_t)600000, &j[i]));  /* wait */
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_join_wait(j[i], NULL));
    /* (a 1 ms sleep first polled after its deadline completes without
     * entering the wheel: the short ones need not count as fired) */
    {
        uint64_t until = weft_now_ms() + WAIT_MS;
        int n = 0;

        while (n != 3) {              /* the long ones are in the wheel */
            ASSERT(weft_now_ms() < until);
            usleep(1000);
            n = 0;
            ASSERT_OK(weft_runtime_tasks(rt, parked_in_sleep, &n));
        }
    }
    snapshot(rt, &m);
    ASSERT(m.timers_armed >= 3);
    weft_join_abort(j[3]);
    ASSERT_EQ(-ECANCELED, weft_join_wait(j[3], NULL));
    usleep(20000);
    snapshot(rt, &m);
    ASSERT(m.timers_cancelled >= 1);
    ASSERT_OK(weft_runtime_shutdown(rt));
    snapshot(rt, &m);
    ASSERT_EQ(0, m.timers_armed);
    ASSERT(m.timers_cancelled >= 3);
    for (int i = 0; i < 6; i++)
        weft_join_drop(j[i]);
    weft_runtime_free(rt);
}
