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

/* 0, or KR_ESTOPPED (then do not call krx_vm_leave). */
int krx_vm_enter(void);
void krx_vm_leave(void);

#endif
