/*
 * runq.c - per-scheduler run queues (see runq.h) and the inject queue.
 *
 * The ring follows the scheme of Go's runtime (runqput/runqget/runqgrab):
 * head and tail are free-running counters; the owner alone writes tail, so a
 * push is a plain slot write published by a release store of tail; takers
 * (owner and thieves) claim slots by CAS on head. A thief reads the slots
 * before its CAS; if the CAS fails it throws what it read away, so it never
 * uses a slot the owner may since have overwritten.
 */
#include "runq.h"

#include <string.h>

#define MASK (KRX_RUNQ_SIZE - 1)

void krx_runq_init(krx_runq *q)
{
	memset(q, 0, sizeof *q);
}

/*
 * When a task in the inject queue has waited too long. Spilled tasks wait
 * there while later wake-ups fill the ring again ahead of them; once the
 * head is overdue the schedulers serve the queue more often (find_work). A
 * task that never ran is never overdue: hurrying new processes would turn a
 * spawning tree (skynet) breadth-first, every process alive at once, and
 * twice as slow.
 */
static void set_due(krx_task *t, uint64_t now)
{
	/* Microseconds, wrapping every 71 minutes; never 0, which is "never". */
	t->inject_due_us = t->stack ? (uint32_t)((now + KRX_INJECT_DUE_NS) / 1000) | 1 : 0;
}

/* The ring is full: move half of it plus t to the inject queue, in order. */
static bool put_slow(krx_runq *q, krx_task *t, AO_t h, krx_injectq *inject)
{
	enum { HALF = KRX_RUNQ_SIZE / 2 };
	krx_task *batch[HALF + 1];
	for (unsigned i = 0; i < HALF; i++)
		batch[i] = (krx_task *)AO_load(&q->ring[(h + i) & MASK]);
	/* Release on success: pairs with no one in particular, but keeps the
	 * slot reads above before the slots can be reused. Failure: thieves
	 * took some; the caller retries the fast path. */
	if (!AO_compare_and_swap_release(&q->head, h, h + HALF))
		return false;
	batch[HALF] = t;
	uint64_t now = krx_now_ns();
	for (unsigned i = 0; i < HALF; i++) {
		batch[i]->next = batch[i + 1];
		set_due(batch[i], now);
	}
	set_due(t, now);
	krx_injectq_push_list(inject, batch[0], batch[HALF], HALF + 1);
	return true;
}

void krx_runq_put(krx_runq *q, krx_task *t, krx_injectq *inject)
{
	for (;;) {
		/* Acquire: see the slots thieves released by advancing head. */
		AO_t h = AO_load_acquire(&q->head);
		AO_t tail = AO_load(&q->tail); /* relaxed: only we write it */
		if (tail - h < KRX_RUNQ_SIZE) {
			AO_store(&q->ring[tail & MASK], (AO_t)t);
			/* Release: a taker that sees the new tail sees the slot and
			 * everything the task's last runner wrote. */
			AO_store_release(&q->tail, tail + 1);
			return;
		}
		if (put_slow(q, t, h, inject))
			return;
	}
}

krx_task *krx_runq_get_ring(krx_runq *q)
{
	krx_task *t;
	q->streak = 0;
	for (;;) {
		AO_t h = AO_load_acquire(&q->head);
		AO_t tail = AO_load(&q->tail); /* relaxed: only we write it */
		if (h == tail)
			break;
		t = (krx_task *)AO_load(&q->ring[h & MASK]);
		/* Acquire-release: claim the slot against thieves. */
		if (AO_compare_and_swap_full(&q->head, h, h + 1))
			return t;
	}
	/* The ring is empty: the LIFO slot, even past the streak. */
	t = q->lifo;
	q->lifo = NULL;
	return t;
}

krx_task *krx_runq_steal(krx_runq *q, krx_runq *victim)
{
	krx_task *grab[KRX_RUNQ_SIZE / 2];
	unsigned n;
	for (;;) {
		/* Acquire both: the slots between them were published by the
		 * victim's release of tail. */
		AO_t h = AO_load_acquire(&victim->head);
		AO_t t = AO_load_acquire(&victim->tail);
		n = t >= h ? (unsigned)(t - h) : 0;
		n -= n / 2;
		if (n == 0)
			return NULL;
		if (n > KRX_RUNQ_SIZE / 2)
			continue; /* inconsistent read: the victim moved on */
		for (unsigned i = 0; i < n; i++)
			grab[i] = (krx_task *)AO_load(&victim->ring[(h + i) & MASK]);
		/* Full: acquire the slots we read, release them to the victim. */
		if (AO_compare_and_swap_full(&victim->head, h, h + n))
			break;
	}
	/* Keep the last one to run now; the rest go to our (empty) ring. */
	AO_t tail = AO_load(&q->tail);
	for (unsigned i = 0; i + 1 < n; i++)
		AO_store(&q->ring[(tail + i) & MASK], (AO_t)grab[i]);
	AO_store_release(&q->tail, tail + n - 1);
	return grab[n - 1];
}

void krx_injectq_init(krx_injectq *q)
{
	memset(q, 0, sizeof *q);
	pthread_mutex_init(&q->lock, NULL);
}

void krx_injectq_push_list(krx_injectq *q, krx_task *first, krx_task *last, unsigned n)
{
	last->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->tail) {
		q->tail->next = first;
	} else {
		q->head = first;
		AO_store(&q->head_due_us, (AO_t)first->inject_due_us); /* relaxed: a hint */
	}
	q->tail = last;
	/* Relaxed: the count is a hint; the lock orders the list itself. */
	AO_store(&q->n, AO_load(&q->n) + n);
	pthread_mutex_unlock(&q->lock);
}

void krx_injectq_push(krx_injectq *q, krx_task *t)
{
	set_due(t, krx_now_ns());
	krx_injectq_push_list(q, t, t, 1);
}

/* The lock is held and n tasks were unlinked from the head. */
static void after_taking(krx_injectq *q, unsigned n)
{
	if (!q->head)
		q->tail = NULL;
	else
		AO_store(&q->head_due_us, (AO_t)q->head->inject_due_us); /* relaxed: a hint */
	/* Relaxed: the count is a hint; the lock orders the list itself. */
	AO_store(&q->n, AO_load(&q->n) - n);
}

krx_task *krx_injectq_pop(krx_injectq *q, krx_runq *into, unsigned max)
{
	if (krx_injectq_empty(q))
		return NULL;
	pthread_mutex_lock(&q->lock);
	krx_task *t = q->head;
	unsigned taken = 0;
	if (t) {
		q->head = t->next;
		taken = 1;
		/* Move a share of the rest, so one look feeds many runs. */
		while (into && q->head && taken <= max &&
		       krx_runq_len(into) < KRX_RUNQ_SIZE / 2) {
			krx_task *u = q->head;
			q->head = u->next;
			AO_t tail = AO_load(&into->tail);
			AO_store(&into->ring[tail & MASK], (AO_t)u);
			AO_store_release(&into->tail, tail + 1);
			taken++;
		}
		after_taking(q, taken);
	}
	pthread_mutex_unlock(&q->lock);
	return t;
}

krx_task *krx_injectq_take(krx_injectq *q, unsigned max)
{
	if (krx_injectq_empty(q) || !max)
		return NULL;
	pthread_mutex_lock(&q->lock);
	krx_task *first = q->head, *last = NULL;
	unsigned taken = 0;
	for (krx_task *t = first; t && taken < max; t = t->next) {
		last = t;
		taken++;
	}
	if (last) {
		q->head = last->next;
		last->next = NULL;
		after_taking(q, taken);
	}
	pthread_mutex_unlock(&q->lock);
	return first;
}

void krx_inbox_push(krx_inbox *q, krx_task *t)
{
	AO_t old = AO_load(&q->top);
	for (;;) {
		t->next = (krx_task *)old;
		/* Release: the owner's acquire sees t->next and the task. */
		AO_t seen = AO_fetch_compare_and_swap_release(&q->top, old, (AO_t)t);
		if (seen == old)
			return;
		old = seen;
	}
}

krx_task *krx_inbox_pop(krx_inbox *q)
{
	if (!q->priv) {
		/* Acquire: pairs with the pushers' release. */
		AO_t top = AO_load_acquire(&q->top);
		while (top) {
			AO_t seen = AO_fetch_compare_and_swap_acquire(&q->top, top, 0);
			if (seen == top)
				break;
			top = seen;
		}
		for (krx_task *t = (krx_task *)top; t;) { /* newest first: reverse */
			krx_task *next = t->next;
			t->next = q->priv;
			q->priv = t;
			t = next;
		}
	}
	krx_task *t = q->priv;
	if (t)
		q->priv = t->next;
	return t;
}
