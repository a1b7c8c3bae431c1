/* SPDX-License-Identifier: MIT */
/* Shared pieces of the adapter tests (tests/adapters/): skipping when a
 * program the test needs is missing (a failure when WEFT_REQUIRE_ADAPTERS=1,
 * as .ci/run sets it), free loopback ports, child processes that die with
 * the test (PR_SET_PDEATHSIG, and killed at exit), waiting for a port. */
#ifndef WEFT_TESTS_ADAPTER_TEST_H
#define WEFT_TESTS_ADAPTER_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#define AT_UNUSED __attribute__((unused))
#define AT_SKIP 77                    /* ctest's SKIP_RETURN_CODE for these tests */
#define AT_WAIT_MS 30000u             /* generous: the machine is shared */

/* Skip this test (exit 77, ctest shows it skipped), or fail it when
 * WEFT_REQUIRE_ADAPTERS=1 says every dependency must be there. */
static AT_UNUSED void at_skip(const char *why)
{
    const char *req = getenv("WEFT_REQUIRE_ADAPTERS");

    if (req != NULL && strcmp(req, "1") == 0)
        harness_fail(__FILE__, __LINE__, "WEFT_REQUIRE_ADAPTERS=1 and %s", why);
    printf("SKIP: %s\n", why);
    fflush(stdout);
    exit(AT_SKIP);
}

static AT_UNUSED void at_sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* A port on 127.0.0.1 that was free a moment ago (type: SOCK_STREAM or
 * SOCK_DGRAM; both are checked free for the other kind too when `both`). */
static AT_UNUSED int at_free_port(int type)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, type, 0), port;

    ASSERT(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(0, bind(fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)&a, &len));
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* A program on PATH (or an absolute path) that can be run. */
static AT_UNUSED bool at_have_program(const char *name)
{
    char buf[4096];
    const char *path = getenv("PATH");

    if (strchr(name, '/') != NULL)
        return access(name, X_OK) == 0;
    if (path == NULL)
        path = "/usr/bin:/bin";
    while (*path != '\0') {
        size_t n = strcspn(path, ":");

        snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
        if (access(buf, X_OK) == 0)
            return true;
        path += n + (path[n] == ':');
    }
    return false;
}

/* Children to kill at exit (normal exit; abort and timeouts are covered
 * by PR_SET_PDEATHSIG). */
static pid_t at_children[8];

static AT_UNUSED void at_kill_children(void)
{
    for (size_t i = 0; i < sizeof(at_children) / sizeof(at_children[0]); i++)
        if (at_children[i] > 0) {
            kill(at_children[i], SIGKILL);
            waitpid(at_children[i], NULL, 0);
            at_children[i] = 0;
        }
}

/* Start argv[0] with argv, stdout/stderr to /dev/null unless `quiet` is
 * false; it dies with this process. */
static AT_UNUSED pid_t at_spawn(char *const argv[], bool quiet)
{
    static bool registered;
    pid_t parent = getpid(), pid;

    if (!registered) {
        atexit(at_kill_children);
        registered = true;
    }
    fflush(NULL);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (quiet) {
            FILE *devnull = freopen("/dev/null", "w", stdout);

            (void)devnull;
            dup2(STDOUT_FILENO, STDERR_FILENO);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    for (size_t i = 0; i < sizeof(at_children) / sizeof(at_children[0]); i++)
        if (at_children[i] == 0) {
            at_children[i] = pid;
            break;
        }
    return pid;
}

static AT_UNUSED void at_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    for (size_t i = 0; i < sizeof(at_children) / sizeof(at_children[0]); i++)
        if (at_children[i] == pid)
            at_children[i] = 0;
}

/* Connect to 127.0.0.1:port (TCP); true once it accepts, false after ms. */
static AT_UNUSED bool at_wait_port(int port, unsigned ms)
{
    uint64_t until = weft_now_ms() + ms;

    while (weft_now_ms() < until) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            close(fd);
            return true;
        }
        if (fd >= 0)
            close(fd);
        at_sleep_ms(20);
    }
    return false;
}

/* A listening TCP socket on 127.0.0.1 (port in *port) that nobody accepts
 * from: connections complete (the backlog) and then hear nothing. */
static AT_UNUSED int at_silent_listener(int *port, int backlog)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ASSERT(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(0, bind(fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_EQ(0, listen(fd, backlog));
    ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)&a, &len));
    *port = ntohs(a.sin_port);
    return fd;
}

static AT_UNUSED weft_runtime *at_runtime(unsigned workers)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = workers ? WEFT_MULTI_THREAD : WEFT_CURRENT_THREAD,
                                 .workers = workers };

    ASSERT_OK(weft_runtime_new(&rt, &opt));
    return rt;
}

#endif
