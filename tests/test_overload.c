/*
 * test_overload.c - overload (vm/send.c): the per-process mailbox limit
 * (kr_spawn_opts.max_mailbox) under both policies, and the signals it must
 * never refuse.
 *
 * The exact counts use one scheduler: with one, no message waits in another
 * scheduler's outbox, so the limit holds exactly (with more it holds up to
 * an outbox batch per other scheduler: krill.h).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "krill.h"
#include "vm_util.h"

TestSuite(overload, .fini = vm_fini, .timeout = 60);

enum { T_FLOOD = 1, T_AGAIN, T_ECHO, T_SERVER_STOP, T_X_GO };

#define LIMIT 10
#define FLOOD 100

/* ---- the drop policy ---- */

/* R: held in a selective receive of a trapped exit signal while the flood
 * comes; then counts what it was let keep, and takes a message again once
 * it has room. */
static atomic_long drop_kept = -1;
static atomic_int drop_again;

static void drop_receiver(void *arg)
{
	(void)arg;
	kr_trap_exit(1);
	kr_msg *m;
	int rc = kr_recv_tag(&m, KR_TAG_EXIT, 10000);
	VM_CHECK(rc == 0, "no exit signal reached the full mailbox: %d", rc);
	if (rc)
		return;
	kr_msg_free(m);
	long n = 0;
	while (kr_recv_tag(&m, T_FLOOD, 0) == 0) {
		n++;
		kr_msg_free(m);
	}
	atomic_store(&drop_kept, n);
	rc = kr_recv_tag(&m, T_AGAIN, 10000);
	VM_CHECK(rc == 0, "a message to the drained mailbox was refused: %d", rc);
	if (rc == 0)
		kr_msg_free(m);
	atomic_store(&drop_again, 1);
}

static void drop_sender(void *arg)
{
	(void)arg;
	kr_spawn_opts o = { .max_mailbox = LIMIT, .mailbox_policy = KR_MAILBOX_DROP };
	kr_pid r = kr_spawn_opt(drop_receiver, NULL, &o);
	VM_CHECK(r > 0, "spawn with max_mailbox: %lld", (long long)r);
	kr_sleep(20); /* r waits in its receive */
	for (int i = 0; i < FLOOD; i++)
		VM_CHECK(kr_send(r, T_FLOOD, &i, sizeof i) == 0, "a refused send is not an error");
	/* A request to a full mailbox fails at once, as to a dead process. */
	kr_msg *reply = NULL;
	int rc = kr_call(r, T_ECHO, NULL, 0, &reply, 5000);
	VM_CHECK(rc == KR_ENOPROC, "kr_call to a full mailbox: %d, not KR_ENOPROC", rc);
	VM_CHECK(kr_exit_sig(r, KR_EXIT_SHUTDOWN) == 0, "exit signal");
	for (int i = 0; i < 1000 && atomic_load(&drop_kept) < 0; i++)
		kr_sleep(1);
	VM_CHECK(kr_send(r, T_AGAIN, NULL, 0) == 0, "send after the drain");
}

Test(overload, drop_policy_keeps_at_most_max_mailbox)
{
	vm_start(1);
	kr_vm_stats s0 = vm_stats();
	vm_spawn(drop_sender, NULL);
	cr_assert(VM_WAIT(atomic_load(&drop_again) == 1, 10000));
	vm_assert_clean();
	cr_assert_eq(atomic_load(&drop_kept), LIMIT, "kept %ld of %d with max_mailbox %d",
	             atomic_load(&drop_kept), FLOOD, LIMIT);
	kr_vm_stats s1 = vm_stats();
	cr_assert_geq(s1.dead_letters - s0.dead_letters, FLOOD - LIMIT + 1,
	              "dead letters %llu, want the %d refused and the request",
	              (unsigned long long)(s1.dead_letters - s0.dead_letters), FLOOD - LIMIT);
	vm_stop();
}

/* ---- signals pass a full mailbox ---- */

/* R fills its own mailbox (sends to itself past the limit), then must
 * still get: a DOWN, a reply to its own kr_call, and a trapped exit. */
static atomic_int sig_steps;

static void sig_server(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (kr_recv(&m, 10000) == 0) {
		uint64_t tag = m->tag;
		if (tag == T_ECHO)
			kr_reply(m, T_ECHO, "pong", 4);
		kr_msg_free(m);
		if (tag == T_SERVER_STOP)
			return;
	}
}

static void sig_x(void *arg)
{
	(void)arg;
	kr_msg *m;
	if (kr_recv_tag(&m, T_X_GO, 10000) == 0)
		kr_msg_free(m);
}

static void sig_receiver(void *arg)
{
	(void)arg;
	kr_trap_exit(1);
	kr_pid me = kr_self();
	kr_pid server = kr_spawn(sig_server, NULL);
	kr_pid x = kr_spawn(sig_x, NULL);
	kr_ref mon = kr_monitor(x);
	VM_CHECK(server > 0 && x > 0 && mon > 0, "spawn, monitor");
	for (int i = 0; i < FLOOD; i++)
		kr_send(me, T_FLOOD, &i, sizeof i);
	/* The mailbox holds LIMIT now: every signal below must still land. */
	kr_send(x, T_X_GO, NULL, 0);
	kr_msg *m;
	int rc = kr_recv_tag(&m, KR_TAG_DOWN, 5000);
	VM_CHECK(rc == 0, "the DOWN was refused by the full mailbox: %d", rc);
	if (rc == 0) {
		kr_msg_free(m);
		atomic_fetch_add(&sig_steps, 1);
	}
	kr_msg *reply = NULL;
	rc = kr_call(server, T_ECHO, NULL, 0, &reply, 5000);
	VM_CHECK(rc == 0 && reply && reply->len == 4, "the reply was refused: %d", rc);
	if (rc == 0) {
		kr_msg_free(reply);
		atomic_fetch_add(&sig_steps, 1);
	}
	kr_send(server, T_SERVER_STOP, NULL, 0);
	kr_exit_sig(me, KR_EXIT_SHUTDOWN); /* trapped: a message */
	rc = kr_recv_tag(&m, KR_TAG_EXIT, 5000);
	VM_CHECK(rc == 0, "the exit signal was refused: %d", rc);
	if (rc == 0) {
		kr_msg_free(m);
		atomic_fetch_add(&sig_steps, 1);
	}
	long n = 0;
	while (kr_recv_tag(&m, T_FLOOD, 0) == 0) {
		n++;
		kr_msg_free(m);
	}
	VM_CHECK(n == LIMIT, "kept %ld ordinary messages, want %d", n, LIMIT);
	atomic_fetch_add(&sig_steps, 1);
}

Test(overload, signals_pass_a_full_mailbox)
{
	vm_start(1);
	kr_spawn_opts o = { .max_mailbox = LIMIT, .mailbox_policy = KR_MAILBOX_DROP };
	cr_assert_gt(kr_spawn_opt(sig_receiver, NULL, &o), 0);
	cr_assert(VM_WAIT(atomic_load(&sig_steps) == 4 || atomic_load(&vm_fails), 20000));
	vm_assert_clean();
	vm_stop();
}

/* ---- the kill policy ---- */

static atomic_int kill_kind = -1;
static char kill_text[128];
static atomic_int kill_reported;

static void log_handler(int level, const char *line, void *ctx)
{
	(void)ctx;
	if (level <= KR_LOG_ERROR && strstr(line, "mailbox_limit"))
		atomic_store(&kill_reported, 1);
}

/* Trapping exits, and either waiting in a selective receive (arg NULL) or
 * busy, never receiving (arg non-NULL): the limit ends it either way. */
static void kill_victim(void *arg)
{
	kr_trap_exit(1);
	if (!arg) {
		kr_msg *m;
		(void)kr_recv_tag(&m, T_AGAIN, 10000);
		VM_CHECK(0, "the receive of a process past its max_mailbox returned");
		return;
	}
	for (int i = 0; i < 200000 && !atomic_load(&vm_abort); i++) {
		vm_spin_us(50);
		kr_yield();
	}
	VM_CHECK(0, "a busy process past its max_mailbox went on running");
}

static void kill_sender(void *arg)
{
	kr_ref ref = 0;
	kr_spawn_opts o = { .max_mailbox = LIMIT, .monitor = &ref };
	kr_pid v = kr_spawn_opt(kill_victim, arg, &o);
	VM_CHECK(v > 0 && ref > 0, "spawn with max_mailbox: %lld", (long long)v);
	kr_sleep(20);
	for (int i = 0; i < FLOOD; i++)
		kr_send(v, T_FLOOD, &i, sizeof i);
	kr_msg *m;
	int rc = kr_recv_tag(&m, KR_TAG_DOWN, 10000);
	VM_CHECK(rc == 0, "no DOWN from the process past its max_mailbox: %d", rc);
	if (rc)
		return;
	const kr_down_msg *d = kr_msg_down(m);
	if (d) {
		snprintf(kill_text, sizeof kill_text, "%.*s", (int)sizeof d->reason.text,
		         d->reason.text);
		atomic_store(&kill_kind, d->reason.kind);
	}
	kr_msg_free(m);
}

static void kill_case(void *busy)
{
	kr_config cfg = { .schedulers = 1, .log_handler = log_handler };
	vm_start_cfg(&cfg);
	vm_spawn(kill_sender, busy);
	cr_assert(VM_WAIT(atomic_load(&kill_kind) >= 0, 10000), "no DOWN");
	vm_assert_clean();
	cr_assert_eq(atomic_load(&kill_kind), KR_EXIT_MAILBOX_LIMIT, "reason %s: %s",
	             kr_exit_kind_name(atomic_load(&kill_kind)), kill_text);
	cr_assert(strstr(kill_text, "max_mailbox 10"), "reason text \"%s\"", kill_text);
	cr_assert_str_eq(kr_exit_kind_name(KR_EXIT_MAILBOX_LIMIT), "mailbox_limit");
	cr_assert(VM_WAIT(atomic_load(&kill_reported), 5000), "no error report of mailbox_limit");
	vm_stop();
}

Test(overload, kill_policy_ends_a_receiving_process_with_mailbox_limit)
{
	kill_case(NULL);
}

Test(overload, kill_policy_ends_a_busy_process_too)
{
	kill_case((void *)1);
}

/* ---- bad options ---- */

static void nothing(void *arg)
{
	(void)arg;
}

Test(overload, bad_mailbox_options_are_einval)
{
	vm_start(1);
	kr_spawn_opts o = { .max_mailbox = KR_MAILBOX_MAX + 1 };
	cr_assert_eq(kr_spawn_opt(nothing, NULL, &o), KR_EINVAL);
	o = (kr_spawn_opts){ .max_mailbox = 5, .mailbox_policy = 7 };
	cr_assert_eq(kr_spawn_opt(nothing, NULL, &o), KR_EINVAL);
	o = (kr_spawn_opts){ .max_mailbox = KR_MAILBOX_MAX, .mailbox_policy = KR_MAILBOX_DROP };
	cr_assert_gt(kr_spawn_opt(nothing, NULL, &o), 0);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* ---- in a supervisor's child spec ---- */

static void never_receives(void *arg)
{
	(void)arg;
	kr_msg *m;
	kr_recv_tag(&m, T_X_GO, KR_INFINITY); /* never sent: the flood piles up */
}

static kr_pid only_child(kr_pid sup)
{
	kr_sup_child c;
	return kr_sup_which_children(sup, &c, 1) == 1 ? c.pid : 0;
}

Test(overload, a_child_spec_limits_the_mailbox_and_its_supervisor_restarts_the_child)
{
	kr_config cfg = { .schedulers = 1, .log_handler = log_handler };
	vm_start_cfg(&cfg);
	kr_sup_flags f = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 5, .period_ms = 5000 };
	kr_child_spec spec = { .id = "slow", .start = never_receives, .restart = KR_PERMANENT,
		               .max_mailbox = LIMIT };
	kr_pid sup = kr_sup_start_link(&f, &spec, 1, NULL);
	cr_assert_gt(sup, 0, "kr_sup_start_link: %lld", (long long)sup);
	kr_pid first = only_child(sup);
	cr_assert_gt(first, 0);
	kr_ref mon = kr_monitor(first);
	for (int i = 0; i < FLOOD; i++)
		kr_send(first, T_FLOOD, &i, sizeof i);
	kr_msg *m;
	cr_assert_eq(kr_recv_tag(&m, KR_TAG_DOWN, 10000), 0, "the child outlived its max_mailbox");
	cr_assert_eq(kr_msg_down(m)->ref, mon);
	cr_assert_eq(kr_msg_down(m)->reason.kind, KR_EXIT_MAILBOX_LIMIT, "the child ended with %s",
	             kr_exit_kind_name(kr_msg_down(m)->reason.kind));
	kr_msg_free(m);
	cr_assert(VM_WAIT(only_child(sup) > 0 && only_child(sup) != first, 10000),
	          "the supervisor did not restart the child");
	/* Bad limits in a spec are refused, as in kr_spawn_opts. */
	kr_child_spec bad = spec;
	bad.max_mailbox = KR_MAILBOX_MAX + 1;
	cr_assert_eq(kr_sup_start_link(&f, &bad, 1, NULL), KR_EINVAL);
	bad = spec;
	bad.mailbox_policy = 9;
	cr_assert_eq(kr_sup_start_link(&f, &bad, 1, NULL), KR_EINVAL);
	vm_assert_clean();
	vm_stop();
}
