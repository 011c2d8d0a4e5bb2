/*
 * handoff.c - direct switches and deferred commits: the scheduler's side
 * of a same-scheduler round trip that never enters the loop (what they are
 * and why: sched.h, and docs/internals.md).
 *
 * A task that parks switches straight to the task in the LIFO slot
 * (krx_sched_direct_next), and that task, on resuming, finishes parking the
 * one that left (krx_sched_finish_handover): the loop's work, done on the
 * next task's stack. A receive's commit is put off meanwhile: the task is
 * s->deferred, its park still in s->park_*, until the commit is made
 * (krx_sched_commit_deferred_slow) or its partner wakes it without one
 * (krx_task_wake_deferred). Only s's own thread touches s->handover and
 * s->deferred, and whatever would overwrite s->park_* (the next park, the
 * loop's switch-out) makes the commit first.
 */
#include "sched_int.h"

krx_task *krx_sched_direct_next(krx_sched *s, krx_task *t)
{
	krx_task *next = s->rq.lifo;
	/* Only a task that has run before (it has a stack, and resumes in
	 * krx_task_park or krx_task_yield, which finish the hand-over), only
	 * within the LIFO streak (the scheduler loop must still come round to
	 * the ring, the inject queue and the timers), and never with messages
	 * held for delivery (they go before the sender leaves the CPU). */
	if (!next || !next->stack || s->rq.streak >= KRX_LIFO_STREAK || s->vm.pending ||
	    AO_int_load(&t->guard) == KRX_GUARD_CANARY + 1)
		return NULL;
	s->rq.lifo = NULL;
	s->rq.streak++;
	/* What the loop does around a switch (account(), switch_in() in
	 * sched.c), with one look at the thread's block. */
	struct krx_tls *tls = krx_tls();
	krx_sched_account_left(s, t, tls->reds);
	krx_sched_switch_in_tls(s, next, tls);
	s->switched_for = KRX_SW_PARK;
	s->handover = t;
	return next;
}

void krx_sched_finish_handover(krx_sched *s)
{
	krx_task *prev = s->handover;
	s->handover = NULL;
	/* The common case, a receive, in short: what krx_sched_switched_out
	 * does for it (direct_next has ruled out the rest), but for its commit
	 * and its timer, put off (krx_sched_commit_deferred_slow). No task was
	 * deferred before: prev's park made that one's commit. */
	if (s->park_commit && krx_st_status(s->park_word) == KRX_WAIT_RECV) {
		/* Release: as in krx_sched_switched_out. */
		AO_store_release(&prev->state, s->park_word);
		s->deferred = prev;
		return;
	}
	krx_sched_switched_out(s, prev);
}

void krx_task_wake_deferred(krx_sched *s, krx_task *t)
{
	s->deferred = NULL;
	/* Relaxed: only this thread knows the task waits; queueing publishes. */
	AO_store(&t->state, (AO_load(&t->state) & ~(AO_t)KRX_ST_STATUS) | KRX_RUNNABLE);
	/* krx_sched_requeue_local(s, t, true), but for its prefetch: t ran
	 * here a moment ago and its stack is warm. */
	if (t->bound && t->bound != s) {
		krx_task_ready(t);
		return;
	}
	t = krx_runq_swap_lifo(&s->rq, t);
	if (krx_scheds.n > 1)
		krx_sched_leash(s);
	if (t)
		krx_sched_requeue_local(s, t, false);
	if (krx_runq_len(&s->rq) > 0)
		krx_sched_wake_one();
}

/* Make the commit that s's deferred task put off (see sched.h). A receive's
 * commit fails only before any waker could see the task waiting, so taking
 * the wake-up back needs no CAS. */
void krx_sched_commit_deferred_slow(krx_sched *s)
{
	krx_task *t = s->deferred;
	s->deferred = NULL;
	/* Its timer is armed only now: a task woken before its commit (a
	 * reply from its partner) never needed one. Timers fire only from the
	 * loop, on this thread, so arming before the commit loses no race. */
	if (s->park_deadline)
		(void)krx_timers_add(&s->timers, s->park_deadline, t, AO_load(&t->state));
	if (!s->park_commit(t, s->park_arg)) {
		AO_store(&t->state, (AO_load(&t->state) & ~(AO_t)KRX_ST_STATUS) | KRX_RUNNABLE);
		krx_sched_requeue_local(s, t, true);
	}
}
