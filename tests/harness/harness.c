/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "harness.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"

#define MAX_TESTS 256

static struct {
    const char *name;
    harness_fn fn;
} tests[MAX_TESTS];
static int ntests;

static atomic_long live;
static atomic_size_t allocs;
static atomic_size_t fail_at;

void harness_register(const char *name, harness_fn fn)
{
    if (ntests == MAX_TESTS) {
        fputs("harness: too many tests\n", stderr);
        exit(2);
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

void harness_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s:%d: FAIL: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

/* The counting allocator. A header before each block keeps its size free of
 * bookkeeping; 16 bytes keep the alignment malloc promises. */
static void *count_malloc(void *ctx, size_t size)
{
    size_t n = atomic_fetch_add(&allocs, 1) + 1;
    size_t k = atomic_load(&fail_at);
    char *p;

    (void)ctx;
    if (k && n == k)
        return NULL;
    p = malloc(size);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

static void count_free(void *ctx, void *p)
{
    (void)ctx;
    if (p) {
        atomic_fetch_sub(&live, 1);
        free(p);
    }
}

void harness_fail_alloc_at(size_t k)
{
    atomic_store(&allocs, 0);
    atomic_store(&fail_at, k);
}

size_t harness_allocs(void)
{
    return atomic_load(&allocs);
}

long harness_live(void)
{
    return atomic_load(&live);
}

size_t harness_scale(size_t n)
{
    const char *d = getenv("WEFT_TEST_DIVISOR");
    size_t div = d ? strtoul(d, NULL, 10) : 1;

    if (div == 0)
        div = 1;
    return n / div ? n / div : 1;
}

bool harness_stress(void)
{
    const char *st = getenv("WEFT_STRESS");

    return st && *st && strcmp(st, "0") != 0;
}

uint64_t harness_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool harness_wait_flag(const volatile int *flag, unsigned ms)
{
    uint64_t end = harness_now_ns() + (uint64_t)ms * 1000000u;

    while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
        if (harness_now_ns() > end)
            return false;
        usleep(100);
    }
    return true;
}

#define HARNESS_SKIPPED 77              /* SKIP_RETURN_CODE in tests/CMakeLists.txt */
static jmp_buf skip_env;
static const char *skip_why;

_Noreturn void harness_skip(const char *why)
{
    skip_why = why;
    longjmp(skip_env, 1);
}

static int run_one(int i)
{
    static const weft_allocator counting = { count_malloc, count_free, NULL };
    long left;

    weft_set_allocator(&counting);
    harness_fail_alloc_at(0);
    if (setjmp(skip_env) != 0) {
        weft_set_allocator(NULL);
        printf("skip %s: %s\n", tests[i].name, skip_why);
        fflush(stdout);
        return HARNESS_SKIPPED;
    }
    tests[i].fn();
    /* Memory that wakers held by finished foreign threads release may
     * arrive a moment late: give them up to a second. */
    for (int tries = 0; (left = harness_live()) != 0 && tries < 1000; tries++)
        usleep(1000);
    weft_set_allocator(NULL);
    if (left != 0) {
        fprintf(stderr, "%s: FAIL: %ld allocation(s) leaked\n", tests[i].name, left);
        return 1;
    }
    printf("ok %s\n", tests[i].name);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    int failed = 0;

    if (argc > 1) {
        for (int i = 0; i < ntests; i++)
            if (strcmp(tests[i].name, argv[1]) == 0)
                return run_one(i);
        fprintf(stderr, "no test named %s\n", argv[1]);
        return 2;
    }
    for (int i = 0; i < ntests; i++) {
        int r = run_one(i);

        if (r != HARNESS_SKIPPED)
            failed |= r;
    }
    return failed;
}

/* Threads of this process whose name starts with `prefix`. */
int harness_count_threads(const char *prefix)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    char path[300], name[32];
    int n = 0;

    ASSERT(d != NULL);
    while ((e = readdir(d)) != NULL) {
        FILE *f;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(name, sizeof(name), f) && strncmp(name, prefix, strlen(prefix)) == 0)
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}
