/* SPDX-License-Identifier: MIT */
/* Helpers shared by the scheduler tests (a header, not a test binary: only
 * tests/<layer>/<topic>.c files become binaries). Everything goes through
 * the public API only: the scheduler behind it is going to be replaced.
 *
 * Define _GNU_SOURCE before including this header. */
#ifndef WEFT_TESTS_SCHED_TEST_H
#define WEFT_TESTS_SCHED_TEST_H

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

/* Generous upper bound for anything a test waits for. Only a watchdog: no
 * test depends on it for its verdict when weft works. */
#define WATCHDOG_MS 20000u

static inline uint64_t ms_to_ns(unsigned ms)
{
    return (uint64_t)ms * 1000000u;
}

/* Wait (sleeping a little between looks) until *v >= target; fail the test
 * with `what` when that takes longer than `ms`. */
#define WAIT_AT_LEAST(v, target, ms, what)                                    \
    do {                                                                      \
        uint64_t end_ = harness_now_ns() + ms_to_ns(ms);                      \
        long cur_;                                                            \
        while ((cur_ = atomic_load(v)) < (long)(target)) {                    \
            if (harness_now_ns() > end_)                                      \
                harness_fail(__FILE__, __LINE__,                              \
                             "watchdog: %s: %ld of %ld after %u ms", (what),  \
                             cur_, (long)(target), (unsigned)(ms));           \
            usleep(100);                                                      \
        }                                                                     \
    } while (0)

/* Start a thread or fail the test. */
#define START_THREAD(th, fn, arg)                                             \
    ASSERT_EQ(0, pthread_create((th), NULL, (fn), (arg)))

#define JOIN_THREAD(th) ASSERT_EQ(0, pthread_join((th), NULL))

/* Join a thread, failing the test (instead of hanging until the ctest
 * timeout) when it has not finished within `ms`. */
#define JOIN_THREAD_WITHIN(th, ms, what)                                      \
    do {                                                                      \
        struct timespec ts_;                                                  \
        uint64_t ns_;                                                         \
        clock_gettime(CLOCK_REALTIME, &ts_);                                  \
        ns_ = (uint64_t)ts_.tv_nsec + ms_to_ns(ms);                           \
        ts_.tv_sec += (time_t)(ns_ / 1000000000u);                            \
        ts_.tv_nsec = (long)(ns_ % 1000000000u);                              \
        if (pthread_timedjoin_np((th), NULL, &ts_) != 0)                      \
            harness_fail(__FILE__, __LINE__, "watchdog: %s still running "    \
                         "after %u ms", (what), (unsigned)(ms));              \
    } while (0)

/* Sleep for `ms` milliseconds, whatever signals arrive. */
static inline void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- /proc/self/task/<tid>/comm ------------------------------------------- */
#define MAX_NAMES 256

typedef struct thread_names {
    int n;
    char name[MAX_NAMES][16];
} thread_names;

/* Collect the names of this process's threads that begin with `prefix`. */
static inline void read_thread_names(thread_names *tn, const char *prefix)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;

    tn->n = 0;
    ASSERT(d != NULL);
    while ((e = readdir(d)) != NULL) {
        char path[300], buf[64];
        FILE *f;
        size_t len;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue;                 /* the thread has just exited */
        if (fgets(buf, sizeof(buf), f) == NULL)
            buf[0] = '\0';
        fclose(f);
        len = strlen(buf);
        if (len && buf[len - 1] == '\n')
            buf[--len] = '\0';
        if (strncmp(buf, prefix, strlen(prefix)) != 0)
            continue;
        ASSERT(tn->n < MAX_NAMES);
        ASSERT(len < 16);
        memcpy(tn->name[tn->n++], buf, len + 1);
    }
    closedir(d);
}

static inline bool has_thread_name(const thread_names *tn, const char *name)
{
    for (int i = 0; i < tn->n; i++)
        if (strcmp(tn->name[i], name) == 0)
            return true;
    return false;
}

#endif
