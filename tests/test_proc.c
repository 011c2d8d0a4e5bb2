/*
 * test_proc.c - processes through the public API (include/krill.h): spawn,
 * self, is_alive, info, yield, sleep, exit and what it releases, stale and
 * bad pids, the process heap, errors from host threads and with no VM, VM
 * start/stop/restart, kr_main, and a million processes on two schedulers.
 *
 * Criterion asserts only on the test thread: processes record failures
 * with VM_CHECK (vm_util.h) and the test asserts vm_assert_clean().
 */
#include <criterion/criterion.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "krill.h"
#include "vm_util.h"

TestSuite(proc, .fini = vm_fini, .timeout = 60);

#if KRX_ASAN
/* Criterion 2.4.1's runner (the parent process, not a test) leaks a 48-byte
 * timeout task (calloc in libcriterion) when tests with .timeout run in
 * parallel jobs; LeakSanitizer then fails the whole ASan suite at exit. Its
 * stack is two frames, calloc and an unnamed one in libcriterion, so only
 * the module can name it. A suppression matches a leak with that module
 * anywhere in its stack, and in a test worker every allocation the test
 * thread makes has Criterion's frames below the test's: there it would hide
 * every leak of a message or binary made from the test thread. So it holds
 * in the runner only: the workers are the runner re-executed by BoxFort
 * with BXFI_MAP in their environment. One definition for the whole test
 * binary. */
const char *__lsan_default_suppressions(void);
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void)
{
	return getenv("BXFI_MAP") ? "" : "leak:libcriterion.so\n";
}
#endif

/* ---- spawn, self, the argument ---- */

static atomic_llong seen_self;
static atomic_int seen_arg;

static void record_self(void *arg)
{
	atomic_store(&seen_arg, *(int *)arg);
	atomic_store(&seen_self, kr_self());
}

Test(proc, spawn_runs_fn_with_arg_and_self_is_its_pid)
{
	static int arg = 1234;
	vm_start(2);
	kr_pid p = vm_spawn(record_self, &arg);
	cr_assert(VM_WAIT(atomic_load(&seen_self) != 0, 10000), "the process never ran");
	cr_assert_eq(atomic_load(&seen_arg), 1234);
	cr_assert_eq(atomic_load(&seen_self), p, "kr_self() %lld, kr_spawn returned %lld",
	             (long long)atomic_load(&seen_self), (long long)p);
	cr_assert(VM_WAIT(!kr_is_alive(p), 10000), "the process did not exit after returning");
	vm_stop();
}

/* Pids are positive and distinct, from the host and from processes. */
#define DISTINCT_N 2000
static kr_pid distinct_pids[DISTINCT_N];
static atomic_int distinct_done;

static void nothing(void *arg) { (void)arg; }

static void spawn_half(void *arg)
{
	for (int i = DISTINCT_N / 2; i < DISTINCT_N; i++)
		distinct_pids[i] = kr_spawn(nothing, NULL);
	atomic_store(&distinct_done, 1);
}

static int cmp_pid(const void *a, const void *b)
{
	kr_pid x = *(const kr_pid *)a, y = *(const kr_pid *)b;
	return (x > y) - (x < y);
}

Test(proc, pids_are_positive_and_unique)
{
	vm_start(2);
	for (int i = 0; i < DISTINCT_N / 2; i++)
		distinct_pids[i] = kr_spawn(nothing, NULL);
	vm_spawn(spawn_half, NULL);
	cr_assert(VM_WAIT(atomic_load(&distinct_done), 10000));
	qsort(distinct_pids, DISTINCT_N, sizeof(kr_pid), cmp_pid);
	cr_assert_gt(distinct_pids[0], 0, "a spawn failed: %lld", (long long)distinct_pids[0]);
	for (int i = 1; i < DISTINCT_N; i++)
		cr_assert_neq(distinct_pids[i], distinct_pids[i - 1], "pid %lld given twice",
		              (long long)distinct_pids[i]);
	vm_stop();
}

/* ---- is_alive and info through a process's life ---- */

static void wait_for_message(void *arg)
{
	kr_msg *m;
	int rc = kr_recv(&m, KR_INFINITY);
	VM_CHECK(rc == 0, "kr_recv: %d", rc);
	if (rc == 0)
		kr_msg_free(m);
}

Test(proc, is_alive_and_info_follow_the_life_of_a_process)
{
	vm_start(2);
	char name[32] = "waiter";
	kr_spawn_opts o = { .name = name };
	kr_pid p = kr_spawn_opt(wait_for_message, NULL, &o);
	cr_assert_gt(p, 0);
	strcpy(name, "clobbered"); /* the name was copied */
	cr_assert_eq(kr_is_alive(p), 1);
	cr_assert(VM_WAIT(vm_status(p) == KR_WAITING, 10000), "status %d, never KR_WAITING",
	          vm_status(p));
	kr_proc_info i;
	cr_assert_eq(kr_info(p, &i), 0);
	cr_assert_eq(i.status, KR_WAITING);
	cr_assert_eq(i.mailbox_len, 0);
	cr_assert(i.scheduler == 0 || i.scheduler == 1, "scheduler %d", i.scheduler);
	cr_assert_str_eq(i.name, "waiter");
	cr_assert_not_null(i.stack_protection);
	cr_assert(!strcmp(i.stack_protection, "guard_install") ||
	                  !strcmp(i.stack_protection, "mprotect") ||
	                  !strcmp(i.stack_protection, "canary"),
	          "stack_protection \"%s\" after running", i.stack_protection);
	cr_assert_eq(kr_is_alive(p), 1);

	cr_assert_eq(kr_send(p, 1, "x", 1), 0);
	cr_assert(VM_WAIT(!kr_is_alive(p), 10000), "still alive after its function returned");
	cr_assert_eq(kr_info(p, &i), KR_ENOPROC);
	vm_stop();
}

Test(proc, a_long_name_is_truncated)
{
	vm_start(1);
	kr_spawn_opts o = { .name = "a-very-long-process-name-that-goes-on-and-on" };
	kr_pid p = kr_spawn_opt(wait_for_message, NULL, &o);
	cr_assert_gt(p, 0);
	kr_proc_info i;
	cr_assert_eq(kr_info(p, &i), 0);
	cr_assert_eq(strlen(i.name), sizeof i.name - 1, "name \"%s\"", i.name);
	cr_assert_eq(strncmp(i.name, o.name, sizeof i.name - 1), 0);
	kr_send(p, 0, NULL, 0);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* An unnamed process has the name ""; info from a process about itself says
 * it is running. */
static atomic_int self_info_status = -100;
static atomic_int self_info_named = -100;

static void info_about_self(void *arg)
{
	kr_proc_info i;
	int rc = kr_info(kr_self(), &i);
	VM_CHECK(rc == 0, "kr_info(self): %d", rc);
	atomic_store(&self_info_named, i.name[0] != 0);
	atomic_store(&self_info_status, i.status);
}

Test(proc, info_about_itself_says_running)
{
	vm_start(1);
	vm_spawn(info_about_self, NULL);
	cr_assert(VM_WAIT(atomic_load(&self_info_status) != -100, 10000));
	vm_assert_clean();
	cr_assert_eq(atomic_load(&self_info_status), KR_RUNNING);
	cr_assert_eq(atomic_load(&self_info_named), 0, "an unnamed process has a name");
	vm_stop();
}

/* On one scheduler, a child spawned by a process that has not yielded has
 * not run yet: runnable, no scheduler, no stack. */
static kr_proc_info child_info;
static atomic_int child_info_rc = -100;
static atomic_int child_ran;

static void mark_child_ran(void *arg) { atomic_store(&child_ran, 1); }

static void spawn_and_look(void *arg)
{
	kr_pid c = kr_spawn(mark_child_ran, NULL);
	VM_CHECK(c > 0, "kr_spawn: %lld", (long long)c);
	VM_CHECK(!atomic_load(&child_ran), "the child ran before its parent yielded on 1 scheduler");
	atomic_store(&child_info_rc, kr_info(c, &child_info));
}

Test(proc, a_child_not_yet_run_is_runnable_on_no_scheduler)
{
	vm_start(1);
	vm_spawn(spawn_and_look, NULL);
	cr_assert(VM_WAIT(atomic_load(&child_info_rc) != -100, 10000));
	cr_assert(VM_WAIT(atomic_load(&child_ran), 10000), "the child never ran");
	vm_assert_clean();
	cr_assert_eq(atomic_load(&child_info_rc), 0);
	cr_assert_eq(child_info.status, KR_RUNNABLE);
	cr_assert_eq(child_info.scheduler, -1);
	cr_assert_str_eq(child_info.stack_protection, "none");
	vm_stop();
}

/* mailbox_len counts messages not yet received; reductions grow with work. */
static atomic_int ml_go;

static void sleep_then_drain(void *arg)
{
	while (!atomic_load(&ml_go) && !atomic_load(&vm_abort))
		kr_sleep(1);
	kr_msg *m;
	while (kr_recv(&m, 0) == 0)
		kr_msg_free(m);
	/* 10,000 sends and receives: each costs reductions. */
	kr_pid me = kr_self();
	for (int i = 0; i < 10000; i++) {
		VM_CHECK(kr_send(me, 1, &i, sizeof i) == 0, "send to self");
		if (kr_recv(&m, 0) == 0)
			kr_msg_free(m);
	}
	wait_for_message(NULL);
}

Test(proc, info_counts_mailbox_and_reductions)
{
	vm_start(2);
	kr_pid p = vm_spawn(sleep_then_drain, NULL);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(kr_send(p, 7, &i, sizeof i), 0);
	kr_proc_info i;
	cr_assert(VM_WAIT(kr_info(p, &i) == 0 && i.mailbox_len == 5, 10000),
	          "mailbox_len %zu, want 5", i.mailbox_len);
	uint64_t red0 = i.reductions;
	atomic_store(&ml_go, 1);
	cr_assert(VM_WAIT(kr_info(p, &i) == 0 && i.mailbox_len == 0 && i.status == KR_WAITING &&
	                          i.reductions > red0 + 10000,
	                  10000),
	          "mailbox_len %zu status %d reductions %llu (were %llu) after 10,000 sends and receives",
	          i.mailbox_len, i.status, (unsigned long long)i.reductions,
	          (unsigned long long)red0);
	kr_send(p, 1, NULL, 0);
	cr_assert(VM_WAIT(!kr_is_alive(p), 10000));
	vm_stop();
}

/* ---- yield ---- */

#define YIELD_ROUNDS 200
static char yield_log[2 * YIELD_ROUNDS + 2];
static atomic_int yield_len;

static void yielder(void *arg)
{
	char c = *(char *)arg;
	for (int i = 0; i < YIELD_ROUNDS; i++) {
		yield_log[atomic_fetch_add(&yield_len, 1)] = c;
		int rc = kr_yield();
		VM_CHECK(rc == 0, "kr_yield: %d", rc);
	}
}

/* Both spawned by one process before it returns, so that both are
 * runnable before either runs (from the host, the first could finish its
 * yields before the second spawn lands). */
static void spawn_two_yielders(void *arg)
{
	static char a = 'a', b = 'b';
	VM_CHECK(kr_spawn(yielder, &a) > 0, "spawn a");
	VM_CHECK(kr_spawn(yielder, &b) > 0, "spawn b");
}

Test(proc, yield_lets_the_other_process_run_on_one_scheduler)
{
	vm_start(1);
	vm_spawn(spawn_two_yielders, NULL);
	cr_assert(VM_WAIT(atomic_load(&yield_len) == 2 * YIELD_ROUNDS, 10000));
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_assert_clean();
	/* One scheduler, two processes that yield at every step. The second may
	 * start a little late (it may come through the global queue), but it
	 * must start before the first is done; from then on they take turns. */
	int start = 1;
	while (start < 2 * YIELD_ROUNDS && yield_log[start] == yield_log[0])
		start++;
	cr_assert_lt(start, YIELD_ROUNDS, "the second process started only after %d yields of the first",
	             start);
	int switches = 0, longest = 1, run = 1;
	for (int i = start + 1; i < 2 * YIELD_ROUNDS; i++) {
		if (yield_log[i] != yield_log[i - 1]) {
			switches++;
			run = 1;
		} else if (++run > longest) {
			longest = run;
		}
	}
	int both = 2 * YIELD_ROUNDS - start; /* entries after both had started */
	cr_assert_geq(switches, both / 2 - start, "only %d switches in %d yields: %.60s...", switches,
	              both, yield_log);
	cr_assert_leq(longest, 3,
	              "one process ran %d turns in a row while the other was runnable: %.60s...",
	              longest, yield_log);
	vm_stop();
}

/* ---- sleep ---- */

static atomic_int sleep_done;

static void sleeper(void *arg)
{
	static const long ms[] = { 0, 1, 2, 5, 20, 50 };
	for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
		int64_t t0 = vm_now_ns();
		int rc = kr_sleep(ms[i]);
		double took = vm_ms_since(t0);
		VM_CHECK(rc == 0, "kr_sleep(%ld): %d", ms[i], rc);
		VM_CHECK(took >= (double)ms[i], "kr_sleep(%ld) returned after %.3f ms", ms[i], took);
	}
	atomic_store(&sleep_done, 1);
}

Test(proc, sleep_sleeps_at_least_the_time)
{
	vm_start(2);
	vm_spawn(sleeper, NULL);
	cr_assert(VM_WAIT(atomic_load(&sleep_done), 20000));
	vm_assert_clean();
	vm_stop();
}

/* Messages do not wake a sleeper. */
static atomic_int msleep_started;
static atomic_int msleep_done;

static void sleeper_with_mail(void *arg)
{
	atomic_store(&msleep_started, 1);
	int64_t t0 = vm_now_ns();
	kr_sleep(100);
	double took = vm_ms_since(t0);
	VM_CHECK(took >= 100.0, "a message woke kr_sleep(100) after %.3f ms", took);
	kr_msg *m;
	int rc = kr_recv(&m, 0);
	VM_CHECK(rc == 0, "the message sent during the sleep is not there: %d", rc);
	if (rc == 0)
		kr_msg_free(m);
	atomic_store(&msleep_done, 1);
}

Test(proc, messages_do_not_wake_a_sleeper)
{
	vm_start(2);
	kr_pid p = vm_spawn(sleeper_with_mail, NULL);
	cr_assert(VM_WAIT(atomic_load(&msleep_started), 10000));
	vm_host_sleep_ms(10);
	cr_assert_eq(kr_send(p, 1, "wake?", 5), 0);
	cr_assert(VM_WAIT(atomic_load(&msleep_done), 10000));
	vm_assert_clean();
	vm_stop();
}

/* A sleeping process does not hold its scheduler. */
static atomic_long busy_count;
static atomic_int long_sleep_done;

static void long_sleeper(void *arg)
{
	kr_sleep(100);
	atomic_store(&long_sleep_done, 1);
}

static void busy_counter(void *arg)
{
	while (!atomic_load(&long_sleep_done) && !atomic_load(&vm_abort)) {
		atomic_fetch_add(&busy_count, 1);
		kr_yield();
	}
}

Test(proc, a_sleeper_does_not_hold_its_scheduler)
{
	vm_start(1);
	vm_spawn(long_sleeper, NULL);
	vm_spawn(busy_counter, NULL);
	cr_assert(VM_WAIT(atomic_load(&long_sleep_done), 10000));
	cr_assert_gt(atomic_load(&busy_count), 10, "the other process ran %ld times during the sleep",
	             atomic_load(&busy_count));
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* ---- exit releases the slot and the stack ---- */

#define EXIT_N 100

Test(proc, exit_returns_its_slot_and_stack)
{
	vm_start(2);
	kr_pid pids[EXIT_N];
	for (int i = 0; i < EXIT_N; i++)
		pids[i] = vm_spawn(wait_for_message, NULL);
	cr_assert(VM_WAIT(vm_stacks() == EXIT_N, 10000), "stacks_in_use %zu with %d waiting",
	          vm_stacks(), EXIT_N);
	kr_vm_stats s = vm_stats();
	cr_assert_eq(s.procs_alive, EXIT_N);
	cr_assert_eq(s.procs_spawned, EXIT_N);
	cr_assert_not_null(s.stack_protection);
	for (int i = 0; i < EXIT_N; i++)
		cr_assert_eq(kr_send(pids[i], 0, NULL, 0), 0);
	cr_assert(VM_WAIT(vm_alive() == 0 && vm_stacks() == 0, 10000),
	          "procs_alive %zu stacks_in_use %zu after all returned", vm_alive(), vm_stacks());
	for (int i = 0; i < EXIT_N; i++)
		cr_assert_eq(kr_is_alive(pids[i]), 0);
	vm_stop();
}

/* Messages and binaries left in a mailbox at exit are freed with it (ASan's
 * leak check sees any that are not). */
static void exit_without_receiving(void *arg)
{
	while (!atomic_load((atomic_int *)arg) && !atomic_load(&vm_abort))
		kr_sleep(1);
}

Test(proc, unreceived_messages_are_freed_at_exit)
{
	static atomic_int go;
	vm_start(2);
	kr_pid p = vm_spawn(exit_without_receiving, &go);
	char big[3000];
	memset(big, 'q', sizeof big);
	kr_bin *bin = kr_bin_new(big, sizeof big);
	cr_assert_not_null(bin);
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(kr_send(p, 1, big, (size_t)(i * 300)), 0);
		cr_assert_eq(kr_send_bin(p, 2, bin), 0);
	}
	kr_bin_unref(bin);
	atomic_store(&go, 1);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* ---- a million processes ---- */

#define MILLION (1000000 / VM_HEAVY_DIV)
#define MILLION_SPAWNERS 2
/* Under TSan each live coroutine takes a thread slot: spawn in waves. */
#define MILLION_LIVE (KR_TEST_MAX_LIVE_CTX * 3 / 4)

static atomic_long million_started, million_finished, million_spawners_done;

static void million_child(void *arg) { atomic_fetch_add(&million_finished, 1); }

static void million_spawner(void *arg)
{
	long n = (long)(intptr_t)arg;
	for (long i = 0; i < n && !atomic_load(&vm_abort); i++) {
		while (atomic_load(&million_started) - atomic_load(&million_finished) >= MILLION_LIVE &&
		       !atomic_load(&vm_abort))
			kr_yield();
		kr_pid p = kr_spawn(million_child, NULL);
		if (p <= 0) {
			VM_CHECK(p > 0, "spawn %ld of %ld failed: %lld (%s)", i, n, (long long)p,
			         kr_strerror((int)p));
			break;
		}
		atomic_fetch_add(&million_started, 1);
	}
	atomic_fetch_add(&million_spawners_done, 1);
}

Test(proc, a_million_processes_spawn_and_exit_on_two_schedulers, .timeout = 300)
{
	vm_start(2);
	long per = MILLION / MILLION_SPAWNERS;
	for (unsigned s = 0; s < MILLION_SPAWNERS; s++)
		vm_spawn_on(million_spawner, (void *)(intptr_t)per, s % 2 + 1);
	cr_assert(VM_WAIT(atomic_load(&million_spawners_done) == MILLION_SPAWNERS, 240000));
	vm_assert_clean();
	cr_assert(VM_WAIT(atomic_load(&million_finished) == per * MILLION_SPAWNERS, 60000),
	          "%ld of %ld processes ran", atomic_load(&million_finished), per * MILLION_SPAWNERS);
	cr_assert(VM_WAIT(vm_alive() == 0 && vm_stacks() == 0, 10000),
	          "procs_alive %zu stacks_in_use %zu after every process returned", vm_alive(),
	          vm_stacks());
	kr_vm_stats s = vm_stats();
	cr_assert_eq(s.procs_spawned, (uint64_t)(per * MILLION_SPAWNERS + MILLION_SPAWNERS),
	             "procs_spawned %llu", (unsigned long long)s.procs_spawned);
	cr_assert_eq(s.schedulers, 2);
	vm_stop();
}

/* ---- stale pids ---- */

/* With max_procs small, every slot is taken again: the old pid must reach
 * none of the new processes. */
#define STALE_SLOTS 16
static atomic_int stale_wrong; /* new processes that received the stale message */
static atomic_int stale_ok;

static void stale_new(void *arg)
{
	kr_msg *m;
	int rc = kr_recv(&m, KR_INFINITY);
	VM_CHECK(rc == 0, "kr_recv: %d", rc);
	if (rc != 0)
		return;
	if (m->tag == 666)
		atomic_fetch_add(&stale_wrong, 1);
	else
		atomic_fetch_add(&stale_ok, 1);
	kr_msg_free(m);
}

Test(proc, a_stale_pid_never_reaches_the_new_process_in_its_slot)
{
	kr_config cfg = { .schedulers = 2, .max_procs = STALE_SLOTS };
	vm_start_cfg(&cfg);
	kr_pid olds[STALE_SLOTS];
	for (int i = 0; i < STALE_SLOTS; i++)
		olds[i] = vm_spawn(nothing, NULL);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	/* Fill every slot again, several generations over. */
	for (int round = 0; round < 3; round++) {
		kr_pid news[STALE_SLOTS];
		for (int i = 0; i < STALE_SLOTS; i++) {
			news[i] = kr_spawn(stale_new, NULL);
			cr_assert_gt(news[i], 0, "spawn %d with %d slots: %lld", i, STALE_SLOTS,
			             (long long)news[i]);
		}
		for (int i = 0; i < STALE_SLOTS; i++) {
			for (int j = 0; j < STALE_SLOTS; j++)
				cr_assert_neq(news[i], olds[j], "pid %lld reused", (long long)news[i]);
			cr_assert_eq(kr_is_alive(olds[i]), 0, "stale pid %lld is alive", (long long)olds[i]);
			kr_proc_info info;
			cr_assert_eq(kr_info(olds[i], &info), KR_ENOPROC);
		}
		uint64_t dl0 = vm_dead_letters();
		for (int i = 0; i < STALE_SLOTS; i++)
			cr_assert_eq(kr_send(olds[i], 666, "stale", 5), 0);
		cr_assert_eq(vm_dead_letters(), dl0 + STALE_SLOTS, "dead_letters %llu, want %llu",
		             (unsigned long long)vm_dead_letters(),
		             (unsigned long long)(dl0 + STALE_SLOTS));
		for (int i = 0; i < STALE_SLOTS; i++)
			cr_assert_eq(kr_send(news[i], 1, "fresh", 5), 0);
		cr_assert(VM_WAIT(vm_alive() == 0, 10000));
		memcpy(olds, news, sizeof olds);
	}
	vm_assert_clean();
	cr_assert_eq(atomic_load(&stale_wrong), 0, "%d stale messages reached new processes",
	             atomic_load(&stale_wrong));
	cr_assert_eq(atomic_load(&stale_ok), 3 * STALE_SLOTS);
	vm_stop();
}

Test(proc, max_procs_is_enforced_and_slots_come_back)
{
	kr_config cfg = { .schedulers = 2, .max_procs = STALE_SLOTS };
	vm_start_cfg(&cfg);
	kr_pid p[STALE_SLOTS];
	for (int i = 0; i < STALE_SLOTS; i++)
		p[i] = vm_spawn(wait_for_message, NULL);
	cr_assert_eq(kr_spawn(wait_for_message, NULL), KR_ELIMIT);
	cr_assert_eq(kr_send(p[0], 0, NULL, 0), 0);
	cr_assert(VM_WAIT(vm_alive() == STALE_SLOTS - 1, 10000));
	/* The freed slot may take a moment to be reusable (reclamation). */
	kr_pid q = KR_ELIMIT;
	cr_assert(VM_WAIT((q = kr_spawn(wait_for_message, NULL)) != KR_ELIMIT, 10000));
	cr_assert_gt(q, 0);
	cr_assert_eq(kr_spawn(wait_for_message, NULL), KR_ELIMIT);
	for (int i = 1; i < STALE_SLOTS; i++)
		kr_send(p[i], 0, NULL, 0);
	kr_send(q, 0, NULL, 0);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* ---- bad pids and bad arguments ---- */

/* A pid is a table index and a generation, with the bits above them left
 * for a node (DESIGN.md). One that cannot name a process of this VM (not
 * positive, or a node part where there is no distribution) is a bad pid:
 * KR_EINVAL, as krill.h says. A well-formed pid that names no process,
 * whether its process has gone or its index was never given out, is not an
 * error, as in Erlang (where sending to a pid built with list_to_pid/1 that
 * names no process does nothing): a dead letter. */
Test(proc, bad_pids_are_rejected_and_unknown_ones_are_dead_letters)
{
	vm_start(2);
	const kr_pid bad[] = { 0, -1, -3, INT64_MIN, INT64_MAX, 0x7fffffff00000001LL };
	/* Well-formed, never given out: index 0x789abc, far past max_procs. */
	const kr_pid unknown = 0x123456789abcLL;
	kr_proc_info i;
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		kr_pid p = bad[k];
		cr_assert_eq(kr_is_alive(p), 0, "kr_is_alive(%lld)", (long long)p);
		int rc = kr_info(p, &i);
		cr_assert(rc == KR_ENOPROC || rc == KR_EINVAL, "kr_info(%lld): %d", (long long)p, rc);
		uint64_t dl0 = vm_dead_letters();
		cr_assert_eq(kr_send(p, 1, "x", 1), KR_EINVAL, "kr_send(%#llx)", (unsigned long long)p);
		kr_bin *b = kr_bin_new("y", 1);
		cr_assert_eq(kr_send_bin(p, 1, b), KR_EINVAL, "kr_send_bin(%#llx)", (unsigned long long)p);
		kr_bin_unref(b);
		cr_assert_eq(kr_exit_sig(p, KR_EXIT_KILL), KR_EINVAL, "kr_exit_sig(%#llx)",
		             (unsigned long long)p);
		cr_assert_eq(vm_dead_letters(), dl0, "a bad pid was counted as a dead letter");
	}
	cr_assert_eq(kr_is_alive(unknown), 0);
	cr_assert_eq(kr_info(unknown, &i), KR_ENOPROC);
	uint64_t dl0 = vm_dead_letters();
	cr_assert_eq(kr_send(unknown, 1, "x", 1), 0);
	kr_bin *b = kr_bin_new("y", 1);
	cr_assert_eq(kr_send_bin(unknown, 1, b), 0);
	kr_bin_unref(b);
	cr_assert_eq(kr_exit_sig(unknown, KR_EXIT_KILL), 0, "an exit signal to no process");
	cr_assert_eq(vm_dead_letters(), dl0 + 2, "dead letters %llu, want %llu",
	             (unsigned long long)vm_dead_letters(), (unsigned long long)(dl0 + 2));
	cr_assert_lt(kr_spawn(NULL, NULL), 0, "kr_spawn(NULL)");
	kr_spawn_opts o = { .bind_scheduler = 3 }; /* 2 schedulers */
	cr_assert_eq(kr_spawn_opt(nothing, NULL, &o), KR_EINVAL);
	o = (kr_spawn_opts){ .stack_size = SIZE_MAX / 2 };
	cr_assert_lt(kr_spawn_opt(nothing, NULL, &o), 0, "a stack of SIZE_MAX/2 bytes");
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

Test(proc, strerror_and_version)
{
	const int codes[] = { KR_EINVAL, KR_ENOMEM,   KR_ENOPROC, KR_ETIMEDOUT, KR_ENOTPROC,
		              KR_ESTOPPED, KR_ELIMIT, KR_EEXIST,  KR_ENOSYS };
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		cr_assert_not_null(kr_strerror(codes[i]));
		cr_assert_str_neq(kr_strerror(codes[i]), "unknown error", "code %d", codes[i]);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(kr_strerror(codes[i]), kr_strerror(codes[j]));
	}
	cr_assert_str_eq(kr_strerror(-12345), "unknown error");
	cr_assert_str_eq(kr_version(), "0.1.0");
}

/* ---- from host threads: what needs a process says so ---- */

static atomic_int inline_blocking_ran;
static pthread_t inline_blocking_thread;

static long blocking_inline(void *arg)
{
	inline_blocking_thread = pthread_self();
	atomic_store(&inline_blocking_ran, 1);
	return (long)(intptr_t)arg * 3;
}

static int match_any(const kr_msg *m, void *ctx) { return 1; }

/* Runs on the test thread, with a VM and without one. The calls a thread
 * cannot make as a process get KR_ENOTPROC; those a mailbox serves make the
 * thread one on first use (test_host.c): without a VM, KR_ESTOPPED. */
static void *host_calls(void *arg)
{
	int vm_running = *(int *)arg;
	kr_msg *m = NULL;
	/* With no VM, "not a process" and "stopped" are both true. */
#define HOST_RC(expr, want)                                                             \
	do {                                                                            \
		long long rc_ = (long long)(expr);                                      \
		cr_assert(rc_ == (want) || (!vm_running && rc_ == KR_ESTOPPED), "%s: %lld", \
		          #expr, rc_);                                                   \
	} while (0)
	/* kr_yield and kr_sleep yield and sleep the thread, VM or not. */
	cr_assert_eq(kr_yield(), 0);
	int64_t t0 = vm_now_ns();
	cr_assert_eq(kr_sleep(10), 0);
	cr_assert_geq(vm_now_ns() - t0, 10 * 1000000, "kr_sleep(10) from a host thread slept less");
	cr_assert_eq(kr_sleep(0), 0);
	cr_assert_eq(kr_sleep(KR_INFINITY), KR_EINVAL, "a thread would never wake");
	cr_assert_eq(kr_sleep(-7), KR_EINVAL);
	HOST_RC(kr_hibernate(nothing, NULL), KR_ENOTPROC);
	/* No mailbox yet: no heap. */
	cr_assert_null(kr_alloc(16));
	cr_assert_null(kr_calloc(4, 4));
	cr_assert_null(kr_realloc(NULL, 16));
	kr_free(NULL);
	int stopped = vm_running ? 0 : KR_ESTOPPED;
	HOST_RC(kr_recv(&m, 0), vm_running ? KR_ETIMEDOUT : stopped);
	HOST_RC(kr_recv(&m, 10), vm_running ? KR_ETIMEDOUT : stopped);
	HOST_RC(kr_recv_tag(&m, 1, 0), vm_running ? KR_ETIMEDOUT : stopped);
	HOST_RC(kr_recv_match(&m, match_any, NULL, 0), vm_running ? KR_ETIMEDOUT : stopped);
	kr_pid me = kr_self();
	cr_assert(vm_running ? me > 0 : me == KR_ESTOPPED, "kr_self: %lld", (long long)me);
#undef HOST_RC
	cr_assert_null(m);
	if (vm_running) { /* a message that comes while the thread sleeps stays queued */
		cr_assert_eq(kr_send(me, 7, NULL, 0), 0);
		cr_assert_eq(kr_sleep(5), 0);
		cr_assert_eq(kr_recv_tag(&m, 7, 0), 0);
		kr_msg_free(m);
		m = NULL;
	}
	void *p = kr_alloc(16);
	cr_assert(vm_running ? p != NULL : p == NULL, "kr_alloc with a mailbox: %p", p);
	kr_free(p);
	for (int i = 0; i < 100000; i++) /* harmless on a host thread */
		KR_CHECK();
	atomic_store(&inline_blocking_ran, 0);
	cr_assert_eq(kr_blocking(blocking_inline, (void *)(intptr_t)14), 42);
	cr_assert(atomic_load(&inline_blocking_ran));
	cr_assert(pthread_equal(inline_blocking_thread, pthread_self()),
	          "kr_blocking from a host thread ran fn elsewhere");
	return NULL;
}

static void *host_calls_thread(void *arg)
{
	/* cr_assert longjmps to the test thread's context: check here, report
	 * by return value instead. */
	(void)arg;
	kr_msg *m = NULL;
	int bad = 0;
	bad |= kr_yield() != 0;
	bad |= (kr_sleep(10) != 0) << 1;
	bad |= (kr_alloc(16) != NULL) << 2;
	bad |= (kr_recv(&m, 10) != KR_ETIMEDOUT) << 3;
	bad |= (kr_recv_tag(&m, 1, 0) != KR_ETIMEDOUT) << 4;
	bad |= (kr_recv_match(&m, match_any, NULL, 0) != KR_ETIMEDOUT) << 5;
	bad |= (kr_self() <= 0) << 6;
	bad |= (kr_blocking(blocking_inline, (void *)(intptr_t)2) != 6) << 7;
	bad |= !pthread_equal(inline_blocking_thread, pthread_self()) << 8;
	for (int i = 0; i < 100000; i++)
		KR_CHECK();
	return (void *)(intptr_t)bad;
}

Test(proc, host_threads_get_enotproc_or_a_mailbox_or_yield_and_sleep_themselves)
{
	int running = 1;
	vm_start(2);
	host_calls(&running);
	pthread_t t;
	void *bad;
	cr_assert_eq(pthread_create(&t, NULL, host_calls_thread, NULL), 0);
	pthread_join(t, &bad);
	cr_assert_eq((intptr_t)bad, 0, "failed checks on another host thread: mask %#lx",
	             (unsigned long)(intptr_t)bad);
	vm_stop();
	running = 0;
	host_calls(&running);
}

/* ---- with no VM running ---- */

static void expect_stopped(void)
{
	kr_vm_stats s;
	kr_proc_info i;
	cr_assert_eq(kr_vm_stats_get(&s), KR_ESTOPPED);
	cr_assert_eq(kr_vm_stop(), KR_ESTOPPED);
	cr_assert_eq(kr_spawn(nothing, NULL), KR_ESTOPPED);
	cr_assert_eq(kr_spawn_opt(nothing, NULL, NULL), KR_ESTOPPED);
	cr_assert_eq(kr_send(1, 0, "x", 1), KR_ESTOPPED);
	kr_bin *b = kr_bin_new("z", 1); /* binaries need no VM */
	cr_assert_not_null(b);
	cr_assert_eq(kr_send_bin(1, 0, b), KR_ESTOPPED);
	kr_bin_unref(b);
	cr_assert_eq(kr_is_alive(1), 0);
	int rc = kr_info(1, &i);
	cr_assert(rc == KR_ENOPROC || rc == KR_ESTOPPED, "kr_info: %d", rc);
}

Test(proc, calls_with_no_vm_say_stopped)
{
	expect_stopped();
	vm_start(1);
	kr_pid p = vm_spawn(wait_for_message, NULL);
	vm_stop();
	expect_stopped();
	cr_assert_eq(kr_is_alive(p), 0);
}

Test(proc, starting_twice_is_eexist)
{
	vm_start(1);
	kr_config cfg = { .schedulers = 2 };
	cr_assert_eq(kr_vm_start(&cfg), KR_EEXIST);
	cr_assert_eq(kr_vm_start(NULL), KR_EEXIST);
	cr_assert_eq(vm_stats().schedulers, 1, "the second start changed the running VM");
	vm_stop();
}

/* Settings krill.h rules out are KR_EINVAL, and no VM is left half
 * started: stack_size outside 16 KiB to 1 GiB, and counts no machine has
 * (the header gives no limit for schedulers and max_procs; these are far
 * past any). The extremes of stack_size that are allowed start. */
Test(proc, bad_settings_are_einval_and_start_nothing)
{
	const kr_config bad[] = {
		{ .stack_size = (16 << 10) - 1 },
		{ .stack_size = 1 },
		{ .stack_size = ((size_t)1 << 30) + 1 },
		{ .stack_size = SIZE_MAX },
		{ .schedulers = 1u << 30 },
		{ .max_procs = SIZE_MAX },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = kr_vm_start(&bad[i]);
		cr_assert_eq(rc, KR_EINVAL, "setting %zu: kr_vm_start %d", i, rc);
		kr_vm_stats st;
		cr_assert_eq(kr_vm_stats_get(&st), KR_ESTOPPED, "setting %zu started a VM", i);
		cr_assert_eq(kr_spawn(nothing, NULL), KR_ESTOPPED);
	}
	kr_config small = { .schedulers = 1, .stack_size = 16 << 10 };
	vm_start_cfg(&small);
	kr_pid p = vm_spawn(nothing, NULL);
	cr_assert(VM_WAIT(!kr_is_alive(p), 10000), "a process on a 16 KiB stack did not run");
	vm_stop();
}

/* kr_vm_stop from a process would wait for itself. */
static atomic_int stop_from_proc_rc = -100;

static void stop_from_proc(void *arg) { atomic_store(&stop_from_proc_rc, kr_vm_stop()); }

Test(proc, stop_from_a_process_is_einval)
{
	vm_start(2);
	vm_spawn(stop_from_proc, NULL);
	cr_assert(VM_WAIT(atomic_load(&stop_from_proc_rc) != -100, 10000));
	cr_assert_eq(atomic_load(&stop_from_proc_rc), KR_EINVAL);
	vm_stop();
}

/* ---- stop with processes in every state, then start again ---- */

static void spin_forever(void *arg)
{
	for (;;)
		KR_CHECK(); /* only stoppable at KR_CHECK's call into krill */
}

static void yield_forever(void *arg)
{
	for (;;)
		kr_yield();
}

static void sleep_long(void *arg) { kr_sleep(600000); }

static atomic_int restart_ran;

static void restart_worker(void *arg)
{
	kr_pid parent = (kr_pid)(intptr_t)arg;
	VM_CHECK(kr_send(parent, 5, "hi", 2) == 0, "send to parent");
	atomic_fetch_add(&restart_ran, 1);
}

Test(proc, stop_then_start_again, .timeout = 120)
{
	for (int round = 0; round < 4; round++) {
		kr_config cfg = { .schedulers = (unsigned)(round % 2 + 1), .max_procs = 1000 + round };
		vm_start_cfg(&cfg);
		kr_vm_stats s = vm_stats();
		cr_assert_eq(s.schedulers, cfg.schedulers);
		cr_assert_eq(s.procs_alive, 0, "round %d starts with %zu processes", round, s.procs_alive);
		cr_assert_eq(s.procs_spawned, 0, "round %d: procs_spawned not reset", round);
		cr_assert_eq(s.dead_letters, 0);
		kr_pid pids[24];
		int n = 0;
		for (int i = 0; i < 10; i++)
			pids[n++] = vm_spawn(wait_for_message, NULL);
		pids[n++] = vm_spawn(sleep_long, NULL);
		pids[n++] = vm_spawn(sleep_long, NULL);
		pids[n++] = vm_spawn(yield_forever, NULL);
		pids[n++] = vm_spawn(spin_forever, NULL);
		for (int i = 0; i < 5; i++) /* never scheduled, perhaps */
			pids[n++] = vm_spawn(restart_worker, (void *)(intptr_t)pids[0]);
		kr_send(pids[1], 1, "mail", 4);
		vm_host_sleep_ms(20);
		int64_t t0 = vm_now_ns();
		vm_stop();
		cr_log_info("round %d: kr_vm_stop took %.1f ms", round, vm_ms_since(t0));
		for (int i = 0; i < n; i++)
			cr_assert_eq(kr_is_alive(pids[i]), 0);
		cr_assert_eq(kr_vm_stats_get(&s), KR_ESTOPPED);
	}
	vm_assert_clean();
	cr_assert_gt(atomic_load(&restart_ran), 0, "no worker ran in four VMs");
}

/* ---- kr_main ---- */

static atomic_int main_child_said;
static atomic_int main_root_done;

static void main_child(void *arg)
{
	kr_pid root = (kr_pid)(intptr_t)arg;
	VM_CHECK(kr_send(root, 9, "pong", 4) == 0, "send to root");
}

static void main_root(void *arg)
{
	kr_pid me = kr_self();
	VM_CHECK(me > 0, "kr_self in root: %lld", (long long)me);
	kr_pid c = kr_spawn(main_child, (void *)(intptr_t)me);
	VM_CHECK(c > 0, "spawn from root: %lld", (long long)c);
	kr_msg *m;
	int rc = kr_recv(&m, 10000);
	VM_CHECK(rc == 0, "root recv: %d", rc);
	if (rc == 0) {
		VM_CHECK(m->sender == c && m->tag == 9 && m->len == 4 && !memcmp(m->data, "pong", 4),
		         "root got the wrong message");
		atomic_store(&main_child_said, 1);
		kr_msg_free(m);
	}
	/* Leave children waiting: kr_main stops them with the VM. */
	for (int i = 0; i < 10; i++)
		kr_spawn(wait_for_message, NULL);
	atomic_store(&main_root_done, *(int *)arg);
}

Test(proc, kr_main_returns_zero_after_root_returns, .timeout = 60)
{
	static int token = 77;
	kr_config cfg = { .schedulers = 2 };
	int rc = kr_main(&cfg, main_root, &token);
	cr_assert_eq(rc, 0, "kr_main: %d", rc);
	vm_assert_clean();
	cr_assert_eq(atomic_load(&main_root_done), 77);
	cr_assert(atomic_load(&main_child_said));
	kr_vm_stats s;
	cr_assert_eq(kr_vm_stats_get(&s), KR_ESTOPPED, "the VM still runs after kr_main");
	/* And a VM starts again afterwards, by either door. */
	rc = kr_main(NULL, nothing, NULL);
	cr_assert_eq(rc, 0, "second kr_main: %d", rc);
	vm_start(1);
	vm_stop();
}

Test(proc, kr_main_while_a_vm_runs_is_eexist)
{
	static int arg = 5;
	vm_start(1);
	int rc = kr_main(NULL, record_self, &arg);
	cr_assert_eq(rc, KR_EEXIST, "kr_main: %d", rc);
	vm_host_sleep_ms(20);
	cr_assert_eq(atomic_load(&seen_self), 0, "kr_main ran its root in the running VM");
	vm_stop();
}

/* ---- the process heap ---- */

static atomic_int heap_done;

#define HEAP_SMALL 5000

static void heap_worker(void *arg)
{
	kr_pid me = kr_self();
	size_t h0 = vm_heap(me);
	VM_CHECK(h0 == 0, "a fresh process holds %zu heap bytes", h0);

	unsigned char *p = kr_alloc(1000);
	VM_CHECK(p != NULL, "kr_alloc(1000)");
	if (!p)
		goto out;
	VM_CHECK((uintptr_t)p % alignof(max_align_t) == 0, "kr_alloc result %p misaligned", p);
	memset(p, 0xab, 1000);
	VM_CHECK(vm_heap(me) >= 1000, "heap_bytes %zu after kr_alloc(1000)", vm_heap(me));

	unsigned char *z = kr_calloc(100, 10);
	VM_CHECK(z != NULL, "kr_calloc");
	int nonzero = 0;
	for (int i = 0; z && i < 1000; i++)
		nonzero += z[i] != 0;
	VM_CHECK(nonzero == 0, "kr_calloc memory has %d nonzero bytes", nonzero);
	VM_CHECK(vm_heap(me) >= 2000, "heap_bytes %zu with 2000 allocated", vm_heap(me));

	unsigned char *r = kr_realloc(p, 50000);
	VM_CHECK(r != NULL, "kr_realloc grow");
	if (r) {
		int lost = 0;
		for (int i = 0; i < 1000; i++)
			lost += r[i] != 0xab;
		VM_CHECK(lost == 0, "kr_realloc lost %d bytes", lost);
		memset(r, 0xcd, 50000);
		VM_CHECK(vm_heap(me) >= 51000, "heap_bytes %zu with 51000 allocated", vm_heap(me));
		p = r;
	}
	r = kr_realloc(p, 10);
	VM_CHECK(r != NULL, "kr_realloc shrink");
	if (r) {
		VM_CHECK(r[0] == 0xcd && r[9] == 0xcd, "kr_realloc shrink lost the bytes");
		p = r;
	}
	kr_free(p);
	kr_free(z);
	kr_free(NULL);
	VM_CHECK(vm_heap(me) == 0, "heap_bytes %zu after freeing everything", vm_heap(me));

	/* Many small blocks, freed in a scrambled order. */
	void **blocks = malloc(HEAP_SMALL * sizeof *blocks);
	uint32_t seed = 12345;
	for (int i = 0; i < HEAP_SMALL; i++) {
		size_t n = 1 + vm_rand(&seed) % 512;
		blocks[i] = kr_alloc(n);
		VM_CHECK(blocks[i] != NULL, "small kr_alloc %d", i);
		if (blocks[i])
			memset(blocks[i], i & 0xff, n);
		if (i % 64 == 0)
			KR_CHECK();
	}
	VM_CHECK(vm_heap(me) >= HEAP_SMALL, "heap_bytes %zu with %d blocks", vm_heap(me), HEAP_SMALL);
	for (int i = 0; i < HEAP_SMALL; i++) {
		int j = (int)(vm_rand(&seed) % HEAP_SMALL);
		void *t = blocks[i];
		blocks[i] = blocks[j];
		blocks[j] = t;
	}
	for (int i = 0; i < HEAP_SMALL; i++)
		kr_free(blocks[i]);
	free(blocks);
	VM_CHECK(vm_heap(me) == 0, "heap_bytes %zu after freeing %d blocks", vm_heap(me), HEAP_SMALL);

	/* Impossible sizes fail cleanly. */
	VM_CHECK(kr_alloc(SIZE_MAX) == NULL, "kr_alloc(SIZE_MAX)");
	VM_CHECK(kr_calloc(SIZE_MAX / 2, 4) == NULL, "kr_calloc overflow");
	VM_CHECK(vm_heap(me) == 0, "heap_bytes %zu after failed allocations", vm_heap(me));
	/* Not freed: released at exit (ASan's leak check would say). */
	for (int i = 0; i < 100; i++)
		kr_alloc(100 + (size_t)i);
out:
	atomic_store(&heap_done, 1);
}

Test(proc, heap_alloc_free_realloc_and_heap_bytes)
{
	vm_start(2);
	vm_spawn(heap_worker, NULL);
	cr_assert(VM_WAIT(atomic_load(&heap_done), 20000));
	vm_assert_clean();
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* heap_bytes seen from outside while the process holds and frees memory. */
static atomic_int held;

static void hold_then_free(void *arg)
{
	void *p = kr_alloc(4096);
	VM_CHECK(p != NULL, "kr_alloc(4096)");
	atomic_store(&held, 1);
	kr_msg *m;
	if (kr_recv(&m, KR_INFINITY) == 0)
		kr_msg_free(m);
	kr_free(p);
	atomic_store(&held, 2);
	wait_for_message(NULL);
}

Test(proc, heap_bytes_seen_from_outside)
{
	vm_start(2);
	kr_pid p = vm_spawn(hold_then_free, NULL);
	cr_assert(VM_WAIT(atomic_load(&held) == 1, 10000));
	size_t h = vm_heap(p);
	cr_assert(h >= 4096 && h != (size_t)-1, "heap_bytes %zu while holding 4096", h);
	kr_send(p, 1, "free it", 7);
	cr_assert(VM_WAIT(atomic_load(&held) == 2, 10000));
	cr_assert(VM_WAIT(vm_heap(p) == 0, 10000), "heap_bytes %zu after it freed everything",
	          vm_heap(p));
	kr_send(p, 1, NULL, 0);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* max_heap: allocations under it succeed and freeing makes room again; the
 * allocation that would pass it ends the process with heap_limit, which a
 * monitor sees. */
static atomic_long maxheap_total;
static atomic_int maxheap_down_kind = -1;

static void max_heap_worker(void *arg)
{
	void *small = kr_alloc(1000);
	VM_CHECK(small != NULL, "a small kr_alloc under max_heap failed");
	void *big = kr_alloc(32 << 10);
	VM_CHECK(big != NULL, "32 KiB under max_heap 64 KiB failed");
	kr_free(big);
	kr_free(small);
	for (;;) {
		VM_CHECK(kr_alloc(1024) != NULL, "kr_alloc returned NULL instead of ending us");
		atomic_fetch_add(&maxheap_total, 1024);
	}
}

static void max_heap_watcher(void *arg)
{
	kr_spawn_opts o = { .max_heap = 64 << 10 };
	kr_ref ref = 0;
	o.monitor = &ref;
	kr_pid p = kr_spawn_opt(max_heap_worker, NULL, &o);
	VM_CHECK(p > 0 && ref > 0, "spawn with monitor: %lld", (long long)p);
	kr_msg *m;
	int rc = kr_recv_tag(&m, KR_TAG_DOWN, 10000);
	VM_CHECK(rc == 0, "no DOWN from the process at its max_heap: %d", rc);
	if (rc)
		return;
	const kr_down_msg *d = kr_msg_down(m);
	VM_CHECK(d && d->ref == ref && d->pid == p, "a DOWN for something else");
	if (d)
		atomic_store(&maxheap_down_kind, d->reason.kind);
	kr_msg_free(m);
}

Test(proc, max_heap_ends_the_process_with_heap_limit)
{
	vm_start(1);
	vm_spawn(max_heap_watcher, NULL);
	cr_assert(VM_WAIT(atomic_load(&maxheap_down_kind) >= 0, 10000));
	vm_assert_clean();
	cr_assert_eq(atomic_load(&maxheap_down_kind), KR_EXIT_HEAP_LIMIT, "reason %s",
	             kr_exit_kind_name(atomic_load(&maxheap_down_kind)));
	long total = atomic_load(&maxheap_total);
	cr_assert(total >= 32 << 10 && total <= 64 << 10, "%ld bytes fit in max_heap 64 KiB", total);
	vm_stop();
}

/* A bigger stack through kr_spawn_opts holds a deep recursion. */
static atomic_long deep_result;

static __attribute__((noinline)) long deep_frames(int n)
{
	volatile char frame[512];
	frame[0] = (char)n;
	if (n == 0)
		return 0;
	return deep_frames(n - 1) + 1 + (frame[0] != (char)n);
}

static void deep_worker(void *arg) { atomic_store(&deep_result, deep_frames(*(int *)arg)); }

Test(proc, config_stack_size_gives_a_deeper_stack)
{
	static int depth = 600;
	kr_config cfg = { .schedulers = 2, .stack_size = 2 << 20 };
	vm_start_cfg(&cfg);
	vm_spawn(deep_worker, &depth);
	cr_assert(VM_WAIT(atomic_load(&deep_result) != 0, 10000));
	cr_assert_eq(atomic_load(&deep_result), depth);
	vm_stop();
}

Test(proc, stack_size_option_gives_a_deeper_stack)
{
	static int depth = 600; /* ~600 * 560 bytes: over 300 KiB, more under ASan */
	vm_start(2);
	kr_spawn_opts o = { .stack_size = 2 << 20 };
	kr_pid p = kr_spawn_opt(deep_worker, &depth, &o);
	cr_assert_gt(p, 0);
	cr_assert(VM_WAIT(atomic_load(&deep_result) != 0, 10000));
	cr_assert_eq(atomic_load(&deep_result), depth);
	vm_stop();
}

/* At most 8 stack sizes besides the default in one VM (krill.h): each of
 * 8 sizes works, and again, and the default asked for by its size does
 * not take a ninth place; a ninth size fails, and leaves the rest working. */
static atomic_int sizes_ran;

static void count_run(void *arg) { atomic_fetch_add(&sizes_ran, 1); }

Test(proc, eight_stack_sizes_besides_the_default_and_no_more)
{
	vm_start(2);
	int ran = 0;
	for (int round = 0; round < 2; round++) {
		for (size_t k = 1; k <= 8; k++) {
			kr_spawn_opts o = { .stack_size = (64 << 10) + k * (16 << 10) };
			cr_assert_gt(kr_spawn_opt(count_run, NULL, &o), 0, "size %zu of 8, round %d", k,
			             round);
			ran++;
		}
		kr_spawn_opts dflt = { .stack_size = 64 << 10 };
		cr_assert_gt(kr_spawn_opt(count_run, NULL, &dflt), 0, "the default size, asked for");
		ran++;
	}
	kr_spawn_opts ninth = { .stack_size = 1 << 20 };
	kr_pid p = kr_spawn_opt(count_run, NULL, &ninth);
	cr_assert_eq(p, KR_ELIMIT, "a ninth stack size: %lld", (long long)p);
	kr_spawn_opts first = { .stack_size = (64 << 10) + (16 << 10) };
	cr_assert_gt(kr_spawn_opt(count_run, NULL, &first), 0, "a size in use, after the ninth failed");
	cr_assert_gt(kr_spawn(count_run, NULL), 0);
	ran += 2;
	cr_assert(VM_WAIT(atomic_load(&sizes_ran) == ran, 10000), "%d of %d ran",
	          atomic_load(&sizes_ran), ran);
	vm_stop();
}
