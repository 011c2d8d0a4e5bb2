/*
 * mailbox.h - a process's mailbox: an incoming stack that any thread pushes
 * onto, and a private queue that only the owner reads.
 *
 * The incoming side is one atomic word, (serial << 48) | p, where p is the
 * newest message, 0 (empty), WAITING (the owner is parked in a receive) or
 * CLOSED (the owner has exited). Senders push with a CAS that also checks
 * the serial, so a message can never land in a later process that reuses the
 * slot, nor in a closed mailbox. Because "is the owner waiting?" lives in the
 * same word as the messages, one CAS both delivers and learns whether to
 * wake: there is no window between "I pushed" and "it is asleep" to lose a
 * wake-up in, and no fence beyond the CAS itself.
 *
 * The owner takes the whole stack with one CAS, reverses it (restoring
 * arrival order: each sender's messages stay in the order sent), and appends
 * it to its private queue, which selective receive scans in order, leaving
 * unmatched messages where they are.
 */
#ifndef KRX_MAILBOX_H
#define KRX_MAILBOX_H

#include <atomic_ops.h>
#include <stdbool.h>

#include "heap.h"
#include "krill.h"
#include "mi.h"

typedef struct krx_msg {
	krx_hblk hb;          /* first: a message is a heap block once received */
	struct krx_msg *next; /* incoming stack, then private queue */
	kr_msg pub;
} krx_msg;

typedef struct krx_mailbox {
	AO_t in;              /* (serial << 48) | newest / WAITING / CLOSED */
	AO_t sent;            /* pushed, ever (for kr_info) */
	AO_t taken;           /* received or dropped, ever */
	krx_msg *head, *tail; /* private queue: the owner's alone */
} krx_mailbox;

#define KRX_MB_SERIAL_SHIFT 48

/* A new incarnation: empty, open, tagged with its serial. */
void krx_mailbox_open(krx_mailbox *mb, uint32_t serial);
/* Close and free every message (owner exit). */
void krx_mailbox_close(krx_mailbox *mb, uint32_t serial);

enum krx_push { KRX_PUSH_DEAD, KRX_PUSH_OK, KRX_PUSH_WAKE };
/* Deliver m to the incarnation `serial`; WAKE means its owner was waiting
 * and the caller must wake it. */
enum krx_push krx_mailbox_push(krx_mailbox *mb, uint32_t serial, krx_msg *m);
/* The same for k messages linked newest to oldest (newest->next ... oldest),
 * delivered as if pushed oldest first, with one CAS. */
enum krx_push krx_mailbox_push_chain(krx_mailbox *mb, uint32_t serial, krx_msg *newest,
                                     krx_msg *oldest, unsigned k);

/* Is the owner parked in a receive, waiting? (A hint: it may change.) */
bool krx_mailbox_waiting(krx_mailbox *mb);

/* A new message for `len` bytes of payload (allocated, filled by caller). */
static inline krx_msg *krx_msg_new(size_t len)
{
	krx_msg *m = krx_alloc_raw(sizeof *m + len);
	if (!m)
		return NULL;
	m->hb.size = len;
	m->pub.bin = NULL;
	m->pub.len = len;
	m->pub.data = m + 1;
	return m;
}
void krx_msg_destroy(krx_msg *m);
/* The same, for a message block found on a heap (krx_heap_destroy). */
void krx_msg_destroy_block(krx_hblk *b);

#endif
