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

#define KRX_MIN_STACK ((size_t)16 << 10)
#define KRX_MAX_STACK ((size_t)1 << 30)

typedef struct krx_proc {
	krx_task task;         /* first: a task pointer is a process pointer */
	AO_t live_pid;         /* the pid while alive, 0 once it has exited */
	uint32_t serial;       /* of the current or last incarnation */
	krx_mailbox mbox;
	krx_heap heap;
	kr_fn *user_fn;        /* what the process runs */
	void *user_arg;
	AO_t name[4];          /* 31 chars + NUL, in words: read racily by kr_info */
} krx_proc;

static inline krx_proc *krx_proc_of(krx_task *t)
{
	return (krx_proc *)t;
}

/* The calling process, or NULL on a host thread. */
static inline krx_proc *krx_proc_self(void)
{
	return (krx_proc *)krx_task_self();
}

int krx_procs_init(size_t max_procs);
/* Free every process still alive (the schedulers are stopped) and the table. */
void krx_procs_free(void);
/* The structure a pid names, whoever lives there now; NULL if the pid is
 * malformed or its slot was never used. The caller checks liveness. */
krx_proc *krx_proc_slot(kr_pid pid);
size_t krx_procs_alive(void);
uint64_t krx_procs_spawned(void);
void krx_proc_name(krx_task *t, char *buf, size_t len);
void krx_proc_exited(krx_task *t);
void krx_proc_fault(krx_task *t, const krx_fault *f);
void krx_proc_main(krx_task *t);

#endif
