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

static inline struct krx_tls *krx_tls(void)
{
	return (struct krx_tls *)kr__reductions_left();
}

#endif
