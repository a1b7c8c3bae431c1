/* SPDX-License-Identifier: MIT */
/* The timeline recorder (weft/trace.h): per-worker rings written without a
 * lock (the protocol is in sched/trace.h), and the Chrome JSON writer. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/internal.h"
#include "sched/trace.h"
#include "task/task.h"
#include "util/alloc.h"
#include "weft/trace.h"

/* The task this thread is polling while a trace records (for the "woken
 * by" of wake-ups made during the poll), and its name. */
static WEFT_TLS struct {
    const void *task;
    const char *name;
} cur;


uint64_t weft__trace_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct weft__trace *trace_of(struct weft_runtime *rt)
{
    /* acquire: pairs with the release store in weft_trace_start() */
    return atomic_load_explicit(&rt->trace, memory_order_acquire);
}

/* Write one event into ring i (owner: a worker) or the foreign ring. */
static void put(struct weft__trace *tr, struct worker *w, const struct weft__trace_ev *e)
{
    struct weft__trace_ring *r;
    uint64_t n;

    if (w == NULL) {
        r = &tr->rings[tr->nrings - 1];
        pthread_mutex_lock(&tr->foreign_lock);
        /* relaxed: the stopper takes foreign_lock after clearing `on` */
        if (atomic_load_explicit(&tr->on, memory_order_relaxed) && e->ts >= tr->t0) {
            n = atomic_load_explicit(&r->n, memory_order_relaxed);
            r->ev[n % tr->cap] = *e;
            atomic_store_explicit(&r->n, n + 1, memory_order_relaxed);
        }
        pthread_mutex_unlock(&tr->foreign_lock);
        return;
    }
    r = &tr->rings[w->index];
    /* seq_cst, both: the writer's half of the protocol (sched/trace.h) */
    atomic_store_explicit(&r->busy, 1, memory_order_seq_cst);
    /* t0 is the starter's, published by `on`; an event that began before
     * it (a poll under way across a stop and a start) is not this
     * recording's */
    if (atomic_load_explicit(&tr->on, memory_order_seq_cst) && e->ts >= tr->t0) {
        /* relaxed: only this thread writes n; stats read a snapshot */
        n = atomic_load_explicit(&r->n, memory_order_relaxed);
        r->ev[n % tr->cap] = *e;
        atomic_store_explicit(&r->n, n + 1, memory_order_relaxed);
    }
    /* release: the event happens before the stopper's load of 0 */
    atomic_store_explicit(&r->busy, 0, memory_order_release);
}

/* Length of the UTF-8 sequence at s (1 .. 4), or 0 when s does not start
 * a well-formed one (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF). s is NUL-terminated. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;                 /* the NUL stops here too */
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

/* The name, cut to TR_NAME - 1 bytes at a character's boundary: a UTF-8
 * name (a descriptor's, a coroutine's) is never cut inside a character. */
static void set_name(struct weft__trace_ev *e, const char *name)
{
    size_t i = 0, n;

    if (name)
        while (name[i]) {
            n = utf8_len((const unsigned char *)name + i);
            if (n == 0)
                n = 1;                /* not UTF-8: a byte; put_str() replaces it */
            if (i + n > TR_NAME - 1)
                break;
            memcpy(e->name + i, name + i, n);
            i += n;
        }
    e->name[i] = '\0';
}

uint64_t weft__trace_poll_begin(struct weft__task *t)
{
    cur.task = t;
    cur.name = weft__task_display_name(t);
    return weft__trace_now();
}

void weft__trace_poll_end(struct worker *w, uint64_t t0, bool requeued)
{
    struct weft__trace *tr = trace_of(w->rt);
    struct weft__trace_ev e;

    e.ts = t0;
    e.dur = weft__trace_now() - t0;
    e.task = cur.task;
    e.from = NULL;
    e.kind = TR_POLL;
    e.arg = requeued;
    set_name(&e, cur.name ? cur.name : "task");
    cur.task = NULL;
    cur.name = NULL;
    if (tr)
        put(tr, w, &e);
}

void weft__trace_wake(struct weft_runtime *rt, struct worker *w, struct weft__task *t)
{
    struct weft__trace *tr = trace_of(rt);
    struct weft__trace_ev e;

    if (tr == NULL)
        return;
    e.ts = weft__trace_now();
    e.dur = 0;
    e.task = t;
    e.from = cur.task;
    e.kind = TR_WAKE;
    e.arg = 0;
    e.name[0] = '\0';
    put(tr, w, &e);
}

void weft__trace_mark(struct weft_runtime *rt, struct worker *w, uint32_t kind, uint32_t arg,
                      uint64_t ts, uint64_t dur)
{
    struct weft__trace *tr = trace_of(rt);
    struct weft__trace_ev e;

    if (tr == NULL)
        return;
    e.ts = ts ? ts : weft__trace_now();
    e.dur = dur;
    e.task = NULL;
    e.from = NULL;
    e.kind = kind;
    e.arg = arg;
    e.name[0] = '\0';
    put(tr, w, &e);
}

void weft__trace_free(struct weft__trace *tr)
{
    if (tr == NULL)
        return;
    for (unsigned i = 0; i < tr->nrings; i++)
        weft__free(tr->rings[i].ev);
    pthread_mutex_destroy(&tr->foreign_lock);
    weft__free(tr);
}

/* ---- Start, stop ---------------------------------------------------------------------- */
static struct weft__trace *trace_new(struct weft_runtime *rt)
{
    unsigned nrings = rt->nworkers + 1;
    struct weft__trace *tr = weft__calloc(1, sizeof(*tr) + nrings * sizeof(tr->rings[0]));

    if (tr == NULL)
        return NULL;
    tr->nrings = nrings;
    tr->rings = (struct weft__trace_ring *)(void *)(tr + 1);
    pthread_mutex_init(&tr->foreign_lock, NULL);
    atomic_init(&tr->on, false);
    for (unsigned i = 0; i < nrings; i++) {
        atomic_init(&tr->rings[i].n, 0);
        atomic_init(&tr->rings[i].busy, 0);
    }
    return tr;
}

WEFT_API int weft_trace_start(weft_runtime *rt, size_t events_per_thread)
{
    struct weft__trace *tr;
    size_t cap = events_per_thread ? events_per_thread : WEFT_TRACE_DEFAULT_EVENTS;
    int err = 0;

    if (rt == NULL || events_per_thread > WEFT_TRACE_MAX_EVENTS)
        return -EINVAL;
    pthread_mutex_lock(&rt->trace_lock);
    tr = trace_of(rt);
    if (tr && atomic_load_explicit(&tr->on, memory_order_relaxed)) {
        err = -EBUSY;
        goto out;
    }
    if (tr == NULL) {
        if ((tr = trace_new(rt)) == NULL) {
            err = -ENOMEM;
            goto out;
        }
        /* release: the struct before its pointer (trace_of() acquires) */
        atomic_store_explicit(&rt->trace, tr, memory_order_release);
    }
    /* stopped: nobody writes the rings (sched/trace.h), so they are ours */
    if (cap != tr->cap) {
        for (unsigned i = 0; i < tr->nrings; i++) {
            struct weft__trace_ev *ev = weft__malloc(cap * sizeof(*ev));

            if (ev == NULL) {
                err = -ENOMEM;   /* the rings that were made keep the old size */
                goto out;
            }
            weft__free(tr->rings[i].ev);
            tr->rings[i].ev = ev;
        }
        tr->cap = cap;
    }
    for (unsigned i = 0; i < tr->nrings; i++)
        atomic_store_explicit(&tr->rings[i].n, 0, memory_order_relaxed);
    tr->t0 = weft__trace_now();
    /* seq_cst (the protocol's `on`): publishes the rings' new state to the
     * writers' seq_cst load */
    atomic_store_explicit(&tr->on, true, memory_order_seq_cst);
    /* release: a worker that sees it sees rt->trace */
    atomic_store_explicit(&rt->tracing, true, memory_order_release);
out:
    if (err == -ENOMEM && tr && tr->cap != cap) {
        /* some rings were resized and some not: make them agree */
        for (unsigned i = 0; i < tr->nrings; i++) {
            weft__free(tr->rings[i].ev);
            tr->rings[i].ev = NULL;
        }
        tr->cap = 0;
    }
    pthread_mutex_unlock(&rt->trace_lock);
    return err;
}

WEFT_API int weft_trace_stop(weft_runtime *rt)
{
    struct weft__trace *tr;
    int err = 0;

    if (rt == NULL)
        return -EINVAL;
    pthread_mutex_lock(&rt->trace_lock);
    tr = trace_of(rt);
    if (tr == NULL || !atomic_load_explicit(&tr->on, memory_order_relaxed)) {
        err = -ESRCH;
        goto out;
    }
    /* relaxed: a hint; `on` decides */
    atomic_store_explicit(&rt->tracing, false, memory_order_relaxed);
    /* seq_cst: the stopper's half (sched/trace.h) */
    atomic_store_explicit(&tr->on, false, memory_order_seq_cst);
    for (unsigned i = 0; i + 1 < tr->nrings; i++)
        while (atomic_load_explicit(&tr->rings[i].busy, memory_order_seq_cst))
            sched_yield();   /* a writer is inside one event: a few ns */
    pthread_mutex_lock(&tr->foreign_lock);
    pthread_mutex_unlock(&tr->foreign_lock);
out:
    pthread_mutex_unlock(&rt->trace_lock);
    return err;
}

WEFT_API int weft_trace_get_stats(weft_runtime *rt, weft_trace_stats *out)
{
    struct weft__trace *tr;

    if (rt == NULL || out == NULL)
        return -EINVAL;
    pthread_mutex_lock(&rt->trace_lock);
    tr = trace_of(rt);
    if (tr == NULL || tr->cap == 0) {
        pthread_mutex_unlock(&rt->trace_lock);
        return -ESRCH;
    }
    out->recorded = out->dropped = 0;
    for (unsigned i = 0; i < tr->nrings; i++) {
        uint64_t n = atomic_load_explicit(&tr->rings[i].n, memory_order_relaxed);

        out->recorded += n;
        out->dropped += n > tr->cap ? n - tr->cap : 0;
    }
    pthread_mutex_unlock(&rt->trace_lock);
    return 0;
}

/* ---- The JSON writer ------------------------------------------------------------------ */
struct poll_ref {
    const void *task;
    uint64_t ts;
    unsigned tid;
};

static int cmp_poll(const void *a, const void *b)
{
    const struct poll_ref *x = a, *y = b;

    if (x->task != y->task)
        return (uintptr_t)x->task < (uintptr_t)y->task ? -1 : 1;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

/* The first poll of `task` that began at or after ts, or NULL. */
static const struct poll_ref *next_poll(const struct poll_ref *p, size_t n, const void *task,
                                        uint64_t ts)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if ((uintptr_t)p[mid].task < (uintptr_t)task ||
            (p[mid].task == task && p[mid].ts < ts))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && p[lo].task == task ? &p[lo] : NULL;
}

/* A JSON string: UTF-8 characters as they are (JSON text is UTF-8: a
 * name's bytes escaped one by one as \u00XX would show as Latin-1 mojibake),
 * control characters escaped, and a byte that starts no well-formed UTF-8
 * sequence as U+FFFD (raw, it would make the whole file invalid). */
static void put_str(FILE *f, const char *s)
{
    fputc('"', f);
    while (*s) {
        unsigned char c = (unsigned char)*s;
        size_t n;

        if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
            s++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            s++;
        } else if ((n = utf8_len((const unsigned char *)s)) == 0) {
            fputs("\\ufffd", f);
            s++;
        } else {
            fwrite(s, 1, n, f);
            s += n;
        }
    }
    fputc('"', f);
}

/* µs since the start, to the ns */
static void put_ts(FILE *f, const char *key, uint64_t ns)
{
    fprintf(f, ",\"%s\":%llu.%03u", key, (unsigned long long)(ns / 1000u), (unsigned)(ns % 1000u));
}

static uint64_t rel(const struct weft__trace *tr, uint64_t ts)
{
    return ts > tr->t0 ? ts - tr->t0 : 0;
}

#define RING_FOR_EACH(tr, r, e)                                                                 \
    for (uint64_t n_ = atomic_load_explicit(&(r)->n, memory_order_relaxed),                    \
                  k_ = n_ > (tr)->cap ? n_ - (tr)->cap : 0;                                     \
         k_ < n_ && ((e) = &(r)->ev[k_ % (tr)->cap], 1); k_++)

WEFT_API long weft_trace_write(weft_runtime *rt, FILE *f)
{
    struct weft__trace *tr;
    struct poll_ref *polls = NULL;
    size_t npolls = 0, cap_polls = 0;
    uint64_t flow = 0;
    long count = 0;
    const struct weft__trace_ev *e;
    const char *sep = "";
    int err = 0;

    if (rt == NULL || f == NULL)
        return -EINVAL;
    pthread_mutex_lock(&rt->trace_lock);
    tr = trace_of(rt);
    if (tr == NULL || tr->cap == 0) {
        err = -ESRCH;
        goto out;
    }
    if (atomic_load_explicit(&tr->on, memory_order_relaxed)) {
        err = -EBUSY;
        goto out;
    }
    /* every poll, sorted by (task, start), for the wake -> poll arrows */
    for (unsigned i = 0; i < tr->nrings; i++)
        cap_polls += (size_t)(atomic_load_explicit(&tr->rings[i].n, memory_order_relaxed) >
                                      tr->cap ?
                                  tr->cap :
                                  atomic_load_explicit(&tr->rings[i].n, memory_order_relaxed));
    if (cap_polls && (polls = weft__malloc(cap_polls * sizeof(*polls))) == NULL) {
        err = -ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < tr->nrings; i++) {
        struct weft__trace_ring *r = &tr->rings[i];

        RING_FOR_EACH(tr, r, e) {
            if (e->kind == TR_POLL)
                polls[npolls++] = (struct poll_ref){ e->task, e->ts, i };
        }
    }
    if (npolls)
        qsort(polls, npolls, sizeof(*polls), cmp_poll);

    fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n", f);
    fprintf(f, "{\"ph\":\"M\",\"pid\":1,\"tid\":0,\"name\":\"process_name\","
               "\"args\":{\"name\":\"weft runtime\"}}");
    count++;
    for (unsigned i = 0; i < tr->nrings; i++) {
        fprintf(f, ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%u,\"name\":\"thread_name\",\"args\":{\"name\":", i);
        put_str(f, i + 1 < tr->nrings ? rt->workers[i].name : "other threads");
        fputs("}}", f);
        fprintf(f, ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%u,\"name\":\"thread_sort_index\","
                   "\"args\":{\"sort_index\":%u}}", i, i);
        count += 2;
    }
    sep = ",\n";
    for (unsigned i = 0; i < tr->nrings; i++) {
        struct weft__trace_ring *r = &tr->rings[i];

        RING_FOR_EACH(tr, r, e) {
            const struct poll_ref *to;

            switch (e->kind) {
            case TR_POLL:
                fprintf(f, "%s{\"ph\":\"X\",\"cat\":\"poll\",\"pid\":1,\"tid\":%u,\"name\":", sep, i);
                put_str(f, e->name);
                put_ts(f, "ts", rel(tr, e->ts));
                put_ts(f, "dur", e->dur);
                fprintf(f, ",\"args\":{\"task\":\"%p\",\"requeued\":%s}}", e->task,
                        e->arg ? "true" : "false");
                count++;
                break;
            case TR_PARK:
                fprintf(f, "%s{\"ph\":\"X\",\"cat\":\"park\",\"pid\":1,\"tid\":%u,"
                           "\"name\":\"idle\"", sep, i);
                put_ts(f, "ts", rel(tr, e->ts));
                put_ts(f, "dur", e->dur);
                fputs("}", f);
                count++;
                break;
            case TR_WAKE:
                to = next_poll(polls, npolls, e->task, e->ts);
                fprintf(f, "%s{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"wake\",\"pid\":1,\"tid\":%u,"
                           "\"name\":\"wake\"", sep, i);
                put_ts(f, "ts", rel(tr, e->ts));
                fprintf(f, ",\"args\":{\"task\":\"%p\",\"by\":\"%p\"}}", e->task, e->from);
                count++;
                if (to == NULL)
                    break;            /* its poll was not recorded */
                flow++;
                fprintf(f, "%s{\"ph\":\"s\",\"cat\":\"wake\",\"name\":\"wake\",\"pid\":1,"
                           "\"tid\":%u,\"id\":%llu", sep, i, (unsigned long long)flow);
                put_ts(f, "ts", rel(tr, e->ts));
                fprintf(f, "}%s{\"ph\":\"f\",\"bp\":\"e\",\"cat\":\"wake\",\"name\":\"wake\","
                           "\"pid\":1,\"tid\":%u,\"id\":%llu", sep, to->tid,
                        (unsigned long long)flow);
                put_ts(f, "ts", rel(tr, to->ts));
                fputs("}", f);
                count += 2;
                break;
            case TR_STEAL:
            case TR_TIMERS:
            case TR_IO:
                fprintf(f, "%s{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"%s\",\"pid\":1,\"tid\":%u,"
                           "\"name\":\"%s\"", sep,
                        e->kind == TR_STEAL ? "steal" : e->kind == TR_TIMERS ? "timer" : "io", i,
                        e->kind == TR_STEAL    ? "steal" :
                        e->kind == TR_TIMERS   ? "timers fired" :
                                                 "io ready");
                put_ts(f, "ts", rel(tr, e->ts));
                if (e->kind == TR_STEAL)
                    fprintf(f, ",\"args\":{\"from_worker\":%u,\"tasks\":%llu}}", e->arg,
                            (unsigned long long)e->dur);
                else
                    fprintf(f, ",\"args\":{\"count\":%u}}", e->arg);
                count++;
                break;
            default:
                break;
            }
        }
    }
    fputs("\n]}\n", f);
    if (fflush(f) != 0 || ferror(f))
        err = -EIO;
out:
    pthread_mutex_unlock(&rt->trace_lock);
    weft__free(polls);
    return err ? err : count;
}
