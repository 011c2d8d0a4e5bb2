/*
 * send.c - every way a message enters a mailbox (see send.h): the builder,
 * the delivery and its ordering rules, the public sends, dead letters.
 */
#include "send.h"

#include <string.h>

#include "host.h"
#include "msg.h"
#include "outbox.h"
#include "poll.h"
#include "proc.h"
#include "remote.h"
#include "signal.h"
#include "vm.h"

static AO_t dead_letters;
static size_t max_message;

void krx_send_init(size_t max)
{
	max_message = max;
	AO_store(&dead_letters, 0);
}

void krx_dead_letters(unsigned n)
{
	/* Relaxed: a statistic. As in Erlang, not an error. */
	AO_fetch_and_add(&dead_letters, n);
}

uint64_t krx_dead_letters_count(void)
{
	return AO_load(&dead_letters);
}

/* ---- building ---- */

/* memcpy, with small payloads (the common case) copied inline. */
static inline void copy_payload(void *dst, const void *src, size_t len)
{
	if (len >= 8 && len <= 16) {
		uint64_t a, b;
		memcpy(&a, src, 8);
		memcpy(&b, (const char *)src + len - 8, 8);
		memcpy(dst, &a, 8);
		memcpy((char *)dst + len - 8, &b, 8);
	} else if (len) {
		memcpy(dst, src, len);
	}
}

krx_msg *krx_msg_build(krx_sched *s, unsigned kind, kr_pid from, uint64_t tag, kr_ref ref,
                       const void *data, size_t len, kr_bin *bin)
{
	krx_msg *m = krx_msg_new(krx_vm_msg_cache(s), bin ? 0 : len);
	if (!m)
		return NULL;
	m->hb.kind = kind;
	m->pub.sender = from;
	m->pub.tag = tag;
	m->pub.ref = ref;
	if (bin) {
		m->pub.bin = kr_bin_ref(bin);
		m->pub.data = kr_bin_data(bin);
		m->pub.len = kr_bin_size(bin);
	} else {
		m->pub.len = len;
		copy_payload(m + 1, data, len);
	}
	return m;
}

/* ---- delivering ---- */

/*
 * Sending to a process with a long queue costs the sender more (the BEAM
 * does the same): senders that outrun their receiver yield sooner, the
 * receiver gets the CPU, and the backlog, which the receiver must take in
 * one piece, stays bounded instead of growing until memory runs out.
 */
#define BACKLOG_FREE 1024 /* a queue this long costs senders nothing extra */

static long backlog_penalty(krx_proc *p)
{
	size_t len = krx_mailbox_len(&p->mbox);
	if (len <= BACKLOG_FREE)
		return 0;
	return len / BACKLOG_FREE * 64 > KRX_REDUCTIONS ? KRX_REDUCTIONS : (long)(len / BACKLOG_FREE * 64);
}

static inline bool kind_is_signal(unsigned kind)
{
	return kind != KRX_MSG_USER && kind != KRX_MSG_CALL;
}

/* A message a program sent (ordinary, a request, or a priority message on
 * its way): what the mailbox limit refuses and a dead letter counts. */
static inline bool kind_is_message(unsigned kind)
{
	return !kind_is_signal(kind) || kind == KRX_SIG_ALIAS_MSG;
}

/* May m go straight into the queue of p, parked here with its commit
 * deferred? User messages and requests need nothing done as they are
 * taken in; a reply only if p waits for it now (p is parked on this
 * thread, so its call_ref may be read: the reply then is what taking it
 * in would make of it, a user message). */
static inline __attribute__((always_inline)) bool direct_ok(krx_proc *p, unsigned kind,
                                                            const krx_msg *m)
{
	if (!kind_is_signal(kind))
		return true;
	if (kind != KRX_SIG_REPLY)
		return false;
	krx_proc_ext *x = krx_proc_ext_peek(p);
	return x && x->call_ref && x->call_ref == m->pub.ref;
}

static void dead(krx_sched *s, krx_msg *m)
{
	if (kind_is_message(m->hb.kind))
		krx_dead_letters(1);
	krx_msg_free(krx_vm_msg_cache(s), m);
}

/* After a push that won: raise the flag of an exit signal or an info
 * request (a busy target looks at it when it yields; one parked on a
 * descriptor is interrupted), and wake the target if it waited in a
 * receive. */
static void after_push(krx_proc *p, unsigned kind, enum krx_push r)
{
	if (kind == KRX_SIG_EXIT || kind == KRX_SIG_EXIT_LINK || kind == KRX_SIG_ASK ||
	    kind == KRX_SIG_OVERFLOW) {
		/* Release: the owner that sees the flag (acquire) finds the
		 * signal when it takes its mailbox in. */
		AO_store_release(&p->sigs, 1);
		if (r == KRX_PUSH_OK)
			krx_poll_interrupt(&p->task);
	}
	if (r == KRX_PUSH_WAKE)
		krx_task_wake_won(&p->task);
}

/* The direct path: p is parked right here, its commit not yet made.
 * Straight into its queue, unless others' messages came first (it must
 * take them in itself), or m must be taken in as a signal. kind is m's
 * (given, so that an inlined caller's constant folds). */
static inline __attribute__((always_inline)) bool deliver_direct(krx_sched *s, krx_proc *p,
                                                                 uint32_t serial, unsigned kind,
                                                                 krx_msg *m)
{
	if (p->serial != serial || !direct_ok(p, kind, m) ||
	    !krx_mailbox_deliver_parked(&p->mbox, m))
		return false;
	/* A reply becomes the message taking it in would make of it. A
	 * request stays one: its receive records it (krx_call_taken), so that
	 * the server's end answers it if the server never does. */
	if (kind == KRX_SIG_REPLY)
		m->hb.kind = KRX_MSG_USER;
	krx_task_wake_deferred(s, &p->task);
	if (kind == KRX_MSG_USER || kind == KRX_MSG_CALL)
		krx_task_charge(1);
	return true;
}

/*
 * The mailbox limit (kr_spawn_opts.max_mailbox). Checked by the sender as a
 * message arrives, against krx_mailbox_len: a racy figure (messages other
 * schedulers hold in their outboxes are not in it yet, and a batch that
 * joins an outbox is pushed without a look), so the promise is "at most
 * max_mailbox, plus one outbox batch from each other scheduler, plus
 * signals". Only user messages and requests are refused; signals always
 * get in (an exit signal, a DOWN, a reply must never be lost), and count
 * in the length. Under KR_MAILBOX_KILL the first refusal also sends the
 * owner KRX_SIG_OVERFLOW, once: the sender whose CAS sets KRX_MB_OVER.
 */
static __attribute__((noinline, cold)) bool refused(krx_sched *s, krx_proc *p, uint32_t serial,
                                                     unsigned w)
{
	if (krx_mailbox_len(&p->mbox) < KRX_MB_COUNT(w) && !(w & KRX_MB_OVER))
		return false;
	if (w & (KRX_MB_DROP | KRX_MB_OVER))
		return true;
	/* Relaxed: the flag only elects one sender; the signal itself is
	 * ordered by the mailbox's CAS. */
	if (!AO_int_compare_and_swap(&p->mb_limit, w, w | KRX_MB_OVER))
		return true; /* another sender won, or the slot changed hands */
	krx_msg *m = krx_msg_build(s, KRX_SIG_OVERFLOW, KRX_OWN_END, 0, 0, NULL, 0, NULL);
	if (s && krx_sched_deferred(s) == &p->task)
		krx_sched_commit_deferred(s);
	enum krx_push r = m ? krx_mailbox_push(&p->mbox, serial, m, m, 1) : KRX_PUSH_DEAD;
	if (r != KRX_PUSH_DEAD) {
		after_push(p, KRX_SIG_OVERFLOW, r);
		return true;
	}
	/* That incarnation is gone (the slot is being reused), or memory is
	 * short: let a later refusal try again. */
	if (m)
		krx_msg_free(krx_vm_msg_cache(s), m);
	(void)AO_int_compare_and_swap(&p->mb_limit, w | KRX_MB_OVER, w);
	return true;
}

/* Does p refuse a message of this kind? A process without a limit pays a
 * relaxed load and a predictable branch. */
static inline __attribute__((always_inline)) bool limit_refuses(krx_sched *s, krx_proc *p,
                                                               uint32_t serial, unsigned kind)
{
	/* Relaxed: a setting written before the pid was published. */
	unsigned w = AO_int_load(&p->mb_limit);
	return __builtin_expect(w != 0, 0) && kind_is_message(kind) && refused(s, p, serial, w);
}

/* krx_deliver, once the target's live slot p is found. */
static enum krx_push deliver_to(krx_sched *s, krx_proc *p, uint32_t serial, krx_msg *m)
{
	unsigned kind = m->hb.kind;
	bool user = kind == KRX_MSG_USER;
	if (limit_refuses(s, p, serial, kind)) {
		dead(s, m);
		return KRX_PUSH_DEAD;
	}
	if (s && krx_sched_deferred(s) == &p->task) {
		if (deliver_direct(s, p, serial, kind, m))
			return KRX_PUSH_WAKE;
		krx_sched_commit_deferred(s);
	}
	/* To a busy process that last ran on another core: through the
	 * outbox (one waiting in a receive gets it at once). Relaxed: where
	 * it ran is a hint. Once the outbox holds messages for it, every user
	 * message to it joins them, to keep each sender's order. */
	if (s && user &&
	    krx_outbox_add(s, p, serial, m,
	                   AO_int_load(&p->task.last_sched) != s->id + 1 &&
	                           !krx_mailbox_waiting(&p->mbox))) {
		krx_task_charge(1 + backlog_penalty(p));
		return KRX_PUSH_OK;
	}
	/* Anything else goes out now; what the outbox holds goes first, or
	 * it would overtake messages sent before it. */
	if (s && s->vm.pending && !user)
		krx_outbox_flush(s);
	enum krx_push r = krx_mailbox_push(&p->mbox, serial, m, m, 1);
	if (r == KRX_PUSH_DEAD) {
		dead(s, m);
		return r;
	}
	after_push(p, kind, r);
	if (user || kind == KRX_MSG_CALL)
		/* A woken receiver's queue was empty: no backlog to charge. */
		krx_task_charge(1 + (r == KRX_PUSH_OK ? backlog_penalty(p) : 0));
	return r;
}

enum krx_push krx_deliver(krx_sched *s, kr_pid to, krx_msg *m)
{
	krx_proc *p = krx_proc_live(to);
	if (!p) {
		dead(s, m);
		return KRX_PUSH_DEAD;
	}
	return deliver_to(s, p, (uint32_t)KRX_PID_SERIAL(to), m);
}

void krx_deliver_batch(krx_sched *s, krx_proc *p, uint32_t serial, krx_msg *newest,
                       krx_msg *oldest, unsigned k)
{
	enum krx_push r = krx_mailbox_push(&p->mbox, serial, newest, oldest, k);
	if (r == KRX_PUSH_DEAD) {
		oldest->next = NULL;
		krx_msg_free_chain(krx_vm_msg_cache(s), newest);
		krx_dead_letters(k);
	} else {
		after_push(p, KRX_MSG_USER, r);
	}
}

/* ---- the public sends ---- */

/*
 * The common case of every send from a process, inlined into each: a small
 * payload, a block in its scheduler's cache, a live target (above all its
 * partner, parked right here), within max_message (which a VM may set below
 * a cached block's room). kind: a user message, a request or a reply,
 * a constant at each caller. 0 sent, 1 a dead letter, or -1 having done
 * nothing: the case is not the common one.
 */
static inline __attribute__((always_inline)) int send_cached(krx_sched *s, kr_pid to,
                                                             unsigned kind, uint64_t tag,
                                                             kr_ref ref, const void *data,
                                                             size_t len)
{
	krx_msg_cache *c;
	krx_proc *p;
	if (__builtin_expect(!KRX_MSG_CACHING || !s || len > KRX_MSG_SMALL || len > max_message ||
	                             (len && !data) || !(c = krx_vm_msg_cache(s))->n ||
	                             !(p = krx_proc_live(to)),
	                     0))
		return -1;
	krx_stat_add(&c->sent, 1); /* one add, before m's stores: stat.h */
	krx_msg *m = krx_msg_from_cache(c);
	m->hb.kind = kind;
	m->pub.ref = ref;
	m->pub.sender = (kr_pid)AO_load(&krx_proc_on(s)->live_pid); /* ours: relaxed */
	m->pub.tag = tag;
	m->pub.len = len;
	copy_payload(m + 1, data, len);
	uint32_t serial = (uint32_t)KRX_PID_SERIAL(to);
	/* Relaxed: as in limit_refuses, which deliver_to runs for a limited p. */
	if (krx_sched_deferred(s) == &p->task && !AO_int_load(&p->mb_limit) &&
	    deliver_direct(s, p, serial, kind, m))
		return 0;
	return deliver_to(s, p, serial, m) == KRX_PUSH_DEAD;
}

/* A message sent by the slow path: the scheduler's count, or the host
 * threads' (s NULL). */
static void count_sent(krx_sched *s)
{
	if (s)
		krx_stat_add(&krx_vm_msg_cache(s)->sent, 1);
	else
		krx_vm_count_host_send();
}

/* Send a user message or a request (kind) with tags below tag_end, or
 * a binary's reference: 0, 1 when the target was gone (a dead letter: an
 * error only to kr_call), or a negative code. The common case goes
 * through send_cached; everything else (a host thread, a big payload, a
 * bad argument, a dead pid, an empty cache) through the one builder. */
static inline __attribute__((always_inline)) int send_one(kr_pid to, unsigned kind, uint64_t tag,
                                                          uint64_t tag_end, kr_ref ref,
                                                          const void *data, size_t len,
                                                          kr_bin *bin)
{
	if (tag >= tag_end)
		return KR_EINVAL; /* krill's own tags */
	krx_sched *s = krx_sched_self();
	if (!bin) {
		int rc = send_cached(s, to, kind, tag, ref, data, len);
		if (__builtin_expect(rc >= 0, 1))
			return rc;
	}
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	int err = KR_EINVAL;
	if (len && !data && !bin)
		goto out;
	err = KR_ELIMIT;
	if (len > max_message)
		goto out;
	krx_proc *self = krx_proc_on(s);
	/* Relaxed: our own pid, written before we first ran. A host thread
	 * with a mailbox sends from its pid, so that answers reach it. */
	kr_pid from = self ? (kr_pid)AO_load(&self->live_pid) : krx_host_pid();
	if (krx_pid_remote(to)) {
		count_sent(s);
		err = krx_remote_send(from, to, kind, tag, ref, data, len, bin);
		goto out;
	}
	err = KR_EINVAL;
	if (!krx_pid_valid(to))
		goto out;
	count_sent(s);
	krx_msg *m = krx_msg_build(s, kind, from, tag, ref, data, len, bin);
	err = KR_ENOMEM;
	if (m)
		err = krx_deliver(s, to, m) == KRX_PUSH_DEAD;
out:
	krx_vm_leave(s);
	return err;
}

KR_API int kr_send(kr_pid to, uint64_t tag, const void *data, size_t len)
{
	int rc = send_one(to, KRX_MSG_USER, tag, KR_TAG_SUP, 0, data, len, NULL);
	return rc > 0 ? 0 : rc; /* a dead letter is not an error */
}

int krx_send(kr_pid to, uint64_t tag, const void *data, size_t len)
{
	int rc = send_one(to, KRX_MSG_USER, tag, KR_TAG_RESERVED, 0, data, len, NULL);
	return rc > 0 ? 0 : rc;
}

KR_API int kr_send_bin(kr_pid to, uint64_t tag, kr_bin *bin)
{
	if (!bin)
		return KR_EINVAL;
	int rc = send_one(to, KRX_MSG_USER, tag, KR_TAG_SUP, 0, NULL, 0, bin);
	return rc > 0 ? 0 : rc;
}

int krx_send_cast(kr_pid to, uint64_t tag, const void *data, size_t len)
{
	int rc = send_one(to, KRX_MSG_USER, tag, KR_TAG_SUP, KRX_REF_CAST, data, len, NULL);
	return rc > 0 ? 0 : rc;
}

int krx_send_alias(kr_pid to, kr_ref alias, uint64_t tag, const void *data, size_t len)
{
	int rc = send_one(to, KRX_SIG_ALIAS_MSG, tag, KR_TAG_SUP, alias, data, len, NULL);
	return rc > 0 ? 0 : rc;
}

int krx_send_call(kr_pid to, uint64_t tag, kr_ref ref, const void *data, size_t len)
{
	return send_one(to, KRX_MSG_CALL, tag, UINT64_MAX, ref, data, len, NULL); /* call.c checked tag */
}

/* krx_send_reply's other cases, out of line: a call there would make the
 * fast path keep more registers (six instructions a reply). */
static __attribute__((noinline)) void send_reply_slow(krx_sched *s, kr_pid from, kr_pid to,
                                                      kr_ref ref, uint64_t tag, const void *data,
                                                      size_t len)
{
	count_sent(s);
	(void)krx_signal_send(s, from, to, KRX_SIG_REPLY, ref, tag, data, len);
}

void krx_send_reply(krx_sched *s, kr_pid from, kr_pid to, kr_ref ref, uint64_t tag,
                    const void *data, size_t len)
{
	if (send_cached(s, to, KRX_SIG_REPLY, tag, ref, data, len) < 0)
		send_reply_slow(s, from, to, ref, tag, data, len);
}

int krx_remote_deliver(kr_pid from, kr_pid to, uint64_t tag, const void *data, size_t len,
                       kr_bin *bin)
{
	if (!to) {
		krx_dead_letters(1);
		return 0;
	}
	if (!krx_pid_valid(to))
		return KR_EINVAL;
	if (len > max_message)
		return KR_ELIMIT;
	krx_sched *s = krx_sched_self();
	krx_msg *m = krx_msg_build(s, KRX_MSG_USER, from, tag, 0, data, len, bin);
	if (!m)
		return KR_ENOMEM;
	(void)krx_deliver(s, to, m); /* a dead letter is counted there */
	return 0;
}

int krx_remote_queue(kr_pid to, uint64_t tag, const void *data, size_t len)
{
	return krx_send(to, tag, data, len);
}

void krx_remote_flush(void)
{
	krx_sched *s = krx_sched_self();
	if (s && s->vm.pending)
		krx_outbox_flush(s);
}
