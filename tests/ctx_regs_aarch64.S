/*
 * ctx_regs_aarch64.S - test helpers that see registers C cannot.
 *
 * krx_test_swap_regs(save, resume, in, out) loads in[0..18] into the
 * callee-saved registers x19-x29 and d8-d15, switches away with
 * krx_ctx_swap, and when resumed stores those registers into out[0..18]:
 * out must equal in if the switch preserved them. The caller's own registers
 * are restored before returning, as the ABI requires.
 *
 * krx_test_caller_sp() returns the stack pointer, which AAPCS64 requires to
 * be 16-byte aligned at every public interface.
 */
#if defined(__aarch64__)
	.text
	.globl	krx_test_swap_regs
	.type	krx_test_swap_regs, %function
krx_test_swap_regs:
	stp	x29, x30, [sp, #-176]!
	stp	x19, x20, [sp, #16]
	stp	x21, x22, [sp, #32]
	stp	x23, x24, [sp, #48]
	stp	x25, x26, [sp, #64]
	stp	x27, x28, [sp, #80]
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	str	x3, [sp, #160]
	ldp	x19, x20, [x2, #0]
	ldp	x21, x22, [x2, #16]
	ldp	x23, x24, [x2, #32]
	ldp	x25, x26, [x2, #48]
	ldp	x27, x28, [x2, #64]
	ldr	x29, [x2, #80]
	ldp	d8, d9, [x2, #88]
	ldp	d10, d11, [x2, #104]
	ldp	d12, d13, [x2, #120]
	ldp	d14, d15, [x2, #136]
	bl	krx_ctx_swap
	ldr	x9, [sp, #160]
	stp	x19, x20, [x9, #0]
	stp	x21, x22, [x9, #16]
	stp	x23, x24, [x9, #32]
	stp	x25, x26, [x9, #48]
	stp	x27, x28, [x9, #64]
	str	x29, [x9, #80]
	stp	d8, d9, [x9, #88]
	stp	d10, d11, [x9, #104]
	stp	d12, d13, [x9, #120]
	stp	d14, d15, [x9, #136]
	ldp	x19, x20, [sp, #16]
	ldp	x21, x22, [sp, #32]
	ldp	x23, x24, [sp, #48]
	ldp	x25, x26, [sp, #64]
	ldp	x27, x28, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	ldp	x29, x30, [sp], #176
	ret
	.size	krx_test_swap_regs, .-krx_test_swap_regs

	.globl	krx_test_caller_sp
	.type	krx_test_caller_sp, %function
krx_test_caller_sp:
	mov	x0, sp
	ret
	.size	krx_test_caller_sp, .-krx_test_caller_sp
#endif
	.section .note.GNU-stack, "", %progbits
