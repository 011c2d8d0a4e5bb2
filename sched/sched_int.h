/*
 * sched_int.h - what the scheduler's own files share, and nothing vm/ may
 * see: included by the .c files of sched/ only (vm/ asks through sched.h).
 *
 * The scheduler is split by job:
 *   sched.c     start and stop, the stack pools, logging, the task-side API
 *               (ready, spawn, wake, yield, exit) and running a task;
 *   loop.c      a scheduler thread's loop: where work comes from, in order;
 *   idle.c      spinning, parking, and waking a parked scheduler;
 *   handoff.c   direct switches and deferred commits (see sched.h);
 *   watchdog.c  the thread that reports a process that does not yield.
 *
 * The helpers below are inline because they are on the message path (a
 * wake-up, a direct switch): a call across files there would cost every
 * message.
 */
#ifndef KRX_SCHED_INT_H
#define KRX_SCHED_INT_H

#include <pthread.h>

#include "sched.h"

/* The schedulers and what they share: set up by krx_sched_start (sched.c)
 * before any scheduler thread runs, freed by krx_sched_free. Hidden, so
 * that every file reaches it directly rather than through the GOT. */
extern struct krx_scheds {
	AO_t running;
	AO_t stopping;
	unsigned n;
	krx_sched *scheds;
	krx_sched_config cfg;
	krx_stack_pool pool;            /* the default stack size */
	/* Pools for other sizes (kr_spawn_opts.stack_size), made on demand;
	 * published with a release store, never freed before stop. */
	pthread_mutex_t pools_lock;
	AO_t other_pools[KRX_STACK_SIZES];
	krx_injectq inject;
	/* Idle schedulers, a stack of indices under idle_lock (idle.c). */
	pthread_mutex_t idle_lock;
	unsigned *idle_list;
	unsigned nidle_list;
	AO_t npidle;
	AO_t nspinning;
	AO_t stacks_in_use;
	AO_t hibernating;       /* tasks parked without a stack (krx_task_hibernate) */
	/* Watchdog (watchdog.c). */
	pthread_t watchdog;
	pthread_mutex_t wd_lock;
	pthread_cond_t wd_cond;
	AO_t wd_backoff;       /* the watchdog looks less often: the VM was idle */
	uint64_t started_ns;   /* when the schedulers started (krx_now_ns) */
} krx_scheds __attribute__((visibility("hidden")));

/* ---- loop.c ---- */

/* A scheduler thread's body (arg: its krx_sched). */
void *krx_sched_main(void *arg);

/* ---- sched.c: running a task ---- */

/* Switch to t on s's thread; when the CPU comes back, finish whichever
 * task switched to the loop (it need not be t). */
void krx_sched_run_task(krx_sched *s, krx_task *t);
/* What becomes of t, which has switched out of s's CPU for s->switched_for
 * (the loop's run of a task, and handoff.c's finish of a hand-over). */
void krx_sched_switched_out(krx_sched *s, krx_task *t);

/* ---- idle.c ---- */

/* Wake words: why a parked scheduler was woken. */
enum { KRX_WOKEN_NO = 0, KRX_WOKEN_PLAIN = 1, KRX_WOKEN_SPINNING = 2 };

/* Wake s, which a waker has taken off the idle list, for why. */
void krx_sched_wake(krx_sched *s, unsigned why);
/* Take s off the idle list if it is there; true if we did. */
bool krx_sched_unidle(krx_sched *s);
/* Wake one parked scheduler, as a spinner, if none is spinning. */
void krx_sched_wake_one(void);
/* s found nothing to run: count it as spinning, if not too many do. */
void krx_sched_start_spinning(krx_sched *s);
/* s stops spinning; found: it found work. */
void krx_sched_stop_spinning(krx_sched *s, bool found);
/* s found nothing to run after spinning: sleep until woken, until its next
 * timer is due, or until descriptors are ready. */
void krx_sched_park(krx_sched *s);

/* ---- watchdog.c ---- */

/* Start the watchdog thread (once the scheduler threads run), and stop and
 * join it (once they are joined). */
void krx_watchdog_start(void);
void krx_watchdog_stop(void);
/* A scheduler leaving sleep: bring a backed-off watchdog back to pace. */
void krx_watchdog_poke(void);

/* ---- inline helpers on the message path ---- */

/*
 * A task woken into the LIFO slot waits there until the running task's run
 * ends, and no other scheduler can take it. While another scheduler idles,
 * the running task is put on a short leash: if it goes on to wait (a
 * ping-pong) its run ends sooner anyway; if it computes (a worker that has
 * just reported to its supervisor), it yields after KRX_LIFO_LEASH
 * reductions, its partner runs, and the idle scheduler can take the worker.
 */
static inline void krx_sched_leash(krx_sched *s)
{
	/* Relaxed: a hint; a scheduler that parks or wakes just after only
	 * makes one run longer or shorter than it might have been. */
	if (!AO_load(&krx_scheds.npidle) && !AO_load(&krx_scheds.nspinning))
		return;
	struct krx_tls *tls = krx_tls();
	if (tls->reds > KRX_LIFO_LEASH) {
		s->reds_forgiven += tls->reds - KRX_LIFO_LEASH;
		tls->reds = KRX_LIFO_LEASH;
	}
}

/* Queue t on s (s's own thread), or on its bound scheduler's inbox. */
static inline void krx_sched_requeue_local(krx_sched *s, krx_task *t, bool lifo)
{
	if (t->bound && t->bound != s) {
		krx_task_ready(t);
		return;
	}
	if (lifo) {
		/* It runs next: start loading its saved registers now. With many
		 * processes their stacks are cold, and that first load is most of
		 * what a switch costs. */
		__builtin_prefetch(t->ctx.sp);
		__builtin_prefetch((char *)t->ctx.sp + 64);
		/* The LIFO slot takes bound tasks too: thieves never see it. */
		t = krx_runq_swap_lifo(&s->rq, t);
		if (krx_scheds.n > 1 && s->current)
			krx_sched_leash(s);
		if (!t)
			return;
	}
	if (t->bound)
		krx_inbox_push(&s->inbox, t); /* never the ring: thieves take from it */
	else
		krx_runq_put(&s->rq, t, &krx_scheds.inject);
}

/* t is about to run on s (whose thread's block is tls): the bookkeeping of
 * a switch-in. */
static inline void krx_sched_switch_in_tls(krx_sched *s, krx_task *t, struct krx_tls *tls)
{
	AO_t st = AO_load(&t->state);
	/* Relaxed: the task is ours now (taken from a queue with acquire);
	 * wakers only CAS waiting words, which this is not. */
	AO_store(&t->state, (st & ~(AO_t)KRX_ST_STATUS) | KRX_RUNNING);
	AO_int_store(&t->last_sched, s->id + 1);
	/* (Its context's exit_to is never used: task_entry does not return.) */
	/* Release: the watchdog that reads current reads the task too. */
	AO_store_release(&s->current, (AO_t)t);
	AO_store(&s->run_seq, AO_load(&s->run_seq) + 1);
	tls->reds = KRX_REDUCTIONS;
	s->switched_for = KRX_SW_YIELD;
}

/* t has left the CPU of s, with reds_left of its budget: count what it
 * spent. */
static inline void krx_sched_account_left(krx_sched *s, krx_task *t, long reds_left)
{
	long spent = KRX_REDUCTIONS - reds_left;
	if (__builtin_expect(s->reds_forgiven != 0, 0)) {
		spent -= s->reds_forgiven;
		s->reds_forgiven = 0;
	}
	AO_store(&t->reductions, AO_load(&t->reductions) + (AO_t)spent);
}

#endif
