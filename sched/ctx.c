/*
 * ctx.c - building coroutine contexts, and telling the sanitizers and
 * Valgrind about them. The switch itself is in ctx_<arch>.S.
 *
 * krx_ctx_make plants a frame on the new stack that looks exactly like one
 * krx_ctx_swap pushed, with krx_ctx_trampoline as the resume address and the
 * context pointer, fn, arg and exit_to in callee-saved registers (r12-r15 /
 * x19-x22), so the first switch to a coroutine needs no special case in the
 * assembly, and the context needs no room for them.
 */
#include "ctx.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <valgrind/valgrind.h>

#if defined(__x86_64__)
/* Frame words, as krx_ctx_swap pops them: FP control, r15, r14, r13, r12,
 * rbx, rbp, the resume address. */
enum { FRAME_WORDS = 8, CTX_SLOT = 4 /* r12 */, FN_SLOT = 3 /* r13 */, ARG_SLOT = 2 /* r14 */,
       EXIT_SLOT = 1 /* r15 */, RESUME_SLOT = 7 };
/* Default FP control state of a fresh thread: all exceptions masked,
 * round to nearest (MXCSR 0x1f80), x87 extended precision (0x037f). */
#define FP_CONTROL_WORD ((uint64_t)0x1f80 | ((uint64_t)0x037f << 32))
#elif defined(__aarch64__)
/* FPCR (word 20) stays 0: round to nearest, no flush-to-zero. */
enum { FRAME_WORDS = 22, CTX_SLOT = 0 /* x19 */, FN_SLOT = 1 /* x20 */, ARG_SLOT = 2 /* x21 */,
       EXIT_SLOT = 3 /* x22 */, RESUME_SLOT = 11 /* x30 */ };
#else
#error "krill supports x86-64 and aarch64"
#endif

void krx_ctx_init_thread(krx_ctx *ctx)
{
	memset(ctx, 0, sizeof *ctx);
#if KRX_ASAN
	/* ASan needs the bounds of the stack it resumes, the thread's included. */
	pthread_attr_t attr;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		void *lo;
		size_t size;
		pthread_attr_getstack(&attr, &lo, &size);
		ctx->stack_lo = lo;
		ctx->stack_size = size;
		pthread_attr_destroy(&attr);
	}
#endif
#if KRX_TSAN
	ctx->tsan_fiber = __tsan_get_current_fiber();
#endif
}

void krx_ctx_make(krx_ctx *ctx, void *lo, size_t size, krx_ctx_fn *fn, void *arg,
                  krx_ctx *exit_to)
{
	memset(ctx, 0, sizeof *ctx);

	/* The frame ends 16 bytes under the 16-aligned top, so the trampoline
	 * starts with sp 16-byte aligned, as after a call's return. */
	uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
	uint64_t *frame = (uint64_t *)(top - 16) - FRAME_WORDS;
	memset(frame, 0, FRAME_WORDS * sizeof *frame);
	frame[CTX_SLOT] = (uintptr_t)ctx;
	frame[FN_SLOT] = (uintptr_t)fn;
	frame[ARG_SLOT] = (uintptr_t)arg;
	frame[EXIT_SLOT] = (uintptr_t)exit_to;
	frame[RESUME_SLOT] = (uintptr_t)krx_ctx_trampoline;
#if defined(__x86_64__)
	frame[0] = FP_CONTROL_WORD;
#endif
	ctx->sp = frame;

#if KRX_ASAN
	ctx->stack_lo = lo;
	ctx->stack_size = size;
#endif
#if KRX_TSAN
	ctx->tsan_fiber = __tsan_create_fiber(0);
	ctx->tsan_owned = 1;
#endif
	/* In every build. Without it memcheck takes a switch to a stack less
	 * than 2 MB away (the next slot of the pool) for frames pushed or
	 * popped, and marks the bytes in between, another coroutine's live
	 * frames, unaddressable. The bounds are the stack's first and last
	 * byte. */
	ctx->vg_stack_id = VALGRIND_STACK_REGISTER(lo, (char *)lo + size - 1);
}

void krx_ctx_destroy(krx_ctx *ctx)
{
#if KRX_TSAN
	if (ctx->tsan_owned && ctx->tsan_fiber)
		__tsan_destroy_fiber(ctx->tsan_fiber);
	ctx->tsan_fiber = NULL;
#endif
	if (ctx->vg_stack_id)
		VALGRIND_STACK_DEREGISTER(ctx->vg_stack_id);
	ctx->vg_stack_id = 0;
}

_Noreturn void krx_ctx_exit(krx_ctx *from, krx_ctx *to)
{
#if KRX_ASAN
	/* A NULL save slot tells ASan this fiber is gone: it frees the fake stack. */
	__sanitizer_start_switch_fiber(NULL, to->stack_lo, to->stack_size);
#endif
#if KRX_TSAN
	__tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
	krx_ctx_swap(&from->sp, to->sp);
	__builtin_unreachable();
}

_Noreturn void krx_ctx_entry(krx_ctx *self, krx_ctx_fn *fn, void *arg, krx_ctx *exit_to)
{
#if KRX_ASAN
	__sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
	fn(arg);
	krx_ctx_exit(self, exit_to);
}
