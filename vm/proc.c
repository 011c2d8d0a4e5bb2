/*
 * proc.c - the process table: pids, spawn, slots and looking processes up
 * (a process's end is exit.c's).
 *
 * The table has room for max_procs live processes plus a little slack (see
 * below). Slot structures are allocated a chunk at a time, on first use,
 * and kept until the VM stops (type-stable: see proc.h).
 *
 * Pids live long. A pid is a slot index and that slot's serial, bumped at
 * every reuse; a pid is reused only when its slot's serial comes round
 * again, and Erlang promises that this does not happen while the pid can
 * still be referred to in practice. So a freed slot is not handed out
 * again soon: it first cools in a first-in first-out ring behind
 * krx_slot_policy.cool (1,024) later frees, and only then becomes eligible
 * (never-used slots are taken while none is). A slot therefore comes back
 * at most once per 1,024 process ends, and a pid recurs only after 2^24 of
 * its slot's incarnations, 2^34 process ends (a last-in first-out list
 * brought a busy slot's pid back after 2^24 spawns: seconds). Among the
 * eligible, the one that cooled last is reused first, and the slot a
 * scheduler hands out next is prefetched: a slot freed long ago is cold,
 * and handing out the oldest made skynet spend 70% more time.
 *
 * The shared lists are under a mutex, and each scheduler moves slots to
 * and from them a batch at a time (krx_slot_cache), so spawn and exit take
 * the lock once per `batch`. The live-process limit is kept by the `alive`
 * count itself; the table has 2 * batch slots per scheduler more than
 * max_procs, the most the schedulers' caches can hold, so a spawn under
 * the limit always finds a slot.
 *
 * Invariants:
 *  - live_pid is the pid from the moment spawn publishes it until the exit
 *    hook clears it, and 0 otherwise; kr_is_alive and kr_info trust it, and
 *    every sender tests it before pushing (krx_proc_live).
 *  - A slot goes back for reuse only after its process has fully exited:
 *    its mailbox is closed, so no message can land in it, and its task
 *    will never be queued again.
 */
#include "proc.h"

#include <execinfo.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "io.h"
#include "mi.h"
#include "proxy.h"
#include "registry.h"
#include "remote.h"
#include "signal.h"
#include "str.h"
#include "vm.h"

#define CHUNK_BITS KRX_PROC_CHUNK_BITS
#define CHUNK KRX_PROC_CHUNK

struct krx_proc_table krx_proc_table;

#if !KRX_ASAN && !KRX_TSAN
/* 4,096 slots fill a 1 MiB chunk exactly: a slot of 264 bytes made
 * mimalloc's chunks cost 128 bytes a process more. */
_Static_assert(sizeof(krx_proc) == 256, "a process slot is 256 bytes");
#endif
krx_slot_policy_t krx_slot_policy = KRX_SLOT_POLICY_DEFAULT;
_Static_assert(sizeof(((kr_proc_info *)0)->registered_name) == KR_NAME_MAX + 1,
               "kr_proc_info.registered_name holds a registered name");

static struct {
	size_t nchunks;
	size_t max_alive;      /* max_procs */
	krx_slot_policy_t policy;
	pthread_mutex_t lock;  /* the queue of free slots, fresh, and growing the table */
	uint32_t *cooling;     /* a ring of freed slots, oldest at c_head; c_cap a power of 2 */
	size_t c_cap, c_head, c_n;
	uint32_t *eligible;    /* a stack of slots that have cooled */
	size_t e_cap, e_n;
	AO_t fresh;            /* never-used indices start here (written under the lock) */
	AO_t alive;
	AO_t spawned;
} procs;

static krx_proc *slot_at(uint64_t idx)
{
	/* Acquire: pairs with the release that published the chunk. */
	krx_proc *c = (krx_proc *)AO_load_acquire(&krx_proc_table.chunks[idx >> CHUNK_BITS]);
	return c ? &c[idx & (CHUNK - 1)] : NULL;
}

size_t krx_procs_slack(unsigned schedulers)
{
	krx_slot_policy_t pol = krx_slot_policy;
	unsigned batch = pol.batch ? pol.batch : 1;
	return (size_t)schedulers * 2 * (batch < KRX_SLOT_BATCH_MAX ? batch : KRX_SLOT_BATCH_MAX);
}

int krx_procs_init(size_t max_procs, unsigned schedulers)
{
	memset(&procs, 0, sizeof procs);
	procs.policy = krx_slot_policy;
	if (!procs.policy.batch)
		procs.policy.batch = 1;
	if (procs.policy.batch > KRX_SLOT_BATCH_MAX)
		procs.policy.batch = KRX_SLOT_BATCH_MAX;
	size_t slots = max_procs + krx_procs_slack(schedulers);
	if (slots > ((size_t)1 << KRX_PID_INDEX_BITS))
		return KR_EINVAL;
	procs.max_alive = max_procs;
	procs.nchunks = (slots + CHUNK - 1) / CHUNK;
	krx_proc_table.chunks = krx_calloc_raw(procs.nchunks, sizeof *krx_proc_table.chunks);
	if (!krx_proc_table.chunks)
		return KR_ENOMEM;
	krx_proc_table.max = slots;
	pthread_mutex_init(&procs.lock, NULL);
	return 0;
}

size_t krx_procs_alive(void)
{
	return AO_load(&procs.alive);
}

uint64_t krx_procs_spawned(void)
{
	return AO_load(&procs.spawned);
}

/* ---- slot allocation ---- */

static krx_slot_cache *slot_cache(krx_sched *s)
{
	return s ? &krx_vm_local_of(s)->slots : NULL;
}

/* Under the lock: make sure the chunk holding idx exists. */
static bool ensure_chunk(uint64_t idx)
{
	AO_t *cp = &krx_proc_table.chunks[idx >> CHUNK_BITS];
	if (AO_load(cp))
		return true;
	krx_proc *c = krx_calloc_raw(CHUNK, sizeof *c);
	/* Release: a reader that sees the chunk sees it zeroed. */
	if (c)
		AO_store_release(cp, (AO_t)c);
	return c != NULL;
}

/* Under the lock: grow an array of slot indices to hold n + 1. */
static bool room_for(uint32_t **v, size_t *cap, size_t n)
{
	if (n < *cap)
		return true;
	size_t ncap = *cap ? 2 * *cap : 4096;
	uint32_t *nv = krx_realloc_raw(*v, ncap * sizeof *nv);
	if (!nv)
		return false;
	*v = nv;
	*cap = ncap;
	return true;
}

/* Under the lock: slot idx is free. It cools behind `cool` later ones
 * first; the oldest cooling slot then becomes eligible for reuse. False
 * if memory is short (the slot is then lost to this VM). */
static bool free_locked(uint32_t idx)
{
	if (procs.c_n == procs.c_cap) {
		/* Grow the ring, unwrapping it oldest first. */
		size_t cap = procs.c_cap ? 2 * procs.c_cap : 4096;
		uint32_t *c = krx_alloc_raw(cap * sizeof *c);
		if (!c)
			return false;
		for (size_t i = 0; i < procs.c_n; i++)
			c[i] = procs.cooling[(procs.c_head + i) & (procs.c_cap - 1)];
		krx_free_raw(procs.cooling);
		procs.cooling = c;
		procs.c_cap = cap;
		procs.c_head = 0;
	}
	procs.cooling[(procs.c_head + procs.c_n++) & (procs.c_cap - 1)] = idx;
	if (procs.c_n > procs.policy.cool && room_for(&procs.eligible, &procs.e_cap, procs.e_n)) {
		procs.eligible[procs.e_n++] = procs.cooling[procs.c_head];
		procs.c_head = (procs.c_head + 1) & (procs.c_cap - 1);
		procs.c_n--;
	}
	return true;
}

/* Under the lock: a slot to reuse, else a fresh one, else (the table is
 * used up) one still cooling; -1 if none. Among the eligible, the one that
 * finished cooling last: freed `cool` frees ago, it is likelier in cache
 * than the oldest. */
static int64_t next_free_locked(void)
{
	if (procs.e_n)
		return procs.eligible[--procs.e_n];
	size_t fresh = AO_load(&procs.fresh);
	if (fresh < krx_proc_table.max && ensure_chunk(fresh)) {
		AO_store(&procs.fresh, fresh + 1); /* relaxed: written under the lock */
		return (int64_t)fresh;
	}
	if (!procs.c_n)
		return -1;
	uint32_t idx = procs.cooling[procs.c_head];
	procs.c_head = (procs.c_head + 1) & (procs.c_cap - 1);
	procs.c_n--;
	return idx;
}

/* The slot a scheduler hands out next was freed long ago and is cold:
 * start loading it now, so that the spawn that takes it does not wait
 * for memory (skynet spent a third more time without this). */
static inline void prefetch_slot(uint32_t idx)
{
	char *p = (char *)slot_at(idx);
	for (size_t off = 0; off < sizeof(krx_proc); off += 64)
		__builtin_prefetch(p + off, 1, 3);
}

static int64_t take_slot(krx_sched *s)
{
	krx_slot_cache *c = slot_cache(s);
	if (c && c->nready) {
		uint32_t idx = c->ready[--c->nready];
		if (c->nready)
			prefetch_slot(c->ready[c->nready - 1]);
		return idx;
	}
	pthread_mutex_lock(&procs.lock);
	int64_t idx = next_free_locked();
	/* A scheduler takes a batch: the lock once per batch of spawns. It
	 * hands them out from the end, so store them newest first. */
	unsigned n = 0;
	int64_t more;
	while (c && idx >= 0 && n + 1 < procs.policy.batch && (more = next_free_locked()) >= 0)
		c->ready[n++] = (uint32_t)more;
	pthread_mutex_unlock(&procs.lock);
	if (c) {
		for (unsigned i = 0; i < n / 2; i++) {
			uint32_t t = c->ready[i];
			c->ready[i] = c->ready[n - 1 - i];
			c->ready[n - 1 - i] = t;
		}
		c->nready = n;
		if (n)
			prefetch_slot(c->ready[n - 1]);
	}
	return idx;
}

/* Slot idx is free again. */
static void give_slot(krx_sched *s, uint32_t idx)
{
	krx_slot_cache *c = slot_cache(s);
	if (c && c->nfreed + 1 < procs.policy.batch) {
		c->freed[c->nfreed++] = idx;
		return;
	}
	pthread_mutex_lock(&procs.lock);
	/* Memory short for the ring: the slot is lost to this VM (it has
	 * 2 * batch spare per scheduler, and the ring doubles rarely). */
	for (unsigned i = 0; c && i < c->nfreed; i++)
		(void)free_locked(c->freed[i]);
	(void)free_locked(idx);
	pthread_mutex_unlock(&procs.lock);
	if (c)
		c->nfreed = 0;
}

/* Count one more live process, unless max_procs are alive. */
static bool reserve_alive(void)
{
	/* Relaxed: a counter; only its own atomicity matters. */
	if (AO_fetch_and_add1(&procs.alive) < procs.max_alive)
		return true;
	AO_fetch_and_sub1(&procs.alive);
	return false;
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
		krx_str_copy(buf, sizeof buf, name);
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

/* Owner: clear the flag of signals to act on, then take the mailbox in. */
static void take_signals(krx_proc *p)
{
	/* Full fence between clearing the flag and looking at the mailbox:
	 * a sender pushes (CAS), then sets the flag. Without the fence our
	 * clear could wait in the store buffer while the take below reads the
	 * mailbox word from before a later sender's push, and then land after
	 * that sender's flag: its signal (a kill) would sit unseen until the
	 * next one. With it, either the take sees the push, or the clear is
	 * ordered before the push and so before the sender's flag. */
	AO_store(&p->sigs, 0);
	AO_nop_full();
	(void)krx_mailbox_take(&p->mbox); /* ends the process if one says so */
}

/* Owner: act on exit signals and info requests that came while it ran or
 * waited to run. */
static void act_on_pending_signals(krx_proc *p)
{
	/* Acquire: pairs with the sender's release; the signal is in. */
	if (AO_load_acquire(&p->sigs))
		take_signals(p);
}

/* The scheduler's task_main hook: what every process runs, from the top
 * when it first runs and when it wakes from kr_hibernate. A hibernating
 * process is woken by whatever reaches its mailbox; if that was only
 * signals that leave nothing to receive (a link, a monitor, an info
 * request, an exit signal it ignores), it goes back to sleep without
 * running its function, as a hibernating Erlang process does. */
void krx_proc_main(krx_task *t)
{
	krx_proc *p = krx_proc_of(t);
	if (p->hibernated) {
		take_signals(p);
		if (!krx_proc_queued(p))
			krx_hibernate_again(p);
		p->hibernated = 0;
	} else {
		act_on_pending_signals(p); /* killed before it ever ran */
	}
	p->user_fn(p->user_arg);
}

/* The scheduler's yielded hook. */
void krx_proc_yielded(krx_task *t)
{
	act_on_pending_signals(krx_proc_of(t));
}

/* What vm/'s own spawns add to kr_spawn_opt's: a remote spawner's link
 * and monitor (krx_remote_spawn), the supervisor that starts the process
 * (krx_spawn_child), the host thread's call it runs (krx_spawn_proxy). */
typedef struct spawn_extra {
	bool remote;
	kr_pid link_to, watcher;
	kr_ref ref;
	kr_pid sup;
	struct krx_proxy *proxy;
} spawn_extra;

/* Before p is published: what introspection reads of it (kr_info's
 * supervisor, proxy.c's hook). 0 or KR_ENOMEM. */
static int set_extra(krx_proc *p, const spawn_extra *ex)
{
	if (!ex->sup && !ex->proxy)
		return 0;
	krx_proc_ext *x = krx_proc_ext_get(p);
	if (!x)
		return KR_ENOMEM;
	/* Release, though live_pid's release below publishes it: a racy
	 * reader that finds this incarnation's value with acquire must also
	 * see an earlier incarnation's end (see sup_words). */
	AO_store_release(&x->sup, (AO_t)ex->sup);
	x->proxy = ex->proxy; /* read by the exit path, after the spawn */
	return 0;
}

/* parent: the calling process, for opts->link and opts->monitor; NULL on
 * a host thread, which links and monitors from its mailbox (made then). */
static kr_pid spawn(kr_fn *fn, void *arg, const kr_spawn_opts *opts, const spawn_extra *ex,
                    krx_proc *parent)
{
	static const kr_spawn_opts none;
	if (!opts)
		opts = &none;
	if (!fn || opts->bind_scheduler > krx_sched_count() || opts->max_mailbox > KR_MAILBOX_MAX ||
	    (opts->mailbox_policy != KR_MAILBOX_KILL && opts->mailbox_policy != KR_MAILBOX_DROP))
		return KR_EINVAL;
	krx_stack_pool *pool = NULL;
	if (opts->stack_size) {
		if (opts->stack_size < KRX_MIN_STACK || opts->stack_size > KRX_MAX_STACK)
			return KR_EINVAL;
		int err = krx_sched_pool_for(opts->stack_size, &pool);
		if (err)
			return err;
	}
	if (!reserve_alive())
		return KR_ELIMIT;
	krx_sched *s = krx_sched_self();
	int64_t idx = take_slot(s);
	if (idx < 0) {
		AO_fetch_and_sub1(&procs.alive);
		return KR_ENOMEM; /* a chunk of the table could not be made */
	}
	krx_proc *p = slot_at((uint64_t)idx);
	uint32_t serial = (p->serial + 1) & ((1u << KRX_PID_SERIAL_BITS) - 1);
	if (!serial)
		serial = 1;
	p->serial = serial;
	kr_pid pid = (kr_pid)((uint64_t)serial << KRX_PID_INDEX_BITS | (uint64_t)idx);
	krx_mailbox_open(&p->mbox, serial);
	krx_heap_init(&p->heap, opts->max_heap);
	/* Relaxed: published with the pid (a sender reading it for an earlier
	 * incarnation refuses or takes a message its push then finds dead). */
	AO_int_store(&p->mb_limit, !opts->max_mailbox ? 0
	                           : (unsigned)opts->max_mailbox |
	                                     (opts->mailbox_policy == KR_MAILBOX_DROP ? KRX_MB_DROP : 0));
	name_set(p, opts->name);
	p->user_fn = fn;
	p->user_arg = arg;
	AO_store(&p->sigs, 0);
	p->exit_kind = KR_EXIT_NORMAL;
	p->prio_queued = 0;
	p->trap_exit = 0;
	p->ending = 0;
	p->hibernated = 0;
	p->host = 0;
	krx_task_init(&p->task, opts->bind_scheduler, pool);
	/* Linked and monitored before anyone can see it, so it cannot end
	 * unnoticed in between (spawn_link, spawn_monitor). */
	int err = 0;
	if (!parent && (opts->link || opts->monitor))
		parent = krx_host_proc(&err);
	if (!err && opts->link)
		err = krx_signal_spawn_link(parent, (kr_pid)AO_load(&parent->live_pid), p, pid);
	if (!err && opts->monitor)
		err = krx_signal_spawn_monitor(parent, p, pid, opts->monitor);
	if (!err && ex && ex->remote)
		err = krx_signal_spawn_remote(p, ex->link_to, ex->watcher, ex->ref);
	if (!err && ex)
		err = set_extra(p, ex);
	if (err) {
		krx_proc_ext *x = krx_proc_ext_peek(p);
		if (x)
			krx_proc_ext_reset(x);
		krx_mailbox_close(&p->mbox, serial, NULL, NULL, NULL);
		give_slot(s, (uint32_t)idx);
		AO_fetch_and_sub1(&procs.alive);
		return err;
	}
	/* A relaxed counter; release for live_pid: whoever sees the pid alive
	 * sees the process set up. */
	AO_fetch_and_add1(&procs.spawned);
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
	kr_pid pid = spawn(fn, arg, opts, NULL, krx_proc_on(self));
	krx_vm_leave(self);
	return pid;
}

kr_pid krx_remote_spawn(kr_fn *fn, void *arg, const kr_spawn_opts *opts, kr_pid link_to,
                        kr_pid watcher, kr_ref ref)
{
	spawn_extra ex = { .remote = true, .link_to = link_to, .watcher = watcher, .ref = ref };
	kr_spawn_opts o = opts ? *opts : (kr_spawn_opts){0};
	o.link = 0;
	o.monitor = NULL;
	return spawn(fn, arg, &o, &ex, NULL); /* from a process: no door to count */
}

kr_pid krx_spawn_child(kr_fn *fn, void *arg, const kr_spawn_opts *opts, kr_pid sup)
{
	spawn_extra ex = { .sup = sup };
	return spawn(fn, arg, opts, &ex, krx_proc_self()); /* from a process: no door to count */
}

kr_pid krx_spawn_proxy(kr_fn *fn, struct krx_proxy *proxy)
{
	krx_sched *self = krx_sched_self();
	if (krx_vm_enter(self))
		return KR_ESTOPPED;
	spawn_extra ex = { .proxy = proxy };
	kr_spawn_opts o = { .name = "krill host call" };
	kr_pid pid = spawn(fn, proxy, &o, &ex, NULL);
	krx_vm_leave(self);
	return pid;
}

krx_proc *krx_procs_host_new(kr_pid *out)
{
	if (!reserve_alive()) {
		*out = KR_ELIMIT;
		return NULL;
	}
	int64_t idx = take_slot(NULL); /* a host thread has no cache */
	if (idx < 0) {
		AO_fetch_and_sub1(&procs.alive);
		*out = KR_ENOMEM;
		return NULL;
	}
	krx_proc *p = slot_at((uint64_t)idx);
	uint32_t serial = (p->serial + 1) & ((1u << KRX_PID_SERIAL_BITS) - 1);
	p->serial = serial ? serial : 1;
	kr_pid pid = (kr_pid)((uint64_t)p->serial << KRX_PID_INDEX_BITS | (uint64_t)idx);
	krx_mailbox_open(&p->mbox, p->serial);
	krx_heap_init(&p->heap, 0);
	AO_int_store(&p->mb_limit, 0); /* relaxed: as in spawn */
	name_set(p, "host");
	p->user_fn = NULL;
	p->user_arg = NULL;
	AO_store(&p->sigs, 0);
	p->exit_kind = KR_EXIT_NORMAL;
	p->prio_queued = 0;
	p->trap_exit = 1; /* an exit signal cannot end a thread: it is a message */
	p->ending = 0;
	p->host = 1;
	krx_task_init_host(&p->task);
	/* As spawn's: whoever sees the pid alive sees the slot set up. */
	AO_fetch_and_add1(&procs.spawned);
	AO_store_release(&p->live_pid, (AO_t)pid);
	*out = pid;
	return p;
}

KR_API kr_pid kr_spawn(kr_fn *fn, void *arg)
{
	return kr_spawn_opt(fn, arg, NULL);
}

bool krx_proc_recv_timeout(krx_task *t, AO_t expect)
{
	return krx_mailbox_timeout(&krx_proc_of(t)->mbox, expect);
}

/* The exit path's last step (exit.c): p, whose pid was pid, is gone; its
 * slot may be reused. The slot first, then the count: a spawn that the
 * count lets in finds a slot (see the top). */
void krx_procs_release(krx_proc *p, kr_pid pid)
{
	p->ending = 0;
	give_slot(krx_sched_self(), (uint32_t)KRX_PID_INDEX(pid));
	AO_fetch_and_sub1(&procs.alive);
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
	uint64_t used = AO_load(&procs.fresh);
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
			krx_heap_destroy(&p->heap, krx_msg_free_hblk, NULL);
			if (x && x->proxy) /* its host thread hears of the stop */
				krx_proxy_ended(x->proxy, true);
		}
		if (x) {
			krx_proc_ext_reset(x);
			krx_free_raw(x);
		}
	}
	for (size_t c = 0; c < procs.nchunks; c++)
		krx_free_raw((void *)krx_proc_table.chunks[c]);
	krx_free_raw(krx_proc_table.chunks);
	krx_free_raw(procs.cooling);
	krx_free_raw(procs.eligible);
	pthread_mutex_destroy(&procs.lock);
	memset(&procs, 0, sizeof procs);
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

/* Every slot of every chunk made: a process alive throughout the walk is
 * in one of them, and its live_pid says so whenever it is read. */
static size_t walk_processes(krx_proc *me, kr_pid *out, size_t max)
{
	size_t n = 0;
	for (size_t c = 0; c < procs.nchunks; c++) {
		/* Acquire: pairs with the release that published the chunk. */
		krx_proc *chunk = (krx_proc *)AO_load_acquire(&krx_proc_table.chunks[c]);
		for (size_t i = 0; chunk && i < CHUNK; i++) {
			/* Acquire: as kr_is_alive's. */
			kr_pid pid = (kr_pid)AO_load_acquire(&chunk[i].live_pid);
			if (pid && n < max)
				out[n] = pid;
			n += pid != 0;
			/* A process walking a big table yields now and then (the
			 * BEAM's processes/0 charges a reduction per 25 slots). */
			if (me && (i & 15) == 15)
				krx_task_charge(1);
		}
	}
	return n;
}

size_t krx_procs_heap_bytes(void)
{
	krx_proc *me = krx_proc_self();
	size_t total = 0;
	for (size_t c = 0; c < procs.nchunks; c++) {
		/* Acquire: pairs with the release that published the chunk. */
		krx_proc *chunk = (krx_proc *)AO_load_acquire(&krx_proc_table.chunks[c]);
		for (size_t i = 0; chunk && i < CHUNK; i++) {
			/* Relaxed: figures; a slot between incarnations holds 0
			 * (its heap is destroyed before the slot is freed). */
			if (AO_load(&chunk[i].live_pid))
				total += AO_load(&chunk[i].heap.bytes);
			if (me && (i & 15) == 15)
				krx_task_charge(1); /* as walk_processes */
		}
	}
	return total;
}

KR_API int kr_processes(kr_pid *out, size_t max)
{
	if (max && !out)
		return KR_EINVAL;
	krx_sched *self = krx_sched_self();
	if (krx_vm_enter(self))
		return KR_ESTOPPED;
	size_t n = walk_processes(krx_proc_on(self), out, max);
	krx_vm_leave(self);
	return (int)n; /* at most max_procs plus the slack: < 2^26 */
}

/* p's supervisor, and whether it is one, if p is still pid (checked after
 * the loads): what a racy reader may trust. KR_ENOPROC otherwise. */
static int sup_words(krx_proc *p, kr_pid pid, kr_pid *sup, bool *is_sup)
{
	krx_proc_ext *x = krx_proc_ext_peek(p);
	/* Acquire, both: each word is stored with release, after live_pid is
	 * cleared (exit path) or by an incarnation that began after that.
	 * So if a load returns a later incarnation's value (or the exit
	 * path's 0), the check of live_pid, which cannot move above these
	 * loads, sees the pid dead. */
	*sup = x ? (kr_pid)AO_load_acquire(&x->sup) : 0;
	*is_sup = x && AO_load_acquire(&x->is_sup);
	return (kr_pid)AO_load_acquire(&p->live_pid) == pid ? 0 : KR_ENOPROC;
}

int krx_proc_mark_supervisor(krx_proc *p)
{
	krx_proc_ext *x = krx_proc_ext_get(p);
	if (!x)
		return KR_ENOMEM;
	/* Release: see sup_words. A caller that sees it needs nothing else
	 * from us: its request is a message we take in order. */
	AO_store_release(&x->is_sup, 1);
	return 0;
}

int krx_proc_sup_check(kr_pid pid)
{
	if (krx_pid_remote(pid))
		return 0;
	krx_sched *self = krx_sched_self();
	if (krx_vm_enter(self))
		return KR_ESTOPPED;
	krx_proc *p = krx_proc_live(pid);
	kr_pid sup;
	bool is_sup = false;
	int rc = p ? sup_words(p, pid, &sup, &is_sup) : KR_ENOPROC;
	krx_vm_leave(self);
	return rc ? rc : is_sup ? 0 : KR_ENOTSUP;
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
	info.hibernating = st == KRX_WAIT_RECV && !guard; /* a receive holds its stack */
	name_get(p, info.name);
	/* Relaxed: a hint; the registry decides, under its lock. */
	if (AO_load(&p->named))
		krx_registry_name_of(pid, info.registered_name);
	bool is_sup;
	if (sup_words(p, pid, &info.supervisor, &is_sup))
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
