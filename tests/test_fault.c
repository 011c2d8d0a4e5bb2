/*
 * test_fault.c - crash containment (sched/fault.c) through the public API:
 * a process that faults (segfault, bus error, fpe, illegal instruction,
 * stack overflow) ends alone, its scheduler runs the next process queued
 * behind it, the crash is reported through kr_config.log naming the kind,
 * a thousand faults in a row are all contained, a fault on a host thread
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

#include "ctx.h" /* krx_ctx_swap, in assembly */
#include "fault_util.h"
#include "krill.h"
#include "vm_util.h"

TestSuite(fault, .fini = vm_fini, .timeout = 60);

/* ---- the log: crash reports land here ---- */

#define CRASH_LINES 8
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char crash_lines[CRASH_LINES][256];
static int crashes; /* lines saying "crashed:" */

static void capture_log(const char *line, void *ctx)
{
	(void)ctx;
	if (!strstr(line, " crashed: "))
		return; /* a backtrace line */
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

/* The first crash line, for asserts on the test thread. */
static void first_crash_line(char *out, size_t len)
{
	pthread_mutex_lock(&log_lock);
	snprintf(out, len, "%s", crashes ? crash_lines[0] : "");
	pthread_mutex_unlock(&log_lock);
}

static void vm_start_logged(unsigned schedulers)
{
	kr_config cfg = { .schedulers = schedulers, .log = capture_log };
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
	char line[256], want[128];
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
