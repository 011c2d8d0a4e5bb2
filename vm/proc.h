/*
 * proc.h - a krill process: a task the scheduler runs, plus a pid, a
 * mailbox and a heap.
 *
 * Process structures are type-stable: the table allocates them in chunks
 * that live as long as the VM, and a slot's structure is reused only as a
 * process structure. So a sender may look a pid up and touch the structure
 * while that process exits on another core: the memory is always a process
 * structure, and whether it is still *the* process is decided by atomic
 * words that carry the pid's serial (see mailbox.h).
 */
#ifndef KRX_PROC_H
#define KRX_PROC_H

#include <stddef.h>
#include <stdint.h>

#include "heap.h"
#include "krill.h"
#include "mailbox.h"
#include "sched.h"

/* pid = node << 50 | serial << 26 | index; serial != 0, so pid > 0. */
#define KRX_PID_INDEX_BITS 26
#define KRX_PID_SERIAL_BITS 24
#define KRX_PID_INDEX(p) ((uint64_t)(p) & ((1u << KRX_PID_INDEX_BITS) - 1))
#define KRX_PID_SERIAL(p) (((uint64_t)(p) >> KRX_PID_INDEX_BITS) & ((1u << KRX_PID_SERIAL_BITS) - 1))
#define KRX_PID_NODE(p) ((uint64_t)(p) >> (KRX_PID_INDEX_BITS + KRX_PID_SERIAL_BITS))
/* A well-formed pid of this node (not necessarily alive). */
static inline bool krx_pid_valid(kr_pid pid)
{
	/* One compare: a local pid with a serial lies in [2^26, 2^50). */
	return (uint64_t)pid - ((uint64_t)1 << KRX_PID_INDEX_BITS) <
	       ((uint64_t)1 << (KRX_PID_INDEX_BITS + KRX_PID_SERIAL_BITS)) - ((uint64_t)1 << KRX_PID_INDEX_BITS);
}

#define KRX_MIN_STACK ((size_t)16 << 10)
#define KRX_MAX_STACK ((size_t)1 << 30)

struct krx_proc_ext;

typedef struct krx_proc {
	krx_task task;         /* first: a task pointer is a process pointer */
	AO_t live_pid;         /* the pid while alive, 0 once it has exited */
	uint32_t serial;       /* of the current or last incarnation */
	unsigned int mb_limit; /* AO_int: max_mailbox | KRX_MB_DROP | KRX_MB_OVER;
	                        * 0 = none (send.c: senders read it, relaxed) */
	krx_mailbox mbox;
	krx_heap heap;
	kr_fn *user_fn;        /* what the process runs */
	void *user_arg;
	/* What most processes never need (a name, links, monitors, an exit
	 * reason's text): made on first need and kept with the slot, so that
	 * racy readers (kr_info's name) always find a valid structure. */
	AO_t ext;              /* struct krx_proc_ext *; published with release */
	AO_t sigs;             /* nonzero: an exit signal or an info request
	                        * (ask.c) waits in the mailbox */
	AO_t named;            /* nonzero: the registry may hold a name for it */
	unsigned char exit_kind; /* enum kr_exit_kind, once it is ending */
	unsigned char prio_queued; /* priority messages wait in its priority queue
	                        * (priority.h): what every receive looks at first */
	unsigned char trap_exit;
	unsigned char ending;  /* a signal it took in ends it (exit_kind says why) */
	unsigned char hibernated; /* it waits in kr_hibernate: krx_proc_main starts it
	                        * again only if something is there to receive */
	unsigned char host;    /* a host thread's mailbox (host.c): its task never runs */
} krx_proc;

/* mb_limit's bits above the limit (KR_MAILBOX_MAX): the policy, and "the
 * kill signal is sent" (set once, by the one sender whose CAS wins). */
#define KRX_MB_DROP (1u << 31)
#define KRX_MB_OVER (1u << 30)
#define KRX_MB_COUNT(w) ((w) & (KRX_MB_OVER - 1))

#define KRX_PROC_CHUNK_BITS 12
#define KRX_PROC_CHUNK (1u << KRX_PROC_CHUNK_BITS)

/* The process table, for the inline lookup below (proc.c owns it). */
extern struct krx_proc_table {
	size_t max;
	AO_t *chunks; /* krx_proc[KRX_PROC_CHUNK] each, published once with release */
} krx_proc_table;

static inline krx_proc *krx_proc_of(krx_task *t)
{
	return (krx_proc *)t;
}

/* Owner: anything taken in but not yet received, ordinary or priority? */
static inline bool krx_proc_queued(const krx_proc *p)
{
	return p->mbox.head || p->prio_queued;
}

/* The calling process, or NULL on a host thread. */
static inline krx_proc *krx_proc_self(void)
{
	return (krx_proc *)krx_task_self();
}

/* The process running on s (this thread's scheduler, or NULL), or NULL. */
static inline krx_proc *krx_proc_on(krx_sched *s)
{
	return (krx_proc *)krx_task_on(s);
}

/* How freed slots are reused (proc.c); tests of slot-reuse races set it
 * before kr_vm_start. */
typedef struct krx_slot_policy_t {
	unsigned batch; /* slots moved between a scheduler and the shared list at once */
	unsigned cool;  /* a freed slot is reused only behind this many others */
} krx_slot_policy_t;
#define KRX_SLOT_POLICY_DEFAULT ((krx_slot_policy_t){ .batch = 32, .cool = 1024 })
extern krx_slot_policy_t krx_slot_policy;

/* A scheduler's share of the free slots (vm.h's krx_vm_local holds one):
 * slots taken from the shared queue to hand out (from the end), and slots
 * freed here not yet given back (oldest first). */
#define KRX_SLOT_BATCH_MAX 64
typedef struct krx_slot_cache {
	unsigned nready, nfreed;
	uint32_t ready[KRX_SLOT_BATCH_MAX];
	uint32_t freed[KRX_SLOT_BATCH_MAX];
} krx_slot_cache;

/* Slots the table has beyond max_procs for n schedulers' caches. */
size_t krx_procs_slack(unsigned schedulers);
/* KR_EINVAL if max_procs and the slack do not fit the pid's index. */
int krx_procs_init(size_t max_procs, unsigned schedulers);
/* Free every process still alive (the schedulers are stopped) and the table. */
void krx_procs_free(void);
/* The structure a pid names, whoever lives there now; NULL if the pid is
 * malformed or its slot was never used. The caller checks liveness. */
static inline krx_proc *krx_proc_slot(kr_pid pid)
{
	if (!krx_pid_valid(pid))
		return NULL;
	uint64_t idx = KRX_PID_INDEX(pid);
	if (idx >= krx_proc_table.max)
		return NULL;
	/* Acquire: pairs with the release that published the chunk. */
	krx_proc *c = (krx_proc *)AO_load_acquire(&krx_proc_table.chunks[idx >> KRX_PROC_CHUNK_BITS]);
	return c ? &c[idx & (KRX_PROC_CHUNK - 1)] : NULL;
}
/*
 * The process pid names if it is alive, else NULL: what every sender
 * (messages, signals) tests first. The push's CAS then settles a race with
 * an exit that comes after this test: the mailbox word keeps the low 16
 * bits of the serial, so a message could land in a later process only if
 * this slot went through 65,536 incarnations between the test and the CAS,
 * each needing krx_slot_policy.cool other process ends (see proc.c).
 */
static inline krx_proc *krx_proc_live(kr_pid pid)
{
	krx_proc *p = krx_proc_slot(pid);
	/* Acquire: pairs with spawn's release of live_pid; the process is set
	 * up. */
	return p && (kr_pid)AO_load_acquire(&p->live_pid) == pid ? p : NULL;
}
size_t krx_procs_alive(void);
/* The heap bytes (kr_proc_info.heap_bytes) of every live process, summed:
 * a walk of the table, for the observer's sampler. Any thread. */
size_t krx_procs_heap_bytes(void);
uint64_t krx_procs_spawned(void);
/* A slot for a host thread's mailbox (host.c): a process that never runs,
 * trapping exits, named "host", alive from here until its exit path.
 * NULL, with the error (KR_ELIMIT, KR_ENOMEM) in *pid, or the pid. */
krx_proc *krx_procs_host_new(kr_pid *pid);
void krx_proc_name(krx_task *t, char *buf, size_t len);
void krx_proc_main(krx_task *t);
/* The exit path's last step (exit.c): p's slot may be reused. */
void krx_procs_release(krx_proc *p, kr_pid pid);
void krx_proc_yielded(krx_task *t);
bool krx_proc_recv_timeout(krx_task *t, AO_t expect);
/* Owner, woken from kr_hibernate with nothing to receive: wait again,
 * without a stack (mailbox.c). */
_Noreturn void krx_hibernate_again(krx_proc *p);

struct krx_proxy;
/* kr_spawn_opt for a supervisor's child (sup.c), from the supervisor sup:
 * kr_info names sup as its supervisor. */
kr_pid krx_spawn_child(kr_fn *fn, void *arg, const kr_spawn_opts *opts, kr_pid sup);
/* kr_spawn of fn(proxy) running a host thread's call (proxy.c), from any
 * thread; its end, however it comes, and the VM's stop, end the call
 * (krx_proxy_ended). */
kr_pid krx_spawn_proxy(kr_fn *fn, struct krx_proxy *proxy);

/* p (the caller) runs a supervisor's loop from now on (sup.c): 0, or
 * KR_ENOMEM. */
int krx_proc_mark_supervisor(krx_proc *p);
/* Is pid a supervisor? 0: yes; KR_ENOTSUP: a live process of this node
 * that is not; KR_ENOPROC: no live process. Another node's pid: 0 (it
 * cannot be known here; the call's timeout covers it). Any thread. */
int krx_proc_sup_check(kr_pid pid);

#endif
