/*
 * fault.c - crash containment: a hardware fault in a process's own code ends
 * that process only, and its scheduler goes on with the next one.
 *
 * The handler runs on the scheduler's alternate signal stack (a stack
 * overflow has no stack left to run it on) and does as little as it can:
 * it decides whose fault it is, records it, and rewrites the ucontext so
 * that sigreturn resumes in fault_trampoline, on a second stack of the
 * scheduler's own. sigreturn restores the signal mask and leaves the
 * alternate stack the way the kernel expects; the trampoline, no longer in
 * a signal handler, reports the fault (hooks.task_fault) and ends the task
 * with krx_task_exit, like a task that returned.
 *
 * Whose fault is it? The process's when, on a scheduler thread with a task
 * current, the faulting pc is not in krill's own code and the stack pointer
 * is on that task's stack; a fault address in the guard page under that
 * stack makes it a stack overflow. Everything else is not ours to contain:
 * a real fault on a scheduler thread is a krill bug (a crash dump, then
 * abort), and on any other thread, or a signal sent with kill(), it goes to
 * the handler the host had before the VM started.
 *
 * Invariants:
 *  - faults.prev and faults.locals are written only while no scheduler thread exists
 *    (start, stop); a handler on a host thread reads only faults.prev.
 *  - A scheduler's fault record and trampoline stack serve one fault at a
 *    time: `busy` is set by the handler and cleared by the trampoline just
 *    before the task ends, and a fault while it is set is never contained.
 */
#include "fault.h"

#include <errno.h>
#include <execinfo.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include "mi.h"
#include "sched.h"

/*
 * krill's own code. When the library is built, every .text* section of its
 * objects (.text, .text.unlikely, .text.startup ...) is renamed krill_text
 * (scripts/krill-text.sh). A section whose name is a C identifier gets these
 * two symbols from the linker, whatever the program that links krill and
 * however: so the test is two compares, valid in the static library and the
 * shared one alike, with nothing to look up in a signal handler. Looking pcs
 * up with dladdr() would only tell which file they are in, and krill's
 * static library shares its file with the host's code.
 */
extern const char __start_krill_text[] __attribute__((visibility("hidden")));
extern const char __stop_krill_text[] __attribute__((visibility("hidden")));

static const int fault_signals[] = {
	SIGSEGV, SIGBUS, SIGFPE, SIGILL,
#if defined(__aarch64__)
	SIGTRAP, /* __builtin_trap() is `brk` here; ud2 (SIGILL) on x86-64 */
#endif
};
#define NSIGNALS (sizeof fault_signals / sizeof fault_signals[0])

#define ALT_STACK ((size_t)128 << 10)   /* the handler, backtrace(), a crash dump */
#define TRAMP_STACK ((size_t)256 << 10) /* the task_fault hook: symbols, the log */
#define RAW_FRAMES (KRX_FAULT_FRAMES + 16) /* room for the handler's frames, and a sanitizer's */

typedef struct fault_local {
	char *map;                 /* guard, alternate stack, guard, trampoline stack */
	size_t map_size;
	char *tramp_lo, *tramp_hi;
	unsigned vg_tramp;         /* Valgrind's id for the trampoline stack */
	stack_t prev_alt;          /* the thread's own before ours (ASan gives one) */
	volatile sig_atomic_t busy;
	krx_fault fault;
} fault_local;

static struct {
	unsigned n;
	fault_local *locals;       /* one per scheduler */
	size_t page, alt_size;
	struct sigaction prev[NSIGNALS];
	void (*task_fault)(krx_task *t, const krx_fault *f);
	void (*task_name)(krx_task *t, char *buf, size_t len);
} faults;

static const char *const kind_names[KRX_FAULT_KINDS] = {
	[KRX_FAULT_SEGV] = "segfault",
	[KRX_FAULT_BUS] = "bus_error",
	[KRX_FAULT_FPE] = "fpe",
	[KRX_FAULT_ILL] = "illegal_instruction",
	[KRX_FAULT_STACK_OVERFLOW] = "stack_overflow",
};

const char *krx_fault_kind_name(krx_fault_kind kind)
{
	return (unsigned)kind < KRX_FAULT_KINDS ? kind_names[kind] : "unknown";
}

static bool in_krill(uintptr_t pc)
{
	return pc >= (uintptr_t)__start_krill_text && pc < (uintptr_t)__stop_krill_text;
}

bool krx_pc_in_krill(const void *pc)
{
	return in_krill((uintptr_t)pc);
}

static uintptr_t pc_of(const ucontext_t *uc)
{
#if defined(__x86_64__)
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#else
	return (uintptr_t)uc->uc_mcontext.pc;
#endif
}

static uintptr_t sp_of(const ucontext_t *uc)
{
#if defined(__x86_64__)
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#else
	return (uintptr_t)uc->uc_mcontext.sp;
#endif
}

static const struct sigaction *prev_of(int sig)
{
	for (size_t i = 0; i < NSIGNALS; i++)
		if (fault_signals[i] == sig)
			return &faults.prev[i];
	return NULL;
}

/* ---- whose fault ---- */

/* Raised by the kernel for the instruction that faulted (si_code > 0), or
 * sent by a thread of this process to itself with raise() or pthread_kill()
 * (SI_TKILL from our own pid). Either way it is synchronous with the code
 * the thread runs. kill(), from here or elsewhere, is neither: it lands on
 * whatever thread the kernel picks, and is never a process's crash. */
static bool from_this_thread(const siginfo_t *si)
{
	return si->si_code > 0 || (si->si_code == SI_TKILL && si->si_pid == getpid());
}

/* Did this fault run off the stack st into the guard page under it? (A
 * canary stack's guard is not protected and never faults: run_task checks
 * its canary instead.) */
static bool in_guard(const krx_stack *st, int sig, const siginfo_t *si)
{
	uintptr_t lo = (uintptr_t)st->lo, addr = (uintptr_t)si->si_addr;
	return sig == SIGSEGV && si->si_code > 0 && st->guard != KRX_GUARD_CANARY &&
	       addr >= lo - faults.page && addr < lo;
}

/* Is this fault t's own? Then *kind says what it was. */
static bool classify(krx_task *t, int sig, const siginfo_t *si, const ucontext_t *uc,
                     krx_fault_kind *kind)
{
	const krx_stack *st = t->stack;
	uintptr_t pc = pc_of(uc), sp = sp_of(uc);
	if (!st || in_krill(pc) || !from_this_thread(si))
		return false;
	if (in_guard(st, sig, si)) {
		*kind = KRX_FAULT_STACK_OVERFLOW;
		return true;
	}
	uintptr_t lo = (uintptr_t)st->lo, hi = (uintptr_t)st->hi;
	/* Not on the task's stack: the scheduler's own code (after the switch,
	 * before current is cleared), or a trampoline: not a process's. */
	if (sp < lo - faults.page || sp > hi)
		return false;
	switch (sig) {
	case SIGSEGV: *kind = KRX_FAULT_SEGV; break;
	case SIGBUS: *kind = KRX_FAULT_BUS; break;
	case SIGFPE: *kind = KRX_FAULT_FPE; break;
	default: *kind = KRX_FAULT_ILL; break; /* SIGILL, and SIGTRAP from brk */
	}
	return true;
}

/* ---- leaving the handler for the trampoline ---- */

static _Noreturn void fault_trampoline(fault_local *L);

/*
 * The faulting thread's backtrace, from the faulting pc on, into out[max].
 * backtrace() unwinds through the signal frame (the kernel's and qemu's
 * sigreturn trampolines carry unwind info, or libgcc knows them); the
 * handler's own frames come first and are dropped. backtrace() is not
 * async-signal-safe on paper: once warmed up (krx_fault_start) it allocates
 * nothing, but the unwinder takes the loader's lock (dl_iterate_phdr), so a
 * process that faults inside dlopen() hangs its scheduler here: one of the
 * faults docs/faults.md says cannot be contained.
 */
static int backtrace_from(uintptr_t pc, void **out, int max)
{
	void *raw[RAW_FRAMES];
	int n = backtrace(raw, RAW_FRAMES), from = 0, k = 0;
	while (from < n && (uintptr_t)raw[from] != pc)
		from++;
	if (from == n)
		out[k++] = (void *)pc; /* the unwinder stopped at the signal frame */
	while (from < n && k < max)
		out[k++] = raw[from++];
	return k;
}

static void record(fault_local *L, krx_fault_kind kind, int sig, const siginfo_t *si, uintptr_t pc)
{
	krx_fault *f = &L->fault;
	f->kind = kind;
	f->signo = sig;
	f->code = si->si_code;
	f->addr = si->si_code > 0 ? si->si_addr : NULL; /* else si_pid is there */
	f->pc = (void *)pc;
	f->nframes = backtrace_from(pc, f->frames, KRX_FAULT_FRAMES);
}

/* Make sigreturn resume in fault_trampoline(L) on L's trampoline stack, with
 * the stack aligned as the ABI has it at a function's first instruction. */
static void redirect(ucontext_t *uc, fault_local *L)
{
	uintptr_t top = (uintptr_t)L->tramp_hi & ~(uintptr_t)15;
#if defined(__x86_64__)
	/* As if called: a return address (none: 0 stops unwinders) below a
	 * 16-aligned boundary. */
	top -= 8;
	*(uintptr_t *)top = 0;
	uc->uc_mcontext.gregs[REG_RSP] = (greg_t)top;
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)fault_trampoline;
	uc->uc_mcontext.gregs[REG_RDI] = (greg_t)(uintptr_t)L;
	uc->uc_mcontext.gregs[REG_RBP] = 0;
	/* The ABI wants the direction flag clear at a call; the process may
	 * have faulted in the middle of a backwards string copy. */
	uc->uc_mcontext.gregs[REG_EFL] &= ~(greg_t)0x400;
#else
	uc->uc_mcontext.sp = top;
	uc->uc_mcontext.pc = (uintptr_t)fault_trampoline;
	uc->uc_mcontext.regs[0] = (uintptr_t)L;
	uc->uc_mcontext.regs[29] = 0; /* frame pointer: unwinders stop */
	uc->uc_mcontext.regs[30] = 0; /* link register */
#endif
}

/*
 * Where a contained fault resumes, out of the signal handler, on the
 * scheduler's trampoline stack, with the faulting task still current. The
 * task's stack is abandoned as it is: krx_task_exit releases it, and the
 * next task to use it starts from its top.
 */
static _Noreturn void fault_trampoline(fault_local *L)
{
#if KRX_ASAN
	/* ASan still takes the task's stack for the current one. Tell it we
	 * left that stack for good (NULL: its fake stack is freed) and are on
	 * the trampoline's: the __asan_handle_no_return before krx_task_exit
	 * would otherwise find sp outside the stack it knows, warn, and leave
	 * this stack's redzones poisoned for the next fault. */
	__sanitizer_start_switch_fiber(NULL, L->tramp_lo, (size_t)(L->tramp_hi - L->tramp_lo));
	__sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
	krx_task *t = krx_task_self();
	if (faults.task_fault)
		faults.task_fault(t, &L->fault);
	L->busy = 0;
	krx_task_exit();
}

/* ---- faults that are not a process's ---- */

static void say(const char *s)
{
	size_t len = strlen(s);
	while (len) {
		ssize_t w = write(STDERR_FILENO, s, len);
		if (w <= 0 && errno != EINTR)
			return;
		if (w > 0) {
			s += w;
			len -= (size_t)w;
		}
	}
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIGFPE: return "SIGFPE";
	case SIGILL: return "SIGILL";
	case SIGTRAP: return "SIGTRAP";
	default: return "signal";
	}
}

/*
 * A real fault on a scheduler thread that is no process's: krill's own code
 * faulted (or something it called, on its own stack), or a process ran out
 * of stack while krill's code ran on it, perhaps half-way through changing
 * shared state. Nothing can be trusted: say what we know and abort.
 * snprintf and the task_name hook are not async-signal-safe in principle; in
 * glibc they take no lock for these formats, and we are ending the program
 * either way.
 */
static _Noreturn void crash_dump(krx_sched *s, int sig, const siginfo_t *si, const ucontext_t *uc)
{
	char line[400], name[64] = "";
	uintptr_t pc = pc_of(uc);
	krx_task *t = (krx_task *)s->current;
	if (t && faults.task_name)
		faults.task_name(t, name, sizeof name);
	bool overflow = t && t->stack && in_guard(t->stack, sig, si);
	snprintf(line, sizeof line,
	         "krill: fatal %s (code %d) at address 0x%" PRIxPTR ", pc 0x%" PRIxPTR
	         " (%s), on scheduler %u%s%s\n"
	         "krill: %s: aborting\n",
	         signal_name(sig), si->si_code, (uintptr_t)si->si_addr, pc,
	         in_krill(pc) ? "in krill's code" : "outside krill's code, not a process's",
	         s->id, t ? " running process " : "", name,
	         overflow ? "the process overflowed its stack while krill's code ran on it "
	                    "(give it a bigger stack)"
	                  : "this is a fault in krill itself, not in a process's code");
	say(line);
	void *frames[RAW_FRAMES];
	backtrace_symbols_fd(frames, backtrace_from(pc, frames, RAW_FRAMES), STDERR_FILENO);
	abort();
}

static void reset_default(int sig)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
}

/* Hand the signal to whatever the host had installed before the VM. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	const struct sigaction *old = prev_of(sig);
	bool fault = si->si_code > 0;
	if (old && (old->sa_flags & SA_SIGINFO)) {
		if (old->sa_flags & SA_RESETHAND)
			reset_default(sig);
		old->sa_sigaction(sig, si, uc);
		return;
	}
	void (*h)(int) = old ? old->sa_handler : SIG_DFL;
	if (h == SIG_IGN && !fault)
		return; /* a kill() the host chose to ignore */
	if (h == SIG_DFL || h == SIG_IGN) {
		/* The default action, as if we had never been here: a fault
		 * happens again when we return (the kernel ignores SIG_IGN for
		 * one), a sent signal is sent again and is blocked until then. */
		reset_default(sig);
		if (!fault)
			raise(sig);
		return;
	}
	if (old->sa_flags & SA_RESETHAND)
		reset_default(sig);
	h(sig);
}

static void on_fault(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	int saved_errno = errno;
	krx_sched *s = krx_sched_self();
	/* Set before any scheduler thread existed; see the top. */
	fault_local *L = s && s->id < faults.n ? &faults.locals[s->id] : NULL;
	krx_task *t = krx_task_on(s); /* this thread's own word: a plain read */
	krx_fault_kind kind;

	if (L && t && L->tramp_lo && !L->busy && classify(t, sig, si, uc, &kind)) {
		L->busy = 1;
		record(L, kind, sig, si, pc_of(uc));
		redirect(uc, L);
	} else if (L && si->si_code > 0) {
		crash_dump(s, sig, si, uc);
	} else {
		chain(sig, si, ucv);
	}
	errno = saved_errno;
}

/* ---- start and stop ---- */

static bool is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_fault;
}

int krx_fault_start(unsigned n, const krx_sched_hooks *hooks)
{
	faults.locals = krx_calloc_raw(n, sizeof *faults.locals);
	if (!faults.locals)
		return KR_ENOMEM;
	faults.n = n;
	faults.task_fault = hooks->task_fault;
	faults.task_name = hooks->task_name;
	faults.page = (size_t)sysconf(_SC_PAGESIZE);
	long min = sysconf(_SC_MINSIGSTKSZ);
	faults.alt_size = min > 0 && (size_t)min * 4 > ALT_STACK ? (size_t)min * 4 : ALT_STACK;
	faults.alt_size = (faults.alt_size + faults.page - 1) / faults.page * faults.page;
	/* The first backtrace() loads libgcc's unwinder, which allocates:
	 * never let that happen in a handler. */
	void *warm[2];
	(void)backtrace(warm, 2);

	struct sigaction sa = { .sa_sigaction = on_fault };
	/* While in the handler, the other fault signals are blocked: a fault
	 * in the handler itself (or a chained one) ends the program with that
	 * signal's default action rather than recursing. */
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NSIGNALS; i++)
		sigaddset(&sa.sa_mask, fault_signals[i]);
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	for (size_t i = 0; i < NSIGNALS; i++) {
		/* The host's first, then ours: a host thread that faults in
		 * between must find its handler in faults.prev already. */
		sigaction(fault_signals[i], NULL, &faults.prev[i]);
		sigaction(fault_signals[i], &sa, NULL);
	}
	return 0;
}

void krx_fault_stop(void)
{
	for (size_t i = 0; i < NSIGNALS; i++) {
		/* A host that installed its own handler after ours keeps it. */
		struct sigaction cur;
		if (sigaction(fault_signals[i], NULL, &cur) == 0 && is_ours(&cur))
			sigaction(fault_signals[i], &faults.prev[i], NULL);
	}
	krx_free_raw(faults.locals);
	faults.locals = NULL;
	faults.n = 0;
}

bool krx_fault_thread_start(krx_sched *s)
{
	fault_local *L = &faults.locals[s->id];
	size_t page = faults.page, size = page + faults.alt_size + page + TRAMP_STACK;
	char *map = mmap(NULL, size, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (map == MAP_FAILED)
		return false;
	/* Guards under both stacks: overflowing either is a krill bug, and
	 * must fault rather than scribble. */
	stack_t alt = { .ss_sp = map + page, .ss_size = faults.alt_size };
	if (mprotect(map, page, PROT_NONE) || mprotect(map + page + faults.alt_size, page, PROT_NONE) ||
	    sigaltstack(&alt, &L->prev_alt)) {
		munmap(map, size);
		return false;
	}
	L->map = map;
	L->map_size = size;
	L->tramp_lo = map + page + faults.alt_size + page;
	L->tramp_hi = L->tramp_lo + TRAMP_STACK;
	/* sigreturn jumps onto the trampoline stack, which then switches to
	 * the scheduler's: tell memcheck it is a stack, so that both are
	 * switches and not frames pushed or popped (see krx_ctx_make). The
	 * alternate stack it knows already, from sigaltstack. */
	L->vg_tramp = VALGRIND_STACK_REGISTER(L->tramp_lo, L->tramp_hi - 1);
	return true;
}

void krx_fault_thread_stop(krx_sched *s)
{
	fault_local *L = &faults.locals[s->id];
	if (!L->map)
		return;
	/* Give the thread its own alternate stack back: ASan unmaps whatever
	 * is installed when the thread exits, believing it its own. */
	sigaltstack(&L->prev_alt, NULL);
	if (L->vg_tramp)
		VALGRIND_STACK_DEREGISTER(L->vg_tramp);
	L->vg_tramp = 0;
	munmap(L->map, L->map_size);
	L->map = NULL;
	L->tramp_lo = L->tramp_hi = NULL;
}
