/*
 * ctx_regs_x86_64.S - test helpers that see registers C cannot.
 *
 * krx_test_swap_regs(save, resume, in, out) loads in[0..5] into the
 * callee-saved registers rbx rbp r12 r13 r14 r15, switches away with
 * krx_ctx_swap, and when resumed stores those registers into out[0..5]:
 * out must equal in if the switch preserved them. The caller's own registers
 * are restored before returning, as the ABI requires.
 *
 * krx_test_caller_sp() returns the stack pointer its caller had at the call
 * instruction, which the ABI requires to be 16-byte aligned.
 */
#if defined(__x86_64__)
	.text
	.globl	krx_test_swap_regs
	.type	krx_test_swap_regs, @function
krx_test_swap_regs:
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	pushq	%rcx                 /* out; 7 pushes keep the call aligned */
	movq	0(%rdx), %rbx
	movq	8(%rdx), %rbp
	movq	16(%rdx), %r12
	movq	24(%rdx), %r13
	movq	32(%rdx), %r14
	movq	40(%rdx), %r15
	call	krx_ctx_swap
	movq	(%rsp), %rax
	movq	%rbx, 0(%rax)
	movq	%rbp, 8(%rax)
	movq	%r12, 16(%rax)
	movq	%r13, 24(%rax)
	movq	%r14, 32(%rax)
	movq	%r15, 40(%rax)
	popq	%rcx
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.size	krx_test_swap_regs, .-krx_test_swap_regs

	.globl	krx_test_caller_sp
	.type	krx_test_caller_sp, @function
krx_test_caller_sp:
	leaq	8(%rsp), %rax
	ret
	.size	krx_test_caller_sp, .-krx_test_caller_sp
#endif
	.section .note.GNU-stack, "", @progbits
