/* SPDX-License-Identifier: MIT */
/* weft's test harness: a few macros and a runner, no framework.
 *
 *   TEST(name) { ... ASSERT_EQ(expected, actual); ... }
 *
 * Every test binary runs one test by name (`./t name`, as ctest does, so each
 * test is its own process with its own timeout) or all of them in turn (no
 * argument). Around each test the runner installs a counting allocator: a
 * test fails if weft still holds memory when it returns. A failed comparison
 * prints both sides. */
#ifndef WEFT_TEST_HARNESS_H
#define WEFT_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef void (*harness_fn)(void);

void harness_register(const char *name, harness_fn fn);
void harness_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define TEST(name)                                                            \
    static void test_##name(void);                                            \
    __attribute__((constructor)) static void register_##name(void)            \
    {                                                                         \
        harness_register(#name, test_##name);                                 \
    }                                                                         \
    static void test_##name(void)

#define ASSERT(cond)                                                          \
    do {                                                                      \
        if (!(cond))                                                          \
            harness_fail(__FILE__, __LINE__, "assertion failed: %s", #cond);  \
    } while (0)

#define ASSERT_EQ(expected, actual)                                           \
    do {                                                                      \
        long long e_ = (long long)(expected), a_ = (long long)(actual);       \
        if (e_ != a_)                                                         \
            harness_fail(__FILE__, __LINE__,                                  \
                         "%s == %s\n  expected: %lld\n  actual:   %lld",       \
                         #expected, #actual, e_, a_);                          \
    } while (0)

#define ASSERT_NE(unexpected, actual)                                         \
    do {                                                                      \
        long long e_ = (long long)(unexpected), a_ = (long long)(actual);     \
        if (e_ == a_)                                                         \
            harness_fail(__FILE__, __LINE__, "%s != %s\n  both: %lld",         \
                         #unexpected, #actual, a_);                           \
    } while (0)

#define ASSERT_LE(bound, actual)                                              \
    do {                                                                      \
        long long b_ = (long long)(bound), a_ = (long long)(actual);           \
        if (a_ > b_)                                                          \
            harness_fail(__FILE__, __LINE__,                                  \
                         "%s <= %s\n  bound:  %lld\n  actual: %lld",           \
                         #actual, #bound, b_, a_);                             \
    } while (0)

/* 0 expected; on failure prints the weft error name. */
#define ASSERT_OK(expr)                                                       \
    do {                                                                      \
        int r_ = (expr);                                                      \
        if (r_ != 0)                                                          \
            harness_fail(__FILE__, __LINE__, "%s\n  returned %d (%s)", #expr,  \
                         r_, weft_strerror(r_));                              \
    } while (0)

/* Stress sizes: n divided by WEFT_TEST_DIVISOR (set by sanitizer builds),
 * never below 1. */
size_t harness_scale(size_t n);

/* True under WEFT_STRESS=1 (every leaf operation returns PENDING once):
 * tests that count polls allow for the extra ones. */
bool harness_stress(void);

/* Fault injection: make allocation number k (1-based, counted from this
 * call) fail; 0 disarms. harness_allocs() is the number of allocations made
 * since the last arm; harness_live() the allocations weft still holds. */
void harness_fail_alloc_at(size_t k);
size_t harness_allocs(void);
long harness_live(void);

/* Wait up to `ms` for *flag to become nonzero (polls every 100 us). */
bool harness_wait_flag(const volatile int *flag, unsigned ms);

/* Skip the running test: it prints `skip <name>: <why>` and the test ends
 * with exit status 77, which ctest reports as skipped (SKIP_RETURN_CODE),
 * not passed. Only for a test whose promise does not exist in this build
 * (an x86-64 check on another CPU, a part compiled out by an option), and
 * only as the test's first step, before it makes anything. */
_Noreturn void harness_skip(const char *why);

/* Threads of this process whose name starts with `prefix` (/proc/self/task). */
int harness_count_threads(const char *prefix);
uint64_t harness_now_ns(void);

#endif
