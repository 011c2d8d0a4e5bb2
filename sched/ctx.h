/*
 * ctx.h - the coroutine interface the rest of krill uses.
 *
 * A context is a suspended flow of control: the stack pointer it stopped at,
 * with its callee-saved registers (and FP control state) pushed on that very
 * stack. krx_ctx_switch() saves the running flow into one context and resumes
 * another; the switch itself is hand-written assembly (ctx_x86_64.S,
 * ctx_aarch64.S) that resumes with an indirect jump, not a `ret`, so the
 * return-stack predictor is not fooled on every switch.
 *
 * Two kinds of context exist:
 *  - a thread context (krx_ctx_init_thread): the OS thread's own stack, e.g.
 *    a scheduler's loop; it is only ever switched away from and back to;
 *  - a coroutine (krx_ctx_make): a stack of our own whose first resumption
 *    enters krx_ctx_trampoline, which calls fn(arg). When fn returns, the
 *    coroutine switches to ctx->exit_to and must never be resumed again.
 *
 * Sanitizers and Valgrind must know about every switch, or they report
 * nonsense: ASan builds call __sanitizer_{start,finish}_switch_fiber around
 * the switch, TSan builds switch TSan fibers, and every build registers each
 * coroutine stack with Valgrind (a user's program linked with the installed
 * library runs under memcheck as it is; outside Valgrind a registration is a
 * few instructions that do nothing). The sanitizers' calls compile away in a
 * plain build, and krx_ctx_switch() is a single call into the assembly.
 */
#ifndef KRX_CTX_H
#define KRX_CTX_H

#include <stddef.h>

#include "san.h"

#if KRX_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#if KRX_TSAN
#include <sanitizer/tsan_interface.h>
#endif

typedef struct krx_ctx krx_ctx;
typedef void krx_ctx_fn(void *arg);

struct krx_ctx {
	void *sp;              /* saved stack pointer; registers lie above it */
#if KRX_ASAN
	const void *stack_lo;  /* this context's stack, for ASan's fiber API */
	size_t stack_size;
	void *fake_stack;      /* ASan's fake stack while switched away */
#endif
#if KRX_TSAN
	void *tsan_fiber;
	int tsan_owned;        /* created by us, so destroyed by us */
#endif
	unsigned vg_stack_id;  /* Valgrind's id for this coroutine's stack; 0: none */
};

/* The assembly primitives (ctx_<arch>.S). Use the wrappers below. */
void krx_ctx_swap(void **save_sp, void *resume_sp);
void krx_ctx_trampoline(void);

/* Adopt the calling thread's own stack as a context one can switch back to. */
void krx_ctx_init_thread(krx_ctx *ctx);

/*
 * Prepare a coroutine on the stack [lo, lo + size). The first switch to it
 * calls fn(arg); when fn returns the coroutine switches to exit_to. fn, arg
 * and exit_to travel in the first frame's callee-saved registers, not in
 * the context: a context is its stack pointer (and the tools' ids), which
 * keeps a process's structure small.
 */
void krx_ctx_make(krx_ctx *ctx, void *lo, size_t size, krx_ctx_fn *fn, void *arg,
                  krx_ctx *exit_to);

/* Release what the tools attached to ctx. Never on the running context. */
void krx_ctx_destroy(krx_ctx *ctx);

/* Entry reached from the trampoline, with what krx_ctx_make planted;
 * defined in ctx.c. */
_Noreturn void krx_ctx_entry(krx_ctx *self, krx_ctx_fn *fn, void *arg, krx_ctx *exit_to);

/* Switch for the last time from a finishing coroutine (ASan frees its fake
 * stack). Used by krx_ctx_entry and by code that ends a coroutine early. */
_Noreturn void krx_ctx_exit(krx_ctx *from, krx_ctx *to);

/* Save the running flow into `from` and resume `to`. Returns when something
 * switches back to `from`. */
static inline void krx_ctx_switch(krx_ctx *from, krx_ctx *to)
{
#if KRX_ASAN
	__sanitizer_start_switch_fiber(&from->fake_stack, to->stack_lo, to->stack_size);
#endif
#if KRX_TSAN
	__tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
	krx_ctx_swap(&from->sp, to->sp);
#if KRX_ASAN
	__sanitizer_finish_switch_fiber(from->fake_stack, NULL, NULL);
#endif
}

#endif
