/* SPDX-License-Identifier: MIT */
/* weft/trace.h: the recording parses as JSON, every poll of a known
 * workload is on its worker's track, slices on a track never overlap, every
 * arrow ends at a poll that began after its wake-up, wake-ups from plain
 * threads land on their own track, and the API's errors. Starting, stopping
 * and writing while the workers run (under TSan: the rings' protocol). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

/* ---- A small JSON reader: enough to check the file and pick the fields -------- */
typedef struct ev {
    char ph;
    char name[32];
    char cat[32];
    long tid;
    double ts, dur;
    long long id;
} ev;

typedef struct parsed {
    ev *evs;
    size_t n, cap;
    bool top_seen;               /* "traceEvents" found */
} parsed;

typedef struct rd {
    const char *p, *end;
} rd;

static void skip_ws(rd *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\t' || *r->p == '\r'))
        r->p++;
}

static bool parse_value(rd *r, int depth, parsed *out, ev *cur, const char *key);

/* a string into buf (cut), escapes checked */
static bool parse_string(rd *r, char *buf, size_t size)
{
    size_t k = 0;

    if (r->p >= r->end || *r->p != '"')
        return false;
    r->p++;
    while (r->p < r->end && *r->p != '"') {
        char c = *r->p++;

        if ((unsigned char)c < 0x20)
            return false;
        if (c == '\\') {
            if (r->p >= r->end)
                return false;
            c = *r->p++;
            if (c == 'u') {
                for (int i = 0; i < 4; i++, r->p++)
                    if (r->p >= r->end || !strchr("0123456789abcdefABCDEF", *r->p))
                        return false;
                c = '?';
            } else if (!strchr("\"\\/bfnrt", c)) {
                return false;
            }
        }
        if (buf && k + 1 < size)
            buf[k++] = c;
    }
    if (buf)
        buf[k] = '\0';
    if (r->p >= r->end)
        return false;
    r->p++;
    return true;
}

static bool parse_number(rd *r, double *v)
{
    char *e;

    *v = strtod(r->p, &e);
    if (e == r->p || e > r->end)
        return false;
    r->p = e;
    return true;
}

static bool parse_object(rd *r, int depth, parsed *out, ev *cur)
{
    ev local;
    bool is_event = depth == 2;  /* {traceEvents: [ {event} ]} */

    if (is_event) {
        memset(&local, 0, sizeof(local));
        local.tid = -1;
        local.id = -1;
        cur = &local;
    }
    r->p++;                      /* { */
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return !is_event;
    }
    for (;;) {
        char key[32];

        skip_ws(r);
        if (!parse_string(r, key, sizeof(key)))
            return false;
        skip_ws(r);
        if (r->p >= r->end || *r->p++ != ':')
            return false;
        skip_ws(r);
        if (depth == 0 && strcmp(key, "traceEvents") == 0)
            out->top_seen = true;
        if (!parse_value(r, depth + 1, out, depth == 2 ? cur : NULL, key))
            return false;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == '}') {
            r->p++;
            break;
        }
        return false;
    }
    if (is_event) {
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 1024;
            out->evs = realloc(out->evs, out->cap * sizeof(ev));
            ASSERT(out->evs != NULL);
        }
        out->evs[out->n++] = local;
    }
    return true;
}

static bool parse_array(rd *r, int depth, parsed *out)
{
    r->p++;                      /* [ */
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return true;
    }
    for (;;) {
        skip_ws(r);
        if (!parse_value(r, depth + 1, out, NULL, NULL))
            return false;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == ']') {
            r->p++;
            return true;
        }
        return false;
    }
}

static bool parse_value(rd *r, int depth, parsed *out, ev *cur, const char *key)
{
    double v;

    skip_ws(r);
    if (r->p >= r->end)
        return false;
    switch (*r->p) {
    case '{':
        return parse_object(r, depth, out, cur);
    case '[':
        return parse_array(r, depth, out);
    case '"': {
        char buf[32];

        if (!parse_string(r, buf, sizeof(buf)))
            return false;
        if (cur && key && strcmp(key, "ph") == 0)
            cur->ph = buf[0];
        else if (cur && key && strcmp(key, "name") == 0)
            snprintf(cur->name, sizeof(cur->name), "%s", buf);
        else if (cur && key && strcmp(key, "cat") == 0)
            snprintf(cur->cat, sizeof(cur->cat), "%s", buf);
        return true;
    }
    case 't':
        if (r->end - r->p >= 4 && memcmp(r->p, "true", 4) == 0) {
            r->p += 4;
            return true;
        }
        return false;
    case 'f':
        if (r->end - r->p >= 5 && memcmp(r->p, "false", 5) == 0) {
            r->p += 5;
            return true;
        }
        return false;
    case 'n':
        if (r->end - r->p >= 4 && memcmp(r->p, "null", 4) == 0) {
            r->p += 4;
            return true;
        }
        return false;
    default:
        if (!parse_number(r, &v))
            return false;
        if (cur && key) {
            if (strcmp(key, "tid") == 0)
                cur->tid = (long)v;
            else if (strcmp(key, "ts") == 0)
                cur->ts = v;
            else if (strcmp(key, "dur") == 0)
                cur->dur = v;
            else if (strcmp(key, "id") == 0)
                cur->id = (long long)v;
        }
        return true;
    }
}

/* Write the stopped trace to a temporary file and parse it back. */
static parsed read_trace(weft_runtime *rt, long *written)
{
    parsed out = { 0 };
    FILE *f = tmpfile();
    char *buf;
    long size;
    rd r;

    ASSERT(f != NULL);
    *written = weft_trace_write(rt, f);
    ASSERT(*written > 0);
    size = ftell(f);
    ASSERT(size > 0);
    buf = malloc((size_t)size);
    ASSERT(buf != NULL);
    rewind(f);
    ASSERT_EQ((size_t)size, fread(buf, 1, (size_t)size, f));
    fclose(f);
    r.p = buf;
    r.end = buf + size;
    skip_ws(&r);
    ASSERT(r.p < r.end && *r.p == '{');
    if (!parse_value(&r, 0, &out, NULL, NULL))
        harness_fail(__FILE__, __LINE__, "not JSON at byte %ld: %.40s", (long)(r.p - buf), r.p);
    skip_ws(&r);
    ASSERT(r.p == r.end);
    ASSERT(out.top_seen);
    free(buf);
    return out;
}

static int cmp_slice(const void *a, const void *b)
{
    const ev *x = a, *y = b;

    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

/* The checks every recording must pass; returns the number of polls of
 * tasks named `name`. */
static size_t check_trace(parsed *t, long written, unsigned tracks, const char *name)
{
    ev *slices = calloc(t->n + 1, sizeof(ev));
    size_t ns = 0, named = 0, starts = 0, ends = 0, meta_names = 0;

    ASSERT(slices != NULL);
    ASSERT_EQ((size_t)written, t->n);
    for (size_t i = 0; i < t->n; i++) {
        ev *e = &t->evs[i];

        ASSERT(e->ph != 0);
        ASSERT(strchr("MXisf", e->ph) != NULL);
        ASSERT(e->tid >= 0 && e->tid < (long)tracks);
        if (e->ph == 'M' && strcmp(e->name, "thread_name") == 0)
            meta_names++;
        if (e->ph == 'X') {
            ASSERT(e->dur >= 0);
            slices[ns++] = *e;
            if (name && strcmp(e->name, name) == 0)
                named++;
        }
        if (e->ph == 's') {
            bool found = false;

            starts++;
            for (size_t j = 0; j < t->n && !found; j++)
                if (t->evs[j].ph == 'f' && t->evs[j].id == e->id) {
                    /* the poll it caused began after the wake-up */
                    ASSERT(t->evs[j].ts >= e->ts);
                    found = true;
                }
            ASSERT(found);
        }
        if (e->ph == 'f')
            ends++;
    }
    ASSERT_EQ(starts, ends);
    ASSERT_EQ((size_t)tracks, meta_names);
    /* on one track, a slice ends before the next begins (polls and parks of
     * one thread never overlap); 1 ns of slack for the printed rounding */
    qsort(slices, ns, sizeof(ev), cmp_slice);
    for (size_t i = 1; i < ns; i++)
        if (slices[i].tid == slices[i - 1].tid)
            ASSERT(slices[i - 1].ts + slices[i - 1].dur <= slices[i].ts + 0.001);
    free(slices);
    return named;
}

/* ---- Workloads ------------------------------------------------------------------ */
#define YIELDS 50

typedef struct yielder {
    weft_async co;
    weft_yield y;
    int i;
} yielder;

static weft_poll yielder_poll(yielder *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    for (f->i = 0; f->i < YIELDS; f->i++)
        WEFT_YIELD(&f->co, &f->y, cx);
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_VOID(yielder, yielder_poll, NULL);

static void run_yielders(weft_runtime *rt, unsigned tasks)
{
    weft_join **j = calloc(tasks, sizeof(*j));

    ASSERT(j != NULL);
    for (unsigned i = 0; i < tasks; i++)
        ASSERT_OK(weft_spawn(rt, &yielder_future, &(yielder){ 0 }, &j[i]));
    for (unsigned i = 0; i < tasks; i++) {
        ASSERT_OK(weft_join_wait(j[i], NULL));
        weft_join_drop(j[i]);
    }
    free(j);
}

TEST(every_poll_on_a_track_slices_never_overlap_arrows_point_forward)
{
    weft_runtime *rt;
    weft_trace_stats st;
    unsigned tasks = 40;
    long written;
    parsed t;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_trace_start(rt, 1u << 16));
    run_yielders(rt, tasks);
    ASSERT_OK(weft_trace_stop(rt));
    ASSERT_OK(weft_trace_get_stats(rt, &st));
    ASSERT_EQ(0u, st.dropped);
    ASSERT(st.recorded > 0);
    t = read_trace(rt, &written);
    /* each task is polled once per yield and once to finish (more under
     * WEFT_STRESS, never fewer) */
    {
        size_t polls = check_trace(&t, written, 3, "yielder");

        /* a join returns while the last poll is still ending on its worker,
         * and a poll under way at the stop is not recorded: up to one per
         * worker (2) may be missing */
        if (polls + 2 < (size_t)tasks * (YIELDS + 1))
            harness_fail(__FILE__, __LINE__, "%zu polls recorded, %u expected at least", polls,
                         tasks * (YIELDS + 1));
    }
    /* spawns and self-wakes are wake-ups with arrows */
    {
        size_t flows = 0;

        for (size_t i = 0; i < t.n; i++)
            flows += t.evs[i].ph == 's';
        ASSERT(flows >= tasks);
    }
    free(t.evs);
    /* a second copy of the same recording */
    {
        long again;
        parsed t2 = read_trace(rt, &again);

        ASSERT_EQ(written, again);
        free(t2.evs);
    }
    weft_runtime_free(rt);
}

static weft_poll main_yielders(void *f, weft_context *cx, void *out)
{
    (void)f;
    (void)cx;
    (void)out;
    return WEFT_READY;
}

TEST(current_thread_runtime_records_on_its_one_track)
{
    weft_runtime *rt;
    long written;
    parsed t;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .flavor = WEFT_CURRENT_THREAD }));
    ASSERT_OK(weft_trace_start(rt, 0));
    for (int i = 0; i < 5; i++)
        ASSERT_OK(weft_spawn_detached(rt, &yielder_future, &(yielder){ 0 }));
    ASSERT_OK(weft_runtime_run(rt));
    ASSERT_OK(weft_trace_stop(rt));
    t = read_trace(rt, &written);
    /* the current-thread runtime's polls all end before run() returns */
    ASSERT(check_trace(&t, written, 2, "yielder") >= 5u * (YIELDS + 1));
    free(t.evs);
    weft_runtime_free(rt);
    (void)main_yielders;
}

TEST(errors_are_reported_not_crashes)
{
    weft_runtime *rt;
    weft_trace_stats st;
    FILE *f = tmpfile();

    ASSERT(f != NULL);
    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 1 }));
    ASSERT_EQ(-EINVAL, weft_trace_start(NULL, 0));
    ASSERT_EQ(-EINVAL, weft_trace_start(rt, (size_t)WEFT_TRACE_MAX_EVENTS + 1));
    ASSERT_EQ(-EINVAL, weft_trace_stop(NULL));
    ASSERT_EQ(-EINVAL, weft_trace_write(NULL, f));
    ASSERT_EQ(-EINVAL, weft_trace_write(rt, NULL));
    ASSERT_EQ(-EINVAL, weft_trace_get_stats(rt, NULL));
    ASSERT_EQ(-ESRCH, weft_trace_stop(rt));
    ASSERT_EQ(-ESRCH, weft_trace_write(rt, f));
    ASSERT_EQ(-ESRCH, weft_trace_get_stats(rt, &st));
    ASSERT_OK(weft_trace_start(rt, 16));
    ASSERT_EQ(-EBUSY, weft_trace_start(rt, 16));
    ASSERT_EQ(-EBUSY, weft_trace_write(rt, f));
    ASSERT_OK(weft_trace_get_stats(rt, &st));
    ASSERT_OK(weft_trace_stop(rt));
    ASSERT_EQ(-ESRCH, weft_trace_stop(rt));
    ASSERT(weft_trace_write(rt, f) > 0);
    fclose(f);
    weft_runtime_free(rt);
}

TEST(a_full_ring_keeps_the_latest_events_and_counts_the_rest)
{
    weft_runtime *rt;
    weft_trace_stats st;
    long written;
    parsed t;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_trace_start(rt, 64));
    run_yielders(rt, 20);
    ASSERT_OK(weft_trace_stop(rt));
    ASSERT_OK(weft_trace_get_stats(rt, &st));
    ASSERT(st.dropped > 0);
    ASSERT(st.recorded - st.dropped <= 3 * 64);
    t = read_trace(rt, &written);
    check_trace(&t, written, 3, NULL);
    free(t.evs);
    /* a restart with another size discards the old recording */
    ASSERT_OK(weft_trace_start(rt, 1024));
    ASSERT_OK(weft_trace_stop(rt));
    ASSERT_OK(weft_trace_get_stats(rt, &st));
    ASSERT(st.recorded < 64);
    weft_runtime_free(rt);
}

/* ---- A wake-up from a plain thread ------------------------------------------------ */
typedef struct waiter {
    weft_notify_wait w;
    weft_notify *n;
    bool started;
    atomic_bool *parked;
} waiter;

static weft_poll waiter_poll(waiter *f, weft_context *cx, void *out)
{
    int r;

    (void)out;
    if (!f->started) {
        weft_notify_wait_init(&f->w, f->n);
        f->started = true;
    }
    if (weft_notify_wait_poll(&f->w, cx, &r) == WEFT_PENDING) {
        atomic_store(f->parked, true);   /* registered: a notify now wakes us */
        return WEFT_PENDING;
    }
    return WEFT_READY;
}

static void waiter_drop(waiter *f)
{
    if (f->started)
        weft_notify_wait_drop(&f->w);
}
WEFT_DEFINE_FUTURE_VOID(waiter, waiter_poll, waiter_drop);

static void *notifier_main(void *arg)
{
    weft_notify_one(arg);
    return NULL;
}

TEST(wake_from_a_plain_thread_is_on_the_other_threads_track)
{
    weft_runtime *rt;
    weft_notify *n;
    weft_join *j;
    pthread_t th;
    long written;
    parsed t;
    bool seen = false;
    atomic_bool parked = false;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_notify_new(&n));
    ASSERT_OK(weft_trace_start(rt, 0));
    ASSERT_OK(weft_spawn(rt, &waiter_future, &(waiter){ .n = n, .parked = &parked }, &j));
    /* a notify before the wait registers stores a permit and wakes nobody */
    for (int i = 0; i < 20000 && !atomic_load(&parked); i++)
        usleep(1000);
    ASSERT(atomic_load(&parked));
    ASSERT_EQ(0, pthread_create(&th, NULL, notifier_main, n));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_OK(weft_join_wait(j, NULL));
    weft_join_drop(j);
    ASSERT_OK(weft_trace_stop(rt));
    t = read_trace(rt, &written);
    check_trace(&t, written, 3, "waiter");
    seen = false;
    for (size_t i = 0; i < t.n; i++)
        if (t.evs[i].ph == 's' && t.evs[i].tid == 2)
            seen = true;               /* an arrow from the "other threads" track */
    ASSERT(seen);
    free(t.evs);
    weft_notify_free(n);
    weft_runtime_free(rt);
}

/* ---- Start, stop and write while the workers run -------------------------------- */
typedef struct spinner {
    weft_async co;
    weft_yield y;
    atomic_bool *stop;
} spinner;

static weft_poll spinner_poll(spinner *f, weft_context *cx, void *out)
{
    (void)out;
    WEFT_BEGIN(&f->co);
    while (!atomic_load(f->stop))
        WEFT_YIELD(&f->co, &f->y, cx);
    WEFT_END(&f->co);
}
WEFT_DEFINE_FUTURE_VOID(spinner, spinner_poll, NULL);

TEST(start_stop_write_while_workers_run)
{
    weft_runtime *rt;
    atomic_bool stop = false;
    weft_join *j[4];
    unsigned rounds = (unsigned)harness_scale(200);

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(weft_spawn(rt, &spinner_future, &(spinner){ .stop = &stop }, &j[i]));
    for (unsigned r = 0; r < (rounds ? rounds : 1); r++) {
        long written;

        ASSERT_OK(weft_trace_start(rt, r % 2 ? 256 : 1024));
        usleep(200);
        ASSERT_OK(weft_trace_stop(rt));
        if (r % 20 == 0) {
            parsed t = read_trace(rt, &written);

            check_trace(&t, written, 3, NULL);
            free(t.evs);
        }
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(weft_join_wait(j[i], NULL));
        weft_join_drop(j[i]);
    }
    weft_runtime_free(rt);
}

TEST(runtime_freed_while_recording_frees_the_recording)
{
    weft_runtime *rt;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_trace_start(rt, 0));
    run_yielders(rt, 4);
    weft_runtime_free(rt);     /* the harness fails the test on a leak */
}

TEST(group_children_are_named_after_their_own_type)
{
    weft_runtime *rt;
    weft_group *g;
    long written;
    parsed t;
    size_t wrapper = 0;

    ASSERT_OK(weft_runtime_new(&rt, &(weft_runtime_options){ .workers = 2 }));
    ASSERT_OK(weft_group_new(&g, rt, WEFT_GROUP_WAIT_ALL));
    ASSERT_OK(weft_trace_start(rt, 0));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(weft_group_spawn(g, &yielder_future, &(yielder){ 0 }));
    ASSERT_OK(weft_group_join(g));     /* waits for the children */
    weft_group_free(g);
    ASSERT_OK(weft_trace_stop(rt));
    t = read_trace(rt, &written);
    ASSERT(check_trace(&t, written, 3, "yielder") + 2 >= 3u * (YIELDS + 1));
    for (size_t i = 0; i < t.n; i++)
        wrapper += t.evs[i].ph == 'X' && strstr(t.evs[i].name, "wrapper") != NULL;
    ASSERT_EQ(0u, wrapper);
    free(t.evs);
    weft_runtime_free(rt);
}
