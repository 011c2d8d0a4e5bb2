/*
 * priority.c - priority messages (EEP 76; krill.h "Priority messages"):
 * priority aliases, kr_send_priority, and the marks signal.c consults as
 * it takes exit signals and DOWNs in. The queueing itself is mailbox.c's
 * (a second private queue, scanned first).
 *
 * Whether a message is a priority one is decided by the receiver as it
 * takes it in, never by the sender: a priority send is a signal of its
 * own kind carrying the alias, and only an alias active at that moment
 * makes it a priority message (Erlang's rule: deactivating an alias drops
 * what is still on its way). So the sender needs no look at the receiver's
 * state, and the receiver's marks need no lock.
 */
#include "priority.h"

#include "host.h"
#include "remote.h"
#include "send.h"
#include "signal.h"
#include "vm.h"

krx_prio *krx_prio_get(krx_proc_ext *x)
{
	if (!x->prio)
		x->prio = krx_calloc_raw(1, sizeof *x->prio);
	return x->prio;
}

bool krx_prio_alias_active(const krx_proc_ext *x, kr_ref ref)
{
	return x->prio && ref > 0 && monset_has(&x->prio->aliases, ref);
}

int krx_prio_mark_link(krx_proc_ext *x, kr_pid pid)
{
	krx_prio *pr = krx_prio_get(x);
	return pr ? pidset_add(&pr->links, pid) : KR_ENOMEM;
}

bool krx_prio_link_gone(krx_proc_ext *x, kr_pid pid)
{
	return x->prio && pidset_del(&x->prio->links, pid);
}

int krx_prio_mark_monitor(krx_proc_ext *x, kr_ref ref)
{
	krx_prio *pr = krx_prio_get(x);
	return pr ? monset_add(&pr->monitors, ref, 0) : KR_ENOMEM;
}

bool krx_prio_monitor_gone(krx_proc_ext *x, kr_ref ref)
{
	return x->prio && monset_del(&x->prio->monitors, ref, NULL);
}

void krx_prio_reset(krx_proc_ext *x)
{
	krx_prio *pr = x->prio;
	if (!pr)
		return;
	krx_free_raw(pr->aliases.v);
	krx_free_raw(pr->links.v);
	krx_free_raw(pr->monitors.v);
	krx_free_raw(pr);
	x->prio = NULL;
}

/* The calling process, or the host thread's mailbox (made if make);
 * NULL with *err set. *host: leave the VM after (krx_vm_leave_host). */
static krx_proc *caller(bool make, bool *host, int *err)
{
	krx_proc *p = krx_proc_self();
	*host = !p;
	return p ? p : krx_host_enter(make, err);
}

KR_API int kr_alias_priority(kr_alias *out)
{
	if (!out)
		return KR_EINVAL;
	bool host;
	int err;
	krx_proc *p = caller(true, &host, &err);
	if (!p)
		return err;
	err = KR_ENOMEM;
	krx_proc_ext *x = krx_proc_ext_get(p);
	krx_prio *pr = x ? krx_prio_get(x) : NULL;
	kr_ref ref = krx_ref_new(krx_sched_self());
	if (pr && !monset_add(&pr->aliases, ref, 0)) {
		/* Relaxed: our own pid, written before we first ran. */
		*out = (kr_alias){ .pid = (kr_pid)AO_load(&p->live_pid), .ref = ref };
		err = 0;
	}
	if (host)
		krx_vm_leave_host();
	return err;
}

KR_API int kr_unalias(kr_alias alias)
{
	if (alias.pid <= 0 || alias.ref <= 0)
		return KR_EINVAL;
	bool host;
	int err;
	krx_proc *p = caller(false, &host, &err);
	if (!p)
		return err; /* a host thread without a mailbox has no alias: 0 */
	krx_proc_ext *x = krx_proc_ext_peek(p);
	/* Relaxed: our own pid. An alias of another process is not ours to drop. */
	int rc = x && x->prio && alias.pid == (kr_pid)AO_load(&p->live_pid) &&
	         monset_del(&x->prio->aliases, alias.ref, NULL);
	if (host)
		krx_vm_leave_host();
	return rc;
}

KR_API int kr_send_priority(kr_alias alias, uint64_t tag, const void *data, size_t len)
{
	if (alias.ref <= 0 || tag >= KR_TAG_SUP || (len && !data))
		return KR_EINVAL;
	if (krx_pid_remote(alias.pid))
		return krx_remote() ? KR_ENOSYS : KR_EINVAL; /* aliases are one node's */
	if (!krx_pid_valid(alias.pid))
		return KR_EINVAL;
	return krx_send_alias(alias.pid, alias.ref, tag, data, len);
}
