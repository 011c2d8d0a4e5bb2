/*
 * vm.h - keeping the VM alive under a host thread's call.
 *
 * A host thread may call kr_send, kr_spawn, kr_info ... while another host
 * thread runs kr_vm_stop, which frees the process table. So a host thread's
 * call counts itself in for its duration, and stop first closes the door,
 * then waits for the calls inside to leave before it frees anything.
 * Processes need no such care: stop joins the schedulers they run on before
 * freeing.
 */
#ifndef KRX_VM_H
#define KRX_VM_H

#include "sched.h"

int krx_vm_enter_host(void);
void krx_vm_leave_host(void);

/* Call with krx_sched_self(), read once by the caller: 0, or KR_ESTOPPED
 * (then do not call krx_vm_leave). A process needs nothing: stop joins its
 * thread before freeing anything, and it exists only while the VM runs. */
static inline int krx_vm_enter(krx_sched *self)
{
	return self ? 0 : krx_vm_enter_host();
}

/* Count n messages sent to processes that were gone. */
void krx_dead_letters(unsigned n);

static inline void krx_vm_leave(krx_sched *self)
{
	if (!self)
		krx_vm_leave_host();
}

#endif
