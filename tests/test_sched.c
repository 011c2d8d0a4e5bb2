/*
 * test_sched.c - scheduling seen through the public API: a burst spawned on
 * one scheduler is run by all (through the inject queue it overflows to),
 * work queued behind a scheduler stuck in a long burst is stolen, KR_CHECK
 * and VM calls make a busy process share its scheduler (reductions), the
 * global queue and the ring are not starved by a ping-pong pair in the LIFO
 * slot, timers fire on time, an idle VM stays idle, the watchdog reports
 * long runs, pin binds each scheduler to its CPU, and kr_blocking keeps the
 * scheduler free and holds exit signals back. Never a speed: only lower
 * bounds on time and "it happened at all, before a generous deadline".
 *
 * Criterion asserts only on the test thread: processes record failures
 * with VM_CHECK (vm_util.h) and the test asserts vm_assert_clean().
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "krill.h"
#include "vm_util.h"

TestSuite(sched, .fini = vm_fini, .timeout = 60);

/* ---- a burst on one scheduler ends up run by every scheduler ---- */

#define BURST_N KR_TEST_MIN(10000 / KR_TEST_SCALE, KR_TEST_MAX_LIVE_CTX * 3 / 4)
#define BURST_MAX_SCHED 8
static atomic_long burst_ran_on[BURST_MAX_SCHED];
static atomic_long burst_bad_sched, burst_done, burst_spawned;
static atomic_int burst_nsched;

static void burst_child(void *arg)
{
	uint64_t x = (uintptr_t)arg;
	for (int round = 0; round < 5; round++) {
		int s = vm_my_scheduler();
		if (s >= 0 && s < atomic_load(&burst_nsched))
			atomic_fetch_add(&burst_ran_on[s], 1);
		else
			atomic_fetch_add(&burst_bad_sched, 1);
		for (int i = 0; i < 20000; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			KR_CHECK();
		}
		kr_yield();
	}
	volatile uint64_t sink = x;
	(void)sink;
	atomic_fetch_add(&burst_done, 1);
}

static void burst_spawner(void *arg)
{
	for (long i = 0; i < BURST_N; i++) {
		kr_pid p = kr_spawn(burst_child, (void *)(intptr_t)i);
		if (p <= 0) {
			VM_CHECK(p > 0, "spawn %ld: %lld", i, (long long)p);
			return;
		}
		atomic_fetch_add(&burst_spawned, 1);
	}
}

static void burst_on(unsigned n)
{
	atomic_store(&burst_nsched, (int)n);
	vm_start(n);
	vm_spawn_on(burst_spawner, NULL, 1); /* everything starts on scheduler 0 */
	cr_assert(VM_WAIT(atomic_load(&burst_done) == BURST_N || atomic_load(&vm_fails), 100000),
	          "%ld of %d done", atomic_load(&burst_done), BURST_N);
	vm_assert_clean();
	cr_assert_eq(atomic_load(&burst_bad_sched), 0, "kr_info gave a scheduler out of range");
	for (unsigned s = 0; s < n; s++)
		cr_log_info("scheduler %u ran %ld turns of %d", s, atomic_load(&burst_ran_on[s]),
		            BURST_N * 5);
	for (unsigned s = 0; s < n; s++)
		cr_assert_gt(atomic_load(&burst_ran_on[s]), 0,
		             "scheduler %u never ran any of %d processes spawned on scheduler 0", s,
		             BURST_N);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

Test(sched, a_burst_spawned_on_one_scheduler_is_run_by_both, .timeout = 120)
{
	burst_on(2);
}

Test(sched, a_burst_spawned_on_one_scheduler_is_run_by_all_four, .timeout = 120)
{
	burst_on(4); /* more schedulers than cores: stealing still spreads the work */
}

/* ---- work queued behind a long CPU burst is stolen ----
 *
 * The bursts above overflow the ring (256 tasks), and the overflow goes to
 * the inject queue, where every scheduler finds it: they pass without any
 * stealing. Here a process queues a few children on its own ring, far
 * below its size, and then computes without one krill call (not even
 * KR_CHECK) until they have all run, or for at most STEAL_BURST_S. Its own
 * scheduler cannot run them meanwhile; only another scheduler taking them
 * from that ring can. */

#define STEAL_KIDS 8
#define STEAL_BURST_S 20
static atomic_int steal_burst_sched = -1, steal_kids_ran, steal_kids_here, steal_seen;

static void steal_kid(void *arg)
{
	if (vm_my_scheduler() == atomic_load(&steal_burst_sched))
		atomic_fetch_add(&steal_kids_here, 1);
	atomic_fetch_add(&steal_kids_ran, 1);
}

static void steal_burster(void *arg)
{
	atomic_store(&steal_burst_sched, vm_my_scheduler());
	for (int i = 0; i < STEAL_KIDS; i++)
		VM_CHECK(kr_spawn(steal_kid, NULL) > 0, "spawn %d", i);
	/* The burst: no krill call until the children have run elsewhere. */
	int64_t end = vm_now_ns() + STEAL_BURST_S * (int64_t)1000000000;
	while (atomic_load(&steal_kids_ran) < STEAL_KIDS && vm_now_ns() < end &&
	       !atomic_load(&vm_abort))
		;
	atomic_store(&steal_seen, atomic_load(&steal_kids_ran) + 1);
}

Test(sched, work_queued_behind_a_long_burst_is_stolen_by_another_scheduler, .timeout = 60)
{
	/* Quiet: the watchdog reports the burst. */
	vm_start_quiet(2);
	vm_spawn(steal_burster, NULL);
	cr_assert(VM_WAIT(atomic_load(&steal_seen), (STEAL_BURST_S + 10) * 1000));
	int ran = atomic_load(&steal_seen) - 1;
	cr_assert_eq(ran, STEAL_KIDS,
	             "%d of %d processes queued behind a burst ran during its %d s: the rest were not stolen",
	             ran, STEAL_KIDS, STEAL_BURST_S);
	cr_assert_eq(atomic_load(&steal_kids_here), 0, "%d ran on the burst's own scheduler",
	             atomic_load(&steal_kids_here));
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* ---- bind_scheduler keeps a process on its scheduler ---- */

static atomic_int bound_done;
static atomic_int bound_wrong;

static void bound_worker(void *arg)
{
	int want = (int)(intptr_t)arg;
	for (int i = 0; i < 200; i++) {
		if (vm_my_scheduler() != want)
			atomic_fetch_add(&bound_wrong, 1);
		switch (i % 3) {
		case 0: kr_yield(); break;
		case 1: kr_sleep(0); break;
		default: {
			kr_msg *m;
			kr_recv(&m, 1);
		}
		}
	}
	atomic_fetch_add(&bound_done, 1);
}

Test(sched, bound_processes_stay_on_their_scheduler)
{
	vm_start(2);
	for (int i = 0; i < 8; i++)
		vm_spawn_on(bound_worker, (void *)(intptr_t)(i % 2), (unsigned)(i % 2) + 1);
	cr_assert(VM_WAIT(atomic_load(&bound_done) == 8, 20000));
	cr_assert_eq(atomic_load(&bound_wrong), 0, "%d turns on the wrong scheduler",
	             atomic_load(&bound_wrong));
	vm_stop();
}

/* ---- fairness: KR_CHECK and VM calls share one scheduler ---- */

static atomic_int fair_stop, fair_a_running, fair_b_ran;
static atomic_long fair_a_loops;

static void check_loop(void *arg)
{
	atomic_store(&fair_a_running, 1);
	long n = 0;
	while (!atomic_load_explicit(&fair_stop, memory_order_relaxed)) {
		KR_CHECK();
		n++;
	}
	atomic_store(&fair_a_loops, n);
}

static void mark_b(void *arg) { atomic_store(&fair_b_ran, 1); }

Test(sched, kr_check_in_a_loop_lets_another_process_run)
{
	vm_start(1);
	vm_spawn(check_loop, NULL);
	cr_assert(VM_WAIT(atomic_load(&fair_a_running), 10000));
	vm_spawn(mark_b, NULL); /* from the host: through the global queue */
	int ok = VM_WAIT(atomic_load(&fair_b_ran), 10000);
	atomic_store(&fair_stop, 1);
	cr_assert(ok, "a process looping on KR_CHECK kept the only scheduler to itself");
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* A bound process yields into its scheduler's inbox, which the loop looks
 * at before the run queue: it must not keep the scheduler from a process
 * in the ring. */
static void bound_check_loop(void *arg)
{
	kr_spawn(mark_b, NULL); /* into this scheduler's ring */
	check_loop(arg);
}

Test(sched, a_bound_process_looping_on_kr_check_lets_another_run)
{
	vm_start(1);
	vm_spawn_on(bound_check_loop, NULL, 1);
	int ok = VM_WAIT(atomic_load(&fair_b_ran), 10000);
	atomic_store(&fair_stop, 1);
	cr_assert(ok, "a bound process looping on KR_CHECK kept the only scheduler to itself");
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* The budget: a process yields after 4,000 reductions, and KR_CHECK costs
 * one. Beside another runnable process on one scheduler, a loop of
 * KR_CHECKs lets it run every 4,000 checks: not much sooner (a yield per
 * check would cost a switch each), not later (the other would wait). */
#define BUDGET 4000
static atomic_long budget_checks, budget_min_gap = LONG_MAX, budget_max_gap;
static atomic_int budget_stop;

static void budget_looper(void *arg)
{
	while (!atomic_load_explicit(&budget_stop, memory_order_relaxed)) {
		atomic_fetch_add_explicit(&budget_checks, 1, memory_order_relaxed);
		KR_CHECK();
	}
}

static void budget_observer(void *arg)
{
	kr_yield();
	long last = atomic_load(&budget_checks); /* the looper has run: from here on, whole turns */
	for (int turn = 0; turn < 100; turn++) {
		kr_yield();
		long now = atomic_load(&budget_checks), gap = now - last;
		last = now;
		if (gap < atomic_load(&budget_min_gap))
			atomic_store(&budget_min_gap, gap);
		if (gap > atomic_load(&budget_max_gap))
			atomic_store(&budget_max_gap, gap);
	}
	atomic_store(&budget_stop, 1);
}

Test(sched, a_process_yields_after_4000_checks)
{
	vm_start(1);
	vm_spawn(budget_looper, NULL);
	vm_spawn(budget_observer, NULL);
	cr_assert(VM_WAIT(atomic_load(&budget_stop), 10000));
	long lo = atomic_load(&budget_min_gap), hi = atomic_load(&budget_max_gap);
	cr_log_info("the looper ran %ld to %ld checks a turn", lo, hi);
	cr_assert(lo >= BUDGET - 10 && hi <= BUDGET + 10, "the looper ran %ld to %ld checks a turn, want %d",
	          lo, hi, BUDGET);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* The same from a process's spawn (the ring, not the global queue), and a
 * loop whose only krill calls are sends (reductions charged by the VM). */
static atomic_long sink_count;

static void sink(void *arg)
{
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0) {
		uint64_t tag = m->tag;
		kr_msg_free(m);
		if (tag == 0)
			return;
		atomic_fetch_add(&sink_count, 1);
	}
}

static void send_loop(void *arg)
{
	kr_pid to = (kr_pid)(intptr_t)arg;
	atomic_store(&fair_a_running, 1);
	kr_spawn(mark_b, NULL);
	while (!atomic_load_explicit(&fair_stop, memory_order_relaxed))
		kr_send(to, 1, "x", 1);
	kr_send(to, 0, NULL, 0);
}

Test(sched, a_sending_loop_lets_others_run)
{
	vm_start(1);
	kr_pid s = vm_spawn(sink, NULL);
	vm_spawn(send_loop, (void *)(intptr_t)s);
	int ok = VM_WAIT(atomic_load(&fair_b_ran) && atomic_load(&sink_count) > 1000, 10000);
	atomic_store(&fair_stop, 1);
	cr_assert(ok, "b ran: %d, sink received %ld", atomic_load(&fair_b_ran),
	          atomic_load(&sink_count));
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* ---- a ping-pong pair must not starve the ring, the global queue, timers ---- */

static atomic_int pp_stop;
static atomic_long pp_rounds;
static atomic_int pp_ring_ran, pp_host_ran, pp_timer_ticks, pp_mail_got;

static void ring_child(void *arg) { atomic_store(&pp_ring_ran, 1); }
static void host_child(void *arg) { atomic_store(&pp_host_ran, 1); }

static void ticker(void *arg)
{
	for (int i = 0; i < 10; i++) {
		kr_sleep(2);
		atomic_fetch_add(&pp_timer_ticks, 1);
	}
}

static void mail_waiter(void *arg)
{
	kr_msg *m;
	if (kr_recv(&m, KR_INFINITY) == 0) {
		kr_msg_free(m);
		atomic_store(&pp_mail_got, 1);
	}
}

static void pong(void *arg)
{
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0) {
		kr_pid from = m->sender;
		uint64_t tag = m->tag;
		kr_msg_free(m);
		if (tag == 0)
			return;
		kr_send(from, 1, NULL, 0);
	}
}

static void ping(void *arg)
{
	kr_pid peer = (kr_pid)(intptr_t)arg;
	kr_msg *m;
	for (long i = 0; !atomic_load(&pp_stop) && !atomic_load(&vm_abort); i++) {
		if (i == 1000)
			kr_spawn(ring_child, NULL);
		kr_send(peer, 1, NULL, 0);
		if (kr_recv(&m, 10000) != 0) {
			VM_CHECK(0, "ping lost its pong after %ld rounds", i);
			break;
		}
		kr_msg_free(m);
		atomic_fetch_add(&pp_rounds, 1);
	}
	kr_send(peer, 0, NULL, 0);
}

Test(sched, ping_pong_starves_neither_ring_nor_global_queue_nor_timers)
{
	vm_start(1);
	kr_pid waiter = vm_spawn(mail_waiter, NULL);
	kr_pid po = vm_spawn(pong, NULL);
	vm_spawn(ping, (void *)(intptr_t)po);
	cr_assert(VM_WAIT(atomic_load(&pp_rounds) > 2000, 10000));
	vm_spawn(ticker, NULL);
	vm_spawn(host_child, NULL);
	kr_send(waiter, 1, NULL, 0);
	int ok = VM_WAIT(atomic_load(&pp_ring_ran) && atomic_load(&pp_host_ran) &&
	                         atomic_load(&pp_timer_ticks) == 10 && atomic_load(&pp_mail_got),
	                 15000);
	atomic_store(&pp_stop, 1);
	cr_assert(ok,
	          "beside a ping-pong pair on one scheduler: spawned by a process ran %d, "
	          "spawned by the host ran %d, timer ticks %d/10, host message received %d",
	          atomic_load(&pp_ring_ran), atomic_load(&pp_host_ran), atomic_load(&pp_timer_ticks),
	          atomic_load(&pp_mail_got));
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_assert_clean();
	vm_stop();
}

/* ---- a task spilled from a full run queue is not starved by later ones ----
 *
 * More yielders than a run queue holds, on one scheduler: the ring keeps
 * the ones that yield back into it and spills the oldest to the inject
 * queue, from which one task in 61 ticks used to come. Every run bumps one
 * counter; the gap between a yielder's runs, counted in runs (not time, so
 * a slow or preempted machine only helps), is its wait. In a fair queue it
 * is about the number of yielders; while spilled tasks waited for the
 * 61-tick look it was about 61 times that. The inject queue's head is
 * served every other tick once it is overdue (0.5 ms), so the bound allows
 * 20 times the fair wait. */

#define SPILL_N KR_TEST_MIN(5000 / KR_TEST_SCALE, KR_TEST_MAX_LIVE_CTX * 3 / 4)
#define SPILL_ROUNDS 40
static atomic_long spill_started, spill_runs, spill_max_gap, spill_done;

static void spill_yielder(void *arg)
{
	atomic_fetch_add(&spill_started, 1);
	/* Gaps count only once every yielder is in the queues. */
	while (atomic_load(&spill_started) < SPILL_N && !atomic_load(&vm_abort))
		kr_yield();
	long last = atomic_fetch_add(&spill_runs, 1), worst = 0;
	for (int round = 0; round < SPILL_ROUNDS; round++) {
		kr_yield();
		long now = atomic_fetch_add(&spill_runs, 1);
		if (now - last > worst)
			worst = now - last;
		last = now;
	}
	for (long seen = atomic_load(&spill_max_gap);
	     worst > seen && !atomic_compare_exchange_weak(&spill_max_gap, &seen, worst);)
		;
	atomic_fetch_add(&spill_done, 1);
}

static void spill_spawner(void *arg)
{
	for (long i = 0; i < SPILL_N; i++)
		if (kr_spawn(spill_yielder, NULL) <= 0) {
			VM_CHECK(0, "spawn %ld failed", i);
			atomic_store(&vm_abort, 1);
			return;
		}
}

Test(sched, a_task_spilled_from_a_full_run_queue_is_not_starved, .timeout = 120)
{
	vm_start(1);
	vm_spawn(spill_spawner, NULL);
	cr_assert(VM_WAIT(atomic_load(&spill_done) == SPILL_N || atomic_load(&vm_fails), 100000),
	          "%ld of %d yielders done", atomic_load(&spill_done), SPILL_N);
	vm_assert_clean();
	long gap = atomic_load(&spill_max_gap);
	cr_log_info("%d yielders on one scheduler: the longest wait was %ld runs of others", SPILL_N,
	            gap);
	cr_assert_lt(gap, 20L * SPILL_N,
	             "a yielder waited %ld runs of others with %d yielders (fair: about %d)", gap,
	             SPILL_N, SPILL_N);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* ---- a task woken into the LIFO slot is not held by a computing waker ----
 *
 * The waker (a worker reporting to its supervisor, say) goes on computing,
 * with KR_CHECK now and then, while another scheduler idles. Its partner
 * waits in the LIFO slot, where no other scheduler looks; it must run long
 * before the waker's full budget (4,000 reductions) is spent. Counted in
 * the waker's checks, not in time.
 *
 * "While another scheduler idles" must hold when the waker wakes its
 * partner: on a busy machine the second scheduler's thread may not have
 * started yet, or may be preempted half-way to parking, and then there is
 * no idle scheduler to hand the waker to. So the waker first waits until
 * that thread is parked: asleep in the kernel (/proc says 'S') and using
 * no CPU, at five looks a millisecond apart (a thread that only waits for
 * a lock a moment, qemu's own included, is asleep too, but not for long).
 * After that nothing in this test wakes it. */

static atomic_int leash_partner_ran;
static atomic_long leash_checks_before, leash_checks, leash_other_tid;

/* The state of thread tid of this program, as /proc shows it ('R'
 * running or runnable, 'S' asleep ...), or 0 if it cannot be read; and in
 * *cpu_ns the CPU time it has used. */
static char thread_state(long tid, unsigned long long *cpu_ns)
{
	char path[64], buf[512];
	*cpu_ns = 0;
	snprintf(path, sizeof path, "/proc/self/task/%ld/schedstat", tid);
	FILE *f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%llu", cpu_ns) != 1)
			*cpu_ns = 0;
		fclose(f);
	}
	snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *paren = strrchr(buf, ')'); /* the name may hold spaces */
	return paren && paren[1] == ' ' ? paren[2] : 0;
}

/* Is thread tid parked? Asleep at five looks a millisecond apart, with no
 * CPU used between them. From a process: it sleeps between the looks. */
static bool thread_parked(long tid)
{
	unsigned long long cpu, was = 0;
	for (int look = 0; look < 5; look++) {
		if (look)
			kr_sleep(1);
		if (thread_state(tid, &cpu) != 'S' || (look && cpu != was))
			return false;
		was = cpu;
	}
	return true;
}

static void leash_tid(void *arg)
{
	atomic_store(&leash_other_tid, (long)syscall(SYS_gettid));
}

static void leash_partner(void *arg)
{
	kr_msg *m;
	if (kr_recv(&m, 10000) == 0) {
		kr_msg_free(m);
		atomic_store(&leash_checks_before, atomic_load(&leash_checks));
		atomic_store(&leash_partner_ran, 1);
	}
}

static void leash_waker(void *arg)
{
	kr_pid partner = (kr_pid)(intptr_t)arg;
	long tid;
	while (!(tid = atomic_load(&leash_other_tid)) && !atomic_load(&vm_abort))
		kr_sleep(1);
	/* The partner waits in its receive, and the other scheduler is
	 * parked. */
	int64_t end = vm_now_ns() + 20 * (int64_t)1000000000;
	bool parked;
	while (!(parked = thread_parked(tid)) && vm_now_ns() < end && !atomic_load(&vm_abort))
		kr_sleep(1);
	VM_CHECK(parked, "the idle scheduler's thread never went to sleep");
	VM_CHECK(vm_status(partner) == KR_WAITING, "the partner is not in its receive");
	kr_send(partner, 1, NULL, 0);
	for (long i = 0; i < 8000 && !atomic_load(&vm_abort); i++) {
		vm_spin_us(5);
		atomic_fetch_add(&leash_checks, 1);
		KR_CHECK();
	}
}

Test(sched, a_computing_waker_does_not_hold_its_partner_in_the_lifo_slot, .timeout = 60)
{
	vm_start(2);
	/* The second scheduler's thread, named by a process that ran on it. */
	vm_spawn_on(leash_tid, NULL, 2);
	/* Both on the first scheduler: the partner is woken into the waker's
	 * LIFO slot, and the second scheduler idles. */
	kr_pid partner = vm_spawn_on(leash_partner, NULL, 1);
	vm_spawn_on(leash_waker, (void *)(intptr_t)partner, 1);
	cr_assert(VM_WAIT(atomic_load(&leash_partner_ran), 40000), "the partner never ran");
	long before = atomic_load(&leash_checks_before);
	cr_log_info("the partner ran after %ld of the waker's checks", before);
	cr_assert_lt(before, 1000, "the partner waited %ld of the waker's checks", before);
	cr_assert(VM_WAIT(vm_alive() == 0, 20000));
	vm_stop();
}

/* ---- many timers ---- */

#define TIMERS_N KR_TEST_MIN(2000 / KR_TEST_SCALE, KR_TEST_MAX_LIVE_CTX / 2)
static atomic_int timers_done;

static void timed_sleeper(void *arg)
{
	long ms = 1 + (long)(intptr_t)arg % 50;
	int64_t t0 = vm_now_ns();
	kr_sleep(ms);
	double took = vm_ms_since(t0);
	VM_CHECK(took >= (double)ms, "kr_sleep(%ld) woke after %.3f ms", ms, took);
	t0 = vm_now_ns();
	kr_msg *m;
	int rc = kr_recv(&m, ms);
	took = vm_ms_since(t0);
	VM_CHECK(rc == KR_ETIMEDOUT, "kr_recv(%ld) with no mail: %d", ms, rc);
	VM_CHECK(took >= (double)ms, "kr_recv(%ld) timed out after %.3f ms", ms, took);
	atomic_fetch_add(&timers_done, 1);
}

Test(sched, many_timers_fire_no_earlier_than_asked)
{
	vm_start(2);
	for (long i = 0; i < TIMERS_N; i++)
		vm_spawn(timed_sleeper, (void *)(intptr_t)(i * 37));
	cr_assert(VM_WAIT(atomic_load(&timers_done) == TIMERS_N, 30000), "%d of %d timers done",
	          atomic_load(&timers_done), TIMERS_N);
	vm_assert_clean();
	vm_stop();
}

/* ---- an idle VM is idle ---- */

/* CPU burnt by the whole test process over 2 s of doing nothing. */
static double idle_cpu_over_two_seconds(void)
{
	vm_host_sleep_ms(200); /* let spinning schedulers park */
	double c0 = vm_cpu_ms();
	vm_host_sleep_ms(2000);
	return vm_cpu_ms() - c0;
}

/* 1% of one core over 2 s. */
#define IDLE_BUDGET_MS 20.0

Test(sched, an_idle_vm_burns_under_one_percent_of_a_core, .timeout = 30)
{
	vm_start(0);
	double used = idle_cpu_over_two_seconds();
	cr_log_info("idle VM: %.2f ms of CPU in 2 s", used);
	cr_assert_lt(used, IDLE_BUDGET_MS, "an idle VM used %.1f ms of CPU in 2 s", used);
	vm_stop();
}

static void idle_after_work(void *arg)
{
	for (int i = 0; i < 1000; i++)
		kr_yield();
}

Test(sched, a_vm_with_waiting_and_sleeping_processes_is_idle, .timeout = 30)
{
	vm_start(0);
	/* Work that ends, then processes that wait a long time. */
	for (int i = 0; i < 100; i++)
		vm_spawn(idle_after_work, NULL);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	for (int i = 0; i < 10; i++)
		vm_spawn(sink, NULL); /* in kr_recv(INFINITY) */
	for (int i = 0; i < 10; i++)
		vm_spawn(ticker, NULL); /* a few short sleeps, then gone */
	double used = idle_cpu_over_two_seconds();
	cr_log_info("VM with waiting processes: %.2f ms of CPU in 2 s", used);
	cr_assert_lt(used, IDLE_BUDGET_MS + 10.0, "used %.1f ms of CPU in 2 s", used);
	vm_stop();
}

/* ---- the watchdog ---- */

#define LOG_LINES 64
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_lines[LOG_LINES][256];
static int log_n;

static void capture_log(const char *line, void *ctx)
{
	pthread_mutex_lock(&log_lock);
	if (ctx == (void *)&log_n && log_n < LOG_LINES)
		snprintf(log_lines[log_n], sizeof log_lines[0], "%s", line);
	log_n++;
	pthread_mutex_unlock(&log_lock);
}

static int log_count(void)
{
	pthread_mutex_lock(&log_lock);
	int n = log_n;
	pthread_mutex_unlock(&log_lock);
	return n;
}

static atomic_int busy_done;
static atomic_long busy_cpu_us; /* CPU the busy process had used when it saw a report */

static int64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Busy for arg ms of this thread's CPU time, with no krill call, not even
 * KR_CHECK. CPU time, not wall time: the watchdog counts CPU time, and on a
 * loaded machine (the other test job, the sanitizers, qemu) a 400 ms spin
 * by the clock got less than the 200 ms of CPU it takes to be reported. */
static void busy_no_yield(void *arg)
{
	int64_t end = thread_cpu_ns() + (int64_t)(intptr_t)arg * 1000000;
	while (thread_cpu_ns() < end)
		;
	atomic_store(&busy_done, 1);
}

/* Busy with no krill call until the watchdog has reported it (or for at
 * most arg ms of CPU), and say how much CPU it had used by then. A run of
 * a fixed length is reported only if the watchdog thread gets two looks
 * at it far enough apart, which a loaded machine may deny it: a 30 ms run
 * once went unreported. Running until the report comes waits for what the
 * test asserts. */
static void busy_until_reported(void *arg)
{
	int64_t t0 = thread_cpu_ns(), end = t0 + (int64_t)(intptr_t)arg * 1000000;
	while (log_count() == 0 && thread_cpu_ns() < end)
		;
	atomic_store(&busy_cpu_us, (long)((thread_cpu_ns() - t0) / 1000));
	atomic_store(&busy_done, 1);
}

/* Run busy_until_reported (named busy_bee) and check its report: not
 * before the process had run limit_ms of CPU (less the 50 us the watchdog's
 * first look may come before the process reads its clock), and before it
 * had run a second more than that (a limit read in the wrong unit, a
 * watchdog left asleep). No tighter: the watchdog looks at wall-clock
 * intervals, and on a loaded machine its thread waits for a CPU while the
 * busy one runs; with eight copies of this test and three CPU hogs on two
 * cores, a 10 ms limit was reported after up to 325 ms of CPU. */
static void expect_report(unsigned limit_ms)
{
	atomic_store(&busy_done, 0);
	kr_spawn_opts o = { .name = "busy_bee" };
	kr_pid p = kr_spawn_opt(busy_until_reported, (void *)(intptr_t)(limit_ms + 5000), &o);
	cr_assert_gt(p, 0);
	cr_assert(VM_WAIT(atomic_load(&busy_done), 60000));
	long cpu_us = atomic_load(&busy_cpu_us), cpu = cpu_us / 1000;
	cr_assert_gt(log_count(), 0, "no watchdog report after %ld ms of CPU without yielding (limit %u)",
	             cpu, limit_ms);
	cr_log_info("reported after %ld ms of CPU (limit %u ms)", cpu, limit_ms);
	cr_assert_geq(cpu_us, limit_ms * 1000L - 50, "reported after %ld us of CPU, under the limit of %u ms",
	              cpu_us, limit_ms);
	cr_assert_lt(cpu, limit_ms + 1000L, "reported only after %ld ms of CPU (limit %u ms)", cpu,
	             limit_ms);
	pthread_mutex_lock(&log_lock);
	int named = 0;
	for (int i = 0; i < log_n && i < LOG_LINES; i++) {
		cr_log_info("watchdog: %s", log_lines[i]);
		named |= strstr(log_lines[i], "busy_bee") != NULL;
	}
	pthread_mutex_unlock(&log_lock);
	cr_assert(named, "the report does not name the process (busy_bee)");
}

Test(sched, watchdog_reports_a_process_that_runs_past_10ms_without_yielding)
{
	kr_config cfg = { .schedulers = 2, .log = capture_log, .log_ctx = &log_n };
	vm_start_cfg(&cfg);
	expect_report(10);
	vm_stop();
}

/* The same after the VM sat idle for a while (the watchdog must not be
 * asleep on an idle back-off when the long run comes). */
Test(sched, watchdog_reports_a_long_run_after_the_vm_was_idle)
{
	kr_config cfg = { .schedulers = 2, .log = capture_log, .log_ctx = &log_n };
	vm_start_cfg(&cfg);
	vm_host_sleep_ms(1500);
	expect_report(10);
	vm_stop();
}

/* With a higher limit, a shorter run is not reported, nor a process that
 * yields through KR_CHECK; a longer run is. */
static void yielding_busy(void *arg)
{
	int64_t end = vm_now_ns() + 300 * 1000000LL;
	while (vm_now_ns() < end)
		for (int i = 0; i < 100; i++)
			KR_CHECK();
	atomic_store(&busy_done, 1);
}

Test(sched, watchdog_respects_watchdog_ms_and_ignores_processes_that_yield)
{
	kr_config cfg = { .schedulers = 2, .watchdog_ms = 200, .log = capture_log,
		          .log_ctx = &log_n };
	vm_start_cfg(&cfg);
	vm_spawn(busy_no_yield, (void *)(intptr_t)20);
	cr_assert(VM_WAIT(atomic_load(&busy_done), 10000));
	atomic_store(&busy_done, 0);
	vm_spawn(yielding_busy, NULL); /* 300 ms of work, yielding through KR_CHECK */
	cr_assert(VM_WAIT(atomic_load(&busy_done), 10000));
	vm_host_sleep_ms(300);
	cr_assert_eq(log_count(), 0, "reported with watchdog_ms 200: %s", log_lines[0]);
	expect_report(200);
	vm_stop();
}

/* ---- kr_blocking ---- */

static atomic_long blk_progress;
static atomic_long blk_progress_during;
static atomic_int blk_status_during;
static atomic_llong blk_caller;
static atomic_int blk_stop;
static pthread_t blk_fn_thread, blk_proc_thread;
static atomic_long blk_result;

static long blocking_fn(void *arg)
{
	blk_fn_thread = pthread_self();
	long before = atomic_load(&blk_progress);
	/* The caller is parked meanwhile: waiting, not running. */
	vm_host_sleep_ms(20);
	atomic_store(&blk_status_during, vm_status((kr_pid)atomic_load(&blk_caller)));
	vm_host_sleep_ms(30);
	atomic_store(&blk_progress_during, atomic_load(&blk_progress) - before);
	return (long)(intptr_t)arg;
}

static pthread_t (*volatile fresh_pthread_self)(void) = pthread_self;

static void blocking_caller(void *arg)
{
	atomic_store(&blk_caller, kr_self());
	blk_proc_thread = fresh_pthread_self();
	long r = kr_blocking(blocking_fn, (void *)(intptr_t)-123456789L);
	atomic_store(&blk_result, r);
	atomic_store(&blk_stop, 1);
}

static void progress_maker(void *arg)
{
	while (!atomic_load(&blk_stop) && !atomic_load(&vm_abort)) {
		atomic_fetch_add(&blk_progress, 1);
		kr_yield();
	}
}

Test(sched, kr_blocking_runs_elsewhere_while_others_progress)
{
	vm_start(1);
	vm_spawn(progress_maker, NULL);
	vm_spawn(blocking_caller, NULL);
	cr_assert(VM_WAIT(atomic_load(&blk_stop), 10000));
	cr_assert_eq(atomic_load(&blk_result), -123456789L, "kr_blocking returned %ld",
	             atomic_load(&blk_result));
	cr_assert(!pthread_equal(blk_fn_thread, blk_proc_thread), "fn ran on the scheduler thread");
	cr_assert_gt(atomic_load(&blk_progress_during), 0,
	             "no other process ran on the only scheduler during a 50 ms kr_blocking");
	cr_assert_eq(atomic_load(&blk_status_during), KR_WAITING, "the caller's status was %d",
	             atomic_load(&blk_status_during));
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

#define BLK_MANY 32
static atomic_int blk_many_ok;

static long blk_small(void *arg)
{
	usleep(2000);
	return (long)(intptr_t)arg * 2;
}

static void blocking_many(void *arg)
{
	long id = (long)(intptr_t)arg;
	for (int i = 0; i < 5; i++) {
		long r = kr_blocking(blk_small, (void *)(intptr_t)(id * 10 + i));
		VM_CHECK(r == (id * 10 + i) * 2, "kr_blocking returned %ld, want %ld", r, (id * 10 + i) * 2);
	}
	atomic_fetch_add(&blk_many_ok, 1);
}

Test(sched, many_processes_in_kr_blocking_at_once)
{
	vm_start(2);
	for (long i = 0; i < BLK_MANY; i++)
		vm_spawn(blocking_many, (void *)(intptr_t)i);
	cr_assert(VM_WAIT(atomic_load(&blk_many_ok) == BLK_MANY, 30000), "%d of %d done",
	          atomic_load(&blk_many_ok), BLK_MANY);
	vm_assert_clean();
	vm_stop();
}

/* kr_blocking(NULL) is KR_EINVAL, from a process and from a host thread. */
static atomic_int blk_null_rc = 1;

static void blocking_null(void *arg) { atomic_store(&blk_null_rc, (int)kr_blocking(NULL, arg)); }

Test(sched, kr_blocking_without_fn_is_einval)
{
	vm_start(1);
	cr_assert_eq(kr_blocking(NULL, NULL), KR_EINVAL, "from a host thread");
	vm_spawn(blocking_null, NULL);
	cr_assert(VM_WAIT(atomic_load(&blk_null_rc) != 1, 10000));
	cr_assert_eq(atomic_load(&blk_null_rc), KR_EINVAL, "from a process: %d",
	             atomic_load(&blk_null_rc));
	vm_stop();
}

/* An exit signal that comes while fn runs waits for fn to return: the
 * process is alive all the while (its job is on its stack), and ends as
 * kr_blocking returns, before its next line. */
static atomic_llong blkx_pid;
static atomic_int blkx_fn_running, blkx_signalled, blkx_alive_in_fn = -1, blkx_after, blkx_kind = -1;

static long blkx_fn(void *arg)
{
	atomic_store(&blkx_fn_running, 1);
	while (!atomic_load(&blkx_signalled) && !atomic_load(&vm_abort))
		vm_host_sleep_ms(1);
	vm_host_sleep_ms(50); /* time for a signal that wrongly acts at once */
	atomic_store(&blkx_alive_in_fn, kr_is_alive((kr_pid)atomic_load(&blkx_pid)));
	return 7;
}

static void blkx_caller(void *arg)
{
	atomic_store(&blkx_pid, kr_self());
	long r = kr_blocking(blkx_fn, NULL);
	atomic_store(&blkx_after, (int)r); /* never: ended as kr_blocking returns */
}

static void blkx_watcher(void *arg)
{
	kr_ref ref;
	kr_spawn_opts o = { .monitor = &ref };
	VM_CHECK(kr_spawn_opt(blkx_caller, NULL, &o) > 0, "spawn");
	kr_msg *m;
	if (kr_recv_tag(&m, KR_TAG_DOWN, 20000) != 0)
		return;
	atomic_store(&blkx_kind, kr_msg_down(m)->reason.kind);
	kr_msg_free(m);
}

Test(sched, kr_blocking_holds_an_exit_signal_until_fn_returns)
{
	vm_start_quiet(2);
	vm_spawn(blkx_watcher, NULL);
	cr_assert(VM_WAIT(atomic_load(&blkx_fn_running), 10000));
	cr_assert_eq(kr_exit_sig((kr_pid)atomic_load(&blkx_pid), KR_EXIT_KILL), 0);
	atomic_store(&blkx_signalled, 1);
	cr_assert(VM_WAIT(atomic_load(&blkx_kind) != -1, 20000), "the caller never ended");
	cr_assert_eq(atomic_load(&blkx_alive_in_fn), 1, "the process ended while fn ran");
	cr_assert_eq(atomic_load(&blkx_after), 0, "the process ran on after kr_blocking returned");
	cr_assert_eq(atomic_load(&blkx_kind), KR_EXIT_KILLED, "its reason: %s",
	             kr_exit_kind_name(atomic_load(&blkx_kind)));
	vm_stop();
}

/* ---- configuration ---- */

Test(sched, schedulers_zero_means_online_cpus)
{
	vm_start(0);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	cr_assert_eq(vm_stats().schedulers, (size_t)cpus);
	vm_stop();
}

/* pin: scheduler i runs on CPU i and nowhere else, as its processes see
 * from inside (their thread is the scheduler's); unpinned, a scheduler may
 * run wherever the program may. */
static cpu_set_t pin_mask[2];
static atomic_int pin_cpu[2], pin_seen;

static void pin_look(void *arg)
{
	int i = (int)(intptr_t)arg;
	VM_CHECK(vm_my_scheduler() == i, "bound to scheduler %d, runs on %d", i, vm_my_scheduler());
	VM_CHECK(sched_getaffinity(0, sizeof pin_mask[i], &pin_mask[i]) == 0, "sched_getaffinity: %s",
	         strerror(errno));
	atomic_store(&pin_cpu[i], sched_getcpu());
	atomic_fetch_add(&pin_seen, 1);
}

static void pin_run(int pin)
{
	atomic_store(&pin_seen, 0);
	kr_config cfg = { .schedulers = 2, .pin = pin };
	vm_start_cfg(&cfg);
	for (int i = 0; i < 2; i++)
		vm_spawn_on(pin_look, (void *)(intptr_t)i, (unsigned)i + 1);
	cr_assert(VM_WAIT(atomic_load(&pin_seen) == 2, 10000));
	vm_stop();
}

Test(sched, pin_binds_scheduler_i_to_cpu_i)
{
	cpu_set_t mine;
	cr_assert_eq(sched_getaffinity(0, sizeof mine, &mine), 0);
	if (!CPU_ISSET(0, &mine) || !CPU_ISSET(1, &mine))
		cr_skip_test("this program may not run on both CPU 0 and CPU 1");
	pin_run(1);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(CPU_COUNT(&pin_mask[i]), 1, "scheduler %d may run on %d CPUs with pin", i,
		             CPU_COUNT(&pin_mask[i]));
		cr_assert(CPU_ISSET(i, &pin_mask[i]), "scheduler %d is pinned to another CPU", i);
		cr_assert_eq(atomic_load(&pin_cpu[i]), i, "scheduler %d ran on CPU %d", i,
		             atomic_load(&pin_cpu[i]));
	}
	pin_run(0);
	for (int i = 0; i < 2; i++)
		cr_assert(CPU_EQUAL(&pin_mask[i], &mine),
		          "unpinned scheduler %d may run on %d CPUs, the program on %d", i,
		          CPU_COUNT(&pin_mask[i]), CPU_COUNT(&mine));
}
