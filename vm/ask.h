/*
 * ask.h - asking a process what only it knows: its links and monitors
 * (kr_info_links, kr_info_monitors, kr_info_monitored_by).
 *
 * The sets are the owner's alone (signal.h), so no other thread reads
 * them: the question is a signal (KRX_SIG_ASK) that the process answers as
 * it takes it in, with a reply the asker waits for as kr_call waits
 * (x->call_ref). Like an exit signal it raises the target's `sigs` flag, so
 * a busy process answers at its next yield and one parked on a descriptor
 * is interrupted to answer. Each question is answered once: by the
 * process, or, if it ends first, by its exit path (a CALL_DOWN, as for an
 * unanswered request); a target already gone fails the push.
 */
#ifndef KRX_ASK_H
#define KRX_ASK_H

#include "proc.h"

enum krx_ask_item {
	KRX_ASK_LINKS = 1,
	KRX_ASK_MONITORS,
	KRX_ASK_MONITORED_BY,
	KRX_ASK_MONITOR_REFS /* the monitors it holds as (ref, pid) pairs: the observer's */
};

/* The signal's payload. */
typedef struct krx_ask_req {
	int item;   /* enum krx_ask_item */
	size_t max; /* pids wanted at most */
} krx_ask_req;

/* Owner: answer m, a KRX_SIG_ASK that p takes in (signal.c). Never
 * yields: it runs in the middle of a take. */
void krx_ask_answer(krx_proc *p, krx_msg *m);

/* The monitors pid holds, as kr_info_monitors, with each one's reference:
 * refs[i] is the monitor of pids[i]; the first max go into the arrays.
 * Returns how many there are, or kr_info_monitors' errors. */
int krx_info_monitor_refs(kr_pid pid, kr_ref *refs, kr_pid *pids, size_t max, long timeout_ms);

#endif
