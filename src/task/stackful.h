/* SPDX-License-Identifier: MIT */
/* Stackful futures (internal): the context switch that coroutines
 * (src/coro/) are built on, and the worker loop's way of resuming one in its
 * own frame.
 *
 * Why the worker loop resumes a coroutine itself. The CPU predicts returns
 * from a return stack buffer (RSB) that `call` pushes and `ret` pops. A
 * coroutine parks inside a blocking call (weft_co_yield, ...) and, once
 * resumed, first returns from it: that return is predicted from the RSB's
 * top entry. If the worker resumed it from a poll function (called by the
 * task layer, called by the worker loop), that top entry is the worker's
 * own call of the poll: mispredicted; and the coroutine's call of its next
 * blocking call leaves its entry on top, so the worker's return from the
 * poll is mispredicted too: two per switch pair, about 14 ns of the
 * switch's 27 (docs/coro.md). When the worker resumes the coroutine in the
 * frame of its loop, every call the worker makes between a switch out and
 * the next switch in returns before it (the task layer's bookkeeping,
 * the queues), so the RSB's top entry at each resume is the one the
 * coroutine itself pushed before it parked: with one coroutine, or many
 * parked at the same call, both returns are predicted.
 *
 * So the worker loop (src/sched/worker.c, run_one()) runs a task whose type
 * is the registered stackful type through weft__task_run_stackful() below,
 * inlined in its frame: the task layer's begin and end of a poll (run.h's
 * run_begin and run_end, the same code as weft__task_run()'s, inlined as
 * for an ordinary poll), the worker side of the resume after the first
 * (errno, the running record, its state: coro.c's co_resume() up to the
 * switch, also inline), the rest of it before the second, and the switch
 * between them. The LIFO chain's and a current-thread driver's
 * frames inline the same code (their frames return more often: fewer
 * predicted returns, same results). Everything else calls the type's poll,
 * which does the same in its own frame: a drop, a poll the trace records,
 * and every poll in the sanitizer builds, whose fiber hooks must sit next to
 * the switch. */
#ifndef WEFT_TASK_STACKFUL_H
#define WEFT_TASK_STACKFUL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "task/run.h"
#include "task/task.h"

#if defined(__SANITIZE_ADDRESS__)
#define WEFT_CO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_CO_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_CO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_CO_TSAN 1
#endif
#endif

/* The hand-written switch exists for these; anything else (or a build with
 * -DWEFT_CO_UCONTEXT=1) uses ucontext. */
#if !defined(WEFT_CO_UCONTEXT)
#if defined(__x86_64__) || defined(__aarch64__)
#define WEFT_CO_UCONTEXT 0
#else
#define WEFT_CO_UCONTEXT 1
#endif
#endif

/* A saved context (switch.c). On x86-64 the switch is inline asm and the
 * context is kept here, in the coroutine record, not on the stack: the
 * stack pointer, the resume address, the frame pointer and the FP control
 * words (32 bytes; both sides' in one cache line). Elsewhere it is the
 * handle of the out-of-line switch (a pointer into the saved stack). */
#if defined(__x86_64__) && !WEFT_CO_UCONTEXT
#define WEFT_CO_INLINE_SWITCH 1
struct weft__co_ctx {
    void *rsp;
    void *rip;                  /* where the side continues */
    void *rbp;
    uint32_t mxcsr;             /* its MXCSR (control and status bits) */
    uint16_t x87cw;             /* its x87 control word */
    uint16_t pad;
};
#else
#define WEFT_CO_INLINE_SWITCH 0
struct weft__co_ctx {
    void *sp;                   /* the switch's handle */
};
#endif

/* The worker's side of a resume: on the worker's stack (the frame that
 * resumes), which stays in the worker's cache whichever coroutine it runs. */
struct weft__co_wside {
    struct weft__co_ctx ctx;    /* the worker's saved context */
    weft_context *cx;           /* the current poll's context; NULL in a drop */
};

/* The head of a stackful future's record: what a resume and a switch pair
 * touch (coro's struct weft__co starts with it; the rest of its hot part
 * follows, 64 bytes in all). Owned by the thread that polls (or drops)
 * the task, handed over by the task's state word (coro.c). `c` first:
 * weft__co_start finds the record at the context it jumped to. */
enum {
    WEFT__SF_NEW = 0,           /* never resumed: c is not prepared yet */
    WEFT__SF_RUNNING,           /* on a thread, between resume and suspend */
    WEFT__SF_SUSPENDED,         /* parked in an await */
    WEFT__SF_DONE               /* its function returned; the stack may be released */
};
struct weft__stackful {
    struct weft__co_ctx c;      /* its saved context (suspended or new) */
    struct weft__co_wside *w;   /* the resuming worker's side; NULL while not running */
    int err;                    /* its errno while it is not running */
    unsigned char state;        /* WEFT__SF_* */
    bool cancelled;             /* set by the drop: every await returns -ECANCELED */
    bool on_slab;               /* a slab stack: its canary is checked at each switch out */
};

/* This thread's stackful state, read and written by the worker side of a
 * resume only (whose frame never changes threads; the coroutine side reads
 * `cur` through an out-of-line function, coro.c): the record running on
 * this thread (coro's struct weft__co; NULL: none), and this thread's
 * &errno once the thread has been set up for stackful futures (NULL
 * before: the worker side reads errno through it instead of calling
 * __errno_location() at every resume, and the same load tells whether the
 * thread was set up). Defined in task.c. */
struct weft__stackful_pt {
    void *cur;
    int *ep;
};
extern WEFT_TLS struct weft__stackful_pt weft__stackful_pt;

/* ---- switch.c ----------------------------------------------------------------
 * weft__co_jump(save, load): save the callee-saved state of the running
 * side in *save and continue the side saved in *load. Returns when some
 * later jump loads *save again (maybe on another thread). To the compiler
 * it is a call that clobbers every register and all memory: nothing is
 * cached in a register across it. */
#if WEFT_CO_INLINE_SWITCH
/* Under IBT an indirect jump must land on endbr64. */
#if defined(__CET__) && (__CET__ & 1)
#define WEFT_CO_ENDBR "endbr64\n\t"
#else
#define WEFT_CO_ENDBR ""
#endif
/* -DWEFT_CO_NO_FP_SAVE=1 leaves the FP control words out of the switch,
 * for programs in which no coroutine changes the rounding mode, FTZ/DAZ or
 * the exception masks (stmxcsr is the slow part of a switch). */
#if defined(WEFT_CO_NO_FP_SAVE) && WEFT_CO_NO_FP_SAVE
#define WEFT_CO_FP_READ ""
#define WEFT_CO_FP_LOAD ""
#define WEFT_CO_FP_KEEP ""
#else
/* Save ours (READ); load the other side's only where it differs (LOAD:
 * ldmxcsr and fldcw are slow, and the words nearly never differ), comparing
 * them one by one: each load is then served by the one store that READ
 * just made (a load spanning both stores could not be forwarded from them
 * and would wait for them to reach the cache). Where ours were stored long
 * before (weft__co_jump_keep()'s known words, KEEP), both are compared at
 * once first (bytes 24-29 of the two contexts: the 8 bytes from 24
 * xor'ed, the pad's two bytes shifted out), then, where they differ, one
 * by one. */
#define WEFT_CO_FP_READ                                                       \
    "stmxcsr 24(%%rdi)\n\t"                                                   \
    "fnstcw 28(%%rdi)\n\t"
/* weft__co_jump_keep()'s: rdx non-zero: ours are known (compared at
 * once, then LOAD where they differ); zero: READ them, then LOAD. */
#define WEFT_CO_FP_KEEP                                                       \
    "testq %%rdx, %%rdx\n\t"                                                  \
    "jnz 4f\n\t"                                                              \
    WEFT_CO_FP_READ                                                           \
    "jmp 5f\n"                                                                \
    "4:\n\t"                                                                  \
    "movq 24(%%rdi), %%rax\n\t"                                               \
    "xorq 24(%%rsi), %%rax\n\t"                                               \
    "shlq $16, %%rax\n\t"                                                     \
    "jz 3f\n"                                                                 \
    "5:\n\t"                                                                  \
    WEFT_CO_FP_LOAD
#define WEFT_CO_FP_LOAD                                                       \
    "movl 24(%%rdi), %%eax\n\t"                                               \
    "cmpl 24(%%rsi), %%eax\n\t"                                               \
    "je 2f\n\t"                                                               \
    "ldmxcsr 24(%%rsi)\n"                                                     \
    "2:\n\t"                                                                  \
    "movzwl 28(%%rdi), %%eax\n\t"                                             \
    "cmpw 28(%%rsi), %%ax\n\t"                                                \
    "je 3f\n\t"                                                               \
    "fldcw 28(%%rsi)\n"                                                       \
    "3:\n\t"
#endif
#define WEFT_CO_FP_SWAP WEFT_CO_FP_READ WEFT_CO_FP_LOAD
#if defined(__AVX512F__)
#define WEFT_CO_CLOBBER_AVX512                                                \
    , "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", \
    "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31",   \
    "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"
#else
#define WEFT_CO_CLOBBER_AVX512
#endif

/* The switch as inline asm, at the call site (always inlined): no call
 * and no return, so the return stack buffer stays paired with the code
 * that runs. An out-of-line switch is entered by a call that never
 * returns: every switch leaves one entry on the return stack, and the
 * other side's returns are then predicted from the wrong entries until
 * the chain unwinds (about five mispredicted returns per switch pair in
 * weft's yield path). Here each side, once resumed, mispredicts only its
 * first return (that entry was pushed by the other side).
 *
 * What the compiler must be told: the asm clobbers every register the
 * System V ABI lets a call clobber, plus rbx and r12-r15 (the other side
 * runs in between and leaves its own values in them), the x87 and vector
 * registers, the flags and memory. So the compiler keeps nothing live in a
 * register across it: it saves what it needs in its own frame (on its own
 * stack, which nobody else touches while it is switched out) and the
 * callee-saved ones for its caller in its prologue, as for any call. rbp
 * cannot be named (it may be the frame pointer): the asm saves and loads
 * it with rsp. Nothing is pushed below rsp (the red zone is left alone):
 * the context is stored through rdi, loaded through rsi, and the resume
 * address is label 1. A new context lands in weft__co_start with rsi
 * pointing at it (switch.c).
 *
 * The ABI's callee-saved FP control (the MXCSR control bits, the x87
 * control word) moves with each side; the direction flag is clear on both
 * sides, as at any call. */
__attribute__((always_inline)) static inline void weft__co_jump(struct weft__co_ctx *save,
                                                                struct weft__co_ctx *load)
{
    __asm__ __volatile__(
        "leaq 1f(%%rip), %%rax\n\t"
        "movq %%rsp, 0(%%rdi)\n\t"
        "movq %%rax, 8(%%rdi)\n\t"
        "movq %%rbp, 16(%%rdi)\n\t"
        WEFT_CO_FP_SWAP
        "movq 0(%%rsi), %%rsp\n\t"
        "movq 16(%%rsi), %%rbp\n\t"
        "jmpq *8(%%rsi)\n"
        "1:\n\t"
        WEFT_CO_ENDBR
        : "+D"(save), "+S"(load)
        :
        : "rax", "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
          "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
          "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)",
          "mm0", "mm1", "mm2", "mm3", "mm4", "mm5", "mm6", "mm7",
          "cc", "memory", "fpsr" WEFT_CO_CLOBBER_AVX512);
}
/* The same switch for a frame with much live state across it (the worker
 * loop: weft__task_run_stackful() below): the asm keeps rbx and r12-r15
 * itself, pushed on this side's stack (below the red zone, which the
 * compiler may be using) and popped when this side is resumed, so to the
 * compiler it is like a call: values in callee-saved registers stay there,
 * and the loop is compiled as around the call it replaces. The other
 * side's jump (either form) lands on label 1 with this side's rsp, so the
 * pops run on the way back in.
 *
 * `known` non-zero: *save already holds this thread's FP control words
 * (the worker loop knows them: weft__task_run_stackful()), so they are not read
 * again (stmxcsr is the slow part of a switch); they are still compared
 * with the other side's and loaded where they differ. */
__attribute__((always_inline)) static inline void weft__co_jump_keep(struct weft__co_ctx *save,
                                                                     struct weft__co_ctx *load,
                                                                     unsigned long known)
{
    __asm__ __volatile__(
        "leaq -128(%%rsp), %%rsp\n\t"
        "pushq %%rbx\n\t"
        "pushq %%r12\n\t"
        "pushq %%r13\n\t"
        "pushq %%r14\n\t"
        "pushq %%r15\n\t"
        "leaq 1f(%%rip), %%rax\n\t"
        "movq %%rsp, 0(%%rdi)\n\t"
        "movq %%rax, 8(%%rdi)\n\t"
        "movq %%rbp, 16(%%rdi)\n\t"
        WEFT_CO_FP_KEEP
        "movq 0(%%rsi), %%rsp\n\t"
        "movq 16(%%rsi), %%rbp\n\t"
        "jmpq *8(%%rsi)\n"
        "1:\n\t"
        WEFT_CO_ENDBR
        "popq %%r15\n\t"
        "popq %%r14\n\t"
        "popq %%r13\n\t"
        "popq %%r12\n\t"
        "popq %%rbx\n\t"
        "leaq 128(%%rsp), %%rsp\n\t"
        : "+D"(save), "+S"(load), "+d"(known)
        :
        : "rax", "rcx", "r8", "r9", "r10", "r11",
          "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
          "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)",
          "mm0", "mm1", "mm2", "mm3", "mm4", "mm5", "mm6", "mm7",
          "cc", "memory", "fpsr" WEFT_CO_CLOBBER_AVX512);
}
static inline void *weft__co_ctx_sp(const struct weft__co_ctx *c)
{
    return c->rsp;
}
#else
/* aarch64 and ucontext: an out-of-line switch saving the callee-saved
 * state on the running stack; the handle is the saved stack pointer. */
void weft__co_switch(void **save, void *load);
static inline void weft__co_jump(struct weft__co_ctx *save, struct weft__co_ctx *load)
{
    weft__co_switch(&save->sp, load->sp);
}
static inline void *weft__co_ctx_sp(const struct weft__co_ctx *c)
{
    return c->sp;
}
#endif
/* ---- Resuming in the worker's frame ----------------------------------------
 * A stackful future type: its descriptor, then where its record is and the
 * rare steps of a resume; the layer that defines it (coro.c) registers it
 * at its first spawn. The common steps (errno, the running record, the
 * record's state, the switch) are weft__task_run_stackful()'s, inline; the
 * type's own poll does the same in one call, for every other caller.
 * `rec_off`: the record's offset in the task's cell (a constant of the
 * type). `prepare`: before a resume whose record is not SUSPENDED, or on a
 * thread not set up yet: false when the future completed already (its
 * output written: the poll's READY); else it sets the thread up
 * (weft__stackful_pt.ep) and a NEW record's first frame, and returns
 * true. `check`: after a switch out of a record on a slab stack (aborts
 * with a report where its canary is broken). `finish`: after a switch out
 * of a record that is DONE: releases its stack, writes the output; READY. */
struct weft__stackful_type {
    weft_future_type type;      /* first: a task's t->type points here */
    size_t rec_off;
    bool (*prepare)(struct weft__task *t, struct weft__stackful *s);
    void (*check)(struct weft__stackful *s);
    weft_poll (*finish)(struct weft__task *t, struct weft__stackful *s);
};

#if WEFT_CO_INLINE_SWITCH && !WEFT_CO_ASAN && !WEFT_CO_TSAN
#define WEFT_TASK_STACKFUL_INLINE 1
#else
#define WEFT_TASK_STACKFUL_INLINE 0
#endif

/* The registered type's descriptor (&st->type; NULL before the
 * registration): the worker loop compares each task's type with it (a load
 * and a compare per poll). It points to an object of static storage,
 * constant from the program's start, so relaxed loads and stores suffice:
 * a worker that does not see it yet runs the task through
 * weft__task_run(), the type's own poll, which is just as correct. */
extern __attribute__((visibility("hidden"))) _Atomic(const weft_future_type *)
    weft__task_stackful_type;

/* A stackful type's task: the descriptor is the first member of its
 * weft__stackful_type. */
static inline const struct weft__stackful_type *weft__stackful_of(const struct weft__task *t)
{
    return (const struct weft__stackful_type *)(const void *)t->type;
}

/* The end of a poll whose `prepare` found the future completed already
 * (its output written): run_end()'s READY path, out of line (task.c).
 * Returns false (nothing to requeue). */
bool weft__task_stackful_done(struct weft__task *t, struct weft__task_env *env,
                              const struct weft__task_poll *p);

#if WEFT_TASK_STACKFUL_INLINE
/* weft__task_run() for a task of the registered stackful type, with the
 * switch in the caller's frame. Always inlined into a loop that calls it
 * again without returning (the worker loop): see the top of this file.
 * The task layer's begin and end of a poll are run.h's run_begin() and
 * run_end(), inlined here as in weft__task_run_inline() (an ordinary poll's
 * path in the same loop), and so are the common steps of the resume
 * (co_resume()'s in coro.c: errno follows the record, the running record,
 * its state): no call at all on the common path; the type's rare steps
 * (`prepare`, `check`, `finish`) are calls that return before the switch
 * or after it (the return stack buffer stays paired, as above). Locals
 * live across the switch stay in callee-saved registers, which
 * weft__co_jump_keep() keeps.
 * `ws`: the worker's side of every such resume, kept by the worker between
 * them (owner only).
 *
 * `*known`: the thread's FP control words (x86-64: MXCSR, the x87 control
 * word) are ws->ctx's, so the switch need not read them (stmxcsr is the
 * slow part of a switch). After a switch back the thread's words are
 * exactly ws->ctx's (the coroutine side loads them where its own differ),
 * so they are known from then on, until something may have changed them:
 * the caller unmarks them before anything but weft's own queue operations
 * runs on the thread (another task's poll, timers and I/O with their
 * wakers, a park, a driver's session: worker.c's fp_forget()), and so do
 * a lint hook run at the poll's end (sched/metrics.c) and a poll that did
 * not yield (its end may have run a drop or a joiner's waker). A future
 * that sets a rounding mode and keeps it on its worker is so honoured: the
 * next resume reads the words again. */
__attribute__((always_inline)) static inline bool
weft__task_run_stackful(struct weft__task *t, struct weft__task_env *env,
                        struct weft__co_wside *ws, bool *known)
{
    const struct weft__stackful_type *st = weft__stackful_of(t);
    struct weft__stackful *s = (struct weft__stackful *)(void *)((char *)t + st->rec_off);
    struct weft__task_poll p;
    void *prev;
    int *ep, werr;
    weft_poll r;

    if (!run_begin(t, env, &p)) {
        *known = false;                /* a drop may have run */
        return false;
    }
    if (__builtin_expect(s->state != WEFT__SF_SUSPENDED || weft__stackful_pt.ep == NULL, 0) &&
        !st->prepare(t, s)) {
        *known = false;                /* the drop and a joiner's waker may run */
        return weft__task_stackful_done(t, env, &p);
    }
    ep = weft__stackful_pt.ep;
    werr = *ep;
    prev = weft__stackful_pt.cur;
    *ep = s->err;                      /* errno follows the record */
    weft__stackful_pt.cur = s;
    ws->cx = &env->poll_cx;
    s->w = ws;
    s->state = WEFT__SF_RUNNING;
    weft__co_jump_keep(&ws->ctx, &s->c, *known);
    *known = true;
    s->w = NULL;
    if (s->on_slab)
        st->check(s);
    weft__stackful_pt.cur = prev;
    s->err = *ep;
    *ep = werr;
    r = __builtin_expect(s->state != WEFT__SF_DONE, 1) ? WEFT_PENDING : st->finish(t, s);
    if (!run_end(t, env, &p, r)) {
        *known = false;
        return false;
    }
    return true;
}

#endif /* WEFT_TASK_STACKFUL_INLINE */

#endif
