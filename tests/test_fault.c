/*
 * test_fault.c - crash containment (sched/fault.c) through the public API:
 * a process that faults (segfault, bus error, fpe, illegal instruction,
 * stack overflow) ends alone, its scheduler runs the next process queued
 * behind it, the crash is reported through kr_config.log naming the kind
 * and the function that faulted with its callers, a thousand faults in a row are all contained, a fault on a host thread
 * still reaches the host's own handler, the host's handlers are back after
 * kr_vm_stop, and a fault in krill's own code ends the program (SIGABRT)
 * after a crash dump.
 *
 * Criterion asserts only on the test thread: processes record failures
 * with VM_CHECK (vm_util.h) and the test asserts vm_assert_clean().
 */
#include <criterion/criterion.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctx.h"   /* krx_ctx_swap, in assembly */
#include "fault.h" /* KRX_FAULT_FRAMES */
#include "fault_util.h"
#include "krill.h"
#include "vm_util.h"

TestSuite(fault, .fini = vm_fini, .timeout = 60);

/* ---- the log: crash reports land here ---- */

#define CRASH_LINES 8
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char crash_lines[CRASH_LINES][4096]; /* a report: its line, then its frames */
static int crashes; /* reports saying "crashed:" */

static void capture_log(const char *line, void *ctx)
{
	(void)ctx;
	if (!strstr(line, " crashed: "))
		return; /* another report (the watchdog's) */
	pthread_mutex_lock(&log_lock);
	if (crashes < CRASH_LINES)
		snprintf(crash_lines[crashes], sizeof crash_lines[0], "%s", line);
	crashes++;
	pthread_mutex_unlock(&log_lock);
}

static int crash_count(void)
{
	pthread_mutex_lock(&log_lock);
	int n = crashes;
	pthread_mutex_unlock(&log_lock);
	return n;
}

/* The first crash report, for asserts on the test thread. */
static void first_crash_line(char *out, size_t len)
{
	pthread_mutex_lock(&log_lock);
	snprintf(out, len, "%s", crashes ? crash_lines[0] : "");
	pthread_mutex_unlock(&log_lock);
}

static void vm_start_logged(unsigned schedulers)
{
	/* No burst limit: the tests count a report per fault, a thousand of
	 * them in a second. */
	kr_config cfg = { .schedulers = schedulers, .log = capture_log, .log_burst = -1 };
	vm_start_cfg(&cfg);
}

static kr_pid spawn_named_on(kr_fn *fn, void *arg, const char *name, unsigned bind)
{
	kr_spawn_opts o = { .name = name, .bind_scheduler = bind };
	kr_pid p = kr_spawn_opt(fn, arg, &o);
	cr_assert_gt(p, 0, "kr_spawn_opt: %lld (%s)", (long long)p, kr_strerror((int)p));
	return p;
}

/* ---- faults, one kind each (fault_util.h) ---- */

static void null_store(void *arg)
{
	(void)arg;
	fault_store_null();
}

static void bus_touch(void *arg)
{
	(void)arg;
	fault_bus_touch();
}

#if defined(__x86_64__)
static void divide_by_zero(void *arg)
{
	(void)arg;
	fault_divide_by_zero();
}
#endif

static void fpe_raised(void *arg)
{
	(void)arg;
	fault_raise_fpe();
}

static void illegal_instruction(void *arg)
{
	(void)arg;
	fault_illegal();
}

static void trap(void *arg)
{
	(void)arg;
	fault_trap();
}

static void overflow(void *arg)
{
	(void)arg;
	fault_overflow();
}

/* Runs right behind the faulting process, bound to the same scheduler. */
static atomic_int next_ran;
static atomic_llong faulted_pid;

static void next_in_line(void *arg)
{
	(void)arg;
	VM_CHECK(vm_my_scheduler() == 0, "ran on scheduler %d, not 0", vm_my_scheduler());
	VM_CHECK(!kr_is_alive((kr_pid)atomic_load(&faulted_pid)),
	         "the faulting process is still alive when the next one runs");
	atomic_store(&next_ran, 1);
}

/*
 * fn faults: it ends, scheduler 0 survives and runs the process queued
 * behind it, the VM counts it gone, and the log names the kind.
 */
static void expect_contained(kr_fn *fn, const char *kind, const char *detail)
{
	vm_start_logged(2);
	kr_pid bad = spawn_named_on(fn, NULL, "faulty", 1);
	atomic_store(&faulted_pid, bad);
	spawn_named_on(next_in_line, NULL, "next", 1);
	cr_assert(VM_WAIT(atomic_load(&next_ran), 10000),
	          "the process queued behind the faulting one never ran");
	cr_assert(VM_WAIT(vm_alive() == 0 && vm_stacks() == 0, 10000),
	          "alive %zu, stacks %zu after the fault", vm_alive(), vm_stacks());
	cr_assert_eq(kr_is_alive(bad), 0);
	vm_assert_clean();

	cr_assert(VM_WAIT(crash_count() == 1, 10000), "%d crash reports, not 1", crash_count());
	char line[4096], want[128];
	first_crash_line(line, sizeof line);
	cr_log_info("%s", line);
	snprintf(want, sizeof want, " faulty crashed: %s", kind);
	cr_assert(strstr(line, want), "the report \"%s\" does not say \"%s\"", line, want);
	cr_assert(!detail || strstr(line, detail), "the report \"%s\" does not say \"%s\"", line,
	          detail);
	vm_stop();
}

Test(fault, a_null_dereference_ends_only_that_process)
{
	expect_contained(null_store, "segfault", "segfault: at address 0x0 ");
}

Test(fault, a_bus_error_ends_only_that_process)
{
	cr_assert_eq(fault_bus_map(), 0, "a page of an empty file: %s", strerror(errno));
	expect_contained(bus_touch, "bus_error", NULL);
	fault_bus_unmap();
}

#if defined(__x86_64__)
Test(fault, an_integer_division_by_zero_ends_only_that_process)
{
	expect_contained(divide_by_zero, "fpe", "fpe: at pc 0x");
}
#endif

/* A signal the process sends itself is its crash too, named by the signal. */
Test(fault, a_signal_the_process_raises_itself_ends_only_that_process)
{
	expect_contained(fpe_raised, "fpe", "sent by the process itself");
}

Test(fault, an_illegal_instruction_ends_only_that_process)
{
	expect_contained(illegal_instruction, "illegal_instruction", NULL);
}

Test(fault, builtin_trap_ends_only_that_process)
{
	expect_contained(trap, "illegal_instruction", NULL);
}

Test(fault, a_stack_overflow_ends_only_that_process)
{
	vm_start(1);
	const char *guard = vm_stats().stack_protection;
	vm_stop();
	if (!strcmp(guard, "canary"))
		cr_skip_test("stacks have canaries, not faulting guards: overflow is not contained");
	cr_log_info("stack guard: %s", guard);
	expect_contained(overflow, "stack_overflow", NULL);
}

/* ---- the report names where the process faulted ---- */

/*
 * Each way faults in a function of its own, named in no other test,
 * called from fault_test_caller, called from the process's function
 * fault_test_entry. Exported (the test build hides symbols by default): a
 * report names the functions a program exports (-rdynamic). The empty asm
 * after each call keeps it from being a tail call, whose caller's frame
 * would be gone.
 */
#define FAULT_TEST_FN __attribute__((visibility("default"), noinline))

enum fault_way { WAY_SEGV, WAY_FPE, WAY_RAISED_FPE, WAY_ILL, WAY_OVERFLOW };

FAULT_TEST_FN void fault_test_segv_here(void);
FAULT_TEST_FN void fault_test_fpe_here(void);
FAULT_TEST_FN void fault_test_raise_here(void);
FAULT_TEST_FN void fault_test_ill_here(void);
FAULT_TEST_FN unsigned fault_test_recurse_here(unsigned depth);
FAULT_TEST_FN void fault_test_caller(enum fault_way way);
FAULT_TEST_FN void fault_test_entry(void *arg);

/* As fault_store_null, but here. */
__attribute__((no_sanitize("null", "thread"))) void fault_test_segv_here(void)
{
	volatile int *volatile p = NULL;
	*p = 1;
}

void fault_test_fpe_here(void)
{
	fault_fpe(); /* on aarch64, which has no trapping division: raise() */
}

void fault_test_raise_here(void)
{
	fault_raise_fpe();
	__asm__ volatile("");
}

void fault_test_ill_here(void)
{
	fault_illegal();
}

/* As fault_recurse, but here. */
unsigned fault_test_recurse_here(unsigned depth)
{
	volatile char frame[256];
	frame[0] = (char)depth;
	if (depth == UINT32_MAX)
		return 0;
	return fault_test_recurse_here(depth + 1) + (unsigned)frame[0];
}

void fault_test_caller(enum fault_way way)
{
	switch (way) {
	case WAY_SEGV: fault_test_segv_here(); break;
	case WAY_FPE: fault_test_fpe_here(); break;
	case WAY_RAISED_FPE: fault_test_raise_here(); break;
	case WAY_ILL: fault_test_ill_here(); break;
	case WAY_OVERFLOW: fault_recurse_sink = fault_test_recurse_here(0); break;
	}
	__asm__ volatile("");
}

void fault_test_entry(void *arg)
{
	fault_test_caller((enum fault_way)(intptr_t)arg);
	__asm__ volatile("");
	VM_CHECK(0, "way %d of faulting returned", (int)(intptr_t)arg);
}

/* Frame #i of a report ("#i ./krill_tests(fn+0x1c) [0x...]") into out. */
static bool report_frame(const char *report, int i, char *out, size_t len)
{
	char tag[24];
	snprintf(tag, sizeof tag, "\n    #%d ", i);
	const char *at = strstr(report, tag);
	if (!at)
		return false;
	at += 5;
	snprintf(out, len, "%.*s", (int)strcspn(at, "\n"), at);
	return true;
}

static int report_frames(const char *report)
{
	int n = 0;
	for (const char *at = report; (at = strstr(at, "\n    #")); at++)
		n++;
	return n;
}

/* Does this frame line name fn? backtrace_symbols writes "file(fn+0x..)". */
static bool frame_names(const char *frame, const char *fn)
{
	char want[80];
	snprintf(want, sizeof want, "(%s+", fn);
	return strstr(frame, want) != NULL;
}

/*
 * A process faults the given way: its report says kind, and its frames
 * name names[0..n) one a frame in turn, names[0] at frame #0 (or, with
 * `below`, under other frames: the libc of raise()). The report has
 * `frames` frames, each whole; 0: those named are all there are, krill's
 * own that entered the process left out.
 */
static void expect_frames(enum fault_way way, const char *kind, const char *const *names, int n,
                          bool below, int frames)
{
	vm_start_logged(2);
	spawn_named_on(fault_test_entry, (void *)(intptr_t)way, "faulty", 1);
	cr_assert(VM_WAIT(crash_count() == 1, 10000), "%d crash reports, not 1", crash_count());
	char report[4096], want[64], frame[512];
	first_crash_line(report, sizeof report);
	cr_log_info("%s", report);
	snprintf(want, sizeof want, " faulty crashed: %s", kind);
	cr_assert(strstr(report, want), "the report does not say \"%s\":\n%s", want, report);
	int top = 0, total = report_frames(report);
	while (below && top < total && report_frame(report, top, frame, sizeof frame) &&
	       !frame_names(frame, names[0]))
		top++;
	for (int i = 0; i < n; i++) {
		cr_assert(report_frame(report, top + i, frame, sizeof frame),
		          "the report has no frame #%d (for %s):\n%s", top + i, names[i], report);
		cr_assert(frame_names(frame, names[i]), "frame #%d is not %s's:\n%s", top + i,
		          names[i], report);
	}
	int expected = frames ? frames : top + n;
	cr_assert_eq(total, expected, "%d frames, not %d:\n%s", total, expected, report);
	for (int i = 0; i < total; i++) {
		cr_assert(report_frame(report, i, frame, sizeof frame), "no frame #%d:\n%s", i, report);
		size_t len = strlen(frame);
		cr_assert(len && frame[len - 1] == ']', "frame #%d is cut short:\n%s", i, report);
	}
	vm_assert_clean();
	vm_stop();
}

Test(fault, the_report_of_a_segfault_names_the_faulting_function_and_its_callers)
{
	static const char *const names[] = { "fault_test_segv_here", "fault_test_caller",
		                             "fault_test_entry" };
	expect_frames(WAY_SEGV, "segfault", names, 3, false, 0);
}

#if defined(__x86_64__)
Test(fault, the_report_of_a_division_by_zero_names_the_faulting_function_and_its_callers)
{
	static const char *const names[] = { "fault_test_fpe_here", "fault_test_caller",
		                             "fault_test_entry" };
	expect_frames(WAY_FPE, "fpe", names, 3, false, 0);
}
#endif

/* raise() faults in libc, called by the process: its frames come first. */
Test(fault, the_report_of_a_raised_fpe_names_the_function_that_raised_it)
{
	static const char *const names[] = { "fault_test_raise_here", "fault_test_caller",
		                             "fault_test_entry" };
	expect_frames(WAY_RAISED_FPE, "fpe", names, 3, true, 0);
}

Test(fault, the_report_of_an_illegal_instruction_names_the_faulting_function)
{
	static const char *const names[] = { "fault_test_ill_here", "fault_test_caller",
		                             "fault_test_entry" };
	expect_frames(WAY_ILL, "illegal_instruction", names, 3, false, 0);
}

/* The recursion fills all the frames a fault records (KRX_FAULT_FRAMES):
 * its callers are too far down to show. */
Test(fault, the_report_of_a_stack_overflow_names_the_recursing_function)
{
	vm_start(1);
	const char *guard = vm_stats().stack_protection;
	vm_stop();
	if (!strcmp(guard, "canary"))
		cr_skip_test("stacks have canaries, not faulting guards: overflow is not contained");
	static const char *const names[] = { "fault_test_recurse_here", "fault_test_recurse_here",
		                             "fault_test_recurse_here" };
	expect_frames(WAY_OVERFLOW, "stack_overflow", names, 3, false, KRX_FAULT_FRAMES);
}

/* ---- many in a row ---- */

#define MANY_FAULTS (1000 / VM_LIGHT_DIV)

Test(fault, a_thousand_faults_in_a_row_are_all_contained, .timeout = 120)
{
	vm_start_logged(2);
	kr_pid last = 0;
	for (int i = 0; i < MANY_FAULTS; i++)
		last = spawn_named_on(null_store, NULL, "faulty", 1);
	atomic_store(&faulted_pid, last);
	spawn_named_on(next_in_line, NULL, "next", 1);
	cr_assert(VM_WAIT(atomic_load(&next_ran), 60000),
	          "the process behind %d faulting ones never ran (%d crashes seen)", MANY_FAULTS,
	          crash_count());
	cr_assert(VM_WAIT(crash_count() == MANY_FAULTS, 10000), "%d crash reports, not %d",
	          crash_count(), MANY_FAULTS);
	cr_assert(VM_WAIT(vm_alive() == 0 && vm_stacks() == 0, 10000), "alive %zu, stacks %zu",
	          vm_alive(), vm_stacks());
	kr_vm_stats st = vm_stats();
	cr_assert_eq(st.procs_spawned, (uint64_t)MANY_FAULTS + 1);
	vm_assert_clean();
	vm_stop();
}

/* ---- not the VM's to contain ---- */

static const int fault_signals[] = {
	SIGSEGV, SIGBUS, SIGFPE, SIGILL,
#if defined(__aarch64__)
	SIGTRAP,
#endif
};
#define NSIGNALS (sizeof fault_signals / sizeof fault_signals[0])

static sigjmp_buf host_jump;
static volatile sig_atomic_t host_handler_ran;

static void host_segv_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	host_handler_ran = 1;
	siglongjmp(host_jump, 1);
}

Test(fault, a_fault_on_a_host_thread_reaches_the_hosts_own_handler)
{
	struct sigaction sa = { .sa_sigaction = host_segv_handler, .sa_flags = SA_SIGINFO }, old;
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGSEGV, &sa, &old), 0);
	vm_start_logged(2);
	if (sigsetjmp(host_jump, 1) == 0) {
		fault_store_null();
		cr_assert_fail("the store through NULL did not fault");
	}
	cr_assert(host_handler_ran, "the host's handler did not run");
	cr_assert_eq(crash_count(), 0, "a host thread's fault was taken for a process's crash");
	/* The VM still contains its processes' faults. */
	vm_spawn(null_store, NULL);
	cr_assert(VM_WAIT(crash_count() == 1, 10000), "a process's fault was not contained");
	vm_stop();
	struct sigaction now;
	cr_assert_eq(sigaction(SIGSEGV, &old, &now), 0);
	cr_assert(now.sa_sigaction == host_segv_handler, "kr_vm_stop did not give the host's handler back");
}

/* The kernel's flag for glibc's sigreturn stub, which glibc adds on the
 * way in; not in glibc's headers. The same on x86-64 and aarch64. */
#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif

static bool same_action(const struct sigaction *a, const struct sigaction *b)
{
	int mask = ~SA_RESTORER;
	return a->sa_sigaction == b->sa_sigaction && (a->sa_flags & mask) == (b->sa_flags & mask);
}

Test(fault, the_hosts_handlers_are_back_after_stop)
{
	struct sigaction before[NSIGNALS], now;
	for (size_t i = 0; i < NSIGNALS; i++)
		cr_assert_eq(sigaction(fault_signals[i], NULL, &before[i]), 0);
	for (int round = 0; round < 3; round++) {
		vm_start(1);
		for (size_t i = 0; i < NSIGNALS; i++) {
			sigaction(fault_signals[i], NULL, &now);
			cr_assert(!same_action(&now, &before[i]), "signal %d: no handler installed",
			          fault_signals[i]);
		}
		vm_stop();
		for (size_t i = 0; i < NSIGNALS; i++) {
			sigaction(fault_signals[i], NULL, &now);
			cr_assert(same_action(&now, &before[i]), "signal %d: not restored after stop",
			          fault_signals[i]);
		}
	}
}

/* ---- a fault in krill's own code ---- */

/* How fault.c tells krill's code from a process's: the build moves all of
 * the library's code into the section krill_text (scripts/krill-text.sh). */
extern const char __start_krill_text[], __stop_krill_text[];

static bool in_krill_text(const void *pc)
{
	return (uintptr_t)pc >= (uintptr_t)__start_krill_text &&
	       (uintptr_t)pc < (uintptr_t)__stop_krill_text;
}

Test(fault, krills_code_is_in_krill_text_and_the_programs_is_not)
{
	cr_assert(in_krill_text((const void *)kr_spawn), "kr_spawn");
	cr_assert(in_krill_text((const void *)kr_msg_free), "kr_msg_free");
	cr_assert(in_krill_text((const void *)krx_ctx_swap), "krx_ctx_swap (assembly)");
	cr_assert(!in_krill_text((const void *)null_store), "the test's own code");
	cr_assert(!in_krill_text((const void *)capture_log), "the test's own code");
}

static void free_garbage(void *arg)
{
	(void)arg;
	/* kr_msg_free reads the block's header just below the pointer: in
	 * krill's code, at an address no one maps. */
	kr_msg_free((kr_msg *)(uintptr_t)0x1000);
}

Test(fault, a_fault_in_krills_own_code_aborts_with_a_crash_dump, .signal = SIGABRT)
{
	vm_start_logged(1);
	fprintf(stderr, "fault: the crash dump that follows is expected\n");
	vm_spawn(free_garbage, NULL);
	VM_WAIT(0, 20000);
	cr_assert_fail("a fault in kr_msg_free did not end the program");
}
