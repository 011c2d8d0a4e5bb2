/*
 * send.h - every way a message enters a mailbox: one builder and one
 * delivery.
 *
 * A user message (kr_send, kr_send_bin), a call's request, a reply, and
 * every signal (an exit signal, a link, a monitor, a DOWN ...) is a message
 * block built by krx_msg_build and handed to krx_deliver, which is where
 * the ordering rules live, once:
 *  - a message never overtakes one its scheduler holds for delivery in the
 *    outbox (a user message joins them, anything else flushes them first);
 *  - a target parked right here with its commit deferred (its partner is
 *    the sender) gets a user message, a request or the reply it waits for
 *    straight into its queue; anything else makes the deferred commit first,
 *    so that it is taken in through the mailbox like any signal;
 *  - a user message to a busy process that last ran on another core is
 *    held in the outbox, to go with others in one CAS;
 *  - anything else is pushed with one CAS, and the pusher that finds the
 *    target waiting in a receive is its one waker.
 */
#ifndef KRX_SEND_H
#define KRX_SEND_H

#include "proc.h"

/* A message block for kind, from `from` (0: a host thread; a process on
 * its exit path names itself), with tag and ref and either a copy of len
 * bytes at data or, with bin, a reference to bin. s: the calling
 * scheduler (its message cache) or NULL. NULL when memory is short. */
krx_msg *krx_msg_build(krx_sched *s, unsigned kind, kr_pid from, uint64_t tag, kr_ref ref,
                       const void *data, size_t len, kr_bin *bin);

/* Deliver m to `to`, following the rules above; m is the target's or freed.
 * s: the calling scheduler or NULL (a host thread). KRX_PUSH_DEAD when
 * the target is gone (a user message or a request is then counted as a
 * dead letter). Charges the calling process a reduction (more for a long
 * queue at the target), but for signals, whose callers charge. */
enum krx_push krx_deliver(krx_sched *s, kr_pid to, krx_msg *m);

/* Deliver a batch for one incarnation (the outbox's): k messages linked
 * newest to oldest. Frees and counts them if it is gone. */
void krx_deliver_batch(krx_sched *s, krx_proc *p, uint32_t serial, krx_msg *newest,
                       krx_msg *oldest, unsigned k);

/* Count n messages sent to processes that were gone; how many so far. */
void krx_dead_letters(unsigned n);
uint64_t krx_dead_letters_count(void);
/* At VM start: the largest payload a send copies, and no dead letters. */
void krx_send_init(size_t max_message);

/* kr_call's request: a message of kind KRX_MSG_CALL with ref (the caller
 * has checked tag). 0, 1 when the process is gone, or a negative error. */
int krx_send_call(kr_pid to, uint64_t tag, kr_ref ref, const void *data, size_t len);
/* kr_reply's answer: a KRX_SIG_REPLY with the request's ref, from `from`
 * (s's running process, or 0 from a host thread; the caller has checked
 * the arguments). A caller that is gone or gave up drops it. */
void krx_send_reply(krx_sched *s, kr_pid from, kr_pid to, kr_ref ref, uint64_t tag,
                    const void *data, size_t len);

/* kr_send, kr_call and kr_reply with the supervisors' tags too (from
 * KR_TAG_SUP up to KR_TAG_RESERVED, which the public calls refuse): for
 * sup.c's protocol. */
int krx_send(kr_pid to, uint64_t tag, const void *data, size_t len);
int krx_call(kr_pid pid, uint64_t tag, const void *req, size_t len, kr_msg **reply,
             long timeout_ms);
int krx_reply(const kr_msg *request, uint64_t tag, const void *data, size_t len);

/* A cast (kr_server_cast): a user message whose ref is KRX_REF_CAST, a
 * value no call's reference takes (they are positive), so that a server
 * tells it from a plain message without a header in its payload. As
 * kr_send otherwise: 0 (a dead letter too), or kr_send's errors. */
#define KRX_REF_CAST ((kr_ref)-1)
int krx_send_cast(kr_pid to, uint64_t tag, const void *data, size_t len);
/* kr_send_priority's send (priority.c checked the alias): a message for
 * the local process `to`'s alias, which it takes in as a priority message
 * if the alias is active then. As kr_send otherwise. */
int krx_send_alias(kr_pid to, kr_ref alias, uint64_t tag, const void *data, size_t len);
/* kr_call that also says why it got KR_ENOPROC (why non-NULL): noproc if
 * the server was not there, else the reason it ended with. */
int krx_call_why(kr_pid pid, uint64_t tag, const void *req, size_t len, kr_msg **reply,
                 long timeout_ms, kr_reason *why);

#endif
