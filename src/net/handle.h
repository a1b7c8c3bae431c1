/* SPDX-License-Identifier: MIT */
/* Handles (internal): what src/stream needs from the socket code to make
 * handles of descriptors that are not sockets.
 *
 * A handle (weft_socket *, alias weft_stream *) is a token: slot index,
 * generation and kind (see socket.c). The kind fixes which system calls the
 * read and write futures make and what a short result means:
 *
 *   kind        calls                   short read/write  socket calls
 *   HK_DGRAM    recv / send             a datagram        yes
 *   HK_STREAM   recv / send             drained           yes
 *   HK_PIPE     read / write, SIGPIPE   drained           -ENOTSOCK
 *               held off (see socket.c)
 *   HK_CHAR     read / write            not drained (a    -ENOTSOCK
 *                                       tty line, an
 *                                       eventfd counter)
 *
 * HK_DGRAM also covers SOCK_SEQPACKET (one record per call). A handle of
 * kind HK_CHAR only stops at EAGAIN: a tty in canonical mode returns one
 * line per read however many are queued, so a short read proves nothing. */
#ifndef WEFT_NET_HANDLE_H
#define WEFT_NET_HANDLE_H

#include <stdbool.h>
#include <stdint.h>

#include "weft/net.h"

enum { HK_DGRAM = 0, HK_STREAM = 1, HK_PIPE = 2, HK_CHAR = 3 };

/* Register `fd` (non-blocking already) on rt's reactor (NULL: the calling
 * worker's) as a handle of `kind`; `reg_flags`: IO_REG_* (io/reactor.h).
 * 0 with the handle in *out, or -errno; on failure the descriptor is closed
 * when `close_on_fail`, else left open and untouched. Thread: any. */
int weft__handle_wrap(weft_runtime *rt, int fd, unsigned kind, unsigned reg_flags,
                      bool close_on_fail, weft_socket **out);

/* The source, generation and kind (HK_*) a handle names: 0, or -EBADF for
 * NULL or a value no handle ever had (whether it is still open is for the
 * generation to tell). For layers that make their own system calls on a
 * handle's descriptor through weft__io_do() (bufio's splice). */
struct weft__io_source;
int weft__handle_source(weft_socket *h, struct weft__io_source **src, uint32_t *gen,
                        unsigned *kind);

/* weft_io_op_poll() and weft_connect_poll() for weft's own futures (the
 * buffered streams, signals, connect_host), which checked their context
 * already (util/cx.h): op / c and cx valid. */
weft_poll weft__io_op_poll(weft_io_op *op, weft_context *cx, ssize_t *result);
weft_poll weft__connect_poll(weft_connect *c, weft_context *cx, int *result);

#endif
