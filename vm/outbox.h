/*
 * outbox.h - per-scheduler send buffers.
 *
 * Senders on one core flooding a receiver on another would take turns owning
 * the receiver's mailbox cache line, one transfer per message. Instead, a
 * message to a process that last ran on another scheduler is held in the
 * sending scheduler's outbox, and the outbox delivers each receiver's batch
 * with one CAS: when it reaches KRX_OUTBOX_BATCH messages, and always before
 * the sending task leaves the CPU (so a message is never held past the run
 * of the process that sent it, and a process never migrates, waits or exits
 * with messages unsent), and again after the exit path's notices, which are
 * sent once the task has left (vm/exit.c). Once a scheduler holds messages
 * for a receiver, every later message to it from that scheduler joins them,
 * so messages from one sender to one receiver still arrive in the order sent.
 */
#ifndef KRX_OUTBOX_H
#define KRX_OUTBOX_H

#include <stdbool.h>

#include "proc.h"

#define KRX_OUTBOX_WAYS 8
#define KRX_OUTBOX_BATCH 64

typedef struct krx_outbox_entry {
	krx_proc *to;
	uint32_t serial;
	unsigned n;
	krx_msg *newest, *oldest;
} krx_outbox_entry;

typedef struct krx_outbox {
	unsigned used;
	krx_outbox_entry e[KRX_OUTBOX_WAYS];
} krx_outbox;

/* Hold m for `to` in s's outbox if s already holds messages for it, or if
 * start and there is room to begin. False: deliver it directly. */
bool krx_outbox_hold(krx_sched *s, krx_proc *to, uint32_t serial, krx_msg *m, bool start);
static inline bool krx_outbox_add(krx_sched *s, krx_proc *to, uint32_t serial, krx_msg *m,
                                  bool start)
{
	/* vm.pending is set exactly while the outbox holds messages. */
	if (!start && !s->vm.pending)
		return false;
	return krx_outbox_hold(s, to, serial, m, start);
}
/* Deliver everything s holds (the scheduler's flush hook). */
void krx_outbox_flush(krx_sched *s);

#endif
