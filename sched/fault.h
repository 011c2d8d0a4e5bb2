/*
 * fault.h - turning a hardware fault in a process's own code (SIGSEGV,
 * SIGBUS, SIGFPE, SIGILL, a stack overflow into the guard) into the end of
 * that process, while its scheduler goes on with the next one.
 *
 * The signal handler only records the fault and redirects the thread, by
 * its ucontext, to a trampoline on a stack of the scheduler's own; the
 * trampoline reports the fault through the task_fault hook and ends the task
 * with krx_task_exit. Faults that are not a process's (krill's own code, a
 * scheduler's own stack, threads that are not schedulers) go to the host's
 * previous handler, or end the program with a crash dump. See docs/faults.md.
 */
#ifndef KRX_FAULT_H
#define KRX_FAULT_H

#include <stdbool.h>

typedef enum krx_fault_kind {
	KRX_FAULT_SEGV,           /* "segfault": a bad memory access */
	KRX_FAULT_BUS,            /* "bus_error": e.g. a mapped file cut short */
	KRX_FAULT_FPE,            /* "fpe": integer division by zero, ... */
	KRX_FAULT_ILL,            /* "illegal_instruction": also __builtin_trap */
	KRX_FAULT_STACK_OVERFLOW, /* "stack_overflow": into the guard under the stack */
	KRX_FAULT_KINDS
} krx_fault_kind;

#define KRX_FAULT_FRAMES 32

typedef struct krx_fault {
	krx_fault_kind kind;
	int signo;
	int code;                /* si_code; <= 0 when the process sent it itself */
	void *addr;              /* si_addr: the faulting address, or pc for SIGFPE/SIGILL */
	void *pc;                /* the faulting instruction */
	int nframes;             /* frames[0] is pc, the process's stack follows */
	void *frames[KRX_FAULT_FRAMES];
} krx_fault;

struct krx_sched;
struct krx_sched_hooks;

/* The one place the kinds are named: "segfault", "bus_error", "fpe",
 * "illegal_instruction", "stack_overflow". */
const char *krx_fault_kind_name(krx_fault_kind kind);

/* Is pc in krill's own code (the krill_text range)? Crash reports leave
 * krill's frames out of a process's backtrace. */
bool krx_pc_in_krill(const void *pc);

/* At VM start, before the scheduler threads exist: per-scheduler state for
 * n schedulers, then the handlers (the host's are kept to chain to).
 * 0 or KR_ENOMEM. */
int krx_fault_start(unsigned n, const struct krx_sched_hooks *hooks);
/* At VM stop, once every scheduler thread has been joined: the host's
 * handlers back (unless it replaced ours meanwhile), the state freed. */
void krx_fault_stop(void);

/* On a scheduler thread, at its start and at its end: its alternate signal
 * stack and its trampoline stack. false if they could not be mapped (the
 * scheduler then runs, but a fault on it is not contained). */
bool krx_fault_thread_start(struct krx_sched *s);
void krx_fault_thread_stop(struct krx_sched *s);

#endif
