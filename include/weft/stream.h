/* SPDX-License-Identifier: MIT */
/* weft/stream.h - any pollable descriptor as a byte stream: pipes, FIFOs,
 * ttys and ptys, character devices, eventfds.
 *
 * A weft_stream is the same handle as a weft_socket (the same type: every
 * socket is a stream), so the futures of weft/net.h work on it unchanged:
 * weft_read_init, weft_read_exact_init, weft_write_init and
 * weft_write_all_init, with
 * weft_io_op_poll(), weft_io_op_moved(), weft_io_op_drop() and
 * weft_io_op_future for composition; weft_socket_fd() and
 * weft_socket_close() work on any handle (weft_stream_fd() and
 * weft_stream_close() are the same calls under the stream's name). Calls
 * that only make sense on a socket answer -ENOTSOCK for a handle that is
 * not one: the address and option calls, weft_socket_shutdown(),
 * weft_udp_connect(), and the accept, recv_from and send_to futures.
 *
 * Everything net.h says about handles holds here too: a handle is a token
 * (closing it twice is -EBADF, never a use-after-free), it outlives its
 * runtime (close and weft_stream_fd() keep working; futures complete with
 * -ESHUTDOWN), closing it wakes the futures waiting on it with -EBADF, one
 * reader and one writer at a time, EINTR is retried, EAGAIN waits. Cancel
 * safety is the sockets': dropping a pending read loses no byte (bytes
 * leave the kernel only in a poll that returns them); a read_exact or
 * write_all dropped half-way has moved weft_io_op_moved() bytes.
 *
 * Semantics per kind of descriptor:
 *   pipes, FIFOs  read: bytes, or 0 at end of stream (every writer closed
 *                 its end, and the pipe is empty). write: -EPIPE once every
 *                 reader closed its end, and SIGPIPE is never raised: a pipe
 *                 has no MSG_NOSIGNAL, so weft blocks SIGPIPE in the writing
 *                 thread for the call and takes the one it raised (the
 *                 thread's mask is left as it was; a SIGPIPE pending before
 *                 the call stays pending). A hang-up wakes a waiting reader
 *                 (to see 0) and a waiting writer (to see -EPIPE). (With
 *                 the io_uring backend a write at the other end may still
 *                 succeed for a moment after weft_stream_close() of the
 *                 last reader returned: see weft_socket_close().) A FIFO
 *                 opened for reading while it has no writer reads 0 (the
 *                 system's answer); open it O_RDWR to wait for writers
 *                 instead. After end of stream a FIFO may get a new writer:
 *                 reads then wait for its bytes again.
 *   ttys, ptys    read returns what the line discipline hands out (one line
 *                 at a time in canonical mode). A hang-up reads as 0 or
 *                 -EIO (a pty master whose slave side is closed: -EIO).
 *   eventfd       reads and writes of exactly 8 bytes (a uint64_t in host
 *                 order; other lengths: -EINVAL from the system): read
 *                 waits while the counter is 0, write while it would
 *                 overflow. weft_read_exact_init / weft_write_all_init
 *                 of 8 bytes do it.
 *   other devices whatever read(2) / write(2) do; a descriptor epoll cannot
 *                 watch (/dev/null, /dev/zero, ...) is refused with -EPERM.
 * Zero-length reads and writes complete at once with 0 on every stream; a
 * length above SSIZE_MAX, or a NULL buffer with a length, completes at once
 * with -EINVAL, moving nothing (weft/net.h, "Bad buffers").
 *
 * Regular files, directories and block devices are always "ready" to epoll
 * (it refuses them): weft_fd_adopt() answers -EPERM; read them with the file
 * futures of weft/blocking.h, which run on the blocking pool. */
#ifndef WEFT_STREAM_H
#define WEFT_STREAM_H

#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_socket weft_stream;   /* the same opaque handle */

/* Flag for weft_fd_adopt(): switch a descriptor in blocking mode to
 * non-blocking (O_NONBLOCK), and back when weft closes it. */
#define WEFT_FD_SET_NONBLOCK 1u

/* Take over descriptor `fd` as a stream on rt's reactor (`rt` NULL: the
 * runtime of the calling worker). Any descriptor epoll can watch: a pipe or
 * FIFO end, a tty or pty, a character device, an eventfd, or a socket (then
 * the handle is a socket, as from weft_socket_adopt(), and the socket calls
 * work on it).
 *
 * Non-blocking mode. weft needs O_NONBLOCK, and O_NONBLOCK belongs to the
 * open file description, which other descriptors and other processes may
 * share: stdin, stdout and a terminal are shared with the parent shell and
 * every process of the job, and setting O_NONBLOCK there makes their
 * blocking reads and writes (and this process's own stdio) fail with EAGAIN.
 * So weft_fd_adopt() never changes it on its own: a descriptor already
 * non-blocking is taken as it is; one in blocking mode is refused with
 * -EINVAL unless `flags` has WEFT_FD_SET_NONBLOCK, which says that the
 * caller owns the description (a pipe it made, a pty master it opened) or
 * accepts the effect on those who share it; weft then clears O_NONBLOCK
 * again when it closes the descriptor (not if the process exits first).
 * For stdin/stdout shared with a shell, use the blocking pool
 * (weft/blocking.h) instead, as tokio does for its stdin.
 * The close-on-exec flag is left as it is (weft_pipe()'s ends have it).
 *
 * Returns 0 with the stream in *out, owned by the caller: the descriptor
 * now belongs to weft and is closed by weft_stream_close() (do not close it
 * yourself). On failure the descriptor is left open and unchanged, still
 * the caller's (unlike weft_socket_adopt(), which closes it), so that
 * stdin can be tried and then handed to the blocking pool. Errors:
 * -EBADF (fd < 0 or not open), -EINVAL (NULL out, no runtime, unknown
 * flags, blocking mode without WEFT_FD_SET_NONBLOCK), -EPERM (a regular
 * file, directory, block device, or anything else epoll refuses),
 * -EEXIST (the descriptor is registered with this reactor already: adopted,
 * or watched by a weft_fdwatch; but with the io_uring backend a descriptor
 * weft opened itself (weft_pipe(), weft_listen(), an accepted or connected
 * socket) is not recognised, as weft/fdwatch.h says of watches: never
 * adopt a descriptor that a weft handle owns),
 * -ESHUTDOWN (the runtime is gone), -ENOMEM. Thread: any. */
WEFT_API int weft_fd_adopt(weft_runtime *rt, int fd, unsigned flags, weft_stream **out);

/* A new pipe, both ends non-blocking and close-on-exec, on rt's reactor
 * (`rt` as above): bytes written to *wr are read from *rd. 0 with both
 * handles (each owned by the caller; close each with weft_stream_close()),
 * or -EINVAL, -EMFILE, -ENFILE, -ENOMEM, -ESHUTDOWN (then nothing is left
 * open and *rd, *wr are untouched). The pipe's capacity is the system's
 * (64 KiB on Linux; fcntl(weft_stream_fd(wr), F_SETPIPE_SZ, n) changes it).
 * Thread: any. */
WEFT_API int weft_pipe(weft_runtime *rt, weft_stream **rd, weft_stream **wr);

/* The descriptor (do not close it), or -EBADF for NULL or a closed handle.
 * The same as weft_socket_fd(). Thread: any. */
WEFT_API int weft_stream_fd(weft_stream *s);

/* Close: futures waiting on it complete with -EBADF, the descriptor is
 * closed once no system call on it is in flight (after O_NONBLOCK is
 * cleared again if weft_fd_adopt() set it), the handle becomes stale. 0, or
 * -EBADF for NULL or a stream already closed. Works after the runtime is
 * freed. The same as weft_socket_close(). Thread: any. */
WEFT_API int weft_stream_close(weft_stream *s);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_STREAM_H */
