/*
 * test_signal.c - exit signals, links, trap_exit and monitors (vm/signal.c),
 * through the public API, checked against Erlang's rules: an abnormal end
 * propagates over links, a normal one does not; trapping turns exit
 * signals into messages, except kill; a monitor gets exactly one DOWN,
 * noproc at once for a process already gone; demonitor and unlink leave
 * nothing behind; signals between one pair arrive in the order sent. The
 * heavy one: a chain of 10,000 linked processes all ending from one crash.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "krill.h"
#include "vm_util.h"

TestSuite(signal, .fini = vm_fini, .timeout = 60);


static void crash_now(void *arg)
{
	kr_crash("on purpose (%d)", (int)(intptr_t)arg);
}

static void end_normally(void *arg)
{
	(void)arg;
}

/* ---- links ---- */

static atomic_int link_stage;
static atomic_llong linked_pid;

/* Links to a process that then crashes; does not trap: must die too. */
static void linked_victim(void *arg)
{
	(void)arg;
	kr_pid c = kr_spawn(vm_wait_forever, NULL);
	atomic_store(&linked_pid, c);
	VM_CHECK(kr_link(c) == 0, "kr_link");
	atomic_store(&link_stage, 1);
	vm_wait_forever(NULL);
}

Test(signal, an_abnormal_end_kills_linked_processes)
{
	vm_start_quiet(2);
	kr_pid v = vm_spawn(linked_victim, NULL);
	cr_assert(VM_WAIT(atomic_load(&link_stage) == 1, 5000));
	kr_pid c = (kr_pid)atomic_load(&linked_pid);
	cr_assert(kr_is_alive(v) && kr_is_alive(c));
	cr_assert_eq(kr_exit_sig(c, KR_EXIT_ERROR), 0);
	cr_assert(VM_WAIT(!kr_is_alive(c) && !kr_is_alive(v), 5000),
	          "the linked process survived (c %d, v %d)", kr_is_alive(c), kr_is_alive(v));
	vm_assert_clean();
	vm_stop();
}

/* A normal end does not propagate; an exit signal with normal from another
 * process is ignored (from the process itself it is not: test_api.c). */
static atomic_int normal_survived;

static void sends_normal_exit(void *arg)
{
	kr_pid to = (kr_pid)(intptr_t)arg;
	kr_exit_sig(to, KR_EXIT_NORMAL);
	kr_send(to, 1, NULL, 0); /* after the signal, so it has been taken in */
}

static void survives_normal(void *arg)
{
	(void)arg;
	kr_spawn_opts o = { .link = 1 };
	kr_pid c = kr_spawn_opt(end_normally, NULL, &o);
	VM_CHECK(c > 0, "spawn_link: %lld", (long long)c);
	kr_sleep(50);
	kr_spawn(sends_normal_exit, (void *)(intptr_t)kr_self());
	kr_msg *m;
	VM_CHECK(kr_recv_tag(&m, 1, 5000) == 0, "no message after the exit signal");
	kr_sleep(10);
	atomic_store(&normal_survived, 1);
}

Test(signal, normal_ends_and_normal_exit_signals_are_ignored)
{
	vm_start_quiet(2);
	vm_spawn(survives_normal, NULL);
	cr_assert(VM_WAIT(atomic_load(&normal_survived), 5000));
	vm_assert_clean();
	cr_assert_eq(atomic_load(&vm_reports), 0, "a normal end was reported");
	vm_stop();
}

/* shutdown is a quiet end (never reported) but not a normal one: over a
 * link it ends a process that does not trap exits, with the same reason,
 * as in Erlang, where only normal is ignored. Seen by a monitor of each
 * end; neither end is reported. */
static atomic_int shut_ender_kind = -1, shut_partner_kind = -1;

static void shut_ender(void *arg)
{
	kr_pid partner = (kr_pid)(intptr_t)arg;
	VM_CHECK(kr_link(partner) == 0, "kr_link");
	kr_exit(KR_EXIT_SHUTDOWN);
}

static int wait_down_kind(kr_ref ref, long ms)
{
	kr_msg *m;
	if (kr_recv_tag(&m, KR_TAG_DOWN, ms) != 0)
		return -2;
	const kr_down_msg *d = kr_msg_down(m);
	int kind = d && d->ref == ref ? d->reason.kind : -3;
	kr_msg_free(m);
	return kind;
}

static void shut_watcher(void *arg)
{
	kr_ref pref = 0, eref = 0;
	kr_spawn_opts po = { .monitor = &pref };
	kr_pid partner = kr_spawn_opt(vm_wait_forever, NULL, &po);
	VM_CHECK(partner > 0, "spawn partner: %lld", (long long)partner);
	kr_spawn_opts eo = { .monitor = &eref };
	VM_CHECK(kr_spawn_opt(shut_ender, (void *)(intptr_t)partner, &eo) > 0, "spawn ender");
	atomic_store(&shut_ender_kind, wait_down_kind(eref, 5000));
	atomic_store(&shut_partner_kind, wait_down_kind(pref, 5000));
}

Test(signal, a_linked_shutdown_ends_a_process_that_does_not_trap)
{
	vm_start_quiet(2);
	vm_spawn(shut_watcher, NULL);
	cr_assert(VM_WAIT(atomic_load(&shut_partner_kind) != -1, 15000));
	cr_assert_eq(atomic_load(&shut_ender_kind), KR_EXIT_SHUTDOWN, "the ender's reason: %d",
	             atomic_load(&shut_ender_kind));
	cr_assert_eq(atomic_load(&shut_partner_kind), KR_EXIT_SHUTDOWN,
	             "the linked partner's reason: %d (-2: it did not end)",
	             atomic_load(&shut_partner_kind));
	cr_assert(VM_WAIT(vm_alive() == 0, 5000));
	cr_assert_eq(atomic_load(&vm_reports), 0, "a shutdown was reported");
	vm_stop();
}

/* trap_exit: a linked crash and exit signals arrive as messages, in order,
 * with sender and reason; kill still kills. */
static atomic_int trap_stage;
static atomic_llong trapper_pid;

static void trapper(void *arg)
{
	(void)arg;
	VM_CHECK(kr_trap_exit(1) == 0, "trap_exit was on");
	VM_CHECK(kr_trap_exit(1) == 1, "trap_exit did not say it was on");
	kr_spawn_opts o = { .link = 1 };
	kr_pid c = kr_spawn_opt(crash_now, (void *)7, &o);
	kr_msg *m;
	int rc = kr_recv_tag(&m, KR_TAG_EXIT, 5000);
	VM_CHECK(rc == 0, "no EXIT message from the linked crash: %d", rc);
	if (rc)
		return;
	const kr_exit_msg *e = kr_msg_exit(m);
	VM_CHECK(e && e->from == c, "EXIT from %lld, want %lld", e ? (long long)e->from : 0LL,
	         (long long)c);
	VM_CHECK(e && e->reason.kind == KR_EXIT_ERROR, "reason %d", e ? e->reason.kind : -1);
	VM_CHECK(e && strstr(e->reason.text, "on purpose (7)"), "text \"%s\"", e ? e->reason.text : "");
	VM_CHECK(m->sender == c, "sender %lld", (long long)m->sender);
	kr_msg_free(m);
	atomic_store(&trapper_pid, kr_self());
	atomic_store(&trap_stage, 1);
	/* Now the test thread sends shutdown, then normal: both as messages. */
	for (int want = KR_EXIT_SHUTDOWN; want >= KR_EXIT_NORMAL; want--) {
		rc = kr_recv_tag(&m, KR_TAG_EXIT, 5000);
		VM_CHECK(rc == 0, "no EXIT message for kind %d: %d", want, rc);
		if (rc)
			return;
		e = kr_msg_exit(m);
		VM_CHECK(e && e->reason.kind == want && e->from == 0, "kind %d from %lld, want %d from 0",
		         e ? e->reason.kind : -1, e ? (long long)e->from : -1LL, want);
		kr_msg_free(m);
	}
	atomic_store(&trap_stage, 2);
	vm_wait_forever(NULL); /* until killed */
	atomic_store(&trap_stage, 3); /* never */
}

Test(signal, trap_exit_turns_exit_signals_into_messages_but_not_kill)
{
	vm_start_quiet(2);
	vm_spawn(trapper, NULL);
	cr_assert(VM_WAIT(atomic_load(&trap_stage) == 1, 5000));
	kr_pid t = (kr_pid)atomic_load(&trapper_pid);
	cr_assert_eq(kr_exit_sig(t, KR_EXIT_SHUTDOWN), 0);
	cr_assert_eq(kr_exit_sig(t, KR_EXIT_NORMAL), 0);
	cr_assert(VM_WAIT(atomic_load(&trap_stage) == 2, 5000));
	cr_assert(kr_is_alive(t));
	cr_assert_eq(kr_exit_sig(t, KR_EXIT_KILL), 0);
	cr_assert(VM_WAIT(!kr_is_alive(t), 5000), "kill did not end a trapping process");
	cr_assert_neq(atomic_load(&trap_stage), 3);
	vm_assert_clean();
	vm_stop();
}

/* A process busy in a loop that only calls KR_CHECK is still ended. */
static atomic_int busy_started;

static void busy_checker(void *arg)
{
	(void)arg;
	atomic_store(&busy_started, 1);
	for (;;)
		KR_CHECK();
}

Test(signal, a_busy_process_that_checks_is_killed)
{
	vm_start_quiet(1);
	kr_pid b = vm_spawn(busy_checker, NULL);
	cr_assert(VM_WAIT(atomic_load(&busy_started), 5000));
	cr_assert_eq(kr_exit_sig(b, KR_EXIT_KILL), 0);
	cr_assert(VM_WAIT(!kr_is_alive(b), 5000), "a busy process survived kill");
	vm_stop();
}

/* A sleeping process is ended by an exit signal; messages do not end its
 * sleep early. */
static atomic_int sleeper_woke;

static void long_sleeper(void *arg)
{
	(void)arg;
	kr_sleep(60000);
	atomic_store(&sleeper_woke, 1);
}

static atomic_llong slept_ms;

static void short_sleeper(void *arg)
{
	(void)arg;
	int64_t t0 = vm_now_ns();
	kr_sleep(100);
	atomic_store(&slept_ms, (vm_now_ns() - t0) / 1000000);
	kr_msg *m;
	int n = 0;
	while (kr_recv(&m, 0) == 0) {
		kr_msg_free(m);
		n++;
	}
	VM_CHECK(n == 10, "%d messages kept through the sleep, want 10", n);
}

Test(signal, exit_signals_end_a_sleep_and_messages_do_not)
{
	vm_start_quiet(2);
	kr_pid s = vm_spawn(long_sleeper, NULL);
	kr_pid t = vm_spawn(short_sleeper, NULL);
	vm_host_sleep_ms(20);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(kr_send(t, 1, &i, sizeof i), 0);
	cr_assert_eq(kr_exit_sig(s, KR_EXIT_SHUTDOWN), 0);
	cr_assert(VM_WAIT(!kr_is_alive(s), 5000), "a sleeper survived its exit signal");
	cr_assert(VM_WAIT(!kr_is_alive(t), 5000));
	cr_assert_eq(atomic_load(&sleeper_woke), 0);
	cr_assert_geq(atomic_load(&slept_ms), 99, "slept %lld ms of 100", atomic_load(&slept_ms));
	vm_assert_clean();
	vm_stop();
}

/* kr_link to a process that is gone: noproc, as a message when trapping,
 * as the caller's own end when not. */
static atomic_int dead_link_result;

static void link_to_dead(void *arg)
{
	int trap = (int)(intptr_t)arg;
	kr_pid c = kr_spawn(end_normally, NULL);
	while (kr_is_alive(c))
		kr_sleep(1);
	kr_trap_exit(trap);
	int rc = kr_link(c);
	/* Only a trapping caller gets here. */
	kr_msg *m;
	int got = kr_recv_tag(&m, KR_TAG_EXIT, 1000);
	const kr_exit_msg *e = got == 0 ? kr_msg_exit(m) : NULL;
	atomic_store(&dead_link_result,
	             rc == 0 && e && e->from == c && e->reason.kind == KR_EXIT_NOPROC ? 1 : 2);
	if (got == 0)
		kr_msg_free(m);
}

Test(signal, linking_to_a_dead_process_is_noproc)
{
	vm_start_quiet(2);
	vm_spawn(link_to_dead, (void *)1);
	cr_assert(VM_WAIT(atomic_load(&dead_link_result), 5000));
	cr_assert_eq(atomic_load(&dead_link_result), 1, "trapping: no EXIT noproc message");
	atomic_store(&dead_link_result, 0);
	kr_pid p = vm_spawn(link_to_dead, (void *)0);
	cr_assert(VM_WAIT(!kr_is_alive(p), 5000), "a non-trapping caller survived noproc");
	cr_assert_eq(atomic_load(&dead_link_result), 0, "kr_link returned to a non-trapping caller");
	vm_stop();
}

/* After kr_unlink, a crash of the other side does not reach us. */
static atomic_int unlink_done;

static void unlinker(void *arg)
{
	(void)arg;
	kr_spawn_opts o = { .link = 1 };
	kr_pid c = kr_spawn_opt(vm_wait_forever, NULL, &o);
	VM_CHECK(kr_unlink(c) == 0, "kr_unlink");
	VM_CHECK(kr_unlink(c) == 0, "kr_unlink twice");
	kr_exit_sig(c, KR_EXIT_ERROR);
	while (kr_is_alive(c))
		kr_sleep(1);
	kr_sleep(20);
	atomic_store(&unlink_done, 1);
}

Test(signal, unlink_stops_propagation)
{
	vm_start_quiet(2);
	vm_spawn(unlinker, NULL);
	cr_assert(VM_WAIT(atomic_load(&unlink_done), 5000), "the unlinked process died");
	vm_assert_clean();
	vm_stop();
}

/* ---- the chain ---- */

#define CHAIN_N (10000 / VM_LIGHT_DIV)
static atomic_int chain_built;
static atomic_llong chain_tail;

/* Each link spawns the next with spawn_link, until CHAIN_N; the last one
 * crashes when told. */
static void chain_link(void *arg)
{
	long i = (long)(intptr_t)arg;
	if (i + 1 < CHAIN_N) {
		kr_spawn_opts o = { .link = 1 };
		kr_pid next = kr_spawn_opt(chain_link, (void *)(intptr_t)(i + 1), &o);
		VM_CHECK(next > 0, "spawn_link %ld: %lld", i + 1, (long long)next);
	} else {
		atomic_store(&chain_tail, kr_self());
		atomic_store(&chain_built, 1);
		kr_msg *m;
		while (kr_recv(&m, KR_INFINITY) == 0) {
			kr_msg_free(m);
			kr_crash("the end of the chain crashes");
		}
	}
	vm_wait_forever(NULL);
}

Test(signal, a_chain_of_linked_processes_all_die_from_one_crash, .timeout = 120)
{
	vm_start_quiet(2);
	kr_pid head = vm_spawn(chain_link, (void *)0);
	cr_assert(VM_WAIT(atomic_load(&chain_built) && vm_alive() == CHAIN_N, 30000), "%zu alive",
	          vm_alive());
	cr_assert_eq(kr_send((kr_pid)atomic_load(&chain_tail), 1, NULL, 0), 0);
	cr_assert(VM_WAIT(vm_alive() == 0, 60000), "%zu of %d still alive", vm_alive(), CHAIN_N);
	cr_assert(!kr_is_alive(head));
	/* One report: the crash. The processes it took ended by exit signals,
	 * which is no crash of theirs (OTP reports none either). */
	vm_assert_clean();
	vm_stop();
	cr_assert_eq(atomic_load(&vm_reports), 1, "%d reports for %d ends", atomic_load(&vm_reports),
	             CHAIN_N);
}

/* ---- monitors ---- */

static atomic_int mon_done;

static void monitor_checks(void *arg)
{
	(void)arg;
	/* A dead pid: DOWN with noproc, at once. */
	kr_pid dead = kr_spawn(end_normally, NULL);
	while (kr_is_alive(dead))
		kr_sleep(1);
	kr_ref r0 = kr_monitor(dead);
	VM_CHECK(r0 > 0, "kr_monitor(dead): %lld", (long long)r0);
	kr_msg *m;
	VM_CHECK(kr_recv_tag(&m, KR_TAG_DOWN, 0) == 0, "no DOWN at once for a dead pid");
	const kr_down_msg *d = kr_msg_down(m);
	VM_CHECK(d && d->ref == r0 && d->pid == dead && d->reason.kind == KR_EXIT_NOPROC,
	         "DOWN for a dead pid: ref %lld pid %lld kind %d", d ? (long long)d->ref : 0LL,
	         d ? (long long)d->pid : 0LL, d ? d->reason.kind : -1);
	kr_msg_free(m);

	/* Two monitors on one process: two DOWNs, each with its ref and the reason. */
	kr_pid c = kr_spawn(vm_wait_forever, NULL);
	kr_ref r1 = kr_monitor(c), r2 = kr_monitor(c);
	VM_CHECK(r1 > 0 && r2 > 0 && r1 != r2, "refs %lld %lld", (long long)r1, (long long)r2);
	kr_exit_sig(c, KR_EXIT_SHUTDOWN);
	int seen = 0;
	for (int i = 0; i < 2; i++) {
		if (kr_recv_tag(&m, KR_TAG_DOWN, 5000) != 0)
			break;
		d = kr_msg_down(m);
		if (d && d->pid == c && d->reason.kind == KR_EXIT_SHUTDOWN)
			seen |= d->ref == r1 ? 1 : d->ref == r2 ? 2 : 4;
		kr_msg_free(m);
	}
	VM_CHECK(seen == 3, "DOWNs seen: %d, want both refs once", seen);
	VM_CHECK(kr_recv_tag(&m, KR_TAG_DOWN, 50) == KR_ETIMEDOUT, "a third DOWN");

	/* Demonitor before the end: no DOWN ever. */
	c = kr_spawn(vm_wait_forever, NULL);
	kr_ref r3 = kr_monitor(c);
	VM_CHECK(kr_demonitor(r3, 0) == 0, "kr_demonitor");
	kr_exit_sig(c, KR_EXIT_KILL);
	while (kr_is_alive(c))
		kr_sleep(1);
	VM_CHECK(kr_recv_tag(&m, KR_TAG_DOWN, 50) == KR_ETIMEDOUT, "a DOWN after demonitor");

	/* Demonitor with flush after the DOWN was queued: it is removed. */
	c = kr_spawn(crash_now, (void *)1);
	kr_ref r4 = kr_monitor(c);
	while (kr_is_alive(c))
		kr_sleep(1);
	kr_sleep(10);
	VM_CHECK(kr_demonitor(r4, 1) == 0, "kr_demonitor flush");
	VM_CHECK(kr_recv(&m, 20) == KR_ETIMEDOUT, "something left after demonitor with flush");
	VM_CHECK(kr_demonitor(0, 0) == KR_EINVAL, "kr_demonitor(0)");
	atomic_store(&mon_done, 1);
}

Test(signal, monitors_deliver_one_down_each_and_demonitor_leaves_nothing)
{
	vm_start_quiet(2);
	vm_spawn(monitor_checks, NULL);
	cr_assert(VM_WAIT(atomic_load(&mon_done), 10000));
	vm_assert_clean();
	vm_stop();
}

/* spawn with monitor: the DOWN comes even if the child ends at once. */
static atomic_int spawn_mon_ok;

static void spawn_monitor_check(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100; i++) {
		kr_ref ref = 0;
		kr_spawn_opts o = { .monitor = &ref };
		kr_pid c = kr_spawn_opt(crash_now, (void *)(intptr_t)i, &o);
		kr_msg *m;
		if (c <= 0 || ref <= 0 || kr_recv_tag(&m, KR_TAG_DOWN, 5000) != 0)
			return;
		const kr_down_msg *d = kr_msg_down(m);
		int ok = d && d->ref == ref && d->pid == c && d->reason.kind == KR_EXIT_ERROR;
		kr_msg_free(m);
		if (!ok)
			return;
	}
	atomic_store(&spawn_mon_ok, 1);
}

Test(signal, spawn_with_monitor_sees_even_an_instant_crash)
{
	vm_start_quiet(2);
	kr_pid p = vm_spawn(spawn_monitor_check, NULL);
	cr_assert(VM_WAIT(!kr_is_alive(p), 10000));
	cr_assert(atomic_load(&spawn_mon_ok), "a spawn_monitor DOWN was missing or wrong");
	vm_stop();
}

/* ---- order between a pair ---- */

#define ORDER_N 2000
static atomic_int order_ok, order_trapping;

static void order_receiver(void *arg)
{
	(void)arg;
	kr_trap_exit(1);
	/* Only now may the sender start: an exit signal that came before
	 * this process traps exits would end it, as in Erlang. */
	atomic_store(&order_trapping, 1);
	kr_msg *m;
	for (int i = 0; i < ORDER_N; i++) {
		int rc = kr_recv(&m, 5000);
		VM_CHECK(rc == 0, "message %d: %d", i, rc);
		if (rc != 0)
			goto failed;
		int v = -1;
		if (m->tag == 1 && m->len == sizeof v)
			memcpy(&v, m->data, sizeof v);
		kr_msg_free(m);
		VM_CHECK(v == i, "message %d: got %d (tag %s)", i, v, v < 0 ? "not 1" : "1");
		if (v != i)
			goto failed;
	}
	/* The exit signal was sent after every message: it comes last. */
	if (kr_recv(&m, 5000) != 0)
		goto failed;
	const kr_exit_msg *e = kr_msg_exit(m);
	atomic_store(&order_ok, e && e->reason.kind == KR_EXIT_SHUTDOWN ? 1 : 2);
	kr_msg_free(m);
	return;
failed:
	atomic_store(&order_ok, 2);
}

static void order_sender(void *arg)
{
	kr_pid to = *(kr_pid *)arg;
	for (int i = 0; i < ORDER_N; i++)
		kr_send(to, 1, &i, sizeof i);
	kr_exit_sig(to, KR_EXIT_SHUTDOWN);
}

Test(signal, messages_and_an_exit_signal_from_one_sender_arrive_in_order)
{
	static kr_pid r;
	vm_start_quiet(2);
	/* On different schedulers, so the messages go through the send buffer. */
	r = vm_spawn_on(order_receiver, NULL, 1);
	cr_assert(VM_WAIT(atomic_load(&order_trapping), 5000));
	vm_spawn_on(order_sender, &r, 2);
	cr_assert(VM_WAIT(atomic_load(&order_ok), 10000));
	vm_assert_clean();
	cr_assert_eq(atomic_load(&order_ok), 1, "the exit signal overtook messages");
	vm_stop();
}

/* Bad arguments: clear errors, nothing crashes. */
Test(signal, bad_arguments_and_host_threads)
{
	vm_start_quiet(1);
	/* A host thread links and monitors from a mailbox of its own, which
	 * always traps exits (test_host.c); bad pids make none. */
	cr_assert_eq(kr_link(123), KR_EINVAL);
	cr_assert_eq(kr_unlink(123), KR_EINVAL);
	cr_assert_eq(kr_trap_exit(1), 1);
	cr_assert_eq(kr_trap_exit(0), KR_ENOTPROC);
	cr_assert_eq(kr_monitor(123), KR_EINVAL);
	cr_assert_eq(kr_demonitor(5, 0), 0);
	cr_assert_eq(kr_exit(KR_EXIT_NORMAL), KR_ENOTPROC);
	cr_assert_eq(kr_crash("x"), KR_ENOTPROC);
	cr_assert_eq(kr_exit_sig(-5, KR_EXIT_KILL), KR_EINVAL);
	cr_assert_eq(kr_exit_sig(1, 99), KR_EINVAL);
	cr_assert_eq(kr_exit_sig_reason(1, NULL), KR_EINVAL);
	kr_spawn_opts o = { .link = 1, .stack_size = 1 };
	cr_assert_eq(kr_spawn_opt(end_normally, NULL, &o), KR_EINVAL);
	cr_assert_eq(kr_send(1 << 26 | 5, KR_TAG_EXIT, NULL, 0), KR_EINVAL, "a reserved tag was sent");
	cr_assert_null(kr_msg_exit(NULL));
	cr_assert_null(kr_msg_down(NULL));
	char buf[64];
	kr_reason r = { .kind = KR_EXIT_ERROR };
	strcpy(r.text, "bad frame 3");
	cr_assert_str_eq(kr_reason_format(&r, buf, sizeof buf), "error: bad frame 3");
	cr_assert_str_eq(kr_exit_kind_name(KR_EXIT_STACK_OVERFLOW), "stack_overflow");
	cr_assert_str_eq(kr_exit_kind_name(1000), "unknown");
	vm_stop();
}
