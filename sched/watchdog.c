/*
 * watchdog.c - the thread that reports a process that runs on without
 * yielding. krill cannot preempt C code, so such a process can only be
 * reported, once per run, as a warning (report.c). Its regular look also
 * says what the reports' burst limit dropped (krx_log_tick).
 *
 * The watchdog samples each scheduler's run counter (run_seq) and CPU
 * clock; it never touches a task but the one a scheduler publishes as
 * current. An idle VM costs it nothing: it backs off to one look a second,
 * and a scheduler that leaves sleep brings it back to pace
 * (krx_watchdog_poke, under wd_lock).
 *
 * It also keeps the stack pools lean, being the one thread that wakes now
 * and then without running processes: stacks given back after a burst
 * (processes that ended or hibernated) that no process took for a second,
 * beyond a warm reserve, give their memory back.
 */
#include <stdlib.h>
#include <time.h>

#include "futex.h"
#include "sched_int.h"

#define WARM_STACKS 256            /* free stacks a pool keeps warm beyond those in use */
#define TRIM_EVERY_NS 1000000000ull /* ... the interval over which "in use" is judged */

/* The pools, the default one and those of other stack sizes. */
static krx_stack_pool *pool_at(int i)
{
	/* Acquire: pairs with krx_sched_pool_for's release; the pool is whole. */
	return i == 0 ? &krx_scheds.pool
	              : (krx_stack_pool *)AO_load_acquire(&krx_scheds.other_pools[i - 1]);
}

/* Once every TRIM_EVERY_NS (*last: the last time), trim each pool of the
 * free stacks no process took meanwhile, but WARM_STACKS. */
static void trim_stacks(uint64_t *last)
{
	uint64_t now = krx_now_ns();
	if (now - *last < TRIM_EVERY_NS)
		return;
	*last = now;
	for (int i = 0; i <= KRX_STACK_SIZES; i++)
		if (pool_at(i))
			krx_stack_trim(pool_at(i), WARM_STACKS);
}

/* CPU time a scheduler thread has used, in ns (0 if it cannot be read). */
static uint64_t thread_cpu_ns(krx_sched *s)
{
	clockid_t clock;
	struct timespec ts;
	if (pthread_getcpuclockid(s->thread, &clock) || clock_gettime(clock, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The watchdog looks at every scheduler twice per threshold. A scheduler
 * seen in the same run (same run_seq) at two looks, and whose thread has
 * spent at least the threshold of CPU time since the first of them, is
 * running a process that does not yield: report it, once per run. CPU time,
 * not wall time, so that a scheduler thread the OS has merely set aside
 * (a busy machine) is not taken for a process that hogs it.
 */
static void *watchdog_main(void *arg)
{
	(void)arg;
	struct look { uint64_t seq, cpu, reported; } *seen = calloc(krx_scheds.n, sizeof *seen);
	const uint64_t threshold_ns = (uint64_t)krx_scheds.cfg.watchdog_ms * 1000000u;
	const unsigned pace = krx_scheds.cfg.watchdog_ms / 2 ? krx_scheds.cfg.watchdog_ms / 2 : 1;
	unsigned interval = pace;
	uint64_t trimmed_at = krx_now_ns();
	pthread_mutex_lock(&krx_scheds.wd_lock);
	while (seen && !AO_load(&krx_scheds.stopping)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)interval * 1000000u;
		ts.tv_sec += (time_t)(ns / 1000000000u);
		ts.tv_nsec = (long)(ns % 1000000000u);
		pthread_cond_timedwait(&krx_scheds.wd_cond, &krx_scheds.wd_lock, &ts);
		if (!AO_load(&krx_scheds.wd_backoff))
			interval = pace; /* poked, or never backed off */
		bool any = false;
		for (unsigned i = 0; i < krx_scheds.n; i++) {
			krx_sched *s = &krx_scheds.scheds[i];
			struct look *l = &seen[i];
			/* Relaxed: a sample; a run that ends as we look is fine. */
			uint64_t seq = AO_load(&s->run_seq);
			bool busy = AO_load(&s->idle) == 0;
			any |= busy;
			uint64_t cpu = thread_cpu_ns(s);
			if (seq != l->seq || !busy) {
				l->seq = seq;
				l->cpu = cpu;
				continue;
			}
			if (seq == l->reported || cpu - l->cpu < threshold_ns)
				continue;
			/* Acquire: pairs with the release in
			 * krx_sched_switch_in_tls, so the task (and the process
			 * around it) is seen set up. */
			krx_task *t = (krx_task *)AO_load_acquire(&s->current);
			if (!t)
				continue;
			char name[64];
			krx_scheds.cfg.hooks.task_name(t, name, sizeof name);
			krx_log(KR_LOG_WARNING,
			        "krill: process %s has run more than %u ms on scheduler %u "
			        "without yielding",
			        name, krx_scheds.cfg.watchdog_ms, i);
			l->reported = seq;
		}
		/* Not under wd_lock: a trim makes system calls, a report calls the
		 * program's log function, and a waking scheduler may want the
		 * lock (krx_watchdog_poke). */
		pthread_mutex_unlock(&krx_scheds.wd_lock);
		trim_stacks(&trimmed_at);
		krx_log_tick();
		pthread_mutex_lock(&krx_scheds.wd_lock);
		/* An idle VM should cost nothing: look less often when idle,
		 * until a scheduler wakes up and pokes us (under wd_lock). */
		interval = any ? pace : (interval * 2 > 1000 ? 1000 : interval * 2);
		AO_store(&krx_scheds.wd_backoff, interval > pace);
	}
	pthread_mutex_unlock(&krx_scheds.wd_lock);
	free(seen);
	return NULL;
}

void krx_watchdog_start(void)
{
	pthread_create(&krx_scheds.watchdog, NULL, watchdog_main, NULL);
}

void krx_watchdog_stop(void)
{
	pthread_mutex_lock(&krx_scheds.wd_lock);
	pthread_cond_signal(&krx_scheds.wd_cond);
	pthread_mutex_unlock(&krx_scheds.wd_lock);
	pthread_join(krx_scheds.watchdog, NULL);
}

/* A scheduler leaving sleep: if the watchdog backed off while the VM was
 * idle, bring it back to its normal pace before any long run can start. */
void krx_watchdog_poke(void)
{
	/* Relaxed: a hint; the lock below orders the wake-up itself. */
	if (!AO_load(&krx_scheds.wd_backoff))
		return;
	pthread_mutex_lock(&krx_scheds.wd_lock);
	AO_store(&krx_scheds.wd_backoff, 0);
	pthread_cond_signal(&krx_scheds.wd_cond);
	pthread_mutex_unlock(&krx_scheds.wd_lock);
}
