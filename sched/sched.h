/*
 * sched.h - scheduler threads: what vm/ may ask of the machinery that runs
 * processes. sched/ knows tasks (task.h), never processes. vm/ and sched/
 * meet at these doors, a section each below, and nowhere else:
 *   1. hooks      sched/ calls vm/: what a task runs, and what its end, a
 *                 fault, its name, a receive's timeout and a yield mean;
 *   2. here       the scheduler and the task running on this thread, s->id,
 *                 and vm/'s corner of a scheduler, s->vm;
 *   3. lifecycle  vm.c starts and stops the schedulers and reads figures;
 *   4. hand-off   the message path's direct switch: a partner parked here
 *                 with its commit deferred, woken or committed (send.c and
 *                 mailbox.c only);
 *   5. tasks      a process's life as a task: made, spawned, parked, woken,
 *                 charged, yielding, ending (and task.h's state word);
 *   6. reports    the log: levels, the burst limit, where reports go.
 * Besides, vm/io.c waits on descriptors through the poller (poll.h) and
 * kr_blocking runs on helper threads (krx_blocking, below). The rest of
 * sched/ (its loop, queues, parking, stacks) is its own: sched_int.h.
 */
#ifndef KRX_SCHED_H
#define KRX_SCHED_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "fault.h"
#include "krill.h"
#include "runq.h"
#include "stack.h"
#include "task.h"
#include "timer.h"
#include "tls.h"

#define KRX_REDUCTIONS 4000 /* a task's budget per run (the BEAM's is 4,000) */
#define KRX_LIFO_LEASH 200  /* its budget once it has woken a task that waits for it */
#define KRX_STACK_SIZES 8   /* distinct non-default stack sizes in one VM */

/* ---- 1. hooks: sched/ calls vm/ ---- */

typedef struct krx_sched_hooks {
	/* What a task runs: called on its own stack when it first runs. */
	void (*task_main)(krx_task *t);
	/* A task's function returned; its stack is already released. Runs on
	 * the scheduler's own stack. */
	void (*task_exit)(krx_task *t);
	/* A hardware fault in the task's own code ends it (fault.c): called
	 * on a stack of the scheduler's, out of the signal handler, before the
	 * task ends as if it had returned. f is valid during the call. */
	void (*task_fault)(krx_task *t, const krx_fault *f);
	/* Describe a task for a report ("<0.12.0> worker"). */
	void (*task_name)(krx_task *t, char *buf, size_t len);
	/* A task switched out and vm_pending was set: vm/ has work left on
	 * this scheduler (buffered messages) that must not outlive the run. */
	void (*flush)(struct krx_sched *s);
	/* The timeout of a task parked in WAIT_RECV with waiting word expect
	 * is due: true if it won the wake-up (vm/ arbitrates receives). */
	bool (*recv_timeout)(krx_task *t, AO_t expect);
	/* A task resumed after yielding (on its own stack): vm/ acts on
	 * signals that came meanwhile. */
	void (*yielded)(krx_task *t);
	/* vm/'s own timers on s (kr_send_after) are due: s->vm.timer_next
	 * <= now. Fire them, or some of them (the loop calls again while
	 * timer_next stays due), and set timer_next afresh. Runs in s's loop,
	 * on the scheduler's stack. May be NULL (then timer_next stays
	 * UINT64_MAX). */
	void (*timers_due)(struct krx_sched *s, uint64_t now);
} krx_sched_hooks;

/* ---- 2. here: the running scheduler (the struct is sched/'s; vm/ reads
 * id, current through krx_task_on, and vm) ---- */

/* Why the running task switched back to the scheduler. */
enum krx_switch_cause { KRX_SW_YIELD, KRX_SW_PARK, KRX_SW_EXIT, KRX_SW_HIBERNATE };

typedef struct krx_sched {
	/* Each scheduler's struct on lines of its own (krx_calloc_lines):
	 * neighbours' fields written by their own threads never share one. */
	_Alignas(64) unsigned id;
	pthread_t thread;
	krx_ctx ctx;              /* the scheduler loop's own context */
	krx_runq rq;
	AO_t current;             /* krx_task *; written by this thread, read by the watchdog */
	AO_t run_seq;             /* bumped at every switch-in (the watchdog) */
	krx_timers timers;
	krx_stack_cache stacks;
	/* Why the current task switched back, and how to park it; while a
	 * task is deferred (below), its park, until its commit is made. */
	int switched_for;   /* enum krx_switch_cause */
	AO_t park_word;
	uint64_t park_deadline;
	bool (*park_commit)(krx_task *t, void *arg);
	void *park_arg;
	/* Set by a task that handed the CPU straight to the next one: the
	 * next one finishes parking it (krx_sched_finish_handover). */
	krx_task *handover;
	/* A task parked in a receive whose commit waits (see
	 * krx_sched_deferred); its park is park_* above, its timer armed only
	 * with the commit. */
	krx_task *deferred;
	/* vm/'s corner (door 2): its own per-scheduler state (send
	 * buffers, caches), and whether it has anything for the flush hook
	 * when a task switches out. sched/ only reads pending. */
	struct {
		void *local;
		unsigned pending;
		/* The deadline (CLOCK_MONOTONIC ns) of vm/'s earliest timer
		 * on this scheduler, UINT64_MAX if none: the loop calls
		 * hooks.timers_due once it has passed, and a parked scheduler
		 * sleeps no later. vm/ writes it (under a lock of its own); a
		 * thread that lowers it from elsewhere calls krx_sched_kick. */
		AO_t timer_next;
	} vm;
	/* Bound tasks made runnable from elsewhere. */
	krx_inbox inbox;
	/* Parking. */
	unsigned wake_word;       /* futex word: 1 = woken */
	AO_t idle;                /* on the idle list */
	bool spinning;
	uint32_t rand;
	unsigned tick;
	krx_task *overdue;        /* taken from an overdue inject queue, to run (find_work) */
	long reds_forgiven;       /* budget the running task lost to a leash (sched.c) */
	/* Figures (krx_sched_figures_get), written by this thread only. Idle
	 * time is a pair under a sequence count (odd while it changes): the
	 * idle time that has ended, and when the current one began (0: busy);
	 * idle_from, idle_last and idle_total are this thread's own. */
	struct {
		AO_t seq;
		AO_t idle_ns;
		AO_t idle_since;
		uint64_t steals;    /* krx_stat_add (stat.h) */
	} fig;
	uint64_t idle_from;
	uint64_t idle_last;       /* the last clock read while idle (loop.c's idle_end) */
	uint64_t idle_total;
} krx_sched;

/* The scheduler this thread is, or NULL (read afresh: see tls.h). */
static inline krx_sched *krx_sched_self(void)
{
	return krx_tls_sched();
}

/* The task running on s, this thread's scheduler (or NULL: a host
 * thread), or NULL. */
static inline krx_task *krx_task_on(krx_sched *s)
{
	/* Plain read: only this thread writes it (atomically, for the watchdog). */
	return s ? (krx_task *)s->current : NULL;
}

/* The task running on this thread, or NULL on a host thread. */
static inline krx_task *krx_task_self(void)
{
	return krx_task_on(krx_sched_self());
}

/* s->vm.timer_next was just lowered by a thread that is not s's: if s is
 * parked (perhaps until the old deadline), wake it to look again. */
void krx_sched_kick(krx_sched *s);

/* ---- 3. lifecycle (vm.c) ---- */

typedef struct krx_sched_config {
	unsigned schedulers;
	int pin;
	size_t stack_size;
	unsigned watchdog_ms;
	krx_sched_hooks hooks;
	void **vm_locals;     /* per scheduler, for vm/: its vm_local */
} krx_sched_config;

int krx_sched_start(const krx_sched_config *cfg);
/* Stop and join every scheduler; tasks not finished are left where they
 * are for the caller to free. */
void krx_sched_stop(void);
/* After stop, once every unfinished task was discarded: free the rest. */
void krx_sched_free(void);
/* Release the stack and fiber of a task that will never run again (stop). */
void krx_task_discard(krx_task *t);
bool krx_sched_running(void);
unsigned krx_sched_count(void);
/* Scheduler id (< krx_sched_count()) of the running VM. */
krx_sched *krx_sched_get(unsigned id);
krx_stack_pool *krx_sched_pool(void);
/* The pool for stacks of this size (rounded up to pages), made on first
 * use, in *out: 0, KR_ELIMIT when KRX_STACK_SIZES other sizes are taken,
 * or KR_ENOMEM. */
int krx_sched_pool_for(size_t size, krx_stack_pool **out);
size_t krx_sched_stacks_in_use(void);
size_t krx_sched_hibernating(void);

/* A scheduler's figures, for the observer (vm/obs_sample.c) and
 * kr_vm_stats. Idle is time spent looking for work in vain: spinning and
 * parked; busy is the rest of the time since the schedulers started
 * (running tasks, and the loop's own work between them). */
typedef struct krx_sched_figures {
	uint64_t idle_ns;  /* idle time since the schedulers started, up to now */
	uint64_t steals;   /* successful steals (each takes up to half a ring) */
	size_t runq;       /* tasks in its ring now */
} krx_sched_figures;
/* Scheduler id's figures as of now (CLOCK_MONOTONIC ns, krx_now_ns). Any
 * thread, while the VM runs. */
void krx_sched_figures_get(unsigned id, uint64_t now, krx_sched_figures *out);
/* When the schedulers started (krx_now_ns). */
uint64_t krx_sched_started_ns(void);
/* Bytes of the stack pools' memory the system has given pages for
 * (mincore over the slots carved so far: stacks in use, warm free ones
 * and those not yet trimmed), or the stacks in use at one page each where
 * mincore fails. A few system calls per 4,096 stacks: not for a hot path. */
size_t krx_sched_stacks_resident(void);

/* ---- 4. hand-off (send.c, mailbox.c; and park, below) ---- */

/*
 * Deferred commits: when a task parks in a receive and hands the CPU
 * straight to its partner, its commit (announcing that it waits, a CAS on
 * its mailbox) is put off while the partner runs. If the partner sends to
 * it meanwhile, which in a ping-pong it does, the message goes straight into
 * the parked task's queue and the task is made runnable with plain stores:
 * no atomic read-modify-write at all on a same-scheduler round trip. The
 * commit is made as soon as the partner leaves the CPU without doing so
 * (when it parks in its turn, or back in the scheduler loop); until then
 * the deferred task's park is the scheduler's park_* fields.
 * Meanwhile no other thread can wake the task; their messages wait in its
 * mailbox and make the commit fail, which wakes it then. The delay is
 * bounded by the partner's run, and timers fire only from the scheduler
 * loop, which commits first.
 *
 * The task parked with a deferred commit on s, or NULL. Only s's thread may
 * ask, and it may then wake the task with krx_task_wake_deferred.
 */
static inline krx_task *krx_sched_deferred(krx_sched *s)
{
	return s->deferred;
}
void krx_task_wake_deferred(krx_sched *s, krx_task *t);
/* Make the deferred task's commit now, if a task is deferred on s (s's
 * thread only). */
void krx_sched_commit_deferred_slow(krx_sched *s);
static inline void krx_sched_commit_deferred(krx_sched *s)
{
	if (s->deferred)
		krx_sched_commit_deferred_slow(s);
}

/* Direct switches: a task that parks hands the CPU straight to the task
 * in the LIFO slot (its partner, just woken) when it may, skipping the
 * scheduler loop and two of the four switches of a message round trip.
 * The next task then finishes what the scheduler loop would have done for
 * the one that left. Not for use outside park and yield. */
krx_task *krx_sched_direct_next(krx_sched *s, krx_task *t);
void krx_sched_finish_handover(krx_sched *s);

/* After a task resumes: finish parking the task that handed it the CPU. */
static inline __attribute__((always_inline)) void krx_task_resumed(void)
{
	krx_sched *s = krx_sched_self();
	if (s->handover)
		krx_sched_finish_handover(s);
}

/* ---- 5. tasks ---- */

/* Prepare a task (it will run hooks.task_main); bound: 0 or scheduler
 * index + 1; pool: where its stack comes from (NULL = the default). */
void krx_task_init(krx_task *t, unsigned bound, krx_stack_pool *pool);
/* Make a new task runnable (from a task or a host thread). */
void krx_task_spawn(krx_task *t);
/* Queue a task whose wake-up CAS the caller has just won. */
void krx_task_ready(krx_task *t);
/* Wake t if it is parked in WAIT_OTHER: the CAS any waker must win. */
bool krx_task_wake(krx_task *t, unsigned status);
/* Wake t, parked in WAIT_RECV, whose wake-up the caller has already won
 * elsewhere (vm/'s mailbox word): no CAS needed, there is no other waker. */
void krx_task_wake_won(krx_task *t);

/* From a running task: */
void krx_task_yield(void);
/* End the running task now, from any depth of its stack: the scheduler
 * treats it as a task that returned (its stack is released, task_exit runs). */
_Noreturn void krx_task_exit(void);
/* Park with status until woken (or deadline, CLOCK_MONOTONIC ns; 0 = none).
 * commit runs after the task has switched out and its waiting state is
 * published, on the scheduler's stack or the next task's; returning false
 * means "do not park after all" and the task is resumed at once. Returns
 * the state word the task was woken with (KRX_ST_TIMEDOUT tells a
 * timeout). */
/* What the scheduler will do for running task t once it has switched out:
 * park it (KRX_SW_PARK, KRX_SW_HIBERNATE) in status, with a new sequence
 * number, until deadline, after commit (krx_task_park says how). */
static inline __attribute__((always_inline)) void
krx_sched_park_set(krx_sched *s, krx_task *t, unsigned cause, unsigned status, uint64_t deadline,
                   bool (*commit)(krx_task *t, void *arg), void *arg)
{
	AO_t st = AO_load(&t->state);
	/* A task deferred here is parked with park_*: make its commit before
	 * this park takes them (its partner leaves the CPU without waking it). */
	krx_sched_commit_deferred(s);
	s->switched_for = cause;
	s->park_word = (st & ~(AO_t)(KRX_ST_SEQ_ONE - 1)) + KRX_ST_SEQ_ONE + status;
	s->park_deadline = deadline;
	s->park_commit = commit;
	s->park_arg = arg;
}

static inline __attribute__((always_inline)) AO_t
krx_task_park(unsigned status, uint64_t deadline, bool (*commit)(krx_task *t, void *arg), void *arg)
{
	/* Inline: see receive() in vm/mailbox.c. */
	krx_sched *s = krx_sched_self();
	krx_task *t = (krx_task *)s->current;
	krx_sched_park_set(s, t, KRX_SW_PARK, status, deadline, commit, arg);
	krx_task *next = krx_sched_direct_next(s, t);
	krx_ctx_switch(&t->ctx, next ? &next->ctx : &s->ctx);
	/* Resumed, perhaps on another thread: s is stale, t is not. */
	krx_task_resumed();
	AO_t woke = AO_load(&t->state);
	if (woke & KRX_ST_TIMEDOUT)
		AO_store(&t->state, woke & ~(AO_t)KRX_ST_TIMEDOUT);
	return woke;
}
/* Park as a receive does (KRX_WAIT_RECV, no deadline, commit as for
 * krx_task_park), but without a stack: the scheduler gives the task's stack
 * back before it publishes the wait, and the task, woken, starts again from
 * the top (the task_main hook), on whatever stack it gets then. A commit
 * that says "do not park" restarts it at once, on a fresh stack too. */
_Noreturn void krx_task_hibernate(bool (*commit)(krx_task *t, void *arg), void *arg);

/* Spend reductions; yield when the budget is gone. */
static inline void krx_task_charge(long reds)
{
	struct krx_tls *tls = krx_tls();
	if ((tls->reds -= reds) <= 0 && tls->sched)
		krx_task_yield();
}

/*
 * What a futex wake made on the running task's behalf costs it (a parked
 * scheduler, a host thread asleep in a receive). The budget counts calls,
 * and a call that wakes a sleeping thread spends 5-40 us in the kernel,
 * a hundred to eight hundred times the ~50 ns a reduction stands for: a
 * server answering sleeping host threads at one reduction a reply ran
 * 4,000 of those wakes, tens of milliseconds, without yielding, and the
 * watchdog reported it. Spent without yielding (the waker may be in the
 * middle of a delivery): the call that woke yields at its own charge,
 * which comes after.
 */
#define KRX_WAKE_REDS 200
static inline void krx_task_spend(long reds)
{
	/* On a scheduler between tasks or on a host thread this is harmless:
	 * the next switch-in resets it, and a host thread has no budget. */
	krx_tls()->reds -= reds;
}

/* ---- host tasks (host.c): a host thread's mailbox ----
 * A host thread that needs a mailbox (vm/host.c) gets a process slot whose
 * task never runs: KRX_BOUND_HOST. It waits in a receive on its own
 * thread, on a futex, and every waker wins its wake-up exactly as it would
 * a process's (the mailbox word, then the state word), then calls
 * krx_task_ready, which wakes the thread instead of queueing the task. */

/* Make t a host task, running on the calling host thread. */
void krx_task_init_host(krx_task *t);
/* Park host task t, on its own thread, as a receive parks (KRX_WAIT_RECV;
 * commit as for krx_task_park, called here once the wait is published):
 * spin a little, then sleep on a futex until a waker wins the wake-up, or
 * until deadline (CLOCK_MONOTONIC ns, 0 = none), when the recv_timeout
 * hook decides the race with a sender as it does for a timer. Returns the
 * state word it was woken with (KRX_ST_TIMEDOUT: its timeout won, or
 * krx_task_kick_host). */
AO_t krx_task_park_host(krx_task *t, uint64_t deadline, bool (*commit)(krx_task *t, void *arg),
                        void *arg);
/* Wake parked host task t as its timeout would (kr_vm_stop makes host
 * threads leave so): true if this won the wake-up. Any thread. */
bool krx_task_kick_host(krx_task *t);
/* krx_task_ready's turn for a host task whose wake-up the caller won and
 * published (release) in its state word: wake its thread if it sleeps. */
void krx_task_wake_host(krx_task *t);

/* Run fn(arg) on a helper thread while the calling task waits. */
long krx_blocking(long (*fn)(void *), void *arg);
void krx_blocking_stop(void);

/* ---- 6. reports (report.c) ---- */

/* The log's settings, resolved by vm.c. */
typedef struct krx_log_config {
	kr_log_fn *log;
	kr_log_handler_fn *handler;
	void *ctx;
	int level; /* KR_LOG_NONE to KR_LOG_DEBUG */
	int burst; /* reports a second at most; 0 = the default; < 0 = no limit */
} krx_log_config;

/* Before the schedulers start, and after they have been joined (this says
 * how many reports the burst limit dropped, if it has not yet). */
void krx_log_start(const krx_log_config *cfg);
void krx_log_stop(void);
/* The level in force; set it, returning the one it replaces. Any thread. */
int krx_log_level(void);
int krx_log_set_level(int level);

/* One report, cut at KRX_LOG_MAX - 1 bytes: room for a crash report's
 * first line and its 32 frames. Made only if it is as severe as the level
 * in force or more, and the burst limit lets it through. */
#define KRX_LOG_MAX 4096
void krx_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void krx_vlog(int level, const char *fmt, va_list ap);
/* Would a report of this level pass the level in force? Code that prepares a
 * report (a backtrace, a name looked up) may skip the work if not. */
bool krx_log_on(int level);
/* A report made in two steps, for one whose making costs (a crash report's
 * symbols): take says whether it goes out (the level, then the burst
 * limit, which counts it); if so, the caller makes it and puts it. */
bool krx_log_take(int level);
void krx_log_put(int level, const char *line);
/* The watchdog's regular look: say what the burst limit dropped in a
 * second that is over. */
void krx_log_tick(void);

#endif
