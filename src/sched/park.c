/* SPDX-License-Identifier: MIT */
/* Searching, parking and notifying workers without lost wake-ups, and the
 * watcher: the parked worker that drives the timers and the I/O reactor and
 * takes LIFO tasks stuck behind a long poll. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "sched/internal.h"
#include "sched/trace.h"
#include "weft/observe.h"           /* the lint kinds */

#if defined(__SANITIZE_THREAD__)
_Atomic unsigned weft__sched_fence_dummy;  /* see full_fence() */
#endif

/* ---- Parking -------------------------------------------------------------------
 *  pusher (any thread)                    worker going to sleep
 *  put task on a queue                    add self to sleepers, num_sleeping++
 *  fence                       [seq_cst]  fence                       [seq_cst]
 *  num_searching == 0 and                 any queue non-empty? take self off
 *  num_sleeping > 0? wake one               the list and go back to work
 *                                         else wait for `notified`
 * Both sides store then fence then load (Dekker): at least one of them sees
 * the other, so a task is never left queued with every worker asleep. A
 * searcher that stops searching re-checks the queues the same way, so "a
 * searcher exists" is never a reason to leave a task unseen. */
/* Set w's `notified` (or `kicked`) and wake it wherever it waits. The wake
 * comes after the unlock: woken under the lock, w could run at once (on
 * this CPU, preempting us) only to block on the lock we hold, and if we are
 * then held off the CPU by another process, so is w (issue 13: a timer
 * driver preempted between its wake of a sleeper and the unlock kept that
 * sleeper off for a millisecond, with the tasks the driver had just fired
 * waiting for either). Safe: w re-checks the flags under the lock before
 * it waits (so a wake that comes after it stopped waiting is harmless; in
 * epoll_wait it costs one spurious return), `in_io` read under the lock
 * says where it waits, and the worker and its condition variable live as
 * long as the runtime, which every caller holds (a worker, or a foreign
 * thread inside a push or a shutdown). */
static void wake_worker(struct worker *w, bool kick)
{
    bool io, alarm;

    pthread_mutex_lock(&w->park_lock);
    if (kick)
        w->kicked = true;
    else
        w->notified = true;
    io = w->in_io;
    alarm = w->in_alarm;
    pthread_mutex_unlock(&w->park_lock);
    if (io) {
        weft__io_wake(&w->rt->io);
    } else if (alarm) {
        /* the backup in poll(): the eventfd lives as long as the runtime
         * (made before in_alarm was first set, closed at its destroy) */
        uint64_t one = 1;

        if (write(w->rt->idle.alarm_efd, &one, sizeof(one)) < 0) {
            /* EAGAIN only (a counter near 2^64): it is readable anyway */
        }
    } else {
        pthread_cond_signal(&w->park_cond);
    }
}

static void unpark(struct worker *w)
{
    wake_worker(w, false);
}

void weft__sched_notify_one(struct weft_runtime *rt)
{
    struct worker *w = NULL;

    full_fence();      /* pairs: weft__sched_park(), weft__sched_end_search() */
    if (atomic_load_explicit(&rt->idle.num_searching, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&rt->idle.num_sleeping, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&rt->idle.lock);
    if (rt->idle.nsleepers > 0 &&
        atomic_load_explicit(&rt->idle.num_searching, memory_order_relaxed) == 0) {
        w = &rt->workers[rt->idle.sleepers[--rt->idle.nsleepers]];
        w->sleeping = false;
        atomic_fetch_sub_explicit(&rt->idle.num_sleeping, 1, memory_order_relaxed);
        /* it wakes up searching: the next pusher need not wake another */
        atomic_fetch_add_explicit(&rt->idle.num_searching, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&rt->idle.lock);
    if (w)
        unpark(w);
}

void weft__sched_unpark_all(struct weft_runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++)
        unpark(&rt->workers[i]);
}

/* Returns true when w was the last searcher. */
bool weft__sched_end_search(struct worker *w)
{
    unsigned prev;

    if (!w->searching)
        return false;
    w->searching = false;
    prev = atomic_fetch_sub_explicit(&w->rt->idle.num_searching, 1, memory_order_seq_cst);
    full_fence();      /* pairs: weft__sched_notify_one() */
    return prev == 1;
}

/* Tasks in a run queue or a spill list (not counting LIFO slots: their
 * owner runs them). */
bool weft__sched_work_anywhere(struct weft_runtime *rt)
{
    if (atomic_load_explicit(&rt->inject.len, memory_order_relaxed))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (lq_len(&rt->workers[i].q) || !weft__sched_spill_empty(&rt->workers[i]))
            return true;
    return false;
}

/* ---- The watcher ----------------------------------------------------------------
 * A task in a LIFO slot runs when its worker's current poll returns. If that
 * poll runs long, the task would wait with it, even with other workers idle.
 * So while any worker is awake, one sleeping worker (the watcher) naps
 * instead of sleeping: every WATCH_MIN_NS..WATCH_MAX_NS it looks at the other
 * workers' LIFO slots and takes a task from a worker whose poll count has not
 * moved since its last look (a busy worker polls thousands of times a
 * millisecond). Pushing into an empty LIFO slot notifies nobody (message
 * passing stays on one worker) unless there is no watcher. When every other
 * worker is asleep the watcher resigns and sleeps too: idle costs nothing. */
static bool others_awake(struct worker *w)
{
    /* relaxed: a hint; a wrong guess costs one nap or one late look */
    return atomic_load_explicit(&w->rt->idle.num_sleeping, memory_order_relaxed) <
           w->rt->nworkers;
}

/* Become (or stay) the watcher; false if another worker is, or there is
 * nothing to watch: nobody else awake, no timer pending and no descriptor
 * registered (then resign). The watcher also drives the timers and I/O: it
 * naps until the next deadline, in epoll_wait while descriptors are open. */
static bool try_watch(struct worker *w)
{
    _Atomic int *watcher = &w->rt->idle.watcher;
    int cur = atomic_load_explicit(watcher, memory_order_relaxed);

    bool timers = weft__sched_timers_next(w->rt) != UINT64_MAX;
    bool needed = timers || weft__io_active(&w->rt->io) ||
                  (w->rt->nworkers > 1 && others_awake(w));

    if (cur == (int)w->index) {
        if (needed)
            return true;
        atomic_store_explicit(watcher, -1, memory_order_relaxed);
        return false;
    }
    /* relaxed: the role guards no data, only who naps */
    return cur == -1 && needed &&
           atomic_compare_exchange_strong_explicit(watcher, &cur, (int)w->index,
                                                   memory_order_relaxed, memory_order_relaxed);
}

static void resign_watch(struct worker *w)
{
    int me = (int)w->index;

    atomic_compare_exchange_strong_explicit(&w->rt->idle.watcher, &me, -1,
                                            memory_order_relaxed, memory_order_relaxed);
}

/* The stall lint (weft/observe.h, WEFT_LINT_STALL): is v inside the same
 * poll as at the last look, for cfg->long_poll_ns or more? Then report it,
 * once per stalled poll, and not again for the same task while it keeps
 * stalling v. The watcher never touches the task (it may end and be freed
 * at any moment): v publishes the task's id and name at each poll's start
 * (cur_id last, release), and the report is made only if v's poll count
 * and cur_id read the same after the name was read, so the name is the
 * stuck task's. A new poll count restarts the clock. */
/* The state letter of thread `tid` of this process (R running or
 * runnable, S sleeping, D in uninterruptible wait, ...), or 0. */
static char thread_state(int tid)
{
    char path[64], buf[512], *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    p = strrchr(buf, ')');            /* the name may hold spaces and ')' */
    return p && p[1] == ' ' ? p[2] : 0;
}

static uint64_t thread_cpu_ns(pthread_t th)
{
    clockid_t cid;
    struct timespec ts;

    if (pthread_getcpuclockid(th, &cid) != 0 || clock_gettime(cid, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Is v's thread stuck by its own doing: blocked in the kernel (a blocking
 * call in a task), or burning the CPU (a loop that never returns)? Not when
 * it is runnable without getting the CPU: on an overloaded machine any
 * thread can be preempted for tens of milliseconds, and that is no bug of
 * the task's. Runnable: it counts as burning once it has used STALL_CPU_NS
 * of CPU since the first look that found it due (so it is reported a look
 * or a few later; a preempted poll of a few microseconds ends long before,
 * and a hog that gets a fifth of a CPU still gets there in 10 ms). */
#define STALL_CPU_NS 2000000u
static bool stuck_by_itself(struct worker *v)
{
    int tid = atomic_load_explicit(&v->tid, memory_order_relaxed);
    char st = tid ? thread_state(tid) : 0;
    uint64_t cpu, cpu0;

    if (st == 'S' || st == 'D')
        return true;
    if (st != 'R')
        return false;                 /* unknown: do not guess */
    cpu = thread_cpu_ns(v->thread);
    cpu0 = atomic_load_explicit(&v->stall_cpu_ns, memory_order_relaxed);
    if (cpu == 0)
        return false;
    if (cpu0 == 0) {
        atomic_store_explicit(&v->stall_cpu_ns, cpu, memory_order_relaxed);
        return false;
    }
    return cpu - cpu0 >= STALL_CPU_NS;
}

static void watch_stall(struct worker *w, struct worker *v, uint64_t polls, uint64_t now,
                        const struct weft__lint_cfg *cfg)
{
    /* acquire: pairs with the release store of the id (the name before it) */
    uint64_t id = atomic_load_explicit(&v->env.cur_id, memory_order_acquire), since;
    const char *name;

    if (id == 0 || polls != atomic_load_explicit(&v->stall_polls, memory_order_relaxed)) {
        /* between polls, or a new poll since the last look */
        atomic_store_explicit(&v->stall_polls, polls, memory_order_relaxed);
        atomic_store_explicit(&v->stall_since_ns, now, memory_order_relaxed);
        atomic_store_explicit(&v->stall_cpu_ns, 0, memory_order_relaxed);
        return;
    }
    since = atomic_load_explicit(&v->stall_since_ns, memory_order_relaxed);
    if (now - since < cfg->long_poll_ns ||
        id == atomic_load_explicit(&v->stall_reported, memory_order_relaxed) ||
        !stuck_by_itself(v))
        return;
    name = atomic_load_explicit(&v->env.cur_name, memory_order_relaxed);
    /* acquire: the loads above come before these */
    if (atomic_load_explicit(&v->env.cur_id, memory_order_acquire) != id ||
        atomic_load_explicit(&v->polls, memory_order_relaxed) != polls)
        return;                       /* it moved on meanwhile */
    atomic_store_explicit(&v->stall_reported, id, memory_order_relaxed);
    weft__sched_lint_stall(w->rt, v->index, id, name, now - since);
}

/* The watcher's look: take a LIFO task whose worker has not polled since
 * the last look, and look for stalls (above). *seen: some slot was full
 * (look again soon). */
static struct weft__task *watch_look(struct worker *w, bool *seen)
{
    struct weft_runtime *rt = w->rt;
    /* acquire: pairs with the release in weft_runtime_set_lints() */
    const struct weft__lint_cfg *cfg = atomic_load_explicit(&rt->lint, memory_order_acquire);
    bool stall = cfg->mask & (1u << WEFT_LINT_STALL);
    uint64_t now = stall ? weft__now_ns() : 0;

    *seen = false;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *v = &rt->workers[i];
        uint64_t polls;

        if (v == w)
            continue;
        polls = atomic_load_explicit(&v->polls, memory_order_relaxed);
        if (stall)
            watch_stall(w, v, polls, now, cfg);
        if (atomic_load_explicit(&v->lifo, memory_order_relaxed)) {
            *seen = true;
            if (polls == atomic_load_explicit(&v->watch_mark, memory_order_relaxed)) {
                /* acq_rel: pairs with the owner's store/exchange of the slot */
                struct weft__task *t = atomic_exchange_explicit(&v->lifo, NULL,
                                                                memory_order_acq_rel);
                if (t) {
                    counter_add(&w->stranded_taken, 1);
                    return t;
                }
            }
        }
        atomic_store_explicit(&v->watch_mark, polls, memory_order_relaxed);
    }
    return NULL;
}

/* Remove w from the sleepers list; false if a notifier already took it off
 * (then it will set `notified` and has counted w as searching). */
static bool leave_sleepers(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    bool was = false;

    pthread_mutex_lock(&rt->idle.lock);
    if (w->sleeping) {
        for (unsigned i = 0; i < rt->idle.nsleepers; i++) {
            if (rt->idle.sleepers[i] == w->index) {
                rt->idle.sleepers[i] = rt->idle.sleepers[--rt->idle.nsleepers];
                break;
            }
        }
        w->sleeping = false;
        atomic_fetch_sub_explicit(&rt->idle.num_sleeping, 1, memory_order_relaxed);
        was = true;
    }
    pthread_mutex_unlock(&rt->idle.lock);
    return was;
}

/* CLOCK_MONOTONIC now + ns, for the park conditions' timed waits. */
static struct timespec mono_after(uint64_t ns)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += (time_t)(ns / 1000000000u);
    t.tv_nsec += (long)(ns % 1000000000u);
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* The watcher's wait in epoll_wait: as wait_notified(), but events that
 * come meanwhile wake their tasks (into this worker's queues). *events: how
 * many sources were ready. */
static bool wait_io(struct worker *w, uint64_t timeout_ns, int *events)
{
    int n = 0;
    bool got;

    pthread_mutex_lock(&w->park_lock);
    if (!w->notified && !w->kicked) {
        w->in_io = true;
        pthread_mutex_unlock(&w->park_lock);
        n = weft__io_poll(&w->rt->io, timeout_ns ? (int64_t)timeout_ns : -1);
        pthread_mutex_lock(&w->park_lock);
        w->in_io = false;
        if (n < 0) {
            /* a busy worker is looking (epoll_wait with no timeout, a few
             * microseconds): nap briefly on the condition variable, then
             * park again and retry (a longer nap would hold up events) */
            struct timespec until = mono_after(timeout_ns && timeout_ns < 50000u ? timeout_ns
                                                                                : 50000u);

            if (!w->notified && !w->kicked)
                pthread_cond_timedwait(&w->park_cond, &w->park_lock, &until);
            n = 0;
        }
        if (n > 0 && weft__trace_active(w->rt))
            weft__trace_mark(w->rt, w, TR_IO, (uint32_t)n, 0, 0);
    }
    got = w->notified;
    w->notified = false;
    w->kicked = false;
    pthread_mutex_unlock(&w->park_lock);
    *events = n;
    return got;
}

/* Wait for `notified`; with `timeout_ns` (0: none), give up after it, or
 * when kicked (a timer due sooner): false. */
static bool wait_notified(struct worker *w, uint64_t timeout_ns)
{
    struct timespec until;
    bool got;

    if (timeout_ns)
        until = mono_after(timeout_ns);
    pthread_mutex_lock(&w->park_lock);
    while (!w->notified && !w->kicked) {
        if (!timeout_ns)
            pthread_cond_wait(&w->park_cond, &w->park_lock);
        else if (pthread_cond_timedwait(&w->park_cond, &w->park_lock, &until) != 0)
            break;
    }
    got = w->notified;
    w->notified = false;
    w->kicked = false;                /* a kick ends a nap like its timeout */
    pthread_mutex_unlock(&w->park_lock);
    return got;
}

/* ---- The backup ----------------------------------------------------------------
 * Only the watcher waits for the next deadline; the other parked workers
 * sleep without a timeout. If the watcher's thread is held off the CPU when
 * its nap ends (preempted by another process, its vCPU stolen by the
 * hypervisor), every due timer waits with it (issue 13: W6's worst lateness
 * on 2 shared vCPUs was a few such misses of 2-6 ms). So one more sleeping
 * worker, the backup, waits until BACKUP_NS after the next deadline: if a
 * timer due by then is still armed when it wakes, it fires the due timers
 * itself (and runs what they wake); if not, it waits again, until the new
 * next deadline + BACKUP_NS, without leaving the sleepers list. It covers a
 * busy worker stuck in a long poll with no watcher parked the same way. The
 * role is a hint that guards no data, like the watcher's: a worker that
 * finds it taken sleeps without a timeout, so a late watcher wakes one more
 * thread, not every sleeper. With no timer pending it sleeps without a
 * timeout too (idle costs nothing).
 *
 * The alarm. The backup waits in poll() on a timerfd (absolute, on
 * CLOCK_MONOTONIC) and an eventfd (its wake-up: wake_worker() writes it
 * while `in_alarm` says it waits there). Both the backup, before it waits,
 * and the watcher, before each nap towards a deadline while a backup
 * exists, set the timerfd to that deadline + BACKUP_NS (alarm_set(): one
 * timerfd_settime, none when it is set so already). So when the watcher is
 * on time it has moved the alarm past the deadline it fired before the
 * alarm goes off, and the backup sleeps on: with one timer firing at a
 * time (a 1 ms tick) it used to wake once per deadline only to find it
 * fired (its own timed wait could not be moved without waking it). The
 * alarm is a hint, like `next`: set too early, it costs the backup one
 * wake that finds nothing due (it sets the alarm again and waits);
 * set too late (a timer armed earlier than the alarm while the watcher
 * that would move the alarm forward is held off the CPU; an arm kicks only
 * the watcher), that timer is covered from the alarm's deadline on, as
 * before. Never a timer's correctness: the watcher and busy workers fire
 * it anyway. Invariant (under alarm_lock): alarm_ns != 0 only while the
 * timerfd is set for that time, or has rung for it with the ring unread
 * (the backup that reads a ring zeroes it, alarm_rang()), so a set skipped
 * as "already so" never leaves a backup waiting on a disarmed alarm.
 * If the descriptors cannot be made (EMFILE), the backup waits on its
 * condition variable with a timeout, and wakes once per deadline.
 * back_up() returns true when notified; false when timers are due (or it
 * was kicked): the caller drives them as after the watcher's nap. */
static bool alarm_ready(struct weft_runtime *rt)
{
    /* acquire: pairs with the release store below (the descriptors) */
    int st = atomic_load_explicit(&rt->idle.alarm_state, memory_order_acquire);

    if (st != ALARM_NONE)
        return st == ALARM_MADE;
    pthread_mutex_lock(&rt->idle.alarm_lock);
    st = atomic_load_explicit(&rt->idle.alarm_state, memory_order_relaxed);
    if (st == ALARM_NONE) {
        int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        int efd = tfd >= 0 ? eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) : -1;

        if (efd < 0) {
            if (tfd >= 0)
                close(tfd);
            st = ALARM_FAILED;        /* not tried again */
        } else {
            rt->idle.alarm_tfd = tfd;
            rt->idle.alarm_efd = efd;
            st = ALARM_MADE;
        }
        atomic_store_explicit(&rt->idle.alarm_state, st, memory_order_release);
    }
    pthread_mutex_unlock(&rt->idle.alarm_lock);
    return st == ALARM_MADE;
}

/* The reactor was just made (weft__io's `made` hook, on the thread that
 * made it): a multi-thread runtime opens the backup's alarm now too, so
 * that a program that counts its descriptors once I/O has started sees
 * none appear later (a first backup would otherwise open them in the
 * middle of whatever the program was doing). A runtime without I/O opens
 * them at its first backup. */
void weft__sched_io_made(void *ctx)
{
    struct weft_runtime *rt = ctx;

    if (rt->flavor != WEFT_CURRENT_THREAD && rt->nworkers > 1)
        alarm_ready(rt);
}

/* Set the alarm to go off at `at_ns` (CLOCK_MONOTONIC), unless it is set
 * so already. Any thread, once alarm_ready() said so. */
static void alarm_set(struct weft_runtime *rt, uint64_t at_ns)
{
    /* a timespec the kernel takes (its limit is about 292 years) */
    if (at_ns > (UINT64_C(1) << 62))
        at_ns = UINT64_C(1) << 62;
    /* relaxed: a hint; a stale "already set" leaves the other writer's
     * value, computed from its own look at the deadlines */
    if (atomic_load_explicit(&rt->idle.alarm_ns, memory_order_relaxed) == at_ns)
        return;
    pthread_mutex_lock(&rt->idle.alarm_lock);
    if (atomic_load_explicit(&rt->idle.alarm_ns, memory_order_relaxed) != at_ns) {
        struct itimerspec its = { .it_value = { .tv_sec = (time_t)(at_ns / 1000000000u),
                                                .tv_nsec = (long)(at_ns % 1000000000u) } };

        /* cannot fail: a valid descriptor and time; if it did, the
         * alarm keeps its old time (a hint, see above) */
        if (timerfd_settime(rt->idle.alarm_tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
            atomic_store_explicit(&rt->idle.alarm_ns, at_ns, memory_order_relaxed);
    }
    pthread_mutex_unlock(&rt->idle.alarm_lock);
}

/* A backup waits and the runtime's next deadline is `next` (ms): move its
 * alarm there (the watcher before a nap, a driver that fired something). */
static void alarm_follow(struct weft_runtime *rt, uint64_t next)
{
    /* relaxed: the role is a hint (a backup that claims it after this look
     * sets the alarm itself); acquire: the descriptors */
    if (next == UINT64_MAX || atomic_load_explicit(&rt->idle.backup, memory_order_relaxed) < 0 ||
        atomic_load_explicit(&rt->idle.alarm_state, memory_order_acquire) != ALARM_MADE)
        return;
    alarm_set(rt, weft__time_add_sat(weft__time_mul_sat(next, 1000000u), BACKUP_NS));
}

/* The backup read an expiry of the alarm: a one-shot timerfd that rang is
 * disarmed, so `alarm_ns` must stop saying it is set (alarm_set() would
 * skip setting the same time again: a backup that left on a notify read
 * together with the ring, and the next one that comes for the same
 * deadline, would wait with no alarm at all). Unless a writer set a later
 * time since (its settime came after the ring: ours was of the old one). */
static void alarm_rang(struct weft_runtime *rt)
{
    uint64_t now = weft__now_ns();

    pthread_mutex_lock(&rt->idle.alarm_lock);
    if (atomic_load_explicit(&rt->idle.alarm_ns, memory_order_relaxed) <= now)
        atomic_store_explicit(&rt->idle.alarm_ns, 0, memory_order_relaxed);
    pthread_mutex_unlock(&rt->idle.alarm_lock);
}

/* The backup's wait: until notified or kicked (true), or the alarm went
 * off or `until` passed (false; also on a spurious return: the caller
 * looks at the deadlines again). Holds no lock on return. */
static bool wait_alarm(struct worker *w, bool alarm, uint64_t until)
{
    struct weft_runtime *rt = w->rt;
    bool flag;

    pthread_mutex_lock(&w->park_lock);
    flag = w->notified || w->kicked;
    if (!flag && alarm) {
        struct pollfd p[2] = { { .fd = rt->idle.alarm_tfd, .events = POLLIN },
                               { .fd = rt->idle.alarm_efd, .events = POLLIN } };
        uint64_t n;

        /* A waker that sets a flag after our look above sees in_alarm and
         * writes the eventfd, so poll() returns (the flags are read under
         * the lock, in_alarm written under it). */
        w->in_alarm = true;
        pthread_mutex_unlock(&w->park_lock);
        if (poll(p, 2, -1) > 0) {
            /* EAGAIN: moved by alarm_set() since (timerfd), or read by an
             * earlier round (eventfd); EINTR above: look again */
            if ((p[0].revents & POLLIN) && read(p[0].fd, &n, sizeof(n)) == (ssize_t)sizeof(n))
                alarm_rang(rt);
            if ((p[1].revents & POLLIN) && read(p[1].fd, &n, sizeof(n)) < 0)
                n = 0;
        }
        pthread_mutex_lock(&w->park_lock);
        w->in_alarm = false;
        flag = w->notified || w->kicked;
    } else if (!flag) {
        /* no alarm: a timed wait, on an absolute CLOCK_MONOTONIC time (the
         * condition's clock) */
        struct timespec ts = { .tv_sec = (time_t)(until / 1000000000u),
                               .tv_nsec = (long)(until % 1000000000u) };

        pthread_cond_timedwait(&w->park_cond, &w->park_lock, &ts);
        flag = w->notified || w->kicked;
    }
    pthread_mutex_unlock(&w->park_lock);
    return flag;
}

static bool back_up(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    _Atomic int *backup = &rt->idle.backup;
    int none = -1;
    bool got, alarm, waited = false;

    /* relaxed: the role guards no data, only who waits with a timeout */
    if (weft__sched_timers_next(rt) == UINT64_MAX ||
        atomic_load_explicit(backup, memory_order_relaxed) != -1 ||
        !atomic_compare_exchange_strong_explicit(backup, &none, (int)w->index,
                                                 memory_order_relaxed, memory_order_relaxed))
        return wait_notified(w, 0);
    alarm = alarm_ready(rt);
    for (;;) {
        uint64_t next = weft__sched_timers_next(rt), until;

        if (next == UINT64_MAX) {
            /* every timer fired or was cancelled: sleep without a timeout
             * (the alarm may still go off once: a spurious wake of the
             * next backup, which sets it again) */
            atomic_store_explicit(backup, -1, memory_order_relaxed);
            return wait_notified(w, 0);
        }
        until = weft__time_add_sat(weft__time_mul_sat(next, 1000000u), BACKUP_NS);
        if (waited && weft__now_ns() >= until)
            break;                    /* still due: the watcher is late */
        if (alarm)
            alarm_set(rt, until);
        if (wait_alarm(w, alarm, until))
            break;                    /* notified or kicked */
        waited = true;
    }
    pthread_mutex_lock(&w->park_lock);
    got = w->notified;
    w->notified = false;
    w->kicked = false;
    pthread_mutex_unlock(&w->park_lock);
    /* ours (given up above only on the way out through wait_notified) */
    none = (int)w->index;
    atomic_compare_exchange_strong_explicit(backup, &none, -1, memory_order_relaxed,
                                            memory_order_relaxed);
    return got;
}

/* ---- Timers ------------------------------------------------------------------
 * Each worker has a wheel of its own (worker.time). Invariants:
 *  - a timer is armed in the wheel of the worker whose task polled it
 *    (env->time) and stays there (weft_sleep.time) until it fires or is
 *    cancelled: a task that migrates, a drop on another worker or a
 *    foreign thread, shutdown's drops on the closing thread all take that
 *    wheel's lock, as they took the one shared lock before; the wheels
 *    live in the worker array, freed with the runtime's memory, after
 *    every cell (so after every weft_sleep that could point at them);
 *  - every wheel's `next` is a lower bound of its earliest deadline,
 *    UINT64_MAX exactly when it is empty (driver.h); the runtime's next is
 *    their minimum, read without locks (one line per worker that changes
 *    only when an arm lowers it or a driver fires);
 *  - any worker drives any wheel that is due (the watcher after its nap,
 *    busy workers every GLOBAL_INTERVAL polls, the look before parking;
 *    after a yield, a worker looks at its own wheel only: see
 *    look_after_yield()): a worker stuck in a long poll holds nobody's
 *    timers;
 *  - what a wheel promises holds per wheel (never early; due timers fire
 *    in deadline order); across wheels, timers due in the same millisecond
 *    may fire in either order, as they could on different workers before.
 * An arm that lowers its wheel's next below the watcher's nap kicks the
 * watcher (weft__sched_time_kick), as with one wheel. */
uint64_t weft__sched_timers_next(struct weft_runtime *rt)
{
    uint64_t next = UINT64_MAX;

    for (unsigned i = 0; i < rt->nworkers; i++) {
        uint64_t n = weft__time_next(&rt->workers[i].time);

        if (n < next)
            next = n;
    }
    return next;
}

/* Fire due timers, if any are due, in every wheel, this worker's own
 * first. `idle`: the caller has nothing of its own to run (it parked, or
 * is about to): what the timers wake goes to its local queue, where other
 * workers can steal it, not to its LIFO slot, which only its owner runs (or
 * the watcher, after a nap or two): a driver held off the CPU right after
 * firing must not hold back what it fired (issue 13). The first task fired
 * wakes nobody (this worker runs it next), each later one notifies a
 * sleeper as any push to a local queue does (push_worker()). A busy worker's drive keeps
 * the LIFO slot: what fires then runs before its queue. Workers that drive
 * at the same moment start on different wheels workers that drive at the same moment start on different wheels
 * and fire them side by side, rather than queue on one wheel's lock in the
 * same order (SEED: ~12,000 timers due in a millisecond, fired by whoever
 * looks). Every wheel's lock is taken (a busy worker that passed over a
 * wheel whose lock was held, leaving it to that wheel's driver, was tried:
 * no gain in SEED, and under oversubscription it stops yielding to a
 * preempted holder). */
void weft__sched_drive_timers(struct weft_runtime *rt, bool idle)
{
    struct worker *self = local_worker(rt);
    unsigned first = self ? self->index : 0;
    uint64_t now = 0;
    unsigned n = 0;

    if (idle && self)
        self->wake_fifo = 1;          /* owner only: a plain store */
    for (unsigned k = 0; k < rt->nworkers; k++) {
        unsigned i = first + k < rt->nworkers ? first + k : first + k - rt->nworkers;
        struct weft__time *tm = &rt->workers[i].time;
        uint64_t next = weft__time_next(tm);

        if (next == UINT64_MAX)
            continue;
        if (now == 0)
            now = weft__now_ms();
        if (next <= now)
            n += weft__time_drive(tm, now);
    }
    if (self)
        self->wake_fifo = 0;
    /* a parked worker (the watcher after its nap, the backup) moves the
     * backup's alarm past what it fired, before it runs what it woke (a
     * busy worker's drives leave it to the watcher's next nap: one
     * syscall per watcher wake at most) */
    if (n && idle && atomic_load_explicit(&rt->idle.backup, memory_order_relaxed) >= 0)
        alarm_follow(rt, weft__sched_timers_next(rt));
    if (n && weft__trace_active(rt))
        weft__trace_mark(rt, local_worker(rt), TR_TIMERS, n, 0, 0);
}

/* The watcher's nap: WATCH_MIN..MAX_NS while others work, cut short by the
 * next timer; published in nap_until so that an earlier timer kicks it. */
static uint64_t nap_ns(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    uint64_t nap = rt->nworkers > 1 && others_awake(w) ? w->watch_ns : UINT64_MAX;
    uint64_t next = weft__sched_timers_next(rt), now_ns = weft__now_ns();

    if (next != UINT64_MAX) {
        /* to the nanosecond: a nap computed from whole milliseconds would
         * wake up to a millisecond after the deadline */
        uint64_t until = next >= UINT64_MAX / 1000000u ? UINT64_MAX /* centuries away */
                         : next * 1000000u > now_ns    ? next * 1000000u - now_ns
                                                       : 1;

        if (until < nap)
            nap = until;
        alarm_follow(rt, next);
    }
    if (nap == UINT64_MAX) {
        if (weft__io_active(&rt->io)) {
            /* only descriptors to wait for: epoll_wait without a limit */
            atomic_store_explicit(&rt->idle.nap_until, UINT64_MAX - 1, memory_order_relaxed);
            return 0;
        }
        nap = WATCH_MAX_NS;           /* nothing to wait for: look now and then */
    }
    /* the millisecond by which the watcher is awake again, rounded up: a
     * timer due at or after it needs no kick (weft__sched_time_kick). The
     * nap ends at now_ns + nap; rounding down (now + nap / 1 ms, as before)
     * published up to 2 ms too early, so a timer armed for a deadline in
     * between was not kicked and fired up to 2 ms late. */
    atomic_store_explicit(&rt->idle.nap_until, (now_ns + nap + 999999u) / 1000000u,
                          memory_order_relaxed);
    return nap;
}

/* A timer was registered for `deadline`: if the watcher naps past it, wake
 * it early (it re-reads the next deadline). Called by the time layer. */
void weft__sched_time_kick(void *ctx, uint64_t deadline)
{
    struct weft_runtime *rt = ctx;
    int idx = atomic_load_explicit(&rt->idle.watcher, memory_order_relaxed);
    struct worker *w;

    if (idx < 0 || atomic_load_explicit(&rt->idle.nap_until, memory_order_relaxed) <= deadline)
        return;
    w = &rt->workers[idx];
    wake_worker(w, true);
}

/* The first descriptor was registered: a watcher napping on its condition
 * variable must move into epoll_wait. Pairs with the fence in
 * weft__sched_park(): the registrar's seq_cst increment of `live` and this
 * seq_cst load against the watcher's claim of the role, fence, and load of
 * `live`: either the watcher sees the descriptor, or this sees the watcher
 * and kicks it. */
static void kick_worker(struct worker *w)
{
    wake_worker(w, true);
}

bool weft__sched_io_is_worker(void *ctx)
{
    struct worker *w = weft__sched_cur_worker;

    return w != NULL && w->rt == ctx;
}

void weft__sched_io_kick(void *ctx)
{
    struct weft_runtime *rt = ctx;
    int idx = atomic_load_explicit(&rt->idle.watcher, memory_order_seq_cst);
    /* io_uring: the ring's owner waits in it, watcher or not; asleep on its
     * condition variable (no descriptor was open when it parked), it must
     * move into the ring. The owner stored its index when it first claimed
     * the ring (with a descriptor open: no kick was due), so before the
     * fence and the load of `live` of every later park: either that load
     * sees the descriptor, or this one (seq_cst, after the increment of
     * `live`) sees the owner and kicks it. */
    int own = atomic_load_explicit(&rt->idle.io_owner, memory_order_seq_cst);

    if (own >= 0)
        kick_worker(&rt->workers[own]);
    if (idx < 0) {
        /* no watcher: every worker is busy (one will look every few dozen
         * polls and park as the watcher) or asleep without a role (wake
         * one: it finds no work, parks again and takes the role, now that
         * a descriptor is registered). A searcher, if any, parks after its
         * seq_cst end of search and sees `live` then. */
        weft__sched_notify_one(rt);
        return;
    }
    if (idx != own)
        kick_worker(&rt->workers[idx]);
}

/* Sleep until there may be work. Returns with w->searching set if a
 * notifier woke it (the notifier counted it as searching). The watcher naps
 * instead and may come back with a stranded LIFO task to run. */
struct weft__task *weft__sched_park(struct worker *w)
{
    struct weft_runtime *rt = w->rt;
    struct weft__task *t;
    bool seen, watching, io;
    int events = 0, own;

    w->env.poll_end_ns = 0;           /* owner only: the next poll reads the clock */
    /* relaxed: a switch */
    if (atomic_load_explicit(&rt->poll_timing, memory_order_relaxed))
        weft__task_env_mark(&w->env); /* for the long-poll lint */
    if (weft__sched_end_search(w) && weft__sched_work_anywhere(rt)) {
        /* The last searcher sees work: pushers that saw it searching woke
         * nobody, so it hands the search on before going back to work
         * itself (there may be more tasks than it can run). */
        weft__sched_notify_one(rt);
        return NULL;
    }
    pthread_mutex_lock(&rt->idle.lock);
    rt->idle.sleepers[rt->idle.nsleepers++] = w->index;
    w->sleeping = true;
    atomic_fetch_add_explicit(&rt->idle.num_sleeping, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&rt->idle.lock);
    full_fence();      /* pairs: weft__sched_notify_one() */
    if (weft__sched_work_anywhere(rt) || atomic_load_explicit(&rt->closed, memory_order_acquire)) {
        if (leave_sleepers(w)) {
            weft__sched_notify_one(rt); /* as above: pass the search on */
            return NULL;
        }
        while (!wait_notified(w, 0))  /* a notifier is on its way (kicks aside) */
            ;
        w->searching = true;          /* it counted us as searching */
        return NULL;
    }
    weft__sched_check_quiescent(rt);
    weft__sched_drain_dead(rt, &rt->shards[w->index]);
    counter_add(&w->parks, 1);
    watching = try_watch(w);
    full_fence();                     /* pairs: weft__sched_io_kick() */
    io = weft__io_active(&rt->io);
    /* io_uring: one worker owns the ring and waits in it whenever it
     * parks, watcher or not; the others only look (see io/uring.h, "The
     * owner"). epoll: own == 0, any watcher waits in epoll_wait. */
    own = io ? weft__io_claim(&rt->io, rt->flavor == WEFT_CURRENT_THREAD) : 0;
    if (own > 0 && atomic_load_explicit(&rt->idle.io_owner, memory_order_relaxed) != (int)w->index)
        atomic_store_explicit(&rt->idle.io_owner, (int)w->index, memory_order_seq_cst);
    if (own < 0)
        io = false;                   /* naps, then looks (below) */
    /* the watcher naps until the next deadline (in epoll_wait while
     * descriptors are open); the others sleep, the backup with a timeout */
    if (!watching && own <= 0 ? !back_up(w)
        : io                  ? !wait_io(w, watching ? nap_ns(w) : 0, &events)
                              : !wait_notified(w, nap_ns(w))) {
        if (!leave_sleepers(w)) {     /* a notifier took us meanwhile */
            while (!wait_notified(w, 0))
                ;
            resign_watch(w);
            w->searching = true;
            return NULL;
        }
        if (watching)
            atomic_store_explicit(&rt->idle.nap_until, UINT64_MAX, memory_order_relaxed);
        /* Awake now, and it may find work before it parks again: an awake
         * watcher watches nobody, so give the role up (before the timers:
         * held off the CPU while it runs what they wake, it must not keep
         * another worker from watching); the next worker to park (this
         * one, most likely) takes it again. */
        resign_watch(w);
        weft__sched_drive_timers(rt, true);
        if (own < 0) {
            /* not the ring's owner: look at what it completed (and submit
             * what waits on an owner held by a long poll) */
            int n = weft__io_poll(&rt->io, 0);

            events = n > 0 ? n : 0;
        }
        t = watching && rt->nworkers > 1 ? watch_look(w, &seen) : NULL;
        if (!watching || rt->nworkers < 2)
            seen = false;
        if (watching)
            w->watch_ns = seen ? WATCH_MIN_NS
                               : w->watch_ns * 2 > WATCH_MAX_NS ? WATCH_MAX_NS
                                                                : w->watch_ns * 2;
        /* I/O woke tasks here: while this worker runs them, another one
         * should be in epoll_wait, so wake a sleeper to take the role. */
        if (events > 0)
            weft__sched_notify_one(rt);
        return t;
    }
    atomic_store_explicit(&rt->idle.nap_until, UINT64_MAX, memory_order_relaxed);
    resign_watch(w);
    /* woken by weft__sched_notify_one (which counted us as searching) or by
     * shutdown */
    if (leave_sleepers(w))
        return NULL;                  /* shutdown: not counted */
    w->searching = true;
    return NULL;
}

