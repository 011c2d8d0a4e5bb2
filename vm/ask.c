/*
 * ask.c - kr_info_links, kr_info_monitors, kr_info_monitored_by: asking a
 * process for its links and monitors (see ask.h).
 *
 * The answer is a KRX_SIG_REPLY carrying the question's reference, which
 * becomes a message only while the asker waits for that reference, so a
 * late answer (after a timeout) is dropped as it arrives, as kr_call's.
 * A host thread asks through a proxy process (proxy.h).
 */
#include "ask.h"

#include <limits.h>
#include <string.h>

#include "proxy.h"
#include "remote.h"
#include "send.h"
#include "signal.h"
#include "timeout.h"
#include "vm.h"

/* An answer's payload: this, then min(total, max) pids. */
typedef struct answer_head {
	int rc;       /* 0, or KR_ENOMEM: the target could not make the answer */
	size_t total; /* how many there are */
} answer_head;

/* Words an item takes per entry: a pid, or a (ref, pid) pair. */
static size_t words_of(int item)
{
	return item == KRX_ASK_MONITOR_REFS ? 2 : 1;
}

/* The item's pids in x (words_of(item) words each): all of them counted,
 * the first max stored. */
static size_t collect(const krx_proc_ext *x, int item, kr_pid *out, size_t max)
{
	if (!x)
		return 0;
	size_t n = 0;
	switch (item) {
	case KRX_ASK_MONITOR_REFS:
		for (; n < x->monitors.n; n++) {
			if (n >= max)
				continue;
			memcpy(&out[2 * n], &x->monitors.v[n].ref, sizeof out[0]);
			memcpy(&out[2 * n + 1], &x->monitors.v[n].pid, sizeof out[0]);
		}
		break;
	case KRX_ASK_LINKS:
		for (; n < x->links.n; n++)
			if (n < max)
				memcpy(&out[n], &x->links.v[n], sizeof out[n]);
		break;
	case KRX_ASK_MONITORS:
		for (; n < x->monitors.n; n++)
			if (n < max)
				memcpy(&out[n], &x->monitors.v[n].pid, sizeof out[n]);
		break;
	case KRX_ASK_MONITORED_BY:
		for (; n < x->watchers.n; n++)
			if (n < max)
				memcpy(&out[n], &x->watchers.v[n].pid, sizeof out[n]);
		break;
	}
	return n;
}

void krx_ask_answer(krx_proc *p, krx_msg *m)
{
	krx_ask_req rq;
	if (m->pub.len != sizeof rq)
		return;
	memcpy(&rq, m + 1, sizeof rq);
	krx_proc_ext *x = krx_proc_ext_peek(p);
	answer_head h = { 0, collect(x, rq.item, NULL, 0) };
	size_t n = h.total < rq.max ? h.total : rq.max;
	size_t len = sizeof h + n * words_of(rq.item) * sizeof(kr_pid);
	_Alignas(16) char small[256];
	char *buf = len <= sizeof small ? small : krx_alloc_raw(len);
	if (!buf) {
		h.rc = KR_ENOMEM;
		buf = small;
		len = sizeof h;
		n = 0;
	}
	memcpy(buf, &h, sizeof h);
	collect(x, rq.item, (kr_pid *)(void *)(buf + sizeof h), n);
	/* Relaxed: our own pid. A reply is a signal: sending it charges no
	 * reduction, so nothing here yields in the middle of the take. */
	krx_send_reply(krx_sched_self(), (kr_pid)AO_load(&p->live_pid), m->pub.sender, m->pub.ref, 0,
	               buf, len);
	if (buf != small)
		krx_free_raw(buf);
}

/* The entries of an answer's payload into out (max of them, w words
 * each): the total, or the target's error. */
static int parse(const void *data, size_t len, kr_pid *out, size_t max, size_t w)
{
	answer_head h;
	if (len < sizeof h)
		return KR_ENOMEM;
	memcpy(&h, data, sizeof h);
	if (h.rc)
		return h.rc;
	size_t n = (len - sizeof h) / (w * sizeof(kr_pid));
	if (n > max)
		n = max;
	if (n)
		memcpy(out, (const char *)data + sizeof h, n * w * sizeof(kr_pid));
	return h.total > INT_MAX ? INT_MAX : (int)h.total;
}

/* The calling process (me) asks pid and waits for the answer, as kr_call
 * waits: 0 and *reply, KR_ENOPROC (gone, or ended first), KR_ETIMEDOUT,
 * KR_ENOMEM. */
static int ask(krx_proc *me, kr_pid pid, const krx_ask_req *rq, long timeout_ms, kr_msg **reply)
{
	krx_proc_ext *x = krx_proc_ext_get(me);
	if (!x)
		return KR_ENOMEM;
	/* The marker: nothing queued now can be the answer. */
	krx_mailbox *mb = &me->mbox;
	if (krx_mailbox_has_new(mb))
		(void)krx_mailbox_take(mb);
	krx_msg *mark = mb->tail;
	krx_sched *s = krx_sched_self();
	kr_ref ref = krx_ref_new(s);
	x->call_ref = ref;
	/* Relaxed: our own pid. */
	kr_pid self = (kr_pid)AO_load(&me->live_pid);
	int rc = KR_ENOPROC;
	if (krx_signal_send(s, self, pid, KRX_SIG_ASK, ref, 0, rq, sizeof *rq) != KRX_PUSH_DEAD) {
		krx_task_charge(1);
		krx_matcher mt = { .kind = KRX_MATCH_REF, .ref = ref };
		rc = krx_receive_after(reply, &mt, timeout_ms, mark);
	}
	/* From here a late answer is dropped on arrival (x is the slot's:
	 * the same on whatever thread we resumed). */
	x->call_ref = 0;
	if (rc == 0 && (*reply)->tag == KR_TAG_DOWN) {
		kr_msg_free(*reply); /* it ended before answering */
		*reply = NULL;
		rc = KR_ENOPROC;
	}
	return rc;
}

/* A host thread's question, as its proxy puts it. */
typedef struct ask_job {
	kr_pid pid;
	krx_ask_req rq;
	long timeout_ms;
} ask_job;

static int ask_for_host(const void *arg, krx_proxy_out *out)
{
	const ask_job *j = arg;
	kr_msg *m;
	int rc = ask(krx_proc_self(), j->pid, &j->rq, j->timeout_ms, &m);
	if (rc)
		return rc;
	rc = krx_proxy_put(out, m->data, m->len);
	kr_msg_free(m);
	return rc;
}

static int info_pids(kr_pid pid, int item, kr_pid *out, size_t max, long timeout_ms)
{
	if ((max && !out) || !krx_timeout_valid(timeout_ms) || krx_pid_remote(pid))
		return KR_EINVAL;
	krx_sched *s = krx_sched_self();
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	bool alive = krx_proc_live(pid) != NULL;
	krx_vm_leave(s);
	if (!alive)
		return KR_ENOPROC;
	krx_proc *me = krx_proc_on(s);
	/* Relaxed: our own pid. Our own sets are ours to read. */
	if (me && pid == (kr_pid)AO_load(&me->live_pid)) {
		size_t n = collect(krx_proc_ext_peek(me), item, out, max);
		return n > INT_MAX ? INT_MAX : (int)n;
	}
	krx_ask_req rq = { item, max };
	int rc;
	if (me) {
		kr_msg *m;
		if ((rc = ask(me, pid, &rq, timeout_ms, &m)))
			return rc;
		rc = parse(m->data, m->len, out, max, words_of(item));
		kr_msg_free(m);
		return rc;
	}
	ask_job j = { pid, rq, timeout_ms };
	krx_proxy_out o;
	if ((rc = krx_proxy_run(ask_for_host, &j, sizeof j, timeout_ms, &o)))
		return rc;
	rc = parse(o.data, o.len, out, max, words_of(item));
	krx_free_raw(o.data);
	return rc;
}

KR_API int kr_info_links(kr_pid pid, kr_pid *out, size_t max, long timeout_ms)
{
	return info_pids(pid, KRX_ASK_LINKS, out, max, timeout_ms);
}

KR_API int kr_info_monitors(kr_pid pid, kr_pid *out, size_t max, long timeout_ms)
{
	return info_pids(pid, KRX_ASK_MONITORS, out, max, timeout_ms);
}

KR_API int kr_info_monitored_by(kr_pid pid, kr_pid *out, size_t max, long timeout_ms)
{
	return info_pids(pid, KRX_ASK_MONITORED_BY, out, max, timeout_ms);
}

int krx_info_monitor_refs(kr_pid pid, kr_ref *refs, kr_pid *pids, size_t max, long timeout_ms)
{
	if (max && (!refs || !pids))
		return KR_EINVAL;
	if (max > SIZE_MAX / (2 * sizeof(kr_pid)))
		return KR_ENOMEM;
	kr_pid small[32];
	kr_pid *pairs = max <= 16 ? small : krx_alloc_raw(2 * max * sizeof *pairs);
	if (!pairs)
		return KR_ENOMEM;
	int n = info_pids(pid, KRX_ASK_MONITOR_REFS, pairs, max, timeout_ms);
	for (int i = 0; i < n && (size_t)i < max; i++) {
		refs[i] = pairs[2 * i];
		pids[i] = pairs[2 * i + 1];
	}
	if (pairs != small)
		krx_free_raw(pairs);
	return n;
}
