/* SPDX-License-Identifier: MIT */
/* Stackful coroutines (internal): the context switch, stacks, and the
 * coroutine record that lives inside a task's future.
 *
 * The two sides of a switch:
 *
 *   worker side (co_resume, never migrates)    coroutine side (its own stack)
 *   save the worker's errno, load the co's     ...
 *   cur_co = co                                 ...
 *   weft__co_jump(&co->w->ctx, &co->c) ─────►  continues after its last jump
 *                                               (or starts at weft__co_entry)
 *                                               runs until an await is pending
 *   continues after the jump           ◄─────  weft__co_jump(&co->c, &co->w->ctx)
 *   save the co's errno, restore ours
 *
 * Everything thread-specific (errno, cur_co, the sanitizers' fiber state)
 * is handled on the worker side, whose frame never changes threads; the
 * coroutine side, which may wake up on another worker after any switch,
 * reads thread-locals only through out-of-line helpers (see coro.c). */
#ifndef WEFT_CORO_CORO_H
#define WEFT_CORO_CORO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/coro.h"

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

enum {
    CO_NEW = 0,        /* never resumed: sp is the initial frame */
    CO_RUNNING,        /* on a thread, between resume and suspend */
    CO_SUSPENDED,      /* parked in an await */
    CO_DONE            /* fn returned; the stack may be released */
};

struct weft__co_slab;

/* A guarded stack is one mapping: a guard page at the low end, then the
 * usable stack. A slab stack (slab.c) is a slot of a shared mapping, with
 * a canary below it instead of a guard page. */
struct weft__co_stack {
    struct weft__co_slab *slab; /* NULL: a guarded stack */
    char *map;                  /* start of the mapping (the guard); for a slab
                                 * stack, lo; NULL: no stack */
    size_t map_size;            /* guard + usable; 0 for a slab stack */
    char *lo, *hi;              /* the usable stack: [lo, hi) */
    size_t cls;                 /* the page-rounded size asked for (the caches' key) */
};

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

/* The worker's side of a resume: on the worker's stack (co_resume's frame),
 * which stays in the worker's cache whichever coroutine it runs. */
struct weft__co_wside {
    struct weft__co_ctx ctx;    /* the worker's saved context */
    weft_context *cx;           /* the current poll's context; NULL in a drop */
};

struct weft__co {
    /* The hot part, what a switch pair touches: 64 bytes. `c` first:
     * weft__co_start finds the record at the context it jumped to. */
    struct weft__co_ctx c;      /* the coroutine's saved context (suspended or new) */
    struct weft__co_wside *w;   /* the resuming worker's side; NULL while not running */
    /* the blocking call (weft_co_read, ...) the coroutine is in, for the
     * task dump; NULL outside one (the coroutine's own) */
    const weft_async_site *site;
    uint64_t deadline;          /* weft_co_deadline_set(); 0: none */
    int err;                    /* the coroutine's errno while it is not running */
    unsigned char state;        /* CO_* */
    bool cancelled;             /* set by the drop: every await returns -ECANCELED */
    bool on_slab;               /* stack.slab != NULL: its canary is checked */
    /* cold */
    struct weft__co_stack stack;
    int result;                 /* what fn returned */
    weft_co_fn *fn;
    void *arg;
    const char *name;
#if WEFT_CO_ASAN
    void *fake_co;              /* ASan fake stacks of both sides */
    void *fake_w;
    const void *w_bottom;       /* the worker's stack, as ASan last reported it */
    size_t w_size;
#endif
#if WEFT_CO_TSAN
    void *fiber;                /* the coroutine's TSan fiber */
    void *w_fiber;              /* the worker's, taken at each resume */
#endif
};

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
#define WEFT_CO_FP_SWAP ""
#else
/* Save ours; load the other side's only where it differs (ldmxcsr and
 * fldcw are slow, and the words nearly never differ). */
#define WEFT_CO_FP_SWAP                                                       \
    "stmxcsr 24(%%rdi)\n\t"                                                   \
    "fnstcw 28(%%rdi)\n\t"                                                    \
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
/* Prepare a fresh context on co's stack, in co->c, that starts
 * weft__co_entry(co) when first jumped to. */
void weft__co_prepare(struct weft__co *co);
/* The coroutine's first function (switch.c calls it on the new stack);
 * never returns: its last act is the switch back to the worker. */
WEFT_NORETURN void weft__co_entry(struct weft__co *co);

/* ---- coro.c ------------------------------------------------------------------
 * The await every blocking-style call is made of (weft_co_await_fn's, with
 * the coroutine's deadline in force); for the wrappers in other files. */
int weft__co_await(weft_poll (*poll)(void *self, weft_context *cx, void *out),
                   void (*drop)(void *self), void *self, void *out);
/* The same, naming the public call the coroutine parks in for the task
 * dump (weft/observe.h promises a coroutine's dump line names "the blocking
 * call it is parked in"): every public weft_co_* wrapper passes its own
 * site (WEFT__CO_SITE_DECL), so a call never shows the name of an earlier one
 * (the site stays set until the next call marks its own). */
int weft__co_await_at(weft_poll (*poll)(void *self, weft_context *cx, void *out),
                      void (*drop)(void *self), void *self, void *out,
                      const weft_async_site *site);
#define WEFT__CO_SITE_DECL(name) static const weft_async_site name = { __func__, NULL, 0 }

/* ---- stack.c ----------------------------------------------------------------- */
/* Map a stack of `size` usable bytes (page-rounded) plus a guard page, or
 * take one of that size from this thread's cache. 0 or -ENOMEM. */
int weft__co_stack_get(struct weft__co_stack *s, size_t size);
/* Give it back: to this thread's cache, or unmapped. */
void weft__co_stack_put(struct weft__co_stack *s);
/* Prepare this thread to run coroutines: an alternate signal stack for the
 * overflow report, once per thread. Cheap after the first call. */
void weft__co_thread_enter(void);
/* Install the guard-page handler (once per process). */
void weft__co_install_handler(void);
/* The coroutine running on this thread, or NULL (the handler reads it). */
struct weft__co *weft__co_running(void);
/* Stacks mapped now (cached ones included): for tests. */
long weft__co_stacks_mapped(void);
/* Guarded stacks mapped now (cached ones included). */
long weft__co_stacks_guarded(void);
/* The most guarded stacks before new ones come from slabs: n >= 0 sets it
 * (0: slabs only), n < 0 restores the default (WEFT_CO_GUARD_MAX from the
 * environment, else vm.max_map_count / 4). Returns the previous limit.
 * For tests and benchmarks. */
long weft__co_guard_limit_set(long n);
/* Abort with the report of a coroutine whose slab stack's canary is broken
 * (async-signal-safe). */
WEFT_NORETURN void weft__co_canary_abort(const struct weft__co *co);

/* ---- slab.c ------------------------------------------------------------------ */
/* A stack of at least `cls` usable bytes (page-rounded; `ps` the page size)
 * from a slab, its canary written. 0 or -ENOMEM. */
int weft__co_slab_get(struct weft__co_stack *s, size_t cls, size_t ps);
/* Give it back to its slab (unmapped with the slab's last stack). */
void weft__co_slab_put(struct weft__co_stack *s);
/* True while a slab stack's canary is intact. */
bool weft__co_canary_ok(const struct weft__co_stack *s);
const void *weft__co_canary_addr(const struct weft__co_stack *s);
/* Slab stacks handed out now (cached ones included), and slabs mapped. */
long weft__co_stacks_slab(void);
long weft__co_slabs_mapped(void);

#endif
