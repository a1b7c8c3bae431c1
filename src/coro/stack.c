/* SPDX-License-Identifier: MIT */
/* Coroutine stacks: mapped with a guard page, cached per thread, and the
 * SIGSEGV handler that names the coroutine whose stack overflowed.
 *
 * A stack is an anonymous private mapping (MAP_NORESERVE: the kernel
 * commits a page when it is first touched, so a 64 KiB stack of which a
 * coroutine uses 3 KiB costs one or two pages) whose lowest page is
 * PROT_NONE. Stacks grow down, so running off the end touches the guard
 * and faults instead of overwriting whatever lies below.
 *
 * Cache: mapping and unmapping are two or three system calls, several
 * times what a spawn costs, so freed stacks are kept for the next spawns,
 * in two levels, no allocation in either:
 *   - each worker thread keeps up to CACHE_MAX (whatever sizes) in a
 *     thread-local array; a stack goes back on the thread where its
 *     coroutine finished, usually a worker;
 *   - a process-wide array of up to SHARED_MAX, behind a mutex, takes what
 *     a full thread cache cannot and serves a thread whose cache is empty
 *     (a worker that spawns coroutines that finish on other workers, the
 *     main thread spawning a burst). It is large (1,024) so that a program
 *     that runs bursts of up to a thousand coroutines maps their stacks
 *     once, not at every burst: a fresh stack costs an mmap, an mprotect,
 *     a page fault and later a munmap (with a TLB shootdown when other
 *     threads of the process run), about 10 us each on the development
 *     machine, which in a loop of 1,000 coroutines x 1,000 yields was 10-14
 *     ns of each yield's 61-67 (docs/coro.md, "Cost"). To bound the memory
 *     it holds, only the first SHARED_FULL stacks in it keep every page
 *     their coroutine touched; one cached past those has its pages given
 *     back (madvise MADV_DONTNEED) except the top one, which the next
 *     coroutine touches first: at most SHARED_FULL stacks' touched pages
 *     plus one page each for the rest stay committed.
 * A worker's cache is emptied by a pthread key destructor when it exits,
 * and the shared one when the last worker that registered a cache exits:
 * weft's workers exit in weft_runtime_shutdown(), so once the runtimes are
 * freed no stack stays mapped. Every other thread keeps no cache of its
 * own: the main thread (its thread-local destructors never run: exit()
 * does not run them), and a user's thread, which may outlive every runtime
 * (tco_can_keep()); nor does a worker where the key could not be set. They
 * use the shared cache while some registered worker lives, and unmap
 * otherwise.
 * Pages a coroutine touched stay committed while its stack is cached
 * (but in the shared cache past SHARED_FULL: above). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "coro/coro.h"
#include "sched/runtime.h"
#include "task/task.h"

#if WEFT_CO_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define CACHE_MAX 16
#define SHARED_MAX 1024
#define SHARED_FULL 64          /* kept with all their pages; the rest trimmed */
#define ALT_STACK_SIZE ((size_t)64 * 1024)

struct thread_co {
    struct weft__co_stack cache[CACHE_MAX];
    unsigned n;
    unsigned char kind;        /* 0 unknown, 1 main thread, 2 other */
    bool key_set;              /* the destructor will run */
    bool user;                 /* counted in shared.users (a worker thread) */
    bool entered;              /* weft__co_thread_enter() ran */
    void *alt;                 /* our alternate signal stack (mapped), or NULL */
};

static WEFT_TLS struct thread_co tco;

/* relaxed: a statistic for tests, read once every thread has been joined */
static _Atomic long stacks_mapped;
/* relaxed: guarded stacks mapped, against guard_limit (a soft limit: two
 * threads may both pass it by one) */
static _Atomic long guarded_mapped;
/* -1 until first read (guard_limit()); relaxed: a setting */
static _Atomic long guard_limit_v = -1;
/* relaxed: a hint; past the limit, stay on slabs until the guarded stacks
 * fall to half of it (weft__co_stack_get) */
static _Atomic bool slab_sticky;

/* The shared level. `users`: threads whose destructor is registered. */
static struct {
    pthread_mutex_t lock;
    unsigned n;                              /* ->lock */
    unsigned users;                          /* ->lock */
    struct weft__co_stack s[SHARED_MAX];     /* ->lock */
} shared = { PTHREAD_MUTEX_INITIALIZER, 0, 0, { { 0 } } };

static pthread_key_t tco_key;
static pthread_once_t tco_key_once = PTHREAD_ONCE_INIT;
static bool tco_key_ok;

static size_t page_size(void)
{
    static size_t ps;        /* racy init of a constant: every thread writes the same */
    size_t p = __atomic_load_n(&ps, __ATOMIC_RELAXED);

    if (p == 0) {
        long v = sysconf(_SC_PAGESIZE);

        p = v > 0 ? (size_t)v : 4096;
        __atomic_store_n(&ps, p, __ATOMIC_RELAXED);
    }
    return p;
}

static void stack_unmap(struct weft__co_stack *s)
{
#if WEFT_CO_ASAN
    /* frames that never returned left redzones poisoned; the next mapping
     * at these addresses must not inherit them */
    __asan_unpoison_memory_region(s->lo, (size_t)(s->hi - s->lo));
#endif
    atomic_fetch_sub_explicit(&stacks_mapped, 1, memory_order_relaxed);
    if (s->slab) {
        weft__co_slab_put(s);
        return;
    }
    munmap(s->map, s->map_size);
    atomic_fetch_sub_explicit(&guarded_mapped, 1, memory_order_relaxed);
    s->map = NULL;
}

static void tco_destroy(void *p)
{
    struct thread_co *t = p;
    stack_t ss;

    while (t->n > 0)
        stack_unmap(&t->cache[--t->n]);
    if (t->user) {
        pthread_mutex_lock(&shared.lock);
        if (--shared.users == 0)
            while (shared.n > 0)
                stack_unmap(&shared.s[--shared.n]);
        pthread_mutex_unlock(&shared.lock);
        t->user = false;
    }
    t->key_set = false;
    if (t->alt) {
        /* ours only if it is still the one installed */
        if (sigaltstack(NULL, &ss) == 0 && ss.ss_sp == t->alt &&
            !(ss.ss_flags & SS_ONSTACK)) {
            ss.ss_flags = SS_DISABLE;
            ss.ss_sp = NULL;
            ss.ss_size = ALT_STACK_SIZE;
            if (sigaltstack(&ss, NULL) == 0)
                munmap(t->alt, ALT_STACK_SIZE);
        }
        t->alt = NULL;
    }
}

static void tco_key_make(void)
{
    tco_key_ok = pthread_key_create(&tco_key, tco_destroy) == 0;
}

/* True when this thread's destructor is registered (made so now if it can
 * be): not the main thread (exit() runs no thread-local destructor). */
static bool tco_registered(void)
{
    if (tco.kind == 0)
        tco.kind = syscall(SYS_gettid) == getpid() ? 1 : 2;
    if (tco.kind != 2)
        return false;
    if (!tco.key_set) {
        pthread_once(&tco_key_once, tco_key_make);
        if (!tco_key_ok || pthread_setspecific(tco_key, &tco) != 0)
            return false;
        tco.key_set = true;
    }
    return true;
}

/* True when this thread may keep stacks (its own cache, and a say in the
 * shared one's life): a worker thread of a runtime, with its destructor
 * registered. A worker exits in its runtime's shutdown, so what it keeps
 * goes with the runtimes. Any other thread (the main one, a user's thread
 * that spawned, drove a current-thread runtime, or freed a runtime and so
 * ran the drops of its coroutines) may outlive every runtime: it keeps
 * nothing, and its stacks go to the shared cache while some worker lives,
 * else back to the kernel. (Before the audit such a thread cached up to
 * CACHE_MAX stacks, and held the shared cache too, until it exited: stacks
 * stayed mapped after the last runtime was freed, against coro.h.) */
static bool tco_can_keep(void)
{
    if (!tco.user) {
        if (!weft__runtime_on_worker_thread() || !tco_registered())
            return false;
        tco.user = true;
        pthread_mutex_lock(&shared.lock);
        shared.users++;
        pthread_mutex_unlock(&shared.lock);
    }
    return true;
}

/* relaxed: a setting, written with guard_limit_v. True when the limit is
 * the user's (WEFT_CO_GUARD_MAX): below it every stack is guarded, and a
 * guarded mapping the kernel refuses is -ENOMEM, never a slab stack
 * (coro.h: "a large number keeps every stack guarded (weft_go() then
 * returns -ENOMEM when the map is full)"; before the audit it fell back to
 * a slab stack, without a guard page). The default limit falls back. */
static _Atomic bool guard_strict;

/* The default limit on guarded stacks: WEFT_CO_GUARD_MAX (a count; 0:
 * slabs only) if set, else a quarter of vm.max_map_count (two entries per
 * guarded stack: half the map is left to the rest of the program). */
static long guard_limit_default(void)
{
    const char *env = getenv("WEFT_CO_GUARD_MAX");
    char buf[32];
    long v = 65530;
    int fd;

    atomic_store_explicit(&guard_strict, false, memory_order_relaxed);
    if (env && *env) {
        char *end;
        long e = strtol(env, &end, 10);

        if (*end == '\0' && e >= 0) {
            atomic_store_explicit(&guard_strict, true, memory_order_relaxed);
            return e;
        }
    }
    fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof(buf) - 1);

        if (n > 0) {
            buf[n] = '\0';
            if (strtol(buf, NULL, 10) > 0)
                v = strtol(buf, NULL, 10);
        }
        close(fd);
    }
    return v / 4;
}

static long guard_limit(void)
{
    long v = atomic_load_explicit(&guard_limit_v, memory_order_relaxed);

    if (v < 0) {
        v = guard_limit_default();
        atomic_store_explicit(&guard_limit_v, v, memory_order_relaxed);
    }
    return v;
}

long weft__co_guard_limit_set(long n)
{
    long old = guard_limit();

    atomic_store_explicit(&guard_limit_v, n >= 0 ? n : guard_limit_default(),
                          memory_order_relaxed);
    if (n >= 0)
        atomic_store_explicit(&guard_strict, false, memory_order_relaxed);
    atomic_store_explicit(&slab_sticky, false, memory_order_relaxed);
    return old;
}

long weft__co_stacks_guarded(void)
{
    return atomic_load_explicit(&guarded_mapped, memory_order_relaxed);
}

/* A new guarded stack, or -ENOMEM (no memory, or the map is full). */
static int guarded_map(struct weft__co_stack *s, size_t usable, size_t ps)
{
    char *p = mmap(NULL, usable + ps, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);

    if (p == MAP_FAILED)
        return -ENOMEM;
    if (mprotect(p, ps, PROT_NONE) < 0) {
        munmap(p, usable + ps);
        return -ENOMEM;
    }
    atomic_fetch_add_explicit(&guarded_mapped, 1, memory_order_relaxed);
    s->map = p;
    s->map_size = usable + ps;
    s->lo = p + ps;
    s->hi = p + ps + usable;
    s->cls = usable;
    s->slab = NULL;
    return 0;
}

int weft__co_stack_get(struct weft__co_stack *s, size_t size)
{
    size_t ps = page_size();
    size_t usable = (size + ps - 1) & ~(ps - 1);
    int err = -ENOMEM;

    for (unsigned i = tco.n; i-- > 0;) {
        if (tco.cache[i].cls == usable) {
            *s = tco.cache[i];
            tco.cache[i] = tco.cache[--tco.n];
            return 0;
        }
    }
    /* newest first: with one size class in use the match is the last
     * entry; a miss scans up to SHARED_MAX entries (microseconds at most,
     * under the lock: still less than a mapping) */
    pthread_mutex_lock(&shared.lock);
    for (unsigned i = shared.n; i-- > 0;) {
        if (shared.s[i].cls == usable) {
            *s = shared.s[i];
            shared.s[i] = shared.s[--shared.n];
            pthread_mutex_unlock(&shared.lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&shared.lock);
    /* guarded while under the limit; a slab stack past it, or when the
     * kernel refuses the mapping (mprotect's ENOMEM: the map is full). Once
     * past it, slabs until the guarded stacks fall to half the limit: at
     * the limit, each guarded stack released would otherwise let one more
     * be mapped, and a long burst would pay an mmap, an mprotect and a
     * munmap per coroutine (serialised on the memory-map lock, with a TLB
     * shootdown each), the cost the slabs are there to avoid. */
    {
        long g = atomic_load_explicit(&guarded_mapped, memory_order_relaxed);
        long lim = guard_limit();
        bool sticky = atomic_load_explicit(&slab_sticky, memory_order_relaxed);

        if (sticky && g <= lim / 2) {
            sticky = false;
            atomic_store_explicit(&slab_sticky, false, memory_order_relaxed);
        }
        if (!sticky && g < lim) {
            err = guarded_map(s, usable, ps);
            if (err < 0 && atomic_load_explicit(&guard_strict, memory_order_relaxed))
                return err;             /* the user's limit: guarded or nothing */
        }
        if (err < 0) {
            if (lim > 0 && !sticky)
                atomic_store_explicit(&slab_sticky, true, memory_order_relaxed);
            err = weft__co_slab_get(s, usable, ps);
        }
    }
    if (err < 0)
        return err;
    atomic_fetch_add_explicit(&stacks_mapped, 1, memory_order_relaxed);
    return 0;
}

/* Give back every page of s but the top one (the one holding its top
 * bytes, which a new coroutine touches first; in a slab it also holds the
 * canary of the stack above, which must survive). The stack must be ours
 * alone: not in any cache yet. Its memory reads as zeros afterwards, which
 * is all a stack needs. */
static void stack_trim(struct weft__co_stack *s)
{
    size_t ps = page_size();
    char *top = (char *)(((uintptr_t)s->hi - 1) & ~(uintptr_t)(ps - 1));

    if (top > s->lo)                        /* lo is page-aligned */
        (void)madvise(s->lo, (size_t)(top - s->lo), MADV_DONTNEED);
}

void weft__co_stack_put(struct weft__co_stack *s)
{
    bool kept = false, trim = false;

    if (s->map == NULL)
        return;
#if WEFT_CO_ASAN
    /* frames that never returned left redzones poisoned */
    __asan_unpoison_memory_region(s->lo, (size_t)(s->hi - s->lo));
#endif
    if (tco_can_keep() && tco.n < CACHE_MAX) {
        tco.cache[tco.n++] = *s;
        s->map = NULL;
        return;
    }
    pthread_mutex_lock(&shared.lock);
    if (shared.users > 0 && shared.n < SHARED_MAX) {
        if (shared.n < SHARED_FULL) {
            shared.s[shared.n++] = *s;
            kept = true;
        } else {
            trim = true;                    /* trimmed first, then cached */
        }
    }
    pthread_mutex_unlock(&shared.lock);
    if (trim) {
        /* not under the lock (a system call), and before the stack is in
         * the cache, where another thread could take it and write to it */
        stack_trim(s);
        pthread_mutex_lock(&shared.lock);
        if (shared.users > 0 && shared.n < SHARED_MAX) {
            shared.s[shared.n++] = *s;
            kept = true;
        }
        pthread_mutex_unlock(&shared.lock);
    }
    if (kept)
        s->map = NULL;
    else
        stack_unmap(s);
}

long weft__co_stacks_mapped(void)
{
    return atomic_load_explicit(&stacks_mapped, memory_order_relaxed);
}

/* ---- Stack overflow report --------------------------------------------------
 * The fault happens with the coroutine's stack exhausted, so the handler
 * runs on an alternate signal stack: each thread that resumes a coroutine
 * gets one (mapped; the main thread uses a static one) unless it has one
 * already (ASan installs its own on every thread; the user may too), and
 * loses ours when it exits. The handler reports only a fault inside the
 * running coroutine's guard page; any other fault goes to the handler it
 * replaced (or the default action, which re-faults and kills). */
static char main_alt[ALT_STACK_SIZE] __attribute__((aligned(16)));

void weft__co_thread_enter(void)
{
    stack_t ss, old;
    void *p;

    if (tco.entered)
        return;
    tco.entered = true;
    if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
        return;                                  /* has one already */
    if (tco.kind == 0)
        tco.kind = syscall(SYS_gettid) == getpid() ? 1 : 2;
    if (tco.kind == 1) {
        p = main_alt;
    } else {
        if (!tco_registered())
            return;                              /* could not free it later */
        p = mmap(NULL, ALT_STACK_SIZE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (p == MAP_FAILED)
            return;
        tco.alt = p;
    }
    ss.ss_sp = p;
    ss.ss_size = ALT_STACK_SIZE;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) < 0 && tco.alt) {
        munmap(tco.alt, ALT_STACK_SIZE);
        tco.alt = NULL;
    }
}

static struct sigaction old_segv, old_bus;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;

/* async-signal-safe formatting: write(2) only */
static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at < cap)
        buf[at++] = *s++;
    return at;
}

static size_t put_hex(char *buf, size_t at, size_t cap, uintptr_t v)
{
    char tmp[2 + 2 * sizeof(v)];
    int n = 0;

    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    at = put_str(buf, at, cap, "0x");
    while (n > 0 && at < cap)
        buf[at++] = tmp[--n];
    return at;
}

static size_t put_dec(char *buf, size_t at, size_t cap, size_t v)
{
    char tmp[24];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n > 0 && at < cap)
        buf[at++] = tmp[--n];
    return at;
}

static void report_overflow(const struct weft__co *co, const void *addr)
{
    char buf[512];
    size_t n = 0, cap = sizeof(buf) - 1;
    ssize_t w;

    n = put_str(buf, n, cap, "weft: stack overflow in coroutine \"");
    n = put_str(buf, n, cap, co->name ? co->name : "coroutine");
    n = put_str(buf, n, cap, "\" (stack ");
    n = put_hex(buf, n, cap, (uintptr_t)co->stack.lo);
    n = put_str(buf, n, cap, "-");
    n = put_hex(buf, n, cap, (uintptr_t)co->stack.hi);
    n = put_str(buf, n, cap, ", ");
    n = put_dec(buf, n, cap, (size_t)(co->stack.hi - co->stack.lo));
    n = put_str(buf, n, cap, " bytes; fault at ");
    n = put_hex(buf, n, cap, (uintptr_t)addr);
    n = put_str(buf, n, cap, " in its guard page): aborting\n");
    w = write(STDERR_FILENO, buf, n);
    (void)w;
}

/* A slab stack (no guard page) whose canary, the 128 bytes below it, was
 * overwritten: found at a switch out of the coroutine or in a fault. */
void weft__co_canary_abort(const struct weft__co *co)
{
    char buf[512];
    size_t n = 0, cap = sizeof(buf) - 1;
    ssize_t w;

    n = put_str(buf, n, cap, "weft: stack overflow in coroutine \"");
    n = put_str(buf, n, cap, co->name ? co->name : "coroutine");
    n = put_str(buf, n, cap, "\" (stack ");
    n = put_hex(buf, n, cap, (uintptr_t)co->stack.lo);
    n = put_str(buf, n, cap, "-");
    n = put_hex(buf, n, cap, (uintptr_t)co->stack.hi);
    n = put_str(buf, n, cap, ", ");
    n = put_dec(buf, n, cap, (size_t)(co->stack.hi - co->stack.lo));
    n = put_str(buf, n, cap, " bytes, a slab stack without guard page; its canary at ");
    n = put_hex(buf, n, cap, (uintptr_t)weft__co_canary_addr(&co->stack));
    n = put_str(buf, n, cap, " was overwritten): aborting\n");
    w = write(STDERR_FILENO, buf, n);
    (void)w;
    abort();
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    struct weft__co *co = weft__co_running();
    struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;
    const char *a = si ? (const char *)si->si_addr : NULL;

    if (co && co->stack.map && a >= co->stack.map && a < co->stack.lo) {
        report_overflow(co, a);
        abort();
    }
    /* a slab stack has no guard: an overflow shows as a broken canary (the
     * fault itself may be anywhere below) */
    if (co && co->stack.slab && !weft__co_canary_ok(&co->stack))
        weft__co_canary_abort(co);
    /* not ours: the handler we replaced */
    if (old->sa_flags & SA_SIGINFO) {
        old->sa_sigaction(sig, si, uc);
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
    } else {
        /* the default action: a real fault re-faults on return and kills;
         * a signal sent with kill() is raised again */
        struct sigaction dfl;

        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
        if (si == NULL || si->si_code <= 0)
            raise(sig);
    }
}

static void install_handler(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

void weft__co_install_handler(void)
{
    pthread_once(&handler_once, install_handler);
}
