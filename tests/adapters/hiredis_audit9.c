// SPDX-License-Identifier: MIT
/* Ninth audit of weft/adapters/hiredis.h: the command future polled
 * without a waker (a NULL context, or a zeroed weft_context) answers
 * -EINVAL and changes nothing; it dereferenced the missing waker
 * (SIGSEGV). Needs no server: the client connects to a Unix socket path
 * where nothing listens, so the command, awaited properly after the
 * misuse, fails with the connection's error (not the -EINVAL of a future
 * polled after READY). */
#include "adapter_test.h"

#include "weft/adapters/hiredis.h"

WEFT_DEFINE_FUTURE_STATIC(weft_redis_command, weft_redis_command_poll, weft_redis_command_drop,
                          weft_redis_result);

TEST(command_polled_without_a_waker_is_einval_and_changes_nothing)
{
    weft_runtime *rt = at_runtime(1);
    weft_redis_options o = { .unix_path = "/nonexistent/weft-redis.sock" };
    weft_redis_result res = { 1, (redisReply *)1 };
    weft_redis_command c;
    weft_context zero;
    weft_redis *r;

    memset(&zero, 0, sizeof(zero));
    ASSERT_OK(weft_redis_new(rt, &o, &r));
    weft_redis_command_init(&c, r, "PING");
    ASSERT_EQ(WEFT_READY, weft_redis_command_poll(&c, NULL, &res));
    ASSERT_EQ(-EINVAL, res.result);
    ASSERT(res.reply == NULL);
    res.result = 1;
    ASSERT_EQ(WEFT_READY, weft_redis_command_poll(&c, &zero, &res));
    ASSERT_EQ(-EINVAL, res.result);
    /* the same future, driven properly: the connection's error */
    res.result = 1;
    ASSERT_OK(weft_block_on(rt, &weft_redis_command_future, &c, &res));
    ASSERT(res.result < 0);
    ASSERT_NE(-EINVAL, res.result);
    ASSERT(res.reply == NULL);
    weft_redis_free(r);
    weft_runtime_free(rt);
}
