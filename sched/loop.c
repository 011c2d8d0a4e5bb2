/*
 * loop.c - a scheduler thread's loop: find a runnable task, run it
 * (krx_sched_run_task in sched.c: switch to it, and when it switches back,
 * decide what becomes of it), and look again.
 *
 * Where work comes from, in order; find_work is this list, one step each,
 * and a tick is one look for work:
 *  - every 61st tick, the inject queue and the poller, so that neither is
 *    ever starved;
 *  - every other tick while the inject queue's head is overdue (runq.c's
 *    set_due), a batch from it, one task a tick;
 *  - the LIFO slot (within its streak);
 *  - every other pair of ticks, the scheduler's inbox of bound tasks,
 *    taking turns with the ring;
 *  - the scheduler's own ring, after due timers every 16th tick;
 *  - with the ring empty: due timers and the ring again, then the inbox,
 *    the inject queue, the rest of an overdue batch, and the poller;
 *  - spinning for up to SPIN_NS: the inbox, the inject queue and the ring,
 *    and every 16th round stealing, timers and the poller;
 *  - parking (idle.c) until there is work or a timer is due.
 */
#include "sched_int.h"

#include <sched.h>
#include <signal.h>

#include "poll.h"
#include "stat.h"

#define SPIN_NS 50000u      /* how long an idle scheduler looks for work */
#define INJECT_EVERY 61     /* ticks between forced looks at the inject queue */
#define TIMERS_EVERY 16     /* ticks between timer checks while busy */
#define OVERDUE_BATCH 32    /* tasks taken at once from an overdue inject queue */

/* ---- what the steps share ---- */

static uint32_t next_rand(krx_sched *s)
{
	uint32_t x = s->rand; /* xorshift32 */
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return s->rand = x;
}

/* Steal half of a victim's ring, trying every other scheduler from a random
 * starting point. */
static krx_task *steal(krx_sched *s)
{
	unsigned start = next_rand(s) % krx_scheds.n;
	for (unsigned k = 0; k < krx_scheds.n; k++) {
		krx_sched *v = &krx_scheds.scheds[(start + k) % krx_scheds.n];
		krx_task *t = v == s ? NULL : krx_runq_steal(&s->rq, &v->rq);
		if (t) {
			krx_stat_add(&s->fig.steals, 1);
			return t;
		}
	}
	return NULL;
}

/* Publish s's idle time (the pair krx_sched_figures_get reads): the idle
 * time that has ended, and when the current one began (0: busy). */
static void idle_publish(krx_sched *s, uint64_t ended, uint64_t since)
{
	/* Relaxed: only this thread writes the count. */
	AO_t seq = AO_load(&s->fig.seq);
	AO_store(&s->fig.seq, seq + 1);
	/* Write fence: the odd count is visible before the pair changes. */
	AO_nop_write();
	AO_store(&s->fig.idle_ns, ended);
	AO_store(&s->fig.idle_since, since);
	/* Release: the pair is visible before the even count. */
	AO_store_release(&s->fig.seq, seq + 2);
}

/* s found no work (spin's start, with the time it read): idle from now,
 * unless it is idle already (a park that woke with nothing to run). */
static inline void idle_begin(krx_sched *s, uint64_t now)
{
	if (s->idle_from)
		return;
	s->idle_from = now;
	idle_publish(s, s->idle_total, now);
}

/* s found work after being idle. No clock read here: the idle time ends
 * at the last one made while idle (spin's, every 16 rounds, and after a
 * park), so it is short by at most 16 rounds of a spin (~0.6 us) or the
 * looks after a park, and a scheduler that finds work again within its
 * first rounds counts as busy throughout. A read here cost fanin 4-5%:
 * its schedulers go idle and find work again a million times a second. */
static void idle_end(krx_sched *s)
{
	s->idle_total += s->idle_last > s->idle_from ? s->idle_last - s->idle_from : 0;
	s->idle_from = 0;
	idle_publish(s, s->idle_total, 0);
}

/* A timer is due: win the wake-up of its park, or find it gone. */
static bool timer_expired(krx_task *t, AO_t expect)
{
	AO_t won = (expect & ~(AO_t)KRX_ST_STATUS) | KRX_RUNNABLE | KRX_ST_TIMEDOUT;
	if (krx_st_status(expect) == KRX_WAIT_RECV) {
		/* Relaxed: a stale timer is told by the state word; the hook's
		 * CAS on the mailbox is what decides. */
		if (AO_load(&t->state) != expect || !krx_scheds.cfg.hooks.recv_timeout(t, expect))
			return false;
		AO_store(&t->state, won);
	} else if (!AO_compare_and_swap_full(&t->state, expect, won)) {
		/* Full: against the helper thread's CAS on the same word. */
		return false;
	}
	krx_task_ready(t);
	return true;
}

/* Fire the due timers: the receive timeouts and sleeps of s->timers, whose
 * tasks are queued here behind the rest (krx_task_ready from the loop: the
 * ring's tail, or the inbox if bound), and vm/'s message timers. */
static void fire_timers(krx_sched *s)
{
	/* Relaxed: vm/ writes it under its own lock, which the hook takes; a
	 * thread that lowers it from elsewhere kicks us if we park, and a look
	 * that misses its store is made again at the next tick. */
	uint64_t vm_next = AO_load(&s->vm.timer_next);
	if (!s->timers.n && vm_next == UINT64_MAX)
		return;
	uint64_t now = krx_now_ns();
	if (s->timers.n)
		krx_timers_fire(&s->timers, now, timer_expired);
	if (vm_next <= now)
		krx_scheds.cfg.hooks.timers_due(s, now);
}

/* The next of the tasks taken from an overdue inject queue, or NULL. */
static inline krx_task *take_overdue(krx_sched *s)
{
	krx_task *t = s->overdue;
	if (t)
		s->overdue = t->next;
	return t;
}

/* ---- the steps, in the order find_work takes them ---- */

/* Every 61st tick, before anything local: the inject queue and the poller,
 * so that neither is ever starved by a scheduler that always has work of
 * its own. Ready descriptors are not starved by a VM that never idles
 * either: their tasks join the run queue. */
static krx_task *inject_and_poller(krx_sched *s)
{
	if (s->tick % INJECT_EVERY != 0)
		return NULL;
	krx_poll_now(s);
	return krx_injectq_pop(&krx_scheds.inject, &s->rq, 16);
}

/* Every other tick (but the 61st, which has just looked at the inject
 * queue), before anything local, while the queue's head is overdue. Tasks
 * spilled from full rings wait there while later wake-ups fill the rings
 * again ahead of them: while the oldest is overdue, serve the queue every
 * other tick, taking a batch at a time (one lock for many). The clock is
 * read every 16th tick only. */
static krx_task *overdue_batch(krx_sched *s)
{
	if (s->tick % INJECT_EVERY == 0 || !(s->tick & 1))
		return NULL;
	if (!s->overdue && (s->tick & 15) == 1 && krx_injectq_overdue(&krx_scheds.inject))
		s->overdue = krx_injectq_take(&krx_scheds.inject, OVERDUE_BATCH);
	return take_overdue(s);
}

/* The task the last one woke runs next (within its streak, runq.h), ahead
 * of the inbox and the ring: a ping-pong stays on this core, in cache. */
static krx_task *lifo_slot(krx_sched *s)
{
	return krx_runq_get_lifo(&s->rq);
}

/* Every other pair of ticks, the inbox, ahead of the ring; on the others,
 * the ring goes first. The inbox and the ring take turns: a bound task that
 * yields goes to the inbox, and must neither keep the ring from running nor
 * be kept from running by it. */
static krx_task *inbox_turn(krx_sched *s)
{
	if (!(s->tick & 2) || krx_inbox_empty(&s->inbox))
		return NULL;
	return krx_inbox_pop(&s->inbox);
}

/* The ring. Due timers go first every 16th tick, so that a scheduler whose
 * ring never empties still fires them; not on every tick, as a look reads
 * the clock while any timer is armed. */
static krx_task *ring(krx_sched *s)
{
	if (s->tick % TIMERS_EVERY == 0)
		fire_timers(s);
	return krx_runq_get(&s->rq);
}

/* The ring is empty: due timers, whose tasks may fill it, and the ring
 * again. */
static krx_task *timers_then_ring(krx_sched *s)
{
	fire_timers(s);
	return krx_runq_get(&s->rq);
}

/* The ring is still empty: the inbox, whatever the tick, then the inject
 * queue, up to a quarter of a ring at once (one lock for many). */
static krx_task *inbox_or_inject(krx_sched *s)
{
	krx_task *t = krx_inbox_empty(&s->inbox) ? NULL : krx_inbox_pop(&s->inbox);
	if (!t)
		t = krx_injectq_pop(&krx_scheds.inject, &s->rq, KRX_RUNQ_SIZE / 4);
	return t;
}

/* The last look before spinning: the poller, without waiting (the tasks it
 * wakes are queued here). */
static krx_task *poller(krx_sched *s)
{
	if (krx_poll_now(s))
		return krx_runq_get(&s->rq);
	return NULL;
}

/* Nothing here. Spin for a while before sleeping: stealing, if not
 * too many schedulers already do, and in any case watching our own
 * inbox and the inject queue, which cost no one else anything. A
 * process bound here, or woken from outside, is then picked up in
 * well under a microsecond instead of after a futex wake-up. */
static krx_task *spin(krx_sched *s)
{
	krx_task *t;
	krx_sched_start_spinning(s);
	uint64_t now = krx_now_ns();
	idle_begin(s, now);
	s->idle_last = now;
	uint64_t until = now + SPIN_NS;
	for (unsigned round = 0; !AO_load(&krx_scheds.stopping); round++) {
		/* Found: krx_sched_main stops our spinning before it runs t. */
		if ((t = inbox_or_inject(s)) || (t = krx_runq_get(&s->rq)))
			return t;
		/* Stealing and timers cost more: every 16th round. A round
		 * is otherwise a few loads and one pause (~40 ns on these
		 * CPUs), so work arriving for us is seen within ~0.05 us. One
		 * pause, not two or none: a ping-pong across schedulers took
		 * 320 ns at the median with one, 340-350 with two or none
		 * (krbench pingpong --cross, seven runs of each alternated;
		 * without a pause the spinning core's loads slow the very
		 * transfer it waits for). */
		if ((round & 15) == 15) {
			if (s->spinning && (t = steal(s)))
				return t;
			fire_timers(s);
			krx_poll_now(s);
			if ((s->idle_last = krx_now_ns()) > until)
				break;
			/* Let a thread that waits for this CPU have it: with more
			 * runnable threads than CPUs (two VMs on one machine, a
			 * distributed ping-pong between them), the spin otherwise
			 * holds the CPU the woken thread needs for the rest of
			 * SPIN_NS, and a round trip took 125 us instead of 30. With
			 * the CPU to ourselves this returns at once. */
			if ((round & 255) == 255)
				sched_yield();
		}
		krx_cpu_relax();
	}
	krx_sched_stop_spinning(s, false);
	return NULL;
}

/* Spun in vain: sleep (idle.c) until there is work or the next timer is
 * due, and fire what fell due meanwhile. The loop then looks again. */
static void park_until_woken(krx_sched *s)
{
	if (AO_load(&krx_scheds.stopping))
		return;
	krx_sched_park(s);
	s->idle_last = krx_now_ns(); /* the idle time's end so far (idle_end) */
	fire_timers(s);
}

/* ---- the loop ---- */

static krx_task *find_work(krx_sched *s)
{
	krx_task *t;
	s->tick++;
	if ((t = inject_and_poller(s)))
		return t;
	if ((t = overdue_batch(s)))
		return t;
	if ((t = lifo_slot(s)))
		return t;
	if ((t = inbox_turn(s)))
		return t;
	if ((t = ring(s)))
		return t;
	if ((t = timers_then_ring(s)))
		return t;
	if ((t = inbox_or_inject(s)))
		return t;
	if ((t = take_overdue(s)))
		return t;
	if ((t = poller(s)))
		return t;
	if ((t = spin(s)))
		return t;
	park_until_woken(s);
	return NULL;
}

/* This thread becomes scheduler s. */
static void thread_start(krx_sched *s)
{
	struct krx_tls *tls = krx_tls();
	tls->sched = s;
	tls->reds = KRX_REDUCTIONS;
	krx_ctx_init_thread(&s->ctx);
	/* A write to a peer that has gone fails with EPIPE instead of killing
	 * the program (the signal stays pending on this thread, blocked). */
	sigset_t sigpipe;
	sigemptyset(&sigpipe);
	sigaddset(&sigpipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &sigpipe, NULL);
	if (!krx_fault_thread_start(s))
		krx_log(KR_LOG_WARNING, "krill: scheduler %u has no signal stack: a fault in a "
		        "process running on it will end the program", s->id);
	if (krx_scheds.cfg.pin) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(s->id % CPU_SETSIZE, &set);
		pthread_setaffinity_np(pthread_self(), sizeof set, &set);
	}
}

/* The VM stops: what this scheduler holds goes back. */
static void thread_stop(krx_sched *s)
{
	if (s->vm.pending)
		krx_scheds.cfg.hooks.flush(s);
	krx_stack_cache_flush(&krx_scheds.pool, &s->stacks);
	krx_fault_thread_stop(s);
	krx_tls()->sched = NULL;
}

void *krx_sched_main(void *arg)
{
	krx_sched *s = arg;
	thread_start(s);
	/* Relaxed: stopping only needs to be seen eventually; the join that
	 * follows orders everything else. */
	while (!AO_load(&krx_scheds.stopping)) {
		krx_task *t = find_work(s);
		if (!t)
			continue;
		if (s->idle_from)
			idle_end(s);
		/* Woken as a spinner, it may have found work without spinning:
		 * it must stop counting as one, or no one else is ever woken. */
		krx_sched_stop_spinning(s, true);
		krx_sched_run_task(s, t);
	}
	thread_stop(s);
	return NULL;
}
