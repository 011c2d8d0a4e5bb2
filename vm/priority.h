/*
 * priority.h - which messages a process takes in as priority messages
 * (EEP 76; krill.h "Priority messages"): its priority aliases, and the
 * links and monitors it marked. All of it is the owner's alone, made on
 * the first kr_alias_priority, kr_link_priority or kr_monitor_priority,
 * and consulted only as signals are taken in (signal.c), never on the
 * path of an ordinary message.
 */
#ifndef KRX_PRIORITY_H
#define KRX_PRIORITY_H

#include "mailbox.h"
#include "sets.h"

typedef struct krx_prio {
	krx_monset aliases;  /* active priority aliases: their refs (pid unused) */
	krx_pidset links;    /* links whose exit signal is a priority one */
	krx_monset monitors; /* monitors whose DOWN is a priority message: refs */
	krx_msg *qhead, *qtail; /* the priority queue, oldest first (mailbox.c); not
	                     * empty exactly while krx_proc.prio_queued is set */
} krx_prio;

/* An exit signal's ref when it is the noproc answer to kr_link_priority
 * (exit signals sent through an alias carry the alias's ref, > 0; others 0). */
#define KRX_REF_PRIO_EXIT ((kr_ref)-2)

struct krx_proc_ext;

/* Owner: p's marks, made if it has none; NULL if memory is short. */
krx_prio *krx_prio_get(struct krx_proc_ext *x);
/* Owner, taking signals in: is ref an active alias of ours? */
bool krx_prio_alias_active(const struct krx_proc_ext *x, kr_ref ref);
/* Owner: mark the link to pid (0, or KR_ENOMEM). */
int krx_prio_mark_link(struct krx_proc_ext *x, kr_pid pid);
/* Owner: the link to pid is gone (unlinked, or its exit signal taken in):
 * drop its mark. True if it was marked. */
bool krx_prio_link_gone(struct krx_proc_ext *x, kr_pid pid);
/* Owner: mark the monitor ref (0, or KR_ENOMEM). */
int krx_prio_mark_monitor(struct krx_proc_ext *x, kr_ref ref);
/* Owner: the monitor ref is gone: drop its mark. True if it was marked. */
bool krx_prio_monitor_gone(struct krx_proc_ext *x, kr_ref ref);
/* The process is ending: forget every mark (its exit path). */
void krx_prio_reset(struct krx_proc_ext *x);

#endif
