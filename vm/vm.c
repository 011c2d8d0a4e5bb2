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
#include <unistd.h>

#include "futex.h"
#include "mi.h"
#include "outbox.h"
#include "proc.h"
#include "vm.h"

#define DEFAULT_MAX_PROCS ((size_t)1 << 20)
#define DEFAULT_MAX_MESSAGE ((size_t)64 << 20)
#define DEFAULT_WATCHDOG_MS 10

static pthread_mutex_t vm_lock = PTHREAD_MUTEX_INITIALIZER;
static krx_outbox *outboxes; /* one per scheduler */
static AO_t accepting;  /* 1 while host threads may call in */
static AO_t host_calls; /* host-thread calls inside the VM now */

int krx_vm_enter_host(void)
{
	/* Full, then a load: Dekker with kr_vm_stop's store and load. */
	AO_fetch_and_add1_full(&host_calls);
	AO_nop_full();
	if (AO_load(&accepting))
		return 0;
	AO_fetch_and_sub1_release(&host_calls);
	return KR_ESTOPPED;
}

void krx_vm_leave_host(void)
{
	/* Release: our reads of the VM happen before stop frees it. */
	AO_fetch_and_sub1_release(&host_calls);
}
static AO_t dead_letters;
static size_t max_message;

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
	if (cfg.schedulers > 1024 || cfg.max_procs > ((size_t)1 << KRX_PID_INDEX_BITS) ||
	    (cfg.stack_size && (cfg.stack_size < KRX_MIN_STACK || cfg.stack_size > KRX_MAX_STACK)))
		return KR_EINVAL;

	pthread_mutex_lock(&vm_lock);
	int err = KR_EEXIST;
	if (krx_sched_running())
		goto out;
	if ((err = krx_procs_init(cfg.max_procs)))
		goto out;
	max_message = cfg.max_message;
	AO_store(&dead_letters, 0);
	outboxes = krx_calloc_raw(cfg.schedulers, sizeof *outboxes);
	void **locals = krx_calloc_raw(cfg.schedulers, sizeof *locals);
	err = KR_ENOMEM;
	if (!outboxes || !locals) {
		krx_free_raw(outboxes);
		krx_free_raw(locals);
		krx_procs_free();
		goto out;
	}
	for (unsigned i = 0; i < cfg.schedulers; i++)
		locals[i] = &outboxes[i];
	krx_sched_config sc = {
		.schedulers = cfg.schedulers,
		.pin = cfg.pin,
		.stack_size = cfg.stack_size,
		.watchdog_ms = cfg.watchdog_ms,
		.log = cfg.log,
		.log_ctx = cfg.log_ctx,
		.hooks = { .task_main = krx_proc_main,
		           .task_exit = krx_proc_exited,
		           .task_fault = krx_proc_fault,
		           .task_name = krx_proc_name,
		           .flush = krx_outbox_flush },
		.vm_locals = locals,
	};
	if ((err = krx_sched_start(&sc))) {
		krx_procs_free();
		krx_free_raw(outboxes);
	} else {
		AO_store_release(&accepting, 1);
	}
	krx_free_raw(locals);
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
		while (AO_load_acquire(&host_calls))
			sched_yield();
		krx_sched_stop();
		krx_procs_free();
		krx_sched_free();
		krx_free_raw(outboxes);
		outboxes = NULL;
		err = 0;
	}
	pthread_mutex_unlock(&vm_lock);
	return err;
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
	*out = (kr_vm_stats){
		.schedulers = krx_sched_count(),
		.procs_alive = krx_procs_alive(),
		.procs_spawned = krx_procs_spawned(),
		.dead_letters = AO_load(&dead_letters),
		.stacks_in_use = krx_sched_stacks_in_use(),
		.stack_protection = krx_guard_kind_name(ss.best),
	};
	krx_vm_leave(self);
	return 0;
}

/* ---- kr_main ---- */

typedef struct root {
	kr_fn *fn;
	void *arg;
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	int done;
} root;

static void root_main(void *arg)
{
	root *r = arg;
	r->fn(r->arg);
	pthread_mutex_lock(&r->lock);
	r->done = 1;
	pthread_cond_signal(&r->done_cond);
	pthread_mutex_unlock(&r->lock);
}

KR_API int kr_main(const kr_config *cfg, kr_fn *fn, void *arg)
{
	if (!fn)
		return KR_EINVAL;
	int err = kr_vm_start(cfg);
	if (err)
		return err;
	root r = { .fn = fn, .arg = arg };
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.done_cond, NULL);
	kr_pid pid = kr_spawn(root_main, &r);
	if (pid < 0) {
		kr_vm_stop();
		return (int)pid;
	}
	pthread_mutex_lock(&r.lock);
	while (!r.done)
		pthread_cond_wait(&r.done_cond, &r.lock);
	pthread_mutex_unlock(&r.lock);
	kr_vm_stop();
	pthread_mutex_destroy(&r.lock);
	pthread_cond_destroy(&r.done_cond);
	return 0;
}

/* ---- the running process ---- */

KR_API kr_pid kr_self(void)
{
	krx_proc *p = krx_proc_self();
	/* Relaxed: our own pid, written before we first ran. */
	return p ? (kr_pid)AO_load(&p->live_pid) : KR_ENOTPROC;
}

KR_API int kr_yield(void)
{
	if (!krx_task_self())
		return KR_ENOTPROC;
	krx_task_yield();
	return 0;
}

KR_API int kr_sleep(long ms)
{
	if (!krx_task_self())
		return KR_ENOTPROC;
	if (ms < 0)
		return KR_EINVAL;
	uint64_t deadline = krx_now_ns() + (uint64_t)ms * 1000000u;
	/* A timer is the only waker of WAIT_OTHER without a commit. */
	if (ms == 0)
		krx_task_yield();
	else
		krx_task_park(KRX_WAIT_OTHER, deadline, NULL, NULL);
	return 0;
}

KR_API long kr_blocking(kr_blocking_fn *fn, void *arg)
{
	if (!fn)
		return KR_EINVAL;
	return krx_blocking(fn, arg);
}

/* ---- sending ---- */

/*
 * Sending to a process with a long queue costs the sender more (the BEAM
 * does the same): senders that outrun their receiver yield sooner, the
 * receiver gets the CPU, and the backlog, which the receiver must take in
 * one piece, stays bounded instead of growing until memory runs out.
 */
#define BACKLOG_FREE 1024 /* a queue this long costs senders nothing extra */

static long backlog_penalty(krx_proc *p)
{
	if (!p)
		return 0;
	/* Relaxed: an estimate. */
	AO_t sent = AO_load(&p->mbox.sent), taken = AO_load(&p->mbox.taken);
	AO_t len = sent > taken ? sent - taken : 0;
	if (len <= BACKLOG_FREE)
		return 0;
	return len / BACKLOG_FREE * 64 > KRX_REDUCTIONS ? KRX_REDUCTIONS : (long)(len / BACKLOG_FREE * 64);
}

void krx_dead_letters(unsigned n)
{
	/* Relaxed: a statistic. As in Erlang, not an error. */
	AO_fetch_and_add(&dead_letters, n);
}

/* Deliver m to pid; frees m if pid is gone. s: the sender's scheduler and
 * self the sending process, or both NULL for a host thread. */
static int deliver(krx_sched *s, krx_proc *self, kr_pid to, krx_msg *m)
{
	/* Relaxed: our own pid, written before we first ran. */
	m->pub.sender = self ? (kr_pid)AO_load(&self->live_pid) : 0;
	krx_proc *p = krx_proc_slot(to);
	uint32_t serial = (uint32_t)KRX_PID_SERIAL(to);
	/* To a process that last ran on another core and is busy: through the
	 * outbox (one waiting for a message gets it at once). Relaxed: where
	 * it ran is a hint. */
	if (p && s &&
	    krx_outbox_add(s, p, serial, m,
	                   AO_load(&p->task.last_sched) != s->id + 1 && !krx_mailbox_waiting(&p->mbox))) {
		krx_task_charge(1 + backlog_penalty(p));
		return 0;
	}
	enum krx_push r = p ? krx_mailbox_push(&p->mbox, serial, m) : KRX_PUSH_DEAD;
	if (r == KRX_PUSH_DEAD) {
		krx_dead_letters(1);
		krx_msg_destroy(m);
	} else if (r == KRX_PUSH_WAKE) {
		krx_task_wake(&p->task, KRX_WAIT_RECV);
	}
	krx_task_charge(1 + backlog_penalty(p));
	return 0;
}

/* A well-formed local pid? (The VM is running: the caller has entered.) */
static bool valid_target(kr_pid to)
{
	return to > 0 && KRX_PID_SERIAL(to) != 0 && KRX_PID_NODE(to) == 0;
}

KR_API int kr_send(kr_pid to, uint64_t tag, const void *data, size_t len)
{
	krx_sched *self = krx_sched_self();
	if (krx_vm_enter(self))
		return KR_ESTOPPED;
	int err = KR_EINVAL;
	krx_msg *m = NULL;
	if (!valid_target(to) || (len && !data))
		goto out;
	err = KR_ELIMIT;
	if (len > max_message)
		goto out;
	err = KR_ENOMEM;
	if (!(m = krx_msg_new(len)))
		goto out;
	m->pub.tag = tag;
	if (len)
		memcpy(m + 1, data, len);
	err = deliver(self, self ? (krx_proc *)self->current : NULL, to, m);
out:
	krx_vm_leave(self);
	return err;
}

KR_API int kr_send_bin(kr_pid to, uint64_t tag, kr_bin *bin)
{
	krx_sched *self = krx_sched_self();
	if (krx_vm_enter(self))
		return KR_ESTOPPED;
	int err = KR_EINVAL;
	krx_msg *m = NULL;
	if (!valid_target(to) || !bin)
		goto out;
	err = KR_ENOMEM;
	if (!(m = krx_msg_new(0)))
		goto out;
	m->pub.tag = tag;
	m->pub.bin = kr_bin_ref(bin);
	m->pub.data = kr_bin_data(bin);
	m->pub.len = kr_bin_size(bin);
	err = deliver(self, self ? (krx_proc *)self->current : NULL, to, m);
out:
	krx_vm_leave(self);
	return err;
}

/* ---- the process heap ---- */

KR_API void *kr_alloc(size_t size)
{
	krx_proc *p = krx_proc_self();
	return p ? krx_heap_alloc(&p->heap, size) : NULL;
}

KR_API void *kr_calloc(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *ptr = kr_alloc(n * size);
	if (ptr)
		memset(ptr, 0, n * size);
	return ptr;
}

KR_API void *kr_realloc(void *ptr, size_t size)
{
	krx_proc *p = krx_proc_self();
	return p ? krx_heap_realloc(&p->heap, ptr, size) : NULL;
}

KR_API void kr_free(void *ptr)
{
	krx_proc *p = krx_proc_self();
	if (p)
		krx_heap_free(&p->heap, ptr);
}
