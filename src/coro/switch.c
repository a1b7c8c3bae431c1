/* SPDX-License-Identifier: MIT */
/* The context switch: inline asm on x86-64 (weft__co_jump in task/stackful.h),
 * hand-written out-of-line asm on aarch64, ucontext elsewhere.
 *
 * On aarch64 (and with ucontext) a switch is an ordinary function call as
 * far as the compiler is concerned: weft__co_switch(&save, load) is
 * called, and "returns" when some later switch loads `save` again (maybe
 * on another thread). So it only has to keep what the calling convention
 * says a callee preserves; everything else (caller-saved registers, flags,
 * the red zone below the stack pointer) the caller already assumes
 * clobbered. Being an external call to code the compiler cannot see, it
 * is also a full compiler barrier for memory.
 *
 * x86-64 (System V ABI, section 3.2.1 and 3.2.3): the switch is inline asm
 * that tells the compiler it clobbers every general register but rsp and
 * rbp, the vector, x87 and mask registers, the flags and memory, so the
 * compiler itself keeps what is live (on its own stack) and saves the
 * callee-saved registers for its caller in the prologue; the asm saves
 * rsp, rbp, its resume address and the FP control into a context in the
 * coroutine record (or, for the worker, in co_resume's frame), and loads
 * the other side's. Being inline, it is neither a call nor a return: the
 * return stack buffer stays paired with the calls that run (coro.h). "The
 * control bits of the MXCSR register are callee-saved, while the status
 * bits are caller-saved", and "the x87 CPU control word is callee-saved":
 * a coroutine that sets a rounding mode or flush-to-zero with
 * fesetround()/_MM_SET_FLUSH_ZERO_MODE must keep it when it moves to
 * another thread, and must not leak it into the worker: so the switch
 * saves mxcsr (stmxcsr; the status bits ride along, which is allowed: they
 * are caller-saved, anything may change them) and the x87 control word
 * (fnstcw), and loads the other side's where it differs. The direction
 * flag is clear on both sides, as at any call.
 *
 *     context: rsp, resume address, rbp, mxcsr, x87 cw     (32 bytes)
 *
 * aarch64 (AAPCS64, section 6.1.1 and 6.1.2): callee-saved are x19-x28,
 * the frame pointer x29, the link register x30 (our return address), sp,
 * and the low 64 bits of v8-v15 (d8-d15). FPCR (rounding mode, flush to
 * zero, default NaN) is not a general callee-saved register, but its mode
 * bits are expected to be unchanged across a call, like mxcsr's: it is
 * saved too, and written back only when it differs (a write to FPCR can
 * cost tens of cycles; the read is cheap). FPSR (the cumulative exception
 * flags) is caller-saved. x18 is the platform register (left alone). They
 * are pushed on the running stack, whose pointer is the handle:
 *
 *     handle -> x19..x28 x29 x30 d8..d15 fpcr pad     (176 bytes)
 *
 * A new context starts in weft__co_start, which calls weft__co_entry(co)
 * with the stack aligned as a call expects (16 bytes at the call) and the
 * frame-pointer chain and the unwind info ended there (the return address
 * column is undefined), so debuggers and sanitizers stop unwinding at the
 * coroutine's first frame. On x86-64 the context's resume address is
 * weft__co_start and rsi points at the record; on aarch64 it is a fake
 * frame of the switch's shape whose x30 is weft__co_start and x19 the
 * coroutine.
 *
 * Intel CET: with -fcf-protection the entry points (and the inline
 * switch's resume point) start with endbr64; the shadow stack is not
 * supported (a switch does not switch it), as in every other stackful
 * coroutine library without kernel help. */
#include <stdint.h>
#include <stdlib.h>

#include "coro/coro.h"

#if !WEFT_CO_UCONTEXT

void weft__co_start(void);    /* the asm below */

#if defined(__x86_64__)

/* The switch itself is inline asm (weft__co_jump in task/stackful.h), emitted
 * where the two sides call it; here only the start of a new context.
 *
 * weft__co_start is jumped to (not called) by the first switch into a new
 * coroutine, with rsp = the top of its stack (16-aligned, a zero "return
 * address" above it) and rsi = its context, which is the start of the
 * coroutine record (coro.h: `s.c` is its first member). */
#if defined(__CET__) && (__CET__ & 1)
#define WEFT_ENDBR "endbr64\n"
#else
#define WEFT_ENDBR ""
#endif

_Static_assert(offsetof(struct weft__co, s) == 0 && offsetof(struct weft__stackful, c) == 0,
               "weft__co_start needs the context first");

__asm__(
    ".text\n"
    ".globl weft__co_start\n"
    ".hidden weft__co_start\n"
    ".type weft__co_start, @function\n"
    ".p2align 4\n"
    "weft__co_start:\n"
    ".cfi_startproc\n"
    ".cfi_undefined rip\n"
    WEFT_ENDBR
    "    movq %rsi, %rdi\n"        /* the record: weft__co_entry's argument */
    "    xorl %ebp, %ebp\n"        /* end of the frame-pointer chain */
    "    call weft__co_entry\n"
    "    ud2\n"                    /* weft__co_entry never returns */
    ".cfi_endproc\n"
    ".size weft__co_start, .-weft__co_start\n");

/* mxcsr 0x1f80: all exceptions masked, round to nearest, no FTZ/DAZ; x87
 * control word 0x037f: all masked, 64-bit precision, round to nearest. A
 * coroutine starts with the FP environment a new thread starts with. */
#define CO_MXCSR_INIT 0x1f80u
#define CO_X87CW_INIT 0x037fu

void weft__co_prepare(struct weft__co *co)
{
    uintptr_t top = (uintptr_t)co->stack.hi & ~(uintptr_t)15;
    uint64_t *a = (uint64_t *)(top - 16);    /* 16-aligned: rsp at the start */

    a[0] = 0;                                 /* a zero "return address" */
    a[1] = 0;
    co->s.c.rsp = a;
    co->s.c.rip = (void *)&weft__co_start;
    co->s.c.rbp = NULL;
    co->s.c.mxcsr = CO_MXCSR_INIT;
    co->s.c.x87cw = CO_X87CW_INIT;
    co->s.c.pad = 0;
}

#elif defined(__aarch64__)

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define WEFT_BTI_C "hint #34\n"     /* bti c */
#else
#define WEFT_BTI_C ""
#endif

__asm__(
    ".text\n"
    ".globl weft__co_switch\n"
    ".hidden weft__co_switch\n"
    ".type weft__co_switch, %function\n"
    ".p2align 4\n"
    "weft__co_switch:\n"
    ".cfi_startproc\n"
    WEFT_BTI_C
    "    sub sp, sp, #176\n"
    ".cfi_adjust_cfa_offset 176\n"
    "    stp x19, x20, [sp, #0]\n"
    "    stp x21, x22, [sp, #16]\n"
    "    stp x23, x24, [sp, #32]\n"
    "    stp x25, x26, [sp, #48]\n"
    "    stp x27, x28, [sp, #64]\n"
    "    stp x29, x30, [sp, #80]\n"
    "    stp d8, d9, [sp, #96]\n"
    "    stp d10, d11, [sp, #112]\n"
    "    stp d12, d13, [sp, #128]\n"
    "    stp d14, d15, [sp, #144]\n"
    "    mrs x9, fpcr\n"
    "    str x9, [sp, #160]\n"
    "    mov x9, sp\n"
    "    str x9, [x0]\n"           /* *save = our handle */
    "    mov sp, x1\n"             /* the other side's stack */
    "    ldp x19, x20, [sp, #0]\n"
    "    ldp x21, x22, [sp, #16]\n"
    "    ldp x23, x24, [sp, #32]\n"
    "    ldp x25, x26, [sp, #48]\n"
    "    ldp x27, x28, [sp, #64]\n"
    "    ldp x29, x30, [sp, #80]\n"
    "    ldp d8, d9, [sp, #96]\n"
    "    ldp d10, d11, [sp, #112]\n"
    "    ldp d12, d13, [sp, #128]\n"
    "    ldp d14, d15, [sp, #144]\n"
    "    ldr x9, [sp, #160]\n"
    "    mrs x10, fpcr\n"
    "    cmp x9, x10\n"
    "    b.eq 1f\n"
    "    msr fpcr, x9\n"
    "1:  add sp, sp, #176\n"
    ".cfi_adjust_cfa_offset -176\n"
    "    ret\n"
    ".cfi_endproc\n"
    ".size weft__co_switch, .-weft__co_switch\n"
    "\n"
    ".globl weft__co_start\n"
    ".hidden weft__co_start\n"
    ".type weft__co_start, %function\n"
    ".p2align 4\n"
    "weft__co_start:\n"
    ".cfi_startproc\n"
    ".cfi_undefined x30\n"
    WEFT_BTI_C
    "    mov x0, x19\n"
    "    mov x29, xzr\n"           /* end of the frame-pointer chain */
    "    bl weft__co_entry\n"
    "    brk #0\n"                 /* weft__co_entry never returns */
    ".cfi_endproc\n"
    ".size weft__co_start, .-weft__co_start\n");

void weft__co_prepare(struct weft__co *co)
{
    uintptr_t top = (uintptr_t)co->stack.hi & ~(uintptr_t)15;
    uint64_t *f = (uint64_t *)(top - 176);

    for (int i = 0; i < 22; i++)
        f[i] = 0;                             /* d8-d15 0, fpcr 0: the default */
    f[0] = (uint64_t)(uintptr_t)co;           /* x19: weft__co_start's argument */
    f[11] = (uint64_t)(uintptr_t)&weft__co_start;  /* x30: "return address" */
    co->s.c.sp = f;
}

#endif /* arch */

#else /* WEFT_CO_UCONTEXT: the portable fallback (a syscall per switch) */

#include <ucontext.h>

/* The handle is a ucontext_t on the saving side's own stack (this frame),
 * alive while that side is parked in this call, as the asm's frame is. */
void weft__co_switch(void **save, void *load)
{
    ucontext_t here;

    *save = &here;
    if (swapcontext(&here, (ucontext_t *)load) < 0)
        abort();
}

static void co_start_uc(void)
{
    /* makecontext passes only ints: the worker side set the running
     * coroutine before switching in */
    weft__co_entry(weft__co_running());
}

void weft__co_prepare(struct weft__co *co)
{
    uintptr_t top = (uintptr_t)co->stack.hi - sizeof(ucontext_t);
    ucontext_t *uc = (ucontext_t *)(top & ~(uintptr_t)63);

    if (getcontext(uc) < 0)
        abort();
    uc->uc_stack.ss_sp = co->stack.lo;
    uc->uc_stack.ss_size = (size_t)((char *)uc - co->stack.lo);
    uc->uc_link = NULL;
    makecontext(uc, co_start_uc, 0);
    co->s.c.sp = uc;
}

#endif
