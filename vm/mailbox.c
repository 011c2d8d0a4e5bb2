/*
 * mailbox.c - mailboxes (see mailbox.h) and the receive family.
 */
#include "mailbox.h"

#include <stdint.h>
#include <string.h>

#include "futex.h"
#include "mi.h"
#include "proc.h"

#define PTR_MASK (((AO_t)1 << KRX_MB_SERIAL_SHIFT) - 1)
#define MB_WAITING ((AO_t)1)
#define MB_CLOSED ((AO_t)2)
#define SERIAL_OF(w) ((uint32_t)((w) >> KRX_MB_SERIAL_SHIFT))
#define WORD(serial, p) (((AO_t)((serial) & 0xffffu) << KRX_MB_SERIAL_SHIFT) | (AO_t)(p))

void krx_mailbox_open(krx_mailbox *mb, uint32_t serial)
{
	mb->head = mb->tail = NULL;
	AO_store(&mb->sent, 0);
	AO_store(&mb->taken, 0);
	/* Release: a sender whose CAS sees this serial sees the rest reset. */
	AO_store_release(&mb->in, WORD(serial, 0));
}

void krx_msg_destroy_block(krx_hblk *b)
{
	krx_msg_destroy((krx_msg *)b);
}

void krx_msg_destroy(krx_msg *m)
{
	if (m->pub.bin)
		kr_bin_unref(m->pub.bin);
	krx_free_raw(m);
}

enum krx_push krx_mailbox_push_chain(krx_mailbox *mb, uint32_t serial, krx_msg *newest,
                                     krx_msg *oldest, unsigned k)
{
	/* Relaxed: a first guess; the CAS checks it. */
	AO_t w = AO_load(&mb->in);
	for (;;) {
		AO_t top = w & PTR_MASK;
		if (SERIAL_OF(w) != (serial & 0xffffu) || top == MB_CLOSED)
			return KRX_PUSH_DEAD;
		oldest->next = top == MB_WAITING ? NULL : (krx_msg *)top;
		/* Release: the receiver's acquire of this word sees the messages.
		 * (Full on failure too, via the builtin; either is enough.) */
		AO_t seen = AO_fetch_compare_and_swap_release(&mb->in, w, WORD(serial, newest));
		if (seen == w) {
			/* Relaxed: a figure for kr_info. */
			AO_fetch_and_add(&mb->sent, k);
			return top == MB_WAITING ? KRX_PUSH_WAKE : KRX_PUSH_OK;
		}
		w = seen;
	}
}

bool krx_mailbox_waiting(krx_mailbox *mb)
{
	/* Relaxed: a hint for choosing a path; the push's CAS decides. */
	return (AO_load(&mb->in) & PTR_MASK) == MB_WAITING;
}

enum krx_push krx_mailbox_push(krx_mailbox *mb, uint32_t serial, krx_msg *m)
{
	return krx_mailbox_push_chain(mb, serial, m, m, 1);
}

/* Owner: move everything incoming to the private queue, in arrival order.
 * Returns the first message moved, or NULL. */
static krx_msg *drain(krx_mailbox *mb)
{
	/* Acquire: pairs with the senders' release, so the messages are whole. */
	AO_t w = AO_load_acquire(&mb->in);
	for (;;) {
		AO_t top = w & PTR_MASK;
		if (top == 0 || top == MB_WAITING || top == MB_CLOSED)
			return NULL;
		AO_t seen = AO_fetch_compare_and_swap_acquire(&mb->in, w, w & ~PTR_MASK);
		if (seen == w)
			break;
		w = seen;
	}
	/* Newest first: reverse. */
	krx_msg *m = (krx_msg *)(w & PTR_MASK), *rev = NULL, *last = m;
	while (m) {
		krx_msg *next = m->next;
		m->next = rev;
		rev = m;
		m = next;
	}
	if (mb->tail)
		mb->tail->next = rev;
	else
		mb->head = rev;
	mb->tail = last;
	return rev;
}

void krx_mailbox_close(krx_mailbox *mb, uint32_t serial)
{
	AO_t w = AO_load(&mb->in);
	/* Full: after this no sender's CAS can succeed on this incarnation. */
	while (!AO_compare_and_swap_full(&mb->in, w, WORD(serial, MB_CLOSED)))
		w = AO_load(&mb->in);
	AO_t top = w & PTR_MASK;
	krx_msg *m = top == MB_WAITING || top == MB_CLOSED ? NULL : (krx_msg *)top;
	while (m) {
		krx_msg *next = m->next;
		krx_msg_destroy(m);
		m = next;
	}
	for (m = mb->head; m;) {
		krx_msg *next = m->next;
		krx_msg_destroy(m);
		m = next;
	}
	mb->head = mb->tail = NULL;
}

/* ---- receive ---- */

typedef struct matcher {
	kr_match_fn *pred;
	void *ctx;
	uint64_t tag;
	int kind; /* 0 any, 1 tag, 2 predicate */
} matcher;

static bool matches(const matcher *mt, const krx_msg *m)
{
	switch (mt->kind) {
	case 0: return true;
	case 1: return m->pub.tag == mt->tag;
	default: return mt->pred(&m->pub, mt->ctx) != 0;
	}
}

/* The park commit: announce WAITING unless messages came in meanwhile. */
static bool announce_waiting(krx_task *t, void *arg)
{
	krx_proc *p = krx_proc_of(t);
	AO_t empty = WORD(p->serial, 0);
	(void)arg;
	/* Full: a sender's CAS after this sees WAITING and wakes us; one before
	 * it makes this CAS fail, and we do not sleep. */
	return AO_compare_and_swap_full(&p->mbox.in, empty, WORD(p->serial, MB_WAITING));
}

/* Inlined into each kr_recv*: a process resumed after parking returns
 * through these frames, and every extra return there is a return the
 * predictor has not seen (the switch changed stacks under it). */
static inline __attribute__((always_inline)) int receive(kr_msg **out, const matcher *mt,
                                                         long timeout_ms)
{
	krx_proc *p = krx_proc_self();
	if (out)
		*out = NULL;
	if (!p)
		return KR_ENOTPROC;
	if (!out || (mt->kind == 2 && !mt->pred))
		return KR_EINVAL;
	krx_task_charge(1);
	p = krx_proc_self(); /* the charge may have yielded */
	krx_mailbox *mb = &p->mbox;
	uint64_t deadline = 0;
	if (timeout_ms > 0)
		deadline = krx_now_ns() + (uint64_t)timeout_ms * 1000000u;
	krx_msg *prev = NULL, *m = mb->head;
	for (;;) {
		/* Scan what we have not looked at yet. */
		for (; m; prev = m, m = m->next) {
			if (!matches(mt, m))
				continue;
			if (prev)
				prev->next = m->next;
			else
				mb->head = m->next;
			if (mb->tail == m)
				mb->tail = prev;
			m->next = NULL;
			AO_store(&mb->taken, AO_load(&mb->taken) + 1);
			krx_heap_adopt(&p->heap, &m->hb);
			*out = &m->pub;
			return 0;
		}
		if ((m = drain(mb)))
			continue;
		if (timeout_ms == 0)
			return KR_ETIMEDOUT;
		AO_t woke = krx_task_park(KRX_WAIT_RECV, deadline, announce_waiting, NULL);
		p = krx_proc_self();
		mb = &p->mbox;
		if (woke & KRX_ST_TIMEDOUT) {
			/* Take our WAITING mark back, unless a sender has replaced
			 * it with a message (which the next receive will find).
			 * Woken by a sender, there is no mark left to clear. */
			AO_compare_and_swap_full(&mb->in, WORD(p->serial, MB_WAITING),
			                         WORD(p->serial, 0));
			return KR_ETIMEDOUT;
		}
		m = drain(mb);
	}
}

KR_API int kr_recv(kr_msg **out, long timeout_ms)
{
	matcher mt = { .kind = 0 };
	return receive(out, &mt, timeout_ms);
}

KR_API int kr_recv_tag(kr_msg **out, uint64_t tag, long timeout_ms)
{
	matcher mt = { .kind = 1, .tag = tag };
	return receive(out, &mt, timeout_ms);
}

KR_API int kr_recv_match(kr_msg **out, kr_match_fn *pred, void *ctx, long timeout_ms)
{
	matcher mt = { .kind = 2, .pred = pred, .ctx = ctx };
	return receive(out, &mt, timeout_ms);
}

KR_API void kr_msg_free(kr_msg *msg)
{
	krx_proc *p = krx_proc_self();
	if (!msg || !p)
		return;
	krx_msg *m = (krx_msg *)((char *)msg - offsetof(krx_msg, pub));
	if (m->hb.magic != KRX_HBLK_MSG)
		return; /* not on a heap: not received, or freed already */
	kr_bin *bin = m->pub.bin;
	krx_heap_release(&p->heap, &m->hb);
	if (bin)
		kr_bin_unref(bin);
}
