/*
 * ctx_aarch64.S - context switch for AAPCS64.
 *
 * A suspended context's stack, from its saved sp upwards (176 bytes, so sp
 * stays 16-byte aligned as the ABI demands at all times):
 *
 *     sp + 0    x19 x20        sp + 96   d8  d9
 *     sp + 16   x21 x22        sp + 112  d10 d11
 *     sp + 32   x23 x24        sp + 128  d12 d13
 *     sp + 48   x25 x26        sp + 144  d14 d15
 *     sp + 64   x27 x28        sp + 160  FPCR, pad
 *     sp + 80   x29 x30 (x30 = resume address)
 *
 * x19-x29, sp and the low halves of v8-v15 are callee-saved by AAPCS64. FPCR
 * (rounding mode, flush-to-zero) is saved too, so a process that changes its
 * rounding mode does not change anyone else's; writing FPCR can be slow on
 * some cores, so it is written only when the value differs.
 *
 * The resume address is jumped to with `br`, not `ret`: a `ret` into another
 * stack never matches the return-stack predictor and mispredicts every time.
 */
#if defined(__aarch64__)

	.text

/* void krx_ctx_swap(void **save_sp (x0), void *resume_sp (x1)) */
	.globl	krx_ctx_swap
	.hidden	krx_ctx_swap
	.type	krx_ctx_swap, %function
	.p2align 4
krx_ctx_swap:
	.cfi_startproc
	sub	sp, sp, #176
	.cfi_adjust_cfa_offset 176
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	mrs	x9, fpcr
	str	x9, [sp, #160]

	mov	x10, sp
	str	x10, [x0]
	mov	sp, x1

	ldr	x10, [sp, #160]
	cmp	x9, x10
	b.eq	1f
	msr	fpcr, x10
1:	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #176
	br	x30
	.cfi_endproc
	.size	krx_ctx_swap, .-krx_ctx_swap

/*
 * A fresh coroutine's first resumption lands here with its krx_ctx, fn, arg
 * and exit_to in x19-x22 (planted by krx_ctx_make). The CFI marks the return address (x30) as
 * undefined and the frame pointer is zeroed: this is the outermost frame, so
 * debuggers and backtrace() stop here instead of walking into garbage.
 */
	.globl	krx_ctx_trampoline
	.hidden	krx_ctx_trampoline
	.type	krx_ctx_trampoline, %function
	.p2align 4
krx_ctx_trampoline:
	.cfi_startproc
	.cfi_undefined x30
	mov	x29, #0
	mov	x30, #0
	mov	x0, x19
	mov	x1, x20
	mov	x2, x21
	mov	x3, x22
	bl	krx_ctx_entry
	brk	#0
	.cfi_endproc
	.size	krx_ctx_trampoline, .-krx_ctx_trampoline

#endif
	.section .note.GNU-stack, "", %progbits
