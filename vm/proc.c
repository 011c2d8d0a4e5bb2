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
#include "mi.h"
#include "vm.h"

#define CHUNK_BITS 12
#define CHUNK (1u << CHUNK_BITS)


typedef struct slot {
	krx_proc proc;
	unsigned free_next; /* index + 1 of the next free slot */
} slot;

static struct {
	size_t max;
	size_t nchunks;
	AO_t *chunks;          /* slot *, filled once each under grow */
	pthread_mutex_t grow;
	AO_t free_head;
	AO_t fresh;            /* never-used indices start here */
	AO_t alive;
	AO_t spawned;
} T;

static slot *slot_at(uint64_t idx)
{
	/* Acquire: pairs with the release that published the chunk. */
	slot *c = (slot *)AO_load_acquire(&T.chunks[idx >> CHUNK_BITS]);
	return c ? &c[idx & (CHUNK - 1)] : NULL;
}

int krx_procs_init(size_t max_procs)
{
	memset(&T, 0, sizeof T);
	if (max_procs > ((size_t)1 << KRX_PID_INDEX_BITS))
		return KR_EINVAL;
	T.max = max_procs;
	T.nchunks = (max_procs + CHUNK - 1) / CHUNK;
	T.chunks = krx_calloc_raw(T.nchunks, sizeof *T.chunks);
	if (!T.chunks)
		return KR_ENOMEM;
	pthread_mutex_init(&T.grow, NULL);
	return 0;
}

krx_proc *krx_proc_slot(kr_pid pid)
{
	if (pid <= 0 || KRX_PID_NODE(pid) != 0 || KRX_PID_SERIAL(pid) == 0)
		return NULL;
	uint64_t idx = KRX_PID_INDEX(pid);
	if (idx >= T.max)
		return NULL;
	slot *s = slot_at(idx);
	return s ? &s->proc : NULL;
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
	AO_t *cp = &T.chunks[idx >> CHUNK_BITS];
	if (AO_load_acquire(cp))
		return true;
	pthread_mutex_lock(&T.grow);
	bool ok = true;
	if (!AO_load(cp)) {
		slot *c = krx_calloc_raw(CHUNK, sizeof *c);
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
	if (fresh >= T.max) {
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
 * A name is copied in and out a word at a time with atomic accesses: kr_info
 * and the watchdog may read it while a new process in the slot writes its
 * own (they then see that the pid changed and discard what they read). */

static void name_set(krx_proc *p, const char *name)
{
	char buf[sizeof p->name] = { 0 };
	if (name)
		snprintf(buf, sizeof buf, "%s", name);
	for (size_t i = 0; i < sizeof p->name / sizeof p->name[0]; i++) {
		AO_t w;
		memcpy(&w, buf + i * sizeof w, sizeof w);
		AO_store(&p->name[i], w); /* relaxed: see above */
	}
}

static void name_get(krx_proc *p, char out[32])
{
	for (size_t i = 0; i < sizeof p->name / sizeof p->name[0]; i++) {
		AO_t w = AO_load(&p->name[i]);
		memcpy(out + i * sizeof w, &w, sizeof w);
	}
	out[31] = 0;
}

/* ---- spawn and exit ---- */

/* The scheduler's task_main hook: what every process runs. */
void krx_proc_main(krx_task *t)
{
	krx_proc *p = krx_proc_of(t);
	p->user_fn(p->user_arg);
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
	krx_proc *p = &slot_at((uint64_t)idx)->proc;
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
	krx_task_init(&p->task, opts->bind_scheduler, pool);
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

/* The scheduler's exit hook: the task has returned and its stack is back. */
void krx_proc_exited(krx_task *t)
{
	krx_proc *p = krx_proc_of(t);
	kr_pid pid = (kr_pid)AO_load(&p->live_pid);
	AO_store(&p->live_pid, 0);
	krx_mailbox_close(&p->mbox, p->serial);
	krx_heap_destroy(&p->heap, krx_msg_destroy_block);
	AO_fetch_and_sub1(&T.alive);
	give_slot((uint32_t)KRX_PID_INDEX(pid));
}

/*
 * The scheduler's task_fault hook: a hardware fault ends the process (its
 * exit follows through krx_proc_exited). For now this only reports it, one
 * line and then the backtrace, through the VM's log; the exit-reason
 * machinery (links, monitors, the logger hook) will take f from here.
 * Not in a signal handler: backtrace_symbols may allocate.
 */
void krx_proc_fault(krx_task *t, const krx_fault *f)
{
	char name[64];
	krx_proc_name(t, name, sizeof name);
	const char *kind = krx_fault_kind_name(f->kind);
	if (f->code <= 0)
		krx_sched_log("krill: process %s crashed: %s (signal %d sent by the process itself)",
		              name, kind, f->signo);
	else if (f->kind == KRX_FAULT_FPE || f->kind == KRX_FAULT_ILL)
		krx_sched_log("krill: process %s crashed: %s at pc 0x%" PRIxPTR, name, kind,
		              (uintptr_t)f->pc);
	else
		krx_sched_log("krill: process %s crashed: %s at address 0x%" PRIxPTR, name, kind,
		              (uintptr_t)f->addr);
	char **syms = backtrace_symbols((void *const *)f->frames, f->nframes);
	for (int i = 0; i < f->nframes; i++) {
		if (syms)
			krx_sched_log("krill:   #%d %s", i, syms[i]);
		else
			krx_sched_log("krill:   #%d 0x%" PRIxPTR, i, (uintptr_t)f->frames[i]);
	}
	free(syms);
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
	for (uint64_t i = 0; i < used && i < T.max; i++) {
		slot *s = slot_at(i);
		if (!s || !AO_load(&s->proc.live_pid))
			continue;
		krx_proc *p = &s->proc;
		krx_task_discard(&p->task);
		AO_store(&p->live_pid, 0);
		krx_mailbox_close(&p->mbox, p->serial);
		krx_heap_destroy(&p->heap, krx_msg_destroy_block);
	}
	for (size_t c = 0; c < T.nchunks; c++)
		krx_free_raw((void *)T.chunks[c]);
	krx_free_raw(T.chunks);
	pthread_mutex_destroy(&T.grow);
	memset(&T, 0, sizeof T);
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
		[KRX_DONE] = KR_EXITING,
	};
	/* Relaxed loads throughout: a snapshot, checked below to belong to
	 * this pid (it may have exited meanwhile). */
	unsigned st = krx_st_status(AO_load(&p->task.state));
	info.status = st <= KRX_DONE ? status_of[st] : KR_EXITING;
	AO_t sent = AO_load(&p->mbox.sent), taken = AO_load(&p->mbox.taken);
	info.mailbox_len = sent > taken ? (size_t)(sent - taken) : 0;
	info.heap_bytes = AO_load(&p->heap.bytes);
	info.reductions = AO_load(&p->task.reductions);
	info.scheduler = (int)AO_load(&p->task.last_sched) - 1;
	AO_t guard = AO_load(&p->task.guard);
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
