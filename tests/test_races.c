/*
 * test_races.c - regressions for races found by reading krill's lock-free
 * code against its own ordering arguments (issue 11), each sized to hit its
 * window in seconds on 2 schedulers:
 *  - a receive or I/O timer outliving its process and firing into the next
 *    process in the same table slot;
 *  - a dead pid reaching a later process in the same slot;
 *  - an exit signal (a kill) lost by a process that was taking another in;
 *  - a host thread calling into a VM that kr_vm_start is still publishing
 *    (caught by the TSan build);
 *  - the mailbox length of a new process counting its predecessor's message;
 *  - the stack pool handing one stack out twice.
 *
 * Slot reuse: krill reuses a freed process slot only after a thousand
 * others (proc.c), so that pids live long. Tests of what happens when a
 * slot *is* reused ask for quick reuse through krx_slot_policy (a free
 * slot is handed out again at once), which is how krill behaved when
 * these races were found.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "krill.h"
#include "proc.h"
#include "stack.h"
#include "vm_util.h"

TestSuite(races, .fini = vm_fini, .timeout = 120);

static void fast_reuse(void)
{
	krx_slot_policy = (krx_slot_policy_t){ .batch = 1, .cool = 0 };
}

static void default_reuse(void)
{
	krx_slot_policy = KRX_SLOT_POLICY_DEFAULT;
}

static void reuse_fini(void)
{
	vm_fini();
	default_reuse();
}

static uint64_t index_of(kr_pid p)
{
	return KRX_PID_INDEX(p);
}

/* ---- a timer outliving its process ---- */

static atomic_int stale_result;
static atomic_int stale_io_fd;

/* Waits with a timeout, is woken early, and ends: its timer is still
 * pending when the slot's next process parks. */
static void early_woken_receiver(void *arg)
{
	(void)arg;
	kr_msg *m;
	int rc = kr_recv(&m, 400);
	VM_CHECK(rc == 0, "the first receive: %d", rc);
}

static void forever_receiver(void *arg)
{
	(void)arg;
	kr_msg *m;
	atomic_store(&stale_result, 1);
	int rc = kr_recv(&m, KR_INFINITY);
	atomic_store(&stale_result, rc == 0 ? 2 : rc);
}

static void early_woken_io_waiter(void *arg)
{
	(void)arg;
	int fd = atomic_load(&stale_io_fd);
	int r = kr_wait_fd(fd, KR_READABLE, 400);
	VM_CHECK(r == (int)KR_READABLE, "the first wait: %d", r);
	char c;
	VM_CHECK(read(fd, &c, 1) == 1, "read"); /* the next waiter waits for good */
}

static void forever_io_waiter(void *arg)
{
	(void)arg;
	atomic_store(&stale_result, 1);
	int r = kr_wait_fd(atomic_load(&stale_io_fd), KR_READABLE, KR_INFINITY);
	atomic_store(&stale_result, r == (int)KR_READABLE ? 2 : r);
}

/* The root: run first, wake it early (fns[2], or a message), let it end,
 * then spawn until a process lands in its slot, and run second there. */
static void same_slot_driver(void *arg)
{
	kr_fn **fns = arg;
	kr_ref ref;
	kr_spawn_opts o = { .monitor = &ref };
	kr_pid p1 = kr_spawn_opt(fns[0], NULL, &o);
	VM_CHECK(p1 > 0, "spawn: %lld", (long long)p1);
	kr_yield(); /* it parks, its timer armed */
	if (fns[2])
		fns[2](NULL);
	else
		kr_send(p1, 1, "x", 1);
	kr_msg *m;
	VM_CHECK(kr_recv_tag(&m, KR_TAG_DOWN, 5000) == 0, "no DOWN from the first");
	/* One scheduler: the first's exit path has run, its slot is free,
	 * and with quick reuse the next spawn takes it. */
	kr_pid p2 = kr_spawn(fns[1], NULL);
	VM_CHECK(index_of(p2) == index_of(p1), "the second process is in slot %llu, not %llu",
	         (unsigned long long)index_of(p2), (unsigned long long)index_of(p1));
}

static int io_pair[2];

static void wake_first_io(void *arg)
{
	(void)arg;
	VM_CHECK(write(io_pair[1], "x", 1) == 1, "write");
}

static void run_same_slot(kr_fn *first, kr_fn *second, kr_fn *wake)
{
	fast_reuse();
	vm_start_quiet(1);
	atomic_store(&stale_result, 0);
	kr_fn *fns[3] = { first, second, wake };
	vm_spawn(same_slot_driver, fns);
	cr_assert(VM_WAIT(atomic_load(&stale_result) != 0, 10000), "the second never started");
	/* Past the first's deadline: its timer has fired by now, if it was
	 * going to. */
	vm_host_sleep_ms(700);
	vm_assert_clean();
	cr_assert_eq(atomic_load(&stale_result), 1,
	             "the second process's infinite wait returned %d: the first's timer fired into it",
	             atomic_load(&stale_result));
	vm_stop();
	default_reuse();
}

Test(races, a_receive_timer_never_fires_into_the_next_process_in_its_slot, .fini = reuse_fini)
{
	run_same_slot(early_woken_receiver, forever_receiver, NULL);
}

Test(races, an_io_timer_never_fires_into_the_next_process_in_its_slot, .fini = reuse_fini)
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, io_pair), 0);
	atomic_store(&stale_io_fd, io_pair[0]);
	run_same_slot(early_woken_io_waiter, forever_io_waiter, wake_first_io);
	close(io_pair[0]);
	close(io_pair[1]);
}

/* ---- a dead pid reaching a later process in its slot ---- */

#define REUSE_SPAWNS (20000 / VM_LIGHT_DIV)
#define REUSE_GAP 1000

static void and_end(void *arg)
{
	(void)arg;
}

/* Spawn one process at a time, wait for its end, and tell how soon any
 * slot came back: krill promises pids that outlive their processes for a
 * long time, so a slot must not come back after a few spawns. */
static void slot_churn(void *arg)
{
	(void)arg;
	static int last_seen[1 << 16];
	memset(last_seen, 0xff, sizeof last_seen);
	int shortest = REUSE_SPAWNS;
	for (int i = 0; i < REUSE_SPAWNS; i++) {
		kr_ref ref;
		kr_spawn_opts o = { .monitor = &ref };
		kr_pid p = kr_spawn_opt(and_end, NULL, &o);
		kr_msg *m;
		VM_CHECK(p > 0 && kr_recv_tag(&m, KR_TAG_DOWN, 5000) == 0, "spawn %d", i);
		uint64_t idx = index_of(p);
		VM_CHECK(idx < (1u << 16), "slot %llu", (unsigned long long)idx);
		if (idx >= (1u << 16))
			return;
		if (last_seen[idx] >= 0 && i - last_seen[idx] < shortest)
			shortest = i - last_seen[idx];
		last_seen[idx] = i;
	}
	VM_CHECK(shortest >= REUSE_GAP, "a slot came back after %d spawns", shortest);
}

Test(races, a_freed_slot_comes_back_only_after_a_thousand_spawns)
{
	vm_start(1);
	kr_pid p = vm_spawn(slot_churn, NULL);
	cr_assert(VM_WAIT(!kr_is_alive(p), 60000));
	vm_assert_clean();
	vm_stop();
}

#define SERIAL_WRAP (1 << 16) /* what the mailbox word keeps of a serial */

static atomic_int stale_got;

static void stale_target(void *arg)
{
	(void)arg;
	kr_msg *m;
	if (kr_recv(&m, 300) == 0)
		atomic_fetch_add(&stale_got, 1);
}

/* Even when a slot comes back at once, a pid whose serial matches the new
 * process's in the bits the mailbox word keeps must not reach it: not a
 * message, not a kill, not a link or a monitor. */
static void stale_pid_driver(void *arg)
{
	(void)arg;
	kr_ref ref;
	kr_spawn_opts o = { .monitor = &ref };
	kr_pid old = kr_spawn_opt(and_end, NULL, &o);
	kr_msg *m;
	VM_CHECK(kr_recv_tag(&m, KR_TAG_DOWN, 5000) == 0, "no DOWN");
	kr_pid p = old;
	for (int i = 1; i < SERIAL_WRAP; i++) {
		p = kr_spawn_opt(and_end, NULL, &o);
		if (kr_recv_tag(&m, KR_TAG_DOWN, 5000) == 0)
			kr_msg_free(m);
		if (index_of(p) != index_of(old))
			break;
	}
	VM_CHECK(index_of(p) == index_of(old), "the slot did not come back at once");
	kr_pid target = kr_spawn(stale_target, NULL);
	VM_CHECK(index_of(target) == index_of(old) &&
	                 KRX_PID_SERIAL(target) == KRX_PID_SERIAL(old) + SERIAL_WRAP,
	         "target %llx, old %llx", (unsigned long long)target, (unsigned long long)old);
	VM_CHECK(!kr_is_alive(old), "the old pid looks alive");
	VM_CHECK(kr_send(old, 1, "x", 1) == 0, "kr_send to a dead pid");
	VM_CHECK(kr_exit_sig(old, KR_EXIT_KILL) == 0, "kr_exit_sig to a dead pid");
	kr_trap_exit(1);
	VM_CHECK(kr_link(old) == 0, "kr_link to a dead pid");
	kr_ref mr = kr_monitor(old);
	VM_CHECK(kr_recv_tag(&m, KR_TAG_DOWN, 1000) == 0 && kr_msg_down(m)->ref == mr &&
	                 kr_msg_down(m)->reason.kind == KR_EXIT_NOPROC,
	         "monitoring the dead pid: no noproc DOWN");
	VM_CHECK(kr_recv_tag(&m, KR_TAG_EXIT, 1000) == 0 && kr_msg_exit(m)->reason.kind == KR_EXIT_NOPROC,
	         "linking to the dead pid: no noproc exit");
	kr_sleep(100);
	VM_CHECK(kr_is_alive(target), "the kill aimed at the old pid ended its slot's new process");
}

Test(races, a_dead_pid_never_reaches_a_later_process_in_its_slot, .fini = reuse_fini)
{
	fast_reuse();
	vm_start_quiet(1);
	atomic_store(&stale_got, 0);
	kr_pid p = vm_spawn(stale_pid_driver, NULL);
	cr_assert(VM_WAIT(!kr_is_alive(p), 60000));
	cr_assert(VM_WAIT(vm_alive() == 0, 5000));
	vm_assert_clean();
	cr_assert_eq(atomic_load(&stale_got), 0, "a message to the dead pid reached the slot's new process");
	vm_stop();
	default_reuse();
}

/* ---- a kill lost while the target takes another signal in ---- */

static void yielder(void *arg)
{
	(void)arg;
	while (!atomic_load(&vm_abort))
		kr_yield();
}

static atomic_long kill_trials, kills_lost;

/* Two exit signals back to back at a process that yields all the time:
 * the first (normal, ignored) has it take its signals in as the second, a
 * kill, arrives. A lost kill leaves it running. */
static void killer(void *arg)
{
	int64_t end = vm_now_ns() + (int64_t)(intptr_t)arg * 1000000;
	while (vm_now_ns() < end && !atomic_load(&vm_abort)) {
		kr_ref ref;
		kr_spawn_opts o = { .monitor = &ref, .bind_scheduler = 1 };
		kr_pid v = kr_spawn_opt(yielder, NULL, &o);
		for (int i = 0; i < 4; i++)
			kr_yield();
		kr_exit_sig(v, KR_EXIT_NORMAL);
		/* Vary the gap, so that the kill lands at every point of the
		 * target's taking in of the first. */
		for (volatile unsigned spin = (unsigned)atomic_load(&kill_trials) % 64; spin; spin--)
			;
		kr_exit_sig(v, KR_EXIT_KILL);
		kr_msg *m;
		if (kr_recv_tag(&m, KR_TAG_DOWN, 1000) != 0) {
			atomic_fetch_add(&kills_lost, 1);
			kr_exit_sig(v, KR_EXIT_KILL);
			(void)kr_recv_tag(&m, KR_TAG_DOWN, 5000);
		}
		kr_msg_free(m);
		atomic_fetch_add(&kill_trials, 1);
	}
}

Test(races, a_kill_is_never_lost_while_the_target_takes_signals_in)
{
	vm_start_quiet(2);
	long ms = 4000 / VM_LIGHT_DIV + 500;
	kr_pid k = vm_spawn_on(killer, (void *)(intptr_t)ms, 2);
	cr_assert(VM_WAIT(!kr_is_alive(k), ms + 30000));
	vm_assert_clean();
	cr_assert_eq(atomic_load(&kills_lost), 0, "%ld of %ld kills lost", atomic_load(&kills_lost),
	             atomic_load(&kill_trials));
	cr_log_info("%ld kills, none lost", atomic_load(&kill_trials));
	vm_stop();
}

/* ---- host threads calling into a VM being started and stopped ---- */

static atomic_int host_stop;

static void *host_caller(void *arg)
{
	(void)arg;
	while (!atomic_load(&host_stop)) {
		kr_pid p = kr_spawn(and_end, NULL);
		if (p > 0) {
			kr_proc_info info;
			(void)kr_info(p, &info);
			(void)kr_send(p, 1, "x", 1);
		}
		kr_vm_stats st;
		(void)kr_vm_stats_get(&st);
		(void)kr_whereis("nobody");
	}
	return NULL;
}

Test(races, host_threads_call_in_while_the_vm_starts_and_stops)
{
	pthread_t th[3];
	atomic_store(&host_stop, 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, host_caller, NULL), 0);
	for (int i = 0; i < 40; i++) {
		kr_config cfg = { .schedulers = 2, .no_reports = 1 };
		cr_assert_eq(kr_vm_start(&cfg), 0);
		vm_host_sleep_ms(2);
		cr_assert_eq(kr_vm_stop(), 0);
	}
	atomic_store(&host_stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
}

/* ---- the mailbox length of a new process ---- */

static atomic_llong flood_target;
static atomic_long fresh_checked, fresh_nonempty;

/* A host thread sending all the time to whatever target is published,
 * stale or not. With more threads than cores, the OS sets it aside now and
 * then between a send's push and its count: a wide window. */
static void *flooder(void *arg)
{
	(void)arg;
	while (!atomic_load(&vm_abort) && atomic_load(&flood_target) >= 0) {
		kr_pid t = (kr_pid)atomic_load(&flood_target);
		if (t > 0)
			kr_send(t, 1, "x", 1);
	}
	return NULL;
}

/* Nobody knows its pid yet: its mailbox is empty. Then it takes the
 * flood for a moment and ends. */
static void flood_target_main(void *arg)
{
	(void)arg;
	kr_proc_info info;
	kr_yield();
	if (kr_info(kr_self(), &info) == 0) {
		atomic_fetch_add(&fresh_checked, 1);
		if (info.mailbox_len != 0)
			atomic_fetch_add(&fresh_nonempty, 1);
	}
	atomic_store(&flood_target, kr_self());
	kr_msg *m;
	for (int i = 0; i < 3 && kr_recv(&m, 1) == 0; i++)
		kr_msg_free(m);
}

static void target_spawner(void *arg)
{
	int64_t end = vm_now_ns() + (int64_t)(intptr_t)arg * 1000000;
	while (vm_now_ns() < end && !atomic_load(&vm_abort)) {
		kr_ref ref;
		kr_spawn_opts o = { .monitor = &ref };
		(void)kr_spawn_opt(flood_target_main, NULL, &o);
		kr_msg *m;
		if (kr_recv_tag(&m, KR_TAG_DOWN, 5000) == 0)
			kr_msg_free(m);
	}
	atomic_store(&flood_target, -1);
}

Test(races, a_new_process_starts_with_an_empty_mailbox_whatever_its_slot_got_before,
     .fini = reuse_fini)
{
	fast_reuse();
	vm_start_quiet(2);
	atomic_store(&flood_target, 0);
	long ms = 3000 / VM_LIGHT_DIV + 500;
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, flooder, NULL), 0);
	kr_pid s = vm_spawn(target_spawner, (void *)(intptr_t)ms);
	cr_assert(VM_WAIT(!kr_is_alive(s), ms + 30000));
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	cr_assert(VM_WAIT(vm_alive() == 0, 5000));
	vm_assert_clean();
	cr_assert_eq(atomic_load(&fresh_nonempty), 0, "%ld of %ld new processes saw a message counted",
	             atomic_load(&fresh_nonempty), atomic_load(&fresh_checked));
	cr_log_info("%ld new processes, all empty", atomic_load(&fresh_checked));
	vm_stop();
	default_reuse();
}

/* ---- the stack pool handing a stack out twice ---- */

#define POOL_THREADS 4
#define POOL_ROUNDS (200000 / VM_LIGHT_DIV)

static krx_stack_pool race_pool;
static atomic_uchar pool_owned[1 << 16];
static atomic_long pool_twice;

/* Take and give stacks back in varying numbers, through a cache of its own
 * (or none), marking each as held: a stack handed to two at once is seen. */
static void *pool_user(void *arg)
{
	intptr_t id = (intptr_t)arg;
	krx_stack_cache cache = { 0 }, *c = id % 2 ? &cache : NULL;
	krx_stack *held[64];
	uint32_t rnd = 0x9e3779b9u * (uint32_t)(id + 1);
	for (int round = 0; round < POOL_ROUNDS; round++) {
		rnd ^= rnd << 13, rnd ^= rnd >> 17, rnd ^= rnd << 5;
		unsigned n = 1 + rnd % 64, k = 0;
		for (; k < n; k++) {
			krx_stack *st = krx_stack_get(&race_pool, c);
			if (!st)
				break;
			if (atomic_exchange(&pool_owned[st->id % (1 << 16)], 1))
				atomic_fetch_add(&pool_twice, 1);
			held[k] = st;
		}
		while (k--) {
			atomic_store(&pool_owned[held[k]->id % (1 << 16)], 0);
			krx_stack_put(&race_pool, c, held[k]);
		}
	}
	if (c)
		krx_stack_cache_flush(&race_pool, c);
	return NULL;
}

Test(races, the_stack_pool_never_hands_one_stack_to_two)
{
	krx_stack_opts o = { .stack_size = 16 << 10, .slots_per_region = 1024 };
	cr_assert_eq(krx_stack_pool_init(&race_pool, &o), 0);
	pthread_t th[POOL_THREADS];
	for (intptr_t i = 0; i < POOL_THREADS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, pool_user, (void *)i), 0);
	for (int i = 0; i < POOL_THREADS; i++)
		pthread_join(th[i], NULL);
	krx_stack_stats st;
	krx_stack_pool_stats(&race_pool, &st);
	cr_assert_eq(atomic_load(&pool_twice), 0, "%ld stacks were handed out twice",
	             atomic_load(&pool_twice));
	cr_assert_eq(st.shared_free, st.carved, "%zu stacks carved, %zu back on the list", st.carved,
	             st.shared_free);
	krx_stack_pool_destroy(&race_pool);
}
