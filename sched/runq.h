/*
 * runq.h - a scheduler's run queue, and the VM-wide inject queue.
 *
 * The run queue is a bounded ring with a LIFO slot in front of it:
 *  - only the owning scheduler pushes (at tail) and takes (at head, and from
 *    the LIFO slot);
 *  - thieves take half of the ring with one CAS on head;
 *  - the LIFO slot holds the task most recently woken by the running one, so
 *    a message ping-pong stays on one core and in cache. The owner takes it
 *    before the ring, but at most KRX_LIFO_STREAK times in a row, so the
 *    ring is never starved. Only the owner touches the slot, with plain
 *    loads and stores: thieves never take it. That saves two atomic
 *    read-modify-writes per message (a third of a ping-pong's), at a price:
 *    the task in the slot waits for the running task to yield, even while
 *    other schedulers idle. A running task always yields within its
 *    reduction budget if it calls krill or KR_CHECK(); one that does
 *    neither is reported by the watchdog.
 *
 * The inject queue takes tasks from threads that own no ring (host threads,
 * kr_blocking helpers) and the overflow of full rings. It is a mutex-guarded
 * list: it is touched off the hot path, and a count read without the lock
 * tells schedulers whether to look.
 */
#ifndef KRX_RUNQ_H
#define KRX_RUNQ_H

#include <atomic_ops.h>
#include <pthread.h>
#include <stdbool.h>

#include "futex.h"
#include "task.h"

#define KRX_RUNQ_SIZE 256     /* a power of two (1,024 cost skynet 10%) */
#define KRX_LIFO_STREAK 16
/* A task that waited this long in the inject queue is overdue. */
#define KRX_INJECT_DUE_NS 500000u

typedef struct krx_runq {
	AO_t head;  /* next to take; CAS by owner and thieves */
	AO_t tail;  /* next free; written by the owner only */
	krx_task *lifo; /* the owner's alone */
	unsigned streak;
	AO_t ring[KRX_RUNQ_SIZE];
} krx_runq;

typedef struct krx_injectq {
	pthread_mutex_t lock;
	krx_task *head, *tail;
	AO_t n;
	AO_t head_due_us; /* the head's inject_due_us */
} krx_injectq;

void krx_runq_init(krx_runq *q);

/* Owner: put t at the tail. A full ring spills half of itself and the task
 * into inject. */
void krx_runq_put(krx_runq *q, krx_task *t, krx_injectq *inject);
/* Owner: put t in the LIFO slot; returns what was there (or NULL). */
static inline krx_task *krx_runq_swap_lifo(krx_runq *q, krx_task *t)
{
	krx_task *old = q->lifo;
	q->lifo = t;
	return old;
}
/* Owner: the next task, or NULL. */
krx_task *krx_runq_get_ring(krx_runq *q);
/* Owner: the LIFO slot's task if it may run now (within its streak), or NULL. */
static inline krx_task *krx_runq_get_lifo(krx_runq *q)
{
	krx_task *t = q->lifo;
	if (!t || q->streak >= KRX_LIFO_STREAK)
		return NULL;
	q->lifo = NULL;
	q->streak++;
	return t;
}
static inline krx_task *krx_runq_get(krx_runq *q)
{
	/* The LIFO slot first, inline: a ping-pong's every turn comes here. */
	krx_task *t = krx_runq_get_lifo(q);
	return t ? t : krx_runq_get_ring(q);
}
/* Tasks in the ring (not counting the LIFO slot); racy, for heuristics. */
static inline unsigned krx_runq_len(const krx_runq *q)
{
	/* Relaxed: a racy estimate for heuristics (may even be off by a steal). */
	AO_t h = AO_load(&q->head), t = AO_load(&q->tail);
	return t >= h ? (unsigned)(t - h) : 0;
}
/* Thief: move about half of victim's ring into q (whose ring must be empty)
 * and return one more task to run now, or NULL. */
krx_task *krx_runq_steal(krx_runq *q, krx_runq *victim);

/*
 * An inbox: tasks bound to one scheduler, made runnable by any thread. Any
 * thread pushes with one CAS; only the owner pops, taking the whole stack
 * with one CAS when its private list is empty and reversing it (so tasks
 * leave in the order they came). No lock: a bound task woken from another
 * core costs two cache-line transfers, not a mutex's handful.
 */
typedef struct krx_inbox {
	AO_t top;        /* krx_task *: newest pushed */
	krx_task *priv;  /* the owner's, oldest first */
} krx_inbox;

void krx_inbox_push(krx_inbox *q, krx_task *t);
krx_task *krx_inbox_pop(krx_inbox *q);  /* owner only */
static inline bool krx_inbox_empty(krx_inbox *q) /* owner only */
{
	/* Relaxed: a look; a push after it is found by its own wake-up. */
	return !q->priv && !AO_load(&q->top);
}

void krx_injectq_init(krx_injectq *q);
void krx_injectq_push(krx_injectq *q, krx_task *t);
void krx_injectq_push_list(krx_injectq *q, krx_task *first, krx_task *last, unsigned n);
/* Take one task, moving up to max more into the owner's run queue. */
krx_task *krx_injectq_pop(krx_injectq *q, krx_runq *into, unsigned max);
/* Take up to max tasks, oldest first, as a list linked by next; NULL if none. */
krx_task *krx_injectq_take(krx_injectq *q, unsigned max);
/*
 * Has the task at the head waited past its due time? A racy hint: a wrong
 * answer only hastens or delays a few looks at the queue.
 */
static inline bool krx_injectq_overdue(krx_injectq *q)
{
	/* Relaxed: see above. */
	uint32_t due = AO_load(&q->n) ? (uint32_t)AO_load(&q->head_due_us) : 0;
	return due && (int32_t)((uint32_t)(krx_now_ns() / 1000) - due) > 0;
}
static inline bool krx_injectq_empty(krx_injectq *q)
{
	/* Relaxed: a hint; a task pushed just after the look is found by the
	 * push's own wake-up, or at the next look. */
	return AO_load(&q->n) == 0;
}

#endif
