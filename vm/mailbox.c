/*
 * mailbox.c - mailboxes (see mailbox.h) and the receive family.
 */
#include "mailbox.h"

#include <stdint.h>
#include <string.h>

#include "futex.h"
#include "host.h"
#include "msg.h"
#include "priority.h"
#include "proc.h"
#include "signal.h"
#include "timeout.h"
#include "vm.h"

#define PTR_MASK KRX_MB_PTR_MASK
#define MB_CLOSED ((AO_t)2)
#define SERIAL_OF(w) ((uint32_t)((w) >> KRX_MB_SERIAL_SHIFT))
#define WORD(serial, low) (((AO_t)((serial) & 0xffffu) << KRX_MB_SERIAL_SHIFT) | (AO_t)(low))
/* Messages are 16-byte aligned, so a low part with any of its four low bits
 * set is a mark. WAITING marks are odd and carry bits 4..47 of the parked
 * task's state word, that is its park sequence number. */
#define IS_WAITING(low) (((low) & 1) != 0)
#define IS_MSG(low) KRX_MB_IS_MSG(low)
#define WAIT_MARK(state) ((((AO_t)(state)) & PTR_MASK & ~(AO_t)15) | 1)

void krx_mailbox_open(krx_mailbox *mb, uint32_t serial)
{
	mb->head = mb->tail = NULL;
	AO_store(&mb->handoff, 0);
	/* Not stacked: a sender of the last incarnation may add its count
	 * after this (its push won, then it was set aside); the close took
	 * that count off already, so left alone the balance comes back to 0
	 * (see krx_mailbox_len). */
	AO_store(&mb->queued, 0);
	/* Release: a sender whose CAS sees this serial sees the rest reset. */
	AO_store_release(&mb->in, WORD(serial, 0));
}

enum krx_push krx_mailbox_push(krx_mailbox *mb, uint32_t serial, krx_msg *newest,
                               krx_msg *oldest, unsigned k)
{
	/* Relaxed: a first guess; the CAS checks it. */
	AO_t w = AO_load(&mb->in);
	for (;;) {
		AO_t low = w & PTR_MASK;
		if (SERIAL_OF(w) != (serial & 0xffffu) || low == MB_CLOSED)
			return KRX_PUSH_DEAD;
		if (IS_WAITING(low)) {
			oldest->next = NULL;
			/* Full: acquire, to see the parked task as its scheduler
			 * published it before setting the mark; a timer racing for
			 * the same mark fails once we win. */
			if (AO_compare_and_swap_full(&mb->in, w, WORD(serial, 0))) {
				/* Relaxed: the owner reads the slot only after the wake-up
				 * queues it, and queueing is a release. */
				AO_store(&mb->handoff, (AO_t)newest);
				return KRX_PUSH_WAKE;
			}
		} else {
			oldest->next = (krx_msg *)low;
			/* Release: the owner's acquire of this word sees the messages. */
			if (AO_compare_and_swap_release(&mb->in, w, WORD(serial, newest))) {
				/* Relaxed: a figure for kr_info and flow control. */
				AO_fetch_and_add(&mb->stacked, k);
				return KRX_PUSH_OK;
			}
		}
		w = AO_load(&mb->in);
	}
}

bool krx_mailbox_waiting(krx_mailbox *mb)
{
	/* Relaxed: a hint for choosing a path; the push's CAS decides. */
	return IS_WAITING(AO_load(&mb->in) & PTR_MASK);
}

size_t krx_mailbox_len(krx_mailbox *mb)
{
	/* Relaxed: each counter is exact, their sum a snapshot (a drain moves
	 * messages from one to the other). A hand-off not yet taken counts as
	 * one. The stacked count is a balance that outlives incarnations:
	 * every push that wins adds its count after its CAS, and the drain or
	 * the close that takes those messages off the stack subtracts it. It
	 * may be seen below zero for a moment (the subtraction landed first,
	 * perhaps in a later incarnation), never above the truth. */
	long stacked = (long)AO_load(&mb->stacked);
	size_t n = (stacked > 0 ? (size_t)stacked : 0) + AO_load(&mb->queued);
	return n + (AO_load(&mb->handoff) != 0);
}

bool krx_mailbox_timeout(krx_mailbox *mb, AO_t expect)
{
	AO_t w = AO_load(&mb->in);
	if ((w & PTR_MASK) != WAIT_MARK(expect))
		return false;
	/* Full: against the senders' CAS on the same mark; one of us wins. */
	return AO_compare_and_swap_full(&mb->in, w, w & ~PTR_MASK);
}

static inline krx_proc *owner_of(krx_mailbox *mb)
{
	return (krx_proc *)((char *)mb - offsetof(krx_proc, mbox));
}

/* Owner: m, taken in as a priority message, joins p's priority queue
 * (which exists: taking it in consulted p's marks). */
static void queue_priority(krx_proc *p, krx_msg *m)
{
	krx_prio *pr = krx_proc_ext_peek(p)->prio;
	m->next = NULL;
	if (pr->qtail)
		pr->qtail->next = m;
	else
		pr->qhead = m;
	pr->qtail = m;
	p->prio_queued = 1;
	/* Relaxed: the owner alone writes; kr_info reads a figure. */
	AO_store(&p->mbox.queued, AO_load(&p->mbox.queued) + 1);
}

/* Owner: the signals among the messages of list (oldest first, linked
 * through next), acted on in order; what remains (user messages, and
 * signals that became messages) is returned in order, *n counting it,
 * but for priority messages, which join the priority queue. */
static __attribute__((noinline, cold)) krx_msg *act_on_signals(krx_mailbox *mb, krx_msg *list,
                                                              AO_t *n)
{
	krx_proc *p = owner_of(mb);
	krx_msg_cache *c = krx_vm_msg_cache(krx_sched_self());
	krx_msg *kept = NULL, **tail = &kept;
	AO_t k = 0;
	while (list) {
		krx_msg *m = list;
		list = m->next;
		enum krx_take t = m->hb.kind == KRX_MSG_USER ? KRX_TAKE_KEEP : krx_signal_take(p, m);
		if (t == KRX_TAKE_DROP) {
			krx_msg_free(c, m);
			continue;
		}
		if (t == KRX_TAKE_PRIORITY) {
			queue_priority(p, m);
			continue;
		}
		*tail = m;
		tail = &m->next;
		k++;
	}
	*tail = NULL;
	*n = k;
	return kept;
}

/* Owner: append a chain given newest first to the private queue, oldest
 * first, acting on signals (*signals set if there were any). Returns the
 * first appended, and counts the chain's messages in *k. */
static inline __attribute__((always_inline)) krx_msg *append(krx_mailbox *mb, krx_msg *m, AO_t *k,
                                                             bool *signals)
{
	krx_msg *rev = NULL, *last = m;
	AO_t n = 0;
	unsigned kinds = 0;
	while (m) {
		krx_msg *next = m->next;
		kinds |= m->hb.kind;
		m->next = rev;
		rev = m;
		m = next;
		n++;
	}
	*k = n;
	if (__builtin_expect(kinds != 0, 0)) {
		*signals = true;
		if (!(rev = act_on_signals(mb, rev, &n)))
			return NULL;
		for (last = rev; last->next;)
			last = last->next;
	}
	if (mb->tail)
		mb->tail->next = rev;
	else
		mb->head = rev;
	mb->tail = last;
	/* Relaxed: the owner alone writes; kr_info reads a figure. */
	AO_store(&mb->queued, AO_load(&mb->queued) + n);
	return rev;
}

krx_msg *krx_mailbox_take(krx_mailbox *mb)
{
	krx_msg *first = NULL;
	AO_t k;
	bool signals = false;
	AO_t h = AO_load(&mb->handoff);
	if (h) {
		AO_store(&mb->handoff, 0);
		first = append(mb, (krx_msg *)h, &k, &signals);
	}
	/* Acquire: pairs with the senders' release, so the messages are whole. */
	AO_t w = AO_load_acquire(&mb->in);
	while (IS_MSG(w & PTR_MASK)) {
		AO_t seen = AO_fetch_compare_and_swap_acquire(&mb->in, w, w & ~PTR_MASK);
		if (seen == w) {
			krx_msg *got = append(mb, (krx_msg *)(w & PTR_MASK), &k, &signals);
			/* Relaxed: a figure, as in push. An atomic subtraction per
			 * drain (a batch), not per message. */
			AO_fetch_and_add(&mb->stacked, (AO_t)0 - k);
			if (!first)
				first = got;
			break;
		}
		w = seen;
	}
	if (signals)
		krx_proc_end_if_told((krx_proc *)((char *)mb - offsetof(krx_proc, mbox)));
	return first;
}

void krx_mailbox_remove(krx_mailbox *mb, krx_msg *prev, krx_msg *m)
{
	if (prev)
		prev->next = m->next;
	else
		mb->head = m->next;
	if (mb->tail == m)
		mb->tail = prev;
	m->next = NULL;
	AO_store(&mb->queued, AO_load(&mb->queued) - 1);
}

static void close_chain(krx_msg *m, krx_msg_cache *c, void (*late)(krx_msg *, void *), void *ctx)
{
	while (m) {
		krx_msg *next = m->next;
		if (late && m->hb.kind != KRX_MSG_USER)
			late(m, ctx);
		krx_msg_free(c, m);
		m = next;
	}
}

/* Reverse a chain given newest first. */
static krx_msg *oldest_first(krx_msg *m)
{
	krx_msg *rev = NULL;
	while (m) {
		krx_msg *next = m->next;
		m->next = rev;
		rev = m;
		m = next;
	}
	return rev;
}

void krx_mailbox_close(krx_mailbox *mb, uint32_t serial, krx_msg_cache *c,
                       void (*late)(krx_msg *m, void *ctx), void *ctx)
{
	AO_t w = AO_load(&mb->in);
	/* Full: after this no sender's CAS can succeed on this incarnation. */
	while (!AO_compare_and_swap_full(&mb->in, w, WORD(serial, MB_CLOSED)))
		w = AO_load(&mb->in);
	/* Oldest first: the queues, the hand-off, then the stack. */
	krx_proc *p = owner_of(mb);
	if (p->prio_queued) {
		krx_prio *pr = krx_proc_ext_peek(p)->prio;
		close_chain(pr->qhead, c, late, ctx);
		pr->qhead = pr->qtail = NULL;
		p->prio_queued = 0;
	}
	close_chain(mb->head, c, late, ctx);
	mb->head = mb->tail = NULL;
	close_chain(oldest_first((krx_msg *)AO_load(&mb->handoff)), c, late, ctx);
	AO_store(&mb->handoff, 0);
	AO_t low = w & PTR_MASK;
	if (IS_MSG(low)) {
		krx_msg *chain = oldest_first((krx_msg *)low);
		AO_t k = 0;
		for (krx_msg *m = chain; m; m = m->next)
			k++;
		/* Relaxed: a figure, balanced against the pushes' adds. */
		AO_fetch_and_add(&mb->stacked, (AO_t)0 - k);
		close_chain(chain, c, late, ctx);
	}
}

/* ---- receive ---- */

static inline __attribute__((always_inline)) bool matches(const krx_matcher *mt, const krx_msg *m)
{
	switch (mt->kind) {
	case KRX_MATCH_ANY: return true;
	case KRX_MATCH_TAG: return m->pub.tag == mt->tag;
	case KRX_MATCH_REF: return m->pub.ref == mt->ref;
	case KRX_MATCH_NONE: return false;
	default: return mt->pred(&m->pub, mt->ctx) != 0;
	}
}

/* The park commit: set our WAITING mark unless messages came in meanwhile. */
static bool announce_waiting(krx_task *t, void *arg)
{
	krx_proc *p = krx_proc_of(t);
	(void)arg;
	/* Relaxed: the waiting word this thread has just stored. */
	AO_t mark = WAIT_MARK(AO_load(&t->state));
	/* Full: a sender's CAS after this sees the mark and wakes us; one
	 * before it makes this CAS fail, and we do not sleep. */
	return AO_compare_and_swap_full(&p->mbox.in, WORD(p->serial, 0), WORD(p->serial, mark));
}

/* kr_hibernate's commit when messages are already here: start again now. */
static bool restart_now(krx_task *t, void *arg)
{
	(void)t;
	(void)arg;
	return false;
}

KR_API int kr_hibernate(kr_fn *fn, void *arg)
{
	krx_proc *p = krx_proc_self();
	if (!p)
		return KR_ENOTPROC;
	if (!fn)
		return KR_EINVAL;
	/* krx_proc_main runs these when the process starts again. */
	p->user_fn = fn;
	p->user_arg = arg;
	p->hibernated = 1;
	/* A message taken in but not received (a selective receive passed it),
	 * or pushed or handed over since: no wait. announce_waiting's CAS
	 * catches a push after this look. */
	krx_mailbox *mb = &p->mbox;
	bool have = krx_proc_queued(p) || krx_mailbox_has_new(mb);
	krx_task_hibernate(have ? restart_now : announce_waiting, NULL);
}

_Noreturn void krx_hibernate_again(krx_proc *p)
{
	/* As kr_hibernate, with nothing queued: a push since the take, or a
	 * hand-off, starts it again at once (announce_waiting's CAS catches a
	 * push after this look). */
	krx_task_hibernate(krx_mailbox_has_new(&p->mbox) ? restart_now : announce_waiting, NULL);
}

/* The first of p's priority messages that matches, unlinked from its
 * priority queue, or NULL. Scanned whole by every pass of a receive: a
 * process keeps few (EEP 76 means them to be rare), and only one that
 * opted in has any. */
static __attribute__((noinline, cold)) krx_msg *take_priority(krx_proc *p, krx_matcher match)
{
	/* By value, as host_receive's: a pointer would make every receive
	 * keep its matcher in memory, and lose the constant folding of its
	 * kind (11 instructions a receive, measured). */
	const krx_matcher *mt = &match;
	krx_prio *pr = krx_proc_ext_peek(p)->prio;
	krx_msg *prev = NULL;
	for (krx_msg *m = pr->qhead; m; prev = m, m = m->next) {
		if (!matches(mt, m))
			continue;
		if (prev)
			prev->next = m->next;
		else
			pr->qhead = m->next;
		if (pr->qtail == m)
			pr->qtail = prev;
		m->next = NULL;
		p->prio_queued = pr->qhead != NULL;
		AO_store(&p->mbox.queued, AO_load(&p->mbox.queued) - 1); /* the owner's: relaxed */
		return m;
	}
	return NULL;
}

/* m, found by a receive, is the process's now. */
static inline __attribute__((always_inline)) int received(krx_proc *p, krx_msg *m, kr_msg **out)
{
	krx_heap_link(&p->heap, &m->hb, KRX_HBLK_MSG);
	if (__builtin_expect(m->hb.kind == KRX_MSG_CALL, 0))
		krx_call_taken(p, m);
	*out = &m->pub;
	return 0;
}

/*
 * A host thread's receive (host.c gives it a mailbox): receive()'s scan
 * on its mailbox, but it waits on its own thread (krx_task_park_host)
 * instead of switching, inside the VM all the while: kr_vm_stop wakes it
 * as a timeout would, and it returns KR_ESTOPPED.
 */
static __attribute__((noinline, cold)) int host_receive(kr_msg **out, krx_matcher match,
                                                       long timeout_ms, krx_msg *after)
{
	/* By value: a process's receive keeps its matcher in registers. */
	const krx_matcher *mt = &match;
	if (!out || (mt->kind == KRX_MATCH_PRED && !mt->pred) || !krx_timeout_valid(timeout_ms))
		return KR_EINVAL;
	int rc;
	krx_proc *p = krx_host_enter(true, &rc);
	if (!p)
		return rc;
	krx_mailbox *mb = &p->mbox;
	uint64_t deadline = timeout_ms > 0 ? krx_now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
	krx_msg *prev = after, *m = after ? after->next : mb->head, *q;
	for (;;) {
		if (p->prio_queued && (q = take_priority(p, *mt))) {
			rc = received(p, q, out);
			goto out;
		}
		for (; m; prev = m, m = m->next) {
			if (!matches(mt, m))
				continue;
			krx_mailbox_remove(mb, prev, m);
			rc = received(p, m, out);
			goto out;
		}
		if (krx_mailbox_has_new(mb) && (m = krx_mailbox_take(mb)))
			continue;
		rc = KR_ETIMEDOUT;
		if (timeout_ms == 0)
			goto out;
		rc = KR_ESTOPPED;
		if (krx_vm_stopping())
			goto out;
		AO_t woke = krx_task_park_host(&p->task, deadline, announce_waiting, NULL);
		if (woke & KRX_ST_TIMEDOUT) {
			rc = krx_vm_stopping() ? KR_ESTOPPED : KR_ETIMEDOUT;
			goto out;
		}
		if (krx_mailbox_has_new(mb))
			(void)krx_mailbox_take(mb);
		m = prev ? prev->next : mb->head;
	}
out:
	krx_vm_leave_host();
	return rc;
}

/* Inlined into each kr_recv*: a process resumed after parking returns
 * through these frames, and every extra return there is a return the
 * predictor has not seen (the switch changed stacks under it). The scan
 * starts after `after` (NULL: at the head), a message the caller knows is
 * in the queue and stays there. */
static inline __attribute__((always_inline)) int receive(kr_msg **out, const krx_matcher *mt,
                                                         long timeout_ms, krx_msg *after)
{
	krx_proc *p = krx_proc_self();
	if (out)
		*out = NULL;
	if (!p)
		return host_receive(out, *mt, timeout_ms, after);
	if (!out || (mt->kind == KRX_MATCH_PRED && !mt->pred) || !krx_timeout_valid(timeout_ms))
		return KR_EINVAL;
	/* p stays the process's structure whatever thread it resumes on. */
	krx_task_charge(1);
	krx_mailbox *mb = &p->mbox;
	uint64_t deadline = 0;
	if (timeout_ms > 0)
		deadline = krx_now_ns() + (uint64_t)timeout_ms * 1000000u;
	krx_msg *prev = after, *m = after ? after->next : mb->head, *q;
	for (;;) {
		/* Priority messages first (EEP 76): rescanned whole at each
		 * pass, as one may have arrived since the last. */
		if (__builtin_expect(p->prio_queued, 0) && (q = take_priority(p, *mt)))
			return received(p, q, out);
		/* Scan what we have not looked at yet. */
		for (; m; prev = m, m = m->next) {
			if (!matches(mt, m))
				continue;
			krx_mailbox_remove(mb, prev, m);
			return received(p, m, out);
		}
		if (krx_mailbox_has_new(mb) && (m = krx_mailbox_take(mb)))
			continue;
		if (timeout_ms == 0)
			return KR_ETIMEDOUT;
		AO_t woke = krx_task_park(KRX_WAIT_RECV, deadline, announce_waiting, NULL);
		/* A timer that won cleared our mark itself. A sender that won
		 * left its messages in the hand-off slot, or, from our own
		 * scheduler, appended them to the queue past where we stopped. */
		if (woke & KRX_ST_TIMEDOUT) {
			krx_proc_end_if_told(p);
			return KR_ETIMEDOUT;
		}
		/* The common wake-up: one message handed over, nothing queued. */
		if (!mb->head && (m = krx_mailbox_handed_one(mb)) && matches(mt, m)) {
			krx_mailbox_clear_handoff(mb);
			return received(p, m, out);
		}
		if (krx_mailbox_has_new(mb))
			(void)krx_mailbox_take(mb);
		m = prev ? prev->next : mb->head;
	}
}

KR_API int kr_recv(kr_msg **out, long timeout_ms)
{
	krx_matcher mt = { .kind = KRX_MATCH_ANY };
	return receive(out, &mt, timeout_ms, NULL);
}

KR_API int kr_recv_tag(kr_msg **out, uint64_t tag, long timeout_ms)
{
	krx_matcher mt = { .kind = KRX_MATCH_TAG, .tag = tag };
	return receive(out, &mt, timeout_ms, NULL);
}

KR_API int kr_recv_match(kr_msg **out, kr_match_fn *pred, void *ctx, long timeout_ms)
{
	krx_matcher mt = { .kind = KRX_MATCH_PRED, .pred = pred, .ctx = ctx };
	return receive(out, &mt, timeout_ms, NULL);
}

int krx_receive_after(kr_msg **out, const krx_matcher *mt, long timeout_ms, krx_msg *after)
{
	return receive(out, mt, timeout_ms, after);
}

/* kr_msg_free of a message that is not a live one of the caller's: crash
 * the caller (Erlang's badarg) rather than free a block that another
 * message, or another process, now uses. */
static _Noreturn __attribute__((cold, noinline)) void msg_not_live(void)
{
	kr_crash("kr_msg_free: not a live message of this process (freed twice?)");
	__builtin_unreachable();
}

/* kr_msg_free from a host thread: a live message of its mailbox's is
 * freed; anything else is ignored (a thread cannot be crashed). */
static __attribute__((noinline, cold)) void host_msg_free(kr_msg *msg)
{
	int err;
	krx_proc *p = krx_host_enter(false, &err);
	if (!p)
		return;
	char *b = (char *)msg - offsetof(krx_msg, pub);
	if (krx_heap_live(&p->heap, b, KRX_HBLK_MSG)) {
		krx_heap_unlink(&p->heap, &((krx_msg *)b)->hb);
		krx_msg_free(NULL, (krx_msg *)b);
	}
	krx_vm_leave_host();
}

KR_API void kr_msg_free(kr_msg *msg)
{
	krx_sched *s = krx_sched_self();
	krx_proc *p = krx_proc_on(s);
	if (!msg)
		return;
	if (!p) {
		host_msg_free(msg);
		return;
	}
	char *b = (char *)msg - offsetof(krx_msg, pub);
	if (__builtin_expect(!krx_heap_live(&p->heap, b, KRX_HBLK_MSG), 0))
		msg_not_live();
	krx_msg *m = (krx_msg *)b;
	krx_heap_unlink(&p->heap, &m->hb);
	krx_msg_free(krx_vm_msg_cache(s), m);
}
