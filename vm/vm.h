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

#include "msg.h"
#include "outbox.h"
#include "sched.h"
#include "stat.h"

/* What vm/ keeps per scheduler (krx_sched.vm.local): touched by that
 * scheduler's thread only. */
typedef struct krx_vm_local {
	_Alignas(64) krx_outbox outbox; /* on lines of its own: krx_calloc_lines */
	krx_msg_cache msgs;
	krx_slot_cache slots; /* free process slots (proc.c) */
	uint64_t refs;        /* references made here (krx_ref_new) */
	/* A figure (krx_vm_figures_get), added to by this scheduler's thread
	 * only (stat.h), read by any; messages sent are msgs.sent. */
	uint64_t restarts;    /* children restarted by supervisors running here */
} krx_vm_local;

/* vm/'s corner of scheduler s. */
static inline krx_vm_local *krx_vm_local_of(krx_sched *s)
{
	return s->vm.local;
}

/* The message cache of scheduler s, or NULL for a host thread (s NULL). */
static inline krx_msg_cache *krx_vm_msg_cache(krx_sched *s)
{
	return s ? &krx_vm_local_of(s)->msgs : NULL;
}

/* The VM's figures that are kept per scheduler (stat.h), summed: for the
 * observer and kr_vm_stats. */
typedef struct krx_vm_figures {
	uint64_t sent;      /* messages sent: user messages, requests and replies,
	                     * from processes and host threads, to live processes or not */
	uint64_t restarts;  /* children restarted by supervisors (kr_sup_child.restarts) */
	uint64_t msg_bytes; /* message blocks held from the allocator: queued, received
	                     * and not yet freed, and cached for reuse (msg.h) */
} krx_vm_figures;
/* Any thread, while the VM runs (a host thread inside krx_vm_enter). */
void krx_vm_figures_get(krx_vm_figures *out);
/* A supervisor restarted a child (sup.c, from its process). */
void krx_vm_count_restart(void);
/* A host thread sent a message (send.c). */
void krx_vm_count_host_send(void);

int krx_vm_enter_host(void);
void krx_vm_leave_host(void);
/* Has kr_vm_stop closed the door? A host thread inside a call that waits
 * (a receive) gives up when it has (host.c). */
bool krx_vm_stopping(void);

/* Call with krx_sched_self(), read once by the caller: 0, or KR_ESTOPPED
 * (then do not call krx_vm_leave). A process needs nothing: stop joins its
 * thread before freeing anything, and it exists only while the VM runs. */
static inline int krx_vm_enter(krx_sched *self)
{
	return self ? 0 : krx_vm_enter_host();
}

/* A process has ended (its exit path): kr_main waits for its root's. */
void krx_vm_proc_ended(kr_pid pid, int kind);

static inline void krx_vm_leave(krx_sched *self)
{
	if (!self)
		krx_vm_leave_host();
}

#endif
