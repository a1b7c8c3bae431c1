/* SPDX-License-Identifier: MIT */
/* Shared between the files of libweft_tls (src/tls/). */
#ifndef WEFT_TLS_INTERNAL_H
#define WEFT_TLS_INTERNAL_H

#include <openssl/ssl.h>
#include <stdatomic.h>

#include "weft/tls.h"

struct weft_tls_config {
    atomic_int refs;                 /* the user's + one per stream */
    SSL_CTX *ctx;
    bool server, verify;             /* verify: a client that checks the server */
    unsigned char alpn[256 * 2];     /* ALPN list, wire format (length-prefixed) */
    size_t alpn_len;
};

void weft__tls_config_ref(weft_tls_config *cfg);

/* OpenSSL's reason for the newest error on this thread's queue, copied to
 * buf (or `fallback`); the queue is cleared. */
void weft__tls_err_text(char *buf, size_t len, const char *fallback);

#endif
