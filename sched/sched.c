/*
 * sched.c - the schedulers' life (start, stop, free), the stack pools,
 * logging, the task-side API (init, ready, spawn, wake, yield, exit), and
 * running a task: its stack, its switch in, and what becomes of it when it
 * switches back. The loop that finds work is loop.c; spinning, parking and
 * waking are idle.c; direct switches and deferred commits handoff.c; the
 * watchdog watchdog.c (see sched_int.h).
 *
 * A task that leaves the CPU is finished exactly once, by
 * krx_sched_switched_out: on the loop's stack (krx_sched_run_task), or
 * after a direct switch on the next task's (handoff.c).
 */
#include "sched_int.h"

#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include "mi.h"
#include "poll.h"
#include "stat.h"

struct krx_scheds krx_scheds;

bool krx_sched_running(void)
{
	/* Acquire: pairs with the release in start, so the VM is whole. */
	return AO_load_acquire(&krx_scheds.running) != 0;
}

unsigned krx_sched_count(void)
{
	return krx_scheds.n;
}

krx_sched *krx_sched_get(unsigned id)
{
	return &krx_scheds.scheds[id];
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

size_t krx_sched_hibernating(void)
{
	return AO_load(&krx_scheds.hibernating);
}

/* ---- figures ---- */

uint64_t krx_sched_started_ns(void)
{
	return krx_scheds.started_ns;
}

void krx_sched_figures_get(unsigned id, uint64_t now, krx_sched_figures *out)
{
	krx_sched *s = &krx_scheds.scheds[id];
	AO_t ended = 0, since = 0;
	/* A sequence count (loop.c's idle_publish writes it): read the pair
	 * until it was not changing while we read. A writer is a few stores
	 * long; one preempted in the middle could keep us here, so after a
	 * while we take what we read (a figure off by one idle period). */
	for (int tries = 0; tries < 1000; tries++) {
		/* Acquire: the pair read below is at least as new as this count. */
		AO_t seq = AO_load_acquire(&s->fig.seq);
		if (seq & 1) {
			krx_cpu_relax();
			continue;
		}
		ended = AO_load(&s->fig.idle_ns);
		since = AO_load(&s->fig.idle_since);
		/* Read fence: the pair's loads are done before the count is read
		 * again, so an unchanged count means an unchanged pair. */
		AO_nop_read();
		if (AO_load(&s->fig.seq) == seq)
			break;
	}
	out->idle_ns = ended + (since && now > since ? now - since : 0);
	out->steals = krx_stat_read(&s->fig.steals);
	out->runq = krx_runq_len(&s->rq);
}

/* One pool's resident bytes, by mincore over its carved slots. */
static size_t pool_resident(krx_stack_pool *pool, bool *failed)
{
	size_t total = 0;
	/* Acquire: pairs with the release that published each region. */
	size_t nregions = AO_load_acquire(&pool->nregions);
	/* Relaxed: slots carved later are left for the next look. */
	size_t carved = AO_load(&pool->carved);
	unsigned char vec[4096];
	size_t per_call = sizeof vec * pool->page;
	for (size_t r = 0; r < nregions && !*failed; r++) {
		char *base = pool->regions[r].base;
		size_t first = r * pool->slots_per_region;
		if (carved <= first)
			break;
		size_t slots = carved - first < pool->slots_per_region ? carved - first
		                                                       : pool->slots_per_region;
		size_t len = slots * pool->slot_size;
		for (size_t off = 0; off < len && !*failed; off += per_call) {
			size_t n = len - off < per_call ? len - off : per_call;
			if (mincore(base + off, n, vec)) {
				*failed = true;
				break;
			}
			for (size_t i = 0; i < (n + pool->page - 1) / pool->page; i++)
				total += (vec[i] & 1) * pool->page;
		}
	}
	return total;
}

size_t krx_sched_stacks_resident(void)
{
	bool failed = false;
	size_t total = pool_resident(&krx_scheds.pool, &failed);
	for (int i = 0; i < KRX_STACK_SIZES && !failed; i++) {
		/* Acquire: pairs with the release that published the pool. */
		krx_stack_pool *p = (krx_stack_pool *)AO_load_acquire(&krx_scheds.other_pools[i]);
		if (p)
			total += pool_resident(p, &failed);
	}
	if (failed)
		return krx_sched_stacks_in_use() * krx_scheds.pool.page;
	return total;
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
	/* A task that has run before and has no stack is back from
	 * krx_task_hibernate (an exit never comes back). Relaxed: a figure. */
	if (AO_int_load(&t->last_sched))
		AO_fetch_and_sub1(&krx_scheds.hibernating);
	krx_ctx_make(&t->ctx, t->stack->lo, (size_t)(t->stack->hi - t->stack->lo), task_entry, t,
	             &s->ctx);
	return true;
}

/* t will not run on its stack again: the stack goes back, to cache (the
 * scheduler's, or NULL: the pool's shared list). */
static void release_stack(krx_task *t, krx_stack_cache *cache)
{
	krx_ctx_destroy(&t->ctx);
	krx_stack_put(t->pool, cache, t->stack);
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
	if (s->vm.pending)
		krx_scheds.cfg.hooks.flush(s);
	if (t->stack && t->stack->guard == KRX_GUARD_CANARY && !krx_stack_intact(t->stack)) {
		char name[64];
		krx_scheds.cfg.hooks.task_name(t, name, sizeof name);
		krx_log(KR_LOG_CRITICAL, "krill: process %s overflowed its stack (canary); memory is corrupt",
		        name);
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
		release_stack(t, cache_for(s, t));
		mark_done(t);
		krx_scheds.cfg.hooks.task_exit(t);
		break;
	case KRX_SW_HIBERNATE:
		/* Before the wait is published: a waker may run it at once,
		 * elsewhere, and it must find no stack to resume on. */
		release_stack(t, cache_for(s, t));
		AO_int_store(&t->guard, 0); /* kr_info: no stack, no protection */
		AO_fetch_and_add1(&krx_scheds.hibernating); /* relaxed: a figure */
		/* Fall through: the rest is a park's. */
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

void krx_sched_run_task(krx_sched *s, krx_task *t)
{
	if (!t->stack && !give_stack(s, t)) {
		krx_log(KR_LOG_ERROR, "krill: out of stack address space; a process could not start");
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
		if (t->bound == KRX_BOUND_HOST) {
			krx_task_wake_host(t); /* a host thread's: it runs it */
			return;
		}
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
	/* Release: for a host task, which is not queued, this store is what
	 * publishes the hand-off to its thread (host.c); for a process,
	 * queueing publishes it, and the release costs nothing on x86-64. */
	AO_store_release(&t->state, (AO_load(&t->state) & ~(AO_t)KRX_ST_STATUS) | KRX_RUNNABLE);
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
	krx_task *t = krx_task_on(s);
	if (!t) {
		krx_log(KR_LOG_CRITICAL, "krill: krx_task_exit called outside a process");
		abort();
	}
	s->switched_for = KRX_SW_EXIT;
	/* The last switch off this stack: ASan frees the task's fake stack. */
	krx_ctx_exit(&t->ctx, &s->ctx);
}

_Noreturn void krx_task_hibernate(bool (*commit)(krx_task *t, void *arg), void *arg)
{
	krx_sched *s = krx_sched_self();
	krx_task *t = krx_task_on(s);
	if (!t) {
		krx_log(KR_LOG_CRITICAL, "krill: krx_task_hibernate called outside a process");
		abort();
	}
	krx_sched_park_set(s, t, KRX_SW_HIBERNATE, KRX_WAIT_RECV, 0, commit, arg);
	/* Never a direct switch: the loop releases the stack, on its own. The
	 * last switch off this stack, as an exit's. */
	krx_ctx_exit(&t->ctx, &s->ctx);
}

void krx_task_yield(void)
{
	krx_sched *s = krx_sched_self();
	krx_task *t = krx_task_on(s);
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
	krx_scheds.scheds = krx_calloc_lines(krx_scheds.n, sizeof *krx_scheds.scheds);
	krx_scheds.idle_list = krx_calloc_raw(krx_scheds.n, sizeof *krx_scheds.idle_list);
	if (!krx_scheds.scheds || !krx_scheds.idle_list || krx_poll_start(krx_scheds.n)) {
		krx_free_lines(krx_scheds.scheds);
		krx_free_raw(krx_scheds.idle_list);
		krx_stack_pool_destroy(&krx_scheds.pool);
		return KR_ENOMEM;
	}
	/* The fault handlers go in once nothing else can fail. */
	if (krx_fault_start(krx_scheds.n, &cfg->hooks)) {
		krx_poll_free();
		krx_free_lines(krx_scheds.scheds);
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
		s->vm.local = cfg->vm_locals ? cfg->vm_locals[i] : NULL;
		s->rand = 0x9e3779b9u * (i + 1);
		krx_runq_init(&s->rq);
		krx_timers_init(&s->timers);
		AO_store(&s->vm.timer_next, UINT64_MAX); /* none: published by the release below */
	}
	krx_scheds.started_ns = krx_now_ns();
	/* Release: threads and callers that see running see all of the above. */
	AO_store_release(&krx_scheds.running, 1);
	for (unsigned i = 0; i < krx_scheds.n; i++)
		pthread_create(&krx_scheds.scheds[i].thread, NULL, krx_sched_main, &krx_scheds.scheds[i]);
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
	krx_free_lines(krx_scheds.scheds);
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
	if (t->stack)
		release_stack(t, NULL);
	mark_done(t);
}
