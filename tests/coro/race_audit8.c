// SPDX-License-Identifier: MIT
/* Audit 8 of weft/coro.h under races: spawns from plain threads racing
 * the runtime's shutdown ("once weft_go() has returned 0, fn(arg) is
 * called exactly once, even if ... the runtime shut down before it was
 * first polled"; "-ESHUTDOWN ... On failure fn is never called"). */
#include "coro_test.h"

#include <pthread.h>
#include <string.h>

typedef struct sp_ctx {
    weft_runtime *rt;
    atomic_long ok, calls, other;
    atomic_int go, stop;
    size_t per_thread;
    int mode;                         /* 0 detached, 1 joined, 2 group */
    weft_group *g;
} sp_ctx;

static int sp_body(void *arg)
{
    sp_ctx *c = arg;

    atomic_fetch_add(&c->calls, 1);
    (void)weft_co_yield();
    (void)weft_co_sleep(1);
    return 0;
}

static void *sp_thread(void *arg)
{
    sp_ctx *c = arg;

    while (!atomic_load(&c->go))
        ;
    for (size_t i = 0; i < c->per_thread; i++) {
        weft_join *j = NULL;
        int r;

        if (c->mode == 0)
            r = weft_go_detached(c->rt, sp_body, c);
        else if (c->mode == 1)
            r = weft_go(c->rt, sp_body, c, &j);
        else
            r = weft_go_group(c->g, sp_body, c, NULL);
        if (r == 0)
            atomic_fetch_add(&c->ok, 1);
        else if (r != -ESHUTDOWN && r != -ECANCELED)
            atomic_fetch_add(&c->other, 1);
        if (j)
            weft_join_drop(j);
        if (r == -ESHUTDOWN)
            break;
    }
    return NULL;
}

static void sp_run(int mode)
{
    sp_ctx c;
    pthread_t th[3];

    for (int round = 0; round < (int)harness_scale(20); round++) {
        memset(&c, 0, sizeof(c));
        c.rt = ct_runtime(2);
        c.mode = mode;
        c.per_thread = harness_scale(4000);
        if (mode == 2)
            ASSERT_OK(weft_group_new(&c.g, c.rt, WEFT_GROUP_WAIT_ALL));
        for (int i = 0; i < 3; i++)
            ASSERT_EQ(0, pthread_create(&th[i], NULL, sp_thread, &c));
        atomic_store(&c.go, 1);
        usleep((useconds_t)(500 + 300 * round));
        ASSERT_OK(weft_runtime_shutdown(c.rt));
        for (int i = 0; i < 3; i++)
            ASSERT_EQ(0, pthread_join(th[i], NULL));
        if (c.g)
            ASSERT_OK(weft_group_free(c.g));
        ASSERT_EQ(0, atomic_load(&c.other));
        /* every spawn that returned 0 ran its fn exactly once */
        ASSERT_EQ(atomic_load(&c.ok), atomic_load(&c.calls));
        CT_FREE(c.rt);
    }
}

TEST(detached_spawns_racing_shutdown_run_fn_exactly_once)
{
    sp_run(0);
}

TEST(joined_spawns_racing_shutdown_run_fn_exactly_once)
{
    sp_run(1);
}

TEST(group_spawns_racing_shutdown_run_fn_exactly_once)
{
    sp_run(2);
}
