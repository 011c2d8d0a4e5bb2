/*
 * tls.h - the calling thread's krill state, read afresh after every switch.
 *
 * A process may be resumed on another thread. Compilers treat the address of
 * a __thread variable as constant within a function and may keep it in a
 * register across a call that switches, after which it points at the old
 * thread's copy. So krill never names its thread-local block directly: it
 * reads the thread pointer with an asm volatile (which cannot be cached) and
 * adds the block's offset from it, the same for every thread because the
 * block is initial-exec (static) TLS. kr__tls_offset is computed at load time.
 */
#ifndef KRX_TLS_H
#define KRX_TLS_H

#include "krill.h"

struct krx_sched;

struct krx_tls {
	long reds;               /* reductions left; first: KR_CHECK uses it */
	struct krx_sched *sched; /* the scheduler this thread is, or NULL */
};

/* kr__tls_offset, for krill's own code (tls.c). */
extern long krx_tls_offset __attribute__((visibility("hidden")));

static inline char *krx_thread_pointer(void)
{
	char *tp;
#if defined(__x86_64__)
	__asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
#else
	__asm__ volatile("mrs %0, tpidr_el0" : "=r"(tp));
#endif
	return tp;
}

static inline struct krx_tls *krx_tls(void)
{
	return (struct krx_tls *)(krx_thread_pointer() + krx_tls_offset);
}

/* The calling thread's scheduler, in one load relative to the thread
 * pointer where the CPU has one (asm volatile, for the reason above). */
static inline struct krx_sched *krx_tls_sched(void)
{
#if defined(__x86_64__)
	struct krx_sched *s;
	__asm__ volatile("mov %%fs:(%1), %0"
	                 : "=r"(s)
	                 : "r"(krx_tls_offset + (long)__builtin_offsetof(struct krx_tls, sched)));
	return s;
#else
	return krx_tls()->sched;
#endif
}

#endif
