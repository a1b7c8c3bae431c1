/* SPDX-License-Identifier: MIT */
/* Versions and error names. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/core.h"

WEFT_API unsigned weft_version(void)
{
    return WEFT_VERSION_HEX;
}

WEFT_API const char *weft_version_string(void)
{
    return WEFT_VERSION_STRING;
}

WEFT_API void weft__async_bad_resume(const char *func, const char *file, unsigned line)
{
    fprintf(stderr,
            "weft: async function %s (%s) resumed at line %u, which has no resume "
            "point: an await inside a switch statement? (see WEFT_AWAIT in "
            "weft/core.h)\n",
            func ? func : "?", file ? file : "?", line);
    fflush(stderr);
    abort();
}

WEFT_API const char *weft_strerror(int err)
{
    if (err == INT_MIN)
        return "unknown error";        /* -INT_MIN does not exist */
    if (err < 0)
        err = -err;
    switch (err) {
    case 0:         return "success";
    case EINVAL:    return "invalid argument or misuse";
    case ENOMEM:    return "out of memory";
    case ECANCELED: return "task cancelled";
    case ESHUTDOWN: return "runtime shut down";
    case EAGAIN:    return "not ready, try again";
    case ETIMEDOUT: return "timed out";
    case EPIPE:     return "closed";
    case EBUSY:     return "busy";
    case EDEADLK:   return "would deadlock";
    case EOVERFLOW: return "receiver lagged: messages were missed";
    case EMSGSIZE:  return "line or frame too long";
    case EPROTO:    return "protocol error: a frame cut short";
    case -WEFT_EAI_NONAME: return "host not found";
    case -WEFT_EAI_AGAIN:  return "name lookup failed for now, try again";
    case -WEFT_EAI_FAIL:   return "name lookup failed";
    /* weft/tls.h (libweft_tls); the numbers are fixed in core.h's range */
    case 5101: return "TLS certificate verification failed";
    case 5102: return "TLS protocol error";
    case 5103: return "TLS stream truncated: end of stream without close_notify";
    default:
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
        {
            /* a system call's error passed through (file helpers): libc's
             * static, thread-safe description */
            const char *d = strerrordesc_np(err);

            if (d)
                return d;
        }
#endif
        return "unknown error";
    }
}
