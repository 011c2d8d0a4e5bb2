/*
 * test_server.c - the generic server (vm/server.c), against gen_server's
 * rules: a start waits for init, and a failed or ignored init leaves no
 * process, no link and no message behind; calls are answered now or later
 * and in any order; casts and other messages reach their own callbacks;
 * a stop from a callback, from kr_server_stop or from a supervisor's
 * shutdown (trapping) runs terminate, and a reply held by a stop comes
 * after it; a caller learns why its server is not there; a crash is
 * reported and its supervisor restarts it; an idle server hibernates and
 * keeps its state; a callback's timeout becomes a message.
 *
 * Each test's body runs as a process (run), which checks with VM_CHECK;
 * the servers record what their callbacks saw in the counters below.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "krill.h"
#include "vm_util.h"

TestSuite(server, .fini = vm_fini, .timeout = 60);

/* ---- reports: captured, so that expected crashes stay off stderr ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[1 << 16];
static size_t log_len;

static void capture(const char *line, void *ctx)
{
	(void)ctx;
	/* A server's end reports before its pid dies: a slow report holds
	 * it alive long enough to see whether a start waited for its end. */
	if (strstr(line, "bad config"))
		vm_host_sleep_ms(20);
	pthread_mutex_lock(&log_lock);
	int n = snprintf(log_text + log_len, sizeof log_text - log_len, "%s\n", line);
	if (n > 0 && log_len + (size_t)n < sizeof log_text)
		log_len += (size_t)n;
	pthread_mutex_unlock(&log_lock);
}

static bool logged(const char *needle)
{
	pthread_mutex_lock(&log_lock);
	bool found = strstr(log_text, needle) != NULL;
	pthread_mutex_unlock(&log_lock);
	return found;
}

/* ---- the server under test ---- */

enum {
	ADD = 1,      /* call: n += v, reply n */
	GET,          /* call: reply n */
	WAIT,         /* call: no reply now; held for RELEASE */
	RELEASE,      /* call: reply to the held calls, last first, then to this one */
	CRASH,        /* call: crash */
	STOP_REPLY,   /* call: stop (kind v) with a reply, after terminate */
	STOP_NOREPLY, /* call: stop (kind v) without a reply */
	SLOW,         /* call: sleep v ms, then reply */
	WATCH,        /* call: monitor a process that ends at once: a DOWN for handle_info */
	LINK_CRASH,   /* call: link to a process that crashes (the server traps exits) */
	BAD_RETURN,   /* call: return an action no callback may return */
	AFTER,        /* call: reply, and set a timeout of v ms */
	SLEEP_NOW,    /* call: reply, and hibernate now */
	CALL_SELF,    /* call: kr_server_call oneself, reply with what it returned */
	REPLY_TAG,    /* call: reply with a tag krill reserves (a bad reply) */
	NOTE,         /* a plain message, a cast */
	VALUE         /* replies */
};

/* init's behaviours, chosen by kr_server_start's arg. */
enum { INIT_OK, INIT_STOP, INIT_IGNORE, INIT_CRASH, INIT_SLOW, INIT_TRAP };

typedef struct ts {
	long n;
	kr_server_from held[8];
	int nheld;
} ts;

/* What the callbacks saw. */
static atomic_int inits, terminated, term_kind, casts, infos, downs, exits, timeouts;
static atomic_long cast_sum, info_tag;
static atomic_llong last_server; /* the pid init ran in */
static atomic_int term_sleep_ms; /* terminate sleeps this long first */

static kr_server_ret ts_init(void *arg, void **state)
{
	atomic_store(&last_server, kr_self());
	atomic_fetch_add(&inits, 1);
	kr_server_ret r;
	switch ((int)(intptr_t)arg) {
	case INIT_STOP:
		r = kr_server_ret_stop(KR_EXIT_ERROR);
		strcpy(r.reason.text, "bad config");
		return r;
	case INIT_IGNORE:
		return kr_server_ret_ignore();
	case INIT_CRASH:
		kr_crash("init crashed");
		break;
	case INIT_SLOW:
		kr_sleep(2000);
		break;
	case INIT_TRAP:
		kr_trap_exit(1);
		break;
	}
	ts *s = kr_calloc(1, sizeof *s);
	*state = s;
	return kr_server_ret_ok();
}

static long payload(const kr_msg *m)
{
	long v = 0;
	if (m->len == sizeof v)
		memcpy(&v, m->data, sizeof v);
	return v;
}

static void dies(void *arg)
{
	(void)arg;
}

static void crashes(void *arg)
{
	(void)arg;
	kr_sleep(5);
	kr_crash("linked and crashed");
}

static kr_server_ret ts_call(const kr_msg *req, kr_server_from from, void *state)
{
	ts *s = state;
	long v = payload(req);
	kr_server_ret r;
	switch (req->tag) {
	case ADD:
		s->n += v;
		return kr_server_ret_reply(from, VALUE, &s->n, sizeof s->n);
	case GET:
		return kr_server_ret_reply(from, VALUE, &s->n, sizeof s->n);
	case WAIT:
		VM_CHECK(s->nheld < 8, "too many held");
		s->held[s->nheld++] = from;
		return kr_server_ret_noreply();
	case RELEASE:
		/* Out of order: the call held last is answered first. */
		while (s->nheld > 0) {
			long i = --s->nheld;
			VM_CHECK(kr_server_reply(s->held[i], VALUE, &i, sizeof i) == 0, "reply %ld", i);
		}
		return kr_server_ret_reply(from, VALUE, &v, sizeof v);
	case CRASH:
		kr_crash("asked to crash");
		break;
	case STOP_REPLY:
		return kr_server_ret_stop_reply((int)v, from, VALUE, &s->n, sizeof s->n);
	case STOP_NOREPLY:
		return kr_server_ret_stop((int)v);
	case SLOW:
		kr_sleep(v);
		return kr_server_ret_reply(from, VALUE, &v, sizeof v);
	case WATCH: {
		kr_pid p = kr_spawn(dies, NULL);
		VM_CHECK(kr_monitor(p) > 0, "monitor");
		return kr_server_ret_reply(from, VALUE, &v, sizeof v);
	}
	case LINK_CRASH: {
		kr_spawn_opts o = { .link = 1 };
		VM_CHECK(kr_spawn_opt(crashes, NULL, &o) > 0, "spawn_link");
		return kr_server_ret_reply(from, VALUE, &v, sizeof v);
	}
	case BAD_RETURN:
		r = kr_server_ret_ok();
		r.action = 42;
		return r;
	case AFTER:
		r = kr_server_ret_reply(from, VALUE, &v, sizeof v);
		r.timeout_ms = v;
		return r;
	case SLEEP_NOW:
		r = kr_server_ret_reply(from, VALUE, &v, sizeof v);
		r.hibernate = 1;
		return r;
	case CALL_SELF: {
		kr_msg *m;
		long rc = kr_server_call(kr_self(), GET, NULL, 0, &m, 1000);
		return kr_server_ret_reply(from, VALUE, &rc, sizeof rc);
	}
	case REPLY_TAG:
		return kr_server_ret_reply(from, KR_TAG_SUP, NULL, 0);
	}
	return kr_server_ret_noreply();
}

static kr_server_ret ts_cast(const kr_msg *msg, void *state)
{
	ts *s = state;
	long v = payload(msg);
	s->n += v;
	atomic_fetch_add(&cast_sum, v);
	atomic_fetch_add(&casts, 1);
	return kr_server_ret_ok();
}

static kr_server_ret ts_info(const kr_msg *msg, void *state)
{
	(void)state;
	if (kr_msg_down(msg))
		atomic_fetch_add(&downs, 1);
	else if (kr_msg_exit(msg))
		atomic_fetch_add(&exits, 1);
	else if (msg->tag == KR_TAG_SERVER_TIMEOUT)
		atomic_fetch_add(&timeouts, 1);
	else
		atomic_fetch_add(&infos, 1);
	atomic_store(&info_tag, (long)msg->tag);
	return kr_server_ret_ok();
}

static void ts_terminate(const kr_reason *reason, void *state)
{
	(void)state;
	if (atomic_load(&term_sleep_ms))
		kr_sleep(atomic_load(&term_sleep_ms));
	atomic_store(&term_kind, reason->kind);
	atomic_fetch_add(&terminated, 1);
}

static const kr_server_callbacks ts_cb = {
	.init = ts_init,
	.handle_call = ts_call,
	.handle_cast = ts_cast,
	.handle_info = ts_info,
	.terminate = ts_terminate,
};

/* ---- helpers for the bodies ---- */

/* Call with a long; the reply's long (or -1000 - the error). */
static long call(kr_pid srv, uint64_t tag, long v)
{
	kr_msg *r;
	int rc = kr_server_call(srv, tag, &v, sizeof v, &r, 5000);
	if (rc)
		return -1000 + rc;
	long out = payload(r);
	VM_CHECK(r->tag == VALUE && r->sender == srv, "reply tag %llu", (unsigned long long)r->tag);
	kr_msg_free(r);
	return out;
}

static kr_pid start(int mode)
{
	kr_pid p = kr_server_start(&ts_cb, (void *)(intptr_t)mode, NULL);
	VM_CHECK(p > 0, "kr_server_start: %lld", (long long)p);
	return p;
}

/* Wait (in a process, with a deadline) until cond holds. */
#define WAIT_FOR(cond, ms)                                                \
	__extension__({                                                   \
		int64_t wf_end_ = vm_now_ns() + (int64_t)(ms) * 1000000;  \
		while (!(cond) && vm_now_ns() < wf_end_)                  \
			kr_sleep(1);                                      \
		!!(cond);                                                 \
	})

static size_t mailbox_len(void)
{
	kr_proc_info i;
	return kr_info(kr_self(), &i) == 0 ? i.mailbox_len : (size_t)-1;
}

/* Monitor pid and wait for its end: its reason. */
static kr_reason await_end(kr_pid pid)
{
	kr_reason why = { .kind = -1 };
	kr_ref ref = kr_monitor(pid);
	kr_msg *m;
	while (kr_recv_tag(&m, KR_TAG_DOWN, 5000) == 0) {
		bool mine = kr_msg_down(m)->ref == ref;
		if (mine)
			why = kr_msg_down(m)->reason;
		kr_msg_free(m);
		if (mine)
			break;
	}
	return why;
}

static atomic_int body_done;

typedef void body_fn(void);

static void body_main(void *arg)
{
	body_fn *fn = *(body_fn **)arg;
	fn();
	atomic_store(&body_done, 1);
}

/* Run fn as a process in a fresh VM (2 schedulers), and stop the VM: no
 * check failed, nothing leaked. */
static void run(body_fn *fn)
{
	kr_config cfg = { .schedulers = 2, .log = capture };
	vm_start_cfg(&cfg);
	vm_spawn_on(body_main, &fn, 1); /* servers may go to the other */
	cr_assert(VM_WAIT(atomic_load(&body_done), 30000), "the body did not finish");
	vm_stop();
}

/* ---- start ---- */

static void start_body(void)
{
	/* ok: the pid, once init has run. */
	kr_server_opts o = { .link = 1 };
	kr_pid srv = kr_server_start(&ts_cb, (void *)INIT_OK, &o);
	VM_CHECK(srv > 0 && srv == atomic_load(&last_server), "started %lld", (long long)srv);
	VM_CHECK(call(srv, ADD, 2) == 2, "a first call");

	/* stop from init: KR_ESTART with init's reason, the process gone,
	 * and the caller (linked, not trapping exits) unharmed. */
	kr_reason why = { .kind = -1 };
	o.error = &why;
	kr_pid p = kr_server_start(&ts_cb, (void *)INIT_STOP, &o);
	VM_CHECK(p == KR_ESTART, "init stop: %lld", (long long)p);
	VM_CHECK(why.kind == KR_EXIT_ERROR && !strcmp(why.text, "bad config"), "init stop: %d %s",
	         why.kind, why.text);
	VM_CHECK(!kr_is_alive((kr_pid)atomic_load(&last_server)), "a failed server lives on");
	/* The same with the server on the other scheduler, where its end
	 * (its report: slow, see capture) runs while we look. */
	kr_server_opts far = { .link = 1, .error = &why, .spawn = { .bind_scheduler = 2 } };
	VM_CHECK(kr_server_start(&ts_cb, (void *)INIT_STOP, &far) == KR_ESTART, "init stop, far");
	VM_CHECK(!kr_is_alive((kr_pid)atomic_load(&last_server)),
	         "a failed server lives on after its start returned");

	/* ignore: 0, the process gone. */
	p = kr_server_start(&ts_cb, (void *)INIT_IGNORE, &o);
	VM_CHECK(p == 0, "init ignore: %lld", (long long)p);
	VM_CHECK(!kr_is_alive((kr_pid)atomic_load(&last_server)), "an ignored server lives on");

	/* A crash in init: KR_ESTART, why says so. */
	p = kr_server_start(&ts_cb, (void *)INIT_CRASH, &o);
	VM_CHECK(p == KR_ESTART && why.kind == KR_EXIT_ERROR && !strcmp(why.text, "init crashed"),
	         "init crash: %lld %d %s", (long long)p, why.kind, why.text);

	/* The same failures seen by a caller that traps exits: no exit
	 * message, nothing at all left in its mailbox. */
	kr_trap_exit(1);
	VM_CHECK(kr_server_start(&ts_cb, (void *)INIT_STOP, &o) == KR_ESTART, "stop, trapping");
	VM_CHECK(kr_server_start(&ts_cb, (void *)INIT_IGNORE, &o) == 0, "ignore, trapping");
	VM_CHECK(kr_server_start(&ts_cb, (void *)INIT_CRASH, &o) == KR_ESTART, "crash, trapping");
	kr_sleep(20);
	VM_CHECK(mailbox_len() == 0, "%zu messages left by failed starts", mailbox_len());

	/* A started server is linked (start_link): its crash reaches us. */
	VM_CHECK(call(srv, CRASH, 0) == -1000 + KR_ENOPROC, "crash call");
	kr_msg *m;
	VM_CHECK(kr_recv_tag(&m, KR_TAG_EXIT, 5000) == 0 && kr_msg_exit(m)->from == srv &&
	                 kr_msg_exit(m)->reason.kind == KR_EXIT_ERROR,
	         "no exit message from the linked server");
	kr_msg_free(m);
	kr_trap_exit(0);

	/* A registered name: taken before init runs; a second is KR_EEXIST. */
	kr_server_opts named = { .name = "ts" };
	srv = kr_server_start(&ts_cb, (void *)INIT_OK, &named);
	VM_CHECK(srv > 0 && kr_whereis("ts") == srv, "named start");
	int before = atomic_load(&inits);
	VM_CHECK(kr_server_start(&ts_cb, (void *)INIT_OK, &named) == KR_EEXIST, "name taken");
	VM_CHECK(atomic_load(&inits) == before, "init ran for a server whose name was taken");
	kr_msg *r;
	VM_CHECK(kr_server_call_named("ts", GET, NULL, 0, &r, 1000) == 0 && payload(r) == 0,
	         "call by name");
	kr_msg_free(r);
	VM_CHECK(kr_server_call_named("nobody", GET, NULL, 0, &r, 1000) == KR_ENOPROC && !r,
	         "call to a name nobody has");

	/* A start that takes too long: killed, KR_ETIMEDOUT. */
	kr_server_opts slow = { .timeout_ms = 30, .link = 1 };
	VM_CHECK(kr_server_start(&ts_cb, (void *)INIT_SLOW, &slow) == KR_ETIMEDOUT, "start timeout");
	VM_CHECK(!kr_is_alive((kr_pid)atomic_load(&last_server)), "a timed-out start lives on");

	/* Bad arguments: nothing started. */
	kr_ref ref;
	kr_server_opts bad[] = { { .hibernate_after = -1 },  { .timeout_ms = -5 },
		                 { .spawn = { .link = 1 } }, { .spawn = { .monitor = &ref } },
		                 { .name = "" } };
	before = atomic_load(&inits);
	VM_CHECK(kr_server_start(NULL, NULL, NULL) == KR_EINVAL, "cb NULL");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		VM_CHECK(kr_server_start(&ts_cb, NULL, &bad[i]) == KR_EINVAL, "bad option %zu", i);
	VM_CHECK(atomic_load(&inits) == before, "a bad start ran init");
}

Test(server, start_waits_for_init_and_a_failed_init_leaves_nothing)
{
	run(start_body);
}

/* ---- calls ---- */

typedef struct waiter {
	kr_pid srv;
	atomic_long got;
	atomic_int done;
} waiter;

/* A caller whose call the server holds (WAIT). */
static void hold_one(void *arg)
{
	waiter *w = arg;
	atomic_store(&w->got, call(w->srv, WAIT, 0));
	atomic_store(&w->done, 1);
}

static void call_body(void)
{
	kr_pid srv = start(INIT_OK);
	for (long i = 1; i <= 100; i++)
		VM_CHECK(call(srv, ADD, i) == i * (i + 1) / 2, "call %ld", i);

	/* noreply, then replies later and out of order: two held callers,
	 * answered last first by a third call. */
	static waiter w[2];
	for (int i = 0; i < 2; i++) {
		w[i].srv = srv;
		atomic_store(&w[i].got, -1);
		kr_spawn(hold_one, &w[i]);
		kr_sleep(20); /* the second is held after the first */
	}
	VM_CHECK(!atomic_load(&w[0].done) && !atomic_load(&w[1].done),
	         "a held call returned before its reply");
	VM_CHECK(call(srv, GET, 0) == 5050, "a call while two are held");
	VM_CHECK(call(srv, RELEASE, 7) == 7, "the releasing call");
	VM_CHECK(WAIT_FOR(atomic_load(&w[0].done) && atomic_load(&w[1].done), 5000),
	         "the held calls never returned");
	VM_CHECK(atomic_load(&w[0].got) == 0 && atomic_load(&w[1].got) == 1,
	         "held replies %ld %ld", atomic_load(&w[0].got), atomic_load(&w[1].got));

	/* A call to oneself is refused, not a deadlock. */
	VM_CHECK(call(srv, CALL_SELF, 0) == KR_EINVAL, "a server calling itself");
	VM_CHECK(kr_server_call(kr_self(), GET, NULL, 0, &(kr_msg *){ NULL }, 100) == KR_EINVAL,
	         "calling oneself");
	kr_exit_sig(srv, KR_EXIT_KILL);
	await_end(srv);
}

Test(server, calls_are_replied_now_or_later_in_any_order)
{
	run(call_body);
}

static void failing_calls_body(void)
{
	kr_pid srv = start(INIT_OK);
	kr_msg *r = (kr_msg *)1;
	kr_reason why;

	/* Too slow: KR_ETIMEDOUT, and the late reply never shows up. */
	long ms = 100;
	VM_CHECK(kr_server_call(srv, SLOW, &ms, sizeof ms, &r, 10) == KR_ETIMEDOUT && !r,
	         "a slow call");
	VM_CHECK(call(srv, GET, 0) == 0, "the server after a timeout");
	kr_sleep(150);
	VM_CHECK(mailbox_len() == 0, "%zu messages left after a timeout", mailbox_len());

	/* The server dies during the call: KR_ENOPROC, and why names its
	 * crash. */
	memset(&why, 0, sizeof why);
	VM_CHECK(kr_server_call_reason(srv, CRASH, NULL, 0, &r, 5000, &why) == KR_ENOPROC && !r,
	         "a call the server dies in");
	VM_CHECK(why.kind == KR_EXIT_ERROR && !strcmp(why.text, "asked to crash"),
	         "why: %d %s", why.kind, why.text);
	VM_CHECK(WAIT_FOR(logged("asked to crash"), 5000), "no crash report for the server");

	/* It is gone: KR_ENOPROC, why noproc. */
	why.kind = -1;
	VM_CHECK(kr_server_call_reason(srv, GET, NULL, 0, &r, 5000, &why) == KR_ENOPROC && !r,
	         "a call to a dead server");
	VM_CHECK(why.kind == KR_EXIT_NOPROC, "why: %d", why.kind);

	/* A reply that cannot be sent stops the server with an error; a
	 * result no callback may return too (OTP's bad_return_value). */
	srv = start(INIT_OK);
	VM_CHECK(kr_server_call_reason(srv, REPLY_TAG, NULL, 0, &r, 5000, &why) == KR_ENOPROC &&
	                 why.kind == KR_EXIT_ERROR && strstr(why.text, "bad reply"),
	         "a bad reply: %d %s", why.kind, why.text);
	srv = start(INIT_OK);
	VM_CHECK(kr_server_call_reason(srv, BAD_RETURN, NULL, 0, &r, 5000, &why) == KR_ENOPROC &&
	                 why.kind == KR_EXIT_ERROR && strstr(why.text, "bad action"),
	         "a bad return: %d %s", why.kind, why.text);
	VM_CHECK(atomic_load(&terminated) == 2, "terminate ran %d times, want 2 (bad reply, bad return)",
	         atomic_load(&terminated));
}

Test(server, a_caller_learns_why_its_server_is_not_there)
{
	run(failing_calls_body);
}

/* ---- casts and other messages ---- */

static void cast_info_body(void)
{
	kr_server_opts o = { .name = "ts" };
	kr_pid srv = kr_server_start(&ts_cb, (void *)INIT_TRAP, &o);
	VM_CHECK(srv > 0, "start");
	long sum = 0;
	for (long i = 1; i <= 50; i++) {
		VM_CHECK(kr_server_cast(srv, NOTE, &i, sizeof i) == 0, "cast %ld", i);
		sum += i;
	}
	long one = 1;
	VM_CHECK(kr_server_cast_named("ts", NOTE, &one, sizeof one) == 0, "cast by name");
	/* A call after the casts sees them all: one sender's order. */
	VM_CHECK(call(srv, GET, 0) == sum + 1, "the casts' sum");
	VM_CHECK(atomic_load(&casts) == 51 && atomic_load(&infos) == 0, "casts %d, infos %d",
	         atomic_load(&casts), atomic_load(&infos));

	/* A plain message is info, not a cast. */
	VM_CHECK(kr_send(srv, NOTE, &one, sizeof one) == 0, "send");
	VM_CHECK(WAIT_FOR(atomic_load(&infos) == 1, 5000) && atomic_load(&info_tag) == NOTE,
	         "a plain message: infos %d", atomic_load(&infos));
	VM_CHECK(atomic_load(&casts) == 51, "a plain message was taken for a cast");
	/* A DOWN, and an exit message (the server traps exits). */
	VM_CHECK(call(srv, WATCH, 0) == 0, "watch");
	VM_CHECK(WAIT_FOR(atomic_load(&downs) == 1, 5000), "no DOWN reached handle_info");
	VM_CHECK(call(srv, LINK_CRASH, 0) == 0, "link");
	VM_CHECK(WAIT_FOR(atomic_load(&exits) == 1, 5000), "no EXIT reached handle_info");
	VM_CHECK(kr_is_alive(srv) && call(srv, GET, 0) == sum + 1, "the server after an EXIT");

	/* Casts never fail for a server that is gone, nor for a name nobody
	 * has; bad arguments are refused. */
	kr_exit_sig(srv, KR_EXIT_KILL);
	await_end(srv);
	VM_CHECK(kr_server_cast(srv, NOTE, &one, sizeof one) == 0, "a cast to a dead server");
	VM_CHECK(kr_server_cast_named("ts", NOTE, NULL, 0) == 0, "a cast to a free name");
	VM_CHECK(kr_server_cast(srv, KR_TAG_SUP, NULL, 0) == KR_EINVAL, "a reserved tag");
	VM_CHECK(kr_server_cast(srv, NOTE, NULL, 4) == KR_EINVAL, "data NULL");
	VM_CHECK(kr_server_cast(0, NOTE, NULL, 0) == KR_EINVAL, "pid 0");
	VM_CHECK(kr_server_cast_named("", NOTE, NULL, 0) == KR_EINVAL, "name \"\"");
	VM_CHECK(atomic_load(&terminated) == 0, "terminate ran for a killed server");
}

Test(server, casts_and_other_messages_reach_their_callbacks)
{
	run(cast_info_body);
}

/* ---- stopping ---- */

static void stop_body(void)
{
	/* Stop with a reply: terminate has run when the caller has its
	 * reply (terminate sleeps, so a reply sent first would be seen
	 * first); then the server ends with the reason. */
	atomic_store(&term_sleep_ms, 30);
	kr_pid srv = start(INIT_OK);
	VM_CHECK(call(srv, ADD, 5) == 5, "add");
	kr_ref ref = kr_monitor(srv);
	VM_CHECK(call(srv, STOP_REPLY, KR_EXIT_SHUTDOWN) == 5, "the stop's reply");
	VM_CHECK(atomic_load(&terminated) == 1 && atomic_load(&term_kind) == KR_EXIT_SHUTDOWN,
	         "terminate had not run when the reply came (%d)", atomic_load(&terminated));
	kr_msg *m;
	VM_CHECK(kr_recv_tag(&m, KR_TAG_DOWN, 5000) == 0 && kr_msg_down(m)->ref == ref &&
	                 kr_msg_down(m)->reason.kind == KR_EXIT_SHUTDOWN,
	         "the server did not end with shutdown");
	kr_msg_free(m);
	atomic_store(&term_sleep_ms, 0);

	/* Stop without a reply: the caller learns the reason. */
	srv = start(INIT_OK);
	kr_reason why;
	kr_msg *r;
	long kind = KR_EXIT_NORMAL;
	VM_CHECK(kr_server_call_reason(srv, STOP_NOREPLY, &kind, sizeof kind, &r, 5000, &why) ==
	                         KR_ENOPROC &&
	                 why.kind == KR_EXIT_NORMAL,
	         "a stop without a reply: %d", why.kind);
	VM_CHECK(atomic_load(&terminated) == 2 && atomic_load(&term_kind) == KR_EXIT_NORMAL,
	         "terminate: %d", atomic_load(&terminated));

	/* kr_server_stop: terminate runs with its reason, after the queued
	 * messages, and the stop returns once the server has ended. */
	srv = start(INIT_OK);
	for (long i = 0; i < 10; i++)
		kr_server_cast(srv, NOTE, &i, sizeof i);
	VM_CHECK(kr_server_stop(srv, KR_EXIT_SHUTDOWN, 5000) == 0, "kr_server_stop");
	VM_CHECK(!kr_is_alive(srv), "alive after kr_server_stop");
	VM_CHECK(atomic_load(&casts) == 10, "casts served before the stop: %d", atomic_load(&casts));
	VM_CHECK(atomic_load(&terminated) == 3 && atomic_load(&term_kind) == KR_EXIT_SHUTDOWN,
	         "terminate: %d %d", atomic_load(&terminated), atomic_load(&term_kind));
	VM_CHECK(kr_server_stop(srv, KR_EXIT_NORMAL, 1000) == KR_ENOPROC, "stop a dead server");
	VM_CHECK(kr_server_stop(kr_self(), KR_EXIT_NORMAL, 1000) == KR_EINVAL, "stop oneself");
	VM_CHECK(kr_server_stop(srv, 99, 1000) == KR_EINVAL, "a bad kind");
	VM_CHECK(kr_server_stop(srv, KR_EXIT_NORMAL, -2) == KR_EINVAL, "a bad timeout");

	/* A stop that takes too long: KR_ETIMEDOUT, the server left alone. */
	srv = start(INIT_OK);
	atomic_store(&term_sleep_ms, 300);
	VM_CHECK(kr_server_stop(srv, KR_EXIT_NORMAL, 20) == KR_ETIMEDOUT, "a slow stop");
	VM_CHECK(await_end(srv).kind == KR_EXIT_NORMAL, "the slow stop's end");
	VM_CHECK(atomic_load(&terminated) == 4, "terminate: %d", atomic_load(&terminated));
	kr_sleep(20);
	VM_CHECK(mailbox_len() == 0, "%zu messages left by the stops", mailbox_len());
}

Test(server, a_stop_runs_terminate_and_a_held_reply_comes_after_it)
{
	run(stop_body);
}

/* ---- under a supervisor ---- */

static const kr_server_child kid_trapping = { .cb = &ts_cb, .arg = (void *)INIT_TRAP,
	                                      .name = "kid" };
static const kr_server_child kid_plain = { .cb = &ts_cb, .arg = (void *)INIT_OK, .name = "kid2" };

static kr_pid start_sup(void)
{
	kr_child_spec specs[] = {
		{ .id = "kid", .start = kr_server_child_start, .init = kr_server_child_init,
		  .arg = (void *)&kid_trapping, .shutdown = 1000 },
		{ .id = "kid2", .start = kr_server_child_start, .init = kr_server_child_init,
		  .arg = (void *)&kid_plain, .shutdown = 1000 },
	};
	kr_sup_flags flags = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 5 };
	kr_pid sup = kr_sup_start_link(&flags, specs, 2, "sup");
	VM_CHECK(sup > 0, "kr_sup_start_link: %lld", (long long)sup);
	return sup;
}

static void supervised_body(void)
{
	kr_trap_exit(1); /* the supervisor's shutdown would end us too */
	kr_pid sup = start_sup();
	VM_CHECK(atomic_load(&inits) == 2, "init ran %d times before the start returned",
	         atomic_load(&inits));
	kr_pid kid = kr_whereis("kid");
	VM_CHECK(kid > 0 && call(kid, ADD, 5) == 5, "the child serves");

	/* A crash in a callback: reported, and the supervisor restarts the
	 * server, fresh. */
	VM_CHECK(call(kid, CRASH, 0) == -1000 + KR_ENOPROC, "the crashing call");
	VM_CHECK(WAIT_FOR(kr_whereis("kid") > 0 && kr_whereis("kid") != kid, 5000),
	         "the server was not restarted");
	VM_CHECK(call(kr_whereis("kid"), GET, 0) == 0, "a restarted server's state is fresh");
	VM_CHECK(WAIT_FOR(logged("asked to crash"), 5000), "no crash report");
	VM_CHECK(atomic_load(&terminated) == 0, "terminate ran for a crash");

	/* The supervisor's shutdown: the server that traps exits runs
	 * terminate with `shutdown`; the other is simply ended. */
	kr_pid kid2 = kr_whereis("kid2");
	VM_CHECK(kr_exit_sig(sup, KR_EXIT_SHUTDOWN) == 0, "shutdown");
	VM_CHECK(await_end(sup).kind == KR_EXIT_SHUTDOWN, "the supervisor's end");
	VM_CHECK(!kr_is_alive(kid2), "the plain child lives on");
	VM_CHECK(atomic_load(&terminated) == 1 && atomic_load(&term_kind) == KR_EXIT_SHUTDOWN,
	         "terminate ran %d times (%d), want once, shutdown", atomic_load(&terminated),
	         atomic_load(&term_kind));
	VM_CHECK(!logged("did not stop within"), "a child was killed, not shut down");
}

Test(server, a_supervised_server_is_restarted_and_shut_down_as_otp_does)
{
	run(supervised_body);
}

/* A spec whose init fails: the supervisor's start fails, with init's reason. */
static const kr_server_child kid_failing = { .cb = &ts_cb, .arg = (void *)INIT_STOP };

static void supervised_failure_body(void)
{
	kr_trap_exit(1);
	kr_child_spec spec = { .id = "bad", .start = kr_server_child_start,
		               .init = kr_server_child_init, .arg = (void *)&kid_failing };
	VM_CHECK(kr_sup_start_link(NULL, &spec, 1, NULL) == KR_ESTART, "a failing init");
	VM_CHECK(WAIT_FOR(logged("bad config"), 5000), "the supervisor did not report init's reason");
	kr_msg *m;
	while (kr_recv(&m, 50) == 0)
		kr_msg_free(m);
}

Test(server, a_supervised_server_whose_init_fails_fails_the_start)
{
	run(supervised_failure_body);
}

/* ---- hibernation and timeouts ---- */

static bool hibernating(kr_pid p)
{
	kr_proc_info i;
	return kr_info(p, &i) == 0 && i.hibernating;
}

static size_t vm_hibernating(void)
{
	kr_vm_stats s;
	return kr_vm_stats_get(&s) == 0 ? s.hibernating : 0;
}

static void hibernate_body(void)
{
	/* hibernate_after: idle that long, the server hibernates, and its
	 * state (on its heap) survives. */
	kr_server_opts o = { .hibernate_after = 20 };
	kr_pid srv = kr_server_start(&ts_cb, (void *)INIT_OK, &o);
	VM_CHECK(srv > 0, "start");
	for (long i = 1; i <= 5; i++) {
		VM_CHECK(call(srv, ADD, 1) == i, "call %ld", i);
		int64_t t0 = vm_now_ns();
		VM_CHECK(WAIT_FOR(hibernating(srv), 5000), "round %ld: never hibernated", i);
		VM_CHECK(vm_ms_since(t0) >= 19, "hibernated after %.1f ms, before hibernate_after",
		         vm_ms_since(t0));
		VM_CHECK(vm_hibernating() >= 1, "kr_vm_stats counts no hibernating process");
	}
	VM_CHECK(call(srv, GET, 0) == 5, "the state after hibernating");

	/* A callback that hibernates now; without hibernate_after. */
	kr_pid now = start(INIT_OK);
	VM_CHECK(call(now, ADD, 3) == 3, "add");
	kr_sleep(50);
	VM_CHECK(!hibernating(now), "hibernated without being asked");
	VM_CHECK(call(now, SLEEP_NOW, 0) == 0, "sleep now");
	VM_CHECK(WAIT_FOR(hibernating(now), 5000), "did not hibernate when asked");
	VM_CHECK(call(now, GET, 0) == 3, "the state after hibernating");
	kr_server_stop(srv, KR_EXIT_NORMAL, 5000);
	kr_server_stop(now, KR_EXIT_NORMAL, 5000);
	VM_CHECK(atomic_load(&terminated) == 2, "terminate after hibernating: %d",
	         atomic_load(&terminated));
}

Test(server, an_idle_server_hibernates_and_keeps_its_state)
{
	run(hibernate_body);
}

static void timeout_body(void)
{
	kr_pid srv = start(INIT_OK);
	/* {reply, R, S, 30}: a timeout message after 30 ms of silence. */
	int64_t t0 = vm_now_ns();
	VM_CHECK(call(srv, AFTER, 30) == 30, "after");
	VM_CHECK(WAIT_FOR(atomic_load(&timeouts) == 1, 5000), "no timeout came");
	VM_CHECK(vm_ms_since(t0) >= 29, "the timeout came after %.1f ms", vm_ms_since(t0));
	VM_CHECK(atomic_load(&info_tag) == (long)KR_TAG_SERVER_TIMEOUT, "its tag");
	/* Once only. */
	kr_sleep(80);
	VM_CHECK(atomic_load(&timeouts) == 1, "%d timeouts, want 1", atomic_load(&timeouts));
	/* A message within the timeout cancels it. */
	VM_CHECK(call(srv, AFTER, 150) == 150, "after");
	long one = 1;
	kr_server_cast(srv, NOTE, &one, sizeof one);
	kr_sleep(300);
	VM_CHECK(atomic_load(&timeouts) == 1, "a message did not cancel the timeout");
	kr_server_stop(srv, KR_EXIT_NORMAL, 5000);
}

Test(server, a_callback_timeout_becomes_a_message_unless_one_comes)
{
	run(timeout_body);
}

/* ---- many callers ---- */

/* Callers spread over a few servers at once: each server's sum is its
 * own callers' (a server's loop keeps nothing outside its own heap), and
 * each caller's replies only grow (a reply is its own call's). */
#define SERVERS 4
#define CALLERS 100
#define CALLS (2000 / VM_LIGHT_DIV)

static atomic_int callers_done;

static void caller(void *arg)
{
	kr_pid srv = *(kr_pid *)arg;
	long last = 0;
	for (int i = 0; i < CALLS; i++) {
		long v = call(srv, ADD, 1);
		VM_CHECK(v > last, "a reply went backwards: %ld after %ld", v, last);
		last = v;
		if (i % 7 == 0)
			kr_server_cast(srv, NOTE, &(long){ 0 }, sizeof(long));
	}
	atomic_fetch_add(&callers_done, 1);
}

static void many_body(void)
{
	static kr_pid srv[SERVERS];
	for (int i = 0; i < SERVERS; i++)
		srv[i] = start(INIT_OK);
	for (int i = 0; i < CALLERS; i++)
		kr_spawn(caller, &srv[i % SERVERS]);
	VM_CHECK(WAIT_FOR(atomic_load(&callers_done) == CALLERS, 20000), "%d callers finished",
	         atomic_load(&callers_done));
	for (int i = 0; i < SERVERS; i++) {
		long want = (long)(CALLERS / SERVERS) * CALLS, got = call(srv[i], GET, 0);
		VM_CHECK(got == want, "server %d's sum: %ld, want %ld", i, got, want);
		kr_server_stop(srv[i], KR_EXIT_NORMAL, 5000);
	}
}

Test(server, many_callers_at_once_each_get_their_own_replies)
{
	run(many_body);
}

/* A host thread starts, calls, casts to and stops a server, from its
 * mailbox (kr_server_start's monitor and wait, kr_server_stop's too),
 * as a process would. */
Test(server, a_host_thread_starts_calls_and_stops_a_server)
{
	kr_config cfg = { .schedulers = 2, .log = capture };
	vm_start_cfg(&cfg);
	atomic_store(&terminated, 0);
	kr_pid srv = kr_server_start(&ts_cb, (void *)INIT_OK, NULL);
	cr_assert_gt(srv, 0, "kr_server_start from a host thread: %lld", (long long)srv);
	long v = 5;
	kr_msg *r;
	cr_assert_eq(kr_server_call(srv, ADD, &v, sizeof v, &r, 5000), 0);
	cr_assert_eq(payload(r), 5);
	kr_msg_free(r);
	kr_server_cast(srv, NOTE, &v, sizeof v);
	cr_assert_eq(kr_server_stop(srv, KR_EXIT_NORMAL, 5000), 0);
	cr_assert(!kr_is_alive(srv));
	cr_assert_eq(atomic_load(&terminated), 1, "terminate ran %d times", atomic_load(&terminated));
	cr_assert_eq(kr_host_release(), 0);
	vm_assert_clean();
	vm_stop();
}
