/*
 * vm.c - the VM's public face: start, stop, kr_main, and the calls a
 * process makes (send, yield, sleep, heap, blocking).
 *
 * kr_vm_start and kr_vm_stop are serialised by a mutex; every other entry
 * enters through krx_vm_enter (vm.h) and returns KR_ESTOPPED when no VM runs. Calls
 * that need a process return KR_ENOTPROC (or NULL) from a host thread.
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "futex.h"
#include "host.h"
#include "mi.h"
#include "msgtimer.h"
#include "obs.h"
#include "outbox.h"
#include "proc.h"
#include "registry.h"
#include "remote.h"
#include "send.h"
#include "signal.h"
#include "timeout.h"
#include "vm.h"

#define DEFAULT_MAX_PROCS ((size_t)1 << 20)
#define DEFAULT_MAX_MESSAGE ((size_t)64 << 20)
#define DEFAULT_WATCHDOG_MS 10

static pthread_mutex_t vm_lock = PTHREAD_MUTEX_INITIALIZER;
static krx_vm_local *locals; /* one per scheduler */
static AO_t accepting;  /* 1 while host threads may call in */
static AO_t host_calls; /* host-thread calls inside the VM now */

/* How deep this host thread is in host calls: a call made inside another
 * (a host thread's kr_call sends and receives) is counted in already. */
static __thread unsigned host_depth __attribute__((tls_model("initial-exec")));

int krx_vm_enter_host(void)
{
	if (host_depth) {
		host_depth++;
		return 0;
	}
	/* Full, then a load: Dekker with kr_vm_stop's store and load. The
	 * load is an acquire too: it pairs with kr_vm_start's release, so a
	 * caller that finds the door open sees the VM built behind it. */
	AO_fetch_and_add1_full(&host_calls);
	AO_nop_full();
	if (AO_load_acquire(&accepting)) {
		host_depth = 1;
		return 0;
	}
	AO_fetch_and_sub1_release(&host_calls);
	return KR_ESTOPPED;
}

bool krx_vm_stopping(void)
{
	/* Relaxed: a host thread inside a call looks now and then; the kicks
	 * of kr_vm_stop come after its store, and until every host call has
	 * left. */
	return !AO_load(&accepting);
}

void krx_vm_leave_host(void)
{
	if (--host_depth)
		return;
	/* Release: our reads of the VM happen before stop frees it. */
	AO_fetch_and_sub1_release(&host_calls);
}

KR_API int kr_vm_start(const kr_config *user)
{
	kr_config cfg = user ? *user : (kr_config){ 0 };
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (!cfg.schedulers)
		cfg.schedulers = ncpu > 0 ? (unsigned)ncpu : 1;
	if (!cfg.max_procs)
		cfg.max_procs = DEFAULT_MAX_PROCS;
	if (!cfg.max_message)
		cfg.max_message = DEFAULT_MAX_MESSAGE;
	if (!cfg.watchdog_ms)
		cfg.watchdog_ms = DEFAULT_WATCHDOG_MS;
	if (cfg.log_level < KR_LOG_DEFAULT || cfg.log_level > KR_LOG_DEBUG ||
	    (cfg.log && cfg.log_handler))
		return KR_EINVAL;
	if (cfg.schedulers > 1024 ||
	    cfg.max_procs > ((size_t)1 << KRX_PID_INDEX_BITS) - krx_procs_slack(cfg.schedulers) ||
	    (cfg.stack_size && (cfg.stack_size < KRX_MIN_STACK || cfg.stack_size > KRX_MAX_STACK)))
		return KR_EINVAL;

	pthread_mutex_lock(&vm_lock);
	int err = KR_EEXIST;
	if (krx_sched_running())
		goto out;
	if ((err = krx_procs_init(cfg.max_procs, cfg.schedulers)))
		goto out;
	if ((err = krx_registry_init())) {
		krx_procs_free();
		goto out;
	}
	krx_send_init(cfg.max_message);
	if ((err = krx_msgtimer_init(cfg.schedulers, cfg.max_message))) {
		krx_registry_free();
		krx_procs_free();
		goto out;
	}
	locals = krx_calloc_lines(cfg.schedulers, sizeof *locals);
	void **local_ptrs = krx_calloc_raw(cfg.schedulers, sizeof *local_ptrs);
	err = KR_ENOMEM;
	if (!locals || !local_ptrs) {
		krx_free_lines(locals);
		krx_free_raw(local_ptrs);
		krx_msgtimer_free();
		krx_registry_free();
		krx_procs_free();
		goto out;
	}
	for (unsigned i = 0; i < cfg.schedulers; i++)
		local_ptrs[i] = &locals[i];
	krx_sched_config sc = {
		.schedulers = cfg.schedulers,
		.pin = cfg.pin,
		.stack_size = cfg.stack_size,
		.watchdog_ms = cfg.watchdog_ms,
		.hooks = { .task_main = krx_proc_main,
		           .task_exit = krx_proc_exited,
		           .task_fault = krx_proc_fault,
		           .task_name = krx_proc_name,
		           .flush = krx_outbox_flush,
		           .recv_timeout = krx_proc_recv_timeout,
		           .yielded = krx_proc_yielded,
		           .timers_due = krx_msgtimer_due },
		.vm_locals = local_ptrs,
	};
	krx_log_start(&(krx_log_config){
		.log = cfg.log,
		.handler = cfg.log_handler,
		.ctx = cfg.log_ctx,
		/* no_reports: the deprecated way to say none */
		.level = cfg.no_reports ? KR_LOG_NONE : cfg.log_level ? cfg.log_level : KR_LOG_NOTICE,
		.burst = cfg.log_burst,
	});
	if ((err = krx_sched_start(&sc))) {
		krx_msgtimer_free();
		krx_registry_free();
		krx_procs_free();
		krx_free_lines(locals);
	} else {
		AO_store_release(&accepting, 1);
	}
	krx_free_raw(local_ptrs);
out:
	pthread_mutex_unlock(&vm_lock);
	return err;
}

KR_API int kr_vm_stop(void)
{
	if (krx_sched_self())
		return KR_EINVAL; /* a scheduler thread cannot join itself */
	pthread_mutex_lock(&vm_lock);
	int err = KR_ESTOPPED;
	if (krx_sched_running()) {
		/* Close the door, then wait for host calls inside to leave
		 * (acquire: their reads are done before we free). */
		AO_store(&accepting, 0);
		AO_nop_full();
		/* A host thread parked in a receive is inside: wake it (it
		 * sees the door closed and leaves), and again until all have
		 * left, as one may park after a round of kicks. */
		while (AO_load_acquire(&host_calls)) {
			krx_host_kick_all();
			sched_yield();
		}
		krx_host_vm_stopped(); /* no thread-local pointer outlives the table */
		unsigned n = krx_sched_count();
		krx_sched_stop();
		krx_msgtimer_free(); /* timers that never fired: their messages are not sent */
		krx_procs_free();
		krx_observer_vm_stopped(); /* its shared state, once no process is left */
		krx_remote_vm_stopped(); /* dist/'s tables, once no process is left */
		krx_registry_free();
		krx_sched_free();
		krx_log_stop(); /* what the burst limit dropped, if not yet said */
		for (unsigned i = 0; i < n; i++)
			krx_msg_cache_flush(&locals[i].msgs);
		krx_free_lines(locals);
		locals = NULL;
		err = 0;
	}
	pthread_mutex_unlock(&vm_lock);
	return err;
}

/* ---- figures ---- */

static AO_t host_sent; /* messages host threads sent: off the processes' path */

void krx_vm_count_host_send(void)
{
	AO_fetch_and_add1(&host_sent); /* relaxed: a figure */
}

void krx_vm_count_restart(void)
{
	krx_sched *s = krx_sched_self();
	if (s)
		krx_stat_add(&krx_vm_local_of(s)->restarts, 1);
}

void krx_vm_figures_get(krx_vm_figures *out)
{
	/* Relaxed: figures. */
	*out = (krx_vm_figures){ .sent = AO_load(&host_sent), .msg_bytes = krx_msg_host_bytes() };
	for (unsigned i = 0; i < krx_sched_count(); i++) {
		out->sent += krx_stat_read(&locals[i].msgs.sent);
		out->restarts += krx_stat_read(&locals[i].restarts);
		out->msg_bytes += krx_stat_read(&locals[i].msgs.bytes);
	}
}

KR_API int kr_vm_stats_get(kr_vm_stats *out)
{
	if (!out)
		return KR_EINVAL;
	krx_sched *self = krx_sched_self();
	if (krx_vm_enter(self))
		return KR_ESTOPPED;
	krx_stack_stats ss;
	krx_stack_pool_stats(krx_sched_pool(), &ss);
	krx_vm_figures fig;
	krx_vm_figures_get(&fig);
	uint64_t now = krx_now_ns(), busy = 0;
	for (unsigned i = 0; i < krx_sched_count(); i++) {
		krx_sched_figures sf;
		krx_sched_figures_get(i, now, &sf);
		uint64_t up = now - krx_sched_started_ns();
		busy += up > sf.idle_ns ? up - sf.idle_ns : 0;
	}
	*out = (kr_vm_stats){
		.messages_sent = fig.sent,
		.restarts = fig.restarts,
		.message_bytes = (size_t)fig.msg_bytes,
		.busy_ns = busy,
		.uptime_ns = now - krx_sched_started_ns(),
		.schedulers = krx_sched_count(),
		.procs_alive = krx_procs_alive(),
		.procs_spawned = krx_procs_spawned(),
		.dead_letters = krx_dead_letters_count(),
		.stacks_in_use = krx_sched_stacks_in_use(),
		.hibernating = krx_sched_hibernating(),
		.timers = krx_msgtimer_pending(),
		.stack_protection = krx_guard_kind_name(ss.best),
		.stacks_warm = ss.shared_free,
		.stacks_trimmed = ss.cold,
	};
	krx_vm_leave(self);
	return 0;
}

/* ---- kr_main ----
 * kr_main's host thread waits for its root process to end, however it
 * ends: the exit path tells it (krx_vm_proc_ended), crash or not. */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	AO_t pid;  /* the root's, once it runs */
	int done;
	int kind;
} root = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

typedef struct root_call {
	kr_fn *fn;
	void *arg;
} root_call;

static void root_main(void *arg)
{
	root_call *rc = arg;
	/* Release: the exit path (any thread) compares against it. */
	AO_store_release(&root.pid, (AO_t)kr_self());
	rc->fn(rc->arg);
}

void krx_vm_proc_ended(kr_pid pid, int kind)
{
	/* Acquire: pairs with root_main's release. */
	if (!pid || (kr_pid)AO_load_acquire(&root.pid) != pid)
		return;
	pthread_mutex_lock(&root.lock);
	root.done = 1;
	root.kind = kind;
	pthread_cond_signal(&root.cond);
	pthread_mutex_unlock(&root.lock);
}

KR_API int kr_main(const kr_config *cfg, kr_fn *fn, void *arg)
{
	if (!fn)
		return KR_EINVAL;
	int err = kr_vm_start(cfg);
	if (err)
		return err;
	root_call rc = { .fn = fn, .arg = arg };
	pthread_mutex_lock(&root.lock);
	root.done = 0;
	AO_store(&root.pid, 0);
	pthread_mutex_unlock(&root.lock);
	kr_spawn_opts o = { .name = "root" };
	kr_pid pid = kr_spawn_opt(root_main, &rc, &o);
	if (pid < 0) {
		kr_vm_stop();
		return (int)pid;
	}
	pthread_mutex_lock(&root.lock);
	while (!root.done)
		pthread_cond_wait(&root.cond, &root.lock);
	int kind = root.kind;
	AO_store(&root.pid, 0);
	pthread_mutex_unlock(&root.lock);
	kr_vm_stop();
	return kind;
}

/* ---- the running process ---- */

KR_API kr_pid kr_self(void)
{
	krx_proc *p = krx_proc_self();
	/* Relaxed: our own pid, written before we first ran. */
	if (p)
		return (kr_pid)AO_load(&p->live_pid);
	/* A host thread: its mailbox's pid, made on first use. */
	int err;
	if (!krx_host_enter(true, &err))
		return err;
	kr_pid pid = krx_host_pid();
	krx_vm_leave_host();
	return pid;
}

KR_API int kr_yield(void)
{
	if (!krx_task_self()) {
		sched_yield(); /* a host thread: the kernel's scheduler is its */
		return 0;
	}
	krx_task_yield();
	return 0;
}

/* kr_sleep from a host thread: the thread sleeps (its mailbox, if it has
 * one, keeps what arrives, and nothing can end a thread); never for ever. */
static int host_sleep(long ms)
{
	if (ms == KR_INFINITY)
		return KR_EINVAL;
	if (ms == 0) {
		sched_yield();
		return 0;
	}
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		; /* EINTR: sleep the rest */
	return 0;
}

KR_API int kr_sleep(long ms)
{
	if (!krx_timeout_valid(ms))
		return KR_EINVAL;
	if (!krx_task_self())
		return host_sleep(ms);
	if (ms == 0) {
		krx_task_yield();
		return 0;
	}
	/* `receive after ms`: a receive that matches nothing. Messages wake
	 * it only to be queued; exit signals are acted on as they come. With
	 * KR_INFINITY it never returns (timer:sleep(infinity)): only an exit
	 * signal ends it. */
	krx_matcher none = { .kind = KRX_MATCH_NONE };
	kr_msg *m;
	(void)krx_receive_after(&m, &none, ms, NULL);
	return 0;
}

KR_API long kr_blocking(kr_blocking_fn *fn, void *arg)
{
	if (!fn)
		return KR_EINVAL;
	long r = krx_blocking(fn, arg);
	/* An exit signal that came while fn ran takes effect now. */
	krx_task *t = krx_task_self();
	if (t)
		krx_proc_yielded(t);
	return r;
}
