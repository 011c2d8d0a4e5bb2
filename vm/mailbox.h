/*
 * mailbox.h - a process's mailbox: an incoming stack that any thread pushes
 * onto, a hand-off slot, and a private queue that only the owner reads.
 *
 * The incoming side is one atomic word, (serial << 48) | low, where low is
 * the newest message, 0 (empty), CLOSED (the owner has exited) or a WAITING
 * mark (the owner is parked in a receive; the mark carries the park's
 * sequence number, see below). Senders change the word with a CAS that also
 * checks the serial, so a message can never land in a later process that
 * reuses the slot, nor in a closed mailbox. Because "is the owner waiting?"
 * lives in the same word as the messages, one CAS both delivers and learns
 * whether to wake: there is no window between "I pushed" and "it is asleep"
 * to lose a wake-up in.
 *
 * Waking is decided on this word alone. A sender that finds a WAITING mark
 * replaces it with "empty" and puts its messages in the hand-off slot
 * instead of on the stack: it is then the one waker of that park, so it
 * makes the owner runnable with plain stores, and the owner takes the
 * message without a CAS of its own. A receive timeout races through the same
 * word: the timer clears the mark by CAS, expecting the park's sequence
 * number, so a timer left over from an earlier receive can never match, and
 * a message and a timeout can never both win.
 *
 * The owner takes the whole stack with one CAS, reverses it (restoring
 * arrival order: each sender's messages stay in the order sent), and appends
 * it to its private queue, which selective receive scans in order, leaving
 * unmatched messages where they are. Priority messages (EEP 76) are queued
 * apart, in a second private queue (priority.h) that every receive scans
 * first: so a receive's place in the ordinary queue, and the marker
 * kr_call scans after, are never disturbed by one arriving.
 */
#ifndef KRX_MAILBOX_H
#define KRX_MAILBOX_H

#include <atomic_ops.h>
#include <stdbool.h>

#include "heap.h"
#include "krill.h"
#include "mi.h"

/*
 * What a message is (hb.kind). Signals travel through the mailbox like
 * messages, so that everything one process sends another arrives in the
 * order sent, and the owner acts on each as it takes it in (signal.c):
 * some become messages it can receive (a trapped exit, a DOWN, a reply),
 * the others change its links or monitors, or end it.
 */
enum krx_msg_kind {
	KRX_MSG_USER = 0,
	KRX_SIG_EXIT,      /* kr_exit_sig: payload kr_exit_msg */
	KRX_SIG_EXIT_LINK, /* a linked process ended: payload kr_exit_msg */
	KRX_SIG_LINK,      /* the sender links to us */
	KRX_SIG_UNLINK,
	KRX_SIG_MONITOR,   /* the sender monitors us: pub.ref */
	KRX_SIG_DEMONITOR, /* ... no longer: pub.ref */
	KRX_SIG_DOWN,      /* a process we monitor ended: payload kr_down_msg */
	KRX_SIG_REPLY,     /* a kr_call reply: pub.ref */
	KRX_MSG_CALL,      /* a kr_call request: a message like any other for the
	                    * receiver, but its receipt is recorded (call.c) */
	KRX_SIG_CALL_DOWN, /* the server of our call ended first: payload kr_down_msg */
	KRX_SIG_FD,        /* kr_fd_give: the receiver owns the descriptor (payload int) */
	KRX_SIG_FD_READY,  /* kr_fd_notify's answer: payload kr_fd_msg, tag KR_TAG_FD */
	KRX_SIG_ASK,       /* what are your links or monitors? (ask.c): pub.ref, payload
	                    * krx_ask_req; answered with a KRX_SIG_REPLY */
	KRX_SIG_OVERFLOW,  /* a message passed the owner's max_mailbox (policy kill):
	                    * ends it with KR_EXIT_MAILBOX_LIMIT, untrappable (send.c) */
	KRX_SIG_ALIAS_MSG  /* kr_send_priority: a user message sent to the alias pub.ref,
	                    * a priority message if the alias is active (priority.c) */
};

typedef struct krx_msg {
	krx_hblk hb;          /* first: a message is a heap block once received */
	struct krx_msg *next; /* incoming stack, then private queue */
	kr_msg pub;
} krx_msg;

typedef struct krx_mailbox {
	AO_t in;              /* (serial << 48) | newest / WAITING mark / CLOSED */
	AO_t handoff;         /* krx_msg *: messages given to a waking owner, newest first */
	AO_t stacked;         /* messages on the incoming stack (for kr_info) */
	AO_t queued;          /* in the private queue now (owner) */
	krx_msg *head, *tail; /* private queue: the owner's alone */
} krx_mailbox;

#define KRX_MB_SERIAL_SHIFT 48
#define KRX_MB_PTR_MASK (((AO_t)1 << KRX_MB_SERIAL_SHIFT) - 1)
/* Messages are 16-byte aligned: a low part with none of its four low bits
 * set, and not 0, is a message; the others are marks (mailbox.c). */
#define KRX_MB_IS_MSG(low) ((low) != 0 && ((low) & 15) == 0)

struct krx_msg_cache;

/* Are messages on the incoming stack? Relaxed: a look, for the owner or a
 * sender choosing a path; the CASes on the word decide. */
static inline bool krx_mailbox_pushed(krx_mailbox *mb)
{
	return KRX_MB_IS_MSG(AO_load(&mb->in) & KRX_MB_PTR_MASK);
}

/* A new incarnation: empty, open, tagged with its serial. */
void krx_mailbox_open(krx_mailbox *mb, uint32_t serial);
/* Close: after this no message can land. Every message still queued is
 * passed, oldest first, to late(m, ctx) if it is a signal (to honour link
 * and monitor requests that came before the end) and then freed
 * (owner exit; c: the caller's cache or NULL). late may be NULL. */
void krx_mailbox_close(krx_mailbox *mb, uint32_t serial, struct krx_msg_cache *c,
                       void (*late)(krx_msg *m, void *ctx), void *ctx);

enum krx_push { KRX_PUSH_DEAD, KRX_PUSH_OK, KRX_PUSH_WAKE };
/* Deliver k messages linked newest to oldest (newest->next ... oldest) to
 * the incarnation `serial`, as if pushed oldest first. WAKE: the owner was
 * waiting, the messages are in its hand-off slot, and the caller is its one
 * waker (krx_task_wake_won). */
enum krx_push krx_mailbox_push(krx_mailbox *mb, uint32_t serial, krx_msg *newest,
                               krx_msg *oldest, unsigned k);

/* Deliver a user message to an owner parked on the calling thread's
 * scheduler with its commit deferred (krx_sched_deferred): straight into
 * its private queue. False, having done nothing, when others have pushed
 * messages meanwhile (they must be taken in first, and only the owner may:
 * they may be signals). The caller then wakes it. */
static inline bool krx_mailbox_deliver_parked(krx_mailbox *mb, krx_msg *m)
{
	/* Relaxed: the owner is parked and only this thread may wake it; a
	 * push that lands after this look finds it woken or makes its commit
	 * fail, and the owner takes it in after m either way. */
	if (krx_mailbox_pushed(mb) || AO_load(&mb->handoff))
		return false;
	m->next = NULL;
	if (mb->tail)
		mb->tail->next = m;
	else
		mb->head = m;
	mb->tail = m;
	AO_store(&mb->queued, AO_load(&mb->queued) + 1);
	return true;
}

/* Owner: is there anything to take in (a hand-off, or messages pushed)?
 * Relaxed: a look; krx_mailbox_take's acquire is what takes them. */
static inline bool krx_mailbox_has_new(krx_mailbox *mb)
{
	return AO_load(&mb->handoff) || krx_mailbox_pushed(mb);
}

/* Owner, its private queue empty: the one message in the hand-off slot, if
 * the slot holds exactly one, a user message or a request, and nothing was
 * pushed after it; else NULL. It is the oldest message the owner has, so a
 * receive that matches it may take it from the slot (krx_mailbox_clear_handoff)
 * without queueing it: what a woken receiver does most. */
static inline krx_msg *krx_mailbox_handed_one(krx_mailbox *mb)
{
	/* Relaxed: the slot was filled before the wake-up that queued us,
	 * which published it; the look at `in` is a hint (a push after it
	 * lands behind this message either way). */
	krx_msg *m = (krx_msg *)AO_load(&mb->handoff);
	if (!m || m->next || (m->hb.kind != KRX_MSG_USER && m->hb.kind != KRX_MSG_CALL) ||
	    krx_mailbox_pushed(mb))
		return NULL;
	return m;
}
static inline void krx_mailbox_clear_handoff(krx_mailbox *mb)
{
	AO_store(&mb->handoff, 0); /* the owner's: relaxed */
}

/* Owner: move what was handed off and everything pushed into the private
 * queue, acting on signals as they come (signal.c). Returns the first
 * message queued, or NULL. */
krx_msg *krx_mailbox_take(krx_mailbox *mb);

/* Owner: unlink m, found in the private queue behind prev (NULL: m is the
 * head), from the queue. */
void krx_mailbox_remove(krx_mailbox *mb, krx_msg *prev, krx_msg *m);

/* Is the owner parked in a receive, waiting? (A hint: it may change.) */
bool krx_mailbox_waiting(krx_mailbox *mb);

/* Messages not yet received (a racy figure for kr_info and flow control). */
size_t krx_mailbox_len(krx_mailbox *mb);

/* The receive timeout of the park whose waiting state word is `expect`:
 * true if it cleared that park's WAITING mark, and so owns the wake-up. */
bool krx_mailbox_timeout(krx_mailbox *mb, AO_t expect);

/* What a receive looks for. KRX_MATCH_REF: a message carrying ref (kr_call's
 * answer: its reply, or the DOWN of a server that ended). */
enum krx_match_kind { KRX_MATCH_ANY, KRX_MATCH_TAG, KRX_MATCH_PRED, KRX_MATCH_NONE, KRX_MATCH_REF };
typedef struct krx_matcher {
	int kind;
	uint64_t tag;
	kr_ref ref;
	kr_match_fn *pred;
	void *ctx;
} krx_matcher;

/* The receive family's engine, for vm/ (kr_call, kr_sleep): scan from
 * after `after` (a message that stays queued; NULL: the head). */
int krx_receive_after(kr_msg **out, const krx_matcher *mt, long timeout_ms, krx_msg *after);

#endif
