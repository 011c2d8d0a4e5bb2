/*
 * call.c - request and reply, with gen_server:call's guarantees.
 *
 * gen_server:call monitors the server for the length of the call, so that
 * the caller learns if the server is gone or ends before replying. Setting
 * up and removing a monitor costs two signals each way, more than the call
 * itself. krill gets the same guarantee from the request alone:
 *  - a request to a process that is gone fails its push: KR_ENOPROC at once;
 *  - a request is a message of kind KRX_MSG_CALL. The server records each
 *    request it receives (krx_call_taken) until it replies to it, and its
 *    exit path answers every request it received and did not reply to, and
 *    every one still queued, with a CALL_DOWN (the server's end and reason);
 *  - so the caller waits for exactly one of two things carrying its
 *    reference: the reply or the CALL_DOWN.
 * Both are signals that become messages only if their reference is the one
 * the caller waits for now (krx_signal_take), so a reply or a CALL_DOWN
 * that comes after the caller gave up is dropped as it arrives: nothing of
 * a call is ever left in the mailbox (what OTP 24 does with aliases).
 *
 * The wait scans only what arrives after the request was sent (Erlang's
 * receive marker): nothing older can be the answer, so a caller with a long
 * backlog does not rescan it at every wake-up.
 */
#include <string.h>

#include "host.h"
#include "msg.h"
#include "remote.h"
#include "send.h"
#include "signal.h"
#include "timeout.h"
#include "vm.h"

static int host_call(kr_pid pid, uint64_t tag, uint64_t tag_end, const void *req, size_t len,
                     kr_msg **reply, long timeout_ms, kr_reason *why);

/* kr_call, with tags below tag_end allowed (a program's, or the
 * supervisors' too), and, with why non-NULL, the reason behind a
 * KR_ENOPROC. Inlined into each: a layer of argument shuffling less.
 * p: the caller, a process or (host_call) a host thread's mailbox. */
static inline __attribute__((always_inline)) int call(krx_proc *p, kr_pid pid, uint64_t tag,
                                                      uint64_t tag_end, const void *req,
                                                      size_t len, kr_msg **reply,
                                                      long timeout_ms, kr_reason *why)
{
	if (reply)
		*reply = NULL;
	if (!p)
		return host_call(pid, tag, tag_end, req, len, reply, timeout_ms, why);
	/* Relaxed: our own pid. A call to oneself would take its own request
	 * (which carries the reference) for the answer. */
	if (!reply || !krx_pid_ok(pid) || (len && !req) ||
	    !krx_remote_tag_ok(pid, tag, tag_end, req, len) ||
	    !krx_timeout_valid(timeout_ms) || pid == (kr_pid)AO_load(&p->live_pid))
		return KR_EINVAL;
	krx_proc_ext *x = krx_proc_ext_get(p);
	if (!x)
		return KR_ENOMEM;
	/* The marker: everything queued now is older than any answer. */
	if (krx_mailbox_has_new(&p->mbox))
		(void)krx_mailbox_take(&p->mbox);
	krx_msg *mark = p->mbox.tail;
	kr_ref ref = krx_ref_new(krx_sched_self());
	x->call_ref = ref;
	int rc = krx_send_call(pid, tag, ref, req, len);
	kr_msg *m = NULL;
	if (rc == 0) {
		/* Only the answers to this call carry its reference: a reply,
		 * or the CALL_DOWN that became a KR_TAG_DOWN message. */
		krx_matcher mt = { .kind = KRX_MATCH_REF, .ref = ref };
		rc = krx_receive_after(&m, &mt, timeout_ms, mark);
	} else if (rc > 0) {
		rc = KR_ENOPROC; /* gone before we asked */
		if (why)
			*why = (kr_reason){ .kind = KR_EXIT_NOPROC };
	}
	/* From here a late answer is dropped on arrival. (x is kept with the
	 * slot: the same after the receive, on whatever thread.) */
	x->call_ref = 0;
	if (rc == KR_ETIMEDOUT && krx_pid_remote(pid)) /* the monitor dist/ made for it goes */
		(void)krx_signal_send(krx_sched_self(), (kr_pid)AO_load(&p->live_pid), pid,
		                      KRX_SIG_DEMONITOR, ref, 0, NULL, 0);
	if (rc == 0 && m->tag == KR_TAG_DOWN) {
		/* The server ended before replying, or its node was lost. */
		const kr_down_msg *d = kr_msg_down(m);
		rc = d && d->reason.kind == KR_EXIT_NOCONNECTION ? KR_ENOCONN : KR_ENOPROC;
		if (why && d)
			*why = d->reason;
		kr_msg_free(m);
		return rc;
	}
	if (rc == 0)
		*reply = m;
	return rc;
}

/* A host thread's call: from its mailbox (made now if need be), inside the
 * VM throughout; its wait is host_receive's (mailbox.c). The arguments are
 * checked before a mailbox is made for them. */
static __attribute__((noinline, cold)) int host_call(kr_pid pid, uint64_t tag, uint64_t tag_end,
                                                    const void *req, size_t len, kr_msg **reply,
                                                    long timeout_ms, kr_reason *why)
{
	if (!reply || !krx_pid_ok(pid) || (len && !req) ||
	    !krx_remote_tag_ok(pid, tag, tag_end, req, len) || !krx_timeout_valid(timeout_ms))
		return KR_EINVAL;
	int rc;
	krx_proc *p = krx_host_enter(true, &rc);
	if (!p)
		return rc;
	rc = call(p, pid, tag, tag_end, req, len, reply, timeout_ms, why);
	krx_vm_leave_host();
	return rc;
}

KR_API int kr_call(kr_pid pid, uint64_t tag, const void *req, size_t len, kr_msg **reply,
                   long timeout_ms)
{
	return call(krx_proc_self(), pid, tag, KR_TAG_SUP, req, len, reply, timeout_ms, NULL);
}

int krx_call_why(kr_pid pid, uint64_t tag, const void *req, size_t len, kr_msg **reply,
                 long timeout_ms, kr_reason *why)
{
	return call(krx_proc_self(), pid, tag, KR_TAG_SUP, req, len, reply, timeout_ms, why);
}

int krx_call(kr_pid pid, uint64_t tag, const void *req, size_t len, kr_msg **reply,
             long timeout_ms)
{
	return call(krx_proc_self(), pid, tag, KR_TAG_RESERVED, req, len, reply, timeout_ms, NULL);
}

/* kr_reply, with tags below tag_end allowed (as call; inlined as call is). */
static inline __attribute__((always_inline)) int reply(const kr_msg *request, uint64_t tag,
                                                       uint64_t tag_end, const void *data,
                                                       size_t len)
{
	if (!request || request->ref <= 0 || krx_ref_is_timer(request->ref) || request->sender <= 0 ||
	    (len && !data) ||
	    !krx_remote_tag_ok(request->sender, tag, tag_end, data, len))
		return KR_EINVAL;
	krx_sched *s = krx_sched_self();
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	krx_proc *p = krx_proc_on(s);
	/* A host thread replies from its mailbox, if it has one (it took the
	 * request there), else as pid 0. */
	krx_proc *from = p ? p : krx_host_peek();
	kr_pid me = from ? (kr_pid)AO_load(&from->live_pid) : 0;
	/* Answered: our end no longer concerns this caller. */
	if (from)
		(void)krx_call_replied(from, request->ref);
	/* A caller that is gone or gave up drops it: not our error. */
	krx_send_reply(s, me, request->sender, request->ref, tag, data, len);
	krx_vm_leave(s);
	if (p)
		krx_task_charge(1);
	return 0;
}

KR_API int kr_reply(const kr_msg *request, uint64_t tag, const void *data, size_t len)
{
	return reply(request, tag, KR_TAG_SUP, data, len);
}

int krx_reply(const kr_msg *request, uint64_t tag, const void *data, size_t len)
{
	return reply(request, tag, KR_TAG_RESERVED, data, len);
}
