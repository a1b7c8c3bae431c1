/* SPDX-License-Identifier: MIT */
/* The task dump (weft/observe.h): every cell in the books, with what its
 * trailer says (task/task.h, "The debug trailer").
 *
 * Walking the books without stopping anyone: each shard is walked under its
 * own lock (a cell is unlinked under that lock before its memory is reused
 * or freed, so every cell on the list is readable while we hold it), and
 * the records are copied out then, into memory allocated before the lock
 * was taken; the caller's callback and the printing run after the unlock.
 * So a worker waits at most for one shard's copy (about 100 ns per task in
 * it) when it spawns or frees a cell of that shard, and nothing the
 * callback does (spawn, dump again, block on a full pipe) can deadlock with
 * the runtime. Fields written by the poller are read with relaxed atomics:
 * each is recent, a record is not one instant's picture. (The timeline
 * trace is src/sched/trace.c; the stall lint reads each worker's published
 * env.cur_id / cur_name, src/sched/park.c.) */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "sched/internal.h"
#include "util/alloc.h"
#include "util/list.h"
#include "weft/observe.h"

WEFT_API const char *weft_task_state_name(weft_task_state s)
{
    switch (s) {
    case WEFT_TASK_IDLE:
        return "idle";
    case WEFT_TASK_SCHEDULED:
        return "scheduled";
    case WEFT_TASK_RUNNING:
        return "running";
    case WEFT_TASK_NOTIFIED:
        return "notified";
    case WEFT_TASK_COMPLETED:
        return "completed";
    }
    return "?";
}

static weft_task_state state_of(uint64_t st, bool yield_queued)
{
    if (st & TASK_COMPLETE)
        return WEFT_TASK_COMPLETED;
    /* a yield entry keeps RUNNING while it waits in a run queue (task.h) */
    if ((st & TASK_RUNNING) && yield_queued)
        return WEFT_TASK_SCHEDULED;
    if (st & TASK_RUNNING)
        return (st & TASK_NOTIFIED) ? WEFT_TASK_NOTIFIED : WEFT_TASK_RUNNING;
    return (st & TASK_NOTIFIED) ? WEFT_TASK_SCHEDULED : WEFT_TASK_IDLE;
}

/* One cell, under its shard's lock. false: not reportable (its last
 * reference is gone: it waits on a dead stack to be unlinked). */
static bool read_cell(struct weft__task *t, uint64_t now, weft_task_info *out)
{
    /* relaxed: a picture of the state; nothing is read through it */
    uint64_t st = atomic_load_explicit(&t->state, memory_order_relaxed);
    struct weft__task_dbg *d;
    uint64_t at;

    if (TASK_REFS(st) == 0)
        return false;
    d = weft__task_dbg(t);           /* t->type: set before the cell was linked */
    out->id = d->id;
    out->type_name = weft__task_display_name(t);
    /* relaxed: the queued flag, racy as the rest of the picture */
    out->state = state_of(st, atomic_load_explicit(&d->yield_queued, memory_order_relaxed));
    out->cancelled = (st & TASK_CANCELLED) != 0;
    /* relaxed: the poller's fields, racy by design (see above) */
    out->worker = atomic_load_explicit(&d->worker, memory_order_relaxed);
    out->polls = atomic_load_explicit(&d->polls, memory_order_relaxed);
    at = atomic_load_explicit(&d->poll_ns, memory_order_relaxed);
    out->age_ns = now > d->spawned_ns ? now - d->spawned_ns : 0;
    out->since_poll_ns = at && now > at ? now - at : 0;
    if (st & TASK_COMPLETE) {
        out->parked_at = out->parked_inner = NULL;
    } else {
        out->parked_at = atomic_load_explicit(&d->site, memory_order_relaxed);
        out->parked_inner = atomic_load_explicit(&d->inner, memory_order_relaxed);
    }
    return true;
}

WEFT_API int weft_runtime_tasks(weft_runtime *rt, weft_task_visit_fn *visit, void *arg)
{
    if (rt == NULL || visit == NULL)
        return -EINVAL;
    for (unsigned i = 0; i < rt->nshards; i++) {
        struct shard *sh = &rt->shards[i];
        struct weft__list *n;
        weft_task_info *recs;
        size_t cap, k = 0;
        uint64_t now;
        int rc = 0;

        spin_lock(&sh->lock);
        cap = sh->count;
        spin_unlock(&sh->lock);
        if (cap == 0)
            continue;
        cap += cap / 4 + 16;          /* room for spawns meanwhile */
        recs = weft__malloc(cap * sizeof(*recs));
        if (recs == NULL)
            return -ENOMEM;
        now = weft__task_clock_ns();
        spin_lock(&sh->lock);
        for (n = sh->cells.next; n != &sh->cells && k < cap; n = n->next)
            if (read_cell(weft__container_of(n, struct weft__task, owned), now, &recs[k]))
                k++;
        spin_unlock(&sh->lock);
        for (size_t j = 0; j < k && rc == 0; j++)
            rc = visit(&recs[j], arg);
        weft__free(recs);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- The text form ---------------------------------------------------------------- */
struct printer {
    FILE *f;
    int count;
};

static void print_site(FILE *f, const weft_async_site *s)
{
    if (s->file)
        fprintf(f, "%s (%s:%u)", s->func ? s->func : "?", s->file, s->line);
    else
        fprintf(f, "in %s", s->func ? s->func : "?");
}

static int print_task(const weft_task_info *ti, void *arg)
{
    struct printer *p = arg;
    char worker[16] = "-";

    if (ti->worker >= 0)
        snprintf(worker, sizeof(worker), "w%d", ti->worker);
    fprintf(p->f, "%8llu %-9s%s %-6s %10.1f %8llu %10.1f  %s", ti->id,
            weft_task_state_name(ti->state), ti->cancelled ? "!" : " ", worker,
            (double)ti->age_ns / 1e6, ti->polls,
            ti->polls ? (double)ti->since_poll_ns / 1e6 : 0.0,
            ti->type_name ? ti->type_name : "?");
    if (ti->parked_at) {
        fputs("  at ", p->f);
        print_site(p->f, ti->parked_at);
        if (ti->parked_inner && ti->parked_inner != ti->parked_at) {
            fputs(" < ", p->f);
            print_site(p->f, ti->parked_inner);
        }
    }
    fputc('\n', p->f);
    p->count++;
    return 0;
}

WEFT_API int weft_runtime_dump(weft_runtime *rt, FILE *f)
{
    struct printer p = { f, 0 };
    int err;

    if (rt == NULL || f == NULL)
        return -EINVAL;
    fprintf(f, "weft task dump: %u worker%s, %zu active task%s, up %.3f s\n", rt->nworkers,
            rt->nworkers == 1 ? "" : "s", weft_runtime_active_tasks(rt),
            weft_runtime_active_tasks(rt) == 1 ? "" : "s",
            (double)(weft__task_clock_ns() - rt->created_ns) / 1e9);
    fputs("  queues:", f);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        weft_worker_metrics m;

        if (weft_runtime_worker_metrics(rt, i, &m) == 0)
            fprintf(f, " w%u=%llu", i, m.local_queue_depth);
    }
    /* relaxed: a hint, as everywhere */
    fprintf(f, " inject=%zu\n", atomic_load_explicit(&rt->inject.len, memory_order_relaxed));
    fprintf(f, "%8s %-10s %-6s %10s %8s %10s  %s\n", "id", "state", "worker", "age_ms", "polls",
            "idle_ms", "type / parked at (outer < inner)");
    err = weft_runtime_tasks(rt, print_task, &p);
    if (err < 0)
        return err;
    fprintf(f, "weft task dump: %d task%s listed\n", p.count, p.count == 1 ? "" : "s");
    if (fflush(f) != 0 || ferror(f))
        return -EIO;
    return p.count;
}
