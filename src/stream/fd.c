/* SPDX-License-Identifier: MIT */
/* Any pollable descriptor as a stream (weft/stream.h): adoption and pipes.
 * The handles and their futures are the sockets' (net/socket.c); this file
 * only decides what kind of handle a descriptor gets and how it enters. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/reactor.h"
#include "net/handle.h"
#include "weft/stream.h"

/* The handle kind of a descriptor: HK_*, or -EPERM for those epoll refuses
 * (always "ready": use the blocking pool), or -errno. */
static int fd_kind(int fd)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode))
        return -EPERM;
    if (S_ISSOCK(st.st_mode)) {
        int type;
        socklen_t tl = sizeof(type);

        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
            return -errno;
        return type == SOCK_STREAM ? HK_STREAM : HK_DGRAM;
    }
    if (S_ISFIFO(st.st_mode))
        return HK_PIPE;
    /* a tty, a character device, an anonymous inode (eventfd, timerfd,
     * signalfd, ...): a short read proves nothing */
    return HK_CHAR;
}

WEFT_API int weft_fd_adopt(weft_runtime *rt, int fd, unsigned flags, weft_stream **out)
{
    int kind, fl, err;
    bool set = false;

    if (fd < 0)
        return -EBADF;
    if (out == NULL || (flags & ~WEFT_FD_SET_NONBLOCK) != 0)
        return -EINVAL;
    if (rt == NULL && weft_runtime_current() == NULL)
        return -EINVAL;
    kind = fd_kind(fd);
    if (kind < 0)
        return kind;
    fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK)) {
        if (!(flags & WEFT_FD_SET_NONBLOCK))
            return -EINVAL;           /* shared description: see stream.h */
        if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            return -errno;
        set = true;
    }
    /* never IO_REG_LISTENER: an adopted descriptor may be shared (see
     * reactor.h) */
    err = weft__handle_wrap(rt, fd, (unsigned)kind, set ? IO_REG_UNSET_NONBLOCK : 0, false,
                            out);
    if (err && set)
        fcntl(fd, F_SETFL, fl);       /* as it was */
    return err;
}

WEFT_API int weft_pipe(weft_runtime *rt, weft_stream **rd, weft_stream **wr)
{
    weft_stream *r;
    int p[2], err;

    if (rd == NULL || wr == NULL)
        return -EINVAL;
    if (rt == NULL && weft_runtime_current() == NULL)
        return -EINVAL;
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
        return -errno;
    err = weft__handle_wrap(rt, p[0], HK_PIPE, IO_REG_FRESH, true, &r);
    if (err) {
        close(p[1]);
        return err;
    }
    err = weft__handle_wrap(rt, p[1], HK_PIPE, IO_REG_FRESH, true, wr);
    if (err) {
        weft_socket_close(r);
        return err;
    }
    *rd = r;
    return 0;
}

WEFT_API int weft_stream_fd(weft_stream *s)
{
    return weft_socket_fd(s);
}

WEFT_API int weft_stream_close(weft_stream *s)
{
    return weft_socket_close(s);
}
