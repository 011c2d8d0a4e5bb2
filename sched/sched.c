/*
 * sched.c - scheduler threads: the run loop, stealing, parking and waking,
 * reductions, the watchdog, and shutdown.
 *
 * Each scheduler thread loops: take a runnable task, switch to it, and when
 * it switches back (it yielded, parked or finished) decide what becomes of
 * it. Where work comes from, in order: the inject queue and the poller every
 * 61st tick (so neither is ever starved), the inject queue every other tick
 * while its head is overdue (runq.c's set_due), the LIFO slot, the
 * scheduler's inbox of bound tasks every other pair of ticks (taking turns
 * with the ring), due timers, its own run queue, the inbox, the inject
 * queue, the poller, then stealing.
 */
#include "sched_int.h"

#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mi.h"
#include "poll.h"

#define SPIN_NS 50000u      /* how long an idle scheduler looks for work */
#define INJECT_EVERY 61     /* ticks between forced looks at the inject queue */
#define TIMERS_EVERY 16     /* ticks between timer checks while busy */
#define OVERDUE_BATCH 32    /* tasks taken at once from an overdue inject queue */

struct krx_scheds krx_scheds;

static void run_task(krx_sched *s, krx_task *t);

bool krx_sched_running(void)
{
	/* Acquire: pairs with the release in start, so the VM is whole. */
	return AO_load_acquire(&krx_scheds.running) != 0;
}

unsigned krx_sched_count(void)
{
	return krx_scheds.n;
}

krx_stack_pool *krx_sched_pool(void)
{
	return &krx_scheds.pool;
}

int krx_sched_pool_for(size_t size, krx_stack_pool **out)
{
	size_t page = krx_scheds.pool.page;
	size = (size + page - 1) / page * page;
	*out = &krx_scheds.pool;
	if (size == krx_scheds.pool.stack_size)
		return 0;
	for (int i = 0; i < KRX_STACK_SIZES; i++) {
		/* Acquire: pairs with the release below; the pool is whole. */
		krx_stack_pool *p = (krx_stack_pool *)AO_load_acquire(&krx_scheds.other_pools[i]);
		if (p && p->stack_size == size) {
			*out = p;
			return 0;
		}
	}
	int err = KR_ELIMIT; /* every place taken, by other sizes */
	pthread_mutex_lock(&krx_scheds.pools_lock);
	for (int i = 0; i < KRX_STACK_SIZES && err == KR_ELIMIT; i++) {
		krx_stack_pool *p = (krx_stack_pool *)AO_load(&krx_scheds.other_pools[i]);
		if (p && p->stack_size == size) {
			*out = p;
			err = 0;
		} else if (!p) {
			/* Fewer slots per region: these pools are for a few
			 * processes with unusual needs. */
			krx_stack_opts so = { .stack_size = size, .slots_per_region = 256 };
			p = krx_alloc_raw(sizeof *p);
			if (p && krx_stack_pool_init(p, &so) == 0) {
				AO_store_release(&krx_scheds.other_pools[i], (AO_t)p);
				*out = p;
				err = 0;
			} else {
				krx_free_raw(p);
				err = KR_ENOMEM;
			}
		}
	}
	pthread_mutex_unlock(&krx_scheds.pools_lock);
	return err;
}

size_t krx_sched_stacks_in_use(void)
{
	return AO_load(&krx_scheds.stacks_in_use);
}

bool krx_sched_reporting(void)
{
	return !krx_scheds.cfg.no_reports;
}

void krx_sched_log(const char *fmt, ...)
{
	if (krx_scheds.cfg.no_reports)
		return;
	char line[KRX_LOG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (krx_scheds.cfg.log)
		krx_scheds.cfg.log(line, krx_scheds.cfg.log_ctx);
	else
		fprintf(stderr, "%s\n", line);
}

/* ---- finding work ---- */

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
		if (t)
			return t;
	}
	return NULL;
}

static krx_task *inbox_or_inject(krx_sched *s)
{
	krx_task *t = krx_inbox_empty(&s->inbox) ? NULL : krx_inbox_pop(&s->inbox);
	if (!t)
		t = krx_injectq_pop(&krx_scheds.inject, &s->rq, KRX_RUNQ_SIZE / 4);
	return t;
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

static void fire_timers(krx_sched *s)
{
	if (s->timers.n)
		krx_timers_fire(&s->timers, krx_now_ns(), timer_expired);
}

/* The next of the tasks taken from an overdue inject queue, or NULL. */
static inline krx_task *take_overdue(krx_sched *s)
{
	krx_task *t = s->overdue;
	if (t)
		s->overdue = t->next;
	return t;
}

static krx_task *find_work(krx_sched *s)
{
	krx_task *t;
	s->tick++;
	if (s->tick % INJECT_EVERY == 0) {
		/* Ready descriptors are not starved by a VM that never idles
		 * either: their tasks join the run queue. */
		krx_poll_now(s);
		if ((t = krx_injectq_pop(&krx_scheds.inject, &s->rq, 16)))
			return t;
	} else if (s->tick & 1) {
		/* Tasks spilled from full rings wait there while later
		 * wake-ups fill the rings again ahead of them: while the oldest
		 * is overdue, serve the queue every other tick, taking a batch
		 * at a time (one lock for many). The clock is read every 16th
		 * tick only. */
		if (!s->overdue && (s->tick & 15) == 1 && krx_injectq_overdue(&krx_scheds.inject))
			s->overdue = krx_injectq_take(&krx_scheds.inject, OVERDUE_BATCH);
		if ((t = take_overdue(s)))
			return t;
	}
	/* The task the last one woke runs next (within its streak). Then the
	 * inbox and the run queue take turns: a bound task that yields goes
	 * to the inbox, and must neither keep the ring from running nor be
	 * kept from running by it. */
	if ((t = krx_runq_get_lifo(&s->rq)))
		return t;
	if ((s->tick & 2) && !krx_inbox_empty(&s->inbox) && (t = krx_inbox_pop(&s->inbox)))
		return t;
	if (s->tick % TIMERS_EVERY == 0)
		fire_timers(s);
	if ((t = krx_runq_get(&s->rq)))
		return t;
	fire_timers(s);
	if ((t = krx_runq_get(&s->rq)) || (t = inbox_or_inject(s)))
		return t;
	if ((t = take_overdue(s)))
		return t;
	if (krx_poll_now(s) && (t = krx_runq_get(&s->rq)))
		return t;

	/* Nothing here. Spin for a while before sleeping: stealing, if not
	 * too many schedulers already do, and in any case watching our own
	 * inbox and the inject queue, which cost no one else anything. A
	 * process bound here, or woken from outside, is then picked up in
	 * well under a microsecond instead of after a futex wake-up. */
	krx_sched_start_spinning(s);
	uint64_t until = krx_now_ns() + SPIN_NS;
	for (unsigned round = 0; !AO_load(&krx_scheds.stopping); round++) {
		/* Found: sched_main stops our spinning before it runs t. */
		if ((t = inbox_or_inject(s)) || (t = krx_runq_get(&s->rq)))
			return t;
		/* Stealing and timers cost more: every 16th round. A round
		 * is otherwise a few loads and two pauses (a pause is ~40 ns on
		 * these CPUs), so work arriving for us is seen within ~0.1 us. */
		if ((round & 15) == 15) {
			if (s->spinning && (t = steal(s)))
				return t;
			fire_timers(s);
			krx_poll_now(s);
			if (krx_now_ns() > until)
				break;
		}
		krx_cpu_relax();
		krx_cpu_relax();
	}
	krx_sched_stop_spinning(s, false);
	if (AO_load(&krx_scheds.stopping))
		return NULL;
	krx_sched_park(s);
	fire_timers(s);
	return NULL;
}

static void *sched_main(void *arg)
{
	krx_sched *s = arg;
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
		krx_sched_log("krill: scheduler %u has no signal stack: a fault in a process "
		              "running on it will end the program", s->id);
	if (krx_scheds.cfg.pin) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(s->id % CPU_SETSIZE, &set);
		pthread_setaffinity_np(pthread_self(), sizeof set, &set);
	}
	/* Relaxed: stopping only needs to be seen eventually; the join that
	 * follows orders everything else. */
	while (!AO_load(&krx_scheds.stopping)) {
		krx_task *t = find_work(s);
		if (!t)
			continue;
		/* Woken as a spinner, it may have found work without spinning:
		 * it must stop counting as one, or no one else is ever woken. */
		krx_sched_stop_spinning(s, true);
		run_task(s, t);
	}
	if (s->vm_pending)
		krx_scheds.cfg.hooks.flush(s);
	krx_stack_cache_flush(&krx_scheds.pool, &s->stacks);
	krx_fault_thread_stop(s);
	tls->sched = NULL;
	return NULL;
}

/* ---- running a task ---- */

static void task_entry(void *arg)
{
	krx_task *t = arg;
	krx_scheds.cfg.hooks.task_main(t);
	krx_task_exit();
}

/* The scheduler's stack cache serves the default pool only. */
static krx_stack_cache *cache_for(krx_sched *s, krx_task *t)
{
	return t->pool == &krx_scheds.pool ? &s->stacks : NULL;
}

static bool give_stack(krx_sched *s, krx_task *t)
{
	t->stack = krx_stack_get(t->pool, cache_for(s, t));
	if (!t->stack)
		return false;
	/* Relaxed: figures for kr_info and kr_vm_stats. */
	AO_int_store(&t->guard, (unsigned)t->stack->guard + 1);
	AO_fetch_and_add1(&krx_scheds.stacks_in_use);
	krx_ctx_make(&t->ctx, t->stack->lo, (size_t)(t->stack->hi - t->stack->lo), task_entry, t,
	             &s->ctx);
	return true;
}

static void release_stack(krx_sched *s, krx_task *t)
{
	krx_ctx_destroy(&t->ctx);
	krx_stack_put(t->pool, cache_for(s, t), t->stack);
	t->stack = NULL;
	AO_fetch_and_sub1(&krx_scheds.stacks_in_use);
}

/* t is about to run on s (s's own thread). */
static inline void switch_in(krx_sched *s, krx_task *t)
{
	krx_sched_switch_in_tls(s, t, krx_tls());
}

/* t has left the CPU of s: count its reductions. */
static inline void account(krx_sched *s, krx_task *t)
{
	/* This thread is s's: the reductions left are those of t's run. */
	krx_sched_account_left(s, t, krx_tls()->reds);
}

/*
 * t has ended. Its park sequence number stays in the state word: the next
 * task in this structure (the slot's next process) goes on counting from
 * it, so a timer armed by one of t's parks can never match a park of its
 * successor (krx_task_init). Relaxed: t is in no queue and parked nowhere;
 * whoever reuses the structure gets it through the table's release.
 */
static inline void mark_done(krx_task *t)
{
	AO_store(&t->state, (AO_load(&t->state) & ~(AO_t)(KRX_ST_SEQ_ONE - 1)) | KRX_DONE);
}

/* What becomes of t, which has switched out of s's CPU for s->switched_for.
 * Runs on the scheduler's stack, or, after a direct switch, on the stack of
 * the task that runs next (which then waits for this to finish). */
void krx_sched_switched_out(krx_sched *s, krx_task *t)
{
	if (s->vm_pending)
		krx_scheds.cfg.hooks.flush(s);
	if (t->stack && t->stack->guard == KRX_GUARD_CANARY && !krx_stack_intact(t->stack)) {
		char name[64];
		krx_scheds.cfg.hooks.task_name(t, name, sizeof name);
		krx_sched_log("krill: process %s overflowed its stack (canary); memory is corrupt", name);
		abort();
	}
	switch (s->switched_for) {
	case KRX_SW_YIELD:
		krx_sched_requeue_local(s, t, false);
		/* A backlog here while others sleep: wake one to steal (the
		 * LIFO slot's task runs here next; the ring's could go). */
		if (krx_runq_len(&s->rq) + (s->rq.lifo != NULL) > 1)
			krx_sched_wake_one();
		break;
	case KRX_SW_EXIT:
		release_stack(s, t);
		mark_done(t);
		krx_scheds.cfg.hooks.task_exit(t);
		break;
	case KRX_SW_PARK: {
		AO_t word = s->park_word;
		if (s->park_deadline)
			(void)krx_timers_add(&s->timers, s->park_deadline, t, word);
		/* Release: a waker that wins the CAS on this word sees the
		 * task's saved context. */
		AO_store_release(&t->state, word);
		if (s->park_commit && !s->park_commit(t, s->park_arg)) {
			/* Not parking after all. Take the wake-up ourselves, unless
			 * a waker beat us to it (then it queued t). A receive's
			 * commit fails only before any waker could see it waiting,
			 * so it needs no CAS; a blocking job's helper may have run. */
			AO_t back = (word & ~(AO_t)KRX_ST_STATUS) | KRX_RUNNABLE;
			if (krx_st_status(word) == KRX_WAIT_RECV)
				AO_store(&t->state, back);
			else if (!AO_compare_and_swap_full(&t->state, word, back))
				break;
			krx_sched_requeue_local(s, t, true);
		}
		break;
	}
	}
}



static void run_task(krx_sched *s, krx_task *t)
{
	if (!t->stack && !give_stack(s, t)) {
		krx_sched_log("krill: out of stack address space; a process could not start");
		mark_done(t);
		krx_scheds.cfg.hooks.task_exit(t);
		return;
	}
	switch_in(s, t);
	krx_ctx_switch(&s->ctx, &t->ctx);
	/* This thread is still s: the scheduler loop never migrates. The task
	 * that switched back may not be t: t may have handed the CPU on. */
	t = (krx_task *)s->current;
	account(s, t);
	AO_store(&s->current, 0);
	krx_sched_commit_deferred(s);
	krx_sched_switched_out(s, t);
}

/* ---- the task-side API ---- */

void krx_task_init(krx_task *t, unsigned bound, krx_stack_pool *pool)
{
	/* Keep seq across reuse of the structure (stale timers test it). */
	AO_t seq = AO_load(&t->state) & ~(AO_t)(KRX_ST_SEQ_ONE - 1);
	t->stack = NULL;
	t->pool = pool ? pool : &krx_scheds.pool;
	t->next = NULL;
	t->bound = bound && bound <= krx_scheds.n ? &krx_scheds.scheds[bound - 1] : NULL;
	AO_int_store(&t->last_sched, 0);
	AO_store(&t->reductions, 0);
	AO_int_store(&t->guard, 0);
	AO_int_store(&t->io_fd, 0);
	AO_store(&t->state, seq + KRX_ST_SEQ_ONE + KRX_RUNNABLE);
}

void krx_task_ready(krx_task *t)
{
	krx_sched *s = krx_sched_self();
	if (t->bound && t->bound != s) {
		krx_sched *b = t->bound;
		krx_inbox_push(&b->inbox, t);
		/* Full: the inbox push is visible before we look at b's idle
		 * flag (b looks at its inbox after publishing idle). */
		AO_nop_full();
		if (AO_load(&b->idle) && krx_sched_unidle(b))
			krx_sched_wake(b, KRX_WOKEN_PLAIN);
		return;
	}
	if (s) {
		/* From a running task: its partner, so the LIFO slot. From the
		 * scheduler loop (timers): the tail, and the loop looks there
		 * next. Either way, wake a helper only for a backlog beyond what
		 * this scheduler is about to run itself. */
		bool from_task = s->current != 0;
		krx_sched_requeue_local(s, t, from_task);
		if (krx_runq_len(&s->rq) > (from_task ? 0u : 1u))
			krx_sched_wake_one();
		return;
	}
	krx_injectq_push(&krx_scheds.inject, t);
	AO_nop_full(); /* see the top of idle.c */
	krx_sched_wake_one();
	/* No scheduler may be idle yet spinning elsewhere; make sure one that
	 * is parked hears of host work even if a spinner is about to give up. */
	if (AO_load(&krx_scheds.npidle) == krx_scheds.n)
		krx_sched_wake_one();
}

void krx_task_spawn(krx_task *t)
{
	krx_sched *s = krx_sched_self();
	if (s && !t->bound) {
		krx_runq_put(&s->rq, t, &krx_scheds.inject);
		if (krx_runq_len(&s->rq) > 1)
			krx_sched_wake_one();
		return;
	}
	krx_task_ready(t);
}

bool krx_task_wake(krx_task *t, unsigned status)
{
	for (;;) {
		/* Acquire: the waiting word was published with release. */
		AO_t st = AO_load_acquire(&t->state);
		if (krx_st_status(st) != status)
			return false;
		AO_t won = (st & ~(AO_t)KRX_ST_STATUS) | KRX_RUNNABLE;
		/* Full: exactly one of the racing wakers wins this word. */
		if (AO_compare_and_swap_full(&t->state, st, won)) {
			krx_task_ready(t);
			return true;
		}
	}
}

void krx_task_wake_won(krx_task *t)
{
	/* Relaxed: the task is ours to queue; queueing publishes it. */
	AO_store(&t->state, (AO_load(&t->state) & ~(AO_t)KRX_ST_STATUS) | KRX_RUNNABLE);
	krx_sched *s = krx_sched_self();
	if (!s || !s->current || (t->bound && t->bound != s)) {
		krx_task_ready(t);
		return;
	}
	/* The common case, a running task waking its partner: what
	 * krx_task_ready would do, without its questions. */
	krx_sched_requeue_local(s, t, true);
	if (krx_runq_len(&s->rq) > 0)
		krx_sched_wake_one();
}

_Noreturn void krx_task_exit(void)
{
	krx_sched *s = krx_sched_self();
	krx_task *t = s ? (krx_task *)s->current : NULL;
	if (!t) {
		krx_sched_log("krill: krx_task_exit called outside a process");
		abort();
	}
	s->switched_for = KRX_SW_EXIT;
	/* The last switch off this stack: ASan frees the task's fake stack. */
	krx_ctx_exit(&t->ctx, &s->ctx);
}

void krx_task_yield(void)
{
	krx_sched *s = krx_sched_self();
	krx_task *t = s ? (krx_task *)s->current : NULL;
	if (!t)
		return;
	s->switched_for = KRX_SW_YIELD;
	krx_ctx_switch(&t->ctx, &s->ctx);
	krx_task_resumed();
	if (krx_scheds.cfg.hooks.yielded)
		krx_scheds.cfg.hooks.yielded(t);
}

KR_API int kr__budget_spent(void)
{
	struct krx_tls *tls = krx_tls();
	if (!tls->sched || !tls->sched->current) {
		tls->reds = KRX_REDUCTIONS; /* a host thread: nothing to yield */
		return KR_ENOTPROC;
	}
	krx_task_yield();
	return 0;
}

/* ---- start and stop ---- */

int krx_sched_start(const krx_sched_config *cfg)
{
	memset(&krx_scheds, 0, sizeof krx_scheds);
	krx_scheds.cfg = *cfg;
	krx_scheds.cfg.vm_locals = NULL; /* the caller's array: read below, not kept */
	krx_scheds.n = cfg->schedulers;
	krx_stack_opts so = { .stack_size = cfg->stack_size };
	int err = krx_stack_pool_init(&krx_scheds.pool, &so);
	if (err)
		return KR_ENOMEM;
	krx_scheds.scheds = krx_calloc_raw(krx_scheds.n, sizeof *krx_scheds.scheds);
	krx_scheds.idle_list = krx_calloc_raw(krx_scheds.n, sizeof *krx_scheds.idle_list);
	if (!krx_scheds.scheds || !krx_scheds.idle_list || krx_poll_start(krx_scheds.n)) {
		krx_free_raw(krx_scheds.scheds);
		krx_free_raw(krx_scheds.idle_list);
		krx_stack_pool_destroy(&krx_scheds.pool);
		return KR_ENOMEM;
	}
	/* The fault handlers go in once nothing else can fail. */
	if (krx_fault_start(krx_scheds.n, &cfg->hooks)) {
		krx_poll_free();
		krx_free_raw(krx_scheds.scheds);
		krx_free_raw(krx_scheds.idle_list);
		krx_stack_pool_destroy(&krx_scheds.pool);
		return KR_ENOMEM;
	}
	krx_injectq_init(&krx_scheds.inject);
	pthread_mutex_init(&krx_scheds.idle_lock, NULL);
	pthread_mutex_init(&krx_scheds.pools_lock, NULL);
	pthread_mutex_init(&krx_scheds.wd_lock, NULL);
	pthread_cond_init(&krx_scheds.wd_cond, NULL);
	for (unsigned i = 0; i < krx_scheds.n; i++) {
		krx_sched *s = &krx_scheds.scheds[i];
		s->id = i;
		s->vm_local = cfg->vm_locals ? cfg->vm_locals[i] : NULL;
		s->rand = 0x9e3779b9u * (i + 1);
		krx_runq_init(&s->rq);
		krx_timers_init(&s->timers);
	}
	/* Release: threads and callers that see running see all of the above. */
	AO_store_release(&krx_scheds.running, 1);
	for (unsigned i = 0; i < krx_scheds.n; i++)
		pthread_create(&krx_scheds.scheds[i].thread, NULL, sched_main, &krx_scheds.scheds[i]);
	krx_watchdog_start();
	return 0;
}

void krx_sched_stop(void)
{
	AO_store_release(&krx_scheds.stopping, 1);
	for (unsigned i = 0; i < krx_scheds.n; i++)
		krx_sched_wake(&krx_scheds.scheds[i], KRX_WOKEN_PLAIN);
	for (unsigned i = 0; i < krx_scheds.n; i++)
		pthread_join(krx_scheds.scheds[i].thread, NULL);
	krx_watchdog_stop();
	krx_blocking_stop();
	krx_fault_stop();
	AO_store(&krx_scheds.running, 0);
}

void krx_sched_free(void)
{
	for (unsigned i = 0; i < krx_scheds.n; i++) {
		krx_sched *s = &krx_scheds.scheds[i];
		krx_stack_cache_flush(&krx_scheds.pool, &s->stacks);
		krx_timers_free(&s->timers);
	}
	krx_stack_pool_destroy(&krx_scheds.pool);
	for (int i = 0; i < KRX_STACK_SIZES; i++) {
		krx_stack_pool *p = (krx_stack_pool *)AO_load(&krx_scheds.other_pools[i]);
		if (p) {
			krx_stack_pool_destroy(p);
			krx_free_raw(p);
		}
	}
	pthread_mutex_destroy(&krx_scheds.pools_lock);
	krx_poll_free();
	krx_free_raw(krx_scheds.scheds);
	krx_free_raw(krx_scheds.idle_list);
	pthread_mutex_destroy(&krx_scheds.inject.lock);
	pthread_mutex_destroy(&krx_scheds.idle_lock);
	pthread_mutex_destroy(&krx_scheds.wd_lock);
	pthread_cond_destroy(&krx_scheds.wd_cond);
	krx_scheds.scheds = NULL;
	krx_scheds.n = 0;
}

void krx_task_discard(krx_task *t)
{
	if (t->stack) {
		krx_ctx_destroy(&t->ctx);
		krx_stack_put(t->pool, NULL, t->stack);
		t->stack = NULL;
		AO_fetch_and_sub1(&krx_scheds.stacks_in_use);
	}
	mark_done(t);
}
