/*
 * test_priority.c - priority messages (EEP 76; krill.h "Priority
 * messages"): priority aliases and kr_send_priority, priority exit signals,
 * links and monitors, and the receives that must see them first.
 *
 * A receiver that must hold its mailbox still while messages arrive waits
 * in kr_recv_tag for a last ordinary message (T_GO) from the same sender:
 * signals between a pair arrive in the order sent, so once it has T_GO,
 * everything sent before it has been taken in.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "krill.h"
#include "vm_util.h"

TestSuite(priority, .fini = vm_fini, .timeout = 60);

enum { T_ORD = 1, T_PRIO, T_GO, T_X, T_Y, T_ECHO, T_DONE };

/* The alias a receiver publishes for its senders. */
static atomic_llong alias_pid, alias_ref;
static atomic_int finished;

static void publish(kr_alias a)
{
	atomic_store(&alias_ref, a.ref);
	atomic_store(&alias_pid, a.pid);
}

/* Process side: wait for the receiver's alias. */
static kr_alias await_alias(void)
{
	while (!atomic_load(&alias_pid))
		kr_sleep(1);
	return (kr_alias){ .pid = atomic_load(&alias_pid), .ref = atomic_load(&alias_ref) };
}

static int payload(const kr_msg *m)
{
	int v = -1;
	if (m->len == sizeof v)
		memcpy(&v, m->data, sizeof v);
	return v;
}

/* Receive one message at once (it must be there) and check its tag and
 * payload. */
static void expect(uint64_t tag, int value, const char *what)
{
	kr_msg *m;
	int rc = kr_recv(&m, 0);
	VM_CHECK(rc == 0, "%s: nothing queued (%d)", what, rc);
	if (rc)
		return;
	VM_CHECK(m->tag == tag && payload(m) == value, "%s: got tag %llu value %d, want tag %llu value %d",
	         what, (unsigned long long)m->tag, payload(m), (unsigned long long)tag, value);
	kr_msg_free(m);
}

static void expect_empty(const char *what)
{
	kr_msg *m;
	int rc = kr_recv(&m, 0);
	VM_CHECK(rc == KR_ETIMEDOUT, "%s: a message is left (tag %llu)", what,
	         rc == 0 ? (unsigned long long)m->tag : 0ull);
	if (rc == 0)
		kr_msg_free(m);
}

static void wait_go(void)
{
	kr_msg *m;
	int rc = kr_recv_tag(&m, T_GO, 10000);
	VM_CHECK(rc == 0, "no T_GO: %d", rc);
	if (rc == 0)
		kr_msg_free(m);
}

/* ---- overtaking, in arrival order ---- */

static void overtake_receiver(void *arg)
{
	(void)arg;
	kr_alias a;
	VM_CHECK(kr_alias_priority(&a) == 0, "kr_alias_priority");
	publish(a);
	wait_go();
	for (int i = 0; i < 3; i++)
		expect(T_PRIO, i, "a priority message first, in arrival order");
	for (int i = 0; i < 7; i++)
		expect(T_ORD, i, "then the ordinary ones, in arrival order");
	expect_empty("all taken");
	atomic_store(&finished, 1);
}

static void overtake_sender(void *arg)
{
	(void)arg;
	kr_alias a = await_alias();
	int o = 0;
	for (; o < 5; o++)
		kr_send(a.pid, T_ORD, &o, sizeof o);
	for (int i = 0; i < 3; i++)
		VM_CHECK(kr_send_priority(a, T_PRIO, &i, sizeof i) == 0, "kr_send_priority");
	for (; o < 7; o++)
		kr_send(a.pid, T_ORD, &o, sizeof o);
	kr_send(a.pid, T_GO, NULL, 0);
}

Test(priority, priority_messages_overtake_the_ordinary_ones_each_kind_in_arrival_order)
{
	vm_start(2);
	vm_spawn(overtake_receiver, NULL);
	vm_spawn(overtake_sender, NULL);
	cr_assert(VM_WAIT(atomic_load(&finished), 10000));
	vm_assert_clean();
}

/* ---- selective receives ---- */

static void selective_receiver(void *arg)
{
	(void)arg;
	kr_alias a;
	VM_CHECK(kr_alias_priority(&a) == 0, "kr_alias_priority");
	publish(a);
	wait_go();
	/* Queued: ORD X 0, PRIO Y 1, PRIO X 2, ORD Y 3. */
	kr_msg *m;
	VM_CHECK(kr_recv_tag(&m, T_X, 0) == 0 && payload(m) == 2,
	         "kr_recv_tag took the older ordinary X, not the priority one");
	kr_msg_free(m);
	VM_CHECK(kr_recv_tag(&m, T_Y, 0) == 0 && payload(m) == 1,
	         "kr_recv_tag took the ordinary Y, not the priority one");
	kr_msg_free(m);
	expect(T_X, 0, "the ordinary X stayed");
	expect(T_Y, 3, "the ordinary Y stayed");
	expect_empty("all taken");
	atomic_store(&finished, 1);
}

static void selective_sender(void *arg)
{
	(void)arg;
	kr_alias a = await_alias();
	int v = 0;
	kr_send(a.pid, T_X, &v, sizeof v);
	v = 1;
	kr_send_priority(a, T_Y, &v, sizeof v);
	v = 2;
	kr_send_priority(a, T_X, &v, sizeof v);
	v = 3;
	kr_send(a.pid, T_Y, &v, sizeof v);
	kr_send(a.pid, T_GO, NULL, 0);
}

Test(priority, a_selective_receive_looks_at_priority_messages_first)
{
	vm_start(2);
	vm_spawn(selective_receiver, NULL);
	vm_spawn(selective_sender, NULL);
	cr_assert(VM_WAIT(atomic_load(&finished), 10000));
	vm_assert_clean();
}

/* A receive parked in kr_recv_tag(T_X) past a long queue: a priority
 * message that does not match arrives, then an ordinary X. The receive
 * keeps its place in the ordinary queue (the X, not a rescan), and the
 * queue is whole afterwards. */
#define LONG_QUEUE 1000

static void parked_receiver(void *arg)
{
	(void)arg;
	kr_alias a;
	VM_CHECK(kr_alias_priority(&a) == 0, "kr_alias_priority");
	for (int i = 0; i < LONG_QUEUE; i++)
		kr_send(kr_self(), T_ORD, &i, sizeof i);
	publish(a);
	kr_msg *m;
	int rc = kr_recv_tag(&m, T_X, 10000);
	VM_CHECK(rc == 0 && payload(m) == 7, "the parked receive's X: %d", rc);
	if (rc == 0)
		kr_msg_free(m);
	rc = kr_recv_tag(&m, T_Y, 10000);
	VM_CHECK(rc == 0 && payload(m) == 9, "a priority Y to a parked kr_recv_tag(Y): %d", rc);
	if (rc == 0)
		kr_msg_free(m);
	expect(T_PRIO, 8, "the priority message that did not match, first");
	for (int i = 0; i < LONG_QUEUE; i++)
		expect(T_ORD, i, "the long queue, whole and in order");
	expect_empty("all taken");
	atomic_store(&finished, 1);
}

static void parked_sender(void *arg)
{
	(void)arg;
	kr_alias a = await_alias();
	kr_sleep(20); /* the receiver parks in its kr_recv_tag */
	int v = 8;
	kr_send_priority(a, T_PRIO, &v, sizeof v);
	v = 7;
	kr_send(a.pid, T_X, &v, sizeof v);
	kr_sleep(20);
	v = 9;
	kr_send_priority(a, T_Y, &v, sizeof v);
}

Test(priority, a_receive_parked_past_a_long_queue_keeps_its_place_and_sees_priority_messages)
{
	vm_start(2);
	vm_spawn(parked_receiver, NULL);
	vm_spawn(parked_sender, NULL);
	cr_assert(VM_WAIT(atomic_load(&finished), 10000));
	vm_assert_clean();
}

/* ---- aliases that are not active ---- */

static atomic_int unalias_sent;

static void unalias_receiver(void *arg)
{
	(void)arg;
	kr_alias a;
	VM_CHECK(kr_alias_priority(&a) == 0, "kr_alias_priority");
	publish(a);
	wait_go(); /* the first priority message, taken in: it stays */
	/* The next three are sent while we hold off taking anything in
	 * (kr_yield takes no message in). */
	while (!atomic_load(&unalias_sent))
		kr_yield();
	VM_CHECK(kr_unalias(a) == 1, "kr_unalias of an active alias");
	VM_CHECK(kr_unalias(a) == 0, "kr_unalias again");
	expect(T_PRIO, 0, "taken in before the unalias: kept");
	expect_empty("sent before the unalias, taken in after: dropped");
	atomic_store(&finished, 1);
}

static void unalias_sender(void *arg)
{
	(void)arg;
	kr_alias a = await_alias();
	int v = 0;
	kr_send_priority(a, T_PRIO, &v, sizeof v);
	kr_send(a.pid, T_GO, NULL, 0);
	kr_sleep(10);
	for (v = 1; v <= 3; v++)
		VM_CHECK(kr_send_priority(a, T_PRIO, &v, sizeof v) == 0, "a send to an alias is not refused");
	/* Another process cannot drop the receiver's alias. */
	VM_CHECK(kr_unalias(a) == 0, "kr_unalias of another process's alias");
	atomic_store(&unalias_sent, 1);
}

Test(priority, an_alias_no_longer_active_drops_what_arrives_through_it)
{
	vm_start(2);
	uint64_t d0 = vm_dead_letters();
	vm_spawn(unalias_receiver, NULL);
	vm_spawn(unalias_sender, NULL);
	cr_assert(VM_WAIT(atomic_load(&finished), 10000));
	vm_assert_clean();
	cr_assert_eq(vm_dead_letters() - d0, 3, "dropped messages count as dead letters: %llu",
	             (unsigned long long)(vm_dead_letters() - d0));
}

/* A forged alias (a real process, a ref that is none of its aliases):
 * the message is dropped, never delivered as an ordinary one. */
static void forged_receiver(void *arg)
{
	(void)arg;
	kr_alias a;
	VM_CHECK(kr_alias_priority(&a) == 0, "kr_alias_priority");
	a.ref += 1 << 11; /* another reference */
	publish(a);
	wait_go();
	expect_empty("a message through a forged alias");
	atomic_store(&finished, 1);
}

static void forged_sender(void *arg)
{
	(void)arg;
	kr_alias a = await_alias();
	int v = 1;
	kr_send_priority(a, T_PRIO, &v, sizeof v);
	kr_send(a.pid, T_GO, NULL, 0);
}

Test(priority, a_ref_that_is_not_an_alias_of_the_receiver_carries_nothing)
{
	vm_start(1);
	vm_spawn(forged_receiver, NULL);
	vm_spawn(forged_sender, NULL);
	cr_assert(VM_WAIT(atomic_load(&finished), 10000));
	vm_assert_clean();
}

/* ---- monitors and links ---- */

static void wait_forever(void *arg)
{
	vm_wait_forever(arg);
}

static void queue_ordinary(int n)
{
	for (int i = 0; i < n; i++)
		kr_send(kr_self(), T_ORD, &i, sizeof i);
}

/* Wait until n messages are in our mailbox: the next receive takes them
 * all in before it looks. */
static void settle(size_t n)
{
	kr_proc_info i;
	for (int t = 0; t < 10000; t++) {
		if (kr_info(kr_self(), &i) == 0 && i.mailbox_len >= n)
			break;
		kr_sleep(1);
	}
	VM_CHECK(i.mailbox_len >= n, "%zu messages arrived, not %zu", i.mailbox_len, n);
}

static void expect_down(kr_ref ref, int kind, const char *what)
{
	kr_msg *m;
	int rc = kr_recv(&m, 0);
	const kr_down_msg *d = rc == 0 ? kr_msg_down(m) : NULL;
	VM_CHECK(d && d->ref == ref && d->reason.kind == kind, "%s: %s", what,
	         rc ? "nothing queued" : d ? "another DOWN" : "not a DOWN");
	if (rc == 0)
		kr_msg_free(m);
}

static void expect_exit(kr_pid from, int kind, const char *what)
{
	kr_msg *m;
	int rc = kr_recv(&m, 0);
	const kr_exit_msg *e = rc == 0 ? kr_msg_exit(m) : NULL;
	VM_CHECK(e && e->from == from && e->reason.kind == kind, "%s: %s", what,
	         rc ? "nothing queued" : e ? "another exit" : "not an exit message");
	if (rc == 0)
		kr_msg_free(m);
}

static void monitor_watcher(void *arg)
{
	(void)arg;
	kr_pid t = kr_spawn(wait_forever, NULL);
	kr_ref plain = kr_monitor(t);
	kr_ref prio = kr_monitor_priority(t);
	VM_CHECK(plain > 0 && prio > 0, "monitors: %lld %lld", (long long)plain, (long long)prio);
	queue_ordinary(5);
	kr_exit_sig(t, KR_EXIT_KILL);
	settle(7);
	expect_down(prio, KR_EXIT_KILLED, "the priority monitor's DOWN first");
	for (int i = 0; i < 5; i++)
		expect(T_ORD, i, "then the ordinary messages");
	expect_down(plain, KR_EXIT_KILLED, "the plain monitor's DOWN last");
	expect_empty("all taken");

	/* A process gone already: the noproc DOWN is a priority one too. */
	queue_ordinary(2);
	kr_ref gone = kr_monitor_priority(t);
	settle(3);
	expect_down(gone, KR_EXIT_NOPROC, "noproc DOWN of a priority monitor first");
	expect(T_ORD, 0, "ordinary after");
	expect(T_ORD, 1, "ordinary after");

	/* kr_demonitor with flush removes a priority DOWN already queued. */
	kr_pid t2 = kr_spawn(wait_forever, NULL);
	kr_ref r2 = kr_monitor_priority(t2);
	queue_ordinary(1);
	kr_exit_sig(t2, KR_EXIT_KILL);
	settle(2);
	kr_demonitor(r2, 1);
	expect(T_ORD, 0, "the flushed priority DOWN is gone");
	expect_empty("all taken");
	atomic_store(&finished, 1);
}

Test(priority, a_priority_monitor_delivers_its_down_before_ordinary_messages)
{
	vm_start(2);
	vm_spawn(monitor_watcher, NULL);
	cr_assert(VM_WAIT(atomic_load(&finished), 10000));
	vm_assert_clean();
}

static void link_holder(void *arg)
{
	(void)arg;
	kr_trap_exit(1);
	kr_pid t = kr_spawn(wait_forever, NULL);
	kr_pid plain = kr_spawn(wait_forever, NULL);
	VM_CHECK(kr_link_priority(t) == 0 && kr_link(plain) == 0, "links");
	queue_ordinary(3);
	kr_exit_sig(t, KR_EXIT_SHUTDOWN);
	kr_exit_sig(plain, KR_EXIT_SHUTDOWN);
	settle(5);
	expect_exit(t, KR_EXIT_SHUTDOWN, "the priority link's exit first");
	for (int i = 0; i < 3; i++)
		expect(T_ORD, i, "then the ordinary messages");
	expect_exit(plain, KR_EXIT_SHUTDOWN, "the plain link's exit last");

	/* Linking to a process gone already: the noproc exit is a priority one. */
	queue_ordinary(1);
	VM_CHECK(kr_link_priority(t) == 0, "kr_link_priority to a dead pid");
	settle(2);
	expect_exit(t, KR_EXIT_NOPROC, "noproc of a priority link first");
	expect(T_ORD, 0, "ordinary after");

	/* The mark goes with the link: unlinked and linked again plainly,
	 * the exit is an ordinary message. */
	kr_pid t3 = kr_spawn(wait_forever, NULL);
	VM_CHECK(kr_link_priority(t3) == 0 && kr_unlink(t3) == 0 && kr_link(t3) == 0, "relink");
	queue_ordinary(1);
	kr_exit_sig(t3, KR_EXIT_SHUTDOWN);
	settle(2);
	expect(T_ORD, 0, "an ordinary message first");
	expect_exit(t3, KR_EXIT_SHUTDOWN, "the unmarked link's exit in arrival order");

	/* kr_link on a marked link keeps the mark. */
	kr_pid t4 = kr_spawn(wait_forever, NULL);
	VM_CHECK(kr_link_priority(t4) == 0 && kr_link(t4) == 0, "link twice");
	queue_ordinary(1);
	kr_exit_sig(t4, KR_EXIT_SHUTDOWN);
	settle(2);
	expect_exit(t4, KR_EXIT_SHUTDOWN, "the still marked link's exit first");
	expect(T_ORD, 0, "ordinary after");
	expect_empty("all taken");
	atomic_store(&finished, 1);
}

Test(priority, a_priority_link_delivers_its_exit_before_ordinary_messages)
{
	vm_start(2);
	vm_spawn(link_holder, NULL);
	cr_assert(VM_WAIT(atomic_load(&finished), 10000));
	vm_assert_clean();
}

/* ---- exit signals through an alias ---- */

static atomic_int victim_state;

static void exit_trapper(void *arg)
{
	(void)arg;
	kr_trap_exit(1);
	kr_alias a;
	VM_CHECK(kr_alias_priority(&a) == 0, "kr_alias_priority");
	publish(a);
	wait_go();
	expect_exit((kr_pid)(intptr_t)arg, KR_EXIT_SHUTDOWN, "the priority exit first");
	expect(T_ORD, 0, "then the ordinary message");
	expect_empty("all taken");
	atomic_store(&finished, 1);
}

static void victim(void *arg)
{
	(void)arg;
	kr_alias a;
	VM_CHECK(kr_alias_priority(&a) == 0, "kr_alias_priority");
	publish(a);
	atomic_store(&victim_state, 1);
	vm_wait_forever(NULL);
}

Test(priority, an_exit_signal_through_an_alias_is_a_priority_message_for_a_trapping_receiver)
{
	vm_start(2);
	kr_pid me = kr_self(); /* the test thread's mailbox: the exit's sender */
	cr_assert_gt(me, 0);
	kr_pid r = vm_spawn(exit_trapper, (void *)(intptr_t)me);
	cr_assert(VM_WAIT(atomic_load(&alias_pid) == r, 10000));
	kr_alias a = { .pid = r, .ref = atomic_load(&alias_ref) };
	int v = 0;
	kr_send(r, T_ORD, &v, sizeof v);
	kr_reason why = { .kind = KR_EXIT_SHUTDOWN };
	cr_assert_eq(kr_exit_sig_priority(a, &why), 0);
	kr_send(r, T_GO, NULL, 0);
	cr_assert(VM_WAIT(atomic_load(&finished), 10000));
	vm_assert_clean();
}

Test(priority, an_exit_signal_through_an_alias_ends_a_process_that_does_not_trap_and_none_through_a_dead_alias)
{
	vm_start(2);
	kr_pid v = vm_spawn(victim, NULL);
	cr_assert(VM_WAIT(atomic_load(&victim_state) == 1, 10000));
	kr_alias a = { .pid = v, .ref = atomic_load(&alias_ref) };
	kr_ref mon = kr_monitor(v);
	cr_assert_gt(mon, 0);
	/* Through a ref that is not its alias: dropped, it lives on. */
	kr_alias other = { .pid = v, .ref = a.ref + (1 << 11) };
	kr_reason why = { .kind = KR_EXIT_ERROR };
	cr_assert_eq(kr_exit_sig_priority(other, &why), 0);
	kr_msg *m;
	cr_assert_eq(kr_recv_tag(&m, KR_TAG_DOWN, 100), KR_ETIMEDOUT, "ended through a dead alias");
	/* Through its alias: it ends with that reason, as by kr_exit_sig. */
	cr_assert_eq(kr_exit_sig_priority(a, &why), 0);
	cr_assert_eq(kr_recv_tag(&m, KR_TAG_DOWN, 10000), 0);
	cr_assert_eq(kr_msg_down(m)->reason.kind, KR_EXIT_ERROR);
	kr_msg_free(m);
	vm_assert_clean();
}

/* ---- a call with priority messages queued ---- */

static void echo(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (kr_recv_tag(&m, T_ECHO, -1) == 0) {
		kr_reply(m, T_ECHO, m->data, m->len);
		kr_msg_free(m);
	}
}

static void caller_with_priority(void *arg)
{
	(void)arg;
	kr_alias a;
	VM_CHECK(kr_alias_priority(&a) == 0, "kr_alias_priority");
	for (int i = 0; i < 3; i++)
		kr_send_priority(a, T_PRIO, &i, sizeof i);
	queue_ordinary(2);
	settle(5);
	kr_pid e = kr_spawn(echo, NULL);
	int v = 42;
	kr_msg *r = NULL;
	int rc = kr_call(e, T_ECHO, &v, sizeof v, &r, 5000);
	VM_CHECK(rc == 0 && payload(r) == 42, "kr_call with priority messages queued: %d", rc);
	if (rc == 0)
		kr_msg_free(r);
	for (int i = 0; i < 3; i++)
		expect(T_PRIO, i, "the priority messages stayed, first");
	expect(T_ORD, 0, "ordinary");
	expect(T_ORD, 1, "ordinary");
	expect_empty("all taken");
	kr_exit_sig(e, KR_EXIT_KILL);
	atomic_store(&finished, 1);
}

Test(priority, kr_call_finds_its_reply_and_leaves_queued_priority_messages_in_place)
{
	vm_start(2);
	vm_spawn(caller_with_priority, NULL);
	cr_assert(VM_WAIT(atomic_load(&finished), 10000));
	vm_assert_clean();
}

/* ---- many senders ---- */

#define SENDERS 8
#define PER_SENDER (4000 / VM_LIGHT_DIV)
#define EVERY 5 /* every fifth message is a priority one */

static atomic_int stress_received;

static void stress_receiver(void *arg)
{
	(void)arg;
	kr_alias a;
	VM_CHECK(kr_alias_priority(&a) == 0, "kr_alias_priority");
	publish(a);
	int next_ord[SENDERS] = { 0 }, next_prio[SENDERS] = { 0 };
	for (int n = 0; n < SENDERS * PER_SENDER; n++) {
		kr_msg *m;
		int rc = kr_recv(&m, 10000);
		VM_CHECK(rc == 0, "message %d of %d: %d", n, SENDERS * PER_SENDER, rc);
		if (rc)
			return;
		int v[2];
		memcpy(v, m->data, sizeof v);
		int s = v[0], seq = v[1];
		if (m->tag == T_PRIO) {
			VM_CHECK(seq == next_prio[s], "sender %d: priority %d after %d", s, seq, next_prio[s]);
			next_prio[s] = seq + EVERY;
		} else {
			VM_CHECK(seq % EVERY != 0 && seq >= next_ord[s], "sender %d: ordinary %d after %d", s,
			         seq, next_ord[s]);
			/* Every priority message its sender sent before this one
			 * arrived before it, and a receive takes those first. */
			VM_CHECK(next_prio[s] > seq, "sender %d: ordinary %d taken before priority %d", s, seq,
			         next_prio[s]);
			next_ord[s] = seq + 1;
		}
		kr_msg_free(m);
		if (n % 64 == 0)
			kr_sleep(0);
	}
	atomic_store(&stress_received, 1);
}

static void stress_sender(void *arg)
{
	int s = (int)(intptr_t)arg;
	kr_alias a = await_alias();
	for (int seq = 0; seq < PER_SENDER; seq++) {
		int v[2] = { s, seq };
		if (seq % EVERY == 0)
			kr_send_priority(a, T_PRIO, v, sizeof v);
		else
			kr_send(a.pid, T_ORD, v, sizeof v);
	}
}

Test(priority, many_senders_each_kind_stays_in_order_and_priority_comes_first)
{
	vm_start(2);
	vm_spawn(stress_receiver, NULL);
	for (int s = 0; s < SENDERS; s++)
		vm_spawn(stress_sender, (void *)(intptr_t)s);
	cr_assert(VM_WAIT(atomic_load(&stress_received), 30000));
	vm_assert_clean();
}

/* ---- the mailbox limit counts priority messages ---- */

static void flood_priority(void *arg)
{
	(void)arg;
	kr_alias a = await_alias();
	kr_sleep(20); /* the receiver parks */
	for (int i = 0; i < 20; i++)
		kr_send_priority(a, T_PRIO, &i, sizeof i);
	kr_sleep(20);
	/* Room for T_GO once the receiver took them in? It takes nothing in
	 * while parked in kr_recv_tag: the queue holds 5, so GO is refused
	 * too. A signal always gets in: its end tells it to go. */
	kr_exit_sig(a.pid, KR_EXIT_SHUTDOWN);
}

static void limited_trapper(void *arg)
{
	kr_trap_exit(1);
	kr_alias a;
	VM_CHECK(kr_alias_priority(&a) == 0, "kr_alias_priority");
	publish(a);
	kr_msg *m;
	int rc = kr_recv_tag(&m, KR_TAG_EXIT, 10000);
	VM_CHECK(rc == 0, "the exit signal: %d", rc);
	if (rc == 0)
		kr_msg_free(m);
	int n = 0;
	while (kr_recv_tag(&m, T_PRIO, 0) == 0) {
		n++;
		kr_msg_free(m);
	}
	VM_CHECK(n == 5, "max_mailbox 5 let %d priority messages in", n);
	(void)arg;
	atomic_store(&finished, 1);
}

Test(priority, the_mailbox_limit_counts_priority_messages)
{
	vm_start(1);
	uint64_t d0 = vm_dead_letters();
	kr_spawn_opts o = { .max_mailbox = 5, .mailbox_policy = KR_MAILBOX_DROP };
	cr_assert_gt(kr_spawn_opt(limited_trapper, NULL, &o), 0);
	vm_spawn(flood_priority, NULL);
	cr_assert(VM_WAIT(atomic_load(&finished), 10000));
	vm_assert_clean();
	cr_assert_eq(vm_dead_letters() - d0, 15);
}

/* ---- host threads ---- */

static void host_sender(void *arg)
{
	kr_alias a = *(kr_alias *)arg;
	int v = 0;
	kr_send(a.pid, T_ORD, &v, sizeof v);
	kr_send_priority(a, T_PRIO, &v, sizeof v);
	kr_send(a.pid, T_GO, NULL, 0);
}

Test(priority, a_host_thread_gets_its_priority_messages_first)
{
	vm_start(2);
	static kr_alias a;
	cr_assert_eq(kr_alias_priority(&a), 0);
	cr_assert_eq(a.pid, kr_self());
	vm_spawn(host_sender, &a);
	kr_msg *m;
	cr_assert_eq(kr_recv_tag(&m, T_GO, 10000), 0);
	kr_msg_free(m);
	cr_assert_eq(kr_recv(&m, 0), 0);
	cr_assert_eq(m->tag, T_PRIO, "the host thread's first message: tag %llu",
	             (unsigned long long)m->tag);
	kr_msg_free(m);
	cr_assert_eq(kr_recv(&m, 0), 0);
	cr_assert_eq(m->tag, T_ORD);
	kr_msg_free(m);
	cr_assert_eq(kr_unalias(a), 1);
	vm_assert_clean();
}

/* ---- bad arguments ---- */

Test(priority, bad_arguments_are_refused)
{
	vm_start(1);
	kr_alias a;
	cr_assert_eq(kr_alias_priority(NULL), KR_EINVAL);
	cr_assert_eq(kr_alias_priority(&a), 0);
	cr_assert_eq(kr_send_priority((kr_alias){ .pid = a.pid, .ref = 0 }, T_PRIO, NULL, 0), KR_EINVAL);
	cr_assert_eq(kr_send_priority((kr_alias){ .pid = 0, .ref = a.ref }, T_PRIO, NULL, 0), KR_EINVAL);
	cr_assert_eq(kr_send_priority(a, KR_TAG_SUP, NULL, 0), KR_EINVAL, "a reserved tag");
	cr_assert_eq(kr_send_priority(a, T_PRIO, NULL, 4), KR_EINVAL, "data NULL with a length");
	cr_assert_eq(kr_unalias((kr_alias){ .pid = a.pid, .ref = -3 }), KR_EINVAL);
	kr_reason bad = { .kind = 999 };
	cr_assert_eq(kr_exit_sig_priority(a, &bad), KR_EINVAL);
	cr_assert_eq(kr_exit_sig_priority(a, NULL), KR_EINVAL);
	cr_assert_eq(kr_exit_sig_priority((kr_alias){ .pid = a.pid, .ref = 0 },
	                                  &(kr_reason){ .kind = KR_EXIT_NORMAL }),
	             KR_EINVAL);
	cr_assert_eq(kr_link_priority(0), KR_EINVAL);
	cr_assert_eq(kr_monitor_priority(0), KR_EINVAL);
	cr_assert_eq(kr_unalias(a), 1);
	vm_stop();
	cr_assert_eq(kr_alias_priority(&a), KR_ESTOPPED);
	cr_assert_eq(kr_send_priority(a, T_PRIO, NULL, 0), KR_ESTOPPED);
}
