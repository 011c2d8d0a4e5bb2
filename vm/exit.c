/*
 * exit.c - how a process ends (see exit.h): its reason, kr_exit and
 * kr_crash, the heap limit, a fault, the crash report, and the exit path.
 */
#include <execinfo.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exit.h"
#include "io.h"
#include "msg.h"
#include "outbox.h"
#include "proxy.h"
#include "registry.h"
#include "signal.h"
#include "str.h"
#include "vm.h"

static const char *const kind_names[] = {
	[KR_EXIT_NORMAL] = "normal",
	[KR_EXIT_SHUTDOWN] = "shutdown",
	[KR_EXIT_KILLED] = "killed",
	[KR_EXIT_NOPROC] = "noproc",
	[KR_EXIT_ERROR] = "error",
	[KR_EXIT_SEGFAULT] = "segfault",
	[KR_EXIT_BUS_ERROR] = "bus_error",
	[KR_EXIT_FPE] = "fpe",
	[KR_EXIT_ILLEGAL] = "illegal_instruction",
	[KR_EXIT_STACK_OVERFLOW] = "stack_overflow",
	[KR_EXIT_HEAP_LIMIT] = "heap_limit",
	[KR_EXIT_MAILBOX_LIMIT] = "mailbox_limit",
	[KR_EXIT_NOCONNECTION] = "noconnection",
	[KR_EXIT_KILL] = "kill",
};

KR_API const char *kr_exit_kind_name(int kind)
{
	if (kind < 0 || kind >= (int)(sizeof kind_names / sizeof kind_names[0]))
		return "unknown";
	return kind_names[kind];
}

KR_API char *kr_reason_format(const kr_reason *r, char *buf, size_t len)
{
	if (!buf || !len)
		return buf;
	if (!r)
		snprintf(buf, len, "?");
	else if (r->text[0])
		snprintf(buf, len, "%s: %.*s", kr_exit_kind_name(r->kind), (int)sizeof r->text, r->text);
	else
		snprintf(buf, len, "%s", kr_exit_kind_name(r->kind));
	return buf;
}

/* ---- the reason ---- */

void krx_proc_set_reason(krx_proc *p, int kind, const char *text, kr_pid from, bool want_bt)
{
	if (p->ending)
		return; /* the first reason stands */
	p->ending = 1;
	p->exit_kind = kind;
	krx_proc_ext *x = krx_proc_ext_get(p);
	if (!x)
		return; /* memory is short: the kind alone will do */
	x->reason.kind = kind;
	krx_str_copy(x->reason.text, sizeof x->reason.text, text);
	x->ended_by = from;
	x->nbt = want_bt && krx_log_on(KR_LOG_ERROR) ? krx_exit_backtrace(x->bt, KRX_BACKTRACE) : 0;
}

_Noreturn void krx_proc_end(krx_proc *p)
{
	(void)p;
	krx_task_exit();
}

/* ---- ending oneself ---- */

static int end_self(int kind, const char *text)
{
	krx_proc *p = krx_proc_self();
	if (!p)
		return KR_ENOTPROC;
	if (kind < KR_EXIT_NORMAL || kind > KR_EXIT_KILL)
		return KR_EINVAL;
	if (kind == KR_EXIT_KILL)
		kind = KR_EXIT_KILLED; /* untrappable only as a signal to others */
	bool crash = kind != KR_EXIT_NORMAL && kind != KR_EXIT_SHUTDOWN;
	krx_proc_set_reason(p, kind, text, KRX_OWN_END, crash);
	krx_proc_end(p);
}

KR_API int kr_exit(int kind)
{
	return end_self(kind, NULL);
}

KR_API int kr_exit_reason(const kr_reason *reason)
{
	if (!reason)
		return KR_EINVAL;
	char text[sizeof reason->text + 1];
	memcpy(text, reason->text, sizeof reason->text);
	text[sizeof reason->text] = 0;
	return end_self(reason->kind, text);
}

KR_API int kr_crash(const char *fmt, ...)
{
	char text[sizeof(((kr_reason *)0)->text)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt ? fmt : "", ap);
	va_end(ap);
	return end_self(KR_EXIT_ERROR, text);
}

KR_API int kr__assert_failed(const char *cond, const char *file, int line)
{
	const char *base = file ? strrchr(file, '/') : NULL;
	return kr_crash("assertion %s failed at %s:%d", cond, base ? base + 1 : file, line);
}

_Noreturn void krx_proc_heap_limit(krx_proc *p, size_t want)
{
	char text[96];
	snprintf(text, sizeof text, "%zu bytes more would pass max_heap %zu (holding %zu)", want,
	         p->heap.max, (size_t)AO_load(&p->heap.bytes));
	krx_proc_set_reason(p, KR_EXIT_HEAP_LIMIT, text, KRX_OWN_END, true);
	krx_proc_end(p);
}

/*
 * The scheduler's task_fault hook: a hardware fault in the process's own
 * code ends it (fault.c; the task ends right after this returns, and its
 * exit path reports it). Runs out of the signal handler, on a stack of the
 * scheduler's, with the process's state as it was at the fault.
 */
void krx_proc_fault(krx_task *t, const krx_fault *f)
{
	static const int kind_of[KRX_FAULT_KINDS] = {
		[KRX_FAULT_SEGV] = KR_EXIT_SEGFAULT,
		[KRX_FAULT_BUS] = KR_EXIT_BUS_ERROR,
		[KRX_FAULT_FPE] = KR_EXIT_FPE,
		[KRX_FAULT_ILL] = KR_EXIT_ILLEGAL,
		[KRX_FAULT_STACK_OVERFLOW] = KR_EXIT_STACK_OVERFLOW,
	};
	krx_proc *p = krx_proc_of(t);
	char text[96];
	if (f->code <= 0)
		snprintf(text, sizeof text, "signal %d sent by the process itself", f->signo);
	else if (f->kind == KRX_FAULT_FPE || f->kind == KRX_FAULT_ILL)
		snprintf(text, sizeof text, "at pc 0x%" PRIxPTR, (uintptr_t)f->pc);
	else
		snprintf(text, sizeof text, "at address 0x%" PRIxPTR " (pc 0x%" PRIxPTR ")",
		         (uintptr_t)f->addr, (uintptr_t)f->pc);
	krx_proc_set_reason(p, kind_of[f->kind], text, KRX_OWN_END, false);
	krx_proc_ext *x = krx_proc_ext_peek(p);
	if (x && p->exit_kind == kind_of[f->kind]) {
		x->nbt = f->nframes < KRX_BACKTRACE ? f->nframes : KRX_BACKTRACE;
		memcpy(x->bt, f->frames, (size_t)x->nbt * sizeof x->bt[0]);
	}
}

/* ---- the crash report ---- */

bool krx_exit_is_abnormal(int kind)
{
	return kind != KR_EXIT_NORMAL && kind != KR_EXIT_SHUTDOWN;
}

/*
 * A backtrace for the report of a process that ends itself, taken in
 * krill's code (krx_proc_set_reason): the process's frames from the call
 * into krill outwards. Krill's own frames at the top (this function, what
 * called it, kr_crash) are left out, and so is what came before them (a
 * sanitizer's backtrace wrapper). A return address points after its call:
 * step back a byte to ask whose code the call was in.
 */
int krx_exit_backtrace(void **bt, int max)
{
	void *raw[KRX_BACKTRACE + 8];
	int n = backtrace(raw, KRX_BACKTRACE + 8), top = 0;
	for (int i = 0; i < n && i < 8; i++) {
		if (krx_pc_in_krill((char *)raw[i] - (i > 0))) {
			while (i < n && krx_pc_in_krill((char *)raw[i] - (i > 0)))
				i++;
			top = i;
			break;
		}
	}
	int k = n - top < max ? n - top : max;
	memcpy(bt, raw + top, (size_t)(k > 0 ? k : 0) * sizeof *bt);
	return k > 0 ? k : 0;
}

/*
 * The level of the report of an abnormal end, as OTP's: an end of the
 * process's own doing (a crash, a fault, the heap limit, kr_exit with an
 * abnormal kind) is a crash report, an error, as proc_lib's; an end caused
 * by an exit signal from another (a kill, a linked process's abnormal end,
 * a lost node) is no crash in that process, and OTP makes no report of it:
 * krill makes a debug one, naming the signal's sender.
 */
int krx_exit_report_level(krx_proc *p)
{
	krx_proc_ext *x = krx_proc_ext_peek(p);
	return !x || x->ended_by == KRX_OWN_END ? KR_LOG_ERROR : KR_LOG_DEBUG;
}

void krx_exit_report(krx_proc *p, const char *who, const kr_reason *reason)
{
	krx_proc_ext *x = krx_proc_ext_peek(p);
	char why[160], line[KRX_LOG_MAX];
	kr_reason_format(reason, why, sizeof why);
	size_t n;
	if (x && x->ended_by == 0)
		n = (size_t)snprintf(line, sizeof line,
		                     "krill: process %s exited: %s (exit signal from a host thread)", who,
		                     why);
	else if (x && x->ended_by != KRX_OWN_END)
		n = (size_t)snprintf(line, sizeof line,
		                     "krill: process %s exited: %s (exit signal from <0.%llu.%llu>)", who,
		                     why, (unsigned long long)KRX_PID_INDEX(x->ended_by),
		                     (unsigned long long)KRX_PID_SERIAL(x->ended_by));
	else
		n = (size_t)snprintf(line, sizeof line, "krill: process %s crashed: %s", who, why);
	/* bt starts with the process's own frame where it crashed (the
	 * faulting pc from fault.c, or its call into krill: see
	 * krx_exit_backtrace) and ends with krill's frames that entered the
	 * process's function, which are left out. bt[0] is never krill's, and
	 * a faulting pc is no return address to step back from: it stays. */
	int nbt = x ? x->nbt : 0;
	while (nbt > 1 && krx_pc_in_krill((char *)x->bt[nbt - 1] - 1))
		nbt--;
	/* Whole frames only: a frame that does not fit ends the list. */
	char **sym = nbt > 0 ? backtrace_symbols(x->bt, nbt) : NULL;
	for (int i = 0; i < nbt && n < sizeof line; i++) {
		int k = snprintf(line + n, sizeof line - n, "\n    #%d %s", i, sym ? sym[i] : "?");
		if (k < 0 || (size_t)k >= sizeof line - n) {
			line[n] = 0;
			break;
		}
		n += (size_t)k;
	}
	free(sym);
	krx_log_put(krx_exit_report_level(p), line);
}

/* ---- the exit path ---- */

/*
 * The scheduler's exit hook: the task has ended (returned, ended itself, or
 * was ended by a signal) and its stack is back. Runs on the scheduler's
 * stack. The order matters: the report names the process while it still
 * has its pid; the mailbox closes and the name goes before the pid dies, so
 * that once kr_is_alive says no, every send is a dead letter and the name
 * is free; links and monitors are told last (a DOWN is never seen while the
 * pid still looks alive), and the close has answered the requests that
 * came before the end.
 */
void krx_proc_exited(krx_task *t)
{
	krx_proc *p = krx_proc_of(t);
	kr_pid pid = (kr_pid)AO_load(&p->live_pid);
	krx_proc_ext *x = krx_proc_ext_peek(p);
	kr_reason reason = { .kind = p->ending ? p->exit_kind : KR_EXIT_NORMAL };
	if (p->ending && x)
		memcpy(reason.text, x->reason.text, sizeof reason.text);
	if (krx_exit_is_abnormal(reason.kind) && krx_log_take(krx_exit_report_level(p))) {
		char who[64];
		krx_proc_name(t, who, sizeof who);
		krx_exit_report(p, who, &reason);
	}
	krx_signal_close(p);
	krx_io_exited(p, pid); /* its descriptors, before anyone sees it gone */
	/* The name goes before the pid dies, so that a process seen gone has
	 * no name; and once more after, for a registration that raced the
	 * end (full fence: live_pid is 0 before we look at named, see
	 * registry.c). */
	if (AO_load(&p->named))
		krx_registry_drop(p, pid);
	AO_store(&p->live_pid, 0);
	AO_nop_full();
	if (AO_load(&p->named))
		krx_registry_drop(p, pid);
	krx_signal_notify(p, pid, &reason);
	/* The scheduler flushed the outbox before this hook ran, and a notice
	 * can go into it: a remote link's exit or a remote monitor's DOWN is
	 * a frame, a user message to dist/'s writer, held when the writer
	 * last ran elsewhere. Held, it would wait for the next task to leave
	 * this CPU, forever on a scheduler that goes idle now: out now. */
	krx_sched *s = krx_sched_self();
	if (s && s->vm.pending)
		krx_outbox_flush(s);
	krx_heap_destroy(&p->heap, krx_msg_free_hblk, krx_vm_msg_cache(s));
	krx_vm_proc_ended(pid, reason.kind);
	if ((x = krx_proc_ext_peek(p)) && x->proxy)
		krx_proxy_ended(x->proxy, false); /* a host thread's call: answered */
	if (x)
		krx_proc_ext_reset(x);
	krx_procs_release(p, pid);
}
