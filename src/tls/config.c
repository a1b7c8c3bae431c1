/* SPDX-License-Identifier: MIT */
/* weft_tls_config: an SSL_CTX with weft's defaults (verification on,
 * TLS 1.2 at least, no renegotiation), certificates and ALPN. */
#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static _Thread_local char last_error[256];

WEFT_API const char *weft_tls_last_error_text(void)
{
    return last_error;
}

void weft__tls_err_text(char *buf, size_t len, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;

    if (reason != NULL)
        snprintf(buf, len, "%s", reason);
    else if (e != 0)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "%s", fallback);
    ERR_clear_error();
}

void weft__tls_config_ref(weft_tls_config *cfg)
{
    /* relaxed: the caller holds a reference already, so the count cannot
     * reach 0 meanwhile (as a shared_ptr copy) */
    atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
}

WEFT_API void weft_tls_config_free(weft_tls_config *cfg)
{
    if (cfg == NULL)
        return;
    /* acq_rel: our uses of cfg happen before the last owner frees it */
    if (atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(cfg->ctx);
    free(cfg);
}

/* "h2,http/1.1" -> "\x02h2\x08http/1.1"; false for an empty or long name */
static bool alpn_wire(const char *list, unsigned char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    const char *p = list;

    while (*p) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);

        if (l == 0 || l > 255 || n + 1 + l > cap)
            return false;
        out[n++] = (unsigned char)l;
        memcpy(out + n, p, l);
        n += l;
        p += l;
        if (*p == ',') {
            p++;
            if (*p == '\0')
                return false;        /* a trailing comma: an empty name */
        }
    }
    *len = n;
    return true;
}

/* Server: the first protocol of our list that the client offered. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    const weft_tls_config *cfg = arg;

    (void)ssl;
    for (size_t i = 0; i < cfg->alpn_len; i += 1u + cfg->alpn[i]) {
        const unsigned char *ours = cfg->alpn + i;

        for (unsigned j = 0; j < inlen; j += 1u + in[j]) {
            if (j + 1u + in[j] > inlen)
                break;               /* malformed: OpenSSL checks it, but be safe */
            if (in[j] == ours[0] && memcmp(in + j + 1, ours + 1, ours[0]) == 0) {
                *out = in + j + 1;   /* inside the ClientHello: lives long enough */
                *outlen = in[j];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;   /* no_application_protocol */
}

static int readable(const char *path)
{
    if (path == NULL)
        return 0;
    if (access(path, R_OK) < 0) {
        int err = errno;

        snprintf(last_error, sizeof(last_error), "%s: %s", path, strerror(err));
        return -err;
    }
    return 0;
}

WEFT_API int weft_tls_config_new(weft_tls_config **out, const weft_tls_config_options *opt)
{
    weft_tls_config *cfg;
    int err;

    last_error[0] = '\0';
    if (out == NULL || opt == NULL)
        return -EINVAL;
    if (opt->server && (opt->cert_file == NULL || opt->key_file == NULL))
        return -EINVAL;
    if ((opt->cert_file == NULL) != (opt->key_file == NULL))
        return -EINVAL;
    if (opt->min_version != 0 && opt->min_version != 12 && opt->min_version != 13)
        return -EINVAL;
    if ((err = readable(opt->cert_file)) < 0 || (err = readable(opt->key_file)) < 0 ||
        (err = readable(opt->ca_file)) < 0 || (err = readable(opt->ca_dir)) < 0)
        return err == -EACCES ? -EACCES : -ENOENT;
    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return -ENOMEM;
    atomic_init(&cfg->refs, 1);
    cfg->server = opt->server;
    cfg->verify = !opt->server && !opt->insecure_no_verify;
    if (opt->alpn != NULL && opt->alpn[0] != '\0' &&
        !alpn_wire(opt->alpn, cfg->alpn, sizeof(cfg->alpn), &cfg->alpn_len)) {
        free(cfg);
        return -EINVAL;
    }
    ERR_clear_error();
    cfg->ctx = SSL_CTX_new(opt->server ? TLS_server_method() : TLS_client_method());
    if (cfg->ctx == NULL) {
        weft__tls_err_text(last_error, sizeof(last_error), "SSL_CTX_new failed");
        free(cfg);
        return -ENOMEM;
    }
    err = WEFT_TLS_EPROTO;
    if (!SSL_CTX_set_min_proto_version(cfg->ctx, opt->min_version == 13 ? TLS1_3_VERSION
                                                                        : TLS1_2_VERSION))
        goto fail;
    SSL_CTX_set_options(cfg->ctx, SSL_OP_NO_RENEGOTIATION);
    if (opt->cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(cfg->ctx, opt->cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(cfg->ctx, opt->key_file, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(cfg->ctx) != 1)
            goto fail;
    }
    if (opt->ca_file != NULL || opt->ca_dir != NULL) {
        if (SSL_CTX_load_verify_locations(cfg->ctx, opt->ca_file, opt->ca_dir) != 1)
            goto fail;
    } else if (cfg->verify || opt->verify_client) {
        if (SSL_CTX_set_default_verify_paths(cfg->ctx) != 1)
            goto fail;
    }
    if (opt->server)
        SSL_CTX_set_verify(cfg->ctx, opt->verify_client
                                         ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                         : SSL_VERIFY_NONE, NULL);
    else
        SSL_CTX_set_verify(cfg->ctx, cfg->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (cfg->alpn_len > 0) {
        if (opt->server)
            SSL_CTX_set_alpn_select_cb(cfg->ctx, alpn_select, cfg);
        else if (SSL_CTX_set_alpn_protos(cfg->ctx, cfg->alpn, (unsigned)cfg->alpn_len) != 0)
            goto fail;               /* note: 0 is success for this one */
    }
    *out = cfg;
    return 0;
fail:
    weft__tls_err_text(last_error, sizeof(last_error), "invalid configuration");
    SSL_CTX_free(cfg->ctx);
    free(cfg);
    return err;
}
