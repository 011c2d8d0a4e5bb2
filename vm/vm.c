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
#include "registry.h"
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

int krx_vm_enter_host(void)
{
	/* Full, then a load: Dekker with kr_vm_stop's store and load. The
	 * load is an acquire too: it pairs with kr_vm_start's release, so a
	 * caller that finds the door open sees the VM built behind it. */
	AO_fetch_and_add1_full(&host_calls);
	AO_nop_full();
	if (AO_load_acquire(&accepting))
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
	max_message = cfg.max_message;
	AO_store(&dead_letters, 0);
	locals = krx_calloc_raw(cfg.schedulers, sizeof *locals);
	void **local_ptrs = krx_calloc_raw(cfg.schedulers, sizeof *local_ptrs);
	err = KR_ENOMEM;
	if (!locals || !local_ptrs) {
		krx_free_raw(locals);
		krx_free_raw(local_ptrs);
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
		.log = cfg.log,
		.log_ctx = cfg.log_ctx,
		.no_reports = cfg.no_reports,
		.hooks = { .task_main = krx_proc_main,
		           .task_exit = krx_proc_exited,
		           .task_fault = krx_proc_fault,
		           .task_name = krx_proc_name,
		           .flush = krx_outbox_flush,
		           .recv_timeout = krx_proc_recv_timeout,
		           .yielded = krx_proc_yielded },
		.vm_locals = local_ptrs,
	};
	if ((err = krx_sched_start(&sc))) {
		krx_registry_free();
		krx_procs_free();
		krx_free_raw(locals);
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
		while (AO_load_acquire(&host_calls))
			sched_yield();
		unsigned n = krx_sched_count();
		krx_sched_stop();
		krx_procs_free();
		krx_registry_free();
		krx_sched_free();
		for (unsigned i = 0; i < n; i++)
			krx_msg_cache_flush(&locals[i].msgs);
		krx_free_raw(locals);
		locals = NULL;
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
	if (!krx_timeout_valid(ms))
		return KR_EINVAL;
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
	size_t len = krx_mailbox_len(&p->mbox);
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
 * self the sending process, or both NULL for a host thread. Returns 0, or
 * 1 when pid was gone (a dead letter: an error only to kr_call). */
static int deliver(krx_sched *s, krx_proc *self, kr_pid to, krx_msg *m)
{
	/* Relaxed: our own pid, written before we first ran. */
	m->pub.sender = self ? (kr_pid)AO_load(&self->live_pid) : 0;
	krx_proc *p = krx_proc_live(to);
	uint32_t serial = (uint32_t)KRX_PID_SERIAL(to);
	enum krx_push r = KRX_PUSH_DEAD;
	if (p && s && krx_sched_deferred(s) == &p->task) {
		/* Parked right here, its commit not yet made: straight in,
		 * unless others' messages came first (it must take them in
		 * itself), or the pid is a stale one of that slot. */
		if (p->serial == serial && krx_mailbox_deliver_parked(&p->mbox, m)) {
			krx_task_wake_deferred(s, &p->task);
			krx_task_charge(1);
			return 0;
		}
		krx_sched_undefer(s);
	}
	if (p) {
		/* To a process that last ran on another core and is busy: through
		 * the outbox (one waiting for a message gets it at once). Relaxed:
		 * where it ran is a hint. Not a call's request: its caller must
		 * know now whether the server is there. */
		if (s && m->hb.kind == KRX_MSG_USER &&
		    krx_outbox_add(s, p, serial, m,
		                   AO_int_load(&p->task.last_sched) != s->id + 1 &&
		                           !krx_mailbox_waiting(&p->mbox))) {
			krx_task_charge(1 + backlog_penalty(p));
			return 0;
		}
		/* A request goes straight out; what the outbox holds goes first,
		 * or the request would overtake messages sent before it. */
		if (s && s->vm_pending && m->hb.kind != KRX_MSG_USER)
			krx_outbox_flush(s);
		r = krx_mailbox_push(&p->mbox, serial, m, m, 1);
	}
	switch (r) {
	case KRX_PUSH_WAKE:
		/* It was waiting, so its queue was empty: no backlog to charge. */
		krx_task_wake_won(&p->task);
		krx_task_charge(1);
		break;
	case KRX_PUSH_OK:
		krx_task_charge(1 + backlog_penalty(p));
		break;
	case KRX_PUSH_DEAD:
		krx_dead_letters(1);
		krx_msg_free(krx_vm_msg_cache(s), m);
		return 1;
	}
	return 0;
}

/* memcpy, with small payloads (the common case) copied inline. */
static inline void copy_payload(void *dst, const void *src, size_t len)
{
	if (len >= 8 && len <= 16) {
		uint64_t a, b;
		memcpy(&a, src, 8);
		memcpy(&b, (const char *)src + len - 8, 8);
		memcpy(dst, &a, 8);
		memcpy((char *)dst + len - 8, &b, 8);
	} else if (len) {
		memcpy(dst, src, len);
	}
}

/* A well-formed local pid? (The VM is running: the caller has entered.) */
static bool valid_target(kr_pid to)
{
	return to > 0 && KRX_PID_SERIAL(to) != 0 && KRX_PID_NODE(to) == 0;
}

static inline __attribute__((always_inline)) int send_ref(kr_pid to, uint64_t tag, kr_ref ref,
                                                          unsigned kind, const void *data,
                                                          size_t len)
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
	if (!(m = krx_msg_new(krx_vm_msg_cache(self), len)))
		goto out;
	m->pub.tag = tag;
	m->pub.len = len;
	m->pub.ref = ref;
	m->hb.kind = kind;
	copy_payload(m + 1, data, len);
	err = deliver(self, self ? (krx_proc *)self->current : NULL, to, m);
out:
	krx_vm_leave(self);
	return err;
}

int krx_send_call(kr_pid to, uint64_t tag, kr_ref ref, const void *data, size_t len)
{
	return send_ref(to, tag, ref, KRX_MSG_CALL, data, len);
}

KR_API int kr_send(kr_pid to, uint64_t tag, const void *data, size_t len)
{
	if (tag >= KR_TAG_SUP)
		return KR_EINVAL; /* krill's own tags */
	int rc = send_ref(to, tag, 0, KRX_MSG_USER, data, len);
	return rc > 0 ? 0 : rc; /* a dead letter is not an error */
}

int krx_send(kr_pid to, uint64_t tag, const void *data, size_t len)
{
	if (tag >= KR_TAG_RESERVED)
		return KR_EINVAL;
	int rc = send_ref(to, tag, 0, KRX_MSG_USER, data, len);
	return rc > 0 ? 0 : rc;
}

KR_API int kr_send_bin(kr_pid to, uint64_t tag, kr_bin *bin)
{
	krx_sched *self = krx_sched_self();
	if (krx_vm_enter(self))
		return KR_ESTOPPED;
	int err = KR_EINVAL;
	krx_msg *m = NULL;
	if (!valid_target(to) || !bin || tag >= KR_TAG_SUP)
		goto out;
	err = KR_ENOMEM;
	if (!(m = krx_msg_new(krx_vm_msg_cache(self), 0)))
		goto out;
	m->pub.tag = tag;
	m->pub.bin = kr_bin_ref(bin);
	m->pub.data = kr_bin_data(bin);
	m->pub.len = kr_bin_size(bin);
	deliver(self, self ? (krx_proc *)self->current : NULL, to, m);
	err = 0; /* a dead letter is not an error */
out:
	krx_vm_leave(self);
	return err;
}

/* ---- the process heap ---- */

KR_API void *kr_alloc(size_t size)
{
	krx_proc *p = krx_proc_self();
	if (!p)
		return NULL;
	if (krx_heap_over_limit(&p->heap, size))
		krx_proc_heap_limit(p, size);
	return krx_heap_alloc(&p->heap, size);
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

/* kr_free or kr_realloc of a block that is not a live one of the caller's:
 * crash the caller, as Erlang crashes a caller on a bad argument, rather
 * than corrupt its heap or another process's. */
static _Noreturn __attribute__((cold, noinline)) void not_live(const char *call, const char *hint)
{
	kr_crash("%s: not a live block of this process (%s)", call, hint);
	__builtin_unreachable();
}

KR_API void *kr_realloc(void *ptr, size_t size)
{
	krx_proc *p = krx_proc_self();
	if (!p)
		return NULL;
	if (!ptr)
		return kr_alloc(size);
	krx_hblk *b = krx_heap_block(&p->heap, ptr);
	if (!b)
		not_live("kr_realloc", "freed already?");
	if (size > b->size && krx_heap_over_limit(&p->heap, size - b->size))
		krx_proc_heap_limit(p, size - b->size);
	return krx_heap_realloc(&p->heap, b, size);
}

KR_API void kr_free(void *ptr)
{
	krx_proc *p = krx_proc_self();
	if (!p || !ptr)
		return;
	krx_hblk *b = krx_heap_block(&p->heap, ptr);
	if (!b)
		not_live("kr_free", "freed twice?");
	krx_heap_free(&p->heap, b);
}
