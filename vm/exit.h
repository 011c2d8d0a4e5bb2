/*
 * exit.h - how a process ends: its reason, ending itself, and the exit path
 * that tells the rest of the VM (exit.c owns all of it).
 *
 * A process ends in one of three ways: its function returns (normal), it
 * ends itself (kr_exit, kr_crash, KR_ASSERT, a fault, the heap limit), or
 * an exit signal it takes in ends it (signal.c records the reason). Either
 * way the reason is recorded first (krx_proc_set_reason), then the task
 * leaves its stack for good (krx_task_exit) and krx_proc_exited runs on the
 * scheduler's stack, in this order: the report (an error for a crash of
 * its own, a debug line for an end by an exit signal); the mailbox closed
 * (link and monitor requests still in it answered) and the descriptors
 * closed; the name freed; the pid dead; exit signals and DOWN messages out;
 * the heap freed; the slot given back.
 */
#ifndef KRX_EXIT_H
#define KRX_EXIT_H

#include "proc.h"

/* Owner: end now, with the reason already recorded (never returns). */
_Noreturn void krx_proc_end(krx_proc *p);
/* Owner: end now if a signal taken in said so. */
static inline void krx_proc_end_if_told(krx_proc *p)
{
	if (__builtin_expect(p->ending, 0))
		krx_proc_end(p);
}
/* Record why p ends: kind, text (may be NULL), the signal's sender (0: a
 * host thread; KRX_OWN_END: its own doing), and for its own crashes a
 * backtrace taken here. The first reason stands. */
#define KRX_OWN_END ((kr_pid)-1)
void krx_proc_set_reason(krx_proc *p, int kind, const char *text, kr_pid from, bool want_bt);

/* p passed its max_heap asking for want bytes: end it (never returns). */
_Noreturn void krx_proc_heap_limit(krx_proc *p, size_t want);
/* Not normal, not shutdown: reported, and propagated over links. */
bool krx_exit_is_abnormal(int kind);
/* A backtrace of the calling process for its crash report, from its call
 * into krill outwards (krill's frames at the top left out); <= max frames. */
int krx_exit_backtrace(void **bt, int max);
/* The level of the report of p's abnormal end: KR_LOG_ERROR for a crash
 * of its own, KR_LOG_DEBUG for an end by another's exit signal. */
int krx_exit_report_level(krx_proc *p);
/* Make the report of p's abnormal end (who: its name for the report), once
 * krx_log_take(krx_exit_report_level(p)) said it goes out. */
void krx_exit_report(krx_proc *p, const char *who, const kr_reason *reason);

/* The scheduler's hooks for a task's end: it returned or ended itself
 * (exit), or a hardware fault in its code ends it (fault). */
void krx_proc_exited(krx_task *t);
void krx_proc_fault(krx_task *t, const krx_fault *f);

#endif
