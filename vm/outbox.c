/*
 * outbox.c - per-scheduler send buffers (see outbox.h). An outbox belongs to
 * one scheduler and is touched only by its thread: no atomics here but the
 * mailbox CAS that delivers a batch.
 */
#include "outbox.h"

#include "send.h"
#include "vm.h"

static krx_outbox *outbox_of(krx_sched *s)
{
	return &krx_vm_local_of(s)->outbox;
}

static void deliver_entry(krx_sched *s, krx_outbox_entry *e)
{
	krx_deliver_batch(s, e->to, e->serial, e->newest, e->oldest, e->n);
}

void krx_outbox_flush(krx_sched *s)
{
	krx_outbox *ob = outbox_of(s);
	/* Clear first: a wake-up below may run code that sends. */
	unsigned used = ob->used;
	krx_outbox_entry held[KRX_OUTBOX_WAYS];
	for (unsigned i = 0; i < used; i++)
		held[i] = ob->e[i];
	ob->used = 0;
	s->vm.pending = 0;
	for (unsigned i = 0; i < used; i++)
		deliver_entry(s, &held[i]);
}

bool krx_outbox_hold(krx_sched *s, krx_proc *to, uint32_t serial, krx_msg *m, bool start)
{
	krx_outbox *ob = outbox_of(s);
	krx_outbox_entry *e = NULL;
	for (unsigned i = 0; i < ob->used; i++) {
		if (ob->e[i].to == to && ob->e[i].serial == serial) {
			e = &ob->e[i];
			break;
		}
	}
	if (!e) {
		if (!start)
			return false;
		if (ob->used == KRX_OUTBOX_WAYS)
			krx_outbox_flush(s);
		e = &ob->e[ob->used++];
		*e = (krx_outbox_entry){ .to = to, .serial = serial, .oldest = m };
		s->vm.pending = 1;
	}
	m->next = e->newest;
	e->newest = m;
	if (++e->n < KRX_OUTBOX_BATCH)
		return true;
	/* A full batch goes now; the slot is freed by moving the last one in. */
	krx_outbox_entry full = *e;
	*e = ob->e[--ob->used];
	if (!ob->used)
		s->vm.pending = 0;
	deliver_entry(s, &full);
	return true;
}
