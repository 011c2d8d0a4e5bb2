/*
 * call.c - request and reply, as gen_server:call does it.
 *
 * The caller monitors the server (so it learns if the server is gone or
 * ends before replying), sends the request with the monitor's reference,
 * and waits for a message that carries that reference: the reply, or the
 * DOWN. Three things keep a busy caller's mailbox clean and the wait cheap:
 *  - the wait starts its scan after the last message queued before the
 *    request was sent (Erlang's receive marker): nothing older can be the
 *    reply, so a long backlog is not scanned again at every wake-up;
 *  - a reply is a signal (KRX_SIG_REPLY) that becomes a message only if
 *    its reference is the one the caller waits for now; a reply that comes
 *    after the caller gave up is dropped as it arrives (what OTP 24 does
 *    with aliases);
 *  - the monitor is removed with flush, so no DOWN stays behind.
 */
#include <string.h>

#include "signal.h"
#include "vm.h"

typedef struct awaited {
	kr_ref ref;
} awaited;

static int is_answer(const kr_msg *m, void *ctx)
{
	kr_ref ref = ((const awaited *)ctx)->ref;
	const kr_down_msg *d = kr_msg_down(m);
	return d ? d->ref == ref : m->ref == ref;
}

KR_API int kr_call(kr_pid pid, uint64_t tag, const void *req, size_t len, kr_msg **reply,
                   long timeout_ms)
{
	krx_proc *p = krx_proc_self();
	if (reply)
		*reply = NULL;
	if (!p)
		return KR_ENOTPROC;
	if (!reply || pid <= 0 || (len && !req) || tag >= KR_TAG_RESERVED)
		return KR_EINVAL;
	krx_proc_ext *x = krx_proc_ext_get(p);
	if (!x)
		return KR_ENOMEM;
	/* The marker: everything queued now is older than any answer. */
	(void)krx_mailbox_take(&p->mbox);
	krx_msg *mark = p->mbox.tail;
	kr_ref ref = kr_monitor(pid);
	if (ref < 0)
		return (int)ref;
	x->call_ref = ref;
	int rc = krx_send_ref(pid, tag, ref, req, len);
	kr_msg *m = NULL;
	if (rc == 0) {
		awaited a = { ref };
		krx_matcher mt = { .kind = KRX_MATCH_PRED, .pred = is_answer, .ctx = &a };
		rc = krx_receive_after(&m, &mt, timeout_ms, mark);
	}
	/* From here a late reply is dropped on arrival. */
	p = krx_proc_self();
	krx_proc_ext_peek(p)->call_ref = 0;
	if (rc == 0 && kr_msg_down(m)) {
		kr_msg_free(m); /* the monitor fired: the server is gone */
		return KR_ENOPROC;
	}
	kr_demonitor(ref, 1);
	if (rc == 0)
		*reply = m;
	return rc;
}

KR_API int kr_reply(const kr_msg *request, uint64_t tag, const void *data, size_t len)
{
	if (!request || request->ref <= 0 || request->sender <= 0 || (len && !data))
		return KR_EINVAL;
	krx_sched *s = krx_sched_self();
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	krx_proc *p = s ? (krx_proc *)s->current : NULL;
	kr_pid me = p ? (kr_pid)AO_load(&p->live_pid) : 0;
	/* A caller that is gone or gave up drops it: not our error. */
	(void)krx_signal_send(s, me, request->sender, KRX_SIG_REPLY, request->ref, tag, data, len);
	krx_vm_leave(s);
	if (p)
		krx_task_charge(1);
	return 0;
}
