/*
 * host.h - host threads' mailboxes (host.c): a thread that is not a krill
 * process gets a process slot of its own, a pid with a mailbox, when it
 * first needs one (kr_self, a receive, kr_call, kr_monitor, kr_link).
 *
 * Everything here is for host threads only (krx_sched_self() NULL), and,
 * but for krx_host_enter, inside krx_vm_enter: a host thread's mailbox
 * lives in the process table, which kr_vm_stop frees.
 */
#ifndef KRX_HOST_H
#define KRX_HOST_H

#include <stdbool.h>

#include "proc.h"

/* A host thread's record of its mailbox (host.c), in its thread-local
 * storage: initial-exec, as sched/tls.c's block, so that reading it is
 * one load and no call (send paths read the pid). Host threads only: a
 * process may move between threads, a host thread never does. */
typedef struct krx_host_rec {
	krx_proc *proc; /* the mailbox, or NULL */
	kr_pid pid;
	struct krx_host_rec *prev, *next; /* on host.c's list, while proc is set */
} krx_host_rec;
extern __thread krx_host_rec krx_host_self
	__attribute__((tls_model("initial-exec"), visibility("hidden")));

/* The calling host thread's mailbox, made on first use; NULL, with *err
 * (KR_ELIMIT, KR_ENOMEM), if none could be made. */
krx_proc *krx_host_proc(int *err);
/* The calling host thread's mailbox if it has one, else NULL. */
static inline krx_proc *krx_host_peek(void)
{
	return krx_host_self.proc;
}
/* Its pid, or 0 without a mailbox: the sender of what it sends. */
static inline kr_pid krx_host_pid(void)
{
	return krx_host_self.pid;
}

/* A public call's way in from a host thread: enter the VM and take the
 * thread's mailbox, made on first use if make. NULL, with *err
 * (KR_ESTOPPED, krx_host_proc's errors, or 0: !make and it has none), and
 * the VM not entered; otherwise the caller leaves with krx_vm_leave_host. */
krx_proc *krx_host_enter(bool make, int *err);

/* kr_vm_stop, its door closed, while host calls are still inside: wake
 * the host threads parked in a receive, which then return KR_ESTOPPED. */
void krx_host_kick_all(void);
/* kr_vm_stop, no host call inside any more: forget every host thread's
 * mailbox (the table that holds them goes next); a thread that calls in
 * after a restart gets a fresh one. */
void krx_host_vm_stopped(void);

#endif
