/*
 * signal.c - exit signals, links, monitors (see signal.h for the rule that
 * keeps them lock-free: only the owner changes its own sets).
 *
 * Erlang's rules, which krill follows (erlang:exit/2, link/1, monitor/2):
 *  - An exit signal with KR_EXIT_KILL ends its target, trapping or not, with
 *    KR_EXIT_KILLED. Any other exit signal becomes a KR_TAG_EXIT message for
 *    a target that traps exits; for one that does not, it is ignored if the
 *    reason is normal (unless the target sent it to itself: exit(self(),
 *    normal) ends the caller with reason normal) and ends the target with
 *    that reason otherwise.
 *  - A process that ends sends an exit signal with its reason to each linked
 *    process (a link's signal is dropped by a receiver that has unlinked
 *    meanwhile) and a DOWN to each monitor on it (dropped by a watcher that
 *    has demonitored meanwhile).
 */
#include "signal.h"

#include <execinfo.h>
#include <stdio.h>
#include <string.h>

#include "ask.h"
#include "host.h"
#include "io.h"
#include "msg.h"
#include "priority.h"
#include "remote.h"
#include "send.h"
#include "sets.h"
#include "vm.h"

/* ---- the extension ---- */

krx_proc_ext *krx_proc_ext_get(krx_proc *p)
{
	/* Relaxed: only the owner (or its spawner, before publishing it)
	 * writes this word. */
	krx_proc_ext *x = (krx_proc_ext *)AO_load(&p->ext);
	if (x)
		return x;
	x = krx_calloc_raw(1, sizeof *x);
	/* Release: a racy reader (kr_info) that sees the pointer sees it zeroed. */
	if (x)
		AO_store_release(&p->ext, (AO_t)x);
	return x;
}

void krx_proc_ext_reset(krx_proc_ext *x)
{
	krx_free_raw(x->links.v);
	krx_free_raw(x->monitors.v);
	krx_free_raw(x->watchers.v);
	krx_free_raw(x->calls.v);
	krx_prio_reset(x);
	x->links = (krx_pidset){ 0 };
	x->monitors = x->watchers = x->calls = (krx_monset){ 0 };
	x->call_ref = 0;
	x->reason = (kr_reason){ 0 };
	x->ended_by = 0;
	x->nbt = 0;
	x->proxy = NULL;
	/* Release: on the exit path these are cleared after live_pid, so a
	 * racy reader (proc.c's sup_words) that loads a cleared word with
	 * acquire then sees the pid dead, and does not take "none" for this
	 * incarnation's answer. */
	AO_store_release(&x->sup, 0);
	AO_store_release(&x->is_sup, 0);
}

/* Host threads' references: each thread takes a block of HOST_REFS at a
 * time from one counter, so that host threads calling at once share no
 * counter either. */
#define HOST_REFS 1024
static __thread uint64_t host_ref_next, host_ref_end;

kr_ref krx_ref_new(krx_sched *s)
{
	/* Per scheduler, so calls on different cores share no counter: the low
	 * 11 bits say whose (0: host threads), the rest count. */
	static AO_t host_refs;
	if (s) {
		krx_vm_local *l = krx_vm_local_of(s);
		return (kr_ref)(++l->refs << 11 | (s->id + 1));
	}
	if (host_ref_next == host_ref_end) {
		/* Relaxed: the counter only has to hand each block out once. */
		host_ref_next = AO_fetch_and_add(&host_refs, HOST_REFS) + 1;
		host_ref_end = host_ref_next + HOST_REFS;
	}
	return (kr_ref)(host_ref_next++ << 11);
}

/* ---- sending ---- */

enum krx_push krx_signal_send(krx_sched *s, kr_pid from, kr_pid to, unsigned kind, kr_ref ref,
                              uint64_t tag, const void *payload, size_t len)
{
	if (krx_pid_remote(to)) {
		const krx_remote_ops *ops = krx_remote();
		if (!ops)
			return KRX_PUSH_DEAD; /* no node any more: nowhere to send it */
		ops->signal(from, to, kind, ref, tag, payload, len);
		return KRX_PUSH_OK;
	}
	krx_msg *m = krx_msg_build(s, kind, from, tag, ref, payload, len, NULL);
	return m ? krx_deliver(s, to, m) : KRX_PUSH_DEAD;
}

/* ref: 0, or an alias (kr_exit_sig_priority), or KRX_REF_PRIO_EXIT. */
static enum krx_push send_exit(krx_sched *s, kr_pid from, kr_pid to, unsigned kind,
                               const kr_reason *reason, kr_ref ref)
{
	kr_exit_msg e = { .from = from, .reason = *reason };
	return krx_signal_send(s, from, to, kind, ref, 0, &e, sizeof e);
}

/* ---- taking signals in (owner) ---- */

/* Is the exit signal m, being taken in, a priority one (priority.h)?
 * DROP if it came through an alias that is no longer active. */
static __attribute__((noinline, cold)) enum krx_take exit_priority(krx_proc *p, krx_msg *m,
                                                                   kr_pid from)
{
	krx_proc_ext *x = krx_proc_ext_peek(p);
	if (m->hb.kind == KRX_SIG_EXIT_LINK)
		return krx_prio_link_gone(x, from) ? KRX_TAKE_PRIORITY : KRX_TAKE_KEEP;
	if (m->pub.ref == KRX_REF_PRIO_EXIT)
		return KRX_TAKE_PRIORITY;
	return x && krx_prio_alias_active(x, m->pub.ref) ? KRX_TAKE_PRIORITY : KRX_TAKE_DROP;
}

static enum krx_take take_exit(krx_proc *p, krx_msg *m)
{
	kr_exit_msg e;
	memcpy(&e, m + 1, sizeof e);
	if (m->hb.kind == KRX_SIG_EXIT_LINK) {
		krx_proc_ext *x = krx_proc_ext_peek(p);
		if (!x || !pidset_del(&x->links, e.from))
			return KRX_TAKE_DROP; /* unlinked since: not ours any more */
	}
	/* Ordinary exit signals carry no ref, and a link's has none to
	 * consult unless the process ever asked for priority. */
	enum krx_take keep = KRX_TAKE_KEEP;
	if (m->pub.ref || (m->hb.kind == KRX_SIG_EXIT_LINK && krx_proc_ext_peek(p)->prio))
		keep = exit_priority(p, m, e.from);
	if (keep == KRX_TAKE_DROP)
		return keep;
	/* Untrappable, but for a host thread's mailbox: nothing can end a
	 * thread, so it takes even a kill as a message. */
	if (m->hb.kind == KRX_SIG_EXIT && e.reason.kind == KR_EXIT_KILL && !p->host) {
		krx_proc_set_reason(p, KR_EXIT_KILLED, NULL, e.from, false);
		return KRX_TAKE_DROP;
	}
	if (p->trap_exit) {
		m->hb.kind = KRX_MSG_USER;
		m->pub.tag = KR_TAG_EXIT;
		m->pub.ref = 0;
		return keep;
	}
	/* normal is ignored, except from the process itself: Erlang's
	 * exit(self(), normal) ends the caller, with reason normal. */
	/* Relaxed: our own pid, written before we first ran. */
	kr_pid me = (kr_pid)AO_load(&p->live_pid);
	if (e.reason.kind != KR_EXIT_NORMAL || (m->hb.kind == KRX_SIG_EXIT && e.from == me))
		krx_proc_set_reason(p, e.reason.kind, e.reason.text, e.from, false);
	return KRX_TAKE_DROP;
}

enum krx_take krx_signal_take(krx_proc *p, krx_msg *m)
{
	krx_proc_ext *x;
	kr_pid from = m->pub.sender;
	switch (m->hb.kind) {
	case KRX_SIG_EXIT:
	case KRX_SIG_EXIT_LINK:
		return take_exit(p, m);
	case KRX_SIG_LINK:
		/* Memory short: the link is lost, as if never made. */
		if ((x = krx_proc_ext_get(p)))
			(void)pidset_add(&x->links, from);
		return KRX_TAKE_DROP;
	case KRX_SIG_UNLINK:
		if ((x = krx_proc_ext_peek(p)))
			pidset_del(&x->links, from);
		return KRX_TAKE_DROP;
	case KRX_SIG_MONITOR:
		if ((x = krx_proc_ext_get(p)))
			(void)monset_add(&x->watchers, m->pub.ref, from);
		return KRX_TAKE_DROP;
	case KRX_SIG_DEMONITOR:
		if ((x = krx_proc_ext_peek(p)))
			monset_del(&x->watchers, m->pub.ref, NULL);
		return KRX_TAKE_DROP;
	case KRX_SIG_DOWN: {
		kr_down_msg d;
		memcpy(&d, m + 1, sizeof d);
		x = krx_proc_ext_peek(p);
		if (!x || !monset_del(&x->monitors, d.ref, NULL))
			return KRX_TAKE_DROP; /* demonitored since */
		m->hb.kind = KRX_MSG_USER;
		m->pub.tag = KR_TAG_DOWN;
		return x->prio && krx_prio_monitor_gone(x, d.ref) ? KRX_TAKE_PRIORITY : KRX_TAKE_KEEP;
	}
	case KRX_SIG_REPLY:
	case KRX_SIG_CALL_DOWN:
		x = krx_proc_ext_peek(p);
		if (!x || !x->call_ref || x->call_ref != m->pub.ref)
			return KRX_TAKE_DROP; /* a call that gave up: dropped on arrival */
		if (m->hb.kind == KRX_SIG_CALL_DOWN)
			m->pub.tag = KR_TAG_DOWN;
		m->hb.kind = KRX_MSG_USER;
		return KRX_TAKE_KEEP;
	case KRX_MSG_CALL:
		return KRX_TAKE_KEEP; /* recorded when it is received (krx_call_taken) */
	case KRX_SIG_FD:
		krx_io_adopt(p, m);
		return KRX_TAKE_DROP;
	case KRX_SIG_FD_READY:
		m->hb.kind = KRX_MSG_USER;
		return KRX_TAKE_KEEP;
	case KRX_SIG_ASK:
		krx_ask_answer(p, m);
		return KRX_TAKE_DROP;
	case KRX_SIG_OVERFLOW: {
		/* Its own end, as max_heap's: untrappable, a crash report. */
		char text[80];
		snprintf(text, sizeof text, "a message would pass max_mailbox %u",
		         KRX_MB_COUNT(AO_int_load(&p->mb_limit))); /* relaxed: ours */
		krx_proc_set_reason(p, KR_EXIT_MAILBOX_LIMIT, text, KRX_OWN_END, false);
		return KRX_TAKE_DROP;
	}
	case KRX_SIG_ALIAS_MSG:
		/* As Erlang, a message to an alias no longer active is dropped. */
		x = krx_proc_ext_peek(p);
		if (!x || !krx_prio_alias_active(x, m->pub.ref)) {
			krx_dead_letters(1);
			return KRX_TAKE_DROP;
		}
		m->hb.kind = KRX_MSG_USER;
		m->pub.ref = 0;
		return KRX_TAKE_PRIORITY;
	}
	return KRX_TAKE_DROP;
}

void krx_call_taken(krx_proc *p, krx_msg *m)
{
	krx_proc_ext *x = krx_proc_ext_get(p);
	/* Memory short: the caller then learns of our end only by its timeout. */
	if (x)
		(void)monset_add(&x->calls, m->pub.ref, m->pub.sender);
}

bool krx_call_replied(krx_proc *p, kr_ref ref)
{
	krx_proc_ext *x = krx_proc_ext_peek(p);
	return x && monset_del(&x->calls, ref, NULL);
}

/* ---- the exit path ---- */

/* A signal still in the mailbox of a process that ends: link and monitor
 * requests that came before the end are honoured, so that the requester
 * gets the real reason rather than noproc. */
static void late_signal(krx_msg *m, void *ctx)
{
	krx_proc *p = ctx;
	kr_pid from = m->pub.sender;
	krx_proc_ext *x;
	switch (m->hb.kind) {
	case KRX_SIG_LINK:
		if ((x = krx_proc_ext_get(p)))
			(void)pidset_add(&x->links, from);
		break;
	case KRX_SIG_UNLINK:
		if ((x = krx_proc_ext_peek(p)))
			pidset_del(&x->links, from);
		break;
	case KRX_SIG_MONITOR:
		if ((x = krx_proc_ext_get(p)))
			(void)monset_add(&x->watchers, m->pub.ref, from);
		break;
	case KRX_SIG_DEMONITOR:
		if ((x = krx_proc_ext_peek(p)))
			monset_del(&x->watchers, m->pub.ref, NULL);
		break;
	case KRX_MSG_CALL: /* never received: its caller hears of our end */
	case KRX_SIG_ASK:  /* never answered: the same */
		if ((x = krx_proc_ext_get(p)))
			(void)monset_add(&x->calls, m->pub.ref, from);
		break;
	case KRX_SIG_FD:
		krx_io_orphan(p, m); /* given to us, and we end: closed */
		break;
	}
}

void krx_signal_close(krx_proc *p)
{
	krx_sched *s = krx_sched_self();
	krx_mailbox_close(&p->mbox, p->serial, krx_vm_msg_cache(s), late_signal, p);
}

/* From the exit path: a process's on its scheduler, or a host thread's
 * mailbox's on its thread (s NULL), inside the VM. */
void krx_signal_notify(krx_proc *p, kr_pid pid, const kr_reason *reason)
{
	krx_sched *s = krx_sched_self();
	krx_proc_ext *x = krx_proc_ext_peek(p);
	if (!x)
		return; /* nothing to tell */
	for (unsigned i = 0; i < x->links.n; i++)
		send_exit(s, pid, x->links.v[i], KRX_SIG_EXIT_LINK, reason, 0);
	for (unsigned i = 0; i < x->watchers.n; i++) {
		kr_down_msg d = { .ref = x->watchers.v[i].ref, .pid = pid, .reason = *reason };
		krx_signal_send(s, pid, x->watchers.v[i].pid, KRX_SIG_DOWN, d.ref, 0, &d, sizeof d);
	}
	for (unsigned i = 0; i < x->monitors.n; i++)
		krx_signal_send(s, pid, x->monitors.v[i].pid, KRX_SIG_DEMONITOR, x->monitors.v[i].ref, 0,
		                NULL, 0);
	for (unsigned i = 0; i < x->calls.n; i++) {
		kr_down_msg d = { .ref = x->calls.v[i].ref, .pid = pid, .reason = *reason };
		krx_signal_send(s, pid, x->calls.v[i].pid, KRX_SIG_CALL_DOWN, d.ref, 0, &d, sizeof d);
	}
}

int krx_signal_spawn_link(krx_proc *parent, kr_pid parent_pid, krx_proc *child, kr_pid child_pid)
{
	krx_proc_ext *px = krx_proc_ext_get(parent), *cx = krx_proc_ext_get(child);
	if (!px || !cx || pidset_add(&px->links, child_pid))
		return KR_ENOMEM;
	if (pidset_add(&cx->links, parent_pid)) {
		pidset_del(&px->links, child_pid);
		return KR_ENOMEM;
	}
	return 0;
}

int krx_signal_spawn_monitor(krx_proc *parent, krx_proc *child, kr_pid child_pid, kr_ref *ref)
{
	krx_proc_ext *px = krx_proc_ext_get(parent), *cx = krx_proc_ext_get(child);
	kr_ref r = krx_ref_new(krx_sched_self());
	if (!px || !cx || monset_add(&px->monitors, r, child_pid))
		return KR_ENOMEM;
	if (monset_add(&cx->watchers, r, (kr_pid)AO_load(&parent->live_pid))) {
		monset_del(&px->monitors, r, NULL);
		return KR_ENOMEM;
	}
	*ref = r;
	return 0;
}

int krx_signal_spawn_remote(krx_proc *child, kr_pid link_to, kr_pid watcher, kr_ref ref)
{
	krx_proc_ext *cx = krx_proc_ext_get(child);
	if (!cx || (link_to && pidset_add(&cx->links, link_to)))
		return KR_ENOMEM;
	if (watcher && monset_add(&cx->watchers, ref, watcher)) {
		if (link_to)
			pidset_del(&cx->links, link_to);
		return KR_ENOMEM;
	}
	return 0;
}

kr_ref krx_remote_ref_new(void)
{
	return krx_ref_new(krx_sched_self());
}

int krx_remote_monitor_note(kr_ref ref, kr_pid target)
{
	krx_proc *p = krx_proc_self();
	if (!p)
		p = krx_host_peek(); /* a host thread's call, from its mailbox */
	krx_proc_ext *x = p ? krx_proc_ext_get(p) : NULL;
	if (!x)
		return p ? KR_ENOMEM : KR_ENOTPROC;
	monset_del(&x->monitors, ref, NULL);
	return monset_add(&x->monitors, ref, target);
}

void krx_remote_monitor_drop(kr_ref ref)
{
	krx_proc *p = krx_proc_self();
	if (!p)
		p = krx_host_peek();
	krx_proc_ext *x = p ? krx_proc_ext_peek(p) : NULL;
	if (x)
		monset_del(&x->monitors, ref, NULL);
}

/* ---- the public calls ---- */

static kr_pid self_pid(krx_proc *p)
{
	/* Relaxed: our own pid, written before we first ran. */
	return (kr_pid)AO_load(&p->live_pid);
}

/*
 * The calls below act for the calling process, or for a host thread's
 * mailbox (host.c): a host thread enters the VM for the call, and takes
 * its mailbox, made on first use by kr_link and kr_monitor, which need one;
 * kr_unlink and kr_demonitor have nothing to undo without one.
 */

/* prio: kr_link_priority's mark on this side of the link. */
static int link_from(krx_proc *p, kr_pid pid, bool prio)
{
	kr_pid me = self_pid(p);
	if (!krx_pid_ok(pid) || pid == me)
		return pid == me ? 0 : KR_EINVAL;
	krx_proc_ext *x = krx_proc_ext_get(p);
	if (!x)
		return KR_ENOMEM;
	if (prio && krx_prio_mark_link(x, pid))
		return KR_ENOMEM;
	if (pidset_has(&x->links, pid))
		return 0;
	if (pidset_add(&x->links, pid)) {
		if (prio)
			krx_prio_link_gone(x, pid);
		return KR_ENOMEM;
	}
	krx_sched *s = krx_sched_self();
	if (krx_signal_send(s, me, pid, KRX_SIG_LINK, 0, 0, NULL, 0) == KRX_PUSH_DEAD) {
		/* Gone: Erlang's link/1 sends us an exit signal with noproc,
		 * which a trapping process receives and any other dies of. */
		pidset_del(&x->links, pid);
		kr_reason noproc = { .kind = KR_EXIT_NOPROC };
		if (prio)
			krx_prio_link_gone(x, pid);
		send_exit(s, pid, me, KRX_SIG_EXIT, &noproc, prio ? KRX_REF_PRIO_EXIT : 0);
		(void)krx_mailbox_take(&p->mbox);
	}
	krx_task_charge(1);
	return 0;
}

static int link_as(kr_pid pid, bool prio)
{
	krx_proc *p = krx_proc_self();
	if (p)
		return link_from(p, pid, prio);
	if (!krx_pid_ok(pid))
		return KR_EINVAL; /* no mailbox made for a bad pid */
	int err;
	if (!(p = krx_host_enter(true, &err)))
		return err;
	err = link_from(p, pid, prio);
	krx_vm_leave_host();
	return err;
}

KR_API int kr_link(kr_pid pid)
{
	return link_as(pid, false);
}

KR_API int kr_link_priority(kr_pid pid)
{
	return link_as(pid, true);
}

static void unlink_from(krx_proc *p, kr_pid pid)
{
	krx_proc_ext *x = krx_proc_ext_peek(p);
	if (x && pidset_del(&x->links, pid))
		krx_signal_send(krx_sched_self(), self_pid(p), pid, KRX_SIG_UNLINK, 0, 0, NULL, 0);
	if (x && x->prio)
		krx_prio_link_gone(x, pid);
	krx_task_charge(1);
}

KR_API int kr_unlink(kr_pid pid)
{
	if (!krx_pid_ok(pid))
		return KR_EINVAL;
	krx_proc *p = krx_proc_self();
	if (p) {
		unlink_from(p, pid);
		return 0;
	}
	int err;
	if (!(p = krx_host_enter(false, &err)))
		return err; /* 0: no mailbox, no link */
	unlink_from(p, pid);
	krx_vm_leave_host();
	return 0;
}

KR_API int kr_trap_exit(int on)
{
	krx_proc *p = krx_proc_self();
	if (!p)
		return on ? 1 : KR_ENOTPROC; /* a host thread's mailbox always traps */
	int was = p->trap_exit;
	p->trap_exit = on != 0;
	return was;
}

/* prio: kr_monitor_priority's mark on the monitor, made before its DOWN
 * can be taken in (one for a process gone already is sent at once). */
static kr_ref monitor_from(krx_proc *p, kr_pid pid, bool prio)
{
	krx_proc_ext *x = krx_proc_ext_get(p);
	krx_sched *s = krx_sched_self();
	kr_ref ref = krx_ref_new(s);
	if (!x || (prio && krx_prio_mark_monitor(x, ref)))
		return KR_ENOMEM;
	if (monset_add(&x->monitors, ref, pid)) {
		if (prio)
			krx_prio_monitor_gone(x, ref);
		return KR_ENOMEM;
	}
	kr_pid me = self_pid(p);
	if (krx_signal_send(s, me, pid, KRX_SIG_MONITOR, ref, 0, NULL, 0) == KRX_PUSH_DEAD) {
		/* Gone already: the DOWN comes at once, with noproc. */
		kr_down_msg d = { .ref = ref, .pid = pid, .reason = { .kind = KR_EXIT_NOPROC } };
		krx_signal_send(s, pid, me, KRX_SIG_DOWN, ref, 0, &d, sizeof d);
	}
	krx_task_charge(1);
	return ref;
}

static kr_ref monitor_as(kr_pid pid, bool prio)
{
	if (!krx_pid_ok(pid))
		return KR_EINVAL;
	krx_proc *p = krx_proc_self();
	if (p)
		return monitor_from(p, pid, prio);
	int err;
	if (!(p = krx_host_enter(true, &err)))
		return err;
	kr_ref ref = monitor_from(p, pid, prio);
	krx_vm_leave_host();
	return ref;
}

KR_API kr_ref kr_monitor(kr_pid pid)
{
	return monitor_as(pid, false);
}

KR_API kr_ref kr_monitor_priority(kr_pid pid)
{
	return monitor_as(pid, true);
}

static int is_down_for(const kr_msg *m, void *ctx)
{
	const kr_down_msg *d = kr_msg_down(m);
	return d && d->ref == *(const kr_ref *)ctx;
}

static void demonitor_from(krx_proc *p, kr_ref ref, int flush)
{
	krx_proc_ext *x = krx_proc_ext_peek(p);
	kr_pid target;
	if (x && monset_del(&x->monitors, ref, &target))
		krx_signal_send(krx_sched_self(), self_pid(p), target, KRX_SIG_DEMONITOR, ref, 0, NULL,
		                0);
	if (x && x->prio)
		krx_prio_monitor_gone(x, ref);
	/* From here on a DOWN for ref is dropped as it is taken in; with
	 * flush, one taken in already goes too. */
	if (flush) {
		kr_msg *m;
		krx_matcher mt = { .kind = KRX_MATCH_PRED, .pred = is_down_for, .ctx = &ref };
		while (krx_receive_after(&m, &mt, 0, NULL) == 0)
			kr_msg_free(m);
	}
	krx_task_charge(1);
}

KR_API int kr_demonitor(kr_ref ref, int flush)
{
	if (ref <= 0)
		return KR_EINVAL;
	krx_proc *p = krx_proc_self();
	if (p) {
		demonitor_from(p, ref, flush);
		return 0;
	}
	int err;
	if (!(p = krx_host_enter(false, &err)))
		return err; /* 0: no mailbox, no monitor */
	demonitor_from(p, ref, flush);
	krx_vm_leave_host();
	return 0;
}

/* kr_exit_sig_reason, through the alias ref if nonzero. */
static int exit_sig(kr_pid pid, const kr_reason *reason, kr_ref ref)
{
	if (!reason || reason->kind < KR_EXIT_NORMAL || reason->kind > KR_EXIT_KILL)
		return KR_EINVAL;
	if (!krx_pid_ok(pid))
		return KR_EINVAL;
	if (ref && krx_pid_remote(pid))
		return KR_ENOSYS; /* aliases are one node's (krill.h) */
	krx_sched *s = krx_sched_self();
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	krx_proc *p = krx_proc_on(s);
	/* A host thread signals from its mailbox's pid if it has one; its
	 * signal to itself is a message (it traps), taken when it receives. */
	kr_pid me = p ? self_pid(p) : krx_host_pid();
	send_exit(s, me, pid, KRX_SIG_EXIT, reason, ref);
	krx_vm_leave(s);
	if (p && pid == me)
		(void)krx_mailbox_take(&p->mbox); /* to ourselves: act on it now */
	if (p)
		krx_task_charge(1);
	return 0;
}

KR_API int kr_exit_sig_reason(kr_pid pid, const kr_reason *reason)
{
	return exit_sig(pid, reason, 0);
}

KR_API int kr_exit_sig_priority(kr_alias alias, const kr_reason *reason)
{
	if (alias.ref <= 0)
		return KR_EINVAL;
	return exit_sig(alias.pid, reason, alias.ref);
}

KR_API int kr_exit_sig(kr_pid pid, int kind)
{
	kr_reason r = { .kind = kind };
	return kr_exit_sig_reason(pid, &r);
}

KR_API const kr_exit_msg *kr_msg_exit(const kr_msg *msg)
{
	return msg && msg->tag == KR_TAG_EXIT && msg->len == sizeof(kr_exit_msg) ? msg->data : NULL;
}

KR_API const kr_down_msg *kr_msg_down(const kr_msg *msg)
{
	return msg && msg->tag == KR_TAG_DOWN && msg->len == sizeof(kr_down_msg) ? msg->data : NULL;
}

bool krx_remote_signal_in(kr_pid from, kr_pid to, unsigned kind, kr_ref ref, uint64_t tag,
                          const void *payload, size_t len)
{
	if (!krx_pid_valid(to))
		return false;
	return krx_signal_send(krx_sched_self(), from, to, kind, ref, tag, payload, len) !=
	       KRX_PUSH_DEAD;
}

bool krx_remote_call_in(kr_pid from, kr_pid to, kr_ref ref, uint64_t tag, const void *data,
                        size_t len)
{
	return krx_remote_signal_in(from, to, KRX_MSG_CALL, ref, tag, data, len);
}
