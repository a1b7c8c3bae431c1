// SPDX-License-Identifier: MIT
// weft's public headers from C++17: this file is built with -Wall -Wextra
// -Werror -pedantic (tests/CMakeLists.txt), uses the future and async
// macros so that they are expanded by a C++ compiler, and runs a tiny
// program: spawn a task that sleeps and adds, join it.
#include <weft.h>

#include <cstdio>
#include <cstdlib>

struct add {
    weft_async co;
    int a, b;
    weft_yield y;
    weft_sleep s;
};

static weft_poll add_poll(add *f, weft_context *cx, void *out)
{
    WEFT_BEGIN(&f->co);
    WEFT_YIELD(&f->co, &f->y, cx);
    weft_sleep_init(&f->s, 1);
    WEFT_AWAIT(&f->co, weft_sleep_poll(&f->s, cx));
    *static_cast<int *>(out) = f->a + f->b;
    WEFT_END(&f->co);
}

static void add_drop(add *f)
{
    weft_sleep_drop(&f->s);
}

WEFT_DEFINE_FUTURE(add, add_poll, add_drop, int);

struct nothing {
    weft_async co;
};

static weft_poll nothing_poll(nothing *f, weft_context *cx, void *out)
{
    (void)cx;
    (void)out;
    WEFT_BEGIN(&f->co);
    WEFT_END(&f->co);
}

WEFT_DEFINE_FUTURE_VOID(nothing, nothing_poll, NULL);

struct twice {
    int v;
};

static weft_poll twice_poll(twice *f, weft_context *cx, void *out)
{
    (void)cx;
    *static_cast<int *>(out) = 2 * f->v;
    return WEFT_READY;
}

WEFT_DEFINE_FUTURE_STATIC(twice, twice_poll, NULL, int);

struct quiet {
    weft_async co;
};

static weft_poll quiet_poll(quiet *f, weft_context *cx, void *out)
{
    (void)cx;
    (void)out;
    WEFT_BEGIN(&f->co);
    WEFT_END(&f->co);
}

WEFT_DEFINE_FUTURE_VOID_STATIC(quiet, quiet_poll, NULL);

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,       \
                         __LINE__, #cond);                                    \
            std::exit(1);                                                     \
        }                                                                     \
    } while (0)

int main()
{
    weft_runtime_options opt = {};
    weft_runtime *rt = nullptr;
    weft_join *j = nullptr;
    add init = {};
    int out = 0;

    opt.workers = 2;
    CHECK(weft_runtime_new(&rt, &opt) == 0);
    init.a = 2;
    init.b = 3;
    CHECK(weft_spawn(rt, &add_future, &init, &j) == 0);
    CHECK(weft_join_wait(j, &out) == 0);
    CHECK(out == 5);
    weft_join_drop(j);

    nothing n = {};
    CHECK(weft_block_on(rt, &nothing_future, &n, nullptr) == 0);
    twice t = { 21 };
    CHECK(weft_block_on(rt, &twice_future, &t, &out) == 0);
    CHECK(out == 42);
    quiet q = {};
    CHECK(weft_block_on(rt, &quiet_future, &q, nullptr) == 0);
    CHECK(!WEFT_ASYNC_IS_DONE(&q.co));       /* the task ran a copy */
    CHECK(quiet_future.output_size == 0 && twice_future.output_size == sizeof(int));

    weft_waker w = weft_waker_noop();
    weft_context cx = weft_context_from_waker(&w);
    weft_waker c = weft_waker_clone(&w);
    CHECK(weft_waker_will_wake(&w, &c));
    weft_waker_drop(&c);
    weft_waker e = WEFT_WAKER_EMPTY;
    weft_waker_wake(&e);                     /* empty: a no-op */
    CHECK(e.vtable == nullptr);
    CHECK(WEFT_SEM_MAX_PERMITS > 0 && WEFT_BLOCKING_FOREVER < 0);
    CHECK(weft_context_waker(&cx) == &w);
    CHECK(weft_version() == WEFT_VERSION_HEX);

    weft_runtime_free(rt);
    std::printf("C++: ok (%s)\n", weft_version_string());
    return 0;
}
