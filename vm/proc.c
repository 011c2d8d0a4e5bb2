/*
 * proc.c - the process table: pids, spawn, exit, and looking processes up.
 *
 * The table is max_procs slots. Slot structures are allocated a chunk at a
 * time, on first use, and kept until the VM stops (type-stable: see proc.h).
 * Free slots are kept on a lock-free stack of indices (idxstack.h: no ABA,
 * no double-width CAS); indices never used yet are handed out by a counter.
 *
 * Invariants:
 *  - live_pid is the pid from the moment spawn publishes it until the exit
 *    hook clears it, and 0 otherwise; kr_is_alive and kr_info trust it.
 *  - A slot goes back on the free stack only after its process has fully
 *    exited: its mailbox is closed, so no message can land in it, and its
 *    task will never be queued again.
 */
#include "proc.h"

#include <execinfo.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idxstack.h"
#include "io.h"
#include "mi.h"
#include "registry.h"
#include "signal.h"
#include "vm.h"

#define CHUNK_BITS KRX_PROC_CHUNK_BITS
#define CHUNK KRX_PROC_CHUNK

struct krx_proc_table krx_proc_table;

static struct {
	size_t nchunks;
	pthread_mutex_t grow;
	AO_t free_head;
	AO_t fresh;            /* never-used indices start here */
	AO_t alive;
	AO_t spawned;
} T;

static krx_proc *slot_at(uint64_t idx)
{
	/* Acquire: pairs with the release that published the chunk. */
	krx_proc *c = (krx_proc *)AO_load_acquire(&krx_proc_table.chunks[idx >> CHUNK_BITS]);
	return c ? &c[idx & (CHUNK - 1)] : NULL;
}

int krx_procs_init(size_t max_procs)
{
	memset(&T, 0, sizeof T);
	if (max_procs > ((size_t)1 << KRX_PID_INDEX_BITS))
		return KR_EINVAL;
	T.nchunks = (max_procs + CHUNK - 1) / CHUNK;
	krx_proc_table.chunks = krx_calloc_raw(T.nchunks, sizeof *krx_proc_table.chunks);
	if (!krx_proc_table.chunks)
		return KR_ENOMEM;
	krx_proc_table.max = max_procs;
	pthread_mutex_init(&T.grow, NULL);
	return 0;
}

size_t krx_procs_alive(void)
{
	return AO_load(&T.alive);
}

uint64_t krx_procs_spawned(void)
{
	return AO_load(&T.spawned);
}

/* ---- slot allocation ---- */

static bool ensure_chunk(uint64_t idx)
{
	AO_t *cp = &krx_proc_table.chunks[idx >> CHUNK_BITS];
	if (AO_load_acquire(cp))
		return true;
	pthread_mutex_lock(&T.grow);
	bool ok = true;
	if (!AO_load(cp)) {
		krx_proc *c = krx_calloc_raw(CHUNK, sizeof *c);
		/* Release: a reader that sees the chunk sees it zeroed. */
		if (c)
			AO_store_release(cp, (AO_t)c);
		ok = c != NULL;
	}
	pthread_mutex_unlock(&T.grow);
	return ok;
}

static unsigned *free_link(void *ctx, uint32_t idx)
{
	(void)ctx;
	return &slot_at(idx)->free_next;
}

static int64_t take_slot(void)
{
	int64_t idx = krx_idxstack_pop(&T.free_head, free_link, NULL);
	if (idx >= 0)
		return idx;
	/* Relaxed: the counter only has to hand each index out once. */
	AO_t fresh = AO_fetch_and_add1(&T.fresh);
	if (fresh >= krx_proc_table.max) {
		AO_fetch_and_sub1(&T.fresh);
		return -1;
	}
	return ensure_chunk(fresh) ? (int64_t)fresh : -1;
}

static void give_slot(uint32_t idx)
{
	krx_idxstack_push(&T.free_head, free_link, NULL, idx, idx);
}

/* ---- names ----
 * A process's label lives in its extension (signal.h), copied in and out a
 * word at a time with atomic accesses: kr_info and the watchdog may read it
 * while a new process in the slot writes its own (they then see that the
 * pid changed and discard what they read). */

static void name_set(krx_proc *p, const char *name)
{
	krx_proc_ext *x = name ? krx_proc_ext_get(p) : krx_proc_ext_peek(p);
	if (!x)
		return; /* no name, or no memory for one: reports show the pid */
	char buf[sizeof x->name] = { 0 };
	if (name)
		snprintf(buf, sizeof buf, "%s", name);
	for (size_t i = 0; i < sizeof x->name / sizeof x->name[0]; i++) {
		AO_t w;
		memcpy(&w, buf + i * sizeof w, sizeof w);
		AO_store(&x->name[i], w); /* relaxed: see above */
	}
}

static void name_get(krx_proc *p, char out[32])
{
	krx_proc_ext *x = krx_proc_ext_peek(p);
	out[0] = 0;
	if (!x)
		return;
	for (size_t i = 0; i < sizeof x->name / sizeof x->name[0]; i++) {
		AO_t w = AO_load(&x->name[i]);
		memcpy(out + i * sizeof w, &w, sizeof w);
	}
	out[31] = 0;
}

/* ---- spawn and exit ---- */

/* Owner: act on exit signals that came while it ran or waited to run. */
static void take_signals(krx_proc *p)
{
	/* Acquire: pairs with the sender's release; the signal is in. */
	if (!AO_load_acquire(&p->sigs))
		return;
	AO_store(&p->sigs, 0);
	(void)krx_mailbox_take(&p->mbox); /* ends the process if one says so */
}

/* The scheduler's task_main hook: what every process runs. */
void krx_proc_main(krx_task *t)
{
	krx_proc *p = krx_proc_of(t);
	take_signals(p); /* killed before it ever ran */
	p->user_fn(p->user_arg);
}

/* The scheduler's yielded hook. */
void krx_proc_yielded(krx_task *t)
{
	take_signals(krx_proc_of(t));
}

static kr_pid spawn(kr_fn *fn, void *arg, const kr_spawn_opts *opts)
{
	static const kr_spawn_opts none;
	if (!opts)
		opts = &none;
	if (!fn || opts->bind_scheduler > krx_sched_count())
		return KR_EINVAL;
	krx_stack_pool *pool = NULL;
	if (opts->stack_size) {
		if (opts->stack_size < KRX_MIN_STACK || opts->stack_size > KRX_MAX_STACK)
			return KR_EINVAL;
		if (!(pool = krx_sched_pool_for(opts->stack_size)))
			return KR_ENOMEM;
	}
	int64_t idx = take_slot();
	if (idx < 0)
		return KR_ELIMIT;
	krx_proc *p = slot_at((uint64_t)idx);
	uint32_t serial = (p->serial + 1) & ((1u << KRX_PID_SERIAL_BITS) - 1);
	if (!serial)
		serial = 1;
	p->serial = serial;
	kr_pid pid = (kr_pid)((uint64_t)serial << KRX_PID_INDEX_BITS | (uint64_t)idx);
	krx_mailbox_open(&p->mbox, serial);
	krx_heap_init(&p->heap, opts->max_heap);
	name_set(p, opts->name);
	p->user_fn = fn;
	p->user_arg = arg;
	AO_store(&p->sigs, 0);
	p->exit_kind = KR_EXIT_NORMAL;
	p->trap_exit = 0;
	p->ending = 0;
	krx_task_init(&p->task, opts->bind_scheduler, pool);
	/* Linked and monitored before anyone can see it, so it cannot end
	 * unnoticed in between (spawn_link, spawn_monitor). */
	krx_proc *parent = krx_proc_self();
	int err = 0;
	if (opts->link)
		err = krx_signal_spawn_link(parent, (kr_pid)AO_load(&parent->live_pid), p, pid);
	if (!err && opts->monitor)
		err = krx_signal_spawn_monitor(parent, p, pid, opts->monitor);
	if (err) {
		krx_proc_ext *x = krx_proc_ext_peek(p);
		if (x)
			krx_proc_ext_reset(x);
		krx_mailbox_close(&p->mbox, serial, NULL, NULL, NULL);
		give_slot((uint32_t)idx);
		return err;
	}
	/* Relaxed counters; release for live_pid: whoever sees the pid alive
	 * sees the process set up. */
	AO_fetch_and_add1(&T.alive);
	AO_fetch_and_add1(&T.spawned);
	AO_store_release(&p->live_pid, (AO_t)pid);
	krx_task_spawn(&p->task);
	krx_task_charge(10);
	return pid;
}

KR_API kr_pid kr_spawn_opt(kr_fn *fn, void *arg, const kr_spawn_opts *opts)
{
	krx_sched *self = krx_sched_self();
	if (opts && (opts->link || opts->monitor) && !krx_proc_self())
		return KR_ENOTPROC;
	if (krx_vm_enter(self))
		return KR_ESTOPPED;
	kr_pid pid = spawn(fn, arg, opts);
	krx_vm_leave(self);
	return pid;
}

KR_API kr_pid kr_spawn(kr_fn *fn, void *arg)
{
	return kr_spawn_opt(fn, arg, NULL);
}

bool krx_proc_recv_timeout(krx_task *t, AO_t expect)
{
	return krx_mailbox_timeout(&krx_proc_of(t)->mbox, expect);
}

static void free_msg_block(krx_hblk *b, void *cache)
{
	krx_msg_free(cache, (krx_msg *)b);
}

/*
 * The scheduler's exit hook: the task has ended (returned, ended itself, or
 * was ended by a signal) and its stack is back. Runs on the scheduler's
 * stack. The order matters: the report names the process while it still
 * has its pid; the mailbox closes and the name goes before the pid dies, so
 * that once kr_is_alive says no, every send is a dead letter and the name
 * is free; links and monitors are told last (a DOWN is never seen while the
 * pid still looks alive), and the close has answered the requests that
 * came before the end.
 */
void krx_proc_exited(krx_task *t)
{
	krx_proc *p = krx_proc_of(t);
	kr_pid pid = (kr_pid)AO_load(&p->live_pid);
	krx_proc_ext *x = krx_proc_ext_peek(p);
	kr_reason reason = { .kind = p->ending ? p->exit_kind : KR_EXIT_NORMAL };
	if (p->ending && x)
		memcpy(reason.text, x->reason.text, sizeof reason.text);
	if (krx_exit_is_abnormal(reason.kind) && krx_sched_reporting()) {
		char who[64];
		krx_proc_name(t, who, sizeof who);
		krx_exit_report(p, who, &reason);
	}
	krx_signal_close(p);
	krx_io_exited(p, pid); /* its descriptors, before anyone sees it gone */
	/* The name goes before the pid dies, so that a process seen gone has
	 * no name; and once more after, for a registration that raced the
	 * end (full fence: live_pid is 0 before we look at named, see
	 * registry.c). */
	if (AO_load(&p->named))
		krx_registry_drop(p, pid);
	AO_store(&p->live_pid, 0);
	AO_nop_full();
	if (AO_load(&p->named))
		krx_registry_drop(p, pid);
	krx_signal_notify(p, pid, &reason);
	krx_heap_destroy(&p->heap, free_msg_block, krx_vm_msg_cache(krx_sched_self()));
	krx_vm_proc_ended(pid, reason.kind);
	if ((x = krx_proc_ext_peek(p)))
		krx_proc_ext_reset(x);
	p->ending = 0;
	AO_fetch_and_sub1(&T.alive);
	give_slot((uint32_t)KRX_PID_INDEX(pid));
}

void krx_proc_name(krx_task *t, char *buf, size_t len)
{
	krx_proc *p = krx_proc_of(t);
	/* Relaxed: a label for a report. */
	kr_pid pid = (kr_pid)AO_load(&p->live_pid);
	char name[32];
	name_get(p, name);
	snprintf(buf, len, "<0.%llu.%llu>%s%s", (unsigned long long)KRX_PID_INDEX(pid),
	         (unsigned long long)KRX_PID_SERIAL(pid), name[0] ? " " : "", name);
}

void krx_procs_free(void)
{
	uint64_t used = AO_load(&T.fresh);
	for (uint64_t i = 0; i < used && i < krx_proc_table.max; i++) {
		krx_proc *p = slot_at(i);
		krx_proc_ext *x = p ? krx_proc_ext_peek(p) : NULL;
		if (p && AO_load(&p->live_pid)) {
			krx_task_discard(&p->task);
			/* Its descriptors are closed, given ones included, while
			 * its pid still names it. */
			krx_mailbox_close(&p->mbox, p->serial, NULL, krx_io_late_stop, p);
			krx_io_stopped(p);
			AO_store(&p->live_pid, 0);
			krx_heap_destroy(&p->heap, free_msg_block, NULL);
		}
		if (x) {
			krx_proc_ext_reset(x);
			krx_free_raw(x);
		}
	}
	for (size_t c = 0; c < T.nchunks; c++)
		krx_free_raw((void *)krx_proc_table.chunks[c]);
	krx_free_raw(krx_proc_table.chunks);
	pthread_mutex_destroy(&T.grow);
	memset(&T, 0, sizeof T);
	memset(&krx_proc_table, 0, sizeof krx_proc_table);
}

/* ---- looking at processes ---- */

KR_API int kr_is_alive(kr_pid pid)
{
	krx_sched *self = krx_sched_self();
	if (krx_vm_enter(self))
		return 0;
	krx_proc *p = krx_proc_slot(pid);
	/* Acquire: pairs with spawn's release. */
	int alive = p && (kr_pid)AO_load_acquire(&p->live_pid) == pid;
	krx_vm_leave(self);
	return alive;
}

static int proc_info(kr_pid pid, kr_proc_info *out)
{
	krx_proc *p = krx_proc_slot(pid);
	if (!p || (kr_pid)AO_load_acquire(&p->live_pid) != pid)
		return KR_ENOPROC;
	kr_proc_info info = { 0 };
	static const int status_of[] = {
		[KRX_RUNNING] = KR_RUNNING, [KRX_RUNNABLE] = KR_RUNNABLE,
		[KRX_WAIT_RECV] = KR_WAITING, [KRX_WAIT_OTHER] = KR_WAITING,
		[KRX_DONE] = KR_EXITING, [KRX_WAIT_IO] = KR_WAITING,
	};
	/* Relaxed loads throughout: a snapshot, checked below to belong to
	 * this pid (it may have exited meanwhile). */
	unsigned st = krx_st_status(AO_load(&p->task.state));
	info.status = st < sizeof status_of / sizeof status_of[0] ? status_of[st] : KR_EXITING;
	info.mailbox_len = krx_mailbox_len(&p->mbox);
	info.heap_bytes = AO_load(&p->heap.bytes);
	info.reductions = AO_load(&p->task.reductions);
	info.scheduler = (int)AO_int_load(&p->task.last_sched) - 1;
	unsigned guard = AO_int_load(&p->task.guard);
	info.stack_protection = guard ? krx_guard_kind_name((krx_guard_kind)(guard - 1)) : "none";
	name_get(p, info.name);
	if ((kr_pid)AO_load_acquire(&p->live_pid) != pid)
		return KR_ENOPROC;
	*out = info;
	return 0;
}

KR_API int kr_info(kr_pid pid, kr_proc_info *out)
{
	if (!out)
		return KR_EINVAL;
	krx_sched *self = krx_sched_self();
	if (krx_vm_enter(self))
		return KR_ESTOPPED;
	int err = proc_info(pid, out);
	krx_vm_leave(self);
	krx_task_charge(1);
	return err;
}
