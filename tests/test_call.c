/*
 * test_call.c - request and reply (vm/call.c): a reply reaches its caller
 * and nothing else does; a call to a server that is gone, or that ends
 * before replying, is KR_ENOPROC; a timeout is KR_ETIMEDOUT and the late
 * reply is dropped on arrival; messages queued before the call stay, in
 * order; after any of these, nothing of the call is left in the mailbox.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "krill.h"
#include "vm_util.h"

TestSuite(call, .fini = vm_fini, .timeout = 60);

enum { T_ADD = 1, T_SLOW, T_DIE, T_SUM, T_NOTE };

/* Replies to T_ADD with the number plus one; sleeps before replying to
 * T_SLOW; ends without replying to T_DIE. */
static void server(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0) {
		int v = 0;
		if (m->len == sizeof v)
			memcpy(&v, m->data, sizeof v);
		if (m->tag == T_SLOW)
			kr_sleep(v);
		if (m->tag == T_DIE)
			kr_crash("asked to");
		VM_CHECK(m->ref > 0, "a call's request has no ref");
		v++;
		VM_CHECK(kr_reply(m, T_SUM, &v, sizeof v) == 0, "kr_reply");
		kr_msg_free(m);
	}
}

static atomic_int client_done;

static int reply_int(kr_msg *r)
{
	int v = -1;
	if (r && r->len == sizeof v)
		memcpy(&v, r->data, sizeof v);
	return v;
}

static void client(void *arg)
{
	kr_pid srv = *(kr_pid *)arg;
	kr_msg *r;
	/* Messages already queued must stay, in order, untouched by calls. */
	kr_pid me = kr_self();
	for (int i = 0; i < 1000; i++)
		kr_send(me, T_NOTE, &i, sizeof i);
	for (int i = 0; i < 100; i++) {
		int rc = kr_call(srv, T_ADD, &i, sizeof i, &r, 5000);
		VM_CHECK(rc == 0, "call %d: %d", i, rc);
		if (rc)
			return;
		VM_CHECK(r->tag == T_SUM && reply_int(r) == i + 1 && r->sender == srv,
		         "reply %d: tag %llu value %d", i, (unsigned long long)r->tag, reply_int(r));
		kr_msg_free(r);
	}
	/* A timeout, then the late reply must not appear. */
	int slow = 200;
	int rc = kr_call(srv, T_SLOW, &slow, sizeof slow, &r, 20);
	VM_CHECK(rc == KR_ETIMEDOUT && r == NULL, "a slow call: %d", rc);
	kr_sleep(400); /* the reply comes meanwhile, and is dropped */
	/* The server is still fine. */
	int one = 1;
	rc = kr_call(srv, T_ADD, &one, sizeof one, &r, 5000);
	VM_CHECK(rc == 0 && reply_int(r) == 2, "a call after a timeout: %d", rc);
	if (rc == 0)
		kr_msg_free(r);
	/* Exactly the 1000 notes are left, in order. */
	kr_proc_info info;
	kr_info(me, &info);
	VM_CHECK(info.mailbox_len == 1000, "%zu messages left, want the 1000 notes", info.mailbox_len);
	for (int i = 0; i < 1000; i++) {
		kr_msg *m;
		if (kr_recv(&m, 0) != 0) {
			VM_CHECK(0, "note %d missing", i);
			return;
		}
		int v = reply_int(m);
		VM_CHECK(m->tag == T_NOTE && v == i, "note %d: tag %llu value %d", i,
		         (unsigned long long)m->tag, v);
		kr_msg_free(m);
	}
	/* A server that ends before replying. */
	rc = kr_call(srv, T_DIE, NULL, 0, &r, 5000);
	VM_CHECK(rc == KR_ENOPROC, "a call to a server that died: %d", rc);
	/* A server that is gone. */
	rc = kr_call(srv, T_ADD, &one, sizeof one, &r, 5000);
	VM_CHECK(rc == KR_ENOPROC, "a call to a dead server: %d", rc);
	kr_msg *m;
	VM_CHECK(kr_recv(&m, 50) == KR_ETIMEDOUT, "something left after the calls");
	atomic_store(&client_done, 1);
}

Test(call, calls_replies_timeouts_and_dead_servers)
{
	static kr_pid srv;
	vm_start_quiet(2);
	srv = vm_spawn_on(server, NULL, 1);
	vm_spawn_on(client, &srv, 2);
	cr_assert(VM_WAIT(atomic_load(&client_done) || atomic_load(&vm_fails), 20000));
	vm_assert_clean();
	vm_stop();
}

/* Many callers on one server at once: each gets its own answer. */
#define CALLERS 50
#define CALLS (2000 / VM_LIGHT_DIV)
static atomic_int callers_done;

static void many_client(void *arg)
{
	kr_pid srv = *(kr_pid *)arg;
	for (int i = 0; i < CALLS; i++) {
		kr_msg *r;
		int v = i * 7;
		int rc = kr_call(srv, T_ADD, &v, sizeof v, &r, 10000);
		VM_CHECK(rc == 0 && reply_int(r) == v + 1, "call %d: rc %d value %d", i, rc,
		         rc ? -1 : reply_int(r));
		if (rc)
			return;
		kr_msg_free(r);
	}
	atomic_fetch_add(&callers_done, 1);
}

Test(call, many_callers_each_get_their_own_replies)
{
	static kr_pid srv;
	vm_start(2);
	srv = vm_spawn(server, NULL);
	for (int i = 0; i < CALLERS; i++)
		vm_spawn(many_client, &srv);
	cr_assert(VM_WAIT(atomic_load(&callers_done) == CALLERS || atomic_load(&vm_fails), 60000));
	vm_assert_clean();
	vm_stop();
}

static void not_a_call(void *arg)
{
	(void)arg;
	kr_pid me = kr_self();
	kr_send(me, 1, NULL, 0);
	kr_msg *m;
	VM_CHECK(kr_recv(&m, 1000) == 0, "own message");
	VM_CHECK(kr_reply(m, 1, NULL, 0) == KR_EINVAL, "kr_reply to a plain message");
	kr_msg_free(m);
	kr_msg *r = (kr_msg *)1;
	VM_CHECK(kr_call(0, 1, NULL, 0, &r, 10) == KR_EINVAL && r == NULL, "kr_call(0)");
	VM_CHECK(kr_call(me, KR_TAG_DOWN, NULL, 0, &r, 10) == KR_EINVAL, "a reserved tag");
	VM_CHECK(kr_call(me, 1, NULL, 0, NULL, 10) == KR_EINVAL, "no reply pointer");
	atomic_store(&client_done, 1);
}

Test(call, bad_arguments)
{
	vm_start(1);
	kr_msg *r;
	cr_assert_eq(kr_call(1, 1, NULL, 0, &r, 10), KR_EINVAL); /* a host thread may call: test_host.c */
	cr_assert_eq(kr_reply(NULL, 1, NULL, 0), KR_EINVAL);
	atomic_store(&client_done, 0);
	vm_spawn(not_a_call, NULL);
	cr_assert(VM_WAIT(atomic_load(&client_done), 5000));
	vm_assert_clean();
	vm_stop();
}

/* A call's request never overtakes a message its caller sent before it,
 * even one held in the send buffer for a busy server on another scheduler. */
#define OVERTAKE_ROUNDS (1000 / VM_LIGHT_DIV)
enum { T_FIRST = 20, T_SECOND };
static atomic_int overtake_done, overtaken;

static void busy_server(void *arg)
{
	(void)arg;
	kr_msg *m;
	int expect = T_FIRST;
	while (kr_recv(&m, 5000) == 0) {
		if (m->tag != (uint64_t)expect)
			atomic_fetch_add(&overtaken, 1);
		expect = expect == T_FIRST ? T_SECOND : T_FIRST;
		if (m->tag == T_SECOND)
			kr_reply(m, T_SUM, NULL, 0);
		kr_msg_free(m);
		vm_spin_us(50); /* busy: its callers' sends are held in their outbox */
	}
}

static void overtake_client(void *arg)
{
	kr_pid srv = *(kr_pid *)arg;
	for (int i = 0; i < OVERTAKE_ROUNDS; i++) {
		kr_msg *r;
		kr_send(srv, T_FIRST, NULL, 0);
		int rc = kr_call(srv, T_SECOND, NULL, 0, &r, 5000);
		VM_CHECK(rc == 0, "call %d: %d", i, rc);
		if (rc)
			return;
		kr_msg_free(r);
	}
	atomic_store(&overtake_done, 1);
}

Test(call, a_request_does_not_overtake_a_message_sent_before_it)
{
	static kr_pid srv;
	vm_start(2);
	srv = vm_spawn_on(busy_server, NULL, 2);
	vm_spawn_on(overtake_client, &srv, 1);
	cr_assert(VM_WAIT(atomic_load(&overtake_done) || atomic_load(&vm_fails), 60000));
	vm_assert_clean();
	cr_assert_eq(atomic_load(&overtaken), 0, "%d requests overtook a message sent before them",
	             atomic_load(&overtaken));
	vm_stop();
}

/*
 * A late reply never reaches a caller parked right here. The reply to a
 * call that timed out is dropped as it is taken in; but a reply sent to a
 * caller that is its server's partner, parked with its commit deferred, may
 * go straight into the caller's queue, and must only when the caller waits
 * for that very reply. Here the caller polls (timeout 0, so the request is
 * queued and the call is over), then wakes the server with a note and
 * parks: the server, its partner on one scheduler, replies to the old
 * request first, then echoes the note. The caller must see the note only.
 */
enum { LATE_ROUNDS = 200 };
static atomic_int late_done;

static void echo_server(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0) {
		if (m->ref > 0)
			VM_CHECK(kr_reply(m, T_SUM, NULL, 0) == 0, "kr_reply");
		else
			VM_CHECK(kr_send(m->sender, T_NOTE, NULL, 0) == 0, "echo");
		kr_msg_free(m);
	}
}

static void late_client(void *arg)
{
	kr_pid srv = *(kr_pid *)arg;
	for (int i = 0; i < LATE_ROUNDS; i++) {
		kr_msg *r, *m;
		int rc = kr_call(srv, T_ADD, NULL, 0, &r, 0);
		VM_CHECK(rc == KR_ETIMEDOUT, "round %d: a polling call: %d", i, rc);
		kr_send(srv, T_NOTE, NULL, 0);
		rc = kr_recv(&m, 5000);
		VM_CHECK(rc == 0 && m->tag == T_NOTE, "round %d: got %d, tag %llu (the late reply?)", i,
		         rc, rc ? 0ull : (unsigned long long)m->tag);
		if (rc)
			return;
		kr_msg_free(m);
	}
	kr_msg *m;
	VM_CHECK(kr_recv(&m, 50) == KR_ETIMEDOUT, "a late reply was left in the mailbox");
	atomic_store(&late_done, 1);
}

Test(call, a_late_reply_never_reaches_a_caller_parked_right_here)
{
	static kr_pid srv;
	vm_start(1);
	srv = vm_spawn_on(echo_server, NULL, 1);
	vm_spawn_on(late_client, &srv, 1);
	cr_assert(VM_WAIT(atomic_load(&late_done) || atomic_load(&vm_fails), 20000));
	vm_assert_clean();
	vm_stop();
}

/* A request handed straight to a server parked right here (the caller is
 * its partner on one scheduler) is still a request: if the server ends
 * without replying, its end answers the call (KR_ENOPROC), rather than
 * leaving the caller to wait for ever. Fails when the direct path turns a
 * request into a plain message, which the server's end does not answer. */
static atomic_int direct_done;

static void direct_client(void *arg)
{
	kr_pid srv = *(kr_pid *)arg;
	kr_msg *r;
	int one = 1, rc;
	/* A few round trips, so that the server is parked right here. */
	for (int i = 0; i < 10; i++) {
		rc = kr_call(srv, T_ADD, &one, sizeof one, &r, 5000);
		VM_CHECK(rc == 0, "call %d: %d", i, rc);
		if (rc == 0)
			kr_msg_free(r);
	}
	rc = kr_call(srv, T_DIE, NULL, 0, &r, 2000);
	VM_CHECK(rc == KR_ENOPROC, "a call the server dies in: %d, want KR_ENOPROC", rc);
	atomic_store(&direct_done, 1);
}

Test(call, a_server_parked_right_here_that_dies_answers_the_call)
{
	static kr_pid srv;
	kr_config cfg = { .schedulers = 1, .log = vm_quiet_log };
	vm_start_cfg(&cfg);
	srv = vm_spawn_on(server, NULL, 1);
	vm_spawn_on(direct_client, &srv, 1);
	cr_assert(VM_WAIT(atomic_load(&direct_done) || atomic_load(&vm_fails), 20000));
	vm_assert_clean();
	vm_stop();
}
