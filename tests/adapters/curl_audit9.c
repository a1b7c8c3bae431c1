// SPDX-License-Identifier: MIT
/* Ninth audit of weft/adapters/curl.h: the perform future polled without a
 * waker (a NULL context, or a zeroed weft_context) answers -EINVAL and
 * changes nothing; it dereferenced the missing waker (SIGSEGV). Needs no
 * server: the transfer goes to a port where nothing listens, so the
 * future, awaited properly after the misuse, ends with curl's
 * CURLE_COULDNT_CONNECT (not the -EINVAL of a future polled after READY). */
#include "adapter_test.h"

#include "weft/adapters/curl.h"

WEFT_DEFINE_FUTURE_STATIC(weft_curl_perform, weft_curl_perform_poll, weft_curl_perform_drop, int);

__attribute__((constructor)) static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

__attribute__((destructor)) static void global_cleanup(void)
{
    curl_global_cleanup();
}

TEST(perform_polled_without_a_waker_is_einval_and_changes_nothing)
{
    weft_runtime *rt = at_runtime(1);
    weft_curl_perform p;
    weft_curl_xfer *x;
    weft_context zero;
    weft_curl *c;
    char url[64];
    int r;

    memset(&zero, 0, sizeof(zero));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", at_free_port(SOCK_STREAM));
    ASSERT_OK(weft_curl_new(rt, NULL, &c));
    ASSERT_OK(weft_curl_xfer_new(&x, 0));
    curl_easy_setopt(weft_curl_xfer_easy(x), CURLOPT_URL, url);
    weft_curl_perform_init(&p, c, x);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_curl_perform_poll(&p, NULL, &r));
    ASSERT_EQ(-EINVAL, r);
    r = 1;
    ASSERT_EQ(WEFT_READY, weft_curl_perform_poll(&p, &zero, &r));
    ASSERT_EQ(-EINVAL, r);
    r = 1;
    ASSERT_OK(weft_block_on(rt, &weft_curl_perform_future, &p, &r));
    ASSERT_EQ(CURLE_COULDNT_CONNECT, r);
    weft_curl_xfer_free(x);
    weft_curl_free(c);
    weft_runtime_free(rt);
}
