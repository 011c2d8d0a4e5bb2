/*
 * server.c - the generic server (include/krill/server.h): gen_server's
 * loop, around a program's callbacks, built on the public API.
 *
 * A server is an ordinary process. Everything it keeps between messages
 * is one struct on its own heap (srv: the callbacks, the program's state,
 * its parent, its pending timeout), so that the loop may hibernate at any
 * point between two messages: kr_hibernate starts it again as serve(srv)
 * on a fresh stack, and nothing was on the old one.
 *
 * What a message is, the loop tells from the message alone:
 *  - a call: a kr_call request (ref > 0 and a program's tag: a DOWN
 *    message carries its monitor's ref): handle_call, with From = the
 *    caller's pid and ref. The call machinery (call.c) does the rest: a
 *    request taken and never answered is answered by the server's exit
 *    with its reason, so a caller never waits on a dead server;
 *  - a cast: a user message whose ref is KRX_REF_CAST (send.h): handle_cast;
 *  - kr_server_stop's TAG_STOP, and (trapping exits) the parent's exit
 *    message: terminate, then end with that reason;
 *  - krill's own protocols' tags (KR_TAG_SUP up to KR_TAG_RESERVED):
 *    not the program's business, dropped;
 *  - anything else: handle_info.
 *
 * The start handshake (proc_lib's, as OTP 26 has it): kr_server_start
 * spawns the server with a monitor, sends it a first message (what to
 * run: a message, not a pointer into the caller's stack, which may be gone
 * by the time the server reads it), and waits for TAG_ACK or the DOWN.
 * The server registers its name, runs init and, only if init succeeded,
 * links to its parent and acks: a failed init never sends the caller an
 * exit signal, and the caller returns only once a failed server has ended.
 */
#include <stdio.h>
#include <string.h>

#include "proc.h"
#include "send.h"
#include "signal.h"
#include "str.h"
#include "timeout.h"

/* The protocol's tags (krill's own range, sup.h; sup.c has the first few,
 * dist/ from 0x80). */
enum {
	TAG_START = KR_TAG_SUP + 0x40, /* kr_server_start -> the new server: start_msg */
	TAG_ACK,                       /* the server -> kr_server_start: ack_msg */
	TAG_STOP,                      /* kr_server_stop -> the server: kr_reason */
	TAG_STATE                      /* kr_server_child_init -> its own process: srv * */
};

/* A server between two messages: all of it on its heap. */
typedef struct srv {
	const kr_server_callbacks *cb;
	void *state;          /* the program's */
	kr_pid parent;        /* whose exit message stops it (0: none: not linked to a starter) */
	long hibernate_after; /* > 0: hibernate after this long idle */
	long timeout_ms;      /* the last callback's timeout; KR_INFINITY: none */
	bool hibernate;       /* the last callback asked to hibernate */
} srv;

typedef struct start_msg {
	const kr_server_callbacks *cb;
	void *arg;
	kr_pid parent; /* the caller of kr_server_start */
	int link;
	long hibernate_after;
	char name[KR_NAME_MAX + 1]; /* "" for none */
} start_msg;

enum { ACK_STARTED = 0, ACK_IGNORED = 1 }; /* else a KR_E... code */

typedef struct ack_msg {
	int rc;           /* ACK_STARTED, ACK_IGNORED, KR_EEXIST or KR_ESTART */
	kr_reason reason; /* KR_ESTART: init's stop reason */
} ack_msg;

/* A reply held until terminate has run (kr_server_ret_stop_reply). */
typedef struct held_reply {
	kr_server_from from;
	uint64_t tag;
	size_t len;
	unsigned char data[];
} held_reply;

static void serve(void *arg);

/* ---- small things ---- */

static bool valid_name(const char *name)
{
	return name && name[0] && strnlen(name, KR_NAME_MAX + 1) <= KR_NAME_MAX;
}

static bool valid_kind(int kind)
{
	return kind >= KR_EXIT_NORMAL && kind <= KR_EXIT_KILL;
}

static kr_reason error_reason(const char *what)
{
	kr_reason r = { .kind = KR_EXIT_ERROR };
	krx_str_copy(r.text, sizeof r.text, what);
	return r;
}

static kr_server_ret bad_return(const char *what)
{
	kr_server_ret r = kr_server_ret_stop(KR_EXIT_ERROR);
	r.reason = error_reason(what);
	return r;
}

/* End the calling process with this reason (kr_exit_reason refuses only a
 * kind out of range: then an error saying so). */
static _Noreturn void end_with(const kr_reason *reason)
{
	kr_exit_reason(reason);
	kr_crash("kr_server: cannot end with reason kind %d", reason->kind);
	__builtin_unreachable();
}

/* ---- the results callbacks return ---- */

KR_API kr_server_ret kr_server_ret_reply(kr_server_from from, uint64_t tag, const void *data,
                                         size_t len)
{
	int rc = kr_server_reply(from, tag, data, len);
	if (rc == 0)
		return kr_server_ret_ok();
	kr_server_ret r = kr_server_ret_stop(KR_EXIT_ERROR);
	snprintf(r.reason.text, sizeof r.reason.text, "kr_server: bad reply: %s", kr_strerror(rc));
	return r;
}

KR_API kr_server_ret kr_server_ret_stop_reply(int kind, kr_server_from from, uint64_t tag,
                                              const void *data, size_t len)
{
	if (from.pid <= 0 || from.ref <= 0 || (len && !data) || tag >= KR_TAG_SUP)
		return bad_return("kr_server: bad reply: invalid argument");
	held_reply *h = kr_alloc(sizeof *h + len);
	if (!h)
		return bad_return("kr_server: no memory to hold a reply");
	h->from = from;
	h->tag = tag;
	h->len = len;
	if (len)
		memcpy(h->data, data, len);
	kr_server_ret r = kr_server_ret_stop(kind);
	r.kr__reply = h;
	return r;
}

/* ---- stopping ---- */

/* Run terminate, send the held reply, end: OTP's order, so that a caller
 * of a stop with a reply hears back once the server has cleaned up. */
static _Noreturn void stop(srv *s, const kr_reason *reason, held_reply *h)
{
	kr_reason r = *reason; /* reason may live in a message, or in h */
	if (s->cb->terminate)
		s->cb->terminate(&r, s->state);
	if (h)
		(void)kr_server_reply(h->from, h->tag, h->data, h->len);
	end_with(&r);
}

/* Act on a callback's result: remember its timeout and hibernation, or
 * stop. A result no callback should return stops the server with an
 * error, as OTP's bad_return_value. */
static void act(srv *s, const kr_server_ret *r)
{
	if (__builtin_expect(r->action != KR_SERVER_GO_ON || r->kr__reply ||
	                             !krx_timeout_valid(r->timeout_ms),
	                     0)) {
		if (r->action == KR_SERVER_STOP)
			stop(s, &r->reason, r->kr__reply);
		kr_free(r->kr__reply); /* a held reply without a stop: not ours to send */
		kr_server_ret bad =
			bad_return(r->action != KR_SERVER_GO_ON
			                   ? "kr_server: a callback returned a bad action"
			                   : "kr_server: a callback returned a bad timeout");
		if (r->action != KR_SERVER_GO_ON || !krx_timeout_valid(r->timeout_ms))
			stop(s, &bad.reason, NULL);
	}
	s->timeout_ms = r->hibernate ? KR_INFINITY : r->timeout_ms;
	s->hibernate = r->hibernate != 0;
}

/* ---- the loop ---- */

static bool krills_own(uint64_t tag)
{
	return tag >= KR_TAG_SUP && tag < KR_TAG_RESERVED;
}

/* Serve one message (the server's: freed here). */
static void handle(srv *s, kr_msg *m)
{
	const kr_server_callbacks *cb = s->cb;
	kr_server_ret r;
	if (m->ref > 0 && m->tag < KR_TAG_SUP) {
		if (!cb->handle_call)
			kr_crash("kr_server: a call came (tag %llu), and there is no handle_call",
			         (unsigned long long)m->tag);
		kr_server_from from = { m->sender, m->ref };
		r = cb->handle_call(m, from, s->state);
	} else if (m->ref == KRX_REF_CAST) {
		if (!cb->handle_cast)
			kr_crash("kr_server: a cast came (tag %llu), and there is no handle_cast",
			         (unsigned long long)m->tag);
		r = cb->handle_cast(m, s->state);
	} else if (m->tag == TAG_STOP && m->len == sizeof(kr_reason)) {
		kr_reason why;
		memcpy(&why, m->data, sizeof why);
		kr_msg_free(m);
		stop(s, &why, NULL);
	} else if (kr_msg_exit(m) && s->parent && kr_msg_exit(m)->from == s->parent) {
		/* gen_server's rule: the parent's exit message (its
		 * supervisor's shutdown, the end of who started it linked) ends
		 * the server, through terminate. */
		kr_reason why = kr_msg_exit(m)->reason;
		kr_msg_free(m);
		stop(s, &why, NULL);
	} else if (krills_own(m->tag)) {
		kr_msg_free(m);
		return;
	} else if (cb->handle_info) {
		r = cb->handle_info(m, s->state);
	} else {
		r = kr_server_ret_ok();
	}
	kr_msg_free(m);
	act(s, &r);
}

/* The callback timeout passed with no message: OTP's `timeout`. */
static void timed_out(srv *s)
{
	if (!s->cb->handle_info)
		return;
	kr_msg t = { .sender = kr_self(), .tag = KR_TAG_SERVER_TIMEOUT };
	kr_server_ret r = s->cb->handle_info(&t, s->state);
	act(s, &r);
}

/* The loop, and where it starts again after hibernating. */
static void serve(void *arg)
{
	srv *s = arg;
	for (;;) {
		if (s->hibernate) {
			s->hibernate = false;
			kr_hibernate(serve, s); /* never returns */
		}
		/* As gen_server: hibernate_after counts only while no
		 * callback timeout is pending. */
		long wait = s->timeout_ms;
		bool idle = wait == KR_INFINITY && s->hibernate_after > 0;
		if (idle)
			wait = s->hibernate_after;
		kr_msg *m;
		if (kr_recv(&m, wait) != 0) {
			if (idle) {
				s->hibernate = true;
			} else {
				s->timeout_ms = KR_INFINITY;
				timed_out(s);
			}
			continue;
		}
		s->timeout_ms = KR_INFINITY; /* a message cancels it; the callback may set another */
		handle(s, m);
	}
}

/* ---- starting ---- */

/* Register, make the loop's struct and run init, in the new server. The
 * struct, or NULL with *ack saying why (the caller then ends the process
 * as failed_end says). */
static srv *begin(const kr_server_callbacks *cb, void *arg, const char *name, long hibernate_after,
                  kr_pid parent, ack_msg *ack)
{
	*ack = (ack_msg){ .rc = KR_ESTART };
	if (name && name[0]) {
		int rc = kr_register(name, kr_self());
		if (rc) {
			ack->rc = rc == KR_EEXIST ? KR_EEXIST : KR_ESTART;
			snprintf(ack->reason.text, sizeof ack->reason.text,
			         "kr_server: cannot register %s: %s", name, kr_strerror(rc));
			ack->reason.kind = KR_EXIT_ERROR;
			return NULL;
		}
	}
	srv *s = kr_alloc(sizeof *s);
	if (!s) {
		ack->reason = error_reason("kr_server: no memory for the server");
		return NULL;
	}
	*s = (srv){ .cb = cb, .state = arg, .parent = parent, .hibernate_after = hibernate_after,
		    .timeout_ms = KR_INFINITY };
	if (!cb->init) {
		ack->rc = ACK_STARTED;
		return s;
	}
	kr_server_ret r = cb->init(arg, &s->state);
	kr_free(r.kr__reply); /* init has no caller to reply to */
	if (r.action == KR_SERVER_GO_ON && krx_timeout_valid(r.timeout_ms)) {
		s->timeout_ms = r.hibernate ? KR_INFINITY : r.timeout_ms;
		s->hibernate = r.hibernate != 0;
		ack->rc = ACK_STARTED;
		return s;
	}
	kr_free(s);
	if (name && name[0]) /* free the name now: a restart may want it at once */
		kr_unregister(name);
	if (r.action == KR_SERVER_IGNORE)
		ack->rc = ACK_IGNORED;
	else if (r.action == KR_SERVER_STOP)
		ack->reason = r.reason;
	else
		ack->reason = error_reason("kr_server: init returned a bad result");
	return NULL;
}

/* End a server whose start failed: with init's stop reason; normally for
 * ignore and for a name that was taken (OTP's {error, {already_started,
 * Pid}} comes from a process that ends normally). */
static _Noreturn void failed_end(const ack_msg *ack)
{
	if (ack->rc == KR_ESTART)
		end_with(&ack->reason);
	kr_exit(KR_EXIT_NORMAL);
	__builtin_unreachable();
}

/* kr_server_start's process: take the start message, begin, link, ack, serve. */
static void server_main(void *unused)
{
	(void)unused;
	kr_msg *m;
	if (kr_recv_tag(&m, TAG_START, KR_INFINITY))
		return;
	start_msg sm;
	memcpy(&sm, m->data, sizeof sm);
	kr_msg_free(m);
	ack_msg ack;
	srv *s = begin(sm.cb, sm.arg, sm.name, sm.hibernate_after, sm.link ? sm.parent : 0, &ack);
	if (s && sm.link)
		/* Before the ack: the caller returns linked. A caller gone
		 * meanwhile ends us with noproc (or, trapping, sends us its
		 * exit message: the parent's, which stops us). */
		kr_link(sm.parent);
	krx_send(sm.parent, TAG_ACK, &ack, sizeof ack);
	if (!s)
		failed_end(&ack);
	serve(s);
}

typedef struct awaited {
	kr_pid pid;
	kr_ref ref;
} awaited;

static int is_ack_or_down(const kr_msg *m, void *ctx)
{
	const awaited *a = ctx;
	if (m->tag == TAG_ACK)
		return m->sender == a->pid;
	const kr_down_msg *d = kr_msg_down(m);
	return d && d->ref == a->ref;
}

static int is_down(const kr_msg *m, void *ctx)
{
	const kr_down_msg *d = kr_msg_down(m);
	return d && d->ref == *(const kr_ref *)ctx;
}

static int is_from(const kr_msg *m, void *ctx)
{
	const kr_exit_msg *e = kr_msg_exit(m);
	kr_pid pid = *(const kr_pid *)ctx;
	return (m->tag == TAG_ACK && m->sender == pid) || (e && e->from == pid);
}

/* Wait for the DOWN of this monitor; its reason. */
static kr_reason await_down(kr_ref ref)
{
	kr_msg *m;
	kr_recv_match(&m, is_down, &ref, KR_INFINITY);
	kr_reason r = kr_msg_down(m)->reason;
	kr_msg_free(m);
	return r;
}

/* Kill a server whose start took too long, as proc_lib's kill_flush_EXIT:
 * unlink first (it may have linked to us already), kill, wait for its end,
 * and take whatever it left us (an ack, an exit message). */
static void kill_start(kr_pid pid, kr_ref ref)
{
	kr_unlink(pid);
	kr_exit_sig(pid, KR_EXIT_KILL);
	(void)await_down(ref);
	kr_msg *m;
	while (kr_recv_match(&m, is_from, &pid, 0) == 0)
		kr_msg_free(m);
}

static int check_opts(const kr_server_callbacks *cb, const kr_server_opts *o)
{
	if (!cb || o->hibernate_after < 0 || o->timeout_ms < 0 || o->spawn.link || o->spawn.monitor)
		return KR_EINVAL;
	if (o->name && !valid_name(o->name))
		return KR_EINVAL;
	return 0;
}

KR_API kr_pid kr_server_start(const kr_server_callbacks *cb, void *arg, const kr_server_opts *opts)
{
	static const kr_server_opts defaults;
	const kr_server_opts *o = opts ? opts : &defaults;
	if (o->error)
		*o->error = (kr_reason){ .kind = KR_EXIT_NORMAL };
	int rc = check_opts(cb, o);
	if (rc)
		return rc;
	kr_ref ref;
	kr_spawn_opts so = o->spawn;
	so.monitor = &ref;
	if (!so.name)
		so.name = o->name;
	kr_pid pid = kr_spawn_opt(server_main, NULL, &so); /* a host thread: monitored from its mailbox */
	if (pid < 0)
		return pid;
	start_msg sm = { .cb = cb, .arg = arg, .parent = kr_self(), .link = o->link != 0,
		         .hibernate_after = o->hibernate_after };
	krx_str_copy(sm.name, sizeof sm.name, o->name);
	rc = krx_send(pid, TAG_START, &sm, sizeof sm);
	if (rc) {
		kill_start(pid, ref);
		return rc;
	}
	awaited a = { pid, ref };
	kr_msg *m;
	if (kr_recv_match(&m, is_ack_or_down, &a, o->timeout_ms ? o->timeout_ms : KR_INFINITY)) {
		kill_start(pid, ref);
		return KR_ETIMEDOUT;
	}
	ack_msg ack = { .rc = KR_ESTART };
	if (m->tag == TAG_ACK) {
		memcpy(&ack, m->data, sizeof ack);
		kr_msg_free(m);
		if (ack.rc == ACK_STARTED) {
			kr_demonitor(ref, 1);
			return pid;
		}
		(void)await_down(ref); /* a failed server has ended when we return */
	} else {
		ack.reason = kr_msg_down(m)->reason; /* it crashed in init, or was killed */
		kr_msg_free(m);
	}
	if (ack.rc == KR_ESTART && o->error)
		*o->error = ack.reason;
	return ack.rc == ACK_IGNORED ? 0 : ack.rc;
}

/* ---- supervised servers ---- */

/* A supervisor's new child is linked to the supervisor and to nothing else
 * yet (spawn_link, before anyone else knows its pid): that one link names
 * the parent, as proc_lib's '$ancestors' does in Erlang. Read by the
 * process itself, the only writer of its links (signal.h). */
static kr_pid only_link(void)
{
	krx_proc *p = krx_proc_self();
	krx_proc_ext *x = p ? krx_proc_ext_peek(p) : NULL;
	return x && x->links.n == 1 ? x->links.v[0] : 0;
}

static bool valid_child(const kr_server_child *c)
{
	return c && c->cb && c->hibernate_after >= 0 && (!c->name || valid_name(c->name));
}

KR_API int kr_server_child_init(void *arg)
{
	const kr_server_child *c = arg;
	if (!krx_proc_self())
		return KR_ENOTPROC;
	if (!valid_child(c))
		return KR_EINVAL;
	ack_msg ack;
	srv *s = begin(c->cb, c->arg, c->name, c->hibernate_after, only_link(), &ack);
	if (!s) {
		if (ack.rc == KR_EEXIST)
			end_with(&ack.reason); /* the supervisor reports why it failed to start */
		failed_end(&ack);
	}
	/* The start function, next in this process, takes it from here. */
	krx_send(kr_self(), TAG_STATE, &s, sizeof s);
	return 0;
}

KR_API void kr_server_child_start(void *arg)
{
	kr_msg *m;
	if (kr_recv_tag(&m, TAG_STATE, 0) == 0) {
		srv *s;
		memcpy(&s, m->data, sizeof s);
		kr_msg_free(m);
		serve(s);
	}
	/* No kr_server_child_init ran (a spec without it): begin now; the
	 * supervisor has been told we started already. */
	const kr_server_child *c = arg;
	if (!valid_child(c))
		kr_crash("kr_server_child_start: its argument is not a valid kr_server_child");
	ack_msg ack;
	srv *s = begin(c->cb, c->arg, c->name, c->hibernate_after, only_link(), &ack);
	if (!s) {
		if (ack.rc == KR_EEXIST)
			end_with(&ack.reason);
		failed_end(&ack);
	}
	serve(s);
}

/* ---- talking to a server ---- */

KR_API int kr_server_call(kr_pid server, uint64_t tag, const void *req, size_t len,
                          kr_msg **reply, long timeout_ms)
{
	return kr_call(server, tag, req, len, reply, timeout_ms);
}

KR_API int kr_server_call_reason(kr_pid server, uint64_t tag, const void *req, size_t len,
                                 kr_msg **reply, long timeout_ms, kr_reason *why)
{
	return krx_call_why(server, tag, req, len, reply, timeout_ms, why);
}

KR_API int kr_server_call_named(const char *name, uint64_t tag, const void *req, size_t len,
                                kr_msg **reply, long timeout_ms)
{
	if (reply)
		*reply = NULL;
	kr_pid pid = kr_whereis(name);
	if (pid < 0)
		return (int)pid;
	return kr_call(pid, tag, req, len, reply, timeout_ms);
}

KR_API int kr_server_cast(kr_pid server, uint64_t tag, const void *data, size_t len)
{
	return krx_send_cast(server, tag, data, len);
}

KR_API int kr_server_cast_named(const char *name, uint64_t tag, const void *data, size_t len)
{
	kr_pid pid = kr_whereis(name);
	if (pid == KR_ENOPROC)
		return 0; /* gen_server:cast to a name nobody has: ok */
	if (pid < 0)
		return (int)pid;
	return krx_send_cast(pid, tag, data, len);
}

KR_API int kr_server_reply(kr_server_from from, uint64_t tag, const void *data, size_t len)
{
	kr_msg request = { .sender = from.pid, .ref = from.ref };
	return kr_reply(&request, tag, data, len);
}

KR_API int kr_server_stop(kr_pid server, int kind, long timeout_ms)
{
	if (!valid_kind(kind) || !krx_timeout_valid(timeout_ms))
		return KR_EINVAL;
	kr_pid me = kr_self();
	if (me < 0)
		return KR_ENOTPROC;
	if (server == me)
		return KR_EINVAL; /* it would wait for itself */
	kr_ref ref = kr_monitor(server);
	if (ref < 0)
		return (int)ref;
	kr_reason r = { .kind = kind };
	int rc = krx_send(server, TAG_STOP, &r, sizeof r);
	if (rc) {
		kr_demonitor(ref, 1);
		return rc;
	}
	kr_msg *m;
	if (kr_recv_match(&m, is_down, &ref, timeout_ms)) {
		kr_demonitor(ref, 1);
		return KR_ETIMEDOUT;
	}
	int why = kr_msg_down(m)->reason.kind;
	kr_msg_free(m);
	return why == KR_EXIT_NOPROC && kind != KR_EXIT_NOPROC ? KR_ENOPROC : 0;
}
